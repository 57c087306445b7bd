package image

// Extraction is where a hostile image could do real harm, so it never
// resolves a path it did not just create: every entry is made relative to
// the file descriptor of its parent directory with the *at system calls,
// with O_NOFOLLOW and O_EXCL, so a symlink stored in the image (say "d ->
// /etc" followed by "d/passwd") can neither be followed nor replaced, and
// names were already checked by ReadDir (no "/", ".", "..", NUL).
//
// Timestamps and modes go on last: a directory's mtime is set when all its
// entries exist, and modes that would stop us adding entries (0555, 0000)
// only after everything else, children before parents, so the children
// get in.

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ExtractOptions control Reader.Extract.
type ExtractOptions struct {
	Workers   int  // decompression goroutines; <= 0 means runtime.GOMAXPROCS(0)
	KeepOwner bool // chown to the stored owners (only effective as root)
	// Warn, when set, receives messages about entries that were skipped or
	// only partly restored (e.g. device nodes when not root).
	Warn func(string)
}

// ErrNotEmpty is what Extract returns (wrapped) for a dir that already has
// entries: it never writes over or merges with existing files, so the
// caller can say how to go on.
var ErrNotEmpty = errors.New("not empty")

// Extract writes the whole tree into dir, which must be an empty directory
// or not exist (it is then created 0755). The root directory's mode and
// mtime are applied to dir itself, as unsquashfs -d does. File contents
// are decompressed by opt.Workers goroutines and written in order, with
// sparse blocks left as holes. On error, what was extracted so far is left
// for the caller to remove.
func (r *Reader) Extract(dir string, opt ExtractOptions) error {
	root, err := r.Root()
	if err != nil {
		return err
	}
	// The caller names the action ("cannot extract to DIR: ..."), so these
	// errors only say what is wrong with dir.
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if st, err := d.Stat(); err != nil || !st.IsDir() {
		return fmt.Errorf("%s is not a directory", dir)
	}
	if names, err := d.Readdirnames(1); len(names) > 0 {
		return fmt.Errorf("%s is %w", dir, ErrNotEmpty)
	} else if err != nil && err != io.EOF {
		return err
	}
	seen := map[uint64]bool{}
	if err := enterDir(root, seen); err != nil {
		return err
	}
	x := &extractor{
		r:     r,
		opt:   opt,
		root:  int(d.Fd()),
		links: make(map[uint64]string),
		seen:  seen,
		priv:  os.Geteuid() == 0,
		p:     newBlockQueue(opt.Workers, int(r.sb.BlockSize)),
	}
	if opt.KeepOwner && !x.priv {
		x.warn("not running as root: owners are not restored")
	}
	err = x.dir(x.root, root)
	if perr := x.p.wait(); err == nil {
		err = perr
	}
	if err != nil {
		return err
	}
	// Restrictive directory modes, in the order x.late has them: a
	// directory is added once its entries are done, after every directory
	// below it, so the walk to each one still passes through searchable
	// parents (which matters when not root: 0000 above 0500).
	for _, n := range x.late {
		if err := x.lateChmod(n); err != nil {
			return err
		}
	}
	return x.attrs(x.root, root)
}

type extractor struct {
	r     *Reader
	opt   ExtractOptions
	root  int               // fd of the destination directory
	links map[uint64]string // inode ref -> path first extracted to ("" if skipped)
	seen  map[uint64]bool   // directories entered, see enterDir
	priv  bool              // euid 0: may mknod devices and chown
	p     *blockQueue
	late  []*Node // directories whose mode is applied at the end
}

func (x *extractor) warn(msg string) {
	if x.opt.Warn != nil {
		x.opt.Warn(msg)
	}
}

// perm converts the permission and setuid/setgid/sticky bits to a unix mode.
func perm(m fs.FileMode) uint32 { return uint32(UnixPerm(m)) }

func times(n *Node) [2]unix.Timespec {
	ts := unix.Timespec{Sec: n.ModTime}
	return [2]unix.Timespec{ts, ts}
}

// futimens sets the times of an open file: utimensat with a NULL path, which
// x/sys/unix does not expose (its Futimes goes through /proc).
func futimens(fd int, ts *[2]unix.Timespec) error {
	_, _, e := unix.Syscall6(unix.SYS_UTIMENSAT, uintptr(fd), 0, uintptr(unsafe.Pointer(ts)), 0, 0, 0)
	if e != 0 {
		return e
	}
	return nil
}

