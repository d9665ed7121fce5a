/**
 * server/calls/call.c  INVITE sessions: incoming and outgoing calls
 *
 * Owns struct callmgr (the calls of a stack, the handler of incoming
 * calls) and struct call: one INVITE dialog with its call state machine
 * and dialog state machine, the server or client INVITE transaction,
 * the 2xx retransmission of the UAS (RFC 3261 §13.3.1.4) and the ACK of
 * the UAC (§13.2.2.4), CANCEL, BYE, and in-dialog requests. Exposes
 * call_*() and callmgr_*() in sipstack.h. Uses server/core/dialog.c for the
 * dialog and libre's transactions; never calls into Lua (the runtime
 * is a call_event_h like any C user). It fires both state machines by
 * their enum ids (server/calls/callfsm.c); a move the tables refuse is logged
 * at error when our own code asked for it (see "Driving the two state
 * machines" below).
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


enum {
	SETUP_TIMEOUT = 180000,   /* ms an unanswered call may last      */
};

struct callmgr {
	struct stack *st;
	struct list calls;
	call_incoming_h *incomingh;
	void *arg;
	dialog_event_h *dlgh;
	void *dlg_arg;
	uint64_t total;
	struct fsm_def *call_def[2];  /* [outgoing]: built at alloc, so */
	struct fsm_def *dlg_def[2];   /* [uac]: a bad table stops start */
	struct stack_handler *invite; /* out-of-dialog INVITE           */
};

struct call {
	struct le le;                 /* in callmgr.calls (holds a ref) */
	struct callmgr *cm;
	struct dialog *dlg;
	struct fsm *fsm;              /* call state machine             */
	bool outgoing;
	bool ended;
	char *id;                     /* Call-ID, for logs              */
	char *from, *to;              /* URIs of the INVITE's From/To   */
	char *reason;                 /* why it ended                   */

	/* UAS */
	struct stack_req *invite;     /* the INVITE, until its final answer
				       * (then kept for 2xx retransmits) */
	struct mbuf *resp2xx;         /* our 2xx, until the ACK          */
	struct tmr tmr_rtx;           /* 2xx retransmission              */
	uint32_t rtx_ms;
	struct tmr tmr_ack;           /* 64*T1 without ACK               */
	bool acked;

	/* RFC 3262: reliable provisional responses */
	bool rel100;                  /* the INVITE supports or requires it */
	uint32_t rseq;                /* our last RSeq                   */
	struct mbuf *rel1xx;          /* sent, waiting for its PRACK     */
	struct tmr tmr_rel;
	uint32_t rel_ms, rel_total;
	bool rel_offer;               /* that 1xx carried an offer       */
	bool answer_deferred;         /* 2xx waits for that PRACK        */
	bool ans_body;                /* ... with a body (lbody)         */
	char *ans_hdrs;

	/* UAC */
	struct sip_request *req;      /* INVITE client transaction       */
	uint32_t invite_cseq;
	char *inv_hdrs;               /* the INVITE's extra headers      */
	uint32_t peer_rseq;           /* last reliable 1xx PRACKed       */
	struct sip_request *prack;
	char *user, *password;        /* for 401/407                     */
	unsigned auth_tries;
	bool cancelled;
	bool answered;
	char *fork_tag;               /* To tag of another fork's 2xx     */
	struct list early;            /* struct early_fork: other forks'
				       * early dialogs with reliable 1xx */

	/* 2xx to an INVITE or re-INVITE of the peer, until its ACK */
	struct stack_req *rtx_req;
	uint32_t rtx_cseq;

	/* our re-INVITE (hold, unhold, update) */
	struct sip_request *reinv;
	uint32_t reinv_cseq;
	char *reinv_body, *reinv_ctype, *reinv_hdrs;
	size_t reinv_len;
	enum call_reinvite_kind reinv_kind;
	call_reinvite_h *reinvh;
	void *reinv_arg;
	struct tmr tmr_glare;
	unsigned glare_count;
	bool local_hold;              /* we hold the peer                */

	/* both */
	struct sip_request *byereq;   /* BYE in flight                   */
	struct tmr tmr_setup;         /* ringing too long                */
	char *lbody, *lctype;         /* our last session description    */
	char *rbody, *rctype;         /* theirs                          */
	size_t lbody_len, rbody_len;
	bool on_hold;                 /* the peer holds us               */
	call_event_h *eh;
	void *arg;
};


/* UAC: the early dialog of another fork that sent a reliable 1xx
 * (RFC 3262 §4: each is PRACKed in its own dialog). Kept until the
 * call ends or that fork's 2xx makes it a call's dialog. */
struct early_fork {
	struct le le;                 /* in call.early                   */
	struct dialog *dlg;
	uint32_t rseq;                /* last RSeq PRACKed               */
	struct sip_request *prack;
};


