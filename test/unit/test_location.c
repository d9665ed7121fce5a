/**
 * test/unit/test_location.c  The location store (server/registrar/location.c)
 *
 * TAP program. Covers: AOR canonicalisation; the memory backend (add,
 * refresh, remove, the Call-ID/CSeq ordering rules of RFC 3261 §10.3
 * step 7, wildcard, q ordering, RFC 5626 instance matching, URI
 * equality, max_bindings, queries waiting for earlier writes); expiry
 * (lookups hide, the purge timer deletes); the sqlite backend in a
 * mkdtemp() directory: durability (every binding is back after a
 * re-open in a fresh store), group commit (fewer commits than writes
 * under a burst), a failing commit (a trigger added from another
 * connection) reported to every done handler and followed by a reload,
 * pending writes committed when the store is freed, schema version; the
 * batch hook (location_set_batch) around every group commit's done
 * handlers, also when the store is freed. The loop is driven by re_main() with a watchdog timer. Leaks: run
 * under valgrind by meson.
 */
#include <string.h>
#include <stdlib.h>
#include <stdio.h>
#include <unistd.h>
#include <sqlite3.h>
#include <re.h>
#include "sipstack.h"


#include "testutil.h"


static struct tmr sleeper;

static void sleeper_handler(void *arg)
{
	(void)arg;
	re_cancel();
}


/* let the loop run for ms */
static void run_for(uint32_t ms)
{
	tmr_start(&sleeper, ms, sleeper_handler, NULL);
	(void)re_main(NULL);
	tmr_cancel(&sleeper);
}


/* ------------------------------------------------------------------ *
 * Done handlers
 * ------------------------------------------------------------------ */

struct waiter {
	unsigned done;        /* handlers called              */
	unsigned target;      /* re_cancel() when reached     */
	unsigned errors;      /* handlers with err != 0       */
	int last_err;
	size_t last_count;    /* bindings in the last set     */
	struct loc_set *last; /* the last set (referenced)    */
};


static void done_handler(int err, const struct loc_set *set, void *arg)
{
	struct waiter *w = arg;

	++w->done;
	w->last_err = err;
	if (err)
		++w->errors;
	w->last_count = loc_set_count(set);
	mem_deref(w->last);
	w->last = set ? mem_ref((void *)set) : NULL;

	if (w->target && w->done >= w->target)
		re_cancel();
}


static void waiter_reset(struct waiter *w, unsigned target)
{
	mem_deref(w->last);
	memset(w, 0, sizeof(*w));
	w->target = target;
}


/* one change: contact with expires/q, Call-ID and CSeq */
static int apply1(struct location *loc, const char *aor, const char *uri,
		  uint32_t expires, uint16_t q, const char *callid,
		  uint32_t cseq, struct waiter *w)
{
	struct loc_contact c;
	struct loc_change chg;

	memset(&c, 0, sizeof(c));
	pl_set_str(&c.uri, uri);
	c.expires = expires;
	c.q = q;

	memset(&chg, 0, sizeof(chg));
	pl_set_str(&chg.aor, aor);
	pl_set_str(&chg.callid, callid);
	chg.cseq = cseq;
	chg.contactv = &c;
	chg.contactc = 1;

	return location_apply(loc, &chg, done_handler, w);
}


/* apply1 and wait for its done handler */
static int apply1_wait(struct location *loc, const char *aor,
		       const char *uri, uint32_t expires, uint16_t q,
		       const char *callid, uint32_t cseq, struct waiter *w)
{
	int err;

	waiter_reset(w, 1);
	err = apply1(loc, aor, uri, expires, q, callid, cseq, w);
	if (err)
		return err;
	if (!run_loop(5000))
		return ETIMEDOUT;

	return w->last_err;
}


static size_t lookup_count(struct location *loc, const char *aor)
{
	struct loc_set *set = NULL;
	size_t n;

	if (location_lookup(&set, loc, aor))
		return (size_t)-1;
	n = loc_set_count(set);
	mem_deref(set);

	return n;
}


static const char *lookup_contact(struct location *loc, const char *aor,
				  size_t i, char *buf, size_t sz)
{
	struct loc_set *set = NULL;
	const struct loc_binding *b;

	buf[0] = '\0';
	if (location_lookup(&set, loc, aor))
		return buf;
	b = loc_set_binding(set, i);
	if (b)
		str_ncpy(buf, b->contact, sz);
	mem_deref(set);

	return buf;
}


