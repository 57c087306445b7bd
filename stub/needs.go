package stub

import (
	"os"
	"sync"

	"github.com/parkerpack/parker/image/trailer"
	"github.com/parkerpack/parker/internal/ldcache"
)

// The libraries the target takes from the machine it runs on (the
// trailer's Needs), checked before anything starts: each must be at the
// path where the pack host's loader found it, or named for its ABI in
// this machine's loader cache (the C stub's needs.c does the same). That
// costs a few stat calls where it holds. Where it does not, the run asks
// the target's loader, in the run's view, just before the exec
// (supervisor.MissingLibrary): a library it finds after all (by
// LD_LIBRARY_PATH, another directory of the system's) lets the run go on;
// one it cannot fails the run with a line that names it and the way out,
// parker --closure, before the target starts.

// needsMet tells whether every library of needs is there.
func needsMet(needs []trailer.Need) bool {
	for _, d := range needs {
		if _, err := os.Stat(d.Path); err != nil && !hostCacheHas(d.Soname, int32(d.Flags)) {
			return false
		}
	}
	return true
}

var hostCache = sync.OnceValue(func() []ldcache.Entry {
	b, err := os.ReadFile(ldcache.Path)
	if err != nil {
		return nil
	}
	es, _ := ldcache.Parse(b)
	return es
})

// hostCacheHas tells whether this machine's loader cache names soname
// with flags (and no hwcap).
func hostCacheHas(soname string, flags int32) bool {
	for _, e := range hostCache() {
		if e.Soname == soname && e.Flags == flags && e.HWCap == 0 {
			return true
		}
	}
	return false
}
