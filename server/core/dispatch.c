/**
 * server/core/dispatch.c  The receive path: who gets a request
 *
 * Owns struct stack_handler: a handler registered with the stack for
 * some methods (or any) and some scopes, and the receive path that
 * hands every request to one: the rate limiter (ratelimit.c),
 * admission (stack_set_admit), scanners' User-Agents, the ACK of a 2xx,
 * retransmissions of what we answered (donetrans.c), validation
 * (RFC 3261 §8.2, validate.c), then
 *
 *   - a request with a To tag in a dialog of ours: to the dialog, which
 *     hands it to the usage that takes its method (dialog.c, RFC 5057);
 *   - a request with a To tag that matches no dialog of ours: to the
 *     handlers of scope STACK_NO_DIALOG (what a proxy registers to
 *     forward it; the ACK of a 2xx too, never answered), else 481;
 *   - a request without a To tag: to the handlers of scope
 *     STACK_OUT_OF_DIALOG for its method, then to those for any method,
 *     each in the order registered, until one takes it; nobody: the
 *     core's own answer (stack_req_default: OPTIONS capabilities,
 *     405/501 with Allow).
 *
 * A new session type plugs in by registering a handler (and, in its
 * dialogs, a usage), not by editing this file. Exposes
 * stack_handler_add(), stack_allow(), stack_req_default() and
 * stack_set_admit() and stack_set_stray_handler() (responses no
 * transaction nor dialog took: a proxy forwards them) in sipcore.h; the libre listeners' handlers and
 * stack_allow_update() in core.h. Uses libre's parsed messages,
 * dialog.c, donetrans.c, validate.c, ratelimit.c.
 */
#include <string.h>
#include <strings.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <re.h>
#include "sipcore.h"
#include "core.h"


struct stack_handler {
	struct le le;              /* in stack.handlers                */
	struct stack *st;
	char *methods;             /* " INVITE ", or NULL: any method   */
	char *allow;               /* what it adds to Allow, or NULL   */
	unsigned scope;            /* enum stack_scope                 */
	stack_req_h *h;
	void *arg;
};


/* ------------------------------------------------------------------ *
 * Handlers
 * ------------------------------------------------------------------ */

/* does the " A B " list hold method? */
bool stack_methods_has(const char *list, const struct pl *met)
{
	const char *p = list;

	while ((p = strstr(p, " ")) && p[1]) {
		++p;
		if (!strncmp(p, met->p, met->l) && p[met->l] == ' ')
			return true;
	}

	return false;
}


/* " A B " from "A B" (or "A, B"); NULL from NULL */
int stack_methods_make(char **lp, const char *methods)
{
	char *l, *q;
	size_t n;

	if (!methods) {
		*lp = NULL;
		return 0;
	}

	n = strlen(methods);
	l = mem_alloc(n + 3, NULL);
	if (!l)
		return ENOMEM;

	l[0] = ' ';
	memcpy(l + 1, methods, n);
	l[n + 1] = ' ';
	l[n + 2] = '\0';
	for (q = l; *q; q++) {
		if (*q == ',')
			*q = ' ';
	}

	*lp = l;

	return 0;
}


static void handler_destructor(void *arg)
{
	struct stack_handler *hd = arg;

	list_unlink(&hd->le);
	if (hd->st)
		stack_allow_update(hd->st);
	mem_deref(hd->methods);
	mem_deref(hd->allow);
}


int stack_handler_add(struct stack_handler **hp, struct stack *st,
		      const char *methods, const char *allow, unsigned scope,
		      stack_req_h *h, void *arg)
{
	struct stack_handler *hd;
	int err;

	if (!hp || !st || !h || !scope ||
	    (scope & ~(unsigned)(STACK_OUT_OF_DIALOG | STACK_NO_DIALOG)))
		return EINVAL;

	hd = mem_zalloc(sizeof(*hd), handler_destructor);
	if (!hd)
		return ENOMEM;

	hd->scope = scope;
	hd->h = h;
	hd->arg = arg;

	err  = stack_methods_make(&hd->methods, methods);
	err |= stack_methods_make(&hd->allow, allow);
	if (err) {
		mem_deref(hd);
		return ENOMEM;
	}

	hd->st = st;
	list_append(&st->handlers, &hd->le, hd);
	stack_allow_update(st);

	*hp = hd;

	return 0;
}


