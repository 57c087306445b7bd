package cgroup

import (
	"errors"
	"fmt"
	"math"
	"os"
	"reflect"
	"slices"
	"strings"
	"syscall"
	"testing"
)

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		l   Limits
		bad string // part of the error, or "" for none
	}{
		{Limits{}, ""},
		{Limits{Memory: 1 << 20, CPUs: 0.01, Pids: 1}, ""},
		{Limits{Memory: 100 << 20, CPUs: 0.5, Pids: 50}, ""},
		{Limits{CPUs: 64}, ""},
		{Limits{Memory: -1}, "negative"},
		{Limits{Memory: 100}, "below the minimum of 1M"},
		{Limits{CPUs: 0.004}, "below the minimum of 0.01"},
		{Limits{CPUs: -0.5}, "not a number of CPUs"},
		{Limits{CPUs: math.NaN()}, "not a number of CPUs"},
		{Limits{CPUs: math.Inf(1)}, "not a number of CPUs"},
		{Limits{Pids: -3}, "negative"},
		{Limits{Pids: 1 << 22}, ""},
		{Limits{Pids: 1<<22 + 1}, "above the kernel's maximum"},
	} {
		err := tc.l.Validate()
		if tc.bad == "" && err != nil || tc.bad != "" && (err == nil || !strings.Contains(err.Error(), tc.bad)) {
			t.Errorf("%+v: got %v, want %q", tc.l, err, tc.bad)
		}
	}
}

