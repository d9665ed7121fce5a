/**
 * server/calls/calls.h  INVITE sessions: their public C API
 *
 * What server/calls/ gives the bindings and the program: the call object
 * (incoming and outgoing INVITE sessions on the core's dialogs) and the
 * dialog and call state machines.
 *
 * One section per object, in the libre style: opaque structs, int errno
 * returns, out-pointer first, handler and arg last, handler typedefs
 * ending in _h, getters named as nouns, a %H printer per object. Include
 * <re.h> first (with HAVE_INTTYPES_H, HAVE_STDBOOL_H, HAVE_INET6 and
 * USE_OPENSSL defined, as meson.build does). Everything runs on the
 * stack's loop thread; from another thread, use stack_call().
 */
#ifndef SIPSTACK_CALLS_H
#define SIPSTACK_CALLS_H

#include "sipcore.h"

/* ---------------------------------------------------------------------
 * Call: an INVITE session, incoming or outgoing (server/calls/call.c,
 * callmgr.c, and the parts uas.c, uac.c, fork.c, prack.c, update.c,
 * reinvite.c, sdpdir.c)
 * ------------------------------------------------------------------ */

struct call;
struct callmgr;

enum call_event_type {
	CALL_EV_STATE = 0,   /* from_state -> to_state                  */
	CALL_EV_RINGING,     /* outgoing: a 18x arrived (code)           */
	CALL_EV_ANSWERED,    /* outgoing: 2xx (code, ctype, body, len)   */
	CALL_EV_REJECTED,    /* outgoing: 3xx-6xx (code, reason)         */
	CALL_EV_TERMINATED,  /* the call ended (reason); the last event  */
	CALL_EV_HOLD,        /* the peer put us on hold (RFC 3264 §8.4)  */
	CALL_EV_UNHOLD,      /* the peer resumed                         */
	CALL_EV_INFO,        /* INFO/UPDATE/OPTIONS in the dialog (req);
			      * unanswered after the handler: 200        */
	CALL_EV_DIALOG,      /* a high-level dialog event (dialog_event) */
	CALL_EV_FORK,        /* outgoing: another fork answered too (fork:
			      * a new call, Connected and ACKed; code,
			      * ctype, body, len). Keep it by setting a
			      * handler on it (call_set_handler) from this
			      * event, and mem_ref it to use the pointer
			      * after its Terminated event; a fork left
			      * without handler gets a BYE at once */
	CALL_EV_REFER,       /* a REFER in the dialog (req): the owner
			      * answers it (e.g. sub_refer_accept) or sets
			      * *taken to answer later; else 405     */
};

/* The high-level dialog events of on_dialog_event (the spec's second
 * "DialogEvent"; the first is the dialog FSM's events) */
enum dialog_event {
	DIALOG_EV_RINGING = 0,
	DIALOG_EV_ANSWERED,
	DIALOG_EV_TERMINATED,
	DIALOG_EV_REFERRED,
	DIALOG_EV_HOLD,
	DIALOG_EV_UNHOLD,
};
const char *dialog_event_name(enum dialog_event ev);

struct call_event {
	enum call_event_type type;
	const char *from_state, *to_state;
	uint16_t code;
	const char *reason;
	const char *ctype;
	const uint8_t *body;
	size_t len;
	struct stack_req *req;
	enum dialog_event dialog_event;
	struct call *fork;           /* CALL_EV_FORK                    */
	bool *taken;                 /* CALL_EV_REFER                   */
};

typedef void (call_event_h)(struct call *call, const struct call_event *ev,
			    void *arg);
/* A new incoming call (100 Trying sent). Return false to refuse it
 * (480); true to take it: ring, answer or reject it later. */
typedef bool (call_incoming_h)(struct call *call, void *arg);

/* The call manager of st, made and attached to the stack (a stack
 * service) if there is none yet; stopping the stack ends every call.
 * EPROTO when a state machine's table does not match its enums. */
