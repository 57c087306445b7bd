package mountns

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"syscall"

	"github.com/parkerpack/parker/image/trailer"
	"golang.org/x/sys/unix"
)

// StoreRoot gives the calling thread (in a mount namespace of its own:
// Enter) a root of its own, with the directory store of the payload's
// root lower (a detached mount, or a directory) at /store: where the
// loader path of a closure's programs points (parker --closure, package
// closure), which no host has, on a root that is not ours to change. The
// new root is a tmpfs holding every entry of / as it is: each directory
// and file bound there with every mount below it, each symlink made
// again; and the store, bound from lower. It is attached over dir (which
// the view covers next, in the new root) and entered (chroot), so the
// target and what it starts see the host's files where they were, and the
// store beside them. The C stub does the same (stub/cstub/mountns.c:
// store_root). storeDir, when > 0, is a directory (the store's copy in
// the extraction cache) bound at /store in place of lower's. The trees of
// --closure-path the store holds are shown at their paths.
func StoreRoot(lower int, dir, store string, storeDir int) (err error) {
	src := storeDir
	if src <= 0 {
		if src, err = unix.Openat(lower, store, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0); err != nil {
			return fmt.Errorf("the closure's store: %w", err)
		}
		defer unix.Close(src)
	}
	p := &rootPlan{src: src, cpaths: readClosurePaths(src)}
	// The view over dir goes on the new root: a closure path over it, or
	// in it, would make its bottom layer mounts, which overlayfs does not
	// see below a layer.
	for _, c := range p.cpaths {
		if c == dir || strings.HasPrefix(dir, c+"/") || strings.HasPrefix(c, dir+"/") {
			return fmt.Errorf("show a --closure-path: %s and the packed file's directory overlap", c)
		}
	}
	defer func() {
		for _, st := range p.steps {
			if st.clone > 0 {
				unix.Close(st.clone)
			}
		}
	}()
	if err := p.dir("", ""); err != nil {
		return err
	}
	// The working directory, which the chroot would lose: taken again, by
	// its path, in the new root, where it is the same.
	cwd, cwdErr := syscall.Getwd() // the kernel's, not $PWD's
	r, err := MountTmpfs(0o755)
	if err != nil {
		return err
	}
	err = AttachAt(r, dir)
	unix.Close(r)
	if err != nil {
		return err
	}
	// From here on a failure takes the new root off dir again, so that a
	// fallback finds dir as it was.
	defer func() {
		if err != nil {
			unix.Unmount(dir, unix.MNT_DETACH)
		}
	}()
	nr, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("the closure's root: %w", err)
	}
	defer unix.Close(nr)
	for i := range p.steps {
		st := &p.steps[i]
		switch {
		case st.link != "":
			err = unix.Symlinkat(st.link, nr, st.path)
		case st.dir:
			if err = unix.Mkdirat(nr, st.path, 0o755); errors.Is(err, unix.EEXIST) {
				err = nil
			}
			if err == nil && st.own { // where it may (not in a user namespace)
				unix.Fchownat(nr, st.path, int(st.uid), int(st.gid), unix.AT_SYMLINK_NOFOLLOW)
				unix.Fchmodat(nr, st.path, st.mode, 0)
			}
		default:
			var f int
			if f, err = unix.Openat(nr, st.path, unix.O_WRONLY|unix.O_CREAT|unix.O_CLOEXEC, 0o644); err == nil {
				unix.Close(f)
			}
		}
		if err == nil && st.clone > 0 {
			err = unix.MoveMount(st.clone, "", nr, st.path, unix.MOVE_MOUNT_F_EMPTY_PATH)
		}
		if err != nil {
			return denied("the closure's root: /"+st.path, err)
		}
	}
	s, err := unix.OpenTree(src, ".", unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
	if err != nil {
		return denied("the closure's store: bind it", err)
	}
	defer unix.Close(s)
	if err = readOnly(s); err != nil {
		return denied("the closure's store: bind it read-only", err)
	}
	if err = unix.Mkdirat(nr, store, 0o755); err != nil {
		return fmt.Errorf("the closure's store: %w", err)
	}
	if err = unix.MoveMount(s, "", nr, store, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return denied("the closure's store: bind it", err)
	}
	if err = unix.Chroot(FDPath(nr)); err != nil {
		return denied("the closure's root: chroot", err)
	}
	if cwdErr != nil || unix.Chdir(cwd) != nil { // gone (removed meanwhile): / it is
		unix.Chdir("/")
	}
	return nil
}

