package supervisor

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The test binary is also a stub here: as /proc/self/exe it is what Launch
// starts as the sidecar, and with envExecTarget set it plays a run that
// launches the sidecar and execs a shell script in place.
const envExecTarget = "SUPERVISOR_TEST_EXEC"

func TestMain(m *testing.M) {
	RunSidecar()
	if script, ok := os.LookupEnv(envExecTarget); ok {
		os.Exit(fakeRun(script))
	}
	os.Exit(m.Run())
}

// fakeRun does what the stub does after mounting: a mount namespace of its
// own, the sidecar, then the target in place.
func fakeRun(script string) int {
	runtime.LockOSThread()
	side, err := Launch(nil, 0)
	if err != nil {
		os.Stderr.WriteString(err.Error() + "\n")
		return 125
	}
	if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
		os.Stderr.WriteString("unshare: " + err.Error() + "\n")
		return 125
	}
	ns, err := os.Readlink("/proc/thread-self/ns/mnt")
	if err != nil {
		os.Stderr.WriteString(err.Error() + "\n")
		return 125
	}
	fmt.Println(side.Pid) // for the test to wait for it
	if err := side.Commit(Plan{Name: "fake", Pid: os.Getpid(), Tid: unix.Gettid(), Namespace: ns, KeepChildren: os.Getenv("KEEP") == "1"}); err != nil {
		os.Stderr.WriteString(err.Error() + "\n")
		return 125
	}
	err = Exec(Config{Path: "/bin/sh", Args: []string{"sh", "-c", script}, Env: []string{"PATH=/usr/bin:/bin"}})
	os.Stderr.WriteString(err.Error() + "\n")
	return 127
}

func TestExecStartErrors(t *testing.T) {
	dir := t.TempDir()
	plain := dir + "/plain"
	os.WriteFile(plain, []byte("#!/bin/sh\n"), 0o644)
	badInterp := dir + "/bad"
	os.WriteFile(badInterp, []byte("#!/nonexistent\n"), 0o755)
	for _, tc := range []struct {
		path    string
		missing bool
	}{
		{dir + "/missing", true},
		{badInterp, true},
		{plain, false},
		{dir, false},
	} {
		err := Exec(Config{Path: tc.path, Args: []string{"x"}})
		var se *StartError
		if !errors.As(err, &se) || se.Missing() != tc.missing {
			t.Errorf("%s: got %v, want a StartError, missing %v", tc.path, err, tc.missing)
		}
	}
}

// alive reports whether pid runs (a zombie does not count).
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	return len(f) > 0 && f[0] != "Z"
}

// fakeRunPids runs fakeRun with script, which prints the pids it leaves
// behind, and returns the target's pid, its exit status and those pids.
func fakeRunPids(t *testing.T, script string, env ...string) (int, int, []int) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("needs root for a mount namespace")
	}
	cmd := exec.Command("/proc/self/exe")
	cmd.Env = append([]string{envExecTarget + "=" + script}, env...)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	code := cmd.ProcessState.ExitCode()
	if err != nil && code < 0 {
		t.Fatalf("run: %v", err)
	}
	var pids []int
	for _, f := range strings.Fields(string(out)) {
		pid, err := strconv.Atoi(f)
		if err != nil {
			t.Fatalf("script printed %q", out)
		}
		pids = append(pids, pid)
	}
	return cmd.Process.Pid, code, pids
}

// TestSidecarKillsLeftovers: what the target leaves running, a daemon that
// left its session included, is killed when it ends; the target's own
// pid and exit status are the caller's.
func TestSidecarKillsLeftovers(t *testing.T) {
	f := t.TempDir() + "/daemon"
	_, code, pids := fakeRunPids(t, "sleep 100 >/dev/null & echo $!; "+
		"setsid sh -c 'sleep 100 >/dev/null & echo $! > "+f+".new; mv "+f+".new "+f+"; wait' >/dev/null & echo $!; "+
		"until [ -s "+f+" ]; do :; done; cat "+f+"; exit 4")
	if code != 4 || len(pids) != 4 {
		t.Fatalf("exit %d, pids %v", code, pids)
	}
	pids = pids[1:] // the first is the sidecar's
	deadline := time.Now().Add(time.Second)
	for _, pid := range pids {
		for alive(pid) && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		if alive(pid) {
			t.Errorf("leftover %d alive 1 s after the target ended", pid)
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// TestSidecarKeepChildren: with KeepChildren they run on after the sidecar
// has done its work and gone.
func TestSidecarKeepChildren(t *testing.T) {
	_, code, pids := fakeRunPids(t, "sleep 100 >/dev/null & echo $!", "KEEP=1")
	if code != 0 || len(pids) != 2 {
		t.Fatalf("exit %d, pids %v", code, pids)
	}
	side, child := pids[0], pids[1]
	defer syscall.Kill(child, syscall.SIGKILL)
	for deadline := time.Now().Add(5 * time.Second); alive(side); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("sidecar %d still there 5 s after the target ended", side)
		}
	}
	if !alive(child) {
		t.Errorf("child %d killed despite KeepChildren", child)
	}
}
