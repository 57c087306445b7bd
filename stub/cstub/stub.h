/* stub.h: what the parts of the C stub share: its exit statuses, the
 * trailer it reads, and the state of the run.
 *
 * The stub is built as one translation unit: stub.c includes each part
 * (msg.c, mem.c, trailer.c, lz4.c, helper.c, mountns.c, cgroup.c,
 * supervisor.c), so that everything stays static and the compiler sees the
 * whole program, which keeps the stub small; check.c, the test builds,
 * includes the parts they test. Each part includes this header, so that it
 * reads on its own. */
#ifndef PARKER_STUB_H
#define PARKER_STUB_H

#include "sys.h"

/* Exit statuses of a packed file, as stub/stub.go defines them
 * (ExitFailure, ExitNotExecutable, ExitNotFound): parker's own failure, a
 * target that cannot be executed, a target that is missing. A target
 * killed by signal N is reported as 128+N, as a shell does. */
#define EXIT_FAILURE_PARKER 125
#define EXIT_NOT_EXECUTABLE 126
#define EXIT_NOT_FOUND 127
#define EXIT_SIGNAL_BASE 128

/* Environment (stub/stub.go, stub/helper.go), as "NAME=" prefixes. */
#define ENV_EXE "PARKER_EXE="
#define ENV_ROOT "PARKER_ROOT="
#define ENV_VERBOSE "PARKER_VERBOSE="
#define ENV_HELPER_FOR "PARKER_HELPER_FOR="
#define ENV_SIGNALS "PARKER_SIGNALS=" /* stub.EnvSignals */
#define ENV_CGROUP "PARKER_CGROUP="               /* cgroup.EnvMode */
#define ENV_CGROUP_PARENT "PARKER_CGROUP_PARENT=" /* cgroup.EnvParent */
#define ENV_MODE "PARKER_MODE="                   /* stub.EnvMode */
#define ENV_CACHE_DIR "PARKER_CACHE_DIR="         /* cache.EnvDir */
/* The cache directory, checked before the user namespace the helper is
 * handed the run in, where owners cannot be told apart (stub.EnvCacheChecked). */
#define ENV_CACHE_CHECKED "PARKER_CACHE_CHECKED="
#define ENV_IN_VIEW "PARKER_IN_VIEW="             /* stub.EnvInView */
#define FLAG_PREFIX "--parker-"

/* What the stub reads of its trailer (image/trailer.Trailer). */
struct trailer {
	u16 version, flags;
	u64 stub_size, offset, size;
	u8 digest[32]; /* the payload's SHA-256 */
	const char *target; /* NUL-terminated copy */
	u64 helper_offset, helper_size, helper_raw_size;
	/* The run's default resource limits (version 3), 0 for none: a run
	 * with any is the helper's. */
	u64 memory, milli_cpus, pids;
	/* The helper's SHA-256 unpacked (version 4), or zeros: the name of
	 * the cache's copy of it (helper.c). */
	u8 helper_digest[32];
	/* The libraries the target takes from the machine it runs on
	 * (version 5): n_needs of them from needs, in the trailer's body,
	 * read by need_next; needs_ok when each is one a trailer may name. */
	const u8 *needs;
	u32 n_needs;
	int needs_ok;
};

/* The run's state, set by cmain (stub.c) before anything else runs. */
static const char *self = "packed file"; /* the packed file's absolute path */
static int file = -1;                    /* the packed file, open */
static struct trailer tr;                /* its trailer, checked */
static int cgroups_off;                  /* PARKER_CGROUP=none: no cgroup, the namespace alone */
/* in_userns: the run is in a user namespace of its own (fuse.c), which
 * the helper, handed the run, cannot leave: it is told what failed. There
 * owners the namespace does not map look alike: nothing is judged by its
 * owner (the cache's directory, cache.c) from inside. */
static int in_userns;
/* PARKER_MODE (stub.ParseMode), as far as the stub takes it. */
enum { RUNG_AUTO, RUNG_KERNEL, RUNG_FUSE, RUNG_EXTRACT };
static int rung;
static int argc;
static char **argv, **envp;

#endif
