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

// A rule that leaves out the target is refused, naming the rule and the
// line that re-includes the target.
func TestCheckTarget(t *testing.T) {
	root := walktest.Tree(t, "bin/app", "run -> bin/app", "odd [1]")
	for _, tt := range []struct {
		arg, ignore string
		exclude     []string
		want        string // "" when accepted
	}{
		{"bin/app", "bin\n", nil, `target bin/app is excluded by the line "bin" of .parkerignore, but the target is always packed; re-include it with a line !bin/app after that one, or --exclude '!bin/app'`},
		{"bin/app", "bin\n!bin/app\n", nil, ""},
		{"bin/app", "*\n", nil, `excluded by the line "*" of .parkerignore`},
		{"bin/app", "*.txt\nb*\n", nil, `excluded by the line "b*" of .parkerignore`},
		{"bin/app", "**/app\n", nil, `excluded by the line "**/app" of .parkerignore`},
		{"bin/app", "", []string{"bin/"}, `target bin/app is excluded by --exclude "bin", but the target is always packed; re-include it with --exclude '!bin/app' after it`},
		{"run", "run\n", nil, `target run: the symlink run is excluded by the line "run" of .parkerignore, but the target is always packed; re-include it with a line !run after that one, or --exclude '!run'`},
		{"run", "bin/\n", nil, `target run: its file bin/app is excluded by the line "bin" of .parkerignore`},
		{"run", "*.txt\n", nil, ""},
		{"odd [1]", "odd*\n", nil, `re-include it with a line !odd \[1] after that one, or --exclude '!odd \[1]'`},
	} {
		must(t, os.WriteFile(filepath.Join(root, IgnoreFile), []byte(tt.ignore), 0o644))
		r, err := LoadRules(root, tt.exclude)
		must(t, err)
		tg, err := ResolveTarget(root, ".", tt.arg)
		must(t, err)
		err = r.CheckTarget(tg)
		if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("target %s with %q, --exclude %q: CheckTarget = %v, want %q", tt.arg, tt.ignore, tt.exclude, err, tt.want)
		}
	}
	// The suggested line does re-include it.
	must(t, os.WriteFile(filepath.Join(root, IgnoreFile), []byte("odd*\n!odd \\[1]\n"), 0o644))
	r, err := LoadRules(root, nil)
	must(t, err)
	tg, err := ResolveTarget(root, ".", "odd [1]")
	must(t, err)
	if err := r.CheckTarget(tg); err != nil {
		t.Errorf("the suggested re-include does not: %v", err)
	}
}

func TestLoadRulesErrors(t *testing.T) {
	root := walktest.Tree(t, "app")
	for x, want := range map[string]string{
		"  ":          `--exclude "  ": not a pattern`,
		"# a comment": `--exclude "# a comment": not a pattern`,
		"!":           `--exclude "!": not a pattern`,
		"[":           `--exclude "[": syntax error in pattern`,
		"a/[b/c":      `--exclude "a/[b/c": syntax error in pattern`,
	} {
		if err := CheckExclude(x); err == nil || err.Error() != want {
			t.Errorf("CheckExclude(%q) = %v, want %q", x, err, want)
		}
		if _, err := LoadRules(root, []string{x}); err == nil || err.Error() != want {
			t.Errorf("LoadRules(--exclude %q) = %v, want %q", x, err, want)
		}
	}
	must(t, os.WriteFile(filepath.Join(root, IgnoreFile), []byte("ok\n[\n"), 0o644))
	if _, err := LoadRules(root, nil); err == nil || err.Error() != IgnoreFile+`: pattern "[": syntax error in pattern` {
		t.Errorf("LoadRules with a bad line = %v", err)
	}
	must(t, os.Remove(filepath.Join(root, IgnoreFile)))
	must(t, os.Mkdir(filepath.Join(root, IgnoreFile), 0o755))
	if _, err := LoadRules(root, nil); err == nil || !strings.HasPrefix(err.Error(), IgnoreFile+": ") ||
		strings.Contains(err.Error(), root) {
		t.Errorf("LoadRules with a directory for %s = %v", IgnoreFile, err)
	}
}
