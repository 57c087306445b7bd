package cgroup

import (
	"errors"
	"fmt"
	"os"
	"path"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// The run cgroups of a caller's cgroup live in one directory of it, which
// stays once made (removing it would race with a run creating its own).
const parentName = "parker"

// A run cgroup's name says who owns it: run-NS-PID-START-RANDOM, the pid
// namespace (inode of /proc/self/ns/pid), pid and start time (clock ticks
// after boot, /proc/PID/stat field 22) of its owner, and random bits so
// that one owner may make several. Pid and start time together name one
// process for the life of the system, pid reuse notwithstanding.
type runID struct {
	ns    uint64
	pid   int
	start uint64
}

const runPrefix = "run-"

func runName(owner int) (string, error) {
	ns, err := pidNS()
	if err != nil {
		return "", err
	}
	start, err := startTime(owner)
	if err != nil {
		return "", fmt.Errorf("cgroup: owner %d: %w", owner, err)
	}
	var r [4]byte
	if _, err := unix.Getrandom(r[:], 0); err != nil {
		return "", fmt.Errorf("cgroup: getrandom: %w", err)
	}
	return fmt.Sprintf("%s%d-%d-%d-%x", runPrefix, ns, owner, start, r), nil
}

// parseRunName reads a name runName made; ok is false for any other.
func parseRunName(name string) (id runID, ok bool) {
	rest, ok := strings.CutPrefix(name, runPrefix)
	f := strings.Split(rest, "-")
	if !ok || len(f) != 4 || f[3] == "" {
		return runID{}, false
	}
	var err [3]error
	id.ns, err[0] = strconv.ParseUint(f[0], 10, 64)
	id.pid, err[1] = strconv.Atoi(f[1])
	id.start, err[2] = strconv.ParseUint(f[2], 10, 64)
	if err[0] != nil || err[1] != nil || err[2] != nil || id.pid <= 0 {
		return runID{}, false
	}
	return id, true
}

// pidNS returns the inode number of our pid namespace.
func pidNS() (uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat("/proc/self/ns/pid", &st); err != nil {
		return 0, fmt.Errorf("cgroup: stat /proc/self/ns/pid: %w", err)
	}
	return st.Ino, nil
}

// startTime returns a process's start time, in clock ticks after boot.
func startTime(pid int) (uint64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces and parentheses; the
	// fields after its last ')' start with field 3.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return 0, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	return strconv.ParseUint(f[22-3], 10, 64)
}

// alive reports whether the process a name points to still runs (or is a
// zombie not yet reaped): same pid, same start time.
func (id runID) alive() bool {
	start, err := startTime(id.pid)
	return err == nil && start == id.start
}

// CleanStale removes the run cgroups left, in the parker directories where
// Create makes this caller's (in each hierarchy of l, and beside the
// caller's v2 cgroup), by runs that ended without removing them: those whose owner is gone and which hold no process. It never
// touches a cgroup of a live owner, even an empty one (a run that has
// made its cgroup and not joined it yet), nor one that holds a process,
// nor one whose owner is in another pid namespace, which it cannot see.
// It returns the directories it removed.
func CleanStale(l Layout) ([]string, error) { return cleanStale(sysFS, l) }

func cleanStale(fs fsOps, l Layout) ([]string, error) {
	if l.Mode == None {
		return nil, nil
	}
	ns, err := pidNS()
	if err != nil {
		return nil, err
	}
	type base struct {
		dir string
		v2  bool
	}
	var bases []base
	if l.V2 != nil {
		bases = append(bases, base{l.V2.Dir(), true})
		if h, _ := limitBase(fs, l); h != nil && h.Path != l.V2.Path {
			bases = append(bases, base{h.Dir(), true})
		}
	}
	for _, h := range l.V1 {
		bases = append(bases, base{h.Dir(), false})
	}
	var removed []string
	var errs []error
	for _, b := range bases {
		parent := path.Join(b.dir, parentName)
		names, err := fs.subdirs(parent)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("cgroup: %w", err))
			continue
		}
		for _, name := range names {
			id, ok := parseRunName(name)
			if !ok || id.ns != ns || id.alive() {
				continue
			}
			dir := path.Join(parent, name)
			if full, err := populated(fs, dir, b.v2); err != nil || full {
				continue
			}
			// One try: a refusal means a process got in since, or it
			// is being removed by someone else; either way, not ours.
			if err := removeTree(fs, dir, 0); err == nil {
				removed = append(removed, dir)
			} else if !busy(err) && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
			}
		}
	}
	return removed, errors.Join(errs...)
}
