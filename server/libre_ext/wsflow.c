/**
 * server/libre_ext/wsflow.c  SIP over WebSocket (RFC 7118) as browsers need it
 *
 * WHY THIS FILE EXISTS
 *
 *   libre 1.1.0 has a SIP WebSocket server (sip_transp_add_websock,
 *   src/sip/transp.c over src/websock/websock.c), but as released it
 *   cannot serve a browser:
 *
 *   1. Its 101 answer to the handshake leaves out Sec-WebSocket-Protocol.
 *      The browser asked for "sip" (JsSIP, SIP.js always do) and must
 *      then fail the connection (RFC 6455 §4.1: a subprotocol not echoed
 *      is a failed handshake); Chromium does.
 *   2. An accepted connection is never marked established, so a request
 *      of ours to the peer's address (a MESSAGE to a user registered
 *      over it) is queued on it forever: only responses, which carry
 *      the connection, get through.
 *   3. The accepted connection keeps the 32 s accept timer it got and
 *      nothing restarts it: every WebSocket client is cut after 32 s.
 *   4. A masked frame whose 64-bit length is close to 2^64 passes the
 *      decoder's length check (4 + len wraps to 0..3) and unmasking
 *      writes past the buffer: a remote crash before any SIP is parsed.
 *
 *   Later libre releases fix all four (1 with websock_accept_proto());
 *   Debian 12 ships 1.1.0.
 *
 * HOW IT IS HOOKED IN
 *
 *   Symbol interposition, as fasttmr.c and udpbatch.c (overrides.list):
 *
 *   - http_listen(), https_listen(): while the stack adds its WS and WSS
 *     listeners (wsflow_arm()), the HTTP request handler of libre's SIP
 *     transport gets ours in front: a handshake libre would refuse
 *     with "500 Server Error" is refused as RFC 6455 §4.2 asks: 426
 *     Upgrade Required
 *     (with Sec-WebSocket-Version: 13) for a request that is no
 *     WebSocket upgrade or of another version, 400 for a missing key,
 *     400 when "sip" is not the (first) subprotocol offered (RFC 7118
 *     §4; libre's transport reads only the first), 405
 *     for a method other than GET.
 *   - websock_accept(): libre's SIP transport calls it for a handshake
 *     it took (path any, Sec-WebSocket-Protocol exactly "sip"). Ours
 *     calls the original (dlsym(RTLD_NEXT)) with handlers of ours around
 *     the SIP transport's, and notes the connection as a flow: the peer
 *     address, libre's struct sip_conn (the original's arg) and the
 *     WebSocket connection.
 *   - http_reply(): rewritten on libre's public HTTP API (the original
 *     is one mbuf_printf and tcp_send); while websock_accept() runs, its
 *     101 gets "Sec-WebSocket-Protocol: " with what the client asked for
 *     (fix 1). Every other reply is byte for byte the original's.
 *   - tcp_set_handlers(): while websock_accept() runs, the WebSocket
 *     code sets its receive handler on the TCP connection; ours goes in
 *     front and follows the frame headers in the byte stream: a frame
 *     longer than WSFLOW_FRAME_MAX (or a length with its top bit set,
 *     RFC 6455 §5.2) closes the connection with 1009 before the
 *     decoder sees it (fix 4). Otherwise the stream passes unchanged.
 *   - sip_transp_send(): libre's transaction layer sends every request
 *     through it without a connection (sock NULL); for WS and WSS ours
 *     looks the destination up among the flows and hands libre the
 *     flow's connection, which libre then writes to directly, as it
 *     does for responses (fix 2). A destination that is not a flow is
 *     refused (ECONNREFUSED): we are a WebSocket server only, as RFC
 *     7118 §5 has it (and libre's client side would try to connect to
 *     the browser's port).
 *
 *   Timers: libre's SIP connection keeps the 32 s accept timer it starts
 *   after websock_accept() (fix 3). A flow has its own: 32 s until the
 *   first data frame, then libre's TCP idle time (900 s) restarted by
 *   whatever the peer sends, the pongs to the WebSocket layer's pings
 *   (every 15 s) included. At the first frame libre's timer is
 *   cancelled; reaching
 *   it needs the head of libre 1.1.0's private struct sip_conn (struct
 *   sip_conn_head below), used only when the timer found there points
 *   back at the connection (tmr.arg == conn).
 *
 * LIFETIME
 *
 *   Every end of a flow goes through the WebSocket layer's close handler
 *   (ours, flow_close(), before libre's): the peer closed, the TCP
 *   connection broke, or we end it (a timer of ours, an oversized frame,
 *   wsflow_flush() at the stack's stop) by sending a close frame and
 *   reporting the TCP connection closed to the WebSocket layer, as it
 *   does itself on a protocol error. Then libre's handler closes its SIP
 *   connection; the flow, unlinked, is freed. So a flow in the table
 *   always names a SIP connection libre has open, and no flow is freed
 *   while the TCP connection can still call its handlers (the WebSocket
 *   layer drops the TCP connection before it calls the close handler).
 *   One path is not covered: libre freeing the SIP connection right
 *   after websock_accept() succeeded because getsockname() failed on
 *   the accepted socket (src/sip/transp.c, http_req_handler).
 *   Everything runs on the loop thread of the SIP stack.
 */
