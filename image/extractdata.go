package image

// The file data of an extraction is decoded and written by a pool of
// workers, block by block in any order, each block with pwrite at its own
// offset of a descriptor the walk opened: the walk, on its goroutine,
// creates every entry and queues the blocks of each regular file, and goes
// on while the workers decode. Writing at offsets needs no order between
// the blocks, so no decoded block waits for another, and each worker needs
// one buffer: what is in memory is the workers' buffers and the few
// fragment blocks the Reader caches, whatever the queue's length.
//
// The tails of files kept in one fragment block, which the walk meets one
// after another (small files are packed together), go to a worker as one
// job: it decodes the block once and writes them all, where one job a tail
// would have the other workers wait for the block the first one decodes.
//
// The worker that writes a file's last block sets its length (for a
// trailing hole), owner, mode and times and closes it. The mode was
// chosen by the walk, when the file was created, so warnings come from
// the walk alone. The files open at once are bounded (maxOpen).

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

const (
	// writeQueue is how many jobs per worker wait in the queue: enough
	// that the walk, creating the files, rarely waits for the workers, nor
	// they for it.
	writeQueue = 16
	// tailBatch bounds the tails in one job, and so the files the walk
	// holds open for a job it has not queued yet.
	tailBatch = 32
	// maxOpen bounds the files open for writing at once: those of the
	// queued jobs, of the job being gathered and of the workers'. It must
	// be more than tailBatch: the walk waits for a slot while it holds the
	// files of the job it gathers, so others must be able to finish.
	maxOpen = 256
)

// writers decodes and writes the blocks of the files being extracted.
type writers struct {
	x     *extractor
	jobs  chan blockJob
	open  chan struct{} // a token per file open for writing
	tails []*fileOut    // the tails being gathered, all in one fragment block
	wg    sync.WaitGroup
	mu    sync.Mutex
	err   error
}

// A blockJob is block i of file o, or the tails of the files in tails.
type blockJob struct {
	o     *fileOut
	i     int
	tails []*fileOut
}

// fileOut is a regular file being written.
type fileOut struct {
	f     *File
	fd    int
	chmod bool         // made with a mode other than its own
	mode  uint32       // its own, when chmod: see extractor.mode
	left  atomic.Int64 // blocks queued and not yet written, +1 while the walk queues them
}

func newWriters(x *extractor, workers int) *writers {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	w := &writers{x: x, jobs: make(chan blockJob, writeQueue*workers), open: make(chan struct{}, maxOpen)}
	bs := int(x.r.sb.BlockSize)
	for range workers {
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			buf := decodeBuf(bs)
			for j := range w.jobs {
				if j.o != nil {
					w.write(j.o, j.i, buf)
				}
				for _, o := range j.tails {
					w.write(o, o.f.chunks-1, buf)
				}
			}
		}()
	}
	return w
}

func (w *writers) failed() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// setErr records err, if it is the first.
func (w *writers) setErr(err error) {
	if err == nil {
		return
	}
	w.mu.Lock()
	if w.err == nil {
		w.err = err
	}
	w.mu.Unlock()
}

// write writes chunk i of o, unless something failed, and counts it off.
func (w *writers) write(o *fileOut, i int, buf []byte) {
	if w.failed() == nil {
		w.setErr(o.write(i, buf))
	}
	w.done(o)
}

// done counts off one block (or the walk's hold) of o, and finishes the
// file after the last.
func (w *writers) done(o *fileOut) {
	if o.left.Add(-1) == 0 {
		w.setErr(w.finish(o))
	}
}

// tail queues the tail of o, in a fragment block, with those of the files
// before it in the same block.
func (w *writers) tail(o *fileOut) {
	if len(w.tails) > 0 && (len(w.tails) == tailBatch || w.tails[0].f.n.fragment != o.f.n.fragment) {
		w.flush()
	}
	w.tails = append(w.tails, o)
}

