package tests

// Signals between the caller and the target: the target is the process the
// caller started, so they reach it directly, inherited as a shell expects;
// one that comes while the view is being set up ends the run as it would
// end a program that has not installed its handlers yet.

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
)

func TestRunSignalToTarget(t *testing.T) {
	needRoot(t, "running a packed file")
	f := toolPacked(t)
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGHUP,
		syscall.SIGINT, syscall.SIGALRM, syscall.Signal(50)} {
		c, _ := startTool(t, f, "trap", strconv.Itoa(int(sig)), "77")
		c.Process.Signal(sig)
		err := c.Wait()
		if c.ProcessState.ExitCode() != 77 {
			t.Errorf("%v sent to the packed file: want the target's trap (exit 77), got %v", sig, err)
		}
	}
	// A signal with the default action reaches the target, which dies of it,
	// and so do we.
	c, _ := startTool(t, f, "trap", "10", "77") // traps USR1 only
	c.Process.Signal(syscall.SIGTERM)
	c.Wait()
	if ws := c.ProcessState.Sys().(syscall.WaitStatus); !ws.Signaled() || ws.Signal() != syscall.SIGTERM {
		t.Errorf("SIGTERM: caller saw %v", c.ProcessState)
	}
}

// TestRunSignalInheritance: what a shell sees of signals between itself and
// the target is what it sees when it runs the target directly: an ignored
// SIGHUP or SIGINT stays ignored in the target (nohup, background jobs),
// and a signal the target sends to its parent reaches the shell.
func TestRunSignalInheritance(t *testing.T) {
	needRoot(t, "running a packed file")
	f := toolPacked(t)
	direct := filepath.Join(tempDir(t, "direct"), "tool")
	gccBuild(t, "tool.c", direct)
	for _, tc := range []struct{ name, script string }{
		{"ignored", "trap '' HUP INT; %[1]s disp 1; %[1]s disp 2; %[1]s disp 12"},
		{"to parent", "trap 'echo parent got USR1' USR1; %[1]s killparent 10; echo exit $?"},
	} {
		want, err := exec.Command("bash", "-c", fmt.Sprintf(tc.script, direct)).CombinedOutput()
		if err != nil {
			t.Fatalf("%s, direct: %v %s", tc.name, err, want)
		}
		got, err := exec.Command("bash", "-c", fmt.Sprintf(tc.script, f)).CombinedOutput()
		if err != nil || string(got) != string(want) {
			t.Errorf("%s: packed %q (%v), direct %q", tc.name, got, err, want)
		}
	}
}

// TestRunSignalWhileMounting: a signal that reaches the packed file while
// it is still setting up the view has its default effect, as on a program
// run directly that has not installed its handlers yet, and leaves nothing
// behind: no mount, loop device, cgroup or process (the sidecar, started
// first, exits without a plan). strace stretches the namespace step (the
// first of the mount steps) to 600 ms; SIGTERM arrives during it.
func TestRunSignalWhileMounting(t *testing.T) {
	needRoot(t, "running a packed file")
	needTool(t, "strace")
	f := toolPacked(t)
	before := snapshot(t, filepath.Dir(f))
	c := exec.Command("strace", "-f", "-o", "/dev/null", "-e", "trace=unshare",
		"-e", "inject=unshare:delay_enter=600000", f, "sleep", "5000")
	start := time.Now()
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Process.Kill(); c.Wait() })
	// The packed file: strace's child, once it runs f (strace forks
	// another child first, which execs nothing).
	stub := 0
	for stub == 0 && time.Since(start) < 3*time.Second {
		for _, p := range childPids(c.Process.Pid) {
			if exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", p)); exe == f {
				stub = p
			}
		}
		time.Sleep(time.Millisecond)
	}
	if stub == 0 {
		t.Fatal("the packed file did not start under strace")
	}
	// Wait until one of its threads is held at the entry of unshare (a
	// loaded machine may take a while to get the Go stub's runtime that
	// far).
	inStep := false
	for !inStep && time.Since(start) < 5*time.Second {
		files, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/syscall", stub))
		for _, sf := range files {
			b, _ := os.ReadFile(sf)
			inStep = inStep || strings.HasPrefix(string(b), strconv.Itoa(syscall.SYS_UNSHARE)+" ")
		}
		time.Sleep(time.Millisecond)
	}
	if !inStep {
		syscall.Kill(stub, syscall.SIGKILL)
		t.Fatal("the packed file never reached unshare")
	}
	syscall.Kill(stub, syscall.SIGTERM)
	c.Wait()
	ws := c.ProcessState.Sys().(syscall.WaitStatus)
	if !ws.Signaled() || ws.Signal() != syscall.SIGTERM {
		t.Errorf("after SIGTERM while mounting: %v; want death by SIGTERM", c.ProcessState)
	}
	sameTraces(t, before, filepath.Dir(f))
}
