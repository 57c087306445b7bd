package supervisor

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/parkerpack/parker/cgroup"
	"github.com/parkerpack/parker/internal/human"
	"golang.org/x/sys/unix"
)

// The cleanup sidecar.
//
// Launch starts it at the beginning of a run, before the stub enters the
// run's mount namespace; Commit tells it, just before the exec, what to
// clean up. It is started in two steps, each an exec of this same program
// (/proc/self/exe: a Go program on every path that gets here, the helper,
// the Go stub or parker itself): a launcher, our child, which starts the
// sidecar in a session of its own, reports its pid and exits, and which
// we reap at once. So the sidecar is nobody's child but init's (or the
// nearest subreaper's): the target never sees it among its children or
// reaps it with a wait for any child, and a kill of the target's process
// group does not reach it.
//
// It holds a pidfd of the stub, which the exec turns into the target (the
// pid stays). Its standard input and output are /dev/null, so it never
// holds a pipe of the caller's open; its standard error is ours, for its
// one line about a limit the target hit. It reads the plan until the pipe
// it comes through closes, which happens at the exec (the write end is
// close-on-exec) or when the stub dies; then it waits for the target to
// end, by any means, kills what the target left, removes the run's
// cgroup, and exits. If it dies first, the target runs on unaffected.
//
// It stays outside the run's mount namespace, so the namespace (the view's
// mounts, the loop device, a --parker-overlay lock held by the target) goes
// with the run's last process, on its exit path: when the caller's wait
// for the target returns, a run that left nothing behind has released
// everything, and the next run may take the same overlay directory. (In
// the namespace, the sidecar would keep it a moment longer than the
// target, for the caller's next run to trip over.)

// EnvSidecar marks a process started by Launch: "launch" for the launcher,
// "watch" for the sidecar. RunSidecar reads it.
const EnvSidecar = "PARKER_SIDECAR"

// The sidecar's descriptors, after standard input, output and error.
const (
	sidecarPidfd = 3 // the stub's, then the target's, pidfd
	sidecarPlan  = 4 // the plan, then EOF at the exec
	sidecarAck   = 5 // the answer: the namespace is pinned
)

// Handle is a started sidecar, waiting for its plan.
type Handle struct {
	Pid  int
	plan *os.File
	ack  *os.File
}

// Plan is what the sidecar cleans up when the target ends.
type Plan struct {
	Name string // the packed file, for messages
	Pid  int    // the stub's, which the exec makes the target's
	Tid  int    // the stub's thread in the run's namespace (the Go stub's locked one)
	// Namespace is the run's mount namespace (readlink of
	// /proc/thread-self/ns/mnt): without a cgroup, every process in it is
	// the run's.
	Namespace string
	// Group is the run's cgroup, or nil.
	Group *cgroup.Group
	// KeepChildren leaves what the target started running; the cgroup is
	// removed once they have all ended.
	KeepChildren bool
	// Verbose logs what the sidecar did, on standard error.
	Verbose bool
}

// Mechanism says how the run's processes are found, for PARKER_VERBOSE.
func (p Plan) Mechanism() string {
	how := "mount namespace scan (/proc/PID/ns/mnt)"
	if p.Group != nil {
		how = p.Group.Mechanism()
	}
	if p.KeepChildren {
		return how + "; --parker-keep-children: nothing is killed"
	}
	return how
}

func (p Plan) encode() string {
	var b strings.Builder
	fmt.Fprintf(&b, "name %s\npid %d\ntid %d\nns %s\n", strconv.Quote(p.Name), p.Pid, p.Tid, strconv.Quote(p.Namespace))
	if p.KeepChildren {
		b.WriteString("keep\n")
	}
	if p.Verbose {
		b.WriteString("verbose\n")
	}
	if p.Group != nil {
		b.WriteString("group\n" + p.Group.Encode())
	}
	return b.String() + planEnd
}

// planEnd ends a plan; the sidecar answers when it has read it.
const planEnd = "end\n"

func decodePlan(s string) (Plan, error) {
	var p Plan
	s = strings.TrimSuffix(s, planEnd)
	head, group, hasGroup := strings.Cut(s, "group\n")
	for _, l := range strings.Split(head, "\n") {
		key, val, _ := strings.Cut(l, " ")
		var err error
		switch key {
		case "name":
			p.Name, err = strconv.Unquote(val)
		case "ns":
			p.Namespace, err = strconv.Unquote(val)
		case "pid":
			p.Pid, err = strconv.Atoi(val)
		case "tid":
			p.Tid, err = strconv.Atoi(val)
		case "keep":
			p.KeepChildren = true
		case "verbose":
			p.Verbose = true
		case "":
		default:
			err = errors.New("unknown field")
		}
		if err != nil {
			return p, fmt.Errorf("plan line %q: %w", l, err)
		}
	}
	if hasGroup {
		g, err := cgroup.Decode(group)
		if err != nil {
			return p, err
		}
		p.Group = g
	}
	return p, nil
}

