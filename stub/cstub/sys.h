/* sys.h: the little of a C library that the run-time stub needs, with no C
 * library: the process entry point, the kernel's ABI (every constant and
 * structure the stub passes it, by name), one named wrapper per system
 * call it makes, and the memory and string functions the compiler may call
 * on its own. Linux, x86-64 and arm64. System calls return the result or
 * -errno, as the kernel does. */
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

/* ---- constants of the kernel ABI ----
 *
 * Spelled out rather than taken from headers that differ between
 * distributions. Both architectures use the generic numbers: errno
 * values, signal numbers and flags are the same on each. */

/* errno values (asm-generic/errno-base.h, errno.h) */
#define EPERM 1
#define ENOENT 2
#define EINTR 4
#define EIO 5
#define ENXIO 6
#define E2BIG 7
#define ENOEXEC 8
#define ECHILD 10
#define ENOMEM 12
#define EACCES 13
#define EBUSY 16
#define EEXIST 17
#define ENOTDIR 20
#define EISDIR 21
#define EINVAL 22
#define EMFILE 24
#define ENOTTY 25
#define ETXTBSY 26
#define ENAMETOOLONG 36
#define ENOSYS 38
#define ELOOP 40
#define ENODEV 19
#define ENOSPC 28
#define EUSERS 87
#define ENOTCONN 107
#define ELIBBAD 80
/* A result in [-MAX_ERRNO, -1] of a call returning an address is -errno. */
#define MAX_ERRNO 4095

/* signals (asm-generic/signal.h) */
#define SIGHUP 1
#define SIGINT 2
#define SIGQUIT 3
#define SIGILL 4
#define SIGTRAP 5
#define SIGBUS 7
#define SIGFPE 8
#define SIGKILL 9
#define SIGSEGV 11
#define SIGPIPE 13
#define SIGCHLD 17
#define SIGSTOP 19
#define SIGTSTP 20
#define SIGTTIN 21
#define SIGTTOU 22
#define SIGSYS 31
/* The first two real-time signals, which C libraries take for their
 * threads (glibc: SIGCANCEL, SIGSETXID). */
#define SIG_LIBC_FIRST 32
#define SIG_LIBC_LAST 33
#define NSIG 64 /* signals are 1 to NSIG */
#define SIGSET_SIZE 8 /* the kernel's sigset_t: one bit a signal */
#define SIG_DFL 0
#define SIG_IGN 1
#define SIG_BLOCK 0
#define SIG_UNBLOCK 1
#define SIG_SETMASK 2
#define SA_SIGINFO 0x00000004
#define SA_RESTORER 0x04000000
#define SA_RESTART 0x10000000
/* The wait status (wait4): an exit status, or the signal that killed. */
#define WNOHANG 1
#define WTERMSIG(ws) ((ws) & 0x7f)
#define WIFEXITED(ws) (WTERMSIG(ws) == 0)
#define WEXITSTATUS(ws) (((ws) >> 8) & 0xff)

/* files */
#define STDOUT_FILENO 1
#define STDERR_FILENO 2
#define AT_FDCWD (-100)
#define AT_SYMLINK_NOFOLLOW 0x100
#define AT_EMPTY_PATH 0x1000
#define O_RDONLY 0
#define O_WRONLY 1
#define O_RDWR 2
#define O_PATH 010000000
#define O_CREAT 0100
#if defined(__aarch64__)
#define O_NOFOLLOW 0100000
#define O_DIRECTORY 040000
#else
#define O_NOFOLLOW 0400000
#define O_DIRECTORY 0200000
#endif
#define O_CLOEXEC 02000000
#define PATH_MAX 4096 /* the longest path the kernel takes, NUL included */
#define STATX_BASIC_STATS 0x7ff

/* memory */
#define PROT_READ 1
#define PROT_WRITE 2
#define MAP_SHARED 1
#define MAP_PRIVATE 2
#define MAP_ANONYMOUS 0x20
#define MAP_POPULATE 0x8000
#define MFD_CLOEXEC 1
#define MFD_EXEC 0x10

/* processes */
#define CLONE_PIDFD 0x00001000
#define CLONE_NEWNS 0x00020000
#define CLONE_NEWUSER 0x10000000
#define R_OK 4
#define W_OK 2
#define PR_SET_PDEATHSIG 1
#define PR_CAP_AMBIENT 47
#define PR_CAP_AMBIENT_RAISE 2
#define CAP_DAC_OVERRIDE 1
#define CAP_SYS_CHROOT 18
#define CAP_SYS_ADMIN 21
#define CAPABILITY_VERSION_3 0x20080522
#define PR_SET_CHILD_SUBREAPER 36
#define RLIMIT_CORE 4

