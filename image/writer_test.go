package image

import (
	"bytes"
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
)

// writerTree is the tree the writer tests pack: treegen's, its sizes built
// around 4 KiB blocks, with a wide directory (its listing spans many
// metadata blocks and gets a directory index) and deep nesting.
func writerTree(t testing.TB) string {
	return genTree(t, 4096, treegen.Options{Wide: 3000, Depth: 40})
}

// needTool fails the test when a program of squashfs-tools that it checks
// against is missing: hack/deps.sh installs them, so a missing one is a
// broken set-up, not a reason to pass.
func needTool(t testing.TB, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Fatalf("%s not installed: run hack/deps.sh (make test does) to install squashfs-tools", name)
	}
}

// TestWriterUnsquashfs lets unsquashfs judge every compression: it must
// list and extract the image, and what it extracts must equal the source
// (owners 0:0, as the writer stores them by default).
func TestWriterUnsquashfs(t *testing.T) {
	needTool(t, "unsquashfs")
	src := writerTree(t)
	want := diskView(t, "source", src)
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
			got := diskView(t, "unsquashfs", out)
			got.NoOwner = os.Geteuid() != 0 // unsquashfs cannot chown
			checkTree(t, want, got, treecmp.Expect{Clamp: -1})
		})
	}
}

// TestWriterDeterministic: the order of Add calls and the worker count
// must not change a byte.
func TestWriterDeterministic(t *testing.T) {
	src := writerTree(t)
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
		{Path: "huge", Mode: 0o644, Size: MaxFileBlocks*DefaultBlockSize + 1, Source: "huge"},
	} {
		if err := w.Add(e); err == nil {
			t.Errorf("Add(%q) accepted", e.Path)
		}
	}
	if err := w.Add(Entry{Path: "largest", Mode: 0o644, Size: MaxFileBlocks * DefaultBlockSize, Source: "largest"}); err != nil {
		t.Errorf("a file of MaxFileBlocks blocks: %v", err)
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
	needRoot(t, "the kernel oracle loop-mounts the images")
	src := writerTree(t)
	want := diskView(t, "source", src)
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
				checkTree(t, want, diskView(t, "kernel", mnt), treecmp.Expect{Clamp: -1})
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
