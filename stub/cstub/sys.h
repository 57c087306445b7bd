/* sys.h: the little of a C library that the run-time stub needs, with no C
 * library: the process entry point, raw system calls, and the memory and
 * string functions the compiler may call on its own. Linux, x86-64 and
 * arm64. System calls return the result or -errno, as the kernel does. */
#ifndef PARKER_SYS_H
#define PARKER_SYS_H

#include <stddef.h>
#include <stdint.h>
#include <asm/unistd.h>

typedef unsigned char u8;
typedef uint16_t u16;
typedef uint32_t u32;
typedef uint64_t u64;

#if defined(__x86_64__)
static inline long sys6(long n, long a, long b, long c, long d, long e, long f)
{
	register long r10 __asm__("r10") = d, r8 __asm__("r8") = e, r9 __asm__("r9") = f;
	long ret;
	__asm__ volatile("syscall"
			 : "=a"(ret)
			 : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
			 : "rcx", "r11", "memory");
	return ret;
}
#elif defined(__aarch64__)
static inline long sys6(long n, long a, long b, long c, long d, long e, long f)
{
	register long x8 __asm__("x8") = n, x0 __asm__("x0") = a, x1 __asm__("x1") = b,
		x2 __asm__("x2") = c, x3 __asm__("x3") = d, x4 __asm__("x4") = e, x5 __asm__("x5") = f;
	__asm__ volatile("svc 0"
			 : "+r"(x0)
			 : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4), "r"(x5)
			 : "memory");
	return x0;
}
#else
#error "the C run-time stub supports x86-64 and arm64; build the Go stub instead (STUB=go)"
#endif

#define SYS0(n) sys6(n, 0, 0, 0, 0, 0, 0)
#define SYS1(n, a) sys6(n, (long)(a), 0, 0, 0, 0, 0)
#define SYS2(n, a, b) sys6(n, (long)(a), (long)(b), 0, 0, 0, 0)
#define SYS3(n, a, b, c) sys6(n, (long)(a), (long)(b), (long)(c), 0, 0, 0)
#define SYS4(n, a, b, c, d) sys6(n, (long)(a), (long)(b), (long)(c), (long)(d), 0, 0)
#define SYS5(n, a, b, c, d, e) sys6(n, (long)(a), (long)(b), (long)(c), (long)(d), (long)(e), 0)

/* Constants of the kernel ABI, spelled out rather than taken from headers
 * that differ between distributions. Signal numbers are the same on both
 * architectures. */
#define AT_FDCWD (-100)
#define AT_SYMLINK_NOFOLLOW 0x100
#define AT_EMPTY_PATH 0x1000
#define O_RDONLY 0
#define O_RDWR 2
#define O_CLOEXEC 02000000
#define EPERM 1
#define ENOENT 2
#define EINTR 4
#define ENXIO 6
#define ECHILD 10
#define EBUSY 16
#define ENOTDIR 20
#define EINVAL 22
#define ENOTTY 25
#define ENOSYS 38
#define SIGKILL 9
#define SIGCHLD 17
#define SIG_DFL 0
#define SIG_IGN 1
#define SIG_BLOCK 0
#define SIG_SETMASK 2
#define WNOHANG 1
#define CLONE_NEWNS 0x00020000
#define CLONE_PIDFD 0x00001000
#define MS_REC 0x4000
#define MS_PRIVATE (1 << 18)
#define PR_SET_PDEATHSIG 1
#define PR_SET_CHILD_SUBREAPER 36
#define RLIMIT_CORE 4
#define PROT_READ 1
#define PROT_WRITE 2
#define MAP_SHARED 1
#define MAP_PRIVATE 2
#define MAP_ANONYMOUS 0x20
#define MAP_POPULATE 0x8000
#define MFD_CLOEXEC 1
#define MFD_EXEC 0x10
#define STATX_BASIC_STATS 0x7ff

struct ksigaction {
	void *handler;
	unsigned long flags;
	void *restorer;
	u64 mask;
};

struct ksiginfo {
	int signo, err, code, pad;
	int pid; /* for signals a process sent (code <= 0) */
	u32 uid;
	u8 rest[104];
};

