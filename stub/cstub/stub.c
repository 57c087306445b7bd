/* The run-time stub of a packed file: what runs when TARGETd is started.
 *
 * This is the hot path of every start, written without the Go runtime,
 * whose own start and exit cost more on some machines than all the kernel
 * work of a run (see README, "Start-up"). It does exactly what the Go stub
 * (package stub, mountns and supervisor) does for a plain run, and nothing
 * else:
 *
 *  1. read and check the trailer at the end of its own file;
 *  2. catch the signals it relays, holding any that arrive before the
 *     target exists;
 *  3. enter a private mount namespace; attach the payload to a read-only,
 *     auto-clearing loop device; mount it as a detached squashfs, a
 *     detached tmpfs for writes, and an overlay of both over the directory
 *     holding the packed file;
 *  4. start the target as its child, in the caller's working directory
 *     re-resolved in the new view, with PARKER_EXE and PARKER_ROOT set;
 *     relay signals to it; wait for it; kill what it left behind;
 *  5. exit with its status, or die of the signal that killed it.
 *
 * Everything else is the Go helper's, which the packed file carries as an
 * LZ4 block between this stub and the payload: --parker-* flags,
 * PARKER_VERBOSE, and every failure before the target starts (the kernel
 * refusing the mounts, a damaged image, an old kernel). The stub unpacks
 * the helper into a memory file and executes it with the same arguments;
 * the helper then does the whole run again in Go, and either succeeds or
 * reports the cause precisely. So every error message and every fallback
 * lives in one place, the Go code; this file only has to be fast and
 * right on the path that works.
 *
 * Not linked with a C library: sys.h has the few system calls it makes.
 * Built by hack/build.sh; tested end to end by the tests in tests/. */
#include "sys.h"

/* ---- trailer (image/trailer is the reference) ---- */

#define FOOTER_SIZE 16
#define MAX_BODY (64 << 10)
#define TRAILER_VERSION 2
#define PAD_SIZE 4096
#define MAX_TARGET 4096
#define MAX_STRING 1024
#define MAX_HELPER (256u << 20)

static const char magic[8] = {'P', 'A', 'R', 'K', 'E', 'R', 0, 1};

struct trailer {
	u16 version, flags;
	u64 stub_size, offset, size;
	const char *target; /* NUL-terminated copy */
	u64 helper_offset, helper_size, helper_raw_size;
};

static u32 crc32c(const u8 *p, size_t n)
{
	u32 c = ~0u;
	while (n--) {
		c ^= *p++;
		for (int k = 0; k < 8; k++)
			c = c >> 1 ^ (0x82F63B78u & -(c & 1));
	}
	return ~c;
}

static u64 le(const u8 *b, int n)
{
	u64 v = 0;
	while (n--)
		v = v << 8 | b[n];
	return v;
}

/* ---- output ---- */

/* A message under construction: one line on stderr, like the Go stub's. */
static char msg[16384];
static size_t msglen;

static void put(const char *s)
{
	while (*s && msglen < sizeof msg - 2)
		msg[msglen++] = *s++;
}

static void putn(u64 v)
{
	char b[24];
	int i = sizeof b;
	b[--i] = 0;
	do
		b[--i] = '0' + v % 10;
	while (v /= 10);
	put(b + i);
}

/* The texts Go gives these errors, so a message reads the same whichever
 * stub printed it. */
static const char *errstr(long e)
{
	switch (e) {
	case 1: return "operation not permitted";
	case 2: return "no such file or directory";
	case 5: return "input/output error";
	case 7: return "argument list too long";
	case 8: return "exec format error";
	case 12: return "cannot allocate memory";
	case 13: return "permission denied";
	case 20: return "not a directory";
	case 21: return "is a directory";
	case 22: return "invalid argument";
	case 24: return "too many open files";
	case 26: return "text file busy";
	case 36: return "file name too long";
	case 38: return "function not implemented";
	case 40: return "too many levels of symbolic links";
	case 80: return "accessing a corrupted shared library";
	}
	return 0;
}

static void puterr(long e)
{
	const char *s = errstr(e);
	if (s) {
		put(s);
	} else {
		put("errno ");
		putn(e);
	}
}

static const char *self = "packed file";

/* fail prints "parker: SELF: " + the message built so far and exits with
 * code: one line, as every run-time failure of parker. */
static void __attribute__((noreturn)) fail_with(int code)
{
	static char line[sizeof msg + 4200];
	size_t n = 0;
	const char *parts[] = {"parker: ", self, ": "};
	for (int i = 0; i < 3; i++)
		for (const char *s = parts[i]; *s && n < 4200; s++)
			line[n++] = *s;
	memcpy(line + n, msg, msglen);
	n += msglen;
	line[n++] = '\n';
	sys_write(2, line, n);
	sys_exit(code);
}

