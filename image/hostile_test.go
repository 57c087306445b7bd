package image

// Hostile images, extracted as a cache entry will be: each must be refused
// with one line or neutralised with one warning line, and nothing may
// appear or change outside the destination, which is checked by listing
// its parent before and after, and again once RemoveTree has removed the
// destination. The images are written by the writer, uncompressed, and
// patched by hand where no honest tool would write them.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// extractHostile extracts img into a new directory of parent, checks that
// nothing outside it changed, calls check, then removes the destination
// with RemoveTree and checks that it is gone and the rest unchanged.
func extractHostile(t *testing.T, parent string, img []byte, opt ExtractOptions,
	check func(dest string, err error, warnings []string)) {
	t.Helper()
	dest, err := os.MkdirTemp(parent, "entry-")
	if err != nil {
		t.Fatal(err)
	}
	before := listOutside(t, parent, dest)
	var warnings []string
	opt.Warn = func(s string) { warnings = append(warnings, s) }
	err = readerOf(t, img).Extract(dest, opt)
	if after := listOutside(t, parent, dest); after != before {
		t.Errorf("outside the destination, before:\n%safter:\n%s", before, after)
	}
	check(dest, err, warnings)
	if err := RemoveTree(dest); err != nil {
		t.Errorf("RemoveTree: %v", err)
	}
	if _, err := os.Lstat(dest); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("destination after RemoveTree: %v", err)
	}
	if after := listOutside(t, parent, dest); after != before {
		t.Errorf("outside the destination, before:\n%safter RemoveTree:\n%s", before, after)
	}
}

// oneLine checks that err is one line.
func oneLine(t *testing.T, err error) {
	t.Helper()
	if err != nil && strings.ContainsRune(err.Error(), '\n') {
		t.Errorf("error of several lines: %q", err)
	}
}

