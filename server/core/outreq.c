/**
 * server/core/outreq.c  Outgoing requests out of dialog
 *
 * Owns struct outreq: a non-INVITE request we send out of any dialog
 * (MESSAGE, OPTIONS, NOTIFY, PUBLISH...) until its final response,
 * listed in the stack so that stopping it ends them. Exposes
 * stack_request(), stack_send_message() (a MESSAGE through it) and
 * stack_local_uri() in sipcore.h. Uses libre's client transactions and
 * RFC 3263 resolution (sip_request).
 */
#include <string.h>
#include <stdlib.h>
#include <re.h>
#include "sipcore.h"
#include "core.h"

/* An outgoing request waiting for its final response */
struct outreq {
	struct le le;
	struct stack *st;
	struct sip_request *req;
	stack_resp_h *resph;
	void *arg;
};

/* ------------------------------------------------------------------ *
 * Outgoing requests
 * ------------------------------------------------------------------ */

static void outreq_destructor(void *arg)
{
	struct outreq *o = arg;

	list_unlink(&o->le);

	/* Still pending (stack stopping): dropping libre's request
	 * cancels it, and its handler is not called again, so tell our
	 * caller here: resph runs exactly once per request. */
	if (o->req) {
		o->req = mem_deref(o->req);
		if (o->resph)
			o->resph(ECANCELED, NULL, o->arg);
	}
}


static void outreq_resp_handler(int err, const struct sip_msg *msg,
				void *arg)
{
	struct outreq *o = arg;

	if (!err && msg && msg->scode < 200)
		return;

	o->req = NULL;  /* libre frees its request after this handler */

	if (o->resph)
		o->resph(err, err ? NULL : msg, o->arg);

	o->resph = NULL;
	mem_deref(o);
}


int stack_listener_uri(const struct stack *st, size_t i,
		       char *buf, size_t sz)
{
	const struct listener *l;

	if (!st || !buf)
		return EINVAL;

	if (i >= st->lsnrc)
		return ENOENT;

	l = &st->lsnrv[i];

	return re_snprintf(buf, sz, "sip:%J%s", &l->laddr,
			   sip_transp_param(l->tp)) < 0 ? ENOMEM : 0;
}


int stack_local_uri(const struct stack *st, enum sip_transp tp,
		    char *buf, size_t sz)
{
	size_t i;

	if (!st || !buf)
		return EINVAL;

	for (i = 0; i < st->lsnrc; i++) {
		const struct listener *l = &st->lsnrv[i];

		if (tp != SIP_TRANSP_NONE && l->tp != tp)
			continue;

		if (st->cfg.local_ip[0])
			return re_snprintf(buf, sz, "sip:sipstack@%s:%u%s",
					   st->cfg.local_ip,
					   sa_port(&l->laddr),
					   sip_transp_param(l->tp)) < 0 ?
				ENOMEM : 0;

		return re_snprintf(buf, sz, "sip:sipstack@%J%s", &l->laddr,
				   sip_transp_param(l->tp)) < 0 ? ENOMEM : 0;
	}

	return ENOENT;
}


/* A method is a token (RFC 3261 §25.1); ours are upper case */
static bool method_valid(const char *met)
{
	size_t i;

	for (i = 0; met[i]; i++) {
		if (!strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~",
			    met[i]))
			return false;
	}

	return i > 0 && i <= 32;
}


int stack_request(struct stack *st, const char *met, const char *uri,
		  const char *from, const char *headers, const char *ctype,
		  const uint8_t *body, size_t len, stack_resp_h *resph,
		  void *arg)
{
	return stack_request_via(st, met, uri, NULL, from, headers, ctype,
				 body, len, resph, arg);
}


int stack_request_via(struct stack *st, const char *met, const char *uri,
		      const char *next_hop, const char *from,
		      const char *headers, const char *ctype,
		      const uint8_t *body, size_t len, stack_resp_h *resph,
		      void *arg)
{
	char fromuri[256];
	struct outreq *o = NULL;
	struct mbuf *mb = NULL;
	struct uri route;
	struct pl pl;
	int err;

	if (!st || !met || !uri || (len && !ctype))
		return EINVAL;

	/* the INVITE transaction (and its ACK, CANCEL) is the calls' */
	if (!method_valid(met) || !strcmp(met, "INVITE") ||
	    !strcmp(met, "ACK") || !strcmp(met, "CANCEL"))
		return EINVAL;

	if (!st->sip)
		return ESHUTDOWN;

	pl_set_str(&pl, uri);
	err = uri_decode(&route, &pl);
	if (err)
		return EINVAL;

	/* libre sends to the route URI it is given: ours, the next hop */
	if (next_hop) {
		pl_set_str(&pl, next_hop);
		if (uri_decode(&route, &pl))
			return EINVAL;
	}

	if (!from) {
		err = stack_local_uri(st, SIP_TRANSP_NONE, fromuri,
				      sizeof(fromuri));
		if (err)
			return err;
		from = fromuri;
	}

	o = mem_zalloc(sizeof(*o), outreq_destructor);
	mb = mbuf_alloc(512 + len);
	if (!o || !mb) {
		err = ENOMEM;
		goto out;
	}

	o->st    = st;
	o->resph = resph;
	o->arg   = arg;

	err = mbuf_printf(mb,
			  "Max-Forwards: %u\r\n"
			  "To: <%s>\r\n"
			  "From: <%s>;tag=%016llx\r\n"
			  "Call-ID: %016llx%016llx\r\n"
			  "CSeq: %u %s\r\n"
			  "User-Agent: %s\r\n"
			  "%s",
			  st->cfg.max_forwards, uri, from,
			  rand_u64(), rand_u64(), rand_u64(),
			  1 + (rand_u32() & 0xffff), met,
			  st->cfg.user_agent, headers ? headers : "");
	if (ctype)
		err |= mbuf_printf(mb, "Content-Type: %s\r\n", ctype);
	err |= mbuf_printf(mb, "Content-Length: %zu\r\n\r\n", len);
	if (len)
		err |= mbuf_write_mem(mb, body, len);
	if (err)
		goto out;

	mb->pos = 0;

	err = sip_request(&o->req, st->sip, true, met, (int)strlen(met), uri,
			  (int)strlen(uri), &route, mb, (size_t)rand_u32(),
			  NULL, outreq_resp_handler, o);
	if (err)
		goto out;

	list_append(&st->outl, &o->le, o);

 out:
	if (err)
		mem_deref(o);
	mem_deref(mb);

	return err;
}


int stack_send_message(struct stack *st, const char *to, const char *from,
		       const char *ctype, const uint8_t *body, size_t len,
		       const char *headers, stack_resp_h *resph, void *arg)
{
	if (!ctype)
		return EINVAL;

	return stack_request(st, "MESSAGE", to, from, headers, ctype, body,
			     len, resph, arg);
}
