// Package cgroup gives each run of a packed file its own cgroup: every
// process the target starts, however far it strays (a double-forked
// daemon, a new session), stays inside, so the run can be killed whole
// when it ends and held to resource limits while it runs.
//
// # Where
//
// Detect reads where the hierarchies are mounted (/proc/self/mountinfo)
// and where the caller sits in each (/proc/self/cgroup). A host has the
// v2 hierarchy alone (pure v2), v1 hierarchies alone, or both (hybrid:
// systemd's v1 controllers at /sys/fs/cgroup/NAME and the unified v2
// hierarchy at /sys/fs/cgroup/unified, usually without controllers, since
// a controller lives in one version at a time).
//
// A run's cgroup is PARENT/parker/NAME, one in each hierarchy it uses.
// PARENT is the caller's own cgroup, so that the caller's limits keep
// applying to the run and a user to whom that cgroup is delegated may
// make it; with one exception: v2 gives controllers only to the children
// of a cgroup that holds no process (the root cgroup excepted), and the
// caller's cgroup holds the caller, so a run that uses a v2 controller
// goes beside it, under its parent (where systemd-run would put a
// scope), unless the caller is in the root cgroup. There the limits of
// the caller's cgroup itself no longer hold the run; those of every
// cgroup above still do. Options.Parent (EnvParent) names another PARENT
// for every run, for tests and for callers whose own cgroup belongs to
// someone else.
//
// # Which
//
// Per run, Create picks the first of these that works (plans):
//
//   - v2: the run's cgroup in the v2 hierarchy, which kills it. A
//     controller a limit needs (memory, pids, cpu) is used in v2 if the
//     run's PARENT already gives it to its children (it is in PARENT's
//     cgroup.subtree_control); Create enables it in the parker directory
//     below, which holds no process itself. On a hybrid host a controller
//     that v2 lacks is used in its v1 hierarchy alongside. A run without
//     limits needs no controller.
//   - v1: the freezer hierarchy, to hold and kill the run, plus the
//     hierarchy of each controller needed (and cpuacct with cpu, for the
//     CPU usage).
//   - none: Create fails with ErrUnavailable, saying why; the caller must
//     find the run's processes another way (by mount namespace), and
//     cannot apply limits.
//
// Mode (EnvMode) narrows the choice to v2 or v1 only, or to none.
//
// Delegation. parker never writes the files of a cgroup it did not make
// (the caller's cgroup.subtree_control included): it only makes
// directories. An unprivileged user gets a cgroup only where PARENT is
// delegated to it: it must be allowed to make a directory there, and to
// move a process it must be able to write both the run cgroup's
// cgroup.procs and that of the common ancestor of the process's cgroup
// and the run's, which is the caller's cgroup or its parent. systemd
// delegates user@UID.service and everything below it to the user, and
// any unit with Delegate=yes; a login's session-N.scope is root's. v1
// hierarchies are root's. Where mkdir is refused, the next way is tried,
// and then none.
//
// # Limits
//
// Memory: memory.max (v2), memory.limit_in_bytes (v1), and no swap beyond
// it (memory.swap.max 0, memory.memsw.limit_in_bytes) where swap is
// accounted, so the limit holds. Going past it gets the process the
// kernel picks OOM-killed (SIGKILL, so a shell sees 137), as a direct run
// under the same limit would; OOMKilled tells afterwards (memory.events
// or memory.oom_control: oom_kill). Pids: pids.max. CPUs: a CFS quota of
// CPUs × 100 ms per 100 ms (cpu.max, cpu.cfs_quota_us); CPUUsage reads
// the run's CPU time (cpu.stat usage_usec in v2, cpuacct.usage in v1).
//
// # Killing
//
// Kill writes 1 to cgroup.kill (v2, Linux 5.14+), which kills every
// process of the cgroup, those being forked included. Otherwise it
// freezes the cgroup (v1 freezer, or v2 cgroup.freeze), so that nothing
// forks, sends SIGKILL to every process, thaws it, and repeats until none
// is left. With neither, it only signals in rounds. It waits for the
// cgroup to be empty (cgroup.events populated 0 in v2).
//
// # Removal, and runs that could not remove theirs
//
// Remove deletes the run's directories (and any the target made below),
// retrying while the kernel still reaps the last processes. A run killed
// before it could (SIGKILL of its supervisor) leaves its cgroup behind:
// CleanStale, called by a later run, removes those. A run cgroup is named
// after its owner (the process that removes it when the run ends), with
// the owner's pid, start time and pid namespace; CleanStale removes one
// only when that process is gone and the cgroup holds no process. A live
// run's cgroup, even one just made and not yet joined, is never removed;
// the kernel refuses to remove a populated one anyway.
//
// Every file access and signal goes through fsOps (fs.go), so the policy
// can be tested on a fake cgroupfs.
package cgroup

