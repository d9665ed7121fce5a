/**
 * test/unit/test_registrar.c  REGISTER processing (server/registrar/registrar.c)
 *
 * TAP program. A real stack on 127.0.0.1:0 whose the REGISTER handler
 * hook calls registrar_handle() on a sqlite location store in a
 * mkdtemp() directory, and a libre client in the same process sending
 * REGISTERs written as text. Checks status, reason, the Contacts of the
 * 200 with their expires/q, Min-Expires, Date, Path, and that every 200
 * arrives when its bindings are already on disk. Covers: several
 * Contacts (several headers, comma lists, compact m:), expires param vs
 * Expires header, the max clamp, 423 below the minimum, Contact: * with
 * Expires: 0 and its misuses, bad q, malformed Contact, bad Expires,
 * bad To, Call-ID/CSeq ordering, queries, AOR canonicalisation,
 * +sip.instance / reg-id / Path / received / User-Agent stored and
 * returned by location_lookup(), that the done handler is never
 * called from inside registrar_handle(), and that the 200s of a burst
 * leave through udpbatch's queue in fewer sendmmsg calls than replies
 * (the registrar's batch hook on the store). Leaks: valgrind (meson).
 */
#include <string.h>
#include <stdlib.h>
#include <stdio.h>
#include <unistd.h>
#include <sqlite3.h>
#include <re.h>
#include "sipstack.h"
#include "udpbatch.h"


#include "testutil.h"

static struct stack_handler *hd_register;   /* the test's REGISTER handler */


static char tmpdir[64];
static char dbpath[128];


