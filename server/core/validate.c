/**
 * server/core/validate.c  Is a request well formed enough to act on?
 *
 * Owns the checks of RFC 3261 §8.2 (and the verdicts of the RFC 4475 and
 * RFC 5118 torture messages) that libre's parser leaves to its users:
 * mandatory headers, single-value headers given twice, CSeq syntax,
 * range and method (501 for an unknown method), Max-Forwards and
 * Content-Length ranges, Content-Length beyond the datagram, the syntax
 * of every Via and of the From/To/Contact/Route/Record-Route values
 * (quotes, display names, LWS in < >, addr-spec needing < >, empty
 * parameters), no NUL octet outside a quoted-string in any header, the
 * Request-URI (no < >, no NUL, a sound hostport, no headers) and its
 * scheme (416). What libre cannot parse at all (start line,
 * SIP version, a top Via without branch, ...) never gets here: see
 * docs/conformance.md. Exposes stack_validate() (core.h) and the
 * Require: check stack_unsupported().
 * Pure functions of the parsed message: no state, no I/O.
 */
#include <string.h>
#include <re.h>
#include "sipcore.h"
#include "core.h"
#include "libre_ext.h"


static bool pl_is_uint(const struct pl *pl, uint64_t max)
{
	uint64_t v = 0;
	size_t i;

	if (!pl_isset(pl) || pl->l > 20)
		return false;

	for (i = 0; i < pl->l; i++) {
		if (pl->p[i] < '0' || pl->p[i] > '9')
			return false;
		v = v * 10 + (uint64_t)(pl->p[i] - '0');
		if (v > max)
			return false;
	}

	return true;
}


static bool option_supported(const struct pl *tag)
{
	struct pl sup = PL(STACK_SUPPORTED), t;

	while (!re_regex(sup.p, sup.l, "[^, ]+", &t)) {
		if (!pl_casecmp(&t, tag))
			return true;
		sup.l -= (t.p + t.l) - sup.p;
		sup.p = t.p + t.l;
	}

	return false;
}


struct require_ctx {
	char *buf;
	size_t sz;
	size_t n;
};


static bool require_handler(const struct sip_hdr *hdr,
			    const struct sip_msg *msg, void *arg)
{
	struct require_ctx *rc = arg;
	struct pl v = hdr->val, t;
	(void)msg;

	while (!re_regex(v.p, v.l, "[^, \t]+", &t)) {
		if (!option_supported(&t)) {
			int n = re_snprintf(rc->buf + rc->n, rc->sz - rc->n,
					    "%s%r", rc->n ? ", " : "", &t);
			if (n > 0)
				rc->n += (size_t)n;
		}
		v.l -= (t.p + t.l) - v.p;
		v.p = t.p + t.l;
	}

	return false;
}


size_t stack_unsupported(const struct sip_msg *msg, char *buf, size_t sz)
{
	struct require_ctx rc = {buf, sz, 0};

	if (!msg || !buf || !sz)
		return 0;

	buf[0] = '\0';
	(void)sip_msg_hdr_apply(msg, true, SIP_HDR_REQUIRE, require_handler,
				&rc);

	return rc.n;
}


/* ------------------------------------------------------------------ *
 * Syntax scanners: RFC 3261 §25 grammar, just enough to tell the RFC
 * 4475 / RFC 5118 malformed messages from the valid ones. Header values
 * come delimited by libre, so CR and LF inside them are line folding.
 * ------------------------------------------------------------------ */

/* The character classes, one table lookup each (every header value of
 * every request is scanned: a strchr() per character was half of the
 * cost) */
enum {
	C_WS    = 1,        /* SP HTAB CR LF                               */
	C_DIGIT = 2,
	C_TOKEN = 4,        /* alphanum - . ! % * _ + ` ' ~  (RFC 3261 §25) */
	C_HOST  = 8,        /* alphanum . - _                              */
	C_HEX6  = 16,       /* inside [ ]: digits, a-f, A-F, ':', '.'      */
	C_NOTINURI = 32,    /* inside < >: LWS, '<', '"'                    */
};

static uint8_t ctab[256];


