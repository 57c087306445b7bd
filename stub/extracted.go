package stub

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
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

// EnvMode forces a rung of the ladder a run takes (see ParseMode).
const EnvMode = "PARKER_MODE"

// The unprivileged rung's environment (stub/cstub/fuse.c): the C stub
// starts its FUSE server with EnvFUSEServer set to the packed file's path
// (and EnvFUSECopyDir when it gives it the cache directory, to write the
// helper's copy into: stub/userspace), and tells the helper, when it hands a run over from a user namespace of
// its own, which step of that rung failed, and how, in EnvFUSEFailed, and
// what refused the kernel's rung before it in EnvKernelRefused.
const (
	EnvFUSEServer  = "PARKER_FUSE_SERVER"
	EnvFUSECopyDir = "PARKER_FUSE_COPY_DIR"
	// EnvCacheChecked: the cache directory the C stub found (cache.Locate's
	// rules) before the user namespace it hands the run over in.
	EnvCacheChecked  = "PARKER_CACHE_CHECKED"
	EnvFUSEFailed    = "PARKER_FUSE_FAILED"
	EnvKernelRefused = "PARKER_KERNEL_REFUSED" // what stopped the kernel's rung first
	// EnvInView: the C stub mounted the view (in a user namespace of
	// the run's) and the target could not be started in it.
	EnvInView = "PARKER_IN_VIEW"
)

// A Mode is how a run gets at its payload.
type Mode int

const (
	// ModeAuto takes the first rung that works: the kernel's mount,
	// then the extraction cache.
	ModeAuto Mode = iota
	// ModeKernel: the payload mounted by the kernel (a loop device and
	// squashfs, under a tmpfs overlay, in a private mount namespace).
	ModeKernel
	// ModeExtract: the payload extracted once into the cache
	// (package cache), and the target run from there.
	ModeExtract
	// ModeFUSE: the payload served by FUSE in a user namespace of the
	// run's own: the C stub's alone (stub/cstub/fuse.c).
	ModeFUSE
)

// ParseMode reads PARKER_MODE: auto (or empty), kernel, fuse or extract.
func ParseMode(s string) (Mode, error) {
	switch s {
	case "", "auto":
		return ModeAuto, nil
	case "kernel":
		return ModeKernel, nil
	case "extract":
		return ModeExtract, nil
	case "fuse":
		return ModeFUSE, nil
	}
	return 0, fmt.Errorf("%s=%q: want auto, kernel, fuse or extract", EnvMode, s)
}

// Unpack extracts the payload of file (whose trailer is t) into the empty
// directory dir as a cache entry: a hostile image's tricks refused or
// neutralised, every entry left read-only (the cache relies on it), and
// the payload's digest checked as it is read, the entry not to be
// published when it differs; subdir, when set, is the directory of the
// payload to extract instead of the whole (a closure entry's). The
// programs that link the image codecs (parker, the helper) set it to
// stub/userspace's Unpack; the lean Go stub hands a run that needs it to
// the helper.
var Unpack func(file *os.File, t *trailer.Trailer, dir, subdir string) error

// errNeedCodecs: a fill in a stub without the image codecs.
var errNeedCodecs = errors.New("the image codecs are the helper's")

// locateCache finds the cache directory (cache.Locate), or takes the one
// the C stub found (checked) before it handed us the run in a user
// namespace of its: there every owner the namespace does not map, root
// among them, looks alike (the overflow uid), and Locate could not tell a
// directory in root's from one in another user's, which could swap it.
func locateCache(checked string) (*cache.Cache, error) {
	if filepath.IsAbs(checked) {
		return &cache.Cache{Dir: checked}, nil
	}
	return cache.Locate(os.Getenv)
}

// errClosureNeedsNS: a closure's programs find their loader at
// /StoreName, which only a mount namespace of the run's can show.
var errClosureNeedsNS = errors.New("this packed file carries its programs' libraries (parker --closure), " +
	"which a run shows at /" + trailer.StoreName + " in a mount namespace of its own, and none can be made here")

