package image

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/parkerpack/parker/internal/treecmp"
	"github.com/parkerpack/parker/internal/treegen"
	"golang.org/x/sys/unix"
)

func TestExtract(t *testing.T) {
	needTool(t, "mksquashfs")
	src := readerTree(t)
	want := diskView(t, "source", src)
	for i, c := range mksquashfsComps {
		t.Run(c.name, func(t *testing.T) {
			r := openTestImage(t, packMksquashfs(t, src, c.args...))
			out := filepath.Join(t.TempDir(), "out") // does not exist yet
			makeRemovable(t, out)
			var warnings []string
			opt := ExtractOptions{Workers: 1 + i%3, KeepOwner: true, Warn: func(s string) { warnings = append(warnings, s) }}
			if err := r.Extract(out, opt); err != nil {
				t.Fatalf("Extract: %v", err)
			}
			if len(warnings) > 0 && os.Geteuid() == 0 {
				t.Errorf("warnings as root: %q", warnings)
			}
			got := diskView(t, "extraction", out)
			got.NoOwner = os.Geteuid() != 0 // owners are restored by root only
			checkTree(t, want, got, treecmp.Expect{KeepOwner: true, Clamp: -1})

			// Holes stay holes.
			var st syscall.Stat_t
			if err := syscall.Stat(filepath.Join(out, "sparse/hole-end"), &st); err != nil {
				t.Fatal(err)
			}
			if st.Blocks*512 >= st.Size/2 {
				t.Errorf("sparse/hole-end: %d bytes allocated for %d", st.Blocks*512, st.Size)
			}
		})
	}
}

// extractReadOnly extracts the image img into dest as an extraction cache
// entry is: untrusted, read-only.
func extractReadOnly(img, dest string) error {
	b, err := os.ReadFile(img)
	if err != nil {
		return err
	}
	r, err := NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		return err
	}
	return r.Extract(dest, ExtractOptions{Untrusted: true, ReadOnly: true, Workers: 3})
}

// TestExtractReadOnly: with ReadOnly, no entry has a write bit, and the
// tree is otherwise the one an untrusted extraction makes. It runs as a
// user whom modes bind (as root, nobody), so that a directory that lost
// its write bit too early would stop the entries still to be made in it
// (hard links, subdirectories, the 0500 and 0000 ones below it).
func TestExtractReadOnly(t *testing.T) {
	src := readerTree(t)
	want := diskView(t, "source", src)
	base := t.TempDir()
	img := filepath.Join(base, "img.sqfs")
	b, err := os.ReadFile(packMksquashfs(t, src, "-comp", "zstd"))
	if err == nil {
		err = os.WriteFile(img, b, 0o644)
	}
	if err != nil {
		t.Fatal(err)
	}
	parent := filepath.Join(base, "parent")
	if err := os.Mkdir(parent, 0o755); err != nil {
		t.Fatal(err)
	}
	dest := filepath.Join(parent, "entry")
	makeRemovable(t, dest)
	if os.Geteuid() != 0 {
		err = extractReadOnly(img, dest)
	} else {
		err = os.Chown(parent, 65534, 65534)
		if err == nil {
			asNobody(t, base, "extract-readonly", "IMG="+img, "DEST="+dest)
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	got := diskView(t, "extraction", dest)
	got.NoOwner = true
	x := treecmp.Expect{KeepOwner: true, Clamp: -1, Exclude: map[string]bool{}}
	for p, e := range want.Entries {
		switch {
		case e.Mode&fs.ModeDevice != 0:
			x.Exclude[p] = true // untrusted: not made
		case e.Mode&fs.ModeSymlink == 0:
			e.Mode &^= fs.ModeSetuid | fs.ModeSetgid | 0o222
		}
	}
	checkTree(t, want, got, x)
	for p, e := range got.Entries {
		if e.Mode&fs.ModeSymlink == 0 && e.Mode&0o222 != 0 {
			t.Errorf("%s: mode %v; want no write bits", p, e.Mode)
		}
	}
}

// fewFDs is the descriptor limit extractFewFDs extracts under: the files
// Extract may keep open for writing (maxOpen), and room for the
// directories of the test tree's deepest path and the process's own.
const fewFDs = maxOpen + 64

// extractFewFDs extracts the image img into dest with no more than fewFDs
// descriptors.
func extractFewFDs(img, dest string) error {
	lim := unix.Rlimit{Cur: fewFDs, Max: fewFDs}
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		return err
	}
	f, err := os.Open(img)
	if err != nil {
		return err
	}
	st, err := f.Stat()
	if err != nil {
		return err
	}
	r, err := NewReader(f, st.Size())
	if err != nil {
		return err
	}
	return r.Extract(dest, ExtractOptions{KeepOwner: true, Workers: 2})
}

// TestExtractFewDescriptors: Extract closes each file once it is written
// and keeps a bounded number open meanwhile, however many it writes at
// once: the generated tree's thousands of small files extract under a
// limit of a few hundred descriptors.
func TestExtractFewDescriptors(t *testing.T) {
	src := genTree(t, testBlockSize, treegen.Options{Wide: 3000})
	img := packMksquashfs(t, src, "-comp", "lz4")
	dest := filepath.Join(t.TempDir(), "out")
	makeRemovable(t, dest)
	cmd := exec.Command(os.Args[0])
	cmd.Env = []string{helperEnv + "=extract-fewfds", "IMG=" + img, "DEST=" + dest}
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("extraction with %d descriptors: %v\n%s", fewFDs, err, b)
	}
	got := diskView(t, "extraction", dest)
	got.NoOwner = os.Geteuid() != 0
	checkTree(t, diskView(t, "source", src), got, treecmp.Expect{KeepOwner: true, Clamp: -1, SplitSymlinkLinks: true})
}

