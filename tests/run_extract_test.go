package tests

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/parkerpack/parker/internal/testenv"
)

const nobody = 65534

// nobodyCache returns a cache directory that nobody owns, under the run's
// temp root, opened to others on the way.
func nobodyCache(t *testing.T) string {
	t.Helper()
	d := tempDir(t, "cache")
	if err := os.Chown(d, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	openToOthers(t, d)
	return d
}

// nobodySetup is what the runs as nobody need: root (to switch to nobody)
// and setpriv, the packed tool opened to others, /dev/fuse closed to them
// (closeFUSE; a test of the FUSE rung opens it), and a cache directory of
// nobody's own.
func nobodySetup(t *testing.T) (file, cacheDir string) {
	t.Helper()
	needRoot(t, "switching to an unprivileged user")
	needTool(t, "setpriv")
	file = toolPacked(t)
	openToOthers(t, file)
	closeFUSE(t)
	return file, nobodyCache(t)
}

// nomountTool builds testdata/run/nomount.c: a program run under a
// seccomp filter that fails the namespace and mount calls with EPERM.
func nomountTool(t *testing.T) string {
	t.Helper()
	p := filepath.Join(tempDir(t, "nomount"), "nomount")
	gccBuild(t, "nomount.c", p)
	return p
}

// asNobody is a command that runs file with args as nobody (uid and gid
// 65534, no groups), with env added to ours (HOME pointing nowhere).
func asNobody(file string, env []string, args ...string) *exec.Cmd {
	return asUser(nobody, file, env, args...)
}

// asUser is asNobody as uid and gid uid.
func asUser(uid int, file string, env []string, args ...string) *exec.Cmd {
	id := strconv.Itoa(uid)
	c := exec.Command("setpriv", append([]string{"--reuid", id, "--regid", id, "--clear-groups", file}, args...)...)
	c.Env = append(os.Environ(), append([]string{"HOME=/nonexistent", "XDG_CACHE_HOME="}, env...)...)
	return c
}

// TestRunExtractedRootsDir: a user other than nobody, whose cache
// directory is in a directory of root's (PARKER_CACHE_DIR=/srv/cache/ann,
// say), gets the cache's copy under the overlay on the first run and the
// next, as nobody does: the directory is checked before the user
// namespace the C stub hands the run to the helper in, where root's
// directory looks like anyone's (the overflow uid, nobody's).
func TestRunExtractedRootsDir(t *testing.T) {
	f, _ := nobodySetup(t)
	const ann = 4242
	roots := tempDir(t, "rootsdir")
	openToOthers(t, filepath.Join(roots, "x"))
	cacheDir := filepath.Join(roots, "ann")
	if err := os.Mkdir(cacheDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(cacheDir, ann, ann); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Dir(f)
	for _, run := range []string{"first", "second"} {
		r := runCmd(t, asUser(ann, f, []string{"PARKER_CACHE_DIR=" + cacheDir}, "env", "PARKER_ROOT"))
		want := "PARKER_ROOT=" + dir + "\n"
		if goStubRun() {
			want = "PARKER_ROOT=" + cacheDir + "/" // straight from the entry
		}
		if r.Code != 0 || !strings.HasPrefix(r.Stdout, want) || !goStubRun() && r.Stderr != "" {
			t.Errorf("%s run: exit %d, stdout %q, stderr %q", run, r.Code, r.Stdout, r.Stderr)
		}
	}
}

func runCmd(t *testing.T, c *exec.Cmd) runRes {
	t.Helper()
	var so, se bytes.Buffer
	c.Stdout, c.Stderr = &so, &se
	// A process the run left holding its pipes (a FUSE server that did
	// not end) fails the test, rather than hanging it.
	c.WaitDelay = 30 * time.Second
	err := c.Run()
	r := runRes{Stdout: so.String(), Stderr: se.String()}
	fillStatus(t, &r, c, err)
	return r
}

var extractWarning = regexp.MustCompile(`^parker: toold: warning: mounting is not allowed here \(unshare mount namespace: operation not permitted; FUSE: (.+)\); ` +
	`running from the read-only copy in the cache, PARKER_ROOT=(\S+): the packed files are not merged over (\S+)\n$`)

// TestRunExtracted: as an ordinary user, whom the kernel will not mount
// the payload for, with /dev/fuse closed to users, a packed file runs its
// target from the payload's entry in the extraction cache, made by the
// first run, found by the next, under the same overlay as on the other
// rungs, in a user namespace the C stub makes: the packed files merged
// over the packed file's directory, PARKER_ROOT there, the same arguments,
// standard streams, exit statuses and working directory as a direct run,
// new files written to the run's tmpfs, no warning. Nothing is written
// outside the cache directory. (Without a user namespace, as the Go stub
// runs, and under seccomp: extractedNoNamespace.)
func TestRunExtracted(t *testing.T) {
	f, cacheDir := nobodySetup(t)
	if goStubRun() {
		extractedNoNamespace(t, f, cacheDir)
		return
	}
	dir := filepath.Dir(f)
	env := []string{"PARKER_CACHE_DIR=" + cacheDir}
	before := snapshot(t, dir)
	dirBefore := listDir(t, dir)
	// argv[0] names the target where it is: in the view.
	entry, r := extractThenFind(t, f, cacheDir, func(string) string { return dir })
	if strings.Contains(r.Stderr, "warning") {
		t.Errorf("a run under the overlay warned: %q", r.Stderr)
	}
	c := asNobody(f, env, "cwd")
	c.Dir = dir
	if r = runCmd(t, c); r.Code != 0 || r.Stdout != dir+"\n" || r.Stderr != "" {
		t.Errorf("cwd: exit %d, %q, stderr %q", r.Code, r.Stdout, r.Stderr)
	}
	rootStdinCwd(t, f, env, dir)
	c = asNobody(f, env, "read", "data.txt")
	c.Dir = dir
	if r = runCmd(t, c); r.Stdout != "packed data\n" {
		t.Errorf("a packed file: %q, stderr %q", r.Stdout, r.Stderr)
	}
	// A new file: written to the run's tmpfs, gone with it. A packed
	// file: read-only here (the cache's copy lost its write bits).
	if r = runCmd(t, asNobody(f, env, "write", filepath.Join(dir, "new"), "x")); r.Code != 0 {
		t.Errorf("a new file: exit %d, stderr %q", r.Code, r.Stderr)
	}
	if r = runCmd(t, asNobody(f, env, "write", filepath.Join(dir, "data.txt"), "x")); r.Code == 0 {
		t.Errorf("a packed file was written")
	}
	if b, _ := os.ReadFile(filepath.Join(entry, "data.txt")); string(b) != "packed data\n" {
		t.Errorf("the entry changed: %q", b)
	}
	if r = runCmd(t, asNobody(f, env, "raise", "15")); r.Signal != syscall.SIGTERM {
		t.Errorf("death by SIGTERM: %+v", r)
	}
	// A hit is the C stub's alone: a copy of the packed file whose helper
	// is damaged (any start of it fails) runs from the same entry.
	_, _, _, tr := packedParts(t, f)
	b, err := os.ReadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	copy(b[tr.HelperOffset:], make([]byte, 64))
	broken := filepath.Join(tempDir(t, "nohelper"), "toold")
	if err := os.WriteFile(broken, b, 0o755); err != nil {
		t.Fatal(err)
	}
	openToOthers(t, broken)
	for _, mode := range []string{"auto", "extract"} {
		c := asNobody(broken, append(env, "PARKER_MODE="+mode), "read", filepath.Join(filepath.Dir(broken), "data.txt"))
		if r = runCmd(t, c); r.Code != 0 || r.Stdout != "packed data\n" {
			t.Errorf("a cache hit without the helper, PARKER_MODE=%s: exit %d, stdout %q, stderr %q", mode, r.Code, r.Stdout, r.Stderr)
		}
	}
	if got := listDir(t, dir); strings.Join(got, " ") != strings.Join(dirBefore, " ") {
		t.Errorf("the packed file's directory changed: %v -> %v", dirBefore, got)
	}
	if got := listDir(t, cacheDir); len(got) != 2 {
		t.Errorf("the cache holds %v; want the entry and its lock", got)
	}
	sameTraces(t, before, dir)
}

// rootStdinCwd checks runs of f as nobody with env: PARKER_ROOT is root
// (from /); a caller in a directory it could not enter again by its path
// (a 0700 directory of root's) starts the target there all the same;
// standard input reaches the target.
func rootStdinCwd(t *testing.T, f string, env []string, root string) {
	t.Helper()
	c := asNobody(f, env, "env", "PARKER_ROOT")
	c.Dir = "/"
	if r := runCmd(t, c); r.Stdout != "PARKER_ROOT="+root+"\n" {
		t.Errorf("PARKER_ROOT: %q", r.Stdout)
	}
	c = asNobody(f, env, "exit", "4")
	c.Dir = tempDir(t, "closed")
	if r := runCmd(t, c); r.Code != 4 {
		t.Errorf("from a directory closed to the caller: exit %d, stderr %q", r.Code, r.Stderr)
	}
	c = asNobody(f, env, "cat")
	c.Stdin = strings.NewReader("through stdin\n")
	if r := runCmd(t, c); r.Code != 0 || r.Stdout != "through stdin\n" {
		t.Errorf("stdin: exit %d, stdout %q", r.Code, r.Stdout)
	}
}

// extractThenFind runs f twice as nobody with cacheDir for its cache: the
// first run, from the packed file's directory, extracts the payload (and
// says so once), and passes its arguments to the target, which it names
// in at(entry); the second finds the entry. It returns the entry, and how
// the first run ended.
func extractThenFind(t *testing.T, f, cacheDir string, at func(entry string) string) (string, runRes) {
	t.Helper()
	env := []string{"PARKER_CACHE_DIR=" + cacheDir, "PARKER_VERBOSE=1"}
	c := asNobody(f, env, "args", "a b", "", "--parker-x")
	c.Dir = filepath.Dir(f)
	first := runCmd(t, c)
	if strings.Count(first.Stderr, "parker: extract into "+cacheDir+"/") != 1 {
		t.Errorf("first run did not say it extracted: %q", first.Stderr)
	}
	entries, _ := filepath.Glob(filepath.Join(cacheDir, "*-tool"))
	if len(entries) != 1 {
		t.Fatalf("cache holds %v", listDir(t, cacheDir))
	}
	entry := entries[0]
	if first.Code != 0 || first.Stdout != "argv0="+at(entry)+"/tool\n"+hexArgs([]string{"a b", "", "--parker-x"}) {
		t.Errorf("first run: exit %d, stdout %q, stderr %q", first.Code, first.Stdout, first.Stderr)
	}
	r := runCmd(t, asNobody(f, env, "exit", "3"))
	if r.Code != 3 || !strings.Contains(r.Stderr, "parker: found "+entry) || strings.Contains(r.Stderr, "extract into") {
		t.Errorf("second run: exit %d, stderr %q", r.Code, r.Stderr)
	}
	return entry, first
}

// extractedNoNamespace: where no user namespace can be had (the Go stub,
// which cannot enter one), the target runs straight from the entry: the
// same arguments, standard streams, exit status and environment as a
// direct run, PARKER_ROOT at the entry, read-only, the target started in
// the entry from the packed file's directory, one warning line.
func extractedNoNamespace(t *testing.T, f, cacheDir string) {
	dir := filepath.Dir(f)
	env := []string{"PARKER_CACHE_DIR=" + cacheDir}
	before := snapshot(t, dir)
	dirBefore := listDir(t, dir)
	// argv[0] names the target where it is: in the entry.
	entry, _ := extractThenFind(t, f, cacheDir, func(entry string) string { return entry })
	c := asNobody(f, env, "cwd")
	c.Dir = dir
	r := runCmd(t, c)
	m := extractWarning.FindStringSubmatch(r.Stderr)
	why := "/dev/fuse "
	if goStubRun() {
		why = "this packed file has the Go stub"
	}
	if r.Code != 0 || r.Stdout != entry+"\n" || m == nil || !strings.HasPrefix(m[1], why) || m[2] != entry || m[3] != dir {
		t.Errorf("run from the packed file's directory: exit %d, cwd %q (want the entry %s), stderr %q", r.Code, r.Stdout, entry, r.Stderr)
	}
	rootStdinCwd(t, f, env, entry)
	c = asNobody(f, env, "read", filepath.Join(entry, "data.txt"))
	if r = runCmd(t, c); r.Stdout != "packed data\n" {
		t.Errorf("a packed file, from the entry: %q, stderr %q", r.Stdout, r.Stderr)
	}
	c = asNobody(f, env, "write", filepath.Join(entry, "new"), "x")
	if r = runCmd(t, c); r.Code == 0 {
		t.Errorf("the target wrote into the entry: stderr %q", r.Stderr)
	}
	// Read-only throughout, not only at the top.
	filepath.WalkDir(entry, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			t.Error(err)
			return nil
		}
		fi, err := os.Lstat(p)
		if err != nil {
			t.Error(err)
		} else if fi.Mode()&os.ModeSymlink == 0 && fi.Mode().Perm()&0o222 != 0 {
			t.Errorf("%s in the entry: mode %v; want no write bits", p, fi.Mode())
		}
		return nil
	})
	c = asNobody(f, env, "raise", "15")
	if r = runCmd(t, c); r.Signal != syscall.SIGTERM {
		t.Errorf("death by SIGTERM: %+v", r)
	}
	if got := listDir(t, dir); strings.Join(got, " ") != strings.Join(dirBefore, " ") {
		t.Errorf("the packed file's directory changed: %v -> %v", dirBefore, got)
	}
	if got := listDir(t, cacheDir); len(got) != 2 {
		t.Errorf("the cache holds %v; want the entry and its lock", got)
	}
	sameTraces(t, before, dir)
}

