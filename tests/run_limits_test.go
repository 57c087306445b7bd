package tests

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/parkerpack/parker/cgroup"
)

// The run tests put run cgroups under the root of each hierarchy: this
// host's own memory cgroup (memory/process_api/...) is not ours to make
// cgroups in.
var underRoot = cgroup.EnvParent + "=/"

// oomLine is the sidecar's one line when the kernel killed a process of
// the run for memory.
func oomLine(file, limit string) string {
	return fmt.Sprintf("parker: %s: out of memory: the run's limit is %s (--parker-memory); the kernel killed a process of it\n",
		filepath.Base(file), limit)
}

// TestRunLimitMemory: under --parker-memory 100M, allocating 1 GiB gets the
// target OOM-killed: the caller sees death by SIGKILL, 137 from a shell, as
// with the same program run directly in a cgroup of the same limit; the
// sidecar says so in one line on stderr, and nothing is left. In the
// host's own choice of cgroups (auto) and with v1 forced.
func TestRunLimitMemory(t *testing.T) {
	needRoot(t, "running a packed file")
	f := toolPacked(t)
	dir := filepath.Dir(f)

	// The oracle: the tool run directly in a cgroup with the same limit.
	l, err := cgroup.Detect(cgroup.Options{Parent: "/"})
	if err != nil {
		t.Fatal(err)
	}
	g, err := cgroup.Create(l, 0, cgroup.Limits{Memory: 100 << 20})
	if err != nil {
		t.Fatalf("a cgroup for the direct run: %v", err)
	}
	t.Cleanup(func() { g.Kill(); g.Remove() })
	direct := exec.Command("sh", "-c", `for d in $DIRS; do echo $$ > $d/cgroup.procs || exit 99; done; exec "$0" alloc 1024`, directTool(t))
	direct.Env = append(os.Environ(), "DIRS="+strings.Join(g.Dirs(), " "))
	out, _ := direct.CombinedOutput()
	want := direct.ProcessState.Sys().(syscall.WaitStatus)
	if !want.Signaled() || want.Signal() != syscall.SIGKILL {
		t.Fatalf("direct run under a 100M limit: %v, output %q; want death by SIGKILL", want, out)
	}

	for _, mode := range []string{"auto", "v1"} {
		t.Run(mode, func(t *testing.T) {
			settle()
			before := snapshot(t, dir)
			env := withEnv(underRoot, cgroup.EnvMode+"="+mode)
			r := runFile(t, f, []string{"--parker-memory", "100M", "alloc", "1024"}, env)
			if r.Signal != want.Signal() || strings.Contains(r.Stdout, "allocated") {
				t.Errorf("packed run: code %d, signal %v, stdout %q; the direct run died by %v", r.Code, r.Signal, r.Stdout, want.Signal())
			}
			if w := oomLine(f, "100M"); r.Stderr != w {
				t.Errorf("stderr %q; want the one line %q", r.Stderr, w)
			}
			sh := runFile(t, "sh", []string{"-c", `"$0" --parker-memory=100M alloc 1024 >/dev/null; echo "status $?"`, f}, env)
			// sh itself reports the kill ("Killed"), as for the direct
			// run, before or after the sidecar's line.
			if sh.Stdout != "status 137\n" || strings.Replace(sh.Stderr, "Killed\n", "", 1) != oomLine(f, "100M") {
				t.Errorf("from a shell: stdout %q, stderr %q; want status 137 and the one line", sh.Stdout, sh.Stderr)
			}
			// The limit is the run's, not the machine's: 1 GiB fits
			// under 2G.
			if r := runFile(t, f, []string{"--parker-memory", "2G", "alloc", "1024"}, env); r.Code != 0 || !strings.HasSuffix(r.Stdout, "allocated\n") || r.Stderr != "" {
				t.Errorf("under 2G: exit %d, stdout %q, stderr %q", r.Code, r.Stdout, r.Stderr)
			}
			sameTraces(t, before, dir)
		})
	}
}

