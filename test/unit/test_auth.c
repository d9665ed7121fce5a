/**
 * test/unit/test_auth.c  Digest authentication and the users table
 *
 * REGISTER requests are written as text with Authorization headers whose
 * digests this file computes itself (OpenSSL EVP, independently of
 * server/core/digest.c), parsed with sip_msg_decode() and checked with
 * auth_check(). Covers: MD5 and SHA-256, wrong password, unknown user,
 * expired / tampered / evicted nonces, nonce-count replay, uri mismatch,
 * malformed credentials, qop absent, the challenge headers, the users
 * table (add/del/list, the cache following a second connection through
 * the data_version poll, the CLI), libre's own client (sip_auth) against
 * our challenge, and the policy (401, 403 + log line, 400) on a real
 * stack on 127.0.0.1:0. Leaks: meson runs it under valgrind too.
 */
#include <string.h>
#include <stdlib.h>
#include <stdio.h>
#include <stdarg.h>
#include <unistd.h>
#include <openssl/evp.h>
#include <sqlite3.h>
#include <re.h>
#include "sipstack.h"

static struct stack_handler *hd_register;   /* the test's REGISTER handler */


static int ntest;
static int nfail;

#define CHECK(cond, name) do {                                     \
	++ntest;                                                   \
	if (cond) printf("ok %d - %s\n", ntest, name);             \
	else { ++nfail; printf("not ok %d - %s  # %s:%d\n", ntest, \
			       name, __FILE__, __LINE__); }        \
} while (0)

#define RURI   "sip:sipstack.test"
#define REALM  "sipstack"

static char dbpath[256];


/* ------------------------------------------------------------------ *
 * Digests, computed here independently
 * ------------------------------------------------------------------ */

static void md_hex(char *hex, const char *alg, const char *s)
{
	const EVP_MD *md = strcmp(alg, "SHA-256") ? EVP_md5() : EVP_sha256();
	uint8_t out[EVP_MAX_MD_SIZE];
	unsigned n = 0, i;

	(void)EVP_Digest(s, strlen(s), out, &n, md, NULL);
	for (i = 0; i < n; i++)
		sprintf(hex + 2*i, "%02x", out[i]);
	hex[2*n] = '\0';
}


enum {
	OMIT_USERNAME = 1 << 0,
	OMIT_NONCE    = 1 << 1,
	OMIT_URI      = 1 << 2,
	OMIT_RESPONSE = 1 << 3,
	OMIT_QOP      = 1 << 4,   /* RFC 2069 style: no qop, nc, cnonce */
	OMIT_NC       = 1 << 5,
	OMIT_CNONCE   = 1 << 6,
	OMIT_ALG      = 1 << 7,   /* no algorithm= (means MD5)          */
};

struct cr {
	const char *hdr;      /* "Authorization" (default)          */
	const char *user;
	const char *realm;    /* REALM                              */
	const char *pass;
	const char *nonce;
	const char *uri;      /* RURI                               */
	const char *alg;      /* "MD5" (default) or "SHA-256"       */
	const char *nc;       /* "00000001"                         */
	const char *cnonce;   /* "0a4f113b"                         */
	const char *method;   /* "REGISTER"                         */
	unsigned omit;
};


/* One header line, ending in CRLF */
static void cr_line(char *buf, size_t sz, const struct cr *in)
{
	struct cr c = *in;
	char a1[512], a2[512], x[1024];
	char ha1[65], ha2[65], resp[65];
	int n = 0;

	if (!c.hdr)    c.hdr = "Authorization";
	if (!c.realm)  c.realm = REALM;
	if (!c.uri)    c.uri = RURI;
	if (!c.alg)    c.alg = "MD5";
	if (!c.nc)     c.nc = "00000001";
	if (!c.cnonce) c.cnonce = "0a4f113b";
	if (!c.method) c.method = "REGISTER";

	snprintf(a1, sizeof(a1), "%s:%s:%s", c.user, c.realm, c.pass);
	snprintf(a2, sizeof(a2), "%s:%s", c.method, c.uri);
	md_hex(ha1, c.alg, a1);
	md_hex(ha2, c.alg, a2);
	if (c.omit & OMIT_QOP)
		snprintf(x, sizeof(x), "%s:%s:%s", ha1, c.nonce, ha2);
	else
		snprintf(x, sizeof(x), "%s:%s:%s:%s:auth:%s", ha1, c.nonce,
			 c.nc, c.cnonce, ha2);
	md_hex(resp, c.alg, x);

	n += snprintf(buf + n, sz - n, "%s: Digest realm=\"%s\"", c.hdr,
		      c.realm);
	if (!(c.omit & OMIT_USERNAME))
		n += snprintf(buf + n, sz - n, ", username=\"%s\"", c.user);
	if (!(c.omit & OMIT_NONCE))
		n += snprintf(buf + n, sz - n, ", nonce=\"%s\"", c.nonce);
	if (!(c.omit & OMIT_URI))
		n += snprintf(buf + n, sz - n, ", uri=\"%s\"", c.uri);
	if (!(c.omit & OMIT_RESPONSE))
		n += snprintf(buf + n, sz - n, ", response=\"%s\"", resp);
	if (!(c.omit & OMIT_ALG))
		n += snprintf(buf + n, sz - n, ", algorithm=%s", c.alg);
	if (!(c.omit & OMIT_QOP)) {
		n += snprintf(buf + n, sz - n, ", qop=auth");
		if (!(c.omit & OMIT_NC))
			n += snprintf(buf + n, sz - n, ", nc=%s", c.nc);
		if (!(c.omit & OMIT_CNONCE))
			n += snprintf(buf + n, sz - n, ", cnonce=\"%s\"",
				      c.cnonce);
	}
	snprintf(buf + n, sz - n, "\r\n");
}


/* A REGISTER with extra header lines, parsed by libre */
static struct sip_msg *reg_msg(const char *ruri, const char *hdrs)
{
	static unsigned seq;
	struct sip_msg *msg = NULL;
	struct mbuf *mb = mbuf_alloc(1024);

	if (!mb)
		return NULL;

	++seq;
	(void)mbuf_printf(mb,
		"REGISTER %s SIP/2.0\r\n"
		"Via: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK%u\r\n"
		"Max-Forwards: 70\r\n"
		"From: <sip:alice@sipstack.test>;tag=%u\r\n"
		"To: <sip:alice@sipstack.test>\r\n"
		"Call-ID: call%u\r\n"
		"CSeq: %u REGISTER\r\n"
		"Contact: <sip:alice@127.0.0.1:5062>\r\n"
		"%s"
		"Content-Length: 0\r\n"
		"\r\n", ruri, seq, seq, seq, seq, hdrs ? hdrs : "");
	mb->pos = 0;
	if (sip_msg_decode(&msg, mb))
		msg = NULL;
	mem_deref(mb);

