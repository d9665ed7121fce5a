/**
 * server/registrar/auth.c  The digest verifier (server side)
 *
 * Owns struct auth: the realm, the nonce secret, the nonces it makes and
 * checks, and the nonce-count table. Exposes auth_*() in registrar.h
 * (AUTH): challenges, auth_check(), the policy auth_require() and its
 * answer alone, auth_answer(). Uses the core's Digest parser and
 * hashing (sipcore.h, Digest: digest.c), the users table for HA1s and
 * the nonce secret (users.c, through regpriv.h), the guessing limits
 * (authguard.c), OpenSSL (HMAC) for the nonce MAC, and libre to read
 * requests and send replies.
 *
 * Standards: RFC 3261 §22, RFC 7616 (Digest), RFC 8760 (SHA-256 in SIP).
 *
 * Decisions (see also the AUTH section of registrar.h):
 *
 *  - Challenges offer one header per algorithm, SHA-256 first, then MD5
 *    (RFC 8760: one header per algorithm, in order of preference), all
 *    with the same nonce and qop="auth".
 *  - A nonce is hex(ts || epoch || salt || HMAC-SHA256(secret, ts ||
 *    epoch || salt || realm)[0..15]): ts a monotonic clock in ms, epoch
 *    32 random bits drawn per process (auth_alloc), salt 32 random bits
 *    (so two challenges in the same millisecond differ). The secret (256
 *    bits) is made once and kept in the users database (table secrets),
 *    so nonces stay ours across restarts. A nonce needs no server state
 *    until its first successful use.
 *  - A nonce that is not ours (malformed, bad MAC: tampered, made up,
 *    another realm's or another database's) is refused before any
 *    password is looked at: a fresh challenge without stale, the same
 *    answer whatever the response says. Checking the response first
 *    would make a made-up nonce a one-packet password oracle (right:
 *    401 stale, wrong: 403) with no challenge round trip.
 *  - stale=true is only ever the outcome when the response is correct
 *    for one of our nonces (RFC 7616 §3.3: "SHOULD only set stale to
 *    true if ... a valid digest for that nonce"): expired, evicted from
 *    the nc table, or from a previous process (its epoch differs; its
 *    nc history is gone, so it is not accepted again). A wrong response
 *    is FAILED whatever the state of the nonce. A client that knows the
 *    password thus recovers without a prompt after a restart.
 *  - Guessing limits (server/registrar/authguard.c): FAILED and BAD count against
 *    the source address and the user name; a banned source or a slowed
 *    user is refused (FAILED, 403) without a check.
 *  - Nonce-count: the highest nc of each nonce is kept from its first
 *    successful use, in a hash table bounded to max_nonces entries with
 *    oldest-first eviction; entries go with their nonce's lifetime. A
 *    nonce not in the table whose timestamp is not newer than the newest
 *    evicted entry's may have been evicted, and so is refused as stale.
 *    nc is only advanced after the response checked out, so a guesser
 *    cannot burn a client's counter.
 *  - A repeated or lower nc with a correct response is REPLAY. The
 *    request is refused and re-challenged with stale=true (401/407), not
 *    403: the digest is valid, which is RFC 7616 §3.3's condition for
 *    stale; an attacker replaying a captured request cannot answer a
 *    fresh nonce; a genuine client whose requests crossed (nc 2 before
 *    nc 1) or whose counter restarted recovers without a user prompt.
 *    The replay is logged (ev=auth_replay) at warn level.
 *  - qop absent (RFC 2069 style) is BAD (400): we always send qop=auth
 *    and RFC 7616 §3.4 makes qop mandatory in the answer.
 *  - An unknown user is verified against a random per-process dummy HA1,
 *    so it costs the same as a wrong password and gives the same FAILED
 *    (403). Challenges never depend on the user.
 */
#include <ctype.h>
#include <string.h>
#include <time.h>
#include <openssl/evp.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <re.h>
#include "registrar.h"
#include "regpriv.h"


enum {
	SECRET_SIZE   = 32,
	SALT_SIZE     = 8,         /* epoch (4) || random (4)     */
	TS_SIZE       = 8,
	MAC_SIZE      = 16,
	NONCE_RAW     = TS_SIZE + SALT_SIZE + MAC_SIZE,
	NONCE_HEX     = 2 * NONCE_RAW,
};


