package image

import (
	"bytes"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"sync"

	"golang.org/x/sys/unix"
)

// The data pipeline has three stages:
//
//	source (one goroutine, files in plan order) -> compress (N workers) -> store (one goroutine, in order)
//
// The source stage cuts files into blocks, turns all-zero blocks into
// sparse entries, packs tails into fragment blocks and decides duplicates:
// it hashes each file as it reads it and a file whose size and hash were
// seen before is stored as a reference to the first. The hash is 128 bits
// of maphash under two random per-run seeds: AES-based, so it costs a tenth
// of SHA-256 on this path, and no input can be crafted to collide with
// seeds it cannot know; an accidental collision needs about 2^64 files. A
// duplicate's tail never reaches a fragment; its full blocks were already
// on their way, so the store stage rewinds over them. The store stage
// writes results strictly in the order the source stage emitted them
// (pipeline.go), which keeps the output independent of the worker count.
// Memory is bounded by the pipeline's depth: a few blocks per worker.

type itemKind uint8

const (
	blockItem   itemKind = iota // one full block of a file (or a hole)
	fragItem                    // one full fragment block
	fileEndItem                 // a file is complete
)

type item struct {
	kind  itemKind
	fd    *fileData // blockItem, fileEndItem
	size  int64     // fileEndItem: the file's length
	hole  bool      // blockItem: all zeros, stored as a sparse block
	raw   []byte    // data to compress (pooled)
	out   []byte    // compressed form, nil to store raw (pooled)
	err   error
	dupOf *fileData // fileEndItem: identical content stored earlier
}

type fragRec struct {
	start uint64
	size  uint32
}

type dataStats struct {
	input int64
	dups  int
	frags []fragRec
}

type digestKey struct {
	size   int64
	h1, h2 uint64
}

// hashWriter is what the source stage feeds file content to.
type hashWriter interface{ Write([]byte) (int, error) }

type nopHash struct{}

func (nopHash) Write(p []byte) (int, error) { return len(p), nil }

// contentHash is the 128-bit duplicate-detection hash.
type contentHash struct{ a, b maphash.Hash }

func newContentHash() *contentHash {
	h := &contentHash{}
	h.a.SetSeed(maphash.MakeSeed())
	h.b.SetSeed(maphash.MakeSeed())
	return h
}

func (h *contentHash) Reset()                      { h.a.Reset(); h.b.Reset() }
func (h *contentHash) Write(p []byte) (int, error) { h.a.Write(p); h.b.Write(p); return len(p), nil }
func (h *contentHash) sum() (uint64, uint64)       { return h.a.Sum64(), h.b.Sum64() }

// writeData stores the content of every regular file, in order.
func (w *Writer) writeData(out *output, files []*node) (*dataStats, error) {
	bs := w.opt.BlockSize
	nw := workers(&w.opt)
	pool := &sync.Pool{New: func() any { b := make([]byte, 0, bs+bs/16+64); return &b }}
	// A few blocks in flight per worker keep every core busy; the cap keeps
	// memory bounded (two buffers per item) however many cores there are.
	inflight := min(16*nw, max(8, maxInflightBytes/(2*bs)))
	p := newPipeline(nw, inflight, func(it *item) {
		dst := pool.Get().(*[]byte)
		c, err := w.comp.compress(*dst, it.raw)
		if c == nil {
			pool.Put(dst)
		} else {
			it.out = c
		}
		it.err = err
	})
	var rerr error
	go func() {
		// rerr is read after next reports the pipeline closed, which
		// happens after this assignment.
		defer p.close()
		src := &source{w: w, bs: bs, pool: pool, p: p, seen: map[digestKey]*fileData{}, hash: newContentHash()}
		rerr = src.run(files)
	}()

	st := &dataStats{}
	var serr error
	var filesDone int
	var partial int64 // input bytes of the file being stored, for Progress
	put := func(b []byte) {
		if b != nil {
			b = b[:0]
			pool.Put(&b)
		}
	}
	for {
		it, ok := p.next()
		if !ok {
			break
		}
		if serr != nil {
			continue // drain, so the source stage is never stuck
		}
		if it.err != nil {
			serr = it.err
			p.stop()
			continue
		}
		switch it.kind {
		case blockItem:
			fd := it.fd
			partial += int64(bs)
			if w.opt.Progress != nil {
				w.opt.Progress(filesDone, st.input+partial)
			}
			if len(fd.sizes) == 0 {
				fd.start, fd.startPos = uint64(out.pos), out.pos
			}
			switch {
			case it.hole:
				fd.sizes = append(fd.sizes, 0)
				fd.sparse += uint64(bs)
			case it.out != nil:
				fd.sizes = append(fd.sizes, uint32(len(it.out)))
				out.write(it.out)
			default:
				fd.sizes = append(fd.sizes, uint32(len(it.raw))|DataUncompressed)
				out.write(it.raw)
			}
		case fragItem:
			rec := fragRec{start: uint64(out.pos), size: uint32(len(it.raw)) | DataUncompressed}
			if it.out != nil {
				rec.size = uint32(len(it.out))
				out.write(it.out)
			} else {
				out.write(it.raw)
			}
			st.frags = append(st.frags, rec)
		case fileEndItem:
			fd := it.fd
			if d := it.dupOf; d != nil {
				if len(fd.sizes) > 0 {
					out.rewind(fd.startPos)
				}
				fd.start, fd.sizes, fd.sparse = d.start, d.sizes, d.sparse
				st.dups++
			}
			st.input += it.size
			partial = 0
			filesDone++
			if w.opt.Progress != nil {
				w.opt.Progress(filesDone, st.input)
			}
		}
		put(it.raw)
		put(it.out)
		if out.err != nil {
			serr = out.err
			p.stop()
		}
	}
	if rerr != nil && !errors.Is(rerr, errStopped) {
		return nil, rerr
	}
	if serr != nil {
		return nil, serr
	}
	return st, nil
}

