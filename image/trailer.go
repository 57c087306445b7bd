package image

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
)

// A packed executable is laid out as
//
//	stub | zero padding | payload (squashfs, padded to PadSize) | trailer
//
// with the payload at a PadSize-aligned offset, so `mount -o loop,offset=N`
// and `unsquashfs -o N` read it directly. The trailer sits at the very end so
// the stub finds its payload in O(1) from its own file alone, without ELF
// arithmetic. Its layout:
//
//	body   (BodyLen bytes, starts with the format version)
//	footer (TrailerFooterSize bytes): body length u32 | CRC-32C of body and
//	       length u32 | TrailerMagic
//
// The footer's shape never changes; the body may grow in later versions. The
// CRC-32C covers every byte before it, so any single damaged byte (indeed
// any burst of up to 32 bits) is detected.
const (
	TrailerMagic      = "PARKER\x00\x01"
	TrailerFooterSize = 16
	TrailerVersion    = 1
	// MaxTrailerBody bounds what a reader will allocate for a body.
	MaxTrailerBody = 64 << 10
	maxTargetLen   = 4096
	maxStringLen   = 1024
)

// Trailer flags.
const (
	TrailerKeepOwner = 1 << iota // owners were kept, not normalised to 0:0
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// Trailer describes the payload of a packed executable.
type Trailer struct {
	Version     uint16
	Flags       uint16
	StubSize    uint64   // bytes of the stub executable at the start of the file
	Offset      uint64   // payload offset, a multiple of PadSize
	Size        uint64   // payload length (the padded squashfs image)
	Digest      [32]byte // SHA-256 of the payload bytes
	Target      string   // entry program, slash-separated, relative to the packed root
	Compression string   // as passed to the writer: zstd, gzip, xz, lz4, none
	Level       int32    // compression level used (0 where not applicable)
	BlockSize   uint32
	CreatedBy   string // "parker <version>"
}

// MarshalBinary encodes t (body and footer). It refuses values a reader
// would reject, so every trailer we write can be read back.
func (t *Trailer) MarshalBinary() ([]byte, error) {
	if err := t.validate(); err != nil {
		return nil, err
	}
	var b bytes.Buffer
	le := binary.LittleEndian
	b.Write(le.AppendUint16(nil, TrailerVersion))
	b.Write(le.AppendUint16(nil, t.Flags))
	b.Write(le.AppendUint64(nil, t.StubSize))
	b.Write(le.AppendUint64(nil, t.Offset))
	b.Write(le.AppendUint64(nil, t.Size))
	b.Write(t.Digest[:])
	b.Write(le.AppendUint32(nil, uint32(t.Level)))
	b.Write(le.AppendUint32(nil, t.BlockSize))
	for _, s := range []string{t.Target, t.Compression, t.CreatedBy} {
		b.Write(le.AppendUint16(nil, uint16(len(s))))
		b.WriteString(s)
	}
	bodyLen := uint32(b.Len())
	b.Write(le.AppendUint32(nil, bodyLen))
	b.Write(le.AppendUint32(nil, crc32.Checksum(b.Bytes(), crcTable)))
	b.WriteString(TrailerMagic)
	return b.Bytes(), nil
}

func (t *Trailer) validate() error {
	switch {
	case t.Target == "" || len(t.Target) > maxTargetLen:
		return fmt.Errorf("%w: target path length %d", ErrTrailer, len(t.Target))
	case len(t.Compression) > maxStringLen || len(t.CreatedBy) > maxStringLen:
		return fmt.Errorf("%w: string field too long", ErrTrailer)
	case t.Offset%PadSize != 0:
		return fmt.Errorf("%w: payload offset %d not %d-aligned", ErrTrailer, t.Offset, PadSize)
	case t.StubSize > t.Offset:
		return fmt.Errorf("%w: stub size %d beyond payload offset %d", ErrTrailer, t.StubSize, t.Offset)
	case t.Size == 0 || t.Offset+t.Size < t.Offset:
		return fmt.Errorf("%w: payload size %d", ErrTrailer, t.Size)
	}
	return nil
}

// ReadTrailer reads and checks the trailer at the end of r, whose length is
// size. It returns ErrNoTrailer when the magic is absent (a file that was
// never packed) and ErrTrailer, wrapped with the cause, when a trailer is
// present but damaged, or when it points outside the file.
func ReadTrailer(r io.ReaderAt, size int64) (*Trailer, error) {
	if size < TrailerFooterSize {
		return nil, ErrNoTrailer
	}
	var foot [TrailerFooterSize]byte
	if _, err := r.ReadAt(foot[:], size-TrailerFooterSize); err != nil {
		return nil, fmt.Errorf("read trailer: %w", err)
	}
	if string(foot[8:]) != TrailerMagic {
		return nil, ErrNoTrailer
	}
	le := binary.LittleEndian
	bodyLen := int64(le.Uint32(foot[0:4]))
	if bodyLen > MaxTrailerBody || bodyLen > size-TrailerFooterSize {
		return nil, fmt.Errorf("%w: body length %d", ErrTrailer, bodyLen)
	}
	buf := make([]byte, bodyLen+4)
	if _, err := r.ReadAt(buf[:bodyLen], size-TrailerFooterSize-bodyLen); err != nil {
		return nil, fmt.Errorf("read trailer: %w", err)
	}
	copy(buf[bodyLen:], foot[0:4])
	if crc32.Checksum(buf, crcTable) != le.Uint32(foot[4:8]) {
		return nil, fmt.Errorf("%w: checksum mismatch", ErrTrailer)
	}
	t, err := parseTrailerBody(buf[:bodyLen])
	if err != nil {
		return nil, err
	}
	if err := t.validate(); err != nil {
		return nil, err
	}
	if end := t.Offset + t.Size; end > uint64(size-TrailerFooterSize-bodyLen) {
		return nil, fmt.Errorf("%w: payload [%d, %d) runs past the trailer (file is %d bytes; truncated?)",
			ErrTrailer, t.Offset, end, size)
	}
	return t, nil
}

func parseTrailerBody(b []byte) (*Trailer, error) {
	p := parser{b: b}
	t := &Trailer{}
	t.Version = p.u16()
	if p.err == nil && t.Version != TrailerVersion {
		return nil, fmt.Errorf("%w: format version %d (this parker reads %d)", ErrTrailer, t.Version, TrailerVersion)
	}
	t.Flags = p.u16()
	t.StubSize = p.u64()
	t.Offset = p.u64()
	t.Size = p.u64()
	copy(t.Digest[:], p.bytes(32))
	t.Level = int32(p.u32())
	t.BlockSize = p.u32()
	t.Target = p.str()
	t.Compression = p.str()
	t.CreatedBy = p.str()
	if p.err != nil {
		return nil, fmt.Errorf("%w: %v", ErrTrailer, p.err)
	}
	return t, nil
}

// parser decodes little-endian fields from a byte slice with a sticky error,
// so a sequence of reads needs one check at the end.
type parser struct {
	b   []byte
	err error
}

func (p *parser) bytes(n int) []byte {
	if p.err != nil || n < 0 || n > len(p.b) {
		if p.err == nil {
			p.err = io.ErrUnexpectedEOF
		}
		return nil
	}
	v := p.b[:n]
	p.b = p.b[n:]
	return v
}

func (p *parser) u16() uint16 {
	if b := p.bytes(2); p.err == nil {
		return binary.LittleEndian.Uint16(b)
	}
	return 0
}

func (p *parser) u32() uint32 {
	if b := p.bytes(4); p.err == nil {
		return binary.LittleEndian.Uint32(b)
	}
	return 0
}

func (p *parser) u64() uint64 {
	if b := p.bytes(8); p.err == nil {
		return binary.LittleEndian.Uint64(b)
	}
	return 0
}

func (p *parser) str() string {
	n := int(p.u16())
	b := p.bytes(n)
	if p.err != nil {
		return ""
	}
	return string(b)
}
