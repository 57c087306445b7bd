package image

import (
	"encoding/binary"
	"fmt"
	"io"
	"runtime"
	"sync"
)

// scratch returns a BlockSize buffer for stored bytes; release with
// r.src.Put.
func (r *Reader) scratch() *[]byte {
	if b, ok := r.src.Get().(*[]byte); ok {
		return b
	}
	b := make([]byte, r.sb.BlockSize)
	return &b
}

// dataBlock reads the data or fragment block stored at pos with size word
// w into dst (cap ≥ BlockSize; see decodeBuf) and checks it decompresses to
// want bytes (-1: anything up to BlockSize, for fragment blocks).
func (r *Reader) dataBlock(dst []byte, pos uint64, w uint32, want int) ([]byte, error) {
	n := uint64(w & DataSizeMask)
	if n == 0 || n > uint64(r.sb.BlockSize) || pos < SuperblockSize || pos > uint64(r.size) || n > uint64(r.size)-pos {
		return nil, formatError("data block at %d, stored size %d", pos, n)
	}
	dst = dst[:0]
	var out []byte
	if w&DataUncompressed != 0 {
		out = dst[:n]
		if err := readAt(r.r, out, int64(pos)); err != nil {
			return nil, fmt.Errorf("data block at %d: %w", pos, err)
		}
	} else {
		sp := r.scratch()
		defer r.src.Put(sp)
		src := (*sp)[:n]
		if err := readAt(r.r, src, int64(pos)); err != nil {
			return nil, fmt.Errorf("data block at %d: %w", pos, err)
		}
		var err error
		if out, err = r.dec.decompress(dst, src, int(r.sb.BlockSize)); err != nil {
			return nil, fmt.Errorf("data block at %d: %w", pos, err)
		}
	}
	// The kernel fills whole pages from each block, so a block shorter or
	// longer than the file says would show stale or foreign bytes.
	if want >= 0 && len(out) != want {
		return nil, formatError("data block at %d holds %d bytes, want %d", pos, len(out), want)
	}
	if len(out) == 0 {
		return nil, formatError("empty data block at %d", pos)
	}
	return out, nil
}

// File reads the content of a regular file. Read and WriteTo share an
// offset and are not safe for concurrent use; ReadAt is.
type File struct {
	r      *Reader
	n      *Node
	bs     int64
	words  []uint32 // stored size word of each full (or, without a fragment, last) block
	ckpt   []uint64 // image position of every blockCheckpoint-th block
	tail   int64    // bytes in the fragment, 0 if none
	chunks int      // blocks plus the tail
	off    int64

	mu       sync.Mutex // guards the last decoded chunk, for small ReadAts
	lastIdx  int
	lastData []byte
}

// Open returns a reader for a regular file's content. It reads the block
// list, so errors there surface here.
func (r *Reader) Open(n *Node) (*File, error) {
	if n == nil || !n.Mode.IsRegular() {
		return nil, fmt.Errorf("image: open: not a regular file")
	}
	f := &File{r: r, n: n, bs: int64(r.sb.BlockSize), lastIdx: -1}
	nblocks := n.Size / f.bs
	if rem := n.Size % f.bs; rem != 0 {
		if n.fragment == NoFragment {
			nblocks++
		} else {
			if n.fragment >= r.sb.Fragments {
				return nil, formatError("%s: fragment %d of %d", n.Path, n.fragment, r.sb.Fragments)
			}
			if uint64(n.fragOffset)+uint64(rem) > uint64(r.sb.BlockSize) {
				return nil, formatError("%s: fragment offset %d + %d", n.Path, n.fragOffset, rem)
			}
			f.tail = rem
		}
	}
	if nblocks > MaxFileBlocks {
		return nil, formatError("%s: %d bytes in blocks of %d: more than the %d blocks a file may have",
			n.Path, n.Size, f.bs, MaxFileBlocks)
	}
	// The block list is 4 bytes per block in the inode table, so a count the
	// table cannot hold fails while reading; grow the slice as we go rather
	// than trust the count up front.
	c := r.cursor(n.blockList.block, n.blockList.off, r.inodeEnd)
	f.words = make([]uint32, 0, min(nblocks, blockListChunk))
	pos := n.blocksStart
	for int64(len(f.words)) < nblocks {
		k := int(min(nblocks-int64(len(f.words)), blockListChunk))
		b := c.read(4 * k)
		if c.err != nil {
			return nil, fmt.Errorf("%s: block list: %w", n.Path, c.err)
		}
		for j := 0; j < k; j++ {
			w := binary.LittleEndian.Uint32(b[4*j:])
			if len(f.words)%blockCheckpoint == 0 {
				f.ckpt = append(f.ckpt, pos)
			}
			f.words = append(f.words, w)
			if w == 0 {
				continue // sparse: nothing stored
			}
			sz := uint64(w & DataSizeMask)
			if sz == 0 || sz > uint64(f.bs) || pos < SuperblockSize || pos > uint64(r.size) || sz > uint64(r.size)-pos {
				return nil, formatError("%s: block %d at %d, stored size %d", n.Path, len(f.words)-1, pos, sz)
			}
			pos += sz
		}
	}
	f.chunks = len(f.words)
	if f.tail > 0 {
		f.chunks++
	}
	return f, nil
}

