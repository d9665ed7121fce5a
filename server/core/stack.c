/**
 * server/core/stack.c  The stack object: transport, requests, hooks
 *
 * Owns struct stack (libre's struct sip, the listeners, the DNS client,
 * the cross-thread queue, the dialog table and the hook table) and
 * struct stack_req (a received request with its server transaction).
 * Exposes stack_*() in sipstack.h. Uses libre for transport, parsing
 * and transactions; never calls into Lua itself (the Lua runtime
 * registers hooks like any other C user).
 *
 * Request path: libre's transaction layer absorbs retransmissions,
 * then request_handler() validates the request (RFC 3261 §8.2), finds
 * the hook for its method and hands it a struct stack_req. A hook
 * answers at once or later; when it keeps the request, the server
 * transaction is created before it returns so that retransmissions are
 * absorbed while the script thinks. Nobody's hook: the core answers
 * (stack_req_default: OPTIONS capabilities, 405/501 otherwise).
 */
#include <string.h>
#include <stdlib.h>
#include <pthread.h>
#include <sys/socket.h>
#include <openssl/ssl.h>
#include <re.h>
#include "sipcore.h"
#include "core.h"
#include "udpbatch.h"


enum {
	HASH_CTRANS   = 1u << 16,
	HASH_STRANS   = 1u << 18,
	HASH_TCPCONN  = 1u << 12,
	SOCKBUF_SIZE  = 4 * 1024 * 1024,
	SOCKBUF_FORCE = 32 * 1024 * 1024,
	MAX_LISTENERS = 8,
};

struct listener {
	enum sip_transp tp;
	struct sa laddr;
	char *cert, *key, *ca;
};

struct stack {
	struct stack_config cfg;
	struct sip *sip;
	struct sip_lsnr *lsnr_req;
	struct sip_lsnr *lsnr_resp;
	struct dnsc *dnsc;
	struct mqueue *mq;
	struct tls *tls;
	struct dialog_table *dialogs;
	struct list services;             /* struct service, in order   */
	struct donetab *done;             /* completed UDP non-INVITE    */
	struct list strl;                 /* requests holding a strans   */
	struct {
		stack_req_h *h;
		void *arg;
	} hooks[STACK_HOOK_MAX];
	struct {
		stack_admit_h *h;         /* e.g. the auth guard's bans   */
		void *arg;
	} admit;
	struct listener lsnrv[MAX_LISTENERS];
	size_t lsnrc;
	void *udp_socks[MAX_LISTENERS];  /* sockets whose buffers we set */
	struct list outl;                 /* pending outgoing requests   */
	char allow_hdrs[192];             /* "Allow: ...\r\n" for 405/501 */
	char options_hdrs[384];           /* headers of the OPTIONS 200  */
	struct stack_stats stats;
	bool running;
};

struct stack_req {
	struct le le;              /* in st->strl while strans is set  */
	struct stack *st;
	const struct sip_msg *msg;
	struct sip_strans *strans; /* ours until the final answer      */
	sip_cancel_h *cancelh;     /* owner's CANCEL handler, or NULL */
	void *cancel_arg;
	bool answered;
	bool dialog;               /* replies copy Record-Route       */
};

/* An outgoing request waiting for its final response */
struct outreq {
	struct le le;
	struct stack *st;
	struct sip_request *req;
	stack_resp_h *resph;
	void *arg;
};

struct xcall {
	stack_call_h *h;
	void *arg;
};

/* A part of the program living as long as the stack (the calls) */
struct service {
	struct le le;
	const void *key;
	void *obj;                 /* a reference                      */
	stack_stop_h *stoph;
};


/* ------------------------------------------------------------------ *
 * Config
 * ------------------------------------------------------------------ */

void stack_config_default(struct stack_config *cfg)
{
	if (!cfg)
		return;

	memset(cfg, 0, sizeof(*cfg));
	str_ncpy(cfg->user_agent, "sipstack/" SIPSTACK_VERSION,
		 sizeof(cfg->user_agent));
	cfg->max_forwards = 70;
	cfg->t1 = SIP_T1;
	cfg->t2 = SIP_T2;
	cfg->t4 = SIP_T4;
}


int stack_config_debug(struct re_printf *pf, const struct stack_config *cfg)
{
	if (!cfg)
		return 0;

	return re_hprintf(pf, "user_agent=%H local_ip=%H udp_port=%u "
			  "tcp_port=%u tls_port=%u max_forwards=%u t1=%u "
			  "t2=%u t4=%u dns_servers=%H",
			  log_q, cfg->user_agent, log_q, cfg->local_ip,
			  cfg->udp_port, cfg->tcp_port, cfg->tls_port,
			  cfg->max_forwards, cfg->t1, cfg->t2, cfg->t4,
			  log_q, cfg->dns_servers);
}