/* ------------------------------------------------------------------ *
 * Nonces and the nonce-count table
 * ------------------------------------------------------------------ */

/* The highest nc of one nonce, from its first successful use */
struct ncent {
	struct le he;      /* in auth.nct, keyed by the salt */
	struct le fe;      /* in auth.ncfifo, oldest first   */
	uint64_t ts;
	uint64_t salt;
	uint32_t nc;
};

struct auth {
	char *realm;
	uint64_t ttl_ms;
	uint32_t max_nonces;
	unsigned algs;
	struct auth_users *users;
	uint8_t secret[SECRET_SIZE];
	uint32_t epoch;      /* this process's, in every nonce it makes */
	struct authguard *guard;
	EVP_MAC_CTX *hmac;   /* HMAC-SHA256 keyed with secret, re-inited
			      * per nonce (a one-shot HMAC() costs ~20,000
			      * instructions: fetch, context, key) */
	char dummy_md5[DIGEST_MD5_HEX + 1];       /* HA1s of unknown users */
	char dummy_sha256[DIGEST_SHA256_HEX + 1];
	struct hash *nct;
	struct list ncfifo;
	uint32_t ncn;
	uint64_t nc_mark;    /* newest ts evicted from the nc table */
	struct auth_stats stats;
};


static uint64_t now_ms(void)
{
	struct timespec ts;

	(void)clock_gettime(CLOCK_MONOTONIC, &ts);

	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}


static void put_be64(uint8_t *p, uint64_t v)
{
	int i;

	for (i = 7; i >= 0; i--) {
		p[i] = (uint8_t)v;
		v >>= 8;
	}
}


static uint64_t get_be64(const uint8_t *p)
{
	uint64_t v = 0;
	int i;

	for (i = 0; i < 8; i++)
		v = v << 8 | p[i];

	return v;
}


/* mac = HMAC-SHA256(secret, head || realm), truncated */
static int nonce_mac(uint8_t *mac, const struct auth *a, const uint8_t *head)
{
	uint8_t md[EVP_MAX_MD_SIZE];
	size_t mdlen = 0;

	/* a NULL key: the same key again, a fresh HMAC state */
	if (1 != EVP_MAC_init(a->hmac, NULL, 0, NULL) ||
	    1 != EVP_MAC_update(a->hmac, head, TS_SIZE + SALT_SIZE) ||
	    1 != EVP_MAC_update(a->hmac, (const uint8_t *)a->realm,
				strlen(a->realm)) ||
	    1 != EVP_MAC_final(a->hmac, md, &mdlen, sizeof(md)) ||
	    mdlen < MAC_SIZE)
		return EPROTO;

	memcpy(mac, md, MAC_SIZE);

	return 0;
}


static int nonce_make(char *hex, const struct auth *a)
{
	uint8_t raw[NONCE_RAW];
	int err;

	put_be64(raw, now_ms());
	put_be64(raw + TS_SIZE, (uint64_t)a->epoch << 32 | rand_u32());

	err = nonce_mac(raw + TS_SIZE + SALT_SIZE, a, raw);
	if (err)
		return err;

	digest_hex_encode(hex, raw, sizeof(raw));

	return 0;
}


/* 0 if the nonce is one of ours (ts and salt set), else EBADMSG */
static int nonce_decode(const struct auth *a, const struct pl *nonce,
			uint64_t *ts, uint64_t *salt)
{
	uint8_t raw[NONCE_RAW], mac[MAC_SIZE];

	if (nonce->l != NONCE_HEX || digest_hex_decode(raw, NONCE_RAW,
						       nonce->p))
		return EBADMSG;

	if (nonce_mac(mac, a, raw) ||
	    CRYPTO_memcmp(mac, raw + TS_SIZE + SALT_SIZE, MAC_SIZE))
		return EBADMSG;

	*ts   = get_be64(raw);
	*salt = get_be64(raw + TS_SIZE);

	return 0;
}


static void ncent_destructor(void *arg)
{
	struct ncent *e = arg;

	hash_unlink(&e->he);
	list_unlink(&e->fe);
}


struct nckey {
	uint64_t ts;
	uint64_t salt;
};


