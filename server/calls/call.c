/**
 * server/calls/call.c  The call object: life cycle, events, dispatch
 *
 * Owns struct call (call_priv.h): one INVITE dialog with its call state
 * machine and dialog state machine. Here: its making and freeing, the
 * events its owner hears (call_fire, the high-level dialog events of
 * on_dialog_event), the firing of both state machines by their enum
 * ids (call_ev, dlg_ev; server/calls/callfsm.c; a move the tables
 * refuse is logged at error when our own code asked for it, see
 * "Driving the two state machines" in call_priv.h), the end of a call,
 * BYE and hangup, the dispatch of the dialog's requests and responses
 * to the parts (uas.c, uac.c, fork.c, prack.c, update.c, reinvite.c),
 * and the getters. Exposes call_hangup(), call_set_handler(), the
 * getters, call_debug() and dialog_event_name() in calls.h, and its
 * helpers to the other files in call_priv.h. Uses server/core/dialog.c
 * for the dialog; never calls into Lua (the runtime is a call_event_h
 * like any C user).
 *
 * Lifetime: the manager's list holds one reference on every live call
 * and drops it when the call ends; the dialog goes with it, so the
 * dialog table and the call list return to empty. An owner (a Lua
 * object) may hold more references; an ended call answers every
 * function with ENOTCONN and fires no more events.
 */
#include <string.h>
#include <re.h>
#include "calls.h"
#include "call_priv.h"


/* ------------------------------------------------------------------ *
 * Helpers
 * ------------------------------------------------------------------ */

/* callid="..." for log lines, and fork=TAG for the call of another
 * fork of our INVITE (same Call-ID) */
int call_logid(struct re_printf *pf, const struct call *call)
{
	int err = re_hprintf(pf, "callid=%H", log_q, call->id);

	if (call->fork_tag)
		err |= re_hprintf(pf, " fork=%H", log_q, call->fork_tag);

	return err;
}


void call_fire(struct call *call, const struct call_event *ev)
{
	if (call->eh && !(call->ended && ev->type != CALL_EV_TERMINATED))
		call->eh(call, ev, call->arg);
}


static const char *const dialog_event_names[] = {
	"Ringing", "Answered", "Terminated", "Referred", "Hold", "Unhold"
};


const char *dialog_event_name(enum dialog_event ev)
{
	return (unsigned)ev < ARRAY_SIZE(dialog_event_names) ?
		dialog_event_names[ev] : "?";
}


static void dialog_event_fire(struct call *call, enum dialog_event dev)
{
	struct call_event ev;

	if (call->cm->dlgh)
		call->cm->dlgh(call, dev, call->cm->dlg_arg);

	memset(&ev, 0, sizeof(ev));
	ev.type = CALL_EV_DIALOG;
	ev.dialog_event = dev;
	ev.reason = dialog_event_name(dev);
	if (call->eh)
		call->eh(call, &ev, call->arg);
}


/* The high-level dialog events (for on_dialog_event) out of the call
 * FSM's moves (never a self-loop); Terminated comes from call_end() */
static void dialog_event(struct call *call, int from, int to)
{
	switch (to) {

	case CALL_ST_RINGING:
		dialog_event_fire(call, DIALOG_EV_RINGING);
		break;

	case CALL_ST_CONNECTED:
		if (from == CALL_ST_HOLD)
			dialog_event_fire(call, DIALOG_EV_UNHOLD);
		else if (from != CALL_ST_REFERRING)
			dialog_event_fire(call, DIALOG_EV_ANSWERED);
		break;

	case CALL_ST_HOLD:
		dialog_event_fire(call, DIALOG_EV_HOLD);
		break;

	case CALL_ST_REFERRING:
		dialog_event_fire(call, DIALOG_EV_REFERRED);
		break;

	default:
		break;
	}
}


static void refused(const struct call *call, const char *mod,
		    const struct fsm *f, const char *event, enum cause cause)
{
	slog(cause == BY_US ? LOG_ERROR : LOG_DEBUG, mod, "refused", NULL,
	     "%H event=%s cause=%s err=%H", call_logid, call,
	     event ? event : "?", cause == BY_US ? "ours" : "peer",
	     log_q, fsm_error(f));
}


