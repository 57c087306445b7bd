package tests

// The target runs in place: it is the process the caller started (same
// pid, so $!, pidfiles, kill and job control act on it), every signal goes
// straight to it, its wait status is the caller's, and a cleanup sidecar
// beside it, not its parent nor its child, kills what it leaves (by its
// cgroup, or by its mount namespace where no cgroup can be made) unless
// --parker-keep-children. Where it applies, each test runs the unpacked
// target directly in the same way as the oracle.
//
// Waits poll with deadlines: no fixed sleeps. Deadlines on what must be
// prompt (cleanup after the target ended: 1 s) are the promise under
// test; those on what only has to happen (a line of output) are generous.

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"io/fs"
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

	"github.com/parkerpack/parker/cgroup"
	"github.com/parkerpack/parker/supervisor"
)

// lineWait bounds a wait for output that only has to come, not come fast.
const lineWait = 10 * time.Second

// cleanupWait is how soon after the target ended the run must be gone.
const cleanupWait = time.Second

var (
	directOnce sync.Once
	directFile string
)

// directTool returns testdata/run/tool.c built on its own, unpacked: the
// oracle the packed runs are compared with.
func directTool(t *testing.T) string {
	t.Helper()
	directOnce.Do(func() {
		f := filepath.Join(tempDir(t, "direct"), "tool")
		gccBuild(t, "tool.c", f)
		directFile = f
	})
	if directFile == "" {
		t.Fatal("building the direct tool failed in an earlier test")
	}
	return directFile
}

// lineFeed delivers a reader's lines as they come, without their newline;
// it is closed at the end of the input.
type lineFeed chan string

func feed(r io.Reader) lineFeed {
	ch := make(lineFeed, 256)
	go func() {
		defer close(ch)
		br := bufio.NewReader(r)
		for {
			l, err := br.ReadString('\n')
			if l != "" {
				ch <- strings.TrimSuffix(l, "\n")
			}
			if err != nil {
				return
			}
		}
	}()
	return ch
}

// next returns the next line; ok is false at the end of the input or when
// none came within d.
func (f lineFeed) next(d time.Duration) (line string, ok bool) {
	select {
	case l, ok := <-f:
		return l, ok
	case <-time.After(d):
		return "", false
	}
}

// proc is a started command with a pipe to write to (its stdin, or its
// descriptor 3), its stdout read line by line, and its stderr in a file: a
// pipe would stay open as long as a sidecar holds it.
type proc struct {
	c     *exec.Cmd
	in    *os.File
	lines lineFeed
	errf  string
}

// launch starts c. With onFD3 the pipe is c's descriptor 3 and its stdin
// is /dev/null (for a shell that starts a background job). However the
// test ends, c does not outlive it.
func launch(t *testing.T, c *exec.Cmd, onFD3 bool) *proc {
	t.Helper()
	inR, inW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &proc{c: c, in: inW, errf: filepath.Join(tempDir(t, "stderr"), "stderr")}
	errF, err := os.Create(p.errf)
	if err != nil {
		t.Fatal(err)
	}
	if onFD3 {
		c.ExtraFiles = []*os.File{inR}
	} else {
		c.Stdin = inR
	}
	c.Stdout, c.Stderr = outW, errF
	err = c.Start()
	inR.Close()
	outW.Close()
	errF.Close()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		inW.Close()
		if c.ProcessState == nil {
			c.Process.Kill()
			c.Wait()
		}
	})
	p.lines = feed(outR)
	return p
}

func (p *proc) stderr() string {
	b, _ := os.ReadFile(p.errf)
	return string(b)
}

// expect reads lines until it has one starting with each prefix (in any
// order) and returns what follows each prefix. Any other line fails the
// test.
func (p *proc) expect(t *testing.T, prefixes ...string) map[string]string {
	t.Helper()
	got := map[string]string{}
	for len(got) < len(prefixes) {
		l, ok := p.lines.next(lineWait)
		if !ok {
			t.Fatalf("%s: output ended or stalled with %v still to come (got %q); stderr %q",
				p.c.Args, prefixes, got, p.stderr())
		}
		matched := false
		for _, pre := range prefixes {
			if _, seen := got[pre]; !seen && strings.HasPrefix(l, pre) {
				got[pre], matched = strings.TrimPrefix(l, pre), true
				break
			}
		}
		if !matched {
			t.Fatalf("%s: unexpected line %q (waiting for %v)", p.c.Args, l, prefixes)
		}
	}
	return got
}

// wait waits for the command and returns its wait status.
func (p *proc) wait(t *testing.T) syscall.WaitStatus {
	t.Helper()
	p.in.Close()
	p.c.Wait()
	return p.c.ProcessState.Sys().(syscall.WaitStatus)
}

// within polls cond until it holds or d has passed, and reports whether it
// holds.
func within(d time.Duration, cond func() bool) bool {
	for end := time.Now().Add(d); ; time.Sleep(2 * time.Millisecond) {
		if cond() {
			return true
		}
		if time.Now().After(end) {
			return false
		}
	}
}