static bool ncent_cmp(struct le *le, void *arg)
{
	const struct ncent *e = le->data;
	const struct nckey *k = arg;

	return e->ts == k->ts && e->salt == k->salt;
}


static void nc_evict(struct auth *a, struct ncent *e)
{
	if (e->ts > a->nc_mark)
		a->nc_mark = e->ts;
	--a->ncn;
	mem_deref(e);
}


/* Note nc for a nonce whose response checked out.
 * Returns AUTH_OK, AUTH_REPLAY or AUTH_STALE (maybe evicted). */
static int nc_note(enum auth_status *status, struct auth *a, uint64_t ts,
		   uint64_t salt, uint32_t nc)
{
	struct nckey k = {ts, salt};
	struct ncent *e;
	uint64_t now = now_ms();

	e = list_ledata(hash_lookup(a->nct, (uint32_t)salt, ncent_cmp, &k));
	if (e) {
		if (nc <= e->nc) {
			*status = AUTH_REPLAY;
			return 0;
		}
		e->nc = nc;
		*status = AUTH_OK;
		return 0;
	}

	if (ts <= a->nc_mark) {
		*status = AUTH_STALE;
		return 0;
	}

	/* expire, then make room: oldest first */
	while (a->ncfifo.head) {
		struct ncent *old = a->ncfifo.head->data;

		if (old->ts + a->ttl_ms > now && a->ncn < a->max_nonces)
			break;
		nc_evict(a, old);
	}

	e = mem_zalloc(sizeof(*e), ncent_destructor);
	if (!e)
		return ENOMEM;

	e->ts = ts;
	e->salt = salt;
	e->nc = nc;
	hash_append(a->nct, (uint32_t)salt, &e->he, e);
	list_append(&a->ncfifo, &e->fe, e);
	++a->ncn;

	*status = AUTH_OK;

	return 0;
}



/* ------------------------------------------------------------------ *
 * URI comparison (RFC 3261 §19.1.4, the parts that matter here)
 * ------------------------------------------------------------------ */

struct uparam {
	struct pl name, val;
};


/* next ";name[=value]" of a uri-parameters string */
static bool uparam_next(struct pl *rest, struct uparam *prm)
{
	const char *p, *end;

	while (rest->l && rest->p[0] == ';')
		pl_advance(rest, 1);
	if (!rest->l)
		return false;

	p = rest->p;
	end = rest->p + rest->l;
	while (p < end && *p != ';')
		++p;

	prm->name.p = rest->p;
	prm->name.l = p - rest->p;
	prm->val = pl_null;
	{
		const char *eq = memchr(prm->name.p, '=', prm->name.l);
		if (eq) {
			prm->val.p = eq + 1;
			prm->val.l = p - (eq + 1);
			prm->name.l = eq - prm->name.p;
		}
	}

	pl_advance(rest, p - rest->p);

	return true;
}


static bool uparam_find(const struct pl *params, const struct pl *name,
			struct pl *val)
{
	struct pl rest = *params;
	struct uparam prm;

	while (uparam_next(&rest, &prm)) {
		if (!pl_casecmp(&prm.name, name)) {
			*val = prm.val;
			return true;
		}
	}

	return false;
}


static bool uparam_special(const struct pl *name)
{
	return !pl_strcasecmp(name, "user") ||
	       !pl_strcasecmp(name, "ttl") ||
	       !pl_strcasecmp(name, "method") ||
	       !pl_strcasecmp(name, "maddr") ||
	       !pl_strcasecmp(name, "transport");
}


/* every parameter of a that is also in b has the same value there; the
 * special ones (user, ttl, method, maddr, transport) must be in both */
static bool uparams_subset(const struct pl *a, const struct pl *b)
{
	struct pl rest = *a, val;
	struct uparam prm;

	while (uparam_next(&rest, &prm)) {
		if (!uparam_find(b, &prm.name, &val)) {
			if (uparam_special(&prm.name))
				return false;
			continue;
		}
		if (pl_casecmp(&prm.val, &val))
			return false;
	}

	return true;
}


