/* mem.c: memory and the strings built in it: a bump allocator, joined
 * strings, /proc/self/fd paths, environments. The stub frees nothing: it
 * execs or exits soon. */
#include "stub.h"

#define ARENA_SIZE (1 << 20) /* mapped at a time, or more for a larger request */
#define ALLOC_ALIGN 16

static void *alloc(size_t n)
{
	static u8 *cur, *end;
	n = (n + ALLOC_ALIGN - 1) & ~(size_t)(ALLOC_ALIGN - 1);
	if ((size_t)(end - cur) < n) {
		size_t sz = n > ARENA_SIZE ? n : ARENA_SIZE;
		long p = sys_mmap(0, sz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (sys_failed(p)) {
			put("out of memory");
			fail(EXIT_FAILURE_PARKER);
		}
		cur = (u8 *)p;
		end = cur + sz;
	}
	void *r = cur;
	cur += n;
	return r;
}

/* cat returns a, b and c joined. */
static char *cat(const char *a, const char *b, const char *c)
{
	size_t la = slen(a), lb = slen(b), lc = slen(c);
	char *r = alloc(la + lb + lc + 1);
	memcpy(r, a, la);
	memcpy(r + la, b, lb);
	memcpy(r + la + lb, c, lc);
	r[la + lb + lc] = 0;
	return r;
}

/* fd_path names what descriptor fd holds, followed by sub, in a form
 * path-taking calls accept, detached mounts included (mountns.FDPath). */
static char *fd_path(int fd, const char *sub)
{
	char num[DECIMAL_SIZE];
	return cat("/proc/self/fd/", decimal(fd, num), sub);
}

/* environ_with is our environment with k1 (a "NAME=" prefix) set to v1,
 * and k2 to v2 when k2 is given, replacing any they had. */
static char **environ_with(const char *k1, const char *v1, const char *k2, const char *v2)
{
	size_t n = 0, k = 0;
	while (envp[n])
		n++;
	char **env = alloc((n + 3) * sizeof *env);
	for (size_t i = 0; i < n; i++)
		if (!has_prefix(envp[i], k1) && !(k2 && has_prefix(envp[i], k2)))
			env[k++] = envp[i];
	env[k++] = cat(k1, v1, "");
	if (k2)
		env[k++] = cat(k2, v2, "");
	env[k] = 0;
	return env;
}

/* base_at returns where the last element of path starts: just after its
 * last slash, or 0 when it has none. */
static size_t base_at(const char *path)
{
	size_t cut = slen(path);
	while (cut > 0 && path[cut - 1] != '/')
		cut--;
	return cut;
}

/* dir_of returns the directory holding path, or 0 for the root. */
static char *dir_of(const char *path)
{
	size_t cut = base_at(path);
	if (cut <= 1)
		return 0;
	char *dir = alloc(cut);
	memcpy(dir, path, cut - 1);
	dir[cut - 1] = 0;
	return dir;
}

/* errtext is errstr's text for errno e, or "errno N" where it has none. */
static const char *errtext(long e)
{
	const char *s = errstr(e);
	char b[DECIMAL_SIZE];
	return s ? s : cat("errno ", decimal(e, b), "");
}
