/**
 * server/libre_ext/msgparse.c  libre's SIP message decoder, faster
 *
 * libre_ext_msg_decode() is libre 1.1.0's sip_msg_decode() (src/sip/
 * msg.c), which msgdecode.c's sip_msg_decode() (the one libre's
 * transports call, overrides.list) now calls instead of libre's own.
 * Why: after fastparse.c, decoding was still ~40% of a proxied call's
 * instructions, half of it in this one function: a switch per byte of
 * every header, and three allocations and a hash-table flush per header.
 *
 * Same results: the start line is matched as libre's re_regex() pattern
 * "[^ \t\r\n]+ [^ \t\r\n]+ [^\r\n]*[\r]*[\n]1" matches it at the
 * buffer's start (a match anywhere else is refused by libre too); the
 * header loop is libre's state machine, transcribed, with one change:
 * a run of bytes that only continue a header name or a value (no blank,
 * CR, LF, quote, and no ':' in a name, no ',' in a comma-separated
 * header) is taken in one step, doing what libre does for each of them.
 * Headers are filed exactly as libre files them (its quirks included:
 * a Via or Route line split at commas is listed as its pieces, another
 * comma-separated header as its whole line, the pieces only hashed), and
 * the same headers are decoded (first Via, To, From, CSeq,
 * Content-Type; Call-ID, Max-Forwards, Content-Length and Expires
 * kept), with the same errors.
 *
 * Memory: the message, its header table and its first 24 headers are
 * one allocation; more headers come in blocks of 32. The headers are
 * not libre memory objects: nobody may mem_ref() one (libre does not;
 * nor do we).
 * test/unit/test_fastparse.c decodes the torture corpus, ordinary
 * messages and random mutations of them with this and with libre's
 * own, and compares every field and every header, in list and hash
 * order.
 */
#include <ctype.h>
#include <stddef.h>
#include <string.h>
#include <re.h>
#include "libre_ext.h"


enum {
	HDR_HASH_SIZE = 32,      /* libre's */
	STARTLINE_MAX = 8192,    /* libre's */
	HDRS_INLINE = 24,
	HDRS_BLOCK = 32,
};

struct hblock {
	struct hblock *next;
	struct sip_hdr hdr[HDRS_BLOCK];
};

/* libre 1.1's struct hash (src/hash/hash.c, private; libre_ext is for
 * that series only): the message's header table lives inside the
 * message, as does its bucket array, instead of two allocations more
 * per message. libre's hash functions only read bucket and bsize; no
 * one but our destructor frees msg->hdrht. */
struct xhash {
	struct list *bucket;
	uint32_t bsize;
};

struct xmsg {
	struct sip_msg msg;      /* first: a struct xmsg * is the msg */
	struct hblock *blocks;
	size_t used;             /* of the current block (or the inline) */
	struct xhash ht;         /* msg.hdrht */
	struct list buckets[HDR_HASH_SIZE];
	struct sip_hdr hdr[HDRS_INLINE];
};


static void destructor(void *arg)
{
	struct xmsg *x = arg;
	struct hblock *b = x->blocks;

	/* the header table and its buckets are part of *x */
	mem_deref(x->msg.sock);
	mem_deref(x->msg.mb);
	while (b) {
		struct hblock *next = b->next;

		mem_deref(b);
		b = next;
	}
}


static struct sip_hdr *hdr_new(struct xmsg *x)
{
	struct hblock *b;

	if (!x->blocks) {
		if (x->used < HDRS_INLINE)
			return &x->hdr[x->used++];
	}
	else if (x->used < HDRS_BLOCK) {
		return &x->blocks->hdr[x->used++];
	}

	b = mem_alloc(sizeof(*b), NULL);
	if (!b)
		return NULL;
	b->next = x->blocks;
	x->blocks = b;
	x->used = 1;

	return &b->hdr[0];
}


/* libre's hash_joaat_ci(): tolower() of each char (a plain char: bytes
 * over 127 are negative, and glibc's tolower() has its own answer for
 * those, so they go through it) */
static uint32_t joaat_ci(const char *s, size_t n)
{
	uint32_t h = 0;
	size_t i;

	for (i = 0; i < n; i++) {
		int c = s[i];

		if (c >= 'A' && c <= 'Z')
			c += 32;
		else if (c < 0)
			c = tolower(c);
		h += (uint32_t)c;
		h += (h << 10);
		h ^= (h >> 6);
	}
	h += (h << 3);
	h ^= (h >> 11);
	h += (h << 15);

	return h;
}


static inline uint64_t ld64(const char *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));

	return v;
}


