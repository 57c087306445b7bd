package mountns

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/parkerpack/parker/internal/testenv"
	"golang.org/x/sys/unix"
)

// The fallbacks for older kernels, forced on this one: the two-step loop
// attach of kernels before 5.8 (no LOOP_CONFIGURE) and the joined,
// escaped "lowerdir" option of kernels before 6.5 (no "lowerdir+").

func needRoot(t *testing.T) { testenv.NeedRoot(t, "attaching loop devices and mounting") }

func TestLegacyLoopAttach(t *testing.T) {
	needRoot(t)
	img, err := os.ReadFile("../image/testdata/zstd.sqfs")
	if err != nil {
		t.Fatal(err)
	}
	// Padded to 4096 as parker pads its payloads (a loop device's size is
	// whole sectors), and placed between junk, as in a packed file: the
	// device must show exactly its bytes.
	img = append(img, make([]byte, (4096-len(img)%4096)%4096)...)
	const off = 8192
	junk := bytes.Repeat([]byte("X"), off)
	path := filepath.Join(t.TempDir(), "packed")
	if err := os.WriteFile(path, append(append(junk, img...), junk...), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ops := sysLoop
	ops.configure = func(int, int, uint64, uint64, uint32) error { return unix.ENOTTY }
	l, err := attachLoop(ops, int(f.Fd()), off, uint64(len(img)))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	sys := "/sys/block/" + filepath.Base(l.Dev)
	for file, want := range map[string]string{"/loop/offset": strconv.Itoa(off), "/loop/sizelimit": strconv.Itoa(len(img)),
		"/ro": "1", "/loop/autoclear": "1", "/loop/backing_file": path} {
		b, err := os.ReadFile(sys + file)
		if got := strings.TrimSpace(string(b)); err != nil || got != want {
			t.Errorf("%s%s = %q (%v), want %q", sys, file, got, err, want)
		}
	}
	sq, err := MountSquashfs(l.Dev)
	if err != nil {
		t.Fatalf("mount the squashfs on the legacy-attached device: %v", err)
	}
	defer unix.Close(sq)
	entries, err := os.ReadDir(FDPath(sq))
	if err != nil || len(entries) == 0 {
		t.Errorf("image root: %d entries, %v", len(entries), err)
	}
}

func TestLegacyLowerdir(t *testing.T) {
	needRoot(t)
	base := t.TempDir()
	// Layers whose paths hold every character the joined option splits on.
	top := filepath.Join(base, `a:b,c\d`)
	bottom := filepath.Join(base, "second: layer")
	for dir, files := range map[string]map[string]string{
		top:    {"both.txt": "top"},
		bottom: {"both.txt": "bottom", "only.txt": "bottom only"},
	} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, data := range files {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	tmp, err := MountTmpfs(0o700)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(tmp)
	for _, d := range []string{"upper", "work"} {
		if err := unix.Mkdirat(tmp, d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	lowerdirPlus = false
	defer func() { lowerdirPlus = true }()
	ov, err := MountOverlay([]string{top, bottom}, FDPath(tmp)+"/upper", FDPath(tmp)+"/work")
	if err != nil {
		t.Fatalf("overlay with the joined lowerdir option: %v", err)
	}
	defer unix.Close(ov)
	for name, want := range map[string]string{"both.txt": "top", "only.txt": "bottom only"} {
		b, err := os.ReadFile(filepath.Join(FDPath(ov), name))
		if err != nil || string(b) != want {
			t.Errorf("%s in the overlay: %q, %v; want %q", name, b, err, want)
		}
	}
}
