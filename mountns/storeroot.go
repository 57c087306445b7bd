package mountns

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// StoreRoot gives the calling thread (in a mount namespace of its own:
// Enter) a root of its own, with the directory store of the payload's
// root lower (a detached mount, or a directory) at /store: where the
// loader path of a closure's programs points (parker --closure, package
// closure), which no host has, on a root that is not ours to change. The
// new root is a tmpfs holding every entry of / as it is: each directory
// and file bound there with every mount below it, each symlink made
// again; and the store, bound from lower. It is attached over dir (which
// the view covers next, in the new root) and entered (chroot), so the
// target and what it starts see the host's files where they were, and the
// store beside them. The C stub does the same (stub/cstub/mountns.c:
// store_root). storeDir, when > 0, is a directory (the store's copy in
// the extraction cache) bound at /store in place of lower's.
func StoreRoot(lower int, dir, store string, storeDir int) (err error) {
	ents, err := os.ReadDir("/")
	if err != nil {
		return fmt.Errorf("the closure's root: list /: %w", err)
	}
	type entry struct {
		name, link string
		dir        bool
		clone      int
	}
	var es []entry
	defer func() {
		for _, e := range es {
			if e.clone > 0 {
				unix.Close(e.clone)
			}
		}
	}()
	for _, de := range ents {
		if de.Name() == store {
			continue
		}
		e := entry{name: de.Name(), dir: de.IsDir()}
		if de.Type()&os.ModeSymlink != 0 {
			if e.link, err = os.Readlink("/" + e.name); err != nil {
				return fmt.Errorf("the closure's root: %w", err)
			}
		} else if e.clone, err = unix.OpenTree(unix.AT_FDCWD, "/"+e.name,
			unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_RECURSIVE); err != nil {
			return denied("the closure's root: bind /"+e.name, err)
		}
		es = append(es, e)
	}
	// The working directory, which the chroot would lose: taken again, by
	// its path, in the new root, where it is the same.
	cwd, cwdErr := os.Getwd()
	r, err := MountTmpfs(0o755)
	if err != nil {
		return err
	}
	err = AttachAt(r, dir)
	unix.Close(r)
	if err != nil {
		return err
	}
	// From here on a failure takes the new root off dir again, so that a
	// fallback finds dir as it was.
	defer func() {
		if err != nil {
			unix.Unmount(dir, unix.MNT_DETACH)
		}
	}()
	nr, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("the closure's root: %w", err)
	}
	defer unix.Close(nr)
	for _, e := range es {
		switch {
		case e.link != "":
			err = unix.Symlinkat(e.link, nr, e.name)
		case e.dir:
			err = unix.Mkdirat(nr, e.name, 0o755)
		default:
			var f int
			if f, err = unix.Openat(nr, e.name, unix.O_WRONLY|unix.O_CREAT|unix.O_CLOEXEC, 0o644); err == nil {
				unix.Close(f)
			}
		}
		if err == nil && e.link == "" {
			err = unix.MoveMount(e.clone, "", nr, e.name, unix.MOVE_MOUNT_F_EMPTY_PATH)
		}
		if err != nil {
			return denied("the closure's root: /"+e.name, err)
		}
	}
	var s int
	if storeDir > 0 {
		s, err = unix.OpenTree(storeDir, "", unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_EMPTY_PATH)
	} else {
		s, err = unix.OpenTree(lower, store, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
	}
	if err != nil {
		return denied("the closure's store: bind "+store+" of the payload", err)
	}
	defer unix.Close(s)
	if err := unix.Mkdirat(nr, store, 0o755); err != nil {
		return fmt.Errorf("the closure's store: %w", err)
	}
	if err := unix.MoveMount(s, "", nr, store, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return denied("the closure's store: bind "+store+" of the payload", err)
	}
	if err = unix.Chroot(FDPath(nr)); err != nil {
		return denied("the closure's root: chroot", err)
	}
	if cwdErr != nil || unix.Chdir(cwd) != nil { // gone (removed meanwhile): / it is
		unix.Chdir("/")
	}
	return nil
}