// TestRunLimitPids: --parker-pids 50 contains a fork bomb: forks fail with
// EAGAIN before the run holds 50 processes, the run's cgroup never counts
// more, and after kill -9 of the target nothing of the run is left within
// 1 s.
func TestRunLimitPids(t *testing.T) {
	needRoot(t, "running a packed file")
	f := toolPacked(t)
	dir := filepath.Dir(f)
	settle()
	before := snapshot(t, dir)
	c := exec.Command(f, "--parker-pids", "50", "forkbomb", "1000") // 1000: the test's safety net
	c.Env = append(os.Environ(), underRoot)
	p := launch(t, c, false)
	got := p.expect(t, "forked ")["forked "]
	n, _ := strconv.Atoi(strings.Fields(got)[0])
	if n >= 50 || n < 10 || !strings.Contains(strings.ToLower(got), syscall.EAGAIN.Error()) {
		t.Errorf("the fork bomb made %s; want fewer than 50 (the target is the 50th), then EAGAIN", got)
	}
	pid := c.Process.Pid
	cgs := runCgroupsOfSoon(pid, nonEmpty)
	var current string
	for _, d := range cgs {
		if b, err := os.ReadFile(filepath.Join(d, "pids.current")); err == nil {
			current = strings.TrimSpace(string(b))
			if m, _ := strconv.Atoi(current); m > 50 || m < n+1 {
				t.Errorf("%s/pids.current %d; want %d to 50", d, m, n+1)
			}
			if b, _ := os.ReadFile(filepath.Join(d, "pids.max")); strings.TrimSpace(string(b)) != "50" {
				t.Errorf("%s/pids.max %q", d, b)
			}
		}
	}
	if current == "" {
		t.Errorf("no pids controller in the run's cgroups %v", cgs)
	}
	syscall.Kill(pid, syscall.SIGKILL)
	p.wait(t)
	killed := time.Now()
	if !within(cleanupWait, func() bool { return len(snapshot(t, dir).Procs) == len(before.Procs) && anyExists(cgs) == "" }) {
		t.Errorf("%v after kill -9: processes %v, cgroup %q", cleanupWait, snapshot(t, dir).Procs, anyExists(cgs))
	}
	t.Logf("%d forks, then %s; all gone %v after kill -9", n, got, time.Since(killed).Round(time.Millisecond))
	sameTraces(t, before, dir)
}

// TestRunLimitCPUs: under --parker-cpus 0.5 a busy loop gets about half a
// core: the run's cgroup holds the quota, and counts the loop's CPU time
// (the statistics the kernel keeps per cgroup) growing by no more than
// 0.6 s a second; where the loop got near its quota, the CFS throttled it.
// A loaded machine may give it less, never more.
func TestRunLimitCPUs(t *testing.T) {
	needRoot(t, "running a packed file")
	f := toolPacked(t)
	c := exec.Command(f, "--parker-cpus", "0.5", "spin")
	c.Env = append(os.Environ(), underRoot)
	p := launch(t, c, false)
	p.expect(t, "pid=")
	cgs := runCgroupsOfSoon(c.Process.Pid, nonEmpty)
	quota := ""
	for _, d := range cgs {
		if b, err := os.ReadFile(filepath.Join(d, "cpu.max")); err == nil && !strings.HasPrefix(string(b), "max") {
			quota = strings.TrimSpace(string(b))
		}
		if b, err := os.ReadFile(filepath.Join(d, "cpu.cfs_quota_us")); err == nil && strings.TrimSpace(string(b)) != "-1" {
			p, _ := os.ReadFile(filepath.Join(d, "cpu.cfs_period_us"))
			quota = strings.TrimSpace(string(b)) + " " + strings.TrimSpace(string(p))
		}
	}
	if quota != "50000 100000" {
		t.Errorf("the run's cgroups %v hold the CPU quota %q; want 50000 µs per 100000", cgs, quota)
	}
	usage0, throttled0, err := cpuStats(cgs)
	if err != nil {
		t.Fatal(err)
	}
	// Until the loop has had a second of CPU, or 10 s have passed.
	start := time.Now()
	var used time.Duration
	var throttled int64
	within(10*time.Second, func() bool {
		u, th, _ := cpuStats(cgs)
		used, throttled = u-usage0, th-throttled0
		return used >= time.Second
	})
	elapsed := time.Since(start)
	share := used.Seconds() / elapsed.Seconds()
	t.Logf("%v of CPU in %v: %.2f of a core; throttled %d times", used.Round(time.Millisecond), elapsed.Round(time.Millisecond), share, throttled)
	if used < 100*time.Millisecond {
		t.Errorf("the busy loop had only %v of CPU in %v", used, elapsed)
	}
	if share > 0.6 {
		t.Errorf("the busy loop had %.2f of a core under --parker-cpus 0.5", share)
	}
	if share >= 0.45 && throttled == 0 {
		t.Errorf("the busy loop had %.2f of a core, and its cgroup was never throttled (nr_throttled 0)", share)
	}
	syscall.Kill(c.Process.Pid, syscall.SIGKILL)
	p.wait(t)
}

// cpuStats reads the CPU time used by a run whose cgroup directories are
// dirs (cpu.stat usage_usec in v2, cpuacct.usage in v1) and how many
// periods the CFS throttled it (cpu.stat nr_throttled, where the cpu
// controller is).
func cpuStats(dirs []string) (used time.Duration, throttled int64, err error) {
	have := false
	for _, d := range dirs {
		b, _ := os.ReadFile(filepath.Join(d, "cpu.stat"))
		for _, l := range strings.Split(string(b), "\n") {
			k, v, _ := strings.Cut(l, " ")
			n, _ := strconv.ParseInt(v, 10, 64)
			switch k {
			case "usage_usec":
				used, have = time.Duration(n)*time.Microsecond, true
			case "nr_throttled":
				throttled = n
			}
		}
		if b, err := os.ReadFile(filepath.Join(d, "cpuacct.usage")); err == nil && !have {
			n, _ := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
			used, have = time.Duration(n), true
		}
	}
	if !have {
		return 0, 0, fmt.Errorf("no CPU usage in the run's cgroups %v", dirs)
	}
	return used, throttled, nil
}

