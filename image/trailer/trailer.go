// Package trailer reads and writes the trailer at the end of a packed
// executable: where its payload is and what it holds. It depends on nothing
// but the standard library, so the run-time stub can read its own trailer
// without linking the image codecs.
package trailer

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"strings"

	"github.com/parkerpack/parker/internal/lefields"
)

// A packed executable is laid out as
//
//	stub | [helper] | zero padding | payload (squashfs, padded to PadSize) | trailer
//
// The stub is the program that runs; the helper, when present, is a second
// executable the stub starts for the work that needs the image codecs
// (extraction, describing the image), so the stub itself stays small and
// quick to start. The payload sits at a PadSize-aligned offset, so `mount -o loop,offset=N`
// and `unsquashfs -o N` read it directly. The trailer sits at the very end so
// the stub finds its payload in O(1) from its own file alone, without ELF
// arithmetic. Its layout:
//
//	body   (BodyLen bytes, starts with the format version)
//	footer (FooterSize bytes): body length u32 | CRC-32C of body and
//	       length u32 | Magic
//
// The footer's shape never changes; the body may grow in later versions. The
// CRC-32C covers every byte before it, so any single damaged byte (indeed
// any burst of up to 32 bits) is detected.
//
// Version 2 appends the helper's offset, stored length and unpacked length
// to the body of version 1; version 3 appends the run's default resource
// limits (memory u64, CPU u32, pids u64); version 4, the helper's SHA-256
// unpacked (32 bytes); version 5, the libraries the target takes from the
// machine it runs on (a count u16, then for each its cache flags u32, its
// soname and its path, strings as above). Every version is read, and a
// trailer is written in the version its Version field names (0: the
// current one).
const (
	Magic      = "PARKER\x00\x01"
	FooterSize = 16
	Version    = 5
	// MaxBody bounds what a reader will allocate for a body.
	MaxBody      = 64 << 10
	maxTargetLen = 4096
	maxStringLen = 1024
	// MaxHelper bounds the helper's unpacked size, which a stub allocates.
	MaxHelper = 256 << 20
	// MaxNeeds bounds the libraries a trailer names; MaxNeedsBytes, what
	// they take of the body (a packer names the first that fit).
	MaxNeeds      = 256
	MaxNeedsBytes = 16 << 10
	maxSoname     = 255
	// PadSize is the payload's alignment in the file, and the multiple
	// the image is padded to, as mksquashfs does, so block devices (and
	// loop devices with a size limit) read its last block whole.
	PadSize = 4096
)

// Layout is where each part of a packed file begins, computed once, by
// Plan, for the packer and for every test that assembles a packed file by
// hand. The C stub reads the same fields from the trailer and checks them
// (stub/cstub), but never computes them.
type Layout struct {
	StubSize     int64 // the stub starts at 0
	HelperOffset int64 // 0 when there is no helper
	HelperSize   int64
	Offset       int64 // the payload's offset, a multiple of PadSize
}

// Plan lays out a stub of stubSize bytes and a helper of helperSize bytes
// (0: none): the helper at the first multiple of PadSize after the stub,
// the payload at the first one after the helper.
func Plan(stubSize, helperSize int64) Layout {
	l := Layout{StubSize: stubSize, Offset: AlignUp(stubSize)}
	if helperSize > 0 {
		l.HelperOffset, l.HelperSize = l.Offset, helperSize
		l.Offset = AlignUp(l.HelperOffset + helperSize)
	}
	return l
}

// AlignUp rounds n up to a multiple of PadSize.
func AlignUp(n int64) int64 {
	return (n + PadSize - 1) / PadSize * PadSize
}

// Apply records l in t: the stub size and the helper's and the payload's
// offsets (HelperRawSize, Size and the rest are the caller's).
func (l Layout) Apply(t *Trailer) {
	t.StubSize = uint64(l.StubSize)
	t.HelperOffset, t.HelperSize = uint64(l.HelperOffset), uint64(l.HelperSize)
	t.Offset = uint64(l.Offset)
}

