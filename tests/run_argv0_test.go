package tests

// The name the target is run by. A program finds itself through its
// argv[0] (python's sys.executable, a re-exec of argv[0]) and a script
// through its $0, so the target must be named as a direct run would name
// it: by the caller's path with the packed file's base name replaced by
// the target's path in the packed directory, or by its absolute path in
// the view when the packed file was found through PATH.

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestRunArgv0 runs a target in a subdirectory (bin/tool) in each way a
// packed file can be started, and checks the name the target sees, and
// that it can run itself again by that name (execvp, as a program does).
func TestRunArgv0(t *testing.T) {
	needRoot(t, "running a packed file")
	wd := tempDir(t, "argv0wd")
	os.Mkdir(filepath.Join(wd, "bin"), 0o755)
	gccBuild(t, "tool.c", filepath.Join(wd, "bin", "tool"))
	out := tempDir(t, "argv0out")
	f := runPack(t, wd, "bin/tool", filepath.Join(out, "toold"))
	os.Mkdir(filepath.Join(out, "sub"), 0o755) // a working directory inside the view
	// A link to the packed file from elsewhere, beside a decoy at the path
	// the link's name would give: that directory is not the view.
	links := tempDir(t, "argv0links")
	if err := os.Symlink(f, filepath.Join(links, "toold")); err != nil {
		t.Fatal(err)
	}
	os.Mkdir(filepath.Join(links, "bin"), 0o755)
	os.WriteFile(filepath.Join(links, "bin", "tool"), []byte("#!/bin/sh\necho decoy\n"), 0o755)

	abs := filepath.Join(out, "bin", "tool")
	for _, tc := range []struct {
		what, argv0, dir, want string
		pre                    []string // arguments before the tool's own
	}{
		{"./toold", "./toold", out, "./bin/tool", nil},
		{"./toold --", "./toold", out, "./bin/tool", []string{"--"}},
		{"absolute path", f, "/", abs, nil},
		{"relative path from elsewhere", filepath.Base(out) + "/toold", filepath.Dir(out),
			filepath.Base(out) + "/bin/tool", nil},
		{"relative path inside the view", "../toold", filepath.Join(out, "sub"), "../bin/tool", nil},
		{"link elsewhere", filepath.Join(links, "toold"), "/", abs, nil},
		{"bare name", "toold", "/", abs, nil},
		{"empty argv[0]", "", "/", abs, nil},
		{"argv[0] with a trailing slash", "toold/", out, abs, nil},
	} {
		exe := tc.argv0 // as a shell runs a path
		if !strings.Contains(exe, "/") || strings.HasSuffix(exe, "/") {
			exe = f // given any argv[0] by the program that runs it
		}
		for _, cmd := range []string{"args", "reexec"} {
			argv := append(append([]string{tc.argv0}, tc.pre...), cmd)
			r := runAs(t, exe, argv, tc.dir, "PATH=/usr/bin:/bin")
			if want := "argv0=" + tc.want + "\n"; r.Code != 0 || r.Stdout != want {
				t.Errorf("%s, %s: got %q (exit %d, stderr %q), want %q", tc.what, cmd, r.Stdout, r.Code, r.Stderr, want)
			}
		}
	}
	// A verbose run is the helper's, which names the target the same way.
	r := runAs(t, "./toold", []string{"./toold", "args"}, out, "PARKER_VERBOSE=1")
	if want := "argv0=./bin/tool\n"; r.Code != 0 || r.Stdout != want {
		t.Errorf("PARKER_VERBOSE=1: got %q (exit %d, stderr %q), want %q", r.Stdout, r.Code, r.Stderr, want)
	}
	// Found through PATH by a shell: the absolute path in the view.
	r = runAs(t, "/bin/sh", []string{"sh", "-c", "toold args && toold reexec"}, "/",
		"PATH="+out+":/usr/bin:/bin")
	if want := "argv0=" + abs + "\nargv0=" + abs + "\n"; r.Code != 0 || r.Stdout != want {
		t.Errorf("through PATH: got %q (exit %d, stderr %q), want %q", r.Stdout, r.Code, r.Stderr, want)
	}
}