void call_ev(struct call *call, enum call_fsm_event event,
	     enum cause cause)
{
	const char *from = fsm_current(call->fsm);
	int from_id = fsm_state_id(call->fsm), to_id;
	const char *name = (unsigned)event < CALL_FSM_EV_COUNT ?
		call_fsm_event_names[event] : NULL;
	struct call_event ev;

	if (call->ended)
		return;

	if (fsm_transition_id(call->fsm, (int)event)) {
		refused(call, "call", call->fsm, name, cause);
		return;
	}

	to_id = fsm_state_id(call->fsm);

	slog(LOG_INFO, "call", "state", NULL, "%H from=%s to=%s "
	     "event=%s", call_logid, call, from, fsm_current(call->fsm), name);

	/* self-loops stay in the history, the owner hears of moves only */
	if (to_id == from_id)
		return;

	memset(&ev, 0, sizeof(ev));
	ev.type = CALL_EV_STATE;
	ev.from_state = from;
	ev.to_state = fsm_current(call->fsm);
	call_fire(call, &ev);

	dialog_event(call, from_id, to_id);
}


/* The dialog's FSM, while the call has its dialog. Ids 0-6 have a name
 * per role (DIALOG_EV_SEND_INVITE == DIALOG_EV_RECEIVE_INVITE): callers
 * use the name of the dialog's role. */
void dlg_ev(struct call *call, enum dialog_fsm_event event,
	    enum cause cause)
{
	struct fsm *f = dialog_fsm(call->dlg);

	if (f && fsm_transition_id(f, (int)event))
		refused(call, "dialog", f,
			fsm_def_event_name(fsm_def(f), (int)event), cause);
}


int call_set_body(char **bodyp, size_t *lenp, char **ctypep,
		  const char *ctype, const uint8_t *body, size_t len)
{
	char *b = NULL, *c = NULL;

	if (len) {
		b = mem_alloc(len + 1, NULL);
		if (!b)
			return ENOMEM;
		memcpy(b, body, len);
		b[len] = '\0';
		if (ctype && str_dup(&c, ctype)) {
			mem_deref(b);
			return ENOMEM;
		}
	}

	mem_deref(*bodyp);
	mem_deref(*ctypep);
	*bodyp = b;
	*ctypep = c;
	*lenp = len;

	return 0;
}


void call_set_remote_body(struct call *call, const struct sip_msg *msg)
{
	const struct sip_hdr *ct = sip_msg_hdr(msg, SIP_HDR_CONTENT_TYPE);
	struct pl body;
	char *ctype = NULL;

	stack_msg_body(msg, &body);
	if (!body.l)
		return;

	if (ct)
		(void)pl_strdup(&ctype, &ct->val);
	(void)call_set_body(&call->rbody, &call->rbody_len, &call->rctype,
			    ctype, (const uint8_t *)body.p, body.l);
	mem_deref(ctype);
}


char *call_contact_hdr(struct call *call, char *buf, size_t sz,
		       const char *extra)
{
	const char *allow = stack_allow_hdr(call->cm->st);
	struct pl a;

	/* what we take (the handlers' methods and those only a dialog
	 * takes) and what we support go with every answer that sets up
	 * or refreshes the dialog (RFC 3261 §13.3.1.4) */
	pl_set_str(&a, allow);
	if (a.l >= 2)
		a.l -= 2;      /* its CRLF */
	(void)re_snprintf(buf, sz, "Contact: <%s>\r\n"
			  "%r%sPRACK, UPDATE, INFO\r\n"
			  "Supported: %s\r\n%s",
			  call->dlg ? dialog_contact(call->dlg) : "",
			  &a, a.l ? ", " : "Allow: ", STACK_SUPPORTED,
			  extra ? extra : "");

	return buf;
}


/* ------------------------------------------------------------------ *
 * Making a call, and its end
 * ------------------------------------------------------------------ */

