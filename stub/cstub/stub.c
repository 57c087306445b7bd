/* The run-time stub of a packed file: what runs when TARGETd is started.
 *
 * This is the hot path of every start, written without the Go runtime,
 * whose own start and exit cost more on some machines than all the kernel
 * work of a run (see README, "Start-up"). It does exactly what the Go stub
 * (package stub, mountns and supervisor) does for a plain run, and nothing
 * else:
 *
 *  1. read and check the trailer at the end of its own file, and that the
 *     libraries the target takes from this machine are there;
 *  2. start the cleanup sidecar (a double fork, in a session of its own);
 *  3. enter a private mount namespace; attach the payload to a read-only,
 *     auto-clearing loop device; mount it as a detached squashfs, a
 *     detached tmpfs for writes, and an overlay of both over the directory
 *     holding the packed file;
 *  4. make the run's cgroup (v2) and brief the sidecar, which moves the
 *     run into it once the target runs (a move costs the kernel an RCU
 *     grace period, too long to wait for here);
 *  5. exec the target in its own place, in the caller's working directory
 *     re-resolved in the new view, named so that it finds itself as when
 *     run directly, with PARKER_EXE and PARKER_ROOT set. From then on the
 *     target is the process the caller started: its signals, its exit
 *     status. When it ends, the sidecar kills what it left (cgroup.kill)
 *     and removes the cgroup.
 *
 * Everything else is the Go helper's, which the packed file carries as an
 * LZ4 block between this stub and the payload: --parker-* flags,
 * PARKER_VERBOSE, and every failure before the target starts (the kernel
 * refusing the mounts, a damaged image, an old kernel, a target that cannot
 * be executed). The stub executes
 * the helper, from the cache's copy of it or unpacked into a memory file
 * (helper.c), with the same arguments;
 * the helper then does the whole run again in Go, and either succeeds or
 * reports the cause precisely. So every error message and every fallback
 * lives in one place, the Go code; this stub only has to be fast and
 * right on the path that works.
 *
 * Not linked with a C library: sys.h has the few system calls it makes.
 * One translation unit: this file includes the parts, each of which
 * mirrors a piece of the Go stub (stub.h says why). Built by
 * hack/build.sh; tested end to end by the tests in tests/. */
#include "stub.h"

#include "msg.c"        /* one line on stderr, and an exit */
#include "mem.c"        /* memory, joined strings, environments */
#include "trailer.c"    /* step 1: image/trailer */
#include "needs.c"      /* the target's libraries, there or the helper's */
#include "lz4.c"        /* the helper's LZ4 block */
#include "cache.c"      /* the cache: a hit, the helper's copy */
#include "helper.c"     /* the hand-over: stub/helper.go */
#include "mountns.c"    /* step 3: mountns */
#include "cgroup.c"     /* step 4: cgroup */
#include "fuse.c"       /* step 3 without privileges: a user namespace, FUSE */
#include "supervisor.c" /* step 5: supervisor */

/* cwd_within returns the caller's working directory (the kernel's name of
 * it) when it is dir or below it, to be re-resolved by path in the new
 * view; otherwise 0. */
static const char *cwd_within(const char *dir)
{
	char *cwd = alloc(PATH_MAX);
	long n = sys_getcwd(cwd, PATH_MAX);
	size_t dl = slen(dir);
	if (n > 0 && cwd[0] == '/' && has_prefix(cwd, dir) && (cwd[dl] == 0 || cwd[dl] == '/'))
		return cwd;
	return 0;
}

/* same_file tells whether paths a and b name one file. */
static int same_file(const char *a, const char *b)
{
	struct kstatx sa, sb;
	return sys_stat(a, &sa) == 0 && sys_stat(b, &sb) == 0 && sa.ino == sb.ino &&
	       sa.dev_major == sb.dev_major && sa.dev_minor == sb.dev_minor;
}

/* target_name returns the name the target at path (absolute, in the view)
 * is run by, starting in dir (0: ours): its argv[0] and the path it is
 * executed through (stub.go's targetName). When our argv[0] has a slash,
 * it is that path with our base name replaced by the target's path in the
 * packed directory, if that names the target there; otherwise path. */
