/**
 * server/sipstack.h  The public C API of sipstack
 *
 * One header, one section per object, in the libre style: opaque structs,
 * int errno returns, out-pointer first, handler and arg last, handler
 * typedefs ending in _h, getters named as nouns, a %H printer per object.
 *
 * Include <re.h> first (with HAVE_INTTYPES_H, HAVE_STDBOOL_H, HAVE_INET6
 * and USE_OPENSSL defined, as meson.build does).
 *
 * Threading: every function here runs on the stack's loop thread. From
 * any other thread, use stack_call() to marshal work onto the loop.
 */
#ifndef SIPSTACK_H
#define SIPSTACK_H

#define SIPSTACK_VERSION "0.1.0"


/* ---- FSM BEGIN ---- (generic finite state machine, server/fsm.c) */

/*
 * A definition (struct fsm_def) is made once with a builder, is immutable
 * and is shared, mem-refcounted, by any number of small instances
 * (struct fsm). State and event names are interned to ids (0..n-1 in order
 * of first use); ids stay valid for the life of a def and of every
 * copy-on-write descendant of it, so callers may cache them for the
 * fast path fsm_transition_id().
 *
 * "*" as the from-state of a transition means any state; an explicit
 * (state, event) row always wins over a "*" row. Handlers live in the def
 * and get the instance's arg, so per-object behaviour goes through arg.
 *
 * On a transition: exit(old), state changes and the history entry is
 * written, transition(from, to, event), enter(new). Self-transitions run
 * exit and enter too. No enter handler runs for the initial state.
 *
 * fsm_transition() called from inside a handler of the same instance is
 * queued and runs when the current transition has finished, before the
 * outermost fsm_transition() returns (run-to-completion). It is checked at
 * once against the state the machine will be in by then, so it returns 0
 * or EPERM as an immediate call would; fsm_can() answers the same way.
 * If a handler drops the last reference to the instance, the remaining
 * handlers and queued events are skipped and it is freed afterwards.
 *
 * Returned names point into the def: they are valid while the instance
 * lives and no fsm_add_transition() replaces its def.
 */
struct fsm_builder;
struct fsm_def;
struct fsm;

typedef void (fsm_state_h)(struct fsm *f, const char *state, void *arg);
typedef void (fsm_transition_h)(struct fsm *f, const char *from,
				const char *to, const char *event, void *arg);

/* One history entry; ts_us is CLOCK_REALTIME in microseconds */
struct fsm_hist {
	const char *from;
	const char *to;
	const char *event;
	uint64_t ts_us;
};

enum {
	FSM_HISTORY_DEFAULT = 16,  /* history ring entries per instance */
};

/* Builder: collects a definition; may be built any number of times */
int  fsm_builder_alloc(struct fsm_builder **bp, const char *name);
int  fsm_builder_initial(struct fsm_builder *b, const char *state);
int  fsm_builder_transition(struct fsm_builder *b, const char *from,
			    const char *event, const char *to);
int  fsm_builder_enter(struct fsm_builder *b, const char *state,
		       fsm_state_h *h);
int  fsm_builder_exit(struct fsm_builder *b, const char *state,
		      fsm_state_h *h);
int  fsm_builder_on_transition(struct fsm_builder *b, fsm_transition_h *h);
int  fsm_builder_history(struct fsm_builder *b, uint16_t capacity);
int  fsm_build(struct fsm_def **defp, const struct fsm_builder *b);

/* Definition: immutable; lookups return -1 / NULL when not found */
const char *fsm_def_name(const struct fsm_def *d);
unsigned fsm_def_state_count(const struct fsm_def *d);
unsigned fsm_def_event_count(const struct fsm_def *d);
int  fsm_def_state(const struct fsm_def *d, const char *name);
int  fsm_def_event(const struct fsm_def *d, const char *name);
const char *fsm_def_state_name(const struct fsm_def *d, int id);
const char *fsm_def_event_name(const struct fsm_def *d, int id);
int  fsm_def_debug(struct re_printf *pf, const struct fsm_def *d);

/* Instance: takes a reference on def; arg is passed to every handler */
int  fsm_alloc(struct fsm **fp, struct fsm_def *def, void *arg);
struct fsm_def *fsm_def(const struct fsm *f);
const char *fsm_current(const struct fsm *f);
int  fsm_state_id(const struct fsm *f);
bool fsm_can(const struct fsm *f, const char *event);
bool fsm_can_id(const struct fsm *f, int event_id);
/* 0, EINVAL (NULL or unknown event), EPERM (not allowed here),
 * EOVERFLOW/ELOOP (too many queued / chained nested transitions) */
int  fsm_transition(struct fsm *f, const char *event);
int  fsm_transition_id(struct fsm *f, int event_id);
/* Adds or replaces a row for this instance only (copy-on-write of its
 * def; new names are interned after the existing ids). from may be "*". */
int  fsm_add_transition(struct fsm *f, const char *from, const char *event,
			const char *to);
uint64_t fsm_transitions(const struct fsm *f);   /* total, ever */
size_t fsm_history_count(const struct fsm *f);   /* entries kept */
/* i = 0 is the oldest entry kept; ENOENT past the last */
int  fsm_history(const struct fsm *f, size_t i, struct fsm_hist *h);
/* Message of the last failed call on f ("" if none); like errno, a later
 * success does not clear it. Thread-local buffer, valid until the next
 * fsm_error() call on the same thread. */
const char *fsm_error(const struct fsm *f);
int  fsm_debug(struct re_printf *pf, const struct fsm *f);

/* ---- FSM END ---- */


/* ---------------------------------------------------------------------
 * Log (server/log.c): one line per event, logfmt or JSON
 * ------------------------------------------------------------------ */

enum log_level {
	LOG_DEBUG = 0,
	LOG_INFO,
	LOG_WARN,
	LOG_ERROR,
};

enum log_format {
	LOG_FMT_LOGFMT = 0,
	LOG_FMT_JSON,
};

void log_set_level(enum log_level lvl);
enum log_level log_level_get(void);
void log_set_format(enum log_format fmt);
int  log_level_parse(enum log_level *lvl, const char *s);
const char *log_level_name(enum log_level lvl);
bool log_enabled(enum log_level lvl);

/*
 * slog() writes one event. fields is a re_printf format of space-separated
 * key=value pairs; values that may hold spaces or quotes must be printed
 * with %H log_q (C string) or %H log_qpl (struct pl *), which quote and
 * escape them. callid may be NULL.
 *
 *   slog(LOG_INFO, "call", "state", &msg->callid, "from=%s to=%s", a, b);
 */
