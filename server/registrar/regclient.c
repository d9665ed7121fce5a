/**
 * server/registrar/regclient.c  Client registration (RFC 3261 §10.2)
 *
 * Owns struct regclient: one AOR registered at one registrar, refreshed
 * before it expires, retried with back-off when it fails, removed by
 * regclient_unregister(). Exposes regclient_*() in sipstack.h. Uses
 * libre's sip_dialog (Call-ID, From tag, CSeq), sip_auth (Digest) and
 * sip_drequestf (transactions, RFC 3263 resolution and failover); never
 * calls into Lua.
 *
 * Why not libre's sipreg (src/sipreg/reg.c in 1.1.0), which does the
 * same on the same pieces: it
 *  - retries a failure on a timer of its own (15-30 s, doubling up to
 *    30 min, randomised) that a caller can neither set nor see;
 *  - answers every 401/407 afresh (it resets sip_auth first), so a
 *    wrong password makes 16 REGISTERs in a row before its loop check
 *    stops them;
 *  - writes the Contact itself (sip:cuser@laddr), so no contact of ours;
 *  - reads the granted expiry from our Contact only: without it, the
 *    Expires header is ignored and the asked value assumed;
 *  - unregisters only from its destructor, and reports no outcome.
 * What it does well is done here the same way: one dialog for every
 * REGISTER, digest through sip_auth, 423 answered with Min-Expires.
 *
 * Life of an attempt: attempt() (a timer of the loop) sends a REGISTER;
 * resp_handler() answers a challenge or a 423 by sending again, and
 * ends the attempt in succeeded() or failed(), which arm the timer for
 * the refresh or the retry and call the user's handler last of all.
 */
#include <string.h>
#include <re.h>
#include "registrar.h"


enum {
	DEFAULT_EXPIRES   = 3600,
	DEFAULT_RETRY_MIN = 30,
	DEFAULT_RETRY_MAX = 600,
	MAX_CHALLENGES    = 3,      /* per attempt, stale nonces included */
	MAX_423           = 3,      /* Min-Expires rounds per attempt     */
	REFRESH_ROOM_MS   = 32000,  /* Timer F of the refresh itself      */
	REASON_MAX        = 64,
	URI_MAX           = 512,
};

struct regclient {
	struct stack *st;           /* not a reference: outlives us      */
	struct sip_dialog *dlg;
	struct sip_auth *auth;
	struct sip_request *req;    /* REGISTER in flight, or NULL       */
	struct tmr tmr;             /* next attempt: first, refresh, retry */
	char *registrar;
	char *aor;
	char *user_cfg;             /* params.user, or NULL              */
	char *user;                 /* digest user name and user part of
				     * a default Contact                 */
	char *password;
	char *contact;              /* given Contact URI, or NULL        */
	char *sent_contact;         /* Contact of the last REGISTER      */
	char *drop_contact;         /* to remove with the next REGISTER  */
	struct pl callid;           /* for the logs                      */
	uint32_t expires_cfg;       /* asked for by the user             */
	uint32_t expires;           /* asked for (raised by a 423)       */
	uint32_t req_expires;       /* in the REGISTER in flight         */
	uint32_t retry_min;
	uint32_t retry_max;
	uint32_t granted;           /* by the last 2xx                   */
	uint32_t failc;             /* failures in a row                 */
	uint32_t challenges;        /* answered in this attempt          */
	uint32_t rounds423;         /* 423s answered in this attempt     */
	bool registered;
	bool unreg;                 /* regclient_unregister() called     */
	bool done;                  /* unregistration ended: inert       */
	regclient_result_h *resulth;
	void *arg;
};


static void attempt(void *arg);


/* ------------------------------------------------------------------ *
 * Helpers
 * ------------------------------------------------------------------ */

