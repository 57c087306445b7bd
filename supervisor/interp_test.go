package supervisor

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/parkerpack/parker/internal/testenv"
)

func TestShebang(t *testing.T) {
	for _, tc := range []struct {
		head, want string
		ok         bool
	}{
		{"#!/bin/sh\n", "/bin/sh", true},
		{"#! \t/usr/bin/env python3 -u\n", "/usr/bin/env", true},
		{"#!/usr/bin/nope", "/usr/bin/nope", true},
		{"#!rel/interp\targ\n", "rel/interp", true},
		{"#!/a\x00/b\n", "/a", true},
		{"#!\n", "", false},
		{"#!   \n/bin/sh\n", "", false},
		{"#", "", false},
		{"\x7fELF", "", false},
		{"", "", false},
	} {
		got, ok := shebang([]byte(tc.head))
		if got != tc.want || ok != tc.ok {
			t.Errorf("%q: got %q, %v; want %q, %v", tc.head, got, ok, tc.want, tc.ok)
		}
	}
}

// fakeELF builds an ELF file of the given class and byte order whose
// program headers are a PT_LOAD and, unless interp is "", a PT_INTERP
// holding interp and its NUL.
func fakeELF(class elf.Class, order binary.ByteOrder, interp string) []byte {
	l, data := elf32, elf.ELFDATA2MSB
	if class == elf.ELFCLASS64 {
		l = elf64
	}
	if order == binary.LittleEndian {
		data = elf.ELFDATA2LSB
	}
	num := 1
	if interp != "" {
		num = 2
	}
	b := make([]byte, l.header+num*l.phdr)
	copy(b, elfMagic)
	b[elfClass], b[elfData], b[elf.EI_VERSION] = byte(class), byte(data), byte(elf.EV_CURRENT)
	put := func(off int, v uint64) {
		if class == elf.ELFCLASS64 {
			order.PutUint64(b[off:], v)
		} else {
			order.PutUint32(b[off:], uint32(v))
		}
	}
	order.PutUint16(b[16:], uint16(elf.ET_EXEC))
	order.PutUint16(b[18:], uint16(elf.EM_X86_64))
	order.PutUint32(b[20:], uint32(elf.EV_CURRENT))
	put(l.phoff, uint64(l.header))
	order.PutUint16(b[l.phentsize-2:], uint16(l.header)) // e_ehsize
	order.PutUint16(b[l.phentsize:], uint16(l.phdr))
	order.PutUint16(b[l.phnum:], uint16(num))
	order.PutUint32(b[l.header:], uint32(elf.PT_LOAD))
	if interp != "" {
		ph := l.header + l.phdr
		order.PutUint32(b[ph:], uint32(elf.PT_INTERP))
		put(ph+l.offset, uint64(len(b)))
		put(ph+l.filesz, uint64(len(interp)+1))
		b = append(append(b, interp...), 0)
	}
	return b
}

func TestElfInterp(t *testing.T) {
	for _, class := range []elf.Class{elf.ELFCLASS32, elf.ELFCLASS64} {
		for _, order := range []binary.ByteOrder{binary.LittleEndian, binary.BigEndian} {
			for _, want := range []string{"/lib/ld-test.so.1", ""} {
				b := fakeELF(class, order, want)
				got, err := elfInterp(bytes.NewReader(b))
				if err != nil || got != want {
					t.Errorf("%v %v: got %q, %v; want %q", class, order, got, err, want)
				}
				// debug/elf, the oracle, reads the same file the same way.
				f, err := elf.NewFile(bytes.NewReader(b))
				if err != nil || len(f.Progs) == 0 {
					t.Fatalf("%v %v: debug/elf: %v", class, order, err)
				}
			}
		}
	}
	noNUL := fakeELF(elf.ELFCLASS64, binary.LittleEndian, "/x")
	noNUL[len(noNUL)-1] = 'y'
	for _, bad := range [][]byte{
		fakeELF(elf.ELFCLASS64, binary.LittleEndian, "/x")[:100], // headers cut off
		noNUL,
		append([]byte{0x7f, 'E', 'L', 'F', 3, 1}, make([]byte, elfHeader64)...), // no such class
	} {
		if got, err := elfInterp(bytes.NewReader(bad)); err == nil {
			t.Errorf("malformed ELF: got %q, no error", got)
		}
	}
	// Real executables: a dynamic one, and this test, static or not.
	for _, p := range []string{"/bin/sh", os.Args[0]} {
		f, err := os.Open(p)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		defer f.Close()
		got, err := elfInterp(f)
		if want := oracleInterp(t, p); err != nil || got != want {
			t.Errorf("%s: got %q, %v; debug/elf says %q", p, got, err, want)
		}
	}
}