__attribute__((constructor))
static void ctab_init(void)
{
	int c;

	for (c = 0; c < 256; c++) {
		bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
		bool digit = c >= '0' && c <= '9';
		uint8_t v = 0;

		if (c == ' ' || c == '\t' || c == '\r' || c == '\n')
			v |= C_WS;
		if (digit)
			v |= C_DIGIT;
		if (alpha || digit || (c && strchr("-.!%*_+`'~", c)))
			v |= C_TOKEN;
		if (alpha || digit || c == '.' || c == '-' || c == '_')
			v |= C_HOST;
		if (digit || (c && strchr("abcdefABCDEF:.", c)))
			v |= C_HEX6;
		if ((v & C_WS) || c == '<' || c == '"')
			v |= C_NOTINURI;
		ctab[c] = v;
	}
}


static inline bool is_ws(char c)
{
	return ctab[(uint8_t)c] & C_WS;
}


static inline bool is_digit(char c)
{
	return ctab[(uint8_t)c] & C_DIGIT;
}


/* token = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`"
 *            / "'" / "~") */
static inline bool is_token(char c)
{
	return ctab[(uint8_t)c] & C_TOKEN;
}


static const char *skip_ws(const char *p, const char *e)
{
	while (p < e && is_ws(*p))
		++p;
	return p;
}


static const char *skip_token(const char *p, const char *e)
{
	while (p < e && is_token(*p))
		++p;
	return p;
}


/* p at the opening '"': the octet after the closing one, NULL if the
 * quoted-string is not terminated (a quoted-pair escapes any octet but
 * CR and LF) */
static const char *skip_quoted(const char *p, const char *e)
{
	for (++p; p < e; ++p) {
		if (*p == '"')
			return p + 1;
		if (*p == '\\') {
			if (p + 1 >= e || p[1] == '\r' || p[1] == '\n')
				return NULL;
			++p;
		}
	}

	return NULL;
}


/* *( SEMI token [ EQUAL ( token / host / quoted-string ) ] ) up to e.
 * Values are taken liberally (anything but separators: IPv6 references
 * with or without [ ], RFC 5118 §4.5); an empty name (";;") or an empty
 * value after '=' is malformed (RFC 4475 §3.1.2.1). */
static bool params_ok(const char *p, const char *e)
{
	for (;;) {
		const char *q;

		p = skip_ws(p, e);
		if (p == e)
			return true;
		if (*p != ';')
			return false;

		p = skip_ws(p + 1, e);
		q = skip_token(p, e);
		if (q == p)
			return false;

		p = skip_ws(q, e);
		if (p == e || *p != '=')
			continue;

		p = skip_ws(p + 1, e);
		if (p < e && *p == '"') {
			p = skip_quoted(p, e);
			if (!p)
				return false;
			continue;
		}

		q = p;
		while (p < e && !is_ws(*p) && *p != ';' && *p != ',' &&
		       *p != '"')
			++p;
		if (p == q)
			return false;
	}
}


/* host = hostname / IPv4address / IPv6reference; '_' is tolerated in
 * names, and the inside of [ ] is not checked beyond its character set
 * (RFC 5118 §4.10: tolerate "2001:db8:::192.0.2.1") */
static const char *skip_host(const char *p, const char *e)
{
	const char *q = p;

	if (p < e && *p == '[') {
		for (++p; p < e && *p != ']'; ++p) {
			if (!(ctab[(uint8_t)*p] & C_HEX6))
				return NULL;
		}
		return (p < e && p > q + 1) ? p + 1 : NULL;
	}

	while (p < e && (ctab[(uint8_t)*p] & C_HOST))
		++p;

	return p > q ? p : NULL;
}


/* [ ":" port ] after a host; NULL if a ':' is not followed by digits */
static const char *skip_port(const char *p, const char *e)
{
	const char *q;

	if (p == e || *p != ':')
		return p;

	q = ++p;
	while (p < e && is_digit(*p))
		++p;

	return (p > q && p - q <= 5) ? p : NULL;
}


/* One via-parm: sent-protocol LWS sent-by *( SEMI via-params ) */
static bool via_ok(const struct pl *v)
{
	const char *p = v->p, *e = v->p + v->l, *q;
	int i;

	for (i = 0; i < 3; i++) {      /* protocol-name / version / transport */
		p = skip_ws(p, e);
		q = skip_token(p, e);
		if (q == p)
			return false;
		p = skip_ws(q, e);
		if (i < 2) {
			if (p == e || *p != '/')
				return false;
			++p;
		}
	}

	if (p == q)                     /* LWS between transport and sent-by */
		return false;

	p = skip_host(p, e);
	if (!p)
		return false;
	p = skip_ws(p, e);
	p = skip_port(p, e);
	if (!p)
		return false;

	return params_ok(p, e);
}


