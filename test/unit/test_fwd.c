/**
 * test/unit/test_fwd.c  What the proxy does to the messages it forwards
 *
 * server/proxy/fwd.c on decoded messages, with a libre stack listening
 * on 127.0.0.1 (what "us" is): RFC 3261 §16.4 route processing (our
 * Route entries off, one or two of them; a strict router's Request-URI
 * put back), the forwarded request (Path before the request's Routes,
 * the next hop, a strict next hop converted, Max-Forwards less one, the
 * top Via with received and rport, our Via left to libre, the body and
 * its length) and the forwarded response (only our Via off). Leaks:
 * under valgrind too.
 */
#include <string.h>
#include <re.h>
#include "proxy_priv.h"

#include "testutil.h"


static struct sip *sip;
static uint16_t port;


static struct sip_msg *decode(const char *fmt, ...)
{
	struct sip_msg *msg = NULL;
	struct mbuf *mb = mbuf_alloc(1024);
	va_list ap;

	va_start(ap, fmt);
	(void)mbuf_vprintf(mb, fmt, ap);
	va_end(ap);
	mb->pos = 0;
	if (sip_msg_decode(&msg, mb))
		msg = NULL;
	else
		(void)sa_set_str(&msg->src, "192.0.2.7", 5070);
	mem_deref(mb);

	return msg;
}


/* index of the first occurrence of s in mb from its pos (or -1) */
static long where(const struct mbuf *mb, const char *s)
{
	const size_t n = strlen(s);
	size_t i;

	for (i = mb->pos; i + n <= mb->end; i++) {
		if (!memcmp(mb->buf + i, s, n))
			return (long)(i - mb->pos);
	}

	return -1;
}


static bool has(const struct mbuf *mb, const char *s)
{
	return where(mb, s) >= 0;
}


static void test_routes(void)
{
	struct fwd_route rt;
	struct sip_msg *msg;

	/* loose: ours on top, off; the next one stays */
	msg = decode("INVITE sip:bob@example.com SIP/2.0\r\n"
		     "Via: SIP/2.0/UDP 192.0.2.7:5070;branch=z9hG4bK1\r\n"
		     "Route: <sip:127.0.0.1:%u;lr>, <sip:p2.example.com;lr>\r\n"
		     "From: <sip:a@example.com>;tag=1\r\n"
		     "To: <sip:bob@example.com>\r\n"
		     "Call-ID: c1\r\nCSeq: 1 INVITE\r\n"
		     "Content-Length: 0\r\n\r\n", port);
	CHECK(msg && !fwd_route_prepare(&rt, sip, msg),
	      "loose route: prepared");
	CHECK(rt.ours == 1 && rt.routec == 1 && !rt.strict &&
	      !strcmp(rt.routev[0], "<sip:p2.example.com;lr>") &&
	      !strcmp(rt.ruri, "sip:bob@example.com"),
	      "loose route: ours off, the next kept, Request-URI kept");
	fwd_route_reset(&rt);
	mem_deref(msg);

	/* two of ours (record-routed across a change of transport) */
	msg = decode("BYE sip:bob@192.0.2.9 SIP/2.0\r\n"
		     "Via: SIP/2.0/UDP 192.0.2.7:5070;branch=z9hG4bK2\r\n"
		     "Route: <sip:127.0.0.1:%u;lr>\r\n"
		     "Route: <sip:127.0.0.1:%u;transport=tcp;lr>\r\n"
		     "From: <sip:a@example.com>;tag=1\r\n"
		     "To: <sip:bob@example.com>;tag=2\r\n"
		     "Call-ID: c2\r\nCSeq: 2 BYE\r\n"
		     "Content-Length: 0\r\n\r\n", port, port);
	CHECK(msg && !fwd_route_prepare(&rt, sip, msg) && rt.ours == 2 &&
	      rt.routec == 0, "two Route entries of ours: both off");
	fwd_route_reset(&rt);
	mem_deref(msg);

	/* a strict router put our URI in the Request-URI */
	msg = decode("BYE sip:127.0.0.1:%u SIP/2.0\r\n"
		     "Via: SIP/2.0/UDP 192.0.2.7:5070;branch=z9hG4bK3\r\n"
		     "Route: <sip:p3.example.com;lr>, <sip:bob@192.0.2.9>\r\n"
		     "From: <sip:a@example.com>;tag=1\r\n"
		     "To: <sip:bob@example.com>;tag=2\r\n"
		     "Call-ID: c3\r\nCSeq: 2 BYE\r\n"
		     "Content-Length: 0\r\n\r\n", port);
	CHECK(msg && !fwd_route_prepare(&rt, sip, msg) && rt.strict &&
	      !strcmp(rt.ruri, "sip:bob@192.0.2.9") && rt.routec == 1 &&
	      !strcmp(rt.routev[0], "<sip:p3.example.com;lr>"),
	      "strict router: the last Route back in the Request-URI");
	fwd_route_reset(&rt);
	mem_deref(msg);

	/* not ours: nothing taken */
	msg = decode("INVITE sip:bob@example.com SIP/2.0\r\n"
		     "Via: SIP/2.0/UDP 192.0.2.7:5070;branch=z9hG4bK4\r\n"
		     "Route: <sip:127.0.0.1:%u;lr>\r\n"
		     "From: <sip:a@example.com>;tag=1\r\n"
		     "To: <sip:bob@example.com>\r\n"
		     "Call-ID: c4\r\nCSeq: 1 INVITE\r\n"
		     "Content-Length: 0\r\n\r\n", (unsigned)(port + 1));
	CHECK(msg && !fwd_route_prepare(&rt, sip, msg) && rt.ours == 0 &&
	      rt.routec == 1, "a Route to another port is not ours");
	fwd_route_reset(&rt);
	mem_deref(msg);
}


