/* trailer.c: reads and checks the trailer at the end of the packed file,
 * as image/trailer does (trailer.Read), which is the reference for its
 * layout and rules; FuzzStubTrailer (tests/stub_test.go) holds the two
 * to the same verdicts. */
#include "stub.h"

#define TRAILER_VERSION 5       /* the newest this stub reads */
#define VERSION_HELPER 2        /* the first with the helper's fields */
#define VERSION_LIMITS 3        /* the first with the resource limits */
#define VERSION_HELPER_DIGEST 4 /* the first with the helper's digest */
#define VERSION_NEEDS 5         /* the first with the target's libraries */
#define PAD_SIZE 4096 /* the payload's alignment (trailer.PadSize) */
#define MAX_BODY (64 << 10)
#define MAX_TARGET 4096
#define MAX_STRING 1024
#define MAX_HELPER (256u << 20)
/* The target's libraries (trailer.MaxNeeds, MaxNeedsBytes). */
#define MAX_NEEDS 256
#define MAX_NEEDS_BYTES (16 << 10)
#define MAX_SONAME 255
/* The largest limits (trailer.MaxMemory, MaxMilliCPUs, MaxPids). */
#define MAX_MEMORY 0x7fffffffffffffffull
#define MAX_MILLI_CPUS (65536u * 1000)
#define MAX_PIDS (1u << 22)

/* The footer: body length u32, CRC-32C of the body and that length u32,
 * magic. */
#define FOOTER_SIZE 16
#define FOOT_BODY_LEN 0
#define FOOT_CRC (FOOT_BODY_LEN + 4)
#define FOOT_MAGIC (FOOT_CRC + 4)
static const char magic[8] = {'P', 'A', 'R', 'K', 'E', 'R', 0, 1};

/* The body: fixed fields, then the target, the compression and the
 * created-by strings (each a u16 length and its bytes), then, from
 * version 2, the helper's offset, stored size and unpacked size (u64
 * each), then, from version 3, the resource limits, then, from version 4,
 * the helper's SHA-256 unpacked, then, from version 5, the libraries the
 * target takes from the machine it runs on: a count (u16), then for each
 * its cache flags (u32), its soname and its path (strings). Each fixed
 * field's offset is the previous one's plus its size. */
#define BODY_VERSION 0                     /* u16 */
#define BODY_FLAGS (BODY_VERSION + 2)      /* u16 */
#define BODY_STUB_SIZE (BODY_FLAGS + 2)    /* u64 */
#define BODY_OFFSET (BODY_STUB_SIZE + 8)   /* u64 */
#define BODY_SIZE (BODY_OFFSET + 8)        /* u64 */
#define BODY_DIGEST (BODY_SIZE + 8)        /* 32 bytes, SHA-256 */
#define BODY_LEVEL (BODY_DIGEST + 32)      /* u32 */
#define BODY_BLOCK_SIZE (BODY_LEVEL + 4)   /* u32 */
#define BODY_STRINGS (BODY_BLOCK_SIZE + 4) /* the first string */
#define BODY_STRING_COUNT 3
#define STRING_LEN_SIZE 2 /* u16 */
/* After the strings, from version 2. */
#define HELPER_OFFSET 0                      /* u64 */
#define HELPER_SIZE (HELPER_OFFSET + 8)      /* u64 */
#define HELPER_RAW_SIZE (HELPER_SIZE + 8)    /* u64 */
#define HELPER_FIELDS (HELPER_RAW_SIZE + 8)
/* After the helper's, from version 3. */
#define LIMIT_MEMORY 0                     /* u64 */
#define LIMIT_MILLI_CPUS (LIMIT_MEMORY + 8) /* u32 */
#define LIMIT_PIDS (LIMIT_MILLI_CPUS + 4)   /* u64 */
#define LIMIT_FIELDS (LIMIT_PIDS + 8)
/* After the limits, from version 4: 32 bytes. */
#define HELPER_DIGEST_SIZE 32
/* After the digest, from version 5: the count, then the libraries. */
#define NEEDS_COUNT_SIZE 2 /* u16 */
#define NEED_FLAGS_SIZE 4  /* u32 */
/* The least a body can hold and name its target: the fixed fields and
 * the target's length. */
#define MIN_BODY (BODY_STRINGS + STRING_LEN_SIZE)
_Static_assert(BODY_STRINGS == 68, "the strings start at byte 68 of the body");

#define CRC32C_POLY 0x82F63B78u /* Castagnoli, reversed */