	return msg;
}


/* auth_check on a REGISTER to RURI carrying hdrs */
static enum auth_status check(struct auth *a, const char *hdrs, bool proxy,
			      struct auth_result *res)
{
	struct auth_result tmp;
	struct sip_msg *msg = reg_msg(RURI, hdrs);
	int err;

	if (!res)
		res = &tmp;

	if (!msg)
		return (enum auth_status)-1;

	err = auth_check(a, msg, proxy, res);
	mem_deref(msg);

	return err ? (enum auth_status)-1 : res->status;
}


static enum auth_status check_cr(struct auth *a, const struct cr *c,
				 struct auth_result *res)
{
	char line[2048];

	cr_line(line, sizeof(line), c);

	return check(a, line, false, res);
}


/* The challenge text and its nonce */
static int challenge(struct auth *a, bool proxy, bool stale, char *text,
		     size_t tsz, char nonce[65])
{
	struct mbuf *mb = mbuf_alloc(512);
	const char *p;
	int err;

	if (!mb)
		return ENOMEM;

	err = auth_challenge_encode(mb, a, proxy, stale);
	if (!err)
		(void)re_snprintf(text, tsz, "%b", mb->buf, mb->end);
	mem_deref(mb);
	if (err)
		return err;

	p = strstr(text, "nonce=\"");
	if (!p || strlen(p) < 7 + 64)
		return EBADMSG;
	memcpy(nonce, p + 7, 64);
	nonce[64] = '\0';

	return 0;
}


static char *fresh_nonce(struct auth *a, char nonce[65])
{
	char text[1024];

	if (challenge(a, false, false, text, sizeof(text), nonce))
		nonce[0] = '\0';

	return nonce;
}


/* ------------------------------------------------------------------ *
 * Loop helpers
 * ------------------------------------------------------------------ */

static struct tmr watchdog;

static void watchdog_handler(void *arg)
{
	bool *fired = arg;

	*fired = true;
	re_cancel();
}


static bool run_loop(uint32_t ms)
{
	bool fired = false;

	tmr_start(&watchdog, ms, watchdog_handler, &fired);
	(void)re_main(NULL);
	tmr_cancel(&watchdog);

	return !fired;
}


/* ------------------------------------------------------------------ *
 * Users table
 * ------------------------------------------------------------------ */

struct listing {
	char names[256];
	unsigned n;
};


static int list_handler(const char *user, const char *realm,
			int64_t created, void *arg)
{
	struct listing *l = arg;
	size_t len = strlen(l->names);

	(void)re_snprintf(l->names + len, sizeof(l->names) - len, "%s%s@%s",
			  l->n ? "," : "", user, realm);
	if (created > 0)
		++l->n;

	return 0;
}


static bool row_ha1(const char *user, char *md5, char *sha)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	bool ok = false;

	if (sqlite3_open(dbpath, &db) != SQLITE_OK)
		goto out;
	if (sqlite3_prepare_v2(db, "SELECT ha1_md5, ha1_sha256 FROM users "
			       "WHERE username = ?1", -1, &st, NULL))
		goto out;
	(void)sqlite3_bind_text(st, 1, user, -1, SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_ROW)
		goto out;
	strcpy(md5, (const char *)sqlite3_column_text(st, 0));
	strcpy(sha, (const char *)sqlite3_column_text(st, 1));
	ok = true;
 out:
	sqlite3_finalize(st);
	sqlite3_close(db);

	return ok;
}


static bool columns_are(const char *want)
{
	char got[256] = "";
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;

	if (sqlite3_open(dbpath, &db) == SQLITE_OK &&
	    sqlite3_prepare_v2(db, "SELECT name FROM pragma_table_info"
			       "('users') ORDER BY cid", -1, &st, NULL)
	    == SQLITE_OK) {
		while (sqlite3_step(st) == SQLITE_ROW) {
			strcat(got, (const char *)sqlite3_column_text(st, 0));
			strcat(got, " ");
		}
	}
	sqlite3_finalize(st);
	sqlite3_close(db);

	return !strcmp(got, want);
}


static bool journal_is_wal(void)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	bool wal = false;

	if (sqlite3_open(dbpath, &db) == SQLITE_OK &&
	    sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL)
	    == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
		wal = !strcmp((const char *)sqlite3_column_text(st, 0), "wal");
	sqlite3_finalize(st);
	sqlite3_close(db);

	return wal;
}


static void test_users(struct auth_users **usersp)
{
	struct auth_users *u = NULL;
	struct listing l;
	char md5[128], sha[128], want[65];
	int err;

	err = auth_users_open(&u, dbpath);
	CHECK(!err && u && auth_users_count(u) == 0, "users: open a new "
	      "database, empty cache");
	CHECK(columns_are("username realm ha1_md5 ha1_sha256 created_at "),
	      "users: table columns, no password column");
	CHECK(journal_is_wal(), "users: database in WAL mode");

	err  = auth_user_add(u, "alice", NULL, "wonderland");
	err |= auth_user_add(u, "bob", REALM, "builder");
	err |= auth_user_add(u, "zed", "elsewhere", "zzz");
	CHECK(!err && auth_users_count(u) == 3, "users: add three, cache "
	      "follows our own writes");

	CHECK(row_ha1("alice", md5, sha), "users: alice's row");
	md_hex(want, "MD5", "alice:" REALM ":wonderland");
	CHECK(!strcmp(md5, want), "users: ha1_md5 = MD5(user:realm:pass)");
	md_hex(want, "SHA-256", "alice:" REALM ":wonderland");
	CHECK(!strcmp(sha, want), "users: ha1_sha256 = "
	      "SHA-256(user:realm:pass)");

	memset(&l, 0, sizeof(l));
	err = auth_user_list(u, list_handler, &l);
	CHECK(!err && l.n == 3 && !strcmp(l.names, "alice@sipstack,"
	      "bob@sipstack,zed@elsewhere"), "users: list in name order "
	      "with realm and created_at");

	CHECK(auth_user_add(u, "", NULL, "x") == EINVAL &&
	      auth_user_add(u, "a\"b", NULL, "x") == EINVAL &&
	      auth_user_add(u, "ab", "r\\", "x") == EINVAL &&
	      auth_user_add(u, "a\nb", NULL, "x") == EINVAL &&
	      auth_user_add(u, "ab", NULL, "") == EINVAL,
	      "users: bad name, realm or empty password refused");

	err = auth_user_add(u, "carol", NULL, "c");
	err |= auth_user_del(u, "carol");
	CHECK(!err && auth_users_count(u) == 3, "users: del");
	CHECK(auth_user_del(u, "carol") == ENOENT, "users: del unknown "
	      "is ENOENT");

	/* replace: a new password, same row */
	err = auth_user_add(u, "bob", NULL, "rebuilt");
	CHECK(!err && auth_users_count(u) == 3 && row_ha1("bob", md5, sha),
	      "users: add replaces an existing user");
	md_hex(want, "MD5", "bob:" REALM ":rebuilt");
	CHECK(!strcmp(md5, want), "users: replaced HA1 is the new one");
	(void)auth_user_add(u, "bob", NULL, "builder");

	CHECK(auth_users_open(NULL, dbpath) == EINVAL &&
	      auth_users_open(&u, "") == EINVAL, "users: open checks args");

	*usersp = u;
}