// TestHostileRefused: images that try to write outside the destination,
// loop, or claim absurd sizes fail with one line, trusted or not.
func TestHostileRefused(t *testing.T) {
	const bs = MinBlockSize
	for _, tc := range []struct {
		name  string
		build func(t *testing.T, outside string) []byte
		opt   ExtractOptions // added to both runs
		is    error
		says  string
	}{
		{
			// "d -> outside", then "d/pwned": following the link would
			// write outside.
			name: "symlink then directory through it",
			build: func(t *testing.T, outside string) []byte {
				img := rawImage(t, []Entry{symlinkEntry("evil-aaaa", outside),
					fileEntry(t, "evil-aaab/pwned", 0o644, []byte("x"))}, bs)
				patchDirName(t, img, "evil-aaab", "evil-aaaa")
				return img
			},
			is: ErrFormat, says: "evil-aaaa: the name appears twice in its directory",
		},
		{
			name: "relative symlink then directory through it",
			build: func(t *testing.T, outside string) []byte {
				img := rawImage(t, []Entry{symlinkEntry("evil-aaaa", "../outside"),
					fileEntry(t, "evil-aaab/pwned", 0o644, []byte("x"))}, bs)
				patchDirName(t, img, "evil-aaab", "evil-aaaa")
				return img
			},
			is: ErrFormat, says: "evil-aaaa: the name appears twice",
		},
		{
			// The same through a file: O_EXCL refuses a link in the way.
			name: "symlink then file through it",
			build: func(t *testing.T, outside string) []byte {
				img := rawImage(t, []Entry{symlinkEntry("evil-aaaa", filepath.Join(outside, "keep")),
					fileEntry(t, "evil-aaab", 0o644, []byte("pwned"))}, bs)
				patchDirName(t, img, "evil-aaab", "evil-aaaa")
				return img
			},
			is: ErrFormat, says: "evil-aaaa: the name appears twice",
		},
		{
			name: "dot-dot",
			build: func(t *testing.T, outside string) []byte {
				img := rawImage(t, []Entry{fileEntry(t, "zq/pwned", 0o644, []byte("x"))}, bs)
				patchDirName(t, img, "zq", "..")
				return img
			},
			is: ErrFormat, says: `invalid name ".."`,
		},
		{
			name: "dot",
			build: func(t *testing.T, outside string) []byte {
				img := rawImage(t, []Entry{fileEntry(t, "Q/pwned", 0o644, []byte("x"))}, bs)
				patchDirName(t, img, "Q", ".")
				return img
			},
			is: ErrFormat, says: `invalid name "."`,
		},
		{
			name: "slash up and out",
			build: func(t *testing.T, outside string) []byte {
				img := rawImage(t, []Entry{fileEntry(t, "abcdefghij", 0o644, []byte("pwned"))}, bs)
				patchDirName(t, img, "abcdefghij", "../outside")
				return img
			},
			is: ErrFormat, says: `invalid name "../outside"`,
		},
		{
			name: "directory containing itself",
			build: func(t *testing.T, outside string) []byte {
				img := rawImage(t, []Entry{dirEnt("a", 0o755), dirEnt("a/self", 0o755),
					fileEntry(t, "a/f", 0o644, []byte("x"))}, bs)
				pointEntryAt(t, img, "self", "a")
				return img
			},
			is: ErrFormat, says: "a/self: directory reached twice",
		},
		{
			name: "directory containing the root",
			build: func(t *testing.T, outside string) []byte {
				img := rawImage(t, []Entry{dirEnt("a/up", 0o755), fileEntry(t, "a/f", 0o644, []byte("x"))}, bs)
				pointEntryAt(t, img, "up", ".")
				return img
			},
			is: ErrFormat, says: "a/up: directory reached twice",
		},
		{
			// All holes: legitimate, and stored in a few bytes whatever
			// the size, so 2^62 costs the image nothing.
			name: "file of 2^62 bytes",
			build: func(t *testing.T, outside string) []byte {
				img := rawImage(t, []Entry{sparseEntry(t, "big", 1<<20)}, bs)
				binary.LittleEndian.PutUint64(img[inodeAt(t, img, "big")+inodeHeaderSize+8:], 1<<62) // lfileInode.FileSize
				return img
			},
			is: ErrFormat, says: "big: 4611686018427387904 bytes in blocks of 4096: more than the 16777216 blocks a file may have",
		},
		{
			name: "file one byte past MaxFileBlocks",
			build: func(t *testing.T, outside string) []byte {
				img := rawImage(t, []Entry{sparseEntry(t, "big", 1<<20)}, bs)
				binary.LittleEndian.PutUint64(img[inodeAt(t, img, "big")+inodeHeaderSize+8:], MaxFileBlocks*bs+1)
				return img
			},
			is: ErrFormat, says: "more than the 16777216 blocks",
		},
		{
			// Sixteen files of 1 MiB, stored once: a small image that
			// expands many times over.
			name: "expands past MaxBytes",
			build: func(t *testing.T, outside string) []byte {
				var es []Entry
				data := pseudoText(1, 1<<20)
				for i := 0; i < 16; i++ {
					es = append(es, fileEntry(t, fmt.Sprintf("z%02d", i), 0o644, data))
				}
				img := rawImage(t, es, bs)
				if len(img) > 3<<20 {
					t.Fatalf("image of %d bytes: duplicates were not stored once", len(img))
				}
				return img
			},
			opt: ExtractOptions{MaxBytes: 4<<20 + 5},
			is:  ErrTooLarge, says: "image too large: z04 takes the file data past the limit of 4194309 bytes",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			parent, outside := hostileParent(t)
			img := tc.build(t, outside)
			for _, untrusted := range []bool{true, false} {
				opt := tc.opt
				opt.Untrusted = untrusted
				extractHostile(t, parent, img, opt, func(dest string, err error, warnings []string) {
					if !errors.Is(err, tc.is) || !strings.Contains(fmt.Sprint(err), tc.says) {
						t.Errorf("untrusted %v: Extract: %v; want %v saying %q", untrusted, err, tc.is, tc.says)
					}
					oneLine(t, err)
					t.Logf("untrusted %v: %v", untrusted, err)
					if len(warnings) > 0 {
						t.Errorf("warnings: %q", warnings)
					}
				})
			}
		})
	}
}

