// Package treegen builds file trees for parker's end-to-end tests and
// benchmarks, deterministically from a seed.
//
// Generate makes a tree full of the cases a squashfs writer gets wrong:
// empty files, files of exactly the block size and one byte either side,
// multi-block, zero-filled and sparse files (optionally one of 5 GiB), a very
// wide directory, deep nesting, hard links, symlinks of every kind, unicode,
// non-UTF-8 and 255-byte names, duplicate content, unusual modes, varied
// mtimes, fifos, sockets and (as root) device nodes and varied owners.
// GenerateAssets makes a large, realistic tree for benchmarks.
//
// The same seed and Options give the same names, contents, modes, owners and
// mtimes; Options.Shuffle changes only the order in which entries are created,
// so a writer's output can be checked for independence from directory order.
package treegen

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/sys/unix"
)

// Options select what Generate puts in the tree. The zero value gives a
// small tree of every kind of entry that needs no privilege.
type Options struct {
	// BlockSize is the squashfs block size the edge-case sizes are built
	// around; 0 means 128 KiB.
	BlockSize int
	// Wide, when > 0, adds wide/ with this many entries (20000 in the
	// end-to-end tests' tree).
	Wide int
	// Depth, when > 0, adds deep/ nested this many directories deep.
	Depth int
	// HugeSparse, when > 0, adds sparse/huge of this length (5 GiB in the
	// end-to-end tests' tree) with a few data regions in it, including the last byte.
	HugeSparse int64
	// Special adds a fifo and a socket, and, as root, a char and a block
	// device.
	Special bool
	// Root adds what only root can make or what breaks non-root readers:
	// device nodes (with Special), owners other than the caller's, a 0000
	// directory with content.
	Root bool
	// Owners, with Root and Wide, gives this many distinct uids and gids to
	// entries of wide/ (more than 2048 spills the id table over two
	// metadata blocks).
	Owners int
	// Shuffle creates the entries in a seed-independent shuffled order
	// (the result is otherwise identical).
	Shuffle bool
}

// Manifest summarises a generated tree.
type Manifest struct {
	Files, Dirs, Symlinks, Others int
	Bytes                         int64      // apparent size of all regular files
	HardLinks                     [][]string // groups of names of one inode
	Target                        string     // an executable regular file to pack with
}

// node is one planned entry.
type node struct {
	path  string // slash-separated, relative to the tree root
	kind  byte   // 'd' dir, 'f' file, 'l' symlink, 'h' hard link, 'p' fifo, 's' socket, 'c'/'b' device
	mode  uint32 // permission bits incl. setuid (0o4000), setgid, sticky
	mtime int64
	uid   int
	gid   int
	link  string // symlink target, or hard-link source path
	data  content
	rdev  uint64
}

// content describes a regular file's bytes without holding them.
type content struct {
	size    int64
	seed    uint64 // stream seed for random bytes
	kind    byte   // 'r' random, 'z' zeros, 't' text, 's' sparse
	regions [][2]int64
}

type plan struct {
	rng   *rand.Rand
	nodes []*node
	opt   Options
	now   int64
}

func (p *plan) mtime() int64 {
	// 2000-01-01 .. 2025-01-01, whole seconds: squashfs keeps seconds only.
	return 946684800 + p.rng.Int64N(788918400)
}

func (p *plan) add(n *node) *node {
	if n.mtime == 0 {
		n.mtime = p.mtime()
	}
	if n.mode == 0 && n.kind != 'h' {
		switch n.kind {
		case 'd':
			n.mode = 0o755
		case 'f':
			n.mode = 0o644
		case 'l':
			n.mode = 0o777
		default:
			n.mode = 0o644
		}
	}
	n.uid, n.gid = -1, -1
	p.nodes = append(p.nodes, n)
	return n
}

func (p *plan) dir(path string) *node { return p.add(&node{path: path, kind: 'd'}) }

func (p *plan) file(path string, c content) *node {
	if c.seed == 0 {
		c.seed = p.rng.Uint64()
	}
	return p.add(&node{path: path, kind: 'f', data: c})
}

func (p *plan) random(path string, size int64) *node {
	return p.file(path, content{size: size, kind: 'r'})
}

func (p *plan) symlink(path, target string) *node {
	return p.add(&node{path: path, kind: 'l', link: target})
}

func (p *plan) hardlink(path, src string) *node {
	return p.add(&node{path: path, kind: 'h', link: src})
}

