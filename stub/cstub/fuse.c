/* fuse.c: the unprivileged rung (R1): where the kernel will not make us a
 * mount namespace (no CAP_SYS_ADMIN: an ordinary user, a container), a
 * user namespace of the run's own, where our user and group alone are
 * mapped, to themselves, and a mount namespace it owns. There the payload
 * is mounted by FUSE, served by the helper (stub/userspace's FUSE server,
 * over mountns/fusefs), under the same tmpfs overlay as on the kernel's
 * rung. The target runs in our place, as the caller's user, with no
 * capabilities left once it is executed.
 *
 * Only a single-threaded process can enter a user namespace
 * (unshare(2): EINVAL otherwise), so this rung is the C stub's: the Go
 * helper, once handed a run, cannot take it (it takes the extraction
 * cache, and says why). */
#include "stub.h"

#define FUSE_DEV "/dev/fuse"

/* How the FUSE server is started from the helper's memory file: argv[0],
 * the one environment variable (the packed file's path, for messages),
 * and its descriptors (stub/userspace's fuseServerDev and on). */
#define FUSE_SERVER_ARG0 "parker-fuse"
#define ENV_FUSE_SERVER "PARKER_FUSE_SERVER=" /* stub.EnvFUSEServer */
#define FUSE_SERVER_DEV 3                     /* /dev/fuse, mounted */
#define FUSE_SERVER_FILE 4                    /* the packed file */
/* Given when the server runs from a memory file, the cache having no copy
 * of the helper (helper.c): the cache directory, for it to write one. */
#define ENV_FUSE_COPY_DIR "PARKER_FUSE_COPY_DIR=" /* stub.EnvFUSECopyDir */
#define FUSE_SERVER_COPY_DIR 5

/* The Go helper's way onto the FUSE rung, for the runs it has (flags,
 * PARKER_VERBOSE, limits): it executes the packed file again with
 * PARKER_USERNS=enter; the stub enters a user namespace, keeps
 * CAP_SYS_ADMIN there as an ambient capability, and hands the run back
 * with PARKER_USERNS=entered (stub.EnvUserns). */
#define ENV_USERNS "PARKER_USERNS="
static int userns_enter; /* it is asked for (wants_helper reads it) */

/* What the FUSE rung failed on, and what stopped the kernel's rung before
 * it, for the helper (stub.EnvFUSEFailed, stub.EnvKernelRefused). */
#define ENV_FUSE_FAILED "PARKER_FUSE_FAILED="
#define ENV_KERNEL_REFUSED "PARKER_KERNEL_REFUSED="

/* fuse_tried: the run is on the FUSE rung, the kernel having refused a
 * mount namespace (or PARKER_MODE=fuse). */
static int fuse_tried;

/* tell_cache_dir tells the helper, handed the run in a user namespace of
 * ours, the cache directory found before it (cache_dir), where owners
 * could still be told apart; none when none was found. */
static void tell_cache_dir(void)
{
	const char *d = cache_dir(1);
	envp = environ_with(ENV_CACHE_CHECKED, d ? d : "", 0, 0); /* never the caller's */
}

/* hand_over hands the run to the helper, which starts over; from the FUSE
 * rung, which it cannot take (and, in a user namespace of ours, cannot
 * leave), it is told which step failed, and how, and takes the extraction
 * cache, saying why. */
static void __attribute__((noreturn)) hand_over(const char *step, long err)
{
	if (fuse_tried) {
		const char *why = cat(step ? step : "set up", ": ", errtext(-err));
		envp = environ_with(ENV_FUSE_FAILED, why, kernel_refused ? ENV_KERNEL_REFUSED : 0, kernel_refused);
		tell_cache_dir();
	}
	helper();
}

/* fuse_usable tells whether /dev/fuse is there for us to open: checked
 * before anything is done that cannot be undone. */
static int fuse_usable(void) { return sys_access(FUSE_DEV, R_OK | W_OK) == 0; }

/* enter_userns moves us into a new user namespace, our user and group
 * mapped to themselves; the mount namespace stays the one we had. */
static void enter_userns(void)
{
	char u[DECIMAL_SIZE], g[DECIMAL_SIZE];
	const char *uid = decimal(sys_geteuid(), u), *gid = decimal(sys_getegid(), g);
	TRY_AT(sys_unshare(CLONE_NEWUSER), "unshare user namespace");
	in_userns = 1;
	/* An unprivileged writer of gid_map must give up setgroups first. */
	TRY_AT(write_str("/proc/self/setgroups", "deny"), "deny setgroups in the user namespace");
	TRY_AT(write_str("/proc/self/uid_map", cat(uid, " ", cat(uid, " 1", ""))), "map the user");
	TRY_AT(write_str("/proc/self/gid_map", cat(gid, " ", cat(gid, " 1", ""))), "map the group");
}

