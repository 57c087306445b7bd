package image

// Extraction is where a hostile image could do real harm, so it never
// resolves a path it did not just create: every entry is made relative to
// the file descriptor of its parent directory with the *at system calls,
// with O_NOFOLLOW and O_EXCL, so a symlink stored in the image (say "d ->
// /etc" followed by "d/passwd") can neither be followed nor replaced, and
// names were already checked by ReadDir (no "/", ".", "..", NUL). A name
// stored twice in one directory (a symlink, then a directory or file of the
// same name) therefore fails with EEXIST, reported as ErrFormat.
//
// What an image may ask for beyond its tree is limited. Setuid and setgid
// bits stay only on a file whose owner is the stored one: they would
// otherwise lend the extractor's identity to a program written for someone
// else. The caller sets ExtractOptions.Untrusted for an image from someone
// else, extracted where it will be run from (no device nodes, no
// setuid/setgid bits at all, no owner but the caller), and
// ExtractOptions.MaxBytes against a small image that expands to fill the
// disk. Directory loops and depth are refused by enterDir, files of absurd
// size by Open (MaxFileBlocks). Extended attributes, and so file
// capabilities, are never restored.
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
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ExtractOptions control Reader.Extract.
type ExtractOptions struct {
	Workers   int  // decompression goroutines; <= 0 means runtime.GOMAXPROCS(0)
	KeepOwner bool // chown to the stored owners (only effective as root, and never with Untrusted)
	// Untrusted extracts the image as input from someone else, the same
	// whoever the caller is, root included: device nodes are not created
	// (they are skipped with a warning, as they are anyway when not root,
	// and so are hard links to them), setuid and setgid bits are dropped
	// everywhere (with a warning), and owners are never restored
	// (KeepOwner is ignored), so every entry belongs to the caller. Each
	// kind of warning is given once, naming the first entry.
	//
	// Without it, root gets device nodes, and with KeepOwner the stored
	// owners, as from unsquashfs; a regular file keeps its setuid (setgid)
	// bit only if it ends up with the stored owner (group), and otherwise
	// loses it with a warning naming both: as root without KeepOwner, only
	// where the image stores 0:0, as parker packs by default.
	Untrusted bool
	// MaxBytes, when > 0, bounds the file data Extract writes: the length
	// of every regular file less its holes, a hard-linked file counted
	// once. The file that would pass it is not created: Extract returns
	// ErrTooLarge. Holes are not counted: a sparse file costs the size
	// words of its block list, which MaxFileBlocks bounds.
	MaxBytes int64
	// Subdir, when set, extracts the tree at that path of the image (a
	// directory, slash-separated) instead of the whole image: its
	// entries go straight into dir.
	Subdir string
	// ReadOnly takes the write bits off every entry as it is made, as if
	// the image stored none: for a tree that is to stay as extracted (an
	// extraction cache entry), without a second pass over it. A directory
	// loses its write bit once its entries are made, so a caller whom
	// modes bind (not root) can still fill it.
	ReadOnly bool
	// Warn, when set, receives messages about entries that were skipped or
	// only partly restored (e.g. device nodes when not root).
	Warn func(string)
}

// ErrNotEmpty is what Extract returns (wrapped) for a dir that already has
// entries: it never writes over or merges with existing files, so the
// caller can say how to go on.
var ErrNotEmpty = errors.New("not empty")

// ErrTooLarge is what Extract returns (wrapped) when the file data would
// pass ExtractOptions.MaxBytes.
var ErrTooLarge = errors.New("image too large")