static const char *err_reason(int err)
{
	switch (err) {
	case ETIMEDOUT:       return "timeout";
	case ECONNREFUSED:    return "refused";
	case ECONNABORTED:
	case ESHUTDOWN:       return "shutdown";
	case EPROTONOSUPPORT: return "transport not supported";
	case EDESTADDRREQ:
	case ENOENT:
	case ENODATA:         return "no address";
	default:              return "failed";
	}
}


static int str_set(char **dst, const char *src)
{
	char *s = NULL;

	if (src && str_dup(&s, src))
		return ENOMEM;

	mem_deref(*dst);
	*dst = s;

	return 0;
}


static bool str_same(const char *a, const char *b)
{
	if (!a || !b)
		return a == b;

	return 0 == strcmp(a, b);
}


static int sip_uri_decode(struct uri *uri, const char *s)
{
	struct pl pl;

	pl_set_str(&pl, s);
	if (uri_decode(uri, &pl) || !pl_isset(&uri->host))
		return EINVAL;

	if (pl_strcasecmp(&uri->scheme, "sip") &&
	    pl_strcasecmp(&uri->scheme, "sips"))
		return EINVAL;

	return 0;
}


/* The AOR of p (given, or sip:USER@registrar-host) in *aorp */
static int params_aor(char **aorp, const struct regclient_params *p)
{
	struct uri ruri, auri;
	int err;

	if (!p->registrar || sip_uri_decode(&ruri, p->registrar))
		return EINVAL;

	/* libre's sip_request() routes sip: only (ENOSYS for sips:) */
	if (pl_strcasecmp(&ruri.scheme, "sip"))
		return EPROTONOSUPPORT;

	if (p->contact && sip_uri_decode(&auri, p->contact))
		return EINVAL;

	if (p->aor) {
		if (sip_uri_decode(&auri, p->aor))
			return EINVAL;
		return str_dup(aorp, p->aor);
	}

	if (!p->user || !*p->user)
		return EINVAL;

	err = re_sdprintf(aorp, pl_strchr(&ruri.host, ':') ?
			  "sip:%H@[%r]" : "sip:%H@%r", uri_user_escape,
			  &(struct pl){p->user, strlen(p->user)}, &ruri.host);

	return err;
}


/* Same contact, leniently: RFC 3261 §19.1.4 does not equate an absent
 * port or transport with its default, but a registrar that echoes our
 * Contact may well add or drop them. */
static bool uri_same(const struct uri *a, const struct uri *b)
{
	struct pl ta = PL("udp"), tb = PL("udp"), v;

	if (pl_casecmp(&a->scheme, &b->scheme) || pl_cmp(&a->user, &b->user) ||
	    pl_casecmp(&a->host, &b->host))
		return false;

	if ((a->port ? a->port : 5060) != (b->port ? b->port : 5060))
		return false;

	if (!msg_param_decode(&a->params, "transport", &v))
		ta = v;
	if (!msg_param_decode(&b->params, "transport", &v))
		tb = v;

	return 0 == pl_casecmp(&ta, &tb);
}


struct granted {
	struct uri ours;
	bool found;
	uint32_t expires;
};


static bool contact_handler(const struct sip_hdr *hdr,
			    const struct sip_msg *msg, void *arg)
{
	struct granted *g = arg;
	struct sip_addr addr;
	struct pl v;
	(void)msg;

	if (sip_addr_decode(&addr, &hdr->val) || !uri_same(&addr.uri,
							   &g->ours))
		return false;

	if (msg_param_decode(&addr.params, "expires", &v))
		return false;   /* ours without expires: see the header */

	g->found = true;
	g->expires = pl_u32(&v);

	return true;
}


/* §10.2.4: our Contact's expires parameter, else the Expires header,
 * else what we asked for. */
