package tests

// End-to-end tests of running a packed file (issue 4), on the real kernel,
// as root. Most use one shared packed file whose target is
// testdata/run/tool.c (subcommands for each behaviour checked).

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/json"
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

	"golang.org/x/sys/unix"

	"github.com/parkerpack/parker/image/trailer"
)

func TestRunArgs(t *testing.T) {
	needRoot(t, "running a packed file")
	f := toolPacked(t)
	args := []string{"plain", "with space", `"double"`, `'single'`, "new\nline", "", "tab\there",
		"--parker-help", "-", "--", "ünïcode", "$HOME", "*", "back\\slash", ""}
	r := runFile(t, f, append([]string{"args"}, args...))
	want := "argv0=tool\n" + hexArgs(args)
	if r.Code != 0 || r.Stdout != want {
		t.Fatalf("exit %d, stderr %q\ngot:\n%s\nwant:\n%s", r.Code, r.Stderr, r.Stdout, want)
	}
	// "--" ends parker's flags and is consumed; what follows is the
	// target's, even --parker-* lookalikes.
	r = runFile(t, f, []string{"--", "args", "--parker-info", "--"})
	if want := "argv0=tool\n" + hexArgs([]string{"--parker-info", "--"}); r.Stdout != want {
		t.Fatalf("after --: got %q, want %q (stderr %q)", r.Stdout, want, r.Stderr)
	}
}

func TestRunEnv(t *testing.T) {
	needRoot(t, "running a packed file")
	f := toolPacked(t)
	os.Unsetenv("UNSET_VAR")
	r := runFile(t, f, []string{"env", "FOO", "EMPTY", "MULTI", "PARKER_EXE", "PARKER_ROOT", "UNSET_VAR"},
		withEnv("FOO=bar baz", "EMPTY=", "MULTI=a\nb", "PARKER_ROOT=/ignored"))
	want := fmt.Sprintf("FOO=bar baz\nEMPTY=\nMULTI=a\nb\nPARKER_EXE=%s\nPARKER_ROOT=%s\nUNSET_VAR=<unset>\n", f, filepath.Dir(f))
	if r.Code != 0 || r.Stdout != want {
		t.Fatalf("exit %d, stderr %q\ngot:\n%s\nwant:\n%s", r.Code, r.Stderr, r.Stdout, want)
	}
}

func TestRunStdinPipe(t *testing.T) {
	needRoot(t, "running a packed file")
	f := toolPacked(t)
	in := bytes.Repeat([]byte("stdin line\x00\xff\n"), 100000)
	r := runFile(t, f, []string{"cat"}, withStdin(bytes.NewReader(in)))
	if r.Code != 0 || r.Stdout != string(in) {
		t.Fatalf("exit %d, stderr %q, %d of %d bytes back", r.Code, r.Stderr, len(r.Stdout), len(in))
	}
}

func TestRunBigStdout(t *testing.T) {
	needRoot(t, "running a packed file")
	f := toolPacked(t)
	const n = 100 << 20
	c := exec.Command(f, "big", strconv.Itoa(n))
	out, err := c.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	got, _ := io.Copy(h, out)
	if err := c.Wait(); err != nil {
		t.Fatal(err)
	}
	want := sha256.New()
	buf := make([]byte, 1<<16)
	for off := 0; off < n; off += len(buf) {
		for i := range buf {
			buf[i] = byte((off + i) % 251)
		}
		want.Write(buf)
	}
	if got != n || !bytes.Equal(h.Sum(nil), want.Sum(nil)) {
		t.Fatalf("stdout: %d bytes (want %d), digest match %v", got, n, bytes.Equal(h.Sum(nil), want.Sum(nil)))
	}
}

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

// startTool starts the packed tool with args, waits for its "ready" line and
// returns the command and the rest of its stdout.
func startTool(t *testing.T, f string, args ...string) (*exec.Cmd, *bufio.Reader) {
	t.Helper()
	c := exec.Command(f, args...)
	out, err := c.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	c.Stderr = os.Stderr
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(out)
	if line, err := br.ReadString('\n'); line != "ready\n" {
		c.Process.Kill()
		c.Wait()
		t.Fatalf("target did not start: %q %v", line, err)
	}
	return c, br
}