static void call_end(struct call *call, const char *reason);
static int send_bye(struct call *call, const char *reason);
static int uac_authenticate(struct call *call, const struct sip_msg *msg);
static void uac_prack(struct call *call, uint32_t rseq);
static void dialog_response_handler(struct dialog *dlg,
				    const struct sip_msg *msg, void *arg);
static void peer_prack(struct call *call, struct stack_req *req);
static bool update_offer(struct call *call, struct stack_req *req);

/* ------------------------------------------------------------------ *
 * Helpers
 * ------------------------------------------------------------------ */

/* callid="..." for log lines, and fork=TAG for the call of another
 * fork of our INVITE (same Call-ID) */
static int logid(struct re_printf *pf, const struct call *call)
{
	int err = re_hprintf(pf, "callid=%H", log_q, call->id);

	if (call->fork_tag)
		err |= re_hprintf(pf, " fork=%H", log_q, call->fork_tag);

	return err;
}


static void fire(struct call *call, const struct call_event *ev)
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


/*
 * Driving the two state machines
 *
 * Events are fired by id (enum call_fsm_event, enum dialog_fsm_event:
 * the defs' own ids, see server/calls/callfsm.c), and each firing says who
 * caused it, which is what a refusal (a move the table forbids, EPERM;
 * the machine stays where it was) means:
 *
 * BY_US    our own request, answer or decision (INVITE, 1xx, 2xx, a
 *          reject, CANCEL, BYE, a timer, a transport error, the end of
 *          the call), or a message of the peer that our code or libre's
 *          transactions have already checked for this state: the
 *          responses of our INVITE transaction (provisionals only
 *          before its one final response; later 2xx go to the dialog
 *          handler), a CANCEL before our final answer, the answer to
 *          our BYE, a BYE once the call is answered. The tables allow
 *          every one of these in every state the call can be in then
 *          (docs/state-machines.md, firing rule 3), so a refusal is a
 *          bug of ours: logged at error, where the wire tests' "no
 *          lvl=error line" check catches it.
 *
 * BY_PEER  a message of the peer taken as it comes, which may be late
 *          or one it should not have sent: an ACK after our BYE, the
 *          2xx of our re-INVITE after our BYE, a hold or unhold offer
 *          (re-INVITE, UPDATE) on an early dialog or across our BYE, a
 *          BYE before the dialog exists. Not our bug: the message is
 *          handled as it always was, the machine stays where it is, and
 *          the refusal is logged at debug (a peer could fill the log).
 */
enum cause {
	BY_US = 0,
	BY_PEER,
};


static void refused(const struct call *call, const char *mod,
		    const struct fsm *f, const char *event, enum cause cause)
{
	slog(cause == BY_US ? LOG_ERROR : LOG_DEBUG, mod, "refused", NULL,
	     "%H event=%s cause=%s err=%H", logid, call,
	     event ? event : "?", cause == BY_US ? "ours" : "peer",
	     log_q, fsm_error(f));
}


static void call_ev(struct call *call, enum call_fsm_event event,
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
	     "event=%s", logid, call, from, fsm_current(call->fsm), name);

	/* self-loops stay in the history, the owner hears of moves only */
	if (to_id == from_id)
		return;

	memset(&ev, 0, sizeof(ev));
	ev.type = CALL_EV_STATE;
	ev.from_state = from;
	ev.to_state = fsm_current(call->fsm);
	fire(call, &ev);

	dialog_event(call, from_id, to_id);
}


/* The dialog's FSM, while the call has its dialog. Ids 0-6 have a name
 * per role (DIALOG_EV_SEND_INVITE == DIALOG_EV_RECEIVE_INVITE): callers
 * use the name of the dialog's role. */
static void dlg_ev(struct call *call, enum dialog_fsm_event event,
		   enum cause cause)
{
	struct fsm *f = dialog_fsm(call->dlg);

	if (f && fsm_transition_id(f, (int)event))
		refused(call, "dialog", f,
			fsm_def_event_name(fsm_def(f), (int)event), cause);
}


