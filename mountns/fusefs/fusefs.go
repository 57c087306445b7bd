// Package fusefs serves a payload image to the kernel over FUSE: the
// unprivileged rung's lower layer, where a loop device cannot be had (see
// mountns and the README's "Where it runs").
//
// The image is immutable, so the kernel may cache everything for as long as
// the mount lives: entries, attributes and negative lookups get long
// timeouts, and file pages stay in the page cache across opens
// (FOPEN_KEEP_CACHE). Requests are served concurrently, each in a goroutine
// of its own (github.com/hanwen/go-fuse/v2 does the protocol), over
// parker's own image reader, which is safe for concurrent use. Reads go up
// to 1 MiB a request.
//
// Everything in the view is owned by the user the run is for: on this rung
// the run is in a user namespace where that user alone is mapped, so the
// image's stored owners would read as the overflow id, and the overlay
// above could not copy a file up under an owner it cannot name.
//
// A damaged image never stops the server: the request that met the damage
// gets EIO, and the first such error is reported once, by Options.Damaged.
package fusefs

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"sync"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/parkerpack/parker/image"
)

// forever is the kernel's cache lifetime for entries and attributes: the
// image never changes under a mount.
const forever = 365 * 24 * time.Hour

// maxRequest is the largest read the kernel is asked to send (its bound is
// 256 pages on Linux 4.20 and later).
const maxRequest = 1 << 20

// Options say whom the view is for, and where damage is reported.
type Options struct {
	UID, GID uint32 // owner of every entry
	// Damaged, when set, is called once, with the first error the image
	// gave (every request that meets one gets EIO).
	Damaged func(error)
}

// FS is an image, as a FUSE file system.
type FS struct {
	img  *image.Reader
	opt  Options
	once sync.Once
}

// Serve serves img over dev, a /dev/fuse descriptor the caller has mounted
// (with fd=, rootmode=40000, user_id= and group_id=), until the mount goes
// away. It returns once the server runs; the server's Wait returns when it
// ends.
func Serve(dev int, img *image.Reader, o Options) (*fuse.Server, error) {
	root, err := img.Root()
	if err != nil {
		return nil, err
	}
	f := &FS{img: img, opt: o}
	t := forever
	raw := gofs.NewNodeFS(&node{fs: f, n: root}, &gofs.Options{
		EntryTimeout:    &t,
		AttrTimeout:     &t,
		NegativeTimeout: &t,
		RootStableAttr:  &gofs.StableAttr{Mode: syscall.S_IFDIR, Ino: uint64(root.Inode)},
		UID:             o.UID,
		GID:             o.GID,
		NullPermissions: true, // mode 0000 is the image's, not a default to fill in
	})
	srv, err := fuse.NewServer(raw, "/dev/fd/"+itoa(dev), &fuse.MountOptions{
		MaxBackground: 64,
		MaxWrite:      maxRequest, // sets the largest request, reads too
		MaxReadAhead:  maxRequest,
		DisableXAttrs: true, // the image has none: the kernel stops asking
		FsName:        "parker",
		Name:          "parker",
	})
	if err != nil {
		return nil, err
	}
	go srv.Serve()
	return srv, nil
}

func itoa(n int) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + n%10)
		if n /= 10; n == 0 {
			return string(b[i:])
		}
	}
}

// eio reports err (once) and answers EIO; a missing entry is ENOENT.
func (f *FS) eio(err error) syscall.Errno {
	if errors.Is(err, image.ErrNotExist) {
		return syscall.ENOENT
	}
	if f.opt.Damaged != nil {
		f.once.Do(func() { f.opt.Damaged(err) })
	}
	return syscall.EIO
}

// node is one entry of the image.
type node struct {
	gofs.Inode
	fs *FS
	n  *image.Node

	mu   sync.Mutex
	file *image.File // opened on first use, shared by every open
}

var (
	_ gofs.NodeLookuper   = (*node)(nil)
	_ gofs.NodeReaddirer  = (*node)(nil)
	_ gofs.NodeGetattrer  = (*node)(nil)
	_ gofs.NodeOpener     = (*node)(nil)
	_ gofs.NodeReader     = (*node)(nil)
	_ gofs.NodeReadlinker = (*node)(nil)
	_ gofs.NodeStatfser   = (*node)(nil)
)