static void call_destructor(void *arg)
{
	struct call *call = arg;

	tmr_cancel(&call->tmr_rtx);
	tmr_cancel(&call->tmr_ack);
	tmr_cancel(&call->tmr_setup);
	tmr_cancel(&call->tmr_glare);
	tmr_cancel(&call->tmr_rel);
	list_unlink(&call->le);
	list_flush(&call->early);
	mem_deref(call->rel1xx);
	mem_deref(call->ans_hdrs);
	mem_deref(call->prack);
	mem_deref(call->req);
	mem_deref(call->inv_hdrs);
	mem_deref(call->user);
	mem_deref(call->password);
	mem_deref(call->reinv);
	mem_deref(call->reinv_body);
	mem_deref(call->reinv_ctype);
	mem_deref(call->reinv_hdrs);
	mem_deref(call->rtx_req);
	mem_deref(call->byereq);
	mem_deref(call->invite);
	mem_deref(call->resp2xx);
	mem_deref(call->dlg);
	mem_deref(call->fsm);
	mem_deref(call->id);
	mem_deref(call->from);
	mem_deref(call->to);
	mem_deref(call->ruri);
	mem_deref(call->resp);
	mem_deref(call->reason);
	mem_deref(call->fork_tag);
	mem_deref(call->replaces);
	mem_deref(call->lbody);
	mem_deref(call->lctype);
	mem_deref(call->rbody);
	mem_deref(call->rctype);
}


struct call *call_new(struct callmgr *cm, bool outgoing)
{
	struct call *call;

	call = mem_zalloc(sizeof(*call), call_destructor);
	if (!call)
		return NULL;

	call->cm = cm;
	call->outgoing = outgoing;
	call->created = tmr_jiffies();
	tmr_init(&call->tmr_rtx);
	tmr_init(&call->tmr_ack);
	tmr_init(&call->tmr_setup);
	tmr_init(&call->tmr_glare);
	tmr_init(&call->tmr_rel);

	if (fsm_alloc(&call->fsm, cm->call_def[outgoing], call))
		return mem_deref(call);

	return call;
}


int call_attach_dialog_fsm(struct callmgr *cm, struct dialog *dlg,
			   bool uac)
{
	struct fsm *f = NULL;
	int err;

	err = fsm_alloc(&f, cm->dlg_def[uac], dlg);
	if (!err)
		dialog_set_fsm(dlg, f);

	return err;
}


void call_setup_timeout(void *arg)
{
	struct call *call = arg;

	if (call->outgoing) {
		(void)call_cancel(call);
		return;
	}

	(void)call_reject(call, 480, "Temporarily Unavailable", NULL);
}


/* Final: the FSM says Ended, the owner hears it once, the dialog leaves
 * the table, and the manager drops its reference. */
void call_end(struct call *call, const char *reason)
{
	struct call_event ev;

	if (call->ended)
		return;

	mem_ref(call);

	if (!call->reason)
		(void)str_dup(&call->reason, reason);

	call->ended = true;

	tmr_cancel(&call->tmr_rtx);
	tmr_cancel(&call->tmr_ack);
	tmr_cancel(&call->tmr_setup);
	tmr_cancel(&call->tmr_glare);
	tmr_cancel(&call->tmr_rel);
	call->resp2xx = mem_deref(call->resp2xx);
	call->rel1xx = mem_deref(call->rel1xx);
	if (call->reinvh) {
		call_reinvite_h *h = call->reinvh;

		call->reinvh = NULL;
		h(ENOTCONN, 0, call->reinv_arg);
	}
	/* a dialog that ended with the call's last message is Terminated
	 * already; any other is dropped here */
	if (dialog_fsm(call->dlg) &&
	    fsm_state_id(dialog_fsm(call->dlg)) != DIALOG_ST_TERMINATED)
		dlg_ev(call, DIALOG_EV_TERMINATE, BY_US);

	/* the dialog leaves the table: in-dialog requests now get 481 */
	dialog_set_handlers(call->dlg, NULL, NULL, NULL);
	call->dlg = mem_deref(call->dlg);
	list_flush(&call->early);

	slog(LOG_INFO, "call", "ended", NULL, "%H reason=%H",
	     call_logid, call, log_q, call->reason);

	dialog_event_fire(call, DIALOG_EV_TERMINATED);
	memset(&ev, 0, sizeof(ev));
	ev.type = CALL_EV_TERMINATED;
	ev.reason = call->reason;
	call_fire(call, &ev);
	call->eh = NULL;

	if (call->le.list) {
		list_unlink(&call->le);
		mem_deref(call);     /* the manager's reference */
	}

	mem_deref(call);
}


