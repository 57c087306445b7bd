package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
	"golang.org/x/sys/unix"

	"github.com/parkerpack/parker/image"
)

// ignoreFile is read from the top of the working directory.
const ignoreFile = ".parkerignore"

// maxSymlinkHops bounds target resolution, as the kernel's MAXSYMLINKS does.
const maxSymlinkHops = 40

// workdir resolves the directory to pack to an absolute path without
// symlinks, so later path comparisons (is the output inside it?) are exact.
func workdir(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	root, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return "", fmt.Errorf("working directory %s: %w", dir, errnoOf(err))
	}
	fi, err := os.Stat(root)
	if err != nil {
		return "", fmt.Errorf("working directory %s: %w", dir, errnoOf(err))
	}
	if !fi.IsDir() {
		return "", fmt.Errorf("working directory %s: not a directory", dir)
	}
	return root, nil
}

// target is TARGET resolved inside the working directory.
type target struct {
	path   string   // as given, cleaned: what the runtime executes
	file   string   // the regular file it resolves to, relative to the root
	chain  []string // every path resolution touched; all must be packed
	leaves []string // the symlinks in chain, and file
	st     unix.Stat_t
}

// resolveTarget follows TARGET inside root the way the kernel would inside
// the mounted image: component by component, through relative symlinks. An
// absolute symlink, or one climbing out of root, would resolve differently
// (or not at all) once packed, so it is refused with a hint.
func resolveTarget(root, display, p string) (*target, error) {
	t := &target{path: p}
	todo := strings.Split(p, "/")
	cur := "" // resolved directory so far, relative to root
	hops := 0
	for len(todo) > 0 {
		comp := todo[0]
		todo = todo[1:]
		switch comp {
		case "", ".":
			continue
		case "..":
			if cur == "" {
				return nil, fmt.Errorf("target %s: a symlink on the way leads outside the working directory %s", p, display)
			}
			cur = path.Dir(cur)
			if cur == "." {
				cur = ""
			}
			continue
		}
		next := path.Join(cur, comp)
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(root, next), &st); err != nil {
			if errors.Is(err, unix.ENOENT) {
				return nil, fmt.Errorf("target %s: no such file in %s", p, display)
			}
			return nil, fmt.Errorf("target %s: %s: %w", p, next, err)
		}
		t.chain = append(t.chain, next)
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFLNK:
			if hops++; hops > maxSymlinkHops {
				return nil, fmt.Errorf("target %s: too many levels of symbolic links", p)
			}
			link, err := os.Readlink(filepath.Join(root, next))
			if err != nil {
				return nil, fmt.Errorf("target %s: %w", p, errnoOf(err))
			}
			if path.IsAbs(link) {
				return nil, fmt.Errorf("target %s: %s is a symlink to %s, outside the working directory; copy the file in instead", p, next, link)
			}
			t.leaves = append(t.leaves, next)
			todo = append(strings.Split(link, "/"), todo...)
		case unix.S_IFDIR:
			if len(todo) == 0 {
				return nil, fmt.Errorf("target %s: is a directory, not a regular file", p)
			}
			cur = next
		case unix.S_IFREG:
			if len(todo) > 0 {
				return nil, fmt.Errorf("target %s: %s is not a directory", p, next)
			}
			t.file, t.st = next, st
			t.leaves = append(t.leaves, next)
		default:
			return nil, fmt.Errorf("target %s: not a regular file", p)
		}
	}
	if t.file == "" {
		return nil, fmt.Errorf("target %s: not a regular file", p)
	}
	return t, nil
}

// executable reports whether anyone may execute the target.
func (t *target) executable() bool { return t.st.Mode&0o111 != 0 }

// rules are the ignore patterns: .parkerignore first, then each --exclude,
// in the order docker applies .dockerignore lines (later lines win).
type rules struct {
	pm *patternmatcher.PatternMatcher // nil: nothing is excluded
}

