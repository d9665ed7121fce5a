/**
 * server/libre_ext/fastparse.c  libre's URI, address, Via and parameter
 *                               decoders without re_regex()
 *
 * WHY THIS FILE EXISTS
 *
 *   A proxied call costs sipstack ~415,000 instructions under callgrind
 *   (bench/proxy_bench.py), and a quarter of them are libre 1.1.0's small
 *   decoders: uri_decode() (two or three re_regex() patterns per URI, 24
 *   URIs per call), msg_param_decode() and msg_param_exists() (each
 *   prints its pattern with re_snprintf() before matching it: ~4,000
 *   instructions for one ";tag="), sip_addr_decode(), sip_via_decode()
 *   and sa_ntop() (glibc's inet_ntop formats IPv4 with sprintf); then
 *   sip_cseq_decode() (a compiled pattern still ~400 instructions). Even
 *   with fastregex.c's compiled patterns, a generic matcher walking
 *   generic ops is 5-10 times slower than a loop written for one pattern.
 *
 * SAME RESULTS
 *
 *   Each function here is libre's, with each re_regex() pattern it uses
 *   turned into straight code that does what libre's matcher does with
 *   that pattern (src/fmt/regex.c, see fastregex.c's header for its
 *   rules): the search is unanchored and tries start positions from the
 *   left; literals compare case-insensitively; classes are greedy and
 *   never give back; a literal that meets the end of the input ends the
 *   whole search (ENOENT); a class's struct pl is written as soon as its
 *   count is met, also in an attempt that fails later; '~' classes skip
 *   quoted strings and backslash escapes and lose their outer quotes.
 *   The partial results libre leaves in its outputs on a failure are left
 *   the same way. test/unit/test_fastparse.c compares every function with
 *   libre's own (dlsym(RTLD_NEXT)) on the RFC 4475/5118 torture corpus,
 *   on ordinary messages, on edge cases and on random inputs.
 *
 *   Where libre's search would retry start positions that must fail the
 *   same way (all the starts inside one run of a class that ends at the
 *   same place), this code skips them, writing what the last of them
 *   would have written: the same result in linear time where libre's is
 *   quadratic (a URI or a display name of many kilobytes).
 *
 * WHAT STAYS LIBRE'S
 *
 *   sa_set() (inet_pton) is still libre's, called only where the text
 *   could be an IP address; msg_param_decode() and msg_param_exists()
 *   with a name that would change the meaning of libre's pattern ('[',
 *   '\\') or overflow its 128-byte buffer call libre's original; so does
 *   sa_ntop() for anything but IPv4.
 */
#include <dlfcn.h>
#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <re.h>
#include "libre_ext.h"


/* libre's originals, for the cases kept theirs */
typedef int (param_fn)(const struct pl *pl, const char *name,
		       struct pl *val);
typedef int (ntop_fn)(const struct sa *sa, char *buf, int size);


static void *original(const char *name)
{
	return dlsym(RTLD_NEXT, name);
}


/* -- character sets ------------------------------------------------- */

/* Character classes as bits of one table (tables_init()): a class of
 * several characters is one load and one test instead of a chain of
 * comparisons per byte scanned */
enum {
	C_LWS   = 1 << 0,    /* SP HTAB CR LF */
	C_SEMI  = 1 << 1,    /* ; */
	C_QESC  = 1 << 2,    /* " \ */
	C_SP    = 1 << 3,    /* SP */
	C_SLASH = 1 << 4,    /* / */
	C_QMARK = 1 << 5,    /* ? */
	C_LT    = 1 << 6,    /* < */
	C_EQ    = 1 << 7,    /* = */
	C_HEX6  = 1 << 8,    /* 0-9 a-f A-F : */
	C_ALPHA = 1 << 9,    /* a-z A-Z */
};

static uint16_t ctab[256];