/* enter_mountns moves us into a new private mount namespace, which the
 * user namespace we are in owns, so that we may mount in it. */
static void enter_mountns(void)
{
	TRY_AT(sys_unshare(CLONE_NEWNS), "unshare mount namespace in the user namespace");
	TRY_AT(make_private(), "make mounts private");
}

/* enter_user moves us into a new user namespace and a mount namespace it
 * owns. */
static void enter_user(void)
{
	enter_userns();
	enter_mountns();
}

/* mount_fuse mounts a FUSE file system on the connection dev, read-only,
 * nosuid and nodev, detached, its root a directory owned by us, the
 * kernel checking permissions by mode bits (default_permissions). */
static int mount_fuse(int dev)
{
	char d[DECIMAL_SIZE], u[DECIMAL_SIZE], g[DECIMAL_SIZE];
	long fs = fs_open("fuse");
	TRY_AT(fs, "mount FUSE");
	TRY_AT(fs_config(fs, FSCONFIG_SET_STRING, "source", "parker"), "mount FUSE");
	TRY_AT(fs_config(fs, FSCONFIG_SET_STRING, "subtype", "parker"), "mount FUSE");
	TRY_AT(fs_config(fs, FSCONFIG_SET_STRING, "fd", decimal(dev, d)), "mount FUSE");
	TRY_AT(fs_config(fs, FSCONFIG_SET_STRING, "rootmode", "40000"), "mount FUSE");
	TRY_AT(fs_config(fs, FSCONFIG_SET_STRING, "user_id", decimal(sys_geteuid(), u)), "mount FUSE");
	TRY_AT(fs_config(fs, FSCONFIG_SET_STRING, "group_id", decimal(sys_getegid(), g)), "mount FUSE");
	TRY_AT(fs_config(fs, FSCONFIG_SET_FLAG, "default_permissions", 0), "mount FUSE");
	return fs_create_mount(fs, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV, "mount FUSE");
}

/* fuse_server_enter makes this process, the stub's grandchild, the FUSE
 * server: a session of its own (no terminal's signals), /dev/null for
 * standard input and output, our standard error for its one line about a
 * damaged image, the connection and the packed file as descriptors 3 and
 * 4 (and the cache directory as 5, when it is to write the helper's copy
 * there), nothing else of ours; then, once told (go: a byte once the
 * connection is mounted; end of file: the stub gave up), it runs the
 * helper: the cache's copy, or from memory, unpacked meanwhile. It never
 * returns: on failure it exits, its descriptor of the connection closes,
 * and the connection is aborted, which fails the stub's next mount. */
static void __attribute__((noreturn)) fuse_server_enter(int dev, int go)
{
	sys_setsid();
	quiet = 1; /* the stub says why, when it cannot start us */
	/* Everything ours above the descriptors it is given (the caller may
	 * have closed 0 to 2: what we open would land there). */
	long m = helper_copy >= 0 ? helper_copy : helper_memfd(), mfd = sys_dupfd_cloexec((int)m, 16);
	long d = sys_dupfd_cloexec(dev, 16), f = sys_dupfd_cloexec(file, 16);
	long n0 = sys_open("/dev/null", O_RDWR | O_CLOEXEC), null = n0 < 0 ? n0 : sys_dupfd_cloexec((int)n0, 16);
	long cd = helper_copy_dir >= 0 ? sys_dupfd_cloexec(helper_copy_dir, 16) : -1;
	if (mfd < 0 || d < 0 || f < 0 || null < 0)
		sys_exit(1);
	char c;
	long n;
	while ((n = sys_read(go, &c, 1)) == -EINTR)
		;
	if (n != 1)
		sys_exit(0);
	sys_dup3((int)null, 0);
	sys_dup3((int)null, 1);
	sys_dup3((int)d, FUSE_SERVER_DEV);
	sys_dup3((int)f, FUSE_SERVER_FILE);
	/* Not a pipe of the caller's, nor anything else it left open. */
	if (sys_close_range(FUSE_SERVER_FILE + 1, ~0U, CLOSE_RANGE_CLOEXEC) < 0) /* before Linux 5.11 */
		for (int fd = FUSE_SERVER_FILE + 1; fd < 1024; fd++)
			if (fd != mfd && fd != cd)
				sys_close(fd);
	char *args[] = {FUSE_SERVER_ARG0, 0};
	char *env[] = {cat(ENV_FUSE_SERVER, self, ""), 0, 0};
	file = FUSE_SERVER_FILE; /* where the packed file is now */
	/* The cache's copy; from memory when there is none, or it will not
	 * run: then the server writes one, in place of that. */
	if (helper_copy < 0 || sys_execveat((int)mfd, args, env) < 0) {
		if (cd >= 0 && sys_dup3((int)cd, FUSE_SERVER_COPY_DIR) == FUSE_SERVER_COPY_DIR)
			env[1] = ENV_FUSE_COPY_DIR "1";
		sys_execveat(helper_copy < 0 ? (int)mfd : helper_memfd(), args, env);
	}
	sys_exit(1);
}

