/**
 * server/proxy/fwd.c  What a proxy does to the messages it forwards
 *
 * Owns nothing that lives: functions from a received message to the
 * text that goes on. Route processing (RFC 3261 §16.4: our Route
 * entries taken off, a strict router's Request-URI put back), the
 * forwarded request (§16.6: Request-URI, Max-Forwards less one,
 * Record-Route, Route with a strict next hop converted, the received
 * Vias with received/rport, RFC 3581), the forwarded response (our Via
 * off, §16.7 item 9) and stateless response forwarding (§16.11).
 * libre has no message editor: a forwarded message is printed again,
 * header by header, from libre's parsed header list. Exposes fwd_*()
 * in proxy_priv.h. Uses libre's parser and transports.
 */
#include <string.h>
#include <re.h>
#include "proxy_priv.h"
#include "mbw.h"
#include "libre_ext.h"


static enum sip_transp tp_decode(const struct pl *pl);


/* Does pl hold s (ASCII, any case)? A cheap test before libre's
 * regex-based parameter lookup. */
static bool pl_has_ci(const struct pl *pl, const char *s)
{
	const size_t n = strlen(s);
	size_t i, j;

	for (i = 0; n && i + n <= pl->l; i++) {
		for (j = 0; j < n; j++) {
			char c = pl->p[i + j];

			if (c >= 'A' && c <= 'Z')
				c = (char)(c + 32);
			if (c != s[j])
				break;
		}
		if (j == n)
			return true;
	}

	return false;
}


/* pre s post (s a C string) */
static int str_write(struct mbuf *mb, const char *pre, const char *s,
		     const char *post)
{
	return mbw_mem3(mb, pre, strlen(pre), s, strlen(s), post,
			strlen(post));
}


/* "Content-Length: N\r\n\r\n" and the body (RFC 3261 §18.3: at most
 * Content-Length octets of what came) */
static int body_write(struct mbuf *mb, const struct sip_msg *msg)
{
	struct pl body;
	int err;

	stack_msg_body(msg, &body);
	err = mbw_num(mb, "Content-Length: ", 16, (uint32_t)body.l,
		       "\r\n\r\n", 4);
	if (!err)
		err = mbw_room(mb, body.l);
	if (!err && body.l)
		mbw_put(mb, body.p, body.l);

	return err;
}


/* ------------------------------------------------------------------ *
 * Is it us?
 * ------------------------------------------------------------------ */

/* The transport a URI names: its transport parameter (NONE for one we
 * do not know), TLS for sips:, else UDP */
static enum sip_transp uri_tp(const struct uri *uri)
{
	enum sip_transp tp = SIP_TRANSP_UDP;
	struct pl tpl;

	if (!msg_param_decode(&uri->params, "transport", &tpl))
		tp = tp_decode(&tpl);
	if (tp != SIP_TRANSP_NONE && !pl_strcasecmp(&uri->scheme, "sips"))
		tp = SIP_TRANSP_TLS;

	return tp;
}


/* The URI in s: a URI, or the one in a name-addr (a Route value) */
static int uri_of(struct uri *uri, const char *s, bool name_addr)
{
	struct sip_addr addr;
	struct pl pl;
	int err;

	pl_set_str(&pl, s);
	if (!name_addr)
		return uri_decode(uri, &pl);

	err = sip_addr_decode(&addr, &pl);
	if (!err)
		*uri = addr.uri;

	return err;
}


/* A URI naming one of our listeners (numeric host; no port: the
 * transport's default) */
bool fwd_uri_is_us(struct sip *sip, const struct uri *uri)
{
	enum sip_transp tp = uri_tp(uri);
	struct sa sa;

	if (tp == SIP_TRANSP_NONE)
		return false;

	if (sa_set(&sa, &uri->host, sip_transp_port(tp, uri->port)))
		return false;

	return sip_transp_isladdr(sip, SIP_TRANSP_NONE, &sa);
}


/* The shape nearly every URI we route by has, read without libre's
 * decoders: "sip:" [userinfo "@"] IPv4 [":" port] [";" params], in
 * "<>" or not, with neither a transport nor a maddr parameter: *sa its
 * address, the port 5060 when absent (UDP). ENOTSUP for anything else
 * (a name, IPv6, sips:, a transport, a port over 65535...): the full
 * decoders decide those, and what this accepts they read the same. */
