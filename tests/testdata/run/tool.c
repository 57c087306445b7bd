/* tool: the target program of the run tests, one subcommand per behaviour
 * checked (see tests/run_*_test.go). Built with gcc by the tests. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t count;
static int trap_code;

static void on_count(int sig) { (void)sig; count++; }

/* on_report reports each signal as it is caught ("sig N"), with the one
 * write a handler may make, and counts it. */
static volatile sig_atomic_t caught[65];
static void on_report(int sig)
{
	char b[16];
	int i = sizeof b;
	b[--i] = '\n';
	for (int n = sig; i == (int)sizeof b - 1 || n; n /= 10)
		b[--i] = '0' + n % 10;
	memcpy(b + i - 4, "sig ", 4);
	i -= 4;
	ssize_t w = write(1, b + i, sizeof b - i);
	(void)w;
	caught[sig]++;
}

/* drain reads stdin until its end. */
static void drain(void)
{
	char buf[256];
	ssize_t n;
	while ((n = read(0, buf, sizeof buf)) != 0)
		if (n < 0 && errno != EINTR)
			break;
}

/* sigs adds the signals in list (comma-separated numbers; "-" for none)
 * to set. */
static void sigs(const char *list, sigset_t *set)
{
	sigemptyset(set);
	for (const char *p = list; *p && *p != '-';) {
		char *end;
		sigaddset(set, (int)strtol(p, &end, 10));
		p = *end ? end + 1 : end;
	}
}
static void on_trap(int sig) { (void)sig; _exit(trap_code); }

static int not_dots(const struct dirent *e) { return strcmp(e->d_name, ".") && strcmp(e->d_name, ".."); }