// TestExtractUmask: files are made with their own mode where the umask
// leaves it whole, and chmodded where it does not; under any umask, every
// entry ends up with the image's mode.
func TestExtractUmask(t *testing.T) {
	src := genTree(t, testBlockSize, treegen.Options{})
	want := diskView(t, "source", src)
	r := openTestImage(t, packMksquashfs(t, src, "-comp", "lz4"))
	for _, mask := range []int{0o022, 0o077, 0o777, 0} {
		t.Run(fmt.Sprintf("%04o", mask), func(t *testing.T) {
			old := syscall.Umask(mask)
			defer syscall.Umask(old)
			if got := processUmask(); got != mask {
				t.Fatalf("processUmask() = %04o, want %04o", got, mask)
			}
			out := filepath.Join(t.TempDir(), "out")
			makeRemovable(t, out)
			if err := r.Extract(out, ExtractOptions{}); err != nil {
				t.Fatal(err)
			}
			// Owners not restored (which would take the chmod path):
			// as root, all 0:0.
			got := diskView(t, "extraction", out)
			got.NoOwner = os.Geteuid() != 0
			checkTree(t, want, got, treecmp.Expect{Clamp: -1, SplitSymlinkLinks: true})
		})
	}
}

func TestExtractDestination(t *testing.T) {
	img := smallMksquashfsImage(t, "-comp", "lz4")
	r, err := NewReader(bytes.NewReader(img), int64(len(img)))
	if err != nil {
		t.Fatal(err)
	}
	base := t.TempDir()
	empty := filepath.Join(base, "empty")
	if err := os.Mkdir(empty, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := r.Extract(empty, ExtractOptions{}); err != nil {
		t.Errorf("into an empty directory: %v", err)
	}
	if _, err := os.Stat(filepath.Join(empty, "d0/f0")); err != nil {
		t.Error(err)
	}
	if err := r.Extract(empty, ExtractOptions{}); !errors.Is(err, ErrNotEmpty) {
		t.Errorf("into a non-empty directory: %v", err)
	}
	file := filepath.Join(base, "file")
	os.WriteFile(file, nil, 0o644)
	if err := r.Extract(file, ExtractOptions{}); err == nil {
		t.Error("into a regular file: no error")
	}
	if err := r.Extract(filepath.Join(base, "missing/parent"), ExtractOptions{}); err == nil {
		t.Error("below a missing directory: no error")
	}
}

// patchName builds a tree, packs it uncompressed, and overwrites the stored
// directory entry name from with to (same length), the way a hostile image
// would be made by hand.
func patchName(t *testing.T, build func(src string), from, to string) []byte {
	t.Helper()
	src := filepath.Join(t.TempDir(), "src")
	if err := os.Mkdir(src, 0o755); err != nil {
		t.Fatal(err)
	}
	build(src)
	img, err := os.ReadFile(packMksquashfs(t, src, "-noI", "-noD", "-noF", "-noX"))
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewReader(bytes.NewReader(img), int64(len(img)))
	if err != nil {
		t.Fatal(err)
	}
	dir := img[r.dirStart:r.dirEnd]
	if bytes.Count(dir, []byte(from)) != 1 || len(from) != len(to) {
		t.Fatalf("name %q found %d times in the directory table", from, bytes.Count(dir, []byte(from)))
	}
	copy(dir[bytes.Index(dir, []byte(from)):], to)
	return img
}

// TestExtractHostile: images with names and links crafted to escape the
// destination must fail without touching anything outside it.
func TestExtractHostile(t *testing.T) {
	needTool(t, "mksquashfs")
	outside := t.TempDir()
	for _, tc := range []struct {
		name     string
		build    func(src string)
		from, to string
		format   bool // must be ErrFormat (caught while reading)
	}{
		{
			// A symlink to the outside, then a directory of the same name
			// with a file in it: following the link would write outside.
			name: "symlink then directory",
			build: func(src string) {
				os.Symlink(outside, filepath.Join(src, "evil-aaaa"))
				os.MkdirAll(filepath.Join(src, "evil-aaab"), 0o755)
				os.WriteFile(filepath.Join(src, "evil-aaab", "pwned"), []byte("x"), 0o644)
			},
			from: "evil-aaab", to: "evil-aaaa",
		},
		{
			// Same with a regular file: O_EXCL|O_NOFOLLOW refuses to
			// write through the link.
			name: "symlink then file",
			build: func(src string) {
				os.Symlink(filepath.Join(outside, "pwned"), filepath.Join(src, "evil-aaaa"))
				os.WriteFile(filepath.Join(src, "evil-aaab"), []byte("x"), 0o644)
			},
			from: "evil-aaab", to: "evil-aaaa",
		},
		{
			name: "dot-dot",
			build: func(src string) {
				os.MkdirAll(filepath.Join(src, "zq"), 0o755)
				os.WriteFile(filepath.Join(src, "zq", "pwned"), []byte("x"), 0o644)
			},
			from: "zq", to: "..", format: true,
		},
		{
			name: "slash",
			build: func(src string) {
				os.WriteFile(filepath.Join(src, "qxq"), []byte("x"), 0o644)
			},
			from: "qxq", to: "q/q", format: true,
		},
		{
			name: "nul",
			build: func(src string) {
				os.WriteFile(filepath.Join(src, "qxq"), []byte("x"), 0o644)
			},
			from: "qxq", to: "q\x00q", format: true,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			img := patchName(t, tc.build, tc.from, tc.to)
			r, err := NewReader(bytes.NewReader(img), int64(len(img)))
			if err != nil {
				t.Fatal(err)
			}
			err = r.Extract(filepath.Join(t.TempDir(), "out"), ExtractOptions{})
			if err == nil {
				t.Fatal("Extract succeeded")
			}
			if tc.format && !errors.Is(err, ErrFormat) {
				t.Errorf("Extract: %v, want ErrFormat", err)
			}
			t.Logf("Extract: %v", err)
			if ents, _ := os.ReadDir(outside); len(ents) > 0 {
				t.Fatalf("wrote outside the destination: %v", ents)
			}
		})
	}
}

