/**
 * server/proxy/proxy.h  The stateful proxy (RFC 3261 §16): public C API
 *
 * Two objects:
 *  - struct proxy, the proxy service of a stack (one per stack, a
 *    stack service): its settings, the live proxy transactions, and
 *    what is forwarded without asking anyone: in-dialog requests of
 *    dialogs that are not ours with a Route to us or a Request-URI
 *    that is not ours (statefully, one branch), the ACK of a 2xx
 *    (statelessly), and responses that match no transaction (by
 *    their Via, RFC 3261 §16.11: 2xx retransmissions, forked 2xx);
 *  - struct ptrans, one forwarded request (a response context): the
 *    server transaction upstream (the struct stack_req's) and one
 *    client transaction per branch (libre's sip_request, which writes
 *    our Via with its own branch). Its owner (a script) asks for
 *    attempts (ptrans_forward: targets in parallel, serially or by q)
 *    and hears when each ends (the best final response, RFC 3261
 *    §16.7); a 2xx goes upstream at once, anything else waits for the
 *    owner, who may try again or answer, or let go (ptrans_detach):
 *    then the best response goes upstream.
 * Everything runs on the stack's loop thread.
 */
#ifndef SIPSTACK_PROXY_H
#define SIPSTACK_PROXY_H

struct stack;
struct stack_req;
struct proxy;
struct ptrans;

enum {
	PROXY_TIMER_C      = 180000,   /* ms, RFC 3261 §16.6 item 11      */
	PROXY_MAX_ATTEMPTS = 5,        /* ptrans_forward per request      */
	PROXY_MAX_TARGETS  = 32,       /* targets of one attempt          */
};

struct proxy_config {
	uint32_t timer_c;         /* ms (> 180 s per the RFC; less for
				   * tests)                              */
	bool record_route;        /* attempts' default                  */
	uint32_t max_attempts;    /* ptrans_forward per request         */
};

enum proxy_mode {
	PROXY_PARALLEL = 0,       /* every target at once               */
	PROXY_SERIAL,             /* one after the other                */
	PROXY_Q,                  /* by q, highest first: equal q in
				   * parallel, groups one after another  */
};

/* One target: the branch's Request-URI, and for a registered contact
 * its Path (RFC 3327: Route headers before the request's own, the
 * first of them the next hop) and the address its REGISTER came from
 * (received: sent there, "sip:ip:port;transport=..."), both may be
 * NULL; q in thousandths (PROXY_Q) */
struct proxy_target {
	const char *uri;
	const char *path;         /* "<sip:a;lr>, <sip:b;lr>" or NULL   */
	const char *received;     /* a SIP URI or NULL                  */
	uint32_t q;
};

struct proxy_branch_info;

/* A branch of the running attempt ended (its outcome in bi) */
typedef void (proxy_branch_h)(struct ptrans *pt,
			      const struct proxy_branch_info *bi, void *arg);

struct proxy_opts {
	enum proxy_mode mode;
	uint32_t branch_timeout;  /* ms, each branch (0: Timer C only)  */
	uint32_t timeout;         /* ms, the whole attempt (0: none)    */
	int record_route;         /* 1, 0, or -1: the service's default */
	const char *headers;      /* extra header lines (CRLF each), or
				   * NULL                                */
	proxy_branch_h *branchh;  /* or NULL; not after the attempt's
				   * end or ptrans_detach                */
	void *branch_arg;
};

/* One branch's outcome. scode is the final status (made up: 408 when
 * it timed out or was dropped, 503 for a transport error, RFC 3261
 * §16.9), 0 while it is pending. */
struct proxy_branch_info {
	const char *uri;
	uint32_t attempt;         /* 1.. (which ptrans_forward)         */
	uint16_t scode;
	const char *reason;       /* made up; NULL: resp's              */
	const struct sip_msg *resp;   /* its final response, or NULL    */
	bool made_up;
	bool cancelled;           /* we sent it a CANCEL                */
};

/* An attempt ended (best response known, or a 2xx went upstream, or
 * the caller cancelled): the owner reads it with the getters below */
typedef void (proxy_done_h)(struct ptrans *pt, void *arg);


/* ---- the service ---- */

void proxy_config_default(struct proxy_config *cfg);
/* Start (or reconfigure) the proxy service of st; cfg NULL: defaults */
int  proxy_start(struct stack *st, const struct proxy_config *cfg);
/* Stop forwarding what nobody asked for (a script without a proxy);
 * live transactions go on */
void proxy_disable(struct stack *st);
struct proxy *proxy_of(const struct stack *st);
uint32_t proxy_count(const struct stack *st);      /* live ptrans */
int  proxy_debug(struct re_printf *pf, const struct proxy *px);


/* ---- a proxy transaction ---- */

/* A response context for req (a reference for the caller) */
int  ptrans_alloc(struct ptrans **ptp, struct proxy *px,
		  struct stack_req *req);
/*
 * One attempt: targets (n of them; NULL/0: the Request-URI or the
 * Route, after RFC 3261 §16.4) with opts (NULL: defaults). 0: started,
 * doneh(pt, arg) comes once it ends; *donep true: it ended already
 * (doneh does not come): Max-Forwards was 0 (483 sent), a
 * Proxy-Require (420 sent), or no branch could start. Errors: EALREADY (answered), EBUSY (an attempt runs),
 * ELOOP (max_attempts reached), EINVAL (a target is not a SIP URI).
 * The first attempt of an INVITE sends 100 Trying.
 */
int  ptrans_forward(struct ptrans *pt, const struct proxy_target *targets,
		    size_t n, const struct proxy_opts *opts,
		    proxy_done_h *doneh, void *arg, bool *donep);
/* The owner is gone: an attempt that ends (or has ended) sends its
 * best response upstream */
void ptrans_detach(struct ptrans *pt);
/* The last attempt's best response: status, reason (valid while pt
 * lives), whether made up, whether it went upstream already (a 2xx,
 * or our answer: 483, 487), whether the caller cancelled */
uint16_t ptrans_scode(const struct ptrans *pt);
const char *ptrans_reason(const struct ptrans *pt);
bool ptrans_made_up(const struct ptrans *pt);
bool ptrans_answered(const struct ptrans *pt);
bool ptrans_cancelled(const struct ptrans *pt);
uint32_t ptrans_attempts(const struct ptrans *pt);
/* The last attempt's best response as received (NULL: made up) */
const struct sip_msg *ptrans_response(const struct ptrans *pt);
size_t ptrans_branch_count(const struct ptrans *pt);
int  ptrans_branch(const struct ptrans *pt, size_t i,
		   struct proxy_branch_info *bi);
int  ptrans_debug(struct re_printf *pf, const struct ptrans *pt);

#endif
