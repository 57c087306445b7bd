package tests

// Helpers of the run tests (tests/run_*_test.go), end-to-end tests of
// running a packed file on the real kernel, as root. Most use one shared
// packed file whose target is testdata/run/tool.c (a subcommand for each
// behaviour checked). The helpers pack a workdir into a runnable file, build
// the C targets, run a packed file, and count what a run could leave behind.

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/parkerpack/parker/image"
	"github.com/parkerpack/parker/image/trailer"
)

// runPack packs workdir (target relative to it) into out with the parker
// CLI. PARKER_TEST_HANDPACK=1 builds the same file by hand instead
// (parker's own executable, a mksquashfs image padded to image.PadSize, the
// trailer, laid out by assemblePacked): it isolates the runtime from the
// writer when one of them is under suspicion.
func runPack(t testing.TB, workdir, target, out string) string {
	t.Helper()
	if os.Getenv("PARKER_TEST_HANDPACK") == "1" {
		return handPack(t, workdir, target, out)
	}
	return pack(t, workdir, target, "-q", "-o", out)
}

// cliCanPack reports whether the packed files come from the CLI (and so
// can be compared with `parker inspect`).
func cliCanPack(t testing.TB) bool { return os.Getenv("PARKER_TEST_HANDPACK") != "1" }

func handPack(t testing.TB, workdir, target, out string) string {
	t.Helper()
	needTool(t, "mksquashfs")
	stub, err := os.ReadFile(buildParker(t))
	if err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(tempDir(t, "img"), "payload.sqsh")
	args := []string{workdir, img, "-noappend", "-quiet", "-no-progress", "-comp", "zstd", "-all-root"}
	if rel, err := filepath.Rel(workdir, out); err == nil && !strings.HasPrefix(rel, "..") {
		args = append(args, "-e", rel)
	}
	run(t, "mksquashfs", args...)
	payload, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(img)
	if pad := len(payload) % image.PadSize; pad != 0 {
		payload = append(payload, make([]byte, image.PadSize-pad)...)
	}
	assemblePacked(t, out, stub, payload, trailer.Trailer{Target: target, Compression: image.Zstd,
		Level: 15, BlockSize: image.DefaultBlockSize, CreatedBy: "tests (mksquashfs)"})
	return out
}

// gccBuild compiles tests/testdata/run/SRC into dst, with gcc's flags
// (-static for a chroot without a C library).
func gccBuild(t testing.TB, src, dst string, flags ...string) {
	t.Helper()
	needTool(t, "gcc")
	// Flags after the source: libraries (-lsqlite3) must come after what needs them.
	run(t, "gcc", append([]string{"-O2", "-o", dst, filepath.Join("testdata", "run", src)}, flags...)...)
}

var (
	toolOnce sync.Once
	toolFile string
)

// toolPacked returns a packed file (in a directory of its own) whose target
// is testdata/run/tool.c, built once and shared by the tests.
func toolPacked(t testing.TB) string {
	t.Helper()
	toolOnce.Do(func() {
		wd := tempDir(t, "toolwd")
		gccBuild(t, "tool.c", filepath.Join(wd, "tool"))
		os.WriteFile(filepath.Join(wd, "data.txt"), []byte("packed data\n"), 0o644)
		os.Mkdir(filepath.Join(wd, "sub"), 0o755)
		toolFile = runPack(t, wd, "tool", filepath.Join(tempDir(t, "toolout"), "toold"))
	})
	if toolFile == "" {
		t.Fatal("packing the tool target failed in an earlier test")
	}
	return toolFile
}

