/**
 * server/calls/fork.c  Forks of our INVITE and their early dialogs
 *
 * Owns struct early_fork: the early dialog of another fork that sent a
 * reliable 1xx, PRACKed in that dialog (RFC 3262 §4) until the call
 * ends or that fork's 2xx takes it. Makes the call of another fork's
 * 2xx (RFC 3261 §13.2.2.4: a call of its own, Connected and ACKed,
 * offered to the owner with CALL_EV_FORK), or moves the call to the
 * 2xx's dialog while its own is only early. Exposes early_prack(),
 * uac_fork() and uac_adopt_fork() in call_priv.h, for uac.c and
 * call.c's response handler. Uses the core's dialog_fork(), call.c,
 * uac.c's ACK and kept response, and prack.c's PRACK.
 */
#include <string.h>
#include <re.h>
#include "calls.h"
#include "call_priv.h"


/* UAC: the early dialog of another fork that sent a reliable 1xx
 * (RFC 3262 §4: each is PRACKed in its own dialog). Kept until the
 * call ends or that fork's 2xx makes it a call's dialog. */
struct early_fork {
	struct le le;                 /* in call.early                   */
	struct dialog *dlg;
	uint32_t rseq;                /* last RSeq PRACKed               */
	struct sip_request *prack;
};


static void early_destructor(void *arg)
{
	struct early_fork *ef = arg;

	list_unlink(&ef->le);
	mem_deref(ef->prack);
	dialog_set_handlers(ef->dlg, NULL, NULL, NULL);
	mem_deref(ef->dlg);
}


static struct early_fork *early_find(const struct call *call,
				     const struct pl *tag)
{
	struct le *le;

	for (le = call->early.head; le; le = le->next) {
		struct early_fork *ef = le->data;

		if (!pl_strcmp(tag, dialog_rtag(ef->dlg)))
			return ef;
	}

	return NULL;
}


static void early_prack_resp(int err, const struct sip_msg *msg, void *arg)
{
	struct early_fork *ef = arg;

	if (!err && msg && msg->scode < 200)
		return;

	ef->prack = NULL;
	if (err || msg->scode >= 300)
		slog(LOG_WARN, "call", "prack_failed", NULL, "callid=%H "
		     "fork=%H code=%u err=%m", log_q, dialog_callid(ef->dlg),
		     log_q, dialog_rtag(ef->dlg), msg ? msg->scode : 0, err);
}


/* A reliable 1xx of another fork (its To tag is not our dialog's):
 * PRACK it in an early dialog of its own. False for a retransmission
 * (already PRACKed) or a failure. */
bool early_prack(struct call *call, const struct sip_msg *msg,
		 uint32_t rseq)
{
	struct early_fork *ef = early_find(call, &msg->to.tag);

	if (ef && rseq <= ef->rseq)
		return false;

	if (!ef) {
		ef = mem_zalloc(sizeof(*ef), early_destructor);
		if (!ef)
			return false;
		if (dialog_fork(&ef->dlg, call->dlg, msg)) {
			mem_deref(ef);
			return false;
		}
		/* responses outside a transaction (its 2xx after ours)
		 * come to the call, which makes a fork of them */
		dialog_set_handlers(ef->dlg, NULL, call_response_handler,
				    call);
		list_append(&call->early, &ef->le, ef);
		slog(LOG_INFO, "call", "early_fork", &msg->callid,
		     "to_tag=%r", &msg->to.tag);
	}
	else {
		(void)dialog_set_remote(ef->dlg, msg);   /* new target */
	}

	ef->rseq = rseq;
	if (prack_send(&ef->prack, ef->dlg, rseq, call->invite_cseq,
		       early_prack_resp, ef))
		slog(LOG_WARN, "call", "prack_failed", &msg->callid,
		     "fork=%r", &msg->to.tag);

	return true;
}


/* The dialog for the 2xx of another fork: its early dialog if it sent
 * a reliable 1xx (route set and target now from the 2xx, RFC 3261
 * §12.1.2), else a new one */
static int fork_dialog(struct dialog **dlgp, struct call *call,
		       const struct sip_msg *msg)
{
	struct early_fork *ef = early_find(call, &msg->to.tag);
	int err;

	if (!ef)
		return dialog_fork(dlgp, call->dlg, msg);

	err = dialog_set_remote(ef->dlg, msg);
	if (err)
		return err;

	dialog_set_handlers(ef->dlg, NULL, NULL, NULL);
	*dlgp = ef->dlg;
	ef->dlg = NULL;
	mem_deref(ef);

	return 0;
}


