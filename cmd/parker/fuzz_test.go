package main

import (
	"strconv"
	"strings"
	"testing"
)

// FuzzParseSize: any input gives an error or a size that fits the int32
// the superblock stores, that its decimal form gives back, and that does
// not depend on the case of the unit.
func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"131072", "128K", "1M", "1MiB", "", "K", "-1", "99999999999G", "1e6", "2047M", "0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := parseSize(s)
		if err != nil {
			return
		}
		if n > 1<<31-1 {
			t.Fatalf("parseSize(%q) = %d, over the int32 range", s, n)
		}
		if m, err := parseSize(strconv.Itoa(n)); err != nil || m != n {
			t.Fatalf("parseSize(%q) = %d, but parseSize(%q) = %d, %v", s, n, strconv.Itoa(n), m, err)
		}
		if m, err := parseSize(strings.ToLower(s)); err != nil || m != n {
			t.Fatalf("parseSize(%q) = %d, but in lower case %d, %v", s, n, m, err)
		}
	})
}