// childPids lists pid's children. Every thread's list counts: the Go
// stub may fork its target from any of its threads, and
// /proc/PID/task/PID/children names only the main thread's.
func childPids(pid int) []int {
	var kids []int
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	for _, f := range tasks {
		b, _ := os.ReadFile(f)
		for _, p := range strings.Fields(string(b)) {
			if n, err := strconv.Atoi(p); err == nil {
				kids = append(kids, n)
			}
		}
	}
	return kids
}

func TestRunSignalRelay(t *testing.T) {
	needRoot(t, "running a packed file")
	f := toolPacked(t)
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGHUP,
		syscall.SIGINT, syscall.SIGALRM, syscall.Signal(50)} {
		c, _ := startTool(t, f, "trap", strconv.Itoa(int(sig)), "77")
		c.Process.Signal(sig)
		err := c.Wait()
		if c.ProcessState.ExitCode() != 77 {
			t.Errorf("%v sent to the packed file: want the target's trap (exit 77), got %v", sig, err)
		}
	}
	// A signal with the default action reaches the target, which dies of it,
	// and so do we.
	c, _ := startTool(t, f, "trap", "10", "77") // traps USR1 only
	c.Process.Signal(syscall.SIGTERM)
	c.Wait()
	if ws := c.ProcessState.Sys().(syscall.WaitStatus); !ws.Signaled() || ws.Signal() != syscall.SIGTERM {
		t.Errorf("SIGTERM: caller saw %v", c.ProcessState)
	}
}

// TestRunSignalInheritance: what a shell sees of signals between itself and
// the target is what it sees when it runs the target directly: an ignored
// SIGHUP or SIGINT stays ignored in the target (nohup, background jobs),
// and a signal the target sends to its parent reaches the shell.
func TestRunSignalInheritance(t *testing.T) {
	needRoot(t, "running a packed file")
	f := toolPacked(t)
	direct := filepath.Join(tempDir(t, "direct"), "tool")
	gccBuild(t, "tool.c", direct)
	for _, tc := range []struct{ name, script string }{
		{"ignored", "trap '' HUP INT; %[1]s disp 1; %[1]s disp 2; %[1]s disp 12"},
		{"to parent", "trap 'echo parent got USR1' USR1; %[1]s killparent 10; echo exit $?"},
	} {
		want, err := exec.Command("bash", "-c", fmt.Sprintf(tc.script, direct)).CombinedOutput()
		if err != nil {
			t.Fatalf("%s, direct: %v %s", tc.name, err, want)
		}
		got, err := exec.Command("bash", "-c", fmt.Sprintf(tc.script, f)).CombinedOutput()
		if err != nil || string(got) != string(want) {
			t.Errorf("%s: packed %q (%v), direct %q", tc.name, got, err, want)
		}
	}
}

// TestRunKilledStub: SIGKILL on the packed file takes the target with it
// and leaves nothing behind.
func TestRunKilledStub(t *testing.T) {
	needRoot(t, "running a packed file")
	f := toolPacked(t)
	before := snapshot(t, filepath.Dir(f))
	c, _ := startTool(t, f, "trap", "10", "77")
	mid := snapshot(t, filepath.Dir(f))
	if len(mid.Loops) != len(before.Loops)+1 || len(mid.Procs) != len(before.Procs)+2 {
		t.Errorf("during the run: loops %v procs %v (want one loop device, two processes)", mid.Loops, mid.Procs)
	}
	c.Process.Kill()
	c.Wait()
	sameTraces(t, before, filepath.Dir(f))
}

