// Package packed describes a packed file: what its trailer says and what
// the superblock of its payload says (Describe), and the entries of its
// image (List). `parker inspect` and a packed file's --parker-info both
// print the description, `parker ls` and --parker-ls the listing, so each
// pair always agrees.
package packed

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/parkerpack/parker/image"
	"github.com/parkerpack/parker/image/trailer"
	"github.com/parkerpack/parker/internal/human"
)

// Info describes a packed file: what its trailer says and, when the payload
// can be read, what its superblock says. `parker inspect` and a packed
// file's --parker-info both print it, so the two always agree.
type Info struct {
	File          string
	FileSize      int64
	FormatVersion int
	Target        string
	StubSize      uint64
	HelperOffset  uint64 // the helper executable; HelperSize 0 for none
	HelperSize    uint64
	HelperRawSize uint64 // unpacked size of an LZ4-packed helper, or 0
	HelperDigest  string // "sha256:<hex>" of the helper unpacked, or "" (none recorded)
	Offset        uint64
	Size          uint64
	Digest        string // "sha256:<hex>"
	DigestOK      bool   // the payload matches Digest (only when verified)
	Verified      bool   // whether the digest was checked
	Compression   string
	Level         int32
	BlockSize     uint32
	KeepOwner     bool
	CreatedBy     string
	Limits        trailer.Limits // every run's default resource limits
	// Libraries are those the target takes from the machine it runs on,
	// which a run checks before it starts it (trailer.Needs).
	Libraries []trailer.Need
	// From the superblock; HaveImage is false when it could not be read,
	// and ImageError says why.
	HaveImage  bool
	Inodes     uint32
	ModTime    int64
	ImageError string
}

// Describe reads the trailer of r (a file of the given size named name) and
// the superblock of its payload. With verify it also hashes the payload.
// It fails only when there is no readable trailer; a damaged payload is
// reported in the Info.
func Describe(r io.ReaderAt, size int64, name string, verify bool) (*Info, error) {
	t, err := trailer.Read(r, size)
	if err != nil {
		return nil, err
	}
	in := &Info{
		File:          name,
		FileSize:      size,
		FormatVersion: int(t.Version),
		Target:        t.Target,
		StubSize:      t.StubSize,
		HelperOffset:  t.HelperOffset,
		HelperSize:    t.HelperSize,
		HelperRawSize: t.HelperRawSize,
		Offset:        t.Offset,
		Size:          t.Size,
		Digest:        "sha256:" + hex.EncodeToString(t.Digest[:]),
		Compression:   t.Compression,
		Level:         t.Level,
		BlockSize:     t.BlockSize,
		KeepOwner:     t.Flags&trailer.KeepOwner != 0,
		CreatedBy:     t.CreatedBy,
		Limits:        t.Limits,
		Libraries:     t.Needs,
	}
	if t.HelperDigest != [32]byte{} {
		in.HelperDigest = "sha256:" + hex.EncodeToString(t.HelperDigest[:])
	}
	payload := io.NewSectionReader(r, int64(t.Offset), int64(t.Size))
	if verify {
		h := sha256.New()
		if _, err := io.CopyBuffer(h, payload, make([]byte, 1<<20)); err != nil {
			return nil, fmt.Errorf("read payload: %w", err)
		}
		in.Verified = true
		in.DigestOK = string(h.Sum(nil)) == string(t.Digest[:])
	}
	rd, err := image.NewReader(payload, int64(t.Size))
	if err != nil {
		in.ImageError = err.Error()
		return in, nil
	}
	sb := rd.Superblock()
	in.HaveImage, in.Inodes, in.ModTime = true, sb.Inodes, int64(sb.ModTime)
	if got := rd.Compression(); got != t.Compression {
		in.ImageError = fmt.Sprintf("image compression %s differs from the trailer's %s", got, t.Compression)
	}
	return in, nil
}

// JSON encodes in as one indented JSON object. It is written by hand, not
// with encoding/json: every packed file carries this code, and the
// reflection-based encoder would add about 170 KB to each of them.
func (in *Info) JSON() []byte {
	var b strings.Builder
	first := true
	field := func(k, v string) {
		if !first {
			b.WriteString(",\n")
		}
		first = false
		b.WriteString("  ")
		b.WriteString(jsonString(k))
		b.WriteString(": ")
		b.WriteString(v)
	}
	str := func(k, v string) { field(k, jsonString(v)) }
	num := func(k string, v uint64) { field(k, strconv.FormatUint(v, 10)) }
	b.WriteString("{\n")
	str("file", in.File)
	field("file_size", strconv.FormatInt(in.FileSize, 10))
	num("format_version", uint64(in.FormatVersion))
	str("target", in.Target)
	num("stub_size", in.StubSize)
	num("helper_offset", in.HelperOffset)
	num("helper_size", in.HelperSize)
	num("helper_raw_size", in.HelperRawSize)
	if in.HelperDigest != "" {
		str("helper_digest", in.HelperDigest)
	}
	num("offset", in.Offset)
	num("size", in.Size)
	str("digest", in.Digest)
	if in.Verified {
		field("digest_ok", strconv.FormatBool(in.DigestOK))
	}
	str("compression", in.Compression)
	field("level", strconv.FormatInt(int64(in.Level), 10))
	num("block_size", uint64(in.BlockSize))
	field("keep_owner", strconv.FormatBool(in.KeepOwner))
	str("created_by", in.CreatedBy)
	num("memory_limit", in.Limits.Memory)
	field("cpu_limit", cpus(in.Limits.MilliCPUs))
	num("pids_limit", in.Limits.Pids)
	libs := make([]string, len(in.Libraries))
	for i, d := range in.Libraries {
		libs[i] = "{" + jsonString("soname") + ": " + jsonString(d.Soname) + ", " + jsonString("path") + ": " + jsonString(d.Path) + "}"
	}
	field("libraries", "["+strings.Join(libs, ", ")+"]")
	if in.HaveImage {
		num("files", uint64(in.Inodes))
		num("inodes", uint64(in.Inodes))
		field("mtime", strconv.FormatInt(in.ModTime, 10))
	} else {
		field("files", "null")
		field("inodes", "null")
		field("mtime", "null")
	}
	if in.ImageError != "" {
		str("image_error", in.ImageError)
	}
	b.WriteString("\n}\n")
	return []byte(b.String())
}

