package main

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/parkerpack/parker/cache"
	"github.com/parkerpack/parker/image"
	"github.com/parkerpack/parker/image/trailer"
)

func env(kv ...string) func(string) string {
	return func(k string) string {
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i] == k {
				return kv[i+1]
			}
		}
		return ""
	}
}

func TestParseArgs(t *testing.T) {
	tests := []struct {
		name  string
		args  []string
		env   func(string) string
		check func(t *testing.T, c *config)
	}{
		{"defaults", []string{"ipservice"}, nil, func(t *testing.T, c *config) {
			if c.target != "ipservice" || c.output != "ipserviced" || c.dir != "." {
				t.Errorf("target %q output %q dir %q", c.target, c.output, c.dir)
			}
			if c.opt.Compression != image.Zstd || c.opt.Level != 3 || c.opt.BlockSize != 128<<10 || c.opt.ClampTime != -1 || c.opt.KeepOwner {
				t.Errorf("opt %+v", c.opt)
			}
		}},
		{"subdirectory target", []string{"-C", "/srv/app", "bin/python"}, nil, func(t *testing.T, c *config) {
			if c.target != "bin/python" || c.output != "pythond" || c.dir != "/srv/app" {
				t.Errorf("target %q output %q dir %q", c.target, c.output, c.dir)
			}
		}},
		{"target cleaned", []string{"./bin//../bin/python"}, nil, func(t *testing.T, c *config) {
			if c.target != "bin/python" {
				t.Errorf("target %q", c.target)
			}
		}},
		{"flags after target", []string{"python", "-o", "out", "--level=19", "-q"}, nil, func(t *testing.T, c *config) {
			if c.output != "out" || c.opt.Level != 19 || !c.quiet {
				t.Errorf("%+v", c)
			}
		}},
		{"long forms", []string{"--dir=w", "--output=o", "--compression=gzip", "--block-size=1M", "--keep-owner", "--verbose", "t"}, nil, func(t *testing.T, c *config) {
			if c.dir != "w" || c.output != "o" || c.opt.Compression != image.Gzip || c.opt.Level != 6 ||
				c.opt.BlockSize != 1<<20 || !c.opt.KeepOwner || !c.verbose {
				t.Errorf("%+v", c)
			}
		}},
		{"excludes repeat", []string{"--exclude", "*.log", "--exclude", "a,b", "t"}, nil, func(t *testing.T, c *config) {
			if strings.Join(c.excludes, "|") != "*.log|a,b" {
				t.Errorf("excludes %q", c.excludes)
			}
		}},
		{"xz no level", []string{"--compression", "xz", "t"}, nil, func(t *testing.T, c *config) {
			if c.opt.Level != 0 {
				t.Errorf("level %d", c.opt.Level)
			}
		}},
		{"source date epoch", []string{"t"}, env("SOURCE_DATE_EPOCH", "1700000000"), func(t *testing.T, c *config) {
			if c.opt.ClampTime != 1700000000 {
				t.Errorf("clamp %d", c.opt.ClampTime)
			}
		}},
		{"empty epoch is unset", []string{"t"}, env("SOURCE_DATE_EPOCH", ""), func(t *testing.T, c *config) {
			if c.opt.ClampTime != -1 {
				t.Errorf("clamp %d", c.opt.ClampTime)
			}
		}},
		{"inspect", []string{"inspect", "--json", "pythond"}, nil, func(t *testing.T, c *config) {
			if !c.inspect || !c.json || c.file != "pythond" {
				t.Errorf("%+v", c)
			}
		}},
		{"inspect json first", []string{"--json", "inspect", "x"}, nil, func(t *testing.T, c *config) {
			if !c.inspect || !c.json || c.file != "x" {
				t.Errorf("%+v", c)
			}
		}},
		{"target named inspect after --", []string{"--", "inspect"}, nil, func(t *testing.T, c *config) {
			if c.inspect || c.target != "inspect" || c.output != "inspectd" {
				t.Errorf("%+v", c)
			}
		}},
		{"target ./inspect", []string{"./inspect"}, nil, func(t *testing.T, c *config) {
			if c.inspect || c.target != "inspect" {
				t.Errorf("%+v", c)
			}
		}},
		{"ls", []string{"ls", "pythond"}, nil, func(t *testing.T, c *config) {
			if !c.list || c.inspect || c.long || c.json || c.file != "pythond" {
				t.Errorf("%+v", c)
			}
		}},
		{"ls -l --json, flags anywhere", []string{"-l", "ls", "x", "--json"}, nil, func(t *testing.T, c *config) {
			if !c.list || !c.long || !c.json || c.file != "x" {
				t.Errorf("%+v", c)
			}
		}},
		{"ls --long", []string{"ls", "--long", "x"}, nil, func(t *testing.T, c *config) {
			if !c.list || !c.long || c.file != "x" {
				t.Errorf("%+v", c)
			}
		}},
		{"target named ls after --", []string{"--", "ls"}, nil, func(t *testing.T, c *config) {
			if c.list || c.target != "ls" || c.output != "lsd" {
				t.Errorf("%+v", c)
			}
		}},
		{"target ./ls", []string{"./ls"}, nil, func(t *testing.T, c *config) {
			if c.list || c.target != "ls" {
				t.Errorf("%+v", c)
			}
		}},
		{"help", []string{"-h"}, nil, func(t *testing.T, c *config) {
			if !c.help {
				t.Error("no help")
			}
		}},
		{"version wins over missing target", []string{"--version"}, nil, func(t *testing.T, c *config) {
			if !c.version {
				t.Error("no version")
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := parseArgs(tt.args, tt.env)
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, c)
		})
	}
}