void slog(enum log_level lvl, const char *mod, const char *ev,
	  const struct pl *callid, const char *fields, ...);
void slogv(enum log_level lvl, const char *mod, const char *ev,
	   const struct pl *callid, const char *fields, va_list ap);
int  log_q(struct re_printf *pf, const char *s);
int  log_qpl(struct re_printf *pf, const struct pl *pl);
void log_set_sink(FILE *f);
void log_libre_attach(void);

/*
 * Flood control (server/loglimit.c). slog_src() is slog() for lines
 * about what a peer sent: per event and source IP at most 5 lines per
 * 10 s, per event at most 50 from all sources; what is held back is
 * told in one line `src=<ip> suppressed=N window=10` (or `src=*`) when
 * the window ends. loglimit_admit() is the same test for a caller that
 * prints itself. Both limit only on the thread that called
 * loglimit_attach() (the loop; they arm a timer); loglimit_flush()
 * prints what is pending (at stop).
 */
void slog_src(enum log_level lvl, const char *mod, const char *ev,
	      const struct sa *src, const struct pl *callid,
	      const char *fields, ...);
bool loglimit_admit(enum log_level lvl, const char *mod, const char *ev,
		    const struct sa *src);
void loglimit_attach(void);
void loglimit_flush(void);


/* ---------------------------------------------------------------------
 * Config: the spec's StackConfig
 * ------------------------------------------------------------------ */

struct stack_config {
	char     user_agent[128]; /* Server: / User-Agent:             */
	char     local_ip[64];    /* address for Contact; "" = listener */
	uint16_t udp_port;        /* 0 = no UDP listener               */
	uint16_t tcp_port;        /* 0 = no TCP listener               */
	uint16_t tls_port;        /* 0 = no TLS listener               */
	uint32_t max_forwards;    /* Max-Forwards of requests we make  */
	uint32_t t1;              /* ms, RFC 3261 T1 (our own timers)  */
	uint32_t t2;              /* ms, RFC 3261 T2                   */
	uint32_t t4;              /* ms, RFC 3261 T4                   */
	char     dns_servers[256];/* "ip:port ip:port"; "" = resolv.conf */
};

void stack_config_default(struct stack_config *cfg);
int  stack_config_debug(struct re_printf *pf, const struct stack_config *cfg);


/* ---------------------------------------------------------------------
 * Stack: the UAC/UAS object (server/stack.c)
 * ------------------------------------------------------------------ */

struct stack;
struct dialog;

/* A request handed to a hook. The hook owns nothing: it answers through
 * stack_reply*() on the server transaction the stack created for it. */
struct stack_req;

/* Return true when the handler took the request (it will answer it). */
typedef bool (stack_req_h)(struct stack *st, struct stack_req *req,
			   void *arg);
typedef void (stack_resp_h)(int err, const struct sip_msg *resp, void *arg);
typedef void (stack_call_h)(void *arg);

enum stack_hook {
	STACK_HOOK_MESSAGE = 0,   /* MESSAGE (RFC 3428)                  */
	STACK_HOOK_INVITE,        /* out-of-dialog INVITE                */
	STACK_HOOK_REFER,         /* REFER                               */
	STACK_HOOK_REGISTER,      /* REGISTER                            */
	STACK_HOOK_REQUEST,       /* any other request (routing)         */
	STACK_HOOK_MAX
};

struct stack_tls_files {
	const char *cert;   /* PEM certificate chain                  */
	const char *key;    /* PEM private key (may be the cert file) */
	const char *ca;     /* PEM CA bundle for peer verification    */
};

int  stack_alloc(struct stack **stp, const struct stack_config *cfg);
int  stack_listen(struct stack *st, enum sip_transp tp,
		  const struct sa *laddr, const struct stack_tls_files *tls);
int  stack_start(struct stack *st);
void stack_stop(struct stack *st);
bool stack_is_running(const struct stack *st);
struct sip *stack_sip(const struct stack *st);
const struct stack_config *stack_config(const struct stack *st);
int  stack_set_config(struct stack *st, const struct stack_config *cfg);
void stack_set_hook(struct stack *st, enum stack_hook hook,
		    stack_req_h *h, void *arg);
/* Admission of every request before anything else looks at it: h
 * returns false to drop it silently (no answer, no transaction),
 * counted in stack_stats.dropped. One gate; NULL removes it. */
typedef bool (stack_admit_h)(const struct sa *src, void *arg);
void stack_set_admit(struct stack *st, stack_admit_h *h, void *arg);
int  stack_debug(struct re_printf *pf, const struct stack *st);
/* The standard reason phrase of a status code (RFC 3261 §21) */
const char *stack_reason_phrase(uint16_t code);

/* Counters, for tests and the benchmark */
struct stack_stats {
	uint64_t requests;       /* requests received                 */
	uint64_t responses;      /* responses received                */
	uint64_t bad_requests;   /* answered 400 or dropped           */
	uint64_t replies;        /* responses sent                    */
	uint64_t hook_errors;    /* hooks that failed (500 sent)      */
	uint64_t dropped;        /* refused by the admission gate     */
};
void stack_stats(const struct stack *st, struct stack_stats *stats);

/* Cross-thread: run h(arg) on the loop thread. Safe from any thread.
 * Returns EAGAIN when the queue is full (the caller may retry). */
int  stack_call(struct stack *st, stack_call_h *h, void *arg);

/* Outgoing MESSAGE (RFC 3428). to is a SIP URI; resph gets the final
 * response (or err != 0: ETIMEDOUT, ECONNREFUSED...). headers are extra
 * header lines, each ending in CRLF, or NULL. */
int  stack_send_message(struct stack *st, const char *to, const char *from,
			const char *ctype, const uint8_t *body, size_t len,
			const char *headers, stack_resp_h *resph, void *arg);


/* ---------------------------------------------------------------------
 * Request (struct stack_req): a received request with its transaction
 * ------------------------------------------------------------------ */

const struct sip_msg *stack_req_msg(const struct stack_req *req);
/* The body of a message: at most Content-Length octets (RFC 3261 §18.3) */
void stack_msg_body(const struct sip_msg *msg, struct pl *body);
struct stack *stack_req_stack(const struct stack_req *req);
bool stack_req_answered(const struct stack_req *req);
/* headers: extra header lines each ending in CRLF, or NULL */
int  stack_req_reply(struct stack_req *req, uint16_t scode,
		     const char *reason, const char *headers,
		     const char *ctype, const uint8_t *body, size_t len);
