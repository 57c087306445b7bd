/* lz4.c: the LZ4 block decoder that unpacks the helper (stub/helper.go
 * does it with github.com/pierrec/lz4, which hack/lz4block packs it with;
 * FuzzStubLZ4 in tests/stub_test.go holds the two to the same results). */
#include "stub.h"

/* A sequence: a token (literal length in its high nibble, match length
 * less LZ4_MIN_MATCH in its low one), more literal length bytes, the
 * literals, a match offset (u16), more match length bytes. A nibble of
 * LZ4_LEN_MORE says that length bytes follow, each LZ4_BYTE_MORE another. */
#define LZ4_LEN_MASK 15
#define LZ4_LEN_MORE 15
#define LZ4_BYTE_MORE 255
#define LZ4_OFFSET_SIZE 2
#define LZ4_MIN_MATCH 4

/* LZ4_WILD bytes are copied at once where a copy may run past its end:
 * only where that much room is left in what is read and written. */
#define LZ4_WILD 16

static inline void copy16(u8 *d, const u8 *s)
{
	__builtin_memcpy(d, s, 8);
	__builtin_memcpy(d + 8, s + 8, 8);
}

/* lz4_more adds to *len the extra length bytes at *ip; it fails when
 * they run past end. */
static int lz4_more(const u8 **ip, const u8 *end, size_t *len)
{
	unsigned b;
	do {
		if (*ip >= end)
			return -1;
		b = *(*ip)++;
		*len += b;
	} while (b == LZ4_BYTE_MORE);
	return 0;
}

/* lz4_unpack unpacks one LZ4 block (the format hack/lz4block writes) from
 * src into dst, checking every bound, and returns the unpacked length or
 * -1 when the block is damaged. */
__attribute__((optimize("O3"))) static long lz4_unpack(const u8 *src, size_t n, u8 *dst, size_t cap)
{
	const u8 *ip = src, *iend = src + n;
	u8 *op = dst, *oend = dst + cap;
	/* A block may end after a match, as the Go decoder has it. */
	while (ip < iend) {
		unsigned tok = *ip++;
		size_t lit = tok >> 4;
		if (lit == LZ4_LEN_MORE && lz4_more(&ip, iend, &lit))
			return -1;
		if (lit > (size_t)(iend - ip) || lit > (size_t)(oend - op))
			return -1;
		if (lit <= LZ4_WILD && iend - ip >= LZ4_WILD && oend - op >= LZ4_WILD)
			copy16(op, ip); /* most literal runs are short */
		else
			memcpy(op, ip, lit);
		op += lit;
		ip += lit;
		if (ip == iend) /* the last sequence has literals only */
			return tok & LZ4_LEN_MASK ? -1 : op - dst;
		if (iend - ip < LZ4_OFFSET_SIZE)
			return -1;
		size_t off = ip[0] | (size_t)ip[1] << 8;
		ip += LZ4_OFFSET_SIZE;
		if (off == 0 || off > (size_t)(op - dst))
			return -1;
		size_t ml = tok & LZ4_LEN_MASK;
		if (ml == LZ4_LEN_MORE && lz4_more(&ip, iend, &ml))
			return -1;
		ml += LZ4_MIN_MATCH;
		if (ml > (size_t)(oend - op))
			return -1;
		const u8 *m = op - off;
		if (off >= 8 && (size_t)(oend - op) >= ml + LZ4_WILD) {
			/* Eight bytes at a time, past the match's end by up to
			 * seven (written again by what follows): a source eight
			 * or more bytes back is never one the copy has written. */
			u8 *end = op + ml;
			do {
				__builtin_memcpy(op, m, 8);
				op += 8;
				m += 8;
			} while (op < end);
			op = end;
		} else {
			/* Overlapping: a pattern repeated with period off, so
			 * any multiple of off is a period too. Each copy takes
			 * what is already written, and doubles the distance. */
			for (size_t d = off; ml > 0;) {
				size_t k = d < ml ? d : ml;
				memcpy(op, op - d, k);
				op += k;
				ml -= k;
				d += k;
			}
		}
	}
	return op - dst;
}

