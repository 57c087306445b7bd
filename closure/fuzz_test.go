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