/* ------------------------------------------------------------------ *
 * Requests handed to hooks
 * ------------------------------------------------------------------ */

/*
 * Who owns libre's server transaction (libre 1.1.0, src/sip/strans.c,
 * src/sip/reply.c, src/sip/sip.c). A struct sip_strans has exactly one
 * reference, and req->strans holds it only until the final answer:
 *
 *  - sip_strans_alloc() gives it to us (TRYING); a 1xx leaves it ours
 *    (PROCEEDING): sip_strans_reply() sets *stp to it, after creating
 *    it if *stp was NULL.
 *  - A final answer hands it to libre: sip_strans_reply() sets *stp to
 *    NULL and arms its own timer, whose tmr_handler() frees it: Timer H
 *    (64*T1; Timer G resends a non-2xx to INVITE over UDP), J (64*T1,
 *    non-INVITE over UDP), the 64*T1 of ACCEPTED (2xx to INVITE); an
 *    ACK to a non-2xx goes to CONFIRMED, Timer I (ack_handler()). A
 *    non-INVITE over TCP/TLS is freed at once. Our pointer is NULL
 *    then, so our mem_deref (req_destructor) leaves it alone.
 *  - A failed answer frees it as well (sip_strans_reply() on a failed
 *    send, vreplyf() on any other error) and sets *stp to NULL.
 *  - libre frees every transaction of its table when the struct sip
 *    goes (sip.c's destructor: hash_flush(sip->ht_strans)), ours in
 *    TRYING or PROCEEDING too: a request still held then (a script
 *    sleeping at shutdown) must forget its pointer first (stack_stop,
 *    through st->strl), or its destructor frees freed memory.
 *
 * Two exceptions on purpose, in stack_req_reply_mb: a final answer to
 * a non-INVITE over UDP and a 2xx to INVITE over UDP are followed by
 * our mem_deref of the transaction libre was given. That reference is
 * the only one, so it is freed at once; its destructor cancels both of
 * its timers and takes it out of libre's tables, so nothing fires on
 * freed memory. donetrans.c answers the retransmissions instead.
 */

/* Keep st->strl the list of requests whose strans is set */
static void req_track(struct stack_req *req)
{
	if (req->strans && !req->le.list)
		list_append(&req->st->strl, &req->le, req);
	else if (!req->strans && req->le.list)
		list_unlink(&req->le);
}


static void req_destructor(void *arg)
{
	struct stack_req *req = arg;

	/* A request nobody answered is never left to time out silently */
	if (!req->answered && req->st && req->st->sip) {
		slog(LOG_WARN, "stack", "unanswered", &req->msg->callid,
		     "method=%r", &req->msg->met);
		(void)stack_req_reply(req, 500, "Server Internal Error",
				      NULL, NULL, NULL, 0);
	}

	/* NULL after any final answer (libre's then) and after stack_stop;
	 * if set, it is ours (see above) */
	list_unlink(&req->le);
	mem_deref(req->strans);
	mem_deref((void *)req->msg);
}


/* RFC 3261 §18.3: octets past Content-Length are discarded (on UDP a
 * datagram may carry more; on TCP libre frames by Content-Length). */
void stack_msg_body(const struct sip_msg *msg, struct pl *body)
{
	size_t left = mbuf_get_left(msg->mb);

	body->p = (const char *)mbuf_buf(msg->mb);
	body->l = left;
	if (pl_isset(&msg->clen) && pl_u32(&msg->clen) < left)
		body->l = pl_u32(&msg->clen);
}


const struct sip_msg *stack_req_msg(const struct stack_req *req)
{
	return req ? req->msg : NULL;
}


struct stack *stack_req_stack(const struct stack_req *req)
{
	return req ? req->st : NULL;
}


bool stack_req_answered(const struct stack_req *req)
{
	return req ? req->answered : true;
}


struct stack_req *stack_req_ref(struct stack_req *req)
{
	return mem_ref(req);
}


/* CANCEL for a request a hook holds: libre answered 200 to the CANCEL;
 * the request itself gets 487 (RFC 3261 §9.2). */
static void req_cancel_handler(void *arg)
{
	struct stack_req *req = arg;

	if (req->cancelh) {
		req->cancelh(req->cancel_arg);
		return;
	}

	slog(LOG_INFO, "stack", "cancelled", &req->msg->callid,
	     "method=%r", &req->msg->met);
	(void)stack_req_reply(req, 487, "Request Terminated", NULL, NULL,
			      NULL, 0);
}


/* Where libre sends our responses to msg (RFC 3261 §18.2.2, RFC 3581) */
static void reply_dst(const struct sip_msg *msg, struct sa *dst)
{
	struct pl rp;

	sip_reply_addr(dst, msg,
		       !msg_param_exists(&msg->via.params, "rport", &rp));
}


