package image

// The trees these tests pack come from internal/treegen and are compared
// with internal/treecmp: the generator and the comparator of the end-to-end
// tests too. The judges are independent of this package: mksquashfs writes
// the images the reader is checked on; unsquashfs and the kernel read the
// images the writer makes.

import (
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"

	"github.com/parkerpack/parker/internal/treecmp"
	"github.com/parkerpack/parker/internal/treegen"
)

const testBlockSize = 128 << 10

// indexedDir is a directory of treegen's tree whose listing spans many
// metadata blocks, so it is stored with a directory index.
const indexedDir = "dirsize/long"

// genTree returns the path of treegen's tree, its sizes built around block
// size bs: every kind of entry, and device nodes and varied owners when run
// as root. Trees are generated once per options and shared, so tests must
// not change them; TestMain removes them.
func genTree(t testing.TB, bs int, opt treegen.Options) string {
	t.Helper()
	opt.BlockSize, opt.Special, opt.Root = bs, true, os.Geteuid() == 0
	trees.Lock()
	defer trees.Unlock()
	key := fmt.Sprintf("%+v", opt)
	if dir, ok := trees.dirs[key]; ok {
		return dir
	}
	if trees.root == "" {
		root, err := os.MkdirTemp("", "image-test-trees-")
		if err != nil {
			t.Fatal(err)
		}
		trees.root = root
	}
	dir := filepath.Join(trees.root, fmt.Sprint(len(trees.dirs)))
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := treegen.Generate(dir, 1, opt); err != nil {
		t.Fatal(err)
	}
	trees.dirs[key] = dir
	return dir
}

var trees = struct {
	sync.Mutex
	root string
	dirs map[string]string
}{dirs: map[string]string{}}

func TestMain(m *testing.M) {
	runHelper()
	code := m.Run()
	if trees.root != "" {
		removeAll(trees.root)
	}
	os.Exit(code)
}

// packMksquashfs packs src into a new image and returns its path.
func packMksquashfs(t testing.TB, src string, args ...string) string {
	t.Helper()
	needTool(t, "mksquashfs")
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

// makeRemovable makes sure t.TempDir's cleanup can delete root even when
// not root: trees have 0555 and 0500 directories.
func makeRemovable(t testing.TB, root string) {
	t.Cleanup(func() { chmodDirs(root) })
}

func chmodDirs(root string) {
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			os.Chmod(p, 0o700)
		}
		return nil
	})
}

func removeAll(root string) {
	chmodDirs(root)
	os.RemoveAll(root)
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

// diskView lists a tree on disk.
func diskView(t testing.TB, name, root string) *treecmp.View {
	t.Helper()
	v, err := treecmp.Lstat(name, root)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// readerView lists an image through Walk. Regular files are read through
// Open; treecmp copies them with io.Copy, which takes File.WriteTo, the
// parallel path.
func readerView(r *Reader) (*treecmp.View, error) {
	v := treecmp.NewView("image.Reader")
	err := r.Walk(func(n *Node) error {
		if _, dup := v.Entries[n.Path]; dup {
			return fmt.Errorf("Walk visited %q twice", n.Path)
		}
		e := &treecmp.Entry{Mode: n.Mode, UID: n.UID, GID: n.GID, Mtime: n.ModTime, Link: n.Link, Rdev: n.Rdev,
			ID: fmt.Sprint(n.Inode), Nlink: n.Nlink}
		if n.Mode.IsRegular() {
			e.Size = n.Size
			e.Open = func() (io.ReadCloser, error) {
				f, err := r.Open(n)
				if err != nil {
					return nil, err
				}
				return io.NopCloser(f), nil
			}
		}
		v.Add(n.Path, e)
		return nil
	})
	return v, err
}

// checkTree reports every difference between got and the source view want.
func checkTree(t testing.TB, want, got *treecmp.View, x treecmp.Expect) {
	t.Helper()
	if len(want.Entries) < 100 {
		t.Fatalf("source view of %d entries: not the generated tree", len(want.Entries))
	}
	problems, notes := treecmp.Compare(want, got, x)
	const show = 30
	for i, p := range problems {
		if i == show {
			t.Errorf("... and %d more", len(problems)-show)
			break
		}
		t.Errorf("%s: %s", got.Name, p)
	}
	for _, n := range notes {
		t.Log(n)
	}
}
