package main

import (
	"bytes"
	"encoding/binary"
	"os"
	"strings"
	"testing"
)

// elf64 builds an ELF64 header followed by program headers of the given types.
func elf64(types ...uint32) []byte {
	const phentsize = 56
	b := make([]byte, elfHeaderSize+phentsize*len(types))
	copy(b, "\x7fELF")
	b[4], b[5] = elfClass64, elfData2LSB
	le := binary.LittleEndian
	le.PutUint64(b[elfPhoff:], elfHeaderSize)
	le.PutUint16(b[elfPhentsize:], phentsize)
	le.PutUint16(b[elfPhnum:], uint16(len(types)))
	for i, typ := range types {
		le.PutUint32(b[elfHeaderSize+i*phentsize:], typ)
	}
	return b
}

func TestDynamicELF(t *testing.T) {
	for _, tt := range []struct {
		name string
		b    []byte
		want bool
	}{
		{"static", elf64(6, 1, 1, 4), false},
		{"dynamic", elf64(6, ptInterp, 1, 2), true},
		{"not ELF", []byte("#!/bin/sh\necho hi\n"), false},
		{"truncated", elf64(6, ptInterp)[:70], false},
		{"empty", nil, false},
	} {
		if got := dynamicELF(bytes.NewReader(tt.b)); got != tt.want {
			t.Errorf("%s: dynamicELF = %v, want %v", tt.name, got, tt.want)
		}
	}
	// The running test binary is an ELF file this parser must get through.
	if f, err := os.Open("/proc/self/exe"); err == nil {
		defer f.Close()
		dynamicELF(f)
	}
}

func TestStubWarnings(t *testing.T) {
	if w := stubWarnings(bytes.NewReader(elf64(1)), 3<<20); len(w) != 0 {
		t.Errorf("static, small: %q", w)
	}
	w := stubWarnings(bytes.NewReader(elf64(ptInterp)), 6<<20)
	if len(w) != 2 || !strings.Contains(w[0], "CGO_ENABLED=0") || !strings.Contains(w[1], "6.0 MiB") {
		t.Errorf("dynamic, big: %q", w)
	}
}