__attribute__((constructor))
static void tables_init(void)
{
	int c;

	for (c = 0; c < 256; c++) {
		uint16_t m = 0;

		if (c == ' ' || c == '\t' || c == '\r' || c == '\n')
			m |= C_LWS;
		if (c == ';')
			m |= C_SEMI;
		if (c == '"' || c == '\\')
			m |= C_QESC;
		if (c == ' ')
			m |= C_SP;
		if (c == '/')
			m |= C_SLASH;
		if (c == '?')
			m |= C_QMARK;
		if (c == '<')
			m |= C_LT;
		if (c == '=')
			m |= C_EQ;
		if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
		    (c >= 'A' && c <= 'F') || c == ':')
			m |= C_HEX6;
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
			m |= C_ALPHA;
		ctab[c] = m;
	}
}


static inline bool cis(char c, unsigned mask)
{
	return ctab[(uint8_t)c] & mask;
}


static inline bool is_lws(char c)            /* [ \t\r\n] */
{
	return cis(c, C_LWS);
}


static inline char lower(char c)
{
	return (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
}


/* The run of characters from p (n left) that fn accepts (inlined, so
 * that each fn is too) */
static inline __attribute__((always_inline)) size_t run(const char *p, size_t n, bool (*fn)(char))
{
	size_t i = 0;

	while (i + 4 <= n && fn(p[i]) && fn(p[i + 1]) && fn(p[i + 2]) &&
	       fn(p[i + 3]))
		i += 4;
	while (i < n && fn(p[i]))
		++i;

	return i;
}


static bool not_colon(char c)        { return c != ':'; }
static bool is_colon(char c)         { return c == ':'; }
static bool not_at(char c)           { return c != '@'; }
static bool not_at_colon(char c)     { return c != '@' && c != ':'; }
static bool not_semi(char c)         { return c != ';'; }
static bool not_gt(char c)           { return c != '>'; }
static bool not_qmark(char c)        { return c != '?'; }
static bool is_digit(char c)         { return c >= '0' && c <= '9'; }
static bool is_lws_fn(char c)        { return is_lws(c); }

static bool host_char(char c)        /* [^/;? ] */
{
	return !cis(c, C_SLASH | C_SEMI | C_QMARK | C_SP);
}

static bool path_char(char c)        /* [^;? ] */
{
	return !cis(c, C_SEMI | C_QMARK | C_SP);
}

static bool ipv6_char(char c)        /* [0-9a-f:], case-insensitive */
{
	return cis(c, C_HEX6);
}

static bool alpha(char c)            /* [A-Z], case-insensitive */
{
	return cis(c, C_ALPHA);
}

static bool sentby_char(char c)      /* [^; \t\r\n] */
{
	return !cis(c, C_SEMI | C_LWS);
}


static inline void pl_put(struct pl *pl, const char *p, size_t l)
{
	if (pl) {
		pl->p = p;
		pl->l = l;
	}
}


/* A '~' class (negated set, quotes and escapes skipped) from p, n left:
 * its length as libre's matcher counts it (quote stripping not yet
 * applied); stop: the class's own characters (C_ bits) */
static inline __attribute__((always_inline))
size_t qrun(const char *p, size_t n, unsigned stop)
{
	bool quote = false, esc = false;
	size_t i = 0;

	/* up to the first quote or backslash, a plain run */
	while (i < n && !cis(p[i], C_QESC | stop))
		++i;
	if (i == n || (p[i] != '"' && p[i] != '\\'))
		return i;                    /* the end, or a stop */

	for (; i < n; i++) {
		if (esc) {
			esc = false;
			continue;
		}
		if (p[i] == '\\') {
			esc = true;
			continue;
		}
		if (p[i] == '"') {
			quote = !quote;
			continue;
		}
		if (quote)
			continue;
		if (cis(p[i], stop))
			break;
	}

	return i;
}


/* Outer quotes off a '~' class's match, as libre does: *l is its count */
static inline void qstrip(const char **p, size_t *l)
{
	if (*l > 1 && (*p)[0] == '"' && (*p)[*l - 1] == '"') {
		*p += 1;
		*l -= 2;
	}
}


/* -- host and port -------------------------------------------------- */

/* "\\[[0-9a-f:]+\\][:]*[0-9]*" then "[^:]+[:]*[0-9]*" */
static int hostport(const struct pl *hp, struct pl *host, struct pl *port)
{
	const char *p = hp->p;
	size_t n = hp->l, s, k, c;

	if (!p)
		return EINVAL;

	/* IPv6 first: a '[', hex digits and colons, a ']' */
	for (s = 0; s < n; s++) {
		const char *b = memchr(p + s, '[', n - s);

		if (!b)
			break;
		s = (size_t)(b - p);
		k = run(p + s + 1, n - s - 1, ipv6_char);
		if (!k)
			continue;
		pl_put(host, p + s + 1, k);
		if (s + 1 + k == n)
			break;                   /* ']' at the end: ENOENT */
		if (p[s + 1 + k] != ']')
			continue;
		c = s + 2 + k;
		c += run(p + c, n - c, is_colon);
		pl_put(port, p + c, run(p + c, n - c, is_digit));
		return 0;
	}

	/* then any host up to a colon */
	for (s = 0; s < n && p[s] == ':'; s++)
		;
	if (s == n)
		return ENOENT;
	k = run(p + s, n - s, not_colon);
	pl_put(host, p + s, k);
	c = s + k;
	c += run(p + c, n - c, is_colon);
	pl_put(port, p + c, run(p + c, n - c, is_digit));

	return 0;
}


int uri_decode_hostport(const struct pl *hp, struct pl *host,
			struct pl *port)
{
	if (!hp || !host || !port)
		return EINVAL;

	return hostport(hp, host, port);
}


/* libre's pl_u32() of a run of digits (the value modulo 2^32, as its
 * sum wraps) */
static inline uint32_t digits_u32(const struct pl *pl)
{
	uint32_t v = 0;
	size_t i;

	for (i = 0; i < pl->l; i++)
		v = v * 10 + (uint32_t)(pl->p[i] - '0');

	return v;
}


/* -- URIs ----------------------------------------------------------- */

/* libre's uri_decode(): "[^:]+:[^@:]*[:]*[^@]*@[^/;? ]+[^;? ]*[^?]*[^]*"
 * (scheme, user, password, hostport, path, params, headers), else
 * "[^:]+:[^/;? ]+[^;? ]*[^?]*[^]*" (scheme, hostport, path, params,
 * headers). Both: 0, ENOENT, or EINVAL for a NULL text. */
static void uri_rest(const char *p, size_t n, size_t c, size_t k,
		     struct uri *uri, struct pl *hp)
{
	/* hostport (k long at c), "[^;? ]*" path, "[^?]*" params, the
	 * rest headers */
	pl_put(hp, p + c, k);
	c += k;
	k = run(p + c, n - c, path_char);
	pl_put(&uri->path, p + c, k);
	c += k;
	k = run(p + c, n - c, not_qmark);
	pl_put(&uri->params, p + c, k);
	c += k;
	pl_put(&uri->headers, p + c, n - c);
}


static int uri_userinfo(const char *p, size_t n, struct uri *uri,
			struct pl *hp)
{
	size_t s = 0, k, c, at;

	if (!p)
		return EINVAL;

	while (s < n) {
		k = run(p + s, n - s, not_colon);
		if (!k) {                        /* starts on a ':' */
			++s;
			continue;
		}
		pl_put(&uri->scheme, p + s, k);
		c = s + k;
		if (c == n)
			return ENOENT;           /* ':' at the end */
		++c;
		k = run(p + c, n - c, not_at_colon);
		pl_put(&uri->user, p + c, k);
		c += k;
		c += run(p + c, n - c, is_colon);
		k = run(p + c, n - c, not_at);
		pl_put(&uri->password, p + c, k);
		at = c + k;
		if (at == n)
			return ENOENT;           /* '@' at the end */
		c = at + 1;
		k = run(p + c, n - c, host_char);
		if (!k) {
			/* every start up to the scheme's ':' fails here the
			 * same way; the last of them wrote a 1-char scheme */
			c = s + run(p + s, n - s, not_colon);
			pl_put(&uri->scheme, p + c - 1, 1);
			s = c + 1;
			continue;
		}
		uri_rest(p, n, c, k, uri, hp);
		return 0;
	}

	return ENOENT;
}


static int uri_plain(const char *p, size_t n, struct uri *uri,
		     struct pl *hp)
{
	size_t s = 0, k, c;

	if (!p)
		return EINVAL;

	while (s < n) {
		k = run(p + s, n - s, not_colon);
		if (!k) {
			++s;
			continue;
		}
		pl_put(&uri->scheme, p + s, k);
		c = s + k;
		if (c == n)
			return ENOENT;
		++c;
		k = run(p + c, n - c, host_char);
		if (!k) {
			pl_put(&uri->scheme, p + c - 2, 1);
			s = c;
			continue;
		}
		uri_rest(p, n, c, k, uri, hp);
		return 0;
	}

	return ENOENT;
}


static int ip4_slow(const struct pl *pl, uint32_t *a);


/* glibc's inet_pton(AF_INET) on the text libre's sa_set() would give it
 * (the first 63 bytes, up to a NUL), when that text has only digits and
 * dots (else -1: ask inet_pton): 1 and *a (network order) or 0. The
 * usual case here: four dot-separated numbers 0-255 without a leading
 * zero and nothing after them; anything else is ip4_slow()'s, which
 * gives every verdict */
static int ip4(const struct pl *pl, uint32_t *a)
{
	const unsigned char *p = (const unsigned char *)pl->p;
	const unsigned char *e = p + pl->l;
	uint8_t b[4];
	int k;

	if (pl->l < 7 || pl->l > 15)
		return ip4_slow(pl, a);

	/* 7 to 15 bytes: the end is checked once a number's 1-3 digits
	 * and its dot are read, and a dot is never the last byte */
	for (k = 0; k < 4; k++) {
		unsigned d = (unsigned)*p - '0', v;

		if (d > 9)
			return ip4_slow(pl, a);
		v = d;
		if (++p < e && (d = (unsigned)*p - '0') <= 9) {
			if (!v)
				return ip4_slow(pl, a);  /* a leading zero */
			v = v * 10 + d;
			if (++p < e && (d = (unsigned)*p - '0') <= 9) {
				v = v * 10 + d;
				if (v > 255)
					return ip4_slow(pl, a);
				++p;
			}
		}
		b[k] = (uint8_t)v;
		if (k < 3) {
			if (p >= e - 1 || *p != '.')
				return ip4_slow(pl, a);
			++p;
		}
	}
	if (p != e)
		return ip4_slow(pl, a);

	memcpy(a, b, 4);

	return 1;
}


static int ip4_slow(const struct pl *pl, uint32_t *a)
{
	size_t i, n = pl->l < 63 ? pl->l : 63;
	unsigned octets = 0, cur = 0;
	bool digit = false;
	int verdict = 1;
	uint8_t b[4] = {0, 0, 0, 0};

	/* one pass: a verdict of 0 (inet_pton refuses) stands only if
	 * every byte is a digit or a dot, else the answer is -1 */
	for (i = 0; i < n; i++) {
		char c = pl->p[i];

		if (c >= '0' && c <= '9') {
			unsigned v = cur * 10 + (unsigned)(c - '0');

			if (!verdict)
				continue;
			if ((digit && cur == 0) || v > 255) {
				verdict = 0;     /* a leading zero, > 255 */
				continue;
			}
			cur = v;
			if (!digit) {
				if (++octets > 4) {
					verdict = 0;
					continue;
				}
				digit = true;
			}
		}
		else if (c == '.') {
			if (!verdict)
				continue;
			if (!digit || octets == 4) {
				verdict = 0;
				continue;
			}
			b[octets - 1] = (uint8_t)cur;
			cur = 0;
			digit = false;
		}
		else if (!c) {
			break;
		}
		else {
			return -1;
		}
	}
	if (!verdict || octets < 4 || !digit)
		return 0;
	b[3] = (uint8_t)cur;
	memcpy(a, b, 4);

	return 1;
}


int libre_ext_ip4(const struct pl *pl, uint32_t *a)
{
	return pl && pl->p ? ip4(pl, a) : 0;
}


/* Could inet_pton() read the text libre's sa_set() would give it (the
 * first 63 bytes, up to a NUL)? Only hex digits, ':' and '.' can be. */
static bool maybe_ip(const struct pl *pl)
{
	size_t i, n = pl->l < 63 ? pl->l : 63;

	for (i = 0; i < n; i++) {
		char c = lower(pl->p[i]);

		if (!c)
			break;
		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
		      c == ':' || c == '.'))
			return false;
	}

	return true;
}