/* fuse_server_start starts the FUSE server on connection dev, by a double
 * fork, so that it is nobody's child but init's (the target never sees it
 * among its children), in the mount namespace we are in, which the run
 * then leaves: the run's cleanup, which ends what is left in the run's,
 * leaves the server, and its cgroup does not count it. The server ends
 * when the connection does: when the run's namespace, the last to hold
 * the mount, is gone. It returns the pipe to tell it to start (fuse_go). */
static int fuse_server_start(int dev)
{
	int p[2]; /* a socket, so that a gone server is EPIPE, not SIGPIPE */
	TRY_AT(sys_socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, p), "start the FUSE server: socketpair");
	long pid = sys_clone(0, 0);
	if (pid == 0) {
		long srv = sys_clone(SIGCHLD, 0);
		if (srv == 0) {
			sys_close(p[1]);
			fuse_server_enter(dev, p[0]);
		}
		sys_exit(srv < 0);
	}
	int ws = -1;
	while (pid > 0 && sys_wait4(pid, &ws, WALL) == -EINTR)
		;
	sys_close(p[0]);
	if (pid < 0 || !WIFEXITED(ws) || WEXITSTATUS(ws) != 0)
		hand_over("start the FUSE server", pid < 0 ? pid : -ECHILD);
	return p[1];
}

/* setup_fuse mounts the view over dir with the payload served by FUSE:
 * the server started before we enter the run's mount namespace (own: we
 * are in one of ours already, and it starts there). */
static void setup_fuse(const char *dir, int own)
{
	long dev = sys_open(FUSE_DEV, O_RDWR | O_CLOEXEC);
	TRY_AT(dev, "open " FUSE_DEV);
	int go = fuse_server_start((int)dev);
	if (!own)
		enter_mountns();
	int lower = mount_fuse((int)dev);
	TRY_AT(sys_send(go, "", 1, MSG_NOSIGNAL), "start the FUSE server");
	sys_close(go);
	/* The server's descriptor is the connection's only one now: should
	 * it end, the kernel aborts the connection, and what waits on it
	 * (the overlay's mount, next) fails instead of waiting for ever. */
	sys_close(dev);
	view(lower, dir);
	sys_close(lower);
}

/* keep_admin keeps CAP_SYS_ADMIN, CAP_DAC_OVERRIDE and CAP_SYS_CHROOT,
 * ours in the user namespace we made, across the exec of the helper, as
 * ambient capabilities: the helper, run as our own user there, would have
 * none left otherwise. The first is for its mounts; overlayfs checks its
 * layers with the mounter's credentials, and refuses the mount without the
 * second (this stub, which mounts its own with every capability of the
 * namespace, never lacks it); the third enters a closure's root
 * (mountns.StoreRoot). Each acts only on what the namespace maps, the
 * caller's own user and group. The helper drops them before it executes
 * the target. */
static void keep_admin(void)
{
	static const int keep[] = {CAP_SYS_ADMIN, CAP_DAC_OVERRIDE, CAP_SYS_CHROOT};
	struct kcap_header h = {CAPABILITY_VERSION_3, 0};
	struct kcap_data d[2];
	TRY_AT(sys_capget(&h, d), "keep capabilities: capget");
	for (unsigned i = 0; i < sizeof keep / sizeof *keep; i++)
		d[0].inheritable |= 1u << keep[i];
	TRY_AT(sys_capset(&h, d), "keep capabilities: capset");
	for (unsigned i = 0; i < sizeof keep / sizeof *keep; i++)
		TRY_AT(sys_prctl3(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, keep[i]), "keep capabilities: ambient");
}

