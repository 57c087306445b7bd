/* cache.c: a hit in the extraction cache (package cache is the
 * reference), for a run that may have a user namespace but not FUSE: the
 * cache's copy of the payload, found by its digest, goes under the same
 * overlay as on the other rungs, with no Go started. Anything but a plain
 * hit is the helper's: no cache directory yet, one in doubt, no entry (the
 * first run extracts it). And the helper's own copy, which spares a start
 * of the helper its unpacking (helper.c). */
#include "stub.h"

#define LOCK_SUFFIX ".lock"        /* cache.lockSuffix */
#define CLOSURE_SUFFIX ".closure" /* cache.ClosureSuffix */

/* cache_lock is the entry's lock, held shared: close-on-exec until the
 * target's exec, which hands it on (so that a hand-over to the helper,
 * which takes its own, leaves it behind). -1 when none. */
static int cache_lock = -1;

/* env_value is the value of the first variable called key ("NAME="), or 0. */
static const char *env_value(const char *key)
{
	for (char **e = envp; *e; e++)
		if (has_prefix(*e, key))
			return *e + slen(key);
	return 0;
}

/* cache_dir_ok checks the cache directory dir as cache.usable does: a
 * directory of ours, not writable by others (private: not open to others
 * at all, and not a symlink), in a directory only we or root could rename
 * it in (or a sticky one), ours to write to, on a mount that runs
 * programs. It returns 1 when so, 0 when not, -1 when dir cannot be
 * looked at (missing: cache_dir makes it when asked to). */
static int cache_dir_ok(const char *dir, int private)
{
	struct kstatx st, parent;
	if ((private ? sys_lstat(dir, &st) : sys_stat(dir, &st)) < 0)
		return -1;
	const char *up = dir_of(dir);
	if (sys_stat(up ? up : "/", &parent) < 0)
		return 0;
	int sticky = parent.mode & 01000;
	struct kstatfs fs;
	return (st.mode & 0170000) == 0040000 && st.uid == (u32)sys_geteuid() && !(st.mode & (private ? 077 : 022)) &&
	       (parent.uid == st.uid || parent.uid == 0 || sticky) && (!(parent.mode & 022) || sticky) &&
	       sys_access(dir, W_OK | 1) == 0 && sys_statfs(dir, &fs) == 0 && !(fs.flags & ST_NOEXEC);
}

/* clean_abs tells whether path is absolute and clean (filepath.Clean
 * leaves it as it is): no empty, "." or ".." element, no trailing slash.
 * The checks go by the path's parent, which must be the real one. */
static int clean_abs(const char *p)
{
	if (p[0] != '/' || !p[1])
		return 0;
	for (const char *c = p; *c; c++) {
		if (*c != '/')
			continue;
		const char *e = c + 1;
		if (*e == 0 || *e == '/' || (e[0] == '.' && (e[1] == 0 || e[1] == '/')) ||
		    (e[0] == '.' && e[1] == '.' && (e[2] == 0 || e[2] == '/')))
			return 0;
	}
	return 1;
}

/* mkdirs makes the clean absolute path dir and its missing parents, 0700,
 * as os.MkdirAll does; what it cannot make, the check after it finds. */
static void mkdirs(const char *dir)
{
	char *p = cat(dir, "", "");
	for (char *c = p + 1;; c++) {
		if (*c != '/' && *c)
			continue;
		char was = *c;
		*c = 0;
		sys_mkdirat(AT_FDCWD, p, 0700);
		*c = was;
		if (!was)
			return;
	}
}

/* join joins the absolute path a and "/name...", b, as filepath.Join
 * does for the slashes between them ("/" and "/home/ann/" as well as
 * "/home/ann"); what else Join would clean, clean_abs refuses. */
static const char *join(const char *a, const char *b)
{
	size_t n = slen(a);
	while (n > 0 && a[n - 1] == '/')
		n--;
	char *r = alloc(n + slen(b) + 1);
	memcpy(r, a, n);
	r[n] = 0;
	return cat(r, b, "");
}

/* dir_usable is cache_dir_ok's verdict on a candidate, made first when
 * missing and make says so; -2 for a path not clean (the helper cleans
 * it, and takes it). */
static int dir_usable(const char *dir, int private, int make)
{
	if (!clean_abs(dir))
		return -2;
	int ok = cache_dir_ok(dir, private);
	if (ok < 0 && make) {
		mkdirs(dir);
		ok = cache_dir_ok(dir, private);
	}
	return ok;
}

/* cache_dir is the cache directory cache.Locate takes: $PARKER_CACHE_DIR
 * when set, else the first usable of $XDG_CACHE_HOME/parker,
 * ~/.cache/parker and the private $TMPDIR/parker-cache-UID; or 0. Each is
 * made when missing if make says so; otherwise a missing one ends the
 * search (0: the helper makes it). Never from inside a user namespace of
 * ours (in_userns), where an owner we do not map passes for another: there
 * it is what was found before (the helper is told it: ENV_CACHE_CHECKED). */