int uri_decode(struct uri *uri, const struct pl *pl)
{
	struct pl port = PL_INIT, hp;
	struct sa addr;
	uint32_t a4;
	int err;

	if (!uri || !pl)
		return EINVAL;

	/* the first form needs an '@'; what a failed attempt wrote is
	 * cleared before the second */
	memset(uri, 0, sizeof(*uri));
	if (pl->p && memchr(pl->p, '@', pl->l)) {
		if (0 == uri_userinfo(pl->p, pl->l, uri, &hp) &&
		    0 == hostport(&hp, &uri->host, &port))
			goto out;

		memset(uri, 0, sizeof(*uri));
	}
	err = uri_plain(pl->p, pl->l, uri, &hp);
	if (err)
		return err;
	err = hostport(&hp, &uri->host, &port);
	if (err)
		return err;

 out:
	switch (ip4(&uri->host, &a4)) {

	case 1:
		uri->af = AF_INET;
		break;

	case 0:
		uri->af = AF_UNSPEC;
		break;

	default:
		if (maybe_ip(&uri->host) && 0 == sa_set(&addr, &uri->host, 0))
			uri->af = sa_af(&addr);
		else
			uri->af = AF_UNSPEC;
		break;
	}

	if (pl_isset(&port))
		uri->port = (uint16_t)digits_u32(&port);

	return 0;
}


