/**
 * server/registrar/regpriv.h  What crosses files inside server/registrar/
 *
 * Not public API (that is registrar.h): the users table's side of the
 * verifier (users.c -> auth.c) and the built-in backends of the location
 * store (loc_memory.c, loc_sqlite.c -> location.c). Include after
 * registrar.h.
 */
#ifndef SIPSTACK_REGPRIV_H
#define SIPSTACK_REGPRIV_H


/* Buckets for a hash table of about n entries: a power of two from 64
 * to 65536 (two entries a bucket) */
static inline uint32_t reg_hash_size(uint32_t n)
{
	uint32_t sz = 64;

	while (sz < n / 2 && sz < 65536)
		sz <<= 1;

	return sz;
}


/* ---- users.c ---- */

/* A cached row; HA1s are password equivalents and are wiped on free */
struct auth_user {
	struct le le;
	char *name;
	char *realm;
	char ha1_md5[DIGEST_MD5_HEX + 1];
	char ha1_sha256[DIGEST_SHA256_HEX + 1];
};

/* The cached user called name; NULL if none (or no cache: the direct
 * handle of auth_users_open_direct) */
const struct auth_user *auth_users_find(const struct auth_users *u,
					const struct pl *name);
/* The secret called name, n bytes (at most 64): made once, at random,
 * and kept in the secrets table, so that every process on the database
 * shares it. EPROTO if a stored one has another size. */
int  auth_users_secret(struct auth_users *u, const char *name,
		       uint8_t *secret, size_t n);


/* ---- loc_memory.c, loc_sqlite.c ---- */

/* "memory:": nothing persists (tests) */
extern const struct loc_backend loc_backend_memory;
/* "sqlite:PATH": one database file, WAL, synchronous=FULL */
extern const struct loc_backend loc_backend_sqlite;

#endif
