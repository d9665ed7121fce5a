/**
 * server/registrar/registrar.h  Registration: the public C API
 *
 * What server/registrar/ gives the bindings and the program: the location
 * store, REGISTER processing, digest authentication (the verifier, the
 * users table, the guessing limits) and client registration. The
 * registrar service that assembles them is in regsvc.h.
 *
 * One section per object, in the libre style: opaque structs, int errno
 * returns, out-pointer first, handler and arg last, handler typedefs
 * ending in _h, getters named as nouns, a %H printer per object. Include
 * <re.h> first (with HAVE_INTTYPES_H, HAVE_STDBOOL_H, HAVE_INET6 and
 * USE_OPENSSL defined, as meson.build does). Everything runs on the
 * stack's loop thread; from another thread, use stack_call().
 */
#ifndef SIPSTACK_REGISTRAR_H
#define SIPSTACK_REGISTRAR_H

#include "sipcore.h"

/* ---- LOCATION BEGIN ---- (the location store, server/registrar/location.c) */

/*
 * Bindings of RFC 3261 §10: address-of-record (AOR) -> contact URIs.
 *
 * The working set lives in memory on the loop thread (hash by AOR, a
 * min-heap by expiry); every read and every rule check is served from
 * it. Each change is also written to a backend by a writer thread that
 * groups the writes queued meanwhile into one transaction (group
 * commit); location_apply()'s done handler runs on the loop thread only
 * once the change is committed, so an answer sent from it is durable.
 *
 * Backends are named by a spec string: "memory:" (nothing persists, for
 * tests; loc_memory.c) or "sqlite:PATH" (one database file, WAL,
 * synchronous=FULL, table `bindings`, schema version in PRAGMA
 * user_version; loc_sqlite.c). Others implement struct loc_backend and
 * use location_open_backend().
 *
 * "redis://[:PASSWORD@]IP[:PORT][/DB]" is another kind of store, a
 * remote and authoritative one (loc_redis.c): the bindings live in
 * Redis only, shared by every node that names the same Redis; one
 * atomic Lua script per REGISTER applies the rules of §10.3 there, and
 * the done handler runs once Redis has answered. Nothing is kept in
 * memory: location_lookup() is ENOTSUP, location_query() asks Redis,
 * and location_apply() and location_query() fail with ENOTCONN while
 * Redis is unreachable (it is reconnected with a back-off). See
 * location_remote().
 *
 * Times are unix time in milliseconds (wall clock, since they persist);
 * q-values are in thousandths (1000 = q 1.0). All functions run on the
 * loop thread that opened the store.
 */
struct location;
struct loc_set;

/* One binding. Read-only for users; strings are NUL-terminated, NULL
 * when absent. A binding handed out in a struct loc_set never changes:
 * a refresh replaces it by a new one. */
struct loc_binding {
	const char *aor;        /* canonical AOR, see location_aor()      */
	const char *contact;    /* Contact URI as registered, without <>  */
	uint64_t expires_at;    /* unix ms                                */
	uint64_t updated_at;    /* unix ms of the REGISTER that set it    */
	uint16_t q;             /* 0..1000                                */
	const char *callid;     /* Call-ID of that REGISTER               */
	uint32_t cseq;          /* and its CSeq number                    */
	const char *instance;   /* +sip.instance (RFC 5626), unquoted     */
	uint32_t reg_id;        /* reg-id (RFC 5626), 0 = none            */
	const char *path;       /* Path values (RFC 3327) in order, ","   */
	const char *received;   /* source: "sip:IP:PORT", plus
				 * ";transport=tcp|tls" when not UDP      */
	const char *user_agent; /* User-Agent                             */
	const char *node;       /* the node that took the REGISTER, as
				 * "sip:IP:PORT[;transport=tcp|tls]" (its
				 * listener): a remote store only (Redis),
				 * NULL in a local one                    */
};

/* One Contact of a REGISTER, as the registrar parsed it */
struct loc_contact {
	struct pl uri;          /* Contact URI, without <>                */
	uint32_t expires;       /* seconds, already clamped; 0 = remove   */
	uint16_t q;             /* 0..1000                                */
	struct pl instance;     /* +sip.instance value or unset           */
	uint32_t reg_id;        /* 0 = none (ignored without instance)    */
};

/* The change set of one REGISTER for one AOR. Every field is copied by
 * location_apply(); none needs to outlive the call. */