/* name-addr / addr-spec, then *( SEMI generic-param ); for From, To,
 * Contact (also "*"), Route and Record-Route values */
static bool addr_ok(const struct pl *v, bool star)
{
	const char *p = v->p, *e = v->p + v->l, *q, *lt = NULL, *gt;
	bool inq = false;

	/* quotes balance and the first '<' outside of quotes (without a
	 * quote, simply the first '<') */
	if (!memchr(p, '"', v->l))
		lt = memchr(p, '<', v->l);
	else for (q = p; q < e; ++q) {
		if (inq) {
			if (*q == '\\')
				++q;
			else if (*q == '"')
				inq = false;
		}
		else if (*q == '"') {
			inq = true;
		}
		else if (*q == '<' && !lt) {
			lt = q;
		}
	}
	if (inq)
		return false;

	p = skip_ws(p, e);
	if (star && p < e && *p == '*' && skip_ws(p + 1, e) == e)
		return true;

	if (!lt) {
		/* addr-spec: a URI with ',', '?' or ';' must be in < >
		 * (RFC 3261 §20), so the URI ends at the first ';' */
		q = p;
		while (q < e && *q != ';' && !is_ws(*q)) {
			if (*q == '?' || *q == ',' || *q == '"' || *q == '>')
				return false;
			++q;
		}
		if (q == p || !memchr(p, ':', (size_t)(q - p)))
			return false;

		return params_ok(q, e);
	}

	/* display-name = *(token LWS) / quoted-string; UTF-8 octets are
	 * tolerated outside quotes, separators (',' of "Bell, Alexander")
	 * are not (RFC 4475 §3.1.2.15) */
	if (p < lt && *p == '"') {
		q = skip_quoted(p, e);
		if (!q || skip_ws(q, lt) != lt)
			return false;
	}
	else {
		for (q = p; q < lt; ++q) {
			if (!is_ws(*q) && !is_token(*q) &&
			    !((unsigned char)*q & 0x80))
				return false;
		}
	}

	/* no LWS inside < > (RFC 4475 §3.1.2.14) */
	gt = memchr(lt, '>', (size_t)(e - lt));
	if (!gt || gt == lt + 1)
		return false;
	for (q = lt + 1; q < gt; ++q) {
		if (ctab[(uint8_t)*q] & C_NOTINURI)
			return false;
	}
	if (!memchr(lt, ':', (size_t)(gt - lt)))
		return false;

	return params_ok(gt + 1, e);
}


/* A header line of name-addr / addr-spec values, split at the commas
 * that are outside quotes and < > (libre's split of Contact ignores
 * < >, and a user part may hold ',') */
static bool addr_list_ok(const struct pl *v, bool star)
{
	const char *p = v->p, *e = v->p + v->l, *start = p;
	bool inq = false, inb = false;
	struct pl piece;

	/* one value, the usual case: nothing to split */
	if (!memchr(p, ',', v->l))
		return addr_ok(v, star);

	for (; p < e; ++p) {
		if (inq) {
			if (*p == '\\')
				++p;
			else if (*p == '"')
				inq = false;
			continue;
		}

		if (*p == '"')
			inq = true;
		else if (*p == '<')
			inb = true;
		else if (*p == '>')
			inb = false;
		else if (*p == ',' && !inb) {
			piece.p = start;
			piece.l = (size_t)(p - start);
			if (!addr_ok(&piece, star))
				return false;
			start = p + 1;
		}
	}

	piece.p = start;
	piece.l = (size_t)(e - start);

	return addr_ok(&piece, star);
}


/* A NUL octet outside a quoted-string. RFC 3261 §25 admits octet 0 in
 * a header only as a quoted-pair ("\\" %x00 in a quoted-string: RFC
 * 4475 §3.1.1.2 puts one in a display name); anywhere else it is
 * malformed, and it would cut short what is kept of the value as a C
 * string: a target, an AOR, a dialog's Call-ID or tag (then no request
 * matches the dialog again: found by the fuzzer, test/fuzz/regressions/).
 * A quote that is never closed opens no quoted-string (finding 02). (A
 * comment may hold a quoted-pair too; none of ours is read.) */