func TestRunCwd(t *testing.T) {
	needRoot(t, "running a packed file")
	f := toolPacked(t)
	root := filepath.Dir(f)
	other := tempDir(t, "elsewhere")
	for _, tc := range []struct{ dir, want string }{
		{root, root},
		{other, other},
		{"/", "/"},
	} {
		r := runFile(t, f, []string{"cwd"}, inDir(tc.dir))
		if r.Code != 0 || strings.TrimSpace(r.Stdout) != tc.want {
			t.Errorf("cwd %s: got %q (exit %d, %s)", tc.dir, r.Stdout, r.Code, r.Stderr)
		}
	}
	// A cwd below the directory of TARGETd is re-resolved in the view: the
	// target sees the image's files there merged over the host's.
	wd := tempDir(t, "cwdwd")
	gccBuild(t, "tool.c", filepath.Join(wd, "tool"))
	os.WriteFile(filepath.Join(wd, "data.txt"), []byte("from image\n"), 0o644)
	os.Mkdir(filepath.Join(wd, "sub"), 0o755)
	os.WriteFile(filepath.Join(wd, "sub", "imageonly"), nil, 0o644)
	os.WriteFile(filepath.Join(wd, "run.sh"), []byte("#!/bin/sh\npwd; ls; cat ../data.txt\n"), 0o755)
	outDir := tempDir(t, "cwdout")
	g := runPack(t, wd, "run.sh", filepath.Join(outDir, "run.shd"))
	os.Mkdir(filepath.Join(outDir, "sub"), 0o755)
	os.WriteFile(filepath.Join(outDir, "sub", "hostonly"), nil, 0o644)
	r := runFile(t, g, nil, inDir(filepath.Join(outDir, "sub")))
	want := filepath.Join(outDir, "sub") + "\nhostonly\nimageonly\nfrom image\n"
	if r.Code != 0 || r.Stdout != want {
		t.Errorf("cwd below the view: got %q want %q (exit %d, %s)", r.Stdout, want, r.Code, r.Stderr)
	}
	// The same directory reached through a symlink, with PWD naming the
	// link (as a shell sets it): the directory, not the path, decides.
	lnk := filepath.Join(tempDir(t, "cwdlink"), "lnk")
	if err := os.Symlink(outDir, lnk); err != nil {
		t.Fatal(err)
	}
	r = runFile(t, g, nil, inDir(filepath.Join(lnk, "sub")), withEnv("PWD="+filepath.Join(lnk, "sub")))
	if r.Code != 0 || !strings.HasSuffix(r.Stdout, "\nhostonly\nimageonly\nfrom image\n") {
		t.Errorf("cwd below the view through a symlink: got %q (exit %d, %s)", r.Stdout, r.Code, r.Stderr)
	}
}

// packScript packs a workdir holding one shell script (and files) into a
// directory of its own and returns the packed file.
func packScript(t *testing.T, name, script string, files map[string]string) string {
	t.Helper()
	wd := tempDir(t, name+"-wd")
	if err := os.WriteFile(filepath.Join(wd, name), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	for p, c := range files {
		os.MkdirAll(filepath.Dir(filepath.Join(wd, p)), 0o755)
		os.WriteFile(filepath.Join(wd, p), []byte(c), 0o644)
	}
	return runPack(t, wd, name, filepath.Join(tempDir(t, name+"-out"), name+"d"))
}

func TestRunWrites(t *testing.T) {
	needRoot(t, "running a packed file")
	f := packScript(t, "writer", `#!/bin/sh
set -e
cd "$PARKER_ROOT"
cat data.txt
echo changed > data.txt
echo new > new.txt
mkdir -p newdir && echo x > newdir/f
rm neighbour
cat data.txt new.txt newdir/f
ls
`, map[string]string{"data.txt": "original\n"})
	dir := filepath.Dir(f)
	os.WriteFile(filepath.Join(dir, "neighbour"), []byte("host file\n"), 0o644)
	before := snapshot(t, dir)
	for i := 0; i < 2; i++ { // the second run must see none of the first's writes
		r := runFile(t, f, nil)
		want := "original\nchanged\nnew\nx\ndata.txt\nnew.txt\nnewdir\nwriter\nwriterd\n"
		if r.Code != 0 || r.Stdout != want {
			t.Fatalf("run %d: got %q want %q (exit %d, %s)", i, r.Stdout, want, r.Code, r.Stderr)
		}
	}
	ents, _ := os.ReadDir(dir)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if strings.Join(names, " ") != "neighbour writerd" {
		t.Errorf("host directory after the runs: %v", names)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "neighbour")); string(b) != "host file\n" {
		t.Errorf("neighbour changed on the host: %q", b)
	}
	sameTraces(t, before, dir)

	// --parker-overlay keeps them, and a later run with it sees them.
	keep := filepath.Join(tempDir(t, "keep"), "ov")
	r := runFile(t, f, []string{"--parker-overlay", keep})
	if r.Code != 0 {
		t.Fatalf("--parker-overlay: exit %d: %s", r.Code, r.Stderr)
	}
	for p, want := range map[string]string{"upper/data.txt": "changed\n", "upper/new.txt": "new\n", "upper/newdir/f": "x\n"} {
		if b, err := os.ReadFile(filepath.Join(keep, p)); err != nil || string(b) != want {
			t.Errorf("overlay %s: %q %v", p, b, err)
		}
	}
	if fi, err := os.Lstat(filepath.Join(keep, "upper", "neighbour")); err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		t.Errorf("overlay: no whiteout for the deleted neighbour (%v)", err)
	}
	// Without the flag, a later run starts from the image again.
	if r := runFile(t, f, nil); r.Code != 0 || !strings.HasPrefix(r.Stdout, "original\n") {
		t.Errorf("run after --parker-overlay: exit %d, %q", r.Code, r.Stdout)
	}
	sameTraces(t, before, dir)
}