static uint32_t granted_expires(const struct regclient *rc,
				const struct sip_msg *msg)
{
	struct granted g;
	struct pl pl;

	memset(&g, 0, sizeof(g));
	if (rc->sent_contact) {
		pl_set_str(&pl, rc->sent_contact);
		if (!uri_decode(&g.ours, &pl))
			(void)sip_msg_hdr_apply(msg, true, SIP_HDR_CONTACT,
						contact_handler, &g);
	}

	if (g.found)
		return g.expires;

	if (pl_isset(&msg->expires))
		return pl_u32(&msg->expires);

	return rc->req_expires;
}


/* When to refresh a binding granted for `granted` seconds: at 90% for
 * long ones; for short ones, early enough that a refresh that times out
 * (Timer F, 32 s) still ends before the binding; never after half-way. */
static uint64_t refresh_ms(uint32_t granted)
{
	const uint64_t g = (uint64_t)granted * 1000;
	const uint64_t room = MAX(g / 10, MIN((uint64_t)REFRESH_ROOM_MS,
					      g / 2));

	return g - room;
}


/* retry_min, doubled for each earlier failure in a row, <= retry_max */
static uint32_t backoff_s(const struct regclient *rc)
{
	uint32_t d = rc->retry_min, i;

	for (i = 0; i < rc->failc && d < rc->retry_max; i++)
		d = d > rc->retry_max / 2 ? rc->retry_max : d * 2;

	return MIN(d, rc->retry_max);
}


static const char *state_name(const struct regclient *rc)
{
	if (rc->done)
		return "done";
	if (rc->unreg)
		return "unregistering";
	if (rc->req)
		return rc->registered ? "refreshing" : "registering";
	if (rc->registered)
		return "registered";
	if (rc->failc)
		return "backoff";

	return "waiting";
}


/* The user's handler comes last: it may free rc */
static void report(struct regclient *rc, bool ok, uint32_t expires,
		   uint16_t scode, const char *reason)
{
	if (rc->resulth)
		rc->resulth(ok, expires, scode, reason, rc->arg);
}


/* ------------------------------------------------------------------ *
 * Sending
 * ------------------------------------------------------------------ */

static int auth_handler(char **user, char **pass, const char *realm,
			void *arg)
{
	struct regclient *rc = arg;
	int err;
	(void)realm;

	if (!rc->password || !rc->user)
		return EAUTH;

	err  = str_dup(user, rc->user);
	err |= str_dup(pass, rc->password);

	return err;
}


/* Our Contact for a REGISTER leaving on tp from src */
static int contact_uri(const struct regclient *rc, enum sip_transp tp,
		       const struct sa *src, char *buf, size_t sz)
{
	struct pl user;
	char local[URI_MAX];
	const char *at;

	if (rc->contact) {
		str_ncpy(buf, rc->contact, sz);
		return 0;
	}

	pl_set_str(&user, rc->user);

	/* "sip:sipstack@HOST:PORT[;transport=..]": our user instead */
	if (!stack_local_uri(rc->st, tp, local, sizeof(local)) &&
	    (at = strchr(local, '@')))
		return re_snprintf(buf, sz, "sip:%H%s", uri_user_escape,
				   &user, at) < 0 ? ENOMEM : 0;

	return re_snprintf(buf, sz, "sip:%H@%J%s", uri_user_escape, &user,
			   src, sip_transp_param(tp)) < 0 ? ENOMEM : 0;
}


/* libre calls this for each target it tries (RFC 3263 failover) */
static int send_handler(enum sip_transp tp, const struct sa *src,
			const struct sa *dst, struct mbuf *mb, void *arg)
{
	struct regclient *rc = arg;
	char uri[URI_MAX];
	int err;
	(void)dst;

	err = contact_uri(rc, tp, src, uri, sizeof(uri));
	if (err)
		return err;

	if (!str_same(uri, rc->sent_contact) && str_set(&rc->sent_contact,
							 uri))
		return ENOMEM;

	err = mbuf_printf(mb, "Contact: <%s>;expires=%u\r\n", uri,
			  rc->req_expires);
	if (rc->drop_contact && strcmp(rc->drop_contact, uri))
		err |= mbuf_printf(mb, "Contact: <%s>;expires=0\r\n",
				   rc->drop_contact);

	return err;
}


