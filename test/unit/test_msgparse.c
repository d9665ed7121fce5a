/**
 * test/unit/test_msgparse.c  libre_ext/msgparse.c against libre's decoder
 *
 * libre_ext_msg_decode() (server/libre_ext/msgparse.c) must decode a
 * SIP message exactly as libre 1.1.0's own sip_msg_decode() does, which
 * is still in libre.so: dlsym(RTLD_NEXT, "sip_msg_decode") finds it.
 * (Its header decoders, sip_via_decode() and the others, are ours in
 * both: test_fastparse.c compares those with libre's.) For every input
 * both decode a copy of the same buffer, and the test compares: the
 * return value, the buffer's position after it, and on success every
 * field of struct sip_msg (the start line, the decoded Request-URI, the
 * first Via, To, From, CSeq, Content-Type, the kept headers; not the
 * random tag), the header list in order (name, value, id, as offsets
 * into the buffer) and each of the 32 hash buckets in order.
 *
 * Inputs: ordinary messages written here; the RFC 4475/5118 torture
 * corpus (argv[1], a directory with rfc4475/ and rfc5118/wire/); every
 * prefix of some of them (a stream transport decodes partial messages:
 * ENODATA); and random mutations of all of them, argv[2] rounds: bytes
 * replaced by SIP delimiters, inserted, deleted, lines swapped.
 */
#include <dirent.h>
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>
#include <re.h>
#include "libre_ext.h"
#include "testutil.h"


typedef int (decode_fn)(struct sip_msg **msgp, struct mbuf *mb);

static decode_fn *orig;
static unsigned long ncompared, nok;
static unsigned mismatches;

static const char *messages[] = {
	"INVITE sip:bob@biloxi.example.com SIP/2.0\r\n"
	"Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds"
	";rport\r\n"
	"Via: SIP/2.0/TCP [2001:db8::1]:5061;branch=z9hG4bK-2;received=1.2.3.4,"
	" SIP/2.0/UDP 10.0.0.1:5070;branch=z9hG4bK-3\r\n"
	"Max-Forwards: 70\r\n"
	"To: Bob <sip:bob@biloxi.example.com>\r\n"
	"From: \"Alice \\\"A\\\" <x>\" <sip:alice@atlanta.example.com>"
	";tag=1928301774\r\n"
	"Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n"
	"CSeq: 314159 INVITE\r\n"
	"Contact: <sip:alice@pc33.atlanta.example.com>;q=0.7, "
	"\"x,y\" <sip:a2@h;transport=tcp>;expires=60\r\n"
	"Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>\r\n"
	"Record-Route: <sip:rr@10.0.0.9;lr>\r\n"
	"Supported: replaces, timer\r\n"
	"Allow: INVITE,ACK , CANCEL,,BYE\r\n"
	"X-Custom: a, b\r\n"
	"Subject: folded\r\n continued\r\n\tand again\r\n"
	"Content-Type: application/sdp\r\n"
	"Content-Length: 4\r\n"
	"\r\n"
	"v=0\n",

	"SIP/2.0 180 Ringing\r\n"
	"v: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK.1\r\n"
	"f: <sip:a@b>;tag=1\r\n"
	"t: <sip:c@d>;tag=2\r\n"
	"i: cid\r\n"
	"CSeq: 1 INVITE\r\n"
	"m: <sip:c@127.0.0.1:5080>\r\n"
	"l: 0\r\n"
	"\r\n",

	"REGISTER sips:example.com SIP/2.0\r\n"
	"Via: SIP/2.0/TLS 192.0.2.1:5061;branch=z9hG4bKr\r\n"
	"To: sips:u@example.com\r\n"
	"From: sips:u@example.com;tag=x\r\n"
	"Call-ID: r@x\r\n"
	"CSeq: 2 REGISTER\r\n"
	"Contact: *\r\n"
	"Expires: 0\r\n"
	"Authorization: Digest username=\"u\", realm=\"r, s\", nonce=\"n\","
	" uri=\"sips:example.com\", response=\"abc\"\r\n"
	"Content-Length: 0\r\n"
	"\r\n",

	"OPTIONS sip:127.0.0.1 SIP/2.0\n"
	"Via : SIP/2.0/UDP 127.0.0.1:1\n"
	"To:<sip:127.0.0.1>\n"
	"From:<sip:x@127.0.0.1>;tag=1\n"
	"Call-ID:1\n"
	"CSeq:1 OPTIONS\n"
	"Accept: application/sdp, \"quoted,comma\", text/plain\n"
	"\n",
};


