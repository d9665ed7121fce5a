/**
 * server/core/request.c  A received request and its answers
 *
 * Owns struct stack_req: a request handed to a handler, with the server
 * transaction the stack makes for it (or not, when it is answered at
 * once), and the standard reason phrases. Exposes stack_req_*() and
 * stack_reason_phrase() in sipcore.h, stack_req_new() in core.h. Uses
 * libre's server transactions and replies, and donetrans.c to keep only
 * the compact Completed state of a non-INVITE request over UDP.
 */
#include <string.h>
#include <stdlib.h>
#include <re.h>
#include "sipcore.h"
#include "core.h"
#include "mbw.h"

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


void stack_req_forwarded(struct stack_req *req)
{
	if (req)
		req->answered = true;
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


/* The reply libre's sip_treplyf() would write (src/sip/reply.c,
 * vreplyf(): the status line, the Vias, the first with rport= and
 * received= (RFC 3581, RFC 3261 §18.2.1), From, To (our tag on a
 * final or a 1xx above 100 when it has none), Call-ID, CSeq, the
 * Record-Route when rec_route, Server) and then ours: headers,
 * Content-Type, Content-Length, the body. Byte for byte the same, with
 * mbw.h's writers: libre's ~25 mbuf_printf calls cost ~8,000
 * instructions for a 100 Trying (bench/proxy_bench.py). *rport: the
 * first Via asked for rport (where the reply goes depends on it). */
static int reply_print(struct mbuf *mb, bool *rport,
		       const struct stack *st, const struct sip_msg *msg,
		       bool rec_route, uint16_t scode, const char *reason,
		       const char *headers, const char *ctype,
		       const uint8_t *body, size_t len)
{
	uint32_t viac = 0;
	struct le *le;
	int err;

	*rport = false;
	err = mbw_num(mb, "SIP/2.0 ", 8, scode, " ", 1);
	if (!err)
		err = mbw_str(mb, reason);
	if (!err)
		err = MBW_LIT(mb, "\r\n");

	for (le = msg->hdrl.head; le && !err; le = le->next) {
		const struct sip_hdr *hdr = le->data;
		struct pl rp;

		switch (hdr->id) {

		case SIP_HDR_VIA:
			if (viac++) {
				err = mbw_hdr(mb, &hdr->name, &hdr->val);
				break;
			}
			err = mbw_pl(mb, &hdr->name);
			if (!err)
				err = MBW_LIT(mb, ": ");
			if (err)
				break;

			if (!msg_param_exists(&msg->via.params, "rport",
					      &rp)) {
				const char *e = hdr->val.p + hdr->val.l;

				if (hdr->val.p > rp.p || rp.p + rp.l > e) {
					err = ERANGE;
					break;
				}
				err = mbw_mem(mb, hdr->val.p,
					      (size_t)(rp.p - hdr->val.p));
				if (!err)
					err = mbw_mem(mb, rp.p + rp.l,
						      (size_t)(e - rp.p - rp.l));
				if (!err)
					err = mbw_num(mb, ";rport=", 7,
						      sa_port(&msg->src), "",
						      0);
				*rport = true;
			}
			else {
				err = mbw_pl(mb, &hdr->val);
			}

			if (!err && (*rport || !sa_cmp(&msg->src,
						       &msg->via.addr,
						       SA_ADDR))) {
				err = MBW_LIT(mb, ";received=");
				if (!err)
					err = mbw_addr(mb, &msg->src, false);
			}
			if (!err)
				err = MBW_LIT(mb, "\r\n");
			break;

		case SIP_HDR_TO:
			err = mbw_pl(mb, &hdr->name);
			if (!err)
				err = MBW_LIT(mb, ": ");
			if (!err)
				err = mbw_pl(mb, &hdr->val);
			if (!err && !pl_isset(&msg->to.tag) && scode > 100) {
				char tag[16];

				err = mbw_mem3(mb, ";tag=", 5, tag,
					       mbw_x64_fmt(tag, msg->tag), "", 0);
			}
			if (!err)
				err = MBW_LIT(mb, "\r\n");
			break;

		case SIP_HDR_RECORD_ROUTE:
			if (!rec_route)
				break;

			/* fallthrough */

		case SIP_HDR_FROM:
		case SIP_HDR_CALL_ID:
		case SIP_HDR_CSEQ:
			err = mbw_hdr(mb, &hdr->name, &hdr->val);
			break;

		default:
			break;
		}
	}

	/* libre's software string: the one the stack gave sip_alloc() */
	if (!err)
		err = MBW_LIT(mb, "Server: ");
	if (!err)
		err = mbw_str(mb, st->cfg.user_agent);
	if (!err)
		err = MBW_LIT(mb, "\r\n");

	if (!err && headers)
		err = mbw_str(mb, headers);
	if (!err && ctype && len) {
		err = MBW_LIT(mb, "Content-Type: ");
		if (!err)
			err = mbw_str(mb, ctype);
		if (!err)
			err = MBW_LIT(mb, "\r\n");
	}
	if (!err)
		err = mbw_num(mb, "Content-Length: ", 16, (uint32_t)len,
			      "\r\n\r\n", 4);
	if (!err && len)
		err = mbw_mem(mb, body, len);

	return err;
}


/* What sip_treplyf(&req->strans, mbp, ...) does, with reply_print():
 * an ACK is never answered; the reply goes through the transaction
 * (made if there is none); on any error the transaction is gone */
static int treply(struct stack_req *req, struct mbuf **mbp, bool rec_route,
		  uint16_t scode, const char *reason, const char *headers,
		  const char *ctype, const uint8_t *body, size_t len)
{
	struct sip *sip = req->st->sip;
	const struct sip_msg *msg = req->msg;
	struct mbuf *mb;
	struct sa dst;
	bool rport;
	int err;

	if (!pl_strcmp(&msg->met, "ACK"))
		return 0;

	mb = mbuf_alloc(1024);
	if (!mb) {
		err = ENOMEM;
		goto out;
	}

	err = reply_print(mb, &rport, req->st, msg, rec_route, scode, reason,
			  headers, ctype, body, len);
	if (err)
		goto out;

	mb->pos = 0;
	sip_reply_addr(&dst, msg, rport);
	err = sip_strans_reply(&req->strans, sip, msg, &dst, scode, mb);

 out:
	if (err)
		req->strans = mem_deref(req->strans);

	if (!err && mbp)
		*mbp = mb;
	else
		mem_deref(mb);

	return err;
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

	err = treply(req, done ? &mb : mbp, req->dialog && scode > 100,
		     scode, reason, headers, ctype, body, len);
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
	stack_count_reply(st, req->msg, scode);
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


void stack_req_set_cancel(struct stack_req *req, sip_cancel_h *cancelh,
			  void *arg)
{
	if (!req)
		return;

	req->cancelh = cancelh;
	req->cancel_arg = arg;
}


void stack_req_set_default(struct stack_req *req, stack_req_default_h *h,
			   void *arg)
{
	if (!req)
		return;

	req->defh = h;
	req->def_arg = arg;
}


bool stack_req_has_default(const struct stack_req *req)
{
	return req && req->defh;
}


/* A proxy's relayed response: libre's server transaction sends it as
 * it is (sip_strans_reply), and answers retransmissions of the request
 * with it; the ownership rules above hold (libre's after a final). No
 * donetrans.c here: a relayed answer is rare beside our own. */
int stack_req_relay_reply(struct stack_req *req, uint16_t scode,
			  struct mbuf *mb)
{
	struct stack *st;
	struct sa dst;
	int err;

	if (!req || !mb || scode < 100 || scode > 699)
		return EINVAL;

	st = req->st;
	if (!st->sip)
		return ESHUTDOWN;

	if (req->answered) {
		if (scode >= 200 && scode < 300 &&
		    !pl_strcmp(&req->msg->met, "INVITE"))
			return stack_req_resend(req, mb);
		return EALREADY;
	}

	if (!req->strans) {
		err = sip_strans_alloc(&req->strans, st->sip, req->msg,
				       NULL, NULL);
		if (err)
			return err;
	}

	reply_dst(req->msg, &dst);
	mb->pos = 0;
	err = sip_strans_reply(&req->strans, st->sip, req->msg, &dst, scode,
			       mb);
	req_track(req);
	if (scode >= 200)
		req->answered = true;
	if (err) {
		slog(LOG_WARN, "stack", "reply_failed", &req->msg->callid,
		     "code=%u err=%m", scode, err);
		return err;
	}

	++st->stats.replies;
	stack_count_reply(st, req->msg, scode);

	return 0;
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


struct stack_req *stack_req_new(struct stack *st, const struct sip_msg *msg)
{
	struct stack_req *req = mem_zalloc(sizeof(*req), req_destructor);

	if (!req)
		return NULL;

	req->st  = st;
	req->msg = mem_ref((void *)msg);

	return req;
}