static int quick_uri(const char *s, struct sa *sa)
{
	const char *h, *e, *c;
	struct pl host, rest;
	uint32_t a4, port = 0;

	if (*s == '<')
		++s;
	if ((s[0] | 0x20) != 's' || (s[1] | 0x20) != 'i' ||
	    (s[2] | 0x20) != 'p' || s[3] != ':')
		return ENOTSUP;

	h = s + 4;
	e = h + strcspn(h, ";>?@ \t");
	if (*e == '@') {
		h = e + 1;
		e = h + strcspn(h, ";>?@ \t");
		if (*e == '@')
			return ENOTSUP;
	}
	if (*e == ' ' || *e == '\t')
		return ENOTSUP;

	c = memchr(h, ':', (size_t)(e - h));
	host.p = h;
	host.l = (size_t)((c ? c : e) - h);
	if (libre_ext_ip4(&host, &a4) != 1)
		return ENOTSUP;

	if (c) {
		const char *d;

		if (c + 1 == e || e - c > 6)
			return ENOTSUP;
		for (d = c + 1; d < e; d++) {
			if (*d < '0' || *d > '9')
				return ENOTSUP;
			port = port * 10 + (uint32_t)(*d - '0');
		}
		if (port > 65535)
			return ENOTSUP;
	}

	pl_set_str(&rest, e);
	if (pl_has_ci(&rest, "transport") || pl_has_ci(&rest, "maddr"))
		return ENOTSUP;

	sa_init(sa, AF_INET);
	sa->u.in.sin_addr.s_addr = a4;
	sa_set_port(sa, port ? (uint16_t)port : SIP_PORT);

	return 0;
}


/* s (a URI, or a Route's name-addr) names one of our listeners */
static bool str_is_us(struct sip *sip, const char *s, bool name_addr)
{
	struct uri uri;
	struct sa sa;

	if (!quick_uri(s, &sa))
		return sip_transp_isladdr(sip, SIP_TRANSP_NONE, &sa);

	return !uri_of(&uri, s, name_addr) && fwd_uri_is_us(sip, &uri);
}


bool fwd_ruri_is_us(struct sip *sip, const char *ruri)
{
	return str_is_us(sip, ruri, false);
}


/* ------------------------------------------------------------------ *
 * Route processing (RFC 3261 §16.4)
 * ------------------------------------------------------------------ */

void fwd_route_reset(struct fwd_route *rt)
{
	size_t i;

	rt->ruri = mem_deref(rt->ruri);
	for (i = 0; i < rt->routec; i++)
		rt->routev[i] = mem_deref(rt->routev[i]);
	rt->routec = 0;
}


static bool route_collect(const struct sip_hdr *hdr,
			  const struct sip_msg *msg, void *arg)
{
	struct fwd_route *rt = arg;
	(void)msg;

	if (rt->routec >= FWD_ROUTES_MAX)
		return true;

	if (pl_strdup(&rt->routev[rt->routec], &hdr->val))
		return true;
	++rt->routec;

	return false;
}


/* The URI inside a Route value ("<sip:x;lr>" -> "sip:x;lr") */
static int route_uri(char **urip, const char *val)
{
	struct sip_addr addr;
	struct pl pl;

	pl_set_str(&pl, val);
	if (sip_addr_decode(&addr, &pl))
		return EBADMSG;

	return pl_strdup(urip, &addr.auri);
}


int fwd_route_prepare(struct fwd_route *rt, struct sip *sip,
		      const struct sip_msg *msg)
{
	size_t i, drop = 0;
	int err;

	memset(rt, 0, sizeof(*rt));

	(void)sip_msg_hdr_apply(msg, true, SIP_HDR_ROUTE, route_collect, rt);
	if (rt->routec >= FWD_ROUTES_MAX) {
		err = EOVERFLOW;
		goto out;
	}

	/* A strict router before us put our Record-Route URI in the
	 * Request-URI and the target at the end of Route (§16.4) */
	if (rt->routec && !pl_isset(&msg->uri.user) &&
	    fwd_uri_is_us(sip, &msg->uri)) {
		err = route_uri(&rt->ruri, rt->routev[rt->routec - 1]);
		if (err)
			goto out;
		--rt->routec;
		rt->routev[rt->routec] = mem_deref(rt->routev[rt->routec]);
		rt->strict = true;
	}
	else {
		err = pl_strdup(&rt->ruri, &msg->ruri);
		if (err)
			goto out;
	}

	/* Our own entries on top (two when we record-routed across a
	 * change of transport) */
	while (drop < rt->routec && str_is_us(sip, rt->routev[drop], true))
		++drop;

	for (i = 0; i < drop; i++)
		rt->routev[i] = mem_deref(rt->routev[i]);
	for (i = drop; i < rt->routec; i++)
		rt->routev[i - drop] = rt->routev[i];
	rt->routec -= drop;
	rt->ours = drop;

 out:
	if (err)
		fwd_route_reset(rt);

	return err;
}


