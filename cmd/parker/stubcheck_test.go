package main

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"os"
	"strings"
	"testing"
)

// elf64 builds an ELF64 header followed by program headers of the given
// types and, when sections is not nil, section headers of those types.
func elf64(types []uint32, sections ...uint32) []byte {
	const phentsize, shentsize = 56, 64
	b := make([]byte, elfHeaderSize+phentsize*len(types)+shentsize*len(sections))
	copy(b, "\x7fELF")
	b[4], b[5] = elfClass64, elfData2LSB
	le := binary.LittleEndian
	le.PutUint64(b[elfPhoff:], elfHeaderSize)
	le.PutUint16(b[elfPhentsize:], phentsize)
	le.PutUint16(b[elfPhnum:], uint16(len(types)))
	for i, typ := range types {
		le.PutUint32(b[elfHeaderSize+i*phentsize:], typ)
	}
	shoff := elfHeaderSize + phentsize*len(types)
	le.PutUint64(b[elfShoff:], uint64(shoff))
	le.PutUint16(b[elfShentsize:], shentsize)
	le.PutUint16(b[elfShnum:], uint16(len(sections)))
	for i, typ := range sections {
		le.PutUint32(b[shoff+i*shentsize+4:], typ)
	}
	return b
}

func ph(types ...uint32) []uint32 { return types }

func TestDynamicELF(t *testing.T) {
	for _, tt := range []struct {
		name string
		b    []byte
		want bool
	}{
		{"static", elf64(ph(6, 1, 1, 4)), false},
		{"dynamic", elf64(ph(6, ptInterp, 1, 2)), true},
		{"not ELF", []byte("#!/bin/sh\necho hi\n"), false},
		{"truncated", elf64(ph(6, ptInterp))[:70], false},
		{"empty", nil, false},
	} {
		if got := dynamicELF(bytes.NewReader(tt.b)); got != tt.want {
			t.Errorf("%s: dynamicELF = %v, want %v", tt.name, got, tt.want)
		}
	}
}

// On real executables the probes must agree with debug/elf, which parses
// the whole file: the test binary and, where this machine has them, two
// system programs (dynamic on most distributions).
func TestELFProbesAgreeWithDebugELF(t *testing.T) {
	checked := 0
	for _, p := range []string{"/proc/self/exe", "/bin/sh", "/usr/bin/env"} {
		ef, err := elf.Open(p)
		if err != nil {
			continue
		}
		wantDynamic, wantSymtab := false, false
		for _, prog := range ef.Progs {
			wantDynamic = wantDynamic || prog.Type == elf.PT_INTERP
		}
		for _, s := range ef.Sections {
			wantSymtab = wantSymtab || s.Type == elf.SHT_SYMTAB
		}
		class, data := ef.Class, ef.Data
		ef.Close()
		if class != elf.ELFCLASS64 || data != elf.ELFDATA2LSB {
			wantDynamic, wantSymtab = false, false // the probes read only ELF64 LE
		}
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		if got := dynamicELF(f); got != wantDynamic {
			t.Errorf("%s: dynamicELF = %v, debug/elf finds PT_INTERP: %v", p, got, wantDynamic)
		}
		if got := unstrippedELF(f); got != wantSymtab {
			t.Errorf("%s: unstrippedELF = %v, debug/elf finds a symbol table: %v", p, got, wantSymtab)
		}
		f.Close()
		checked++
	}
	if checked == 0 {
		t.Fatal("no ELF executable to check, not even /proc/self/exe")
	}
}

func TestUnstrippedELF(t *testing.T) {
	if unstrippedELF(bytes.NewReader(elf64(ph(1), 0, 1, 3, 8))) {
		t.Error("stripped file reported unstripped")
	}
	if !unstrippedELF(bytes.NewReader(elf64(ph(1), 0, 1, shtSymtab, 3))) {
		t.Error("symbol table not found")
	}
}

func TestStubWarnings(t *testing.T) {
	if w := stubWarnings(bytes.NewReader(elf64(ph(1), shtSymtab)), 3<<20); len(w) != 0 {
		t.Errorf("static, small: %q", w)
	}
	if w := stubWarnings(bytes.NewReader(elf64(ph(1), 3)), 5<<20); len(w) != 0 {
		t.Errorf("static, stripped, big: %q", w)
	}
	w := stubWarnings(bytes.NewReader(elf64(ph(ptInterp), shtSymtab)), 6<<20)
	if len(w) != 2 || !strings.Contains(w[0], "CGO_ENABLED=0") || !strings.Contains(w[1], "6.0 MiB") {
		t.Errorf("dynamic, big: %q", w)
	}
}
