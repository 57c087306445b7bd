package tests

// The oracle's data model: a view is what one reader shows of a tree (path
// to entry), built from lstat on a real directory (the source, an unsquashfs
// extraction, a kernel mount) or from a squashfs reader library. compare
// then checks a reader's view against the source view.

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"unicode/utf8"

	dfile "github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/filesystem"
	dsquash "github.com/diskfs/go-diskfs/filesystem/squashfs"
	"github.com/parkerpack/parker/image"
	"golang.org/x/sys/unix"
)

// entry is one file system object as a reader shows it.
type entry struct {
	Mode     fs.FileMode // Go type bits | permissions | ModeSetuid/Setgid/Sticky
	UID, GID uint32
	Mtime    int64
	Size     int64  // regular files only
	Link     string // symlink target
	Rdev     uint64 // device nodes
	ID       string // inode identity, meaningful within one view
	Nlink    uint32 // 0 when the reader does not show it
	Names    []string
	open     func() (io.ReadCloser, error)
}

// view is a whole tree as one reader shows it.
type view struct {
	name    string
	entries map[string]*entry // slash-separated path relative to the root; "." is the root

	// What this reader cannot show; compare leaves those out and says so.
	noSpecialBits bool     // setuid, setgid, sticky
	noRdev        bool     // device numbers
	unlisted      []string // directories whose content the reader cannot list
	notes         []string

	mu     sync.Mutex
	hashes map[string]string
}

func newView(name string) *view {
	return &view{name: name, entries: map[string]*entry{}, hashes: map[string]string{}}
}

func (v *view) add(p string, e *entry) {
	v.entries[p] = e
	if p != "." {
		if parent := v.entries[path.Dir(p)]; parent != nil {
			parent.Names = append(parent.Names, path.Base(p))
		}
	}
}

// lstatView walks a real directory tree without following symlinks.
func lstatView(name, root string) (*view, error) {
	v := newView(name)
	var walk func(rel string) error
	walk = func(rel string) error {
		full := filepath.Join(root, filepath.FromSlash(rel))
		var st syscall.Stat_t
		if err := syscall.Lstat(full, &st); err != nil {
			return &fs.PathError{Op: "lstat", Path: full, Err: err}
		}
		e := &entry{
			Mode:  unixMode(st.Mode),
			UID:   st.Uid,
			GID:   st.Gid,
			Mtime: st.Mtim.Sec,
			ID:    fmt.Sprintf("%d:%d", st.Dev, st.Ino),
			Nlink: uint32(st.Nlink),
		}
		switch e.Mode.Type() {
		case 0:
			e.Size = st.Size
			e.open = func() (io.ReadCloser, error) { return openSparse(full) }
		case fs.ModeSymlink:
			l, err := os.Readlink(full)
			if err != nil {
				return err
			}
			e.Link = l
		case fs.ModeDevice, fs.ModeDevice | fs.ModeCharDevice:
			e.Rdev = st.Rdev
		}
		v.add(rel, e)
		if e.Mode.IsDir() {
			f, err := os.Open(full)
			if err != nil {
				return err
			}
			names, err := f.Readdirnames(-1)
			f.Close()
			if err != nil {
				return err
			}
			sort.Strings(names)
			for _, n := range names {
				if err := walk(path.Join(rel, n)); err != nil {
					return err
				}
			}
		}
		return nil
	}
	return v, walk(".")
}

// sparseFile reads a file on a real file system without reading its holes:
// SEEK_DATA/SEEK_HOLE find them and they read as zeros, which is what the
// kernel guarantees. Reading 5 GiB of ext4 holes page by page is slow and
// proves nothing about the image.
type sparseFile struct {
	f              *os.File
	off, end, size int64
	hole           bool
}

func openSparse(name string) (io.ReadCloser, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil || st.Size() < 1<<20 {
		return f, err
	}
	return &sparseFile{f: f, size: st.Size()}, nil
}

