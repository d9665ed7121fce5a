/**
 * bindings/api_registrar.c  The registrar, location and auth for scripts
 *
 * Owns struct regsvc: the location store, the registrar and the digest
 * authenticator a script configured with sip.registrar.configure{}. It
 * belongs to the runtime, not to one load of the script, so a reload
 * keeps the store open (and its bindings in memory) unless the new
 * script names another database or other settings.
 *
 * Exposes sip.registrar.configure/save, sip.location.lookup,
 * sip.auth.require and the REGISTER routing: a script with an
 * on_register hook decides in Lua; a script without one but with a
 * configured registrar has REGISTER handled entirely in C (auth, then
 * registrar_handle), which is the fast path the benchmark measures.
 * Uses server/location.c, registrar.c and auth.c.
 */
#include <string.h>
#include <re.h>
#include "sipstack.h"
#include "core.h"
#include "runtime.h"


/* What a script asked for, kept in its generation */
struct regconf {
	char *database;          /* SQLite file of bindings and users   */
	bool memory;             /* bindings in memory only (tests)     */
	bool auth;               /* digest auth on REGISTER             */
	char *realm;
	unsigned algs;           /* AUTH_ALG_*                          */
	uint32_t nonce_ttl;
	bool guard;              /* limits on guessing (authguard.c)    */
	struct authguard_config gcfg;
	struct registrar_config rcfg;
};

/* What runs: owned by the runtime */
struct regsvc {
	struct regconf *conf;    /* the configuration it was opened with */
	struct location *loc;
	struct registrar *reg;
	struct auth_users *users;
	struct auth *auth;
	struct stack *gate;      /* the stack whose admission gate is
				  * our guard's, or NULL               */
};


static void regconf_destructor(void *arg)
{
	struct regconf *rc = arg;

	mem_deref(rc->database);
	mem_deref(rc->realm);
}


static bool regconf_equal(const struct regconf *a, const struct regconf *b)
{
	return a && b && a->memory == b->memory && a->auth == b->auth &&
		a->algs == b->algs && a->nonce_ttl == b->nonce_ttl &&
		a->guard == b->guard &&
		!memcmp(&a->gcfg, &b->gcfg, sizeof(a->gcfg)) &&
		!str_cmp(a->database, b->database) &&
		!str_cmp(a->realm, b->realm) &&
		a->rcfg.min_expires == b->rcfg.min_expires &&
		a->rcfg.max_expires == b->rcfg.max_expires &&
		a->rcfg.default_expires == b->rcfg.default_expires;
}


static void regsvc_destructor(void *arg)
{
	struct regsvc *rs = arg;

	if (rs->gate)
		stack_set_admit(rs->gate, NULL, NULL);

	/* the registrar holds the store; freeing the store commits what
	 * is pending and answers those requests */
	mem_deref(rs->reg);
	mem_deref(rs->auth);
	mem_deref(rs->loc);
	mem_deref(rs->users);
	mem_deref(rs->conf);
}