/* ---- comparing two decoded messages -------------------------------------- */

/* a struct pl as an offset into the buffer (or -1 for NULL) and a length */
static void pl_pos(const struct pl *pl, const uint8_t *base, long *o,
		   size_t *l)
{
	*o = pl->p ? (long)((const uint8_t *)pl->p - base) : -1;
	*l = pl->l;
}


static bool pl_same(const struct pl *a, const uint8_t *ba,
		    const struct pl *b, const uint8_t *bb)
{
	long oa, ob;
	size_t la, lb;

	pl_pos(a, ba, &oa, &la);
	pl_pos(b, bb, &ob, &lb);

	return oa == ob && la == lb;
}


static bool uri_same(const struct uri *a, const uint8_t *ba,
		     const struct uri *b, const uint8_t *bb)
{
	return pl_same(&a->scheme, ba, &b->scheme, bb) &&
		pl_same(&a->user, ba, &b->user, bb) &&
		pl_same(&a->password, ba, &b->password, bb) &&
		pl_same(&a->host, ba, &b->host, bb) &&
		pl_same(&a->path, ba, &b->path, bb) &&
		pl_same(&a->params, ba, &b->params, bb) &&
		pl_same(&a->headers, ba, &b->headers, bb) &&
		a->af == b->af && a->port == b->port;
}


static bool taddr_same(const struct sip_taddr *a, const uint8_t *ba,
		       const struct sip_taddr *b, const uint8_t *bb)
{
	return pl_same(&a->dname, ba, &b->dname, bb) &&
		pl_same(&a->auri, ba, &b->auri, bb) &&
		uri_same(&a->uri, ba, &b->uri, bb) &&
		pl_same(&a->params, ba, &b->params, bb) &&
		pl_same(&a->tag, ba, &b->tag, bb) &&
		pl_same(&a->val, ba, &b->val, bb);
}


static bool hdrs_same(const struct list *la, const uint8_t *ba,
		      const struct list *lb, const uint8_t *bb)
{
	const struct le *a = list_head(la), *b = list_head(lb);

	for (; a && b; a = a->next, b = b->next) {
		const struct sip_hdr *ha = a->data, *hb = b->data;

		if (ha->id != hb->id || !pl_same(&ha->name, ba, &hb->name, bb)
		    || !pl_same(&ha->val, ba, &hb->val, bb))
			return false;
	}

	return !a && !b;
}


/* "" when the same, else the first field that differs */
static const char *msg_diff(const struct sip_msg *a, const uint8_t *ba,
			    const struct sip_msg *b, const uint8_t *bb)
{
	uint32_t i;

	if (a->req != b->req)
		return "req";
	if (!pl_same(&a->ver, ba, &b->ver, bb))
		return "ver";
	if (!pl_same(&a->met, ba, &b->met, bb))
		return "met";
	if (!pl_same(&a->ruri, ba, &b->ruri, bb))
		return "ruri";
	if (!uri_same(&a->uri, ba, &b->uri, bb))
		return "uri";
	if (a->scode != b->scode)
		return "scode";
	if (!pl_same(&a->reason, ba, &b->reason, bb))
		return "reason";
	if (!pl_same(&a->via.sentby, ba, &b->via.sentby, bb) ||
	    !pl_same(&a->via.params, ba, &b->via.params, bb) ||
	    !pl_same(&a->via.branch, ba, &b->via.branch, bb) ||
	    !pl_same(&a->via.val, ba, &b->via.val, bb) ||
	    a->via.tp != b->via.tp ||
	    memcmp(&a->via.addr, &b->via.addr, sizeof(a->via.addr)))
		return "via";
	if (!taddr_same(&a->to, ba, &b->to, bb))
		return "to";
	if (!taddr_same(&a->from, ba, &b->from, bb))
		return "from";
	if (a->cseq.num != b->cseq.num ||
	    !pl_same(&a->cseq.met, ba, &b->cseq.met, bb))
		return "cseq";
	if (!pl_same(&a->ctyp.type, ba, &b->ctyp.type, bb) ||
	    !pl_same(&a->ctyp.subtype, ba, &b->ctyp.subtype, bb) ||
	    !pl_same(&a->ctyp.params, ba, &b->ctyp.params, bb))
		return "ctyp";
	if (!pl_same(&a->callid, ba, &b->callid, bb) ||
	    !pl_same(&a->maxfwd, ba, &b->maxfwd, bb) ||
	    !pl_same(&a->expires, ba, &b->expires, bb) ||
	    !pl_same(&a->clen, ba, &b->clen, bb))
		return "callid/maxfwd/expires/clen";
	if (!hdrs_same(&a->hdrl, ba, &b->hdrl, bb))
		return "header list";
	for (i = 0; i < 32; i++)
		if (!hdrs_same(hash_list(a->hdrht, i), ba,
			       hash_list(b->hdrht, i), bb))
			return "header hash";
	if (a->sock || b->sock || a->mb == NULL || b->mb == NULL)
		return "sock/mb";

	return "";
}


