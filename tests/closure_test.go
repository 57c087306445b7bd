package tests

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/parkerpack/parker/cache"
)

// closurePacks builds testdata/run/sqlite.c, linked against the host's
// libsqlite3, and packs it twice: with --closure and without.
func closurePacks(t *testing.T) (with, without string) {
	t.Helper()
	wd := tempDir(t, "closurewd")
	gccBuild(t, "sqlite.c", filepath.Join(wd, "sq"), "-lsqlite3")
	with = pack(t, wd, "sq", "-q", "--closure", "-o", filepath.Join(tempDir(t, "closureout"), "sqd"))
	without = runPack(t, wd, "sq", filepath.Join(tempDir(t, "plainout"), "sqd"))
	return with, without
}

// emptyRoot runs file (copied to /app/sqd) with args in a root file system
// that has nothing but it, /proc and /dev: no libc, no loader, no shell
// (a mount namespace of its own, chroot).
func emptyRoot(t *testing.T, file string, args ...string) runRes {
	t.Helper()
	needTool(t, "unshare")
	root := tempDir(t, "emptyroot")
	for _, d := range []string{"app", "proc", "dev"} {
		if err := os.Mkdir(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "app", "sqd"), b, 0o755); err != nil {
		t.Fatal(err)
	}
	c := exec.Command("unshare", append([]string{"-m", "sh", "-c",
		`mount -t proc proc "$0/proc" && mount --rbind /dev "$0/dev" && exec chroot "$0" /app/sqd "$@"`, root}, args...)...)
	return runCmd(t, c)
}

// TestClosureEmptyRoot: a program linked against a library of the pack
// host, packed with --closure, runs in a root that has neither that
// library nor glibc nor a loader, as itself (/proc/self/exe and argv[0]
// as in a run without --closure); packed without, it does not, and says
// why in one line that suggests --closure.
func TestClosureEmptyRoot(t *testing.T) {
	needRoot(t, "a root file system of the test's own (chroot)")
	with, without := closurePacks(t)
	const want = "sqlite=42 exe=/app/sq argv0=/app/sq\n"
	if r := emptyRoot(t, with); r.Code != 0 || r.Stdout != want || r.Stderr != "" {
		t.Errorf("--closure in an empty root: exit %d, stdout %q, stderr %q; want %q", r.Code, r.Stdout, r.Stderr, want)
	}
	// The helper's way (a --parker- flag), on the same view.
	if r := emptyRoot(t, with, "--parker-verify"); r.Code != 0 || r.Stdout != want {
		t.Errorf("--closure --parker-verify in an empty root: exit %d, stdout %q, stderr %q", r.Code, r.Stdout, r.Stderr)
	}
	r := emptyRoot(t, without)
	if r.Code != 127 || r.Stdout != "" || strings.Count(r.Stderr, "\n") != 1 ||
		!strings.Contains(r.Stderr, "cannot run sq: its loader /lib64/ld-linux-x86-64.so.2 (ELF interpreter) is missing here; pack it with parker --closure") {
		t.Errorf("without --closure in an empty root: exit %d, stdout %q, stderr %q", r.Code, r.Stdout, r.Stderr)
	}
}