/* ------------------------------------------------------------------ *
 * AOR
 * ------------------------------------------------------------------ */

static bool aor_is(const char *in, const char *want)
{
	struct uri uri;
	struct pl pl;
	char *aor = NULL;
	bool ok;

	pl_set_str(&pl, in);
	if (uri_decode(&uri, &pl))
		return false;
	if (location_aor(&aor, &uri))
		return false;
	ok = !strcmp(aor, want);
	if (!ok)
		printf("# aor of %s: %s (want %s)\n", in, aor, want);
	mem_deref(aor);

	return ok;
}


static void test_aor(void)
{
	struct uri uri;
	struct pl pl;
	char *aor = NULL;

	CHECK(aor_is("sip:Alice@Example.COM", "sip:Alice@example.com"),
	      "aor: host lowercased, user kept");
	CHECK(aor_is("SIPS:bob@EX.org:5061;transport=tcp?subject=x",
		     "sips:bob@ex.org:5061"),
	      "aor: scheme lowercased, port kept, params/headers dropped");
	CHECK(aor_is("sip:example.com", "sip:example.com"),
	      "aor: no user");
	CHECK(aor_is("sip:u@[::1]:5070", "sip:u@[::1]:5070"),
	      "aor: IPv6 host");

	pl_set_str(&pl, "tel:+15551234");
	CHECK(!uri_decode(&uri, &pl) && location_aor(&aor, &uri) == ENOTSUP,
	      "aor: tel URI refused");
	CHECK(location_aor(NULL, &uri) == EINVAL, "aor: checks arguments");
}


/* ------------------------------------------------------------------ *
 * Memory backend: the rules
 * ------------------------------------------------------------------ */