static inline uint32_t ld32(const char *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v));

	return v;
}


/* name (n long, 4 <= n <= 16) is lit (n lower case letters and '-'),
 * in any case, but for its '-': a byte | 0x20 is a lower-case letter
 * only for that letter in either case, and '-' only for '-' and CR (a
 * name may hold a CR: "Max\rForwards" of the torture tests), so the
 * caller checks each '-' itself. Two overlapping loads of 8 (or 4)
 * bytes, all inside the name. */
static inline bool name_is(const char *name, const char *lit, size_t n)
{
	const uint64_t m8 = 0x2020202020202020ull;
	const uint32_t m4 = 0x20202020u;

	if (n >= 8)
		return (ld64(name) | m8) == ld64(lit) &&
			(ld64(name + n - 8) | m8) == ld64(lit + n - 8);

	return (ld32(name) | m4) == ld32(lit) &&
		(ld32(name + n - 4) | m4) == ld32(lit + n - 4);
}


/* The headers of nearly every message, told without hashing (by their
 * first letter, then length and name): each id is what libre's hash of
 * the name gives (its enum is made of them) */
static enum sip_hdrid known_hdr(const char *p, size_t n)
{
	/* IS: at least 4 letters; IS_D: one '-', at d */
#define IS(lit) (n == sizeof(lit) - 1 && name_is(p, lit, sizeof(lit) - 1))
#define IS_D(lit, d) (IS(lit) && p[d] == '-')
	switch (p[0] | 0x20) {

	case 'a': return IS("allow") ? SIP_HDR_ALLOW : SIP_HDR_NONE;
	case 'c': return IS("cseq") ? SIP_HDR_CSEQ :
			IS_D("call-id", 4) ? SIP_HDR_CALL_ID :
			IS("contact") ? SIP_HDR_CONTACT :
			IS_D("content-type", 7) ? SIP_HDR_CONTENT_TYPE :
			IS_D("content-length", 7) ? SIP_HDR_CONTENT_LENGTH :
			SIP_HDR_NONE;
	case 'e': return IS("expires") ? SIP_HDR_EXPIRES : SIP_HDR_NONE;
	case 'f': return IS("from") ? SIP_HDR_FROM : SIP_HDR_NONE;
	case 'm': return IS_D("max-forwards", 3) ? SIP_HDR_MAX_FORWARDS :
			SIP_HDR_NONE;
	case 'r': return IS("route") ? SIP_HDR_ROUTE :
			IS_D("record-route", 6) ? SIP_HDR_RECORD_ROUTE :
			SIP_HDR_NONE;
	case 's': return IS("server") ? SIP_HDR_SERVER :
			IS("subject") ? SIP_HDR_SUBJECT :
			IS("supported") ? SIP_HDR_SUPPORTED : SIP_HDR_NONE;
	case 't': return (n == 2 && (p[1] | 0x20) == 'o') ? SIP_HDR_TO :
			SIP_HDR_NONE;
	case 'u': return IS_D("user-agent", 4) ? SIP_HDR_USER_AGENT :
			SIP_HDR_NONE;
	case 'v': return (n == 3 && (p[1] | 0x20) == 'i' &&
			  (p[2] | 0x20) == 'a') ? SIP_HDR_VIA : SIP_HDR_NONE;
	default:  return SIP_HDR_NONE;
	}
#undef IS_D
#undef IS
}


static enum sip_hdrid hdr_hash(const struct pl *name)
{
	enum sip_hdrid id;

	if (!name->l)
		return SIP_HDR_NONE;

	if (name->l > 1) {
		if ((name->p[0] == 'x' || name->p[0] == 'X') &&
		    name->p[1] == '-')
			return SIP_HDR_NONE;

		id = known_hdr(name->p, name->l);
		if (id != SIP_HDR_NONE)
			return id;

		return (enum sip_hdrid)(joaat_ci(name->p, name->l) & 0xfff);
	}

