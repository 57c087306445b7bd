package closure

import (
	"bytes"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/parkerpack/parker/internal/ldcache"
)

// Need is a library a program takes from the machine it runs on: its
// soname, the loader cache's flags for its ABI, and the path the loader
// found it at.
type Need struct {
	Flags  int32
	Soname string
	Path   string
}

// Walk follows the libraries of the program at target, transitively, as
// its loader would resolve them with libraryPath (LD_LIBRARY_PATH)
// and cache, without storing anything: breadth first, a name already
// loaded (needed before, or a loaded library's soname) answered without
// a search, $ORIGIN the directory a library was found in. It returns
// those it finds outside the tree at root (they are packed with the
// program), in the order found, and the first library it cannot find,
// "NAME (needed by FILE)" ("" when all are there). A program for musl's
// loader is walked by musl's rules (musl.go). A program that is not a
// dynamic ELF file, whose loader is missing or neither glibc's nor musl's,
// or whose ABI parker does not know, needs nothing that Walk can tell.
func Walk(target, root string, libraryPath []string, cache []ldcache.Entry) (needs []Need, missing string) {
	e, err := ReadELF(target)
	if err != nil || e.Interp == "" || len(e.Needed) == 0 {
		return nil, ""
	}
	b, err := os.ReadFile(e.Interp)
	if err != nil {
		return nil, ""
	}
	var musl *muslLoader
	if arch, ok := muslArch(e.Interp, b); ok {
		musl = &muslLoader{arch: arch, sysPath: muslSysPath(e.Interp, arch)}
	} else if !bytes.Contains(b, []byte(loaderStrings[0].old)) {
		return nil, "" // neither glibc's nor musl's
	}
	f := &finder{o: Options{LibraryPath: libraryPath, Cache: cache}, target: e, targetPath: target,
		interps: map[string]bool{path.Base(e.Interp): true}}
	root = filepath.Clean(root)
	inRoot := func(p string) bool {
		p, err := filepath.EvalSymlinks(p)
		return err == nil && (p == root || strings.HasPrefix(p, root+"/"))
	}
	loaded, seen := map[string]bool{}, map[string]bool{}
	queue := []object{{e: e, path: target, display: filepath.Base(target), musl: musl}}
	for len(queue) > 0 {
		obj := queue[0]
		queue = queue[1:]
		for _, name := range obj.e.Needed {
			if f.interps[name] || loaded[name] || musl != nil && muslReserved(name) {
				continue
			}
			p, flags := "", int32(muslFlags)
			if musl != nil {
				p, _ = f.searchMusl(obj, name)
			} else if p, flags, _, err = f.search(obj, name); err != nil {
				return nil, "" // an ABI parker does not know
			}
			if p == "" {
				return needs, name + " (needed by " + obj.display + ")"
			}
			loaded[name] = true
			real, err := filepath.EvalSymlinks(p)
			if err != nil || seen[real] {
				continue
			}
			seen[real] = true
			if !inRoot(p) {
				needs = append(needs, Need{Flags: flags, Soname: name, Path: p})
			}
			l, err := ReadELF(real)
			if err != nil {
				continue // the loader says what is wrong with it
			}
			if l.Soname != "" {
				loaded[l.Soname] = true
			}
			queue = append(queue, object{e: l, path: p, display: p, musl: musl, parent: &obj})
		}
	}
	return needs, ""
}

// SplitLibraryPath reads LD_LIBRARY_PATH as the loader does: directories
// separated by ':' or ';' (empty ones left out).
func SplitLibraryPath(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ':' || r == ';' })
}

// HostCache reads this machine's loader cache: none where there is no
// file, an error where it is not in glibc's format.
func HostCache() ([]ldcache.Entry, error) {
	b, err := os.ReadFile(ldcache.Path)
	if err != nil {
		return nil, nil
	}
	es, err := ldcache.Parse(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", ldcache.Path, err)
	}
	return es, nil
}