// oracleInterp reads the interpreter of the ELF file at path with
// debug/elf.
func oracleInterp(t *testing.T, path string) string {
	f, err := elf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			b := make([]byte, p.Filesz)
			if _, err := p.ReadAt(b, 0); err != nil {
				t.Fatal(err)
			}
			return string(bytes.TrimRight(b, "\x00"))
		}
	}
	return ""
}

func FuzzElfInterp(f *testing.F) {
	f.Add(fakeELF(elf.ELFCLASS64, binary.LittleEndian, "/lib/ld.so"))
	f.Add(fakeELF(elf.ELFCLASS32, binary.BigEndian, "/lib/ld.so"))
	f.Add(fakeELF(elf.ELFCLASS64, binary.LittleEndian, ""))
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := elfInterp(bytes.NewReader(b))
		if err != nil {
			return
		}
		// Whatever we read, debug/elf must read too, where it takes the
		// file at all.
		ef, err := elf.NewFile(bytes.NewReader(b))
		if err != nil {
			return
		}
		for _, p := range ef.Progs {
			if p.Type == elf.PT_INTERP {
				d := make([]byte, p.Filesz)
				if _, err := p.ReadAt(d, 0); err == nil {
					if i := bytes.IndexByte(d, 0); i >= 0 && string(d[:i]) != got {
						t.Errorf("got %q, debug/elf %q", got, d[:i])
					}
				}
				return
			}
		}
	})
}

func TestMissingInterpreter(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	os.Mkdir(filepath.Join(dir, "cwd"), 0o755)
	// Exec changes into Dir before it fails: come back after each.
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	defer os.Chdir(wd)
	for _, tc := range []struct {
		name, path, dir, want string
	}{
		{"script", write("script", "#!/usr/bin/nope -x\necho\n", 0o755), "", "/usr/bin/nope"},
		{"chained", write("outer", "#!"+write("inner", "#!/nope/sh\n", 0o755)+"\n", 0o755), "", "/nope/sh"},
		{"relative", write("rel", "#!bin/nope\n", 0o755), filepath.Join(dir, "cwd"), filepath.Join(dir, "cwd", "bin/nope")},
		{"target missing", filepath.Join(dir, "absent"), "", ""},
	} {
		err := Exec(Config{Path: tc.path, Args: []string{tc.name}, Dir: tc.dir})
		os.Chdir(wd)
		var se *StartError
		if !errors.As(err, &se) {
			t.Fatalf("%s: got %v, want a StartError", tc.name, err)
		}
		if got := se.MissingInterpreter(); got != tc.want || !se.Missing() || se.Unreadable() {
			t.Errorf("%s: interpreter %q (missing %v, unreadable %v), want %q", tc.name, got, se.Missing(), se.Unreadable(), tc.want)
		}
		if got := se.MissingLoader(); got != "" {
			t.Errorf("%s: a script's interpreter taken for an ELF loader: %q", tc.name, got)
		}
	}
	// An ELF file the kernel refused with ENOENT (the end-to-end tests
	// run one; the kernel would refuse this one's machine type first).
	elfFile := write("elf", string(fakeELF(elf.ELFCLASS64, binary.LittleEndian, "/nonexistent/ld.so")), 0o755)
	if got := (&StartError{Path: elfFile, Err: syscall.ENOENT}).MissingInterpreter(); got != "/nonexistent/ld.so" {
		t.Errorf("elf: interpreter %q, want /nonexistent/ld.so", got)
	}
	if got := (&StartError{Path: elfFile, Err: syscall.ENOENT}).MissingLoader(); got != "/nonexistent/ld.so" {
		t.Errorf("elf: loader %q, want /nonexistent/ld.so", got)
	}
	// Not a missing file: nothing to name.
	se := &StartError{Path: write("noexec", "#!/nope\n", 0o644), Err: syscall.EACCES}
	if got := se.MissingInterpreter(); got != "" {
		t.Errorf("EACCES: interpreter %q, want none", got)
	}
}

