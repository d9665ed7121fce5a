/**
 * server/registrar/regsvc.c  The registrar service
 *
 * Owns struct regsvc: the location store, the registrar and the digest
 * authenticator (with its guard) of one configuration, and the stack's
 * admission gate while its guard is the gate. Exposes regsvc_*() in
 * regsvc.h: open from a struct regsvc_config, the whole REGISTER in C
 * (auth, the AOR check of RFC 3261 §10.3 step 4, registrar_handle),
 * the same with an outcome for a caller (a script's registrar.save),
 * and lookup; its figures as a collector of the stack's metrics
 * registry. Uses server/registrar/location.c, registrar.c, users.c,
 * auth.c and authguard.c; knows nothing of Lua (bindings/api_registrar.c
 * keeps one service across reloads while the config stays the same).
 */
#include <string.h>
#include <re.h>
#include "registrar.h"
#include "regsvc.h"


struct regsvc {
	struct regsvc_config cfg;   /* its strings point to ours below  */
	char *database;
	char *realm;
	char *remote;
	char spec[512];             /* the store, "sqlite:FILE" (a
				     * remote one without its password) */
	struct location *loc;
	struct registrar *reg;
	struct auth_users *users;
	struct auth *auth;
	struct stack *gate;         /* the stack whose admission gate is
				     * our guard's, or NULL             */
	struct metrics_collector *mc;  /* in the stack's registry       */
};


void regsvc_config_default(struct regsvc_config *cfg)
{
	if (!cfg)
		return;

	memset(cfg, 0, sizeof(*cfg));
	cfg->auth = true;
	cfg->realm = "sipstack";
	cfg->algs = AUTH_ALG_MD5 | AUTH_ALG_SHA256;
	cfg->nonce_ttl = AUTH_NONCE_TTL;
	cfg->guard = true;
	authguard_config_default(&cfg->gcfg);
	registrar_config_default(&cfg->rcfg);
}


/* libre's str_cmp() calls two NULLs different */
static bool str_same(const char *a, const char *b)
{
	return a == b || (a && b && !strcmp(a, b));
}


bool regsvc_config_equal(const struct regsvc_config *a,
			 const struct regsvc_config *b)
{
	return a && b && a->memory == b->memory && a->auth == b->auth &&
		a->algs == b->algs && a->nonce_ttl == b->nonce_ttl &&
		a->guard == b->guard &&
		!memcmp(&a->gcfg, &b->gcfg, sizeof(a->gcfg)) &&
		str_same(a->database, b->database) &&
		str_same(a->remote, b->remote) &&
		str_same(a->realm, b->realm) &&
		a->rcfg.min_expires == b->rcfg.min_expires &&
		a->rcfg.max_expires == b->rcfg.max_expires &&
		a->rcfg.default_expires == b->rcfg.default_expires;
}


static void destructor(void *arg)
{
	struct regsvc *rs = arg;

	mem_deref(rs->mc);
	if (rs->gate)
		stack_set_admit(rs->gate, NULL, NULL);

	/* the registrar holds the store; freeing the store commits what
	 * is pending and answers those requests */
	mem_deref(rs->reg);
	mem_deref(rs->auth);
	mem_deref(rs->loc);
	mem_deref(rs->users);
	mem_deref(rs->database);
	mem_deref(rs->realm);
	mem_deref(rs->remote);
}


static int open_auth(struct regsvc *rs)
{
	const struct regsvc_config *cfg = &rs->cfg;
	struct auth_config acfg;
	int err;

	if (!cfg->database) {
		slog(LOG_ERROR, "registrar", "no_users_db", NULL,
		     "why=%H", log_q, "auth needs a database");
		return EINVAL;
	}

	err = auth_users_open(&rs->users, cfg->database);
	if (err) {
		slog(LOG_ERROR, "registrar", "users_failed", NULL,
		     "db=%H err=%m", log_q, cfg->database, err);
		return err;
	}

	auth_config_default(&acfg);
	acfg.realm = cfg->realm;
	acfg.algs = cfg->algs;
	acfg.nonce_ttl = cfg->nonce_ttl;
	acfg.guard = &cfg->gcfg;
	acfg.no_guard = !cfg->guard;

	return auth_alloc(&rs->auth, rs->users, &acfg);
}


