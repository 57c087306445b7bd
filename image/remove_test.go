package image

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// helperEnv makes the test binary run a helper instead of the tests, as
// another user (see TestMain).
const helperEnv = "PARKER_IMAGE_TEST_HELPER"

// runHelper runs the helper named in the environment, if any, and exits.
func runHelper() {
	switch os.Getenv(helperEnv) {
	case "":
		return
	case "extract-remove":
		fmt.Print(strings.Join(extractAndRemove(os.Getenv("IMG"), os.Getenv("DEST")), "\n"))
		os.Exit(0)
	case "extract-fewfds":
		if err := extractFewFDs(os.Getenv("IMG"), os.Getenv("DEST")); err != nil {
			fmt.Println(err)
			os.Exit(1)
		}
		os.Exit(0)
	case "extract-readonly":
		if err := extractReadOnly(os.Getenv("IMG"), os.Getenv("DEST")); err != nil {
			fmt.Println(err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	fmt.Println("unknown helper", os.Getenv(helperEnv))
	os.Exit(2)
}

// extractAndRemove extracts the image img into dest, untrusted, lists the
// modes of its directories, then removes dest: first with os.RemoveAll, which the image's directory
// modes stop for anyone but root, then with RemoveTree. It says what each
// step did, a line each.
func extractAndRemove(img, dest string) []string {
	say := func(step string, err error) string {
		if err != nil {
			return step + ": " + err.Error()
		}
		return step + ": ok"
	}
	b, err := os.ReadFile(img)
	if err != nil {
		return []string{say("read image", err)}
	}
	r, err := NewReader(strings.NewReader(string(b)), int64(len(b)))
	if err == nil {
		err = r.Extract(dest, ExtractOptions{Untrusted: true})
	}
	out := []string{say("extract", err)}
	var modes []string
	for _, p := range []string{"ro", "ro/none", "wx"} {
		fi, err := os.Lstat(filepath.Join(dest, p))
		if err != nil {
			return append(out, err.Error())
		}
		modes = append(modes, fmt.Sprintf("%s %v", p, fi.Mode()))
	}
	out = append(out, "modes: "+strings.Join(modes, ", "))
	out = append(out, say("os.RemoveAll", os.RemoveAll(dest)))
	out = append(out, say("RemoveTree", RemoveTree(dest)))
	_, err = os.Lstat(dest)
	return append(out, fmt.Sprintf("gone: %v", errors.Is(err, fs.ErrNotExist)))
}

// asNobody runs the test binary as nobody, with the helper named and the
// environment given, and returns its output. base must be a directory of
// t's, which it opens to others (and its parent, t.TempDir's own) so nobody
// can reach what the test puts there.
func asNobody(t *testing.T, base, helper string, env ...string) string {
	t.Helper()
	for _, d := range []string{filepath.Dir(base), base} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	bin := filepath.Join(base, "image.test")
	b, err := os.ReadFile(os.Args[0])
	if err == nil {
		err = os.WriteFile(bin, b, 0o755)
	}
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin)
	cmd.Env = append([]string{helperEnv + "=" + helper}, env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	b, err = cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helper as nobody: %v\n%s", err, b)
	}
	return string(b)
}

// TestRemoveTree: a tree extracted from an image whose directories are
// read-only (0555, 0500), unreadable (0300) or closed (0000) stops
// os.RemoveAll; RemoveTree removes it all, and never what a symlink in it
// points to. As root, which no mode stops, it runs as nobody.
func TestRemoveTree(t *testing.T) {
	base := t.TempDir()
	parent := filepath.Join(base, "parent")
	if err := os.Mkdir(parent, 0o755); err != nil {
		t.Fatal(err)
	}
	outside := filepath.Join(parent, "outside")
	os.Mkdir(outside, 0o755)
	if err := os.WriteFile(filepath.Join(outside, "keep"), []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	img := rawImage(t, []Entry{
		dirEnt("ro", 0o555),
		fileEntry(t, "ro/f", 0o444, []byte("f")),
		dirEnt("ro/none", 0),
		fileEntry(t, "ro/none/g", 0, []byte("g")),
		dirEnt("ro/none/deeper", 0o500),
		fileEntry(t, "ro/none/deeper/x", 0o400, []byte("x")),
		symlinkEntry("ro/link-dir", "../wx"),
		dirEnt("wx", 0o300),
		fileEntry(t, "wx/h", 0o644, []byte("h")),
		symlinkEntry("link-out", outside),
		symlinkEntry("link-keep", filepath.Join(outside, "keep")),
	}, MinBlockSize)
	imgPath := filepath.Join(base, "img.sqfs")
	if err := os.WriteFile(imgPath, img, 0o644); err != nil {
		t.Fatal(err)
	}
	dest := filepath.Join(parent, "entry")
	before := listOutside(t, parent, dest)

	var out string
	if os.Geteuid() != 0 {
		out = strings.Join(extractAndRemove(imgPath, dest), "\n")
	} else {
		for _, p := range []string{parent, outside, filepath.Join(outside, "keep")} {
			if err := os.Chown(p, 65534, 65534); err != nil {
				t.Fatal(err)
			}
		}
		out = asNobody(t, base, "extract-remove", "IMG="+imgPath, "DEST="+dest)
	}
	t.Logf("\n%s", out)
	lines := strings.Split(out, "\n")
	if len(lines) != 5 || lines[0] != "extract: ok" || lines[1] != "modes: ro dr-xr-xr-x, ro/none d---------, wx d-wx------" ||
		!strings.HasPrefix(lines[2], "os.RemoveAll: ") || !strings.Contains(lines[2], "permission denied") ||
		lines[3] != "RemoveTree: ok" || lines[4] != "gone: true" {
		t.Errorf("want the extraction to work, stop os.RemoveAll and not RemoveTree")
	}
	if after := listOutside(t, parent, dest); after != before {
		t.Errorf("outside the tree, before:\n%safter:\n%s", before, after)
	}
}

// TestRemoveTreeSymlinkAndMissing: a symlink given as the tree is removed,
// not what it points to; a missing tree is no error.
func TestRemoveTreeSymlinkAndMissing(t *testing.T) {
	parent, outside := hostileParent(t)
	link := filepath.Join(parent, "link")
	if err := os.Symlink(outside, link); err != nil {
		t.Fatal(err)
	}
	if err := RemoveTree(link); err != nil {
		t.Errorf("RemoveTree(symlink): %v", err)
	}
	if _, err := os.Lstat(link); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("symlink after RemoveTree: %v", err)
	}
	if _, err := os.Stat(filepath.Join(outside, "keep")); err != nil {
		t.Errorf("the symlink's target: %v", err)
	}
	if err := RemoveTree(filepath.Join(parent, "missing")); err != nil {
		t.Errorf("RemoveTree(missing): %v", err)
	}
	f := filepath.Join(parent, "file")
	os.WriteFile(f, nil, 0)
	if err := RemoveTree(f); err != nil {
		t.Errorf("RemoveTree(file): %v", err)
	}
	if _, err := os.Lstat(f); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("file after RemoveTree: %v", err)
	}
}

// TestRemoveTreeMountPoint: RemoveTree does not descend into a file system
// mounted below the tree; it says so in one line and removes the rest.
func TestRemoveTreeMountPoint(t *testing.T) {
	needRoot(t, "mounts a tmpfs")
	tree := filepath.Join(t.TempDir(), "tree")
	mnt := filepath.Join(tree, "a", "mnt")
	if err := os.MkdirAll(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(tree, "a", "f"), []byte("f"), 0o644)
	if err := unix.Mount("tmpfs", mnt, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatal(err)
	}
	mounted := true
	t.Cleanup(func() {
		if mounted {
			unix.Unmount(mnt, unix.MNT_DETACH)
		}
	})
	inside := filepath.Join(mnt, "inside")
	if err := os.WriteFile(inside, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := RemoveTree(tree)
	if err == nil || err.Error() != "open "+mnt+": another file system is mounted here; unmount it first" {
		t.Errorf("RemoveTree over a mount point: %v", err)
	}
	if _, err := os.Stat(inside); err != nil {
		t.Errorf("the mounted file: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(tree, "a", "f")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the rest of the tree: %v", err)
	}
	if err := unix.Unmount(mnt, 0); err != nil {
		t.Fatal(err)
	}
	mounted = false
	if err := RemoveTree(tree); err != nil {
		t.Errorf("RemoveTree once unmounted: %v", err)
	}
}