// procStat returns a process's state, parent, process group and session
// (/proc/PID/stat); ok is false when it is gone.
func procStat(pid int) (state byte, ppid, pgrp, sid int, ok bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, 0, 0, false
	}
	s := string(b)
	// The name (field 2) may hold spaces and parentheses.
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 4 {
		return 0, 0, 0, 0, false
	}
	ppid, _ = strconv.Atoi(f[1])
	pgrp, _ = strconv.Atoi(f[2])
	sid, _ = strconv.Atoi(f[3])
	return f[0][0], ppid, pgrp, sid, true
}

func state(pid int) byte { s, _, _, _, _ := procStat(pid); return s }

// allPids lists the processes in /proc.
func allPids() []int {
	ents, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range ents {
		if pid, err := strconv.Atoi(e.Name()); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

// mountNS returns the mount namespace pid is in ("" when it is gone).
func mountNS(pid int) string {
	ns, _ := os.Readlink("/proc/" + strconv.Itoa(pid) + "/ns/mnt")
	return ns
}

// nsProcs lists the live processes in mount namespace ns: the run's,
// wherever they strayed.
func nsProcs(ns string) []int {
	var in []int
	for _, pid := range allPids() {
		if mountNS(pid) == ns && alive(pid) {
			in = append(in, pid)
		}
	}
	return in
}

// runCgroups lists the run cgroups on the host (PARENT/parker/run-*), in
// every hierarchy but the host's own subtrees.
func runCgroups() []string {
	var dirs []string
	filepath.WalkDir("/sys/fs/cgroup", func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		if hostCgroups[p] {
			return filepath.SkipDir
		}
		if strings.HasPrefix(d.Name(), "run-") && filepath.Base(filepath.Dir(p)) == "parker" {
			dirs = append(dirs, p)
			return filepath.SkipDir
		}
		return nil
	})
	sort.Strings(dirs)
	return dirs
}

// settle waits briefly until every run cgroup on the host holds a process:
// one that holds none is being removed by the sidecar of a run that just
// ended, and would count in a snapshot of the state before the next run.
func settle() {
	within(2*time.Second, func() bool {
		for _, d := range runCgroups() {
			if b, err := os.ReadFile(filepath.Join(d, "cgroup.procs")); err == nil && len(b) == 0 {
				return false
			}
		}
		return true
	})
}

// adoptWait bounds how long the sidecar takes to move a run into its
// cgroup once the target runs: the kernel's first move after an idle moment
// waits for an RCU grace period (tens of ms; more under load).
const adoptWait = 3 * time.Second

// runCgroupsOfSoon is runCgroupsOf once the sidecar has moved pid into its
// run cgroup, or after adoptWait, as ok says.
func runCgroupsOfSoon(pid int, ok func([]string) bool) []string {
	var cgs []string
	within(adoptWait, func() bool { cgs = runCgroupsOf(pid); return ok(cgs) })
	return cgs
}

func nonEmpty(cgs []string) bool { return len(cgs) > 0 }

// runCgroupsOf returns the directories of the run cgroup pid is in, in
// every hierarchy.
func runCgroupsOf(pid int) []string {
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cgroup")
	var dirs []string
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.SplitN(l, ":", 3)
		if len(f) != 3 || !strings.Contains(f[2], "/parker/run-") {
			continue
		}
		for _, d := range runCgroups() {
			if strings.HasSuffix(d, f[2]) && !contains(dirs, d) {
				dirs = append(dirs, d)
			}
		}
	}
	return dirs
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// anyExists returns the first of paths that exists, or "".
func anyExists(paths []string) string {
	for _, p := range paths {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

// findSidecar returns the process, other than us, that holds a pidfd of
// target: its cleanup sidecar; 0 when there is none.
func findSidecar(target int) int {
	want := fmt.Sprintf("\nPid:\t%d\n", target)
	for _, pid := range allPids() {
		if pid == os.Getpid() { // os/exec holds a pidfd of what it starts
			continue
		}
		fds, _ := filepath.Glob(fmt.Sprintf("/proc/%d/fd/*", pid))
		for _, fd := range fds {
			if l, _ := os.Readlink(fd); l != "anon_inode:[pidfd]" {
				continue
			}
			info, _ := os.ReadFile(strings.Replace(fd, "/fd/", "/fdinfo/", 1))
			if strings.Contains(string(info), want) {
				return pid
			}
		}
	}
	return 0
}

// TestRunInplacePid: the pid the caller gets is the target's: `$!` of a
// shell and exec.Cmd's Process.Pid name the target's own executable in the
// view (what it reads from /proc/self/exe), a pidfile it writes holds that
// pid, and SIGSTOP and SIGCONT sent to it stop and resume the target.
func TestRunInplacePid(t *testing.T) {
	needRoot(t, "running a packed file")
	f := toolPacked(t)
	inView := filepath.Join(filepath.Dir(f), "tool")
	for _, run := range []struct{ name, file, exe string }{
		{"direct", directTool(t), directTool(t)},
		{"packed", f, inView},
	} {
		t.Run(run.name, func(t *testing.T) {
			pidfile := filepath.Join(tempDir(t, "pidfile"), "pid")
			p := launch(t, exec.Command("sh", "-c", `"$0" self "$1" & echo "pid=$!"; wait`, run.file, pidfile), false)
			got := p.expect(t, "pid=", "exe=", "ready")
			pid, _ := strconv.Atoi(got["pid="])
			t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) })
			exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
			if exe != got["exe="] || exe != run.exe {
				t.Errorf("/proc/$!/exe is %q; the target sees itself as %q; want %q", exe, got["exe="], run.exe)
			}
			if b, err := os.ReadFile(pidfile); strings.TrimSpace(string(b)) != strconv.Itoa(pid) {
				t.Errorf("the target's pidfile holds %q (%v), $! is %d", b, err, pid)
			}
			syscall.Kill(pid, syscall.SIGSTOP)
			if !within(lineWait, func() bool { return state(pid) == 'T' }) {
				t.Errorf("kill -STOP $!: state %c, want T (stopped)", state(pid))
			}
			syscall.Kill(pid, syscall.SIGCONT)
			if !within(lineWait, func() bool { s := state(pid); return s != 'T' && s != 0 }) {
				t.Errorf("kill -CONT $!: state %c, want it running again", state(pid))
			}
			syscall.Kill(pid, syscall.SIGTERM)
			if ws := p.wait(t); ws.ExitStatus() != 0 {
				t.Errorf("sh: %v; stderr %q", ws, p.stderr())
			}
		})
	}
	// Started by a Go program: Process.Pid is the target.
	pidfile := filepath.Join(tempDir(t, "pidfile"), "pid")
	p := launch(t, exec.Command(f, "self", pidfile), false)
	got := p.expect(t, "exe=", "ready")
	if exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", p.c.Process.Pid)); exe != inView || got["exe="] != inView {
		t.Errorf("exec.Cmd: /proc/PID/exe is %q, the target sees %q; want %q", exe, got["exe="], inView)
	}
	p.c.Process.Signal(syscall.SIGTERM)
	if ws := p.wait(t); ws.Signal() != syscall.SIGTERM {
		t.Errorf("exec.Cmd: %v after SIGTERM", ws)
	}
}

