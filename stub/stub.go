// Package stub is the run-time entry of a packed executable in Go: it reads
// its own leading --parker-* flags, attaches the payload (mountns) and runs
// the target (supervisor). It only wires those packages together.
//
// A packed file made by make's parker starts in the C stub (stub/cstub),
// which does a plain run by itself and hands everything else to the
// helper (cmd/parker-helper): this package, with the image codecs. This
// package is also the whole stub of files made by a parker without a C
// compiler (cmd/parker-stub) or built by go install (parker itself).
//
// It does not link the image codecs, so that cmd/parker-stub starts
// quickly. The requests that read the image in user space (--parker-info,
// --parker-ls, --parker-extract) go to Extended, which the programs that
// link the codecs (parker itself, cmd/parker-helper) set to
// stub/userspace's Run; cmd/parker-stub hands them to the helper
// executable its packed file carries (helper.go).
//
// Running TARGETd ARGS:
//
//  1. the cleanup sidecar, outside the namespace (supervisor.Launch);
//  2. a new private mount namespace for this thread (mountns.Enter);
//  3. the payload on a read-only, auto-clearing loop device, mounted as a
//     detached squashfs; a detached tmpfs for writes; an overlay of the two
//     over the directory holding TARGETd (mountns.Setup);
//  4. the run's cgroup made (cgroup.Create) and the sidecar briefed
//     (Handle.Commit): it moves the run into the cgroup once the target
//     runs;
//  5. the target executed in this process's place, from this thread, so it
//     keeps the namespace and the pid the caller started, named so that it
//     finds itself as when run directly (targetName, supervisor.Exec).
//
// Nothing is created on the host but a --parker-overlay DIR (locked for
// the run) and the run's cgroup (removed by the sidecar): the mounts exist only in the namespace, which the kernel tears
// down (and the loop device clears itself) when its last process exits,
// however it exits.
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

	"github.com/parkerpack/parker/cache"
	"github.com/parkerpack/parker/cgroup"
	"github.com/parkerpack/parker/image/trailer"
	"github.com/parkerpack/parker/mountns"
	"github.com/parkerpack/parker/supervisor"
	"golang.org/x/sys/unix"
)

// Exit statuses of a packed executable, docker-style, defined here once.
// Parker's own failures use 125 so a caller can tell them from the target's
// statuses (0-124 are the target's own, and so is anything else a target
// exits with); 126 and 127 are what a shell reports for a program that
// cannot be executed or does not exist. Bad --parker-* flags count as
// parker's failure (125), not as 2: 2 is a status many targets use.
const (
	ExitFailure       = 125
	ExitNotExecutable = 126
	ExitNotFound      = 127
)

// Environment.
const (
	EnvExe     = "PARKER_EXE"     // set for the target: absolute path of TARGETd
	EnvRoot    = "PARKER_ROOT"    // set for the target: where the workdir appears
	EnvVerbose = "PARKER_VERBOSE" // "1": log each step with its duration on stderr
)

const flagPrefix = "--parker-"