#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <re.h>
#include "wsflow.h"


enum {
	ACCEPT_MS = 32 * 1000,     /* libre's TCP_ACCEPT_TIMEOUT          */
	IDLE_MS   = 900 * 1000,    /* libre's TCP_IDLE_TIMEOUT            */
	HASH_BITS = 10,
};

/* The head of struct sip_conn in libre 1.1.0's src/sip/transp.c: only
 * its timer is used, and only after checking it (conn_tmr()) */
struct sip_conn_head {
	struct le he;
	struct list ql;
	struct list kal;
	struct tmr tmr;
};

struct wsflow {
	struct le he;              /* in flows, by peer address           */
	struct sa peer;
	void *conn;                /* libre's struct sip_conn             */
	struct websock_conn *wsc;  /* the WebSocket connection            */
	struct tmr tmr;            /* accept, then idle                   */
	bool framed;               /* a data frame came                   */

	/* libre's SIP transport handlers, called after ours */
	websock_recv_h *recvh;
	websock_close_h *closeh;
	void *arg;

	/* the WebSocket layer's TCP handlers, called after our scan */
	tcp_recv_h *tcp_recvh;
	tcp_close_h *tcp_closeh;
	void *tcp_arg;

	/* the frame header being read, and what is left of the payload */
	uint8_t hdr[14];
	size_t hdrn;
	uint64_t left;
};

typedef int (websock_accept_f)(struct websock_conn **, struct websock *,
			       struct http_conn *, const struct http_msg *,
			       unsigned, websock_recv_h *, websock_close_h *,
			       void *);
typedef void (tcp_set_handlers_f)(struct tcp_conn *, tcp_estab_h *,
				  tcp_recv_h *, tcp_close_h *, void *);
/* exported by libre 1.1.0, not in its headers (src/sip/sip.h) */
struct sip_connqent;
typedef void (sip_transp_h)(int err, void *arg);
int sip_transp_send(struct sip_connqent **qentp, struct sip *sip,
		    void *sock, enum sip_transp tp, const struct sa *dst,
		    struct mbuf *mb, sip_transp_h *transph, void *arg);
typedef int (sip_transp_send_f)(struct sip_connqent **, struct sip *,
				void *, enum sip_transp, const struct sa *,
				struct mbuf *, sip_transp_h *, void *);

/* One HTTP(S) listener of libre's SIP transport, and its handler */
struct wsgate {
	struct le le;
	http_req_h *reqh;
	void *arg;
};

