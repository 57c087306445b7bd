package tests

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// openFUSE opens /dev/fuse to every user for the test, as most
// distributions ship it (0666; 0600 on the test machine), and puts its
// mode back after.
func openFUSE(t *testing.T) { fuseMode(t, func(m os.FileMode) os.FileMode { return m | 0o666 }) }

// closeFUSE closes /dev/fuse to others for the test, as this machine
// ships it, and puts its mode back after: the runs as nobody take the
// rungs below FUSE.
func closeFUSE(t *testing.T) {
	if _, err := os.Stat("/dev/fuse"); err == nil { // missing: closed to all
		fuseMode(t, func(m os.FileMode) os.FileMode { return m &^ 0o066 })
	}
}

// fuseMode gives /dev/fuse the mode change makes of its own for the test,
// and puts it back after. (It is the host's: a test binary killed before
// its cleanup leaves the mode changed.)
func fuseMode(t *testing.T, change func(os.FileMode) os.FileMode) {
	t.Helper()
	st, err := os.Stat("/dev/fuse")
	if err != nil {
		t.Fatalf("/dev/fuse: %v", err)
	}
	was := st.Mode().Perm()
	if change(was) == was {
		return
	}
	if err := os.Chmod("/dev/fuse", change(was)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := os.Chmod("/dev/fuse", was); err != nil {
			t.Errorf("put /dev/fuse back to mode %#o: %v", was, err)
		}
	})
}

// fuseServers lists the FUSE servers of runs alive now.
func fuseServers() []string {
	var out []string
	cmds, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, c := range cmds {
		if b, err := os.ReadFile(c); err == nil && strings.HasPrefix(string(b), "parker-fuse\x00") {
			out = append(out, c)
		}
	}
	return out
}

// noFUSEServers fails the test when a run's FUSE server is still alive a
// moment after the runs ended.
func noFUSEServers(t *testing.T) {
	t.Helper()
	// The servers end with their runs' mounts, a moment after the runs.
	if !within(5*time.Second, func() bool { return len(fuseServers()) == 0 }) {
		t.Errorf("FUSE servers left running: %v", fuseServers())
	}
}