// TestHostileNeutralised: device nodes, setuid and setgid bits and stored
// owners are what an image asks root for. Untrusted, Extract gives none of
// them, with one warning line for each kind whatever the count. Trusted,
// root gets devices, owners with KeepOwner, and setuid and setgid where a
// file's owner is the stored one; a file that would belong to anyone else
// loses them, with a warning naming both owners.
func TestHostileNeutralised(t *testing.T) {
	root := os.Geteuid() == 0
	es := []Entry{
		dirEnt("dev", 0o755),
		{Path: "dev/null", Mode: fs.ModeDevice | fs.ModeCharDevice | 0o666, Rdev: unix.Mkdev(1, 3), ModTime: testTime, Dev: 1, Ino: 1},
		{Path: "dev/null-too", Mode: fs.ModeDevice | fs.ModeCharDevice | 0o666, Rdev: unix.Mkdev(1, 3), ModTime: testTime, Dev: 1, Ino: 1},
		{Path: "dev/sda", Mode: fs.ModeDevice | 0o660, Rdev: unix.Mkdev(8, 0), ModTime: testTime},
		fileEntry(t, "bin/su", fs.ModeSetuid|0o755, []byte("#!/bin/sh\n")),
		fileEntry(t, "bin/sg", fs.ModeSetgid|0o755, []byte("#!/bin/sh\n")),
		fileEntry(t, "bin/both", fs.ModeSetuid|fs.ModeSetgid|0o755, []byte("#!/bin/sh\n")),
		dirEnt("shared", fs.ModeSetgid|0o775),
		fileEntry(t, "shared/f", 0o644, []byte("x")),
		fileEntry(t, "sticky/f", fs.ModeSticky|0o644, []byte("x")),
	}
	for i := range es {
		es[i].UID, es[i].GID = 1234, 4321
	}
	// As parker packs by default: owners 0:0.
	es = append(es, fileEntry(t, "bin/root-su", fs.ModeSetuid|fs.ModeSetgid|0o755, []byte("#!/bin/sh\n")))
	img := rawImage(t, es, MinBlockSize)
	parent, _ := hostileParent(t)
	euid, egid := uint32(os.Geteuid()), uint32(os.Getegid())

	for _, tc := range []struct {
		name     string
		opt      ExtractOptions
		warnings []string // exactly, as root
		anyUser  bool     // the same warnings when not root
	}{
		{
			name:    "untrusted",
			opt:     ExtractOptions{Untrusted: true, KeepOwner: true},
			anyUser: true,
			warnings: []string{
				"bin/both: setuid/setgid bits dropped, here and wherever else the image sets them (untrusted image)",
				"dev/null: device node not created, nor any other (untrusted image)",
			},
		},
		{
			name: "trusted, owners kept",
			opt:  ExtractOptions{KeepOwner: true},
		},
		{
			name: "trusted, owners not kept",
			opt:  ExtractOptions{},
			warnings: []string{
				"bin/both: setuid and setgid bits dropped: the file belongs to 0:0 here, not to 1234:4321 as in the image",
				"bin/sg: setgid bit dropped: the file belongs to 0:0 here, not to 1234:4321 as in the image",
				"bin/su: setuid bit dropped: the file belongs to 0:0 here, not to 1234:4321 as in the image",
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			chown := root && tc.opt.KeepOwner && !tc.opt.Untrusted
			extractHostile(t, parent, img, tc.opt, func(dest string, err error, warnings []string) {
				if err != nil {
					t.Fatalf("Extract: %v", err)
				}
				if (root || tc.anyUser) && strings.Join(warnings, "\n") != strings.Join(tc.warnings, "\n") {
					t.Errorf("warnings:\n%s\nwant:\n%s", strings.Join(warnings, "\n"), strings.Join(tc.warnings, "\n"))
				}
				for _, w := range warnings {
					if strings.ContainsRune(w, '\n') {
						t.Errorf("warning of several lines: %q", w)
					}
				}
				for _, e := range es {
					fi, err := os.Lstat(filepath.Join(dest, e.Path))
					if e.Mode&fs.ModeDevice != 0 && !(root && !tc.opt.Untrusted) {
						if !errors.Is(err, fs.ErrNotExist) {
							t.Errorf("%s: %v, %v; want no device node", e.Path, fi, err)
						}
						continue
					}
					if err != nil {
						t.Error(err)
						continue
					}
					st := fi.Sys().(*syscall.Stat_t)
					uid, gid := euid, egid
					if chown {
						uid, gid = e.UID, e.GID
					}
					want := e.Mode
					if tc.opt.Untrusted {
						want &^= fs.ModeSetuid | fs.ModeSetgid
					} else if e.Mode.IsRegular() {
						if uid != e.UID {
							want &^= fs.ModeSetuid
						}
						if gid != e.GID {
							want &^= fs.ModeSetgid
						}
					}
					if fi.Mode() != want || st.Uid != uid || st.Gid != gid {
						t.Errorf("%s: %v %d:%d; want %v %d:%d", e.Path, fi.Mode(), st.Uid, st.Gid, want, uid, gid)
					}
					if e.Rdev != 0 && st.Rdev != e.Rdev {
						t.Errorf("%s: device %#x, want %#x", e.Path, st.Rdev, e.Rdev)
					}
				}
			})
		})
	}
}

