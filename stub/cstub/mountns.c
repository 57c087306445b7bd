/* mountns.c: the view, as package mountns makes it (the reference): a
 * private mount namespace; the payload on a read-only, auto-clearing loop
 * device, mounted as a detached squashfs; a detached tmpfs for writes; an
 * overlay of both over the directory holding the packed file.
 *
 * Any failure here hands the whole run to the helper, which starts over
 * and either manages (a fallback only it has) or says precisely why not.
 * The namespace, the loop device and the detached mounts made so far are
 * this process's alone and vanish with its descriptors at exec. */
#include "stub.h"

static void __attribute__((noreturn)) hand_over(const char *step, long err);

/* TRY hands the run to the helper when x fails; TRY_AT names the step for
 * the helper when that is in a user namespace (hand_over). */
#define TRY_AT(x, step)                         \
	do {                                    \
		long e_ = (long)(x);            \
		if (e_ < 0)                     \
			hand_over(step, e_);    \
	} while (0)
#define TRY(x) TRY_AT(x, 0)

/* A test build (tests/stub_test.go) acts as on a kernel before 5.8 (no
 * LOOP_CONFIGURE) and 6.5 (no "lowerdir+"), to run those paths here. */
#ifdef PARKER_LEGACY_KERNEL
#define LEGACY_KERNEL 1
#else
#define LEGACY_KERNEL 0
#endif

#define LOOP_CONTROL "/dev/loop-control"
#define LOOP_DEVICE "/dev/loop" /* followed by the device's number */
/* LOOP_ATTEMPTS bounds the race for a free device (mountns.loopAttempts). */
#define LOOP_ATTEMPTS 64

/* NS_SELF is our mount namespace (mountns.nsSelf). */
#define NS_SELF "/proc/thread-self/ns/mnt"

/* make_private_in_chroot does make_private's work where / is not a mount
 * point (a chroot): setns into the namespace we are in takes us to its
 * root, where make_private works on every mount of it; then we go back to
 * our root and working directory. mountns.makePrivateInChroot says why.
 * It returns 0 or -errno, with our root and working directory as they
 * were, as the helper must find them. */
static long make_private_in_chroot(void)
{
	long ns = sys_open(NS_SELF, O_RDONLY | O_CLOEXEC);
	long root = sys_open("/", O_PATH | O_CLOEXEC);
	long cwd = sys_open(".", O_PATH | O_CLOEXEC);
	long err = ns < 0 ? ns : root < 0 ? root : cwd < 0 ? cwd : sys_setns(ns, CLONE_NEWNS);
	if (!err) {
		err = make_private();
		long back = sys_fchdir(root);
		if (!back)
			back = sys_chroot(".");
		if (!back)
			back = sys_fchdir(cwd);
		if (back) { /* never seen: we hold both, as root */
			put("make mounts private: return to the chroot: ");
			put_errno(-back);
			fail(EXIT_FAILURE_PARKER);
		}
	}
	long fds[] = {ns, root, cwd};
	for (int i = 0; i < 3; i++)
		if (fds[i] >= 0)
			sys_close(fds[i]);
	return err;
}

/* kernel_refused says what stopped the kernel's rung, for the helper
 * (fuse.c's hand_over), as a Go error would: "STEP: ERROR". */
static const char *kernel_refused;

/* refused notes that step failed with err (-errno) and returns err. */
static long refused(const char *step, long err)
{
	kernel_refused = cat(step, ": ", errtext(-err));
	return err;
}

/* attach_loop attaches the payload to a free loop device, read-only and
 * auto-clearing, retrying when another process takes the device first,
 * and returns it open, its path in *dev (mountns.AttachLoop); or -errno
 * when the loop devices are not ours to use (kernel_refused says how). */