// Size returns the file's length.
func (f *File) Size() int64 { return f.n.Size }

// chunkLen is the decompressed length of chunk i.
func (f *File) chunkLen(i int) int {
	return int(min(f.bs, f.n.Size-int64(i)*f.bs))
}

// dataBytes is the file's length less its holes: what writing it out
// takes.
func (f *File) dataBytes() int64 {
	n := f.n.Size
	for i, w := range f.words {
		if w == 0 {
			n -= int64(f.chunkLen(i))
		}
	}
	return n
}

// sparse reports whether chunk i is a hole.
func (f *File) sparse(i int) bool { return i < len(f.words) && f.words[i] == 0 }

// chunk decodes chunk i (a block, or the fragment tail) into buf (cap ≥
// BlockSize; see decodeBuf).
func (f *File) chunk(i int, buf []byte) ([]byte, error) {
	want := f.chunkLen(i)
	if i >= len(f.words) {
		var out []byte
		err := f.tailView(func(b []byte) error {
			out = append(buf[:0], b...)
			return nil
		})
		return out, err
	}
	w := f.words[i]
	if w == 0 {
		b := buf[:want]
		clear(b)
		return b, nil
	}
	pos := f.ckpt[i/blockCheckpoint]
	for j := i / blockCheckpoint * blockCheckpoint; j < i; j++ {
		pos += uint64(f.words[j] & DataSizeMask)
	}
	b, err := f.r.dataBlock(buf, pos, w, want)
	if err != nil {
		return nil, fmt.Errorf("%s: block %d: %w", f.n.Path, i, err)
	}
	return b, nil
}

// tailView calls fn with the file's tail, the part of it kept in a
// fragment block, as a slice of the cached block, which fn must neither
// change nor keep.
func (f *File) tailView(fn func([]byte) error) error {
	e, err := f.r.fragment(f.n.fragment)
	if err != nil {
		return fmt.Errorf("%s: %w", f.n.Path, err)
	}
	defer f.r.frag.release(e)
	if int64(f.n.fragOffset)+f.tail > int64(len(e.b)) {
		return formatError("%s: tail [%d, +%d) past fragment of %d bytes", f.n.Path, f.n.fragOffset, f.tail, len(e.b))
	}
	return fn(e.b[f.n.fragOffset : int64(f.n.fragOffset)+f.tail])
}

// ReadAt implements io.ReaderAt.
func (f *File) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("image: negative offset")
	}
	n := 0
	for n < len(p) {
		if off >= f.n.Size {
			return n, io.EOF
		}
		i := int(off / f.bs)
		f.mu.Lock()
		if f.lastIdx != i {
			if f.lastData == nil {
				f.lastData = decodeBuf(int(f.bs))[:f.bs]
			}
			b, err := f.chunk(i, f.lastData)
			if err != nil {
				f.lastIdx = -1
				f.mu.Unlock()
				return n, err
			}
			f.lastIdx, f.lastData = i, b[:cap(b)]
		}
		c := copy(p[n:], f.lastData[off%f.bs:f.chunkLen(i)])
		f.mu.Unlock()
		n += c
		off += int64(c)
	}
	return n, nil
}