static void escape_print(const char *p, size_t n)
{
	size_t i;

	printf("#   input (%zu bytes): \"", n);
	for (i = 0; i < n && i < 400; i++) {
		unsigned char c = (unsigned char)p[i];

		if (c == '\r')
			printf("\\r");
		else if (c == '\n')
			printf("\\n");
		else if (c < 32 || c > 126 || c == '"' || c == '\\')
			printf("\\x%02x", c);
		else
			putchar(c);
	}
	printf("%s\"\n", n > 400 ? "..." : "");
}


/* decode buf with both; true if they agree */
static bool compare(const char *buf, size_t len)
{
	struct mbuf *ma = mbuf_alloc(len + 1), *mb = mbuf_alloc(len + 1);
	struct sip_msg *a = NULL, *b = NULL;
	const char *what = "";
	int ea, eb;
	bool same;

	if (!ma || !mb) {
		mem_deref(ma);
		mem_deref(mb);
		return true;
	}
	(void)mbuf_write_mem(ma, (const uint8_t *)buf, len);
	(void)mbuf_write_mem(mb, (const uint8_t *)buf, len);
	ma->pos = mb->pos = 0;

	ea = libre_ext_msg_decode(&a, ma);
	eb = orig(&b, mb);

	if (ea != eb)
		what = "return value";
	else if (ma->pos != mb->pos)
		what = "buffer position";
	else if (!ea)
		what = msg_diff(a, ma->buf, b, mb->buf);

	same = !*what;
	++ncompared;
	if (!ea && same)
		++nok;
	if (!same && ++mismatches <= 20) {
		printf("# mismatch: %s (ours %d, libre's %d)\n", what, ea, eb);
		escape_print(buf, len);
	}

	mem_deref(a);
	mem_deref(b);
	mem_deref(ma);
	mem_deref(mb);

	return same;
}


/* ---- inputs ---------------------------------------------------------------- */

struct corpus {
	char **buf;
	size_t *len;
	size_t n, cap;
};


static void corpus_add(struct corpus *c, const char *p, size_t n)
{
	if (c->n == c->cap) {
		c->cap = c->cap ? 2 * c->cap : 64;
		c->buf = realloc(c->buf, c->cap * sizeof(*c->buf));
		c->len = realloc(c->len, c->cap * sizeof(*c->len));
		if (!c->buf || !c->len)
			abort();
	}
	c->buf[c->n] = malloc(n + 1);
	if (!c->buf[c->n])
		abort();
	memcpy(c->buf[c->n], p, n);
	c->len[c->n++] = n;
}


/* every regular file of dir (rfc4475/ names them *.dat, rfc5118/wire/
 * has no extension) */
static size_t load_dir(struct corpus *c, const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	size_t n = 0;

	if (!d)
		return 0;

	while ((de = readdir(d))) {
		char path[1200], buf[65536];
		size_t len;
		FILE *f;

		if (de->d_name[0] == '.' || de->d_type == DT_DIR)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		f = fopen(path, "rb");
		if (!f)
			continue;
		len = fread(buf, 1, sizeof(buf), f);
		fclose(f);
		corpus_add(c, buf, len);
		++n;
	}
	closedir(d);

	return n;
}


