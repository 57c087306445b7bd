package cache

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/parkerpack/parker/internal/rmtree"
	"golang.org/x/sys/unix"
)

// Info describes an entry.
type Info struct {
	Name    string
	Digest  string // hex SHA-256 of the payload
	Target  string // the target's base name
	Size    int64  // bytes on disk (allocated blocks)
	LastUse time.Time
	InUse   bool // a run holds it
	Helper  bool // a copy of the helper (HelperName), not an entry
}

// List describes the entries and the copies of the helper, least recently
// used first.
func (c *Cache) List() ([]Info, error) {
	ents, err := os.ReadDir(c.Dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("cache: %w", err)
	}
	var out []Info
	for _, e := range ents {
		if digest, ok := parseHelperName(e.Name()); ok && e.Type().IsRegular() {
			in := Info{Name: e.Name(), Digest: hex.EncodeToString(digest[:]), Target: "(helper)", Helper: true}
			var st unix.Stat_t
			if unix.Lstat(filepath.Join(c.Dir, e.Name()), &st) == nil {
				in.Size, in.LastUse = st.Blocks*512, time.Unix(st.Mtim.Unix())
			}
			out = append(out, in)
			continue
		}
		digest, target, ok := ParseName(e.Name())
		if !ok || !e.IsDir() {
			continue
		}
		in := Info{Name: e.Name(), Digest: hex.EncodeToString(digest[:]), Target: target}
		in.Size = diskUsage(filepath.Join(c.Dir, e.Name()))
		lock := filepath.Join(c.Dir, e.Name()+lockSuffix)
		if st, err := os.Stat(lock); err == nil {
			in.LastUse = st.ModTime()
		} else if st, err := e.Info(); err == nil {
			in.LastUse = st.ModTime()
		}
		in.InUse = inUse(lock)
		out = append(out, in)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].LastUse.Before(out[j].LastUse) })
	return out, nil
}

// inUse reports whether a run holds the lock at p (shared or exclusive).
func inUse(p string) bool {
	f, err := os.Open(p)
	if err != nil {
		return false
	}
	defer f.Close()
	if unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) != nil {
		return true
	}
	return false
}

// diskUsage adds up the blocks allocated to the tree at dir.
func diskUsage(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		var st unix.Stat_t
		if unix.Lstat(p, &st) == nil {
			n += st.Blocks * 512
		}
		return nil
	})
	return n
}

// GCOptions say which entries GC removes; the zero value removes every
// entry not in use.
type GCOptions struct {
	// OlderThan, when set, keeps the entries used more recently than that.
	OlderThan time.Duration
	// MaxSize, when set, keeps the most recently used entries whose sizes
	// add up to at most that many bytes with those in use (which are kept
	// whatever their size), and removes the rest.
	MaxSize int64
	Now     time.Time // for OlderThan; zero: time.Now()
}

// GC removes entries and copies of the helper, least recently used first,
// as o says, and the temporary directories that killed fills left (and the
// temporary files of killed copies). It never removes an entry in use: it
// takes each entry's lock exclusively, without waiting, and skips those it
// cannot (a copy of the helper is never in use: see HelperPrefix). It
// returns what it removed.
func (c *Cache) GC(o GCOptions) ([]Info, error) {
	all, err := c.List()
	if err != nil {
		return nil, err
	}
	now := o.Now
	if now.IsZero() {
		now = time.Now()
	}
	// Which to keep for size: those in use, which stay anyway, then the
	// most recently used, newest first, as long as they fit beside them;
	// from the first that does not, every older one goes.
	keep := map[string]bool{}
	if o.MaxSize > 0 {
		var total int64
		for _, in := range all {
			if in.InUse {
				total += in.Size
				keep[in.Name] = true
			}
		}
		for i := len(all) - 1; i >= 0; i-- {
			if all[i].InUse {
				continue
			}
			if total+all[i].Size > o.MaxSize {
				break
			}
			total += all[i].Size
			keep[all[i].Name] = true
		}
	}
	var removed []Info
	var errs []error
	for _, in := range all {
		switch {
		case o.OlderThan > 0 && now.Sub(in.LastUse) < o.OlderThan:
			continue
		case o.MaxSize > 0 && keep[in.Name]:
			continue
		}
		remove := c.remove
		if in.Helper {
			remove = c.removeHelper
		}
		ok, err := remove(in.Name)
		if err != nil {
			errs = append(errs, err)
		}
		if ok {
			removed = append(removed, in)
		}
	}
	c.removeAllTemps()
	c.removeOrphanLocks()
	if len(errs) > 0 {
		msgs := make([]string, len(errs))
		for i, e := range errs {
			msgs[i] = e.Error()
		}
		return removed, errors.New(strings.Join(msgs, "; ")) // one line
	}
	return removed, nil
}