/* ------------------------------------------------------------------ *
 * Metrics: the service's collector in the stack's registry
 * ------------------------------------------------------------------ */

static int auth_write(struct mbuf *mb, const struct regsvc *rs)
{
	const char *checks = "sipstack_auth_checks_total";
	struct authguard *g = regsvc_guard(rs);
	struct auth_stats as;
	int err;

	auth_stats(rs->auth, &as);
	err = metrics_one(mb, "sipstack_auth_challenges_total",
			  METRICS_COUNTER, "Digest challenges sent (401 "
			  "answers to REGISTER).", as.challenges);
	err |= metrics_family(mb, checks, METRICS_COUNTER, "Digest "
			      "credentials checked, by result: ok; failed "
			      "(403: wrong password, unknown user, URI "
			      "mismatch, banned, slowed), the auth "
			      "failures; stale and replay and unknown_nonce "
			      "(re-challenged); malformed (400).");
	err |= metrics_sample_u64(mb, checks, "result=\"ok\"", as.ok);
	err |= metrics_sample_u64(mb, checks, "result=\"failed\"", as.failed);
	err |= metrics_sample_u64(mb, checks, "result=\"stale\"", as.stale);
	err |= metrics_sample_u64(mb, checks, "result=\"replay\"", as.replay);
	err |= metrics_sample_u64(mb, checks, "result=\"unknown_nonce\"",
				  as.foreign);
	err |= metrics_sample_u64(mb, checks, "result=\"malformed\"", as.bad);

	if (g) {
		struct authguard_stats gs;

		authguard_stats(g, &gs);
		err |= metrics_one(mb, "sipstack_auth_guard_bans_total",
				   METRICS_COUNTER, "Addresses banned for "
				   "failed authentications (their requests "
				   "are then dropped).", gs.bans);
		err |= metrics_one(mb, "sipstack_auth_guard_banned",
				   METRICS_GAUGE, "Addresses banned now.",
				   gs.banned);
		err |= metrics_one(mb, "sipstack_auth_guard_slowed_total",
				   METRICS_COUNTER, "Attempts refused "
				   "unchecked because their user name is "
				   "slowed down (rate-limited guessing).",
				   gs.slowed);
	}

	return err;
}


static int metrics_collect(struct mbuf *mb, void *arg)
{
	const char *regs = "sipstack_registrar_registrations_total";
	const struct regsvc *rs = arg;
	struct registrar_stats r;
	struct location_stats ls;
	int err;

	registrar_stats(rs->reg, &r);
	err = metrics_family(mb, regs, METRICS_COUNTER, "REGISTER requests "
			     "the registrar answered (after authentication), "
			     "by result: ok (2xx), rejected (4xx), failed "
			     "(5xx or no answer).");
	err |= metrics_sample_u64(mb, regs, "result=\"ok\"", r.ok);
	err |= metrics_sample_u64(mb, regs, "result=\"rejected\"",
				  r.rejected);
	err |= metrics_sample_u64(mb, regs, "result=\"failed\"", r.failed);

	location_stats(rs->loc, &ls);
	err |= metrics_one(mb, "sipstack_registrar_bindings", METRICS_GAUGE,
			   "Bindings in the location store (expired ones "
			   "count until the next purge, within a second).",
			   ls.bindings);
	err |= metrics_one(mb, "sipstack_registrar_aors", METRICS_GAUGE,
			   "Addresses of record with bindings in the store.",
			   ls.aors);
	err |= metrics_one(mb, "sipstack_location_commits_total",
			   METRICS_COUNTER, "Transactions the location store "
			   "committed (group commits).", ls.commits);
	err |= metrics_one(mb, "sipstack_location_writes_total",
			   METRICS_COUNTER, "Binding writes committed.",
			   ls.ops);
	err |= metrics_one(mb, "sipstack_location_writes_failed_total",
			   METRICS_COUNTER, "Binding writes whose transaction "
			   "failed.", ls.failed);
	err |= metrics_one(mb, "sipstack_location_writes_pending",
			   METRICS_GAUGE, "Binding writes handed to the "
			   "writer thread, not committed yet.", ls.pending);
	err |= metrics_family(mb, "sipstack_location_commit_seconds",
			      METRICS_HISTOGRAM, "Duration of each location "
			      "store transaction (the backend's commit on "
			      "the writer thread; failed ones too).");
	err |= metrics_hist_write(mb, "sipstack_location_commit_seconds",
				  NULL, location_commit_hist(rs->loc));

	if (rs->auth)
		err |= auth_write(mb, rs);

	return err;
}