static void test_rules(void)
{
	struct location_config cfg;
	struct location_stats st;
	struct location *loc = NULL;
	struct loc_contact cv[3];
	struct loc_change chg;
	struct waiter w = {0};
	const char *aor = "sip:alice@example.com";
	char buf[128];
	int err;

	CHECK(location_open(&loc, "nosuch:x", NULL) == ENOTSUP,
	      "unknown backend refused");

	location_config_default(&cfg);
	cfg.max_bindings = 4;
	err = location_open(&loc, "memory:", &cfg);
	CHECK(!err && loc, "open memory:");
	if (err)
		return;

	err = apply1_wait(loc, aor, "sip:alice@10.0.0.1", 3600, 1000,
			  "call-1", 1, &w);
	CHECK(!err && w.done == 1 && w.last_count == 1,
	      "add: done handler with the new set");
	CHECK(w.last && !strcmp(loc_set_aor(w.last), aor),
	      "set names its AOR");
	CHECK(lookup_count(loc, aor) == 1, "lookup sees the binding");
	CHECK(lookup_count(loc, "sip:nobody@example.com") == 0,
	      "lookup of an unknown AOR: empty set");

	/* §10.3 step 7: same Call-ID needs a higher CSeq */
	CHECK(apply1(loc, aor, "sip:alice@10.0.0.1", 3600, 1000, "call-1",
		     1, &w) == EPROTO, "same Call-ID, same CSeq: EPROTO");
	CHECK(apply1(loc, aor, "sip:alice@10.0.0.1", 0, 1000, "call-1",
		     0, &w) == EPROTO, "same Call-ID, lower CSeq: EPROTO "
	      "(remove refused too)");
	err = apply1_wait(loc, aor, "sip:alice@10.0.0.1", 1800, 1000,
			  "call-1", 2, &w);
	CHECK(!err && w.last_count == 1, "same Call-ID, higher CSeq: "
	      "refreshed");
	err = apply1_wait(loc, aor, "sip:alice@10.0.0.1", 1200, 1000,
			  "call-other", 1, &w);
	CHECK(!err && w.last_count == 1,
	      "other Call-ID, any CSeq: refreshed");
	CHECK(w.last && loc_binding_expires(loc_set_binding(w.last, 0),
					    location_clock()) == 1200,
	      "refresh replaced the expiry");

	/* a new contact with an equal URI (host case) replaces it */
	err = apply1_wait(loc, aor, "sip:alice@10.0.0.1;transport=udp", 600,
			  1000, "call-other", 2, &w);
	CHECK(!err && w.last_count == 2,
	      "transport param makes a different URI (§19.1.4)");
	err = apply1_wait(loc, aor, "SIP:alice@10.0.0.1;Transport=UDP", 600,
			  1000, "call-other", 3, &w);
	CHECK(!err && w.last_count == 2, "scheme/host/param case do not "
	      "make a new binding");
	err = apply1_wait(loc, aor, "sip:ALICE@10.0.0.1", 600, 1000,
			  "call-other", 4, &w);
	CHECK(!err && w.last_count == 3, "user is case-sensitive");

	/* q ordering: q desc, then most recent first */
	err = apply1_wait(loc, aor, "sip:ALICE@10.0.0.1", 600, 500,
			  "call-other", 5, &w);
	err |= apply1_wait(loc, aor, "sip:alice@10.0.0.1", 600, 700,
			   "call-other", 6, &w);
	CHECK(!err && !strcmp(lookup_contact(loc, aor, 0, buf, sizeof(buf)),
			      "SIP:alice@10.0.0.1;Transport=UDP") &&
	      !strcmp(lookup_contact(loc, aor, 1, buf, sizeof(buf)),
		      "sip:alice@10.0.0.1") &&
	      !strcmp(lookup_contact(loc, aor, 2, buf, sizeof(buf)),
		      "sip:ALICE@10.0.0.1"), "lookup ordered by q");
	err = apply1_wait(loc, aor, "sip:ALICE@10.0.0.1", 600, 700,
			  "call-other", 7, &w);
	CHECK(!err && !strcmp(lookup_contact(loc, aor, 1, buf, sizeof(buf)),
			      "sip:ALICE@10.0.0.1"),
	      "equal q: most recent first");
	{
		struct loc_set *set = NULL;
		char dbg[2048];

		(void)location_lookup(&set, loc, aor);
		(void)re_snprintf(dbg, sizeof(dbg), "%H", loc_set_debug, set);
		CHECK(strstr(dbg, "bindings=3") && strstr(dbg, "q=0.700") &&
		      strstr(dbg, "contact=sip:ALICE@10.0.0.1 "),
		      "loc_set_debug prints the bindings");
		(void)re_snprintf(dbg, sizeof(dbg), "%H", location_debug, loc);
		CHECK(strstr(dbg, "backend=memory aors=1 bindings=3"),
		      "location_debug prints the counters");
		mem_deref(set);
	}

	/* remove one */
	err = apply1_wait(loc, aor, "sip:alice@10.0.0.1", 0, 1000,
			  "call-other", 8, &w);
	CHECK(!err && w.last_count == 2 && lookup_count(loc, aor) == 2,
	      "expires 0 removes the binding");

	/* max_bindings */
	memset(cv, 0, sizeof(cv));
	pl_set_str(&cv[0].uri, "sip:a@1.1.1.1");
	pl_set_str(&cv[1].uri, "sip:b@1.1.1.1");
	pl_set_str(&cv[2].uri, "sip:c@1.1.1.1");
	cv[0].expires = cv[1].expires = cv[2].expires = 60;
	cv[0].q = cv[1].q = cv[2].q = 1000;
	memset(&chg, 0, sizeof(chg));
	pl_set_str(&chg.aor, aor);
	pl_set_str(&chg.callid, "call-many");
	chg.cseq = 1;
	chg.contactv = cv;
	chg.contactc = 3;
	CHECK(location_apply(loc, &chg, done_handler, &w) == EOVERFLOW &&
	      lookup_count(loc, aor) == 2, "max_bindings: EOVERFLOW, "
	      "nothing changed");

	/* wildcard: same Call-ID with a CSeq not higher fails */
	memset(&chg, 0, sizeof(chg));
	pl_set_str(&chg.aor, aor);
	pl_set_str(&chg.callid, "call-other");
	chg.cseq = 7;   /* sip:ALICE@10.0.0.1 has CSeq 7 */
	chg.wildcard = true;
	CHECK(location_apply(loc, &chg, done_handler, &w) == EPROTO,
	      "wildcard out of order: EPROTO");
	chg.contactv = cv;
	chg.contactc = 1;
	CHECK(location_apply(loc, &chg, done_handler, &w) == EINVAL,
	      "wildcard with contacts: EINVAL");
	chg.contactv = NULL;
	chg.contactc = 0;
	chg.cseq = 9;
	waiter_reset(&w, 1);
	err = location_apply(loc, &chg, done_handler, &w);
	CHECK(!err && run_loop(5000) && !w.last_err && w.last_count == 0 &&
	      lookup_count(loc, aor) == 0, "wildcard removes every binding");

	location_stats(loc, &st);
	CHECK(st.aors == 0 && st.bindings == 0 && st.pending == 0,
	      "empty AOR leaves memory");

	/* RFC 5626: same instance and reg-id replace, whatever the URI */
	memset(cv, 0, sizeof(cv));
	pl_set_str(&cv[0].uri, "sip:bob@192.0.2.1:5060");
	pl_set_str(&cv[0].instance, "<urn:uuid:00000000-0000-1000-8000-1>");
	cv[0].reg_id = 1;
	cv[0].expires = 300;
	cv[0].q = 1000;
	pl_set_str(&cv[1].uri, "sip:bob@192.0.2.1:5062");
	pl_set_str(&cv[1].instance, "<urn:uuid:00000000-0000-1000-8000-1>");
	cv[1].reg_id = 2;
	cv[1].expires = 300;
	cv[1].q = 1000;
	memset(&chg, 0, sizeof(chg));
	pl_set_str(&chg.aor, "sip:bob@example.com");
	pl_set_str(&chg.callid, "bob-1");
	chg.cseq = 1;
	chg.contactv = cv;
	chg.contactc = 2;
	pl_set_str(&chg.path, "<sip:edge1.example.com;lr>,<sip:e2;lr>");
	pl_set_str(&chg.received, "sip:192.0.2.1:40000");
	pl_set_str(&chg.user_agent, "phone/1.0");
	waiter_reset(&w, 1);
	err = location_apply(loc, &chg, done_handler, &w);
	CHECK(!err && run_loop(5000) && w.last_count == 2,
	      "two flows of one instance (reg-id 1 and 2)");

	pl_set_str(&cv[0].uri, "sip:bob@198.51.100.7:6000");
	pl_set_str(&chg.callid, "bob-2");
	chg.contactc = 1;
	waiter_reset(&w, 1);
	err = location_apply(loc, &chg, done_handler, &w);
	CHECK(!err && run_loop(5000) && w.last_count == 2,
	      "same instance and reg-id, new URI: replaced, not added");
	{
		struct loc_set *set = NULL;
		const struct loc_binding *b = NULL;
		size_t i;

		(void)location_lookup(&set, loc, "sip:bob@example.com");
		for (i = 0; i < loc_set_count(set); i++) {
			b = loc_set_binding(set, i);
			if (b->reg_id == 1)
				break;
		}
		CHECK(b && b->reg_id == 1 &&
		      !strcmp(b->contact, "sip:bob@198.51.100.7:6000") &&
		      !strcmp(b->instance,
			      "<urn:uuid:00000000-0000-1000-8000-1>") &&
		      !strcmp(b->path,
			      "<sip:edge1.example.com;lr>,<sip:e2;lr>") &&
		      !strcmp(b->received, "sip:192.0.2.1:40000") &&
		      !strcmp(b->user_agent, "phone/1.0") &&
		      !strcmp(b->callid, "bob-2") && b->cseq == 1,
		      "instance, reg-id, Path, received, User-Agent stored");
		mem_deref(set);
	}

	/* a query waits for the writes before it, in order */
	memset(&chg, 0, sizeof(chg));
	pl_set_str(&chg.aor, "sip:bob@example.com");
	pl_set_str(&chg.callid, "bob-q");
	chg.cseq = 1;
	waiter_reset(&w, 2);
	err = apply1(loc, "sip:bob@example.com", "sip:bob@203.0.113.9", 60,
		     1000, "bob-3", 1, &w);
	err |= location_apply(loc, &chg, done_handler, &w);
	CHECK(!err && run_loop(5000) && w.done == 2 && w.last_count == 3,
	      "query answered after the write before it, with its result");

	CHECK(location_apply(loc, NULL, done_handler, &w) == EINVAL,
	      "apply checks its arguments");

	waiter_reset(&w, 0);
	mem_deref(loc);
}