func TestParseArgsUsageErrors(t *testing.T) {
	tests := []struct {
		args []string
		env  func(string) string
		want string
	}{
		{nil, nil, "missing TARGET"},
		{[]string{"a", "b"}, nil, "too many arguments"},
		{[]string{"--nope", "t"}, nil, "unknown flag"},
		{[]string{"-o"}, nil, "needs an argument"},
		{[]string{"/usr/bin/python"}, nil, "relative"},
		{[]string{"-C", "/usr", "/usr/bin/python"}, nil, "TARGET /usr/bin/python: must be a path relative to the working directory: write bin/python"},
		{[]string{"-C", "/usr", "/usr"}, nil, "TARGET /usr: must be a path relative to the working directory"},
		{[]string{"../python"}, nil, "outside"},
		{[]string{"a/../../python"}, nil, "outside"},
		{[]string{"."}, nil, "not a directory"},
		{[]string{"bin/"}, nil, "not a directory"},
		{[]string{""}, nil, "empty"},
		{[]string{"--compression", "bzip2", "t"}, nil, "unknown compression"},
		{[]string{"--level", "23", "t"}, nil, "out of range"},
		{[]string{"--level", "abc", "t"}, nil, "not a number"},
		{[]string{"--compression", "lz4", "--level", "1", "t"}, nil, "takes no level"},
		{[]string{"--block-size", "100K", "t"}, nil, "power of two"},
		{[]string{"--block-size", "2M", "t"}, nil, "power of two"},
		{[]string{"--block-size", "lots", "t"}, nil, "invalid size"},
		{[]string{"--exclude", "!", "t"}, nil, `--exclude "!": not a pattern`},
		{[]string{"--exclude", "[", "t"}, nil, `--exclude "[": syntax error in pattern`},
		{[]string{"-o", "", "t"}, nil, "empty file name"},
		{[]string{"-o", "-", "t"}, nil, "--output -: parker cannot write to standard output"},
		{[]string{"--output=-", "t"}, nil, "a packed file must be a file"},
		{[]string{"-q", "-v", "t"}, nil, "exclude each other"},
		{[]string{"--json", "t"}, nil, "--json applies only to inspect and ls"},
		{[]string{"-l", "t"}, nil, "-l applies only to ls"},
		{[]string{"inspect", "-l", "x"}, nil, "inspect does not take --long"},
		{[]string{"ls", "--closure", "x"}, nil, "ls does not take --closure"},
		{[]string{"--closure-path", "/usr/lib", "t"}, nil, "apply only with --closure"},
		{[]string{"--closure", "--closure-path", "rel", "t"}, nil, "an absolute directory"},
		{[]string{"--closure", "--closure-path", "/proc/x", "t"}, nil, "an absolute directory"},
		{[]string{"--closure", "--closure-path", "/usr/lib", "--closure-path", "/usr/lib/x", "t"}, nil, "one inside the other"},
		{[]string{"--closure", "--closure-path", "/usr/lib", "--closure-path", "/usr/lib/", "t"}, nil, "the same tree"},
		{[]string{"ls"}, nil, "ls: missing FILE"},
		{[]string{"ls", "a", "b"}, nil, "ls: too many arguments: b"},
		{[]string{"ls", "-o", "y", "a"}, nil, "ls does not take --output"},
		{[]string{"ls", "-x", "a"}, nil, "unknown shorthand flag: 'x'"},
		{[]string{"inspect"}, nil, "missing FILE"},
		{[]string{"inspect", "a", "b"}, nil, "too many"},
		{[]string{"inspect", "--level", "3", "a"}, nil, "does not take --level"},
		{[]string{"--memory", "100", "t"}, nil, "--memory: memory limit of 100 bytes is below the minimum of 1M"},
		{[]string{"--memory", "lots", "t"}, nil, "--memory: invalid size"},
		{[]string{"--cpus", "half", "t"}, nil, "--cpus: invalid number of CPUs"},
		{[]string{"--cpus", "0.001", "t"}, nil, "--cpus: CPU limit 0.001 is below the minimum"},
		{[]string{"--pids", "-1", "t"}, nil, "--pids: process limit -1 is negative"},
		{[]string{"inspect", "--pids", "3", "a"}, nil, "does not take --pids"},
		{[]string{"cache"}, nil, "cache: missing list or gc"},
		{[]string{"cache", "clear"}, nil, `cache: unknown command "clear"`},
		{[]string{"cache", "list", "x"}, nil, "cache list: too many arguments: x"},
		{[]string{"cache", "list", "--older-than", "1h"}, nil, "apply only to cache gc"},
		{[]string{"cache", "gc", "--json"}, nil, "cache gc does not take --json"},
		{[]string{"cache", "gc", "--older-than", "soon"}, nil, `--older-than: invalid age "soon"`},
		{[]string{"cache", "gc", "--older-than", "-1h"}, nil, `--older-than: invalid age "-1h"`},
		{[]string{"cache", "gc", "--max-size", "0"}, nil, "keeps nothing"},
		{[]string{"--older-than", "1d", "t"}, nil, "apply only to cache gc"},
		{[]string{"t"}, env("SOURCE_DATE_EPOCH", "yesterday"), "SOURCE_DATE_EPOCH"},
		{[]string{"t"}, env("SOURCE_DATE_EPOCH", "-1"), "SOURCE_DATE_EPOCH"},
	}
	for _, tt := range tests {
		_, err := parseArgs(tt.args, tt.env)
		var ue *usageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("parseArgs(%q) = %v, want usage error containing %q", tt.args, err, tt.want)
		}
	}
}

