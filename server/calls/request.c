/**
 * server/calls/request.c  Requests of the owner inside a call's dialog
 *
 * Owns struct call_req: one request the call's owner sends in the
 * call's confirmed dialog (INFO, MESSAGE, NOTIFY, OPTIONS...), until
 * its final response. Exposes call_request() in calls.h. Uses the
 * core's dialog_request(); the requests the call sends itself (BYE,
 * re-INVITE, PRACK, ACK) are call.c's, reinvite.c's, prack.c's and
 * uac.c's.
 *
 * Lifetime: a call_req is libre's client transaction's, not the
 * call's: the request goes on when the call ends (the peer may still
 * answer it), and libre calls back once, with the final response, a
 * timeout, or ECONNABORTED when the stack closes its transactions.
 */
#include <string.h>
#include <re.h>
#include "calls.h"
#include "call_priv.h"


struct call_req {
	stack_resp_h *resph;
	void *arg;
};


static void call_req_resp(int err, const struct sip_msg *msg, void *arg)
{
	struct call_req *r = arg;

	if (!err && msg && msg->scode < 200)
		return;

	/* the stack closing its transactions: cancelled, as outreq.c's */
	if (err == ECONNABORTED)
		err = ECANCELED;

	if (r->resph)
		r->resph(err, err ? NULL : msg, r->arg);

	mem_deref(r);
}


/* Methods with a sender of their own in the call (or that need more
 * than one transaction: a subscription, a transfer, a registration) */
static bool method_refused(const char *met)
{
	static const char *const refused[] = {
		"INVITE", "ACK", "BYE", "CANCEL", "PRACK", "UPDATE",
		"SUBSCRIBE", "REFER", "REGISTER",
	};
	size_t i;

	for (i = 0; i < ARRAY_SIZE(refused); i++) {
		if (!strcmp(met, refused[i]))
			return true;
	}

	return false;
}


int call_request(struct call *call, const char *met, const char *hdrs,
		 const char *ctype, const uint8_t *body, size_t len,
		 stack_resp_h *resph, void *arg)
{
	struct call_req *r;
	int err;

	if (!call || !met || !*met || method_refused(met) || (len && !ctype))
		return EINVAL;

	/* a confirmed dialog (our 2xx sent, or theirs received), not
	 * ending (RFC 3261 §15: nothing new after our BYE) */
	if (call->ended || !call->dlg || !call->answered ||
	    fsm_state_id(call->fsm) == CALL_ST_ENDING)
		return ENOTCONN;

	r = mem_zalloc(sizeof(*r), NULL);
	if (!r)
		return ENOMEM;

	r->resph = resph;
	r->arg = arg;

	/* no handle kept: the transaction holds r until it calls back */
	err = dialog_request(NULL, call->dlg, met, 0, hdrs, ctype, body, len,
			     call_req_resp, r);
	if (err) {
		mem_deref(r);
		return err;
	}

	slog(LOG_INFO, "call", "request", NULL, "%H method=%s", call_logid,
	     call, met);

	return 0;
}