// packScript packs a workdir holding one shell script (and files) into a
// directory of its own and returns the packed file.
func packScript(t *testing.T, name, script string, files map[string]string) string {
	t.Helper()
	wd := tempDir(t, name+"-wd")
	if err := os.WriteFile(filepath.Join(wd, name), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	for p, c := range files {
		os.MkdirAll(filepath.Dir(filepath.Join(wd, p)), 0o755)
		os.WriteFile(filepath.Join(wd, p), []byte(c), 0o644)
	}
	return runPack(t, wd, name, filepath.Join(tempDir(t, name+"-out"), name+"d"))
}

// runRes is the outcome of running a packed file.
type runRes struct {
	Stdout, Stderr string
	Code           int            // exit status, or -1 when Signal is set
	Signal         syscall.Signal // the signal that killed it, or 0
}

// runOpt adjusts a command before it runs.
type runOpt func(*exec.Cmd)

func inDir(d string) runOpt { return func(c *exec.Cmd) { c.Dir = d } }
func withEnv(kv ...string) runOpt {
	return func(c *exec.Cmd) { c.Env = append(os.Environ(), kv...) }
}
func withStdin(r io.Reader) runOpt { return func(c *exec.Cmd) { c.Stdin = r } }

// runFile runs file with args and returns how it ended. It fails the test
// only when the file cannot be started at all.
func runFile(t testing.TB, file string, args []string, opts ...runOpt) runRes {
	t.Helper()
	c := exec.Command(file, args...)
	var so, se bytes.Buffer
	c.Stdout, c.Stderr = &so, &se
	for _, o := range opts {
		o(c)
	}
	err := c.Run()
	r := runRes{Stdout: so.String(), Stderr: se.String()}
	fillStatus(t, &r, c, err)
	return r
}

func fillStatus(t testing.TB, r *runRes, c *exec.Cmd, err error) {
	t.Helper()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("run %s: %v", c.Path, err)
	}
	ws := c.ProcessState.Sys().(syscall.WaitStatus)
	r.Code = ws.ExitStatus()
	if ws.Signaled() {
		r.Signal = ws.Signal()
	}
}

// startTool starts the packed tool with args, waits for its "ready" line and
// returns the command and the rest of its stdout.
func startTool(t *testing.T, f string, args ...string) (*exec.Cmd, *bufio.Reader) {
	t.Helper()
	c := exec.Command(f, args...)
	out, err := c.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	c.Stderr = os.Stderr
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	// However the test ends, the target does not outlive it (a failed
	// test would otherwise leave it holding whatever it inherited).
	t.Cleanup(func() {
		c.Process.Kill()
		c.Wait()
	})
	br := bufio.NewReader(out)
	if line, err := br.ReadString('\n'); line != "ready\n" {
		c.Process.Kill()
		c.Wait()
		t.Fatalf("target did not start: %q %v", line, err)
	}
	return c, br
}

// childPids lists pid's children. Every thread's list counts: the Go
// stub may fork its target from any of its threads, and
// /proc/PID/task/PID/children names only the main thread's.
func childPids(pid int) []int {
	var kids []int
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	for _, f := range tasks {
		b, _ := os.ReadFile(f)
		for _, p := range strings.Fields(string(b)) {
			if n, err := strconv.Atoi(p); err == nil {
				kids = append(kids, n)
			}
		}
	}
	return kids
}

// hexArgs is what `tool args` prints for args.
func hexArgs(args []string) string {
	var b strings.Builder
	for _, a := range args {
		fmt.Fprintf(&b, "arg=%x\n", a)
	}
	return b.String()
}

