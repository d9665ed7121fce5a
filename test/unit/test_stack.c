/**
 * test/unit/test_stack.c  The stack object, its log and dialog table
 *
 * Real stacks on 127.0.0.1:0 driven by re_main with a watchdog timer,
 * a libre client in the same process as the peer. Covers: lifecycle
 * (start, stop, restart), OPTIONS answered by the core, a C hook that
 * answers at once and one that answers later, who owns libre's server
 * transactions (test_strans), stack_call from another thread
 * (marshalled onto the loop, never run on the caller's thread), the
 * dialog table, and both log formats. Leaks: run under valgrind by
 * meson (test unit-stack-valgrind).
 */
#include <string.h>
#include <stdlib.h>
#include <stdio.h>
#include <pthread.h>
#include <re.h>
#include "sipstack.h"
#include "core.h"


#include "testutil.h"

static struct stack_handler *hd_invite;   /* the test's INVITE handler */
static struct stack_handler *hd_message;   /* the test's MESSAGE handler */


/* ------------------------------------------------------------------ *
 * A libre client sending requests to the stack
 * ------------------------------------------------------------------ */

struct client {
	struct sip *sip;
	uint16_t scode;
	char allow[256];
	char body[256];
	int err;
};


static void client_resp(int err, const struct sip_msg *msg, void *arg)
{
	struct client *c = arg;
	const struct sip_hdr *h;

	c->err = err;
	if (!err && msg) {
		if (msg->scode < 200)
			return;
		c->scode = msg->scode;
		h = sip_msg_hdr(msg, SIP_HDR_ALLOW);
		if (h)
			(void)pl_strcpy(&h->val, c->allow, sizeof(c->allow));
		(void)re_snprintf(c->body, sizeof(c->body), "%b",
				  mbuf_buf(msg->mb), mbuf_get_left(msg->mb));
	}
	re_cancel();
}


static int client_alloc(struct client *c)
{
	struct sa laddr;
	int err;

	memset(c, 0, sizeof(*c));
	err = sip_alloc(&c->sip, NULL, 16, 16, 16, "test-client", NULL, NULL);
	if (err)
		return err;

	(void)sa_set_str(&laddr, "127.0.0.1", 0);

	return sip_transp_add(c->sip, SIP_TRANSP_UDP, &laddr);
}


static void client_free(struct client *c)
{
	if (c->sip) {
		sip_close(c->sip, true);
		c->sip = mem_deref(c->sip);
	}
}


static int client_send(struct client *c, const struct sa *dst,
		       const char *met, const char *body)
{
	char uri[128];
	struct uri route;
	struct pl pl;

	c->scode = 0;
	c->allow[0] = '\0';
	c->err = 0;
	(void)re_snprintf(uri, sizeof(uri), "sip:stack@%J", dst);
	pl_set_str(&pl, uri);
	if (uri_decode(&route, &pl))
		return EINVAL;

	return sip_requestf(NULL, c->sip, true, met, uri, NULL, NULL, NULL,
			    client_resp, c,
			    "To: <%s>\r\n"
			    "From: <sip:client@127.0.0.1>;tag=%x\r\n"
			    "Call-ID: %x\r\n"
			    "CSeq: 1 %s\r\n"
			    "Content-Type: text/plain\r\n"
			    "Content-Length: %zu\r\n\r\n%s",
			    uri, rand_u32(), rand_u32(), met,
			    strlen(body), body);
}


/* ------------------------------------------------------------------ *
 * Hooks
 * ------------------------------------------------------------------ */

static struct stack_req *held;
static struct tmr later;
static unsigned hook_calls;

static bool hook_now(struct stack *st, struct stack_req *req, void *arg)
{
	const struct sip_msg *msg = stack_req_msg(req);
	(void)st;
	(void)arg;

	++hook_calls;

	return 0 == stack_req_reply(req, 202, "Taken", "X-Hook: now\r\n",
				    "text/plain", mbuf_buf(msg->mb),
				    mbuf_get_left(msg->mb));
}


static void later_handler(void *arg)
{
	(void)arg;

	(void)stack_req_reply(held, 486, "Busy Later", NULL, NULL, NULL, 0);
	held = mem_deref(held);
}


static bool hook_later(struct stack *st, struct stack_req *req, void *arg)
{
	(void)st;
	(void)arg;

	++hook_calls;
	held = stack_req_ref(req);
	tmr_start(&later, 100, later_handler, NULL);

	return true;
}


