package mountns

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

func TestResolve(t *testing.T) {
	root, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	view := filepath.Join(root, "app")
	for _, d := range []string{"app/inner", "out"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for link, to := range map[string]string{
		"out/abs":  view,
		"out/rel":  "../app/inner",
		"out/loop": "loop",
		"out/gone": "../app/missing",
	} {
		if err := os.Symlink(to, filepath.Join(root, link)); err != nil {
			t.Fatal(err)
		}
	}
	t.Chdir(filepath.Join(root, "app", "inner"))
	for _, c := range []struct{ in, want string }{
		{"ov", "app/inner/ov"},
		{"./sub/ov/", "app/inner/sub/ov"},
		{"../../out/ov", "out/ov"},
		{root + "/out/abs/x", "app/x"},
		{root + "/out/rel/../ov", "app/ov"},       // ".." goes up from the link's target
		{root + "/out/new/../abs/ov", "app/ov"},   // and lexically from a missing dir
		{root + "/out/gone/ov", "app/missing/ov"}, // a dangling link names its target
	} {
		got, err := resolve(c.in)
		if want := filepath.Join(root, c.want); err != nil || got != want {
			t.Errorf("resolve(%q) = %q, %v; want %q", c.in, got, err, want)
		}
	}
	if _, err := resolve(root + "/out/loop/ov"); !errors.Is(err, unix.ELOOP) {
		t.Errorf("resolve through a symlink loop: %v; want ELOOP", err)
	}
	if _, err := OpenOverlay(root+"/out/rel/../ov", view); !errors.Is(err, ErrInView) {
		t.Errorf("OpenOverlay inside the view: %v; want ErrInView", err)
	}
	if _, err := os.Lstat(filepath.Join(view, "ov")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused OpenOverlay created its directory (%v)", err)
	}
}

func TestOverlayLock(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ov")
	view := t.TempDir()
	a, err := OpenOverlay(dir, view)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := OpenOverlay(dir, view); !errors.Is(err, ErrBusy) {
		t.Errorf("second OpenOverlay while the first holds it: %v; want ErrBusy", err)
	}
	a.Close()
	b, err := OpenOverlay(dir, view)
	if err != nil {
		t.Fatalf("OpenOverlay after Close: %v", err)
	}
	b.Close()
}
