// Command parker packs a working directory and its entry program into one
// static executable, and is also that executable's run-time stub.
//
//	cd WORKDIR && parker TARGET     # writes TARGETd
//	parker inspect [--json] FILE    # shows what a packed file carries
//	parker ls [-l] [--json] FILE    # lists the files it packs
//
// Every packed file begins with a byte-for-byte copy of this program. On each
// start, main looks for a payload trailer at the end of its own executable:
// with one, it is a packed file and hands over to stub.Main; without one, it
// is parker itself and runs the command line. The check costs two small
// preads, because it runs on every start of every packed file.
//
// This package owns the command line: flags, messages and exit codes. Pack
// exits 0 on success, 1 on failure and 2 on bad usage, and dies of SIGINT,
// SIGTERM or SIGHUP after removing its temp file; the run-time codes
// are the stub's.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/parkerpack/parker/image/trailer"
	"github.com/parkerpack/parker/internal/human"
	"github.com/parkerpack/parker/mountns"
	"github.com/parkerpack/parker/stub"
	"github.com/parkerpack/parker/stub/userspace"
	"github.com/parkerpack/parker/supervisor"
)

// Exit statuses of the command line.
const (
	exitOK    = 0
	exitFail  = 1
	exitUsage = 2
)

// runStub runs a packed file; tests replace it.
var runStub = stub.Main

func main() {
	supervisor.RunSidecar()   // when started as a run's cleanup sidecar
	userspace.RunFUSEServer() // when started as the FUSE server of a run
	mountns.RunProbe()        // when started by --parker-doctor's FUSE probe
	// parker is also a complete stub (what a go install build packs), with
	// no helper to hand the image-reading requests to.
	stub.Extended = userspace.Run
	stub.Unpack = userspace.Unpack
	stub.ServesFUSE = true
	self, err := stub.Executable()
	if err != nil {
		fmt.Fprintf(os.Stderr, "parker: cannot locate own executable: %v\n", err)
		os.Exit(stub.ExitFailure)
	}
	os.Exit(start(self, os.Args, os.Stdout, os.Stderr))
}

// start decides what this process is: a packed file (its own executable
// carries a trailer) or the parker command.
func start(self string, args []string, stdout, stderr io.Writer) int {
	f, t, err := stub.OpenSelf(self)
	switch {
	case err == nil:
		defer f.Close()
		return runStub(self, f, t, args)
	case errors.Is(err, trailer.ErrNoTrailer) && !selfMarked(self):
		return run(args[1:], stdout, stderr)
	case errors.Is(err, trailer.ErrNoTrailer):
		// A packed file whose stub is parker itself (a go install
		// build packs its own executable), cut short: not the command.
		err = trailer.ErrCutShort
	}
	// Unreadable (e.g. mode 0711 for a non-root user) or damaged: either
	// way neither the stub nor the command line can do its job.
	fmt.Fprintf(stderr, "parker: %s: %v\n", self, human.Cause(err))
	return stub.ExitFailure
}

// selfMarked reports whether the executable at self begins with a packed
// file's mark (see trailer.Marked); plain parker does not.
func selfMarked(self string) bool {
	f, err := os.Open(self)
	if err != nil {
		return false
	}
	defer f.Close()
	return trailer.ReadMark(f)
}