// attrs sets owner, mode and times of an open file or directory, in that
// order: chown clears setuid/setgid, and chmod does not touch mtime.
func (x *extractor) attrs(fd int, n *Node) error {
	if x.opt.KeepOwner && x.priv {
		if err := unix.Fchown(fd, int(n.UID), int(n.GID)); err != nil {
			return pathErr("chown", n, err)
		}
	}
	if err := unix.Fchmod(fd, perm(n.Mode)); err != nil {
		return pathErr("chmod", n, err)
	}
	ts := times(n)
	if err := futimens(fd, &ts); err != nil {
		return pathErr("utimes", n, err)
	}
	return nil
}

func pathErr(op string, n *Node, err error) error {
	return &fs.PathError{Op: op, Path: n.Path, Err: err}
}

// dir extracts the entries of directory n into the open directory fd.
func (x *extractor) dir(fd int, n *Node) error {
	return x.r.eachChild(n, func(k *Node) error {
		if err := x.p.failed(); err != nil {
			return err
		}
		if k.IsDir() {
			return x.subdir(fd, k)
		}
		if first, ok := x.links[k.ref]; ok {
			return x.link(fd, k, first)
		}
		return x.entry(fd, k)
	})
}

func (x *extractor) subdir(fd int, k *Node) error {
	if err := enterDir(k, x.seen); err != nil {
		return err
	}
	if err := unix.Mkdirat(fd, k.Name, 0o700); err != nil {
		return pathErr("mkdir", k, err)
	}
	cfd, err := unix.Openat(fd, k.Name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return pathErr("open", k, err)
	}
	defer unix.Close(cfd)
	if err := x.dir(cfd, k); err != nil {
		return err
	}
	if perm(k.Mode)&0o700 != 0o700 {
		// Keep 0700 for now: later hard links may need to reach through it.
		x.late = append(x.late, k)
		ts := times(k)
		if x.opt.KeepOwner && x.priv {
			if err := unix.Fchown(cfd, int(k.UID), int(k.GID)); err != nil {
				return pathErr("chown", k, err)
			}
		}
		if err := futimens(cfd, &ts); err != nil {
			return pathErr("utimes", k, err)
		}
		return nil
	}
	return x.attrs(cfd, k)
}

// lateChmod applies a restrictive directory mode, reopening the directory
// by the path we created it under, one component at a time without
// following symlinks.
func (x *extractor) lateChmod(n *Node) error {
	fd, err := x.openPath(n.Path, unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return pathErr("open", n, err)
	}
	defer unix.Close(fd)
	if err := unix.Fchmod(fd, perm(n.Mode)); err != nil {
		return pathErr("chmod", n, err)
	}
	return nil
}

