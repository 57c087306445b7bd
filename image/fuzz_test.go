package image

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// The fuzz targets' seeds: FuzzReader starts from the small mksquashfs
// images in testdata/ (regenerate with `go test -run TestFuzzSeeds
// -update-seeds ./image`); crashers found so far live in testdata/fuzz/
// and run as plain tests with every `go test`.
//
// The seeds are kept to a few KB because the fuzzer minimizes every input
// that finds new coverage, in time roughly quadratic in its length, for up
// to -fuzzminimizetime (default 60s) during which no new inputs are tried;
// short runs should pass e.g. -fuzzminimizetime 5s.

var updateSeeds = flag.Bool("update-seeds", false, "regenerate testdata/*.sqfs with mksquashfs")

// seedImages are the testdata images: name and mksquashfs flags. 4 KiB
// blocks keep them small while still giving files of several blocks, a
// fragment and a sparse block.
var seedImages = []struct {
	name string
	args []string
}{
	{"gzip", []string{"-comp", "gzip"}},
	{"xz", []string{"-comp", "xz"}},
	{"lz4", []string{"-comp", "lz4"}},
	{"zstd", []string{"-comp", "zstd"}},
	{"none", []string{"-noI", "-noD", "-noF", "-noX"}},
	{"zstd-nofrag", []string{"-comp", "zstd", "-no-fragments"}},
}

func seedTree(t *testing.T) string {
	src := filepath.Join(t.TempDir(), "src")
	files := map[string][]byte{
		"a/file":    pseudoText(1, 5000), // a block and a tail
		"a/small":   []byte("small file in a fragment\n"),
		"a/empty":   nil,
		"b/c/d/end": []byte("nested\n"),
	}
	for name, data := range files {
		p := filepath.Join(src, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	sp, err := os.Create(filepath.Join(src, "sparse"))
	if err != nil {
		t.Fatal(err)
	}
	sp.WriteAt([]byte("data after a hole"), 4200)
	sp.Close()
	os.Symlink("a/file", filepath.Join(src, "link"))
	os.Link(filepath.Join(src, "a/small"), filepath.Join(src, "hard"))
	unix.Mkfifo(filepath.Join(src, "fifo"), 0o600)
	return src
}

// TestFuzzSeeds checks that the committed seed images read cleanly (so the
// fuzzer starts from valid inputs) and regenerates them on request.
func TestFuzzSeeds(t *testing.T) {
	if *updateSeeds {
		src := seedTree(t)
		for _, s := range seedImages {
			args := append([]string{"-b", "4096", "-nopad", "-all-root", "-mkfs-time", "0", "-all-time", "1234567890"}, s.args...)
			b, err := os.ReadFile(packMksquashfs(t, src, args...))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join("testdata", s.name+".sqfs"), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	seeds, _ := filepath.Glob("testdata/*.sqfs")
	if len(seeds) == 0 {
		t.Fatal("no seed images in testdata/")
	}
	for _, p := range seeds {
		img, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := readImageFully(img, int64(len(img)), 1<<20); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
}

// errBudget stops a fuzz iteration that has done enough work.
var errBudget = errors.New("fuzz budget spent")

// budgetWriter accepts n bytes, then fails.
type budgetWriter struct{ n int64 }

func (w *budgetWriter) Write(p []byte) (int, error) {
	if int64(len(p)) > w.n {
		m := w.n
		w.n = 0
		return int(m), errBudget
	}
	w.n -= int64(len(p))
	return len(p), nil
}

// FuzzReader: any bytes given to NewReader, Walk, Lookup and the file
// readers must produce ErrFormat/ErrCompression or success, never a panic,
// a hang or a huge allocation. Work per input is capped: sparse files can
// legitimately be terabytes of zeros.
func FuzzReader(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/*.sqfs")
	for _, p := range seeds {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(fuzzBody)
}

// fuzzBody is FuzzReader's property, shared with its regression tests.
func fuzzBody(t *testing.T, img []byte) {
	r, err := NewReader(bytes.NewReader(img), int64(len(img)))
	if err != nil {
		if !corruptOK(err) {
			t.Fatalf("NewReader: %v", err)
		}
		return
	}
	_ = r.Compression()
	budget := &budgetWriter{n: 8 << 20}
	nodes := 0
	err = r.Walk(func(n *Node) error {
		if nodes++; nodes > 20000 {
			return errBudget
		}
		if nodes%16 == 1 {
			// A hostile index or duplicate names may make Lookup miss
			// or find a namesake; it must still fail cleanly.
			m, err := r.Lookup(n.Path)
			if err != nil && !errors.Is(err, ErrNotExist) && !corruptOK(err) {
				t.Fatalf("Lookup(%q): %v", n.Path, err)
			}
			if err == nil && m.Path != n.Path {
				t.Fatalf("Lookup(%q) found %q", n.Path, m.Path)
			}
		}
		if !n.Mode.IsRegular() {
			return nil
		}
		fl, err := r.Open(n)
		if err != nil {
			return err
		}
		// Alternate the sequential (ReadAt) and parallel (WriteTo) paths.
		if nodes%2 == 0 {
			_, err = fl.WriteTo(budget)
		} else {
			var m int64
			m, err = io.CopyN(io.Discard, fl, min(budget.n, 1<<20))
			budget.n -= m
			if err == io.EOF {
				err = nil
			}
		}
		if budget.n <= 0 {
			return errBudget
		}
		return err
	})
	if err != nil && err != errBudget && !corruptOK(err) {
		t.Fatalf("Walk: %v", err)
	}
}
