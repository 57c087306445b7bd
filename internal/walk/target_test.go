package walk

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/parkerpack/parker/internal/walk/walktest"
)

func TestRoot(t *testing.T) {
	root := walktest.Tree(t, "d/file", "link -> d")
	if got, err := Root(filepath.Join(root, "link")); err != nil || got != filepath.Join(root, "d") {
		t.Errorf("Root(link) = %q, %v", got, err)
	}
	for arg, want := range map[string]string{
		"nope":   "working directory nope: no such file or directory",
		"d/file": "working directory d/file: not a directory",
	} {
		t.Chdir(root)
		if _, err := Root(arg); err == nil || err.Error() != want {
			t.Errorf("Root(%q) = %v, want %q", arg, err, want)
		}
	}
}

func TestResolveTarget(t *testing.T) {
	root := walktest.Tree(t, "bin/python3.11", "bin/python -> python3.11", "python -> bin/python",
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
		tg, err := ResolveTarget(root, ".", tt.arg)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("ResolveTarget(%q) = %v, want error with %q", tt.arg, err, tt.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("ResolveTarget(%q): %v", tt.arg, err)
			continue
		}
		if tg.File != tt.file || !slices.Equal(tg.leaves, tt.leaves) || tg.Path != tt.arg {
			t.Errorf("ResolveTarget(%q) = file %q leaves %q", tt.arg, tg.File, tg.leaves)
		}
		if want := tt.arg != "text"; tg.Executable() != want {
			t.Errorf("ResolveTarget(%q).Executable() = %v", tt.arg, !want)
		}
	}
}

func TestCleanTarget(t *testing.T) {
	for arg, want := range map[string]string{
		"python": "python", "./bin//../bin/python": "bin/python", "a/./b": "a/b",
		"/usr/bin/python": "", "../python": "", "a/../../python": "", ".": "", "bin/": "", "": "",
	} {
		got, err := CleanTarget(arg)
		if got != want || (err == nil) != (want != "") {
			t.Errorf("CleanTarget(%q) = %q, %v; want %q", arg, got, err, want)
		}
	}
}