static void test_request(void)
{
	char *ruri = NULL, *hop = NULL;
	struct mbuf *mb = NULL;
	struct fwd_route rt;
	struct sip_msg *msg;
	int err;

	msg = decode("INVITE sip:bob@example.com SIP/2.0\r\n"
		     "Via: SIP/2.0/UDP 192.0.2.7:5070;branch=z9hG4bK5;rport\r\n"
		     "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK0\r\n"
		     "Route: <sip:127.0.0.1:%u;lr>, <sip:p2.example.com;lr>\r\n"
		     "Max-Forwards: 10\r\n"
		     "From: <sip:a@example.com>;tag=1\r\n"
		     "To: <sip:bob@example.com>\r\n"
		     "Call-ID: c5\r\nCSeq: 1 INVITE\r\n"
		     "Content-Type: text/plain\r\n"
		     "Content-Length: 5\r\n\r\nhello", port);
	err = msg ? fwd_route_prepare(&rt, sip, msg) : EINVAL;
	CHECK(!err, "request: route prepared");
	if (err)
		goto out;

	/* a binding with a Path (RFC 3327) */
	err = fwd_request(&mb, &ruri, &hop, msg, "sip:bob@192.0.2.9:5080",
			  "<sip:edge.example.com;lr>, <sip:e2.example.com;lr>",
			  NULL, &rt, "X-Test: 1\r\n", 0);
	CHECK(!err && mb, "request: built");
	if (!err) {
		long p1 = where(mb, "Route: <sip:edge.example.com;lr>");
		long p2 = where(mb, "Route: <sip:e2.example.com;lr>");
		long p3 = where(mb, "Route: <sip:p2.example.com;lr>");

		CHECK(!strcmp(ruri, "sip:bob@192.0.2.9:5080") &&
		      !strcmp(hop, "sip:edge.example.com;lr"),
		      "the target is the Request-URI, the first Path URI the "
		      "next hop");
		CHECK(p1 >= 0 && p2 > p1 && p3 > p2,
		      "Path before the request's own Route, in order");
		CHECK(where(mb, "Route: <sip:127.0.0.1") < 0,
		      "our own Route entry is gone");
		CHECK(has(mb, "Max-Forwards: 9\r\n"), "Max-Forwards 10 -> 9");
		CHECK(where(mb, "Via: SIP/2.0/UDP 192.0.2.7:5070;"
			    "branch=z9hG4bK5;rport=5070;received=192.0.2.7"
			    "\r\n") == 0,
		      "the received top Via first, with rport and received");
		CHECK(where(mb, "Via: SIP/2.0/UDP 192.0.2.1;"
			    "branch=z9hG4bK0\r\n") > 0,
		      "the other Vias as they came");
		CHECK(has(mb, "X-Test: 1\r\n") &&
		      has(mb, "Content-Length: 5\r\n\r\nhello"),
		      "extra headers, the body and its length");
	}
	mb = mem_deref(mb);
	ruri = mem_deref(ruri);
	hop = mem_deref(hop);

	/* a strict router next: it gets the Request-URI */
	fwd_route_reset(&rt);
	rt.ruri = NULL;
	(void)str_dup(&rt.ruri, "sip:bob@example.com");
	(void)str_dup(&rt.routev[0], "<sip:strict.example.com>");
	rt.routec = 1;
	err = fwd_request(&mb, &ruri, &hop, msg, rt.ruri, NULL, NULL, &rt,
			  NULL, 0);
	CHECK(!err && !strcmp(ruri, "sip:strict.example.com") &&
	      !strcmp(hop, "sip:strict.example.com") &&
	      has(mb, "Route: <sip:bob@example.com>\r\n") &&
	      where(mb, "Route: <sip:strict.example.com>") < 0,
	      "strict next hop: it becomes the Request-URI, ours goes "
	      "last in Route (RFC 3261 §16.6 item 6)");
	mb = mem_deref(mb);
	ruri = mem_deref(ruri);
	hop = mem_deref(hop);

	/* no Route: to the Request-URI, or where the binding registered
	 * from */
	fwd_route_reset(&rt);
	err = fwd_request(&mb, &ruri, &hop, msg, "sip:bob@192.0.2.9", NULL,
			  "sip:198.51.100.4:6000", &rt, NULL, 100);
	CHECK(!err && !strcmp(hop, "sip:198.51.100.4:6000") &&
	      !strcmp(ruri, "sip:bob@192.0.2.9"),
	      "received: the next hop, the Request-URI kept");
	CHECK(!err && mb->pos == 100 && where(mb, "Via: ") == 0 &&
	      has(mb, "Content-Length: 5\r\n\r\nhello"),
	      "headroom: the headers start 100 bytes in, pos there");
	mb = mem_deref(mb);
	ruri = mem_deref(ruri);
	hop = mem_deref(hop);

 out:
	fwd_route_reset(&rt);
	mem_deref(msg);
}


