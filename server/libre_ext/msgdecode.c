/**
 * server/libre_ext/msgdecode.c  Requests libre cannot decode, answered
 *
 * Replaces libre's sip_msg_decode() (overrides.list). libre 1.1.0 fails
 * the whole message when one of the headers it parses for its own use
 * is malformed: a Content-Type without a subtype ("Content-Type:
 * aaaa"), a CSeq without a number. Its transport then drops
 * the datagram with a "msg decode err" line on stderr, so the sender
 * gets no answer at all, where RFC 3261 §8.2 and §21.4.1 ask for a 400.
 *
 * Ours decodes with msgparse.c's libre_ext_msg_decode() (libre's
 * decoder, faster, same results) and, only when that fails (but
 * not for want of data) on a request, looks at those two headers: a
 * Content-Type that libre's own decoder refuses gets its name overwritten
 * ("X-Bad-..." of the same length: libre then files it as an unknown
 * header), a CSeq without a number gets "0 <the request's method>"
 * padded with spaces (libre trims them), and libre decodes again. The
 * bytes are changed in place, never moved, so the stream transports'
 * framing (libre reads positions off the same buffer) is unaffected.
 * When that decode works, the message is remembered as defective with
 * the reason (libre_ext_decode_defect), and the core answers it 400
 * with that reason before anyone sees it. Any other failure (bad Via,
 * From, To, Request-URI) stays libre's: no response could be routed.
 */
#include <string.h>
#include <strings.h>
#include <re.h>
#include "libre_ext.h"


/* the last message decoded after a repair, and why (loop thread) */
static __thread const struct sip_msg *defect_msg;
static __thread const char *defect_reason;


struct line {
	char *name;              /* into the buffer */
	size_t name_len;
	char *val;               /* value, after ':' and blanks */
	size_t val_len;          /* to the end of the logical line, less
				  * trailing blanks */
};


static bool is_blank(char c)
{
	return c == ' ' || c == '\t';
}


/* The next logical header line (folded lines joined) at *pp, before
 * end; false at the blank line or the end */
static bool next_line(char **pp, char *end, struct line *ln)
{
	char *p = *pp, *colon, *eol;

	if (p >= end || *p == '\r' || *p == '\n')
		return false;

	/* the end of the logical line: a line break not followed by a
	 * blank (folding) */
	eol = p;
	for (;;) {
		char *nl = memchr(eol, '\n', (size_t)(end - eol));

		if (!nl) {
			eol = end;
			break;
		}
		eol = nl + 1;
		if (eol >= end || !is_blank(*eol))
			break;
	}

	colon = memchr(p, ':', (size_t)(eol - p));
	ln->name = p;
	ln->name_len = colon ? (size_t)(colon - p) : 0;
	while (ln->name_len && is_blank(p[ln->name_len - 1]))
		--ln->name_len;
	ln->val = colon ? colon + 1 : eol;
	while (ln->val < eol && is_blank(*ln->val))
		++ln->val;
	ln->val_len = (size_t)(eol - ln->val);
	while (ln->val_len && (is_blank(ln->val[ln->val_len - 1]) ||
			       ln->val[ln->val_len - 1] == '\r' ||
			       ln->val[ln->val_len - 1] == '\n'))
		--ln->val_len;

	*pp = eol;

	return true;
}


static bool name_is(const struct line *ln, const char *full, char compact)
{
	if (ln->name_len == 1 && compact)
		return (ln->name[0] | 0x20) == compact;

	return ln->name_len == strlen(full) &&
		!strncasecmp(ln->name, full, ln->name_len);
}


/* Overwrite the header's name with "X-" and 'x's of the same length,
 * which libre files as an unknown extension header (a one-letter
 * compact name becomes 'g', which no header has) */
static void rename_header(struct line *ln)
{
	size_t i;

	if (ln->name_len == 1) {
		ln->name[0] = 'g';
		return;
	}

	ln->name[0] = 'X';
	ln->name[1] = '-';
	for (i = 2; i < ln->name_len; i++)
		ln->name[i] = 'x';
}


/* "0 METHOD" padded with blanks into the CSeq value, if it fits */
static bool cseq_rewrite(struct line *ln, const struct pl *met)
{
	size_t need = 2 + met->l;

	if (!pl_isset(met) || ln->val_len < need)
		return false;

	ln->val[0] = '0';
	ln->val[1] = ' ';
	memcpy(ln->val + 2, met->p, met->l);
	memset(ln->val + need, ' ', ln->val_len - need);

	return true;
}


/* Repairs the two headers libre would refuse; returns the reason of
 * the first repair (NULL: nothing to repair) */
static const char *repair(struct mbuf *mb, size_t pos0)
{
	char *p = (char *)mb->buf + pos0, *end = (char *)mb->buf + mb->end;
	const char *reason = NULL;
	struct pl met = PL_INIT;
	struct line ln;
	char *eol;

	/* a request: "METHOD SP Request-URI SP SIP/2.0" */
	eol = memchr(p, '\n', (size_t)(end - p));
	if (!eol || (size_t)(eol - p) < 12 || !memchr(p, ' ', (size_t)(eol - p))
	    || !strncmp(p, "SIP/", 4))
		return NULL;
	met.p = p;
	met.l = (size_t)((char *)memchr(p, ' ', (size_t)(eol - p)) - p);
	p = eol + 1;

	while (next_line(&p, end, &ln)) {
		struct pl v = {ln.val, ln.val_len};

		if (name_is(&ln, "Content-Type", 'c')) {
			struct msg_ctype ct;

			if (msg_ctype_decode(&ct, &v)) {
				rename_header(&ln);
				if (!reason)
					reason = "Bad Content-Type";
			}
		}
		else if (name_is(&ln, "CSeq", 0)) {
			struct sip_cseq cs;

			if (sip_cseq_decode(&cs, &v) && cseq_rewrite(&ln, &met)
			    && !reason)
				reason = "Bad CSeq";
		}
	}

	return reason;
}


int sip_msg_decode(struct sip_msg **msgp, struct mbuf *mb)
{
	const char *reason;
	size_t pos0;
	int err;

	defect_msg = NULL;
	defect_reason = NULL;

	pos0 = mb ? mb->pos : 0;
	err = libre_ext_msg_decode(msgp, mb);
	/* EBADMSG, or the ENOENT/EINVAL of a header decoder; ENODATA (not
	 * all there yet, on a stream) and ENOMEM stay as they are */
	if ((err != EBADMSG && err != ENOENT && err != EINVAL) || !mb ||
	    !msgp)
		return err;

	mb->pos = pos0;
	reason = repair(mb, pos0);
	if (!reason) {
		mb->pos = pos0;
		return err;
	}

	mb->pos = pos0;
	if (libre_ext_msg_decode(msgp, mb)) {
		mb->pos = pos0;
		return err;
	}

	defect_msg = *msgp;
	defect_reason = reason;

	return 0;
}


const char *libre_ext_decode_defect(const struct sip_msg *msg)
{
	return msg && msg == defect_msg ? defect_reason : NULL;
}