static int regsvc_open(struct regsvc **rsp, struct regconf *rc)
{
	struct regsvc *rs;
	char spec[512];
	int err;

	rs = mem_zalloc(sizeof(*rs), regsvc_destructor);
	if (!rs)
		return ENOMEM;

	rs->conf = mem_ref(rc);

	if (rc->memory)
		str_ncpy(spec, "memory:", sizeof(spec));
	else
		(void)re_snprintf(spec, sizeof(spec), "sqlite:%s",
				  rc->database);

	err = location_open(&rs->loc, spec, NULL);
	if (err) {
		slog(LOG_ERROR, "registrar", "store_failed", NULL,
		     "store=%H err=%m", log_q, spec, err);
		goto out;
	}

	err = registrar_alloc(&rs->reg, rs->loc, &rc->rcfg);
	if (err)
		goto out;

	if (rc->auth) {
		struct auth_config acfg;

		if (!rc->database) {
			slog(LOG_ERROR, "registrar", "no_users_db", NULL,
			     "why=%H", log_q, "auth needs a database");
			err = EINVAL;
			goto out;
		}

		err = auth_users_open(&rs->users, rc->database);
		if (err) {
			slog(LOG_ERROR, "registrar", "users_failed", NULL,
			     "db=%H err=%m", log_q, rc->database, err);
			goto out;
		}

		auth_config_default(&acfg);
		acfg.realm = rc->realm;
		acfg.algs = rc->algs;
		acfg.nonce_ttl = rc->nonce_ttl;
		acfg.guard = &rc->gcfg;
		acfg.no_guard = !rc->guard;
		err = auth_alloc(&rs->auth, rs->users, &acfg);
		if (err)
			goto out;
	}

	slog(LOG_INFO, "registrar", "open", NULL,
	     "store=%H auth=%s realm=%H users=%u",
	     log_q, spec, rc->auth ? "on" : "off", log_q,
	     rc->realm ? rc->realm : "", auth_users_count(rs->users));

 out:
	if (err)
		mem_deref(rs);
	else
		*rsp = rs;

	return err;
}


/* ------------------------------------------------------------------ *
 * REGISTER routing
 * ------------------------------------------------------------------ */

static void c_done(int err, uint16_t scode, const struct loc_set *set,
		   void *arg)
{
	(void)set;
	(void)arg;

	if (err)
		slog(LOG_WARN, "registrar", "failed", NULL, "code=%u err=%m",
		     scode, err);
}


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


/* The whole REGISTER in C: digest auth, then the registrar */
static bool register_c(struct regsvc *rs, struct stack_req *req)
{
	struct auth_result ar;

	if (rs->auth && (auth_require(rs->auth, req, false, &ar) ||
			 !authorized(req, &ar)))
		return true;   /* answered: 401, 403 or 400 */

	if (registrar_handle(rs->reg, req, c_done, NULL))
		(void)stack_req_reply(req, 500, "Server Internal Error",
				      NULL, NULL, NULL, 0);

	return true;
}


static bool register_hook(struct stack *st, struct stack_req *req,
			  void *arg)
{
	struct luart *rt = arg;
	struct regsvc *rs = luart_regsvc(rt);
	(void)st;

	if (luart_has_hook(rt, LH_REGISTER))
		return 0 == luart_request(rt, LH_REGISTER, req);

	if (rs)
		return register_c(rs, req);

	return false;
}


/* Called when a script generation becomes the current one */
int lua_registrar_activate(struct luart *rt, struct script *sc)
{
	struct regsvc *rs = luart_regsvc(rt);
	struct regconf *rc = sc->regconf;
	int err;

	if (!rc) {
		if (rs)
			slog(LOG_INFO, "registrar", "closed", NULL, NULL);
		luart_set_regsvc(rt, NULL);
	}
	else if (!rs || !regconf_equal(rs->conf, rc)) {
		/* close the old store first: the same file may be reopened */
		luart_set_regsvc(rt, NULL);
		err = regsvc_open(&rs, rc);
		if (err)
			return err;
		luart_set_regsvc(rt, rs);
	}

	/* a banned address is dropped at the door */
	rs = luart_regsvc(rt);
	if (rs && auth_guard(rs->auth) && !rs->gate) {
		rs->gate = luart_stack(rt);
		stack_set_admit(rs->gate, authguard_admit,
				auth_guard(rs->auth));
	}

	stack_set_hook(luart_stack(rt), STACK_HOOK_REGISTER,
		       luart_regsvc(rt) || sc->hooks[LH_REGISTER] != LUA_NOREF ?
		       register_hook : NULL, rt);

	return 0;
}


void lua_registrar_free(void *p)
{
	mem_deref(p);
}


/* ------------------------------------------------------------------ *
 * sip.registrar.configure{...}
 * ------------------------------------------------------------------ */

