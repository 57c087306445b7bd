package image

import (
	"errors"
	"io"
	"io/fs"
)

var errNotImplemented = errors.New("image: reader not implemented yet")

// Reader reads a SquashFS 4.0 image from an io.ReaderAt.
type Reader struct {
	r    io.ReaderAt
	size int64
	sb   Superblock
}

// Node is one entry of the image.
type Node struct {
	Name    string      // base name; "" for the root
	Path    string      // slash-separated, relative to the root; "." for the root
	Mode    fs.FileMode // type bits and permissions incl. setuid/setgid/sticky
	UID     uint32
	GID     uint32
	ModTime int64  // seconds since the epoch
	Size    int64  // regular files: content length; symlinks: target length
	Inode   uint32 // inode number; hard links share it
	Nlink   uint32
	Link    string // symlink target
	Rdev    uint64 // device nodes: unix.Mkdev(major, minor)
}

// ExtractOptions control Reader.Extract.
type ExtractOptions struct {
	Workers   int  // decompression goroutines; <= 0 means runtime.GOMAXPROCS(0)
	KeepOwner bool // chown to the stored owners (only effective as root)
	// Warn, when set, receives messages about entries that were skipped or
	// only partly restored (e.g. device nodes when not root).
	Warn func(string)
}

// File reads the content of a regular file node.
type File struct {
	r *Reader
	n *Node
}

// NewReader checks the superblock of the image in r, whose length is size.
func NewReader(r io.ReaderAt, size int64) (*Reader, error) { return nil, errNotImplemented }

// Superblock returns a copy of the image's superblock.
func (r *Reader) Superblock() Superblock { return r.sb }

// Compression returns the compression name (Zstd, Gzip, XZ, LZ4 or None).
func (r *Reader) Compression() string { return "" }

// Root returns the root directory.
func (r *Reader) Root() (*Node, error) { return nil, errNotImplemented }

// ReadDir lists a directory in stored (sorted) order.
func (r *Reader) ReadDir(dir *Node) ([]*Node, error) { return nil, errNotImplemented }

// Lookup finds a slash-separated path relative to the root.
func (r *Reader) Lookup(path string) (*Node, error) { return nil, errNotImplemented }

// Walk calls fn for every node, depth first, parents before children.
func (r *Reader) Walk(fn func(n *Node) error) error { return errNotImplemented }

// Open returns a reader for a regular file's content.
func (r *Reader) Open(n *Node) (*File, error) { return nil, errNotImplemented }

// Extract writes the whole tree into dir.
func (r *Reader) Extract(dir string, opt ExtractOptions) error { return errNotImplemented }

func (f *File) Read(p []byte) (int, error)              { return 0, errNotImplemented }
func (f *File) ReadAt(p []byte, off int64) (int, error) { return 0, errNotImplemented }
func (f *File) WriteTo(w io.Writer) (int64, error)      { return 0, errNotImplemented }