int stack_req_reply_mb(struct stack_req *req, uint16_t scode,
		       const char *reason, const char *headers,
		       const char *ctype, const uint8_t *body, size_t len,
		       struct mbuf **mbp)
{
	struct sip_strans *done = NULL;
	struct mbuf *mb = NULL;
	struct stack *st;
	int err;

	if (!req || scode < 100 || scode > 699)
		return EINVAL;

	if (req->answered)
		return EALREADY;

	st = req->st;
	if (!st->sip)
		return ESHUTDOWN;

	if (!reason || !*reason)
		reason = "Unknown";

	/* a final answer to a non-INVITE request over UDP: libre's
	 * transaction is freed right after it, and the Completed state
	 * kept compact in st->done (see server/core/donetrans.c) */
	if (scode >= 200 && st->done &&
	    (donetab_eligible(req->msg) ||
	     donetab_eligible_invite(req->msg, scode))) {
		if (!req->strans)
			err = sip_strans_alloc(&req->strans, st->sip,
					       req->msg, NULL, NULL);
		else
			err = 0;
		if (!err)
			done = req->strans;
	}

	err = sip_treplyf(&req->strans, done ? &mb : mbp, st->sip, req->msg,
			  req->dialog && scode > 100, scode, reason,
			  "%s"
			  "%s%s%s"
			  "Content-Length: %zu\r\n"
			  "\r\n"
			  "%b",
			  headers ? headers : "",
			  ctype && len ? "Content-Type: " : "",
			  ctype && len ? ctype : "",
			  ctype && len ? "\r\n" : "",
			  len, body, len);
	req_track(req);                /* NULL now after a final or error */
	if (scode >= 200)
		req->answered = true;  /* even on error: one answer only */

	if (err) {
		/* libre freed its transaction (done) on the error */
		slog(LOG_WARN, "stack", "reply_failed", &req->msg->callid,
		     "code=%u err=%m", scode, err);
		return err;
	}

	if (done) {
		const bool inv = !pl_strcmp(&req->msg->met, "INVITE");
		struct sa dst;

		reply_dst(req->msg, &dst);
		if (mb->size > mb->end + 64 && !inv)
			(void)mbuf_resize(mb, mb->end);
		/* libre's only reference, taken over (see the rule
		 * above); else libre keeps it 32 s */
		if (!donetab_add(st->done, req->msg, inv ? NULL : mb, &dst))
			mem_deref(done);
		if (mbp)
			*mbp = mb;
		else
			mem_deref(mb);
	}

	++st->stats.replies;
	slog(LOG_DEBUG, "stack", "reply", &req->msg->callid,
	     "method=%r code=%u", &req->msg->met, scode);

	return 0;
}


int stack_req_reply(struct stack_req *req, uint16_t scode,
		    const char *reason, const char *headers,
		    const char *ctype, const uint8_t *body, size_t len)
{
	return stack_req_reply_mb(req, scode, reason, headers, ctype, body,
				  len, NULL);
}


/* Send a response built earlier again (a 2xx to INVITE until its ACK:
 * libre's transaction does not, RFC 3261 §13.3.1.4 makes it ours) */
int stack_req_resend(struct stack_req *req, struct mbuf *mb)
{
	struct sa dst;

	if (!req || !mb || !req->st->sip)
		return EINVAL;

	reply_dst(req->msg, &dst);
	mb->pos = 0;

	return sip_send(req->st->sip, req->msg->sock, req->msg->tp, &dst, mb);
}


void stack_req_set_dialog(struct stack_req *req, sip_cancel_h *cancelh,
			  void *arg)
{
	if (!req)
		return;

	req->dialog = true;
	req->cancelh = cancelh;
	req->cancel_arg = arg;
}


/* The server transaction now, not when the hook returns: a request a
 * call keeps (INVITE) must absorb retransmissions and see CANCEL. */
int stack_req_keep(struct stack_req *req)
{
	int err;

	if (!req)
		return EINVAL;

	if (req->strans || req->answered)
		return 0;

	err = sip_strans_alloc(&req->strans, req->st->sip, req->msg,
			       req_cancel_handler, req);
	req_track(req);

	return err;
}


