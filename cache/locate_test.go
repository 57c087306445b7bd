package cache

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/parkerpack/parker/internal/testenv"
	"golang.org/x/sys/unix"
)

func env(kv map[string]string) func(string) string {
	return func(k string) string { return kv[k] }
}

// TestLocate: PARKER_CACHE_DIR, then XDG_CACHE_HOME, then ~/.cache, each
// made when missing; a home that cannot be written falls back to a private
// directory under TMPDIR.
func TestLocate(t *testing.T) {
	root := t.TempDir()
	for _, tc := range []struct {
		name string
		env  map[string]string
		want string
	}{
		{"PARKER_CACHE_DIR", map[string]string{"PARKER_CACHE_DIR": root + "/pc", "XDG_CACHE_HOME": root + "/x", "HOME": root + "/h"}, root + "/pc"},
		{"XDG_CACHE_HOME", map[string]string{"XDG_CACHE_HOME": root + "/x", "HOME": root + "/h"}, root + "/x/parker"},
		{"relative XDG_CACHE_HOME", map[string]string{"XDG_CACHE_HOME": "x", "HOME": root + "/h"}, root + "/h/.cache/parker"},
		{"HOME", map[string]string{"HOME": root + "/h"}, root + "/h/.cache/parker"},
		{"no HOME", map[string]string{"TMPDIR": root + "/t"}, root + "/t/parker-cache-" + strconv.Itoa(os.Geteuid())},
	} {
		c, err := Locate(env(tc.env))
		if err != nil || c.Dir != tc.want {
			t.Errorf("%s: %v, %v; want %s", tc.name, c, err, tc.want)
			continue
		}
		if st, err := os.Stat(c.Dir); err != nil || !st.IsDir() {
			t.Errorf("%s: %s not made: %v", tc.name, c.Dir, err)
		}
	}
}

// TestLocateRefuses: an unusable directory is skipped for the next, or,
// named by PARKER_CACHE_DIR, refused with the reason; a private directory
// someone else made, or opened to others, is refused; a noexec mount is
// refused. As root, on a tmpfs of the test's own.
func TestLocateRefuses(t *testing.T) {
	testenv.NeedRoot(t, "mounting a noexec tmpfs and chowning a directory")
	root := t.TempDir()
	noexec := filepath.Join(root, "noexec")
	os.Mkdir(noexec, 0o755)
	if err := unix.Mount("tmpfs", noexec, "tmpfs", unix.MS_NOEXEC, "size=1m"); err != nil {
		t.Fatal(err)
	}
	defer unix.Unmount(noexec, unix.MNT_DETACH)

	_, err := Locate(env(map[string]string{"PARKER_CACHE_DIR": noexec + "/c"}))
	if !errors.Is(err, ErrNoexec) || !strings.Contains(err.Error(), "PARKER_CACHE_DIR") {
		t.Errorf("PARKER_CACHE_DIR on noexec: %v", err)
	}
	// A noexec XDG directory gives way to ~/.cache.
	c, err := Locate(env(map[string]string{"XDG_CACHE_HOME": noexec, "HOME": root + "/h"}))
	if err != nil || c.Dir != root+"/h/.cache/parker" {
		t.Errorf("noexec XDG_CACHE_HOME: %v, %v", c, err)
	}
	// Someone else's private directory, and one open to others.
	tmp := filepath.Join(root, "t")
	private := filepath.Join(tmp, "parker-cache-0")
	os.MkdirAll(private, 0o700)
	os.Chown(private, 65534, 65534)
	_, err = Locate(env(map[string]string{"TMPDIR": tmp}))
	if err == nil || !strings.Contains(err.Error(), "owned by uid 65534") {
		t.Errorf("another user's private directory: %v", err)
	}
	os.Chown(private, 0, 0)
	os.Chmod(private, 0o777)
	_, err = Locate(env(map[string]string{"TMPDIR": tmp}))
	if err == nil || !strings.Contains(err.Error(), "open to others") {
		t.Errorf("a private directory open to others: %v", err)
	}
	os.Remove(private)
	os.Symlink(root, private)
	_, err = Locate(env(map[string]string{"TMPDIR": tmp}))
	if err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("a symlink for the private directory: %v", err)
	}
	// A home whose .cache another user owns (HOME=/tmp, say): they could
	// swap the cache for one of their own.
	home := filepath.Join(root, "home")
	os.MkdirAll(filepath.Join(home, ".cache"), 0o755)
	os.Chown(filepath.Join(home, ".cache"), 65534, 65534)
	c, err = Locate(env(map[string]string{"HOME": home, "TMPDIR": filepath.Join(root, "t2")}))
	if err != nil || c.Dir != filepath.Join(root, "t2", "parker-cache-0") {
		t.Errorf("a .cache another user owns: %v, %v; want the private TMPDIR directory", c, err)
	}
	// A cache directory another user made, or one open to others.
	other := filepath.Join(root, "other")
	os.Mkdir(other, 0o755)
	os.Chown(other, 65534, 65534)
	if _, err := Locate(env(map[string]string{"PARKER_CACHE_DIR": other})); err == nil || !strings.Contains(err.Error(), "owned by uid 65534") {
		t.Errorf("PARKER_CACHE_DIR another user owns: %v", err)
	}
	open := filepath.Join(root, "open")
	os.Mkdir(open, 0o777)
	os.Chmod(open, 0o777)
	if _, err := Locate(env(map[string]string{"PARKER_CACHE_DIR": open})); err == nil || !strings.Contains(err.Error(), "open to others") {
		t.Errorf("PARKER_CACHE_DIR open to others: %v", err)
	}
	// A relative PARKER_CACHE_DIR is made absolute.
	wd, _ := os.Getwd()
	os.Chdir(root)
	c, err = Locate(env(map[string]string{"PARKER_CACHE_DIR": "rel"}))
	os.Chdir(wd)
	if err != nil || c.Dir != filepath.Join(root, "rel") {
		t.Errorf("relative PARKER_CACHE_DIR: %v, %v", c, err)
	}
	// All refused: one error naming each, and the fix.
	_, err = Locate(env(map[string]string{"XDG_CACHE_HOME": noexec, "HOME": noexec, "TMPDIR": noexec}))
	if err == nil || strings.Count(err.Error(), "on a noexec mount") != 3 || !strings.Contains(err.Error(), "set PARKER_CACHE_DIR") {
		t.Errorf("nothing usable: %v", err)
	}
}
