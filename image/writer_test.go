package image

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io/fs"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// entriesOf walks dir the way the CLI does and returns its entries.
func entriesOf(t testing.TB, dir string) []Entry {
	t.Helper()
	var es []Entry
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		rel, _ := filepath.Rel(dir, p)
		e := Entry{Path: filepath.ToSlash(rel), Mode: fi.Mode(), UID: st.Uid, GID: st.Gid,
			ModTime: st.Mtim.Sec, Rdev: st.Rdev}
		switch {
		case fi.Mode().IsRegular():
			e.Size, e.Source = fi.Size(), p
		case fi.Mode()&fs.ModeSymlink != 0:
			e.Link, _ = os.Readlink(p)
		}
		if !fi.IsDir() && st.Nlink > 1 {
			e.Dev, e.Ino = st.Dev, st.Ino
		}
		es = append(es, e)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return es
}

func writeImage(t testing.TB, es []Entry, opt Options) (string, Stats) {
	t.Helper()
	img := filepath.Join(t.TempDir(), "img.sqfs")
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w, err := NewWriter(f, 0, opt)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range es {
		if err := w.Add(e); err != nil {
			t.Fatal(err)
		}
	}
	st, err := w.Finish()
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(st.Size); err != nil {
		t.Fatal(err)
	}
	return img, st
}

// smallTree makes a tree exercising every writer feature at small scale.
func smallTree(t testing.TB, bs int) string {
	t.Helper()
	dir := t.TempDir()
	rng := rand.New(rand.NewSource(1))
	write := func(name string, b []byte) {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	text := func(n int) []byte {
		var b bytes.Buffer
		for b.Len() < n {
			fmt.Fprintf(&b, "line %d of some text %x\n", b.Len(), rng.Int63())
		}
		return b.Bytes()[:n]
	}
	random := func(n int) []byte { b := make([]byte, n); rng.Read(b); return b }
	write("empty", nil)
	write("exact", text(bs))
	write("exact-1", text(bs-1))
	write("exact+1", text(bs+1))
	write("multi.txt", text(5*bs+123))
	write("random.bin", random(3*bs+7))
	write("zeros", make([]byte, 3*bs))
	write("dup1/a", text(2*bs+9))
	write("dup2/a", func() []byte { b, _ := os.ReadFile(filepath.Join(dir, "dup1/a")); return b }())
	write("small/x", []byte("x"))
	write("small/y", []byte("hello\n"))
	sparse := filepath.Join(dir, "sparse")
	f, _ := os.Create(sparse)
	f.WriteAt([]byte("data in the middle"), int64(7*bs))
	f.Truncate(int64(20*bs + 5))
	f.Close()
	for i := range 3000 {
		write(fmt.Sprintf("big/entry-%05d-%s", i, strings.Repeat("n", i%40)), []byte(fmt.Sprint(i)))
	}
	deep := dir
	for i := range 40 {
		deep = filepath.Join(deep, fmt.Sprintf("d%d", i))
	}
	os.MkdirAll(deep, 0o755)
	write(filepath.Join(strings.TrimPrefix(deep, dir), "leaf"), []byte("leaf"))
	os.Link(filepath.Join(dir, "multi.txt"), filepath.Join(dir, "hardlink"))
	os.Symlink("multi.txt", filepath.Join(dir, "link"))
	os.Symlink("/nowhere/at/all", filepath.Join(dir, "dangling"))
	write(strings.Repeat("L", 255), []byte("long name"))
	write("bad-\xff\xfe-utf8", []byte("bytes"))
	syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o640)
	os.Chmod(filepath.Join(dir, "small/x"), 0o4755)
	os.Mkdir(filepath.Join(dir, "sticky"), 0o1777)
	os.Chmod(filepath.Join(dir, "sticky"), 0o1777)
	return dir
}

func needTool(t *testing.T, name string) {
	if _, err := exec.LookPath(name); err != nil {
		t.Skipf("SKIP: %s not installed (make test installs squashfs-tools)", name)
	}
}

// TestWriterUnsquashfs lets unsquashfs judge every compression: it must
// list and extract the image, and what it extracts must equal the source.
func TestWriterUnsquashfs(t *testing.T) {
	needTool(t, "unsquashfs")
	src := smallTree(t, 4096)
	es := entriesOf(t, src)
	for _, comp := range Compressions {
		t.Run(comp, func(t *testing.T) {
			opt := DefaultOptions()
			opt.Compression = comp
			opt.Level, _, _ = DefaultLevel(comp)
			opt.BlockSize = 4096
			img, st := writeImage(t, es, opt)
			if st.Duplicates < 1 {
				t.Errorf("duplicates = %d, want >= 1", st.Duplicates)
			}
			out := filepath.Join(t.TempDir(), "x")
			cmd := exec.Command("unsquashfs", "-no-progress", "-d", out, img)
			if b, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("unsquashfs: %v\n%s", err, b)
			}
			compareTrees(t, src, out)
		})
	}
}