#define EXIT_FAILURE_PARKER 125
#define EXIT_NOT_EXECUTABLE 126
#define EXIT_NOT_FOUND 127

/* ---- memory ---- */

/* A bump allocator over anonymous mappings: the stub frees nothing. */
static void *alloc(size_t n)
{
	static u8 *cur, *end;
	n = (n + 15) & ~(size_t)15;
	if ((size_t)(end - cur) < n) {
		size_t sz = n > (1 << 20) ? n : (1 << 20);
		long p = sys6(__NR_mmap, 0, sz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p < 0 && p > -4096) {
			put("out of memory");
			fail_with(EXIT_FAILURE_PARKER);
		}
		cur = (u8 *)p;
		end = cur + sz;
	}
	void *r = cur;
	cur += n;
	return r;
}

static char *cat(const char *a, const char *b, const char *c)
{
	size_t la = slen(a), lb = slen(b), lc = slen(c);
	char *r = alloc(la + lb + lc + 1);
	memcpy(r, a, la);
	memcpy(r + la, b, lb);
	memcpy(r + la + lb, c, lc);
	r[la + lb + lc] = 0;
	return r;
}

static char *fdpath(int fd, const char *sub)
{
	char num[24];
	int i = sizeof num;
	num[--i] = 0;
	do
		num[--i] = '0' + fd % 10;
	while (fd /= 10);
	return cat("/proc/self/fd/", num + i, sub);
}

/* ---- state ---- */

static char **envp;

/* environ_with is our environment with k1 (a "NAME=" prefix) set to v1,
 * and k2 to v2 when k2 is given, replacing any they had. */
static char **environ_with(const char *k1, const char *v1, const char *k2, const char *v2)
{
	size_t n = 0, k = 0;
	while (envp[n])
		n++;
	char **env = alloc((n + 3) * sizeof *env);
	for (size_t i = 0; i < n; i++)
		if (!has_prefix(envp[i], k1) && !(k2 && has_prefix(envp[i], k2)))
			env[k++] = envp[i];
	env[k++] = cat(k1, v1, "");
	if (k2)
		env[k++] = cat(k2, v2, "");
	env[k] = 0;
	return env;
}

static int argc;
static char **argv;
static int file = -1;         /* the packed file, open */
static struct trailer tr;

/* The relay (the Go stub's is supervisor/signals*.go). The handler runs
 * with every signal blocked and touches only these, atomically. */
static u64 relay_pending;     /* bit N-1: signal N held for the target */
static int relay_started;     /* the target runs: deliver, don't hold */
static int relay_pid, relay_pidfd = -1, relay_self;
static u64 caught;            /* bit N-1: signal N has our handler */
static struct ksigaction saved[65];

/* ---- the helper ---- */

/* lz4_more adds to *len the extra length bytes at *ip (each 255 means
 * another follows); it fails when they run past end. */
static int lz4_more(const u8 **ip, const u8 *end, size_t *len)
{
	unsigned b;
	do {
		if (*ip >= end)
			return -1;
		b = *(*ip)++;
		*len += b;
	} while (b == 255);
	return 0;
}

/* lz4_unpack unpacks one LZ4 block (the format hack/lz4block writes) from
 * src into dst, checking every bound, and returns the unpacked length or
 * -1 when the block is damaged. */
static long lz4_unpack(const u8 *src, size_t n, u8 *dst, size_t cap)
{
	const u8 *ip = src, *iend = src + n;
	u8 *op = dst, *oend = dst + cap;
	/* A block may end after a match, as the Go decoder has it. */
	while (ip < iend) {
		unsigned tok = *ip++;
		size_t lit = tok >> 4;
		if (lit == 15 && lz4_more(&ip, iend, &lit))
			return -1;
		if (lit > (size_t)(iend - ip) || lit > (size_t)(oend - op))
			return -1;
		memcpy(op, ip, lit);
		op += lit;
		ip += lit;
		if (ip == iend) /* the last sequence has literals only */
			return tok & 15 ? -1 : op - dst;
		if (iend - ip < 2)
			return -1;
		size_t off = ip[0] | (size_t)ip[1] << 8;
		ip += 2;
		if (off == 0 || off > (size_t)(op - dst))
			return -1;
		size_t ml = tok & 15;
		if (ml == 15 && lz4_more(&ip, iend, &ml))
			return -1;
		ml += 4;
		if (ml > (size_t)(oend - op))
			return -1;
		const u8 *m = op - off;
		if (off >= ml) {
			memcpy(op, m, ml);
			op += ml;
		} else {
			while (ml--) /* overlapping: a repeated pattern */
				*op++ = *m++;
		}
	}
	return op - dst;
}

static void restore_signals(void);

