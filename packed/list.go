package packed

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/parkerpack/parker/image"
	"github.com/parkerpack/parker/internal/human"
	"golang.org/x/sys/unix"
)

// Format selects what List prints for each entry.
type Format int

const (
	// Names prints one path a line, directories with a trailing slash,
	// as `tar t` does.
	Names Format = iota
	// Long prints mode, owner, size, mtime and path, as `tar tv` does.
	Long
	// JSON prints one JSON array, an object per entry.
	JSON
)

// ListFormat is the Format that `parker ls` and --parker-ls print for
// their flags -l and --json: JSON carries everything Long shows.
func ListFormat(long, json bool) Format {
	switch {
	case json:
		return JSON
	case long:
		return Long
	}
	return Names
}

// timeLayout is how Long prints an mtime, always in UTC.
const timeLayout = "2006-01-02 15:04"

// ownerSizeWidth is the width Long pads "UID/GID SIZE" to, right-aligned,
// so that sizes line up (GNU tar's starting width).
const ownerSizeWidth = 19

// List writes the entries of the image in payload (size bytes) to w, in the
// image's order: the root (as "./", or "." in JSON) first, then each
// directory's entries sorted by name, a subdirectory's entries right after
// it. `parker ls` and a packed file's --parker-ls both print this listing,
// so the two always agree.
//
// When the image is damaged part way through, the entries read so far are
// written (a JSON array is closed, so it stays valid JSON) before the error
// is returned. Errors say whether the image could not be read or the
// listing could not be written; the latter wraps the writer's error
// (errors.Is(err, syscall.EPIPE) when the reader went away).
func List(w io.Writer, payload io.ReaderAt, size int64, f Format) error {
	l := &lister{w: bufio.NewWriterSize(w, 64<<10), format: f, links: map[uint32]string{}}
	rd, err := image.NewReader(payload, size)
	if err == nil {
		if f == JSON {
			l.w.WriteString("[")
		}
		err = rd.Walk(l.entry)
		if f == JSON {
			if l.n > 0 {
				l.w.WriteString("\n")
			}
			l.w.WriteString("]\n")
		}
	}
	if ferr := l.w.Flush(); ferr != nil {
		return fmt.Errorf("cannot write the listing: %w", human.Cause(ferr))
	}
	if err != nil {
		return fmt.Errorf("the image could not be read: %w", err)
	}
	return nil
}

type lister struct {
	w      *bufio.Writer
	format Format
	n      int               // entries written
	links  map[uint32]string // inode number -> first name, for hard links
}

// errWrite stops the walk once the listing cannot be written: the rest
// would be lost too. List reports the writer's own error, which Flush
// returns again.
var errWrite = errors.New("write failed")

func (l *lister) entry(n *image.Node) error {
	var b []byte
	switch l.format {
	case Names:
		b = append(appendEscaped(b, displayPath(n)), '\n')
	case Long:
		b = append(appendLong(b, n, l.hardlink(n)), '\n')
	case JSON:
		if l.n > 0 {
			b = append(b, ',')
		}
		b = append(b, "\n  "...)
		b = appendJSON(b, n, l.hardlink(n))
	}
	l.n++
	if _, err := l.w.Write(b); err != nil {
		return errWrite
	}
	return nil
}

// hardlink returns the first name listed of n's inode, when n is a later
// name of it; otherwise "". Directories cannot be hard-linked.
func (l *lister) hardlink(n *image.Node) string {
	if n.IsDir() || n.Nlink < 2 {
		return ""
	}
	if first, ok := l.links[n.Inode]; ok {
		return first
	}
	l.links[n.Inode] = n.Path
	return ""
}

// displayPath is n's path as listed: the root is "./", directories end in
// a slash.
func displayPath(n *image.Node) string {
	if n.IsDir() {
		if n.Path == "." {
			return "./"
		}
		return n.Path + "/"
	}
	return n.Path
}

// appendLong appends n's line of the long listing, without the newline:
//
//	-rw-r--r-- 0/0             5000 2024-05-01 10:00 links/a
//	lrwxrwxrwx 0/0                1 2024-05-01 10:00 links/sym -> a
//	crw-rw-rw- 0/0              1,3 2024-05-01 10:00 special/null
//	-rw-r--r-- 0/0             5000 2024-05-01 10:00 links/a.2 link to links/a
//
// Size is what stat reports once mounted (for a directory, the size of its
// listing; for a symlink, the target's length), major,minor for a device.
// hardlink, when not "", is the first name of the same inode, shown as
// tar tv shows it.
func appendLong(b []byte, n *image.Node, hardlink string) []byte {
	b = appendMode(b, n.Mode)
	b = append(b, ' ')
	owner := strconv.FormatUint(uint64(n.UID), 10) + "/" + strconv.FormatUint(uint64(n.GID), 10)
	size := strconv.FormatInt(n.Size, 10)
	if n.Mode&fs.ModeDevice != 0 {
		size = strconv.FormatUint(uint64(unix.Major(n.Rdev)), 10) + "," + strconv.FormatUint(uint64(unix.Minor(n.Rdev)), 10)
	}
	b = append(b, owner...)
	b = append(b, ' ')
	for i := len(owner) + 1 + len(size); i < ownerSizeWidth; i++ {
		b = append(b, ' ')
	}
	b = append(b, size...)
	b = append(b, ' ')
	b = time.Unix(n.ModTime, 0).UTC().AppendFormat(b, timeLayout)
	b = append(b, ' ')
	b = appendEscaped(b, displayPath(n))
	if n.Mode&fs.ModeSymlink != 0 {
		b = append(b, " -> "...)
		b = appendEscaped(b, n.Link)
	}
	if hardlink != "" {
		b = append(b, " link to "...)
		b = appendEscaped(b, hardlink)
	}
	return b
}

