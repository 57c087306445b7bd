package tests

// What the target is given, as if run directly: its arguments, its
// environment (plus PARKER_EXE and PARKER_ROOT), its standard streams and
// its working directory.

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestRunArgs(t *testing.T) {
	needRoot(t, "running a packed file")
	f := toolPacked(t)
	args := []string{"plain", "with space", `"double"`, `'single'`, "new\nline", "", "tab\there",
		"--parker-help", "-", "--", "ünïcode", "$HOME", "*", "back\\slash", ""}
	r := runFile(t, f, append([]string{"args"}, args...))
	// Run by its absolute path, the target is named by its own (see
	// run_argv0_test.go).
	argv0 := "argv0=" + filepath.Join(filepath.Dir(f), "tool") + "\n"
	want := argv0 + hexArgs(args)
	if r.Code != 0 || r.Stdout != want {
		t.Fatalf("exit %d, stderr %q\ngot:\n%s\nwant:\n%s", r.Code, r.Stderr, r.Stdout, want)
	}
	// "--" ends parker's flags and is consumed; what follows is the
	// target's, even --parker-* lookalikes.
	r = runFile(t, f, []string{"--", "args", "--parker-info", "--"})
	if want := argv0 + hexArgs([]string{"--parker-info", "--"}); r.Stdout != want {
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
