package userspace

import (
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/parkerpack/parker/image"
	"github.com/parkerpack/parker/image/trailer"
	"github.com/parkerpack/parker/mountns/fusefs"
	"github.com/parkerpack/parker/stub"
	"github.com/parkerpack/parker/supervisor"
	"golang.org/x/sys/unix"
)

// The FUSE server's descriptors, as the C stub passes them (fuse.c).
const (
	fuseServerDev   = 3 // the FUSE connection, mounted by the stub
	fuseServerFile  = 4 // the packed file
	fuseServerPidfd = 5 // the target
)

// RunFUSEServer serves the payload of the unprivileged rung when this
// process was started as its server (stub.EnvFUSEServer set: the C stub
// does so, from the helper's memory file, after mounting the connection in
// the run's user and mount namespaces), and then exits; otherwise it
// returns at once.
//
// The server serves until the run is over: once the target has ended (its
// pidfd says so) and nothing else is left in the run's mount namespace.
// The cleanup sidecar usually ends it first, with the rest of the run.
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
	name := filepath.Base(self)
	srv, err := fusefs.Serve(fuseServerDev, img, fusefs.Options{
		UID: uint32(os.Geteuid()),
		GID: uint32(os.Getegid()),
		Damaged: func(err error) {
			fmt.Fprintf(os.Stderr, "parker: %s: the packed file is damaged (%v): the run gets I/O errors; check it with %s --parker-verify\n",
				self, err, name)
		},
	})
	if err != nil {
		return err
	}
	ended := make(chan struct{})
	go func() {
		srv.Wait() // the connection is gone: nothing left to serve
		close(ended)
	}()
	waitReadable(fuseServerPidfd, ended)
	// The target has ended; what it left may still read the view, until
	// the sidecar ends it (or, kept, it ends).
	ns, err := os.Readlink("/proc/self/ns/mnt")
	if err != nil {
		return nil
	}
	me := os.Getpid()
	for {
		if supervisor.AloneIn(ns, me) {
			return nil
		}
		select {
		case <-ended:
			return nil
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// waitReadable waits until fd (a pidfd) is readable, or ended is closed.
func waitReadable(fd int, ended chan struct{}) {
	done := make(chan struct{})
	go func() {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		for {
			if _, err := unix.Poll(fds, -1); err != unix.EINTR {
				break
			}
		}
		close(done)
	}()
	select {
	case <-done:
	case <-ended:
	}
}
