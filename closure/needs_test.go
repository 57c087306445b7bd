package closure

import (
	"bytes"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/parkerpack/parker/internal/testenv"
)

// gcc runs gcc with args in dir.
func gcc(t *testing.T, dir string, args ...string) {
	t.Helper()
	if _, err := exec.LookPath("gcc"); err != nil {
		testenv.Unavailable(t, "gcc: %v", err)
	}
	c := exec.Command("gcc", args...)
	c.Dir = dir
	if b, err := c.CombinedOutput(); err != nil {
		t.Fatalf("gcc %s: %v\n%s", strings.Join(args, " "), err, b)
	}
}

// TestWalkBundled: the libraries a program takes from the host are those
// it loads, less those of its own directory; a name loaded already is not
// looked for again, where the library that needs it could not find it
// (the bundled-libraries layout: bin/app finds lib/ by $ORIGIN; lib/libA,
// which has no RUNPATH, needs lib/libB too).
func TestWalkBundled(t *testing.T) {
	root := t.TempDir()
	host := filepath.Join(root, "host")
	app := filepath.Join(root, "app")
	for _, d := range []string{host, app + "/bin", app + "/lib"} {
		os.MkdirAll(d, 0o755)
	}
	os.WriteFile(filepath.Join(root, "b.c"), []byte("int b(void) { return 2; }\n"), 0o644)
	os.WriteFile(filepath.Join(root, "a.c"), []byte("int b(void);\nint a(void) { return b() + 1; }\n"), 0o644)
	os.WriteFile(filepath.Join(root, "m.c"), []byte("int a(void); int b(void);\nint main(void) { return a() + b() == 5 ? 0 : 1; }\n"), 0o644)
	gcc(t, root, "-shared", "-fPIC", "-Wl,-soname,libB.so.1", "-o", "app/lib/libB.so.1", "b.c")
	gcc(t, root, "-shared", "-fPIC", "-Wl,-soname,libB.so.1", "-o", "host/libB.so.1", "b.c")
	gcc(t, root, "-shared", "-fPIC", "-Wl,-soname,libA.so.1", "-o", "app/lib/libA.so.1", "a.c", "app/lib/libB.so.1")
	gcc(t, root, "-o", "app/bin/app", "m.c", "app/lib/libA.so.1", "app/lib/libB.so.1", "-Wl,--enable-new-dtags,-rpath,$ORIGIN/../lib")
	cache, err := HostCache()
	if err != nil {
		t.Fatal(err)
	}
	needs, missing := Walk(filepath.Join(app, "bin", "app"), app, nil, cache)
	if missing != "" {
		t.Fatalf("missing %s", missing)
	}
	var got []string
	for _, d := range needs {
		got = append(got, d.Soname+"="+d.Path)
		if strings.HasPrefix(d.Path, root) {
			t.Errorf("needs %s: the program's own, or one it never loads", d.Path)
		}
	}
	if len(needs) != 1 || needs[0].Soname != "libc.so.6" {
		t.Errorf("needs %v; want libc.so.6 alone", got)
	}
	// Without the packed directory as the root, its libraries are the
	// host's to have; LD_LIBRARY_PATH comes before RUNPATH, as for the
	// loader.
	needs, _ = Walk(filepath.Join(app, "bin", "app"), filepath.Join(root, "elsewhere"), []string{host}, cache)
	got = nil
	for _, d := range needs {
		got = append(got, d.Soname+"="+strings.TrimPrefix(d.Path, root))
	}
	if g := strings.Join(got, " "); len(got) != 3 || !strings.HasPrefix(g, "libA.so.1=/app/lib/libA.so.1 libB.so.1=/host/libB.so.1 libc.so.6=/") {
		t.Errorf("with another root: %s", g)
	}
	// A library that is nowhere is named, with what needs it.
	os.Remove(filepath.Join(app, "lib", "libB.so.1"))
	if _, missing := Walk(filepath.Join(app, "bin", "app"), app, nil, cache); missing != "libB.so.1 (needed by app)" {
		t.Errorf("missing %q; want libB.so.1 (needed by app)", missing)
	}
}