static bool uri_equal(const struct pl *a, const struct pl *b)
{
	struct uri ua, ub;

	if (!pl_cmp(a, b))
		return true;

	if (uri_decode(&ua, a) || uri_decode(&ub, b))
		return false;

	return !pl_casecmp(&ua.scheme, &ub.scheme) &&
	       !pl_cmp(&ua.user, &ub.user) &&
	       !pl_cmp(&ua.password, &ub.password) &&
	       !pl_casecmp(&ua.host, &ub.host) &&
	       ua.port == ub.port &&
	       !pl_cmp(&ua.path, &ub.path) &&
	       uparams_subset(&ua.params, &ub.params) &&
	       uparams_subset(&ub.params, &ua.params) &&
	       !pl_cmp(&ua.headers, &ub.headers);
}


/* ------------------------------------------------------------------ *
 * The verifier
 * ------------------------------------------------------------------ */

void auth_config_default(struct auth_config *cfg)
{
	if (!cfg)
		return;

	memset(cfg, 0, sizeof(*cfg));
	cfg->realm      = AUTH_REALM_DEFAULT;
	cfg->nonce_ttl  = AUTH_NONCE_TTL;
	cfg->max_nonces = AUTH_NONCES_MAX;
	cfg->algs       = AUTH_ALG_SHA256 | AUTH_ALG_MD5;
}


static void auth_destructor(void *arg)
{
	struct auth *a = arg;

	mem_deref(a->guard);
	list_flush(&a->ncfifo);
	mem_deref(a->nct);
	mem_deref(a->users);
	mem_deref(a->realm);
	EVP_MAC_CTX_free(a->hmac);
	OPENSSL_cleanse(a->secret, sizeof(a->secret));
}


/* nonce_mac() relies on EVP_MAC_init(NULL key) keeping the key: checked
 * once against the one-shot HMAC(), twice in a row, so that an OpenSSL
 * that behaved otherwise is refused at start (a MAC under another key
 * would make nonces forgeable), not found out in the field */
static int hmac_selftest(const struct auth *a)
{
	uint8_t head[TS_SIZE + SALT_SIZE], data[sizeof(head) + AUTH_REALM_MAX];
	uint8_t mac[MAC_SIZE], md[EVP_MAX_MD_SIZE];
	unsigned mdlen = 0;
	size_t rlen = strlen(a->realm);
	int i;

	memset(head, 0x5a, sizeof(head));
	memcpy(data, head, sizeof(head));
	memcpy(data + sizeof(head), a->realm, rlen);
	if (!HMAC(EVP_sha256(), a->secret, sizeof(a->secret), data,
		  sizeof(head) + rlen, md, &mdlen) || mdlen < MAC_SIZE)
		return EPROTO;

	for (i = 0; i < 2; i++) {
		if (nonce_mac(mac, a, head) ||
		    CRYPTO_memcmp(mac, md, MAC_SIZE))
			return EPROTO;
	}

	return 0;
}


static int hmac_new(struct auth *a)
{
	char digest[] = "SHA256";
	OSSL_PARAM params[2];
	EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);

	if (!mac)
		return EPROTO;

	a->hmac = EVP_MAC_CTX_new(mac);
	EVP_MAC_free(mac);                   /* the context holds it */
	if (!a->hmac)
		return ENOMEM;

	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
						     digest, 0);
	params[1] = OSSL_PARAM_construct_end();

	if (1 != EVP_MAC_init(a->hmac, a->secret, sizeof(a->secret), params))
		return EPROTO;

	return hmac_selftest(a);
}