// freePort asks the kernel for a free TCP port on 127.0.0.1.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// dialRetry connects to 127.0.0.1:port, retrying while the server starts.
func dialRetry(t testing.TB, port int, within time.Duration) net.Conn {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err == nil {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("connect to 127.0.0.1:%d: %v", port, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// privateTmp points TMPDIR at a fresh directory for the rest of the test
// and returns a check that fails the test unless it is still empty. (The
// runtime creates no temp files at all; this catches any that appear.)
func privateTmp(t *testing.T) func() {
	t.Helper()
	d := tempDir(t, "tmpdir")
	t.Setenv("TMPDIR", d)
	return func() {
		t.Helper()
		if ents, _ := os.ReadDir(d); len(ents) != 0 {
			t.Errorf("runs left %d entries in TMPDIR", len(ents))
		}
	}
}

// traces is what a run could leave behind on the host, counted.
type traces struct {
	Mounts    int      // lines in this process's mount table (informational)
	Mountinfo string   // its lines that name a watched path or a run's layers
	Loops     []string // loop devices backed by one of the watched files
	Cgroups   int      // directories in every cgroup hierarchy
	TmpNew    []string // suspicious entries in /tmp, /dev/shm, /run, /var/tmp
	Procs     []string // live processes running one of the watched files
}

// hostCgroups are subtrees that belong to the machine running the tests,
// not to any run: their cgroups come and go with the host's own work.
var hostCgroups = map[string]bool{"/sys/fs/cgroup/memory/process_api": true}

var suspicious = regexp.MustCompile(`(?i)parker|mount|squash|overlay|ovl`)

// snapshot counts the traces of runs of the watched packed files.
func snapshot(t testing.TB, watched ...string) traces {
	t.Helper()
	var tr traces
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(mi), "\n") {
		if l == "" {
			continue
		}
		tr.Mounts++
		if strings.Contains(l, "/proc/self/fd/") || containsAny(l, watched) {
			tr.Mountinfo += l + "\n"
		}
	}
	isWatched := func(p string) bool {
		for _, w := range watched {
			if strings.HasPrefix(p, w) {
				return true
			}
		}
		return false
	}
	files, _ := filepath.Glob("/sys/block/loop*/loop/backing_file")
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err == nil && isWatched(strings.TrimSpace(string(b))) {
			tr.Loops = append(tr.Loops, strings.Split(f, "/")[3]+"="+strings.TrimSpace(string(b)))
		}
	}
	filepath.WalkDir("/sys/fs/cgroup", func(p string, d os.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		if hostCgroups[p] {
			// The host's own machinery makes and removes cgroups here
			// while it runs commands; they are not ours to count.
			return filepath.SkipDir
		}
		// The parker directory that holds the run cgroups of a
		// cgroup stays once made (package cgroup); the runs' own count.
		if d.Name() != "parker" {
			tr.Cgroups++
		}
		return nil
	})
	for _, d := range []string{os.TempDir(), "/dev/shm", "/run", "/var/tmp"} {
		ents, _ := os.ReadDir(d)
		for _, e := range ents {
			p := filepath.Join(d, e.Name())
			if suspicious.MatchString(e.Name()) && !strings.HasPrefix(tmpRoot, p) {
				tr.TmpNew = append(tr.TmpNew, p)
			}
		}
	}
	sort.Strings(tr.TmpNew)
	procs, _ := filepath.Glob("/proc/[0-9]*/exe")
	for _, p := range procs {
		if l, err := os.Readlink(p); err == nil && isWatched(l) {
			tr.Procs = append(tr.Procs, p+" -> "+l)
		}
	}
	return tr
}

func containsAny(s string, subs []string) bool {
	for _, w := range subs {
		if strings.Contains(s, w) {
			return true
		}
	}
	return false
}

// sameTraces fails the test unless after shows nothing more than before.
// What the last run left (processes, its cgroup, the namespace and loop
// device they hold) goes when its sidecar has cleaned up, just after the
// target ended, so it polls briefly.
func sameTraces(t testing.TB, before traces, watched ...string) traces {
	t.Helper()
	var after traces
	// The sidecar cleans up once the target has ended, within 1 s; more
	// here only for a machine under load.
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		after = snapshot(t, watched...)
		// Fewer than before is no leak: an earlier run's cleanup may have
		// been under way when before was taken.
		if len(after.Loops) <= len(before.Loops) && len(after.Procs) <= len(before.Procs) &&
			after.Cgroups <= before.Cgroups && after.Mountinfo == before.Mountinfo || time.Now().After(deadline) {
			break
		}
	}
	if after.Mountinfo != before.Mountinfo {
		t.Errorf("host mount table changed:\nbefore:\n%s\nafter:\n%s", before.Mountinfo, after.Mountinfo)
	}
	if after.Mounts != before.Mounts {
		t.Logf("note: host mount count %d -> %d (other tests may be mounting; none names our files)", before.Mounts, after.Mounts)
	}
	if len(after.Loops) > len(before.Loops) {
		t.Errorf("loop devices: %d before, %d after: %v", len(before.Loops), len(after.Loops), after.Loops)
	}
	if after.Cgroups > before.Cgroups {
		t.Errorf("cgroups: %d before, %d after", before.Cgroups, after.Cgroups)
	}
	if strings.Join(after.TmpNew, " ") != strings.Join(before.TmpNew, " ") {
		// Other test suites share these directories; the hard check is
		// privateTmp's.
		t.Logf("note: temp entries: before %v, after %v", before.TmpNew, after.TmpNew)
	}
	if len(after.Procs) > len(before.Procs) {
		t.Errorf("processes: %d before, %d after: %v", len(before.Procs), len(after.Procs), after.Procs)
	}
	return after
}
