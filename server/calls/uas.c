/**
 * server/calls/uas.c  Incoming calls: answering an INVITE
 *
 * Owns the UAS side of a call: the out-of-dialog INVITE that makes one
 * (uas_invite_hook, registered by callmgr.c: the dialog, 100 Trying,
 * the incoming handler), provisional responses and the retransmission
 * of a reliable one until its PRACK (RFC 3262 §3), the 2xx and its
 * retransmission until the ACK (RFC 3261 §13.3.1.4; also the 2xx to a
 * re-INVITE of the peer, reinvite.c), the ACK timeout, rejects, and
 * the peer's CANCEL. Exposes call_ringing(), call_progress(),
 * call_answer() and call_reject() in calls.h, uas_invite_hook() and
 * uas_start_2xx_rtx() in call_priv.h. Uses the core's server
 * transactions (struct stack_req) and call.c; the PRACK that ends a
 * reliable 1xx is prack.c's.
 */
#include <re.h>
#include "calls.h"
#include "call_priv.h"


/* ------------------------------------------------------------------ *
 * UAS: answering an INVITE
 * ------------------------------------------------------------------ */

static void ack_timeout(void *arg)
{
	struct call *call = arg;

	/* §13.3.1.4: no ACK within 64*T1: confirmed, but end it. The
	 * peer decides how many of these there are: flood-controlled */
	slog_src(LOG_WARN, "call", "no_ack", &call->src, NULL, "%H",
		 call_logid, call);
	tmr_cancel(&call->tmr_rtx);
	(void)str_dup(&call->reason, "Timeout");
	(void)call_send_bye(call, "Timeout");
}


static void rtx_2xx(void *arg)
{
	struct call *call = arg;
	const struct stack_config *cfg = stack_config(call->cm->st);

	if (!call->resp2xx || !call->rtx_req)
		return;

	(void)stack_req_resend(call->rtx_req, call->resp2xx);
	call->rtx_ms = MIN(call->rtx_ms * 2, cfg->t2);
	tmr_start(&call->tmr_rtx, call->rtx_ms, rtx_2xx, call);
}


/* Retransmit our 2xx (in call->resp2xx) to req until the ACK, on
 * unreliable transports; give up after 64*T1 on any (§13.3.1.4) */
void uas_start_2xx_rtx(struct call *call, struct stack_req *req)
{
	const struct stack_config *cfg = stack_config(call->cm->st);

	mem_deref(call->rtx_req);
	call->rtx_req = stack_req_ref(req);
	call->rtx_cseq = stack_req_msg(req)->cseq.num;

	tmr_cancel(&call->tmr_rtx);
	if (stack_req_msg(req)->tp == SIP_TRANSP_UDP) {
		call->rtx_ms = cfg->t1;
		tmr_start(&call->tmr_rtx, call->rtx_ms, rtx_2xx, call);
	}
	tmr_start(&call->tmr_ack, 64 * cfg->t1, ack_timeout, call);
}


static void uas_cancel_handler(void *arg)
{
	struct call *call = arg;

	/* libre answered 200 to the CANCEL; the INVITE gets 487 */
	if (call->ended || stack_req_answered(call->invite))
		return;

	(void)stack_req_reply(call->invite, 487, "Request Terminated", NULL,
			      NULL, NULL, 0);
	dlg_ev(call, DIALOG_EV_RECEIVE_CANCEL, BY_US);
	call_ev(call, CALL_FSM_CANCEL, BY_US);
	call_end(call, "cancelled");
}


static void rel1xx_timeout(void *arg)
{
	struct call *call = arg;
	const struct stack_config *cfg = stack_config(call->cm->st);

	if (!call->rel1xx)
		return;

	/* RFC 3262 §3: no PRACK in 64*T1: reject the INVITE with a 5xx */
	if (call->rel_total >= 64 * cfg->t1) {
		slog(LOG_WARN, "call", "no_prack", NULL, "%H", call_logid,
		     call);
		call->rel1xx = mem_deref(call->rel1xx);
		call->answer_deferred = false;
		(void)call_reject(call, 504, "PRACK Timeout", NULL);
		return;
	}

	(void)stack_req_resend(call->invite, call->rel1xx);
	call->rel_total += call->rel_ms;
	call->rel_ms *= 2;
	tmr_start(&call->tmr_rel, call->rel_ms, rel1xx_timeout, call);
}


