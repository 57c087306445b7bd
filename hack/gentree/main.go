// Command gentree writes a generated test tree (internal/treegen) for
// benchmarks and manual testing.
//
//	go run ./hack/gentree [-seed N] [-assets BYTES] [-full] DIR
//
// With -assets it writes a realistic asset tree of about BYTES bytes;
// otherwise the edge-case tree (with -full: 20,000-entry directory, 64
// levels, a 5 GiB sparse file, special files).
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/parkerpack/parker/internal/treegen"
)

func main() {
	seed := flag.Int64("seed", 1, "generator seed")
	assets := flag.Int64("assets", 0, "write an asset tree of about this many bytes")
	full := flag.Bool("full", false, "edge-case tree with the wide, deep, huge and special parts")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: gentree [-seed N] [-assets BYTES] [-full] DIR")
		os.Exit(2)
	}
	dir := flag.Arg(0)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "gentree:", err)
		os.Exit(1)
	}
	if *assets > 0 {
		st, err := treegen.GenerateAssets(dir, *seed, *assets)
		if err != nil {
			fmt.Fprintln(os.Stderr, "gentree:", err)
			os.Exit(1)
		}
		fmt.Fprintf(os.Stderr, "gentree: %d files, %d bytes\n", st.Files, st.Bytes)
		return
	}
	opt := treegen.Options{Special: true, Root: os.Geteuid() == 0}
	if *full {
		opt.Wide, opt.Depth, opt.HugeSparse = 20000, 64, 5<<30
	}
	m, err := treegen.Generate(dir, *seed, opt)
	if err != nil {
		fmt.Fprintln(os.Stderr, "gentree:", err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "gentree: %d files, %d dirs, %d symlinks, %d others, %d bytes\n",
		m.Files, m.Dirs, m.Symlinks, m.Others, m.Bytes)
}