// signalMatrix starts c (the tool's handlers command, possibly through a
// shell that prints the pid as pid=N), sends it every signal it handles,
// one at a time, and returns the transcript: what it handles, each signal
// as it reported it, and its final counts.
func signalMatrix(t *testing.T, c *exec.Cmd, viaShell bool) []string {
	t.Helper()
	p := launch(t, c, viaShell)
	prefixes := []string{"handled", "ready"}
	if viaShell {
		prefixes = append(prefixes, "pid=")
	}
	got := p.expect(t, prefixes...)
	pid := c.Process.Pid
	if viaShell {
		pid, _ = strconv.Atoi(got["pid="])
	}
	log := []string{"handled" + got["handled"]}
	for _, s := range strings.Fields(got["handled"]) {
		n, _ := strconv.Atoi(s)
		if err := syscall.Kill(pid, syscall.Signal(n)); err != nil {
			t.Fatalf("kill -%d %d: %v", n, pid, err)
		}
		l, ok := p.lines.next(lineWait)
		if !ok {
			t.Errorf("signal %d sent to %d never reached the target's handler; stderr %q", n, pid, p.stderr())
			return log
		}
		log = append(log, l)
		if l != "sig "+s {
			t.Errorf("signal %d sent: the target reported %q", n, l)
		}
	}
	// The end of the input ends the tool, which then says how many of
	// each arrived: a late duplicate shows there.
	p.in.Close()
	for l, ok := p.lines.next(lineWait); ok; l, ok = p.lines.next(lineWait) {
		log = append(log, l)
	}
	if ws := p.wait(t); ws.ExitStatus() != 0 {
		t.Errorf("%v; stderr %q", ws, p.stderr())
	}
	return log
}

