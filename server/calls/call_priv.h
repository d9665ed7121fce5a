/**
 * server/calls/call_priv.h  What crosses files inside server/calls/
 *
 * Not public API (that is calls.h): struct callmgr and struct call,
 * which every part of a call reads and writes; the cause a firing of
 * the state machines names; and what each file of the call code gives
 * the others, one section per file that defines it. Only server/calls/
 * includes it (docs/architecture.md; test/docs/check_layers.py
 * checks). Include after calls.h.
 */
#ifndef SIPSTACK_CALL_PRIV_H
#define SIPSTACK_CALL_PRIV_H


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
	bool draining;                /* new INVITEs get 503 (drain)    */
	uint32_t retry_after;         /* ... with this Retry-After (s)  */
};

struct call {
	struct le le;                 /* in callmgr.calls (holds a ref) */
	struct callmgr *cm;
	struct dialog *dlg;
	struct fsm *fsm;              /* call state machine             */
	bool outgoing;
	bool ended;
	bool refer_held;              /* Referring came from Hold        */
	struct call *replaces;        /* RFC 3891: the call this one
				       * replaces once answered (a ref)  */
	char *id;                     /* Call-ID, for logs              */
	char *from, *to;              /* URIs of the INVITE's From/To   */
	char *ruri;                   /* the INVITE's Request-URI       */
	struct sa src;                /* UAS: the INVITE's sender; UAC:
				       * that of the latest response    */
	enum sip_transp tp;           /* ... and its transport          */
	char *reason;                 /* why it ended                   */
	uint64_t created;             /* tmr_jiffies() when made        */

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
	bool rel_required;            /* ... requires it                 */
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
	struct sip_msg *resp;         /* the latest response to our INVITE
				       * (for its headers), kept while
				       * the call object lives           */
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


/* ---- call.c: the call object, events, the end, in-dialog dispatch ---- */

/* callid="..." (and fork=TAG) for log lines, a %H printer */
int  call_logid(struct re_printf *pf, const struct call *call);
/* The owner's handler (nothing once ended, but Terminated) */
void call_fire(struct call *call, const struct call_event *ev);
/* Fire the call FSM, or the dialog's FSM, by id (above) */
void call_ev(struct call *call, enum call_fsm_event event,
	     enum cause cause);
void dlg_ev(struct call *call, enum dialog_fsm_event event,
	    enum cause cause);
/* A copy of body (NUL-terminated) and ctype in *bodyp, *ctypep */
int  call_set_body(char **bodyp, size_t *lenp, char **ctypep,
		   const char *ctype, const uint8_t *body, size_t len);
/* msg's body, if any, as the peer's session description */
void call_set_remote_body(struct call *call, const struct sip_msg *msg);
/* "Contact: <our contact>\r\n" and extra, in buf */
char *call_contact_hdr(struct call *call, char *buf, size_t sz,
		       const char *extra);
struct call *call_new(struct callmgr *cm, bool outgoing);
int  call_attach_dialog_fsm(struct callmgr *cm, struct dialog *dlg,
			    bool uac);
/* SETUP_TIMEOUT: CANCEL (outgoing) or 480 (incoming) */
void call_setup_timeout(void *arg);
/* The end: Terminated once, the dialog out of the table */
void call_end(struct call *call, const char *reason);
int  call_send_bye(struct call *call, const char *reason);
/* The dialog's handlers: requests inside it (both sides), responses no
 * transaction took (UAC: 2xx retransmissions, other forks' 2xx) */
void call_request_handler(struct dialog *dlg, struct stack_req *req,
			  void *arg);
void call_response_handler(struct dialog *dlg, const struct sip_msg *msg,
			   void *arg);


/* ---- uas.c: incoming calls ---- */

/* The out-of-dialog INVITE (callmgr.c registers it) */
bool uas_invite_hook(struct stack *st, struct stack_req *req, void *arg);
/* Retransmit call->resp2xx to req until the ACK */
void uas_start_2xx_rtx(struct call *call, struct stack_req *req);


/* ---- uac.c: outgoing calls ---- */

void uac_send_ack(struct call *call, struct dialog *dlg);
/* msg becomes the call's latest response (call_response, call_source) */
void uac_keep_response(struct call *call, const struct sip_msg *msg);


/* ---- fork.c: other forks of our INVITE ---- */

bool early_prack(struct call *call, const struct sip_msg *msg,
		 uint32_t rseq);
void uac_fork(struct call *call, const struct sip_msg *msg, bool offer);
int  uac_adopt_fork(struct call *call, const struct sip_msg *msg);


/* ---- prack.c: PRACK, both ways ---- */

int  prack_send(struct sip_request **reqp, struct dialog *dlg,
		uint32_t rseq, uint32_t invite_cseq, sip_resp_h *resph,
		void *arg);
void uac_prack(struct call *call, uint32_t rseq);
void peer_prack(struct call *call, struct stack_req *req);


/* ---- update.c: UPDATE ---- */

bool update_offer(struct call *call, struct stack_req *req);


/* ---- reinvite.c: re-INVITE, hold ---- */

void peer_reinvite(struct call *call, struct stack_req *req);
/* The peer's offer in msg: hold or unhold (events, call FSM) */
void reinvite_check_hold(struct call *call, const struct sip_msg *msg);


/* ---- sdpdir.c: SDP directions (the rest are in calls.h) ---- */

bool sdp_is_hold(const char *sdp, size_t len);
uint16_t call_body_check(const struct sip_msg *msg, const char **reason,
			 char *hdrs, size_t sz);
void call_body_refuse(struct stack_req *req, uint16_t code,
		      const char *reason, const char *hdrs);

#endif
