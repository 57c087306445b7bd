package cgroup

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/parkerpack/parker/internal/testenv"
)

// Run cgroups on the real kernel, as root: on this host's hybrid layout
// (the unified v2 hierarchy to kill, v1 controllers for limits) and on
// the v1 hierarchies alone (Mode V1). Every test makes its runs under a
// parent cgroup of its own (Options.Parent), never under the caller's
// cgroup, which on the development VM is partly the host's.

// hostCgroups belongs to the host of the development VM: no test may
// write there.
const hostCgroups = "/sys/fs/cgroup/memory/process_api"

const helperEnv = "PARKER_CGROUP_TEST_HELPER"

func TestMain(m *testing.M) {
	switch os.Getenv(helperEnv) {
	case "alloc":
		allocate()
	case "create":
		createAndJoin()
	}
	os.Exit(m.Run())
}

// createAndJoin is the test binary run as another user: it makes a run
// cgroup as the environment says (EnvParent) and joins it.
func createAndJoin() {
	o, err := OptionsFromEnv(os.Getenv)
	if err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	l, err := Detect(o)
	if err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	g, err := Create(l, 0, Limits{})
	if err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	fmt.Println("created", g.Mechanism())
	if err := g.Join(0); err != nil {
		fmt.Println(err)
	}
	if err := g.Remove(); err != nil {
		fmt.Println(err)
	}
	os.Exit(0)
}

// allocate is the test binary run as a memory hog: once told to go (a
// line on stdin), it allocates 1 GiB and writes to every page of it.
func allocate() {
	bufio.NewReader(os.Stdin).ReadString('\n')
	b := make([]byte, 1<<30)
	for i := 0; i < len(b); i += 4096 {
		b[i] = 1
	}
	fmt.Println("allocated 1 GiB")
	os.Exit(0)
}

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		unavailable(t, "needs root: makes cgroups")
	}
}

// unavailable skips a test this machine cannot run, except on CI (CI set),
// which runs as root on a hybrid host with every v1 controller: there a
// skip would hide a failure, so it fails instead. (A test about a pure-v2
// or v1-only host is called with the layouts it is about, and this host's
// is hybrid: those kinds include "hybrid" wherever the test can run here.)
func unavailable(t *testing.T, format string, args ...any) { testenv.Unavailable(t, format, args...) }

// hierarchies lists the layout's hierarchies, v2 first.
func hierarchies(l Layout) []Hierarchy {
	var hs []Hierarchy
	if l.V2 != nil {
		hs = append(hs, *l.V2)
	}
	return append(hs, l.V1...)
}

func guard(t *testing.T, dir string) {
	t.Helper()
	if dir == hostCgroups || strings.HasPrefix(dir, hostCgroups+"/") || !strings.HasPrefix(dir, "/sys/fs/cgroup/") {
		t.Fatalf("refusing to use %s", dir)
	}
}

// testLayout detects the host's layout in mode, and makes a parent cgroup
// for the test's runs in each hierarchy, removed when the test ends, after
// checking that no run cgroup was left in it. kinds are the layouts the
// test is about ("hybrid", "v2", "v1"); on another, it skips.
func testLayout(t *testing.T, mode Mode, kinds ...string) Layout {
	t.Helper()
	needRoot(t)
	parent := fmt.Sprintf("/parker-test-%d-%s", os.Getpid(), strings.ReplaceAll(t.Name(), "/", "-"))
	l, err := Detect(Options{Mode: mode, Parent: parent})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(kinds, l.Kind()) {
		unavailable(t, "needs a %s cgroup layout; this host's is %s (TestDetectHere checks the detection)", strings.Join(kinds, " or "), l.Kind())
	}
	for i, h := range hierarchies(l) {
		dir := h.Dir()
		guard(t, dir)
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if runs, _ := subdirs(dir + "/parker"); len(runs) > 0 {
				t.Errorf("left behind in %s/parker: %q", dir, runs)
				removeTree(sysFS, dir, removeTimeout)
			}
			for _, d := range []string{dir + "/parker", dir} {
				if err := rmdir(d); err != nil && !errors.Is(err, os.ErrNotExist) {
					t.Error(err)
				}
			}
		})
		// In v2, the test parent passes on what its own parent gives it
		// (nothing on a hybrid host), as a caller's delegated cgroup would.
		if i == 0 && l.V2 != nil {
			avail, _ := read(dir + "/cgroup.controllers")
			for _, c := range strings.Fields(avail) {
				if slices.Contains([]string{"memory", "pids", "cpu"}, c) {
					if err := write(dir+"/cgroup.subtree_control", "+"+c); err != nil {
						t.Fatal(err)
					}
				}
			}
		}
	}
	return l
}

