package stub

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/parkerpack/parker/cache"
	"github.com/parkerpack/parker/cgroup"
	"github.com/parkerpack/parker/mountns"
	"golang.org/x/sys/unix"
)

// doctor carries out --parker-doctor: it says, a line each, what this host
// allows a run of the packed file, which rung a run would take, and why
// each rung above it is out. It changes nothing but for a moment: the
// namespace it tries is a thread's that ends at once, the cgroup it makes
// is removed, and a missing cache directory is made.
func (r *runner) doctor(w io.Writer) int {
	mode, modeErr := ParseMode(os.Getenv(EnvMode))
	kernel := probeKernel()
	c, cacheErr := cache.Locate(os.Getenv)

	fmt.Fprintf(w, "%s, run as uid %d:\n", filepath.Base(r.self), os.Getuid())
	line := func(k, v string) { fmt.Fprintf(w, "  %-9s %s\n", k+":", v) }
	if kernel == nil {
		line("kernel", "yes: may mount the payload (loop device, squashfs, overlay)")
	} else {
		line("kernel", "no: "+kernel.Error())
	}
	fuse := r.probeFUSE()
	if fuse == nil {
		line("fuse", "yes: may mount the payload by FUSE in a user namespace (served by the helper, under a tmpfs overlay)")
	} else {
		line("fuse", "no: "+fuse.Error())
	}
	switch {
	case cacheErr != nil:
		line("extract", "no: "+cacheErr.Error())
	case isEntry(c, r):
		line("extract", "yes: the payload is extracted in "+filepath.Join(c.Dir, cache.Name(r.t.Digest, r.t.Target)))
	default:
		line("extract", fmt.Sprintf("yes: the first run extracts the payload (%d bytes packed) into %s", r.t.Size, c.Dir))
	}
	line("helper", r.helperVerdict(c, cacheErr))
	line("cleanup", probeCgroup())
	rung := "none: a run fails"
	switch {
	case modeErr != nil:
		rung = "none: " + modeErr.Error()
	case (mode == ModeAuto || mode == ModeKernel) && kernel == nil:
		rung = "kernel"
	case mode == ModeKernel:
		rung = "none: " + EnvMode + "=kernel, and the kernel will not mount"
	case (mode == ModeAuto || mode == ModeFUSE) && fuse == nil:
		rung = "fuse"
	case mode == ModeFUSE:
		rung = "none: " + EnvMode + "=fuse, and FUSE cannot be mounted"
	case cacheErr == nil:
		rung = "extract"
	}
	if modeErr == nil {
		rung += " (" + EnvMode + "=" + map[Mode]string{ModeAuto: "auto", ModeKernel: "kernel", ModeFUSE: "fuse", ModeExtract: "extract"}[mode] + ")"
	}
	line("a run", rung)
	return 0
}

// helperVerdict says where a start of the helper (the FUSE rung's server,
// every --parker- flag, every failure) takes it from: the cache's copy,
// or the packed file, unpacked into memory each time, and why.
func (r *runner) helperVerdict(c *cache.Cache, cacheErr error) string {
	const each = "unpacked into memory at each start"
	raw := int64(r.t.HelperRawSize)
	if raw == 0 {
		raw = int64(r.t.HelperSize)
	}
	switch {
	case r.t.HelperSize == 0:
		return "none: this packed file's stub does everything itself"
	case r.t.HelperDigest == [32]byte{}:
		return each + " (this packed file records no digest to find a copy by: packed by an older parker)"
	case cacheErr != nil:
		return each + " (no cache directory to keep a copy in)"
	}
	p, ok := c.Helper(r.t.HelperDigest, raw)
	if ok {
		return "started from the cache's copy, " + p
	}
	return each + " until the FUSE rung's server, after its first run, writes a copy: " + p
}

// probeFUSE says why a run cannot take the FUSE rung here, or returns nil:
// the packed file's stub (the C stub takes it), /dev/fuse and the
// settings that forbid user namespaces, then a FUSE mount tried in a user
// namespace of a child's (mountns.ProbeFUSE), which shows what a seccomp
// filter or a security module refuses.
func (r *runner) probeFUSE() error {
	// The Go stub takes the rung only in a mount namespace it may make
	// itself (root's, or a container's user namespace's).
	if !r.cStub() && probeMountNS() != nil {
		return errGoStub
	}
	if err := fuseRefused(readSysctl); err != nil {
		return err
	}
	return mountns.ProbeFUSE("/proc/self/exe")
}