	/* compact headers */
	switch (name->p[0] | 0x20) {

	case 'a': return SIP_HDR_ACCEPT_CONTACT;
	case 'b': return SIP_HDR_REFERRED_BY;
	case 'c': return SIP_HDR_CONTENT_TYPE;
	case 'd': return SIP_HDR_REQUEST_DISPOSITION;
	case 'e': return SIP_HDR_CONTENT_ENCODING;
	case 'f': return SIP_HDR_FROM;
	case 'i': return SIP_HDR_CALL_ID;
	case 'j': return SIP_HDR_REJECT_CONTACT;
	case 'k': return SIP_HDR_SUPPORTED;
	case 'l': return SIP_HDR_CONTENT_LENGTH;
	case 'm': return SIP_HDR_CONTACT;
	case 'n': return SIP_HDR_IDENTITY_INFO;
	case 'o': return SIP_HDR_EVENT;
	case 'r': return SIP_HDR_REFER_TO;
	case 's': return SIP_HDR_SUBJECT;
	case 't': return SIP_HDR_TO;
	case 'u': return SIP_HDR_ALLOW_EVENTS;
	case 'v': return SIP_HDR_VIA;
	case 'x': return SIP_HDR_SESSION_EXPIRES;
	case 'y': return SIP_HDR_IDENTITY;
	default:  return SIP_HDR_NONE;
	}
}


static bool hdr_comma_separated(enum sip_hdrid id)
{
	switch (id) {

	case SIP_HDR_ACCEPT:
	case SIP_HDR_ACCEPT_CONTACT:
	case SIP_HDR_ACCEPT_ENCODING:
	case SIP_HDR_ACCEPT_LANGUAGE:
	case SIP_HDR_ACCEPT_RESOURCE_PRIORITY:
	case SIP_HDR_ALERT_INFO:
	case SIP_HDR_ALLOW:
	case SIP_HDR_ALLOW_EVENTS:
	case SIP_HDR_AUTHENTICATION_INFO:
	case SIP_HDR_CALL_INFO:
	case SIP_HDR_CONTACT:
	case SIP_HDR_CONTENT_ENCODING:
	case SIP_HDR_CONTENT_LANGUAGE:
	case SIP_HDR_ERROR_INFO:
	case SIP_HDR_HISTORY_INFO:
	case SIP_HDR_IN_REPLY_TO:
	case SIP_HDR_P_ASSERTED_IDENTITY:
	case SIP_HDR_P_ASSOCIATED_URI:
	case SIP_HDR_P_EARLY_MEDIA:
	case SIP_HDR_P_MEDIA_AUTHORIZATION:
	case SIP_HDR_P_PREFERRED_IDENTITY:
	case SIP_HDR_P_REFUSED_URI_LIST:
	case SIP_HDR_P_VISITED_NETWORK_ID:
	case SIP_HDR_PATH:
	case SIP_HDR_PERMISSION_MISSING:
	case SIP_HDR_PROXY_REQUIRE:
	case SIP_HDR_REASON:
	case SIP_HDR_RECORD_ROUTE:
	case SIP_HDR_REJECT_CONTACT:
	case SIP_HDR_REQUEST_DISPOSITION:
	case SIP_HDR_REQUIRE:
	case SIP_HDR_RESOURCE_PRIORITY:
	case SIP_HDR_ROUTE:
	case SIP_HDR_SECURITY_CLIENT:
	case SIP_HDR_SECURITY_SERVER:
	case SIP_HDR_SECURITY_VERIFY:
	case SIP_HDR_SERVICE_ROUTE:
	case SIP_HDR_SUPPORTED:
	case SIP_HDR_TRIGGER_CONSENT:
	case SIP_HDR_UNSUPPORTED:
	case SIP_HDR_VIA:
	case SIP_HDR_WARNING:
		return true;

	default:
		return false;
	}
}