int call_ringing(struct call *call, uint16_t code, const char *reason,
		 const char *hdrs, const char *ctype, const uint8_t *body,
		 size_t len)
{
	return call_progress(call, code, reason, CALL_REL_AUTO, hdrs, ctype,
			     body, len);
}


int call_progress(struct call *call, uint16_t code, const char *reason,
		  enum call_rel rel, const char *hdrs, const char *ctype,
		  const uint8_t *body, size_t len)
{
	const struct stack_config *cfg;
	char h[1024], extra[768];
	bool reliable;
	int err;

	if (!call || call->outgoing || code < 101 || code > 199)
		return EINVAL;

	if (call->ended || stack_req_answered(call->invite))
		return ENOTCONN;

	/* a replacement is answered without alerting (RFC 3891 §3) */
	if (fsm_state_id(call->fsm) == CALL_ST_REPLACING)
		return EPERM;

	cfg = stack_config(call->cm->st);

	/* RFC 3262 §3: reliably when the INVITE supports or requires it
	 * (unless the owner says not to: never when it requires it), never
	 * when it does neither; one at a time (not before the previous one
	 * is PRACKed) */
	if (rel == CALL_REL_NO && call->rel_required)
		return EPERM;
	if (rel == CALL_REL_YES && !call->rel100)
		return ENOTSUP;
	reliable = call->rel100 && rel != CALL_REL_NO;
	if (reliable && call->rel1xx)
		return EBUSY;

	if (reliable)
		(void)re_snprintf(extra, sizeof(extra), "Require: 100rel\r\n"
				  "RSeq: %u\r\n%s", ++call->rseq,
				  hdrs ? hdrs : "");

	err = stack_req_reply_mb(call->invite, code, reason ? reason :
				 "Ringing", call_contact_hdr(call, h, sizeof(h),
							     reliable ? extra :
							     hdrs),
				 ctype, body, len,
				 reliable ? &call->rel1xx : NULL);
	if (err)
		return err;

	if (reliable) {
		call->rel_offer = len > 0;
		call->rel_ms = cfg->t1;
		call->rel_total = 0;
		tmr_start(&call->tmr_rel, call->rel_ms, rel1xx_timeout, call);
		if (len)
			(void)call_set_body(&call->lbody, &call->lbody_len,
					    &call->lctype, ctype, body, len);
	}

	dlg_ev(call, DIALOG_EV_SEND_1XX, BY_US);
	call_ev(call, CALL_FSM_RINGING, BY_US);

	return 0;
}


int call_answer(struct call *call, const char *hdrs, const char *ctype,
		const uint8_t *body, size_t len)
{
	const struct stack_config *cfg;
	char h[1024];
	int err;

	if (!call || call->outgoing)
		return EINVAL;

	if (call->ended || stack_req_answered(call->invite))
		return ENOTCONN;

	if (call->answer_deferred)
		return EALREADY;

	cfg = stack_config(call->cm->st);

	/* without a body the 2xx carries none, and our session
	 * description stays what a reliable 1xx or an UPDATE made it
	 * (the offer/answer is done, RFC 3262 §5, RFC 3311) */
	if (len) {
		err = call_set_body(&call->lbody, &call->lbody_len,
				    &call->lctype, ctype, body, len);
		if (err)
			return err;

		/* from here on our copies: ctype and body may have been
		 * ours (a deferred answer) and are freed now */
		ctype = call->lctype;
		body = (const uint8_t *)call->lbody;
	}

	/* RFC 3262 §3: a 2xx waits for the PRACK of a reliable 1xx that
	 * carried an offer; it goes out from the PRACK handler */
	if (call->rel1xx && call->rel_offer) {
		call->answer_deferred = true;
		call->ans_body = len > 0;
		call->ans_hdrs = mem_deref(call->ans_hdrs);
		if (hdrs)
			(void)str_dup(&call->ans_hdrs, hdrs);
		return 0;
	}

	/* a final answer ends the reliable 1xx's retransmissions */
	tmr_cancel(&call->tmr_rel);
	call->rel1xx = mem_deref(call->rel1xx);

	err = stack_req_reply_mb(call->invite, 200, "OK",
				 call_contact_hdr(call, h, sizeof(h), hdrs),
				 ctype, body, len, &call->resp2xx);
	if (err)
		return err;

	call->answered = true;
	tmr_cancel(&call->tmr_setup);
	dlg_ev(call, DIALOG_EV_SEND_2XX, BY_US);
	call_ev(call, CALL_FSM_ANSWER, BY_US);

	uas_start_2xx_rtx(call, call->invite);
	(void)cfg;

	return 0;
}


