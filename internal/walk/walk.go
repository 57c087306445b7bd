package walk

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/parkerpack/parker/image"
	"github.com/parkerpack/parker/internal/human"
)

// Config says what Tree walks and where the entries go.
type Config struct {
	Root    string // absolute and without symlinks, as Root returns it
	Display string // the directory as the user named it, for messages
	Rules   *Rules
	// Target, when set, must be packed whole: Tree fails if anything left
	// out a path its resolution touched.
	Target *Target
	// Skip, when set, leaves out entries the rules keep that the caller
	// recognises by their lstat (its own output, earlier packed files).
	Skip func(rel string, st *unix.Stat_t) bool
	// Add receives every kept entry, parents before children.
	Add func(image.Entry) error
	// Warn, when set, receives what was left out that the user did not
	// ask to leave out.
	Warn func(string)
	// Scanned, when set, receives running totals for a progress line.
	Scanned func(entries int, bytes int64)
}

// Count is what a walk added.
type Count struct {
	Entries int
	Files   int   // regular files, hard links counted once (as the image writer counts them)
	Bytes   int64 // their bytes
}

// Tree walks c.Root and hands every kept entry to c.Add.
func Tree(c Config) (Count, error) {
	w := &walker{Config: c, links: map[[2]uint64]bool{}}
	if c.Target != nil {
		w.seen = map[string]bool{}
		for _, p := range c.Target.chain {
			w.seen[p] = false
		}
	}
	var st unix.Stat_t
	if err := unix.Lstat(w.Root, &st); err != nil {
		return Count{}, fmt.Errorf("read %s: %w", w.Display, err)
	}
	if err := w.emit(w.entry(".", &st, "")); err != nil {
		return Count{}, err
	}
	if err := w.dir("", &st); err != nil {
		return Count{}, err
	}
	if c.Target != nil {
		for _, p := range c.Target.chain {
			if !w.seen[p] {
				return Count{}, fmt.Errorf("target %s: %s was left out of the image by the ignore rules", c.Target.Path, p)
			}
		}
	}
	return w.count, nil
}

// walker is the state of one Tree.
type walker struct {
	Config
	pending []pendingDir // excluded directories being searched for re-includes
	count   Count
	links   map[[2]uint64]bool // identities of the regular files added
	seen    map[string]bool    // the target's chain, marked when added
}

type pendingDir struct {
	e     image.Entry
	added bool
}

// openDir opens a directory without following a symlink; tests replace it
// to fail as the kernel rarely does.
var openDir = func(path string) (int, error) {
	return unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
}

// dir walks the directory rel ("" for the root), whose lstat was want.
//
// The directory is opened without following symlinks and must still be the
// object the parent listed (same device and inode), and its entries are
// stat'ed relative to that descriptor: if someone swaps a directory for a
// symlink while parker runs as root, the walk fails instead of packing
// what the link points at. (File contents get the same check when the
// writer opens them, through Entry.Dev/Ino.)
func (w *walker) dir(rel string, want *unix.Stat_t) error {
	abs := w.abs(rel)
	fd, err := openDir(abs)
	if err != nil {
		if rel != "" && errors.Is(err, unix.ENOENT) {
			w.warn(fmt.Sprintf("%s vanished while packing; left out", w.show(rel)))
			return nil
		}
		return w.denied("read", rel, err)
	}
	f := os.NewFile(uintptr(fd), abs)
	defer f.Close()
	var got unix.Stat_t
	if err := unix.Fstat(fd, &got); err != nil || got.Dev != want.Dev || got.Ino != want.Ino {
		return fmt.Errorf("read %s: changed while packing", w.show(rel))
	}
	names, err := f.Readdirnames(-1)
	if err != nil {
		return fmt.Errorf("read %s: %w", w.show(rel), human.Cause(err))
	}
	for _, name := range names {
		crel := name
		if rel != "" {
			crel = rel + "/" + name
		}
		var st unix.Stat_t
		if err := unix.Fstatat(fd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			if errors.Is(err, unix.ENOENT) {
				w.warn(fmt.Sprintf("%s vanished while packing; left out", w.show(crel)))
				continue
			}
			return fmt.Errorf("read %s: %w", w.show(crel), err)
		}
		if err := w.child(crel, abs+"/"+name, &st); err != nil {
			return err
		}
	}
	return nil
}

