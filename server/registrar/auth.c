/**
 * server/registrar/auth.c  SIP digest authentication and the users table
 *
 * Owns struct auth (the verifier: realm, nonce secret, nonce-count table)
 * and struct auth_users (the `users` table of the SQLite database shared
 * with the location store, and its in-memory cache on the loop thread).
 * Exposes auth_*() in sipstack.h, including auth_user_cli() behind
 * `sipstack user ...`. Uses OpenSSL (EVP, HMAC) for MD5 and SHA-256,
 * SQLite for storage and libre for parsing, timers and replies; it owns
 * its own Digest header parser because libre's (src/httpauth) has no
 * quoted-string unescaping and no `algorithm` field in a response.
 *
 * Standards: RFC 3261 §22, RFC 7616 (Digest), RFC 8760 (SHA-256 in SIP).
 *
 * Decisions (see also the AUTH section of sipstack.h):
 *
 *  - Challenges offer one header per algorithm, SHA-256 first, then MD5
 *    (RFC 8760: one header per algorithm, in order of preference), all
 *    with the same nonce and qop="auth".
 *  - A nonce is hex(ts || epoch || salt || HMAC-SHA256(secret, ts ||
 *    epoch || salt || realm)[0..15]): ts a monotonic clock in ms, epoch
 *    32 random bits drawn per process (auth_alloc), salt 32 random bits
 *    (so two challenges in the same millisecond differ). The secret (256
 *    bits) is made once and kept in the users database (table secrets),
 *    so nonces stay ours across restarts. A nonce needs no server state
 *    until its first successful use.
 *  - A nonce that is not ours (malformed, bad MAC: tampered, made up,
 *    another realm's or another database's) is refused before any
 *    password is looked at: a fresh challenge without stale, the same
 *    answer whatever the response says. Checking the response first
 *    would make a made-up nonce a one-packet password oracle (right:
 *    401 stale, wrong: 403) with no challenge round trip.
 *  - stale=true is only ever the outcome when the response is correct
 *    for one of our nonces (RFC 7616 §3.3: "SHOULD only set stale to
 *    true if ... a valid digest for that nonce"): expired, evicted from
 *    the nc table, or from a previous process (its epoch differs; its
 *    nc history is gone, so it is not accepted again). A wrong response
 *    is FAILED whatever the state of the nonce. A client that knows the
 *    password thus recovers without a prompt after a restart.
 *  - Guessing limits (server/registrar/authguard.c): FAILED and BAD count against
 *    the source address and the user name; a banned source or a slowed
 *    user is refused (FAILED, 403) without a check.
 *  - Nonce-count: the highest nc of each nonce is kept from its first
 *    successful use, in a hash table bounded to max_nonces entries with
 *    oldest-first eviction; entries go with their nonce's lifetime. A
 *    nonce not in the table whose timestamp is not newer than the newest
 *    evicted entry's may have been evicted, and so is refused as stale.
 *    nc is only advanced after the response checked out, so a guesser
 *    cannot burn a client's counter.
 *  - A repeated or lower nc with a correct response is REPLAY. The
 *    request is refused and re-challenged with stale=true (401/407), not
 *    403: the digest is valid, which is RFC 7616 §3.3's condition for
 *    stale; an attacker replaying a captured request cannot answer a
 *    fresh nonce; a genuine client whose requests crossed (nc 2 before
 *    nc 1) or whose counter restarted recovers without a user prompt.
 *    The replay is logged (ev=auth_replay) at warn level.
 *  - qop absent (RFC 2069 style) is BAD (400): we always send qop=auth
 *    and RFC 7616 §3.4 makes qop mandatory in the answer.
 *  - An unknown user is verified against a random per-process dummy HA1,
 *    so it costs the same as a wrong password and gives the same FAILED
 *    (403). Challenges never depend on the user.
 */
#include <ctype.h>
#include <stddef.h>
#include <string.h>
#include <strings.h>
#include <stdlib.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>
#include <termios.h>
#include <pthread.h>
#include <openssl/evp.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <sqlite3.h>
#include <re.h>
#include "registrar.h"


enum {
	MD5_HEX       = 32,
	SHA256_HEX    = 64,
	HEX_MAX       = SHA256_HEX + 1,
	SECRET_SIZE   = 32,
	SALT_SIZE     = 8,         /* epoch (4) || random (4)     */
	TS_SIZE       = 8,
	MAC_SIZE      = 16,
	NONCE_RAW     = TS_SIZE + SALT_SIZE + MAC_SIZE,
	NONCE_HEX     = 2 * NONCE_RAW,
	REALM_MAX     = 128,
	PASSWORD_MAX  = 1024,
	CRED_SCRATCH  = 4096,      /* unescaped Digest parameters */
	POLL_MS       = 1000,      /* PRAGMA data_version poll    */
	BUSY_LOOP_MS  = 1000,      /* busy_timeout of the server  */
	BUSY_CLI_MS   = 5000,      /* busy_timeout of the CLI     */
};

static const char *db_default = "sipstack.db";
static const char *realm_default = "sipstack";


/* ------------------------------------------------------------------ *
 * Hashing (OpenSSL EVP)
 * ------------------------------------------------------------------ */

/* The digests, fetched once: EVP_md5()/EVP_sha256() make every
 * EVP_DigestInit_ex fetch the implementation again (OpenSSL 3) */
static EVP_MD *md_md5, *md_sha256;
static pthread_once_t md_once = PTHREAD_ONCE_INIT;

static void md_fetch(void)
{
	md_md5    = EVP_MD_fetch(NULL, "MD5", NULL);
	md_sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
}


static const EVP_MD *alg_md(enum auth_alg alg)
{
	(void)pthread_once(&md_once, md_fetch);

	if (alg == AUTH_ALG_SHA256)
		return md_sha256 ? md_sha256 : EVP_sha256();

	return md_md5 ? md_md5 : EVP_md5();
}


static size_t alg_hexlen(enum auth_alg alg)
{
	return alg == AUTH_ALG_SHA256 ? SHA256_HEX : MD5_HEX;
}


const char *auth_alg_name(enum auth_alg alg)
{
	switch (alg) {

	case AUTH_ALG_MD5:    return "MD5";
	case AUTH_ALG_SHA256: return "SHA-256";
	default:              return "?";
	}
}


static void hex_encode(char *hex, const uint8_t *p, size_t n)
{
	static const char digits[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < n; i++) {
		hex[2*i]     = digits[p[i] >> 4];
		hex[2*i + 1] = digits[p[i] & 0xf];
	}
	hex[2*n] = '\0';
}


static int hex_val(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}


static bool is_hex(const char *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (hex_val(p[i]) < 0)
			return false;
	}

	return true;
}


/* hex = H(pv[0] ":" pv[1] ":" ... pv[n-1]) in lowercase, NUL-terminated;
 * hex must hold HEX_MAX bytes. */
static int hash_join(char *hex, enum auth_alg alg, const struct pl *pv,
		     size_t n)
{
	uint8_t md[EVP_MAX_MD_SIZE];
	unsigned mdlen = 0;
	EVP_MD_CTX *ctx;
	size_t i;
	int err = 0;

	ctx = EVP_MD_CTX_new();
	if (!ctx)
		return ENOMEM;

	if (1 != EVP_DigestInit_ex(ctx, alg_md(alg), NULL)) {
		err = EPROTO;
		goto out;
	}

	for (i = 0; i < n; i++) {
		if ((i && 1 != EVP_DigestUpdate(ctx, ":", 1)) ||
		    (pv[i].l && 1 != EVP_DigestUpdate(ctx, pv[i].p,
						      pv[i].l))) {
			err = EPROTO;
			goto out;
		}
	}

	if (1 != EVP_DigestFinal_ex(ctx, md, &mdlen) ||
	    mdlen * 2 != alg_hexlen(alg)) {
		err = EPROTO;
		goto out;
	}

	hex_encode(hex, md, mdlen);

 out:
	EVP_MD_CTX_free(ctx);
	OPENSSL_cleanse(md, sizeof(md));

	return err;
}


static int ha1_make(char *hex, enum auth_alg alg, const char *user,
		    const char *realm, const char *password)
{
	struct pl pv[3];

	pl_set_str(&pv[0], user);
	pl_set_str(&pv[1], realm);
	pl_set_str(&pv[2], password);

	return hash_join(hex, alg, pv, ARRAY_SIZE(pv));
}


/* Names and realms go into quoted-strings and log lines: no control
 * characters, no quote or backslash (which would need escaping that
 * some clients get wrong), bounded length. */