int call_reject(struct call *call, uint16_t code, const char *reason,
		const char *hdrs)
{
	int err;

	if (!call || call->outgoing || code < 300 || code > 699)
		return EINVAL;

	if (call->ended || stack_req_answered(call->invite))
		return ENOTCONN;

	err = stack_req_reply(call->invite, code, reason ? reason :
			      stack_reason_phrase(code), hdrs, NULL, NULL, 0);

	dlg_ev(call, DIALOG_EV_SEND_3XX6XX, BY_US);
	call_ev(call, CALL_FSM_REJECT, BY_US);
	call_end(call, "rejected");

	return err;
}


/* ------------------------------------------------------------------ *
 * A new incoming call
 * ------------------------------------------------------------------ */

/* RFC 3891 §3: the call an INVITE's Replaces names, or the answer that
 * refuses it: 481 no such dialog (or an early one we did not start),
 * 486 early-only for a confirmed one, 603 it ended, 400 malformed */
static uint16_t replaces_match(struct callmgr *cm, const struct sip_msg *msg,
			       struct call **oldp)
{
	const struct sip_hdr *h = sip_msg_xhdr(msg, "Replaces");
	struct pl cid, totag, fromtag;
	struct dialog *dlg;
	struct le *le;

	*oldp = NULL;
	if (!h)
		return 0;

	if (sip_msg_xhdr_count(msg, "Replaces") > 1 ||
	    re_regex(h->val.p, h->val.l, "[^; \t]+", &cid) ||
	    re_regex(h->val.p, h->val.l, ";to-tag=[^; \t]+", &totag) ||
	    re_regex(h->val.p, h->val.l, ";from-tag=[^; \t]+", &fromtag))
		return 400;

	/* to-tag is our (local) tag, from-tag the peer's */
	dlg = dialog_table_find(stack_dialogs(cm->st), &cid, &totag,
				&fromtag);
	LIST_FOREACH(dlg ? &cm->calls : NULL, le) {
		struct call *c = le->data;

		if (c->dlg != dlg)
			continue;
		if (c->ended)
			return 603;
		if (c->answered || (!c->outgoing &&
				    stack_req_answered(c->invite))) {
			if (!re_regex(h->val.p, h->val.l, "early-only"))
				return 486;
		}
		else if (!c->outgoing) {
			return 481;   /* an early dialog we did not start */
		}
		*oldp = c;
		return 0;
	}

	return 481;
}


