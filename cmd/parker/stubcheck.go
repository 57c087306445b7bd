package main

import (
	"encoding/binary"
	"fmt"
	"io"
)

// maxStubSize is the size goal for the stub (issue 3): every packed file
// carries it.
const maxStubSize = 4 << 20

// ELF64 header fields read by dynamicELF (System V ABI, little-endian).
const (
	elfHeaderSize = 64
	elfPhoff      = 0x20 // e_phoff, u64
	elfPhentsize  = 0x36 // e_phentsize, u16
	elfPhnum      = 0x38 // e_phnum, u16
	elfClass64    = 2
	elfData2LSB   = 1
	ptInterp      = 3 // program header naming the dynamic loader
	maxPhnum      = 256
)

// dynamicELF reports whether r is a 64-bit little-endian ELF executable with
// a PT_INTERP header, i.e. one that needs a dynamic loader and libc at run
// time. Anything it cannot parse counts as static: this only feeds a warning.
// Hand-written rather than debug/elf, which would add its decompressors and
// DWARF tables to the stub.
func dynamicELF(r io.ReaderAt) bool {
	var h [elfHeaderSize]byte
	if _, err := r.ReadAt(h[:], 0); err != nil {
		return false
	}
	if string(h[:4]) != "\x7fELF" || h[4] != elfClass64 || h[5] != elfData2LSB {
		return false
	}
	le := binary.LittleEndian
	off := le.Uint64(h[elfPhoff:])
	size := uint64(le.Uint16(h[elfPhentsize:]))
	n := uint64(le.Uint16(h[elfPhnum:]))
	if size < 4 || n > maxPhnum || off > 1<<20 {
		return false
	}
	var typ [4]byte
	for i := uint64(0); i < n; i++ {
		if _, err := r.ReadAt(typ[:], int64(off+i*size)); err != nil {
			return false
		}
		if le.Uint32(typ[:]) == ptInterp {
			return true
		}
	}
	return false
}

// stubWarnings explains a stub that will make poor packed files: one that
// needs libc (built with cgo), or one over the size goal (not stripped).
func stubWarnings(r io.ReaderAt, size int64) []string {
	var w []string
	if dynamicELF(r) {
		w = append(w, "this parker is dynamically linked (built with cgo), so packed files need a compatible libc "+
			"on the target machine; build it with CGO_ENABLED=0 (make does)")
	}
	if size > maxStubSize {
		w = append(w, fmt.Sprintf("this parker is %s, over the %s stub goal, and every packed file carries it; "+
			"build it stripped with -ldflags='-s -w' (make does)", humanBytes(size), humanBytes(maxStubSize)))
	}
	return w
}