// newGroup creates a run cgroup, killed and removed when the test ends.
func newGroup(t *testing.T, l Layout, owner int, lim Limits) *Group {
	t.Helper()
	g, err := Create(l, owner, lim)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range g.Dirs() {
		guard(t, d)
	}
	t.Cleanup(func() {
		if err := g.Kill(); err != nil {
			t.Error(err)
		}
		if err := g.Remove(); err != nil {
			t.Error(err)
		}
		for _, d := range g.Dirs() {
			if _, err := os.Stat(d); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s still there (%v)", d, err)
			}
		}
	})
	t.Logf("%s", g.Mechanism())
	return g
}

// proc is a process started outside the group and moved into it before
// it does anything: it waits for a line on stdin, sent after Join.
type proc struct {
	cmd  *exec.Cmd
	done chan error
}

func startIn(t *testing.T, g *Group, env []string, name string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, done: make(chan error, 1)}
	go func() { p.done <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-p.done
	})
	if g != nil {
		if err := g.Join(cmd.Process.Pid); err != nil {
			t.Fatal(err)
		}
	}
	io.WriteString(in, "go\n")
	in.Close()
	return p
}

// shell starts sh running script in g, once joined.
func shell(t *testing.T, g *Group, script string) *proc {
	t.Helper()
	return startIn(t, g, nil, "sh", "-c", "read go; "+script)
}

// wait returns how the process ended, waiting at most a minute.
func (p *proc) wait(t *testing.T) *os.ProcessState {
	t.Helper()
	select {
	case <-p.done:
		p.done <- nil // for the cleanup
	case <-time.After(time.Minute):
		t.Fatalf("pid %d still running after a minute", p.cmd.Process.Pid)
	}
	return p.cmd.ProcessState
}

func killedBy(ps *os.ProcessState) syscall.Signal {
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return ws.Signal()
	}
	return 0
}

// poll waits up to 30 s for cond, failing the test if it never holds.
func poll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	if ok, _ := waitFor(30*time.Second, func() (bool, error) { return cond(), nil }); !ok {
		t.Fatalf("timed out waiting for %s", what)
	}
}