// Main runs a packed executable. self is the absolute path of the packed
// file, file that file, open (the descriptor its trailer was read through,
// so the hot path opens it once), t its verified trailer, args the process
// arguments (os.Args). It returns the process exit status.
func Main(self string, file *os.File, t *trailer.Trailer, args []string) int {
	r := &runner{self: self, t: t, args: args, start: time.Now()}
	if len(args) > 0 {
		r.caller = args[0]
	}
	if os.Getenv(EnvVerbose) == "1" {
		r.verbose = true
	}
	if v, ok := os.LookupEnv(EnvSignals); ok {
		os.Unsetenv(EnvSignals)
		r.signals, _ = supervisor.ParseSignalState(v) // unreadable: as the runtime left them
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
		defaults := ""
		if !t.Limits.Zero() {
			defaults = ", here " + f.limits(t.Limits).String()
		}
		fmt.Printf(helpText, base, t.Target, filepath.Dir(self), ExitFailure, ExitNotExecutable, ExitNotFound, defaults)
		return 0
	case modeOffset:
		fmt.Println(t.Offset)
		return 0
	case modeDoctor:
		return r.doctor(os.Stdout)
	}
	r.file = file
	if f.mode == modeInfo || f.mode == modeList || f.mode == modeExtract {
		// These read the image in user space, with its codecs.
		req := Request{Self: self, File: file, Trailer: t, JSON: f.json, Long: f.long, Dir: f.dir,
			Verify: f.verify, Verbose: r.verbose, Action: Extract}
		switch f.mode {
		case modeInfo:
			req.Action = Info
		case modeList:
			req.Action = List
		}
		if Extended != nil {
			return Extended(req)
		}
		return r.helper(args)
	}
	if f.verify {
		if err := r.verify(); err != nil {
			return r.fail(err)
		}
	}
	if f.mode == modeMount {
		return r.mount()
	}
	return r.run(f)
}

// Action is what a Request asks for.
type Action int

const (
	Extract Action = iota // --parker-extract
	Info                  // --parker-info
	List                  // --parker-ls
)

// Request is a --parker-info, --parker-ls or --parker-extract request, for
// Extended.
type Request struct {
	Self    string           // absolute path of the packed file
	File    *os.File         // the packed file, open
	Trailer *trailer.Trailer // its trailer
	Action  Action
	JSON    bool   // --parker-info --json, --parker-ls --json
	Long    bool   // --parker-ls -l
	Dir     string // --parker-extract DIR ("" for the default)
	Verify  bool   // --parker-verify
	Verbose bool   // PARKER_VERBOSE=1
}

// Extended carries out the requests that read the image in user space
// (--parker-info, --parker-ls, --parker-extract) and returns the exit
// status. Programs that link the image codecs set it (to stub/userspace's
// Run); the lean stub leaves it nil and hands such requests to the helper
// executable its packed file carries, so that its own start stays free of
// codec tables.
var Extended func(Request) int

// Fail prints one line on stderr naming the packed file and the cause, and
// returns ExitFailure: how every run-time failure of parker itself ends.
func Fail(self string, err error) int {
	fmt.Fprintf(os.Stderr, "parker: %s: %s\n", self, err)
	return ExitFailure
}

type runner struct {
	self    string
	args    []string // ours, os.Args, for the helper
	caller  string   // our argv[0]
	t       *trailer.Trailer
	file    *os.File
	verbose bool
	signals *supervisor.SignalState // the caller's, from the C stub
	userns  bool                    // in the user namespace the C stub made us (enterUserns)
	// checkedCache: the cache directory the C stub found before it made
	// that namespace (locateCache), or "".
	checkedCache string
	// checkLibs: a library the target takes from this machine is not
	// where the pack host had it (needsMet); handOver looks for it.
	checkLibs bool
	// closure is the closure entry in use (closureStore), its lock handed
	// to the target.
	closure *cache.Entry
	cwd     string // the caller's working directory, as the kernel names it
	cwdErr  error
	start   time.Time
	last    time.Time
}

// fail prints one line naming the file and the cause, and returns
// ExitFailure. A refused mount (PARKER_MODE=kernel) gets the way out that
// needs no privileges.
func (r *runner) fail(err error) int {
	if errors.Is(err, mountns.ErrDenied) {
		// Only with PARKER_MODE=kernel: auto falls back to the cache.
		err = fmt.Errorf("cannot mount the payload: %w; %s=kernel needs root (CAP_SYS_ADMIN); "+
			"%s=auto runs the target from the extraction cache instead", err, EnvMode, EnvMode)
	}
	return Fail(r.self, err)
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
	if err := Verify(r.file, r.t); err != nil {
		return err
	}
	r.step("verify digest")
	return nil
}

