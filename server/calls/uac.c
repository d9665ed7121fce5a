/**
 * server/calls/uac.c  Outgoing calls: placing an INVITE
 *
 * Owns the UAC side of a call: the INVITE client transaction
 * (call_connect) and its responses (1xx, with the PRACK of a reliable
 * one; the 2xx and its ACK, again for a retransmission; a final
 * failure), the INVITE again with credentials for a 401/407, and
 * CANCEL. Exposes call_connect(), call_connect_to(), call_cancel() and
 * call_set_credentials() in calls.h, uac_send_ack() and
 * uac_keep_response() in call_priv.h.
 * Uses libre's client transactions through the core's dialogs, the
 * core's digest client (auth_client_answer), prack.c for PRACKs and
 * fork.c for the answers of other forks.
 */
#include <string.h>
#include <strings.h>
#include <re.h>
#include "calls.h"
#include "call_priv.h"


static int uac_authenticate(struct call *call, const struct sip_msg *msg);

/* ------------------------------------------------------------------ *
 * UAC: placing a call
 * ------------------------------------------------------------------ */

void uac_send_ack(struct call *call, struct dialog *dlg)
{
	struct sip_request *ack = NULL;

	(void)dialog_request(&ack, dlg, "ACK", call->invite_cseq, NULL, NULL,
			     NULL, 0, NULL, NULL);
}


static void uac_response(struct call *call, const struct sip_msg *msg)
{
	struct call_event ev;
	const struct sip_hdr *ct;
	struct pl body;

	if (msg->scode < 200) {
		const struct sip_hdr *rs = sip_msg_hdr(msg, SIP_HDR_RSEQ);

		if (msg->scode == 100)
			return;

		/* RFC 3262 §4: PRACK a reliable 1xx, once per RSeq; its
		 * retransmissions are not processed again */
		if (rs && sip_msg_hdr_has_value(msg, SIP_HDR_REQUIRE, "100rel")
		    && pl_isset(&msg->to.tag)) {
			uint32_t n = pl_u32(&rs->val);
			int err = dialog_set_remote(call->dlg, msg);

			if (err == EEXIST) {    /* another fork's */
				if (!early_prack(call, msg, n))
					return;
			}
			else {
				if (call->peer_rseq && n <= call->peer_rseq)
					return;
				call->peer_rseq = n;
				if (!err)
					uac_prack(call, n);
			}
		}

		if (pl_isset(&msg->to.tag) &&
		    !dialog_set_remote(call->dlg, msg))
			dlg_ev(call, DIALOG_EV_RECEIVE_1XX_TAG, BY_US);
		else
			dlg_ev(call, DIALOG_EV_RECEIVE_1XX, BY_US);
		/* (the transaction passes 1xx only before its final
		 * response, and until then every state takes them) */
		call_set_remote_body(call, msg);
		call_ev(call, CALL_FSM_RINGING, BY_US);
		memset(&ev, 0, sizeof(ev));
		ev.type = CALL_EV_RINGING;
		ev.code = msg->scode;
		call_fire(call, &ev);
		return;
	}

	if (msg->scode < 300) {
		int err = dialog_set_remote(call->dlg, msg);

		/* another fork's 2xx: while ours is only early, the call
		 * goes on in the 2xx's dialog (and, if cancelled, is ended
		 * with a BYE below); after, it is a new call */
		if (err == EEXIST && !call->answered &&
		    !uac_adopt_fork(call, msg))
			err = dialog_set_remote(call->dlg, msg);
		if (err == EEXIST) {
			uac_fork(call, msg, !call->cancelled);
			return;
		}

		if (call->answered) {      /* a retransmission */
			uac_send_ack(call, call->dlg);
			return;
		}

		tmr_cancel(&call->tmr_setup);
		dlg_ev(call, DIALOG_EV_RECEIVE_2XX, BY_US);
		call_ev(call, CALL_FSM_ANSWER, BY_US);
		uac_send_ack(call, call->dlg);
		dlg_ev(call, DIALOG_EV_SEND_ACK, BY_US);
		call_ev(call, CALL_FSM_ACK, BY_US);
		call_set_remote_body(call, msg);

		if (call->cancelled) {     /* CANCEL crossed the 200 */
			(void)call_send_bye(call, "cancelled");
			return;
		}

		call->answered = true;
		stack_msg_body(msg, &body);
		ct = sip_msg_hdr(msg, SIP_HDR_CONTENT_TYPE);
		memset(&ev, 0, sizeof(ev));
		ev.type = CALL_EV_ANSWERED;
		ev.code = msg->scode;
		ev.body = (const uint8_t *)body.p;
		ev.len = body.l;
		{
			char ctype[128] = "";

			if (ct)
				(void)pl_strcpy(&ct->val, ctype,
						sizeof(ctype));

			/* no body: the answer came in a reliable 1xx
			 * (RFC 3262 §5), the owner gets that one */
			if (!body.l && call->rbody) {
				ev.body = (const uint8_t *)call->rbody;
				ev.len = call->rbody_len;
				if (call->rctype)
					str_ncpy(ctype, call->rctype,
						 sizeof(ctype));
			}
			ev.ctype = ctype;
			call_fire(call, &ev);
		}
		return;
	}

	/* 401/407: answered once per challenge (again only if stale) */
	if ((msg->scode == 401 || msg->scode == 407) && call->user &&
	    !call->cancelled && !uac_authenticate(call, msg))
		return;

	/* 3xx-6xx: libre has ACKed it */
	{
		char reason[128];

		(void)pl_strcpy(&msg->reason, reason, sizeof(reason));
		dlg_ev(call, DIALOG_EV_RECEIVE_3XX6XX, BY_US);
		call_ev(call, CALL_FSM_REJECT, BY_US);
		memset(&ev, 0, sizeof(ev));
		ev.type = CALL_EV_REJECTED;
		ev.code = msg->scode;
		ev.reason = reason;
		call_fire(call, &ev);
		call_end(call, call->cancelled ? "cancelled" : "rejected");
	}
}