static u32 crc32c(const u8 *p, size_t n)
{
	u32 c = ~0u;
	while (n--) {
		c ^= *p++;
		for (int k = 0; k < 8; k++)
			c = c >> 1 ^ (CRC32C_POLY & -(c & 1));
	}
	return ~c;
}

/* le reads the n-byte little-endian number at b. */
static u64 le(const u8 *b, int n)
{
	u64 v = 0;
	while (n--)
		v = v << 8 | b[n];
	return v;
}

static u16 le16(const u8 *b) { return le(b, 2); }
static u32 le32(const u8 *b) { return le(b, 4); }
static u64 le64(const u8 *b) { return le(b, 8); }

/* read_body reads the body of fd's trailer into body (MAX_BODY + 4 bytes)
 * and returns its length, with where the trailer begins in *end, having
 * checked the footer and the checksum (the first half of trailer.Read). */
static u64 read_body(int fd, u8 *body, u64 *end)
{
	struct kstatx st;
	long e = sys_fstat(fd, &st);
	if (e < 0) {
		put_errno(-e);
		fail(EXIT_FAILURE_PARKER);
	}
	u64 size = st.size;
	u8 foot[FOOTER_SIZE];
	if (size < FOOTER_SIZE || sys_pread(fd, foot, FOOTER_SIZE, size - FOOTER_SIZE) != FOOTER_SIZE ||
	    memcmp(foot + FOOT_MAGIC, magic, sizeof magic)) {
		put("truncated or damaged packed file: its parker trailer is missing");
		fail(EXIT_FAILURE_PARKER);
	}
	/* From here on, a failure is a damaged trailer's. */
	put("damaged parker trailer: ");
	u64 n = le32(foot + FOOT_BODY_LEN);
	if (n > MAX_BODY || n > size - FOOTER_SIZE || n < MIN_BODY) {
		put("body length ");
		put_uint(n);
		fail(EXIT_FAILURE_PARKER);
	}
	if (sys_pread(fd, body, n, size - FOOTER_SIZE - n) != (long)n) {
		put("cannot read it");
		fail(EXIT_FAILURE_PARKER);
	}
	/* The checksum covers the body and the length after it. */
	memcpy(body + n, foot + FOOT_BODY_LEN, 4);
	if (crc32c(body, n + 4) != le32(foot + FOOT_CRC)) {
		put("checksum mismatch");
		fail(EXIT_FAILURE_PARKER);
	}
	*end = size - FOOTER_SIZE - n;
	return n;
}

/* parse_body reads the fields of the body b, n bytes long, into t
 * (trailer's parseTrailerBody), with the target's length in *tlen and the
 * longest other string's in *longest, for valid. It returns -1 when they
 * run past the end. */
static int parse_body(const u8 *b, u64 n, struct trailer *t, u64 *tlen, u64 *longest)
{
	t->version = le16(b + BODY_VERSION);
	t->flags = le16(b + BODY_FLAGS);
	t->stub_size = le64(b + BODY_STUB_SIZE);
	t->offset = le64(b + BODY_OFFSET);
	t->size = le64(b + BODY_SIZE);
	memcpy(t->digest, b + BODY_DIGEST, sizeof t->digest); /* the cache's key */
	/* level and block size: not needed here */
	u64 p = BODY_STRINGS;
	*longest = 0;
	for (int i = 0; i < BODY_STRING_COUNT; i++) { /* target, compression, created-by */
		if (p + STRING_LEN_SIZE > n)
			return -1;
		u64 l = le16(b + p);
		if (p + STRING_LEN_SIZE + l > n)
			return -1;
		if (i > 0 && l > *longest)
			*longest = l;
		if (i == 0) {
			*tlen = l;
			char *s = alloc(l + 1);
			memcpy(s, b + p + STRING_LEN_SIZE, l);
			s[l] = 0;
			t->target = s;
		}
		p += STRING_LEN_SIZE + l;
	}
	if (t->version >= VERSION_HELPER) {
		if (p + HELPER_FIELDS > n)
			return -1;
		t->helper_offset = le64(b + p + HELPER_OFFSET);
		t->helper_size = le64(b + p + HELPER_SIZE);
		t->helper_raw_size = le64(b + p + HELPER_RAW_SIZE);
		p += HELPER_FIELDS;
	}
	if (t->version >= VERSION_LIMITS) {
		if (p + LIMIT_FIELDS > n)
			return -1;
		t->memory = le64(b + p + LIMIT_MEMORY);
		t->milli_cpus = le32(b + p + LIMIT_MILLI_CPUS);
		t->pids = le64(b + p + LIMIT_PIDS);
		p += LIMIT_FIELDS;
	}
	if (t->version >= VERSION_HELPER_DIGEST) {
		if (p + HELPER_DIGEST_SIZE > n)
			return -1;
		memcpy(t->helper_digest, b + p, HELPER_DIGEST_SIZE);
		p += HELPER_DIGEST_SIZE;
	}
	t->needs_ok = 1;
	if (t->version >= VERSION_NEEDS) {
		if (p + NEEDS_COUNT_SIZE > n)
			return -1;
		t->n_needs = le16(b + p);
		p += NEEDS_COUNT_SIZE;
		t->needs = b + p;
		u64 start = p;
		for (u32 i = 0; i < t->n_needs; i++) {
			if (p + NEED_FLAGS_SIZE > n)
				return -1;
			p += NEED_FLAGS_SIZE;
			for (int k = 0; k < 2; k++) { /* the soname, the path */
				if (p + STRING_LEN_SIZE > n)
					return -1;
				u64 l = le16(b + p);
				if (p + STRING_LEN_SIZE + l > n)
					return -1;
				const u8 *c = b + p + STRING_LEN_SIZE;
				int ok = k ? l && l <= MAX_STRING && c[0] == '/' : l && l <= MAX_SONAME;
				for (u64 j = 0; ok && j < l; j++)
					ok = c[j] && (k || c[j] != '/');
				t->needs_ok &= ok;
				p += STRING_LEN_SIZE + l;
			}
		}
		t->needs_ok &= t->n_needs <= MAX_NEEDS && NEEDS_COUNT_SIZE + p - start <= MAX_NEEDS_BYTES;
	}
	return 0;
}