// Verify checks the payload of file against the digest in its trailer t.
func Verify(file *os.File, t *trailer.Trailer) error {
	h := sha256.New()
	if _, err := io.CopyBuffer(h, io.NewSectionReader(file, int64(t.Offset), int64(t.Size)), make([]byte, 1<<20)); err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	var sum [32]byte
	h.Sum(sum[:0])
	if sum != t.Digest {
		return fmt.Errorf("digest mismatch: payload is sha256:%s, trailer says sha256:%s (file damaged)",
			hex.EncodeToString(sum[:]), hex.EncodeToString(t.Digest[:]))
	}
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
	r.checkLibs = !needsMet(r.t.Needs)
	// Limits that cannot hold fail the run before anything is started.
	lim := f.limits(r.t.Limits)
	if err := lim.Validate(); err != nil {
		return r.fail(fmt.Errorf("the run's limits: %w", err))
	}
	mode, err := ParseMode(os.Getenv(EnvMode))
	if err != nil {
		return r.fail(err)
	}
	// The kernel's name of the cwd, not $PWD (which os.Getwd prefers): a
	// cwd reached through a symlink is still the directory we cover.
	r.cwd, r.cwdErr = syscall.Getwd()
	// The sidecar starts first, outside the namespace (see
	// supervisor/sidecar.go), and waits for its plan.
	var exe *os.File
	var exeSize int64
	if r.selfStub() {
		exe, exeSize = r.file, int64(r.t.StubSize)
	}
	side, err := supervisor.Launch(exe, exeSize)
	if err != nil {
		return r.fail(err)
	}
	r.step(fmt.Sprintf("start cleanup sidecar (pid %d)", side.Pid))
	// What the C stub says of the FUSE rung: it tried it, where the
	// kernel refused it a mount namespace or a loop device (or
	// PARKER_MODE=fuse), and failed (we may be in the user namespace it
	// made, without privileges: the cache is left); or it made us a user
	// namespace, as we asked (enterUserns), with CAP_SYS_ADMIN there.
	if os.Getenv(EnvInView) == "1" {
		// The C stub mounted the view, here, and could not start the
		// target in it: once more, to say why.
		os.Unsetenv(EnvInView)
		return r.runInView(f, side, lim)
	}
	rung := takeRungEnv()
	r.userns, r.checkedCache = rung.entered, rung.cacheDir
	switch {
	case rung.fuseTried && mode == ModeFUSE:
		return r.fail(fmt.Errorf("%s=fuse: %w", EnvMode, r.whyNotFUSE(rung.failed)))
	case rung.fuseTried:
		return r.runExtracted(f, side, lim, nil, fmt.Errorf("%s; FUSE: %w", rung.kernel, r.whyNotFUSE(rung.failed)))
	}
	if err := mountns.Enter(); err != nil {
		if !errors.Is(err, mountns.ErrDenied) || mode == ModeKernel {
			return r.fail(err)
		}
		// A user namespace, which only the C stub can make us: for
		// FUSE, or else for the cache's copy under an overlay.
		fuseErr := r.fuseForUs()
		if !rung.entered && r.cStub() && usernsAllowed(readSysctl) && (mode != ModeFUSE || fuseErr == nil) {
			return r.enterUserns(err)
		}
		if mode == ModeFUSE {
			return r.fail(fmt.Errorf("%s=fuse: %w", EnvMode, fuseErr))
		}
		if mode == ModeExtract {
			return r.runExtracted(f, side, lim, nil, nil)
		}
		return r.runExtracted(f, side, lim, nil, fmt.Errorf("%w; FUSE: %w", err, fuseErr))
	}
	r.step("enter private mount namespace")
	var ov *mountns.Overlay
	if f.overlay != "" {
		var err error
		if ov, err = openOverlay(f.overlay, dir); err != nil {
			return r.fail(err)
		}
		// Held by the target, and by what it starts, as long as the
		// view lives: the kernel drops the lock when they have all
		// ended, however they end.
		if err := ov.Inherit(); err != nil {
			return r.fail(err)
		}
		r.step("lock overlay dir " + ov.Path)
	}
	r.last = time.Now()
	o := mountns.Options{
		File:    r.file,
		Offset:  r.t.Offset,
		Size:    r.t.Size,
		Dir:     dir,
		Overlay: ov,
		Log:     r.logf,
	}
	if r.t.Flags&trailer.Closure != 0 {
		o.Store = trailer.StoreName
		if errors.Is(r.closureStore(&o), errNeedCodecs) {
			return r.helper(r.args)
		}
	}
	if mode == ModeExtract {
		return r.runExtracted(f, side, lim, &o, nil)
	}
	var kernelErr error
	if rung.entered && rung.kernel != "" {
		kernelErr = errors.New(rung.kernel) // why we asked for the user namespace
	}
	if mode != ModeFUSE && !rung.entered {
		kernelErr = mountns.Setup(o)
		if kernelErr != nil && (mode == ModeKernel || !errors.Is(kernelErr, mountns.ErrDenied)) {
			return r.fail(kernelErr)
		}
	}
	if mode == ModeFUSE || rung.entered || kernelErr != nil {
		// The namespace is ours, but the loop devices are not (a
		// container's user namespace, or the one the C stub made us):
		// FUSE, where /dev/fuse is ours, or else the cache's copy.
		err := fuseRefused(readSysctl)
		if err == nil {
			err = r.setupFUSE(o, f.keepChildren)
		}
		if err != nil {
			if errors.Is(err, errNeedCodecs) {
				return r.helper(r.args)
			}
			var refused fuseRefusal
			if mode == ModeFUSE {
				return r.fail(fmt.Errorf("%s=fuse: %w", EnvMode, err))
			}
			if !errors.Is(err, mountns.ErrDenied) && !errors.As(err, &refused) {
				return r.fail(fmt.Errorf("FUSE: %w", err))
			}
			why := fmt.Errorf("FUSE: %w", err)
			if kernelErr != nil {
				why = fmt.Errorf("%w; %w", kernelErr, why)
			}
			return r.runExtracted(f, side, lim, &o, why)
		}
	}
	r.last = time.Now()
	return r.runInView(f, side, lim)
}

