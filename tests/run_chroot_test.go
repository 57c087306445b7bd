package tests

// A packed file run inside a chroot whose / is a plain directory, not a
// mount point, as in build chroots (sbuild, pbuilder, mock) with /proc
// mounted and /dev bound in; the mount holding the chroot is shared, as /
// is on a systemd machine, and must get none of the run's mounts.

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

func TestRunChroot(t *testing.T) {
	needRoot(t, "a chroot with /proc and /dev mounted in it")
	for _, tool := range []string{"unshare", "nsenter", "chroot"} {
		needTool(t, tool)
	}
	wd := tempDir(t, "chroot-wd")
	gccBuild(t, "tool.c", filepath.Join(wd, "tool"), "-static") // the chroot has no C library
	if err := os.WriteFile(filepath.Join(wd, "data.txt"), []byte("packed data\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	f := runPack(t, wd, "tool", filepath.Join(tempDir(t, "chroot-out"), "toold"))

	base := tempDir(t, "chroot")
	root := filepath.Join(base, "root")
	app := filepath.Join(root, "app")
	for _, d := range []string{"proc", "dev", "app/sub"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	run(t, "cp", f, filepath.Join(app, "toold"))
	if err := os.WriteFile(filepath.Join(app, "host.txt"), []byte("host file\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, base)
	ns := holdChroot(t, base, root)
	set := ns.mountinfo(t, base)
	if !sharedMount(set, base) || len(mountLines(set, root)) > 0 {
		t.Fatalf("set-up: want %s a shared mount and %s no mount point:\n%s", base, root, set)
	}
	pid := strconv.Itoa(ns.pid)
	inChroot := func(args ...string) runRes {
		return runFile(t, "nsenter", append([]string{"-t", pid, "-m", "chroot", root}, args...))
	}

	// The packed files beside the packed file, with the host's.
	r := inChroot("/app/toold", "ls", "/app")
	if want := "data.txt\nhost.txt\nsub\ntool\ntoold\n"; r.Code != 0 || r.Stdout != want {
		t.Fatalf("ls /app in the chroot: exit %d, %q, stderr %q; want 0, %q", r.Code, r.Stdout, r.Stderr, want)
	}
	// The run's mounts are gone with it: none reached the mount holding
	// the chroot, which its copy of that mount was a peer of.
	if after := ns.mountinfo(t, base); after != set {
		t.Fatalf("the run's mounts propagated to the chroot's mount namespace:\nbefore:\n%s\nafter:\n%s", set, after)
	}
	if r := inChroot("/app/toold", "read", "/app/data.txt"); r.Code != 0 || r.Stdout != "packed data\n" {
		t.Errorf("read /app/data.txt: exit %d, %q, stderr %q", r.Code, r.Stdout, r.Stderr)
	}
	if r := inChroot("/app/toold", "env", "PARKER_ROOT", "PARKER_EXE"); r.Stdout != "PARKER_ROOT=/app\nPARKER_EXE=/app/toold\n" {
		t.Errorf("environment in the chroot: %q (stderr %q)", r.Stdout, r.Stderr)
	}
	// A verbose run is the helper's, in Go, whichever the stub.
	r = runFile(t, "nsenter", []string{"-t", pid, "-m", "chroot", root, "/app/toold", "read", "/app/data.txt"},
		withEnv("PARKER_VERBOSE=1"))
	if r.Code != 0 || r.Stdout != "packed data\n" || !strings.Contains(r.Stderr, "overlay mount at /app") {
		t.Errorf("verbose run in the chroot: exit %d, %q, stderr %q", r.Code, r.Stdout, r.Stderr)
	}
	// Writes land in the throw-away layer: not on the host, not in the
	// next run.
	for _, w := range [][]string{{"/app/data.txt", "changed"}, {"/app/new.txt", "new"}} {
		if r := inChroot("/app/toold", "write", w[0], w[1]); r.Code != 0 {
			t.Errorf("write %s: exit %d, stderr %q", w[0], r.Code, r.Stderr)
		}
	}
	if r := inChroot("/app/toold", "read", "/app/data.txt"); r.Stdout != "packed data\n" {
		t.Errorf("data.txt in the run after the write: %q (stderr %q)", r.Stdout, r.Stderr)
	}
	if r := inChroot("/app/toold", "ls", "/app"); r.Stdout != "data.txt\nhost.txt\nsub\ntool\ntoold\n" {
		t.Errorf("ls /app in the run after the writes: %q (stderr %q)", r.Stdout, r.Stderr)
	}
	ents, _ := os.ReadDir(app)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if strings.Join(names, " ") != "host.txt sub toold" {
		t.Errorf("the chroot's /app after the runs: %v", names)
	}
	// The working directory, looked up again in the view.
	r = runFile(t, "nsenter", []string{"-t", pid, "-m", "unshare", "--root", root, "--wd", "/app/sub", "/app/toold", "cwd"})
	if r.Code != 0 || r.Stdout != "/app/sub\n" {
		t.Errorf("cwd /app/sub in the chroot: exit %d, %q, stderr %q", r.Code, r.Stdout, r.Stderr)
	}

	// During a run: the view in the target's namespace, nothing in the
	// chroot's (its mount is shared with the run's copy of it), nothing
	// on the host.
	c, _ := startTool(t, "nsenter", "-t", pid, "-m", "chroot", root, "/app/toold", "trap", "15", "0")
	target := c.Process.Pid
	if kids := childPids(target); len(kids) > 0 {
		target = kids[0]
	}
	view, _ := os.ReadFile(fmt.Sprintf("/proc/%d/mountinfo", target))
	during, hostDuring := ns.mountinfo(t, base), snapshot(t, base)
	c.Process.Signal(syscall.SIGTERM)
	if err := c.Wait(); err != nil {
		t.Errorf("trap run: %v", err)
	}
	if !strings.Contains(string(view), " /app ") || !strings.Contains(string(view), " overlay ") {
		t.Errorf("target's mount table has no overlay at /app:\n%s", view)
	}
	if during != set {
		t.Errorf("the chroot's mount namespace changed during the run:\nbefore:\n%s\nduring:\n%s", set, during)
	}
	if hostDuring.Mountinfo != before.Mountinfo {
		t.Errorf("host mount table changed during the run:\n%s", hostDuring.Mountinfo)
	}
	if after := ns.mountinfo(t, base); after != set {
		t.Errorf("the chroot's mount namespace changed after the runs:\nbefore:\n%s\nafter:\n%s", set, after)
	}

	// The same packed file run from outside the chroot, where / is a mount
	// point (the common case), in the same shared mount.
	r = runFile(t, "nsenter", []string{"-t", pid, "-m", filepath.Join(app, "toold"), "read", filepath.Join(app, "data.txt")})
	if r.Code != 0 || r.Stdout != "packed data\n" {
		t.Errorf("outside the chroot: exit %d, %q, stderr %q", r.Code, r.Stdout, r.Stderr)
	}
	if after := ns.mountinfo(t, base); after != set {
		t.Errorf("a run outside the chroot changed the chroot's mount namespace:\nbefore:\n%s\nafter:\n%s", set, after)
	}
	sameTraces(t, before, base)
}

// chrootNS is a mount namespace of a test's own, held by a shell.
type chrootNS struct{ pid int }

// holdChroot makes root, a directory in base, a chroot as build chroots
// have them, in a mount namespace of the test's own (private, so nothing
// of it reaches the host): base is bound onto itself and made shared, so
// that root sits in a shared mount without being a mount point itself;
// root gets /proc and the host's /dev (sbuild binds it; the run needs
// /dev/loop-control and /dev/loopN). The namespace lasts until the test
// ends: its shell exits when its stdin closes.
func holdChroot(t *testing.T, base, root string) chrootNS {
	t.Helper()
	script := `set -e
mount --bind "$1" "$1"
mount --make-shared "$1"
mount -t proc proc "$2/proc"
mount --bind /dev "$2/dev"
echo ready
read _`
	c := exec.Command("unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", base, root)
	in, err := c.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := c.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	c.Stderr = os.Stderr
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		in.Close()
		c.Wait()
	})
	if line, err := bufio.NewReader(out).ReadString('\n'); line != "ready\n" {
		t.Fatalf("setting up the chroot's namespace: %q %v", line, err)
	}
	return chrootNS{c.Process.Pid}
}

// mountinfo is the lines of the namespace's mount table that name dir
// (its own mounts: the rest are copies of the host's).
func (ns chrootNS) mountinfo(t *testing.T, dir string) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/mountinfo", ns.pid))
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	for _, l := range strings.SplitAfter(string(b), "\n") {
		if strings.Contains(l, dir) {
			out.WriteString(l)
		}
	}
	return out.String()
}

// mountLines are the lines of table mi for mounts at dir.
func mountLines(mi, dir string) []string {
	var ls []string
	for _, l := range strings.Split(mi, "\n") {
		if f := strings.Fields(l); len(f) > 4 && f[4] == dir {
			ls = append(ls, l)
		}
	}
	return ls
}

// sharedMount tells whether the top mount at dir in table mi is in a peer
// group.
func sharedMount(mi, dir string) bool {
	ls := mountLines(mi, dir)
	return len(ls) > 0 && strings.Contains(ls[len(ls)-1], " shared:")
}
