package image

import (
	"errors"
	"io"
)

// Writer builds a SquashFS image from Entries. Add entries in any order;
// Finish sorts them, streams file data and writes the tables.
type Writer struct {
	w    io.WriterAt
	base int64
	opt  Options
}

// NewWriter returns a Writer that writes the image into w at byte offset base
// onward (bytes [base, base+Stats.Size)). w may hold other data before base;
// the caller truncates or appends after Finish.
func NewWriter(w io.WriterAt, base int64, opt Options) (*Writer, error) {
	if err := opt.Validate(); err != nil {
		return nil, err
	}
	return &Writer{w: w, base: base, opt: opt}, nil
}

// Add records one entry. Parent directories missing from the entries are
// created (0755, owner 0:0, newest mtime).
func (w *Writer) Add(e Entry) error { return errors.New("image: writer not implemented yet") }

// Finish writes the image and returns its statistics.
func (w *Writer) Finish() (Stats, error) {
	return Stats{}, errors.New("image: writer not implemented yet")
}