/* ------------------------------------------------------------------ *
 * Verification
 * ------------------------------------------------------------------ */

static void test_check(struct auth *a)
{
	struct auth_result r;
	char nonce[65], line[2048], two[4096];
	struct cr c;

	memset(&c, 0, sizeof(c));
	c.user = "alice";
	c.pass = "wonderland";
	c.nonce = fresh_nonce(a, nonce);

	CHECK(check(a, NULL, false, &r) == AUTH_NO_CREDENTIALS,
	      "no Authorization: NO_CREDENTIALS");

	CHECK(check_cr(a, &c, &r) == AUTH_OK && !strcmp(r.user, "alice") &&
	      r.alg == AUTH_ALG_MD5, "MD5 credentials: OK, user alice");

	c.alg = "SHA-256";
	c.nonce = fresh_nonce(a, nonce);
	CHECK(check_cr(a, &c, &r) == AUTH_OK && r.alg == AUTH_ALG_SHA256,
	      "SHA-256 credentials: OK");

	c.alg = NULL;
	c.omit = OMIT_ALG;
	c.nonce = fresh_nonce(a, nonce);
	CHECK(check_cr(a, &c, &r) == AUTH_OK && r.alg == AUTH_ALG_MD5,
	      "no algorithm parameter means MD5");
	c.omit = 0;

	/* wrong password and unknown user: the same outcome */
	c.pass = "guess";
	c.nonce = fresh_nonce(a, nonce);
	CHECK(check_cr(a, &c, &r) == AUTH_FAILED &&
	      !strcmp(r.reason, "wrong_password"), "wrong password: FAILED");
	c.alg = "SHA-256";
	CHECK(check_cr(a, &c, &r) == AUTH_FAILED, "wrong password, "
	      "SHA-256: FAILED");
	c.user = "mallory";
	CHECK(check_cr(a, &c, &r) == AUTH_FAILED &&
	      !strcmp(r.reason, "unknown_user") &&
	      !strcmp(r.user, "mallory"), "unknown user: FAILED");
	c.user = "zed";
	c.pass = "zzz";
	c.realm = "elsewhere";
	CHECK(check_cr(a, &c, &r) == AUTH_NO_CREDENTIALS,
	      "credentials for another realm are not ours");
	c.realm = NULL;
	CHECK(check_cr(a, &c, &r) == AUTH_FAILED, "user of another realm "
	      "in ours: FAILED like an unknown user");
	c.user = "alice";
	c.pass = "wonderland";
	c.alg = NULL;

	/* nonce-count */
	c.nonce = fresh_nonce(a, nonce);
	CHECK(check_cr(a, &c, &r) == AUTH_OK, "nc 1: OK");
	CHECK(check_cr(a, &c, &r) == AUTH_REPLAY &&
	      !strcmp(r.reason, "nc_replay"), "nc 1 again: REPLAY");
	c.nc = "00000002";
	CHECK(check_cr(a, &c, &r) == AUTH_OK, "nc 2: OK");
	c.nc = "00000001";
	CHECK(check_cr(a, &c, &r) == AUTH_REPLAY, "lower nc: REPLAY");
	c.nc = "ffffffff";
	c.pass = "guess";
	CHECK(check_cr(a, &c, &r) == AUTH_FAILED, "wrong password with "
	      "a high nc: FAILED");
	c.pass = "wonderland";
	c.nc = "00000003";
	CHECK(check_cr(a, &c, &r) == AUTH_OK, "failed attempt did not "
	      "advance nc: nc 3 OK");
	c.nc = "0000000A";
	CHECK(check_cr(a, &c, &r) == AUTH_OK, "nc in upper-case hex, "
	      "increasing: OK");
	c.nc = NULL;

	/* nonces that are not ours: a fresh challenge (NO_CREDENTIALS)
	 * whatever the response, right or wrong: no password oracle */
	{
		char t[65];

		strcpy(t, fresh_nonce(a, nonce));
		t[63] = t[63] == '0' ? '1' : '0';     /* in the MAC */
		c.nonce = t;
		CHECK(check_cr(a, &c, &r) == AUTH_NO_CREDENTIALS &&
		      !strcmp(r.reason, "nonce_unknown"), "tampered nonce "
		      "(MAC), right password: re-challenged, not checked");
		c.pass = "guess";
		CHECK(check_cr(a, &c, &r) == AUTH_NO_CREDENTIALS &&
		      !strcmp(r.reason, "nonce_unknown"), "tampered nonce, "
		      "wrong password: the same outcome");
		c.pass = "wonderland";
		strcpy(t, nonce);
		t[15] = t[15] == '0' ? '1' : '0';     /* in the timestamp */
		CHECK(check_cr(a, &c, &r) == AUTH_NO_CREDENTIALS, "tampered "
		      "nonce (timestamp): re-challenged");
		c.nonce = "deadbeef";
		CHECK(check_cr(a, &c, &r) == AUTH_NO_CREDENTIALS, "made-up "
		      "nonce, right password: re-challenged");
		c.pass = "guess";
		CHECK(check_cr(a, &c, &r) == AUTH_NO_CREDENTIALS, "made-up "
		      "nonce, wrong password: the same outcome");
		c.pass = "wonderland";
	}

	/* digest uri vs Request-URI (RFC 7616 §3.4.6) */
	c.nonce = fresh_nonce(a, nonce);
	c.uri = "sip:other.test";
	CHECK(check_cr(a, &c, &r) == AUTH_FAILED &&
	      !strcmp(r.reason, "uri_mismatch"), "uri != Request-URI: "
	      "FAILED");
	{
		struct sip_msg *msg;
		char hdr[2048];

		c.uri = "sip:Example.TEST;transport=udp;lr";
		cr_line(hdr, sizeof(hdr), &c);
		msg = reg_msg("sip:example.test;lr;transport=UDP", hdr);
		CHECK(msg && !auth_check(a, msg, false, &r) &&
		      r.status == AUTH_OK, "uri equal per RFC 3261 "
		      "§19.1.4 (host case, param order): OK");
		mem_deref(msg);

		c.uri = "sip:example.test:5060";
		cr_line(hdr, sizeof(hdr), &c);
		msg = reg_msg("sip:example.test", hdr);
		CHECK(msg && !auth_check(a, msg, false, &r) &&
		      r.status == AUTH_FAILED, "explicit default port is a "
		      "different uri: FAILED");
		mem_deref(msg);
	}
	c.uri = NULL;

	/* malformed: BAD */
	c.nonce = fresh_nonce(a, nonce);
	c.omit = OMIT_RESPONSE;
	CHECK(check_cr(a, &c, &r) == AUTH_BAD, "response missing: BAD");
	c.omit = OMIT_NONCE;
	CHECK(check_cr(a, &c, &r) == AUTH_BAD, "nonce missing: BAD");
	c.omit = OMIT_USERNAME;
	CHECK(check_cr(a, &c, &r) == AUTH_BAD, "username missing: BAD");
	c.omit = OMIT_URI;
	CHECK(check_cr(a, &c, &r) == AUTH_BAD, "uri missing: BAD");
	c.omit = OMIT_NC;
	CHECK(check_cr(a, &c, &r) == AUTH_BAD &&
	      !strcmp(r.reason, "nc_missing"), "nc missing: BAD");
	c.omit = OMIT_CNONCE;
	CHECK(check_cr(a, &c, &r) == AUTH_BAD, "cnonce missing: BAD");
	c.omit = OMIT_QOP;
	CHECK(check_cr(a, &c, &r) == AUTH_BAD &&
	      !strcmp(r.reason, "qop_missing"), "qop absent (RFC 2069 "
	      "style, correct digest): BAD, we always send qop=auth");
	c.omit = 0;
	c.nc = "1";
	CHECK(check_cr(a, &c, &r) == AUTH_BAD, "nc not 8 hex digits: BAD");
	c.nc = NULL;
	CHECK(check(a, "Authorization: Digest realm=\"sipstack\", "
		    "username=\"alice\r\n", false, &r) == AUTH_BAD,
	      "unterminated quoted-string: BAD");
	CHECK(check(a, "Authorization: Digest realm=\"sipstack\" "
		    "username=\"alice\"\r\n", false, &r) == AUTH_BAD,
	      "parameters without comma: BAD");
	CHECK(check(a, "Authorization: Digest realm=\"sipstack\", "
		    "realm=\"sipstack\"\r\n", false, &r) == AUTH_BAD,
	      "duplicate parameter: BAD");
	CHECK(check(a, "Authorization: Basic YWxpY2U6eA==\r\n", false, &r)
	      == AUTH_NO_CREDENTIALS, "Basic scheme ignored: "
	      "NO_CREDENTIALS");

	/* algorithm and header selection */
	c.alg = "SHA-512-256";
	CHECK(check_cr(a, &c, &r) == AUTH_NO_CREDENTIALS, "unsupported "
	      "algorithm: NO_CREDENTIALS (challenge again)");
	c.alg = "MD5-sess";
	CHECK(check_cr(a, &c, &r) == AUTH_NO_CREDENTIALS, "MD5-sess: "
	      "NO_CREDENTIALS");
	c.alg = NULL;
	CHECK(check_cr(a, &c, &r) == AUTH_OK, "plain MD5 after "
	      "those: OK");
	{
		struct cr o = c;

		o.realm = "other.example";
		o.pass = "x";
		o.nc = "00000002";
		cr_line(two, sizeof(two), &o);
		c.nc = "00000002";
		cr_line(line, sizeof(line), &c);
		strcat(two, line);
		CHECK(check(a, two, false, &r) == AUTH_OK, "another realm's "
		      "header first, ours second: ours is used");

		c.nonce = fresh_nonce(a, nonce);
		c.nc = NULL;
		c.alg = "SHA-256";
		cr_line(two, sizeof(two), &c);
		c.alg = "MD5";
		c.pass = "wrong";
		cr_line(line, sizeof(line), &c);
		strcat(two, line);
		CHECK(check(a, two, false, &r) == AUTH_OK &&
		      r.alg == AUTH_ALG_SHA256, "SHA-256 and MD5 headers: "
		      "SHA-256 is used");
		c.pass = "wonderland";
		c.alg = NULL;
	}

	/* quoted-string escapes in the username */
	{
		char esc[2048];

		c.nonce = fresh_nonce(a, nonce);
		cr_line(line, sizeof(line), &c);
		/* alice written as al\ice */
		{
			const char *p = strstr(line, "username=\"alice\"");
			size_t k = p ? (size_t)(p - line) + 12 : 0;

			snprintf(esc, sizeof(esc), "%.*s\\%s", (int)k, line,
				 line + k);
		}
		CHECK(check(a, esc, false, &r) == AUTH_OK &&
		      !strcmp(r.user, "alice"), "quoted-pair in username "
		      "unescaped");
	}

	/* Authorization vs Proxy-Authorization */
	c.nonce = fresh_nonce(a, nonce);
	cr_line(line, sizeof(line), &c);
	CHECK(check(a, line, true, &r) == AUTH_NO_CREDENTIALS,
	      "Authorization is not looked at for proxy auth");
	c.hdr = "Proxy-Authorization";
	cr_line(line, sizeof(line), &c);
	CHECK(check(a, line, true, &r) == AUTH_OK, "Proxy-Authorization: "
	      "OK");
	c.hdr = NULL;

	/* method is part of HA2 */
	c.nonce = fresh_nonce(a, nonce);
	c.method = "INVITE";
	CHECK(check_cr(a, &c, &r) == AUTH_FAILED, "digest for another "
	      "method: FAILED");
	c.method = NULL;
}


