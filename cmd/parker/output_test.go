package main

import (
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"golang.org/x/sys/unix"

	"github.com/parkerpack/parker/image/trailer"
	"github.com/parkerpack/parker/internal/walk/walktest"
)

// An existing output that is not a regular file is refused, and left as it
// was: replacing a device node, a FIFO or a symlink with a packed file is
// never what -o meant. A symlink is not followed, not even to a regular
// file (/dev/stdout is one).
func TestPackOutputNotRegular(t *testing.T) {
	fakeStub(t, 100)
	root := walktest.Tree(t, "app")
	dir := t.TempDir()
	regular := filepath.Join(dir, "regular")
	must(t, os.WriteFile(regular, []byte("keep"), 0o644))

	fifo := filepath.Join(dir, "fifo")
	must(t, unix.Mkfifo(fifo, 0o644))
	link := filepath.Join(dir, "link")
	must(t, os.Symlink("regular", link))
	dangling := filepath.Join(dir, "dangling")
	must(t, os.Symlink("nowhere", dangling))
	sock := filepath.Join(dir, "sock")
	l, err := net.Listen("unix", sock)
	must(t, err)
	defer l.Close()
	cases := []struct{ path, kind string }{
		{fifo, "a FIFO"},
		{link, "a symbolic link"},
		{dangling, "a symbolic link"},
		{sock, "a socket"},
	}
	// A device node in a temp dir is enough to prove the rule; the tests
	// in tests/ also try /dev/full on a throw-away /dev.
	if os.Geteuid() == 0 {
		full := filepath.Join(dir, "full")
		must(t, unix.Mknod(full, unix.S_IFCHR|0o666, int(unix.Mkdev(1, 7))))
		blk := filepath.Join(dir, "blk")
		must(t, unix.Mknod(blk, unix.S_IFBLK|0o600, int(unix.Mkdev(7, 200))))
		cases = append(cases, struct{ path, kind string }{full, "a character device"},
			struct{ path, kind string }{blk, "a block device"})
	} else {
		t.Log("not root: device nodes not tried")
	}
	for _, tt := range cases {
		var before unix.Stat_t
		must(t, unix.Lstat(tt.path, &before))
		code, stderr := packRun(t, "-q", "-C", root, "-o", tt.path, "app")
		want := "parker: output " + tt.path + " is " + tt.kind + "; parker writes only regular files\n"
		if code != exitFail || stderr != want {
			t.Errorf("-o %s = %d, %q; want %d, %q", filepath.Base(tt.path), code, stderr, exitFail, want)
		}
		var after unix.Stat_t
		if err := unix.Lstat(tt.path, &after); err != nil || after.Ino != before.Ino || after.Mode != before.Mode {
			t.Errorf("-o %s: replaced (mode %o -> %o, %v)", filepath.Base(tt.path), before.Mode, after.Mode, err)
		}
	}
	if b, err := os.ReadFile(regular); err != nil || string(b) != "keep" {
		t.Errorf("the symlink's target changed: %q, %v", b, err)
	}
	if names, _ := filepath.Glob(filepath.Join(dir, ".*")); len(names) != 0 {
		t.Errorf("temp files left: %q", names)
	}
	// Nor is one that appears while parker packs.
	late := filepath.Join(dir, "late")
	testHookFinish = func() { must(t, unix.Mkfifo(late, 0o644)) }
	code, stderr := packRun(t, "-q", "-C", root, "-o", late, "app")
	testHookFinish = nil
	if want := "parker: output " + late + " is a FIFO; parker writes only regular files\n"; code != exitFail || stderr != want {
		t.Errorf("-o late = %d, %q; want %d, %q", code, stderr, exitFail, want)
	}
	if fi, err := os.Lstat(late); err != nil || fi.Mode()&os.ModeNamedPipe == 0 {
		t.Errorf("-o late: the FIFO was replaced: %v, %v", fi, err)
	}
	if names, _ := filepath.Glob(filepath.Join(dir, ".*")); len(names) != 0 {
		t.Errorf("temp files left: %q", names)
	}
	// An existing regular file is still replaced.
	if code, stderr := packRun(t, "-q", "-C", root, "-o", regular, "app"); code != exitOK {
		t.Errorf("-o regular = %d, %q", code, stderr)
	}
}

