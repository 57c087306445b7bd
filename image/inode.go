package image

import (
	"fmt"
	"io/fs"
	"strings"

	"golang.org/x/sys/unix"
)

// Node is one entry of the image.
type Node struct {
	Name    string      // base name; "" for the root
	Path    string      // slash-separated, relative to the root; "." for the root
	Mode    fs.FileMode // type bits and permissions incl. setuid/setgid/sticky
	UID     uint32
	GID     uint32
	ModTime int64  // seconds since the epoch
	Size    int64  // regular files: content length; symlinks: target length; directories: listing size
	Inode   uint32 // inode number; hard links share it
	Nlink   uint32
	Link    string // symlink target
	Rdev    uint64 // device nodes: unix.Mkdev(major, minor)

	typ   uint16 // inode type, basic or extended
	ref   uint64 // inode reference: where the inode is stored
	depth int

	// Directories: where the listing starts, its size including the
	// dirSizeBias, and for extended directories the index after the inode.
	dirBlock  uint32
	dirOffset uint16
	dirSize   uint32
	idxCount  uint16
	idxPos    cursorPos

	// Regular files.
	blocksStart uint64
	fragment    uint32
	fragOffset  uint32
	blockList   cursorPos // the block size list right after the inode
}

// IsDir reports whether n is a directory.
func (n *Node) IsDir() bool { return n.Mode.IsDir() }

// basicType maps extended inode types to the basic ones directory entries
// carry.
func basicType(t uint16) uint16 {
	if t >= TypeLDir && t <= TypeLSocket {
		return t - (TypeLDir - TypeDir)
	}
	return t
}

// readInode parses the inode at ref; the caller gives the node its name
// and path.
func (r *Reader) readInode(ref uint64) (*Node, error) {
	block, off := splitInodeRef(ref)
	if block >= uint64(r.inodeEnd-r.inodeStart) || off >= MetadataSize {
		return nil, formatError("inode reference %#x", ref)
	}
	c := r.cursor(r.inodeStart+int64(block), int(off), r.inodeEnd)
	var h inodeHeader
	c.decode(&h)
	if c.err != nil {
		return nil, fmt.Errorf("inode %#x: %w", ref, c.err)
	}
	if h.Inode == 0 || h.Inode > r.sb.Inodes {
		return nil, formatError("inode %#x: number %d of %d", ref, h.Inode, r.sb.Inodes)
	}
	if int(h.UID) >= len(r.ids) || int(h.GID) >= len(r.ids) {
		return nil, formatError("inode %d: owner index %d:%d of %d ids", h.Inode, h.UID, h.GID, len(r.ids))
	}
	n := &Node{
		UID:     r.ids[h.UID],
		GID:     r.ids[h.GID],
		ModTime: int64(h.Mtime),
		Inode:   h.Inode,
		Nlink:   1,
		typ:     h.Type,
		ref:     ref,
	}
	// The mode field holds only the low 12 bits of st_mode (mksquashfs
	// masks it; the kernel ORs in S_IF* from the inode type). Higher bits
	// appear only in hostile images and are ignored: the type comes from
	// the inode type alone.
	perm := fs.FileMode(h.Mode & 0o777)
	if h.Mode&unix.S_ISUID != 0 {
		perm |= fs.ModeSetuid
	}
	if h.Mode&unix.S_ISGID != 0 {
		perm |= fs.ModeSetgid
	}
	if h.Mode&unix.S_ISVTX != 0 {
		perm |= fs.ModeSticky
	}
	switch h.Type {
	case TypeDir:
		var d dirInode
		c.decode(&d)
		n.Mode = fs.ModeDir | perm
		n.Nlink, n.dirBlock, n.dirOffset, n.dirSize = d.Nlink, d.StartBlock, d.Offset, uint32(d.FileSize)
		n.Size = int64(d.FileSize)
	case TypeLDir:
		var d ldirInode
		c.decode(&d)
		n.Mode = fs.ModeDir | perm
		n.Nlink, n.dirBlock, n.dirOffset, n.dirSize = d.Nlink, d.StartBlock, d.Offset, d.FileSize
		n.Size = int64(d.FileSize)
		n.idxCount, n.idxPos = d.IndexCount, c.pos
	case TypeFile:
		var f fileInode
		c.decode(&f)
		n.Mode = perm
		n.Size, n.blocksStart, n.fragment, n.fragOffset = int64(f.FileSize), uint64(f.BlocksStart), f.Fragment, f.FragmentOffset
		n.blockList = c.pos
	case TypeLFile:
		var f lfileInode
		c.decode(&f)
		n.Mode = perm
		if f.FileSize > 1<<62 {
			return nil, formatError("inode %d: file size %d", h.Inode, f.FileSize)
		}
		n.Size, n.blocksStart, n.fragment, n.fragOffset = int64(f.FileSize), f.BlocksStart, f.Fragment, f.FragmentOffset
		n.Nlink = f.Nlink
		n.blockList = c.pos
	case TypeSymlink, TypeLSymlink:
		var s symlinkInode
		c.decode(&s)
		if c.err == nil && (s.TargetSize == 0 || s.TargetSize > maxSymlink) {
			return nil, formatError("inode %d: symlink target length %d", h.Inode, s.TargetSize)
		}
		target := c.read(int(s.TargetSize))
		n.Mode = fs.ModeSymlink | perm
		n.Nlink, n.Link, n.Size = s.Nlink, string(target), int64(s.TargetSize)
		if c.err == nil && strings.IndexByte(n.Link, 0) >= 0 {
			return nil, formatError("inode %d: NUL in symlink target", h.Inode)
		}
	case TypeBlockDev, TypeCharDev, TypeLBlockDev, TypeLCharDev:
		var d devInode
		c.decode(&d)
		n.Mode = fs.ModeDevice | perm
		if basicType(h.Type) == TypeCharDev {
			n.Mode |= fs.ModeCharDevice
		}
		major, minor := decodeDev(d.Rdev)
		n.Nlink, n.Rdev = d.Nlink, unix.Mkdev(major, minor)
	case TypeFifo, TypeSocket, TypeLFifo, TypeLSocket:
		var p ipcInode
		c.decode(&p)
		n.Mode = fs.ModeNamedPipe | perm
		if basicType(h.Type) == TypeSocket {
			n.Mode = fs.ModeSocket | perm
		}
		n.Nlink = p.Nlink
	default:
		return nil, formatError("inode %d: unknown type %d", h.Inode, h.Type)
	}
	if c.err != nil {
		return nil, fmt.Errorf("inode %d: %w", h.Inode, c.err)
	}
	return n, nil
}

// Root returns the root directory.
func (r *Reader) Root() (*Node, error) {
	n, err := r.readInode(r.sb.RootInode)
	if err != nil {
		return nil, err
	}
	if !n.IsDir() {
		return nil, formatError("root inode is not a directory")
	}
	n.Path = "."
	return n, nil
}
