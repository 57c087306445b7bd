package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/parkerpack/parker/image"
)

// report is what `parker inspect` prints. Trailer fields are always set;
// image fields only when the payload could be read (null in JSON otherwise).
type report struct {
	File          string  `json:"file"`
	FileSize      int64   `json:"file_size"`
	FormatVersion int     `json:"format_version"`
	Target        string  `json:"target"`
	StubSize      uint64  `json:"stub_size"`
	Offset        uint64  `json:"offset"`
	Size          uint64  `json:"size"`
	Digest        string  `json:"digest"`
	DigestOK      bool    `json:"digest_ok"`
	Compression   string  `json:"compression"`
	Level         int32   `json:"level"`
	BlockSize     uint32  `json:"block_size"`
	KeepOwner     bool    `json:"keep_owner"`
	CreatedBy     string  `json:"created_by"`
	Files         *uint32 `json:"files"`  // inodes in the superblock
	Inodes        *uint32 `json:"inodes"` // the same count, under its squashfs name
	Mtime         *int64  `json:"mtime"`  // superblock time, seconds since the epoch
	ImageError    string  `json:"image_error,omitempty"`
}

// inspect runs `parker inspect [--json] FILE`.
func inspect(c *config, stdout, stderr io.Writer) int {
	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "parker: "+format+"\n", a...)
		return exitFail
	}
	f, err := os.Open(c.file)
	if err != nil {
		return fail("inspect %s: %v", c.file, errnoOf(err))
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fail("inspect %s: %v", c.file, errnoOf(err))
	}
	if !fi.Mode().IsRegular() {
		return fail("inspect %s: not a regular file", c.file)
	}
	t, err := image.ReadTrailer(f, fi.Size())
	switch {
	case errors.Is(err, image.ErrNoTrailer):
		return fail("inspect %s: not a packed file (no parker trailer)", c.file)
	case err != nil:
		return fail("inspect %s: %v", c.file, err)
	}

	rep := report{
		File:          c.file,
		FileSize:      fi.Size(),
		FormatVersion: int(t.Version),
		Target:        t.Target,
		StubSize:      t.StubSize,
		Offset:        t.Offset,
		Size:          t.Size,
		Digest:        "sha256:" + hex.EncodeToString(t.Digest[:]),
		Compression:   t.Compression,
		Level:         t.Level,
		BlockSize:     t.BlockSize,
		KeepOwner:     t.Flags&image.TrailerKeepOwner != 0,
		CreatedBy:     t.CreatedBy,
	}
	payload := io.NewSectionReader(f, int64(t.Offset), int64(t.Size))
	h := sha256.New()
	if _, err := io.Copy(h, payload); err != nil {
		return fail("inspect %s: read payload: %v", c.file, errnoOf(err))
	}
	rep.DigestOK = string(h.Sum(nil)) == string(t.Digest[:])
	if r, err := image.NewReader(payload, int64(t.Size)); err != nil {
		rep.ImageError = err.Error()
	} else {
		sb := r.Superblock()
		n, m := sb.Inodes, int64(sb.ModTime)
		rep.Files, rep.Inodes, rep.Mtime = &n, &n, &m
		if got := r.Compression(); got != t.Compression {
			rep.ImageError = fmt.Sprintf("image compression %s differs from the trailer's %s", got, t.Compression)
		}
	}

	if c.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return fail("inspect: %v", err)
		}
	} else {
		printReport(stdout, &rep)
	}
	switch {
	case rep.ImageError != "":
		return fail("inspect %s: the image could not be read: %s", c.file, rep.ImageError)
	case !rep.DigestOK:
		return fail("inspect %s: payload digest mismatch: the file is damaged", c.file)
	}
	return exitOK
}

func printReport(w io.Writer, r *report) {
	line := func(k, format string, a ...any) {
		fmt.Fprintf(w, "%-15s %s\n", k+":", fmt.Sprintf(format, a...))
	}
	line("file", "%s (%d bytes)", r.File, r.FileSize)
	line("format_version", "%d", r.FormatVersion)
	line("target", "%s", r.Target)
	line("stub_size", "%d (%s)", r.StubSize, humanBytes(int64(r.StubSize)))
	line("offset", "%d", r.Offset)
	line("size", "%d (%s)", r.Size, humanBytes(int64(r.Size)))
	ok := "verified"
	if !r.DigestOK {
		ok = "MISMATCH"
	}
	line("digest", "%s (%s)", r.Digest, ok)
	line("compression", "%s", r.Compression)
	line("level", "%d", r.Level)
	line("block_size", "%d (%s)", r.BlockSize, humanBytes(int64(r.BlockSize)))
	line("keep_owner", "%t", r.KeepOwner)
	line("created_by", "%s", r.CreatedBy)
	if r.Files != nil {
		line("files", "%d", *r.Files)
		line("mtime", "%d (%s)", *r.Mtime, time.Unix(*r.Mtime, 0).UTC().Format(time.RFC3339))
	} else {
		line("files", "unknown (image unreadable)")
	}
	line("mount", "mount -o loop,ro,offset=%d %s DIR", r.Offset, r.File)
}
