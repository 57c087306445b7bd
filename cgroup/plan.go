package cgroup

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/parkerpack/parker/internal/human"
)

// Limits are a run's resource limits; a zero field sets none.
type Limits struct {
	Memory int64   // bytes of memory (and no swap beyond it)
	CPUs   float64 // cores' worth of CPU time, fractions allowed
	Pids   int64   // processes and threads
}

const (
	minMemory = 1 << 20 // below this a limit is a typo (100 for 100M), not a wish
	cpuPeriod = 100000  // µs; the quota is CPUs times this
	minQuota  = 1000    // µs; the kernel refuses a smaller CFS quota
	maxCPUs   = 1 << 16
	maxPids   = 1 << 22 // PID_MAX_LIMIT: the kernel refuses a larger pids.max
)

// Validate says what is wrong with a limit, as one line.
func (l Limits) Validate() error {
	for _, err := range []error{checkMemory(l.Memory), checkCPUs(l.CPUs), checkPids(l.Pids)} {
		if err != nil {
			return fmt.Errorf("cgroup: %w", err)
		}
	}
	return nil
}

func checkMemory(n int64) error {
	switch {
	case n < 0:
		return fmt.Errorf("memory limit %d is negative", n)
	case n > 0 && n < minMemory:
		return fmt.Errorf("memory limit of %d bytes is below the minimum of 1M", n)
	}
	return nil
}

func checkCPUs(n float64) error {
	switch {
	case math.IsNaN(n) || n < 0 || n > maxCPUs:
		return fmt.Errorf("CPU limit %v is not a number of CPUs from 0.01 to %d", n, maxCPUs)
	case n > 0 && quota(n) < minQuota:
		return fmt.Errorf("CPU limit %v is below the minimum of 0.01 (1 ms per 100 ms)", n)
	}
	return nil
}

func checkPids(n int64) error {
	switch {
	case n < 0:
		return fmt.Errorf("process limit %d is negative", n)
	case n > maxPids:
		return fmt.Errorf("process limit %d is above the kernel's maximum of %d", n, maxPids)
	}
	return nil
}

// ParseMemory reads a memory limit as a flag gives it: a size
// (human.ParseSize: 100M, 1.5G), or 0 for none.
func ParseMemory(s string) (int64, error) {
	n, err := human.ParseSize(s)
	if err != nil {
		return 0, err
	}
	if n == 0 && strings.ContainsAny(s, "123456789") {
		// 0.5 is half a byte, not none.
		return 0, fmt.Errorf("memory limit %q is below the minimum of 1M", s)
	}
	return n, checkMemory(n)
}

// ParseCPUs reads a CPU limit as a flag gives it: a number of CPUs,
// fractions allowed (0.5, 1.25), or 0 for none.
func ParseCPUs(s string) (float64, error) {
	t := strings.TrimSpace(s)
	n, err := strconv.ParseFloat(t, 64)
	if err != nil || strings.Trim(t, "0123456789.") != "" {
		return 0, fmt.Errorf("invalid number of CPUs %q (want e.g. 2, 0.5 or 1.25)", s)
	}
	return n, checkCPUs(n)
}

// ParsePids reads a process limit as a flag gives it: a whole number of
// processes and threads, or 0 for none.
func ParsePids(s string) (int64, error) {
	t := strings.TrimSpace(s)
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || strings.HasPrefix(t, "+") {
		return 0, fmt.Errorf("invalid number of processes %q (want e.g. 100)", s)
	}
	return n, checkPids(n)
}

// Set sets the limit kind names ("memory", "cpus" or "pids", as the flags
// name them) to the value s that a flag gave (ParseMemory, ParseCPUs,
// ParsePids).
func (l *Limits) Set(kind, s string) error {
	var err error
	switch kind {
	case "memory":
		l.Memory, err = ParseMemory(s)
	case "cpus":
		l.CPUs, err = ParseCPUs(s)
	case "pids":
		l.Pids, err = ParsePids(s)
	default:
		err = fmt.Errorf("no limit named %q (memory, cpus or pids)", kind)
	}
	return err
}

// String writes the limits that l sets as the flags take them, "memory
// 100M, cpus 0.5, pids 50", or "none".
func (l Limits) String() string {
	var ls []string
	if l.Memory > 0 {
		ls = append(ls, "memory "+human.FormatSize(l.Memory))
	}
	if l.CPUs > 0 {
		ls = append(ls, "cpus "+strconv.FormatFloat(l.CPUs, 'f', -1, 64))
	}
	if l.Pids > 0 {
		ls = append(ls, "pids "+itoa(l.Pids))
	}
	if len(ls) == 0 {
		return "none"
	}
	return strings.Join(ls, ", ")
}

func quota(cpus float64) int64 { return int64(math.Round(cpus * cpuPeriod)) }