/* The standard reason phrase of a status code (RFC 3261 §21) */
const char *stack_reason_phrase(uint16_t code)
{
	switch (code) {
	case 100: return "Trying";
	case 180: return "Ringing";
	case 181: return "Call Is Being Forwarded";
	case 182: return "Queued";
	case 183: return "Session Progress";
	case 200: return "OK";
	case 202: return "Accepted";
	case 300: return "Multiple Choices";
	case 301: return "Moved Permanently";
	case 302: return "Moved Temporarily";
	case 305: return "Use Proxy";
	case 380: return "Alternative Service";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 406: return "Not Acceptable";
	case 408: return "Request Timeout";
	case 410: return "Gone";
	case 415: return "Unsupported Media Type";
	case 420: return "Bad Extension";
	case 423: return "Interval Too Brief";
	case 480: return "Temporarily Unavailable";
	case 481: return "Call/Transaction Does Not Exist";
	case 486: return "Busy Here";
	case 487: return "Request Terminated";
	case 488: return "Not Acceptable Here";
	case 491: return "Request Pending";
	case 500: return "Server Internal Error";
	case 501: return "Not Implemented";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Server Time-out";
	case 600: return "Busy Everywhere";
	case 603: return "Decline";
	case 604: return "Does Not Exist Anywhere";
	case 606: return "Not Acceptable";
	default:
		if (code < 200) return "Session Progress";
		if (code < 300) return "OK";
		if (code < 400) return "Redirect";
		if (code < 500) return "Client Error";
		if (code < 600) return "Server Error";
		return "Global Failure";
	}
}