static int attach_loop(const char **dev)
{
	long ctl = sys_open(LOOP_CONTROL, O_RDWR | O_CLOEXEC);
	if (ctl < 0)
		return refused("open " LOOP_CONTROL, ctl);
	const u32 flags = LO_FLAGS_READ_ONLY | LO_FLAGS_AUTOCLEAR;
	int configure = !LEGACY_KERNEL;
	for (int attempt = 0; attempt < LOOP_ATTEMPTS; attempt++) {
		long n = loop_get_free(ctl);
		if (n < 0)
			return refused("get a free loop device", n);
		char num[DECIMAL_SIZE];
		*dev = cat(LOOP_DEVICE, decimal(n, num), "");
		long fd = sys_open(*dev, O_RDONLY | O_CLOEXEC);
		if (fd == -ENOENT || fd == -ENXIO)
			continue; /* removed, or not yet created: ask again */
		TRY(fd);
		long err = -EINVAL;
		if (configure) {
			err = loop_configure(fd, file, tr.offset, tr.size, flags);
			if (err == -ENOTTY || err == -EINVAL)
				configure = 0; /* before Linux 5.8: two steps */
		}
		if (!configure) {
			err = loop_set_fd(fd, file);
			if (!err && (err = loop_set_status(fd, tr.offset, tr.size, flags)))
				loop_clear_fd(fd); /* never left attached to the whole file */
		}
		if (!err) {
			sys_close(ctl);
			return fd;
		}
		sys_close(fd);
		if (err != -EBUSY)
			return refused("attach a loop device", err);
		if (attempt > 8) { /* many of us race: back off a little */
			struct ktimespec ts = {0, attempt * 100000L};
			sys_nanosleep(&ts);
		}
	}
	helper();
}

/* fs_create_mount creates the superblock configured in fs and returns a
 * detached mount of it with attrs (MOUNT_ATTR_*), closing fs (the end of
 * mountns.fsMount). */
static int fs_create_mount(int fs, unsigned attrs, const char *step)
{
	TRY_AT(fs_config(fs, FSCONFIG_CMD_CREATE, 0, 0), step);
	long m = fs_mount(fs, attrs);
	TRY_AT(m, step);
	sys_close(fs);
	return m;
}

/* mount_squashfs mounts the squashfs image on dev read-only, nosuid and
 * nodev, detached (mountns.MountSquashfs); -errno when the kernel will not
 * make its superblock (in a user namespace; or the image is damaged). */
static long mount_squashfs(const char *dev)
{
	long fs = fs_open("squashfs");
	TRY(fs);
	TRY(fs_config(fs, FSCONFIG_SET_FLAG, "ro", 0));
	TRY(fs_config(fs, FSCONFIG_SET_STRING, "source", dev));
	long e = fs_config(fs, FSCONFIG_CMD_CREATE, 0, 0);
	if (e < 0) {
		sys_close(fs);
		return refused("create squashfs superblock", e);
	}
	long m = fs_mount(fs, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV);
	TRY(m);
	sys_close(fs);
	return m;
}

/* mount_image attaches the payload and mounts it, and returns the mount;
 * from then on the mount alone keeps the loop device (mountns.MountImage).
 * It returns -errno where the loop devices are not ours to use. */
static int mount_image(void)
{
	const char *dev = 0;
	int loop = attach_loop(&dev);
	if (loop < 0)
		return loop;
	long sq = mount_squashfs(dev);
	sys_close(loop);
	return sq;
}

/* mount_tmpfs mounts a fresh tmpfs, nosuid and nodev, detached, with its
 * root directory's mode 0700 (mountns.MountTmpfs). */
