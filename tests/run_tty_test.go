package tests

// The packed file on a terminal: the target keeps it, and job control
// (^C, ^Z, fg) acts on the packed job as on the target run directly.

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// term is the master side of a pseudo-terminal, read in the background so
// a test never blocks on it.
type term struct {
	*os.File
	ch  chan []byte
	buf []byte // read but not yet consumed
}

// onPty starts the packed file f with args on a new pseudo-terminal, as the
// foreground job of its own session, and returns the terminal's master.
func onPty(t *testing.T, f string, args ...string) (*term, *exec.Cmd) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("no pseudo-terminal: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	s, err := os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c := exec.Command(f, args...)
	c.Stdin, c.Stdout, c.Stderr = s, s, s
	c.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	tm := &term{File: m, ch: make(chan []byte, 64)}
	go func() {
		defer close(tm.ch)
		for {
			b := make([]byte, 4096)
			n, err := m.Read(b)
			if n > 0 {
				tm.ch <- b[:n]
			}
			if err != nil {
				return
			}
		}
	}()
	return tm, c
}

// readUntil consumes the terminal's output up to and including want (10 s
// at most) and returns it.
func readUntil(t *testing.T, m *term, want string) string {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		if i := bytes.Index(m.buf, []byte(want)); i >= 0 {
			out := string(m.buf[:i+len(want)])
			m.buf = m.buf[i+len(want):]
			return out
		}
		select {
		case b, ok := <-m.ch:
			if !ok {
				t.Fatalf("terminal closed while waiting for %q; got %q", want, m.buf)
			}
			m.buf = append(m.buf, b...)
		case <-timeout:
			t.Fatalf("waiting for %q on the terminal: got %q", want, m.buf)
		}
	}
}

// TestRunTerminal runs the packed file on a pseudo-terminal, as its
// session's foreground job: the target keeps the terminal (same process
// group, which is the foreground one), reads from it, and a ^C reaches it
// exactly once.
func TestRunTerminal(t *testing.T) {
	needRoot(t, "running a packed file")
	f := toolPacked(t)
	run := func(args ...string) (*term, *exec.Cmd) { return onPty(t, f, args...) }
	readUntil := func(m *term, want string) string { return readUntil(t, m, want) }

	m, c := run("tty")
	out := readUntil(m, "tpgrp=")
	out += readUntil(m, "\n")
	m.Write([]byte("typed\n"))
	out += readUntil(m, "read=typed")
	c.Wait()
	m.Close()
	var isatty, pgrp, tpgrp int
	i := strings.Index(out, "isatty=")
	fmt.Sscanf(out[i:], "isatty=%d pgrp=%d tpgrp=%d", &isatty, &pgrp, &tpgrp)
	if isatty != 1 || pgrp != tpgrp || pgrp != c.Process.Pid {
		t.Errorf("target on a terminal: isatty=%d pgrp=%d foreground=%d (packed file pid %d); want the caller's foreground group", isatty, pgrp, tpgrp, c.Process.Pid)
	}

	m, c = run("sigcount")
	readUntil(m, "ready")
	m.Write([]byte{3}) // ^C
	out = readUntil(m, "count=")
	out += readUntil(m, "\n")
	c.Wait()
	m.Close()
	if !strings.Contains(out, "count=1") {
		t.Errorf("^C on the terminal: target got %q, want exactly one SIGINT", out)
	}
}

// TestRunJobControl: in an interactive shell, ^Z stops the packed job
// (the packed file and its target together), fg resumes it, and ^C ends
// it as it would end the target run directly ($? = 130).
func TestRunJobControl(t *testing.T) {
	needRoot(t, "running a packed file")
	f := toolPacked(t)
	m, c := onPty(t, "/bin/bash", "--norc", "--noprofile", "-i")
	defer c.Process.Kill()
	m.Write([]byte("PS1='$ '; " + f + " sleep 20000\n"))
	readUntil(t, m, "sleeping") // the target runs
	m.Write([]byte{26})         // ^Z
	readUntil(t, m, "Stopped")
	m.Write([]byte("fg\n"))
	// Both processes exist now: a ^C that overtakes the SIGCONT stays
	// pending until they run again.
	time.Sleep(200 * time.Millisecond)
	m.Write([]byte{3})                      // ^C
	m.Write([]byte("echo R$((1+1))C=$?\n")) // the echoed line must not match
	readUntil(t, m, "R2C=")
	if out := readUntil(t, m, "\n"); strings.TrimSpace(out) != "130" {
		t.Errorf("after ^C: $? = %q, want 130", out)
	}
	m.Write([]byte("exit\n"))
	c.Wait()
}

// TestRunInteractivePython: python's REPL, packed, on a terminal, behaves
// as if run directly: prompts, evaluates, takes ^C as one
// KeyboardInterrupt, exits on exit().
func TestRunInteractivePython(t *testing.T) {
	needRoot(t, "running a packed file")
	host := pythonPacked(t)
	m, c := onPty(t, filepath.Join(host, "pythond"), "-q")
	defer c.Process.Kill()
	readUntil(t, m, ">>> ")
	m.Write([]byte("print(6*7)\n"))
	readUntil(t, m, "42")
	readUntil(t, m, ">>> ")
	m.Write([]byte("import time; time.sleep(30)\n"))
	time.Sleep(300 * time.Millisecond)
	m.Write([]byte{3}) // ^C
	out := readUntil(t, m, ">>> ")
	if strings.Count(out, "KeyboardInterrupt") != 1 {
		t.Errorf("^C: want one KeyboardInterrupt, got %q", out)
	}
	m.Write([]byte("exit(5)\n"))
	c.Wait()
	if c.ProcessState.ExitCode() != 5 {
		t.Errorf("exit(5): caller saw %v", c.ProcessState)
	}
}
