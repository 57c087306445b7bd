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
#define SIDECAR_PLAN 4
#define SIDECAR_ACK 5

/* The stub's pid, which the exec makes the target's. */
static long target_pid;

/* ns_each calls fn(pid, arg) for every process in mount namespace ns (as
 * readlink /proc/PID/ns/mnt says it) and returns how many it found. */
static int ns_each(const char *ns, const char *arg, int (*fn)(long pid, const char *arg))
{
	long d = sys_open("/proc", O_RDONLY | O_CLOEXEC);
	if (d < 0)
		return 0;
	static char buf[16384];
	char link[64], path[64], num[DECIMAL_SIZE];
	int found = 0;
	long n;
	while ((n = sys_getdents64((int)d, buf, sizeof buf)) > 0) {
		for (long off = 0; off < n;) {
			u16 reclen = (u16)((u8)buf[off + 16] | (u8)buf[off + 17] << 8);
			const char *name = buf + off + 19;
			off += reclen;
			long pid = 0;
			for (const char *c = name; *c; c++)
				pid = *c >= '0' && *c <= '9' ? pid * 10 + (*c - '0') : -1;
			if (pid <= 0 || pid > 0x7fffffff)
				continue;
			const char *p = decimal(pid, num);
			size_t pl = slen(p);
			memcpy(path, "/proc/", 6);
			memcpy(path + 6, p, pl);
			memcpy(path + 6 + pl, "/ns/mnt", 8);
			long ln = sys_readlink(path, link, sizeof link - 1);
			if (ln <= 0)
				continue;
			link[ln] = 0;
			if (!memcmp(link, ns, ln + 1)) {
				found++;
				fn(pid, arg);
			}
		}
	}
	sys_close(d);
	return found;
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
	adopt_one(pid, procs);
	if (ns)
		ns_each(ns, procs, adopt_one);
}

/* sidecar_main is the sidecar: it reads its plan (the run's mount
 * namespace, then its cgroup) until the stub execs the target or ends;
 * moves the run into the cgroup; waits for the target to end by any means;
 * then kills what it left and removes the cgroup. */