// jsonString quotes s as a JSON string. Bytes that are not UTF-8 (file
// names may hold any byte) become U+FFFD, as encoding/json does, so the
// output is always valid JSON.
func jsonString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r == 0x7f || r == 0x2028 || r == 0x2029:
			fmt.Fprintf(&b, `\u%04x`, r)
		case r == utf8.RuneError:
			b.WriteString(`\ufffd`)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// cpus writes thousandths of a CPU as a number of CPUs: 0.5, 2.
func cpus(milli uint32) string {
	return strconv.FormatFloat(float64(milli)/1000, 'f', -1, 64)
}

// limitsText says which default limits a run gets, as the flags that
// override them take them.
func limitsText(l trailer.Limits) string {
	var ls []string
	if l.Memory != 0 {
		ls = append(ls, "--parker-memory "+human.FormatSize(int64(l.Memory)))
	}
	if l.MilliCPUs != 0 {
		ls = append(ls, "--parker-cpus "+cpus(l.MilliCPUs))
	}
	if l.Pids != 0 {
		ls = append(ls, "--parker-pids "+strconv.FormatUint(l.Pids, 10))
	}
	if len(ls) == 0 {
		return "none"
	}
	return strings.Join(ls, " ") + " (each run's default)"
}

// WriteText prints in as aligned "key: value" lines, the keys of JSON but
// for the limits, which share one line ("limits").
func (in *Info) WriteText(w io.Writer) {
	line := func(k, format string, a ...any) {
		fmt.Fprintf(w, "%-15s %s\n", k+":", fmt.Sprintf(format, a...))
	}
	line("file", "%s (%d bytes)", in.File, in.FileSize)
	line("format_version", "%d", in.FormatVersion)
	line("target", "%s", in.Target)
	line("stub_size", "%d (%s)", in.StubSize, human.Bytes(int64(in.StubSize)))
	switch {
	case in.HelperRawSize != 0:
		line("helper_size", "%d (%s) at offset %d, LZ4, %s unpacked", in.HelperSize, human.Bytes(int64(in.HelperSize)),
			in.HelperOffset, human.Bytes(int64(in.HelperRawSize)))
	case in.HelperSize != 0:
		line("helper_size", "%d (%s) at offset %d", in.HelperSize, human.Bytes(int64(in.HelperSize)), in.HelperOffset)
	default:
		line("helper_size", "0 (none: the stub does all)")
	}
	if in.HelperDigest != "" {
		line("helper_digest", "%s", in.HelperDigest)
	}
	line("offset", "%d", in.Offset)
	line("size", "%d (%s)", in.Size, human.Bytes(int64(in.Size)))
	switch {
	case !in.Verified:
		line("digest", "%s", in.Digest)
	case in.DigestOK:
		line("digest", "%s (verified)", in.Digest)
	default:
		line("digest", "%s (MISMATCH: the payload is damaged)", in.Digest)
	}
	line("compression", "%s", in.Compression)
	line("level", "%d", in.Level)
	line("block_size", "%d (%s)", in.BlockSize, human.Bytes(int64(in.BlockSize)))
	line("keep_owner", "%t", in.KeepOwner)
	line("created_by", "%s", in.CreatedBy)
	line("limits", "%s", limitsText(in.Limits))
	if len(in.Libraries) > 0 {
		names := make([]string, len(in.Libraries))
		for i, d := range in.Libraries {
			names[i] = d.Soname
		}
		line("libraries", "%d from the machine it runs on: %s", len(names), strings.Join(names, " "))
	}
	if in.HaveImage {
		line("inodes", "%d", in.Inodes)
		line("mtime", "%d (%s)", in.ModTime, time.Unix(in.ModTime, 0).UTC().Format(time.RFC3339))
	} else {
		line("inodes", "unknown (image unreadable: %s)", in.ImageError)
	}
	line("mount", "mount -o loop,ro,offset=%d %s DIR", in.Offset, in.File)
}
