package stub

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// The FUSE rung (R1) is the C stub's (stub/cstub/fuse.c): only a
// single-threaded process can enter a user namespace, and the target must
// run in the stub's place. What is here says whether a run could take it,
// and why not, for the runs the Go code has: the extraction cache's
// warning, PARKER_MODE=fuse, --parker-doctor.

// goBuildInfo starts the build information every Go executable carries
// (its .go.buildinfo section), the C stub none.
var goBuildInfo = []byte("\xff Go buildinf:")

// cStub reports whether the packed file starts with the C stub: a small
// program that is not Go's (the Go stub is megabytes).
func (r *runner) cStub() bool {
	if r.t.StubSize == 0 || r.t.StubSize > 1<<20 {
		return false
	}
	b := make([]byte, r.t.StubSize)
	f := r.file
	if f == nil {
		var err error
		if f, err = os.Open(r.self); err != nil {
			return false
		}
		defer f.Close()
	}
	if _, err := f.ReadAt(b, 0); err != nil && err != io.EOF {
		return false
	}
	return !bytes.Contains(b, goBuildInfo)
}

// fuseRefused says why the FUSE rung is out for this user, by what can be
// read cheaply (no namespace is tried): /dev/fuse, and the settings that
// forbid user namespaces. It returns nil when nothing here forbids it.
func fuseRefused(sysctl func(string) string) error {
	if err := unix.Access("/dev/fuse", unix.R_OK|unix.W_OK); err != nil {
		return errors.New("/dev/fuse " + fuseVerdict())
	}
	if v := usernsVerdict(sysctl); !strings.HasPrefix(v, "are allowed") {
		return errors.New("user namespaces " + v)
	}
	return nil
}

// errFUSEHere says why a run that got to the Go code cannot take the FUSE
// rung, where nothing on the host forbids it.
func (r *runner) errFUSEHere() error {
	if !r.cStub() {
		return errors.New("this packed file has the Go stub (packed by a parker built without a C compiler), " +
			"which cannot take the FUSE rung: only a single-threaded program can enter a user namespace")
	}
	return fmt.Errorf("the FUSE rung is the C stub's plain run: only a single-threaded program can enter a user namespace, "+
		"and a run with a --parker-* flag, %s=1 or resource limits is the Go helper's", EnvVerbose)
}

// whyNotFUSE says why this run, handed to the Go code, is not on the FUSE
// rung: what failed in the C stub's attempt (failed, from EnvFUSEFailed),
// or what forbids it here, or why the Go code cannot take it.
func (r *runner) whyNotFUSE(failed string) error {
	// What stops it on the host says more than the step it stopped at.
	if err := fuseRefused(readSysctl); err != nil {
		return err
	}
	if failed != "" {
		return errors.New(failed)
	}
	return r.errFUSEHere()
}