// maxInflightBytes bounds the block buffers queued between the stages.
const maxInflightBytes = 128 << 20

// source is the first stage: it reads the source files, and owns the
// fragment being filled and the table of contents seen so far.
type source struct {
	w       *Writer
	bs      int
	pool    *sync.Pool
	p       *pipeline[item]
	seen    map[digestKey]*fileData
	sizes   map[int64]int // how many files have each size
	hash    *contentHash
	frag    []byte // fragment block being filled
	nfrag   uint32 // index of that fragment block
	zeros   []byte
	tailBuf []byte
}

func (s *source) run(files []*node) error {
	s.zeros = make([]byte, s.bs)
	s.frag = s.get()
	// Only files that share their size with another can be duplicates;
	// the others are not hashed at all (most of a tree of large assets).
	s.sizes = map[int64]int{}
	for _, n := range files {
		s.sizes[n.e.Size]++
	}
	for _, n := range files {
		fd := &fileData{frag: NoFragment}
		n.data = fd
		if err := s.file(n, fd); err != nil {
			return err
		}
	}
	if len(s.frag) > 0 {
		return s.emit(item{kind: fragItem, raw: s.frag}, true)
	}
	return nil
}

func (s *source) get() []byte { return (*s.pool.Get().(*[]byte))[:0] }

// emit hands an item to the workers (when it needs compressing) and to the
// store stage, in order.
func (s *source) emit(it item, compress bool) error { return s.p.submit(it, compress) }

