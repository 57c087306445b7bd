package tests

// The README's examples, end to end: a C service built with gcc, and a
// copied python serving its directory.

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestRunExampleCService is the first example of the README: a C service
// built with gcc that reads an asset file, packed with it, run from its
// packed directory.
func TestRunExampleCService(t *testing.T) {
	needRoot(t, "running a packed file")
	f := ipservicePacked(t)
	for _, r := range exampleRungs(t) {
		t.Run(r.name, func(t *testing.T) { r.setup(t, f); exampleCService(t, f, r) })
	}
}

// exampleRung is a place a packed file runs in: how a command is made to
// run there, and what that needs.
type exampleRung struct {
	name  string
	setup func(t *testing.T, file string)             // before a run of file
	cmd   func(file string, args ...string) *exec.Cmd // file run there
}

// exampleRungs are the rungs the examples run on: the kernel's, as root;
// FUSE as nobody (/dev/fuse open); the cache's copy under the overlay as
// nobody (/dev/fuse closed); and the cache's copy without a namespace,
// as root under the seccomp filter docker's default profile is like.
func exampleRungs(t *testing.T) []exampleRung {
	needTool(t, "setpriv")
	nomount := nomountTool(t)
	nobodyRun := func(env ...string) func(string, ...string) *exec.Cmd {
		return func(file string, args ...string) *exec.Cmd {
			c := asNobody(file, env, args...)
			c.Dir = filepath.Dir(file)
			return c
		}
	}
	reach := func(t *testing.T, file string) { openToOthers(t, file) }
	nobodyCacheDir := nobodyCache(t)
	rootCacheDir := tempDir(t, "examplecache")
	return []exampleRung{
		{"kernel", func(*testing.T, string) {}, func(file string, args ...string) *exec.Cmd {
			c := exec.Command("./"+filepath.Base(file), args...)
			c.Dir = filepath.Dir(file)
			return c
		}},
		{"fuse as nobody", func(t *testing.T, file string) { reach(t, file); openFUSE(t) },
			nobodyRun("PARKER_CACHE_DIR=" + nobodyCacheDir)},
		{"cache under the overlay as nobody", func(t *testing.T, file string) { reach(t, file); closeFUSE(t) },
			nobodyRun("PARKER_CACHE_DIR=" + nobodyCacheDir)},
		{"cache without a namespace (seccomp)", func(*testing.T, string) {}, func(file string, args ...string) *exec.Cmd {
			c := exec.Command(nomount, append([]string{"./" + filepath.Base(file)}, args...)...)
			c.Dir = filepath.Dir(file)
			c.Env = append(os.Environ(), "PARKER_CACHE_DIR="+rootCacheDir)
			return c
		}},
	}
}

// ipservicePacked packs the README's first example and returns ipserviced,
// alone in a directory of its own.
func ipservicePacked(t *testing.T) string {
	wd := tempDir(t, "ipservice")
	gccBuild(t, "ipservice.c", filepath.Join(wd, "ipservice"))
	db, err := os.ReadFile(filepath.Join("testdata", "run", "ipv4.ipdb"))
	if err != nil {
		t.Fatal(err)
	}
	os.Mkdir(filepath.Join(wd, "assets"), 0o755)
	os.WriteFile(filepath.Join(wd, "assets", "ipv4.ipdb"), db, 0o644)
	// As in the README: cd WORKDIR && parker ipservice, then move
	// ipserviced to a machine (here: a directory) of its own.
	return runPack(t, wd, "ipservice", filepath.Join(tempDir(t, "ipservice-host"), "ipserviced"))
}