static bool nul_outside_quotes(const struct pl *v)
{
	const char *p = v->p, *e = v->p + v->l;
	bool inq = false, quoted_nul = false;

	if (!memchr(p, '\0', v->l))
		return false;

	for (; p < e; ++p) {
		if (inq) {
			if (*p == '\\' && p + 1 < e) {
				quoted_nul |= p[1] == '\0';
				++p;
			}
			else if (*p == '"') {
				inq = false;
				quoted_nul = false;
			}
			else {
				quoted_nul |= *p == '\0';
			}
		}
		else if (*p == '"') {
			inq = true;
		}
		else if (*p == '\0') {
			return true;
		}
	}

	return inq && quoted_nul;
}


/* The reason phrase for a malformed header line, NULL if it is fine
 * (or not one we check). msg->hdrl holds Via and Route entries as
 * libre split them, and every other header as whole lines. */
static const char *hdr_problem(const struct sip_hdr *hdr)
{
	if (nul_outside_quotes(&hdr->val))
		return "NUL Octet in Header";

	switch (hdr->id) {

	case SIP_HDR_VIA:
		return via_ok(&hdr->val) ? NULL : "Bad Via Header";

	case SIP_HDR_FROM:
		return addr_list_ok(&hdr->val, false) ? NULL :
			"Bad From Header";

	case SIP_HDR_TO:
		return addr_list_ok(&hdr->val, false) ? NULL :
			"Bad To Header";

	case SIP_HDR_CONTACT:
		return addr_list_ok(&hdr->val, true) ? NULL :
			"Bad Contact Header";

	case SIP_HDR_ROUTE:
		return addr_list_ok(&hdr->val, false) ? NULL :
			"Bad Route Header";

	case SIP_HDR_RECORD_ROUTE:
		return addr_list_ok(&hdr->val, false) ? NULL :
			"Bad Record-Route Header";

	default:
		return NULL;
	}
}


/* CSeq = 1*DIGIT LWS Method, the number at most 2^32-1 */
static bool cseq_ok(const struct pl *v)
{
	const char *p = v->p, *e = v->p + v->l, *q;
	struct pl num;

	p = skip_ws(p, e);
	for (q = p; q < e && is_digit(*q); ++q)
		;
	num.p = p;
	num.l = (size_t)(q - p);
	if (!pl_is_uint(&num, 0xffffffffu))
		return false;

	p = skip_ws(q, e);
	if (p == q)
		return false;
	q = skip_token(p, e);

	return q > p && skip_ws(q, e) == e;
}


static bool method_known(const struct pl *met)
{
	struct pl known = PL(STACK_KNOWN_METHODS), m;

	while (!re_regex(known.p, known.l, "[^ ]+", &m)) {
		if (!pl_cmp(&m, met))
			return true;
		known.l -= (m.p + m.l) - known.p;
		known.p = m.p + m.l;
	}

	return false;
}


/* The Request-URI: not in < > (RFC 4475 §3.1.2.7); for sip/sips, a
 * well-formed hostport (RFC 5118 §4.2: an IPv6 address needs [ ]) and no
 * escaped headers (RFC 4475 §3.1.2.11). Other schemes are opaque here. */
static const char *ruri_problem(const struct sip_msg *msg)
{
	const struct pl *r = &msg->ruri;
	const char *p = r->p, *e = r->p + r->l, *at;

	if (!r->l || *p == '<' || e[-1] == '>' || memchr(p, '\0', r->l))
		return "Bad Request-URI";

	if (pl_strcasecmp(&msg->uri.scheme, "sip") &&
	    pl_strcasecmp(&msg->uri.scheme, "sips"))
		return NULL;

	p = memchr(p, ':', (size_t)(e - p));
	if (!p)
		return "Bad Request-URI";
	++p;

	/* userinfo cannot hold an unescaped '@', nor uri-params/headers */
	at = memchr(p, '@', (size_t)(e - p));
	if (at)
		p = at + 1;

	p = skip_host(p, e);
	if (p)
		p = skip_port(p, e);
	if (!p || (p < e && *p != ';' && *p != '?'))
		return "Bad Request-URI";

	if (memchr(p, '?', (size_t)(e - p)))
		return "Headers Not Allowed in Request-URI";

	return NULL;
}


/* One of the single-value headers twice? One pass over the header
 * list (none of them is split at commas, so each header is one entry,
 * as in libre's table that sip_msg_hdr_count() walks once per id) */
