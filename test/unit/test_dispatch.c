/**
 * test/unit/test_dispatch.c  Who gets a request: handlers and usages
 *
 * A real stack on 127.0.0.1:0 and a libre client in the same process.
 * Covers the dispatch seam (server/core/dispatch.c, dialog.c): handlers
 * of a method before those of any method, in the order registered, the
 * next one asked when one declines; the core's answer when nobody takes
 * a request, with an Allow header made of what the handlers add (in one
 * order, whatever the registrations'); a handler that unregisters; a
 * request with a To tag matching no dialog offered to STACK_NO_DIALOG
 * handlers before the core's 481; and a dialog with two usages (RFC
 * 5057), each getting the methods it claims, the session usage the
 * rest, and a usage outliving its dialog. Leaks: under valgrind too.
 */
#include <string.h>
#include <stdlib.h>
#include <re.h>
#include "sipcore.h"

#include "testutil.h"


struct client {
	struct sip *sip;
	uint16_t scode;
	char allow[256];
	char reason[64];
};


/* libre splits a comma list into one header per value: join them */
static bool allow_join(const struct sip_hdr *hdr, const struct sip_msg *msg,
		       void *arg)
{
	struct client *c = arg;
	size_t n = strlen(c->allow);
	(void)msg;

	(void)re_snprintf(c->allow + n, sizeof(c->allow) - n, "%s%r",
			  n ? ", " : "", &hdr->val);

	return false;
}


static void client_resp(int err, const struct sip_msg *msg, void *arg)
{
	struct client *c = arg;

	if (!err && msg && msg->scode < 200)
		return;

	c->scode = err ? 0 : msg->scode;
	c->allow[0] = c->reason[0] = '\0';
	if (!err) {
		(void)sip_msg_hdr_apply(msg, true, SIP_HDR_ALLOW, allow_join,
					c);
		(void)pl_strcpy(&msg->reason, c->reason, sizeof(c->reason));
	}
	re_cancel();
}


/* One request; totag NULL: out of dialog. Returns the final status. */
static uint16_t request(struct client *c, const struct sa *dst,
			const char *met, const char *callid, const char *totag,
			const char *ftag)
{
	static uint32_t cseq;
	char uri[128];

	c->scode = 0;
	(void)re_snprintf(uri, sizeof(uri), "sip:stack@%J", dst);
	if (sip_requestf(NULL, c->sip, true, met, uri, NULL, NULL, NULL,
			 client_resp, c,
			 "To: <%s>%s%s\r\n"
			 "From: <sip:client@127.0.0.1>;tag=%s\r\n"
			 "Call-ID: %s\r\n"
			 "CSeq: %u %s\r\n"
			 "Content-Length: 0\r\n\r\n",
			 uri, totag ? ";tag=" : "", totag ? totag : "",
			 ftag, callid, ++cseq, met))
		return 0;
	if (!run_loop(5000))
		return 0;

	return c->scode;
}


/* ------------------------------------------------------------------ *
 * Handlers
 * ------------------------------------------------------------------ */

struct taker {
	const char *name;
	bool take;               /* take it, or decline              */
	uint16_t code;           /* answer with                      */
	unsigned calls;
	char order[64];          /* names of the handlers asked      */
};

static char asked[128];


static bool take_h(struct stack *st, struct stack_req *req, void *arg)
{
	struct taker *t = arg;
	(void)st;

	++t->calls;
	str_ncpy(asked + strlen(asked), t->name, sizeof(asked) -
		 strlen(asked));
	if (!t->take)
		return false;

	(void)stack_req_reply(req, t->code, "Taken", NULL, NULL, NULL, 0);

	return true;
}


static struct stack_handler *self_h;

static bool self_remove_h(struct stack *st, struct stack_req *req,
			  void *arg)
{
	(void)st;
	(void)req;
	(void)arg;

	self_h = mem_deref(self_h);      /* and decline */
	str_ncpy(asked + strlen(asked), "s", sizeof(asked) - strlen(asked));

	return false;
}