// live reports whether the process that had pid and start time start
// still runs: a zombie does not.
func live(pid int, start uint64) bool {
	if s, err := startTime(pid); err != nil || s != start {
		return false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	return f[0] != "Z" && f[0] != "X"
}

// inGroup scans /proc for live processes whose cgroup has name: that none
// is left is checked independently of the cgroup's own files.
func inGroup(name string) []int {
	var found []int
	ds, _ := filepath.Glob("/proc/[0-9]*/cgroup")
	for _, d := range ds {
		b, err := os.ReadFile(d)
		if err != nil || !strings.Contains(string(b), "/"+name) {
			continue
		}
		pid, _ := strconv.Atoi(strings.Split(d, "/")[2])
		if s, err := startTime(pid); err == nil && live(pid, s) {
			found = append(found, pid)
		}
	}
	return found
}

func TestDetectHere(t *testing.T) {
	l, err := Detect(Options{})
	if err != nil {
		t.Fatal(err)
	}
	mi, _ := os.ReadFile("/proc/self/mountinfo")
	if got, want := l.V2 != nil, strings.Contains(string(mi), " - cgroup2 "); got != want {
		t.Errorf("v2 detected %v, mounted %v", got, want)
	}
	// Every hierarchy found must hold this process where Detect says.
	me := strconv.Itoa(os.Getpid())
	for _, h := range hierarchies(l) {
		dir := h.Dir()
		if strings.HasPrefix(dir, hostCgroups) {
			continue // the host's: not even read
		}
		procs, err := read(dir + "/cgroup.procs")
		if err != nil || !slices.Contains(strings.Fields(procs), me) {
			t.Errorf("%+v: pid %s not in %s/cgroup.procs (%v)", h, me, dir, err)
		}
	}
	for _, c := range v1Used {
		if _, ok := l.v1For(c); !ok && strings.Contains(string(mi), " - cgroup cgroup ") && strings.Contains(string(mi), ","+c+"\n") {
			t.Errorf("v1 %s is mounted but not detected", c)
		}
	}
	if l.V2 != nil {
		ctl, _ := read(l.V2.Dir() + "/cgroup.subtree_control")
		t.Logf("%s layout; v2 at %s enables for its children: %q", l.Kind(), l.V2.Dir(), strings.TrimSpace(ctl))
	}
}

// The layouts tested: what the host offers (hybrid on the development VM,
// v2 on a pure v2 host), and v1 alone.
var testModes = []struct {
	name  string
	mode  Mode
	kinds []string
}{{"auto", Auto, []string{"hybrid", "v2"}}, {"v1", V1, []string{"v1"}}}

// A run's processes, a daemon that left its session among them, are all
// killed; nothing is left in the cgroup or elsewhere, and Remove leaves no
// directory.
func TestKill(t *testing.T) {
	for _, tm := range testModes {
		t.Run(tm.name, func(t *testing.T) {
			l := testLayout(t, tm.mode, tm.kinds...)
			g := newGroup(t, l, 0, Limits{})
			want := map[string]string{"auto": "cgroup v2 ", "v1": "cgroup v1 freezer "}[tm.name]
			if !strings.HasPrefix(g.Mechanism(), want) {
				t.Errorf("mechanism %q, want it to start with %q", g.Mechanism(), want)
			}
			p := shell(t, g, "sleep 100 & sleep 100 & setsid sh -c 'sleep 100 & exit 0'; trap '' TERM INT HUP; wait")
			type id struct {
				pid   int
				start uint64
			}
			var ids []id
			poll(t, "the sh and three sleeps in the cgroup", func() bool {
				ps, _ := g.Procs()
				ids = ids[:0]
				sleeps := 0
				for _, pid := range ps {
					s, err := startTime(pid)
					comm, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
					if err == nil && strings.TrimSpace(string(comm)) == "sleep" {
						sleeps++
					}
					ids = append(ids, id{pid, s})
				}
				return sleeps == 3 && len(ps) == 4
			})
			if err := g.Kill(); err != nil {
				t.Fatal(err)
			}
			if sig := killedBy(p.wait(t)); sig != syscall.SIGKILL {
				t.Errorf("sh ended by signal %v, want SIGKILL", sig)
			}
			for _, i := range ids {
				if live(i.pid, i.start) {
					t.Errorf("pid %d still running", i.pid)
				}
			}
			if full, err := g.Populated(); full || err != nil {
				t.Errorf("populated %v (%v)", full, err)
			}
			if left := inGroup(g.Name()); len(left) > 0 {
				t.Errorf("left running in the cgroup: %v", left)
			}
			// Killing an empty group is quick and harmless.
			if err := g.Kill(); err != nil {
				t.Error(err)
			}
			if err := g.Remove(); err != nil {
				t.Fatal(err)
			}
			for _, d := range g.Dirs() {
				if _, err := os.Stat(d); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("%s: %v after Remove", d, err)
				}
			}
		})
	}
}