static void test_lifecycle(void)
{
	struct stack_config cfg;
	struct stack *st = NULL;
	struct stack_stats stats;
	struct client c;
	struct sa laddr, dst;
	int err;

	stack_config_default(&cfg);
	CHECK(cfg.t1 == 500 && cfg.t2 == 4000 && cfg.t4 == 5000 &&
	      cfg.max_forwards == 70, "config defaults are RFC 3261's");

	err = stack_alloc(&st, &cfg);
	CHECK(!err && st, "stack_alloc");
	CHECK(!stack_is_running(st), "not running before start");
	CHECK(stack_start(st) == EDESTADDRREQ, "start without listener "
	      "refused");

	(void)sa_set_str(&laddr, "127.0.0.1", 0);
	CHECK(!stack_listen(st, SIP_TRANSP_UDP, &laddr, NULL),
	      "stack_listen udp");
	CHECK(stack_listen(st, SIP_TRANSP_TLS, &laddr, NULL) == EINVAL,
	      "tls listener needs a certificate");

	err = stack_start(st);
	CHECK(!err && stack_is_running(st), "stack_start");
	CHECK(stack_sip(st) != NULL, "stack_sip gives libre's struct sip");
	CHECK(stack_start(st) == EALREADY, "second start refused");

	err = sip_transp_laddr(stack_sip(st), &dst, SIP_TRANSP_UDP, NULL);
	CHECK(!err && sa_port(&dst), "listener bound to a port");

	err = client_alloc(&c);
	CHECK(!err, "client");

	/* OPTIONS: the core answers */
	err = client_send(&c, &dst, "OPTIONS", "");
	CHECK(!err && run_loop(3000) && c.scode == 200,
	      "OPTIONS answered 200 by the core");
	CHECK(strstr(c.allow, "OPTIONS") != NULL, "Allow lists OPTIONS");
	CHECK(strstr(c.allow, "MESSAGE") == NULL,
	      "Allow omits MESSAGE without a hook");

	/* MESSAGE without hook: 405 */
	err = client_send(&c, &dst, "MESSAGE", "hi");
	CHECK(!err && run_loop(3000) && c.scode == 405,
	      "MESSAGE without hook gets 405");

	/* a hook answering at once, echoing the body */
	(void)stack_handler_set(&hd_message, st, "MESSAGE", "MESSAGE", STACK_OUT_OF_DIALOG, hook_now, NULL);
	err = client_send(&c, &dst, "MESSAGE", "hello \"world\"");
	CHECK(!err && run_loop(3000) && c.scode == 202,
	      "hook answers 202 at once");
	CHECK(!strcmp(c.body, "hello \"world\""), "body echoed byte-exact");

	/* a hook answering 100 ms later */
	(void)stack_handler_set(&hd_message, st, "MESSAGE", "MESSAGE", STACK_OUT_OF_DIALOG, hook_later, NULL);
	err = client_send(&c, &dst, "MESSAGE", "later");
	CHECK(!err && run_loop(3000) && c.scode == 486,
	      "hook answers 486 later");
	CHECK(hook_calls == 2, "each hook called once (retransmissions "
	      "absorbed)");

	stack_stats(st, &stats);
	CHECK(stats.requests == 4 && stats.replies == 4,
	      "stats count requests and replies");

	/* stop and restart */
	stack_stop(st);
	CHECK(!stack_is_running(st) && !stack_sip(st), "stack_stop");
	err = stack_start(st);
	CHECK(!err && stack_is_running(st), "restart after stop");
	(void)sip_transp_laddr(stack_sip(st), &dst, SIP_TRANSP_UDP, NULL);
	(void)stack_handler_set(&hd_message, st, "MESSAGE", "MESSAGE", STACK_OUT_OF_DIALOG, NULL, NULL);
	err = client_send(&c, &dst, "OPTIONS", "");
	CHECK(!err && run_loop(3000) && c.scode == 200,
	      "answers again after restart");

	client_free(&c);
	mem_deref(st);
}


