// Package cache keeps the extracted payloads of packed files, for the runs
// that cannot mount them: one directory per payload, an entry, named by the
// payload's SHA-256 as the trailer records it, so that finding one costs
// nothing but a stat (the key is read, not computed: no hashing of the file
// on each launch, and no trusting a name or an mtime), as a store path
// names its contents in Nix.
//
// # Layout
//
//	DIR/<sha256>-<target>/              the entry: the payload's tree, read-only
//	DIR/<sha256>-<target>.lock          its use lock; its mtime is the last use
//	DIR/<sha256>-<target>.fill          its fill lock
//	DIR/.tmp-<sha256>-<target>-<8 hex>  an entry being filled (or left by a killed fill)
//
// DIR is found by Locate.
//
// # Life of an entry
//
// An entry is immutable once published: Open fills a temporary directory
// beside it and renames it into place only when the fill has succeeded in
// full (the caller checks the digest while it extracts), so a reader never
// sees half an entry, and a fill killed half-way (SIGKILL, a full disk)
// leaves only a temporary directory, which the next fill of that entry or
// GC removes. Everything in an entry is read-only (no write bit), so the
// runs that share it cannot change it by accident: the fill makes it so as
// it extracts each file and directory (image.ExtractOptions.ReadOnly), which
// spares a second pass over a tree of thousands of files.
//
// A run holds the entry's use lock shared for as long as it uses the entry
// (the descriptor is inherited across the exec of the target), from before
// it looks for the entry; GC removes only entries whose use lock it can
// take exclusively at once, so never one in use or being filled. Each Open
// sets the use lock's mtime: the last use, which costs one system call.
// Concurrent first runs fill an entry once: the fill lock, taken
// exclusively, lets one fill while the others wait for it (and only for
// it, not for the runs that use the entry), then find the entry. A lock
// file that GC removed after a run opened it is not the entry's any more:
// every lock taken is checked to be the file at its path, and taken again
// if not.
package cache

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/parkerpack/parker/internal/rmtree"
	"golang.org/x/sys/unix"
)

// Environment.
const (
	EnvDir = "PARKER_CACHE_DIR" // the cache directory, before any default
)

const (
	lockSuffix = ".lock"
	fillSuffix = ".fill"
	tmpPrefix  = ".tmp-"
	gcSuffix   = "-gc" // of a temporary directory GC is removing
)

// ErrNoexec: the cache directory is on a file system mounted noexec, where
// an entry's programs could not run.
var ErrNoexec = errors.New("on a noexec mount")

// Cache is a cache directory.
type Cache struct {
	Dir string
}

// Name is the name of the entry for a payload with SHA-256 digest whose
// target is target: "<hex digest>-<base name of target>".
func Name(digest [32]byte, target string) string {
	base := path.Base(target)
	if base == "." || base == "/" || base == ".." {
		base = "root"
	}
	return hex.EncodeToString(digest[:]) + "-" + base
}

// ParseName splits an entry's name into its digest and target base name.
func ParseName(name string) (digest [32]byte, target string, ok bool) {
	h, target, found := strings.Cut(name, "-")
	if !found || len(h) != 64 || target == "" {
		return digest, "", false
	}
	if _, err := hex.Decode(digest[:], []byte(h)); err != nil {
		return digest, "", false
	}
	return digest, target, true
}

// Entry is an entry in use: its directory, and its lock held shared.
type Entry struct {
	Path string
	lock *os.File
}

// Lock is the entry's lock, held shared while the entry is in use. Keep it
// open in the process that uses the entry (clear close-on-exec to hand it
// to an exec'd program): the entry cannot be removed meanwhile.
func (e *Entry) Lock() *os.File { return e.lock }

// Close releases the entry.
func (e *Entry) Close() error { return e.lock.Close() }

// Open returns the entry for a payload (digest, target), in use (its lock
// held shared) until closed. When it is not there yet, it makes it: fill
// extracts the payload into the empty directory tmp it is given, leaving
// no write bit on anything in it, and checks the digest as it does; on
// success the tree is published as the entry; on failure it is removed and
// fill's error returned. filled reports whether this call made the entry.
func (c *Cache) Open(digest [32]byte, target string, fill func(tmp string) error) (e *Entry, filled bool, err error) {
	return c.OpenName(Name(digest, target), fill)
}

// ClosureSuffix ends the name of the entry that holds a payload's
// library closure alone (parker --closure): the payload's store, on disk,
// where the page cache keeps it from one run to the next.
const ClosureSuffix = ".closure"

