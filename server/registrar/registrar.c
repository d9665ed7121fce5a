/**
 * server/registrar/registrar.c  REGISTER processing (RFC 3261 §10.3)
 *
 * Owns struct registrar (its config and a reference on the location
 * store) and one short-lived context per REGISTER being processed.
 * Exposes registrar_*() in sipstack.h. Uses libre's parsed message
 * (To, Contact, Expires, Path, Supported), server/registrar/location.c for the
 * bindings and stack_req_reply() to answer; never calls into Lua (the
 * script decides who may register, then hands the request over).
 *
 * Steps of §10.3 done here: 5 (AOR from To), 6 (Contact: * with
 * Expires: 0), 7 (each Contact: expiry from its parameter, the Expires
 * header or the default; bounds; Call-ID/CSeq ordering, by the store)
 * and 8 (200 listing every binding, with Date). Also RFC 5626
 * (+sip.instance, reg-id: stored, matched on) and RFC 3327 (Path:
 * stored in order, echoed when the UA supports it). Steps 1-4 (domain,
 * Require, authentication, authorisation) are the caller's.
 *
 * The 200 is sent from the store's done handler, after the change is
 * committed; everything that can be refused is refused before the store
 * is touched, so a 4xx never changes anything. The store runs the done
 * handlers of one group commit together, inside the batch hook this
 * file gives it (location_set_batch): udpbatch holds the replies sent
 * in between and hands them to the kernel together (sendmmsg, up to 32
 * a call).
 *
 * With a remote store (Redis, location_remote()) the store decides the
 * rules of step 7 in its own script: the out-of-order 500 and the 403
 * of too many bindings come through the done handler, and a store that
 * is unreachable gets 503 with Retry-After (STORE_RETRY_AFTER).
 */
#include <string.h>
#include <re.h>
#include "registrar.h"
#include "udpbatch.h"


enum {
	DEFAULT_MIN_EXPIRES     = 60,
	DEFAULT_MAX_EXPIRES     = 86400,
	DEFAULT_DEFAULT_EXPIRES = 3600,
	MAX_CONTACTS            = 64,   /* Contacts in one REGISTER */
	REG_ID_MAX              = 0x7fffffff,
};

/* s, in the 503 while a remote location store is unreachable */
#define STORE_RETRY_AFTER "5"


struct registrar {
	struct location *loc;
	struct registrar_config cfg;
	struct registrar_stats stats;
};

/* One REGISTER being processed */
struct regctx {
	struct registrar *reg;       /* referenced                      */
	struct stack_req *req;       /* referenced until answered       */
	registrar_done_h *doneh;
	void *arg;
	struct tmr tmr;              /* doneh after an immediate answer */
	int err;
	uint16_t scode;
	char *aor;
	char *path;                  /* Path values joined by ","       */
	bool path_reply;             /* UA supports path: echo it       */
};

/* What the REGISTER says, before the store sees it */
struct parsed {
	const struct registrar_config *cfg;
	struct loc_contact cv[MAX_CONTACTS];
	size_t cc;
	unsigned stars;
	bool has_expires;            /* Expires header                  */
	uint32_t expires;
	uint16_t scode;              /* first error, 0 if none          */
	const char *reason;
	struct mbuf *path;
};


/* ------------------------------------------------------------------ *
 * Small parsers
 * ------------------------------------------------------------------ */

static struct pl pl_trimmed(const struct pl *in)
{
	struct pl pl = *in;

	while (pl.l && (pl.p[0] == ' ' || pl.p[0] == '\t' ||
			pl.p[0] == '\r' || pl.p[0] == '\n')) {
		++pl.p;
		--pl.l;
	}
	while (pl.l && (pl.p[pl.l - 1] == ' ' || pl.p[pl.l - 1] == '\t' ||
			pl.p[pl.l - 1] == '\r' || pl.p[pl.l - 1] == '\n'))
		--pl.l;

	return pl;
}


/* delta-seconds (RFC 3261 §25.1): digits; values past 2^32-1 saturate
 * (§20.19 allows that) */
