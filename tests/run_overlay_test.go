package tests

// --parker-overlay DIR: refused, with nothing created, when DIR lies in the
// directory the run covers (however it is spelt); locked for one run at a
// time, and unlocked when the run ends, even by SIGKILL.

import (
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

func TestRunOverlayInside(t *testing.T) {
	needRoot(t, "running a packed file")
	f := packScript(t, "ovin", "#!/bin/sh\necho hi > \"$PARKER_ROOT/w.txt\"\n", nil)
	dir := filepath.Dir(f)
	if err := os.Mkdir(filepath.Join(dir, "inner"), 0o755); err != nil {
		t.Fatal(err)
	}
	out := tempDir(t, "ovout")
	for link, to := range map[string]string{"link": dir, "deep": filepath.Join(dir, "inner")} {
		if err := os.Symlink(to, filepath.Join(out, link)); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		name, cwd, arg string
	}{
		{"relative", dir, "ov"},
		{"relative below a missing dir", dir, "./sub/ov"},
		{"relative up from below", filepath.Join(dir, "inner"), "../ov"},
		{"absolute", "/", filepath.Join(dir, "x", "ov")},
		{"the directory itself", "/", dir},
		{"through a symlink outside", "/", filepath.Join(out, "link", "ov")},
		{"a symlink outside itself", "/", filepath.Join(out, "link")},
		{"up from a symlink's target", "/", filepath.Join(out, "deep") + "/../ov"},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := listTree(t, dir, out)
			r := runFile(t, f, []string{"--parker-overlay", c.arg}, inDir(c.cwd))
			want := "--parker-overlay " + c.arg + ": "
			fix := "; choose a DIR outside " + dir + "\n"
			if r.Code != 125 || strings.Count(r.Stderr, "\n") != 1 ||
				!strings.Contains(r.Stderr, want) || !strings.HasSuffix(r.Stderr, fix) {
				t.Errorf("exit %d, stderr %q; want 125 and one line with %q ending %q", r.Code, r.Stderr, want, fix)
			}
			if after := listTree(t, dir, out); after != before {
				t.Errorf("a refused run changed the files:\nbefore:\n%s\nafter:\n%s", before, after)
			}
		})
	}

	// A relative DIR outside is taken from the caller's directory.
	r := runFile(t, f, []string{"--parker-overlay", "ov"}, inDir(out))
	if b, err := os.ReadFile(filepath.Join(out, "ov", "upper", "w.txt")); r.Code != 0 || string(b) != "hi\n" {
		t.Errorf("relative DIR outside: exit %d (%s), upper/w.txt %q %v", r.Code, r.Stderr, b, err)
	}
}

// listTree lists every path under the roots, with its type, one per line.
func listTree(t *testing.T, roots ...string) string {
	t.Helper()
	var lines []string
	for _, root := range roots {
		filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				t.Fatal(err)
			}
			lines = append(lines, p+" "+d.Type().String())
			return nil
		})
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// refusedBusy checks that a run with --parker-overlay dir is refused while
// another holds dir.
func refusedBusy(t *testing.T, f, arg string) {
	t.Helper()
	r := runFile(t, f, []string{"--parker-overlay", arg, "exit", "0"})
	want := "--parker-overlay " + arg + ": "
	if r.Code != 125 || strings.Count(r.Stderr, "\n") != 1 || !strings.Contains(r.Stderr, want) ||
		!strings.Contains(r.Stderr, "in use by another run; wait for it to end or choose another DIR") {
		t.Errorf("second run: exit %d, stderr %q; want 125 and one line saying %s is in use", r.Code, r.Stderr, arg)
	}
}

// runsAfter checks that a run with --parker-overlay ov succeeds.
func runsAfter(t *testing.T, f, ov, what string) {
	t.Helper()
	if r := runFile(t, f, []string{"--parker-overlay", ov, "exit", "0"}); r.Code != 0 {
		t.Errorf("run after %s: exit %d (%s)", what, r.Code, r.Stderr)
	}
}

func TestRunOverlayLocked(t *testing.T) {
	needRoot(t, "running a packed file")
	f := toolPacked(t)
	out := tempDir(t, "ovlock")
	ov := filepath.Join(out, "ov")
	if err := os.Symlink("ov", filepath.Join(out, "alias")); err != nil {
		t.Fatal(err)
	}
	c, _ := startTool(t, f, "--parker-overlay", ov, "trap", "15", "0")
	refusedBusy(t, f, ov)
	refusedBusy(t, f, filepath.Join(out, "alias")) // the same directory, spelt otherwise
	c.Process.Signal(syscall.SIGTERM)
	if err := c.Wait(); err != nil {
		t.Fatalf("first run: %v", err)
	}
	runsAfter(t, f, ov, "the first ended")
}

// TestRunOverlayUnlockedByKill: the lock is the run's, held by the target
// itself (the pid the caller started): kill -9 of it releases the lock and
// the view at once, so the caller's next run right after may take the DIR.
func TestRunOverlayUnlockedByKill(t *testing.T) {
	needRoot(t, "running a packed file")
	f := toolPacked(t)
	ov := filepath.Join(tempDir(t, "ovkill"), "ov")
	c, _ := startTool(t, f, "--parker-overlay", ov, "trap", "15", "0")
	refusedBusy(t, f, ov)
	c.Process.Kill()
	c.Wait()
	runsAfter(t, f, ov, "kill -9 of the first")
}

// alive reports whether process pid exists and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}
