package tests

import (
	"crypto/sha256"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/parkerpack/parker/cache"
)

// helperCopyOf is where the cache directory dir keeps the copy of the
// helper packed file f carries, and what that copy must be: its digest
// and its size unpacked.
func helperCopyOf(t *testing.T, f, dir string) (path string, digest [32]byte, size int64) {
	t.Helper()
	tr := readTrailer(t, f)
	if tr.HelperDigest == [32]byte{} || tr.HelperRawSize == 0 {
		t.Fatalf("%s records no helper digest (version %d)", f, tr.Version)
	}
	return filepath.Join(dir, cache.HelperName(tr.HelperDigest)), tr.HelperDigest, int64(tr.HelperRawSize)
}

// wantHelperCopy fails the test unless the cache directory dir holds the
// copy of f's helper alone, within a few seconds (the FUSE server writes
// it once its run is over): a regular file of nobody's, read-only, of the
// helper's size and digest; no temporary file beside it.
func wantHelperCopy(t *testing.T, f, dir string) string {
	t.Helper()
	p, digest, size := helperCopyOf(t, f, dir)
	if !within(10*time.Second, func() bool {
		got := listDir(t, dir)
		return len(got) == 1 && got[0] == filepath.Base(p)
	}) {
		t.Fatalf("the cache holds %v; want the helper's copy %s alone", listDir(t, dir), filepath.Base(p))
	}
	var st syscall.Stat_t
	if err := syscall.Lstat(p, &st); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode != syscall.S_IFREG|0o500 || st.Uid != nobody || st.Size != size || sha256.Sum256(b) != digest {
		t.Errorf("the helper's copy: mode %#o, uid %d, %d bytes (want %d), digest ok %v",
			st.Mode, st.Uid, st.Size, size, sha256.Sum256(b) == digest)
	}
	return p
}

// serverExes lists what the FUSE servers alive now were started from.
func serverExes() []string {
	var out []string
	for _, c := range fuseServers() {
		if exe, err := os.Readlink(filepath.Join(filepath.Dir(c), "exe")); err == nil {
			out = append(out, exe)
		}
	}
	return out
}

