package image

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"

	"github.com/klauspost/compress/zlib"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
	"github.com/ulikunitz/xz"
	"golang.org/x/sys/unix"
)

// The reader is checked against mksquashfs, an independent writer: build a
// source tree with every kind of treeEntry and awkward size, pack it with each
// compressor, and compare what the Reader sees with what the file system
// holds.

const testBlockSize = 128 << 10

func needMksquashfs(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath("mksquashfs"); err != nil {
		t.Skip("mksquashfs not installed (apt-get install squashfs-tools): skipping tests against real images")
	}
}

// packMksquashfs packs src into a new image and returns its path.
func packMksquashfs(t testing.TB, src string, args ...string) string {
	t.Helper()
	needMksquashfs(t)
	img := filepath.Join(t.TempDir(), "img.sqfs")
	cmd := exec.Command("mksquashfs", append([]string{src, img, "-noappend", "-quiet", "-no-progress", "-no-xattrs"}, args...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mksquashfs %v: %v\n%s", args, err, out)
	}
	return img
}

// mksquashfsComps lists the mksquashfs flags for each compressor we read.
var mksquashfsComps = []struct {
	name string
	args []string
}{
	{Gzip, []string{"-comp", "gzip"}},
	{XZ, []string{"-comp", "xz"}},
	{LZ4, []string{"-comp", "lz4"}},
	{Zstd, []string{"-comp", "zstd"}},
	{None, []string{"-noI", "-noD", "-noF", "-noX"}},
}

// pseudoText returns n compressible, non-repeating bytes.
func pseudoText(seed int64, n int) []byte {
	rng := rand.New(rand.NewSource(seed))
	words := []string{"squash", "fs ", "block ", "fragment\n", "inode ", "parker ", "zstd ", "xz "}
	var b bytes.Buffer
	for b.Len() < n {
		b.WriteString(words[rng.Intn(len(words))])
		if rng.Intn(7) == 0 {
			fmt.Fprintf(&b, "%d ", rng.Int63())
		}
	}
	return b.Bytes()[:n]
}

// sourceTree describes what buildSourceTree made beyond what Lstat shows.
type sourceTree struct {
	root    string
	devices bool // a char device was created (root only)
}

// buildSourceTree creates the test tree: sizes around the block size, sparse and
// zero files, a 3000-treeEntry directory (so mksquashfs writes a directory
// index), deep nesting, hard and soft links, odd names, special files and
// unusual modes and owners; mtimes are set last, deepest first.
func buildSourceTree(t testing.TB, big bool) sourceTree {
	t.Helper()
	root := filepath.Join(t.TempDir(), "src")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	write := func(name string, data []byte, mode fs.FileMode) {
		t.Helper()
		p := filepath.Join(root, name)
		must(os.MkdirAll(filepath.Dir(p), 0o755))
		must(os.WriteFile(p, data, mode))
		must(os.Chmod(p, mode))
	}
	must(os.MkdirAll(root, 0o755))
	makeRemovable(t, root)
	bs := testBlockSize
	write("empty", nil, 0o644)
	write("one", []byte("x"), 0o644)
	write("bs-1", pseudoText(1, bs-1), 0o644)
	write("bs", pseudoText(2, bs), 0o644)
	write("bs+1", pseudoText(3, bs+1), 0o755)
	write("multi", pseudoText(4, 3*bs+bs/2), 0o600)
	rnd := make([]byte, 2*bs+17)
	rand.New(rand.NewSource(5)).Read(rnd)
	write("random", rnd, 0o644)
	write("zeros", make([]byte, 2*bs+100), 0o644)
	write("setuid", []byte("#!/bin/sh\n"), 0o4755|fs.ModeSetuid)
	must(os.Chmod(filepath.Join(root, "setuid"), 0o755|fs.ModeSetuid|fs.ModeSetgid))
	if os.Geteuid() == 0 {
		write("noperm", []byte("secret"), 0)
	} else {
		write("noperm", []byte("secret"), 0o400) // we could not read 0000 back
	}

	// Sparse: a hole, data in the middle, a trailing hole set by Truncate.
	sp, err := os.Create(filepath.Join(root, "sparse"))
	must(err)
	_, err = sp.WriteAt(pseudoText(6, 1000), 3*int64(bs)+5)
	must(err)
	must(sp.Truncate(8 * int64(bs)))
	must(sp.Close())

	// Names: non-UTF-8, 255 bytes, spaces and newlines.
	write("names/\xff\xfe\x80", []byte("latin"), 0o644)
	write("names/"+strings.Repeat("n", 255), []byte("long"), 0o644)
	write("names/with space\nand newline", []byte("odd"), 0o644)

	// Links.
	write("links/target", pseudoText(7, 5000), 0o644)
	must(os.Link(filepath.Join(root, "links/target"), filepath.Join(root, "links/hard1")))
	must(os.MkdirAll(filepath.Join(root, "other"), 0o755))
	must(os.Link(filepath.Join(root, "links/target"), filepath.Join(root, "other/hard2")))
	must(os.Symlink("target", filepath.Join(root, "links/rel")))
	must(os.Symlink("/etc/passwd", filepath.Join(root, "links/abs")))
	must(os.Symlink("../nowhere/at/all", filepath.Join(root, "links/dangling")))
	must(os.Symlink(strings.Repeat("x/", 1000)+"end", filepath.Join(root, "links/longtarget")))
	must(os.Symlink("..", filepath.Join(root, "links/up")))

	// Special files.
	must(os.MkdirAll(filepath.Join(root, "special"), 0o755))
	must(unix.Mkfifo(filepath.Join(root, "special/fifo"), 0o640))
	must(os.Chmod(filepath.Join(root, "special/fifo"), 0o640))
	tree := sourceTree{root: root}
	if os.Geteuid() == 0 {
		if err := unix.Mknod(filepath.Join(root, "special/null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))); err == nil {
			tree.devices = true
			must(unix.Mknod(filepath.Join(root, "special/blk"), unix.S_IFBLK|0o600, int(unix.Mkdev(259, 70000))))
		}
		must(os.Lchown(filepath.Join(root, "one"), 1234, 5678))
		must(os.Lchown(filepath.Join(root, "links/rel"), 4321, 8765))
	}

	// Deep nesting.
	deep := "deep"
	for i := 0; i < 60; i++ {
		deep = filepath.Join(deep, fmt.Sprintf("d%d", i))
	}
	write(filepath.Join(deep, "leaf"), []byte("bottom"), 0o644)

	// A large directory: the listing spans many metadata blocks, so it gets
	// an extended inode with a directory index.
	n := 300
	if big {
		n = 3000
	}
	must(os.MkdirAll(filepath.Join(root, "many"), 0o755))
	for i := 0; i < n; i++ {
		must(os.WriteFile(filepath.Join(root, "many", fmt.Sprintf("file-%05d", i)), []byte(fmt.Sprint(i)), 0o644))
	}

	// Modes that would stop extraction if applied too early.
	write("ro/child", []byte("still here"), 0o644)
	must(os.MkdirAll(filepath.Join(root, "ro/sub"), 0o755))
	write("ro/sub/grandchild", []byte("deeper"), 0o644)
	must(os.Chmod(filepath.Join(root, "ro/sub"), 0o500))
	must(os.Chmod(filepath.Join(root, "ro"), 0o555))
	must(os.MkdirAll(filepath.Join(root, "sticky"), 0o755))
	must(os.Chmod(filepath.Join(root, "sticky"), 0o777|fs.ModeSticky|fs.ModeSetgid))

	// Distinct mtimes, deepest first so parents keep theirs.
	var paths []string
	must(filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		paths = append(paths, p)
		return err
	}))
	for i := len(paths) - 1; i >= 0; i-- {
		ts := unix.Timespec{Sec: 1_600_000_000 + int64(i)*3607}
		must(unix.UtimesNanoAt(unix.AT_FDCWD, paths[i], []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW))
	}
	return tree
}

