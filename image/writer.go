package image

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"runtime"
	"sort"
	"strings"
)

// Writer builds a SquashFS 4.0 image from Entries. Add the entries in any
// order; Finish sorts them, streams file data through parallel compressors
// and writes the tables. The image is laid out as mksquashfs lays it out:
//
//	superblock | compressor options | data and fragment blocks |
//	inode table | directory table | fragment table | id table | padding
//
// Output is deterministic: the same entries give the same bytes whatever
// the order of Add calls or the number of workers.
type Writer struct {
	w      io.WriterAt
	base   int64
	opt    Options
	comp   compressor
	nodes  map[string]*node
	root   *node
	finish bool
}

// node is one name in the tree; hard-link aliases share their primary's
// inode.
type node struct {
	name     string
	e        Entry
	implicit bool // a parent directory that had no Entry of its own
	children []*node
	primary  *node // for hard-link aliases: the node that owns the inode
	nlink    uint32

	ino  uint32 // inode number
	ref  uint64 // inode reference, once written
	data *fileData
}

func (n *node) isDir() bool { return n.e.Mode.IsDir() }

// fileData is where a regular file's content ended up.
type fileData struct {
	start    uint64   // image offset of the first stored block
	sizes    []uint32 // one size word per full block
	frag     uint32   // fragment index or NoFragment
	fragOff  uint32
	sparse   uint64 // bytes stored as sparse blocks
	dupOf    *fileData
	startPos int64 // writer position before this file's blocks (for rewinding duplicates)
}

// NewWriter returns a Writer that writes the image into w at byte offset base
// onward, bytes [base, base+Stats.Size). w may hold other data before base.
// Bytes after base+Stats.Size may hold leftovers of discarded duplicate
// blocks: the caller truncates or overwrites what follows.
func NewWriter(w io.WriterAt, base int64, opt Options) (*Writer, error) {
	if err := opt.Validate(); err != nil {
		return nil, err
	}
	comp, err := newCompressor(&opt)
	if err != nil {
		return nil, err
	}
	return &Writer{w: w, base: base, opt: opt, comp: comp, nodes: map[string]*node{}}, nil
}

func workers(o *Options) int {
	if o.Workers > 0 {
		return o.Workers
	}
	return runtime.GOMAXPROCS(0)
}

// Add records one entry. Parent directories missing from the entries are
// created (0755, owner 0:0, the newest mtime). Entries are not read until
// Finish.
func (w *Writer) Add(e Entry) error {
	if w.finish {
		return errors.New("image: Add after Finish")
	}
	p, err := cleanPath(e.Path)
	if err != nil {
		return err
	}
	e.Path = p
	switch t := e.Mode.Type(); {
	case t == 0:
		if e.Size < 0 || (e.Size > 0 && e.Source == "") {
			return fmt.Errorf("image: %s: regular file needs a size and a source", p)
		}
		if bs := int64(w.opt.BlockSize); (e.Size+bs-1)/bs > MaxFileBlocks {
			return fmt.Errorf("image: %s: %d bytes is more than the %d blocks of %d bytes parker's reader takes in one file; a larger block size holds more",
				p, e.Size, MaxFileBlocks, bs)
		}
	case t == fs.ModeSymlink:
		if e.Link == "" || len(e.Link) > 4095 {
			return fmt.Errorf("image: %s: symlink target of length %d", p, len(e.Link))
		}
	case t == fs.ModeDir, t == fs.ModeNamedPipe, t == fs.ModeSocket, t == fs.ModeDevice, t == fs.ModeDevice|fs.ModeCharDevice:
	default:
		return fmt.Errorf("image: %s: unsupported file type %v", p, t)
	}
	if n := w.nodes[p]; n != nil && !n.implicit {
		return fmt.Errorf("image: %s: added twice", p)
	}
	if p == "." {
		if !e.Mode.IsDir() {
			return errors.New("image: the root must be a directory")
		}
		w.nodeAt(".").set(e)
		return nil
	}
	parent := w.nodeAt(path.Dir(p))
	if !parent.isDir() {
		return fmt.Errorf("image: %s: parent %s is not a directory", p, parent.e.Path)
	}
	n := w.nodes[p]
	if n == nil {
		n = &node{name: path.Base(p)}
		w.nodes[p] = n
		parent.children = append(parent.children, n)
	} else if !e.Mode.IsDir() && len(n.children) > 0 {
		return fmt.Errorf("image: %s: has entries below it but is not a directory", p)
	}
	n.set(e)
	return nil
}

