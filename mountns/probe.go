package mountns

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// EnvProbe marks a process started by ProbeFUSE.
const EnvProbe = "PARKER_PROBE_FUSE"

// ProbeFUSE tries what the FUSE rung does, for --parker-doctor: a user
// namespace where the caller's user and group alone are mapped, to
// themselves, and a mount namespace it owns; there /dev/fuse opened and a
// FUSE file system mounted, detached (no server needed: nothing reads
// it). It runs exe (a program that calls RunProbe first) in those
// namespaces, since only a single-threaded process can enter a user
// namespace, and the Go runtime's never is. It returns nil, or why not.
func ProbeFUSE(exe string) error {
	uid, gid := os.Geteuid(), os.Getegid()
	c := exec.Command(exe)
	c.Args = []string{"parker-probe"}
	c.Env = []string{EnvProbe + "=1"}
	var out bytes.Buffer
	c.Stdout, c.Stderr = &out, &out
	c.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  unix.CLONE_NEWUSER | unix.CLONE_NEWNS,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: uid, HostID: uid, Size: 1}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: gid, HostID: gid, Size: 1}},
		// The probe mounts after its exec, as a user other than root in
		// the namespace: it keeps CAP_SYS_ADMIN as an ambient capability.
		AmbientCaps: []uintptr{unix.CAP_SYS_ADMIN},
	}
	err := c.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ee):
		return errors.New(strings.TrimSpace(out.String()))
	}
	return fmt.Errorf("a user namespace: %w", unwrapStart(err))
}

// unwrapStart is the errno behind a failed start.
func unwrapStart(err error) error {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno
	}
	return err
}

// RunProbe does ProbeFUSE's work in its namespaces when this process was
// started by it, and exits; otherwise it returns at once.
func RunProbe() {
	if os.Getenv(EnvProbe) != "1" {
		return
	}
	dev, err := unix.Open("/dev/fuse", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		fmt.Printf("open /dev/fuse in a user namespace: %v\n", err)
		os.Exit(1)
	}
	m, err := MountFUSE(dev, os.Geteuid(), os.Getegid())
	if err != nil {
		fmt.Printf("mount FUSE in a user namespace: %s\n", strings.ReplaceAll(err.Error(), " ("+ErrDenied.Error()+")", ""))
		os.Exit(1)
	}
	unix.Close(m)
	os.Exit(0)
}