/* The core's default answer for this request (OPTIONS capabilities,
 * 200 for MESSAGE, 405/501 otherwise). */
int  stack_req_default(struct stack_req *req);
struct stack_req *stack_req_ref(struct stack_req *req);  /* mem_ref  */
/* As stack_req_reply; *mbp (if given) gets the response sent */
int  stack_req_reply_mb(struct stack_req *req, uint16_t scode,
			const char *reason, const char *headers,
			const char *ctype, const uint8_t *body, size_t len,
			struct mbuf **mbp);
/* Send a response again (2xx to INVITE until the ACK) */
int  stack_req_resend(struct stack_req *req, struct mbuf *mb);
/* The request forms a dialog: replies copy Record-Route, and a CANCEL
 * calls cancelh (which must answer the request, e.g. 487) */
void stack_req_set_dialog(struct stack_req *req, sip_cancel_h *cancelh,
			  void *arg);
/* Create the server transaction now (the answer comes later) */
int  stack_req_keep(struct stack_req *req);


/* ---------------------------------------------------------------------
 * Dialog table (server/dialog.c): O(1) lookup by Call-ID + tags
 * ------------------------------------------------------------------ */

struct dialog_table;

int  dialog_table_alloc(struct dialog_table **tp, uint32_t buckets);
uint32_t dialog_table_count(const struct dialog_table *t);
struct dialog *dialog_table_find(const struct dialog_table *t,
				 const struct pl *callid,
				 const struct pl *ltag, const struct pl *rtag);
struct dialog_table *stack_dialogs(const struct stack *st);

/* A dialog is listed in its table from its creation until its last
 * reference goes. dialog_alloc() lists a bare identity (rtag may be
 * NULL: not yet known); EEXIST if listed. */
int  dialog_alloc(struct dialog **dlgp, struct dialog_table *t,
		  const struct pl *callid, const struct pl *ltag,
		  const struct pl *rtag);

/* UAS (RFC 3261 §12.1.1): from the INVITE; ltag is the To tag of our
 * responses, contact our Contact URI. Remote target from its Contact,
 * route set from its Record-Route. EBADMSG without a usable Contact. */
int  dialog_create_uas(struct dialog **dlgp, struct dialog_table *t,
		       struct stack *st, const struct sip_msg *req,
		       const char *ltag, const char *contact);

/* UAC (§12.1.2), before the INVITE goes out: local/remote are the From
 * and To name-addrs (without tags), target the Request-URI. The remote
 * tag, route set and target come with dialog_set_remote(). */
int  dialog_create_uac(struct dialog **dlgp, struct dialog_table *t,
		       struct stack *st, const char *callid, const char *ltag,
		       const char *local, const char *remote,
		       const char *target, const char *contact);
/* A 1xx with To tag or a 2xx: remote tag, reversed Record-Route,
 * Contact. EEXIST when the tag is another fork's (see dialog_fork). */
int  dialog_set_remote(struct dialog *dlg, const struct sip_msg *resp);
/* A new dialog for a response of another fork of orig's INVITE */
int  dialog_fork(struct dialog **dlgp, const struct dialog *orig,
		 const struct sip_msg *resp);
/* A target refresh (re-INVITE, UPDATE or their 2xx): new remote target */
int  dialog_target_refresh(struct dialog *dlg, const struct sip_msg *msg);
/* §12.2.2: EPROTO when the request's CSeq is not above the last one
 * (answer 500); ACK and CANCEL are exempt */
int  dialog_check_rseq(struct dialog *dlg, const struct sip_msg *req);
/* Build and send an in-dialog request (§12.2.1.1): Request-URI the
 * remote target, Route from the route set (loose or strict), CSeq
 * cseq or the next local one (0), Contact for target-refresh methods.
 * ACK is sent statelessly (no response). */
int  dialog_request(struct sip_request **reqp, struct dialog *dlg,
		    const char *met, uint32_t cseq, const char *hdrs,
		    const char *ctype, const uint8_t *body, size_t len,
		    sip_resp_h *resph, void *arg);

const char *dialog_callid(const struct dialog *dlg);
const char *dialog_ltag(const struct dialog *dlg);
const char *dialog_rtag(const struct dialog *dlg);
const char *dialog_local_uri(const struct dialog *dlg);
const char *dialog_remote_uri(const struct dialog *dlg);
const char *dialog_remote_target(const struct dialog *dlg);
const char *dialog_contact(const struct dialog *dlg);
uint32_t dialog_lseq(const struct dialog *dlg);
uint32_t dialog_rseq(const struct dialog *dlg);
bool dialog_is_uac(const struct dialog *dlg);
size_t dialog_route_count(const struct dialog *dlg);
const char *dialog_route(const struct dialog *dlg, size_t i);
/* The owner of a dialog gets its in-dialog requests (it answers them;
 * an ACK comes already "answered") and the responses no transaction
 * took (2xx retransmissions, other forks' answers to our INVITE). */
typedef void (dialog_req_h)(struct dialog *dlg, struct stack_req *req,
			    void *arg);
typedef void (dialog_resp_h)(struct dialog *dlg, const struct sip_msg *msg,
			     void *arg);
void dialog_set_handlers(struct dialog *dlg, dialog_req_h *reqh,
			 dialog_resp_h *resph, void *arg);
bool dialog_dispatch_request(struct dialog *dlg, struct stack_req *req);
bool dialog_dispatch_response(struct dialog *dlg, const struct sip_msg *msg);
/* The dialog state machine (owned by the dialog once set) */
struct fsm *dialog_fsm(const struct dialog *dlg);
void dialog_set_fsm(struct dialog *dlg, struct fsm *fsm);
int  dialog_debug(struct re_printf *pf, const struct dialog *dlg);


/* ---------------------------------------------------------------------
 * Call (server/call.c): an INVITE session, incoming or outgoing
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
};

typedef void (call_event_h)(struct call *call, const struct call_event *ev,
			    void *arg);
/* A new incoming call (100 Trying sent). Return false to refuse it
 * (480); true to take it: ring, answer or reject it later. */
typedef bool (call_incoming_h)(struct call *call, void *arg);

int  callmgr_alloc(struct callmgr **cmp, struct stack *st);
void callmgr_set_incoming(struct stack *st, call_incoming_h *h, void *arg);
/* Every call's high-level dialog events, for C users */
typedef void (dialog_event_h)(struct call *call, enum dialog_event ev,
			      void *arg);
void callmgr_set_dialog_handler(struct stack *st, dialog_event_h *h,
				void *arg);