/* userns_for_helper makes a user namespace and a mount namespace for the
 * helper, as for our own FUSE rung, and hands the run to it there with
 * CAP_SYS_ADMIN: for FUSE, or for the extraction cache's copy under an
 * overlay. */
static void __attribute__((noreturn)) userns_for_helper(void)
{
	fuse_tried = 1;
	find_helper_copy(1); /* from outside the namespace (cache_dir) */
	enter_user();
	keep_admin();
	envp = environ_with(ENV_USERNS, "entered", kernel_refused ? ENV_KERNEL_REFUSED : 0, kernel_refused);
	tell_cache_dir();
	helper();
}

/* userns_child tells whether we are in a user namespace other than the
 * host's (its uid_map is not the whole range mapped to itself). */
static int userns_child(void)
{
	char m[128], norm[128];
	long n = read_small("/proc/self/uid_map", m, sizeof m);
	size_t k = 0;
	int gap = 0;
	for (long i = 0; i < n && k < sizeof norm - 2; i++) {
		if (m[i] == ' ' || m[i] == '\t' || m[i] == '\n') {
			gap = k > 0;
			continue;
		}
		if (gap)
			norm[k++] = ' ';
		gap = 0;
		norm[k++] = m[i];
	}
	norm[k] = 0;
	return n <= 0 || !streq(norm, "0 0 4294967295");
}

/* fuse_rung takes the FUSE rung, the kernel's having been refused (or
 * PARKER_MODE=fuse), in the mount namespace we are in when it is ours
 * (own: the kernel gave us one, in a user namespace of a container's, say,
 * but no loop device), or else in a user namespace and mount namespace of
 * the run's own. */
/* cache_rung takes the extraction cache's rung, FUSE being out (or
 * PARKER_MODE=extract): its copy under the same overlay, in a user
 * namespace; a hit here, the rest the helper's (which makes the copy, or
 * says why not). */
static void cache_rung(const char *dir)
{
	const char *entry = cache_hit();
	if (!entry)
		userns_for_helper();
	fuse_tried = 1;
	enter_user();
	long lower = sys_open(entry, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	TRY_AT(lower, "open the cache entry");
	owner_write = 1;
	view((int)lower, dir);
	sys_close(lower);
}

static void fuse_rung(const char *dir, int own)
{
	if (!fuse_usable()) {
		/* In a mount namespace of our own, and with PARKER_MODE=fuse
		 * (which says why FUSE cannot be had), the helper's. */
		if (own || rung == RUNG_FUSE)
			helper();
		cache_rung(dir);
		return;
	}
	/* In a mount namespace of our own the helper can still mount
	 * what we could, and tries FUSE again, or the cache's copy: it is
	 * not told we tried. */
	fuse_tried = !own;
	find_helper_copy(1); /* for the server, from outside the namespace */
	if (own)
		in_userns = userns_child();
	else
		enter_userns();
	setup_fuse(dir, own);
}

/* attach gives us the view over dir by the first rung that works: the
 * kernel's (a mount namespace, a loop device), then FUSE, where those are
 * refused. PARKER_MODE=kernel or fuse (rung) keeps to one. Everything
 * else is the helper's: the extraction cache, and saying why. */
static void attach(const char *dir)
{
	/* A closure's store, from the cache (mountns.c: store_root), made
	 * by the helper on the first run where there is a cache directory. */
	if (tr.flags & FLAG_CLOSURE) {
		const char *cd = cache_dir(1);
		closure_entry = closure_hit(cd);
		if (!closure_entry && cd)
			helper();
	}
	long e = rung == RUNG_FUSE ? -EPERM : sys_unshare(CLONE_NEWNS);
	if (!e && rung == RUNG_EXTRACT)
		helper(); /* root's: the helper mounts the copy in this namespace */
	if (!e) {
		e = make_private();
		if (e == -EINVAL)
			e = make_private_in_chroot();
		TRY(e);
		int sq = mount_image();
		if (sq >= 0) {
			view(sq, dir);
			sys_close(sq);
			return;
		}
		/* Refused (a damaged image is the helper's to report). */
		if ((sq != -EPERM && sq != -EACCES && sq != -ENOENT) || rung == RUNG_KERNEL)
			helper();
		fuse_rung(dir, 1);
		return;
	}
	if (e != -EPERM || rung == RUNG_KERNEL)
		helper();
	if (rung != RUNG_FUSE)
		refused("unshare mount namespace", e);
	if (rung == RUNG_EXTRACT)
		cache_rung(dir);
	else
		fuse_rung(dir, 0);
}
