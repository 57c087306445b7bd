package image

// The reader follows the SquashFS 4.0 layout as the kernel reads it
// (fs/squashfs: super.c, inode.c, dir.c, namei.c, file.c):
//
//	superblock | compressor options | data and fragment blocks |
//	inode table | directory table | fragment table | export table |
//	id table | xattr table
//
// The inode and directory tables are sequences of metadata blocks (a 2-byte
// header, then at most MetadataSize bytes once decompressed); a record may
// start in one block and end in the next, so they are read through a cursor
// that moves across block boundaries. The fragment and id tables are
// metadata blocks found through an index of u64 pointers that sits after
// them, at the superblock's table start.
//
// Nothing read from the image is trusted: every position is checked against
// the end of the table it belongs to (all of which lie within the image),
// every count against the bytes that could hold it, and every output buffer
// is sized from the block size, never from a stored length.

import (
	"container/list"
	"encoding/binary"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/parkerpack/parker/internal/lefields"
)

// Limits the reader imposes beyond the format's own.
const (
	// MaxDepth bounds directory nesting. The format has no limit, but a
	// hostile image could otherwise exhaust the stack or, when extracting,
	// file descriptors (one is held per level).
	MaxDepth = 1024
	// maxSymlink: the kernel refuses symlink targets longer than a page;
	// PATH_MAX is the most any real file system can hand mksquashfs.
	maxSymlink = 4096
	// metaCacheBlocks decompressed metadata blocks are kept (8 KiB each),
	// enough that walking a large tree decompresses each block about once.
	metaCacheBlocks = 512
	// fragCacheBlocks decompressed fragment blocks are kept: files sharing
	// a fragment are stored next to each other, so a few suffice.
	fragCacheBlocks = 4
	// blockCheckpoint: File keeps the image position of every n-th data
	// block and sums stored sizes from there, trading a little arithmetic
	// for 8 bytes per block of memory.
	blockCheckpoint = 16
	// blockListChunk size words are read from the inode table at a time.
	blockListChunk = 2048
)

// Reader reads a SquashFS 4.0 image from an io.ReaderAt. It is safe for
// concurrent use; Files opened from it may be read concurrently.
type Reader struct {
	r    io.ReaderAt
	size int64 // bytes used by the image (≤ the size given to NewReader)
	sb   Superblock
	dec  decompressor
	opts []byte // compressor options record, if any

	// Table bounds, absolute: each table's metadata lies in [start, end).
	inodeStart, inodeEnd int64
	dirStart, dirEnd     int64
	fragEnd              int64 // fragment entry blocks end where their index starts

	ids       []uint32
	fragIndex []uint64

	meta metaCache
	frag fragCache
	src  sync.Pool // scratch buffers of BlockSize for stored block bytes
}

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

// ExtractOptions control Reader.Extract.
type ExtractOptions struct {
	Workers   int  // decompression goroutines; <= 0 means runtime.GOMAXPROCS(0)
	KeepOwner bool // chown to the stored owners (only effective as root)
	// Warn, when set, receives messages about entries that were skipped or
	// only partly restored (e.g. device nodes when not root).
	Warn func(string)
}

// readAt fills p from r at off. io.ReaderAt may report io.EOF along with a
// full read at the end of its input; that is success here. A short read
// means the image is shorter than its superblock says: ErrFormat. Other
// errors (EIO) are the storage's, and pass through unchanged.
func readAt(r io.ReaderAt, p []byte, off int64) error {
	n, err := r.ReadAt(p, off)
	switch {
	case n == len(p):
		return nil
	case err == nil || err == io.EOF || err == io.ErrUnexpectedEOF:
		return formatError("image ends before byte %d", off+int64(len(p)))
	}
	return err
}

// formatError returns an ErrFormat with the details.
func formatError(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrFormat}, args...)...)
}

