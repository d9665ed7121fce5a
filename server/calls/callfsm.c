/**
 * server/calls/callfsm.c  The dialog and call state machines (definitions)
 *
 * Owns the four FSM definitions of spec §3.2/§4.1 - the FSMFactory's
 * NewDialogFSM(isUAC) and NewCallFSM(isOutgoing): the UAC dialog, the
 * UAS dialog, the outgoing call and the incoming call. Each is written
 * below as a table of rows, built once on first use with the generic
 * FSM builder, cached, and handed out as a mem reference; every dialog
 * and call makes its own small instance of it with fsm_alloc().
 *
 * Exposes the CALLFSM section of sipstack.h: the factory functions, the
 * state and event ids (enums equal to the defs' interned ids, checked at
 * build time; the call manager builds all four when a stack is made, so
 * a mismatch stops the server at start) and their name tables. Uses
 * server/core/fsm.c only. The defs carry no handlers: the dialog and call
 * code react to the transitions they make themselves, and fire them by
 * id (fsm_transition_id() with these enums, server/calls/call.c).
 *
 * docs/state-machines.md has the same tables as generated markdown, the
 * meaning of every event, the RFC sections behind every row and the
 * gaps of the original spec's sketch that these tables fill.
 *
 * Reading the tables: a row is (from, event, to); a (state, event) pair
 * with no row is refused (fsm_transition() returns EPERM). There is no
 * "*" row: Timeout and its kind are listed per state, because a "*"
 * would also apply to the final state, which nothing may leave.
 *
 * The cache is plain static data, as everything in the core runs on the
 * stack's loop thread (see the top of sipstack.h).
 */
#include <re.h>
#include "calls.h"


/* --------------------------------------------------------------------
 * Names: index = id
 * ----------------------------------------------------------------- */

const char * const dialog_fsm_state_names[DIALOG_ST_COUNT] = {
	"Null", "Trying", "Proceeding", "Early", "Confirmed",
	"Terminating", "Terminated",
};

const char * const dialog_fsm_uac_event_names[DIALOG_EV_COUNT] = {
	"SendInvite", "Receive1xx", "Receive1xxTag", "Receive2xx",
	"Receive3xx6xx", "SendAck", "SendCancel",
	"SendBye", "ReceiveBye", "ReceiveByeResponse",
	"Terminate", "Timeout", "TransportError",
};

const char * const dialog_fsm_uas_event_names[DIALOG_EV_COUNT] = {
	"ReceiveInvite", "Send100", "Send1xx", "Send2xx",
	"Send3xx6xx", "ReceiveAck", "ReceiveCancel",
	"SendBye", "ReceiveBye", "ReceiveByeResponse",
	"Terminate", "Timeout", "TransportError",
};

const char * const call_fsm_state_names[CALL_ST_COUNT] = {
	"Idle", "Calling", "Ringing", "Answering", "Connected", "Hold",
	"Referring", "Replacing", "Ending", "Ended",
};

const char * const call_fsm_event_names[CALL_FSM_EV_COUNT] = {
	"Ringing", "Answer", "Ack", "Reject", "Cancel", "Hold", "Unhold",
	"Refer", "ReferDone", "ReferDoneHeld", "Replace", "Bye",
	"RemoteBye", "ByeResponse", "Timeout", "Error",
	"Dial",
};


/* --------------------------------------------------------------------
 * Tables
 * ----------------------------------------------------------------- */

struct row {
	uint8_t from;
	uint8_t event;
	uint8_t to;
};