/* ------------------------------------------------------------------ *
 * Expiry
 * ------------------------------------------------------------------ */

static void test_expiry(void)
{
	struct location_config cfg;
	struct location_stats st;
	struct location *loc = NULL;
	struct waiter w = {0};
	int err;

	location_config_default(&cfg);
	cfg.purge_ms = 100;
	err = location_open(&loc, "memory:", &cfg);
	CHECK(!err, "open memory: with a 100 ms purge");
	if (err)
		return;

	err  = apply1_wait(loc, "sip:a@x", "sip:a@1.2.3.4", 1, 1000, "c", 1,
			   &w);
	err |= apply1_wait(loc, "sip:b@x", "sip:b@1.2.3.4", 1, 1000, "c", 1,
			   &w);
	err |= apply1_wait(loc, "sip:b@x", "sip:b2@1.2.3.4", 3600, 1000, "c",
			   2, &w);
	location_stats(loc, &st);
	CHECK(!err && st.bindings == 3 && st.aors == 2,
	      "three bindings, two of them for 1 s");

	run_for(1500);
	location_stats(loc, &st);
	CHECK(st.expired == 2 && st.bindings == 1 && st.aors == 1,
	      "purge timer removed the expired bindings and their AOR");
	CHECK(lookup_count(loc, "sip:a@x") == 0 &&
	      lookup_count(loc, "sip:b@x") == 1, "lookup after the purge");
	CHECK(st.pending == 0 && st.ops == 5,
	      "purge deletes went through the writer");

	waiter_reset(&w, 0);
	mem_deref(loc);

	/* without a purge, lookups still hide expired bindings */
	cfg.purge_ms = 60000;
	err = location_open(&loc, "memory:", &cfg);
	if (err)
		return;
	err = apply1_wait(loc, "sip:a@x", "sip:a@1.2.3.4", 1, 1000, "c", 1,
			  &w);
	run_for(1100);
	location_stats(loc, &st);
	CHECK(!err && st.bindings == 1 && lookup_count(loc, "sip:a@x") == 0,
	      "expired binding not purged yet is not looked up");
	err = apply1_wait(loc, "sip:a@x", "sip:a@1.2.3.4", 0, 1000, "c", 1,
			  &w);
	CHECK(!err, "expired binding does not count for the CSeq rule");

	waiter_reset(&w, 0);
	mem_deref(loc);
}


