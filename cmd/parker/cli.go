package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/parkerpack/parker/cache"
	"github.com/parkerpack/parker/cgroup"
	"github.com/parkerpack/parker/closure"
	"github.com/parkerpack/parker/image"
	"github.com/parkerpack/parker/image/trailer"
	"github.com/parkerpack/parker/internal/human"
	"github.com/parkerpack/parker/internal/walk"
	"github.com/parkerpack/parker/stub"
)

// release is the version of this source tree: the tag vX.Y.Z of a release
// names the same. Bump it when tagging.
const release = "v0.1.0"

// build says which build of release this is; hack/build.sh sets it at link
// time (-ldflags "-X main.build=...") to `git describe --tags --always
// --dirty`: the commit, or the tag on a tagged commit.
var build = ""

// parkerVersion is what --version prints after "parker " and what the
// trailer's created_by records: release, with the build as semver build
// metadata when it is not the release itself (v0.1.0+5b1692e,
// v0.1.0+5b1692e.dirty). A `go install ...@vX.Y.Z` build has no build
// string and reports the module version it was installed as.
func parkerVersion() string {
	switch {
	case build == "" || build == release:
	case strings.HasPrefix(build, release+"-"):
		return build // git describe past the tag: v0.1.0-3-g5b1692e
	default:
		return release + "+" + build
	}
	if bi, ok := debug.ReadBuildInfo(); ok && build == "" && strings.HasPrefix(bi.Main.Version, "v") {
		return bi.Main.Version
	}
	return release
}

const usageText = `Usage: parker [flags] TARGET
       parker inspect [--json] [--closure] FILE
       parker ls [-l] [--json] FILE
       parker cache list
       parker cache gc [--older-than AGE] [--max-size SIZE]

Pack the working directory and its entry program TARGET into one static
executable, TARGETd. Running TARGETd ARGS later runs TARGET ARGS inside the
packed directory.

TARGET is a path relative to the working directory (it may be in a
subdirectory). A target named "inspect", "ls", "cache", "help" or
"version" is written ./inspect or -- inspect.

Flags:
  -C, --dir DIR             working directory to pack (default ".")
  -o, --output FILE         output file (default: base name of TARGET plus "d",
                            in the current directory)
      --exclude PATTERN     leave out paths matching PATTERN (.dockerignore
                            syntax; repeatable; adds to .parkerignore)
      --compression NAME    zstd, gzip, xz, lz4 or none (default zstd)
      --level N             compression level (zstd 1-22, default 3;
                            gzip 1-9, default 6; others take none)
      --block-size SIZE     squashfs block size, a power of two from 4K to 1M
                            (131072, 128K, 1M; default 128K)
      --keep-owner          keep file owners (default: everything is 0:0)
      --memory SIZE         default memory limit of every run (100M, 1.5G;
                            the target is OOM-killed past it, exit 137)
      --cpus N              default CPU limit of every run, in CPUs (0.5, 2)
      --pids N              default limit of every run's processes and
                            threads
                            (a run's --parker-memory, --parker-cpus and
                            --parker-pids override these; 0 lifts one)
      --closure             also pack the libraries and the loader the
                            packed ELF programs need (found as this host's
                            loader finds them), so that they run where
                            those are missing or differ
      --closure-path DIR    a tree of this host a packed program finds by its
                            path (python's /usr/lib/python3.11): packed,
                            its programs' libraries too, and shown at DIR
                            to the run (repeatable; with --closure)
      --closure-lib NAME    a library only dlopen finds: a soname, found as
                            the target's libraries are, or a path
                            (repeatable; with --closure)
      --closure-allow-missing
                            a library that cannot be found is a warning,
                            not an error (with --closure)
  -q, --quiet               print nothing but errors
  -v, --verbose             also print warnings and each stage's duration
      --version             print the version and exit
  -h, --help                print this help and exit

Inspect flags:
      --json                print one JSON object
      --closure             list the closure a --closure pack carries: each
                            file, its SHA-256, what it is a copy of, and why

Ls flags (list the packed files, one path a line, like tar t):
  -l, --long                long listing: mode, uid/gid, size, mtime, path
      --json                print one JSON array, an object per entry

Cache (the extracted payloads of packed files that could not be mounted):
  list                      one entry a line: digest, target, size, last use,
                            whether a run uses it; least recently used first
  gc                        remove the entries no run uses, least recently
                            used first; with these flags, only as needed:
      --older-than AGE      only those last used longer ago (30m, 12h, 7d)
      --max-size SIZE       until the rest, in use included, fit in SIZE

Environment:
  PARKER_CACHE_DIR          the cache directory (default
                            $XDG_CACHE_HOME/parker or ~/.cache/parker)
  SOURCE_DATE_EPOCH         clamp every mtime and the image time to this
                            many seconds since the epoch

Exit status: 0 ok, 1 failure, 2 bad usage, 128+N killed by signal N.
`