// Join(0) moves the caller, as a stub joins its run's cgroup before it
// executes the target. The test process moves back where it was before
// the group is killed.
func TestJoinSelf(t *testing.T) {
	for _, tm := range testModes {
		t.Run(tm.name, func(t *testing.T) {
			l := testLayout(t, tm.mode, tm.kinds...)
			home, err := Detect(Options{Mode: tm.mode})
			if err != nil {
				t.Fatal(err)
			}
			g := newGroup(t, l, 0, Limits{})
			t.Cleanup(func() {
				for _, h := range hierarchies(home) {
					if d := h.Dir(); !strings.HasPrefix(d, hostCgroups) {
						if err := write(d+"/cgroup.procs", strconv.Itoa(os.Getpid())); err != nil {
							t.Fatalf("moving the test back: %v", err)
						}
					}
				}
				if ps, _ := g.Procs(); slices.Contains(ps, os.Getpid()) {
					t.Fatalf("the test process is still in %s", g.Name())
				}
			})
			if err := g.Join(0); err != nil {
				t.Fatal(err)
			}
			b, _ := os.ReadFile("/proc/self/cgroup")
			if ps, _ := g.Procs(); !slices.Contains(ps, os.Getpid()) || !strings.Contains(string(b), "/"+g.Name()) {
				t.Errorf("not joined: procs %v, /proc/self/cgroup:\n%s", ps, b)
			}
		})
	}
}

// An unprivileged user gets no cgroup where none is delegated to it, and
// where one is, it may make a run cgroup there but not move itself in
// unless it may also write the cgroup.procs of the cgroup it comes from.
func TestUnprivileged(t *testing.T) {
	l := testLayout(t, Auto, "hybrid", "v2")
	dir, err := os.MkdirTemp("", "parker-cgroup-test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	bin := filepath.Join(dir, "cgroup.test")
	b, err := os.ReadFile(os.Args[0])
	if err == nil {
		err = os.WriteFile(bin, b, 0o755)
	}
	if err != nil || os.Chmod(dir, 0o755) != nil {
		t.Fatal(err)
	}
	run := func() string {
		cmd := exec.Command(bin)
		cmd.Env = []string{helperEnv + "=create", EnvParent + "=" + l.Parent}
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		out, _ := cmd.CombinedOutput()
		t.Logf("as nobody: %s", out)
		return string(out)
	}
	// Refused in v2, and in v1 where there is v1.
	out, refusals := run(), 1
	if len(l.V1) > 0 {
		refusals++
	}
	if !strings.Contains(out, "no cgroup for the run") || strings.Count(out, "mkdir "+l.V2.Mount) != 1 || strings.Count(out, "permission denied") != refusals {
		t.Errorf("undelegated: %s", out)
	}
	// Delegated as systemd delegates a user's service: the directory and
	// the files a delegatee writes.
	v2 := l.V2.Dir()
	for _, f := range []string{"", "/cgroup.procs", "/cgroup.subtree_control", "/cgroup.threads"} {
		if err := os.Chown(v2+f, 65534, 65534); err != nil {
			t.Fatal(err)
		}
	}
	out = run()
	if !strings.Contains(out, "created cgroup v2 "+v2+"/parker/run-") || !strings.Contains(out, "join: write 0 to "+v2+"/parker/run-") ||
		!strings.Contains(out, "/cgroup.procs: permission denied") {
		t.Errorf("delegated: %s", out)
	}
}

// A process started straight into the v2 cgroup (clone3 with
// CLONE_INTO_CGROUP) is in it from its first instruction.
func TestStartIntoV2(t *testing.T) {
	l := testLayout(t, Auto, "hybrid", "v2")
	g := newGroup(t, l, 0, Limits{})
	f, err := g.OpenV2()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd := exec.Command("sleep", "100")
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(f.Fd())}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer cmd.Process.Kill()
	if ps, err := g.Procs(); err != nil || !slices.Contains(ps, cmd.Process.Pid) {
		t.Errorf("procs %v (%v), want %d", ps, err, cmd.Process.Pid)
	}
	// A group that spans v1 too has no such directory.
	if g1 := newGroup(t, l, 0, Limits{Pids: 10}); len(g1.v1) > 0 {
		if _, err := g1.OpenV2(); err == nil {
			t.Error("OpenV2 of a group with v1 hierarchies: no error")
		}
	}
}