func loadRules(root string, excludes []string) (*rules, error) {
	var patterns []string
	f, err := os.Open(filepath.Join(root, ignoreFile))
	switch {
	case err == nil:
		patterns, err = ignorefile.ReadAll(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", ignoreFile, errnoOf(err))
		}
	case errors.Is(err, fs.ErrNotExist):
	default:
		return nil, fmt.Errorf("%s: %w", ignoreFile, errnoOf(err))
	}
	// --exclude takes the same syntax as a line of the file; read it
	// through the same parser so both are normalised alike.
	for _, x := range excludes {
		p, err := ignorefile.ReadAll(strings.NewReader(strings.TrimLeft(x, " \t") + "\n"))
		if err != nil || len(p) != 1 {
			return nil, fmt.Errorf("--exclude %q: invalid pattern", x)
		}
		patterns = append(patterns, p[0])
	}
	if len(patterns) == 0 {
		return &rules{}, nil
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		return nil, fmt.Errorf("ignore patterns (%s, --exclude): %v", ignoreFile, err)
	}
	return &rules{pm: pm}, nil
}

// excluded reports whether rel (slash-separated, relative to the root) is
// left out. A pattern counts when it matches rel or any of its parents, so
// "!logs" re-includes everything below logs however it was excluded. The
// walker and the target check use this one function so they always agree.
func (r *rules) excluded(rel string) (bool, error) {
	if r.pm == nil {
		return false, nil
	}
	return r.pm.MatchesOrParentMatches(rel)
}

// mayReinclude reports whether an excluded directory must still be walked
// because a "!" pattern could re-include something below it, as docker's
// archiver asks. Only a "!" pattern matching a path strictly below the
// directory can change the verdict for its contents (with the parent rule
// of excluded, patterns matching the directory or above judge its contents
// as they judged it), so each pattern is compared component by component,
// and any "**" answers yes.
func (r *rules) mayReinclude(dir string) bool {
	if r.pm == nil || !r.pm.Exclusions() {
		return false
	}
	dirs := strings.Split(dir, "/")
	for _, p := range r.pm.Patterns() {
		if p.Exclusion() && couldMatchBelow(filepath.ToSlash(p.String()), dirs) {
			return true
		}
	}
	return false
}

// couldMatchBelow reports whether pattern might match a path strictly below
// the directory whose components are dirs.
func couldMatchBelow(pattern string, dirs []string) bool {
	if strings.Contains(pattern, "**") {
		return true
	}
	pc := strings.Split(pattern, "/")
	if len(pc) <= len(dirs) {
		return false
	}
	for i, d := range dirs {
		if ok, err := path.Match(pc[i], d); err != nil || !ok {
			return false
		}
	}
	return true
}

// checkTarget refuses ignore rules that leave out the target or a symlink
// leading to it; a packed file without its entry program cannot run.
// Directories on the way may be excluded as long as what lies below is
// re-included (the walker then keeps them); that follows from checking the
// non-directories, which are judged together with their parents.
func (r *rules) checkTarget(t *target) error {
	for _, p := range t.leaves {
		ex, err := r.excluded(p)
		if err != nil {
			return fmt.Errorf("ignore patterns: %v", err)
		}
		if ex {
			what := p
			if p != t.file {
				what = "the symlink " + p
			}
			return fmt.Errorf("target %s: %s is excluded by %s or --exclude, but the target is always packed", t.path, what, ignoreFile)
		}
	}
	return nil
}

// walker lists the working directory (read only) and hands every kept entry
// to add, parents before children.
type walker struct {
	root    string // absolute, no symlinks
	display string // the directory as the user named it, for messages
	rules   *rules
	// skip reports entries that are parker's own output (the temp file,
	// an existing output, leftovers of an interrupted run).
	skip func(rel string, st *unix.Stat_t) bool
	add  func(image.Entry) error
	warn func(string)
	// scanned, when set, receives running totals for the progress line.
	scanned func(entries int, bytes int64)

	pending []pendingDir // excluded directories being searched for re-includes
	entries int
	files   int   // regular files, hard links counted once (as the writer counts)
	bytes   int64 // their bytes
	links   map[[2]uint64]bool
	seen    map[string]bool // target chain paths, marked when added
}

type pendingDir struct {
	e     image.Entry
	added bool
}