// listDir lists a directory's names.
func listDir(t *testing.T, d string) []string { return testenv.ListDir(t, d) }

// TestRunExtractedConcurrent: 20 first runs of one file at once, as one
// user: one extraction, 20 successes.
func TestRunExtractedConcurrent(t *testing.T) {
	f, cacheDir := nobodySetup(t)
	var wg sync.WaitGroup
	var mu sync.Mutex
	extracted, ok := 0, 0
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			c := asNobody(f, []string{"PARKER_CACHE_DIR=" + cacheDir, "PARKER_VERBOSE=1"}, "exit", fmt.Sprint(i))
			var se bytes.Buffer
			c.Stderr = &se
			c.Run()
			mu.Lock()
			defer mu.Unlock()
			if c.ProcessState.ExitCode() == i {
				ok++
			} else {
				t.Errorf("run %d: exit %d, stderr %q", i, c.ProcessState.ExitCode(), se.String())
			}
			extracted += strings.Count(se.String(), "parker: extract into ")
		}(i)
	}
	wg.Wait()
	if ok != 20 || extracted != 1 {
		t.Errorf("%d of 20 runs succeeded, %d extracted; want 20 and 1", ok, extracted)
	}
	if got := listDir(t, cacheDir); len(got) != 2 {
		t.Errorf("the cache holds %v; want one entry and its lock", got)
	}
}

