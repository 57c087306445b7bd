// Package closure finds the closure of the ELF programs of a packed
// directory (every library their loader would load, the loader itself,
// found as the pack host's loader finds them), the way Nix finds a
// component's references, and prepares it for the image: a store of
// content-addressed copies, a loader cache naming them, and the programs'
// loader paths pointed at the store, which a run shows at StoreDir.
package closure

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// ELF is what the closure needs of an ELF file: what it names (its
// loader, its libraries, where to look for them) and where those names
// lie in the file, to point them elsewhere.
type ELF struct {
	Class   elf.Class
	Machine elf.Machine
	Data    elf.Data
	Type    elf.Type
	// Interp is the loader PT_INTERP names, "" for none; interpOff and
	// interpSize are the segment's place in the file.
	Interp     string
	interpOff  int64
	interpSize int64
	Soname     string
	Needed     []string
	RPath      []string // DT_RPATH, split at ':'; used only without DT_RUNPATH
	RunPath    []string // DT_RUNPATH, split at ':'
	// pathEntries are the DT_RPATH and DT_RUNPATH entries, to rewrite
	// (KeepOrigin); none when the string table does not start with the
	// empty string, which they may then be pointed at.
	pathEntries []pathEntry
}

// pathEntry is a DT_RPATH or DT_RUNPATH entry: where its d_val word is in
// the file, where its string is, and the string.
type pathEntry struct {
	dval  int64
	strAt int64
	value string
	val   uint64 // d_val
}

// ErrNotELF: the file is not an ELF file (a script, data).
var ErrNotELF = errors.New("not an ELF file")

// ReadELF reads what the closure needs from the ELF file at path, or
// returns ErrNotELF.
func ReadELF(path string) (*ELF, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var magic [4]byte
	if _, err := io.ReadFull(f, magic[:]); err != nil || string(magic[:]) != elf.ELFMAG {
		return nil, ErrNotELF
	}
	return parseELF(f)
}

// parseELF reads an ELF file from r.
func parseELF(r io.ReaderAt) (e *ELF, err error) {
	defer func() {
		// debug/elf is not hardened against every hostile file.
		if p := recover(); p != nil {
			e, err = nil, fmt.Errorf("damaged ELF file: %v", p)
		}
	}()
	f, err := elf.NewFile(r)
	if err != nil {
		return nil, fmt.Errorf("damaged ELF file: %w", err)
	}
	e = &ELF{Class: f.Class, Machine: f.Machine, Data: f.Data, Type: f.Type}
	var dyn *elf.Prog
	for _, p := range f.Progs {
		switch p.Type {
		case elf.PT_INTERP:
			if p.Filesz > 4096 { // PATH_MAX: the kernel refuses more
				return nil, fmt.Errorf("damaged ELF file: PT_INTERP of %d bytes", p.Filesz)
			}
			b := make([]byte, p.Filesz)
			if _, err := r.ReadAt(b, int64(p.Off)); err != nil {
				return nil, fmt.Errorf("read PT_INTERP: %w", err)
			}
			e.Interp = string(bytes.TrimRight(b, "\x00"))
			if i := strings.IndexByte(e.Interp, 0); i >= 0 {
				e.Interp = e.Interp[:i]
			}
			e.interpOff, e.interpSize = int64(p.Off), int64(p.Filesz)
		case elf.PT_DYNAMIC:
			dyn = p
		}
	}
	if dyn == nil {
		return e, nil // static
	}
	if err := e.readDynamic(f, r, dyn); err != nil {
		return nil, err
	}
	return e, nil
}