// TestRunInplaceSignals: every signal a program can catch, standard and
// real-time, sent to the pid the caller got, reaches the target's handler
// exactly once, as in a direct run; also for a background job of a
// non-interactive shell, which starts it with SIGINT and SIGQUIT ignored:
// the target's own handlers get both.
func TestRunInplaceSignals(t *testing.T) {
	needRoot(t, "running a packed file")
	f := toolPacked(t)
	direct := directTool(t)
	var want []string
	counts := "counts"
	for n := 1; n <= 64; n++ {
		switch n {
		case 9, 19: // KILL, STOP
		case 32, 33: // the C library's own (its sigaction refuses them)
		default:
			want = append(want, strconv.Itoa(n))
			counts += fmt.Sprintf(" %d:1", n)
		}
	}
	for _, how := range []string{"exec", "sh background job"} {
		t.Run(how, func(t *testing.T) {
			cmd := func(file string) *exec.Cmd {
				if how == "exec" {
					return exec.Command(file, "handlers")
				}
				return exec.Command("sh", "-c", `"$0" handlers <&3 3<&- & echo "pid=$!"; wait`, file)
			}
			oracle := signalMatrix(t, cmd(direct), how != "exec")
			if oracle[0] != "handled "+strings.Join(want, " ") || oracle[len(oracle)-1] != counts {
				t.Fatalf("direct run: handled %q, ended with %q; want every signal but 9, 19, 32, 33, once each",
					oracle[0], oracle[len(oracle)-1])
			}
			got := signalMatrix(t, cmd(f), how != "exec")
			if strings.Join(got, "\n") != strings.Join(oracle, "\n") {
				t.Errorf("packed run:\n%s\ndirect run:\n%s", strings.Join(got, "\n"), strings.Join(oracle, "\n"))
			}
		})
	}
}

// sigState returns the blocked and ignored signal masks (SigBlk, SigIgn)
// of a process that printed its /proc/self/status.
func sigState(t *testing.T, status string) (blk, ign uint64) {
	t.Helper()
	var seen int
	for _, l := range strings.Split(status, "\n") {
		k, v, _ := strings.Cut(l, ":")
		n, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		switch {
		case k == "SigBlk" && err == nil:
			blk, seen = n, seen+1
		case k == "SigIgn" && err == nil:
			ign, seen = n, seen+1
		}
	}
	if seen != 2 {
		t.Fatalf("no SigBlk and SigIgn in %q", status)
	}
	return blk, ign
}

// TestRunInplaceSignalState: the target starts with the signal mask and
// the ignored signals of its caller, as a direct run does: a background job
// of a non-interactive shell (SIGINT, SIGQUIT ignored), and a caller that
// blocks SIGUSR1, SIGTERM and 40 and ignores SIGQUIT, SIGPIPE and 41. The Go
// code (the Go stub, and the helper the C stub hands flags to) keeps only
// SIGHUP and SIGINT ignored, as README says under Limits; the mask has no
// such exception (but the Go runtime unblocks SIGTERM and the other
// signals it must see, and the target inherits that: this fails there).
func TestRunInplaceSignalState(t *testing.T) {
	needRoot(t, "running a packed file")
	f := toolPacked(t)
	direct := directTool(t)
	const hupInt = 1<<(1-1) | 1<<(2-1)
	wrappers := []struct {
		name string
		argv []string
	}{
		{"sh background job", []string{"sh", "-c", `"$@" & wait`, "sh"}},
		{"blocked and ignored", []string{direct, "sigexec", "10,15,40", "3,13,41"}},
	}
	for _, w := range wrappers {
		t.Run(w.name, func(t *testing.T) {
			status := func(target ...string) (uint64, uint64) {
				argv := append(append(append([]string(nil), w.argv...), target...), "read", "/proc/self/status")
				r := runFile(t, argv[0], argv[1:])
				if r.Code != 0 {
					t.Fatalf("%v: exit %d, stderr %q", argv, r.Code, r.Stderr)
				}
				return sigState(t, r.Stdout)
			}
			blk, ign := status(direct)
			for _, run := range []struct {
				name   string
				argv   []string
				goCode bool
			}{
				{"packed", []string{f}, goStubRun()},
				// The C stub hands the helper the caller's signal state.
				{"packed, through the helper", []string{f, "--parker-keep-children"}, goStubRun()},
			} {
				b, i := status(run.argv...)
				switch {
				case !run.goCode && b != blk:
					t.Errorf("%s: blocked signals %016x, direct run %016x", run.name, b, blk)
				case b != blk:
					t.Logf("note: %s: blocked signals %016x, direct run %016x (a documented limit of the Go stub)", run.name, b, blk)
				}
				switch {
				case !run.goCode && i != ign:
					t.Errorf("%s: ignored signals %016x, direct run %016x", run.name, i, ign)
				case run.goCode && i&hupInt != ign&hupInt:
					t.Errorf("%s: ignored signals %016x, direct run %016x (SIGHUP and SIGINT differ)", run.name, i, ign)
				case i != ign:
					t.Logf("note: %s: ignored signals %016x, direct run %016x (a documented limit of the Go code)", run.name, i, ign)
				}
			}
		})
	}
}