typedef int (http_listen_f)(struct http_sock **, const struct sa *,
			    http_req_h *, void *);
typedef int (https_listen_f)(struct http_sock **, const struct sa *,
			     const char *, http_req_h *, void *);

static struct list gates;          /* struct wsgate                   */
static bool armed;                 /* wsflow_arm()                     */
static struct hash *flows;
static struct wsflow *accepting;   /* set while websock_accept() runs */
static struct pl accept_proto;     /* and the subprotocol to echo     */
static struct wsflow_stats stats;


static void *original(const char *name)
{
	void *f = dlsym(RTLD_NEXT, name);

	if (!f)
		(void)re_fprintf(stderr, "wsflow: no original %s\n", name);

	return f;
}


/* libre's timer on conn if it is where libre 1.1.0 keeps it, else NULL */
static struct tmr *conn_tmr(void *conn)
{
	struct tmr *t = &((struct sip_conn_head *)conn)->tmr;

	return t->th && t->arg == conn ? t : NULL;
}


static void flow_destructor(void *arg)
{
	struct wsflow *f = arg;

	tmr_cancel(&f->tmr);
	hash_unlink(&f->he);
}


/* Ends f the way the WebSocket layer ends a connection on a protocol
 * error: a close frame, then its TCP close handler, which calls
 * flow_close() (f is freed when this returns) */
static void flow_end(struct wsflow *f, enum websock_scode scode, int err)
{
	(void)websock_close(f->wsc, scode, NULL);
	f->tcp_closeh(err, f->tcp_arg);
}


static void flow_timeout(void *arg)
{
	struct wsflow *f = arg;

	++stats.timeouts;
	flow_end(f, WEBSOCK_GOING_AWAY, ETIMEDOUT);
}


/* ------------------------------------------------------------------ *
 * The handshake, before libre's SIP transport sees it
 * ------------------------------------------------------------------ */

static void refuse(struct http_conn *hc, uint16_t scode, const char *reason,
		   const char *hdrs)
{
	++stats.refused;
	(void)http_reply(hc, scode, reason, "%sContent-Length: 0\r\n\r\n",
			 hdrs);
}


static void gate_handler(struct http_conn *hc, const struct http_msg *msg,
			 void *arg)
{
	static const char upgrade[] = "Upgrade: websocket\r\n"
		"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n";
	const struct wsgate *g = arg;
	const struct http_hdr *key, *proto;

	key = http_msg_hdr(msg, HTTP_HDR_SEC_WEBSOCKET_KEY);
	proto = http_msg_hdr(msg, HTTP_HDR_SEC_WEBSOCKET_PROTOCOL);

	if (pl_strcmp(&msg->met, "GET"))
		refuse(hc, 405, "Method Not Allowed", "Allow: GET\r\n");
	else if (!http_msg_hdr_has_value(msg, HTTP_HDR_UPGRADE,
					 "websocket") ||
		 !http_msg_hdr_has_value(msg, HTTP_HDR_CONNECTION, "Upgrade") ||
		 !http_msg_hdr_has_value(msg, HTTP_HDR_SEC_WEBSOCKET_VERSION,
					 "13"))
		refuse(hc, 426, "Upgrade Required", upgrade);
	else if (!key || key->val.l != 24)   /* 16 bytes in base64 */
		refuse(hc, 400, "Bad Sec-WebSocket-Key", "");
	else if (!proto || pl_strcasecmp(&proto->val, "sip"))
		/* the first offered: libre's transport reads that one */
		refuse(hc, 400, "Subprotocol sip Required", "");
	else
		g->reqh(hc, msg, g->arg);
}


static int gate_add(struct wsgate **gp, http_req_h *reqh, void *arg)
{
	struct wsgate *g = mem_zalloc(sizeof(*g), NULL);

	if (!g)
		return ENOMEM;

	g->reqh = reqh;
	g->arg  = arg;
	list_append(&gates, &g->le, g);
	*gp = g;

	return 0;
}