/* The 2xx of another fork of our INVITE (RFC 3261 §13.2.2.4): a dialog
 * and a call of its own, ACKed and Connected. When offer is set, the
 * owner of call hears CALL_EV_FORK and keeps the fork by setting a
 * handler on it (call_set_handler) from that event; a fork nobody
 * keeps gets a BYE at once. */
void uac_fork(struct call *call, const struct sip_msg *msg,
	      bool offer)
{
	const struct sip_hdr *ct = sip_msg_hdr(msg, SIP_HDR_CONTENT_TYPE);
	struct call_event ev;
	struct call *fork;
	char ctype[128] = "";
	struct pl body;
	int err;

	fork = call_new(call->cm, true);
	if (!fork)
		return;

	err  = str_dup(&fork->id, call->id);
	err |= str_dup(&fork->from, call->from);
	err |= str_dup(&fork->to, call->to);
	err |= pl_strdup(&fork->fork_tag, &msg->to.tag);
	err |= str_dup(&fork->ruri, call->ruri);
	err |= call_set_body(&fork->lbody, &fork->lbody_len, &fork->lctype,
			     call->lctype, (const uint8_t *)call->lbody,
			     call->lbody_len);
	if (!err)
		err = fork_dialog(&fork->dlg, call, msg);
	if (!err)
		err = call_attach_dialog_fsm(call->cm, fork->dlg, true);
	if (err) {
		slog(LOG_WARN, "call", "fork_failed", &msg->callid,
		     "to_tag=%r err=%m", &msg->to.tag, err);
		mem_deref(fork);
		return;
	}

	fork->invite_cseq = call->invite_cseq;
	fork->answered = true;
	uac_keep_response(fork, msg);
	dialog_set_handlers(fork->dlg, call_request_handler,
			    call_response_handler, fork);
	/* the list's reference, and ours (call_new's) until the end */
	list_append(&call->cm->calls, &fork->le, mem_ref(fork));
	++call->cm->total;

	dlg_ev(fork, DIALOG_EV_SEND_INVITE, BY_US);
	call_ev(fork, CALL_FSM_DIAL, BY_US);
	dlg_ev(fork, DIALOG_EV_RECEIVE_2XX, BY_US);
	call_ev(fork, CALL_FSM_ANSWER, BY_US);
	uac_send_ack(fork, fork->dlg);
	dlg_ev(fork, DIALOG_EV_SEND_ACK, BY_US);
	call_ev(fork, CALL_FSM_ACK, BY_US);
	call_set_remote_body(fork, msg);

	slog(LOG_INFO, "call", "fork", &msg->callid, "to_tag=%r offered=%s",
	     &msg->to.tag, offer && call->eh ? "yes" : "no");

	if (offer) {
		stack_msg_body(msg, &body);
		if (ct)
			(void)pl_strcpy(&ct->val, ctype, sizeof(ctype));
		memset(&ev, 0, sizeof(ev));
		ev.type = CALL_EV_FORK;
		ev.code = msg->scode;
		ev.body = (const uint8_t *)body.p;
		ev.len = body.l;
		ev.ctype = ctype;
		ev.fork = fork;
		call_fire(call, &ev);
	}

	if (!fork->eh && !fork->ended) {
		slog(LOG_INFO, "call", "fork_dropped", &msg->callid,
		     "to_tag=%r", &msg->to.tag);
		(void)call_send_bye(fork, "fork dropped");
	}

	mem_deref(fork);   /* ours; the list holds it until it ends */
}


/* A 2xx from another fork while our dialog is still early (a 1xx of
 * one branch, the 2xx of another): the call goes on in the 2xx's
 * dialog; the early one is dropped (§13.2.2.4, the proxy cancels its
 * branch) */
int uac_adopt_fork(struct call *call, const struct sip_msg *msg)
{
	struct dialog *dlg = NULL;
	int err;

	err = fork_dialog(&dlg, call, msg);
	if (!err)
		err = call_attach_dialog_fsm(call->cm, dlg, true);
	if (err) {
		mem_deref(dlg);
		return err;
	}

	slog(LOG_INFO, "call", "fork_adopted", &msg->callid,
	     "early_tag=%H to_tag=%r", log_q, dialog_rtag(call->dlg),
	     &msg->to.tag);

	dlg_ev(call, DIALOG_EV_TERMINATE, BY_US);
	dialog_set_handlers(call->dlg, NULL, NULL, NULL);
	mem_deref(call->dlg);
	call->dlg = dlg;
	dialog_set_handlers(dlg, call_request_handler,
			    call_response_handler, call);
	dlg_ev(call, DIALOG_EV_SEND_INVITE, BY_US);

	return 0;
}