struct loc_change {
	struct pl aor;          /* canonical AOR (location_aor())         */
	struct pl callid;       /* Call-ID of the REGISTER                */
	uint32_t cseq;          /* its CSeq number                        */
	bool wildcard;          /* Contact: * (with Expires: 0): remove
				 * every binding; contactc must be 0      */
	const struct loc_contact *contactv;
	size_t contactc;        /* 0 and !wildcard: a query               */
	struct pl path;         /* Path values joined by ",", or unset    */
	struct pl received;     /* source address (see loc_binding)       */
	struct pl user_agent;   /* User-Agent or unset                    */
	struct pl node;         /* this node (see loc_binding), or unset  */
};

struct location_config {
	uint32_t buckets;       /* AOR hash buckets (65536)               */
	uint32_t batch_max;     /* writes per transaction, at most (2048) */
	uint32_t purge_ms;      /* period of the expiry purge (1000)      */
	uint32_t max_bindings;  /* per AOR; 0 = no limit (0)              */
};

struct location_stats {
	uint64_t aors;          /* AORs in memory                         */
	uint64_t bindings;      /* bindings in memory (some may be expired
				 * and not purged yet)                    */
	uint64_t pending;       /* writes handed to the writer, not done  */
	uint64_t commits;       /* transactions committed                 */
	uint64_t ops;           /* writes committed                       */
	uint64_t failed;        /* writes whose transaction failed        */
	uint64_t expired;       /* bindings purged by expiry              */
	uint64_t stale;         /* AORs waiting to be reloaded            */
};

/* err: 0 when the change is committed, else why not (set is NULL);
 * set: the AOR's bindings as this change left them (valid during the
 * call; mem_ref() it to keep it). */
typedef void (loc_done_h)(int err, const struct loc_set *set, void *arg);

/* Fills cfg with the defaults above */
void location_config_default(struct location_config *cfg);

/* Opens the store named by spec ("memory:" or "sqlite:PATH"), loads
 * every binding from it and starts the writer thread and the expiry
 * purge. cfg NULL: defaults. ENOTSUP: unknown backend or a database of
 * a newer schema version. Freed with mem_deref(): pending writes are
 * committed first and their done handlers called (see location_apply). */
int  location_open(struct location **locp, const char *spec,
		   const struct location_config *cfg);

/* RFC 3261 §10.3 step 5: the AOR of a To URI, written to *aorp (a
 * mem-allocated string): "scheme:user@host[:port]" with scheme and host
 * lowercased, user kept as is (case-sensitive), port only if given, no
 * parameters or headers. ENOTSUP: not a sip or sips URI; EINVAL: no
 * host. */
int  location_aor(char **aorp, const struct uri *uri);

/* Applies one REGISTER's change set to its AOR (RFC 3261 §10.3 steps
 * 6-7): for each contact, the binding that matches it (same
 * +sip.instance and reg-id, or an equal URI per RFC 3261 §19.1.4) is
 * added, refreshed, or removed when expires is 0; expired bindings of
 * the AOR go too. Memory is updated at once (lookups see it); the
 * writes go to the writer thread, and doneh(0, set, arg) runs on the
 * loop thread once they are committed (always after this call has
 * returned, never from inside it; done handlers run in the order of
 * the location_apply() calls). A query (no contact, no wildcard) still
 * waits for the writes queued before it, so that what it reports is
 * durable.
 *
 * Returns 0 and doneh will be called exactly once (at the latest when
 * the store is freed), or an error and doneh is never called:
 *   EINVAL     bad arguments (aor, callid or a contact URI missing,
 *              q > 1000, wildcard with contacts)
 *   EPROTO     a binding to change has the request's Call-ID and a
 *              CSeq not lower than the request's: the request is out
 *              of order or replayed (§10.3 step 7); nothing changed
 *   EOVERFLOW  more bindings than max_bindings would result
 *   EBUSY      a commit for this AOR failed and it is being reloaded
 *              from the backend; try again shortly
 *   ENOMEM
 * doneh's err: 0, or the backend's error (EIO, ENOSPC, EBUSY...) when
 * the transaction holding the change failed; the AOR is then reloaded
 * from the backend, and changes to it already in flight also report
 * EIO (they were computed from a state that was never stored).
 * A remote store (location_remote()) returns ENOTCONN when it is not
 * connected, and reports EPROTO and EOVERFLOW in doneh's err (Redis
 * decides); doneh's err ETIMEDOUT or ECONNRESET means no answer came:
 * the change may or may not be stored (never answer 200 then). */
int  location_apply(struct location *loc, const struct loc_change *chg,
		    loc_done_h *doneh, void *arg);