/* ------------------------------------------------------------------ *
 * Ownership of libre's server transactions
 *
 * The rule stated at req_track() in server/core/stack.c: our pointer to a
 * struct sip_strans is the only reference until the final answer, then
 * libre's (its timers free it), except where stack.c frees it on
 * purpose for donetrans.c; the struct sip frees what is left. Seen here
 * through sip_debug's list of server transactions (branch and state)
 * and on the wire, from a raw UDP peer: a transaction libre kept still
 * answers after our last reference to the request went; nothing is
 * freed twice, read after free or leaked (test unit-stack-valgrind).
 * ------------------------------------------------------------------ */

struct rx {
	char branch[48];
	char met[12];
	uint16_t scode;
};

struct raw {
	struct udp_sock *us;
	struct sa laddr, dst;
	struct rx rxv[64];
	unsigned rxc;
	char totag[48];         /* of the last final response */
	uint16_t want;          /* re_cancel() on this status code */
};


static void raw_recv(const struct sa *src, struct mbuf *mb, void *arg)
{
	struct raw *r = arg;
	struct sip_msg *msg = NULL;
	struct rx *x;
	(void)src;

	if (sip_msg_decode(&msg, mb) || msg->req) {
		mem_deref(msg);
		return;
	}

	if (r->rxc < ARRAY_SIZE(r->rxv)) {
		x = &r->rxv[r->rxc++];
		(void)pl_strcpy(&msg->via.branch, x->branch,
				sizeof(x->branch));
		(void)pl_strcpy(&msg->cseq.met, x->met, sizeof(x->met));
		x->scode = msg->scode;
	}
	if (msg->scode >= 200)
		(void)pl_strcpy(&msg->to.tag, r->totag, sizeof(r->totag));
	if (msg->scode == r->want)
		re_cancel();

	mem_deref(msg);
}


static unsigned raw_count(const struct raw *r, const char *branch,
			  const char *met, uint16_t scode)
{
	unsigned i, n = 0;

	for (i = 0; i < r->rxc; i++) {
		const struct rx *x = &r->rxv[i];

		if (!strcmp(x->branch, branch) && !strcmp(x->met, met) &&
		    x->scode == scode)
			++n;
	}

	return n;
}


/* A request with the branch given, in transaction n (Call-ID, CSeq
 * number); met is the CSeq method too; totag for the ACK to a non-2xx */
static int raw_send(struct raw *r, const char *met, const char *branch,
		    unsigned n, const char *totag)
{
	struct mbuf *mb = mbuf_alloc(512);
	int err;

	if (!mb)
		return ENOMEM;

	err = mbuf_printf(mb,
			  "%s sip:stack@%J SIP/2.0\r\n"
			  "Via: SIP/2.0/UDP %J;branch=%s;rport\r\n"
			  "Max-Forwards: 70\r\n"
			  "From: <sip:raw@%J>;tag=raw%u\r\n"
			  "To: <sip:stack@%J>%s%s\r\n"
			  "Call-ID: strans-%u@127.0.0.1\r\n"
			  "CSeq: %u %s\r\n"
			  "Contact: <sip:raw@%J>\r\n"
			  "Content-Length: 0\r\n"
			  "\r\n",
			  met, &r->dst, &r->laddr, branch, &r->laddr, n,
			  &r->dst, totag ? ";tag=" : "", totag ? totag : "",
			  n, n, met, &r->laddr);
	if (!err) {
		mb->pos = 0;
		err = udp_send(r->us, &r->dst, mb);
	}

	mem_deref(mb);

	return err;
}


/* The state libre's list of server transactions gives the branch
 * ("TRYING", "COMPLETED", ...), or "gone" when it is not listed */
static const char *strans_state(const struct stack *st, const char *branch,
				char *buf, size_t sz)
{
	char *dump = NULL, *p, *e;
	char key[64];

	(void)re_snprintf(key, sizeof(key), "(%s)\n", branch);
	if (re_sdprintf(&dump, "%H", sip_debug, stack_sip(st)) ||
	    !(p = strstr(dump, "server transactions:")) ||
	    !(e = strstr(p, key))) {
		mem_deref(dump);
		return "gone";
	}

	/* "  METHOD     STATE      NNs (branch)" */
	while (e > p && e[-1] != '\n')
		--e;
	if (sscanf(e, "%*s %15s", key) != 1)
		str_ncpy(key, "?", sizeof(key));
	str_ncpy(buf, key, sz);
	mem_deref(dump);

	return buf;
}


static bool hook_hold(struct stack *st, struct stack_req *req, void *arg)
{
	(void)st;
	(void)arg;

	++hook_calls;
	held = stack_req_ref(req);
	re_cancel();

	return true;       /* answered later: the stack keeps the strans */
}


