/* needs.c: the libraries the target takes from the machine it runs on
 * (trailer version 5), checked before anything is started (stub.go's
 * needsMet): each must be at the path where the pack host's loader found
 * it, or named for its ABI in this machine's loader cache. That is a few
 * stat calls on the path that works. A miss is the helper's: it asks the
 * target's loader (supervisor.MissingLibrary), runs the target if the
 * loader finds the library after all, and otherwise names what is missing
 * rather than start a target the loader refuses. */
#include "stub.h"

/* glibc's loader cache (internal/ldcache): the new format, alone or after
 * the old one. */
#define LDCACHE_PATH "/etc/ld.so.cache"
#define LDCACHE_OLD "ld.so-1.7.0"
#define LDCACHE_OLD_HEADER 16
#define LDCACHE_OLD_ENTRY 12
#define LDCACHE_NEW "glibc-ld.so.cache1.1"
#define LDCACHE_NEW_COUNT 20 /* u32, after the magic */
#define LDCACHE_HEADER 48
#define LDCACHE_ENTRY 24 /* flags u32, key u32, value u32, osversion u32, hwcap u64 */
#define LDCACHE_KEY 4
#define LDCACHE_HWCAP 16

/* ldcache_has tells whether the loader cache names soname with flags
 * (and no hwcap, as package closure reads it). The cache is mapped once. */
static int ldcache_has(const char *soname, u32 flags)
{
	static const u8 *b;
	static u64 n;
	static int mapped;
	if (!mapped) {
		mapped = 1;
		long fd = sys_open(LDCACHE_PATH, O_RDONLY | O_CLOEXEC);
		struct kstatx st;
		if (fd >= 0 && sys_fstat((int)fd, &st) == 0 && st.size >= LDCACHE_HEADER) {
			long a = sys_mmap(0, st.size, PROT_READ, MAP_PRIVATE, (int)fd, 0);
			if (!sys_failed(a))
				b = (const u8 *)a, n = st.size;
		}
		if (fd >= 0)
			sys_close(fd);
	}
	if (!b)
		return 0;
	u64 start = 0;
	if (n >= LDCACHE_OLD_HEADER && !memcmp(b, LDCACHE_OLD, sizeof LDCACHE_OLD - 1)) {
		u64 old = le32(b + LDCACHE_OLD_HEADER - 4);
		if (old > n / LDCACHE_OLD_ENTRY)
			return 0;
		start = (LDCACHE_OLD_HEADER + old * LDCACHE_OLD_ENTRY + 7) & ~7ull;
	}
	if (start + LDCACHE_HEADER > n || memcmp(b + start, LDCACHE_NEW, sizeof LDCACHE_NEW - 1))
		return 0;
	const u8 *c = b + start;
	u64 cn = n - start, count = le32(c + LDCACHE_NEW_COUNT), sl = slen(soname);
	if (count > (cn - LDCACHE_HEADER) / LDCACHE_ENTRY)
		return 0;
	for (u64 i = 0; i < count; i++) {
		const u8 *e = c + LDCACHE_HEADER + i * LDCACHE_ENTRY;
		u64 key = le32(e + LDCACHE_KEY);
		if (le32(e) == flags && !le64(e + LDCACHE_HWCAP) && key + sl < cn && !memcmp(c + key, soname, sl + 1))
			return 1;
	}
	return 0;
}

/* needs_met tells whether every library the trailer names is there. */
static int needs_met(void)
{
	const u8 *at = tr.needs;
	for (u32 i = 0; i < tr.n_needs; i++) {
		u32 flags;
		char *soname, *path;
		need_next(&at, &flags, &soname, &path);
		struct kstatx st;
		if (sys_stat(path, &st) != 0 && !ldcache_has(soname, flags))
			return 0;
	}
	return 1;
}
