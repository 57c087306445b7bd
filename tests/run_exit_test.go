package tests

// How a run ends: with the target's exit status, by the signal that killed
// the target, or, when the target cannot run, with the runtime's own status
// (125, 126, 127) and one line on stderr.

import (
	"bytes"
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

func TestRunExitCodes(t *testing.T) {
	needRoot(t, "running a packed file")
	f := toolPacked(t)
	for code := 0; code <= 255; code++ {
		r := runFile(t, f, []string{"exit", strconv.Itoa(code)})
		if r.Code != code || r.Signal != 0 {
			t.Errorf("exit %d: got status %d signal %v, stderr %q", code, r.Code, r.Signal, r.Stderr)
		}
	}
}

func TestRunDeathBySignal(t *testing.T) {
	needRoot(t, "running a packed file")
	f := toolPacked(t)
	for _, sig := range []syscall.Signal{syscall.SIGHUP, syscall.SIGINT, syscall.SIGQUIT, syscall.SIGABRT,
		syscall.SIGKILL, syscall.SIGUSR1, syscall.SIGSEGV, syscall.SIGPIPE, syscall.SIGTERM, syscall.Signal(40)} {
		r := runFile(t, f, []string{"raise", strconv.Itoa(int(sig))})
		if r.Signal != sig {
			t.Errorf("target killed by %v: caller saw status %d signal %v (stderr %q)", sig, r.Code, r.Signal, r.Stderr)
		}
	}
	// Through a shell, as a user sees it: $? is 128+N.
	out, _ := exec.Command("sh", "-c", f+" raise 15; echo $?").Output()
	if strings.TrimSpace(string(out)) != "143" {
		t.Errorf("sh: $? after SIGTERM = %q, want 143", out)
	}
}

func TestRunLaunchFailures(t *testing.T) {
	needRoot(t, "running a packed file")
	// 127: the target's interpreter is missing (as a shell reports it).
	f := packScript(t, "badinterp", "#!/nonexistent/sh\n", nil)
	if r := runFile(t, f, nil); r.Code != 127 || !strings.Contains(r.Stderr, "parker: ") {
		t.Errorf("missing interpreter: exit %d (want 127), stderr %q", r.Code, r.Stderr)
	}
	// 126: not executable.
	wd := tempDir(t, "noexec-wd")
	os.WriteFile(filepath.Join(wd, "plain"), []byte("#!/bin/sh\n"), 0o644)
	f = runPack(t, wd, "plain", filepath.Join(tempDir(t, "noexec-out"), "plaind"))
	if r := runFile(t, f, nil); r.Code != 126 || strings.Count(r.Stderr, "\n") != 1 {
		t.Errorf("not executable: exit %d (want 126), stderr %q", r.Code, r.Stderr)
	}
	// 125: truncated, corrupt, digest mismatch.
	good := toolPacked(t)
	data, _ := os.ReadFile(good)
	bad := filepath.Join(tempDir(t, "bad"), "toold")
	tr, err := trailer.Read(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	tb, _ := tr.MarshalBinary()
	os.WriteFile(bad, append(append([]byte(nil), data[:int(tr.Offset)+int(tr.Size)/2]...), tb...), 0o755)
	if r := runFile(t, bad, []string{"exit", "0"}); r.Code != 125 || strings.Count(r.Stderr, "\n") != 1 {
		t.Errorf("truncated: exit %d (want 125), stderr %q", r.Code, r.Stderr)
	}
	// A damaged payload block: the superblock is fine, a data byte is not.
	off := int(tr.Offset)
	mod := append([]byte(nil), data...)
	mod[off+200] ^= 0xff
	os.WriteFile(bad, mod, 0o755)
	if r := runFile(t, bad, []string{"--parker-verify", "exit", "0"}); r.Code != 125 || !strings.Contains(r.Stderr, "digest mismatch") {
		t.Errorf("--parker-verify on a damaged payload: exit %d, stderr %q", r.Code, r.Stderr)
	}
	if r := runFile(t, good, []string{"--parker-verify", "exit", "3"}); r.Code != 3 {
		t.Errorf("--parker-verify on a good payload: exit %d, stderr %q", r.Code, r.Stderr)
	}
	// Not a squashfs at the offset.
	mod = append([]byte(nil), data...)
	copy(mod[off:], make([]byte, 96))
	os.WriteFile(bad, mod, 0o755)
	if r := runFile(t, bad, []string{"exit", "0"}); r.Code != 125 || strings.Count(r.Stderr, "\n") != 1 {
		t.Errorf("no superblock: exit %d (want 125), stderr %q", r.Code, r.Stderr)
	}
}

// TestRunUnprivileged: without root the kernel refuses the mount; where
// no cache directory can be used either, the packed file says both in one
// line and exits 125.
func TestRunUnprivileged(t *testing.T) {
	needRoot(t, "switching to an unprivileged user")
	needTool(t, "setpriv")
	f := toolPacked(t)
	// nobody must be able to reach the file.
	openToOthers(t, f)
	closeFUSE(t)
	before := snapshot(t, filepath.Dir(f))
	c := asNobody(f, []string{"TMPDIR=/proc"}, "exit", "0")
	c.Dir = "/"
	out, _ := c.CombinedOutput()
	want := regexp.MustCompile(`^parker: \S+/toold: cannot run: the kernel will not mount the payload \(unshare mount namespace: operation not permitted; FUSE: .+\), ` +
		`and the extraction cache cannot be used: no usable cache directory \(/nonexistent/\.cache/parker: .*; /proc/parker-cache-65534: .*\); set PARKER_CACHE_DIR to one\n$`)
	if c.ProcessState.ExitCode() != 125 || !want.Match(out) {
		t.Errorf("unprivileged run: exit %d, output %q", c.ProcessState.ExitCode(), out)
	}
	t.Logf("unprivileged: %s", strings.TrimSpace(string(out)))
	sameTraces(t, before, filepath.Dir(f))
}