/* noexec_hint explains a refusal to create or run a memory file. */
static void noexec_hint(long e)
{
	if (e == EPERM || e == 13)
		put(" (executing memory files is forbidden here: vm.memfd_noexec or a security policy)");
}

/* helper replaces this process with the Go helper the packed file carries,
 * with our arguments unchanged (stub/helper.go does the same from the Go
 * stub). Nothing is written to disk: the helper runs from a memory file.
 * It returns only by failing. */
static void __attribute__((noreturn)) helper(void)
{
	if (!tr.helper_size) {
		put("this packed file carries no helper to read its image with "
		    "(damaged, or not written by parker); parker inspect can still read it");
		fail_with(EXIT_FAILURE_PARKER);
	}
	long fd = SYS2(__NR_memfd_create, "parker-helper", MFD_CLOEXEC | MFD_EXEC);
	if (fd == -EINVAL) /* before Linux 6.3: no MFD_EXEC, and none needed */
		fd = SYS2(__NR_memfd_create, "parker-helper", MFD_CLOEXEC);
	if (fd < 0) {
		put("start the helper: memfd_create: ");
		puterr(-fd);
		noexec_hint(-fd);
		fail_with(EXIT_FAILURE_PARKER);
	}
	/* Mapped from a 64 KiB boundary: a multiple of every page size
	 * (arm64 kernels run with 4, 16 or 64 KiB pages). */
	u64 start = tr.helper_offset & ~(u64)0xffff, skip = tr.helper_offset - start;
	/* MAP_POPULATE: faulting pages in one by one costs far more. */
	long in = sys6(__NR_mmap, 0, skip + tr.helper_size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, file, start);
	if (in < 0 && in > -4096) {
		put("start the helper: map the packed file: ");
		puterr(-in);
		fail_with(EXIT_FAILURE_PARKER);
	}
	u64 raw = tr.helper_raw_size ? tr.helper_raw_size : tr.helper_size;
	long err = SYS2(__NR_ftruncate, fd, raw);
	long out = err ? err : sys6(__NR_mmap, 0, raw, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0);
	if (out < 0 && out > -4096) {
		put("start the helper: size helper: ");
		puterr(-out);
		fail_with(EXIT_FAILURE_PARKER);
	}
	if (tr.helper_raw_size) {
		long n = lz4_unpack((const u8 *)in + skip, tr.helper_size, (u8 *)out, raw);
		if (n != (long)raw) {
			put("start the helper: unpack helper: ");
			putn(n < 0 ? 0 : n);
			put(" of ");
			putn(raw);
			put(" bytes: file damaged");
			fail_with(EXIT_FAILURE_PARKER);
		}
	} else {
		memcpy((u8 *)out, (const u8 *)in + skip, raw);
	}
	SYS2(__NR_munmap, out, raw);
	SYS2(__NR_munmap, in, skip + tr.helper_size);

	/* Our environment, with PARKER_HELPER_FOR naming the packed file. */
	char **env = environ_with("PARKER_HELPER_FOR=", self, 0, 0);

	restore_signals();
	long e = SYS5(__NR_execveat, fd, "", argv, env, AT_EMPTY_PATH);
	if (e == -ENOSYS)
		e = SYS3(__NR_execve, fdpath(fd, ""), argv, env);
	put("start the helper from memory: ");
	puterr(-e);
	if (e == -EPERM || e == -13)
		noexec_hint(-e);
	else
		put(" (file damaged?)");
	fail_with(EXIT_FAILURE_PARKER);
}

/* ---- signals ---- */

static void relay_send(int sig)
{
	if (relay_pidfd >= 0)
		SYS4(__NR_pidfd_send_signal, relay_pidfd, sig, 0, 0);
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
	__atomic_or_fetch(&relay_pending, (u64)1 << (sig - 1), __ATOMIC_SEQ_CST);
	if (__atomic_load_n(&relay_started, __ATOMIC_SEQ_CST))
		deliver_held();
}

#if defined(__x86_64__)
extern void parker_restorer(void);
#define SA_FLAGS (4 /* SA_SIGINFO */ | 0x10000000 /* SA_RESTART */ | 0x04000000 /* SA_RESTORER */)
#define RESTORER ((void *)parker_restorer)
#else
#define SA_FLAGS (4 /* SA_SIGINFO */ | 0x10000000 /* SA_RESTART */)
#define RESTORER ((void *)0)
#endif

/* relayed: every catchable signal but those about our own children, job
 * control (left at their default, so ^Z stops us together with the
 * target), the C library's reserved ones, and our own faults. Unlike the
 * Go stub, this one also relays SIGURG (the Go runtime's own), and leaves
 * every signal the caller ignored ignored, not only SIGHUP and SIGINT. */
