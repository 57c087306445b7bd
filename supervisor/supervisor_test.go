package supervisor

import (
	"errors"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestRunStatus(t *testing.T) {
	for _, tc := range []struct {
		script string
		want   Status
	}{
		{"exit 0", Status{}},
		{"exit 3", Status{Code: 3}},
		{"exit 255", Status{Code: 255}},
		{"kill -TERM $$", Status{Signal: syscall.SIGTERM}},
		{"kill -KILL $$", Status{Signal: syscall.SIGKILL}},
	} {
		st, err := Run(Config{Path: "/bin/sh", Args: []string{"sh", "-c", tc.script}})
		if err != nil || st != tc.want {
			t.Errorf("%s: got %+v, %v; want %+v", tc.script, st, err, tc.want)
		}
	}
	if got := (Status{Signal: syscall.SIGINT}).ExitCode(); got != 130 {
		t.Errorf("SIGINT exit code %d, want 130", got)
	}
}

func TestRunStartErrors(t *testing.T) {
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
		_, err := Run(Config{Path: tc.path, Args: []string{"x"}})
		var se *StartError
		if !errors.As(err, &se) || se.Missing() != tc.missing {
			t.Errorf("%s: got %v, want a StartError, missing %v", tc.path, err, tc.missing)
		}
	}
}

// TestRunKillsOrphans: what the target leaves running is killed when it
// ends, including a daemon that left its session.
func TestRunKillsOrphans(t *testing.T) {
	pidFile := t.TempDir() + "/pids"
	st, err := Run(Config{Path: "/bin/sh", Args: []string{"sh", "-c",
		"sleep 100 & echo $! > " + pidFile + "; setsid sh -c 'sleep 100' & echo $! >> " + pidFile + "; exit 4"}})
	if err != nil || st.Code != 4 {
		t.Fatalf("got %+v, %v", st, err)
	}
	b, _ := os.ReadFile(pidFile)
	for _, f := range strings.Fields(string(b)) {
		pid, _ := strconv.Atoi(f)
		if err := syscall.Kill(pid, 0); err == nil {
			t.Errorf("orphan %d still alive", pid)
		}
	}
	// KeepOrphans leaves them.
	st, err = Run(Config{Path: "/bin/sh", KeepOrphans: true, Args: []string{"sh", "-c", "sleep 0.3 & echo $! > " + pidFile}})
	b, _ = os.ReadFile(pidFile)
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || syscall.Kill(pid, 0) != nil {
		t.Errorf("KeepOrphans: orphan %d gone (%v)", pid, err)
	}
	time.Sleep(400 * time.Millisecond)
	var ws syscall.WaitStatus
	syscall.Wait4(pid, &ws, 0, nil) // we are its subreaper from the first run
}

func TestRelayed(t *testing.T) {
	have := map[syscall.Signal]bool{}
	for _, s := range relayed() {
		have[s] = true
	}
	for _, s := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGUSR1, syscall.SIGCONT, syscall.SIGWINCH, 34, 64} {
		if !have[s] {
			t.Errorf("%v not relayed", s)
		}
	}
	for _, s := range []syscall.Signal{syscall.SIGKILL, syscall.SIGSTOP, syscall.SIGCHLD, syscall.SIGURG, syscall.SIGTSTP, syscall.SIGSEGV} {
		if have[s] {
			t.Errorf("%v relayed", s)
		}
	}
}

// TestSignalHeldUntilStart: a signal that arrives after Catch but before the
// target exists is delivered to the target once it starts (here it kills
// it: the default action of SIGUSR1).
func TestSignalHeldUntilStart(t *testing.T) {
	sigs := Catch()
	defer sigs.Stop()
	// From another process: one we sent ourselves would be taken for a
	// signal of our own making and dropped.
	if out, err := exec.Command("kill", "-USR1", strconv.Itoa(os.Getpid())).CombinedOutput(); err != nil {
		t.Fatalf("kill: %v %s", err, out)
	}
	start := time.Now()
	st, err := Run(Config{Path: "/bin/sleep", Args: []string{"sleep", "10"}, Signals: sigs})
	if err != nil || st.Signal != syscall.SIGUSR1 {
		t.Errorf("got %+v, %v; want death by SIGUSR1", st, err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the held signal took %v to arrive", d)
	}
}