// TestRunFUSEHelperCopy: the first run on the FUSE rung starts its server
// from memory, unpacked, and the server, once the run is over, leaves the
// helper's copy in the cache, checked against the digest the trailer
// records; the next run's server starts from it, and so does every start
// of the helper (a copy planted there is what runs). A copy the stub must
// not trust (writable by others, another's, of the wrong size) is passed
// over, the run unpacks the helper as before, and its server puts a good
// copy in its place.
func TestRunFUSEHelperCopy(t *testing.T) {
	f, cacheDir := nobodySetup(t)
	openFUSE(t)
	env := []string{"PARKER_CACHE_DIR=" + cacheDir}
	if goStubRun() {
		// No C stub, no FUSE rung, no copy: the run takes the cache.
		if r := runCmd(t, asNobody(f, env, "exit", "0")); r.Code != 0 {
			t.Fatalf("Go stub: exit %d, stderr %q", r.Code, r.Stderr)
		}
		if p, _, _ := helperCopyOf(t, f, cacheDir); exists(p) {
			t.Errorf("the Go stub's run wrote the helper's copy %s", p)
		}
		return
	}
	// serverOf runs f as nobody until its target is up, and returns what
	// its FUSE server was started from.
	serverOf := func() string {
		t.Helper()
		p := launch(t, asNobody(f, env, "sleep", "600000"), false)
		p.expect(t, "sleeping")
		exes := serverExes()
		p.c.Process.Signal(syscall.SIGTERM)
		if ws := p.wait(t); ws.Signal() != syscall.SIGTERM {
			t.Errorf("the run ended %v, stderr %q", ws, p.stderr())
		}
		noFUSEServers(t)
		if len(exes) != 1 {
			t.Fatalf("FUSE servers started from %v; want one", exes)
		}
		return exes[0]
	}
	const fromMemory = "/memfd:parker-helper (deleted)"
	if got := serverOf(); got != fromMemory {
		t.Errorf("the first run's server started from %q; want %q", got, fromMemory)
	}
	copyPath := wantHelperCopy(t, f, cacheDir)
	if got := serverOf(); got != copyPath {
		t.Errorf("with the copy there, the server started from %q; want %q", got, copyPath)
	}
	r := runCmd(t, asNobody(f, env, "--parker-doctor"))
	if want := "helper:   started from the cache's copy, " + copyPath + "\n"; !strings.Contains(r.Stdout, want) {
		t.Errorf("--parker-doctor: %q; want the line %q", r.Stdout, want)
	}

	// Copies the stub must not start.
	good, err := os.ReadFile(copyPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		spoil func() error
	}{
		{"writable by others", func() error { return os.Chmod(copyPath, 0o757) }},
		{"not executable", func() error { return os.Chmod(copyPath, 0o400) }},
		{"root's", func() error { return os.Chown(copyPath, 0, 0) }},
		{"cut short", func() error { return os.Truncate(copyPath, int64(len(good))-1) }},
		// Passes every check, but the kernel will not execute it.
		{"not a program", func() error {
			if err := os.Chmod(copyPath, 0o700); err != nil {
				return err
			}
			if err := os.WriteFile(copyPath, make([]byte, len(good)), 0o500); err != nil {
				return err
			}
			return os.Chmod(copyPath, 0o500)
		}},
	} {
		if err := tc.spoil(); err != nil {
			t.Fatal(err)
		}
		if got := serverOf(); got != fromMemory {
			t.Errorf("%s: the server started from %q; want %q", tc.name, got, fromMemory)
		}
		wantHelperCopy(t, f, cacheDir)
	}

	// A start of the helper (a --parker- flag) runs the copy: one
	// planted there, of the helper's size, is what answers.
	echo, err := os.ReadFile("/bin/echo")
	if err != nil {
		t.Fatal(err)
	}
	if len(echo) > len(good) {
		t.Fatalf("/bin/echo (%d bytes) is larger than the helper (%d)", len(echo), len(good))
	}
	planted := append(echo, make([]byte, len(good)-len(echo))...)
	if err := os.Remove(copyPath); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(copyPath, planted, 0o500); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(copyPath, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	if r := runCmd(t, asNobody(f, env, "--parker-help")); r.Code != 0 || r.Stdout != "--parker-help\n" {
		t.Errorf("with a copy planted, --parker-help: exit %d, stdout %q, stderr %q", r.Code, r.Stdout, r.Stderr)
	}
}

// exists tells whether p is there (not followed).
func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

// TestRunFUSEHelperCopyPlaces: the copy goes where cache.Locate puts the
// cache, as the Go code finds it: a directory right under /, and a HOME
// given with a trailing slash.
func TestRunFUSEHelperCopyPlaces(t *testing.T) {
	f, _ := nobodySetup(t)
	openFUSE(t)
	if goStubRun() {
		return // no C stub, no copy (TestRunFUSEHelperCopy checks)
	}
	top, err := os.MkdirTemp("/", "parker-test-cache-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(top) })
	home := filepath.Join(tempDir(t, "home"), "ann")
	for _, d := range []string{top, home} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(d, nobody, nobody); err != nil {
			t.Fatal(err)
		}
	}
	openToOthers(t, home)
	for _, tc := range []struct {
		env   []string
		cache string
	}{
		{[]string{"PARKER_CACHE_DIR=" + top}, top},
		{[]string{"HOME=" + home + "/"}, filepath.Join(home, ".cache", "parker")},
	} {
		if r := runCmd(t, asNobody(f, tc.env, "exit", "0")); r.Code != 0 {
			t.Fatalf("%v: exit %d, stderr %q", tc.env, r.Code, r.Stderr)
		}
		noFUSEServers(t)
		wantHelperCopy(t, f, tc.cache)
	}
}
