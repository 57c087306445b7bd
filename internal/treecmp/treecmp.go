// Package treecmp compares file trees as different readers show them: the
// source directory, an extraction, a kernel mount, a squashfs reader. Each
// reader's tree is a View; Compare checks one against the source and
// returns one line per difference, so a test can print them all.
//
// It is the one comparator of parker's tests: package image judges its
// writer and reader with it, and the end-to-end oracle tests judge packed
// files with it. It compares types, permissions with setuid, setgid and
// sticky, owners, mtimes, sizes, contents, symlink targets, device numbers,
// directory listings, hard-link identity and link counts. What a reader
// cannot show (View.NoSpecialBits, NoRdev, NoOwner, Unlisted) is left out
// and reported as a note instead.
package treecmp

import (
	"fmt"
	"io"
	"io/fs"
	"path"
	"slices"
	"sort"
	"strings"
	"sync"
)

// Entry is one file system object as a reader shows it.
type Entry struct {
	Mode     fs.FileMode // Go type bits | permissions | ModeSetuid/Setgid/Sticky
	UID, GID uint32
	Mtime    int64
	Size     int64  // regular files only
	Link     string // symlink target
	Rdev     uint64 // device nodes
	ID       string // inode identity, meaningful within one view
	Nlink    uint32 // 0 when the reader does not show it
	Names    []string
	// Open reads a regular file's content. Compare copies it with io.Copy,
	// so a reader with a WriteTo method is read through it.
	Open func() (io.ReadCloser, error)
}

// View is a whole tree as one reader shows it.
type View struct {
	Name    string
	Entries map[string]*Entry // slash-separated path relative to the root; "." is the root

	// What this reader cannot show; Compare leaves those out and says so.
	NoSpecialBits bool     // setuid, setgid, sticky
	NoRdev        bool     // device numbers
	NoOwner       bool     // owners (an extraction by a user who cannot chown)
	Unlisted      []string // directories whose content the reader cannot list
	Notes         []string

	mu     sync.Mutex
	hashes map[string]string
}

// NewView returns an empty view named after its reader.
func NewView(name string) *View {
	return &View{Name: name, Entries: map[string]*Entry{}, hashes: map[string]string{}}
}

// Add records the entry at p, and its name in its parent's listing when
// the parent was added already (readers list parents first).
func (v *View) Add(p string, e *Entry) {
	v.Entries[p] = e
	if p != "." {
		if parent := v.Entries[path.Dir(p)]; parent != nil {
			parent.Names = append(parent.Names, path.Base(p))
		}
	}
}

// Expect says how the tree under test should differ from the source.
type Expect struct {
	KeepOwner bool  // owners kept; otherwise every owner is expected 0:0
	Clamp     int64 // as image.Options.ClampTime: when >= 0, newer mtimes are expected clamped to it
	// Exclude lists source paths left out (with everything below them).
	Exclude map[string]bool
	// SplitSymlinkLinks accepts two names of one hard-linked symlink as two
	// inodes: mksquashfs 4.5.1 stores them so (with -all-root).
	SplitSymlinkLinks bool
	// IgnoreMtime: directories whose mtime the test itself changed (a
	// packed file written inside the tree, say).
	IgnoreMtime map[string]bool
}

func (x Expect) excluded(p string) bool {
	for q := range x.Exclude {
		if p == q || strings.HasPrefix(p, q+"/") {
			return true
		}
	}
	return false
}

