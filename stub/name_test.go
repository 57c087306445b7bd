package stub

import (
	"os"
	"path/filepath"
	"testing"
)

func TestTargetName(t *testing.T) {
	root := t.TempDir()
	view := filepath.Join(root, "view") // holds pd, the packed file, and bin/p, its target
	other := filepath.Join(root, "other")
	for _, d := range []string{"view/bin", "view/sub", "other/bin", "links/bin", "deep/a/b"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(view, "bin", "p")
	os.WriteFile(path, nil, 0o755)
	os.WriteFile(filepath.Join(other, "bin", "p"), nil, 0o755) // another program of that name
	os.Symlink(path, filepath.Join(root, "links", "bin", "p")) // a link to the target itself
	// view/up/.. is deep/a, not view: the kernel resolves ".." after the link.
	os.Symlink(filepath.Join(root, "deep", "a", "b"), filepath.Join(view, "up"))
	for _, tc := range []struct {
		caller, dir, want string
	}{
		{"./pd", view, "./bin/p"},
		{"../pd", filepath.Join(view, "sub"), "../bin/p"},
		{"view/pd", root, "view/bin/p"},
		{view + "/pd", "", view + "/bin/p"},
		{view + "/pd", other, view + "/bin/p"},
		{"up/../pd", view, path},
		{other + "/pd", "", path},
		{root + "/links/pd", "", root + "/links/bin/p"},
		{"pd", view, path},
		{"", view, path},
		{"pd/", view, path},
		{"/", "", path},
	} {
		if got := targetName(tc.caller, "bin/p", path, tc.dir); got != tc.want {
			t.Errorf("targetName(%q) in %q = %q, want %q", tc.caller, tc.dir, got, tc.want)
		}
	}
}
