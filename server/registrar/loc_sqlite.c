/**
 * server/registrar/loc_sqlite.c  Location backend "sqlite:PATH"
 *
 * Owns struct sqlite_be: one SQLite database file in WAL mode with
 * synchronous=FULL (a commit is on disk when COMMIT returns), the table
 * `bindings` keyed by (aor, contact), its schema version in PRAGMA
 * user_version, and the prepared statements. Exposes loc_backend_sqlite
 * in regpriv.h for location_open("sqlite:PATH"). Uses SQLite only (and
 * malloc, not libre's mem: apply and load run on the store's writer
 * thread, see struct loc_backend in registrar.h). The group commit is
 * the store's (location.c): apply() gets a whole batch and makes it one
 * BEGIN IMMEDIATE ... COMMIT.
 */
#include <string.h>
#include <stdlib.h>
#include <sqlite3.h>
#include <re.h>
#include "registrar.h"
#include "regpriv.h"


enum {
	SCHEMA_VERSION    = 1,      /* PRAGMA user_version               */
	BUSY_TIMEOUT_MS   = 5000,   /* wait for another writer           */
};


#define SQL_COLUMNS "aor, contact, expires_at, q, callid, cseq, " \
	"instance, reg_id, path, received, user_agent, updated_at"

static const char sql_schema[] =
	"CREATE TABLE IF NOT EXISTS bindings ("
	" aor        TEXT    NOT NULL,"   /* canonical AOR             */
	" contact    TEXT    NOT NULL,"   /* Contact URI, without <>   */
	" expires_at INTEGER NOT NULL,"   /* unix ms                   */
	" q          INTEGER NOT NULL,"   /* thousandths, 0..1000      */
	" callid     TEXT    NOT NULL,"
	" cseq       INTEGER NOT NULL,"
	" instance   TEXT,"               /* +sip.instance (RFC 5626)  */
	" reg_id     INTEGER NOT NULL DEFAULT 0,"
	" path       TEXT,"               /* Path values (RFC 3327)    */
	" received   TEXT,"               /* source of the REGISTER    */
	" user_agent TEXT,"
	" updated_at INTEGER NOT NULL,"   /* unix ms                   */
	" PRIMARY KEY (aor, contact)"
	") WITHOUT ROWID;";

struct sqlite_be {
	sqlite3 *db;
	sqlite3_stmt *upsert;
	sqlite3_stmt *del;
	sqlite3_stmt *sel_all;
	sqlite3_stmt *sel_aor;
	char errmsg[160];
};


static int sqlite_errno(int rc)
{
	switch (rc & 0xff) {

	case SQLITE_OK:       return 0;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:   return EBUSY;
	case SQLITE_FULL:     return ENOSPC;
	case SQLITE_READONLY: return EROFS;
	case SQLITE_NOMEM:    return ENOMEM;
	case SQLITE_CANTOPEN:
	case SQLITE_PERM:     return EACCES;
	default:              return EIO;
	}
}


static int sqlite_fail(struct sqlite_be *s, int rc)
{
	re_snprintf(s->errmsg, sizeof(s->errmsg), "%s",
		    s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));

	return sqlite_errno(rc);
}


static int sqlite_exec(struct sqlite_be *s, const char *sql)
{
	int rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);

	return rc == SQLITE_OK ? 0 : sqlite_fail(s, rc);
}


/* One-row, one-column query: the text of the result in buf */
static int sqlite_value(struct sqlite_be *s, const char *sql, char *buf,
			size_t sz)
{
	sqlite3_stmt *st = NULL;
	int rc, err = 0;

	rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
	if (rc != SQLITE_OK)
		return sqlite_fail(s, rc);

	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		const unsigned char *t = sqlite3_column_text(st, 0);
		str_ncpy(buf, t ? (const char *)t : "", sz);
	}
	else {
		err = sqlite_fail(s, rc);
	}

	sqlite3_finalize(st);

	return err;
}


static void sqlite_close(void *state)
{
	struct sqlite_be *s = state;

	if (!s)
		return;

	sqlite3_finalize(s->upsert);
	sqlite3_finalize(s->del);
	sqlite3_finalize(s->sel_all);
	sqlite3_finalize(s->sel_aor);
	sqlite3_close(s->db);
	free(s);
}


static int sqlite_schema(struct sqlite_be *s)
{
	char buf[32];
	long version;
	int err;

	err = sqlite_value(s, "PRAGMA user_version", buf, sizeof(buf));
	if (err)
		return err;

	version = strtol(buf, NULL, 10);
	if (version == SCHEMA_VERSION)
		return 0;

	if (version > SCHEMA_VERSION) {
		re_snprintf(s->errmsg, sizeof(s->errmsg), "schema version "
			    "%ld is newer than ours (%d)", version,
			    SCHEMA_VERSION);
		return ENOTSUP;
	}

	/* version 0: a new database (or one made by hand: keep it) */
	err = sqlite_exec(s, "BEGIN IMMEDIATE");
	if (err)
		return err;

	err = sqlite_exec(s, sql_schema);
	if (!err)
		err = sqlite_exec(s, "PRAGMA user_version = 1");
	if (!err)
		err = sqlite_exec(s, "COMMIT");
	if (err)
		(void)sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);

	return err;
}


