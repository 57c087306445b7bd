// Package stub is the run-time entry of a packed executable: it reads its
// own leading --parker-* flags, attaches the payload (mountns) and runs the
// target (supervisor). It only wires those packages together.
//
// Running TARGETd ARGS:
//
//  1. a new private mount namespace for this thread (mountns.Enter);
//  2. the payload on a read-only, auto-clearing loop device, mounted as a
//     detached squashfs; a detached tmpfs for writes; an overlay of the two
//     over the directory holding TARGETd (mountns.Setup);
//  3. the target started from this thread, so it inherits the namespace,
//     and supervised until it ends (supervisor.Run, supervisor.Exit).
//
// Nothing is created on the host: the mounts exist only in the namespace,
// which the kernel tears down (and the loop device clears itself) when its
// last process exits, however it exits.
//
// This is the hot path of every start. Nothing here scales with the payload
// size: the digest is checked only on --parker-verify.
package stub

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/parkerpack/parker/image"
	"github.com/parkerpack/parker/image/trailer"
	"github.com/parkerpack/parker/mountns"
	"github.com/parkerpack/parker/supervisor"
)

// Exit statuses of a packed executable, docker-style, defined here once.
// Parker's own failures use 125 so a caller can tell them from the target's
// statuses (0-124 are the target's own, and so is anything else a target
// exits with); 126 and 127 are what a shell reports for a program that
// cannot be executed or does not exist. Bad --parker-* flags count as
// parker's failure (125), not as 2: 2 is a status many targets use.
const (
	ExitFailure       = 125
	ExitNotExecutable = supervisor.ExitNotExecutable
	ExitNotFound      = supervisor.ExitNotFound
)

// Environment.
const (
	EnvExe     = "PARKER_EXE"     // set for the target: absolute path of TARGETd
	EnvRoot    = "PARKER_ROOT"    // set for the target: where the workdir appears
	EnvVerbose = "PARKER_VERBOSE" // "1": log each step with its duration on stderr
)

const flagPrefix = "--parker-"

// mode is what the packed file was asked to do.
type mode int

const (
	modeRun mode = iota
	modeHelp
	modeInfo
	modeExtract
	modeMount
	modeOffset
)

// flags are the leading --parker-* arguments.
type flags struct {
	mode    mode
	json    bool   // --parker-info --json
	dir     string // --parker-extract DIR
	verify  bool
	overlay string
	args    []string // what is left for the target
}

type usageError string

func (e usageError) Error() string { return string(e) }

// parseFlags consumes the leading --parker-* flags of args (os.Args[1:]).
// Parsing stops at the first other argument, which goes to the target with
// everything after it, or at "--", which is consumed.
func parseFlags(args []string) (flags, error) {
	var f flags
	setMode := func(m mode, name string) error {
		if f.mode != modeRun {
			return usageError(name + " cannot be combined with another --parker- action")
		}
		f.mode = m
		return nil
	}
	i := 0
	for ; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			i++
			break
		}
		if !strings.HasPrefix(a, flagPrefix) {
			break
		}
		name, val, hasVal := strings.Cut(a, "=")
		var err error
		switch name {
		case "--parker-help":
			err = setMode(modeHelp, name)
		case "--parker-info":
			err = setMode(modeInfo, name)
			if i+1 < len(args) && args[i+1] == "--json" {
				f.json = true
				i++
			}
		case "--parker-offset":
			err = setMode(modeOffset, name)
		case "--parker-mount":
			err = setMode(modeMount, name)
		case "--parker-extract":
			err = setMode(modeExtract, name)
			if hasVal {
				f.dir = val
			} else if i+1 < len(args) && !strings.HasPrefix(args[i+1], "-") {
				f.dir = args[i+1]
				i++
			}
			hasVal = false
		case "--parker-verify":
			f.verify = true
		case "--parker-overlay":
			switch {
			case hasVal:
				f.overlay = val
			case i+1 < len(args):
				f.overlay = args[i+1]
				i++
			}
			if f.overlay == "" {
				return f, usageError("--parker-overlay needs a directory")
			}
			hasVal = false
		default:
			return f, usageError("unknown flag " + name + " (see --parker-help)")
		}
		if err != nil {
			return f, err
		}
		if hasVal {
			return f, usageError(name + " takes no value")
		}
	}
	if f.overlay != "" && f.mode != modeRun {
		return f, usageError("--parker-overlay applies only when running the target")
	}
	f.args = args[i:]
	return f, nil
}