// Allocating 1 GiB under a 100 MiB limit gets the process OOM-killed
// (SIGKILL: 137 in a shell), and the group says so.
func TestMemoryLimit(t *testing.T) {
	for _, tm := range testModes {
		t.Run(tm.name, func(t *testing.T) {
			l := testLayout(t, tm.mode, tm.kinds...)
			g := newGroup(t, l, 0, Limits{Memory: 100 << 20})
			if !strings.Contains(g.Mechanism(), " memory ") {
				t.Errorf("mechanism %q: no memory", g.Mechanism())
			}
			if oom, err := g.OOMKilled(); oom || err != nil {
				t.Fatalf("OOMKilled before: %v, %v", oom, err)
			}
			p := startIn(t, g, []string{helperEnv + "=alloc"}, os.Args[0])
			ps := p.wait(t)
			if sig := killedBy(ps); sig != syscall.SIGKILL {
				t.Errorf("the hog ended with %v, want death by SIGKILL", ps)
			}
			if oom, err := g.OOMKilled(); !oom || err != nil {
				t.Errorf("OOMKilled after: %v, %v", oom, err)
			}
		})
	}
}

// A fork bomb stays within 50 processes, and nothing of it is left after
// Kill.
func TestPidsLimit(t *testing.T) {
	for _, tm := range testModes {
		t.Run(tm.name, func(t *testing.T) {
			l := testLayout(t, tm.mode, tm.kinds...)
			g := newGroup(t, l, 0, Limits{Pids: 50})
			dir := g.ctl["pids"].dir
			// Before any bomb: the limit must be in place.
			if s, err := read(dir + "/pids.max"); err != nil || strings.TrimSpace(s) != "50" {
				t.Fatalf("pids.max %q (%v)", s, err)
			}
			p := shell(t, g, "f() { f | f & }; f")
			poll(t, "forks refused at the limit", func() bool {
				s, _ := read(dir + "/pids.events")
				n, _ := field(s, "max")
				return n > 0
			})
			if s, _ := read(dir + "/pids.current"); atoi(s) > 50 {
				t.Errorf("pids.current %s", s)
			}
			if err := g.Kill(); err != nil {
				t.Fatal(err)
			}
			p.wait(t)
			if left := inGroup(g.Name()); len(left) > 0 {
				t.Errorf("left running: %v", left)
			}
			if ps, err := g.Procs(); len(ps) > 0 || err != nil {
				t.Errorf("procs %v (%v)", ps, err)
			}
		})
	}
}

func atoi(s string) int { n, _ := strconv.Atoi(strings.TrimSpace(s)); return n }

// Two busy loops under a limit of half a CPU use about half a CPU, as the
// group's own CPU statistics count it.
func TestCPULimit(t *testing.T) {
	for _, tm := range testModes {
		t.Run(tm.name, func(t *testing.T) {
			l := testLayout(t, tm.mode, tm.kinds...)
			g := newGroup(t, l, 0, Limits{CPUs: 0.5})
			shell(t, g, "while :; do :; done & while :; do :; done")
			poll(t, "both loops", func() bool { ps, _ := g.Procs(); return len(ps) == 2 })
			u0, err := g.CPUUsage()
			if err != nil {
				t.Fatal(err)
			}
			t0 := time.Now()
			time.Sleep(2 * time.Second) // the measuring window, not a wait for a state
			u1, err := g.CPUUsage()
			if err != nil {
				t.Fatal(err)
			}
			ratio := float64(u1-u0) / float64(time.Since(t0))
			t.Logf("%.3f CPUs over %v", ratio, time.Since(t0).Round(time.Millisecond))
			// Two loops unlimited would take both cores; a loaded machine
			// may give them less than the quota, never more.
			if ratio < 0.25 || ratio > 0.7 {
				t.Errorf("used %.3f CPUs, want about 0.5", ratio)
			}
			s, _ := read(g.ctl["cpu"].dir + "/cpu.stat")
			if n, ok := field(s, "nr_throttled"); !ok || n == 0 {
				t.Errorf("never throttled: cpu.stat %q", s)
			}
		})
	}
}