// runInView runs the target in the view mounted over the directory
// holding the packed file, in the run's mount namespace.
func (r *runner) runInView(f flags, side *supervisor.Handle, lim cgroup.Limits) int {
	r.file.Close()
	dir := filepath.Dir(r.self)
	c := supervisor.Config{Env: environ(r.self, dir), Signals: r.signals}
	// The caller's cwd, re-resolved by path in the new view: a cwd at or
	// below dir still points into the directory we just covered.
	if r.cwdErr == nil && (r.cwd == dir || strings.HasPrefix(r.cwd, dir+"/")) {
		c.Dir = r.cwd
	}
	c.Path = targetName(r.caller, r.t.Target, filepath.Join(dir, filepath.FromSlash(r.t.Target)), c.Dir)
	c.Args = append([]string{c.Path}, f.args...)
	return r.handOver(f, side, lim, true, false, c, "")
}

// handOver starts the target as c says, in this process's place, once the
// sidecar is briefed: about the run's mount namespace (ns: the stub is in
// one of the run's own, whose processes are the run's) and its cgroup, made
// here with limits lim. The run joins the cgroup before the exec when it
// has limits, which must hold from the target's first instruction, or when
// join asks (nothing else would tell what the target forks before the
// sidecar moves it); otherwise the sidecar moves it, off the start's path.
// warn, when set, is printed just before the exec. It returns only when
// the target could not be started, with the exit status.
func (r *runner) handOver(f flags, side *supervisor.Handle, lim cgroup.Limits, ns, join bool, c supervisor.Config, warn string) int {
	if r.checkLibs {
		if lib := supervisor.MissingLibrary(c); lib != "" {
			fmt.Fprintf(os.Stderr, "parker: %s: cannot run %s: the library %s is missing here; pack it with parker --closure to carry its loader and libraries\n",
				r.self, r.t.Target, lib)
			return ExitNotFound
		}
		r.step("libraries: not all where the pack host had them; the loader names none missing")
	}
	plan := supervisor.Plan{Name: filepath.Base(r.self), Pid: os.Getpid(), Tid: unix.Gettid(),
		KeepChildren: f.keepChildren, Verbose: r.verbose}
	var err error
	if ns {
		if plan.Namespace, err = os.Readlink("/proc/thread-self/ns/mnt"); err != nil {
			return r.fail(fmt.Errorf("read the run's mount namespace: %w", err))
		}
	}
	if plan.Group, err = r.cgroup(side.Pid, lim); err != nil {
		return r.fail(err)
	}
	if err := side.Commit(plan); err != nil {
		if plan.Group != nil {
			plan.Group.Remove()
		}
		return r.fail(err)
	}
	if plan.Group == nil && !ns {
		r.step("cleanup: none (no cgroup, no mount namespace): what the target leaves running stays")
	} else {
		r.step("cleanup by " + plan.Mechanism())
	}
	if plan.Group != nil && (join || lim != (cgroup.Limits{})) {
		// The sidecar removes the cgroup if we fail from here on.
		if err := plan.Group.Join(0); err != nil {
			if lim != (cgroup.Limits{}) {
				return r.fail(fmt.Errorf("cannot apply the run's limits (%s): %w", lim, err))
			}
			return r.fail(fmt.Errorf("join the run's cgroup: %w", err))
		}
		r.step("join cgroup (limits: " + lim.String() + ")")
	}
	if warn != "" {
		fmt.Fprintln(os.Stderr, warn)
	}
	if r.userns {
		if err := dropKept(); err != nil {
			return r.fail(err)
		}
	}
	r.step("exec " + c.Path)
	err = supervisor.Exec(c)
	// Still here: the target could not be started, and never ran. The
	// sidecar cleans up when we exit.
	var se *supervisor.StartError
	if errors.As(err, &se) {
		msg, code := cannotStart(r.self, r.t.Target, se, f.verify)
		fmt.Fprintf(os.Stderr, "parker: %s: %s\n", r.self, msg)
		return code
	}
	return r.fail(err)
}