/* -- name-addr ------------------------------------------------------ */

/* a display name's '~' class: [~ \t\r\n<] */
#define DNAME_STOP (C_LWS | C_LT)


/* "[~ \t\r\n<]*[ \t\r\n]*<[^>]+>[^]*" (dname, -, auri, params) */
static int name_addr(const char *p, size_t n, struct sip_addr *addr)
{
	size_t s, k, c;
	bool plain;

	if (!p)
		return EINVAL;
	if (!memchr(p, '<', n))
		return ENOENT;

	for (s = 0; s < n; ) {
		const char *dp = p + s;
		size_t dl = qrun(dp, n - s, DNAME_STOP), rl = dl;

		/* a run without quote or escape: every start inside it ends
		 * where it ends, and fails the same way */
		plain = !memchr(dp, '"', dl) && !memchr(dp, '\\', dl);
		c = s + dl;
		qstrip(&dp, &dl);
		pl_put(&addr->dname, dp, dl);
		c += run(p + c, n - c, is_lws_fn);
		if (c == n)
			return ENOENT;
		if (p[c] != '<')
			goto again;
		++c;
		k = run(p + c, n - c, not_gt);
		if (!k)
			goto again;
		pl_put(&addr->auri, p + c, k);
		c += k;
		if (c == n)
			return ENOENT;
		++c;
		pl_put(&addr->params, p + c, n - c);
		return 0;

	again:
		/* the next start that could differ is the run's end (an
		 * empty dname), which then writes its own dname */
		s += (plain && rl > 1) ? rl : 1;
	}

	return ENOENT;
}