// CleanStale removes the empty cgroups of owners that are gone, and no
// other.
func TestCleanStale(t *testing.T) {
	for _, tm := range testModes {
		t.Run(tm.name, func(t *testing.T) {
			l := testLayout(t, tm.mode, tm.kinds...)
			// A run whose owner died.
			owner := startIn(t, nil, nil, "sleep", "100")
			dead := newGroup(t, l, owner.cmd.Process.Pid, Limits{Pids: 100})
			owner.cmd.Process.Kill()
			owner.wait(t)
			// A run whose owner lives but has not joined yet.
			empty := newGroup(t, l, 0, Limits{})
			// A run whose owner died while a process of it lives on.
			owner2 := startIn(t, nil, nil, "sleep", "100")
			full := newGroup(t, l, owner2.cmd.Process.Pid, Limits{})
			shell(t, full, "sleep 100")
			poll(t, "the orphan in its cgroup", func() bool { ps, _ := full.Procs(); return len(ps) > 0 })
			owner2.cmd.Process.Kill()
			owner2.wait(t)
			// Names of a reused pid, of another pid namespace, and no
			// run's name at all.
			ns, _ := pidNS()
			start, _ := startTime(os.Getpid())
			reused := fmt.Sprintf("run-%d-%d-%d-00", ns, os.Getpid(), start+1)
			foreign := fmt.Sprintf("run-%d-1-1-00", ns+1)
			var want []string
			for _, h := range hierarchies(l) {
				for _, n := range []string{reused, foreign, "other"} {
					d := path.Join(h.Dir(), parentName, n)
					if err := ensureDir(sysFS, path.Dir(d)); err != nil {
						t.Fatal(err)
					}
					if err := os.Mkdir(d, 0o755); err != nil {
						t.Fatal(err)
					}
					t.Cleanup(func() { rmdir(d) })
				}
				want = append(want, path.Join(h.Dir(), parentName, reused))
			}
			want = append(want, dead.Dirs()...)
			got, err := CleanStale(l)
			if err != nil {
				t.Fatal(err)
			}
			slices.Sort(got)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("removed:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
			for _, d := range append(empty.Dirs(), full.Dirs()...) {
				if _, err := os.Stat(d); err != nil {
					t.Errorf("live or populated run's %s: %v", d, err)
				}
			}
			// Once the orphan is gone, its cgroup is stale too.
			if err := full.Kill(); err != nil {
				t.Fatal(err)
			}
			got, err = CleanStale(l)
			if slices.Sort(got); err != nil || !slices.Equal(got, sorted(full.Dirs())) {
				t.Errorf("second pass removed %q (%v), want %q", got, err, full.Dirs())
			}
		})
	}
}

func sorted(s []string) []string { s = slices.Clone(s); slices.Sort(s); return s }

// Forced to v2 on a host whose v2 hierarchy lacks the memory controller,
// a memory limit cannot be had, and the error says why.
func TestForcedV2(t *testing.T) {
	l := testLayout(t, V2, "v2")
	_, err := Create(l, 0, Limits{Memory: 100 << 20})
	avail, _ := read(l.V2.Dir() + "/cgroup.subtree_control")
	if slices.Contains(strings.Fields(avail), "memory") {
		// A pure v2 host: the limit is had, in v2.
		if err != nil {
			t.Fatal(err)
		}
		return
	}
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "memory not enabled") {
		t.Errorf("got %v", err)
	}
	t.Log(err)
	if _, err := Create(Layout{Mode: None}, 0, Limits{}); !errors.Is(err, ErrUnavailable) {
		t.Errorf("mode none: %v", err)
	}
}

func TestRunName(t *testing.T) {
	n, err := runName(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	id, ok := parseRunName(n)
	ns, _ := pidNS()
	if !ok || id.pid != os.Getpid() || id.ns != ns || !id.alive() {
		t.Errorf("%s: %+v %v", n, id, ok)
	}
	for _, bad := range []string{"run-1-2-3", "run-1-2-3-", "run-x-2-3-ab", "run-1-0-3-ab", "parker", "run-1-2-3-ab-cd", "xrun-1-2-3-ab"} {
		if _, ok := parseRunName(bad); ok {
			t.Errorf("%q parsed", bad)
		}
	}
}