// remove removes entry name unless it is in use (or being filled), and
// reports whether it did.
func (c *Cache) remove(name string) (bool, error) {
	use, err := c.lock(name+lockSuffix, unix.LOCK_EX|unix.LOCK_NB)
	if errors.Is(err, unix.EWOULDBLOCK) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer use.Close()
	// Out of the way first, so that no run finds half an entry, then
	// gone.
	dir := filepath.Join(c.Dir, name)
	gone := filepath.Join(c.Dir, tmpPrefix+name+gcSuffix)
	if err := os.Rename(dir, gone); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, fmt.Errorf("cache: %w", err)
	}
	if err := rmtree.Remove(gone); err != nil {
		return false, fmt.Errorf("cache: remove %s: %w", name, err)
	}
	// The lock files last, the use lock while still held: a run that
	// opened one before finds it gone once it has it, and starts again.
	if fl, err := c.lock(name+fillSuffix, unix.LOCK_EX|unix.LOCK_NB); err == nil {
		os.Remove(fl.Name())
		fl.Close()
	}
	os.Remove(use.Name())
	return true, nil
}

// removeHelper removes the copy of the helper called name.
func (c *Cache) removeHelper(name string) (bool, error) {
	if err := os.Remove(filepath.Join(c.Dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, fmt.Errorf("cache: %w", err)
	}
	return true, nil
}

// removeAllTemps removes the temporary directories that killed fills (and
// killed GCs) left, of the entries no fill is making now: those whose fill
// lock it can take at once; and the temporary files of copies of the
// helper no one is writing: those it can lock at once.
func (c *Cache) removeAllTemps() {
	ms, _ := filepath.Glob(filepath.Join(c.Dir, tmpPrefix+"*"))
	seen := map[string]bool{}
	for _, m := range ms {
		name, ok := tempOf(filepath.Base(m))
		if _, helper := parseHelperName(name); ok && helper {
			if f, err := os.OpenFile(m, os.O_RDONLY|unix.O_NOFOLLOW, 0); err == nil {
				if unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) == nil {
					os.Remove(m)
				}
				f.Close()
			}
			continue
		}
		if _, _, valid := ParseName(name); !ok || !valid || seen[name] {
			continue
		}
		seen[name] = true
		if fl, err := c.lock(name+fillSuffix, unix.LOCK_EX|unix.LOCK_NB); err == nil {
			c.removeTemps(name)
			fl.Close()
		}
	}
}

// removeOrphanLocks removes the lock files of entries that are not there
// (a run that failed before its entry was made leaves its use lock), but
// for those a run holds: one waiting for its fill, or filling it.
func (c *Cache) removeOrphanLocks() {
	ms, _ := filepath.Glob(filepath.Join(c.Dir, "*"+lockSuffix))
	for _, m := range ms {
		name := strings.TrimSuffix(filepath.Base(m), lockSuffix)
		if _, _, ok := ParseName(name); !ok || isDir(filepath.Join(c.Dir, name)) {
			continue
		}
		use, err := c.lock(name+lockSuffix, unix.LOCK_EX|unix.LOCK_NB)
		if err != nil {
			continue
		}
		if !isDir(filepath.Join(c.Dir, name)) {
			if fl, err := c.lock(name+fillSuffix, unix.LOCK_EX|unix.LOCK_NB); err == nil {
				os.Remove(fl.Name())
				fl.Close()
			}
			os.Remove(use.Name())
		}
		use.Close()
	}
}