// Flags.
const (
	KeepOwner = 1 << iota // owners were kept, not normalised to 0:0
	// Closure: the image carries its programs' libraries and loader
	// (parker --closure) in its StoreName directory, which a run shows
	// at /StoreName (package closure).
	Closure
)

// StoreName is the directory of a Closure image's store.
const StoreName = ".parker"

// Sentinel errors.
var (
	// ErrNoTrailer: the file carries no parker trailer (not a packed file).
	ErrNoTrailer = errors.New("no parker trailer")
	// ErrTrailer: a trailer is present but damaged or of an unknown version.
	ErrTrailer = errors.New("damaged parker trailer")
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
	// The helper executable (version 2), or HelperSize 0 for none: then
	// the stub does everything itself. HelperRawSize is its size unpacked
	// when it is stored as one LZ4 block, 0 when it is stored as it is.
	HelperOffset  uint64
	HelperSize    uint64
	HelperRawSize uint64
	// The run's default resource limits (version 3), set at pack time
	// (parker --memory, --cpus, --pids); 0 sets none. A --parker-memory,
	// --parker-cpus or --parker-pids flag at run time wins.
	Limits Limits
	// HelperDigest (version 4) is the SHA-256 of the helper unpacked, or
	// zero for none: it names the copy of the helper the cache keeps,
	// shared by every packed file that carries the same helper.
	HelperDigest [32]byte
	// Needs (version 5) are the libraries the target takes from the
	// machine it runs on, as the pack host's loader found them: a stub
	// checks they are there before it starts the target, so that a
	// machine that lacks one gets a line that names it, not the loader's
	// failure alone. None for a Closure image, which carries them.
	Needs []Need
}

// Need is a library the target takes from the machine it runs on: the
// loader cache's flags for its ABI, its soname, and where the pack host's
// loader found it (package closure).
type Need struct {
	Flags  uint32
	Soname string
	Path   string
}

// NeedsBytes is what needs take of a body.
func NeedsBytes(needs []Need) int {
	n := 2
	for _, d := range needs {
		n += 4 + 2 + len(d.Soname) + 2 + len(d.Path)
	}
	return n
}

// Limits are a run's resource limits as a trailer stores them.
type Limits struct {
	Memory    uint64 // bytes
	MilliCPUs uint32 // thousandths of a CPU
	Pids      uint64
}

// The largest limits a trailer holds: what package cgroup accepts (a
// trailer that names more is damaged or hostile).
const (
	MaxMemory    = 1<<63 - 1
	MaxMilliCPUs = 1 << 16 * 1000
	MaxPids      = 1 << 22
)

// Zero reports whether l sets no limit.
func (l Limits) Zero() bool { return l == Limits{} }

// MarshalBinary encodes t (body and footer). It refuses values a reader
// would reject, so every trailer we write can be read back.
func (t *Trailer) MarshalBinary() ([]byte, error) {
	if err := t.validate(); err != nil {
		return nil, err
	}
	version := t.Version
	if version == 0 {
		version = Version
	}
	var b bytes.Buffer
	le := binary.LittleEndian
	b.Write(le.AppendUint16(nil, version))
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
	if version >= 2 {
		b.Write(le.AppendUint64(nil, t.HelperOffset))
		b.Write(le.AppendUint64(nil, t.HelperSize))
		b.Write(le.AppendUint64(nil, t.HelperRawSize))
	}
	if version >= 3 {
		b.Write(le.AppendUint64(nil, t.Limits.Memory))
		b.Write(le.AppendUint32(nil, t.Limits.MilliCPUs))
		b.Write(le.AppendUint64(nil, t.Limits.Pids))
	}
	if version >= 4 {
		b.Write(t.HelperDigest[:])
	}
	if version >= 5 {
		b.Write(le.AppendUint16(nil, uint16(len(t.Needs))))
		for _, d := range t.Needs {
			b.Write(le.AppendUint32(nil, d.Flags))
			for _, s := range []string{d.Soname, d.Path} {
				b.Write(le.AppendUint16(nil, uint16(len(s))))
				b.WriteString(s)
			}
		}
	}
	bodyLen := uint32(b.Len())
	b.Write(le.AppendUint32(nil, bodyLen))
	b.Write(le.AppendUint32(nil, crc32.Checksum(b.Bytes(), crcTable)))
	b.WriteString(Magic)
	return b.Bytes(), nil
}

