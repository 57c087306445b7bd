// Command parker-helper is the second executable of a packed file: the Go
// stub (package stub) with the image codecs. The run-time stub starts it,
// from memory, for everything beyond a plain run that works: the C stub
// (stub/cstub) for every --parker-* flag, PARKER_VERBOSE=1 and every
// failure before the target starts (the helper then does the whole run
// again, and reports precisely or falls back); the Go stub
// (cmd/parker-stub) for the requests that read the image in user space
// (--parker-info, --parker-ls, --parker-extract). The stub names the
// packed file in the environment (stub.EnvHelperFor) and passes its own
// arguments on.
//
// It is built by make and embedded into parker; it is not meant to be run
// on its own.
package main

import (
	"fmt"
	"os"

	"github.com/parkerpack/parker/mountns"
	"github.com/parkerpack/parker/stub"
	"github.com/parkerpack/parker/stub/userspace"
	"github.com/parkerpack/parker/supervisor"
)

func main() {
	supervisor.RunSidecar()   // when started as a run's cleanup sidecar
	userspace.RunFUSEServer() // when started as the FUSE server of a run
	mountns.RunProbe()        // when started by --parker-doctor's FUSE probe
	stub.Extended = userspace.Run
	stub.Unpack = userspace.Unpack
	stub.ServesFUSE = true
	self := os.Getenv(stub.EnvHelperFor)
	if self == "" {
		fmt.Fprintf(os.Stderr, "parker-helper: run by a packed file only (%s is not set)\n", stub.EnvHelperFor)
		os.Exit(stub.ExitFailure)
	}
	os.Unsetenv(stub.EnvHelperFor)
	os.Exit(stub.Start(self, os.Args))
}