static void test_challenge(struct auth *a)
{
	char text[1024], nonce[65], text2[1024], nonce2[65], want[1024];
	const char *sha, *md5;
	int err;

	err = challenge(a, false, false, text, sizeof(text), nonce);
	CHECK(!err && strlen(nonce) == 64, "challenge: 64-hex nonce");

	sha = strstr(text, "algorithm=SHA-256");
	md5 = strstr(text, "algorithm=MD5");
	CHECK(sha && md5 && sha < md5, "challenge: SHA-256 header first, "
	      "then MD5");
	snprintf(want, sizeof(want),
		 "WWW-Authenticate: Digest realm=\"sipstack\", "
		 "nonce=\"%s\", algorithm=SHA-256, qop=\"auth\"\r\n"
		 "WWW-Authenticate: Digest realm=\"sipstack\", "
		 "nonce=\"%s\", algorithm=MD5, qop=\"auth\"\r\n",
		 nonce, nonce);
	CHECK(!strcmp(text, want), "challenge: exact headers");

	err = challenge(a, false, false, text2, sizeof(text2), nonce2);
	CHECK(!err && strcmp(nonce, nonce2), "challenge: a new nonce each "
	      "time");

	err = challenge(a, true, true, text, sizeof(text), nonce);
	CHECK(!err && !strncmp(text, "Proxy-Authenticate: Digest ", 27) &&
	      strstr(text, "\r\nProxy-Authenticate: Digest ") &&
	      strstr(text, ", stale=true\r\n") &&
	      !strstr(text, "WWW-Authenticate"), "challenge: proxy and "
	      "stale=true");
}