// TestRunFUSE: as an ordinary user, with /dev/fuse open to users, a
// packed file runs on the FUSE rung: a user namespace of the run's own,
// the payload served by FUSE under a tmpfs overlay over the packed file's
// directory, as on the kernel's rung. Arguments, environment, standard
// input, exit statuses, deaths by signal, the working directory and the
// packed files beside the packed file are as in a direct run; writes go to
// the run's tmpfs and vanish with it; nothing is extracted, nothing is
// left behind (no mount, no process, no file), and what the target leaves
// running ends with it.
func TestRunFUSE(t *testing.T) {
	f, cacheDir := nobodySetup(t)
	openFUSE(t)
	dir := filepath.Dir(f)
	env := []string{"PARKER_CACHE_DIR=" + cacheDir}
	before := snapshot(t, dir)
	dirBefore := listDir(t, dir)
	if goStubRun() {
		// The Go stub cannot enter a user namespace: the cache, saying so.
		r := runCmd(t, asNobody(f, env, "env", "PARKER_ROOT"))
		m := extractWarning.FindStringSubmatch(r.Stderr)
		if r.Code != 0 || !strings.HasPrefix(r.Stdout, "PARKER_ROOT="+cacheDir+"/") || m == nil ||
			!strings.HasPrefix(m[1], "this packed file has the Go stub") {
			t.Errorf("Go stub: exit %d, stdout %q, stderr %q", r.Code, r.Stdout, r.Stderr)
		}
		return
	}

	c := asNobody(f, env, "args", "a b", "", "--parker-x")
	c.Dir = dir
	r := runCmd(t, c)
	if r.Code != 0 || r.Stdout != "argv0="+dir+"/tool\n"+hexArgs([]string{"a b", "", "--parker-x"}) || r.Stderr != "" {
		t.Errorf("args: exit %d, stdout %q, stderr %q", r.Code, r.Stdout, r.Stderr)
	}
	c = asNobody(f, env, "env", "PARKER_ROOT", "PARKER_EXE", "HOME")
	if r = runCmd(t, c); r.Stdout != "PARKER_ROOT="+dir+"\nPARKER_EXE="+f+"\nHOME=/nonexistent\n" {
		t.Errorf("env: %q, stderr %q", r.Stdout, r.Stderr)
	}
	c = asNobody(f, env, "cwd")
	c.Dir = filepath.Join(dir)
	if r = runCmd(t, c); r.Stdout != dir+"\n" {
		t.Errorf("cwd: %q, stderr %q", r.Stdout, r.Stderr)
	}
	c = asNobody(f, env, "cat")
	c.Stdin = strings.NewReader("through stdin\n")
	if r = runCmd(t, c); r.Code != 0 || r.Stdout != "through stdin\n" {
		t.Errorf("stdin: exit %d, stdout %q", r.Code, r.Stdout)
	}
	for _, code := range []int{0, 1, 42, 255} {
		if r = runCmd(t, asNobody(f, env, "exit", strconv.Itoa(code))); r.Code != code {
			t.Errorf("exit %d: got %d, stderr %q", code, r.Code, r.Stderr)
		}
	}
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL, syscall.SIGSEGV} {
		if r = runCmd(t, asNobody(f, env, "raise", strconv.Itoa(int(sig)))); r.Signal != sig {
			t.Errorf("death by %v: %+v", sig, r)
		}
	}
	// A packed file, from beside the packed file, and one of the
	// directory's own files, through the overlay.
	c = asNobody(f, env, "read", "data.txt")
	c.Dir = dir
	if r = runCmd(t, c); r.Stdout != "packed data\n" {
		t.Errorf("a packed file: %q, stderr %q", r.Stdout, r.Stderr)
	}
	c = asNobody(f, env, "ls", dir)
	if r = runCmd(t, c); !strings.Contains(r.Stdout, "data.txt") || !strings.Contains(r.Stdout, "toold") || !strings.Contains(r.Stdout, "sub") {
		t.Errorf("the view lists %q, stderr %q", r.Stdout, r.Stderr)
	}
	// Writes: into the packed directory's view (a packed file copied up,
	// a new one), then gone.
	for _, w := range [][]string{{"write", filepath.Join(dir, "data.txt"), "changed"}, {"write", filepath.Join(dir, "sub", "new"), "x"}} {
		if r = runCmd(t, asNobody(f, env, w...)); r.Code != 0 {
			t.Errorf("%v: exit %d, stderr %q", w, r.Code, r.Stderr)
		}
	}
	c = asNobody(f, env, "read", filepath.Join(dir, "data.txt"))
	if r = runCmd(t, c); r.Stdout != "packed data\n" {
		t.Errorf("a write outlived its run: %q", r.Stdout)
	}
	// The target leaves a daemon, which ends with the run.
	out := filepath.Join(tempDir(t, "fusedaemon"), "out")
	if err := os.Chown(filepath.Dir(out), nobody, nobody); err != nil {
		t.Fatal(err)
	}
	openToOthers(t, out)
	p := launch(t, asNobody(f, env, "daemon", filepath.Join(dir, "data.txt"), out), false)
	d, _ := strconv.Atoi(p.expect(t, "daemon=")["daemon="])
	t.Cleanup(func() { syscall.Kill(d, syscall.SIGKILL) })
	if !within(10*time.Second, func() bool { b, _ := os.ReadFile(out); return strings.Contains(string(b), "packed data") }) {
		b, _ := os.ReadFile(out)
		t.Errorf("the daemon did not read the packed file through the view: %q", b)
	}
	if ws := p.wait(t); ws.ExitStatus() != 0 {
		t.Fatalf("daemon run: %v, stderr %q", ws, p.stderr())
	}
	if !within(cleanupWait, func() bool { return !alive(d) }) {
		t.Errorf("the daemon %d still runs %v after the target ended", d, cleanupWait)
	}
	if got := listDir(t, dir); strings.Join(got, " ") != strings.Join(dirBefore, " ") {
		t.Errorf("the packed file's directory changed: %v -> %v", dirBefore, got)
	}
	noFUSEServers(t)
	// Nothing extracted: the cache holds the helper's copy alone.
	wantHelperCopy(t, f, cacheDir)
	sameTraces(t, before, dir)
}