static void test_strans(void)
{
	struct stack *st = NULL;
	struct raw r;
	struct sa laddr;
	char sb[16];
	unsigned n;
	int err;

	memset(&r, 0, sizeof(r));
	hook_calls = 0;

	(void)sa_set_str(&laddr, "127.0.0.1", 0);
	err  = stack_alloc(&st, NULL);
	err |= stack_listen(st, SIP_TRANSP_UDP, &laddr, NULL);
	err |= stack_start(st);
	err |= sip_transp_laddr(stack_sip(st), &r.dst, SIP_TRANSP_UDP, NULL);
	err |= udp_listen(&r.us, &laddr, raw_recv, &r);
	err |= udp_local_get(r.us, &r.laddr);
	CHECK(!err, "strans: stack and raw UDP peer");
	if (err)
		goto out;

	(void)stack_handler_set(&hd_invite, st, "INVITE", "INVITE ACK BYE CANCEL", STACK_OUT_OF_DIALOG, hook_hold, NULL);
	(void)stack_handler_set(&hd_message, st, "MESSAGE", "MESSAGE", STACK_OUT_OF_DIALOG, hook_hold, NULL);

	/* 1. INVITE answered 486 later: libre's from the answer on */
	(void)raw_send(&r, "INVITE", "z9hG4bK-st-1", 1, NULL);
	CHECK(run_loop(3000) && held, "strans: INVITE held by its hook");
	CHECK(!strcmp(strans_state(st, "z9hG4bK-st-1", sb, sizeof(sb)),
		      "TRYING"), "strans: kept while the hook thinks (ours)");

	r.want = 486;
	(void)stack_req_reply(held, 486, "Busy Here", NULL, NULL, NULL, 0);
	CHECK(run_loop(3000), "strans: 486 sent");
	CHECK(!strcmp(strans_state(st, "z9hG4bK-st-1", sb, sizeof(sb)),
		      "COMPLETED"), "strans: COMPLETED after the 486");
	held = mem_deref(held);
	CHECK(!strcmp(strans_state(st, "z9hG4bK-st-1", sb, sizeof(sb)),
		      "COMPLETED"), "strans: our last reference to the "
	      "request gone, libre's transaction lives on");
	r.want = 0;

	(void)raw_send(&r, "INVITE", "z9hG4bK-st-1", 1, NULL);
	(void)run_loop(1200);   /* the copy's answer, then Timer G (T1) */
	n = raw_count(&r, "z9hG4bK-st-1", "INVITE", 486);
	CHECK(n >= 3 && hook_calls == 1, "strans: the INVITE's copy is "
	      "answered 486 and Timer G resends it, no second hook");
	printf("# 486 sent %u times before the ACK\n", n);

	(void)raw_send(&r, "ACK", "z9hG4bK-st-1", 1, r.totag);
	(void)run_loop(300);
	CHECK(!strcmp(strans_state(st, "z9hG4bK-st-1", sb, sizeof(sb)),
		      "CONFIRMED"), "strans: the ACK absorbed (CONFIRMED)");
	n = raw_count(&r, "z9hG4bK-st-1", "INVITE", 486);
	(void)run_loop(SIP_T4 + 700);          /* Timer I */
	CHECK(!strcmp(strans_state(st, "z9hG4bK-st-1", sb, sizeof(sb)),
		      "gone") &&
	      raw_count(&r, "z9hG4bK-st-1", "INVITE", 486) == n,
	      "strans: libre frees it at Timer I; no 486 after the ACK");

	/* 2. CANCEL: libre answers 200, we 487; the strans' cancel
	 * handler argument is the request, which goes first */
	(void)raw_send(&r, "INVITE", "z9hG4bK-st-2", 2, NULL);
	CHECK(run_loop(3000) && held, "strans: second INVITE held");
	r.want = 487;
	(void)raw_send(&r, "CANCEL", "z9hG4bK-st-2", 2, NULL);
	CHECK(run_loop(3000) &&
	      raw_count(&r, "z9hG4bK-st-2", "CANCEL", 200) == 1 &&
	      stack_req_answered(held), "strans: CANCEL 200, INVITE 487");
	held = mem_deref(held);
	r.want = 0;
	(void)raw_send(&r, "CANCEL", "z9hG4bK-st-2", 2, NULL);
	(void)raw_send(&r, "INVITE", "z9hG4bK-st-2", 2, NULL);
	(void)run_loop(300);
	CHECK(raw_count(&r, "z9hG4bK-st-2", "CANCEL", 200) == 2 &&
	      raw_count(&r, "z9hG4bK-st-2", "INVITE", 487) >= 2 &&
	      !strcmp(strans_state(st, "z9hG4bK-st-2", sb, sizeof(sb)),
		      "COMPLETED"), "strans: after the request went, a "
	      "CANCEL again gets 200 (libre calls no handler now), the "
	      "INVITE 487");
	(void)raw_send(&r, "ACK", "z9hG4bK-st-2", 2, r.totag);

	/* 3. 1xx leaves it ours; the 2xx: stack.c frees it, donetrans
	 * absorbs the copies and answers a CANCEL */
	(void)raw_send(&r, "INVITE", "z9hG4bK-st-3", 3, NULL);
	CHECK(run_loop(3000) && held, "strans: third INVITE held");
	r.want = 180;
	(void)stack_req_reply(held, 180, "Ringing", NULL, NULL, NULL, 0);
	CHECK(run_loop(3000) &&
	      !strcmp(strans_state(st, "z9hG4bK-st-3", sb, sizeof(sb)),
		      "PROCEEDING"), "strans: PROCEEDING after a 180");
	r.want = 200;
	(void)stack_req_reply(held, 200, "OK", NULL, NULL, NULL, 0);
	CHECK(run_loop(3000) &&
	      !strcmp(strans_state(st, "z9hG4bK-st-3", sb, sizeof(sb)),
		      "gone"), "strans: freed at the 2xx (donetrans)");
	held = mem_deref(held);
	r.want = 0;
	(void)raw_send(&r, "INVITE", "z9hG4bK-st-3", 3, NULL);
	(void)raw_send(&r, "CANCEL", "z9hG4bK-st-3", 3, NULL);
	(void)run_loop(300);
	CHECK(raw_count(&r, "z9hG4bK-st-3", "INVITE", 200) == 1 &&
	      raw_count(&r, "z9hG4bK-st-3", "CANCEL", 200) == 1 &&
	      hook_calls == 3, "strans: the 2xx'd INVITE's copy absorbed, "
	      "a CANCEL for it answered 200");

	/* 4. non-INVITE over UDP: stack.c frees it at the final answer */
	(void)raw_send(&r, "MESSAGE", "z9hG4bK-st-4", 4, NULL);
	CHECK(run_loop(3000) && held, "strans: MESSAGE held");
	r.want = 202;
	(void)stack_req_reply(held, 202, "Accepted", NULL, NULL, NULL, 0);
	CHECK(run_loop(3000) &&
	      !strcmp(strans_state(st, "z9hG4bK-st-4", sb, sizeof(sb)),
		      "gone"), "strans: freed at the final (donetrans)");
	held = mem_deref(held);
	(void)raw_send(&r, "MESSAGE", "z9hG4bK-st-4", 4, NULL);
	CHECK(run_loop(3000) &&
	      raw_count(&r, "z9hG4bK-st-4", "MESSAGE", 202) == 2 &&
	      hook_calls == 4, "strans: its copy answered 202 again, no "
	      "second hook");

	/* 5. a request still held when the stack stops: libre frees its
	 * transaction with the struct sip; the request must not free it
	 * again when it goes (a script sleeping at shutdown) */
	(void)raw_send(&r, "MESSAGE", "z9hG4bK-st-5", 5, NULL);
	CHECK(run_loop(3000) && held, "strans: MESSAGE held at the stop");
	CHECK(!strcmp(strans_state(st, "z9hG4bK-st-5", sb, sizeof(sb)),
		      "TRYING"), "strans: its transaction is ours");
	stack_stop(st);
	CHECK(stack_req_reply(held, 200, "OK", NULL, NULL, NULL, 0) ==
	      ESHUTDOWN && !stack_req_answered(held),
	      "strans: no answer after the stop (ESHUTDOWN)");
	held = mem_deref(held);   /* was: a double free (SIGABRT) */
	CHECK(true, "strans: the request held across the stop released "
	      "(valgrind: nothing read or freed after its free)");

 out:
	held = mem_deref(held);
	mem_deref(r.us);
	mem_deref(st);
}