static void test_nonce_life(struct auth_users *u)
{
	struct auth_config cfg;
	struct auth *a = NULL;
	struct auth_result r;
	char n1[65], n2[65], n3[65];
	struct cr c;
	int err;

	memset(&c, 0, sizeof(c));
	c.user = "alice";
	c.pass = "wonderland";

	/* expiry */
	auth_config_default(&cfg);
	cfg.nonce_ttl = 1;
	err = auth_alloc(&a, u, &cfg);
	CHECK(!err, "auth with a 1 s nonce lifetime");

	c.nonce = fresh_nonce(a, n1);
	CHECK(check_cr(a, &c, &r) == AUTH_OK && auth_nonces(a) == 1,
	      "fresh nonce: OK, tracked");
	(void)usleep(1100 * 1000);
	c.nc = "00000002";
	CHECK(check_cr(a, &c, &r) == AUTH_STALE &&
	      !strcmp(r.reason, "nonce_expired"), "expired nonce: STALE");
	c.pass = "guess";
	CHECK(check_cr(a, &c, &r) == AUTH_FAILED, "expired nonce, wrong "
	      "password: FAILED");
	c.pass = "wonderland";
	c.nc = NULL;
	c.nonce = fresh_nonce(a, n2);
	CHECK(check_cr(a, &c, &r) == AUTH_OK && auth_nonces(a) == 1,
	      "expired entries leave the nc table");
	a = mem_deref(a);

	/* eviction: a table of two */
	auth_config_default(&cfg);
	cfg.max_nonces = 2;
	err = auth_alloc(&a, u, &cfg);
	CHECK(!err, "auth with an nc table of 2");
	fresh_nonce(a, n1);
	fresh_nonce(a, n2);
	fresh_nonce(a, n3);
	c.nonce = n1;
	err = check_cr(a, &c, &r) != AUTH_OK;
	c.nonce = n2;
	err |= check_cr(a, &c, &r) != AUTH_OK;
	c.nonce = n3;
	err |= check_cr(a, &c, &r) != AUTH_OK;
	CHECK(!err && auth_nonces(a) == 2, "three nonces used, two kept");
	c.nc = "00000002";
	c.nonce = n1;
	CHECK(check_cr(a, &c, &r) == AUTH_STALE &&
	      !strcmp(r.reason, "nonce_evicted"), "evicted nonce: STALE");
	c.nonce = n3;
	CHECK(check_cr(a, &c, &r) == AUTH_OK, "kept nonce: nc 2 OK");
	c.nc = "00000001";
	CHECK(check_cr(a, &c, &r) == AUTH_REPLAY, "kept nonce: nc 1 "
	      "REPLAY");
	a = mem_deref(a);

	/* a restart: another verifier on the same database shares the
	 * secret, so the old process's nonce is ours but from another
	 * epoch: STALE with a right response (recovers without a prompt),
	 * FAILED with a wrong one; another realm's nonce is not ours */
	{
		struct auth *b = NULL;

		auth_config_default(&cfg);
		err  = auth_alloc(&a, u, &cfg);
		err |= auth_alloc(&b, u, &cfg);
		CHECK(!err, "two verifiers on one database");
		c.nonce = fresh_nonce(a, n1);
		CHECK(check_cr(b, &c, &r) == AUTH_STALE &&
		      !strcmp(r.reason, "nonce_previous"), "nonce of a "
		      "previous process, right password: STALE");
		c.pass = "guess";
		CHECK(check_cr(b, &c, &r) == AUTH_FAILED, "nonce of a "
		      "previous process, wrong password: FAILED");
		c.pass = "wonderland";
		CHECK(check_cr(a, &c, &r) == AUTH_OK, "still OK in the "
		      "process that made it");
		b = mem_deref(b);
		cfg.realm = "other";
		err = auth_alloc(&b, u, &cfg);
		c.nonce = fresh_nonce(b, n2);
		CHECK(!err && check_cr(a, &c, &r) == AUTH_NO_CREDENTIALS,
		      "another realm's nonce (same secret): not ours");
		mem_deref(b);
		a = mem_deref(a);
	}

	auth_config_default(&cfg);
	cfg.realm = "bad\"realm";
	CHECK(auth_alloc(&a, u, &cfg) == EINVAL, "realm with a quote "
	      "refused");
	auth_config_default(&cfg);
	cfg.algs = 0;
	CHECK(auth_alloc(&a, u, &cfg) == EINVAL, "no algorithm refused");
}


/* The cache follows writes by another connection (another process:
 * `sipstack user add`) through the one-second data_version poll. */
