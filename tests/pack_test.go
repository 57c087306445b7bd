package tests

// End-to-end tests of `parker TARGET`: determinism, SOURCE_DATE_EPOCH,
// exclusions, a workdir that is only read, the default output, dedup and
// sparse files (its error paths are in pack_errors_test.go). Every output
// is also checked with unsquashfs and a kernel loop mount at its payload
// offset (checkPacked).

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/parkerpack/parker/image"
	"github.com/parkerpack/parker/image/trailer"
	"github.com/parkerpack/parker/internal/treecmp"
	"github.com/parkerpack/parker/internal/treegen"
)

// checkPacked verifies that a packed file's trailer reads and that both
// unsquashfs and (as root) the kernel accept the payload at its offset, as
// the README tells users to do. It returns the trailer.
func checkPacked(t *testing.T, file string) *trailer.Trailer {
	t.Helper()
	tr := readTrailer(t, file)
	off := strconv.FormatUint(tr.Offset, 10)
	if out, err := exec.Command("unsquashfs", "-o", off, "-l", "-n", file).CombinedOutput(); err != nil {
		t.Errorf("unsquashfs -o %s -l %s: %v\n%s", off, file, err, out)
	}
	if os.Geteuid() == 0 {
		mnt := tempDir(t, "mnt")
		out, err := exec.Command("mount", "-t", "squashfs", "-o", "loop,ro,offset="+off, file, mnt).CombinedOutput()
		if err != nil {
			t.Errorf("mount -o loop,ro,offset=%s %s: %v\n%s", off, file, err, out)
		} else {
			if _, err := os.ReadDir(mnt); err != nil {
				t.Errorf("read kernel mount of %s: %v", file, err)
			}
			if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
				t.Errorf("umount: %v\n%s", err, out)
			}
		}
	}
	return tr
}