bool uas_invite_hook(struct stack *st, struct stack_req *req, void *arg)
{
	struct callmgr *cm = arg;
	const struct sip_msg *msg = stack_req_msg(req);
	char ltag[32], contact[256];
	struct call *call, *old;
	const char *breason = NULL;
	char bhdrs[160];
	uint16_t rcode;
	int err;

	if (!cm->incomingh)
		return false;

	/* draining (sipstack ctl drain): no new call; come back later */
	if (cm->draining) {
		char hdrs[40];

		(void)re_snprintf(hdrs, sizeof(hdrs), "Retry-After: %u\r\n",
				  cm->retry_after);
		slog_src(LOG_INFO, "call", "refused_draining", &msg->src,
			 &msg->callid, "code=503 src=%J", &msg->src);
		(void)stack_req_reply(req, 503, "Service Unavailable", hdrs,
				      NULL, NULL, 0);
		return true;
	}

	rcode = call_body_check(msg, &breason, bhdrs, sizeof(bhdrs));
	if (rcode) {
		call_body_refuse(req, rcode, breason, bhdrs);
		return true;
	}

	rcode = replaces_match(cm, msg, &old);
	if (rcode) {
		slog_src(LOG_INFO, "call", "replaces_refused", &msg->src,
			 &msg->callid, "code=%u src=%J", rcode, &msg->src);
		(void)stack_req_reply(req, rcode, rcode == 400 ?
				      "Bad Replaces Header" :
				      stack_reason_phrase(rcode), NULL, NULL,
				      NULL, 0);
		return true;
	}

	if (!sip_msg_hdr(msg, SIP_HDR_CONTACT)) {
		(void)stack_req_reply(req, 400, "Missing Contact Header",
				      NULL, NULL, NULL, 0);
		return true;
	}

	if (stack_local_uri(st, msg->tp, contact, sizeof(contact))) {
		(void)stack_req_reply(req, 500, "No Local Address", NULL,
				      NULL, NULL, 0);
		return true;
	}

	call = call_new(cm, false);
	if (!call) {
		(void)stack_req_reply(req, 500, "Server Internal Error", NULL,
				      NULL, NULL, 0);
		return true;
	}

	/* our To tag is libre's for this message, which its replies add */
	(void)re_snprintf(ltag, sizeof(ltag), "%016llx", msg->tag);

	err  = pl_strdup(&call->id, &msg->callid);
	err |= pl_strdup(&call->from, &msg->from.auri);
	err |= pl_strdup(&call->to, &msg->to.auri);
	err |= pl_strdup(&call->ruri, &msg->ruri);
	if (!err)
		err = dialog_create_uas(&call->dlg, stack_dialogs(st), st, msg,
					ltag, contact);
	if (!err)
		err = call_attach_dialog_fsm(cm, call->dlg, false);
	if (err) {
		mem_deref(call);
		(void)stack_req_reply(req, err == EBADMSG ? 400 : 500,
				      err == EBADMSG ? "Bad Contact Header" :
				      "Server Internal Error", NULL, NULL,
				      NULL, 0);
		return true;
	}

	call->invite = stack_req_ref(req);
	call->src = msg->src;
	call->tp = msg->tp;
	call->rel_required = sip_msg_hdr_has_value(msg, SIP_HDR_REQUIRE,
						   "100rel");
	call->rel100 = call->rel_required ||
		sip_msg_hdr_has_value(msg, SIP_HDR_SUPPORTED, "100rel");
	call->rseq = 1 + (rand_u32() & 0xffff);
	stack_req_set_dialog(req, uas_cancel_handler, call);
	dialog_set_handlers(call->dlg, call_request_handler, NULL, call);
	dlg_ev(call, DIALOG_EV_RECEIVE_INVITE, BY_US);
	call_set_remote_body(call, msg);
	list_append(&cm->calls, &call->le, call);   /* the list's ref */
	++cm->total;

	err = stack_req_keep(req);
	if (!err)
		err = stack_req_reply(req, 100, "Trying", NULL, NULL, NULL, 0);
	if (err) {
		dlg_ev(call, DIALOG_EV_TRANSPORT_ERROR, BY_US);
		call_ev(call, CALL_FSM_ERROR, BY_US);
		call_end(call, "error");
		return true;
	}
	dlg_ev(call, DIALOG_EV_SEND_100, BY_US);

	tmr_start(&call->tmr_setup, SETUP_TIMEOUT, call_setup_timeout, call);

	slog(LOG_INFO, "call", "incoming", &msg->callid, "from=%r to=%r%s%s",
	     &msg->from.auri, &msg->to.auri, old ? " replaces=" : "",
	     old ? old->id : "");

	if (old) {
		call->replaces = mem_ref(old);
		call_ev(call, CALL_FSM_REPLACE, BY_PEER);
	}

	if (!cm->incomingh(call, cm->arg) && !call->ended)
		(void)call_reject(call, 480, "Temporarily Unavailable", NULL);

	return true;
}