static int relayed(int n)
{
	switch (n) {
	case 9: case 19:                 /* SIGKILL, SIGSTOP: uncatchable */
	case 17:                         /* SIGCHLD */
	case 20: case 21: case 22:       /* SIGTSTP, SIGTTIN, SIGTTOU */
	case 32: case 33:                /* reserved by C libraries */
	case 4: case 5: case 7: case 8: case 11: case 31: /* ILL TRAP BUS FPE SEGV SYS */
		return 0;
	}
	return 1;
}

static void catch_signals(void)
{
	relay_self = sys_getpid();
	struct ksigaction act = {(void *)relay_handler, SA_FLAGS, RESTORER, ~(u64)0};
	for (int n = 1; n <= 64; n++) {
		if (!relayed(n))
			continue;
		/* One call sets ours and returns the old action; the rare
		 * signal that was ignored gets that back (one held meanwhile
		 * reaches a target that ignores it too). */
		if (SYS4(__NR_rt_sigaction, n, &act, &saved[n], 8))
			continue;
		if (saved[n].handler == (void *)SIG_IGN) {
			SYS4(__NR_rt_sigaction, n, &saved[n], 0, 8); /* ignored when we started: so it stays */
			continue;
		}
		caught |= (u64)1 << (n - 1);
	}
}

/* restore_signals gives every caught signal its earlier action back, then
 * raises again each one held, which now has that effect (before the
 * helper takes over: exec would keep an ignored or default action, not
 * ours). */
static void restore_signals(void)
{
	for (int n = 1; n <= 64; n++)
		if (caught & (u64)1 << (n - 1))
			SYS4(__NR_rt_sigaction, n, &saved[n], 0, 8);
	u64 held = __atomic_exchange_n(&relay_pending, 0, __ATOMIC_SEQ_CST);
	caught = 0;
	for (int n = 0; held && relay_self > 0; n++, held >>= 1)
		if (held & 1)
			sys_kill(relay_self, n + 1);
}

/* ---- the view (mountns is the reference) ---- */

/* Any failure here hands the whole run to the helper, which starts over
 * and either manages (a fallback only it has) or says precisely why not.
 * The namespace, the loop device and the detached mounts made so far are
 * this process's alone and vanish with its descriptors at exec. */
#define TRY(x)                          \
	do {                            \
		if ((long)(x) < 0)      \
			helper();       \
	} while (0)

static int fsconfig_str(int fs, const char *k, const char *v)
{
	return SYS5(__NR_fsconfig, fs, 1 /* FSCONFIG_SET_STRING */, k, v, 0);
}

static int fs_create_mount(int fs, unsigned attrs)
{
	TRY(SYS5(__NR_fsconfig, fs, 6 /* FSCONFIG_CMD_CREATE */, 0, 0, 0));
	long m = SYS3(__NR_fsmount, fs, 1 /* FSMOUNT_CLOEXEC */, attrs);
	TRY(m);
	sys_close(fs);
	return m;
}

/* A test build (tests/stub_test.go) acts as on a kernel before 5.8 (no
 * LOOP_CONFIGURE) and 6.5 (no "lowerdir+"), to run those paths here. */
#ifdef PARKER_LEGACY_KERNEL
#define LEGACY_KERNEL 1
#else
#define LEGACY_KERNEL 0
#endif

/* The loop driver's structures (linux/loop.h), which it reads whole. */
struct loop_info64 {
	u64 device, inode, rdevice, offset, sizelimit;
	u32 number, encrypt_type, encrypt_key_size, flags;
	u8 names[64 + 64 + 32];
	u64 init[2];
};

struct loop_config {
	u32 fd, block_size;
	struct loop_info64 info;
	u64 reserved[8];
};

_Static_assert(sizeof(struct loop_info64) == 232, "struct loop_info64 is 232 bytes");
_Static_assert(sizeof(struct loop_config) == 304, "struct loop_config is 304 bytes");

#define ATTR_RDONLY 1
#define ATTR_NOSUID 2
#define ATTR_NODEV 4

/* attach_loop attaches the payload to a free loop device, read-only and
 * auto-clearing, retrying when another process takes the device first. */