// child adds the entry rel, whose lstat is st, and walks it if it is a
// directory; or, if the rules exclude it, searches it for re-includes.
func (w *walker) child(rel, abs string, st *unix.Stat_t) error {
	isDir := st.Mode&unix.S_IFMT == unix.S_IFDIR
	matched, err := w.Rules.excluded(rel)
	if err != nil {
		return fmt.Errorf("ignore patterns: %v", err)
	}
	if matched {
		if isDir && w.Rules.mayReinclude(rel) {
			return w.excludedDir(rel, st)
		}
		return nil
	}
	if w.Skip != nil && w.Skip(rel, st) {
		return nil
	}
	var link string
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFLNK:
		if link, err = os.Readlink(abs); err != nil {
			return fmt.Errorf("read %s: %w", w.show(rel), human.Cause(err))
		}
	case unix.S_IFREG:
		if err := unix.Access(abs, unix.R_OK); err != nil {
			return w.denied("cannot read", rel, err)
		}
	case unix.S_IFDIR:
		if err := unix.Access(abs, unix.R_OK|unix.X_OK); err != nil {
			return w.denied("cannot read", rel, err)
		}
	}
	w.checkOdd(rel, st, link)
	if err := w.emit(w.entry(rel, st, link)); err != nil {
		return err
	}
	if isDir {
		return w.dir(rel, st)
	}
	return nil
}

// checkOdd warns about an entry that is packed as it is but will not
// behave as the user may think: a symlink that leads out of the packed
// tree or nowhere, or a special file, whose node is packed but nothing
// read from it.
func (w *walker) checkOdd(rel string, st *unix.Stat_t, link string) {
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG, unix.S_IFDIR:
		return
	case unix.S_IFLNK:
	default:
		w.warn(fmt.Sprintf("%s is %s; packed as such (the node, nothing read from it)", w.show(rel), Kind(st.Mode)))
		return
	}
	if path.IsAbs(link) {
		w.warn(fmt.Sprintf("%s is a symlink to %s, an absolute path; packed as is, it will point into the machine the packed file runs on", w.show(rel), link))
		return
	}
	if to := path.Join(path.Dir(rel), link); to == ".." || strings.HasPrefix(to, "../") {
		w.warn(fmt.Sprintf("%s is a symlink to %s, outside the working directory; packed as is, it will point outside the packed tree", w.show(rel), link))
		return
	}
	var target unix.Stat_t
	if err := unix.Stat(w.abs(rel), &target); errors.Is(err, unix.ENOENT) {
		w.warn(fmt.Sprintf("%s is a symlink to %s, which does not exist; packed as is", w.show(rel), link))
	}
}

// Kind names what a raw st_mode is, for messages: "a FIFO"; "" for a
// regular file.
func Kind(mode uint32) string {
	switch mode & unix.S_IFMT {
	case unix.S_IFREG:
		return ""
	case unix.S_IFDIR:
		return "a directory"
	case unix.S_IFLNK:
		return "a symbolic link"
	case unix.S_IFCHR:
		return "a character device"
	case unix.S_IFBLK:
		return "a block device"
	case unix.S_IFIFO:
		return "a FIFO"
	case unix.S_IFSOCK:
		return "a socket"
	}
	return fmt.Sprintf("of unknown type %#o", mode&unix.S_IFMT)
}

// excludedDir walks an excluded directory for what "!" patterns re-include;
// it is added only if something below it is.
func (w *walker) excludedDir(rel string, st *unix.Stat_t) error {
	w.pending = append(w.pending, pendingDir{e: w.entry(rel, st, "")})
	err := w.dir(rel, st)
	w.pending = w.pending[:len(w.pending)-1]
	var errno unix.Errno
	if errors.As(err, &errno) && (errno == unix.EACCES || errno == unix.EPERM) {
		// Excluded and unreadable: nothing in it can be re-included,
		// as with docker's archiver.
		w.warn(fmt.Sprintf("%s: excluded and unreadable (%v); nothing below it re-included", w.show(rel), errno))
		return nil
	}
	return err
}