static uint32_t opt_uint(lua_State *L, const char *k, uint32_t dflt,
			 uint32_t min, uint32_t max)
{
	lua_Number n;
	uint32_t v;

	lua_getfield(L, 1, k);
	if (lua_isnil(L, -1)) {
		lua_pop(L, 1);
		return dflt;
	}
	if (lua_type(L, -1) != LUA_TNUMBER)
		luaL_error(L, "registrar.configure: '%s' must be a number", k);
	n = lua_tonumber(L, -1);
	v = (uint32_t)n;
	if ((lua_Number)v != n || v < min || v > max)
		luaL_error(L, "registrar.configure: '%s' must be an integer "
			   "in %d..%d", k, (int)min, (int)max);
	lua_pop(L, 1);

	return v;
}


static unsigned opt_algs(lua_State *L)
{
	unsigned algs = 0;
	int i, n;

	lua_getfield(L, 1, "algorithms");
	if (lua_isnil(L, -1)) {
		lua_pop(L, 1);
		return AUTH_ALG_MD5 | AUTH_ALG_SHA256;
	}
	if (!lua_istable(L, -1))
		luaL_error(L, "registrar.configure: 'algorithms' must be a "
			   "list such as {\"SHA-256\", \"MD5\"}");
	n = (int)lua_objlen(L, -1);
	for (i = 1; i <= n; i++) {
		const char *a;

		lua_rawgeti(L, -1, i);
		a = lua_tostring(L, -1);
		if (a && !str_casecmp(a, "MD5"))
			algs |= AUTH_ALG_MD5;
		else if (a && !str_casecmp(a, "SHA-256"))
			algs |= AUTH_ALG_SHA256;
		else
			luaL_error(L, "registrar.configure: unknown algorithm"
				   " '%s' (MD5 or SHA-256)", a ? a : "?");
		lua_pop(L, 1);
	}
	lua_pop(L, 1);

	if (!algs)
		luaL_error(L, "registrar.configure: 'algorithms' is empty");

	return algs;
}


/* guard = { ... } | false (see docs/lua-api.md, "Guessing limits") */
static void opt_guard(lua_State *L, struct regconf *rc)
{
	static const struct {
		const char *key;
		size_t off;
		uint32_t min, max;
	} keys[] = {
		{"source_failures", offsetof(struct authguard_config,
					     src_failures), 0, 100000},
		{"window", offsetof(struct authguard_config, window),
		 1, 86400},
		{"ban_time", offsetof(struct authguard_config, ban_time),
		 1, 30 * 86400},
		{"user_failures", offsetof(struct authguard_config,
					   user_failures), 0, 100000},
		{"user_delay_max", offsetof(struct authguard_config,
					    user_delay_max), 1, 3600},
		{"max_entries", offsetof(struct authguard_config,
					 max_entries), 16, 10000000},
	};
	size_t i;

	authguard_config_default(&rc->gcfg);
	rc->guard = true;

	lua_getfield(L, 1, "guard");
	if (lua_isnil(L, -1)) {
		lua_pop(L, 1);
		return;
	}
	if (lua_type(L, -1) == LUA_TBOOLEAN) {
		rc->guard = lua_toboolean(L, -1);
		lua_pop(L, 1);
		return;
	}
	if (!lua_istable(L, -1))
		luaL_error(L, "registrar.configure: 'guard' must be a table "
			   "or false");

	lua_pushnil(L);
	while (lua_next(L, -2)) {
		const char *k = lua_type(L, -2) == LUA_TSTRING ?
			lua_tostring(L, -2) : NULL;
		lua_Number n = lua_tonumber(L, -1);
		uint32_t v = (uint32_t)n;

		for (i = 0; k && i < ARRAY_SIZE(keys); i++) {
			if (!strcmp(k, keys[i].key))
				break;
		}
		if (!k || i == ARRAY_SIZE(keys))
			luaL_error(L, "registrar.configure: unknown key "
				   "'guard.%s'", k ? k : "?");
		if (lua_type(L, -1) != LUA_TNUMBER || (lua_Number)v != n ||
		    v < keys[i].min || v > keys[i].max)
			luaL_error(L, "registrar.configure: 'guard.%s' must "
				   "be an integer in %d..%d", k,
				   (int)keys[i].min, (int)keys[i].max);

		*(uint32_t *)(void *)((char *)&rc->gcfg + keys[i].off) = v;
		lua_pop(L, 1);
	}
	lua_pop(L, 1);
}


