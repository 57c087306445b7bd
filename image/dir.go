package image

import (
	"errors"
	"fmt"
	"path"
	"strings"
)

// validName reports whether name can be created in a directory as is:
// anything else could escape the extraction directory or alias an entry.
func validName(name string) bool {
	return name != "" && name != "." && name != ".." && !strings.ContainsAny(name, "/\x00")
}

// ReadDir lists a directory in stored order (sorted by name, as the kernel's
// lookup requires). Names that are empty, ".", "..", or contain '/' or NUL
// are reported as ErrFormat.
func (r *Reader) ReadDir(dir *Node) ([]*Node, error) {
	var out []*Node
	err := r.readDir(dir, func(name string, ref uint64, typ uint16) (bool, error) {
		n, err := r.child(dir, name, ref, typ)
		if err != nil {
			return false, err
		}
		out = append(out, n)
		return true, nil
	})
	return out, err
}

// child reads the inode a directory entry points to.
func (r *Reader) child(dir *Node, name string, ref uint64, typ uint16) (*Node, error) {
	n, err := r.readInode(ref)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path.Join(dir.Path, name), err)
	}
	if basicType(n.typ) != typ {
		return nil, formatError("%s: entry type %d, inode type %d", path.Join(dir.Path, name), typ, n.typ)
	}
	n.Name = name
	n.Path = name
	if dir.Path != "." {
		n.Path = dir.Path + "/" + name
	}
	n.depth = dir.depth + 1
	return n, nil
}

// readDir calls fn for each entry of dir until fn returns false.
func (r *Reader) readDir(dir *Node, fn func(name string, ref uint64, typ uint16) (bool, error)) error {
	if dir == nil || !dir.IsDir() {
		return fmt.Errorf("image: readdir: not a directory")
	}
	// The stored size counts 3 bytes for "." and ".." that are not stored,
	// as the kernel's readdir does; smaller sizes mean an empty directory.
	return r.readListing(dir, dir.dirBlock, dir.dirOffset, int64(dir.dirSize)-dirSizeBias, fn)
}

// readListing reads a directory listing from directory table block block
// (relative), offset off, for left bytes.
func (r *Reader) readListing(dir *Node, block uint32, off uint16, left int64, fn func(name string, ref uint64, typ uint16) (bool, error)) error {
	if left <= 0 {
		// Empty: the position is wherever the writer was, possibly the
		// very end of an empty directory table, and is never read.
		return nil
	}
	if uint64(block) >= uint64(r.dirEnd-r.dirStart) || off >= MetadataSize {
		return formatError("%s: listing at block %d offset %d", dir.Path, block, off)
	}
	c := r.cursor(r.dirStart+int64(block), int(off), r.dirEnd)
	for left > 0 {
		var h dirHeader
		c.decode(&h)
		left -= dirHeaderSize
		if c.err != nil {
			return fmt.Errorf("%s: directory header: %w", dir.Path, c.err)
		}
		if h.Count >= DirMaxEntries || uint64(h.StartBlock) >= uint64(r.inodeEnd-r.inodeStart) {
			return formatError("%s: directory header count %d, inode block %d", dir.Path, h.Count+1, h.StartBlock)
		}
		for i := uint32(0); i <= h.Count; i++ {
			var e dirEntry
			c.decode(&e)
			left -= dirEntrySize + int64(e.NameSize) + 1
			if c.err == nil && (e.NameSize >= DirMaxName || left < 0) {
				return formatError("%s: directory entry name size %d, %d bytes left", dir.Path, int(e.NameSize)+1, left)
			}
			name := string(c.read(int(e.NameSize) + 1))
			if c.err != nil {
				return fmt.Errorf("%s: directory entry: %w", dir.Path, c.err)
			}
			if !validName(name) {
				return formatError("%s: invalid name %q", dir.Path, name)
			}
			if e.Type < TypeDir || e.Type > TypeSocket || e.Offset >= MetadataSize {
				return formatError("%s/%s: entry type %d, offset %d", dir.Path, name, e.Type, e.Offset)
			}
			more, err := fn(name, inodeRef(uint64(h.StartBlock), e.Offset), e.Type)
			if err != nil || !more {
				return err
			}
		}
	}
	return nil
}

// Lookup finds a slash-separated path relative to the root ("." or "" is
// the root itself). It does not follow symlinks. Missing entries give
// ErrNotExist; so does a path through a non-directory.
func (r *Reader) Lookup(name string) (*Node, error) {
	n, err := r.Root()
	if err != nil {
		return nil, err
	}
	for _, part := range strings.Split(name, "/") {
		if part == "" || part == "." {
			continue
		}
		if part == ".." {
			return nil, fmt.Errorf("image: lookup %s: '..' is not supported", name)
		}
		c, err := r.Child(n, part)
		if errors.Is(err, ErrNotExist) {
			return nil, fmt.Errorf("%w: %s", ErrNotExist, name)
		}
		if err != nil {
			return nil, err
		}
		n = c
	}
	return n, nil
}