/* ------------------------------------------------------------------ *
 * The frame scan in front of the WebSocket layer
 * ------------------------------------------------------------------ */

/* 0, or EOVERFLOW for a frame over WSFLOW_FRAME_MAX */
static int scan(struct wsflow *f, const uint8_t *p, size_t n)
{
	while (n) {
		size_t need;
		uint64_t len;
		unsigned i;

		if (f->left) {
			size_t k = f->left < n ? (size_t)f->left : n;

			p += k;
			n -= k;
			f->left -= k;
			continue;
		}

		f->hdr[f->hdrn++] = *p++;
		--n;
		if (f->hdrn < 2)
			continue;

		len = f->hdr[1] & 0x7f;
		need = 2 + (len == 126 ? 2 : len == 127 ? 8 : 0) +
			(f->hdr[1] & 0x80 ? 4 : 0);
		if (f->hdrn < need)
			continue;

		if (len >= 126) {
			unsigned nb = len == 126 ? 2 : 8;

			for (len = 0, i = 0; i < nb; i++)
				len = len << 8 | f->hdr[2 + i];
		}

		f->hdrn = 0;
		if (len > WSFLOW_FRAME_MAX)
			return EOVERFLOW;

		f->left = len;
	}

	return 0;
}


static void flow_tcp_recv(struct mbuf *mb, void *arg)
{
	struct wsflow *f = arg;

	if (scan(f, mbuf_buf(mb), mbuf_get_left(mb))) {
		++stats.oversized;
		flow_end(f, WEBSOCK_MESSAGE_TOO_BIG, EOVERFLOW);
		return;
	}

	/* anything, pongs to the WebSocket layer's pings included: a
	 * browser registered for an hour sends no SIP in between */
	if (f->framed)
		tmr_start(&f->tmr, IDLE_MS, flow_timeout, f);

	f->tcp_recvh(mb, f->tcp_arg);
}


static void flow_tcp_close(int err, void *arg)
{
	struct wsflow *f = arg;

	f->tcp_closeh(err, f->tcp_arg);
}


/* ------------------------------------------------------------------ *
 * Around libre's SIP transport handlers
 * ------------------------------------------------------------------ */

static void flow_recv(const struct websock_hdr *hdr, struct mbuf *mb,
		      void *arg)
{
	struct wsflow *f = arg;

	if (!f->framed) {
		struct tmr *t = conn_tmr(f->conn);

		/* left running, libre's timer would close its connection
		 * behind our back (see LIFETIME): refuse to run so */
		if (!t) {
			(void)re_fprintf(stderr, "wsflow: libre's connection"
					 " timer not found: closing\n");
			flow_end(f, WEBSOCK_INTERNAL_ERROR, ENOTSUP);
			return;
		}

		tmr_cancel(t);   /* ours takes over */
		f->framed = true;
		tmr_start(&f->tmr, IDLE_MS, flow_timeout, f);
	}

	f->recvh(hdr, mb, f->arg);
}


static void flow_close(int err, void *arg)
{
	struct wsflow *f = arg;

	hash_unlink(&f->he);
	tmr_cancel(&f->tmr);
	++stats.closed;

	f->closeh(err, f->arg);   /* libre closes its SIP connection */
	mem_deref(f);
}


/* ------------------------------------------------------------------ *
 * The replacements
 * ------------------------------------------------------------------ */

int http_listen(struct http_sock **sockp, const struct sa *laddr,
		http_req_h *reqh, void *arg)
{
	static http_listen_f *orig;
	struct wsgate *g;
	int err;

	if (!orig && !(orig = (http_listen_f *)original("http_listen")))
		return ENOSYS;

	if (!armed || !reqh)
		return orig(sockp, laddr, reqh, arg);

	err = gate_add(&g, reqh, arg);
	if (!err)
		err = orig(sockp, laddr, gate_handler, g);

	return err;
}