static const char *opt_str(lua_State *L, const char *k)
{
	const char *s;

	lua_getfield(L, 1, k);
	if (lua_isnil(L, -1)) {
		lua_pop(L, 1);
		return NULL;
	}
	s = lua_tostring(L, -1);
	if (lua_type(L, -1) != LUA_TSTRING || !*s || strpbrk(s, "\"\\\r\n"))
		luaL_error(L, "registrar.configure: '%s' must be a "
			   "non-empty string without quotes", k);
	lua_pop(L, 1);

	return s;   /* the table keeps it alive */
}


static int l_configure(lua_State *L)
{
	static const char *known[] = {
		"database", "store", "auth", "realm", "algorithms",
		"nonce_ttl", "min_expires", "max_expires",
		"default_expires", "guard", NULL
	};
	struct script *sc = lua_script(L);
	struct regconf *rc;
	const char *db, *store, *realm;
	int err = 0;

	if (!sc->loading)
		return luaL_error(L, "registrar.configure: only allowed while"
				  " the script loads");
	luaL_checktype(L, 1, LUA_TTABLE);

	lua_pushnil(L);
	while (lua_next(L, 1)) {
		const char *k = lua_type(L, -2) == LUA_TSTRING ?
			lua_tostring(L, -2) : NULL;
		const char **p;

		for (p = known; k && *p && strcmp(*p, k); p++)
			;
		if (!k || !*p)
			return luaL_error(L, "registrar.configure: unknown "
					  "key '%s'", k ? k : "?");
		lua_pop(L, 1);
	}

	rc = mem_zalloc(sizeof(*rc), regconf_destructor);
	if (!rc)
		return luaL_error(L, "out of memory");

	db = opt_str(L, "database");
	store = opt_str(L, "store");
	realm = opt_str(L, "realm");

	if (store && strcmp(store, "sqlite") && strcmp(store, "memory")) {
		mem_deref(rc);
		return luaL_error(L, "registrar.configure: 'store' must be "
				  "\"sqlite\" or \"memory\"");
	}
	rc->memory = store && !strcmp(store, "memory");

	lua_getfield(L, 1, "auth");
	rc->auth = lua_isnil(L, -1) ? true : lua_toboolean(L, -1);
	lua_pop(L, 1);

	if (!db && (!rc->memory || rc->auth)) {
		mem_deref(rc);
		return luaL_error(L, "registrar.configure: 'database' is "
				  "needed (for the bindings, or the users "
				  "when auth is on)");
	}

	if (db)
		err |= str_dup(&rc->database, db);
	err |= str_dup(&rc->realm, realm ? realm : "sipstack");
	if (err) {
		mem_deref(rc);
		return luaL_error(L, "out of memory");
	}

	rc->algs = opt_algs(L);
	opt_guard(L, rc);
	rc->nonce_ttl = opt_uint(L, "nonce_ttl", AUTH_NONCE_TTL, 10, 86400);
	registrar_config_default(&rc->rcfg);
	rc->rcfg.min_expires = opt_uint(L, "min_expires",
					rc->rcfg.min_expires, 0, 86400);
	rc->rcfg.max_expires = opt_uint(L, "max_expires",
					rc->rcfg.max_expires, 1,
					0x7fffffff);
	rc->rcfg.default_expires = opt_uint(L, "default_expires",
					    rc->rcfg.default_expires, 1,
					    0x7fffffff);
	if (rc->rcfg.min_expires > rc->rcfg.max_expires) {
		mem_deref(rc);
		return luaL_error(L, "registrar.configure: min_expires is "
				  "above max_expires");
	}

	mem_deref(sc->regconf);
	sc->regconf = rc;

	return 0;
}