// TestRunFUSEConcurrent: runs of one file side by side on the FUSE rung,
// each with a server of its own, all succeed, and all servers end.
func TestRunFUSEConcurrent(t *testing.T) {
	f, cacheDir := nobodySetup(t)
	openFUSE(t)
	const n = 10
	var wg sync.WaitGroup
	res := make([]runRes, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := asNobody(f, []string{"PARKER_CACHE_DIR=" + cacheDir}, "read", "data.txt")
			c.Dir = filepath.Dir(f)
			res[i] = runCmd(t, c)
		}()
	}
	wg.Wait()
	for i, r := range res {
		if r.Code != 0 || r.Stdout != "packed data\n" {
			t.Errorf("run %d: exit %d, stdout %q, stderr %q", i, r.Code, r.Stdout, r.Stderr)
		}
	}
	noFUSEServers(t)
	// Each server, started from memory, wrote the helper's copy: one good
	// copy is left, and no temporary file.
	if !goStubRun() {
		wantHelperCopy(t, f, cacheDir)
	}
}

// TestRunFUSEModes: PARKER_MODE=fuse keeps to the FUSE rung even as root
// (in a mount namespace of the run's own; the C stub makes it a user
// namespace too), and says why when it cannot be taken: /dev/fuse closed
// to the user.
func TestRunFUSEModes(t *testing.T) {
	f, cacheDir := nobodySetup(t)
	env := []string{"PARKER_CACHE_DIR=" + cacheDir, "PARKER_MODE=fuse"}
	for _, extra := range [][]string{nil, {"PARKER_VERBOSE=1"}} {
		cmd := exec.Command(f, "env", "PARKER_ROOT")
		cmd.Env = append(append(os.Environ(), env...), extra...)
		r := runCmd(t, cmd)
		if r.Code != 0 || r.Stdout != "PARKER_ROOT="+filepath.Dir(f)+"\n" || len(listDir(t, cacheDir)) != 0 {
			t.Errorf("PARKER_MODE=fuse as root %v: exit %d, stdout %q, stderr %q", extra, r.Code, r.Stdout, r.Stderr)
		}
	}
	// nobody, /dev/fuse closed (as this machine ships it): no rung.
	if st, err := os.Stat("/dev/fuse"); err == nil && st.Mode().Perm()&0o006 == 0 {
		r := runCmd(t, asNobody(f, env, "exit", "0"))
		if r.Code != 125 || strings.Count(r.Stderr, "\n") != 1 || !strings.Contains(r.Stderr, "PARKER_MODE=fuse: ") {
			t.Errorf("PARKER_MODE=fuse, /dev/fuse closed: exit %d, stderr %q", r.Code, r.Stderr)
		}
	}
}