int  callmgr_start(struct stack *st);
struct callmgr *callmgr_of(const struct stack *st);   /* NULL: none */
void callmgr_set_incoming(struct stack *st, call_incoming_h *h, void *arg);
/* Every call's high-level dialog events, for C users */
typedef void (dialog_event_h)(struct call *call, enum dialog_event ev,
			      void *arg);
void callmgr_set_dialog_handler(struct stack *st, dialog_event_h *h,
				void *arg);
uint32_t callmgr_count(const struct stack *st);
/* Calls made since the start (incoming, outgoing and forks) */
uint64_t callmgr_total(const struct stack *st);
/* h on every live call, oldest first, until it returns true: that
 * call is returned (NULL: none did). h may hang calls up. */
typedef bool (call_apply_h)(struct call *call, void *arg);
struct call *callmgr_apply(const struct stack *st, call_apply_h *h,
			   void *arg);
/* Draining: new incoming INVITEs (out of dialog) are answered 503 with
 * Retry-After: retry_after (seconds) before any hook; the calls in
 * flight go on, and so do outgoing calls (a B2BUA's second legs).
 * false ends it. */
void callmgr_set_draining(struct stack *st, bool drain, uint32_t retry_after);
bool callmgr_draining(const struct stack *st);
void callmgr_shutdown(struct callmgr *cm);

/* UAC: INVITE to (a SIP URI) from from (NULL: our address), with
 * extra header lines hdrs and a body; events go to eh. */
int  call_connect(struct call **callp, struct stack *st, const char *to,
		  const char *from, const char *hdrs, const char *ctype,
		  const uint8_t *body, size_t len, call_event_h *eh,
		  void *arg);
/* UAC: call_connect() with the Request-URI uri and the To header's URI
 * to apart (to NULL: uri), e.g. a registered contact as Request-URI
 * and the address of record in To */
int  call_connect_to(struct call **callp, struct stack *st, const char *uri,
		     const char *to, const char *from, const char *hdrs,
		     const char *ctype, const uint8_t *body, size_t len,
		     call_event_h *eh, void *arg);
/* UAS: a provisional response 101..199 (180 Ringing, 183 with early
 * media); it carries our To tag and so makes the dialog early. It is
 * reliable (RFC 3262) when the INVITE supports or requires 100rel. */
int  call_ringing(struct call *call, uint16_t code, const char *reason,
		  const char *hdrs, const char *ctype, const uint8_t *body,
		  size_t len);
/* How call_progress() sends a provisional response */
enum call_rel {
	CALL_REL_AUTO = 0,  /* reliably when the INVITE supports 100rel  */
	CALL_REL_NO,        /* never; EPERM when the INVITE requires it
			     * (RFC 3262 §3: the UAS MUST then)          */
	CALL_REL_YES,       /* always; ENOTSUP when the INVITE does not
			     * support it (RFC 3262 §3: MUST NOT)        */
};
/* UAS: call_ringing() with the reliability chosen */
int  call_progress(struct call *call, uint16_t code, const char *reason,
		   enum call_rel rel, const char *hdrs, const char *ctype,
		   const uint8_t *body, size_t len);
/* UAS: 200, retransmitted until the ACK; no ACK in 64*T1: BYE and the
 * call ends with reason "Timeout" */
int  call_answer(struct call *call, const char *hdrs, const char *ctype,
		 const uint8_t *body, size_t len);
/* UAS: a final 300..699 */
int  call_reject(struct call *call, uint16_t code, const char *reason,
		 const char *hdrs);
/* UAC: CANCEL (sent once a provisional came, RFC 3261 §9.1) */
int  call_cancel(struct call *call);
/* A request of ours in the call's confirmed dialog (INFO, MESSAGE,
 * NOTIFY, OPTIONS...): resph gets its final response once (or err:
 * ETIMEDOUT after 64*T1, ECANCELED when the stack stops first), also
 * when the call ends meanwhile. EINVAL for the methods the call sends
 * itself or that need more than a transaction (INVITE, ACK, BYE,
 * CANCEL, PRACK, UPDATE, SUBSCRIBE, REFER, REGISTER); ENOTCONN when
 * the call is not answered, is ending or has ended. */