/* rows on disk for aor (another connection), -1 on error */
static long db_rows(const char *aor)
{
	sqlite3_stmt *st = NULL;
	sqlite3 *db = NULL;
	long v = -1;

	if (sqlite3_open(dbpath, &db) == SQLITE_OK &&
	    sqlite3_prepare_v2(db, "SELECT count(*) FROM bindings WHERE "
			       "aor = ?1", -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_bind_text(st, 1, aor, -1, SQLITE_STATIC) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		v = (long)sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);

	return v;
}


/* ------------------------------------------------------------------ *
 * The server side: a stack whose REGISTER hook is the registrar
 * ------------------------------------------------------------------ */

struct server {
	struct stack *st;
	struct location *loc;
	struct registrar *reg;
	struct sa addr;
	bool in_handle;
	unsigned handled;
	unsigned done;
	unsigned sync_done;     /* done handlers run inside handle() */
	uint16_t last_scode;
	size_t last_count;
};


static void reg_done(int err, uint16_t scode, const struct loc_set *set,
		     void *arg)
{
	struct server *sv = arg;
	(void)err;

	++sv->done;
	if (sv->in_handle)
		++sv->sync_done;
	sv->last_scode = scode;
	sv->last_count = loc_set_count(set);
}


static bool reg_hook(struct stack *st, struct stack_req *req, void *arg)
{
	struct server *sv = arg;
	int err;
	(void)st;

	sv->in_handle = true;
	err = registrar_handle(sv->reg, req, reg_done, sv);
	sv->in_handle = false;
	if (!err)
		++sv->handled;

	return err == 0;
}


/* ------------------------------------------------------------------ *
 * The client side
 * ------------------------------------------------------------------ */

struct client {
	struct sip *sip;
	const struct sa *dst;
	char aor[128];          /* canonical AOR, for the disk check */
	uint16_t scode;
	char reason[128];
	char contacts[4096];    /* Contact values, each + "\n"     */
	unsigned ncontacts;
	char min_expires[32];
	char path[256];
	bool has_date;
	long rows;              /* rows of aor on disk at the 200  */
	uint16_t lport;         /* our port                        */
};


static bool contact_handler(const struct sip_hdr *hdr,
			    const struct sip_msg *msg, void *arg)
{
	struct client *c = arg;
	size_t n = strlen(c->contacts);
	(void)msg;

	(void)re_snprintf(c->contacts + n, sizeof(c->contacts) - n, "%r\n",
			  &hdr->val);
	++c->ncontacts;

	return false;
}


static bool path_handler(const struct sip_hdr *hdr,
			 const struct sip_msg *msg, void *arg)
{
	struct client *c = arg;
	size_t n = strlen(c->path);
	(void)msg;

	(void)re_snprintf(c->path + n, sizeof(c->path) - n, "%s%r",
			  n ? "," : "", &hdr->val);

	return false;
}


static void client_resp(int err, const struct sip_msg *msg, void *arg)
{
	struct client *c = arg;
	const struct sip_hdr *h;

	if (!err && msg && msg->scode < 200)
		return;

	if (!err && msg) {
		c->scode = msg->scode;
		(void)pl_strcpy(&msg->reason, c->reason, sizeof(c->reason));
		(void)sip_msg_hdr_apply(msg, true, SIP_HDR_CONTACT,
					contact_handler, c);
		h = sip_msg_xhdr(msg, "Min-Expires");
		if (h)
			(void)pl_strcpy(&h->val, c->min_expires,
					sizeof(c->min_expires));
		(void)sip_msg_hdr_apply(msg, true, SIP_HDR_PATH,
					path_handler, c);
		c->has_date = sip_msg_xhdr(msg, "Date") != NULL;
		if (msg->scode == 200 && c->aor[0])
			c->rows = db_rows(c->aor);
	}

	re_cancel();
}


static int client_alloc(struct client *c, const struct sa *dst)
{
	struct sa laddr;
	int err;

	memset(c, 0, sizeof(*c));
	c->dst = dst;
	err = sip_alloc(&c->sip, NULL, 16, 16, 16, "test-client", NULL, NULL);
	if (err)
		return err;

	(void)sa_set_str(&laddr, "127.0.0.1", 0);
	err = sip_transp_add(c->sip, SIP_TRANSP_UDP, &laddr);
	if (err)
		return err;

	err = sip_transp_laddr(c->sip, &laddr, SIP_TRANSP_UDP, NULL);
	c->lport = sa_port(&laddr);

	return err;
}


static void client_free(struct client *c)
{
	if (c->sip) {
		sip_close(c->sip, true);
		c->sip = mem_deref(c->sip);
	}
}


/* Sends a REGISTER for to (To and From), waits for the final answer.
 * aor: canonical AOR whose rows are counted at a 200 (or NULL). */
static bool reg(struct client *c, const char *to, const char *aor,
		const char *callid, uint32_t cseq, const char *hdrs)
{
	char uri[64];
	int err;

	c->scode = 0;
	c->reason[0] = c->contacts[0] = c->min_expires[0] = '\0';
	c->path[0] = '\0';
	c->ncontacts = 0;
	c->has_date = false;
	c->rows = -1;
	str_ncpy(c->aor, aor ? aor : "", sizeof(c->aor));

	(void)re_snprintf(uri, sizeof(uri), "sip:registrar@%J", c->dst);

	err = sip_requestf(NULL, c->sip, true, "REGISTER", uri, NULL, NULL,
			   NULL, client_resp, c,
			   "To: <%s>\r\n"
			   "From: <%s>;tag=%x\r\n"
			   "Call-ID: %s\r\n"
			   "CSeq: %u REGISTER\r\n"
			   "%s"
			   "Content-Length: 0\r\n\r\n",
			   to, to, rand_u32(), callid, cseq, hdrs);
	if (err)
		return false;

	return run_loop(5000) && c->scode;
}


/* the Contact of the 200 that starts with prefix (a full line) */
static bool has_contact(const struct client *c, const char *line)
{
	const char *p = c->contacts;
	size_t n = strlen(line);

	while ((p = strstr(p, line)) != NULL) {
		if ((p == c->contacts || p[-1] == '\n') && p[n] == '\n')
			return true;
		p += n;
	}

	printf("# no contact line %s in:\n# %s", line, c->contacts);

	return false;
}


/* ------------------------------------------------------------------ *
 * Tests
 * ------------------------------------------------------------------ */

static void test_config(struct location *loc)
{
	struct registrar_config cfg;
	struct registrar *r = NULL;

	registrar_config_default(&cfg);
	CHECK(cfg.min_expires == 60 && cfg.max_expires == 86400 &&
	      cfg.default_expires == 3600, "config defaults");

	cfg.min_expires = 100;
	cfg.max_expires = 50;
	CHECK(registrar_alloc(&r, loc, &cfg) == EINVAL,
	      "min_expires > max_expires refused");
	registrar_config_default(&cfg);
	cfg.default_expires = 0;
	CHECK(registrar_alloc(&r, loc, &cfg) == EINVAL,
	      "default_expires 0 refused");
	CHECK(registrar_alloc(&r, NULL, NULL) == EINVAL,
	      "registrar_alloc checks its arguments");
	CHECK(registrar_handle(NULL, NULL, NULL, NULL) == EINVAL,
	      "registrar_handle checks its arguments");
}


static void test_register(struct server *sv, struct client *c)
{
	const char *alice = "sip:alice@example.com";
	struct loc_set *set = NULL;
	const struct loc_binding *b;
	char want[256];
	bool ok;

	/* one Contact, Expires header */
	ok = reg(c, alice, alice, "a1", 1,
		 "Contact: <sip:alice@10.0.0.1:5060>\r\nExpires: 3600\r\n");
	CHECK(ok && c->scode == 200 && c->ncontacts == 1 &&
	      has_contact(c, "<sip:alice@10.0.0.1:5060>;expires=3600"),
	      "200 lists the binding with its expiry");
	CHECK(c->has_date, "200 has a Date header");
	CHECK(c->rows == 1, "200 sent once the binding is on disk");

	/* several Contacts: two headers, a comma list, compact form; the
	 * expires param wins over Expires */
	ok = reg(c, alice, alice, "a1", 2,
		 "Contact: <sip:alice@10.0.0.2>;expires=120, "
		 "<sip:alice@10.0.0.3>;q=0.5\r\n"
		 "Contact: sip:alice@10.0.0.4;expires=300;q=0.25\r\n"
		 "m: \"Alice\" <sip:alice@10.0.0.5;transport=tcp>\r\n"
		 "Expires: 1800\r\n");
	CHECK(ok && c->scode == 200 && c->ncontacts == 5,
	      "several Contacts in several headers: 200 lists all five");
	CHECK(has_contact(c, "<sip:alice@10.0.0.2>;expires=120"),
	      "expires param wins over the Expires header");
	CHECK(has_contact(c, "<sip:alice@10.0.0.3>;expires=1800;q=0.5") &&
	      has_contact(c, "<sip:alice@10.0.0.4>;expires=300;q=0.25") &&
	      has_contact(c, "<sip:alice@10.0.0.5;transport=tcp>;"
			  "expires=1800"),
	      "Expires header applies to Contacts without the param; q "
	      "shown when not 1");
	CHECK(c->rows == 5, "all five on disk at the 200");
	CHECK(!strncmp(c->contacts, "<sip:alice@10.0.0.", 18) &&
	      strstr(c->contacts, "q=0.25\n") ==
	      c->contacts + strlen(c->contacts) - 7,
	      "highest q first, lowest last");

	/* max clamp, default expiry */
	ok = reg(c, "sip:clamp@example.com", "sip:clamp@example.com", "c1", 1,
		 "Contact: <sip:clamp@10.0.0.1>;expires=100000\r\n"
		 "Contact: <sip:clamp@10.0.0.2>\r\n");
	CHECK(ok && c->scode == 200 &&
	      has_contact(c, "<sip:clamp@10.0.0.1>;expires=7200"),
	      "expiry above max_expires clamped");
	CHECK(has_contact(c, "<sip:clamp@10.0.0.2>;expires=3600"),
	      "no Expires and no param: default_expires");

	/* below the minimum: 423 with Min-Expires, nothing changed */
	ok = reg(c, alice, alice, "a1", 3,
		 "Contact: <sip:alice@10.0.0.7>;expires=30\r\n");
	CHECK(ok && c->scode == 423 && !strcmp(c->min_expires, "60"),
	      "expiry below min_expires: 423 with Min-Expires: 60");
	CHECK(db_rows(alice) == 5, "423 changed nothing");
	ok = reg(c, alice, alice, "a1", 4,
		 "Contact: <sip:alice@10.0.0.8>\r\nExpires: 59\r\n");
	CHECK(ok && c->scode == 423, "Expires header below the minimum: 423");

	/* query, through a non-canonical To */
	ok = reg(c, "sip:alice@EXAMPLE.COM", alice, "q1", 1, "");
	CHECK(ok && c->scode == 200 && c->ncontacts == 5 && c->has_date,
	      "no Contact: a query, 200 lists the bindings");
	CHECK(c->rows == 5, "query is answered from committed state");
	ok = reg(c, "sip:Alice@example.com", NULL, "q1", 2, "");
	CHECK(ok && c->scode == 200 && c->ncontacts == 0,
	      "the user part of the AOR is case-sensitive");

	/* Call-ID / CSeq ordering (§10.3 step 7) */
	ok = reg(c, alice, alice, "a1", 2,
		 "Contact: <sip:alice@10.0.0.2>\r\n");
	CHECK(ok && c->scode == 500 &&
	      !strcmp(c->reason, "Out of Order CSeq"),
	      "same Call-ID, CSeq not higher than the binding's: 500 Out "
	      "of Order CSeq");
	ok = reg(c, alice, alice, "a1", 1,
		 "Contact: <sip:alice@10.0.0.2>;expires=0\r\n");
	CHECK(ok && c->scode == 500, "same Call-ID, lower CSeq: 500 (a "
	      "removal too)");
	ok = reg(c, alice, alice, "a1", 2,
		 "Contact: <sip:alice@10.0.0.1:5060>\r\n");
	CHECK(ok && c->scode == 200, "the rule is per binding: CSeq 2 "
	      "above this binding's 1 is fine");
	CHECK(db_rows(alice) == 5, "out-of-order REGISTER changed nothing");
	ok = reg(c, alice, alice, "a2", 1,
		 "Contact: <sip:alice@10.0.0.2>;expires=0\r\n");
	CHECK(ok && c->scode == 200 && c->ncontacts == 4 && c->rows == 4,
	      "other Call-ID: the binding is removed (expires=0)");
	ok = reg(c, alice, alice, "a1", 5,
		 "Contact: <sip:alice@10.0.0.1:5060>;expires=600\r\n");
	CHECK(ok && c->scode == 200 &&
	      has_contact(c, "<sip:alice@10.0.0.1:5060>;expires=600"),
	      "same Call-ID, higher CSeq: refreshed");

	/* Contact: * misuse */
	ok = reg(c, alice, alice, "a3", 1, "Contact: *\r\n");
	CHECK(ok && c->scode == 400 && strstr(c->reason, "Contact"),
	      "* without Expires: 400 naming Contact");
	ok = reg(c, alice, alice, "a3", 2, "Contact: *\r\nExpires: 60\r\n");
	CHECK(ok && c->scode == 400, "* with Expires: 60: 400");
	ok = reg(c, alice, alice, "a3", 3,
		 "Contact: *, <sip:alice@10.0.0.9>\r\nExpires: 0\r\n");
	CHECK(ok && c->scode == 400 && strstr(c->reason, "Contact"),
	      "* with another Contact: 400");
	CHECK(db_rows(alice) == 4, "400s changed nothing");

	/* Contact: * with Expires: 0 */
	ok = reg(c, alice, alice, "a3", 4, "Contact: *\r\nExpires: 0\r\n");
	CHECK(ok && c->scode == 200 && c->ncontacts == 0 && c->rows == 0,
	      "* with Expires: 0 removes every binding");

	/* malformed */
	ok = reg(c, "sip:bob@example.com", NULL, "b1", 1,
		 "Contact: <sip:bob@10.0.0.1>;q=1.5\r\n");
	CHECK(ok && c->scode == 400 && strstr(c->reason, "Contact") &&
	      strstr(c->reason, "q"), "q above 1: 400 naming Contact q");
	ok = reg(c, "sip:bob@example.com", NULL, "b1", 2,
		 "Contact: <sip:bob@10.0.0.1>;q=0.1234\r\n");
	CHECK(ok && c->scode == 400, "q with 4 decimals: 400");
	ok = reg(c, "sip:bob@example.com", NULL, "b1", 3,
		 "Contact: <sip:bob@10.0.0.1>;q=high\r\n");
	CHECK(ok && c->scode == 400, "q not a number: 400");
	ok = reg(c, "sip:bob@example.com", NULL, "b1", 4,
		 "Contact: <sip:bob@10.0.0.1\r\n");
	CHECK(ok && c->scode == 400 && strstr(c->reason, "Contact"),
	      "unclosed <: 400 naming Contact");
	ok = reg(c, "sip:bob@example.com", NULL, "b1", 5,
		 "Contact: just-text\r\n");
	CHECK(ok && c->scode == 400 && strstr(c->reason, "Contact"),
	      "Contact not a URI: 400 naming Contact");
	ok = reg(c, "sip:bob@example.com", NULL, "b1", 6,
		 "Contact: <sip:bob@10.0.0.1>;expires=soon\r\n");
	CHECK(ok && c->scode == 400 && strstr(c->reason, "Contact") &&
	      strstr(c->reason, "expires"),
	      "bad expires param: 400 naming Contact expires");
	ok = reg(c, "sip:bob@example.com", NULL, "b1", 7,
		 "Contact: <sip:bob@10.0.0.1>\r\nExpires: soon\r\n");
	CHECK(ok && c->scode == 400 && strstr(c->reason, "Expires"),
	      "bad Expires header: 400 naming Expires");
	ok = reg(c, "sip:bob@example.com", NULL, "b1", 8,
		 "Contact: <sip:bob@10.0.0.1>\r\nExpires: -5\r\n");
	CHECK(ok && c->scode == 400 && strstr(c->reason, "Expires"),
	      "negative Expires: 400 naming Expires");
	ok = reg(c, "sip:bob@example.com", NULL, "b1", 9,
		 "Contact: <sip:bob@10.0.0.1>;+sip.instance=\"<urn:x>\";"
		 "reg-id=zero\r\n");
	CHECK(ok && c->scode == 400 && strstr(c->reason, "reg-id"),
	      "bad reg-id: 400");
	ok = reg(c, "tel:+15551234", NULL, "b1", 10,
		 "Contact: <sip:bob@10.0.0.1>\r\n");
	CHECK(ok && c->scode == 400 && strstr(c->reason, "To"),
	      "To not a SIP URI: 400 naming To");
	CHECK(db_rows("sip:bob@example.com") == 0,
	      "malformed requests stored nothing");

	/* RFC 5626 and RFC 3327 */
	ok = reg(c, "sip:carol@example.com", "sip:carol@example.com", "c1", 1,
		 "Contact: <sip:carol@192.0.2.5:5070;transport=tcp>;"
		 "+sip.instance=\"<urn:uuid:00000000-0000-1000-8000-"
		 "000A95A0E128>\";reg-id=1;expires=600\r\n"
		 "Path: <sip:edge1.example.net;lr>\r\n"
		 "Path: <sip:edge2.example.net;lr>, <sip:edge3;lr>\r\n"
		 "Supported: path, outbound\r\n"
		 "User-Agent: softphone/2.1\r\n");
	CHECK(ok && c->scode == 200 && c->ncontacts == 1 &&
	      has_contact(c, "<sip:carol@192.0.2.5:5070;transport=tcp>;"
			  "expires=600;+sip.instance=\"<urn:uuid:00000000-"
			  "0000-1000-8000-000A95A0E128>\";reg-id=1"),
	      "200 echoes +sip.instance and reg-id");
	CHECK(!strcmp(c->path, "<sip:edge1.example.net;lr>,"
		      "<sip:edge2.example.net;lr>,<sip:edge3;lr>"),
	      "Path echoed in order when the UA supports path");

	(void)location_lookup(&set, sv->loc, "sip:carol@example.com");
	b = loc_set_binding(set, 0);
	(void)re_snprintf(want, sizeof(want), "sip:127.0.0.1:%u", c->lport);
	CHECK(b && b->reg_id == 1 &&
	      !strcmp(b->instance, "<urn:uuid:00000000-0000-1000-8000-"
		      "000A95A0E128>"),
	      "lookup returns +sip.instance and reg-id");
	CHECK(b && !strcmp(b->path, "<sip:edge1.example.net;lr>,"
			   "<sip:edge2.example.net;lr>,<sip:edge3;lr>"),
	      "lookup returns the Path, in order");
	CHECK(b && !strcmp(b->received, want) &&
	      !strcmp(b->user_agent, "softphone/2.1") &&
	      !strcmp(b->callid, "c1") && b->cseq == 1,
	      "lookup returns received, User-Agent, Call-ID, CSeq");
	set = mem_deref(set);

	/* a new flow of the same instance and reg-id replaces it */
	ok = reg(c, "sip:carol@example.com", "sip:carol@example.com", "c1", 2,
		 "Contact: <sip:carol@198.51.100.1:6000>;"
		 "+sip.instance=\"<urn:uuid:00000000-0000-1000-8000-"
		 "000A95A0E128>\";reg-id=1\r\n");
	CHECK(ok && c->scode == 200 && c->ncontacts == 1 && c->rows == 1 &&
	      strstr(c->contacts, "198.51.100.1") && !c->path[0],
	      "same instance and reg-id: replaced; no Path without one");

	ok = reg(c, "sip:dave@example.com", NULL, "d1", 1,
		 "Contact: <sip:dave@10.0.0.1>\r\n"
		 "Path: <sip:edge1.example.net;lr>\r\n");
	CHECK(ok && c->scode == 200 && !c->path[0],
	      "Path not echoed when the UA does not support path");

	/* a min_expires above an hour: an hour is never too brief */
	{
		struct registrar_config cfg;
		struct registrar *keep = sv->reg, *r = NULL;

		registrar_config_default(&cfg);
		cfg.min_expires = 7200;
		if (!registrar_alloc(&r, sv->loc, &cfg)) {
			sv->reg = r;
			ok = reg(c, "sip:erin@example.com", NULL, "e1", 1,
				 "Contact: <sip:erin@10.0.0.1>;"
				 "expires=1800\r\n");
			CHECK(ok && c->scode == 423 &&
			      !strcmp(c->min_expires, "7200"),
			      "min_expires 7200: 1800 s is too brief");
			ok = reg(c, "sip:erin@example.com", NULL, "e1", 2,
				 "Contact: <sip:erin@10.0.0.1>;"
				 "expires=3600\r\n");
			CHECK(ok && c->scode == 200 &&
			      has_contact(c, "<sip:erin@10.0.0.1>;"
					  "expires=3600"),
			      "min_expires 7200: 3600 s accepted (§10.3 "
			      "step 7: an hour is never too brief)");
			sv->reg = keep;
			mem_deref(r);
		}
	}

	CHECK(sv->sync_done == 0 && sv->done == sv->handled,
	      "done handler once per request, never from inside handle()");
}


/* A burst of REGISTERs answered from the store's done handlers: the
 * registrar's batch hook holds the 200s of each group commit and they
 * leave together. Sent from a done handler (not from inside a read of
 * the server's socket), a 200 goes through udpbatch's queue only
 * because of that hook. */
enum { BURST = 16 };

struct burst {
	unsigned answers;
	unsigned ok;
};


static void burst_resp(int err, const struct sip_msg *msg, void *arg)
{
	struct burst *b = arg;

	if (!err && msg && msg->scode < 200)
		return;

	if (!err && msg && msg->scode == 200)
		++b->ok;
	if (++b->answers == BURST)
		re_cancel();
}


static void test_group_replies(struct server *sv, struct client *c)
{
	struct udpbatch_stats s0, s1;
	struct burst b = {0, 0};
	char uri[64];
	unsigned i;
	int err = 0;
	bool done;

	(void)re_snprintf(uri, sizeof(uri), "sip:registrar@%J", c->dst);

	udpbatch_stats(&s0);
	for (i = 0; i < BURST && !err; i++) {
		char to[64];

		(void)re_snprintf(to, sizeof(to), "sip:burst%u@example.com",
				  i);
		err = sip_requestf(NULL, c->sip, true, "REGISTER", uri, NULL,
				   NULL, NULL, burst_resp, &b,
				   "To: <%s>\r\n"
				   "From: <%s>;tag=%x\r\n"
				   "Call-ID: burst-%u\r\n"
				   "CSeq: 1 REGISTER\r\n"
				   "Contact: <sip:b%u@10.0.0.7>\r\n"
				   "Content-Length: 0\r\n\r\n",
				   to, to, rand_u32(), i, i);
	}
	done = !err && run_loop(10000);
	udpbatch_stats(&s1);

	printf("# %u REGISTERs: %llu datagrams queued, %llu sendmmsg\n",
	       BURST,
	       (unsigned long long)(s1.tx_datagrams - s0.tx_datagrams),
	       (unsigned long long)(s1.sendmmsg_calls - s0.sendmmsg_calls));
	CHECK(done && b.ok == BURST, "a burst of REGISTERs: every one 200");
	CHECK(s1.tx_datagrams - s0.tx_datagrams >= BURST &&
	      s1.sendmmsg_calls - s0.sendmmsg_calls <= BURST / 2,
	      "the 200s of a group commit leave together (udpbatch queue, "
	      "fewer sendmmsg than replies)");
}


int main(void)
{
	struct registrar_config rcfg;
	struct server sv;
	struct client c;
	struct sa laddr;
	char spec[160], path[192];
	int err;

	err = libre_init();
	if (err)
		return 1;

	log_set_level(LOG_WARN);
	tmr_init(&watchdog);
	memset(&sv, 0, sizeof(sv));
	memset(&c, 0, sizeof(c));

	str_ncpy(tmpdir, "/tmp/sipstack-reg-XXXXXX", sizeof(tmpdir));
	CHECK(mkdtemp(tmpdir) != NULL, "mkdtemp");
	(void)re_snprintf(dbpath, sizeof(dbpath), "%s/location.db", tmpdir);
	(void)re_snprintf(spec, sizeof(spec), "sqlite:%s", dbpath);

	err = location_open(&sv.loc, spec, NULL);
	CHECK(!err, "location store on sqlite");
	if (err)
		goto out;

	test_config(sv.loc);

	registrar_config_default(&rcfg);
	rcfg.max_expires = 7200;
	err = registrar_alloc(&sv.reg, sv.loc, &rcfg);
	CHECK(!err && registrar_location(sv.reg) == sv.loc &&
	      registrar_config(sv.reg)->max_expires == 7200,
	      "registrar_alloc");
	if (err)
		goto out;

	err = stack_alloc(&sv.st, NULL);
	(void)sa_set_str(&laddr, "127.0.0.1", 0);
	err |= stack_listen(sv.st, SIP_TRANSP_UDP, &laddr, NULL);
	err |= stack_start(sv.st);
	err |= sip_transp_laddr(stack_sip(sv.st), &sv.addr, SIP_TRANSP_UDP,
				NULL);
	CHECK(!err, "stack on 127.0.0.1");
	if (err)
		goto out;
	(void)stack_handler_set(&hd_register, sv.st, "REGISTER", "REGISTER", STACK_OUT_OF_DIALOG, reg_hook, &sv);

	err = client_alloc(&c, &sv.addr);
	CHECK(!err, "client");
	if (err)
		goto out;

	test_register(&sv, &c);
	test_group_replies(&sv, &c);

 out:
	client_free(&c);
	mem_deref(sv.st);
	mem_deref(sv.reg);
	mem_deref(sv.loc);

	(void)re_snprintf(path, sizeof(path), "%s-wal", dbpath);
	(void)unlink(path);
	(void)re_snprintf(path, sizeof(path), "%s-shm", dbpath);
	(void)unlink(path);
	(void)unlink(dbpath);
	CHECK(rmdir(tmpdir) == 0, "temp dir removed");

	libre_close();

	printf("1..%d\n", ntest);

	return nfail ? 1 : 0;
}
