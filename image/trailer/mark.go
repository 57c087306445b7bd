package trailer

import (
	"bytes"
	"errors"
	"io"
)

// A packed file's stub carries a mark at the front as well as the trailer
// at the end, so a file that lost its end (a truncated download, a copy cut
// short) is still known as a packed file, damaged, rather than as some other
// program: `parker inspect` says so, and a parker built without an embedded
// stub (go install), whose packed files begin with parker itself, does not
// mistake its cut-down copy for the parker command.
//
// The mark is written at pack time into bytes 9 to 15 of the stub's ELF
// identification (e_ident[EI_PAD]), which the ELF specification reserves
// as zero padding and the kernel's loader ignores; AppImage marks its
// runtime in the same place. It is the first MarkSize bytes of Magic.
const (
	MarkOffset = 9
	MarkSize   = 7
	markEnd    = MarkOffset + MarkSize
)

// ErrCutShort: the file begins with a marked stub but has no trailer, as
// when a packed file is truncated. It is what a running stub reports for
// its own file, and `parker inspect` for a file with the mark.
var ErrCutShort = errors.New("truncated or damaged packed file: its parker trailer is missing")

var (
	elfMagic = []byte("\x7fELF")
	mark     = []byte(Magic[:MarkSize])
)

// HasMark reports whether head, the first bytes of a file, is an ELF
// executable that carries a packed file's mark.
func HasMark(head []byte) bool {
	return len(head) >= markEnd && bytes.HasPrefix(head, elfMagic) &&
		bytes.Equal(head[MarkOffset:markEnd], mark)
}

// ReadMark reports whether the file r begins with a marked stub. A read
// error, or a file too short, is reported as no mark.
func ReadMark(r io.ReaderAt) bool {
	head := make([]byte, markEnd)
	_, err := r.ReadAt(head, 0)
	return err == nil && HasMark(head)
}

// Marked returns stub, an ELF executable, with the mark in place: what the
// packer writes before the payload. stub itself is not changed.
func Marked(stub io.ReaderAt) io.ReaderAt { return markedStub{stub} }

type markedStub struct{ r io.ReaderAt }

func (m markedStub) ReadAt(p []byte, off int64) (int, error) {
	n, err := m.r.ReadAt(p, off)
	// Overlay the mark on whatever part of it p covers.
	for i := max(off, MarkOffset); i < min(off+int64(n), markEnd); i++ {
		p[i-off] = mark[i-MarkOffset]
	}
	return n, err
}
