package image

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"hash/crc64"
	"io"
	"runtime"
	"sync"

	"github.com/klauspost/compress/zlib"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
	"github.com/ulikunitz/xz/lzma"
)

// A decompressor turns one stored block (data, fragment or metadata) back
// into its bytes. dst has len 0 and a capacity of at least limit, the most
// the block may decompress to; output beyond limit is an error, never a
// reallocation, so a hostile block cannot make us allocate more than the
// block size. Implementations are safe for concurrent use.
type decompressor interface {
	decompress(dst, src []byte, limit int) ([]byte, error)
}

// decodeSlack is the room past limit a dst should have: zstd's fast
// sequence copies may write up to 16 bytes past the end of what they
// produce (compressedBlockOverAlloc in klauspost/compress/zstd), and
// without that room it takes its bounds-checked copies, which halve its
// speed. The others ignore it.
const decodeSlack = 16

// decodeBuf returns a buffer for blocks of up to limit bytes, with the
// slack zstd wants.
func decodeBuf(limit int) []byte { return make([]byte, 0, limit+decodeSlack) }

// newDecompressor returns the decompressor for the superblock's compressor
// id. opts is the compressor options record (nil when the superblock flag
// is clear); maxOut bounds any single block's output.
func newDecompressor(id uint16, opts []byte, maxOut int) (decompressor, error) {
	switch id {
	case CompGzip:
		return &zlibDecompressor{}, nil
	case CompXZ:
		return xzDecompressor{}, nil
	case CompLZ4:
		// squashfs-tools and the kernel both refuse lz4 images without the
		// options record, and the only defined version is the legacy one.
		var o lz4Options
		if opts == nil {
			return nil, fmt.Errorf("%w: lz4 image without compressor options", ErrFormat)
		}
		if len(opts) < lz4OptionsSize {
			return nil, fmt.Errorf("%w: lz4 compressor options of %d bytes", ErrFormat, len(opts))
		}
		decodeRecord(opts, &o)
		if o.Version != lz4LegacyVersion {
			return nil, fmt.Errorf("%w: lz4 options version %d", ErrCompression, o.Version)
		}
		return lz4Decompressor{}, nil
	case CompZstd:
		// One Decoder serves every goroutine: DecodeAll is concurrency-safe
		// and keeps its own pool of up to GOMAXPROCS block decoders. The
		// cap limit makes a hostile frame fail instead of growing dst.
		// DecodeAll decodes straight into dst, so the window a frame
		// declares costs nothing; we still refuse absurd ones, but allow
		// more than the block size because encoders that do not mark small
		// frames single-segment declare their default window (8 MiB).
		window := uint64(max(maxOut, zstdMaxWindow))
		d, err := zstd.NewReader(nil,
			zstd.WithDecoderConcurrency(runtime.GOMAXPROCS(0)),
			zstd.WithDecoderMaxMemory(window),
			zstd.WithDecoderMaxWindow(window),
			zstd.WithDecodeAllCapLimit(true),
			zstd.WithDecoderLowmem(true))
		if err != nil {
			return nil, fmt.Errorf("zstd decoder: %w", err)
		}
		return zstdDecompressor{d}, nil
	case CompLZMA, CompLZO:
		return nil, fmt.Errorf("%w: compressor id %d (lzma/lzo) is not supported", ErrCompression, id)
	}
	return nil, fmt.Errorf("%w: unknown compressor id %d", ErrFormat, id)
}

const zstdMaxWindow = 8 << 20

// errCorrupt wraps a decoder's complaint as a format error.
func errCorrupt(kind string, err error) error {
	return fmt.Errorf("%w: %s data: %v", ErrFormat, kind, err)
}

// readFull reads r into dst up to limit bytes and insists that r then ends.
func readFull(dst []byte, r io.Reader, limit int) ([]byte, error) {
	n, err := io.ReadFull(r, dst[:limit])
	switch {
	case err == io.ErrUnexpectedEOF || err == io.EOF:
		return dst[:n], nil
	case err != nil:
		return nil, err
	}
	// A full buffer: the stream must end here. Reading on also lets zlib
	// verify its checksum, so its error counts.
	var one [1]byte
	switch m, err := io.ReadFull(r, one[:]); {
	case m > 0:
		return nil, errors.New("output larger than the block size")
	case err != io.EOF:
		return nil, err
	}
	return dst[:n], nil
}

