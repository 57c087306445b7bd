package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/parkerpack/parker/image"
	"github.com/parkerpack/parker/image/trailer"
	"github.com/parkerpack/parker/internal/walk"
	"github.com/parkerpack/parker/internal/walk/walktest"
	"github.com/parkerpack/parker/stub"
)

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// fakeStub stands in for parker's own executable, so packing in tests copies
// a few KiB instead of the test binary.
func fakeStub(t *testing.T, size int) []byte {
	t.Helper()
	b := make([]byte, size)
	for i := range b {
		b[i] = byte(i*7 + 1)
	}
	copy(b, "\x7fELF") // as a stub begins: the mark goes in its header
	p := filepath.Join(t.TempDir(), "stub")
	must(t, os.WriteFile(p, b, 0o755))
	old := stubSource
	stubSource = func() (string, error) { return p, nil }
	t.Cleanup(func() { stubSource = old })
	return b
}

// packRun runs the command line in-process and returns status and stderr.
func packRun(t *testing.T, args ...string) (int, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	return code, errb.String()
}

// imagePaths lists the packed file's image with our reader.
func imagePaths(t *testing.T, file string) (*trailer.Trailer, []string) {
	t.Helper()
	f, err := os.Open(file)
	must(t, err)
	defer f.Close()
	fi, err := f.Stat()
	must(t, err)
	tr, err := trailer.Read(f, fi.Size())
	must(t, err)
	r, err := image.NewReader(io.NewSectionReader(f, int64(tr.Offset), int64(tr.Size)), int64(tr.Size))
	must(t, err)
	var paths []string
	must(t, r.Walk(func(n *image.Node) error { paths = append(paths, n.Path); return nil }))
	slices.Sort(paths)
	return tr, paths
}

func TestPack(t *testing.T) {
	stub := fakeStub(t, 5000)
	root := walktest.Tree(t, "ipservice", "assets/ipdb.dat", "logs/a.log", "run -> ipservice")
	must(t, os.WriteFile(filepath.Join(root, walk.IgnoreFile), []byte("logs\n"), 0o644))
	out := filepath.Join(t.TempDir(), "ipserviced")
	code, stderr := packRun(t, "-C", root, "-o", out, "-q", "--compression", "gzip", "--level", "9", "--block-size", "64K", "run")
	if code != 0 || stderr != "" {
		t.Fatalf("pack: %d %q", code, stderr)
	}
	data, err := os.ReadFile(out)
	must(t, err)
	fi, err := os.Stat(out)
	must(t, err)
	if fi.Mode().Perm() != 0o755 {
		t.Errorf("mode %v", fi.Mode())
	}
	tr, paths := imagePaths(t, out)
	if tr.Offset != 8192 || tr.StubSize != 5000 || tr.Target != "run" || tr.Compression != "gzip" ||
		tr.Level != 9 || tr.BlockSize != 64<<10 || !strings.HasPrefix(tr.CreatedBy, "parker ") {
		t.Errorf("trailer %+v", tr)
	}
	// The stub as given, with the mark in its ELF padding and nowhere else.
	marked := slices.Clone(stub)
	copy(marked[trailer.MarkOffset:], trailer.Magic[:trailer.MarkSize])
	if !bytes.Equal(data[:5000], marked) || !trailer.HasMark(data) || bytes.Count(data[5000:8192], []byte{0}) != 8192-5000 {
		t.Error("stub or padding differs")
	}
	if sha256.Sum256(data[tr.Offset:tr.Offset+tr.Size]) != tr.Digest {
		t.Error("digest does not match the payload")
	}
	if want := []string{".", ".parkerignore", "assets", "assets/ipdb.dat", "ipservice", "run"}; !slices.Equal(paths, want) {
		t.Errorf("image holds %q, want %q", paths, want)
	}
	if names, _ := filepath.Glob(filepath.Join(filepath.Dir(out), ".*")); len(names) != 0 {
		t.Errorf("temp files left: %q", names)
	}

	// unsquashfs, the independent oracle, reads the payload at its offset.
	if _, err := exec.LookPath("unsquashfs"); err != nil {
		t.Log("unsquashfs not installed; oracle check skipped (make deps installs it)")
		return
	}
	list, err := exec.Command("unsquashfs", "-o", strconv.FormatUint(tr.Offset, 10), "-lln", out).CombinedOutput()
	if err != nil {
		t.Fatalf("unsquashfs: %v\n%s", err, list)
	}
	for _, want := range []string{"-rwxr-xr-x 0/0 ", "squashfs-root/assets/ipdb.dat", "squashfs-root/run -> ipservice"} {
		if !strings.Contains(string(list), want) {
			t.Errorf("unsquashfs -lln lacks %q:\n%s", want, list)
		}
	}
}

