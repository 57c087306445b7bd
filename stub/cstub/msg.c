/* msg.c: the stub's one kind of output, a line on stderr before it exits,
 * worded as the Go stub words it (stub.Fail). */
#include "stub.h"

/* DECIMAL_SIZE holds any u64 in decimal, and its NUL. */
#define DECIMAL_SIZE 21

/* decimal writes v in decimal at the end of b and returns where it
 * starts. */
static const char *decimal(u64 v, char b[DECIMAL_SIZE])
{
	char *p = b + DECIMAL_SIZE - 1;
	*p = 0;
	do
		*--p = '0' + v % 10;
	while (v /= 10);
	return p;
}

/* The message under construction, and what goes before it: "parker: ",
 * the packed file's path, ": ". */
static char msg[16384];
static size_t msglen;
#define PREFIX_MAX (PATH_MAX + 104)

static void put(const char *s)
{
	while (*s && msglen < sizeof msg - 2)
		msg[msglen++] = *s++;
}

static void put_uint(u64 v)
{
	char b[DECIMAL_SIZE];
	put(decimal(v, b));
}

/* errstr: the texts Go gives these errors, so a message reads the same
 * whichever stub printed it. */
static const char *errstr(long e)
{
	switch (e) {
	case EPERM: return "operation not permitted";
	case ENOENT: return "no such file or directory";
	case EIO: return "input/output error";
	case E2BIG: return "argument list too long";
	case ENOEXEC: return "exec format error";
	case ENOMEM: return "cannot allocate memory";
	case EACCES: return "permission denied";
	case ENOTDIR: return "not a directory";
	case EISDIR: return "is a directory";
	case EINVAL: return "invalid argument";
	case EMFILE: return "too many open files";
	case ETXTBSY: return "text file busy";
	case ENAMETOOLONG: return "file name too long";
	case ENOSYS: return "function not implemented";
	case ELOOP: return "too many levels of symbolic links";
	case ELIBBAD: return "accessing a corrupted shared library";
	case ENXIO: return "no such device or address";
	case ECHILD: return "no child processes";
	case EBUSY: return "device or resource busy";
	case ENODEV: return "no such device";
	case ENOSPC: return "no space left on device";
	case EUSERS: return "too many users";
	case ENOTCONN: return "transport endpoint is not connected";
	}
	return 0;
}

/* put_errno adds the text of errno e. */
static void put_errno(long e)
{
	const char *s = errstr(e);
	if (s) {
		put(s);
	} else {
		put("errno ");
		put_uint(e);
	}
}

/* fail prints "parker: SELF: " and the message built so far, and exits
 * with code: one line, as every run-time failure of parker. */
/* quiet: a process whose failure another reports (the FUSE server before
 * it starts) exits without a line. */
static int quiet;

static void __attribute__((noreturn)) fail(int code)
{
	if (quiet)
		sys_exit(code);
	static char line[PREFIX_MAX + sizeof msg];
	size_t n = 0;
	const char *parts[] = {"parker: ", self, ": "};
	for (int i = 0; i < 3; i++)
		for (const char *s = parts[i]; *s && n < PREFIX_MAX; s++)
			line[n++] = *s;
	memcpy(line + n, msg, msglen);
	n += msglen;
	line[n++] = '\n';
	sys_write(STDERR_FILENO, line, n);
	sys_exit(code);
}
