// Package mountns gives a packed executable its view of the file system: it
// attaches the payload with a loop device, mounts it (squashfs) under a
// writable overlay, and does all of this in a private mount namespace that
// only the calling thread and the processes it starts belong to.
//
// The syscalls sit in thin wrappers named for their effect (loop.go,
// mount.go); the policy above them (retrying the free-device race, falling
// back to the pre-5.8 loop ioctls, classifying refusals as ErrDenied so a
// user-space extraction fallback can slot in) is in AttachLoop and Setup.
//
// Limits: Linux only; needs CAP_SYS_ADMIN in the initial user namespace (a
// loop-backed squashfs cannot be mounted from a user namespace), and
// overlayfs with "lowerdir+" (Linux 6.5+; older kernels get the joined
// lowerdir option); needs /proc, where the layers are named
// (/proc/self/fd/N) and, in a chroot, the namespace (Enter).
package mountns

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Enter moves the calling goroutine's OS thread into a new, private mount
// namespace and leaves the goroutine locked to that thread for good.
//
// Go schedules goroutines on threads at will, and unshare(CLONE_NEWNS) acts
// on one thread only (it also unshares that thread's cwd and root, as
// CLONE_NEWNS implies CLONE_FS). So the caller must do every later mount,
// and start the target, from this same goroutine; the thread never returns
// to the scheduler (Go kills a thread whose goroutine exits while locked),
// so no unrelated goroutine ever runs in the namespace. New runtime threads
// are cloned from Go's template thread, not from this one.
func Enter() error {
	runtime.LockOSThread()
	if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
		return denied("unshare mount namespace", err)
	}
	// The copies of the host's mounts are in the host's peer groups; make
	// them private so nothing we mount propagates back to the host.
	err := makePrivate()
	if errors.Is(err, unix.EINVAL) {
		err = makePrivateInChroot()
	}
	if err != nil {
		return denied("make mounts private", err)
	}
	return nil
}

// InUserns reports whether this process is in a user namespace other
// than the host's: its uid_map maps less than every id to itself.
func InUserns() bool {
	m, _ := UIDMap()
	return m != "0 0 4294967295"
}

// UIDMap is this process's /proc/self/uid_map, its fields joined by one
// space.
func UIDMap() (string, error) {
	b, err := os.ReadFile("/proc/self/uid_map")
	return strings.Join(strings.Fields(string(b)), " "), err
}

// nsSelf is the calling thread's mount namespace.
const nsSelf = "/proc/thread-self/ns/mnt"

// makePrivateInChroot does what makePrivate does, for a root that is not
// a mount point: in a chroot (sbuild, pbuilder, mock), whose root is a
// directory inside some mount. Call it only after makePrivate failed with
// EINVAL, so that the common case costs nothing more.
//
// The kernel changes a mount's propagation only when given the mount's
// root (do_change_type and mount_setattr in fs/namespace.c: EINVAL
// otherwise), and the mount holding our root has its root above ours,
// where no path of ours reaches: ".." stops at the root (follow_dotdot in
// fs/namei.c), and /proc/self/mountinfo leaves out the mounts outside it.
// Yet that mount is the one that matters: Setup attaches the overlay to
// it (or to a mount below it), and while it shares a peer group with the
// host's copy, attaching there attaches a copy on the host too
// (attach_recursive_mnt propagates to every peer of the parent mount).
//
// So this thread steps out to the namespace's root for a moment:
// setns(2) into the mount namespace it is already in sets its root and
// working directory to that namespace's root (mntns_install; it needs
// CAP_SYS_CHROOT, and a file system context of the thread's own, which
// unshare(CLONE_NEWNS) gave it). There makePrivate works, on every mount
// of the namespace, as outside a chroot; then the root and working
// directory saved before are put back, so the target sees the chroot it
// was started in.
//
// Cloning "/" (open_tree) and moving a private clone over it would not
// do: moving it attaches it to the mount holding our root, still shared,
// and so propagates it to the host.
func makePrivateInChroot() error {
	ns, err := unix.Open(nsSelf, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("/ is not a mount point (a chroot?): open %s: %w", nsSelf, err)
	}
	defer unix.Close(ns)
	root, err := unix.Open("/", unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open root: %w", err)
	}
	defer unix.Close(root)
	cwd, err := unix.Open(".", unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open working directory: %w", err)
	}
	defer unix.Close(cwd)
	if err := unix.Setns(ns, unix.CLONE_NEWNS); err != nil {
		return fmt.Errorf("/ is not a mount point (a chroot?): go to the namespace's root: %w", err)
	}
	err = makePrivate()
	back := unix.Fchdir(root)
	if back == nil {
		back = unix.Chroot(".")
	}
	if back == nil {
		back = unix.Fchdir(cwd)
	}
	if back != nil { // never seen: we hold both, as root
		return fmt.Errorf("return to the chroot: %w", back)
	}
	return err
}