// Read implements io.Reader.
func (f *File) Read(p []byte) (int, error) {
	n, err := f.ReadAt(p, f.off)
	f.off += int64(n)
	if err == io.EOF && n > 0 {
		err = nil
	}
	return n, err
}

// WriteTo implements io.WriterTo: it writes the rest of the file to w,
// decompressing blocks on GOMAXPROCS goroutines while keeping their order.
func (f *File) WriteTo(w io.Writer) (int64, error) {
	return f.writeTo(w, 0)
}

func (f *File) writeTo(w io.Writer, workers int) (int64, error) {
	if f.off >= f.n.Size {
		return 0, nil
	}
	first := int(f.off / f.bs)
	skip := f.off % f.bs
	var total int64
	sink := func(out []byte, err error) error {
		if err != nil {
			return err
		}
		out = out[skip:]
		skip = 0
		m, err := w.Write(out)
		total += int64(m)
		f.off += int64(m)
		if err == nil && m != len(out) {
			err = io.ErrShortWrite
		}
		return err
	}
	if f.chunks-first <= 1 || workers == 1 {
		buf := decodeBuf(int(f.bs))
		for i := first; i < f.chunks; i++ {
			out, err := f.chunk(i, buf)
			if err == nil {
				err = sink(out, nil)
			}
			if err != nil {
				return total, err
			}
		}
		return total, nil
	}
	p := newBlockQueue(workers, int(f.bs))
	for i := first; i < f.chunks; i++ {
		i := i
		if p.submit(func(buf []byte) ([]byte, error) { return f.chunk(i, buf) }, sink) != nil {
			break
		}
	}
	// wait runs the last sinks, which add to total: read it only after.
	err := p.wait()
	return total, err
}

// blockQueue decodes blocks on the shared pipeline (pipeline.go) and hands
// each result to its sink on one goroutine, in submission order, so output
// stays sequential while decompression uses every core. The pipeline's
// depth is twice the worker count, so at most that many decoded blocks, and
// the one a sink is consuming, are in memory at once.
type blockQueue struct {
	p    *pipeline[blockTask]
	pool sync.Pool // decode buffers of the block size
	done chan struct{}
	mu   sync.Mutex
	err  error
}

// A blockTask is one unit of work: decode (on a worker) produces bytes into
// a pooled buffer, sink (on the consumer, in order) consumes them. sink is
// called for every submitted task, with the first error seen so far once
// anything failed, so it can release resources (close files).
type blockTask struct {
	decode func(buf []byte) ([]byte, error)
	sink   func(out []byte, err error) error
	out    []byte
	buf    *[]byte // from the pool, returned after sink
	err    error
}

func newBlockQueue(workers, bufSize int) *blockQueue {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	q := &blockQueue{done: make(chan struct{})}
	q.pool.New = func() any { b := decodeBuf(bufSize); return &b }
	q.p = newPipeline(workers, 2*workers, q.decode)
	go q.consume()
	return q
}

func (q *blockQueue) failed() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.err
}

func (q *blockQueue) fail(err error) {
	q.mu.Lock()
	if q.err == nil {
		q.err = err
	}
	q.mu.Unlock()
}

func (q *blockQueue) decode(t *blockTask) {
	if q.failed() == nil {
		t.buf = q.pool.Get().(*[]byte)
		t.out, t.err = t.decode((*t.buf)[:0])
	}
}

func (q *blockQueue) consume() {
	defer close(q.done)
	for {
		t, ok := q.p.next()
		if !ok {
			return
		}
		if t.err != nil {
			q.fail(t.err)
		}
		err := q.failed()
		if t.sink != nil {
			if serr := t.sink(t.out, err); serr != nil && err == nil {
				q.fail(serr)
			}
		}
		if t.buf != nil {
			q.pool.Put(t.buf)
		}
	}
}

// submit queues a task; decode may be nil for a sink that only finishes up.
// It returns the queue's error, if any, so the producer can stop early; the
// task is queued either way so its sink runs.
func (q *blockQueue) submit(decode func([]byte) ([]byte, error), sink func([]byte, error) error) error {
	q.p.submit(blockTask{decode: decode, sink: sink}, decode != nil)
	return q.failed()
}

// wait drains the queue and returns the first error.
func (q *blockQueue) wait() error {
	q.p.close()
	<-q.done
	return q.failed()
}
