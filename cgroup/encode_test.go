package cgroup

import (
	"reflect"
	"testing"
)

func TestEncode(t *testing.T) {
	g := &Group{fs: sysFS, name: "run-1-2-3-ab", kill: killByKill,
		lim: Limits{Memory: 100 << 20, CPUs: 0.5, Pids: 50},
		v2:  "/sys/fs/cgroup/unified/a b/parker/run-1-2-3-ab",
		v1:  []string{"/sys/fs/cgroup/memory/parker/run-1-2-3-ab", "/sys/fs/cgroup/pids/\"q\"\n"},
		ctl: map[string]place{"memory": {"/sys/fs/cgroup/memory/parker/run-1-2-3-ab", false}, "cpu": {"/x", true}},
	}
	got, err := Decode(g.Encode())
	if err != nil {
		t.Fatal(err)
	}
	got.fs, g.fs = fsOps{}, fsOps{} // functions never compare equal
	if !reflect.DeepEqual(got, g) {
		t.Errorf("Decode(Encode(g)) = %+v, want %+v", got, g)
	}
	for _, bad := range []string{"", "name \"x\"\n", "name x\nv2 \"/a\"\n", "limits \"1\"\nname \"x\"\nv2 \"/a\"\n", "what \"x\"\n"} {
		if _, err := Decode(bad); err == nil {
			t.Errorf("Decode(%q) accepted", bad)
		}
	}
}
