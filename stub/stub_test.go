package stub

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"

	"github.com/parkerpack/parker/cgroup"
	"github.com/parkerpack/parker/image/trailer"
	"github.com/parkerpack/parker/supervisor"
)

func TestParseFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want flags
		err  bool
	}{
		{args: nil, want: flags{}},
		{args: []string{"a", "--parker-help"}, want: flags{args: []string{"a", "--parker-help"}}},
		{args: []string{"--parker-help"}, want: flags{mode: modeHelp, args: []string{}}},
		{args: []string{"--parker-info", "--json"}, want: flags{mode: modeInfo, json: true, args: []string{}}},
		{args: []string{"--parker-info", "--json", "--"}, want: flags{mode: modeInfo, json: true, args: []string{}}},
		{args: []string{"--parker-verify", "--parker-info"}, want: flags{mode: modeInfo, verify: true, args: []string{}}},
		{args: []string{"--parker-extract"}, want: flags{mode: modeExtract, args: []string{}}},
		{args: []string{"--parker-extract", "out"}, want: flags{mode: modeExtract, dir: "out", args: []string{}}},
		{args: []string{"--parker-extract=out"}, want: flags{mode: modeExtract, dir: "out", args: []string{}}},
		{args: []string{"--parker-verify", "--parker-overlay", "d", "x", "y"},
			want: flags{verify: true, overlay: "d", args: []string{"x", "y"}}},
		{args: []string{"--parker-overlay=d", "--", "--parker-help"},
			want: flags{overlay: "d", args: []string{"--parker-help"}}},
		{args: []string{"--", "--", "x"}, want: flags{args: []string{"--", "x"}}},
		{args: []string{"-x", "--parker-help"}, want: flags{args: []string{"-x", "--parker-help"}}},
		{args: []string{"--parker-bogus"}, err: true},
		{args: []string{"--parker-overlay"}, err: true},
		{args: []string{"--parker-overlay="}, err: true},
		{args: []string{"--parker-help=1"}, err: true},
		{args: []string{"--parker-info", "--parker-mount"}, err: true},
		{args: []string{"--parker-mount", "--parker-overlay", "d"}, err: true},
		// An action takes no arguments for the target: refused, not ignored.
		{args: []string{"--parker-info", "x", "--json"}, err: true},
		{args: []string{"--parker-info", "--json", "extra"}, err: true},
		{args: []string{"--parker-info", "--", "extra"}, err: true},
		{args: []string{"--parker-offset", "extra"}, err: true},
		{args: []string{"--parker-help", "extra"}, err: true},
		{args: []string{"--parker-mount", "extra"}, err: true},
		{args: []string{"--parker-extract", "out", "extra"}, err: true},
		{args: []string{"--parker-extract", "-x"}, err: true},
		{args: []string{"--parker-ls"}, want: flags{mode: modeList, args: []string{}}},
		{args: []string{"--parker-ls", "-l"}, want: flags{mode: modeList, long: true, args: []string{}}},
		{args: []string{"--parker-ls", "--json", "-l"}, want: flags{mode: modeList, long: true, json: true, args: []string{}}},
		{args: []string{"--parker-ls", "-l", "--parker-verify"}, want: flags{mode: modeList, long: true, verify: true, args: []string{}}},
		{args: []string{"--parker-ls", "-l", "--"}, want: flags{mode: modeList, long: true, args: []string{}}},
		{args: []string{"--parker-ls", "extra"}, err: true},
		{args: []string{"--parker-ls", "-l", "-l"}, err: true},
		{args: []string{"--parker-ls", "-l", "--", "-l"}, err: true},
		{args: []string{"--parker-ls", "--parker-info"}, err: true},
		{args: []string{"--parker-ls=x"}, err: true},
		{args: []string{"-l", "--parker-ls"}, want: flags{args: []string{"-l", "--parker-ls"}}},
		{args: []string{"--parker-memory", "100M", "--parker-cpus=0.5", "--parker-pids", "50", "x"},
			want: flags{limitFlags: [][2]string{{"memory", "100M"}, {"cpus", "0.5"}, {"pids", "50"}}, args: []string{"x"}}},
		{args: []string{"--parker-memory=0", "--", "--parker-pids"},
			want: flags{limitFlags: [][2]string{{"memory", "0"}}, args: []string{"--parker-pids"}}},
		{args: []string{"--parker-doctor"}, want: flags{mode: modeDoctor, args: []string{}}},
		{args: []string{"--parker-doctor", "x"}, err: true},
		{args: []string{"--parker-doctor", "--parker-info"}, err: true},
		{args: []string{"--parker-memory"}, err: true},
		{args: []string{"--parker-memory", "100"}, err: true},
		{args: []string{"--parker-cpus", "all"}, err: true},
		{args: []string{"--parker-pids", "-1"}, err: true},
		{args: []string{"--parker-pids", "5", "--parker-info"}, err: true},
		{args: []string{"--parker-mount", "--parker-memory", "1G"}, err: true},
	} {
		got, err := parseFlags(tc.args)
		if tc.err {
			if err == nil {
				t.Errorf("%q: no error, got %+v", tc.args, got)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%q: got %+v, %v; want %+v", tc.args, got, err, tc.want)
		}
	}
}