func TestRunHostUnchangedDuring(t *testing.T) {
	needRoot(t, "running a packed file")
	f := toolPacked(t)
	dir := filepath.Dir(f)
	before := snapshot(t, dir)
	c, _ := startTool(t, f, "trap", "15", "0")
	during := snapshot(t, dir)
	// In the target's view: an overlay at dir.
	target := c.Process.Pid
	if kids := childPids(c.Process.Pid); len(kids) > 0 {
		target = kids[0]
	}
	mi, _ := os.ReadFile(fmt.Sprintf("/proc/%d/mountinfo", target))
	c.Process.Signal(syscall.SIGTERM)
	c.Wait()
	// Only lines naming our files count: other test suites may mount
	// things on this machine meanwhile.
	if during.Mountinfo != before.Mountinfo {
		t.Errorf("host mount table changed during the run:\n%s", during.Mountinfo)
	}
	if !strings.Contains(string(mi), " "+dir+" ") || !strings.Contains(string(mi), " overlay ") {
		t.Errorf("target's mount table has no overlay at %s:\n%s", dir, mi)
	}
	t.Logf("mounts: host %d, target %d (its namespace is a copy of the host's plus the overlay)",
		during.Mounts, strings.Count(string(mi), "\n"))
	sameTraces(t, before, dir)
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
	r = runFile(t, f, []string{"--parker-offset"})
	off, err := strconv.ParseUint(strings.TrimSpace(r.Stdout), 10, 64)
	if r.Code != 0 || err != nil || off%4096 != 0 {
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
	if _, err := exec.LookPath("unsquashfs"); err == nil {
		out, err := exec.Command("unsquashfs", "-o", fmt.Sprint(off), "-l", f).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "squashfs-root/tool") {
			t.Errorf("unsquashfs -o %d: %v\n%s", off, err, out)
		}
	}
}

func TestRunMountFlag(t *testing.T) {
	needRoot(t, "running a packed file")
	f := toolPacked(t)
	before := snapshot(t, filepath.Dir(f))
	c := exec.Command(f, "--parker-mount")
	out, _ := c.StdoutPipe()
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	line, _ := bufio.NewReader(out).ReadString('\n')
	path := strings.TrimSpace(line)
	b, err := os.ReadFile(filepath.Join(path, "data.txt"))
	mid := snapshot(t, filepath.Dir(f))
	c.Process.Signal(syscall.SIGINT)
	if err := c.Wait(); err != nil {
		t.Errorf("--parker-mount: %v", err)
	}
	if err != nil || string(b) != "packed data\n" {
		t.Errorf("--parker-mount at %q: data.txt %q %v", path, b, err)
	}
	if mid.Mountinfo != before.Mountinfo {
		t.Errorf("--parker-mount changed the host mount table")
	}
	sameTraces(t, before, filepath.Dir(f))
}