// TestParseLimits: the flags' values, as --parker-memory, --parker-cpus
// and --parker-pids (and parker --memory, --cpus, --pids) take them.
func TestParseLimits(t *testing.T) {
	for in, want := range map[string]int64{"100M": 100 << 20, "1.5G": 3 << 29, "0": 0, "0.0M": 0, "1048576": 1 << 20} {
		if got, err := ParseMemory(in); err != nil || got != want {
			t.Errorf("ParseMemory(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "100", "-1M", "lots", "1Q", "0.5", "0.0000000001G", "1023K"} {
		if got, err := ParseMemory(in); err == nil {
			t.Errorf("ParseMemory(%q) = %d, want an error", in, got)
		}
	}
	for in, want := range map[string]float64{"0.5": 0.5, "2": 2, ".25": 0.25, "0": 0, " 1.5 ": 1.5} {
		if got, err := ParseCPUs(in); err != nil || got != want {
			t.Errorf("ParseCPUs(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "half", "1e3", "inf", "NaN", "-1", "0.001", "1/2", "100000"} {
		if got, err := ParseCPUs(in); err == nil {
			t.Errorf("ParseCPUs(%q) = %v, want an error", in, got)
		}
	}
	for in, want := range map[string]int64{"50": 50, "0": 0, "4194304": 1 << 22} {
		if got, err := ParsePids(in); err != nil || got != want {
			t.Errorf("ParsePids(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "1.5", "-2", "many", "4194305", "0x10", "+5"} {
		if got, err := ParsePids(in); err == nil {
			t.Errorf("ParsePids(%q) = %d, want an error", in, got)
		}
	}
	var l Limits
	for _, kv := range [][2]string{{"memory", "1G"}, {"cpus", "1.5"}, {"pids", "9"}, {"memory", "0"}} {
		if err := l.Set(kv[0], kv[1]); err != nil {
			t.Errorf("Set(%q, %q): %v", kv[0], kv[1], err)
		}
	}
	if l != (Limits{CPUs: 1.5, Pids: 9}) {
		t.Errorf("after the Sets: %+v", l)
	}
	if err := l.Set("disk", "1G"); err == nil {
		t.Error("Set of an unknown limit accepted")
	}
	for l, want := range map[Limits]string{{}: "none", allLimits: "memory 100M, cpus 0.5, pids 50", {CPUs: 1.25}: "cpus 1.25"} {
		if got := l.String(); got != want {
			t.Errorf("%+v.String() = %q, want %q", l, got, want)
		}
	}
}

var allLimits = Limits{Memory: 100 << 20, CPUs: 0.5, Pids: 50}

// fakeLayout returns the layout of a fake host whose caller (pid 1000) is
// in /app/term in every hierarchy; in v2, /app gives its children the
// controllers delegated.
func fakeLayout(f *fakeFS, mode Mode, delegated string) Layout {
	l := Layout{Mode: mode}
	o := f.ops()
	if f.v2 != "" {
		f.files[f.v2+"/cgroup.subtree_control"] = "cpu memory pids"
		o.mkdir(f.v2 + "/app")
		f.files[f.v2+"/app/cgroup.subtree_control"] = delegated
		o.mkdir(f.v2 + "/app/term")
		f.files[f.v2+"/app/term/cgroup.procs"] = "1000\n"
		l.V2 = &Hierarchy{Mount: f.v2, Root: "/", Path: "/app/term"}
	}
	for m, cs := range f.v1 {
		o.mkdir(m + "/app")
		o.mkdir(m + "/app/term")
		f.files[m+"/app/term/cgroup.procs"] = "1000\n"
		l.V1 = append(l.V1, Hierarchy{Mount: m, Root: "/", Path: "/app/term", Controllers: cs})
	}
	f.log = nil
	return l
}

func TestCreatePureV2(t *testing.T) {
	f := newFake("/v2", nil)
	l := fakeLayout(f, Auto, "cpu memory pids")
	g, err := create(f.ops(), l, os.Getpid(), allLimits)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"/v2/app/parker/cgroup.subtree_control +memory",
		"/v2/app/parker/cgroup.subtree_control +pids",
		"/v2/app/parker/cgroup.subtree_control +cpu",
		"/v2/app/parker/RUN/memory.max 104857600",
		"/v2/app/parker/RUN/memory.swap.max 0",
		"/v2/app/parker/RUN/pids.max 50",
		"/v2/app/parker/RUN/cpu.max 50000 100000",
	}
	if got := f.writes(g.Name()); !reflect.DeepEqual(got, want) {
		t.Errorf("writes:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if m, want := g.Mechanism(), "cgroup v2 memory,pids,cpu /v2/app/parker/"+g.Name()+"; killed by cgroup.kill"; m != want {
		t.Errorf("mechanism %q, want %q", m, want)
	}
	// A second run finds the controllers on and turns on nothing.
	f.log = nil
	g2, err := create(f.ops(), l, os.Getpid(), allLimits)
	if err != nil {
		t.Fatal(err)
	}
	if ws := f.writes(g2.Name()); len(ws) != 4 || strings.Contains(strings.Join(ws, " "), "subtree_control") {
		t.Errorf("second run wrote %q", ws)
	}
	// Only the controllers a run needs are turned on; a run without
	// limits needs none.
	f2 := newFake("/v2", nil)
	l2 := fakeLayout(f2, Auto, "cpu memory pids")
	g3, err := create(f2.ops(), l2, os.Getpid(), Limits{Pids: 7})
	if err != nil {
		t.Fatal(err)
	}
	if got := f2.writes(g3.Name()); !reflect.DeepEqual(got, []string{"/v2/app/parker/cgroup.subtree_control +pids", "/v2/app/parker/RUN/pids.max 7"}) {
		t.Errorf("pids only: %q", got)
	}
	if err := g3.Join(1000); err != nil {
		t.Error(err)
	}
	// A run without limits goes under the caller's own cgroup, whose own
	// limits then hold it too.
	f2.log = nil
	g4, err := create(f2.ops(), l2, os.Getpid(), Limits{})
	if err != nil || len(f2.log) != 0 || !reflect.DeepEqual(g4.Dirs(), []string{"/v2/app/term/parker/" + g4.Name()}) {
		t.Errorf("no limits: %v, writes %q", err, f2.log)
	}
}

// Where a run with v2 controllers goes: under the root when the caller is
// in it; nowhere when the caller's cgroup is the top of what is mounted.
func TestCreateV2Placement(t *testing.T) {
	f := newFake("/v2", nil)
	f.files["/v2/cgroup.subtree_control"] = "memory"
	l := Layout{V2: &Hierarchy{Mount: "/v2", Root: "/", Path: "/"}}
	g, err := create(f.ops(), l, os.Getpid(), Limits{Memory: 1 << 30})
	if err != nil || !reflect.DeepEqual(g.Dirs(), []string{"/v2/parker/" + g.Name()}) {
		t.Fatalf("root: %v", err)
	}
	if got := f.writes(g.Name()); !reflect.DeepEqual(got, []string{"/v2/parker/cgroup.subtree_control +memory", "/v2/parker/RUN/memory.max 1073741824", "/v2/parker/RUN/memory.swap.max 0"}) {
		t.Errorf("root: %q", got)
	}
	// A container given its own subtree: the caller's cgroup, at the top,
	// holds processes, and its parent is out of sight.
	f = newFake("/v2", nil)
	f.files["/v2/cgroup.type"] = "domain\n"
	f.files["/v2/cgroup.procs"] = "1\n1000\n"
	l = Layout{V2: &Hierarchy{Mount: "/v2", Root: "/ctr", Path: "/ctr"}}
	if _, err := create(f.ops(), l, os.Getpid(), Limits{Memory: 1 << 30}); !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "which is not mounted here") {
		t.Errorf("container: %v", err)
	}
	if g, err := create(f.ops(), l, os.Getpid(), Limits{}); err != nil || g.Dirs()[0] != "/v2/parker/"+g.Name() {
		t.Errorf("container, no limits: %v", err)
	}
}

func TestCreateNotDelegated(t *testing.T) {
	f := newFake("/v2", nil)
	l := fakeLayout(f, Auto, "pids")
	_, err := create(f.ops(), l, os.Getpid(), Limits{Memory: 64 << 20, Pids: 10})
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), `v2 at /v2/app: memory not enabled for its child cgroups (cgroup.subtree_control "pids")`) {
		t.Errorf("got %v", err)
	}
	if len(f.log) != 0 {
		t.Errorf("a refused run touched %q", f.log)
	}
	// The caller's cgroup is never changed to make the controller
	// available.
	if f.files["/v2/app/cgroup.subtree_control"] != "pids" || f.files["/v2/app/term/cgroup.subtree_control"] != "" {
		t.Errorf("subtree_control now %q above, %q in the caller's", f.files["/v2/app/cgroup.subtree_control"], f.files["/v2/app/term/cgroup.subtree_control"])
	}
}

func TestCreateHybrid(t *testing.T) {
	f := newFake("/v2", map[string][]string{"/v1/memory": {"memory"}, "/v1/pids": {"pids"}, "/v1/cpu": {"cpu"},
		"/v1/cpuacct": {"cpuacct"}, "/v1/freezer": {"freezer"}})
	l := fakeLayout(f, Auto, "")
	g, err := create(f.ops(), l, os.Getpid(), allLimits)
	if err != nil {
		t.Fatal(err)
	}
	// v2 kills; the limits go to v1; v2's cpu.stat gives the CPU usage,
	// so neither the freezer nor cpuacct is joined.
	n := g.Name()
	wantDirs := []string{"/v1/memory/app/term/parker/" + n, "/v1/pids/app/term/parker/" + n, "/v1/cpu/app/term/parker/" + n, "/v2/app/term/parker/" + n}
	if !reflect.DeepEqual(g.Dirs(), wantDirs) {
		t.Errorf("dirs %q, want %q", g.Dirs(), wantDirs)
	}
	want := "cgroup v2 /v2/app/term/parker/" + n + "; v1 memory /v1/memory/app/term/parker/" + n + "; v1 pids /v1/pids/app/term/parker/" + n +
		"; v1 cpu /v1/cpu/app/term/parker/" + n + "; killed by cgroup.kill"
	if g.Mechanism() != want {
		t.Errorf("mechanism %q\nwant      %q", g.Mechanism(), want)
	}
	wantW := []string{
		"/v1/memory/app/term/parker/RUN/memory.limit_in_bytes 104857600",
		"/v1/memory/app/term/parker/RUN/memory.memsw.limit_in_bytes 104857600",
		"/v1/pids/app/term/parker/RUN/pids.max 50",
		"/v1/cpu/app/term/parker/RUN/cpu.cfs_period_us 100000",
		"/v1/cpu/app/term/parker/RUN/cpu.cfs_quota_us 50000",
	}
	if got := f.writes(n); !reflect.DeepEqual(got, wantW) {
		t.Errorf("writes:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(wantW, "\n"))
	}
	// Forced to v2, the limits cannot be had.
	l.Mode, l.V1 = V2, nil
	if _, err := create(f.ops(), l, os.Getpid(), Limits{Memory: 1 << 30}); !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "memory not enabled") {
		t.Errorf("forced v2: %v", err)
	}
}

func TestCreateV1(t *testing.T) {
	f := newFake("", map[string][]string{"/v1/memory": {"memory"}, "/v1/cpu,cpuacct": {"cpu", "cpuacct"}, "/v1/freezer": {"freezer"}})
	l := fakeLayout(f, Auto, "")
	g, err := create(f.ops(), l, os.Getpid(), Limits{CPUs: 1.5})
	if err != nil {
		t.Fatal(err)
	}
	n := g.Name()
	want := "cgroup v1 freezer /v1/freezer/app/term/parker/" + n + "; v1 cpu,cpuacct /v1/cpu,cpuacct/app/term/parker/" + n + "; killed by the v1 freezer"
	if g.Mechanism() != want {
		t.Errorf("mechanism %q\nwant      %q", g.Mechanism(), want)
	}
	if got := f.writes(n); !reflect.DeepEqual(got, []string{"/v1/cpu,cpuacct/app/term/parker/RUN/cpu.cfs_period_us 100000", "/v1/cpu,cpuacct/app/term/parker/RUN/cpu.cfs_quota_us 150000"}) {
		t.Errorf("writes %q", got)
	}
	if _, err := create(f.ops(), l, os.Getpid(), Limits{Pids: 5}); !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "v1: no hierarchy for pids") {
		t.Errorf("pids without a pids hierarchy: %v", err)
	}
	// Without a freezer, a run without limits has nothing to be held in.
	f2 := newFake("", map[string][]string{"/v1/memory": {"memory"}})
	if _, err := create(f2.ops(), fakeLayout(f2, Auto, ""), os.Getpid(), Limits{}); !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "no freezer") {
		t.Errorf("no freezer: %v", err)
	}
}

func TestCreateFallback(t *testing.T) {
	v1 := map[string][]string{"/v1/freezer": {"freezer"}, "/v1/pids": {"pids"}}
	// An unprivileged user: v2 not delegated, so mkdir is refused; v1 is
	// root's too. Each way tried is named, and nothing is left.
	f := newFake("/v2", v1)
	l := fakeLayout(f, Auto, "")
	f.deny["/v2"], f.deny["/v1/freezer"] = syscall.EACCES, syscall.EACCES
	_, err := create(f.ops(), l, os.Getpid(), Limits{})
	if !errors.Is(err, ErrUnavailable) || strings.Count(err.Error(), "permission denied") != 2 {
		t.Errorf("got %v", err)
	}
	// v1 allowed: used instead.
	delete(f.deny, "/v1/freezer")
	g, err := create(f.ops(), l, os.Getpid(), Limits{})
	if err != nil || !strings.HasPrefix(g.Mechanism(), "cgroup v1 freezer") {
		t.Fatalf("got %v", err)
	}
	// A limit the kernel refuses in v2 leaves no directory there before
	// v1 is tried.
	f = newFake("/v2", v1)
	l = fakeLayout(f, Auto, "pids")
	f.failWrite["pids.max"] = syscall.EINVAL
	_, err = create(f.ops(), l, os.Getpid(), Limits{Pids: 5})
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "v2: write /v2/app/parker/run-") {
		t.Errorf("got %v", err)
	}
	for d := range f.dirs {
		if strings.Contains(d, "/run-") {
			t.Errorf("left %s", d)
		}
	}
	if _, err := create(f.ops(), Layout{Mode: None}, os.Getpid(), Limits{}); !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "turned off") {
		t.Errorf("mode none: %v", err)
	}
	if _, err := create(f.ops(), Layout{}, os.Getpid(), Limits{}); !errors.Is(err, ErrUnavailable) {
		t.Errorf("no hierarchy: %v", err)
	}
}

