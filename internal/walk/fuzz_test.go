package walk

import (
	"path"
	"strings"
	"testing"
)

// FuzzCleanTarget: an accepted target is clean, relative and inside the
// working directory.
func FuzzCleanTarget(f *testing.F) {
	for _, s := range []string{"python", "bin/python", "./a/../b", "../x", "/abs", "a/", ".", "a//b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := CleanTarget(s)
		if err != nil {
			return
		}
		if p == "" || p == "." || path.IsAbs(p) || p == ".." || strings.HasPrefix(p, "../") || path.Clean(p) != p {
			t.Fatalf("CleanTarget(%q) = %q", s, p)
		}
	})
}