/* The current (not expired) bindings of aor, ordered by q descending,
 * then most recently updated first: a snapshot, mem-allocated in
 * *setp, empty when aor has none. Reads memory only; ENOTSUP for a
 * remote store (use location_query()). */
int  location_lookup(struct loc_set **setp, struct location *loc,
		     const char *aor);

/* The bindings of aor, as location_lookup() gives them, for any store:
 * doneh(0, set, arg) with the set (valid during the call), or doneh(err,
 * NULL, arg), always after this call has returned. A local store
 * answers from memory at the next turn of the loop; a remote one
 * (Redis) once it has answered: then err may be ETIMEDOUT, ECONNRESET
 * (the connection was lost: no answer), ESHUTDOWN (the store was
 * freed). Returns 0 and doneh is called exactly once, or an error and
 * it is never called: EINVAL, ENOMEM, ENOTCONN (a remote store that is
 * not connected now). */
int  location_query(struct location *loc, const char *aor,
		    loc_done_h *doneh, void *arg);
/* true for a remote store (Redis): location_apply's outcomes, such as
 * EPROTO and EOVERFLOW, come in the done handler's err instead of the
 * return value, and reads go through location_query() */
bool location_remote(const struct location *loc);

/* Called on the loop thread around the done handlers of one group
 * commit: bh(false, arg) before the first, bh(true, arg) after the
 * last. A user that answers from its done handlers can send those
 * answers together (the registrar: sendmmsg, see registrar_alloc). */
typedef void (loc_batch_h)(bool end, void *arg);

/* Sets the store's batch hook (NULL: none, the default). One per store:
 * a later call replaces it. It must stay callable as long as the store
 * lives (done handlers run until the store is freed). */
void location_set_batch(struct location *loc, loc_batch_h *bh, void *arg);

/* Counters and sizes, for tests and the benchmark */
void location_stats(const struct location *loc, struct location_stats *st);
/* Seconds each backend transaction took (the writer thread's apply of
 * a group commit, failed ones included; not the queueing before it) */
const struct metrics_hist *location_commit_hist(const struct location *loc);
/* Unix time in milliseconds, the clock of expires_at and updated_at */
uint64_t location_clock(void);
int  location_debug(struct re_printf *pf, const struct location *loc);

/* A set of bindings of one AOR (from location_lookup() or loc_done_h).
 * Immutable; it holds its bindings, which stay valid while it lives. */
const char *loc_set_aor(const struct loc_set *set);
size_t loc_set_count(const struct loc_set *set);
/* i-th binding, in the set's order; NULL past the end */
const struct loc_binding *loc_set_binding(const struct loc_set *set,
					  size_t i);
int  loc_set_debug(struct re_printf *pf, const struct loc_set *set);

/* Seconds left before b expires at time now (unix ms), rounded up;
 * 0 when expired. */
uint32_t loc_binding_expires(const struct loc_binding *b, uint64_t now);
int  loc_binding_debug(struct re_printf *pf, const struct loc_binding *b);

/*
 * Backend interface, for stores other than the built-in ones. A backend
 * sees plain C data only (struct loc_binding, strings valid during the
 * call). open, and load with aor == NULL, run on the loop thread inside
 * location_open(); apply and load of one AOR run on the writer thread;
 * close runs on the loop thread after the writer has stopped. Never two
 * at a time, so a backend needs no locking of its own; it must not use
 * libre's mem_* objects across those threads (use malloc).
 */
enum loc_op_type {
	LOC_OP_UPSERT = 0,      /* insert or replace (aor, contact)       */
	LOC_OP_DELETE,          /* delete (aor, contact); other fields 0  */
};

struct loc_op {
	enum loc_op_type type;
	struct loc_binding b;
};

/* Return non-zero to stop the load with that error */
typedef int (loc_row_h)(const struct loc_binding *b, void *arg);

struct loc_backend {
	const char *name;
	/* arg: the spec after "name:"; *statep is passed to the others */
	int  (*open)(void **statep, const char *arg);
	/* rowh for every stored binding of aor, or of all AORs (NULL) */
	int  (*load)(void *state, const char *aor, loc_row_h *rowh,
		     void *arg);
	/* all of opv in one transaction, in order: all or nothing */
	int  (*apply)(void *state, const struct loc_op *opv, size_t opc);
	/* optional: message of the last failure, for the log */
	const char *(*errmsg)(void *state);
	void (*close)(void *state);
};

/* location_open() with a backend of the caller's (be must outlive the
 * store); arg is passed to be->open. */
int  location_open_backend(struct location **locp,
			   const struct loc_backend *be, const char *arg,
			   const struct location_config *cfg);