static void test_handlers(struct stack *st, struct client *c,
			  const struct sa *dst)
{
	struct taker a = {"a", false, 0, 0, ""};
	struct taker b = {"b", true, 202, 0, ""};
	struct taker any = {"x", true, 299, 0, ""};
	struct stack_handler *ha = NULL, *hb = NULL, *hx = NULL;
	int err;

	uint16_t code = request(c, dst, "INFO", "d1", NULL, "f1");
	CHECK(code == 405 && !strcmp(c->allow, "OPTIONS"), "no handler: "
	      "405 with Allow: OPTIONS");

	err  = stack_handler_add(&hx, st, NULL, "MESSAGE REGISTER",
				 STACK_OUT_OF_DIALOG, take_h, &any);
	err |= stack_handler_add(&ha, st, "MESSAGE INFO", "INFO",
				 STACK_OUT_OF_DIALOG, take_h, &a);
	err |= stack_handler_add(&hb, st, "INFO", "INFO SUBSCRIBE",
				 STACK_OUT_OF_DIALOG, take_h, &b);
	CHECK(!err, "three handlers registered");

	asked[0] = '\0';
	code = request(c, dst, "INFO", "d2", NULL, "f2");
	CHECK(code == 202 && !strcmp(asked, "ab"), "INFO: the method's "
	      "handlers first, in order; a declined, b took it");

	b.take = false;
	asked[0] = '\0';
	code = request(c, dst, "INFO", "d3", NULL, "f3");
	CHECK(code == 299 && !strcmp(asked, "abx"), "both declined: then "
	      "the any-method handler (registered first, asked last)");

	any.take = false;
	asked[0] = '\0';
	code = request(c, dst, "OPTIONS", "d4", NULL, "f4");
	CHECK(code == 200 && !strcmp(asked, "x"), "OPTIONS: only the "
	      "any-method handler asked; declined: the core's 200");
	CHECK(!strcmp(c->allow, "OPTIONS, MESSAGE, REGISTER, SUBSCRIBE, "
		      "INFO"), "Allow: what the handlers add, in the core's "
	      "order (OPTIONS, ... MESSAGE, REGISTER, SUBSCRIBE, INFO)");

	code = request(c, dst, "FOO", "d5", NULL, "f5");
	CHECK(code == 501, "an unknown method nobody took: 501");

	ha = mem_deref(ha);
	hb = mem_deref(hb);
	hx = mem_deref(hx);
	code = request(c, dst, "OPTIONS", "d6", NULL, "f6");
	CHECK(code == 200 && !strcmp(c->allow, "OPTIONS"), "handlers "
	      "unregistered: Allow is OPTIONS again");

	b.take = true;
	(void)stack_handler_add(&self_h, st, "INFO", NULL,
				STACK_OUT_OF_DIALOG, self_remove_h, NULL);
	(void)stack_handler_add(&hb, st, "INFO", NULL, STACK_OUT_OF_DIALOG,
				take_h, &b);
	asked[0] = '\0';
	code = request(c, dst, "INFO", "d7", NULL, "f7");
	CHECK(code == 202 && !strcmp(asked, "sb") && !self_h, "a handler "
	      "that unregisters itself while asked: the next one still is");
	hb = mem_deref(hb);

	/* stack_handler_set keeps the place */
	a.take = true;
	a.code = 203;
	(void)stack_handler_set(&ha, st, "INFO", NULL, STACK_OUT_OF_DIALOG,
				take_h, &b);
	(void)stack_handler_set(&ha, st, "INFO", NULL, STACK_OUT_OF_DIALOG,
				take_h, &a);
	code = request(c, dst, "INFO", "d8", NULL, "f8");
	CHECK(code == 203, "stack_handler_set: the handler and arg replaced");
	(void)stack_handler_set(&ha, st, "INFO", NULL, STACK_OUT_OF_DIALOG,
				NULL, NULL);
	CHECK(!ha, "stack_handler_set with NULL unregisters");

	CHECK(stack_handler_add(&ha, st, "INFO", NULL, 0, take_h, &a) ==
	      EINVAL, "a handler needs a scope");
}


/* ------------------------------------------------------------------ *
 * In-dialog: unmatched, and usages
 * ------------------------------------------------------------------ */

static void test_no_dialog(struct stack *st, struct client *c,
			   const struct sa *dst)
{
	struct taker fwd = {"p", true, 288, 0, ""};
	struct taker out = {"o", true, 299, 0, ""};
	struct stack_handler *hp = NULL, *ho = NULL;
	uint16_t code;

	code = request(c, dst, "BYE", "n1", "nosuchtag", "f1");
	CHECK(code == 481, "a To tag matching no dialog, nobody to forward "
	      "it: 481");

	(void)stack_handler_add(&ho, st, NULL, NULL, STACK_OUT_OF_DIALOG,
				take_h, &out);
	(void)stack_handler_add(&hp, st, NULL, NULL, STACK_NO_DIALOG,
				take_h, &fwd);
	code = request(c, dst, "BYE", "n2", "nosuchtag", "f2");
	CHECK(code == 288 && fwd.calls == 1 && out.calls == 0,
	      "a STACK_NO_DIALOG handler gets it before the 481 (an "
	      "out-of-dialog one does not)");
	code = request(c, dst, "MESSAGE", "n3", NULL, "f3");
	CHECK(code == 299 && fwd.calls == 1, "out of dialog: not the "
	      "STACK_NO_DIALOG handler");

	fwd.take = false;
	code = request(c, dst, "BYE", "n4", "nosuchtag", "f4");
	CHECK(code == 481, "declined: 481");

	mem_deref(hp);
	mem_deref(ho);
}