/* ------------------------------------------------------------------ *
 * The forwarded request
 * ------------------------------------------------------------------ */

uint32_t fwd_max_forwards(const struct sip_msg *msg)
{
	if (!pl_isset(&msg->maxfwd))
		return 70;

	return pl_u32(&msg->maxfwd);
}


/* "udp", "tcp", "tls", "ws", "wss" (any case) */
static enum sip_transp tp_decode(const struct pl *pl)
{
	if (!pl_strcasecmp(pl, "udp")) return SIP_TRANSP_UDP;
	if (!pl_strcasecmp(pl, "tcp")) return SIP_TRANSP_TCP;
	if (!pl_strcasecmp(pl, "tls")) return SIP_TRANSP_TLS;
	if (!pl_strcasecmp(pl, "ws"))  return SIP_TRANSP_WS;
	if (!pl_strcasecmp(pl, "wss")) return SIP_TRANSP_WSS;
	return SIP_TRANSP_NONE;
}


/* where s starts in pl, or NULL */
static const char *pl_find(const struct pl *pl, const char *s)
{
	const size_t n = strlen(s);
	size_t i;

	for (i = 0; n && i + n <= pl->l; i++) {
		if (!memcmp(pl->p + i, s, n))
			return pl->p + i;
	}

	return NULL;
}


/* The top Via as it goes on: received= and a bare rport filled in
 * (RFC 3261 §18.2.1, RFC 3581), so that the responses we forward
 * without state find their way back */
static int via_top_print(struct mbuf *mb, const struct sip_msg *msg,
			 const struct pl *val)
{
	const struct pl *prm = &msg->via.params;
	const char *p = NULL;
	struct pl v;
	int err;

	/* (the parameter decoders are ours, without a regex: no
	 * precheck needed, libre_ext/fastparse.c) */
	if (!msg_param_exists(prm, "rport", &v) &&
	    msg_param_decode(prm, "rport", &v))
		p = pl_find(val, ";rport");

	if (p) {
		const size_t before = (size_t)(p - val->p) + 6;

		err = mbw_room(mb, 5 + before);
		if (err)
			return err;
		MBW_PUT_LIT(mb, "Via: ");
		mbw_put(mb, val->p, before);
		err = mbw_num(mb, "=", 1, sa_port(&msg->src),
			       val->p + before, val->l - before);
	}
	else {
		err = mbw_room(mb, 5 + val->l);
		if (err)
			return err;
		MBW_PUT_LIT(mb, "Via: ");
		mbw_put(mb, val->p, val->l);
	}

	if (!err && msg_param_decode(prm, "received", &v)) {
		err = MBW_LIT(mb, ";received=");
		if (!err)
			err = mbw_addr(mb, &msg->src, false);
	}

	if (!err)
		err = MBW_LIT(mb, "\r\n");

	return err;
}


static bool hdr_is(const struct sip_hdr *hdr, enum sip_hdrid id)
{
	return hdr->id == id;
}


/* the name every forwarded Via gets, also for a received "v:" */
static const struct pl via_name = PL("Via");


