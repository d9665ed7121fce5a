/**
 * server/core/keyhash.h  A keyed hash for tables whose keys peers choose
 *
 * SipHash-1-3 (Aumasson and Bernstein's SipHash with one compression
 * and three finalization rounds, the variant hash tables use), fed in
 * pieces. Why: libre's hash_joaat() has no key, so whoever picks the
 * keys (a request's Via branch, say) can pick, offline, thousands that
 * fall into one bucket, and every look-up then walks them all. With a
 * random key per table (two rand_u64(): OpenSSL's CSPRNG, rand.c) the
 * bucket of a key cannot be known from outside.
 * test/unit/test_keyhash.c compares it with OpenSSL's SIPHASH MAC
 * (size 8, c-rounds 1, d-rounds 3).
 */
#ifndef SIPSTACK_KEYHASH_H
#define SIPSTACK_KEYHASH_H

#include <endian.h>
#include <stdint.h>
#include <string.h>

struct keyhash {
	uint64_t v0, v1, v2, v3;
	uint64_t m;             /* the bytes of an unfinished word */
	uint64_t len;           /* bytes fed so far */
};


static inline uint64_t keyhash_rotl(uint64_t x, unsigned b)
{
	return (x << b) | (x >> (64 - b));
}


static inline void keyhash_round(struct keyhash *h)
{
	h->v0 += h->v1;
	h->v1 = keyhash_rotl(h->v1, 13);
	h->v1 ^= h->v0;
	h->v0 = keyhash_rotl(h->v0, 32);
	h->v2 += h->v3;
	h->v3 = keyhash_rotl(h->v3, 16);
	h->v3 ^= h->v2;
	h->v0 += h->v3;
	h->v3 = keyhash_rotl(h->v3, 21);
	h->v3 ^= h->v0;
	h->v2 += h->v1;
	h->v1 = keyhash_rotl(h->v1, 17);
	h->v1 ^= h->v2;
	h->v2 = keyhash_rotl(h->v2, 32);
}


static inline void keyhash_word(struct keyhash *h, uint64_t m)
{
	h->v3 ^= m;
	keyhash_round(h);
	h->v0 ^= m;
}


static inline void keyhash_init(struct keyhash *h, const uint64_t key[2])
{
	h->v0 = key[0] ^ 0x736f6d6570736575ull;
	h->v1 = key[1] ^ 0x646f72616e646f6dull;
	h->v2 = key[0] ^ 0x6c7967656e657261ull;
	h->v3 = key[1] ^ 0x7465646279746573ull;
	h->m = 0;
	h->len = 0;
}


static inline void keyhash_update(struct keyhash *h, const void *data,
				  size_t n)
{
	const uint8_t *p = data;
	unsigned fill = (unsigned)(h->len & 7);

	h->len += n;
	if (fill) {
		for (; n && fill < 8; --n, ++fill)
			h->m |= (uint64_t)*p++ << (8 * fill);
		if (fill < 8)
			return;
		keyhash_word(h, h->m);
		h->m = 0;
	}
	for (; n >= 8; n -= 8, p += 8) {
		uint64_t m;

		memcpy(&m, p, sizeof(m));
		keyhash_word(h, le64toh(m));
	}
	for (fill = 0; n; --n, ++fill)
		h->m |= (uint64_t)*p++ << (8 * fill);
}


static inline uint64_t keyhash_final(struct keyhash *h)
{
	keyhash_word(h, h->m | (h->len << 56));
	h->v2 ^= 0xff;
	keyhash_round(h);
	keyhash_round(h);
	keyhash_round(h);

	return h->v0 ^ h->v1 ^ h->v2 ^ h->v3;
}

#endif