uint32_t callmgr_count(const struct stack *st);
void callmgr_shutdown(struct callmgr *cm);
struct callmgr *stack_calls(const struct stack *st);

/* UAC: INVITE to (a SIP URI) from from (NULL: our address), with
 * extra header lines hdrs and a body; events go to eh. */
int  call_connect(struct call **callp, struct stack *st, const char *to,
		  const char *from, const char *hdrs, const char *ctype,
		  const uint8_t *body, size_t len, call_event_h *eh,
		  void *arg);
/* UAS: a provisional response 101..199 (180 Ringing, 183 with early
 * media); it carries our To tag and so makes the dialog early */
int  call_ringing(struct call *call, uint16_t code, const char *reason,
		  const char *hdrs, const char *ctype, const uint8_t *body,
		  size_t len);
/* UAS: 200, retransmitted until the ACK; no ACK in 64*T1: BYE and the
 * call ends with reason "Timeout" */
int  call_answer(struct call *call, const char *hdrs, const char *ctype,
		 const uint8_t *body, size_t len);
/* UAS: a final 300..699 */
int  call_reject(struct call *call, uint16_t code, const char *reason,
		 const char *hdrs);
/* UAC: CANCEL (sent once a provisional came, RFC 3261 §9.1) */
int  call_cancel(struct call *call);
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
bool call_is_outgoing(const struct call *call);
bool call_is_ended(const struct call *call);
bool call_is_answered(const struct call *call);
bool call_is_on_hold(const struct call *call);
const char *call_id(const struct call *call);
const char *call_end_reason(const struct call *call);
/* The INVITE, while it is being answered (NULL once ACKed) */
const struct sip_msg *call_invite(const struct call *call);
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
const char *sdp_answer_dir(const char *offer);
int  sdp_set_direction(char **outp, size_t *outlen, const char *sdp,
		       size_t len, const char *dir);

/* ---- LOCATION BEGIN ---- (the location store, server/location.c) */

/*
 * Bindings of RFC 3261 §10: address-of-record (AOR) -> contact URIs.
 *
 * The working set lives in memory on the loop thread (hash by AOR, a
 * min-heap by expiry); every read and every rule check is served from
 * it. Each change is also written to a backend by a writer thread that
 * groups the writes queued meanwhile into one transaction (group
 * commit); location_apply()'s done handler runs on the loop thread only
 * once the change is committed, so an answer sent from it is durable.
 *
 * Backends are named by a spec string: "memory:" (nothing persists, for
 * tests) or "sqlite:PATH" (one database file, WAL, synchronous=FULL,
 * table `bindings`, schema version in PRAGMA user_version). Others
 * (Redis...) implement struct loc_backend and use
 * location_open_backend().
 *
 * Times are unix time in milliseconds (wall clock, since they persist);
 * q-values are in thousandths (1000 = q 1.0). All functions run on the
 * loop thread that opened the store.
 */
struct location;
struct loc_set;

/* One binding. Read-only for users; strings are NUL-terminated, NULL
 * when absent. A binding handed out in a struct loc_set never changes:
 * a refresh replaces it by a new one. */
struct loc_binding {
	const char *aor;        /* canonical AOR, see location_aor()      */
	const char *contact;    /* Contact URI as registered, without <>  */
	uint64_t expires_at;    /* unix ms                                */
	uint64_t updated_at;    /* unix ms of the REGISTER that set it    */
	uint16_t q;             /* 0..1000                                */
	const char *callid;     /* Call-ID of that REGISTER               */
	uint32_t cseq;          /* and its CSeq number                    */
	const char *instance;   /* +sip.instance (RFC 5626), unquoted     */
	uint32_t reg_id;        /* reg-id (RFC 5626), 0 = none            */
	const char *path;       /* Path values (RFC 3327) in order, ","   */
	const char *received;   /* source: "sip:IP:PORT", plus
				 * ";transport=tcp|tls" when not UDP      */
	const char *user_agent; /* User-Agent                             */
};

/* One Contact of a REGISTER, as the registrar parsed it */
struct loc_contact {
	struct pl uri;          /* Contact URI, without <>                */
	uint32_t expires;       /* seconds, already clamped; 0 = remove   */
	uint16_t q;             /* 0..1000                                */
	struct pl instance;     /* +sip.instance value or unset           */
	uint32_t reg_id;        /* 0 = none (ignored without instance)    */
};

/* The change set of one REGISTER for one AOR. Every field is copied by
 * location_apply(); none needs to outlive the call. */
struct loc_change {
	struct pl aor;          /* canonical AOR (location_aor())         */
	struct pl callid;       /* Call-ID of the REGISTER                */
	uint32_t cseq;          /* its CSeq number                        */
	bool wildcard;          /* Contact: * (with Expires: 0): remove
				 * every binding; contactc must be 0      */
	const struct loc_contact *contactv;
	size_t contactc;        /* 0 and !wildcard: a query               */
	struct pl path;         /* Path values joined by ",", or unset    */
	struct pl received;     /* source address (see loc_binding)       */
	struct pl user_agent;   /* User-Agent or unset                    */
};

struct location_config {
	uint32_t buckets;       /* AOR hash buckets (65536)               */
	uint32_t batch_max;     /* writes per transaction, at most (2048) */
	uint32_t purge_ms;      /* period of the expiry purge (1000)      */
	uint32_t max_bindings;  /* per AOR; 0 = no limit (0)              */
};

struct location_stats {
	uint64_t aors;          /* AORs in memory                         */
	uint64_t bindings;      /* bindings in memory (some may be expired
				 * and not purged yet)                    */
	uint64_t pending;       /* writes handed to the writer, not done  */
	uint64_t commits;       /* transactions committed                 */
	uint64_t ops;           /* writes committed                       */
	uint64_t failed;        /* writes whose transaction failed        */
	uint64_t expired;       /* bindings purged by expiry              */
	uint64_t stale;         /* AORs waiting to be reloaded            */
};

/* err: 0 when the change is committed, else why not (set is NULL);
 * set: the AOR's bindings as this change left them (valid during the
 * call; mem_ref() it to keep it). */
typedef void (loc_done_h)(int err, const struct loc_set *set, void *arg);

/* Fills cfg with the defaults above */
void location_config_default(struct location_config *cfg);

/* Opens the store named by spec ("memory:" or "sqlite:PATH"), loads
 * every binding from it and starts the writer thread and the expiry
 * purge. cfg NULL: defaults. ENOTSUP: unknown backend or a database of
 * a newer schema version. Freed with mem_deref(): pending writes are
 * committed first and their done handlers called (see location_apply). */
