// Package supervisor makes the target the process the caller started and
// cleans up after it.
//
// The stub does not stay the target's parent: once the view is mounted it
// execs the target in its own process (Exec), so the target keeps the pid
// the caller got ($!, pidfiles, kill), its process group, session and
// terminal; every signal goes straight to it, and its wait status (exit
// code, signal, core-dump bit) is the caller's with nothing imitated.
//
// Cleaning up is the sidecar's (sidecar.go): a small process started just
// before the exec, detached in a session of its own, that holds a pidfd of
// the target and, when the target ends by any means (kill -9 included),
// kills everything the target left and exits.
//
// Why a target that is there could not start (a missing interpreter, an
// unreadable file) is in interp.go.
package supervisor

import (
	"errors"
	"fmt"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

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
	// Signals, when set, is the signal state the caller gave the packed
	// file, for the target to get: the Go runtime has changed ours.
	Signals *SignalState
}

// SignalState is a process's blocked and ignored signals: bit N-1 for
// signal N.
type SignalState struct{ Blocked, Ignored uint64 }

// String writes s as ParseSignalState reads it.
func (s *SignalState) String() string { return fmt.Sprintf("%016x,%016x", s.Blocked, s.Ignored) }

// ParseSignalState reads "BLOCKED,IGNORED", two masks in hex, as the C
// stub writes them.
func ParseSignalState(s string) (*SignalState, error) {
	b, i, ok := strings.Cut(s, ",")
	bl, err1 := strconv.ParseUint(b, 16, 64)
	ig, err2 := strconv.ParseUint(i, 16, 64)
	if !ok || err1 != nil || err2 != nil {
		return nil, fmt.Errorf("signal state %q: not BLOCKED,IGNORED in hex", s)
	}
	return &SignalState{Blocked: bl, Ignored: ig}, nil
}

// apply gives the calling thread, which is about to exec, the state: an
// exec keeps the mask and ignored dispositions (it resets handled ones).
// Faults stay as they are, for the runtime's sake until the exec.
func (st *SignalState) apply() {
	for n := 1; n <= 64; n++ {
		sig := syscall.Signal(n)
		switch sig {
		case syscall.SIGKILL, syscall.SIGSTOP, syscall.SIGSEGV, syscall.SIGBUS, syscall.SIGFPE, syscall.SIGILL:
			continue
		}
		if st.Ignored&(1<<(n-1)) != 0 {
			signal.Ignore(sig)
		}
	}
	var set unix.Sigset_t
	set.Val[0] = st.Blocked
	unix.PthreadSigmask(unix.SIG_SETMASK, &set, nil)
}

// Exec replaces this process with the target. It returns only when the
// target could not be started, with a *StartError; the process is then
// still ours (in Dir, when the chdir worked).
//
// It must be called from the goroutine (and locked thread) whose mount
// namespace, working directory and root the target should get: execve
// makes the calling thread the whole process.
func Exec(c Config) error {
	if c.Dir != "" {
		if err := syscall.Chdir(c.Dir); err != nil {
			return &StartError{Path: c.Path, Dir: c.Dir, Err: err}
		}
	}
	if c.Signals != nil {
		c.Signals.apply()
	}
	err := syscall.Exec(c.Path, c.Args, c.Env)
	return &StartError{Path: c.Path, Dir: c.Dir, Err: err}
}
