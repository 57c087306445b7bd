package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/parkerpack/parker/image"
)

// mktree creates files (content = name) and directories (trailing "/") and
// symlinks ("name -> target") under a new temp dir.
func mktree(t *testing.T, specs ...string) string {
	t.Helper()
	root := t.TempDir()
	for _, s := range specs {
		if name, link, ok := strings.Cut(s, " -> "); ok {
			p := filepath.Join(root, name)
			must(t, os.MkdirAll(filepath.Dir(p), 0o755))
			must(t, os.Symlink(link, p))
			continue
		}
		p := filepath.Join(root, s)
		if strings.HasSuffix(s, "/") {
			must(t, os.MkdirAll(p, 0o755))
			continue
		}
		must(t, os.MkdirAll(filepath.Dir(p), 0o755))
		must(t, os.WriteFile(p, []byte(s), 0o755))
	}
	return root
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// walkPaths walks root with the given ignore file and excludes and returns
// the sorted entry paths.
func walkPaths(t *testing.T, root, ignore string, excludes ...string) []string {
	t.Helper()
	if ignore != "" {
		must(t, os.WriteFile(filepath.Join(root, ignoreFile), []byte(ignore), 0o644))
	}
	r, err := loadRules(root, excludes)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	w := &walker{root: root, display: root, rules: r, warn: func(string) {},
		add: func(e image.Entry) error { got = append(got, e.Path); return nil }}
	if err := w.walk(); err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	return got
}

func TestWalkIgnore(t *testing.T) {
	tree := []string{"app", "data/a.log", "data/b.txt", "data/keep/k.log", "logs/x.log", "logs/keep.log",
		"node_modules/m/index.js", "src/main.c", "src/deep/er/main.c", "tmp/"}
	tests := []struct {
		name     string
		ignore   string
		excludes []string
		want     []string // besides "." and .parkerignore
	}{
		{"nothing", "", nil, []string{"app", "data", "data/a.log", "data/b.txt", "data/keep", "data/keep/k.log",
			"logs", "logs/keep.log", "logs/x.log", "node_modules", "node_modules/m", "node_modules/m/index.js",
			"src", "src/deep", "src/deep/er", "src/deep/er/main.c", "src/main.c", "tmp"}},
		{"directory and glob", "# comment\nnode_modules\n*/*.log\ntmp/\n", nil, []string{"app", "data", "data/b.txt",
			"data/keep", "data/keep/k.log", "logs", "src", "src/deep", "src/deep/er", "src/deep/er/main.c", "src/main.c"}},
		{"double star", "**/*.log\nsrc/**/main.c\n", nil, []string{"app", "data", "data/b.txt", "data/keep",
			"logs", "node_modules", "node_modules/m", "node_modules/m/index.js", "src", "src/deep", "src/deep/er", "tmp"}},
		{"re-include inside excluded dir", "logs\n!logs/keep.log\ndata\n!data/keep\n", nil, []string{"app",
			"data", "data/keep", "data/keep/k.log", "logs", "logs/keep.log",
			"node_modules", "node_modules/m", "node_modules/m/index.js", "src", "src/deep", "src/deep/er", "src/deep/er/main.c", "src/main.c", "tmp"}},
		{"re-include then exclude again", "**/*.log\n!logs\nlogs/x.log\n", nil, []string{"app", "data", "data/b.txt",
			"data/keep", "logs", "logs/keep.log", "node_modules", "node_modules/m", "node_modules/m/index.js",
			"src", "src/deep", "src/deep/er", "src/deep/er/main.c", "src/main.c", "tmp"}},
		{"exclude everything but", "*\n!app\n!src/main.c\n", nil, []string{"app", "src", "src/main.c"}},
		{"leading slash and flag excludes", "/tmp\n", []string{"node_modules", "/data/*.log", "src/deep"}, []string{"app",
			"data", "data/b.txt", "data/keep", "data/keep/k.log", "logs", "logs/keep.log", "logs/x.log", "src", "src/main.c"}},
		{"flag re-include after file", "logs\n", []string{"!logs/x.log", "data", "node_modules", "src", "tmp"},
			[]string{"app", "logs", "logs/x.log"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := mktree(t, tree...)
			got := walkPaths(t, root, tt.ignore, tt.excludes...)
			want := append([]string{"."}, tt.want...)
			if tt.ignore != "" && !slices.Contains(strings.Fields(tt.ignore), "*") {
				want = append(want, ignoreFile)
			}
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("got  %q\nwant %q", got, want)
			}
		})
	}
}

// The example of README.md, section .parkerignore.
func TestWalkIgnoreReadmeExample(t *testing.T) {
	root := mktree(t, "a.log", "sub/b.log", "x.tmp", "sub/deep/y.tmp", "cache/keep.db", "cache/other", "build/out", "app")
	got := walkPaths(t, root, "# Comments are whole lines starting with #.\n*.log\n**/*.tmp\ncache/\n!cache/keep.db\n/build\n")
	want := []string{".", ".parkerignore", "app", "cache", "cache/keep.db", "sub", "sub/b.log", "sub/deep"}
	if !slices.Equal(got, want) {
		t.Errorf("got  %q\nwant %q", got, want)
	}
}

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