/* ------------------------------------------------------------------ *
 * The batch hook around a group commit's done handlers
 * ------------------------------------------------------------------ */

struct batch_probe {
	struct waiter w;
	unsigned begins, ends;
	unsigned depth;       /* 1 between begin and end          */
	unsigned outside;     /* done handlers run outside a batch */
	bool misnested;       /* begin inside a batch, end outside */
	void *arg_seen;
};


static void probe_batch(bool end, void *arg)
{
	struct batch_probe *p = arg;

	p->arg_seen = arg;
	if (!end) {
		p->misnested |= p->depth != 0;
		++p->depth;
		++p->begins;
	}
	else {
		p->misnested |= p->depth != 1;
		--p->depth;
		++p->ends;
	}
}


static void probe_done(int err, const struct loc_set *set, void *arg)
{
	struct batch_probe *p = arg;

	if (p->depth != 1)
		++p->outside;
	done_handler(err, set, &p->w);
}


static int probe_apply(struct location *loc, unsigned i,
		       struct batch_probe *p)
{
	struct loc_contact c;
	struct loc_change chg;
	char aor[48], uri[48];

	(void)re_snprintf(aor, sizeof(aor), "sip:hook%u@example.com", i);
	(void)re_snprintf(uri, sizeof(uri), "sip:hook%u@10.1.1.1", i);
	memset(&c, 0, sizeof(c));
	pl_set_str(&c.uri, uri);
	c.expires = 600;
	c.q = 1000;
	memset(&chg, 0, sizeof(chg));
	pl_set_str(&chg.aor, aor);
	pl_set_str(&chg.callid, "hook");
	chg.cseq = 1;
	chg.contactv = &c;
	chg.contactc = 1;

	return location_apply(loc, &chg, probe_done, p);
}


