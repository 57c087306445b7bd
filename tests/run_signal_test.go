package tests

// Signals between the caller and the target: relayed to it, inherited as a
// shell expects, and held while the view is being set up.

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

func TestRunSignalRelay(t *testing.T) {
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

// TestRunSignalHeldWhileMounting: a signal that reaches the packed file
// while it is still setting up the view is held, and delivered to the
// target once it has started. strace stretches the namespace step (the
// first of the mount steps) to 600 ms; SIGTERM arrives 50 ms into it.
// Caught and dropped, the target would sleep its 5 s; not caught, the
// packed file would die at once; held, the target dies of it after the
// stretch, and so, the same way, does the packed file.
func TestRunSignalHeldWhileMounting(t *testing.T) {
	needRoot(t, "running a packed file")
	needTool(t, "strace")
	f := toolPacked(t)
	c := exec.Command("strace", "-f", "-o", "/dev/null", "-e", "trace=unshare",
		"-e", "inject=unshare:delay_enter=600000", f, "sleep", "5000")
	start := time.Now()
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
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
		c.Process.Kill()
		c.Wait()
		t.Fatal("the packed file did not start under strace")
	}
	// Wait until one of its threads is held at the entry of unshare: a
	// fixed sleep is not enough, a loaded machine may take longer than
	// any to get the Go stub's runtime that far.
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
		c.Process.Kill()
		c.Wait()
		t.Fatal("the packed file never reached unshare")
	}
	time.Sleep(50 * time.Millisecond)
	sent := time.Now()
	syscall.Kill(stub, syscall.SIGTERM)
	c.Wait()
	took := time.Since(sent)
	ws := c.ProcessState.Sys().(syscall.WaitStatus)
	switch {
	case !ws.Signaled() || ws.Signal() != syscall.SIGTERM:
		t.Errorf("%v after the signal: %v; want death by SIGTERM", took, c.ProcessState)
	case took < 300*time.Millisecond:
		t.Errorf("died %v after the signal, before the stretched step (550 ms left) ended: the signal was not held", took)
	case took > 4*time.Second:
		t.Errorf("took %v: the target never got the signal", took)
	}
}