int https_listen(struct http_sock **sockp, const struct sa *laddr,
		 const char *cert, http_req_h *reqh, void *arg)
{
	static https_listen_f *orig;
	struct wsgate *g;
	int err;

	if (!orig && !(orig = (https_listen_f *)original("https_listen")))
		return ENOSYS;

	if (!armed || !reqh)
		return orig(sockp, laddr, cert, reqh, arg);

	err = gate_add(&g, reqh, arg);
	if (!err)
		err = orig(sockp, laddr, cert, gate_handler, g);

	return err;
}


int websock_accept(struct websock_conn **connp, struct websock *sock,
		   struct http_conn *htconn, const struct http_msg *msg,
		   unsigned kaint, websock_recv_h *recvh,
		   websock_close_h *closeh, void *arg)
{
	static websock_accept_f *orig;
	const struct http_hdr *proto;
	struct wsflow *f;
	int err;

	if (!orig && !(orig = (websock_accept_f *)original("websock_accept")))
		return ENOSYS;

	if (!connp || !htconn || !msg || !recvh || !closeh || !arg)
		return orig(connp, sock, htconn, msg, kaint, recvh, closeh,
			    arg);

	if (!flows) {
		err = hash_alloc(&flows, 1u << HASH_BITS);
		if (err)
			return err;
	}

	f = mem_zalloc(sizeof(*f), flow_destructor);
	if (!f)
		return ENOMEM;

	tmr_init(&f->tmr);
	f->peer   = *http_conn_peer(htconn);
	f->conn   = arg;
	f->recvh  = recvh;
	f->closeh = closeh;
	f->arg    = arg;

	proto = http_msg_hdr(msg, HTTP_HDR_SEC_WEBSOCKET_PROTOCOL);
	accept_proto = proto ? proto->val : pl_null;
	accepting = f;
	err = orig(connp, sock, htconn, msg, kaint, flow_recv, flow_close, f);
	accepting = NULL;
	accept_proto = pl_null;

	if (!err && !f->tcp_recvh) {
		/* the original no longer sets its TCP handlers the way this
		 * file expects: refuse rather than run unguarded */
		(void)websock_close(*connp, WEBSOCK_INTERNAL_ERROR, NULL);
		*connp = mem_deref(*connp);
		err = ENOTSUP;
	}
	if (err) {
		mem_deref(f);
		return err;
	}

	f->wsc = *connp;
	hash_append(flows, sa_hash(&f->peer, SA_ALL), &f->he, f);
	tmr_start(&f->tmr, ACCEPT_MS, flow_timeout, f);
	++stats.accepted;

	return 0;
}


void tcp_set_handlers(struct tcp_conn *tc, tcp_estab_h *eh, tcp_recv_h *rh,
		      tcp_close_h *ch, void *arg)
{
	static tcp_set_handlers_f *orig;

	if (!orig && !(orig = (tcp_set_handlers_f *)
		       original("tcp_set_handlers")))
		return;

	if (accepting && rh && ch && !accepting->tcp_recvh) {
		accepting->tcp_recvh  = rh;
		accepting->tcp_closeh = ch;
		accepting->tcp_arg    = arg;
		orig(tc, eh, flow_tcp_recv, flow_tcp_close, accepting);
		return;
	}

	orig(tc, eh, rh, ch, arg);
}


/* libre's http_reply, on its public API; the 101 of a WebSocket
 * handshake we accept echoes the subprotocol */
