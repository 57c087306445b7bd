//go:build !amd64

package supervisor

import (
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/sys/unix"
)

// Signals are the signals caught for relaying to the target.
type Signals struct {
	ch    chan os.Signal
	ready chan struct{}
}

// Catch starts catching every signal Run relays, in the background, and
// returns at once: os/signal enables each signal with a round trip between
// two threads, which costs milliseconds; started before mounting, it runs
// alongside it. Signals that arrive before the target starts are relayed to
// it once it has.
func Catch() *Signals {
	s := &Signals{ch: make(chan os.Signal, 64), ready: make(chan struct{})}
	go func() {
		var sigs []syscall.Signal
		for _, sig := range relayed() {
			if !signal.Ignored(sig) { // ignored when we started: leave it so
				sigs = append(sigs, sig)
			}
		}
		signal.Notify(s.ch, asSignals(sigs)...)
		close(s.ready)
	}()
	return s
}

// Stop stops catching the signals; any that arrives later has its default
// effect again.
func (s *Signals) Stop() {
	<-s.ready
	signal.Stop(s.ch)
}

// relayTo relays caught signals to the started target until the returned
// function is called.
func (s *Signals) relayTo(pid, pidfd int) func() {
	<-s.ready
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-done:
				return
			case sig := <-s.ch:
				if !fromTerminal(sig.(syscall.Signal)) {
					unix.PidfdSendSignal(pidfd, sig.(syscall.Signal), nil, 0)
				}
			}
		}
	}()
	return func() { close(done) }
}

// fromTerminal reports whether sig is one the terminal sends to its whole
// foreground process group, and we are in that group: then the target has
// it already. (os/signal hides siginfo, which would tell a kill(1) of our
// pid alone apart; such a signal is then lost.)
func fromTerminal(sig syscall.Signal) bool {
	if sig != unix.SIGINT && sig != unix.SIGQUIT && sig != unix.SIGWINCH {
		return false
	}
	for fd := 0; fd <= 2; fd++ {
		pgrp, err := unix.IoctlGetInt(fd, unix.TIOCGPGRP)
		if err == nil {
			return pgrp == unix.Getpgrp()
		}
	}
	return false
}