static void ms_sleep(long ms) {
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

int main(int argc, char **argv) {
	const char *cmd = argc > 1 ? argv[1] : "";
	if (!strcmp(cmd, "args")) {
		/* argv[0], then each argument hex-encoded, one per line, so the
		 * test compares bytes exactly (newlines, empty strings). */
		printf("argv0=%s\n", argv[0]);
		for (int i = 2; i < argc; i++) {
			printf("arg=");
			for (const unsigned char *p = (const unsigned char *)argv[i]; *p; p++)
				printf("%02x", *p);
			printf("\n");
		}
		return 0;
	}
	if (!strcmp(cmd, "reexec")) {
		/* Run ourselves again, found as a program finds itself: through
		 * argv[0] (execvp searches PATH when it has no slash). */
		char *again[] = {argv[0], "args", NULL};
		execvp(argv[0], again);
		fprintf(stderr, "tool: re-exec %s: %s\n", argv[0], strerror(errno));
		return 127;
	}
	if (!strcmp(cmd, "exit") && argc > 2)
		return atoi(argv[2]);
	if (!strcmp(cmd, "raise") && argc > 2) {
		int sig = atoi(argv[2]);
		sigset_t set;
		signal(sig, SIG_DFL);
		sigemptyset(&set);
		sigaddset(&set, sig);
		sigprocmask(SIG_UNBLOCK, &set, NULL);
		raise(sig);
		for (;;)
			pause();
	}
	if (!strcmp(cmd, "env") && argc > 2) {
		for (int i = 2; i < argc; i++) {
			const char *v = getenv(argv[i]);
			printf("%s=%s\n", argv[i], v ? v : "<unset>");
		}
		return 0;
	}
	if (!strcmp(cmd, "cat")) {
		char buf[65536];
		ssize_t n;
		while ((n = read(0, buf, sizeof buf)) > 0)
			if (fwrite(buf, 1, n, stdout) != (size_t)n)
				return 1;
		return n < 0;
	}
	if (!strcmp(cmd, "big") && argc > 2) {
		/* N bytes: the pattern i%251 byte by byte. */
		long long n = atoll(argv[2]);
		static unsigned char buf[1 << 16];
		long long off = 0;
		while (off < n) {
			size_t k = n - off < (long long)sizeof buf ? (size_t)(n - off) : sizeof buf;
			for (size_t i = 0; i < k; i++)
				buf[i] = (unsigned char)((off + i) % 251);
			if (fwrite(buf, 1, k, stdout) != k)
				return 1;
			off += k;
		}
		return 0;
	}
	if (!strcmp(cmd, "cwd")) {
		char buf[4096];
		if (!getcwd(buf, sizeof buf))
			return 1;
		printf("%s\n", buf);
		return 0;
	}
	if (!strcmp(cmd, "sigcount")) {
		/* Count SIGINTs: report how many arrived within 500 ms of the
		 * first. */
		/* SIGINT stays blocked except inside sigsuspend, so one that
		 * arrives between the test of count and the wait is not lost. */
		sigset_t block, old;
		sigemptyset(&block);
		sigaddset(&block, SIGINT);
		sigprocmask(SIG_BLOCK, &block, &old);
		signal(SIGINT, on_count);
		printf("ready\n");
		fflush(stdout);
		while (!count)
			sigsuspend(&old);
		sigprocmask(SIG_SETMASK, &old, NULL);
		ms_sleep(500);
		printf("count=%d\n", (int)count);
		return 0;
	}
	if (!strcmp(cmd, "trap") && argc > 3) {
		/* Exit with CODE on signal N. */
		trap_code = atoi(argv[3]);
		signal(atoi(argv[2]), on_trap);
		printf("ready\n");
		fflush(stdout);
		for (;;)
			pause();
	}
	if (!strcmp(cmd, "tty")) {
		printf("isatty=%d pgrp=%d tpgrp=%d\n", isatty(0), (int)getpgrp(), (int)tcgetpgrp(0));
		char line[256];
		if (fgets(line, sizeof line, stdin))
			printf("read=%s", line);
		return 0;
	}
	if (!strcmp(cmd, "sleep") && argc > 2) {
		printf("sleeping\n");
		fflush(stdout);
		ms_sleep(atol(argv[2]));
		return 0;
	}
	if (!strcmp(cmd, "disp") && argc > 2) {
		/* The disposition of signal N inherited at start. */
		struct sigaction sa;
		if (sigaction(atoi(argv[2]), NULL, &sa))
			return 1;
		printf("%s\n", sa.sa_handler == SIG_IGN ? "ignored" : sa.sa_handler == SIG_DFL ? "default" : "handled");
		return 0;
	}
	if (!strcmp(cmd, "ls") && argc > 2) {
		/* The names in DIR, sorted, one per line. */
		struct dirent **ents;
		int n = scandir(argv[2], &ents, not_dots, alphasort);
		if (n < 0) {
			fprintf(stderr, "tool: ls %s: %s\n", argv[2], strerror(errno));
			return 1;
		}
		for (int i = 0; i < n; i++)
			printf("%s\n", ents[i]->d_name);
		return 0;
	}
	if (!strcmp(cmd, "read") && argc > 2) {
		/* FILE's contents. */
		FILE *f = fopen(argv[2], "r");
		if (!f) {
			fprintf(stderr, "tool: read %s: %s\n", argv[2], strerror(errno));
			return 1;
		}
		int c;
		while ((c = getc(f)) != EOF)
			putchar(c);
		return 0;
	}
	if (!strcmp(cmd, "write") && argc > 3) {
		/* TEXT and a newline into FILE, created or truncated. */
		FILE *f = fopen(argv[2], "w");
		if (!f || fprintf(f, "%s\n", argv[3]) < 0 || fclose(f)) {
			fprintf(stderr, "tool: write %s: %s\n", argv[2], strerror(errno));
			return 1;
		}
		return 0;
	}
	if (!strcmp(cmd, "self") && argc > 2) {
		/* Our pid into PIDFILE, the executable /proc/self/exe names on
		 * stdout, then wait for a signal to end us. */
		char exe[4096];
		ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
		FILE *f = fopen(argv[2], "w");
		if (n < 0 || !f || fprintf(f, "%d\n", (int)getpid()) < 0 || fclose(f)) {
			fprintf(stderr, "tool: self: %s\n", strerror(errno));
			return 1;
		}
		exe[n] = 0;
		printf("exe=%s\nready\n", exe);
		fflush(stdout);
		for (;;)
			pause();
	}
	if (!strcmp(cmd, "handlers")) {
		/* A handler for every signal we may catch, each reported as it
		 * arrives ("sig N"); at the end of stdin, how many of each
		 * arrived ("counts N:COUNT ..."). The list of those handled
		 * comes first: the C library keeps some for itself. */
		struct sigaction sa;
		memset(&sa, 0, sizeof sa);
		sa.sa_handler = on_report; /* no SA_RESTART: a read ends early */
		sigfillset(&sa.sa_mask);
		printf("handled");
		for (int n = 1; n <= 64; n++)
			if (sigaction(n, &sa, NULL) == 0)
				printf(" %d", n);
		printf("\nready\n");
		fflush(stdout);
		drain();
		sigset_t all;
		sigfillset(&all);
		sigprocmask(SIG_BLOCK, &all, NULL);
		printf("counts");
		for (int n = 1; n <= 64; n++)
			if (caught[n])
				printf(" %d:%d", n, (int)caught[n]);
		printf("\n");
		return 0;
	}
	if (!strcmp(cmd, "daemon") && argc > 3) {
		/* A daemon: double-forked into a session of its own, its
		 * standard streams on /dev/null and nothing else open, it
		 * replaces OUT every 10 ms with a round number and the
		 * contents of FILE (or why it could not read them). We print
		 * daemon=PID, then wait for the end of stdin. */
		int p[2];
		if (pipe(p))
			return 1;
		pid_t c = fork();
		if (c == 0) {
			if (fork() == 0) {
				setsid();
				pid_t me = getpid();
				ssize_t w = write(p[1], &me, sizeof me);
				(void)w;
				int null = open("/dev/null", O_RDWR);
				for (int fd = 0; fd < 3; fd++)
					dup2(null, fd);
				for (int fd = 3; fd < 1024; fd++)
					close(fd);
				char tmp[4096];
				snprintf(tmp, sizeof tmp, "%s.tmp", argv[3]);
				for (long round = 1;; round++) {
					FILE *o = fopen(tmp, "w");
					FILE *in = fopen(argv[2], "r");
					if (o) {
						fprintf(o, "%ld\n", round);
						if (!in)
							fprintf(o, "ERR %s\n", strerror(errno));
						for (int ch; in && (ch = getc(in)) != EOF;)
							putc(ch, o);
						if (fclose(o) == 0)
							rename(tmp, argv[3]);
					}
					if (in)
						fclose(in);
					ms_sleep(10);
				}
			}
			_exit(0);
		}
		close(p[1]);
		pid_t d = 0;
		if (c < 0 || waitpid(c, NULL, 0) != c || read(p[0], &d, sizeof d) != sizeof d) {
			fprintf(stderr, "tool: daemon: could not start it\n");
			return 1;
		}
		printf("daemon=%d\n", (int)d);
		fflush(stdout);
		drain();
		return 0;
	}
	if (!strcmp(cmd, "waitall")) {
		/* Wait for any child until there is none (each one reaped is
		 * printed), say so, then wait for the end of stdin. */
		pid_t pid;
		while ((pid = wait(NULL)) > 0 || errno == EINTR)
			if (pid > 0)
				printf("reaped %d\n", (int)pid);
		printf("no children (%s)\n", strerror(errno));
		fflush(stdout);
		drain();
		return 0;
	}
	if (!strcmp(cmd, "sigexec") && argc > 4) {
		/* Run PROG ARGS with the signals in BLOCK blocked and those in
		 * IGN ignored (see sigs), as a caller that set them would. */
		sigset_t block, ign;
		sigs(argv[2], &block);
		sigs(argv[3], &ign);
		sigprocmask(SIG_BLOCK, &block, NULL);
		for (int n = 1; n <= 64; n++)
			if (sigismember(&ign, n) == 1)
				signal(n, SIG_IGN);
		execv(argv[4], argv + 4);
		fprintf(stderr, "tool: exec %s: %s\n", argv[4], strerror(errno));
		return 127;
	}
	if (!strcmp(cmd, "alloc") && argc > 2) {
		/* Allocate MB mebibytes and touch every page, saying how far
		 * it got every 64 MiB; "allocated" when it all fits. */
		long mb = atol(argv[2]);
		for (long i = 1; i <= mb; i++) {
			char *p = malloc(1 << 20);
			if (!p) {
				printf("malloc failed at %ld MiB\n", i);
				return 1;
			}
			memset(p, 1, 1 << 20);
			if (i % 64 == 0) {
				printf("%ld MiB\n", i);
				fflush(stdout);
			}
		}
		printf("allocated\n");
		return 0;
	}
	if (!strcmp(cmd, "forkbomb") && argc > 2) {
		/* Fork children that wait for stdin's end until a fork fails,
		 * or MAX of them (a test's safety net); say how many were made
		 * and why the next failed, then wait for the end of stdin. */
		int n = 0, max = atoi(argv[2]);
		errno = 0;
		while (n < max) {
			pid_t pid = fork();
			if (pid == 0) {
				drain();
				_exit(0);
			}
			if (pid < 0)
				break;
			n++;
		}
		printf("forked %d (%s)\n", n, strerror(errno));
		fflush(stdout);
		drain();
		return 0;
	}
	if (!strcmp(cmd, "spin")) {
		/* Print our pid, then spin until killed. */
		printf("pid=%d\n", (int)getpid());
		fflush(stdout);
		for (volatile unsigned long i = 0;; i++)
			;
	}
	if (!strcmp(cmd, "killparent") && argc > 2)
		return kill(getppid(), atoi(argv[2])) ? 1 : 0;
	fprintf(stderr, "tool: unknown command %s\n", cmd);
	return 2;
}
