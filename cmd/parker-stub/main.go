// Command parker-stub is the run-time stub that parker writes at the start
// of every packed file: what runs when a packed file is started. It links
// only what a run needs (the trailer, mountns, supervisor), not the image
// codecs or the packer, so it is small and starts quickly; requests that
// read the image in user space (--parker-info, --parker-extract) go to the
// helper executable the packed file also carries (cmd/parker-helper).
//
// It is built by make and embedded into parker; it is not meant to be run
// on its own.
package main

import (
	"fmt"
	"os"

	"github.com/parkerpack/parker/stub"
)

func main() {
	self, err := stub.Executable()
	if err != nil {
		fmt.Fprintf(os.Stderr, "parker: cannot locate own executable: %v\n", err)
		os.Exit(stub.ExitFailure)
	}
	os.Exit(stub.Start(self, os.Args))
}
