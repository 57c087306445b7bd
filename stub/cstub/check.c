/* check.c: test builds of a part of the stub alone, which
 * tests/stub_test.go compiles and runs against the Go code on the same
 * bytes:
 *  -DPARKER_TRAILER_CHECK: the trailer reader (trailer.c), against
 *   image/trailer (FuzzStubTrailer);
 *  -DPARKER_LZ4_CHECK: the LZ4 block decoder (lz4.c), against
 *   github.com/pierrec/lz4 (FuzzStubLZ4). */

/* A part alone leaves some of what the parts share unused. */
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wunused-variable"

#include "stub.h"

#include "msg.c"
#include "mem.c"

#if defined(PARKER_TRAILER_CHECK)
#include "trailer.c"

/* Read the trailer of the file named by argv[1] and print what it says, or
 * fail as the stub would. */
void __attribute__((noreturn, used)) cmain(long *sp)
{
	argv = (char **)(sp + 1);
	self = argv[1];
	long fd = sys_open(self, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		sys_exit(2);
	read_trailer(fd, &tr);
	u64 v[] = {tr.version,	     tr.stub_size,	 tr.offset,  tr.size,	     tr.helper_offset,
		   tr.helper_size,   tr.helper_raw_size, tr.memory,  tr.milli_cpus, tr.pids};
	for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
		put_uint(v[i]);
		put(" ");
	}
	for (size_t i = 0; i < sizeof tr.helper_digest; i++) {
		char h[3] = {"0123456789abcdef"[tr.helper_digest[i] >> 4], "0123456789abcdef"[tr.helper_digest[i] & 15], 0};
		put(h);
	}
	put(" ");
	put_uint(tr.n_needs);
	const u8 *at = tr.needs;
	for (u32 i = 0; i < tr.n_needs; i++) {
		u32 flags;
		char *soname, *path;
		need_next(&at, &flags, &soname, &path);
		sys_write(STDOUT_FILENO, msg, msglen); /* they may fill msg */
		msglen = 0;
		put(" ");
		put_uint(flags);
		put(":");
		put(soname);
		put(":");
		put(path);
	}
	put(" ");
	put(tr.target);
	put("\n");
	sys_write(STDOUT_FILENO, msg, msglen);
	sys_exit(0);
}

#elif defined(PARKER_LZ4_CHECK)
#include "lz4.c"

/* Unpack the LZ4 block in the file argv[1] into at most argv[2] bytes and
 * print them, or exit 1. */
void __attribute__((noreturn, used)) cmain(long *sp)
{
	argv = (char **)(sp + 1);
	u64 cap = 0;
	for (const char *c = argv[2]; *c; c++)
		cap = cap * 10 + (*c - '0');
	long fd = sys_open(argv[1], O_RDONLY | O_CLOEXEC);
	struct kstatx st;
	if (fd < 0 || sys_fstat(fd, &st) < 0)
		sys_exit(2);
	u8 *in = alloc(st.size + 1), *out = alloc(cap + 1);
	if (sys_pread(fd, in, st.size, 0) != (long)st.size)
		sys_exit(2);
	long n = lz4_unpack(in, st.size, out, cap);
	if (n < 0)
		sys_exit(1);
	sys_write(STDOUT_FILENO, out, n);
	sys_exit(0);
}

#else
#error "build check.c with -DPARKER_TRAILER_CHECK or -DPARKER_LZ4_CHECK"
#endif
