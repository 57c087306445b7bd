package cgroup

import (
	"errors"
	"fmt"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
)

// Mode says which cgroup versions a run may use.
type Mode int

const (
	Auto Mode = iota // v2 where it has what the run needs, else v1
	V2               // the v2 hierarchy only
	V1               // v1 hierarchies only, even on a host with v2
	None             // no cgroup at all
)

var modeNames = [...]string{Auto: "auto", V2: "v2", V1: "v1", None: "none"}

func (m Mode) String() string {
	if m < 0 || int(m) >= len(modeNames) {
		return "mode(" + strconv.Itoa(int(m)) + ")"
	}
	return modeNames[m]
}

// ParseMode reads a mode as EnvMode spells it: auto (or empty), v2, v1,
// none.
func ParseMode(s string) (Mode, error) {
	if s == "" {
		return Auto, nil
	}
	for m, name := range modeNames {
		if s == name {
			return Mode(m), nil
		}
	}
	return Auto, fmt.Errorf("cgroup: unknown mode %q (want auto, v2, v1 or none)", s)
}

// The environment variables a caller passes to OptionsFromEnv, for users
// who debug a run: which cgroup versions to use, and under which cgroup.
const (
	EnvMode   = "PARKER_CGROUP"
	EnvParent = "PARKER_CGROUP_PARENT"
)

// Options tune Detect.
type Options struct {
	Mode Mode
	// Parent, when set, is the cgroup (a path from the root of every
	// hierarchy, such as "/" or "/test") under which the run cgroups are
	// made, instead of the caller's own cgroup. It must exist in each
	// hierarchy used.
	Parent string
}

// OptionsFromEnv reads EnvMode and EnvParent through getenv (os.Getenv).
func OptionsFromEnv(getenv func(string) string) (Options, error) {
	m, err := ParseMode(getenv(EnvMode))
	if err != nil {
		return Options{}, fmt.Errorf("%s: %w", EnvMode, err)
	}
	o := Options{Mode: m, Parent: getenv(EnvParent)}
	if o.Parent != "" && !path.IsAbs(o.Parent) {
		return Options{}, fmt.Errorf("%s: %q is not a cgroup path (it must start with /)", EnvParent, o.Parent)
	}
	return o, nil
}

// Hierarchy is one mounted cgroup hierarchy and the caller's place in it.
type Hierarchy struct {
	Mount string // where it is mounted
	Root  string // the cgroup shown at Mount (not "/" in a container given a subtree)
	Path  string // the cgroup the run cgroups go under: the caller's own, or Options.Parent
	// Controllers bound to a v1 hierarchy; nil for v2, whose controllers
	// are read from the cgroup itself when a run needs them.
	Controllers []string
}

// Dir is the directory of the cgroup at h.Path, or "" when that cgroup
// lies outside the part of the hierarchy mounted at h.Mount.
func (h Hierarchy) Dir() string {
	rel, ok := strings.CutPrefix(h.Path, h.Root)
	if !ok || (rel != "" && rel[0] != '/' && h.Root != "/") {
		return ""
	}
	return path.Join(h.Mount, rel)
}

func (h Hierarchy) has(c string) bool { return slices.Contains(h.Controllers, c) }

// Layout is what a host offers for run cgroups: the v2 hierarchy (a pure
// v2 host, or the unified hierarchy of a hybrid one) and the v1
// hierarchies that hold a controller parker uses.
type Layout struct {
	Mode   Mode
	Parent string // Options.Parent: the cgroup all runs go under, if set
	V2     *Hierarchy
	V1     []Hierarchy
}

// Kind names the host's arrangement: "v2", "hybrid", "v1" or "none".
func (l Layout) Kind() string {
	switch {
	case l.V2 != nil && len(l.V1) > 0:
		return "hybrid"
	case l.V2 != nil:
		return "v2"
	case len(l.V1) > 0:
		return "v1"
	}
	return "none"
}

// v1For returns the v1 hierarchy holding controller c.
func (l Layout) v1For(c string) (Hierarchy, bool) {
	for _, h := range l.V1 {
		if h.has(c) {
			return h, true
		}
	}
	return Hierarchy{}, false
}

// The v1 controllers parker may use: limits, CPU usage, and the freezer
// to kill. Hierarchies with none of them are left out of a Layout and
// never touched.
var v1Used = []string{"freezer", "memory", "pids", "cpu", "cpuacct"}