/* mounts (linux/mount.h) */
#define MS_REC 0x4000
#define MS_PRIVATE (1 << 18)
#define FSOPEN_CLOEXEC 1
#define FSCONFIG_SET_FLAG 0
#define FSCONFIG_SET_STRING 1
#define FSCONFIG_CMD_CREATE 6
#define FSMOUNT_CLOEXEC 1
#define MOUNT_ATTR_RDONLY 1
#define MOUNT_ATTR_NOSUID 2
#define MOUNT_ATTR_NODEV 4
#define MOVE_MOUNT_F_EMPTY_PATH 4
#define OPEN_TREE_CLONE 1
#define OPEN_TREE_CLOEXEC O_CLOEXEC
#define AT_RECURSIVE 0x8000
#define MNT_DETACH 2
/* directory entry types (getdents64) */
#define DT_UNKNOWN 0
#define DT_DIR 4
#define DT_LNK 10
#define AT_REMOVEDIR 0x200
#define CLOSE_RANGE_CLOEXEC 4
#define AF_UNIX 1
#define SOCK_STREAM 1
#define SOCK_CLOEXEC O_CLOEXEC /* the same value on x86-64 and arm64 */
#define MSG_NOSIGNAL 0x4000
#define WALL 0x40000000 /* __WALL: wait for children of any exit signal */
#define F_DUPFD_CLOEXEC 1030
#define POLLIN 1
#define POLLPRI 2

/* loop devices (linux/loop.h) */
#define LOOP_SET_FD 0x4C00
#define LOOP_CLR_FD 0x4C01
#define LOOP_SET_STATUS64 0x4C04
#define LOOP_CONFIGURE 0x4C0A
#define LOOP_CTL_GET_FREE 0x4C82
#define LO_FLAGS_READ_ONLY 1
#define LO_FLAGS_AUTOCLEAR 4

/* ---- structures of the kernel ABI ---- */

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
	u8 times[64];
	u32 rdev_major, rdev_minor, dev_major, dev_minor;
	u8 rest[112]; /* mount id, ...: 256 bytes in all */
};

struct kstatfs {
	long type, bsize;
	u64 blocks, bfree, bavail, files, ffree;
	int fsid[2];
	long namelen, frsize, flags, spare[4];
};
#define ST_NOEXEC 8
#define LOCK_SH 1

struct ktimespec {
	long sec, nsec;
};

struct kpollfd {
	int fd;
	short events, revents;
};

struct krlimit {
	u64 cur, max;
};

/* The loop driver's structures, which it reads whole. */
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

/* The kernel reads and writes these whole: a short one would let it write
 * past, or read what follows. */
_Static_assert(sizeof(struct kstatx) == 256, "struct statx is 256 bytes");
_Static_assert(offsetof(struct kstatx, dev_major) == 136, "stx_dev_major is at byte 136");
_Static_assert(sizeof(struct ksiginfo) == 128, "siginfo_t is 128 bytes");
_Static_assert(sizeof(struct ksigaction) == 32, "struct sigaction is 32 bytes");
_Static_assert(sizeof(struct loop_info64) == 232, "struct loop_info64 is 232 bytes");
_Static_assert(sizeof(struct loop_config) == 304, "struct loop_config is 304 bytes");

/* ---- system calls ---- */

/* sys_failed tells an error from an address (mmap). */
static inline int sys_failed(long r) { return r < 0 && r >= -MAX_ERRNO; }