int stack_allow(const struct stack *st, char *buf, size_t sz)
{
	bool calls, msgs, refer, reg, other;

	if (!st || !buf || !sz)
		return EINVAL;

	calls = st->hooks[STACK_HOOK_INVITE].h != NULL;
	msgs  = st->hooks[STACK_HOOK_MESSAGE].h != NULL;
	refer = st->hooks[STACK_HOOK_REFER].h != NULL;
	reg   = st->hooks[STACK_HOOK_REGISTER].h != NULL;
	other = st->hooks[STACK_HOOK_REQUEST].h != NULL;

	return re_snprintf(buf, sz, "OPTIONS%s%s%s%s",
			   calls ? ", INVITE, ACK, BYE, CANCEL" : "",
			   msgs || other ? ", MESSAGE" : "",
			   refer ? ", REFER, NOTIFY" : "",
			   reg || other ? ", REGISTER" : "") < 0 ? ENOMEM : 0;
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


/* The core's answers change only when the hooks do: format them then,
 * not per request. */
static void default_hdrs_update(struct stack *st)
{
	char allow[160];

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


static enum stack_hook hook_for(const struct pl *met)
{
	if (!pl_strcmp(met, "MESSAGE"))
		return STACK_HOOK_MESSAGE;
	if (!pl_strcmp(met, "INVITE"))
		return STACK_HOOK_INVITE;
	if (!pl_strcmp(met, "REFER"))
		return STACK_HOOK_REFER;
	if (!pl_strcmp(met, "REGISTER"))
		return STACK_HOOK_REGISTER;

	return STACK_HOOK_REQUEST;
}


static int core_reply(struct stack *st, const struct sip_msg *msg,
		      uint16_t scode, const char *reason, const char *hdrs);


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


static struct stack_req *req_new(struct stack *st, const struct sip_msg *msg)
{
	struct stack_req *req = mem_zalloc(sizeof(*req), req_destructor);

	if (!req)
		return NULL;

	req->st  = st;
	req->msg = mem_ref((void *)msg);

	return req;
}


/* A final answer of the core itself (400, 405, 420, 481...): through
 * a stack_req, so that a non-INVITE request over UDP keeps only the
 * compact Completed state of donetrans.c, not libre's transaction with
 * the whole request for 32 s (a flood of bad requests would cost ~5 KiB
 * each). Counted in stats.replies by stack_req_reply. */
static int core_reply(struct stack *st, const struct sip_msg *msg,
		      uint16_t scode, const char *reason, const char *hdrs)
{
	struct stack_req *req = req_new(st, msg);
	int err;

	if (!req) {
		err = sip_treplyf(NULL, NULL, st->sip, msg, false, scode,
				  reason, "%sContent-Length: 0\r\n\r\n",
				  hdrs ? hdrs : "");
		if (!err)
			++st->stats.replies;
		return err;
	}

	err = stack_req_reply(req, scode, reason, hdrs, NULL, NULL, 0);
	mem_deref(req);

	return err;
}


static bool request_handler(const struct sip_msg *msg, void *arg)
{
	struct stack *st = arg;
	struct stack_req *req;
	const char *reason = NULL;
	enum stack_hook hook;
	uint16_t scode;
	bool taken = false;

	++st->stats.requests;
	tune_socket(st, msg);

	/* a refused source (banned for guessing passwords) gets nothing:
	 * no answer, no transaction, no log line */
	if (st->admit.h && !st->admit.h(&msg->src, st->admit.arg)) {
		++st->stats.dropped;
		return true;
	}

	/* The ACK of a 2xx (the others are absorbed by libre): to its
	 * dialog, if any; an ACK is never answered */
	if (!pl_strcmp(&msg->met, "ACK")) {
		struct dialog *dlg = dialog_table_find(st->dialogs,
						       &msg->callid,
						       &msg->to.tag,
						       &msg->from.tag);
		if (dlg) {
			req = req_new(st, msg);
			if (req) {
				req->answered = true;
				(void)dialog_dispatch_request(dlg, req);
				mem_deref(req);
			}
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

	/* In-dialog request (RFC 3261 §12.2.2): to its dialog, or 481 */
	if (pl_isset(&msg->to.tag)) {
		struct dialog *dlg = dialog_table_find(st->dialogs,
						       &msg->callid,
						       &msg->to.tag,
						       &msg->from.tag);
		if (!dlg) {
			(void)core_reply(st, msg, 481, "Call/Transaction "
					 "Does Not Exist", NULL);
			return true;
		}

		req = req_new(st, msg);
		if (!req) {
			(void)sip_treply(NULL, st->sip, msg, 500,
					 "Server Internal Error");
			return true;
		}

		if (dialog_check_rseq(dlg, msg))
			(void)stack_req_reply(req, 500, "Out of Order CSeq",
					      "Retry-After: 1\r\n", NULL,
					      NULL, 0);
		else if (!dialog_dispatch_request(dlg, req))
			(void)stack_req_reply(req, 481, "Call/Transaction "
					      "Does Not Exist", NULL, NULL,
					      NULL, 0);
		else if (!req->answered)
			(void)stack_req_keep(req);

		mem_deref(req);
		return true;
	}

	req = req_new(st, msg);
	if (!req) {
		(void)sip_treply(NULL, st->sip, msg, 500,
				 "Server Internal Error");
		return true;
	}

	hook = hook_for(&msg->met);
	if (st->hooks[hook].h)
		taken = st->hooks[hook].h(st, req, st->hooks[hook].arg);
	if (!taken && hook != STACK_HOOK_REQUEST &&
	    st->hooks[STACK_HOOK_REQUEST].h)
		taken = st->hooks[STACK_HOOK_REQUEST].h(
			st, req, st->hooks[STACK_HOOK_REQUEST].arg);

	if (!taken) {
		(void)stack_req_default(req);
	}
	else if (!req->answered && !req->strans) {
		/* The hook answers later: absorb retransmissions now */
		int err = stack_req_keep(req);
		if (err)
			(void)stack_req_reply(req, 500, "Server Internal "
					      "Error", NULL, NULL, NULL, 0);
	}

	mem_deref(req);

	return true;
}


static bool response_handler(const struct sip_msg *msg, void *arg)
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

	slog(LOG_DEBUG, "stack", "stray_response", &msg->callid,
	     "code=%u cseq=%r src=%J", msg->scode, &msg->cseq.met,
	     &msg->src);

	return true;
}


/* ------------------------------------------------------------------ *
 * Outgoing requests
 * ------------------------------------------------------------------ */

static void outreq_destructor(void *arg)
{
	struct outreq *o = arg;

	list_unlink(&o->le);

	/* Still pending (stack stopping): dropping libre's request
	 * cancels it, and its handler is not called again, so tell our
	 * caller here: resph runs exactly once per request. */
	if (o->req) {
		o->req = mem_deref(o->req);
		if (o->resph)
			o->resph(ECANCELED, NULL, o->arg);
	}
}


static void outreq_resp_handler(int err, const struct sip_msg *msg,
				void *arg)
{
	struct outreq *o = arg;

	if (!err && msg && msg->scode < 200)
		return;

	o->req = NULL;  /* libre frees its request after this handler */

	if (o->resph)
		o->resph(err, err ? NULL : msg, o->arg);

	o->resph = NULL;
	mem_deref(o);
}


int stack_local_uri(const struct stack *st, enum sip_transp tp,
		    char *buf, size_t sz)
{
	size_t i;

	if (!st || !buf)
		return EINVAL;

	for (i = 0; i < st->lsnrc; i++) {
		const struct listener *l = &st->lsnrv[i];

		if (tp != SIP_TRANSP_NONE && l->tp != tp)
			continue;

		if (st->cfg.local_ip[0])
			return re_snprintf(buf, sz, "sip:sipstack@%s:%u%s",
					   st->cfg.local_ip,
					   sa_port(&l->laddr),
					   sip_transp_param(l->tp)) < 0 ?
				ENOMEM : 0;

		return re_snprintf(buf, sz, "sip:sipstack@%J%s", &l->laddr,
				   sip_transp_param(l->tp)) < 0 ? ENOMEM : 0;
	}

	return ENOENT;
}


int stack_send_message(struct stack *st, const char *to, const char *from,
		       const char *ctype, const uint8_t *body, size_t len,
		       const char *headers, stack_resp_h *resph, void *arg)
{
	char fromuri[256];
	struct outreq *o = NULL;
	struct mbuf *mb = NULL;
	struct uri route;
	struct pl pl;
	int err;

	if (!st || !to || !ctype)
		return EINVAL;

	if (!st->sip)
		return ESHUTDOWN;

	pl_set_str(&pl, to);
	err = uri_decode(&route, &pl);
	if (err)
		return EINVAL;

	if (!from) {
		err = stack_local_uri(st, SIP_TRANSP_NONE, fromuri,
				      sizeof(fromuri));
		if (err)
			return err;
		from = fromuri;
	}

	o = mem_zalloc(sizeof(*o), outreq_destructor);
	mb = mbuf_alloc(512 + len);
	if (!o || !mb) {
		err = ENOMEM;
		goto out;
	}

	o->st    = st;
	o->resph = resph;
	o->arg   = arg;

	err = mbuf_printf(mb,
			  "Max-Forwards: %u\r\n"
			  "To: <%s>\r\n"
			  "From: <%s>;tag=%016llx\r\n"
			  "Call-ID: %016llx%016llx\r\n"
			  "CSeq: %u MESSAGE\r\n"
			  "User-Agent: %s\r\n"
			  "%s"
			  "Content-Type: %s\r\n"
			  "Content-Length: %zu\r\n"
			  "\r\n",
			  st->cfg.max_forwards, to, from,
			  rand_u64(), rand_u64(), rand_u64(),
			  1 + (rand_u32() & 0xffff),
			  st->cfg.user_agent, headers ? headers : "",
			  ctype, len);
	if (len)
		err |= mbuf_write_mem(mb, body, len);
	if (err)
		goto out;

	mb->pos = 0;

	err = sip_request(&o->req, st->sip, true, "MESSAGE", 7, to,
			  (int)strlen(to), &route, mb, (size_t)rand_u32(),
			  NULL, outreq_resp_handler, o);
	if (err)
		goto out;

	list_append(&st->outl, &o->le, o);

 out:
	if (err)
		mem_deref(o);
	mem_deref(mb);

	return err;
}


/* ------------------------------------------------------------------ *
 * Cross-thread calls
 * ------------------------------------------------------------------ */

static void mqueue_handler(int id, void *data, void *arg)
{
	struct xcall *xc = data;
	(void)id;
	(void)arg;

	xc->h(xc->arg);
	free(xc);
}


int stack_call(struct stack *st, stack_call_h *h, void *arg)
{
	struct xcall *xc;
	int err;

	if (!st || !h || !st->mq)
		return EINVAL;

	/* plain malloc: libre's refcounts are not atomic */
	xc = malloc(sizeof(*xc));
	if (!xc)
		return ENOMEM;

	xc->h = h;
	xc->arg = arg;

	err = mqueue_push(st->mq, 0, xc);
	if (err)
		free(xc);

	return err;
}


/* ------------------------------------------------------------------ *
 * Lifecycle
 * ------------------------------------------------------------------ */

static void listener_reset(struct listener *l)
{
	l->cert = mem_deref(l->cert);
	l->key  = mem_deref(l->key);
	l->ca   = mem_deref(l->ca);
}


static void stack_destructor(void *arg)
{
	struct stack *st = arg;
	size_t i;

	stack_stop(st);
	for (i = 0; i < st->lsnrc; i++)
		listener_reset(&st->lsnrv[i]);
	mem_deref(st->mq);
	while (st->services.tail)            /* the last attached first */
		mem_deref(st->services.tail->data);
	mem_deref(st->dialogs);
}


int stack_alloc(struct stack **stp, const struct stack_config *cfg)
{
	struct stack *st;
	int err;

	if (!stp)
		return EINVAL;

	st = mem_zalloc(sizeof(*st), stack_destructor);
	if (!st)
		return ENOMEM;

	if (cfg)
		st->cfg = *cfg;
	else
		stack_config_default(&st->cfg);

	default_hdrs_update(st);

	err = dialog_table_alloc(&st->dialogs, 1u << 16);
	if (err)
		goto out;

	err = mqueue_alloc(&st->mq, mqueue_handler, st);
	if (err)
		goto out;

 out:
	if (err)
		mem_deref(st);
	else
		*stp = st;

	return err;
}


int stack_listen(struct stack *st, enum sip_transp tp,
		 const struct sa *laddr, const struct stack_tls_files *tls)
{
	struct listener *l;
	int err = 0;

	if (!st || !laddr)
		return EINVAL;

	if (tp != SIP_TRANSP_UDP && tp != SIP_TRANSP_TCP &&
	    tp != SIP_TRANSP_TLS)
		return EPROTONOSUPPORT;

	if (tp == SIP_TRANSP_TLS && (!tls || !tls->cert))
		return EINVAL;

	if (st->lsnrc >= MAX_LISTENERS)
		return EOVERFLOW;

	if (st->running)
		return EBUSY;

	l = &st->lsnrv[st->lsnrc];
	memset(l, 0, sizeof(*l));
	l->tp = tp;
	l->laddr = *laddr;

	if (tls) {
		err |= str_dup(&l->cert, tls->cert);
		if (tls->key)
			err |= str_dup(&l->key, tls->key);
		if (tls->ca)
			err |= str_dup(&l->ca, tls->ca);
	}

	if (err) {
		listener_reset(l);
		return err;
	}

	++st->lsnrc;

	return 0;
}


static int tls_setup(struct stack *st, const struct listener *l)
{
	SSL_CTX *ctx;
	int err;

	if (st->tls)
		return 0;

	if (!l->key || !strcmp(l->key, l->cert))
		return tls_alloc(&st->tls, TLS_METHOD_SSLV23, l->cert, NULL);

	/* Separate key file: libre's tls_alloc wants both in one file */
	err = tls_alloc(&st->tls, TLS_METHOD_SSLV23, NULL, NULL);
	if (err)
		return err;

	ctx = tls_openssl_context(st->tls);
	if (1 != SSL_CTX_use_certificate_chain_file(ctx, l->cert) ||
	    1 != SSL_CTX_use_PrivateKey_file(ctx, l->key, SSL_FILETYPE_PEM) ||
	    1 != SSL_CTX_check_private_key(ctx)) {
		st->tls = mem_deref(st->tls);
		return EINVAL;
	}

	return 0;
}


/* Parse cfg->dns_servers ("ip[:port] ..."); *nsn = 0 when empty */
int stack_dns_servers(const struct stack_config *cfg, struct sa *ns,
		      uint32_t *nsn)
{
	struct pl v, tok;
	uint32_t n = 0;

	pl_set_str(&v, cfg->dns_servers);
	while (!re_regex(v.p, v.l, "[^ ,]+", &tok)) {
		if (n >= *nsn)
			return EOVERFLOW;
		if (sa_decode(&ns[n], tok.p, tok.l)) {
			if (sa_set(&ns[n], &tok, 53))
				return EINVAL;
		}
		++n;
		v.l -= (tok.p + tok.l) - v.p;
		v.p = tok.p + tok.l;
	}

	*nsn = n;

	return 0;
}


int stack_start(struct stack *st)
{
	struct sa ns[4];
	uint32_t nsn = ARRAY_SIZE(ns);
	size_t i;
	int err;

	if (!st)
		return EINVAL;

	if (st->running)
		return EALREADY;

	if (!st->lsnrc)
		return EDESTADDRREQ;

	/* RFC 3263 needs a resolver; without nameservers we still run,
	 * and only requests to hostnames fail. */
	err = stack_dns_servers(&st->cfg, ns, &nsn);
	if (err) {
		slog(LOG_ERROR, "stack", "bad_dns_servers", NULL,
		     "dns_servers=%H", log_q, st->cfg.dns_servers);
		goto out;
	}
	if (nsn)
		err = dnsc_alloc(&st->dnsc, NULL, ns, nsn);
	else if ((nsn = ARRAY_SIZE(ns)) &&
		 !dns_srv_get(NULL, 0, ns, &nsn) && nsn)
		err = dnsc_alloc(&st->dnsc, NULL, ns, nsn);
	else
		err = dnsc_alloc(&st->dnsc, NULL, NULL, 0);
	if (err)
		goto out;

	err = sip_alloc(&st->sip, st->dnsc, HASH_CTRANS, HASH_STRANS,
			HASH_TCPCONN, st->cfg.user_agent, NULL, NULL);
	if (err)
		goto out;

	/* Timer J = 64*T1 (RFC 3261 §17.2.2) */
	err = donetab_alloc(&st->done, 64 * st->cfg.t1);
	if (err)
		goto out;

	for (i = 0; i < st->lsnrc; i++) {
		struct listener *l = &st->lsnrv[i];

		if (l->tp == SIP_TRANSP_TLS) {
			err = tls_setup(st, l);
			if (err) {
				slog(LOG_ERROR, "stack", "tls_failed", NULL,
				     "cert=%H key=%H err=%m", log_q, l->cert,
				     log_q, l->key, err);
				goto out;
			}
			if (l->ca)
				err = tls_add_ca(st->tls, l->ca);
			if (!err)
				err = sip_transp_add(st->sip, l->tp,
						     &l->laddr, st->tls);
		}
		else {
			udpbatch_arm(l->tp == SIP_TRANSP_UDP);
			err = sip_transp_add(st->sip, l->tp, &l->laddr);
			udpbatch_arm(false);
		}

		if (err) {
			slog(LOG_ERROR, "stack", "listen_failed", NULL,
			     "transport=%s addr=%J err=%m",
			     sip_transp_name(l->tp), &l->laddr, err);
			goto out;
		}

		/* learn the port picked for port 0 */
		if (!sa_port(&l->laddr))
			(void)sip_transp_laddr(st->sip, &l->laddr, l->tp,
					       &l->laddr);

		slog(LOG_INFO, "stack", "listen", NULL, "transport=%s addr=%J",
		     sip_transp_name(l->tp), &l->laddr);
	}

	err  = sip_listen(&st->lsnr_req, st->sip, true, request_handler, st);
	err |= sip_listen(&st->lsnr_resp, st->sip, false, response_handler,
			  st);
	if (err)
		goto out;

	loglimit_attach();         /* flood control runs on this thread */
	st->running = true;

 out:
	if (err)
		stack_stop(st);

	return err;
}


void stack_stop(struct stack *st)
{
	if (!st)
		return;

	/* services first (the calls: their BYE/CANCEL need the transport),
	 * the last attached first */
	{
		struct le *le;

		for (le = st->services.tail; le; le = le->prev) {
			struct service *svc = le->data;

			if (svc->stoph)
				svc->stoph(svc->obj);
		}
	}
	list_flush(&st->outl);
	st->lsnr_req  = mem_deref(st->lsnr_req);
	st->lsnr_resp = mem_deref(st->lsnr_resp);
	st->done = mem_deref(st->done);

	/* the struct sip frees the transactions of requests still held
	 * (a script sleeping in a hook): theirs no more (see the rule at
	 * req_track); unanswered, as before */
	while (st->strl.head) {
		struct stack_req *req = st->strl.head->data;

		req->strans = NULL;
		list_unlink(&req->le);
	}

	if (st->sip) {
		sip_close(st->sip, true);
		st->sip = mem_deref(st->sip);
	}

	st->dnsc = mem_deref(st->dnsc);
	st->tls  = mem_deref(st->tls);
	memset(st->udp_socks, 0, sizeof(st->udp_socks));

	if (st->running) {
		loglimit_flush();
		slog(LOG_INFO, "stack", "stopped", NULL, NULL);
	}

	st->running = false;
}


bool stack_is_running(const struct stack *st)
{
	return st ? st->running : false;
}


struct sip *stack_sip(const struct stack *st)
{
	return st ? st->sip : NULL;
}


const struct stack_config *stack_config(const struct stack *st)
{
	return st ? &st->cfg : NULL;
}


int stack_set_config(struct stack *st, const struct stack_config *cfg)
{
	if (!st || !cfg)
		return EINVAL;

	if (!cfg->t1 || cfg->t2 < cfg->t1 || !cfg->t4 ||
	    !cfg->max_forwards || cfg->max_forwards > 255)
		return EINVAL;

	st->cfg = *cfg;

	return 0;
}


void stack_set_hook(struct stack *st, enum stack_hook hook,
		    stack_req_h *h, void *arg)
{
	if (!st || (unsigned)hook >= STACK_HOOK_MAX)
		return;

	st->hooks[hook].h = h;
	st->hooks[hook].arg = arg;
	default_hdrs_update(st);
}


void stack_set_admit(struct stack *st, stack_admit_h *h, void *arg)
{
	if (!st)
		return;

	st->admit.h = h;
	st->admit.arg = arg;
}


void stack_stats(const struct stack *st, struct stack_stats *stats)
{
	if (!st || !stats)
		return;

	*stats = st->stats;
}


void stack_note_hook_error(struct stack *st)
{
	if (st)
		++st->stats.hook_errors;
}


static void service_destructor(void *arg)
{
	struct service *svc = arg;

	list_unlink(&svc->le);
	mem_deref(svc->obj);
}


int stack_service_add(struct stack *st, const void *key, void *obj,
		      stack_stop_h *stoph)
{
	struct service *svc;

	if (!st || !key || !obj)
		return EINVAL;

	if (stack_service(st, key))
		return EALREADY;

	svc = mem_zalloc(sizeof(*svc), service_destructor);
	if (!svc)
		return ENOMEM;

	svc->key = key;
	svc->obj = mem_ref(obj);
	svc->stoph = stoph;
	list_append(&st->services, &svc->le, svc);

	return 0;
}


void *stack_service(const struct stack *st, const void *key)
{
	struct le *le;

	if (!st)
		return NULL;

	LIST_FOREACH(&st->services, le) {
		const struct service *svc = le->data;

		if (svc->key == key)
			return svc->obj;
	}

	return NULL;
}


struct dialog_table *stack_dialogs(const struct stack *st)
{
	return st ? st->dialogs : NULL;
}


int stack_debug(struct re_printf *pf, const struct stack *st)
{
	size_t i;
	int err;

	if (!st)
		return 0;

	err = re_hprintf(pf, "stack running=%d %H\n", st->running,
			 stack_config_debug, &st->cfg);
	for (i = 0; i < st->lsnrc; i++)
		err |= re_hprintf(pf, "  listen %s %J\n",
				  sip_transp_name(st->lsnrv[i].tp),
				  &st->lsnrv[i].laddr);
	err |= re_hprintf(pf, "  requests=%llu replies=%llu bad=%llu "
			  "dialogs=%u\n",
			  st->stats.requests, st->stats.replies,
			  st->stats.bad_requests,
			  dialog_table_count(st->dialogs));

	return err;
}
