/**
 * server/proxy/proxy_priv.h  Private to server/proxy/
 *
 * struct proxy (the service, proxy.c), struct ptrans and struct pbranch
 * (a proxy transaction and its branches, ptrans.c), and the message
 * work of fwd.c: RFC 3261 §16.4 route processing, the forwarded
 * request (§16.6) and response (§16.7 item 9), stateless forwarding
 * (§16.11).
 */
#ifndef SIPSTACK_PROXY_PRIV_H
#define SIPSTACK_PROXY_PRIV_H

#include "sipcore.h"
#include "proxy.h"

enum {
	FWD_ROUTES_MAX = 16,      /* Route values of one request we keep */
};

struct proxy {
	struct stack *st;
	struct proxy_config cfg;
	struct list ptl;              /* live struct ptrans (a reference) */
	struct fsm_def *pbdef;        /* the branches' FSM               */
	struct metrics_collector *mc; /* its figures, at scrape time     */
	struct stack_handler *h_nodlg;/* in-dialog requests not ours     */
	struct stack_handler *h_cancel;/* CANCELs matching nothing       */
	bool enabled;
	struct {
		uint64_t forwarded;   /* ptrans attempts started          */
		uint64_t relayed;     /* in-dialog requests relayed       */
		uint64_t acks;        /* ACKs relayed statelessly         */
		uint64_t strays;      /* responses forwarded by Via       */
	} stats;
};

/* The request after RFC 3261 §16.4: its Request-URI, and the Route
 * values left once ours are taken off (a strict router's conversion
 * undone) */
struct fwd_route {
	char *ruri;                       /* mem string                 */
	char *routev[FWD_ROUTES_MAX];     /* mem strings, "<sip:...>"   */
	size_t routec;
	size_t ours;                      /* our entries taken off      */
	bool strict;                      /* a strict router's undone   */
};

/* The branch FSM (pbfsm.c): ids equal to the def's, checked when it is
 * built */
enum pbranch_state {
	PB_CALLING = 0,           /* sent, nothing back yet             */
	PB_PROCEEDING,            /* a provisional came                 */
	PB_DONE,                  /* its outcome is known               */
	PB_CANCELLING,            /* CANCEL sent, its final to come     */
	PB_STATES
};

enum pbranch_event {
	PBEV_PROVISIONAL = 0,     /* a 1xx                              */
	PBEV_FINAL,               /* a final response, or a transport
				   * error or Timer B/F (made up)        */
	PBEV_CANCEL,              /* we CANCEL it                       */
	PBEV_GIVE_UP,             /* an outcome we make up (timeouts)   */
	PBEV_COUNT
};

struct pbranch {
	struct le le;             /* in ptrans.branches                 */
	struct ptrans *pt;
	struct sip_request *sreq; /* libre's; NULL once it ended        */
	char *uri;                /* Request-URI of the branch          */
	char *path;               /* Path of its binding, or NULL       */
	char *received;           /* where to send, or NULL             */
	uint32_t attempt;
	uint32_t group;           /* started together (PROXY_Q, serial) */
	struct tmr tmr_c;         /* Timer C                            */
	struct tmr tmr_b;         /* the branch timeout                 */
	struct fsm *fsm;          /* enum pbranch_state                 */
	const struct sip_msg *resp;   /* its final response (reference) */
	uint16_t scode;
	bool made_up;
	bool cancelled;
	bool started;
};

struct ptrans {
	struct le le;             /* in proxy.ptl while live            */
	struct proxy *px;
	struct stack_req *req;    /* reference                          */
	const struct sip_msg *msg;
	struct fwd_route rt;
	struct list branches;     /* struct pbranch, every attempt's    */
	struct proxy_opts o;      /* the running attempt's              */
	char *hdrs;               /* its o.headers, a copy              */
	uint32_t group_next;      /* the next group to start            */
	uint32_t groups;          /* groups of the running attempt      */
	struct tmr tmr;           /* the attempt's timeout              */
	proxy_done_h *doneh;
	void *arg;
	uint32_t attempts;
	/* the running (or last) attempt's best response */
	const struct sip_msg *best;   /* reference, NULL when made up   */
	uint16_t scode;
	const char *reason;           /* static, when made up           */
	bool made_up;
	bool running;             /* an attempt runs                    */
	bool answered;            /* a final response went upstream     */
	bool cancelled;           /* the caller's CANCEL                */
	bool detached;            /* nobody decides: send the best      */
	bool live;                /* in proxy.ptl                       */
	bool starting;            /* in ptrans_forward                  */
	bool sync_done;           /* the attempt ended in it            */
};

/* fwd.c */
bool fwd_uri_is_us(struct sip *sip, const struct uri *uri);
/* ... a Request-URI (a string) naming one of our listeners */
bool fwd_ruri_is_us(struct sip *sip, const char *ruri);
int  fwd_route_prepare(struct fwd_route *rt, struct sip *sip,
		       const struct sip_msg *msg);
void fwd_route_reset(struct fwd_route *rt);
/* The headers of a forwarded request after our Via (libre writes the
 * request line and our Via; sendh adds Record-Route), from headroom
 * bytes into *mbp on (its pos there, for the caller to write in front
 * of them; 0 for none): the received
 * Vias (the top one with received/rport, RFC 3581), Max-Forwards less
 * one, routev, the other headers as they came, extra, the body.
 * *nexthop is where to send it (a mem string) and *ruri the
 * Request-URI (a mem string; a strict router's first Route). */
int  fwd_request(struct mbuf **mbp, char **ruri, char **nexthop,
		 const struct sip_msg *msg, const char *uri,
		 const char *path, const char *received,
		 const struct fwd_route *rt, const char *extra,
		 size_t headroom);
/* Record-Route for a branch leaving on tp from laddr, the request
 * having come in on msg's transport and address: one entry, or two on
 * a change of transport or address (RFC 5658) */
int  fwd_record_route(struct mbuf *mb, const struct sip_msg *msg,
		      enum sip_transp tp, const struct sa *laddr);
/* A received response without its top Via (ours), as it goes
 * upstream */
int  fwd_response(struct mbuf **mbp, const struct sip_msg *resp);
/* ... with extra header lines (CRLF each) before the body */
int  fwd_response_extra(struct mbuf **mbp, const struct sip_msg *resp,
			const char *extra);
/* RFC 3261 §16.11: a response with our Via on top, forwarded to the
 * next Via's address (received, rport) without state */
int  fwd_stateless_response(struct sip *sip, const struct sip_msg *resp);
/* RFC 3261 §16.11: an in-dialog request that came over UDP, relayed
 * along rt without state over UDP with our Via (its branch a hash of
 * the request, the same for a retransmission), when the next hop is a
 * numeric address; ENOTSUP when it is not (or Max-Forwards is 0): the
 * stateful path does those. Its responses come back as strays. */
int  fwd_stateless_request(struct sip *sip, const struct sip_msg *msg,
			   const struct fwd_route *rt);
/* The Max-Forwards of msg (70 when absent) */
uint32_t fwd_max_forwards(const struct sip_msg *msg);

/* ptrans.c */
void ptrans_abandon(struct ptrans *pt);

/* pbfsm.c: the branches' FSM definition (a reference) */
int  pbfsm_def(struct fsm_def **defp);
const char *pbfsm_state_name(enum pbranch_state s);

#endif
