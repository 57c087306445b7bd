package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/parkerpack/parker/image/trailer"
	"github.com/parkerpack/parker/internal/human"
	"github.com/parkerpack/parker/packed"
)

// inspect runs `parker inspect [--json] FILE`: what the trailer and the
// image say, from packed.Describe, which a packed file's --parker-info uses
// too, so the two always agree.
func inspect(c *config, stdout, stderr io.Writer) int {
	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "parker: "+format+"\n", a...)
		return exitFail
	}
	f, err := os.Open(c.file)
	if err != nil {
		return fail("inspect %s: %v", c.file, human.Cause(err))
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fail("inspect %s: %v", c.file, human.Cause(err))
	}
	if !fi.Mode().IsRegular() {
		return fail("inspect %s: not a regular file", c.file)
	}
	in, err := packed.Describe(f, fi.Size(), c.file, true)
	switch {
	case errors.Is(err, trailer.ErrNoTrailer) && trailer.ReadMark(f):
		return fail("inspect %s: %v", c.file, trailer.ErrCutShort)
	case errors.Is(err, trailer.ErrNoTrailer):
		return fail("inspect %s: not a packed file (no parker trailer)", c.file)
	case err != nil:
		return fail("inspect %s: %v", c.file, human.Cause(err))
	}
	if c.json {
		stdout.Write(in.JSON())
	} else {
		in.WriteText(stdout)
	}
	switch {
	case in.ImageError != "":
		return fail("inspect %s: the image could not be read: %s", c.file, in.ImageError)
	case !in.DigestOK:
		return fail("inspect %s: payload digest mismatch: the file is damaged", c.file)
	}
	return exitOK
}