// makeRemovable makes sure t.TempDir's cleanup can delete root even when
// not root: the tree has 0555 and 0500 directories.
func makeRemovable(t testing.TB, root string) {
	t.Cleanup(func() {
		filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				os.Chmod(p, 0o700)
			}
			return nil
		})
	})
}

// openTestImage opens path with a Reader.
func openTestImage(t testing.TB, path string) *Reader {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewReader(f, st.Size())
	if err != nil {
		t.Fatalf("NewReader(%s): %v", path, err)
	}
	return r
}

func hashReader(t testing.TB, r io.Reader) string {
	t.Helper()
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%x", h.Sum(nil))
}

// treeEntry is what both sides of a comparison report for one path.
type treeEntry struct {
	mode     fs.FileMode
	uid, gid uint32
	mtime    int64
	size     int64
	link     string
	rdev     uint64
	hash     string
	ino      uint64 // to check hard-link grouping, not compared directly
	nlink    uint32
}

func (e treeEntry) String() string {
	return fmt.Sprintf("mode=%v owner=%d:%d mtime=%d size=%d link=%q rdev=%#x hash=%.12s nlink=%d",
		e.mode, e.uid, e.gid, e.mtime, e.size, e.link, e.rdev, e.hash, e.nlink)
}

// listDisk lists a directory tree on disk, keyed by slash path relative to
// root ("." for root).
func listDisk(t testing.TB, root string) map[string]treeEntry {
	t.Helper()
	out := map[string]treeEntry{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		e := treeEntry{mode: fi.Mode(), uid: st.Uid, gid: st.Gid, mtime: st.Mtim.Sec, ino: st.Ino, nlink: uint32(st.Nlink)}
		switch {
		case fi.Mode().IsRegular():
			e.size = fi.Size()
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			e.hash = hashReader(t, f)
			f.Close()
		case fi.Mode()&fs.ModeSymlink != 0:
			if e.link, err = os.Readlink(p); err != nil {
				return err
			}
			e.size = int64(len(e.link))
		case fi.Mode()&fs.ModeDevice != 0:
			e.rdev = st.Rdev
		}
		out[filepath.ToSlash(rel)] = e
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// listImage lists an image through Walk, reading every file through Open.
func listImage(t testing.TB, r *Reader) map[string]treeEntry {
	t.Helper()
	out := map[string]treeEntry{}
	err := r.Walk(func(n *Node) error {
		if _, dup := out[n.Path]; dup {
			t.Errorf("Walk visited %q twice", n.Path)
		}
		e := treeEntry{mode: n.Mode, uid: n.UID, gid: n.GID, mtime: n.ModTime, link: n.Link, rdev: n.Rdev, ino: uint64(n.Inode), nlink: n.Nlink}
		if n.Mode.IsRegular() || n.Mode&fs.ModeSymlink != 0 {
			e.size = n.Size
		}
		if n.Mode.IsRegular() {
			f, err := r.Open(n)
			if err != nil {
				return err
			}
			e.hash = hashReader(t, f) // io.Copy uses WriteTo: the parallel path
		}
		out[n.Path] = e
		return nil
	})
	if err != nil {
		t.Fatalf("Walk: %v", err)
	}
	return out
}

// compareListings reports differences between two listings, including hard
// link grouping: paths share an inode on one side exactly when they do on
// the other. Directory link counts are not compared (they depend on the
// file system); so are not regular files' when ignoreNlink.
func compareListings(t testing.TB, want, got map[string]treeEntry, ignoreOwner bool) {
	t.Helper()
	for p, w := range want {
		g, ok := got[p]
		if !ok {
			t.Errorf("%q missing", p)
			continue
		}
		ino := [2]uint64{w.ino, g.ino}
		w.ino, g.ino = 0, 0
		if w.mode.IsDir() {
			w.nlink, g.nlink = 0, 0
		}
		if ignoreOwner {
			w.uid, w.gid, g.uid, g.gid = 0, 0, 0, 0
		}
		if w != g {
			t.Errorf("%q:\n\twant %v\n\tgot  %v", p, w, g)
		}
		w.ino, g.ino = ino[0], ino[1]
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			t.Errorf("%q unexpected", p)
		}
	}
	// Hard links: map each side's inode to the other's; it must be a
	// bijection over non-directories.
	fwd, back := map[uint64]uint64{}, map[uint64]uint64{}
	for p, w := range want {
		g, ok := got[p]
		if !ok || w.mode.IsDir() {
			continue
		}
		if x, ok := fwd[w.ino]; ok && x != g.ino {
			t.Errorf("%q: hard link grouping differs", p)
		}
		if x, ok := back[g.ino]; ok && x != w.ino {
			t.Errorf("%q: hard link grouping differs (joined on the reading side)", p)
		}
		fwd[w.ino], back[g.ino] = g.ino, w.ino
	}
}

func TestReaderAgainstMksquashfs(t *testing.T) {
	needMksquashfs(t)
	tree := buildSourceTree(t, !testing.Short())
	want := listDisk(t, tree.root)
	if want["links/hard1"].ino != want["other/hard2"].ino {
		t.Fatal("test tree: hard links not made")
	}
	for _, c := range mksquashfsComps {
		t.Run(c.name, func(t *testing.T) {
			r := openTestImage(t, packMksquashfs(t, tree.root, c.args...))
			if got := r.Compression(); got != c.name {
				t.Errorf("Compression() = %q, want %q", got, c.name)
			}
			got := listImage(t, r)
			compareListings(t, want, got, false)

			// The source root's own times and mode come through too.
			root, err := r.Root()
			if err != nil {
				t.Fatal(err)
			}
			if root.Path != "." || !root.IsDir() {
				t.Errorf("root = %+v", root)
			}
			if !testing.Short() {
				many, err := r.Lookup("many")
				if err != nil {
					t.Fatal(err)
				}
				if many.typ != TypeLDir || many.idxCount == 0 {
					t.Errorf("many: type %d with %d index entries; want an indexed extended directory", many.typ, many.idxCount)
				}
			}
		})
	}
}

func TestLookup(t *testing.T) {
	tree := buildSourceTree(t, true)
	r := openTestImage(t, packMksquashfs(t, tree.root, "-comp", "zstd"))
	// Every name of the indexed directory, and names between them, so each
	// index entry and each block boundary is crossed.
	many, err := r.Lookup("many")
	if err != nil || many.idxCount == 0 {
		t.Fatalf("many: %v, %d index entries", err, many.idxCount)
	}
	for i := 0; i < 3000; i++ {
		name := fmt.Sprintf("many/file-%05d", i)
		n, err := r.Lookup(name)
		if err != nil || n.Path != name {
			t.Fatalf("Lookup(%q) = %v, %v", name, n, err)
		}
		if _, err := r.Lookup(name + "x"); !errors.Is(err, ErrNotExist) {
			t.Fatalf("Lookup(%q): %v, want ErrNotExist", name+"x", err)
		}
	}
	for _, name := range []string{"many/a", "many/file-", "many/zzz"} {
		if _, err := r.Lookup(name); !errors.Is(err, ErrNotExist) {
			t.Fatalf("Lookup(%q): %v, want ErrNotExist", name, err)
		}
	}
	for _, tc := range []struct {
		path string
		mode fs.FileMode
		err  error
	}{
		{".", fs.ModeDir, nil},
		{"", fs.ModeDir, nil},
		{"links/rel", fs.ModeSymlink, nil},
		{"links/rel/", fs.ModeSymlink, nil},
		{"deep/d0/d1/d2", fs.ModeDir, nil},
		{"many/file-00299", 0, nil},
		{"many/file-03000", 0, ErrNotExist},
		{"nope", 0, ErrNotExist},
		{"one/below", 0, ErrNotExist},
		{"links/rel/target", 0, ErrNotExist}, // symlinks are not followed
	} {
		n, err := r.Lookup(tc.path)
		if !errors.Is(err, tc.err) || err != nil && tc.err == nil {
			t.Errorf("Lookup(%q): err %v, want %v", tc.path, err, tc.err)
			continue
		}
		if err == nil && n.Mode.Type() != tc.mode {
			t.Errorf("Lookup(%q): mode %v, want type %v", tc.path, n.Mode, tc.mode)
		}
	}
}

// TestFileReadAt reads files at awkward offsets and lengths, crossing block
// boundaries, holes and the fragment tail, and mixes Read with WriteTo.
func TestFileReadAt(t *testing.T) {
	tree := buildSourceTree(t, false)
	r := openTestImage(t, packMksquashfs(t, tree.root, "-comp", "gzip"))
	rng := rand.New(rand.NewSource(1))
	for _, name := range []string{"bs-1", "bs", "bs+1", "multi", "sparse", "zeros", "links/target", "one", "empty", "random"} {
		want, err := os.ReadFile(filepath.Join(tree.root, name))
		if err != nil {
			t.Fatal(err)
		}
		n, err := r.Lookup(name)
		if err != nil {
			t.Fatal(err)
		}
		f, err := r.Open(n)
		if err != nil {
			t.Fatal(err)
		}
		if f.Size() != int64(len(want)) {
			t.Fatalf("%s: Size %d, want %d", name, f.Size(), len(want))
		}
		for i := 0; i < 50; i++ {
			off := rng.Int63n(int64(len(want)) + 10)
			buf := make([]byte, rng.Intn(3*testBlockSize))
			m, err := f.ReadAt(buf, off)
			wantN := max(0, min(len(buf), len(want)-int(off)))
			if m != wantN || !bytes.Equal(buf[:m], want[min(int(off), len(want)):][:m]) {
				t.Fatalf("%s: ReadAt(%d, %d) = %d, %v; want %d bytes", name, len(buf), off, m, err, wantN)
			}
			if m < len(buf) && err != io.EOF {
				t.Fatalf("%s: short ReadAt without EOF: %v", name, err)
			}
		}
		// Read a little, then WriteTo the rest.
		head := make([]byte, min(len(want), 1000))
		if _, err := io.ReadFull(f, head); err != nil {
			t.Fatal(err)
		}
		var rest bytes.Buffer
		if _, err := f.WriteTo(&rest); err != nil {
			t.Fatal(err)
		}
		if got := append(head, rest.Bytes()...); !bytes.Equal(got, want) {
			t.Fatalf("%s: Read+WriteTo differs from the source", name)
		}
		if m, err := f.Read(make([]byte, 1)); m != 0 || err != io.EOF {
			t.Fatalf("%s: Read at end = %d, %v", name, m, err)
		}
	}
}

// smallMksquashfsImage packs a small tree and returns the image.
func smallMksquashfsImage(t testing.TB, args ...string) []byte {
	t.Helper()
	needMksquashfs(t)
	src := filepath.Join(t.TempDir(), "src")
	for i, size := range []int{0, 10, 5000, 70000} {
		p := filepath.Join(src, fmt.Sprintf("d%d", i%2), fmt.Sprintf("f%d", i))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, pseudoText(int64(i), size), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("d0/f0", filepath.Join(src, "link")); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(packMksquashfs(t, src, append([]string{"-b", "4096"}, args...)...))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// readImageFully walks an image and reads every file, as the fuzz target does;
// it returns the first error.
func readImageFully(img []byte, size int64, limit int64) error {
	return readAllAtLimit(bytes.NewReader(img), size, limit)
}

// corruptOK reports whether err is an acceptable outcome for damaged input:
// none (the damage hit padding or an unused byte), or a format or
// compression error.
func corruptOK(err error) bool {
	return err == nil || errors.Is(err, ErrFormat) || errors.Is(err, ErrCompression)
}

func TestCorruptImages(t *testing.T) {
	for _, c := range mksquashfsComps {
		t.Run(c.name, func(t *testing.T) {
			img := smallMksquashfsImage(t, append([]string{"-nopad"}, c.args...)...)
			if err := readImageFully(img, int64(len(img)), 1<<20); err != nil {
				t.Fatalf("intact image: %v", err)
			}
			// Truncated files: NewReader must notice from bytes_used.
			for cut := 0; cut < len(img); cut += 1 + len(img)/200 {
				if err := readImageFully(img[:cut], int64(cut), 1<<20); !errors.Is(err, ErrFormat) {
					t.Errorf("truncated at %d: %v, want ErrFormat", cut, err)
				}
			}
			// Truncated data behind a size that claims more: every read
			// must fail cleanly.
			for cut := SuperblockSize; cut < len(img); cut += 1 + len(img)/100 {
				short := &shortReader{img[:cut]}
				if err := readAllAt(short, int64(len(img))); err == nil || !errors.Is(err, ErrFormat) && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Errorf("data cut at %d: %v", cut, err)
				}
			}
			// Flipped bytes, one at a time and in bursts.
			rng := rand.New(rand.NewSource(int64(len(img))))
			for i := 0; i < 400; i++ {
				bad := bytes.Clone(img)
				for j := 0; j <= i%4; j++ {
					bad[rng.Intn(len(bad))] ^= byte(1 + rng.Intn(255))
				}
				if err := readImageFully(bad, int64(len(bad)), 1<<20); !corruptOK(err) {
					t.Errorf("flip %d: %v", i, err)
				}
			}
		})
	}
}

// shortReader is an io.ReaderAt whose data ends early.
type shortReader struct{ b []byte }

func (s *shortReader) ReadAt(p []byte, off int64) (int, error) {
	return bytes.NewReader(s.b).ReadAt(p, off)
}

func readAllAt(ra io.ReaderAt, size int64) error { return readAllAtLimit(ra, size, -1) }

// readAllAtLimit walks the image in ra and reads every file, at most limit
// bytes of each (all of it when limit < 0); it returns the first error.
func readAllAtLimit(ra io.ReaderAt, size, limit int64) error {
	r, err := NewReader(ra, size)
	if err != nil {
		return err
	}
	return r.Walk(func(n *Node) error {
		if !n.Mode.IsRegular() {
			return nil
		}
		f, err := r.Open(n)
		if err != nil {
			return err
		}
		var src io.Reader = f
		if limit >= 0 {
			src = io.LimitReader(f, limit)
		}
		_, err = io.Copy(io.Discard, src)
		return err
	})
}

func TestNewReaderRejects(t *testing.T) {
	img := smallMksquashfsImage(t, "-comp", "gzip")
	le := func(b []byte, off int, v uint64, n int) []byte {
		b = bytes.Clone(b)
		for i := 0; i < n; i++ {
			b[off+i] = byte(v >> (8 * i))
		}
		return b
	}
	for _, tc := range []struct {
		name string
		img  []byte
		want error
	}{
		{"short", img[:50], ErrFormat},
		{"magic", le(img, 0, 0x12345678, 4), ErrFormat},
		{"version", le(img, 28, 3, 2), ErrFormat},
		{"block size", le(img, 12, 3000, 4), ErrFormat},
		{"block log", le(img, 22, 13, 2), ErrFormat},
		{"lzma", le(img, 20, CompLZMA, 2), ErrCompression},
		{"lzo", le(img, 20, CompLZO, 2), ErrCompression},
		{"unknown compressor", le(img, 20, 99, 2), ErrFormat},
		{"bytes used", le(img, 40, uint64(len(img))+1, 8), ErrFormat},
		{"no ids", le(img, 26, 0, 2), ErrFormat},
		{"inode table after dir table", le(img, 64, 1<<40, 8), ErrFormat},
		{"id table outside", le(img, 48, 1<<40, 8), ErrFormat},
		{"fragment table outside", le(img, 80, 1<<40, 8), ErrFormat},
		{"huge fragment count", le(img, 16, 1<<31, 4), ErrFormat},
		{"root ref", le(img, 32, 1<<47, 8), ErrFormat},
	} {
		r, err := NewReader(bytes.NewReader(tc.img), int64(len(tc.img)))
		if err == nil {
			_, err = r.Root()
		}
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
}

// TestReaderWriterRoundTrip reads what our own Writer produced. The writer
// is judged by unsquashfs and the kernel elsewhere; this checks the two
// halves agree, including on options mksquashfs does not use.
func TestReaderWriterRoundTrip(t *testing.T) {
	tree := buildSourceTree(t, false)
	want := listDisk(t, tree.root)
	es := entriesOf(t, tree.root)
	for _, comp := range Compressions {
		t.Run(comp, func(t *testing.T) {
			opt := DefaultOptions()
			opt.Compression = comp
			opt.Level, _, _ = DefaultLevel(comp)
			opt.BlockSize = testBlockSize
			opt.KeepOwner = true
			path, st := writeImage(t, es, opt)
			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			r, err := NewReader(f, st.Size)
			if err != nil {
				t.Fatal(err)
			}
			if r.Compression() != comp {
				t.Errorf("Compression() = %q, want %q", r.Compression(), comp)
			}
			compareListings(t, want, listImage(t, r), false)
		})
	}
}

// TestXZCheck: the xz decompressor verifies the stream's integrity check,
// since squashfs itself has none, and rejects BCJ filter chains it cannot
// decode as ErrCompression.
func TestXZCheck(t *testing.T) {
	data := pseudoText(9, 20000)
	for _, check := range []byte{xz.None, xz.CRC32, xz.CRC64, xz.SHA256} {
		var b bytes.Buffer
		w, err := xz.WriterConfig{DictCap: 1 << 16, CheckSum: check}.NewWriter(&b)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(data)
		w.Close()
		stream := b.Bytes()
		d := xzDecompressor{}
		out, err := d.decompress(make([]byte, 0, 32<<10), stream)
		if err != nil || !bytes.Equal(out, data) {
			t.Fatalf("check %d: %v", check, err)
		}
		if _, err := d.decompress(make([]byte, 0, 1000), stream); !errors.Is(err, ErrFormat) {
			t.Errorf("check %d: small buffer: %v, want ErrFormat", check, err)
		}
		if check == xz.None {
			continue
		}
		// Any damage to the block is either caught or harmless: whatever
		// decodes without error is the original data. (The LZMA2 decoder
		// tolerates some chunk-size fields being off; the check still
		// covers the output.) The index and footer after the first block
		// are not read.
		_, hlen, _, _ := xzBlockData(stream)
		caught := 0
		for i := xzStreamHeader + hlen; i < len(stream); i += 1 + i%13 {
			bad := bytes.Clone(stream)
			bad[i] ^= 1
			got, err := d.decompress(make([]byte, 0, 32<<10), bad)
			if err != nil {
				caught++
				if !errors.Is(err, ErrFormat) {
					t.Errorf("check %d: flip at %d: %v", check, i, err)
				}
			} else if !bytes.Equal(got, data) {
				t.Errorf("check %d: flip at %d: wrong output, no error", check, i)
			}
		}
		if caught == 0 {
			t.Errorf("check %d: no damage detected", check)
		}
	}
}

// eofReader returns io.EOF with a read that reaches the end of its data, as
// io.ReaderAt allows (io.SectionReader does so).
type eofReader struct{ b []byte }

func (e eofReader) ReadAt(p []byte, off int64) (int, error) {
	n, err := bytes.NewReader(e.b).ReadAt(p, off)
	if err == nil && off+int64(n) == int64(len(e.b)) {
		err = io.EOF
	}
	return n, err
}

func TestReaderAtEOF(t *testing.T) {
	for _, c := range mksquashfsComps {
		img := smallMksquashfsImage(t, append([]string{"-nopad"}, c.args...)...)
		if err := readAllAt(eofReader{img}, int64(len(img))); err != nil {
			t.Errorf("%s: %v", c.name, err)
		}
	}
}

// TestEmptyImage: an empty root directory gives an empty directory table.
func TestEmptyImage(t *testing.T) {
	src := t.TempDir()
	for _, c := range mksquashfsComps {
		r := openTestImage(t, packMksquashfs(t, src, c.args...))
		n := 0
		if err := r.Walk(func(*Node) error { n++; return nil }); err != nil || n != 1 {
			t.Errorf("%s: Walk: %d nodes, %v", c.name, n, err)
		}
		if err := r.Extract(filepath.Join(t.TempDir(), "out"), ExtractOptions{}); err != nil {
			t.Errorf("%s: Extract: %v", c.name, err)
		}
	}
}

// TestRecordLayout checks the hand-written record decoders against
// encoding/binary and the structs of format.go.
func TestRecordLayout(t *testing.T) {
	rng := rand.New(rand.NewSource(3))
	for _, v := range []any{
		&Superblock{}, &inodeHeader{}, &dirInode{}, &ldirInode{}, &dirIndex{}, &fileInode{}, &lfileInode{},
		&symlinkInode{}, &devInode{}, &ipcInode{}, &dirHeader{}, &dirEntry{}, &fragmentEntry{}, &lz4Options{},
	} {
		if got, want := recordSize(v), binary.Size(v); got != want {
			t.Errorf("%T: recordSize %d, binary.Size %d", v, got, want)
			continue
		}
		b := make([]byte, recordSize(v))
		rng.Read(b)
		want := reflect.New(reflect.TypeOf(v).Elem()).Interface()
		if _, err := binary.Decode(b, binary.LittleEndian, want); err != nil {
			t.Fatal(err)
		}
		decodeRecord(b, v)
		if !reflect.DeepEqual(v, want) {
			t.Errorf("%T: decodeRecord %+v, binary.Decode %+v", v, v, want)
		}
	}
}

// TestConcurrentReads: one Reader serves several goroutines at once (the
// metadata and fragment caches are shared); run with -race.
func TestConcurrentReads(t *testing.T) {
	tree := buildSourceTree(t, false)
	r := openTestImage(t, packMksquashfs(t, tree.root, "-comp", "zstd"))
	want := listImage(t, r)
	errs := make(chan error, 4)
	for g := 0; g < 4; g++ {
		go func() {
			got := map[string]string{}
			err := r.Walk(func(n *Node) error {
				if !n.Mode.IsRegular() {
					return nil
				}
				f, err := r.Open(n)
				if err != nil {
					return err
				}
				h := sha256.New()
				if _, err := io.Copy(h, f); err != nil {
					return err
				}
				got[n.Path] = fmt.Sprintf("%x", h.Sum(nil))
				return nil
			})
			for p, h := range got {
				if err == nil && want[p].hash != h {
					err = fmt.Errorf("%s: content differs", p)
				}
			}
			errs <- err
		}()
	}
	for g := 0; g < 4; g++ {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

// TestDecompressLimits: every decompressor refuses output beyond the
// buffer it is given, and zlib's checksum is verified even when the output
// exactly fills the buffer.
func TestDecompressLimits(t *testing.T) {
	data := pseudoText(11, 4096)
	var zb bytes.Buffer
	zw := zlib.NewWriter(&zb)
	zw.Write(data)
	zw.Close()
	zenc, _ := zstd.NewWriter(nil)
	lz := make([]byte, lz4.CompressBlockBound(len(data)))
	n, err := lz4.CompressBlock(data, lz, nil)
	if err != nil {
		t.Fatal(err)
	}
	lzOpts := []byte{1, 0, 0, 0, 0, 0, 0, 0}
	for _, tc := range []struct {
		id   uint16
		opts []byte
		enc  []byte
	}{
		{CompGzip, nil, zb.Bytes()},
		{CompZstd, nil, zenc.EncodeAll(data, nil)},
		{CompLZ4, lzOpts, lz[:n]},
	} {
		d, err := newDecompressor(tc.id, tc.opts, MaxBlockSize)
		if err != nil {
			t.Fatal(err)
		}
		if out, err := d.decompress(make([]byte, 0, len(data)), tc.enc); err != nil || !bytes.Equal(out, data) {
			t.Errorf("comp %d: exact buffer: %v", tc.id, err)
		}
		if _, err := d.decompress(make([]byte, 0, len(data)-1), tc.enc); !errors.Is(err, ErrFormat) {
			t.Errorf("comp %d: small buffer: %v, want ErrFormat", tc.id, err)
		}
	}
	bad := bytes.Clone(zb.Bytes())
	bad[len(bad)-1] ^= 1 // Adler-32
	d, _ := newDecompressor(CompGzip, nil, MaxBlockSize)
	for _, c := range []int{len(data), 2 * len(data)} {
		if _, err := d.decompress(make([]byte, 0, c), bad); !errors.Is(err, ErrFormat) {
			t.Errorf("zlib with a bad checksum, buffer %d: %v", c, err)
		}
	}
}
