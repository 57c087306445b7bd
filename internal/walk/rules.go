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
	// fromFile is how many of pm's patterns come from IgnoreFile; the
	// rest are the --exclude patterns, in order.
	fromFile int
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
		for _, p := range patterns {
			if err := checkPattern(p); err != nil {
				return nil, fmt.Errorf("%s: pattern %q: %v", IgnoreFile, p, err)
			}
		}
	case errors.Is(err, fs.ErrNotExist):
	default:
		return nil, fmt.Errorf("%s: %w", IgnoreFile, human.Cause(err))
	}
	fromFile := len(patterns)
	for _, x := range excludes {
		p, err := excludeLine(x)
		if err != nil {
			return nil, err
		}
		patterns = append(patterns, p)
	}
	if len(patterns) == 0 {
		return &Rules{}, nil
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		return nil, fmt.Errorf("ignore patterns (%s, --exclude): %v", IgnoreFile, err)
	}
	if len(pm.Patterns()) != len(patterns) {
		// New dropped a pattern: no telling which rule came from where.
		fromFile = -1
	}
	return &Rules{pm: pm, fromFile: fromFile}, nil
}

// CheckExclude checks the pattern of an --exclude, so that a bad one is
// a usage error that names it.
func CheckExclude(x string) error {
	_, err := excludeLine(x)
	return err
}

// excludeLine reads an --exclude, which takes the same syntax as a line
// of IgnoreFile, through the same parser, so both are normalised alike.
func excludeLine(x string) (string, error) {
	p, err := ignorefile.ReadAll(strings.NewReader(strings.TrimLeft(x, " \t") + "\n"))
	if err != nil || len(p) != 1 || strings.TrimSpace(p[0]) == "!" {
		return "", fmt.Errorf("--exclude %q: not a pattern", x)
	}
	if err := checkPattern(p[0]); err != nil {
		return "", fmt.Errorf("--exclude %q: %v", x, err)
	}
	return p[0], nil
}

// checkPattern reports a pattern the matcher would refuse, alone, so the
// message can name it.
func checkPattern(p string) error {
	_, err := patternmatcher.New([]string{p})
	return err
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
// which are judged together with their parents. The error names the rule
// and the re-include that would fix it.
func (r *Rules) CheckTarget(t *Target) error {
	for _, p := range t.leaves {
		ex, err := r.excluded(p)
		if err != nil {
			return fmt.Errorf("ignore patterns: %v", err)
		}
		if !ex {
			continue
		}
		what := "target " + t.Path
		switch {
		case p != t.File:
			what += ": the symlink " + p
		case p != t.Path:
			what += ": its file " + p
		}
		again := "!" + escapePattern(p)
		i, pats := r.culprit(p), r.pm.Patterns()
		switch {
		case i < 0 || r.fromFile < 0:
			return fmt.Errorf("%s is excluded by %s or --exclude, but the target is always packed; re-include it with --exclude %s",
				what, IgnoreFile, shellQuote(again))
		case i < r.fromFile:
			return fmt.Errorf("%s is excluded by the line %q of %s, but the target is always packed; re-include it with a line %s after that one, or --exclude %s",
				what, pats[i].String(), IgnoreFile, again, shellQuote(again))
		default:
			return fmt.Errorf("%s is excluded by --exclude %q, but the target is always packed; re-include it with --exclude %s after it",
				what, pats[i].String(), shellQuote(again))
		}
	}
	return nil
}

// culprit returns the index of the pattern that excludes rel, the last
// one to change the verdict, replaying MatchesOrParentMatches one pattern
// at a time; -1 if none does. Only error messages need it.
func (r *Rules) culprit(rel string) int {
	matched, who := false, -1
	for i, p := range r.pm.Patterns() {
		if p.Exclusion() != matched {
			continue
		}
		one, err := patternmatcher.New([]string{p.String()})
		if err != nil {
			continue
		}
		if m, _ := one.MatchesOrParentMatches(rel); m {
			matched, who = !p.Exclusion(), i
		}
	}
	if !matched {
		return -1
	}
	return who
}

// escapePattern turns a path into a pattern that matches only it.
func escapePattern(rel string) string {
	var b strings.Builder
	for _, c := range rel {
		if strings.ContainsRune(`*?[\`, c) {
			b.WriteByte('\\')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// shellQuote quotes s for a POSIX shell, and from bash's history
// expansion of "!".
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