/* libre's hdr_add(), into our blocks */
static int hdr_add(struct xmsg *x, const struct pl *name, enum sip_hdrid id,
		   const char *p, ssize_t l, bool atomic, bool line)
{
	struct sip_msg *msg = &x->msg;
	struct sip_hdr *hdr;
	bool keep = false;
	int err = 0;

	hdr = hdr_new(x);
	if (!hdr)
		return ENOMEM;

	memset(&hdr->le, 0, sizeof(hdr->le));
	memset(&hdr->he, 0, sizeof(hdr->he));
	hdr->name  = *name;
	hdr->val.p = p;
	hdr->val.l = l > 0 ? (size_t)l : 0;
	hdr->id    = id;

	switch (id) {

	case SIP_HDR_VIA:
	case SIP_HDR_ROUTE:
		if (!atomic)
			break;

		hash_append(msg->hdrht, id, &hdr->he, hdr);
		list_append(&msg->hdrl, &hdr->le, hdr);
		keep = true;
		break;

	default:
		if (atomic) {
			hash_append(msg->hdrht, id, &hdr->he, hdr);
			keep = true;
		}
		if (line) {
			list_append(&msg->hdrl, &hdr->le, hdr);
			keep = true;
		}
		break;
	}

	/* parse common headers */
	switch (id) {

	case SIP_HDR_VIA:
		if (!atomic || pl_isset(&msg->via.sentby))
			break;

		err = sip_via_decode(&msg->via, &hdr->val);
		break;

	case SIP_HDR_TO:
		err = sip_addr_decode((struct sip_addr *)&msg->to, &hdr->val);
		if (err)
			break;

		(void)msg_param_decode(&msg->to.params, "tag", &msg->to.tag);
		msg->to.val = hdr->val;
		break;

	case SIP_HDR_FROM:
		err = sip_addr_decode((struct sip_addr *)&msg->from,
				      &hdr->val);
		if (err)
			break;

		(void)msg_param_decode(&msg->from.params, "tag",
				       &msg->from.tag);
		msg->from.val = hdr->val;
		break;

	case SIP_HDR_CALL_ID:
		msg->callid = hdr->val;
		break;

	case SIP_HDR_CSEQ:
		err = sip_cseq_decode(&msg->cseq, &hdr->val);
		break;

	case SIP_HDR_MAX_FORWARDS:
		msg->maxfwd = hdr->val;
		break;

	case SIP_HDR_CONTENT_TYPE:
		err = msg_ctype_decode(&msg->ctyp, &hdr->val);
		break;

	case SIP_HDR_CONTENT_LENGTH:
		msg->clen = hdr->val;
		break;

	case SIP_HDR_EXPIRES:
		msg->expires = hdr->val;
		break;

	default:
		break;
	}

	/* an entry filed nowhere (a Via or Route line split at commas)
	 * gives its slot back, as libre's mem_deref() would free it */
	if (!keep)
		--x->used;

	return err;
}


/* The bytes a run can take in one step, for each phase of a header
 * (1: the byte only continues the name or the value). Blanks, CR, LF
 * and '"' always go through libre's switch; ':' too in a name, ',' in
 * a comma-separated header's value. */
static uint8_t tab_name[256], tab_value[256], tab_comsep[256];


__attribute__((constructor))
static void tables_init(void)
{
	int c;

	for (c = 0; c < 256; c++) {
		bool plain = c != ' ' && c != '\t' && c != '\r' && c != '\n' &&
			c != '"';

		tab_name[c] = plain && c != ':';
		tab_value[c] = plain;
		tab_comsep[c] = plain && c != ',';
	}
}


/* "[^ \t\r\n]+ [^ \t\r\n]+ [^\r\n]*[\r]*[\n]1" at p[0] */
static bool startline(const char *p, size_t l, struct pl *x, struct pl *y,
		      struct pl *z, const char **end)
{
	size_t i = 0, k;

#define TOKEN(c) ((c) != ' ' && (c) != '\t' && (c) != '\r' && (c) != '\n')
	for (k = i; i < l && TOKEN(p[i]); i++)
		;
	if (i == k || i == l || p[i] != ' ')
		return false;
	x->p = p + k;
	x->l = i - k;
	for (k = ++i; i < l && TOKEN(p[i]); i++)
		;
	if (i == k || i == l || p[i] != ' ')
		return false;
	y->p = p + k;
	y->l = i - k;
#undef TOKEN
	for (k = ++i; i < l && p[i] != '\r' && p[i] != '\n'; i++)
		;
	z->p = p + k;
	z->l = i - k;
	while (i < l && p[i] == '\r')
		++i;
	if (i == l || p[i] != '\n')
		return false;
	*end = p + i + 1;

	return true;
}