struct kstatx {
	u32 mask, blksize;
	u64 attributes;
	u32 nlink, uid, gid;
	u16 mode, pad1;
	u64 ino, size, blocks, attributes_mask;
	u8 rest[192]; /* times, devices, mount id, ...: 256 bytes in all */
};

/* The kernel writes these whole: a short one would let it write past. */
_Static_assert(sizeof(struct kstatx) == 256, "struct statx is 256 bytes");
_Static_assert(sizeof(struct ksiginfo) == 128, "siginfo_t is 128 bytes");
_Static_assert(sizeof(struct ksigaction) == 32, "struct sigaction is 32 bytes");

struct ktimespec {
	long sec, nsec;
};

static inline long sys_read(int fd, void *b, size_t n) { return SYS3(__NR_read, fd, b, n); }
static inline long sys_write(int fd, const void *b, size_t n) { return SYS3(__NR_write, fd, b, n); }
static inline long sys_pread(int fd, void *b, size_t n, u64 off) { return SYS4(__NR_pread64, fd, b, n, off); }
static inline long sys_openat(int dir, const char *p, int flags) { return SYS4(__NR_openat, dir, p, flags, 0); }
static inline long sys_close(int fd) { return SYS1(__NR_close, fd); }
static inline long sys_readlink(const char *p, char *b, size_t n) { return SYS4(__NR_readlinkat, AT_FDCWD, p, b, n); }
static inline long sys_statx(int dir, const char *p, int flags, struct kstatx *st)
{
	return SYS5(__NR_statx, dir, p, flags, STATX_BASIC_STATS, st);
}
static inline long sys_ioctl(int fd, unsigned long req, long arg) { return SYS3(__NR_ioctl, fd, req, arg); }
static inline long sys_getpid(void) { return SYS0(__NR_getpid); }
static inline long sys_getppid(void) { return SYS0(__NR_getppid); }
static inline long sys_kill(int pid, int sig) { return SYS2(__NR_kill, pid, sig); }
static inline void __attribute__((noreturn)) sys_exit(int code)
{
	for (;;)
		SYS1(__NR_exit_group, code);
}

/* The memory functions the compiler may emit calls to. The build passes
 * -fno-tree-loop-distribute-patterns so these loops are not themselves
 * turned into calls to them. */
void *memcpy(void *d, const void *s, size_t n)
{
	u8 *dp = d;
	const u8 *sp = s;
	/* Eight bytes at a time where it can (the helper's LZ4 literals). */
	for (; n >= 8; n -= 8, dp += 8, sp += 8)
		__builtin_memcpy(dp, sp, 8);
	while (n--)
		*dp++ = *sp++;
	return d;
}

void *memmove(void *d, const void *s, size_t n)
{
	u8 *dp = d;
	const u8 *sp = s;
	if (dp < sp) {
		while (n--)
			*dp++ = *sp++;
	} else {
		while (n--)
			dp[n] = sp[n];
	}
	return d;
}

void *memset(void *d, int c, size_t n)
{
	u8 *dp = d;
	while (n--)
		*dp++ = (u8)c;
	return d;
}

int memcmp(const void *a, const void *b, size_t n)
{
	const u8 *x = a, *y = b;
	for (; n; n--, x++, y++)
		if (*x != *y)
			return *x - *y;
	return 0;
}

static size_t slen(const char *s)
{
	size_t n = 0;
	while (s[n])
		n++;
	return n;
}

static int has_prefix(const char *s, const char *p)
{
	while (*p)
		if (*s++ != *p++)
			return 0;
	return 1;
}

/* The entry point: the kernel starts us with argc, argv and envp on the
 * stack; cmain takes a pointer to them. */
#if defined(__x86_64__)
__asm__(".text\n.global _start\n_start:\n"
	"\txor %ebp, %ebp\n\tmov %rsp, %rdi\n\tand $-16, %rsp\n\tcall cmain\n\thlt\n"
	/* The return from a signal handler (SA_RESTORER is mandatory here). */
	".global parker_restorer\nparker_restorer:\n\tmov $15, %eax\n\tsyscall\n\thlt\n");
#elif defined(__aarch64__)
__asm__(".text\n.global _start\n_start:\n"
	"\tmov x29, #0\n\tmov x30, #0\n\tmov x0, sp\n\tbl cmain\n\tbrk #0\n");
#endif

#endif