// zlibDecompressor handles CompGzip, which despite its name stores zlib
// (RFC 1950) streams. Readers are pooled: each holds ~40 KB of state.
type zlibDecompressor struct{ pool sync.Pool }

func (z *zlibDecompressor) decompress(dst, src []byte, limit int) ([]byte, error) {
	br := bytes.NewReader(src)
	var zr io.ReadCloser
	if v := z.pool.Get(); v != nil {
		zr = v.(io.ReadCloser)
		if err := zr.(zlib.Resetter).Reset(br, nil); err != nil {
			return nil, errCorrupt("zlib", err)
		}
	} else {
		var err error
		if zr, err = zlib.NewReader(br); err != nil {
			return nil, errCorrupt("zlib", err)
		}
	}
	out, err := readFull(dst, zr, limit)
	if err == nil {
		// Reading to EOF verified the Adler-32; Close reports a late error.
		err = zr.Close()
	}
	if err != nil {
		return nil, errCorrupt("zlib", err)
	}
	z.pool.Put(zr)
	return out, nil
}

type lz4Decompressor struct{}

// squashfs lz4 blocks are raw LZ4 block format (no frame), so the output
// size is known only from the buffer we offer.
func (lz4Decompressor) decompress(dst, src []byte, limit int) ([]byte, error) {
	n, err := lz4.UncompressBlock(src, dst[:limit])
	if err != nil {
		return nil, errCorrupt("lz4", err)
	}
	return dst[:n], nil
}

type zstdDecompressor struct{ d *zstd.Decoder }

func (z zstdDecompressor) decompress(dst, src []byte, limit int) ([]byte, error) {
	// The cap limit stops a frame at cap(dst), which may be past limit by
	// the slack: what lands there is refused below.
	out, err := z.d.DecodeAll(src, dst[:0])
	if err != nil {
		return nil, errCorrupt("zstd", err)
	}
	if len(out) > limit {
		return nil, errCorrupt("zstd", errors.New("output larger than the block size"))
	}
	return out, nil
}

// xz container constants (xz-file-format-1.2.0, sections 2.1 and 3).
const (
	xzMagic           = "\xfd7zXZ\x00"
	xzStreamHeader    = 12
	xzFilterLZMA2     = 0x21
	xzBlockFlagsSizes = 0xc0 // compressed / uncompressed size fields present
	xzBlockFlagsRsvd  = 0x3c
	xzCheckNone       = 0x00
	xzCheckCRC32      = 0x01
	xzCheckCRC64      = 0x04
	xzCheckSHA256     = 0x0a
)

// xzDecompressor decodes the single-block xz streams mksquashfs writes
// (lzma_stream_buffer_encode). We parse the stream and block headers
// ourselves rather than use xz.Reader because that reader allocates
// whatever dictionary the block header asks for (up to 4 GiB); a match can
// never reach further back than the output so far, so a dictionary of the
// output bound is always enough. Filter chains other than plain LZMA2 (the
// BCJ filters of mksquashfs -Xbcj) are reported as ErrCompression.
type xzDecompressor struct{}

func (xzDecompressor) decompress(dst, src []byte, limit int) ([]byte, error) {
	body, hlen, check, err := xzBlockData(src)
	if err != nil {
		return nil, err
	}
	br := bytes.NewReader(body)
	lr, err := lzma.Reader2Config{DictCap: max(limit, lzma.MinDictCap)}.NewReader2(br)
	if err != nil {
		return nil, errCorrupt("xz", err)
	}
	out, err := readFull(dst, lr, limit)
	if err != nil {
		return nil, errCorrupt("xz", err)
	}
	// The LZMA2 reader reads its input byte by byte, so what is left is
	// the block padding and the check, which we verify as the kernel's
	// xz_dec does: squashfs has no checksum of its own.
	if err := xzCheck(body[len(body)-br.Len():], hlen+len(body)-br.Len(), check, out); err != nil {
		return nil, errCorrupt("xz", err)
	}
	return out, nil
}