int sip_addr_decode(struct sip_addr *addr, const struct pl *pl)
{
	size_t s;
	int err;

	if (!addr || !pl)
		return EINVAL;

	memset(addr, 0, sizeof(*addr));

	if (0 == name_addr(pl->p, pl->l, addr)) {
		if (!addr->dname.l)
			addr->dname.p = NULL;
		if (!addr->params.l)
			addr->params.p = NULL;
	}
	else {
		/* "[^;]+[^]*" (auri, params) */
		memset(addr, 0, sizeof(*addr));
		if (!pl->p)
			return EBADMSG;
		for (s = 0; s < pl->l && pl->p[s] == ';'; s++)
			;
		if (s == pl->l)
			return EBADMSG;
		addr->auri.p = pl->p + s;
		addr->auri.l = run(pl->p + s, pl->l - s, not_semi);
		addr->params.p = addr->auri.p + addr->auri.l;
		addr->params.l = pl->l - s - addr->auri.l;
	}

	err = uri_decode(&addr->uri, &addr->auri);
	if (err)
		memset(addr, 0, sizeof(*addr));

	return err;
}


/* -- parameters ----------------------------------------------------- */

/* A name libre's printed pattern would take as plain literals */
static bool literal_name(const char *name)
{
	size_t n = strlen(name);

	return n < 64 && !strpbrk(name, "[\\;");
}


