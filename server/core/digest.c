/**
 * server/core/digest.c  HTTP Digest for SIP: what both sides need
 *
 * Owns no object: the algorithms (MD5, SHA-256) and their hashing into
 * lowercase hex, the Digest header parser (credentials and challenges,
 * quoted-strings unescaped) and the client's answer to a challenge.
 * Exposes auth_alg_name(), digest_*() and auth_client_answer() in the
 * "Digest" section of sipcore.h. Uses OpenSSL (EVP) for the hashes and
 * libre for pointer-length strings, the parsed response and random
 * numbers; knows no server state (the verifier, its nonces and the users
 * table are server/registrar/auth.c and users.c).
 *
 * Why our own parser: libre's (src/httpauth) has no quoted-string
 * unescaping and no `algorithm` field in a response, which RFC 7616 and
 * RFC 8760 need.
 *
 * Standards: RFC 7616 (Digest), RFC 8760 (SHA-256 in SIP), RFC 3261
 * §22 and §25.1 (the grammar).
 */
#include <stddef.h>
#include <string.h>
#include <strings.h>
#include <pthread.h>
#include <openssl/evp.h>
#include <openssl/crypto.h>
#include <re.h>
#include "sipcore.h"


/* ------------------------------------------------------------------ *
 * Hashing (OpenSSL EVP)
 * ------------------------------------------------------------------ */

/* The digests, fetched once: EVP_md5()/EVP_sha256() make every
 * EVP_DigestInit_ex fetch the implementation again (OpenSSL 3) */
static EVP_MD *md_md5, *md_sha256;
static pthread_once_t md_once = PTHREAD_ONCE_INIT;

static void md_fetch(void)
{
	md_md5    = EVP_MD_fetch(NULL, "MD5", NULL);
	md_sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
}


static const EVP_MD *alg_md(enum auth_alg alg)
{
	(void)pthread_once(&md_once, md_fetch);

	if (alg == AUTH_ALG_SHA256)
		return md_sha256 ? md_sha256 : EVP_sha256();

	return md_md5 ? md_md5 : EVP_md5();
}


size_t digest_hexlen(enum auth_alg alg)
{
	return alg == AUTH_ALG_SHA256 ? DIGEST_SHA256_HEX : DIGEST_MD5_HEX;
}


const char *auth_alg_name(enum auth_alg alg)
{
	switch (alg) {

	case AUTH_ALG_MD5:    return "MD5";
	case AUTH_ALG_SHA256: return "SHA-256";
	default:              return "?";
	}
}


void digest_hex_encode(char *hex, const uint8_t *p, size_t n)
{
	static const char digits[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < n; i++) {
		hex[2*i]     = digits[p[i] >> 4];
		hex[2*i + 1] = digits[p[i] & 0xf];
	}
	hex[2*n] = '\0';
}


static int hex_val(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}


bool digest_is_hex(const char *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (hex_val(p[i]) < 0)
			return false;
	}

	return true;
}


int digest_hex_decode(uint8_t *p, size_t n, const char *hex)
{
	size_t i;

	if (!digest_is_hex(hex, 2 * n))
		return EINVAL;

	for (i = 0; i < n; i++)
		p[i] = (uint8_t)(hex_val(hex[2*i]) << 4 |
				 hex_val(hex[2*i + 1]));

	return 0;
}


int digest_hash(char *hex, enum auth_alg alg, const struct pl *pv, size_t n)
{
	uint8_t md[EVP_MAX_MD_SIZE];
	unsigned mdlen = 0;
	EVP_MD_CTX *ctx;
	size_t i;
	int err = 0;

	ctx = EVP_MD_CTX_new();
	if (!ctx)
		return ENOMEM;

	if (1 != EVP_DigestInit_ex(ctx, alg_md(alg), NULL)) {
		err = EPROTO;
		goto out;
	}

	for (i = 0; i < n; i++) {
		if ((i && 1 != EVP_DigestUpdate(ctx, ":", 1)) ||
		    (pv[i].l && 1 != EVP_DigestUpdate(ctx, pv[i].p,
						      pv[i].l))) {
			err = EPROTO;
			goto out;
		}
	}

	if (1 != EVP_DigestFinal_ex(ctx, md, &mdlen) ||
	    mdlen * 2 != digest_hexlen(alg)) {
		err = EPROTO;
		goto out;
	}

	digest_hex_encode(hex, md, mdlen);

 out:
	EVP_MD_CTX_free(ctx);
	OPENSSL_cleanse(md, sizeof(md));

	return err;
}


/* Names and realms go into quoted-strings and log lines: no control
 * characters, no quote or backslash (which would need escaping that
 * some clients get wrong), bounded length. */