// The default output lands in the current directory; packing twice in the
// working directory itself must not pack the previous output.
func TestPackOutputInsideWorkdir(t *testing.T) {
	fakeStub(t, 100)
	root := walktest.Tree(t, "bin/python", "server.py")
	t.Chdir(root)
	// A leftover of an interrupted run, and a stranger's dot file.
	must(t, os.WriteFile(".pythond.parker-tmp-123", []byte("junk"), 0o600))
	must(t, os.WriteFile(".keep", nil, 0o600))
	for i := 0; i < 2; i++ {
		if code, stderr := packRun(t, "-q", "bin/python"); code != 0 {
			t.Fatalf("pack %d: %d %q", i, code, stderr)
		}
	}
	_, paths := imagePaths(t, "pythond")
	if want := []string{".", ".keep", "bin", "bin/python", "server.py"}; !slices.Equal(paths, want) {
		t.Errorf("image holds %q, want %q", paths, want)
	}
}

// A failure half-way leaves no temp file and an existing output as it was.
func TestPackFailureKeepsOutput(t *testing.T) {
	fakeStub(t, 100)
	root := walktest.Tree(t, "app", "big")
	must(t, os.WriteFile(filepath.Join(root, "big"), bytes.Repeat([]byte("x"), 300<<10), 0o644))
	dir := t.TempDir()
	out := filepath.Join(dir, "appd")
	must(t, os.WriteFile(out, []byte("previous"), 0o755))
	testHookFinish = func() { must(t, os.Truncate(filepath.Join(root, "big"), 10)) }
	defer func() { testHookFinish = nil }()
	code, stderr := packRun(t, "-C", root, "-o", out, "app")
	if code != 1 || !strings.HasPrefix(stderr, "parker: ") || strings.Count(stderr, "\n") != 1 {
		t.Errorf("pack = %d, %q; want 1 and one line", code, stderr)
	}
	if strings.Contains(stderr, tmpInfix) {
		t.Errorf("message names the temp file: %q", stderr)
	}
	if b, _ := os.ReadFile(out); string(b) != "previous" {
		t.Errorf("output changed: %q", b)
	}
	if names, _ := filepath.Glob(filepath.Join(dir, ".*")); len(names) != 0 {
		t.Errorf("temp files left: %q", names)
	}
}

// A failure to write the output names the output, not the temp file,
// whichever stage meets it, and leaves nothing behind. The file size limit
// stands in for a full disk.
func TestPackWriteError(t *testing.T) {
	fakeStub(t, 5000)
	root := walktest.Tree(t, "app", "big")
	noise := make([]byte, 256<<10)
	rand.NewChaCha8([32]byte{1}).Read(noise)
	must(t, os.WriteFile(filepath.Join(root, "big"), noise, 0o644))
	dir := t.TempDir()
	out := filepath.Join(dir, "appd")
	if code, stderr := packRun(t, "-q", "-C", root, "-o", out, "app"); code != 0 {
		t.Fatal(stderr)
	}
	tr, _ := imagePaths(t, out)
	must(t, os.Remove(out))

	var old unix.Rlimit
	must(t, unix.Getrlimit(unix.RLIMIT_FSIZE, &old))
	for _, tt := range []struct {
		stage string
		limit uint64
	}{
		{"stub", 1000},
		{"image", 64 << 10},
		{"trailer", tr.Offset + tr.Size},
	} {
		// Go ignores SIGXFSZ, so a write past the limit fails with EFBIG.
		must(t, unix.Setrlimit(unix.RLIMIT_FSIZE, &unix.Rlimit{Cur: tt.limit, Max: old.Max}))
		code, stderr := packRun(t, "-q", "-C", root, "-o", out, "app")
		must(t, unix.Setrlimit(unix.RLIMIT_FSIZE, &old))
		if want := "parker: write " + out + ": file too large\n"; code != 1 || stderr != want {
			t.Errorf("%s: pack = %d, %q; want 1, %q", tt.stage, code, stderr, want)
		}
		if names, _ := os.ReadDir(dir); len(names) != 0 {
			t.Errorf("%s: left behind: %v", tt.stage, names)
		}
	}
}

