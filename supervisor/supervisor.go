// Package supervisor runs the target of a packed executable as a child and
// makes the caller see what it would see had it run the target directly:
// the target's exit status, or its death by the same signal; signals sent
// to us reach the target; the terminal, foreground process group and stdio
// are the caller's own.
//
// We stay the target's parent (rather than exec'ing it in our place) so
// that someone outlives it to clean up: as a child subreaper we inherit
// every process the target leaves behind and kill them when it ends.
//
// Which signals are relayed, and how, is in signals.go; why a target that
// is there could not start (a missing interpreter, an unreadable file), in
// interp.go.
package supervisor

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// StartError means the target could not be started; it never ran.
type StartError struct {
	Path string
	Dir  string // the working directory it was to start in; "" for ours
	Err  error
}

func (e *StartError) Error() string { return "start " + e.Path + ": " + e.Err.Error() }
func (e *StartError) Unwrap() error { return e.Err }

// Missing reports whether the target (or its ELF interpreter) does not
// exist; otherwise it exists but cannot be executed. A shell reports the
// two with different exit statuses, and so does a packed file.
func (e *StartError) Missing() bool {
	return errors.Is(e.Err, syscall.ENOENT) || errors.Is(e.Err, syscall.ENOTDIR)
}

// Config describes the target.
type Config struct {
	Path string   // path of the executable: absolute, or relative to Dir (ours if empty)
	Args []string // argv, including argv[0]
	Env  []string
	Dir  string // working directory; empty keeps ours
	// KeepOrphans leaves processes that outlive the target running.
	KeepOrphans bool
	// Signals, when set, are the signals caught by an earlier Catch;
	// otherwise Run catches them itself.
	Signals *Signals
	// Log, when set, receives progress messages.
	Log func(format string, args ...any)
}

// Status is how the target ended.
type Status struct {
	Code   int            // exit status, when Signal is 0
	Signal syscall.Signal // the signal that killed it, or 0
}

// ExitCode is the status a shell would report: the exit status, or 128+N
// after death by signal N.
func (s Status) ExitCode() int {
	if s.Signal != 0 {
		return 128 + int(s.Signal)
	}
	return s.Code
}

// Run starts the target, relays signals to it, waits for it and everything
// it left behind, and returns how it ended. Call Exit with the result to
// end the process the way the target ended. A *StartError means it never
// ran. Run must be called from the goroutine (and locked thread) whose
// mount namespace the target should get.
func Run(c Config) (Status, error) {
	if c.Log == nil {
		c.Log = func(string, ...any) {}
	}
	if !c.KeepOrphans {
		// Orphans of the target become our children instead of init's,
		// so we can kill them when the target ends. Failing is harmless.
		if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
			c.Log("no subreaper: %v", err)
		}
	}
	// Catch signals before the target exists, so none sent in between
	// kills us and orphans it; they are relayed once it has started.
	sigs := c.Signals
	if sigs == nil {
		sigs = Catch()
	}
	// The signals stay caught when Run returns: its caller is about to
	// exit the way the target did. Callers that live on call Stop.

	pidfd := -1
	attr := &syscall.SysProcAttr{
		// The target dies with us (even when we are SIGKILLed), as it
		// would if it were us. The signal fires when the thread that
		// started it exits: our locked thread, which lives as long as we.
		Pdeathsig: syscall.SIGKILL,
		// A pidfd, so relayed signals never hit a recycled pid.
		PidFD: &pidfd,
	}
	// syscall.ForkExec, not os.StartProcess: the os package forks an
	// extra throwaway child on its first start to probe pidfd support,
	// which costs a fork and an exit on every run of a packed file.
	pid, err := syscall.ForkExec(c.Path, c.Args, &syscall.ProcAttr{
		Dir:   c.Dir,
		Env:   c.Env,
		Files: []uintptr{0, 1, 2},
		Sys:   attr,
	})
	if err != nil {
		return Status{}, &StartError{Path: c.Path, Dir: c.Dir, Err: err}
	}
	defer syscall.Close(pidfd)
	c.Log("started %s (pid %d)", c.Path, pid)

	stopRelay := sigs.relayTo(pid, pidfd)
	st, err := reap(pid)
	stopRelay()
	if err != nil {
		return st, err
	}
	if !c.KeepOrphans {
		if n := killOrphans(); n > 0 {
			c.Log("killed %d leftover processes", n)
		}
	}
	return st, nil
}

// reap waits for children until the target has ended, reaping any orphan
// that ends meanwhile (as a subreaper we are their parent now).
func reap(pid int) (Status, error) {
	for {
		var ws unix.WaitStatus
		got, err := unix.Wait4(-1, &ws, 0, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return Status{}, fmt.Errorf("wait for target: %w", err)
		}
		if got != pid {
			continue
		}
		switch {
		case ws.Exited():
			return Status{Code: ws.ExitStatus()}, nil
		case ws.Signaled():
			return Status{Signal: ws.Signal()}, nil
		}
	}
}

// killOrphans kills and reaps every child we have inherited, repeatedly,
// since killing one hands us its children. It returns how many it killed.
func killOrphans() int {
	// Usually there are none; one wait tells, before any /proc reading.
	if _, err := unix.Wait4(-1, nil, unix.WNOHANG, nil); err == unix.ECHILD {
		return 0
	}
	killed := 0
	for round := 0; round < 1000; round++ {
		kids := children()
		if len(kids) == 0 {
			break
		}
		for _, pid := range kids {
			if unix.Kill(pid, unix.SIGKILL) == nil {
				killed++
			}
		}
		// One blocking reap per child killed: each of them dies, so none
		// of these waits can hang on a child that lives on.
		for range kids {
			if _, err := unix.Wait4(-1, nil, 0, nil); err == unix.ECHILD {
				break
			}
		}
	}
	return killed
}

// children lists our live child processes, from every thread's children
// file (a child belongs to the thread that forked it, or to the leader when
// inherited).
func children() []int {
	var pids []int
	tasks, _ := os.ReadDir("/proc/self/task")
	for _, t := range tasks {
		b, err := os.ReadFile("/proc/self/task/" + t.Name() + "/children")
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(f); err == nil {
				pids = append(pids, pid)
			}
		}
	}
	return pids
}

// Exit ends this process the way the target ended: with its exit status,
// or by the same signal, so our parent's wait sees a death by signal N (a
// shell shows 128+N) just as if it had run the target. It returns only if
// the signal did not kill us; the caller should then exit with the
// returned code.
func Exit(s Status) int {
	if s.Signal == 0 {
		return s.Code
	}
	runtime.LockOSThread()
	// Our own core dump would only repeat the target's.
	unix.Setrlimit(unix.RLIMIT_CORE, &unix.Rlimit{})
	// The Go runtime's handlers would turn a re-raised signal into a
	// clean exit (or a goroutine dump for SIGQUIT), so restore the
	// kernel's default action first. An all-zero struct sigaction is
	// SIG_DFL with no flags and an empty mask, whatever the layout.
	var act [4]uint64
	unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(s.Signal), uintptr(unsafe.Pointer(&act)), 0, 8, 0, 0)
	var set unix.Sigset_t
	n := uint(s.Signal) - 1
	set.Val[n/64] |= 1 << (n % 64)
	unix.PthreadSigmask(unix.SIG_UNBLOCK, &set, nil)
	unix.Tgkill(unix.Getpid(), unix.Gettid(), s.Signal)
	// Signals whose default is to be ignored or to stop cannot end us.
	time.Sleep(10 * time.Millisecond)
	return s.ExitCode()
}
