package image

// The file data of an extraction is decoded and written by a pool of
// workers, block by block in any order, each block with pwrite at its own
// offset of a descriptor the walk opened: the walk, on its goroutine,
// creates every entry and queues the blocks of each regular file, and goes
// on while the workers decode. Writing at offsets needs no order between
// the blocks, so no decoded block waits for another, and each worker needs
// one buffer: what is in memory is the workers' buffers and the few
// fragment blocks the Reader caches, whatever the queue's length. The
// queue bounds the files open at once.
//
// The worker that writes a file's last block sets its length (for a
// trailing hole), owner, mode and times and closes it. The mode was
// chosen by the walk, when the file was created, so warnings come from
// the walk alone.

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// writeQueue is how many blocks per worker wait in the queue: enough that
// the walk, creating the files, rarely waits for the workers, nor they for
// it; the files those blocks belong to are open meanwhile.
const writeQueue = 16

// writers decodes and writes the blocks of the files being extracted.
type writers struct {
	x    *extractor
	jobs chan blockJob
	wg   sync.WaitGroup
	mu   sync.Mutex
	err  error
}

// A blockJob is block i of a file being written.
type blockJob struct {
	o *fileOut
	i int
}

// fileOut is a regular file being written.
type fileOut struct {
	f    *File
	fd   int
	mode uint32       // see extractor.mode
	left atomic.Int64 // blocks queued and not yet written, +1 while the walk queues them
}

func newWriters(x *extractor, workers int) *writers {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	w := &writers{x: x, jobs: make(chan blockJob, writeQueue*workers)}
	bs := int(x.r.sb.BlockSize)
	for range workers {
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			buf := decodeBuf(bs)
			for j := range w.jobs {
				if w.failed() == nil {
					w.setErr(j.o.write(j.i, buf))
				}
				w.done(j.o)
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

// done counts off one block (or the walk's hold) of o, and finishes the
// file after the last.
func (w *writers) done(o *fileOut) {
	if o.left.Add(-1) == 0 {
		w.setErr(w.finish(o))
	}
}

// wait returns, once every queued block is written, the first error of the
// workers. Only the walk calls it, when it queues no more.
func (w *writers) wait() error {
	close(w.jobs)
	w.wg.Wait()
	return w.failed()
}

// finish sets the length and attributes of a file whose blocks are all
// written, and closes it; after an error anywhere, it only closes it.
func (w *writers) finish(o *fileOut) error {
	defer unix.Close(o.fd)
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
	return w.x.attrs(o.fd, k, o.mode)
}

// write decodes chunk i of the file into buf (or finds it in a cached
// fragment block) and writes it at its offset.
func (o *fileOut) write(i int, buf []byte) error {
	out, err := o.f.chunkView(i, buf)
	if err != nil {
		return err
	}
	off := int64(i) * o.f.bs
	for len(out) > 0 {
		n, err := unix.Pwrite(o.fd, out, off)
		if err != nil {
			return sizeErr("write", o.f.n, err)
		}
		out, off = out[n:], off+int64(n)
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
	fd, err := unix.Openat(dirfd, k.Name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return createErr("create", k, err)
	}
	o := &fileOut{f: f, fd: fd, mode: x.mode(k, fd)}
	// The walk's hold keeps the file open until every block is queued,
	// whichever order the workers take them in.
	o.left.Store(1)
	for i := 0; i < f.chunks && x.w.failed() == nil; i++ {
		if f.sparse(i) {
			continue // left as a hole; finish sets the length
		}
		o.left.Add(1)
		x.w.jobs <- blockJob{o, i}
	}
	x.w.done(o)
	return nil
}
