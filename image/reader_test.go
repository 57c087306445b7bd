package image

// The reader is checked against mksquashfs, an independent writer: pack
// treegen's tree with each compressor and compare what the Reader sees with
// what the file system holds.

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"math/rand"
	"os"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parkerpack/parker/internal/treecmp"
	"github.com/parkerpack/parker/internal/treegen"
)

// readerTree is the tree the reader is checked on: every kind of entry,
// deep nesting and, unless -short, a wide directory.
func readerTree(t testing.TB) string {
	opt := treegen.Options{Depth: 40}
	if !testing.Short() {
		opt.Wide = 3000
	}
	return genTree(t, testBlockSize, opt)
}

func TestReaderAgainstMksquashfs(t *testing.T) {
	needTool(t, "mksquashfs")
	src := readerTree(t)
	want := diskView(t, "source", src)
	if want.Entries["links/a"].ID != want.Entries["links/a.2"].ID {
		t.Fatal("test tree: hard links not made")
	}
	for _, c := range mksquashfsComps {
		t.Run(c.name, func(t *testing.T) {
			r := openTestImage(t, packMksquashfs(t, src, c.args...))
			if got := r.Compression(); got != c.name {
				t.Errorf("Compression() = %q, want %q", got, c.name)
			}
			got, err := readerView(r)
			if err != nil {
				t.Fatalf("Walk: %v", err)
			}
			checkTree(t, want, got, treecmp.Expect{KeepOwner: true, Clamp: -1})

			root, err := r.Root()
			if err != nil {
				t.Fatal(err)
			}
			if root.Path != "." || !root.IsDir() {
				t.Errorf("root = %+v", root)
			}
			d, err := r.Lookup(indexedDir)
			if err != nil {
				t.Fatal(err)
			}
			if d.typ != TypeLDir || d.idxCount == 0 {
				t.Errorf("%s: type %d with %d index entries; want an indexed extended directory", indexedDir, d.typ, d.idxCount)
			}
		})
	}
}

func TestLookup(t *testing.T) {
	src := genTree(t, testBlockSize, treegen.Options{Depth: 8})
	r := openTestImage(t, packMksquashfs(t, src, "-comp", "zstd"))
	// Every name of the indexed directory, and names between them, so each
	// index entry and each block boundary is crossed.
	d, err := r.Lookup(indexedDir)
	if err != nil || d.idxCount == 0 {
		t.Fatalf("%s: %v, %d index entries", indexedDir, err, d.idxCount)
	}
	kids, err := r.ReadDir(d)
	if err != nil || len(kids) < 500 {
		t.Fatalf("%s: %d entries, %v", indexedDir, len(kids), err)
	}
	for _, k := range kids {
		name := indexedDir + "/" + k.Name
		n, err := r.Lookup(name)
		if err != nil || n.Path != name {
			t.Fatalf("Lookup(%q) = %v, %v", name, n, err)
		}
		if _, err := r.Lookup(name + "x"); !errors.Is(err, ErrNotExist) {
			t.Fatalf("Lookup(%q): %v, want ErrNotExist", name+"x", err)
		}
	}
	for _, name := range []string{"0", "000-", "300", "zzz"} {
		if _, err := r.Lookup(indexedDir + "/" + name); !errors.Is(err, ErrNotExist) {
			t.Fatalf("Lookup(%q): %v, want ErrNotExist", indexedDir+"/"+name, err)
		}
	}
	for _, tc := range []struct {
		path string
		mode fs.FileMode
		err  error
	}{
		{".", fs.ModeDir, nil},
		{"", fs.ModeDir, nil},
		{"links/sym", fs.ModeSymlink, nil},
		{"links/sym/", fs.ModeSymlink, nil},
		{"deep/level-00/level-01/level-02", fs.ModeDir, nil},
		{"dirsize/n257/256", 0, nil},
		{"dirsize/n257/257", 0, ErrNotExist},
		{"nope", 0, ErrNotExist},
		{"sizes/r1/below", 0, ErrNotExist},
		{"symlinks/to-dir/a", 0, ErrNotExist}, // symlinks are not followed
	} {
		n, err := r.Lookup(tc.path)
		if !errors.Is(err, tc.err) || err != nil && tc.err == nil {
			t.Errorf("Lookup(%q): err %v, want %v", tc.path, err, tc.err)
			continue
		}
		if err == nil && n.Mode.Type() != tc.mode {
			t.Errorf("Lookup(%q): mode %v, want type %v", tc.path, n.Mode, tc.mode)
		}
	}
}