static bool name_valid(const char *s, size_t max)
{
	size_t i, n;

	if (!s)
		return false;

	n = strlen(s);
	if (n == 0 || n > max)
		return false;

	for (i = 0; i < n; i++) {
		const unsigned char c = s[i];
		if (c < 0x20 || c == 0x7f || c == '"' || c == '\\')
			return false;
	}

	return true;
}


/* ------------------------------------------------------------------ *
 * Users store: SQLite table and its in-memory cache
 * ------------------------------------------------------------------ */

/* A cached row; HA1s are password equivalents and are wiped on free */
struct auth_user {
	struct le le;
	char *name;
	char *realm;
	char ha1_md5[MD5_HEX + 1];
	char ha1_sha256[SHA256_HEX + 1];
};

struct auth_users {
	sqlite3 *db;
	sqlite3_stmt *st_version;   /* PRAGMA data_version          */
	char *path;
	struct hash *cache;         /* struct auth_user; NULL: CLI  */
	uint32_t count;
	int64_t data_version;
	uint64_t reloads;
	struct tmr tmr;
};

static const char *sql_schema =
	"CREATE TABLE IF NOT EXISTS users ("
	" username   TEXT PRIMARY KEY,"
	" realm      TEXT NOT NULL,"
	" ha1_md5    TEXT NOT NULL,"
	" ha1_sha256 TEXT NOT NULL,"
	" created_at INTEGER NOT NULL);"
	"CREATE TABLE IF NOT EXISTS secrets ("
	" name  TEXT PRIMARY KEY,"
	" value BLOB NOT NULL)";


static int sql_err(int rc)
{
	switch (rc & 0xff) {

	case SQLITE_OK:
	case SQLITE_ROW:
	case SQLITE_DONE:     return 0;
	case SQLITE_NOMEM:    return ENOMEM;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:   return EBUSY;
	case SQLITE_READONLY: return EROFS;
	case SQLITE_PERM:
	case SQLITE_AUTH:     return EACCES;
	case SQLITE_CANTOPEN: return ENOENT;
	case SQLITE_CONSTRAINT:
	case SQLITE_MISUSE:
	case SQLITE_RANGE:    return EINVAL;
	default:              return EIO;
	}
}


static void user_destructor(void *arg)
{
	struct auth_user *usr = arg;

	hash_unlink(&usr->le);
	mem_deref(usr->name);
	mem_deref(usr->realm);
	OPENSSL_cleanse(usr->ha1_md5, sizeof(usr->ha1_md5));
	OPENSSL_cleanse(usr->ha1_sha256, sizeof(usr->ha1_sha256));
}


static void users_destructor(void *arg)
{
	struct auth_users *u = arg;

	tmr_cancel(&u->tmr);
	hash_flush(u->cache);
	mem_deref(u->cache);
	sqlite3_finalize(u->st_version);
	sqlite3_close(u->db);
	mem_deref(u->path);
}


static uint32_t hash_size(uint32_t n)
{
	uint32_t sz = 64;

	while (sz < n / 2 && sz < 65536)
		sz <<= 1;

	return sz;
}


static bool user_cmp(struct le *le, void *arg)
{
	const struct auth_user *usr = le->data;
	const struct pl *name = arg;

	return 0 == pl_strcmp(name, usr->name);
}


static const struct auth_user *users_find(const struct auth_users *u,
					  const struct pl *name)
{
	if (!u || !u->cache || !pl_isset(name))
		return NULL;

	return list_ledata(hash_lookup(u->cache,
				       hash_joaat((const uint8_t *)name->p,
						  name->l),
				       user_cmp, (void *)name));
}


static const char *col_text(sqlite3_stmt *st, int i)
{
	const unsigned char *s = sqlite3_column_text(st, i);

	return s ? (const char *)s : "";
}


/* Read the whole table into a new cache and swap it in; on error the
 * old cache stays (a locked database retries at the next poll). */
static int cache_load(struct auth_users *u)
{
	sqlite3_stmt *st = NULL;
	struct hash *h = NULL;
	uint32_t n = 0, rows = 0;
	int rc, err;

	rc = sqlite3_prepare_v2(u->db, "SELECT count(*) FROM users", -1,
				&st, NULL);
	if (rc == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
		rows = (uint32_t)sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	st = NULL;

	err = hash_alloc(&h, hash_size(rows));
	if (err)
		goto out;

	rc = sqlite3_prepare_v2(u->db, "SELECT username, realm, ha1_md5, "
				"ha1_sha256 FROM users", -1, &st, NULL);
	if (rc != SQLITE_OK) {
		err = sql_err(rc);
		goto out;
	}

	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *name  = col_text(st, 0);
		const char *realm = col_text(st, 1);
		const char *md5   = col_text(st, 2);
		const char *sha   = col_text(st, 3);
		struct auth_user *usr;

		if (!*name || strlen(md5) != MD5_HEX || !is_hex(md5, MD5_HEX)
		    || strlen(sha) != SHA256_HEX || !is_hex(sha, SHA256_HEX)) {
			slog(LOG_WARN, "auth", "user_skipped", NULL,
			     "user=%H reason=bad_ha1", log_q, name);
			continue;
		}

		usr = mem_zalloc(sizeof(*usr), user_destructor);
		if (!usr) {
			err = ENOMEM;
			goto out;
		}

		err  = str_dup(&usr->name, name);
		err |= str_dup(&usr->realm, realm);
		if (err) {
			mem_deref(usr);
			err = ENOMEM;
			goto out;
		}

		str_ncpy(usr->ha1_md5, md5, sizeof(usr->ha1_md5));
		str_ncpy(usr->ha1_sha256, sha, sizeof(usr->ha1_sha256));

		hash_append(h, hash_joaat((const uint8_t *)usr->name,
					  strlen(usr->name)),
			    &usr->le, usr);
		++n;
	}

	if (rc != SQLITE_DONE) {
		err = sql_err(rc);
		goto out;
	}

	hash_flush(u->cache);
	mem_deref(u->cache);
	u->cache = h;
	h = NULL;
	u->count = n;
	++u->reloads;

 out:
	sqlite3_finalize(st);
	if (h) {
		hash_flush(h);
		mem_deref(h);
	}
	if (err)
		slog(LOG_WARN, "auth", "users_load_failed", NULL,
		     "db=%H err=%m sqlite=%H", log_q, u->path, err,
		     log_q, sqlite3_errmsg(u->db));

	return err;
}


static int data_version(struct auth_users *u, int64_t *v)
{
	int rc;

	rc = sqlite3_step(u->st_version);
	if (rc == SQLITE_ROW)
		*v = sqlite3_column_int64(u->st_version, 0);
	(void)sqlite3_reset(u->st_version);

	return rc == SQLITE_ROW ? 0 : sql_err(rc == SQLITE_DONE ?
					      SQLITE_ERROR : rc);
}


int auth_users_refresh(struct auth_users *u)
{
	int64_t v = 0;
	int err;

	if (!u || !u->st_version)
		return EINVAL;

	err = data_version(u, &v);
	if (err)
		return err;

	if (v == u->data_version)
		return 0;

	err = cache_load(u);
	if (err)
		return err;

	u->data_version = v;
	slog(LOG_INFO, "auth", "users_reloaded", NULL, "db=%H count=%u",
	     log_q, u->path, u->count);

	return 0;
}


static void poll_handler(void *arg)
{
	struct auth_users *u = arg;

	tmr_start(&u->tmr, POLL_MS, poll_handler, u);
	(void)auth_users_refresh(u);
}


/* watch: the server's handle (cache + data_version poll on a libre
 * timer); without it, the CLI's (storage only, no libre loop needed).
 * errbuf, if set, gets SQLite's message on failure. */
