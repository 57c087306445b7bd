/* supervisor.c: the target in the stub's place, and the cleanup sidecar
 * beside it, as package supervisor does them (the reference; see
 * supervisor/sidecar.go for why each step is as it is). */
#include "stub.h"

/* The target (supervisor.Config). */
struct target {
	const char *path; /* absolute, or relative to dir (or ours) */
	char **args;      /* argv, argv[0] included */
	char **env;
	const char *dir; /* working directory, or 0 to keep ours */
};

/* How the sidecar is started from its copy in memory: argv[0] and the
 * one environment variable, which carries the target's pid. */
#define SIDECAR_ARG0 "parker-sidecar"
/* The byte that calls a plan off, written after it. */
#define PLAN_OFF '!'

#define ENV_SIDECAR "PARKER_SIDECAR=c:"

/* The sidecar's descriptors. */
#define SIDECAR_PIDFD 3
#define SIDECAR_SOCK 4 /* the plan comes in and the answer goes out here */
#define SIDECAR_EXE 5  /* its copy in memory, until it runs from it */

/* The stub's pid, which the exec makes the target's. */
static long target_pid;

/* pid_ns reads the mount namespace of process pid (readlink
 * /proc/PID/ns/mnt) into link (64 bytes); it returns 0, or -1. */
static int pid_ns(long pid, char link[64])
{
	/* No allocation: ns_kill may scan /proc many times. */
	char path[64], num[DECIMAL_SIZE];
	const char *p = decimal(pid, num);
	size_t pl = slen(p);
	memcpy(path, "/proc/", 6);
	memcpy(path + 6, p, pl);
	memcpy(path + 6 + pl, "/ns/mnt", 8);
	long ln = sys_readlink(path, link, 63);
	if (ln <= 0)
		return -1;
	link[ln] = 0;
	return 0;
}

/* ns_each calls fn(pid, arg) for every process in mount namespace ns (as
 * readlink /proc/PID/ns/mnt says it) and returns how many it found. */
struct ns_match {
	const char *ns, *arg;
	int (*fn)(long pid, const char *arg);
};

static int ns_match(const char *name, const void *m_)
{
	const struct ns_match *m = m_;
	long pid = 0;
	for (const char *c = name; *c; c++)
		pid = *c >= '0' && *c <= '9' && pid >= 0 ? pid * 10 + (*c - '0') : -1;
	char link[64];
	if (pid <= 0 || pid > 0x7fffffff || pid_ns(pid, link) || !streq(link, m->ns))
		return 0;
	m->fn(pid, m->arg);
	return 1;
}

static int ns_each(const char *ns, const char *arg, int (*fn)(long pid, const char *arg))
{
	struct ns_match m = {ns, arg, fn};
	return dir_each("/proc", &m, ns_match);
}

static int adopt_one(long pid, const char *procs)
{
	char num[DECIMAL_SIZE];
	return (int)write_str(procs, decimal(pid, num));
}

/* cgroup_adopt moves the process pid, then every process of mount
 * namespace ns, into the cgroup dir (Join): what the target forked before
 * it was moved is moved after it. One that has left the namespace stays
 * out; without limits, it can only escape the cgroup's kill, not the
 * namespace's. */
static void cgroup_adopt(const char *dir, const char *ns, long pid)
{
	const char *procs = cat(dir, "/cgroup.procs", "");
	/* By pid only while the pidfd says it is still the target's. */
	struct kpollfd now = {SIDECAR_PIDFD, POLLIN, 0};
	struct ktimespec zero = {0, 0};
	if (sys_poll(&now, 1, &zero) == 0)
		adopt_one(pid, procs);
	if (ns)
		ns_each(ns, procs, adopt_one);
}

/* kill_one kills process pid if it is still in mount namespace ns: by a
 * pidfd taken before the check, so that a pid reused meanwhile by a
 * process outside it is not hit. */
static int kill_one(long pid, const char *ns)
{
	long fd = sys_pidfd_open((int)pid);
	if (fd < 0)
		return (int)fd;
	char link[64];
	long r = pid_ns(pid, link) || !streq(link, ns) ? 0 : sys_pidfd_send_signal((int)fd, SIGKILL);
	sys_close(fd);
	return (int)r;
}

/* ns_kill kills every process of mount namespace ns until none is left
 * (a process may fork while it kills), for up to 10 s (one stuck in the
 * kernel); the caller holds ns open (killNamespace). */
static void ns_kill(const char *ns)
{
	struct ktimespec start, now;
	if (sys_clock_gettime(CLOCK_MONOTONIC, &start) < 0)
		return;
	while (ns_each(ns, ns, kill_one) && sys_clock_gettime(CLOCK_MONOTONIC, &now) == 0 &&
	       now.sec - start.sec < 10)
		sys_nanosleep(&(struct ktimespec){0, 1000 * 1000}); /* the dying leave it */
}