/* ------------------------------------------------------------------ *
 * Cross-thread calls
 * ------------------------------------------------------------------ */

enum { XCALLS = 5000 };

struct xctx {
	struct stack *st;
	pthread_t loop;
	unsigned done;
	unsigned wrong_thread;
	unsigned retries;
};


static void xcall_handler(void *arg)
{
	struct xctx *x = arg;

	if (!pthread_equal(pthread_self(), x->loop))
		++x->wrong_thread;

	if (++x->done == XCALLS)
		re_cancel();
}


static void *xthread(void *arg)
{
	struct xctx *x = arg;
	unsigned i;

	for (i = 0; i < XCALLS; i++) {
		int err;

		while ((err = stack_call(x->st, xcall_handler, x)) == EAGAIN) {
			++x->retries;
			sched_yield();
		}
		if (err)
			break;
	}

	return NULL;
}


static void test_cross_thread(void)
{
	struct xctx x;
	pthread_t th;
	int err;

	memset(&x, 0, sizeof(x));
	err = stack_alloc(&x.st, NULL);
	CHECK(!err, "stack for cross-thread calls");
	x.loop = pthread_self();

	CHECK(stack_call(NULL, xcall_handler, &x) == EINVAL,
	      "stack_call checks its arguments");

	err = pthread_create(&th, NULL, xthread, &x);
	CHECK(!err, "caller thread started");
	CHECK(run_loop(10000), "all cross-thread calls ran in time");
	pthread_join(th, NULL);

	CHECK(x.done == XCALLS, "every call from the other thread ran");
	CHECK(x.wrong_thread == 0, "every call ran on the loop thread");
	printf("# %u calls, %u EAGAIN retries\n", x.done, x.retries);

	mem_deref(x.st);
}