func (s *sparseFile) Read(p []byte) (int, error) {
	if s.off >= s.size {
		return 0, io.EOF
	}
	if s.off >= s.end {
		fd := int(s.f.Fd())
		d, err := unix.Seek(fd, s.off, unix.SEEK_DATA)
		switch {
		case err == unix.ENXIO: // only a hole is left
			s.hole, s.end = true, s.size
		case err != nil:
			return 0, err
		case d > s.off:
			s.hole, s.end = true, d
		default:
			h, err := unix.Seek(fd, s.off, unix.SEEK_HOLE)
			if err != nil {
				return 0, err
			}
			s.hole, s.end = false, h
		}
	}
	n := int(min(int64(len(p)), s.end-s.off))
	if s.hole {
		clear(p[:n])
	} else {
		var err error
		if n, err = s.f.ReadAt(p[:n], s.off); err != nil && err != io.EOF {
			return n, err
		}
	}
	s.off += int64(n)
	return n, nil
}

func (s *sparseFile) Close() error { return s.f.Close() }

// unixMode turns st_mode into an fs.FileMode.
func unixMode(m uint32) fs.FileMode {
	mode := fs.FileMode(m & 0o777)
	switch m & syscall.S_IFMT {
	case syscall.S_IFDIR:
		mode |= fs.ModeDir
	case syscall.S_IFLNK:
		mode |= fs.ModeSymlink
	case syscall.S_IFIFO:
		mode |= fs.ModeNamedPipe
	case syscall.S_IFSOCK:
		mode |= fs.ModeSocket
	case syscall.S_IFCHR:
		mode |= fs.ModeDevice | fs.ModeCharDevice
	case syscall.S_IFBLK:
		mode |= fs.ModeDevice
	}
	if m&syscall.S_ISUID != 0 {
		mode |= fs.ModeSetuid
	}
	if m&syscall.S_ISGID != 0 {
		mode |= fs.ModeSetgid
	}
	if m&syscall.S_ISVTX != 0 {
		mode |= fs.ModeSticky
	}
	return mode
}

// diskfsView reads the image at [off, off+size) of file with go-diskfs.
//
// Its limits, each reported rather than skipped silently: FileInfo.Mode
// drops setuid/setgid/sticky; device numbers are not exposed; ReadDir takes
// a path and refuses any that is not valid UTF-8 (io/fs.ValidPath), so the
// content of a directory with a non-UTF-8 name in its path cannot be listed
// (files with such names in listable directories are still read, through
// their directory entry).
func diskfsView(file string, off, size int64) (*view, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	fsys, err := dsquash.Read(dfile.New(f, true), size, off, 0)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("go-diskfs: %w", err)
	}
	v := newView("go-diskfs")
	v.noSpecialBits, v.noRdev = true, true
	info, err := fsys.Stat(".")
	if err != nil {
		return nil, fmt.Errorf("go-diskfs: stat root: %w", err)
	}
	v.add(".", diskfsEntry(info))
	var walk func(dir string) error
	walk = func(dir string) error {
		des, err := fsys.ReadDir(dir)
		if err != nil {
			return fmt.Errorf("go-diskfs: ReadDir %q: %w", dir, err)
		}
		for _, de := range des {
			p := path.Join(dir, de.Name())
			info, err := de.Info()
			if err != nil {
				return fmt.Errorf("go-diskfs: %q: %w", p, err)
			}
			e := diskfsEntry(info)
			if e.Mode.IsRegular() {
				op, ok := de.(interface {
					Open() (filesystem.File, error)
				})
				if !ok {
					return fmt.Errorf("go-diskfs: %q: directory entry %T has no Open", p, de)
				}
				e.open = func() (io.ReadCloser, error) { return op.Open() }
			}
			v.add(p, e)
			if e.Mode.IsDir() {
				if !utf8.ValidString(p) {
					v.unlisted = append(v.unlisted, p)
					continue
				}
				if err := walk(p); err != nil {
					return err
				}
			}
		}
		return nil
	}
	return v, walk(".")
}

