package fusefs

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parkerpack/parker/image"
	"github.com/parkerpack/parker/internal/testenv"
	"github.com/parkerpack/parker/internal/treecmp"
	"github.com/parkerpack/parker/internal/treegen"
	"github.com/parkerpack/parker/mountns"
	"golang.org/x/sys/unix"
)

// needRoot: mounting FUSE here needs CAP_SYS_ADMIN (the runs get it from a
// user namespace; tests/run_fuse_test.go has those).
func needRoot(t *testing.T) { testenv.NeedRoot(t, "mounting FUSE") }

// TestMain serves an image as a FUSE server in a process of its own, when
// a test started it so (mount): a server in the test's own process could
// deadlock with it, as the kernel asks the server whether a file can be
// polled while the asking thread holds the Go runtime's poller.
func TestMain(m *testing.M) {
	if os.Getenv("FUSEFS_TEST_SERVE") == "1" {
		os.Exit(serveChild())
	}
	os.Exit(m.Run())
}

// serveChild serves the image open as descriptor 4 over the connection
// open as descriptor 3 until the mount goes, printing each damage report
// as a line.
func serveChild() int {
	f := os.NewFile(4, "image")
	st, err := f.Stat()
	if err != nil {
		return 1
	}
	r, err := image.NewReader(f, st.Size())
	if err != nil {
		fmt.Println("open:", err)
		return 1
	}
	srv, err := Serve(3, r, Options{UID: 0, GID: 0, Damaged: func(err error) { fmt.Println("damaged:", err) }})
	if err != nil {
		fmt.Println("serve:", err)
		return 1
	}
	srv.Wait()
	return 0
}

// mount serves the image file img over a fresh FUSE connection, from a
// server process of its own, mounted on a temporary directory, and returns
// that, and what the server reported of damage so far. Everything goes
// with the test.
func mount(t *testing.T, img string) (string, func() []string) {
	t.Helper()
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dev, err := unix.Open("/dev/fuse", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("/dev/fuse: %v", err)
	}
	devFile := os.NewFile(uintptr(dev), "/dev/fuse")
	defer devFile.Close() // the server's is the connection's only one
	m, err := mountns.MountFUSE(dev, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(m)
	srv := exec.Command(os.Args[0])
	srv.Env = append(os.Environ(), "FUSEFS_TEST_SERVE=1")
	srv.ExtraFiles = []*os.File{devFile, f}
	srv.Stderr = os.Stderr
	out, err := srv.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var lines []string
	done := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			mu.Lock()
			lines = append(lines, sc.Text())
			mu.Unlock()
		}
		close(done)
	}()
	// Attached for the test's walks (a walk from /proc/self/fd/N would
	// take its root for the symlink that names it).
	at := t.TempDir()
	if err := mountns.AttachAt(m, at); err != nil {
		srv.Process.Kill()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// The kernel unmounts it, ends the connection, and the server.
		if err := unix.Unmount(at, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", at, err)
		}
		<-done
		if err := srv.Wait(); err != nil {
			t.Errorf("FUSE server: %v", err)
		}
	})
	return at, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), lines...)
	}
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
	root, reports := mount(t, mksquashfs(t, src))
	defer func() {
		if r := reports(); len(r) != 0 {
			t.Errorf("the server said, of a sound image: %q", r)
		}
	}()
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
	root, reports := mount(t, img)
	for range 3 {
		if _, err := os.ReadFile(filepath.Join(root, "big")); !errors.Is(err, unix.EIO) {
			t.Errorf("reading the damaged file: %v, want EIO", err)
		}
	}
	if b, err := os.ReadFile(filepath.Join(root, "small")); err != nil || string(b) != "intact\n" {
		t.Errorf("the undamaged file: %q, %v", b, err)
	}
	// The server says so before it answers, but the line may still be
	// on its way through the pipe.
	for deadline := time.Now().Add(10 * time.Second); len(reports()) == 0 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if r := reports(); len(r) != 1 || !strings.HasPrefix(r[0], "damaged: ") {
		t.Errorf("the server said %q; want one damage report", r)
	}
}