static uint32_t rng = 2463534242u;

static uint32_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 17;
	rng ^= rng << 5;

	return rng;
}


static const char delims[] = ";:@<>\"\\ \t\r\n=,?&[]/.-+0123456789abcdefXx";

static size_t mutate(char *out, size_t cap, const char *in, size_t n)
{
	size_t len = n < cap ? n : cap, k, i;

	memcpy(out, in, len);
	k = 1 + rnd() % 4;
	while (k--) {
		size_t at = len ? rnd() % len : 0;
		char c = (rnd() % 16) ? delims[rnd() % (sizeof(delims) - 1)] :
			(char)rnd();

		switch (rnd() % 4) {

		case 0:         /* replace */
			if (len)
				out[at] = c;
			break;

		case 1:         /* insert */
			if (len < cap) {
				memmove(out + at + 1, out + at, len - at);
				out[at] = c;
				++len;
			}
			break;

		case 2:         /* delete */
			if (len) {
				memmove(out + at, out + at + 1, len - at - 1);
				--len;
			}
			break;

		default:        /* a run of one delimiter */
			for (i = 0; i < 3 && at + i < len; i++)
				out[at + i] = c;
			break;
		}
	}

	return len;
}


int main(int argc, char **argv)
{
	const char *dir = argc > 1 ? argv[1] : NULL;
	unsigned long rounds = argc > 2 ? strtoul(argv[2], NULL, 10) : 100000;
	struct corpus c = {0};
	unsigned long i, same = 0, n0, files = 0;
	char name[200], path[1024], *buf;

	if (libre_init())
		return 1;

	orig = (decode_fn *)dlsym(RTLD_NEXT, "sip_msg_decode");
	CHECK(orig && orig != (decode_fn *)libre_ext_msg_decode,
	      "libre's own sip_msg_decode is there to compare with");
	if (!orig)
		return 1;

	for (i = 0; i < ARRAY_SIZE(messages); i++)
		corpus_add(&c, messages[i], strlen(messages[i]));
	if (dir) {
		snprintf(path, sizeof(path), "%s/rfc4475", dir);
		files += load_dir(&c, path);
		snprintf(path, sizeof(path), "%s/rfc5118/wire", dir);
		files += load_dir(&c, path);
	}
	printf("# %zu messages, %lu of them from the torture corpus\n",
	       c.n, files);

	for (i = 0; i < c.n; i++)
		same += compare(c.buf[i], c.len[i]);
	snprintf(name, sizeof(name), "the %zu whole messages decode alike "
		 "(%lu decoded without error)", c.n, nok);
	CHECK(same == c.n && nok >= ARRAY_SIZE(messages) + files / 3, name);

	/* every prefix of the built-in messages: ENODATA where a stream
	 * waits for more, the same position where it does not */
	same = 0;
	n0 = ncompared;
	for (i = 0; i < ARRAY_SIZE(messages); i++) {
		size_t k, len = strlen(messages[i]);

		for (k = 0; k <= len; k++)
			same += compare(messages[i], k);
	}
	snprintf(name, sizeof(name), "every prefix of the built-in messages "
		 "(%lu) decodes alike", ncompared - n0);
	CHECK(same == ncompared - n0 && ncompared - n0 > 1000, name);

	/* random mutations */
	buf = malloc(70000);
	if (!buf)
		return 1;
	same = 0;
	n0 = nok;
	for (i = 0; i < rounds; i++) {
		size_t k = rnd() % c.n;
		size_t len = mutate(buf, 69000, c.buf[k], c.len[k]);

		same += compare(buf, len);
	}
	snprintf(name, sizeof(name), "%lu random mutations decode alike "
		 "(%lu of them without error)", rounds, nok - n0);
	CHECK(same == rounds && (rounds < 100 || nok - n0 > rounds / 10),
	      name);
	free(buf);

	for (i = 0; i < c.n; i++)
		free(c.buf[i]);
	free(c.buf);
	free(c.len);

	printf("# %lu comparisons, %u mismatches\n", ncompared, mismatches);
	printf("1..%d\n", ntest);
	libre_close();

	return nfail ? 1 : 0;
}
