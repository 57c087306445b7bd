package main

import (
	"encoding/binary"
	"fmt"
	"io"

	"github.com/parkerpack/parker/internal/human"
)

// maxStubSize is the size goal for the stub: every packed file carries
// it.
const maxStubSize = 4 << 20

// ELF64 header fields read by dynamicELF (System V ABI, little-endian).
const (
	elfHeaderSize = 64
	elfPhoff      = 0x20 // e_phoff, u64
	elfPhentsize  = 0x36 // e_phentsize, u16
	elfPhnum      = 0x38 // e_phnum, u16
	elfShoff      = 0x28 // e_shoff, u64
	elfShentsize  = 0x3a // e_shentsize, u16
	elfShnum      = 0x3c // e_shnum, u16
	shtSymtab     = 2    // section type of the symbol table -s strips
	maxShnum      = 1024
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
	return elfHasType(r, elfPhoff, elfPhentsize, elfPhnum, maxPhnum, 0, ptInterp)
}

// unstrippedELF reports whether r is an ELF64 file that still has a symbol
// table (built without -ldflags=-s).
func unstrippedELF(r io.ReaderAt) bool {
	return elfHasType(r, elfShoff, elfShentsize, elfShnum, maxShnum, 4, shtSymtab)
}

// elfHasType scans the program or section header table whose offset, entry
// size and count sit at the given header fields, for an entry whose 32-bit
// type (at typeAt within the entry) is want.
func elfHasType(r io.ReaderAt, offField, sizeField, numField int, maxNum uint64, typeAt, want uint32) bool {
	var h [elfHeaderSize]byte
	if _, err := r.ReadAt(h[:], 0); err != nil {
		return false
	}
	if string(h[:4]) != "\x7fELF" || h[4] != elfClass64 || h[5] != elfData2LSB {
		return false
	}
	le := binary.LittleEndian
	off := le.Uint64(h[offField:])
	size := uint64(le.Uint16(h[sizeField:]))
	n := uint64(le.Uint16(h[numField:]))
	if size < uint64(typeAt)+4 || n > maxNum || off > 1<<40 {
		return false
	}
	var typ [4]byte
	for i := uint64(0); i < n; i++ {
		if _, err := r.ReadAt(typ[:], int64(off+i*size+uint64(typeAt))); err != nil {
			return false
		}
		if le.Uint32(typ[:]) == want {
			return true
		}
	}
	return false
}

// stubWarnings explains a stub that will make poor packed files, when the
// user can do something about it: one that needs libc (built with cgo), or
// one over the size goal that is not stripped.
func stubWarnings(r io.ReaderAt, size int64) []string {
	var w []string
	if dynamicELF(r) {
		w = append(w, "this parker is dynamically linked (built with cgo), so packed files need a compatible libc "+
			"on the target machine; build it with CGO_ENABLED=0 (make does)")
	}
	if size > maxStubSize && unstrippedELF(r) {
		w = append(w, fmt.Sprintf("this parker is %s, over the %s stub goal, and every packed file carries it; "+
			"build it stripped with -ldflags='-s -w' (make does)", human.Bytes(size), human.Bytes(maxStubSize)))
	}
	return w
}
