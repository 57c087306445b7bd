package main

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/parkerpack/parker/closure"
	"github.com/parkerpack/parker/image"
	"github.com/parkerpack/parker/image/trailer"
	"github.com/parkerpack/parker/internal/human"
	"github.com/parkerpack/parker/internal/walk"
	"golang.org/x/sys/unix"
)

// closureTmpPrefix begins the name of closureJob's temporary directory.
const closureTmpPrefix = ".parker-closure-"

// closureJob adds a packed directory's library closure to its image
// (--closure): it holds back the walk's entries, finds the closure of
// their ELF programs, and then adds them, the patched ones read from a
// temporary directory beside the output (removed when the pack ends, as
// the output's temporary file is), and the store.
type closureJob struct {
	c      *config
	ui     *ui
	target string
	// skip makes the walk's Skip for a tree (the output, packed files).
	skip    func(root, display string) func(string, *unix.Stat_t) bool
	entries []image.Entry
	res     *closure.Result
	// tmp is the temporary directory; closed, whether close (which a
	// signal may call at any moment) has removed it, or will.
	mu     sync.Mutex
	tmp    string
	closed bool
}

// add holds back one entry of the walk.
func (cj *closureJob) add(e image.Entry) error {
	if e.Path == closure.StoreName || strings.HasPrefix(e.Path, closure.StoreName+"/") {
		return fmt.Errorf("--closure: the working directory has %s, where the closure's store goes; rename it, or leave it out (--exclude %s)",
			e.Path, closure.StoreName)
	}
	cj.entries = append(cj.entries, e)
	return nil
}

// finish finds the closure and adds everything to w. It returns the
// regular files and their bytes it adds beyond the walk's (the trees of
// --closure-path, the store), for the progress line.
func (cj *closureJob) finish(w *image.Writer) (int, int64, error) {
	start := time.Now()
	added, bytes, err := cj.walkPaths()
	if err != nil {
		return 0, 0, err
	}
	var files []closure.File
	for _, e := range cj.entries {
		if e.Mode.IsRegular() && e.Size > 0 {
			files = append(files, closure.File{Rel: e.Path, Path: e.Source})
		}
	}
	cacheEntries, cacheErr := closure.HostCache()
	if cacheErr != nil {
		cj.ui.warn(fmt.Sprintf("--closure: %v; the system's directories are searched instead", cacheErr))
	}
	res, err := closure.Find(closure.Options{
		Files: files, Target: cj.target, Libs: cj.c.closureLibs, LibraryPath: closure.SplitLibraryPath(os.Getenv("LD_LIBRARY_PATH")),
		Cache: cacheEntries, AllowMissing: cj.c.closureAllowMissing, Warn: cj.ui.warn,
	})
	if err != nil {
		return 0, 0, err
	}
	cj.res = res
	tmp, err := cj.makeTemp()
	if err != nil {
		return 0, 0, err
	}
	n := 0
	// write puts b in a file of the temporary directory and returns its path.
	// write puts b in a file of the temporary directory and returns its
	// path; not once close has removed it.
	write := func(b []byte) (string, error) {
		cj.mu.Lock()
		defer cj.mu.Unlock()
		if cj.closed {
			return "", errors.New("stopped")
		}
		n++
		p := filepath.Join(tmp, fmt.Sprint(n))
		return p, os.WriteFile(p, b, 0o600)
	}
	links := map[[2]uint64]bool{} // the walk counted a hard link's bytes once
	for _, e := range cj.entries {
		if b, ok := res.Patched[e.Path]; ok {
			if e.Ino != 0 && links[[2]uint64{e.Dev, e.Ino}] {
				added, bytes = added+1, bytes+int64(len(b)) // patched, it is a file of its own
			}
			if e.Ino != 0 {
				links[[2]uint64{e.Dev, e.Ino}] = true
			}
			if e.Source, err = write(b); err != nil {
				return 0, 0, fmt.Errorf("--closure: %w", err)
			}
			e.Size, e.Dev, e.Ino = int64(len(b)), 0, 0
		} else if e.Ino != 0 {
			links[[2]uint64{e.Dev, e.Ino}] = true
		}
		if err := w.Add(e); err != nil {
			return 0, 0, err
		}
	}
	// The store's times: the packed directory's newest, so that packing
	// the same tree twice gives the same image.
	var mtime int64
	for _, e := range cj.entries {
		mtime = max(mtime, e.ModTime)
	}
	// The store's directories: those of its files, links and
	// configuration, each once.
	dirs := map[string]bool{closure.StoreName: true, path.Join(closure.StoreName, "store"): true}
	for _, s := range res.Store {
		dirs[path.Dir(s.Name)] = true
	}
	for _, l := range res.Links {
		dirs[path.Dir(l.Name)] = true
	}
	for _, c := range res.Config {
		dirs[path.Dir(c.Name)] = true
	}
	for _, d := range slices.Sorted(maps.Keys(dirs)) {
		for ; d != closure.StoreName && d != "."; d = path.Dir(d) {
			dirs[d] = true // and those on the way
		}
	}
	for _, d := range slices.Sorted(maps.Keys(dirs)) {
		if err := w.Add(image.Entry{Path: d, Mode: fs.ModeDir | 0o755, ModTime: mtime}); err != nil {
			return 0, 0, err
		}
	}
	for _, l := range res.Links {
		if err := w.Add(image.Entry{Path: l.Name, Mode: fs.ModeSymlink | 0o777, ModTime: mtime, Link: l.Target}); err != nil {
			return 0, 0, err
		}
	}
	for _, s := range res.Store {
		src := s.Source
		if s.Data != nil {
			if src, err = write(s.Data); err != nil {
				return 0, 0, fmt.Errorf("--closure: %w", err)
			}
		}
		if err := w.Add(image.Entry{Path: s.Name, Mode: 0o555, ModTime: mtime, Size: s.Size, Source: src}); err != nil {
			return 0, 0, err
		}
	}
	storeFiles := []closure.Config{{Name: closure.CachePath, Data: res.Cache}, {Name: closure.ManifestPath, Data: cj.manifest(res)},
		{Name: closure.PathsList, Data: closure.PathsFile(cj.c.closurePaths)}}
	storeFiles = append(storeFiles, res.Config...)
	added += len(res.Store) + len(storeFiles)
	bytes += res.Bytes() - int64(len(res.Cache))
	for _, f := range storeFiles {
		bytes += int64(len(f.Data))
		src, err := write(f.Data)
		if err != nil {
			return 0, 0, fmt.Errorf("--closure: %w", err)
		}
		if err := w.Add(image.Entry{Path: strings.TrimPrefix(f.Name, "/"), Mode: 0o444, ModTime: mtime,
			Size: int64(len(f.Data)), Source: src}); err != nil {
			return 0, 0, err
		}
	}
	cj.ui.stage("closure", start, fmt.Sprintf("%s, %s", plural(len(res.Store), "file"), human.Bytes(res.Bytes())))
	return added, bytes, nil
}

