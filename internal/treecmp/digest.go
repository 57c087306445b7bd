package treecmp

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"sync"
)

// digester computes a content digest that equals for equal contents:
// SHA-256 over (offset, bytes) of every 64 KiB chunk that is not all zeros,
// and the length. Skipping zero chunks keeps a 5 GiB sparse file cheap to
// hash while every byte is still read from the reader under test.
type digester struct {
	h     hash.Hash
	off   int64  // bytes hashed or buffered
	chunk []byte // the chunk being filled, starting at off-len(chunk)
}

const digestChunk = 64 << 10

var (
	digestBufs = sync.Pool{New: func() any { b := make([]byte, 1<<20); return &b }}
	zero       = make([]byte, digestChunk)
)

func newDigester() *digester {
	return &digester{h: sha256.New(), chunk: make([]byte, 0, digestChunk)}
}

func (d *digester) add(c []byte, at int64) {
	if !bytes.Equal(c, zero[:len(c)]) {
		d.h.Write(binary.LittleEndian.AppendUint64(nil, uint64(at)))
		d.h.Write(c)
	}
}

func (d *digester) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		if len(d.chunk) == 0 && len(p) >= digestChunk {
			d.add(p[:digestChunk], d.off)
			p, d.off = p[digestChunk:], d.off+digestChunk
			continue
		}
		k := min(len(p), digestChunk-len(d.chunk))
		d.chunk = append(d.chunk, p[:k]...)
		p, d.off = p[k:], d.off+int64(k)
		if len(d.chunk) == digestChunk {
			d.add(d.chunk, d.off-digestChunk)
			d.chunk = d.chunk[:0]
		}
	}
	return n, nil
}

// ReadFrom reads in large pieces from readers without a WriteTo method (a
// sparse file's holes are then cleared a megabyte at a time).
func (d *digester) ReadFrom(r io.Reader) (int64, error) {
	bp := digestBufs.Get().(*[]byte)
	defer digestBufs.Put(bp)
	var total int64
	for {
		n, err := io.ReadFull(r, *bp)
		d.Write((*bp)[:n])
		total += int64(n)
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

func (d *digester) sum() string {
	if len(d.chunk) > 0 {
		d.add(d.chunk, d.off-int64(len(d.chunk)))
		d.chunk = d.chunk[:0]
	}
	d.h.Write(binary.LittleEndian.AppendUint64(nil, uint64(d.off)))
	return hex.EncodeToString(d.h.Sum(nil))
}

// hashAll digests every regular file of v (paths in want), two at a time.
func (v *View) hashAll(want []string) map[string]error {
	v.mu.Lock()
	if v.hashes == nil {
		v.hashes = map[string]string{}
	}
	v.mu.Unlock()
	errs := map[string]error{}
	var mu sync.Mutex
	ch := make(chan string)
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := range ch {
				d, err := v.hashOne(p)
				mu.Lock()
				if err != nil {
					errs[p] = err
				}
				mu.Unlock()
				if err == nil {
					v.mu.Lock()
					v.hashes[p] = d
					v.mu.Unlock()
				}
			}
		}()
	}
	for _, p := range want {
		v.mu.Lock()
		_, done := v.hashes[p]
		v.mu.Unlock()
		if !done {
			ch <- p
		}
	}
	close(ch)
	wg.Wait()
	return errs
}

func (v *View) hashOne(p string) (string, error) {
	e := v.Entries[p]
	if e.Open == nil {
		return "", errors.New("no way to read content")
	}
	rc, err := e.Open()
	if err != nil {
		return "", err
	}
	defer rc.Close()
	d := newDigester()
	if n, err := io.Copy(d, rc); err != nil {
		return "", fmt.Errorf("read at %d: %w", n, err)
	}
	return d.sum(), nil
}