static bool single_value_twice(const struct sip_msg *msg)
{
	unsigned seen = 0;
	struct le *le;

	for (le = list_head(&msg->hdrl); le; le = le->next) {
		const struct sip_hdr *hdr = le->data;
		unsigned bit;

		switch (hdr->id) {

		case SIP_HDR_CALL_ID:        bit = 1u << 0; break;
		case SIP_HDR_FROM:           bit = 1u << 1; break;
		case SIP_HDR_TO:             bit = 1u << 2; break;
		case SIP_HDR_CSEQ:           bit = 1u << 3; break;
		case SIP_HDR_MAX_FORWARDS:   bit = 1u << 4; break;
		case SIP_HDR_CONTENT_LENGTH: bit = 1u << 5; break;
		case SIP_HDR_CONTENT_TYPE:   bit = 1u << 6; break;
		case SIP_HDR_EXPIRES:        bit = 1u << 7; break;
		default:                     continue;
		}
		if (seen & bit)
			return true;
		seen |= bit;
	}

	return false;
}


uint16_t stack_validate(const struct sip_msg *msg, const char **reason)
{
	const struct sip_hdr *hdr;
	const char *problem;
	struct le *le;

	/* a header libre refused, repaired to decode it (msgdecode.c) */
	problem = libre_ext_decode_defect(msg);
	if (problem) {
		*reason = problem;
		return 400;
	}

	if (!pl_isset(&msg->callid) || !pl_isset(&msg->from.auri) ||
	    !pl_isset(&msg->to.auri) || !pl_isset(&msg->cseq.met) ||
	    !pl_isset(&msg->via.sentby)) {
		*reason = "Missing Mandatory Header";
		return 400;
	}

	if (single_value_twice(msg)) {
		*reason = "Duplicate Single-Value Header";
		return 400;
	}

	hdr = sip_msg_hdr(msg, SIP_HDR_CSEQ);
	if (hdr && !cseq_ok(&hdr->val)) {
		*reason = "Bad CSeq";
		return 400;
	}

	/* RFC 4475 §3.1.2.18: an unknown method gets its 501 even so */
	if (pl_cmp(&msg->cseq.met, &msg->met)) {
		if (!method_known(&msg->met)) {
			*reason = "Not Implemented";
			return 501;
		}
		*reason = "CSeq Method Does Not Match Request";
		return 400;
	}

	if (pl_isset(&msg->maxfwd) && !pl_is_uint(&msg->maxfwd, 255)) {
		*reason = "Bad Max-Forwards";
		return 400;
	}

	if (pl_isset(&msg->clen) && !pl_is_uint(&msg->clen, 0xffffffffu)) {
		*reason = "Bad Content-Length";
		return 400;
	}

	/* RFC 3261 §18.3: over UDP the body is the rest of the datagram;
	 * more octets are ignored, fewer are an error. (Over a stream
	 * libre has cut the buffer at Content-Length already.) */
	if (pl_isset(&msg->clen) && msg->mb &&
	    pl_u32(&msg->clen) > mbuf_get_left(msg->mb)) {
		*reason = "Content-Length Exceeds Message";
		return 400;
	}

	/* the dialog's identity is kept as C strings (dialog.c): not even a
	 * quoted NUL there (a Call-ID's quotes quote nothing; a tag is a
	 * token, which libre does not check) */
	if (memchr(msg->callid.p, '\0', msg->callid.l) ||
	    (pl_isset(&msg->from.tag) &&
	     memchr(msg->from.tag.p, '\0', msg->from.tag.l)) ||
	    (pl_isset(&msg->to.tag) &&
	     memchr(msg->to.tag.p, '\0', msg->to.tag.l))) {
		*reason = "NUL Octet in Header";
		return 400;
	}

	for (le = list_head(&msg->hdrl); le; le = le->next) {
		problem = hdr_problem(le->data);
		if (problem) {
			*reason = problem;
			return 400;
		}
	}

	problem = ruri_problem(msg);
	if (problem) {
		*reason = problem;
		return 400;
	}

	if (pl_strcasecmp(&msg->uri.scheme, "sip") &&
	    pl_strcasecmp(&msg->uri.scheme, "sips")) {
		*reason = "Unsupported URI Scheme";
		return 416;
	}

	return 0;
}