func (n *node) set(e Entry) { n.e = e; n.implicit = false }

// nodeAt returns the directory node for p, creating implicit directories.
func (w *Writer) nodeAt(p string) *node {
	if n := w.nodes[p]; n != nil {
		return n
	}
	n := &node{name: path.Base(p), implicit: true, e: Entry{Path: p, Mode: fs.ModeDir | 0o755}}
	w.nodes[p] = n
	if p == "." {
		w.root = n
	} else {
		parent := w.nodeAt(path.Dir(p))
		parent.children = append(parent.children, n)
	}
	return n
}

// cleanPath validates a relative, slash-separated path and returns it in
// canonical form: no empty, "." or ".." components, no NUL, names of at
// most DirMaxName bytes.
func cleanPath(p string) (string, error) {
	p = strings.TrimPrefix(p, "./")
	if p == "" || p == "." {
		return ".", nil
	}
	if strings.HasPrefix(p, "/") {
		return "", fmt.Errorf("image: %q: absolute path", p)
	}
	p = strings.TrimSuffix(p, "/")
	for _, c := range strings.Split(p, "/") {
		switch {
		case c == "" || c == "." || c == "..":
			return "", fmt.Errorf("image: %q: bad path component %q", p, c)
		case len(c) > DirMaxName:
			return "", fmt.Errorf("image: %q: name longer than %d bytes", p, DirMaxName)
		case strings.IndexByte(c, 0) >= 0:
			return "", fmt.Errorf("image: %q: NUL in name", p)
		}
	}
	return p, nil
}

// Finish writes the image and returns its statistics. The Writer cannot be
// used afterwards.
func (w *Writer) Finish() (Stats, error) {
	if w.finish {
		return Stats{}, errors.New("image: Finish called twice")
	}
	w.finish = true
	root := w.nodeAt(".")
	t := w.plan(root)
	st := Stats{Inodes: int(t.inodes), Files: len(t.files)}

	// Data first: inodes need to know where their blocks went.
	pos := int64(SuperblockSize)
	out := newOutput(w.w, w.base, pos)
	if opts := w.comp.options(); opts != nil {
		out.write(frameMeta(opts, true))
	}
	ds, err := w.writeData(out, t.files)
	if err != nil {
		return Stats{}, err
	}
	st.InputBytes, st.Duplicates, st.Fragments = ds.input, ds.dups, len(ds.frags)

	// Then the metadata tables, in the order the kernel checks them.
	tb := newTables(w, t)
	tb.writeInodes(root, t.inodes+1)
	if tb.tooManyIDs {
		return Stats{}, fmt.Errorf("image: more than %d distinct owners (uids and gids); pack without --keep-owner", maxIDs)
	}
	sb := Superblock{
		Magic:        Magic,
		Inodes:       t.inodes,
		ModTime:      t.sbTime,
		BlockSize:    uint32(w.opt.BlockSize),
		Fragments:    uint32(len(ds.frags)),
		Compression:  w.comp.id(),
		BlockLog:     uint16(log2(w.opt.BlockSize)),
		Flags:        w.flags(ds),
		VersionMajor: VersionMajor,
		VersionMinor: VersionMinor,
		RootInode:    root.ref,
	}
	sb.InodeTableStart = uint64(out.pos)
	out.write(tb.inodes.finish())
	sb.DirTableStart = uint64(out.pos)
	out.write(tb.dirs.finish())

	frags := newMetaWriter(w.comp)
	for _, f := range ds.frags {
		frags.write(le(fragmentEntry{Start: f.start, Size: f.size}))
	}
	fragBlocks := frags.finish()
	sb.FragmentTableStart = uint64(out.pos) + uint64(len(fragBlocks))
	out.write(fragBlocks)
	out.write(indexOf(frags.starts, uint64(out.pos)-uint64(len(fragBlocks))))
	sb.ExportTableStart = NoTable

	ids := newMetaWriter(w.comp)
	for _, id := range tb.ids {
		ids.write(binary.LittleEndian.AppendUint32(nil, id))
	}
	idBlocks := ids.finish()
	sb.IDTableStart = uint64(out.pos) + uint64(len(idBlocks))
	out.write(idBlocks)
	out.write(indexOf(ids.starts, uint64(out.pos)-uint64(len(idBlocks))))
	sb.IDCount = uint16(len(tb.ids))
	sb.XattrTableStart = NoTable

	sb.BytesUsed = uint64(out.pos)
	if pad := out.pos % PadSize; pad != 0 {
		out.write(make([]byte, PadSize-pad))
	}
	st.Size = out.pos
	if err := out.flush(); err != nil {
		return Stats{}, err
	}
	if _, err := w.w.WriteAt(le(sb), w.base); err != nil {
		return Stats{}, fmt.Errorf("write superblock: %w", err)
	}
	return st, nil
}