// NewReader checks the superblock of the image in r, of which size bytes are
// available (the payload length, padding included), and loads the id and
// fragment indexes.
func NewReader(r io.ReaderAt, size int64) (*Reader, error) {
	if size < SuperblockSize {
		return nil, formatError("%d bytes is too short for a superblock", size)
	}
	var buf [SuperblockSize]byte
	if err := readAt(r, buf[:], 0); err != nil {
		return nil, fmt.Errorf("read superblock: %w", err)
	}
	rd := &Reader{r: r}
	sb := &rd.sb
	decodeRecord(buf[:], sb)
	switch {
	case sb.Magic != Magic:
		return nil, formatError("bad magic %#x", sb.Magic)
	case sb.VersionMajor != VersionMajor || sb.VersionMinor != VersionMinor:
		return nil, formatError("version %d.%d (want %d.%d)", sb.VersionMajor, sb.VersionMinor, VersionMajor, VersionMinor)
	case sb.BlockSize < MinBlockSize || sb.BlockSize > MaxBlockSize || sb.BlockSize&(sb.BlockSize-1) != 0 ||
		1<<sb.BlockLog != sb.BlockSize:
		return nil, formatError("block size %d, log %d", sb.BlockSize, sb.BlockLog)
	case sb.BytesUsed < SuperblockSize || sb.BytesUsed > uint64(size):
		return nil, formatError("image claims %d bytes, %d available (truncated?)", sb.BytesUsed, size)
	case sb.Inodes == 0:
		return nil, formatError("no inodes")
	case sb.IDCount == 0:
		return nil, formatError("empty id table")
	}
	rd.size = int64(sb.BytesUsed)
	end := uint64(rd.size)
	// The kernel reads the tables back to front, each one ending where the
	// next begins; we check the same order and that everything fits.
	if !(SuperblockSize <= sb.InodeTableStart && sb.InodeTableStart < sb.DirTableStart && sb.DirTableStart < end) {
		return nil, formatError("inode table at %d, directory table at %d", sb.InodeTableStart, sb.DirTableStart)
	}
	rd.inodeStart, rd.inodeEnd = int64(sb.InodeTableStart), int64(sb.DirTableStart)
	rd.dirStart = int64(sb.DirTableStart)
	rd.meta.init(metaCacheBlocks)
	rd.frag.init(fragCacheBlocks)

	if sb.Flags&FlagCompressorOptions != 0 {
		opts, err := rd.readOptions()
		if err != nil {
			return nil, err
		}
		rd.opts = opts
	}
	dec, err := newDecompressor(sb.Compression, rd.opts, int(sb.BlockSize))
	if err != nil {
		return nil, err
	}
	rd.dec = dec

	// id table: index at IDTableStart, its metadata blocks before it.
	nIDIndex := (uint64(sb.IDCount)*idEntrySize + MetadataSize - 1) / MetadataSize
	idIndex, err := rd.readIndex(sb.IDTableStart, nIDIndex, "id")
	if err != nil {
		return nil, err
	}
	// Every other table ends at or before the lowest table start above the
	// directory table; the directory table ends at the lowest of them.
	rd.dirEnd = int64(end)
	lower := func(v uint64) {
		if v > sb.DirTableStart && v < uint64(rd.dirEnd) {
			rd.dirEnd = int64(v)
		}
	}
	lower(sb.IDTableStart)
	lower(idIndex[0])
	lower(sb.FragmentTableStart)
	if sb.ExportTableStart != NoTable {
		lower(sb.ExportTableStart)
	}
	if sb.XattrTableStart != NoTable {
		lower(sb.XattrTableStart)
	}
	if sb.Fragments > 0 {
		n := (uint64(sb.Fragments)*fragmentEntrySize + MetadataSize - 1) / MetadataSize
		if rd.fragIndex, err = rd.readIndex(sb.FragmentTableStart, n, "fragment"); err != nil {
			return nil, err
		}
		lower(rd.fragIndex[0])
		rd.fragEnd = int64(sb.FragmentTableStart)
	}
	if ref := sb.RootInode; ref>>16 >= uint64(rd.inodeEnd-rd.inodeStart) || ref&0xffff >= MetadataSize {
		return nil, formatError("root inode reference %#x", ref)
	}

	rd.ids = make([]uint32, 0, sb.IDCount)
	for i := uint64(0); i < nIDIndex; i++ {
		if idIndex[i] >= sb.IDTableStart {
			return nil, formatError("id block %d at %d, past its index", i, idIndex[i])
		}
		c := rd.cursor(int64(idIndex[i]), 0, int64(sb.IDTableStart))
		n := min(int(sb.IDCount)-len(rd.ids), idsPerMetablock)
		b := c.read(n * idEntrySize)
		if c.err != nil {
			return nil, fmt.Errorf("id table: %w", c.err)
		}
		for j := 0; j < n; j++ {
			rd.ids = append(rd.ids, binary.LittleEndian.Uint32(b[j*idEntrySize:]))
		}
	}
	return rd, nil
}