func TestPackErrors(t *testing.T) {
	fakeStub(t, 100)
	root := walktest.Tree(t, "app", "notexec", "sub/x")
	must(t, os.Chmod(filepath.Join(root, "notexec"), 0o644))
	outDir := t.TempDir()
	for _, tt := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"missing"}, 1, "parker: target missing: no such file"},
		{[]string{"sub"}, 1, "is a directory"},
		{[]string{"--exclude", "app", "app"}, 1, "excluded"},
		{[]string{"-o", filepath.Join(root, "app"), "app"}, 1, "would replace the target"},
		{[]string{"-o", filepath.Join(root, "nodir", "x"), "app"}, 1, "nodir/x: no such file or directory"},
		{[]string{"-o", outDir, "app"}, 1, "is a directory"},
		{[]string{"-o", filepath.Join(outDir, "nd"), "notexec"}, 0, "parker: warning: target notexec is not executable"},
	} {
		code, stderr := packRun(t, append([]string{"-C", root}, tt.args...)...)
		if code != tt.code || !strings.Contains(stderr, tt.want) {
			t.Errorf("parker %q = %d, %q; want %d, %q", tt.args, code, stderr, tt.code, tt.want)
		}
	}
	if code, stderr := packRun(t, "-C", filepath.Join(root, "nope"), "app"); code != 1 || !strings.Contains(stderr, "working directory") {
		t.Errorf("missing workdir: %d %q", code, stderr)
	}
}

func TestPackSummary(t *testing.T) {
	fakeStub(t, 100)
	root := walktest.Tree(t, "app")
	out := filepath.Join(t.TempDir(), "appd")
	t.Setenv("SOURCE_DATE_EPOCH", "1000000000")
	code, stderr := packRun(t, "-C", root, "-o", out, "app")
	if code != 0 || !strings.HasPrefix(stderr, out+": 1 file, 3 B -> 4.0 KiB, zstd-3, ") ||
		!strings.Contains(stderr, "sha256:") || strings.Count(stderr, "\n") != 1 {
		t.Errorf("summary %q", stderr)
	}
	// The stages count in good English.
	code, stderr = packRun(t, "-v", "-C", root, "-o", out, "app")
	for _, want := range []string{"parker: walk: 2 entries, 1 file, 3 B (", "parker: image: 4.0 KiB, 2 inodes, 0 duplicates, 1 fragment block ("} {
		if code != 0 || !strings.Contains(stderr, want) {
			t.Errorf("-v: %d, stderr lacks %q:\n%s", code, want, stderr)
		}
	}
	for n, want := range map[int]string{0: "0 entries", 1: "1 entry", 2: "2 entries"} {
		if got := plural(n, "entry"); got != want {
			t.Errorf("plural(%d, entry) = %q", n, got)
		}
	}
	if got := plural(2, "day"); got != "2 days" {
		t.Errorf("plural(2, day) = %q", got)
	}
	// One warning (a leftover temp file, left out) is counted, not shown.
	must(t, os.WriteFile(filepath.Join(root, ".appd"+tmpInfix+"1"), nil, 0o600))
	code, stderr = packRun(t, "-C", root, "-o", filepath.Join(root, "appd"), "app")
	if !strings.HasPrefix(stderr, "parker: 1 warning; run with -v to see it\n") {
		t.Errorf("pack with one warning: %d %q", code, stderr)
	}
	var stdout, errb bytes.Buffer
	if code := run([]string{"inspect", "--json", out}, &stdout, &errb); code != 0 {
		t.Fatalf("inspect: %d %s", code, errb.String())
	}
	var m map[string]any
	must(t, json.Unmarshal(stdout.Bytes(), &m))
	if m["mtime"] != float64(1000000000) {
		t.Errorf("superblock time %v, want SOURCE_DATE_EPOCH", m["mtime"])
	}
}