func diskfsEntry(info fs.FileInfo) *entry {
	e := &entry{Mode: info.Mode(), Mtime: info.ModTime().Unix()}
	if st, ok := info.Sys().(*dsquash.StatT); ok {
		e.UID, e.GID = st.UID, st.GID
		e.ID = fmt.Sprint(st.Inode)
		e.Link = st.LinkTarget
	}
	if e.Mode.IsRegular() {
		e.Size = info.Size()
	}
	return e
}

// ourView reads the image with image.Reader.
func ourView(file string, off, size int64) (*view, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	r, err := image.NewReader(io.NewSectionReader(f, off, size), size)
	if err != nil {
		f.Close()
		return nil, err
	}
	v := newView("image.Reader")
	err = r.Walk(func(n *image.Node) error {
		e := &entry{Mode: n.Mode, UID: n.UID, GID: n.GID, Mtime: n.ModTime, Link: n.Link, Rdev: n.Rdev, ID: fmt.Sprint(n.Inode), Nlink: n.Nlink}
		if n.Mode.IsRegular() {
			e.Size = n.Size
			e.open = func() (io.ReadCloser, error) {
				fr, err := r.Open(n)
				if err != nil {
					return nil, err
				}
				return io.NopCloser(fr), nil
			}
		}
		p := n.Path
		if p == "" {
			p = "."
		}
		if _, dup := v.entries[p]; dup {
			return fmt.Errorf("Walk visited %q twice", p)
		}
		v.add(p, e)
		return nil
	})
	return v, err
}

// digest returns a content digest that equals for equal contents: SHA-256
// over (offset, bytes) of every 64 KiB chunk that is not all zeros, and the
// length. Skipping zero chunks keeps a 5 GiB sparse file cheap to hash
// while every byte is still read from the reader under test.
func digest(r io.Reader) (string, int64, error) {
	bp := digestBufs.Get().(*[]byte)
	defer digestBufs.Put(bp)
	buf := *bp
	h := sha256.New()
	var off int64
	for {
		n, err := io.ReadFull(r, buf)
		for i := 0; i < n; i += digestChunk {
			c := buf[i:min(i+digestChunk, n)]
			if !bytes.Equal(c, zero[:len(c)]) {
				h.Write(binary.LittleEndian.AppendUint64(nil, uint64(off+int64(i))))
				h.Write(c)
			}
		}
		off += int64(n)
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			return "", off, err
		}
	}
	h.Write(binary.LittleEndian.AppendUint64(nil, uint64(off)))
	return hex.EncodeToString(h.Sum(nil)), off, nil
}

const digestChunk = 64 << 10

var (
	digestBufs = sync.Pool{New: func() any { b := make([]byte, 1<<20); return &b }}
	zero       = make([]byte, digestChunk)
)

// hashAll digests every regular file of v (paths in want), two at a time.
func (v *view) hashAll(want []string) map[string]error {
	errs := map[string]error{}
	var mu sync.Mutex
	ch := make(chan string)
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := range ch {
				d, err := v.hashOne(p)
				mu.Lock()
				if err != nil {
					errs[p] = err
				}
				mu.Unlock()
				if err == nil {
					v.mu.Lock()
					v.hashes[p] = d
					v.mu.Unlock()
				}
			}
		}()
	}
	for _, p := range want {
		v.mu.Lock()
		_, done := v.hashes[p]
		v.mu.Unlock()
		if !done {
			ch <- p
		}
	}
	close(ch)
	wg.Wait()
	return errs
}

func (v *view) hashOne(p string) (string, error) {
	e := v.entries[p]
	if e.open == nil {
		return "", errors.New("no way to read content")
	}
	rc, err := e.open()
	if err != nil {
		return "", err
	}
	defer rc.Close()
	d, n, err := digest(rc)
	if err != nil {
		return "", fmt.Errorf("read at %d: %w", n, err)
	}
	return d, nil
}