static int mount_tmpfs(void)
{
	long fs = fs_open("tmpfs");
	TRY_AT(fs, "mount a tmpfs");
	TRY_AT(fs_config(fs, FSCONFIG_SET_STRING, "mode", "700"), "mount a tmpfs");
	return fs_create_mount(fs, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV, "mount a tmpfs");
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

/* set_lowers passes the two lower layers, top first, one per "lowerdir+"
 * (Linux 6.5+), so no path needs escaping; older kernels reject that key
 * with EINVAL and get the joined "lowerdir" option (mountns.setLowers). */
static void set_lowers(int fs, const char *top, const char *bottom)
{
	long err = LEGACY_KERNEL ? -EINVAL : fs_config(fs, FSCONFIG_SET_STRING, "lowerdir+", top);
	if (err == -EINVAL) {
		char *b = alloc(2 * (slen(top) + slen(bottom)) + 2), *e = escape_layer(b, top);
		*e++ = ':';
		*escape_layer(e, bottom) = 0;
		err = fs_config(fs, FSCONFIG_SET_STRING, "lowerdir", b);
	} else if (!err) {
		err = fs_config(fs, FSCONFIG_SET_STRING, "lowerdir+", bottom);
	}
	TRY_AT(err, "mount the overlay");
}

/* mount_overlay mounts an overlay of top over bottom, writes going to
 * upper, detached (mountns.MountOverlay). */
static int mount_overlay(const char *top, const char *bottom, const char *upper, const char *work)
{
	long fs = fs_open("overlay");
	TRY_AT(fs, "mount the overlay");
	if (in_userns)
		TRY_AT(fs_config(fs, FSCONFIG_SET_FLAG, "userxattr", 0), "mount the overlay (userxattr)");
	set_lowers(fs, top, bottom);
	TRY_AT(fs_config(fs, FSCONFIG_SET_STRING, "upperdir", upper), "mount the overlay");
	TRY_AT(fs_config(fs, FSCONFIG_SET_STRING, "workdir", work), "mount the overlay");
	return fs_create_mount(fs, 0, "mount the overlay");
}

/* STORE: the closure's store in the payload (closure.StoreName), which
 * the run shows at /STORE. */
#define STORE ".parker"
#define MAX_BODY_LIST (64 << 10) /* the closure paths' list, at most */
#define FLAG_CLOSURE 2 /* trailer.Closure */

/* TRY_ROOT is TRY_AT for store_root once its new root covers dir, which
 * it takes off again first. */
#define TRY_ROOT(x, step)                       \
	do {                                    \
		long e_ = (long)(x);            \
		if (e_ < 0) {                   \
			unmount(dir);           \
			hand_over(step, e_);    \
		}                               \
	} while (0)

/* A step of making the closure's root (store_root), carried out in order
 * once the new root is attached: a directory, a symlink, or a mount (a
 * clone of the host's or of the payload's tree) on an empty directory or
 * file, at path, relative to the new root. */
struct root_step {
	const char *path, *link;
	int clone; /* a detached mount, or -1 */
	u8 dir;    /* a directory (else a file) for the mount, or to make */
	/* A directory made on the way to a closure path takes the host's
	 * mode and owner, where it has one (own). */
	u8 own;
	u32 mode, uid, gid;
};
static struct root_step *steps;
static int nsteps, capsteps;

static void add_step(const char *path, const char *link, int clone, int dir)
{
	if (nsteps == capsteps) {
		int cap = capsteps ? 2 * capsteps : 64;
		struct root_step *more = alloc(cap * sizeof *more);
		if (nsteps)
			memcpy(more, steps, nsteps * sizeof *more);
		steps = more;
		capsteps = cap;
	}
	steps[nsteps++] = (struct root_step){path, link, clone, (u8)dir, 0, 0, 0, 0};
}

/* The trees of --closure-path (closure.PathsList), absolute, clean. */
static const char **cpaths;
static int ncpaths;

/* cpath_under tells how the directory at path (absolute) stands to the
 * closure paths: 2 when it is one, 1 when one is below it, else 0. */
static int cpath_under(const char *path)
{
	size_t n = slen(path);
	int r = 0;
	for (int i = 0; i < ncpaths; i++) {
		if (streq(cpaths[i], path))
			return 2;
		if (has_prefix(cpaths[i], path) && (cpaths[i][n] == '/' || n == 1))
			r = 1;
	}
	return r;
}

/* read_cpaths reads the closure paths' list in the store, src. */
static void read_cpaths(int src)
{
	long f = sys_openat_mode(src, "closure-paths", O_RDONLY | O_CLOEXEC, 0);
	if (f < 0)
		return; /* none */
	char *b = alloc(MAX_BODY_LIST + 1);
	long n = sys_read((int)f, b, MAX_BODY_LIST);
	sys_close(f);
	if (n < 0)
		return;
	b[n] = 0;
	cpaths = alloc(sizeof *cpaths * (n / 2 + 1));
	for (char *l = b; *l;) {
		char *e = l;
		while (*e && *e != '\n')
			e++;
		int more = *e;
		*e = 0;
		if (l[0] == '/' && l[1])
			cpaths[ncpaths++] = l;
		l = more ? e + 1 : e;
	}
}

/* plan_dir plans the directory rel of the new root ("" for its root) from
 * the host's directory host, which need not exist: every entry as it is
 * (each directory and file bound with every mount below it, each symlink
 * made again), but for those on the way to a closure path, made as
 * directories of the new root and planned the same way, and the closure
 * paths themselves, bound from the store's trees (src). */
static void plan_dir(int src, const char *host, const char *rel)
{
	long d = sys_open(*host ? host : "/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (d < 0 && d != -ENOENT)
		TRY_AT(d, cat("carry ", *host ? host : "/", " into the closure's root"));
	char buf[4096];
	long got = 0;
	while (d >= 0 && (got = sys_getdents64((int)d, buf, sizeof buf)) > 0) {
		for (long off = 0; off < got;) {
			u16 reclen = *(u16 *)(buf + off + 16);
			u8 type = *(u8 *)(buf + off + 18);
			const char *name = buf + off + 19;
			off += reclen;
			if (streq(name, ".") || streq(name, "..") || (!*rel && streq(name, STORE)))
				continue;
			const char *hp = cat(host, "/", name), *rp = *rel ? cat(rel, "/", name) : cat(name, "", "");
			if (type == DT_UNKNOWN) {
				struct kstatx st;
				TRY_AT(sys_lstat(hp, &st), "carry / into the closure's root");
				type = (st.mode & 0170000) == 0040000 ? DT_DIR : (st.mode & 0170000) == 0120000 ? DT_LNK : 0;
			}
			if (cpath_under(hp)) {
				if (type != DT_DIR) /* a symlink here, say: not ours to replace */
					hand_over(cat("show a --closure-path: ", hp, " is not a directory here"), -ENOTDIR);
				continue; /* planned below */
			}
			if (type == DT_LNK) {
				char *l = alloc(PATH_MAX);
				long k = sys_readlinkat((int)d, name, l, PATH_MAX - 1);
				TRY_AT(k, "carry / into the closure's root: read a symlink");
				l[k] = 0;
				add_step(rp, l, -1, 0);
				continue;
			}
			long c = clone_tree((int)d, name, 1);
			TRY_AT(c, "carry / into the closure's root");
			add_step(rp, 0, (int)c, type == DT_DIR);
		}
	}
	if (d >= 0)
		sys_close(d);
	TRY_AT(got, "list / for the closure's root");
	/* The closure paths here and the ways to them, there or not. */
	for (int i = 0; i < ncpaths; i++) {
		const char *p = cpaths[i];
		size_t hn = slen(host);
		if (!has_prefix(p, host) || p[hn] != '/')
			continue;
		const char *next = p + hn + 1, *e = next;
		while (*e && *e != '/')
			e++;
		char *name = alloc(e - next + 1);
		memcpy(name, next, e - next);
		name[e - next] = 0;
		const char *hp = cat(host, "/", name), *rp = *rel ? cat(rel, "/", name) : name;
		int planned = 0; /* by another closure path on the same way */
		for (int j = 0; j < nsteps; j++)
			if (streq(steps[j].path, rp))
				planned = 1;
		if (planned)
			continue;
		add_step(rp, 0, -1, 1);
		struct kstatx st;
		if (sys_stat(hp, &st) == 0) {
			struct root_step *s = &steps[nsteps - 1];
			s->own = 1;
			s->mode = st.mode & 07777;
			s->uid = st.uid;
			s->gid = st.gid;
		}
		if (*e) {
			plan_dir(src, hp, rp);
		} else {
			long c = clone_tree(src, cat("paths", hp, ""), 1);
			TRY_AT(c, "bind a --closure-path tree");
			TRY_AT(make_readonly((int)c), "bind a --closure-path tree read-only");
			add_step(rp, 0, (int)c, 1);
		}
	}
}

/* store_root gives the run a root of its own, with the closure's store
 * (parker --closure) at /STORE, where the loader path of the payload's
 * programs points: no host has it, and the host's root is not ours to
 * change; and the trees of --closure-path at their paths. The new root is
 * a tmpfs holding every entry of / as it is (plan_dir), the store, bound
 * from the closure entry in the extraction cache (closure_entry: on disk,
 * in the page cache from one run to the next) where there is one, else
 * from the payload's root, lower; and the closure paths' trees, from the
 * same. It is attached over dir (the view goes there next, in the new
 * root) and entered (chroot): the target, and what it starts, see the
 * host's files where they were, and the store beside them.
 * (mountns.StoreRoot.) */
static void store_root(int lower, const char *dir)
{
	long src = closure_entry ? sys_open(closure_entry, O_PATH | O_DIRECTORY | O_CLOEXEC)
				 : sys_openat_mode(lower, STORE, O_PATH | O_DIRECTORY | O_CLOEXEC, 0);
	TRY_AT(src, "open the closure's store");
	read_cpaths((int)src);
	/* The view over dir goes on the new root: a closure path over it, or
	 * in it, would make its bottom layer mounts, which overlayfs does not
	 * see below a layer. */
	for (int i = 0; i < ncpaths; i++) {
		size_t n = slen(cpaths[i]), m = slen(dir);
		if ((has_prefix(dir, cpaths[i]) && (dir[n] == 0 || dir[n] == '/')) || (has_prefix(cpaths[i], dir) && cpaths[i][m] == '/'))
			hand_over(cat("show a --closure-path: ", cpaths[i], " and the packed file's directory overlap"), -EINVAL);
	}
	plan_dir((int)src, "", "");
	/* The caller's working directory, which the chroot would lose: taken
	 * again, by its path, in the new root, where it is the same. */
	char *cwd = alloc(PATH_MAX);
	if (sys_getcwd(cwd, PATH_MAX) < 0 || cwd[0] != '/')
		cwd = 0;
	long fs = fs_open("tmpfs");
	TRY_AT(fs, "mount the closure's root");
	TRY_AT(fs_config(fs, FSCONFIG_SET_STRING, "mode", "755"), "mount the closure's root");
	int r = fs_create_mount(fs, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV, "mount the closure's root");
	TRY_AT(move_mount(r, dir), "mount the closure's root");
	sys_close(r);
	/* From here on a failure takes the new root off dir again, so that
	 * the helper, handed the run, finds the packed file where it was
	 * (TRY_ROOT). */
	long nr = sys_open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	TRY_ROOT(nr, "open the closure's root");
	for (int i = 0; i < nsteps; i++) {
		struct root_step *st = &steps[i];
		if (st->link) {
			TRY_ROOT(sys_symlinkat(st->link, (int)nr, st->path), "make the closure's root");
			continue;
		}
		if (st->dir) {
			long e = sys_mkdirat((int)nr, st->path, 0755);
			if (e != -EEXIST)
				TRY_ROOT(e, "make the closure's root");
			if (st->own) { /* where it may (not in a user namespace) */
				sys_lchownat((int)nr, st->path, st->uid, st->gid);
				sys_fchmodat((int)nr, st->path, st->mode);
			}
		} else {
			long f = sys_openat_mode((int)nr, st->path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
			TRY_ROOT(f, "make the closure's root");
			sys_close(f);
		}
		if (st->clone >= 0) {
			TRY_ROOT(move_mount_at(st->clone, (int)nr, st->path), "make the closure's root");
			sys_close(st->clone);
		}
	}
	long store = clone_tree((int)src, ".", 0);
	TRY_ROOT(store, "bind the closure's store");
	TRY_ROOT(make_readonly((int)store), "bind the closure's store read-only");
	TRY_ROOT(sys_mkdirat((int)nr, STORE, 0755), "bind the closure's store");
	TRY_ROOT(move_mount_at((int)store, (int)nr, STORE), "bind the closure's store");
	sys_close(store);
	TRY_ROOT(sys_chroot(fd_path((int)nr, "")), "enter the closure's root");
	if (!cwd || sys_chdir(cwd) < 0) /* gone (removed meanwhile): / it is */
		sys_chdir("/");
	sys_close(nr);
	sys_close(src);
}

/* owner_write: the lower is read-only (the extraction cache's copy); the
 * view's root gets its owner's write permission (mountns.Options.OwnerWrite). */
static int owner_write;

/* view mounts the view over dir: lower, the payload's root (a detached
 * mount), over dir's own contents, writes going to a tmpfs (the end of
 * mountns.Setup). In a user namespace overlayfs keeps its own metadata in
 * user.* extended attributes (userxattr), the only ones it may set there. */
static void view(int lower, const char *dir)
{
	struct kstatx root;
	TRY_AT(sys_fstat(lower, &root), "stat the payload's root");
	if (tr.flags & FLAG_CLOSURE)
		store_root(lower, dir);

	int tmp = mount_tmpfs();
	TRY_AT(sys_mkdirat(tmp, "upper", 0700), "make the overlay's upper dir");
	TRY_AT(sys_mkdirat(tmp, "work", 0700), "make the overlay's work dir");
	/* overlayfs gives the merged root the upper dir's mode and owner: the
	 * view looks like the packed workdir, not like our scratch space. */
	TRY_AT(sys_fchmodat(tmp, "upper", (root.mode & 07777) | (owner_write ? 0200 : 0)), "set the overlay's mode");
	TRY_AT(sys_lchownat(tmp, "upper", root.uid, root.gid), "set the overlay's owner");

	int ov = mount_overlay(fd_path(lower, ""), dir, fd_path(tmp, "/upper"), fd_path(tmp, "/work"));
	TRY_AT(move_mount(ov, dir), "mount the overlay");
	sys_close(ov);
	sys_close(tmp);
}