static int attach_loop(char *dev, size_t devlen)
{
	long ctl = sys_openat(AT_FDCWD, "/dev/loop-control", O_RDWR | O_CLOEXEC);
	TRY(ctl);
	int configure = !LEGACY_KERNEL;
	for (int attempt = 0; attempt < 64; attempt++) {
		long n = sys_ioctl(ctl, 0x4C82 /* LOOP_CTL_GET_FREE */, 0);
		TRY(n);
		char num[24];
		int i = sizeof num;
		num[--i] = 0;
		do
			num[--i] = '0' + n % 10;
		while (n /= 10);
		size_t nl = sizeof num - 1 - i;
		if (nl + 10 > devlen)
			helper();
		memcpy(dev, "/dev/loop", 9);
		memcpy(dev + 9, num + i, nl + 1);
		long fd = sys_openat(AT_FDCWD, dev, O_RDONLY | O_CLOEXEC);
		if (fd == -ENOENT || fd == -ENXIO)
			continue; /* removed, or not yet created: ask again */
		TRY(fd);
		struct loop_info64 info = {0};
		info.offset = tr.offset;
		info.sizelimit = tr.size;
		info.flags = 1 /* LO_FLAGS_READ_ONLY */ | 4 /* LO_FLAGS_AUTOCLEAR */;
		long err = -EINVAL;
		if (configure) {
			struct loop_config cfg = {0};
			cfg.fd = file;
			cfg.info = info;
			err = sys_ioctl(fd, 0x4C0A /* LOOP_CONFIGURE */, (long)&cfg);
			if (err == -ENOTTY || err == -EINVAL)
				configure = 0; /* before Linux 5.8: two steps */
		}
		if (!configure) {
			err = sys_ioctl(fd, 0x4C00 /* LOOP_SET_FD */, file);
			if (!err && (err = sys_ioctl(fd, 0x4C04 /* LOOP_SET_STATUS64 */, (long)&info)))
				sys_ioctl(fd, 0x4C01 /* LOOP_CLR_FD */, 0);
		}
		if (!err) {
			sys_close(ctl);
			return fd;
		}
		sys_close(fd);
		if (err != -EBUSY)
			helper();
		if (attempt > 8) { /* many of us race: back off a little */
			struct ktimespec ts = {0, attempt * 100000L};
			SYS2(__NR_nanosleep, &ts, 0);
		}
	}
	helper();
}

/* escape_layer appends p to b with the characters overlayfs splits its
 * joined lowerdir option on escaped. */
static char *escape_layer(char *b, const char *p)
{
	for (; *p; p++) {
		if (*p == '\\' || *p == ':' || *p == ',')
			*b++ = '\\';
		*b++ = *p;
	}
	return b;
}

/* setup mounts the view over dir: the payload's squashfs over dir's own
 * contents, writes going to a tmpfs. */
static void setup(const char *dir)
{
	char dev[64];
	TRY(SYS1(__NR_unshare, CLONE_NEWNS));
	TRY(SYS5(__NR_mount, "", "/", 0, MS_REC | MS_PRIVATE, 0));

	int loop = attach_loop(dev, sizeof dev);
	long fs = SYS2(__NR_fsopen, "squashfs", 1 /* FSOPEN_CLOEXEC */);
	TRY(fs);
	TRY(SYS5(__NR_fsconfig, fs, 0 /* FSCONFIG_SET_FLAG */, "ro", 0, 0));
	TRY(fsconfig_str(fs, "source", dev));
	int sq = fs_create_mount(fs, ATTR_RDONLY | ATTR_NOSUID | ATTR_NODEV);
	sys_close(loop); /* the mount holds the device now */

	struct kstatx root;
	TRY(sys_statx(sq, "", AT_EMPTY_PATH, &root));
	fs = SYS2(__NR_fsopen, "tmpfs", 1);
	TRY(fs);
	TRY(fsconfig_str(fs, "mode", "700"));
	int tmp = fs_create_mount(fs, ATTR_NOSUID | ATTR_NODEV);
	TRY(SYS3(__NR_mkdirat, tmp, "upper", 0700));
	TRY(SYS3(__NR_mkdirat, tmp, "work", 0700));
	/* overlayfs gives the merged root the upper dir's mode and owner: the
	 * view looks like the packed workdir, not like our scratch space. */
	TRY(SYS4(__NR_fchmodat, tmp, "upper", root.mode & 07777, 0));
	TRY(SYS5(__NR_fchownat, tmp, "upper", root.uid, root.gid, AT_SYMLINK_NOFOLLOW));

	fs = SYS2(__NR_fsopen, "overlay", 1);
	TRY(fs);
	char *lower = fdpath(sq, "");
	long err = LEGACY_KERNEL ? -EINVAL : fsconfig_str(fs, "lowerdir+", lower);
	if (err == -EINVAL) { /* before Linux 6.5: one joined, escaped option */
		char *b = alloc(2 * (slen(lower) + slen(dir)) + 2), *e = escape_layer(b, lower);
		*e++ = ':';
		*escape_layer(e, dir) = 0;
		err = fsconfig_str(fs, "lowerdir", b);
	} else if (!err) {
		err = fsconfig_str(fs, "lowerdir+", dir);
	}
	TRY(err);
	TRY(fsconfig_str(fs, "upperdir", fdpath(tmp, "/upper")));
	TRY(fsconfig_str(fs, "workdir", fdpath(tmp, "/work")));
	int ov = fs_create_mount(fs, 0);
	TRY(SYS5(__NR_move_mount, ov, "", AT_FDCWD, dir, 4 /* MOVE_MOUNT_F_EMPTY_PATH */));
	sys_close(ov);
	sys_close(tmp);
	sys_close(sq);
	sys_close(file); /* kept until here: the helper may still need it */
	file = -1;
}