int stack_handler_set(struct stack_handler **hp, struct stack *st,
		      const char *methods, const char *allow, unsigned scope,
		      stack_req_h *h, void *arg)
{
	if (!hp)
		return EINVAL;

	if (!h) {
		*hp = mem_deref(*hp);
		return 0;
	}

	if (*hp) {
		(*hp)->h = h;
		(*hp)->arg = arg;
		return 0;
	}

	return stack_handler_add(hp, st, methods, allow, scope, h, arg);
}


/* The stack goes before its handlers' owners let them go: they forget
 * it (their mem_deref then only frees them) */
void stack_handlers_detach(struct stack *st)
{
	struct le *le;

	while ((le = list_head(&st->handlers))) {
		struct stack_handler *hd = le->data;

		list_unlink(&hd->le);
		hd->st = NULL;
	}
}


/* The handlers of scope for the request, those of its method first,
 * then those of any method, in the order registered; true if one took
 * it. A handler may remove itself (or others) while it runs: the next
 * one is found again from the list. */
static bool handlers_run(struct stack *st, struct stack_req *req,
			 unsigned scope)
{
	const struct pl *met = &req->msg->met;
	int pass;

	for (pass = 0; pass < 2; pass++) {
		struct le *le = list_head(&st->handlers);

		while (le) {
			struct stack_handler *hd = le->data;
			bool mine = pass == 0 ? hd->methods &&
				stack_methods_has(hd->methods, met) : !hd->methods;

			le = le->next;
			if (!(hd->scope & scope) || !mine)
				continue;
			if (hd->h(st, req, hd->arg))
				return true;
		}
	}

	return false;
}


/* ------------------------------------------------------------------ *
 * The core's own answers
 * ------------------------------------------------------------------ */

/* Allow: OPTIONS, then what the handlers add, in the order of the
 * methods the core knows (one order whatever the registrations'). */
int stack_allow(const struct stack *st, char *buf, size_t sz)
{
	static const char *order[] = {
		"INVITE", "ACK", "BYE", "CANCEL", "MESSAGE", "REFER",
		"NOTIFY", "REGISTER", "PRACK", "SUBSCRIBE", "UPDATE", "INFO",
		"PUBLISH"
	};
	struct mbuf mb;
	size_t i;
	int err;

	if (!st || !buf || !sz)
		return EINVAL;

	mbuf_init(&mb);
	err = mbuf_write_str(&mb, "OPTIONS");

	for (i = 0; !err && i < ARRAY_SIZE(order); i++) {
		struct pl met;
		struct le *le;

		pl_set_str(&met, order[i]);
		LIST_FOREACH(&st->handlers, le) {
			const struct stack_handler *hd = le->data;

			if (hd->allow && stack_methods_has(hd->allow, &met)) {
				err = mbuf_printf(&mb, ", %s", order[i]);
				break;
			}
		}
	}

	if (!err)
		err = mb.end < sz ? 0 : ENOMEM;
	if (!err) {
		memcpy(buf, mb.buf, mb.end);
		buf[mb.end] = '\0';
	}
	mbuf_reset(&mb);

	return err;
}


static bool method_known(const struct pl *met)
{
	const char *p = STACK_KNOWN_METHODS;

	while (*p) {
		const char *e = strchr(p, ' ');
		size_t n = e ? (size_t)(e - p) : strlen(p);

		if (met->l == n && 0 == memcmp(met->p, p, n))
			return true;
		if (!e)
			break;
		p = e + 1;
	}

	return false;
}