// TestClosureHost: on an ordinary host a --closure pack runs as the same
// pack without it does (the same self-view), its own process on the
// closure's libraries, and the host programs it starts on the host's.
func TestClosureHost(t *testing.T) {
	needRoot(t, "running a packed file")
	with, without := closurePacks(t)
	cacheDir := tempDir(t, "closurecache")
	env := withEnv("PARKER_CACHE_DIR=" + cacheDir)
	a, b := runFile(t, with, nil, env), runFile(t, without, nil, env)
	dir := filepath.Dir(with)
	if a.Code != 0 || b.Code != 0 || a.Stdout != strings.ReplaceAll(b.Stdout, filepath.Dir(without), dir) ||
		a.Stdout != "sqlite=42 exe="+dir+"/sq argv0="+dir+"/sq\n" {
		t.Errorf("with --closure: exit %d, %q; without: exit %d, %q", a.Code, a.Stdout, b.Code, b.Stdout)
	}
	if r := runFile(t, with, []string{"maps", "libc.so"}, env); r.Code != 0 || !strings.HasPrefix(r.Stdout, "/.parker/store/") ||
		strings.Count(r.Stdout, "\n") != 1 {
		t.Errorf("the target's libc: %q, stderr %q; want the closure's, in /.parker/store", r.Stdout, r.Stderr)
	}
	r := runFile(t, with, []string{"exec", "/bin/sh", "-c", `grep -c /.parker/ /proc/$$/maps; ls / >/dev/null && echo ok`}, env)
	if r.Code != 0 || r.Stdout != "0\nok\n" {
		t.Errorf("a host program started by the target: exit %d, stdout %q, stderr %q; want the host's libraries", r.Code, r.Stdout, r.Stderr)
	}
	// The store comes from the closure entry in the cache, on disk (its
	// pages cached from one run to the next), not from the payload.
	entry := filepath.Join(cacheDir, cache.ClosureName(readTrailer(t, with).Digest, "sq"))
	if st, err := os.Stat(entry); err != nil || !st.IsDir() {
		t.Fatalf("no closure entry %s: %v", entry, err)
	}
	r = runFile(t, with, []string{"exec", "/bin/sh", "-c", `grep " /.parker " /proc/self/mountinfo`}, env)
	if fields := strings.Fields(strings.SplitN(r.Stdout, " - ", 2)[len(strings.SplitN(r.Stdout, " - ", 2))-1]); r.Code != 0 ||
		strings.Count(r.Stdout, "\n") != 1 || len(fields) == 0 || fields[0] == "squashfs" || fields[0] == "fuse" {
		t.Errorf("/.parker is mounted from %q (exit %d, stderr %q); want the cache's file system", r.Stdout, r.Code, r.Stderr)
	}
	// Without a cache directory, the payload's store serves.
	r = runFile(t, with, nil, withEnv("PARKER_CACHE_DIR=/proc/nowhere"))
	if r.Code != 0 || r.Stdout != a.Stdout {
		t.Errorf("no cache directory: exit %d, stdout %q, stderr %q", r.Code, r.Stdout, r.Stderr)
	}
}

// TestClosureRungs: a --closure pack runs as nobody on the rungs without
// root: FUSE in a user namespace (the C stub's, and the helper's for a
// --parker- flag), and the extraction cache's copy under the overlay in a
// user namespace (first run the helper's, then the C stub's hit); under
// a seccomp filter that refuses every namespace, it is refused in one
// line, as it cannot show its store.
func TestClosureRungs(t *testing.T) {
	needRoot(t, "switching to an unprivileged user")
	needTool(t, "setpriv")
	with, _ := closurePacks(t)
	openToOthers(t, with)
	dir := filepath.Dir(with)
	want := "sqlite=42 exe=" + dir + "/sq argv0=" + dir + "/sq\n"
	check := func(name string, c *exec.Cmd) {
		t.Helper()
		if r := runCmd(t, c); r.Code != 0 || r.Stdout != want {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want %q", name, r.Code, r.Stdout, r.Stderr, want)
		}
	}
	refused := func(name string, c *exec.Cmd) {
		t.Helper()
		r := runCmd(t, c)
		if r.Code != 125 || strings.Count(r.Stderr, "\n") != 1 ||
			!strings.Contains(r.Stderr, "this packed file carries its programs' libraries (parker --closure)") {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want 125 and one line", name, r.Code, r.Stdout, r.Stderr)
		}
	}
	cacheDir := nobodyCache(t)
	env := []string{"PARKER_CACHE_DIR=" + cacheDir}
	closeFUSE(t)
	if goStubRun() {
		// The Go stub cannot enter a user namespace: no namespace at all.
		refused("the Go stub", asNobody(with, env))
		return
	}
	check("the cache's copy, first run", asNobody(with, env))
	check("the cache's copy, a hit", asNobody(with, env))
	openFUSE(t)
	check("FUSE", asNobody(with, append(env, "PARKER_MODE=fuse")))
	check("FUSE, the helper's way", asNobody(with, append(env, "PARKER_MODE=fuse"), "--parker-verify"))
	noFUSEServers(t)
	closeFUSE(t)
	refused("no namespace", asNobody(nomountTool(t), env, with))
}
