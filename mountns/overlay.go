package mountns

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// ErrInView: the overlay directory is the directory the view covers or lies
// inside it. The view would hide it from the run that writes to it, and its
// writes would land in the lower layer they shadow.
var ErrInView = errors.New("inside the directory the run covers")

// ErrBusy: another run holds the overlay directory. overlayfs refuses an
// upper dir that another overlay uses, and two runs sharing one would see
// each other's writes half done.
var ErrBusy = errors.New("in use by another run")

// Overlay is a directory that keeps a view's writes across runs: overlayfs'
// upper dir is Overlay/upper, its work dir Overlay/work. An Overlay is open
// and locked (flock) for one run at a time.
type Overlay struct {
	Path string // absolute, symlinks resolved
	fd   int    // the directory, open O_DIRECTORY; holds the lock
}

// Inherit lets the descriptor that holds the lock pass to the programs this
// process execs (it is close-on-exec until then): the lock lasts while it,
// or a copy of it in any process, is open.
func (o *Overlay) Inherit() error {
	if _, err := unix.FcntlInt(uintptr(o.fd), unix.F_SETFD, 0); err != nil {
		return fmt.Errorf("keep the overlay lock: %w", err)
	}
	return nil
}

// OpenOverlay resolves dir (relative to the current directory), refuses it
// with ErrInView when it lies in view, the directory the view will cover,
// creates it if missing and locks it, or fails with ErrBusy when another run
// holds it. Nothing is created on a refusal.
//
// The lock is an flock on the directory's own descriptor, not a lock file,
// so it cannot be left behind: the kernel drops it when the descriptor is
// closed, and closes it when the process exits however it exits (SIGKILL
// included). The descriptor is close-on-exec, so only the process that
// opened it holds the lock; that process must live as long as the run.
func OpenOverlay(dir, view string) (*Overlay, error) {
	path, err := resolve(dir)
	if err != nil {
		return nil, fmt.Errorf("resolve %s: %w", dir, err)
	}
	if v, err := filepath.EvalSymlinks(view); err == nil {
		view = v
	}
	if within(path, view) {
		return nil, fmt.Errorf("%s is %w", path, ErrInView)
	}
	if err := os.MkdirAll(path, 0o700); err != nil {
		return nil, err
	}
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	o := &Overlay{Path: path, fd: fd}
	// Checked again on what was opened: a component swapped for a symlink
	// since the check would otherwise slip through.
	if real, err := os.Readlink(FDPath(fd)); err == nil && within(real, view) {
		o.Close()
		return nil, fmt.Errorf("%s is %w", real, ErrInView)
	}
	if err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB); err != nil {
		o.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("%s is %w", path, ErrBusy)
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return o, nil
}

// Close releases the directory and its lock.
func (o *Overlay) Close() error { return unix.Close(o.fd) }

// layers creates the upper and work dirs if missing and returns their
// paths, through the locked descriptor so they are the ones locked.
func (o *Overlay) layers() (upper, work string, err error) {
	for _, d := range []string{"upper", "work"} {
		if err := unix.Mkdirat(o.fd, d, 0o700); err != nil && !errors.Is(err, unix.EEXIST) {
			return "", "", &fs.PathError{Op: "mkdir", Path: filepath.Join(o.Path, d), Err: err}
		}
	}
	return FDPath(o.fd) + "/upper", FDPath(o.fd) + "/work", nil
}

// within reports whether path is dir or lies inside it.
func within(path, dir string) bool {
	return path == dir || strings.HasPrefix(path, strings.TrimSuffix(dir, "/")+"/")
}

// maxLinks is the number of symlinks resolve follows before giving up,
// as the kernel's path walk does (MAXSYMLINKS).
const maxLinks = 40

// resolve returns the absolute path that p names, relative paths taken
// from the kernel's name of the current directory. Symlinks in the part
// of p that exists are followed and ".." after them goes up from their
// target, as the kernel would; the part that does not exist yet is taken
// as written. It reads the file system and creates nothing.
func resolve(p string) (string, error) {
	if !filepath.IsAbs(p) {
		cwd, err := syscall.Getwd()
		if err != nil {
			return "", err
		}
		p = cwd + "/" + p
	}
	todo := strings.Split(p, "/")
	cur, links := "/", 0
	for len(todo) > 0 {
		name := todo[0]
		todo = todo[1:]
		switch name {
		case "", ".":
			continue
		case "..":
			cur = filepath.Dir(cur) // cur has no symlinks: its parent is lexical
			continue
		}
		next := filepath.Join(cur, name)
		fi, err := os.Lstat(next)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			cur = next // to be created
			continue
		case err != nil:
			return "", err
		case fi.Mode()&fs.ModeSymlink == 0:
			cur = next
			continue
		}
		if links++; links > maxLinks {
			return "", &fs.PathError{Op: "resolve", Path: p, Err: unix.ELOOP}
		}
		target, err := os.Readlink(next)
		if err != nil {
			return "", err
		}
		if filepath.IsAbs(target) {
			cur = "/"
		}
		todo = append(strings.Split(target, "/"), todo...)
	}
	return cur, nil
}