// rootStep is a step of making the closure's root, carried out in order
// once it is attached: a directory, a symlink, or a mount (a clone of the
// host's or of the store's tree) on an empty directory or file, at path,
// relative to the new root.
type rootStep struct {
	path, link string
	clone      int // a detached mount, or 0
	dir        bool
	// A directory made on the way to a closure path takes the host's
	// mode and owner, where it has one (own).
	own            bool
	mode, uid, gid uint32
}

// readOnly makes the detached mount tree m read-only, all of it: a run
// writes nothing into the store (root could, in the cache's entry).
func readOnly(m int) error {
	return unix.MountSetattr(m, "", unix.AT_EMPTY_PATH|unix.AT_RECURSIVE, &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY})
}

// rootPlan plans the closure's root: the store src, the trees of
// --closure-path it holds (cpaths), the steps so far.
type rootPlan struct {
	src    int
	cpaths []string
	steps  []rootStep
}

// readClosurePaths reads the list of --closure-path trees in the store
// (package closure's PathsList).
func readClosurePaths(src int) []string {
	fd, err := unix.Openat(src, "closure-paths", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil
	}
	f := os.NewFile(uintptr(fd), "closure-paths")
	defer f.Close()
	b, _ := io.ReadAll(io.LimitReader(f, 64<<10))
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "/") && len(l) > 1 {
			out = append(out, l)
		}
	}
	return out
}

// under tells how the directory at path stands to the closure paths: 2
// when it is one, 1 when one is below it, else 0.
func (p *rootPlan) under(path string) int {
	r := 0
	for _, c := range p.cpaths {
		if c == path {
			return 2
		}
		if strings.HasPrefix(c, path+"/") {
			r = 1
		}
	}
	return r
}

func (p *rootPlan) planned(rel string) bool {
	for _, st := range p.steps {
		if st.path == rel {
			return true
		}
	}
	return false
}

// dir plans the directory rel of the new root ("" for its root) from the
// host's directory host ("" for /), which need not exist: every entry as
// it is (each directory and file bound with every mount below it, each
// symlink made again), but for those on the way to a closure path, made
// as directories of the new root and planned the same way, and the
// closure paths themselves, bound from the store's trees. The C stub's
// plan_dir does the same.
func (p *rootPlan) dir(host, rel string) error {
	join := func(a, b string) string {
		if a == "" {
			return b
		}
		return a + "/" + b
	}
	ents, err := os.ReadDir(host + "/")
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("the closure's root: list %s/: %w", host, err)
	}
	for _, de := range ents {
		name := de.Name()
		if rel == "" && name == trailer.StoreName {
			continue
		}
		hp, rp := host+"/"+name, join(rel, name)
		if p.under(hp) > 0 {
			if !de.IsDir() { // a symlink here, say: not ours to replace
				return fmt.Errorf("show a --closure-path: %s is not a directory here", hp)
			}
			continue // below
		}
		if de.Type()&os.ModeSymlink != 0 {
			l, err := os.Readlink(hp)
			if err != nil {
				return fmt.Errorf("the closure's root: %w", err)
			}
			p.steps = append(p.steps, rootStep{path: rp, link: l})
			continue
		}
		c, err := unix.OpenTree(unix.AT_FDCWD, hp, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_RECURSIVE)
		if err != nil {
			return denied("the closure's root: bind "+hp, err)
		}
		p.steps = append(p.steps, rootStep{path: rp, clone: c, dir: de.IsDir()})
	}
	for _, c := range p.cpaths {
		rest, ok := strings.CutPrefix(c, host+"/")
		if !ok {
			continue
		}
		name, more, _ := strings.Cut(rest, "/")
		hp, rp := host+"/"+name, join(rel, name)
		if p.planned(rp) {
			continue
		}
		step := rootStep{path: rp, dir: true}
		var st unix.Stat_t
		if unix.Stat(hp, &st) == nil {
			step.own, step.mode, step.uid, step.gid = true, st.Mode&0o7777, st.Uid, st.Gid
		}
		p.steps = append(p.steps, step)
		if more != "" {
			if err := p.dir(hp, rp); err != nil {
				return err
			}
			continue
		}
		t, err := unix.OpenTree(p.src, "paths"+hp, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_RECURSIVE)
		if err == nil {
			if err = readOnly(t); err != nil {
				unix.Close(t)
			}
		}
		if err != nil {
			return denied("the closure's root: bind the tree of --closure-path "+hp, err)
		}
		p.steps = append(p.steps, rootStep{path: rp, clone: t, dir: true})
	}
	return nil
}