// Detect reads where this process's cgroup hierarchies are mounted
// (/proc/self/mountinfo) and where it sits in each (/proc/self/cgroup).
func Detect(o Options) (Layout, error) {
	if o.Mode == None {
		return Layout{Mode: None}, nil
	}
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return Layout{}, fmt.Errorf("cgroup: %w", err)
	}
	cg, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return Layout{}, fmt.Errorf("cgroup: %w", err)
	}
	return layout(string(mi), string(cg), o), nil
}

// mount is one cgroup or cgroup2 line of mountinfo.
type mount struct {
	point, root string
	v2          bool
	options     []string // super options: for v1, the controllers among others
}

// parseMountinfo returns the cgroup mounts of a mountinfo text, in order
// (see proc(5): ID, parent, dev, root, mount point, options, optional
// fields, "-", type, source, super options).
func parseMountinfo(text string) []mount {
	var ms []mount
	for _, line := range strings.Split(text, "\n") {
		before, after, ok := strings.Cut(line, " - ")
		if !ok {
			continue
		}
		f, g := strings.Fields(before), strings.Fields(after)
		if len(f) < 5 || len(g) < 3 || (g[0] != "cgroup" && g[0] != "cgroup2") {
			continue
		}
		point, root := unescape(f[4]), unescape(f[3])
		if !strings.HasPrefix(point, "/") || !strings.HasPrefix(root, "/") {
			continue // the kernel writes both absolute; a line that does not is no mount of ours
		}
		ms = append(ms, mount{
			point:   point,
			root:    root,
			v2:      g[0] == "cgroup2",
			options: strings.Split(g[2], ","),
		})
	}
	return ms
}

// unescape undoes mountinfo's octal escapes (\040 for a space, \011, \012,
// \134).
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// membership is one line of /proc/PID/cgroup.
type membership struct {
	controllers []string // empty for v2's "0::" line
	path        string
}

// parseCgroupFile reads /proc/PID/cgroup: "ID:controllers:path" per line,
// v2's line being "0::path". Named v1 hierarchies (name=systemd) are
// dropped: they hold no controller.
func parseCgroupFile(text string) (v2 string, hasV2 bool, v1 []membership) {
	for _, line := range strings.Split(text, "\n") {
		id, rest, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		ctl, p, ok := strings.Cut(rest, ":")
		if !ok {
			continue
		}
		if id == "0" && ctl == "" {
			v2, hasV2 = p, true
			continue
		}
		var cs []string
		for _, c := range strings.Split(ctl, ",") {
			if c != "" && !strings.HasPrefix(c, "name=") {
				cs = append(cs, c)
			}
		}
		if len(cs) > 0 {
			v1 = append(v1, membership{cs, p})
		}
	}
	return v2, hasV2, v1
}

// layout joins the mounts with the memberships: a hierarchy is usable
// when it is mounted, and when the cgroup the runs go under is inside the
// part of it that is mounted.
func layout(mountinfo, cgroupFile string, o Options) Layout {
	l := Layout{Mode: o.Mode}
	if o.Parent != "" {
		l.Parent = path.Clean(o.Parent)
	}
	if o.Mode == None {
		return l
	}
	v2path, hasV2, v1 := parseCgroupFile(cgroupFile)
	ms := parseMountinfo(mountinfo)
	place := func(m mount, own string) (Hierarchy, bool) {
		// Rooted and clean, a path cannot climb out of the mount.
		h := Hierarchy{Mount: m.point, Root: m.root, Path: path.Clean(own)}
		if l.Parent != "" {
			h.Path = l.Parent
		}
		return h, h.Dir() != ""
	}
	if hasV2 && o.Mode != V1 {
		for _, m := range ms {
			if h, ok := place(m, v2path); m.v2 && ok {
				l.V2 = &h
				break
			}
		}
	}
	if o.Mode != V2 {
		for _, mb := range v1 {
			if !slices.ContainsFunc(mb.controllers, func(c string) bool { return slices.Contains(v1Used, c) }) {
				continue
			}
			for _, m := range ms {
				if m.v2 || !containsAll(m.options, mb.controllers) {
					continue
				}
				if h, ok := place(m, mb.path); ok {
					h.Controllers = mb.controllers
					l.V1 = append(l.V1, h)
					break
				}
			}
		}
	}
	return l
}

func containsAll(set, want []string) bool {
	for _, w := range want {
		if !slices.Contains(set, w) {
			return false
		}
	}
	return true
}

// ErrUnavailable means no cgroup could be made for the run, or none that
// has the controllers its limits need. The error says why; a run without
// limits can fall back to finding its processes another way.
var ErrUnavailable = errors.New("cgroup: no cgroup for the run")