// Any output name the file system accepts works, up to its 255-byte limit,
// though the temp file's name adds to it; and the walk still leaves out
// the output and leftover temp files of that name.
func TestPackLongOutputName(t *testing.T) {
	fakeStub(t, 100)
	target := strings.Repeat("b", 254) // its default output is 255 bytes
	root := walktest.Tree(t, target)
	t.Chdir(root)
	for i := range 2 {
		if code, stderr := packRun(t, "-q", target); code != exitOK {
			t.Fatalf("pack %d: %d %q", i, code, stderr)
		}
	}
	_, paths := imagePaths(t, target+"d")
	if want := []string{".", target}; !slices.Equal(paths, want) {
		t.Errorf("image holds %q, want %q", paths, want)
	}

	// A 255-byte name given with -o, with multi-byte characters where the
	// temp name is cut, and a leftover temp file of it.
	out := strings.Repeat("é", 127) + "d"
	prefix := tmpPrefix(root, out)
	if len(prefix)+tmpRandomLen > 255 || !utf8.ValidString(prefix) || !strings.HasSuffix(prefix, tmpInfix) {
		t.Fatalf("tmpPrefix(%d bytes) = %q (%d bytes)", len(out), prefix, len(prefix))
	}
	must(t, os.WriteFile(prefix+"12345678", nil, 0o600))
	for i := range 2 {
		if code, stderr := packRun(t, "-q", "-o", out, target); code != exitOK {
			t.Fatalf("pack -o %d: %d %q", i, code, stderr)
		}
	}
	_, paths = imagePaths(t, out)
	if want := []string{".", target}; !slices.Equal(paths, want) {
		t.Errorf("image holds %q, want %q", paths, want)
	}
	if names, _ := filepath.Glob(filepath.Join(root, ".*")); len(names) != 1 {
		t.Errorf("temp files: %q, want only the planted one", names)
	}
}

// Re-packing in the working directory says nothing about leaving the
// output out of its own input; earlier packed files there are left out
// too, with a count by default and a line each with -v, unless one is
// the target.
func TestPackLeavesOutPackedFiles(t *testing.T) {
	fakeStub(t, 100)
	root := walktest.Tree(t, "app", "old/", "small")
	t.Chdir(root)
	pack := func(args ...string) string {
		t.Helper()
		code, stderr := packRun(t, args...)
		if code != exitOK {
			t.Fatalf("parker %q = %d, %q", args, code, stderr)
		}
		return stderr
	}
	// Two earlier outputs, one with a damaged trailer, and a small file
	// that merely ends in the magic.
	pack("-q", "-o", "old/appd", "app")
	pack("-q", "-o", "old/broken", "app")
	b, err := os.ReadFile("old/broken")
	must(t, err)
	b[len(b)-trailer.FooterSize-1] ^= 0xff
	must(t, os.WriteFile("old/broken", b, 0o755))
	must(t, os.WriteFile("small", []byte("x"+trailer.Magic), 0o755))

	pack("-q", "app") // writes appd, which the next packs replace
	stderr := pack("app")
	if lines := strings.Split(stderr, "\n"); len(lines) != 3 ||
		lines[0] != "parker: left out 2 packed files; run with -v to see them" || !strings.HasPrefix(lines[1], "appd: ") {
		t.Errorf("re-pack said %q; want the count of packed files and the summary", stderr)
	}
	_, paths := imagePaths(t, "appd")
	if want := []string{".", "app", "old", "small"}; !slices.Equal(paths, want) {
		t.Errorf("image holds %q, want %q", paths, want)
	}
	stderr = pack("-v", "app")
	for _, want := range []string{
		"\nparker: appd is the output; left out\n",
		"\nparker: warning: old/appd is a packed file; left out\n",
		"\nparker: warning: old/broken is a packed file; left out\n",
	} {
		if !strings.Contains("\n"+stderr, want) {
			t.Errorf("-v: stderr lacks %q:\n%s", want[1:], stderr)
		}
	}
	if strings.Contains(stderr, "run with -v") || strings.Contains(stderr, "warning: appd") {
		t.Errorf("-v: %s", stderr)
	}
	// A packed file named as the target is what the user asked for.
	out := filepath.Join(t.TempDir(), "twice")
	if stderr := pack("-o", out, "old/appd"); !strings.HasPrefix(stderr, "parker: left out 2 packed files;") {
		t.Errorf("packing a packed file: %q; want appd and old/broken left out", stderr)
	}
	_, paths = imagePaths(t, out)
	if want := []string{".", "app", "old", "old/appd", "small"}; !slices.Equal(paths, want) {
		t.Errorf("image holds %q, want %q", paths, want)
	}
}
