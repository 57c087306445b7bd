package ldcache

import (
	"os"
	"testing"
)

// FuzzParse: any bytes read as a loader cache give entries or an
// error, never a panic; what it reads, written again, reads back the
// same.
func FuzzParse(f *testing.F) {
	if b, err := os.ReadFile("/etc/ld.so.cache"); err == nil {
		f.Add(b)
	}
	good, _ := Write([]Entry{{Flags: 0x303, Soname: "libc.so.6", Path: "/lib/libc.so.6"}})
	f.Add(good)
	f.Add([]byte(cacheMagicOld))
	f.Fuzz(func(t *testing.T, b []byte) {
		es, err := Parse(b)
		if err != nil {
			return
		}
		out, err := Write(es)
		if err != nil {
			return // the same soname and flags twice
		}
		back, err := Parse(out)
		if err != nil || len(back) != len(es) {
			t.Fatalf("written again: %v, %d entries of %d", err, len(back), len(es))
		}
	})
}