// Compare checks got against the source view and returns one line per
// difference (paths quoted, as names may hold any byte) and notes on what
// got's reader could not check.
func Compare(src, got *View, x Expect) (problems, notes []string) {
	bad := func(p, f string, a ...any) {
		problems = append(problems, fmt.Sprintf("%q: ", p)+fmt.Sprintf(f, a...))
	}
	under := func(p string) string {
		for _, u := range got.Unlisted {
			if strings.HasPrefix(p, u+"/") {
				return u
			}
		}
		return ""
	}
	skipped := map[string]int{}
	var paths, files []string
	for p := range src.Entries {
		if x.excluded(p) {
			continue
		}
		if u := under(p); u != "" {
			skipped[u]++
			continue
		}
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for p := range got.Entries {
		if _, ok := src.Entries[p]; !ok || x.excluded(p) {
			bad(p, "in the image but not in the source (or excluded)")
		}
	}
	specials := 0
	for _, p := range paths {
		s, g := src.Entries[p], got.Entries[p]
		if g == nil {
			bad(p, "missing (source: %v)", s.Mode)
			continue
		}
		if s.Mode.Type() != g.Mode.Type() {
			bad(p, "type %v, want %v", g.Mode.Type(), s.Mode.Type())
			continue
		}
		mask := fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky
		if got.NoSpecialBits {
			if s.Mode&(fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky) != 0 {
				specials++
			}
			mask = fs.ModePerm
		}
		if s.Mode&mask != g.Mode&mask {
			bad(p, "mode %v, want %v", g.Mode&mask, s.Mode&mask)
		}
		wantUID, wantGID := uint32(0), uint32(0)
		if x.KeepOwner {
			wantUID, wantGID = s.UID, s.GID
		}
		if !got.NoOwner && (g.UID != wantUID || g.GID != wantGID) {
			bad(p, "owner %d:%d, want %d:%d", g.UID, g.GID, wantUID, wantGID)
		}
		wantM := s.Mtime
		if x.Clamp >= 0 && wantM > x.Clamp {
			wantM = x.Clamp
		}
		if g.Mtime != wantM && !x.IgnoreMtime[p] {
			bad(p, "mtime %d, want %d", g.Mtime, wantM)
		}
		switch s.Mode.Type() {
		case 0:
			if g.Size != s.Size {
				bad(p, "size %d, want %d", g.Size, s.Size)
			}
			files = append(files, p)
		case fs.ModeSymlink:
			if g.Link != s.Link {
				bad(p, "symlink target %q, want %q", g.Link, s.Link)
			}
		case fs.ModeDevice, fs.ModeDevice | fs.ModeCharDevice:
			if !got.NoRdev && g.Rdev != s.Rdev {
				bad(p, "rdev %#x, want %#x", g.Rdev, s.Rdev)
			}
		case fs.ModeDir:
			if slices.Contains(got.Unlisted, p) {
				break
			}
			var want []string
			for _, n := range s.Names {
				if !x.excluded(path.Join(p, n)) {
					want = append(want, n)
				}
			}
			have := append([]string(nil), g.Names...)
			sort.Strings(want)
			sort.Strings(have)
			if strings.Join(want, "\x00") != strings.Join(have, "\x00") {
				bad(p, "directory lists %d names, want %d: %s", len(have), len(want), nameDiff(have, want))
			}
		}
	}

	// Hard-link identity: names that share a source inode share an image
	// inode, and names that do not, do not.
	byGot := map[string]string{} // got ID -> a path with it
	bySrc := map[string]string{} // src ID -> a path with it
	for _, p := range paths {
		s, g := src.Entries[p], got.Entries[p]
		if g == nil || g.ID == "" {
			continue
		}
		if q, ok := bySrc[s.ID]; ok && got.Entries[q].ID != g.ID && !(x.SplitSymlinkLinks && s.Mode.Type() == fs.ModeSymlink) {
			bad(p, "hard link of %q in the source, but inode %s != %s", q, g.ID, got.Entries[q].ID)
		}
		if q, ok := byGot[g.ID]; ok && src.Entries[q].ID != s.ID {
			bad(p, "shares inode %s with %q, but they are different files in the source", g.ID, q)
		}
		bySrc[s.ID], byGot[g.ID] = p, p
	}

	// Link counts, where the reader shows them: a directory has 2 plus
	// one per subdirectory; anything else one per name in the image.
	names := map[string]uint32{}
	for _, g := range got.Entries {
		names[g.ID]++
	}
	for _, p := range paths {
		g := got.Entries[p]
		if g == nil || g.Nlink == 0 {
			continue
		}
		want := names[g.ID]
		if g.Mode.IsDir() {
			want = 2
			for _, n := range g.Names {
				if c := got.Entries[path.Join(p, n)]; c != nil && c.Mode.IsDir() {
					want++
				}
			}
		}
		if g.Nlink != want {
			bad(p, "nlink %d, want %d", g.Nlink, want)
		}
	}

	// Contents.
	errs := src.hashAll(files)
	for p, err := range errs {
		bad(p, "source unreadable: %v", err)
	}
	var readable []string
	for _, p := range files {
		if got.Entries[p] != nil && got.Entries[p].Mode.IsRegular() {
			readable = append(readable, p)
		}
	}
	for p, err := range got.hashAll(readable) {
		bad(p, "read: %v", err)
	}
	for _, p := range readable {
		gh, ok := got.hashes[p]
		if ok && gh != src.hashes[p] {
			bad(p, "content differs from the source (%d bytes)", src.Entries[p].Size)
		}
	}
	sort.Strings(problems)

	notes = append(notes, got.Notes...)
	if specials > 0 {
		notes = append(notes, fmt.Sprintf("%s cannot show setuid/setgid/sticky: those bits of %d entries not checked by it (permission bits were)", got.Name, specials))
	}
	if got.NoOwner {
		notes = append(notes, fmt.Sprintf("%s cannot show owners: not checked by it", got.Name))
	}
	if got.NoRdev {
		n := 0
		for _, p := range paths {
			if src.Entries[p].Mode&fs.ModeDevice != 0 {
				n++
			}
		}
		if n > 0 {
			notes = append(notes, fmt.Sprintf("%s does not expose device numbers: rdev of %d device nodes not checked by it (type, mode, owner, mtime were)", got.Name, n))
		}
	}
	for _, u := range got.Unlisted {
		notes = append(notes, fmt.Sprintf("%s cannot list directory %q (non-UTF-8 path; its ReadDir takes a path checked by io/fs.ValidPath): %d entries below it not checked by it (the directory's own entry was)", got.Name, u, skipped[u]))
	}
	return problems, notes
}

func nameDiff(have, want []string) string {
	h := map[string]bool{}
	for _, n := range have {
		h[n] = true
	}
	w := map[string]bool{}
	var out []string
	for _, n := range want {
		w[n] = true
		if !h[n] {
			out = append(out, fmt.Sprintf("-%q", n))
		}
	}
	for _, n := range have {
		if !w[n] {
			out = append(out, fmt.Sprintf("+%q", n))
		}
	}
	if len(out) > 10 {
		out = append(out[:10], fmt.Sprintf("... %d more", len(out)-10))
	}
	return strings.Join(out, " ")
}
