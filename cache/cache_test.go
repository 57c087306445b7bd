package cache

import (
	"crypto/sha256"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/parkerpack/parker/internal/testenv"
)

var digest = sha256.Sum256([]byte("payload"))

// fillTree writes a small tree as a fill must, read-only: a file, a
// directory holding one, and a symlink out of the tree.
func fillTree(tmp string) error {
	if err := os.WriteFile(filepath.Join(tmp, "tool"), []byte("#!/bin/sh\n"), 0o555); err != nil {
		return err
	}
	if err := os.Mkdir(filepath.Join(tmp, "ro"), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(tmp, "ro", "f"), []byte("x"), 0o444); err != nil {
		return err
	}
	if err := os.Symlink("/etc", filepath.Join(tmp, "etc")); err != nil {
		return err
	}
	if err := os.Chmod(filepath.Join(tmp, "ro"), 0o555); err != nil {
		return err
	}
	return os.Chmod(tmp, 0o555)
}

// entries lists the cache directory.
func entries(t *testing.T, dir string) []string { return testenv.ListDir(t, dir) }

func TestName(t *testing.T) {
	n := Name(digest, "bin/python3")
	if !strings.HasSuffix(n, "-python3") || len(n) != 64+len("-python3") {
		t.Errorf("Name = %q", n)
	}
	d, target, ok := ParseName(n)
	if !ok || d != digest || target != "python3" {
		t.Errorf("ParseName(%q) = %x, %q, %v", n, d, target, ok)
	}
	for _, bad := range []string{"x-y", strings.Repeat("g", 64) + "-t", n[:64], n[:64] + "-"} {
		if _, _, ok := ParseName(bad); ok {
			t.Errorf("ParseName(%q) accepted", bad)
		}
	}
}

// TestOpen: the first Open fills the entry, and later ones use it without
// filling; each records the use. The entry is the fill's tree, read-only
// as the fill left it.
func TestOpen(t *testing.T) {
	c := &Cache{Dir: t.TempDir()}
	fills := 0
	fill := func(tmp string) error { fills++; return fillTree(tmp) }
	e, filled, err := c.Open(digest, "tool", fill)
	if err != nil || !filled {
		t.Fatalf("first Open: %v, filled %v", err, filled)
	}
	e.Close()
	lock := filepath.Join(c.Dir, Name(digest, "tool")+".lock")
	old := time.Now().Add(-time.Hour)
	os.Chtimes(lock, old, old)
	e, filled, err = c.Open(digest, "tool", fill)
	if err != nil || filled || fills != 1 {
		t.Fatalf("second Open: %v, filled %v, %d fills", err, filled, fills)
	}
	defer e.Close()
	if st, _ := os.Stat(lock); !st.ModTime().After(old.Add(time.Minute)) {
		t.Errorf("the lock's mtime %v: the use was not recorded", st.ModTime())
	}
	if b, err := os.ReadFile(filepath.Join(e.Path, "ro", "f")); err != nil || string(b) != "x" {
		t.Errorf("entry file: %q, %v", b, err)
	}
	for _, p := range []string{"tool", "ro", "ro/f", "."} {
		st, err := os.Lstat(filepath.Join(e.Path, p))
		if err != nil || st.Mode().Perm()&0o222 != 0 {
			t.Errorf("%s: mode %v, %v; want no write bits", p, st.Mode(), err)
		}
	}
	if st, _ := os.Stat(filepath.Join(e.Path, "tool")); st.Mode().Perm() != 0o555 {
		t.Errorf("tool: mode %v, want 0555 (executable kept)", st.Mode())
	}
	if got := entries(t, c.Dir); len(got) != 2 {
		t.Errorf("cache holds %v; want the entry and its lock", got)
	}
}