// TestRunInplaceExit: the caller sees the wait status of a direct run:
// each exit code 0 to 255, death by ten signals, and the core-dump bit of
// a target that dumps core.
func TestRunInplaceExit(t *testing.T) {
	needRoot(t, "running a packed file")
	f := toolPacked(t)
	direct := directTool(t)
	// In a directory of their own: where a core dump goes.
	cwd := tempDir(t, "cwd")

	codes := func(file string) string {
		out, err := exec.Command("sh", "-c",
			`i=0; while [ $i -le 255 ]; do "$0" exit $i; echo $?; i=$((i+1)); done`, file).Output()
		if err != nil {
			t.Fatalf("exit codes of %s: %v", file, err)
		}
		return string(out)
	}
	var want strings.Builder
	for i := 0; i <= 255; i++ {
		fmt.Fprintln(&want, i)
	}
	start := time.Now()
	if d := codes(direct); d != want.String() {
		t.Fatalf("direct run: exit codes %q", d)
	}
	if p := codes(f); p != want.String() {
		t.Errorf("packed run: exit codes 0..255 came out as %q", p)
	}
	t.Logf("256 exit codes, direct and packed, in %v", time.Since(start).Round(time.Millisecond))

	// The status the caller's wait reports, in full, under a core size
	// limit set by the shell that then execs the run.
	status := func(file, limit string, sig int) syscall.WaitStatus {
		c := exec.Command("sh", "-c", `ulimit -c "$1" && exec "$0" raise "$2"`, file, limit, strconv.Itoa(sig))
		c.Dir = cwd
		var se bytes.Buffer
		c.Stderr = &se
		c.Run()
		ws := c.ProcessState.Sys().(syscall.WaitStatus)
		if se.Len() > 0 {
			t.Logf("%s raise %d: stderr %q", file, sig, se.String())
		}
		return ws
	}
	for _, sig := range []int{1, 2, 3, 6, 9, 10, 11, 13, 15, 40} {
		d, p := status(direct, "0", sig), status(f, "0", sig)
		if !d.Signaled() || int(d.Signal()) != sig {
			t.Errorf("direct run, raise %d: %v", sig, d)
		}
		if p != d {
			t.Errorf("raise %d: the caller saw status %#x (%v), a direct run %#x (%v)", sig, uint32(p), p, uint32(d), d)
		}
	}

	pattern, _ := os.ReadFile("/proc/sys/kernel/core_pattern")
	t.Logf("core_pattern %q", strings.TrimSpace(string(pattern)))
	defer func() {
		cores, _ := filepath.Glob(filepath.Join(cwd, "core*"))
		for _, c := range cores {
			os.Remove(c)
		}
	}()
	for _, sig := range []int{6, 11} {
		d := status(direct, "unlimited", sig)
		if !d.CoreDump() {
			t.Fatalf("a direct run that raised %d with ulimit -c unlimited left status %v, without a core dump: "+
				"this machine does not dump core (core_pattern %q; see core(5)), so the packed run cannot be checked",
				sig, d, strings.TrimSpace(string(pattern)))
		}
		if p := status(f, "unlimited", sig); p != d {
			t.Errorf("raise %d with ulimit -c unlimited: the caller saw %v (core dumped: %v), a direct run %v (core dumped: %v)",
				sig, p, p.CoreDump(), d, d.CoreDump())
		}
	}
}

// roundOf reads the daemon's output file: its round and what it read.
func roundOf(path string) (int, string) {
	b, _ := os.ReadFile(path)
	first, rest, _ := strings.Cut(string(b), "\n")
	n, _ := strconv.Atoi(first)
	return n, rest
}

