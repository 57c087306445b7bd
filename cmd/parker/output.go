package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"unicode/utf8"

	"golang.org/x/sys/unix"

	"github.com/parkerpack/parker/image/trailer"
	"github.com/parkerpack/parker/internal/human"
	"github.com/parkerpack/parker/internal/walk"
)

// tmpInfix marks parker's temp files: .NAME.parker-tmp-RANDOM beside the
// output. Leftovers of a killed run in the working directory are not packed.
const tmpInfix = ".parker-tmp-"

// tmpRandomLen is the length of RANDOM: 8 hex digits.
const tmpRandomLen = 8

// nameMax is the longest file name Linux file systems take (NAME_MAX),
// when the directory's file system does not say.
const nameMax = 255

// output is the packed file being written: a temp file beside its final
// name, so that the last step, a rename, is atomic. Every error about it
// is made here and names the output as the user gave it, never the temp
// file: "write pythond: no space left on device".
type output struct {
	name string // as given with -o, for messages

	// Set by check.
	path      string       // absolute, its directory's symlinks resolved
	prev      *unix.Stat_t // the file it replaces, or nil
	tmpPrefix string       // of its temp files' names: .NAME.parker-tmp-

	f       *os.File // the temp file
	tmpPath string
	tmp     unix.Stat_t

	mu        sync.Mutex // against a signal's abort
	closed    bool       // the temp file is renamed or removed
	committed bool       // renamed
}

// outputError is a failure to write the output. It says all the user can
// act on whatever stage met it, so pack reports it without that stage's
// context.
type outputError struct {
	name string
	err  error // the errno, without the temp file's path
}

func (e *outputError) Error() string { return "write " + e.name + ": " + e.err.Error() }
func (e *outputError) Unwrap() error { return e.err }

func (o *output) fail(err error) error { return &outputError{o.name, human.Cause(err)} }

// check resolves the output's path and refuses one that is not a regular
// file, or is the target itself (t's file). A device node, FIFO, socket or
// symlink at the output path is refused rather than replaced or written
// through: the rename would silently swap /dev/full or the /dev/stdout
// link for a regular file, and a packed file is only useful as a file.
func (o *output) check(t *walk.Target) error {
	abs, err := filepath.Abs(o.name)
	if err != nil {
		return err
	}
	dir, base := filepath.Split(abs)
	if base == "" || base == "." || base == ".." {
		return fmt.Errorf("output %s: not a file name", o.name)
	}
	// The temp file must be in the same directory as the final name for
	// the rename to be atomic.
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return o.fail(err)
	}
	o.path = filepath.Join(real, base)
	o.tmpPrefix = tmpPrefix(real, base)
	var st unix.Stat_t
	switch err := unix.Lstat(o.path, &st); {
	case err == nil:
		if err := o.replaceable(&st); err != nil {
			return err
		}
		if st.Dev == t.Dev && st.Ino == t.Ino {
			return fmt.Errorf("output %s would replace the target %s; choose another -o", o.name, t.Path)
		}
		o.prev = &st
	case !errors.Is(err, unix.ENOENT):
		return fmt.Errorf("output %s: %w", o.name, err)
	}
	return nil
}

// replaceable refuses an existing output, whose lstat is st, that is not
// a regular file.
func (o *output) replaceable(st *unix.Stat_t) error {
	switch kind := walk.Kind(st.Mode); kind {
	case "":
		return nil
	case "a directory":
		return fmt.Errorf("output %s is a directory", o.name)
	default:
		return fmt.Errorf("output %s is %s; parker writes only regular files", o.name, kind)
	}
}

// create makes the temp file.
func (o *output) create() error {
	// Under the lock, so a signal's abort either runs before the file
	// exists or sees it and removes it.
	o.mu.Lock()
	defer o.mu.Unlock()
	f, err := createTemp(filepath.Join(filepath.Dir(o.path), o.tmpPrefix))
	if err != nil {
		return o.fail(err)
	}
	o.f, o.tmpPath = f, f.Name()
	if err := unix.Fstat(int(f.Fd()), &o.tmp); err != nil {
		return o.fail(err)
	}
	return nil
}

// tmpPrefix is how the names of the temp files for the output base in
// dir begin: ".NAME.parker-tmp-", with NAME cut short (at a character
// boundary) when the whole temp name would be longer than dir's file
// system allows, so that every output name it accepts can be written.
func tmpPrefix(dir, base string) string {
	limit := nameMax
	var sfs unix.Statfs_t
	if unix.Statfs(dir, &sfs) == nil && sfs.Namelen > 0 {
		limit = int(sfs.Namelen)
	}
	if keep := limit - len("."+tmpInfix) - tmpRandomLen; len(base) > keep {
		for keep > 0 && !utf8.RuneStart(base[keep]) {
			keep--
		}
		base = base[:max(keep, 0)]
	}
	return "." + base + tmpInfix
}

// createTemp creates a new file named prefix plus tmpRandomLen random hex
// digits, as os.CreateTemp does but with a random part of known length,
// which tmpPrefix counts on.
func createTemp(prefix string) (*os.File, error) {
	for range 100 {
		name := fmt.Sprintf("%s%0*x", prefix, tmpRandomLen, rand.Uint32())
		f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
		if !errors.Is(err, fs.ErrExist) {
			return f, err
		}
	}
	return nil, errors.New("cannot find a free temp file name")
}