static int users_open(struct auth_users **up, const char *dbpath,
		      bool watch, char *errbuf, size_t errsz)
{
	struct auth_users *u;
	int rc, err;

	if (!up || !dbpath || !*dbpath)
		return EINVAL;

	u = mem_zalloc(sizeof(*u), users_destructor);
	if (!u)
		return ENOMEM;

	tmr_init(&u->tmr);

	err = str_dup(&u->path, dbpath);
	if (err)
		goto out;

	rc = sqlite3_open_v2(dbpath, &u->db, SQLITE_OPEN_READWRITE |
			     SQLITE_OPEN_CREATE, NULL);
	if (rc != SQLITE_OK) {
		err = sql_err(rc);
		goto out;
	}

	(void)sqlite3_busy_timeout(u->db, watch ? BUSY_LOOP_MS : BUSY_CLI_MS);

	/* WAL: the server reads while the CLI (or the location store)
	 * writes; the mode is persistent in the file, so this is a no-op
	 * once any connection has set it. */
	rc = sqlite3_exec(u->db, "PRAGMA journal_mode=WAL", NULL, NULL,
			  NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(u->db, sql_schema, NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		err = sql_err(rc);
		goto out;
	}

	if (!watch)
		goto out;

	rc = sqlite3_prepare_v2(u->db, "PRAGMA data_version", -1,
				&u->st_version, NULL);
	if (rc != SQLITE_OK) {
		err = sql_err(rc);
		goto out;
	}

	err = data_version(u, &u->data_version);
	if (err)
		goto out;

	err = cache_load(u);
	if (err)
		goto out;

	tmr_start(&u->tmr, POLL_MS, poll_handler, u);

 out:
	if (err) {
		if (errbuf)
			(void)re_snprintf(errbuf, errsz, "%s",
					  u->db ? sqlite3_errmsg(u->db)
					  : strerror(err));
		mem_deref(u);
	}
	else {
		*up = u;
	}

	return err;
}


int auth_users_open(struct auth_users **up, const char *dbpath)
{
	char msg[256] = "";
	int err;

	err = users_open(up, dbpath, true, msg, sizeof(msg));
	if (err && err != EINVAL)
		slog(LOG_ERROR, "auth", "users_open_failed", NULL,
		     "db=%H err=%m sqlite=%H", log_q, dbpath ? dbpath : "",
		     err, log_q, msg);

	return err;
}


/* our own writes do not move data_version (it counts other
 * connections' commits): reload the cache ourselves */
static void own_write(struct auth_users *u)
{
	if (u->st_version)
		(void)cache_load(u);
}


int auth_user_add(struct auth_users *u, const char *user, const char *realm,
		  const char *password)
{
	char md5[HEX_MAX], sha[HEX_MAX];
	sqlite3_stmt *st = NULL;
	int rc, err;

	if (!u || !password)
		return EINVAL;

	if (!realm)
		realm = realm_default;

	if (!name_valid(user, AUTH_USER_MAX - 1) ||
	    !name_valid(realm, REALM_MAX) ||
	    !*password || strlen(password) > PASSWORD_MAX)
		return EINVAL;

	err  = ha1_make(md5, AUTH_ALG_MD5, user, realm, password);
	err |= ha1_make(sha, AUTH_ALG_SHA256, user, realm, password);
	if (err) {
		err = EPROTO;
		goto out;
	}

	rc = sqlite3_prepare_v2(u->db, "INSERT OR REPLACE INTO users "
				"(username, realm, ha1_md5, ha1_sha256, "
				"created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
				-1, &st, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_text(st, 1, user, -1, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_text(st, 2, realm, -1, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_text(st, 3, md5, -1, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_text(st, 4, sha, -1, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 5, (sqlite3_int64)time(NULL));
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);

	err = sql_err(rc);
	if (err)
		goto out;

	own_write(u);

 out:
	sqlite3_finalize(st);
	OPENSSL_cleanse(md5, sizeof(md5));
	OPENSSL_cleanse(sha, sizeof(sha));

	return err;
}


int auth_user_del(struct auth_users *u, const char *user)
{
	sqlite3_stmt *st = NULL;
	int rc, err;

	if (!u || !user)
		return EINVAL;

	rc = sqlite3_prepare_v2(u->db, "DELETE FROM users WHERE username = ?1",
				-1, &st, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_text(st, 1, user, -1, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);

	err = sql_err(rc);
	if (err)
		goto out;

	if (sqlite3_changes(u->db) == 0) {
		err = ENOENT;
		goto out;
	}

	own_write(u);

 out:
	sqlite3_finalize(st);

	return err;
}


int auth_user_list(struct auth_users *u, auth_user_h *h, void *arg)
{
	sqlite3_stmt *st = NULL;
	int rc, err = 0;

	if (!u || !h)
		return EINVAL;

	rc = sqlite3_prepare_v2(u->db, "SELECT username, realm, created_at "
				"FROM users ORDER BY username", -1, &st, NULL);
	if (rc != SQLITE_OK) {
		err = sql_err(rc);
		goto out;
	}

	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		err = h(col_text(st, 0), col_text(st, 1),
			(int64_t)sqlite3_column_int64(st, 2), arg);
		if (err)
			goto out;
	}

	err = sql_err(rc);

 out:
	sqlite3_finalize(st);

	return err;
}


uint32_t auth_users_count(const struct auth_users *u)
{
	return u ? u->count : 0;
}


int auth_users_debug(struct re_printf *pf, const struct auth_users *u)
{
	if (!u)
		return 0;

	return re_hprintf(pf, "db=%H users=%u data_version=%lld reloads=%llu",
			  log_q, u->path, u->count,
			  (long long)u->data_version,
			  (unsigned long long)u->reloads);
}


/* The server's secret called name, n bytes: made once (random) and kept
 * in the secrets table, so that every process on this database shares
 * it. EPROTO if a stored one has another size. */
static int users_secret(struct auth_users *u, const char *name,
			uint8_t *secret, size_t n)
{
	sqlite3_stmt *st = NULL;
	uint8_t fresh[64];
	int rc, err;

	if (n > sizeof(fresh) || 1 != RAND_bytes(fresh, (int)n))
		return EPROTO;

	/* a read-only database may hold one already: failing to insert
	 * is only an error when the SELECT finds none */
	rc = sqlite3_prepare_v2(u->db, "INSERT OR IGNORE INTO secrets "
				"(name, value) VALUES (?1, ?2)", -1, &st,
				NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_blob(st, 2, fresh, (int)n, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		(void)sqlite3_step(st);
	sqlite3_finalize(st);
	st = NULL;

	rc = sqlite3_prepare_v2(u->db, "SELECT value FROM secrets WHERE "
				"name = ?1", -1, &st, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);

	if (rc != SQLITE_ROW) {
		err = rc == SQLITE_DONE ? ENOENT : sql_err(rc);
		goto out;
	}

	if ((size_t)sqlite3_column_bytes(st, 0) != n) {
		err = EPROTO;
		goto out;
	}

	memcpy(secret, sqlite3_column_blob(st, 0), n);
	err = 0;

 out:
	if (err)
		slog(LOG_ERROR, "auth", "secret_failed", NULL,
		     "db=%H name=%s err=%m sqlite=%H", log_q, u->path, name,
		     err, log_q, sqlite3_errmsg(u->db));
	sqlite3_finalize(st);
	OPENSSL_cleanse(fresh, sizeof(fresh));

	return err;
}


/* ------------------------------------------------------------------ *
 * Nonces and the nonce-count table
 * ------------------------------------------------------------------ */

/* The highest nc of one nonce, from its first successful use */
struct ncent {
	struct le he;      /* in auth.nct, keyed by the salt */
	struct le fe;      /* in auth.ncfifo, oldest first   */
	uint64_t ts;
	uint64_t salt;
	uint32_t nc;
};

struct auth {
	char *realm;
	uint64_t ttl_ms;
	uint32_t max_nonces;
	unsigned algs;
	struct auth_users *users;
	uint8_t secret[SECRET_SIZE];
	uint32_t epoch;      /* this process's, in every nonce it makes */
	struct authguard *guard;
	EVP_MAC_CTX *hmac;   /* HMAC-SHA256 keyed with secret, re-inited
			      * per nonce (a one-shot HMAC() costs ~20,000
			      * instructions: fetch, context, key) */
	char dummy_md5[MD5_HEX + 1];       /* HA1s of unknown users */
	char dummy_sha256[SHA256_HEX + 1];
	struct hash *nct;
	struct list ncfifo;
	uint32_t ncn;
	uint64_t nc_mark;    /* newest ts evicted from the nc table */
	struct {
		uint64_t challenges, ok, failed, stale, replay, bad;
		uint64_t foreign;    /* nonces not ours: re-challenged */
	} stats;
};


static uint64_t now_ms(void)
{
	struct timespec ts;

	(void)clock_gettime(CLOCK_MONOTONIC, &ts);

	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}


static void put_be64(uint8_t *p, uint64_t v)
{
	int i;

	for (i = 7; i >= 0; i--) {
		p[i] = (uint8_t)v;
		v >>= 8;
	}
}


static uint64_t get_be64(const uint8_t *p)
{
	uint64_t v = 0;
	int i;

	for (i = 0; i < 8; i++)
		v = v << 8 | p[i];

	return v;
}


/* mac = HMAC-SHA256(secret, head || realm), truncated */
static int nonce_mac(uint8_t *mac, const struct auth *a, const uint8_t *head)
{
	uint8_t md[EVP_MAX_MD_SIZE];
	size_t mdlen = 0;

	/* a NULL key: the same key again, a fresh HMAC state */
	if (1 != EVP_MAC_init(a->hmac, NULL, 0, NULL) ||
	    1 != EVP_MAC_update(a->hmac, head, TS_SIZE + SALT_SIZE) ||
	    1 != EVP_MAC_update(a->hmac, (const uint8_t *)a->realm,
				strlen(a->realm)) ||
	    1 != EVP_MAC_final(a->hmac, md, &mdlen, sizeof(md)) ||
	    mdlen < MAC_SIZE)
		return EPROTO;

	memcpy(mac, md, MAC_SIZE);

	return 0;
}


static int nonce_make(char *hex, const struct auth *a)
{
	uint8_t raw[NONCE_RAW];
	int err;

	put_be64(raw, now_ms());
	put_be64(raw + TS_SIZE, (uint64_t)a->epoch << 32 | rand_u32());

	err = nonce_mac(raw + TS_SIZE + SALT_SIZE, a, raw);
	if (err)
		return err;

	hex_encode(hex, raw, sizeof(raw));

	return 0;
}


/* 0 if the nonce is one of ours (ts and salt set), else EBADMSG */
static int nonce_decode(const struct auth *a, const struct pl *nonce,
			uint64_t *ts, uint64_t *salt)
{
	uint8_t raw[NONCE_RAW], mac[MAC_SIZE];
	size_t i;

	if (nonce->l != NONCE_HEX || !is_hex(nonce->p, nonce->l))
		return EBADMSG;

	for (i = 0; i < NONCE_RAW; i++)
		raw[i] = (uint8_t)(hex_val(nonce->p[2*i]) << 4 |
				   hex_val(nonce->p[2*i + 1]));

	if (nonce_mac(mac, a, raw) ||
	    CRYPTO_memcmp(mac, raw + TS_SIZE + SALT_SIZE, MAC_SIZE))
		return EBADMSG;

	*ts   = get_be64(raw);
	*salt = get_be64(raw + TS_SIZE);

	return 0;
}


static void ncent_destructor(void *arg)
{
	struct ncent *e = arg;

	hash_unlink(&e->he);
	list_unlink(&e->fe);
}


struct nckey {
	uint64_t ts;
	uint64_t salt;
};


static bool ncent_cmp(struct le *le, void *arg)
{
	const struct ncent *e = le->data;
	const struct nckey *k = arg;

	return e->ts == k->ts && e->salt == k->salt;
}


static void nc_evict(struct auth *a, struct ncent *e)
{
	if (e->ts > a->nc_mark)
		a->nc_mark = e->ts;
	--a->ncn;
	mem_deref(e);
}


/* Note nc for a nonce whose response checked out.
 * Returns AUTH_OK, AUTH_REPLAY or AUTH_STALE (maybe evicted). */
static int nc_note(enum auth_status *status, struct auth *a, uint64_t ts,
		   uint64_t salt, uint32_t nc)
{
	struct nckey k = {ts, salt};
	struct ncent *e;
	uint64_t now = now_ms();

	e = list_ledata(hash_lookup(a->nct, (uint32_t)salt, ncent_cmp, &k));
	if (e) {
		if (nc <= e->nc) {
			*status = AUTH_REPLAY;
			return 0;
		}
		e->nc = nc;
		*status = AUTH_OK;
		return 0;
	}

	if (ts <= a->nc_mark) {
		*status = AUTH_STALE;
		return 0;
	}

	/* expire, then make room: oldest first */
	while (a->ncfifo.head) {
		struct ncent *old = a->ncfifo.head->data;

		if (old->ts + a->ttl_ms > now && a->ncn < a->max_nonces)
			break;
		nc_evict(a, old);
	}

	e = mem_zalloc(sizeof(*e), ncent_destructor);
	if (!e)
		return ENOMEM;

	e->ts = ts;
	e->salt = salt;
	e->nc = nc;
	hash_append(a->nct, (uint32_t)salt, &e->he, e);
	list_append(&a->ncfifo, &e->fe, e);
	++a->ncn;

	*status = AUTH_OK;

	return 0;
}


/* ------------------------------------------------------------------ *
 * Digest credentials: parsing (RFC 7616 §3.4, RFC 3261 §25.1)
 * ------------------------------------------------------------------ */

struct cred {
	struct pl username, realm, nonce, uri, response, algorithm;
	struct pl cnonce, nc, qop, userhash, username_ext;
	struct pl opaque, stale;            /* challenges (client side) */
	char buf[CRED_SCRATCH];
	size_t used;
};


static bool is_lws(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}


static bool is_token(char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9'))
		return true;

	return c != '\0' && strchr("-.!%*_+`'~", c) != NULL;
}


static struct pl *cred_field(struct cred *c, const struct pl *name)
{
	static const struct {
		const char *name;
		size_t off;
	} fields[] = {
		{"username",  offsetof(struct cred, username)},
		{"realm",     offsetof(struct cred, realm)},
		{"nonce",     offsetof(struct cred, nonce)},
		{"uri",       offsetof(struct cred, uri)},
		{"response",  offsetof(struct cred, response)},
		{"algorithm", offsetof(struct cred, algorithm)},
		{"cnonce",    offsetof(struct cred, cnonce)},
		{"nc",        offsetof(struct cred, nc)},
		{"qop",       offsetof(struct cred, qop)},
		{"userhash",  offsetof(struct cred, userhash)},
		{"username*", offsetof(struct cred, username_ext)},
		{"opaque",    offsetof(struct cred, opaque)},
		{"stale",     offsetof(struct cred, stale)},
	};
	size_t i;

	for (i = 0; i < ARRAY_SIZE(fields); i++) {
		if (!pl_strcasecmp(name, fields[i].name))
			return (struct pl *)(void *)((char *)c +
						     fields[i].off);
	}

	return NULL;
}


/* Parse one credentials header value into c; values are copied into
 * c->buf, quoted-strings unescaped. ENOENT: not the Digest scheme;
 * EBADMSG: malformed (syntax, duplicate parameter, too long). */
static int cred_parse(struct cred *c, const struct pl *val)
{
	const char *p = val->p, *end = val->p + val->l;
	bool first = true;

	memset(c, 0, offsetof(struct cred, buf));
	c->used = 0;

	while (p < end && is_lws(*p))
		++p;

	if ((size_t)(end - p) < 6 || strncasecmp(p, "Digest", 6))
		return ENOENT;
	p += 6;
	if (p < end && !is_lws(*p))
		return ENOENT;

	for (;;) {
		struct pl name, *field;
		bool comma = false;
		char *out;

		while (p < end && (is_lws(*p) || *p == ',')) {
			comma |= *p == ',';
			++p;
		}
		if (p == end)
			break;
		if (!first && !comma)
			return EBADMSG;
		first = false;

		name.p = p;
		while (p < end && is_token(*p))
			++p;
		name.l = p - name.p;
		if (!name.l)
			return EBADMSG;

		while (p < end && is_lws(*p))
			++p;
		if (p == end || *p != '=')
			return EBADMSG;
		++p;
		while (p < end && is_lws(*p))
			++p;
		if (p == end)
			return EBADMSG;

		out = c->buf + c->used;

		if (*p == '"') {
			++p;
			for (;;) {
				if (p == end)
					return EBADMSG;   /* unterminated */
				if (*p == '"')
					break;
				if (*p == '\\' && ++p == end)
					return EBADMSG;
				if (c->used >= sizeof(c->buf))
					return EBADMSG;
				c->buf[c->used++] = *p++;
			}
			++p;
		}
		else {
			while (p < end && is_token(*p)) {
				if (c->used >= sizeof(c->buf))
					return EBADMSG;
				c->buf[c->used++] = *p++;
			}
			if (out == c->buf + c->used)
				return EBADMSG;
		}

		field = cred_field(c, &name);
		if (!field)
			continue;           /* unknown parameters: ignored */
		if (field->p)
			return EBADMSG;     /* each at most once */
		field->p = out;
		field->l = c->buf + c->used - out;
	}

	return 0;
}


/* algorithm parameter: absent means MD5 (RFC 7616 §3.3); 0 if unknown
 * (including the -sess variants, which we never offer) */
static enum auth_alg cred_alg(const struct cred *c)
{
	if (!c->algorithm.p || !pl_strcasecmp(&c->algorithm, "MD5"))
		return AUTH_ALG_MD5;
	if (!pl_strcasecmp(&c->algorithm, "SHA-256"))
		return AUTH_ALG_SHA256;

	return 0;
}


/* ------------------------------------------------------------------ *
 * URI comparison (RFC 3261 §19.1.4, the parts that matter here)
 * ------------------------------------------------------------------ */

struct uparam {
	struct pl name, val;
};


/* next ";name[=value]" of a uri-parameters string */
static bool uparam_next(struct pl *rest, struct uparam *prm)
{
	const char *p, *end;

	while (rest->l && rest->p[0] == ';')
		pl_advance(rest, 1);
	if (!rest->l)
		return false;

	p = rest->p;
	end = rest->p + rest->l;
	while (p < end && *p != ';')
		++p;

	prm->name.p = rest->p;
	prm->name.l = p - rest->p;
	prm->val = pl_null;
	{
		const char *eq = memchr(prm->name.p, '=', prm->name.l);
		if (eq) {
			prm->val.p = eq + 1;
			prm->val.l = p - (eq + 1);
			prm->name.l = eq - prm->name.p;
		}
	}

	pl_advance(rest, p - rest->p);

	return true;
}


static bool uparam_find(const struct pl *params, const struct pl *name,
			struct pl *val)
{
	struct pl rest = *params;
	struct uparam prm;

	while (uparam_next(&rest, &prm)) {
		if (!pl_casecmp(&prm.name, name)) {
			*val = prm.val;
			return true;
		}
	}

	return false;
}


static bool uparam_special(const struct pl *name)
{
	return !pl_strcasecmp(name, "user") ||
	       !pl_strcasecmp(name, "ttl") ||
	       !pl_strcasecmp(name, "method") ||
	       !pl_strcasecmp(name, "maddr") ||
	       !pl_strcasecmp(name, "transport");
}


/* every parameter of a that is also in b has the same value there; the
 * special ones (user, ttl, method, maddr, transport) must be in both */
static bool uparams_subset(const struct pl *a, const struct pl *b)
{
	struct pl rest = *a, val;
	struct uparam prm;

	while (uparam_next(&rest, &prm)) {
		if (!uparam_find(b, &prm.name, &val)) {
			if (uparam_special(&prm.name))
				return false;
			continue;
		}
		if (pl_casecmp(&prm.val, &val))
			return false;
	}

	return true;
}


static bool uri_equal(const struct pl *a, const struct pl *b)
{
	struct uri ua, ub;

	if (!pl_cmp(a, b))
		return true;

	if (uri_decode(&ua, a) || uri_decode(&ub, b))
		return false;

	return !pl_casecmp(&ua.scheme, &ub.scheme) &&
	       !pl_cmp(&ua.user, &ub.user) &&
	       !pl_cmp(&ua.password, &ub.password) &&
	       !pl_casecmp(&ua.host, &ub.host) &&
	       ua.port == ub.port &&
	       !pl_cmp(&ua.path, &ub.path) &&
	       uparams_subset(&ua.params, &ub.params) &&
	       uparams_subset(&ub.params, &ua.params) &&
	       !pl_cmp(&ua.headers, &ub.headers);
}


/* ------------------------------------------------------------------ *
 * The verifier
 * ------------------------------------------------------------------ */

void auth_config_default(struct auth_config *cfg)
{
	if (!cfg)
		return;

	memset(cfg, 0, sizeof(*cfg));
	cfg->realm      = realm_default;
	cfg->nonce_ttl  = AUTH_NONCE_TTL;
	cfg->max_nonces = AUTH_NONCES_MAX;
	cfg->algs       = AUTH_ALG_SHA256 | AUTH_ALG_MD5;
}


static void auth_destructor(void *arg)
{
	struct auth *a = arg;

	mem_deref(a->guard);
	list_flush(&a->ncfifo);
	mem_deref(a->nct);
	mem_deref(a->users);
	mem_deref(a->realm);
	EVP_MAC_CTX_free(a->hmac);
	OPENSSL_cleanse(a->secret, sizeof(a->secret));
}


/* nonce_mac() relies on EVP_MAC_init(NULL key) keeping the key: checked
 * once against the one-shot HMAC(), twice in a row, so that an OpenSSL
 * that behaved otherwise is refused at start (a MAC under another key
 * would make nonces forgeable), not found out in the field */
static int hmac_selftest(const struct auth *a)
{
	uint8_t head[TS_SIZE + SALT_SIZE], data[sizeof(head) + REALM_MAX];
	uint8_t mac[MAC_SIZE], md[EVP_MAX_MD_SIZE];
	unsigned mdlen = 0;
	size_t rlen = strlen(a->realm);
	int i;

	memset(head, 0x5a, sizeof(head));
	memcpy(data, head, sizeof(head));
	memcpy(data + sizeof(head), a->realm, rlen);
	if (!HMAC(EVP_sha256(), a->secret, sizeof(a->secret), data,
		  sizeof(head) + rlen, md, &mdlen) || mdlen < MAC_SIZE)
		return EPROTO;

	for (i = 0; i < 2; i++) {
		if (nonce_mac(mac, a, head) ||
		    CRYPTO_memcmp(mac, md, MAC_SIZE))
			return EPROTO;
	}

	return 0;
}


static int hmac_new(struct auth *a)
{
	char digest[] = "SHA256";
	OSSL_PARAM params[2];
	EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);

	if (!mac)
		return EPROTO;

	a->hmac = EVP_MAC_CTX_new(mac);
	EVP_MAC_free(mac);                   /* the context holds it */
	if (!a->hmac)
		return ENOMEM;

	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
						     digest, 0);
	params[1] = OSSL_PARAM_construct_end();

	if (1 != EVP_MAC_init(a->hmac, a->secret, sizeof(a->secret), params))
		return EPROTO;

	return hmac_selftest(a);
}


int auth_alloc(struct auth **ap, struct auth_users *users,
	       const struct auth_config *cfg)
{
	struct auth_config def;
	uint8_t rnd[SHA256_HEX / 2];
	struct auth *a;
	int err;

	if (!ap)
		return EINVAL;

	if (!cfg) {
		auth_config_default(&def);
		cfg = &def;
	}

	if (!name_valid(cfg->realm, REALM_MAX) || !cfg->nonce_ttl ||
	    !cfg->max_nonces ||
	    !(cfg->algs & (AUTH_ALG_MD5 | AUTH_ALG_SHA256)) ||
	    (cfg->algs & ~(unsigned)(AUTH_ALG_MD5 | AUTH_ALG_SHA256)))
		return EINVAL;

	a = mem_zalloc(sizeof(*a), auth_destructor);
	if (!a)
		return ENOMEM;

	a->ttl_ms     = (uint64_t)cfg->nonce_ttl * 1000;
	a->max_nonces = cfg->max_nonces;
	a->algs       = cfg->algs;
	a->users      = mem_ref(users);

	err = str_dup(&a->realm, cfg->realm);
	if (err)
		goto out;

	err = hash_alloc(&a->nct, hash_size(cfg->max_nonces));
	if (err)
		goto out;

	if (users)
		err = users_secret(users, "nonce", a->secret,
				   sizeof(a->secret));
	else if (1 != RAND_bytes(a->secret, sizeof(a->secret)))
		err = EPROTO;
	if (err)
		goto out;

	if (1 != RAND_bytes(rnd, sizeof(rnd))) {
		err = EPROTO;
		goto out;
	}

	do {
		a->epoch = rand_u32();
	} while (!a->epoch);

	if (!cfg->no_guard) {
		err = authguard_alloc(&a->guard, cfg->guard);
		if (err)
			goto out;
	}

	err = hmac_new(a);
	if (err)
		goto out;

	/* never equal to a real HA1 but costs the same to use */
	hex_encode(a->dummy_sha256, rnd, SHA256_HEX / 2);
	hex_encode(a->dummy_md5, rnd, MD5_HEX / 2);

 out:
	OPENSSL_cleanse(rnd, sizeof(rnd));
	if (err)
		mem_deref(a);
	else
		*ap = a;

	return err;
}


const char *auth_realm(const struct auth *a)
{
	return a ? a->realm : NULL;
}


uint32_t auth_nonces(const struct auth *a)
{
	return a ? a->ncn : 0;
}


struct authguard *auth_guard(const struct auth *a)
{
	return a ? a->guard : NULL;
}


const char *auth_status_name(enum auth_status st)
{
	switch (st) {

	case AUTH_OK:             return "ok";
	case AUTH_NO_CREDENTIALS: return "no_credentials";
	case AUTH_STALE:          return "stale";
	case AUTH_FAILED:         return "failed";
	case AUTH_REPLAY:         return "replay";
	case AUTH_BAD:            return "bad";
	default:                  return "?";
	}
}


int auth_challenge_encode(struct mbuf *mb, struct auth *a, bool proxy,
			  bool stale)
{
	static const enum auth_alg order[] = {AUTH_ALG_SHA256, AUTH_ALG_MD5};
	char nonce[NONCE_HEX + 1];
	size_t i;
	int err;

	if (!mb || !a)
		return EINVAL;

	err = nonce_make(nonce, a);
	if (err)
		return err;

	for (i = 0; i < ARRAY_SIZE(order); i++) {
		if (!(a->algs & order[i]))
			continue;

		err = mbuf_printf(mb, "%s: Digest realm=\"%s\", "
				  "nonce=\"%s\", algorithm=%s, qop=\"auth\""
				  "%s\r\n",
				  proxy ? "Proxy-Authenticate" :
				  "WWW-Authenticate",
				  a->realm, nonce, auth_alg_name(order[i]),
				  stale ? ", stale=true" : "");
		if (err)
			return err;
	}

	++a->stats.challenges;

	return 0;
}


int auth_challenge(struct auth *a, struct stack_req *req, bool proxy,
		   bool stale)
{
	struct mbuf *mb;
	int err;

	if (!a || !req)
		return EINVAL;

	mb = mbuf_alloc(512);
	if (!mb)
		return ENOMEM;

	err = auth_challenge_encode(mb, a, proxy, stale);
	if (!err)
		err = mbuf_write_u8(mb, 0);
	if (err)
		goto out;

	err = stack_req_reply(req, proxy ? 407 : 401,
			      proxy ? "Proxy Authentication Required"
			      : "Unauthorized",
			      (const char *)mb->buf, NULL, NULL, 0);

 out:
	mem_deref(mb);

	return err;
}


/* What sip_msg_hdr_apply() found among the credentials headers */
struct pick {
	const struct auth *a;
	struct cred *c;
	const struct sip_hdr *sha256;
	const struct sip_hdr *md5;
	bool bad;       /* a malformed Digest header (maybe ours) */
};


static bool pick_handler(const struct sip_hdr *hdr, const struct sip_msg *msg,
			 void *arg)
{
	struct pick *pk = arg;
	enum auth_alg alg;
	int err;
	(void)msg;

	err = cred_parse(pk->c, &hdr->val);
	if (err == ENOENT)
		return false;          /* another scheme: not ours */
	if (err || !pk->c->realm.p) {
		pk->bad = true;
		return false;
	}

	if (pl_strcmp(&pk->c->realm, pk->a->realm))
		return false;          /* another realm (another proxy's) */

	alg = cred_alg(pk->c) & pk->a->algs;
	if (alg == AUTH_ALG_SHA256 && !pk->sha256)
		pk->sha256 = hdr;
	else if (alg == AUTH_ALG_MD5 && !pk->md5)
		pk->md5 = hdr;

	return false;
}


static void set_result(struct auth_result *res, enum auth_status st,
		       const char *reason)
{
	res->status = st;
	res->reason = reason;
}


/* Checks on the selected credentials that do not need the password;
 * NULL if fine, else the reason it is malformed. */
static const char *cred_malformed(const struct cred *c, enum auth_alg alg)
{
	if (!pl_isset(&c->username))
		return c->username_ext.p ? "username_ext_unsupported" :
			"username_missing";
	if (!c->nonce.p)
		return "nonce_missing";
	if (!pl_isset(&c->uri))
		return "uri_missing";
	if (!c->response.p)
		return "response_missing";
	if (c->response.l != alg_hexlen(alg) ||
	    !is_hex(c->response.p, c->response.l))
		return "response_malformed";
	if (c->userhash.p && pl_strcasecmp(&c->userhash, "false"))
		return "userhash_unsupported";
	if (!c->qop.p)
		return "qop_missing";
	if (pl_strcasecmp(&c->qop, "auth"))
		return "qop_unsupported";
	if (!c->nc.p)
		return "nc_missing";
	if (c->nc.l != 8 || !is_hex(c->nc.p, 8) || !pl_x32(&c->nc))
		return "nc_malformed";
	if (!pl_isset(&c->cnonce))
		return "cnonce_missing";

	return NULL;
}


int auth_check(struct auth *a, const struct sip_msg *msg, bool proxy,
	       struct auth_result *res)
{
	char ha2[HEX_MAX], expect[HEX_MAX], resp[HEX_MAX];
	const struct auth_user *usr;
	const struct sip_hdr *hdr;
	struct pick pk;
	struct cred *c = NULL;
	struct pl pv[6], ha1;
	uint64_t ts = 0, salt = 0;
	enum auth_status nst;
	enum auth_alg alg;
	const char *why;
	size_t i, n;
	bool match, checked = false;
	int err = 0;

	if (!a || !msg || !res)
		return EINVAL;

	memset(res, 0, sizeof(*res));
	set_result(res, AUTH_NO_CREDENTIALS, "no_credentials");

	c = mem_alloc(sizeof(*c), NULL);
	if (!c)
		return ENOMEM;

	memset(&pk, 0, sizeof(pk));
	pk.a = a;
	pk.c = c;
	(void)sip_msg_hdr_apply(msg, true, proxy ?
				SIP_HDR_PROXY_AUTHORIZATION :
				SIP_HDR_AUTHORIZATION, pick_handler, &pk);

	/* SHA-256 when the client sent both (RFC 8760 order) */
	hdr = pk.sha256 ? pk.sha256 : pk.md5;
	if (!hdr) {
		if (pk.bad) {
			set_result(res, AUTH_BAD, "malformed");
			++a->stats.bad;
		}
		goto out;
	}

	alg = pk.sha256 ? AUTH_ALG_SHA256 : AUTH_ALG_MD5;
	err = cred_parse(c, &hdr->val);
	if (err)
		goto out;              /* parsed fine a moment ago */

	res->alg = alg;
	n = min(c->username.l, sizeof(res->user) - 1);
	if (n)
		memcpy(res->user, c->username.p, n);
	res->user[n] = '\0';

	why = cred_malformed(c, alg);
	if (why) {
		set_result(res, AUTH_BAD, why);
		++a->stats.bad;
		goto out;
	}

	/* not our nonce: a fresh challenge, no password looked at */
	if (nonce_decode(a, &c->nonce, &ts, &salt)) {
		set_result(res, AUTH_NO_CREDENTIALS, "nonce_unknown");
		++a->stats.foreign;
		goto out;
	}

	if (a->guard && authguard_banned(a->guard, &msg->src)) {
		set_result(res, AUTH_FAILED, "banned");
		++a->stats.failed;
		goto out;
	}

	if (!uri_equal(&c->uri, &msg->ruri)) {
		set_result(res, AUTH_FAILED, "uri_mismatch");
		++a->stats.failed;
		goto out;
	}

	/* slowed (distributed guessing at this name): refused like a
	 * wrong password, unchecked */
	if (a->guard && !authguard_user_allowed(a->guard, &msg->src,
						 &c->username)) {
		set_result(res, AUTH_FAILED, "user_slowed");
		++a->stats.failed;
		goto out;
	}

	/* unknown users (or users of another realm) take the same path
	 * with an HA1 nobody knows */
	usr = users_find(a->users, &c->username);
	if (usr && strcmp(usr->realm, a->realm))
		usr = NULL;
	if (alg == AUTH_ALG_SHA256)
		pl_set_str(&ha1, usr ? usr->ha1_sha256 : a->dummy_sha256);
	else
		pl_set_str(&ha1, usr ? usr->ha1_md5 : a->dummy_md5);

	pv[0] = msg->met;
	pv[1] = c->uri;
	err = hash_join(ha2, alg, pv, 2);
	if (err)
		goto out;

	pv[0] = ha1;
	pv[1] = c->nonce;
	pv[2] = c->nc;
	pv[3] = c->cnonce;
	pv[4] = c->qop;
	pl_set_str(&pv[5], ha2);
	err = hash_join(expect, alg, pv, 6);
	if (err)
		goto out;

	for (i = 0; i < c->response.l; i++)
		resp[i] = (char)tolower((unsigned char)c->response.p[i]);
	resp[i] = '\0';

	checked = true;
	match = 0 == CRYPTO_memcmp(expect, resp, alg_hexlen(alg));
	if (!usr || !match) {
		set_result(res, AUTH_FAILED, usr ? "wrong_password" :
			   "unknown_user");
		++a->stats.failed;
		goto out;
	}

	/* the client knows the password: an old nonce is only stale */
	if ((uint32_t)(salt >> 32) != a->epoch) {
		set_result(res, AUTH_STALE, "nonce_previous");
		++a->stats.stale;
		goto out;
	}

	if (now_ms() - ts >= a->ttl_ms) {
		set_result(res, AUTH_STALE, "nonce_expired");
		++a->stats.stale;
		goto out;
	}

	err = nc_note(&nst, a, ts, salt, pl_x32(&c->nc));
	if (err)
		goto out;

	switch (nst) {

	case AUTH_REPLAY:
		set_result(res, AUTH_REPLAY, "nc_replay");
		++a->stats.replay;
		break;

	case AUTH_STALE:
		set_result(res, AUTH_STALE, "nonce_evicted");
		++a->stats.stale;
		break;

	default:
		set_result(res, AUTH_OK, "ok");
		++a->stats.ok;
		break;
	}

 out:
	if (!err && a->guard) {
		struct pl user;

		pl_set_str(&user, res->user);
		if (res->status == AUTH_FAILED || res->status == AUTH_BAD)
			authguard_failed(a->guard, &msg->src, &user, checked);
		else if (res->status == AUTH_OK)
			authguard_succeeded(a->guard, &msg->src, &user);
	}

	OPENSSL_cleanse(expect, sizeof(expect));
	mem_deref(c);

	return err;
}


int auth_require(struct auth *a, struct stack_req *req, bool proxy,
		 struct auth_result *res)
{
	const struct sip_msg *msg;
	struct auth_result tmp;
	int err;

	if (!a || !req)
		return EINVAL;

	if (!res)
		res = &tmp;

	msg = stack_req_msg(req);
	err = auth_check(a, msg, proxy, res);
	if (err) {
		slog(LOG_ERROR, "auth", "auth_error", &msg->callid,
		     "src=%J err=%m", &msg->src, err);
		(void)stack_req_reply(req, 500, "Server Internal Error",
				      NULL, NULL, NULL, 0);
		return err;
	}

	switch (res->status) {

	case AUTH_OK:
		slog(LOG_DEBUG, "auth", "auth_ok", &msg->callid,
		     "user=%H src=%J alg=%s", log_q, res->user, &msg->src,
		     auth_alg_name(res->alg));
		return 0;

	case AUTH_NO_CREDENTIALS:
		if (strcmp(res->reason, "no_credentials"))
			slog(LOG_DEBUG, "auth", "auth_rechallenge",
			     &msg->callid, "user=%H src=%J reason=%s", log_q,
			     res->user, &msg->src, res->reason);
		err = auth_challenge(a, req, proxy, false);
		break;

	case AUTH_STALE:
		slog(LOG_DEBUG, "auth", "auth_stale", &msg->callid,
		     "user=%H src=%J reason=%s", log_q, res->user,
		     &msg->src, res->reason);
		err = auth_challenge(a, req, proxy, true);
		break;

	case AUTH_REPLAY:
		slog_src(LOG_WARN, "auth", "auth_replay", &msg->src,
			 &msg->callid, "user=%H src=%J reason=%s", log_q,
			 res->user, &msg->src, res->reason);
		err = auth_challenge(a, req, proxy, true);
		break;

	case AUTH_BAD:
		slog_src(LOG_WARN, "auth", "auth_bad", &msg->src,
			 &msg->callid, "user=%H src=%J reason=%s", log_q,
			 res->user, &msg->src, res->reason);
		err = stack_req_reply(req, 400, "Bad Request", NULL, NULL,
				      NULL, 0);
		break;

	case AUTH_FAILED:
	default:
		slog_src(LOG_WARN, "auth", "auth_failed", &msg->src,
			 &msg->callid, "user=%H src=%J reason=%s", log_q,
			 res->user, &msg->src, res->reason);
		err = stack_req_reply(req, 403, "Forbidden", NULL, NULL,
				      NULL, 0);
		break;
	}

	return err ? err : EAUTH;
}


int auth_debug(struct re_printf *pf, const struct auth *a)
{
	if (!a)
		return 0;

	return re_hprintf(pf, "realm=%H algs=%s%s%s nonce_ttl=%llu "
			  "nonces=%u/%u challenges=%llu ok=%llu failed=%llu "
			  "stale=%llu replay=%llu bad=%llu foreign=%llu",
			  log_q, a->realm,
			  a->algs & AUTH_ALG_SHA256 ? "SHA-256" : "",
			  a->algs == (AUTH_ALG_SHA256 | AUTH_ALG_MD5) ?
			  "," : "",
			  a->algs & AUTH_ALG_MD5 ? "MD5" : "",
			  (unsigned long long)(a->ttl_ms / 1000),
			  a->ncn, a->max_nonces,
			  (unsigned long long)a->stats.challenges,
			  (unsigned long long)a->stats.ok,
			  (unsigned long long)a->stats.failed,
			  (unsigned long long)a->stats.stale,
			  (unsigned long long)a->stats.replay,
			  (unsigned long long)a->stats.bad,
			  (unsigned long long)a->stats.foreign);
}


/* ------------------------------------------------------------------ *
 * `sipstack user ...`
 * ------------------------------------------------------------------ */

static void cli_usage(FILE *f)
{
	(void)fprintf(f,
	"usage: sipstack user add USER PASSWORD [--realm REALM] [--db PATH]\n"
	"       sipstack user del USER [--db PATH]\n"
	"       sipstack user list [--db PATH]\n"
	"\n"
	"PASSWORD '-' reads it from standard input (so that it does not\n"
	"show in ps). Defaults: --db %s, --realm %s.\n"
	"Only digests are stored (HA1 for MD5 and SHA-256), never the\n"
	"password; a running server sees changes within a second.\n",
	db_default, realm_default);
}


/* one line from stdin, without echo when it is a terminal */
static int read_password(char *buf, size_t sz)
{
	struct termios old, noecho;
	bool tty = isatty(STDIN_FILENO);
	size_t n;
	int err = 0;

	if (tty) {
		(void)fputs("Password: ", stderr);
		(void)fflush(stderr);
		if (tcgetattr(STDIN_FILENO, &old) == 0) {
			noecho = old;
			noecho.c_lflag &= ~(tcflag_t)ECHO;
			(void)tcsetattr(STDIN_FILENO, TCSAFLUSH, &noecho);
		}
		else {
			tty = false;
		}
	}

	if (!fgets(buf, (int)sz, stdin))
		err = EIO;

	if (tty) {
		(void)tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
		(void)fputc('\n', stderr);
	}

	if (err)
		return err;

	n = strlen(buf);
	if (n && buf[n - 1] != '\n' && !feof(stdin))
		return E2BIG;
	while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		buf[--n] = '\0';

	return 0;
}


static int cli_print_user(const char *user, const char *realm,
			  int64_t created, void *arg)
{
	char when[32] = "?";
	time_t t = (time_t)created;
	struct tm tm;
	(void)arg;

	if (gmtime_r(&t, &tm))
		(void)strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);

	(void)printf("%s\t%s\t%s\n", user, realm, when);

	return 0;
}


int auth_user_cli(int argc, char *argv[])
{
	const char *db = db_default, *realm = realm_default;
	const char *pos[3] = {NULL, NULL, NULL};
	char pwbuf[PASSWORD_MAX + 2];
	char msg[256] = "";
	struct auth_users *u = NULL;
	const char *cmd, *password = NULL;
	int i, npos = 0, rc = 0, err;

	for (i = 1; i < argc; i++) {
		const char *arg = argv[i];

		if (!strcmp(arg, "-h") || !strcmp(arg, "--help")) {
			cli_usage(stdout);
			return 0;
		}
		else if (!strcmp(arg, "--db") || !strcmp(arg, "--realm")) {
			if (i + 1 >= argc) {
				(void)fprintf(stderr, "sipstack user: %s "
					      "needs a value\n", arg);
				return 2;
			}
			if (arg[2] == 'd')
				db = argv[++i];
			else
				realm = argv[++i];
		}
		else if (!strncmp(arg, "--db=", 5)) {
			db = arg + 5;
		}
		else if (!strncmp(arg, "--realm=", 8)) {
			realm = arg + 8;
		}
		else if (arg[0] == '-' && arg[1] == '-') {
			(void)fprintf(stderr, "sipstack user: unknown option "
				      "%s\n", arg);
			cli_usage(stderr);
			return 2;
		}
		else if (npos < (int)ARRAY_SIZE(pos)) {
			pos[npos++] = arg;
		}
		else {
			cli_usage(stderr);
			return 2;
		}
	}

	cmd = pos[0];
	if (!cmd ||
	    (!strcmp(cmd, "add") && npos != 3) ||
	    (!strcmp(cmd, "del") && npos != 2) ||
	    (!strcmp(cmd, "list") && npos != 1) ||
	    (strcmp(cmd, "add") && strcmp(cmd, "del") && strcmp(cmd, "list"))) {
		cli_usage(stderr);
		return 2;
	}

	if (!*db) {
		(void)fprintf(stderr, "sipstack user: empty --db path\n");
		return 2;
	}

	if (!strcmp(cmd, "add")) {
		if (!name_valid(pos[1], AUTH_USER_MAX - 1)) {
			(void)fprintf(stderr, "sipstack user: invalid user "
				      "name (1..%d characters, no control "
				      "characters, '\"' or '\\')\n",
				      AUTH_USER_MAX - 1);
			return 2;
		}
		if (!name_valid(realm, REALM_MAX)) {
			(void)fprintf(stderr, "sipstack user: invalid realm "
				      "(1..%d characters, no control "
				      "characters, '\"' or '\\')\n",
				      REALM_MAX);
			return 2;
		}

		password = pos[2];
		if (!strcmp(password, "-")) {
			err = read_password(pwbuf, sizeof(pwbuf));
			if (err) {
				(void)fprintf(stderr, "sipstack user: cannot "
					      "read the password from stdin"
					      "%s\n", err == E2BIG ?
					      " (too long)" : "");
				rc = 1;
				goto out;
			}
			password = pwbuf;
		}
		if (!*password || strlen(password) > PASSWORD_MAX) {
			(void)fprintf(stderr, "sipstack user: the password "
				      "must have 1..%d characters\n",
				      PASSWORD_MAX);
			rc = 2;
			goto out;
		}
	}

	err = users_open(&u, db, false, msg, sizeof(msg));
	if (err) {
		(void)fprintf(stderr, "sipstack user: cannot open %s: %s\n",
			      db, msg);
		rc = 1;
		goto out;
	}

	if (!strcmp(cmd, "add")) {
		err = auth_user_add(u, pos[1], realm, password);
		if (err) {
			(void)fprintf(stderr, "sipstack user: cannot save "
				      "user %s in %s: %s\n", pos[1], db,
				      sqlite3_errcode(u->db) != SQLITE_OK ?
				      sqlite3_errmsg(u->db) : strerror(err));
			rc = 1;
			goto out;
		}
		(void)printf("user %s saved in %s (realm %s)\n", pos[1], db,
			     realm);
	}
	else if (!strcmp(cmd, "del")) {
		err = auth_user_del(u, pos[1]);
		if (err == ENOENT) {
			(void)fprintf(stderr, "sipstack user: no user %s in "
				      "%s\n", pos[1], db);
			rc = 1;
			goto out;
		}
		if (err) {
			(void)fprintf(stderr, "sipstack user: cannot delete "
				      "user %s: %s\n", pos[1],
				      sqlite3_errmsg(u->db));
			rc = 1;
			goto out;
		}
		(void)printf("user %s deleted from %s\n", pos[1], db);
	}
	else {
		err = auth_user_list(u, cli_print_user, NULL);
		if (err) {
			(void)fprintf(stderr, "sipstack user: cannot list "
				      "users: %s\n", sqlite3_errmsg(u->db));
			rc = 1;
			goto out;
		}
	}

 out:
	OPENSSL_cleanse(pwbuf, sizeof(pwbuf));
	mem_deref(u);

	return rc;
}


/* ------------------------------------------------------------------ *
 * Client side: answering a challenge (RFC 7616 §3.4, RFC 8760)
 * ------------------------------------------------------------------ */

static bool qop_has_auth(const struct pl *qop)
{
	struct pl v = *qop, tok;

	while (!re_regex(v.p, v.l, "[^, \t]+", &tok)) {
		if (!pl_strcasecmp(&tok, "auth"))
			return true;
		v.l -= (tok.p + tok.l) - v.p;
		v.p = tok.p + tok.l;
	}

	return false;
}


static bool quotable(const struct pl *pl)
{
	return !pl->p || (!memchr(pl->p, '"', pl->l) &&
			  !memchr(pl->p, '\\', pl->l));
}


struct chpick {
	struct cred *c;
	enum auth_alg alg;
};


/* the first challenge (server preference order) we can answer */
static bool challenge_handler(const struct sip_hdr *hdr,
			      const struct sip_msg *msg, void *arg)
{
	struct chpick *pk = arg;
	enum auth_alg alg;
	(void)msg;

	if (cred_parse(pk->c, &hdr->val) || !pk->c->realm.p ||
	    !pk->c->nonce.p)
		return false;

	alg = cred_alg(pk->c);
	if (!alg || (pk->c->qop.p && !qop_has_auth(&pk->c->qop)))
		return false;

	if (!quotable(&pk->c->realm) || !quotable(&pk->c->nonce) ||
	    !quotable(&pk->c->opaque))
		return false;

	pk->alg = alg;

	return true;
}


int auth_client_answer(char **hdrp, const struct sip_msg *resp,
		       const char *met, const char *uri, const char *user,
		       const char *password, bool *stale)
{
	struct cred *c;
	struct chpick pk;
	char ha1[HEX_MAX], ha2[HEX_MAX], rsp[HEX_MAX], cnonce[17];
	struct pl pv[6];
	const bool proxy = resp && resp->scode == 407;
	int err;

	if (!hdrp || !resp || !met || !uri || !user || !password)
		return EINVAL;

	if (!name_valid(user, AUTH_USER_MAX) || strpbrk(uri, "\"\\\r\n"))
		return EINVAL;

	c = mem_zalloc(sizeof(*c), NULL);
	if (!c)
		return ENOMEM;

	pk.c = c;
	pk.alg = 0;
	if (!sip_msg_hdr_apply(resp, true, proxy ?
			       SIP_HDR_PROXY_AUTHENTICATE :
			       SIP_HDR_WWW_AUTHENTICATE,
			       challenge_handler, &pk)) {
		err = EPROTONOSUPPORT;   /* nothing we can answer */
		goto out;
	}

	if (stale)
		*stale = c->stale.p && !pl_strcasecmp(&c->stale, "true");

	{
		struct pl pu, pr, pp;

		pl_set_str(&pu, user);
		pr = c->realm;
		pl_set_str(&pp, password);
		pv[0] = pu;
		pv[1] = pr;
		pv[2] = pp;
		err = hash_join(ha1, pk.alg, pv, 3);
	}
	pl_set_str(&pv[0], met);
	pl_set_str(&pv[1], uri);
	err |= hash_join(ha2, pk.alg, pv, 2);

	(void)re_snprintf(cnonce, sizeof(cnonce), "%016llx", rand_u64());
	pl_set_str(&pv[0], ha1);
	pv[1] = c->nonce;
	if (c->qop.p) {
		pl_set_str(&pv[2], "00000001");
		pl_set_str(&pv[3], cnonce);
		pl_set_str(&pv[4], "auth");
		pl_set_str(&pv[5], ha2);
		err |= hash_join(rsp, pk.alg, pv, 6);
	}
	else {
		pl_set_str(&pv[2], ha2);
		err |= hash_join(rsp, pk.alg, pv, 3);
	}
	if (err)
		goto out;

	{
		static const struct pl none = PL_INIT;
		const struct pl *op = c->opaque.p ? &c->opaque : &none;

		err = re_sdprintf(hdrp, "%s: Digest username=\"%s\", "
				  "realm=\"%r\", nonce=\"%r\", uri=\"%s\", "
				  "response=\"%s\", algorithm=%s%s%s%s%s%r%s\r\n",
				  proxy ? "Proxy-Authorization" :
				  "Authorization", user, &c->realm, &c->nonce,
				  uri, rsp, auth_alg_name(pk.alg),
				  c->qop.p ? ", qop=auth, nc=00000001, "
				  "cnonce=\"" : "", c->qop.p ? cnonce : "",
				  c->qop.p ? "\"" : "",
				  c->opaque.p ? ", opaque=\"" : "", op,
				  c->opaque.p ? "\"" : "");
	}

 out:
	OPENSSL_cleanse(ha1, sizeof(ha1));
	mem_deref(c);

	return err;
}