// TestRunInplaceDaemon: a daemon the target started (double fork, a
// session of its own) ends within 1 s of the target; with
// --parker-keep-children it runs on, still reading the packed files
// through the view, the caller's pipes reach their end when the target
// ends, as for a direct run; and the run's cgroup goes when the daemon
// does.
func TestRunInplaceDaemon(t *testing.T) {
	needRoot(t, "running a packed file")
	f := toolPacked(t)
	dir := filepath.Dir(f)
	data := filepath.Join(dir, "data.txt") // only in the view
	const packed = "packed data\n"
	// daemon starts it, waits until it has read the view and returns its
	// pid and output file.
	daemon := func(t *testing.T, args ...string) (*proc, int, string) {
		out := filepath.Join(tempDir(t, "daemon"), "out")
		p := launch(t, exec.Command(f, append(args, "daemon", data, out)...), false)
		d, _ := strconv.Atoi(p.expect(t, "daemon=")["daemon="])
		t.Cleanup(func() { syscall.Kill(d, syscall.SIGKILL) })
		if !within(lineWait, func() bool { _, s := roundOf(out); return s == packed }) {
			n, s := roundOf(out)
			t.Fatalf("the daemon, round %d, read %q from the view; want %q", n, s, packed)
		}
		return p, d, out
	}

	t.Run("killed", func(t *testing.T) {
		p, d, _ := daemon(t)
		cgs := runCgroupsOf(d)
		if ws := p.wait(t); ws.ExitStatus() != 0 {
			t.Fatalf("target: %v, stderr %q", ws, p.stderr())
		}
		ended := time.Now()
		if !within(cleanupWait, func() bool { return !alive(d) && anyExists(cgs) == "" }) {
			t.Errorf("%v after the target ended: the daemon %d alive %v, its cgroup %q left", cleanupWait, d, alive(d), anyExists(cgs))
		}
		t.Logf("daemon and cgroup %v gone %v after the target", cgs, time.Since(ended).Round(time.Millisecond))
	})

	t.Run("keep", func(t *testing.T) {
		settle()
		before := snapshot(t, dir)
		p, d, out := daemon(t, "--parker-keep-children")
		cgs := runCgroupsOfSoon(d, nonEmpty)
		if len(cgs) == 0 {
			b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", d))
			t.Errorf("the daemon is in no run cgroup: %q", b)
		}
		if ws := p.wait(t); ws.ExitStatus() != 0 {
			t.Fatalf("target: %v, stderr %q", ws, p.stderr())
		}
		n0, _ := roundOf(out)
		if !within(lineWait, func() bool { n, s := roundOf(out); return n >= n0+3 && s == packed }) {
			n, s := roundOf(out)
			t.Errorf("after the target ended the daemon (alive: %v) is at round %d (was %d), read %q; want it reading %q on",
				alive(d), n, n0, s, packed)
		}
		syscall.Kill(d, syscall.SIGKILL)
		killed := time.Now()
		if !within(cleanupWait, func() bool { return !alive(d) && anyExists(cgs) == "" }) {
			t.Errorf("the run's cgroup %s is still there %v after its last process was killed", anyExists(cgs), cleanupWait)
		}
		t.Logf("cgroup %v gone %v after the daemon was killed", cgs, time.Since(killed).Round(time.Millisecond))
		sameTraces(t, before, dir)
	})

	// A daemon closes what it inherited, so a caller that reads the
	// target's output through pipes ($(...), | tee) sees them end when the
	// target ends; parker must not hold them open for it. (The Go sidecar
	// keeps the caller's stderr until the cgroup is empty: this fails.)
	t.Run("keep, the caller's pipes", func(t *testing.T) {
		for _, run := range []struct {
			name string
			argv []string
		}{
			{"direct", []string{directTool(t)}},
			{"packed", []string{f, "--parker-keep-children"}},
		} {
			out := filepath.Join(tempDir(t, "daemon"), "out")
			c := exec.Command(run.argv[0], append(run.argv[1:], "daemon", data, out)...)
			outR, outW, _ := os.Pipe()
			errR, errW, _ := os.Pipe()
			c.Stdout, c.Stderr = outW, errW
			if err := c.Start(); err != nil {
				t.Fatal(err)
			}
			outW.Close()
			errW.Close()
			lines := feed(outR)
			l, _ := lines.next(lineWait)
			d, err := strconv.Atoi(strings.TrimPrefix(l, "daemon="))
			if err != nil {
				c.Process.Kill()
				c.Wait()
				t.Fatalf("%s: first line %q", run.name, l)
			}
			errs := feed(errR)
			c.Wait()
			deadline := time.Now().Add(cleanupWait)
			var open []string
			for _, pipe := range []struct {
				name string
				ch   lineFeed
			}{{"stdout", lines}, {"stderr", errs}} {
			read:
				for {
					select {
					case l, ok := <-pipe.ch:
						if !ok {
							break read
						}
						t.Logf("%s: %s: %s", run.name, pipe.name, l)
					case <-time.After(time.Until(deadline)):
						open = append(open, pipe.name)
						break read
					}
				}
			}
			if len(open) > 0 {
				t.Errorf("%s: the caller's %v stayed open %v after the target ended, while its daemon runs",
					run.name, open, cleanupWait)
			}
			syscall.Kill(d, syscall.SIGKILL)
			within(lineWait, func() bool { return !alive(d) })
			outR.Close()
			errR.Close()
		}
	})
}