func (w *walker) walk() error {
	var st unix.Stat_t
	if err := unix.Lstat(w.root, &st); err != nil {
		return fmt.Errorf("read %s: %w", w.display, err)
	}
	if err := w.emit(w.entry(".", &st, "")); err != nil {
		return err
	}
	return w.dir("", &st)
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
	fd, err := unix.Open(abs, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		if rel != "" && errors.Is(err, unix.ENOENT) {
			w.warn(fmt.Sprintf("%s vanished while packing; left out", w.show(rel)))
			return nil
		}
		return fmt.Errorf("read %s: %w", w.show(rel), err)
	}
	f := os.NewFile(uintptr(fd), abs)
	defer f.Close()
	var got unix.Stat_t
	if err := unix.Fstat(fd, &got); err != nil || got.Dev != want.Dev || got.Ino != want.Ino {
		return fmt.Errorf("read %s: changed while packing", w.show(rel))
	}
	names, err := f.Readdirnames(-1)
	if err != nil {
		return fmt.Errorf("read %s: %w", w.show(rel), errnoOf(err))
	}
	for _, name := range names {
		crel := name
		if rel != "" {
			crel = rel + "/" + name
		}
		cabs := abs + "/" + name
		var st unix.Stat_t
		if err := unix.Fstatat(fd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			if errors.Is(err, unix.ENOENT) {
				w.warn(fmt.Sprintf("%s vanished while packing; left out", w.show(crel)))
				continue
			}
			return fmt.Errorf("read %s: %w", w.show(crel), err)
		}
		if w.skip != nil && w.skip(crel, &st) {
			continue
		}
		isDir := st.Mode&unix.S_IFMT == unix.S_IFDIR
		matched, err := w.rules.excluded(crel)
		if err != nil {
			return fmt.Errorf("ignore patterns: %v", err)
		}
		if matched {
			if isDir && w.rules.mayReinclude(crel) {
				w.pending = append(w.pending, pendingDir{e: w.entry(crel, &st, "")})
				err := w.dir(crel, &st)
				w.pending = w.pending[:len(w.pending)-1]
				if errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM) {
					// Excluded and unreadable: nothing in it can be
					// re-included, as with docker's archiver.
					w.warn(fmt.Sprintf("%s: excluded and unreadable (%v); nothing below it re-included", w.show(crel), unix.EACCES))
					err = nil
				}
				if err != nil {
					return err
				}
			}
			continue
		}
		var link string
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFLNK:
			if link, err = os.Readlink(cabs); err != nil {
				return fmt.Errorf("read %s: %w", w.show(crel), errnoOf(err))
			}
		case unix.S_IFREG:
			if err := unix.Access(cabs, unix.R_OK); err != nil {
				return fmt.Errorf("cannot read %s: %w", w.show(crel), err)
			}
		case unix.S_IFDIR:
			if err := unix.Access(cabs, unix.R_OK|unix.X_OK); err != nil {
				return fmt.Errorf("cannot read %s: %w", w.show(crel), err)
			}
		}
		if err := w.emit(w.entry(crel, &st, link)); err != nil {
			return err
		}
		if isDir {
			if err := w.dir(crel, &st); err != nil {
				return err
			}
		}
	}
	return nil
}

// emit adds e after any excluded ancestors still pending, so a re-included
// file keeps its parents' real modes and times.
func (w *walker) emit(e image.Entry) error {
	for i := range w.pending {
		if !w.pending[i].added {
			if err := w.add1(w.pending[i].e); err != nil {
				return err
			}
			w.pending[i].added = true
		}
	}
	return w.add1(e)
}

func (w *walker) add1(e image.Entry) error {
	w.entries++
	if e.Mode.IsRegular() && !w.linkSeen(e) {
		w.files++
		w.bytes += e.Size
	}
	if w.scanned != nil {
		w.scanned(w.entries, w.bytes)
	}
	if w.seen != nil {
		if _, ok := w.seen[e.Path]; ok {
			w.seen[e.Path] = true
		}
	}
	return w.add(e)
}

// linkSeen reports whether e is a further name of a hard link already added.
func (w *walker) linkSeen(e image.Entry) bool {
	if e.Ino == 0 {
		return false
	}
	if w.links == nil {
		w.links = map[[2]uint64]bool{}
	}
	k := [2]uint64{e.Dev, e.Ino}
	if w.links[k] {
		return true
	}
	w.links[k] = true
	return false
}

func (w *walker) abs(rel string) string {
	if rel == "" || rel == "." {
		return w.root
	}
	return w.root + "/" + rel
}

func (w *walker) show(rel string) string {
	if rel == "" {
		return w.display
	}
	return filepath.Join(w.display, rel)
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

// errnoOf strips the *fs.PathError wrapper (whose path is an absolute one
// the user never typed), leaving the cause for a message of our own.
func errnoOf(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
