package image

import (
	"container/list"
	"encoding/binary"
	"fmt"
	"sync"
)

// metaBlock is one decompressed metadata block and where the next starts.
type metaBlock struct {
	pos  int64
	data []byte
	next int64
}

// metaCache is a small LRU of decompressed metadata blocks, keyed by
// position. Listing a directory reads every child's inode, and children
// share inode blocks, so without it a 15,000-entry tree would decompress
// the same blocks thousands of times.
type metaCache struct {
	mu  sync.Mutex
	max int
	m   map[int64]*list.Element
	l   list.List
}

func (c *metaCache) init(max int) {
	c.max = max
	c.m = make(map[int64]*list.Element)
}

func (c *metaCache) get(pos int64) *metaBlock {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.m[pos]; ok {
		c.l.MoveToFront(e)
		return e.Value.(*metaBlock)
	}
	return nil
}

func (c *metaCache) put(b *metaBlock) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[b.pos]; ok {
		return
	}
	c.m[b.pos] = c.l.PushFront(b)
	if c.l.Len() > c.max {
		e := c.l.Back()
		c.l.Remove(e)
		delete(c.m, e.Value.(*metaBlock).pos)
	}
}

// metadata returns the decompressed metadata block at pos, which must end
// by end.
func (r *Reader) metadata(pos, end int64) (*metaBlock, error) {
	if b := r.meta.get(pos); b != nil {
		if b.next > end {
			return nil, formatError("metadata block at %d runs past its table", pos)
		}
		return b, nil
	}
	if pos < SuperblockSize || pos > end-2 {
		return nil, formatError("metadata block at %d outside its table", pos)
	}
	var h [2]byte
	if err := readAt(r.r, h[:], pos); err != nil {
		return nil, fmt.Errorf("metadata block at %d: %w", pos, err)
	}
	hdr := binary.LittleEndian.Uint16(h[:])
	n := int64(hdr &^ MetadataUncompressed)
	if n == 0 || n > MetadataSize || pos+2+n > end {
		return nil, formatError("metadata block at %d: stored length %d", pos, n)
	}
	src := make([]byte, n)
	if err := readAt(r.r, src, pos+2); err != nil {
		return nil, fmt.Errorf("metadata block at %d: %w", pos, err)
	}
	data := src
	if hdr&MetadataUncompressed == 0 {
		var err error
		if data, err = r.dec.decompress(decodeBuf(MetadataSize), src, MetadataSize); err != nil {
			return nil, fmt.Errorf("metadata block at %d: %w", pos, err)
		}
		if len(data) == 0 {
			return nil, formatError("metadata block at %d is empty", pos)
		}
	}
	b := &metaBlock{pos: pos, data: data, next: pos + 2 + n}
	r.meta.put(b)
	return b, nil
}

// cursorPos is a position in a metadata table: the absolute position of a
// metadata block and an offset into its decompressed bytes.
type cursorPos struct {
	block int64
	off   int
}

// cursor reads a byte stream that continues across metadata blocks, with a
// sticky error as archive/tar's parsers have.
type cursor struct {
	r   *Reader
	pos cursorPos
	end int64
	err error
}

func (r *Reader) cursor(block int64, off int, end int64) *cursor {
	return &cursor{r: r, pos: cursorPos{block, off}, end: end}
}

// read returns the next n bytes. The slice aliases the cache when the bytes
// lie in one block, so callers must not modify or keep it.
func (c *cursor) read(n int) []byte {
	if c.err != nil {
		return nil
	}
	var out []byte
	for {
		b, err := c.r.metadata(c.pos.block, c.end)
		if err != nil {
			c.err = err
			return nil
		}
		if c.pos.off > len(b.data) {
			c.err = formatError("offset %d past metadata block at %d (%d bytes)", c.pos.off, b.pos, len(b.data))
			return nil
		}
		avail := b.data[c.pos.off:]
		if out == nil && len(avail) >= n {
			c.pos.off += n
			return avail[:n:n]
		}
		if out == nil {
			out = make([]byte, 0, n)
		}
		take := min(n-len(out), len(avail))
		out = append(out, avail[:take]...)
		c.pos.off += take
		if len(out) == n {
			return out
		}
		// Records continue in the next block; blocks strictly advance, so
		// this loop ends at the table's end at the latest.
		c.pos = cursorPos{b.next, 0}
	}
}

// decode fills v, one of the fixed-size on-disk records of format.go, from
// the stream.
func (c *cursor) decode(v any) {
	b := c.read(recordSize(v))
	if c.err == nil {
		decodeRecord(b, v)
	}
}