static void resp_handler(int err, const struct sip_msg *msg, void *arg);


static int send_register(struct regclient *rc)
{
	struct sip *sip = stack_sip(rc->st);

	if (!sip)
		return ESHUTDOWN;

	rc->req_expires = rc->unreg ? 0 : rc->expires;

	slog(LOG_DEBUG, "regclient", "send", &rc->callid,
	     "registrar=%H aor=%H expires=%u", log_q, rc->registrar, log_q,
	     rc->aor, rc->req_expires);

	return sip_drequestf(&rc->req, sip, true, "REGISTER", rc->dlg, 0,
			     rc->auth, send_handler, resp_handler, rc,
			     "Content-Length: 0\r\n"
			     "\r\n");
}


/* ------------------------------------------------------------------ *
 * Outcomes
 * ------------------------------------------------------------------ */

static void failed(struct regclient *rc, uint16_t scode,
		   const char *reason)
{
	uint32_t retry;

	rc->registered = false;
	rc->granted = 0;

	if (rc->unreg) {
		rc->done = true;
		slog(LOG_WARN, "regclient", "unregister_failed", &rc->callid,
		     "registrar=%H aor=%H code=%u reason=%H", log_q,
		     rc->registrar, log_q, rc->aor, scode, log_q, reason);
		report(rc, false, 0, scode, reason);
		return;
	}

	retry = backoff_s(rc);
	++rc->failc;
	tmr_start(&rc->tmr, (uint64_t)retry * 1000, attempt, rc);

	slog(LOG_WARN, "regclient", "failed", &rc->callid,
	     "registrar=%H aor=%H code=%u reason=%H failures=%u retry_in=%u",
	     log_q, rc->registrar, log_q, rc->aor, scode, log_q, reason,
	     rc->failc, retry);

	report(rc, false, 0, scode, reason);
}


static void succeeded(struct regclient *rc, const struct sip_msg *msg,
		      const char *reason)
{
	uint64_t refresh;
	uint32_t granted;

	if (rc->unreg) {
		rc->done = true;
		rc->registered = false;
		rc->granted = 0;
		rc->drop_contact = mem_deref(rc->drop_contact);
		slog(LOG_INFO, "regclient", "unregistered", &rc->callid,
		     "registrar=%H aor=%H code=%u", log_q, rc->registrar,
		     log_q, rc->aor, msg->scode);
		report(rc, true, 0, msg->scode, reason);
		return;
	}

	granted = granted_expires(rc, msg);
	if (!granted) {
		failed(rc, msg->scode, "not bound");
		return;
	}

	rc->drop_contact = mem_deref(rc->drop_contact);
	rc->registered = true;
	rc->granted = granted;
	rc->failc = 0;

	refresh = refresh_ms(granted);
	tmr_start(&rc->tmr, refresh, attempt, rc);

	slog(LOG_INFO, "regclient", "registered", &rc->callid,
	     "registrar=%H aor=%H contact=%H expires=%u refresh_in=%llu.%03llu",
	     log_q, rc->registrar, log_q, rc->aor, log_q, rc->sent_contact,
	     granted, refresh / 1000, refresh % 1000);

	report(rc, true, granted, msg->scode, reason);
}


/* libre's sip_auth stops with ENOSYS at the first challenge that is
 * not MD5, even when an MD5 one follows (RFC 8760 servers, ours among
 * them, offer SHA-256 first). It gets a copy of the response holding
 * only the MD5 challenges when there are both kinds. */
struct md5only {
	struct mbuf *mb;
	unsigned kept;
	unsigned dropped;
	int err;
};