#define DROW(from, ev, to) \
	{DIALOG_ST_ ## from, DIALOG_EV_ ## ev, DIALOG_ST_ ## to}
#define CROW(from, ev, to) \
	{CALL_ST_ ## from, CALL_FSM_ ## ev, CALL_ST_ ## to}

/* The events that end a dialog from any state but the final one (the
 * state is pasted here, not passed on: DROW(NULL, ...) would expand it) */
#define DIALOG_ENDS(st) \
	{DIALOG_ST_ ## st, DIALOG_EV_TERMINATE, DIALOG_ST_TERMINATED}, \
	{DIALOG_ST_ ## st, DIALOG_EV_TIMEOUT, DIALOG_ST_TERMINATED}, \
	{DIALOG_ST_ ## st, DIALOG_EV_TRANSPORT_ERROR, DIALOG_ST_TERMINATED}

/* and a call */
#define CALL_ENDS(st) \
	{CALL_ST_ ## st, CALL_FSM_TIMEOUT, CALL_ST_ENDED}, \
	{CALL_ST_ ## st, CALL_FSM_ERROR, CALL_ST_ENDED}


/* The UAC side of an INVITE dialog: RFC 3261 §12.1.2, §13.2, §15.1.1,
 * §9.1 (CANCEL), RFC 6026 (2xx after the INVITE transaction). */
static const struct row dialog_uac_rows[] = {
	DROW(NULL, SEND_INVITE, TRYING),
	DIALOG_ENDS(NULL),

	/* INVITE sent, nothing back yet. A CANCEL decided here goes on
	 * the wire only after a provisional response (§9.1). */
	DROW(TRYING, RECEIVE_1XX, PROCEEDING),
	DROW(TRYING, RECEIVE_1XX_TAG, EARLY),
	DROW(TRYING, RECEIVE_2XX, CONFIRMED),
	DROW(TRYING, RECEIVE_3XX6XX, TERMINATED),
	DROW(TRYING, SEND_CANCEL, TERMINATING),
	DIALOG_ENDS(TRYING),

	/* a 1xx without To tag: no dialog yet (§12.1) */
	DROW(PROCEEDING, RECEIVE_1XX, PROCEEDING),
	DROW(PROCEEDING, RECEIVE_1XX_TAG, EARLY),
	DROW(PROCEEDING, RECEIVE_2XX, CONFIRMED),
	DROW(PROCEEDING, RECEIVE_3XX6XX, TERMINATED),
	DROW(PROCEEDING, SEND_CANCEL, TERMINATING),
	DIALOG_ENDS(PROCEEDING),

	/* early dialog (§12.1.2); the caller may BYE it (§15) */
	DROW(EARLY, RECEIVE_1XX, EARLY),
	DROW(EARLY, RECEIVE_1XX_TAG, EARLY),
	DROW(EARLY, RECEIVE_2XX, CONFIRMED),
	DROW(EARLY, RECEIVE_3XX6XX, TERMINATED),
	DROW(EARLY, SEND_CANCEL, TERMINATING),
	DROW(EARLY, SEND_BYE, TERMINATING),
	DIALOG_ENDS(EARLY),

	/* the ACK for the 2xx (§13.2.2.4); a BYE of ours sent in Early
	 * and crossed by the 2xx is answered here: the dialog is over */
	DROW(CONFIRMED, SEND_ACK, CONFIRMED),
	DROW(CONFIRMED, SEND_BYE, TERMINATING),
	DROW(CONFIRMED, RECEIVE_BYE, TERMINATED),
	DROW(CONFIRMED, RECEIVE_BYE_RESPONSE, TERMINATED),
	DIALOG_ENDS(CONFIRMED),

	/* CANCEL or BYE sent. Provisionals may still cross the CANCEL;
	 * the 487 ends the dialog, a 2xx crossing it confirms the dialog
	 * (the UAC then ACKs and BYEs it, §9.1, §15). */
	DROW(TERMINATING, RECEIVE_1XX, TERMINATING),
	DROW(TERMINATING, RECEIVE_1XX_TAG, TERMINATING),
	DROW(TERMINATING, RECEIVE_2XX, CONFIRMED),
	DROW(TERMINATING, RECEIVE_3XX6XX, TERMINATED),
	DROW(TERMINATING, RECEIVE_BYE, TERMINATED),
	DROW(TERMINATING, RECEIVE_BYE_RESPONSE, TERMINATED),
	DIALOG_ENDS(TERMINATING),
};


/* The UAS side: RFC 3261 §12.1.1, §13.3, §15.1.2, §9.2 (CANCEL). */
static const struct row dialog_uas_rows[] = {
	DROW(NULL, RECEIVE_INVITE, TRYING),
	DIALOG_ENDS(NULL),

	/* INVITE received, nothing sent yet: may answer at once */
	DROW(TRYING, SEND_100, PROCEEDING),
	DROW(TRYING, SEND_1XX, EARLY),
	DROW(TRYING, SEND_2XX, CONFIRMED),
	DROW(TRYING, SEND_3XX6XX, TERMINATED),
	DROW(TRYING, RECEIVE_CANCEL, TERMINATED),
	DIALOG_ENDS(TRYING),

	DROW(PROCEEDING, SEND_1XX, EARLY),
	DROW(PROCEEDING, SEND_2XX, CONFIRMED),
	DROW(PROCEEDING, SEND_3XX6XX, TERMINATED),
	DROW(PROCEEDING, RECEIVE_CANCEL, TERMINATED),
	DIALOG_ENDS(PROCEEDING),

	/* the callee MUST NOT BYE an early dialog (§15): no SendBye */
	DROW(EARLY, SEND_1XX, EARLY),
	DROW(EARLY, SEND_2XX, CONFIRMED),
	DROW(EARLY, SEND_3XX6XX, TERMINATED),
	DROW(EARLY, RECEIVE_CANCEL, TERMINATED),
	DROW(EARLY, RECEIVE_BYE, TERMINATED),
	DIALOG_ENDS(EARLY),

	/* confirmed for the UAS once its 2xx is sent (§12.1.1); the ACK
	 * (and any repeat of it) leaves it there */
	DROW(CONFIRMED, RECEIVE_ACK, CONFIRMED),
	DROW(CONFIRMED, SEND_BYE, TERMINATING),
	DROW(CONFIRMED, RECEIVE_BYE, TERMINATED),
	DIALOG_ENDS(CONFIRMED),

	DROW(TERMINATING, RECEIVE_ACK, TERMINATING),
	DROW(TERMINATING, RECEIVE_BYE, TERMINATED),
	DROW(TERMINATING, RECEIVE_BYE_RESPONSE, TERMINATED),
	DIALOG_ENDS(TERMINATING),
};


/* Outgoing call: we sent the INVITE. Answering is not used. */
static const struct row call_out_rows[] = {
	CROW(IDLE, DIAL, CALLING),
	CROW(IDLE, REPLACE, REPLACING),
	CALL_ENDS(IDLE),

	CROW(CALLING, RINGING, RINGING),
	CROW(CALLING, ANSWER, CONNECTED),
	CROW(CALLING, REJECT, ENDED),
	CROW(CALLING, CANCEL, ENDING),
	CALL_ENDS(CALLING),

	CROW(RINGING, RINGING, RINGING),
	CROW(RINGING, ANSWER, CONNECTED),
	CROW(RINGING, REJECT, ENDED),
	CROW(RINGING, CANCEL, ENDING),
	CALL_ENDS(RINGING),

	CROW(CONNECTED, ACK, CONNECTED),
	CROW(CONNECTED, HOLD, HOLD),
	CROW(CONNECTED, REFER, REFERRING),
	CROW(CONNECTED, BYE, ENDING),
	CROW(CONNECTED, REMOTE_BYE, ENDED),
	CALL_ENDS(CONNECTED),

	CROW(HOLD, HOLD, HOLD),
	CROW(HOLD, UNHOLD, CONNECTED),
	CROW(HOLD, REFER, REFERRING),
	CROW(HOLD, BYE, ENDING),
	CROW(HOLD, REMOTE_BYE, ENDED),
	CALL_ENDS(HOLD),

	CROW(REFERRING, REFER_DONE, CONNECTED),
	CROW(REFERRING, REFER_DONE_HELD, HOLD),
	CROW(REFERRING, BYE, ENDING),
	CROW(REFERRING, REMOTE_BYE, ENDED),
	CALL_ENDS(REFERRING),

	/* our INVITE carries Replaces (RFC 3891 §4) */
	CROW(REPLACING, RINGING, REPLACING),
	CROW(REPLACING, ANSWER, CONNECTED),
	CROW(REPLACING, REJECT, ENDED),
	CROW(REPLACING, CANCEL, ENDING),
	CALL_ENDS(REPLACING),

	/* BYE or CANCEL sent. After a CANCEL: provisionals may cross it,
	 * the 487 ends the call, a crossing 2xx is ACKed and BYEd. */
	CROW(ENDING, RINGING, ENDING),
	CROW(ENDING, ANSWER, ENDING),
	CROW(ENDING, ACK, ENDING),
	CROW(ENDING, REJECT, ENDED),
	CROW(ENDING, BYE, ENDING),
	CROW(ENDING, REMOTE_BYE, ENDED),
	CROW(ENDING, BYE_RESPONSE, ENDED),
	CALL_ENDS(ENDING),
};


/* Incoming call: Idle is "INVITE received, nothing sent". Calling is
 * not used. */
static const struct row call_in_rows[] = {
	CROW(IDLE, RINGING, RINGING),
	CROW(IDLE, ANSWER, ANSWERING),
	CROW(IDLE, REJECT, ENDED),
	CROW(IDLE, CANCEL, ENDED),
	CROW(IDLE, REPLACE, REPLACING),
	CALL_ENDS(IDLE),

	CROW(RINGING, RINGING, RINGING),
	CROW(RINGING, ANSWER, ANSWERING),
	CROW(RINGING, REJECT, ENDED),
	CROW(RINGING, CANCEL, ENDED),
	CALL_ENDS(RINGING),

	/* 2xx sent, no ACK yet. Our BYE only once the ACK wait has timed
	 * out (RFC 3261 §13.3.1.4, §15): the call code enforces that. */
	CROW(ANSWERING, ACK, CONNECTED),
	CROW(ANSWERING, BYE, ENDING),
	CROW(ANSWERING, REMOTE_BYE, ENDED),
	CALL_ENDS(ANSWERING),

	CROW(CONNECTED, HOLD, HOLD),
	CROW(CONNECTED, REFER, REFERRING),
	CROW(CONNECTED, BYE, ENDING),
	CROW(CONNECTED, REMOTE_BYE, ENDED),
	CALL_ENDS(CONNECTED),

	CROW(HOLD, HOLD, HOLD),
	CROW(HOLD, UNHOLD, CONNECTED),
	CROW(HOLD, REFER, REFERRING),
	CROW(HOLD, BYE, ENDING),
	CROW(HOLD, REMOTE_BYE, ENDED),
	CALL_ENDS(HOLD),

	CROW(REFERRING, REFER_DONE, CONNECTED),
	CROW(REFERRING, REFER_DONE_HELD, HOLD),
	CROW(REFERRING, BYE, ENDING),
	CROW(REFERRING, REMOTE_BYE, ENDED),
	CALL_ENDS(REFERRING),

	/* the INVITE carries Replaces matching one of our dialogs: it is
	 * accepted without alerting (RFC 3891 §3), so no Ringing */
	CROW(REPLACING, ANSWER, ANSWERING),
	CROW(REPLACING, REJECT, ENDED),
	CROW(REPLACING, CANCEL, ENDED),
	CALL_ENDS(REPLACING),

	CROW(ENDING, REMOTE_BYE, ENDED),
	CROW(ENDING, BYE_RESPONSE, ENDED),
	CALL_ENDS(ENDING),
};


/* --------------------------------------------------------------------
 * Building
 * ----------------------------------------------------------------- */

struct spec {
	const char *name;
	const char * const *states;   /* [0] is the initial state */
	unsigned nstates;
	const char * const *events;
	unsigned nevents;
	const struct row *rows;
	size_t nrows;
};

enum {
	KIND_DIALOG_UAS = 0,
	KIND_DIALOG_UAC,
	KIND_CALL_IN,
	KIND_CALL_OUT,
	KIND_COUNT,

	HISTORY = 16,
};

#define SPEC(nm, st, ev, nev, rw) \
	{nm, st, (unsigned)ARRAY_SIZE(st), ev, nev, rw, ARRAY_SIZE(rw)}

static const struct spec specs[KIND_COUNT] = {
	[KIND_DIALOG_UAS] = SPEC("dialog-uas", dialog_fsm_state_names,
				 dialog_fsm_uas_event_names, DIALOG_EV_COUNT,
				 dialog_uas_rows),
	[KIND_DIALOG_UAC] = SPEC("dialog-uac", dialog_fsm_state_names,
				 dialog_fsm_uac_event_names, DIALOG_EV_COUNT,
				 dialog_uac_rows),
	/* the incoming def has every event but the last one, Dial */
	[KIND_CALL_IN]    = SPEC("call-incoming", call_fsm_state_names,
				 call_fsm_event_names, CALL_FSM_DIAL,
				 call_in_rows),
	[KIND_CALL_OUT]   = SPEC("call-outgoing", call_fsm_state_names,
				 call_fsm_event_names, CALL_FSM_EV_COUNT,
				 call_out_rows),
};

static struct fsm_def *cache[KIND_COUNT];


/* The enums are only worth anything if they are the def's ids: a row
 * table that forgot an event, or names out of order, must not build. */
static int check_ids(const struct fsm_def *d, const struct spec *s)
{
	unsigned i;

	if (fsm_def_state_count(d) != s->nstates ||
	    fsm_def_event_count(d) != s->nevents)
		return EPROTO;

	for (i = 0; i < s->nstates; i++) {
		if (fsm_def_state(d, s->states[i]) != (int)i)
			return EPROTO;
	}

	for (i = 0; i < s->nevents; i++) {
		if (fsm_def_event(d, s->events[i]) != (int)i)
			return EPROTO;
	}

	return 0;
}


/* Names are interned in order of first use, so: every state first, in
 * enum order (fsm_builder_enter() with no handler interns a state), then
 * the rows event by event in enum order. */
static int build(struct fsm_def **defp, const struct spec *s)
{
	struct fsm_builder *b = NULL;
	struct fsm_def *d = NULL;
	unsigned i;
	size_t r;
	int err;

	/* a name table shorter than its enum has NULL at the end */
	for (i = 0; i < s->nstates; i++) {
		if (!s->states[i])
			return EPROTO;
	}
	for (i = 0; i < s->nevents; i++) {
		if (!s->events[i])
			return EPROTO;
	}

	for (r = 0; r < s->nrows; r++) {
		if (s->rows[r].from >= s->nstates ||
		    s->rows[r].to >= s->nstates ||
		    s->rows[r].event >= s->nevents)
			return EPROTO;
	}

	err = fsm_builder_alloc(&b, s->name);
	if (err)
		return err;

	for (i = 0; i < s->nstates && !err; i++)
		err = fsm_builder_enter(b, s->states[i], NULL);

	if (!err)
		err = fsm_builder_initial(b, s->states[0]);
	if (!err)
		err = fsm_builder_history(b, HISTORY);

	for (i = 0; i < s->nevents && !err; i++) {
		for (r = 0; r < s->nrows && !err; r++) {
			const struct row *rw = &s->rows[r];

			if (rw->event != i)
				continue;

			err = fsm_builder_transition(b, s->states[rw->from],
						     s->events[i],
						     s->states[rw->to]);
		}
	}
	if (err)
		goto out;

	err = fsm_build(&d, b);
	if (err)
		goto out;

	err = check_ids(d, s);

 out:
	mem_deref(b);

	if (err)
		mem_deref(d);
	else
		*defp = d;

	return err;
}


static int shared_def(struct fsm_def **defp, unsigned kind)
{
	int err;

	if (!defp)
		return EINVAL;

	if (!cache[kind]) {
		err = build(&cache[kind], &specs[kind]);
		if (err)
			return err;
	}

	*defp = mem_ref(cache[kind]);

	return 0;
}


int dialog_fsm_def(struct fsm_def **defp, bool uac)
{
	return shared_def(defp, uac ? KIND_DIALOG_UAC : KIND_DIALOG_UAS);
}


int call_fsm_def(struct fsm_def **defp, bool outgoing)
{
	return shared_def(defp, outgoing ? KIND_CALL_OUT : KIND_CALL_IN);
}


void callfsm_close(void)
{
	unsigned i;

	for (i = 0; i < KIND_COUNT; i++)
		cache[i] = mem_deref(cache[i]);
}
