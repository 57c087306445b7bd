package stub

import (
	"fmt"
	"math"
	"strings"

	"github.com/parkerpack/parker/cgroup"
	"github.com/parkerpack/parker/image/trailer"
)

// The leading --parker-* flags of a packed file, and its --parker-help.

// mode is what the packed file was asked to do.
type mode int

const (
	modeRun mode = iota
	modeHelp
	modeInfo
	modeList
	modeExtract
	modeMount
	modeOffset
	modeDoctor
)

// flags are the leading --parker-* arguments.
type flags struct {
	mode    mode
	json    bool   // --parker-info --json, --parker-ls --json
	long    bool   // --parker-ls -l
	dir     string // --parker-extract DIR
	verify  bool
	overlay string
	// keepChildren leaves what the target started running when it ends.
	keepChildren bool
	// The run's resource limits given as flags, each overriding the
	// packed file's default: kind (cgroup.Limits.Set) and value, in order.
	limitFlags [][2]string
	args       []string // what is left for the target
}

type usageError string

func (e usageError) Error() string { return string(e) }

// parseFlags consumes the leading --parker-* flags of args (os.Args[1:]).
// Parsing stops at the first other argument, which goes to the target with
// everything after it, or at "--", which is consumed.
func parseFlags(args []string) (flags, error) {
	var f flags
	action := "" // the flag that set f.mode
	setMode := func(m mode, name string) error {
		if f.mode != modeRun {
			return usageError(name + " cannot be combined with another --parker- action")
		}
		f.mode, action = m, name
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
		case "--parker-ls":
			err = setMode(modeList, name)
			for ; i+1 < len(args); i++ {
				if args[i+1] == "-l" && !f.long {
					f.long = true
				} else if args[i+1] == "--json" && !f.json {
					f.json = true
				} else {
					break
				}
			}
		case "--parker-offset":
			err = setMode(modeOffset, name)
		case "--parker-doctor":
			err = setMode(modeDoctor, name)
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
		case "--parker-keep-children":
			f.keepChildren = true
		case "--parker-overlay":
			if f.overlay, err = value(name, val, hasVal, args, &i, "a directory"); err == nil && f.overlay == "" {
				err = usageError("--parker-overlay needs a directory")
			}
			hasVal = false
		case "--parker-memory", "--parker-pids", "--parker-cpus":
			var v string
			if v, err = value(name, val, hasVal, args, &i, "a value"); err == nil {
				err = f.limit(name, v)
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
	if f.keepChildren && f.mode != modeRun {
		return f, usageError("--parker-keep-children applies only when running the target")
	}
	if len(f.limitFlags) > 0 && f.mode != modeRun {
		return f, usageError("--parker-memory, --parker-cpus and --parker-pids apply only when running the target")
	}
	f.args = args[i:]
	// An action does not run the target, so it would drop these silently.
	if f.mode != modeRun && len(f.args) > 0 {
		return f, usageError(fmt.Sprintf("unexpected argument %q after %s (see --parker-help)", f.args[0], action))
	}
	return f, nil
}

// value returns the value of flag name: after "=" (val, when hasVal), or
// the next argument, which it consumes (args[*i+1]).
func value(name, val string, hasVal bool, args []string, i *int, what string) (string, error) {
	switch {
	case hasVal:
		return val, nil
	case *i+1 < len(args):
		*i++
		return args[*i], nil
	}
	return "", usageError(name + " needs " + what)
}

// limit reads the value v of the limit flag name (--parker-KIND).
func (f *flags) limit(name, v string) error {
	kind := strings.TrimPrefix(name, flagPrefix)
	var check cgroup.Limits
	if err := check.Set(kind, v); err != nil {
		return usageError(name + ": " + err.Error())
	}
	f.limitFlags = append(f.limitFlags, [2]string{kind, v})
	return nil
}

// limits are the run's resource limits: the packed file's defaults (t),
// each overridden by its flag where given.
func (f *flags) limits(t trailer.Limits) cgroup.Limits {
	l := RunLimits(t)
	for _, kv := range f.limitFlags {
		l.Set(kv[0], kv[1]) // checked by limit
	}
	return l
}

// RunLimits are the limits a trailer stores, as a run applies them.
func RunLimits(t trailer.Limits) cgroup.Limits {
	return cgroup.Limits{Memory: int64(t.Memory), CPUs: float64(t.MilliCPUs) / 1000, Pids: int64(t.Pids)}
}

// PackedLimits are limits as a trailer stores them, the CPUs to a
// thousandth (cgroup refuses fewer than 0.01, so none is rounded to 0).
func PackedLimits(l cgroup.Limits) trailer.Limits {
	return trailer.Limits{Memory: uint64(l.Memory), MilliCPUs: uint32(math.Round(l.CPUs * 1000)), Pids: uint64(l.Pids)}
}

const helpText = `Usage: %[1]s [--parker-FLAG...] [--] [ARGS...]

%[1]s is a program packed by parker: it runs %[2]s with ARGS inside its
packed directory, which appears merged over %[3]s
(private to the run; writes are discarded when it ends).

Flags, recognised only before the first other argument or "--":
  --parker-help            print this help and exit
  --parker-info [--json]   describe the payload (as "parker inspect")
  --parker-ls [-l] [--json]
                           list the packed files (as "parker ls")
  --parker-offset          print the payload's byte offset (for mount or
                           unsquashfs -o) and exit
  --parker-doctor          say what this host allows a run, which way it
                           would run (PARKER_MODE) and why not the others
  --parker-extract [DIR]   extract the packed directory to DIR (default
                           ./%[1]s.root) and exit; needs no privileges
  --parker-mount           mount the payload read-only, print where, and
                           wait until interrupted
  --parker-verify          check the payload's SHA-256 digest, then run
  --parker-keep-children   leave what the target started running when it
                           ends (for a target that daemonises and exits);
                           by default everything it started ends with it
  --parker-overlay DIR     keep the target's writes in DIR (outside
                           %[3]s; one run at a time) instead of
                           discarding them
  --parker-memory SIZE     limit the run's memory (100M, 1.5G); past it the
                           kernel kills the target (exit 137)
  --parker-cpus N          limit the run to N CPUs' time (0.5, 2)
  --parker-pids N          limit the run's processes and threads
                           (these override the packed file's defaults%[7]s;
                           0 lifts one; they need a cgroup)

Environment: PARKER_VERBOSE=1 logs each step with its duration;
PARKER_MODE=auto|kernel|extract picks how the payload is reached (auto:
mounted by the kernel where allowed, else extracted once into the cache,
PARKER_CACHE_DIR or ~/.cache/parker).
Exit status: the target's; %[4]d when parker itself fails, %[5]d when the
target cannot be executed, %[6]d when it or its interpreter is missing;
128+N when the target is killed by signal N. The target runs in this
process's place (same pid); when it ends, everything it started ends too.
`