/* ------------------------------------------------------------------ *
 * Dialog table
 * ------------------------------------------------------------------ */

/* A display name holding a NUL (a quoted-pair, legal: RFC 4475
 * §3.1.1.2) is left out of the dialog's From/To copies, which are C
 * strings: the NUL cut them before the URI, and every in-dialog request
 * went out with "To: \"J" (found reading the fuzzer's first finding,
 * test/fuzz/regressions/) */
static void test_dialog_nul_name(void)
{
	static const char inv[] =
		"INVITE sip:bob@127.0.0.1 SIP/2.0\r\n"
		"Via: SIP/2.0/UDP 192.0.2.7:5070;branch=z9hG4bK-nul\r\n"
		"To: \"B\\\0b\" <sip:bob@127.0.0.1>\r\n"
		"From: \"J\\\0hn\" <sip:john@192.0.2.7>;tag=j1\r\n"
		"Call-ID: nul@192.0.2.7\r\n"
		"CSeq: 1 INVITE\r\n"
		"Contact: <sip:john@192.0.2.7:5070>\r\n"
		"Content-Length: 0\r\n\r\n";
	struct dialog_table *t = NULL;
	struct dialog *dlg = NULL;
	struct sip_msg *msg = NULL;
	struct mbuf *mb = mbuf_alloc(sizeof(inv));
	char dbg[512] = "";
	int err;

	err = mb ? mbuf_write_mem(mb, (const uint8_t *)inv,
				  sizeof(inv) - 1) : ENOMEM;
	if (!err) {
		mb->pos = 0;
		err = sip_msg_decode(&msg, mb);
	}
	if (!err)
		err = dialog_table_alloc(&t, 4);
	if (!err)
		err = dialog_create_uas(&dlg, t, NULL, msg, "l1",
					"sip:me@127.0.0.1");
	CHECK(!err, "UAS dialog from an INVITE with NULs in display names");
	if (!err)
		(void)re_snprintf(dbg, sizeof(dbg), "%H", dialog_debug, dlg);
	CHECK(strstr(dbg, " local=<sip:bob@127.0.0.1> ") &&
	      strstr(dbg, " remote=<sip:john@192.0.2.7> "),
	      "a display name with a NUL is left out, the URI kept");

	mem_deref(dlg);
	mem_deref(t);
	mem_deref(msg);
	mem_deref(mb);
}