static void test_cache(struct auth *a)
{
	struct auth_users *other = NULL;
	struct auth_result r;
	char nonce[65];
	struct cr c;
	int err;

	memset(&c, 0, sizeof(c));
	c.user = "carol";
	c.pass = "c4rol";

	err = auth_users_open(&other, dbpath);
	CHECK(!err, "cache: second connection");
	err = auth_user_add(other, "carol", NULL, "c4rol");
	CHECK(!err, "cache: carol added through it");

	c.nonce = fresh_nonce(a, nonce);
	CHECK(check_cr(a, &c, &r) == AUTH_FAILED, "cache: not seen before "
	      "the poll (no disk read per request)");

	CHECK(!run_loop(1500), "cache: loop ran 1.5 s");
	c.nonce = fresh_nonce(a, nonce);
	CHECK(check_cr(a, &c, &r) == AUTH_OK, "cache: carol authenticates "
	      "after the data_version poll");

	err = auth_user_del(other, "carol");
	CHECK(!err && !run_loop(1500), "cache: carol deleted elsewhere");
	c.nonce = fresh_nonce(a, nonce);
	CHECK(check_cr(a, &c, &r) == AUTH_FAILED, "cache: deletion seen");

	mem_deref(other);
}


/* ------------------------------------------------------------------ *
 * The CLI
 * ------------------------------------------------------------------ */

static int cli(char *out, size_t sz, const char *input, ...)
{
	char *argv[16];
	int argc = 0, rc, fd1, fd0 = -1;
	FILE *fo, *fi = NULL;
	size_t n;
	va_list ap;

	va_start(ap, input);
	while (argc < 15 && (argv[argc] = va_arg(ap, char *)) != NULL)
		++argc;
	va_end(ap);
	argv[argc] = NULL;

	fflush(stdout);
	fo = tmpfile();
	if (!fo)
		return -1;
	fd1 = dup(STDOUT_FILENO);
	(void)dup2(fileno(fo), STDOUT_FILENO);

	if (input) {
		fi = tmpfile();
		if (fi) {
			fputs(input, fi);
			rewind(fi);
			fd0 = dup(STDIN_FILENO);
			(void)dup2(fileno(fi), STDIN_FILENO);
			clearerr(stdin);
		}
	}

	rc = auth_user_cli(argc, argv);

	fflush(stdout);
	(void)dup2(fd1, STDOUT_FILENO);
	close(fd1);
	if (fi) {
		(void)dup2(fd0, STDIN_FILENO);
		close(fd0);
		clearerr(stdin);
		fclose(fi);
	}

	rewind(fo);
	n = fread(out, 1, sz - 1, fo);
	out[n] = '\0';
	fclose(fo);

	return rc;
}


static void test_cli(struct auth *a)
{
	char out[1024], nonce[65], db2[300];
	struct auth_result r;
	struct cr c;

	memset(&c, 0, sizeof(c));
	snprintf(db2, sizeof(db2), "--db=%s", dbpath);

	CHECK(cli(out, sizeof(out), NULL, "user", "add", "dave", "d4ve",
		  "--db", dbpath, NULL) == 0 && strstr(out, "dave saved"),
	      "cli: user add (exit 0)");
	CHECK(cli(out, sizeof(out), "from stdin\n", "user", "add", "erin",
		  "-", db2, "--realm", REALM, NULL) == 0,
	      "cli: user add with the password from stdin");
	CHECK(cli(out, sizeof(out), NULL, "user", "list", db2, NULL) == 0 &&
	      strstr(out, "dave\tsipstack\t20") &&
	      strstr(out, "erin\tsipstack\t") &&
	      strstr(out, "alice\tsipstack\t"), "cli: user list");

	CHECK(!run_loop(1300), "cli: loop ran for the poll");
	memset(&c, 0, sizeof(c));
	c.user = "erin";
	c.pass = "from stdin";
	c.nonce = fresh_nonce(a, nonce);
	CHECK(check_cr(a, &c, &r) == AUTH_OK, "cli: user added by the CLI "
	      "authenticates (password read from stdin, newline cut)");

	CHECK(cli(out, sizeof(out), NULL, "user", "del", "erin", db2, NULL)
	      == 0, "cli: user del");
	CHECK(cli(out, sizeof(out), NULL, "user", "del", "erin", db2, NULL)
	      == 1, "cli: del of an unknown user exits 1");
	CHECK(cli(out, sizeof(out), NULL, "user", "del", "dave", db2, NULL)
	      == 0, "cli: del dave");
	CHECK(cli(out, sizeof(out), NULL, "user", "add", "x", NULL) == 2 &&
	      cli(out, sizeof(out), NULL, "user", NULL) == 2 &&
	      cli(out, sizeof(out), NULL, "user", "frob", NULL) == 2 &&
	      cli(out, sizeof(out), NULL, "user", "list", "--db", NULL) == 2
	      && cli(out, sizeof(out), NULL, "user", "list", "--bogus",
		     NULL) == 2 &&
	      cli(out, sizeof(out), NULL, "user", "add", "a\"b", "p", db2,
		  NULL) == 2,
	      "cli: usage errors exit 2");
	CHECK(cli(out, sizeof(out), NULL, "user", "list", "--db",
		  "/nonexistent/dir/x.db", NULL) == 1, "cli: unopenable "
	      "database exits 1");
}


/* ------------------------------------------------------------------ *
 * libre's own client (sip_auth, MD5 only) against our challenge
 * ------------------------------------------------------------------ */

/* Exported by libre.so (it is what sip_requestf uses to add the
 * headers) but declared only in libre's private src/sip/sip.h. */
int sip_auth_encode(struct mbuf *mb, struct sip_auth *auth, const char *met,
		    const char *uri);

struct creds {
	const char *user;
	const char *pass;
};


static int creds_handler(char **user, char **pass, const char *realm,
			 void *arg)
{
	const struct creds *cr = arg;
	int err;
	(void)realm;

	err = str_dup(user, cr->user);
	if (!err)
		err = str_dup(pass, cr->pass);

	return err;
}


static struct sip_msg *resp_401(struct auth *a, bool stale)
{
	struct sip_msg *msg = NULL;
	struct mbuf *mb = mbuf_alloc(1024);

	if (!mb)
		return NULL;

	(void)mbuf_printf(mb,
		"SIP/2.0 401 Unauthorized\r\n"
		"Via: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK1\r\n"
		"From: <sip:alice@sipstack.test>;tag=1\r\n"
		"To: <sip:alice@sipstack.test>;tag=2\r\n"
		"Call-ID: c1\r\n"
		"CSeq: 1 REGISTER\r\n");
	(void)auth_challenge_encode(mb, a, false, stale);
	(void)mbuf_printf(mb, "Content-Length: 0\r\n\r\n");
	mb->pos = 0;
	if (sip_msg_decode(&msg, mb))
		msg = NULL;
	mem_deref(mb);