int regsvc_open(struct regsvc **rsp, struct stack *st,
		const struct regsvc_config *cfg)
{
	struct regsvc *rs;
	int err = 0;

	if (!rsp || !cfg)
		return EINVAL;

	rs = mem_zalloc(sizeof(*rs), destructor);
	if (!rs)
		return ENOMEM;

	rs->cfg = *cfg;
	if (cfg->database)
		err |= str_dup(&rs->database, cfg->database);
	if (cfg->realm)
		err |= str_dup(&rs->realm, cfg->realm);
	if (cfg->remote)
		err |= str_dup(&rs->remote, cfg->remote);
	if (err)
		goto out;
	rs->cfg.database = rs->database;
	rs->cfg.realm = rs->realm;
	rs->cfg.remote = rs->remote;

	if (cfg->remote) {
		const char *at = strchr(rs->remote, '@');

		/* for the logs: never the password */
		if (at)
			(void)re_snprintf(rs->spec, sizeof(rs->spec),
					  "redis://***%s", at);
		else
			str_ncpy(rs->spec, rs->remote, sizeof(rs->spec));
	}
	else if (cfg->memory) {
		str_ncpy(rs->spec, "memory:", sizeof(rs->spec));
	}
	else {
		(void)re_snprintf(rs->spec, sizeof(rs->spec), "sqlite:%s",
				  rs->database);
	}

	err = location_open(&rs->loc, cfg->remote ? rs->remote : rs->spec,
			    NULL);
	if (err) {
		slog(LOG_ERROR, "registrar", "store_failed", NULL,
		     "store=%H err=%m", log_q, rs->spec, err);
		goto out;
	}

	err = registrar_alloc(&rs->reg, rs->loc, &rs->cfg.rcfg);
	if (err)
		goto out;

	if (cfg->auth) {
		err = open_auth(rs);
		if (err)
			goto out;
	}

	slog(LOG_INFO, "registrar", "open", NULL,
	     "store=%H auth=%s realm=%H users=%u",
	     log_q, rs->spec, cfg->auth ? "on" : "off", log_q,
	     rs->realm ? rs->realm : "", auth_users_count(rs->users));

	/* a banned address is dropped at the door */
	if (st && auth_guard(rs->auth)) {
		rs->gate = st;
		stack_set_admit(st, authguard_admit, auth_guard(rs->auth));
	}

	/* one service per stack, as for the gate: its figures go to the
	 * stack's registry while it lives */
	if (st && stack_metrics(st))
		err = metrics_collector_add(&rs->mc, stack_metrics(st),
					    metrics_collect, rs);

 out:
	if (err)
		mem_deref(rs);
	else
		*rsp = rs;

	return err;
}


const struct regsvc_config *regsvc_config(const struct regsvc *rs)
{
	return rs ? &rs->cfg : NULL;
}


/* ------------------------------------------------------------------ *
 * REGISTER
 * ------------------------------------------------------------------ */

/* RFC 3261 §10.3 step 4: an authenticated user registers its own AOR
 * only (the user part of the To URI). Answers 403 and returns false
 * otherwise. */
static bool authorized(struct stack_req *req, const struct auth_result *ar)
{
	const struct sip_msg *msg = stack_req_msg(req);

	if (!pl_strcmp(&msg->to.uri.user, ar->user))
		return true;

	slog_src(LOG_WARN, "registrar", "not_authorized", &msg->src,
		 &msg->callid, "user=%H aor=%H src=%J", log_q, ar->user,
		 log_qpl, &msg->to.auri, &msg->src);
	(void)stack_req_reply(req, 403, "Forbidden (not your AOR)", NULL,
			      NULL, NULL, 0);

	return false;
}


/* Steps 1-4 that are ours: with auth on, the request is authenticated
 * and its AOR must be the user's. false: it was answered. */