// cgroup makes the run's cgroup with limits lim, owned by the sidecar (pid
// owner). Without limits, the sidecar moves the run into it once the
// target runs: a move costs the kernel an RCU grace period after an idle
// moment (18 ms on the test VM), too long to wait for before the exec.
// Where no cgroup can be made (no hierarchy, no delegation) it returns
// nil, and the sidecar finds the run's processes by their mount namespace
// alone; unless the run has limits, which only a cgroup can apply: then it
// fails, saying why, rather than run the target unlimited.
func (r *runner) cgroup(owner int, lim cgroup.Limits) (*cgroup.Group, error) {
	o, err := cgroup.OptionsFromEnv(os.Getenv)
	if err != nil {
		return nil, err
	}
	l, err := cgroup.Detect(o)
	var g *cgroup.Group
	if err == nil {
		g, err = cgroup.Create(l, owner, lim)
	}
	switch {
	case err != nil && lim != (cgroup.Limits{}):
		return nil, fmt.Errorf("cannot apply the run's limits (%s): %w", lim, err)
	case err != nil:
		r.step("no cgroup: " + err.Error())
		return nil, nil
	}
	r.step("make cgroup")
	return g, nil
}

// selfStub reports whether this program is the packed file's own stub
// (the Go stub, or parker itself), not the helper, which runs from memory.
func (r *runner) selfStub() bool {
	var a, b unix.Stat_t
	return unix.Stat("/proc/self/exe", &a) == nil && unix.Fstat(int(r.file.Fd()), &b) == nil &&
		a.Dev == b.Dev && a.Ino == b.Ino
}