// The summary reads well from an empty input to a large one; the README's
// example is the last case.
func TestSummary(t *testing.T) {
	var digest [32]byte
	digest[0] = 0xab
	hash := ", sha256:ab" + strings.Repeat("00", 31)
	zstd := image.DefaultOptions()
	xz := zstd
	xz.Compression, xz.Level = image.XZ, 0
	for _, tt := range []struct {
		files     int
		in, image int64
		opt       image.Options
		d         time.Duration
		want      string
	}{
		{0, 0, 4096, zstd, 0, "out: 0 files, 0 B -> 4.0 KiB, zstd-3, 0.0s"},
		{1, 18, 4096, zstd, 20 * time.Millisecond, "out: 1 file, 18 B -> 4.0 KiB, zstd-3, 0.0s"},
		{2, 4096, 4096, xz, time.Second, "out: 2 files, 4.0 KiB -> 4.0 KiB, xz, 1.0s"},
		{3, 100 << 20, 100<<20 + 8192, zstd, time.Second, "out: 3 files, 100.0 MiB -> 100.0 MiB, zstd-3, 1.0s"},
		{1234, 283220378, 64277299, zstd, 3200 * time.Millisecond, "out: 1234 files, 270.1 MiB -> 61.3 MiB (22.7%), zstd-3, 3.2s"},
	} {
		st := image.Stats{Files: tt.files, InputBytes: tt.in, Size: tt.image}
		if got := summary("out", st, tt.opt, tt.d, digest); got != tt.want+hash {
			t.Errorf("summary(%d files, %d -> %d) =\n %q, want\n %q", tt.files, tt.in, tt.image, got, tt.want+hash)
		}
	}
}

func TestInspect(t *testing.T) {
	fakeStub(t, 4096)
	root := walktest.Tree(t, "app", "data")
	out := filepath.Join(t.TempDir(), "appd")
	if code, stderr := packRun(t, "-q", "-C", root, "-o", out, "app"); code != 0 {
		t.Fatal(stderr)
	}
	var stdout, stderr bytes.Buffer
	if code := run([]string{"inspect", "--json", out}, &stdout, &stderr); code != 0 {
		t.Fatalf("inspect --json: %d %s", code, stderr.String())
	}
	var m map[string]any
	must(t, json.Unmarshal(stdout.Bytes(), &m))
	for _, k := range []string{"format_version", "target", "offset", "size", "digest", "compression", "block_size", "files", "created_by", "stub_size", "level", "inodes", "mtime"} {
		if _, ok := m[k]; !ok {
			t.Errorf("inspect --json lacks %q", k)
		}
	}
	if m["target"] != "app" || m["offset"] != float64(4096) || m["files"] != float64(3) ||
		!strings.HasPrefix(m["digest"].(string), "sha256:") || m["digest_ok"] != true || m["format_version"] != float64(trailer.Version) {
		t.Errorf("inspect --json: %s", stdout.String())
	}
	stdout.Reset()
	// The text says what it counts: inodes, not files, which the pack
	// summary counts (regular files).
	if code := run([]string{"inspect", out}, &stdout, &stderr); code != 0 || !strings.Contains(stdout.String(), "target:         app\n") ||
		!strings.Contains(stdout.String(), "\ninodes:         3\n") || strings.Contains(stdout.String(), "files:") {
		t.Errorf("inspect: %d\n%s", code, stdout.String())
	}

	data, err := os.ReadFile(out)
	must(t, err)
	damage := func(name string, off int) string {
		b := slices.Clone(data)
		b[off] ^= 0xff
		p := filepath.Join(t.TempDir(), name)
		must(t, os.WriteFile(p, b, 0o755))
		return p
	}
	for _, tt := range []struct {
		file      string
		stdout    string
		stderrHas string
	}{
		{damage("superblock", 4096), "target:", "the image could not be read"},
		{damage("payload", 4096+200), "MISMATCH", "digest mismatch"},
		{damage("trailer", len(data)-20), "", "damaged parker trailer"},
		{filepath.Join(root, "app"), "", "not a packed file"},
	} {
		stdout.Reset()
		stderr.Reset()
		code := run([]string{"inspect", tt.file}, &stdout, &stderr)
		if code != 1 || !strings.Contains(stdout.String(), tt.stdout) || !strings.Contains(stderr.String(), tt.stderrHas) {
			t.Errorf("inspect %s = %d\nstdout %s\nstderr %s", filepath.Base(tt.file), code, stdout.String(), stderr.String())
		}
	}
}