static void bye_resp_handler(int err, const struct sip_msg *msg, void *arg)
{
	struct call *call = arg;

	if (!err && msg && msg->scode < 200)
		return;

	call->byereq = NULL;
	dlg_ev(call, DIALOG_EV_RECEIVE_BYE_RESPONSE, BY_US);
	call_ev(call, CALL_FSM_BYE_RESPONSE, BY_US);
	call_end(call, call->reason ? call->reason : "hangup");
}


int call_send_bye(struct call *call, const char *reason)
{
	int err;

	if (!call->dlg)
		return ENOTCONN;

	/* a BYE of ours in flight (the ACK wait timed out, a hangup, then
	 * another or the shutdown's): the call is ending already */
	if (call->byereq)
		return 0;

	if (!call->reason)
		(void)str_dup(&call->reason, reason);

	dlg_ev(call, DIALOG_EV_SEND_BYE, BY_US);
	call_ev(call, CALL_FSM_BYE, BY_US);

	err = dialog_request(&call->byereq, call->dlg, "BYE", 0, NULL, NULL,
			     NULL, 0, bye_resp_handler, call);
	if (err) {
		dlg_ev(call, DIALOG_EV_TRANSPORT_ERROR, BY_US);
		call_ev(call, CALL_FSM_ERROR, BY_US);
		call_end(call, reason);
	}

	return err;
}


int call_hangup(struct call *call, const char *reason)
{
	if (!call)
		return EINVAL;

	if (call->ended)
		return ENOTCONN;

	if (call->outgoing && !call->answered)
		return call_cancel(call);

	if (!call->outgoing && !stack_req_answered(call->invite))
		return call_reject(call, 603, "Decline", NULL);

	return call_send_bye(call, reason ? reason : "hangup");
}


/* ------------------------------------------------------------------ *
 * The dialog's requests and responses, to the parts
 * ------------------------------------------------------------------ */

static void replaced_end(struct call *call);