static bool md5_filter(const struct sip_hdr *hdr, const struct sip_msg *msg,
		       void *arg)
{
	struct httpauth_digest_chall ch;
	struct md5only *f = arg;
	(void)msg;

	if (!httpauth_digest_challenge_decode(&ch, &hdr->val) &&
	    pl_isset(&ch.algorithm) && pl_strcasecmp(&ch.algorithm, "MD5")) {
		++f->dropped;
		return false;
	}

	++f->kept;
	f->err |= mbuf_printf(f->mb, "%r: %r\r\n", &hdr->name, &hdr->val);

	return false;
}


static int authenticate(struct sip_auth *auth, const struct sip_msg *msg)
{
	struct sip_msg *copy = NULL;
	struct md5only f;
	int err;

	memset(&f, 0, sizeof(f));
	f.mb = mbuf_alloc(512);
	if (!f.mb)
		return ENOMEM;

	err = mbuf_printf(f.mb, "SIP/2.0 %u Challenge\r\n", msg->scode);
	(void)sip_msg_hdr_apply(msg, true, SIP_HDR_WWW_AUTHENTICATE,
				md5_filter, &f);
	(void)sip_msg_hdr_apply(msg, true, SIP_HDR_PROXY_AUTHENTICATE,
				md5_filter, &f);
	err |= f.err | mbuf_write_str(f.mb, "\r\n");
	if (err)
		goto out;

	if (!f.dropped || !f.kept) {
		err = sip_auth_authenticate(auth, msg);
		goto out;
	}

	f.mb->pos = 0;
	err = sip_msg_decode(&copy, f.mb);
	if (!err)
		err = sip_auth_authenticate(auth, copy);

 out:
	mem_deref(copy);
	mem_deref(f.mb);

	return err;
}


/* 401/407: answer it, unless it repeats one we answered (the
 * credentials are wrong) or we cannot. 0 when sent again. */
static int challenge(struct regclient *rc, const struct sip_msg *msg)
{
	int err;

	if (rc->challenges >= MAX_CHALLENGES)
		return EAUTH;

	/* credentials kept from an earlier attempt are sent pre-emptively;
	 * the first challenge of an attempt starts afresh from them */
	if (!rc->challenges)
		sip_auth_reset(rc->auth);

	/* EAUTH: the realm we answered challenges again without stale,
	 * or no password; ENOSYS: no MD5 challenge; EBADMSG: unreadable */
	err = authenticate(rc->auth, msg);
	if (err) {
		slog(LOG_INFO, "regclient", "auth_failed", &rc->callid,
		     "registrar=%H user=%H code=%u why=%s", log_q,
		     rc->registrar, log_q, rc->user, msg->scode,
		     err == EAUTH ? (rc->password ? "rejected" : "no_password") :
		     err == ENOSYS ? "algorithm_not_md5" : "bad_challenge");
		return EAUTH;
	}

	++rc->challenges;
	slog(LOG_DEBUG, "regclient", "challenge", &rc->callid,
	     "registrar=%H code=%u n=%u", log_q, rc->registrar, msg->scode,
	     rc->challenges);

	return send_register(rc);
}


/* 423: ask again for Min-Expires. 0 when sent again. */
static int interval_too_brief(struct regclient *rc,
			      const struct sip_msg *msg)
{
	const struct sip_hdr *hdr = sip_msg_hdr(msg, SIP_HDR_MIN_EXPIRES);
	const uint32_t min = hdr ? pl_u32(&hdr->val) : 0;

	if (rc->unreg || rc->rounds423 >= MAX_423 || min <= rc->req_expires)
		return EPROTO;

	slog(LOG_INFO, "regclient", "min_expires", &rc->callid,
	     "registrar=%H asked=%u min=%u", log_q, rc->registrar,
	     rc->req_expires, min);

	++rc->rounds423;
	rc->expires = min;

	return send_register(rc);
}