// TestFindMusl: a musl program's closure is its loader, kept as it is in
// MuslDir, and its libraries, found as musl's loader finds them (here by
// LD_LIBRARY_PATH), named by soname in MuslDir/ARCH, which the store's
// musl configuration names; libc, the loader itself, is not looked for.
// A musl library of the packed directory (found by $ORIGIN) is walked by
// musl's rules, and a host library that a glibc program needs too is
// stored once, named for both loaders.
func TestFindMusl(t *testing.T) {
	if _, err := exec.LookPath("musl-gcc"); err != nil {
		testenv.Unavailable(t, "musl-gcc (musl-tools): %v", err)
	}
	root := t.TempDir()
	host, wd := filepath.Join(root, "host"), filepath.Join(root, "wd")
	os.MkdirAll(host, 0o755)
	os.MkdirAll(filepath.Join(wd, "lib"), 0o755)
	os.WriteFile(filepath.Join(root, "q.c"), []byte("int q(void) { return 7; }\n"), 0o644)
	os.WriteFile(filepath.Join(root, "r.c"), []byte("int q(void);\nint r(void) { return q() + 1; }\n"), 0o644)
	os.WriteFile(filepath.Join(root, "m.c"), []byte("int r(void);\nint main(void) { return r(); }\n"), 0o644)
	os.WriteFile(filepath.Join(root, "g.c"), []byte("int q(void);\nint main(void) { return q(); }\n"), 0o644)
	// libq: no libc at all, so a glibc and a musl program can share it.
	for _, args := range [][]string{
		{"musl-gcc", "-shared", "-fPIC", "-nostdlib", "-Wl,-soname,libq.so.1", "-o", "host/libq.so.1", "q.c"},
		{"musl-gcc", "-shared", "-fPIC", "-Wl,-soname,libr.so.1", "-o", "wd/lib/libr.so.1", "r.c", "host/libq.so.1"},
		{"musl-gcc", "-o", "wd/m", "m.c", "wd/lib/libr.so.1", "-Wl,-rpath,$ORIGIN/lib", "-Wl,-rpath-link," + host},
		{"gcc", "-o", "wd/g", "g.c", "host/libq.so.1"},
	} {
		c := exec.Command(args[0], args[1:]...)
		c.Dir = root
		if b, err := c.CombinedOutput(); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, b)
		}
	}
	cache, _ := HostCache()
	files := []File{{Rel: "m", Path: filepath.Join(wd, "m")}, {Rel: "lib/libr.so.1", Path: filepath.Join(wd, "lib", "libr.so.1")},
		{Rel: "g", Path: filepath.Join(wd, "g")}}
	res, err := Find(Options{Files: files, Target: "m", LibraryPath: []string{host}, Cache: cache})
	if err != nil {
		t.Fatal(err)
	}
	var loader, libq *StoreFile
	for _, s := range res.Store {
		switch {
		case strings.HasPrefix(s.Name, MuslDir+"/"):
			loader = s
		case strings.HasSuffix(s.Name, "-libq.so.1"):
			libq = s
		}
	}
	if loader == nil || loader.Data != nil || libq == nil || len(libq.MuslNames) != 1 || !strings.HasSuffix(libq.MuslNames[0], "/libq.so.1") ||
		len(libq.Sonames) != 1 || libq.Sonames[0] != "libq.so.1" {
		t.Fatalf("the store: %+v; want musl's loader, unchanged, and libq named for both loaders", res.Store)
	}
	arch := path.Dir(libq.MuslNames[0])
	if len(res.Links) != 1 || res.Links[0].Name != MuslDir+"/"+arch+"/libq.so.1" ||
		path.Join(path.Dir(res.Links[0].Name), res.Links[0].Target) != libq.Name {
		t.Errorf("links %+v; want libq.so.1 in %s/%s, to %s", res.Links, MuslDir, arch, libq.Name)
	}
	if len(res.Config) != 1 || res.Config[0].Name != StoreName+"/etc/ld-musl-"+arch+".path" ||
		string(res.Config[0].Data) != "/"+MuslDir+"/"+arch+"\n" {
		t.Errorf("configuration %+v", res.Config)
	}
	e, err := parseELF(bytes.NewReader(res.Patched["m"]))
	if err != nil || e.Interp != "/"+loader.Name {
		t.Errorf("the program's loader is %q (%v); want /%s", e.Interp, err, loader.Name)
	}
	// musl's loader reads its configuration from two directories above
	// its own name: the store's etc.
	if dir := path.Dir(path.Dir(e.Interp)); dir+"/etc" != "/"+path.Dir(res.Config[0].Name) {
		t.Errorf("the loader %s reads %s/etc, not the store's", e.Interp, dir)
	}
}