func (w *Writer) flags(ds *dataStats) uint16 {
	f := uint16(FlagNoXattrs | FlagAlwaysFragments | FlagDuplicates)
	if w.comp.options() != nil {
		f |= FlagCompressorOptions
	}
	if _, ok := w.comp.(noneCompressor); ok {
		f |= FlagUncompressedInodes | FlagUncompressedData | FlagUncompressedFragments |
			FlagUncompressedXattrs | FlagUncompressedIDs
	}
	return f
}

// tree is the plan of an image: inode numbers and the order files are read.
type tree struct {
	inodes uint32
	files  []*node // regular-file inodes in the order their data is stored
	sbTime uint32
}

// plan sorts every directory, resolves hard links, and numbers inodes in
// the order they will be written: depth first, each directory after its
// children, so the root gets the highest number (as with mksquashfs).
func (w *Writer) plan(root *node) *tree {
	t := &tree{}
	newest := int64(0)
	for _, n := range w.nodes {
		if !n.implicit && n.e.ModTime > newest {
			newest = n.e.ModTime
		}
	}
	clampTime := func(m int64) uint32 {
		if w.opt.ClampTime >= 0 && m > w.opt.ClampTime {
			m = w.opt.ClampTime
		}
		return uint32(min(max(m, 0), 1<<32-1))
	}
	if w.opt.ClampTime >= 0 {
		t.sbTime = clampTime(w.opt.ClampTime)
	} else {
		t.sbTime = clampTime(newest)
	}
	type linkKey struct{ dev, ino uint64 }
	links := map[linkKey]*node{}
	var walk func(d *node)
	walk = func(d *node) {
		sort.Slice(d.children, func(i, j int) bool { return d.children[i].name < d.children[j].name })
		for _, c := range d.children {
			c.e.ModTime = int64(clampTime(c.e.ModTime))
			if c.implicit {
				c.e.ModTime = int64(t.sbTime)
			}
			if c.isDir() {
				walk(c)
				continue
			}
			if c.e.Ino != 0 {
				k := linkKey{c.e.Dev, c.e.Ino}
				if p := links[k]; p != nil {
					c.primary = p
					p.nlink++
					continue
				}
				links[k] = c
			}
			c.nlink = 1
			t.inodes++
			c.ino = t.inodes
			if c.e.Mode.IsRegular() {
				t.files = append(t.files, c)
			}
		}
		t.inodes++
		d.ino = t.inodes
	}
	root.e.ModTime = int64(clampTime(root.e.ModTime))
	if root.implicit {
		root.e.ModTime = int64(t.sbTime)
	}
	walk(root)
	return t
}

func log2(n int) int {
	l := 0
	for n > 1 {
		n >>= 1
		l++
	}
	return l
}

// indexOf encodes a table index: the absolute image offsets of the table's
// metadata blocks, stored raw right after them. starts are relative to
// tableStart.
func indexOf(starts []uint64, tableStart uint64) []byte {
	var b []byte
	for _, s := range starts {
		b = binary.LittleEndian.AppendUint64(b, tableStart+s)
	}
	return b
}