// Extract writes the whole tree into dir, which must be an empty directory
// or not exist (it is then created 0755). The root directory's mode and
// mtime are applied to dir itself, as unsquashfs -d does. File contents
// are decompressed and written by opt.Workers goroutines, each block at
// its offset as soon as it is decoded, with sparse blocks left as holes,
// while the walk goes on creating entries (see extractdata.go). On error,
// what was extracted so far is left for the caller to remove, with
// RemoveTree: directories may have modes (0555, 0000) that stop
// os.RemoveAll.
func (r *Reader) Extract(dir string, opt ExtractOptions) error {
	root, err := r.Root()
	if opt.Subdir != "" && err == nil {
		if root, err = r.Lookup(opt.Subdir); err == nil && !root.IsDir() {
			err = fmt.Errorf("%s in the image is not a directory", opt.Subdir)
		}
	}
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
		umask: processUmask(),
	}
	x.w = newWriters(x, opt.Workers)
	x.chown = opt.KeepOwner && x.priv && !opt.Untrusted
	if opt.KeepOwner && !x.priv && !opt.Untrusted {
		x.warn("not running as root: owners are not restored")
	}
	err = x.dir(x.root, root)
	if werr := x.w.wait(); err == nil {
		err = werr
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
	return x.attrs(x.root, root, x.mode(root, x.root))
}

type extractor struct {
	r     *Reader
	opt   ExtractOptions
	root  int               // fd of the destination directory
	links map[uint64]string // inode ref -> path first extracted to ("" if skipped)
	seen  map[uint64]bool   // directories entered, see enterDir
	priv  bool              // euid 0: may mknod devices
	chown bool              // restore owners
	umask int               // the process's, -1 if unknown
	w     *writers          // write the files' data
	late  []*Node           // directories whose mode is applied at the end
	bytes int64             // file data so far, for MaxBytes
	said  map[string]bool   // kinds of warning given, when Untrusted
}

// warn passes msg to opt.Warn. It is called from the goroutine that walks
// the image only, never from the writers, so the warnings come in the
// order of the walk, one at a time.
func (x *extractor) warn(msg string) {
	if x.opt.Warn != nil {
		x.opt.Warn(msg)
	}
}

// warnOnce gives msg, unless Untrusted and a warning of this kind was
// given already: an untrusted image may hold any number of entries that
// are neutralised, and one line per kind says enough.
func (x *extractor) warnOnce(kind, msg string) {
	if x.opt.Untrusted {
		if x.said[kind] {
			return
		}
		if x.said == nil {
			x.said = map[string]bool{}
		}
		x.said[kind] = true
	}
	x.warn(msg)
}

// processUmask returns the process's umask, from /proc/self/status (Linux
// 4.7 on), or -1 when that cannot be read: umask(2) reads it only by
// setting it, for every thread of the process at once.
func processUmask() int {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Umask:"); ok {
			if n, err := strconv.ParseUint(strings.TrimSpace(v), 8, 32); err == nil {
				return int(n)
			}
			return -1
		}
	}
	return -1
}

// perm converts the permission and setuid/setgid/sticky bits to a unix mode.
func perm(m fs.FileMode) uint32 { return uint32(UnixPerm(m)) }

// mode is the unix mode n gets, fd being n open (or -1). Setuid and setgid
// make a program run as its owner or group, so they are kept only where
// those are the image's: an untrusted image gets none, and a regular file
// whose owner or group is not the stored one (owners not restored, or not
// root) loses the bit that would lend it the extractor's identity (root's,
// say) instead of the one the image named.
func (x *extractor) mode(n *Node, fd int) uint32 {
	m := perm(n.Mode)
	if x.opt.ReadOnly {
		m &^= 0o222
	}
	const setid = unix.S_ISUID | unix.S_ISGID
	if m&setid == 0 {
		return m
	}
	if x.opt.Untrusted {
		x.warnOnce("setid", fmt.Sprintf("%s: setuid/setgid bits dropped, here and wherever else the image sets them (untrusted image)", n.Path))
		return m &^ setid
	}
	if !n.Mode.IsRegular() || x.chown {
		return m
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		st.Uid, st.Gid = ^n.UID, ^n.GID // unknown: not the stored ones
	}
	drop := uint32(0)
	if st.Uid != n.UID {
		drop |= unix.S_ISUID
	}
	if st.Gid != n.GID {
		drop |= unix.S_ISGID
	}
	if m&drop == 0 {
		return m
	}
	bits := map[uint32]string{unix.S_ISUID: "setuid bit", unix.S_ISGID: "setgid bit", setid: "setuid and setgid bits"}[m&drop]
	x.warn(fmt.Sprintf("%s: %s dropped: the file belongs to %d:%d here, not to %d:%d as in the image", n.Path, bits, st.Uid, st.Gid, n.UID, n.GID))
	return m &^ drop
}

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