// TestWalkRPathChain: a library without DT_RUNPATH is looked for in the
// DT_RPATH of every object on the way to it, as glibc's loader does: libz
// (no paths of its own) needs libw, which only the RPATH of libx, that
// needed libz, names.
func TestWalkRPathChain(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"x", "y"} {
		os.MkdirAll(filepath.Join(root, d), 0o755)
	}
	os.WriteFile(filepath.Join(root, "w.c"), []byte("int w(void) { return 1; }\n"), 0o644)
	os.WriteFile(filepath.Join(root, "z.c"), []byte("int w(void);\nint z(void) { return w(); }\n"), 0o644)
	os.WriteFile(filepath.Join(root, "x.c"), []byte("int z(void);\nint x(void) { return z(); }\n"), 0o644)
	os.WriteFile(filepath.Join(root, "p.c"), []byte("int x(void);\nint main(void) { return x(); }\n"), 0o644)
	gcc(t, root, "-shared", "-fPIC", "-Wl,-soname,libw.so.1", "-o", "y/libw.so.1", "w.c")
	gcc(t, root, "-shared", "-fPIC", "-Wl,-soname,libz.so.1", "-o", "x/libz.so.1", "z.c", "y/libw.so.1")
	gcc(t, root, "-shared", "-fPIC", "-Wl,-soname,libx.so.1", "-o", "x/libx.so.1", "x.c", "x/libz.so.1",
		"-Wl,--disable-new-dtags,-rpath,"+filepath.Join(root, "y"))
	gcc(t, root, "-o", "p", "p.c", "x/libx.so.1", "-Wl,--allow-shlib-undefined")
	cache, _ := HostCache()
	needs, missing := Walk(filepath.Join(root, "p"), filepath.Join(root, "elsewhere"), []string{filepath.Join(root, "x")}, cache)
	if missing != "" {
		t.Fatalf("missing %s; want libw found by libx's RPATH", missing)
	}
	var got []string
	for _, d := range needs {
		got = append(got, d.Soname)
	}
	if !slices.Contains(got, "libw.so.1") || !slices.Contains(got, "libz.so.1") {
		t.Errorf("needs %v", got)
	}
	// The oracle agrees.
	c := exec.Command("ldd", filepath.Join(root, "p"))
	c.Env = append(os.Environ(), "LD_LIBRARY_PATH="+filepath.Join(root, "x"))
	if b, err := c.Output(); err != nil || !strings.Contains(string(b), filepath.Join(root, "y", "libw.so.1")) {
		t.Errorf("ldd: %v\n%s", err, b)
	}
}

