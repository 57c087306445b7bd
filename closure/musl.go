package closure

import (
	"bytes"
	"debug/elf"
	"errors"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
)

// musl's loader (its ldso/dynlink.c), as far as a closure needs it. It is
// musl's libc too, and it has no cache: it looks for a library by name in
// LD_LIBRARY_PATH, then in the RUNPATH (or RPATH) of what needs it and of
// what needed that, up to the program, then in its system path: the lines
// of PREFIX/etc/ld-musl-ARCH.path, where PREFIX is its own name (the
// program's PT_INTERP) less its last two components, or else /lib,
// /usr/local/lib and /usr/lib. The libraries named after its own parts
// (libc, libpthread, libm, ...) are itself.
//
// So the store keeps a musl loader unchanged, at MuslDir/<digest>, where it
// reads StoreDir/etc/ld-musl-ARCH.path, which names MuslDir/ARCH: the
// store's musl libraries of that architecture, by soname.

// muslLoader is a musl loader of the pack host.
type muslLoader struct {
	arch    string   // its LDSO_ARCH: x86_64, aarch64
	sysPath []string // where it looks last, on the pack host
	// The ELF class and machine of the first program it loads.
	class   elf.Class
	machine elf.Machine
}

// libDir is where the store's musl libraries of m's architecture are.
func (m *muslLoader) libDir() string { return path.Join(MuslDir, m.arch) }

// muslLibc tells whether a library needs musl's libc by name (musl's
// libraries name libc.so; glibc's, libc.so.6).
func muslLibc(name string) bool {
	return name == "libc.so" || strings.HasPrefix(name, "libc.musl-")
}

// muslFor is the musl loader of the pack that loads programs of e's
// class and machine (the first, by its path), or nil.
func (f *finder) muslFor(e *ELF) *muslLoader {
	for _, k := range slices.Sorted(maps.Keys(f.musls)) {
		if m := f.musls[k]; m.class == e.Class && m.machine == e.Machine {
			return m
		}
	}
	return nil
}

// muslFlags stand for a musl library's ABI where glibc's cache flags
// would (musl libraries are in no cache).
const muslFlags = -1

const (
	muslPrefix = "ld-musl-"
	muslSuffix = ".so.1"
)

// muslArch tells whether the loader at interp, whose bytes are b, is
// musl's, and its architecture.
func muslArch(interp string, b []byte) (string, bool) {
	base := path.Base(interp)
	arch, ok := strings.CutPrefix(base, muslPrefix)
	if arch, ok2 := strings.CutSuffix(arch, muslSuffix); ok && ok2 && arch != "" &&
		bytes.Contains(b, []byte("/etc/"+muslPrefix+arch+".path")) {
		return arch, true
	}
	return "", false
}

// config is where the store's copy of the loader reads its search path.
func (m *muslLoader) config() string {
	return path.Join(StoreName, "etc", muslPrefix+m.arch+".path")
}

// muslSysPath is the system path of the loader that a program names by
// interp, on the pack host.
func muslSysPath(interp, arch string) []string {
	prefix := ""
	if i := strings.LastIndexByte(interp, '/'); i > 0 && interp[0] == '/' {
		if j := strings.LastIndexByte(interp[:i], '/'); j > 0 {
			prefix = interp[:j]
		}
	}
	b, err := os.ReadFile(prefix + "/etc/" + muslPrefix + arch + ".path")
	if errors.Is(err, fs.ErrNotExist) {
		return []string{"/lib", "/usr/local/lib", "/usr/lib"}
	} else if err != nil {
		return nil // musl's loader then searches no system directory
	}
	return strings.FieldsFunc(string(b), func(r rune) bool { return r == ':' || r == '\n' })
}

// muslReserved tells whether name is one of the loader's own parts.
func muslReserved(name string) bool {
	stem, _, _ := strings.Cut(strings.TrimPrefix(name, "lib"), ".")
	if !strings.HasPrefix(name, "lib") {
		return false
	}
	switch stem {
	case "c", "pthread", "rt", "m", "dl", "util", "xnet":
		return true
	}
	return false
}

// searchMusl finds the library name that obj needs, as musl's loader
// does, and tells whether a directory named by $ORIGIN had it.
func (f *finder) searchMusl(obj object, name string) (string, bool) {
	if strings.Contains(name, "/") {
		if f.fits(name, obj.e) {
			return name, false
		}
		return "", false
	}
	var dirs []searchDir
	for _, d := range f.o.LibraryPath {
		dirs = append(dirs, searchDir{d, false})
	}
	for p := &obj; p != nil && p.e != nil; p = p.parent {
		rp := p.e.RunPath
		if len(rp) == 0 {
			rp = p.e.RPath
		}
		dirs = append(dirs, f.expand(*p, rp)...)
	}
	for _, d := range obj.musl.sysPath {
		dirs = append(dirs, searchDir{d, false})
	}
	for _, d := range dirs {
		if p := filepath.Join(d.path, name); f.fits(p, obj.e) {
			return p, d.origin
		}
	}
	return "", false
}