static inline long sys_read(int fd, void *b, size_t n) { return SYS3(__NR_read, fd, b, n); }
static inline long sys_write(int fd, const void *b, size_t n) { return SYS3(__NR_write, fd, b, n); }
static inline long sys_pread(int fd, void *b, size_t n, u64 off) { return SYS4(__NR_pread64, fd, b, n, off); }
static inline long sys_open(const char *p, int flags) { return SYS4(__NR_openat, AT_FDCWD, p, flags, 0); }
static inline long sys_close(int fd) { return SYS1(__NR_close, fd); }
static inline long sys_readlink(const char *p, char *b, size_t n) { return SYS4(__NR_readlinkat, AT_FDCWD, p, b, n); }
/* sys_fstat: statx of the file, directory or mount open as fd. */
static inline long sys_fstat(int fd, struct kstatx *st)
{
	return SYS5(__NR_statx, fd, "", AT_EMPTY_PATH, STATX_BASIC_STATS, st);
}
/* sys_stat: statx of the file path names, symlinks followed. */
static inline long sys_stat(const char *p, struct kstatx *st)
{
	return SYS5(__NR_statx, AT_FDCWD, p, 0, STATX_BASIC_STATS, st);
}
static inline long sys_ftruncate(int fd, u64 n) { return SYS2(__NR_ftruncate, fd, n); }
static inline long sys_mkdirat(int dir, const char *p, int mode) { return SYS3(__NR_mkdirat, dir, p, mode); }
static inline long sys_fchmodat(int dir, const char *p, int mode) { return SYS4(__NR_fchmodat, dir, p, mode, 0); }
static inline long sys_lchownat(int dir, const char *p, u32 uid, u32 gid)
{
	return SYS5(__NR_fchownat, dir, p, uid, gid, AT_SYMLINK_NOFOLLOW);
}
static inline long sys_getcwd(char *b, size_t n) { return SYS2(__NR_getcwd, b, n); }
static inline long sys_chdir(const char *p) { return SYS1(__NR_chdir, p); }
static inline long sys_fchdir(int fd) { return SYS1(__NR_fchdir, fd); }
static inline long sys_chroot(const char *p) { return SYS1(__NR_chroot, p); }
static inline long sys_pipe2(int fds[2], int flags) { return SYS2(__NR_pipe2, fds, flags); }
static inline long sys_ioctl(int fd, unsigned long req, long arg) { return SYS3(__NR_ioctl, fd, req, arg); }

static inline long sys_mmap(void *addr, size_t n, int prot, int flags, int fd, u64 off)
{
	return sys6(__NR_mmap, (long)addr, n, prot, flags, fd, off);
}
static inline long sys_munmap(long addr, size_t n) { return SYS2(__NR_munmap, addr, n); }
static inline long sys_memfd_create(const char *name, int flags) { return SYS2(__NR_memfd_create, name, flags); }

static inline long sys_getpid(void) { return SYS0(__NR_getpid); }
static inline long sys_getppid(void) { return SYS0(__NR_getppid); }
static inline long sys_geteuid(void) { return SYS0(__NR_geteuid); }
static inline long sys_statfs(const char *p, struct kstatfs *st) { return SYS2(__NR_statfs, p, st); }
static inline long sys_lstat(const char *p, struct kstatx *st)
{
	return SYS5(__NR_statx, AT_FDCWD, p, AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS, st);
}
static inline long sys_flock(int fd, int how) { return SYS2(__NR_flock, fd, how); }
static inline long sys_futimens_now(int fd) { return SYS4(__NR_utimensat, fd, 0, 0, 0); }
static inline long sys_open_mode(const char *p, int flags, int mode) { return SYS4(__NR_openat, AT_FDCWD, p, flags, mode); }
static inline long sys_getegid(void) { return SYS0(__NR_getegid); }
static inline long sys_access(const char *p, int mode) { return SYS3(__NR_faccessat, AT_FDCWD, p, mode); }
static inline long sys_kill(int pid, int sig) { return SYS2(__NR_kill, pid, sig); }
static inline long sys_tgkill(int pid, int tid, int sig) { return SYS3(__NR_tgkill, pid, tid, sig); }
static inline long sys_pidfd_send_signal(int pidfd, int sig) { return SYS4(__NR_pidfd_send_signal, pidfd, sig, 0, 0); }
static inline long sys_rt_sigaction(int sig, const struct ksigaction *act, struct ksigaction *old)
{
	return SYS4(__NR_rt_sigaction, sig, act, old, SIGSET_SIZE);
}
static inline long sys_rt_sigprocmask(int how, const u64 *set, u64 *old)
{
	return SYS4(__NR_rt_sigprocmask, how, set, old, SIGSET_SIZE);
}
static inline long sys_prctl(int op, long arg) { return SYS2(__NR_prctl, op, arg); }
static inline long sys_prctl3(int op, long a, long b) { return SYS5(__NR_prctl, op, a, b, 0, 0); }
struct kcap_header {
	u32 version;
	int pid;
};
struct kcap_data {
	u32 effective, permitted, inheritable;
};
static inline long sys_capget(struct kcap_header *h, struct kcap_data *d) { return SYS2(__NR_capget, h, d); }
static inline long sys_capset(struct kcap_header *h, const struct kcap_data *d) { return SYS2(__NR_capset, h, d); }
static inline long sys_setrlimit(int res, const struct krlimit *lim) { return SYS4(__NR_prlimit64, 0, res, lim, 0); }
static inline long sys_nanosleep(const struct ktimespec *ts) { return SYS2(__NR_nanosleep, ts, 0); }
#define CLOCK_MONOTONIC 1
static inline long sys_clock_gettime(int clock, struct ktimespec *ts) { return SYS2(__NR_clock_gettime, clock, ts); }
/* sys_clone forks (with a pidfd in *pidfd when flags have CLONE_PIDFD):
 * the parent_tid argument, the third on both architectures. */