const helpText = `Usage: %[1]s [--parker-FLAG...] [--] [ARGS...]

%[1]s is a program packed by parker: it runs %[2]s with ARGS inside its
packed directory, which appears merged over %[3]s
(private to the run; writes are discarded when it ends).

Flags, recognised only before the first other argument or "--":
  --parker-help            print this help and exit
  --parker-info [--json]   describe the payload (as "parker inspect")
  --parker-offset          print the payload's byte offset (for mount or
                           unsquashfs -o) and exit
  --parker-extract [DIR]   extract the packed directory to DIR (default
                           ./%[1]s.root) and exit; needs no privileges
  --parker-mount           mount the payload read-only, print where, and
                           wait until interrupted
  --parker-verify          check the payload's SHA-256 digest, then run
  --parker-overlay DIR     keep the target's writes in DIR instead of
                           discarding them

Environment: PARKER_VERBOSE=1 logs each step with its duration.
Exit status: the target's; 125 when parker itself fails, 126 when the
target cannot be executed, 127 when it is missing; 128+N when the target
is killed by signal N (re-raised, so the caller sees the same signal).
`

// Main runs a packed executable. self is the absolute path of the packed
// file, file that file, open (the descriptor its trailer was read through,
// so the hot path opens it once), t its verified trailer, args the process
// arguments (os.Args). It returns the process exit status.
func Main(self string, file *os.File, t *trailer.Trailer, args []string) int {
	r := &runner{self: self, t: t, start: time.Now()}
	if os.Getenv(EnvVerbose) == "1" {
		r.verbose = true
	}
	var rest []string
	if len(args) > 1 {
		rest = args[1:]
	}
	f, err := parseFlags(rest)
	if err != nil {
		return r.fail(err)
	}
	switch f.mode {
	case modeHelp:
		base := filepath.Base(self)
		fmt.Printf(helpText, base, t.Target, filepath.Dir(self))
		return 0
	case modeOffset:
		fmt.Println(t.Offset)
		return 0
	}
	r.file = file
	if f.verify {
		if err := r.verify(); err != nil {
			return r.fail(err)
		}
	}
	switch f.mode {
	case modeInfo:
		return r.info(f.json)
	case modeExtract:
		return r.extract(f.dir)
	case modeMount:
		return r.mount()
	}
	return r.run(f)
}

type runner struct {
	self    string
	t       *trailer.Trailer
	file    *os.File
	verbose bool
	start   time.Time
	last    time.Time
}

// fail prints one line naming the file and the cause, and returns 125.
func (r *runner) fail(err error) int {
	msg := err.Error()
	if errors.Is(err, mountns.ErrDenied) {
		msg = "cannot mount the payload: " + msg +
			"; running a packed file needs root (or extract it: " + filepath.Base(r.self) + " --parker-extract DIR)"
	}
	fmt.Fprintf(os.Stderr, "parker: %s: %s\n", r.self, msg)
	return ExitFailure
}

// logf logs a step and its duration since the previous one.
func (r *runner) logf(step string, d time.Duration) {
	if r.verbose {
		fmt.Fprintf(os.Stderr, "parker: %-40s %8.3f ms\n", step, float64(d.Microseconds())/1000)
	}
}

func (r *runner) step(name string) {
	now := time.Now()
	if r.last.IsZero() {
		r.last = r.start
	}
	r.logf(name, now.Sub(r.last))
	r.last = now
}

func (r *runner) verify() error {
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(r.file, int64(r.t.Offset), int64(r.t.Size))); err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	var sum [32]byte
	h.Sum(sum[:0])
	if sum != r.t.Digest {
		return fmt.Errorf("digest mismatch: payload is sha256:%s, trailer says sha256:%s (file damaged)",
			hex.EncodeToString(sum[:]), hex.EncodeToString(r.t.Digest[:]))
	}
	r.step("verify digest")
	return nil
}