static int sqlite_open(void **statep, const char *path)
{
	struct sqlite_be *s;
	char mode[16];
	int rc, err;

	if (!path || !*path)
		return EINVAL;

	s = calloc(1, sizeof(*s));
	if (!s)
		return ENOMEM;

	rc = sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE |
			     SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
			     NULL);
	if (rc != SQLITE_OK) {
		err = sqlite_fail(s, rc);
		goto out;
	}

	(void)sqlite3_busy_timeout(s->db, BUSY_TIMEOUT_MS);

	/* WAL: one fsync per commit, readers never block the writer */
	err = sqlite_value(s, "PRAGMA journal_mode = WAL", mode,
			   sizeof(mode));
	if (err)
		goto out;
	if (str_casecmp(mode, "wal")) {
		re_snprintf(s->errmsg, sizeof(s->errmsg), "journal_mode is "
			    "%s, not wal", mode);
		err = ENOTSUP;
		goto out;
	}

	/* FULL: a commit is on disk when COMMIT returns */
	err = sqlite_exec(s, "PRAGMA synchronous = FULL");
	if (err)
		goto out;

	err = sqlite_schema(s);
	if (err)
		goto out;

	rc = sqlite3_prepare_v2(s->db, "INSERT OR REPLACE INTO bindings ("
				SQL_COLUMNS ") VALUES (?1, ?2, ?3, ?4, ?5, "
				"?6, ?7, ?8, ?9, ?10, ?11, ?12)", -1,
				&s->upsert, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v2(s->db, "DELETE FROM bindings WHERE "
					"aor = ?1 AND contact = ?2", -1,
					&s->del, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v2(s->db, "SELECT " SQL_COLUMNS
					" FROM bindings", -1, &s->sel_all,
					NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v2(s->db, "SELECT " SQL_COLUMNS
					" FROM bindings WHERE aor = ?1", -1,
					&s->sel_aor, NULL);
	if (rc != SQLITE_OK)
		err = sqlite_fail(s, rc);

 out:
	if (err) {
		slog(LOG_ERROR, "location", "open_failed", NULL,
		     "backend=sqlite path=%H err=%m msg=%H", log_q, path,
		     err, log_q, s->errmsg);
		sqlite_close(s);
	}
	else {
		*statep = s;
	}

	return err;
}


static const char *col_text(sqlite3_stmt *st, int i)
{
	return (const char *)sqlite3_column_text(st, i);
}


static int sqlite_load(void *state, const char *aor, loc_row_h *rowh,
		       void *arg)
{
	struct sqlite_be *s = state;
	sqlite3_stmt *st = aor ? s->sel_aor : s->sel_all;
	int rc, err = 0;

	if (aor)
		(void)sqlite3_bind_text(st, 1, aor, -1, SQLITE_STATIC);

	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct loc_binding b;

		memset(&b, 0, sizeof(b));
		b.aor        = col_text(st, 0);
		b.contact    = col_text(st, 1);
		b.expires_at = (uint64_t)sqlite3_column_int64(st, 2);
		b.q          = (uint16_t)sqlite3_column_int(st, 3);
		b.callid     = col_text(st, 4);
		b.cseq       = (uint32_t)sqlite3_column_int64(st, 5);
		b.instance   = col_text(st, 6);
		b.reg_id     = (uint32_t)sqlite3_column_int64(st, 7);
		b.path       = col_text(st, 8);
		b.received   = col_text(st, 9);
		b.user_agent = col_text(st, 10);
		b.updated_at = (uint64_t)sqlite3_column_int64(st, 11);

		if (!b.aor || !b.contact || !b.callid)
			continue;

		err = rowh(&b, arg);
		if (err)
			break;
	}

	if (!err && rc != SQLITE_DONE)
		err = sqlite_fail(s, rc);

	sqlite3_reset(st);
	sqlite3_clear_bindings(st);

	return err;
}


static void bind_text(sqlite3_stmt *st, int i, const char *s)
{
	if (s)
		(void)sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
	else
		(void)sqlite3_bind_null(st, i);
}


static int sqlite_op(struct sqlite_be *s, const struct loc_op *op)
{
	const struct loc_binding *b = &op->b;
	sqlite3_stmt *st;
	int rc;

	if (op->type == LOC_OP_DELETE) {
		st = s->del;
		bind_text(st, 1, b->aor);
		bind_text(st, 2, b->contact);
	}
	else {
		st = s->upsert;
		bind_text(st, 1, b->aor);
		bind_text(st, 2, b->contact);
		(void)sqlite3_bind_int64(st, 3, (sqlite3_int64)b->expires_at);
		(void)sqlite3_bind_int(st, 4, b->q);
		bind_text(st, 5, b->callid);
		(void)sqlite3_bind_int64(st, 6, b->cseq);
		bind_text(st, 7, b->instance);
		(void)sqlite3_bind_int64(st, 8, b->reg_id);
		bind_text(st, 9, b->path);
		bind_text(st, 10, b->received);
		bind_text(st, 11, b->user_agent);
		(void)sqlite3_bind_int64(st, 12, (sqlite3_int64)b->updated_at);
	}

	rc = sqlite3_step(st);
	sqlite3_reset(st);

	return rc == SQLITE_DONE ? 0 : sqlite_fail(s, rc);
}


static int sqlite_apply(void *state, const struct loc_op *opv, size_t opc)
{
	struct sqlite_be *s = state;
	size_t i;
	int err;

	/* IMMEDIATE: take the write lock now, not halfway through */
	err = sqlite_exec(s, "BEGIN IMMEDIATE");
	if (err)
		return err;

	for (i = 0; i < opc && !err; i++)
		err = sqlite_op(s, &opv[i]);

	if (!err)
		err = sqlite_exec(s, "COMMIT");

	if (err)
		(void)sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);

	return err;
}


static const char *sqlite_errmsg(void *state)
{
	struct sqlite_be *s = state;

	return s ? s->errmsg : NULL;
}


const struct loc_backend loc_backend_sqlite = {
	.name   = "sqlite",
	.open   = sqlite_open,
	.load   = sqlite_load,
	.apply  = sqlite_apply,
	.errmsg = sqlite_errmsg,
	.close  = sqlite_close,
};

