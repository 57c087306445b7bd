package walk

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/parkerpack/parker/image"
	"github.com/parkerpack/parker/internal/walk/walktest"
)

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
		must(t, os.WriteFile(filepath.Join(root, IgnoreFile), []byte(ignore), 0o644))
	}
	r, err := LoadRules(root, excludes)
	must(t, err)
	var got []string
	_, err = Tree(Config{Root: root, Display: root, Rules: r,
		Add: func(e image.Entry) error { got = append(got, e.Path); return nil }})
	must(t, err)
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
			root := walktest.Tree(t, tree...)
			got := walkPaths(t, root, tt.ignore, tt.excludes...)
			want := append([]string{"."}, tt.want...)
			if tt.ignore != "" && !slices.Contains(strings.Fields(tt.ignore), "*") {
				want = append(want, IgnoreFile)
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
	root := walktest.Tree(t, "a.log", "sub/b.log", "x.tmp", "sub/deep/y.tmp", "cache/keep.db", "cache/other", "build/out", "app")
	got := walkPaths(t, root, "# Comments are whole lines starting with #.\n*.log\n**/*.tmp\ncache/\n!cache/keep.db\n/build\n")
	want := []string{".", ".parkerignore", "app", "cache", "cache/keep.db", "sub", "sub/b.log", "sub/deep"}
	if !slices.Equal(got, want) {
		t.Errorf("got  %q\nwant %q", got, want)
	}
}

func TestWalkEntries(t *testing.T) {
	root := walktest.Tree(t, "bin/tool", "rel -> bin/tool", "dangling -> nowhere", "empty/")
	must(t, os.Link(filepath.Join(root, "bin/tool"), filepath.Join(root, "hard")))
	must(t, os.Chmod(filepath.Join(root, "empty"), os.ModeSticky|0o750))
	r, _ := LoadRules(root, nil)
	got := map[string]image.Entry{}
	n, err := Tree(Config{Root: root, Display: ".", Rules: r,
		Add: func(e image.Entry) error { got[e.Path] = e; return nil }})
	must(t, err)
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
	if want := (Count{Entries: 7, Files: 1, Bytes: 8}); n != want {
		t.Errorf("count %+v, want %+v", n, want)
	}
}

// Skip sees every entry the rules keep, and the target's whole chain
// must be packed.
func TestWalkSkipAndTarget(t *testing.T) {
	root := walktest.Tree(t, "bin/app", "run -> bin/app", "out", "old.log")
	var out unix.Stat_t
	must(t, unix.Lstat(filepath.Join(root, "out"), &out))
	var asked []string
	skip := func(rel string, st *unix.Stat_t) bool {
		asked = append(asked, rel)
		return st.Dev == out.Dev && st.Ino == out.Ino
	}
	r, err := LoadRules(root, []string{"*.log"})
	must(t, err)
	tg, err := ResolveTarget(root, ".", "run")
	must(t, err)
	var got []string
	add := func(e image.Entry) error { got = append(got, e.Path); return nil }
	_, err = Tree(Config{Root: root, Display: ".", Rules: r, Target: tg, Skip: skip, Add: add})
	must(t, err)
	slices.Sort(got)
	if want := []string{".", "bin", "bin/app", "run"}; !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	slices.Sort(asked)
	if want := []string{"bin", "bin/app", "out", "run"}; !slices.Equal(asked, want) {
		t.Errorf("Skip saw %q, want %q", asked, want)
	}
	// A rule that CheckTarget lets through (a directory on the way) but
	// that leaves the target out all the same is caught by the walk.
	skipBin := func(rel string, _ *unix.Stat_t) bool { return rel == "bin" }
	_, err = Tree(Config{Root: root, Display: ".", Rules: r, Target: tg, Skip: skipBin, Add: add})
	if err == nil || !strings.Contains(err.Error(), "target run: bin was left out") {
		t.Errorf("walk without the target's directory = %v", err)
	}
}

// An unreadable directory fails the walk, naming it as the user would;
// an excluded one that might hold re-includes is left out with a warning
// that gives the real cause.
func TestWalkUnreadable(t *testing.T) {
	root := walktest.Tree(t, "secret/x", "app")
	for _, errno := range []unix.Errno{unix.EACCES, unix.EPERM} {
		old := openDir
		openDir = func(p string) (int, error) {
			if filepath.Base(p) == "secret" {
				return -1, errno
			}
			return old(p)
		}
		defer func() { openDir = old }()

		r, _ := LoadRules(root, nil)
		add := func(image.Entry) error { return nil }
		_, err := Tree(Config{Root: root, Display: "w", Rules: r, Add: add})
		if want := "read w/secret: " + errno.Error() + "; leave it out with --exclude 'secret'"; err == nil || err.Error() != want {
			t.Errorf("walk = %v, want %q", err, want)
		}

		r, err = LoadRules(root, []string{"secret", "!secret/x"})
		must(t, err)
		var warnings []string
		_, err = Tree(Config{Root: root, Display: "w", Rules: r, Add: add,
			Warn: func(s string) { warnings = append(warnings, s) }})
		want := "w/secret: excluded and unreadable (" + errno.Error() + "); nothing below it re-included"
		if err != nil || !slices.Equal(warnings, []string{want}) {
			t.Errorf("walk with secret excluded = %v, warnings %q; want %q", err, warnings, want)
		}
		openDir = old
	}
}

// Entries that are packed as they are but will not behave as the user may
// think (symlinks that point out of the packed tree or nowhere, special
// files) draw a warning each; ordinary symlinks do not.
func TestWalkOddEntries(t *testing.T) {
	root := walktest.Tree(t, "app", "sub/in -> ../app", "ok -> sub", "abs -> /etc/passwd",
		"up -> ../elsewhere", "sub/up2 -> ../../x", "gone -> nowhere", "excluded -> /x")
	must(t, unix.Mkfifo(filepath.Join(root, "fifo"), 0o644))
	want := []string{
		"w/abs is a symlink to /etc/passwd, an absolute path; packed as is, it will point into the machine the packed file runs on",
		"w/fifo is a FIFO; packed as such (the node, nothing read from it)",
		"w/gone is a symlink to nowhere, which does not exist; packed as is",
		"w/sub/up2 is a symlink to ../../x, outside the working directory; packed as is, it will point outside the packed tree",
		"w/up is a symlink to ../elsewhere, outside the working directory; packed as is, it will point outside the packed tree",
	}
	if os.Geteuid() == 0 {
		must(t, unix.Mknod(filepath.Join(root, "null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
		want = append(want, "w/null is a character device; packed as such (the node, nothing read from it)")
	}
	r, err := LoadRules(root, []string{"excluded"})
	must(t, err)
	var warnings []string
	_, err = Tree(Config{Root: root, Display: "w", Rules: r, Add: func(image.Entry) error { return nil },
		Warn: func(s string) { warnings = append(warnings, s) }})
	must(t, err)
	slices.Sort(warnings)
	slices.Sort(want)
	if !slices.Equal(warnings, want) {
		t.Errorf("warnings:\n%q\nwant\n%q", warnings, want)
	}
}
