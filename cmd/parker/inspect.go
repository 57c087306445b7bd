package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/parkerpack/parker/closure"
	"github.com/parkerpack/parker/image"
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
	if c.closure {
		if in.Verified && !in.DigestOK {
			return fail("inspect %s: payload digest mismatch: the file is damaged", c.file)
		}
		return inspectClosure(c, f, stdout, fail)
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

// inspectClosure carries out `parker inspect --closure`: the closure's
// manifest (closure.Result.Manifest), aligned, or with --json an array of
// objects (path, digest, source, why).
func inspectClosure(c *config, f *os.File, stdout io.Writer, fail func(string, ...any) int) int {
	st, err := f.Stat()
	if err != nil {
		return fail("inspect %s: %v", c.file, err)
	}
	t, err := trailer.Read(f, st.Size())
	if err != nil {
		return fail("inspect %s: %v", c.file, trailerCause(err, f))
	}
	if t.Flags&trailer.Closure == 0 {
		return fail("inspect %s: it carries no closure (packed without --closure)", c.file)
	}
	r, err := image.NewReader(io.NewSectionReader(f, int64(t.Offset), int64(t.Size)), int64(t.Size))
	var b []byte
	if err == nil {
		b, err = readImageFile(r, strings.TrimPrefix(closure.ManifestPath, "/"))
	}
	if err != nil {
		return fail("inspect %s: the closure's manifest: %v", c.file, err)
	}
	rows, err := closure.ParseManifest(b)
	if err != nil {
		return fail("inspect %s: the closure's manifest: %v", c.file, err)
	}
	if c.json {
		type file struct {
			Path   string `json:"path"`
			Digest string `json:"digest"`
			Source string `json:"source"`
			Why    string `json:"why"`
		}
		files := []file{}
		for _, r := range rows {
			files = append(files, file{r[1], r[0], r[2], r[3]})
		}
		b, _ := json.MarshalIndent(files, "", "  ")
		stdout.Write(append(b, '\n'))
		return exitOK
	}
	w := 0
	for _, r := range rows {
		w = max(w, len(r[1]))
	}
	for _, r := range rows {
		fmt.Fprintf(stdout, "%-*s  %s  %s (%s)\n", w, r[1], r[0], r[2], r[3])
	}
	return exitOK
}

// readImageFile reads the regular file at path in the image r.
func readImageFile(r *image.Reader, path string) ([]byte, error) {
	n, err := r.Lookup(path)
	if err != nil {
		return nil, err
	}
	if !n.Mode.IsRegular() || n.Size > 64<<20 {
		return nil, fmt.Errorf("%s is not a small regular file", path)
	}
	fl, err := r.Open(n)
	if err != nil {
		return nil, err
	}
	return io.ReadAll(fl)
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
