/**
 * server/events/events.h  Subscriptions (RFC 6665): the public C API
 *
 * SUBSCRIBE and NOTIFY in both roles, as dialog usages (RFC 5057) on
 * the core's dialogs. A struct sub is one subscription:
 *  - as notifier, made by a SUBSCRIBE for a package someone listens to
 *    (events_listen); the owner answers it (sub_accept / sub_reject)
 *    and sends its state (sub_notify). Refreshes, un-SUBSCRIBE
 *    (Expires: 0), expiry with its final NOTIFY, and a subscriber gone
 *    (481, timeout) are the core's;
 *  - as subscriber, made by sub_subscribe(); every NOTIFY reaches the
 *    owner as an event. Forked NOTIFYs (several notifiers, one dialog
 *    each) and a NOTIFY before the 2xx are the core's, and so are the
 *    refreshes before expiry and sub_unsubscribe().
 * The events service (one per stack, started with events_start) holds
 * every live subscription; the owner holds its own reference. Packages
 * nobody listens to get 489 with Allow-Events (RFC 6665 §8.2.2).
 * Everything runs on the stack's loop thread.
 */
#ifndef SIPSTACK_EVENTS_H
#define SIPSTACK_EVENTS_H

struct stack;
struct stack_req;
struct sub;
struct evpkg;

enum sub_state {
	SUB_PENDING = 0,
	SUB_ACTIVE,
	SUB_TERMINATED,
};

enum sub_ev_type {
	SUB_EV_ANSWER = 0,   /* subscriber: the final answer to the first
			      * SUBSCRIBE (scode, or err)              */
	SUB_EV_NOTIFY,       /* subscriber: a NOTIFY (state, reason,
			      * body, fork)                            */
	SUB_EV_REFRESH,      /* notifier: a refresh (expires)          */
	SUB_EV_CLOSED,       /* either: the subscription ended (reason) */
};

struct sub_event {
	enum sub_ev_type type;
	int err;                 /* ANSWER: ETIMEDOUT... when no answer  */
	uint16_t scode;          /* ANSWER: its status code              */
	const char *reason;      /* ANSWER: reason phrase; NOTIFY:
				  * Subscription-State's reason or "";
				  * CLOSED: why ("timeout", "noresource",
				  * "rejected", "unsubscribed"...)       */
	enum sub_state state;    /* NOTIFY                               */
	uint32_t expires;        /* NOTIFY, REFRESH: seconds left        */
	const char *ctype;       /* NOTIFY: Content-Type or ""           */
	const uint8_t *body;     /* NOTIFY                               */
	size_t len;
	const char *fork;        /* NOTIFY: the notifier's tag (forks)   */
	uint16_t frag_code;      /* NOTIFY of a REFER: the status line of
				  * its message/sipfrag body (0: none)   */
	const char *frag_reason; /* and its reason phrase ("" if none)   */
};

typedef void (sub_event_h)(struct sub *sub, const struct sub_event *ev,
			   void *arg);
/* A new subscription of a package: the owner takes a reference (or
 * not) and answers it now or later; unanswered, it is rejected with
 * 500 when the service stops. */
typedef void (evpkg_h)(struct sub *sub, void *arg);

enum {
	EVENTS_EXPIRES_DEFAULT = 3600,  /* SUBSCRIBE without Expires     */
	EVENTS_EXPIRES_MIN     = 60,    /* below it (but 0): 423         */
};

/* The service of st (idempotent). */
int  events_start(struct stack *st);
/* Listen to a package ("presence", "message-summary"...): its
 * SUBSCRIBEs go to h. A subscriber asking for less than min_expires
 * (but 0) gets 423 (0: EVENTS_EXPIRES_MIN); max_expires caps what it
 * gets (0: EVENTS_EXPIRES_DEFAULT). EALREADY if someone listens to it.
 * mem_deref(*pp) stops listening (live subscriptions go on). */
int  events_listen(struct evpkg **pp, struct stack *st, const char *package,
		   uint32_t min_expires, uint32_t max_expires, evpkg_h *h,
		   void *arg);
