/* tool: the target program of the run tests, one subcommand per behaviour
 * checked (see tests/run_*_test.go). Built with gcc by the tests. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t count;
static int trap_code;

static void on_count(int sig) { (void)sig; count++; }
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
	if (!strcmp(cmd, "killparent") && argc > 2)
		return kill(getppid(), atoi(argv[2])) ? 1 : 0;
	fprintf(stderr, "tool: unknown command %s\n", cmd);
	return 2;
}