const char *stack_allow_hdr(const struct stack *st)
{
	return st ? st->allow_hdrs : "";
}


/* The core's answers change only when the handlers do: format them
 * then, not per request. */
void stack_allow_update(struct stack *st)
{
	char allow[200];

	(void)stack_allow(st, allow, sizeof(allow));
	(void)re_snprintf(st->allow_hdrs, sizeof(st->allow_hdrs),
			  "Allow: %s\r\n", allow);
	(void)re_snprintf(st->options_hdrs, sizeof(st->options_hdrs),
			  "Allow: %s\r\n"
			  "Accept: application/sdp, text/plain, "
			  "message/sipfrag\r\n"
			  "Accept-Encoding: identity\r\n"
			  "Accept-Language: en\r\n"
			  "Supported: %s\r\n",
			  allow, STACK_SUPPORTED);
}


int stack_req_default(struct stack_req *req)
{
	const struct sip_msg *msg;
	const char *hdrs;

	if (!req)
		return EINVAL;

	if (req->defh && !req->answered)
		return req->defh(req, req->def_arg);

	msg = req->msg;
	hdrs = req->st->allow_hdrs;

	if (!pl_strcmp(&msg->met, "OPTIONS"))
		return stack_req_reply(req, 200, "OK", req->st->options_hdrs,
				       NULL, NULL, 0);

	if (!pl_strcmp(&msg->met, "CANCEL"))
		return stack_req_reply(req, 481, "Call/Transaction Does Not "
				       "Exist", NULL, NULL, NULL, 0);

	if (method_known(&msg->met))
		return stack_req_reply(req, 405, "Method Not Allowed", hdrs,
				       NULL, NULL, 0);

	return stack_req_reply(req, 501, "Not Implemented", hdrs, NULL,
			       NULL, 0);
}



/* ------------------------------------------------------------------ *
 * Receive path
 * ------------------------------------------------------------------ */

/* libre gives no handle on the SIP UDP socket; for UDP, msg->sock is
 * the struct udp_sock. Enlarge its buffers once, on the first request,
 * so that bursts do not overflow the kernel's 208 KiB default. */
static void tune_socket(struct stack *st, const struct sip_msg *msg)
{
	size_t i;

	if (msg->tp != SIP_TRANSP_UDP || !msg->sock)
		return;

	for (i = 0; i < ARRAY_SIZE(st->udp_socks); i++) {
		if (st->udp_socks[i] == msg->sock)
			return;
		if (!st->udp_socks[i]) {
			int fd = udp_sock_fd(msg->sock, sa_af(&msg->dst));
			int sz = SOCKBUF_FORCE;

			st->udp_socks[i] = msg->sock;
			(void)udp_sockbuf_set(msg->sock, SOCKBUF_SIZE);
			/* A small datagram costs ~2 KiB of receive buffer in
			 * the kernel, so 4 MiB holds only ~2,000 requests: a
			 * burst of a load generator overflows it. Beyond
			 * net.core.rmem_max only with CAP_NET_ADMIN. */
			if (fd >= 0)
				(void)setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE,
						 &sz, sizeof(sz));
			return;
		}
	}
}


/* A final answer of the core itself (400, 405, 420, 481...): through
 * a stack_req, so that a non-INVITE request over UDP keeps only the
 * compact Completed state of donetrans.c, not libre's transaction with
 * the whole request for 32 s (a flood of bad requests would cost ~5 KiB
 * each). Counted in stats.replies (and the metrics) by stack_req_reply. */
static int core_reply(struct stack *st, const struct sip_msg *msg,
		      uint16_t scode, const char *reason, const char *hdrs)
{
	struct stack_req *req = stack_req_new(st, msg);
	int err;

	if (!req) {
		err = sip_treplyf(NULL, NULL, st->sip, msg, false, scode,
				  reason, "%sContent-Length: 0\r\n\r\n",
				  hdrs ? hdrs : "");
		if (!err) {
			++st->stats.replies;
			stack_count_reply(st, msg, scode);
		}
		return err;
	}

	err = stack_req_reply(req, scode, reason, hdrs, NULL, NULL, 0);
	mem_deref(req);

	return err;
}


