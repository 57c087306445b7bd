package supervisor

import (
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// Which signals reach the target, and how.
//
// Catch sets up the relay before the target exists; Run points it at the
// target once it has started. A signal caught in between is held and
// delivered right after the start, so a SIGTERM that arrives while the
// payload is being mounted still reaches the target. SIGHUP and SIGINT
// inherited as ignored (nohup; a background job of a non-interactive shell)
// are left ignored, so the target inherits that, as it would if run
// directly. Other signals inherited as ignored are not: the Go runtime
// installs its own handler for them before any of our code runs and does
// not tell what it replaced (the same holds for the children of any Go
// program).
//
// On linux/amd64 the relay is a small signal handler in assembly
// (signals_amd64.s) that forwards each signal with pidfd_send_signal from
// inside the handler. Installing it costs one rt_sigaction per signal;
// os/signal instead enables each signal with a round trip between two
// threads, some fifty of them, which costs milliseconds on every start. The
// handler also sees siginfo, which os/signal hides: a signal the kernel sent
// (the terminal's ^C, ^\ or window change, sent to our whole foreground
// process group, so the target got its own copy) is not sent a second time,
// while the same signal sent to our pid alone with kill(1) is relayed. A
// signal the target sends to its parent (us) goes on to our parent, whom it
// would have reached had the target been run directly. Other platforms use
// os/signal (signals_other.go), without those distinctions.

// relayed lists the signals passed on to the target: every catchable one
// except those the runtime or job control needs.
func relayed() []syscall.Signal {
	var s []syscall.Signal
	for n := syscall.Signal(1); n <= 64; n++ {
		switch n {
		case unix.SIGKILL, unix.SIGSTOP: // uncatchable
		case unix.SIGCHLD: // about our own children
		case unix.SIGURG: // the Go runtime's preemption signal
		case unix.SIGTSTP, unix.SIGTTIN, unix.SIGTTOU:
			// Left at their default (stop), so job control stops us
			// together with the target, which shares our process group
			// and got the same signal from the terminal.
		case 32, 33: // reserved by the C library for its threads
		case unix.SIGSEGV, unix.SIGBUS, unix.SIGFPE, unix.SIGILL, unix.SIGTRAP, unix.SIGSYS:
			// Faults of our own must crash us, not be relayed.
		default:
			s = append(s, n)
		}
	}
	return s
}

// asSignals converts for os/signal.
func asSignals(sigs []syscall.Signal) []os.Signal {
	out := make([]os.Signal, len(sigs))
	for i, s := range sigs {
		out[i] = s
	}
	return out
}