int auth_alloc(struct auth **ap, struct auth_users *users,
	       const struct auth_config *cfg)
{
	struct auth_config def;
	uint8_t rnd[DIGEST_SHA256_HEX / 2];
	struct auth *a;
	int err;

	if (!ap)
		return EINVAL;

	if (!cfg) {
		auth_config_default(&def);
		cfg = &def;
	}

	if (!digest_name_valid(cfg->realm, AUTH_REALM_MAX) || !cfg->nonce_ttl ||
	    !cfg->max_nonces ||
	    !(cfg->algs & (AUTH_ALG_MD5 | AUTH_ALG_SHA256)) ||
	    (cfg->algs & ~(unsigned)(AUTH_ALG_MD5 | AUTH_ALG_SHA256)))
		return EINVAL;

	a = mem_zalloc(sizeof(*a), auth_destructor);
	if (!a)
		return ENOMEM;

	a->ttl_ms     = (uint64_t)cfg->nonce_ttl * 1000;
	a->max_nonces = cfg->max_nonces;
	a->algs       = cfg->algs;
	a->users      = mem_ref(users);

	err = str_dup(&a->realm, cfg->realm);
	if (err)
		goto out;

	err = hash_alloc(&a->nct, reg_hash_size(cfg->max_nonces));
	if (err)
		goto out;

	if (users)
		err = auth_users_secret(users, "nonce", a->secret,
					sizeof(a->secret));
	else if (1 != RAND_bytes(a->secret, sizeof(a->secret)))
		err = EPROTO;
	if (err)
		goto out;

	if (1 != RAND_bytes(rnd, sizeof(rnd))) {
		err = EPROTO;
		goto out;
	}

	do {
		a->epoch = rand_u32();
	} while (!a->epoch);

	if (!cfg->no_guard) {
		err = authguard_alloc(&a->guard, cfg->guard);
		if (err)
			goto out;
	}

	err = hmac_new(a);
	if (err)
		goto out;

	/* never equal to a real HA1 but costs the same to use */
	digest_hex_encode(a->dummy_sha256, rnd, DIGEST_SHA256_HEX / 2);
	digest_hex_encode(a->dummy_md5, rnd, DIGEST_MD5_HEX / 2);

 out:
	OPENSSL_cleanse(rnd, sizeof(rnd));
	if (err)
		mem_deref(a);
	else
		*ap = a;

	return err;
}


const char *auth_realm(const struct auth *a)
{
	return a ? a->realm : NULL;
}


uint32_t auth_nonces(const struct auth *a)
{
	return a ? a->ncn : 0;
}


struct authguard *auth_guard(const struct auth *a)
{
	return a ? a->guard : NULL;
}


const char *auth_status_name(enum auth_status st)
{
	switch (st) {

	case AUTH_OK:             return "ok";
	case AUTH_NO_CREDENTIALS: return "no_credentials";
	case AUTH_STALE:          return "stale";
	case AUTH_FAILED:         return "failed";
	case AUTH_REPLAY:         return "replay";
	case AUTH_BAD:            return "bad";
	default:                  return "?";
	}
}


int auth_challenge_encode(struct mbuf *mb, struct auth *a, bool proxy,
			  bool stale)
{
	static const enum auth_alg order[] = {AUTH_ALG_SHA256, AUTH_ALG_MD5};
	char nonce[NONCE_HEX + 1];
	size_t i;
	int err;

	if (!mb || !a)
		return EINVAL;

	err = nonce_make(nonce, a);
	if (err)
		return err;

	for (i = 0; i < ARRAY_SIZE(order); i++) {
		if (!(a->algs & order[i]))
			continue;

		err = mbuf_printf(mb, "%s: Digest realm=\"%s\", "
				  "nonce=\"%s\", algorithm=%s, qop=\"auth\""
				  "%s\r\n",
				  proxy ? "Proxy-Authenticate" :
				  "WWW-Authenticate",
				  a->realm, nonce, auth_alg_name(order[i]),
				  stale ? ", stale=true" : "");
		if (err)
			return err;
	}

	++a->stats.challenges;

	return 0;
}


int auth_challenge(struct auth *a, struct stack_req *req, bool proxy,
		   bool stale)
{
	struct mbuf *mb;
	int err;

	if (!a || !req)
		return EINVAL;

	mb = mbuf_alloc(512);
	if (!mb)
		return ENOMEM;

	err = auth_challenge_encode(mb, a, proxy, stale);
	if (!err)
		err = mbuf_write_u8(mb, 0);
	if (err)
		goto out;

	err = stack_req_reply(req, proxy ? 407 : 401,
			      proxy ? "Proxy Authentication Required"
			      : "Unauthorized",
			      (const char *)mb->buf, NULL, NULL, 0);

 out:
	mem_deref(mb);

	return err;
}


/* What sip_msg_hdr_apply() found among the credentials headers */
struct pick {
	const struct auth *a;
	struct digest_params *c;
	const struct sip_hdr *sha256;
	const struct sip_hdr *md5;
	bool bad;       /* a malformed Digest header (maybe ours) */
};


