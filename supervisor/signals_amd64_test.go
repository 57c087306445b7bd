package supervisor

import (
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestSignalToParentBeforeRelay: a signal the target sends its parent
// before the relay knows the target's pid (it can run that fast) still goes
// on to our parent, not back to the target, whether relayTo or the handler
// delivers it. A child process of this test plays the stub, so that the
// test itself is the parent it must reach.
func TestSignalToParentBeforeRelay(t *testing.T) {
	if os.Getenv("PARKER_TEST_STUB_ROLE") == "1" {
		playStub()
		return
	}
	got := make(chan os.Signal, 2)
	signal.Notify(got, syscall.SIGUSR1, syscall.SIGUSR2)
	defer signal.Stop(got)
	c := exec.Command(os.Args[0], "-test.run=^TestSignalToParentBeforeRelay$")
	c.Env = append(os.Environ(), "PARKER_TEST_STUB_ROLE=1")
	if out, err := c.CombinedOutput(); err != nil {
		t.Fatalf("the stub role failed: %v\n%s", err, out)
	}
	seen := map[os.Signal]bool{}
	for timeout := time.After(5 * time.Second); len(seen) < 2; {
		select {
		case sig := <-got:
			seen[sig] = true
		case <-timeout:
			t.Fatalf("of SIGUSR1 (held, relayed by relayTo) and SIGUSR2 (held, relayed by the handler) the parent's parent got only %v", seen)
		}
	}
}

// playStub catches signals, starts a target that signals its parent and
// exits, waits until that signal is held, and only then points the relay
// at the target: the order a fast target and a slow stub can take.
func playStub() {
	sigs := Catch()
	pidfd := -1
	pid, err := syscall.ForkExec("/bin/sh", []string{"sh", "-c", "kill -USR1 $PPID"}, &syscall.ProcAttr{
		Files: []uintptr{0, 1, 2},
		Sys:   &syscall.SysProcAttr{PidFD: &pidfd},
	})
	if err != nil {
		fail("start: %v", err)
	}
	// Exited, not reaped: its pid stays its own.
	var info unix.Siginfo
	if err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil); err != nil {
		fail("waitid: %v", err)
	}
	for start := time.Now(); atomic.LoadUint64(&relayPending) == 0; {
		if time.Since(start) > 5*time.Second {
			fail("the signal was never held")
		}
		time.Sleep(time.Millisecond)
	}
	detach := sigs.relayTo(pid, pidfd)
	// The handler's own delivery of held signals: a SIGUSR2 from the
	// target, held as if the handler had run just before relayTo, goes
	// out with the next signal that arrives (a SIGWINCH from elsewhere).
	atomic.StoreInt32(&relaySender[syscall.SIGUSR2-1], int32(pid))
	atomic.OrUint64(&relayPending, 1<<(syscall.SIGUSR2-1))
	if err := exec.Command("kill", "-WINCH", fmt.Sprint(os.Getpid())).Run(); err != nil {
		fail("kill: %v", err)
	}
	for start := time.Now(); atomic.LoadUint64(&relayPending) != 0; {
		if time.Since(start) > 5*time.Second {
			fail("the handler never delivered what was held")
		}
		time.Sleep(time.Millisecond)
	}
	detach()
	sigs.Stop()
	var ws syscall.WaitStatus
	syscall.Wait4(pid, &ws, 0, nil)
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "stub role: "+format+"\n", args...)
	os.Exit(1)
}
