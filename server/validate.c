/**
 * server/validate.c  Is a request well formed enough to act on?
 *
 * Owns the checks of RFC 3261 §8.2 (and the verdicts of the RFC 4475 and
 * RFC 5118 torture messages) that libre's parser leaves to its users:
 * mandatory headers, single-value headers given twice, CSeq method and
 * range, Max-Forwards and Content-Length ranges, URI scheme. Exposes
 * stack_validate() (core.h) and the Require: check stack_unsupported().
 * Pure functions of the parsed message: no state, no I/O.
 */
#include <string.h>
#include <re.h>
#include "sipstack.h"
#include "core.h"


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


uint16_t stack_validate(const struct sip_msg *msg, const char **reason)
{
	const struct sip_hdr *hdr;

	if (!pl_isset(&msg->callid) || !pl_isset(&msg->from.auri) ||
	    !pl_isset(&msg->to.auri) || !pl_isset(&msg->cseq.met) ||
	    !pl_isset(&msg->via.sentby)) {
		*reason = "Missing Mandatory Header";
		return 400;
	}

	if (sip_msg_hdr_count(msg, SIP_HDR_CALL_ID) > 1 ||
	    sip_msg_hdr_count(msg, SIP_HDR_FROM) > 1 ||
	    sip_msg_hdr_count(msg, SIP_HDR_TO) > 1 ||
	    sip_msg_hdr_count(msg, SIP_HDR_CSEQ) > 1 ||
	    sip_msg_hdr_count(msg, SIP_HDR_MAX_FORWARDS) > 1 ||
	    sip_msg_hdr_count(msg, SIP_HDR_CONTENT_LENGTH) > 1) {
		*reason = "Duplicate Single-Value Header";
		return 400;
	}

	if (pl_cmp(&msg->cseq.met, &msg->met)) {
		*reason = "CSeq Method Does Not Match Request";
		return 400;
	}

	hdr = sip_msg_hdr(msg, SIP_HDR_CSEQ);
	if (hdr) {
		struct pl num;
		if (re_regex(hdr->val.p, hdr->val.l, "[0-9]+", &num) ||
		    !pl_is_uint(&num, 0xffffffffu)) {
			*reason = "Bad CSeq";
			return 400;
		}
	}

	if (pl_isset(&msg->maxfwd) && !pl_is_uint(&msg->maxfwd, 255)) {
		*reason = "Bad Max-Forwards";
		return 400;
	}

	if (pl_isset(&msg->clen) && !pl_is_uint(&msg->clen, 0xffffffffu)) {
		*reason = "Bad Content-Length";
		return 400;
	}

	if (pl_strcasecmp(&msg->uri.scheme, "sip") &&
	    pl_strcasecmp(&msg->uri.scheme, "sips")) {
		*reason = "Unsupported URI Scheme";
		return 416;
	}

	return 0;
}