// readOptions reads the compressor options metadata block that follows the
// superblock. mksquashfs stores it raw; a compressed one would need the
// decompressor the options configure, so we refuse it.
func (r *Reader) readOptions() ([]byte, error) {
	var h [2]byte
	if err := readAt(r.r, h[:], SuperblockSize); err != nil {
		return nil, fmt.Errorf("compressor options: %w", err)
	}
	hdr := binary.LittleEndian.Uint16(h[:])
	n := int64(hdr &^ MetadataUncompressed)
	if hdr&MetadataUncompressed == 0 || n == 0 || n > MetadataSize || SuperblockSize+2+n > r.inodeStart {
		return nil, formatError("compressor options header %#x", hdr)
	}
	b := make([]byte, n)
	if err := readAt(r.r, b, SuperblockSize+2); err != nil {
		return nil, fmt.Errorf("compressor options: %w", err)
	}
	return b, nil
}

// readIndex reads n u64 table pointers at start; each must point into the
// image before the index itself.
func (r *Reader) readIndex(start, n uint64, what string) ([]uint64, error) {
	if n == 0 || start < SuperblockSize || start > uint64(r.size) || n > (uint64(r.size)-start)/8 {
		return nil, formatError("%s table index at %d (%d entries) outside the image", what, start, n)
	}
	b := make([]byte, n*8)
	if err := readAt(r.r, b, int64(start)); err != nil {
		return nil, fmt.Errorf("%s table index: %w", what, err)
	}
	idx := make([]uint64, n)
	for i := range idx {
		idx[i] = binary.LittleEndian.Uint64(b[i*8:])
		if idx[i] < SuperblockSize || idx[i] >= start {
			return nil, formatError("%s table block %d at %d", what, i, idx[i])
		}
	}
	return idx, nil
}

// Superblock returns a copy of the image's superblock.
func (r *Reader) Superblock() Superblock { return r.sb }

// Compression returns the compression name (Zstd, Gzip, XZ, LZ4), or None
// when inodes, data and fragments are all flagged as stored raw (the
// compressor id is then only nominal; mksquashfs keeps gzip's).
func (r *Reader) Compression() string {
	const raw = FlagUncompressedInodes | FlagUncompressedData | FlagUncompressedFragments
	if r.sb.Flags&raw == raw {
		return None
	}
	switch r.sb.Compression {
	case CompGzip:
		return Gzip
	case CompXZ:
		return XZ
	case CompLZ4:
		return LZ4
	case CompZstd:
		return Zstd
	case CompLZMA:
		return "lzma"
	case CompLZO:
		return "lzo"
	}
	return fmt.Sprintf("unknown(%d)", r.sb.Compression)
}

// metaBlock is one decompressed metadata block and where the next starts.
type metaBlock struct {
	pos  int64
	data []byte
	next int64
}

// metaCache is a small LRU of decompressed metadata blocks, keyed by
// position. Listing a directory reads every child's inode, and children
// share inode blocks, so without it a 15,000-entry tree would decompress
// the same blocks thousands of times.
type metaCache struct {
	mu  sync.Mutex
	max int
	m   map[int64]*list.Element
	l   list.List
}

