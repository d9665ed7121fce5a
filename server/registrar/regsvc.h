/**
 * server/registrar/regsvc.h  The registrar service (server/registrar/regsvc.c)
 *
 * A registrar as one object: the location store, the registrar of RFC
 * 3261 §10.3, the digest authenticator and its guard, opened from one
 * config. Not public API: the program's Lua bindings open it from
 * sip.registrar.configure{}; a C program could as well.
 */
#ifndef SIPSTACK_REGSVC_H
#define SIPSTACK_REGSVC_H

/* What a registrar is opened with. The strings are read during
 * regsvc_open() only (the service keeps copies). */
struct regsvc_config {
	const char *database;    /* SQLite file of bindings and users, or
				  * NULL (memory store without auth)   */
	bool memory;             /* bindings in memory only (tests)     */
	const char *remote;      /* bindings in a remote store instead:
				  * "redis://IP[:PORT][/DB]", or NULL  */
	bool auth;               /* digest auth on REGISTER             */
	const char *realm;       /* digest realm                        */
	unsigned algs;           /* AUTH_ALG_* offered                  */
	uint32_t nonce_ttl;      /* s                                   */
	bool guard;              /* limits on guessing (authguard.c)    */
	struct authguard_config gcfg;
	struct registrar_config rcfg;
};

struct regsvc;

/* auth on, realm "sipstack", SHA-256 and MD5, the default nonce TTL,
 * guard and registrar defaults; no database */
void regsvc_config_default(struct regsvc_config *cfg);
bool regsvc_config_equal(const struct regsvc_config *a,
			 const struct regsvc_config *b);

/* Opens the store (and with auth the users table). With st, a guard
 * becomes st's admission gate (a banned address is dropped at the
 * door) until the service is freed. */
int  regsvc_open(struct regsvc **rsp, struct stack *st,
		 const struct regsvc_config *cfg);
const struct regsvc_config *regsvc_config(const struct regsvc *rs);

/* The whole REGISTER in C: digest auth, the AOR check, then the
 * registrar. req is always answered (401/403/400, the registrar's
 * answer, or 500). */
void regsvc_register(struct regsvc *rs, struct stack_req *req);

/* The same for a caller that wants to hear the outcome (doneh as in
 * registrar_handle, never called from inside). Returns EALREADY when
 * req had a final answer, EAUTH when authentication or the AOR check
 * answered it (401, 403 or 400), or the registrar's errno (then doneh
 * is not called). */
int  regsvc_save(struct regsvc *rs, struct stack_req *req,
		 registrar_done_h *doneh, void *arg);

/* The bindings of the AOR of the SIP URI uri (EINVAL: not one; ENOTSUP
 * with a remote store: use regsvc_query) */
int  regsvc_lookup(struct loc_set **setp, struct regsvc *rs,
		   const char *uri);
/* The same from any store, through location_query(): doneh later,
 * exactly once, unless an error is returned (EINVAL: not a SIP URI,
 * ENOTCONN: a remote store that is down now) */
int  regsvc_query(struct regsvc *rs, const char *uri, loc_done_h *doneh,
		  void *arg);
/* Is the store remote (Redis): lookups must wait for it */
bool regsvc_remote(const struct regsvc *rs);

/* Removes every binding of the AOR of the SIP URI uri (EINVAL: not
 * one), as "Contact: *" would, in a change of Call-ID callid; doneh
 * and the errors as location_apply() */
int  regsvc_remove(struct regsvc *rs, const char *uri, const char *callid,
		   loc_done_h *doneh, void *arg);
struct location *regsvc_location(const struct regsvc *rs);
struct auth *regsvc_auth(const struct regsvc *rs);        /* NULL: off */
struct authguard *regsvc_guard(const struct regsvc *rs);  /* NULL: none */
int  regsvc_debug(struct re_printf *pf, const struct regsvc *rs);

#endif