// TestRunLimitDefaults: limits given at pack time (parker --memory, --cpus,
// --pids) apply to every run and show in --parker-info; a run-time flag
// overrides its own, 0 lifts one, and the others stay. A run with limits
// where no cgroup can be made fails in one line instead of running
// unlimited.
func TestRunLimitDefaults(t *testing.T) {
	needRoot(t, "running a packed file")
	wd := tempDir(t, "limitswd")
	gccBuild(t, "tool.c", filepath.Join(wd, "tool"))
	f := pack(t, wd, "tool", "-q", "--memory", "100M", "--cpus", "0.5", "--pids", "50")
	dir := filepath.Dir(f)

	info := runFile(t, f, []string{"--parker-info"})
	if want := "limits:         --parker-memory 100M --parker-cpus 0.5 --parker-pids 50 (each run's default)\n"; !strings.Contains(info.Stdout, want) {
		t.Errorf("--parker-info:\n%s\nwant the line %q", info.Stdout, want)
	}
	if r := runParker(t, "", nil, "inspect", "--json", f); !strings.Contains(r.Stdout, `"memory_limit": 104857600,
  "cpu_limit": 0.5,
  "pids_limit": 50,`) {
		t.Errorf("parker inspect --json:\n%s", r.Stdout)
	}

	// limits reads the limits a run's cgroup holds while the target
	// waits, as "memory M, cpus C, pids P" ("-" for none).
	limits := func(t *testing.T, args ...string) string {
		t.Helper()
		settle()
		before := snapshot(t, dir)
		c := exec.Command(f, append(args, "waitall")...)
		c.Env = append(os.Environ(), underRoot)
		p := launch(t, c, false)
		p.expect(t, "no children")
		cgs := runCgroupsOfSoon(c.Process.Pid, nonEmpty)
		mem, cpus, pids := "-", "-", "-"
		read := func(d, file string) (string, bool) {
			b, err := os.ReadFile(filepath.Join(d, file))
			return strings.TrimSpace(string(b)), err == nil
		}
		for _, d := range cgs {
			if v, ok := read(d, "memory.max"); ok {
				mem = v
			}
			// v1 writes "no limit" as the largest multiple of the page
			// size.
			if v, ok := read(d, "memory.limit_in_bytes"); ok && len(v) < 19 {
				mem = v
			}
			if v, ok := read(d, "cpu.cfs_quota_us"); ok && v != "-1" {
				cpus = v + "/100000"
			}
			if v, ok := read(d, "cpu.max"); ok && !strings.HasPrefix(v, "max") {
				cpus = strings.Replace(v, " ", "/", 1)
			}
			if v, ok := read(d, "pids.max"); ok {
				pids = v
			}
		}
		if ws := p.wait(t); ws.ExitStatus() != 0 {
			t.Errorf("%q: %v, stderr %q", args, ws, p.stderr())
		}
		sameTraces(t, before, dir)
		return fmt.Sprintf("memory %s, cpus %s, pids %s", mem, cpus, pids)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "memory 104857600, cpus 50000/100000, pids 50"},
		{[]string{"--parker-memory", "200M"}, "memory 209715200, cpus 50000/100000, pids 50"},
		{[]string{"--parker-pids=0", "--parker-cpus", "1.5"}, "memory 104857600, cpus 150000/100000, pids -"},
	} {
		if got := limits(t, tc.args...); got != tc.want {
			t.Errorf("%q: the run's cgroup holds %s; want %s", tc.args, got, tc.want)
		}
	}

	// No cgroup: one line, 125, the target never ran.
	r := runFile(t, f, []string{"exit", "3"}, withEnv(underRoot, cgroup.EnvMode+"=none"))
	if want := regexp.MustCompile(`^parker: \S+/toold: cannot apply the run's limits \(memory 100M, cpus 0\.5, pids 50\): ` +
		`cgroup: no cgroup for the run: cgroups are turned off \(PARKER_CGROUP=none\)\n$`); r.Code != 125 || !want.MatchString(r.Stderr) {
		t.Errorf("limits without cgroups: exit %d, stderr %q; want 125 and %q", r.Code, r.Stderr, want)
	}
	// Lifted, it runs where no cgroup can be made.
	if r := runFile(t, f, []string{"--parker-memory=0", "--parker-cpus=0", "--parker-pids=0", "exit", "3"},
		withEnv(cgroup.EnvMode+"=none")); r.Code != 3 || r.Stderr != "" {
		t.Errorf("limits lifted, no cgroups: exit %d, stderr %q", r.Code, r.Stderr)
	}
}