// file reads one regular file once, front to back.
func (s *source) file(n *node, fd *fileData) error {
	size := n.e.Size
	if size == 0 {
		return s.emit(item{kind: fileEndItem, fd: fd}, false)
	}
	f, err := openNoatime(n.e.Source)
	if err != nil {
		return fmt.Errorf("open %s: %w", n.e.Source, err)
	}
	defer unix.Close(f)
	var st unix.Stat_t
	if err := unix.Fstat(f, &st); err != nil {
		return fmt.Errorf("stat %s: %w", n.e.Source, err)
	}
	switch {
	case st.Mode&unix.S_IFMT != unix.S_IFREG:
		return fmt.Errorf("%s: changed while packing (no longer a regular file)", n.e.Source)
	case n.e.Ino != 0 && (st.Dev != n.e.Dev || st.Ino != n.e.Ino):
		return fmt.Errorf("%s: changed while packing (replaced by another file)", n.e.Source)
	case st.Size != size:
		return fmt.Errorf("%s: changed while packing (size %d, was %d)", n.e.Source, st.Size, size)
	}
	var h hashWriter = nopHash{}
	dedup := s.sizes[size] > 1
	if dedup {
		s.hash.Reset()
		h = s.hash
	}
	holes := newHoleMap(f, size, st.Blocks*512 < size)
	bs := int64(s.bs)
	full := size / bs
	for i := int64(0); i < full; i++ {
		off := i * bs
		if holes.isHole(off, bs) {
			h.Write([]byte{0})
			if err := s.emit(item{kind: blockItem, fd: fd, hole: true}, false); err != nil {
				return err
			}
			continue
		}
		buf := s.get()[:bs]
		if err := preadFull(f, buf, off); err != nil {
			return fmt.Errorf("read %s: %w", n.e.Source, err)
		}
		if bytes.Equal(buf, s.zeros) {
			// The same digest input as a hole: equal content, equal hash.
			h.Write([]byte{0})
			s.pool.Put(&buf)
			if err := s.emit(item{kind: blockItem, fd: fd, hole: true}, false); err != nil {
				return err
			}
			continue
		}
		h.Write([]byte{1})
		h.Write(buf)
		if err := s.emit(item{kind: blockItem, fd: fd, raw: buf}, true); err != nil {
			return err
		}
	}
	tail := int(size - full*bs)
	if tail > 0 {
		if cap(s.tailBuf) < tail {
			s.tailBuf = make([]byte, s.bs)
		}
		s.tailBuf = s.tailBuf[:tail]
		if err := preadFull(f, s.tailBuf, full*bs); err != nil {
			return fmt.Errorf("read %s: %w", n.e.Source, err)
		}
		h.Write([]byte{2})
		h.Write(s.tailBuf)
	}
	// A writer that rewrote the file under us would leave a torn copy:
	// refuse it, as tar does ("file changed as we read it").
	var after unix.Stat_t
	if err := unix.Fstat(f, &after); err != nil {
		return fmt.Errorf("stat %s: %w", n.e.Source, err)
	}
	if after.Size != st.Size || after.Mtim != st.Mtim || after.Ctim != st.Ctim {
		return fmt.Errorf("%s: changed while packing", n.e.Source)
	}
	end := item{kind: fileEndItem, fd: fd, size: size}
	if dedup {
		key := digestKey{size: size}
		key.h1, key.h2 = s.hash.sum()
		if d := s.seen[key]; d != nil {
			end.dupOf = d
			fd.frag, fd.fragOff = d.frag, d.fragOff
			return s.emit(end, false)
		}
		s.seen[key] = fd
	}
	if tail > 0 {
		if len(s.frag)+tail > s.bs {
			if err := s.emit(item{kind: fragItem, raw: s.frag}, true); err != nil {
				return err
			}
			s.frag = s.get()
			s.nfrag++
		}
		fd.frag, fd.fragOff = s.nfrag, uint32(len(s.frag))
		s.frag = append(s.frag, s.tailBuf...)
	}
	return s.emit(end, false)
}

func openNoatime(p string) (int, error) {
	// O_NOATIME spares a metadata write per file on file systems mounted
	// with atime; only the owner (or root) may ask for it. O_NONBLOCK: if
	// the file was swapped for a fifo, the open must not wait for a writer
	// (the caller then refuses it); regular files ignore the flag.
	const flags = unix.O_RDONLY | unix.O_CLOEXEC | unix.O_NOFOLLOW | unix.O_NONBLOCK
	fd, err := unix.Open(p, flags|unix.O_NOATIME, 0)
	if err == unix.EPERM {
		fd, err = unix.Open(p, flags, 0)
	}
	return fd, err
}

func preadFull(fd int, b []byte, off int64) error {
	for len(b) > 0 {
		n, err := unix.Pread(fd, b, off)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("file shrank while packing: %w", io.ErrUnexpectedEOF)
		}
		b, off = b[n:], off+int64(n)
	}
	return nil
}

// holeMap answers "is [off, off+n) entirely a hole?" with SEEK_DATA, so
// the holes of a sparse file are never read. Files with all their blocks
// allocated skip the lookups.
type holeMap struct {
	fd        int
	size      int64
	on        bool
	dataStart int64 // next data at or after the last query
	dataEnd   int64 // end of that data region
}

func newHoleMap(fd int, size int64, sparse bool) *holeMap {
	return &holeMap{fd: fd, size: size, on: sparse, dataStart: -1, dataEnd: -1}
}

func (h *holeMap) isHole(off, n int64) bool {
	if !h.on {
		return false
	}
	if off >= h.dataEnd {
		ds, err := unix.Seek(h.fd, off, unix.SEEK_DATA)
		if err == unix.ENXIO {
			h.dataStart, h.dataEnd = h.size, h.size
			return true
		}
		if err != nil {
			h.on = false // file system without SEEK_DATA: read everything
			return false
		}
		de, err := unix.Seek(h.fd, ds, unix.SEEK_HOLE)
		if err != nil {
			h.on = false
			return false
		}
		h.dataStart, h.dataEnd = ds, de
	}
	return h.dataStart >= off+n
}
