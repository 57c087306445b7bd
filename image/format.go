// Package image reads and writes parker payloads: SquashFS 4.0 images, and
// nothing else (the packed file around them is package trailer's).
//
// The writer (Writer) produces standard images that the Linux kernel,
// unsquashfs and go-diskfs all read: zstd, gzip, xz, lz4 or uncompressed
// blocks; fragments (tail packing); duplicate files stored once; sparse and
// zero-filled blocks stored as holes; hard links; symlinks; fifos, sockets and
// device nodes; directories of any size with the directory index. It leaves
// out extended attributes and the NFS export table.
//
// The reader (Reader) works on an io.ReaderAt, trusts nothing it reads and
// returns the sentinel errors below, so callers can branch with errors.Is.
//
// Every on-disk record is defined once, in this file, with its size and its
// codec, following the layout in the kernel's fs/squashfs/squashfs_fs.h. All
// integers are little-endian.
package image

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/parkerpack/parker/internal/lefields"
)

// Sentinel errors. Messages carry the package prefix, as archive/tar does.
var (
	// ErrFormat: the bytes are not a SquashFS 4.0 image we can read, or an
	// internal pointer, size or count is out of range (corrupt or hostile).
	ErrFormat = errors.New("image: corrupt or unsupported squashfs image")
	// ErrCompression: the image uses a compressor this build cannot decode.
	ErrCompression = errors.New("image: unsupported compression")
	// ErrNotExist: a path lookup found no such entry.
	ErrNotExist = errors.New("image: no such file or directory")
)

// Superblock constants.
const (
	Magic        = 0x73717368 // "hsqs" read little-endian
	VersionMajor = 4
	VersionMinor = 0

	SuperblockSize = 96

	MinBlockSize     = 4 << 10
	MaxBlockSize     = 1 << 20
	DefaultBlockSize = 128 << 10

	// MetadataSize is the uncompressed size of a metadata block. Each stored
	// metadata block starts with a 16-bit header: its stored length, with
	// MetadataUncompressed set when stored raw.
	MetadataSize         = 8192
	MetadataUncompressed = 0x8000

	// DataUncompressed marks a data or fragment block stored raw in its
	// 32-bit size word; the low 24 bits are the stored length. A size word
	// of 0 is a sparse block: BlockSize zero bytes, nothing stored.
	DataUncompressed = 1 << 24
	DataSizeMask     = DataUncompressed - 1

	// NoFragment in a file inode's fragment index means the file has no tail
	// in a fragment block. NoXattr likewise for the xattr index.
	NoFragment = 0xFFFFFFFF
	NoXattr    = 0xFFFFFFFF
	// NoTable marks an absent optional table (xattr, export) in the superblock.
	NoTable = 0xFFFFFFFFFFFFFFFF

	// PadSize: images are padded to a multiple of this, as mksquashfs does,
	// so block devices (and loop devices with a size limit) can read the
	// last block whole. (A packed file aligns its payload to the same
	// size, trailer.PadSize, and a test in package trailer holds the two
	// equal.)
	PadSize = 4096
)

// Compressor IDs as stored in the superblock.
const (
	CompGzip = 1 // zlib stream (RFC 1950), despite the name
	CompLZMA = 2
	CompLZO  = 3
	CompXZ   = 4
	CompLZ4  = 5
	CompZstd = 6
)

// Superblock flags.
const (
	FlagUncompressedInodes    = 1 << iota // inode table stored raw
	FlagUncompressedData                  // data blocks stored raw
	FlagCheck                             // unused since 4.0
	FlagUncompressedFragments             // fragment blocks stored raw
	FlagNoFragments                       // no fragments at all
	FlagAlwaysFragments                   // tail ends of large files go to fragments
	FlagDuplicates                        // duplicate files were detected
	FlagExportable                        // an export table is present
	FlagUncompressedXattrs                // xattr table stored raw
	FlagNoXattrs                          // no xattrs at all
	FlagCompressorOptions                 // compressor options follow the superblock
	FlagUncompressedIDs                   // id table stored raw
)

// Inode types. Directory entries always carry the basic type (1..7) even when
// the inode itself is extended.
const (
	TypeDir       = 1
	TypeFile      = 2
	TypeSymlink   = 3
	TypeBlockDev  = 4
	TypeCharDev   = 5
	TypeFifo      = 6
	TypeSocket    = 7
	TypeLDir      = 8
	TypeLFile     = 9
	TypeLSymlink  = 10
	TypeLBlockDev = 11
	TypeLCharDev  = 12
	TypeLFifo     = 13
	TypeLSocket   = 14
)

// Directory table limits: one header covers at most DirMaxEntries entries
// whose inodes lie in one inode-table metadata block and whose inode numbers
// are within a signed 16-bit delta of the header's base.
const (
	DirMaxEntries = 256
	DirMaxName    = 256 // name_size is stored minus one
	// dirSizeBias: a directory inode's file_size is the listing's byte
	// length plus 3 (room for the "." and ".." entries real filesystems have).
	dirSizeBias = 3
)

// Table entry sizes and counts per metadata block.
const (
	fragmentEntrySize     = 16
	fragmentsPerMetablock = MetadataSize / fragmentEntrySize
	idEntrySize           = 4
	idsPerMetablock       = MetadataSize / idEntrySize
	maxIDs                = 1<<16 - 1 // id_count is 16 bits
)