/* ---- LOCATION END ---- */


/* ---- REGISTRAR BEGIN ---- (REGISTER processing, server/registrar/registrar.c) */

/*
 * RFC 3261 §10.3 on top of the location store, independent of Lua.
 * Authentication, authorisation and the choice of domains (steps 1-4)
 * are the caller's: it calls registrar_handle() once it has decided to
 * accept the REGISTER. The registrar then parses To, Contact, Expires,
 * Path, applies the change to the store and answers the request itself
 * (stack_req_reply) - the 200 only once the change is committed:
 *
 *   400  malformed To, Contact (URI, q, expires, reg-id), Expires,
 *        Path, "*" misused, more than 64 Contacts; the reason phrase
 *        names the field ("Invalid Contact q", "Invalid Expires", ...)
 *   423  an expiry below min_expires (0 excepted, and an hour or more
 *        is never too brief, §10.3 step 7), with Min-Expires
 *   403  more bindings than the store's max_bindings
 *   500  "Out of Order CSeq": a binding it would change carries the
 *        same Call-ID and a CSeq not lower (§10.3 step 7 says the
 *        request "fails" without naming a code; we answer 500 like an
 *        aborted update, where Kamailio/OpenSIPS answer 200 and change
 *        nothing); 500 also when the commit failed
 *   503  the AOR is being reloaded after a failed commit (Retry-After:
 *        1), or a remote store (Redis) is unreachable (Retry-After: 5)
 *   200  one "Contact: <uri>;expires=N" per current binding (with q when
 *        not 1, +sip.instance and reg-id when stored), a Date header,
 *        and the request's Path when the UA listed "path" in Supported
 *        (RFC 3327 §5.3). No Contact in the request: a query, answered
 *        the same way.
 */
struct registrar;

struct registrar_config {
	uint32_t min_expires;     /* 423 below this, 0 excepted (60)     */
	uint32_t max_expires;     /* longer expiries are clamped (86400) */
	uint32_t default_expires; /* no Expires and no param (3600)      */
};

/* The request has been answered with scode (0 if no answer could be
 * sent; err says why). set: the AOR's bindings after a 200, else NULL;
 * valid during the call. Never called from inside registrar_handle(). */
typedef void (registrar_done_h)(int err, uint16_t scode,
				const struct loc_set *set, void *arg);

void registrar_config_default(struct registrar_config *cfg);

/* A registrar on loc (referenced). cfg NULL: defaults; EINVAL when
 * min_expires > max_expires or default_expires is 0. Sets loc's batch
 * hook (location_set_batch) so that the replies of one group commit
 * leave together over UDP (sendmmsg); the hook holds no state and
 * stays set when the registrar is freed. */
int  registrar_alloc(struct registrar **regp, struct location *loc,
		     const struct registrar_config *cfg);

/* Processes REGISTER req (see above) and answers it. Holds a reference
 * on req (and on reg) until the answer is sent. Returns 0 when the
 * request has been taken: it is answered now or later, and doneh (may
 * be NULL) is called exactly once afterwards. EINVAL (not a REGISTER,
 * NULL argument) or EALREADY (already answered): nothing was sent. */
int  registrar_handle(struct registrar *reg, struct stack_req *req,
		      registrar_done_h *doneh, void *arg);

/* The answers registrar_handle() sent (authentication is before it:
 * its 401/403 are the verifier's, see auth_stats) */
struct registrar_stats {
	uint64_t ok;            /* 2xx: stored (or a query)               */
	uint64_t rejected;      /* 4xx: 400, 403, 423                     */
	uint64_t failed;        /* 5xx (500, 503), or the answer failed   */
};
void registrar_stats(const struct registrar *reg, struct registrar_stats *st);

/* What registrar_handle() makes of a REGISTER's To, Expires, Contact
 * and Path (RFC 3261 §10.3 steps 5-7, RFC 5626, RFC 3327) before the
 * store sees it: 0 when it would go to the store, else the status it
 * would be refused with (400, 423; 500 out of memory) and *reason. Only
 * reads msg: no store, no answer (the fuzzer runs it, test/fuzz). cfg
 * NULL: registrar_config_default(). */
uint16_t registrar_check(const struct registrar_config *cfg,
			 const struct sip_msg *msg, const char **reason);

struct location *registrar_location(const struct registrar *reg);
const struct registrar_config *registrar_config(const struct registrar *reg);
int  registrar_debug(struct re_printf *pf, const struct registrar *reg);

/* ---- REGISTRAR END ---- */