import (
	"errors"
	"fmt"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// How long Kill and Remove wait for the kernel, at most.
const (
	killTimeout   = 10 * time.Second
	killRound     = 500 * time.Millisecond // signal again after this
	freezeTimeout = time.Second            // a task in uninterruptible sleep may not freeze; kill anyway
	removeTimeout = 5 * time.Second
)

// How a group's processes are killed.
const (
	killByKill   = "cgroup.kill"
	killByFreeze = "cgroup.freeze" // v2 before 5.14
	killByV1     = "the v1 freezer"
	killBySignal = "SIGKILL to each process"
)

// Group is one run's cgroup: one directory in each hierarchy it uses.
type Group struct {
	fs   fsOps
	name string
	lim  Limits
	v2   string   // the v2 directory, or ""
	v1   []string // the v1 directories
	// ctl holds, for each controller used, the directory of its files.
	ctl  map[string]place
	kill string
}

type place struct {
	dir string
	v2  bool
}

// Create makes a cgroup for a run with limits lim in the way l allows
// (see the package comment), named for owner: the process that will
// remove it when the run ends, the caller when 0. Nothing is in it until
// Join. ErrUnavailable means no way worked; the error says why for each.
func Create(l Layout, owner int, lim Limits) (*Group, error) {
	if owner == 0 {
		owner = os.Getpid()
	}
	return create(sysFS, l, owner, lim)
}

func create(fs fsOps, l Layout, owner int, lim Limits) (*Group, error) {
	if err := lim.Validate(); err != nil {
		return nil, err
	}
	switch {
	case l.Mode == None:
		return nil, fmt.Errorf("%w: cgroups are turned off (%s=none)", ErrUnavailable, EnvMode)
	case l.V2 == nil && len(l.V1) == 0:
		return nil, fmt.Errorf("%w: no cgroup hierarchy is mounted where this process's cgroup is", ErrUnavailable)
	}
	name, err := runName(owner)
	if err != nil {
		return nil, err
	}
	var base *Hierarchy
	var avail []string
	if l.V2 != nil {
		base, avail = limitBase(fs, l)
	}
	ps, why := plans(l, base, avail, lim.controllers())
	for _, p := range ps {
		g, err := build(fs, p, name, lim)
		if err == nil {
			return g, nil
		}
		why = append(why, err.Error())
	}
	return nil, fmt.Errorf("%w: %s", ErrUnavailable, strings.Join(why, "; "))
}

// limitBase returns the v2 cgroup under which a run that uses v2
// controllers goes, and the controllers it gives its children. v2 lets a
// cgroup that holds processes give no controller to its children (the
// root excepted), and the caller's own cgroup holds the caller: such runs
// go beside it, under its parent (as systemd-run puts a scope beside the
// caller's), whose controllers for its children are the caller's
// cgroup.controllers. Under Options.Parent, or where the caller is in the
// root cgroup, they go there, as every other run does.
func limitBase(fs fsOps, l Layout) (*Hierarchy, []string) {
	h := *l.V2
	own := h.Dir()
	// Only the root cgroup has no cgroup.type (a cgroup namespace's
	// root has one).
	if l.Parent != "" || !fs.exists(own+"/cgroup.type") {
		s, _ := fs.read(own + "/cgroup.subtree_control")
		return &h, strings.Fields(s)
	}
	h.Path = path.Dir(h.Path)
	if h.Path == l.V2.Path || h.Dir() == "" {
		return nil, nil
	}
	s, _ := fs.read(own + "/cgroup.controllers")
	return &h, strings.Fields(s)
}

// build makes the directories of plan p and writes the limits; on failure
// it removes what it made, but leaves the parker directories.
func build(fs fsOps, p plan, name string, lim Limits) (*Group, error) {
	g := &Group{fs: fs, name: name, lim: lim, ctl: map[string]place{}}
	if err := g.makeDirs(p); err != nil {
		for _, d := range g.dirs() {
			fs.rmdir(d)
		}
		return nil, err
	}
	return g, nil
}

func (g *Group) makeDirs(p plan) error {
	fs, name, lim := g.fs, g.name, g.lim
	if p.v2 != nil {
		parent := path.Join(p.v2.Dir(), parentName)
		if err := ensureDir(fs, parent); err != nil {
			return fmt.Errorf("v2: %w", err)
		}
		if err := enable(fs, parent, p.v2On); err != nil {
			return fmt.Errorf("v2: %w", err)
		}
		dir := path.Join(parent, name)
		if err := fs.mkdir(dir); err != nil {
			return fmt.Errorf("v2: %w", err)
		}
		g.v2 = dir
		for _, c := range p.v2On {
			g.ctl[c] = place{dir, true}
			if err := apply(fs, dir, settings(c, true, lim)); err != nil {
				return fmt.Errorf("v2: %w", err)
			}
		}
	}
	for _, u := range p.v1 {
		parent := path.Join(u.h.Dir(), parentName)
		if err := ensureDir(fs, parent); err != nil {
			return fmt.Errorf("v1: %w", err)
		}
		dir := path.Join(parent, name)
		if err := fs.mkdir(dir); err != nil {
			return fmt.Errorf("v1: %w", err)
		}
		g.v1 = append(g.v1, dir)
		for _, c := range u.ctrls {
			g.ctl[c] = place{dir, false}
			if err := apply(fs, dir, settings(c, false, lim)); err != nil {
				return fmt.Errorf("v1: %w", err)
			}
		}
	}
	switch {
	case g.v2 != "" && fs.exists(g.v2+"/cgroup.kill"):
		g.kill = killByKill
	case g.v2 != "" && fs.exists(g.v2+"/cgroup.freeze"):
		g.kill = killByFreeze
	case g.has("freezer"):
		g.kill = killByV1
	default:
		g.kill = killBySignal
	}
	return nil
}

// ensureDir makes a parker directory, which may exist already.
func ensureDir(fs fsOps, dir string) error {
	if err := fs.mkdir(dir); err != nil && !errors.Is(err, os.ErrExist) {
		return err
	}
	return nil
}

// enable turns on controllers cs for the children of v2 cgroup dir, where
// not on yet (several runs share it; none turns one off).
func enable(fs fsOps, dir string, cs []string) error {
	if len(cs) == 0 {
		return nil
	}
	file := path.Join(dir, "cgroup.subtree_control")
	on, err := fs.read(file)
	if err != nil {
		return err
	}
	for _, c := range cs {
		if !slices.Contains(strings.Fields(on), c) {
			if err := fs.write(file, "+"+c); err != nil {
				return err
			}
		}
	}
	return nil
}

func apply(fs fsOps, dir string, ss []setting) error {
	for _, s := range ss {
		f := path.Join(dir, s.file)
		if s.optional && !fs.exists(f) {
			continue
		}
		if err := fs.write(f, s.value); err != nil {
			return err
		}
	}
	return nil
}

func (g *Group) has(c string) bool { _, ok := g.ctl[c]; return ok }

// dirs lists the group's directories, v1 first.
func (g *Group) dirs() []string {
	ds := slices.Clone(g.v1)
	if g.v2 != "" {
		ds = append(ds, g.v2)
	}
	return ds
}

// Dirs lists the group's directories, one per hierarchy, v2 last.
func (g *Group) Dirs() []string { return g.dirs() }

// Name is the group's directory name, the same in every hierarchy.
func (g *Group) Name() string { return g.name }

// Limits are the limits the group applies.
func (g *Group) Limits() Limits { return g.lim }

// Mechanism says, for PARKER_VERBOSE, where the group is, which
// controllers it uses in each version, and how it will be killed: "cgroup
// v2 /sys/fs/cgroup/unified/parker/run-…; v1 memory
// /sys/fs/cgroup/memory/parker/run-…; killed by cgroup.kill".
func (g *Group) Mechanism() string {
	var b strings.Builder
	b.WriteString("cgroup")
	sep := " "
	if g.v2 != "" {
		b.WriteString(" v2")
		if cs := g.controllers(true, g.v2); cs != "" {
			b.WriteString(" " + cs)
		}
		b.WriteString(" " + g.v2)
		sep = "; "
	}
	for _, d := range g.v1 {
		b.WriteString(sep + "v1 " + g.controllers(false, d) + " " + d)
		sep = "; "
	}
	return b.String() + "; killed by " + g.kill
}

// controllers lists, comma-separated, the controllers used in dir.
func (g *Group) controllers(v2 bool, dir string) string {
	var cs []string
	for _, c := range []string{"freezer", "memory", "pids", "cpu", "cpuacct"} {
		if p, ok := g.ctl[c]; ok && p.v2 == v2 && p.dir == dir {
			cs = append(cs, c)
		}
	}
	return strings.Join(cs, ",")
}

// Join moves process pid (the caller when 0) and all its threads into the
// group, in every hierarchy. Its children, made from then on, are born
// inside.
func (g *Group) Join(pid int) error {
	for _, d := range g.dirs() {
		if err := g.fs.write(path.Join(d, "cgroup.procs"), strconv.Itoa(pid)); err != nil {
			return fmt.Errorf("cgroup: join: %w", err)
		}
	}
	return nil
}

// OpenV2 opens the group's v2 directory, for starting a process straight
// into it (clone3 with CLONE_INTO_CGROUP; SysProcAttr.UseCgroupFD). A group
// that also uses v1 hierarchies has none: such a process would miss them.
func (g *Group) OpenV2() (*os.File, error) {
	if g.v2 == "" || len(g.v1) > 0 {
		return nil, errors.New("cgroup: the group is not in v2 alone; use Join")
	}
	return os.OpenFile(g.v2, os.O_RDONLY|unix.O_DIRECTORY, 0)
}

// track is the directory that holds every process of the run.
func (g *Group) track() (string, bool) {
	if g.v2 != "" {
		return g.v2, true
	}
	if p, ok := g.ctl["freezer"]; ok {
		return p.dir, false
	}
	return g.v1[0], false
}

// Procs lists the processes in the group (and in any cgroup below it).
func (g *Group) Procs() ([]int, error) {
	dir, _ := g.track()
	return procsTree(g.fs, dir)
}

func procsTree(fs fsOps, dir string) ([]int, error) {
	s, err := fs.read(path.Join(dir, "cgroup.procs"))
	if err != nil {
		return nil, err
	}
	ps := pids(s)
	subs, err := fs.subdirs(dir)
	if err != nil {
		return nil, err
	}
	for _, sub := range subs {
		more, err := procsTree(fs, path.Join(dir, sub))
		if err != nil {
			return nil, err
		}
		ps = append(ps, more...)
	}
	return ps, nil
}

// Populated reports whether any process is in the group.
func (g *Group) Populated() (bool, error) {
	dir, v2 := g.track()
	return populated(g.fs, dir, v2)
}

func populated(fs fsOps, dir string, v2 bool) (bool, error) {
	if v2 {
		s, err := fs.read(path.Join(dir, "cgroup.events"))
		if err != nil {
			return false, err
		}
		n, ok := field(s, "populated")
		if !ok {
			return false, fmt.Errorf("cgroup: no populated field in %s/cgroup.events", dir)
		}
		return n != 0, nil
	}
	ps, err := procsTree(fs, dir)
	return len(ps) > 0, err
}

// Kill kills every process in the group and waits until none is left.
// Killing a removed group does nothing.
func (g *Group) Kill() error {
	if dir, _ := g.track(); !g.fs.exists(dir) {
		return nil
	}
	deadline := time.Now().Add(killTimeout)
	for {
		if err := g.killOnce(); err != nil {
			return err
		}
		empty, err := waitFor(killRound, func() (bool, error) {
			full, err := g.Populated()
			return !full, err
		})
		if err != nil {
			return fmt.Errorf("cgroup: kill: %w", err)
		}
		if empty {
			return nil
		}
		if time.Now().After(deadline) {
			ps, _ := g.Procs()
			return fmt.Errorf("cgroup: kill: processes %v still in %s after %v", ps, g.name, killTimeout)
		}
	}
}

func (g *Group) killOnce() error {
	switch g.kill {
	case killByKill:
		return g.fs.write(g.v2+"/cgroup.kill", "1")
	case killByFreeze:
		return g.freezeKill(g.v2+"/cgroup.freeze", "1", "0", func() (bool, error) {
			s, err := g.fs.read(g.v2 + "/cgroup.events")
			n, _ := field(s, "frozen")
			return n == 1, err
		})
	case killByV1:
		state := g.ctl["freezer"].dir + "/freezer.state"
		return g.freezeKill(state, "FROZEN", "THAWED", func() (bool, error) {
			s, err := g.fs.read(state)
			return strings.TrimSpace(s) == "FROZEN", err
		})
	}
	return g.signalAll()
}

// freezeKill freezes the group, so no process forks or escapes the
// signal, kills every process, and thaws it so they can die: a frozen
// process cannot act on SIGKILL.
func (g *Group) freezeKill(file, freeze, thaw string, frozen func() (bool, error)) error {
	if err := g.fs.write(file, freeze); err != nil {
		return fmt.Errorf("cgroup: kill: %w", err)
	}
	// A process in uninterruptible sleep delays the freeze; go on
	// without it after a while and catch what forked in the next round.
	waitFor(freezeTimeout, frozen)
	errKill := g.signalAll()
	if err := g.fs.write(file, thaw); err != nil {
		return fmt.Errorf("cgroup: kill: %w", err)
	}
	return errKill
}

func (g *Group) signalAll() error {
	ps, err := g.Procs()
	if err != nil {
		return fmt.Errorf("cgroup: kill: %w", err)
	}
	for _, p := range ps {
		if err := g.fs.kill(p); err != nil && !errors.Is(err, unix.ESRCH) {
			return fmt.Errorf("cgroup: kill %d: %w", p, err)
		}
	}
	return nil
}

// Remove deletes the group's directories. Kill it first: the kernel
// refuses to remove a cgroup that holds a process; Remove waits a while
// for the last ones to be reaped. Removing a removed group does nothing.
func (g *Group) Remove() error {
	var errs []error
	for _, d := range g.dirs() {
		if err := removeTree(g.fs, d, removeTimeout); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// removeTree removes cgroup dir and the cgroups below it, deepest first,
// retrying while busy for up to timeout (0: one try).
func removeTree(fs fsOps, dir string, timeout time.Duration) error {
	subs, err := fs.subdirs(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("cgroup: %w", err)
	}
	for _, s := range subs {
		if err := removeTree(fs, path.Join(dir, s), timeout); err != nil {
			return err
		}
	}
	var last error
	ok, err := waitFor(timeout, func() (bool, error) {
		last = fs.rmdir(dir)
		switch {
		case last == nil || errors.Is(last, os.ErrNotExist):
			return true, nil
		case busy(last):
			return false, nil
		}
		return false, last
	})
	if err != nil {
		return fmt.Errorf("cgroup: %w", err)
	}
	if !ok {
		return fmt.Errorf("cgroup: %w (still busy after %v)", last, timeout)
	}
	return nil
}

// OOMKilled reports whether the kernel killed a process of the group for
// going past its memory limit. It is false for a group without one.
func (g *Group) OOMKilled() (bool, error) {
	p, ok := g.ctl["memory"]
	if !ok {
		return false, nil
	}
	file := path.Join(p.dir, "memory.oom_control")
	if p.v2 {
		file = path.Join(p.dir, "memory.events")
	}
	s, err := g.fs.read(file)
	if err != nil {
		return false, fmt.Errorf("cgroup: %w", err)
	}
	n, ok := field(s, "oom_kill")
	if !ok {
		return false, fmt.Errorf("cgroup: %s has no oom_kill count (Linux 4.13+)", file)
	}
	return n > 0, nil
}

// CPUUsage returns the CPU time the group's processes have used so far.
func (g *Group) CPUUsage() (time.Duration, error) {
	if g.v2 != "" {
		// cpu.stat's usage fields are there without the cpu controller.
		s, err := g.fs.read(g.v2 + "/cpu.stat")
		if err != nil {
			return 0, fmt.Errorf("cgroup: %w", err)
		}
		if us, ok := field(s, "usage_usec"); ok {
			return time.Duration(us) * time.Microsecond, nil
		}
	}
	if p, ok := g.ctl["cpuacct"]; ok {
		s, err := g.fs.read(p.dir + "/cpuacct.usage")
		if err != nil {
			return 0, fmt.Errorf("cgroup: %w", err)
		}
		ns, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
		return time.Duration(ns), err
	}
	return 0, errors.New("cgroup: no CPU usage for this group (no v2 cpu.stat, no v1 cpuacct)")
}