int  call_request(struct call *call, const char *met, const char *hdrs,
		  const char *ctype, const uint8_t *body, size_t len,
		  stack_resp_h *resph, void *arg);
/* End the call whatever its state: BYE, CANCEL or 603 */
int  call_hangup(struct call *call, const char *reason);
void call_set_handler(struct call *call, call_event_h *eh, void *arg);
/* UAC: answer 401/407 with these (digest SHA-256 or MD5, RFC 8760);
 * once per challenge, again only for stale=true. Set right after
 * call_connect (no response can arrive before the loop runs). */
int  call_set_credentials(struct call *call, const char *user,
			  const char *password);

const char *call_state(const struct call *call);
struct fsm *call_fsm(const struct call *call);
struct dialog *call_dialog(const struct call *call);  /* NULL once ended */
/* A transfer of the call (REFER, RFC 3515, either way) began or ended:
 * the call state machine's Referring, which it leaves for the state it
 * came from (Connected or Hold). EPERM when the state does not allow
 * it (not answered, ending, or already / not Referring). */
int  call_set_referring(struct call *call, bool referring);
/* An incoming call whose INVITE had a Replaces header (RFC 3891)
 * matching a call of ours: that call (it is hung up, or cancelled if
 * early, when this one is answered and ACKed), else NULL. An outgoing
 * call placed with a "Replaces:" line among its headers goes through
 * the state machine's Replacing instead of Calling. */
struct call *call_replaces(const struct call *call);
/* The handler and arg set with call_set_handler (false: none) */
bool call_handler(const struct call *call, call_event_h **hp, void **argp);
bool call_is_outgoing(const struct call *call);
bool call_is_ended(const struct call *call);
bool call_is_answered(const struct call *call);
bool call_is_on_hold(const struct call *call);
const char *call_id(const struct call *call);
/* Milliseconds since the INVITE arrived or was sent */
uint64_t call_age(const struct call *call);
const char *call_end_reason(const struct call *call);
/* The INVITE, while it is being answered (NULL once ACKed) */
const struct sip_msg *call_invite(const struct call *call);
/* UAC: the latest response to our INVITE (a 1xx, then the final one;
 * for a fork, its 2xx), kept while the call object lives; NULL before
 * any came and for incoming calls */
const struct sip_msg *call_response(const struct call *call);
/* The INVITE's Request-URI (ours, for an outgoing call) */
const char *call_request_uri(const struct call *call);
/* UAS: the address the INVITE came from; UAC: that of the latest
 * response (NULL before any). *tpp (may be NULL) gets its transport. */
const struct sa *call_source(const struct call *call, enum sip_transp *tpp);
/* URIs of the INVITE's From and To */
const char *call_from(const struct call *call);
const char *call_to(const struct call *call);
const char *call_remote_body(const struct call *call, size_t *len,
			     const char **ctype);
int  call_debug(struct re_printf *pf, const struct call *call);

/* A re-INVITE of ours (RFC 3261 §14.1): 491 glare is retried after the
 * random delay of §14.1 (at most 3 times); 481/408 or no answer ends
 * the call. h gets err (0 when a final answer came) and its code. */
enum call_reinvite_kind {
	CALL_REINVITE_UPDATE = 0,   /* a new offer                      */
	CALL_REINVITE_HOLD,         /* moves the call FSM to Hold       */
	CALL_REINVITE_UNHOLD,       /* and back                         */
};
typedef void (call_reinvite_h)(int err, uint16_t scode, void *arg);
int  call_reinvite(struct call *call, enum call_reinvite_kind kind,
		   const char *hdrs, const char *ctype, const uint8_t *body,
		   size_t len, call_reinvite_h *h, void *arg);