/* ---- the target (supervisor is the reference) ---- */

/* kill_orphans kills and reaps every child we have inherited as a child
 * subreaper, repeatedly, since killing one hands us its children. */
static void kill_orphans(void)
{
	if (SYS4(__NR_wait4, -1, 0, WNOHANG, 0) == -ECHILD)
		return; /* usually: no /proc reading */
	/* We are single-threaded: all our children are the main thread's. */
	char num[24];
	int i = sizeof num;
	u64 self_pid = relay_self;
	num[--i] = 0;
	do
		num[--i] = '0' + self_pid % 10;
	while (self_pid /= 10);
	char *path = cat("/proc/self/task/", num + i, "/children");
	static char buf[65536];
	for (int round = 0; round < 1000; round++) {
		long fd = sys_openat(AT_FDCWD, path, O_RDONLY | O_CLOEXEC);
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
			if (SYS4(__NR_wait4, -1, 0, 0, 0) == -ECHILD)
				break;
	}
}

/* die ends this process the way the target ended: by the same signal
 * (without a core dump of ours), or, for a signal whose default action
 * does not kill, with 128+N. */
static void __attribute__((noreturn)) die(int sig)
{
	u64 lim[2] = {0, 0};
	SYS4(__NR_prlimit64, 0, RLIMIT_CORE, lim, 0);
	struct ksigaction dfl = {(void *)SIG_DFL, 0, 0, 0};
	SYS4(__NR_rt_sigaction, sig, &dfl, 0, 8);
	u64 set = (u64)1 << (sig - 1);
	SYS4(__NR_rt_sigprocmask, 1 /* SIG_UNBLOCK */, &set, 0, 8);
	SYS3(__NR_tgkill, relay_self, relay_self, sig);
	sys_exit(128 + sig);
}

static void run(char **args)
{
	/* The directory holding the packed file: where the view appears. */
	size_t sl = slen(self), cut = sl;
	while (cut > 0 && self[cut - 1] != '/')
		cut--;
	if (cut <= 1)
		helper(); /* in / (the helper says why that cannot work) */
	char *dir = alloc(cut);
	memcpy(dir, self, cut - 1);
	dir[cut - 1] = 0;

	/* The caller's working directory, re-resolved by path in the new
	 * view when it is dir or below it. */
	char *cwd = alloc(4096);
	long cl = SYS2(__NR_getcwd, cwd, 4096);
	size_t dl = slen(dir);
	int chdir_to = cl > 0 && cwd[0] == '/' && has_prefix(cwd, dir) && (cwd[dl] == 0 || cwd[dl] == '/');

	catch_signals(); /* before mounting: a signal now is held for the target */
	setup(dir);

	char *target = cat(dir, "/", tr.target);
	const char *base = target + slen(target);
	while (base > target && base[-1] != '/')
		base--;
	if (!args[0]) { /* argc 0 (kernels before 5.18 allow it): no slot to reuse */
		args = alloc(2 * sizeof *args);
		args[1] = 0;
	}
	args[0] = (char *)base;

	char **env = environ_with("PARKER_EXE=", self, "PARKER_ROOT=", dir);

	/* Orphans of the target become our children, so we can kill them. */
	SYS2(__NR_prctl, PR_SET_CHILD_SUBREAPER, 1);

	/* Start it with every signal blocked, so none runs our handler in the
	 * child before exec; the child gets the caller's mask back. An exec
	 * failure comes back through a close-on-exec pipe. */
	u64 all = ~(u64)0, mask;
	SYS4(__NR_rt_sigprocmask, SIG_BLOCK, &all, &mask, 8);
	int pfd[2];
	if (SYS2(__NR_pipe2, pfd, O_CLOEXEC) < 0) {
		SYS4(__NR_rt_sigprocmask, SIG_SETMASK, &mask, 0, 8); /* not for the helper */
		helper();
	}
	int pidfd = -1;
	long pid = SYS5(__NR_clone, CLONE_PIDFD | SIGCHLD, 0, &pidfd, 0, 0);
	if (pid == -EINVAL) /* before Linux 5.2: no pidfd, signals go by pid */
		pid = SYS5(__NR_clone, SIGCHLD, 0, 0, 0, 0);
	if (pid == 0) {
		sys_close(pfd[0]);
		/* The target dies with us, even when we are SIGKILLed. */
		SYS2(__NR_prctl, PR_SET_PDEATHSIG, SIGKILL);
		/* Our handlers go before the caller's mask comes back, so a
		 * signal now has its default effect, as after exec. */
		struct ksigaction dfl = {(void *)SIG_DFL, 0, 0, 0};
		for (int s = 1; s <= 64; s++)
			if (caught & (u64)1 << (s - 1))
				SYS4(__NR_rt_sigaction, s, &dfl, 0, 8);
		long e = 0;
		if (chdir_to)
			e = SYS1(__NR_chdir, cwd);
		if (!e) {
			SYS4(__NR_rt_sigprocmask, SIG_SETMASK, &mask, 0, 8);
			e = SYS3(__NR_execve, target, args, env);
		}
		int code = (int)-e;
		sys_write(pfd[1], &code, sizeof code);
		sys_exit(EXIT_NOT_FOUND);
	}
	if (pid < 0) {
		SYS4(__NR_rt_sigprocmask, SIG_SETMASK, &mask, 0, 8);
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
		SYS4(__NR_wait4, pid, 0, 0, 0);
		put("cannot run ");
		put(tr.target);
		put(": ");
		puterr(code);
		fail_with(code == ENOENT || code == ENOTDIR ? EXIT_NOT_FOUND : EXIT_NOT_EXECUTABLE);
	}

	relay_pid = pid;
	relay_pidfd = pidfd;
	__atomic_store_n(&relay_started, 1, __ATOMIC_SEQ_CST);
	SYS4(__NR_rt_sigprocmask, SIG_SETMASK, &mask, 0, 8);
	deliver_held();

	/* Wait for the target, reaping any orphan that ends meanwhile. */
	int ws = 0;
	for (;;) {
		got = SYS4(__NR_wait4, -1, &ws, 0, 0);
		if (got == pid)
			break;
		if (got < 0 && got != -EINTR) {
			put("wait for target: ");
			puterr(-got);
			fail_with(EXIT_FAILURE_PARKER);
		}
	}
	__atomic_store_n(&relay_started, 0, __ATOMIC_SEQ_CST);
	relay_pidfd = -1;
	kill_orphans();
	if ((ws & 0x7f) == 0)
		sys_exit((ws >> 8) & 0xff);
	die(ws & 0x7f);
}