int  location_open(struct location **locp, const char *spec,
		   const struct location_config *cfg);

/* RFC 3261 §10.3 step 5: the AOR of a To URI, written to *aorp (a
 * mem-allocated string): "scheme:user@host[:port]" with scheme and host
 * lowercased, user kept as is (case-sensitive), port only if given, no
 * parameters or headers. ENOTSUP: not a sip or sips URI; EINVAL: no
 * host. */
int  location_aor(char **aorp, const struct uri *uri);

/* Applies one REGISTER's change set to its AOR (RFC 3261 §10.3 steps
 * 6-7): for each contact, the binding that matches it (same
 * +sip.instance and reg-id, or an equal URI per RFC 3261 §19.1.4) is
 * added, refreshed, or removed when expires is 0; expired bindings of
 * the AOR go too. Memory is updated at once (lookups see it); the
 * writes go to the writer thread, and doneh(0, set, arg) runs on the
 * loop thread once they are committed (always after this call has
 * returned, never from inside it; done handlers run in the order of
 * the location_apply() calls). A query (no contact, no wildcard) still
 * waits for the writes queued before it, so that what it reports is
 * durable.
 *
 * Returns 0 and doneh will be called exactly once (at the latest when
 * the store is freed), or an error and doneh is never called:
 *   EINVAL     bad arguments (aor, callid or a contact URI missing,
 *              q > 1000, wildcard with contacts)
 *   EPROTO     a binding to change has the request's Call-ID and a
 *              CSeq not lower than the request's: the request is out
 *              of order or replayed (§10.3 step 7); nothing changed
 *   EOVERFLOW  more bindings than max_bindings would result
 *   EBUSY      a commit for this AOR failed and it is being reloaded
 *              from the backend; try again shortly
 *   ENOMEM
 * doneh's err: 0, or the backend's error (EIO, ENOSPC, EBUSY...) when
 * the transaction holding the change failed; the AOR is then reloaded
 * from the backend, and changes to it already in flight also report
 * EIO (they were computed from a state that was never stored). */
int  location_apply(struct location *loc, const struct loc_change *chg,
		    loc_done_h *doneh, void *arg);

/* The current (not expired) bindings of aor, ordered by q descending,
 * then most recently updated first: a snapshot, mem-allocated in
 * *setp, empty when aor has none. Reads memory only. */
int  location_lookup(struct loc_set **setp, struct location *loc,
		     const char *aor);

/* Called on the loop thread around the done handlers of one group
 * commit: bh(false, arg) before the first, bh(true, arg) after the
 * last. A user that answers from its done handlers can send those
 * answers together (the registrar: sendmmsg, see registrar_alloc). */
typedef void (loc_batch_h)(bool end, void *arg);

/* Sets the store's batch hook (NULL: none, the default). One per store:
 * a later call replaces it. It must stay callable as long as the store
 * lives (done handlers run until the store is freed). */
void location_set_batch(struct location *loc, loc_batch_h *bh, void *arg);

/* Counters and sizes, for tests and the benchmark */
void location_stats(const struct location *loc, struct location_stats *st);
/* Unix time in milliseconds, the clock of expires_at and updated_at */
uint64_t location_clock(void);
int  location_debug(struct re_printf *pf, const struct location *loc);

/* A set of bindings of one AOR (from location_lookup() or loc_done_h).
 * Immutable; it holds its bindings, which stay valid while it lives. */
const char *loc_set_aor(const struct loc_set *set);
size_t loc_set_count(const struct loc_set *set);
/* i-th binding, in the set's order; NULL past the end */
const struct loc_binding *loc_set_binding(const struct loc_set *set,
					  size_t i);
int  loc_set_debug(struct re_printf *pf, const struct loc_set *set);

/* Seconds left before b expires at time now (unix ms), rounded up;
 * 0 when expired. */
uint32_t loc_binding_expires(const struct loc_binding *b, uint64_t now);
int  loc_binding_debug(struct re_printf *pf, const struct loc_binding *b);

/*
 * Backend interface, for stores other than the built-in ones. A backend
 * sees plain C data only (struct loc_binding, strings valid during the
 * call). open, and load with aor == NULL, run on the loop thread inside
 * location_open(); apply and load of one AOR run on the writer thread;
 * close runs on the loop thread after the writer has stopped. Never two
 * at a time, so a backend needs no locking of its own; it must not use
 * libre's mem_* objects across those threads (use malloc).
 */
enum loc_op_type {
	LOC_OP_UPSERT = 0,      /* insert or replace (aor, contact)       */
	LOC_OP_DELETE,          /* delete (aor, contact); other fields 0  */
};

struct loc_op {
	enum loc_op_type type;
	struct loc_binding b;
};

/* Return non-zero to stop the load with that error */
typedef int (loc_row_h)(const struct loc_binding *b, void *arg);

struct loc_backend {
	const char *name;
	/* arg: the spec after "name:"; *statep is passed to the others */
	int  (*open)(void **statep, const char *arg);
	/* rowh for every stored binding of aor, or of all AORs (NULL) */
	int  (*load)(void *state, const char *aor, loc_row_h *rowh,
		     void *arg);
	/* all of opv in one transaction, in order: all or nothing */
	int  (*apply)(void *state, const struct loc_op *opv, size_t opc);
	/* optional: message of the last failure, for the log */
	const char *(*errmsg)(void *state);
	void (*close)(void *state);
};

/* location_open() with a backend of the caller's (be must outlive the
 * store); arg is passed to be->open. */
int  location_open_backend(struct location **locp,
			   const struct loc_backend *be, const char *arg,
			   const struct location_config *cfg);

/* ---- LOCATION END ---- */


/* ---- REGISTRAR BEGIN ---- (REGISTER processing, server/registrar.c) */

