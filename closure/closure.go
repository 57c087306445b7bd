package closure

import (
	"bytes"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/parkerpack/parker/image/trailer"
	"github.com/parkerpack/parker/internal/ldcache"
)

// Where a run shows the store (the image's StoreName directory), and what
// is in it: the loaders, each named by its digest and short enough for
// any PT_INTERP it replaces; the loader cache, and the preload list the
// loaders read instead of /etc's (which is never there); the libraries,
// content-addressed as Nix names store paths.
const (
	StoreName = trailer.StoreName
	StoreDir  = "/" + StoreName
	// MuslDir holds musl's loaders (a musl loader reads its search path
	// from the directory two above its own name: StoreName/etc), and for
	// each architecture, MuslDir/ARCH, the store's musl libraries by
	// soname (symlinks into the store).
	MuslDir   = StoreName + "/musl"
	CachePath = StoreDir + "/cache" // in place of /etc/ld.so.cache
	// ManifestPath lists the store (Result.Manifest), for parker inspect --closure.
	ManifestPath = StoreDir + "/manifest"
	// PathsList names the trees of --closure-path, a line each
	// (PathsFile); each is in the image at PathInImage.
	PathsList   = StoreDir + "/closure-paths"
	PreloadPath = StoreDir + "/preload" // in place of /etc/ld.so.preload: never there
	loaderHex   = 8                     // "/.parker/" (or "/.parker/musl/") and 8 hex digits: 17 (22) bytes, less than any glibc (musl) loader's path
)

// The strings a glibc loader reads its configuration from, which a copy
// in the store has replaced by the store's (the same length or shorter).
var loaderStrings = []struct{ old, new string }{
	{"/etc/ld.so.cache\x00", CachePath + "\x00"},
	{"/etc/ld.so.preload\x00", PreloadPath + "\x00"},
}

// File is a regular file of the packed directory.
type File struct {
	Rel  string // slash-separated, relative to the packed directory
	Path string // where it is read from
}

// Options say what Find scans and how it resolves.
type Options struct {
	Files  []File // the packed directory's regular files
	Target string // the target's Rel, scanned first
	// Libs are more libraries (--closure-lib): sonames, found as the
	// loader would find a DT_NEEDED of the target's, or absolute paths.
	Libs []string
	// LibraryPath is LD_LIBRARY_PATH at pack time.
	LibraryPath []string
	// Cache is the host's loader cache (/etc/ld.so.cache).
	Cache []ldcache.Entry
	// AllowMissing makes a library that cannot be found a warning.
	AllowMissing bool
	Warn         func(string)
}

// StoreFile is a file of the store: a library or a loader.
type StoreFile struct {
	Name     string // its path in the image, under StoreName
	Source   string // the host file it is a copy of
	Data     []byte // its bytes, when they differ from Source's (patched); else nil
	Size     int64
	Digest   [32]byte // SHA-256 of what is stored
	Sonames  []string // the names the cache gives it (none for a loader)
	Flags    int32
	NeededBy string // the first file that needed it, for inspect
	// MuslNames are the names musl's loader finds it by, "ARCH/SONAME":
	// MuslDir/ARCH/SONAME links to it.
	MuslNames []string
	e         *ELF
	loader    bool
}

// Result is a closure, ready for the image.
type Result struct {
	Store []*StoreFile
	// Cache is the loader cache, for StoreName/cache.
	Cache []byte
	// Patched are the packed directory's files whose bytes change: their
	// loader path pointed at the store, their absolute library paths
	// cleared. By Rel.
	Patched map[string][]byte
	// Missing are the libraries not found ("NAME, needed by FILE"), with
	// AllowMissing.
	Missing []string
	// Links are the symlinks of the store (musl's library directory);
	// Config, the loaders' configuration files (musl's search path).
	Links  []Link
	Config []Config
}

// Link is a symlink of the store: its path in the image, and its target.
type Link struct{ Name, Target string }

// Config is a file of the store: its path in the image, and its bytes.
type Config struct {
	Name string
	Data []byte
}

// PathInImage is where the image holds the tree of --closure-path dir.
func PathInImage(dir string) string {
	return path.Join(StoreName, "paths", strings.TrimPrefix(dir, "/"))
}

