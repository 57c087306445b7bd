/* cgroup.c: the run's cgroup, as package cgroup makes it (the reference)
 * for a run without limits on a host with the v2 hierarchy: a directory
 * PARENT/parker/run-NS-PID-START-RANDOM of the v2 hierarchy, where PARENT is
 * the caller's own cgroup, killed whole with cgroup.kill (Linux 5.14+).
 * Moving a process into a cgroup costs the kernel an RCU grace period
 * after an idle moment (cgroup_threadgroup_rwsem; 18 ms on the test VM), so
 * the sidecar does it, after the exec, off the target's start.
 * Anything else (v1 only, no delegation, PARKER_CGROUP set, limits) is the
 * helper's, and so is any failure here: nothing made is left behind. */
#include "stub.h"

/* The v2 hierarchy's usual mount points: pure v2, then hybrid. */
static const char *const cgroup_v2_mounts[] = {"/sys/fs/cgroup", "/sys/fs/cgroup/unified"};

/* read_small reads the file at path into b (size n, NUL-terminated) and
 * returns its length, or -errno. */
static long read_small(const char *path, char *b, size_t n)
{
	long fd = sys_open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return fd;
	long got = 0, r;
	while (got < (long)n - 1 && (r = sys_read(fd, b + got, n - 1 - got)) > 0)
		got += r;
	sys_close(fd);
	b[got] = 0;
	return got;
}

/* write_str writes s to the file at path. */
static long write_str(const char *path, const char *s)
{
	long fd = sys_open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return fd;
	long r = sys_write(fd, s, slen(s));
	sys_close(fd);
	return r < 0 ? r : 0;
}

/* own_cgroup returns our cgroup in the v2 hierarchy ("0::PATH" of
 * /proc/self/cgroup), or 0. */
static const char *own_cgroup(void)
{
	char *b = alloc(8192);
	if (read_small("/proc/self/cgroup", b, 8192) <= 0)
		return 0;
	for (char *line = b; *line;) {
		char *end = line;
		while (*end && *end != '\n')
			end++;
		if (end - line >= 4 && line[0] == '0' && line[1] == ':' && line[2] == ':' && line[3] == '/') {
			*end = 0;
			return line[4] ? line + 3 : ""; /* "/" is the root: no slash to add */
		}
		line = *end ? end + 1 : end;
	}
	return 0;
}

/* start_time returns the start time of the process whose stat file is
 * path (/proc/PID/stat), in clock ticks after boot, field 22
 * (cgroup.startTime), or 0. */
static u64 start_time(const char *path)
{
	char b[1024];
	long n = read_small(path, b, sizeof b);
	long i = n;
	while (i > 0 && b[i - 1] != ')') /* the name may hold ')' */
		i--;
	if (i <= 0)
		return 0;
	int field = 2;
	u64 v = 0;
	for (; i < n; i++) {
		if (b[i] == ' ') {
			if (field == 22)
				return v;
			field++;
			v = 0;
		} else if (b[i] >= '0' && b[i] <= '9') {
			v = v * 10 + (b[i] - '0');
		}
	}
	return 0;
}

/* dir_each calls fn(name, arg) for every entry of the directory dir but
 * "." and "..", and returns how many fn counted (returned non-zero for). */
static int dir_each(const char *dir, const void *arg, int (*fn)(const char *name, const void *arg))
{
	long d = sys_open(dir, O_RDONLY | O_CLOEXEC);
	if (d < 0)
		return 0;
	static char buf[16384];
	int counted = 0;
	long n;
	while ((n = sys_getdents64((int)d, buf, sizeof buf)) > 0) {
		for (long off = 0; off < n;) {
			u16 reclen = (u16)((u8)buf[off + 16] | (u8)buf[off + 17] << 8);
			const char *name = buf + off + 19;
			off += reclen;
			if (!streq(name, ".") && !streq(name, ".."))
				counted += fn(name, arg) != 0;
		}
	}
	sys_close(d);
	return counted;
}

/* run_name is the run cgroup's name (cgroup.runName), owned by us. */
static const char *run_name(void)
{
	struct kstatx st;
	u64 start = start_time("/proc/self/stat");
	u8 r[4];
	if (sys_stat("/proc/self/ns/pid", &st) < 0 || !start || sys_getrandom(r, sizeof r) != sizeof r)
		return 0;
	char ns[DECIMAL_SIZE], pid[DECIMAL_SIZE], st_[DECIMAL_SIZE];
	char hex[9];
	for (int i = 0; i < 4; i++) {
		hex[2 * i] = "0123456789abcdef"[r[i] >> 4];
		hex[2 * i + 1] = "0123456789abcdef"[r[i] & 15];
	}
	hex[8] = 0;
	return cat(cat("run-", decimal(st.ino, ns), "-"), cat(decimal(sys_getpid(), pid), "-", decimal(start, st_)),
		   cat("-", hex, ""));
}