// sidecarEnv is what the sidecar inherits of ours: what says where
// cgroups go, for CleanStale.
func sidecarEnv(stage string) []string {
	env := []string{EnvSidecar + "=" + stage}
	for _, k := range []string{cgroup.EnvMode, cgroup.EnvParent} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return env
}

// Launch starts the sidecar for this process, which will exec the target.
// When this program is the packed file's own stub (the Go stub, or parker
// itself), self is the packed file and selfSize the stub's length: the
// sidecar then runs from a copy in memory, so as not to keep the packed
// file busy (ETXTBSY to a writer) for as long as it lives, a moment after
// the target. Otherwise (the helper, which runs from memory already) self
// is nil.
func Launch(self *os.File, selfSize int64) (*Handle, error) {
	fail := func(err error) (*Handle, error) {
		return nil, fmt.Errorf("start the cleanup sidecar: %w", err)
	}
	exe := "/proc/self/exe"
	if self != nil {
		mem, err := memCopy(self, selfSize)
		if err != nil {
			return fail(err)
		}
		defer mem.Close()
		exe = "/proc/self/fd/" + strconv.Itoa(int(mem.Fd()))
	}
	pidfd, err := unix.PidfdOpen(os.Getpid(), 0)
	if err != nil {
		return fail(fmt.Errorf("pidfd_open: %w", err))
	}
	defer unix.Close(pidfd)
	null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return fail(err)
	}
	defer null.Close()
	planR, planW, err := os.Pipe() // both close-on-exec
	if err != nil {
		return fail(err)
	}
	defer planR.Close()
	ackR, ackW, err := os.Pipe()
	if err != nil {
		planW.Close()
		return fail(err)
	}
	defer ackW.Close()
	pidR, pidW, err := os.Pipe()
	if err != nil {
		planW.Close()
		ackR.Close()
		return fail(err)
	}
	defer pidR.Close()
	pid, err := syscall.ForkExec(exe, []string{"parker-sidecar"}, &syscall.ProcAttr{
		Env:   sidecarEnv("launch"),
		Files: []uintptr{null.Fd(), pidW.Fd(), 2, uintptr(pidfd), planR.Fd(), ackW.Fd()},
	})
	pidW.Close()
	if err != nil {
		planW.Close()
		ackR.Close()
		return fail(err)
	}
	side, err := launched(pid, pidR)
	if err != nil {
		planW.Close()
		ackR.Close()
		return fail(err)
	}
	return &Handle{Pid: side, plan: planW, ack: ackR}, nil
}

// launched reaps the launcher pid and returns the pid of what it started,
// which it wrote to pidR.
func launched(pid int, pidR *os.File) (int, error) {
	b, _ := io.ReadAll(pidR)
	var ws unix.WaitStatus
	var err error
	for {
		if _, err = unix.Wait4(pid, &ws, 0, nil); err != unix.EINTR {
			break
		}
	}
	started, perr := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || !ws.Exited() || ws.ExitStatus() != 0 || perr != nil {
		return 0, fmt.Errorf("the launcher ended with status %v (%v)", ws, err)
	}
	return started, nil
}

// memCopy copies the first size bytes of f into an executable memory file.
func memCopy(f *os.File, size int64) (*os.File, error) {
	fd, err := unix.MemfdCreate("parker-sidecar", unix.MFD_CLOEXEC|unix.MFD_EXEC)
	if errors.Is(err, unix.EINVAL) { // before Linux 6.3
		fd, err = unix.MemfdCreate("parker-sidecar", unix.MFD_CLOEXEC)
	}
	if err != nil {
		return nil, fmt.Errorf("memfd_create: %w", err)
	}
	mem := os.NewFile(uintptr(fd), "parker-sidecar")
	if _, err := io.Copy(mem, io.NewSectionReader(f, 0, size)); err != nil {
		mem.Close()
		return nil, fmt.Errorf("copy the stub to memory: %w", err)
	}
	return mem, nil
}

