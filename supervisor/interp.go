package supervisor

// Why a target could not start, beyond its errno: the kernel says ENOENT
// both for a missing target and for a missing interpreter (the program on
// a script's #! line, or an ELF file's loader), and EIO for any unreadable
// block of it. These read the target as the kernel would have, after the
// fact, on the failure path only: nothing here runs on a start that works.
// ELF headers are read by hand, not with debug/elf, which would add its
// decompressors and DWARF reader to the lean stub's start.

import (
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"syscall"
)

// Unreadable reports whether the target (or a file the kernel read to start
// it) could not be read from its file system: squashfs returns EIO for a
// block that does not decompress; other file systems say EUCLEAN
// (EFSCORRUPTED) or EBADMSG (EFSBADCRC) for a corrupt one.
func (e *StartError) Unreadable() bool {
	return errors.Is(e.Err, syscall.EIO) || errors.Is(e.Err, syscall.EUCLEAN) || errors.Is(e.Err, syscall.EBADMSG)
}

// MissingInterpreter returns the interpreter the target needs that does
// not exist: the program on its #! line, or its ELF interpreter (PT_INTERP),
// following a #! line that names another script as the kernel does. It
// returns "" when the target itself is missing, or when every interpreter
// it names exists.
func (e *StartError) MissingInterpreter() string {
	interp, _ := e.missingInterpreter()
	return interp
}

// MissingLoader is MissingInterpreter when what is missing is an ELF
// file's loader (PT_INTERP), not the program on a #! line: the target was
// built for a system with another loader, or none.
func (e *StartError) MissingLoader() string {
	if interp, loader := e.missingInterpreter(); loader {
		return interp
	}
	return ""
}

func (e *StartError) missingInterpreter() (interp string, loader bool) {
	if !e.Missing() {
		return "", false
	}
	path := e.Path
	// The kernel nests at most this many interpreters (BINPRM_MAX_RECURSION).
	for range maxInterpreters {
		interp, elf, err := interpreter(path)
		if err != nil || interp == "" {
			return "", false
		}
		if !filepath.IsAbs(interp) && e.Dir != "" {
			interp = filepath.Join(e.Dir, interp) // the kernel resolves it in the target's cwd
		}
		if _, err := os.Stat(interp); errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ENOTDIR) {
			return interp, elf
		} else if err != nil {
			return "", false
		}
		path = interp
	}
	return "", false
}

const maxInterpreters = 4

// The kernel reads this much of a file to pick its format (BINPRM_BUF_SIZE):
// a #! line is cut there.
const headSize = 256

// interpreter returns the interpreter that the executable at path names,
// or "" when it names none (a static ELF file, another format), and
// whether it is an ELF file's loader.
func interpreter(path string) (string, bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", false, err
	}
	defer f.Close()
	head := make([]byte, headSize)
	n, err := f.ReadAt(head, 0)
	if n == 0 && err != nil && err != io.EOF {
		return "", false, err
	}
	head = head[:n]
	if interp, ok := shebang(head); ok {
		return interp, false, nil
	}
	interp, err := elfInterp(f)
	return interp, interp != "", err
}

// shebang returns the program named on a #! line, as the kernel splits it
// (binfmt_script): after "#!" and any blanks, up to a blank, NUL or the end
// of the line.
func shebang(head []byte) (string, bool) {
	if len(head) < 2 || head[0] != '#' || head[1] != '!' {
		return "", false
	}
	line := head[2:]
	for len(line) > 0 && (line[0] == ' ' || line[0] == '\t') {
		line = line[1:]
	}
	end := 0
	for end < len(line) && line[end] != ' ' && line[end] != '\t' && line[end] != '\n' && line[end] != 0 {
		end++
	}
	return string(line[:end]), end > 0
}

// ELF layout (the System V gABI), the little of it that leads to the
// interpreter: the class and byte order in e_ident, the program header
// table's place in the file header, and each header's type and extent.
const (
	elfMagic     = "\x7fELF"
	elfClass     = 4 // e_ident[EI_CLASS]
	elfData      = 5 // e_ident[EI_DATA]
	elfClass32   = 1
	elfClass64   = 2
	elfDataLSB   = 1
	elfDataMSB   = 2
	elfHeader64  = 64
	elfHeader32  = 52
	ptInterp     = 3
	maxPhdrBytes = 64 << 10 // the kernel refuses larger tables (elf_read_phdrs)
	maxInterpLen = 4096     // PATH_MAX, the kernel's limit on p_filesz
)

// elfLayout holds where one ELF class keeps the fields read here.
type elfLayout struct {
	header                  int // file header size
	phoff, phentsize, phnum int // offsets in the file header
	offset, filesz          int // offsets in a program header
	phdr                    int // program header size
}

var (
	elf64 = elfLayout{header: elfHeader64, phoff: 32, phentsize: 54, phnum: 56, offset: 8, filesz: 32, phdr: 56}
	elf32 = elfLayout{header: elfHeader32, phoff: 28, phentsize: 42, phnum: 44, offset: 4, filesz: 16, phdr: 32}
)

// errELF means a file starts like ELF but its headers do not hold.
var errELF = errors.New("malformed ELF headers")

// elfInterp returns the path in an ELF file's PT_INTERP program header, or
// "" for a file that is not ELF or has none (a static executable).
func elfInterp(r io.ReaderAt) (string, error) {
	var ident [elfHeader64]byte
	n, _ := r.ReadAt(ident[:], 0)
	if n < elfHeader32 || string(ident[:len(elfMagic)]) != elfMagic {
		return "", nil
	}
	var l elfLayout
	switch ident[elfClass] {
	case elfClass64:
		l = elf64
	case elfClass32:
		l = elf32
	default:
		return "", errELF
	}
	var bo binary.ByteOrder
	switch ident[elfData] {
	case elfDataLSB:
		bo = binary.LittleEndian
	case elfDataMSB:
		bo = binary.BigEndian
	default:
		return "", errELF
	}
	if n < l.header {
		return "", errELF
	}
	word := func(b []byte, off int) uint64 {
		if l.header == elfHeader64 {
			return bo.Uint64(b[off:])
		}
		return uint64(bo.Uint32(b[off:]))
	}
	phoff := word(ident[:], l.phoff)
	size, num := int(bo.Uint16(ident[l.phentsize:])), int(bo.Uint16(ident[l.phnum:]))
	if size < l.phdr || size*num > maxPhdrBytes {
		return "", errELF
	}
	table := make([]byte, size*num)
	if _, err := r.ReadAt(table, int64(phoff)); err != nil {
		return "", errELF
	}
	for i := 0; i < num; i++ {
		ph := table[i*size:]
		if bo.Uint32(ph) != ptInterp {
			continue
		}
		off, length := word(ph, l.offset), word(ph, l.filesz)
		if length < 2 || length > maxInterpLen {
			return "", errELF
		}
		path := make([]byte, length)
		if _, err := r.ReadAt(path, int64(off)); err != nil || path[length-1] != 0 {
			return "", errELF
		}
		// The kernel opens the path up to its first NUL.
		for j, c := range path {
			if c == 0 {
				path = path[:j]
				break
			}
		}
		return string(path), nil
	}
	return "", nil
}
