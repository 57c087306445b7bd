package treecmp

import (
	"bytes"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// memView builds a small view in memory: a directory, two names of one
// file, a symlink, a device and a fifo.
func memView(content map[string][]byte) *View {
	v := NewView("mem")
	file := func(p, id string, nlink uint32) *Entry {
		return &Entry{Mode: 0o644, Mtime: 1000, Size: int64(len(content[p])), ID: id, Nlink: nlink,
			Open: func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(content[p])), nil }}
	}
	v.Add(".", &Entry{Mode: fs.ModeDir | 0o755, Mtime: 500, ID: "1"})
	v.Add("d", &Entry{Mode: fs.ModeDir | 0o700, Mtime: 600, ID: "2"})
	v.Add("d/f", file("d/f", "3", 2))
	v.Add("d/g", file("d/g", "4", 1))
	v.Add("d/h", file("d/f", "3", 2)) // a second name of d/f
	v.Add("l", &Entry{Mode: fs.ModeSymlink | 0o777, Mtime: 700, Link: "d/f", ID: "5"})
	v.Add("null", &Entry{Mode: fs.ModeDevice | fs.ModeCharDevice | 0o666, Mtime: 800, Rdev: unix.Mkdev(1, 3), ID: "6"})
	v.Add("p", &Entry{Mode: fs.ModeNamedPipe | fs.ModeSetuid | 0o640, Mtime: 900, ID: "7"})
	return v
}

func contents() map[string][]byte {
	return map[string][]byte{"d/f": bytes.Repeat([]byte("abc"), 50000), "d/g": []byte("small")}
}

// TestCompareReports: every kind of difference is reported, on the path
// where it is, and an identical tree gives none.
func TestCompareReports(t *testing.T) {
	src := memView(contents())
	x := Expect{KeepOwner: true, Clamp: -1}
	if p, _ := Compare(src, memView(contents()), x); len(p) > 0 {
		t.Fatalf("identical trees: %q", p)
	}
	for _, tc := range []struct {
		name, path, want string
		change           func(v *View, c map[string][]byte)
	}{
		{"byte", "d/f", "content differs", func(v *View, c map[string][]byte) { c["d/f"][100000] ^= 1 }},
		{"length", "d/g", "size", func(v *View, c map[string][]byte) {
			c["d/g"] = append(c["d/g"], 0)
			v.Entries["d/g"].Size++
		}},
		{"mode", "d/g", "mode", func(v *View, _ map[string][]byte) { v.Entries["d/g"].Mode = 0o664 }},
		{"setuid", "p", "mode", func(v *View, _ map[string][]byte) { v.Entries["p"].Mode &^= fs.ModeSetuid }},
		{"type", "p", "type", func(v *View, _ map[string][]byte) { v.Entries["p"].Mode = fs.ModeSocket | 0o640 }},
		{"mtime", "d", "mtime", func(v *View, _ map[string][]byte) { v.Entries["d"].Mtime++ }},
		{"uid", "l", "owner", func(v *View, _ map[string][]byte) { v.Entries["l"].UID = 1 }},
		{"gid", "d/f", "owner", func(v *View, _ map[string][]byte) { v.Entries["d/f"].GID = 1 }},
		{"symlink", "l", "symlink target", func(v *View, _ map[string][]byte) { v.Entries["l"].Link = "d/g" }},
		{"rdev", "null", "rdev", func(v *View, _ map[string][]byte) { v.Entries["null"].Rdev = unix.Mkdev(1, 5) }},
		{"missing", "d/g", "missing", func(v *View, _ map[string][]byte) {
			delete(v.Entries, "d/g")
			v.Entries["d"].Names = []string{"f", "h"}
		}},
		{"extra", "d/new", "not in the source", func(v *View, _ map[string][]byte) { v.Add("d/new", &Entry{Mode: 0o644, Mtime: 1000, ID: "8"}) }},
		{"hard link split", "d/h", "hard link", func(v *View, _ map[string][]byte) { v.Entries["d/h"].ID = "9" }},
		{"hard link joined", "d/g", "shares inode", func(v *View, _ map[string][]byte) { v.Entries["d/g"].ID = "3" }},
		{"nlink", "d/g", "nlink", func(v *View, _ map[string][]byte) { v.Entries["d/g"].Nlink = 2 }},
		{"listing", "d", "directory lists", func(v *View, _ map[string][]byte) { v.Entries["d"].Names = []string{"f", "g"} }},
		{"unreadable", "d/g", "read", func(v *View, _ map[string][]byte) {
			v.Entries["d/g"].Open = func() (io.ReadCloser, error) { return nil, fs.ErrPermission }
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := contents()
			got := memView(c)
			tc.change(got, c)
			problems, _ := Compare(memView(contents()), got, x)
			found := false
			for _, p := range problems {
				found = found || strings.HasPrefix(p, `"`+tc.path+`": `) && strings.Contains(p, tc.want)
			}
			if !found {
				t.Errorf("%s changed: problems %q, want one on %q saying %q", tc.name, problems, tc.path, tc.want)
			}
		})
	}
}