static void test_dialogs(void)
{
	struct dialog_table *t = NULL;
	struct dialog *d[100];
	struct pl callid, ltag, rtag, other = PL("nope");
	char buf[3][32];
	unsigned i;
	int err;

	err = dialog_table_alloc(&t, 64);
	CHECK(!err && dialog_table_count(t) == 0, "dialog table alloc");

	for (i = 0; i < ARRAY_SIZE(d); i++) {
		(void)re_snprintf(buf[0], sizeof(buf[0]), "call-%u", i);
		(void)re_snprintf(buf[1], sizeof(buf[1]), "l%u", i);
		(void)re_snprintf(buf[2], sizeof(buf[2]), "r%u", i);
		pl_set_str(&callid, buf[0]);
		pl_set_str(&ltag, buf[1]);
		pl_set_str(&rtag, buf[2]);
		err |= dialog_alloc(&d[i], t, &callid, &ltag, &rtag);
	}
	CHECK(!err && dialog_table_count(t) == ARRAY_SIZE(d),
	      "100 dialogs listed");

	pl_set_str(&callid, "call-42");
	pl_set_str(&ltag, "l42");
	pl_set_str(&rtag, "r42");
	CHECK(dialog_table_find(t, &callid, &ltag, &rtag) == d[42],
	      "lookup by Call-ID and both tags");
	CHECK(dialog_table_find(t, &callid, &ltag, NULL) == d[42],
	      "lookup without remote tag (early dialog)");
	CHECK(!dialog_table_find(t, &callid, &ltag, &other),
	      "wrong remote tag does not match");
	CHECK(dialog_alloc(&d[0], t, &callid, &ltag, &rtag) == EEXIST,
	      "duplicate dialog refused");
	CHECK(!strcmp(dialog_callid(d[42]), "call-42"), "dialog_callid");

	for (i = 0; i < ARRAY_SIZE(d); i++)
		mem_deref(d[i]);
	CHECK(dialog_table_count(t) == 0, "table empty after dialogs end");
	CHECK(!dialog_table_find(t, &callid, &ltag, &rtag),
	      "freed dialog is gone");

	mem_deref(t);

	test_dialog_nul_name();
}


/* ------------------------------------------------------------------ *
 * Log
 * ------------------------------------------------------------------ */

static void test_log(void)
{
	char line[1024];
	struct pl cid = PL("abc@host");
	FILE *f = tmpfile();
	enum log_level lvl;

	CHECK(f != NULL, "tmpfile");
	if (!f)
		return;

	log_set_sink(f);
	log_set_level(LOG_DEBUG);
	log_set_format(LOG_FMT_LOGFMT);
	slog(LOG_INFO, "test", "event", &cid, "a=%u b=%H", 7, log_q,
	     "two words \"q\"\n");
	log_set_format(LOG_FMT_JSON);
	slog(LOG_WARN, "test", "event", &cid, "a=%u b=%H", 7, log_q,
	     "two words \"q\"\n");
	log_set_level(LOG_ERROR);
	slog(LOG_INFO, "test", "hidden", NULL, NULL);
	log_set_format(LOG_FMT_LOGFMT);
	log_set_level(LOG_INFO);
	log_set_sink(NULL);

	rewind(f);
	CHECK(fgets(line, sizeof(line), f) &&
	      strstr(line, " lvl=info mod=test ev=event callid=abc@host "
		     "a=7 b=\"two words \\\"q\\\"\\n\"\n") &&
	      !strncmp(line, "ts=", 3), "logfmt line with quoting");
	CHECK(fgets(line, sizeof(line), f) &&
	      strstr(line, "\"lvl\":\"warn\",\"mod\":\"test\",\"ev\":\"event\","
		     "\"callid\":\"abc@host\",\"a\":\"7\","
		     "\"b\":\"two words \\\"q\\\"\\n\"}"),
	      "json line");
	CHECK(!fgets(line, sizeof(line), f), "level filter drops debug");
	fclose(f);

	CHECK(!log_level_parse(&lvl, "WARN") && lvl == LOG_WARN,
	      "level parse");
	CHECK(log_level_parse(&lvl, "loud") == EINVAL, "bad level refused");
}


int main(void)
{
	int err;

	err = libre_init();
	if (err)
		return 1;

	log_set_level(LOG_WARN);
	tmr_init(&watchdog);
	tmr_init(&later);

	test_log();
	log_set_level(LOG_WARN);
	test_dialogs();
	test_lifecycle();
	test_strans();
	test_cross_thread();

	tmr_cancel(&later);
	libre_close();

	printf("1..%d\n", ntest);

	return nfail ? 1 : 0;
}
