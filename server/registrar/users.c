/**
 * server/registrar/users.c  The users table and its cache
 *
 * Owns struct auth_users: the `users` table (user name, realm, both
 * HA1s, never a password) and the `secrets` table of the SQLite
 * database shared with the location store, and, for the server, an
 * in-memory cache of the users on the loop thread that a one-second
 * poll of PRAGMA data_version keeps up to date with other processes'
 * writes (`sipstack user add`). Exposes auth_users_*() and auth_user_*()
 * in registrar.h (USERS), and to the verifier (auth.c) through regpriv.h
 * a cached user's HA1s (auth_users_find) and the nonce secret
 * (auth_users_secret). Uses SQLite, the core's digest hashing for the
 * HA1s (sipcore.h, Digest), libre's hash table and one timer.
 *
 * HA1s are password equivalents: cache entries and buffers holding them
 * are wiped when freed (OPENSSL_cleanse).
 */
#include <string.h>
#include <time.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <sqlite3.h>
#include <re.h>
#include "registrar.h"
#include "regpriv.h"


enum {
	POLL_MS       = 1000,      /* PRAGMA data_version poll    */
	BUSY_LOOP_MS  = 1000,      /* busy_timeout of the server  */
	BUSY_CLI_MS   = 5000,      /* busy_timeout of the CLI     */
};


static int ha1_make(char *hex, enum auth_alg alg, const char *user,
		    const char *realm, const char *password)
{
	struct pl pv[3];

	pl_set_str(&pv[0], user);
	pl_set_str(&pv[1], realm);
	pl_set_str(&pv[2], password);

	return digest_hash(hex, alg, pv, ARRAY_SIZE(pv));
}


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


/* ------------------------------------------------------------------ *
 * The cache (the server's handle): all users, reloaded on change
 * ------------------------------------------------------------------ */

static bool user_cmp(struct le *le, void *arg)
{
	const struct auth_user *usr = le->data;
	const struct pl *name = arg;

	return 0 == pl_strcmp(name, usr->name);
}


const struct auth_user *auth_users_find(const struct auth_users *u,
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

	err = hash_alloc(&h, reg_hash_size(rows));
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

		if (!*name || strlen(md5) != DIGEST_MD5_HEX ||
		    !digest_is_hex(md5, DIGEST_MD5_HEX) ||
		    strlen(sha) != DIGEST_SHA256_HEX ||
		    !digest_is_hex(sha, DIGEST_SHA256_HEX)) {
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


/* ------------------------------------------------------------------ *
 * Opening: the server's handle and the direct one
 * ------------------------------------------------------------------ */

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


int auth_users_open_direct(struct auth_users **up, const char *dbpath,
			   char *errbuf, size_t errsz)
{
	return users_open(up, dbpath, false, errbuf, errsz);
}


/* ------------------------------------------------------------------ *
 * Rows: add, delete, list
 * ------------------------------------------------------------------ */

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
	char md5[DIGEST_HEX_MAX], sha[DIGEST_HEX_MAX];
	sqlite3_stmt *st = NULL;
	int rc, err;

	if (!u || !password)
		return EINVAL;

	if (!realm)
		realm = AUTH_REALM_DEFAULT;

	if (!digest_name_valid(user, AUTH_USER_MAX - 1) ||
	    !digest_name_valid(realm, AUTH_REALM_MAX) ||
	    !*password || strlen(password) > AUTH_PASSWORD_MAX)
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


const char *auth_users_errmsg(const struct auth_users *u)
{
	if (!u || !u->db || sqlite3_errcode(u->db) == SQLITE_OK)
		return NULL;

	return sqlite3_errmsg(u->db);
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


/* ------------------------------------------------------------------ *
 * Secrets (the verifier's nonce secret)
 * ------------------------------------------------------------------ */

/* The server's secret called name, n bytes: made once (random) and kept
 * in the secrets table, so that every process on this database shares
 * it. EPROTO if a stored one has another size. */
int auth_users_secret(struct auth_users *u, const char *name,
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
