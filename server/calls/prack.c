/**
 * server/calls/prack.c  PRACK (RFC 3262), both ways
 *
 * Owns no state of its own: sends the PRACK of a reliable 1xx (any
 * dialog's with prack_send, the call's own with uac_prack) and answers
 * the peer's PRACK of ours, sending then the 2xx that waited for it.
 * Exposes prack_send(), uac_prack() and peer_prack() in call_priv.h.
 * Uses the core's dialog requests and call_answer() (uas.c). Our
 * reliable 1xx and its retransmission are uas.c's; the early dialogs
 * of other forks, fork.c's.
 */
#include <re.h>
#include "calls.h"
#include "call_priv.h"


int prack_send(struct sip_request **reqp, struct dialog *dlg,
	       uint32_t rseq, uint32_t invite_cseq, sip_resp_h *resph,
	       void *arg)
{
	char rack[64];

	(void)re_snprintf(rack, sizeof(rack), "RAck: %u %u INVITE\r\n", rseq,
			  invite_cseq);
	*reqp = mem_deref(*reqp);

	return dialog_request(reqp, dlg, "PRACK", 0, rack, NULL, NULL, 0,
			      resph, arg);
}


static void prack_resp_handler(int err, const struct sip_msg *msg, void *arg)
{
	struct call *call = arg;

	if (!err && msg && msg->scode < 200)
		return;

	call->prack = NULL;
	if (err || msg->scode >= 300)
		slog(LOG_WARN, "call", "prack_failed", NULL, "%H "
		     "code=%u err=%m", call_logid, call, msg ? msg->scode : 0,
		     err);
}


void uac_prack(struct call *call, uint32_t rseq)
{
	if (prack_send(&call->prack, call->dlg, rseq, call->invite_cseq,
		       prack_resp_handler, call))
		slog(LOG_WARN, "call", "prack_failed", NULL, "%H",
		     call_logid, call);
}


/* PRACK (RFC 3262 §3): RAck matches our outstanding reliable 1xx */
void peer_prack(struct call *call, struct stack_req *req)
{
	const struct sip_msg *msg = stack_req_msg(req);
	const struct sip_hdr *rack = sip_msg_hdr(msg, SIP_HDR_RACK);
	struct pl rseq, cseq, met;

	if (call->outgoing || !rack ||
	    re_regex(rack->val.p, rack->val.l, "[0-9]+[ \t]+[0-9]+[ \t]+[^ \t]+",
		     &rseq, NULL, &cseq, NULL, &met) ||
	    !call->rel1xx || pl_u32(&rseq) != call->rseq ||
	    pl_u32(&cseq) != stack_req_msg(call->invite)->cseq.num ||
	    pl_strcmp(&met, "INVITE")) {
		(void)stack_req_reply(req, 481, "Call/Transaction Does Not "
				      "Exist", NULL, NULL, NULL, 0);
		return;
	}

	tmr_cancel(&call->tmr_rel);
	call->rel1xx = mem_deref(call->rel1xx);
	call_set_remote_body(call, msg);      /* an answer to our 1xx offer */
	(void)stack_req_reply(req, 200, "OK", NULL, NULL, NULL, 0);

	if (call->answer_deferred) {
		char *hdrs = call->ans_hdrs;

		call->answer_deferred = false;
		call->ans_hdrs = NULL;
		(void)call_answer(call, hdrs, call->lctype,
				  (const uint8_t *)call->lbody,
				  call->ans_body ? call->lbody_len : 0);
		mem_deref(hdrs);
	}
}