// TestFileReadAt reads files at awkward offsets and lengths, crossing block
// boundaries, holes and the fragment tail, and mixes Read with WriteTo.
func TestFileReadAt(t *testing.T) {
	src := genTree(t, testBlockSize, treegen.Options{})
	r := openTestImage(t, packMksquashfs(t, src, "-comp", "gzip"))
	rng := rand.New(rand.NewSource(1))
	for _, name := range []string{
		"sizes/r131071", "sizes/r131072", "sizes/t131073", "sizes/t1310843", "sparse/hole-start", "sparse/alternating",
		"zero/z393216", "zero/middle", "links/a", "sizes/r1", "sizes/r0", "dups/tail-a",
	} {
		want, err := os.ReadFile(filepath.Join(src, name))
		if err != nil {
			t.Fatal(err)
		}
		n, err := r.Lookup(name)
		if err != nil {
			t.Fatal(err)
		}
		f, err := r.Open(n)
		if err != nil {
			t.Fatal(err)
		}
		if f.Size() != int64(len(want)) {
			t.Fatalf("%s: Size %d, want %d", name, f.Size(), len(want))
		}
		for i := 0; i < 50; i++ {
			off := rng.Int63n(int64(len(want)) + 10)
			buf := make([]byte, rng.Intn(3*testBlockSize))
			m, err := f.ReadAt(buf, off)
			wantN := max(0, min(len(buf), len(want)-int(off)))
			if m != wantN || !bytes.Equal(buf[:m], want[min(int(off), len(want)):][:m]) {
				t.Fatalf("%s: ReadAt(%d, %d) = %d, %v; want %d bytes", name, len(buf), off, m, err, wantN)
			}
			if m < len(buf) && err != io.EOF {
				t.Fatalf("%s: short ReadAt without EOF: %v", name, err)
			}
		}
		// Read a little, then WriteTo the rest.
		head := make([]byte, min(len(want), 1000))
		if _, err := io.ReadFull(f, head); err != nil {
			t.Fatal(err)
		}
		var rest bytes.Buffer
		if _, err := f.WriteTo(&rest); err != nil {
			t.Fatal(err)
		}
		if got := append(head, rest.Bytes()...); !bytes.Equal(got, want) {
			t.Fatalf("%s: Read+WriteTo differs from the source", name)
		}
		if m, err := f.Read(make([]byte, 1)); m != 0 || err != io.EOF {
			t.Fatalf("%s: Read at end = %d, %v", name, m, err)
		}
	}
}

// TestReaderWriterRoundTrip reads what our own Writer produced. The writer
// is judged by unsquashfs and the kernel elsewhere; this checks the two
// halves agree, including on options mksquashfs does not use.
func TestReaderWriterRoundTrip(t *testing.T) {
	src := genTree(t, testBlockSize, treegen.Options{Depth: 40})
	want := diskView(t, "source", src)
	es := entriesOf(t, src)
	for _, comp := range Compressions {
		t.Run(comp, func(t *testing.T) {
			opt := DefaultOptions()
			opt.Compression = comp
			opt.Level, _, _ = DefaultLevel(comp)
			opt.BlockSize = testBlockSize
			opt.KeepOwner = true
			path, st := writeImage(t, es, opt)
			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			r, err := NewReader(f, st.Size)
			if err != nil {
				t.Fatal(err)
			}
			if r.Compression() != comp {
				t.Errorf("Compression() = %q, want %q", r.Compression(), comp)
			}
			got, err := readerView(r)
			if err != nil {
				t.Fatalf("Walk: %v", err)
			}
			checkTree(t, want, got, treecmp.Expect{KeepOwner: true, Clamp: -1})
		})
	}
}

// TestConcurrentReads: one Reader serves several goroutines at once (the
// metadata and fragment caches are shared); run with -race.
func TestConcurrentReads(t *testing.T) {
	src := genTree(t, testBlockSize, treegen.Options{})
	want := diskView(t, "source", src)
	r := openTestImage(t, packMksquashfs(t, src, "-comp", "zstd"))
	results := make(chan []string, 4)
	for range 4 {
		go func() {
			got, err := readerView(r)
			if err != nil {
				results <- []string{err.Error()}
				return
			}
			p, _ := treecmp.Compare(want, got, treecmp.Expect{KeepOwner: true, Clamp: -1})
			results <- p
		}()
	}
	for range 4 {
		for _, p := range <-results {
			t.Error(p)
		}
	}
}