bool digest_name_valid(const char *s, size_t max)
{
	size_t i, n;

	if (!s)
		return false;

	n = strlen(s);
	if (n == 0 || n > max)
		return false;

	for (i = 0; i < n; i++) {
		const unsigned char c = s[i];
		if (c < 0x20 || c == 0x7f || c == '"' || c == '\\')
			return false;
	}

	return true;
}


/* ------------------------------------------------------------------ *
 * Digest parameters: parsing (RFC 7616 §3.4, RFC 3261 §25.1)
 * ------------------------------------------------------------------ */

static bool is_lws(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}


static bool is_token(char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9'))
		return true;

	return c != '\0' && strchr("-.!%*_+`'~", c) != NULL;
}


static struct pl *param_field(struct digest_params *dp,
			      const struct pl *name)
{
	static const struct {
		const char *name;
		size_t off;
	} fields[] = {
		{"username",  offsetof(struct digest_params, username)},
		{"realm",     offsetof(struct digest_params, realm)},
		{"nonce",     offsetof(struct digest_params, nonce)},
		{"uri",       offsetof(struct digest_params, uri)},
		{"response",  offsetof(struct digest_params, response)},
		{"algorithm", offsetof(struct digest_params, algorithm)},
		{"cnonce",    offsetof(struct digest_params, cnonce)},
		{"nc",        offsetof(struct digest_params, nc)},
		{"qop",       offsetof(struct digest_params, qop)},
		{"userhash",  offsetof(struct digest_params, userhash)},
		{"username*", offsetof(struct digest_params, username_ext)},
		{"opaque",    offsetof(struct digest_params, opaque)},
		{"stale",     offsetof(struct digest_params, stale)},
	};
	size_t i;

	for (i = 0; i < ARRAY_SIZE(fields); i++) {
		if (!pl_strcasecmp(name, fields[i].name))
			return (struct pl *)(void *)((char *)dp +
						     fields[i].off);
	}

	return NULL;
}


int digest_params_decode(struct digest_params *dp, const struct pl *val)
{
	const char *p = val->p, *end = val->p + val->l;
	bool first = true;

	memset(dp, 0, offsetof(struct digest_params, buf));
	dp->used = 0;

	while (p < end && is_lws(*p))
		++p;

	if ((size_t)(end - p) < 6 || strncasecmp(p, "Digest", 6))
		return ENOENT;
	p += 6;
	if (p < end && !is_lws(*p))
		return ENOENT;

	for (;;) {
		struct pl name, *field;
		bool comma = false;
		char *out;

		while (p < end && (is_lws(*p) || *p == ',')) {
			comma |= *p == ',';
			++p;
		}
		if (p == end)
			break;
		if (!first && !comma)
			return EBADMSG;
		first = false;

		name.p = p;
		while (p < end && is_token(*p))
			++p;
		name.l = p - name.p;
		if (!name.l)
			return EBADMSG;

		while (p < end && is_lws(*p))
			++p;
		if (p == end || *p != '=')
			return EBADMSG;
		++p;
		while (p < end && is_lws(*p))
			++p;
		if (p == end)
			return EBADMSG;

		out = dp->buf + dp->used;

		if (*p == '"') {
			++p;
			for (;;) {
				if (p == end)
					return EBADMSG;   /* unterminated */
				if (*p == '"')
					break;
				if (*p == '\\' && ++p == end)
					return EBADMSG;
				if (dp->used >= sizeof(dp->buf))
					return EBADMSG;
				dp->buf[dp->used++] = *p++;
			}
			++p;
		}
		else {
			while (p < end && is_token(*p)) {
				if (dp->used >= sizeof(dp->buf))
					return EBADMSG;
				dp->buf[dp->used++] = *p++;
			}
			if (out == dp->buf + dp->used)
				return EBADMSG;
		}

		field = param_field(dp, &name);
		if (!field)
			continue;           /* unknown parameters: ignored */
		if (field->p)
			return EBADMSG;     /* each at most once */
		field->p = out;
		field->l = dp->buf + dp->used - out;
	}

	return 0;
}


enum auth_alg digest_params_alg(const struct digest_params *dp)
{
	if (!dp->algorithm.p || !pl_strcasecmp(&dp->algorithm, "MD5"))
		return AUTH_ALG_MD5;
	if (!pl_strcasecmp(&dp->algorithm, "SHA-256"))
		return AUTH_ALG_SHA256;

	return 0;
}


/* ------------------------------------------------------------------ *
 * Client side: answering a challenge (RFC 7616 §3.4, RFC 8760)
 * ------------------------------------------------------------------ */