// TestRunExtractedKilled: kill -9 during a first extraction leaves no
// entry that a later run would use; the next run extracts again and works.
func TestRunExtractedKilled(t *testing.T) {
	needRoot(t, "switching to an unprivileged user")
	needTool(t, "setpriv")
	// A payload big enough that extracting it takes a while.
	wd := tempDir(t, "bigwd")
	gccBuild(t, "tool.c", filepath.Join(wd, "tool"))
	big := make([]byte, 64<<20)
	for i := range big {
		big[i] = byte(i * 7919 >> 8)
	}
	for i := 0; i < 4; i++ {
		os.WriteFile(filepath.Join(wd, fmt.Sprintf("big%d", i)), big, 0o644)
	}
	f := pack(t, wd, "tool", "-q", "--compression", "none")
	openToOthers(t, f)
	closeFUSE(t)
	cacheDir := nobodyCache(t)
	env := []string{"PARKER_CACHE_DIR=" + cacheDir}
	c := asNobody(f, env, "exit", "0")
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	var tmp string
	if !within(lineWait, func() bool {
		m, _ := filepath.Glob(filepath.Join(cacheDir, ".tmp-*", "big*"))
		if len(m) > 0 {
			tmp = filepath.Dir(m[0])
		}
		return tmp != ""
	}) {
		c.Process.Kill()
		c.Wait()
		t.Fatalf("no extraction under way in %v", listDir(t, cacheDir))
	}
	c.Process.Signal(syscall.SIGKILL)
	c.Wait()
	if m, _ := filepath.Glob(filepath.Join(cacheDir, "*-tool")); len(m) != 0 {
		t.Fatalf("a killed extraction left an entry: %v", m)
	}
	c = asNobody(f, append(env, "PARKER_VERBOSE=1"), "read", "big3")
	c.Dir = filepath.Dir(f) // the target starts in the entry
	r := runCmd(t, c)
	if r.Code != 0 || !strings.Contains(r.Stderr, "parker: extract into ") || len(r.Stdout) != len(big) {
		t.Errorf("the run after: exit %d, %d bytes read, stderr %q", r.Code, len(r.Stdout), r.Stderr)
	}
	if _, err := os.Stat(tmp); err == nil {
		t.Errorf("the killed extraction's %s is still there", tmp)
	}
}

