// Package walk lists the working directory parker packs: it resolves the
// target inside it, applies the ignore rules (.parkerignore and the extra
// patterns of --exclude), and walks the tree read-only into image entries,
// parents before children, failing rather than packing a directory swapped
// for a symlink under it.
//
// Errors name paths as the caller displays them (the working directory as
// the user wrote it), never the absolute paths the walk uses.
package walk

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/parkerpack/parker/internal/human"
)

// maxSymlinkHops bounds target resolution, as the kernel's MAXSYMLINKS does.
const maxSymlinkHops = 40

// Root resolves the directory to pack to an absolute path without
// symlinks, so later path comparisons (is the output inside it?) are exact.
func Root(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	root, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return "", fmt.Errorf("working directory %s: %w", dir, human.Cause(err))
	}
	fi, err := os.Stat(root)
	if err != nil {
		return "", fmt.Errorf("working directory %s: %w", dir, human.Cause(err))
	}
	if !fi.IsDir() {
		return "", fmt.Errorf("working directory %s: not a directory", dir)
	}
	return root, nil
}

// CleanTarget checks the syntax of a target: a non-empty relative path that
// names a file and stays inside the working directory. It returns the path
// cleaned and slash-separated. Whether the file exists is ResolveTarget's
// question.
func CleanTarget(arg string) (string, error) {
	if filepath.IsAbs(arg) {
		return "", errors.New("must be a path relative to the working directory")
	}
	p := path.Clean(filepath.ToSlash(arg))
	if p == "." || strings.HasSuffix(arg, "/") {
		return "", errors.New("must name a file, not a directory")
	}
	if p == ".." || strings.HasPrefix(p, "../") {
		return "", errors.New("lies outside the working directory")
	}
	return p, nil
}

// Target is the entry program, resolved inside the working directory.
type Target struct {
	Path     string   // as given, cleaned: what the runtime executes
	File     string   // the regular file it resolves to, relative to the root
	Mode     uint32   // File's st_mode
	Dev, Ino uint64   // File's identity
	chain    []string // every path resolution touched; all must be packed
	leaves   []string // the symlinks in chain, and File
}

// Executable reports whether anyone may execute the target.
func (t *Target) Executable() bool { return t.Mode&0o111 != 0 }

// ResolveTarget follows the clean path p inside root the way the kernel
// would inside the mounted image: component by component, through relative
// symlinks. An absolute symlink, or one climbing out of root, would resolve
// differently (or not at all) once packed, so it is refused with a hint.
// display names root in messages.
func ResolveTarget(root, display, p string) (*Target, error) {
	t := &Target{Path: p}
	todo := strings.Split(p, "/")
	cur := "" // resolved directory so far, relative to root
	hops := 0
	for len(todo) > 0 {
		comp := todo[0]
		todo = todo[1:]
		switch comp {
		case "", ".":
			continue
		case "..":
			if cur == "" {
				return nil, fmt.Errorf("target %s: a symlink on the way leads outside the working directory %s", p, display)
			}
			cur = path.Dir(cur)
			if cur == "." {
				cur = ""
			}
			continue
		}
		next := path.Join(cur, comp)
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(root, next), &st); err != nil {
			if errors.Is(err, unix.ENOENT) {
				return nil, fmt.Errorf("target %s: no such file in %s", p, display)
			}
			return nil, fmt.Errorf("target %s: %s: %w", p, next, err)
		}
		t.chain = append(t.chain, next)
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFLNK:
			if hops++; hops > maxSymlinkHops {
				return nil, fmt.Errorf("target %s: too many levels of symbolic links", p)
			}
			link, err := os.Readlink(filepath.Join(root, next))
			if err != nil {
				return nil, fmt.Errorf("target %s: %w", p, human.Cause(err))
			}
			if path.IsAbs(link) {
				return nil, fmt.Errorf("target %s: %s is a symlink to %s, outside the working directory; copy the file in instead", p, next, link)
			}
			t.leaves = append(t.leaves, next)
			todo = append(strings.Split(link, "/"), todo...)
		case unix.S_IFDIR:
			if len(todo) == 0 {
				return nil, fmt.Errorf("target %s: is a directory, not a regular file", p)
			}
			cur = next
		case unix.S_IFREG:
			if len(todo) > 0 {
				return nil, fmt.Errorf("target %s: %s is not a directory", p, next)
			}
			t.File, t.Mode, t.Dev, t.Ino = next, st.Mode, st.Dev, st.Ino
			t.leaves = append(t.leaves, next)
		default:
			return nil, fmt.Errorf("target %s: not a regular file", p)
		}
	}
	if t.File == "" {
		return nil, fmt.Errorf("target %s: not a regular file", p)
	}
	return t, nil
}
