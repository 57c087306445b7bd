package cgroup

import (
	"path"
	"reflect"
	"strings"
	"testing"
)

// Sample /proc/self/mountinfo and /proc/self/cgroup texts, one per kind of
// host.
const (
	// Debian 12, systemd, a shell in a delegated user service.
	pureV2Mounts = `22 28 0:21 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
25 22 0:22 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
28 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw,errors=remount-ro
`
	pureV2Cgroup = "0::/user.slice/user-1000.slice/user@1000.service/app.slice/term.scope\n"

	// The development VM: systemd's hybrid layout, memory in a cgroup of
	// the host's process manager.
	hybridMounts = `31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
38 31 0:35 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
`
	hybridCgroup = `9:name=systemd:/
8:pids:/
7:blkio:/
6:freezer:/
5:devices:/
4:memory:/process_api/6439e9d1
3:cpuset:/
2:cpuacct:/
1:cpu:/
0::/
`
	// CentOS 7: v1 only, cpu and cpuacct mounted together.
	v1Mounts = `24 18 0:20 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:8 - tmpfs tmpfs ro,seclabel,mode=755
25 24 0:21 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:9 - cgroup cgroup rw,seclabel,xattr,release_agent=/usr/lib/systemd/systemd-cgroups-agent,name=systemd
28 24 0:24 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:10 - cgroup cgroup rw,seclabel,cpu,cpuacct
29 24 0:25 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:11 - cgroup cgroup rw,seclabel,memory
30 24 0:26 / /sys/fs/cgroup/freezer rw,nosuid,nodev,noexec,relatime shared:12 - cgroup cgroup rw,seclabel,freezer
31 24 0:27 / /sys/fs/cgroup/pids rw,nosuid,nodev,noexec,relatime shared:13 - cgroup cgroup rw,seclabel,pids
`
	v1Cgroup = `11:pids:/user.slice
6:memory:/user.slice
4:cpu,cpuacct:/user.slice
3:freezer:/
1:name=systemd:/user.slice/user-1000.slice/session-1.scope
`
	// No cgroup file system mounted (a chroot, a minimal container).
	noneMounts = `28 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
`
	// A container given a subtree of the host's hierarchy, mounted at a
	// path with a space.
	subtreeMounts = `500 400 0:22 /docker/abc /sys/fs/my\040cg ro,nosuid - cgroup2 cgroup2 rw
`
)

func TestLayout(t *testing.T) {
	for _, tc := range []struct {
		name           string
		mounts, cgroup string
		opts           Options
		kind           string
		v2             *Hierarchy
		v1             []Hierarchy
	}{
		{name: "pure v2", mounts: pureV2Mounts, cgroup: pureV2Cgroup, kind: "v2",
			v2: &Hierarchy{Mount: "/sys/fs/cgroup", Root: "/", Path: "/user.slice/user-1000.slice/user@1000.service/app.slice/term.scope"}},
		{name: "hybrid", mounts: hybridMounts, cgroup: hybridCgroup, kind: "hybrid",
			v2: &Hierarchy{Mount: "/sys/fs/cgroup/unified", Root: "/", Path: "/"},
			v1: []Hierarchy{
				{Mount: "/sys/fs/cgroup/pids", Root: "/", Path: "/", Controllers: []string{"pids"}},
				{Mount: "/sys/fs/cgroup/freezer", Root: "/", Path: "/", Controllers: []string{"freezer"}},
				{Mount: "/sys/fs/cgroup/memory", Root: "/", Path: "/process_api/6439e9d1", Controllers: []string{"memory"}},
				{Mount: "/sys/fs/cgroup/cpuacct", Root: "/", Path: "/", Controllers: []string{"cpuacct"}},
				{Mount: "/sys/fs/cgroup/cpu", Root: "/", Path: "/", Controllers: []string{"cpu"}},
			}},
		{name: "hybrid, parent", mounts: hybridMounts, cgroup: hybridCgroup, kind: "hybrid", opts: Options{Mode: Auto, Parent: "/test/"},
			v2: &Hierarchy{Mount: "/sys/fs/cgroup/unified", Root: "/", Path: "/test"},
			v1: []Hierarchy{
				{Mount: "/sys/fs/cgroup/pids", Root: "/", Path: "/test", Controllers: []string{"pids"}},
				{Mount: "/sys/fs/cgroup/freezer", Root: "/", Path: "/test", Controllers: []string{"freezer"}},
				{Mount: "/sys/fs/cgroup/memory", Root: "/", Path: "/test", Controllers: []string{"memory"}},
				{Mount: "/sys/fs/cgroup/cpuacct", Root: "/", Path: "/test", Controllers: []string{"cpuacct"}},
				{Mount: "/sys/fs/cgroup/cpu", Root: "/", Path: "/test", Controllers: []string{"cpu"}},
			}},
		{name: "hybrid, forced v2", mounts: hybridMounts, cgroup: hybridCgroup, opts: Options{Mode: V2}, kind: "v2",
			v2: &Hierarchy{Mount: "/sys/fs/cgroup/unified", Root: "/", Path: "/"}},
		{name: "hybrid, forced none", mounts: hybridMounts, cgroup: hybridCgroup, opts: Options{Mode: None}, kind: "none"},
		{name: "v1", mounts: v1Mounts, cgroup: v1Cgroup, kind: "v1",
			v1: []Hierarchy{
				{Mount: "/sys/fs/cgroup/pids", Root: "/", Path: "/user.slice", Controllers: []string{"pids"}},
				{Mount: "/sys/fs/cgroup/memory", Root: "/", Path: "/user.slice", Controllers: []string{"memory"}},
				{Mount: "/sys/fs/cgroup/cpu,cpuacct", Root: "/", Path: "/user.slice", Controllers: []string{"cpu", "cpuacct"}},
				{Mount: "/sys/fs/cgroup/freezer", Root: "/", Path: "/", Controllers: []string{"freezer"}},
			}},
		{name: "v1, forced v2", mounts: v1Mounts, cgroup: v1Cgroup, opts: Options{Mode: V2}, kind: "none"},
		{name: "none", mounts: noneMounts, cgroup: "0::/\n", kind: "none"},
		{name: "subtree", mounts: subtreeMounts, cgroup: "0::/docker/abc/app\n", kind: "v2",
			v2: &Hierarchy{Mount: "/sys/fs/my cg", Root: "/docker/abc", Path: "/docker/abc/app"}},
		{name: "outside the subtree", mounts: subtreeMounts, cgroup: "0::/docker/abcd\n", kind: "none"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := layout(tc.mounts, tc.cgroup, tc.opts)
			if l.Kind() != tc.kind || !reflect.DeepEqual(l.V2, tc.v2) || !reflect.DeepEqual(l.V1, tc.v1) {
				t.Errorf("got %s %+v %+v\nwant %s %+v %+v", l.Kind(), l.V2, l.V1, tc.kind, tc.v2, tc.v1)
			}
		})
	}
}