/* cgroup_make makes the run's cgroup and returns its directory; 0 when it
 * cannot, having made nothing (Create). The sidecar moves the run into
 * it (cgroup_adopt). */
static const char *cgroup_make(void)
{
	const char *own = own_cgroup();
	const char *name = run_name();
	if (!own || !name)
		return 0;
	struct kstatx st;
	for (size_t i = 0; i < sizeof cgroup_v2_mounts / sizeof *cgroup_v2_mounts; i++) {
		const char *mnt = cgroup_v2_mounts[i];
		if (sys_stat(cat(mnt, "/cgroup.controllers", ""), &st) < 0)
			continue;
		const char *base = cat(mnt, own, "/parker");
		long e = sys_mkdirat(AT_FDCWD, base, 0755);
		if (e < 0 && e != -EEXIST)
			return 0;
		const char *dir = cat(base, "/", name);
		if (sys_mkdirat(AT_FDCWD, dir, 0755) < 0)
			return 0;
		if (sys_stat(cat(dir, "/cgroup.kill", ""), &st) < 0) {
			sys_rmdir(dir);
			return 0;
		}
		return dir;
	}
	return 0;
}

/* number reads the decimal number at *p up to the next '-' or the end,
 * moving *p past it; it returns -1 for anything else. */
static long long number(const char **p)
{
	long long v = 0;
	const char *c = *p;
	if (*c < '0' || *c > '9')
		return -1;
	for (; *c >= '0' && *c <= '9'; c++)
		if ((v = v * 10 + (*c - '0')) > 0x7fffffffffffffLL)
			return -1;
	if (*c && *c != '-')
		return -1;
	*p = *c ? c + 1 : c;
	return v;
}

/* Where cgroup_clean_stale looks: the parker directory, and our pid
 * namespace (the inode of /proc/self/ns/pid). */
struct stale_scan {
	const char *parent;
	u64 pidns;
};

/* stale_one removes the run cgroup name of the parker directory when it
 * is stale (cgroup.CleanStale): named by run_name for an owner in our pid
 * namespace that is gone, and holding no process. It returns 1 when it
 * removed it. */
static int stale_one(const char *name, const void *scan_)
{
	const struct stale_scan *scan = scan_;
	const char *p = name + 4;
	if (!has_prefix(name, "run-"))
		return 0;
	long long ns = number(&p), pid = number(&p), start = number(&p);
	if (ns < 0 || pid <= 0 || start < 0 || !*p || (u64)ns != scan->pidns)
		return 0;
	char num[DECIMAL_SIZE], b[512];
	if (start_time(cat("/proc/", decimal(pid, num), "/stat")) == (u64)start)
		return 0; /* the owner lives: never its cgroup, even empty */
	const char *dir = cat(scan->parent, "/", name);
	if (read_small(cat(dir, "/cgroup.events", ""), b, sizeof b) <= 0)
		return 0;
	for (const char *c = b; *c; c++)
		if (has_prefix(c, "populated 1"))
			return 0;
	return sys_rmdir(dir) == 0; /* once: refused, a process got in since */
}

/* cgroup_clean_stale removes, beside the run cgroup dir, the stale run
 * cgroups of runs that ended before they could remove theirs. */
static void cgroup_clean_stale(const char *dir)
{
	char *parent = cat(dir, "", "");
	char *slash = parent + slen(parent);
	while (slash > parent && *slash != '/')
		slash--;
	*slash = 0;
	struct kstatx st;
	if (sys_stat("/proc/self/ns/pid", &st) < 0)
		return;
	struct stale_scan scan = {parent, st.ino};
	dir_each(parent, &scan, stale_one);
}

/* cgroup_kill kills every process of the cgroup dir (Kill). */
static void cgroup_kill(const char *dir) { write_str(cat(dir, "/cgroup.kill", ""), "1"); }

/* cgroup_remove waits until the cgroup dir is empty and removes it
 * (Remove). */
static void cgroup_remove(const char *dir)
{
	long fd = sys_open(cat(dir, "/cgroup.events", ""), O_RDONLY | O_CLOEXEC);
	/* The kernel wakes pollers of cgroup.events when "populated" changes;
	 * the timeout only bounds a wait for a process stuck in the kernel. */
	for (int round = 0; fd >= 0 && round < 100; round++) {
		struct ktimespec tick = {0, 100 * 1000 * 1000}; /* ppoll writes back what is left */
		char b[512];
		long n = sys_pread(fd, b, sizeof b - 1, 0);
		if (n <= 0)
			break;
		b[n] = 0;
		const char *p = b;
		while (*p && !has_prefix(p, "populated "))
			p++;
		if (has_prefix(p, "populated 0"))
			break;
		struct kpollfd pfd = {(int)fd, POLLPRI, 0};
		sys_poll(&pfd, 1, &tick);
	}
	if (fd >= 0)
		sys_close(fd);
	for (int round = 0; sys_rmdir(dir) == -EBUSY && round < 100; round++)
		sys_nanosleep(&(struct ktimespec){0, 10 * 1000 * 1000});
}

