package supervisor

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The cleanup sidecar.
//
// Launch starts it just before the stub execs the target. It is started in
// two steps, each an exec of this same program (/proc/self/exe, which is a
// Go program on every path that gets here: the helper, the Go stub, or
// parker itself): a launcher, our child, which starts the sidecar in a
// session of its own and exits at once, and which we reap before the
// exec. So the sidecar is nobody's child but init's (or the nearest
// subreaper's): the target never sees it among its children, never reaps
// it with a wait for any child, and a kill of the target's process group
// does not reach it.
//
// The sidecar holds a pidfd of the target (this process, whose pid the exec
// keeps) and the descriptors it is given to hold (the --parker-overlay
// lock). Its standard input and output are /dev/null, so it never holds a
// pipe of the caller's open; its standard error is ours, for its one line
// about a limit the target hit. When the target ends, by any means, it
// kills what the target left and exits, which also drops what it holds.
// If it dies first, the target runs on unaffected.
//
// It is started from the run's locked thread, so it is in the run's mount
// namespace, and the namespace (the view's mounts, the loop device) goes
// away when the sidecar exits rather than on the target's exit path: the
// caller sees the target's end without waiting for the unmounting. Being in
// the namespace also tells it which processes are the run's: those in the
// same mount namespace.

// EnvSidecar marks a process started by Launch; RunSidecar reads it. Its
// value is the stage ("launch" or "watch") and the options.
const EnvSidecar = "PARKER_SIDECAR"

// Sidecar fds, after standard input, output and error.
const (
	sidecarPidfd = 3 // the target's pidfd
	sidecarHeld  = 4 // the first held descriptor
)

// Sidecar says what the sidecar does.
type Sidecar struct {
	// KeepChildren leaves what the target started running when it ends.
	KeepChildren bool
	// Verbose logs what the sidecar did, on standard error.
	Verbose bool
	// Hold are descriptors the sidecar keeps open until it ends.
	Hold []int
}

func (s Sidecar) env(stage string) string {
	v := EnvSidecar + "=" + stage
	if s.KeepChildren {
		v += ",keep"
	}
	if s.Verbose {
		v += ",verbose"
	}
	return v + ",hold=" + strconv.Itoa(len(s.Hold))
}

// Mechanism names how the sidecar finds the run's processes, for
// PARKER_VERBOSE.
func (s Sidecar) Mechanism() string {
	if s.KeepChildren {
		return "none: --parker-keep-children"
	}
	return "by mount namespace (/proc/PID/ns/mnt)"
}

// Launch starts the sidecar for this process, which is about to exec the
// target. It returns once the sidecar runs.
func Launch(s Sidecar) error {
	pidfd, err := unix.PidfdOpen(os.Getpid(), 0)
	if err != nil {
		return fmt.Errorf("start the cleanup sidecar: pidfd_open: %w", err)
	}
	defer unix.Close(pidfd)
	null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("start the cleanup sidecar: %w", err)
	}
	defer null.Close()
	files := []uintptr{null.Fd(), null.Fd(), 2, uintptr(pidfd)}
	for _, fd := range s.Hold {
		files = append(files, uintptr(fd))
	}
	pid, err := syscall.ForkExec("/proc/self/exe", []string{"parker-sidecar"}, &syscall.ProcAttr{
		Env:   []string{s.env("launch")},
		Files: files,
	})
	if err != nil {
		return fmt.Errorf("start the cleanup sidecar: %w", err)
	}
	var ws unix.WaitStatus
	for {
		_, err = unix.Wait4(pid, &ws, 0, nil)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil || !ws.Exited() || ws.ExitStatus() != 0 {
		return fmt.Errorf("start the cleanup sidecar: launcher ended with %v (%v)", ws, err)
	}
	return nil
}

// RunSidecar runs the sidecar's stages when this process was started as
// one, and then exits; otherwise it returns at once. Every main that can be
// /proc/self/exe of a stub calls it first.
func RunSidecar() {
	v, ok := os.LookupEnv(EnvSidecar)
	if !ok {
		return
	}
	opts := strings.Split(v, ",")
	var s Sidecar
	held := 0
	for _, o := range opts[1:] {
		switch {
		case o == "keep":
			s.KeepChildren = true
		case o == "verbose":
			s.Verbose = true
		case strings.HasPrefix(o, "hold="):
			held, _ = strconv.Atoi(strings.TrimPrefix(o, "hold="))
		}
	}
	switch opts[0] {
	case "launch":
		os.Exit(launchSidecar(s, held))
	case "watch":
		os.Exit(watch(s))
	}
	fmt.Fprintf(os.Stderr, "parker: %s=%s: not a sidecar stage\n", EnvSidecar, v)
	os.Exit(125)
}

// launchSidecar is the launcher: it starts the sidecar in a new session,
// with the descriptors it was given, and exits.
func launchSidecar(s Sidecar, held int) int {
	files := []uintptr{0, 1, 2, sidecarPidfd}
	for i := 0; i < held; i++ {
		files = append(files, uintptr(sidecarHeld+i))
	}
	_, err := syscall.ForkExec("/proc/self/exe", []string{"parker-sidecar"}, &syscall.ProcAttr{
		Env:   []string{s.env("watch")},
		Files: files,
		Sys:   &syscall.SysProcAttr{Setsid: true},
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "parker: start the cleanup sidecar: %v\n", err)
		return 1
	}
	return 0
}

// watch is the sidecar: it waits for the target to end, then kills what it
// left.
func watch(s Sidecar) int {
	fds := []unix.PollFd{{Fd: sidecarPidfd, Events: unix.POLLIN}}
	for {
		_, err := unix.Poll(fds, -1)
		if err == nil {
			break
		}
		if !errors.Is(err, unix.EINTR) {
			fmt.Fprintf(os.Stderr, "parker: cleanup sidecar: wait for the target: %v\n", err)
			return 1
		}
	}
	if s.KeepChildren {
		return 0
	}
	n := killNamespace()
	if s.Verbose {
		fmt.Fprintf(os.Stderr, "parker: cleanup: killed %d processes left by the target (%s)\n", n, s.Mechanism())
	}
	return 0
}

// killNamespace kills every process in our mount namespace but us, until
// none is left (a process may fork while we kill), and returns how many it
// killed. A killed process leaves the namespace as it dies; one still dying
// is not killed again, only waited for.
func killNamespace() int {
	self, err := os.Readlink("/proc/self/ns/mnt")
	if err != nil {
		return 0
	}
	me := os.Getpid()
	killed := map[int]bool{}
	deadline := time.Now().Add(10 * time.Second) // a process stuck in the kernel
	for time.Now().Before(deadline) {
		left, fresh := 0, 0
		for _, pid := range pids() {
			if pid == me {
				continue
			}
			if ns, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/ns/mnt"); err != nil || ns != self {
				continue
			}
			left++
			if !killed[pid] && unix.Kill(pid, unix.SIGKILL) == nil {
				killed[pid] = true
				fresh++
			}
		}
		if left == 0 {
			break
		}
		if fresh == 0 {
			time.Sleep(time.Millisecond) // only the dying are left
		}
	}
	return len(killed)
}

// pids lists the processes in /proc.
func pids() []int {
	d, err := os.Open("/proc")
	if err != nil {
		return nil
	}
	defer d.Close()
	names, _ := d.Readdirnames(-1)
	out := make([]int, 0, len(names))
	for _, n := range names {
		if pid, err := strconv.Atoi(n); err == nil {
			out = append(out, pid)
		}
	}
	return out
}