func (c *metaCache) init(max int) {
	c.max = max
	c.m = make(map[int64]*list.Element)
}

func (c *metaCache) get(pos int64) *metaBlock {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.m[pos]; ok {
		c.l.MoveToFront(e)
		return e.Value.(*metaBlock)
	}
	return nil
}

func (c *metaCache) put(b *metaBlock) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[b.pos]; ok {
		return
	}
	c.m[b.pos] = c.l.PushFront(b)
	if c.l.Len() > c.max {
		e := c.l.Back()
		c.l.Remove(e)
		delete(c.m, e.Value.(*metaBlock).pos)
	}
}

// metadata returns the decompressed metadata block at pos, which must end
// by end.
func (r *Reader) metadata(pos, end int64) (*metaBlock, error) {
	if b := r.meta.get(pos); b != nil {
		if b.next > end {
			return nil, formatError("metadata block at %d runs past its table", pos)
		}
		return b, nil
	}
	if pos < SuperblockSize || pos > end-2 {
		return nil, formatError("metadata block at %d outside its table", pos)
	}
	var h [2]byte
	if err := readAt(r.r, h[:], pos); err != nil {
		return nil, fmt.Errorf("metadata block at %d: %w", pos, err)
	}
	hdr := binary.LittleEndian.Uint16(h[:])
	n := int64(hdr &^ MetadataUncompressed)
	if n == 0 || n > MetadataSize || pos+2+n > end {
		return nil, formatError("metadata block at %d: stored length %d", pos, n)
	}
	src := make([]byte, n)
	if err := readAt(r.r, src, pos+2); err != nil {
		return nil, fmt.Errorf("metadata block at %d: %w", pos, err)
	}
	data := src
	if hdr&MetadataUncompressed == 0 {
		var err error
		if data, err = r.dec.decompress(make([]byte, 0, MetadataSize), src); err != nil {
			return nil, fmt.Errorf("metadata block at %d: %w", pos, err)
		}
		if len(data) == 0 {
			return nil, formatError("metadata block at %d is empty", pos)
		}
	}
	b := &metaBlock{pos: pos, data: data, next: pos + 2 + n}
	r.meta.put(b)
	return b, nil
}

// cursorPos is a position in a metadata table: the absolute position of a
// metadata block and an offset into its decompressed bytes.
type cursorPos struct {
	block int64
	off   int
}

// cursor reads a byte stream that continues across metadata blocks, with a
// sticky error as archive/tar's parsers have.
type cursor struct {
	r   *Reader
	pos cursorPos
	end int64
	err error
}

func (r *Reader) cursor(block int64, off int, end int64) *cursor {
	return &cursor{r: r, pos: cursorPos{block, off}, end: end}
}

// read returns the next n bytes. The slice aliases the cache when the bytes
// lie in one block, so callers must not modify or keep it.
func (c *cursor) read(n int) []byte {
	if c.err != nil {
		return nil
	}
	var out []byte
	for {
		b, err := c.r.metadata(c.pos.block, c.end)
		if err != nil {
			c.err = err
			return nil
		}
		if c.pos.off > len(b.data) {
			c.err = formatError("offset %d past metadata block at %d (%d bytes)", c.pos.off, b.pos, len(b.data))
			return nil
		}
		avail := b.data[c.pos.off:]
		if out == nil && len(avail) >= n {
			c.pos.off += n
			return avail[:n:n]
		}
		if out == nil {
			out = make([]byte, 0, n)
		}
		take := min(n-len(out), len(avail))
		out = append(out, avail[:take]...)
		c.pos.off += take
		if len(out) == n {
			return out
		}
		// Records continue in the next block; blocks strictly advance, so
		// this loop ends at the table's end at the latest.
		c.pos = cursorPos{b.next, 0}
	}
}

// decode fills v, one of the fixed-size on-disk records of format.go, from
// the stream.
func (c *cursor) decode(v any) {
	b := c.read(recordSize(v))
	if c.err == nil {
		decodeRecord(b, v)
	}
}

