package image

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"sync"

	"github.com/klauspost/compress/zlib"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
	"github.com/ulikunitz/xz"
)

// compressor turns one block (data or metadata) into its stored form. It
// must be safe for concurrent use: the writer calls it from every worker.
type compressor interface {
	// id is the superblock compression id.
	id() uint16
	// compress appends the compressed form of src to dst[:0] and returns it.
	// It returns nil when the block should be stored raw: the "none"
	// compressor always, the others when compression would not shrink it.
	compress(dst, src []byte) ([]byte, error)
	// options returns the compressor options record to store after the
	// superblock, or nil for none.
	options() []byte
}

func newCompressor(o *Options) (compressor, error) {
	switch o.Compression {
	case Zstd:
		return newZstdCompressor(o)
	case Gzip:
		return &gzipCompressor{level: flateLevel(o.Level)}, nil
	case XZ:
		return &xzCompressor{dictCap: o.BlockSize}, nil
	case LZ4:
		return lz4Compressor{}, nil
	case None:
		return noneCompressor{}, nil
	}
	return nil, fmt.Errorf("%w: %q", ErrCompression, o.Compression)
}

// keep reports whether a compressed block is worth storing compressed.
func keep(out, src []byte) []byte {
	if len(out) == 0 || len(out) >= len(src) {
		return nil
	}
	return out
}

type zstdCompressor struct{ enc *zstd.Encoder }

func newZstdCompressor(o *Options) (compressor, error) {
	// The kernel's zstd wrapper sizes its window to the block size, so every
	// frame must fit a window of at most one block: single-segment frames
	// (the window is the content size) guarantee that. No per-frame CRC:
	// mksquashfs writes none and the kernel does not need it.
	enc, err := zstd.NewWriter(nil,
		zstd.WithEncoderLevel(zstd.EncoderLevelFromZstd(o.Level)),
		zstd.WithEncoderConcurrency(workers(o)),
		zstd.WithWindowSize(max(o.BlockSize, MetadataSize)),
		zstd.WithSingleSegment(true),
		zstd.WithEncoderCRC(false),
		zstd.WithZeroFrames(true))
	if err != nil {
		return nil, fmt.Errorf("zstd: %w", err)
	}
	return &zstdCompressor{enc: enc}, nil
}

func (zstdCompressor) id() uint16      { return CompZstd }
func (zstdCompressor) options() []byte { return nil }
func (c *zstdCompressor) compress(dst, src []byte) ([]byte, error) {
	return keep(c.enc.EncodeAll(src, dst[:0]), src), nil
}

// flateLevel maps a zlib level to klauspost's flate level of about the same
// ratio. klauspost's levels trade ratio for speed: at level 6 it stored
// /usr/local/go 3.4% larger than zlib's level 6 (mksquashfs), and one level
// up it comes within 1.7% while still taking 0.4x zlib's time.
func flateLevel(zlibLevel int) int { return min(zlibLevel+1, 9) }

// gzipCompressor writes zlib streams (squashfs "gzip" is zlib, RFC 1950).
// zlib writers hold large tables, so they are pooled.
type gzipCompressor struct {
	level int
	pool  sync.Pool
}

func (*gzipCompressor) id() uint16      { return CompGzip }
func (*gzipCompressor) options() []byte { return nil }
func (c *gzipCompressor) compress(dst, src []byte) ([]byte, error) {
	b := bytes.NewBuffer(dst[:0])
	zw, _ := c.pool.Get().(*zlib.Writer)
	if zw == nil {
		var err error
		if zw, err = zlib.NewWriterLevel(b, c.level); err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
	} else {
		zw.Reset(b)
	}
	defer c.pool.Put(zw)
	if _, err := zw.Write(src); err != nil {
		return nil, fmt.Errorf("gzip: %w", err)
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("gzip: %w", err)
	}
	return keep(b.Bytes(), src), nil
}

// xzCompressor writes one xz stream per block with a CRC32 check (the
// kernel's xz decoder supports CRC32 and none) and a dictionary no larger
// than the block size, which is what the kernel allocates when the image
// carries no xz options.
type xzCompressor struct{ dictCap int }

func (*xzCompressor) id() uint16      { return CompXZ }
func (*xzCompressor) options() []byte { return nil }
func (c *xzCompressor) compress(dst, src []byte) ([]byte, error) {
	b := bytes.NewBuffer(dst[:0])
	cfg := xz.WriterConfig{DictCap: c.dictCap, CheckSum: xz.CRC32}
	w, err := cfg.NewWriter(b)
	if err != nil {
		return nil, fmt.Errorf("xz: %w", err)
	}
	if _, err := w.Write(src); err != nil {
		return nil, fmt.Errorf("xz: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("xz: %w", err)
	}
	return keep(b.Bytes(), src), nil
}

// lz4Compressor writes raw LZ4 blocks (no frame), as squashfs expects.
type lz4Compressor struct{}

func (lz4Compressor) id() uint16 { return CompLZ4 }

// options: the kernel refuses lz4 images without this record.
func (lz4Compressor) options() []byte {
	b := binary.LittleEndian.AppendUint32(nil, lz4LegacyVersion)
	return binary.LittleEndian.AppendUint32(b, 0)
}

func (lz4Compressor) compress(dst, src []byte) ([]byte, error) {
	need := lz4.CompressBlockBound(len(src))
	if cap(dst) < need {
		dst = make([]byte, need)
	}
	dst = dst[:need]
	n, err := lz4.CompressBlock(src, dst, nil)
	if err != nil {
		return nil, fmt.Errorf("lz4: %w", err)
	}
	return keep(dst[:n], src), nil
}

// noneCompressor stores everything raw. SquashFS has no "none" id: such
// images carry the gzip id with every "uncompressed" flag set, as
// mksquashfs -noI -noD -noF -noX makes them.
type noneCompressor struct{}

func (noneCompressor) id() uint16                               { return CompGzip }
func (noneCompressor) options() []byte                          { return nil }
func (noneCompressor) compress(dst, src []byte) ([]byte, error) { return nil, nil }
