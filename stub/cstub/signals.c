/* signals.c: which signals reach the target, and how (the Go stub's relay
 * is supervisor/signals*.go).
 *
 * catch_signals sets up the relay before the target exists; relay_to
 * points it at the target once it has started. A signal caught in between
 * is held and delivered right after the start. The handler runs with every
 * signal blocked and touches only the relay state below, atomically. */
#include "stub.h"

static u64 relay_pending; /* bit N-1: signal N held for the target */
static int relay_started; /* the target runs: deliver, don't hold */
static int relay_pid, relay_pidfd = -1, relay_self;
static u64 caught; /* bit N-1: signal N has our handler */
static struct ksigaction saved[NSIG + 1];

static u64 sigbit(int sig) { return (u64)1 << (sig - 1); }

static void relay_send(int sig)
{
	if (relay_pidfd >= 0)
		sys_pidfd_send_signal(relay_pidfd, sig);
	else
		sys_kill(relay_pid, sig);
}

static void deliver_held(void)
{
	u64 held = __atomic_exchange_n(&relay_pending, 0, __ATOMIC_SEQ_CST);
	for (int n = 0; held; n++, held >>= 1)
		if (held & 1)
			relay_send(n + 1);
}

/* The handler. Who sent the signal decides what happens to it:
 *  - the kernel (si_code > 0: the terminal's ^C to our whole foreground
 *    process group, which the target shares and so got its own copy): held
 *    while there is no target yet, dropped once there is;
 *  - ourselves: dropped;
 *  - the target, to its parent: passed on to our parent, whom it would
 *    have reached had the target been run directly (never to init);
 *  - anyone else (kill -TERM to our pid): relayed, or held until the
 *    target starts. */
static void relay_handler(int sig, struct ksiginfo *si, void *uc)
{
	(void)uc;
	int started = __atomic_load_n(&relay_started, __ATOMIC_SEQ_CST);
	if (si->code > 0) {
		if (started)
			return;
	} else if (si->pid == relay_self) {
		return;
	} else if (started && si->pid == relay_pid) {
		long pp = sys_getppid();
		if (pp > 1)
			sys_kill(pp, sig);
		return;
	}
	__atomic_or_fetch(&relay_pending, sigbit(sig), __ATOMIC_SEQ_CST);
	if (__atomic_load_n(&relay_started, __ATOMIC_SEQ_CST))
		deliver_held();
}

#if defined(__x86_64__)
extern void parker_restorer(void); /* sys.h */
#define RELAY_FLAGS (SA_SIGINFO | SA_RESTART | SA_RESTORER)
#define RESTORER ((void *)parker_restorer)
#else
#define RELAY_FLAGS (SA_SIGINFO | SA_RESTART)
#define RESTORER ((void *)0)
#endif

/* relayed: every catchable signal but those about our own children, job
 * control (left at their default, so ^Z stops us together with the
 * target), the C library's reserved ones, and our own faults. Unlike the
 * Go stub, this one also relays SIGURG (the Go runtime's own), and leaves
 * every signal the caller ignored ignored, not only SIGHUP and SIGINT. */
static int relayed(int sig)
{
	switch (sig) {
	case SIGKILL: case SIGSTOP:               /* uncatchable */
	case SIGCHLD:                             /* about our children */
	case SIGTSTP: case SIGTTIN: case SIGTTOU: /* job control */
	case SIG_LIBC_FIRST: case SIG_LIBC_LAST:  /* reserved by C libraries */
	case SIGILL: case SIGTRAP: case SIGBUS:   /* our own faults */
	case SIGFPE: case SIGSEGV: case SIGSYS:
		return 0;
	}
	return 1;
}

/* catch_signals catches every relayed signal (supervisor.Catch). */
static void catch_signals(void)
{
	relay_self = sys_getpid();
	struct ksigaction act = {(void *)relay_handler, RELAY_FLAGS, RESTORER, ~(u64)0};
	for (int n = 1; n <= NSIG; n++) {
		if (!relayed(n))
			continue;
		/* One call sets ours and returns the old action; the rare
		 * signal that was ignored gets that back (one held meanwhile
		 * reaches a target that ignores it too). */
		if (sys_rt_sigaction(n, &act, &saved[n]))
			continue;
		if (saved[n].handler == (void *)SIG_IGN) {
			sys_rt_sigaction(n, &saved[n], 0); /* ignored when we started: so it stays */
			continue;
		}
		caught |= sigbit(n);
	}
}

/* default_signals gives every caught signal the default action, as exec
 * will (in the target's process, before exec). */
static void default_signals(void)
{
	struct ksigaction dfl = {(void *)SIG_DFL, 0, 0, 0};
	for (int n = 1; n <= NSIG; n++)
		if (caught & sigbit(n))
			sys_rt_sigaction(n, &dfl, 0);
}

/* restore_signals gives every caught signal its earlier action back, then
 * raises again each one held, which now has that effect (before the
 * helper takes over: exec would keep an ignored or default action, not
 * ours). */
static void restore_signals(void)
{
	for (int n = 1; n <= NSIG; n++)
		if (caught & sigbit(n))
			sys_rt_sigaction(n, &saved[n], 0);
	u64 held = __atomic_exchange_n(&relay_pending, 0, __ATOMIC_SEQ_CST);
	caught = 0;
	for (int n = 0; held && relay_self > 0; n++, held >>= 1)
		if (held & 1)
			sys_kill(relay_self, n + 1);
}

/* relay_to points the relay at the target, just started with every signal
 * blocked, gives us back the signal mask mask, and delivers what was held
 * (supervisor's relayTo). A signal the kernel sent meanwhile, which the
 * target got too, finds the relay started and is dropped. */
static void relay_to(int pid, int pidfd, const u64 *mask)
{
	relay_pid = pid;
	relay_pidfd = pidfd;
	__atomic_store_n(&relay_started, 1, __ATOMIC_SEQ_CST);
	sys_rt_sigprocmask(SIG_SETMASK, mask, 0);
	deliver_held();
}

/* relay_stop detaches the relay from the target, which has ended. */
static void relay_stop(void)
{
	__atomic_store_n(&relay_started, 0, __ATOMIC_SEQ_CST);
	relay_pidfd = -1;
}
