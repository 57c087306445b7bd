package trailer

import (
	"bytes"
	"io"
	"testing"
)

func TestMarked(t *testing.T) {
	stub := append([]byte("\x7fELF\x02\x01\x01\x00\x00"), make([]byte, 100)...)
	for i := range stub[16:] {
		stub[16+i] = byte(i)
	}
	orig := append([]byte(nil), stub...)
	if HasMark(stub) {
		t.Fatal("an unmarked ELF has the mark")
	}
	m := Marked(bytes.NewReader(stub))
	// Read in every split, so a read that covers part of the mark gets
	// that part.
	for chunk := 1; chunk <= len(stub); chunk++ {
		var got []byte
		buf := make([]byte, chunk)
		for off := int64(0); off < int64(len(stub)); {
			n, err := m.ReadAt(buf, off)
			got = append(got, buf[:n]...)
			off += int64(n)
			if err == io.EOF {
				break
			}
		}
		want := append(append(append([]byte(nil), orig[:MarkOffset]...), Magic[:MarkSize]...), orig[MarkOffset+MarkSize:]...)
		if !bytes.Equal(got, want) {
			t.Fatalf("chunk %d: read %q, want %q", chunk, got[:20], want[:20])
		}
		if !HasMark(got) || !ReadMark(bytes.NewReader(got)) {
			t.Fatalf("chunk %d: the marked stub has no mark", chunk)
		}
	}
	if !bytes.Equal(stub, orig) {
		t.Error("Marked changed its source")
	}
	if ReadMark(bytes.NewReader([]byte("\x7fELF"))) || HasMark([]byte("#!/bin/sh\nPARKER\x00")) {
		t.Error("a short file or a non-ELF file has the mark")
	}
}