// appendMode appends the mode as ls -l writes it: the type, then rwx for
// owner, group and others, with s/S and t/T for setuid, setgid and sticky.
func appendMode(b []byte, m fs.FileMode) []byte {
	t := byte('-')
	switch {
	case m&fs.ModeDir != 0:
		t = 'd'
	case m&fs.ModeSymlink != 0:
		t = 'l'
	case m&fs.ModeCharDevice != 0:
		t = 'c'
	case m&fs.ModeDevice != 0:
		t = 'b'
	case m&fs.ModeNamedPipe != 0:
		t = 'p'
	case m&fs.ModeSocket != 0:
		t = 's'
	}
	b = append(b, t)
	special := [3]struct {
		set          bool
		exec, noexec byte
	}{
		{m&fs.ModeSetuid != 0, 's', 'S'},
		{m&fs.ModeSetgid != 0, 's', 'S'},
		{m&fs.ModeSticky != 0, 't', 'T'},
	}
	for i, sp := range special {
		bits := uint32(m.Perm()) >> (6 - 3*i)
		b = append(b, pick(bits&4 != 0, 'r'), pick(bits&2 != 0, 'w'))
		x := pick(bits&1 != 0, 'x')
		if sp.set {
			x = sp.noexec
			if bits&1 != 0 {
				x = sp.exec
			}
		}
		b = append(b, x)
	}
	return b
}

func pick(on bool, c byte) byte {
	if on {
		return c
	}
	return '-'
}

// typeName is the "type" of an entry in the JSON listing.
func typeName(m fs.FileMode) string {
	switch {
	case m&fs.ModeDir != 0:
		return "dir"
	case m&fs.ModeSymlink != 0:
		return "symlink"
	case m&fs.ModeCharDevice != 0:
		return "char"
	case m&fs.ModeDevice != 0:
		return "block"
	case m&fs.ModeNamedPipe != 0:
		return "fifo"
	case m&fs.ModeSocket != 0:
		return "socket"
	}
	return "file"
}

// appendJSON appends n as one JSON object on one line:
//
//	{"path": "links/sym", "type": "symlink", "mode": "0777", "uid": 0, "gid": 0, "size": 1, "mtime": 1714557600, "link": "a"}
//
// path has no trailing slash ("." for the root); mode is the permission
// bits with setuid, setgid and sticky, in octal; size is as in appendLong,
// 0 for devices, which have "major" and "minor"; symlinks have "link", the
// later names of a hard-linked inode "hardlink" (the first name). Like
// Info.JSON it is written by hand, to keep encoding/json out of every
// packed file.
func appendJSON(b []byte, n *image.Node, hardlink string) []byte {
	b = append(b, `{"path": `...)
	b = append(b, jsonString(n.Path)...)
	b = append(b, `, "type": "`+typeName(n.Mode)+`", "mode": "`...)
	perm := image.UnixPerm(n.Mode)
	for shift := 9; shift >= 0; shift -= 3 {
		b = append(b, byte('0'+perm>>shift&7))
	}
	b = append(b, '"')
	dev := n.Mode&fs.ModeDevice != 0
	size := uint64(n.Size)
	if dev {
		size = 0
	}
	b = appendNum(b, "uid", uint64(n.UID))
	b = appendNum(b, "gid", uint64(n.GID))
	b = appendNum(b, "size", size)
	b = append(b, `, "mtime": `...)
	b = strconv.AppendInt(b, n.ModTime, 10)
	if dev {
		b = appendNum(b, "major", uint64(unix.Major(n.Rdev)))
		b = appendNum(b, "minor", uint64(unix.Minor(n.Rdev)))
	}
	if n.Mode&fs.ModeSymlink != 0 {
		b = append(b, `, "link": `...)
		b = append(b, jsonString(n.Link)...)
	}
	if hardlink != "" {
		b = append(b, `, "hardlink": `...)
		b = append(b, jsonString(hardlink)...)
	}
	return append(b, '}')
}

// appendNum appends `, "key": v`.
func appendNum(b []byte, key string, v uint64) []byte {
	b = append(b, `, "`...)
	b = append(b, key...)
	b = append(b, `": `...)
	return strconv.AppendUint(b, v, 10)
}

// appendEscaped appends s as the text listings print a name or a symlink
// target:
// unchanged, except that a backslash becomes \\, and a byte that is not
// part of a printable character (a control character such as a newline or
// a tab, a byte that is not UTF-8, a character Unicode does not class as
// printable) becomes a C escape: \n, \t, \r, or \ooo in octal. This is the
// escaping `tar t` does. Every entry is then one line, a terminal shows
// the name as it is and nothing else, and the listing still tells apart
// any two names. (strconv.IsPrint is unicode.IsPrint with the compact
// tables strconv.Quote brings into every Go program already.)
func appendEscaped(b []byte, s string) []byte {
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == '\\':
			b = append(b, `\\`...)
		case r == '\n':
			b = append(b, `\n`...)
		case r == '\t':
			b = append(b, `\t`...)
		case r == '\r':
			b = append(b, `\r`...)
		case r == utf8.RuneError && size == 1, !strconv.IsPrint(r):
			for _, c := range []byte(s[i : i+size]) {
				b = append(b, '\\', '0'+c>>6, '0'+c>>3&7, '0'+c&7)
			}
		default:
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return b
}