/* sidecar_main is the sidecar: it reads its plan (the run's mount
 * namespace, then its cgroup, or an empty line for none) until the stub
 * execs the target or ends; moves the run into the cgroup; waits for the
 * target to end by any means; then kills what it left and removes the
 * cgroup, or, without one, kills what is left in the namespace. */
static void __attribute__((noreturn)) sidecar_main(void)
{
	/* The plan: the namespace and the cgroup, a line each, in one send. */
	char plan[PATH_MAX + 64];
	long n = 0, got;
	int lines = 0;
	while (lines < 2 && n < (long)sizeof plan - 1) {
		got = sys_read(SIDECAR_SOCK, plan + n, sizeof plan - 1 - n);
		if (got == -EINTR)
			continue;
		if (got <= 0)
			break;
		for (long k = n; k < n + got; k++)
			lines += plan[k] == '\n';
		n += got;
	}
	if (lines < 2)
		sys_exit(0); /* no plan: the stub handed the run over, or died first */
	plan[n - 1] = 0;
	char *ns = plan, *dir = plan;
	while (*dir != '\n')
		dir++;
	*dir++ = 0;
	/* Pin the namespace while the stub, which waits for our answer, is
	 * surely in it: a namespace's number is another's once it has gone,
	 * so the sidecar goes by the number only while it holds it open. */
	char num[DECIMAL_SIZE], pinned[64];
	long nsfd = sys_open(cat("/proc/", decimal(target_pid, num), "/ns/mnt"), O_RDONLY | O_CLOEXEC);
	long pl = nsfd < 0 ? -1 : sys_readlink(fd_path((int)nsfd, ""), pinned, sizeof pinned - 1);
	if (pl <= 0 || (pinned[pl] = 0, memcmp(pinned, ns, pl + 1))) {
		if (nsfd >= 0)
			sys_close(nsfd);
		nsfd = -1;
	}
	if (sys_send(SIDECAR_SOCK, "", 1, MSG_NOSIGNAL) != 1)
		sys_exit(0); /* the stub is gone: it removes its cgroup, or a later run does */
	/* Then the exec closes the stub's end; a failed one calls the plan
	 * off first. */
	char c = 0;
	while ((got = sys_read(SIDECAR_SOCK, &c, 1)) == -EINTR)
		;
	if (got == 1 && c == PLAN_OFF)
		sys_exit(0);
	if (*dir) {
		cgroup_adopt(dir, nsfd >= 0 ? ns : 0, target_pid);
		if (nsfd >= 0)
			sys_close(nsfd); /* the cgroup knows the run from now on */
	}
	struct kpollfd pfd = {SIDECAR_PIDFD, POLLIN, 0};
	while (sys_poll(&pfd, 1, 0) == -EINTR)
		;
	if (*dir) {
		cgroup_kill(dir);
		cgroup_remove(dir);
		cgroup_clean_stale(dir);
	} else if (nsfd >= 0) {
		ns_kill(ns);
	}
	sys_exit(0);
}

/* sidecar_enter makes this process, the grandchild of the stub, the
 * sidecar: a session of its own; no terminal signals, no SIGPIPE;
 * /dev/null for its standard streams, so it holds none of the caller's
 * pipes open; the target's pidfd and its socket to the stub as descriptors
 * 3 and 4; nothing else. It then runs from a copy of the stub in memory: as
 * a fork of ours, it would keep the packed file busy (ETXTBSY to a writer)
 * for as long as it lives, a moment after the target. */