// TestCompareExpect: owners dropped and times clamped as Expect says, and
// what a reader cannot show is a note, not a problem.
func TestCompareExpect(t *testing.T) {
	src := memView(contents())
	src.Entries["d/g"].UID, src.Entries["d/g"].Mtime = 1000, 5000
	got := memView(contents())
	got.Entries["d/g"].Mtime = 4000
	if p, _ := Compare(src, got, Expect{Clamp: 4000}); len(p) > 0 {
		t.Errorf("owners dropped, clamped at 4000: %q", p)
	}
	if p, _ := Compare(src, got, Expect{Clamp: -1}); len(p) != 1 || !strings.Contains(p[0], "mtime") {
		t.Errorf("not clamped: %q, want one mtime problem", p)
	}
	got.Entries["d/g"].Mtime = 5000
	got.NoOwner, got.NoRdev, got.NoSpecialBits = true, true, true
	got.Entries["d/f"].UID = 77
	got.Entries["null"].Rdev = 0
	got.Entries["p"].Mode &^= fs.ModeSetuid
	p, notes := Compare(src, got, Expect{KeepOwner: true, Clamp: -1})
	if len(p) > 0 || len(notes) != 3 {
		t.Errorf("problems %q, notes %q; want none and three notes", p, notes)
	}
	if p, _ := Compare(src, got, Expect{Clamp: -1, Exclude: map[string]bool{"d": true}}); len(p) != 5 {
		t.Errorf("d excluded but present: %q, want d, its three entries and the root's listing reported", p)
	}
}

// TestLstat reads a real tree, which compares equal to itself and not to
// a copy with one byte changed.
func TestLstat(t *testing.T) {
	dir := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(dir, "a/b"), 0o755))
	data := bytes.Repeat([]byte{1, 2, 3}, 1<<20)
	must(os.WriteFile(filepath.Join(dir, "a/b/f"), data, 0o640))
	must(os.Link(filepath.Join(dir, "a/b/f"), filepath.Join(dir, "a/f2")))
	must(os.Symlink("b/f", filepath.Join(dir, "a/l")))
	sparse, err := os.Create(filepath.Join(dir, "sparse"))
	must(err)
	_, err = sparse.WriteAt([]byte("x"), 3<<20)
	must(err)
	must(sparse.Truncate(5 << 20))
	must(sparse.Close())
	src, err := Lstat("src", dir)
	must(err)
	if len(src.Entries) != 7 || src.Entries["a/f2"].ID != src.Entries["a/b/f"].ID || src.Entries["a/l"].Link != "b/f" {
		t.Fatalf("Lstat: %d entries, %+v", len(src.Entries), src.Entries["a/l"])
	}
	again, err := Lstat("again", dir)
	must(err)
	if p, _ := Compare(src, again, Expect{KeepOwner: true, Clamp: -1}); len(p) > 0 {
		t.Fatalf("same tree: %q", p)
	}
	f, err := os.OpenFile(filepath.Join(dir, "sparse"), os.O_WRONLY, 0)
	must(err)
	_, err = f.WriteAt([]byte("y"), 3<<20)
	must(err)
	must(f.Close())
	changed, err := Lstat("changed", dir)
	must(err)
	p, _ := Compare(src, changed, Expect{KeepOwner: true, Clamp: -1})
	if len(p) == 0 || !strings.Contains(strings.Join(p, "\n"), `"sparse": content differs`) {
		t.Fatalf("changed byte in a sparse file: %q", p)
	}
}