/*
 * RFC 3261 §10.3 on top of the location store, independent of Lua.
 * Authentication, authorisation and the choice of domains (steps 1-4)
 * are the caller's: it calls registrar_handle() once it has decided to
 * accept the REGISTER. The registrar then parses To, Contact, Expires,
 * Path, applies the change to the store and answers the request itself
 * (stack_req_reply) - the 200 only once the change is committed:
 *
 *   400  malformed To, Contact (URI, q, expires, reg-id), Expires,
 *        Path, "*" misused, more than 64 Contacts; the reason phrase
 *        names the field ("Invalid Contact q", "Invalid Expires", ...)
 *   423  an expiry below min_expires (0 excepted, and an hour or more
 *        is never too brief, §10.3 step 7), with Min-Expires
 *   403  more bindings than the store's max_bindings
 *   500  "Out of Order CSeq": a binding it would change carries the
 *        same Call-ID and a CSeq not lower (§10.3 step 7 says the
 *        request "fails" without naming a code; we answer 500 like an
 *        aborted update, where Kamailio/OpenSIPS answer 200 and change
 *        nothing); 500 also when the commit failed
 *   503  the AOR is being reloaded after a failed commit (Retry-After)
 *   200  one "Contact: <uri>;expires=N" per current binding (with q when
 *        not 1, +sip.instance and reg-id when stored), a Date header,
 *        and the request's Path when the UA listed "path" in Supported
 *        (RFC 3327 §5.3). No Contact in the request: a query, answered
 *        the same way.
 */
struct registrar;

struct registrar_config {
	uint32_t min_expires;     /* 423 below this, 0 excepted (60)     */
	uint32_t max_expires;     /* longer expiries are clamped (86400) */
	uint32_t default_expires; /* no Expires and no param (3600)      */
};

/* The request has been answered with scode (0 if no answer could be
 * sent; err says why). set: the AOR's bindings after a 200, else NULL;
 * valid during the call. Never called from inside registrar_handle(). */
typedef void (registrar_done_h)(int err, uint16_t scode,
				const struct loc_set *set, void *arg);

void registrar_config_default(struct registrar_config *cfg);

/* A registrar on loc (referenced). cfg NULL: defaults; EINVAL when
 * min_expires > max_expires or default_expires is 0. Sets loc's batch
 * hook (location_set_batch) so that the replies of one group commit
 * leave together over UDP (sendmmsg); the hook holds no state and
 * stays set when the registrar is freed. */
int  registrar_alloc(struct registrar **regp, struct location *loc,
		     const struct registrar_config *cfg);

/* Processes REGISTER req (see above) and answers it. Holds a reference
 * on req (and on reg) until the answer is sent. Returns 0 when the
 * request has been taken: it is answered now or later, and doneh (may
 * be NULL) is called exactly once afterwards. EINVAL (not a REGISTER,
 * NULL argument) or EALREADY (already answered): nothing was sent. */
int  registrar_handle(struct registrar *reg, struct stack_req *req,
		      registrar_done_h *doneh, void *arg);

struct location *registrar_location(const struct registrar *reg);
const struct registrar_config *registrar_config(const struct registrar *reg);
int  registrar_debug(struct re_printf *pf, const struct registrar *reg);

/* ---- REGISTRAR END ---- */


/* ---- AUTH BEGIN ---- (SIP digest authentication, server/auth.c) */

/*
 * Server-side Digest authentication (RFC 7616, RFC 8760 for SHA-256 in
 * SIP, RFC 3261 §22) against the `users` table of the SQLite database
 * that also holds the location store. Everything runs on the loop thread.
 *
 * A REGISTER hook typically does:
 *
 *   struct auth_result ar;
 *   if (auth_require(a, req, false, &ar))
 *           return true;            // answered: 401, 403, 400 (or 500)
 *   ... ar.user is authenticated ...
 *
 * Outcomes of auth_check(), and what auth_require() answers:
 *   AUTH_OK              credentials verified                  (caller)
 *   AUTH_NO_CREDENTIALS  none for our realm / algorithms, or a nonce
 *                        that is not ours (malformed, bad MAC, another
 *                        realm's): checked before any password, so a
 *                        made-up nonce tells nothing     401/407 (fresh)
 *   AUTH_STALE           correct response to one of our nonces that is
 *                        expired, evicted from the nc table, or issued
 *                        before this process started   401/407 stale=true
 *   AUTH_REPLAY          correct response, nc not above the highest
 *                        seen for that nonce (logged ev=auth_replay)
 *                                                  401/407 stale=true
 *   AUTH_FAILED          wrong password, unknown user (the same result,
 *                        same cost), digest uri != Request-URI, or
 *                        refused unchecked by the guard (banned source,
 *                        slowed user)
 *                        (logged ev=auth_failed user= src= reason=) 403
 *   AUTH_BAD             malformed Digest credentials (ours, or whose
 *                        realm cannot be read), or qop absent (RFC 2069
 *                        style: we always send qop="auth")
 *                        (logged ev=auth_bad)                       400
 * A response that is wrong is always FAILED, never STALE, whatever the
 * state of its nonce (RFC 7616 §3.3). FAILED and BAD count against the
 * source address and the user name in the guard (struct authguard).
 * The log lines of FAILED, BAD and REPLAY are flood-limited (slog_src).
 *
 * Nonces are MACed with a secret kept in the users database (table
 * `secrets`, made once), so they stay ours across a restart: a client
 * whose server restarted gets stale=true and recovers without a prompt.
 *
 * Interop: libre 1.1.0's own client (sip_auth, hence baresip on it)
 * fails with ENOSYS on ANY challenge that has a SHA-256 header, even
 * when an MD5 one follows. Set auth_config.algs = AUTH_ALG_MD5 to serve
 * such clients.
 */
struct auth;
struct auth_users;
struct authguard;
struct authguard_config;

enum auth_alg {
	AUTH_ALG_MD5    = 1u << 0,
	AUTH_ALG_SHA256 = 1u << 1,
};

enum auth_status {
	AUTH_OK = 0,
	AUTH_NO_CREDENTIALS,
	AUTH_STALE,
	AUTH_FAILED,
	AUTH_REPLAY,
	AUTH_BAD,
};

enum {
	AUTH_USER_MAX   = 128,     /* user names: 1..127 bytes            */
	AUTH_NONCE_TTL  = 300,     /* s, default nonce lifetime           */
	AUTH_NONCES_MAX = 100000,  /* default size of the nc table        */
};

struct auth_config {
	const char *realm;     /* default "sipstack"; no '"' or '\'         */
	uint32_t nonce_ttl;    /* s, nonce lifetime (AUTH_NONCE_TTL)        */
	uint32_t max_nonces;   /* nonces tracked for nc (AUTH_NONCES_MAX);
				* the oldest is evicted (then stale)       */
	unsigned algs;         /* AUTH_ALG_* offered and accepted; default
				* both, challenged SHA-256 first           */
	const struct authguard_config *guard;  /* limits on guessing;
				* NULL: authguard_config_default()       */
	bool no_guard;         /* no limits at all (tests, labs)           */
};