static const char *target_name(const char *path, const char *dir)
{
	const char *caller = argc > 0 ? argv[0] : "";
	size_t cut = base_at(caller);
	if (!cut) /* found through PATH, or no name at all */
		return path;
	size_t rl = slen(tr.target);
	char *name = alloc(cut + rl + 1);
	memcpy(name, caller, cut);
	memcpy(name + cut, tr.target, rl + 1);
	/* A relative name is resolved where the target starts. */
	const char *at = dir && name[0] != '/' ? cat(dir, "/", name) : name;
	return same_file(at, path) ? name : path;
}

/* target_args returns args with name as argv[0]. */
static char **target_args(const char *name, char **args)
{
	if (!args[0]) { /* argc 0 (kernels before 5.18 allow it): no slot to reuse */
		args = alloc(2 * sizeof *args);
		args[1] = 0;
	}
	args[0] = (char *)name;
	return args;
}

/* run mounts the view and runs the target in it with args (stub.go's
 * runner.run). */
static void __attribute__((noreturn)) run(char **args)
{
	if (!needs_met())
		helper(); /* which asks the target's loader, and names what is missing */
	/* The directory holding the packed file: where the view appears. */
	char *dir = dir_of(self);
	if (!dir)
		helper(); /* in / (the helper says why that cannot work) */
	const char *cwd = cwd_within(dir);

	/* The sidecar first, outside the namespace (supervisor/sidecar.go). */
	int side = sidecar_launch();
	attach(dir);
	/* file stays open: starting the target may still fail over to the
	 * helper, which maps it (it is close-on-exec, so the target never
	 * sees it). */
	/* The sidecar's plan: our namespace, and the cgroup it moves the run
	 * into (none: the namespace alone tells the run's processes). */
	char ns[64];
	long nl = sys_readlink("/proc/self/ns/mnt", ns, sizeof ns - 1);
	if (nl <= 0) {
		unmount(dir);
		hand_over("read the run's mount namespace", nl ? nl : -EINVAL);
	}
	ns[nl] = 0;
	const char *cgroup = cgroups_off ? "" : cgroup_make();
	if (!cgroup && in_userns) {
		/* No delegated cgroup for an ordinary user, mostly: as the
		 * helper would, go by the namespace alone. */
		cgroup = "";
	} else if (!cgroup) {
		unmount(dir); /* the helper falls back to the namespace, or says why */
		hand_over("make the run's cgroup", -EPERM);
	}
	if (sidecar_brief(side, ns, cgroup) < 0) {
		if (*cgroup)
			sys_rmdir(cgroup); /* no sidecar: the helper tries again */
		unmount(dir);
		hand_over("brief the cleanup sidecar", -ECHILD);
	}

	struct target t;
	t.dir = cwd;
	t.path = target_name(cat(dir, "/", tr.target), cwd);
	t.args = target_args(t.path, args);
	t.env = environ_with(ENV_EXE, self, ENV_ROOT, dir);
	if (cache_lock >= 0)
		sys_keep_on_exec(cache_lock); /* the target's, and what it starts */
	if (closure_lock >= 0)
		sys_keep_on_exec(closure_lock);
	long e = exec_target(&t);
	/* The exec failed, so the target never ran and running again is safe:
	 * the helper does, on the view it mounts itself, and says why it
	 * cannot start (a damaged image, a missing interpreter). Ours goes
	 * first, so it starts from the same state as after any other failure
	 * here. The sidecar, which acts only once the pipe is closed, is
	 * called off, and our cgroup removed, before the helper makes its
	 * own. */
	if (*cgroup)
		sys_rmdir(cgroup);
	sys_send(side, "!", 1, MSG_NOSIGNAL); /* PLAN_OFF */
	if (cache_lock >= 0)
		sys_close(cache_lock);
	if (closure_lock >= 0)
		sys_close(closure_lock);
	if (in_userns) {
		/* Off the kernel's rung, in a user namespace of ours, the
		 * helper could not mount the view again: it is left mounted,
		 * and the helper, told so, starts the target in it again, and
		 * says why that cannot be. */
		(void)e;
		envp = environ_with(ENV_IN_VIEW, "1", 0, 0);
		helper();
	}
	unmount(dir);
	helper();
}