// xzCheck verifies the block padding and the integrity check (CRC32, CRC64
// or SHA-256; none for type 0) of a block whose header and compressed data
// took n bytes.
func xzCheck(rest []byte, n int, check byte, out []byte) error {
	pad := (4 - n%4) % 4
	if len(rest) < pad || !bytes.Equal(rest[:pad], make([]byte, pad)) {
		return errors.New("bad block padding")
	}
	rest = rest[pad:]
	var sum []byte
	switch check {
	case xzCheckNone:
		return nil
	case xzCheckCRC32:
		sum = binary.LittleEndian.AppendUint32(nil, crc32.ChecksumIEEE(out))
	case xzCheckCRC64:
		sum = binary.LittleEndian.AppendUint64(nil, crc64.Checksum(out, crc64Table))
	case xzCheckSHA256:
		h := sha256.Sum256(out)
		sum = h[:]
	default:
		return nil // reserved check types: the spec lets decoders skip them
	}
	if !bytes.HasPrefix(rest, sum) {
		return errors.New("check mismatch")
	}
	return nil
}

var crc64Table = crc64.MakeTable(crc64.ECMA)

// xzBlockData checks the stream header and the first block header and
// returns the bytes from the LZMA2 data on, the block header's length and
// the stream's check type.
func xzBlockData(src []byte) (body []byte, hlen int, check byte, err error) {
	if len(src) < xzStreamHeader+1 || string(src[:len(xzMagic)]) != xzMagic {
		return nil, 0, 0, errCorrupt("xz", errors.New("bad stream header"))
	}
	flags := src[len(xzMagic) : len(xzMagic)+2]
	if binary.LittleEndian.Uint32(src[8:12]) != crc32.ChecksumIEEE(flags) || flags[0] != 0 || flags[1] > 0x0f {
		return nil, 0, 0, errCorrupt("xz", errors.New("bad stream flags"))
	}
	b := src[xzStreamHeader:]
	hlen = (int(b[0]) + 1) * 4
	if b[0] == 0 || hlen > len(b) || hlen < 8 {
		return nil, 0, 0, errCorrupt("xz", errors.New("bad block header size"))
	}
	hdr := b[:hlen]
	if binary.LittleEndian.Uint32(hdr[hlen-4:]) != crc32.ChecksumIEEE(hdr[:hlen-4]) {
		return nil, 0, 0, errCorrupt("xz", errors.New("block header checksum mismatch"))
	}
	if hdr[1]&xzBlockFlagsRsvd != 0 {
		return nil, 0, 0, errCorrupt("xz", errors.New("reserved block flags set"))
	}
	p := hdr[2 : hlen-4]
	vli := func() (uint64, bool) {
		var v uint64
		for i := 0; i < 9 && i < len(p); i++ {
			v |= uint64(p[i]&0x7f) << (7 * i)
			if p[i]&0x80 == 0 {
				p = p[i+1:]
				return v, true
			}
		}
		return 0, false
	}
	for i := 0; i < 2; i++ {
		if hdr[1]&(0x40<<i) != 0 {
			if _, ok := vli(); !ok {
				return nil, 0, 0, errCorrupt("xz", errors.New("bad block size field"))
			}
		}
	}
	if nf := int(hdr[1]&3) + 1; nf != 1 {
		return nil, 0, 0, fmt.Errorf("%w: xz filter chain of %d filters (BCJ filters are not supported)", ErrCompression, nf)
	}
	id, ok1 := vli()
	psize, ok2 := vli()
	if !ok1 || !ok2 || id != xzFilterLZMA2 || psize != 1 || len(p) < 1 {
		if ok1 && id != xzFilterLZMA2 {
			return nil, 0, 0, fmt.Errorf("%w: xz filter %#x", ErrCompression, id)
		}
		return nil, 0, 0, errCorrupt("xz", errors.New("bad filter flags"))
	}
	if _, err := lzma.DecodeDictCap(p[0]); err != nil {
		return nil, 0, 0, errCorrupt("xz", err)
	}
	return b[hlen:], hlen, flags[1], nil
}