// TestRunExtractedGC: parker cache gc never removes an entry a running
// instance uses, and removes it once the run has ended.
func TestRunExtractedGC(t *testing.T) {
	f, cacheDir := nobodySetup(t)
	env := []string{"PARKER_CACHE_DIR=" + cacheDir}
	p := launch(t, asNobody(f, env, "waitall"), false)
	p.expect(t, "no children")
	// parker cache as the cache's owner: another user's cache is not one
	// parker will use.
	// A copy nobody can reach, wherever the build is (PARKER_BIN may be
	// in a checkout closed to others).
	b, err := os.ReadFile(buildParker(t))
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(tempDir(t, "parkerbin"), "parker")
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	openToOthers(t, bin)
	cacheCmd := func(args ...string) runRes {
		return runCmd(t, asNobody(bin, []string{"PARKER_CACHE_DIR=" + cacheDir}, append([]string{"cache"}, args...)...))
	}
	gc := func() runRes { return cacheCmd("gc") }
	if r := gc(); r.Code != 0 || !strings.Contains(r.Stderr, "removed 0 entries") {
		t.Errorf("gc while the run uses the entry: exit %d, stderr %q", r.Code, r.Stderr)
	}
	if r := cacheCmd("list"); !regexp.MustCompile(`(?m) tool .* yes$`).MatchString(r.Stdout) {
		t.Errorf("cache list while in use:\n%s", r.Stdout)
	}
	if ws := p.wait(t); ws.ExitStatus() != 0 {
		t.Fatalf("run: %v, stderr %q", ws, p.stderr())
	}
	if !within(lineWait, func() bool { return strings.Contains(gc().Stderr, "removed 1 entries") }) {
		t.Errorf("gc after the run did not remove the entry: %v", listDir(t, cacheDir))
	}
	if got := listDir(t, cacheDir); len(got) != 0 {
		t.Errorf("the cache holds %v after gc", got)
	}
}

