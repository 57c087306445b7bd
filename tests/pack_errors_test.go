package tests

// How `parker TARGET` fails: bad usage exits 2, any other failure 1, with
// one line on stderr, and neither an output nor a temp file left behind,
// also when the pack is interrupted.

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// wantFailure asserts a failed run: the exit code, one line on stderr (no
// stack trace), and an output directory left as it was (empty: no output,
// no temp file).
func wantFailure(t *testing.T, what string, r result, code int, outDir string) {
	t.Helper()
	msg := strings.TrimRight(r.Stderr, "\n")
	switch {
	case r.Code != code:
		t.Errorf("%s: exit %d, want %d; stderr %q", what, r.Code, code, r.Stderr)
	case code == 1 && (msg == "" || strings.Contains(msg, "\n")):
		t.Errorf("%s: want one line on stderr, got %q", what, r.Stderr)
	case strings.Contains(r.Stderr, "goroutine ") || strings.Contains(r.Stderr, "panic"):
		t.Errorf("%s: stack trace on stderr: %q", what, r.Stderr)
	default:
		t.Logf("%s: exit %d: %s", what, r.Code, strings.SplitN(msg, "\n", 2)[0])
	}
	if outDir != "" {
		left, _ := os.ReadDir(outDir)
		for _, e := range left {
			t.Errorf("%s: left behind: %s", what, filepath.Join(outDir, e.Name()))
		}
	}
}

func TestPackErrors(t *testing.T) {
	wd := smallWorkdir(t)
	os.Mkdir(filepath.Join(wd, "adir"), 0o755)
	os.WriteFile(filepath.Join(wd, "plain"), []byte("not executable"), 0o644)
	od := tempDir(t, "errout")
	out := filepath.Join(od, "out")
	fail := func(what string, code int, env []string, args ...string) {
		t.Helper()
		wantFailure(t, what, runParker(t, "", env, args...), code, od)
	}
	fail("missing target", 1, nil, "-C", wd, "-o", out, "nothere")
	fail("target is a directory", 1, nil, "-C", wd, "-o", out, "adir")
	fail("target outside the workdir", 2, nil, "-C", wd, "-o", out, "../x")
	fail("missing workdir", 1, nil, "-C", filepath.Join(wd, "nope"), "-o", out, "app")
	fail("output in a missing directory", 1, nil, "-C", wd, "-o", filepath.Join(od, "no", "out"), "app")
	cwd := tempDir(t, "cwd")
	wantFailure(t, "output to standard output", runParker(t, cwd, nil, "-C", wd, "-o", "-", "app"), 2, cwd)

	fail("no arguments", 2, nil)
	fail("two targets", 2, nil, "-C", wd, "-o", out, "app", "plain")
	fail("unknown flag", 2, nil, "-C", wd, "-o", out, "--frobnicate", "app")
	fail("bad compression", 2, nil, "-C", wd, "-o", out, "--compression", "brotli", "app")
	fail("bad level", 2, nil, "-C", wd, "-o", out, "--level", "99", "app")
	fail("level for xz", 2, nil, "-C", wd, "-o", out, "--compression", "xz", "--level", "3", "app")
	fail("bad block size", 2, nil, "-C", wd, "-o", out, "--block-size", "3000", "app")
	fail("block size too big", 2, nil, "-C", wd, "-o", out, "--block-size", "2M", "app")
	fail("bad exclude pattern", 2, nil, "-C", wd, "-o", out, "--exclude", "[", "app")
	fail("inspect without file", 2, nil, "inspect")

	// not executable: a warning, and the pack goes on
	r := runParker(t, "", nil, "-C", wd, "-o", out, "plain")
	if r.Code != 0 || !strings.Contains(r.Stderr, "plain") {
		t.Errorf("non-executable target: exit %d, stderr %q; want 0 and a warning naming it", r.Code, r.Stderr)
	}
	os.Remove(out)

	t.Run("disk-full", func(t *testing.T) {
		needRoot(t, "mounting a small tmpfs")
		full := tempDir(t, "full")
		run(t, "mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", full)
		defer exec.Command("umount", full).Run()
		fx := smallTree(t) // stub + payload are well over 8 MiB
		wantFailure(t, "disk full", runParker(t, "", nil, "-q", "-C", fx.Dir, "-o", filepath.Join(full, "out"), fx.Target), 1, full)
	})
	t.Run("unprivileged", func(t *testing.T) {
		needRoot(t, "running parker as nobody (setpriv)")
		needTool(t, "setpriv")
		// Everything nobody needs must be reachable: a world-readable copy
		// of parker and workdirs in a 0755 directory.
		base := tempDir(t, "nobody")
		for _, d := range []string{tmpRoot, base} {
			os.Chmod(d, 0o755)
		}
		bin := filepath.Join(base, "parker")
		os.WriteFile(bin, readFile(t, buildParker(t)), 0o755)
		wd := filepath.Join(base, "wd")
		os.Mkdir(wd, 0o755)
		os.WriteFile(filepath.Join(wd, "app"), []byte("#!/bin/sh\n"), 0o755)
		os.WriteFile(filepath.Join(wd, "secret"), []byte("root only"), 0o600)
		outOK := filepath.Join(base, "out")
		os.Mkdir(outOK, 0o755)
		os.Chmod(outOK, 0o777) // Mkdir's mode goes through the umask
		roOut := filepath.Join(base, "ro")
		os.Mkdir(roOut, 0o755) // root's, not writable for nobody
		asNobody := func(args ...string) result {
			cmd := exec.Command("setpriv", append([]string{"--reuid", "65534", "--regid", "65534", "--clear-groups", bin}, args...)...)
			cmd.Dir = base
			var so, se bytes.Buffer
			cmd.Stdout, cmd.Stderr = &so, &se
			err := cmd.Run()
			r := result{Stdout: so.String(), Stderr: se.String()}
			if ee, ok := err.(*exec.ExitError); ok {
				r.Code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			return r
		}
		r := asNobody("-q", "-C", wd, "-o", filepath.Join(outOK, "x"), "app")
		wantFailure(t, "unreadable file", r, 1, outOK)
		if want := "parker: cannot read " + filepath.Join(wd, "secret") + ": permission denied; leave it out with --exclude 'secret'\n"; r.Stderr != want {
			t.Errorf("unreadable file: stderr %q, want %q", r.Stderr, want)
		}
		os.Remove(filepath.Join(wd, "secret"))
		wantFailure(t, "output dir not writable", asNobody("-q", "-C", wd, "-o", filepath.Join(roOut, "x"), "app"), 1, roOut)
		// and it does work for nobody when it can
		if r := asNobody("-q", "-C", wd, "-o", filepath.Join(outOK, "x"), "app"); r.Code != 0 {
			t.Errorf("as nobody: exit %d: %s", r.Code, r.Stderr)
		}
	})
}

// TestPackInterrupted: SIGINT or SIGTERM in the middle of a pack leaves
// neither an output nor a temp file, and parker dies of that signal, as
// tar and mksquashfs do, so a shell sees 130 for ^C.
func TestPackInterrupted(t *testing.T) {
	fx := goTree(t)
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		od := tempDir(t, "intr")
		cmd := exec.Command(buildParker(t), "-q", "-C", fx.Dir, "-o", filepath.Join(od, "out"), "--compression", "xz", fx.Target)
		var se bytes.Buffer
		cmd.Stderr = &se
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(700 * time.Millisecond) // xz on 230 MB takes many seconds
		cmd.Process.Signal(sig)
		err := cmd.Wait()
		if err == nil {
			t.Errorf("%v: parker finished before the signal; make the job longer", sig)
			continue
		}
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != sig {
			t.Errorf("%v: parker ended with %v, want death by %v", sig, err, sig)
		}
		if want := "parker: interrupted by " + unix.SignalName(sig) + "; nothing written\n"; se.String() != want {
			t.Errorf("%v: stderr %q, want %q", sig, se.String(), want)
		}
		left, _ := os.ReadDir(od)
		for _, e := range left {
			t.Errorf("%v: left behind: %s", sig, e.Name())
		}
		t.Logf("%v: %v, stderr %q", sig, err, se.String())
	}
}

