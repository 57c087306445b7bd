package image

import "github.com/parkerpack/parker/internal/rmtree"

// RemoveTree undoes an extraction that failed or is no longer wanted: it
// removes dir and everything below it, whatever the modes of its
// directories (an extracted tree can hold 0555, 0300 or 0000 ones, which
// stop os.RemoveAll for anyone but root), never following a symlink and
// never descending into another file system (rmtree.Remove).
func RemoveTree(dir string) error { return rmtree.Remove(dir) }
