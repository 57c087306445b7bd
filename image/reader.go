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
//
// The reader's parts, one concern a file:
//
//	reader.go     Reader: the superblock, table bounds, id and fragment indexes
//	metadata.go   metadata blocks, their cache, and the cursor across them
//	inode.go      Node: one inode, decoded
//	dir.go        directory listings: ReadDir, Lookup, Walk
//	file.go       File: data and fragment blocks, read at random or in order
//	extract.go    Extract: the whole tree written to a directory
//	remove.go     RemoveTree: such a tree removed, whatever its modes
//	format.go     the on-disk records and their codec
//	decompress.go the decompressors; pipeline.go the ordered worker pool

import (
	"encoding/binary"
	"fmt"
	"io"
	"sync"
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
	// a fragment are mostly stored next to each other, so a few suffice.
	// Not quite always: extracting the Go tree decodes its 769 fragment
	// blocks 859 times with 4 kept, 800 times with 16.
	fragCacheBlocks = 16
	// blockCheckpoint: File keeps the image position of every n-th data
	// block and sums stored sizes from there, trading a little arithmetic
	// for 8 bytes per block of memory.
	blockCheckpoint = 16
	// blockListChunk size words are read from the inode table at a time.
	blockListChunk = 2048
	// MaxFileBlocks bounds the blocks of one regular file: 2 TiB at the
	// default 128 KiB block size, 64 GiB at the smallest, 16 TiB at the
	// largest. Open keeps a 4-byte size word per block, and the size words
	// of holes are zeros that compress to almost nothing, so without a bound
	// a small hostile image could claim a file of 2^62 bytes and make Open
	// read and hold gigabytes of them (and Extract create a sparse file of
	// exabytes). At the bound the words take 64 MiB.
	MaxFileBlocks = 1 << 24
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
	rd.frag.init(fragCacheBlocks, int(sb.BlockSize))

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