// TestPackOutputDevice: `-o /dev/full` and `-o /dev/stdout` are refused
// and leave the device node and the symlink as they were. Both run in a
// private mount namespace on a throw-away tmpfs /dev, never against the
// machine's own /dev.
func TestPackOutputDevice(t *testing.T) {
	needRoot(t, "a private mount namespace with its own /dev")
	needTool(t, "unshare")
	wd := smallWorkdir(t)
	for _, tt := range []struct{ out, make, check, kind string }{
		{"/dev/full", "mknod /dev/full c 1 7", "test -c /dev/full", "a character device"},
		{"/dev/stdout", "ln -s /proc/self/fd/1 /dev/stdout", "test -L /dev/stdout", "a symbolic link"},
	} {
		script := `mount -t tmpfs -o size=64m parker-test-dev /dev && ` + tt.make +
			` && "$0" -q -C "$1" -o ` + tt.out + ` app; code=$?; ` + tt.check + ` || echo REPLACED >&2; exit $code`
		cmd := exec.Command("unshare", "--mount", "--propagation", "private", "sh", "-c", script, buildParker(t), wd)
		var se bytes.Buffer
		cmd.Stderr = &se
		err := cmd.Run()
		r := result{Stderr: se.String()}
		if ee, ok := err.(*exec.ExitError); ok {
			r.Code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		wantFailure(t, "-o "+tt.out, r, 1, "")
		if want := "parker: output " + tt.out + " is " + tt.kind + "; parker writes only regular files\n"; r.Stderr != want {
			t.Errorf("-o %s: stderr %q, want %q", tt.out, r.Stderr, want)
		}
	}
}