static void __attribute__((noreturn)) sidecar_enter(int pidfd, int sock)
{
	sys_setsid();
	static const int quiet[] = {SIGINT, SIGQUIT, SIGHUP, SIGTSTP, SIGPIPE};
	struct ksigaction ign = {(void *)SIG_IGN, 0, 0, 0};
	for (size_t i = 0; i < sizeof quiet / sizeof *quiet; i++)
		sys_rt_sigaction(quiet[i], &ign, 0);
	/* Out of the way first (close-on-exec, above 5), then into place. */
	long pfd = sys_dupfd_cloexec(pidfd, SIDECAR_EXE + 1), sk = sys_dupfd_cloexec(sock, SIDECAR_EXE + 1);
	long self_fd = sys_dupfd_cloexec(file, SIDECAR_EXE + 1);
	long null = sys_open("/dev/null", O_RDWR | O_CLOEXEC);
	if (pfd < 0 || sk < 0 || null < 0)
		sys_exit(1);
	for (int fd = 0; fd < 3; fd++)
		sys_dup3((int)null, fd);
	sys_dup3((int)pfd, SIDECAR_PIDFD);
	sys_dup3((int)sk, SIDECAR_SOCK);
	long mfd = sys_memfd_create("parker-sidecar", MFD_CLOEXEC | MFD_EXEC);
	if (mfd == -EINVAL)
		mfd = sys_memfd_create("parker-sidecar", MFD_CLOEXEC);
	if (mfd >= 0 && mfd <= SIDECAR_EXE) /* the caller closed some of 0 to 2 */
		mfd = sys_dupfd_cloexec((int)mfd, SIDECAR_EXE + 1);
	static char chunk[16384];
	u64 off = 0;
	while (mfd >= 0 && self_fd >= 0 && off < tr.stub_size) {
		u64 want = tr.stub_size - off < sizeof chunk ? tr.stub_size - off : sizeof chunk;
		long n = sys_pread((int)self_fd, chunk, want, off);
		if (n <= 0 || sys_write((int)mfd, chunk, n) != n)
			break;
		off += n;
	}
	int copied = mfd >= 0 && off == tr.stub_size;
	if (copied)
		copied = sys_dup3_cloexec((int)mfd, SIDECAR_EXE) == SIDECAR_EXE;
	/* Nothing else stays open: not the stub's end of the socket, not the
	 * packed file, not a pipe of the caller's. */
	int first = copied ? SIDECAR_EXE + 1 : SIDECAR_EXE;
	if (sys_close_range(first, ~0U, 0) < 0) /* before Linux 5.9 */
		for (int fd = first; fd < 1024; fd++)
			sys_close(fd);
	if (copied) {
		char num[DECIMAL_SIZE];
		char *args[] = {SIDECAR_ARG0, 0};
		char *env[] = {cat(ENV_SIDECAR, decimal(target_pid, num), ""), 0};
		sys_execveat(SIDECAR_EXE, args, env);
		sys_close(SIDECAR_EXE);
	}
	sidecar_main(); /* in place, then */
}

/* sidecar_launch starts the sidecar (supervisor.Launch), by a double fork,
 * so that it is nobody's child but init's, and returns the stub's end of
 * the socket between them (close-on-exec: the exec tells the sidecar the
 * plan holds). The middle child exits without a signal, so that a caller
 * who blocks SIGCHLD leaves none pending for the target. */
static int sidecar_launch(void)
{
	target_pid = sys_getpid();
	long pidfd = sys_pidfd_open(target_pid);
	int s[2];
	if (pidfd < 0 || sys_socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, s) < 0)
		helper();
	long pid = sys_clone(0, 0);
	if (pid == 0) {
		long side = sys_clone(SIGCHLD, 0);
		if (side == 0) {
			sys_close(s[0]);
			sidecar_enter((int)pidfd, s[1]);
		}
		sys_exit(side < 0);
	}
	int ws = -1;
	while (pid > 0 && sys_wait4(pid, &ws, WALL) == -EINTR)
		;
	sys_close(pidfd);
	sys_close(s[1]);
	if (pid < 0 || !WIFEXITED(ws) || WEXITSTATUS(ws) != 0)
		helper();
	return s[0];
}

/* sidecar_brief sends the sidecar its plan and waits for its answer: it
 * has pinned our namespace (Handle.Commit). It returns 0, or -1 when the
 * sidecar is gone. */
static int sidecar_brief(int sock, const char *ns, const char *cgroup)
{
	const char *plan = cat(ns, "\n", cat(cgroup, "\n", ""));
	long n = slen(plan);
	if (sys_send(sock, plan, n, MSG_NOSIGNAL) != n)
		return -1;
	char c;
	long got;
	while ((got = sys_read(sock, &c, 1)) == -EINTR)
		;
	return got == 1 ? 0 : -1;
}

/* exec_target replaces us with the target (supervisor.Exec); it returns
 * -errno when it could not be executed. */
static long exec_target(const struct target *t)
{
	long e = 0, back = -1;
	if (t->dir) {
		/* A failed exec goes back, for the helper to start where we did. */
		back = sys_open(".", O_PATH | O_CLOEXEC);
		e = sys_chdir(t->dir);
	}
	if (!e)
		e = sys_execve(t->path, t->args, t->env);
	if (back >= 0) {
		sys_fchdir((int)back);
		sys_close(back);
	}
	return e;
}

/* sidecar_started tells whether this process is the sidecar, started from
 * its copy in memory (sidecar_enter), and if so runs it. */
static void sidecar_started(void)
{
	if (argc != 1 || !argv[0] || memcmp(argv[0], SIDECAR_ARG0, sizeof SIDECAR_ARG0) || !envp[0] ||
	    !has_prefix(envp[0], ENV_SIDECAR) || envp[1])
		return;
	long pid = 0;
	for (const char *c = envp[0] + sizeof ENV_SIDECAR - 1; *c >= '0' && *c <= '9'; c++)
		pid = pid * 10 + (*c - '0');
	target_pid = pid;
	sidecar_main();
}
