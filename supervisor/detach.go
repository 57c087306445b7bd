package supervisor

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// envDetach carries, to the launcher of Detach, the name to start the
// program by and how many descriptors it gets.
const envDetach = "PARKER_DETACH"

// Detach starts exe (a program whose main calls RunSidecar first; the
// helper) by the name arg0, with environment env and files as its
// descriptors 0, 1, 2 and on, in a session of its own, and returns its
// pid. As the sidecar is, it is started by a launcher that exits at once,
// so that it is nobody's child but init's (or the nearest subreaper's):
// the target, which runs in our place, never sees it among its children.
// The FUSE server of the Go code's FUSE rung is started so.
func Detach(exe, arg0 string, env []string, files []uintptr) (int, error) {
	pidR, pidW, err := os.Pipe()
	if err != nil {
		return 0, err
	}
	defer pidR.Close()
	lenv := append([]string{EnvSidecar + "=detach", envDetach + "=" + strconv.Itoa(len(files)) + ":" + arg0}, env...)
	pid, err := syscall.ForkExec(exe, []string{"parker-launch"}, &syscall.ProcAttr{
		Env:   lenv,
		Files: append(append([]uintptr{}, files...), pidW.Fd()),
	})
	pidW.Close()
	if err != nil {
		return 0, err
	}
	return launched(pid, pidR)
}

// detach is Detach's launcher: it starts the program in a new session,
// writes its pid on the descriptor after the ones it passes on, and exits.
func detach() int {
	spec := os.Getenv(envDetach)
	n, arg0, ok := strings.Cut(spec, ":")
	count, err := strconv.Atoi(n)
	if !ok || err != nil || count < 3 || count > 64 {
		fmt.Fprintf(os.Stderr, "parker: %s=%q: not COUNT:NAME\n", envDetach, spec)
		return 1
	}
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, EnvSidecar+"=") && !strings.HasPrefix(kv, envDetach+"=") {
			env = append(env, kv)
		}
	}
	// Ours alone: the program must not hold it (we are read to its end).
	syscall.CloseOnExec(count)
	files := make([]uintptr, count)
	for i := range files {
		files[i] = uintptr(i)
	}
	pid, err := syscall.ForkExec("/proc/self/exe", []string{arg0}, &syscall.ProcAttr{
		Env:   env,
		Files: files,
		Sys:   &syscall.SysProcAttr{Setsid: true},
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "parker: start %s: %v\n", arg0, err)
		return 1
	}
	out := os.NewFile(uintptr(count), "pid")
	fmt.Fprintln(out, pid)
	return 0
}
