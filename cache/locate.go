package cache

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Locate finds the cache directory, making it if need be: $PARKER_CACHE_DIR
// when set (and nothing else: a directory the user named is not replaced
// by another behind their back); else the first that works of
// $XDG_CACHE_HOME/parker, ~/.cache/parker and, for a home that cannot be
// written, $TMPDIR/parker-cache-UID (/tmp when TMPDIR is unset), a
// directory of the user's own, mode 0700, which is refused when someone
// else made it. A directory on a noexec mount does not work (its programs
// could not run): the next is tried, and when none works the error names
// each and why, ErrNoexec among them.
func Locate(getenv func(string) string) (*Cache, error) {
	if d := getenv(EnvDir); d != "" {
		// Absolute: the target gets it as PARKER_ROOT, and may start in
		// another directory.
		abs, err := filepath.Abs(d)
		if err == nil {
			err = usable(abs, false)
		}
		if err != nil {
			return nil, fmt.Errorf("cache directory %s (%s): %w", d, EnvDir, err)
		}
		return &Cache{Dir: abs}, nil
	}
	var cands []string
	if x := getenv("XDG_CACHE_HOME"); filepath.IsAbs(x) { // relative ones are ignored, as the XDG spec says
		cands = append(cands, filepath.Join(x, "parker"))
	}
	if h := getenv("HOME"); filepath.IsAbs(h) {
		cands = append(cands, filepath.Join(h, ".cache", "parker"))
	}
	tmp := getenv("TMPDIR")
	if !filepath.IsAbs(tmp) {
		tmp = "/tmp"
	}
	private := filepath.Join(tmp, "parker-cache-"+strconv.Itoa(os.Geteuid()))
	var why []string
	for _, d := range cands {
		err := usable(d, false)
		if err == nil {
			return &Cache{Dir: d}, nil
		}
		why = append(why, fmt.Sprintf("%s: %v", d, err))
	}
	err := usable(private, true)
	if err == nil {
		return &Cache{Dir: private}, nil
	}
	why = append(why, fmt.Sprintf("%s: %v", private, err))
	return nil, fmt.Errorf("no usable cache directory (%s); set %s to one", strings.Join(why, "; "), EnvDir)
}

// usable makes dir if missing (0700; its parents 0700 too) and checks that
// it is a directory this user can write and run programs from, and that
// no one else can change: the user's own, not writable by others, in a
// directory that only its owner (the user, or root) can rename it in, or
// one with the sticky bit (/tmp): another user could otherwise plant an
// entry for the user to run. private also requires that dir has no access
// for others at all, and is not a symlink, where others could have made
// it first (a shared /tmp).
func usable(dir string, private bool) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return errors.Unwrap(err)
	}
	// Not followed where others could have put a symlink; the user's own
	// ~/.cache/parker may be one.
	var st unix.Stat_t
	stat := unix.Stat
	if private {
		stat = unix.Lstat
	}
	if err := stat(dir, &st); err != nil {
		return err
	}
	var parent unix.Stat_t
	if err := unix.Stat(filepath.Dir(dir), &parent); err != nil {
		return err
	}
	switch {
	case st.Mode&unix.S_IFMT != unix.S_IFDIR:
		return errors.New("not a directory")
	case int(st.Uid) != os.Geteuid():
		return fmt.Errorf("owned by uid %d, not this user (%d)", st.Uid, os.Geteuid())
	case private && st.Mode&0o077 != 0, st.Mode&0o022 != 0:
		return fmt.Errorf("open to others (mode %#o)", st.Mode&0o7777)
	case parent.Uid != st.Uid && parent.Uid != 0 && parent.Mode&unix.S_ISVTX == 0:
		return fmt.Errorf("in %s, which uid %d owns and could swap it", filepath.Dir(dir), parent.Uid)
	case parent.Mode&0o022 != 0 && parent.Mode&unix.S_ISVTX == 0:
		return fmt.Errorf("in %s, which others may write to and could swap it (mode %#o)", filepath.Dir(dir), parent.Mode&0o7777)
	}
	if err := unix.Access(dir, unix.W_OK|unix.X_OK); err != nil {
		return fmt.Errorf("not writable: %w", err)
	}
	var fs unix.Statfs_t
	if err := unix.Statfs(dir, &fs); err != nil {
		return err
	}
	if fs.Flags&unix.ST_NOEXEC != 0 {
		return ErrNoexec
	}
	return nil
}
