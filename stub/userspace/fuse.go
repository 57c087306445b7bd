package userspace

import (
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/parkerpack/parker/cache"
	"github.com/parkerpack/parker/image"
	"github.com/parkerpack/parker/image/trailer"
	"github.com/parkerpack/parker/mountns/fusefs"
	"github.com/parkerpack/parker/stub"
)

// The FUSE server's descriptors, as the C stub passes them (fuse.c), and
// the Go code (stub's startFUSEServer).
const (
	fuseServerDev  = 3 // the FUSE connection, mounted by the stub
	fuseServerFile = 4 // the packed file
	// The cache directory, with stub.EnvFUSECopyDir set: the server runs
	// from a memory file, the cache having no copy of the helper, and
	// writes one there once the run is over.
	fuseServerCopyDir = 5
)

// RunFUSEServer serves the payload of the unprivileged rung when this
// process was started as its server (stub.EnvFUSEServer set: the C stub
// does so, from the helper's memory file, after mounting the connection in
// a user namespace of the run's; so does the Go code), and then exits;
// otherwise it returns at once.
//
// The server runs outside the run's mount namespace (so that the run's
// cleanup and cgroup leave it), and serves until the connection ends:
// when the run's namespace, the last to hold the mount, is gone.
func RunFUSEServer() {
	self, ok := os.LookupEnv(stub.EnvFUSEServer)
	if !ok {
		return
	}
	signal.Ignore(syscall.SIGINT, syscall.SIGQUIT, syscall.SIGHUP, syscall.SIGTSTP, syscall.SIGPIPE)
	if err := serveFUSE(self); err != nil {
		fmt.Fprintf(os.Stderr, "parker: %s: FUSE server: %v\n", self, err)
		os.Exit(stub.ExitFailure)
	}
	os.Exit(0)
}

func serveFUSE(self string) error {
	file := os.NewFile(fuseServerFile, "packed file")
	st, err := file.Stat()
	if err != nil {
		return err
	}
	t, err := trailer.Read(file, st.Size())
	if err != nil {
		return err
	}
	img, err := image.NewReader(io.NewSectionReader(file, int64(t.Offset), int64(t.Size)), int64(t.Size))
	if err != nil {
		return fmt.Errorf("the packed file is damaged: %w", err)
	}
	srv, err := fusefs.Serve(fuseServerDev, img, fusefs.Options{
		UID: uint32(os.Geteuid()),
		GID: uint32(os.Getegid()),
		Damaged: func(err error) {
			fmt.Fprintf(os.Stderr, "parker: %s: the packed file is damaged (%v): the run gets I/O errors; check it with %s --parker-verify\n",
				self, err, filepath.Base(self))
		},
	})
	if err != nil {
		return err
	}
	srv.Wait()
	if os.Getenv(stub.EnvFUSECopyDir) != "" {
		// Nothing more to say: the caller's stderr is let go, so that
		// nothing waiting on it (a pipe, $(...)) waits for the copy.
		if null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0); err == nil {
			syscall.Dup3(int(null.Fd()), 2, 0)
			null.Close()
		}
		putHelperCopy(t)
	}
	return nil
}

// putHelperCopy writes the cache's copy of the helper (cache.PutHelper),
// from the memory file this server runs from, once the run it served is
// over, so that it takes nothing from the run (a copy, a digest, a sync:
// tens of milliseconds, once for each helper). Nothing is said when it
// cannot: the next start of the helper unpacks it again, as this one did,
// and --parker-doctor says whether there is a copy.
func putHelperCopy(t *trailer.Trailer) {
	dir := os.NewFile(fuseServerCopyDir, "cache directory")
	defer dir.Close()
	var st syscall.Stat_t
	if t.HelperDigest == [32]byte{} || syscall.Fstat(fuseServerCopyDir, &st) != nil || st.Mode&syscall.S_IFMT != syscall.S_IFDIR {
		return
	}
	exe, err := os.Open("/proc/self/exe")
	if err != nil {
		return
	}
	defer exe.Close()
	cache.PutHelper(dir, t.HelperDigest, exe)
}
