package closure

import (
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/parkerpack/parker/internal/ldcache"
	"github.com/parkerpack/parker/internal/testenv"
)

// sqliteProgram builds a C program linked against the host's libsqlite3,
// which prints what it computes and how it sees itself.
func sqliteProgram(t *testing.T, dir string) string {
	t.Helper()
	if _, err := exec.LookPath("gcc"); err != nil {
		testenv.Unavailable(t, "gcc: %v", err)
	}
	src := filepath.Join(dir, "sq.c")
	prog := `#include <stdio.h>
#include <unistd.h>
#include <sqlite3.h>
int main(int argc, char **argv) {
	sqlite3 *db; sqlite3_stmt *st;
	if (sqlite3_open(":memory:", &db) || sqlite3_prepare_v2(db, "select 6*7", -1, &st, 0) || sqlite3_step(st) != SQLITE_ROW)
		return 1;
	char exe[4096] = ""; readlink("/proc/self/exe", exe, sizeof exe - 1);
	printf("sqlite=%d exe=%s argv0=%s\n", sqlite3_column_int(st, 0), exe, argv[0]);
	return 0;
}
`
	if err := os.WriteFile(src, []byte(prog), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "sq")
	if b, err := exec.Command("gcc", "-O2", "-o", out, src, "-lsqlite3").CombinedOutput(); err != nil {
		testenv.Unavailable(t, "gcc -lsqlite3 (libsqlite3-dev): %v\n%s", err, b)
	}
	return out
}

// lddLibs is what ldd says prog loads: soname to path, the loader
// and the vDSO left out.
func lddLibs(t *testing.T, prog string) map[string]string {
	t.Helper()
	b, err := exec.Command("ldd", prog).Output()
	if err != nil {
		t.Fatalf("ldd %s: %v", prog, err)
	}
	m := map[string]string{}
	for _, l := range strings.Split(string(b), "\n") {
		name, p, ok := strings.Cut(strings.TrimSpace(l), " => ")
		if !ok {
			continue
		}
		m[name], _, _ = strings.Cut(p, " (")
	}
	return m
}