/* need_next reads the library at *at (a need, as parse_body found them)
 * into its flags, soname and path, NUL-terminated copies, and moves *at
 * past it. */
static void need_next(const u8 **at, u32 *flags, char **soname, char **path)
{
	const u8 *b = *at;
	*flags = le32(b);
	b += NEED_FLAGS_SIZE;
	char **out[] = {soname, path};
	for (int k = 0; k < 2; k++) {
		u64 l = le16(b);
		char *s = alloc(l + 1);
		memcpy(s, b + STRING_LEN_SIZE, l);
		s[l] = 0;
		*out[k] = s;
		b += STRING_LEN_SIZE + l;
	}
	*at = b;
}

/* helper_digest_set tells whether t records the helper's digest. */
static int helper_digest_set(const struct trailer *t)
{
	for (int i = 0; i < HELPER_DIGEST_SIZE; i++)
		if (t->helper_digest[i])
			return 1;
	return 0;
}

/* valid: the rules of trailer.validate, and the payload ends before end,
 * where the trailer begins. */
static int valid(const struct trailer *t, u64 tlen, u64 longest, u64 end)
{
	return t->version >= 1 && t->version <= TRAILER_VERSION &&
	       !(t->helper_raw_size && (!t->helper_size || t->helper_raw_size > MAX_HELPER)) &&
	       !(helper_digest_set(t) && !t->helper_size) && t->needs_ok &&
	       !(t->helper_size && (t->helper_offset < t->stub_size ||
				    t->helper_offset + t->helper_size < t->helper_offset ||
				    t->helper_offset + t->helper_size > t->offset)) &&
	       t->memory <= MAX_MEMORY && t->milli_cpus <= MAX_MILLI_CPUS && t->pids <= MAX_PIDS &&
	       tlen && tlen <= MAX_TARGET && slen(t->target) == tlen && longest <= MAX_STRING &&
	       t->offset % PAD_SIZE == 0 && t->stub_size <= t->offset && t->size &&
	       t->offset + t->size >= t->offset && t->offset + t->size <= end;
}

/* read_trailer reads and checks the trailer of fd into *t, or fails with
 * one line and EXIT_FAILURE_PARKER (trailer.Read). */
static void read_trailer(int fd, struct trailer *t)
{
	static u8 body[MAX_BODY + 4]; /* and the length, for the checksum */
	u64 end, tlen = 0, longest = 0;
	u64 n = read_body(fd, body, &end);
	if (parse_body(body, n, t, &tlen, &longest)) {
		put("body too short");
		fail(EXIT_FAILURE_PARKER);
	}
	if (!valid(t, tlen, longest, end)) {
		put("inconsistent fields (version ");
		put_uint(t->version);
		put("; truncated?)");
		fail(EXIT_FAILURE_PARKER);
	}
	msglen = 0;
}