func TestRunExtractFlag(t *testing.T) {
	f := toolPacked(t)
	dst := filepath.Join(tempDir(t, "extract"), "out")
	r := runFile(t, f, []string{"--parker-extract", dst})
	if strings.Contains(r.Stderr, "not available in this build") || strings.Contains(r.Stderr, "not implemented") {
		t.Skipf("SKIP: image reader cannot extract yet: %s", r.Stderr)
	}
	if r.Code != 0 {
		t.Fatalf("--parker-extract: exit %d: %s", r.Code, r.Stderr)
	}
	// It needs no privileges (the fallback for users who cannot mount).
	if os.Geteuid() == 0 && haveSetpriv() {
		dst2 := filepath.Join(tempDir(t, "extract-nobody"), "out")
		os.Chmod(filepath.Dir(dst2), 0o777)
		for d := filepath.Dir(f); d != "/"; d = filepath.Dir(d) {
			os.Chmod(d, 0o755)
		}
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
	if fi, err := os.Stat(filepath.Join(dst, "tool")); err != nil || fi.Mode()&0o111 == 0 {
		t.Errorf("extracted tool: %v %v", fi, err)
	}
}

func haveSetpriv() bool {
	_, err := exec.LookPath("setpriv")
	return err == nil
}

// TestRunUnprivileged: without root the kernel refuses the mount; the
// packed file says so in one line and exits 125.
func TestRunUnprivileged(t *testing.T) {
	needRoot(t, "switching to an unprivileged user")
	needTool(t, "setpriv")
	f := toolPacked(t)
	// nobody must be able to reach the file.
	for d := filepath.Dir(f); d != "/"; d = filepath.Dir(d) {
		os.Chmod(d, 0o755)
	}
	before := snapshot(t, filepath.Dir(f))
	c := exec.Command("setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups", f, "exit", "0")
	c.Dir = "/"
	out, _ := c.CombinedOutput()
	if c.ProcessState.ExitCode() != 125 || strings.Count(string(out), "\n") != 1 || !strings.Contains(string(out), "needs root") {
		t.Errorf("unprivileged run: exit %d, output %q", c.ProcessState.ExitCode(), out)
	}
	t.Logf("unprivileged: %s", strings.TrimSpace(string(out)))
	sameTraces(t, before, filepath.Dir(f))
}

// TestRunTerminal runs the packed file on a pseudo-terminal, as its
// session's foreground job: the target keeps the terminal (same process
// group, which is the foreground one), reads from it, and a ^C reaches it
// exactly once.
// term is the master side of a pseudo-terminal, read in the background so
// a test never blocks on it.
type term struct {
	*os.File
	ch  chan []byte
	buf []byte // read but not yet consumed
}

// onPty starts the packed file f with args on a new pseudo-terminal, as the
// foreground job of its own session, and returns the terminal's master.
func onPty(t *testing.T, f string, args ...string) (*term, *exec.Cmd) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("SKIP: no /dev/ptmx: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	s, err := os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c := exec.Command(f, args...)
	c.Stdin, c.Stdout, c.Stderr = s, s, s
	c.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	tm := &term{File: m, ch: make(chan []byte, 64)}
	go func() {
		defer close(tm.ch)
		for {
			b := make([]byte, 4096)
			n, err := m.Read(b)
			if n > 0 {
				tm.ch <- b[:n]
			}
			if err != nil {
				return
			}
		}
	}()
	return tm, c
}

// readUntil consumes the terminal's output up to and including want (10 s
// at most) and returns it.
func readUntil(t *testing.T, m *term, want string) string {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		if i := bytes.Index(m.buf, []byte(want)); i >= 0 {
			out := string(m.buf[:i+len(want)])
			m.buf = m.buf[i+len(want):]
			return out
		}
		select {
		case b, ok := <-m.ch:
			if !ok {
				t.Fatalf("terminal closed while waiting for %q; got %q", want, m.buf)
			}
			m.buf = append(m.buf, b...)
		case <-timeout:
			t.Fatalf("waiting for %q on the terminal: got %q", want, m.buf)
		}
	}
}