// start runs the stub for a packed file, the command line for a plain one,
// and exits 125 with one line for a damaged trailer.
func TestStart(t *testing.T) {
	fakeStub(t, 100)
	root := walktest.Tree(t, "app")
	out := filepath.Join(t.TempDir(), "appd")
	if code, stderr := packRun(t, "-q", "-C", root, "-o", out, "app"); code != 0 {
		t.Fatal(stderr)
	}
	var got *trailer.Trailer
	var gotArgs []string
	old := runStub
	runStub = func(self string, _ *os.File, tr *trailer.Trailer, args []string) int {
		got, gotArgs = tr, args
		return 42
	}
	defer func() { runStub = old }()

	var stdout, stderr bytes.Buffer
	if code := start(out, []string{out, "a", "--b"}, &stdout, &stderr); code != 42 || got == nil || got.Target != "app" ||
		!slices.Equal(gotArgs, []string{out, "a", "--b"}) {
		t.Errorf("packed: %d, %+v, %q", code, got, gotArgs)
	}
	if code := start(filepath.Join(root, "app"), []string{"parker", "--version"}, &stdout, &stderr); code != 0 ||
		!strings.HasPrefix(stdout.String(), "parker ") {
		t.Errorf("plain: %d, %q", code, stdout.String())
	}
	data, err := os.ReadFile(out)
	must(t, err)
	data[len(data)-20] ^= 1
	bad := filepath.Join(t.TempDir(), "bad")
	must(t, os.WriteFile(bad, data, 0o755))
	stderr.Reset()
	if code := start(bad, []string{bad}, &stdout, &stderr); code != 125 || strings.Count(stderr.String(), "\n") != 1 ||
		!strings.Contains(stderr.String(), "damaged parker trailer") {
		t.Errorf("damaged: %d, %q", code, stderr.String())
	}
}

func TestOwnTrailer(t *testing.T) {
	fakeStub(t, 100)
	root := walktest.Tree(t, "app")
	out := filepath.Join(t.TempDir(), "appd")
	if code, stderr := packRun(t, "-q", "-C", root, "-o", out, "app"); code != 0 {
		t.Fatal(stderr)
	}
	if f, tr, err := stub.OpenSelf(out); err != nil || tr.Target != "app" {
		t.Errorf("stub.OpenSelf(packed) = %v, %v", tr, err)
	} else {
		f.Close()
	}
	if _, _, err := stub.OpenSelf(filepath.Join(root, "app")); !errors.Is(err, trailer.ErrNoTrailer) {
		t.Errorf("stub.OpenSelf(plain) = %v", err)
	}
	// Packing with a parker taken from a packed file copies only its stub.
	stubSource = func() (string, error) { return out, nil }
	out2 := filepath.Join(t.TempDir(), "again")
	if code, stderr := packRun(t, "-q", "-C", root, "-o", out2, "app"); code != 0 {
		t.Fatal(stderr)
	}
	if f, tr, err := stub.OpenSelf(out2); err != nil || tr.StubSize != 100 {
		t.Errorf("repacked: %+v, %v", tr, err)
	} else {
		f.Close()
	}
}
