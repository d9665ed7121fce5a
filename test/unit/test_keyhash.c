/**
 * test/unit/test_keyhash.c  server/core/keyhash.h against OpenSSL's SipHash
 *
 * keyhash.h is SipHash-1-3 fed in pieces. Compared with OpenSSL 3's
 * SIPHASH MAC (EVP_MAC, size 8, c-rounds 1, d-rounds 3) on the known
 * key and message of the SipHash paper's test vectors (every length
 * 0-64) and on random keys and messages up to 300 bytes, each fed whole
 * and cut into up to five random pieces (empty ones too). Also: the
 * SipHash-2-4 test vector through OpenSSL, so that a change in how
 * OpenSSL reads its parameters shows as such; different keys give
 * different hashes.
 */
#include <string.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <re.h>
#include "keyhash.h"

#include "testutil.h"


static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t rnd64(void)
{
	return test_rnd64(&rng);
}


/* OpenSSL's SipHash-c-d of msg under key (16 bytes, little-endian
 * words), as a little-endian 64-bit number; false if it refused */
static bool ossl_siphash(const uint8_t key[16], const uint8_t *msg,
			 size_t n, unsigned c, unsigned d, uint64_t *out)
{
	EVP_MAC *mac = EVP_MAC_fetch(NULL, "SIPHASH", NULL);
	EVP_MAC_CTX *ctx = mac ? EVP_MAC_CTX_new(mac) : NULL;
	size_t size = 8, outl = 0;
	unsigned cr = c, dr = d;
	uint8_t buf[16];
	OSSL_PARAM params[4];
	bool ok = false;

	params[0] = OSSL_PARAM_construct_size_t(OSSL_MAC_PARAM_SIZE, &size);
	params[1] = OSSL_PARAM_construct_uint(OSSL_MAC_PARAM_C_ROUNDS, &cr);
	params[2] = OSSL_PARAM_construct_uint(OSSL_MAC_PARAM_D_ROUNDS, &dr);
	params[3] = OSSL_PARAM_construct_end();

	if (ctx && EVP_MAC_init(ctx, key, 16, params) &&
	    EVP_MAC_update(ctx, msg, n) &&
	    EVP_MAC_final(ctx, buf, &outl, sizeof(buf)) && outl == 8) {
		uint64_t v = 0;
		int i;

		for (i = 7; i >= 0; i--)
			v = (v << 8) | buf[i];
		*out = v;
		ok = true;
	}
	EVP_MAC_CTX_free(ctx);
	EVP_MAC_free(mac);

	return ok;
}


static uint64_t ours(const uint64_t key[2], const uint8_t *msg, size_t n,
		     const size_t *cuts, size_t ncuts)
{
	struct keyhash h;
	size_t i, at = 0;

	keyhash_init(&h, key);
	for (i = 0; i < ncuts; i++) {
		keyhash_update(&h, msg + at, cuts[i] - at);
		at = cuts[i];
	}
	keyhash_update(&h, msg + at, n - at);

	return keyhash_final(&h);
}


static void key_words(const uint8_t kb[16], uint64_t key[2])
{
	int i;

	key[0] = key[1] = 0;
	for (i = 7; i >= 0; i--) {
		key[0] = (key[0] << 8) | kb[i];
		key[1] = (key[1] << 8) | kb[8 + i];
	}
}


int main(void)
{
	uint8_t kb[16], msg[300];
	uint64_t key[2], want, got;
	unsigned bad = 0, n_cmp = 0;
	bool refused = false;
	size_t i, n;
	char name[160];

	/* the paper's vector, SipHash-2-4 of 00..0e under 00..0f */
	for (i = 0; i < 16; i++)
		kb[i] = (uint8_t)i;
	for (i = 0; i < 64; i++)
		msg[i] = (uint8_t)i;
	CHECK(ossl_siphash(kb, msg, 15, 2, 4, &want) &&
	      want == 0xa129ca6149be45e5ull,
	      "OpenSSL's SIPHASH gives the paper's SipHash-2-4 vector");

	/* the paper's key and messages, every length 0-64, whole */
	key_words(kb, key);
	for (n = 0; n <= 64; n++) {
		if (!ossl_siphash(kb, msg, n, 1, 3, &want)) {
			refused = true;
			break;
		}
		++n_cmp;
		if (ours(key, msg, n, NULL, 0) != want)
			++bad;
	}
	CHECK(!refused, "OpenSSL computes SipHash-1-3 (c-rounds, d-rounds)");
	(void)snprintf(name, sizeof(name), "SipHash-1-3 of 00.. under "
		       "00..0f, lengths 0-64: %u of %u as OpenSSL's",
		       n_cmp - bad, n_cmp);
	CHECK(!refused && !bad, name);

	/* random keys, messages and cuts */
	bad = n_cmp = 0;
	for (i = 0; i < 3000 && !refused; i++) {
		size_t cuts[5], ncuts = rnd64() % 6, k;

		for (k = 0; k < 16; k++)
			kb[k] = (uint8_t)rnd64();
		key_words(kb, key);
		n = (size_t)(rnd64() % (sizeof(msg) + 1));
		for (k = 0; k < n; k++)
			msg[k] = (uint8_t)rnd64();
		for (k = 0; k < ncuts; k++)
			cuts[k] = n ? (size_t)(rnd64() % (n + 1)) : 0;
		/* ascending */
		for (k = 1; k < ncuts; k++) {
			size_t j = k;

			while (j && cuts[j - 1] > cuts[j]) {
				size_t x = cuts[j];

				cuts[j] = cuts[j - 1];
				cuts[j - 1] = x;
				--j;
			}
		}
		if (!ossl_siphash(kb, msg, n, 1, 3, &want)) {
			refused = true;
			break;
		}
		n_cmp += 2;
		if (ours(key, msg, n, NULL, 0) != want)
			++bad;
		if (ours(key, msg, n, cuts, ncuts) != want)
			++bad;
	}
	(void)snprintf(name, sizeof(name), "random keys, messages of 0-300 "
		       "bytes, whole and in up to 6 pieces: %u of %u as "
		       "OpenSSL's", n_cmp - bad, n_cmp);
	CHECK(!refused && !bad, name);

	/* the key matters */
	key[0] = 1;
	key[1] = 2;
	got = ours(key, (const uint8_t *)"z9hG4bK-1", 9, NULL, 0);
	key[1] = 3;
	CHECK(got != ours(key, (const uint8_t *)"z9hG4bK-1", 9, NULL, 0),
	      "another key, another hash");

	printf("1..%d\n", ntest);

	return nfail ? 1 : 0;
}