static void resp_handler(int err, const struct sip_msg *msg, void *arg)
{
	struct regclient *rc = arg;
	char reason[REASON_MAX] = "";

	if (!err && msg && msg->scode < 200)
		return;

	/* libre has cleared rc->req (it held &rc->req) */

	if (err || !msg) {
		failed(rc, 0, err_reason(err ? err : EPROTO));
		return;
	}

	(void)pl_strcpy(&msg->reason, reason, sizeof(reason));

	if (msg->scode < 300) {
		succeeded(rc, msg, reason);
		return;
	}

	switch (msg->scode) {

	case 401:
	case 407:
		err = challenge(rc, msg);
		if (!err)
			return;
		failed(rc, msg->scode, err == EAUTH ? "auth failed" :
		       err_reason(err));
		return;

	case 423:
		err = interval_too_brief(rc, msg);
		if (!err)
			return;
		if (err != EPROTO) {
			failed(rc, msg->scode, err_reason(err));
			return;
		}
		break;

	default:
		break;
	}

	failed(rc, msg->scode, reason);
}


/* The timer: the first REGISTER, a refresh, a retry or the
 * unregistration */
static void attempt(void *arg)
{
	struct regclient *rc = arg;
	int err;

	rc->challenges = 0;
	rc->rounds423 = 0;

	err = send_register(rc);
	if (err)
		failed(rc, 0, err_reason(err));
}


/* ------------------------------------------------------------------ *
 * API
 * ------------------------------------------------------------------ */

static void destructor(void *arg)
{
	struct regclient *rc = arg;

	tmr_cancel(&rc->tmr);
	/* a REGISTER in flight is cancelled: libre calls us no more */
	mem_deref(rc->req);
	mem_deref(rc->dlg);
	mem_deref(rc->auth);
	mem_deref(rc->registrar);
	mem_deref(rc->aor);
	mem_deref(rc->user_cfg);
	mem_deref(rc->user);
	mem_deref(rc->password);
	mem_deref(rc->contact);
	mem_deref(rc->sent_contact);
	mem_deref(rc->drop_contact);
}


static const char *params_user(const struct regclient_params *p)
{
	return p->user && *p->user ? p->user : NULL;
}


/* user, password, contact, expires and retries from p */
static int params_apply(struct regclient *rc, const struct regclient_params *p)
{
	struct uri auri;
	struct pl pl;
	char *user = NULL;
	int err = 0;

	pl_set_str(&pl, rc->aor);
	if (uri_decode(&auri, &pl))
		return EINVAL;

	if (params_user(p))
		err = str_dup(&user, p->user);
	else if (pl_isset(&auri.user))
		err = pl_strdup(&user, &auri.user);
	else
		err = str_dup(&user, "sipstack");
	if (err)
		return err;

	mem_deref(rc->user);
	rc->user = user;

	err  = str_set(&rc->user_cfg, params_user(p));
	err |= str_set(&rc->password, p->password);
	err |= str_set(&rc->contact, p->contact);
	if (err)
		return ENOMEM;

	rc->expires_cfg = p->expires ? p->expires : DEFAULT_EXPIRES;
	rc->expires     = rc->expires_cfg;
	rc->retry_min   = p->retry_min ? p->retry_min : DEFAULT_RETRY_MIN;
	rc->retry_max   = MAX(rc->retry_min, p->retry_max ? p->retry_max :
			      DEFAULT_RETRY_MAX);

	return 0;
}


