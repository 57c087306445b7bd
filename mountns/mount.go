package mountns

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// ErrDenied: the kernel refused to attach or mount the payload for this
// process (not root, no loop driver, no squashfs or overlay support, a
// seccomp filter). Callers may fall back to extracting the payload in user
// space; every other error means the payload or the system is broken.
var ErrDenied = errors.New("mountns: kernel mount denied")

// denied wraps err with what failed, and with ErrDenied when the errno says
// "not allowed here" rather than "broken".
func denied(what string, err error) error {
	switch {
	case errors.Is(err, unix.EPERM), errors.Is(err, unix.EACCES),
		errors.Is(err, unix.ENODEV), errors.Is(err, unix.ENOENT),
		errors.Is(err, unix.ENOSYS), errors.Is(err, unix.EROFS):
		return fmt.Errorf("%s: %w (%w)", what, err, ErrDenied)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// The mount wrappers use the new mount API (fsopen, fsconfig, fsmount,
// move_mount, Linux 5.2+). It yields detached mounts: file systems that are
// mounted but sit in no directory of any namespace. The squashfs image and
// the tmpfs holding the overlay's upper and work dirs stay detached, so the
// only mount anyone can see is the final overlay, and nothing needs a
// scratch directory on the host. A detached mount lives as long as a file
// descriptor or a mount (here: the overlay's private clone of its layers)
// refers to it, so even SIGKILL leaves nothing behind.

// fsMount creates a detached mount of type fstype configured by cfg, with the
// given MOUNT_ATTR_* flags, and returns its O_PATH descriptor.
func fsMount(fstype string, attrs int, cfg func(fs int) error) (int, error) {
	fs, err := unix.Fsopen(fstype, unix.FSOPEN_CLOEXEC)
	if err != nil {
		return -1, denied("fsopen "+fstype, err)
	}
	defer unix.Close(fs)
	if cfg != nil {
		if err := cfg(fs); err != nil {
			return -1, fmt.Errorf("configure %s: %w", fstype, err)
		}
	}
	if err := unix.FsconfigCreate(fs); err != nil {
		return -1, denied("create "+fstype+" superblock", withKernelLog(fs, err))
	}
	m, err := unix.Fsmount(fs, unix.FSMOUNT_CLOEXEC, attrs)
	if err != nil {
		return -1, denied("fsmount "+fstype, err)
	}
	return m, nil
}

// withKernelLog appends the message the kernel left in the fs context's log
// (read(2) on the fsopen descriptor), which names the actual cause far
// better than the errno does ("overlayfs: upperdir is in-use ...").
func withKernelLog(fs int, err error) error {
	buf := make([]byte, 256)
	n, rerr := unix.Read(fs, buf)
	if rerr != nil || n <= 2 {
		return err
	}
	return fmt.Errorf("%w: %s", err, strings.TrimSpace(string(buf[2:n]))) // drop the "e " prefix
}

// MountSquashfs mounts the squashfs image on block device dev read-only,
// nosuid and nodev, detached.
func MountSquashfs(dev string) (int, error) {
	return fsMount("squashfs", unix.MOUNT_ATTR_RDONLY|unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NODEV,
		func(fs int) error {
			// "ro" makes the superblock open the device read-only; the
			// device refuses writers (LO_FLAGS_READ_ONLY) with EACCES.
			if err := unix.FsconfigSetFlag(fs, "ro"); err != nil {
				return err
			}
			return unix.FsconfigSetString(fs, "source", dev)
		})
}

// MountTmpfs mounts a fresh tmpfs, nosuid and nodev, detached, with its root
// directory given mode perm.
func MountTmpfs(perm os.FileMode) (int, error) {
	return fsMount("tmpfs", unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NODEV, func(fs int) error {
		return unix.FsconfigSetString(fs, "mode", strconv.FormatUint(uint64(perm.Perm()), 8))
	})
}

// MountFUSE mounts a FUSE file system on connection dev (an open
// /dev/fuse), read-only, nosuid and nodev, detached: its root a directory
// owned by uid and gid, permissions checked by the kernel from mode bits
// (default_permissions). The mount returns before a server answers; what
// then reads it waits for one. The C stub mounts the FUSE rung's lower
// layer so (stub/cstub/fuse.c: mount_fuse); this is its reference, and
// what tests and --parker-doctor mount.
func MountFUSE(dev, uid, gid int) (int, error) {
	return fsMount("fuse", unix.MOUNT_ATTR_RDONLY|unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NODEV, func(fs int) error {
		for _, kv := range [][2]string{{"source", "parker"}, {"subtype", "parker"}, {"fd", strconv.Itoa(dev)},
			{"rootmode", "40000"}, {"user_id", strconv.Itoa(uid)}, {"group_id", strconv.Itoa(gid)}} {
			if err := unix.FsconfigSetString(fs, kv[0], kv[1]); err != nil {
				return fmt.Errorf("%s=%s: %w", kv[0], kv[1], err)
			}
		}
		return unix.FsconfigSetFlag(fs, "default_permissions")
	})
}

// MountFUSELower opens /dev/fuse, mounts a FUSE file system on it for
// uid and gid (MountFUSE), has serve start the server on the connection,
// and returns the mount, detached, once serve returns. The server then
// holds the connection's only descriptor: should it end, the kernel aborts
// the connection, and what reads the mount fails instead of waiting.
func MountFUSELower(uid, gid int, serve func(dev int) error) (int, error) {
	dev, err := unix.Open("/dev/fuse", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, denied("open /dev/fuse", err)
	}
	defer unix.Close(dev)
	m, err := MountFUSE(dev, uid, gid)
	if err != nil {
		return -1, err
	}
	if err := serve(dev); err != nil {
		unix.Close(m)
		return -1, fmt.Errorf("start the FUSE server: %w", err)
	}
	return m, nil
}

// MountOverlay mounts an overlay, detached. lowers are listed top first.
// Paths may name detached mounts through /proc/self/fd/N. upper and work are
// empty for a read-only overlay.
func MountOverlay(lowers []string, upper, work string) (int, error) {
	return mountOverlay(lowers, upper, work, false)
}

// mountOverlay is MountOverlay, keeping overlayfs's own metadata in user.*
// extended attributes when userxattr is set: the only ones it may set in
// a user namespace.
func mountOverlay(lowers []string, upper, work string, userxattr bool) (int, error) {
	return fsMount("overlay", 0, func(fs int) error {
		if userxattr {
			if err := unix.FsconfigSetFlag(fs, "userxattr"); err != nil {
				return err
			}
		}
		if err := setLowers(fs, lowers); err != nil {
			return err
		}
		if upper != "" {
			if err := unix.FsconfigSetString(fs, "upperdir", upper); err != nil {
				return withKernelLog(fs, fmt.Errorf("upperdir %s: %w", upper, err))
			}
			if err := unix.FsconfigSetString(fs, "workdir", work); err != nil {
				return withKernelLog(fs, fmt.Errorf("workdir %s: %w", work, err))
			}
		}
		return nil
	})
}

// lowerdirPlus is false to act as a kernel before 6.5 would (tests force the
// joined "lowerdir" option with it).
var lowerdirPlus = true

// setLowers passes the lower layers one per "lowerdir+" (Linux 6.5+), so no
// path needs escaping; older kernels reject that key with EINVAL and get
// the joined "lowerdir" option instead.
func setLowers(fs int, lowers []string) error {
	var err error = unix.EINVAL
	if lowerdirPlus {
		err = unix.FsconfigSetString(fs, "lowerdir+", lowers[0])
	}
	if errors.Is(err, unix.EINVAL) {
		esc := make([]string, len(lowers))
		for i, l := range lowers {
			esc[i] = escapeLayer(l)
		}
		err = unix.FsconfigSetString(fs, "lowerdir", strings.Join(esc, ":"))
		if err != nil {
			return withKernelLog(fs, fmt.Errorf("lowerdir %s: %w", strings.Join(lowers, ":"), err))
		}
		return nil
	}
	for i := 1; err == nil && i < len(lowers); i++ {
		err = unix.FsconfigSetString(fs, "lowerdir+", lowers[i])
	}
	if err != nil {
		return withKernelLog(fs, fmt.Errorf("lowerdir %s: %w", strings.Join(lowers, ":"), err))
	}
	return nil
}

// escapeLayer escapes the characters overlayfs splits the joined lowerdir
// option on.
func escapeLayer(p string) string {
	return strings.NewReplacer(`\`, `\\`, `:`, `\:`, `,`, `\,`).Replace(p)
}

// AttachAt attaches the detached mount m on top of path.
func AttachAt(m int, path string) error {
	if err := unix.MoveMount(m, "", unix.AT_FDCWD, path, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return denied("attach mount at "+path, err)
	}
	return nil
}

// makePrivate makes every mount at and below the root private
// (MS_PRIVATE, recursively). It fails with EINVAL when the root is not a
// mount's root, as in a chroot.
func makePrivate() error {
	return unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, "")
}

// ChrootFD makes the directory behind fd (a detached mount's root, say) the
// calling thread's root and working directory. The thread must have its own
// file system context, as after Enter.
func ChrootFD(fd int) error {
	if err := unix.Fchdir(fd); err != nil {
		return fmt.Errorf("change root: %w", err)
	}
	if err := unix.Chroot("."); err != nil {
		return denied("change root", err)
	}
	return nil
}

// FDPath names the root of the mount or directory behind descriptor fd in a
// form path-taking calls accept, including for detached mounts.
func FDPath(fd int) string { return "/proc/self/fd/" + strconv.Itoa(fd) }