/* Subscriptions alive (both roles) */
uint32_t events_count(const struct stack *st);

/* ---- notifier ---- */

/* 200 with Expires (the requested value capped by the package's max;
 * expires 0 keeps the requested one); the first NOTIFY goes when the
 * loop is next idle unless sub_notify() sent one first (state active,
 * no body). */
int  sub_accept(struct sub *sub, uint32_t expires);
int  sub_reject(struct sub *sub, uint16_t code, const char *reason,
		const char *hdrs);
/* A NOTIFY with Subscription-State state (reason: for terminated, e.g.
 * "noresource"; may be NULL). One is in flight at a time; a newer state
 * replaces one still waiting. SUB_TERMINATED ends the subscription. */
int  sub_notify(struct sub *sub, enum sub_state state, const char *reason,
		const char *ctype, const uint8_t *body, size_t len);
/* The SUBSCRIBE that made it (NULL once answered) */
const struct sip_msg *sub_request(const struct sub *sub);

/* ---- subscriber ---- */

struct sub_opts {
	uint32_t expires;        /* 0: EVENTS_EXPIRES_DEFAULT            */
	const char *from;        /* From URI; NULL: our local URI        */
	const char *accept;      /* Accept header value, or NULL         */
	const char *hdrs;        /* extra header lines (CRLF each)       */
	const char *user;        /* digest credentials for a 401/407,    */
	const char *password;    /* or NULL: a challenge is a refusal    */
};

int  sub_subscribe(struct sub **subp, struct stack *st, const char *uri,
		   const char *event, const struct sub_opts *opts,
		   sub_event_h *h, void *arg);
/* SUBSCRIBE with Expires: 0 to every notifier; closed at the final
 * NOTIFY (or after 64*T1). EALREADY when ending already. */
int  sub_unsubscribe(struct sub *sub);

/* ---- REFER (RFC 3515): its implicit subscription ---- */

/* An incoming REFER, in dlg (a dialog of ours, e.g. a call's) or out
 * of dialog (dlg NULL: it makes a dialog of its own): answers 202 and
 * makes the implicit subscription (event refer;id=<its CSeq>), whose
 * first NOTIFY (100 Trying, unless sub_refer_notify sends another
 * first) goes when the loop is next idle. With "Refer-Sub: false"
 * (RFC 4488) the 202 says so too and *subp is NULL. EBADMSG (answered
 * 400) without exactly one Refer-To. */
int  sub_refer_accept(struct sub **subp, struct stack_req *req,
		      struct dialog *dlg, sub_event_h *h, void *arg);
/* A NOTIFY of a REFER's progress: message/sipfrag "SIP/2.0 code
 * reason"; 1xx keep it active, a final one terminates it (noresource) */
int  sub_refer_notify(struct sub *sub, uint16_t code, const char *reason);
/* An outgoing REFER in dlg (a call's) to refer_to (a URI, which may
 * carry ?Replaces=...); hdrs: extra lines (Referred-By...). The answer
 * is SUB_EV_ANSWER, the progress SUB_EV_NOTIFY with frag_code; it ends
 * at a final sipfrag. */
int  sub_refer(struct sub **subp, struct stack *st, struct dialog *dlg,
	       const char *refer_to, const char *hdrs, sub_event_h *h,
	       void *arg);

/* ---- both ---- */

void sub_set_handler(struct sub *sub, sub_event_h *h, void *arg);
bool sub_is_notifier(const struct sub *sub);
bool sub_is_closed(const struct sub *sub);
const char *sub_event_package(const struct sub *sub);   /* "presence" */
const char *sub_event_id(const struct sub *sub);        /* id or ""   */
const char *sub_callid(const struct sub *sub);
const char *sub_from(const struct sub *sub);   /* subscriber's URI    */
const char *sub_to(const struct sub *sub);     /* notifier's URI      */
enum sub_state sub_state(const struct sub *sub);
uint32_t sub_expires(const struct sub *sub);    /* seconds left       */
const char *sub_state_name(enum sub_state state);
int  sub_debug(struct re_printf *pf, const struct sub *sub);

#endif
