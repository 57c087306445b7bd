package stub

import (
	"os"
	"strings"
)

// targetName is what the target at path (absolute, in the view) is run
// as, starting in dir ("": ours): its argv[0] and the path it is executed
// through, which a script gets as $0. Programs find themselves through
// these (python's sys.executable, a re-exec of argv[0]), so they must name
// the target as a direct run would. When caller, our argv[0], has a slash,
// that is caller with our base name replaced by rel, the target's path in
// the packed directory (./pythond runs ./python, /opt/x/pythond
// /opt/x/python), if it names the target from dir: it does not when, for
// one, caller is a symlink to the packed file from another directory.
// Otherwise (found through PATH, or no name at all) it is path.
func targetName(caller, rel, path, dir string) string {
	i := strings.LastIndexByte(caller, '/')
	if i < 0 {
		return path
	}
	name := caller[:i+1] + rel
	at := name
	if dir != "" && name[0] != '/' {
		at = dir + "/" + name // not filepath.Join: ".." after a symlink is the kernel's to resolve
	}
	if !sameFile(at, path) {
		return path
	}
	return name
}

// sameFile reports whether paths a and b name one file.
func sameFile(a, b string) bool {
	sa, err := os.Stat(a)
	if err != nil {
		return false
	}
	sb, err := os.Stat(b)
	return err == nil && os.SameFile(sa, sb)
}