// TestOpenFails: a fill that fails (a full disk, a digest mismatch) leaves
// no entry and no temporary directory, even one with read-only
// directories in it, and says why.
func TestOpenFails(t *testing.T) {
	c := &Cache{Dir: t.TempDir()}
	boom := errors.New("digest mismatch")
	_, _, err := c.Open(digest, "tool", func(tmp string) error {
		if err := fillTree(tmp); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Open: %v, want %v", err, boom)
	}
	if got := entries(t, c.Dir); len(got) != 1 || !strings.HasSuffix(got[0], ".lock") {
		t.Errorf("cache holds %v after a failed fill; want the lock alone", got)
	}
	// The next one fills it.
	e, filled, err := c.Open(digest, "tool", fillTree)
	if err != nil || !filled {
		t.Fatalf("Open after a failure: %v, filled %v", err, filled)
	}
	e.Close()
}

// TestOpenConcurrent: 20 first runs at once fill the entry once, and all
// get it.
func TestOpenConcurrent(t *testing.T) {
	c := &Cache{Dir: t.TempDir()}
	var fills atomic.Int32
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e, _, err := c.Open(digest, "tool", func(tmp string) error {
				fills.Add(1)
				time.Sleep(50 * time.Millisecond) // a fill takes a while: the others must wait for it
				return fillTree(tmp)
			})
			if err == nil {
				_, err = os.Stat(filepath.Join(e.Path, "tool"))
				e.Close()
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if n := fills.Load(); n != 1 {
		t.Errorf("%d fills for 20 concurrent first runs; want 1", n)
	}
}

// TestOpenWhileUsed: a run that finds the entry being filled waits for
// the fill, not for the runs that use the entry once it is there; and a
// fill leaves alone the temporary directory of another entry whose name
// starts like its own (the same payload, target tool-x).
func TestOpenWhileUsed(t *testing.T) {
	c := &Cache{Dir: t.TempDir()}
	other := filepath.Join(c.Dir, ".tmp-"+Name(digest, "tool-x")+"-0123abcd")
	if err := os.Mkdir(other, 0o700); err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	first := make(chan *Entry)
	go func() {
		e, _, err := c.Open(digest, "tool", func(tmp string) error {
			<-release
			return fillTree(tmp)
		})
		if err != nil {
			t.Error(err)
		}
		first <- e
	}()
	// The second run starts while the first fills.
	for deadline := time.Now().Add(10 * time.Second); !isFilling(c.Dir); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the first run never started filling")
		}
	}
	second := make(chan error)
	go func() {
		e, filled, err := c.Open(digest, "tool", fillTree)
		if err == nil {
			if filled {
				err = errors.New("filled it again")
			}
			e.Close()
		}
		second <- err
	}()
	close(release)
	held := <-first // in use from now on, until the end of the test
	defer held.Close()
	select {
	case err := <-second:
		if err != nil {
			t.Error(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the second run waits for the first one's use of the entry, not for its fill")
	}
	if _, err := os.Stat(other); err != nil {
		t.Errorf("the fill of tool removed tool-x's temporary directory: %v", err)
	}
}

// isFilling reports whether a fill's temporary directory is in dir.
func isFilling(dir string) bool {
	ms, _ := filepath.Glob(filepath.Join(dir, ".tmp-*-tool-*"))
	for _, m := range ms {
		if !strings.Contains(m, "-tool-x-") {
			return true
		}
	}
	return false
}

// TestOpenKilled: a fill killed half-way (SIGKILL of the process filling,
// holding the lock) leaves nothing a later run would use; the next Open
// fills the entry again, and removes what the killed one left.
func TestOpenKilled(t *testing.T) {
	if os.Getenv("CACHE_TEST_FILLER") != "" {
		c := &Cache{Dir: os.Getenv("CACHE_TEST_FILLER")}
		c.Open(digest, "tool", func(tmp string) error {
			os.WriteFile(filepath.Join(tmp, "half"), []byte("x"), 0o644)
			os.WriteFile(filepath.Join(c.Dir, "filling"), nil, 0o644)
			select {} // until killed
		})
		os.Exit(3)
	}
	c := &Cache{Dir: t.TempDir()}
	cmd := exec.Command(os.Args[0], "-test.run=^TestOpenKilled$")
	cmd.Env = append(os.Environ(), "CACHE_TEST_FILLER="+c.Dir)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if _, err := os.Stat(filepath.Join(c.Dir, "filling")); err == nil {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatal("the filler did not start filling")
		}
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	os.Remove(filepath.Join(c.Dir, "filling"))
	if _, err := os.Stat(filepath.Join(c.Dir, Name(digest, "tool"))); err == nil {
		t.Fatal("a killed fill published its entry")
	}
	e, filled, err := c.Open(digest, "tool", fillTree)
	if err != nil || !filled {
		t.Fatalf("Open after a killed fill: %v, filled %v", err, filled)
	}
	defer e.Close()
	if _, err := os.Stat(filepath.Join(e.Path, "half")); err == nil {
		t.Error("the entry holds the killed fill's file")
	}
	if got := entries(t, c.Dir); len(got) != 2 {
		t.Errorf("cache holds %v; want the entry and its lock (the killed fill's temp gone)", got)
	}
}

// TestGC: entries in use are never removed; the others go by age and by
// total size, least recently used first; leftovers of killed fills go.
func TestGC(t *testing.T) {
	c := &Cache{Dir: t.TempDir()}
	now := time.Now()
	var ds [4][32]byte
	for i := range ds {
		ds[i] = sha256.Sum256([]byte{byte(i)})
		e, _, err := c.Open(ds[i], "t", fillTree)
		if err != nil {
			t.Fatal(err)
		}
		e.Close()
		// Used 4, 3, 2 and 1 hours ago.
		at := now.Add(-time.Duration(4-i) * time.Hour)
		os.Chtimes(filepath.Join(c.Dir, Name(ds[i], "t")+".lock"), at, at)
	}
	os.Mkdir(filepath.Join(c.Dir, ".tmp-"+Name(ds[0], "t")+"-0badf00d"), 0o500)
	// The oldest is in use.
	held, _, err := c.Open(ds[0], "t", fillTree)
	if err != nil {
		t.Fatal(err)
	}
	os.Chtimes(filepath.Join(c.Dir, Name(ds[0], "t")+".lock"), now.Add(-5*time.Hour), now.Add(-5*time.Hour))
	list, err := c.List()
	if err != nil || len(list) != 4 || !list[0].InUse || list[1].InUse || list[0].Size <= 0 {
		t.Fatalf("List: %+v, %v", list, err)
	}

	removed, err := c.GC(GCOptions{OlderThan: 150 * time.Minute, Now: now})
	if err != nil || len(removed) != 1 || removed[0].Name != Name(ds[1], "t") {
		t.Errorf("GC older than 2.5 h removed %+v, %v; want the 3-hour-old entry alone (the 5-hour-old is in use)", removed, err)
	}
	size := list[0].Size
	removed, err = c.GC(GCOptions{MaxSize: 2*size + size/2, Now: now})
	if err != nil || len(removed) != 1 || removed[0].Name != Name(ds[2], "t") {
		t.Errorf("GC to 2.5 entries' size removed %+v, %v; want the older of the two unused (the one in use counts)", removed, err)
	}
	removed, err = c.GC(GCOptions{})
	if err != nil || len(removed) != 1 || removed[0].Name != Name(ds[3], "t") {
		t.Errorf("GC removed %+v, %v; want the last unused entry", removed, err)
	}
	if _, err := os.Stat(filepath.Join(held.Path, "tool")); err != nil {
		t.Errorf("the entry in use lost a file: %v", err)
	}
	held.Close()
	removed, err = c.GC(GCOptions{})
	if err != nil || len(removed) != 1 {
		t.Errorf("GC once no longer in use removed %+v, %v", removed, err)
	}
	if got := entries(t, c.Dir); len(got) != 0 {
		t.Errorf("cache holds %v after GC of everything", got)
	}
}