// Child returns the entry called name in directory dir: one step of a
// lookup, as a file system asks for it. name is a single element; "." and
// ".." are not entries of a listing, and are not found.
func (r *Reader) Child(dir *Node, name string) (*Node, error) {
	if !dir.IsDir() {
		return nil, fmt.Errorf("%w: %s/%s", ErrNotExist, dir.Path, name)
	}
	var found *Node
	block, off, left, err := r.seekIndex(dir, name)
	if err != nil {
		return nil, err
	}
	err = r.readListing(dir, block, off, left, func(ename string, ref uint64, typ uint16) (bool, error) {
		if ename != name {
			return true, nil
		}
		c, err := r.child(dir, ename, ref, typ)
		found = c
		return false, err
	})
	if err != nil {
		return nil, err
	}
	if found == nil {
		return nil, fmt.Errorf("%w: %s", ErrNotExist, path.Join(dir.Path, name))
	}
	return found, nil
}

// seekIndex returns where to start looking for name in dir's listing and
// how many listing bytes remain from there. Extended directories carry an
// index with one entry per metadata block the listing spans: the listing
// offset and block of the first header in that block, and that header's
// first name. As the kernel's namei.c does, we skip to the last indexed
// header whose name sorts at or before the one we want. The scan from
// there still reads to the end, so an unsorted listing costs time, not
// correctness, unless the index itself lies.
func (r *Reader) seekIndex(dir *Node, name string) (block uint32, off uint16, left int64, err error) {
	block, off, left = dir.dirBlock, dir.dirOffset, int64(dir.dirSize)-dirSizeBias
	if dir.idxCount == 0 || left <= 0 {
		return block, off, left, nil
	}
	c := r.cursor(dir.idxPos.block, dir.idxPos.off, r.inodeEnd)
	var skip uint32
	for i := 0; i < int(dir.idxCount); i++ {
		var ix dirIndex
		c.decode(&ix)
		if c.err == nil && ix.NameSize >= DirMaxName {
			return 0, 0, 0, formatError("%s: directory index name size %d", dir.Path, ix.NameSize+1)
		}
		iname := c.read(int(ix.NameSize) + 1)
		if c.err != nil {
			return 0, 0, 0, fmt.Errorf("%s: directory index: %w", dir.Path, c.err)
		}
		if string(iname) > name {
			break
		}
		if int64(ix.Index) >= left || ix.Index < skip || uint64(ix.StartBlock) >= uint64(r.dirEnd-r.dirStart) {
			return 0, 0, 0, formatError("%s: directory index entry %d (offset %d, block %d)", dir.Path, i, ix.Index, ix.StartBlock)
		}
		skip, block = ix.Index, ix.StartBlock
	}
	if skip == 0 {
		return dir.dirBlock, dir.dirOffset, left, nil
	}
	return block, uint16((uint32(dir.dirOffset) + skip) % MetadataSize), left - int64(skip), nil
}

// Walk calls fn for every node, the root first, depth first in stored
// order, parents before their children. An error from fn stops the walk and
// is returned. Each directory is entered once (see enterDir): a second name
// for a directory, impossible in a real file system, is ErrFormat, which
// rules out both cycles and exponential DAGs. Directories nested deeper
// than MaxDepth are ErrFormat too.
func (r *Reader) Walk(fn func(n *Node) error) error {
	root, err := r.Root()
	if err != nil {
		return err
	}
	seen := map[uint64]bool{}
	if err := enterDir(root, seen); err != nil {
		return err
	}
	return r.walk(root, seen, fn)
}

func (r *Reader) walk(dir *Node, seen map[uint64]bool, fn func(*Node) error) error {
	if err := fn(dir); err != nil {
		return err
	}
	// Stream the listing rather than ReadDir it: a hostile listing can
	// name the same inode millions of times from a small image, and fn
	// (or its caller's budget) should get to stop that early.
	return r.eachChild(dir, func(k *Node) error {
		if !k.IsDir() {
			return fn(k)
		}
		if err := enterDir(k, seen); err != nil {
			return err
		}
		return r.walk(k, seen, fn)
	})
}

// eachChild calls fn for each entry of dir, in stored order, with its inode
// read.
func (r *Reader) eachChild(dir *Node, fn func(*Node) error) error {
	return r.readDir(dir, func(name string, ref uint64, typ uint16) (bool, error) {
		k, err := r.child(dir, name, ref, typ)
		if err == nil {
			err = fn(k)
		}
		return err == nil, err
	})
}

// enterDir records that directory k is being entered, refusing a second
// visit and excessive depth. Directories are keyed by inode number and, when
// not empty, by where their listing starts: a hostile image could otherwise
// give many inodes (or many names) the same listing and make a small image
// expand exponentially, each level doubling the one below. Empty
// directories may share a listing position (mksquashfs writes nothing for
// them).
func enterDir(k *Node, seen map[uint64]bool) error {
	const listingKey = 1 << 63
	lk := listingKey | uint64(k.dirBlock)<<16 | uint64(k.dirOffset)
	if seen[uint64(k.Inode)] || k.dirSize > dirSizeBias && seen[lk] {
		return formatError("%s: directory reached twice (cycle or hard-linked directory)", k.Path)
	}
	if k.depth > MaxDepth {
		return formatError("%s: nested deeper than %d", k.Path, MaxDepth)
	}
	seen[uint64(k.Inode)] = true
	if k.dirSize > dirSizeBias {
		seen[lk] = true
	}
	return nil
}