// TestParseLimits: --memory, --cpus and --pids become the trailer's
// default limits; none given, none set.
func TestParseLimits(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want trailer.Limits
	}{
		{[]string{"t"}, trailer.Limits{}},
		{[]string{"--memory", "100M", "--cpus", "0.5", "--pids", "50", "t"}, trailer.Limits{Memory: 100 << 20, MilliCPUs: 500, Pids: 50}},
		{[]string{"--memory=1.5G", "--cpus=2", "t"}, trailer.Limits{Memory: 3 << 29, MilliCPUs: 2000}},
		{[]string{"--cpus", "0.3333", "--memory", "0", "t"}, trailer.Limits{MilliCPUs: 333}},
	} {
		c, err := parseArgs(tc.args, nil)
		if err != nil || c.limits != tc.want {
			t.Errorf("parseArgs(%q): limits %+v, %v; want %+v", tc.args, c.limits, err, tc.want)
		}
	}
}

// TestCacheCommand: parker cache list and gc on the cache that
// PARKER_CACHE_DIR names: an entry in use is listed so and kept.
func TestCacheCommand(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("PARKER_CACHE_DIR", dir)
	c := &cache.Cache{Dir: dir}
	fill := func(tmp string) error { return os.WriteFile(filepath.Join(tmp, "tool"), []byte("x"), 0o755) }
	old, _, err := c.Open(sha256.Sum256([]byte("old")), "bin/old", fill)
	if err != nil {
		t.Fatal(err)
	}
	old.Close()
	held, _, err := c.Open(sha256.Sum256([]byte("held")), "held", fill)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	var out, errb bytes.Buffer
	if code := run([]string{"cache", "list"}, &out, &errb); code != 0 {
		t.Fatalf("cache list: exit %d, %s", code, errb.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "DIGEST") || !strings.Contains(out.String(), " old ") ||
		!regexp.MustCompile(`(?m) held .* yes$`).MatchString(out.String()) {
		t.Errorf("cache list:\n%s", out.String())
	}
	if !strings.Contains(errb.String(), "2 entries") {
		t.Errorf("cache list: stderr %q", errb.String())
	}
	out.Reset()
	errb.Reset()
	if code := run([]string{"cache", "gc", "-v"}, &out, &errb); code != 0 || !strings.Contains(errb.String(), "removed 1 entries") ||
		!strings.Contains(errb.String(), " old (") {
		t.Errorf("cache gc: exit %d, stderr %q", code, errb.String())
	}
	if _, err := os.Stat(filepath.Join(held.Path, "tool")); err != nil {
		t.Errorf("gc removed the entry in use: %v", err)
	}
}

func TestRunExitCodes(t *testing.T) {
	for _, tt := range []struct {
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{[]string{"--help"}, 0, "Usage: parker", ""},
		{[]string{"--version"}, 0, "parker ", ""},
		{[]string{"help"}, 0, "Usage: parker", ""},
		{[]string{"version"}, 0, "parker ", ""},
		{[]string{"-C", t.TempDir(), "--", "help"}, 1, "", "parker: target help: no such file"},
		{[]string{}, 2, "", "parker: missing TARGET\nTry 'parker --help'"},
		{[]string{"--block-size", "x", "t"}, 2, "", "parker: --block-size: invalid size"},
		{[]string{"-C", t.TempDir(), "missing"}, 1, "", "parker: target missing: no such file"},
		{[]string{"inspect", "/nonexistent/file"}, 1, "", "parker: inspect /nonexistent/file: no such file"},
		{[]string{"ls", "/nonexistent/file"}, 1, "", "parker: ls /nonexistent/file: no such file or directory\n"},
		{[]string{"ls", "-l", "/"}, 1, "", "parker: ls /: not a regular file\n"},
		{[]string{"ls", "--json", "/etc/hostname"}, 1, "", "parker: ls /etc/hostname: not a packed file (no parker trailer)\n"},
		{[]string{"ls"}, 2, "", "parker: ls: missing FILE\nTry 'parker --help'"},
	} {
		var out, errb bytes.Buffer
		code := run(tt.args, &out, &errb)
		if code != tt.code || !strings.Contains(out.String(), tt.stdout) || !strings.HasPrefix(errb.String(), tt.stderr) {
			t.Errorf("run(%q) = %d, stdout %q, stderr %q; want %d, %q, %q", tt.args, code, out.String(), errb.String(), tt.code, tt.stdout, tt.stderr)
		}
		if strings.Count(errb.String(), "\n") > 2 {
			t.Errorf("run(%q): stderr has more than the error and the hint: %q", tt.args, errb.String())
		}
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int{
		"131072": 131072, "128K": 128 << 10, "128k": 128 << 10, "128KiB": 128 << 10, "128KB": 128 << 10,
		"1M": 1 << 20, "1m": 1 << 20, "1MiB": 1 << 20, "4096": 4096, "4096B": 4096, " 64K ": 64 << 10, "1G": 1 << 30,
	} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "K", "-1", "1T", "12Q", "0x100", "99999999999", "4G", "2G", "1 M B"} {
		if got, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q) = %d, want an error", in, got)
		}
	}
}

func TestDefaultOutput(t *testing.T) {
	for in, want := range map[string]string{
		"ipservice": "ipserviced", "python": "pythond", "bin/python": "pythond", "a/b/c.sh": "c.shd",
	} {
		if got := defaultOutput(in); got != want {
			t.Errorf("defaultOutput(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParkerVersion(t *testing.T) {
	old := build
	defer func() { build = old }()
	for _, c := range []struct{ build, want string }{
		{"", release},
		{release, release},
		{"5b1692e", release + "+5b1692e"},
		{"5b1692e-dirty", release + "+5b1692e-dirty"},
		{release + "-3-g5b1692e", release + "-3-g5b1692e"},
	} {
		build = c.build
		if got := parkerVersion(); got != c.want {
			t.Errorf("build %q: parkerVersion() = %q, want %q", c.build, got, c.want)
		}
	}
	if !regexp.MustCompile(`^v\d+\.\d+\.\d+$`).MatchString(release) {
		t.Errorf("release %q is not vMAJOR.MINOR.PATCH", release)
	}
}