// TestRunMode: PARKER_MODE=extract runs from the cache even as root (under
// the overlay);
// kernel refuses to fall back; a bad value is one line and 125.
func TestRunMode(t *testing.T) {
	needRoot(t, "running a packed file")
	f := toolPacked(t)
	cacheDir := tempDir(t, "rootcache")
	// Root may mount: the cache's copy goes under the overlay, as the
	// payload would.
	r := runFile(t, f, []string{"env", "PARKER_ROOT"}, withEnv("PARKER_MODE=extract", "PARKER_CACHE_DIR="+cacheDir))
	if m, _ := filepath.Glob(filepath.Join(cacheDir, "*-tool")); r.Code != 0 || r.Stdout != "PARKER_ROOT="+filepath.Dir(f)+"\n" ||
		r.Stderr != "" || len(m) != 1 {
		t.Errorf("PARKER_MODE=extract: exit %d, stdout %q, stderr %q, cache %v", r.Code, r.Stdout, r.Stderr, listDir(t, cacheDir))
	}
	r = runFile(t, f, []string{"env", "PARKER_ROOT"}, withEnv("PARKER_MODE=kernel"))
	if r.Code != 0 || r.Stdout != "PARKER_ROOT="+filepath.Dir(f)+"\n" {
		t.Errorf("PARKER_MODE=kernel: exit %d, stdout %q, stderr %q", r.Code, r.Stdout, r.Stderr)
	}
	for _, bad := range []string{"fast", "FUSE"} {
		r = runFile(t, f, []string{"exit", "0"}, withEnv("PARKER_MODE="+bad))
		if r.Code != 125 || strings.Count(r.Stderr, "\n") != 1 || !strings.Contains(r.Stderr, "PARKER_MODE=") {
			t.Errorf("PARKER_MODE=%s: exit %d, stderr %q", bad, r.Code, r.Stderr)
		}
	}
	needTool(t, "setpriv")
	openToOthers(t, f)
	r = runCmd(t, asNobody(f, []string{"PARKER_MODE=kernel"}, "exit", "0"))
	if r.Code != 125 || strings.Count(r.Stderr, "\n") != 1 || !strings.Contains(r.Stderr, "operation not permitted") {
		t.Errorf("PARKER_MODE=kernel as nobody: exit %d, stderr %q", r.Code, r.Stderr)
	}
}

