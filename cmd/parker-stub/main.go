// Command parker-stub is the run-time stub in Go: what make embeds in
// parker, to start every packed file, where no C compiler targets the
// architecture (the C stub, stub/cstub, starts several milliseconds
// faster). It links only what a run needs (the trailer, mountns,
// supervisor), not the image codecs or the packer; requests that read the
// image in user space (--parker-info, --parker-ls, --parker-extract) go to
// the helper executable the packed file also carries (cmd/parker-helper).
//
// It is built by make (STUB=go, or when there is no C compiler) and
// embedded into parker; it is not meant to be run on its own.
package main

import (
	"fmt"
	"os"

	"github.com/parkerpack/parker/mountns"
	"github.com/parkerpack/parker/stub"
	"github.com/parkerpack/parker/supervisor"
)

func main() {
	supervisor.RunSidecar() // when started as a run's cleanup sidecar
	mountns.RunProbe()      // when started by --parker-doctor's FUSE probe
	self, err := stub.Executable()
	if err != nil {
		fmt.Fprintf(os.Stderr, "parker: cannot locate own executable: %v\n", err)
		os.Exit(stub.ExitFailure)
	}
	os.Exit(stub.Start(self, os.Args))
}
