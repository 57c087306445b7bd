package cgroup

import (
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

// fakeFS is a cgroupfs in memory, as far as the policy sees it: a new
// directory gets the control files the kernel would give it, subtree
// control follows the parent's, and writes are recorded.
type fakeFS struct {
	dirs  map[string]bool
	files map[string]string
	v2    string              // mount point of the v2 hierarchy, or ""
	v1    map[string][]string // mount point → controllers
	// deny makes mkdir below a mount point fail; failWrite makes writes
	// to a file (by base name) fail.
	deny      map[string]error
	failWrite map[string]error
	log       []string // "write FILE VALUE", "kill PID", "rmdir DIR"
}

func newFake(v2 string, v1 map[string][]string) *fakeFS {
	f := &fakeFS{dirs: map[string]bool{}, files: map[string]string{}, v2: v2, v1: v1,
		deny: map[string]error{}, failWrite: map[string]error{}}
	if v2 != "" {
		f.dirs[v2] = true
		f.files[v2+"/cgroup.procs"] = ""
		f.files[v2+"/cgroup.subtree_control"] = ""
		f.files[v2+"/cgroup.controllers"] = "cpu memory pids"
	}
	for m := range v1 {
		f.dirs[m] = true
		f.files[m+"/cgroup.procs"] = ""
	}
	return f
}

func pathErr(op, p string, err error) error { return &os.PathError{Op: op, Path: p, Err: err} }

// mountOf returns the mount point dir lies under, and whether it is v2.
func (f *fakeFS) mountOf(dir string) (string, bool) {
	if f.v2 != "" && (dir == f.v2 || strings.HasPrefix(dir, f.v2+"/")) {
		return f.v2, true
	}
	for m := range f.v1 {
		if dir == m || strings.HasPrefix(dir, m+"/") {
			return m, false
		}
	}
	return "", false
}

var fakeFiles = map[string][]string{
	"v2 memory":  {"memory.max", "memory.swap.max", "memory.events=oom_kill 0\n"},
	"v2 pids":    {"pids.max"},
	"v2 cpu":     {"cpu.max"},
	"v1 memory":  {"memory.limit_in_bytes", "memory.memsw.limit_in_bytes", "memory.oom_control=oom_kill 0\n"},
	"v1 pids":    {"pids.max"},
	"v1 cpu":     {"cpu.cfs_period_us", "cpu.cfs_quota_us"},
	"v1 cpuacct": {"cpuacct.usage=0\n"},
	"v1 freezer": {"freezer.state=THAWED\n"},
	"v2": {"cgroup.procs", "cgroup.subtree_control", "cgroup.type=domain\n", "cgroup.kill", "cgroup.freeze=0\n",
		"cgroup.events=populated 0\nfrozen 0\n", "cpu.stat=usage_usec 0\n"},
	"v1": {"cgroup.procs"},
}

func (f *fakeFS) addFiles(dir, kind string) {
	for _, spec := range fakeFiles[kind] {
		name, value, _ := strings.Cut(spec, "=")
		f.files[dir+"/"+name] = value
	}
}

func (f *fakeFS) ops() fsOps {
	return fsOps{
		mkdir: func(dir string) error {
			m, v2 := f.mountOf(dir)
			switch {
			case m == "" || !f.dirs[path.Dir(dir)]:
				return pathErr("mkdir", dir, syscall.ENOENT)
			case f.dirs[dir]:
				return pathErr("mkdir", dir, syscall.EEXIST)
			case f.deny[m] != nil:
				return pathErr("mkdir", dir, f.deny[m])
			}
			f.dirs[dir] = true
			if v2 {
				f.addFiles(dir, "v2")
				on := f.files[path.Dir(dir)+"/cgroup.subtree_control"]
				f.files[dir+"/cgroup.controllers"] = on
				for _, c := range strings.Fields(on) {
					f.addFiles(dir, "v2 "+c)
				}
			} else {
				f.addFiles(dir, "v1")
				for _, c := range f.v1[m] {
					f.addFiles(dir, "v1 "+c)
				}
			}
			return nil
		},
		rmdir: func(dir string) error {
			if !f.dirs[dir] {
				return pathErr("rmdir", dir, syscall.ENOENT)
			}
			for d := range f.dirs {
				if strings.HasPrefix(d, dir+"/") {
					return pathErr("rmdir", dir, syscall.EBUSY)
				}
			}
			if strings.TrimSpace(f.files[dir+"/cgroup.procs"]) != "" {
				return pathErr("rmdir", dir, syscall.EBUSY)
			}
			delete(f.dirs, dir)
			for p := range f.files {
				if path.Dir(p) == dir {
					delete(f.files, p)
				}
			}
			f.log = append(f.log, "rmdir "+dir)
			return nil
		},
		read: func(file string) (string, error) {
			s, ok := f.files[file]
			if !ok {
				return "", pathErr("open", file, syscall.ENOENT)
			}
			return s, nil
		},
		write: func(file, value string) error {
			if err := f.failWrite[path.Base(file)]; err != nil {
				return pathErr("write", file, err)
			}
			old, ok := f.files[file]
			if !ok {
				return pathErr("open", file, syscall.ENOENT)
			}
			// v2's rule: no controllers for the children of a cgroup
			// that holds processes, the root excepted.
			dir := path.Dir(file)
			_, nonRoot := f.files[dir+"/cgroup.type"]
			switch path.Base(file) {
			case "cgroup.subtree_control":
				if nonRoot && strings.TrimSpace(f.files[dir+"/cgroup.procs"]) != "" {
					return pathErr("write", file, syscall.EBUSY)
				}
				c := strings.TrimPrefix(value, "+")
				if !slices.Contains(strings.Fields(f.files[path.Dir(file)+"/cgroup.controllers"]), c) {
					return pathErr("write", file, syscall.ENOENT)
				}
				f.files[file] = strings.TrimSpace(old + " " + c)
			case "cgroup.procs":
				if nonRoot && f.files[dir+"/cgroup.subtree_control"] != "" {
					return pathErr("write", file, syscall.EBUSY)
				}
				f.files[file] = old + value + "\n"
			case "freezer.state":
				f.files[file] = value + "\n"
			default:
				f.files[file] = value
			}
			f.log = append(f.log, "write "+file+" "+value)
			return nil
		},
		exists: func(file string) bool { _, ok := f.files[file]; return ok || f.dirs[file] },
		subdirs: func(dir string) ([]string, error) {
			if !f.dirs[dir] {
				return nil, pathErr("open", dir, syscall.ENOENT)
			}
			var names []string
			for d := range f.dirs {
				if path.Dir(d) == dir {
					names = append(names, path.Base(d))
				}
			}
			slices.Sort(names)
			return names, nil
		},
		kill: func(pid int) error {
			f.log = append(f.log, "kill "+strconv.Itoa(pid))
			for p, s := range f.files {
				if path.Base(p) == "cgroup.procs" {
					f.files[p] = strings.ReplaceAll("\n"+s, "\n"+strconv.Itoa(pid)+"\n", "\n")[1:]
				}
			}
			return nil
		},
	}
}

// writes returns the recorded writes, each "FILE VALUE" with dir shortened
// to its base name and the run's name to RUN.
func (f *fakeFS) writes(run string) []string {
	var ws []string
	for _, l := range f.log {
		if s, ok := strings.CutPrefix(l, "write "); ok {
			ws = append(ws, strings.ReplaceAll(s, run, "RUN"))
		}
	}
	return ws
}
