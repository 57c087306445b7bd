package treecmp

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"syscall"

	"golang.org/x/sys/unix"
)

// Lstat walks a real directory tree (a source, an extraction, a kernel
// mount) without following symlinks and returns it as a View.
func Lstat(name, root string) (*View, error) {
	v := NewView(name)
	var walk func(rel string) error
	walk = func(rel string) error {
		full := filepath.Join(root, filepath.FromSlash(rel))
		var st syscall.Stat_t
		if err := syscall.Lstat(full, &st); err != nil {
			return &fs.PathError{Op: "lstat", Path: full, Err: err}
		}
		e := &Entry{
			Mode:  unixMode(st.Mode),
			UID:   st.Uid,
			GID:   st.Gid,
			Mtime: st.Mtim.Sec,
			ID:    fmt.Sprintf("%d:%d", st.Dev, st.Ino),
			Nlink: uint32(st.Nlink),
		}
		switch e.Mode.Type() {
		case 0:
			e.Size = st.Size
			e.Open = func() (io.ReadCloser, error) { return openSparse(full) }
		case fs.ModeSymlink:
			l, err := os.Readlink(full)
			if err != nil {
				return err
			}
			e.Link = l
		case fs.ModeDevice, fs.ModeDevice | fs.ModeCharDevice:
			e.Rdev = st.Rdev
		}
		v.Add(rel, e)
		if e.Mode.IsDir() {
			f, err := os.Open(full)
			if err != nil {
				return err
			}
			names, err := f.Readdirnames(-1)
			f.Close()
			if err != nil {
				return err
			}
			sort.Strings(names)
			for _, n := range names {
				if err := walk(path.Join(rel, n)); err != nil {
					return err
				}
			}
		}
		return nil
	}
	return v, walk(".")
}

// sparseFile reads a file on a real file system without reading its holes:
// SEEK_DATA/SEEK_HOLE find them and they read as zeros, which is what the
// kernel guarantees. Reading 5 GiB of ext4 holes page by page is slow and
// proves nothing about the image.
type sparseFile struct {
	f              *os.File
	off, end, size int64
	hole           bool
}

func openSparse(name string) (io.ReadCloser, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil || st.Size() < 1<<20 {
		return f, err
	}
	return &sparseFile{f: f, size: st.Size()}, nil
}

func (s *sparseFile) Read(p []byte) (int, error) {
	if s.off >= s.size {
		return 0, io.EOF
	}
	if s.off >= s.end {
		fd := int(s.f.Fd())
		d, err := unix.Seek(fd, s.off, unix.SEEK_DATA)
		switch {
		case err == unix.ENXIO: // only a hole is left
			s.hole, s.end = true, s.size
		case err != nil:
			return 0, err
		case d > s.off:
			s.hole, s.end = true, d
		default:
			h, err := unix.Seek(fd, s.off, unix.SEEK_HOLE)
			if err != nil {
				return 0, err
			}
			s.hole, s.end = false, h
		}
	}
	n := int(min(int64(len(p)), s.end-s.off))
	if s.hole {
		clear(p[:n])
	} else {
		var err error
		if n, err = s.f.ReadAt(p[:n], s.off); err != nil && err != io.EOF {
			return n, err
		}
	}
	s.off += int64(n)
	return n, nil
}

func (s *sparseFile) Close() error { return s.f.Close() }

// unixMode turns st_mode into an fs.FileMode. internal/walk has its own
// (fileMode) on purpose: an oracle must not share the code it checks.
func unixMode(m uint32) fs.FileMode {
	mode := fs.FileMode(m & 0o777)
	switch m & syscall.S_IFMT {
	case syscall.S_IFDIR:
		mode |= fs.ModeDir
	case syscall.S_IFLNK:
		mode |= fs.ModeSymlink
	case syscall.S_IFIFO:
		mode |= fs.ModeNamedPipe
	case syscall.S_IFSOCK:
		mode |= fs.ModeSocket
	case syscall.S_IFCHR:
		mode |= fs.ModeDevice | fs.ModeCharDevice
	case syscall.S_IFBLK:
		mode |= fs.ModeDevice
	}
	if m&syscall.S_ISUID != 0 {
		mode |= fs.ModeSetuid
	}
	if m&syscall.S_ISGID != 0 {
		mode |= fs.ModeSetgid
	}
	if m&syscall.S_ISVTX != 0 {
		mode |= fs.ModeSticky
	}
	return mode
}
