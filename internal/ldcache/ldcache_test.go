package ldcache

import (
	"os"
	"testing"

	"github.com/parkerpack/parker/internal/testenv"
)

// TestCacheHost: the host's loader cache reads, and written again it
// comes out in ldconfig's order (the order the loader's binary search
// needs), and reads back the same.
func TestCacheHost(t *testing.T) {
	b, err := os.ReadFile("/etc/ld.so.cache")
	if err != nil {
		testenv.Unavailable(t, "no loader cache here: %v", err)
	}
	host, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(host) < 10 {
		t.Fatalf("the host's cache names %d libraries", len(host))
	}
	out, err := Write(host)
	if err != nil {
		t.Fatal(err)
	}
	back, err := Parse(out)
	if err != nil {
		t.Fatal(err)
	}
	for i := range host {
		if back[i] != host[i] {
			t.Fatalf("entry %d: wrote %+v where ldconfig has %+v", i, back[i], host[i])
		}
	}
}

func TestCacheCmp(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		sign int
	}{
		{"libc.so.6", "libc.so.6", 0},
		{"libfoo.so.10", "libfoo.so.9", 1},
		{"libfoo.so.1", "libfoo.so", 1},
		{"liba.so", "libb.so", -1},
		{"lib2.so", "liba.so", 1},
		{"libx", "libx1", -1},
	} {
		got := Cmp(tc.a, tc.b)
		if (got > 0) != (tc.sign > 0) || (got < 0) != (tc.sign < 0) {
			t.Errorf("Cmp(%q, %q) = %d; want sign %d", tc.a, tc.b, got, tc.sign)
		}
	}
}