// TestFindStoredOrigin: a library reached by an absolute RUNPATH goes to
// the store, where its $ORIGIN is the store's directory when it runs: what
// it finds by $ORIGIN here goes to the store too, though it lies in the
// packed directory (pyenv's layout: bin/app names its prefix's lib by
// path; lib/libA finds lib/libB by $ORIGIN).
func TestFindStoredOrigin(t *testing.T) {
	root := t.TempDir()
	pre := filepath.Join(root, "pre")
	os.MkdirAll(filepath.Join(pre, "bin"), 0o755)
	os.MkdirAll(filepath.Join(pre, "lib"), 0o755)
	os.WriteFile(filepath.Join(root, "b.c"), []byte("int b(void) { return 2; }\n"), 0o644)
	os.WriteFile(filepath.Join(root, "a.c"), []byte("int b(void);\nint a(void) { return b(); }\n"), 0o644)
	os.WriteFile(filepath.Join(root, "m.c"), []byte("int a(void);\nint main(void) { return a(); }\n"), 0o644)
	gcc(t, root, "-shared", "-fPIC", "-Wl,-soname,libB.so.1", "-o", "pre/lib/libB.so.1", "b.c")
	gcc(t, root, "-shared", "-fPIC", "-Wl,-soname,libA.so.1", "-o", "pre/lib/libA.so.1", "a.c", "pre/lib/libB.so.1",
		"-Wl,--disable-new-dtags,-rpath,$ORIGIN")
	gcc(t, root, "-o", "pre/bin/app", "m.c", "pre/lib/libA.so.1", "-Wl,--enable-new-dtags,-rpath,"+filepath.Join(pre, "lib"),
		"-Wl,-rpath-link,"+filepath.Join(pre, "lib"))
	files := []File{{Rel: "bin/app", Path: filepath.Join(pre, "bin", "app")}, {Rel: "lib/libA.so.1", Path: filepath.Join(pre, "lib", "libA.so.1")},
		{Rel: "lib/libB.so.1", Path: filepath.Join(pre, "lib", "libB.so.1")}}
	res, err := Find(Options{Files: files, Target: "bin/app", Cache: hostCache(t)})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range res.Store {
		names = append(names, path.Base(s.Name))
	}
	got := strings.Join(names, " ")
	if !strings.Contains(got, "-libA.so.1") || !strings.Contains(got, "-libB.so.1") {
		t.Errorf("the store: %s; want libA and libB, which libA finds by $ORIGIN", got)
	}
}

// TestFindLibsAlone: --closure-lib by path for a target that is no ELF
// program (a script), and a musl library with no musl program to load
// it, packed as it is with a warning.
func TestFindLibsAlone(t *testing.T) {
	root := t.TempDir()
	os.WriteFile(filepath.Join(root, "run.sh"), []byte("#!/bin/sh\nexit 0\n"), 0o755)
	files := []File{{Rel: "run.sh", Path: filepath.Join(root, "run.sh")}}
	if _, err := exec.LookPath("musl-gcc"); err == nil {
		os.WriteFile(filepath.Join(root, "m.c"), []byte("int m(void) { return 1; }\n"), 0o644)
		c := exec.Command("musl-gcc", "-shared", "-fPIC", "-o", "mod.musl.node", "m.c")
		c.Dir = root
		if b, err := c.CombinedOutput(); err != nil {
			t.Fatalf("musl-gcc: %v\n%s", err, b)
		}
		files = append(files, File{Rel: "mod.musl.node", Path: filepath.Join(root, "mod.musl.node")})
	} else {
		testenv.Unavailable(t, "musl-gcc (musl-tools): %v", err)
	}
	libz := ""
	for _, c := range hostCache(t) {
		if c.Soname == "libz.so.1" && c.HWCap == 0 {
			libz = c.Path
		}
	}
	if libz == "" {
		t.Fatal("no libz.so.1 in the host's loader cache")
	}
	var warnings []string
	res, err := Find(Options{Files: files, Target: "run.sh", Libs: []string{libz}, Cache: hostCache(t),
		Warn: func(s string) { warnings = append(warnings, s) }})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, s := range res.Store {
		found = found || strings.HasSuffix(s.Name, "-"+filepath.Base(libz))
	}
	if !found {
		t.Errorf("the store has no %s", libz)
	}
	if w := strings.Join(warnings, "\n"); !strings.Contains(w, "mod.musl.node: a musl library, and no musl program") {
		t.Errorf("warnings: %q", w)
	}
}