// flush queues the tails gathered so far as one job.
func (w *writers) flush() {
	if len(w.tails) > 0 {
		w.jobs <- blockJob{tails: w.tails}
		w.tails = nil
	}
}

// wait returns, once every queued block is written, the first error of the
// workers. Only the walk calls it, when it queues no more.
func (w *writers) wait() error {
	w.flush()
	close(w.jobs)
	w.wg.Wait()
	return w.failed()
}

// finish sets the length and attributes of a file whose blocks are all
// written, and closes it; after an error anywhere, it only closes it.
func (w *writers) finish(o *fileOut) error {
	defer func() {
		unix.Close(o.fd)
		<-w.open
	}()
	if w.failed() != nil {
		return nil
	}
	f, k := o.f, o.f.n
	// Only a trailing hole leaves the file short: every block written had
	// exactly its expected length.
	if f.chunks > 0 && f.sparse(f.chunks-1) {
		if err := unix.Ftruncate(o.fd, k.Size); err != nil {
			return sizeErr("truncate", k, err)
		}
	}
	if o.chmod {
		return w.x.attrs(o.fd, k, o.mode)
	}
	ts := times(k)
	if err := futimens(o.fd, &ts); err != nil {
		return pathErr("utimes", k, err)
	}
	return nil
}

// write decodes chunk i of the file into buf, or finds it in a cached
// fragment block, and writes it at its offset.
func (o *fileOut) write(i int, buf []byte) error {
	if i >= len(o.f.words) {
		return o.f.tailView(func(b []byte) error { return o.pwrite(b, int64(i)*o.f.bs) })
	}
	out, err := o.f.chunk(i, buf)
	if err != nil {
		return err
	}
	return o.pwrite(out, int64(i)*o.f.bs)
}

func (o *fileOut) pwrite(b []byte, off int64) error {
	for len(b) > 0 {
		n, err := unix.Pwrite(o.fd, b, off)
		if err != nil {
			return sizeErr("write", o.f.n, err)
		}
		b, off = b[n:], off+int64(n)
	}
	return nil
}

// file creates a regular file and queues its blocks for the writers.
func (x *extractor) file(dirfd int, k *Node) error {
	f, err := x.r.Open(k)
	if err != nil {
		return err
	}
	if x.opt.MaxBytes > 0 {
		if x.bytes += f.dataBytes(); x.bytes > x.opt.MaxBytes {
			return fmt.Errorf("%w: %s takes the file data past the limit of %d bytes", ErrTooLarge, k.Path, x.opt.MaxBytes)
		}
	}
	// A file whose mode the umask leaves whole is made with it, which
	// spares a chmod: not one with setuid, setgid or sticky bits (a write
	// by a caller without CAP_FSETID clears the first two, and x.mode
	// decides on them with the file open), nor where owners are restored
	// (chown clears them too). Were the umask changed meanwhile, the file
	// could only get fewer bits than its mode, never more.
	create, chmod := uint32(0o600), true
	if m := perm(k.Mode); !x.chown && x.umask >= 0 && m&^0o777 == 0 {
		if m = x.mode(k, -1); m&uint32(x.umask) == 0 {
			create, chmod = m, false
		}
	}
	x.w.open <- struct{}{}
	fd, err := unix.Openat(dirfd, k.Name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, create)
	if err != nil {
		<-x.w.open
		return createErr("create", k, err)
	}
	o := &fileOut{f: f, fd: fd, chmod: chmod}
	if chmod {
		o.mode = x.mode(k, fd)
	}
	// The walk's hold keeps the file open until every block is queued,
	// whichever order the workers take them in.
	o.left.Store(1)
	for i := 0; i < len(f.words) && x.w.failed() == nil; i++ {
		if f.sparse(i) {
			continue // left as a hole; finish sets the length
		}
		o.left.Add(1)
		x.w.jobs <- blockJob{o: o, i: i}
	}
	if f.tail > 0 && x.w.failed() == nil {
		o.left.Add(1)
		x.w.tail(o)
	}
	x.w.done(o)
	return nil
}
