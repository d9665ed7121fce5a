/**
 * server/calls/sdpdir.c  SDP direction helpers (RFC 3264)
 *
 * Owns no state: reads and rewrites the direction attributes of a
 * session description as text, the rest kept byte-exact: the direction
 * an SDP offers, the one an answerer answers, the SDP with another
 * direction and a raised o= version, and whether an offer puts us on
 * hold (§8.4); and the check of an offer's body before anything takes
 * it. Exposes sdp_direction(), sdp_answer_dir(), sdp_set_direction()
 * and sdp_problem() in calls.h, sdp_is_hold(), call_body_check() and
 * call_body_refuse() in call_priv.h. Uses libre's pl, regex and mbuf,
 * the core's requests and log.
 */
#include <stdlib.h>
#include <string.h>
#include <re.h>
#include "calls.h"
#include "call_priv.h"


/* RFC 3264 §8.4: a peer holds us with sendonly/inactive (or the old
 * c=0.0.0.0 of RFC 2543) on every stream it keeps */
bool sdp_is_hold(const char *sdp, size_t len)
{
	struct pl p = {sdp, len}, line;
	bool hold = false, any = false;

	while (p.l && !re_regex(p.p, p.l, "[^\r\n]+", &line)) {
		if (!pl_strcmp(&line, "a=sendonly") ||
		    !pl_strcmp(&line, "a=inactive") ||
		    !pl_strcmp(&line, "c=IN IP4 0.0.0.0"))
			hold = true;
		else if (!pl_strcmp(&line, "a=sendrecv") ||
			 !pl_strcmp(&line, "a=recvonly"))
			any = true;
		p.l -= (line.p + line.l) - p.p;
		p.p = line.p + line.l;
	}

	return hold && !any;
}


/* The direction an SDP offers: the first direction attribute (the
 * session's or a stream's), "sendonly" for the c=0.0.0.0 of RFC 2543,
 * else "sendrecv" (RFC 3264 §5.1) */
const char *sdp_direction(const char *sdp, size_t len)
{
	static const char *dirs[] = {"sendrecv", "sendonly", "recvonly",
				     "inactive"};
	struct pl p = {sdp, len}, line;
	size_t i;

	while (p.l && !re_regex(p.p, p.l, "[^\r\n]+", &line)) {
		for (i = 0; i < ARRAY_SIZE(dirs); i++) {
			if (line.l == 2 + strlen(dirs[i]) &&
			    !strncmp(line.p, "a=", 2) &&
			    !memcmp(line.p + 2, dirs[i], line.l - 2))
				return dirs[i];
		}
		if (!pl_strcmp(&line, "c=IN IP4 0.0.0.0"))
			return "sendonly";
		p.l -= (line.p + line.l) - p.p;
		p.p = line.p + line.l;
	}

	return "sendrecv";
}


/* RFC 3264 §6.1: what an answerer answers to an offered direction */
const char *sdp_answer_dir(const char *offer)
{
	if (!strcmp(offer, "sendonly"))
		return "recvonly";
	if (!strcmp(offer, "recvonly"))
		return "sendonly";
	if (!strcmp(offer, "inactive"))
		return "inactive";

	return "sendrecv";
}


static bool is_dir_line(const struct pl *line)
{
	return !pl_strcmp(line, "a=sendrecv") || !pl_strcmp(line, "a=sendonly")
		|| !pl_strcmp(line, "a=recvonly") ||
		!pl_strcmp(line, "a=inactive");
}


/*
 * The SDP with one direction attribute, dir, at the end of every media
 * section (the session-level one dropped) and the o= version raised by
 * one (RFC 3264 §8: a changed description). Other lines are kept
 * byte-exact, with the input's line ending.
 */
int sdp_set_direction(char **outp, size_t *outlen, const char *sdp,
		      size_t len, const char *dir)
{
	struct mbuf *mb;
	struct pl p = {sdp, len}, line;
	const char *eol = memchr(sdp, '\r', len) ? "\r\n" : "\n";
	bool in_media = false;
	int err = 0;

	if (!outp || !outlen || !sdp || !dir)
		return EINVAL;

	mb = mbuf_alloc(len + 64);
	if (!mb)
		return ENOMEM;

	while (p.l && !re_regex(p.p, p.l, "[^\r\n]+", &line)) {
		struct pl user, id, ver, rest;

		if (line.l >= 2 && !memcmp(line.p, "m=", 2)) {
			if (in_media)
				err |= mbuf_printf(mb, "a=%s%s", dir, eol);
			in_media = true;
		}

		if (is_dir_line(&line)) {
			/* dropped: one attribute is written per section */
		}
		else if (line.l >= 2 && !memcmp(line.p, "o=", 2) &&
			 !re_regex(line.p, line.l, "o=[^ ]+ [^ ]+ [0-9]+[^]*",
				   &user, &id, &ver, &rest)) {
			err |= mbuf_printf(mb, "o=%r %r %llu%r%s", &user,
					   &id, pl_u64(&ver) + 1, &rest, eol);
		}
		else {
			err |= mbuf_printf(mb, "%r%s", &line, eol);
		}

		p.l -= (line.p + line.l) - p.p;
		p.p = line.p + line.l;
	}
	if (in_media)
		err |= mbuf_printf(mb, "a=%s%s", dir, eol);

	if (!err) {
		mb->pos = 0;
		err = mbuf_strdup(mb, outp, mb->end);
		*outlen = mb->end;
	}
	mem_deref(mb);

	return err;
}