static bool delta_seconds(const struct pl *pl, uint32_t *v)
{
	uint64_t x = 0;
	size_t i;

	if (!pl_isset(pl))
		return false;

	for (i = 0; i < pl->l; i++) {
		if (pl->p[i] < '0' || pl->p[i] > '9')
			return false;
		if (x <= UINT32_MAX)
			x = x * 10 + (uint64_t)(pl->p[i] - '0');
	}

	*v = x > UINT32_MAX ? UINT32_MAX : (uint32_t)x;

	return true;
}


/* qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] ),
 * in thousandths */
static bool qvalue(const struct pl *pl, uint16_t *q)
{
	unsigned v, scale = 100;
	size_t i;

	if (!pl_isset(pl) || pl->l > 5)
		return false;

	if (pl->p[0] != '0' && pl->p[0] != '1')
		return false;

	v = (unsigned)(pl->p[0] - '0') * 1000;

	if (pl->l > 1) {
		if (pl->p[1] != '.')
			return false;
		for (i = 2; i < pl->l; i++, scale /= 10) {
			if (pl->p[i] < '0' || pl->p[i] > '9')
				return false;
			v += (unsigned)(pl->p[i] - '0') * scale;
		}
	}

	if (v > 1000)
		return false;

	*q = (uint16_t)v;

	return true;
}


/* scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ): libre's URI
 * parser takes "<sip" of an unclosed "<sip:..." for a scheme */
static bool scheme_ok(const struct pl *pl)
{
	size_t i;

	if (!pl_isset(pl))
		return false;

	for (i = 0; i < pl->l; i++) {
		char c = pl->p[i];
		bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');

		if (!alpha && (!i || !((c >= '0' && c <= '9') || c == '+' ||
				       c == '-' || c == '.')))
			return false;
	}

	return true;
}


static bool is_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}


/* The next ";name[=value]" of a header's generic-params (RFC 3261
 * §25.1): value is a token, a host or a quoted-string (returned without
 * its quotes). 1: got one, 0: end, -1: malformed. */
static int param_next(struct pl *rest, struct pl *name, struct pl *val)
{
	const char *p = rest->p, *end = rest->p + rest->l;

	while (p < end && is_ws(*p))
		++p;
	if (p == end)
		return 0;
	if (*p++ != ';')
		return -1;
	while (p < end && is_ws(*p))
		++p;

	name->p = p;
	while (p < end && !is_ws(*p) && *p != '=' && *p != ';' && *p != '"')
		++p;
	name->l = (size_t)(p - name->p);
	if (!name->l)
		return -1;

	while (p < end && is_ws(*p))
		++p;

	*val = (struct pl)PL_INIT;
	if (p < end && *p == '=') {
		++p;
		while (p < end && is_ws(*p))
			++p;
		if (p < end && *p == '"') {
			val->p = ++p;
			while (p < end && *p != '"') {
				if (*p == '\\' && p + 1 < end)
					++p;
				++p;
			}
			if (p == end)
				return -1;
			val->l = (size_t)(p - val->p);
			++p;
		}
		else {
			val->p = p;
			while (p < end && !is_ws(*p) && *p != ';')
				++p;
			val->l = (size_t)(p - val->p);
			if (!val->l)
				return -1;
		}
	}

	rest->l -= (size_t)(p - rest->p);
	rest->p = p;

	return 1;
}


/* ------------------------------------------------------------------ *
 * The REGISTER's headers
 * ------------------------------------------------------------------ */

static bool fail(struct parsed *ps, uint16_t scode, const char *reason)
{
	if (!ps->scode) {
		ps->scode = scode;
		ps->reason = reason;
	}

	return true;  /* stops sip_msg_hdr_apply */
}


