package supervisor

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// MissingLibrary asks the loader of the ELF program that c starts which
// library it cannot find, as it will find them when c starts it: from
// c.Dir, with c.Env, for the program's real path (what $ORIGIN names).
// The loader runs in its list mode (--list, which glibc's and musl's
// take: it maps the libraries and runs nothing of the program), so its
// verdict is the loader's own: its cache, RUNPATH, RPATH and $ORIGIN,
// hwcaps subdirectories, libraries already loaded, LD_LIBRARY_PATH as it
// reads it. Only glibc's and musl's loaders are asked; the loader is
// killed, with anything it started, after 10 s, and the first 64 KiB of
// what it says are read. It returns the first library the loader reports
// it cannot load, or "": none, not a dynamic ELF program, another loader,
// or any failure to ask. It costs a start of the loader: a run calls it
// only where the libraries are not where the pack host had them.
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
	if !listingLoader(interp) {
		return "" // any other program named there might do anything with --list
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Not exec.Command's PATH search: the kernel takes the name as a path.
	cmd := &exec.Cmd{Path: interp, Args: []string{interp, "--list", target}, Dir: c.Dir, Env: c.Env,
		SysProcAttr: &syscall.SysProcAttr{Setpgid: true}, WaitDelay: time.Second}
	out := &capped{max: 64 << 10}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return ""
	}
	stop := context.AfterFunc(ctx, func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) })
	cmd.Wait() // a library missing fails it: the output says which
	stop()
	return notFound(out.b)
}

// listingLoader tells whether the loader at p is one whose --list runs
// nothing of the program: glibc's (it reads /etc/ld.so.cache) or musl's
// (it reads /etc/ld-musl-ARCH.path).
func listingLoader(p string) bool {
	b, err := os.ReadFile(p)
	return err == nil && (bytes.Contains(b, []byte("/etc/ld.so.cache\x00")) || bytes.Contains(b, []byte("/etc/ld-musl-")))
}

// capped keeps the first max bytes written to it.
type capped struct {
	b   []byte
	max int
}

func (w *capped) Write(p []byte) (int, error) {
	w.b = append(w.b, p[:min(len(p), max(w.max-len(w.b), 0))]...)
	return len(p), nil
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
