package walk

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"

	"github.com/parkerpack/parker/internal/human"
)

// IgnoreFile is read from the top of the working directory.
const IgnoreFile = ".parkerignore"

// Rules are the ignore patterns: IgnoreFile first, then each --exclude,
// in the order docker applies .dockerignore lines (later lines win).
type Rules struct {
	pm *patternmatcher.PatternMatcher // nil: nothing is excluded
}

// LoadRules reads root's IgnoreFile, if there is one, and appends the
// patterns of excludes, each written as a line of that file would be.
func LoadRules(root string, excludes []string) (*Rules, error) {
	var patterns []string
	f, err := os.Open(filepath.Join(root, IgnoreFile))
	switch {
	case err == nil:
		patterns, err = ignorefile.ReadAll(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", IgnoreFile, human.Cause(err))
		}
	case errors.Is(err, fs.ErrNotExist):
	default:
		return nil, fmt.Errorf("%s: %w", IgnoreFile, human.Cause(err))
	}
	// --exclude takes the same syntax as a line of the file; read it
	// through the same parser so both are normalised alike.
	for _, x := range excludes {
		p, err := ignorefile.ReadAll(strings.NewReader(strings.TrimLeft(x, " \t") + "\n"))
		if err != nil || len(p) != 1 {
			return nil, fmt.Errorf("--exclude %q: invalid pattern", x)
		}
		patterns = append(patterns, p[0])
	}
	if len(patterns) == 0 {
		return &Rules{}, nil
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		return nil, fmt.Errorf("ignore patterns (%s, --exclude): %v", IgnoreFile, err)
	}
	return &Rules{pm: pm}, nil
}

// excluded reports whether rel (slash-separated, relative to the root) is
// left out. A pattern counts when it matches rel or any of its parents, so
// "!logs" re-includes everything below logs however it was excluded. The
// walker and the target check use this one function so they always agree.
func (r *Rules) excluded(rel string) (bool, error) {
	if r.pm == nil {
		return false, nil
	}
	return r.pm.MatchesOrParentMatches(rel)
}

// mayReinclude reports whether an excluded directory must still be walked
// because a "!" pattern could re-include something below it, as docker's
// archiver asks. Only a "!" pattern matching a path strictly below the
// directory can change the verdict for its contents (with the parent rule
// of excluded, patterns matching the directory or above judge its contents
// as they judged it), so each pattern is compared component by component,
// and any "**" answers yes.
func (r *Rules) mayReinclude(dir string) bool {
	if r.pm == nil || !r.pm.Exclusions() {
		return false
	}
	dirs := strings.Split(dir, "/")
	for _, p := range r.pm.Patterns() {
		if p.Exclusion() && couldMatchBelow(filepath.ToSlash(p.String()), dirs) {
			return true
		}
	}
	return false
}

// couldMatchBelow reports whether pattern might match a path strictly below
// the directory whose components are dirs.
func couldMatchBelow(pattern string, dirs []string) bool {
	if strings.Contains(pattern, "**") {
		return true
	}
	pc := strings.Split(pattern, "/")
	if len(pc) <= len(dirs) {
		return false
	}
	for i, d := range dirs {
		if ok, err := path.Match(pc[i], d); err != nil || !ok {
			return false
		}
	}
	return true
}

// CheckTarget refuses rules that leave out the target or a symlink leading
// to it; a packed file without its entry program cannot run. Directories on
// the way may be excluded as long as what lies below is re-included (the
// walk then keeps them); that follows from checking the non-directories,
// which are judged together with their parents.
func (r *Rules) CheckTarget(t *Target) error {
	for _, p := range t.leaves {
		ex, err := r.excluded(p)
		if err != nil {
			return fmt.Errorf("ignore patterns: %v", err)
		}
		if ex {
			what := p
			if p != t.File {
				what = "the symlink " + p
			}
			return fmt.Errorf("target %s: %s is excluded by %s or --exclude, but the target is always packed", t.Path, what, IgnoreFile)
		}
	}
	return nil
}
