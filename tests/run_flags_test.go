package tests

// The --parker-* flags, and the helper executable the run-time stub hands
// the flags that need the image codecs.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/parkerpack/parker/image/trailer"
)

func TestRunFlags(t *testing.T) {
	needRoot(t, "running a packed file")
	f := toolPacked(t)
	r := runFile(t, f, []string{"--parker-help"})
	if r.Code != 0 || !strings.Contains(r.Stdout, "--parker-overlay") {
		t.Errorf("--parker-help: exit %d %q", r.Code, r.Stdout)
	}
	r = runFile(t, f, []string{"--parker-bogus", "exit", "0"})
	if r.Code != 125 || !strings.Contains(r.Stderr, "--parker-bogus") || strings.Count(r.Stderr, "\n") != 1 {
		t.Errorf("unknown flag: exit %d %q", r.Code, r.Stderr)
	}
	// An action's extra arguments are refused as an unknown flag is, not
	// dropped.
	for _, args := range [][]string{{"--parker-info", "extra"}, {"--parker-offset", "extra"},
		{"--parker-help", "extra"}, {"--parker-ls", "-l", "extra"}, {"--parker-extract", filepath.Join(t.TempDir(), "x"), "extra"}} {
		r := runFile(t, f, args)
		if r.Code != 125 || !strings.Contains(r.Stderr, `"extra"`) || strings.Count(r.Stderr, "\n") != 1 || r.Stdout != "" {
			t.Errorf("%q: exit %d %q %q", args, r.Code, r.Stdout, r.Stderr)
		}
	}
	r = runFile(t, f, []string{"--parker-offset"})
	off, err := strconv.ParseUint(strings.TrimSpace(r.Stdout), 10, 64)
	if r.Code != 0 || err != nil || off%trailer.PadSize != 0 {
		t.Errorf("--parker-offset: %q exit %d", r.Stdout, r.Code)
	}
	r = runFile(t, f, []string{"--parker-info", "--json"})
	if cliCanPack(t) {
		// The same object as `parker inspect --json`, byte for byte.
		if want := runParker(t, "", nil, "inspect", "--json", f); r.Stdout != want.Stdout {
			t.Errorf("--parker-info --json differs from parker inspect --json:\n%s\nvs\n%s", r.Stdout, want.Stdout)
		}
	}
	var info map[string]any
	if err := json.Unmarshal([]byte(r.Stdout), &info); err != nil || r.Code != 0 {
		t.Fatalf("--parker-info --json: %v %q", err, r.Stdout)
	}
	for _, k := range []string{"format_version", "target", "offset", "size", "digest", "compression", "block_size", "files", "created_by"} {
		if _, ok := info[k]; !ok {
			t.Errorf("--parker-info --json: no key %q", k)
		}
	}
	if info["target"] != "tool" || uint64(info["offset"].(float64)) != off || !strings.HasPrefix(info["digest"].(string), "sha256:") {
		t.Errorf("--parker-info --json: %v", info)
	}
	if r := runFile(t, f, []string{"--parker-info"}); r.Code != 0 || !strings.Contains(r.Stdout, "target:") {
		t.Errorf("--parker-info: %d %q", r.Code, r.Stdout)
	}
	// The offset is where the kernel and unsquashfs find the image.
	needTool(t, "unsquashfs")
	out, err := exec.Command("unsquashfs", "-o", fmt.Sprint(off), "-l", f).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "squashfs-root/tool") {
		t.Errorf("unsquashfs -o %d: %v\n%s", off, err, out)
	}
}