static bool pick_handler(const struct sip_hdr *hdr, const struct sip_msg *msg,
			 void *arg)
{
	struct pick *pk = arg;
	enum auth_alg alg;
	int err;
	(void)msg;

	err = digest_params_decode(pk->c, &hdr->val);
	if (err == ENOENT)
		return false;          /* another scheme: not ours */
	if (err || !pk->c->realm.p) {
		pk->bad = true;
		return false;
	}

	if (pl_strcmp(&pk->c->realm, pk->a->realm))
		return false;          /* another realm (another proxy's) */

	alg = digest_params_alg(pk->c) & pk->a->algs;
	if (alg == AUTH_ALG_SHA256 && !pk->sha256)
		pk->sha256 = hdr;
	else if (alg == AUTH_ALG_MD5 && !pk->md5)
		pk->md5 = hdr;

	return false;
}


static void set_result(struct auth_result *res, enum auth_status st,
		       const char *reason)
{
	res->status = st;
	res->reason = reason;
}


/* Checks on the selected credentials that do not need the password;
 * NULL if fine, else the reason it is malformed. */
static const char *cred_malformed(const struct digest_params *c,
				  enum auth_alg alg)
{
	if (!pl_isset(&c->username))
		return c->username_ext.p ? "username_ext_unsupported" :
			"username_missing";
	if (!c->nonce.p)
		return "nonce_missing";
	if (!pl_isset(&c->uri))
		return "uri_missing";
	if (!c->response.p)
		return "response_missing";
	if (c->response.l != digest_hexlen(alg) ||
	    !digest_is_hex(c->response.p, c->response.l))
		return "response_malformed";
	if (c->userhash.p && pl_strcasecmp(&c->userhash, "false"))
		return "userhash_unsupported";
	if (!c->qop.p)
		return "qop_missing";
	if (pl_strcasecmp(&c->qop, "auth"))
		return "qop_unsupported";
	if (!c->nc.p)
		return "nc_missing";
	if (c->nc.l != 8 || !digest_is_hex(c->nc.p, 8) || !pl_x32(&c->nc))
		return "nc_malformed";
	if (!pl_isset(&c->cnonce))
		return "cnonce_missing";

	return NULL;
}


int auth_check(struct auth *a, const struct sip_msg *msg, bool proxy,
	       struct auth_result *res)
{
	char ha2[DIGEST_HEX_MAX], expect[DIGEST_HEX_MAX], resp[DIGEST_HEX_MAX];
	const struct auth_user *usr;
	const struct sip_hdr *hdr;
	struct pick pk;
	struct digest_params *c = NULL;
	struct pl pv[6], ha1;
	uint64_t ts = 0, salt = 0;
	enum auth_status nst;
	enum auth_alg alg;
	const char *why;
	size_t i, n;
	bool match, checked = false;
	int err = 0;

	if (!a || !msg || !res)
		return EINVAL;

	memset(res, 0, sizeof(*res));
	set_result(res, AUTH_NO_CREDENTIALS, "no_credentials");

	c = mem_alloc(sizeof(*c), NULL);
	if (!c)
		return ENOMEM;

	memset(&pk, 0, sizeof(pk));
	pk.a = a;
	pk.c = c;
	(void)sip_msg_hdr_apply(msg, true, proxy ?
				SIP_HDR_PROXY_AUTHORIZATION :
				SIP_HDR_AUTHORIZATION, pick_handler, &pk);

	/* SHA-256 when the client sent both (RFC 8760 order) */
	hdr = pk.sha256 ? pk.sha256 : pk.md5;
	if (!hdr) {
		if (pk.bad) {
			set_result(res, AUTH_BAD, "malformed");
			++a->stats.bad;
		}
		goto out;
	}

	alg = pk.sha256 ? AUTH_ALG_SHA256 : AUTH_ALG_MD5;
	err = digest_params_decode(c, &hdr->val);
	if (err)
		goto out;              /* parsed fine a moment ago */

	res->alg = alg;
	n = min(c->username.l, sizeof(res->user) - 1);
	if (n)
		memcpy(res->user, c->username.p, n);
	res->user[n] = '\0';

	why = cred_malformed(c, alg);
	if (why) {
		set_result(res, AUTH_BAD, why);
		++a->stats.bad;
		goto out;
	}

