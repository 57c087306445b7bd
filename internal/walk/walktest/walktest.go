// Package walktest builds small file trees for the tests of the walk and
// of the packs that use it.
package walktest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Tree creates, under a new temp dir, each spec: a file whose content is
// its name (mode 0755), a directory (trailing "/") or a symlink
// ("name -> target"). It returns the directory.
func Tree(t testing.TB, specs ...string) string {
	t.Helper()
	root := t.TempDir()
	for _, s := range specs {
		name, link, isLink := strings.Cut(s, " -> ")
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		var err error
		switch {
		case isLink:
			err = os.Symlink(link, p)
		case strings.HasSuffix(s, "/"):
			err = os.MkdirAll(p, 0o755)
		default:
			err = os.WriteFile(p, []byte(s), 0o755)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	return root
}