/* Hold (sendonly, or inactive if we only received) or resume
 * (sendrecv) by re-offering our last SDP (RFC 3264 §8.4). ENOENT when
 * the call has no SDP of ours. */
int  call_hold(struct call *call, bool hold, call_reinvite_h *h, void *arg);
bool call_is_local_hold(const struct call *call);

/* SDP direction helpers (RFC 3264) */
const char *sdp_direction(const char *sdp, size_t len);
/* NULL if sdp is a well-formed session description (RFC 4566 §5: v=0
 * first, o= with its six fields, s=, t=, m= lines of media, port,
 * protocol and formats, a c= for the session or every medium, every
 * line <letter>=<value>); else what is wrong, for a Warning. */
const char *sdp_problem(const char *sdp, size_t len);
const char *sdp_answer_dir(const char *offer);
int  sdp_set_direction(char **outp, size_t *outlen, const char *sdp,
		       size_t len, const char *dir);


/* ---- CALLFSM BEGIN ---- (dialog and call FSMs, server/calls/callfsm.c) */

/*
 * The FSMFactory of spec §4.1: NewDialogFSM(isUAC) is dialog_fsm_def(),
 * NewCallFSM(isOutgoing) is call_fsm_def(). Each returns a reference to
 * a def built once and shared by every dialog or call, which makes its
 * own instance with fsm_alloc() and drops the def reference after. The
 * defs have no handlers and a 16-entry history. callfsm_close() drops
 * the cached defs (at exit; instances keep theirs alive).
 *
 * Full tables, the meaning of each event, the RFC behind each row:
 * docs/state-machines.md. In short, a dialog FSM follows the messages of
 * the INVITE that created the dialog, fired as they are sent or received
 * (once per message: retransmissions, and requests inside the dialog
 * such as re-INVITE, UPDATE, PRACK, INFO, are not events); a call FSM
 * follows the call as the user sees it. A pair with no row is refused
 * with EPERM, and nothing leaves the final state (Terminated, Ended).
 *
 * The enums are the defs' ids (checked when a def is built, which
 * callmgr_start() does for all four: a mismatch fails callmgr_start()
 * with EPROTO), for fsm_transition_id(), fsm_can_id() and
 * fsm_state_id(). The call code fires both machines by these ids only.
 */

enum dialog_fsm_state {
	DIALOG_ST_NULL = 0,
	DIALOG_ST_TRYING,
	DIALOG_ST_PROCEEDING,
	DIALOG_ST_EARLY,
	DIALOG_ST_CONFIRMED,
	DIALOG_ST_TERMINATING,
	DIALOG_ST_TERMINATED,
	DIALOG_ST_COUNT
};

/* Ids 0-6 are one message of the INVITE transaction, named after the
 * side that acts: the UAC def calls id 0 SendInvite, the UAS def calls
 * it ReceiveInvite. Each id has both names, so use the name of the
 * dialog's role. Ids 7-12 mean the same in both defs. */
enum dialog_fsm_event {
	DIALOG_EV_SEND_INVITE       = 0,  /* UAC: INVITE sent            */
	DIALOG_EV_RECEIVE_INVITE    = 0,  /* UAS: INVITE received        */
	DIALOG_EV_RECEIVE_1XX       = 1,  /* UAC: 1xx without To tag     */
	DIALOG_EV_SEND_100          = 1,  /* UAS: 100 Trying (no tag)    */
	DIALOG_EV_RECEIVE_1XX_TAG   = 2,  /* UAC: 1xx with To tag        */
	DIALOG_EV_SEND_1XX          = 2,  /* UAS: 101-199 with To tag    */
	DIALOG_EV_RECEIVE_2XX       = 3,  /* UAC: first 2xx to INVITE    */
	DIALOG_EV_SEND_2XX          = 3,  /* UAS: 2xx to INVITE          */
	DIALOG_EV_RECEIVE_3XX6XX    = 4,  /* UAC: final non-2xx          */
	DIALOG_EV_SEND_3XX6XX       = 4,  /* UAS: final non-2xx          */
	DIALOG_EV_SEND_ACK          = 5,  /* UAC: ACK for the 2xx        */
	DIALOG_EV_RECEIVE_ACK       = 5,  /* UAS: ACK for the 2xx        */
	DIALOG_EV_SEND_CANCEL       = 6,  /* UAC: CANCEL decided/sent    */
	DIALOG_EV_RECEIVE_CANCEL    = 6,  /* UAS: CANCEL (200+487 sent)  */
	DIALOG_EV_SEND_BYE          = 7,
	DIALOG_EV_RECEIVE_BYE,            /* (200 sent)                  */
	DIALOG_EV_RECEIVE_BYE_RESPONSE,   /* final response to our BYE   */
	DIALOG_EV_TERMINATE,              /* dropped without a message   */
	DIALOG_EV_TIMEOUT,
	DIALOG_EV_TRANSPORT_ERROR,
	DIALOG_EV_COUNT
};

