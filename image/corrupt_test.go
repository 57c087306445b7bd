package image

// Damaged and hostile images: every read of one must fail cleanly, with
// ErrFormat or ErrCompression, never panic or hang.

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"os"
	"path/filepath"
	"testing"
)

// smallMksquashfsImage packs a small tree and returns the image.
func smallMksquashfsImage(t testing.TB, args ...string) []byte {
	t.Helper()
	needTool(t, "mksquashfs")
	src := filepath.Join(t.TempDir(), "src")
	for i, size := range []int{0, 10, 5000, 70000} {
		p := filepath.Join(src, fmt.Sprintf("d%d", i%2), fmt.Sprintf("f%d", i))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, pseudoText(int64(i), size), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("d0/f0", filepath.Join(src, "link")); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(packMksquashfs(t, src, append([]string{"-b", "4096"}, args...)...))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// readImageFully walks an image and reads every file, as the fuzz target does;
// it returns the first error.
func readImageFully(img []byte, size int64, limit int64) error {
	return readAllAtLimit(bytes.NewReader(img), size, limit)
}

// corruptOK reports whether err is an acceptable outcome for damaged input:
// none (the damage hit padding or an unused byte), or a format or
// compression error.
func corruptOK(err error) bool {
	return err == nil || errors.Is(err, ErrFormat) || errors.Is(err, ErrCompression)
}

func TestCorruptImages(t *testing.T) {
	for _, c := range mksquashfsComps {
		t.Run(c.name, func(t *testing.T) {
			img := smallMksquashfsImage(t, append([]string{"-nopad"}, c.args...)...)
			if err := readImageFully(img, int64(len(img)), 1<<20); err != nil {
				t.Fatalf("intact image: %v", err)
			}
			// Truncated files: NewReader must notice from bytes_used.
			for cut := 0; cut < len(img); cut += 1 + len(img)/200 {
				if err := readImageFully(img[:cut], int64(cut), 1<<20); !errors.Is(err, ErrFormat) {
					t.Errorf("truncated at %d: %v, want ErrFormat", cut, err)
				}
			}
			// Truncated data behind a size that claims more: every read
			// must fail cleanly.
			for cut := SuperblockSize; cut < len(img); cut += 1 + len(img)/100 {
				short := &shortReader{img[:cut]}
				if err := readAllAt(short, int64(len(img))); err == nil || !errors.Is(err, ErrFormat) && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Errorf("data cut at %d: %v", cut, err)
				}
			}
			// Flipped bytes, one at a time and in bursts.
			rng := rand.New(rand.NewSource(int64(len(img))))
			for i := 0; i < 400; i++ {
				bad := bytes.Clone(img)
				for j := 0; j <= i%4; j++ {
					bad[rng.Intn(len(bad))] ^= byte(1 + rng.Intn(255))
				}
				if err := readImageFully(bad, int64(len(bad)), 1<<20); !corruptOK(err) {
					t.Errorf("flip %d: %v", i, err)
				}
			}
		})
	}
}

// shortReader is an io.ReaderAt whose data ends early.
type shortReader struct{ b []byte }

func (s *shortReader) ReadAt(p []byte, off int64) (int, error) {
	return bytes.NewReader(s.b).ReadAt(p, off)
}

func readAllAt(ra io.ReaderAt, size int64) error { return readAllAtLimit(ra, size, -1) }

// readAllAtLimit walks the image in ra and reads every file, at most limit
// bytes of each (all of it when limit < 0); it returns the first error.
func readAllAtLimit(ra io.ReaderAt, size, limit int64) error {
	r, err := NewReader(ra, size)
	if err != nil {
		return err
	}
	return r.Walk(func(n *Node) error {
		if !n.Mode.IsRegular() {
			return nil
		}
		f, err := r.Open(n)
		if err != nil {
			return err
		}
		var src io.Reader = f
		if limit >= 0 {
			src = io.LimitReader(f, limit)
		}
		_, err = io.Copy(io.Discard, src)
		return err
	})
}

func TestNewReaderRejects(t *testing.T) {
	img := smallMksquashfsImage(t, "-comp", "gzip")
	le := func(b []byte, off int, v uint64, n int) []byte {
		b = bytes.Clone(b)
		for i := 0; i < n; i++ {
			b[off+i] = byte(v >> (8 * i))
		}
		return b
	}
	for _, tc := range []struct {
		name string
		img  []byte
		want error
	}{
		{"short", img[:50], ErrFormat},
		{"magic", le(img, 0, 0x12345678, 4), ErrFormat},
		{"version", le(img, 28, 3, 2), ErrFormat},
		{"block size", le(img, 12, 3000, 4), ErrFormat},
		{"block log", le(img, 22, 13, 2), ErrFormat},
		{"lzma", le(img, 20, CompLZMA, 2), ErrCompression},
		{"lzo", le(img, 20, CompLZO, 2), ErrCompression},
		{"unknown compressor", le(img, 20, 99, 2), ErrFormat},
		{"bytes used", le(img, 40, uint64(len(img))+1, 8), ErrFormat},
		{"no ids", le(img, 26, 0, 2), ErrFormat},
		{"inode table after dir table", le(img, 64, 1<<40, 8), ErrFormat},
		{"id table outside", le(img, 48, 1<<40, 8), ErrFormat},
		{"fragment table outside", le(img, 80, 1<<40, 8), ErrFormat},
		{"huge fragment count", le(img, 16, 1<<31, 4), ErrFormat},
		{"root ref", le(img, 32, 1<<47, 8), ErrFormat},
	} {
		r, err := NewReader(bytes.NewReader(tc.img), int64(len(tc.img)))
		if err == nil {
			_, err = r.Root()
		}
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
}

// eofReader returns io.EOF with a read that reaches the end of its data, as
// io.ReaderAt allows (io.SectionReader does so).
type eofReader struct{ b []byte }

func (e eofReader) ReadAt(p []byte, off int64) (int, error) {
	n, err := bytes.NewReader(e.b).ReadAt(p, off)
	if err == nil && off+int64(n) == int64(len(e.b)) {
		err = io.EOF
	}
	return n, err
}

func TestReaderAtEOF(t *testing.T) {
	for _, c := range mksquashfsComps {
		img := smallMksquashfsImage(t, append([]string{"-nopad"}, c.args...)...)
		if err := readAllAt(eofReader{img}, int64(len(img))); err != nil {
			t.Errorf("%s: %v", c.name, err)
		}
	}
}
