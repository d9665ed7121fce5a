/**
 * server/registrar/regpriv.h  What crosses files inside server/registrar/
 *
 * Not public API (that is registrar.h): the users table's side of the
 * verifier (users.c -> auth.c), the built-in backends of the location
 * store (loc_memory.c, loc_sqlite.c -> location.c) and the remote store
 * (loc_redis.c <-> location.c). Include after registrar.h.
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


/* ---- loc_redis.c <-> location.c: a remote, authoritative store ---- */

/*
 * A store whose bindings live elsewhere (Redis), applied and read there:
 * location.c keeps no working set for it and hands it every change and
 * lookup. All on the loop thread. apply and lookup return 0 and call
 * doneh exactly once later (never from inside), or an error and never
 * call it (ENOTCONN: not connected now). close answers what is pending
 * (ESHUTDOWN) and frees the state.
 */
struct loc_remote {
	const char *name;
	int  (*open)(void **statep, const char *arg, struct location *loc);
	int  (*apply)(void *state, const struct loc_change *chg,
		      uint32_t max_bindings, loc_done_h *doneh, void *arg);
	int  (*lookup)(void *state, const char *aor, loc_done_h *doneh,
		       void *arg);
	void (*close)(void *state);
};

/* "redis://[:PASSWORD@]IP[:PORT][/DB]" */
extern const struct loc_remote loc_remote_redis;

/* A set of aor made of the n bindings of bv (copied; their aor field is
 * ignored), in the store's order (q, then recency: a later binding of
 * bv counts as more recent among equal updated_at) */
int  loc_set_from(struct loc_set **setp, const char *aor,
		  const struct loc_binding *bv, size_t n);
/* The store's batch hook around the done handlers of one read of the
 * remote's answers (location_set_batch) */
void location_batch(struct location *loc, bool end);
/* The store's counters and commit histogram, for the remote to keep:
 * commits (scripts that answered), ops (changes), failed, pending */
struct location_stats *location_counters(struct location *loc);
struct metrics_hist *location_hist(struct location *loc);

#endif
