package closure

import (
	"bytes"
	"os"
	"testing"
)

// FuzzParseELF: any bytes read as an ELF file give an ELF or an error,
// never a panic, and patching what was read stays inside the bytes.
func FuzzParseELF(f *testing.F) {
	for _, p := range []string{"/bin/true", "/lib/x86_64-linux-gnu/libc.so.6"} {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b[:min(len(b), 1<<16)])
		}
	}
	f.Add([]byte("\x7fELF"))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := parseELF(bytes.NewReader(b))
		if err != nil {
			return
		}
		c := append([]byte(nil), b...)
		if e.Interp != "" {
			e.SetInterp(c, "/.parker/x")
		}
		e.KeepOrigin(c)
		if len(c) != len(b) {
			t.Fatalf("patching changed the length: %d -> %d", len(b), len(c))
		}
	})
}

// FuzzParseCache: any bytes read as a loader cache give entries or an
// error, never a panic; what it reads, written again, reads back the
// same.
func FuzzParseCache(f *testing.F) {
	if b, err := os.ReadFile("/etc/ld.so.cache"); err == nil {
		f.Add(b)
	}
	good, _ := WriteCache([]CacheEntry{{Flags: 0x303, Soname: "libc.so.6", Path: "/lib/libc.so.6"}})
	f.Add(good)
	f.Add([]byte(cacheMagicOld))
	f.Fuzz(func(t *testing.T, b []byte) {
		es, err := ParseCache(b)
		if err != nil {
			return
		}
		out, err := WriteCache(es)
		if err != nil {
			return // the same soname and flags twice
		}
		back, err := ParseCache(out)
		if err != nil || len(back) != len(es) {
			t.Fatalf("written again: %v, %d entries of %d", err, len(back), len(es))
		}
	})
}