// TestRunNoSysAdmin: root without CAP_SYS_ADMIN, as in a container, may not
// mount: the run takes the FUSE rung (the extraction cache with the Go
// stub), and, root being allowed to make cgroups, what the target leaves
// running still ends with it.
func TestRunNoSysAdmin(t *testing.T) {
	needRoot(t, "dropping a capability")
	needTool(t, "capsh")
	f := toolPacked(t)
	dir := filepath.Dir(f)
	cacheDir := tempDir(t, "capcache")
	before := snapshot(t, dir)
	c := exec.Command("capsh", "--drop=cap_sys_admin", "--", "-c", `exec "$0" "$@"`, f, "daemon", filepath.Join(dir, "data.txt"),
		filepath.Join(tempDir(t, "daemon"), "out"))
	c.Env = append(os.Environ(), "PARKER_CACHE_DIR="+cacheDir, "PARKER_VERBOSE=1", "PARKER_CGROUP_PARENT=/")
	p := launch(t, c, false)
	d, _ := strconv.Atoi(p.expect(t, "daemon=")["daemon="])
	t.Cleanup(func() { syscall.Kill(d, syscall.SIGKILL) })
	if ws := p.wait(t); ws.ExitStatus() != 0 {
		t.Fatalf("run: %v, stderr %q", ws, p.stderr())
	}
	// The helper has the run (PARKER_VERBOSE): the C stub makes it a user
	// namespace for the FUSE rung; the Go stub cannot, and takes the cache.
	want := "parker: FUSE mount and server"
	if goStubRun() {
		want = "mounting is not allowed here (unshare mount namespace: operation not permitted; FUSE: this packed file has the Go stub"
	}
	if !strings.Contains(p.stderr(), want) || !strings.Contains(p.stderr(), "parker: cleanup by cgroup") {
		t.Errorf("stderr %q; want %q, cleaned up by a cgroup", p.stderr(), want)
	}
	if !within(cleanupWait, func() bool { return !alive(d) }) {
		t.Errorf("the daemon %d still runs %v after the target ended; stderr %q", d, cleanupWait, p.stderr())
	}
	sameTraces(t, before, dir)
}