/* At p (n left): name (nl long), case-insensitive. (Where libre's
 * search would stop at the end of the input inside the name, no later
 * start can match either: the name holds no ';'.) */
static bool name_at(const char *p, size_t n, const char *name, size_t nl)
{
	size_t i;

	if (n < nl)
		return false;
	for (i = 0; i < nl; i++)
		if (lower(p[i]) != lower(name[i]))
			return false;

	return true;
}


/* a parameter value's '~' class: [~ \t\r\n;] */
#define VALUE_STOP (C_LWS | C_SEMI)


/* The next ";" LWS NAME from *s on (libre's search: every ';' tried in
 * turn; *s set to that ';'): the position after the name, 0 if none */
static size_t param_at(const char *p, size_t n, size_t *s, const char *name,
		       size_t nl)
{
	for (; *s < n; ++*s) {
		const char *semi = memchr(p + *s, ';', n - *s);
		size_t c;

		if (!semi)
			break;
		*s = (size_t)(semi - p);
		c = *s + 1;
		c += run(p + c, n - c, is_lws_fn);
		if (name_at(p + c, n - c, name, nl))
			return c + nl;
	}

	return 0;
}


int msg_param_decode(const struct pl *pl, const char *name, struct pl *val)
{
	static param_fn *orig;
	const char *p;
	size_t n, nl, s, c;

	if (!pl || !name || !val)
		return EINVAL;

	if (!literal_name(name)) {
		if (!orig)
			orig = (param_fn *)original("msg_param_decode");
		return orig ? orig(pl, name, val) : ENOSYS;
	}

	/* ";[ \t\r\n]*NAME[ \t\r\n]*=[ \t\r\n]*[~ \t\r\n;]+" */
	p = pl->p;
	n = p ? pl->l : 0;
	nl = strlen(name);
	for (s = 0; (c = param_at(p, n, &s, name, nl)); s++) {
		const char *vp;
		size_t vl;

		c += run(p + c, n - c, is_lws_fn);
		if (c == n || p[c] != '=')
			continue;
		++c;
		c += run(p + c, n - c, is_lws_fn);
		vp = p + c;
		vl = qrun(vp, n - c, VALUE_STOP);
		qstrip(&vp, &vl);
		if (!vl)
			continue;
		val->p = vp;
		val->l = vl;
		return 0;
	}

	return ENOENT;
}


static bool exists_tail(char c)      /* [ \t\r\n;=] */
{
	return cis(c, C_LWS | C_SEMI | C_EQ);
}


int msg_param_exists(const struct pl *pl, const char *name, struct pl *val)
{
	static param_fn *orig;
	const char *p;
	size_t n, nl, s, c, t;

	if (!pl || !name || !val)
		return EINVAL;

	if (!literal_name(name)) {
		if (!orig)
			orig = (param_fn *)original("msg_param_exists");
		return orig ? orig(pl, name, val) : ENOSYS;
	}

	/* ";[ \t\r\n]*NAME[ \t\r\n;=]*": the first match decides */
	p = pl->p;
	n = p ? pl->l : 0;
	nl = strlen(name);
	s = 0;
	c = param_at(p, n, &s, name, nl);
	if (!c)
		return ENOENT;
	t = run(p + c, n - c, exists_tail);
	if (!t && c < n)
		return ENOENT;                   /* a longer name */
	val->p = p + s;
	val->l = c - s;

	return 0;
}


/* -- Via ------------------------------------------------------------ */

/* At p[c]: the literal lit (lower case; compared case-insensitively):
 * the next position, 0 on a mismatch, n + 1 when the input ended */