	/* not our nonce: a fresh challenge, no password looked at */
	if (nonce_decode(a, &c->nonce, &ts, &salt)) {
		set_result(res, AUTH_NO_CREDENTIALS, "nonce_unknown");
		++a->stats.foreign;
		goto out;
	}

	if (a->guard && authguard_banned(a->guard, &msg->src)) {
		set_result(res, AUTH_FAILED, "banned");
		++a->stats.failed;
		goto out;
	}

	if (!uri_equal(&c->uri, &msg->ruri)) {
		set_result(res, AUTH_FAILED, "uri_mismatch");
		++a->stats.failed;
		goto out;
	}

	/* slowed (distributed guessing at this name): refused like a
	 * wrong password, unchecked */
	if (a->guard && !authguard_user_allowed(a->guard, &msg->src,
						 &c->username)) {
		set_result(res, AUTH_FAILED, "user_slowed");
		++a->stats.failed;
		goto out;
	}

	/* unknown users (or users of another realm) take the same path
	 * with an HA1 nobody knows */
	usr = auth_users_find(a->users, &c->username);
	if (usr && strcmp(usr->realm, a->realm))
		usr = NULL;
	if (alg == AUTH_ALG_SHA256)
		pl_set_str(&ha1, usr ? usr->ha1_sha256 : a->dummy_sha256);
	else
		pl_set_str(&ha1, usr ? usr->ha1_md5 : a->dummy_md5);

	pv[0] = msg->met;
	pv[1] = c->uri;
	err = digest_hash(ha2, alg, pv, 2);
	if (err)
		goto out;

	pv[0] = ha1;
	pv[1] = c->nonce;
	pv[2] = c->nc;
	pv[3] = c->cnonce;
	pv[4] = c->qop;
	pl_set_str(&pv[5], ha2);
	err = digest_hash(expect, alg, pv, 6);
	if (err)
		goto out;

	for (i = 0; i < c->response.l; i++)
		resp[i] = (char)tolower((unsigned char)c->response.p[i]);
	resp[i] = '\0';

	checked = true;
	match = 0 == CRYPTO_memcmp(expect, resp, digest_hexlen(alg));
	if (!usr || !match) {
		set_result(res, AUTH_FAILED, usr ? "wrong_password" :
			   "unknown_user");
		++a->stats.failed;
		goto out;
	}

	/* the client knows the password: an old nonce is only stale */
	if ((uint32_t)(salt >> 32) != a->epoch) {
		set_result(res, AUTH_STALE, "nonce_previous");
		++a->stats.stale;
		goto out;
	}

	if (now_ms() - ts >= a->ttl_ms) {
		set_result(res, AUTH_STALE, "nonce_expired");
		++a->stats.stale;
		goto out;
	}

	err = nc_note(&nst, a, ts, salt, pl_x32(&c->nc));
	if (err)
		goto out;

	switch (nst) {

	case AUTH_REPLAY:
		set_result(res, AUTH_REPLAY, "nc_replay");
		++a->stats.replay;
		break;

	case AUTH_STALE:
		set_result(res, AUTH_STALE, "nonce_evicted");
		++a->stats.stale;
		break;

	default:
		set_result(res, AUTH_OK, "ok");
		++a->stats.ok;
		break;
	}

 out:
	if (!err && a->guard) {
		struct pl user;

		pl_set_str(&user, res->user);
		if (res->status == AUTH_FAILED || res->status == AUTH_BAD)
			authguard_failed(a->guard, &msg->src, &user, checked);
		else if (res->status == AUTH_OK)
			authguard_succeeded(a->guard, &msg->src, &user);
	}

	OPENSSL_cleanse(expect, sizeof(expect));
	mem_deref(c);

	return err;
}