// TestExtractFileTooLarge: a file longer than the destination takes (here
// through RLIMIT_FSIZE; EFBIG from a file system that cannot hold it is the
// same error) fails with one line naming the file and its size. It is a
// sparse 2 GiB file: the image holds its block list, nothing more.
func TestExtractFileTooLarge(t *testing.T) {
	const size = 2 << 30
	img := rawImage(t, []Entry{fileEntry(t, "a", 0o644, []byte("x")), sparseEntry(t, "b-huge", size)}, DefaultBlockSize)
	if len(img) > 1<<20 {
		t.Fatalf("image of %d bytes for a sparse file", len(img))
	}
	parent, _ := hostileParent(t)
	extractHostile(t, parent, img, ExtractOptions{Untrusted: true}, func(dest string, err error, warnings []string) {
		if err != nil {
			t.Fatalf("without a limit: %v", err)
		}
		fi, err := os.Stat(filepath.Join(dest, "b-huge"))
		if err != nil {
			t.Fatal(err)
		}
		if blocks := fi.Sys().(*syscall.Stat_t).Blocks; fi.Size() != size || blocks != 0 {
			t.Errorf("b-huge: %d bytes, %d blocks allocated; want %d, none", fi.Size(), blocks, int64(size))
		}
	})

	var old unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_FSIZE, &old); err != nil {
		t.Fatal(err)
	}
	lim := old
	lim.Cur = 1 << 30
	if err := unix.Setrlimit(unix.RLIMIT_FSIZE, &lim); err != nil {
		t.Fatal(err)
	}
	defer unix.Setrlimit(unix.RLIMIT_FSIZE, &old)
	extractHostile(t, parent, img, ExtractOptions{Untrusted: true}, func(dest string, err error, warnings []string) {
		const want = "b-huge: 2147483648 bytes is more than the destination's file system or the file size limit (ulimit -f) allows: file too large"
		if !errors.Is(err, unix.EFBIG) || err.Error() != want {
			t.Errorf("Extract: %v\nwant: %s", err, want)
		}
		oneLine(t, err)
	})
}

// TestExtractDiskFull fills a 1 MiB tmpfs: Extract fails with one line,
// and RemoveTree frees everything it wrote.
func TestExtractDiskFull(t *testing.T) {
	needRoot(t, "mounts a tmpfs")
	mnt := t.TempDir()
	if err := unix.Mount("tmpfs", mnt, "tmpfs", 0, "size=1m,mode=0755"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(mnt, 0); err != nil {
			t.Errorf("unmount %s: %v", mnt, err)
		}
	})
	if err := os.WriteFile(filepath.Join(mnt, "keep"), []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	// Read-only directories too, though a failed Extract leaves them 0700:
	// modes that stop writing are applied last.
	var es []Entry
	for i := 0; i < 4; i++ {
		es = append(es, fileEntry(t, fmt.Sprintf("d%d/ro/f", i), 0o444, pseudoText(int64(i), 400<<10)))
		es = append(es, dirEnt(fmt.Sprintf("d%d/ro", i), 0o555))
	}
	img := rawImage(t, es, DefaultBlockSize)
	free := func() uint64 {
		var st unix.Statfs_t
		if err := unix.Statfs(mnt, &st); err != nil {
			t.Fatal(err)
		}
		return st.Bfree
	}
	before := free()
	extractHostile(t, mnt, img, ExtractOptions{Untrusted: true}, func(dest string, err error, warnings []string) {
		if !errors.Is(err, unix.ENOSPC) || !strings.HasPrefix(err.Error(), "write d") {
			t.Errorf("Extract: %v, want a write failing with ENOSPC", err)
		}
		oneLine(t, err)
		t.Logf("Extract: %v", err)
	})
	if after := free(); after != before {
		t.Errorf("free blocks: %d before, %d after RemoveTree", before, after)
	}
}
