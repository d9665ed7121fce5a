/**
 * server/core/core.h  What crosses files inside server/core/ (private)
 *
 * The stack's structs (shared by stack.c, request.c, dispatch.c,
 * outreq.c, stack_metrics.c and
 * ratelimit.c), validation, the compact completed
 * transactions, the method lists of handlers and usages. Only
 * server/core/ includes it (docs/architecture.md;
 * test/docs/check_layers.py checks); what other folders need is in
 * sipcore.h.
 */
#ifndef SIPSTACK_CORE_H
#define SIPSTACK_CORE_H


/* Methods the core knows; Allow: lists the ones with a handler. */
#define STACK_KNOWN_METHODS \
	"INVITE ACK BYE CANCEL OPTIONS MESSAGE REFER REGISTER " \
	"PRACK SUBSCRIBE NOTIFY UPDATE INFO PUBLISH"

/* Allow: header value for the current hooks, written into buf */
int  stack_allow(const struct stack *st, char *buf, size_t sz);



/* Validate a request against RFC 3261 §8.2 before any handler sees it.
 * Returns 0 if fine, else the status code to answer and *reason. */
uint16_t stack_validate(const struct sip_msg *msg, const char **reason);

/* Option tags of Require: we do not support, comma-separated in buf;
 * returns the length written (0: all supported). */
size_t stack_unsupported(const struct sip_msg *msg, char *buf, size_t sz);


/* Completed non-INVITE server transactions over UDP, compact
 * (server/core/donetrans.c) */
struct donetab;
int    donetab_alloc(struct donetab **tp, uint32_t lifetime_ms);
bool   donetab_eligible(const struct sip_msg *msg);
bool   donetab_eligible_invite(const struct sip_msg *msg, uint16_t scode);
int    donetab_add(struct donetab *t, const struct sip_msg *msg,
		   struct mbuf *mb, const struct sa *dst);
bool   donetab_absorb(struct donetab *t, struct sip *sip,
		      const struct sip_msg *msg);
size_t donetab_count(const struct donetab *t);
uint64_t donetab_absorbed(const struct donetab *t);

/* ------------------------------------------------------------------ *
 * The stack's objects, shared by stack.c (life cycle), request.c
 * (struct stack_req and its answers), dispatch.c (the receive path and
 * the handlers), outreq.c (outgoing requests) and stack_metrics.c
 * (what the stack counts, as metrics)
 * ------------------------------------------------------------------ */

enum {
	HASH_CTRANS   = 1u << 16,
	HASH_STRANS   = 1u << 18,
	HASH_TCPCONN  = 1u << 12,
	SOCKBUF_SIZE  = 4 * 1024 * 1024,
	SOCKBUF_FORCE = 32 * 1024 * 1024,
	MAX_LISTENERS = 8,
};

/* What the stack counts for its metrics (stack_metrics.c writes them):
 * plain increments on the receive and reply paths, indexed by the
 * bounded labels of sipcore.h */
struct stack_counts {
	/* requests that reached the stack (after libre's transactions) */
	uint64_t rx[METRICS_METHODS][SIP_TRANSPC];
	/* responses sent by stack_req_reply*() and the core's answers */
	uint64_t tx[METRICS_METHODS][METRICS_CLASSES][SIP_TRANSPC];
};

static inline unsigned stack_tp_index(enum sip_transp tp)
{
	return (unsigned)tp < SIP_TRANSPC ? (unsigned)tp : 0;
}

struct listener {
	enum sip_transp tp;
	struct sa laddr;
	char *cert, *key, *ca;
};

struct stack {
	struct stack_config cfg;
	struct sip *sip;
	struct sip_lsnr *lsnr_req;
	struct sip_lsnr *lsnr_resp;
	struct dnsc *dnsc;
	struct mqueue *mq;
	struct tls *tls;
	struct dialog_table *dialogs;
	struct list services;             /* struct service, in order   */
	struct donetab *done;             /* completed UDP non-INVITE    */
	struct list strl;                 /* requests holding a strans   */
	struct list handlers;             /* struct stack_handler        */
	struct {
		stack_admit_h *h;         /* e.g. the auth guard's bans   */
		void *arg;
	} admit;
	struct ratelimit *rl;             /* per-source limits (always)   */
	struct {                          /* the UDP filter's last verdict */
		struct sa src;
		enum ratelimit_verdict v;
		bool set;
	} rlpre;
	struct listener lsnrv[MAX_LISTENERS];
	size_t lsnrc;
	void *udp_socks[MAX_LISTENERS];  /* sockets whose buffers we set */
	struct list outl;                 /* pending outgoing requests   */
	char allow_hdrs[256];             /* "Allow: ...\r\n" for 405/501 */
	char options_hdrs[448];           /* headers of the OPTIONS 200  */
	struct stack_stats stats;
	struct stack_counts counts;       /* by method, class, transport */
	struct metrics *metrics;          /* the registry (stack_metrics) */
	struct metrics_collector *mc_process;
	struct metrics_collector *mc_stack;
	struct {                          /* responses nobody took       */
		stack_stray_h *h;         /* (a proxy forwards them)      */
		void *arg;
	} stray;
	bool running;
};

struct stack_req {
	struct le le;              /* in st->strl while strans is set  */
	struct stack *st;
	const struct sip_msg *msg;
	struct sip_strans *strans; /* ours until the final answer      */
	sip_cancel_h *cancelh;     /* owner's CANCEL handler, or NULL */
	void *cancel_arg;
	stack_req_default_h *defh; /* stack_req_default's stand-in     */
	void *def_arg;
	bool answered;
	bool dialog;               /* replies copy Record-Route       */
};

/* request.c */
struct stack_req *stack_req_new(struct stack *st, const struct sip_msg *msg);

/* stack_metrics.c: the stack's collector (arg: the stack), and the
 * count of one response sent */
int  stack_metrics_collect(struct mbuf *mb, void *arg);
static inline void stack_count_reply(struct stack *st,
				     const struct sip_msg *msg,
				     uint16_t scode)
{
	++st->counts.tx[metrics_method(&msg->met)][metrics_class(scode)]
		[stack_tp_index(msg->tp)];
}
/* ratelimit.c: udpbatch's filter of the stack's UDP sockets; at the
 * top of the receive path, true when the limiter took the request
 * (dropped, or answered 503) */
bool stack_rl_datagram(const struct sa *src, void *arg);
bool stack_rl_request(struct stack *st, const struct sip_msg *msg);

/* dispatch.c */
bool stack_request_handler(const struct sip_msg *msg, void *arg);
bool stack_response_handler(const struct sip_msg *msg, void *arg);
void stack_allow_update(struct stack *st);
void stack_handlers_detach(struct stack *st);
/* Method lists " A B ", as handlers and dialog usages keep them */
int  stack_methods_make(char **lp, const char *methods);
bool stack_methods_has(const char *list, const struct pl *met);

#endif