// Commit hands the plan to the sidecar. The pipe closes when this process
// execs the target or ends, which tells the sidecar the plan is whole.
func (h *Handle) Commit(p Plan) error {
	if _, err := io.WriteString(h.plan, p.encode()); err != nil {
		return fmt.Errorf("brief the cleanup sidecar: %w", err)
	}
	// It answers once it has pinned our namespace, which it can do only
	// while we are surely in it.
	var b [1]byte
	n, _ := h.ack.Read(b[:])
	h.ack.Close()
	if n != 1 {
		return errors.New("brief the cleanup sidecar: it is gone")
	}
	return nil
}

// RunSidecar runs the sidecar's stages when this process was started as
// one, and then exits; otherwise it returns at once. Every main that can
// be /proc/self/exe of a stub calls it first.
func RunSidecar() {
	stage, ok := os.LookupEnv(EnvSidecar)
	if !ok {
		return
	}
	// Only what Launch passed: a descriptor the caller left open for the
	// target (a pipe, say) must not live on in the sidecar. They close at
	// the launcher's exec of the sidecar; closed here, they could take
	// with them one the Go runtime opened before main (its poller's, when
	// a package's init opened a file).
	if err := unix.CloseRange(sidecarAck+1, math.MaxUint32, unix.CLOSE_RANGE_CLOEXEC); err != nil {
		for fd := sidecarAck + 1; fd < 1024; fd++ { // before Linux 5.11
			unix.FcntlInt(uintptr(fd), unix.F_SETFD, unix.FD_CLOEXEC)
		}
	}
	switch stage {
	case "launch":
		os.Exit(launch())
	case "watch":
		os.Exit(watch())
	case "detach":
		os.Exit(detach())
	}
	fmt.Fprintf(os.Stderr, "parker: %s=%s: not a sidecar stage\n", EnvSidecar, stage)
	os.Exit(125)
}

// launch is the launcher: it starts the sidecar in a new session, with
// /dev/null for standard output, writes its pid on its own standard output
// and exits.
func launch() int {
	pid, err := syscall.ForkExec("/proc/self/exe", []string{"parker-sidecar"}, &syscall.ProcAttr{
		Env:   sidecarEnv("watch"),
		Files: []uintptr{0, 0, 2, sidecarPidfd, sidecarPlan, sidecarAck},
		Sys:   &syscall.SysProcAttr{Setsid: true},
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "parker: start the cleanup sidecar: %v\n", err)
		return 1
	}
	fmt.Println(pid)
	return 0
}

// watch is the sidecar: it waits for the target to end, then cleans up
// after it as its plan says.
func watch() int {
	// Not ours to end: a terminal's signals go to the caller's group.
	signal.Ignore(syscall.SIGINT, syscall.SIGQUIT, syscall.SIGHUP, syscall.SIGTSTP, syscall.SIGPIPE)
	in := bufio.NewReader(os.NewFile(sidecarPlan, "plan"))
	var b strings.Builder
	for {
		l, err := in.ReadString('\n')
		b.WriteString(l)
		if l == planEnd {
			break
		}
		if err != nil {
			return 0 // no plan: the stub failed, or handed the run over, first
		}
	}
	p, err := decodePlan(b.String())
	if err != nil {
		fmt.Fprintf(os.Stderr, "parker: cleanup sidecar: %v\n", err)
	}
	// A namespace's number is another's once it has gone, so the sidecar
	// goes by it only while it holds the namespace open: pinned now, while
	// the stub waits for the answer and so is surely in it.
	pin := pinNamespace(p)
	ack := os.NewFile(sidecarAck, "ack")
	ack.Write([]byte{0})
	ack.Close()
	io.Copy(io.Discard, in) // until the exec closes the pipe
	if p.KeepChildren {
		// It may live as long as they do: it must not hold the caller's
		// stderr (a pipe, say) open meanwhile.
		if null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0); err == nil {
			unix.Dup3(int(null.Fd()), 2, 0)
			null.Close()
		}
	}
	logf := func(format string, a ...any) {
		if p.Verbose {
			fmt.Fprintf(os.Stderr, "parker: cleanup: "+format+"\n", a...)
		}
	}
	if p.Group != nil {
		// By pid only while the pidfd says it is still the target's.
		if n, _ := unix.Poll([]unix.PollFd{{Fd: sidecarPidfd, Events: unix.POLLIN}}, 0); n == 0 {
			p.Group.Join(p.Pid)
		}
		if pin != nil {
			// What the target forked before it was moved.
			for _, pid := range inNamespace(p.Namespace) {
				p.Group.Join(pid)
			}
			pin.Close() // the cgroup knows the run from now on
			pin = nil
		}
	}
	fds := []unix.PollFd{{Fd: sidecarPidfd, Events: unix.POLLIN}}
	for {
		if _, err := unix.Poll(fds, -1); !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if p.Group != nil {
		cleanGroup(p, logf)
	} else if !p.KeepChildren && pin != nil {
		n := killNamespace(p.Namespace)
		logf("killed %d processes left by the target (%s)", n, p.Mechanism())
	}
	if pin != nil {
		pin.Close()
	}
	return 0
}