// TestRunInplaceKill9: SIGKILL of the target, or of its whole process
// group, with three children running: within 1 s nothing of the run is
// left: no process in its mount namespace or running the packed file (the
// sidecar), no loop device backed by the file, no run cgroup, and (the
// namespace gone with its last process) no mount.
func TestRunInplaceKill9(t *testing.T) {
	needRoot(t, "running a packed file")
	f := packScript(t, "kids", "#!/bin/sh\nsleep 1000 & sleep 1000 & sleep 1000 &\necho ready\nwait\n", nil)
	dir := filepath.Dir(f)
	for _, how := range []string{"pid", "process group"} {
		t.Run(how, func(t *testing.T) {
			settle()
			before := snapshot(t, dir)
			cgBefore := runCgroups()
			c := exec.Command(f)
			c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // a group without us
			p := launch(t, c, false)
			p.expect(t, "ready")
			pid := c.Process.Pid
			ns := mountNS(pid)
			if ns == mountNS(os.Getpid()) {
				t.Fatalf("the target runs in our mount namespace %s", ns)
			}
			if n := len(nsProcs(ns)); n != 4 {
				t.Errorf("%d processes in the run's namespace; want the target and its 3 children", n)
			}
			cgs := runCgroupsOfSoon(pid, nonEmpty)
			if len(cgs) == 0 {
				t.Errorf("the target is in no run cgroup %v after it started", adoptWait)
			}
			if mid := snapshot(t, dir); len(mid.Loops) != len(before.Loops)+1 {
				t.Errorf("loop devices backed by the file during the run: %v", mid.Loops)
			}
			victim := pid
			if how == "process group" {
				victim = -pid
			}
			syscall.Kill(victim, syscall.SIGKILL)
			if ws := p.wait(t); ws.Signal() != syscall.SIGKILL {
				t.Errorf("the caller saw %v", ws)
			}
			killed := time.Now()
			var left string
			if !within(cleanupWait, func() bool {
				now := snapshot(t, dir)
				procs, cg := nsProcs(ns), anyExists(cgs)
				left = fmt.Sprintf("processes in its namespace %v, running the packed file %v, loop devices %v, its cgroup %q, run cgroups %v (before %v)",
					procs, now.Procs, now.Loops, cg, runCgroups(), cgBefore)
				return len(procs) == 0 && len(now.Procs) == len(before.Procs) && len(now.Loops) == len(before.Loops) &&
					cg == "" && len(runCgroups()) <= len(cgBefore)
			}) {
				t.Errorf("%v after kill -9 of the %s: %s", cleanupWait, how, left)
			}
			t.Logf("everything gone %v after kill -9", time.Since(killed).Round(time.Millisecond))
			sameTraces(t, before, dir)
		})
	}
}

// TestRunInplaceSidecar: the sidecar is not the target's child: a wait
// for any child returns at once in a target that started none (a shell's
// `wait`, which covers only the jobs the shell started, and wait(2) in the
// tool, which covers every child: one that waited for the sidecar would
// never return, the sidecar waiting for it), and the target lists no
// child. Nor is the sidecar in the target's process group, session or
// mount namespace; it holds none of the caller's pipes, and goes when the
// target ends.
func TestRunInplaceSidecar(t *testing.T) {
	needRoot(t, "running a packed file")
	f := packScript(t, "waiter", "#!/bin/sh\nwait\necho waited\n", nil)
	if r := runFile(t, f, nil); r.Code != 0 || r.Stdout != "waited\n" {
		t.Errorf("a shell's wait: exit %d, stdout %q, stderr %q", r.Code, r.Stdout, r.Stderr)
	}

	p := launch(t, exec.Command(toolPacked(t), "waitall"), false)
	if l, ok := p.lines.next(lineWait); l != "no children (No child processes)" {
		t.Fatalf("wait(2) for any child, in a target that started none: %q (output ended: %v, after %v: a child it did not start?)",
			l, !ok, lineWait)
	}
	pid := p.c.Process.Pid
	if kids := childPids(pid); len(kids) != 0 {
		t.Errorf("the target has children %v; it started none", kids)
	}
	side := findSidecar(pid)
	if side == 0 {
		t.Fatal("no process holds a pidfd of the target: no sidecar")
	}
	_, ppid, pgrp, sid, _ := procStat(side)
	_, _, tpgrp, tsid, _ := procStat(pid)
	if ppid == pid || sid != side || pgrp == tpgrp || sid == tsid {
		t.Errorf("sidecar %d: parent %d, group %d, session %d; target %d: group %d, session %d; want a session of its own",
			side, ppid, pgrp, sid, pid, tpgrp, tsid)
	}
	if ns := mountNS(side); ns != mountNS(os.Getpid()) || ns == mountNS(pid) {
		t.Errorf("sidecar in mount namespace %s, target in %s, we in %s; want ours", ns, mountNS(pid), mountNS(os.Getpid()))
	}
	for fd := 0; fd <= 1; fd++ {
		if l, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%d", side, fd)); l != os.DevNull {
			t.Errorf("sidecar's descriptor %d is %q; want /dev/null", fd, l)
		}
	}
	if ws := p.wait(t); ws.ExitStatus() != 0 {
		t.Errorf("target: %v, stderr %q", ws, p.stderr())
	}
	if !within(cleanupWait, func() bool { return !alive(side) }) {
		t.Errorf("the sidecar %d is still there %v after the target ended", side, cleanupWait)
	}
}