// Options describe a view to set up.
type Options struct {
	File   *os.File // the packed file
	Offset uint64   // payload offset in File
	Size   uint64   // payload length
	// Dir is where the view appears: the payload merged over Dir's real
	// contents, payload entries winning.
	Dir string
	// Overlay, when set, keeps the writes instead of a tmpfs that
	// vanishes with the namespace.
	Overlay *Overlay
	// Lower, when not 0, is the payload mounted already, detached (the
	// FUSE rung's, MountFUSELower), instead of File from a loop device;
	// the caller closes it.
	Lower int
	// UserXattr: the namespace's user namespace is not the host's, where
	// overlayfs keeps its metadata in user.* attributes.
	UserXattr bool
	// OwnerWrite gives the view's root its owner's write permission,
	// which a read-only lower (the extraction cache's copy) lacks.
	OwnerWrite bool
	// Store, when set, is the directory of the payload's root that a
	// closure's programs find at /Store: the view is then made in a
	// root of the run's own (StoreRoot).
	Store string
	// StoreDir, when > 0, is a directory holding the store's copy (the
	// extraction cache's), bound in place of the payload's Store.
	StoreDir int
	// Log, when set, is called after each step with its duration.
	Log func(step string, d time.Duration)
}

func (o *Options) logStep(step string, start time.Time) time.Time {
	now := time.Now()
	if o.Log != nil {
		o.Log(step, now.Sub(start))
	}
	return now
}

// Setup attaches the payload and mounts the merged, writable view at
// o.Dir. Call it after Enter, from the same goroutine. Everything it mounts
// lives only in that namespace: when the namespace's last process exits,
// the kernel unmounts it all and the loop device clears itself.
func Setup(o Options) error {
	t := time.Now()
	sq := o.Lower
	if sq == 0 {
		var dev string
		var err error
		if sq, dev, err = MountImage(o.File, o.Offset, o.Size); err != nil {
			return err
		}
		defer unix.Close(sq)
		t = o.logStep("loop attach and squashfs mount ("+dev+")", t)
	}

	var root unix.Stat_t
	if err := unix.Fstat(sq, &root); err != nil {
		return fmt.Errorf("stat image root: %w", err)
	}
	// overlayfs gives the merged root the upper dir's mode and owner, so
	// the upper dir copies the image root's: the view looks like the
	// packed workdir, not like our scratch space.
	if o.Store != "" {
		if err := StoreRoot(sq, o.Dir, o.Store, o.StoreDir); err != nil {
			return err
		}
		t = o.logStep("a root of the run's own, the closure's store at /"+o.Store, t)
	}
	mode := os.FileMode(root.Mode & 0o7777)
	if o.OwnerWrite {
		mode |= 0o200
	}
	var upper, work string
	var err error
	if o.Overlay == nil {
		tmp, err := MountTmpfs(0o700)
		if err != nil {
			return err
		}
		defer unix.Close(tmp)
		for _, d := range []string{"upper", "work"} {
			if err := unix.Mkdirat(tmp, d, 0o700); err != nil {
				return fmt.Errorf("mkdir %s in tmpfs: %w", d, err)
			}
		}
		upper, work = FDPath(tmp)+"/upper", FDPath(tmp)+"/work"
		t = o.logStep("tmpfs for writes", t)
	} else if upper, work, err = o.Overlay.layers(); err != nil {
		return fmt.Errorf("overlay dir: %w", err)
	}
	if err := os.Chmod(upper, mode); err != nil {
		return fmt.Errorf("overlay upper dir: %w", err)
	}
	if err := os.Lchown(upper, int(root.Uid), int(root.Gid)); err != nil {
		return fmt.Errorf("overlay upper dir: %w", err)
	}

	ov, err := mountOverlay([]string{FDPath(sq), o.Dir}, upper, work, o.UserXattr)
	if err != nil {
		return err
	}
	defer unix.Close(ov)
	if err := AttachAt(ov, o.Dir); err != nil {
		return err
	}
	o.logStep("overlay mount at "+o.Dir, t)
	return nil
}

// MountImage attaches the payload with a loop device and mounts it as a
// detached, read-only squashfs. It returns the mount's descriptor (the
// image root; FDPath names it) and the device. Our reference to the loop
// device is dropped before returning: from then on the mount alone keeps it
// bound, and the device clears itself when the mount goes away.
func MountImage(f *os.File, offset, size uint64) (int, string, error) {
	l, err := AttachLoop(f, offset, size)
	if err != nil {
		return -1, "", err
	}
	defer l.Close()
	sq, err := MountSquashfs(l.Dev)
	if err != nil {
		return -1, "", err
	}
	return sq, l.Dev, nil
}