// pinNamespace opens the stub's mount namespace, which keeps its number
// from going to another while open, and returns it if it is the run's;
// otherwise nil.
func pinNamespace(p Plan) *os.File {
	tid := p.Tid
	if tid == 0 {
		tid = p.Pid
	}
	f, err := os.Open("/proc/" + strconv.Itoa(p.Pid) + "/task/" + strconv.Itoa(tid) + "/ns/mnt")
	if err != nil {
		return nil
	}
	if ns, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(int(f.Fd()))); err != nil || ns != p.Namespace {
		f.Close()
		return nil
	}
	return f
}

// cleanGroup kills the run's cgroup (or, keeping the children, waits until
// they have ended), says so if the target was killed for memory, and
// removes it; then it removes what runs killed before they could clean up
// left behind.
func cleanGroup(p Plan, logf func(string, ...any)) {
	g := p.Group
	if p.KeepChildren {
		for {
			if full, err := g.Populated(); err != nil || !full {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
	} else {
		if err := g.Kill(); err != nil {
			fmt.Fprintf(os.Stderr, "parker: %s: cleanup: %v\n", p.Name, err)
		}
	}
	if oom, _ := g.OOMKilled(); oom {
		fmt.Fprintf(os.Stderr, "parker: %s: out of memory: the run's limit is %s (--parker-memory); the kernel killed a process of it\n",
			p.Name, human.FormatSize(g.Limits().Memory))
	}
	if err := g.Remove(); err != nil {
		fmt.Fprintf(os.Stderr, "parker: %s: cleanup: %v\n", p.Name, err)
	}
	logf("%s: done", p.Mechanism())
	if o, err := cgroup.OptionsFromEnv(os.Getenv); err == nil {
		if l, err := cgroup.Detect(o); err == nil {
			if gone, _ := cgroup.CleanStale(l); len(gone) > 0 {
				logf("removed %d stale cgroups of earlier runs", len(gone))
			}
		}
	}
}

// inNamespace lists the processes in mount namespace ns.
func inNamespace(ns string) []int {
	var in []int
	for _, pid := range pids() {
		if got, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/ns/mnt"); err == nil && got == ns {
			in = append(in, pid)
		}
	}
	return in
}

// killNamespace kills every process in mount namespace ns until none is
// left (a process may fork while we kill), and returns how many it
// killed. The caller holds ns open (pinNamespace), so that its number
// names no other namespace meanwhile. A killed process leaves the namespace as it dies; one still
// dying is not killed again, only waited for.
func killNamespace(ns string) int {
	if ns == "" {
		return 0
	}
	killed := map[int]bool{}
	deadline := time.Now().Add(10 * time.Second) // a process stuck in the kernel
	for time.Now().Before(deadline) {
		left, fresh := 0, 0
		for _, pid := range inNamespace(ns) {
			left++
			if !killed[pid] && killIn(pid, ns) == nil {
				killed[pid] = true
				fresh++
			}
		}
		if left == 0 {
			break
		}
		if fresh == 0 {
			time.Sleep(time.Millisecond) // only the dying are left
		}
	}
	return len(killed)
}

// killIn kills process pid if it is still in mount namespace ns: by a
// pidfd taken before the check, so that a pid reused meanwhile by a
// process outside it is not hit.
func killIn(pid int, ns string) error {
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if got, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/ns/mnt"); err != nil || got != ns {
		return unix.ESRCH
	}
	return unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0)
}

// pids lists the processes in /proc.
func pids() []int {
	d, err := os.Open("/proc")
	if err != nil {
		return nil
	}
	defer d.Close()
	names, _ := d.Readdirnames(-1)
	out := make([]int, 0, len(names))
	for _, n := range names {
		if pid, err := strconv.Atoi(n); err == nil {
			out = append(out, pid)
		}
	}
	return out
}