struct auth_result {
	enum auth_status status;
	enum auth_alg alg;           /* algorithm of the credentials used  */
	char user[AUTH_USER_MAX];    /* username given ("" if none), may be
				      * truncated: for logs; valid on OK   */
	const char *reason;          /* short static string for logs, e.g.
				      * "wrong_password", "unknown_user",
				      * "uri_mismatch", "nonce_expired",
				      * "nc_replay", "qop_missing"         */
};

/* Users store. auth_users_open() opens (creates) dbpath in WAL mode with
 * a busy timeout, creates the users table (username TEXT PRIMARY KEY,
 * realm, ha1_md5, ha1_sha256, created_at; never a password), loads the
 * cache and polls PRAGMA data_version every second on a libre timer, so
 * that writes by other processes (`sipstack user add`) are seen within a
 * second without a disk read per request. */
typedef int (auth_user_h)(const char *user, const char *realm,
			  int64_t created_at, void *arg);

int  auth_users_open(struct auth_users **up, const char *dbpath);
/* Stores both HA1s of user (replacing any previous row); realm NULL is
 * "sipstack". EINVAL for an empty or over-long name/realm/password or
 * one with control characters, '"' or '\'. */
int  auth_user_add(struct auth_users *up, const char *user,
		   const char *realm, const char *password);
/* ENOENT if there is no such user */
int  auth_user_del(struct auth_users *up, const char *user);
/* Calls h for each row, from the database, by name; a non-zero return
 * from h stops the walk and is returned. */
int  auth_user_list(struct auth_users *up, auth_user_h *h, void *arg);
uint32_t auth_users_count(const struct auth_users *up);  /* cached   */
/* Reloads the cache now if another connection changed the database
 * (what the one-second timer does). */
int  auth_users_refresh(struct auth_users *up);
int  auth_users_debug(struct re_printf *pf, const struct auth_users *up);

/* `sipstack user add USER PASSWORD [--realm R] [--db PATH]`,
 * `... del USER [--db PATH]`, `... list [--db PATH]`; argv[0] is "user".
 * PASSWORD "-" reads it from stdin. Needs no libre_init(). Returns the
 * exit code: 0 ok, 1 error, 2 usage. */
int  auth_user_cli(int argc, char *argv[]);

/* The verifier; takes a reference on users (which may be NULL: every
 * user is then unknown). cfg NULL: auth_config_default(). */
void auth_config_default(struct auth_config *cfg);
int  auth_alloc(struct auth **ap, struct auth_users *users,
		const struct auth_config *cfg);
const char *auth_realm(const struct auth *a);
uint32_t auth_nonces(const struct auth *a);   /* nonces in the nc table */
struct authguard *auth_guard(const struct auth *a);  /* NULL: none  */
const char *auth_alg_name(enum auth_alg alg);        /* "SHA-256"     */
const char *auth_status_name(enum auth_status st);   /* "replay"      */

/* Writes the challenge header lines (WWW-Authenticate, or
 * Proxy-Authenticate when proxy), one per algorithm, SHA-256 first, each
 * ending in CRLF, with a fresh nonce, qop="auth" and stale=true if
 * stale. */
int  auth_challenge_encode(struct mbuf *mb, struct auth *a, bool proxy,
			   bool stale);
/* Answers req 401 (or 407 when proxy) with those headers */
int  auth_challenge(struct auth *a, struct stack_req *req, bool proxy,
		    bool stale);
/* Verifies msg's Authorization (or Proxy-Authorization when proxy)
 * headers: the one for our realm with a supported algorithm (SHA-256 if
 * both), Digest only, other realms ignored. Fills res; returns 0 even
 * when the credentials fail, an errno only if it could not check.
 * Advances the nonce-count of the nonce on AUTH_OK. */
int  auth_check(struct auth *a, const struct sip_msg *msg, bool proxy,
		struct auth_result *res);
/* The policy: auth_check(), then 0 if authenticated; otherwise it
 * answers req as in the table above, logs, and returns EAUTH (or the
 * errno of a failed check or reply, after trying to answer 500). res
 * may be NULL. */
int  auth_require(struct auth *a, struct stack_req *req, bool proxy,
		  struct auth_result *res);
int  auth_debug(struct re_printf *pf, const struct auth *a);

/* Client side: the Authorization (or, for a 407, Proxy-Authorization)
 * header line answering the first challenge of resp we support (SHA-256
 * or MD5, in the server's order; qop=auth or none), for method and
 * Request-URI uri. *hdrp is a mem string ending in CRLF. *stale (may be
 * NULL) tells whether the challenge said stale=true. EPROTONOSUPPORT
 * when no challenge can be answered. */
int  auth_client_answer(char **hdrp, const struct sip_msg *resp,
			const char *met, const char *uri, const char *user,
			const char *password, bool *stale);
/* ---- AUTH END ---- */


/* ---- AUTHGUARD BEGIN ---- (limits on guessing, server/authguard.c) */

/*
 * What the verifier saw fail, per source address and per user name,
 * and the bans that follow (the policy is told at the top of
 * server/authguard.c and for users in docs/lua-api.md). A banned
 * address is dropped at the door: set authguard_admit as the stack's
 * admission gate (stack_set_admit) with the guard as arg.
 */
enum {
	AUTHGUARD_SRC_FAILURES   = 10,     /* failures that ban an address */
	AUTHGUARD_WINDOW         = 600,    /* s, buckets drain per window   */
	AUTHGUARD_BAN_TIME       = 900,    /* s, first ban (then doubled)   */
	AUTHGUARD_USER_FAILURES  = 20,     /* before a user is slowed       */
	AUTHGUARD_USER_DELAY_MAX = 60,     /* s, longest slow-down          */
	AUTHGUARD_MAX_ENTRIES    = 65536,  /* per table                     */
};

struct authguard_config {
	uint32_t src_failures;    /* 0: never ban                          */
	uint32_t window;          /* s                                     */
	uint32_t ban_time;        /* s                                     */
	uint32_t user_failures;   /* 0: never slow a user                  */
	uint32_t user_delay_max;  /* s                                     */
	uint32_t max_entries;
};

struct authguard_stats {
	uint64_t failures;        /* failures reported                     */
	uint64_t bans, unbans;
	uint64_t dropped;         /* requests of banned addresses dropped  */
	uint64_t slowed;          /* attempts refused unchecked (slowed)   */
	uint64_t untracked;       /* new addresses not tracked (all bans)  */
	uint32_t banned;          /* addresses banned now                  */
};

/* remaining: s left; failures: those that led to it; bans: how many
 * times this address was banned (this one included) */