// Generate creates the tree in dir (which must exist and should be empty).
func Generate(dir string, seed int64, opt Options) (*Manifest, error) {
	if opt.BlockSize == 0 {
		opt.BlockSize = 128 << 10
	}
	p := &plan{rng: rand.New(rand.NewPCG(uint64(seed), 0x7061726b6572)), opt: opt}
	bs := int64(opt.BlockSize)

	p.add(&node{path: "run.sh", kind: 'f', mode: 0o755, data: content{kind: 'x', size: int64(len(script))}})

	p.dir("sizes")
	sizes := map[int64]bool{} // with 4 KiB blocks, 4095..4097 come twice
	for _, sz := range []int64{0, 1, 4095, 4096, 4097, bs - 1, bs, bs + 1, 2*bs - 1, 2 * bs, 2*bs + 1, 10*bs + 123, 1<<20 + 7} {
		if sizes[sz] {
			continue
		}
		sizes[sz] = true
		p.random(fmt.Sprintf("sizes/r%d", sz), sz)
		p.file(fmt.Sprintf("sizes/t%d", sz), content{kind: 't', size: sz})
	}
	p.dir("zero")
	for _, sz := range []int64{1, bs - 1, bs, 3 * bs, 1<<20 + 5} {
		p.file(fmt.Sprintf("zero/z%d", sz), content{kind: 'z', size: sz})
	}
	// zeros then a random tail, and random then zero blocks then random
	p.file("zero/tail", content{kind: 's', size: 3*bs + 100, regions: [][2]int64{{3 * bs, 100}}})
	p.file("zero/middle", content{kind: 's', size: 5 * bs, regions: [][2]int64{{0, bs + 10}, {4 * bs, bs}}})

	p.dir("sparse")
	p.file("sparse/hole-start", content{kind: 's', size: 4*bs + 7, regions: [][2]int64{{3 * bs, bs + 7}}})
	p.file("sparse/hole-end", content{kind: 's', size: 8 * bs, regions: [][2]int64{{0, bs + 1}}})
	p.file("sparse/alternating", content{kind: 's', size: 16*bs + 3, regions: [][2]int64{{0, bs}, {2 * bs, bs}, {4*bs + 100, 50}, {8 * bs, 2 * bs}, {16 * bs, 3}}})
	p.file("sparse/all-hole", content{kind: 's', size: 10*bs + 1})
	if opt.HugeSparse > 0 {
		h := opt.HugeSparse
		p.file("sparse/huge", content{kind: 's', size: h, regions: [][2]int64{
			{0, 3*bs + 17}, {1<<30 + 12345, 2 * bs}, {h/2 - 1000, 4000}, {h - 100, 100},
		}})
	}

	p.dir("links")
	p.random("links/a", 5000)
	p.hardlink("links/a.2", "links/a")
	p.hardlink("links/a.3", "links/a")
	p.dir("links/sub")
	p.random("links/b", 3*bs+9)
	p.hardlink("links/sub/b.2", "links/b")
	p.file("links/empty", content{kind: 'r'})
	p.hardlink("links/empty.2", "links/empty")
	p.symlink("links/sym", "a")
	p.hardlink("links/sym.2", "links/sym")
	p.random("links/lonely", 5000) // same size as links/a, not a link
	p.dir("links/many")
	p.random("links/many/00", 3000)
	for i := 1; i < 40; i++ {
		p.hardlink(fmt.Sprintf("links/many/%02d", i), "links/many/00")
	}

	p.dir("symlinks")
	p.symlink("symlinks/relative", "../sizes/r1")
	p.symlink("symlinks/absolute", "/etc/passwd")
	p.symlink("symlinks/dangling", "does/not/exist")
	p.symlink("symlinks/to-dir", "../links")
	p.symlink("symlinks/dot", ".")
	p.symlink("symlinks/self-loop", "self-loop")
	p.symlink("symlinks/long", strings.Repeat("long/", 200)+"end")
	p.symlink("symlinks/max", strings.Repeat("m/", 2047)+"x") // 4095 bytes, PATH_MAX - 1
	p.symlink("symlinks/bytes", "tar\x80get-\xff")
	p.symlink("symlinks/unicode", "日本/ö")

	p.dir("names")
	for _, n := range []string{"héllo wörld", "日本語ファイル", "emoji-😀", "tab\tand space", "new\nline", ".hidden", "-dash", "a:b;c", "back\\slash", "quote'\"", "\x80\x81\x82", "bad-\xff\xfe.txt", "latin1-caf\xe9"} {
		p.random("names/"+n, int64(p.rng.IntN(300)))
	}
	p.file("names/"+strings.Repeat("n", 255), content{kind: 't', size: 77})
	p.file("names/"+strings.Repeat("é", 127)+"x", content{kind: 't', size: 5}) // 255 bytes
	p.dir("names/dir-\xc3\x28")
	p.random("names/dir-\xc3\x28/inside", 100)
	p.dir("names/" + strings.Repeat("d", 255))
	p.random("names/"+strings.Repeat("d", 255)+"/"+strings.Repeat("f", 255), 10)

	p.dir("dups")
	big := content{kind: 'r', size: 1 << 20, seed: p.rng.Uint64()}
	small := content{kind: 'r', size: 777, seed: p.rng.Uint64()}
	blk := content{kind: 't', size: 2 * bs, seed: p.rng.Uint64()}
	for i := range 3 {
		p.file(fmt.Sprintf("dups/big%d", i), big)
		p.file(fmt.Sprintf("dups/small%d", i), small)
		p.file(fmt.Sprintf("dups/blocks%d", i), blk)
	}
	// same size, one byte different at the end: must not be merged
	near := big
	near.kind = 'n'
	p.file("dups/big-near", near)
	// same whole blocks, different tails (fragments)
	tail := content{kind: 'r', size: 2*bs + 100, seed: p.rng.Uint64()}
	p.file("dups/tail-a", tail)
	tail.kind = 'n'
	p.file("dups/tail-b", tail)
	// equal content, one stored densely and one with holes
	p.file("dups/zeros-dense", content{kind: 'z', size: 4 * bs})
	p.file("dups/zeros-sparse", content{kind: 's', size: 4 * bs})

	// directory listings around the 256-entry header limit, and one whose
	// long names need many metadata blocks and a directory index
	for _, n := range []int{255, 256, 257} {
		d := fmt.Sprintf("dirsize/n%d", n)
		if n == 255 {
			p.dir("dirsize")
		}
		p.dir(d)
		for i := range n {
			p.file(fmt.Sprintf("%s/%03d", d, i), content{kind: 'r', size: int64(i % 3)})
		}
	}
	p.dir("dirsize/long")
	for i := range 600 {
		p.file(fmt.Sprintf("dirsize/long/%03d-%s", i, strings.Repeat("Long-Name_", 24)), content{kind: 'r'})
	}
	for i, n := range []string{"B", "a", "_", "Z", "é", "e", "-", ".x", "..a", "a.", "A", "~", "\x01", "\x7f"} {
		p.file(fmt.Sprintf("dirsize/%s", n), content{kind: 'r', size: int64(i)})
	}

	p.dir("modes")
	fileModes := []uint32{0o600, 0o755, 0o444, 0o777, 0o4755, 0o2755, 0o6711, 0o1644}
	if opt.Root {
		fileModes = append(fileModes, 0o000, 0o200) // unreadable but to root
	}
	for _, m := range fileModes {
		f := p.random(fmt.Sprintf("modes/f%04o", m), 100)
		f.mode = m
	}
	for _, m := range []uint32{0o700, 0o555, 0o1777, 0o2775, 0o711} {
		d := p.dir(fmt.Sprintf("modes/d%04o", m))
		d.mode = m
		p.random(d.path+"/x", 10)
	}
	if opt.Root {
		d := p.dir("modes/d0000")
		d.mode = 0
		p.random("modes/d0000/secret", 1000)
		// varied owners, including ones no user has
		for i, o := range [][2]int{{1000, 1000}, {65534, 65534}, {0, 100}, {123456, 7}, {4000000000, 3}} {
			n := p.random(fmt.Sprintf("modes/owner%d", i), 20)
			n.uid, n.gid = o[0], o[1]
		}
		l := p.symlink("modes/owned-link", "owner0")
		l.uid, l.gid = 4242, 4343
		d2 := p.dir("modes/owned-dir")
		d2.uid, d2.gid = 31337, 31338
	}
	p.dir("times")
	for i, mt := range []int64{1, 86400, 1 << 30, 2147483647, 2147483648, 4294967295} {
		f := p.random(fmt.Sprintf("times/t%d", i), 10)
		f.mtime = mt
	}

	if opt.Special {
		p.dir("special")
		p.add(&node{path: "special/fifo", kind: 'p', mode: 0o640})
		p.add(&node{path: "special/socket", kind: 's', mode: 0o755})
		p.hardlink("special/fifo.2", "special/fifo")
		if opt.Root {
			p.add(&node{path: "special/null", kind: 'c', mode: 0o666, rdev: unix.Mkdev(1, 3)})
			p.add(&node{path: "special/bigdev", kind: 'c', mode: 0o600, rdev: unix.Mkdev(300, 70000)})
			p.add(&node{path: "special/loop", kind: 'b', mode: 0o660, rdev: unix.Mkdev(7, 200)})
			p.hardlink("special/null.2", "special/null")
		}
	}

	if opt.Depth > 0 {
		d := "deep"
		p.dir(d)
		for i := range opt.Depth {
			d += fmt.Sprintf("/level-%02d", i)
			p.dir(d)
			if i%8 == 7 {
				p.random(d+"/file", int64(i*100))
			}
		}
		p.file(d+"/bottom", content{kind: 't', size: 1000})
		p.symlink(d+"/up", strings.Repeat("../", opt.Depth)+"run.sh")
	}
	if opt.Wide > 0 {
		p.dir("wide")
		for i := range opt.Wide {
			name := fmt.Sprintf("wide/entry-%05d", i)
			switch {
			case i%500 == 0:
				p.dir(name)
			case i%97 == 0:
				p.symlink(name, fmt.Sprintf("entry-%05d", i+1))
			default:
				n := p.random(name, int64(p.rng.IntN(64)))
				if opt.Root && opt.Owners > 0 {
					n.uid, n.gid = 5000+i%opt.Owners, 90000+(i*7)%opt.Owners
				}
			}
		}
	}
	return p.build(dir)
}