enum call_fsm_state {
	CALL_ST_IDLE = 0,
	CALL_ST_CALLING,
	CALL_ST_RINGING,
	CALL_ST_ANSWERING,
	CALL_ST_CONNECTED,
	CALL_ST_HOLD,
	CALL_ST_REFERRING,
	CALL_ST_REPLACING,
	CALL_ST_ENDING,
	CALL_ST_ENDED,
	CALL_ST_COUNT
};

/* (CALL_EV_ is taken by the events a call reports to its owner.) Dial is
 * last and only in the outgoing def: the incoming def's ids are the
 * CALL_FSM_INCOMING_COUNT before it. */
enum call_fsm_event {
	CALL_FSM_RINGING = 0,       /* 18x received (out) / sent (in)     */
	CALL_FSM_ANSWER,            /* 2xx received (out) / sent (in)     */
	CALL_FSM_ACK,               /* ACK for that 2xx sent / received   */
	CALL_FSM_REJECT,            /* 3xx-6xx received (out) / sent (in) */
	CALL_FSM_CANCEL,            /* CANCEL sent (out) / received (in)  */
	CALL_FSM_HOLD,              /* media put on hold, either side     */
	CALL_FSM_UNHOLD,            /* media flowing both ways again      */
	CALL_FSM_REFER,             /* a transfer started (REFER)         */
	CALL_FSM_REFER_DONE,        /* it ended, the call stays; unheld   */
	CALL_FSM_REFER_DONE_HELD,   /* ... the call stays, still on hold  */
	CALL_FSM_REPLACE,           /* INVITE with Replaces sent / recvd  */
	CALL_FSM_BYE,               /* we hang up: BYE sent               */
	CALL_FSM_REMOTE_BYE,        /* the peer hung up: BYE received     */
	CALL_FSM_BYE_RESPONSE,      /* final response to our BYE          */
	CALL_FSM_TIMEOUT,
	CALL_FSM_ERROR,
	CALL_FSM_DIAL,              /* outgoing only: INVITE sent         */
	CALL_FSM_EV_COUNT,
	CALL_FSM_INCOMING_COUNT = CALL_FSM_DIAL
};

/* Names, index = id */
extern const char * const dialog_fsm_state_names[DIALOG_ST_COUNT];
extern const char * const dialog_fsm_uac_event_names[DIALOG_EV_COUNT];
extern const char * const dialog_fsm_uas_event_names[DIALOG_EV_COUNT];
extern const char * const call_fsm_state_names[CALL_ST_COUNT];
extern const char * const call_fsm_event_names[CALL_FSM_EV_COUNT];

/* *defp gets a reference to the shared def (built on first use);
 * ENOMEM, or EPROTO if a table does not match its enums (a bug). */
int  dialog_fsm_def(struct fsm_def **defp, bool uac);
int  call_fsm_def(struct fsm_def **defp, bool outgoing);
void callfsm_close(void);

/* ---- CALLFSM END ---- */

#endif