static void invite_resp_handler(int err, const struct sip_msg *msg,
				void *arg);


/* The INVITE again, with credentials for the challenge in msg */
static int uac_authenticate(struct call *call, const struct sip_msg *msg)
{
	char *ah = NULL, *hdrs = NULL;
	bool stale = false;
	int err;

	err = auth_client_answer(&ah, msg, "INVITE",
				 dialog_remote_target(call->dlg), call->user,
				 call->password, &stale);
	if (err)
		goto out;

	if (call->auth_tries++ && !stale) {
		err = EAUTH;       /* our credentials were refused */
		goto out;
	}
	if (call->auth_tries > 3) {
		err = ELOOP;
		goto out;
	}

	err = re_sdprintf(&hdrs, "%s%s", call->inv_hdrs ? call->inv_hdrs : "",
			  ah);
	if (err)
		goto out;

	err = dialog_request(&call->req, call->dlg, "INVITE", 0, hdrs,
			     call->lctype, (const uint8_t *)call->lbody,
			     call->lbody_len, invite_resp_handler, call);
	if (!err) {
		call->invite_cseq = dialog_lseq(call->dlg);
		slog(LOG_INFO, "call", "auth", NULL, "%H code=%u "
		     "user=%H", call_logid, call, msg->scode, log_q,
		     call->user);
	}

 out:
	mem_deref(ah);
	mem_deref(hdrs);
	if (err)
		slog(LOG_WARN, "call", "auth_failed", NULL, "%H "
		     "code=%u err=%m", call_logid, call, msg->scode, err);

	return err;
}


/* The latest response to our INVITE, for call_response() and
 * call_source() (one message per call, the object's life long) */
void uac_keep_response(struct call *call, const struct sip_msg *msg)
{
	mem_deref(call->resp);
	call->resp = mem_ref((void *)msg);
	call->src = msg->src;
	call->tp = msg->tp;
}


static void invite_resp_handler(int err, const struct sip_msg *msg,
				void *arg)
{
	struct call *call = arg;

	mem_ref(call);

	if (err || !msg) {
		call->req = NULL;
		dlg_ev(call, err == ETIMEDOUT ? DIALOG_EV_TIMEOUT :
		       DIALOG_EV_TRANSPORT_ERROR, BY_US);
		call_ev(call, err == ETIMEDOUT ? CALL_FSM_TIMEOUT :
			CALL_FSM_ERROR, BY_US);
		call_end(call, err == ETIMEDOUT ? "timeout" : "error");
	}
	else {
		if (msg->scode >= 200)
			call->req = NULL;  /* libre frees the transaction */
		if (!call->ended) {
			/* once answered, a 2xx here is a retransmission or
			 * another fork's (a call of its own) */
			if (!call->answered)
				uac_keep_response(call, msg);
			uac_response(call, msg);
		}
	}

	mem_deref(call);
}


