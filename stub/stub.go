// Package stub is the run-time entry of a packed executable: it reads the
// trailer, attaches the payload (mountns) and runs the target (supervisor).
package stub

import (
	"fmt"
	"os"

	"github.com/parkerpack/parker/image"
)

// Main runs a packed executable. self is the absolute path of the packed
// file, t its verified trailer, args the process arguments (os.Args). It
// returns the process exit status.
func Main(self string, t *image.Trailer, args []string) int {
	fmt.Fprintf(os.Stderr, "%s: running packed files is not implemented yet\n", self)
	return 125
}