// Sizes of the records format.go defines without a size constant.
const (
	dirInodeSize     = 16
	ldirInodeSize    = 24
	dirIndexSize     = 12
	fileInodeSize    = 16
	lfileInodeSize   = 40
	symlinkInodeSize = 8
	devInodeSize     = 8
	ipcInodeSize     = 4
	lz4OptionsSize   = 8
)

// recordSize and decodeRecord spell out each record's layout instead of
// using binary.Decode: the stub links this reader, and encoding/binary's
// reflection path costs it ~30 KB and every inode a reflective walk.
// TestRecordLayout checks them against binary.Size and binary.Decode.
func recordSize(v any) int {
	switch v.(type) {
	case *Superblock:
		return SuperblockSize
	case *inodeHeader:
		return inodeHeaderSize
	case *dirInode:
		return dirInodeSize
	case *ldirInode:
		return ldirInodeSize
	case *dirIndex:
		return dirIndexSize
	case *fileInode:
		return fileInodeSize
	case *lfileInode:
		return lfileInodeSize
	case *symlinkInode:
		return symlinkInodeSize
	case *devInode:
		return devInodeSize
	case *ipcInode:
		return ipcInodeSize
	case *dirHeader:
		return dirHeaderSize
	case *dirEntry:
		return dirEntrySize
	case *fragmentEntry:
		return fragmentEntrySize
	case *lz4Options:
		return lz4OptionsSize
	}
	panic(fmt.Sprintf("image: no layout for %T", v))
}

// decodeRecord fills v from b, which holds at least recordSize(v) bytes.
// Go evaluates the right-hand sides left to right, so each line reads its
// fields in on-disk order.
func decodeRecord(b []byte, v any) {
	p := lefields.Parser{B: b}
	switch v := v.(type) {
	case *Superblock:
		v.Magic, v.Inodes, v.ModTime, v.BlockSize, v.Fragments = p.U32(), p.U32(), p.U32(), p.U32(), p.U32()
		v.Compression, v.BlockLog, v.Flags, v.IDCount, v.VersionMajor, v.VersionMinor = p.U16(), p.U16(), p.U16(), p.U16(), p.U16(), p.U16()
		v.RootInode, v.BytesUsed, v.IDTableStart, v.XattrTableStart = p.U64(), p.U64(), p.U64(), p.U64()
		v.InodeTableStart, v.DirTableStart, v.FragmentTableStart, v.ExportTableStart = p.U64(), p.U64(), p.U64(), p.U64()
	case *inodeHeader:
		v.Type, v.Mode, v.UID, v.GID, v.Mtime, v.Inode = p.U16(), p.U16(), p.U16(), p.U16(), p.U32(), p.U32()
	case *dirInode:
		v.StartBlock, v.Nlink, v.FileSize, v.Offset, v.ParentInode = p.U32(), p.U32(), p.U16(), p.U16(), p.U32()
	case *ldirInode:
		v.Nlink, v.FileSize, v.StartBlock, v.ParentInode = p.U32(), p.U32(), p.U32(), p.U32()
		v.IndexCount, v.Offset, v.Xattr = p.U16(), p.U16(), p.U32()
	case *dirIndex:
		v.Index, v.StartBlock, v.NameSize = p.U32(), p.U32(), p.U32()
	case *fileInode:
		v.BlocksStart, v.Fragment, v.FragmentOffset, v.FileSize = p.U32(), p.U32(), p.U32(), p.U32()
	case *lfileInode:
		v.BlocksStart, v.FileSize, v.Sparse = p.U64(), p.U64(), p.U64()
		v.Nlink, v.Fragment, v.FragmentOffset, v.Xattr = p.U32(), p.U32(), p.U32(), p.U32()
	case *symlinkInode:
		v.Nlink, v.TargetSize = p.U32(), p.U32()
	case *devInode:
		v.Nlink, v.Rdev = p.U32(), p.U32()
	case *ipcInode:
		v.Nlink = p.U32()
	case *dirHeader:
		v.Count, v.StartBlock, v.Inode = p.U32(), p.U32(), p.U32()
	case *dirEntry:
		v.Offset, v.InodeOffset, v.Type, v.NameSize = p.U16(), int16(p.U16()), p.U16(), p.U16()
	case *fragmentEntry:
		v.Start, v.Size, v.Unused = p.U64(), p.U32(), p.U32()
	case *lz4Options:
		v.Version, v.Flags = p.U32(), p.U32()
	default:
		panic(fmt.Sprintf("image: no layout for %T", v))
	}
	if p.Err != nil {
		panic("image: short record buffer") // callers pass recordSize bytes
	}
}

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
		if !n.IsDir() {
			return nil, fmt.Errorf("%w: %s", ErrNotExist, name)
		}
		if part == ".." {
			return nil, fmt.Errorf("image: lookup %s: '..' is not supported", name)
		}
		var found *Node
		block, off, left, err := r.seekIndex(n, part)
		if err != nil {
			return nil, err
		}
		err = r.readListing(n, block, off, left, func(ename string, ref uint64, typ uint16) (bool, error) {
			if ename != part {
				return true, nil
			}
			c, err := r.child(n, ename, ref, typ)
			found = c
			return false, err
		})
		if err != nil {
			return nil, err
		}
		if found == nil {
			return nil, fmt.Errorf("%w: %s", ErrNotExist, name)
		}
		n = found
	}
	return n, nil
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