int http_reply(struct http_conn *conn, uint16_t scode, const char *reason,
	       const char *fmt, ...)
{
	struct tcp_conn *tc;
	struct mbuf *mb;
	va_list ap;
	int err;

	if (!conn || !scode || !reason)
		return EINVAL;

	tc = http_conn_tcp(conn);
	if (!tc)
		return ENOTCONN;

	mb = mbuf_alloc(8192);
	if (!mb)
		return ENOMEM;

	err = mbuf_printf(mb, "HTTP/1.1 %u %s\r\n", scode, reason);
	if (scode == 101 && accepting && pl_isset(&accept_proto))
		err |= mbuf_printf(mb, "Sec-WebSocket-Protocol: %r\r\n",
				   &accept_proto);
	if (fmt) {
		va_start(ap, fmt);
		err |= mbuf_vprintf(mb, fmt, ap);
		va_end(ap);
	}
	else {
		err |= mbuf_write_str(mb, "Content-Length: 0\r\n\r\n");
	}

	if (!err) {
		mb->pos = 0;
		err = tcp_send(tc, mb);
	}

	mem_deref(mb);

	return err;
}


static struct wsflow *flow_find(const struct sa *peer)
{
	struct le *le;

	le = list_head(hash_list(flows, sa_hash(peer, SA_ALL)));
	for (; le; le = le->next) {
		struct wsflow *f = le->data;

		if (sa_cmp(&f->peer, peer, SA_ALL))
			return f;
	}

	return NULL;
}


int sip_transp_send(struct sip_connqent **qentp, struct sip *sip,
		    void *sock, enum sip_transp tp, const struct sa *dst,
		    struct mbuf *mb, sip_transp_h *transph, void *arg)
{
	static sip_transp_send_f *orig;

	if (!orig && !(orig = (sip_transp_send_f *)
		       original("sip_transp_send")))
		return ENOSYS;

	if (!sock && (tp == SIP_TRANSP_WS || tp == SIP_TRANSP_WSS)) {
		struct wsflow *f = flows && dst ? flow_find(dst) : NULL;

		/* we are a WebSocket server only (RFC 7118 §5: a server
		 * cannot reach a browser but over the connection it opened;
		 * libre 1.1.0's client side would try to connect to the
		 * peer's port) */
		if (!f) {
			++stats.unrouted;
			return ECONNREFUSED;
		}

		sock = f->conn;
		++stats.routed;
	}

	return orig(qentp, sip, sock, tp, dst, mb, transph, arg);
}


/* ------------------------------------------------------------------ *
 * For the stack
 * ------------------------------------------------------------------ */

void wsflow_arm(bool on)
{
	armed = on;
}


void wsflow_flush(void)
{
	struct le *le;
	uint32_t i;

	/* the listeners go with libre's SIP stack, right after this,
	 * before the loop runs again */
	list_flush(&gates);

	if (!flows)
		return;

	for (i = 0; i < (1u << HASH_BITS); i++) {
		while ((le = list_head(hash_list(flows, i))))
			flow_end(le->data, WEBSOCK_GOING_AWAY, ESHUTDOWN);
	}

	flows = mem_deref(flows);
}


int wsflow_debug(struct re_printf *pf, const void *unused)
{
	uint32_t i;
	int err;
	(void)unused;

	err = re_hprintf(pf, "websocket flows=%llu accepted=%llu refused=%llu"
			 " routed=%llu unrouted=%llu oversized=%llu "
			 "timeouts=%llu", stats.accepted - stats.closed,
			 stats.accepted, stats.refused, stats.routed,
			 stats.unrouted, stats.oversized, stats.timeouts);

	for (i = 0; flows && i < (1u << HASH_BITS); i++) {
		struct le *le;

		LIST_FOREACH(hash_list(flows, i), le) {
			const struct wsflow *f = le->data;

			err |= re_hprintf(pf, "\n    %J %s %llus left",
					  &f->peer, f->framed ? "open" :
					  "accepted", tmr_get_expire(&f->tmr)
					  / 1000);
		}
	}

	return err;
}


void wsflow_stats(struct wsflow_stats *st)
{
	if (!st)
		return;

	*st = stats;
	st->open = stats.accepted - stats.closed;
}
