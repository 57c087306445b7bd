package tests

// The target's view: the image merged over the directory of TARGETd, its
// writes kept in a throwaway upper layer (or the --parker-overlay
// directory), and the host's mount table left as it was.

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestRunWrites(t *testing.T) {
	needRoot(t, "running a packed file")
	f := packScript(t, "writer", `#!/bin/sh
set -e
cd "$PARKER_ROOT"
cat data.txt
echo changed > data.txt
echo new > new.txt
mkdir -p newdir && echo x > newdir/f
rm neighbour
cat data.txt new.txt newdir/f
ls
`, map[string]string{"data.txt": "original\n"})
	dir := filepath.Dir(f)
	os.WriteFile(filepath.Join(dir, "neighbour"), []byte("host file\n"), 0o644)
	before := snapshot(t, dir)
	for i := 0; i < 2; i++ { // the second run must see none of the first's writes
		r := runFile(t, f, nil)
		want := "original\nchanged\nnew\nx\ndata.txt\nnew.txt\nnewdir\nwriter\nwriterd\n"
		if r.Code != 0 || r.Stdout != want {
			t.Fatalf("run %d: got %q want %q (exit %d, %s)", i, r.Stdout, want, r.Code, r.Stderr)
		}
	}
	ents, _ := os.ReadDir(dir)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if strings.Join(names, " ") != "neighbour writerd" {
		t.Errorf("host directory after the runs: %v", names)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "neighbour")); string(b) != "host file\n" {
		t.Errorf("neighbour changed on the host: %q", b)
	}
	sameTraces(t, before, dir)

	// --parker-overlay keeps them, and a later run with it sees them.
	keep := filepath.Join(tempDir(t, "keep"), "ov")
	r := runFile(t, f, []string{"--parker-overlay", keep})
	if r.Code != 0 {
		t.Fatalf("--parker-overlay: exit %d: %s", r.Code, r.Stderr)
	}
	for p, want := range map[string]string{"upper/data.txt": "changed\n", "upper/new.txt": "new\n", "upper/newdir/f": "x\n"} {
		if b, err := os.ReadFile(filepath.Join(keep, p)); err != nil || string(b) != want {
			t.Errorf("overlay %s: %q %v", p, b, err)
		}
	}
	if fi, err := os.Lstat(filepath.Join(keep, "upper", "neighbour")); err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		t.Errorf("overlay: no whiteout for the deleted neighbour (%v)", err)
	}
	// Without the flag, a later run starts from the image again.
	if r := runFile(t, f, nil); r.Code != 0 || !strings.HasPrefix(r.Stdout, "original\n") {
		t.Errorf("run after --parker-overlay: exit %d, %q", r.Code, r.Stdout)
	}
	sameTraces(t, before, dir)
}

func TestRunHostUnchangedDuring(t *testing.T) {
	needRoot(t, "running a packed file")
	f := toolPacked(t)
	dir := filepath.Dir(f)
	before := snapshot(t, dir)
	c, _ := startTool(t, f, "trap", "15", "0")
	during := snapshot(t, dir)
	// In the target's view: an overlay at dir.
	target := c.Process.Pid
	if kids := childPids(c.Process.Pid); len(kids) > 0 {
		target = kids[0]
	}
	mi, _ := os.ReadFile(fmt.Sprintf("/proc/%d/mountinfo", target))
	c.Process.Signal(syscall.SIGTERM)
	c.Wait()
	// Only lines naming our files count: other test suites may mount
	// things on this machine meanwhile.
	if during.Mountinfo != before.Mountinfo {
		t.Errorf("host mount table changed during the run:\n%s", during.Mountinfo)
	}
	if !strings.Contains(string(mi), " "+dir+" ") || !strings.Contains(string(mi), " overlay ") {
		t.Errorf("target's mount table has no overlay at %s:\n%s", dir, mi)
	}
	t.Logf("mounts: host %d, target %d (its namespace is a copy of the host's plus the overlay)",
		during.Mounts, strings.Count(string(mi), "\n"))
	sameTraces(t, before, dir)
}

// TestRunOddDirectory: the directory holding TARGETd may have any name;
// overlayfs splits its joined options on ':' and ',', which a name must
// not break.
func TestRunOddDirectory(t *testing.T) {
	needRoot(t, "running a packed file")
	f := toolPacked(t)
	dir := filepath.Join(tempDir(t, "odd"), `we:ird, dir\ with "quotes"`)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	g := filepath.Join(dir, "toold")
	run(t, "cp", f, g)
	r := runFile(t, g, []string{"cwd"}, inDir(dir))
	if r.Code != 0 || strings.TrimSpace(r.Stdout) != dir {
		t.Errorf("in %q: exit %d, cwd %q, stderr %q", dir, r.Code, r.Stdout, r.Stderr)
	}
	if r := runFile(t, g, []string{"env", "PARKER_ROOT"}); r.Stdout != "PARKER_ROOT="+dir+"\n" {
		t.Errorf("PARKER_ROOT: %q (stderr %q)", r.Stdout, r.Stderr)
	}
}
