// Package rmtree removes a tree that os.RemoveAll cannot: an extracted
// image's, which can hold directories whose modes stop os.RemoveAll for
// anyone but root (0555: no entry can be removed; 0000: not even listed),
// and it may be removed by a process with more rights than whoever can
// write into it, so it goes one directory at a time through file
// descriptors, never following a symlink: each directory is opened with
// O_NOFOLLOW relative to its parent's descriptor, made the owner's (0700)
// through that descriptor, emptied and removed.
package rmtree

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// Remove removes dir and everything below it, as os.RemoveAll does,
// and also directories whose modes forbid it: each directory is made 0700
// (which needs its owner or root) before it is emptied. It never follows a
// symlink, dir included (a symlink is removed, not what it points to), and
// never descends into another file system: a mount point below dir is an
// error, and what is mounted there stays. A dir that does not exist is no
// error. It goes on after a failure and returns the first.
func Remove(dir string) error {
	dir = filepath.Clean(dir)
	var st unix.Stat_t
	if err := unix.Lstat(dir, &st); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		return &fs.PathError{Op: "lstat", Path: dir, Err: err}
	}
	parent, base := filepath.Split(dir)
	if base == "." || base == ".." || base == "" {
		return &fs.PathError{Op: "remove", Path: dir, Err: errors.New("not a removable name")}
	}
	if parent == "" {
		parent = "."
	}
	pfd, err := unix.Open(parent, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return &fs.PathError{Op: "open", Path: parent, Err: err}
	}
	defer unix.Close(pfd)
	rm := remover{dev: st.Dev}
	rm.remove(pfd, dir, base)
	return rm.err
}

type remover struct {
	dev uint64 // the file system dir is on
	err error  // the first failure
}

func (rm *remover) fail(op, path string, err error) {
	if rm.err == nil {
		rm.err = &fs.PathError{Op: op, Path: path, Err: err}
	}
}

// remove removes name, which is p, from the directory pfd.
func (rm *remover) remove(pfd int, p, name string) {
	err := unix.Unlinkat(pfd, name, 0)
	switch {
	case err == nil || errors.Is(err, unix.ENOENT):
		return
	case !errors.Is(err, unix.EISDIR):
		rm.fail("remove", p, err)
		return
	}
	fd, err := rm.openDir(pfd, p, name)
	if err != nil {
		rm.fail("open", p, err)
		return
	}
	d := os.NewFile(uintptr(fd), p)
	// All names first: removing entries while reading the directory may
	// make some file systems skip others.
	names, err := d.Readdirnames(-1)
	if err != nil {
		rm.fail("readdir", p, err)
	}
	for _, n := range names {
		rm.remove(fd, p+"/"+n, n)
	}
	d.Close()
	if err := unix.Unlinkat(pfd, name, unix.AT_REMOVEDIR); err != nil && !errors.Is(err, unix.ENOENT) {
		rm.fail("remove", p, err)
	}
}

// openDir opens the directory name in pfd without following a symlink,
// checks it is on the tree's file system, and makes it 0700 so that its
// entries can be listed and removed.
func (rm *remover) openDir(pfd int, p, name string) (int, error) {
	// O_PATH needs no permission on the directory itself, so even a 0000
	// one can be opened, checked and changed through this descriptor.
	fd, err := unix.Openat(pfd, name, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return -1, err
	}
	if st.Dev != rm.dev {
		return -1, errors.New("another file system is mounted here; unmount it first")
	}
	if st.Mode&0o700 != 0o700 {
		if err := chmodFD(fd, 0o700); err != nil {
			return -1, fmt.Errorf("make it writable: %w", err)
		}
	}
	// Reopen the very directory we checked, now readable: through its
	// descriptor, as a path could have been swapped for another meanwhile.
	return unix.Openat(fd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
}

// chmodFD changes the mode of what an O_PATH descriptor refers to:
// fchmodat2 with AT_EMPTY_PATH from Linux 6.6, else through its /proc link,
// which also names that very inode, never a path that could be swapped.
func chmodFD(fd int, mode uint32) error {
	err := unix.Fchmodat(fd, "", mode, unix.AT_EMPTY_PATH)
	if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EINVAL) {
		err = chmodProc(fd, mode)
	}
	return err
}

// chmodProc is chmodFD before Linux 6.6.
func chmodProc(fd int, mode uint32) error {
	return unix.Fchmodat(unix.AT_FDCWD, fmt.Sprintf("/proc/self/fd/%d", fd), mode, 0)
}