func TestRunTerminal(t *testing.T) {
	needRoot(t, "running a packed file")
	f := toolPacked(t)
	run := func(args ...string) (*term, *exec.Cmd) { return onPty(t, f, args...) }
	readUntil := func(m *term, want string) string { return readUntil(t, m, want) }

	m, c := run("tty")
	out := readUntil(m, "tpgrp=")
	out += readUntil(m, "\n")
	m.Write([]byte("typed\n"))
	out += readUntil(m, "read=typed")
	c.Wait()
	m.Close()
	var isatty, pgrp, tpgrp int
	i := strings.Index(out, "isatty=")
	fmt.Sscanf(out[i:], "isatty=%d pgrp=%d tpgrp=%d", &isatty, &pgrp, &tpgrp)
	if isatty != 1 || pgrp != tpgrp || pgrp != c.Process.Pid {
		t.Errorf("target on a terminal: isatty=%d pgrp=%d foreground=%d (packed file pid %d); want the caller's foreground group", isatty, pgrp, tpgrp, c.Process.Pid)
	}

	m, c = run("sigcount")
	readUntil(m, "ready")
	m.Write([]byte{3}) // ^C
	out = readUntil(m, "count=")
	out += readUntil(m, "\n")
	c.Wait()
	m.Close()
	if !strings.Contains(out, "count=1") {
		t.Errorf("^C on the terminal: target got %q, want exactly one SIGINT", out)
	}
}

// TestRunLeaks: 200 runs in a row and 50 at once leave nothing behind, and
// concurrent runs do not see each other's writes.
func TestRunLeaks(t *testing.T) {
	needRoot(t, "running a packed file")
	f := packScript(t, "w", `#!/bin/sh
echo "$1" > "$PARKER_ROOT/mark-$1"
[ -n "$2" ] && sleep "$2"
ls "$PARKER_ROOT" | grep '^mark-'
`, nil)
	dir := filepath.Dir(f)
	checkTmp := privateTmp(t)
	devs := func() int { m, _ := filepath.Glob("/sys/block/loop*"); return len(m) }
	devsBefore := devs()
	before := snapshot(t, dir)
	start := time.Now()
	for i := 0; i < 200; i++ {
		r := runFile(t, f, []string{strconv.Itoa(i)})
		if r.Code != 0 || r.Stdout != fmt.Sprintf("mark-%d\n", i) {
			t.Fatalf("run %d: exit %d, stdout %q, stderr %q", i, r.Code, r.Stdout, r.Stderr)
		}
	}
	seq := time.Since(start)
	after := sameTraces(t, before, dir)
	t.Logf("200 sequential runs in %v (%.1f ms each); after: %d loop devices, %d cgroup dirs (before %d), %d mounts (before %d), temp %v",
		seq.Round(time.Millisecond), float64(seq.Milliseconds())/200, len(after.Loops), after.Cgroups, before.Cgroups, after.Mounts, before.Mounts, after.TmpNew)

	var wg sync.WaitGroup
	errs := make(chan string, 50)
	var maxLoops int
	var mu sync.Mutex
	start = time.Now()
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			r := runFile(t, f, []string{strconv.Itoa(i), "1"})
			if r.Code != 0 || r.Stdout != fmt.Sprintf("mark-%d\n", i) {
				errs <- fmt.Sprintf("concurrent run %d: exit %d, stdout %q, stderr %q", i, r.Code, r.Stdout, r.Stderr)
			}
		}(i)
	}
	go func() {
		time.Sleep(700 * time.Millisecond)
		mu.Lock()
		maxLoops = len(snapshot(t, dir).Loops)
		mu.Unlock()
	}()
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	after = sameTraces(t, before, dir)
	mu.Lock()
	t.Logf("50 concurrent runs in %v; %d loop devices in use midway, %d after; cgroup dirs %d -> %d; temp %v",
		time.Since(start).Round(time.Millisecond), maxLoops, len(after.Loops), before.Cgroups, after.Cgroups, after.TmpNew)
	mu.Unlock()
	checkTmp()
	// Loop devices the kernel created on demand stay as its free pool
	// (unbound: no backing file, nothing held), as with losetup -f.
	t.Logf("loop device nodes: %d before, %d after (all unbound but the pool's others)", devsBefore, devs())
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("host directory holds %d entries after the runs, want 1", len(ents))
	}
}