static size_t lit_at(const char *p, size_t n, size_t c, char lit)
{
	if (c == n)
		return n + 1;
	if (lower(p[c]) != lit)
		return 0;

	return c + 1;
}


/* libre's Via pattern: "SIP", LWS, '/', LWS, "2.0", LWS, '/', LWS, then
 * [A-Z]+ (transport), LWS, [^; \t\r\n]+ (sent-by), LWS, the rest
 * (params); LWS being [ \t\r\n]* */
static int via_match(const char *p, size_t n, struct pl *transp,
		     struct sip_via *via)
{
	static const char seq[] = "sip\x01/\x01" "2.0\x01/\x01";
	size_t s, c, k, i;

	if (!p)
		return EINVAL;

	for (s = 0; s < n; s++) {
		/* "SIP/2.0/" as it nearly always comes: the sequence matched
		 * with no LWS, as the loop below would */
		if (s == 0 && n > 8 && (p[0] | 0x20) == 's' &&
		    (p[1] | 0x20) == 'i' && (p[2] | 0x20) == 'p' &&
		    !memcmp(p + 3, "/2.0/", 5) && !is_lws(p[8])) {
			c = 8;
			goto transport;
		}
		c = s;
		for (i = 0; seq[i]; i++) {
			if (seq[i] == '\x01') {
				c += run(p + c, n - c, is_lws_fn);
				continue;
			}
			c = lit_at(p, n, c, seq[i]);
			if (c == n + 1)
				return ENOENT;
			if (!c)
				break;
		}
		if (seq[i])
			continue;
	transport:
		k = run(p + c, n - c, alpha);
		if (!k)
			continue;
		pl_put(transp, p + c, k);
		c += k;
		c += run(p + c, n - c, is_lws_fn);
		k = run(p + c, n - c, sentby_char);
		if (!k)
			continue;
		pl_put(&via->sentby, p + c, k);
		c += k;
		c += run(p + c, n - c, is_lws_fn);
		pl_put(&via->params, p + c, n - c);
		return 0;
	}

	return ENOENT;
}


int sip_via_decode(struct sip_via *via, const struct pl *pl)
{
	struct pl transp, host, port;
	uint32_t a4;
	int err;

	if (!via || !pl)
		return EINVAL;

	err = via_match(pl->p, pl->l, &transp, via);
	if (err)
		return err;

	/* libre's pl_strcmp(): exact case */
	via->tp = SIP_TRANSP_NONE;
	if (transp.l == 3) {
		if (!memcmp(transp.p, "TCP", 3))
			via->tp = SIP_TRANSP_TCP;
		else if (!memcmp(transp.p, "TLS", 3))
			via->tp = SIP_TRANSP_TLS;
		else if (!memcmp(transp.p, "UDP", 3))
			via->tp = SIP_TRANSP_UDP;
	}

	host.l = port.l = 0;
	host.p = port.p = NULL;
	err = hostport(&via->sentby, &host, &port);
	if (err)
		return err;

	sa_init(&via->addr, AF_INET);
	switch (ip4(&host, &a4)) {

	case 1:                                  /* as sa_set() sets it */
		via->addr.u.in.sin_addr.s_addr = a4;
		via->addr.u.in.sin_port = 0;
		via->addr.len = sizeof(struct sockaddr_in);
		break;

	case 0:
		break;

	default:
		if (maybe_ip(&host))
			(void)sa_set(&via->addr, &host, 0);
		break;
	}
	if (pl_isset(&port))
		sa_set_port(&via->addr, (uint16_t)digits_u32(&port));

	via->val = *pl;

	return msg_param_decode(&via->params, "branch", &via->branch);
}


/* -- CSeq ----------------------------------------------------------- */

static bool not_lws_fn(char c)       { return !is_lws(c); }


/* libre's "[0-9]+[ \t\r\n]+[^ \t\r\n]+" (number, -, method); the
 * method is written only when the whole pattern matched, so a failed
 * attempt leaves nothing behind, and the starts inside a run of digits
 * that failed fail the same way: skipped */
