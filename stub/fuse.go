package stub

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/parkerpack/parker/mountns"
	"github.com/parkerpack/parker/supervisor"
	"golang.org/x/sys/unix"
)

// The FUSE rung (R1). Only a single-threaded process can enter a user
// namespace, and the target must run in the stub's place: so the C stub
// takes it for a plain run (stub/cstub/fuse.c), and makes the user
// namespace for the runs the Go code has (enterUserns), which then mounts
// the view there as the C stub would (setupFUSE). A packed file with the
// Go stub has no such way. What is here also says why a run cannot take
// it: the extraction cache's warning, PARKER_MODE=fuse, --parker-doctor.

// EnvUserns is the Go code's request to the C stub for a user namespace
// ("enter"), and the C stub's answer ("entered").
const EnvUserns = "PARKER_USERNS"

// goBuildInfo starts the build information every Go executable carries
// (its .go.buildinfo section), the C stub none.
var goBuildInfo = []byte("\xff Go buildinf:")

// cStub reports whether the packed file starts with the C stub: a small
// program that is not Go's (the Go stub is megabytes).
func (r *runner) cStub() bool {
	if r.t.StubSize == 0 || r.t.StubSize > 1<<20 {
		return false
	}
	b := make([]byte, r.t.StubSize)
	f := r.file
	if f == nil {
		var err error
		if f, err = os.Open(r.self); err != nil {
			return false
		}
		defer f.Close()
	}
	if _, err := f.ReadAt(b, 0); err != nil && err != io.EOF {
		return false
	}
	return !bytes.Contains(b, goBuildInfo)
}

// fuseRefused says why the FUSE rung is out for this user, by what can be
// read cheaply (no namespace is tried): /dev/fuse, and the settings that
// forbid user namespaces. It returns nil when nothing here forbids it.
func fuseRefused(sysctl func(string) string) error {
	if err := unix.Access("/dev/fuse", unix.R_OK|unix.W_OK); err != nil {
		return fuseRefusal("/dev/fuse " + fuseVerdict())
	}
	if !usernsAllowed(sysctl) {
		return fuseRefusal("user namespaces " + usernsVerdict(sysctl))
	}
	return nil
}

// fuseRefusal is what fuseRefused finds: the host forbids the rung.
type fuseRefusal string

func (e fuseRefusal) Error() string { return string(e) }

// usernsAllowed reports whether nothing in sysctl forbids an unprivileged
// user a user namespace with capabilities in it.
func usernsAllowed(sysctl func(string) string) bool {
	return strings.HasPrefix(usernsVerdict(sysctl), "are allowed")
}

// errGoStub: a packed file with the Go stub has no C stub to enter a
// user namespace for it.
var errGoStub = errors.New("this packed file has the Go stub (packed by a parker built without a C compiler), " +
	"which cannot take the FUSE rung: only a single-threaded program can enter a user namespace")

// ServesFUSE: this program serves the FUSE rung's payload when started
// as its server (stub/userspace's RunFUSEServer, first thing in main):
// the helper, and parker itself. The lean Go stub hands a run that needs
// a server to the helper.
var ServesFUSE bool

// fuseForUs says why this run cannot have a user namespace made for the
// FUSE rung (by the C stub: enterUserns), or returns nil.
func (r *runner) fuseForUs() error {
	if !r.cStub() {
		return errGoStub
	}
	return fuseRefused(readSysctl)
}

// whyNotFUSE says why this run is not on the FUSE rung: what stops it,
// or else the step the C stub's attempt failed at (failed).
func (r *runner) whyNotFUSE(failed string) error {
	if err := r.fuseForUs(); err != nil || failed == "" {
		return err
	}
	return errors.New(failed)
}

// rungEnv is what the C stub says of the FUSE rung, in the environment.
type rungEnv struct {
	fuseTried bool   // it tried the rung, and failed
	failed    string // at which step, and how
	kernel    string // what refused the kernel's rung before
	entered   bool   // it made the user namespace we asked for
	// The cache directory it found before the user namespace it hands
	// us the run in, "" for none (see locateCache).
	cacheDir string
}