// fragCache keeps the last few decompressed fragment blocks: small files
// share them, and are stored (and so read) one after another.
type fragCache struct {
	mu  sync.Mutex
	max int
	idx []uint32
	buf [][]byte
}

func (c *fragCache) init(max int) { c.max = max }

func (c *fragCache) get(i uint32) []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	for j, k := range c.idx {
		if k == i {
			return c.buf[j]
		}
	}
	return nil
}

func (c *fragCache) put(i uint32, b []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.idx) == c.max {
		c.idx, c.buf = c.idx[1:], c.buf[1:]
	}
	c.idx, c.buf = append(c.idx, i), append(c.buf, b)
}

// scratch returns a BlockSize buffer for stored bytes; release with
// r.src.Put.
func (r *Reader) scratch() *[]byte {
	if b, ok := r.src.Get().(*[]byte); ok {
		return b
	}
	b := make([]byte, r.sb.BlockSize)
	return &b
}

// dataBlock reads the data or fragment block stored at pos with size word
// w into dst (cap ≥ BlockSize) and checks it decompresses to want bytes
// (-1: anything up to BlockSize, for fragment blocks).
func (r *Reader) dataBlock(dst []byte, pos uint64, w uint32, want int) ([]byte, error) {
	n := uint64(w & DataSizeMask)
	if n == 0 || n > uint64(r.sb.BlockSize) || pos < SuperblockSize || pos > uint64(r.size) || n > uint64(r.size)-pos {
		return nil, formatError("data block at %d, stored size %d", pos, n)
	}
	dst = dst[:0:r.sb.BlockSize]
	var out []byte
	if w&DataUncompressed != 0 {
		out = dst[:n]
		if err := readAt(r.r, out, int64(pos)); err != nil {
			return nil, fmt.Errorf("data block at %d: %w", pos, err)
		}
	} else {
		sp := r.scratch()
		defer r.src.Put(sp)
		src := (*sp)[:n]
		if err := readAt(r.r, src, int64(pos)); err != nil {
			return nil, fmt.Errorf("data block at %d: %w", pos, err)
		}
		var err error
		if out, err = r.dec.decompress(dst, src); err != nil {
			return nil, fmt.Errorf("data block at %d: %w", pos, err)
		}
	}
	// The kernel fills whole pages from each block, so a block shorter or
	// longer than the file says would show stale or foreign bytes.
	if want >= 0 && len(out) != want {
		return nil, formatError("data block at %d holds %d bytes, want %d", pos, len(out), want)
	}
	if len(out) == 0 {
		return nil, formatError("empty data block at %d", pos)
	}
	return out, nil
}

