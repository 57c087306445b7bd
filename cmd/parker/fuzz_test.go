package main

import (
	"path"
	"strings"
	"testing"
)

// FuzzParseSize: any input gives a positive size or an error, never a panic.
func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"131072", "128K", "1M", "1MiB", "", "K", "-1", "99999999999G", "1e6"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := parseSize(s)
		if err == nil && n < 0 {
			t.Fatalf("parseSize(%q) = %d", s, n)
		}
	})
}

// FuzzCleanTarget: an accepted TARGET is clean, relative and inside the
// working directory.
func FuzzCleanTarget(f *testing.F) {
	for _, s := range []string{"python", "bin/python", "./a/../b", "../x", "/abs", "a/", ".", "a//b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := cleanTarget(s)
		if err != nil {
			return
		}
		if p == "" || p == "." || path.IsAbs(p) || p == ".." || strings.HasPrefix(p, "../") || path.Clean(p) != p {
			t.Fatalf("cleanTarget(%q) = %q", s, p)
		}
	})
}