func TestUnreadable(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{syscall.EIO, true},
		{syscall.EUCLEAN, true},
		{syscall.EBADMSG, true},
		{syscall.ENOENT, false},
		{syscall.EACCES, false},
		{syscall.ENOEXEC, false},
	} {
		if got := (&StartError{Err: tc.err}).Unreadable(); got != tc.want {
			t.Errorf("%v: unreadable %v, want %v", tc.err, got, tc.want)
		}
	}
}

// TestNotFound: the loaders' words for a library they cannot load.
func TestNotFound(t *testing.T) {
	for _, tc := range []struct{ out, want string }{
		{"/srv/app: error while loading shared libraries: libq.so.1: cannot open shared object file: No such file or directory\n", "libq.so.1"},
		{"\tlinux-vdso.so.1 (0x00007f06b91cf000)\n\tlibq.so.1 => not found\n\tlibc.so.6 => /lib/libc.so.6 (0x7f)\n", "libq.so.1"},
		{"\tlibc.so => /lib/ld-musl-x86_64.so.1 (0x7f)\nError loading shared library libz.so.1: No such file or directory (needed by /srv/app)\n", "libz.so.1"},
		{"\tlibc.so.6 => /lib/libc.so.6 (0x7f)\n", ""},
		{"/srv/app: error while loading shared libraries: libq.so.1: wrong ELF class: ELFCLASS32\n", ""},
		{"", ""},
	} {
		if got := notFound([]byte(tc.out)); got != tc.want {
			t.Errorf("notFound(%q) = %q; want %q", tc.out, got, tc.want)
		}
	}
}

// TestMissingLibrary: the loader, asked, names the library a program
// cannot load here, and none where it can (LD_LIBRARY_PATH from the
// program's environment, relative to its working directory).
func TestMissingLibrary(t *testing.T) {
	if _, err := exec.LookPath("gcc"); err != nil {
		testenv.Unavailable(t, "gcc: %v", err)
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "l.c"), []byte("int l(void) { return 0; }\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "p.c"), []byte("int l(void);\nint main(void) { return l(); }\n"), 0o644)
	for _, args := range [][]string{{"-shared", "-fPIC", "-Wl,-soname,libparkerl.so.1", "-o", "libparkerl.so.1", "l.c"}, {"-o", "p", "p.c", "./libparkerl.so.1"}} {
		c := exec.Command("gcc", args...)
		c.Dir = dir
		if b, err := c.CombinedOutput(); err != nil {
			t.Fatalf("gcc %v: %v\n%s", args, err, b)
		}
	}
	env := []string{"PATH=/usr/bin:/bin"}
	if got := MissingLibrary(Config{Path: filepath.Join(dir, "p"), Env: env}); got != "libparkerl.so.1" {
		t.Errorf("no library: %q; want libparkerl.so.1", got)
	}
	if got := MissingLibrary(Config{Path: "p", Dir: dir, Env: append(env, "LD_LIBRARY_PATH=.")}); got != "" {
		t.Errorf("the library in LD_LIBRARY_PATH: %q; want none missing", got)
	}
	if got := MissingLibrary(Config{Path: "/bin/true", Env: env}); got != "" {
		t.Errorf("/bin/true: %q", got)
	}
}
