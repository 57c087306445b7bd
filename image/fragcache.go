package image

import (
	"fmt"
	"sync"
)

// fragCache keeps the last few decompressed fragment blocks: small files
// share them, and are stored (and so read) one after another. A block is
// decompressed once even when several goroutines want it at the same time:
// the first decodes it, the others wait for it. The buffers of blocks no
// longer cached nor held are decoded into again, not left to the garbage
// collector: an extraction goes through hundreds of blocks of 128 KiB.
type fragCache struct {
	mu   sync.Mutex
	max  int
	size int          // a buffer's capacity: the block size, see decodeBuf
	ents []*fragEntry // oldest first
	free [][]byte
}

// A fragEntry is a fragment block, cached, being loaded or still held.
type fragEntry struct {
	i    uint32
	done chan struct{} // closed when b and err are set
	b    []byte
	err  error
	// refs counts the cache's own hold, while the entry is listed, and
	// the gets not yet released; the buffer is reused at 0.
	refs    int
	waiters int // gets that found it loading (tests count them)
}

func (c *fragCache) init(max, blockSize int) { c.max, c.size = max, blockSize }

// get returns fragment block i, held until release, calling load for it
// (with a buffer to decode into) unless it is cached or being loaded. A
// failed load is not kept: the next get tries again.
func (c *fragCache) get(i uint32, load func(dst []byte) ([]byte, error)) (*fragEntry, error) {
	c.mu.Lock()
	for _, e := range c.ents {
		if e.i == i {
			e.refs++
			select {
			case <-e.done:
			default:
				e.waiters++
			}
			c.mu.Unlock()
			<-e.done
			if e.err != nil {
				c.release(e)
				return nil, e.err
			}
			return e, nil
		}
	}
	e := &fragEntry{i: i, done: make(chan struct{}), refs: 2}
	if len(c.ents) == c.max {
		c.drop(c.ents[0])
	}
	c.ents = append(c.ents, e)
	var dst []byte
	if n := len(c.free); n > 0 {
		dst, c.free = c.free[n-1], c.free[:n-1]
	} else {
		dst = decodeBuf(c.size)
	}
	c.mu.Unlock()

	e.b, e.err = load(dst[:0])
	close(e.done)
	if e.err != nil {
		c.mu.Lock()
		c.drop(e)
		c.mu.Unlock()
		c.release(e)
		return nil, e.err
	}
	return e, nil
}

// drop takes e off the list, if it is there; c.mu is held.
func (c *fragCache) drop(e *fragEntry) {
	for j, f := range c.ents {
		if f == e {
			c.ents = append(c.ents[:j], c.ents[j+1:]...)
			c.unref(e)
			return
		}
	}
}

// release ends a get's hold of e.
func (c *fragCache) release(e *fragEntry) {
	c.mu.Lock()
	c.unref(e)
	c.mu.Unlock()
}

// unref drops a hold of e, keeping its buffer for the next load after the
// last; c.mu is held.
func (c *fragCache) unref(e *fragEntry) {
	if e.refs--; e.refs == 0 && cap(e.b) >= c.size && len(c.free) < c.max {
		c.free = append(c.free, e.b[:0])
		e.b = nil
	}
}

// fragment returns fragment block i, decompressed, held until
// r.frag.release.
func (r *Reader) fragment(i uint32) (*fragEntry, error) {
	return r.frag.get(i, func(dst []byte) ([]byte, error) {
		if i >= r.sb.Fragments {
			return nil, formatError("fragment %d of %d", i, r.sb.Fragments)
		}
		c := r.cursor(int64(r.fragIndex[i/fragmentsPerMetablock]), 0, r.fragEnd)
		c.read(int(i%fragmentsPerMetablock) * fragmentEntrySize)
		var e fragmentEntry
		c.decode(&e)
		if c.err != nil {
			return nil, fmt.Errorf("fragment %d: %w", i, c.err)
		}
		b, err := r.dataBlock(dst, e.Start, e.Size, -1)
		if err != nil {
			return nil, fmt.Errorf("fragment %d: %w", i, err)
		}
		return b, nil
	})
}