static int unsupported_reply(struct stack *st, const struct sip_msg *msg)
{
	char unsup[256], hdr[300];

	if (!stack_unsupported(msg, unsup, sizeof(unsup)))
		return 0;

	slog_src(LOG_INFO, "stack", "bad_extension", &msg->src, &msg->callid,
		 "method=%r unsupported=%H src=%J", &msg->met, log_q, unsup,
		 &msg->src);

	(void)re_snprintf(hdr, sizeof(hdr), "Unsupported: %s\r\n", unsup);
	(void)core_reply(st, msg, 420, "Bad Extension", hdr);
	return 420;
}


/* Does pl hold s, in any case? */
static bool pl_has_nocase(const struct pl *pl, const char *s)
{
	const size_t n = strlen(s);
	size_t i;

	for (i = 0; n && i + n <= pl->l; i++) {
		if (!strncasecmp(pl->p + i, s, n))
			return true;
	}

	return false;
}


/* A scanner by its User-Agent (stack_config.ua_drop, the script's
 * drop_user_agents): dropped unanswered, so it sees a dead host */
static bool ua_dropped(struct stack *st, const struct sip_msg *msg)
{
	const struct sip_hdr *h;
	uint32_t i;

	if (!st->cfg.ua_dropn)
		return false;

	h = sip_msg_hdr(msg, SIP_HDR_USER_AGENT);
	if (!h)
		return false;

	for (i = 0; i < st->cfg.ua_dropn; i++) {
		if (pl_has_nocase(&h->val, st->cfg.ua_drop[i])) {
			++st->stats.ua_dropped;
			slog_src(LOG_INFO, "stack", "ua_dropped", &msg->src,
				 &msg->callid, "method=%r src=%J ua=%H",
				 &msg->met, &msg->src, log_qpl, &h->val);
			return true;
		}
	}

	return false;
}


/* To the dialog the request belongs to (RFC 3261 §12.2.2), or to the
 * handlers that forward what matches no dialog of ours, or 481 */
static void in_dialog(struct stack *st, struct stack_req *req)
{
	const struct sip_msg *msg = req->msg;
	struct dialog *dlg;

	dlg = dialog_table_find(st->dialogs, &msg->callid, &msg->to.tag,
				&msg->from.tag);
	if (!dlg) {
		if (!handlers_run(st, req, STACK_NO_DIALOG))
			(void)stack_req_reply(req, 481, "Call/Transaction "
					      "Does Not Exist", NULL, NULL,
					      NULL, 0);
		else if (!req->answered && !req->strans)
			(void)stack_req_keep(req);
		return;
	}

	if (dialog_check_rseq(dlg, msg))
		(void)stack_req_reply(req, 500, "Out of Order CSeq",
				      "Retry-After: 1\r\n", NULL, NULL, 0);
	else if (!dialog_dispatch_request(dlg, req))
		(void)stack_req_reply(req, 481, "Call/Transaction Does Not "
				      "Exist", NULL, NULL, NULL, 0);
	else if (!req->answered)
		(void)stack_req_keep(req);
}