// controllers lists the controllers l needs, in a fixed order.
func (l Limits) controllers() []string {
	var cs []string
	if l.Memory > 0 {
		cs = append(cs, "memory")
	}
	if l.Pids > 0 {
		cs = append(cs, "pids")
	}
	if l.CPUs > 0 {
		cs = append(cs, "cpu")
	}
	return cs
}

// A setting is one control file a limit writes.
type setting struct {
	file, value string
	optional    bool // written only where the kernel has the file
}

// settings returns what limit l writes for controller c, in v2 or v1.
func settings(c string, v2 bool, l Limits) []setting {
	switch {
	case c == "memory" && v2:
		// Swap would let the run go past its limit instead of being
		// OOM-killed; the file exists only with swap accounting.
		return []setting{{"memory.max", itoa(l.Memory), false}, {"memory.swap.max", "0", true}}
	case c == "memory":
		// memsw (memory plus swap) must not be set below the memory limit,
		// so it comes second.
		return []setting{{"memory.limit_in_bytes", itoa(l.Memory), false}, {"memory.memsw.limit_in_bytes", itoa(l.Memory), true}}
	case c == "pids":
		return []setting{{"pids.max", itoa(l.Pids), false}}
	case c == "cpu" && v2:
		return []setting{{"cpu.max", itoa(quota(l.CPUs)) + " " + itoa(cpuPeriod), false}}
	case c == "cpu":
		return []setting{{"cpu.cfs_period_us", itoa(cpuPeriod), false}, {"cpu.cfs_quota_us", itoa(quota(l.CPUs)), false}}
	}
	return nil
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// A use is one v1 hierarchy a run joins and the controllers it uses there.
type use struct {
	h     Hierarchy
	ctrls []string
}

// A plan is one way to give a run its cgroups.
type plan struct {
	v2   *Hierarchy
	v2On []string // controllers the run uses in v2
	v1   []use
}

func (p *plan) addV1(h Hierarchy, c string) {
	for i := range p.v1 {
		if p.v1[i].h.Mount == h.Mount {
			p.v1[i].ctrls = append(p.v1[i].ctrls, c)
			return
		}
	}
	p.v1 = append(p.v1, use{h, []string{c}})
}

// plans returns the ways to give a run the controllers in need, best
// first, and why the others are not possible:
//
//  1. v2: the run's cgroup in the v2 hierarchy, which kills it
//     (cgroup.kill). Each controller needed is used there when base, the
//     cgroup under which a run with v2 controllers goes (see limitBase),
//     gives it to its children (avail); else in its v1 hierarchy on a
//     hybrid host. A run that uses no v2 controller goes under the
//     caller's own cgroup, l.V2, instead.
//  2. v1: the freezer hierarchy to hold and kill the run, plus a
//     hierarchy per controller needed; cpuacct comes with cpu, for the CPU
//     usage, where it is mounted apart.
func plans(l Layout, base *Hierarchy, avail []string, need []string) ([]plan, []string) {
	var ps []plan
	var why []string
	if l.V2 != nil {
		p := plan{v2: l.V2}
		var missing []string
		for _, c := range need {
			if base != nil && slices.Contains(avail, c) {
				p.v2On = append(p.v2On, c)
			} else if h, ok := l.v1For(c); ok {
				p.addV1(h, c)
			} else {
				missing = append(missing, c)
			}
		}
		if len(p.v2On) > 0 {
			p.v2 = base
		}
		switch {
		case len(missing) == 0:
			ps = append(ps, p)
		case base == nil:
			why = append(why, fmt.Sprintf("v2: no %s: the caller's cgroup %s holds processes, so its children get controllers only from its parent, which is not mounted here",
				strings.Join(missing, ", "), l.V2.Dir()))
		default:
			why = append(why, fmt.Sprintf("v2 at %s: %s not enabled for its child cgroups (cgroup.subtree_control %q) and not mounted as v1",
				base.Dir(), strings.Join(missing, ", "), strings.Join(avail, " ")))
		}
	}
	if len(l.V1) > 0 {
		p := plan{}
		if h, ok := l.v1For("freezer"); ok {
			p.addV1(h, "freezer")
		}
		var missing []string
		for _, c := range need {
			h, ok := l.v1For(c)
			if !ok {
				missing = append(missing, c)
				continue
			}
			p.addV1(h, c)
			if h, ok := l.v1For("cpuacct"); ok && c == "cpu" {
				p.addV1(h, "cpuacct")
			}
		}
		switch {
		case len(missing) > 0:
			why = append(why, "v1: no hierarchy for "+strings.Join(missing, ", "))
		case len(p.v1) == 0:
			why = append(why, "v1: no freezer hierarchy to hold the run")
		default:
			ps = append(ps, p)
		}
	}
	return ps, why
}
