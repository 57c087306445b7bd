// Package userspace carries out the requests of a packed file that read
// its image in user space instead of mounting it: --parker-info,
// --parker-ls, --parker-extract, and the digest check of --parker-verify
// that comes with them. It links the image codecs, which the run-time stub
// leaves out to start quickly; the programs that link them (parker itself,
// the helper executable) set stub.Extended to Run.
package userspace

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/parkerpack/parker/image"
	"github.com/parkerpack/parker/image/trailer"
	"github.com/parkerpack/parker/packed"
	"github.com/parkerpack/parker/stub"
)

// Run carries out req and returns the exit status.
func Run(req stub.Request) int {
	start := time.Now()
	log := func(step string) {
		if req.Verbose {
			fmt.Fprintf(os.Stderr, "parker: %-40s %8.3f ms\n", step, float64(time.Since(start).Microseconds())/1000)
		}
		start = time.Now()
	}
	if req.Verify {
		if err := stub.Verify(req.File, req.Trailer); err != nil {
			return stub.Fail(req.Self, err)
		}
		log("verify digest")
	}
	switch req.Action {
	case stub.Info:
		return info(req)
	case stub.List:
		return list(req)
	}
	return extract(req, log)
}

// extract writes the packed directory to dir with the image reader, in user
// space: it needs no privileges.
func extract(req stub.Request, log func(string)) int {
	dir := req.Dir
	if dir == "" {
		dir = filepath.Base(req.Self) + ".root"
	}
	rd, err := image.NewReader(io.NewSectionReader(req.File, int64(req.Trailer.Offset), int64(req.Trailer.Size)), int64(req.Trailer.Size))
	if err != nil {
		return stub.Fail(req.Self, fmt.Errorf("read payload: %w", err))
	}
	err = rd.Extract(dir, image.ExtractOptions{
		Warn: func(s string) { fmt.Fprintf(os.Stderr, "parker: %s: warning: %s\n", req.Self, s) },
	})
	if errors.Is(err, image.ErrNotEmpty) {
		return stub.Fail(req.Self, fmt.Errorf("cannot extract to %s: it is not empty; remove it or name another DIR: %s --parker-extract DIR",
			dir, filepath.Base(req.Self)))
	}
	if err != nil {
		return stub.Fail(req.Self, fmt.Errorf("cannot extract to %s: %w", dir, err))
	}
	log("extract to " + dir)
	fmt.Println(dir)
	return 0
}

// Unpack extracts the payload of file (trailer t) into the empty
// directory dir as an extraction cache entry (stub.Unpack): read-only,
// with the image's tricks refused or neutralised, and the payload's digest
// checked as it is read, by a second reader alongside the extraction;
// subdir, when set, is the directory of the payload to extract alone.
func Unpack(file *os.File, t *trailer.Trailer, dir, subdir string) error {
	digest := make(chan error, 1)
	go func() { digest <- stub.Verify(file, t) }()
	rd, err := image.NewReader(io.NewSectionReader(file, int64(t.Offset), int64(t.Size)), int64(t.Size))
	if err == nil {
		err = rd.Extract(dir, image.ExtractOptions{
			Subdir:    subdir,
			Untrusted: true,
			ReadOnly:  true,
			Warn:      func(s string) { fmt.Fprintf(os.Stderr, "parker: %s: warning: %s\n", file.Name(), s) },
		})
	}
	if derr := <-digest; derr != nil {
		return derr // the cause of whatever else went wrong
	}
	return err
}

// info prints what `parker inspect` prints, from the same packed.Describe,
// so the two always agree (--json: the same object). Like inspect, it
// checks the digest: this reads the whole payload, unlike a run.
func info(req stub.Request) int {
	fi, err := req.File.Stat()
	if err != nil {
		return stub.Fail(req.Self, err)
	}
	in, err := packed.Describe(req.File, fi.Size(), req.Self, true)
	if err != nil {
		return stub.Fail(req.Self, err)
	}
	if req.JSON {
		os.Stdout.Write(in.JSON())
		return 0
	}
	in.WriteText(os.Stdout)
	return 0
}

// list prints what `parker ls` prints, from the same packed.List, so the
// two always agree.
func list(req stub.Request) int {
	t := req.Trailer
	err := packed.List(os.Stdout, io.NewSectionReader(req.File, int64(t.Offset), int64(t.Size)), int64(t.Size),
		packed.ListFormat(req.Long, req.JSON))
	switch {
	case errors.Is(err, syscall.EPIPE):
		// The reader went away (toold --parker-ls | head): nothing to
		// say, as in parker ls.
		return stub.ExitFailure
	case err != nil:
		return stub.Fail(req.Self, err)
	}
	return 0
}