// openOverlay opens and locks the --parker-overlay directory dir for a run
// whose view covers view, and says what to do when it is refused.
func openOverlay(dir, view string) (*mountns.Overlay, error) {
	ov, err := mountns.OpenOverlay(dir, view)
	switch {
	case errors.Is(err, mountns.ErrInView):
		return nil, fmt.Errorf("--parker-overlay %s: %w; choose a DIR outside %s", dir, err, view)
	case errors.Is(err, mountns.ErrBusy):
		return nil, fmt.Errorf("--parker-overlay %s: %w; wait for it to end or choose another DIR", dir, err)
	case err != nil:
		return nil, fmt.Errorf("--parker-overlay %s: %w", dir, err)
	}
	return ov, nil
}

// cannotStart says why target, which never ran, could not start, and
// returns the exit status: the image could not be read (parker's failure:
// the packed file is damaged), the target or its interpreter is missing,
// or it cannot be executed. verified is whether --parker-verify passed.
func cannotStart(self, target string, se *supervisor.StartError, verified bool) (string, int) {
	if se.Unreadable() {
		if verified {
			// Not the bytes, then: the disk under them, or a kernel that
			// cannot read this image (it logs which block).
			return fmt.Sprintf("cannot read %s from the payload (%v), though its digest is right; see the kernel log",
				target, se.Err), ExitFailure
		}
		return fmt.Sprintf("the packed file is damaged (reading %s: %v); check it with %s --parker-verify",
			target, se.Err, self), ExitFailure
	}
	if interp := se.MissingLoader(); interp != "" {
		return fmt.Sprintf("cannot run %s: its loader %s (ELF interpreter) is missing here; pack it with parker --closure to carry its loader and libraries",
			target, interp), ExitNotFound
	}
	if interp := se.MissingInterpreter(); interp != "" {
		return fmt.Sprintf("cannot run %s: its interpreter %s is missing", target, interp), ExitNotFound
	}
	msg := fmt.Sprintf("cannot run %s: %v", target, se.Err)
	if se.Missing() {
		return msg, ExitNotFound
	}
	return msg, ExitNotExecutable
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

// mount carries out --parker-mount: the payload mounted read-only over the
// directory holding the packed file, in a mount namespace of this thread's
// own, where the packed files appear beside it, as for a run. It prints
// /proc/TID/root/DIR, the way into that namespace: a real directory that
// the user (root, or whoever may trace this process) can cd into and list.
// The host's mount table never changes, and the mount goes away with the
// process however it ends, even by SIGKILL (the namespace dies with it, and
// the loop device clears itself).
func (r *runner) mount() int {
	if err := mountns.Enter(); err != nil {
		return r.fail(err)
	}
	sq, dev, err := mountns.MountImage(r.file, r.t.Offset, r.t.Size)
	if err != nil {
		return r.fail(err)
	}
	r.step("loop attach and squashfs mount (" + dev + ")")
	dir := filepath.Dir(r.self)
	if err := mountns.AttachAt(sq, dir); err != nil {
		return r.fail(err)
	}
	if dir == "/" {
		// /proc/TID/root leads to the root beneath a mount on "/": make
		// the image this thread's root, so the path leads into it.
		if err := mountns.ChrootFD(sq); err != nil {
			return r.fail(err)
		}
	}
	syscall.Close(sq)
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	// /proc/PID/root would be the main thread's view, which Go may not
	// run this goroutine on.
	// ("/" for the packed file in /, where a bare /proc/TID/root would
	// look like a symlink to ls.)
	fmt.Printf("/proc/%d/root%s\n", syscall.Gettid(), dir)
	fmt.Fprintf(os.Stderr, "parker: %s mounted read-only at the path above (%s); interrupt to unmount\n",
		filepath.Base(r.self), dev)
	<-sigs
	return 0
}