static bool all_digits(const char *p, size_t n)
{
	size_t i;

	if (!n)
		return false;
	for (i = 0; i < n; i++)
		if (p[i] < '0' || p[i] > '9')
			return false;
	return true;
}


/* how many space-separated fields v (n bytes) has */
static unsigned fields(const char *v, size_t n)
{
	unsigned k = 0;
	size_t i = 0;

	while (i < n) {
		while (i < n && v[i] == ' ')
			++i;
		if (i < n)
			++k;
		while (i < n && v[i] != ' ')
			++i;
	}

	return k;
}


/* m=<media> <port>[/<count>] <proto> <fmt> ... */
static bool media_ok(const char *v, size_t n)
{
	const char *sp = memchr(v, ' ', n), *port, *slash, *pe;
	unsigned long pnum;

	if (!sp || sp == v || fields(v, n) < 4)
		return false;

	port = sp + 1;
	pe = memchr(port, ' ', n - (size_t)(port - v));
	if (!pe)
		return false;
	slash = memchr(port, '/', (size_t)(pe - port));
	if (!all_digits(port, (size_t)((slash ? slash : pe) - port)) ||
	    (slash && !all_digits(slash + 1, (size_t)(pe - slash - 1))) ||
	    (size_t)((slash ? slash : pe) - port) > 5)
		return false;
	pnum = strtoul(port, NULL, 10);

	return pnum <= 65535;
}


const char *sdp_problem(const char *sdp, size_t len)
{
	const char *p = sdp, *end = sdp + len;
	bool o = false, s = false, t = false, sess_c = false;
	bool in_media = false, media_c = true;
	unsigned n = 0;

	if (!sdp || !len)
		return "empty";

	while (p < end) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		const char *le = eol ? eol : end;
		size_t l;

		if (le > p && le[-1] == '\r')
			--le;
		l = (size_t)(le - p);
		p = eol ? eol + 1 : end;

		if (!l) {
			if (p >= end)
				break;      /* a last empty line */
			return "empty line";
		}
		if (l < 2 || (le - l)[1] != '=' || (le - l)[0] < 'a' ||
		    (le - l)[0] > 'z')
			return "a line is not <letter>=<value>";

		{
			const char type = (le - l)[0];
			const char *v = le - l + 2;
			const size_t vl = l - 2;

			if (n++ == 0) {
				if (type != 'v' || vl != 1 || v[0] != '0')
					return "the first line is not v=0";
				continue;
			}

			switch (type) {

			case 'o':
				if (fields(v, vl) != 6)
					return "bad o= line";
				o = true;
				break;

			case 's':
				s = true;
				break;

			case 't':
				if (fields(v, vl) != 2)
					return "bad t= line";
				t = true;
				break;

			case 'c':
				if (fields(v, vl) != 3)
					return "bad c= line";
				if (in_media)
					media_c = true;
				else
					sess_c = true;
				break;

			case 'm':
				if (!media_ok(v, vl))
					return "bad m= line";
				if (in_media && !media_c && !sess_c)
					return "a medium without c=";
				in_media = true;
				media_c = false;
				break;

			default:
				break;
			}
		}
	}

	if (!o || !s || !t)
		return "o=, s= or t= missing";
	if (in_media && !media_c && !sess_c)
		return "a medium without c=";

	return NULL;
}


/* An INVITE's, re-INVITE's or UPDATE's body (RFC 3261 §8.2.3,
 * §21.4.16, RFC 3264): a type we do not take gets 415 with what we
 * accept, a body without a type 400, an encoding other than identity
 * 415, and a malformed SDP offer 488 with a Warning saying what is
 * wrong. 0: fine (or no body). */
uint16_t call_body_check(const struct sip_msg *msg, const char **reason,
			 char *hdrs, size_t sz)
{
	const struct sip_hdr *ce = sip_msg_hdr(msg, SIP_HDR_CONTENT_ENCODING);
	const char *problem;
	struct pl body;

	hdrs[0] = '\0';
	stack_msg_body(msg, &body);
	if (!body.l)
		return 0;

	if (!sip_msg_hdr(msg, SIP_HDR_CONTENT_TYPE)) {
		*reason = "Missing Content-Type";
		return 400;
	}

	if (ce && pl_strcasecmp(&ce->val, "identity")) {
		*reason = "Unsupported Media Type";
		(void)re_snprintf(hdrs, sz, "Accept-Encoding: identity\r\n");
		return 415;
	}

	if (!msg_ctype_cmp(&msg->ctyp, "application", "sdp")) {
		*reason = "Unsupported Media Type";
		(void)re_snprintf(hdrs, sz, "Accept: application/sdp\r\n");
		return 415;
	}

	problem = sdp_problem(body.p, body.l);
	if (problem) {
		*reason = "Not Acceptable Here";
		(void)re_snprintf(hdrs, sz, "Warning: 399 sipstack "
				  "\"Malformed SDP: %s\"\r\n", problem);
		return 488;
	}

	return 0;
}


/* ... and the answer to one call_body_check() refused, logged (flood
 * controlled: the peer decides how many) */
void call_body_refuse(struct stack_req *req, uint16_t code,
		      const char *reason, const char *hdrs)
{
	const struct sip_msg *msg = stack_req_msg(req);

	slog_src(LOG_INFO, "call", "bad_offer", &msg->src, &msg->callid,
		 "method=%r code=%u reason=%H %H src=%J", &msg->met, code,
		 log_q, reason, log_q, hdrs, &msg->src);
	(void)stack_req_reply(req, code, reason, hdrs, NULL, NULL, 0);
}