static bool contact_handler(const struct sip_hdr *hdr,
			    const struct sip_msg *msg, void *arg)
{
	struct parsed *ps = arg;
	struct pl val = pl_trimmed(&hdr->val), rest, name, pv;
	struct loc_contact *c;
	struct sip_addr addr;
	bool has_exp = false;
	uint32_t exp = 0;
	int r;
	(void)msg;

	if (val.l == 1 && val.p[0] == '*') {
		++ps->stars;
		return false;
	}

	if (ps->cc >= MAX_CONTACTS)
		return fail(ps, 400, "Too Many Contacts");

	if (!pl_isset(&val) || sip_addr_decode(&addr, &val) ||
	    !pl_isset(&addr.auri) || !scheme_ok(&addr.uri.scheme))
		return fail(ps, 400, "Invalid Contact");

	c = &ps->cv[ps->cc];
	memset(c, 0, sizeof(*c));
	c->uri = pl_trimmed(&addr.auri);
	c->q = 1000;

	rest = addr.params;
	if (!rest.p)
		rest.l = 0;

	while ((r = param_next(&rest, &name, &pv)) > 0) {
		if (!pl_strcasecmp(&name, "expires")) {
			if (!delta_seconds(&pv, &exp))
				return fail(ps, 400,
					    "Invalid Contact expires");
			has_exp = true;
		}
		else if (!pl_strcasecmp(&name, "q")) {
			if (!qvalue(&pv, &c->q))
				return fail(ps, 400, "Invalid Contact q");
		}
		else if (!pl_strcasecmp(&name, "+sip.instance")) {
			if (!pl_isset(&pv))
				return fail(ps, 400,
					    "Invalid Contact +sip.instance");
			c->instance = pv;
		}
		else if (!pl_strcasecmp(&name, "reg-id")) {
			uint32_t id;

			if (!delta_seconds(&pv, &id) || !id || id > REG_ID_MAX)
				return fail(ps, 400, "Invalid Contact reg-id");
			c->reg_id = id;
		}
	}
	if (r < 0)
		return fail(ps, 400, "Invalid Contact");

	/* the parameter wins over the header (§10.3 step 7) */
	if (!has_exp)
		exp = ps->has_expires ? ps->expires :
			ps->cfg->default_expires;

	/* §10.3 step 7: 423 only for 0 < expiry < min, and never for an
	 * hour or more (a min_expires above 3600 cannot refuse that) */
	if (exp && exp < ps->cfg->min_expires && exp < 3600)
		return fail(ps, 423, "Interval Too Brief");

	c->expires = min(exp, ps->cfg->max_expires);

	/* RFC 5626 §6: reg-id without +sip.instance is ignored */
	if (!pl_isset(&c->instance))
		c->reg_id = 0;

	++ps->cc;

	return false;
}


static bool path_handler(const struct sip_hdr *hdr, const struct sip_msg *msg,
			 void *arg)
{
	struct parsed *ps = arg;
	struct pl val = pl_trimmed(&hdr->val);
	struct sip_addr addr;
	(void)msg;

	if (!pl_isset(&val) || sip_addr_decode(&addr, &val))
		return fail(ps, 400, "Invalid Path");

	if (!ps->path) {
		ps->path = mbuf_alloc(128);
		if (!ps->path)
			return fail(ps, 500, "Server Internal Error");
	}

	if (mbuf_printf(ps->path, "%s%r", ps->path->end ? "," : "", &val))
		return fail(ps, 500, "Server Internal Error");

	return false;
}


/* ------------------------------------------------------------------ *
 * Answers
 * ------------------------------------------------------------------ */

static int q_print(struct re_printf *pf, const uint16_t *qp)
{
	char frac[4];
	unsigned q = *qp;
	int i;

	if (q >= 1000)
		return re_hprintf(pf, "1");
	if (!q)
		return re_hprintf(pf, "0");

	/* thousandths, trailing zeros dropped: 500 -> 0.5, 5 -> 0.005 */
	for (i = 2; i >= 0; i--, q /= 10)
		frac[i] = (char)('0' + q % 10);
	frac[3] = '\0';
	for (i = 2; i > 0 && frac[i] == '0'; i--)
		frac[i] = '\0';

	return re_hprintf(pf, "0.%s", frac);
}


/* The headers of a 200: a Contact per binding, Date, Path */
static int ok_headers(struct mbuf *mb, const struct regctx *ctx,
		      const struct loc_set *set)
{
	uint64_t now = location_clock();
	size_t i;
	int err = 0;

	for (i = 0; i < loc_set_count(set) && !err; i++) {
		const struct loc_binding *b = loc_set_binding(set, i);

		err = mbuf_printf(mb, "Contact: <%s>;expires=%u", b->contact,
				  loc_binding_expires(b, now));
		if (!err && b->q != 1000)
			err = mbuf_printf(mb, ";q=%H", q_print, &b->q);
		if (!err && b->instance)
			err = mbuf_printf(mb, ";+sip.instance=\"%s\"",
					  b->instance);
		if (!err && b->instance && b->reg_id)
			err = mbuf_printf(mb, ";reg-id=%u", b->reg_id);
		if (!err)
			err = mbuf_write_str(mb, "\r\n");
	}

	if (!err)
		err = mbuf_printf(mb, "Date: %H\r\n", fmt_gmtime, NULL);

	if (!err && ctx->path && ctx->path_reply)
		err = mbuf_printf(mb, "Path: %s\r\n", ctx->path);

	if (!err)
		err = mbuf_write_u8(mb, 0);

	return err;
}


