package treegen

// Contents: what each generated file holds, streamed from its seed.

import (
	"bufio"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"strings"
)

// writeContent writes c to a new file at path, leaving holes (seeks) where a
// sparse file has no data.
func writeContent(path string, c content) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	switch c.kind {
	case 's':
		for _, r := range c.regions {
			if _, err := f.Seek(r[0], io.SeekStart); err != nil {
				return err
			}
			if err := stream(f, 'r', c.seed+uint64(r[0]), r[1]); err != nil {
				return err
			}
		}
		if err := f.Truncate(c.size); err != nil {
			return err
		}
	case 'x':
		if _, err := f.WriteString(script); err != nil {
			return err
		}
	case 'n':
		if err := stream(f, 'r', c.seed, c.size-1); err != nil {
			return err
		}
		b := make([]byte, 1)
		rand.NewChaCha8(seed32(c.seed)).Read(b)
		if _, err := f.Write([]byte{b[0] ^ 0xff}); err != nil {
			return err
		}
	default:
		if err := stream(f, c.kind, c.seed, c.size); err != nil {
			return err
		}
	}
	return f.Close()
}

func seed32(s uint64) (b [32]byte) {
	for i := range 4 {
		s = s*6364136223846793005 + 1442695040888963407
		for j := range 8 {
			b[i*8+j] = byte(s >> (8 * j))
		}
	}
	return b
}

// stream writes n bytes of kind 'r' (random), 'z' (zeros) or 't' (text).
func stream(w io.Writer, kind byte, seed uint64, n int64) error {
	bw := bufio.NewWriterSize(w, int(min(max(n, 16), 256<<10)))
	var src io.Reader
	switch kind {
	case 'r':
		src = rand.NewChaCha8(seed32(seed))
	case 'z':
		src = zeroReader{}
	case 't':
		src = newTextReader(seed)
	default:
		return fmt.Errorf("treegen: unknown content kind %q", kind)
	}
	if _, err := io.CopyN(bw, src, n); err != nil {
		return err
	}
	return bw.Flush()
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// textReader yields compressible, source-like text: lines of words drawn
// from a small vocabulary, with numbers and punctuation.
type textReader struct {
	rng *rand.Rand
	buf []byte
}

var words = strings.Fields(`func return if else for range package import type struct interface
	var const nil true false error string int64 byte append make len cap map chan go defer select
	case switch default break continue the a of to and in is that for it with as was on be by this
	image writer reader block fragment inode directory table offset size parker squashfs compress
	"name": "value", "id": "count": "items": [ ] { } ( ) := = == != <= >= + - * / % && || ! <- ;`)

func newTextReader(seed uint64) *textReader {
	return &textReader{rng: rand.New(rand.NewPCG(seed, seed^0x5eed))}
}

func (t *textReader) Read(p []byte) (int, error) {
	for len(t.buf) < len(p) {
		indent := t.rng.IntN(4)
		for range indent {
			t.buf = append(t.buf, '\t')
		}
		nw := 3 + t.rng.IntN(9)
		for i := range nw {
			if i > 0 {
				t.buf = append(t.buf, ' ')
			}
			if t.rng.IntN(12) == 0 {
				t.buf = fmt.Appendf(t.buf, "%d", t.rng.IntN(100000))
			} else {
				t.buf = append(t.buf, words[t.rng.IntN(len(words))]...)
			}
		}
		t.buf = append(t.buf, '\n')
	}
	n := copy(p, t.buf)
	t.buf = t.buf[:copy(t.buf, t.buf[n:])]
	return n, nil
}