// usageError is a mistake on the command line: exit 2 with a hint.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error {
	return &usageError{fmt.Sprintf(format, a...)}
}

// config is the parsed command line.
type config struct {
	inspect  bool
	list     bool   // ls
	cache    string // cache list, cache gc
	gc       cache.GCOptions
	long     bool // ls -l
	json     bool
	help     bool
	version  bool
	dir      string
	output   string
	excludes []string
	target   string // cleaned, slash-separated, relative to dir
	file     string // inspect, ls: the file to read
	opt      image.Options
	limits   trailer.Limits // the runs' default resource limits
	// --closure, --closure-lib, --closure-allow-missing
	closure             bool
	closurePaths        []string
	closureLibs         []string
	closureAllowMissing bool
	quiet               bool
	verbose             bool
}

// parseArgs parses the command line (without argv[0]). getenv reads the
// environment (SOURCE_DATE_EPOCH). Errors are *usageError.
func parseArgs(args []string, getenv func(string) string) (*config, error) {
	c := &config{}
	fs := pflag.NewFlagSet("parker", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	fs.SortFlags = false
	fs.StringVarP(&c.dir, "dir", "C", ".", "")
	fs.StringVarP(&c.output, "output", "o", "", "")
	fs.StringArrayVar(&c.excludes, "exclude", nil, "")
	comp := fs.String("compression", image.Zstd, "")
	level := fs.String("level", "", "")
	block := fs.String("block-size", "", "")
	keepOwner := fs.Bool("keep-owner", false, "")
	memory := fs.String("memory", "", "")
	cpus := fs.String("cpus", "", "")
	pids := fs.String("pids", "", "")
	fs.BoolVar(&c.closure, "closure", false, "")
	fs.StringArrayVar(&c.closureLibs, "closure-lib", nil, "")
	fs.StringArrayVar(&c.closurePaths, "closure-path", nil, "")
	fs.BoolVar(&c.closureAllowMissing, "closure-allow-missing", false, "")
	fs.BoolVarP(&c.quiet, "quiet", "q", false, "")
	fs.BoolVarP(&c.verbose, "verbose", "v", false, "")
	fs.BoolVar(&c.version, "version", false, "")
	fs.BoolVarP(&c.help, "help", "h", false, "")
	fs.BoolVar(&c.json, "json", false, "")
	fs.BoolVarP(&c.long, "long", "l", false, "")
	olderThan := fs.String("older-than", "", "")
	maxSize := fs.String("max-size", "", "")

	if err := fs.Parse(args); err != nil {
		return nil, usagef("%v", err)
	}
	if c.help || c.version {
		return c, nil
	}
	rest := fs.Args()
	// "help" and "version" alone mean --help and --version, unless they
	// came after "--".
	if len(rest) == 1 && fs.ArgsLenAtDash() != 0 {
		switch rest[0] {
		case "help":
			c.help = true
			return c, nil
		case "version":
			c.version = true
			return c, nil
		}
	}
	if len(rest) > 0 && rest[0] == "cache" && fs.ArgsLenAtDash() != 0 {
		return parseCache(c, fs, rest[1:], *olderThan, *maxSize)
	}
	if *olderThan != "" || *maxSize != "" {
		return nil, usagef("--older-than and --max-size apply only to cache gc")
	}
	// "inspect" and "ls" are subcommands unless they came after "--".
	if len(rest) > 0 && (rest[0] == "inspect" || rest[0] == "ls") && fs.ArgsLenAtDash() != 0 {
		cmd := rest[0]
		c.inspect, c.list = cmd == "inspect", cmd == "ls"
		rest = rest[1:]
		var bad []string
		fs.Visit(func(f *pflag.Flag) {
			switch f.Name {
			case "json", "quiet", "verbose", "help", "version":
			case "long":
				if !c.list {
					bad = append(bad, "--"+f.Name)
				}
			case "closure":
				if !c.inspect {
					bad = append(bad, "--"+f.Name)
				}
			default:
				bad = append(bad, "--"+f.Name)
			}
		})
		if len(bad) > 0 {
			return nil, usagef("%s does not take %s", cmd, strings.Join(bad, ", "))
		}
		switch len(rest) {
		case 0:
			return nil, usagef("%s: missing FILE", cmd)
		case 1:
			c.file = rest[0]
		default:
			return nil, usagef("%s: too many arguments: %s", cmd, strings.Join(rest[1:], " "))
		}
		return c, nil
	}
	if c.json {
		return nil, usagef("--json applies only to inspect and ls")
	}
	if c.long {
		return nil, usagef("-l applies only to ls")
	}
	if c.quiet && c.verbose {
		return nil, usagef("--quiet and --verbose exclude each other")
	}
	switch len(rest) {
	case 0:
		return nil, usagef("missing TARGET")
	case 1:
	default:
		return nil, usagef("too many arguments: %s (one TARGET only)", strings.Join(rest[1:], " "))
	}
	if rest[0] == "" {
		return nil, usagef("TARGET is empty")
	}
	target, err := walk.CleanTarget(rest[0])
	if err != nil {
		if rel, ok := relativeTarget(c.dir, rest[0]); ok {
			return nil, usagef("TARGET %s: %v: write %s", rest[0], err, rel)
		}
		return nil, usagef("TARGET %s: %v", rest[0], err)
	}
	c.target = target
	if c.dir == "" {
		return nil, usagef("--dir: empty directory name")
	}
	if fs.Changed("output") && c.output == "" {
		return nil, usagef("--output: empty file name")
	}
	if c.output == "-" {
		// A packed file is run and read at offsets: it must be a file.
		return nil, usagef("--output -: parker cannot write to standard output; a packed file must be a file (write ./- for a file named -)")
	}
	if c.output == "" {
		c.output = defaultOutput(c.target)
	}
	for _, p := range c.excludes {
		if err := walk.CheckExclude(p); err != nil {
			return nil, usagef("%v", err)
		}
	}

	c.opt = image.DefaultOptions()
	c.opt.Compression = strings.ToLower(*comp)
	c.opt.KeepOwner = *keepOwner
	def, _, _ := image.DefaultLevel(c.opt.Compression)
	c.opt.Level = def
	if *level != "" {
		n, err := strconv.Atoi(*level)
		if err != nil {
			return nil, usagef("--level: %q is not a number", *level)
		}
		c.opt.Level = n
	}
	if *block != "" {
		n, err := parseSize(*block)
		if err != nil {
			return nil, usagef("--block-size: %v", err)
		}
		c.opt.BlockSize = n
	}
	if err := c.opt.Validate(); err != nil {
		return nil, usagef("%v", err)
	}
	if c.limits, err = parseLimits(*memory, *cpus, *pids); err != nil {
		return nil, err
	}
	if !c.closure && (len(c.closureLibs) > 0 || len(c.closurePaths) > 0 || c.closureAllowMissing) {
		return nil, usagef("--closure-path, --closure-lib and --closure-allow-missing apply only with --closure")
	}
	for i, p := range c.closurePaths {
		clean := filepath.Clean(p)
		if !filepath.IsAbs(p) || clean == "/" || clean == "/proc" || strings.HasPrefix(clean, "/proc/") ||
			clean == "/"+closure.StoreName || strings.HasPrefix(clean, "/"+closure.StoreName+"/") || strings.ContainsRune(p, '\n') {
			return nil, usagef("--closure-path %q: an absolute directory of this host, not / nor in /proc or /%s", p, closure.StoreName)
		}
		for _, q := range c.closurePaths[:i] {
			if q == clean || strings.HasPrefix(clean, q+"/") || strings.HasPrefix(q, clean+"/") {
				return nil, usagef("--closure-path %s and %s: the same tree, or one inside the other; name it once", q, clean)
			}
		}
		c.closurePaths[i] = clean
	}
	for _, l := range c.closureLibs {
		if l == "" || strings.ContainsRune(l, '/') && !filepath.IsAbs(l) {
			return nil, usagef("--closure-lib %q: a soname (libfoo.so.1) or an absolute path", l)
		}
	}
	if s, ok := lookupEnv(getenv, "SOURCE_DATE_EPOCH"); ok {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 || n > 1<<32-1 {
			return nil, usagef("SOURCE_DATE_EPOCH=%q: want seconds since the epoch (0..4294967295)", s)
		}
		c.opt.ClampTime = n
	}
	return c, nil
}

// parseLimits reads the --memory, --cpus and --pids flags ("" when not
// given) as the trailer stores them.
func parseLimits(memory, cpus, pids string) (trailer.Limits, error) {
	var l cgroup.Limits
	for _, f := range [][2]string{{"memory", memory}, {"cpus", cpus}, {"pids", pids}} {
		if f[1] == "" {
			continue
		}
		if err := l.Set(f[0], f[1]); err != nil {
			return trailer.Limits{}, usagef("--%s: %v", f[0], err)
		}
	}
	return stub.PackedLimits(l), nil
}

// parseCache reads `parker cache list` and `parker cache gc [--older-than
// AGE] [--max-size SIZE]`; args are those after "cache".
func parseCache(c *config, fs *pflag.FlagSet, args []string, olderThan, maxSize string) (*config, error) {
	var bad []string
	fs.Visit(func(f *pflag.Flag) {
		switch f.Name {
		case "quiet", "verbose", "older-than", "max-size":
		default:
			bad = append(bad, "--"+f.Name)
		}
	})
	switch {
	case len(args) == 0:
		return nil, usagef("cache: missing list or gc")
	case args[0] != "list" && args[0] != "gc":
		return nil, usagef("cache: unknown command %q (list or gc)", args[0])
	case len(args) > 1:
		return nil, usagef("cache %s: too many arguments: %s", args[0], strings.Join(args[1:], " "))
	case len(bad) > 0:
		return nil, usagef("cache %s does not take %s", args[0], strings.Join(bad, ", "))
	case args[0] == "list" && (olderThan != "" || maxSize != ""):
		return nil, usagef("--older-than and --max-size apply only to cache gc")
	}
	c.cache = args[0]
	if olderThan != "" {
		d, err := parseAge(olderThan)
		if err != nil {
			return nil, usagef("--older-than: %v", err)
		}
		c.gc.OlderThan = d
	}
	if maxSize != "" {
		n, err := human.ParseSize(maxSize)
		if err != nil {
			return nil, usagef("--max-size: %v", err)
		}
		if n == 0 {
			return nil, usagef("--max-size: %q keeps nothing; to remove every entry not in use, give no flag", maxSize)
		}
		c.gc.MaxSize = n
	}
	return c, nil
}

// parseAge reads a duration as time.ParseDuration does (90s, 30m, 12h),
// and whole days (7d).
func parseAge(s string) (time.Duration, error) {
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n <= 0 || n > 100000 {
			return 0, fmt.Errorf("invalid age %q (want e.g. 30m, 12h or 7d)", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("invalid age %q (want e.g. 30m, 12h or 7d)", s)
	}
	return d, nil
}

// relativeTarget turns an absolute TARGET that lies inside the working
// directory dir into the relative path to write instead.
func relativeTarget(dir, target string) (string, bool) {
	if !filepath.IsAbs(target) {
		return "", false
	}
	inside := func(dir, target string) (string, bool) {
		rel, err := filepath.Rel(dir, target)
		if err != nil || rel == "." || rel == ".." || strings.HasPrefix(rel, "../") {
			return "", false
		}
		return rel, true
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", false
	}
	if rel, ok := inside(abs, target); ok {
		return rel, true
	}
	// The same with symlinks resolved, but for the target's own name:
	// a symlink there is the target as given.
	real, err1 := filepath.EvalSymlinks(abs)
	parent, err2 := filepath.EvalSymlinks(filepath.Dir(target))
	if err1 != nil || err2 != nil {
		return "", false
	}
	return inside(real, filepath.Join(parent, filepath.Base(target)))
}

// lookupEnv treats an empty variable as unset, as the reproducible-builds
// specification of SOURCE_DATE_EPOCH allows.
func lookupEnv(getenv func(string) string, key string) (string, bool) {
	if getenv == nil {
		return "", false
	}
	v := getenv(key)
	return v, v != ""
}

// defaultOutput names the output after the target: its base name plus "d",
// in the current directory (ipservice -> ipserviced, bin/python -> pythond).
func defaultOutput(target string) string {
	return path.Base(target) + "d"
}

// parseSize reads a byte count as human.ParseSize does, for a field of
// the superblock, an int32.
func parseSize(s string) (int, error) {
	n, err := human.ParseSize(s)
	if err != nil {
		return 0, err
	}
	if n > 1<<31-1 {
		return 0, fmt.Errorf("size %q too large", s)
	}
	return int(n), nil
}

// run executes the command line and returns the exit status.
func run(args []string, stdout, stderr io.Writer) int {
	c, err := parseArgs(args, os.Getenv)
	var ue *usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(stderr, "parker: %s\nTry 'parker --help' for more information.\n", ue.msg)
		return exitUsage
	}
	switch {
	case c.help:
		fmt.Fprint(stdout, usageText)
		return exitOK
	case c.version:
		fmt.Fprintf(stdout, "parker %s\n", parkerVersion())
		return exitOK
	case c.inspect:
		return inspect(c, stdout, stderr)
	case c.list:
		return list(c, stdout, stderr)
	case c.cache != "":
		return cacheCmd(c, stdout, stderr)
	}
	return pack(c, stderr)
}