int regclient_register(struct regclient **rcp, struct stack *st,
		       const struct regclient_params *p,
		       regclient_result_h *resulth, void *arg)
{
	struct regclient *rc;
	int err;

	if (!rcp || !st || !p)
		return EINVAL;

	rc = mem_zalloc(sizeof(*rc), destructor);
	if (!rc)
		return ENOMEM;

	tmr_init(&rc->tmr);
	rc->st = st;
	rc->resulth = resulth;
	rc->arg = arg;

	err = params_aor(&rc->aor, p);
	if (err)
		goto out;

	err = str_dup(&rc->registrar, p->registrar);
	if (err)
		goto out;

	err = params_apply(rc, p);
	if (err)
		goto out;

	err = sip_dialog_alloc(&rc->dlg, rc->registrar, rc->aor, NULL,
			       rc->aor, NULL, 0);
	if (err)
		goto out;

	err = sip_auth_alloc(&rc->auth, auth_handler, rc, false);
	if (err)
		goto out;

	pl_set_str(&rc->callid, sip_dialog_callid(rc->dlg));

	/* from the loop: maybe the stack is not started yet */
	tmr_start(&rc->tmr, 0, attempt, rc);

 out:
	if (err)
		mem_deref(rc);
	else
		*rcp = rc;

	return err;
}


int regclient_update(struct regclient *rc, const struct regclient_params *p)
{
	char *aor = NULL;
	bool same;
	int err;

	if (!rc || !p)
		return EINVAL;

	if (rc->unreg)
		return EALREADY;

	err = params_aor(&aor, p);
	if (err)
		return err;

	same = str_same(aor, rc->aor);
	mem_deref(aor);
	if (!same || !str_same(p->registrar, rc->registrar))
		return EINVAL;

	if (str_same(params_user(p), rc->user_cfg) &&
	    str_same(p->password, rc->password) &&
	    str_same(p->contact, rc->contact) &&
	    (p->expires ? p->expires : DEFAULT_EXPIRES) == rc->expires_cfg &&
	    (p->retry_min ? p->retry_min : DEFAULT_RETRY_MIN) ==
	    rc->retry_min)
		goto unchanged;

	if (!str_same(p->contact, rc->contact) && rc->sent_contact &&
	    !str_same(p->contact, rc->sent_contact)) {
		mem_deref(rc->drop_contact);
		rc->drop_contact = mem_ref(rc->sent_contact);
	}

	err = params_apply(rc, p);
	if (err)
		return err;

	sip_auth_reset(rc->auth);
	rc->failc = 0;
	rc->req = mem_deref(rc->req);
	tmr_start(&rc->tmr, 0, attempt, rc);

	slog(LOG_INFO, "regclient", "updated", &rc->callid,
	     "registrar=%H aor=%H expires=%u", log_q, rc->registrar, log_q,
	     rc->aor, rc->expires);

	return 0;

 unchanged:
	/* retry_max alone needs no REGISTER */
	rc->retry_max = MAX(rc->retry_min, p->retry_max ? p->retry_max :
			    DEFAULT_RETRY_MAX);

	return 0;
}


int regclient_unregister(struct regclient *rc)
{
	if (!rc)
		return EINVAL;

	if (rc->unreg)
		return EALREADY;

	rc->unreg = true;
	rc->req = mem_deref(rc->req);
	tmr_start(&rc->tmr, 0, attempt, rc);

	return 0;
}


bool regclient_registered(const struct regclient *rc)
{
	return rc ? rc->registered : false;
}


uint32_t regclient_expires(const struct regclient *rc)
{
	return rc ? rc->granted : 0;
}


uint32_t regclient_failures(const struct regclient *rc)
{
	return rc ? rc->failc : 0;
}


const char *regclient_callid(const struct regclient *rc)
{
	return rc ? sip_dialog_callid(rc->dlg) : NULL;
}


int regclient_debug(struct re_printf *pf, const struct regclient *rc)
{
	uint64_t next;

	if (!rc)
		return 0;

	next = tmr_isrunning(&rc->tmr) ? tmr_get_expire(&rc->tmr) : 0;

	return re_hprintf(pf, "regclient registrar=%H aor=%H state=%s "
			  "expires=%u granted=%u failures=%u next_in_ms=%llu "
			  "callid=%r contact=%H",
			  log_q, rc->registrar, log_q, rc->aor,
			  state_name(rc), rc->expires, rc->granted, rc->failc,
			  next, &rc->callid, log_q, rc->sent_contact);
}