static void test_batch_hook(void)
{
	enum { N = 64 };
	struct batch_probe p;
	struct location *loc = NULL;
	unsigned i, begins;
	int err;

	memset(&p, 0, sizeof(p));
	err = location_open(&loc, "memory:", NULL);
	CHECK(!err, "open memory: for the batch hook");
	if (err)
		return;

	location_set_batch(loc, probe_batch, &p);
	p.w.target = N;
	for (i = 0; i < N && !err; i++)
		err = probe_apply(loc, i, &p);
	CHECK(!err && run_loop(5000) && p.w.done == N && !p.w.errors,
	      "a burst of changes, every done handler called");
	printf("# %u done handlers in %u batches\n", p.w.done, p.begins);
	CHECK(p.begins >= 1 && p.begins == p.ends && p.begins <= N &&
	      !p.depth && !p.misnested && p.arg_seen == &p,
	      "batch hook: begin and end in pairs, with the hook's arg");
	CHECK(p.outside == 0, "every done handler ran inside a batch");

	/* pending when the store is freed: still inside the hook */
	waiter_reset(&p.w, 0);
	begins = p.begins;
	err = probe_apply(loc, N, &p);
	mem_deref(loc);
	CHECK(!err && p.w.done == 1 && p.outside == 0 &&
	      p.begins == begins + 1 && p.ends == p.begins && !p.misnested,
	      "freeing the store: its last done handler inside the hook");

	/* no hook: nothing called */
	err = location_open(&loc, "memory:", NULL);
	if (err)
		return;
	location_set_batch(loc, probe_batch, &p);
	location_set_batch(loc, NULL, &p);
	begins = p.begins;
	waiter_reset(&p.w, 1);
	err = probe_apply(loc, 0, &p);
	CHECK(!err && run_loop(5000) && p.w.done == 1 &&
	      p.begins == begins && p.outside == 1,
	      "hook removed: done handlers without it");
	waiter_reset(&p.w, 0);
	mem_deref(loc);
}


/* ------------------------------------------------------------------ *
 * SQLite backend
 * ------------------------------------------------------------------ */

enum { NDUR = 1000 };

static char tmpdir[64];
static char dbpath[128];
static char spec[160];


static int sql(const char *stmt)
{
	sqlite3 *db = NULL;
	int rc;

	rc = sqlite3_open(dbpath, &db);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(db, stmt, NULL, NULL, NULL);
	sqlite3_close(db);

	return rc;
}