static bool qop_has_auth(const struct pl *qop)
{
	struct pl v = *qop, tok;

	while (!re_regex(v.p, v.l, "[^, \t]+", &tok)) {
		if (!pl_strcasecmp(&tok, "auth"))
			return true;
		v.l -= (tok.p + tok.l) - v.p;
		v.p = tok.p + tok.l;
	}

	return false;
}


static bool quotable(const struct pl *pl)
{
	return !pl->p || (!memchr(pl->p, '"', pl->l) &&
			  !memchr(pl->p, '\\', pl->l));
}


struct chpick {
	struct digest_params *dp;
	enum auth_alg alg;
};


/* the first challenge (server preference order) we can answer */
static bool challenge_handler(const struct sip_hdr *hdr,
			      const struct sip_msg *msg, void *arg)
{
	struct chpick *pk = arg;
	enum auth_alg alg;
	(void)msg;

	if (digest_params_decode(pk->dp, &hdr->val) || !pk->dp->realm.p ||
	    !pk->dp->nonce.p)
		return false;

	alg = digest_params_alg(pk->dp);
	if (!alg || (pk->dp->qop.p && !qop_has_auth(&pk->dp->qop)))
		return false;

	if (!quotable(&pk->dp->realm) || !quotable(&pk->dp->nonce) ||
	    !quotable(&pk->dp->opaque))
		return false;

	pk->alg = alg;

	return true;
}


int auth_client_answer(char **hdrp, const struct sip_msg *resp,
		       const char *met, const char *uri, const char *user,
		       const char *password, bool *stale)
{
	struct digest_params *c;
	struct chpick pk;
	char ha1[DIGEST_HEX_MAX], ha2[DIGEST_HEX_MAX], rsp[DIGEST_HEX_MAX];
	char cnonce[17];
	struct pl pv[6];
	const bool proxy = resp && resp->scode == 407;
	int err;

	if (!hdrp || !resp || !met || !uri || !user || !password)
		return EINVAL;

	if (!digest_name_valid(user, DIGEST_USER_MAX) ||
	    strpbrk(uri, "\"\\\r\n"))
		return EINVAL;

	c = mem_zalloc(sizeof(*c), NULL);
	if (!c)
		return ENOMEM;

	pk.dp = c;
	pk.alg = 0;
	if (!sip_msg_hdr_apply(resp, true, proxy ?
			       SIP_HDR_PROXY_AUTHENTICATE :
			       SIP_HDR_WWW_AUTHENTICATE,
			       challenge_handler, &pk)) {
		err = EPROTONOSUPPORT;   /* nothing we can answer */
		goto out;
	}

	if (stale)
		*stale = c->stale.p && !pl_strcasecmp(&c->stale, "true");

	{
		struct pl pu, pr, pp;

		pl_set_str(&pu, user);
		pr = c->realm;
		pl_set_str(&pp, password);
		pv[0] = pu;
		pv[1] = pr;
		pv[2] = pp;
		err = digest_hash(ha1, pk.alg, pv, 3);
	}
	pl_set_str(&pv[0], met);
	pl_set_str(&pv[1], uri);
	err |= digest_hash(ha2, pk.alg, pv, 2);

	(void)re_snprintf(cnonce, sizeof(cnonce), "%016llx", rand_u64());
	pl_set_str(&pv[0], ha1);
	pv[1] = c->nonce;
	if (c->qop.p) {
		pl_set_str(&pv[2], "00000001");
		pl_set_str(&pv[3], cnonce);
		pl_set_str(&pv[4], "auth");
		pl_set_str(&pv[5], ha2);
		err |= digest_hash(rsp, pk.alg, pv, 6);
	}
	else {
		pl_set_str(&pv[2], ha2);
		err |= digest_hash(rsp, pk.alg, pv, 3);
	}
	if (err)
		goto out;

	{
		static const struct pl none = PL_INIT;
		const struct pl *op = c->opaque.p ? &c->opaque : &none;

		err = re_sdprintf(hdrp, "%s: Digest username=\"%s\", "
				  "realm=\"%r\", nonce=\"%r\", uri=\"%s\", "
				  "response=\"%s\", algorithm=%s%s%s%s%s%r%s\r\n",
				  proxy ? "Proxy-Authorization" :
				  "Authorization", user, &c->realm, &c->nonce,
				  uri, rsp, auth_alg_name(pk.alg),
				  c->qop.p ? ", qop=auth, nc=00000001, "
				  "cnonce=\"" : "", c->qop.p ? cnonce : "",
				  c->qop.p ? "\"" : "",
				  c->opaque.p ? ", opaque=\"" : "", op,
				  c->opaque.p ? "\"" : "");
	}

 out:
	OPENSSL_cleanse(ha1, sizeof(ha1));
	mem_deref(c);

	return err;
}