	return msg;
}


/* sip_auth's Authorization line, checked with auth_check */
static enum auth_status libre_round(struct auth *a, struct sip_auth *sa,
				    struct auth_result *r)
{
	struct mbuf *mb = mbuf_alloc(512);
	char line[1024] = "";

	if (!mb)
		return (enum auth_status)-1;

	if (!sip_auth_encode(mb, sa, "REGISTER", RURI))
		(void)re_snprintf(line, sizeof(line), "%b", mb->buf,
				  mb->end);
	mem_deref(mb);

	return check(a, line, false, r);
}


static void test_libre_client(struct auth_users *u, struct auth *both)
{
	struct creds cr = {"alice", "wonderland"};
	struct auth_config cfg;
	struct sip_auth *sa = NULL;
	struct sip_msg *msg;
	struct auth_result r;
	struct auth *a = NULL;
	int err;

	/* Documented limit: libre 1.1.0 gives up on a SHA-256 header
	 * instead of skipping it (src/sip/auth.c: ENOSYS). */
	err = sip_auth_alloc(&sa, creds_handler, &cr, false);
	msg = resp_401(both, false);
	CHECK(!err && msg && sip_auth_authenticate(sa, msg) == ENOSYS,
	      "libre 1.1.0 client refuses a challenge with SHA-256 "
	      "(ENOSYS): serve it with algs = MD5");
	mem_deref(msg);
	sa = mem_deref(sa);

	auth_config_default(&cfg);
	cfg.algs = AUTH_ALG_MD5;
	err = auth_alloc(&a, u, &cfg);
	CHECK(!err, "auth offering MD5 only");

	err = sip_auth_alloc(&sa, creds_handler, &cr, false);
	msg = resp_401(a, false);
	CHECK(!err && msg && !sip_auth_authenticate(sa, msg), "libre "
	      "client accepts our MD5 challenge");
	mem_deref(msg);

	CHECK(libre_round(a, sa, &r) == AUTH_OK && !strcmp(r.user, "alice")
	      && r.alg == AUTH_ALG_MD5, "libre client's Authorization "
	      "verifies: OK");
	CHECK(libre_round(a, sa, &r) == AUTH_OK, "libre client's next "
	      "request (nc 2): OK");

	msg = resp_401(a, true);
	CHECK(msg && !sip_auth_authenticate(sa, msg) &&
	      libre_round(a, sa, &r) == AUTH_OK, "libre client follows "
	      "stale=true to a new nonce: OK");
	mem_deref(msg);
	sa = mem_deref(sa);

	cr.pass = "guess";
	err = sip_auth_alloc(&sa, creds_handler, &cr, false);
	msg = resp_401(a, false);
	CHECK(!err && msg && !sip_auth_authenticate(sa, msg) &&
	      libre_round(a, sa, &r) == AUTH_FAILED, "libre client with a "
	      "wrong password: FAILED");
	mem_deref(msg);
	mem_deref(sa);

	mem_deref(a);
}


/* ------------------------------------------------------------------ *
 * The policy on a real stack: 401, then 200 / 403 / 400
 * ------------------------------------------------------------------ */

static struct auth *hook_auth;
static unsigned hook_ok;

static bool register_hook(struct stack *st, struct stack_req *req,
			  void *arg)
{
	struct auth_result ar;
	(void)st;
	(void)arg;

	if (auth_require(hook_auth, req, false, &ar))
		return true;

	++hook_ok;
	(void)stack_req_reply(req, 200, "OK", NULL, NULL, NULL, 0);

	return true;
}


struct client {
	struct sip *sip;
	struct sip_msg *last;
	int err;
};


static void client_resp(int err, const struct sip_msg *msg, void *arg)
{
	struct client *c = arg;

	c->err = err;
	if (msg && msg->scode < 200)
		return;
	c->last = mem_deref(c->last);
	if (msg)
		c->last = mem_ref((void *)msg);
	re_cancel();
}


/* REGISTER user to dst; returns the final status code (0: none) */
static uint16_t client_register(struct client *c, const struct sa *dst,
				const char *user, struct sip_auth *sa,
				const char *hdrs)
{
	static uint32_t cseq;
	char uri[64];
	int err;

	c->last = mem_deref(c->last);
	(void)re_snprintf(uri, sizeof(uri), "sip:%J", dst);
	err = sip_requestf(NULL, c->sip, true, "REGISTER", uri, NULL, sa,
			   NULL, client_resp, c,
			   "To: <sip:%s@sipstack.test>\r\n"
			   "From: <sip:%s@sipstack.test>;tag=%x\r\n"
			   "Call-ID: %x\r\n"
			   "CSeq: %u REGISTER\r\n"
			   "Contact: <sip:%s@127.0.0.1>\r\n"
			   "%s"
			   "Content-Length: 0\r\n\r\n",
			   user, user, rand_u32(), rand_u32(), ++cseq, user,
			   hdrs ? hdrs : "");
	if (err || !run_loop(3000) || !c->last)
		return 0;

	return c->last->scode;
}


static bool hdr_collect(const struct sip_hdr *hdr, const struct sip_msg *msg,
			void *arg)
{
	char *buf = arg;
	size_t n = strlen(buf);
	(void)msg;

	(void)re_snprintf(buf + n, 1024 - n, "%r\n", &hdr->val);

	return false;
}


/* the WWW-Authenticate headers of the last response, nonces masked */
static void auth_hdrs(const struct client *c, char buf[1024])
{
	char *p;

	buf[0] = '\0';
	if (!c->last)
		return;
	(void)sip_msg_hdr_apply(c->last, true, SIP_HDR_WWW_AUTHENTICATE,
				hdr_collect, buf);
	for (p = buf; (p = strstr(p, "nonce=\"")) != NULL; p += 7) {
		size_t i;

		for (i = 7; p[i] && p[i] != '"'; i++)
			p[i] = 'X';
	}
}


static bool log_has(FILE *f, const char *a, const char *b, const char *c)
{
	char line[1024];

	rewind(f);
	while (fgets(line, sizeof(line), f)) {
		if (strstr(line, a) && (!b || strstr(line, b)) &&
		    (!c || strstr(line, c)))
			return true;
	}

	return false;
}