// TestLimits: a flag overrides the packed default it names, and only that
// one; 0 lifts a default.
func TestLimits(t *testing.T) {
	packed := trailer.Limits{Memory: 100 << 20, MilliCPUs: 500, Pids: 50}
	for _, tc := range []struct {
		args   []string
		packed trailer.Limits
		want   cgroup.Limits
	}{
		{nil, trailer.Limits{}, cgroup.Limits{}},
		{nil, packed, cgroup.Limits{Memory: 100 << 20, CPUs: 0.5, Pids: 50}},
		{[]string{"--parker-memory", "1G"}, packed, cgroup.Limits{Memory: 1 << 30, CPUs: 0.5, Pids: 50}},
		{[]string{"--parker-cpus", "0", "--parker-pids", "0"}, packed, cgroup.Limits{Memory: 100 << 20}},
		{[]string{"--parker-cpus", "1.5"}, trailer.Limits{}, cgroup.Limits{CPUs: 1.5}},
	} {
		f, err := parseFlags(tc.args)
		if got := f.limits(tc.packed); err != nil || got != tc.want {
			t.Errorf("%q over %+v: %+v, %v; want %+v", tc.args, tc.packed, got, err, tc.want)
		}
	}
}

func TestEnviron(t *testing.T) {
	t.Setenv("PARKER_EXE", "/old")
	t.Setenv("PARKER_ROOT", "/old")
	env := environ("/new/xd", "/new")
	n := 0
	for _, kv := range env {
		switch kv {
		case "PARKER_EXE=/new/xd", "PARKER_ROOT=/new":
			n++
		case "PARKER_EXE=/old", "PARKER_ROOT=/old":
			t.Errorf("inherited %s kept", kv)
		}
	}
	if n != 2 {
		t.Errorf("environ: %d of 2 variables set", n)
	}
}

func TestCannotStart(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "badshebang")
	os.WriteFile(script, []byte("#!/usr/bin/nope\n"), 0o755)
	for _, tc := range []struct {
		name     string
		se       supervisor.StartError
		verified bool
		msg      string
		code     int
	}{
		{"damaged", supervisor.StartError{Path: "/d/tool", Err: syscall.EIO}, false,
			"the packed file is damaged (reading tool: input/output error); check it with /d/toold --parker-verify", ExitFailure},
		{"damaged, digest right", supervisor.StartError{Path: "/d/tool", Err: syscall.EIO}, true,
			"cannot read tool from the payload (input/output error), though its digest is right; see the kernel log", ExitFailure},
		{"interpreter missing", supervisor.StartError{Path: script, Err: syscall.ENOENT}, false,
			"cannot run tool: its interpreter /usr/bin/nope is missing", ExitNotFound},
		{"target missing", supervisor.StartError{Path: filepath.Join(dir, "absent"), Err: syscall.ENOENT}, false,
			"cannot run tool: no such file or directory", ExitNotFound},
		{"not executable", supervisor.StartError{Path: script, Err: syscall.EACCES}, false,
			"cannot run tool: permission denied", ExitNotExecutable},
	} {
		msg, code := cannotStart("/d/toold", "tool", &tc.se, tc.verified)
		if msg != tc.msg || code != tc.code {
			t.Errorf("%s: got %q, %d; want %q, %d", tc.name, msg, code, tc.msg, tc.code)
		}
	}
}

// TestUsernsVerdict: each setting that forbids an unprivileged user
// namespace is named, with its value.
func TestUsernsVerdict(t *testing.T) {
	for _, tc := range []struct {
		set  map[string]string
		want string
	}{
		{map[string]string{"user.max_user_namespaces": "96549"}, "are allowed"},
		{map[string]string{"user.max_user_namespaces": "0"}, "user.max_user_namespaces=0"},
		{map[string]string{"kernel.unprivileged_userns_clone": "0"}, "kernel.unprivileged_userns_clone=0"},
		{map[string]string{"kernel.unprivileged_userns_clone": "1", "kernel.apparmor_restrict_unprivileged_userns": "1"},
			"restricted by AppArmor (kernel.apparmor_restrict_unprivileged_userns=1)"},
		{map[string]string{"kernel.apparmor_restrict_unprivileged_userns": "0"}, "are allowed"},
	} {
		if got := usernsVerdict(func(k string) string { return tc.set[k] }); !strings.Contains(got, tc.want) {
			t.Errorf("%v: %q, want %q in it", tc.set, got, tc.want)
		}
	}
}

// TestInEntry: a cwd at or below the packed file's directory maps into the
// entry where the entry has it; any other is kept as it is ("").
func TestInEntry(t *testing.T) {
	entry := t.TempDir()
	os.Mkdir(filepath.Join(entry, "sub"), 0o755)
	for _, tc := range []struct{ cwd, want string }{
		{"/srv/app", entry},
		{"/srv/app/sub", filepath.Join(entry, "sub")},
		{"/srv/app/missing", ""},
		{"/srv", ""},
		{"/home/ann", ""},
		{"/srv/application", ""},
	} {
		if got := inEntry(tc.cwd, "/srv/app", entry); got != tc.want {
			t.Errorf("inEntry(%q) = %q, want %q", tc.cwd, got, tc.want)
		}
	}
}