int auth_answer(struct auth *a, const struct sip_msg *msg, bool proxy,
		const struct auth_result *res, uint16_t *scodep,
		const char **reasonp, struct mbuf *hdrs)
{
	bool stale = false;

	if (!a || !msg || !res || !scodep || !reasonp || !hdrs)
		return EINVAL;

	*scodep = 0;
	*reasonp = NULL;

	switch (res->status) {

	case AUTH_OK:
		slog(LOG_DEBUG, "auth", "auth_ok", &msg->callid,
		     "user=%H src=%J alg=%s", log_q, res->user, &msg->src,
		     auth_alg_name(res->alg));
		return 0;

	case AUTH_NO_CREDENTIALS:
		if (strcmp(res->reason, "no_credentials"))
			slog(LOG_DEBUG, "auth", "auth_rechallenge",
			     &msg->callid, "user=%H src=%J reason=%s", log_q,
			     res->user, &msg->src, res->reason);
		break;

	case AUTH_STALE:
		slog(LOG_DEBUG, "auth", "auth_stale", &msg->callid,
		     "user=%H src=%J reason=%s", log_q, res->user,
		     &msg->src, res->reason);
		stale = true;
		break;

	case AUTH_REPLAY:
		slog_src(LOG_WARN, "auth", "auth_replay", &msg->src,
			 &msg->callid, "user=%H src=%J reason=%s", log_q,
			 res->user, &msg->src, res->reason);
		stale = true;
		break;

	case AUTH_BAD:
		slog_src(LOG_WARN, "auth", "auth_bad", &msg->src,
			 &msg->callid, "user=%H src=%J reason=%s", log_q,
			 res->user, &msg->src, res->reason);
		*scodep = 400;
		*reasonp = "Bad Request";
		return 0;

	case AUTH_FAILED:
	default:
		slog_src(LOG_WARN, "auth", "auth_failed", &msg->src,
			 &msg->callid, "user=%H src=%J reason=%s", log_q,
			 res->user, &msg->src, res->reason);
		*scodep = 403;
		*reasonp = "Forbidden";
		return 0;
	}

	*scodep = proxy ? 407 : 401;
	*reasonp = proxy ? "Proxy Authentication Required" : "Unauthorized";

	return auth_challenge_encode(hdrs, a, proxy, stale);
}


int auth_require(struct auth *a, struct stack_req *req, bool proxy,
		 struct auth_result *res)
{
	const struct sip_msg *msg;
	struct auth_result tmp;
	const char *reason;
	struct mbuf *mb;
	uint16_t scode;
	int err;

	if (!a || !req)
		return EINVAL;

	if (!res)
		res = &tmp;

	msg = stack_req_msg(req);
	err = auth_check(a, msg, proxy, res);
	if (err) {
		slog(LOG_ERROR, "auth", "auth_error", &msg->callid,
		     "src=%J err=%m", &msg->src, err);
		(void)stack_req_reply(req, 500, "Server Internal Error",
				      NULL, NULL, NULL, 0);
		return err;
	}

	mb = mbuf_alloc(512);
	if (!mb)
		return ENOMEM;

	err = auth_answer(a, msg, proxy, res, &scode, &reason, mb);
	if (!err && scode) {
		err = mbuf_write_u8(mb, 0);
		if (!err)
			err = stack_req_reply(req, scode, reason, mb->end > 1 ?
					      (const char *)mb->buf : NULL,
					      NULL, NULL, 0);
		if (!err)
			err = EAUTH;
	}

	mem_deref(mb);

	return err;
}


void auth_stats(const struct auth *a, struct auth_stats *st)
{
	if (a && st)
		*st = a->stats;
}


int auth_debug(struct re_printf *pf, const struct auth *a)
{
	if (!a)
		return 0;

	return re_hprintf(pf, "realm=%H algs=%s%s%s nonce_ttl=%llu "
			  "nonces=%u/%u challenges=%llu ok=%llu failed=%llu "
			  "stale=%llu replay=%llu bad=%llu foreign=%llu",
			  log_q, a->realm,
			  a->algs & AUTH_ALG_SHA256 ? "SHA-256" : "",
			  a->algs == (AUTH_ALG_SHA256 | AUTH_ALG_MD5) ?
			  "," : "",
			  a->algs & AUTH_ALG_MD5 ? "MD5" : "",
			  (unsigned long long)(a->ttl_ms / 1000),
			  a->ncn, a->max_nonces,
			  (unsigned long long)a->stats.challenges,
			  (unsigned long long)a->stats.ok,
			  (unsigned long long)a->stats.failed,
			  (unsigned long long)a->stats.stale,
			  (unsigned long long)a->stats.replay,
			  (unsigned long long)a->stats.bad,
			  (unsigned long long)a->stats.foreign);
}
