package cgroup

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

// fsOps is the seam between the policy and the kernel: every cgroupfs
// access and signal goes through one of these. Tests replace them with a
// fake file system (fake_test.go).
type fsOps struct {
	mkdir   func(dir string) error
	rmdir   func(dir string) error
	read    func(file string) (string, error)
	write   func(file, value string) error
	exists  func(file string) bool
	subdirs func(dir string) ([]string, error) // names of the child cgroups
	kill    func(pid int) error                // SIGKILL
}

var sysFS = fsOps{
	mkdir:   func(dir string) error { return os.Mkdir(dir, 0o755) },
	rmdir:   rmdir,
	read:    read,
	write:   write,
	exists:  func(file string) bool { _, err := os.Lstat(file); return err == nil },
	subdirs: subdirs,
	kill:    func(pid int) error { return unix.Kill(pid, unix.SIGKILL) },
}

func rmdir(dir string) error {
	if err := unix.Rmdir(dir); err != nil {
		return &os.PathError{Op: "rmdir", Path: dir, Err: err}
	}
	return nil
}

func read(file string) (string, error) {
	b, err := os.ReadFile(file)
	return string(b), err
}

// write writes value to a control file in one write(2), as cgroupfs
// wants (each write is one command), without creating or truncating it.
// A refusal names the value: "write 5000 100000 to .../cpu.max: invalid
// argument".
func write(file, value string) error {
	fd, err := unix.Open(file, unix.O_WRONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("write %s to %s: %w", value, file, err)
	}
	defer unix.Close(fd)
	for {
		_, err = unix.Write(fd, []byte(value))
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("write %s to %s: %w", value, file, err)
	}
	return nil
}

func subdirs(dir string) ([]string, error) {
	es, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range es {
		if e.IsDir() {
			names = append(names, e.Name())
		}
	}
	return names, nil
}

// pids parses cgroup.procs: one pid a line.
func pids(text string) []int {
	var ps []int
	for _, f := range strings.Fields(text) {
		if p, err := strconv.Atoi(f); err == nil {
			ps = append(ps, p)
		}
	}
	return ps
}

// field returns the value of key in a flat keyed file ("key value" lines:
// cgroup.events, memory.events, cpu.stat, memory.oom_control).
func field(text, key string) (int64, bool) {
	for _, line := range strings.Split(text, "\n") {
		k, v, ok := strings.Cut(line, " ")
		if ok && k == key {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return n, err == nil
		}
	}
	return 0, false
}

// busy reports an rmdir refused because the cgroup still holds processes
// or child cgroups, or is still being torn down.
func busy(err error) bool {
	return errors.Is(err, syscall.EBUSY) || errors.Is(err, syscall.ENOTEMPTY)
}

// waitFor polls cond, sooner at first, until it holds, fails, or timeout
// passes; it reports whether it held.
func waitFor(timeout time.Duration, cond func() (bool, error)) (bool, error) {
	deadline := time.Now().Add(timeout)
	pause := time.Millisecond
	for {
		ok, err := cond()
		if ok || err != nil {
			return ok, err
		}
		if time.Now().After(deadline) {
			return false, nil
		}
		time.Sleep(pause)
		pause = min(2*pause, 32*time.Millisecond)
	}
}