static int set_body(char **bodyp, size_t *lenp, char **ctypep,
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


static void remote_body(struct call *call, const struct sip_msg *msg)
{
	const struct sip_hdr *ct = sip_msg_hdr(msg, SIP_HDR_CONTENT_TYPE);
	struct pl body;
	char *ctype = NULL;

	stack_msg_body(msg, &body);
	if (!body.l)
		return;

	if (ct)
		(void)pl_strdup(&ctype, &ct->val);
	(void)set_body(&call->rbody, &call->rbody_len, &call->rctype,
		       ctype, (const uint8_t *)body.p, body.l);
	mem_deref(ctype);
}


/* RFC 3264 §8.4: a peer holds us with sendonly/inactive (or the old
 * c=0.0.0.0 of RFC 2543) on every stream it keeps */
static bool sdp_is_hold(const char *sdp, size_t len)
{
	struct pl p = {sdp, len}, line;
	bool hold = false, any = false;

	while (p.l && !re_regex(p.p, p.l, "[^\r\n]+", &line)) {
		if (!pl_strcmp(&line, "a=sendonly") ||
		    !pl_strcmp(&line, "a=inactive") ||
		    !pl_strcmp(&line, "c=IN IP4 0.0.0.0"))
			hold = true;
		else if (!pl_strcmp(&line, "a=sendrecv") ||
			 !pl_strcmp(&line, "a=recvonly"))
			any = true;
		p.l -= (line.p + line.l) - p.p;
		p.p = line.p + line.l;
	}

	return hold && !any;
}


static void check_hold(struct call *call, const struct sip_msg *msg)
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
	fire(call, &ev);
}


/* The direction an SDP offers: the first direction attribute (the
 * session's or a stream's), "sendonly" for the c=0.0.0.0 of RFC 2543,
 * else "sendrecv" (RFC 3264 §5.1) */
const char *sdp_direction(const char *sdp, size_t len)
{
	static const char *dirs[] = {"sendrecv", "sendonly", "recvonly",
				     "inactive"};
	struct pl p = {sdp, len}, line;
	size_t i;

	while (p.l && !re_regex(p.p, p.l, "[^\r\n]+", &line)) {
		for (i = 0; i < ARRAY_SIZE(dirs); i++) {
			if (line.l == 2 + strlen(dirs[i]) &&
			    !strncmp(line.p, "a=", 2) &&
			    !memcmp(line.p + 2, dirs[i], line.l - 2))
				return dirs[i];
		}
		if (!pl_strcmp(&line, "c=IN IP4 0.0.0.0"))
			return "sendonly";
		p.l -= (line.p + line.l) - p.p;
		p.p = line.p + line.l;
	}

	return "sendrecv";
}


/* RFC 3264 §6.1: what an answerer answers to an offered direction */
const char *sdp_answer_dir(const char *offer)
{
	if (!strcmp(offer, "sendonly"))
		return "recvonly";
	if (!strcmp(offer, "recvonly"))
		return "sendonly";
	if (!strcmp(offer, "inactive"))
		return "inactive";

	return "sendrecv";
}


static bool is_dir_line(const struct pl *line)
{
	return !pl_strcmp(line, "a=sendrecv") || !pl_strcmp(line, "a=sendonly")
		|| !pl_strcmp(line, "a=recvonly") ||
		!pl_strcmp(line, "a=inactive");
}


/*
 * The SDP with one direction attribute, dir, at the end of every media
 * section (the session-level one dropped) and the o= version raised by
 * one (RFC 3264 §8: a changed description). Other lines are kept
 * byte-exact, with the input's line ending.
 */
int sdp_set_direction(char **outp, size_t *outlen, const char *sdp,
		      size_t len, const char *dir)
{
	struct mbuf *mb;
	struct pl p = {sdp, len}, line;
	const char *eol = memchr(sdp, '\r', len) ? "\r\n" : "\n";
	bool in_media = false;
	int err = 0;

	if (!outp || !outlen || !sdp || !dir)
		return EINVAL;

	mb = mbuf_alloc(len + 64);
	if (!mb)
		return ENOMEM;

	while (p.l && !re_regex(p.p, p.l, "[^\r\n]+", &line)) {
		struct pl user, id, ver, rest;

		if (line.l >= 2 && !memcmp(line.p, "m=", 2)) {
			if (in_media)
				err |= mbuf_printf(mb, "a=%s%s", dir, eol);
			in_media = true;
		}

		if (is_dir_line(&line)) {
			/* dropped: one attribute is written per section */
		}
		else if (line.l >= 2 && !memcmp(line.p, "o=", 2) &&
			 !re_regex(line.p, line.l, "o=[^ ]+ [^ ]+ [0-9]+[^]*",
				   &user, &id, &ver, &rest)) {
			err |= mbuf_printf(mb, "o=%r %r %llu%r%s", &user,
					   &id, pl_u64(&ver) + 1, &rest, eol);
		}
		else {
			err |= mbuf_printf(mb, "%r%s", &line, eol);
		}

		p.l -= (line.p + line.l) - p.p;
		p.p = line.p + line.l;
	}
	if (in_media)
		err |= mbuf_printf(mb, "a=%s%s", dir, eol);

	if (!err) {
		mb->pos = 0;
		err = mbuf_strdup(mb, outp, mb->end);
		*outlen = mb->end;
	}
	mem_deref(mb);

	return err;
}


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
		(void)send_bye(call, "timeout");
	}
	else if (msg->scode < 300) {
		/* our own move, unless our BYE has crossed this 2xx
		 * (the call is Ending): then the answer is late */
		enum cause cause = call->byereq ? BY_PEER : BY_US;
		struct sip_request *ack = NULL;

		(void)dialog_request(&ack, dlg, "ACK", call->reinv_cseq, NULL,
				     NULL, NULL, 0, NULL, NULL);
		(void)dialog_target_refresh(dlg, msg);
		remote_body(call, msg);
		(void)set_body(&call->lbody, &call->lbody_len, &call->lctype,
			       call->reinv_ctype,
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
		     logid, call, ms);
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

	err  = set_body(&call->reinv_body, &call->reinv_len,
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
 * The end of a call
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
	mem_deref(call->reason);
	mem_deref(call->fork_tag);
	mem_deref(call->lbody);
	mem_deref(call->lctype);
	mem_deref(call->rbody);
	mem_deref(call->rctype);
}


/* Final: the FSM says Ended, the owner hears it once, the dialog leaves
 * the table, and the manager drops its reference. */
static void call_end(struct call *call, const char *reason)
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
	     logid, call, log_q, call->reason);

	dialog_event_fire(call, DIALOG_EV_TERMINATED);
	memset(&ev, 0, sizeof(ev));
	ev.type = CALL_EV_TERMINATED;
	ev.reason = call->reason;
	fire(call, &ev);
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


