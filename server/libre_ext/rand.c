/**
 * server/libre_ext/rand.c  Random numbers for libre, drawn in batches
 *
 * libre draws a random tag for every message it parses (sip_msg_decode
 * sets msg->tag = rand_u64()) and a branch for every request it sends,
 * and each rand_u32() is one call into OpenSSL's RAND_bytes: measured
 * with callgrind, ~14,000 instructions of a ~87,000-instruction OPTIONS
 * transaction went there. This file defines rand_u32() and rand_u64()
 * in the executable, which exports them (overrides.list); libre.so calls
 * them through its PLT (it is built without -Bsymbolic, the same
 * property fasttmr.c relies on), so libre's own calls land here too. The numbers still come from
 * RAND_bytes, OpenSSL's CSPRNG, only 512 bytes at a time into a
 * per-thread pool, so tags and branches keep their cryptographic
 * quality (RFC 3261 §19.3 asks for at least 32 random bits in a tag).
 * rand_u16/rand_char/rand_str keep libre's code, which calls rand_u32.
 * libre_ext_rand_warm() (main, at start) fills the loop thread's pool
 * once, so that OpenSSL's generator is set up (millions of instructions)
 * before the first message rather than while answering it.
 */
#include <string.h>
#include <openssl/rand.h>
#include <re.h>
#include "libre_ext.h"


/* 4 KiB a draw: RAND_bytes costs ~7,500 instructions for 512 bytes and
 * ~17,500 for 4,096 (callgrind, OpenSSL 3.0): a quarter per byte */
enum { POOL_SIZE = 4096 };

static __thread struct {
	uint8_t buf[POOL_SIZE];
	size_t pos;   /* bytes used; POOL_SIZE = empty */
	bool init;
} pool;


static void take(void *p, size_t n)
{
	if (!pool.init || pool.pos + n > POOL_SIZE) {
		if (RAND_bytes(pool.buf, POOL_SIZE) != 1) {
			/* OpenSSL failed: fall back to libre's own route
			 * for this value, never to a weak generator */
			(void)RAND_bytes(p, (int)n);
			return;
		}
		pool.pos = 0;
		pool.init = true;
	}

	memcpy(p, pool.buf + pool.pos, n);
	memset(pool.buf + pool.pos, 0, n);  /* used bytes do not linger */
	pool.pos += n;
}


void libre_ext_rand_warm(void)
{
	uint8_t b[8];

	take(b, sizeof(b));
	memset(b, 0, sizeof(b));
}


uint32_t rand_u32(void)
{
	uint32_t v = 0;

	take(&v, sizeof(v));

	return v;
}


uint64_t rand_u64(void)
{
	uint64_t v = 0;

	take(&v, sizeof(v));

	return v;
}