// run mounts the view and runs the target in it.
func (r *runner) run(f flags) int {
	dir := filepath.Dir(r.self)
	if dir == "/" {
		// An overlay on / would not be seen: a process's root stays the
		// directory it was, not what is later mounted over it.
		return r.fail(errors.New("cannot run from the root directory; move it into a directory of its own"))
	}
	cwd, cwdErr := os.Getwd()
	sigs := supervisor.Catch() // before mounting: a signal now is held for the target
	if err := mountns.Enter(); err != nil {
		return r.fail(err)
	}
	r.step("enter private mount namespace")
	r.last = time.Now()
	_, err := mountns.Setup(mountns.Options{
		File:    r.file,
		Offset:  r.t.Offset,
		Size:    r.t.Size,
		Dir:     dir,
		Overlay: f.overlay,
		Log:     r.logf,
	})
	if err != nil {
		return r.fail(err)
	}
	r.last = time.Now()
	r.file.Close()

	target := filepath.Join(dir, filepath.FromSlash(r.t.Target))
	c := supervisor.Config{
		Path:    target,
		Args:    append([]string{filepath.Base(target)}, f.args...),
		Env:     environ(r.self, dir),
		Signals: sigs,
	}
	// The caller's cwd, re-resolved by path in the new view: a cwd at or
	// below dir still points into the directory we just covered.
	if cwdErr == nil && (cwd == dir || strings.HasPrefix(cwd, dir+"/")) {
		c.Dir = cwd
	}
	if r.verbose {
		c.Log = func(format string, args ...any) { r.step(fmt.Sprintf(format, args...)) }
	}
	st, err := supervisor.Run(c)
	if err != nil {
		var se *supervisor.StartError
		if errors.As(err, &se) {
			fmt.Fprintf(os.Stderr, "parker: %s: cannot run %s: %v\n", r.self, r.t.Target, se.Err)
			return se.ExitCode()
		}
		return r.fail(err)
	}
	r.step(fmt.Sprintf("target ended (status %d)", st.ExitCode()))
	return supervisor.Exit(st)
}

// environ is ours plus PARKER_EXE and PARKER_ROOT (replacing any inherited).
func environ(self, root string) []string {
	env := os.Environ()
	out := env[:0:0]
	for _, kv := range env {
		if !strings.HasPrefix(kv, EnvExe+"=") && !strings.HasPrefix(kv, EnvRoot+"=") {
			out = append(out, kv)
		}
	}
	return append(out, EnvExe+"="+self, EnvRoot+"="+root)
}

// mount mounts the payload read-only as a detached mount, which is in no
// mount namespace at all: it is reachable only through our descriptor, as
// /proc/PID/fd/N (by root, or anyone allowed to inspect this process), and
// vanishes with the descriptor, so even SIGKILL leaves nothing behind.
func (r *runner) mount() int {
	sq, dev, err := mountns.MountImage(r.file, r.t.Offset, r.t.Size)
	if err != nil {
		return r.fail(err)
	}
	r.step("loop attach and squashfs mount (" + dev + ")")
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	fmt.Printf("/proc/%d/fd/%d\n", os.Getpid(), sq)
	fmt.Fprintf(os.Stderr, "parker: %s mounted read-only at the path above (%s); interrupt to unmount\n",
		filepath.Base(r.self), dev)
	<-sigs
	syscall.Close(sq)
	return 0
}

// extract writes the packed directory to dir with the image reader, in user
// space: it needs no privileges.
func (r *runner) extract(dir string) int {
	if dir == "" {
		dir = filepath.Base(r.self) + ".root"
	}
	rd, err := image.NewReader(io.NewSectionReader(r.file, int64(r.t.Offset), int64(r.t.Size)), int64(r.t.Size))
	if err != nil {
		return r.fail(fmt.Errorf("read payload: %w", err))
	}
	err = rd.Extract(dir, image.ExtractOptions{
		Warn: func(s string) { fmt.Fprintf(os.Stderr, "parker: %s: warning: %s\n", r.self, s) },
	})
	if err != nil {
		return r.fail(fmt.Errorf("extract to %s: %w", dir, err))
	}
	r.step("extract to " + dir)
	fmt.Println(dir)
	return 0
}

// info prints what `parker inspect` prints, from the same image.Describe,
// so the two always agree (--json: the same object). Like inspect, it
// checks the digest: this reads the whole payload, unlike a run.
func (r *runner) info(asJSON bool) int {
	fi, err := r.file.Stat()
	if err != nil {
		return r.fail(err)
	}
	in, err := image.Describe(r.file, fi.Size(), r.self, true)
	if err != nil {
		return r.fail(err)
	}
	if asJSON {
		os.Stdout.Write(in.JSON())
		return 0
	}
	files := "unknown (" + in.ImageError + ")"
	if in.HaveImage {
		files = fmt.Sprint(in.Inodes)
	}
	digest := in.Digest + " (matches)"
	if !in.DigestOK {
		digest = in.Digest + " (MISMATCH: payload damaged)"
	}
	fmt.Printf("file:           %s\n", in.File)
	fmt.Printf("target:         %s\n", in.Target)
	fmt.Printf("format version: %d\n", in.FormatVersion)
	fmt.Printf("stub:           %d bytes\n", in.StubSize)
	fmt.Printf("payload:        %d bytes at offset %d\n", in.Size, in.Offset)
	fmt.Printf("digest:         %s\n", digest)
	fmt.Printf("compression:    %s (level %d), block size %d\n", in.Compression, in.Level, in.BlockSize)
	fmt.Printf("files:          %s\n", files)
	fmt.Printf("created by:     %s\n", in.CreatedBy)
	return 0
}