/* ---- USERS BEGIN ---- (the users table, server/registrar/users.c) */

/*
 * The `users` table of the SQLite database that also holds the location
 * store: user name, realm and both HA1s (MD5, SHA-256; never a
 * password), and the `secrets` table (the verifier's nonce secret).
 * The server's handle (auth_users_open) keeps the table in a cache on
 * the loop thread and polls PRAGMA data_version every second on a libre
 * timer, so that writes by other processes (`sipstack user add`) are
 * seen within a second without a disk read per request. The HA1 format
 * is internal: add users with auth_user_add() (or the command line),
 * not with SQL.
 */
struct auth_users;

enum {
	AUTH_USER_MAX     = DIGEST_USER_MAX, /* user names: 1..127 bytes  */
	AUTH_REALM_MAX    = 128,             /* realms: 1..128 bytes      */
	AUTH_PASSWORD_MAX = 1024,            /* passwords: 1..1024 bytes  */
};

#define AUTH_REALM_DEFAULT "sipstack"

typedef int (auth_user_h)(const char *user, const char *realm,
			  int64_t created_at, void *arg);

/* Opens (creates) dbpath in WAL mode with a busy timeout, creates the
 * tables, loads the cache and starts the poll (see above). */
int  auth_users_open(struct auth_users **up, const char *dbpath);
/* Opens dbpath for direct reads and writes only: no cache, no timer,
 * so no libre loop is needed (the `sipstack user` command). errbuf (may
 * be NULL) gets SQLite's message when it fails. */
int  auth_users_open_direct(struct auth_users **up, const char *dbpath,
			    char *errbuf, size_t errsz);
/* Stores both HA1s of user (replacing any previous row); realm NULL is
 * AUTH_REALM_DEFAULT. EINVAL for an empty or over-long
 * name/realm/password or one with control characters, '"' or '\'. */
int  auth_user_add(struct auth_users *up, const char *user,
		   const char *realm, const char *password);
/* ENOENT if there is no such user */
int  auth_user_del(struct auth_users *up, const char *user);
/* Calls h for each row, from the database, by name; a non-zero return
 * from h stops the walk and is returned. */
int  auth_user_list(struct auth_users *up, auth_user_h *h, void *arg);
uint32_t auth_users_count(const struct auth_users *up);  /* cached   */
/* Reloads the cache now if another connection changed the database
 * (what the one-second timer does). */
int  auth_users_refresh(struct auth_users *up);
/* SQLite's message about the last call that failed in SQLite; NULL
 * when the last call did not (then its errno says why) */
const char *auth_users_errmsg(const struct auth_users *up);
int  auth_users_debug(struct re_printf *pf, const struct auth_users *up);

/* ---- USERS END ---- */


/* ---- AUTH BEGIN ---- (the digest verifier, server/registrar/auth.c) */

/*
 * Server-side Digest authentication (RFC 7616, RFC 8760 for SHA-256 in
 * SIP, RFC 3261 §22) against the users table (struct auth_users, above);
 * the hashing and the header parser are the core's (sipcore.h, Digest).
 * Everything runs on the loop thread.
 *
 * A REGISTER hook typically does:
 *
 *   struct auth_result ar;
 *   if (auth_require(a, req, false, &ar))
 *           return true;            // answered: 401, 403, 400 (or 500)
 *   ... ar.user is authenticated ...
 *
 * Outcomes of auth_check(), and what auth_require() answers:
 *   AUTH_OK              credentials verified                  (caller)
 *   AUTH_NO_CREDENTIALS  none for our realm / algorithms, or a nonce
 *                        that is not ours (malformed, bad MAC, another
 *                        realm's): checked before any password, so a
 *                        made-up nonce tells nothing     401/407 (fresh)
 *   AUTH_STALE           correct response to one of our nonces that is
 *                        expired, evicted from the nc table, or issued
 *                        before this process started   401/407 stale=true
 *   AUTH_REPLAY          correct response, nc not above the highest
 *                        seen for that nonce (logged ev=auth_replay)
 *                                                  401/407 stale=true
 *   AUTH_FAILED          wrong password, unknown user (the same result,
 *                        same cost), digest uri != Request-URI, or
 *                        refused unchecked by the guard (banned source,
 *                        slowed user)
 *                        (logged ev=auth_failed user= src= reason=) 403
 *   AUTH_BAD             malformed Digest credentials (ours, or whose
 *                        realm cannot be read), or qop absent (RFC 2069
 *                        style: we always send qop="auth")
 *                        (logged ev=auth_bad)                       400
 * A response that is wrong is always FAILED, never STALE, whatever the
 * state of its nonce (RFC 7616 §3.3). FAILED and BAD count against the
 * source address and the user name in the guard (struct authguard).
 * The log lines of FAILED, BAD and REPLAY are flood-limited (slog_src).
 *
 * Nonces are MACed with a secret kept in the users database (table
 * `secrets`, made once), so they stay ours across a restart: a client
 * whose server restarted gets stale=true and recovers without a prompt.
 *
 * Interop: libre 1.1.0's own client (sip_auth, hence baresip on it)
 * fails with ENOSYS on ANY challenge that has a SHA-256 header, even
 * when an MD5 one follows. Set auth_config.algs = AUTH_ALG_MD5 to serve
 * such clients.
 */
