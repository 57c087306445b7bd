/* minstub: the least a packed file can cost on this kernel, for
 * hack/bench-start.sh. A static C program, no Go runtime, that does only
 * the kernel's share of parker's run path (private mount namespace, loop
 * device, squashfs, tmpfs and overlay, then exec of the target in place):
 * no supervision, no signal relay, no error handling worth the name.
 * Not part of parker; bench-start.sh splices it in front of a payload and
 * reads the payload's offset, size and target from the parker trailer. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/loop.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

extern char **environ;

static uint64_t le(const unsigned char *b, int n) {
	uint64_t v = 0;
	for (int i = n - 1; i >= 0; i--)
		v = v << 8 | b[i];
	return v;
}

static int fsmnt(const char *type, const char *k1, const char *v1, unsigned attrs) {
	int fs = syscall(SYS_fsopen, type, 1 /* FSOPEN_CLOEXEC */);
	if (fs < 0)
		return -1;
	if (k1 && syscall(SYS_fsconfig, fs, 1 /* SET_STRING */, k1, v1, 0))
		return -1;
	if (!strcmp(type, "squashfs") && syscall(SYS_fsconfig, fs, 0 /* SET_FLAG */, "ro", NULL, 0))
		return -1;
	if (syscall(SYS_fsconfig, fs, 6 /* CMD_CREATE */, NULL, NULL, 0))
		return -1;
	return syscall(SYS_fsmount, fs, 1 /* FSMOUNT_CLOEXEC */, attrs);
}

int main(int argc, char **argv) {
	(void)argc;
	static char self[4096], dir[4096], target[8192], dev[64], p1[64], p2[64], p3[64];
	static unsigned char foot[16], body[4096];
	ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
	if (n <= 0)
		return 125;
	strcpy(dir, self);
	*strrchr(dir, '/') = 0;
	int f = open(self, O_RDONLY | O_CLOEXEC);
	struct stat st;
	fstat(f, &st);
	pread(f, foot, 16, st.st_size - 16);
	uint64_t blen = le(foot, 4);
	if (memcmp(foot + 8, "PARKER\0\1", 8) || blen > sizeof body)
		return 125;
	pread(f, body, blen, st.st_size - 16 - blen);
	uint64_t off = le(body + 12, 8), size = le(body + 20, 8), tlen = le(body + 68, 2);
	snprintf(target, sizeof target, "%s/%.*s", dir, (int)tlen, body + 70);
	if (unshare(CLONE_NEWNS) || mount("none", "/", NULL, MS_REC | MS_PRIVATE, NULL))
		return 125;
	int ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
	snprintf(dev, sizeof dev, "/dev/loop%d", ioctl(ctl, LOOP_CTL_GET_FREE));
	int l = open(dev, O_RDONLY | O_CLOEXEC);
	struct loop_config c;
	memset(&c, 0, sizeof c);
	c.fd = f;
	c.info.lo_offset = off;
	c.info.lo_sizelimit = size;
	c.info.lo_flags = LO_FLAGS_READ_ONLY | LO_FLAGS_AUTOCLEAR;
	if (ioctl(l, LOOP_CONFIGURE, &c))
		return 125;
	int sq = fsmnt("squashfs", "source", dev, 1 | 2 | 4);
	int tmp = fsmnt("tmpfs", "mode", "700", 2 | 4);
	close(l);
	close(f);
	if (sq < 0 || tmp < 0 || mkdirat(tmp, "upper", 0755) || mkdirat(tmp, "work", 0700))
		return 125;
	snprintf(p1, sizeof p1, "/proc/self/fd/%d", sq);
	snprintf(p2, sizeof p2, "/proc/self/fd/%d/upper", tmp);
	snprintf(p3, sizeof p3, "/proc/self/fd/%d/work", tmp);
	int fs = syscall(SYS_fsopen, "overlay", 1);
	if (syscall(SYS_fsconfig, fs, 1, "lowerdir+", p1, 0) || syscall(SYS_fsconfig, fs, 1, "lowerdir+", dir, 0) ||
	    syscall(SYS_fsconfig, fs, 1, "upperdir", p2, 0) || syscall(SYS_fsconfig, fs, 1, "workdir", p3, 0) ||
	    syscall(SYS_fsconfig, fs, 6, NULL, NULL, 0))
		return 125;
	int ov = syscall(SYS_fsmount, fs, 1, 0);
	if (ov < 0 || syscall(SYS_move_mount, ov, "", AT_FDCWD, dir, 4 /* F_EMPTY_PATH */))
		return 125;
	argv[0] = strrchr(target, '/') + 1;
	execve(target, argv, environ);
	return 127;
}
