package tests

// The readers of a packed image that have no directory to lstat: go-diskfs
// and image.Reader. Each returns an internal/treecmp view, which the oracle
// and pack tests compare with treecmp.Compare against the source's
// treecmp.Lstat view (as they do the views of an unsquashfs extraction and
// a kernel mount).

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"unicode/utf8"

	dfile "github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/filesystem"
	dsquash "github.com/diskfs/go-diskfs/filesystem/squashfs"
	"github.com/parkerpack/parker/image"
	"github.com/parkerpack/parker/internal/treecmp"
)

// diskfsView reads the image at [off, off+size) of file with go-diskfs.
//
// Its limits, each reported rather than skipped silently: FileInfo.Mode
// drops setuid/setgid/sticky; device numbers are not exposed; ReadDir takes
// a path and refuses any that is not valid UTF-8 (io/fs.ValidPath), so the
// content of a directory with a non-UTF-8 name in its path cannot be listed
// (files with such names in listable directories are still read, through
// their directory entry).
func diskfsView(file string, off, size int64) (*treecmp.View, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	fsys, err := dsquash.Read(dfile.New(f, true), size, off, 0)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("go-diskfs: %w", err)
	}
	v := treecmp.NewView("go-diskfs")
	v.NoSpecialBits, v.NoRdev = true, true
	info, err := fsys.Stat(".")
	if err != nil {
		return nil, fmt.Errorf("go-diskfs: stat root: %w", err)
	}
	v.Add(".", diskfsEntry(info))
	var walk func(dir string) error
	walk = func(dir string) error {
		des, err := fsys.ReadDir(dir)
		if err != nil {
			return fmt.Errorf("go-diskfs: ReadDir %q: %w", dir, err)
		}
		for _, de := range des {
			p := path.Join(dir, de.Name())
			info, err := de.Info()
			if err != nil {
				return fmt.Errorf("go-diskfs: %q: %w", p, err)
			}
			e := diskfsEntry(info)
			if e.Mode.IsRegular() {
				op, ok := de.(interface {
					Open() (filesystem.File, error)
				})
				if !ok {
					return fmt.Errorf("go-diskfs: %q: directory entry %T has no Open", p, de)
				}
				e.Open = func() (io.ReadCloser, error) { return op.Open() }
			}
			v.Add(p, e)
			if e.Mode.IsDir() {
				if !utf8.ValidString(p) {
					v.Unlisted = append(v.Unlisted, p)
					continue
				}
				if err := walk(p); err != nil {
					return err
				}
			}
		}
		return nil
	}
	return v, walk(".")
}

func diskfsEntry(info fs.FileInfo) *treecmp.Entry {
	e := &treecmp.Entry{Mode: info.Mode(), Mtime: info.ModTime().Unix()}
	if st, ok := info.Sys().(*dsquash.StatT); ok {
		e.UID, e.GID = st.UID, st.GID
		e.ID = fmt.Sprint(st.Inode)
		e.Link = st.LinkTarget
	}
	if e.Mode.IsRegular() {
		e.Size = info.Size()
	}
	return e
}

// ourView reads the image with image.Reader.
func ourView(file string, off, size int64) (*treecmp.View, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	r, err := image.NewReader(io.NewSectionReader(f, off, size), size)
	if err != nil {
		f.Close()
		return nil, err
	}
	v := treecmp.NewView("image.Reader")
	err = r.Walk(func(n *image.Node) error {
		e := &treecmp.Entry{Mode: n.Mode, UID: n.UID, GID: n.GID, Mtime: n.ModTime, Link: n.Link, Rdev: n.Rdev, ID: fmt.Sprint(n.Inode), Nlink: n.Nlink}
		if n.Mode.IsRegular() {
			e.Size = n.Size
			e.Open = func() (io.ReadCloser, error) {
				fr, err := r.Open(n)
				if err != nil {
					return nil, err
				}
				return io.NopCloser(fr), nil
			}
		}
		p := n.Path
		if p == "" {
			p = "."
		}
		if _, dup := v.Entries[p]; dup {
			return fmt.Errorf("Walk visited %q twice", p)
		}
		v.Add(p, e)
		return nil
	})
	return v, err
}