// script is the content of run.sh, the tree's executable target.
const script = "#!/bin/sh\necho \"hello from $(dirname \"$0\")\"\n"

// build creates the planned nodes under root. Directories come first, in
// plan order (parents before children); everything else in plan order or,
// with Shuffle, a shuffled one; then metadata, deepest paths first so that
// setting a directory's mtime is the last change to it.
func (p *plan) build(root string) (*Manifest, error) {
	m := &Manifest{Target: "run.sh"}
	var dirs, rest []*node
	for _, n := range p.nodes {
		if n.kind == 'd' {
			dirs = append(dirs, n)
		} else {
			rest = append(rest, n)
		}
	}
	if p.opt.Shuffle {
		r := rand.New(rand.NewPCG(uint64(len(rest)), 99))
		r.Shuffle(len(rest), func(i, j int) { rest[i], rest[j] = rest[j], rest[i] })
		// hard links need their source first: move them to the end
		sort.SliceStable(rest, func(i, j int) bool { return rest[i].kind != 'h' && rest[j].kind == 'h' })
	}
	for _, n := range dirs {
		if err := os.Mkdir(filepath.Join(root, n.path), 0o755); err != nil {
			return nil, err
		}
		m.Dirs++
	}
	groups := map[string][]string{}
	for _, n := range rest {
		full := filepath.Join(root, n.path)
		var err error
		switch n.kind {
		case 'f':
			err = writeContent(full, n.data)
			m.Files++
			m.Bytes += n.data.size
		case 'l':
			err = os.Symlink(n.link, full)
			m.Symlinks++
		case 'h':
			err = os.Link(filepath.Join(root, n.link), full)
			groups[n.link] = append(groups[n.link], n.path)
		case 'p':
			err = unix.Mkfifo(full, 0o600)
			m.Others++
		case 's':
			err = makeSocket(full)
			m.Others++
		case 'c':
			err = unix.Mknod(full, unix.S_IFCHR|0o600, int(n.rdev))
			m.Others++
		case 'b':
			err = unix.Mknod(full, unix.S_IFBLK|0o600, int(n.rdev))
			m.Others++
		}
		if err != nil {
			return nil, fmt.Errorf("treegen: %s: %w", n.path, err)
		}
	}
	for src, names := range groups {
		m.HardLinks = append(m.HardLinks, append([]string{src}, names...))
	}
	sort.Slice(m.HardLinks, func(i, j int) bool { return m.HardLinks[i][0] < m.HardLinks[j][0] })

	meta := append([]*node(nil), p.nodes...)
	sort.SliceStable(meta, func(i, j int) bool {
		return strings.Count(meta[i].path, "/") > strings.Count(meta[j].path, "/")
	})
	for _, n := range meta {
		if n.kind == 'h' {
			continue
		}
		full := filepath.Join(root, n.path)
		if n.uid >= 0 {
			if err := os.Lchown(full, n.uid, n.gid); err != nil {
				return nil, fmt.Errorf("treegen: %w", err)
			}
		}
		if n.kind != 'l' {
			// chmod after chown: chown clears setuid/setgid
			if err := unix.Chmod(full, n.mode); err != nil {
				return nil, fmt.Errorf("treegen: chmod %s: %w", n.path, err)
			}
		}
		ts := []unix.Timespec{unix.NsecToTimespec(n.mtime * 1e9), unix.NsecToTimespec(n.mtime * 1e9)}
		if err := unix.UtimesNanoAt(unix.AT_FDCWD, full, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return nil, fmt.Errorf("treegen: utimes %s: %w", n.path, err)
		}
	}
	// the root last: creating entries changed its mtime
	ts := []unix.Timespec{unix.NsecToTimespec(1700000000e9), unix.NsecToTimespec(1700000000e9)}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, root, ts, 0); err != nil {
		return nil, err
	}
	return m, nil
}

func makeSocket(path string) error {
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return err
	}
	l.SetUnlinkOnClose(false)
	return l.Close()
}