// takeRungEnv reads the C stub's word on the FUSE rung and takes it out
// of the environment, which the target inherits.
func takeRungEnv() rungEnv {
	var e rungEnv
	e.failed, e.fuseTried = os.LookupEnv(EnvFUSEFailed)
	e.kernel = os.Getenv(EnvKernelRefused)
	if e.fuseTried && e.kernel == "" && os.Getenv(EnvUserns) != "entered" {
		e.kernel = "the kernel's rung not tried" // PARKER_MODE=fuse
	}
	e.entered = os.Getenv(EnvUserns) == "entered"
	if e.entered || e.fuseTried {
		e.cacheDir = os.Getenv(EnvCacheChecked)
	}
	for _, k := range []string{EnvFUSEFailed, EnvKernelRefused, EnvUserns, EnvCacheChecked} {
		os.Unsetenv(k)
	}
	return e
}

// enterUserns hands the run to the packed file's C stub, executing it
// again with PARKER_USERNS=enter: it makes a user namespace and a mount
// namespace, as for its own FUSE rung, and hands the run back to the
// helper there, with CAP_SYS_ADMIN (stub/cstub/fuse.c). The caller's
// signal state goes with it, and kernelErr, why the kernel's rung was
// out. It returns only on failure.
func (r *runner) enterUserns(kernelErr error) int {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, EnvUserns+"=") && !strings.HasPrefix(kv, EnvSignals+"=") &&
			!strings.HasPrefix(kv, EnvKernelRefused+"=") {
			env = append(env, kv)
		}
	}
	// Should the C stub fail, it hands the run back saying so, and this
	// says why the kernel's rung was out.
	env = append(env, EnvUserns+"=enter", EnvKernelRefused+"="+deniedText(kernelErr))
	if r.signals != nil {
		env = append(env, EnvSignals+"="+r.signals.String())
	}
	r.step("hand the run to the C stub, for a user namespace")
	err := execveat(int(r.file.Fd()), r.args, env)
	return r.fail(fmt.Errorf("execute the packed file again, for a user namespace: %w", err))
}

// setupFUSE mounts the view o describes with the payload served by FUSE,
// the server a detached process of the helper's (RunFUSEServer).
func (r *runner) setupFUSE(o mountns.Options, quiet bool) error {
	if !ServesFUSE {
		return errNeedCodecs
	}
	t := time.Now()
	serve := func(dev int) error { return r.startFUSEServer(dev, quiet) }
	lower, err := mountns.MountFUSELower(os.Geteuid(), os.Getegid(), serve)
	if err != nil {
		return err
	}
	defer unix.Close(lower)
	r.logf("FUSE mount and server", time.Since(t))
	o.Lower = lower
	o.UserXattr = mountns.InUserns()
	return mountns.Setup(o)
}

// startFUSEServer starts the FUSE server on connection dev, detached
// (supervisor.Detach), as the C stub does (fuse.c: fuse_server_enter):
// from another thread than this one, which is in the run's mount
// namespace, so that the server is not (the run's cleanup and cgroup leave
// it; it ends when the mount does). Its standard error, for its one line
// about a damaged image, is ours, but where the run may outlive the target
// (--parker-keep-children): a pipe of the caller's would stay open as long.
func (r *runner) startFUSEServer(dev int, quiet bool) error {
	null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer null.Close()
	stderr := uintptr(2)
	if quiet {
		stderr = null.Fd()
	}
	done := make(chan error, 1)
	go func() {
		_, err := supervisor.Detach("/proc/self/exe", "parker-fuse", []string{EnvFUSEServer + "=" + r.self},
			[]uintptr{null.Fd(), null.Fd(), stderr, uintptr(dev), r.file.Fd()})
		done <- err
	}()
	return <-done
}

// dropKept drops the capabilities the C stub kept for the helper in the
// user namespace it made (ambient, and inheritable so that they could
// be), which are not the target's. Capabilities are a thread's, and so is
// the exec: the goroutine stays on this thread.
func dropKept() error {
	runtime.LockOSThread()
	if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil {
		return fmt.Errorf("drop ambient capabilities: %w", err)
	}
	h := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var d [2]unix.CapUserData
	if err := unix.Capget(&h, &d[0]); err != nil {
		return fmt.Errorf("capget: %w", err)
	}
	d[0].Inheritable, d[1].Inheritable = 0, 0
	if err := unix.Capset(&h, &d[0]); err != nil {
		return fmt.Errorf("drop inheritable capabilities: %w", err)
	}
	return nil
}