// TestExtractCorrupt: damaged images fail with ErrFormat (or succeed when
// the damage is harmless) and never panic or hang.
func TestExtractCorrupt(t *testing.T) {
	img := smallMksquashfsImage(t, "-comp", "zstd", "-nopad")
	for i := 0; i < 60; i++ {
		bad := bytes.Clone(img)
		bad[(i*7919)%len(bad)] ^= 0x5a
		bad[(i*104729)%len(bad)] ^= 0xa5
		r, err := NewReader(bytes.NewReader(bad), int64(len(bad)))
		if err == nil {
			err = r.Extract(filepath.Join(t.TempDir(), fmt.Sprint(i)), ExtractOptions{Workers: 2})
		}
		if !corruptOK(err) {
			t.Errorf("flip %d: %v", i, err)
		}
	}
}

// TestDirectoryCycle points a subdirectory's entry at the root inode: Walk
// and Extract must report ErrFormat instead of recursing forever.
func TestDirectoryCycle(t *testing.T) {
	needTool(t, "mksquashfs")
	src := filepath.Join(t.TempDir(), "src")
	if err := os.MkdirAll(filepath.Join(src, "a", "loopdir"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(src, "a", "loopdir", "f"), []byte("x"), 0o644)
	img, err := os.ReadFile(packMksquashfs(t, src, "-noI", "-noD", "-noF", "-noX"))
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewReader(bytes.NewReader(img), int64(len(img)))
	if err != nil {
		t.Fatal(err)
	}
	dir := img[r.dirStart:r.dirEnd]
	i := bytes.Index(dir, []byte("loopdir"))
	if i < dirEntrySize || bytes.Count(dir, []byte("loopdir")) != 1 {
		t.Fatal("entry not found")
	}
	// dirEntry: offset u16 first. Every inode of this tiny image is in the
	// first inode block, so the header's block already matches the root's.
	rootBlock, rootOff := splitInodeRef(r.sb.RootInode)
	if rootBlock != 0 {
		t.Fatalf("root inode in inode block %d, not the first: the test's premise is gone", rootBlock)
	}
	dir[i-dirEntrySize] = byte(rootOff)
	dir[i-dirEntrySize+1] = byte(rootOff >> 8)
	r, err = NewReader(bytes.NewReader(img), int64(len(img)))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Walk(func(*Node) error { return nil }); !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), "twice") {
		t.Errorf("Walk: %v, want a cycle error", err)
	}
	if err := r.Extract(filepath.Join(t.TempDir(), "out"), ExtractOptions{}); !errors.Is(err, ErrFormat) {
		t.Errorf("Extract: %v, want ErrFormat", err)
	}
	// Lookup goes round the loop only as far as the path says.
	if n, err := r.Lookup("a/loopdir/a/loopdir/a"); err != nil || !n.IsDir() {
		t.Errorf("Lookup through the loop: %v, %v", n, err)
	}
}