static int send_bye(struct call *call, const char *reason)
{
	int err;

	if (!call->dlg)
		return ENOTCONN;

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


/* ------------------------------------------------------------------ *
 * UAS: answering an INVITE
 * ------------------------------------------------------------------ */

static void setup_timeout(void *arg)
{
	struct call *call = arg;

	if (call->outgoing) {
		(void)call_cancel(call);
		return;
	}

	(void)call_reject(call, 480, "Temporarily Unavailable", NULL);
}


static void ack_timeout(void *arg)
{
	struct call *call = arg;

	/* §13.3.1.4: no ACK within 64*T1: confirmed, but end it */
	slog(LOG_WARN, "call", "no_ack", NULL, "%H", logid, call);
	tmr_cancel(&call->tmr_rtx);
	(void)str_dup(&call->reason, "Timeout");
	(void)send_bye(call, "Timeout");
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
static void start_2xx_rtx(struct call *call, struct stack_req *req)
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


static char *contact_hdr(struct call *call, char *buf, size_t sz,
			 const char *extra)
{
	(void)re_snprintf(buf, sz, "Contact: <%s>\r\n%s",
			  call->dlg ? dialog_contact(call->dlg) : "",
			  extra ? extra : "");

	return buf;
}


static void rel1xx_timeout(void *arg)
{
	struct call *call = arg;
	const struct stack_config *cfg = stack_config(call->cm->st);

	if (!call->rel1xx)
		return;

	/* RFC 3262 §3: no PRACK in 64*T1: reject the INVITE with a 5xx */
	if (call->rel_total >= 64 * cfg->t1) {
		slog(LOG_WARN, "call", "no_prack", NULL, "%H", logid, call);
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
	const struct stack_config *cfg;
	char h[1024], extra[768];
	bool reliable;
	int err;

	if (!call || call->outgoing || code < 101 || code > 199)
		return EINVAL;

	if (call->ended || stack_req_answered(call->invite))
		return ENOTCONN;

	cfg = stack_config(call->cm->st);

	/* RFC 3262: reliably when the INVITE supports or requires it; one
	 * at a time (§3: not before the previous one is PRACKed) */
	reliable = call->rel100;
	if (reliable && call->rel1xx)
		return EBUSY;

	if (reliable)
		(void)re_snprintf(extra, sizeof(extra), "Require: 100rel\r\n"
				  "RSeq: %u\r\n%s", ++call->rseq,
				  hdrs ? hdrs : "");

	err = stack_req_reply_mb(call->invite, code, reason ? reason :
				 "Ringing", contact_hdr(call, h, sizeof(h),
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
			(void)set_body(&call->lbody, &call->lbody_len,
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
		err = set_body(&call->lbody, &call->lbody_len, &call->lctype,
			       ctype, body, len);
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
				 contact_hdr(call, h, sizeof(h), hdrs),
				 ctype, body, len, &call->resp2xx);
	if (err)
		return err;

	call->answered = true;
	tmr_cancel(&call->tmr_setup);
	dlg_ev(call, DIALOG_EV_SEND_2XX, BY_US);
	call_ev(call, CALL_FSM_ANSWER, BY_US);

	start_2xx_rtx(call, call->invite);
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


/* A re-INVITE of the peer: target refresh, offer/answer (our answer
 * mirrors the offered direction, RFC 3264 §6.1), hold and unhold; 491
 * while an INVITE transaction of ours or an unacknowledged 2xx is
 * pending (§14.2) */
static void peer_reinvite(struct call *call, struct stack_req *req)
{
	const struct sip_msg *msg = stack_req_msg(req);
	const struct sip_hdr *ct = sip_msg_hdr(msg, SIP_HDR_CONTENT_TYPE);
	char h[512];
	char *answer = NULL;
	size_t alen = 0;
	struct pl body;

	if (call->reinv || call->resp2xx || (!call->outgoing && !call->acked)) {
		(void)stack_req_reply(req, 491, "Request Pending", NULL, NULL,
				      NULL, 0);
		return;
	}

	(void)dialog_target_refresh(call->dlg, msg);
	remote_body(call, msg);
	stack_msg_body(msg, &body);

	if (body.l && ct && !pl_strcasecmp(&ct->val, "application/sdp") &&
	    call->lbody && call->lctype &&
	    !str_casecmp(call->lctype, "application/sdp")) {
		const char *dir = sdp_answer_dir(sdp_direction(body.p,
							       body.l));

		if (!sdp_set_direction(&answer, &alen, call->lbody,
				       call->lbody_len, dir))
			(void)set_body(&call->lbody, &call->lbody_len,
				       &call->lctype, "application/sdp",
				       (const uint8_t *)answer, alen);
		mem_deref(answer);
	}

	check_hold(call, msg);
	stack_req_set_dialog(req, NULL, NULL);
	call->resp2xx = mem_deref(call->resp2xx);
	if (!stack_req_reply_mb(req, 200, "OK",
				contact_hdr(call, h, sizeof(h), NULL),
				call->lctype, (const uint8_t *)call->lbody,
				call->lbody_len, &call->resp2xx))
		start_2xx_rtx(call, req);
}


/* PRACK (RFC 3262 §3): RAck matches our outstanding reliable 1xx */
static void peer_prack(struct call *call, struct stack_req *req)
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
	remote_body(call, msg);      /* an answer to our 1xx offer */
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


/* UPDATE with an offer (RFC 3311), in an early or confirmed dialog:
 * answered like a re-INVITE's offer, at once (no ACK). Returns false
 * when it carries no SDP (the script's on_info gets it). */
static bool update_offer(struct call *call, struct stack_req *req)
{
	const struct sip_msg *msg = stack_req_msg(req);
	const struct sip_hdr *ct = sip_msg_hdr(msg, SIP_HDR_CONTENT_TYPE);
	char h[512];
	char *answer = NULL;
	size_t alen = 0;
	struct pl body;

	stack_msg_body(msg, &body);
	if (!body.l || !ct || pl_strcasecmp(&ct->val, "application/sdp"))
		return false;

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
	remote_body(call, msg);

	if (!sdp_set_direction(&answer, &alen, call->lbody, call->lbody_len,
			       sdp_answer_dir(sdp_direction(body.p, body.l))))
		(void)set_body(&call->lbody, &call->lbody_len, &call->lctype,
			       "application/sdp", (const uint8_t *)answer,
			       alen);
	mem_deref(answer);

	if (call->acked || call->outgoing)
		check_hold(call, msg);

	stack_req_set_dialog(req, NULL, NULL);
	(void)stack_req_reply(req, 200, "OK", contact_hdr(call, h, sizeof(h),
							 NULL),
			      call->lctype, (const uint8_t *)call->lbody,
			      call->lbody_len);

	return true;
}


/* Requests inside the dialog, for both sides */
static void dialog_request_handler(struct dialog *dlg, struct stack_req *req,
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
			remote_body(call, msg);   /* answer in the ACK */
			if (!call->outgoing && !call->acked) {
				/* may come after our BYE (the ACK wait timed
				 * out, or a hangup before it): no Ack in
				 * Ending */
				call->acked = true;
				dlg_ev(call, DIALOG_EV_RECEIVE_ACK, BY_PEER);
				call_ev(call, CALL_FSM_ACK, BY_PEER);
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
		     logid, call);
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
		fire(call, &ev);
		if (!stack_req_answered(req))
			(void)stack_req_reply(req, 200, "OK", NULL, NULL,
					      NULL, 0);
	}
	else {
		(void)stack_req_reply(req, 405, "Method Not Allowed",
				      "Allow: INVITE, ACK, BYE, CANCEL, "
				      "OPTIONS, INFO, UPDATE\r\n", NULL,
				      NULL, 0);
	}

	mem_deref(call);
}


static struct call *call_new(struct callmgr *cm, bool outgoing)
{
	struct call *call;

	call = mem_zalloc(sizeof(*call), call_destructor);
	if (!call)
		return NULL;

	call->cm = cm;
	call->outgoing = outgoing;
	tmr_init(&call->tmr_rtx);
	tmr_init(&call->tmr_ack);
	tmr_init(&call->tmr_setup);
	tmr_init(&call->tmr_glare);
	tmr_init(&call->tmr_rel);

	if (fsm_alloc(&call->fsm, cm->call_def[outgoing], call))
		return mem_deref(call);

	return call;
}


static int attach_dialog_fsm(struct callmgr *cm, struct dialog *dlg,
			     bool uac)
{
	struct fsm *f = NULL;
	int err;

	err = fsm_alloc(&f, cm->dlg_def[uac], dlg);
	if (!err)
		dialog_set_fsm(dlg, f);

	return err;
}


static bool invite_hook(struct stack *st, struct stack_req *req, void *arg)
{
	struct callmgr *cm = arg;
	const struct sip_msg *msg = stack_req_msg(req);
	char ltag[32], contact[256];
	struct call *call;
	int err;

	if (!cm->incomingh)
		return false;

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
	if (!err)
		err = dialog_create_uas(&call->dlg, stack_dialogs(st), st, msg,
					ltag, contact);
	if (!err)
		err = attach_dialog_fsm(cm, call->dlg, false);
	if (err) {
		mem_deref(call);
		(void)stack_req_reply(req, err == EBADMSG ? 400 : 500,
				      err == EBADMSG ? "Bad Contact Header" :
				      "Server Internal Error", NULL, NULL,
				      NULL, 0);
		return true;
	}

	call->invite = stack_req_ref(req);
	call->rel100 = sip_msg_hdr_has_value(msg, SIP_HDR_SUPPORTED,
					     "100rel") ||
		sip_msg_hdr_has_value(msg, SIP_HDR_REQUIRE, "100rel");
	call->rseq = 1 + (rand_u32() & 0xffff);
	stack_req_set_dialog(req, uas_cancel_handler, call);
	dialog_set_handlers(call->dlg, dialog_request_handler, NULL, call);
	dlg_ev(call, DIALOG_EV_RECEIVE_INVITE, BY_US);
	remote_body(call, msg);
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

	tmr_start(&call->tmr_setup, SETUP_TIMEOUT, setup_timeout, call);

	slog(LOG_INFO, "call", "incoming", &msg->callid, "from=%r to=%r",
	     &msg->from.auri, &msg->to.auri);

	if (!cm->incomingh(call, cm->arg) && !call->ended)
		(void)call_reject(call, 480, "Temporarily Unavailable", NULL);

	return true;
}


/* ------------------------------------------------------------------ *
 * UAC: placing a call
 * ------------------------------------------------------------------ */

static void send_ack(struct call *call, struct dialog *dlg)
{
	struct sip_request *ack = NULL;

	(void)dialog_request(&ack, dlg, "ACK", call->invite_cseq, NULL, NULL,
			     NULL, 0, NULL, NULL);
}


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


static int send_prack(struct sip_request **reqp, struct dialog *dlg,
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


/* A reliable 1xx of another fork (its To tag is not our dialog's):
 * PRACK it in an early dialog of its own. False for a retransmission
 * (already PRACKed) or a failure. */
static bool early_prack(struct call *call, const struct sip_msg *msg,
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
		dialog_set_handlers(ef->dlg, NULL, dialog_response_handler,
				    call);
		list_append(&call->early, &ef->le, ef);
		slog(LOG_INFO, "call", "early_fork", &msg->callid,
		     "to_tag=%r", &msg->to.tag);
	}
	else {
		(void)dialog_set_remote(ef->dlg, msg);   /* new target */
	}

	ef->rseq = rseq;
	if (send_prack(&ef->prack, ef->dlg, rseq, call->invite_cseq,
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
static void uac_fork(struct call *call, const struct sip_msg *msg,
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
	err |= set_body(&fork->lbody, &fork->lbody_len, &fork->lctype,
			call->lctype, (const uint8_t *)call->lbody,
			call->lbody_len);
	if (!err)
		err = fork_dialog(&fork->dlg, call, msg);
	if (!err)
		err = attach_dialog_fsm(call->cm, fork->dlg, true);
	if (err) {
		slog(LOG_WARN, "call", "fork_failed", &msg->callid,
		     "to_tag=%r err=%m", &msg->to.tag, err);
		mem_deref(fork);
		return;
	}

	fork->invite_cseq = call->invite_cseq;
	fork->answered = true;
	dialog_set_handlers(fork->dlg, dialog_request_handler,
			    dialog_response_handler, fork);
	/* the list's reference, and ours (call_new's) until the end */
	list_append(&call->cm->calls, &fork->le, mem_ref(fork));
	++call->cm->total;

	dlg_ev(fork, DIALOG_EV_SEND_INVITE, BY_US);
	call_ev(fork, CALL_FSM_DIAL, BY_US);
	dlg_ev(fork, DIALOG_EV_RECEIVE_2XX, BY_US);
	call_ev(fork, CALL_FSM_ANSWER, BY_US);
	send_ack(fork, fork->dlg);
	dlg_ev(fork, DIALOG_EV_SEND_ACK, BY_US);
	call_ev(fork, CALL_FSM_ACK, BY_US);
	remote_body(fork, msg);

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
		fire(call, &ev);
	}

	if (!fork->eh && !fork->ended) {
		slog(LOG_INFO, "call", "fork_dropped", &msg->callid,
		     "to_tag=%r", &msg->to.tag);
		(void)send_bye(fork, "fork dropped");
	}

	mem_deref(fork);   /* ours; the list holds it until it ends */
}


/* A 2xx from another fork while our dialog is still early (a 1xx of
 * one branch, the 2xx of another): the call goes on in the 2xx's
 * dialog; the early one is dropped (§13.2.2.4, the proxy cancels its
 * branch) */
static int uac_adopt_fork(struct call *call, const struct sip_msg *msg)
{
	struct dialog *dlg = NULL;
	int err;

	err = fork_dialog(&dlg, call, msg);
	if (!err)
		err = attach_dialog_fsm(call->cm, dlg, true);
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
	dialog_set_handlers(dlg, dialog_request_handler,
			    dialog_response_handler, call);
	dlg_ev(call, DIALOG_EV_SEND_INVITE, BY_US);

	return 0;
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
		remote_body(call, msg);
		call_ev(call, CALL_FSM_RINGING, BY_US);
		memset(&ev, 0, sizeof(ev));
		ev.type = CALL_EV_RINGING;
		ev.code = msg->scode;
		fire(call, &ev);
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
			send_ack(call, call->dlg);
			return;
		}

		tmr_cancel(&call->tmr_setup);
		dlg_ev(call, DIALOG_EV_RECEIVE_2XX, BY_US);
		call_ev(call, CALL_FSM_ANSWER, BY_US);
		send_ack(call, call->dlg);
		dlg_ev(call, DIALOG_EV_SEND_ACK, BY_US);
		call_ev(call, CALL_FSM_ACK, BY_US);
		remote_body(call, msg);

		if (call->cancelled) {     /* CANCEL crossed the 200 */
			(void)send_bye(call, "cancelled");
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
			fire(call, &ev);
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
		fire(call, &ev);
		call_end(call, call->cancelled ? "cancelled" : "rejected");
	}
}


static void invite_resp_handler(int err, const struct sip_msg *msg,
				void *arg);


static void prack_resp_handler(int err, const struct sip_msg *msg, void *arg)
{
	struct call *call = arg;

	if (!err && msg && msg->scode < 200)
		return;

	call->prack = NULL;
	if (err || msg->scode >= 300)
		slog(LOG_WARN, "call", "prack_failed", NULL, "%H "
		     "code=%u err=%m", logid, call, msg ? msg->scode : 0,
		     err);
}


static void uac_prack(struct call *call, uint32_t rseq)
{
	if (send_prack(&call->prack, call->dlg, rseq, call->invite_cseq,
		       prack_resp_handler, call))
		slog(LOG_WARN, "call", "prack_failed", NULL, "%H",
		     logid, call);
}


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
		     "user=%H", logid, call, msg->scode, log_q,
		     call->user);
	}

 out:
	mem_deref(ah);
	mem_deref(hdrs);
	if (err)
		slog(LOG_WARN, "call", "auth_failed", NULL, "%H "
		     "code=%u err=%m", logid, call, msg->scode, err);

	return err;
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
		if (!call->ended)
			uac_response(call, msg);
	}

	mem_deref(call);
}


/* Responses no transaction took: 2xx retransmissions (ACK again) and
 * other forks' answers */
static void dialog_response_handler(struct dialog *dlg,
				    const struct sip_msg *msg, void *arg)
{
	struct call *call = arg;

	if (!call->outgoing || msg->scode < 200 || msg->scode >= 300 ||
	    pl_strcmp(&msg->cseq.met, "INVITE"))
		return;

	if (dlg == call->dlg && !pl_strcmp(&msg->to.tag, dialog_rtag(dlg)))
		send_ack(call, dlg);
	else
		uac_fork(call, msg, !call->cancelled && !call->ended);
}


int call_connect(struct call **callp, struct stack *st, const char *to,
		 const char *from, const char *hdrs, const char *ctype,
		 const uint8_t *body, size_t len, call_event_h *eh,
		 void *arg)
{
	char callid[64], ltag[32], contact[256], local[320], remote[320];
	struct callmgr *cm;
	struct call *call;
	struct uri uri;
	struct pl pl;
	int err;

	if (!callp || !to || !stack_sip(st) || callmgr_start(st))
		return EINVAL;

	cm = callmgr_of(st);

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
	err |= set_body(&call->lbody, &call->lbody_len, &call->lctype,
			ctype, body, len);
	err |= re_sdprintf(&call->inv_hdrs, "Supported: %s\r\n%s",
			   STACK_SUPPORTED, hdrs ? hdrs : "");
	if (!err)
		err = dialog_create_uac(&call->dlg, stack_dialogs(st), st,
					callid, ltag, local, remote, to,
					contact);
	if (!err)
		err = attach_dialog_fsm(cm, call->dlg, true);
	if (err)
		goto out;

	call->eh = eh;
	call->arg = arg;
	dialog_set_handlers(call->dlg, dialog_request_handler,
			    dialog_response_handler, call);

	err = dialog_request(&call->req, call->dlg, "INVITE", 0,
			     call->inv_hdrs, ctype, body, len,
			     invite_resp_handler, call);
	if (err)
		goto out;

	call->invite_cseq = dialog_lseq(call->dlg);
	list_append(&cm->calls, &call->le, call);   /* the list's ref */
	++cm->total;
	dlg_ev(call, DIALOG_EV_SEND_INVITE, BY_US);
	call_ev(call, CALL_FSM_DIAL, BY_US);
	tmr_start(&call->tmr_setup, SETUP_TIMEOUT, setup_timeout, call);

	slog(LOG_INFO, "call", "outgoing", NULL, "callid=%H to=%H",
	     log_q, callid, log_q, to);

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

	return send_bye(call, reason ? reason : "hangup");
}


/* ------------------------------------------------------------------ *
 * Getters and the manager
 * ------------------------------------------------------------------ */

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


void call_set_handler(struct call *call, call_event_h *eh, void *arg)
{
	if (!call)
		return;

	call->eh = eh;
	call->arg = arg;
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


static void callmgr_destructor(void *arg)
{
	struct callmgr *cm = arg;
	unsigned i;

	callmgr_shutdown(cm);
	mem_deref(cm->invite);

	for (i = 0; i < 2; i++) {
		mem_deref(cm->call_def[i]);
		mem_deref(cm->dlg_def[i]);
	}
}


/* The stack's key for its call manager (stack_service) */
static const char callmgr_key;


struct callmgr *callmgr_of(const struct stack *st)
{
	return stack_service(st, &callmgr_key);
}


static void callmgr_stop(void *obj)
{
	callmgr_shutdown(obj);
}


/* The four FSM defs are built (or taken from callfsm.c's cache) here,
 * not at the first call: a table that does not match its enums
 * (EPROTO) then fails callmgr_start(), and the server does not start. */
int callmgr_start(struct stack *st)
{
	struct callmgr *cm;
	int err;

	if (!st)
		return EINVAL;

	if (callmgr_of(st))
		return 0;

	cm = mem_zalloc(sizeof(*cm), callmgr_destructor);
	if (!cm)
		return ENOMEM;

	cm->st = st;

	err = call_fsm_def(&cm->call_def[false], false);
	if (!err)
		err = call_fsm_def(&cm->call_def[true], true);
	if (!err)
		err = dialog_fsm_def(&cm->dlg_def[false], false);
	if (!err)
		err = dialog_fsm_def(&cm->dlg_def[true], true);
	if (!err)
		err = stack_service_add(st, &callmgr_key, cm, callmgr_stop);

	mem_deref(cm);            /* the stack holds it now */

	return err;
}


void callmgr_set_incoming(struct stack *st, call_incoming_h *h, void *arg)
{
	struct callmgr *cm;

	if (callmgr_start(st))
		return;

	cm = callmgr_of(st);

	cm->incomingh = h;
	cm->arg = arg;
	(void)stack_handler_set(&cm->invite, st, "INVITE",
				"INVITE ACK BYE CANCEL", STACK_OUT_OF_DIALOG,
				h ? invite_hook : NULL, cm);
}


void callmgr_set_dialog_handler(struct stack *st, dialog_event_h *h,
				void *arg)
{
	struct callmgr *cm = callmgr_of(st);

	if (!cm)
		return;

	cm->dlgh = h;
	cm->dlg_arg = arg;
}


uint32_t callmgr_count(const struct stack *st)
{
	const struct callmgr *cm = callmgr_of(st);

	return cm ? list_count(&cm->calls) : 0;
}


/* Stopping: BYE what is confirmed, CANCEL what we placed, reject what
 * rings here; then forget them all (the stack is going away). */
void callmgr_shutdown(struct callmgr *cm)
{
	struct le *le;

	if (!cm)
		return;

	le = list_head(&cm->calls);
	while (le) {
		struct call *call = le->data;

		le = le->next;
		mem_ref(call);
		(void)call_hangup(call, "shutdown");
		call_end(call, "shutdown");   /* owners hear it: Terminated */
		mem_deref(call);
	}
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
