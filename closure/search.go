package closure

import (
	"debug/elf"
	"os"
	"path/filepath"
	"strings"
)

// search finds the library name that obj needs, as glibc's loader does:
// obj's DT_RPATH (when it has no DT_RUNPATH) and the target's, then
// LD_LIBRARY_PATH, obj's DT_RUNPATH, the loader's cache, the system's
// directories; only a file of obj's ELF class and machine will do. It
// returns the path and the cache flags, or "" when nothing is found.
func (f *finder) search(obj object, name string) (string, int32, error) {
	flags := abiFlags(obj.e.Class, obj.e.Machine)
	if strings.Contains(name, "/") {
		// A path: the loader takes it as it is (relative to the cwd).
		if f.fits(name, obj.e) {
			return name, flags, nil
		}
		return "", flags, nil
	}
	var dirs []string
	if len(obj.e.RunPath) == 0 {
		dirs = append(dirs, f.expand(obj, obj.e.RPath)...)
		if t := f.target; t != nil && t != obj.e && len(t.RunPath) == 0 {
			dirs = append(dirs, f.expand(object{e: t, path: f.targetPath}, t.RPath)...)
		}
	}
	dirs = append(dirs, f.o.LibraryPath...)
	dirs = append(dirs, f.expand(obj, obj.e.RunPath)...)
	for _, d := range dirs {
		if p := filepath.Join(d, name); f.fits(p, obj.e) {
			return p, flags, nil
		}
	}
	for _, c := range f.o.Cache {
		if c.Soname == name && c.HWCap == 0 && (flags == 0 || c.Flags == flags) && f.fits(c.Path, obj.e) {
			return c.Path, c.Flags, nil
		}
	}
	for _, d := range systemDirs(obj.e) {
		if p := filepath.Join(d, name); f.fits(p, obj.e) {
			return p, flags, nil
		}
	}
	return "", flags, nil
}

// expand resolves $ORIGIN in dirs, against obj's directory.
func (f *finder) expand(obj object, dirs []string) []string {
	out := make([]string, 0, len(dirs))
	origin := filepath.Dir(obj.path)
	for _, d := range dirs {
		d = strings.ReplaceAll(strings.ReplaceAll(d, "${ORIGIN}", origin), "$ORIGIN", origin)
		if d == "" {
			d = "."
		}
		out = append(out, d)
	}
	return out
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
