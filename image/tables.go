package image

import (
	"io/fs"
)

// tables builds the inode and directory tables and collects the id table.
type tables struct {
	w      *Writer
	inodes *metaWriter
	dirs   *metaWriter
	ids    []uint32
	idIdx  map[uint32]uint16
	// tooManyIDs: more distinct owners than the id table can index.
	tooManyIDs bool
}

func newTables(w *Writer, _ *tree) *tables {
	return &tables{w: w, inodes: newMetaWriter(w.comp), dirs: newMetaWriter(w.comp), idIdx: map[uint32]uint16{}}
}

// id returns the id table index of a uid or gid, adding it on first use.
// The index is 16 bits: with more than 65536 distinct ids the image cannot
// be written, and Finish fails with errTooManyIDs.
func (tb *tables) id(v uint32) uint16 {
	if !tb.w.opt.KeepOwner {
		v = 0
	}
	if i, ok := tb.idIdx[v]; ok {
		return i
	}
	if len(tb.ids) >= maxIDs {
		tb.tooManyIDs = true
		return 0
	}
	i := uint16(len(tb.ids))
	tb.idIdx[v] = i
	tb.ids = append(tb.ids, v)
	return i
}

func (tb *tables) header(n *node, typ uint16) inodeHeader {
	return inodeHeader{
		Type:  typ,
		Mode:  UnixPerm(n.e.Mode),
		UID:   tb.id(n.e.UID),
		GID:   tb.id(n.e.GID),
		Mtime: uint32(n.e.ModTime),
		Inode: n.ino,
	}
}

// writeInodes writes every inode below and including d, children first, and
// every directory listing; d's parent inode number is parent.
func (tb *tables) writeInodes(d *node, parent uint32) {
	subdirs := uint32(0)
	for _, c := range d.children {
		switch {
		case c.isDir():
			subdirs++
			tb.writeInodes(c, d.ino)
		case c.primary == nil:
			tb.writeInode(c)
		}
	}
	listBlock, listOff := tb.dirs.pos()
	listStart := tb.dirs.total
	index := tb.writeListing(d)
	size := tb.dirs.total - listStart + dirSizeBias

	blk, off := tb.inodes.pos()
	d.ref = inodeRef(blk, off)
	nlink := 2 + subdirs
	if len(index) == 0 && size <= 0xFFFF {
		tb.inodes.write(le(tb.header(d, TypeDir)))
		tb.inodes.write(le(dirInode{StartBlock: uint32(listBlock), Nlink: nlink,
			FileSize: uint16(size), Offset: listOff, ParentInode: parent}))
		return
	}
	tb.inodes.write(le(tb.header(d, TypeLDir)))
	tb.inodes.write(le(ldirInode{Nlink: nlink, FileSize: uint32(size), StartBlock: uint32(listBlock),
		ParentInode: parent, IndexCount: uint16(len(index)), Offset: listOff, Xattr: NoXattr}))
	for _, ix := range index {
		tb.inodes.write(le(ix.dirIndex))
		tb.inodes.write([]byte(ix.name))
	}
}

type indexEntry struct {
	dirIndex
	name string
}