// PathsFile is the PathsList file naming dirs.
func PathsFile(dirs []string) []byte {
	var b bytes.Buffer
	for _, d := range dirs {
		b.WriteString(d)
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// Manifest lists the store, as `nix-store -qR` lists a closure: a line
// for each file, sorted by path, with four tab-separated fields, each
// quoted as Go quotes a string (file names may hold tabs): its SHA-256
// ("sha256:<hex>"), its path where a run shows it, the file of the pack
// host it is a copy of, and why it is there ("loader of FILE", "needed by
// FILE"). ManifestLine writes one, ParseManifest reads them.
func (r *Result) Manifest() []byte {
	var b []byte
	for _, s := range r.Store {
		why := "needed by " + s.NeededBy
		if s.loader {
			why = "loader of " + s.NeededBy
		}
		b = append(b, ManifestLine(fmt.Sprintf("sha256:%x", s.Digest), "/"+s.Name, s.Source, why)...)
	}
	return b
}

// ManifestLine is a line of a manifest.
func ManifestLine(digest, path, source, why string) string {
	return strconv.Quote(digest) + "\t" + strconv.Quote(path) + "\t" + strconv.Quote(source) + "\t" + strconv.Quote(why) + "\n"
}

// ParseManifest reads a manifest's lines, each four fields.
func ParseManifest(b []byte) ([][4]string, error) {
	var out [][4]string
	for i, l := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		if l == "" && len(b) == 0 {
			break
		}
		fs := strings.Split(l, "\t")
		var row [4]string
		ok := len(fs) == 4
		for j := 0; ok && j < 4; j++ {
			var err error
			row[j], err = strconv.Unquote(fs[j])
			ok = err == nil
		}
		if !ok {
			return nil, fmt.Errorf("line %d is damaged", i+1)
		}
		out = append(out, row)
	}
	return out, nil
}

// Bytes is what the closure adds to the packed directory.
func (r *Result) Bytes() int64 {
	var n int64
	for _, s := range r.Store {
		n += s.Size
	}
	return n + int64(len(r.Cache))
}

// object is an ELF file whose libraries Find resolves.
type object struct {
	e       *ELF
	path    string // where it is read, for $ORIGIN
	display string // how messages name it
	// musl is the musl loader the object is loaded by, nil for glibc's;
	// parent, what needed it (musl searches the RUNPATHs up the chain).
	musl   *muslLoader
	parent *object
	// stored: the object is a library of the store, where its $ORIGIN
	// is the store's directory when it runs, not its directory here.
	stored bool
	// loaded are the names the process that loads obj has loaded (one
	// map for each file of the packed directory the walk starts from, by
	// loadedKey): a name loaded once is not looked for again.
	loaded map[string]bool
}

type finder struct {
	o          Options
	target     *ELF
	targetPath string
	targetMusl *muslLoader
	libs       map[string]*StoreFile // by the real path of the host file
	names      map[string]*StoreFile // by soname, flags and musl's architecture
	digests    map[[32]byte]*StoreFile
	walked     map[string]bool        // real path and musl's architecture ("" for glibc's)
	loaders    map[string]string      // host loader path -> store path
	musls      map[string]*muslLoader // host loader path -> its store copy, for musl's
	store      []*StoreFile
	queue      []object
	missing    []string
	// interps are the loaders' names: libc names its loader as a
	// library, which the loader, loaded first, already is.
	interps map[string]bool
	// packed are the packed directory's ELF files, by real path.
	packed map[string]bool
	// flags caches abiFlagsFor.
	flags map[[2]int]int32
}

// Find scans the packed directory's ELF files, the target first, and
// resolves their loaders and libraries, transitively, as the pack host's
// loader would. A library it cannot find fails it, naming the file that
// needs it, unless AllowMissing.
func Find(o Options) (*Result, error) {
	f := &finder{o: o, libs: map[string]*StoreFile{}, names: map[string]*StoreFile{}, digests: map[[32]byte]*StoreFile{},
		walked: map[string]bool{}, loaders: map[string]string{}, musls: map[string]*muslLoader{}, interps: map[string]bool{},
		packed: map[string]bool{}}
	res := &Result{Patched: map[string][]byte{}}
	files := append([]File(nil), o.Files...)
	sort.SliceStable(files, func(i, j int) bool { return files[i].Rel == o.Target && files[j].Rel != o.Target })
	type workELF struct {
		File
		e      *ELF
		interp string // the store's loader path in place of its own, or ""
	}
	var work []workELF
	for _, file := range files {
		e, err := ReadELF(file.Path)
		if errors.Is(err, ErrNotELF) {
			continue
		}
		// The target must be one that parker can carry; another file
		// it cannot (damaged, or for a loader it does not know, neither
		// glibc's nor musl's) is packed as it is, with a warning.
		skip := func(err error) error {
			if file.Rel == o.Target {
				return fmt.Errorf("%s: %w", file.Rel, err)
			}
			if o.Warn != nil {
				o.Warn(fmt.Sprintf("closure: %s: %v; packed as it is, without its libraries", file.Rel, err))
			}
			return nil
		}
		if err != nil {
			if err := skip(err); err != nil {
				return nil, err
			}
			continue
		}
		interp := ""
		var musl *muslLoader
		if e.Interp != "" && (e.Type == elf.ET_EXEC || e.Type == elf.ET_DYN) {
			interp, musl, err = f.loader(e.Interp, file.Rel)
		}
		if err == nil && len(e.Needed) > 0 && musl == nil {
			_, err = f.abiFlagsFor(e) // an ABI parker does not know the loader cache of
		}
		if err != nil {
			if err := skip(err); err != nil {
				return nil, err
			}
			continue
		}
		if file.Rel == o.Target {
			f.target, f.targetPath, f.targetMusl = e, file.Path, musl
		}
		if musl != nil {
			musl.class, musl.machine = e.Class, e.Machine
		}
		f.packed[filepath.Clean(file.Path)] = true
		work = append(work, workELF{file, e, interp})
		f.queue = append(f.queue, object{e: e, path: file.Path, display: file.Rel, musl: musl, loaded: map[string]bool{}})
		if e.Interp != "" {
			f.interps[path.Base(e.Interp)] = true
		}
	}
	// The packed directory's libraries for musl (they name its libc) are
	// found by musl's rules, those of the musl loader of their kind; with
	// no musl program of their kind in the pack, nothing loads them here.
	packedObjs := f.queue[:0:0]
	for _, obj := range f.queue {
		if obj.musl == nil && obj.e.Interp == "" && slices.ContainsFunc(obj.e.Needed, muslLibc) {
			if obj.musl = f.muslFor(obj.e); obj.musl == nil {
				if o.Warn != nil {
					o.Warn(fmt.Sprintf("closure: %s: a musl library, and no musl program of its kind is packed; packed as it is, without its libraries", obj.display))
				}
				continue
			}
		}
		packedObjs = append(packedObjs, obj)
	}
	// The target's closure first, breadth first, as its loader loads it;
	// then --closure-lib; then each other file of the packed directory's,
	// as a loader would load it later (dlopen).
	f.queue = nil
	if len(packedObjs) > 0 && packedObjs[0].e == f.target {
		if err := f.drain(packedObjs[0]); err != nil {
			return nil, err
		}
		packedObjs = packedObjs[1:]
	}
	for _, name := range o.Libs {
		if err := f.addLib(name); err != nil {
			return nil, err
		}
	}
	if err := f.drain(); err != nil {
		return nil, err
	}
	for _, obj := range packedObjs {
		if err := f.drain(obj); err != nil {
			return nil, err
		}
	}
	// The packed directory's programs: their loader in the store, their
	// absolute library paths cleared.
	for _, w := range work {
		interp := w.interp
		b, err := os.ReadFile(w.Path)
		if err != nil {
			return nil, err
		}
		changed, err := w.e.KeepOrigin(b)
		if err == nil && interp != "" {
			err = w.e.SetInterp(b, interp)
		}
		if err != nil {
			if w.Rel == o.Target {
				return nil, fmt.Errorf("%s: %w", w.Rel, err)
			}
			if o.Warn != nil {
				o.Warn(fmt.Sprintf("closure: %s: %v; packed as it is", w.Rel, err))
			}
			continue
		}
		if interp != "" || changed {
			res.Patched[w.Rel] = b
		}
	}
	var entries []ldcache.Entry
	for _, s := range f.store {
		for _, n := range s.Sonames {
			entries = append(entries, ldcache.Entry{Flags: s.Flags, Soname: n, Path: "/" + s.Name})
		}
		for _, n := range s.MuslNames {
			res.Links = append(res.Links, Link{path.Join(MuslDir, n), path.Join("../..", strings.TrimPrefix(s.Name, StoreName+"/"))})
		}
	}
	for _, m := range f.musls {
		if !slices.ContainsFunc(res.Config, func(c Config) bool { return c.Name == m.config() }) {
			res.Config = append(res.Config, Config{m.config(), []byte("/" + m.libDir() + "\n")})
		}
	}
	sort.Slice(res.Links, func(i, j int) bool { return res.Links[i].Name < res.Links[j].Name })
	sort.Slice(res.Config, func(i, j int) bool { return res.Config[i].Name < res.Config[j].Name })
	cache, err := ldcache.Write(entries)
	if err != nil {
		return nil, fmt.Errorf("closure: %w", err)
	}
	sort.Slice(f.store, func(i, j int) bool { return f.store[i].Name < f.store[j].Name })
	res.Store, res.Cache, res.Missing = f.store, cache, f.missing
	return res, nil
}

// inTree follows the symlink at p (and what it points to) while each is
// relative, and returns where that ends, cleaned: a packed file there is
// one the packed tree reaches by itself, as a run does. An absolute
// symlink, which points into the pack host, ends it where it is ("").
func inTree(p string) string {
	p = filepath.Clean(p)
	for range 40 { // the kernel's limit on nested symlinks
		l, err := os.Readlink(p)
		if err != nil {
			return p // not a symlink: there
		}
		if filepath.IsAbs(l) {
			return ""
		}
		p = filepath.Join(filepath.Dir(p), l)
	}
	return ""
}

// drain resolves objs and what they need, breadth first.
func (f *finder) drain(objs ...object) error {
	f.queue = append(f.queue, objs...)
	for len(f.queue) > 0 {
		obj := f.queue[0]
		f.queue = f.queue[1:]
		if err := f.resolve(obj); err != nil {
			return err
		}
	}
	return nil
}

// loadedKey names name for obj's loader in obj.loaded.
func loadedKey(obj object, name string) string {
	if obj.musl != nil {
		return obj.musl.arch + "\x00" + name
	}
	return "\x00" + name
}

// resolve finds the libraries obj needs.
func (f *finder) resolve(obj object) error {
	for _, name := range obj.e.Needed {
		if f.interps[name] || obj.musl != nil && muslReserved(name) || obj.loaded[loadedKey(obj, name)] {
			continue
		}
		if strings.Contains(name, "/") {
			// Opened by the loader at that path, as it is: a copy in
			// the store would never be used.
			if f.o.Warn != nil {
				f.o.Warn(fmt.Sprintf("closure: %s needs %s by its path, which --closure cannot carry; it must be there where the packed file runs", obj.display, name))
			}
			continue
		}
		var p string
		var flags int32
		var origin bool
		var err error
		if obj.musl != nil {
			p, origin = f.searchMusl(obj, name)
			flags = muslFlags
		} else if p, flags, origin, err = f.search(obj, name); err != nil {
			return err
		}
		if p != "" {
			obj.loaded[loadedKey(obj, name)] = true
		}
		if p != "" && origin && f.packed[inTree(p)] {
			continue // packed, and found by $ORIGIN where it runs too
		}
		if p == "" {
			why := fmt.Sprintf("%s, needed by %s", name, obj.display)
			if !f.o.AllowMissing {
				return fmt.Errorf("closure: cannot find %s (not in its RUNPATH or RPATH, LD_LIBRARY_PATH, the loader's cache or the system's directories); add it with --closure-lib, or pack with --closure-allow-missing", why)
			}
			f.missing = append(f.missing, why)
			if f.o.Warn != nil {
				f.o.Warn("closure: cannot find " + why)
			}
			continue
		}
		if err := f.add(p, name, flags, obj); err != nil {
			return err
		}
	}
	return nil
}

// addLib adds a library named on the command line.
func (f *finder) addLib(name string) error {
	if filepath.IsAbs(name) {
		e, err := ReadELF(name)
		if err != nil {
			return fmt.Errorf("--closure-lib %s: %w", name, err)
		}
		soname := e.Soname
		if soname == "" {
			soname = filepath.Base(name)
		}
		obj := object{e: f.target, path: f.targetPath, display: "--closure-lib", musl: f.targetMusl}
		flags := int32(muslFlags)
		if obj.musl == nil {
			if flags, err = f.abiFlagsFor(e); err != nil {
				return err
			}
		}
		return f.add(name, soname, flags, obj)
	}
	obj := object{e: f.target, path: f.targetPath, display: "--closure-lib", musl: f.targetMusl}
	if obj.e == nil {
		return fmt.Errorf("--closure-lib %s: the target is not an ELF program to find it for; name the library's path", name)
	}
	var p string
	var err error
	flags := int32(muslFlags)
	if obj.musl != nil {
		p, _ = f.searchMusl(obj, name)
	} else if p, flags, _, err = f.search(obj, name); err != nil {
		return err
	}
	if p == "" {
		return fmt.Errorf("--closure-lib %s: not found as the target's loader would look for it", name)
	}
	return f.add(p, name, flags, obj)
}

// add puts the library at p in the store, under soname, once: a library
// that from needs. A file is stored once, whatever names it has and
// whichever loaders (glibc's, musl's) find it, and its own libraries are
// looked for by the rules of each.
func (f *finder) add(p, soname string, flags int32, from object) error {
	neededBy := from.display
	real, err := filepath.EvalSymlinks(p)
	if err != nil {
		return err
	}
	arch := ""
	if from.musl != nil {
		arch = from.musl.arch
	}
	s := f.libs[real]
	if s == nil {
		e, err := ReadELF(real)
		if err != nil {
			return fmt.Errorf("%s: %w", real, err)
		}
		b, err := os.ReadFile(real)
		if err != nil {
			return err
		}
		s = &StoreFile{Source: real, Flags: flags, NeededBy: neededBy, e: e}
		if changed, err := e.KeepOrigin(b); err != nil {
			return fmt.Errorf("%s: %w", real, err)
		} else if changed {
			s.Data = b
		}
		s.Digest = sha256.Sum256(b)
		if other := f.digests[s.Digest]; other != nil {
			s = other // the same library by another path
		} else {
			s.Size = int64(len(b))
			s.Name = path.Join(StoreName, "store", hex.EncodeToString(s.Digest[:16])+"-"+filepath.Base(p))
			f.digests[s.Digest] = s
			f.store = append(f.store, s)
		}
		f.libs[real] = s
	}
	key := fmt.Sprintf("%s\x00%d\x00%s", soname, flags, arch)
	if other := f.names[key]; other != nil && other != s {
		return fmt.Errorf("closure: two libraries named %s: %s (needed by %s) and %s (needed by %s)", soname, other.Source, other.NeededBy, real, neededBy)
	}
	f.names[key] = s
	switch {
	case from.musl == nil && !contains(s.Sonames, soname):
		s.Sonames, s.Flags = append(s.Sonames, soname), flags
	case from.musl != nil && !strings.Contains(soname, "/") && !contains(s.MuslNames, arch+"/"+soname):
		s.MuslNames = append(s.MuslNames, arch+"/"+soname) // a path musl opens as it is
	}
	if from.loaded == nil {
		from.loaded = map[string]bool{} // --closure-lib's
	}
	if s.e.Soname != "" {
		from.loaded[loadedKey(from, s.e.Soname)] = true
	}
	if walk := real + "\x00" + arch; !f.walked[walk] {
		f.walked[walk] = true
		obj := object{e: s.e, path: p, display: real, musl: from.musl, stored: true, loaded: from.loaded}
		if from.e != nil { // not --closure-lib's for a target that is no ELF program
			obj.parent = &from
		}
		f.queue = append(f.queue, obj)
	}
	return nil
}

// loader puts the loader at interp in the store, its configuration
// pointed at the store's, once, and returns the path that replaces it,
// and for musl's, what the programs it loads search.
func (f *finder) loader(interp, neededBy string) (string, *muslLoader, error) {
	if p, ok := f.loaders[interp]; ok {
		return p, f.musls[interp], nil
	}
	real, err := filepath.EvalSymlinks(interp)
	if err != nil {
		return "", nil, fmt.Errorf("closure: the loader %s of %s: %w", interp, neededBy, err)
	}
	b, err := os.ReadFile(real)
	if err != nil {
		return "", nil, err
	}
	var musl *muslLoader
	dir := StoreName
	if arch, ok := muslArch(interp, b); ok {
		// Kept as it is: it finds its configuration by its own name.
		musl = &muslLoader{arch: arch, sysPath: muslSysPath(interp, arch)}
		dir = MuslDir
	} else {
		for _, s := range loaderStrings {
			if n := bytes.Count(b, []byte(s.old)); n != 1 {
				return "", nil, fmt.Errorf("closure: the loader %s of %s is not one parker knows (%q found %d times, not once): --closure takes glibc's and musl's",
					interp, neededBy, strings.TrimSuffix(s.old, "\x00"), n)
			}
			i := bytes.Index(b, []byte(s.old))
			copy(b[i:i+len(s.old)], make([]byte, len(s.old)))
			copy(b[i:], s.new)
		}
	}
	sum := sha256.Sum256(b)
	name := path.Join(dir, hex.EncodeToString(sum[:])[:loaderHex])
	f.loaders[interp] = "/" + name
	if musl != nil {
		f.musls[interp] = musl
	}
	for _, s := range f.store {
		switch {
		case s.Name == name && s.Digest == sum: // the same loader by another path
			return "/" + name, musl, nil
		case s.Name == name:
			return "", nil, fmt.Errorf("closure: two loaders named %s (%s and %s)", name, s.Source, real)
		}
	}
	data := b
	if musl != nil {
		data = nil // unchanged: read from the host's
	}
	f.store = append(f.store, &StoreFile{Name: name, Source: real, Data: data, Size: int64(len(b)), Digest: sum, NeededBy: neededBy, loader: true})
	return "/" + name, musl, nil
}

func contains(s []string, x string) bool {
	for _, v := range s {
		if v == x {
			return true
		}
	}
	return false
}