// TestRunExampleCService is the first example of the README: a C service
// built with gcc that reads an asset file, packed with it, run from its
// packed directory.
func TestRunExampleCService(t *testing.T) {
	needRoot(t, "running a packed file")
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
	f := runPack(t, wd, "ipservice", filepath.Join(tempDir(t, "ipservice-host"), "ipserviced"))
	dir := filepath.Dir(f)
	before := snapshot(t, dir)
	port := freePort(t)
	c := exec.Command("./ipserviced", "--port", strconv.Itoa(port))
	c.Dir = dir
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
	before := snapshot(t, host)
	port := freePort(t)
	c := exec.Command("./pythond", "server.py", strconv.Itoa(port))
	c.Dir = host
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

// TestRunInteractivePython: python's REPL, packed, on a terminal, behaves
// as if run directly: prompts, evaluates, takes ^C as one
// KeyboardInterrupt, exits on exit().
func TestRunInteractivePython(t *testing.T) {
	needRoot(t, "running a packed file")
	host := pythonPacked(t)
	m, c := onPty(t, filepath.Join(host, "pythond"), "-q")
	defer c.Process.Kill()
	readUntil(t, m, ">>> ")
	m.Write([]byte("print(6*7)\n"))
	readUntil(t, m, "42")
	readUntil(t, m, ">>> ")
	m.Write([]byte("import time; time.sleep(30)\n"))
	time.Sleep(300 * time.Millisecond)
	m.Write([]byte{3}) // ^C
	out := readUntil(t, m, ">>> ")
	if strings.Count(out, "KeyboardInterrupt") != 1 {
		t.Errorf("^C: want one KeyboardInterrupt, got %q", out)
	}
	m.Write([]byte("exit(5)\n"))
	c.Wait()
	if c.ProcessState.ExitCode() != 5 {
		t.Errorf("exit(5): caller saw %v", c.ProcessState)
	}
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
		t.Skipf("SKIP: %s not installed: %v", py, err)
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

// TestRunOddDirectory: the directory holding TARGETd may have any name;
// overlayfs splits its joined options on ':' and ',', which a name must
// not break.
func TestRunOddDirectory(t *testing.T) {
	needRoot(t, "running a packed file")
	f := toolPacked(t)
	dir := filepath.Join(tempDir(t, "odd"), `we:ird, dir\ with "quotes"`)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	g := filepath.Join(dir, "toold")
	run(t, "cp", f, g)
	r := runFile(t, g, []string{"cwd"}, inDir(dir))
	if r.Code != 0 || strings.TrimSpace(r.Stdout) != dir {
		t.Errorf("in %q: exit %d, cwd %q, stderr %q", dir, r.Code, r.Stdout, r.Stderr)
	}
	if r := runFile(t, g, []string{"env", "PARKER_ROOT"}); r.Stdout != "PARKER_ROOT="+dir+"\n" {
		t.Errorf("PARKER_ROOT: %q (stderr %q)", r.Stdout, r.Stderr)
	}
}

// TestRunJobControl: in an interactive shell, ^Z stops the packed job
// (the packed file and its target together), fg resumes it, and ^C ends
// it as it would end the target run directly ($? = 130).
func TestRunJobControl(t *testing.T) {
	needRoot(t, "running a packed file")
	f := toolPacked(t)
	m, c := onPty(t, "/bin/bash", "--norc", "--noprofile", "-i")
	defer c.Process.Kill()
	m.Write([]byte("PS1='$ '; " + f + " sleep 20000\n"))
	readUntil(t, m, "sleeping") // the target runs
	m.Write([]byte{26})         // ^Z
	readUntil(t, m, "Stopped")
	m.Write([]byte("fg\n"))
	// Both processes exist now: a ^C that overtakes the SIGCONT stays
	// pending until they run again.
	time.Sleep(200 * time.Millisecond)
	m.Write([]byte{3})                      // ^C
	m.Write([]byte("echo R$((1+1))C=$?\n")) // the echoed line must not match
	readUntil(t, m, "R2C=")
	if out := readUntil(t, m, "\n"); strings.TrimSpace(out) != "130" {
		t.Errorf("after ^C: $? = %q, want 130", out)
	}
	m.Write([]byte("exit\n"))
	c.Wait()
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
	dir := filepath.Join(t.TempDir(), "x")
	if r := runFile(t, out, []string{"--parker-extract", dir}); r.Code != 0 {
		t.Errorf("--parker-extract: %d %q", r.Code, r.Stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "tool")); err != nil {
		t.Errorf("extracted: %v", err)
	}
}

// TestRunKillsOrphans: when the target ends, what it left running ends
// too: a background child, and a daemon that left its session (setsid).
func TestRunKillsOrphans(t *testing.T) {
	needRoot(t, "running a packed file")
	f := packScript(t, "orphans", `#!/bin/sh
sleep 100 >/dev/null 2>&1 & echo $! > "$PIDS"
setsid sh -c 'sleep 100' >/dev/null 2>&1 & echo $! >> "$PIDS"
exit 4
`, nil)
	pids := filepath.Join(t.TempDir(), "pids")
	r := runFile(t, f, nil, withEnv("PIDS="+pids))
	if r.Code != 4 {
		t.Fatalf("exit %d, stderr %q", r.Code, r.Stderr)
	}
	b, err := os.ReadFile(pids)
	if err != nil || len(strings.Fields(string(b))) != 2 {
		t.Fatalf("pids %q: %v", b, err)
	}
	for _, p := range strings.Fields(string(b)) {
		pid, _ := strconv.Atoi(p)
		if err := syscall.Kill(pid, 0); err != syscall.ESRCH {
			t.Errorf("process %d left behind by the target is still there (%v)", pid, err)
		}
	}
}

// TestRunSignalHeldWhileMounting: a signal that reaches the packed file
// while it is still setting up the view is held, and delivered to the
// target once it has started. strace stretches the namespace step (the
// first of the mount steps) to 600 ms; SIGTERM arrives 50 ms into it.
// Caught and dropped, the target would sleep its 5 s; not caught, the
// packed file would die at once; held, the target dies of it after the
// stretch, and so, the same way, does the packed file.
func TestRunSignalHeldWhileMounting(t *testing.T) {
	needRoot(t, "running a packed file")
	strace, err := exec.LookPath("strace")
	if err != nil {
		t.Skip("no strace (hack/deps.sh installs it)")
	}
	f := toolPacked(t)
	c := exec.Command(strace, "-f", "-o", "/dev/null", "-e", "trace=unshare",
		"-e", "inject=unshare:delay_enter=600000", f, "sleep", "5000")
	start := time.Now()
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	// The packed file: strace's child, once it runs f (strace forks
	// another child first, which execs nothing).
	stub := 0
	for stub == 0 && time.Since(start) < 3*time.Second {
		for _, p := range childPids(c.Process.Pid) {
			if exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", p)); exe == f {
				stub = p
			}
		}
		time.Sleep(time.Millisecond)
	}
	if stub == 0 {
		c.Process.Kill()
		c.Wait()
		t.Fatal("the packed file did not start under strace")
	}
	// Wait until one of its threads is held at the entry of unshare: a
	// fixed sleep is not enough, a loaded machine may take longer than
	// any to get the Go stub's runtime that far.
	inStep := false
	for !inStep && time.Since(start) < 5*time.Second {
		files, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/syscall", stub))
		for _, sf := range files {
			b, _ := os.ReadFile(sf)
			inStep = inStep || strings.HasPrefix(string(b), strconv.Itoa(syscall.SYS_UNSHARE)+" ")
		}
		time.Sleep(time.Millisecond)
	}
	if !inStep {
		syscall.Kill(stub, syscall.SIGKILL)
		c.Process.Kill()
		c.Wait()
		t.Fatal("the packed file never reached unshare")
	}
	time.Sleep(50 * time.Millisecond)
	sent := time.Now()
	syscall.Kill(stub, syscall.SIGTERM)
	c.Wait()
	took := time.Since(sent)
	ws := c.ProcessState.Sys().(syscall.WaitStatus)
	switch {
	case !ws.Signaled() || ws.Signal() != syscall.SIGTERM:
		t.Errorf("%v after the signal: %v; want death by SIGTERM", took, c.ProcessState)
	case took < 300*time.Millisecond:
		t.Errorf("died %v after the signal, before the stretched step (550 ms left) ended: the signal was not held", took)
	case took > 4*time.Second:
		t.Errorf("took %v: the target never got the signal", took)
	}
}