// TestRunMountFlag: --parker-mount prints a directory that can be entered
// and listed (the packed files, beside the packed file as in a run), leaves
// the host's mount table alone, and leaves nothing behind however it ends.
func TestRunMountFlag(t *testing.T) {
	needRoot(t, "running a packed file")
	f := toolPacked(t)
	for _, end := range []syscall.Signal{syscall.SIGINT, syscall.SIGKILL} {
		t.Run(end.String(), func(t *testing.T) {
			before := snapshot(t, filepath.Dir(f))
			c := exec.Command(f, "--parker-mount")
			out, _ := c.StdoutPipe()
			var stderr bytes.Buffer
			c.Stderr = &stderr
			if err := c.Start(); err != nil {
				t.Fatal(err)
			}
			line, _ := bufio.NewReader(out).ReadString('\n')
			path := strings.TrimSuffix(line, "\n")
			want := fmt.Sprintf("^/proc/[0-9]+/root%s$", regexp.QuoteMeta(filepath.Dir(f)))
			if !regexp.MustCompile(want).MatchString(path) {
				t.Errorf("--parker-mount printed %q, want a path matching %s", line, want)
			}
			// A directory, not a link: what a user can cd into and list.
			fi, err := os.Lstat(path)
			if err != nil || !fi.IsDir() {
				t.Errorf("lstat %s: %v, %v; want a directory", path, fi, err)
			}
			cd, err := exec.Command("sh", "-c", `cd "$1" && cat data.txt && ls`, "sh", path).CombinedOutput()
			if err != nil || string(cd) != "packed data\ndata.txt\nsub\ntool\n" {
				t.Errorf("cd %s && cat data.txt && ls: %v\n%s", path, err, cd)
			}
			mid := snapshot(t, filepath.Dir(f))
			if mid.Mountinfo != before.Mountinfo {
				t.Errorf("--parker-mount changed the host mount table:\n%s", mid.Mountinfo)
			}
			c.Process.Signal(end)
			err = c.Wait()
			if end == syscall.SIGINT && err != nil {
				t.Errorf("--parker-mount ended by SIGINT: %v, stderr %q", err, stderr.String())
			}
			sameTraces(t, before, filepath.Dir(f))
		})
	}
}

func TestRunExtractFlag(t *testing.T) {
	f := toolPacked(t)
	dst := filepath.Join(tempDir(t, "extract"), "out")
	r := runFile(t, f, []string{"--parker-extract", dst})
	if r.Code != 0 {
		t.Fatalf("--parker-extract: exit %d: %s", r.Code, r.Stderr)
	}
	// It needs no privileges (the fallback for users who cannot mount).
	if os.Geteuid() == 0 {
		needTool(t, "setpriv")
		dst2 := filepath.Join(tempDir(t, "extract-nobody"), "out")
		os.Chmod(filepath.Dir(dst2), 0o777)
		openToOthers(t, f)
		out, err := exec.Command("setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups",
			f, "--parker-extract", dst2).CombinedOutput()
		if err != nil {
			t.Errorf("--parker-extract as nobody: %v: %s", err, out)
		} else if b, err := os.ReadFile(filepath.Join(dst2, "data.txt")); err != nil || string(b) != "packed data\n" {
			t.Errorf("extracted as nobody: data.txt %q %v", b, err)
		}
	}
	if b, err := os.ReadFile(filepath.Join(dst, "data.txt")); err != nil || string(b) != "packed data\n" {
		t.Errorf("extracted data.txt: %q %v", b, err)
	}
	// A second extraction is refused, once, with the way out.
	r = runFile(t, f, []string{"--parker-extract", dst})
	if want := ": cannot extract to " + dst + ": it is not empty; remove it or name another DIR: toold --parker-extract DIR\n"; r.Code != 125 ||
		!strings.HasSuffix(r.Stderr, want) || strings.Count(r.Stderr, "\n") != 1 {
		t.Errorf("--parker-extract into a non-empty DIR: exit %d %q, want 125 and %q", r.Code, r.Stderr, want)
	}
	if fi, err := os.Stat(filepath.Join(dst, "tool")); err != nil || fi.Mode()&0o111 == 0 {
		t.Errorf("extracted tool: %v %v", fi, err)
	}
}