int call_connect(struct call **callp, struct stack *st, const char *to,
		 const char *from, const char *hdrs, const char *ctype,
		 const uint8_t *body, size_t len, call_event_h *eh,
		 void *arg)
{
	return call_connect_to(callp, st, to, NULL, from, hdrs, ctype, body,
			       len, eh, arg);
}


int call_connect_to(struct call **callp, struct stack *st, const char *ruri,
		    const char *to, const char *from, const char *hdrs,
		    const char *ctype, const uint8_t *body, size_t len,
		    call_event_h *eh, void *arg)
{
	char callid[64], ltag[32], contact[256], local[320], remote[320];
	struct callmgr *cm;
	struct call *call;
	struct uri uri;
	struct pl pl;
	int err;

	if (!callp || !ruri || !stack_sip(st) || callmgr_start(st))
		return EINVAL;

	cm = callmgr_of(st);

	if (!to)
		to = ruri;

	pl_set_str(&pl, ruri);
	if (uri_decode(&uri, &pl))
		return EINVAL;
	pl_set_str(&pl, to);
	if (uri_decode(&uri, &pl))
		return EINVAL;

	err = stack_local_uri(st, SIP_TRANSP_NONE, contact, sizeof(contact));
	if (err)
		return err;

	call = call_new(cm, true);
	if (!call)
		return ENOMEM;

	(void)re_snprintf(callid, sizeof(callid), "%016llx%016llx",
			  rand_u64(), rand_u64());
	(void)re_snprintf(ltag, sizeof(ltag), "%016llx", rand_u64());
	(void)re_snprintf(local, sizeof(local), "<%s>",
			  from ? from : contact);
	(void)re_snprintf(remote, sizeof(remote), "<%s>", to);

	err  = str_dup(&call->id, callid);
	err |= str_dup(&call->from, from ? from : contact);
	err |= str_dup(&call->to, to);
	err |= str_dup(&call->ruri, ruri);
	err |= call_set_body(&call->lbody, &call->lbody_len, &call->lctype,
			     ctype, body, len);
	err |= re_sdprintf(&call->inv_hdrs, "Supported: %s\r\n%s",
			   STACK_SUPPORTED, hdrs ? hdrs : "");
	if (!err)
		err = dialog_create_uac(&call->dlg, stack_dialogs(st), st,
					callid, ltag, local, remote, ruri,
					contact);
	if (!err)
		err = call_attach_dialog_fsm(cm, call->dlg, true);
	if (err)
		goto out;

	call->eh = eh;
	call->arg = arg;
	dialog_set_handlers(call->dlg, call_request_handler,
			    call_response_handler, call);

	err = dialog_request(&call->req, call->dlg, "INVITE", 0,
			     call->inv_hdrs, ctype, body, len,
			     invite_resp_handler, call);
	if (err)
		goto out;

	call->invite_cseq = dialog_lseq(call->dlg);
	list_append(&cm->calls, &call->le, call);   /* the list's ref */
	++cm->total;
	dlg_ev(call, DIALOG_EV_SEND_INVITE, BY_US);
	/* an INVITE with Replaces (RFC 3891 §4) goes through Replacing */
	call_ev(call, hdrs && (!strncasecmp(hdrs, "Replaces:", 9) ||
			       strcasestr(hdrs, "\nReplaces:")) ?
		CALL_FSM_REPLACE : CALL_FSM_DIAL, BY_US);
	tmr_start(&call->tmr_setup, SETUP_TIMEOUT, call_setup_timeout, call);

	slog(LOG_INFO, "call", "outgoing", NULL, "callid=%H to=%H",
	     log_q, callid, log_q, ruri);

	*callp = mem_ref(call);

 out:
	if (err)
		mem_deref(call);

	return err;
}


int call_cancel(struct call *call)
{
	if (!call || !call->outgoing)
		return EINVAL;

	if (call->ended || call->answered || !call->req)
		return ENOTCONN;

	/* libre sends the CANCEL once a provisional response came
	 * (RFC 3261 §9.1) and arms 64*T1 for the INVITE */
	call->cancelled = true;
	sip_request_cancel(call->req);
	dlg_ev(call, DIALOG_EV_SEND_CANCEL, BY_US);
	call_ev(call, CALL_FSM_CANCEL, BY_US);

	return 0;
}


int call_set_credentials(struct call *call, const char *user,
			 const char *password)
{
	int err;

	if (!call || !user || !password)
		return EINVAL;

	call->user = mem_deref(call->user);
	call->password = mem_deref(call->password);
	err  = str_dup(&call->user, user);
	err |= str_dup(&call->password, password);

	return err;
}
