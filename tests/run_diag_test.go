package tests

// What a packed file says when its target cannot start although it is
// there: its image cannot be read (a damaged payload: parker's failure,
// 125), or the interpreter it names is missing (127, naming the
// interpreter, as bash's "required file not found" does). The C stub hands
// such a run to the helper, which says why; the Go stub says it itself.

import (
	"bytes"
	"debug/elf"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/parkerpack/parker/image/trailer"
)

// zstdMagic starts every zstd frame, so every compressed block of a zstd
// squashfs image.
var zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}

// superblockSize is the squashfs superblock's: the data blocks follow it.
const superblockSize = 96

// TestRunDamagedPayload: four bytes of the target's only data block
// overwritten, so that the kernel cannot decompress it: the run says the
// packed file is damaged, points to --parker-verify, exits 125, and leaves
// nothing behind.
func TestRunDamagedPayload(t *testing.T) {
	needRoot(t, "running a packed file")
	wd := tempDir(t, "damaged-wd")
	gccBuild(t, "tool.c", filepath.Join(wd, "tool"))
	f := runPack(t, wd, "tool", filepath.Join(tempDir(t, "damaged-out"), "toold"))
	if r := runFile(t, f, []string{"exit", "7"}); r.Code != 7 {
		t.Fatalf("intact: exit %d, stderr %q", r.Code, r.Stderr)
	}
	data, err := os.ReadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := trailer.Read(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	// The workdir holds the target alone, so the first compressed block
	// after the superblock holds its bytes.
	payload := data[tr.Offset : tr.Offset+tr.Size]
	at := bytes.Index(payload[superblockSize:], zstdMagic)
	if at < 0 {
		t.Fatal("no zstd block in the payload")
	}
	copy(payload[superblockSize+at:], []byte{0xde, 0xad, 0xbe, 0xef})
	if err := os.WriteFile(f, data, 0o755); err != nil {
		t.Fatal(err)
	}

	before := snapshot(t, filepath.Dir(f))
	r := runFile(t, f, []string{"exit", "0"})
	want := "parker: " + f + ": the packed file is damaged (reading tool: input/output error); check it with " +
		f + " --parker-verify\n"
	if r.Code != 125 || r.Stderr != want {
		t.Errorf("damaged payload: exit %d, stderr %q; want 125, %q", r.Code, r.Stderr, want)
	}
	sameTraces(t, before, filepath.Dir(f))
	if r := runFile(t, f, []string{"--parker-verify", "exit", "0"}); r.Code != 125 || !strings.Contains(r.Stderr, "digest mismatch") {
		t.Errorf("--parker-verify: exit %d, stderr %q", r.Code, r.Stderr)
	}
}

// TestRunMissingInterpreter: a #! script and an ELF executable whose
// interpreters are missing exit 127 with one line naming the interpreter,
// not the target, which is there; for the ELF one's loader, it suggests
// --closure.
func TestRunMissingInterpreter(t *testing.T) {
	needRoot(t, "running a packed file")
	script := packScript(t, "badshebang", "#!/usr/bin/nope -e\necho unreachable\n", nil)

	wd := tempDir(t, "badelf-wd")
	gccBuild(t, "tool.c", filepath.Join(wd, "tool"))
	const loader = "/nonexistent/ld.so"
	patchInterp(t, filepath.Join(wd, "tool"), loader)
	binary := runPack(t, wd, "tool", filepath.Join(tempDir(t, "badelf-out"), "toold"))

	for _, tc := range []struct{ file, target, why string }{
		{script, "badshebang", "its interpreter /usr/bin/nope is missing"},
		{binary, "tool", "its loader " + loader + " (ELF interpreter) is missing here; pack it with parker --closure to carry its loader and libraries"},
	} {
		before := snapshot(t, filepath.Dir(tc.file))
		r := runFile(t, tc.file, nil)
		want := "parker: " + tc.file + ": cannot run " + tc.target + ": " + tc.why + "\n"
		if r.Code != 127 || r.Stderr != want {
			t.Errorf("%s: exit %d, stderr %q; want 127, %q", tc.target, r.Code, r.Stderr, want)
		}
		sameTraces(t, before, filepath.Dir(tc.file))
	}
}

// patchInterp replaces the PT_INTERP path of the dynamic executable at
// path with interp, which must be no longer.
func patchInterp(t *testing.T, path, interp string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	f, err := elf.NewFile(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			if uint64(len(interp)) >= p.Filesz {
				t.Fatalf("%s: interpreter path of %d bytes, no room for %q", path, p.Filesz, interp)
			}
			field := b[p.Off : p.Off+p.Filesz]
			clear(field)
			copy(field, interp)
			if err := os.WriteFile(path, b, 0o755); err != nil {
				t.Fatal(err)
			}
			return
		}
	}
	t.Fatalf("%s is not dynamically linked: no PT_INTERP to patch", path)
}

// TestRunDiagOnOverlay: the same diagnosis for a packed file in a directory
// that is itself on overlayfs (a container's root file system). The C stub
// must take its view down before the helper mounts its own: an overlay on
// top of it would be one level deeper than the kernel stacks file systems.
func TestRunDiagOnOverlay(t *testing.T) {
	needRoot(t, "mounting an overlay")
	needTool(t, "unshare")
	f := packScript(t, "badshebang", "#!/usr/bin/nope\n", nil)
	d := tempDir(t, "ovl")
	for _, sub := range []string{"lower", "upper", "work", "merged"} {
		os.Mkdir(filepath.Join(d, sub), 0o755)
	}
	b, err := os.ReadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(d, "lower", "badshebangd"), b, 0o755)
	merged := filepath.Join(d, "merged")
	// In a mount namespace of its own, which takes the overlay with it.
	script := `mount --make-rprivate / && mount -t overlay overlay -o "lowerdir=$1/lower,upperdir=$1/upper,workdir=$1/work" "$1/merged" && exec "$1/merged/badshebangd"`
	r := runFile(t, "unshare", []string{"-m", "sh", "-c", script, "sh", d})
	want := "parker: " + merged + "/badshebangd: cannot run badshebang: its interpreter /usr/bin/nope is missing\n"
	if r.Code != 127 || r.Stderr != want {
		t.Errorf("on overlayfs: exit %d, stderr %q; want 127, %q", r.Code, r.Stderr, want)
	}
}
