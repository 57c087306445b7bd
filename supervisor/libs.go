package supervisor

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// MissingLibrary asks the loader of the ELF program that c starts which
// library it cannot find, as it will find them when c starts it: from
// c.Dir, with c.Env, for the program's real path (what $ORIGIN names).
// The loader runs in its list mode (--list, which glibc's and musl's
// take: it maps the libraries and runs nothing of the program), so its
// verdict is the loader's own: its cache, RUNPATH, RPATH and $ORIGIN,
// hwcaps subdirectories, libraries already loaded, LD_LIBRARY_PATH as it
// reads it. It returns the first library the loader reports it cannot
// load, or "": none, not a dynamic ELF program, a loader that does not
// say, or any failure to ask. It costs a start of the loader: a
// run calls it only where the libraries are not where the pack host had
// them.
func MissingLibrary(c Config) string {
	target := c.Path
	if !filepath.IsAbs(target) {
		dir := c.Dir
		if dir == "" {
			dir, _ = os.Getwd()
		}
		target = filepath.Join(dir, target)
	}
	target, err := filepath.EvalSymlinks(target)
	if err != nil {
		return ""
	}
	interp, loader, err := interpreter(target)
	if err != nil || !loader {
		return ""
	}
	if !filepath.IsAbs(interp) && c.Dir != "" {
		interp = filepath.Join(c.Dir, interp) // as the kernel resolves it
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, interp, "--list", target)
	cmd.Dir, cmd.Env = c.Dir, c.Env
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.Run() // a library missing fails it: the output says which
	return notFound(out.Bytes())
}

// notFound reads what a loader's list mode printed (MissingLibrary) and
// returns the first library it could not load, or "": glibc's "PROGRAM:
// error while loading shared libraries: NAME: cannot open shared object
// file" (or ldd's "NAME => not found"), musl's "Error loading shared
// library NAME: No such file or directory".
func notFound(list []byte) string {
	sc := bufio.NewScanner(bytes.NewReader(list))
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if name, ok := strings.CutSuffix(l, " => not found"); ok && name != "" {
			return name
		}
		for _, lead := range []string{": error while loading shared libraries: ", "Error loading shared library "} {
			if _, rest, ok := strings.Cut(l, lead); ok {
				name, why, ok := strings.Cut(rest, ": ")
				if ok && name != "" && (strings.HasPrefix(why, "cannot open shared object file") || strings.HasPrefix(why, "No such file")) {
					return name
				}
			}
		}
	}
	return ""
}