// TestRunInplaceCgroup: how the run's processes are found, as
// PARKER_VERBOSE=1 says: the host's cgroup (v2 where it has one);
// PARKER_CGROUP=none: by mount namespace, which still ends a daemon within
// 1 s; PARKER_CGROUP=v1 (under PARKER_CGROUP_PARENT=/): the v1 freezer,
// which does too, and goes.
func TestRunInplaceCgroup(t *testing.T) {
	needRoot(t, "running a packed file")
	f := toolPacked(t)
	dir := filepath.Dir(f)
	l, err := cgroup.Detect(cgroup.Options{})
	if err != nil {
		t.Fatal(err)
	}
	verbose := "PARKER_VERBOSE=1"

	t.Run("auto", func(t *testing.T) {
		want := `cleanup by cgroup v2 /\S*/parker/run-[0-9a-f-]+; killed by cgroup\.kill`
		if l.V2 == nil {
			want = `cleanup by cgroup v1 freezer /\S*/parker/run-[0-9a-f-]+; killed by the v1 freezer`
		}
		r := runFile(t, f, []string{"exit", "0"}, withEnv(verbose))
		if r.Code != 0 || !regexp.MustCompile(`(?m)^parker: `+want+` +[0-9.]+ ms$`).MatchString(r.Stderr) {
			t.Errorf("exit %d, stderr %q; want a line matching %q", r.Code, r.Stderr, want)
		}
	})

	// daemon runs the tool's daemon with env, checks where the daemon is
	// while the target runs, and that it is gone within 1 s of the target.
	daemon := func(t *testing.T, wantStderr string, inCgroup func([]string) string, env ...string) {
		settle()
		before := snapshot(t, dir)
		c := exec.Command(f, "daemon", filepath.Join(dir, "data.txt"), filepath.Join(tempDir(t, "daemon"), "out"))
		c.Env = append(os.Environ(), env...)
		p := launch(t, c, false)
		d, _ := strconv.Atoi(p.expect(t, "daemon=")["daemon="])
		t.Cleanup(func() { syscall.Kill(d, syscall.SIGKILL) })
		cgs := runCgroupsOfSoon(d, func(cgs []string) bool { return inCgroup(cgs) == "" })
		if why := inCgroup(cgs); why != "" {
			b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", d))
			t.Errorf("the daemon's cgroups %v: %s (/proc/PID/cgroup: %q)", cgs, why, b)
		}
		if ws := p.wait(t); ws.ExitStatus() != 0 {
			t.Fatalf("target: %v, stderr %q", ws, p.stderr())
		}
		ended := time.Now()
		if !within(cleanupWait, func() bool { return !alive(d) && anyExists(cgs) == "" }) {
			t.Errorf("%v after the target ended: daemon alive %v, cgroup %q left", cleanupWait, alive(d), anyExists(cgs))
		}
		t.Logf("daemon and cgroup gone %v after the target", time.Since(ended).Round(time.Millisecond))
		if !strings.Contains(p.stderr(), wantStderr) {
			t.Errorf("stderr %q; want it to say %q", p.stderr(), wantStderr)
		}
		sameTraces(t, before, dir)
	}

	t.Run("none", func(t *testing.T) {
		daemon(t, "parker: cleanup by mount namespace scan (/proc/PID/ns/mnt) ", func(cgs []string) string {
			if len(cgs) > 0 {
				return "want none with " + cgroup.EnvMode + "=none"
			}
			return ""
		}, verbose, cgroup.EnvMode+"=none")
	})

	// Without PARKER_VERBOSE the C stub runs PARKER_CGROUP=none itself:
	// its sidecar kills by mount namespace, as the Go one does.
	t.Run("none, quiet", func(t *testing.T) {
		daemon(t, "", func(cgs []string) string {
			if len(cgs) > 0 {
				return "want none with " + cgroup.EnvMode + "=none"
			}
			return ""
		}, cgroup.EnvMode+"=none")
		c := exec.Command(f, "waitall")
		c.Env = append(os.Environ(), cgroup.EnvMode+"=none")
		p := launch(t, c, false)
		p.expect(t, "no children")
		env, _ := os.ReadFile(fmt.Sprintf("/proc/%d/environ", findSidecar(c.Process.Pid)))
		want := supervisor.EnvSidecar + "=c:"
		if goStubRun() {
			want = supervisor.EnvSidecar + "=watch"
		}
		if !strings.Contains("\x00"+string(env), "\x00"+want) {
			t.Errorf("the sidecar's environment %q; want %s", env, want)
		}
		if ws := p.wait(t); ws.ExitStatus() != 0 {
			t.Errorf("target: %v, stderr %q", ws, p.stderr())
		}
	})

	t.Run("v1", func(t *testing.T) {
		var freezer string
		for _, h := range l.V1 {
			if contains(h.Controllers, "freezer") {
				freezer = h.Mount
			}
		}
		if freezer == "" {
			unavailable(t, "SKIP: this host has no v1 freezer hierarchy to run in")
		}
		memParker := filepath.Join(filepath.Dir(freezer), "memory", "parker")
		_, hadMem := os.Stat(memParker)
		daemon(t, "parker: cleanup by cgroup v1 freezer "+freezer+"/parker/run-", func(cgs []string) string {
			if len(cgs) != 1 || !strings.HasPrefix(cgs[0], freezer+"/parker/run-") {
				return "want one, in " + freezer + "/parker"
			}
			return ""
		}, verbose, cgroup.EnvMode+"=v1", cgroup.EnvParent+"=/")
		if _, err := os.Stat(memParker); err == nil && hadMem != nil {
			t.Errorf("the run made %s; it needs the freezer only", memParker)
		}
	})
}