// emit adds e after any excluded ancestors still pending, so a re-included
// file keeps its parents' real modes and times.
func (w *walker) emit(e image.Entry) error {
	for i := range w.pending {
		if !w.pending[i].added {
			if err := w.add(w.pending[i].e); err != nil {
				return err
			}
			w.pending[i].added = true
		}
	}
	return w.add(e)
}

func (w *walker) add(e image.Entry) error {
	w.count.Entries++
	if e.Mode.IsRegular() && !w.linkSeen(e) {
		w.count.Files++
		w.count.Bytes += e.Size
	}
	if w.Scanned != nil {
		w.Scanned(w.count.Entries, w.count.Bytes)
	}
	if _, ok := w.seen[e.Path]; ok {
		w.seen[e.Path] = true
	}
	return w.Add(e)
}

// linkSeen reports whether e is a further name of a hard link already added.
func (w *walker) linkSeen(e image.Entry) bool {
	if e.Ino == 0 {
		return false
	}
	k := [2]uint64{e.Dev, e.Ino}
	if w.links[k] {
		return true
	}
	w.links[k] = true
	return false
}

// denied is the error for rel that cannot be read ("VERB PATH: errno");
// when permission is what is missing, it adds the way around it (an
// --exclude of rel, which then is neither read nor packed).
func (w *walker) denied(verb, rel string, err error) error {
	var errno unix.Errno
	if rel != "" && errors.As(err, &errno) && (errno == unix.EACCES || errno == unix.EPERM) {
		return fmt.Errorf("%s %s: %w; leave it out with --exclude %s", verb, w.show(rel), err, shellQuote(escapePattern(rel)))
	}
	return fmt.Errorf("%s %s: %w", verb, w.show(rel), err)
}

func (w *walker) warn(msg string) {
	if w.Warn != nil {
		w.Warn(msg)
	}
}

func (w *walker) abs(rel string) string {
	if rel == "" || rel == "." {
		return w.Root
	}
	return w.Root + "/" + rel
}

func (w *walker) show(rel string) string {
	if rel == "" {
		return w.Display
	}
	return filepath.Join(w.Display, rel)
}

func (w *walker) entry(rel string, st *unix.Stat_t, link string) image.Entry {
	if rel == "" {
		rel = "."
	}
	e := image.Entry{
		Path:    rel,
		Mode:    fileMode(st.Mode),
		UID:     st.Uid,
		GID:     st.Gid,
		ModTime: st.Mtim.Sec,
		Rdev:    st.Rdev,
		Link:    link,
	}
	if e.Mode.IsRegular() {
		e.Size = st.Size
		e.Source = w.abs(rel)
	}
	if !e.Mode.IsDir() {
		// Identity of the source object: hard links share it, and the
		// writer checks a file is still this object when it reads it.
		e.Dev, e.Ino = st.Dev, st.Ino
	}
	return e
}

// fileMode converts a raw st_mode into an fs.FileMode, the form
// image.Entry takes (as os.Lstat would return it).
func fileMode(m uint32) fs.FileMode {
	mode := fs.FileMode(m & 0o777)
	switch m & unix.S_IFMT {
	case unix.S_IFDIR:
		mode |= fs.ModeDir
	case unix.S_IFLNK:
		mode |= fs.ModeSymlink
	case unix.S_IFIFO:
		mode |= fs.ModeNamedPipe
	case unix.S_IFSOCK:
		mode |= fs.ModeSocket
	case unix.S_IFBLK:
		mode |= fs.ModeDevice
	case unix.S_IFCHR:
		mode |= fs.ModeDevice | fs.ModeCharDevice
	}
	if m&unix.S_ISUID != 0 {
		mode |= fs.ModeSetuid
	}
	if m&unix.S_ISGID != 0 {
		mode |= fs.ModeSetgid
	}
	if m&unix.S_ISVTX != 0 {
		mode |= fs.ModeSticky
	}
	return mode
}