static void test_stack(struct auth_users *u)
{
	struct creds alice = {"alice", "wonderland"};
	struct creds bob = {"bob", "wrong"};
	struct creds mallory = {"mallory", "wonderland"};
	char h_alice[1024], h_mallory[1024], src[64];
	struct sip_auth *sa = NULL;
	struct auth_config cfg;
	struct stack *st = NULL;
	struct client c;
	struct sa laddr, dst, csrc;
	uint16_t sc;
	FILE *logf = tmpfile();
	int err;

	memset(&c, 0, sizeof(c));
	auth_config_default(&cfg);
	cfg.algs = AUTH_ALG_MD5;          /* libre 1.1.0's client */
	err = auth_alloc(&hook_auth, u, &cfg);

	err |= stack_alloc(&st, NULL);
	(void)sa_set_str(&laddr, "127.0.0.1", 0);
	err |= stack_listen(st, SIP_TRANSP_UDP, &laddr, NULL);
	err |= stack_start(st);
	(void)stack_handler_set(&hd_register, st, "REGISTER", "REGISTER", STACK_OUT_OF_DIALOG, register_hook, NULL);
	err |= sip_transp_laddr(stack_sip(st), &dst, SIP_TRANSP_UDP, NULL);
	err |= sip_alloc(&c.sip, NULL, 16, 16, 16, "test-client", NULL,
			 NULL);
	err |= sip_transp_add(c.sip, SIP_TRANSP_UDP, &laddr);
	err |= sip_transp_laddr(c.sip, &csrc, SIP_TRANSP_UDP, NULL);
	CHECK(!err && logf, "stack: server and libre client on 127.0.0.1");
	if (err || !logf)
		goto out;
	(void)re_snprintf(src, sizeof(src), "src=%J", &csrc);
	log_set_sink(logf);

	/* alice: 401, then 200 with libre's client */
	sc = client_register(&c, &dst, "alice", NULL, NULL);
	auth_hdrs(&c, h_alice);
	CHECK(sc == 401 && strstr(h_alice, "Digest realm=\"sipstack\""),
	      "stack: REGISTER without credentials gets 401");
	err = sip_auth_alloc(&sa, creds_handler, &alice, false);
	CHECK(!err && !sip_auth_authenticate(sa, c.last) &&
	      client_register(&c, &dst, "alice", sa, NULL) == 200 &&
	      hook_ok == 1, "stack: retry with credentials gets 200");
	CHECK(client_register(&c, &dst, "alice", sa, NULL) == 200,
	      "stack: next REGISTER (nc 2) gets 200 without a challenge");
	sa = mem_deref(sa);

	/* bob, wrong password: 401, then 403 and a log line */
	sc = client_register(&c, &dst, "bob", NULL, NULL);
	err = sip_auth_alloc(&sa, creds_handler, &bob, false);
	CHECK(sc == 401 && !err && !sip_auth_authenticate(sa, c.last) &&
	      client_register(&c, &dst, "bob", sa, NULL) == 403 &&
	      !pl_strcmp(&c.last->reason, "Forbidden"),
	      "stack: wrong credentials get 403 after the retry");
	fflush(logf);
	CHECK(log_has(logf, "lvl=warn mod=auth ev=auth_failed ",
		      " user=bob ", src) &&
	      log_has(logf, "ev=auth_failed", "reason=wrong_password", NULL),
	      "stack: failure logged with user, source address, reason");
	sa = mem_deref(sa);

	/* mallory, unknown: the same 401 (but the nonce), the same 403 */
	sc = client_register(&c, &dst, "mallory", NULL, NULL);
	auth_hdrs(&c, h_mallory);
	CHECK(sc == 401 && !strcmp(h_alice, h_mallory), "stack: challenge "
	      "for an unknown user byte-identical but for the nonce");
	err = sip_auth_alloc(&sa, creds_handler, &mallory, false);
	CHECK(!err && !sip_auth_authenticate(sa, c.last) &&
	      client_register(&c, &dst, "mallory", sa, NULL) == 403 &&
	      !pl_strcmp(&c.last->reason, "Forbidden") &&
	      !sip_msg_hdr(c.last, SIP_HDR_WWW_AUTHENTICATE),
	      "stack: unknown user gets the same 403 as a wrong password");
	sa = mem_deref(sa);

	/* malformed credentials: 400 */
	CHECK(client_register(&c, &dst, "alice", NULL,
			      "Authorization: Digest realm=\"sipstack\", "
			      "username=\"alice\"\r\n") == 400 &&
	      (fflush(logf), log_has(logf, "ev=auth_bad", "user=alice",
				     "reason=nonce_missing")),
	      "stack: malformed credentials get 400, logged");

 out:
	log_set_sink(NULL);
	if (logf)
		fclose(logf);
	mem_deref(c.last);
	if (c.sip) {
		sip_close(c.sip, true);
		mem_deref(c.sip);
	}
	mem_deref(st);
	hook_auth = mem_deref(hook_auth);
}


int main(void)
{
	struct auth_users *users = NULL;
	struct auth *a = NULL;
	char dir[] = "/tmp/test_auth.XXXXXX";
	char path[300];
	int err;

	err = libre_init();
	if (err)
		return 1;

	log_set_level(LOG_WARN);
	tmr_init(&watchdog);

	if (!mkdtemp(dir)) {
		printf("Bail out! mkdtemp\n");
		return 1;
	}
	snprintf(dbpath, sizeof(dbpath), "%s/sipstack.db", dir);

	test_users(&users);
	err = auth_alloc(&a, users, NULL);
	CHECK(!err && !strcmp(auth_realm(a), "sipstack"), "auth_alloc with "
	      "the default config (realm sipstack)");

	test_challenge(a);
	test_check(a);
	test_nonce_life(users);
	test_cache(a);
	test_cli(a);
	test_libre_client(users, a);
	test_stack(users);

	{
		char dbg[512];

		(void)re_snprintf(dbg, sizeof(dbg), "%H", auth_debug, a);
		printf("# %s\n", dbg);
		(void)re_snprintf(dbg, sizeof(dbg), "%H", auth_users_debug,
				  users);
		printf("# %s\n", dbg);
	}

	mem_deref(a);
	mem_deref(users);
	libre_close();

	snprintf(path, sizeof(path), "%s/sipstack.db-wal", dir);
	(void)unlink(path);
	snprintf(path, sizeof(path), "%s/sipstack.db-shm", dir);
	(void)unlink(path);
	(void)unlink(dbpath);
	(void)rmdir(dir);

	printf("1..%d\n", ntest);

	return nfail ? 1 : 0;
}