bool stack_request_handler(const struct sip_msg *msg, void *arg)
{
	struct stack *st = arg;
	struct stack_req *req;
	const char *reason = NULL;
	uint16_t scode;

	++st->stats.requests;
	++st->counts.rx[metrics_method(&msg->met)][stack_tp_index(msg->tp)];
	tune_socket(st, msg);

	/* over its rate: dropped or answered 503 (over UDP the filter
	 * dropped most of them before libre decoded them) */
	if (stack_rl_request(st, msg))
		return true;

	/* a refused source (banned for guessing passwords) gets nothing:
	 * no answer, no transaction, no log line */
	if (st->admit.h && !st->admit.h(&msg->src, st->admit.arg)) {
		++st->stats.dropped;
		return true;
	}

	if (ua_dropped(st, msg))
		return true;

	/* The ACK of a 2xx (the others are absorbed by libre): to its
	 * dialog, else to the STACK_NO_DIALOG handlers (a proxy relays
	 * it); an ACK is never answered */
	if (!pl_strcmp(&msg->met, "ACK")) {
		struct dialog *dlg = dialog_table_find(st->dialogs,
						       &msg->callid,
						       &msg->to.tag,
						       &msg->from.tag);
		req = stack_req_new(st, msg);
		if (req) {
			req->answered = true;
			if (dlg)
				(void)dialog_dispatch_request(dlg, req);
			else
				(void)handlers_run(st, req, STACK_NO_DIALOG);
			mem_deref(req);
		}
		return true;
	}

	/* a retransmission of a request we answered (Completed) */
	if (donetab_absorb(st->done, st->sip, msg))
		return true;

	scode = stack_validate(msg, &reason);
	if (scode) {
		/* a 405/501 names what we do allow (RFC 3261 §8.2.1) */
		int err = core_reply(st, msg, scode, reason,
				     scode == 405 || scode == 501 ?
				     st->allow_hdrs : NULL);

		++st->stats.bad_requests;
		slog_src(LOG_INFO, "stack", "bad_request", &msg->src,
			 &msg->callid, "method=%r code=%u reason=%H src=%J "
			 "answered=%s", &msg->met, scode, log_q, reason,
			 &msg->src, err ? "no" : "yes");
		return true;
	}

	if (unsupported_reply(st, msg))
		return true;

	slog(LOG_DEBUG, "stack", "request", &msg->callid,
	     "method=%r src=%J", &msg->met, &msg->src);

	req = stack_req_new(st, msg);
	if (!req) {
		(void)sip_treply(NULL, st->sip, msg, 500,
				 "Server Internal Error");
		return true;
	}

	if (pl_isset(&msg->to.tag)) {
		in_dialog(st, req);
	}
	else if (!handlers_run(st, req, STACK_OUT_OF_DIALOG)) {
		(void)stack_req_default(req);
	}
	else if (!req->answered && !req->strans) {
		/* The handler answers later: absorb retransmissions now */
		int err = stack_req_keep(req);
		if (err)
			(void)stack_req_reply(req, 500, "Server Internal "
					      "Error", NULL, NULL, NULL, 0);
	}

	mem_deref(req);

	return true;
}


bool stack_response_handler(const struct sip_msg *msg, void *arg)
{
	struct stack *st = arg;
	struct dialog *dlg;

	++st->stats.responses;

	/* 2xx retransmissions and other forks: our dialogs are the UAC's,
	 * From tag ours; a fork's To tag is new, so fall back to any dialog
	 * of the same Call-ID and From tag */
	dlg = dialog_table_find(st->dialogs, &msg->callid, &msg->from.tag,
				&msg->to.tag);
	if (!dlg)
		dlg = dialog_table_find(st->dialogs, &msg->callid,
					&msg->from.tag, NULL);
	if (dlg && dialog_dispatch_response(dlg, msg))
		return true;

	if (st->stray.h) {
		st->stray.h(msg, st->stray.arg);
		return true;
	}

	slog(LOG_DEBUG, "stack", "stray_response", &msg->callid,
	     "code=%u cseq=%r src=%J", msg->scode, &msg->cseq.met,
	     &msg->src);

	return true;
}



void stack_set_stray_handler(struct stack *st, stack_stray_h *h, void *arg)
{
	if (!st)
		return;

	st->stray.h = h;
	st->stray.arg = arg;
}


void stack_set_admit(struct stack *st, stack_admit_h *h, void *arg)
{
	if (!st)
		return;

	st->admit.h = h;
	st->admit.arg = arg;
}