struct auth;
struct authguard;
struct authguard_config;

enum auth_status {
	AUTH_OK = 0,
	AUTH_NO_CREDENTIALS,
	AUTH_STALE,
	AUTH_FAILED,
	AUTH_REPLAY,
	AUTH_BAD,
};

enum {
	AUTH_NONCE_TTL  = 300,     /* s, default nonce lifetime           */
	AUTH_NONCES_MAX = 100000,  /* default size of the nc table        */
};

struct auth_config {
	const char *realm;     /* default "sipstack"; no '"' or '\'         */
	uint32_t nonce_ttl;    /* s, nonce lifetime (AUTH_NONCE_TTL)        */
	uint32_t max_nonces;   /* nonces tracked for nc (AUTH_NONCES_MAX);
				* the oldest is evicted (then stale)       */
	unsigned algs;         /* AUTH_ALG_* offered and accepted; default
				* both, challenged SHA-256 first           */
	const struct authguard_config *guard;  /* limits on guessing;
				* NULL: authguard_config_default()       */
	bool no_guard;         /* no limits at all (tests, labs)           */
};

struct auth_result {
	enum auth_status status;
	enum auth_alg alg;           /* algorithm of the credentials used  */
	char user[AUTH_USER_MAX];    /* username given ("" if none), may be
				      * truncated: for logs; valid on OK   */
	const char *reason;          /* short static string for logs, e.g.
				      * "wrong_password", "unknown_user",
				      * "uri_mismatch", "nonce_expired",
				      * "nc_replay", "qop_missing"         */
};

/* The verifier; takes a reference on users (which may be NULL: every
 * user is then unknown). cfg NULL: auth_config_default(). */
void auth_config_default(struct auth_config *cfg);
int  auth_alloc(struct auth **ap, struct auth_users *users,
		const struct auth_config *cfg);
const char *auth_realm(const struct auth *a);
uint32_t auth_nonces(const struct auth *a);   /* nonces in the nc table */
struct authguard *auth_guard(const struct auth *a);  /* NULL: none  */
const char *auth_status_name(enum auth_status st);   /* "replay"      */

/* Writes the challenge header lines (WWW-Authenticate, or
 * Proxy-Authenticate when proxy), one per algorithm, SHA-256 first, each
 * ending in CRLF, with a fresh nonce, qop="auth" and stale=true if
 * stale. */
int  auth_challenge_encode(struct mbuf *mb, struct auth *a, bool proxy,
			   bool stale);
/* Answers req 401 (or 407 when proxy) with those headers */
int  auth_challenge(struct auth *a, struct stack_req *req, bool proxy,
		    bool stale);
/* Verifies msg's Authorization (or Proxy-Authorization when proxy)
 * headers: the one for our realm with a supported algorithm (SHA-256 if
 * both), Digest only, other realms ignored. Fills res; returns 0 even
 * when the credentials fail, an errno only if it could not check.
 * Advances the nonce-count of the nonce on AUTH_OK. */
int  auth_check(struct auth *a, const struct sip_msg *msg, bool proxy,
		struct auth_result *res);
/* The policy's answer to res (auth_check()'s outcome for msg), logged
 * as in the table above, for a caller that sends it itself (a call
 * answers its INVITE): *scodep 0 for AUTH_OK; else 401 or 407 (proxy)
 * with the challenge's header lines appended to hdrs, 403 or 400, and
 * *reasonp its reason phrase. An errno when the challenge could not be
 * made. */
int  auth_answer(struct auth *a, const struct sip_msg *msg, bool proxy,
		 const struct auth_result *res, uint16_t *scodep,
		 const char **reasonp, struct mbuf *hdrs);
/* The policy: auth_check(), then 0 if authenticated; otherwise it
 * answers req with auth_answer()'s answer and returns EAUTH (or the
 * errno of a failed check or reply, after trying to answer 500). res
 * may be NULL. */