/* ------------------------------------------------------------------ *
 * sip.registrar.save(req), sip.auth.require(req)
 * ------------------------------------------------------------------ */

static void save_done(int err, uint16_t scode, const struct loc_set *set,
		      void *arg)
{
	struct task *t = taskop_finish(arg);

	if (!t)
		return;

	if (scode) {
		lua_pushinteger(t->co, scode);
		lua_pushinteger(t->co, set ? (lua_Integer)loc_set_count(set) :
				0);
	}
	else {
		lua_pushnil(t->co);
		lua_pushstring(t->co, err ? "failed" : "not answered");
	}

	task_resume(t, 2);
}


static struct regsvc *need_regsvc(lua_State *L, const char *fn)
{
	struct script *sc = lua_script(L);
	struct regsvc *rs = sc->rt ? luart_regsvc(sc->rt) : NULL;

	if (!rs)
		luaL_error(L, "%s: no registrar (call sip.registrar.configure"
			   "{...} at load time)", fn);

	return rs;
}


/* sip.auth.require(req) -> user | nil, reason (the request is answered
 * with a challenge, 403 or 400 then) */
static int l_auth_require(lua_State *L)
{
	struct stack_req *req = lua_check_request(L, 1);
	struct regsvc *rs = need_regsvc(L, "auth.require");
	struct auth_result ar;

	if (!rs->auth)
		return luaL_error(L, "auth.require: auth is off in "
				  "sip.registrar.configure");

	if (auth_require(rs->auth, req, false, &ar)) {
		lua_pushnil(L);
		lua_pushstring(L, auth_status_name(ar.status));
		return 2;
	}

	lua_pushstring(L, ar.user);

	return 1;
}


static int push_ban(const struct sa *addr, uint32_t remaining,
		    uint32_t failures, uint32_t bans, void *arg)
{
	lua_State *L = arg;
	char ip[64];

	(void)re_snprintf(ip, sizeof(ip), "%j", addr);
	lua_createtable(L, 0, 4);
	lua_pushstring(L, ip);
	lua_setfield(L, -2, "address");
	lua_pushinteger(L, remaining);
	lua_setfield(L, -2, "remaining");
	lua_pushinteger(L, failures);
	lua_setfield(L, -2, "failures");
	lua_pushinteger(L, bans);
	lua_setfield(L, -2, "bans");
	lua_rawseti(L, -2, (int)lua_objlen(L, -2) + 1);

	return 0;
}


static struct authguard *need_guard(lua_State *L, const char *fn)
{
	struct regsvc *rs = need_regsvc(L, fn);

	return auth_guard(rs->auth);
}


/* sip.auth.banned() -> list of { address, remaining, failures, bans } */
static int l_auth_banned(lua_State *L)
{
	struct authguard *g = need_guard(L, "auth.banned");

	lua_newtable(L);
	if (g)
		(void)authguard_bans(g, push_ban, L);

	return 1;
}


/* sip.auth.unban(address) -> true | nil, "not banned" */
static int l_auth_unban(lua_State *L)
{
	const char *s = luaL_checkstring(L, 1);
	struct authguard *g = need_guard(L, "auth.unban");
	struct sa addr;

	if (sa_set_str(&addr, s, 0))
		return luaL_argerror(L, 1, "IP address expected");

	if (!g || authguard_unban(g, &addr)) {
		lua_pushnil(L);
		lua_pushstring(L, "not banned");
		return 2;
	}

	lua_pushboolean(L, 1);

	return 1;
}


