/**
 * server/calls/update.c  UPDATE with an offer (RFC 3311)
 *
 * Owns no state of its own: answers the peer's UPDATE offer in an
 * early or confirmed dialog, or refuses it while an offer is pending
 * (491; 500 with Retry-After, §5.2). Exposes update_offer() in
 * call_priv.h: call.c gives it every UPDATE, and one without SDP goes
 * to the owner as CALL_EV_INFO. Uses sdpdir.c for the answer's
 * direction and reinvite_check_hold() (reinvite.c) for the peer's
 * hold.
 */
#include <re.h>
#include "calls.h"
#include "call_priv.h"


/* UPDATE with an offer (RFC 3311), in an early or confirmed dialog:
 * answered like a re-INVITE's offer, at once (no ACK). Returns false
 * when it carries no SDP (the script's on_info gets it). */
bool update_offer(struct call *call, struct stack_req *req)
{
	const struct sip_msg *msg = stack_req_msg(req);
	const struct sip_hdr *ct = sip_msg_hdr(msg, SIP_HDR_CONTENT_TYPE);
	char h[512];
	const char *reason = NULL;
	char *answer = NULL;
	size_t alen = 0;
	struct pl body;
	uint16_t code;

	stack_msg_body(msg, &body);
	if (!body.l || !ct || pl_strcasecmp(&ct->val, "application/sdp"))
		return false;

	/* a broken offer changes nothing (RFC 3311 §5.2 as §14.2) */
	code = call_body_check(msg, &reason, h, sizeof(h));
	if (code) {
		call_body_refuse(req, code, reason, h);
		return true;
	}

	/* §5.2: an offer while ours is unanswered: 491. Ours: a re-INVITE
	 * or reliable 1xx offer, or, calling out, the INVITE's offer until
	 * a reliable 1xx or the 2xx brought the answer */
	if (call->reinv || (call->rel1xx && call->rel_offer) ||
	    (call->outgoing && !call->answered &&
	     !(call->peer_rseq && call->rbody) && call->lbody &&
	     call->lctype && !str_casecmp(call->lctype, "application/sdp"))) {
		(void)stack_req_reply(req, 491, "Request Pending", NULL, NULL,
				      NULL, 0);
		return true;
	}

	/* §5.2: an offer while the INVITE's is unanswered: 500 with a
	 * Retry-After of 0-10 s. An incoming call has an SDP of ours once
	 * it answered the INVITE's offer (a reliable 1xx or the 2xx); no
	 * SDP of ours: nothing to answer with either */
	if (!call->lbody || !call->lctype ||
	    str_casecmp(call->lctype, "application/sdp")) {
		(void)re_snprintf(h, sizeof(h), "Retry-After: %u\r\n",
				  rand_u32() % 11);
		(void)stack_req_reply(req, 500, "Server Internal Error", h,
				      NULL, NULL, 0);
		return true;
	}

	(void)dialog_target_refresh(call->dlg, msg);
	call_set_remote_body(call, msg);

	if (!sdp_set_direction(&answer, &alen, call->lbody, call->lbody_len,
			       sdp_answer_dir(sdp_direction(body.p, body.l))))
		(void)call_set_body(&call->lbody, &call->lbody_len,
				    &call->lctype, "application/sdp",
				    (const uint8_t *)answer, alen);
	mem_deref(answer);

	if (call->acked || call->outgoing)
		reinvite_check_hold(call, msg);

	stack_req_set_dialog(req, NULL, NULL);
	(void)stack_req_reply(req, 200, "OK",
			      call_contact_hdr(call, h, sizeof(h), NULL),
			      call->lctype, (const uint8_t *)call->lbody,
			      call->lbody_len);

	return true;
}
