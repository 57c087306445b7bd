package closure

import (
	"debug/elf"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// search finds the library name that obj needs, as glibc's loader does:
// when obj has no DT_RUNPATH, the DT_RPATH of obj and of the objects that
// needed it, up to the program, and the target's; then
// LD_LIBRARY_PATH, obj's DT_RUNPATH, the loader's cache, the system's
// directories; only a file of obj's ELF class and machine will do. It
// returns the path ("" when nothing is found), the cache flags, and
// whether a directory named by $ORIGIN had it.
func (f *finder) search(obj object, name string) (string, int32, bool, error) {
	flags, err := f.abiFlagsFor(obj.e)
	if err != nil {
		return "", 0, false, err
	}
	if strings.Contains(name, "/") {
		// A path: the loader takes it as it is (relative to the cwd).
		if f.fits(name, obj.e) {
			return name, flags, false, nil
		}
		return "", flags, false, nil
	}
	var dirs []searchDir
	if len(obj.e.RunPath) == 0 {
		// The DT_RPATH of obj, of what needed it, and on up (an object
		// with a DT_RUNPATH has no DT_RPATH for the loader), then the
		// program's.
		sawTarget := false
		for p := &obj; p != nil && p.e != nil; p = p.parent {
			if len(p.e.RunPath) == 0 {
				dirs = append(dirs, f.expand(*p, p.e.RPath)...)
			}
			sawTarget = sawTarget || p.e == f.target
		}
		if t := f.target; t != nil && !sawTarget && len(t.RunPath) == 0 {
			dirs = append(dirs, f.expand(object{e: t, path: f.targetPath}, t.RPath)...)
		}
	}
	for _, d := range f.o.LibraryPath {
		dirs = append(dirs, searchDir{d, false})
	}
	dirs = append(dirs, f.expand(obj, obj.e.RunPath)...)
	for _, d := range dirs {
		if p := filepath.Join(d.path, name); f.fits(p, obj.e) {
			return p, flags, d.origin, nil
		}
	}
	for _, c := range f.o.Cache {
		if c.Soname == name && c.HWCap == 0 && c.Flags == flags && f.fits(c.Path, obj.e) {
			return c.Path, c.Flags, false, nil
		}
	}
	for _, d := range systemDirs(obj.e) {
		if p := filepath.Join(d, name); f.fits(p, obj.e) {
			return p, flags, false, nil
		}
	}
	return "", flags, false, nil
}

// searchDir is a directory to look for a library in, and whether $ORIGIN
// named it.
type searchDir struct {
	path   string
	origin bool
}

// expand resolves $ORIGIN in dirs, against obj's directory.
func (f *finder) expand(obj object, dirs []string) []searchDir {
	out := make([]searchDir, 0, len(dirs))
	origin := filepath.Dir(obj.path)
	for _, d := range dirs {
		// A library of the store runs from the store's directory: what
		// its $ORIGIN finds here is not found there.
		o := isOrigin(d) && !obj.stored
		d = strings.ReplaceAll(strings.ReplaceAll(d, "${ORIGIN}", origin), "$ORIGIN", origin)
		if d == "" {
			d = "."
		}
		out = append(out, searchDir{d, o})
	}
	return out
}

// abiFlagsFor are the cache flags of libraries of e's ABI: those the
// host's cache gives its libc of that class and machine, or, where it has
// none, what parker knows; an ABI it knows neither way is an error.
func (f *finder) abiFlagsFor(e *ELF) (int32, error) {
	key := [2]int{int(e.Class), int(e.Machine)}
	if fl, ok := f.flags[key]; ok {
		return fl, nil
	}
	fl := int32(0)
	for _, c := range f.o.Cache {
		if c.Soname == "libc.so.6" && c.HWCap == 0 {
			if l, err := ReadELF(c.Path); err == nil && l.Class == e.Class && l.Machine == e.Machine {
				fl = c.Flags
				break
			}
		}
	}
	if fl == 0 {
		fl = abiFlags(e.Class, e.Machine)
	}
	if fl == 0 {
		return 0, fmt.Errorf("closure: parker does not know how glibc's loader cache marks %s %s libraries (no libc of that kind in /etc/ld.so.cache)",
			e.Class, e.Machine)
	}
	if f.flags == nil {
		f.flags = map[[2]int]int32{}
	}
	f.flags[key] = fl
	return fl, nil
}

// fits tells whether p is an ELF file the loader of e would load for it.
func (f *finder) fits(p string, e *ELF) bool {
	st, err := os.Stat(p)
	if err != nil || !st.Mode().IsRegular() {
		return false
	}
	l, err := ReadELF(p)
	return err == nil && l.Class == e.Class && l.Machine == e.Machine
}

// systemDirs are the directories the loader of e's ABI looks in last.
func systemDirs(e *ELF) []string {
	var triplet, lib string
	switch {
	case e.Class == elf.ELFCLASS64 && e.Machine == elf.EM_X86_64:
		triplet, lib = "x86_64-linux-gnu", "lib64"
	case e.Class == elf.ELFCLASS64 && e.Machine == elf.EM_AARCH64:
		triplet, lib = "aarch64-linux-gnu", "lib64"
	case e.Class == elf.ELFCLASS32 && e.Machine == elf.EM_386:
		triplet, lib = "i386-linux-gnu", "lib32"
	case e.Class == elf.ELFCLASS32 && e.Machine == elf.EM_ARM:
		triplet, lib = "arm-linux-gnueabihf", "lib"
	}
	var dirs []string
	if triplet != "" {
		dirs = append(dirs, "/lib/"+triplet, "/usr/lib/"+triplet)
	}
	if lib != "" && lib != "lib" {
		dirs = append(dirs, "/"+lib, "/usr/"+lib)
	}
	return append(dirs, "/lib", "/usr/lib")
}