func readFile(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestPackDeterministic(t *testing.T) {
	seed := int64(7)
	opt := treegen.Options{Special: true, Root: os.Geteuid() == 0, Wide: 3000, Depth: 10}
	a := tempDir(t, "det-a")
	if _, err := treegen.Generate(a, seed, opt); err != nil {
		t.Fatal(err)
	}
	// The same tree created in another order, on tmpfs when we can mount
	// one (tmpfs lists a directory in reverse creation order, ext4 in hash
	// order), so the file system lists the entries differently.
	b := tempDir(t, "det-b")
	if os.Geteuid() == 0 {
		run(t, "mount", "-t", "tmpfs", "-o", "size=256m", "tmpfs", b)
		t.Cleanup(func() { exec.Command("umount", b).Run() })
	}
	opt.Shuffle = true
	if _, err := treegen.Generate(b, seed, opt); err != nil {
		t.Fatal(err)
	}
	// the roots too: a tmpfs root starts as 1777
	for _, d := range []string{a, b} {
		st, _ := os.Stat(a)
		os.Chmod(d, 0o755)
		os.Chtimes(d, st.ModTime(), st.ModTime())
	}
	names := func(d string) string {
		f, _ := os.Open(filepath.Join(d, "wide"))
		defer f.Close()
		n, _ := f.Readdirnames(5)
		return strings.Join(n, ",")
	}
	t.Logf("listing order: %s | %s", names(a), names(b))

	out := tempDir(t, "det-out")
	outs := map[string]string{}
	for _, c := range []struct{ name, dir, procs string }{
		{"a-1cpu", a, "1"}, {"a-2cpu", a, "2"}, {"b-2cpu", b, "2"}, {"b-1cpu", b, "1"},
	} {
		o := filepath.Join(out, c.name)
		r := runParker(t, "", []string{"GOMAXPROCS=" + c.procs}, "-q", "-C", c.dir, "-o", o, "run.sh")
		if r.Code != 0 {
			t.Fatalf("%s: exit %d: %s", c.name, r.Code, r.Stderr)
		}
		outs[c.name] = o
	}
	ref := readFile(t, outs["a-1cpu"])
	for _, n := range []string{"a-2cpu", "b-2cpu", "b-1cpu"} {
		got := readFile(t, outs[n])
		if !bytes.Equal(got, ref) {
			i := 0
			for i < len(got) && i < len(ref) && got[i] == ref[i] {
				i++
			}
			t.Errorf("%s differs from a-1cpu: %d vs %d bytes, first difference at byte %d", n, len(got), len(ref), i)
		}
	}
	checkPacked(t, outs["a-1cpu"])
}

func TestPackSourceDateEpoch(t *testing.T) {
	fx := smallTree(t)
	const epoch = 1300000000 // older than most of the tree's mtimes
	pk := oracleCase(t, fx, packOpts{comp: image.Zstd, env: []string{fmt.Sprintf("SOURCE_DATE_EPOCH=%d", epoch)}},
		treecmp.Expect{Clamp: epoch})
	f, _ := os.Open(pk.File)
	defer f.Close()
	if sb := readSuperblock(t, f, int64(pk.Tr.Offset)); sb.ModTime != epoch {
		t.Errorf("superblock time %d with SOURCE_DATE_EPOCH=%d", sb.ModTime, epoch)
	}

	// Without it, the image time is the newest mtime in the tree, so the
	// output still depends on the tree alone.
	newest := int64(0)
	for _, e := range sourceView(t, fx.Dir).Entries {
		newest = max(newest, e.Mtime)
	}
	out := pack(t, fx.Dir, fx.Target, "-q")
	g, _ := os.Open(out)
	defer g.Close()
	tr := checkPacked(t, out)
	if sb := readSuperblock(t, g, int64(tr.Offset)); int64(sb.ModTime) != newest {
		t.Errorf("superblock time %d, want the newest mtime %d", sb.ModTime, newest)
	}

	r := runParker(t, "", []string{"SOURCE_DATE_EPOCH=yesterday"}, "-q", "-C", fx.Dir, "-o", filepath.Join(tempDir(t, "o"), "x"), fx.Target)
	if r.Code == 0 {
		t.Errorf("SOURCE_DATE_EPOCH=yesterday accepted; want an error")
	}
}

// smallWorkdir makes a little tree with a target, a subdirectory and a
// hard link; the tests below that change their workdir use it.
func smallWorkdir(t *testing.T) string {
	d := tempDir(t, "wd")
	for p, c := range map[string]string{
		"app":             "#!/bin/sh\necho app\n",
		"data/a.txt":      "aaa",
		"data/b.log":      "log",
		"data/deep/c.log": "log2",
		"secret/key":      "k",
		"secret/keep":     "keep me",
		"build/obj.o":     strings.Repeat("o", 5000),
		"notes.md":        "# notes",
	} {
		p = filepath.Join(d, p)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.Chmod(filepath.Join(d, "app"), 0o755)
	return d
}

func TestPackOutputInsideWorkdir(t *testing.T) {
	wd := smallWorkdir(t)
	// Default output: TARGETd in the current directory, which is the
	// workdir; run twice so the second run finds the first's output, and
	// says nothing about leaving it out: that is expected.
	for i, quiet := range []string{"-q", "-C."} {
		r := runParker(t, wd, nil, quiet, "app")
		if r.Code != 0 {
			t.Fatalf("run %d: exit %d: %s", i, r.Code, r.Stderr)
		}
		if i == 1 && (!strings.HasPrefix(r.Stderr, "appd: ") || strings.Count(r.Stderr, "\n") != 1) {
			t.Errorf("re-pack: stderr %q, want the summary alone", r.Stderr)
		}
	}
	out := filepath.Join(wd, "appd")
	check := func(o string, x treecmp.Expect) {
		t.Helper()
		tr := checkPacked(t, o)
		v, err := ourView(o, int64(tr.Offset), int64(tr.Size))
		if err != nil {
			t.Fatal(err)
		}
		p, _ := treecmp.Compare(sourceViewFresh(t, wd), v, x)
		report(t, "image.Reader on "+filepath.Base(o), p, nil)
	}
	// The pack's temp file, beside the output, changes the mtime of the
	// output's directory while the pack runs.
	check(out, treecmp.Expect{Clamp: -1, Exclude: map[string]bool{"appd": true}, IgnoreMtime: map[string]bool{".": true}})
	// and -o into a subdirectory of the workdir: appd, an earlier packed
	// file, is left out too
	out2 := filepath.Join(wd, "data", "app.packed")
	pack(t, wd, "app", "-q", "-o", out2)
	check(out2, treecmp.Expect{Clamp: -1, Exclude: map[string]bool{"data/app.packed": true, "appd": true}, IgnoreMtime: map[string]bool{"data": true}})
	entries, _ := os.ReadDir(wd)
	for _, e := range entries {
		if strings.Contains(e.Name(), "parker-tmp") || strings.HasPrefix(e.Name(), ".") {
			t.Errorf("left behind in the workdir: %s", e.Name())
		}
	}
}

// sourceViewFresh is sourceView without the cache, for trees that change.
func sourceViewFresh(t *testing.T, dir string) *treecmp.View {
	v, err := treecmp.Lstat("source", dir)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// treeSnapshot records everything about a tree that a reader must not change:
// names, types, modes, owners, sizes, mtimes and ctimes (a ctime moves on
// any write, chmod, chown or link).
func treeSnapshot(t *testing.T, root string) map[string]string {
	s := map[string]string{}
	err := filepath.Walk(root, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		st := info.Sys().(*syscall.Stat_t)
		s[p] = fmt.Sprintf("%o %d:%d %d m%d.%d c%d.%d", st.Mode, st.Uid, st.Gid, st.Size, st.Mtim.Sec, st.Mtim.Nsec, st.Ctim.Sec, st.Ctim.Nsec)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestPackWorkdirUnchanged(t *testing.T) {
	fx := smallTree(t)
	before := treeSnapshot(t, fx.Dir)
	out := pack(t, fx.Dir, fx.Target, "-q")
	checkPacked(t, out)
	wd := smallWorkdir(t)
	os.WriteFile(filepath.Join(wd, ".parkerignore"), []byte("*.log\n"), 0o644)
	before2 := treeSnapshot(t, wd)
	pack(t, wd, "app", "-v", "--exclude", "build")
	for _, c := range []struct {
		dir    string
		before map[string]string
	}{{fx.Dir, before}, {wd, before2}} {
		after := treeSnapshot(t, c.dir)
		for p, b := range c.before {
			if a, ok := after[p]; !ok {
				t.Errorf("%q vanished from the workdir", p)
			} else if a != b {
				t.Errorf("%q changed: %s -> %s", p, b, a)
			}
		}
		for p := range after {
			if _, ok := c.before[p]; !ok {
				t.Errorf("%q appeared in the workdir", p)
			}
		}
	}
}

func TestPackExclude(t *testing.T) {
	wd := smallWorkdir(t)
	os.WriteFile(filepath.Join(wd, ".parkerignore"), []byte("# comment\nsecret\n!secret/keep\n**/*.log\n"), 0o644)
	// one name of a hard-link pair excluded: the other must have nlink 1
	if err := os.Link(filepath.Join(wd, "data/a.txt"), filepath.Join(wd, "data/a-link.txt")); err != nil {
		t.Fatal(err)
	}
	out := pack(t, wd, "app", "-q", "--exclude", "build", "--exclude", "notes.md", "--exclude", "data/a-link.txt")
	tr := checkPacked(t, out)
	v, err := ourView(out, int64(tr.Offset), int64(tr.Size))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"app", "data", "data/a.txt", "data/deep", "secret/keep"} {
		if v.Entries[p] == nil {
			t.Errorf("%s missing from the image", p)
		}
	}
	for _, p := range []string{"build", "build/obj.o", "notes.md", "data/b.log", "data/deep/c.log", "secret/key", "data/a-link.txt"} {
		if v.Entries[p] != nil {
			t.Errorf("%s is in the image but excluded", p)
		}
	}
	// and nothing else differs, for our reader and the kernel
	ex := map[string]bool{"build": true, "notes.md": true, "data/b.log": true, "data/deep/c.log": true, "secret/key": true, "data/a-link.txt": true}
	if v.Entries[".parkerignore"] == nil {
		ex[".parkerignore"] = true
	}
	src := sourceViewFresh(t, wd)
	p, _ := treecmp.Compare(src, v, treecmp.Expect{Clamp: -1, Exclude: ex})
	report(t, "image.Reader", p, nil)
	if os.Geteuid() == 0 {
		mnt := tempDir(t, "mnt")
		mountImage(t, out, int64(tr.Offset), mnt)
		kv, err := treecmp.Lstat("kernel", mnt)
		if err != nil {
			t.Fatal(err)
		}
		p, _ := treecmp.Compare(src, kv, treecmp.Expect{Clamp: -1, Exclude: ex})
		report(t, "kernel", p, nil)
	}
	// The target itself cannot be excluded.
	r := runParker(t, "", nil, "-q", "-C", wd, "-o", filepath.Join(tempDir(t, "o"), "x"), "--exclude", "app", "app")
	if r.Code != 1 {
		t.Errorf("--exclude of the target: exit %d, want 1 (stderr %q)", r.Code, r.Stderr)
	}
}

// payloadSize packs dir and returns the payload size.
func payloadSize(t *testing.T, dir string) int64 {
	out := pack(t, dir, "run", "-q", "--compression", "zstd")
	return int64(checkPacked(t, out).Size)
}

func TestPackDedup(t *testing.T) {
	mk := func(names []string, same bool) string {
		d := tempDir(t, "dedup")
		os.WriteFile(filepath.Join(d, "run"), []byte("#!/bin/sh\n"), 0o755)
		for i, n := range names {
			b := make([]byte, 1<<20)
			seed := [32]byte{1}
			if !same {
				seed[1] = byte(i)
			}
			rand.NewChaCha8(seed).Read(b)
			os.WriteFile(filepath.Join(d, n), b, 0o644)
		}
		return d
	}
	one := payloadSize(t, mk([]string{"a"}, true))
	two := payloadSize(t, mk([]string{"a", "sub-b"}, true))
	diff := payloadSize(t, mk([]string{"a", "sub-b"}, false))
	t.Logf("payload: one 1 MiB file %d, two identical %d, two different %d", one, two, diff)
	if two-one > 16<<10 {
		t.Errorf("a duplicate 1 MiB file grew the payload by %d bytes; want only metadata (< 16 KiB)", two-one)
	}
	if diff-one < 1<<20 {
		t.Errorf("a different 1 MiB random file grew the payload by only %d bytes", diff-one)
	}
}

func TestPackSparse(t *testing.T) {
	d := tempDir(t, "sparse")
	os.WriteFile(filepath.Join(d, "run"), []byte("#!/bin/sh\n"), 0o755)
	f, err := os.Create(filepath.Join(d, "huge"))
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 300<<10)
	rand.NewChaCha8([32]byte{9}).Read(data)
	for _, off := range []int64{0, 1 << 30, 3<<30 + 4097, 5<<30 - int64(len(data))} {
		f.WriteAt(data, off)
	}
	f.Truncate(5 << 30)
	f.Close()
	start := time.Now()
	out := pack(t, d, "run", "-q")
	took := time.Since(start)
	tr := checkPacked(t, out)
	t.Logf("5 GiB sparse file: payload %d bytes, packed in %v", tr.Size, took)
	if tr.Size > 4<<20 {
		t.Errorf("5 GiB sparse file with 1.2 MB of data: payload %d bytes, want < 4 MiB", tr.Size)
	}
	if took > 20*time.Second {
		t.Errorf("5 GiB sparse file took %v to pack; holes should be skipped, not read", took)
	}
	v, err := ourView(out, int64(tr.Offset), int64(tr.Size))
	if err != nil {
		t.Fatal(err)
	}
	p, _ := treecmp.Compare(sourceViewFresh(t, d), v, treecmp.Expect{Clamp: -1})
	report(t, "image.Reader", p, nil)
}

// TestPackDefaultOutput: without -o the output is the target's base name
// plus "d" in the current directory, mode 0755; the trailer names the
// target by its path in the workdir.
func TestPackDefaultOutput(t *testing.T) {
	wd := smallWorkdir(t)
	os.WriteFile(filepath.Join(wd, "data", "tool"), []byte("#!/bin/sh\n"), 0o755)
	cwd := tempDir(t, "cwd")
	r := runParker(t, cwd, nil, "-q", "-C", wd, "data/tool")
	if r.Code != 0 {
		t.Fatalf("exit %d: %s", r.Code, r.Stderr)
	}
	out := filepath.Join(cwd, "toold")
	st, err := os.Stat(out)
	if err != nil {
		t.Fatalf("default output: %v", err)
	}
	if st.Mode().Perm() != 0o755 {
		t.Errorf("output mode %v, want 0755", st.Mode().Perm())
	}
	if tr := checkPacked(t, out); tr.Target != "data/tool" {
		t.Errorf("trailer target %q, want data/tool", tr.Target)
	}
	if left, _ := os.ReadDir(cwd); len(left) != 1 {
		t.Errorf("current directory holds %d entries, want only toold", len(left))
	}
}

// TestPackLongName: a 254-byte target's default output has 255 bytes, the
// longest name the file system takes, and packs, with the real binary and
// the output inside the workdir; the packed file runs its target.
func TestPackLongName(t *testing.T) {
	wd := tempDir(t, "long")
	name := strings.Repeat("b", 254)
	os.WriteFile(filepath.Join(wd, name), []byte("#!/bin/sh\necho long\n"), 0o755)
	for i := range 2 {
		if r := runParker(t, wd, nil, "-q", name); r.Code != 0 {
			t.Fatalf("pack %d: exit %d: %s", i, r.Code, r.Stderr)
		}
	}
	out := filepath.Join(wd, name+"d")
	if tr := checkPacked(t, out); tr.Target != name {
		t.Errorf("trailer target %q", tr.Target)
	}
	if left, _ := os.ReadDir(wd); len(left) != 2 {
		t.Errorf("workdir holds %d entries, want the target and its output", len(left))
	}
}