static void ctx_destructor(void *arg)
{
	struct regctx *ctx = arg;

	tmr_cancel(&ctx->tmr);
	mem_deref(ctx->req);
	mem_deref(ctx->reg);
	mem_deref(ctx->aor);
	mem_deref(ctx->path);
}


static void answer(struct regctx *ctx, uint16_t scode, const char *reason,
		   const char *hdrs)
{
	const struct sip_msg *msg = stack_req_msg(ctx->req);
	int err;

	err = stack_req_reply(ctx->req, scode, reason, hdrs, NULL, NULL, 0);
	ctx->err = err;
	ctx->scode = err ? 0 : scode;

	if (err || scode >= 500)
		++ctx->reg->stats.failed;
	else if (scode >= 300)
		++ctx->reg->stats.rejected;
	else
		++ctx->reg->stats.ok;

	slog(scode < 300 ? LOG_DEBUG : LOG_INFO, "registrar",
	     scode < 300 ? "registered" : "rejected", &msg->callid,
	     "aor=%H code=%u reason=%H src=%J err=%d",
	     log_q, ctx->aor ? ctx->aor : "", scode, log_q, reason,
	     &msg->src, err);

	/* the request is answered: let it go (its transaction stays in
	 * libre for retransmissions) */
	ctx->req = mem_deref(ctx->req);
}


static void later_handler(void *arg)
{
	struct regctx *ctx = arg;

	ctx->doneh(ctx->err, ctx->scode, NULL, ctx->arg);
	mem_deref(ctx);
}


/* After an answer sent from registrar_handle(): doneh from the loop */
static void finish_later(struct regctx *ctx)
{
	if (ctx->doneh)
		tmr_start(&ctx->tmr, 0, later_handler, ctx);
	else
		mem_deref(ctx);
}


static void loc_done_handler(int err, const struct loc_set *set, void *arg)
{
	struct regctx *ctx = arg;
	struct mbuf *mb = NULL;

	/* a remote store decides the rules there and says so here */
	switch (err) {

	case 0:
		break;

	case EPROTO:
		answer(ctx, 500, "Out of Order CSeq", NULL);
		goto out;

	case EOVERFLOW:
		answer(ctx, 403, "Too Many Registered Contacts", NULL);
		goto out;

	default:
		/* the commit failed, or no answer came from a remote store
		 * (it may or may not have stored it): never a 200 */
		answer(ctx, 500, "Server Internal Error", NULL);
		goto out;
	}

	mb = mbuf_alloc(256 + 96 * loc_set_count(set));
	if (!mb || ok_headers(mb, ctx, set)) {
		answer(ctx, 500, "Server Internal Error", NULL);
		set = NULL;
		goto out;
	}

	answer(ctx, 200, "OK", (const char *)mb->buf);

 out:
	mem_deref(mb);
	if (ctx->doneh)
		ctx->doneh(ctx->err, ctx->scode,
			   ctx->scode == 200 ? set : NULL, ctx->arg);
	mem_deref(ctx);
}


/* ------------------------------------------------------------------ *
 * The registrar
 * ------------------------------------------------------------------ */

void registrar_config_default(struct registrar_config *cfg)
{
	if (!cfg)
		return;

	cfg->min_expires     = DEFAULT_MIN_EXPIRES;
	cfg->max_expires     = DEFAULT_MAX_EXPIRES;
	cfg->default_expires = DEFAULT_DEFAULT_EXPIRES;
}


/* The store's batch hook: the 200s of one group commit are queued
 * (on batched UDP sockets) until the last, then leave together */