// TestRunFUSEHelper: a run the Go helper has (PARKER_VERBOSE=1, a
// --parker-* flag) takes the FUSE rung too, as nobody: the C stub makes it
// a user namespace and hands it back. The view is the same; the writes of
// --parker-overlay DIR outlive the run, in DIR; the target is left no
// capability of the namespace's. The Go stub, which has no C stub, takes
// the cache and says why.
func TestRunFUSEHelper(t *testing.T) {
	f, cacheDir := nobodySetup(t)
	openFUSE(t)
	dir := filepath.Dir(f)
	env := []string{"PARKER_CACHE_DIR=" + cacheDir}
	before := snapshot(t, dir)
	r := runCmd(t, asNobody(f, append(env, "PARKER_VERBOSE=1"), "env", "PARKER_ROOT"))
	if goStubRun() {
		if r.Code != 0 || !strings.Contains(r.Stderr, "FUSE: this packed file has the Go stub") {
			t.Errorf("Go stub: exit %d, stdout %q, stderr %q", r.Code, r.Stdout, r.Stderr)
		}
		return
	}
	if r.Code != 0 || r.Stdout != "PARKER_ROOT="+dir+"\n" || !strings.Contains(r.Stderr, "parker: FUSE mount and server") ||
		strings.Contains(r.Stderr, "warning") {
		t.Errorf("verbose run: exit %d, stdout %q, stderr %q", r.Code, r.Stdout, r.Stderr)
	}
	r = runCmd(t, asNobody(f, append(env, "PARKER_VERBOSE=1"), "read", "/proc/self/status"))
	for _, l := range strings.Split(r.Stdout, "\n") {
		if strings.HasPrefix(l, "Cap") && !strings.HasPrefix(l, "CapBnd") && !strings.HasSuffix(l, "0000000000000000") {
			t.Errorf("the target holds capabilities: %s", l)
		}
	}
	ovBase := tempDir(t, "fuseov")
	if err := os.Chown(ovBase, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	openToOthers(t, filepath.Join(ovBase, "x"))
	ov := filepath.Join(ovBase, "ov")
	r = runCmd(t, asNobody(f, env, "--parker-overlay", ov, "write", filepath.Join(dir, "kept"), "kept data"))
	if r.Code != 0 {
		t.Fatalf("--parker-overlay: exit %d, stderr %q", r.Code, r.Stderr)
	}
	if b, err := os.ReadFile(filepath.Join(ov, "upper", "kept")); err != nil || string(b) != "kept data\n" {
		t.Errorf("the write is not in the overlay dir: %q, %v", b, err)
	}
	r = runCmd(t, asNobody(f, env, "--parker-overlay", ov, "read", filepath.Join(dir, "kept")))
	if r.Stdout != "kept data\n" {
		t.Errorf("a later run with the overlay dir reads %q, stderr %q", r.Stdout, r.Stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "kept")); err == nil {
		t.Errorf("the write reached the packed file's directory")
	}
	if got := listDir(t, cacheDir); len(got) != 0 {
		t.Errorf("the FUSE rung used the cache: %v", got)
	}
	noFUSEServers(t)
	sameTraces(t, before, dir)
}

// TestRunFUSELimits: the FUSE server is not the run's: its threads do not
// count against --parker-pids (nor its memory against --parker-memory), so
// a target under --parker-pids 10 forks 9 children, as on the kernel's rung.
func TestRunFUSELimits(t *testing.T) {
	needRoot(t, "running a packed file")
	f := toolPacked(t)
	c := exec.Command(f, "--parker-pids", "10", "forkbomb", "1000")
	c.Env = append(os.Environ(), underRoot, "PARKER_MODE=fuse", "PARKER_CACHE_DIR="+tempDir(t, "rootcache"))
	p := launch(t, c, false)
	got := p.expect(t, "forked ")["forked "]
	if n, _ := strconv.Atoi(strings.Fields(got)[0]); n != 9 {
		t.Errorf("under --parker-pids 10 on the FUSE rung the target forked %s; want 9", got)
	}
	c.Process.Kill()
	p.wait(t)
	noFUSEServers(t)
}

// TestRunFUSERefused: a kernel that refuses the user namespace with an
// error the C stub has no text of its own for (ENOSPC, where
// user.max_user_namespaces is 0 in the namespace the run is started in)
// gets one line and 125, not a crash.
func TestRunFUSERefused(t *testing.T) {
	needRoot(t, "making a user namespace")
	needTool(t, "unshare")
	f := toolPacked(t)
	c := exec.Command("unshare", "-Ur", "sh", "-c", `echo 0 > /proc/sys/user/max_user_namespaces && exec "$0" "$@"`, f, "exit", "0")
	c.Env = append(os.Environ(), "PARKER_MODE=fuse")
	r := runCmd(t, c)
	if r.Code != 125 || strings.Count(r.Stderr, "\n") != 1 || !strings.Contains(r.Stderr, "PARKER_MODE=fuse: ") {
		t.Errorf("exit %d, stderr %q; want 125 and one line", r.Code, r.Stderr)
	}
	t.Logf("%s", strings.TrimSpace(r.Stderr))
}

// TestRunFUSENotStarted: a target that cannot start (its interpreter is
// missing) gets the kernel rung's one line and 127 on the rungs the C stub
// mounts in a user namespace too: FUSE, and a cache hit under the overlay.
func TestRunFUSENotStarted(t *testing.T) {
	needRoot(t, "switching to an unprivileged user")
	needTool(t, "setpriv")
	f := packScript(t, "badshebang", "#!/usr/bin/nope\necho never\n", nil)
	openToOthers(t, f)
	cacheDir := nobodyCache(t)
	want := "parker: " + f + ": cannot run badshebang: its interpreter /usr/bin/nope is missing\n"
	check := func(rung string) {
		t.Helper()
		c := asNobody(f, []string{"PARKER_CACHE_DIR=" + cacheDir})
		c.Dir = filepath.Dir(f)
		// The Go stub runs straight from the cache, saying so first.
		r := runCmd(t, c)
		if r.Code != 127 || r.Stderr != want && !(goStubRun() && strings.HasSuffix(r.Stderr, "\n"+want)) {
			t.Errorf("%s: exit %d, stderr %q; want 127 and %q", rung, r.Code, r.Stderr, want)
		}
	}
	t.Run("fuse", func(t *testing.T) {
		openFUSE(t)
		check("FUSE")
	})
	t.Run("cache", func(t *testing.T) {
		closeFUSE(t)
		check("the first run (extracting)")
		check("a cache hit")
	})
	noFUSEServers(t)
}