struct usage_log {
	char got[128];
};


static void usage_req(struct dialog *dlg, struct stack_req *req,
		      void *arg)
{
	struct usage_log *l = arg;
	const struct sip_msg *msg = stack_req_msg(req);
	(void)dlg;

	(void)re_snprintf(l->got + strlen(l->got), sizeof(l->got) -
			  strlen(l->got), "%r ", &msg->met);
	(void)stack_req_reply(req, 200, "OK", NULL, NULL, NULL, 0);
}


static void test_usages(struct stack *st, struct client *c,
			const struct sa *dst)
{
	struct usage_log session = {""}, sub = {""}, refer = {""};
	struct dialog_usage *us = NULL, *ur = NULL;
	struct dialog *dlg = NULL;
	struct pl callid = PL("u1"), ltag = PL("ours"), rtag = PL("theirs");
	uint16_t code;
	int err;

	err = dialog_alloc(&dlg, stack_dialogs(st), &callid, &ltag, &rtag);
	CHECK(!err, "a dialog (Call-ID u1, tags ours/theirs)");
	if (err)
		return;

	dialog_set_handlers(dlg, usage_req, NULL, &session);
	err  = dialog_usage_add(&us, dlg, "SUBSCRIBE NOTIFY", usage_req,
				NULL, &sub);
	err |= dialog_usage_add(&ur, dlg, "REFER", usage_req, NULL, &refer);
	CHECK(!err && dialog_usage_count(dlg) == 3, "the INVITE session "
	      "and two more usages in one dialog (RFC 5057)");

	code  = request(c, dst, "NOTIFY", "u1", "ours", "theirs");
	code |= request(c, dst, "INFO", "u1", "ours", "theirs");
	code |= request(c, dst, "REFER", "u1", "ours", "theirs");
	code |= request(c, dst, "SUBSCRIBE", "u1", "ours", "theirs");
	code |= request(c, dst, "BYE", "u1", "ours", "theirs");
	CHECK(code == 200 && !strcmp(sub.got, "NOTIFY SUBSCRIBE ") &&
	      !strcmp(refer.got, "REFER ") &&
	      !strcmp(session.got, "INFO BYE "), "each usage gets the "
	      "methods it claims, the session usage the rest");

	us = mem_deref(us);
	sub.got[0] = session.got[0] = '\0';
	code = request(c, dst, "NOTIFY", "u1", "ours", "theirs");
	CHECK(code == 200 && !strcmp(session.got, "NOTIFY ") &&
	      !*sub.got, "a usage gone: its methods go to the session "
	      "usage");

	dialog_set_handlers(dlg, NULL, NULL, NULL);
	code = request(c, dst, "INFO", "u1", "ours", "theirs");
	CHECK(code == 481 && dialog_usage_count(dlg) == 1, "no usage takes "
	      "INFO: 481");

	mem_deref(dlg);               /* the REFER usage outlives it */
	mem_deref(ur);
	CHECK(true, "a usage outliving its dialog frees cleanly");
}


int main(void)
{
	struct stack *st = NULL;
	struct client c;
	struct sa laddr, dst;
	int err;

	err = libre_init();
	if (err)
		return 1;

	log_set_level(LOG_ERROR);
	tmr_init(&watchdog);
	memset(&c, 0, sizeof(c));

	(void)sa_set_str(&laddr, "127.0.0.1", 0);
	err  = stack_alloc(&st, NULL);
	err |= stack_listen(st, SIP_TRANSP_UDP, &laddr, NULL);
	err |= stack_start(st);
	err |= sip_alloc(&c.sip, NULL, 16, 16, 16, "test-client", NULL,
			 NULL);
	err |= sip_transp_add(c.sip, SIP_TRANSP_UDP, &laddr);
	err |= sip_transp_laddr(stack_sip(st), &dst, SIP_TRANSP_UDP, NULL);
	CHECK(!err, "a stack and a client on 127.0.0.1");
	if (err)
		goto out;

	test_handlers(st, &c, &dst);
	test_no_dialog(st, &c, &dst);
	test_usages(st, &c, &dst);

 out:
	if (c.sip) {
		sip_close(c.sip, true);
		mem_deref(c.sip);
	}
	mem_deref(st);
	libre_close();
	printf("1..%d\n", ntest);

	return nfail ? 1 : 0;
}