// probeKernel tries what the kernel rung needs and says why it cannot
// work here, or returns nil: a mount namespace (on a thread of its own,
// which ends with it), the loop devices, and squashfs and overlayfs. (A
// security module may still refuse the mounts themselves: a run then falls
// back, and says why.)
func probeKernel() error {
	// In a user namespace (rootless podman, unshare -Ur) a mount namespace
	// may be made, but squashfs may not be mounted in it.
	if m, err := mountns.UIDMap(); err == nil && mountns.InUserns() {
		return fmt.Errorf("in a user namespace (uid_map %q), where squashfs cannot be mounted", m)
	}
	if err := probeMountNS(); err != nil {
		why := "a mount namespace: " + err.Error()
		if errors.Is(err, unix.EPERM) {
			why += " (needs CAP_SYS_ADMIN: root, outside a container or with that capability; or a seccomp filter denies it)"
		}
		return errors.New(why)
	}
	f, err := os.OpenFile("/dev/loop-control", os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("loop devices: %w", err)
	}
	f.Close()
	fss, _ := os.ReadFile("/proc/filesystems")
	for _, want := range []string{"squashfs", "overlay"} {
		if !strings.Contains(string(fss), "\t"+want+"\n") {
			return fmt.Errorf("%s is not in /proc/filesystems (not built in, module not loaded)", want)
		}
	}
	return nil
}

// probeMountNS makes a mount namespace on a thread of its own, which ends
// with it, and says whether the kernel let it.
func probeMountNS() error {
	res := make(chan error)
	go func() {
		// Never unlocked: the thread ends with this goroutine, its
		// namespace with it.
		runtime.LockOSThread()
		res <- unix.Unshare(unix.CLONE_NEWNS)
	}()
	return <-res
}

// readSysctl reads a sysctl's value from /proc/sys (name with dots), or
// "" where the kernel has no such setting.
func readSysctl(name string) string {
	b, err := os.ReadFile("/proc/sys/" + strings.ReplaceAll(name, ".", "/"))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// usernsVerdict says whether an unprivileged user may make a user
// namespace here, by the settings that forbid it, as sysctl reads them.
func usernsVerdict(sysctl func(string) string) string {
	switch {
	case sysctl("user.max_user_namespaces") == "0":
		return "are turned off (user.max_user_namespaces=0)"
	case sysctl("kernel.unprivileged_userns_clone") == "0":
		return "are not allowed to unprivileged users (kernel.unprivileged_userns_clone=0)"
	case sysctl("kernel.apparmor_restrict_unprivileged_userns") == "1":
		return "are restricted by AppArmor (kernel.apparmor_restrict_unprivileged_userns=1): " +
			"one may be made, but gets no capabilities in it"
	}
	return "are allowed (a seccomp filter may still refuse them)"
}

// fuseVerdict says whether this user can open /dev/fuse, and what to do
// when not.
func fuseVerdict() string {
	f, err := os.OpenFile("/dev/fuse", os.O_RDWR, 0)
	switch {
	case err == nil:
		f.Close()
		return "opens"
	case errors.Is(err, os.ErrNotExist):
		return "is missing (in a container: run it with --device /dev/fuse)"
	case errors.Is(err, os.ErrPermission):
		mode := ""
		if st, err := os.Stat("/dev/fuse"); err == nil {
			mode = fmt.Sprintf(" (mode %#o; most distributions ship 0666)", st.Mode().Perm())
		}
		return "is not open to this user" + mode
	}
	return "cannot be opened: " + err.Error()
}

// probeCgroup says how a run's processes would be found when it ends.
func probeCgroup() string {
	o, err := cgroup.OptionsFromEnv(os.Getenv)
	if err != nil {
		return "no cgroup: " + err.Error()
	}
	l, err := cgroup.Detect(o)
	var g *cgroup.Group
	if err == nil {
		g, err = cgroup.Create(l, 0, cgroup.Limits{})
	}
	if err != nil {
		return "no cgroup (" + err.Error() + "): on the kernel and FUSE rungs the run's mount namespace tells its processes; " +
			"on the extract rung what the target leaves running stays"
	}
	defer g.Remove()
	return "a cgroup per run: " + g.Mechanism()
}

func isEntry(c *cache.Cache, r *runner) bool {
	st, err := os.Stat(filepath.Join(c.Dir, cache.Name(r.t.Digest, r.t.Target)))
	return err == nil && st.IsDir()
}
