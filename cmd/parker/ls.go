package main

import (
	"errors"
	"fmt"
	"io"
	"syscall"

	"github.com/parkerpack/parker/image/trailer"
	"github.com/parkerpack/parker/packed"
)

// list runs `parker ls [-l] [--json] FILE`: the entries of the packed
// image, from packed.List, which a packed file's --parker-ls uses too, so
// the two always agree. It does not check the payload's digest (inspect
// does): a listing reads only the image's tables.
func list(c *config, stdout, stderr io.Writer) int {
	fail := func(err error) int {
		fmt.Fprintf(stderr, "parker: ls %s: %v\n", c.file, err)
		return exitFail
	}
	f, size, err := openFile(c.file)
	if err != nil {
		return fail(err)
	}
	defer f.Close()
	t, err := trailer.Read(f, size)
	if err != nil {
		return fail(trailerCause(err, f))
	}
	err = packed.List(stdout, io.NewSectionReader(f, int64(t.Offset), int64(t.Size)), int64(t.Size),
		packed.ListFormat(c.long, c.json))
	switch {
	case errors.Is(err, syscall.EPIPE):
		// The reader went away (parker ls FILE | head): it has what it
		// wanted, and a message would only be noise. (Writing to a
		// closed pipe on stdout normally kills a Go program with
		// SIGPIPE, as it does any other; this is for when it does not.)
		return exitFail
	case err != nil:
		return fail(err)
	}
	return exitOK
}