int fwd_request(struct mbuf **mbp, char **ruri, char **nexthop,
		const struct sip_msg *msg, const char *uri,
		const char *path, const char *received,
		const struct fwd_route *rt, const char *extra,
		size_t headroom)
{
	const char *routes[FWD_ROUTES_MAX * 2];
	size_t routec = 0, i, first = 0;
	char *pathv[FWD_ROUTES_MAX];
	size_t pathc = 0;
	char *r = NULL, *hop = NULL, *last = NULL;
	struct mbuf *mb;
	bool first_via = true;
	struct le *le;
	int err = 0;

	memset(pathv, 0, sizeof(pathv));

	/* Path (RFC 3327) goes before the request's own Route values */
	if (path && *path) {
		struct pl pl, v;

		pl_set_str(&pl, path);
		while (pathc < FWD_ROUTES_MAX &&
		       !re_regex(pl.p, pl.l, "[^,]+", &v)) {
			while (v.l && (*v.p == ' ' || *v.p == '\t')) {
				++v.p;
				--v.l;
			}
			if (v.l) {
				err = pl_strdup(&pathv[pathc], &v);
				if (err)
					goto out;
				routes[routec++] = pathv[pathc++];
			}
			pl_advance(&pl, (size_t)(v.p + v.l - pl.p));
			if (pl.l && *pl.p == ',')
				pl_advance(&pl, 1);
		}
	}
	for (i = 0; i < rt->routec; i++)
		routes[routec++] = rt->routev[i];

	err = str_dup(&r, uri);
	if (err)
		goto out;

	if (routec) {
		char *ru = NULL;
		struct sip_addr addr;
		struct pl pl;

		pl_set_str(&pl, routes[0]);
		err = sip_addr_decode(&addr, &pl);
		if (err)
			goto out;
		err = pl_strdup(&ru, &addr.auri);
		if (err)
			goto out;

		if (msg_param_exists(&addr.uri.params, "lr", &pl)) {
			/* a strict router next (§16.6 item 6): it gets
			 * the Request-URI, ours goes last in Route */
			last = r;
			r = ru;
			first = 1;
			err = str_dup(&hop, r);
		}
		else {
			hop = ru;
		}
	}
	else if (received && *received) {
		err = str_dup(&hop, received);
	}
	else {
		err = str_dup(&hop, r);
	}
	if (err)
		goto out;

	/* the whole received message and some room: what is added is a
	 * few short lines (mbw.h grows the buffer if need be) */
	mb = mbuf_alloc(headroom + 128 + msg->mb->end);
	if (!mb) {
		err = ENOMEM;
		goto out;
	}
	mb->pos = mb->end = headroom;

	for (le = msg->hdrl.head; le && !err; le = le->next) {
		const struct sip_hdr *hdr = le->data;

		if (hdr_is(hdr, SIP_HDR_VIA)) {
			if (first_via)
				err = via_top_print(mb, msg, &hdr->val);
			else
				err = mbw_hdr(mb, &via_name, &hdr->val);
			first_via = false;
			continue;
		}

		if (hdr_is(hdr, SIP_HDR_ROUTE) ||
		    hdr_is(hdr, SIP_HDR_MAX_FORWARDS) ||
		    hdr_is(hdr, SIP_HDR_CONTENT_LENGTH))
			continue;

		err = mbw_hdr(mb, &hdr->name, &hdr->val);
	}

	if (!err)
		err = mbw_num(mb, "Max-Forwards: ", 14,
			       fwd_max_forwards(msg) - 1, "\r\n", 2);
	for (i = first; i < routec && !err; i++)
		err = str_write(mb, "Route: ", routes[i], "\r\n");
	if (last && !err)
		err = str_write(mb, "Route: <", last, ">\r\n");
	if (extra && !err)
		err = str_write(mb, "", extra, "");

	if (!err)
		err = body_write(mb, msg);
	if (err) {
		mem_deref(mb);
		goto out;
	}

	mb->pos = headroom;
	*mbp = mb;
	*ruri = r;
	*nexthop = hop;
	r = hop = NULL;

 out:
	for (i = 0; i < pathc; i++)
		mem_deref(pathv[i]);
	mem_deref(r);
	mem_deref(hop);
	mem_deref(last);

	return err;
}


static int rr_print(struct mbuf *mb, enum sip_transp tp,
		    const struct sa *laddr)
{
	int err;

	err = MBW_LIT(mb, "Record-Route: <sip:");
	if (!err)
		err = mbw_addr(mb, laddr, true);
	if (!err)
		err = mbw_num(mb, ":", 1, sa_port(laddr), "", 0);
	if (!err)
		err = str_write(mb, "", sip_transp_param(tp), ";lr>\r\n");

	return err;
}


int fwd_record_route(struct mbuf *mb, const struct sip_msg *msg,
		     enum sip_transp tp, const struct sa *laddr)
{
	int err;

	/* the entry the callee's side sees first comes first */
	err = rr_print(mb, tp, laddr);
	if (!err && (tp != msg->tp || !sa_cmp(laddr, &msg->dst, SA_ALL)))
		err = rr_print(mb, msg->tp, &msg->dst);

	return err;
}


/* ------------------------------------------------------------------ *
 * Responses
 * ------------------------------------------------------------------ */

