package image

import (
	"fmt"
	"io/fs"
	"strings"
)

// Compression names: the values of Options.Compression, what
// Reader.Compression reports, and what a packed file's trailer records.
const (
	Zstd = "zstd"
	Gzip = "gzip"
	XZ   = "xz"
	LZ4  = "lz4"
	None = "none"
)

// Compressions lists the supported compression names, default first.
var Compressions = []string{Zstd, Gzip, XZ, LZ4, None}

// DefaultLevel returns the level used when none is given, and the accepted
// range. Levels mean what they mean to zstd and zlib; xz, lz4 and none take
// no level (0).
func DefaultLevel(comp string) (def, min, max int) {
	switch comp {
	case Zstd:
		return 3, 1, 22
	case Gzip:
		return 6, 1, 9
	}
	return 0, 0, 0
}

// Options control the Writer. The zero value is not valid: use
// DefaultOptions and change what you need.
type Options struct {
	Compression string // one of Compressions
	Level       int    // see DefaultLevel
	BlockSize   int    // power of two, MinBlockSize..MaxBlockSize
	Workers     int    // compression goroutines; <= 0 means runtime.GOMAXPROCS(0)
	KeepOwner   bool   // keep Entry.UID/GID; otherwise every owner is 0:0
	// ClampTime, when >= 0, clamps every mtime and the superblock time to it
	// (SOURCE_DATE_EPOCH). When < 0, the superblock time is the newest mtime
	// in the tree, so output stays deterministic.
	ClampTime int64
	// Progress, when set, is called from the writing goroutine after each
	// stored block and each completed file, with the number of regular
	// files completed and the input bytes stored so far.
	Progress func(files int, bytes int64)
}

// DefaultOptions returns zstd at its default level, 128 KiB blocks, all cores.
func DefaultOptions() Options {
	def, _, _ := DefaultLevel(Zstd)
	return Options{Compression: Zstd, Level: def, BlockSize: DefaultBlockSize, ClampTime: -1}
}

// Validate reports the first invalid option, in words fit for a user.
func (o *Options) Validate() error {
	known := false
	for _, c := range Compressions {
		known = known || c == o.Compression
	}
	if !known {
		return fmt.Errorf("unknown compression %q (want one of %s)", o.Compression, strings.Join(Compressions, ", "))
	}
	if _, lo, hi := DefaultLevel(o.Compression); o.Level < lo || o.Level > hi {
		if lo == hi {
			return fmt.Errorf("compression %s takes no level", o.Compression)
		}
		return fmt.Errorf("level %d out of range for %s (%d..%d)", o.Level, o.Compression, lo, hi)
	}
	if o.BlockSize < MinBlockSize || o.BlockSize > MaxBlockSize || o.BlockSize&(o.BlockSize-1) != 0 {
		return fmt.Errorf("block size %d: want a power of two from %d to %d", o.BlockSize, MinBlockSize, MaxBlockSize)
	}
	return nil
}

// Entry is one file system object to store. Paths are slash-separated and
// relative to the image root; the root itself is "." (optional: without it
// the root is a 0755 directory owned by 0:0 with the newest mtime).
type Entry struct {
	Path    string
	Mode    fs.FileMode // type bits and permissions, as from os.Lstat
	UID     uint32
	GID     uint32
	ModTime int64  // seconds since the epoch
	Size    int64  // regular files: bytes to store
	Rdev    uint64 // device nodes: the raw st_rdev
	Link    string // symlinks: the target, stored verbatim
	// Source is the file to read a regular file's bytes from. It is read
	// once, sequentially, during Finish; holes are found with SEEK_DATA and
	// not read. If the file's length changed since Size was taken, Finish
	// fails rather than store a torn file.
	Source string
	// Dev and Ino identify the source object. Non-directories with the same
	// non-zero (Dev, Ino) are hard links of one inode. For a regular file
	// with a non-zero Ino, Finish also checks that Source still is that
	// object when it opens it, and that it did not change while read.
	Dev, Ino uint64
}

// Stats summarises a finished image.
type Stats struct {
	Inodes     int   // inodes written (hard links count once)
	Files      int   // regular files
	InputBytes int64 // bytes of regular file content (before dedup)
	Size       int64 // image bytes, padded to PadSize
	Duplicates int   // files whose content was already stored
	Fragments  int   // fragment blocks
}