// fragmentBlock returns fragment block i, decompressed.
func (r *Reader) fragmentBlock(i uint32) ([]byte, error) {
	if b := r.frag.get(i); b != nil {
		return b, nil
	}
	if i >= r.sb.Fragments {
		return nil, formatError("fragment %d of %d", i, r.sb.Fragments)
	}
	c := r.cursor(int64(r.fragIndex[i/fragmentsPerMetablock]), 0, r.fragEnd)
	c.read(int(i%fragmentsPerMetablock) * fragmentEntrySize)
	var e fragmentEntry
	c.decode(&e)
	if c.err != nil {
		return nil, fmt.Errorf("fragment %d: %w", i, c.err)
	}
	b, err := r.dataBlock(make([]byte, 0, r.sb.BlockSize), e.Start, e.Size, -1)
	if err != nil {
		return nil, fmt.Errorf("fragment %d: %w", i, err)
	}
	r.frag.put(i, b)
	return b, nil
}

// File reads the content of a regular file. Read and WriteTo share an
// offset and are not safe for concurrent use; ReadAt is.
type File struct {
	r      *Reader
	n      *Node
	bs     int64
	words  []uint32 // stored size word of each full (or, without a fragment, last) block
	ckpt   []uint64 // image position of every blockCheckpoint-th block
	tail   int64    // bytes in the fragment, 0 if none
	chunks int      // blocks plus the tail
	off    int64

	mu       sync.Mutex // guards the last decoded chunk, for small ReadAts
	lastIdx  int
	lastData []byte
}

// Open returns a reader for a regular file's content. It reads the block
// list, so errors there surface here.
func (r *Reader) Open(n *Node) (*File, error) {
	if n == nil || !n.Mode.IsRegular() {
		return nil, fmt.Errorf("image: open: not a regular file")
	}
	f := &File{r: r, n: n, bs: int64(r.sb.BlockSize), lastIdx: -1}
	nblocks := n.Size / f.bs
	if rem := n.Size % f.bs; rem != 0 {
		if n.fragment == NoFragment {
			nblocks++
		} else {
			if n.fragment >= r.sb.Fragments {
				return nil, formatError("%s: fragment %d of %d", n.Path, n.fragment, r.sb.Fragments)
			}
			if uint64(n.fragOffset)+uint64(rem) > uint64(r.sb.BlockSize) {
				return nil, formatError("%s: fragment offset %d + %d", n.Path, n.fragOffset, rem)
			}
			f.tail = rem
		}
	}
	// The block list is 4 bytes per block in the inode table, so a count the
	// table cannot hold fails while reading; grow the slice as we go rather
	// than trust the count up front.
	c := r.cursor(n.blockList.block, n.blockList.off, r.inodeEnd)
	f.words = make([]uint32, 0, min(nblocks, blockListChunk))
	pos := n.blocksStart
	for int64(len(f.words)) < nblocks {
		k := int(min(nblocks-int64(len(f.words)), blockListChunk))
		b := c.read(4 * k)
		if c.err != nil {
			return nil, fmt.Errorf("%s: block list: %w", n.Path, c.err)
		}
		for j := 0; j < k; j++ {
			w := binary.LittleEndian.Uint32(b[4*j:])
			if len(f.words)%blockCheckpoint == 0 {
				f.ckpt = append(f.ckpt, pos)
			}
			f.words = append(f.words, w)
			if w == 0 {
				continue // sparse: nothing stored
			}
			sz := uint64(w & DataSizeMask)
			if sz == 0 || sz > uint64(f.bs) || pos < SuperblockSize || pos > uint64(r.size) || sz > uint64(r.size)-pos {
				return nil, formatError("%s: block %d at %d, stored size %d", n.Path, len(f.words)-1, pos, sz)
			}
			pos += sz
		}
	}
	f.chunks = len(f.words)
	if f.tail > 0 {
		f.chunks++
	}
	return f, nil
}

// Size returns the file's length.
func (f *File) Size() int64 { return f.n.Size }