static inline long sys_clone(unsigned long flags, int *pidfd) { return SYS5(__NR_clone, flags, 0, pidfd, 0, 0); }
static inline long sys_wait4(int pid, int *ws, int options) { return SYS4(__NR_wait4, pid, ws, options, 0); }
static inline long sys_execve(const char *p, char **argv, char **envp) { return SYS3(__NR_execve, p, argv, envp); }
/* sys_execveat runs the program open as fd. */
static inline long sys_execveat(int fd, char **argv, char **envp)
{
	return SYS5(__NR_execveat, fd, "", argv, envp, AT_EMPTY_PATH);
}
static inline long sys_setsid(void) { return SYS0(__NR_setsid); }
/* sys_getdents64 reads directory entries (struct linux_dirent64: ino u64,
 * off u64, reclen u16, type u8, name) of the directory open as fd. */
static inline long sys_getdents64(int fd, void *b, size_t n) { return SYS3(__NR_getdents64, fd, b, n); }
static inline long sys_dup3(int fd, int to) { return SYS3(__NR_dup3, fd, to, 0); }
static inline long sys_dup3_cloexec(int fd, int to) { return SYS3(__NR_dup3, fd, to, O_CLOEXEC); }
static inline long sys_socketpair(int domain, int type, int sv[2]) { return SYS4(__NR_socketpair, domain, type, 0, sv); }
/* sys_send writes to a socket; with MSG_NOSIGNAL a closed peer is -EPIPE,
 * not SIGPIPE. */
static inline long sys_send(int fd, const void *b, size_t n, int flags) { return SYS5(__NR_sendto, fd, b, n, flags, 0); }
/* sys_close_range closes descriptors first to last, or with
 * CLOSE_RANGE_CLOEXEC marks them close-on-exec (Linux 5.9+, 5.11+). */
static inline long sys_close_range(unsigned first, unsigned last, int flags)
{
	return SYS3(__NR_close_range, first, last, flags);
}
/* sys_dupfd_cloexec duplicates fd at the lowest free number from min up. */
static inline long sys_dupfd_cloexec(int fd, int min) { return SYS3(__NR_fcntl, fd, F_DUPFD_CLOEXEC, min); }
/* sys_keep_on_exec clears fd's close-on-exec flag (F_SETFD 0). */
static inline long sys_keep_on_exec(int fd) { return SYS3(__NR_fcntl, fd, 2, 0); }
static inline long sys_pidfd_open(int pid) { return SYS2(__NR_pidfd_open, pid, 0); }
/* sys_poll waits for the events asked in fds, at most *timeout (0: no
 * limit). */
static inline long sys_poll(struct kpollfd *fds, int n, const struct ktimespec *timeout)
{
	return SYS5(__NR_ppoll, fds, n, timeout, 0, 0);
}
static inline long sys_getrandom(void *b, size_t n) { return SYS3(__NR_getrandom, b, n, 0); }
static inline long sys_rmdir(const char *p) { return SYS3(__NR_unlinkat, AT_FDCWD, p, AT_REMOVEDIR); }
static inline void __attribute__((noreturn)) sys_exit(int code)
{
	for (;;)
		SYS1(__NR_exit_group, code);
}

/* The namespace, the loop driver and the mount API, one wrapper a call,
 * named after the mountns functions they mirror (mountns/loop.go,
 * mount.go). */

static inline long sys_unshare(int flags) { return SYS1(__NR_unshare, flags); }
/* sys_setns moves us into the namespace open as fd (of type nstype). */
static inline long sys_setns(int fd, int nstype) { return SYS2(__NR_setns, fd, nstype); }
/* make_private makes every mount at and below / private, so that nothing
 * mounted in this namespace propagates back to the host's; -EINVAL when /
 * is not a mount's root, as in a chroot. */
static inline long make_private(void) { return SYS5(__NR_mount, "", "/", 0, MS_REC | MS_PRIVATE, 0); }

/* loop_get_free returns the number of a free loop device, which the
 * control device returns as the ioctl's result. */
