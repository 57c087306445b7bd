package tests

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/parkerpack/parker/cgroup"
)

// TestRunStaleCgroups: a run removes, once its target has ended, the run
// cgroups beside its own that runs killed before they could clean up left
// behind (their owner gone, no process in them), on both stubs; and it
// never touches a live owner's cgroup, even an empty one, one that still
// holds a process, or one named for another pid namespace.
func TestRunStaleCgroups(t *testing.T) {
	needRoot(t, "running a packed file")
	f := toolPacked(t)
	l, err := cgroup.Detect(cgroup.Options{})
	if err != nil || l.V2 == nil {
		unavailable(t, "SKIP: no v2 cgroup hierarchy to run in (%v)", err)
	}
	parent := filepath.Join(l.V2.Dir(), "parker")
	if err := os.MkdirAll(parent, 0o755); err != nil {
		t.Fatal(err)
	}
	var ns syscall.Stat_t
	if err := syscall.Stat("/proc/self/ns/pid", &ns); err != nil {
		t.Fatal(err)
	}
	// deadOwner is a process that has ended: its pid and start time.
	deadOwner := func() (int, uint64) {
		c := exec.Command("sleep", "100")
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		start := procStart(t, c.Process.Pid)
		c.Process.Kill()
		c.Wait()
		return c.Process.Pid, start
	}
	mk := func(name string) string {
		d := filepath.Join(parent, name)
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			within(2*time.Second, func() bool { err := os.Remove(d); return err == nil || os.IsNotExist(err) })
		})
		return d
	}
	settle()
	pid, start := deadOwner()
	stale := mk(fmt.Sprintf("run-%d-%d-%d-5a1e", ns.Ino, pid, start))
	live := mk(fmt.Sprintf("run-%d-%d-%d-11fe", ns.Ino, os.Getpid(), procStart(t, os.Getpid())))
	foreign := mk(fmt.Sprintf("run-%d-%d-%d-f0", ns.Ino+1, pid, start))
	pid2, start2 := deadOwner()
	full := mk(fmt.Sprintf("run-%d-%d-%d-f111", ns.Ino, pid2, start2))
	orphan := exec.Command("sleep", "100")
	if err := orphan.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { orphan.Process.Kill(); orphan.Wait() })
	if err := os.WriteFile(filepath.Join(full, "cgroup.procs"), []byte(strconv.Itoa(orphan.Process.Pid)), 0); err != nil {
		t.Fatal(err)
	}

	if r := runFile(t, f, []string{"exit", "0"}); r.Code != 0 {
		t.Fatalf("run: exit %d, stderr %q", r.Code, r.Stderr)
	}
	if !within(2*cleanupWait, func() bool { _, err := os.Stat(stale); return err != nil }) {
		t.Errorf("the stale cgroup %s is still there after the run", stale)
	}
	for _, d := range []string{live, foreign, full} {
		if _, err := os.Stat(d); err != nil {
			t.Errorf("the run removed %s: %v", d, err)
		}
	}
	orphan.Process.Kill()
	orphan.Wait()
}

// procStart returns a process's start time, in clock ticks after boot
// (field 22 of /proc/PID/stat).
func procStart(t *testing.T, pid int) uint64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	n, err := strconv.ParseUint(f[22-3], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