func (t *Trailer) validate() error {
	switch {
	case t.Version > Version || t.Version == 1 && (t.HelperSize != 0 || t.HelperRawSize != 0):
		return fmt.Errorf("%w: format version %d with a helper", ErrTrailer, t.Version)
	case t.Version != 0 && t.Version < 3 && !t.Limits.Zero():
		return fmt.Errorf("%w: format version %d with resource limits", ErrTrailer, t.Version)
	case t.Version != 0 && t.Version < 4 && t.HelperDigest != [32]byte{}:
		return fmt.Errorf("%w: format version %d with a helper digest", ErrTrailer, t.Version)
	case t.Version != 0 && t.Version < 5 && len(t.Needs) != 0:
		return fmt.Errorf("%w: format version %d with libraries", ErrTrailer, t.Version)
	case len(t.Needs) > MaxNeeds || NeedsBytes(t.Needs) > MaxNeedsBytes:
		return fmt.Errorf("%w: %d libraries in %d bytes", ErrTrailer, len(t.Needs), NeedsBytes(t.Needs))
	case t.HelperDigest != [32]byte{} && t.HelperSize == 0:
		return fmt.Errorf("%w: a helper digest without a helper", ErrTrailer)
	case t.Limits.Memory > MaxMemory || t.Limits.MilliCPUs > MaxMilliCPUs || t.Limits.Pids > MaxPids:
		return fmt.Errorf("%w: resource limits out of range (memory %d, CPUs %d/1000, pids %d)",
			ErrTrailer, t.Limits.Memory, t.Limits.MilliCPUs, t.Limits.Pids)
	case t.HelperRawSize != 0 && (t.HelperSize == 0 || t.HelperRawSize > MaxHelper):
		return fmt.Errorf("%w: helper of %d bytes unpacked from %d", ErrTrailer, t.HelperRawSize, t.HelperSize)
	case t.HelperSize != 0 && (t.HelperOffset < t.StubSize || t.HelperOffset+t.HelperSize < t.HelperOffset ||
		t.HelperOffset+t.HelperSize > t.Offset):
		return fmt.Errorf("%w: helper [%d, +%d) outside stub end %d .. payload offset %d",
			ErrTrailer, t.HelperOffset, t.HelperSize, t.StubSize, t.Offset)
	case t.Target == "" || len(t.Target) > maxTargetLen:
		return fmt.Errorf("%w: target path length %d", ErrTrailer, len(t.Target))
	case strings.IndexByte(t.Target, 0) >= 0:
		return fmt.Errorf("%w: target path with a NUL byte", ErrTrailer)
	case len(t.Compression) > maxStringLen || len(t.CreatedBy) > maxStringLen:
		return fmt.Errorf("%w: string field too long", ErrTrailer)
	case badNeed(t.Needs) != "":
		return fmt.Errorf("%w: library %q", ErrTrailer, badNeed(t.Needs))
	case t.Offset%PadSize != 0:
		return fmt.Errorf("%w: payload offset %d not %d-aligned", ErrTrailer, t.Offset, PadSize)
	case t.StubSize > t.Offset:
		return fmt.Errorf("%w: stub size %d beyond payload offset %d", ErrTrailer, t.StubSize, t.Offset)
	case t.Size == 0 || t.Offset+t.Size < t.Offset:
		return fmt.Errorf("%w: payload size %d", ErrTrailer, t.Size)
	}
	return nil
}