int fwd_response(struct mbuf **mbp, const struct sip_msg *resp)
{
	return fwd_response_extra(mbp, resp, NULL);
}


int fwd_response_extra(struct mbuf **mbp, const struct sip_msg *resp,
		       const char *extra)
{
	struct mbuf *mb;
	bool first_via = true;
	struct le *le;
	int err;

	mb = mbuf_alloc(128 + resp->mb->end);
	if (!mb)
		return ENOMEM;

	err = mbw_num(mb, "SIP/2.0 ", 8, resp->scode, " ", 1);
	if (!err)
		err = mbw_room(mb, resp->reason.l + 2);
	if (!err) {
		mbw_put(mb, resp->reason.p, resp->reason.l);
		MBW_PUT_LIT(mb, "\r\n");
	}

	for (le = resp->hdrl.head; le && !err; le = le->next) {
		const struct sip_hdr *hdr = le->data;

		if (hdr_is(hdr, SIP_HDR_VIA) && first_via) {
			first_via = false;
			continue;
		}
		if (hdr_is(hdr, SIP_HDR_CONTENT_LENGTH))
			continue;

		err = mbw_hdr(mb, &hdr->name, &hdr->val);
	}

	if (extra && !err)
		err = str_write(mb, "", extra, "");
	if (!err)
		err = body_write(mb, resp);
	if (err) {
		mem_deref(mb);
		return err;
	}

	mb->pos = 0;
	*mbp = mb;

	return 0;
}


/* The second Via of resp (the one after ours) */
static bool via_second(const struct sip_hdr *hdr, const struct sip_msg *msg,
		       void *arg)
{
	const struct sip_hdr **vp = arg;
	(void)msg;

	if (!vp[0]) {
		vp[0] = hdr;
		return false;
	}

	vp[1] = hdr;

	return true;
}


int fwd_stateless_response(struct sip *sip, const struct sip_msg *resp)
{
	const struct sip_hdr *v[2] = {NULL, NULL};
	struct sip_via via;
	struct mbuf *mb;
	struct pl rcv, rp;
	struct sa dst;
	int err;

	if (!sip_transp_isladdr(sip, SIP_TRANSP_NONE, &resp->via.addr))
		return ENOENT;   /* not ours on top: not for us to forward */

	(void)sip_msg_hdr_apply(resp, true, SIP_HDR_VIA, via_second, v);
	if (!v[1])
		return ENOENT;   /* ours alone: a response to our own */

	err = sip_via_decode(&via, &v[1]->val);
	if (err)
		return err;

	dst = via.addr;
	if (!msg_param_decode(&via.params, "received", &rcv))
		(void)sa_set(&dst, &rcv, sa_port(&via.addr));
	if (!msg_param_decode(&via.params, "rport", &rp) && pl_isset(&rp))
		sa_set_port(&dst, pl_u32(&rp));
	if (!sa_port(&dst))
		sa_set_port(&dst, sip_transp_port(via.tp, 0));

	err = fwd_response(&mb, resp);
	if (err)
		return err;

	err = sip_send(sip, NULL, via.tp, &dst, mb);
	mem_deref(mb);

	return err;
}


/* ------------------------------------------------------------------ *
 * Requests without state (§16.11)
 * ------------------------------------------------------------------ */

/* Where a request relayed along rt goes, when that needs no resolving:
 * the first Route's URI (or the Request-URI), a numeric host, UDP, no
 * maddr. ENOTSUP otherwise (a name to resolve through RFC 3263, another
 * transport: the stateful path does those). */
static int next_hop_udp(struct sa *dst, const struct fwd_route *rt)
{
	const char *hop = rt->routec ? rt->routev[0] : rt->ruri;
	struct uri uri;

	if (!quick_uri(hop, dst))
		return 0;

	if (uri_of(&uri, hop, rt->routec > 0))
		return EBADMSG;

	if (pl_strcasecmp(&uri.scheme, "sip") ||
	    uri_tp(&uri) != SIP_TRANSP_UDP ||
	    pl_has_ci(&uri.params, "maddr"))
		return ENOTSUP;

	if (sa_set(dst, &uri.host, uri.port ? uri.port : SIP_PORT))
		return ENOTSUP;

	return 0;
}


/* Our Via, its branch a hash of what makes the request the one it is:
 * a retransmission gets the same branch, so the next hop's server
 * transaction absorbs it (§16.11); the top Via's branch alone would do
 * for RFC 3261 clients, the rest is for those without the cookie */