int sip_cseq_decode(struct sip_cseq *cseq, const struct pl *pl)
{
	const char *p;
	size_t n, s, d, w, m;
	struct pl num;

	if (!cseq || !pl)
		return EINVAL;

	p = pl->p;
	n = pl->l;
	if (!p)
		return EINVAL;          /* re_regex's answer */

	for (s = 0; s < n; s += d ? d : 1) {
		d = run(p + s, n - s, is_digit);
		if (!d)
			continue;
		w = run(p + s + d, n - s - d, is_lws_fn);
		if (!w)
			continue;
		m = run(p + s + d + w, n - s - d - w, not_lws_fn);
		if (!m)
			continue;

		cseq->met.p = p + s + d + w;
		cseq->met.l = m;
		num.p = p + s;
		num.l = d;
		cseq->num = digits_u32(&num);
		return 0;
	}

	return ENOENT;
}


/* -- Content-Type --------------------------------------------------- */

static bool type_char(char c)        /* [^ \t\r\n;/] */
{
	return !cis(c, C_LWS | C_SEMI | C_SLASH);
}

static bool subtype_char(char c)     /* [^ \t\r\n;] */
{
	return !cis(c, C_LWS | C_SEMI);
}


/* libre's msg_ctype_decode(): LWS, "[^ \t\r\n;/]+" (type), LWS, '/',
 * LWS, "[^ \t\r\n;]+" (subtype), "[^]*" (params), LWS being
 * "[ \t\r\n]*"; EBADMSG unless the match starts at the value's
 * start. A match there is taken straight (each class ends where the
 * next begins); anything else (an EBADMSG: no match, or one further
 * on, whose fields libre has written by then) is libre's own
 * function's to answer. */
int msg_ctype_decode(struct msg_ctype *ctype, const struct pl *pl)
{
	static int (*orig)(struct msg_ctype *, const struct pl *);
	const char *p;
	size_t n, c, t, k;

	if (!ctype || !pl)
		return EINVAL;

	p = pl->p;
	n = pl->l;
	if (p) {
		c = run(p, n, is_lws_fn);
		t = run(p + c, n - c, type_char);
		if (t) {
			k = c + t;
			k += run(p + k, n - k, is_lws_fn);
			if (k < n && p[k] == '/') {
				size_t u, st;

				++k;
				k += run(p + k, n - k, is_lws_fn);
				st = run(p + k, n - k, subtype_char);
				if (st) {
					ctype->type.p = p + c;
					ctype->type.l = t;
					ctype->subtype.p = p + k;
					ctype->subtype.l = st;
					u = k + st;
					ctype->params.p = p + u;
					ctype->params.l = n - u;
					return 0;
				}
			}
		}
	}

	if (!orig)
		orig = (int (*)(struct msg_ctype *, const struct pl *))
			original("msg_ctype_decode");

	return orig ? orig(ctype, pl) : ENOSYS;
}


/* -- addresses printed ---------------------------------------------- */

static char *put_u8(char *o, unsigned v)
{
	if (v >= 100)
		*o++ = (char)('0' + v / 100);
	if (v >= 10)
		*o++ = (char)('0' + v / 10 % 10);
	*o++ = (char)('0' + v % 10);

	return o;
}


int sa_ntop(const struct sa *sa, char *buf, int size)
{
	static ntop_fn *orig;
	const uint8_t *a;
	char tmp[16], *o = tmp;
	int i;

	if (!sa || !buf || !size)
		return EINVAL;

	if (sa->u.sa.sa_family != AF_INET) {
		if (!orig)
			orig = (ntop_fn *)original("sa_ntop");
		return orig ? orig(sa, buf, size) : ENOSYS;
	}

	/* inet_ntop(AF_INET): "d.d.d.d", nothing written if it does not
	 * fit (ENOSPC, which libre ignores) */
	a = (const uint8_t *)&sa->u.in.sin_addr.s_addr;
	for (i = 0; i < 4; i++) {
		if (i)
			*o++ = '.';
		o = put_u8(o, a[i]);
	}
	*o = '\0';
	if ((size_t)(o - tmp) < (size_t)(unsigned)size)
		memcpy(buf, tmp, (size_t)(o - tmp) + 1);

	return 0;
}