typedef int (authguard_ban_h)(const struct sa *addr, uint32_t remaining,
			      uint32_t failures, uint32_t bans, void *arg);

void authguard_config_default(struct authguard_config *cfg);
int  authguard_alloc(struct authguard **gp,
		     const struct authguard_config *cfg);
bool authguard_banned(struct authguard *g, const struct sa *src);
/* stack_admit_h: false (drop) for a banned address */
bool authguard_admit(const struct sa *src, void *arg);
/* May user be checked now for src? false: slowed, refuse unchecked */
bool authguard_user_allowed(struct authguard *g, const struct sa *src,
			    const struct pl *user);
/* A failure from src for user (user may be NULL or empty); checked:
 * the password was checked (counts for the user too) */
void authguard_failed(struct authguard *g, const struct sa *src,
		      const struct pl *user, bool checked);
void authguard_succeeded(struct authguard *g, const struct sa *src,
			 const struct pl *user);
/* Current bans, soonest end first */
int  authguard_bans(const struct authguard *g, authguard_ban_h *h,
		    void *arg);
int  authguard_unban(struct authguard *g, const struct sa *addr); /* ENOENT */
void authguard_stats(const struct authguard *g, struct authguard_stats *st);
int  authguard_debug(struct re_printf *pf, const struct authguard *g);
/* ---- AUTHGUARD END ---- */


/* ---- REGCLIENT BEGIN ---- (client registration, server/regclient.c) */

/*
 * One AOR registered at one registrar (RFC 3261 §10.2), kept registered
 * until regclient_unregister() or mem_deref(). Everything runs on the
 * loop thread; every REGISTER leaves from a timer of the loop, so
 * regclient_register() may be called before stack_start() (the first
 * REGISTER goes out once the loop runs) and resulth is never called from
 * inside a regclient_*() call.
 *
 *  - One Call-ID for the life of the registration, CSeq + 1 for each
 *    REGISTER (§10.2.4). The registrar URI is resolved per RFC 3263
 *    (NAPTR, SRV, A) by libre, which fails over to the next target on a
 *    transport error, a timeout (Timer F, 32 s) or a 503.
 *  - 2xx: registered for the granted expiry, which is the expires
 *    parameter of our Contact in the response, else its Expires header,
 *    else what we asked for; refreshed at
 *    granted - max(granted/10, min(32 s, granted/2)): at 90% of a long
 *    expiry, but early enough that a refresh timing out (Timer F)
 *    still ends before the binding does, and never later than half-way.
 *    A 2xx that grants 0 is a failure ("not bound").
 *  - 401/407: answered once per challenge with user and password
 *    (Digest MD5 only: libre's sip_auth). A new challenge for the same
 *    realm right after we answered one (without stale=true), a
 *    challenge for another algorithm (SHA-256), no password, or more
 *    than 3 challenges in one attempt: failure "auth failed", no loop.
 *  - 423: sent again at once asking for its Min-Expires (kept for the
 *    refreshes), at most 3 times in one attempt.
 *  - Any other failure (a final response >= 300, a transport error):
 *    the next attempt comes after retry_min s, doubling with each
 *    failure in a row up to retry_max s; a success resets it.
 *  - Each outcome calls resulth once: a success, a failure (then the
 *    retry is already scheduled), or the end of an unregistration.
 *  - mem_deref() sends nothing: the binding stays at the registrar
 *    until it expires. To remove it, regclient_unregister() first.
 */
struct regclient;

struct regclient_params {
	const char *registrar;  /* Request-URI: sip:HOST[:PORT][;params]
				 * (required; sips: is not routable with
				 * libre 1.1.0)                              */
	const char *aor;        /* To and From; NULL: sip:USER@HOST of the
				 * registrar URI                             */
	const char *user;       /* digest user name, and the user part of a
				 * default Contact; NULL: the AOR's user     */
	const char *password;   /* NULL: a challenge fails ("auth failed")  */
	const char *contact;    /* our Contact URI; NULL: the address of
				 * the stack's listener of the transport the
				 * REGISTER leaves on (stack_local_uri), with
				 * the user as its user part                 */
	uint32_t expires;       /* asked for, s (0: 3600)                   */
	uint32_t retry_min;     /* first retry after a failure, s (0: 30)   */
	uint32_t retry_max;     /* longest retry interval, s (0: 600)       */
};

/* success: a 2xx. expires: the granted expiry, 0 on failure and after an
 * unregistration. scode: the final response's code, 0 when none came.
 * reason: the response's reason phrase (cut to 63 bytes), or one of the
 * short strings "auth failed", "not bound", "timeout", "refused",
 * "no address", "transport not supported", "shutdown", "failed".
 * Valid during the call. The handler may call regclient_*() on rc or
 * mem_deref() it. */
typedef void (regclient_result_h)(bool success, uint32_t expires,
				  uint16_t scode, const char *reason,
				  void *arg);

/* Starts registering (see above). EINVAL: no registrar, a registrar,
 * AOR or contact that is not a SIP URI, or neither AOR nor user;
 * EPROTONOSUPPORT: a sips: registrar. */
int  regclient_register(struct regclient **rcp, struct stack *st,
			const struct regclient_params *p,
			regclient_result_h *resulth, void *arg);
/* Applies new parameters to a running registration, keeping its
 * Call-ID: if any differs, a REGISTER goes out at once (replacing one in
 * flight); a changed contact removes the old one in that REGISTER
 * (Contact: <old>;expires=0). Unchanged parameters: nothing is sent.
 * EINVAL: another registrar or AOR (that is another registration);
 * EALREADY: being unregistered. */
int  regclient_update(struct regclient *rc, const struct regclient_params *p);
/* Stops refreshing and sends REGISTER with Contact: <ours>;expires=0
 * (replacing a REGISTER in flight, whose late arrival the registrar's
 * CSeq check discards); its outcome goes to resulth, with no retry.
 * EALREADY when already called. */
int  regclient_unregister(struct regclient *rc);
bool regclient_registered(const struct regclient *rc);
uint32_t regclient_expires(const struct regclient *rc);  /* granted, s */
uint32_t regclient_failures(const struct regclient *rc); /* in a row  */
const char *regclient_callid(const struct regclient *rc);
int  regclient_debug(struct re_printf *pf, const struct regclient *rc);

/* ---- REGCLIENT END ---- */

/* ---- CALLFSM BEGIN ---- (dialog and call FSMs, server/callfsm.c) */

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
 * callmgr_alloc() does for all four: a mismatch fails stack_alloc()
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