// TestRunHelper: the run-time stub starts without the image codecs, and
// hands --parker-info and --parker-extract to the helper executable the
// packed file carries; a file without a helper still runs, and says why it
// cannot describe itself.
func TestRunHelper(t *testing.T) {
	goBin := goTool()
	cmd := exec.Command(goBin, "list", "-deps", "./cmd/parker-stub")
	cmd.Dir = ".."
	deps, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, heavy := range []string{"klauspost", "ulikunitz", "parker/image\n", "spf13/pflag", "x/term", "patternmatcher", "diskfs"} {
		if strings.Contains(string(deps), heavy) {
			t.Errorf("the run-time stub links %s", strings.TrimSpace(heavy))
		}
	}

	needRoot(t, "running a packed file")
	f := toolPacked(t)
	stubBytes, _, payload, tr := packedParts(t, f)
	if tr.HelperSize == 0 {
		t.Fatalf("trailer %+v: want a helper", tr)
	}
	bare := filepath.Join(tempDir(t, "bare"), "toold")
	assemblePacked(t, bare, stubBytes, payload, trailer.Trailer{Target: tr.Target, Compression: tr.Compression})
	if r := runFile(t, bare, []string{"exit", "7"}); r.Code != 7 {
		t.Errorf("stub without a helper: run gave %d %q", r.Code, r.Stderr)
	}
	r := runFile(t, bare, []string{"--parker-info"})
	if r.Code != 125 || !strings.Contains(r.Stderr, "carries no helper") || strings.Count(r.Stderr, "\n") != 1 {
		t.Errorf("stub without a helper: --parker-info gave %d %q", r.Code, r.Stderr)
	}
	// Damaged helper: the ELF header zeroed. One line, 125.
	b, _ := os.ReadFile(f)
	copy(b[tr.HelperOffset:], make([]byte, 64))
	broken := filepath.Join(tempDir(t, "broken"), "toold")
	os.WriteFile(broken, b, 0o755)
	r = runFile(t, broken, []string{"--parker-extract", filepath.Join(t.TempDir(), "x")})
	if r.Code != 125 || !strings.Contains(r.Stderr, "helper") || strings.Count(r.Stderr, "\n") != 1 {
		t.Errorf("damaged helper: --parker-extract gave %d %q", r.Code, r.Stderr)
	}
}

// TestRunSelfStub: a parker built with plain go build (as go install does)
// has no embedded stub and helper; it writes itself as a complete stub,
// which runs the target and reads its own image (no helper).
func TestRunSelfStub(t *testing.T) {
	needRoot(t, "running a packed file")
	goBin := goTool()
	plain := filepath.Join(tempDir(t, "plain"), "parker")
	cmd := exec.Command(goBin, "build", "-trimpath", "-ldflags=-s -w", "-o", plain, "./cmd/parker")
	cmd.Dir = ".."
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	wd := tempDir(t, "selfwd")
	gccBuild(t, "tool.c", filepath.Join(wd, "tool"))
	out := filepath.Join(tempDir(t, "selfout"), "toold")
	c := exec.Command(plain, "-q", "-C", wd, "-o", out, "tool")
	if b, err := c.CombinedOutput(); err != nil {
		t.Fatalf("pack: %v %s", err, b)
	}
	if _, _, _, tr := packedParts(t, out); tr.HelperSize != 0 {
		t.Fatalf("trailer %+v: want no helper", tr)
	}
	if r := runFile(t, out, []string{"exit", "7"}); r.Code != 7 {
		t.Errorf("run: %d %q", r.Code, r.Stderr)
	}
	if r := runFile(t, out, []string{"--parker-info", "--json"}); r.Code != 0 || !strings.Contains(r.Stdout, `"helper_size": 0`) {
		t.Errorf("--parker-info: %d %q %q", r.Code, r.Stdout, r.Stderr)
	}
	if r := runFile(t, out, []string{"--parker-ls", "-l"}); r.Code != 0 || !strings.HasSuffix(r.Stdout, " tool\n") {
		t.Errorf("--parker-ls -l: %d %q %q", r.Code, r.Stdout, r.Stderr)
	}
	dir := filepath.Join(t.TempDir(), "x")
	if r := runFile(t, out, []string{"--parker-extract", dir}); r.Code != 0 {
		t.Errorf("--parker-extract: %d %q", r.Code, r.Stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "tool")); err != nil {
		t.Errorf("extracted: %v", err)
	}
	// Its stub is parker itself: cut short, it is a damaged packed file,
	// not the parker command (which would take "exit" for a TARGET).
	b := readFile(t, out)
	cut := filepath.Join(tempDir(t, "selfcut"), "toold")
	if err := os.WriteFile(cut, b[:len(b)-1], 0o755); err != nil {
		t.Fatal(err)
	}
	if r := runFile(t, cut, []string{"exit", "7"}); r.Code != 125 || r.Stderr != "parker: "+cut+": "+cutShort+"\n" {
		t.Errorf("cut short: exit %d, stderr %q; want 125 and %q", r.Code, r.Stderr, cutShort)
	}
}