// The v1 freezer's order: frozen before the signals, so nothing forks
// meanwhile; thawed after, so the frozen processes can die.
func TestKillFreezerOrder(t *testing.T) {
	f := newFake("", map[string][]string{"/v1/freezer": {"freezer"}})
	g, err := create(f.ops(), fakeLayout(f, Auto, ""), os.Getpid(), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []int{101, 102} {
		if err := g.Join(p); err != nil {
			t.Fatal(err)
		}
	}
	f.log = nil
	if err := g.Kill(); err != nil {
		t.Fatal(err)
	}
	dir := g.Dirs()[0]
	want := []string{"write " + dir + "/freezer.state FROZEN", "kill 101", "kill 102", "write " + dir + "/freezer.state THAWED"}
	if !reflect.DeepEqual(f.log, want) {
		t.Errorf("log %q, want %q", f.log, want)
	}
	if err := g.Remove(); err != nil || f.dirs[dir] {
		t.Errorf("remove: %v", err)
	}
	if err := g.Remove(); err != nil {
		t.Errorf("second remove: %v", err)
	}
}

// CleanStale looks in both places a v2 run may be: under the caller's
// cgroup and beside it.
func TestCleanStaleBothBases(t *testing.T) {
	f := newFake("/v2", map[string][]string{"/v1/freezer": {"freezer"}})
	l := fakeLayout(f, Auto, "memory")
	o := f.ops()
	ns, _ := pidNS()
	start, _ := startTime(os.Getpid())
	stale := fmt.Sprintf("run-%d-%d-%d-00", ns, os.Getpid(), start+1)
	live := fmt.Sprintf("run-%d-%d-%d-00", ns, os.Getpid(), start)
	var want []string
	for _, parent := range []string{"/v2/app/parker", "/v2/app/term/parker", "/v1/freezer/app/term/parker"} {
		o.mkdir(parent)
		o.mkdir(parent + "/" + stale)
		o.mkdir(parent + "/" + live)
		want = append(want, parent+"/"+stale)
	}
	got, err := cleanStale(o, l)
	if slices.Sort(got); err != nil || !reflect.DeepEqual(got, sorted(want)) {
		t.Errorf("removed %q (%v), want %q", got, err, want)
	}
}