// Superblock is the 96-byte record at the start of every image.
type Superblock struct {
	Magic              uint32
	Inodes             uint32
	ModTime            uint32
	BlockSize          uint32
	Fragments          uint32
	Compression        uint16
	BlockLog           uint16
	Flags              uint16
	IDCount            uint16
	VersionMajor       uint16
	VersionMinor       uint16
	RootInode          uint64 // inode reference: metadata block offset << 16 | offset within it
	BytesUsed          uint64
	IDTableStart       uint64
	XattrTableStart    uint64
	InodeTableStart    uint64
	DirTableStart      uint64
	FragmentTableStart uint64
	ExportTableStart   uint64
}

// inodeHeader starts every inode.
type inodeHeader struct {
	Type  uint16
	Mode  uint16 // permission bits and setuid/setgid/sticky only
	UID   uint16 // index into the id table
	GID   uint16
	Mtime uint32
	Inode uint32 // inode number, 1..Inodes
}

const inodeHeaderSize = 16

// dirInode is the basic directory inode (TypeDir).
type dirInode struct {
	StartBlock  uint32 // directory table metadata block, relative to DirTableStart
	Nlink       uint32
	FileSize    uint16 // listing size + dirSizeBias
	Offset      uint16 // within the uncompressed metadata block
	ParentInode uint32
}

const dirInodeSize = 16

// ldirInode is the extended directory inode (TypeLDir), followed by
// IndexCount dirIndex records, each followed by its name.
type ldirInode struct {
	Nlink       uint32
	FileSize    uint32
	StartBlock  uint32
	ParentInode uint32
	IndexCount  uint16
	Offset      uint16
	Xattr       uint32
}

const ldirInodeSize = 24

// dirIndex lets the kernel skip to the metadata block holding a name.
type dirIndex struct {
	Index      uint32 // byte offset of a directory header within the listing
	StartBlock uint32 // its metadata block, relative to DirTableStart
	NameSize   uint32 // name length - 1 of the header's first entry
}

const dirIndexSize = 12

// fileInode is the basic regular file inode (TypeFile), followed by one
// uint32 size word per full block (and per partial block when there is no
// fragment).
type fileInode struct {
	BlocksStart    uint32
	Fragment       uint32
	FragmentOffset uint32
	FileSize       uint32
}

const fileInodeSize = 16

// lfileInode is the extended file inode (TypeLFile): 64-bit sizes, link
// count and sparse byte count.
type lfileInode struct {
	BlocksStart    uint64
	FileSize       uint64
	Sparse         uint64
	Nlink          uint32
	Fragment       uint32
	FragmentOffset uint32
	Xattr          uint32
}

const lfileInodeSize = 40

// symlinkInode (TypeSymlink) is followed by the target bytes; TypeLSymlink
// adds a trailing uint32 xattr index.
type symlinkInode struct {
	Nlink      uint32
	TargetSize uint32
}

const symlinkInodeSize = 8

// devInode (TypeBlockDev, TypeCharDev); TypeL* adds a uint32 xattr index.
type devInode struct {
	Nlink uint32
	Rdev  uint32 // major << 8 | minor&0xff | (minor&^0xff) << 12, as new_encode_dev
}

const devInodeSize = 8

// ipcInode (TypeFifo, TypeSocket); TypeL* adds a uint32 xattr index.
type ipcInode struct {
	Nlink uint32
}

const ipcInodeSize = 4

// dirHeader starts each run of directory entries.
type dirHeader struct {
	Count      uint32 // entries - 1
	StartBlock uint32 // inode table metadata block of these entries' inodes
	Inode      uint32 // base inode number
}

const dirHeaderSize = 12

// dirEntry precedes each name in a directory listing.
type dirEntry struct {
	Offset      uint16 // inode offset within the metadata block
	InodeOffset int16  // inode number - header base
	Type        uint16 // basic type
	NameSize    uint16 // name length - 1
}

const dirEntrySize = 8

// fragmentEntry locates one fragment block.
type fragmentEntry struct {
	Start  uint64
	Size   uint32 // with DataUncompressed when stored raw
	Unused uint32
}

// lz4Options is the compressor options record mksquashfs writes for lz4; the
// kernel refuses lz4 images without it.
type lz4Options struct {
	Version uint32 // lz4LegacyVersion
	Flags   uint32
}

const (
	lz4OptionsSize   = 8
	lz4LegacyVersion = 1
)

// inodeRef packs a metadata block position (relative to the table start) and
// an offset within its uncompressed bytes into a 48-bit inode reference.
func inodeRef(block uint64, offset uint16) uint64 { return block<<16 | uint64(offset) }

func splitInodeRef(ref uint64) (block uint64, offset uint16) {
	return ref >> 16, uint16(ref & 0xFFFF)
}

// encodeDev and decodeDev follow the kernel's new_encode_dev/new_decode_dev,
// the encoding squashfs uses for device numbers.
func encodeDev(major, minor uint32) uint32 {
	return minor&0xff | major<<8 | (minor&^0xff)<<12
}

func decodeDev(dev uint32) (major, minor uint32) {
	return (dev & 0xfff00) >> 8, dev&0xff | (dev>>12)&0xfff00
}

// The record codec. The reader decodes with recordSize and decodeRecord,
// which spell out each record's layout instead of using binary.Decode: the
// helper executable embedded in every packed file links the reader (for
// --parker-info, --parker-ls and --parker-extract), and encoding/binary's reflection path
// would cost it ~30 KB and every inode a reflective walk. The writer, linked
// only by parker itself, encodes with le. TestRecordLayout holds the two in
// agreement.
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

// le encodes a fixed-size on-disk record little-endian.
func le(v any) []byte {
	b, err := binary.Append(nil, binary.LittleEndian, v)
	if err != nil {
		panic(err) // only fixed-size records defined in this file reach here
	}
	return b
}
