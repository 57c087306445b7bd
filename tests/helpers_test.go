// Package tests holds parker's end-to-end tests: they build the real parker
// binary, pack generated trees and read the result back with independent
// readers (unsquashfs, the kernel, go-diskfs and image.Reader).
//
// Shared helper API, for every tests/*_test.go file:
//
//	buildParker(t) string                      path of a parker built once per test binary
//	pack(t, workdir, target, args...) string   pack workdir; returns the output file
//	runParker(t, dir, env, args...) result     run parker, any outcome; see result
//	tempDir(t, name) string                    a fresh directory under the run's temp root
//	needRoot(t, what)                          skip loudly unless root
//	smallTree(t), fullTree(t), goTree(t)       shared source trees (*fixture), made once
//
// Heavy fixtures (the full generated tree with its 5 GiB sparse file, the
// copy of /usr/local/go) are made once per test binary and shared.
package tests

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/parkerpack/parker/image/trailer"
	"github.com/parkerpack/parker/internal/testenv"
	"github.com/parkerpack/parker/internal/treegen"
)

var (
	keepTemp = flag.Bool("keep", false, "keep the test temp root (its path is printed)")
	// tmpRoot holds every test's files; TestMain removes it.
	tmpRoot string
)

func TestMain(m *testing.M) {
	flag.Parse()
	d, err := os.MkdirTemp("", "parker-tests-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "tests:", err)
		os.Exit(1)
	}
	tmpRoot = d
	code := m.Run()
	if *keepTemp {
		fmt.Fprintln(os.Stderr, "tests: kept", d)
	} else if err := os.RemoveAll(d); err != nil {
		fmt.Fprintln(os.Stderr, "tests: cleanup:", err)
	}
	os.Exit(code)
}

// tempDir returns a new empty directory under the run's temp root. Unlike
// t.TempDir it survives the test, so shared fixtures can live there; the
// whole root goes when the test binary exits.
func tempDir(t testing.TB, name string) string {
	t.Helper()
	name = strings.NewReplacer("/", "_", " ", "_").Replace(name)
	d, err := os.MkdirTemp(tmpRoot, name+"-")
	if err != nil {
		t.Fatal(err)
	}
	return d
}

var (
	parkerOnce sync.Once
	parkerBin  string
	parkerErr  error
)

// goTool is the go command: on PATH, or where the machine keeps it.
func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return "/usr/local/go/bin/go"
}

// buildParker builds ./cmd/parker (CGO_ENABLED=0, as make does) once per
// test binary and returns the path of the executable. With PARKER_BIN set
// it uses that executable instead (e.g. PARKER_BIN=$PWD/bin/parker to test
// what make built).
func buildParker(t testing.TB) string {
	t.Helper()
	parkerOnce.Do(func() {
		if p := os.Getenv("PARKER_BIN"); p != "" {
			parkerBin, parkerErr = filepath.Abs(p)
			return
		}
		goBin := goTool()
		dir, err := os.MkdirTemp(tmpRoot, "bin-")
		if err != nil {
			parkerErr = err
			return
		}
		// As make builds it: the C stub and the helper embedded. STUB=c:
		// a missing C compiler fails here rather than quietly testing
		// the Go stub (which make test runs the run tests on separately).
		parkerBin = filepath.Join(dir, "parker")
		cmd := exec.Command("bash", "hack/build.sh", parkerBin)
		cmd.Dir = ".." // the module root: tests run in tests/
		cmd.Env = append(os.Environ(), "GO="+goBin, "VERSION=test", "STUB=c")
		if out, err := cmd.CombinedOutput(); err != nil {
			parkerErr = fmt.Errorf("hack/build.sh: %v\n%s", err, out)
		}
	})
	if parkerErr != nil {
		t.Fatal(parkerErr)
	}
	return parkerBin
}

// result is the outcome of one parker run.
type result struct {
	Stdout, Stderr string
	Code           int // exit status; -1 when killed by a signal
}

// runParker runs parker with args in dir (the current directory; "" for a
// fresh temp dir), adding env to the environment. It never fails the test
// for a non-zero exit: the caller asserts on result.
func runParker(t testing.TB, dir string, env []string, args ...string) result {
	t.Helper()
	bin := buildParker(t)
	if dir == "" {
		dir = tempDir(t, "cwd")
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	err := cmd.Run()
	r := result{Stdout: so.String(), Stderr: se.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.Code = ee.ExitCode()
	default:
		t.Fatalf("run parker: %v", err)
	}
	return r
}

// pack packs workdir with TARGET target (a path relative to workdir) and
// returns the packed file. Without -o/--output in args the output goes to
// a fresh temp dir as <base of target>d. It fails the test unless parker
// exits 0 and the output exists.
func pack(t testing.TB, workdir, target string, args ...string) string {
	t.Helper()
	out := ""
	for i, a := range args {
		switch {
		case (a == "-o" || a == "--output") && i+1 < len(args):
			out = args[i+1]
		case strings.HasPrefix(a, "--output="):
			out = strings.TrimPrefix(a, "--output=")
		}
	}
	full := append([]string{"-C", workdir}, args...)
	if out == "" {
		out = filepath.Join(tempDir(t, "out"), filepath.Base(target)+"d")
		full = append(full, "-o", out)
	}
	full = append(full, target)
	r := runParker(t, "", nil, full...)
	if r.Code != 0 {
		t.Fatalf("parker %s: exit %d\nstderr: %s", strings.Join(full, " "), r.Code, r.Stderr)
	}
	if _, err := os.Stat(out); err != nil {
		t.Fatalf("parker %s: exit 0 but %v", strings.Join(full, " "), err)
	}
	return out
}

// needRoot skips the calling test, loudly, unless it runs as root.
func needRoot(t testing.TB, what string) { testenv.NeedRoot(t, what) }

// unavailable skips a test this machine cannot run, except on CI (CI set),
// which runs as root on a machine that has everything the tests need: there
// a skip would hide a failure, so it fails instead.
func unavailable(t testing.TB, format string, args ...any) { testenv.Unavailable(t, format, args...) }

// needTool fails the test unless the named program is installed. It does
// not skip: make test installs every program the tests use (hack/deps.sh),
// so a missing one means an unchecked behaviour, not a test that passed.
func needTool(t testing.TB, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Fatalf("%s not installed: run hack/deps.sh (make test does) to install it", name)
	}
}