/* sip.registrar.save(req) -> code, bindings | nil, err. With auth on,
 * the request is authenticated first (nil, "unauthorized" when it was
 * answered with a challenge or 403). */
static int l_save(lua_State *L)
{
	struct stack_req *req = lua_check_request(L, 1);
	struct task *t = lua_need_task(L, "registrar.save");
	struct regsvc *rs = need_regsvc(L, "registrar.save");
	struct auth_result ar;
	struct taskop *op;
	int err;

	if (pl_strcmp(&stack_req_msg(req)->met, "REGISTER"))
		return luaL_argerror(L, 1, "a REGISTER request expected");

	if (stack_req_answered(req)) {
		lua_pushnil(L);
		lua_pushstring(L, "already answered");
		return 2;
	}

	if (rs->auth && (auth_require(rs->auth, req, false, &ar) ||
			 !authorized(req, &ar))) {
		lua_pushnil(L);
		lua_pushstring(L, "unauthorized");
		return 2;
	}

	op = taskop_new(t);
	if (!op)
		return luaL_error(L, "out of memory");

	err = registrar_handle(rs->reg, req, save_done, op);
	if (err) {
		mem_deref(op);
		lua_pushnil(L);
		lua_pushstring(L, err == EALREADY ? "already answered" :
			       "failed");
		return 2;
	}

	taskop_attach(op);

	return lua_yield(L, 0);
}


/* sip.location.lookup(aor) -> list of bindings */
static int l_lookup(lua_State *L)
{
	const char *s = luaL_checkstring(L, 1);
	struct regsvc *rs = need_regsvc(L, "location.lookup");
	struct loc_set *set = NULL;
	struct uri uri;
	struct pl pl;
	char *aor = NULL;
	uint64_t now;
	size_t i;
	int err;

	pl_set_str(&pl, s);
	if (uri_decode(&uri, &pl) || location_aor(&aor, &uri))
		return luaL_argerror(L, 1, "SIP URI expected");

	err = location_lookup(&set, rs->loc, aor);
	mem_deref(aor);

	lua_newtable(L);
	if (err)
		return 1;

	now = location_clock();
	for (i = 0; i < loc_set_count(set); i++) {
		const struct loc_binding *b = loc_set_binding(set, i);

		lua_createtable(L, 0, 8);
		lua_pushstring(L, b->contact);
		lua_setfield(L, -2, "uri");
		lua_pushnumber(L, b->q / 1000.0);
		lua_setfield(L, -2, "q");
		lua_pushinteger(L, loc_binding_expires(b, now));
		lua_setfield(L, -2, "expires");
#define SETS(f) if (b->f) { lua_pushstring(L, b->f); lua_setfield(L, -2, #f); }
		SETS(instance);
		SETS(path);
		SETS(received);
		SETS(user_agent);
		SETS(callid);
#undef SETS
		if (b->reg_id) {
			lua_pushinteger(L, b->reg_id);
			lua_setfield(L, -2, "reg_id");
		}
		lua_rawseti(L, -2, (int)i + 1);
	}
	mem_deref(set);

	return 1;
}


/* adds the registrar, location and auth tables to the sip table at the
 * top of the stack */
void lua_registrar_open(lua_State *L)
{
	static const luaL_Reg registrar_funcs[] = {
		{"configure", l_configure},
		{"save",      l_save},
		{NULL, NULL}
	};
	static const luaL_Reg location_funcs[] = {
		{"lookup", l_lookup},
		{NULL, NULL}
	};
	static const luaL_Reg auth_funcs[] = {
		{"require", l_auth_require},
		{"banned",  l_auth_banned},
		{"unban",   l_auth_unban},
		{NULL, NULL}
	};

	luaL_newlib(L, registrar_funcs);
	lua_setfield(L, -2, "registrar");
	luaL_newlib(L, location_funcs);
	lua_setfield(L, -2, "location");
	luaL_newlib(L, auth_funcs);
	lua_setfield(L, -2, "auth");
}