static void test_response(void)
{
	struct sip_msg *msg;
	struct mbuf *mb = NULL;

	msg = decode("SIP/2.0 180 Ringing\r\n"
		     "Via: SIP/2.0/UDP 127.0.0.1:%u;branch=z9hG4bKours\r\n"
		     "Via: SIP/2.0/UDP 192.0.2.7:5070;branch=z9hG4bK5;"
		     "received=192.0.2.7;rport=5070\r\n"
		     "Record-Route: <sip:127.0.0.1:%u;lr>\r\n"
		     "From: <sip:a@example.com>;tag=1\r\n"
		     "To: <sip:bob@example.com>;tag=9\r\n"
		     "Call-ID: c6\r\nCSeq: 1 INVITE\r\n"
		     "Content-Length: 0\r\n\r\n", port, port);
	CHECK(msg && !fwd_response(&mb, msg), "response: built");
	if (mb) {
		CHECK(where(mb, "SIP/2.0 180 Ringing\r\n") == 0 &&
		      where(mb, "z9hG4bKours") < 0 &&
		      has(mb, "Via: SIP/2.0/UDP 192.0.2.7:5070;branch="
			  "z9hG4bK5;received=192.0.2.7;rport=5070\r\n") &&
		      has(mb, "Record-Route: <sip:127.0.0.1:"),
		      "response: our Via off, the rest as it came");
	}
	mem_deref(mb);
	mem_deref(msg);
}


/* fwd_ruri_is_us reads the common shapes itself (quick_uri): on each,
 * the same answer as libre's decoders and fwd_uri_is_us */
static void test_is_us(void)
{
	static const char *const fmts[] = {
		"sip:127.0.0.1:%u", "sip:127.0.0.1:%u;lr", "SIP:127.0.0.1:%u",
		"<sip:127.0.0.1:%u;lr>", "sip:bob@127.0.0.1:%u",
		"sip:bob:pw@127.0.0.1:%u;x=1", "sip:127.0.0.1:%u;transport=tcp",
		"sip:127.0.0.1:%u;maddr=192.0.2.1", "sips:127.0.0.1:%u",
		"sip:127.0.0.2:%u", "sip:127.0.0.1:0%u", "sip:127.0.0.1:%u9",
		"sip:127.0.0.1:%u99999", "sip:127.0.0.1", "sip:127.0.0.1:",
		"sip:127.00.0.1:%u", "sip:127.0.0.1.5:%u", "sip:[::1]:%u",
		"sip:localhost:%u", "sip:a@b@127.0.0.1:%u", "sip:127.0.0.1:%u?x",
		"sip:+1;phone=x@127.0.0.1:%u", "sip:127.0.0.1 :%u",
		"sip:127.0.0.1:%u ;lr", "sip:%u", "sip:1.2.3.4:%u",
	};
	size_t i, same = 0;

	for (i = 0; i < ARRAY_SIZE(fmts); i++) {
		char buf[128];
		struct uri uri;
		struct pl pl;
		bool full, quick;

		(void)re_snprintf(buf, sizeof(buf), fmts[i], port);
		pl_set_str(&pl, buf[0] == '<' ? buf + 1 : buf);
		if (buf[0] == '<')
			pl.l -= 1;
		full = !uri_decode(&uri, &pl) && fwd_uri_is_us(sip, &uri);
		quick = fwd_ruri_is_us(sip, buf);
		if (full == quick)
			++same;
		else
			printf("# %s: full %d, quick %d\n", buf, full, quick);
	}
	CHECK(same == ARRAY_SIZE(fmts), "is it us: the quick reading and "
	      "libre's decoders agree on every shape");
}


int main(void)
{
	struct sa laddr, dst;
	int err;

	err = libre_init();
	if (!err)
		err = sip_alloc(&sip, NULL, 16, 16, 16, "test", NULL, NULL);
	if (!err)
		err = sa_set_str(&laddr, "127.0.0.1", 0);
	if (!err)
		err = sip_transp_add(sip, SIP_TRANSP_UDP, &laddr);
	if (!err)
		err = sa_set_str(&dst, "127.0.0.1", 5060);
	if (!err)
		err = sip_transp_laddr(sip, &laddr, SIP_TRANSP_UDP, &dst);
	CHECK(!err, "a libre stack on 127.0.0.1");
	if (err)
		goto out;
	port = sa_port(&laddr);

	test_routes();
	test_is_us();
	test_request();
	test_response();

 out:
	if (sip)
		sip_close(sip, true);
	sip = mem_deref(sip);
	libre_close();

	printf("1..%d\n", ntest);

	return nfail ? 1 : 0;
}