// TestMaxDepth: nesting beyond MaxDepth is refused by Walk and Extract
// (one file descriptor per level is held while extracting).
func TestMaxDepth(t *testing.T) {
	if testing.Short() {
		t.Skip("packs two 1000-level trees")
	}
	needTool(t, "mksquashfs")
	src := filepath.Join(t.TempDir(), "src")
	p := src
	for i := 0; i <= MaxDepth; i++ {
		p = filepath.Join(p, "d")
	}
	if err := os.MkdirAll(p, 0o755); err != nil {
		t.Fatal(err)
	}
	r := openTestImage(t, packMksquashfs(t, src, "-comp", "lz4"))
	if err := r.Walk(func(*Node) error { return nil }); !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), "deeper") {
		t.Errorf("Walk: %v", err)
	}
	if err := r.Extract(filepath.Join(t.TempDir(), "out"), ExtractOptions{}); !errors.Is(err, ErrFormat) {
		t.Errorf("Extract: %v", err)
	}
	// One level less is fine.
	os.Remove(p)
	r = openTestImage(t, packMksquashfs(t, src, "-comp", "lz4"))
	if err := r.Walk(func(*Node) error { return nil }); err != nil {
		t.Errorf("Walk at MaxDepth: %v", err)
	}
	if err := r.Extract(filepath.Join(t.TempDir(), "out"), ExtractOptions{}); err != nil {
		t.Errorf("Extract at MaxDepth: %v", err)
	}
}

// TestExtractSubdir: with Subdir, only that directory of the image is
// extracted, its entries straight into the destination (a closure
// entry's store); a path that is not a directory of the image is an error.
func TestExtractSubdir(t *testing.T) {
	needTool(t, "mksquashfs")
	src := t.TempDir()
	for p, body := range map[string]string{"keep/a": "a\n", "keep/sub/b": "b\n", "other/c": "c\n", "top": "top\n"} {
		if err := os.MkdirAll(filepath.Join(src, filepath.Dir(p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(src, p), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	r := openTestImage(t, packMksquashfs(t, src))
	out := filepath.Join(t.TempDir(), "out")
	if err := r.Extract(out, ExtractOptions{Subdir: "keep"}); err != nil {
		t.Fatal(err)
	}
	var got []string
	filepath.WalkDir(out, func(p string, d fs.DirEntry, err error) error {
		if rel, _ := filepath.Rel(out, p); rel != "." {
			got = append(got, rel)
		}
		return nil
	})
	if strings.Join(got, " ") != "a sub sub/b" {
		t.Errorf("Subdir keep extracted %v; want a, sub, sub/b", got)
	}
	if b, _ := os.ReadFile(filepath.Join(out, "sub", "b")); string(b) != "b\n" {
		t.Errorf("sub/b: %q", b)
	}
	for _, bad := range []string{"top", "nope"} {
		if err := r.Extract(filepath.Join(t.TempDir(), "x"), ExtractOptions{Subdir: bad}); err == nil {
			t.Errorf("Subdir %s: extracted", bad)
		}
	}
}