int libre_ext_msg_decode(struct sip_msg **msgp, struct mbuf *mb)
{
	struct pl x, y, z, name;
	const char *p, *v, *cv, *e;
	struct sip_msg *msg;
	struct xmsg *xm;
	bool comsep, quote;
	enum sip_hdrid id = SIP_HDR_NONE;
	uint32_t ws, lf;
	size_t l;
	int err;

	if (!msgp || !mb)
		return EINVAL;

	p = (const char *)mbuf_buf(mb);
	l = mbuf_get_left(mb);

	if (!p || !startline(p, l, &x, &y, &z, &e))
		return (l > STARTLINE_MAX) ? EBADMSG : ENODATA;

	xm = mem_alloc(sizeof(*xm), destructor);
	if (!xm)
		return ENOMEM;
	memset(xm, 0, offsetof(struct xmsg, hdr));
	msg = &xm->msg;

	xm->ht.bucket = xm->buckets;
	xm->ht.bsize = HDR_HASH_SIZE;
	msg->hdrht = (struct hash *)&xm->ht;

	msg->tag = rand_u64();
	msg->mb  = mem_ref(mb);
	msg->req = (z.l == 7 && !memcmp(z.p, "SIP/2.0", 7));  /* pl_strcmp */

	if (msg->req) {

		msg->met = x;
		msg->ruri = y;
		msg->ver = z;

		if (uri_decode(&msg->uri, &y)) {
			err = EBADMSG;
			goto out;
		}
	}
	else {
		msg->ver    = x;
		msg->scode  = pl_u32(&y);
		msg->reason = z;

		if (!msg->scode) {
			err = EBADMSG;
			goto out;
		}
	}

	l -= (size_t)(e - p);
	p = e;

	name.p = v = cv = NULL;
	name.l = ws = lf = 0;
	comsep = false;
	quote = false;

	for (; l > 0; p++, l--) {

		/* the rest of a line of a header not split at commas, up to
		 * its LF at once (memchr): what libre's switch does with
		 * those bytes is to start the value at the first that is not
		 * SP, HTAB or CR (if none has yet), count the blanks after
		 * the last such byte (ws) and take the LF (ws + 1, lf = 1) */
		if (!lf && name.l && !comsep) {
			const char *q = memchr(p, '\n', l);

			if (q) {
				const char *a = p, *t = q;

				while (a < q && (*a == ' ' || *a == '\t' ||
						 *a == '\r'))
					++a;
				if (a < q) {
					if (!cv) {
						quote = false;
						cv = a;
					}
					if (!v)
						v = a;
					while (t[-1] == ' ' || t[-1] == '\t' ||
					       t[-1] == '\r')
						--t;
					ws = (uint32_t)(q - t);
				}
				else {
					ws += (uint32_t)(q - p);
				}
				++ws;
				lf = 1;
				l -= (size_t)(q - p);
				p = q;
				continue;
			}
		}

		/* a run that only continues the name or the value: what
		 * libre's default case does for each of its bytes */
		if (!lf) {
			const uint8_t *tab = !name.l ? tab_name :
				comsep ? tab_comsep : tab_value;

			if (tab[(uint8_t)*p]) {
				size_t k = 1;

				/* four at a time while all four continue it */
				while (k + 4 <= l &&
				       (tab[(uint8_t)p[k]] &
					tab[(uint8_t)p[k + 1]] &
					tab[(uint8_t)p[k + 2]] &
					tab[(uint8_t)p[k + 3]]))
					k += 4;
				while (k < l && tab[(uint8_t)p[k]])
					++k;

				if (!name.p) {
					name.p = p;
					name.l = 0;
				}
				else if (name.l) {
					if (!cv) {
						quote = false;
						cv = p;
					}
					if (!v)
						v = p;
				}
				ws = 0;
				p += k - 1;
				l -= k - 1;
				continue;
			}
		}

		switch (*p) {

		case ' ':
		case '\t':
			lf = 0; /* folding */
			++ws;
			break;

		case '\r':
			++ws;
			break;

		case '\n':
			++ws;

			if (!lf++)
				break;

			++p; --l; /* eoh */

			/* fallthrough */

		default:
			if (lf || (*p == ',' && comsep && !quote)) {

				if (!name.l) {
					err = EBADMSG;
					goto out;
				}

				err = hdr_add(xm, &name, id, cv ? cv : p,
					      cv ? p - cv - ws : 0,
					      true, cv == v && lf);
				if (err)
					goto out;

				if (!lf) { /* comma separated */
					cv = NULL;
					break;
				}

				if (cv != v) {
					err = hdr_add(xm, &name, id,
						      v ? v : p,
						      v ? p - v - ws : 0,
						      false, true);
					if (err)
						goto out;
				}

				if (lf > 1) { /* eoh */
					err = 0;
					goto out;
				}

				comsep = false;
				name.p = NULL;
				cv = v = NULL;
				lf = 0;
			}

			if (!name.p) {
				name.p = p;
				name.l = 0;
				ws = 0;
			}

			if (!name.l) {
				if (*p != ':') {
					ws = 0;
					break;
				}

				name.l = (size_t)MAX((int)(p - name.p - ws), 0);
				if (!name.l) {
					err = EBADMSG;
					goto out;
				}

				id = hdr_hash(&name);
				comsep = hdr_comma_separated(id);
				break;
			}

			if (!cv) {
				quote = false;
				cv = p;
			}

			if (!v) {
				v = p;
			}

			if (*p == '"')
				quote = !quote;

			ws = 0;
			break;
		}
	}

	err = ENODATA;

 out:
	if (err)
		mem_deref(xm);
	else {
		*msgp = msg;
		mb->pos = mb->end - l;
	}

	return err;
}
