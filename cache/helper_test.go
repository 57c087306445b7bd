package cache

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func openDir(t *testing.T, dir string) *os.File {
	t.Helper()
	d, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// TestPutHelper: a copy is written whole, read-only, under its digest's
// name, in place of a bad one; one that does not match its digest is not
// kept, and neither is anything of a failed write.
func TestPutHelper(t *testing.T) {
	c := &Cache{Dir: t.TempDir()}
	d := openDir(t, c.Dir)
	helper := bytes.Repeat([]byte("helper "), 1000)
	sum := sha256.Sum256(helper)
	p := filepath.Join(c.Dir, HelperName(sum))
	// A bad copy there: the wrong size, writable by others.
	if err := os.WriteFile(p, []byte("bad"), 0o666); err != nil {
		t.Fatal(err)
	}
	if _, ok := c.Helper(sum, int64(len(helper))); ok {
		t.Fatal("Helper takes a copy of the wrong size, open to others")
	}
	if err := PutHelper(d, sum, bytes.NewReader(helper)); err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	got, err := os.ReadFile(p)
	if err != nil || unix.Lstat(p, &st) != nil || !bytes.Equal(got, helper) || st.Mode != unix.S_IFREG|0o500 {
		t.Fatalf("the copy: %d bytes, mode %#o, %v", len(got), st.Mode, err)
	}
	if q, ok := c.Helper(sum, int64(len(helper))); !ok || q != p {
		t.Errorf("Helper: %q, %v; want %q, true", q, ok, p)
	}
	if got := entries(t, c.Dir); len(got) != 1 {
		t.Errorf("the cache holds %v; want the copy alone", got)
	}
	// Each rule of Helper's alone: open to others, not executable,
	// another's.
	for _, tc := range []struct {
		name         string
		spoil, mend  func() error
		needRootOnly bool
	}{
		{"writable by others", func() error { return os.Chmod(p, 0o502) }, func() error { return os.Chmod(p, 0o500) }, false},
		{"not executable", func() error { return os.Chmod(p, 0o400) }, func() error { return os.Chmod(p, 0o500) }, false},
		{"another's", func() error { return os.Lchown(p, os.Geteuid()+1, -1) }, func() error { return os.Lchown(p, os.Geteuid(), -1) }, true},
	} {
		if tc.needRootOnly && os.Geteuid() != 0 {
			continue
		}
		if err := tc.spoil(); err != nil {
			t.Fatal(err)
		}
		if _, ok := c.Helper(sum, int64(len(helper))); ok {
			t.Errorf("Helper takes a copy %s", tc.name)
		}
		if err := tc.mend(); err != nil {
			t.Fatal(err)
		}
	}
	// A good copy is left as it is; one of the right size but other
	// bytes is written over.
	before, _ := os.Stat(p)
	if err := PutHelper(d, sum, bytes.NewReader(helper)); err != nil {
		t.Fatal(err)
	}
	if after, _ := os.Stat(p); !os.SameFile(before, after) {
		t.Errorf("a good copy was written again")
	}
	if err := os.Chmod(p, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, bytes.Repeat([]byte("x"), len(helper)), 0o500); err != nil {
		t.Fatal(err)
	}
	if err := PutHelper(d, sum, bytes.NewReader(helper)); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(p); !bytes.Equal(got, helper) {
		t.Errorf("a copy with other bytes was kept")
	}

	// Another helper's bytes under this digest: not kept.
	other := sha256.Sum256([]byte("other"))
	err = PutHelper(d, other, bytes.NewReader(helper))
	if err == nil || !strings.Contains(err.Error(), "does not match its digest") {
		t.Errorf("a mismatched copy: %v", err)
	}
	// A reader that fails half-way (a full disk is the same path).
	err = PutHelper(d, other, io.MultiReader(bytes.NewReader(helper[:100]), errReader{}))
	if !errors.Is(err, syscall.EIO) {
		t.Errorf("a failed read: %v", err)
	}
	if got := entries(t, c.Dir); len(got) != 1 || got[0] != HelperName(sum) {
		t.Errorf("after the failures the cache holds %v; want the one copy", got)
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, syscall.EIO }

// TestGCHelper: List shows the helper's copies, last used when their
// mtime says; GC removes them by the same rules as entries, and the
// temporary file of a killed write, but not one being written.
func TestGCHelper(t *testing.T) {
	c := &Cache{Dir: t.TempDir()}
	d := openDir(t, c.Dir)
	now := time.Now()
	var sums [2][32]byte
	for i := range sums {
		h := bytes.Repeat([]byte{byte(i)}, 10000)
		sums[i] = sha256.Sum256(h)
		if err := PutHelper(d, sums[i], bytes.NewReader(h)); err != nil {
			t.Fatal(err)
		}
		at := now.Add(-time.Duration(2-i) * time.Hour) // 2 and 1 hours ago
		os.Chtimes(filepath.Join(c.Dir, HelperName(sums[i])), at, at)
	}
	e, _, err := c.Open(digest, "t", fillTree)
	if err != nil {
		t.Fatal(err)
	}
	e.Close()
	killed := filepath.Join(c.Dir, tmpPrefix+HelperName(sums[0])+"-0badf00d")
	writing := filepath.Join(c.Dir, tmpPrefix+HelperName(sums[1])+"-00c0ffee")
	for _, p := range []string{killed, writing} {
		if err := os.WriteFile(p, []byte("half"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	w, err := os.Open(writing)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := unix.Flock(int(w.Fd()), unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}

	list, err := c.List()
	if err != nil || len(list) != 3 || !list[0].Helper || list[0].Digest != HelperName(sums[0])[len(HelperPrefix):] ||
		!list[1].Helper || list[2].Helper || list[0].Target != "(helper)" || list[0].Size <= 0 {
		t.Fatalf("List: %+v, %v", list, err)
	}
	removed, err := c.GC(GCOptions{OlderThan: 90 * time.Minute, Now: now})
	if err != nil || len(removed) != 1 || removed[0].Name != HelperName(sums[0]) {
		t.Errorf("GC older than 90 min removed %+v, %v; want the 2-hour-old copy alone", removed, err)
	}
	got := strings.Join(entries(t, c.Dir), " ")
	if want := strings.Join([]string{filepath.Base(writing), Name(digest, "t"), Name(digest, "t") + lockSuffix,
		HelperName(sums[1])}, " "); got != want {
		t.Errorf("after GC the cache holds %s; want %s", got, want)
	}
}

// TestGCOrphanLocks: GC removes the lock files of entries that are not
// there, but not one a run holds (waiting for a fill, say).
func TestGCOrphanLocks(t *testing.T) {
	c := &Cache{Dir: t.TempDir()}
	other := sha256.Sum256([]byte("other"))
	for _, n := range []string{Name(digest, "t") + lockSuffix, Name(other, "t") + lockSuffix, "not-an-entry" + lockSuffix} {
		if err := os.WriteFile(filepath.Join(c.Dir, n), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	held, err := c.lock(Name(other, "t")+lockSuffix, unix.LOCK_SH)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	if _, err := c.GC(GCOptions{}); err != nil {
		t.Fatal(err)
	}
	got := strings.Join(entries(t, c.Dir), " ")
	if want := Name(other, "t") + lockSuffix + " not-an-entry" + lockSuffix; got != want {
		t.Errorf("after GC the cache holds %s; want %s", got, want)
	}
}