// unixMode is n's type and permission bits as stat gives them.
func unixMode(n *image.Node) uint32 {
	m := uint32(image.UnixPerm(n.Mode))
	switch t := n.Mode.Type(); {
	case t&fs.ModeDir != 0:
		m |= syscall.S_IFDIR
	case t&fs.ModeSymlink != 0:
		m |= syscall.S_IFLNK
	case t&fs.ModeNamedPipe != 0:
		m |= syscall.S_IFIFO
	case t&fs.ModeSocket != 0:
		m |= syscall.S_IFSOCK
	case t&fs.ModeCharDevice != 0:
		m |= syscall.S_IFCHR
	case t&fs.ModeDevice != 0:
		m |= syscall.S_IFBLK
	default:
		m |= syscall.S_IFREG
	}
	return m
}

func (x *node) fill(out *fuse.Attr) {
	n := x.n
	out.Ino = uint64(n.Inode)
	out.Mode = unixMode(n)
	out.Nlink = max(n.Nlink, 1)
	out.Uid, out.Gid = x.fs.opt.UID, x.fs.opt.GID
	out.Rdev = uint32(n.Rdev)
	out.Blksize = 4096
	if n.Mode.IsRegular() || n.Mode.Type() == fs.ModeSymlink {
		out.Size = uint64(n.Size)
		out.Blocks = (out.Size + 511) / 512
	}
	t := uint64(n.ModTime)
	out.Atime, out.Mtime, out.Ctime = t, t, t
}

func (x *node) child(ctx context.Context, n *image.Node) *gofs.Inode {
	return x.NewInode(ctx, &node{fs: x.fs, n: n},
		gofs.StableAttr{Mode: unixMode(n) & syscall.S_IFMT, Ino: uint64(n.Inode)})
}

func (x *node) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	c, err := x.fs.img.Child(x.n, name)
	if err != nil {
		return nil, x.fs.eio(err)
	}
	in := x.child(ctx, c)
	in.Operations().(*node).fill(&out.Attr)
	return in, 0
}

func (x *node) Readdir(ctx context.Context) (gofs.DirStream, syscall.Errno) {
	list, err := x.fs.img.ReadDir(x.n)
	if err != nil {
		return nil, x.fs.eio(err)
	}
	out := make([]fuse.DirEntry, len(list))
	for i, c := range list {
		out[i] = fuse.DirEntry{Name: c.Name, Ino: uint64(c.Inode), Mode: unixMode(c)}
	}
	return gofs.NewListDirStream(out), 0
}

func (x *node) Getattr(ctx context.Context, _ gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	x.fill(&out.Attr)
	out.SetTimeout(forever)
	return 0
}

func (x *node) Readlink(ctx context.Context) ([]byte, syscall.Errno) {
	if x.n.Mode.Type() != fs.ModeSymlink {
		return nil, syscall.EINVAL
	}
	return []byte(x.n.Link), 0
}

func (x *node) Open(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	if flags&(syscall.O_WRONLY|syscall.O_RDWR|syscall.O_TRUNC) != 0 {
		return nil, 0, syscall.EROFS
	}
	if _, err := x.open(); err != nil {
		return nil, 0, x.fs.eio(err)
	}
	return nil, fuse.FOPEN_KEEP_CACHE, 0
}

// open opens the file's content once: its block list is read then, and
// kept for every later open.
func (x *node) open() (*image.File, error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.file == nil {
		f, err := x.fs.img.Open(x.n)
		if err != nil {
			return nil, err
		}
		x.file = f
	}
	return x.file, nil
}

func (x *node) Read(ctx context.Context, _ gofs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	f, err := x.open()
	if err != nil {
		return nil, x.fs.eio(err)
	}
	n, err := f.ReadAt(dest, off)
	if err != nil && err != io.EOF {
		return nil, x.fs.eio(err)
	}
	return fuse.ReadResultData(dest[:n]), 0
}

func (x *node) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	sb := x.fs.img.Superblock()
	out.Bsize = 4096
	out.Frsize = 4096
	out.Blocks = (sb.BytesUsed + 4095) / 4096
	out.Files = uint64(sb.Inodes)
	out.NameLen = 256
	return 0
}