int  auth_require(struct auth *a, struct stack_req *req, bool proxy,
		  struct auth_result *res);
/* What the verifier saw, since it was made */
struct auth_stats {
	uint64_t challenges;    /* challenges written (401/407 answers)   */
	uint64_t ok;            /* credentials accepted                    */
	uint64_t failed;        /* refused (403): wrong password, unknown
				 * user, URI mismatch, banned, slowed      */
	uint64_t stale;         /* right password, old nonce: re-challenged */
	uint64_t replay;        /* nonce-count replayed: re-challenged     */
	uint64_t bad;           /* malformed credentials (400)             */
	uint64_t foreign;       /* nonces not ours: re-challenged          */
};
void auth_stats(const struct auth *a, struct auth_stats *st);
int  auth_debug(struct re_printf *pf, const struct auth *a);

/* ---- AUTH END ---- */


/* ---- AUTHGUARD BEGIN ---- (limits on guessing, server/registrar/authguard.c) */

/*
 * What the verifier saw fail, per source address and per user name,
 * and the bans that follow (the policy is told at the top of
 * server/registrar/authguard.c and for users in docs/lua-api.md). A banned
 * address is dropped at the door: set authguard_admit as the stack's
 * admission gate (stack_set_admit) with the guard as arg.
 */
enum {
	AUTHGUARD_SRC_FAILURES   = 10,     /* failures that ban an address */
	AUTHGUARD_WINDOW         = 600,    /* s, buckets drain per window   */
	AUTHGUARD_BAN_TIME       = 900,    /* s, first ban (then doubled)   */
	AUTHGUARD_USER_FAILURES  = 20,     /* before a user is slowed       */
	AUTHGUARD_USER_DELAY_MAX = 60,     /* s, longest slow-down          */
	AUTHGUARD_MAX_ENTRIES    = 65536,  /* per table                     */
};

struct authguard_config {
	uint32_t src_failures;    /* 0: never ban                          */
	uint32_t window;          /* s                                     */
	uint32_t ban_time;        /* s                                     */
	uint32_t user_failures;   /* 0: never slow a user                  */
	uint32_t user_delay_max;  /* s                                     */
	uint32_t max_entries;
};

struct authguard_stats {
	uint64_t failures;        /* failures reported                     */
	uint64_t bans, unbans;
	uint64_t dropped;         /* requests of banned addresses dropped  */
	uint64_t slowed;          /* attempts refused unchecked (slowed)   */
	uint64_t untracked;       /* new addresses not tracked (all bans)  */
	uint32_t banned;          /* addresses banned now                  */
};

/* remaining: s left; failures: those that led to it; bans: how many
 * times this address was banned (this one included) */
typedef int (authguard_ban_h)(const struct sa *addr, uint32_t remaining,
			      uint32_t failures, uint32_t bans, void *arg);

void authguard_config_default(struct authguard_config *cfg);
int  authguard_alloc(struct authguard **gp,
		     const struct authguard_config *cfg);
bool authguard_banned(struct authguard *g, const struct sa *src);
/* stack_admit_h: false (drop) for a banned address */
bool authguard_admit(const struct sa *src, void *arg);
/* May user be checked now for src? false: slowed, refuse unchecked */
bool authguard_user_allowed(struct authguard *g, const struct sa *src,
			    const struct pl *user);
/* A failure from src for user (user may be NULL or empty); checked:
 * the password was checked (counts for the user too) */
void authguard_failed(struct authguard *g, const struct sa *src,
		      const struct pl *user, bool checked);
void authguard_succeeded(struct authguard *g, const struct sa *src,
			 const struct pl *user);
/* Current bans, soonest end first */
int  authguard_bans(const struct authguard *g, authguard_ban_h *h,
		    void *arg);
int  authguard_unban(struct authguard *g, const struct sa *addr); /* ENOENT */
void authguard_stats(const struct authguard *g, struct authguard_stats *st);
int  authguard_debug(struct re_printf *pf, const struct authguard *g);
/* ---- AUTHGUARD END ---- */


/* ---- REGCLIENT BEGIN ---- (client registration, server/registrar/regclient.c) */