/* ---- main ---- */

/* read_trailer reads and checks the trailer, as trailer.Read does. */
static void read_trailer(void)
{
	struct kstatx st;
	long e = sys_statx(file, "", AT_EMPTY_PATH, &st);
	if (e < 0) {
		puterr(-e);
		fail_with(EXIT_FAILURE_PARKER);
	}
	u64 size = st.size;
	static u8 body[MAX_BODY + 4];
	u8 foot[FOOTER_SIZE];
	if (size < FOOTER_SIZE || sys_pread(file, foot, FOOTER_SIZE, size - FOOTER_SIZE) != FOOTER_SIZE ||
	    memcmp(foot + 8, magic, 8)) {
		put("not a packed file (no parker trailer)");
		fail_with(EXIT_FAILURE_PARKER);
	}
	put("damaged parker trailer: ");
	u64 blen = le(foot, 4);
	if (blen > MAX_BODY || blen > size - FOOTER_SIZE || blen < 70) {
		put("body length ");
		putn(blen);
		fail_with(EXIT_FAILURE_PARKER);
	}
	if (sys_pread(file, body, blen, size - FOOTER_SIZE - blen) != (long)blen) {
		put("cannot read it");
		fail_with(EXIT_FAILURE_PARKER);
	}
	memcpy(body + blen, foot, 4);
	if (crc32c(body, blen + 4) != le(foot + 4, 4)) {
		put("checksum mismatch");
		fail_with(EXIT_FAILURE_PARKER);
	}
	tr.version = le(body, 2);
	tr.flags = le(body + 2, 2);
	tr.stub_size = le(body + 4, 8);
	tr.offset = le(body + 12, 8);
	tr.size = le(body + 20, 8);
	/* digest (32 bytes), level and block size: not needed here */
	u64 p = 68;
	u64 tlen = 0, longest = 0;
	for (int i = 0; i < 3; i++) { /* target, compression, created-by */
		if (p + 2 > blen)
			goto short_body;
		u64 l = le(body + p, 2);
		if (p + 2 + l > blen)
			goto short_body;
		if (i > 0 && l > longest)
			longest = l;
		if (i == 0) {
			tlen = l;
			char *t = alloc(l + 1);
			memcpy(t, body + p + 2, l);
			t[l] = 0;
			tr.target = t;
		}
		p += 2 + l;
	}
	if (tr.version >= 2) {
		if (p + 24 > blen)
			goto short_body;
		tr.helper_offset = le(body + p, 8);
		tr.helper_size = le(body + p + 8, 8);
		tr.helper_raw_size = le(body + p + 16, 8);
	}
	/* The same rules as trailer.validate. */
	if (tr.version < 1 || tr.version > TRAILER_VERSION ||
	    (tr.helper_raw_size && (!tr.helper_size || tr.helper_raw_size > MAX_HELPER)) ||
	    (tr.helper_size && (tr.helper_offset < tr.stub_size ||
				tr.helper_offset + tr.helper_size < tr.helper_offset ||
				tr.helper_offset + tr.helper_size > tr.offset)) ||
	    !tlen || tlen > MAX_TARGET || slen(tr.target) != tlen || longest > MAX_STRING || tr.offset % PAD_SIZE ||
	    tr.stub_size > tr.offset || !tr.size || tr.offset + tr.size < tr.offset ||
	    tr.offset + tr.size > size - FOOTER_SIZE - blen) {
		put("inconsistent fields (version ");
		putn(tr.version);
		put("; truncated?)");
		fail_with(EXIT_FAILURE_PARKER);
	}
	msglen = 0;
	return;
short_body:
	put("body too short");
	fail_with(EXIT_FAILURE_PARKER);
}