// output buffers sequential writes to an io.WriterAt and can rewind, which
// is how duplicate files discard the blocks they had already written.
type output struct {
	w        io.WriterAt
	base     int64
	pos      int64 // image offset of the next byte
	bufStart int64 // image offset of buf[0]
	buf      []byte
	err      error
}

const outputBuffer = 4 << 20

func newOutput(w io.WriterAt, base, pos int64) *output {
	return &output{w: w, base: base, pos: pos, bufStart: pos, buf: make([]byte, 0, outputBuffer)}
}

func (o *output) write(p []byte) {
	if len(o.buf)+len(p) > cap(o.buf) {
		o.flush()
	}
	if len(p) > cap(o.buf) {
		o.writeAt(p, o.pos)
		o.pos += int64(len(p))
		o.bufStart = o.pos
		return
	}
	o.buf = append(o.buf, p...)
	o.pos += int64(len(p))
}

func (o *output) writeAt(p []byte, off int64) {
	if o.err != nil {
		return
	}
	if _, err := o.w.WriteAt(p, o.base+off); err != nil {
		o.err = fmt.Errorf("write image: %w", err)
	}
}

// rewind moves the write position back to pos, discarding what followed.
func (o *output) rewind(pos int64) {
	if pos >= o.bufStart {
		o.buf = o.buf[:pos-o.bufStart]
	} else {
		o.buf = o.buf[:0]
		o.bufStart = pos
	}
	o.pos = pos
}

func (o *output) flush() error {
	if len(o.buf) > 0 {
		o.writeAt(o.buf, o.bufStart)
		o.bufStart += int64(len(o.buf))
		o.buf = o.buf[:0]
	}
	return o.err
}

// metaWriter packs a byte stream into metadata blocks, compressing each
// full block as soon as it fills, so the stored position of the block being
// filled is always known: inode references and directory indexes need it.
type metaWriter struct {
	comp   compressor
	raw    []byte
	out    []byte
	starts []uint64 // stored offset of each block, relative to the table
	total  uint64   // uncompressed bytes written
	tmp    []byte
}

func newMetaWriter(c compressor) *metaWriter { return &metaWriter{comp: c} }

// pos returns the stored offset of the block being filled and the offset
// within its uncompressed bytes.
func (m *metaWriter) pos() (uint64, uint16) { return uint64(len(m.out)), uint16(len(m.raw)) }

func (m *metaWriter) write(p []byte) {
	m.raw = append(m.raw, p...)
	m.total += uint64(len(p))
	for len(m.raw) >= MetadataSize {
		m.flushBlock(m.raw[:MetadataSize])
		m.raw = append(m.raw[:0], m.raw[MetadataSize:]...)
	}
}

func (m *metaWriter) flushBlock(b []byte) {
	m.starts = append(m.starts, uint64(len(m.out)))
	c, err := m.comp.compress(m.tmp, b)
	if err != nil || c == nil {
		m.out = append(m.out, frameMeta(b, true)...)
		return
	}
	m.tmp = c
	m.out = append(m.out, frameMeta(c, false)...)
}

func (m *metaWriter) finish() []byte {
	if len(m.raw) > 0 {
		m.flushBlock(m.raw)
		m.raw = nil
	}
	return m.out
}

// frameMeta frames one stored metadata block with its 16-bit header.
func frameMeta(b []byte, raw bool) []byte {
	h := uint16(len(b))
	if raw {
		h |= MetadataUncompressed
	}
	return append(binary.LittleEndian.AppendUint16(nil, h), b...)
}

// UnixPerm converts Go's FileMode to the 12 permission bits of st_mode,
// as stored in inodes (with setuid, setgid and sticky). The type lives in
// the inode type; like mksquashfs we never store type bits in the mode,
// and recent kernels refuse inodes whose mode carries them.
func UnixPerm(m fs.FileMode) uint16 {
	v := uint16(m.Perm())
	if m&fs.ModeSetuid != 0 {
		v |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		v |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		v |= 0o1000
	}
	return v
}