/*
 * One AOR registered at one registrar (RFC 3261 §10.2), kept registered
 * until regclient_unregister() or mem_deref(). Everything runs on the
 * loop thread; every REGISTER leaves from a timer of the loop, so
 * regclient_register() may be called before stack_start() (the first
 * REGISTER goes out once the loop runs) and resulth is never called from
 * inside a regclient_*() call.
 *
 *  - One Call-ID for the life of the registration, CSeq + 1 for each
 *    REGISTER (§10.2.4). The registrar URI is resolved per RFC 3263
 *    (NAPTR, SRV, A) by libre, which fails over to the next target on a
 *    transport error, a timeout (Timer F, 32 s) or a 503.
 *  - 2xx: registered for the granted expiry, which is the expires
 *    parameter of our Contact in the response, else its Expires header,
 *    else what we asked for; refreshed at
 *    granted - max(granted/10, min(32 s, granted/2)): at 90% of a long
 *    expiry, but early enough that a refresh timing out (Timer F)
 *    still ends before the binding does, and never later than half-way.
 *    A 2xx that grants 0 is a failure ("not bound").
 *  - 401/407: answered once per challenge with user and password
 *    (Digest MD5 only: libre's sip_auth). A new challenge for the same
 *    realm right after we answered one (without stale=true), a
 *    challenge for another algorithm (SHA-256), no password, or more
 *    than 3 challenges in one attempt: failure "auth failed", no loop.
 *  - 423: sent again at once asking for its Min-Expires (kept for the
 *    refreshes), at most 3 times in one attempt.
 *  - Any other failure (a final response >= 300, a transport error):
 *    the next attempt comes after retry_min s, doubling with each
 *    failure in a row up to retry_max s; a success resets it.
 *  - Each outcome calls resulth once: a success, a failure (then the
 *    retry is already scheduled), or the end of an unregistration.
 *  - mem_deref() sends nothing: the binding stays at the registrar
 *    until it expires. To remove it, regclient_unregister() first.
 */
struct regclient;

struct regclient_params {
	const char *registrar;  /* Request-URI: sip:HOST[:PORT][;params]
				 * (required; sips: is not routable with
				 * libre 1.1.0)                              */
	const char *aor;        /* To and From; NULL: sip:USER@HOST of the
				 * registrar URI                             */
	const char *user;       /* digest user name, and the user part of a
				 * default Contact; NULL: the AOR's user     */
	const char *password;   /* NULL: a challenge fails ("auth failed")  */
	const char *contact;    /* our Contact URI; NULL: the address of
				 * the stack's listener of the transport the
				 * REGISTER leaves on (stack_local_uri), with
				 * the user as its user part                 */
	uint32_t expires;       /* asked for, s (0: 3600)                   */
	uint32_t retry_min;     /* first retry after a failure, s (0: 30)   */
	uint32_t retry_max;     /* longest retry interval, s (0: 600)       */
};

/* success: a 2xx. expires: the granted expiry, 0 on failure and after an
 * unregistration. scode: the final response's code, 0 when none came.
 * reason: the response's reason phrase (cut to 63 bytes), or one of the
 * short strings "auth failed", "not bound", "timeout", "refused",
 * "no address", "transport not supported", "shutdown", "failed".
 * Valid during the call. The handler may call regclient_*() on rc or
 * mem_deref() it. */
typedef void (regclient_result_h)(bool success, uint32_t expires,
				  uint16_t scode, const char *reason,
				  void *arg);

/* Starts registering (see above). EINVAL: no registrar, a registrar,
 * AOR or contact that is not a SIP URI, or neither AOR nor user;
 * EPROTONOSUPPORT: a sips: registrar. */
int  regclient_register(struct regclient **rcp, struct stack *st,
			const struct regclient_params *p,
			regclient_result_h *resulth, void *arg);
/* Applies new parameters to a running registration, keeping its
 * Call-ID: if any differs, a REGISTER goes out at once (replacing one in
 * flight); a changed contact removes the old one in that REGISTER
 * (Contact: <old>;expires=0). Unchanged parameters: nothing is sent.
 * EINVAL: another registrar or AOR (that is another registration);
 * EALREADY: being unregistered. */
int  regclient_update(struct regclient *rc, const struct regclient_params *p);
/* Stops refreshing and sends REGISTER with Contact: <ours>;expires=0
 * (replacing a REGISTER in flight, whose late arrival the registrar's
 * CSeq check discards); its outcome goes to resulth, with no retry.
 * EALREADY when already called. */
int  regclient_unregister(struct regclient *rc);
bool regclient_registered(const struct regclient *rc);
uint32_t regclient_expires(const struct regclient *rc);  /* granted, s */
uint32_t regclient_failures(const struct regclient *rc); /* in a row  */
const char *regclient_callid(const struct regclient *rc);
int  regclient_debug(struct re_printf *pf, const struct regclient *rc);

/* ---- REGCLIENT END ---- */

#endif
