/* helper.c: the hand-over to the Go helper the packed file carries, for
 * everything the stub does not do itself (stub/helper.go does the same
 * from the Go stub). */
#include "stub.h"

/* The helper is mapped from a multiple of this: a multiple of every page
 * size (arm64 kernels run with 4, 16 or 64 KiB pages). */
#define MAP_ALIGN ((u64)64 << 10)

/* noexec_hint explains a refusal to create or run a memory file. */
static void noexec_hint(long e)
{
	if (e == EPERM || e == EACCES)
		put(" (executing memory files is forbidden here: vm.memfd_noexec or a security policy)");
}

/* The cache's copy of the helper, unpacked (package cache's
 * helper-<sha256>, the digest the trailer records): a start of the helper
 * from it costs no unpacking, a third of a start of the FUSE rung. The
 * FUSE server, started from a memory file, writes it (stub/userspace),
 * having checked its digest, into the directory the stub gives it. */
#define HELPER_COPY_PREFIX "helper-" /* cache.HelperPrefix */

/* helper_copy: the copy, open; -1 for none; -2 not looked for yet.
 * helper_copy_dir: the cache directory, open, for the FUSE server to
 * write one into (when there is none, or it will not run); -1 for none. */
static int helper_copy = -2, helper_copy_dir = -1;

/* find_helper_copy looks for a good copy of the helper in the cache
 * directory (cache_dir: made when missing if make says so, as the FUSE
 * rung asks, whose server writes one): a regular file of ours, ours to
 * execute, not writable by others, of the helper's size (the digest in
 * its name was checked when it was written). Its mtime records the use,
 * for cache gc. */
static void find_helper_copy(int make)
{
	if (helper_copy != -2)
		return;
	helper_copy = -1;
	const char *dir = cache_dir(make); /* looked for even so: see tell_cache_dir */
	if (!dir || !tr.helper_size || !helper_digest_set(&tr))
		return;
	u64 raw = tr.helper_raw_size ? tr.helper_raw_size : tr.helper_size;
	long fd = sys_open(cat(dir, "/" HELPER_COPY_PREFIX, hex_digest(tr.helper_digest)), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	struct kstatx st;
	if (fd >= 0 && sys_fstat((int)fd, &st) == 0 && (st.mode & 0170000) == 0100000 &&
	    st.uid == (u32)sys_geteuid() && (st.mode & 0100) && !(st.mode & 022) && st.size == raw) {
		sys_futimens_now((int)fd);
		helper_copy = (int)fd;
	} else if (fd >= 0) {
		sys_close(fd);
	}
	if (make) {
		long d = sys_open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		helper_copy_dir = d < 0 ? -1 : (int)d;
	}
}

/* helper_memfd returns a memory file holding the helper, unpacked. */
static int helper_memfd(void)
{
	/* MFD_EXEC asks for an executable memory file where the default is
	 * not (vm.memfd_noexec=1, Linux 6.3+); older kernels refuse the flag,
	 * and need none. */
	long fd = sys_memfd_create("parker-helper", MFD_CLOEXEC | MFD_EXEC);
	if (fd == -EINVAL)
		fd = sys_memfd_create("parker-helper", MFD_CLOEXEC);
	if (fd < 0) {
		put("start the helper: memfd_create: ");
		put_errno(-fd);
		noexec_hint(-fd);
		fail(EXIT_FAILURE_PARKER);
	}
	u64 start = tr.helper_offset & ~(MAP_ALIGN - 1), skip = tr.helper_offset - start;
	/* MAP_POPULATE: faulting pages in one by one costs far more. */
	long in = sys_mmap(0, skip + tr.helper_size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, file, start);
	if (sys_failed(in)) {
		put("start the helper: map the packed file: ");
		put_errno(-in);
		fail(EXIT_FAILURE_PARKER);
	}
	u64 raw = tr.helper_raw_size ? tr.helper_raw_size : tr.helper_size;
	long err = sys_ftruncate(fd, raw);
	long out = err ? err : sys_mmap(0, raw, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0);
	if (sys_failed(out)) {
		put("start the helper: size helper: ");
		put_errno(-out);
		fail(EXIT_FAILURE_PARKER);
	}
	if (tr.helper_raw_size) {
		long n = lz4_unpack((const u8 *)in + skip, tr.helper_size, (u8 *)out, raw);
		if (n != (long)raw) {
			put("start the helper: unpack helper: ");
			put_uint(n < 0 ? 0 : n);
			put(" of ");
			put_uint(raw);
			put(" bytes: file damaged");
			fail(EXIT_FAILURE_PARKER);
		}
	} else {
		memcpy((u8 *)out, (const u8 *)in + skip, raw);
	}
	sys_munmap(out, raw);
	sys_munmap(in, skip + tr.helper_size);
	return fd;
}

/* keep_signals: the helper handed us the run to enter a user namespace
 * (fuse.c), with the caller's signal state in PARKER_SIGNALS, which it
 * gets back as it was. */
static int keep_signals;

/* hex64 writes v as 16 hex digits at b. */
static void hex64(u64 v, char *b)
{
	for (int i = 15; i >= 0; i--, v >>= 4)
		b[i] = "0123456789abcdef"[v & 15];
}

/* caller_signals is the signal state the caller gave us, which the helper
 * cannot see (the Go runtime changes it before any of its code runs) and
 * must give the target: "BLOCKED,IGNORED", two 64-bit masks in hex, bit
 * N-1 for signal N (stub.EnvSignals). Nothing here has changed it. */
static const char *caller_signals(void)
{
	u64 blocked = 0, ignored = 0;
	sys_rt_sigprocmask(SIG_BLOCK, 0, &blocked);
	for (int sig = 1; sig <= NSIG; sig++) {
		struct ksigaction old;
		if (sys_rt_sigaction(sig, 0, &old) == 0 && old.handler == (void *)SIG_IGN)
			ignored |= (u64)1 << (sig - 1);
	}
	char *b = alloc(34);
	hex64(blocked, b);
	b[16] = ',';
	hex64(ignored, b + 17);
	b[33] = 0;
	return b;
}

/* helper replaces this process with the helper, with our arguments
 * unchanged and PARKER_HELPER_FOR naming the packed file: from the cache's
 * copy when there is a good one (looked for here unless the run is in a
 * user namespace of ours already, where the look was made before, if at
 * all), else from a memory file. Nothing is written to disk. It returns
 * only by failing. */
static void __attribute__((noreturn)) helper(void)
{
	if (!tr.helper_size) {
		put("this packed file carries no helper to read its image with "
		    "(damaged, or not written by parker); parker inspect can still read it");
		fail(EXIT_FAILURE_PARKER);
	}
	find_helper_copy(0);
	char **env = keep_signals ? environ_with(ENV_HELPER_FOR, self, 0, 0)
				  : environ_with(ENV_HELPER_FOR, self, ENV_SIGNALS, caller_signals());
	/* The copy, where there is one; a copy that will not run (a mount
	 * made noexec since, say) is passed over for the memory file. */
	if (helper_copy >= 0)
		sys_execveat(helper_copy, argv, env);
	int fd = helper_memfd();
	long e = sys_execveat(fd, argv, env);
	if (e == -ENOSYS)
		e = sys_execve(fd_path(fd, ""), argv, env);
	put("start the helper from memory: ");
	put_errno(-e);
	if (e == -EPERM || e == -EACCES)
		noexec_hint(-e);
	else
		put(" (file damaged?)");
	fail(EXIT_FAILURE_PARKER);
}
