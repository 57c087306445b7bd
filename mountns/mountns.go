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
// lowerdir option).
package mountns

import (
	"fmt"
	"os"
	"runtime"
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
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return denied("make mounts private", err)
	}
	return nil
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
	sq, dev, err := MountImage(o.File, o.Offset, o.Size)
	if err != nil {
		return err
	}
	defer unix.Close(sq)
	t = o.logStep("loop attach and squashfs mount ("+dev+")", t)

	var root unix.Stat_t
	if err := unix.Fstat(sq, &root); err != nil {
		return fmt.Errorf("stat image root: %w", err)
	}
	// overlayfs gives the merged root the upper dir's mode and owner, so
	// the upper dir copies the image root's: the view looks like the
	// packed workdir, not like our scratch space.
	mode := os.FileMode(root.Mode & 0o7777)
	var upper, work string
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

	ov, err := MountOverlay([]string{FDPath(sq), o.Dir}, upper, work)
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
