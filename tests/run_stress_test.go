package tests

// Runs in a row, at once, and ended abruptly leave nothing behind: no
// mount, loop device, cgroup, temp file or process.

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestRunLeaks: 200 runs in a row, 50 at once and 300 at once leave nothing
// behind (cgroups counted), and concurrent runs do not see each other's
// writes.
func TestRunLeaks(t *testing.T) {
	needRoot(t, "running a packed file")
	f := packScript(t, "w", `#!/bin/sh
echo "$1" > "$PARKER_ROOT/mark-$1"
[ -n "$2" ] && sleep "$2"
ls "$PARKER_ROOT" | grep '^mark-'
`, nil)
	dir := filepath.Dir(f)
	checkTmp := privateTmp(t)
	devs := func() int { m, _ := filepath.Glob("/sys/block/loop*"); return len(m) }
	devsBefore := devs()
	before := snapshot(t, dir)
	start := time.Now()
	for i := 0; i < 200; i++ {
		r := runFile(t, f, []string{strconv.Itoa(i)})
		if r.Code != 0 || r.Stdout != fmt.Sprintf("mark-%d\n", i) {
			t.Fatalf("run %d: exit %d, stdout %q, stderr %q", i, r.Code, r.Stdout, r.Stderr)
		}
	}
	seq := time.Since(start)
	after := sameTraces(t, before, dir)
	t.Logf("200 sequential runs in %v (%.1f ms each); after: %d loop devices, %d cgroup dirs (before %d), %d mounts (before %d), temp %v",
		seq.Round(time.Millisecond), float64(seq.Milliseconds())/200, len(after.Loops), after.Cgroups, before.Cgroups, after.Mounts, before.Mounts, after.TmpNew)

	// 50 at once, then 300: each holds a loop device, a mount namespace,
	// a sidecar and a cgroup for a second.
	for _, n := range []int{50, 300} {
		var wg sync.WaitGroup
		errs := make(chan string, n)
		var maxLoops int
		var mu sync.Mutex
		start = time.Now()
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				r := runFile(t, f, []string{strconv.Itoa(i), "1"})
				if r.Code != 0 || r.Stdout != fmt.Sprintf("mark-%d\n", i) {
					errs <- fmt.Sprintf("%d concurrent runs, run %d: exit %d, stdout %q, stderr %q", n, i, r.Code, r.Stdout, r.Stderr)
				}
			}(i)
		}
		go func() {
			time.Sleep(700 * time.Millisecond)
			mu.Lock()
			maxLoops = len(snapshot(t, dir).Loops)
			mu.Unlock()
		}()
		wg.Wait()
		close(errs)
		for e := range errs {
			t.Error(e)
		}
		after = sameTraces(t, before, dir)
		mu.Lock()
		t.Logf("%d concurrent runs in %v; %d loop devices in use midway, %d after; cgroup dirs %d -> %d; temp %v",
			n, time.Since(start).Round(time.Millisecond), maxLoops, len(after.Loops), before.Cgroups, after.Cgroups, after.TmpNew)
		mu.Unlock()
	}
	checkTmp()
	// Loop devices the kernel created on demand stay as its free pool
	// (unbound: no backing file, nothing held), as with losetup -f.
	t.Logf("loop device nodes: %d before, %d after (all unbound but the pool's others)", devsBefore, devs())
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("host directory holds %d entries after the runs, want 1", len(ents))
	}
}

// TestRunKilledStub: SIGKILL on the packed file takes the target with it
// and leaves nothing behind.
func TestRunKilledStub(t *testing.T) {
	needRoot(t, "running a packed file")
	f := toolPacked(t)
	before := snapshot(t, filepath.Dir(f))
	c, _ := startTool(t, f, "trap", "10", "77")
	mid := snapshot(t, filepath.Dir(f))
	// One process: the target, in the packed file's place (the sidecar
	// runs from memory).
	if len(mid.Loops) != len(before.Loops)+1 || len(mid.Procs) != len(before.Procs)+1 {
		t.Errorf("during the run: loops %v procs %v (want one loop device, one process)", mid.Loops, mid.Procs)
	}
	c.Process.Kill()
	c.Wait()
	sameTraces(t, before, filepath.Dir(f))
}

// TestRunKillsOrphans: when the target ends, what it left running ends
// too: a background child, and a daemon that left its session (setsid).
func TestRunKillsOrphans(t *testing.T) {
	needRoot(t, "running a packed file")
	f := packScript(t, "orphans", `#!/bin/sh
sleep 100 >/dev/null 2>&1 & echo $! > "$PIDS"
setsid sh -c 'sleep 100' >/dev/null 2>&1 & echo $! >> "$PIDS"
exit 4
`, nil)
	pids := filepath.Join(t.TempDir(), "pids")
	r := runFile(t, f, nil, withEnv("PIDS="+pids))
	if r.Code != 4 {
		t.Fatalf("exit %d, stderr %q", r.Code, r.Stderr)
	}
	b, err := os.ReadFile(pids)
	if err != nil || len(strings.Fields(string(b))) != 2 {
		t.Fatalf("pids %q: %v", b, err)
	}
	// The sidecar kills them once the target has ended: within 1 s.
	deadline := time.Now().Add(time.Second)
	for _, p := range strings.Fields(string(b)) {
		pid, _ := strconv.Atoi(p)
		for alive(pid) && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		if alive(pid) {
			t.Errorf("process %d left behind by the target is still there 1 s after it ended", pid)
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}