// runExtracted runs the target from the payload's entry in the extraction
// cache, made first if need be: the rung for a caller the kernel will not
// mount the payload for, nor FUSE (why says what refused them; nil when
// PARKER_MODE asked for it).
//
// With view (the stub is in a mount namespace of the run's own, where it
// may mount: root's, or a user namespace's), the entry is the lower layer
// of the same overlay as on the other rungs, over the directory holding
// the packed file, writes going to a tmpfs (or --parker-overlay's DIR).
// Without one (no namespace may be made: a seccomp filter, user
// namespaces turned off), the packed files are not merged over that
// directory: the target sees them at PARKER_ROOT, the entry, read-only,
// and a caller whose working directory is that directory starts the
// target in the entry; one warning line says so.
func (r *runner) runExtracted(f flags, side *supervisor.Handle, lim cgroup.Limits, view *mountns.Options, why error) int {
	if f.overlay != "" && view == nil {
		return r.failRung(why, errors.New("--parker-overlay needs the payload mounted in a mount namespace of the run's own"))
	}
	if view == nil && r.t.Flags&trailer.Closure != 0 {
		return r.failRung(why, errClosureNeedsNS)
	}
	c, err := locateCache(r.checkedCache)
	if err != nil {
		return r.failRung(why, err)
	}
	r.step("cache directory " + c.Dir)
	fill := func(tmp string) error {
		if Unpack == nil {
			return errNeedCodecs
		}
		return Unpack(r.file, r.t, tmp, "")
	}
	e, filled, err := c.Open(r.t.Digest, r.t.Target, fill)
	if errors.Is(err, errNeedCodecs) {
		return r.helper(r.args)
	}
	if err != nil {
		return r.failRung(why, fmt.Errorf("extract the payload into the cache: %w", err))
	}
	if filled {
		r.step("extract into " + e.Path)
	} else {
		r.step("found " + e.Path)
	}
	// Held by the target and what it starts, so that the entry is in use
	// (cache gc leaves it) for as long as they run.
	if _, err := unix.FcntlInt(e.Lock().Fd(), unix.F_SETFD, 0); err != nil {
		return r.fail(fmt.Errorf("keep the cache entry's lock: %w", err))
	}
	dir := filepath.Dir(r.self)
	var code int
	mounted := false
	if view != nil {
		var err error
		if code, err = r.runOverEntry(f, side, lim, view, e.Path); err == nil {
			mounted = true
		} else if f.overlay != "" || !mountns.InUserns() || !errors.Is(err, unix.EPERM) && !errors.Is(err, unix.EINVAL) {
			// Root's overlay must hold: modes do not keep root from
			// changing the copy, run straight from it.
			return r.fail(err)
		} else {
			// A kernel whose overlayfs a user namespace may not mount
			// (before Linux 5.11): straight from the copy, then.
			if why == nil {
				why = err
			} else {
				why = fmt.Errorf("%w; %w", why, err)
			}
		}
	}
	if !mounted && r.t.Flags&trailer.Closure != 0 {
		return r.failRung(why, errClosureNeedsNS)
	}
	if !mounted {
		r.file.Close()
		cfg := supervisor.Config{Env: environ(r.self, e.Path), Signals: r.signals}
		if cwd, err := syscall.Getwd(); err == nil {
			cfg.Dir = inEntry(cwd, dir, e.Path)
		}
		cfg.Path = targetName(r.caller, r.t.Target, filepath.Join(e.Path, filepath.FromSlash(r.t.Target)), cfg.Dir)
		cfg.Args = append([]string{cfg.Path}, f.args...)
		// Without a namespace of the run's, the sidecar could not find
		// what the target forks before it moves the target into the
		// cgroup: the run joins it first.
		warn := fmt.Sprintf("parker: %s: warning: %s; running from the read-only copy in the cache, "+
			"%s=%s: the packed files are not merged over %s", filepath.Base(r.self), rungReason(why), EnvRoot, e.Path, dir)
		code = r.handOver(f, side, lim, view != nil, true, cfg, warn)
	}
	// The lock is e's *os.File, which a garbage collection would close
	// before the exec hands it on, were e unreachable meanwhile.
	runtime.KeepAlive(e)
	return code
}