// expect says how the packed tree should differ from the source.
type expect struct {
	keepOwner bool
	clamp     int64           // SOURCE_DATE_EPOCH; < 0 when unset
	exclude   map[string]bool // source paths left out (with everything below)
	// splitSymlinkLinks accepts two names of one hard-linked symlink as two
	// inodes: mksquashfs 4.5.1 stores them so (with -all-root), and only the
	// control (TestOracleControl) sets it.
	splitSymlinkLinks bool
	// ignoreMtime: directories whose mtime the pack itself changed (its
	// temp file was created there, when the output is inside the workdir).
	ignoreMtime map[string]bool
}

func (x expect) excluded(p string) bool {
	for q := range x.exclude {
		if p == q || strings.HasPrefix(p, q+"/") {
			return true
		}
	}
	return false
}

// compare checks got against the source view and returns one line per
// difference (paths quoted, as names may hold any byte) and notes on what
// got's reader could not check.
func compare(src, got *view, x expect) (problems, notes []string) {
	bad := func(p, f string, a ...any) {
		problems = append(problems, fmt.Sprintf("%q: ", p)+fmt.Sprintf(f, a...))
	}
	under := func(p string) string {
		for _, u := range got.unlisted {
			if strings.HasPrefix(p, u+"/") {
				return u
			}
		}
		return ""
	}
	skipped := map[string]int{}
	var paths, files []string
	for p := range src.entries {
		if x.excluded(p) {
			continue
		}
		if u := under(p); u != "" {
			skipped[u]++
			continue
		}
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for p := range got.entries {
		if _, ok := src.entries[p]; !ok || x.excluded(p) {
			bad(p, "in the image but not in the source (or excluded)")
		}
	}
	specials := 0
	for _, p := range paths {
		s, g := src.entries[p], got.entries[p]
		if g == nil {
			bad(p, "missing (source: %v)", s.Mode)
			continue
		}
		if s.Mode.Type() != g.Mode.Type() {
			bad(p, "type %v, want %v", g.Mode.Type(), s.Mode.Type())
			continue
		}
		mask := fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky
		if got.noSpecialBits {
			if s.Mode&(fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky) != 0 {
				specials++
			}
			mask = fs.ModePerm
		}
		if s.Mode&mask != g.Mode&mask {
			bad(p, "mode %v, want %v", g.Mode&mask, s.Mode&mask)
		}
		wantUID, wantGID := uint32(0), uint32(0)
		if x.keepOwner {
			wantUID, wantGID = s.UID, s.GID
		}
		if g.UID != wantUID || g.GID != wantGID {
			bad(p, "owner %d:%d, want %d:%d", g.UID, g.GID, wantUID, wantGID)
		}
		wantM := s.Mtime
		if x.clamp >= 0 && wantM > x.clamp {
			wantM = x.clamp
		}
		if g.Mtime != wantM && !x.ignoreMtime[p] {
			bad(p, "mtime %d, want %d", g.Mtime, wantM)
		}
		switch s.Mode.Type() {
		case 0:
			if g.Size != s.Size {
				bad(p, "size %d, want %d", g.Size, s.Size)
			}
			files = append(files, p)
		case fs.ModeSymlink:
			if g.Link != s.Link {
				bad(p, "symlink target %q, want %q", g.Link, s.Link)
			}
		case fs.ModeDevice, fs.ModeDevice | fs.ModeCharDevice:
			if !got.noRdev && g.Rdev != s.Rdev {
				bad(p, "rdev %#x, want %#x", g.Rdev, s.Rdev)
			}
		case fs.ModeDir:
			if slices.Contains(got.unlisted, p) {
				break
			}
			var want []string
			for _, n := range s.Names {
				if !x.excluded(path.Join(p, n)) {
					want = append(want, n)
				}
			}
			have := append([]string(nil), g.Names...)
			sort.Strings(want)
			sort.Strings(have)
			if strings.Join(want, "\x00") != strings.Join(have, "\x00") {
				bad(p, "directory lists %d names, want %d: %s", len(have), len(want), nameDiff(have, want))
			}
		}
	}

	// Hard-link identity: names that share a source inode share an image
	// inode, and names that do not, do not.
	byGot := map[string]string{} // got ID -> a path with it
	bySrc := map[string]string{} // src ID -> a path with it
	for _, p := range paths {
		s, g := src.entries[p], got.entries[p]
		if g == nil || g.ID == "" {
			continue
		}
		if q, ok := bySrc[s.ID]; ok && got.entries[q].ID != g.ID && !(x.splitSymlinkLinks && s.Mode.Type() == fs.ModeSymlink) {
			bad(p, "hard link of %q in the source, but inode %s != %s", q, g.ID, got.entries[q].ID)
		}
		if q, ok := byGot[g.ID]; ok && src.entries[q].ID != s.ID {
			bad(p, "shares inode %s with %q, but they are different files in the source", g.ID, q)
		}
		bySrc[s.ID], byGot[g.ID] = p, p
	}

	// Link counts, where the reader shows them: a directory has 2 plus
	// one per subdirectory; anything else one per name in the image.
	names := map[string]uint32{}
	for _, g := range got.entries {
		names[g.ID]++
	}
	for _, p := range paths {
		g := got.entries[p]
		if g == nil || g.Nlink == 0 {
			continue
		}
		want := names[g.ID]
		if g.Mode.IsDir() {
			want = 2
			for _, n := range g.Names {
				if c := got.entries[path.Join(p, n)]; c != nil && c.Mode.IsDir() {
					want++
				}
			}
		}
		if g.Nlink != want {
			bad(p, "nlink %d, want %d", g.Nlink, want)
		}
	}

	// Contents.
	errs := src.hashAll(files)
	for p, err := range errs {
		bad(p, "source unreadable: %v", err)
	}
	var readable []string
	for _, p := range files {
		if got.entries[p] != nil && got.entries[p].Mode.IsRegular() {
			readable = append(readable, p)
		}
	}
	for p, err := range got.hashAll(readable) {
		bad(p, "read: %v", err)
	}
	for _, p := range readable {
		gh, ok := got.hashes[p]
		if ok && gh != src.hashes[p] {
			bad(p, "content differs from the source (%d bytes)", src.entries[p].Size)
		}
	}
	sort.Strings(problems)

	notes = append(notes, got.notes...)
	if specials > 0 {
		notes = append(notes, fmt.Sprintf("%s cannot show setuid/setgid/sticky: those bits of %d entries not checked by it (permission bits were)", got.name, specials))
	}
	if got.noRdev {
		n := 0
		for _, p := range paths {
			if src.entries[p].Mode&fs.ModeDevice != 0 {
				n++
			}
		}
		if n > 0 {
			notes = append(notes, fmt.Sprintf("%s does not expose device numbers: rdev of %d device nodes not checked by it (type, mode, owner, mtime were)", got.name, n))
		}
	}
	for _, u := range got.unlisted {
		notes = append(notes, fmt.Sprintf("%s cannot list directory %q (non-UTF-8 path; its ReadDir takes a path checked by io/fs.ValidPath): %d entries below it not checked by it (the directory's own entry was)", got.name, u, skipped[u]))
	}
	return problems, notes
}

func nameDiff(have, want []string) string {
	h := map[string]bool{}
	for _, n := range have {
		h[n] = true
	}
	w := map[string]bool{}
	var out []string
	for _, n := range want {
		w[n] = true
		if !h[n] {
			out = append(out, fmt.Sprintf("-%q", n))
		}
	}
	for _, n := range have {
		if !w[n] {
			out = append(out, fmt.Sprintf("+%q", n))
		}
	}
	if len(out) > 10 {
		out = append(out[:10], fmt.Sprintf("... %d more", len(out)-10))
	}
	return strings.Join(out, " ")
}