func hostCache(t *testing.T) []ldcache.Entry {
	t.Helper()
	b, err := os.ReadFile("/etc/ld.so.cache")
	if err != nil {
		testenv.Unavailable(t, "no loader cache: %v", err)
	}
	c, err := ldcache.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestFindSQLite: the closure of a program linked against libsqlite3 is
// what ldd (the loader itself) says it loads, and, put in a root file
// system that has nothing else (no libc, no loader), the patched program
// runs there, as itself; the program as it was does not.
func TestFindSQLite(t *testing.T) {
	dir := t.TempDir()
	prog := sqliteProgram(t, dir)
	res, err := Find(Options{Files: []File{{Rel: "sq", Path: prog}}, Target: "sq", Cache: hostCache(t)})
	if err != nil {
		t.Fatal(err)
	}
	want := lddLibs(t, prog)
	got := map[string]string{}
	loaders := 0
	for _, s := range res.Store {
		if len(s.Sonames) == 0 {
			loaders++
			continue
		}
		for _, n := range s.Sonames {
			got[n] = s.Source
		}
	}
	var wantNames, gotNames []string
	for n, p := range want {
		wantNames = append(wantNames, n)
		if real, _ := filepath.EvalSymlinks(p); got[n] != real {
			t.Errorf("%s: closure has %q, ldd %q (%q)", n, got[n], p, real)
		}
	}
	for n := range got {
		gotNames = append(gotNames, n)
	}
	sort.Strings(wantNames)
	sort.Strings(gotNames)
	if strings.Join(wantNames, " ") != strings.Join(gotNames, " ") || loaders != 1 {
		t.Errorf("closure libraries %v and %d loaders; ldd says %v and one loader", gotNames, loaders, wantNames)
	}
	if _, ok := res.Patched["sq"]; !ok {
		t.Fatalf("the program was not patched")
	}

	testenv.NeedRoot(t, "a root file system of its own (unshare, chroot)")
	root := filepath.Join(dir, "root")
	for _, d := range []string{"app", "proc", StoreName} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range res.Store {
		b := s.Data
		if b == nil {
			if b, err = os.ReadFile(s.Source); err != nil {
				t.Fatal(err)
			}
		}
		p := filepath.Join(root, s.Name)
		if err := os.MkdirAll(path.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, StoreName, "cache"), res.Cache, 0o644); err != nil {
		t.Fatal(err)
	}
	run := func(b []byte) (string, error) {
		if err := os.WriteFile(filepath.Join(root, "app", "sq"), b, 0o755); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command("unshare", "-m", "sh", "-c",
			`mount -t proc proc "$1/proc" && exec chroot "$1" /app/sq`, "sh", root).CombinedOutput()
		return string(out), err
	}
	if out, err := run(res.Patched["sq"]); err != nil || out != "sqlite=42 exe=/app/sq argv0=/app/sq\n" {
		t.Errorf("the closure in an empty root: %v, %q", err, out)
	}
	orig, err := os.ReadFile(prog)
	if err != nil {
		t.Fatal(err)
	}
	if out, err := run(orig); err == nil {
		t.Errorf("the program without its closure ran in an empty root: %q", out)
	}
}

// TestFindOrigin: libraries of the packed directory that its programs find
// by $ORIGIN stay where they are (two programs may each have their own
// libx.so.1), found there where the packed file runs; the pack host's
// absolute directories are dropped from RUNPATH and the $ORIGIN ones kept,
// whichever end of the list they are at.
func TestFindOrigin(t *testing.T) {
	if _, err := exec.LookPath("gcc"); err != nil {
		testenv.Unavailable(t, "gcc: %v", err)
	}
	dir := t.TempDir()
	gcc := func(args ...string) {
		t.Helper()
		if b, err := exec.Command("gcc", args...).CombinedOutput(); err != nil {
			t.Fatalf("gcc %v: %v\n%s", args, err, b)
		}
	}
	write := func(p, s string) string {
		t.Helper()
		p = filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	var files []File
	for i, rpath := range map[string]string{"a": "$ORIGIN:/opt/nowhere", "b": "/opt/nowhere:$ORIGIN"} {
		lib := write(i+"/x.c", "int x(void) { return "+map[string]string{"a": "1", "b": "2"}[i]+"; }\n")
		main := write(i+"/main.c", "int x(void); int main(void) { return x(); }\n")
		so, prog := filepath.Join(dir, i, "libx.so.1"), filepath.Join(dir, i, "prog")
		gcc("-shared", "-fPIC", "-Wl,-soname,libx.so.1", "-o", so, lib)
		gcc("-o", prog, main, so, "-Wl,--enable-new-dtags,-rpath,"+rpath)
		files = append(files, File{Rel: i + "/prog", Path: prog}, File{Rel: i + "/libx.so.1", Path: so})
	}
	// c's libx.so.1 is an absolute symlink into the pack host: the
	// packed tree does not reach it by itself, so the store must have it.
	clib := write("c/x.c", "int x(void) { return 3; }\n")
	cmain := write("c/main.c", "int x(void); int main(void) { return x(); }\n")
	real, so, cprog := filepath.Join(dir, "c", "libx.so.1.0"), filepath.Join(dir, "c", "libx.so.1"), filepath.Join(dir, "c", "prog")
	gcc("-shared", "-fPIC", "-Wl,-soname,libx.so.1", "-o", real, clib)
	if err := os.Symlink(real, so); err != nil {
		t.Fatal(err)
	}
	gcc("-o", cprog, cmain, so, "-Wl,--enable-new-dtags,-rpath,$ORIGIN")
	files = append(files, File{Rel: "c/prog", Path: cprog}, File{Rel: "c/libx.so.1.0", Path: real})
	res, err := Find(Options{Files: files, Target: "a/prog", Cache: hostCache(t)})
	if err != nil {
		t.Fatal(err)
	}
	var stored []string
	for _, s := range res.Store {
		if strings.Contains(s.Name, "libx") {
			stored = append(stored, s.Source)
		}
	}
	if len(stored) != 1 || stored[0] != real {
		t.Errorf("libx in the store: %v; want %s alone (the one behind an absolute symlink), not those found by $ORIGIN in the packed directory", stored, real)
	}
	for _, rel := range []string{"a/prog", "b/prog"} {
		b, ok := res.Patched[rel]
		if !ok {
			t.Fatalf("%s not patched", rel)
		}
		p := filepath.Join(t.TempDir(), "patched")
		if err := os.WriteFile(p, b, 0o755); err != nil {
			t.Fatal(err)
		}
		e, err := ReadELF(p)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Join(e.RunPath, ":") != "$ORIGIN" || !strings.HasPrefix(e.Interp, StoreDir+"/") {
			t.Errorf("%s patched: RUNPATH %q, interpreter %q; want $ORIGIN alone and the store's loader", rel, e.RunPath, e.Interp)
		}
	}
}