// TestFragCacheOnce: goroutines that want the same fragment block at once
// decode it once; a failed decode is not kept, and the oldest block makes
// room for a new one.
func TestFragCacheOnce(t *testing.T) {
	var c fragCache
	c.init(2, 64)
	var loads atomic.Int32
	release := make(chan struct{})
	load := func(dst []byte) ([]byte, error) {
		loads.Add(1)
		<-release
		return append(dst, "block 7"...), nil
	}
	const n = 8
	got := make(chan string, n)
	for range n {
		go func() {
			e, err := c.get(7, load)
			if err != nil {
				got <- err.Error()
				return
			}
			got <- string(e.b)
			c.release(e)
		}()
	}
	// Let the first load finish only once every goroutine has asked.
	deadline := time.Now().Add(10 * time.Second)
	for c.waiting(7) < n-1 && time.Now().Before(deadline) {
		runtime.Gosched()
	}
	close(release)
	for range n {
		if b := <-got; b != "block 7" {
			t.Errorf("got %q", b)
		}
	}
	if l := loads.Load(); l != 1 {
		t.Errorf("%d decodes of one block wanted at once; want 1", l)
	}

	fail := errors.New("EIO")
	if _, err := c.get(8, func([]byte) ([]byte, error) { return nil, fail }); err != fail {
		t.Errorf("failed load: %v", err)
	}
	e, err := c.get(8, func(dst []byte) ([]byte, error) { return append(dst, "block 8"...), nil })
	if err != nil || string(e.b) != "block 8" {
		t.Errorf("after a failed load: %v; want it loaded again", err)
	} else {
		c.release(e)
	}
	e, _ = c.get(9, func(dst []byte) ([]byte, error) { return append(dst, "block 9"...), nil })
	c.release(e)
	loads.Store(0)
	if e, _ := c.get(7, load); string(e.b) != "block 7" || loads.Load() != 1 {
		t.Errorf("block 7 after two newer ones: %q, %d loads; want it evicted and loaded again", e.b, loads.Load())
	}
}

// TestFragCacheReuse: the buffer of a block neither cached nor held is
// decoded into again, and that of a block still held, never.
func TestFragCacheReuse(t *testing.T) {
	var c fragCache
	c.init(1, 64)
	fill := func(s string) func([]byte) ([]byte, error) {
		return func(dst []byte) ([]byte, error) {
			if cap(dst) < 64 || len(dst) != 0 {
				t.Fatalf("load into len %d cap %d", len(dst), cap(dst))
			}
			return append(dst, s...), nil
		}
	}
	held, _ := c.get(1, fill("one"))
	two, _ := c.get(2, fill("two")) // evicts 1, still held
	bufTwo := &two.b[0]
	c.release(two)
	three, _ := c.get(3, fill("three")) // evicts 2, released: its buffer is free
	if &three.b[0] != bufTwo {
		t.Error("the buffer of a block neither cached nor held was not decoded into again")
	}
	if string(held.b) != "one" {
		t.Errorf("held block: %q", held.b)
	}
	c.release(three)
	bufOne := &held.b[0]
	c.release(held) // no longer cached: its buffer is free now
	four, _ := c.get(4, fill("four"))
	if &four.b[0] != bufOne {
		t.Error("the buffer of a block released after its eviction was not decoded into again")
	}
	c.release(four)
}

// waiting is how many gets found fragment block i loading.
func (c *fragCache) waiting(i uint32) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range c.ents {
		if e.i == i {
			return e.waiters
		}
	}
	return 0
}

// TestEmptyImage: an empty root directory gives an empty directory table.
func TestEmptyImage(t *testing.T) {
	src := t.TempDir()
	for _, c := range mksquashfsComps {
		r := openTestImage(t, packMksquashfs(t, src, c.args...))
		n := 0
		if err := r.Walk(func(*Node) error { n++; return nil }); err != nil || n != 1 {
			t.Errorf("%s: Walk: %d nodes, %v", c.name, n, err)
		}
		if err := r.Extract(filepath.Join(t.TempDir(), "out"), ExtractOptions{}); err != nil {
			t.Errorf("%s: Extract: %v", c.name, err)
		}
	}
}