// TestRunArgv0Python is the README's python: sys.executable, and the
// sys.executable of a python it starts through it, as a direct run of the
// same copy reports them.
func TestRunArgv0Python(t *testing.T) {
	needRoot(t, "running a packed file")
	host := pythonPacked(t)
	direct := tempDir(t, "pydirect")
	run(t, "cp", "/usr/bin/python3.11", filepath.Join(direct, "python"))
	code := "import subprocess, sys\nprint(sys.executable)\n" +
		"print(subprocess.run([sys.executable, '-c', 'import sys; print(sys.executable)'], " +
		"capture_output=True, text=True, check=True).stdout, end='')\n"
	sameAsDirect(t, direct, "python", host, []string{"-c", code})
}

// TestRunArgv0Script is a script that runs itself again through its $0,
// which the kernel sets to the path the script was executed through.
func TestRunArgv0Script(t *testing.T) {
	needRoot(t, "running a packed file")
	script := "#!/bin/sh\necho \"\\$0=$0 $*\"\n[ \"$1\" = again ] || exec \"$0\" again\n"
	host := filepath.Dir(packScript(t, "self.sh", script, nil))
	direct := tempDir(t, "shdirect")
	os.WriteFile(filepath.Join(direct, "self.sh"), []byte(script), 0o755)
	sameAsDirect(t, direct, "self.sh", host, nil)
}

// sameAsDirect runs prog in directory direct, and its packed file progd in
// directory host, with args, in the ways a caller starts a program: ./NAME,
// its absolute path, a path relative to another working directory, and
// its name found through PATH. Each packed run must print what the direct
// run prints, with the directory names exchanged. A directory of shims
// (as pyenv puts on PATH) holds a decoy prog ahead of host on PATH: a
// target named by its bare name found the decoy instead of itself.
func sameAsDirect(t *testing.T, direct, prog, host string, args []string) {
	t.Helper()
	shims := tempDir(t, "shims")
	os.WriteFile(filepath.Join(shims, prog), []byte("#!/bin/sh\necho shim $0\n"), 0o755)
	shimPath := "PATH=" + shims + ":/usr/bin:/bin"
	swap := strings.NewReplacer(direct, host, filepath.Base(direct), filepath.Base(host))
	type start struct {
		what, argv0, dir, env string
	}
	starts := func(dir, name, path string) []start {
		return []start{
			{"./NAME", "./" + name, dir, shimPath},
			{"absolute path", filepath.Join(dir, name), "/", shimPath},
			{"relative path from elsewhere", filepath.Base(dir) + "/" + name, filepath.Dir(dir), shimPath},
			{"through PATH", name, "/", path},
		}
	}
	// As a shell runs it: a name with a slash is the path executed (and
	// what a script gets as $0); a bare name is found on PATH.
	exe := func(s start, dir, name string) string {
		if strings.Contains(s.argv0, "/") {
			return s.argv0
		}
		return filepath.Join(dir, name)
	}
	packed := starts(host, prog+"d", "PATH="+shims+":"+host+":/usr/bin:/bin")
	for i, d := range starts(direct, prog, "PATH="+direct+":"+shims+":/usr/bin:/bin") {
		want := runAs(t, exe(d, direct, prog), append([]string{d.argv0}, args...), d.dir, d.env)
		if want.Code != 0 {
			t.Fatalf("direct run, %s: exit %d, stderr %q", d.what, want.Code, want.Stderr)
		}
		p := packed[i]
		got := runAs(t, exe(p, host, prog+"d"), append([]string{p.argv0}, args...), p.dir, p.env)
		if w := swap.Replace(want.Stdout); got.Code != 0 || got.Stdout != w {
			t.Errorf("%s: got %q (exit %d, stderr %q), want %q as a direct run", p.what, got.Stdout, got.Code, got.Stderr, w)
		}
	}
}

// runAs runs exe with argv (argv[0] included) in dir, with env added to
// ours. A relative exe is relative to dir.
func runAs(t *testing.T, exe string, argv []string, dir string, env ...string) runRes {
	t.Helper()
	var so, se strings.Builder
	c := &exec.Cmd{Path: exe, Args: argv, Dir: dir, Env: append(os.Environ(), env...), Stdout: &so, Stderr: &se}
	err := c.Run()
	r := runRes{}
	fillStatus(t, &r, c, err)
	r.Stdout, r.Stderr = so.String(), se.String()
	return r
}
