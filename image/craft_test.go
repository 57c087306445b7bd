package image

// Crafting images by hand: the writer makes an honest, uncompressed image,
// and these patch its tables in place into what no honest tool writes.
// listOutside shows whether extracting one touched anything beside its
// destination.

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// rawImage writes es with the writer, uncompressed so that its tables can
// be patched in place, owners kept.
func rawImage(t *testing.T, es []Entry, bs int) []byte {
	t.Helper()
	opt := DefaultOptions()
	opt.Compression, opt.Level, opt.BlockSize, opt.KeepOwner = None, 0, bs, true
	p, _ := writeImage(t, es, opt)
	img, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func readerOf(t *testing.T, img []byte) *Reader {
	t.Helper()
	r, err := NewReader(bytes.NewReader(img), int64(len(img)))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// testTime is the mtime of crafted entries.
const testTime = 1234567890

// dirEnt is a directory entry.
func dirEnt(path string, mode fs.FileMode) Entry {
	return Entry{Path: path, Mode: fs.ModeDir | mode, ModTime: testTime}
}

// fileEntry stores data at path, from a new source file.
func fileEntry(t *testing.T, path string, mode fs.FileMode, data []byte) Entry {
	t.Helper()
	src := filepath.Join(t.TempDir(), "src")
	if err := os.WriteFile(src, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return Entry{Path: path, Mode: mode, Size: int64(len(data)), Source: src, ModTime: testTime}
}

// sparseEntry stores a file of size bytes that is all hole.
func sparseEntry(t *testing.T, path string, size int64) Entry {
	t.Helper()
	src := filepath.Join(t.TempDir(), "src")
	f, err := os.Create(src)
	if err == nil {
		err = f.Truncate(size)
		f.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
	return Entry{Path: path, Mode: 0o644, Size: size, Source: src, ModTime: testTime}
}

func symlinkEntry(path, target string) Entry {
	return Entry{Path: path, Mode: fs.ModeSymlink | 0o777, Link: target, ModTime: testTime}
}

// patchDirName overwrites the one stored directory entry name from with
// to, of the same length.
func patchDirName(t *testing.T, img []byte, from, to string) {
	t.Helper()
	r := readerOf(t, img)
	dir := img[r.dirStart:r.dirEnd]
	if bytes.Count(dir, []byte(from)) != 1 || len(from) != len(to) {
		t.Fatalf("name %q found %d times in the directory table", from, bytes.Count(dir, []byte(from)))
	}
	copy(dir[bytes.Index(dir, []byte(from)):], to)
}

// inodeAt returns where the inode of path starts in an uncompressed image,
// checking that an extended file inode would fit in its metadata block.
func inodeAt(t *testing.T, img []byte, path string) int {
	t.Helper()
	r := readerOf(t, img)
	n, err := r.Lookup(path)
	if err != nil {
		t.Fatal(err)
	}
	block, off := splitInodeRef(n.ref)
	hdr := int(r.inodeStart) + int(block)
	h := binary.LittleEndian.Uint16(img[hdr:])
	if h&MetadataUncompressed == 0 || int(off)+inodeHeaderSize+lfileInodeSize > int(h&^MetadataUncompressed) {
		t.Fatalf("%s: inode at %d+%d in block header %#x: not patchable", path, block, off, h)
	}
	return hdr + 2 + int(off)
}

// pointEntryAt makes the directory entry named name (in a listing whose
// header's inode block is the first, as in any small image) refer to the
// inode of target.
func pointEntryAt(t *testing.T, img []byte, name, target string) {
	t.Helper()
	r := readerOf(t, img)
	tn, err := r.Lookup(target)
	if err != nil {
		t.Fatal(err)
	}
	block, off := splitInodeRef(tn.ref)
	if block != 0 {
		t.Fatalf("%s in inode block %d, not the first: the test's premise is gone", target, block)
	}
	dir := img[r.dirStart:r.dirEnd]
	i := bytes.Index(dir, []byte(name))
	if i < dirEntrySize || bytes.Count(dir, []byte(name)) != 1 {
		t.Fatalf("entry %q not found once", name)
	}
	binary.LittleEndian.PutUint16(dir[i-dirEntrySize:], off) // dirEntry.Offset
}

// hostileParent makes the directory an extraction goes into: it holds
// outside/keep, which symlinks in the images point at.
func hostileParent(t *testing.T) (parent, outside string) {
	t.Helper()
	parent = t.TempDir()
	outside = filepath.Join(parent, "outside")
	if err := os.Mkdir(outside, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(outside, "keep"), []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	return parent, outside
}

// listOutside lists everything below parent except dest and what is in
// it: name, mode, size, mtime and symlink target.
func listOutside(t *testing.T, parent, dest string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.WalkDir(parent, func(p string, d fs.DirEntry, err error) error {
		switch {
		case err != nil:
			return err
		case p == parent:
			return nil
		case p == dest && d.IsDir():
			return filepath.SkipDir
		case p == dest:
			return nil
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(parent, p)
		fmt.Fprintf(&b, "%s %v %d %d", rel, fi.Mode(), fi.Size(), fi.ModTime().UnixNano())
		if fi.Mode()&fs.ModeSymlink != 0 {
			l, _ := os.Readlink(p)
			fmt.Fprintf(&b, " -> %s", l)
		}
		b.WriteByte('\n')
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}