/* Requests inside the dialog, for both sides */
void call_request_handler(struct dialog *dlg, struct stack_req *req,
			  void *arg)
{
	struct call *call = arg;
	const struct sip_msg *msg = stack_req_msg(req);
	(void)dlg;

	mem_ref(call);

	if (!pl_strcmp(&msg->met, "ACK")) {
		if (call->resp2xx && msg->cseq.num == call->rtx_cseq) {
			tmr_cancel(&call->tmr_rtx);
			tmr_cancel(&call->tmr_ack);
			call->resp2xx = mem_deref(call->resp2xx);
			call->rtx_req = mem_deref(call->rtx_req);
			call_set_remote_body(call, msg); /* answer in the ACK */
			if (!call->outgoing && !call->acked) {
				/* may come after our BYE (the ACK wait timed
				 * out, or a hangup before it): no Ack in
				 * Ending */
				call->acked = true;
				dlg_ev(call, DIALOG_EV_RECEIVE_ACK, BY_PEER);
				call_ev(call, CALL_FSM_ACK, BY_PEER);
				if (call->replaces)
					replaced_end(call);
				/* the INVITE is done with: a held call keeps
				 * only its dialog (memory per call) */
				call->invite = mem_deref(call->invite);
			}
		}
	}
	else if (!pl_strcmp(&msg->met, "BYE") && !call->outgoing &&
		 !stack_req_answered(call->invite)) {
		/* the caller's BYE on the early dialog (RFC 3261 §15): the
		 * INVITE gets 487 (§15.1.2) and the call ends as if
		 * cancelled (the call FSM has no RemoteBye before the 2xx) */
		(void)stack_req_reply(req, 200, "OK", NULL, NULL, NULL, 0);
		(void)stack_req_reply(call->invite, 487, "Request Terminated",
				      NULL, NULL, NULL, 0);
		/* the dialog refuses a BYE sent before any tagged 1xx
		 * (Proceeding: no dialog yet); Cancel before our final
		 * answer is always allowed */
		dlg_ev(call, DIALOG_EV_RECEIVE_BYE, BY_PEER);
		call_ev(call, CALL_FSM_CANCEL, BY_US);
		call_end(call, "cancelled");
	}
	else if (!pl_strcmp(&msg->met, "BYE") && call->outgoing &&
		 !call->answered) {
		/* the callee MUST NOT send a BYE on an early dialog (RFC
		 * 3261 §15): refused, the dialog stays early and the
		 * INVITE waits for its final response */
		slog(LOG_WARN, "call", "early_bye_refused", NULL, "%H",
		     call_logid, call);
		(void)stack_req_reply(req, 403, "BYE On Early Dialog", NULL,
				      NULL, NULL, 0);
	}
	else if (!pl_strcmp(&msg->met, "BYE")) {
		/* answered: every state up to the end takes a BYE */
		(void)stack_req_reply(req, 200, "OK", NULL, NULL, NULL, 0);
		dlg_ev(call, DIALOG_EV_RECEIVE_BYE, BY_US);
		call_ev(call, CALL_FSM_REMOTE_BYE, BY_US);
		call_end(call, "remote hangup");
	}
	else if (!pl_strcmp(&msg->met, "INVITE")) {
		peer_reinvite(call, req);
	}
	else if (!pl_strcmp(&msg->met, "PRACK")) {
		peer_prack(call, req);
	}
	else if (!pl_strcmp(&msg->met, "UPDATE") && update_offer(call, req)) {
		/* answered as offer/answer */
	}
	else if (!pl_strcmp(&msg->met, "INFO") ||
		 !pl_strcmp(&msg->met, "UPDATE") ||
		 !pl_strcmp(&msg->met, "OPTIONS")) {
		struct call_event ev;

		memset(&ev, 0, sizeof(ev));
		ev.type = CALL_EV_INFO;
		ev.req = req;
		call_fire(call, &ev);
		if (!stack_req_answered(req))
			(void)stack_req_reply(req, 200, "OK", NULL, NULL,
					      NULL, 0);
	}
	else {
		bool taken = false;

		if (!pl_strcmp(&msg->met, "REFER")) {
			struct call_event ev;

			memset(&ev, 0, sizeof(ev));
			ev.type = CALL_EV_REFER;
			ev.req = req;
			ev.taken = &taken;
			call_fire(call, &ev);
		}

		if (!taken && !stack_req_answered(req))
			(void)stack_req_reply(req, 405, "Method Not Allowed",
					      "Allow: INVITE, ACK, BYE, "
					      "CANCEL, OPTIONS, INFO, UPDATE, "
					      "PRACK\r\n", NULL, NULL, 0);
	}

	mem_deref(call);
}


int call_set_referring(struct call *call, bool referring)
{
	const int st = call ? fsm_state_id(call->fsm) : -1;
	enum call_fsm_event ev;

	if (!call || call->ended)
		return EPERM;

	if (referring) {
		if (st != CALL_ST_CONNECTED && st != CALL_ST_HOLD)
			return EPERM;
		call->refer_held = st == CALL_ST_HOLD;
		ev = CALL_FSM_REFER;
	}
	else {
		if (st != CALL_ST_REFERRING)
			return EPERM;
		ev = call->refer_held ? CALL_FSM_REFER_DONE_HELD :
			CALL_FSM_REFER_DONE;
	}

	call_ev(call, ev, BY_US);

	return 0;
}


/* Responses no transaction took: 2xx retransmissions (ACK again) and
 * other forks' answers */
