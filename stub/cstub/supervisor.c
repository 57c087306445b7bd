/* supervisor.c: the target, run as our child, as package supervisor runs
 * it (the reference): signals relayed to it (signals.c), its orphans
 * killed when it ends, and its end passed on as ours. */
#include "stub.h"

/* The target (supervisor.Config). */
struct target {
	const char *path; /* absolute, or relative to dir (or ours) */
	char **args;      /* argv, argv[0] included */
	char **env;
	const char *dir; /* working directory, or 0 to keep ours */
};

/* exec_target runs in the child: it becomes the target, or reports on
 * errfd why it could not. */
static void __attribute__((noreturn)) exec_target(const struct target *t, int errfd, const u64 *mask)
{
	/* The target dies with us, even when we are SIGKILLed. */
	sys_prctl(PR_SET_PDEATHSIG, SIGKILL);
	/* Our handlers go before the caller's mask comes back, so a signal
	 * now has its default effect, as after exec. */
	default_signals();
	long e = 0;
	if (t->dir)
		e = sys_chdir(t->dir);
	if (!e) {
		sys_rt_sigprocmask(SIG_SETMASK, mask, 0);
		e = sys_execve(t->path, t->args, t->env);
	}
	int code = (int)-e;
	sys_write(errfd, &code, sizeof code);
	sys_exit(EXIT_NOT_FOUND);
}

/* start starts the target as our child with every signal blocked, so that
 * none runs our handler in the child before exec; the child gets the
 * caller's mask back, which start saves in *mask. It returns the target's
 * pid, with its pidfd in *pidfd (-1 before Linux 5.2), or -errno when it
 * could not be executed: then it never ran, has been reaped, and the
 * caller's mask is back. An exec failure comes back through a close-on-exec
 * pipe. */
static long start(const struct target *t, int *pidfd, u64 *mask)
{
	u64 all = ~(u64)0;
	sys_rt_sigprocmask(SIG_BLOCK, &all, mask);
	int pfd[2];
	if (sys_pipe2(pfd, O_CLOEXEC) < 0) {
		sys_rt_sigprocmask(SIG_SETMASK, mask, 0); /* not for the helper */
		helper();
	}
	*pidfd = -1;
	long pid = sys_clone(CLONE_PIDFD | SIGCHLD, pidfd);
	if (pid == -EINVAL) /* before Linux 5.2: no pidfd, signals go by pid */
		pid = sys_clone(SIGCHLD, 0);
	if (pid == 0) {
		sys_close(pfd[0]);
		exec_target(t, pfd[1], mask);
	}
	if (pid < 0) {
		sys_rt_sigprocmask(SIG_SETMASK, mask, 0);
		helper();
	}
	sys_close(pfd[1]);
	int code = 0;
	long got;
	do
		got = sys_read(pfd[0], &code, sizeof code);
	while (got == -EINTR);
	sys_close(pfd[0]);
	if (got == sizeof code) {
		sys_wait4(pid, 0, 0);
		sys_rt_sigprocmask(SIG_SETMASK, mask, 0);
		return -code;
	}
	return pid;
}

/* reap waits for the target, reaping any orphan that ends meanwhile, and
 * returns its wait status. */
static int reap(long pid)
{
	int ws = 0;
	for (;;) {
		long got = sys_wait4(-1, &ws, 0);
		if (got == pid)
			return ws;
		if (got < 0 && got != -EINTR) {
			put("wait for target: ");
			put_errno(-got);
			fail(EXIT_FAILURE_PARKER);
		}
	}
}

/* kill_orphans kills and reaps every child we have inherited as a child
 * subreaper, repeatedly, since killing one hands us its children. */
static void kill_orphans(void)
{
	if (sys_wait4(-1, 0, WNOHANG) == -ECHILD)
		return; /* usually: no /proc reading */
	/* We are single-threaded: all our children are the main thread's. */
	char num[DECIMAL_SIZE];
	char *path = cat("/proc/self/task/", decimal(relay_self, num), "/children");
	static char buf[65536];
	for (int round = 0; round < 1000; round++) {
		long fd = sys_open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			return;
		long n = 0, got;
		while (n < (long)sizeof buf && (got = sys_read(fd, buf + n, sizeof buf - n)) > 0)
			n += got;
		sys_close(fd);
		/* "PID PID ... ": only a number followed by its space counts, so
		 * one cut off by a full buffer is never taken for another pid
		 * (the next round reads it whole). */
		int kids = 0;
		long pid = -1;
		for (long i = 0; i < n; i++) {
			char c = buf[i];
			if (c >= '0' && c <= '9') {
				pid = (pid < 0 ? 0 : pid * 10) + (c - '0');
			} else {
				if (pid > 0 && sys_kill(pid, SIGKILL) == 0)
					kids++;
				pid = -1;
			}
		}
		if (!kids)
			return;
		/* One blocking reap per child killed: each of them dies. */
		while (kids--)
			if (sys_wait4(-1, 0, 0) == -ECHILD)
				break;
	}
}

/* supervise runs the target until it ends, relaying signals to it, then
 * kills what it left behind (supervisor.Run). It returns 0 with the
 * target's wait status in *ws, or -errno when the target could not be
 * executed. */
static long supervise(const struct target *t, int *ws)
{
	/* Orphans of the target become our children, so we can kill them. */
	sys_prctl(PR_SET_CHILD_SUBREAPER, 1);
	int pidfd;
	u64 mask;
	long pid = start(t, &pidfd, &mask);
	if (pid < 0)
		return pid;
	relay_to(pid, pidfd, &mask);
	*ws = reap(pid);
	relay_stop();
	kill_orphans();
	return 0;
}

/* exit_as ends this process the way the target ended (supervisor.Exit):
 * with its exit status, or by the same signal (without a core dump of
 * ours), or, for a signal whose default action does not kill, with
 * 128+N. */
static void __attribute__((noreturn)) exit_as(int ws)
{
	if (WIFEXITED(ws))
		sys_exit(WEXITSTATUS(ws));
	int sig = WTERMSIG(ws);
	struct krlimit none = {0, 0};
	sys_setrlimit(RLIMIT_CORE, &none);
	struct ksigaction dfl = {(void *)SIG_DFL, 0, 0, 0};
	sys_rt_sigaction(sig, &dfl, 0);
	u64 set = sigbit(sig);
	sys_rt_sigprocmask(SIG_UNBLOCK, &set, 0);
	sys_tgkill(relay_self, relay_self, sig);
	sys_exit(EXIT_SIGNAL_BASE + sig);
}
