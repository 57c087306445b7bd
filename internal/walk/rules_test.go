package walk

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/parkerpack/parker/internal/walk/walktest"
)

func TestCouldMatchBelow(t *testing.T) {
	for _, tt := range []struct {
		pattern, dir string
		want         bool
	}{
		{"logs/keep.log", "logs", true},
		{"logs/keep.log", "data", false},
		{"logs/keep.log", "logs/sub", false},
		{"*/keep", "data", true},
		{"a/b/c", "a/b", true},
		{"a/b", "a/b", false},
		{"a", "a", false},
		{"**/x", "anything/at/all", true},
		{"d[ab]ta/x", "data", true},
		{"d[ab]ta/x", "dxta", false},
	} {
		if got := couldMatchBelow(tt.pattern, strings.Split(tt.dir, "/")); got != tt.want {
			t.Errorf("couldMatchBelow(%q, %q) = %v, want %v", tt.pattern, tt.dir, got, tt.want)
		}
	}
}

func TestCheckTarget(t *testing.T) {
	root := walktest.Tree(t, "bin/app", "run -> bin/app")
	for _, tt := range []struct {
		arg, ignore string
		ok          bool
	}{
		{"bin/app", "bin\n", false},
		{"bin/app", "bin\n!bin/app\n", true},
		{"bin/app", "*\n", false},
		{"bin/app", "**/app\n", false},
		{"run", "run\n", false},
		{"run", "bin/\n", false},
		{"run", "*.txt\n", true},
	} {
		must(t, os.WriteFile(filepath.Join(root, IgnoreFile), []byte(tt.ignore), 0o644))
		r, err := LoadRules(root, nil)
		must(t, err)
		tg, err := ResolveTarget(root, ".", tt.arg)
		must(t, err)
		if err := r.CheckTarget(tg); (err == nil) != tt.ok {
			t.Errorf("target %s with %q: CheckTarget = %v", tt.arg, tt.ignore, err)
		}
	}
}

func TestLoadRulesErrors(t *testing.T) {
	root := walktest.Tree(t, "app")
	for _, x := range []string{"  ", "# a comment"} {
		if _, err := LoadRules(root, []string{x}); err == nil || !strings.Contains(err.Error(), "invalid pattern") {
			t.Errorf("LoadRules(--exclude %q) = %v", x, err)
		}
	}
	must(t, os.Mkdir(filepath.Join(root, IgnoreFile), 0o755))
	if _, err := LoadRules(root, nil); err == nil || !strings.HasPrefix(err.Error(), IgnoreFile+": ") ||
		strings.Contains(err.Error(), root) {
		t.Errorf("LoadRules with a directory for %s = %v", IgnoreFile, err)
	}
}