static long sql_long(const char *stmt)
{
	sqlite3_stmt *st = NULL;
	sqlite3 *db = NULL;
	long v = -1;

	if (sqlite3_open(dbpath, &db) == SQLITE_OK &&
	    sqlite3_prepare_v2(db, stmt, -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		v = (long)sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);

	return v;
}


static void fill_change(struct loc_change *chg, struct loc_contact *c,
			char *aor, size_t aorsz, char *uri, size_t urisz,
			unsigned i)
{
	(void)re_snprintf(aor, aorsz, "sip:user%u@example.com", i);
	(void)re_snprintf(uri, urisz, "sip:user%u@10.%u.%u.%u:5060", i,
			  (i >> 16) & 0xff, (i >> 8) & 0xff, i & 0xff);

	memset(c, 0, sizeof(*c));
	pl_set_str(&c->uri, uri);
	c->expires = 3600 + i;
	c->q = (uint16_t)(i % 1001);
	if (i % 2) {
		pl_set_str(&c->instance, "<urn:uuid:f81d4fae-7dec-11d0-a765>");
		c->reg_id = i;
	}

	memset(chg, 0, sizeof(*chg));
	pl_set_str(&chg->aor, aor);
	pl_set_str(&chg->callid, "dur-callid");
	chg->cseq = i + 1;
	chg->contactv = c;
	chg->contactc = 1;
	if (i % 3 == 0)
		pl_set_str(&chg->path, "<sip:p1;lr>,<sip:p2;lr>");
	pl_set_str(&chg->received, "sip:127.0.0.1:5070;transport=tcp");
	if (i % 5)
		pl_set_str(&chg->user_agent, "UA \"x\"");
}


static bool same_str(const char *a, const struct pl *b)
{
	if (!pl_isset(b))
		return a == NULL;

	return a && !pl_strcmp(b, a);
}


static void test_sqlite(void)
{
	struct location_config cfg;
	struct location_stats st;
	struct location *loc = NULL;
	struct waiter w = {0};
	unsigned i, missing = 0, wrong = 0;
	uint64_t t0;
	int err;

	str_ncpy(tmpdir, "/tmp/sipstack-loc-XXXXXX", sizeof(tmpdir));
	CHECK(mkdtemp(tmpdir) != NULL, "mkdtemp");
	(void)re_snprintf(dbpath, sizeof(dbpath), "%s/location.db", tmpdir);
	(void)re_snprintf(spec, sizeof(spec), "sqlite:%s", dbpath);

	location_config_default(&cfg);
	err = location_open(&loc, spec, &cfg);
	CHECK(!err, "open sqlite: on a new file");
	if (err)
		return;

	CHECK(sql_long("PRAGMA user_version") == 1, "schema version 1 in "
	      "PRAGMA user_version");
	CHECK(sql_long("SELECT count(*) FROM sqlite_master WHERE "
		       "name = 'bindings'") == 1, "bindings table created");

	/* a burst: NDUR changes queued before the loop runs */
	waiter_reset(&w, NDUR);
	t0 = location_clock();
	for (i = 0; i < NDUR && !err; i++) {
		struct loc_change chg;
		struct loc_contact c;
		char aor[64], uri[64];

		fill_change(&chg, &c, aor, sizeof(aor), uri, sizeof(uri), i);
		err = location_apply(loc, &chg, done_handler, &w);
	}
	CHECK(!err, "burst of changes accepted");
	location_stats(loc, &st);
	CHECK(st.pending > 0 || w.done == 0, "writes pending before the "
	      "loop runs: done handlers wait for the commit");
	CHECK(run_loop(20000) && w.done == NDUR && !w.errors,
	      "every done handler called, no error");
	location_stats(loc, &st);
	printf("# %u changes in %llu ms, %llu commits\n", NDUR,
	       (unsigned long long)(location_clock() - t0),
	       (unsigned long long)st.commits);
	CHECK(st.ops == NDUR && st.commits >= 1 && st.commits < st.ops,
	      "group commit: fewer transactions than writes");
	CHECK(sql_long("SELECT count(*) FROM bindings") == NDUR,
	      "all rows on disk once the handlers ran");

	/* more, then free the store at once: committed, handlers called */
	waiter_reset(&w, 0);
	err = apply1(loc, "sip:late@example.com", "sip:late@10.9.9.9", 600,
		     1000, "late", 1, &w);
	CHECK(!err, "a change still pending when the store is freed");
	mem_deref(loc);
	loc = NULL;
	CHECK(w.done == 1 && w.last_err == 0,
	      "freeing the store commits it and calls its handler");

	/* durability: a fresh store reads everything back */
	err = location_open(&loc, spec, &cfg);
	CHECK(!err, "re-open the database in a fresh store");
	if (err)
		goto out;
	location_stats(loc, &st);
	CHECK(st.aors == NDUR + 1 && st.bindings == NDUR + 1,
	      "every AOR and binding loaded");

	for (i = 0; i < NDUR; i++) {
		struct loc_set *set = NULL;
		const struct loc_binding *b;
		struct loc_change chg;
		struct loc_contact c;
		char aor[64], uri[64];

		fill_change(&chg, &c, aor, sizeof(aor), uri, sizeof(uri), i);
		if (location_lookup(&set, loc, aor) ||
		    loc_set_count(set) != 1) {
			++missing;
			mem_deref(set);
			continue;
		}
		b = loc_set_binding(set, 0);
		if (strcmp(b->contact, uri) || b->q != c.q ||
		    b->cseq != chg.cseq || strcmp(b->callid, "dur-callid") ||
		    !same_str(b->instance, &c.instance) ||
		    b->reg_id != c.reg_id ||
		    !same_str(b->path, &chg.path) ||
		    !same_str(b->received, &chg.received) ||
		    !same_str(b->user_agent, &chg.user_agent) ||
		    loc_binding_expires(b, location_clock()) > c.expires ||
		    loc_binding_expires(b, location_clock()) + 60 < c.expires)
			++wrong;
		mem_deref(set);
	}
	CHECK(!missing, "every binding is back after re-open");
	CHECK(!wrong, "every field survived (contact, q, Call-ID, CSeq, "
	      "instance, reg-id, Path, received, User-Agent, expiry)");
	CHECK(lookup_count(loc, "sip:late@example.com") == 1,
	      "the change pending at free is back too");

	/* a failing commit: a trigger from another connection */
	err = apply1_wait(loc, "sip:fail@example.com", "sip:fail@10.0.0.1",
			  600, 1000, "f", 1, &w);
	CHECK(!err, "binding before the failure");
	CHECK(sql("CREATE TRIGGER boom BEFORE INSERT ON bindings "
		  "WHEN NEW.aor = 'sip:fail@example.com' "
		  "BEGIN SELECT RAISE(ABORT, 'injected failure'); END;") ==
	      SQLITE_OK, "trigger added from another connection");

	log_set_level(LOG_ERROR + 1);   /* the expected error line */
	waiter_reset(&w, 2);
	err = apply1(loc, "sip:fail@example.com", "sip:fail@10.0.0.2", 600,
		     1000, "f", 2, &w);
	err |= apply1(loc, "sip:fail@example.com", "sip:fail@10.0.0.3", 600,
		      1000, "f", 3, &w);
	CHECK(!err && lookup_count(loc, "sip:fail@example.com") == 3,
	      "memory takes the changes at once");
	CHECK(run_loop(5000) && w.done == 2 && w.errors == 2,
	      "failed commit: every done handler of the AOR gets an error");
	location_stats(loc, &st);
	CHECK(st.failed >= 1, "failed writes counted");

	/* the AOR is reloaded from the database; meanwhile it refuses */
	CHECK(st.stale == 1 && apply1(loc, "sip:fail@example.com",
				      "sip:fail@10.0.0.4", 600, 1000, "f", 9,
				      &w) == EBUSY,
	      "stale AOR refuses changes (EBUSY)");
	for (i = 0; i < 100 && st.stale; i++) {
		run_for(20);
		location_stats(loc, &st);
	}
	log_set_level(LOG_WARN);
	CHECK(!st.stale, "stale AOR reloaded");
	CHECK(lookup_count(loc, "sip:fail@example.com") == 1,
	      "memory back to what the database holds");

	CHECK(sql("DROP TRIGGER boom") == SQLITE_OK, "trigger dropped");
	err = apply1_wait(loc, "sip:fail@example.com", "sip:fail@10.0.0.2",
			  600, 1000, "f", 10, &w);
	CHECK(!err && w.last_count == 2, "changes succeed again");

	/* expiry reaches the disk */
	err = apply1_wait(loc, "sip:short@example.com", "sip:s@10.1.1.1", 1,
			  1000, "s", 1, &w);
	CHECK(!err && sql_long("SELECT count(*) FROM bindings WHERE aor = "
			       "'sip:short@example.com'") == 1,
	      "short binding on disk");
	run_for(2300);
	location_stats(loc, &st);
	CHECK(st.expired >= 1 && st.pending == 0 &&
	      sql_long("SELECT count(*) FROM bindings WHERE aor = "
		       "'sip:short@example.com'") == 0,
	      "purged binding deleted from the database");

	waiter_reset(&w, 0);
	mem_deref(loc);
	loc = NULL;

	/* a database from the future is refused */
	CHECK(sql("PRAGMA user_version = 99") == SQLITE_OK, "bump version");
	log_set_level(LOG_ERROR + 1);
	CHECK(location_open(&loc, spec, &cfg) == ENOTSUP,
	      "newer schema version refused (ENOTSUP)");
	log_set_level(LOG_WARN);

 out:
	waiter_reset(&w, 0);
	mem_deref(loc);
	{
		char path[192];

		(void)re_snprintf(path, sizeof(path), "%s-wal", dbpath);
		(void)unlink(path);
		(void)re_snprintf(path, sizeof(path), "%s-shm", dbpath);
		(void)unlink(path);
		(void)unlink(dbpath);
		CHECK(rmdir(tmpdir) == 0, "temp dir removed");
	}
}


int main(void)
{
	int err;

	err = libre_init();
	if (err)
		return 1;

	log_set_level(LOG_WARN);
	tmr_init(&watchdog);
	tmr_init(&sleeper);

	test_aor();
	test_rules();
	test_expiry();
	test_batch_hook();
	test_sqlite();

	libre_close();

	printf("1..%d\n", ntest);

	return nfail ? 1 : 0;
}