// compareTrees checks names, types, permissions, contents, link targets and
// mtimes (regular files and symlinks) of two trees.
func compareTrees(t *testing.T, want, got string) {
	t.Helper()
	n := 0
	filepath.WalkDir(want, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(want, p)
		q := filepath.Join(got, rel)
		a, _ := os.Lstat(p)
		b, err := os.Lstat(q)
		if err != nil {
			t.Errorf("%s: missing: %v", rel, err)
			return nil
		}
		n++
		if a.Mode() != b.Mode() {
			t.Errorf("%s: mode %v, want %v", rel, b.Mode(), a.Mode())
		}
		if a.Mode().IsRegular() {
			if a.ModTime().Unix() != b.ModTime().Unix() {
				t.Errorf("%s: mtime %v, want %v", rel, b.ModTime(), a.ModTime())
			}
			if hashFile(t, p) != hashFile(t, q) {
				t.Errorf("%s: content differs", rel)
			}
		}
		if a.Mode()&fs.ModeSymlink != 0 {
			x, _ := os.Readlink(p)
			y, _ := os.Readlink(q)
			if x != y {
				t.Errorf("%s: link %q, want %q", rel, y, x)
			}
		}
		return nil
	})
	if n < 10 {
		t.Fatalf("compared only %d entries", n)
	}
}

func hashFile(t *testing.T, p string) [32]byte {
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

// TestWriterDeterministic: the order of Add calls and the worker count
// must not change a byte.
func TestWriterDeterministic(t *testing.T) {
	src := smallTree(t, 4096)
	es := entriesOf(t, src)
	opt := DefaultOptions()
	opt.BlockSize = 4096
	opt.Workers = 1
	a, _ := writeImage(t, es, opt)
	rev := make([]Entry, len(es))
	for i, e := range es {
		rev[len(es)-1-i] = e
	}
	opt.Workers = 7
	b, _ := writeImage(t, rev, opt)
	x, _ := os.ReadFile(a)
	y, _ := os.ReadFile(b)
	if !bytes.Equal(x, y) {
		t.Fatalf("images differ (%d vs %d bytes)", len(x), len(y))
	}
}

func TestWriterRejects(t *testing.T) {
	w, err := NewWriter(nil, 0, DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range []Entry{
		{Path: "../x", Mode: 0o644},
		{Path: "/abs", Mode: 0o644},
		{Path: "a//b", Mode: 0o644},
		{Path: "nul\x00", Mode: 0o644},
		{Path: strings.Repeat("n", 257), Mode: 0o644},
		{Path: "s", Mode: fs.ModeSymlink},
		{Path: "f", Mode: 0o644, Size: 3},
	} {
		if err := w.Add(e); err == nil {
			t.Errorf("Add(%q) accepted", e.Path)
		}
	}
	bad := DefaultOptions()
	bad.BlockSize = 3000
	if _, err := NewWriter(nil, 0, bad); err == nil {
		t.Error("block size 3000 accepted")
	}
}

// TestWriterKernel lets the kernel judge: a loop mount of every
// compression must show the source tree.
func TestWriterKernel(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("SKIP: the kernel oracle needs root for loop mounts (CI runs as root)")
	}
	src := smallTree(t, 4096)
	es := entriesOf(t, src)
	for _, comp := range Compressions {
		for _, bs := range []int{MinBlockSize, DefaultBlockSize, MaxBlockSize} {
			t.Run(fmt.Sprintf("%s-%d", comp, bs), func(t *testing.T) {
				opt := DefaultOptions()
				opt.Compression = comp
				opt.Level, _, _ = DefaultLevel(comp)
				opt.BlockSize = bs
				img, _ := writeImage(t, es, opt)
				mnt := t.TempDir()
				if b, err := exec.Command("mount", "-t", "squashfs", "-o", "loop,ro", img, mnt).CombinedOutput(); err != nil {
					t.Fatalf("mount: %v\n%s", err, b)
				}
				defer exec.Command("umount", mnt).Run()
				compareTrees(t, src, mnt)
			})
		}
	}
}

// TestWriterTooManyIDs: the id table indexes 65536 owners at most; more must
// fail, not wrap around to wrong owners.
func TestWriterTooManyIDs(t *testing.T) {
	opt := DefaultOptions()
	opt.KeepOwner = true
	w, err := NewWriter(discard{}, 0, opt)
	if err != nil {
		t.Fatal(err)
	}
	for i := range maxIDs/2 + 1 {
		e := Entry{Path: fmt.Sprintf("f%d", i), Mode: fs.ModeNamedPipe | 0o644, UID: uint32(2 * i), GID: uint32(2*i + 1)}
		if err := w.Add(e); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := w.Finish(); err == nil || !strings.Contains(err.Error(), "distinct owners") {
		t.Fatalf("Finish = %v, want a too-many-owners error", err)
	}
}

type discard struct{}

func (discard) WriteAt(p []byte, _ int64) (int, error) { return len(p), nil }

// TestWriterSourceSwapped: a source replaced after the walk (by another
// file, say through a symlinked directory, or by a fifo) must fail the
// image, not be packed and not hang.
func TestWriterSourceSwapped(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	if err := os.WriteFile(p, []byte("walked"), 0o644); err != nil {
		t.Fatal(err)
	}
	es := entriesOf(t, dir)
	var fi syscall.Stat_t
	syscall.Lstat(p, &fi)
	for i := range es {
		if es[i].Path == "f" {
			es[i].Dev, es[i].Ino = fi.Dev, fi.Ino
		}
	}
	for name, swap := range map[string]func(){
		"other file": func() { os.Rename(p, p+".old"); os.WriteFile(p, []byte("secret"), 0o644) },
		"fifo":       func() { os.Remove(p); syscall.Mkfifo(p, 0o644) },
	} {
		t.Run(name, func(t *testing.T) {
			swap()
			w, err := NewWriter(discard{}, 0, DefaultOptions())
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range es {
				w.Add(e)
			}
			if _, err := w.Finish(); err == nil || !strings.Contains(err.Error(), "changed while packing") {
				t.Fatalf("Finish = %v, want a changed-while-packing error", err)
			}
		})
	}
}