static size_t via_print(char *buf, const struct sip_msg *msg,
			const struct sa *laddr)
{
	const struct pl *part[4];
	char *p = buf;
	uint64_t h = 14695981039346656037ULL;     /* FNV-1a, 64 bits */
	size_t i, j;

	part[0] = &msg->via.branch;
	part[1] = &msg->via.sentby;
	part[2] = &msg->callid;
	part[3] = &msg->met;
	for (i = 0; i < 4; i++) {
		for (j = 0; j < part[i]->l; j++) {
			h ^= (uint8_t)part[i]->p[j];
			h *= 1099511628211ULL;
		}
		h ^= 0xff;                      /* "ab"+"c" is not "a"+"bc" */
		h *= 1099511628211ULL;
	}
	h ^= msg->cseq.num;
	h *= 1099511628211ULL;

	memcpy(p, "Via: SIP/2.0/UDP ", 17);
	p += 17;
	if (sa_af(laddr) == AF_INET6)
		*p++ = '[';
	if (sa_ntop(laddr, p, 64))
		return 0;
	p += strlen(p);
	if (sa_af(laddr) == AF_INET6)
		*p++ = ']';
	*p++ = ':';
	p += mbw_u32_fmt(p, sa_port(laddr));
	memcpy(p, ";branch=z9hG4bKs", 16);
	p += 16;
	p += mbw_x64_fmt(p, h);
	memcpy(p, ";rport\r\n", 8);
	p += 8;

	return (size_t)(p - buf);
}


/* room before the headers for the request line and our Via */
#define HEADROOM 384


int fwd_stateless_request(struct sip *sip, const struct sip_msg *msg,
			  const struct fwd_route *rt)
{
	char *ruri = NULL, *hop = NULL, via[160];
	size_t vl, rl, hl;
	struct mbuf *mb = NULL;
	struct sa dst, laddr;
	int err;

	/* a request that came reliably must not go on without state over
	 * UDP: nobody would retransmit it (an ACK of a 2xx is sent again by
	 * its UAC for each 2xx retransmission) */
	if (fwd_max_forwards(msg) == 0 ||
	    (msg->tp != SIP_TRANSP_UDP && pl_strcmp(&msg->met, "ACK")))
		return ENOTSUP;

	err = next_hop_udp(&dst, rt);
	if (err)
		return err;

	err = sip_transp_laddr(sip, &laddr, SIP_TRANSP_UDP, &dst);
	if (err)
		return ENOTSUP;

	err = fwd_request(&mb, &ruri, &hop, msg, rt->ruri, NULL, NULL, rt,
			  NULL, HEADROOM);
	if (err)
		goto out;

	/* METHOD SP Request-URI SP SIP/2.0 CRLF, our Via, in the headroom */
	vl = via_print(via, msg, &laddr);
	rl = strlen(ruri);
	hl = msg->met.l + 1 + rl + 10 + vl;
	if (!vl) {
		err = EINVAL;
		goto out;
	}
	if (hl > HEADROOM) {
		/* a long Request-URI: the head first in a buffer of its own */
		struct mbuf *big = mbuf_alloc(hl + mb->end - HEADROOM);

		if (!big) {
			err = ENOMEM;
			goto out;
		}
		err = mbw_mem3(big, msg->met.p, msg->met.l, " ", 1, ruri, rl);
		if (!err)
			err = mbw_mem3(big, " SIP/2.0\r\n", 10, via, vl,
				       mb->buf + HEADROOM, mb->end - HEADROOM);
		mem_deref(mb);
		mb = big;
		if (err)
			goto out;
		mb->pos = 0;
		goto send;
	}
	mb->pos = HEADROOM - hl;
	memcpy(mb->buf + mb->pos, msg->met.p, msg->met.l);
	mb->buf[mb->pos + msg->met.l] = ' ';
	memcpy(mb->buf + mb->pos + msg->met.l + 1, ruri, rl);
	memcpy(mb->buf + mb->pos + msg->met.l + 1 + rl, " SIP/2.0\r\n", 10);
	memcpy(mb->buf + HEADROOM - vl, via, vl);

 send:
	err = sip_send(sip, NULL, SIP_TRANSP_UDP, &dst, mb);
	if (err == ENOTSUP)
		err = EIO;      /* not "take the other way": it was sent */

 out:
	mem_deref(mb);
	mem_deref(ruri);
	mem_deref(hop);

	return err;
}