static inline long loop_get_free(int ctl) { return sys_ioctl(ctl, LOOP_CTL_GET_FREE, 0); }

/* loop_configure attaches backing to the loop device fd with offset, size
 * limit and flags, atomically (Linux 5.8+). */
static inline long loop_configure(int fd, int backing, u64 offset, u64 size, u32 flags)
{
	struct loop_config cfg = {0};
	cfg.fd = backing;
	cfg.info.offset = offset;
	cfg.info.sizelimit = size;
	cfg.info.flags = flags;
	return sys_ioctl(fd, LOOP_CONFIGURE, (long)&cfg);
}

/* loop_set_fd and loop_set_status: the same in two steps, before 5.8. */
static inline long loop_set_fd(int fd, int backing) { return sys_ioctl(fd, LOOP_SET_FD, backing); }
static inline long loop_set_status(int fd, u64 offset, u64 size, u32 flags)
{
	struct loop_info64 info = {0};
	info.offset = offset;
	info.sizelimit = size;
	info.flags = flags;
	return sys_ioctl(fd, LOOP_SET_STATUS64, (long)&info);
}
static inline long loop_clear_fd(int fd) { return sys_ioctl(fd, LOOP_CLR_FD, 0); }

static inline long fs_open(const char *type) { return SYS2(__NR_fsopen, type, FSOPEN_CLOEXEC); }
static inline long fs_config(int fs, int cmd, const char *key, const char *value)
{
	return SYS5(__NR_fsconfig, fs, cmd, key, value, 0);
}
static inline long fs_mount(int fs, unsigned attrs) { return SYS3(__NR_fsmount, fs, FSMOUNT_CLOEXEC, attrs); }
/* move_mount attaches the detached mount m on top of path. */
static inline long move_mount(int m, const char *path)
{
	return SYS5(__NR_move_mount, m, "", AT_FDCWD, path, MOVE_MOUNT_F_EMPTY_PATH);
}
/* move_mount_at attaches the detached mount m on name in directory dir. */
static inline long move_mount_at(int m, int dir, const char *name)
{
	return SYS5(__NR_move_mount, m, "", dir, name, MOVE_MOUNT_F_EMPTY_PATH);
}
/* clone_tree makes a detached copy of the mount tree at name in dir (all
 * the mounts below it too, with recursive). */
static inline long clone_tree(int dir, const char *name, int recursive)
{
	return SYS3(__NR_open_tree, dir, name, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | (recursive ? AT_RECURSIVE : 0));
}
static inline long sys_readlinkat(int dir, const char *p, char *b, size_t n) { return SYS4(__NR_readlinkat, dir, p, b, n); }
/* make_readonly makes the detached mount tree m read-only, all of it. */
static inline long make_readonly(int m)
{
	struct {
		u64 set, clr, propagation, userns;
	} attr = {MOUNT_ATTR_RDONLY, 0, 0, 0};
	return SYS5(__NR_mount_setattr, m, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof attr);
}
static inline long sys_symlinkat(const char *target, int dir, const char *p) { return SYS3(__NR_symlinkat, target, dir, p); }
static inline long sys_openat_mode(int dir, const char *p, int flags, int mode) { return SYS4(__NR_openat, dir, p, flags, mode); }

/* unmount detaches the mount on top of path (mountns has no twin: the Go
 * stub never takes its view down). */
static inline long unmount(const char *path) { return SYS2(__NR_umount2, path, MNT_DETACH); }

/* ---- what the compiler and the stub expect of a C library ---- */

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

static int streq(const char *a, const char *b)
{
	while (*a && *a == *b)
		a++, b++;
	return *a == *b;
}

/* The entry point: the kernel starts us with argc, argv and envp on the
 * stack; cmain takes a pointer to them. */
#define STR(x) #x
#define XSTR(x) STR(x)
#if defined(__x86_64__)
__asm__(".text\n.global _start\n_start:\n"
	"\txor %ebp, %ebp\n\tmov %rsp, %rdi\n\tand $-16, %rsp\n\tcall cmain\n\thlt\n"
	/* The return from a signal handler (SA_RESTORER is mandatory here). */
	".global parker_restorer\nparker_restorer:\n\tmov $" XSTR(__NR_rt_sigreturn) ", %eax\n\tsyscall\n\thlt\n");
#elif defined(__aarch64__)
__asm__(".text\n.global _start\n_start:\n"
	"\tmov x29, #0\n\tmov x30, #0\n\tmov x0, sp\n\tbl cmain\n\tbrk #0\n");
#endif

#endif