/* open_self opens our own executable, the packed file, and reads its
 * trailer (stub.OpenSelf). */
static void open_self(void)
{
	static char exe[PATH_MAX + 1];
	long n = sys_readlink("/proc/self/exe", exe, sizeof exe - 1);
	if (n <= 0 || n >= (long)sizeof exe - 1 || exe[0] != '/') {
		put("cannot locate own executable: ");
		put_errno(n <= 0 ? -n : ENAMETOOLONG);
		fail(EXIT_FAILURE_PARKER);
	}
	exe[n] = 0;
	self = exe;
	long fd = sys_open(self, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		put_errno(-fd);
		fail(EXIT_FAILURE_PARKER);
	}
	file = fd;
	read_trailer(file, &tr);
}

/* wants_helper tells whether the run is the helper's: --parker-* flags,
 * verbose runs, resource limits, cgroup settings and rungs the stub does
 * not take are, but for PARKER_CGROUP=auto (the default) and none, which
 * it notes in cgroups_off, and PARKER_MODE=auto, kernel, fuse or extract,
 * which it notes in rung. It notes too whether the helper asked for a
 * user namespace (PARKER_USERNS=enter: userns_enter). The first of each
 * variable counts, as in Go; the environment is read once. */
static int wants_helper(void)
{
	int want = argc > 1 && has_prefix(argv[1], FLAG_PREFIX);
	want |= tr.memory || tr.milli_cpus || tr.pids;
	int verbose = -1, cgroup_mode = -1, mode_seen = 0, userns_seen = 0;
	for (char **e = envp; *e; e++) {
		if (has_prefix(*e, ENV_CGROUP_PARENT))
			want = 1;
		if (!userns_seen && has_prefix(*e, ENV_USERNS)) {
			userns_enter = streq(*e + sizeof ENV_USERNS - 1, "enter");
			userns_seen = 1;
		}
		if (!mode_seen && has_prefix(*e, ENV_MODE)) {
			const char *v = *e + sizeof ENV_MODE - 1;
			if (streq(v, "kernel"))
				rung = RUNG_KERNEL;
			else if (streq(v, "fuse"))
				rung = RUNG_FUSE;
			else if (streq(v, "extract"))
				rung = RUNG_EXTRACT;
			else if (!streq(v, "auto"))
				want = 1;
			mode_seen = 1;
		}
		if (cgroup_mode < 0 && has_prefix(*e, ENV_CGROUP)) {
			const char *v = *e + sizeof ENV_CGROUP - 1;
			if (!streq(v, "none") && !streq(v, "auto"))
				want = 1;
			cgroup_mode = cgroups_off = streq(v, "none");
		}
		if (verbose < 0 && has_prefix(*e, ENV_VERBOSE)) {
			const char *v = *e + sizeof ENV_VERBOSE - 1;
			verbose = v[0] == '1' && v[1] == 0;
		}
	}
	return want || verbose > 0;
}

/* cmain is called by _start (sys.h) with the stack the kernel set up. */
void __attribute__((noreturn, used)) cmain(long *sp)
{
	argc = (int)sp[0];
	argv = (char **)(sp + 1);
	envp = argv + argc + 1;

	sidecar_started(); /* a run's cleanup sidecar, from memory */
	open_self();
	int want = wants_helper(); /* reads the environment once */
	if (userns_enter) {
		keep_signals = 1; /* the helper's, given back */
		userns_for_helper();
	}
	if (want)
		helper();
	char **args = argv;
	if (argc > 1 && argv[1][0] == '-' && argv[1][1] == '-' && argv[1][2] == 0)
		args = argv + 1; /* "--" ends our flags and is consumed */
	run(args);
}