static void __attribute__((noreturn)) sidecar_main(void)
{
	/* The plan: the namespace and the cgroup, a line each. */
	char plan[PATH_MAX + 64];
	long n = 0, got;
	int lines = 0;
	while (lines < 2 && n < (long)sizeof plan - 1 && (got = sys_read(SIDECAR_PLAN, plan + n, 1)) != 0) {
		if (got < 0 && got != -EINTR)
			break;
		if (got > 0 && plan[n++] == '\n')
			lines++;
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
	sys_write(SIDECAR_ACK, "", 1);
	sys_close(SIDECAR_ACK);
	/* Then the exec closes the pipe; a failed one calls the plan off. */
	char c = 0;
	while ((got = sys_read(SIDECAR_PLAN, &c, 1)) != 0 && got != 1 && got == -EINTR)
		;
	if (got == 1 && c == PLAN_OFF)
		sys_exit(0);
	cgroup_adopt(dir, nsfd >= 0 ? ns : 0, target_pid);
	if (nsfd >= 0)
		sys_close(nsfd); /* the cgroup knows the run from now on */
	struct kpollfd pfd = {SIDECAR_PIDFD, POLLIN, 0};
	while (sys_poll(&pfd, 1, 0) == -EINTR)
		;
	cgroup_kill(dir);
	cgroup_remove(dir);
	sys_exit(0);
}

/* sidecar_enter makes this process, the grandchild of the stub, the
 * sidecar: a session of its own; no terminal signals; /dev/null for its
 * standard streams, so it holds none of the caller's pipes open; the
 * target's pidfd and the plan's pipe as descriptors 3 and 4; nothing
 * else. It then runs from a copy of the stub in memory: as a fork of
 * ours, it would keep the packed file busy (ETXTBSY to a writer) for as
 * long as it lives, a moment after the target. */
static void __attribute__((noreturn)) sidecar_enter(int pidfd, int plan, int ack)
{
	sys_setsid();
	static const int quiet[] = {SIGINT, SIGQUIT, SIGHUP, SIGTSTP};
	struct ksigaction ign = {(void *)SIG_IGN, 0, 0, 0};
	for (size_t i = 0; i < sizeof quiet / sizeof *quiet; i++)
		sys_rt_sigaction(quiet[i], &ign, 0);
	/* Out of the way first (close-on-exec, at 100 and up), then into
	 * place. */
	long pfd = sys_dupfd_cloexec(pidfd, 100), pl = sys_dupfd_cloexec(plan, 100), ak = sys_dupfd_cloexec(ack, 100);
	long self_fd = sys_dupfd_cloexec(file, 100);
	long null = sys_open("/dev/null", O_RDWR | O_CLOEXEC);
	if (pfd < 0 || pl < 0 || ak < 0 || null < 0)
		sys_exit(1);
	for (int fd = 0; fd < 3; fd++)
		sys_dup3((int)null, fd);
	sys_dup3((int)pfd, SIDECAR_PIDFD);
	sys_dup3((int)pl, SIDECAR_PLAN);
	sys_dup3((int)ak, SIDECAR_ACK);
	long mfd = sys_memfd_create("parker-sidecar", MFD_CLOEXEC | MFD_EXEC);
	if (mfd == -EINVAL)
		mfd = sys_memfd_create("parker-sidecar", MFD_CLOEXEC);
	static char chunk[16384];
	u64 off = 0;
	while (mfd >= 0 && self_fd >= 0 && off < tr.stub_size) {
		u64 want = tr.stub_size - off < sizeof chunk ? tr.stub_size - off : sizeof chunk;
		long n = sys_pread((int)self_fd, chunk, want, off);
		if (n <= 0 || sys_write((int)mfd, chunk, n) != n)
			break;
		off += n;
	}
	/* Everything else goes at the exec (Linux 5.11+), or now. */
	if (sys_close_range(SIDECAR_ACK + 1, ~0U, CLOSE_RANGE_CLOEXEC) < 0)
		for (int fd = SIDECAR_ACK + 1; fd < 1024; fd++)
			if (fd != mfd)
				sys_close(fd);
	if (mfd >= 0 && off == tr.stub_size) {
		char num[DECIMAL_SIZE];
		char *args[] = {SIDECAR_ARG0, 0};
		char *env[] = {cat(ENV_SIDECAR, decimal(target_pid, num), ""), 0};
		sys_execveat((int)mfd, args, env);
	}
	sidecar_main(); /* in place, then */
}

/* The stub's ends of the pipes to its sidecar. */
struct sidecar {
	int plan; /* the plan goes out here (close-on-exec: the exec tells
		   * the sidecar the plan holds) */
	int ack;  /* and the sidecar's answer comes back here */
};

/* sidecar_launch starts the sidecar (supervisor.Launch), by a double fork,
 * so that it is nobody's child but init's. */
static struct sidecar sidecar_launch(void)
{
	target_pid = sys_getpid();
	long pidfd = sys_pidfd_open(target_pid);
	int p[2], a[2];
	if (pidfd < 0 || sys_pipe2(p, O_CLOEXEC) < 0 || sys_pipe2(a, O_CLOEXEC) < 0)
		helper();
	long pid = sys_clone(SIGCHLD, 0);
	if (pid == 0) {
		if (sys_clone(SIGCHLD, 0) == 0)
			sidecar_enter((int)pidfd, p[0], a[1]);
		sys_exit(0);
	}
	if (pid < 0)
		helper();
	int ws = 0;
	while (sys_wait4(pid, &ws, 0) == -EINTR)
		;
	sys_close(pidfd);
	sys_close(p[0]);
	sys_close(a[1]);
	return (struct sidecar){p[1], a[0]};
}

/* sidecar_brief sends the sidecar its plan and waits for its answer: it
 * has pinned our namespace (Handle.Commit). */
static void sidecar_brief(struct sidecar sc, const char *ns, const char *cgroup)
{
	const char *plan = cat(ns, "\n", cat(cgroup, "\n", ""));
	sys_write(sc.plan, plan, slen(plan));
	char c;
	while (sys_read(sc.ack, &c, 1) == -EINTR)
		;
	sys_close(sc.ack);
}

/* exec_target replaces us with the target (supervisor.Exec); it returns
 * -errno when it could not be executed. */
static long exec_target(const struct target *t)
{
	long e = 0;
	if (t->dir)
		e = sys_chdir(t->dir);
	if (!e)
		e = sys_execve(t->path, t->args, t->env);
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
