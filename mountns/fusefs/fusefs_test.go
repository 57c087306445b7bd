package fusefs

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/parkerpack/parker/image"
	"github.com/parkerpack/parker/internal/treecmp"
	"github.com/parkerpack/parker/internal/treegen"
	"github.com/parkerpack/parker/mountns"
	"golang.org/x/sys/unix"
)

// needRoot: mounting FUSE here needs CAP_SYS_ADMIN (the runs get it from a
// user namespace; tests/run_fuse_test.go has those). On CI, which runs as
// root, a missing privilege is a failure, not a skip.
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("needs root to mount FUSE")
		}
		t.Skip("needs root to mount FUSE")
	}
}

// mount serves the image file img over a fresh FUSE connection mounted
// on a temporary directory, and returns that. Everything goes with the
// test.
func mount(t *testing.T, img string, damaged func(error)) string {
	t.Helper()
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	st, _ := f.Stat()
	r, err := image.NewReader(f, st.Size())
	if err != nil {
		t.Fatal(err)
	}
	dev, err := unix.Open("/dev/fuse", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("/dev/fuse: %v", err)
	}
	m, err := mountns.MountFUSE(dev, 0, 0)
	if err != nil {
		unix.Close(dev)
		t.Fatal(err)
	}
	srv, err := Serve(dev, r, Options{UID: 0, GID: 0, Damaged: damaged})
	if err != nil {
		t.Fatal(err)
	}
	// Attached for the test's walks (a walk from /proc/self/fd/N would
	// take its root for the symlink that names it).
	at := t.TempDir()
	if err := mountns.AttachAt(m, at); err != nil {
		t.Fatal(err)
	}
	unix.Close(m)
	t.Cleanup(func() {
		// The kernel unmounts it, aborts the connection, and the server
		// ends.
		if err := unix.Unmount(at, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", at, err)
		}
		srv.Wait()
		unix.Close(dev)
	})
	return at
}

// mksquashfs packs dir into an image with the reference tool.
func mksquashfs(t *testing.T, dir string, args ...string) string {
	t.Helper()
	if _, err := exec.LookPath("mksquashfs"); err != nil {
		t.Fatal("mksquashfs is missing: make test installs it (hack/deps.sh)")
	}
	img := filepath.Join(t.TempDir(), "img.sqfs")
	out, err := exec.Command("mksquashfs", append([]string{dir, img, "-noappend", "-quiet", "-all-root"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("mksquashfs: %v\n%s", err, out)
	}
	return img
}

// TestServe: a tree with every kind of entry, packed by mksquashfs, reads
// through the FUSE server as its source does: names, types, modes, sizes,
// contents (sparse files, every size around the block size), symlinks,
// hard links, device nodes, mtimes, with every owner the user the view is
// for (root here). The files are read concurrently.
func TestServe(t *testing.T) {
	needRoot(t)
	src := filepath.Join(t.TempDir(), "src")
	if err := os.Mkdir(src, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := treegen.Generate(src, 7, treegen.Options{Special: true, Root: true, Wide: 3000, Depth: 40}); err != nil {
		t.Fatal(err)
	}
	root := mount(t, mksquashfs(t, src), func(err error) { t.Errorf("damage reported on a sound image: %v", err) })
	want, err := treecmp.Lstat("source", src)
	if err != nil {
		t.Fatal(err)
	}
	got, err := treecmp.Lstat("fuse", root)
	if err != nil {
		t.Fatal(err)
	}
	problems, notes := treecmp.Compare(want, got, treecmp.Expect{Clamp: -1, SplitSymlinkLinks: true})
	for _, p := range problems {
		t.Error(p)
	}
	for _, n := range notes {
		t.Log(n)
	}
	// Writes are refused: the view is read-only.
	if err := os.WriteFile(filepath.Join(root, "run.sh"), []byte("x"), 0o644); !errors.Is(err, unix.EROFS) {
		t.Errorf("write into the view: %v, want EROFS", err)
	}
	// Many readers at once, of one file and of many.
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := filepath.Join(root, "run.sh")
			if i%2 == 1 {
				p = filepath.Join(root, "sizes")
			}
			if st, err := os.Stat(p); err != nil || (st.Mode().IsRegular() && st.Size() == 0) {
				t.Errorf("concurrent stat %s: %v", p, err)
				return
			}
			if i%2 == 0 {
				if _, err := os.ReadFile(p); err != nil {
					t.Errorf("concurrent read: %v", err)
				}
			}
		}()
	}
	wg.Wait()
}

// TestServeDamaged: a damaged data block gives the reader EIO, not a
// crash of the server; the damage is reported once, however many reads
// meet it, and the undamaged rest still reads.
func TestServeDamaged(t *testing.T) {
	needRoot(t)
	src := filepath.Join(t.TempDir(), "src")
	os.Mkdir(src, 0o755)
	big := make([]byte, 1<<20)
	for i := range big {
		big[i] = byte(i * 7 / 3)
	}
	os.WriteFile(filepath.Join(src, "big"), big, 0o644)
	os.WriteFile(filepath.Join(src, "small"), []byte("intact\n"), 0o644)
	img := mksquashfs(t, src, "-comp", "gzip", "-no-fragments")
	// Scribble over the middle of the first data block (data starts
	// right after the 96-byte superblock).
	f, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte(strings.Repeat("\xff", 64)), 96+100)
	f.Close()
	var mu sync.Mutex
	var reports []error
	root := mount(t, img, func(err error) { mu.Lock(); reports = append(reports, err); mu.Unlock() })
	for range 3 {
		if _, err := os.ReadFile(filepath.Join(root, "big")); !errors.Is(err, unix.EIO) {
			t.Errorf("reading the damaged file: %v, want EIO", err)
		}
	}
	if b, err := os.ReadFile(filepath.Join(root, "small")); err != nil || string(b) != "intact\n" {
		t.Errorf("the undamaged file: %q, %v", b, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(reports) != 1 {
		t.Errorf("damage reported %d times, want once: %v", len(reports), reports)
	}
}