static void commit_batch_handler(bool end, void *arg)
{
	(void)arg;

	if (end)
		udpbatch_release();
	else
		udpbatch_hold();
}


static void registrar_destructor(void *arg)
{
	struct registrar *reg = arg;

	mem_deref(reg->loc);
}


int registrar_alloc(struct registrar **regp, struct location *loc,
		    const struct registrar_config *cfg)
{
	struct registrar *reg;

	if (!regp || !loc)
		return EINVAL;

	if (cfg && (cfg->min_expires > cfg->max_expires ||
		    !cfg->default_expires))
		return EINVAL;

	reg = mem_zalloc(sizeof(*reg), registrar_destructor);
	if (!reg)
		return ENOMEM;

	reg->loc = mem_ref(loc);
	location_set_batch(loc, commit_batch_handler, NULL);
	if (cfg)
		reg->cfg = *cfg;
	else
		registrar_config_default(&reg->cfg);

	*regp = reg;

	return 0;
}


void registrar_stats(const struct registrar *reg, struct registrar_stats *st)
{
	if (reg && st)
		*st = reg->stats;
}


struct location *registrar_location(const struct registrar *reg)
{
	return reg ? reg->loc : NULL;
}


const struct registrar_config *registrar_config(const struct registrar *reg)
{
	return reg ? &reg->cfg : NULL;
}


int registrar_debug(struct re_printf *pf, const struct registrar *reg)
{
	if (!reg)
		return 0;

	return re_hprintf(pf, "registrar min_expires=%u max_expires=%u "
			  "default_expires=%u\n%H",
			  reg->cfg.min_expires, reg->cfg.max_expires,
			  reg->cfg.default_expires, location_debug, reg->loc);
}


/* Reads the REGISTER into ps and chg, the AOR into *aorp and the Path
 * values into *pathp (mem strings, the caller's to free, set even on a
 * refusal), whether to echo Path into *path_replyp; ps->scode != 0:
 * refuse it. Reads nothing but msg and ps->cfg: registrar_check() runs
 * it alone (the fuzzer, test/fuzz). */
static void parse(struct parsed *ps, struct loc_change *chg, char **aorp,
		  char **pathp, bool *path_replyp, const struct sip_msg *msg)
{
	const struct sip_hdr *hdr;
	int err;

	err = location_aor(aorp, &msg->to.uri);
	if (err) {
		fail(ps, err == ENOMEM ? 500 : 400, err == ENOMEM ?
		     "Server Internal Error" : "Invalid To");
		return;
	}

	if (pl_isset(&msg->expires)) {
		struct pl e = pl_trimmed(&msg->expires);

		if (!delta_seconds(&e, &ps->expires)) {
			fail(ps, 400, "Invalid Expires");
			return;
		}
		ps->has_expires = true;
	}
	else if (sip_msg_hdr(msg, SIP_HDR_EXPIRES)) {
		fail(ps, 400, "Invalid Expires");
		return;
	}

	(void)sip_msg_hdr_apply(msg, true, SIP_HDR_CONTACT, contact_handler,
				ps);
	if (ps->scode)
		return;

	/* §10.3 step 6: "*" only alone, and only with Expires: 0 */
	if (ps->stars && (ps->stars > 1 || ps->cc)) {
		fail(ps, 400, "Invalid Contact: * not alone");
		return;
	}
	if (ps->stars && (!ps->has_expires || ps->expires)) {
		fail(ps, 400, "Invalid Contact: * needs Expires: 0");
		return;
	}

	(void)sip_msg_hdr_apply(msg, true, SIP_HDR_PATH, path_handler, ps);
	if (ps->scode)
		return;

	if (ps->path) {
		ps->path->pos = 0;
		err = mbuf_strdup(ps->path, pathp, ps->path->end);
		if (err) {
			fail(ps, 500, "Server Internal Error");
			return;
		}
		*path_replyp = sip_msg_hdr_has_value(msg,
							SIP_HDR_SUPPORTED,
							"path");
	}

	pl_set_str(&chg->aor, *aorp);
	chg->callid   = msg->callid;
	chg->cseq     = msg->cseq.num;
	chg->wildcard = ps->stars > 0;
	chg->contactv = ps->cv;
	chg->contactc = ps->cc;
	if (*pathp)
		pl_set_str(&chg->path, *pathp);

	hdr = sip_msg_hdr(msg, SIP_HDR_USER_AGENT);
	if (hdr)
		chg->user_agent = pl_trimmed(&hdr->val);
}