void call_response_handler(struct dialog *dlg,
			   const struct sip_msg *msg, void *arg)
{
	struct call *call = arg;

	if (!call->outgoing || msg->scode < 200 || msg->scode >= 300 ||
	    pl_strcmp(&msg->cseq.met, "INVITE"))
		return;

	if (dlg == call->dlg && !pl_strcmp(&msg->to.tag, dialog_rtag(dlg)))
		uac_send_ack(call, dlg);
	else
		uac_fork(call, msg, !call->cancelled && !call->ended);
}


/* ------------------------------------------------------------------ *
 * Getters
 * ------------------------------------------------------------------ */

void call_set_handler(struct call *call, call_event_h *eh, void *arg)
{
	if (!call)
		return;

	call->eh = eh;
	call->arg = arg;
}


bool call_handler(const struct call *call, call_event_h **hp, void **argp)
{
	if (!call || !call->eh)
		return false;

	*hp = call->eh;
	*argp = call->arg;

	return true;
}


struct call *call_replaces(const struct call *call)
{
	return call ? call->replaces : NULL;
}


/* RFC 3891 §3: the replacement is answered and ACKed: the call it
 * replaces ends (BYE, or CANCEL if it is our early call) */
static void replaced_end(struct call *call)
{
	struct call *old = call->replaces;

	call->replaces = NULL;
	if (!old->ended) {
		slog(LOG_INFO, "call", "replaced", NULL, "%H by=%H",
		     call_logid, old, log_q, call->id);
		if (old->outgoing && !old->answered)
			(void)call_cancel(old);
		else
			(void)call_hangup(old, "replaced");
	}
	mem_deref(old);
}


const char *call_state(const struct call *call)
{
	return call ? fsm_current(call->fsm) : NULL;
}

struct fsm *call_fsm(const struct call *call)
{
	return call ? call->fsm : NULL;
}

struct dialog *call_dialog(const struct call *call)
{
	return call ? call->dlg : NULL;
}

bool call_is_outgoing(const struct call *call)
{
	return call ? call->outgoing : false;
}

bool call_is_ended(const struct call *call)
{
	return call ? call->ended : true;
}

bool call_is_answered(const struct call *call)
{
	return call ? call->answered : false;
}

bool call_is_on_hold(const struct call *call)
{
	return call ? call->on_hold : false;
}

const char *call_id(const struct call *call)
{
	return call ? call->id : NULL;
}


/* Milliseconds since the call object was made (the INVITE arrived or
 * was sent) */
uint64_t call_age(const struct call *call)
{
	return call ? tmr_jiffies() - call->created : 0;
}

const char *call_end_reason(const struct call *call)
{
	return call ? call->reason : NULL;
}

const char *call_from(const struct call *call)
{
	return call ? call->from : NULL;
}

const char *call_to(const struct call *call)
{
	return call ? call->to : NULL;
}

const struct sip_msg *call_invite(const struct call *call)
{
	return call && call->invite ? stack_req_msg(call->invite) : NULL;
}

const struct sip_msg *call_response(const struct call *call)
{
	return call ? call->resp : NULL;
}

const char *call_request_uri(const struct call *call)
{
	return call ? call->ruri : NULL;
}

const struct sa *call_source(const struct call *call, enum sip_transp *tpp)
{
	if (!call || !sa_isset(&call->src, SA_ALL))
		return NULL;

	if (tpp)
		*tpp = call->tp;

	return &call->src;
}

const char *call_remote_body(const struct call *call, size_t *len,
			     const char **ctype)
{
	if (!call)
		return NULL;

	if (len)
		*len = call->rbody_len;
	if (ctype)
		*ctype = call->rctype;

	return call->rbody;
}


int call_debug(struct re_printf *pf, const struct call *call)
{
	if (!call)
		return 0;

	return re_hprintf(pf, "call %s %s state=%s ended=%d %H",
			  call->outgoing ? "out" : "in", call->id,
			  fsm_current(call->fsm), call->ended, dialog_debug,
			  call->dlg);
}