// TestRunSeccomp: under a seccomp filter that fails unshare, setns and the
// mount calls with EPERM, as docker's default profile does, root takes the
// extraction cache: arguments, standard input, exit statuses and death by
// a signal as in a direct run, and the daemon the target leaves ends with
// it (root may still make cgroups).
func TestRunSeccomp(t *testing.T) {
	needRoot(t, "running a packed file")
	nomount := nomountTool(t)
	f := toolPacked(t)
	dir := filepath.Dir(f)
	cacheDir := tempDir(t, "seccache")
	before := snapshot(t, dir)
	env := withEnv("PARKER_CACHE_DIR="+cacheDir, "PARKER_CGROUP_PARENT=/")
	if r := runFile(t, nomount, []string{"unshare", "-m", "true"}); r.Code == 0 {
		t.Fatalf("the filter let unshare through: %+v", r)
	}
	r := runFile(t, nomount, []string{f, "args", "x", "--", "y z"}, env)
	if r.Code != 0 || !strings.HasSuffix(r.Stdout, hexArgs([]string{"x", "--", "y z"})) ||
		!strings.Contains(r.Stderr, "mounting is not allowed here (unshare mount namespace: operation not permitted; FUSE: ") {
		t.Errorf("args: exit %d, stdout %q, stderr %q", r.Code, r.Stdout, r.Stderr)
	}
	for _, code := range []int{0, 1, 42, 255} {
		if r := runFile(t, nomount, []string{f, "exit", strconv.Itoa(code)}, env); r.Code != code {
			t.Errorf("exit %d: got %d, stderr %q", code, r.Code, r.Stderr)
		}
	}
	if r := runFile(t, nomount, []string{f, "raise", "9"}, env); r.Signal != syscall.SIGKILL {
		t.Errorf("death by SIGKILL: %+v", r)
	}
	if r := runFile(t, nomount, []string{f, "cat"}, env, withStdin(strings.NewReader("in\n"))); r.Stdout != "in\n" {
		t.Errorf("stdin: %+v", r)
	}
	c := exec.Command(nomount, f, "daemon", filepath.Join(dir, "data.txt"), filepath.Join(tempDir(t, "daemon"), "out"))
	c.Env = append(os.Environ(), "PARKER_CACHE_DIR="+cacheDir, "PARKER_CGROUP_PARENT=/")
	p := launch(t, c, false)
	d, _ := strconv.Atoi(p.expect(t, "daemon=")["daemon="])
	t.Cleanup(func() { syscall.Kill(d, syscall.SIGKILL) })
	if ws := p.wait(t); ws.ExitStatus() != 0 {
		t.Fatalf("daemon run: %v, stderr %q", ws, p.stderr())
	}
	if !within(cleanupWait, func() bool { return !alive(d) }) {
		t.Errorf("the daemon %d still runs %v after the target ended; stderr %q", d, cleanupWait, p.stderr())
	}
	sameTraces(t, before, dir)
}

