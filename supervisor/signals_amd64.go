package supervisor

import (
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// State shared with the handler in signals_amd64.s, which reads and writes
// it with atomic instructions only.
var (
	// relayPending has bit N-1 set for each signal N caught and not yet
	// delivered (no target yet, or delivery in progress).
	relayPending uint64
	// relaySender[N-1] is the pid that sent the held signal N (0: the
	// kernel), so that one the target sends its parent before relayTo
	// knows its pid still goes to our parent, not back to the target.
	relaySender [64]int32
	relayPidfd  int32 = -1 // the target's pidfd, once it has started
	relayPid    int32      // the target's pid, once it has started
	relaySelf   int32      // our own pid
)

// relayHandler and relayRestorer are never called from Go.
func relayHandler()
func relayRestorer()

// relayAddrs returns the addresses of the assembly entry points themselves
// (a Go func value of an assembly function points at an ABI wrapper, which
// must not run on a signal stack).
func relayAddrs() (handler, restorer uintptr)

// kernelSigaction is struct sigaction as the rt_sigaction system call takes
// it on amd64.
type kernelSigaction struct {
	handler  uintptr
	flags    uint64
	restorer uintptr
	mask     uint64
}

const (
	saSiginfo  = 0x4
	saOnstack  = 0x08000000
	saRestart  = 0x10000000
	saRestorer = 0x04000000
	sigIgn     = 1
)

func rtSigaction(sig syscall.Signal, act, old *kernelSigaction) syscall.Errno {
	_, _, e := unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(sig),
		uintptr(unsafe.Pointer(act)), uintptr(unsafe.Pointer(old)), 8, 0, 0)
	return e
}

// Signals are the signals caught for relaying to the target.
type Signals struct {
	sigs []syscall.Signal
	old  []kernelSigaction
}

// Catch starts catching every signal Run relays, so that none sent before
// the target exists kills us and orphans it. It is cheap (one system call
// per signal) and should come early, before mounting.
func Catch() *Signals {
	atomic.StoreInt32(&relaySelf, int32(unix.Getpid()))
	handler, restorer := relayAddrs()
	act := kernelSigaction{
		handler: handler,
		// On the thread's alternate stack, which every Go thread has:
		// goroutine stacks are too small for a signal frame.
		flags:    saSiginfo | saOnstack | saRestart | saRestorer,
		restorer: restorer,
		mask:     ^uint64(0), // no nesting
	}
	s := &Signals{}
	for _, sig := range relayed() {
		var old kernelSigaction
		if rtSigaction(sig, nil, &old) != 0 || old.handler == sigIgn {
			continue // ignored when we started: leave it so
		}
		if rtSigaction(sig, &act, nil) == 0 {
			s.sigs = append(s.sigs, sig)
			s.old = append(s.old, old)
		}
	}
	return s
}

// Stop stops catching the signals; any that arrives later has its earlier
// effect again.
func (s *Signals) Stop() {
	for i, sig := range s.sigs {
		rtSigaction(sig, &s.old[i], nil)
	}
	s.sigs, s.old = nil, nil
	atomic.StoreInt32(&relayPidfd, -1)
	atomic.StoreInt32(&relayPid, 0)
}

// relayTo points the relay at the started target and delivers what was
// held. It returns a function that detaches the relay again.
func (s *Signals) relayTo(pid, pidfd int) func() {
	atomic.StoreInt32(&relayPid, int32(pid))
	atomic.StoreInt32(&relayPidfd, int32(pidfd))
	// The handler marks a signal pending before it looks for the pidfd,
	// and takes pending bits with an atomic swap: every held signal is
	// delivered once, by it or by us.
	held := atomic.SwapUint64(&relayPending, 0)
	for n := 0; held != 0; n++ {
		if held&1 != 0 {
			sig := syscall.Signal(n + 1)
			if atomic.LoadInt32(&relaySender[n]) == int32(pid) {
				// Sent by the target to its parent before this
				// point: it goes on as the handler would send it.
				if pp := unix.Getppid(); pp > 1 {
					unix.Kill(pp, sig)
				}
			} else {
				unix.PidfdSendSignal(pidfd, sig, nil, 0)
			}
		}
		held >>= 1
	}
	return func() { atomic.StoreInt32(&relayPidfd, -1) }
}