func TestWalkEntries(t *testing.T) {
	root := mktree(t, "bin/tool", "rel -> bin/tool", "dangling -> nowhere", "empty/")
	must(t, os.Link(filepath.Join(root, "bin/tool"), filepath.Join(root, "hard")))
	must(t, os.Chmod(filepath.Join(root, "empty"), os.ModeSticky|0o750))
	r, _ := loadRules(root, nil)
	got := map[string]image.Entry{}
	w := &walker{root: root, display: ".", rules: r, warn: func(string) {},
		add: func(e image.Entry) error { got[e.Path] = e; return nil }}
	must(t, w.walk())
	if e := got["rel"]; e.Link != "bin/tool" || e.Mode.Type() != os.ModeSymlink {
		t.Errorf("rel: %+v", e)
	}
	if e := got["dangling"]; e.Link != "nowhere" {
		t.Errorf("dangling: %+v", e)
	}
	tool, hard := got["bin/tool"], got["hard"]
	if tool.Size != 8 || tool.Source != filepath.Join(root, "bin/tool") || !tool.Mode.IsRegular() || tool.Mode.Perm() != 0o755 {
		t.Errorf("bin/tool: %+v", tool)
	}
	if tool.Ino == 0 || tool.Ino != hard.Ino || tool.Dev != hard.Dev {
		t.Errorf("hard link identity lost: %+v %+v", tool, hard)
	}
	if e := got["empty"]; !e.Mode.IsDir() || e.Mode&os.ModeSticky == 0 || e.Mode.Perm() != 0o750 {
		t.Errorf("empty: %v", e.Mode)
	}
	if e := got["."]; !e.Mode.IsDir() {
		t.Errorf("root: %+v", e)
	}
	if w.entries != 7 || w.files != 1 || w.bytes != 8 {
		t.Errorf("counts: %d entries, %d files, %d bytes", w.entries, w.files, w.bytes)
	}
}

func TestWalkUnreadable(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root reads everything")
	}
	root := mktree(t, "secret/x")
	must(t, os.Chmod(filepath.Join(root, "secret"), 0))
	defer os.Chmod(filepath.Join(root, "secret"), 0o755)
	r, _ := loadRules(root, nil)
	w := &walker{root: root, display: "w", rules: r, warn: func(string) {}, add: func(image.Entry) error { return nil }}
	if err := w.walk(); err == nil || !strings.Contains(err.Error(), "w/secret") {
		t.Errorf("walk = %v, want an error naming w/secret", err)
	}
}

func TestResolveTarget(t *testing.T) {
	root := mktree(t, "bin/python3.11", "bin/python -> python3.11", "python -> bin/python",
		"abs -> /usr/bin/env", "up -> ../outside", "loop -> loop", "lib/", "libbin -> bin", "text")
	must(t, os.Chmod(filepath.Join(root, "text"), 0o644))
	for _, tt := range []struct {
		arg, file, err string
		leaves         []string
	}{
		{arg: "bin/python3.11", file: "bin/python3.11", leaves: []string{"bin/python3.11"}},
		{arg: "python", file: "bin/python3.11", leaves: []string{"python", "bin/python", "bin/python3.11"}},
		{arg: "libbin/python", file: "bin/python3.11", leaves: []string{"libbin", "bin/python", "bin/python3.11"}},
		{arg: "text", file: "text", leaves: []string{"text"}},
		{arg: "abs", err: "outside the working directory"},
		{arg: "up", err: "outside the working directory"},
		{arg: "loop", err: "too many levels"},
		{arg: "lib", err: "is a directory"},
		{arg: "nothere", err: "no such file"},
		{arg: "text/x", err: "not a directory"},
	} {
		tg, err := resolveTarget(root, ".", tt.arg)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("resolveTarget(%q) = %v, want error with %q", tt.arg, err, tt.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("resolveTarget(%q): %v", tt.arg, err)
			continue
		}
		if tg.file != tt.file || !slices.Equal(tg.leaves, tt.leaves) || tg.path != tt.arg {
			t.Errorf("resolveTarget(%q) = file %q leaves %q", tt.arg, tg.file, tg.leaves)
		}
		if want := tt.arg != "text"; tg.executable() != want {
			t.Errorf("resolveTarget(%q).executable() = %v", tt.arg, !want)
		}
	}
}

func TestCheckTarget(t *testing.T) {
	root := mktree(t, "bin/app", "run -> bin/app")
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
		must(t, os.WriteFile(filepath.Join(root, ignoreFile), []byte(tt.ignore), 0o644))
		r, err := loadRules(root, nil)
		must(t, err)
		tg, err := resolveTarget(root, ".", tt.arg)
		must(t, err)
		if err := r.checkTarget(tg); (err == nil) != tt.ok {
			t.Errorf("target %s with %q: checkTarget = %v", tt.arg, tt.ignore, err)
		}
	}
}