// WriteAt writes to the temp file; the image writer writes through it.
func (o *output) WriteAt(b []byte, off int64) (int, error) {
	n, err := o.f.WriteAt(b, off)
	if err != nil {
		err = o.fail(err)
	}
	return n, err
}

// ReadAt reads the temp file back.
func (o *output) ReadAt(b []byte, off int64) (int, error) {
	n, err := o.f.ReadAt(b, off)
	if err != nil && err != io.EOF {
		err = o.fail(err)
	}
	return n, err
}

// copyAt writes the first size bytes of src, the part called what, at off.
func (o *output) copyAt(off int64, src io.ReaderAt, size int64, what string) error {
	if _, err := io.Copy(io.NewOffsetWriter(o, off), io.NewSectionReader(src, 0, size)); err != nil {
		return fmt.Errorf("copy %s: %w", what, err)
	}
	return nil
}

// finish gives the temp file its exact length and the packed file's mode.
func (o *output) finish(size int64) error {
	if err := o.f.Truncate(size); err != nil {
		return o.fail(err)
	}
	if err := o.f.Chmod(0o755); err != nil {
		return o.fail(err)
	}
	return nil
}

// commit renames the temp file over the output, unless a signal got there
// first. No fsync, as with a compiler's output: the rename already makes
// the file appear whole or not at all to every other process, and syncing
// cost 15% of a 1 GiB pack. Write errors of file systems that report them
// late (NFS) surface at Close.
func (o *output) commit() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return errors.New("interrupted")
	}
	if err := o.f.Close(); err != nil {
		return o.fail(err)
	}
	// Again, as late as can be: something may have been put at the path
	// while parker packed.
	var st unix.Stat_t
	if unix.Lstat(o.path, &st) == nil {
		if err := o.replaceable(&st); err != nil {
			return err
		}
	}
	if err := os.Rename(o.tmpPath, o.path); err != nil {
		return o.fail(err)
	}
	o.closed, o.committed = true, true
	return nil
}

// abort removes the temp file unless it has already become the output,
// and reports whether it had.
func (o *output) abort() (committed bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.f != nil && !o.closed {
		o.f.Close()
		os.Remove(o.tmpPath)
		o.closed = true
	}
	return o.committed
}

// skipper recognises parker's own files in the walk of root (shown as
// display) and leaves them out of the image: this run's temp file; the
// output being replaced, which is expected, so only -v mentions it; the
// temp files of interrupted runs, with a warning; and earlier packed files
// (any file with a parker trailer), each reported to u.leftOut, unless it
// is the target t: a packed file the user asked to pack is packed.
func (o *output) skipper(root, display string, t *walk.Target, u *ui) func(rel string, st *unix.Stat_t) bool {
	outRel := ""
	if r, err := filepath.Rel(root, filepath.Dir(o.path)); err == nil && r != ".." && !strings.HasPrefix(r, "../") {
		outRel = filepath.ToSlash(r)
	}
	return func(rel string, st *unix.Stat_t) bool {
		is := func(id *unix.Stat_t) bool { return id != nil && st.Dev == id.Dev && st.Ino == id.Ino }
		switch {
		case is(&o.tmp):
			return true
		case is(o.prev):
			u.note(fmt.Sprintf("%s is the output; left out", filepath.Join(display, rel)))
			return true
		}
		if outRel != "" {
			dir, base := splitRel(rel)
			if dir == outRel && strings.HasPrefix(base, o.tmpPrefix) {
				u.warn(fmt.Sprintf("%s is a leftover temp file; left out", filepath.Join(display, rel)))
				return true
			}
			if dir == outRel && strings.HasPrefix(base, closureTmpPrefix) {
				u.warn(fmt.Sprintf("%s is what a killed --closure pack left; left out", filepath.Join(display, rel)))
				return true
			}
		}
		if st.Dev == t.Dev && st.Ino == t.Ino || !isPacked(filepath.Join(root, rel), st) {
			return false
		}
		u.leftOut(fmt.Sprintf("%s is a packed file; left out", filepath.Join(display, rel)))
		return true
	}
}

// minPacked is the size of the smallest packed file: a stub, which ends
// at the payload's offset, at least PadSize; the payload, padded to
// PadSize; the trailer's footer.
const minPacked = 2*trailer.PadSize + trailer.FooterSize

// isPacked reports whether the regular file at path, whose lstat is st,
// carries a parker trailer, damaged or not. Most files are turned away by
// their size or by one 16-byte read of where the footer's magic would be.
// A file that cannot be read is not, here: the walk reports it.
func isPacked(path string, st *unix.Stat_t) bool {
	if st.Mode&unix.S_IFMT != unix.S_IFREG || st.Size < minPacked {
		return false
	}
	// O_NONBLOCK: should the file have become a FIFO since the lstat,
	// the open must not wait for a writer.
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return false
	}
	f := os.NewFile(uintptr(fd), path)
	defer f.Close()
	_, err = trailer.Read(f, st.Size)
	return err == nil || errors.Is(err, trailer.ErrTrailer)
}

func splitRel(rel string) (dir, base string) {
	if i := strings.LastIndexByte(rel, '/'); i >= 0 {
		return rel[:i], rel[i+1:]
	}
	return ".", rel
}
