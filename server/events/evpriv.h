/**
 * server/events/evpriv.h  Private to server/events/: the structs of the
 * events service and of a subscription, shared by evsvc.c (service,
 * packages, routing), sub.c (the object), notifier.c and subscriber.c.
 */
#ifndef SIPSTACK_EVPRIV_H
#define SIPSTACK_EVPRIV_H

struct evsvc {
	struct stack *st;           /* not a reference: it owns us        */
	struct list pkgs;           /* struct evpkg                       */
	struct list subs;           /* struct sub (the list's reference)  */
	struct stack_handler *h_sub;    /* out-of-dialog SUBSCRIBE        */
	struct stack_handler *h_notify; /* NOTIFY matching no dialog yet  */
	char *allow_events;         /* "Allow-Events: a, b\r\n" or NULL   */
	bool stopping;
};

struct evpkg {
	struct le le;
	struct evsvc *svc;          /* NULL once the service went         */
	char *name;
	uint32_t min_expires;
	uint32_t max_expires;
	evpkg_h *h;
	void *arg;
};

/* One dialog of a subscription: the notifier's one, or each notifier's
 * of a subscriber (forks) */
struct subdlg {
	struct le le;
	struct sub *sub;            /* not a reference: it owns us        */
	struct dialog *dlg;         /* reference                          */
	struct dialog_usage *usage; /* the dialog's one events usage, if
				     * this holds it                      */
	struct sip_request *req;    /* subscriber: a refresh in flight    */
	bool terminated;
};

/* What a notifier tells: the state a NOTIFY carries */
struct substate {
	enum sub_state state;
	char *reason;
	char *ctype;
	uint8_t *body;
	size_t len;
};

struct sub {
	struct le le;               /* in evsvc.subs                      */
	struct evsvc *svc;          /* NULL once closed                   */
	bool notifier;
	bool closed;
	bool ending;                /* final NOTIFY / un-SUBSCRIBE sent    */
	char *event, *id, *callid, *from, *to;
	sub_event_h *eh;
	void *arg;
	enum sub_state state;
	uint32_t expires;           /* granted, seconds                   */
	uint64_t expires_at;        /* tmr_jiffies() when it runs out      */
	struct tmr tmr;             /* notifier: expiry; subscriber:
				     * refresh                            */
	struct tmr tmr_wait;        /* notifier: first NOTIFY; subscriber:
				     * waiting for a NOTIFY               */
	struct list dlgs;           /* struct subdlg                      */

	/* notifier */
	struct stack_req *req;      /* the SUBSCRIBE until answered        */
	uint32_t req_expires;       /* what it asked for                   */
	uint32_t min_expires;
	uint32_t max_expires;
	uint32_t nseq;              /* NOTIFYs sent                        */
	struct sip_request *nreq;   /* the NOTIFY in flight                */
	struct substate cur;        /* the state last told (or to tell)    */
	bool waiting;               /* cur waits for nreq to finish        */
	bool notified;              /* a NOTIFY went out                   */

	/* subscriber */
	struct sip_request *sreq;   /* the first SUBSCRIBE in flight       */
	char *hdrs;                 /* Event, Accept, extra: for refreshes */
	uint32_t want_expires;
	bool answered;              /* its final answer came               */
	bool got_notify;
	bool retried;               /* 423: asked again once               */
	bool refer;                 /* a REFER's (in a dialog not ours)    */
	char *user, *password;      /* digest credentials, or NULL         */
	char *authhdr;              /* Authorization for the next SUBSCRIBE */
	uint8_t auth_tries;         /* challenges answered in a row        */
};

/* evsvc.c */
struct evsvc *evsvc_of(const struct stack *st);
struct evpkg *evsvc_pkg(const struct evsvc *svc, const struct pl *name);

/* sub.c */
struct sub *sub_alloc(struct evsvc *svc, bool notifier);
struct subdlg *subdlg_add(struct sub *sub, struct dialog *dlg);
struct subdlg *subdlg_find(const struct sub *sub, const struct dialog *dlg);
int  subdlg_attach(struct subdlg *sd);
void sub_fire(struct sub *sub, const struct sub_event *ev);
void sub_close(struct sub *sub, const char *reason);
void sub_tell_closed(struct sub *sub, const char *reason);
int  sub_parse_event(const struct sip_msg *msg, struct pl *pkg,
		     struct pl *id);
bool sub_event_matches(const struct sub *sub, const struct sip_msg *msg);
uint32_t sub_msg_expires(const struct sip_msg *msg, uint32_t dflt);

/* notifier.c */
bool notifier_subscribe(struct evsvc *svc, struct stack_req *req);
void notifier_dialog_req(struct sub *sub, struct subdlg *sd,
			 struct stack_req *req);
void notifier_stop(struct sub *sub);

/* subscriber.c */
bool subscriber_notify_nodialog(struct evsvc *svc, struct stack_req *req);
void subscriber_notify(struct sub *sub, struct subdlg *sd,
		       struct stack_req *req);
void subscriber_stop(struct sub *sub);

#endif