// walkPaths adds the trees of --closure-path DIR to the entries, under
// closure.PathsDir, where a run finds them to show at DIR; their ELF files
// are the closure's to scan like the packed directory's.
func (cj *closureJob) walkPaths() (files int, bytes int64, err error) {
	for _, p := range cj.c.closurePaths {
		root, err := filepath.EvalSymlinks(p)
		if err != nil {
			return 0, 0, fmt.Errorf("--closure-path %s: %w", p, human.Cause(err))
		}
		if root != p {
			// A run shows the tree at p, where it may not put a
			// directory in place of a symlink.
			return 0, 0, fmt.Errorf("--closure-path %s: a symlink (or in one) to %s; name that", p, root)
		}
		st, err := os.Stat(root)
		if err != nil || !st.IsDir() {
			return 0, 0, fmt.Errorf("--closure-path %s: not a directory", p)
		}
		rules, err := walk.LoadRules(root, nil)
		if err != nil {
			return 0, 0, fmt.Errorf("--closure-path %s: %w", p, err)
		}
		prefix := closure.PathInImage(p)
		n, err := walk.Tree(walk.Config{Root: root, Display: p, Rules: rules, Warn: cj.ui.warn, Skip: cj.skip(root, p),
			Add: func(e image.Entry) error {
				if e.Path == "." {
					e.Path = prefix
				} else {
					e.Path = prefix + "/" + e.Path
				}
				cj.entries = append(cj.entries, e)
				return nil
			}})
		if err != nil {
			return 0, 0, fmt.Errorf("--closure-path %s: %w", p, err)
		}
		files, bytes = files+n.Files, bytes+n.Bytes
	}
	return files, bytes, nil
}

// manifest is the closure's manifest, and a line for each tree of
// --closure-path.
func (cj *closureJob) manifest(res *closure.Result) []byte {
	b := res.Manifest()
	for _, p := range cj.c.closurePaths {
		b = append(b, closure.ManifestLine("-", p, p, "--closure-path")...)
	}
	return b
}

// makeTemp makes the temporary directory, unless the pack is being
// stopped.
func (cj *closureJob) makeTemp() (string, error) {
	cj.mu.Lock()
	defer cj.mu.Unlock()
	if cj.closed {
		return "", errors.New("--closure: stopped")
	}
	tmp, err := os.MkdirTemp(filepath.Dir(cj.c.output), closureTmpPrefix)
	if err != nil {
		return "", fmt.Errorf("--closure: a temporary directory beside %s: %w", cj.c.output, err)
	}
	cj.tmp = tmp
	return tmp, nil
}

// close removes the temporary directory, and any made after.
func (cj *closureJob) close() {
	cj.mu.Lock()
	defer cj.mu.Unlock()
	cj.closed = true
	if cj.tmp != "" {
		os.RemoveAll(cj.tmp)
	}
}

// hostNeeds are the libraries that the target, at file in the working
// directory root, takes from the machine it runs on, as this host's loader
// finds them: as many as a trailer holds (trailer.Needs), for the run to
// check before it starts the target. None for a target that is not a
// dynamic ELF program, or whose libraries cannot all be found here.
func hostNeeds(root, file string) []trailer.Need {
	cache, _ := closure.HostCache()
	needs, missing := closure.Walk(filepath.Join(root, filepath.FromSlash(file)), root,
		closure.SplitLibraryPath(os.Getenv("LD_LIBRARY_PATH")), cache)
	if missing != "" {
		return nil
	}
	var out []trailer.Need
	for _, d := range needs {
		n := trailer.Need{Flags: uint32(d.Flags), Soname: d.Soname, Path: d.Path}
		if !n.Valid() {
			continue // a relative LD_LIBRARY_PATH's, or too long
		}
		if len(out) == trailer.MaxNeeds || trailer.NeedsBytes(append(out, n)) > trailer.MaxNeedsBytes {
			break
		}
		out = append(out, n)
	}
	return out
}
