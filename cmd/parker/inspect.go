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
	f, size, err := openFile(c.file)
	if err != nil {
		return fail("inspect %s: %v", c.file, err)
	}
	defer f.Close()
	in, err := packed.Describe(f, size, c.file, true)
	if err != nil {
		return fail("inspect %s: %v", c.file, trailerCause(err, f))
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

// openFile opens the file given to inspect or ls, which must be a regular
// file, and returns its size. Errors are worded for the line that names
// the file.
func openFile(name string) (*os.File, int64, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, 0, human.Cause(err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, human.Cause(err)
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, 0, errors.New("not a regular file")
	}
	return f, fi.Size(), nil
}

// trailerCause words a failure to read the trailer of f: a file without
// one is not a packed file, unless it begins with a packed file's stub.
func trailerCause(err error, f io.ReaderAt) error {
	switch {
	case errors.Is(err, trailer.ErrNoTrailer) && trailer.ReadMark(f):
		return trailer.ErrCutShort
	case errors.Is(err, trailer.ErrNoTrailer):
		return errors.New("not a packed file (no parker trailer)")
	}
	return human.Cause(err)
}