// run runs a command and fails the test if it fails; it returns the
// combined output.
func run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// fixture is a source tree shared by several tests. Tests must not change it.
type fixture struct {
	Dir    string
	Target string // an executable regular file in Dir, relative
	Man    *treegen.Manifest
}

type once struct {
	sync.Once
	f   *fixture
	err error
}

var smallOnce, fullOnce, goOnce once

func (o *once) get(t testing.TB, make func() (*fixture, error)) *fixture {
	t.Helper()
	o.Do(func() { o.f, o.err = make() })
	if o.err != nil {
		t.Fatal(o.err)
	}
	return o.f
}

// genTree generates a treegen tree under the temp root.
func genTree(t testing.TB, name string, seed int64, opt treegen.Options) (*fixture, error) {
	dir := tempDir(t, name)
	m, err := treegen.Generate(dir, seed, opt)
	if err != nil {
		return nil, err
	}
	return &fixture{Dir: dir, Target: m.Target, Man: m}, nil
}

// smallTree: every kind of entry, no huge parts (about 6 MB).
func smallTree(t testing.TB) *fixture {
	return smallOnce.get(t, func() (*fixture, error) {
		return genTree(t, "small", 1, treegen.Options{Special: true, Root: os.Geteuid() == 0})
	})
}

// fullTree: the large tree: 20,000 entries in one directory, 64 levels,
// a 5 GiB sparse file, (as root) 2,500 owners, plus everything of smallTree.
func fullTree(t testing.TB) *fixture {
	return fullOnce.get(t, func() (*fixture, error) {
		return genTree(t, "full", 2, treegen.Options{
			Special: true, Root: os.Geteuid() == 0,
			Wide: 20000, Depth: 64, HugeSparse: 5 << 30, Owners: 2500,
		})
	})
}

// goTree: a copy of /usr/local/go (cp -a) with an executable run.sh added.
func goTree(t testing.TB) *fixture {
	return goOnce.get(t, func() (*fixture, error) {
		src := os.Getenv("PARKER_GO_TREE")
		if src == "" {
			src = "/usr/local/go"
		}
		dir := tempDir(t, "gotree")
		if out, err := exec.Command("cp", "-a", src+"/.", dir).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("cp -a %s: %v\n%s", src, err, out)
		}
		if err := os.WriteFile(filepath.Join(dir, "run.sh"), []byte("#!/bin/sh\nexec \"$(dirname \"$0\")/bin/go\" \"$@\"\n"), 0o755); err != nil {
			return nil, err
		}
		return &fixture{Dir: dir, Target: "run.sh"}, nil
	})
}

// assemblePacked writes a packed file by hand, laid out by trailer.Plan as
// parker lays it out: stub, zero padding, payload, trailer, with no helper.
// tr's layout fields, size and digest are filled in here.
func assemblePacked(t testing.TB, out string, stub, payload []byte, tr trailer.Trailer) {
	t.Helper()
	l := trailer.Plan(int64(len(stub)), 0)
	l.Apply(&tr)
	tr.Size = uint64(len(payload))
	tr.Digest = sha256.Sum256(payload)
	tb, err := tr.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	b.Write(stub)
	b.Write(make([]byte, l.Offset-l.StubSize))
	b.Write(payload)
	b.Write(tb)
	if err := os.WriteFile(out, b.Bytes(), 0o755); err != nil {
		t.Fatal(err)
	}
}

// openToOthers makes the directories from tmpRoot down to the one holding
// p searchable by every user (a test running something as nobody), and
// nothing above tmpRoot: /tmp keeps its own mode.
func openToOthers(t testing.TB, p string) {
	t.Helper()
	if !strings.HasPrefix(p, tmpRoot+"/") {
		t.Fatalf("openToOthers(%s): not under %s", p, tmpRoot)
	}
	for d := filepath.Dir(p); strings.HasPrefix(d, tmpRoot); d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

// readTrailer reads the trailer of the packed file at p.
func readTrailer(t testing.TB, p string) *trailer.Trailer {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	tr, err := trailer.Read(f, st.Size())
	if err != nil {
		t.Fatalf("%s: %v", p, err)
	}
	return tr
}