// attrs sets owner, mode (from x.mode) and times of an open file or
// directory, in that order: chown clears setuid/setgid, and chmod does not
// touch mtime.
func (x *extractor) attrs(fd int, n *Node, mode uint32) error {
	if x.chown {
		if err := unix.Fchown(fd, int(n.UID), int(n.GID)); err != nil {
			return pathErr("chown", n, err)
		}
	}
	if err := unix.Fchmod(fd, mode); err != nil {
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

// createErr reports a failure to create n. The destination started empty
// and holds only what we made, so EEXIST means the image names n twice in
// one directory: a hostile image doing so with a symlink first hopes the
// second entry will be written through it.
func createErr(op string, n *Node, err error) error {
	if errors.Is(err, unix.EEXIST) {
		return formatError("%s: the name appears twice in its directory", n.Path)
	}
	return pathErr(op, n, err)
}

// sizeErr reports a failure to write or size a regular file, saying what
// EFBIG means here: the image's file is longer than the destination takes.
func sizeErr(op string, n *Node, err error) error {
	if errors.Is(err, unix.EFBIG) {
		return fmt.Errorf("%s: %d bytes is more than the destination's file system or the file size limit (ulimit -f) allows: %w",
			n.Path, n.Size, err)
	}
	return pathErr(op, n, err)
}

// dir extracts the entries of directory n into the open directory fd.
func (x *extractor) dir(fd int, n *Node) error {
	return x.r.eachChild(n, func(k *Node) error {
		if err := x.w.failed(); err != nil {
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
		return createErr("mkdir", k, err)
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
		if x.chown {
			if err := unix.Fchown(cfd, int(k.UID), int(k.GID)); err != nil {
				return pathErr("chown", k, err)
			}
		}
		if err := futimens(cfd, &ts); err != nil {
			return pathErr("utimes", k, err)
		}
		return nil
	}
	return x.attrs(cfd, k, x.mode(k, cfd))
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
	if err := unix.Fchmod(fd, x.mode(n, fd)); err != nil {
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
		// Untrusted, only devices are skipped, and one line said so.
		x.warnOnce("device", fmt.Sprintf("%s: skipped (hard link to a skipped entry)", k.Path))
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
		return createErr("link", k, err)
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
			return createErr("symlink", k, err)
		}
		return x.attrsAt(fd, k, false)
	case mode&fs.ModeDevice != 0:
		if x.opt.Untrusted {
			x.links[k.ref] = ""
			x.warnOnce("device", fmt.Sprintf("%s: device node not created, nor any other (untrusted image)", k.Path))
			return nil
		}
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
			if errors.Is(err, unix.EEXIST) {
				return createErr("mknod", k, err)
			}
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
		if err := unix.Mknodat(fd, k.Name, typ|x.mode(k, -1), 0); err != nil {
			return createErr("mknod", k, err)
		}
		return x.attrsAt(fd, k, true)
	}
	return formatError("%s: unexpected mode %v", k.Path, mode)
}

// attrsAt sets owner, mode (unless a symlink, whose mode Linux ignores) and
// times of an entry we just created in fd, without following it. Opening a
// fifo or device to use the f* calls could block or have side effects.
func (x *extractor) attrsAt(fd int, k *Node, chmod bool) error {
	if x.chown {
		if err := unix.Fchownat(fd, k.Name, int(k.UID), int(k.GID), unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return pathErr("chown", k, err)
		}
	}
	if chmod {
		// mknod applied the umask. The entry is one we just created and
		// not a symlink, so following is moot; fchmodat2's NOFOLLOW is
		// not available before Linux 6.6.
		if err := unix.Fchmodat(fd, k.Name, x.mode(k, -1), 0); err != nil {
			return pathErr("chmod", k, err)
		}
	}
	ts := times(k)
	if err := unix.UtimesNanoAt(fd, k.Name, ts[:], unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return pathErr("utimes", k, err)
	}
	return nil
}
