package cache

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// A packed file carries parker's helper as one LZ4 block, which a packed
// file unpacks into memory each time it starts it: a third of the start of
// the FUSE rung. The cache keeps one copy of each helper, unpacked, named
// by its SHA-256 as the trailer records it (trailer.HelperDigest), shared
// by every packed file that carries it; the C stub starts the helper from
// it when it is there (stub/cstub/helper.c: a regular file of the user's,
// not writable by others, of the helper's size), and the FUSE server,
// started from memory, writes it (PutHelper) once the run is over.
//
//	DIR/helper-<sha256>                   the copy, read-only; its mtime is the last use
//	DIR/.tmp-helper-<sha256>-<8 hex>      a copy being written (or left by a killed one)
//
// A copy is never in use as an entry is: a running helper keeps the file
// it was started from, so GC may remove a copy whenever its rules say.
const HelperPrefix = "helper-"

// HelperName is the name of the copy of the helper whose SHA-256 unpacked
// is digest.
func HelperName(digest [32]byte) string { return HelperPrefix + hex.EncodeToString(digest[:]) }

// parseHelperName returns the digest a copy's name holds.
func parseHelperName(name string) (digest [32]byte, ok bool) {
	h, found := strings.CutPrefix(name, HelperPrefix)
	if !found || len(h) != 64 {
		return digest, false
	}
	_, err := hex.Decode(digest[:], []byte(h))
	return digest, err == nil
}

// PutHelper writes src, the helper unpacked, as the copy named
// HelperName(digest) in the cache directory open as dir, unless a good one
// is there (one the C stub starts, with the right digest: another run's
// server may have written it meanwhile), in place of any other: into a
// temporary file beside it, locked while it is written (so that GC leaves
// it), checked against digest as it is read, synced, made read-only, then
// renamed into place. It removes the temporary file on every failure, a
// full disk included.
func PutHelper(dir *os.File, digest [32]byte, src io.Reader) (err error) {
	name := HelperName(digest)
	d := int(dir.Fd())
	if goodCopy(d, name, digest) {
		return nil
	}
	suffix := make([]byte, 4)
	rand.Read(suffix)
	tmp := tmpPrefix + name + "-" + hex.EncodeToString(suffix) // see tempOf
	fd, err := unix.Openat(d, tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("cache: write the helper's copy: %w", err)
	}
	f := os.NewFile(uintptr(fd), tmp)
	defer func() {
		f.Close()
		if err != nil {
			unix.Unlinkat(d, tmp, 0)
		}
	}()
	if err := flock(f, unix.LOCK_EX); err != nil {
		return err
	}
	h := sha256.New()
	if _, err := io.Copy(f, io.TeeReader(src, h)); err != nil {
		return fmt.Errorf("cache: write the helper's copy: %w", err)
	}
	if string(h.Sum(nil)) != string(digest[:]) {
		return errors.New("cache: the helper does not match its digest: not kept")
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("cache: write the helper's copy: %w", err)
	}
	if err := f.Chmod(0o500); err != nil {
		return fmt.Errorf("cache: write the helper's copy: %w", err)
	}
	if err := unix.Renameat(d, tmp, d, name); err != nil {
		return fmt.Errorf("cache: write the helper's copy: %w", err)
	}
	return nil
}

// goodCopy tells whether the file name in directory d is a copy the C
// stub starts (startable) and holds the helper whose SHA-256 is digest.
func goodCopy(d int, name string, digest [32]byte) bool {
	fd, err := unix.Openat(d, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return false
	}
	f := os.NewFile(uintptr(fd), name)
	defer f.Close()
	var st unix.Stat_t
	if unix.Fstat(fd, &st) != nil || !startable(&st, st.Size) {
		return false
	}
	h := sha256.New()
	_, err = io.Copy(h, f)
	return err == nil && string(h.Sum(nil)) == string(digest[:])
}

// startable tells whether a file is one the C stub would start as the
// helper's copy (stub/cstub/helper.c): a regular file of this user's, its
// to execute, not writable by others, of the helper's size.
func startable(st *unix.Stat_t, size int64) bool {
	return st.Mode&unix.S_IFMT == unix.S_IFREG && int(st.Uid) == os.Geteuid() && st.Mode&0o100 != 0 &&
		st.Mode&0o022 == 0 && st.Size == size
}

// Helper returns the path of the copy of the helper whose SHA-256 is
// digest and whose size unpacked is size, and whether it is one the C
// stub starts (startable).
func (c *Cache) Helper(digest [32]byte, size int64) (string, bool) {
	p := filepath.Join(c.Dir, HelperName(digest))
	var st unix.Stat_t
	return p, unix.Lstat(p, &st) == nil && startable(&st, size)
}