// readDynamic reads the dynamic section through the program headers (a
// stripped file may have no section headers).
func (e *ELF) readDynamic(f *elf.File, r io.ReaderAt, dyn *elf.Prog) error {
	if dyn.Filesz > 1<<24 {
		return fmt.Errorf("damaged ELF file: dynamic segment of %d bytes", dyn.Filesz)
	}
	b := make([]byte, dyn.Filesz)
	if _, err := r.ReadAt(b, int64(dyn.Off)); err != nil {
		return fmt.Errorf("read the dynamic segment: %w", err)
	}
	size := 16
	if e.Class == elf.ELFCLASS32 {
		size = 8
	}
	word := func(p []byte) uint64 {
		if size == 8 {
			return uint64(f.ByteOrder.Uint32(p))
		}
		return f.ByteOrder.Uint64(p)
	}
	type ref struct {
		tag  elf.DynTag
		val  uint64
		dval int64 // where val is in the file
	}
	var refs []ref
	var strtab, strsz uint64
	for i := 0; i+size <= len(b); i += size {
		tag, val := elf.DynTag(word(b[i:])), word(b[i+size/2:])
		switch tag {
		case elf.DT_NULL:
			i = len(b)
			continue
		case elf.DT_STRTAB:
			strtab = val
		case elf.DT_STRSZ:
			strsz = val
		case elf.DT_NEEDED, elf.DT_SONAME, elf.DT_RPATH, elf.DT_RUNPATH:
			refs = append(refs, ref{tag, val, int64(dyn.Off) + int64(i+size/2)})
		}
	}
	if len(refs) == 0 {
		return nil
	}
	off, ok := fileOffset(f, strtab)
	if !ok || strsz == 0 || strsz > 1<<26 {
		return fmt.Errorf("damaged ELF file: string table at %#x (%d bytes) outside the file", strtab, strsz)
	}
	tab := make([]byte, strsz)
	if _, err := r.ReadAt(tab, int64(off)); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("read the dynamic string table: %w", err)
	}
	str := func(v uint64) (string, error) {
		if v >= uint64(len(tab)) {
			return "", fmt.Errorf("damaged ELF file: string %d past the table's %d bytes", v, len(tab))
		}
		s := tab[v:]
		if i := bytes.IndexByte(s, 0); i >= 0 {
			s = s[:i]
		}
		return string(s), nil
	}
	for _, rf := range refs {
		s, err := str(rf.val)
		if err != nil {
			return err
		}
		switch rf.tag {
		case elf.DT_NEEDED:
			e.Needed = append(e.Needed, s)
		case elf.DT_SONAME:
			e.Soname = s
		case elf.DT_RPATH:
			e.RPath = splitPath(s)
		case elf.DT_RUNPATH:
			e.RunPath = splitPath(s)
		}
		if rf.tag == elf.DT_RPATH || rf.tag == elf.DT_RUNPATH {
			e.pathEntries = append(e.pathEntries, pathEntry{dval: rf.dval, strAt: int64(off) + int64(rf.val), value: s, val: rf.val})
		}
	}
	if len(tab) == 0 || tab[0] != 0 {
		e.pathEntries = nil // nothing empty to point them at: left as they are
	}
	return nil
}

func splitPath(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ":")
}

// fileOffset maps a virtual address to its offset in the file, through
// the loadable segment that holds it.
func fileOffset(f *elf.File, vaddr uint64) (uint64, bool) {
	for _, p := range f.Progs {
		if p.Type == elf.PT_LOAD && vaddr >= p.Vaddr && vaddr-p.Vaddr < p.Filesz {
			return vaddr - p.Vaddr + p.Off, true
		}
	}
	return 0, false
}

// SetInterp points the loader path in b, the bytes of the file e was read
// from, at interp, which must fit where the old one was.
func (e *ELF) SetInterp(b []byte, interp string) error {
	if e.Interp == "" {
		return errors.New("no PT_INTERP to rewrite")
	}
	if int64(len(interp))+1 > e.interpSize || e.interpOff+e.interpSize > int64(len(b)) {
		return fmt.Errorf("the loader path %s does not fit in the %d bytes of PT_INTERP", interp, e.interpSize)
	}
	seg := b[e.interpOff : e.interpOff+e.interpSize]
	clear(seg)
	copy(seg, interp)
	return nil
}

// KeepOrigin drops from e's DT_RPATH and DT_RUNPATH in b the directories
// not named by $ORIGIN (the pack host's, which mean nothing where the
// packed file runs: the loader then finds those libraries in its cache,
// which names the store), and reports whether it changed anything. The
// $ORIGIN ones are kept: where they are the list's end, the entry is
// pointed at that end of its string; none left, at the empty string the
// string table starts with; else the kept ones are written over the
// string's start (shorter, and bytes past its new end left alone, for the
// names that share them).
func (e *ELF) KeepOrigin(b []byte) (bool, error) {
	size := int64(8)
	if e.Class == elf.ELFCLASS32 {
		size = 4
	}
	changed := false
	for _, p := range e.pathEntries {
		dirs := splitPath(p.value)
		var kept []string
		for _, d := range dirs {
			if isOrigin(d) {
				kept = append(kept, d)
			}
		}
		if len(kept) == len(dirs) {
			continue
		}
		if p.dval+size > int64(len(b)) || p.strAt+int64(len(p.value)) >= int64(len(b)) {
			return changed, errors.New("damaged ELF file: dynamic entry past the end")
		}
		joined := strings.Join(kept, ":")
		switch {
		case len(kept) == 0:
			e.putWord(b[p.dval:], 0, size)
		case strings.HasSuffix(p.value, ":"+joined):
			e.putWord(b[p.dval:], p.val+uint64(len(p.value)-len(joined)), size)
		default:
			copy(b[p.strAt:], joined)
			b[p.strAt+int64(len(joined))] = 0
		}
		changed = true
	}
	return changed, nil
}

// putWord writes v as an ELF word of size bytes in e's byte order.
func (e *ELF) putWord(b []byte, v uint64, size int64) {
	if size == 4 {
		e.byteOrder().PutUint32(b, uint32(v))
	} else {
		e.byteOrder().PutUint64(b, v)
	}
}

// isOrigin tells whether a library directory is named by $ORIGIN.
func isOrigin(d string) bool {
	return strings.HasPrefix(d, "$ORIGIN") || strings.HasPrefix(d, "${ORIGIN}")
}

// byteOrder is e's byte order.
func (e *ELF) byteOrder() binary.ByteOrder {
	if e.Data == elf.ELFDATA2MSB {
		return binary.BigEndian
	}
	return binary.LittleEndian
}