// writeListing writes d's entries as runs under directory headers and
// returns the directory index: one entry per header that starts in a new
// metadata block, so the kernel's lookup can skip straight to the block
// holding a name. A header covers at most DirMaxEntries entries whose
// inodes share one inode-table block and lie within a 16-bit delta of the
// header's inode number; a run is also kept within one metadata block's
// worth of bytes, as mksquashfs does, so large directories get an index
// entry for every block.
func (tb *tables) writeListing(d *node) []indexEntry {
	var index []indexEntry
	listStart := tb.dirs.total
	lastBlock := uint64(1<<64 - 1)
	kids := d.children
	for i := 0; i < len(kids); {
		first := target(kids[i])
		blk, _ := splitInodeRef(first.ref)
		base := int64(first.ino)
		j, size := i, dirHeaderSize
		for j < len(kids) && j-i < DirMaxEntries {
			t := target(kids[j])
			b, _ := splitInodeRef(t.ref)
			delta := int64(t.ino) - base
			es := dirEntrySize + len(kids[j].name)
			if b != blk || delta < -32768 || delta > 32767 || (j > i && size+es > MetadataSize) {
				break
			}
			size += es
			j++
		}
		hdrPos := tb.dirs.total
		stored, _ := tb.dirs.pos()
		if blockNo := hdrPos / MetadataSize; blockNo != lastBlock {
			if i > 0 {
				index = append(index, indexEntry{
					dirIndex: dirIndex{Index: uint32(hdrPos - listStart), StartBlock: uint32(stored),
						NameSize: uint32(len(kids[i].name) - 1)},
					name: kids[i].name,
				})
			}
			lastBlock = blockNo
		}
		tb.dirs.write(le(dirHeader{Count: uint32(j - i - 1), StartBlock: uint32(blk), Inode: uint32(base)}))
		for _, c := range kids[i:j] {
			t := target(c)
			_, off := splitInodeRef(t.ref)
			tb.dirs.write(le(dirEntry{Offset: off, InodeOffset: int16(int64(t.ino) - base),
				Type: dirEntryType(c.e.Mode), NameSize: uint16(len(c.name) - 1)}))
			tb.dirs.write([]byte(c.name))
		}
		i = j
	}
	return index
}

// target is the node owning c's inode: c itself, or its hard-link primary.
func target(c *node) *node {
	if c.primary != nil {
		return c.primary
	}
	return c
}

func dirEntryType(m fs.FileMode) uint16 {
	switch m.Type() {
	case fs.ModeDir:
		return TypeDir
	case fs.ModeSymlink:
		return TypeSymlink
	case fs.ModeDevice:
		return TypeBlockDev
	case fs.ModeDevice | fs.ModeCharDevice:
		return TypeCharDev
	case fs.ModeNamedPipe:
		return TypeFifo
	case fs.ModeSocket:
		return TypeSocket
	}
	return TypeFile
}

// writeInode writes the inode of a non-directory. Basic inodes are used
// where they can hold the values; extended ones for hard links (basic file
// inodes have no link count), files or offsets beyond 4 GiB and sparse
// files, as mksquashfs chooses.
func (tb *tables) writeInode(n *node) {
	blk, off := tb.inodes.pos()
	n.ref = inodeRef(blk, off)
	m := tb.inodes
	switch typ := dirEntryType(n.e.Mode); typ {
	case TypeFile:
		fd := n.data
		size := uint64(n.e.Size)
		if n.nlink == 1 && fd.start < 1<<32 && size < 1<<32 && fd.sparse == 0 {
			m.write(le(tb.header(n, TypeFile)))
			m.write(le(fileInode{BlocksStart: uint32(fd.start), Fragment: fd.frag,
				FragmentOffset: fd.fragOff, FileSize: uint32(size)}))
		} else {
			m.write(le(tb.header(n, TypeLFile)))
			m.write(le(lfileInode{BlocksStart: fd.start, FileSize: size, Sparse: fd.sparse,
				Nlink: n.nlink, Fragment: fd.frag, FragmentOffset: fd.fragOff, Xattr: NoXattr}))
		}
		m.write(le(fd.sizes))
	case TypeSymlink:
		m.write(le(tb.header(n, TypeSymlink)))
		m.write(le(symlinkInode{Nlink: n.nlink, TargetSize: uint32(len(n.e.Link))}))
		m.write([]byte(n.e.Link))
	case TypeBlockDev, TypeCharDev:
		m.write(le(tb.header(n, typ)))
		m.write(le(devInode{Nlink: n.nlink, Rdev: encodeDev(devMajor(n.e.Rdev), devMinor(n.e.Rdev))}))
	default: // fifo, socket
		m.write(le(tb.header(n, typ)))
		m.write(le(ipcInode{Nlink: n.nlink}))
	}
}

// devMajor and devMinor split a Linux st_rdev (glibc's encoding).
func devMajor(rdev uint64) uint32 {
	return uint32((rdev>>8)&0xfff | (rdev>>32)&^0xfff)
}

func devMinor(rdev uint64) uint32 {
	return uint32(rdev&0xff | (rdev>>12)&^0xff)
}
