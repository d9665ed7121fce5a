/**
 * server/calls/reinvite.c  re-INVITE: hold, unhold, a new offer; glare
 *
 * Owns the re-INVITEs of a call once established: ours (call_reinvite,
 * call_hold; 491 glare retried as RFC 3261 §14.1 says, no answer or a
 * dead dialog ending the call) and the peer's (peer_reinvite: target
 * refresh, our answer mirroring the offered direction, 491 while a
 * transaction of ours is pending, §14.2), and the hold state both ways
 * (RFC 3264 §8.4; reinvite_check_hold for the peer's offers, UPDATE's
 * too). Exposes call_reinvite(), call_hold() and call_is_local_hold()
 * in calls.h, peer_reinvite() and reinvite_check_hold() in
 * call_priv.h. Uses the core's dialog requests, sdpdir.c, and uas.c's
 * 2xx retransmission.
 */
#include <string.h>
#include <re.h>
#include "calls.h"
#include "call_priv.h"


/* ------------------------------------------------------------------ *
 * Our re-INVITE: hold, unhold, a new offer
 * ------------------------------------------------------------------ */

static int send_reinvite(struct call *call);


static void reinvite_done(struct call *call, int err, uint16_t scode)
{
	call_reinvite_h *h = call->reinvh;

	call->reinvh = NULL;
	call->reinv_body = mem_deref(call->reinv_body);
	call->reinv_ctype = mem_deref(call->reinv_ctype);
	call->reinv_hdrs = mem_deref(call->reinv_hdrs);
	call->glare_count = 0;

	if (h)
		h(err, scode, call->reinv_arg);
}


static void glare_retry(void *arg)
{
	struct call *call = arg;

	if (send_reinvite(call))
		reinvite_done(call, EPROTO, 0);
}


static void reinvite_resp_handler(int err, const struct sip_msg *msg,
				  void *arg)
{
	struct call *call = arg;
	struct dialog *dlg = call->dlg;

	if (!err && msg && msg->scode < 200)
		return;

	call->reinv = NULL;
	mem_ref(call);

	if (err || !msg) {
		/* §14.1: no answer to a re-INVITE ends the dialog */
		reinvite_done(call, err ? err : EPROTO, 0);
		(void)call_send_bye(call, "timeout");
	}
	else if (msg->scode < 300) {
		/* our own move, unless our BYE has crossed this 2xx
		 * (the call is Ending): then the answer is late */
		enum cause cause = call->byereq ? BY_PEER : BY_US;
		struct sip_request *ack = NULL;

		(void)dialog_request(&ack, dlg, "ACK", call->reinv_cseq, NULL,
				     NULL, NULL, 0, NULL, NULL);
		(void)dialog_target_refresh(dlg, msg);
		call_set_remote_body(call, msg);
		(void)call_set_body(&call->lbody, &call->lbody_len,
				    &call->lctype, call->reinv_ctype,
				    (const uint8_t *)call->reinv_body,
				    call->reinv_len);

		if (call->reinv_kind == CALL_REINVITE_HOLD && !call->local_hold) {
			call->local_hold = true;
			call_ev(call, CALL_FSM_HOLD, cause);
		}
		else if (call->reinv_kind == CALL_REINVITE_UNHOLD &&
			 call->local_hold) {
			call->local_hold = false;
			if (!call->on_hold)
				call_ev(call, CALL_FSM_UNHOLD, cause);
		}
		reinvite_done(call, 0, msg->scode);
	}
	else if (msg->scode == 491 && call->glare_count < 3) {
		/* §14.1: glare. Retry after 2.1-4 s if we own the Call-ID
		 * (we sent the first INVITE), else after 0-2 s, in units
		 * of 10 ms */
		uint32_t ms = call->outgoing ? 2100 + 10 * (rand_u32() % 191) :
			10 * (rand_u32() % 201);

		++call->glare_count;
		slog(LOG_INFO, "call", "glare", NULL, "%H retry_ms=%u",
		     call_logid, call, ms);
		tmr_start(&call->tmr_glare, ms, glare_retry, call);
	}
	else if (msg->scode == 481 || msg->scode == 408) {
		reinvite_done(call, ENOENT, msg->scode);
		call_end(call, "dialog gone");
	}
	else {
		/* any other failure leaves the session as it was (§14.1) */
		reinvite_done(call, 0, msg->scode);
	}

	mem_deref(call);
}


static int send_reinvite(struct call *call)
{
	int err;

	if (!call->dlg)
		return ENOTCONN;

	err = dialog_request(&call->reinv, call->dlg, "INVITE", 0,
			     call->reinv_hdrs, call->reinv_ctype,
			     (const uint8_t *)call->reinv_body,
			     call->reinv_len, reinvite_resp_handler, call);
	if (!err)
		call->reinv_cseq = dialog_lseq(call->dlg);

	return err;
}


