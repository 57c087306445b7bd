package tests

// The oracle's data model is internal/treecmp's, which package image's
// tests share: a view is what one reader shows of a tree (path to entry),
// built from lstat on a real directory (the source, an unsquashfs
// extraction, a kernel mount) or from a squashfs reader library. compare
// then checks a reader's view against the source view. The names below keep
// this package's vocabulary for the oracle and pack tests.

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

type entry = treecmp.Entry

// view is one reader's tree; entries is its Entries.
type view struct {
	*treecmp.View
	entries map[string]*entry
}

func newView(name string) *view { return wrapView(treecmp.NewView(name)) }

func wrapView(v *treecmp.View) *view { return &view{View: v, entries: v.Entries} }

// lstatView walks a real directory tree without following symlinks.
func lstatView(name, root string) (*view, error) {
	v, err := treecmp.Lstat(name, root)
	if err != nil {
		return nil, err
	}
	return wrapView(v), nil
}

// expect says how the packed tree should differ from the source; see
// treecmp.Expect.
type expect struct {
	keepOwner         bool
	clamp             int64           // SOURCE_DATE_EPOCH; < 0 when unset
	exclude           map[string]bool // source paths left out (with everything below)
	splitSymlinkLinks bool            // only the control (TestOracleControl) sets it
	ignoreMtime       map[string]bool // directories the pack itself changed
}

// compare checks got against the source view and returns one line per
// difference and notes on what got's reader could not check.
func compare(src, got *view, x expect) (problems, notes []string) {
	return treecmp.Compare(src.View, got.View, treecmp.Expect{
		KeepOwner: x.keepOwner, Clamp: x.clamp, Exclude: x.exclude,
		SplitSymlinkLinks: x.splitSymlinkLinks, IgnoreMtime: x.ignoreMtime,
	})
}

// diskfsView reads the image at [off, off+size) of file with go-diskfs.
//
// Its limits, each reported rather than skipped silently: FileInfo.Mode
// drops setuid/setgid/sticky; device numbers are not exposed; ReadDir takes
// a path and refuses any that is not valid UTF-8 (io/fs.ValidPath), so the
// content of a directory with a non-UTF-8 name in its path cannot be listed
// (files with such names in listable directories are still read, through
// their directory entry).
func diskfsView(file string, off, size int64) (*view, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	fsys, err := dsquash.Read(dfile.New(f, true), size, off, 0)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("go-diskfs: %w", err)
	}
	v := newView("go-diskfs")
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

func diskfsEntry(info fs.FileInfo) *entry {
	e := &entry{Mode: info.Mode(), Mtime: info.ModTime().Unix()}
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
func ourView(file string, off, size int64) (*view, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	r, err := image.NewReader(io.NewSectionReader(f, off, size), size)
	if err != nil {
		f.Close()
		return nil, err
	}
	v := newView("image.Reader")
	err = r.Walk(func(n *image.Node) error {
		e := &entry{Mode: n.Mode, UID: n.UID, GID: n.GID, Mtime: n.ModTime, Link: n.Link, Rdev: n.Rdev, ID: fmt.Sprint(n.Inode), Nlink: n.Nlink}
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
		if _, dup := v.entries[p]; dup {
			return fmt.Errorf("Walk visited %q twice", p)
		}
		v.Add(p, e)
		return nil
	})
	return v, err
}