func TestHierarchyDir(t *testing.T) {
	for _, tc := range []struct{ mount, root, path, want string }{
		{"/sys/fs/cgroup", "/", "/", "/sys/fs/cgroup"},
		{"/sys/fs/cgroup", "/", "/a/b", "/sys/fs/cgroup/a/b"},
		{"/c", "/docker/abc", "/docker/abc", "/c"},
		{"/c", "/docker/abc", "/docker/abc/x", "/c/x"},
		{"/c", "/docker/abc", "/docker/abcd", ""},
		{"/c", "/docker/abc", "/", ""},
	} {
		if got := (Hierarchy{Mount: tc.mount, Root: tc.root, Path: tc.path}).Dir(); got != tc.want {
			t.Errorf("%+v: Dir %q, want %q", tc, got, tc.want)
		}
	}
}

func TestUnescape(t *testing.T) {
	for in, want := range map[string]string{
		`/a\040b`: "/a b", `/tab\011x`: "/tab\tx", `/back\134slash`: `/back\slash`,
		`/plain`: "/plain", `/cut\04`: `/cut\04`, `/bad\9zz`: `/bad\9zz`,
	} {
		if got := unescape(in); got != want {
			t.Errorf("unescape(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestOptionsFromEnv(t *testing.T) {
	for _, tc := range []struct {
		mode, parent string
		want         Options
		ok           bool
	}{
		{"", "", Options{Mode: Auto}, true},
		{"auto", "", Options{Mode: Auto}, true},
		{"v1", "/", Options{Mode: V1, Parent: "/"}, true},
		{"v2", "", Options{Mode: V2}, true},
		{"none", "", Options{Mode: None}, true},
		{"V1", "", Options{}, false},
		{"v3", "", Options{}, false},
		{"v1", "relative", Options{}, false},
	} {
		env := map[string]string{EnvMode: tc.mode, EnvParent: tc.parent}
		got, err := OptionsFromEnv(func(k string) string { return env[k] })
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("%q %q: got %+v, %v; want %+v (ok %v)", tc.mode, tc.parent, got, err, tc.want, tc.ok)
		}
	}
}

// Whatever mountinfo and /proc/self/cgroup say, a run cgroup's parent is
// inside a cgroup mount.
func FuzzLayout(f *testing.F) {
	for _, s := range [][2]string{{pureV2Mounts, pureV2Cgroup}, {hybridMounts, hybridCgroup}, {v1Mounts, v1Cgroup},
		{subtreeMounts, "0::/docker/abc/x/../y\n"}} {
		f.Add(s[0], s[1], "")
		f.Add(s[0], s[1], "/../t")
	}
	f.Fuzz(func(t *testing.T, mounts, cgroup, parent string) {
		l := layout(mounts, cgroup, Options{Parent: parent})
		for _, h := range hierarchies(l) {
			d, m := h.Dir(), path.Clean(h.Mount)
			if d == "" || d != m && !strings.HasPrefix(d, m+"/") && m != "/" {
				t.Errorf("%+v: dir %q outside its mount", h, d)
			}
		}
	})
}