// openPath opens a slash-separated path below the root one component at a
// time with O_NOFOLLOW, so it cannot leave the tree we built.
func (x *extractor) openPath(p string, flags int) (int, error) {
	fd := x.root
	parts := strings.Split(p, "/")
	for i, part := range parts {
		fl := unix.O_PATH | unix.O_DIRECTORY
		if i == len(parts)-1 {
			fl = flags
		}
		nfd, err := unix.Openat(fd, part, fl|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if fd != x.root {
			unix.Close(fd)
		}
		if err != nil {
			return -1, err
		}
		fd = nfd
	}
	return fd, nil
}

// link makes k a hard link to the path its inode was first extracted to.
func (x *extractor) link(fd int, k *Node, first string) error {
	if first == "" {
		x.warn(fmt.Sprintf("%s: skipped (hard link to a skipped entry)", k.Path))
		return nil
	}
	dir, base := ".", first
	if i := strings.LastIndexByte(first, '/'); i >= 0 {
		dir, base = first[:i], first[i+1:]
	}
	ofd := x.root
	if dir != "." {
		var err error
		if ofd, err = x.openPath(dir, unix.O_PATH|unix.O_DIRECTORY); err != nil {
			return pathErr("link", k, err)
		}
		defer unix.Close(ofd)
	}
	// flags 0: link the entry itself, never what a symlink points to.
	if err := unix.Linkat(ofd, base, fd, k.Name, 0); err != nil {
		return pathErr("link", k, err)
	}
	return nil
}

// entry creates a non-directory that is not a second name of an earlier one.
func (x *extractor) entry(fd int, k *Node) error {
	if k.Nlink > 1 {
		x.links[k.ref] = k.Path
	}
	mode := k.Mode
	switch {
	case mode.IsRegular():
		return x.file(fd, k)
	case mode&fs.ModeSymlink != 0:
		if err := unix.Symlinkat(k.Link, fd, k.Name); err != nil {
			return pathErr("symlink", k, err)
		}
		return x.attrsAt(fd, k, false)
	case mode&fs.ModeDevice != 0:
		if !x.priv {
			x.links[k.ref] = ""
			x.warn(fmt.Sprintf("%s: device node skipped (not root)", k.Path))
			return nil
		}
		typ := uint32(unix.S_IFBLK)
		if mode&fs.ModeCharDevice != 0 {
			typ = unix.S_IFCHR
		}
		if err := unix.Mknodat(fd, k.Name, typ|perm(mode), int(k.Rdev)); err != nil {
			if errors.Is(err, unix.EPERM) {
				// Root in a user namespace lacks CAP_MKNOD.
				x.links[k.ref] = ""
				x.warn(fmt.Sprintf("%s: device node skipped (%v)", k.Path, err))
				return nil
			}
			return pathErr("mknod", k, err)
		}
		return x.attrsAt(fd, k, true)
	case mode&(fs.ModeNamedPipe|fs.ModeSocket) != 0:
		// Unlike devices, these need no privilege.
		typ := uint32(unix.S_IFIFO)
		if mode&fs.ModeSocket != 0 {
			typ = unix.S_IFSOCK
		}
		if err := unix.Mknodat(fd, k.Name, typ|perm(mode), 0); err != nil {
			return pathErr("mknod", k, err)
		}
		return x.attrsAt(fd, k, true)
	}
	return formatError("%s: unexpected mode %v", k.Path, mode)
}

// attrsAt sets owner, mode (unless a symlink, whose mode Linux ignores) and
// times of an entry we just created in fd, without following it. Opening a
// fifo or device to use the f* calls could block or have side effects.
func (x *extractor) attrsAt(fd int, k *Node, chmod bool) error {
	if x.opt.KeepOwner && x.priv {
		if err := unix.Fchownat(fd, k.Name, int(k.UID), int(k.GID), unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return pathErr("chown", k, err)
		}
	}
	if chmod {
		// mknod applied the umask. The entry is one we just created and
		// not a symlink, so following is moot; fchmodat2's NOFOLLOW is
		// not available before Linux 6.6.
		if err := unix.Fchmodat(fd, k.Name, perm(k.Mode), 0); err != nil {
			return pathErr("chmod", k, err)
		}
	}
	ts := times(k)
	if err := unix.UtimesNanoAt(fd, k.Name, ts[:], unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return pathErr("utimes", k, err)
	}
	return nil
}

// file creates a regular file and queues its blocks on the block queue; the
// consumer writes them in order and the last task sets size and attributes
// and closes the file.
func (x *extractor) file(dirfd int, k *Node) error {
	f, err := x.r.Open(k)
	if err != nil {
		return err
	}
	fd, err := unix.Openat(dirfd, k.Name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return pathErr("create", k, err)
	}
	for i := 0; i < f.chunks; i++ {
		if f.sparse(i) {
			continue // left as a hole; the final ftruncate sets the length
		}
		i := i
		off := int64(i) * f.bs
		err := x.p.submit(
			func(buf []byte) ([]byte, error) { return f.chunk(i, buf) },
			func(out []byte, err error) error {
				if err != nil {
					return nil
				}
				for len(out) > 0 {
					n, err := unix.Pwrite(fd, out, off)
					if err != nil {
						return pathErr("write", k, err)
					}
					out, off = out[n:], off+int64(n)
				}
				return nil
			})
		if err != nil {
			break
		}
	}
	x.p.submit(nil, func(_ []byte, err error) error {
		defer unix.Close(fd)
		if err != nil {
			return nil
		}
		// Only a trailing hole leaves the file short: every block written
		// had exactly its expected length.
		if f.chunks > 0 && f.sparse(f.chunks-1) {
			if err := unix.Ftruncate(fd, k.Size); err != nil {
				return pathErr("truncate", k, err)
			}
		}
		return x.attrs(fd, k)
	})
	return nil
}