// chunkLen is the decompressed length of chunk i.
func (f *File) chunkLen(i int) int {
	return int(min(f.bs, f.n.Size-int64(i)*f.bs))
}

// sparse reports whether chunk i is a hole.
func (f *File) sparse(i int) bool { return i < len(f.words) && f.words[i] == 0 }

// chunk decodes chunk i (a block, or the fragment tail) into buf (cap ≥
// BlockSize).
func (f *File) chunk(i int, buf []byte) ([]byte, error) {
	want := f.chunkLen(i)
	if i >= len(f.words) {
		frag, err := f.r.fragmentBlock(f.n.fragment)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f.n.Path, err)
		}
		if int64(f.n.fragOffset)+f.tail > int64(len(frag)) {
			return nil, formatError("%s: tail [%d, +%d) past fragment of %d bytes", f.n.Path, f.n.fragOffset, f.tail, len(frag))
		}
		return append(buf[:0], frag[f.n.fragOffset:int64(f.n.fragOffset)+f.tail]...), nil
	}
	w := f.words[i]
	if w == 0 {
		b := buf[:want]
		clear(b)
		return b, nil
	}
	pos := f.ckpt[i/blockCheckpoint]
	for j := i / blockCheckpoint * blockCheckpoint; j < i; j++ {
		pos += uint64(f.words[j] & DataSizeMask)
	}
	b, err := f.r.dataBlock(buf, pos, w, want)
	if err != nil {
		return nil, fmt.Errorf("%s: block %d: %w", f.n.Path, i, err)
	}
	return b, nil
}

// ReadAt implements io.ReaderAt.
func (f *File) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("image: negative offset")
	}
	n := 0
	for n < len(p) {
		if off >= f.n.Size {
			return n, io.EOF
		}
		i := int(off / f.bs)
		f.mu.Lock()
		if f.lastIdx != i {
			if f.lastData == nil {
				f.lastData = make([]byte, f.bs)
			}
			b, err := f.chunk(i, f.lastData)
			if err != nil {
				f.lastIdx = -1
				f.mu.Unlock()
				return n, err
			}
			f.lastIdx, f.lastData = i, b[:cap(b)]
		}
		c := copy(p[n:], f.lastData[off%f.bs:f.chunkLen(i)])
		f.mu.Unlock()
		n += c
		off += int64(c)
	}
	return n, nil
}

// Read implements io.Reader.
func (f *File) Read(p []byte) (int, error) {
	n, err := f.ReadAt(p, f.off)
	f.off += int64(n)
	if err == io.EOF && n > 0 {
		err = nil
	}
	return n, err
}

// WriteTo implements io.WriterTo: it writes the rest of the file to w,
// decompressing blocks on GOMAXPROCS goroutines while keeping their order.
func (f *File) WriteTo(w io.Writer) (int64, error) {
	return f.writeTo(w, 0)
}

func (f *File) writeTo(w io.Writer, workers int) (int64, error) {
	if f.off >= f.n.Size {
		return 0, nil
	}
	first := int(f.off / f.bs)
	skip := f.off % f.bs
	var total int64
	sink := func(out []byte, err error) error {
		if err != nil {
			return err
		}
		out = out[skip:]
		skip = 0
		m, err := w.Write(out)
		total += int64(m)
		f.off += int64(m)
		if err == nil && m != len(out) {
			err = io.ErrShortWrite
		}
		return err
	}
	if f.chunks-first <= 1 || workers == 1 {
		buf := make([]byte, f.bs)
		for i := first; i < f.chunks; i++ {
			out, err := f.chunk(i, buf)
			if err == nil {
				err = sink(out, nil)
			}
			if err != nil {
				return total, err
			}
		}
		return total, nil
	}
	p := newPipeline(workers, int(f.bs))
	for i := first; i < f.chunks; i++ {
		i := i
		if p.submit(func(buf []byte) ([]byte, error) { return f.chunk(i, buf) }, sink) != nil {
			break
		}
	}
	return total, p.wait()
}