// TestRunDoctor: --parker-doctor names the rung a run takes, and why not
// the others, in each configuration the rung tests run in.
func TestRunDoctor(t *testing.T) {
	needRoot(t, "switching users and dropping capabilities")
	needTool(t, "setpriv")
	needTool(t, "capsh")
	f := toolPacked(t)
	openToOthers(t, f)
	closeFUSE(t)
	nomount := nomountTool(t)
	cacheDir := nobodyCache(t)
	// Where no mount namespace can be made, the FUSE rung needs the C stub
	// (to enter a user namespace); the Go stub says why not, and takes the
	// cache where the C stub takes FUSE.
	fuseYes, fuseRun := "fuse:     yes", "a run:    fuse"
	cFuse, cRun := fuseYes, fuseRun
	if goStubRun() {
		cFuse, cRun = "fuse:     no: this packed file has the Go stub", "a run:    extract"
	}
	// Whether nobody may open /dev/fuse depends on the host's mode for it
	// (0600 on the test machine, 0666 on most distributions).
	nobodyFuse, nobodyRun := cFuse, cRun
	if st, err := os.Stat("/dev/fuse"); goStubRun() {
		// The stub says so first.
	} else if err != nil {
		nobodyFuse, nobodyRun = "fuse:     no: /dev/fuse is missing", "a run:    extract"
	} else if st.Mode().Perm()&0o006 != 0o006 {
		nobodyFuse = fmt.Sprintf("fuse:     no: /dev/fuse is not open to this user (mode %#o", st.Mode().Perm())
		nobodyRun = "a run:    extract"
	}
	secFuse := "fuse:     no: a user namespace: operation not permitted"
	if goStubRun() {
		secFuse = cFuse
	}
	cases := []struct {
		name string
		cmd  func() *exec.Cmd
		want []string
	}{
		{"root", func() *exec.Cmd { return exec.Command(f, "--parker-doctor") },
			[]string{"kernel:   yes", fuseYes, "a run:    kernel (PARKER_MODE=auto)"}},
		{"nobody", func() *exec.Cmd { return asNobody(f, []string{"PARKER_CACHE_DIR=" + cacheDir}, "--parker-doctor") },
			[]string{"kernel:   no: a mount namespace: operation not permitted", "extract:  yes", "cleanup:  no cgroup",
				nobodyFuse, nobodyRun + " (PARKER_MODE=auto)"}},
		{"nobody, kernel only", func() *exec.Cmd {
			return asNobody(f, []string{"PARKER_CACHE_DIR=" + cacheDir, "PARKER_MODE=kernel"}, "--parker-doctor")
		}, []string{"a run:    none: PARKER_MODE=kernel, and the kernel will not mount (PARKER_MODE=kernel)"}},
		{"nobody, no cache", func() *exec.Cmd {
			return asNobody(f, []string{"TMPDIR=/proc", "PARKER_MODE=extract"}, "--parker-doctor")
		},
			[]string{"extract:  no: no usable cache directory", "a run:    none: a run fails (PARKER_MODE=extract)"}},
		{"seccomp", func() *exec.Cmd { return exec.Command(nomount, f, "--parker-doctor") },
			[]string{"kernel:   no", secFuse, "cleanup:  a cgroup per run", "a run:    extract"}},
		{"no CAP_SYS_ADMIN", func() *exec.Cmd {
			return exec.Command("capsh", "--drop=cap_sys_admin", "--", "-c", `exec "$0" --parker-doctor`, f)
		}, []string{"kernel:   no", cFuse, cRun}},
		{"user namespace", func() *exec.Cmd { return exec.Command("unshare", "-Ur", f, "--parker-doctor") },
			[]string{`kernel:   no: in a user namespace (uid_map "0 0 1")`, fuseYes, fuseRun}},
	}
	check := func(name string, cmd *exec.Cmd, want []string) {
		if cmd.Env == nil {
			cmd.Env = append(os.Environ(), "PARKER_CACHE_DIR="+tempDir(t, "doctorcache"))
		}
		r := runCmd(t, cmd)
		if r.Code != 0 {
			t.Errorf("%s: exit %d, stderr %q", name, r.Code, r.Stderr)
		}
		for _, w := range want {
			if !strings.Contains(r.Stdout, "\n  "+w) {
				t.Errorf("%s: no line %q in\n%s", name, w, r.Stdout)
			}
		}
	}
	for _, tc := range cases {
		check(tc.name, tc.cmd(), tc.want)
	}
	// nobody, with /dev/fuse open to users, as most distributions ship it.
	openFUSE(t)
	check("nobody, /dev/fuse open", asNobody(f, []string{"PARKER_CACHE_DIR=" + cacheDir}, "--parker-doctor"),
		[]string{cFuse, cRun + " (PARKER_MODE=auto)"})
}