#if defined(PARKER_LZ4_CHECK)
/* A test build (tests/stub_test.go compiles it): unpack the LZ4 block in
 * the file argv[1] into at most argv[2] bytes and print them, or exit 1,
 * for a comparison with the Go decoder on the same bytes. */
void __attribute__((noreturn, used)) cmain(long *sp)
{
	argv = (char **)(sp + 1);
	u64 cap = 0;
	for (const char *c = argv[2]; *c; c++)
		cap = cap * 10 + (*c - '0');
	long fd = sys_openat(AT_FDCWD, argv[1], O_RDONLY | O_CLOEXEC);
	struct kstatx st;
	if (fd < 0 || sys_statx(fd, "", AT_EMPTY_PATH, &st) < 0)
		sys_exit(2);
	u8 *in = alloc(st.size + 1), *out = alloc(cap + 1);
	if (sys_pread(fd, in, st.size, 0) != (long)st.size)
		sys_exit(2);
	long n = lz4_unpack(in, st.size, out, cap);
	if (n < 0)
		sys_exit(1);
	sys_write(1, out, n);
	sys_exit(0);
}
#elif defined(PARKER_TRAILER_CHECK)
/* A test build (tests/stub_test.go compiles it): read the trailer of the
 * file named by argv[1] and print what it says, or fail as the stub would,
 * for a comparison with image/trailer on the same bytes. */
void __attribute__((noreturn, used)) cmain(long *sp)
{
	argv = (char **)(sp + 1);
	self = argv[1];
	long fd = sys_openat(AT_FDCWD, self, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		sys_exit(2);
	file = fd;
	read_trailer();
	u64 v[] = {tr.version, tr.stub_size, tr.offset, tr.size, tr.helper_offset, tr.helper_size, tr.helper_raw_size};
	for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
		putn(v[i]);
		put(" ");
	}
	put(tr.target);
	put("\n");
	sys_write(1, msg, msglen);
	sys_exit(0);
}
#else
/* cmain is called by _start (sys.h) with the stack the kernel set up. */
void __attribute__((noreturn, used)) cmain(long *sp)
{
	argc = (int)sp[0];
	argv = (char **)(sp + 1);
	envp = argv + argc + 1;

	static char exe[4097];
	long n = sys_readlink("/proc/self/exe", exe, sizeof exe - 1);
	if (n <= 0 || n >= (long)sizeof exe - 1 || exe[0] != '/') {
		put("cannot locate own executable: ");
		puterr(n <= 0 ? -n : 36);
		fail_with(EXIT_FAILURE_PARKER);
	}
	exe[n] = 0;
	self = exe;
	long fd = sys_openat(AT_FDCWD, self, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		puterr(-fd);
		fail_with(EXIT_FAILURE_PARKER);
	}
	file = fd;
	read_trailer();

	/* --parker-* flags and verbose runs are the helper's. */
	char **args = argv;
	if (argc > 1 && has_prefix(argv[1], "--parker-"))
		helper();
	for (char **e = envp; *e; e++) {
		if (has_prefix(*e, "PARKER_VERBOSE=")) { /* the first one counts, as in Go */
			if ((*e)[15] == '1' && (*e)[16] == 0)
				helper();
			break;
		}
	}
	if (argc > 1 && argv[1][0] == '-' && argv[1][1] == '-' && argv[1][2] == 0) {
		args = argv + 1; /* "--" ends our flags and is consumed */
	}
	run(args);
	sys_exit(EXIT_FAILURE_PARKER);
}
#endif