// Valid tells whether a trailer can name d: a soname of 1 to 255 bytes,
// without '/' or NUL, and an absolute path of at most 1024 bytes, without
// NUL.
func (d Need) Valid() bool {
	return d.Soname != "" && len(d.Soname) <= maxSoname && !strings.ContainsAny(d.Soname, "/\x00") &&
		strings.HasPrefix(d.Path, "/") && len(d.Path) <= maxStringLen && strings.IndexByte(d.Path, 0) < 0
}

// badNeed returns the first of needs that is not Valid, as "SONAME PATH",
// or "" when all are.
func badNeed(needs []Need) string {
	for _, d := range needs {
		if !d.Valid() {
			return d.Soname + " " + d.Path
		}
	}
	return ""
}

// Read reads and checks the trailer at the end of r, whose length is
// size. It returns ErrNoTrailer when the magic is absent (a file that was
// never packed) and ErrTrailer, wrapped with the cause, when a trailer is
// present but damaged, or when it points outside the file.
func Read(r io.ReaderAt, size int64) (*Trailer, error) {
	if size < FooterSize {
		return nil, ErrNoTrailer
	}
	var foot [FooterSize]byte
	if _, err := r.ReadAt(foot[:], size-FooterSize); err != nil {
		return nil, fmt.Errorf("read trailer: %w", err)
	}
	if string(foot[8:]) != Magic {
		return nil, ErrNoTrailer
	}
	le := binary.LittleEndian
	bodyLen := int64(le.Uint32(foot[0:4]))
	if bodyLen > MaxBody || bodyLen > size-FooterSize {
		return nil, fmt.Errorf("%w: body length %d", ErrTrailer, bodyLen)
	}
	buf := make([]byte, bodyLen+4)
	if _, err := r.ReadAt(buf[:bodyLen], size-FooterSize-bodyLen); err != nil {
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
	if end := t.Offset + t.Size; end > uint64(size-FooterSize-bodyLen) {
		return nil, fmt.Errorf("%w: payload [%d, %d) runs past the trailer (file is %d bytes; truncated?)",
			ErrTrailer, t.Offset, end, size)
	}
	return t, nil
}

func parseTrailerBody(b []byte) (*Trailer, error) {
	p := lefields.Parser{B: b}
	t := &Trailer{}
	t.Version = p.U16()
	if p.Err == nil && (t.Version < 1 || t.Version > Version) {
		return nil, fmt.Errorf("%w: format version %d (this parker reads 1 to %d)", ErrTrailer, t.Version, Version)
	}
	t.Flags = p.U16()
	t.StubSize = p.U64()
	t.Offset = p.U64()
	t.Size = p.U64()
	copy(t.Digest[:], p.Bytes(32))
	t.Level = int32(p.U32())
	t.BlockSize = p.U32()
	t.Target = p.Str()
	t.Compression = p.Str()
	t.CreatedBy = p.Str()
	if t.Version >= 2 {
		t.HelperOffset = p.U64()
		t.HelperSize = p.U64()
		t.HelperRawSize = p.U64()
	}
	if t.Version >= 3 {
		t.Limits.Memory = p.U64()
		t.Limits.MilliCPUs = p.U32()
		t.Limits.Pids = p.U64()
	}
	if t.Version >= 4 {
		copy(t.HelperDigest[:], p.Bytes(32))
	}
	if t.Version >= 5 {
		n := int(p.U16())
		for i := 0; i < n && p.Err == nil; i++ {
			d := Need{Flags: p.U32()}
			d.Soname = p.Str()
			d.Path = p.Str()
			t.Needs = append(t.Needs, d)
		}
	}
	if p.Err != nil {
		return nil, fmt.Errorf("%w: %v", ErrTrailer, p.Err)
	}
	return t, nil
}