int registrar_handle(struct registrar *reg, struct stack_req *req,
		     registrar_done_h *doneh, void *arg)
{
	const struct sip_msg *msg = stack_req_msg(req);
	struct loc_change chg;
	struct parsed *ps = NULL;
	struct regctx *ctx;
	char received[80], node[80];
	int err;

	if (!reg || !msg || pl_strcmp(&msg->met, "REGISTER"))
		return EINVAL;

	if (stack_req_answered(req))
		return EALREADY;

	ctx = mem_zalloc(sizeof(*ctx), ctx_destructor);
	ps = mem_zalloc(sizeof(*ps), NULL);
	if (!ctx || !ps) {
		mem_deref(ctx);
		mem_deref(ps);
		return ENOMEM;
	}

	tmr_init(&ctx->tmr);
	ctx->reg   = mem_ref(reg);
	ctx->req   = stack_req_ref(req);
	ctx->doneh = doneh;
	ctx->arg   = arg;

	memset(&chg, 0, sizeof(chg));
	ps->cfg = &reg->cfg;

	parse(ps, &chg, &ctx->aor, &ctx->path, &ctx->path_reply, msg);
	if (ps->scode) {
		char hdrs[48];

		(void)re_snprintf(hdrs, sizeof(hdrs), "Min-Expires: %u\r\n",
				  reg->cfg.min_expires);
		answer(ctx, ps->scode, ps->reason,
		       ps->scode == 423 ? hdrs : NULL);
		finish_later(ctx);
		goto out;
	}

	(void)re_snprintf(received, sizeof(received), "sip:%J%s", &msg->src,
			  sip_transp_param(msg->tp));
	pl_set_str(&chg.received, received);

	/* which node holds the flow (a remote store tells the others:
	 * a TCP/TLS binding is reached through this node) */
	(void)re_snprintf(node, sizeof(node), "sip:%J%s", &msg->dst,
			  sip_transp_param(msg->tp));
	pl_set_str(&chg.node, node);

	err = location_apply(reg->loc, &chg, loc_done_handler, ctx);
	switch (err) {

	case 0:
		break;  /* ctx now waits for loc_done_handler */

	case EPROTO:
		answer(ctx, 500, "Out of Order CSeq", NULL);
		finish_later(ctx);
		break;

	case EOVERFLOW:
		answer(ctx, 403, "Too Many Registered Contacts", NULL);
		finish_later(ctx);
		break;

	case EBUSY:
		answer(ctx, 503, "Service Unavailable", "Retry-After: 1\r\n");
		finish_later(ctx);
		break;

	case ENOTCONN:
		/* a remote store (Redis) that is not reachable now */
		answer(ctx, 503, "Service Unavailable (location store down)",
		       "Retry-After: " STORE_RETRY_AFTER "\r\n");
		finish_later(ctx);
		break;

	default:
		answer(ctx, 500, "Server Internal Error", NULL);
		finish_later(ctx);
		break;
	}

 out:
	mem_deref(ps->path);
	mem_deref(ps);

	return 0;
}


uint16_t registrar_check(const struct registrar_config *cfg,
			 const struct sip_msg *msg, const char **reason)
{
	struct registrar_config def;
	struct loc_change chg;
	struct parsed *ps;
	char *aor = NULL, *path = NULL;
	bool path_reply = false;
	uint16_t scode;

	if (!msg || !reason)
		return 500;

	if (!cfg) {
		registrar_config_default(&def);
		cfg = &def;
	}

	ps = mem_zalloc(sizeof(*ps), NULL);
	if (!ps) {
		*reason = "Server Internal Error";
		return 500;
	}

	memset(&chg, 0, sizeof(chg));
	ps->cfg = cfg;
	parse(ps, &chg, &aor, &path, &path_reply, msg);

	scode = ps->scode;
	*reason = scode ? ps->reason : NULL;

	mem_deref(ps->path);
	mem_deref(ps);
	mem_deref(aor);
	mem_deref(path);

	return scode;
}