int call_reinvite(struct call *call, enum call_reinvite_kind kind,
		  const char *hdrs, const char *ctype, const uint8_t *body,
		  size_t len, call_reinvite_h *h, void *arg)
{
	int err;

	if (!call)
		return EINVAL;

	if (call->ended || !call->dlg ||
	    (call->outgoing ? !call->answered : !call->acked))
		return ENOTCONN;

	if (call->reinv || call->reinvh || tmr_isrunning(&call->tmr_glare))
		return EALREADY;

	err  = call_set_body(&call->reinv_body, &call->reinv_len,
			     &call->reinv_ctype, ctype, body, len);
	if (!err && hdrs)
		err = str_dup(&call->reinv_hdrs, hdrs);
	if (err)
		return err;

	call->reinv_kind = kind;
	call->reinvh = h;
	call->reinv_arg = arg;

	err = send_reinvite(call);
	if (err) {
		call->reinvh = NULL;
		reinvite_done(call, err, 0);
	}

	return err;
}


/* hold/unhold: our description with the direction of RFC 3264 §8.4 */
int call_hold(struct call *call, bool hold, call_reinvite_h *h, void *arg)
{
	char *sdp = NULL;
	size_t len = 0;
	const char *dir;
	int err;

	if (!call)
		return EINVAL;

	if (!call->lbody || !call->lctype ||
	    str_casecmp(call->lctype, "application/sdp"))
		return ENOENT;     /* no SDP of ours to re-offer */

	if (hold)
		dir = strcmp(sdp_direction(call->lbody, call->lbody_len),
			     "recvonly") &&
			strcmp(sdp_direction(call->lbody, call->lbody_len),
			       "inactive") ? "sendonly" : "inactive";
	else
		dir = "sendrecv";

	err = sdp_set_direction(&sdp, &len, call->lbody, call->lbody_len,
				dir);
	if (err)
		return err;

	err = call_reinvite(call, hold ? CALL_REINVITE_HOLD :
			    CALL_REINVITE_UNHOLD, NULL, "application/sdp",
			    (const uint8_t *)sdp, len, h, arg);
	mem_deref(sdp);

	return err;
}


bool call_is_local_hold(const struct call *call)
{
	return call ? call->local_hold : false;
}


/* ------------------------------------------------------------------ *
 * The peer's re-INVITE, and its hold
 * ------------------------------------------------------------------ */

void reinvite_check_hold(struct call *call, const struct sip_msg *msg)
{
	const struct sip_hdr *ct = sip_msg_hdr(msg, SIP_HDR_CONTENT_TYPE);
	struct call_event ev;
	struct pl body;
	bool hold;

	stack_msg_body(msg, &body);
	if (!body.l || !ct || pl_strcasecmp(&ct->val, "application/sdp"))
		return;

	hold = sdp_is_hold(body.p, body.l);
	if (hold == call->on_hold)
		return;

	/* the peer's offer, in whatever state it finds the call: Hold is
	 * refused on an early dialog (UPDATE) and after our BYE */
	call->on_hold = hold;
	call_ev(call, hold ? CALL_FSM_HOLD : CALL_FSM_UNHOLD, BY_PEER);

	memset(&ev, 0, sizeof(ev));
	ev.type = hold ? CALL_EV_HOLD : CALL_EV_UNHOLD;
	call_fire(call, &ev);
}


/* A re-INVITE of the peer: target refresh, offer/answer (our answer
 * mirrors the offered direction, RFC 3264 §6.1), hold and unhold; 491
 * while an INVITE transaction of ours or an unacknowledged 2xx is
 * pending (§14.2) */
void peer_reinvite(struct call *call, struct stack_req *req)
{
	const struct sip_msg *msg = stack_req_msg(req);
	const struct sip_hdr *ct = sip_msg_hdr(msg, SIP_HDR_CONTENT_TYPE);
	char h[512];
	const char *reason = NULL;
	char *answer = NULL;
	size_t alen = 0;
	struct pl body;
	uint16_t code;

	if (call->reinv || call->resp2xx || (!call->outgoing && !call->acked)) {
		(void)stack_req_reply(req, 491, "Request Pending", NULL, NULL,
				      NULL, 0);
		return;
	}

	/* a broken offer changes nothing: the session stays as it was
	 * (§14.2) */
	code = call_body_check(msg, &reason, h, sizeof(h));
	if (code) {
		call_body_refuse(req, code, reason, h);
		return;
	}

	(void)dialog_target_refresh(call->dlg, msg);
	call_set_remote_body(call, msg);
	stack_msg_body(msg, &body);

	if (body.l && ct && !pl_strcasecmp(&ct->val, "application/sdp") &&
	    call->lbody && call->lctype &&
	    !str_casecmp(call->lctype, "application/sdp")) {
		const char *dir = sdp_answer_dir(sdp_direction(body.p,
							       body.l));

		if (!sdp_set_direction(&answer, &alen, call->lbody,
				       call->lbody_len, dir))
			(void)call_set_body(&call->lbody, &call->lbody_len,
					    &call->lctype, "application/sdp",
					    (const uint8_t *)answer, alen);
		mem_deref(answer);
	}

	reinvite_check_hold(call, msg);
	stack_req_set_dialog(req, NULL, NULL);
	call->resp2xx = mem_deref(call->resp2xx);
	if (!stack_req_reply_mb(req, 200, "OK",
				call_contact_hdr(call, h, sizeof(h), NULL),
				call->lctype, (const uint8_t *)call->lbody,
				call->lbody_len, &call->resp2xx))
		uas_start_2xx_rtx(call, req);
}