// runOverEntry mounts the view o describes with the cache's entry as its
// payload, and runs the target in it, as on the other rungs. It returns
// an error, having run nothing, when the view cannot be mounted.
func (r *runner) runOverEntry(f flags, side *supervisor.Handle, lim cgroup.Limits, o *mountns.Options, entry string) (int, error) {
	lower, err := unix.Open(entry, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("open the cache entry: %w", err)
	}
	defer unix.Close(lower)
	v := *o
	v.Lower = lower
	v.UserXattr = mountns.InUserns()
	v.OwnerWrite = true
	r.last = time.Now()
	if err := mountns.Setup(v); err != nil {
		return 0, fmt.Errorf("the cache's copy under an overlay: %w", err)
	}
	r.last = time.Now()
	return r.runInView(f, side, lim), nil
}

// rungReason says why a run takes the extraction cache.
func rungReason(why error) string {
	if why == nil {
		return EnvMode + "=extract"
	}
	return "mounting is not allowed here (" + deniedText(why) + ")"
}

// deniedText is why's text without the mark mountns puts on a refusal.
func deniedText(why error) string {
	return strings.ReplaceAll(why.Error(), " ("+mountns.ErrDenied.Error()+")", "")
}

// failRung fails a run that could take no rung: why the kernel's mount
// (and FUSE) was refused (nil: not tried) and why the cache could not be
// used.
func (r *runner) failRung(why, err error) int {
	if why == nil {
		return r.fail(err)
	}
	return r.fail(fmt.Errorf("cannot run: the kernel will not mount the payload (%s), and the extraction cache cannot be used: %w", deniedText(why), err))
}

// inEntry is the working directory for a target run from entry: where
// the caller's cwd is dir (the directory holding the packed file) or a
// directory below it that the entry has too, its counterpart in the entry;
// otherwise "", the caller's own, kept as it is (the caller may be in a
// directory it could not enter again by its path).
func inEntry(cwd, dir, entry string) string {
	rel, err := filepath.Rel(dir, cwd)
	if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		return ""
	}
	in := filepath.Join(entry, rel)
	if st, err := os.Stat(in); err == nil && st.IsDir() {
		return in
	}
	return ""
}

// closureStore puts the payload's closure store (parker --closure) on
// disk, in the extraction cache's closure entry (cache.ClosureName), made
// on the first run, and points o at it: read from there, the closure's
// libraries stay in the page cache from one run to the next, where the
// payload's are read anew at each run (each mounts the image afresh). The
// entry is in use (its lock held, by the target too) for the run. Where
// the cache cannot be had, the payload's store serves, slower, and a
// verbose run says why; errNeedCodecs: the entry must be made, and only
// the helper can.
func (r *runner) closureStore(o *mountns.Options) error {
	c, err := locateCache(r.checkedCache)
	var e *cache.Entry
	if err == nil {
		e, _, err = c.OpenName(cache.ClosureName(r.t.Digest, r.t.Target), func(tmp string) error {
			if Unpack == nil {
				return errNeedCodecs
			}
			return Unpack(r.file, r.t, tmp, trailer.StoreName)
		})
	}
	if errors.Is(err, errNeedCodecs) {
		return err
	}
	var fd int
	if err == nil {
		if fd, err = unix.Open(e.Path, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0); err == nil {
			_, err = unix.FcntlInt(e.Lock().Fd(), unix.F_SETFD, 0)
		}
		if err != nil {
			e.Close()
		}
	}
	if err != nil {
		r.step("the closure's store from the payload (" + err.Error() + ")")
		return nil
	}
	r.closure, o.StoreDir = e, fd
	r.step("the closure's store from " + e.Path)
	return nil
}