// exampleCService runs ipserviced f on rung r and asks it three lookups.
func exampleCService(t *testing.T, f string, r exampleRung) {
	dir := filepath.Dir(f)
	before := snapshot(t, dir)
	port := freePort(t)
	c := r.cmd(f, "--port", strconv.Itoa(port))
	var out bytes.Buffer
	c.Stdout, c.Stderr = &out, &out
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	defer c.Process.Kill()
	for _, q := range []struct{ ip, want string }{
		{"8.8.8.8", "8.8.8.8 Google-DNS\n"},
		{"10.1.2.3", "10.1.2.3 Private\n"},
		{"192.0.2.1", "192.0.2.1 unknown\n"},
	} {
		conn := dialRetry(t, port, 10*time.Second)
		fmt.Fprintf(conn, "%s\n", q.ip)
		got, _ := io.ReadAll(conn)
		conn.Close()
		if string(got) != q.want {
			t.Errorf("lookup %s: got %q want %q (service output %q)", q.ip, got, q.want, out.String())
		}
	}
	c.Process.Signal(syscall.SIGTERM)
	c.Wait()
	if ws := c.ProcessState.Sys().(syscall.WaitStatus); !ws.Signaled() || ws.Signal() != syscall.SIGTERM {
		t.Errorf("service stopped with SIGTERM: caller saw %v", c.ProcessState)
	}
	if !strings.Contains(out.String(), "4 entries") {
		t.Errorf("service output %q", out.String())
	}
	sameTraces(t, before, dir)
}

// TestRunExamplePython is the second example of the README: python3.11
// copied to ./python beside server.py, bar.png and foo.txt; ./pythond
// server.py serves a listing of those files. The copied interpreter still
// loads its standard library (and libc, libm, libz, libexpat) from the
// host, as a copied python does anywhere: parker packs the directory, not
// the program's dependencies.
func TestRunExamplePython(t *testing.T) {
	needRoot(t, "running a packed file")
	host := pythonPacked(t)
	for _, r := range exampleRungs(t) {
		t.Run(r.name, func(t *testing.T) {
			r.setup(t, filepath.Join(host, "pythond"))
			examplePython(t, host, r)
		})
	}
}

// examplePython runs pythond in host on rung r and fetches the listing.
func examplePython(t *testing.T, host string, r exampleRung) {
	before := snapshot(t, host)
	port := freePort(t)
	c := r.cmd(filepath.Join(host, "pythond"), "server.py", strconv.Itoa(port))
	var out bytes.Buffer
	c.Stdout, c.Stderr = &out, &out
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	defer c.Process.Kill()
	conn := dialRetry(t, port, 20*time.Second)
	fmt.Fprintf(conn, "GET / HTTP/1.0\r\n\r\n")
	page, _ := io.ReadAll(conn)
	conn.Close()
	for _, name := range []string{"bar.png", "foo.txt", "python", "server.py"} {
		if !strings.Contains(string(page), fmt.Sprintf(`<a href="%s">%s</a>`, name, name)) {
			t.Errorf("listing lacks %s:\n%s\nserver output: %s", name, page, out.String())
		}
	}
	c.Process.Signal(syscall.SIGINT)
	c.Wait()
	t.Logf("python example: listing served on 127.0.0.1:%d; stopped by SIGINT: %v", port, c.ProcessState)
	sameTraces(t, before, host)
}

var (
	pyOnce sync.Once
	pyHost string
)

// pythonPacked packs the README's python example once and returns the
// directory holding pythond alone.
func pythonPacked(t *testing.T) string {
	t.Helper()
	py := "/usr/bin/python3.11"
	if _, err := os.Stat(py); err != nil {
		t.Fatalf("%v: run hack/deps.sh (make test does) to install it", err)
	}
	pyOnce.Do(func() { pyHost = packPython(t, py) })
	if pyHost == "" {
		t.Fatal("packing the python example failed earlier")
	}
	return pyHost
}

func packPython(t *testing.T, py string) string {
	wd := tempDir(t, "pyexample")
	run(t, "cp", py, filepath.Join(wd, "python"))
	src, err := os.ReadFile(filepath.Join("testdata", "run", "server.py"))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(wd, "server.py"), src, 0o644)
	os.WriteFile(filepath.Join(wd, "foo.txt"), []byte("foo\n"), 0o644)
	os.WriteFile(filepath.Join(wd, "bar.png"), []byte("\x89PNG\r\n\x1a\nnot really\n"), 0o644)
	// Pack in place, as the README does (cd WORKDIR && parker python),
	// then ship pythond alone to a fresh directory.
	f := runPack(t, wd, "python", filepath.Join(wd, "pythond"))
	host := tempDir(t, "pyhost")
	run(t, "mv", f, filepath.Join(host, "pythond"))
	return host
}
