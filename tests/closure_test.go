package tests

import (
	"bytes"
	"crypto/sha256"
	"debug/elf"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/parkerpack/parker/cache"
	"github.com/parkerpack/parker/image/trailer"
	"github.com/parkerpack/parker/internal/testenv"
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
	// The caller's working directory, outside the packed directory, is
	// the target's too (the run's root of its own changes no path), on
	// the C stub's way and the helper's.
	elsewhere := tempDir(t, "elsewhere")
	inDir := func(c *exec.Cmd) { c.Dir = elsewhere }
	for _, args := range [][]string{{"exec", "/bin/pwd"}, {"--parker-verify", "exec", "/bin/pwd"}} {
		if r := runFile(t, with, args, env, inDir); r.Code != 0 || r.Stdout != elsewhere+"\n" {
			t.Errorf("%v from %s: exit %d, stdout %q, stderr %q", args, elsewhere, r.Code, r.Stdout, r.Stderr)
		}
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

// pyenvPython copies the pyenv-built python 3.11 of this machine (its
// prefix holds its libpython and its standard library; it links libc,
// libm, and through its modules libssl, libcrypto, libsqlite3, libz,
// libffi and more) into a working directory: bin/python3.11, its
// libpython, its standard library without site-packages, tests and
// tools.
func pyenvPython(t *testing.T) string {
	t.Helper()
	home, _ := os.UserHomeDir()
	ms, _ := filepath.Glob(filepath.Join(home, ".pyenv", "versions", "3.11.*"))
	if len(ms) == 0 {
		testenv.Unavailable(t, "no pyenv-built python 3.11 in %s/.pyenv/versions", home)
	}
	prefix := ms[len(ms)-1]
	wd := tempDir(t, "pywd")
	for _, d := range []string{"bin", "lib"} {
		if err := os.Mkdir(filepath.Join(wd, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	libs, _ := filepath.Glob(filepath.Join(prefix, "lib", "libpython3.11.so*"))
	run(t, "cp", "-a", filepath.Join(prefix, "bin", "python3.11"), filepath.Join(wd, "bin"))
	run(t, "cp", append(append([]string{"-a"}, libs...), filepath.Join(prefix, "lib", "python3.11"), filepath.Join(wd, "lib"))...)
	for _, d := range []string{"site-packages", "test", "idlelib", "tkinter", "turtledemo", "ensurepip", "lib2to3"} {
		if err := os.RemoveAll(filepath.Join(wd, "lib", "python3.11", d)); err != nil {
			t.Fatal(err)
		}
	}
	return wd
}

// TestClosurePython: the pyenv python, packed with --closure, imports
// ssl, sqlite3, zlib, ctypes and json in a root with nothing but it,
// /proc and /dev, and sees itself there as without --closure
// (sys.executable, sys.prefix, /proc/self/exe); packed without, it does
// not start there. On this host, its subprocesses (/bin/ls, /usr/bin/env)
// run with the host's libraries.
func TestClosurePython(t *testing.T) {
	needRoot(t, "a root file system of the test's own (chroot)")
	wd := pyenvPython(t)
	with := pack(t, wd, "bin/python3.11", "-q", "--closure", "-o", filepath.Join(tempDir(t, "pyout"), "pythond"))
	without := pack(t, wd, "bin/python3.11", "-q", "-o", filepath.Join(tempDir(t, "pyplain"), "pythond"))
	const script = `import ssl, sqlite3, zlib, ctypes, json, os, sys
print(sqlite3.connect(":memory:").execute("select 6*7").fetchone()[0], zlib.crc32(b"x"), ssl.OPENSSL_VERSION_NUMBER > 0,
      ctypes.sizeof(ctypes.c_int), json.dumps([1]), sys.executable, sys.prefix, os.readlink("/proc/self/exe"))`
	const want = "42 2363233923 True 4 [1] /app/bin/python3.11 /app /app/bin/python3.11\n"
	if r := emptyRoot(t, with, "-c", script); r.Code != 0 || r.Stdout != want {
		t.Errorf("--closure in an empty root: exit %d, stdout %q, stderr %q; want %q", r.Code, r.Stdout, r.Stderr, want)
	}
	if r := emptyRoot(t, without, "-c", "print(1)"); r.Code != 127 || !strings.Contains(r.Stderr, "--closure") {
		t.Errorf("without --closure in an empty root: exit %d, stdout %q, stderr %q", r.Code, r.Stdout, r.Stderr)
	}
	env := withEnv("PARKER_CACHE_DIR=" + tempDir(t, "pycache"))
	r := runFile(t, with, []string{"-c", `import subprocess, sys
subprocess.run(["/bin/ls", "/"], check=True, stdout=subprocess.DEVNULL)
print(subprocess.run(["/usr/bin/env", "sh", "-c", "grep -c /.parker/ /proc/$$/maps"], capture_output=True, text=True).stdout.strip())
print(sys.executable)`}, env)
	dir := filepath.Dir(with)
	if r.Code != 0 || r.Stdout != "0\n"+dir+"/bin/python3.11\n" {
		t.Errorf("host programs from the packed python: exit %d, stdout %q, stderr %q", r.Code, r.Stdout, r.Stderr)
	}
}

// TestClosureReproducible: under SOURCE_DATE_EPOCH, --closure packs are
// byte-identical whatever the core count.
func TestClosureReproducible(t *testing.T) {
	wd := tempDir(t, "closurewd")
	gccBuild(t, "sqlite.c", filepath.Join(wd, "sq"), "-lsqlite3")
	var outs []string
	for _, procs := range []string{"1", "4"} {
		o := filepath.Join(tempDir(t, "repro"), "sqd")
		if r := runParker(t, "", []string{"GOMAXPROCS=" + procs, "SOURCE_DATE_EPOCH=1700000000"}, "-q", "--closure", "-C", wd, "-o", o, "sq"); r.Code != 0 {
			t.Fatalf("pack with %s cores: exit %d, %s", procs, r.Code, r.Stderr)
		}
		outs = append(outs, o)
	}
	a, err := os.ReadFile(outs[0])
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(outs[1])
	if err != nil {
		t.Fatal(err)
	}
	if string(a) != string(b) {
		t.Errorf("--closure packs with 1 and 4 cores differ (%d and %d bytes)", len(a), len(b))
	}
}

// TestClosureInspect: parker inspect --closure lists every file of the
// store, as the image holds it (its SHA-256, checked against an
// extraction), what it is a copy of, and why; a pack without --closure
// has none to list.
func TestClosureInspect(t *testing.T) {
	needRoot(t, "running a packed file")
	with, without := closurePacks(t)
	r := runParker(t, "", nil, "inspect", "--closure", "--json", with)
	var files []struct{ Path, Digest, Source, Why string }
	if err := json.Unmarshal([]byte(r.Stdout), &files); r.Code != 0 || err != nil || len(files) < 4 {
		t.Fatalf("inspect --closure --json: exit %d, %v, %q, stderr %q", r.Code, err, r.Stdout, r.Stderr)
	}
	dir := filepath.Join(tempDir(t, "closurex"), "x")
	if r := runFile(t, with, []string{"--parker-extract", dir}); r.Code != 0 {
		t.Fatalf("--parker-extract: exit %d, stderr %q", r.Code, r.Stderr)
	}
	listed := map[string]bool{}
	for _, f := range files {
		listed[f.Path] = true
		b, err := os.ReadFile(filepath.Join(dir, f.Path))
		if err != nil || fmt.Sprintf("sha256:%x", sha256.Sum256(b)) != f.Digest || !filepath.IsAbs(f.Source) ||
			!strings.HasPrefix(f.Why, "needed by ") && !strings.HasPrefix(f.Why, "loader of ") {
			t.Errorf("%+v: %v, digest of the extracted file %x", f, err, sha256.Sum256(b))
		}
	}
	filepath.WalkDir(filepath.Join(dir, ".parker"), func(p string, d fs.DirEntry, err error) error {
		rel := "/" + strings.TrimPrefix(p, dir+"/")
		if err == nil && d.Type().IsRegular() && !listed[rel] && rel != "/.parker/cache" && rel != "/.parker/manifest" &&
			rel != "/.parker/closure-paths" {
			t.Errorf("%s is in the store but not listed", rel)
		}
		return nil
	})
	if r := runParker(t, "", nil, "inspect", "--closure", without); r.Code != 1 || !strings.Contains(r.Stderr, "carries no closure") {
		t.Errorf("inspect --closure of a pack without: exit %d, stderr %q", r.Code, r.Stderr)
	}
	// A damaged payload is said so, not listed.
	b, err := os.ReadFile(with)
	if err != nil {
		t.Fatal(err)
	}
	tr := readTrailer(t, with)
	b[tr.Offset+tr.Size/2] ^= 0xff
	damaged := filepath.Join(tempDir(t, "damaged"), "sqd")
	if err := os.WriteFile(damaged, b, 0o755); err != nil {
		t.Fatal(err)
	}
	if r := runParker(t, "", nil, "inspect", "--closure", damaged); r.Code != 1 || r.Stdout != "" || !strings.Contains(r.Stderr, "digest mismatch") {
		t.Errorf("inspect --closure of a damaged pack: exit %d, stdout %q, stderr %q", r.Code, r.Stdout, r.Stderr)
	}
}

// TestClosurePathPython: Debian's python3.11, which finds its standard
// library by its compiled-in prefix, packed with --closure --closure-path
// /usr/lib/python3.11, imports ssl, sqlite3, zlib, ctypes and json in an
// empty root, where /usr/lib/python3.11 is the packed tree.
func TestClosurePathPython(t *testing.T) {
	needRoot(t, "a root file system of the test's own (chroot)")
	if _, err := os.Stat("/usr/lib/python3.11/os.py"); err != nil {
		testenv.Unavailable(t, "no Debian python3.11 (hack/deps.sh installs it): %v", err)
	}
	wd := tempDir(t, "debpy")
	if err := os.Mkdir(filepath.Join(wd, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	run(t, "cp", "/usr/bin/python3.11", filepath.Join(wd, "bin"))
	f := pack(t, wd, "bin/python3.11", "-q", "--closure", "--closure-path", "/usr/lib/python3.11",
		"-o", filepath.Join(tempDir(t, "debpyout"), "pythond"))
	const script = `import ssl, sqlite3, zlib, ctypes, json, sys
print(sqlite3.connect(":memory:").execute("select 6*7").fetchone()[0], sys.prefix, sys.executable)`
	for _, run := range []string{"first", "second"} { // the helper's, then the C stub's hit
		if r := emptyRoot(t, f, "-c", script); r.Code != 0 || r.Stdout != "42 /usr /app/bin/python3.11\n" {
			t.Errorf("%s run in an empty root: exit %d, stdout %q, stderr %q", run, r.Code, r.Stdout, r.Stderr)
		}
	}
}

// TestClosurePathMirror: a --closure-path tree the running host lacks,
// under a directory it has, is shown at its path, and the host's other
// entries of that directory are still there.
func TestClosurePathMirror(t *testing.T) {
	needRoot(t, "running a packed file")
	wd := tempDir(t, "closurewd")
	gccBuild(t, "sqlite.c", filepath.Join(wd, "sq"), "-lsqlite3")
	parent := tempDir(t, "cpparent")
	tree := filepath.Join(parent, "tree")
	if err := os.MkdirAll(filepath.Join(tree, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tree, "sub", "f"), []byte("packed tree\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	f := pack(t, wd, "sq", "-q", "--closure", "--closure-path", tree, "-o", filepath.Join(tempDir(t, "cpout"), "sqd"))
	// The host's tree goes; a sibling stays.
	if err := os.Rename(tree, filepath.Join(parent, "moved")); err != nil {
		t.Fatal(err)
	}
	// The helper's first run (it makes the closure entry), then the C
	// stub's hit, then the helper's way again: the tree and the host's
	// sibling, the directory on the way with the host's mode and owner,
	// and nothing of the store writable, even for root.
	env := withEnv("PARKER_CACHE_DIR=" + tempDir(t, "cpcache"))
	if err := os.Chmod(parent, 0o751); err != nil {
		t.Fatal(err)
	}
	script := `cat "$0"/sub/f && ls "$0"/.. && stat -c %a "$0"/.. && ! touch "$0"/sub/f 2>/dev/null && ! touch /.parker/x 2>/dev/null && echo ro`
	for _, args := range [][]string{nil, nil, {"--parker-verify"}} {
		r := runFile(t, f, append(args, "exec", "/bin/sh", "-c", script, tree), env)
		if r.Code != 0 || r.Stdout != "packed tree\nmoved\ntree\n751\nro\n" {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", args, r.Code, r.Stdout, r.Stderr)
		}
	}
	// A closure path that is a symlink: refused when packing.
	link := filepath.Join(parent, "link")
	if err := os.Symlink("moved", link); err != nil {
		t.Fatal(err)
	}
	r := runParker(t, "", nil, "-q", "--closure", "--closure-path", link, "-C", wd, "-o", filepath.Join(tempDir(t, "cpout2"), "sqd"), "sq")
	if r.Code != 1 || !strings.Contains(r.Stderr, "a symlink") {
		t.Errorf("--closure-path of a symlink: exit %d, stderr %q", r.Code, r.Stderr)
	}
}

// withTrailer writes a copy of the packed file src, its trailer changed
// by edit, to dst.
func withTrailer(t *testing.T, src, dst string, edit func(*trailer.Trailer)) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	tr := readTrailer(t, src)
	old, err := tr.MarshalBinary()
	if err != nil || !bytes.HasSuffix(b, old) {
		t.Fatalf("the trailer does not encode back to its bytes (%v)", err)
	}
	edit(tr)
	nb, err := tr.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, append(b[:len(b)-len(old):len(b)-len(old)], nb...), 0o755); err != nil {
		t.Fatal(err)
	}
}

// TestClosureMissingLibrary: a program packed without --closure that
// takes a library from the machine it runs on, on a machine that lacks
// it, gets one line naming the library and suggesting --closure, and
// 127, as for a missing loader; the target never starts. A library found
// elsewhere than where the pack host had it (LD_LIBRARY_PATH, the loader
// cache) is no failure.
func TestClosureMissingLibrary(t *testing.T) {
	needRoot(t, "running a packed file")
	needTool(t, "gcc")
	src := tempDir(t, "libsrc")
	libA, libB, wd := tempDir(t, "libA"), tempDir(t, "libB"), tempDir(t, "libwd")
	os.WriteFile(filepath.Join(src, "lib.c"), []byte("int parker_test_answer(void) { return 42; }\n"), 0o644)
	os.WriteFile(filepath.Join(src, "prog.c"), []byte(`#include <stdio.h>
int parker_test_answer(void);
int main(void) { printf("answer=%d\n", parker_test_answer()); return 0; }
`), 0o644)
	run(t, "gcc", "-shared", "-fPIC", "-Wl,-soname,libparkertest.so.1", "-o", filepath.Join(libA, "libparkertest.so.1"), filepath.Join(src, "lib.c"))
	run(t, "gcc", "-o", filepath.Join(wd, "prog"), filepath.Join(src, "prog.c"), filepath.Join(libA, "libparkertest.so.1"))
	t.Setenv("LD_LIBRARY_PATH", libA)
	packed := pack(t, wd, "prog", "-q", "-o", filepath.Join(tempDir(t, "libout"), "progd"))
	os.Unsetenv("LD_LIBRARY_PATH")
	tr := readTrailer(t, packed)
	if len(tr.Needs) < 2 || tr.Needs[0].Soname != "libparkertest.so.1" || tr.Needs[0].Path != filepath.Join(libA, "libparkertest.so.1") {
		t.Fatalf("the trailer names the libraries %+v; want libparkertest.so.1 in %s first, then libc", tr.Needs, libA)
	}
	const want = "answer=42\n"
	if r := runFile(t, packed, nil, withEnv("LD_LIBRARY_PATH="+libA)); r.Code != 0 || r.Stdout != want {
		t.Fatalf("control: exit %d, stdout %q, stderr %q", r.Code, r.Stdout, r.Stderr)
	}
	// The library moves away from where the pack host had it.
	if err := os.Rename(filepath.Join(libA, "libparkertest.so.1"), filepath.Join(libB, "libparkertest.so.1")); err != nil {
		t.Fatal(err)
	}
	r := runFile(t, packed, nil)
	if r.Code != 127 || r.Stdout != "" || strings.Count(r.Stderr, "\n") != 1 ||
		!strings.Contains(r.Stderr, "cannot run prog: the library libparkertest.so.1 is missing here; pack it with parker --closure") {
		t.Errorf("the library missing: exit %d, stdout %q, stderr %q; want 127 and one line naming it", r.Code, r.Stdout, r.Stderr)
	}
	// Found elsewhere, as the loader finds it: the run goes on.
	if r := runFile(t, packed, nil, withEnv("LD_LIBRARY_PATH="+libB)); r.Code != 0 || r.Stdout != want || r.Stderr != "" {
		t.Errorf("the library in LD_LIBRARY_PATH: exit %d, stdout %q, stderr %q", r.Code, r.Stdout, r.Stderr)
	}
	// A relative LD_LIBRARY_PATH is the caller's working directory's, as
	// for the loader, here the packed file's own directory (which the
	// view covers): the library put there beside it is found.
	os.Link(filepath.Join(libB, "libparkertest.so.1"), filepath.Join(filepath.Dir(packed), "libparkertest.so.1"))
	if r := runFile(t, packed, nil, withEnv("LD_LIBRARY_PATH=."), inDir(filepath.Dir(packed))); r.Code != 0 || r.Stdout != want || r.Stderr != "" {
		t.Errorf("the library in a relative LD_LIBRARY_PATH: exit %d, stdout %q, stderr %q", r.Code, r.Stdout, r.Stderr)
	}
	os.Remove(filepath.Join(filepath.Dir(packed), "libparkertest.so.1"))

	// A target found by a symlink, whose RUNPATH names a packed
	// directory by $ORIGIN (its real one's), with a library there that
	// needs the host's: the packed one is not in the trailer, and the
	// loader, asked where the host's is not where it was, finds both.
	wd2 := tempDir(t, "libwd2")
	os.MkdirAll(filepath.Join(wd2, "bin"), 0o755)
	os.MkdirAll(filepath.Join(wd2, "lib"), 0o755)
	os.WriteFile(filepath.Join(src, "mid.c"), []byte("int parker_test_answer(void);\nint parker_test_mid(void) { return parker_test_answer() + 1; }\n"), 0o644)
	os.WriteFile(filepath.Join(src, "prog2.c"), []byte(`#include <stdio.h>
int parker_test_mid(void);
int main(void) { printf("mid=%d\n", parker_test_mid()); return 0; }
`), 0o644)
	run(t, "gcc", "-shared", "-fPIC", "-Wl,-soname,libparkermid.so.1", "-o", filepath.Join(wd2, "lib", "libparkermid.so.1"),
		filepath.Join(src, "mid.c"), filepath.Join(libB, "libparkertest.so.1"))
	run(t, "gcc", "-o", filepath.Join(wd2, "bin", "app"), filepath.Join(src, "prog2.c"), filepath.Join(wd2, "lib", "libparkermid.so.1"),
		"-Wl,--enable-new-dtags,-rpath,$ORIGIN/../lib,-rpath-link,"+libB)
	os.Symlink("bin/app", filepath.Join(wd2, "run"))
	t.Setenv("LD_LIBRARY_PATH", libB)
	packed2 := pack(t, wd2, "run", "-q", "-o", filepath.Join(tempDir(t, "libout2"), "rund"))
	os.Unsetenv("LD_LIBRARY_PATH")
	var names []string
	for _, d := range readTrailer(t, packed2).Needs {
		names = append(names, d.Path)
	}
	if got := strings.Join(names, " "); !strings.Contains(got, filepath.Join(libB, "libparkertest.so.1")) || strings.Contains(got, "libparkermid") {
		t.Errorf("the trailer names %s; want the host's libparkertest.so.1, not the packed libparkermid.so.1", got)
	}
	os.Rename(filepath.Join(libB, "libparkertest.so.1"), filepath.Join(libA, "libparkertest.so.1"))
	if r := runFile(t, packed2, nil, withEnv("LD_LIBRARY_PATH="+libA)); r.Code != 0 || r.Stdout != "mid=43\n" || r.Stderr != "" {
		t.Errorf("a symlinked target with $ORIGIN, the host's library elsewhere: exit %d, stdout %q, stderr %q", r.Code, r.Stdout, r.Stderr)
	}
	if r := runFile(t, packed2, nil); r.Code != 127 || strings.Count(r.Stderr, "\n") != 1 ||
		!strings.Contains(r.Stderr, "cannot run run: the library libparkertest.so.1 is missing here") {
		t.Errorf("a symlinked target with $ORIGIN, the host's library missing: exit %d, stdout %q, stderr %q", r.Code, r.Stdout, r.Stderr)
	}

	// Where the trailer's path is gone but the loader cache names the
	// library, the stub starts the target itself: with a helper that
	// cannot be unpacked, the C stub's hand-over would fail with 125.
	if tr.HelperRawSize == 0 {
		t.Fatal("the helper is stored unpacked: no way to tell a hand-over")
	}
	libc := -1
	for i, d := range tr.Needs {
		if d.Soname == "libc.so.6" {
			libc = i
		}
	}
	if libc < 0 {
		t.Fatalf("no libc.so.6 among %+v", tr.Needs)
	}
	dir := tempDir(t, "libcache")
	cached, gone := filepath.Join(dir, "cached"), filepath.Join(dir, "gone")
	withTrailer(t, packed, cached, func(tr *trailer.Trailer) {
		tr.HelperRawSize++
		tr.Needs[libc].Path = "/nonexistent/libc.so.6"
	})
	withTrailer(t, packed, gone, func(tr *trailer.Trailer) {
		tr.HelperRawSize++
		tr.Needs[libc].Path, tr.Needs[libc].Soname = "/nonexistent/libc.so.6", "libparkernone.so.6"
	})
	env := withEnv("LD_LIBRARY_PATH=" + libA)
	if r := runFile(t, cached, nil, env); r.Code != 0 || r.Stdout != want {
		t.Errorf("a library in the loader cache: exit %d, stdout %q, stderr %q; want a run without the helper", r.Code, r.Stdout, r.Stderr)
	}
	r = runFile(t, gone, nil, env)
	switch {
	case goStubRun():
		// The Go stub asks the loader itself, which finds the library
		// where it is.
		if r.Code != 0 || r.Stdout != want {
			t.Errorf("a library not where the trailer has it: exit %d, stdout %q, stderr %q", r.Code, r.Stdout, r.Stderr)
		}
	case r.Code != 125 || !strings.Contains(r.Stderr, "helper"):
		t.Errorf("a library not where the trailer has it: exit %d, stdout %q, stderr %q; want the hand-over to the (damaged) helper", r.Code, r.Stdout, r.Stderr)
	}
}

// TestClosureMusl: a musl program, linked against a musl library of the
// pack host, packed with --closure, runs in an empty root as itself, and
// on this glibc host; packed without, it says in the empty root that its
// loader is missing.
func TestClosureMusl(t *testing.T) {
	needRoot(t, "a root file system of the test's own (chroot)")
	needTool(t, "musl-gcc")
	src, lib, wd := tempDir(t, "muslsrc"), tempDir(t, "musllib"), tempDir(t, "muslwd")
	os.WriteFile(filepath.Join(src, "q.c"), []byte("int parker_q(void) { return 7; }\n"), 0o644)
	os.WriteFile(filepath.Join(src, "m.c"), []byte(`#include <stdio.h>
#include <unistd.h>
int parker_q(void);
int main(int argc, char **argv) {
	char exe[4096] = ""; readlink("/proc/self/exe", exe, sizeof exe - 1);
	printf("q=%d exe=%s argv0=%s\n", parker_q(), exe, argv[0]);
	return 0;
}
`), 0o644)
	run(t, "musl-gcc", "-shared", "-fPIC", "-Wl,-soname,libparkerq.so.1", "-o", filepath.Join(lib, "libparkerq.so.1"), filepath.Join(src, "q.c"))
	run(t, "musl-gcc", "-o", filepath.Join(wd, "sq"), filepath.Join(src, "m.c"), filepath.Join(lib, "libparkerq.so.1"))
	t.Setenv("LD_LIBRARY_PATH", lib)
	with := pack(t, wd, "sq", "-q", "--closure", "-o", filepath.Join(tempDir(t, "muslout"), "sqd"))
	without := runPack(t, wd, "sq", filepath.Join(tempDir(t, "muslplain"), "sqd"))
	os.Unsetenv("LD_LIBRARY_PATH")
	if r := emptyRoot(t, with); r.Code != 0 || r.Stdout != "q=7 exe=/app/sq argv0=/app/sq\n" || r.Stderr != "" {
		t.Errorf("--closure in an empty root: exit %d, stdout %q, stderr %q", r.Code, r.Stdout, r.Stderr)
	}
	dir := filepath.Dir(with)
	if r := runFile(t, with, nil, withEnv("PARKER_CACHE_DIR="+tempDir(t, "muslcache"))); r.Code != 0 ||
		r.Stdout != "q=7 exe="+dir+"/sq argv0="+dir+"/sq\n" {
		t.Errorf("--closure on this host: exit %d, stdout %q, stderr %q", r.Code, r.Stdout, r.Stderr)
	}
	interp := ""
	if f, err := elf.Open(filepath.Join(wd, "sq")); err == nil {
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP {
				b, _ := io.ReadAll(p.Open())
				interp = strings.TrimRight(string(b), "\x00")
			}
		}
		f.Close()
	}
	r := emptyRoot(t, without)
	if !strings.Contains(interp, "ld-musl-") || r.Code != 127 || strings.Count(r.Stderr, "\n") != 1 ||
		!strings.Contains(r.Stderr, "cannot run sq: its loader "+interp+" (ELF interpreter) is missing here; pack it with parker --closure") {
		t.Errorf("without --closure in an empty root: exit %d, stdout %q, stderr %q", r.Code, r.Stdout, r.Stderr)
	}
	// Without --closure on this host, its library gone: musl's loader,
	// asked, names it.
	if r := runFile(t, without, nil, withEnv("LD_LIBRARY_PATH="+lib)); r.Code != 0 || !strings.HasPrefix(r.Stdout, "q=7 ") {
		t.Errorf("without --closure, the library there: exit %d, stdout %q, stderr %q", r.Code, r.Stdout, r.Stderr)
	}
	os.Rename(filepath.Join(lib, "libparkerq.so.1"), filepath.Join(src, "libparkerq.so.1"))
	if r := runFile(t, without, nil); r.Code != 127 || r.Stdout != "" || strings.Count(r.Stderr, "\n") != 1 ||
		!strings.Contains(r.Stderr, "cannot run sq: the library libparkerq.so.1 is missing here; pack it with parker --closure") {
		t.Errorf("without --closure, the library gone: exit %d, stdout %q, stderr %q", r.Code, r.Stdout, r.Stderr)
	}
}