static const char *cache_dir_look(int make);
static const char *cache_dir(int make)
{
	/* Looked for once (or once more, to make what was missing). */
	static const char *found;
	static int looked = -1; /* the make of the last look */
	if (in_userns)
		return found;
	if (looked < make) {
		found = cache_dir_look(make);
		looked = make;
	}
	return found;
}

static const char *cache_dir_look(int make)
{
	const char *d = env_value(ENV_CACHE_DIR);
	if (d && *d)
		return dir_usable(d, 0, make) == 1 ? d : 0;
	const char *x = env_value("XDG_CACHE_HOME="), *h = env_value("HOME="), *t = env_value("TMPDIR=");
	char u[DECIMAL_SIZE];
	const char *cands[] = {
		x && x[0] == '/' ? join(x, "/parker") : 0,
		h && h[0] == '/' ? join(h, "/.cache/parker") : 0,
		join(t && t[0] == '/' ? t : "/tmp", cat("/parker-cache-", decimal(sys_geteuid(), u), "")),
	};
	for (size_t i = 0; i < sizeof cands / sizeof *cands; i++) {
		if (!cands[i])
			continue;
		int ok = dir_usable(cands[i], i == 2, make);
		if (ok == 1)
			return cands[i];
		if (ok == -2 || (ok < 0 && !make))
			return 0;
	}
	return 0;
}

/* hex_digest is the 32-byte digest d in hex. */
static const char *hex_digest(const u8 *d)
{
	char *hex = alloc(65);
	for (int i = 0; i < 32; i++) {
		hex[2 * i] = "0123456789abcdef"[d[i] >> 4];
		hex[2 * i + 1] = "0123456789abcdef"[d[i] & 15];
	}
	hex[64] = 0;
	return hex;
}

/* entry_name is the payload's entry name (cache.Name): its digest in hex,
 * a dash, the target's base name. */
static const char *entry_name(void)
{
	const char *hex = hex_digest(tr.digest);
	const char *base = tr.target + base_at(tr.target);
	if (!*base || streq(base, ".") || streq(base, ".."))
		base = "root";
	return cat(hex, "-", base);
}

/* cache_hit finds the payload's entry in the cache, in use from now on:
 * its lock held shared (by us, then by the target, which inherits it, and
 * what it starts), its mtime the last use. It returns the entry's path,
 * or 0 for the helper to take over. (A path: overlayfs takes no layer
 * from a mount namespace but the mounter's, and the caller moves to
 * another before it mounts.) */
static const char *entry_hit(const char *dir, const char *suffix, int *held_lock);
static const char *cache_hit(void) { return entry_hit(cache_dir(0), "", &cache_lock); }

/* closure_lock is the closure entry's lock (closure_hit), as cache_lock;
 * closure_entry the entry, whose store a run binds at /.parker. */
static int closure_lock = -1;
static const char *closure_entry;

/* closure_hit finds the payload's closure entry (cache.ClosureName: the
 * store of parker --closure, on disk) in cache directory dir, as
 * cache_hit finds an entry; 0 when it is not there (the helper makes it). */
static const char *closure_hit(const char *dir) { return entry_hit(dir, CLOSURE_SUFFIX, &closure_lock); }

/* entry_hit finds the entry entry_name() and suffix in cache directory
 * dir, in use from now on: its lock held shared (in *held_lock), its
 * mtime the last use. It returns the entry's path, or 0. */
static const char *entry_hit(const char *dir, const char *suffix, int *held_lock)
{
	if (!dir)
		return 0;
	const char *entry = cat(dir, "/", cat(entry_name(), suffix, ""));
	const char *lock = cat(entry, LOCK_SUFFIX, "");
	for (int attempt = 0; attempt < 8; attempt++) {
		long l = sys_open_mode(lock, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (l < 0)
			return 0;
		long e;
		while ((e = sys_flock((int)l, LOCK_SH)) == -EINTR)
			;
		struct kstatx held, now;
		if (e < 0 || sys_fstat((int)l, &held) < 0) {
			sys_close(l);
			return 0;
		}
		/* Removed by cache gc between the open and the lock: not the
		 * entry's lock any more. */
		if (sys_lstat(lock, &now) < 0 || now.ino != held.ino || now.dev_major != held.dev_major ||
		    now.dev_minor != held.dev_minor) {
			sys_close(l);
			continue;
		}
		struct kstatx st;
		if (sys_lstat(entry, &st) < 0 || (st.mode & 0170000) != 0040000) {
			sys_close(l); /* not there yet: the helper extracts it */
			return 0;
		}
		sys_futimens_now((int)l);
		*held_lock = (int)l;
		return entry;
	}
	return 0;
}