static bool admitted(struct regsvc *rs, struct stack_req *req)
{
	struct auth_result ar;

	if (!rs->auth)
		return true;

	return !auth_require(rs->auth, req, false, &ar) &&
		authorized(req, &ar);
}


static void c_done(int err, uint16_t scode, const struct loc_set *set,
		   void *arg)
{
	(void)set;
	(void)arg;

	if (err)
		slog(LOG_WARN, "registrar", "failed", NULL, "code=%u err=%m",
		     scode, err);
}


void regsvc_register(struct regsvc *rs, struct stack_req *req)
{
	if (!rs || !req)
		return;

	if (!admitted(rs, req))
		return;   /* answered: 401, 403 or 400 */

	if (registrar_handle(rs->reg, req, c_done, NULL))
		(void)stack_req_reply(req, 500, "Server Internal Error",
				      NULL, NULL, NULL, 0);
}


int regsvc_save(struct regsvc *rs, struct stack_req *req,
		registrar_done_h *doneh, void *arg)
{
	if (!rs || !req)
		return EINVAL;

	if (stack_req_answered(req))
		return EALREADY;

	if (!admitted(rs, req))
		return EAUTH;

	return registrar_handle(rs->reg, req, doneh, arg);
}


/* The AOR of the SIP URI uri (a mem string); EINVAL: not one */
static int aor_of(char **aorp, const char *uri)
{
	struct uri u;
	struct pl pl;

	pl_set_str(&pl, uri);
	if (uri_decode(&u, &pl) || location_aor(aorp, &u))
		return EINVAL;

	return 0;
}


int regsvc_lookup(struct loc_set **setp, struct regsvc *rs,
		  const char *uri)
{
	char *aor = NULL;
	int err;

	if (!setp || !rs || !uri)
		return EINVAL;

	if (aor_of(&aor, uri))
		return EINVAL;

	err = location_lookup(setp, rs->loc, aor);
	mem_deref(aor);

	return err;
}


int regsvc_query(struct regsvc *rs, const char *uri, loc_done_h *doneh,
		 void *arg)
{
	char *aor = NULL;
	int err;

	if (!rs || !uri || !doneh)
		return EINVAL;

	if (aor_of(&aor, uri))
		return EINVAL;

	err = location_query(rs->loc, aor, doneh, arg);
	mem_deref(aor);

	return err;
}


/* Every binding of the AOR goes, as a REGISTER with "Contact: *" and
 * Expires: 0 would do (RFC 3261 §10.2.2), under a Call-ID of its own
 * (so no REGISTER's CSeq rule can refuse it); doneh once it is
 * committed, as location_apply() says */
int regsvc_remove(struct regsvc *rs, const char *uri, const char *callid,
		  loc_done_h *doneh, void *arg)
{
	struct loc_change chg;
	char *aor = NULL;
	int err;

	if (!rs || !uri || !callid)
		return EINVAL;

	if (aor_of(&aor, uri))
		return EINVAL;

	memset(&chg, 0, sizeof(chg));
	pl_set_str(&chg.aor, aor);
	pl_set_str(&chg.callid, callid);
	chg.cseq = 1;
	chg.wildcard = true;

	err = location_apply(rs->loc, &chg, doneh, arg);
	mem_deref(aor);

	return err;
}


bool regsvc_remote(const struct regsvc *rs)
{
	return rs && location_remote(rs->loc);
}


struct location *regsvc_location(const struct regsvc *rs)
{
	return rs ? rs->loc : NULL;
}


struct auth *regsvc_auth(const struct regsvc *rs)
{
	return rs ? rs->auth : NULL;
}


struct authguard *regsvc_guard(const struct regsvc *rs)
{
	return rs ? auth_guard(rs->auth) : NULL;
}


int regsvc_debug(struct re_printf *pf, const struct regsvc *rs)
{
	if (!rs)
		return re_hprintf(pf, "regsvc: none");

	return re_hprintf(pf, "regsvc: store=%s auth=%s realm=%s users=%u "
			  "guard=%s gate=%s", rs->spec,
			  rs->auth ? "on" : "off",
			  rs->realm ? rs->realm : "",
			  auth_users_count(rs->users),
			  regsvc_guard(rs) ? "on" : "off",
			  rs->gate ? "set" : "none");
}