// ClosureName is the name of the closure entry of a payload (digest,
// target): its entry's name and ClosureSuffix.
func ClosureName(digest [32]byte, target string) string { return Name(digest, target) + ClosureSuffix }

// OpenName is Open for the entry called name (Name, ClosureName).
func (c *Cache) OpenName(name string, fill func(tmp string) error) (e *Entry, filled bool, err error) {
	dir := filepath.Join(c.Dir, name)
	use, err := c.lock(name+lockSuffix, unix.LOCK_SH)
	if err != nil {
		return nil, false, err
	}
	if !isDir(dir) {
		// Not there: fill it, unless another run does first.
		fl, err := c.lock(name+fillSuffix, unix.LOCK_EX)
		if err != nil {
			use.Close()
			return nil, false, err
		}
		if !isDir(dir) {
			err = c.fill(name, dir, fill)
			filled = err == nil
		}
		// Not needed between fills; a run waiting for it finds it gone
		// once it has it, and takes a new one.
		os.Remove(fl.Name())
		fl.Close()
		if err != nil {
			use.Close()
			return nil, false, err
		}
	}
	touch(use)
	return &Entry{dir, use}, filled, nil
}

// fill makes entry dir (name), holding its fill lock.
func (c *Cache) fill(name, dir string, fill func(string) error) error {
	c.removeTemps(name) // what killed fills of this entry left
	suffix := make([]byte, 4)
	rand.Read(suffix)
	tmp := filepath.Join(c.Dir, tmpPrefix+name+"-"+hex.EncodeToString(suffix)) // see tempOf
	if err := os.Mkdir(tmp, 0o700); err != nil {
		return fmt.Errorf("cache: %w", err)
	}
	err := fill(tmp)
	if err == nil {
		err = os.Rename(tmp, dir)
	}
	if err != nil {
		if rerr := rmtree.Remove(tmp); rerr != nil {
			err = fmt.Errorf("%w (and removing %s: %v)", err, tmp, rerr)
		}
		return err
	}
	return nil
}

// lock opens and locks (how: unix.LOCK_SH or LOCK_EX, with LOCK_NB or
// not) the lock file named file, made if missing: one that GC removed
// between the open and the lock is not the entry's any more, and is taken
// again. With LOCK_NB, an error wrapping EWOULDBLOCK says someone holds it.
func (c *Cache) lock(file string, how int) (*os.File, error) {
	p := filepath.Join(c.Dir, file)
	for {
		f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0o600)
		if err != nil {
			return nil, fmt.Errorf("cache: %w", err)
		}
		if err := flock(f, how); err != nil {
			f.Close()
			return nil, err
		}
		if same(f, p) {
			return f, nil
		}
		f.Close()
	}
}

func flock(f *os.File, how int) error {
	for {
		err := unix.Flock(int(f.Fd()), how)
		if err == nil {
			return nil
		}
		if !errors.Is(err, unix.EINTR) {
			return fmt.Errorf("cache: lock %s: %w", f.Name(), err)
		}
	}
}

// same reports whether f is still the file at p.
func same(f *os.File, p string) bool {
	a, err1 := f.Stat()
	b, err2 := os.Lstat(p)
	return err1 == nil && err2 == nil && os.SameFile(a, b)
}

// touch records a use of the entry whose lock is f: its mtime, now.
func touch(f *os.File) {
	unix.Futimes(int(f.Fd()), nil)
}

func isDir(p string) bool {
	st, err := os.Lstat(p)
	return err == nil && st.IsDir()
}

// removeTemps removes the temporary directories of entry name; the caller
// holds its fill lock.
func (c *Cache) removeTemps(name string) {
	ms, _ := filepath.Glob(filepath.Join(c.Dir, tmpPrefix+name+"-*"))
	for _, m := range ms {
		if n, ok := tempOf(filepath.Base(m)); ok && n == name {
			rmtree.Remove(m)
		}
	}
}

// tempOf returns the entry whose temporary directory base is:
// .tmp-NAME-XXXXXXXX (8 hex digits, a fill's) or .tmp-NAME-gc (GC's).
func tempOf(base string) (string, bool) {
	rest, ok := strings.CutPrefix(base, tmpPrefix)
	if !ok {
		return "", false
	}
	if name, ok := strings.CutSuffix(rest, gcSuffix); ok {
		return name, true
	}
	i := strings.LastIndexByte(rest, '-')
	if i < 0 || len(rest)-i-1 != 8 {
		return "", false
	}
	if _, err := hex.DecodeString(rest[i+1:]); err != nil {
		return "", false
	}
	return rest[:i], true
}
