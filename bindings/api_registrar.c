/**
 * bindings/api_registrar.c  The registrar, location and auth for scripts
 *
 * Parses sip.registrar.configure{} into a struct regsvc_config, kept by
 * the script generation, and keeps the registrar service it opens
 * (server/registrar/regsvc.c) in the runtime, not in one load of the script: a
 * reload keeps the store open (and its bindings in memory) unless the
 * new script names another database or other settings.
 *
 * Exposes sip.registrar.configure/save, sip.location.lookup,
 * sip.auth.require/banned/unban and the REGISTER routing: a script with
 * an on_register hook decides in Lua; a script without one but with a
 * configured registrar has REGISTER handled entirely in C by the
 * service (regsvc_register), the fast path the benchmark measures.
 * sip.registrar.save is an op of the runtime's yield shape (runtime.h).
 * Gives the verifier to api_call.c (call:authenticate). Uses server/registrar/regsvc.c, and location.c and authguard.c for what it
 * hands back.
 */
#include <string.h>
#include <re.h>
#include "sipstack.h"
#include "regsvc.h"
#include "runtime.h"


/* What a script asked for, kept in its generation (RT_SLOT_REGISTRAR) */
struct regconf {
	struct regsvc_config cfg;   /* its strings point to ours below  */
	char *database;
	char *realm;
	char *remote;
};


static void regconf_destructor(void *arg)
{
	struct regconf *rc = arg;

	mem_deref(rc->database);
	mem_deref(rc->realm);
	mem_deref(rc->remote);
}


/* ------------------------------------------------------------------ *
 * REGISTER routing
 * ------------------------------------------------------------------ */

static bool register_hook(struct stack *st, struct stack_req *req,
			  void *arg)
{
	struct luart *rt = arg;
	struct regsvc *rs = rt_slot(rt, RT_SLOT_REGISTRAR);
	(void)st;

	if (rt_script_has_hook(rt_current(rt), RT_HOOK_REGISTER))
		return 0 == rt_request(rt, RT_HOOK_REGISTER, req);

	if (rs) {
		regsvc_register(rs, req);
		return true;
	}

	return false;
}


/* A script generation is about to become the current one: open what
 * it configured, unless the service open now has the same config */
int api_registrar_activate(struct luart *rt, struct script *sc)
{
	struct regsvc *rs = rt_slot(rt, RT_SLOT_REGISTRAR);
	struct regconf *rc = rt_script_slot(sc, RT_SLOT_REGISTRAR);
	int err;

	if (!rc) {
		if (rs)
			slog(LOG_INFO, "registrar", "closed", NULL, NULL);
		rt_set_slot(rt, RT_SLOT_REGISTRAR, NULL);
	}
	else if (!rs || !regsvc_config_equal(regsvc_config(rs), &rc->cfg)) {
		/* close the old store first: the same file may be reopened */
		rt_set_slot(rt, RT_SLOT_REGISTRAR, NULL);
		err = regsvc_open(&rs, rt_runtime_stack(rt), &rc->cfg);
		if (err)
			return err;
		rt_set_slot(rt, RT_SLOT_REGISTRAR, rs);
	}

	/* REGISTER to the script's hook, else to the service in C */
	if (rt_slot(rt, RT_SLOT_REGISTRAR) ||
	    rt_script_has_hook(sc, RT_HOOK_REGISTER)) {
		struct stack_handler *hd = rt_slot(rt, RT_SLOT_REGISTER_ROUTE);

		if (!hd) {
			err = stack_handler_add(&hd, rt_runtime_stack(rt),
						"REGISTER", "REGISTER",
						STACK_OUT_OF_DIALOG,
						register_hook, rt);
			if (err)
				return err;
			rt_set_slot(rt, RT_SLOT_REGISTER_ROUTE, hd);
		}
	}
	else {
		rt_set_slot(rt, RT_SLOT_REGISTER_ROUTE, NULL);
	}

	return 0;
}


/* The runtime goes: no more REGISTER routing (the service itself is
 * released with the runtime's slots, once no task waits on it) */
void api_registrar_close(struct luart *rt)
{
	rt_set_slot(rt, RT_SLOT_REGISTER_ROUTE, NULL);
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
static void opt_guard(lua_State *L, struct regsvc_config *cfg)
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

	authguard_config_default(&cfg->gcfg);
	cfg->guard = true;

	lua_getfield(L, 1, "guard");
	if (lua_isnil(L, -1)) {
		lua_pop(L, 1);
		return;
	}
	if (lua_type(L, -1) == LUA_TBOOLEAN) {
		cfg->guard = lua_toboolean(L, -1);
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

		*(uint32_t *)(void *)((char *)&cfg->gcfg + keys[i].off) = v;
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
	struct regsvc_config c, *cfg = &c;
	struct regconf *rc;
	const char *db, *store, *realm;
	bool remote;
	int err = 0;

	rt_need_loading(L, "registrar.configure");
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

	db = opt_str(L, "database");
	store = opt_str(L, "store");
	realm = opt_str(L, "realm");

	remote = store && !strncmp(store, "redis:", 6);
	if (store && !remote && strcmp(store, "sqlite") &&
	    strcmp(store, "memory"))
		return luaL_error(L, "registrar.configure: 'store' must be "
				  "\"sqlite\", \"memory\" or "
				  "\"redis://IP[:PORT][/DB]\"");

	/* until it is complete, the config holds nothing that an error
	 * raised on the way would leak */
	regsvc_config_default(cfg);
	cfg->memory = store && !strcmp(store, "memory");

	lua_getfield(L, 1, "auth");
	cfg->auth = lua_isnil(L, -1) ? true : lua_toboolean(L, -1);
	lua_pop(L, 1);

	if (!db && (!(cfg->memory || remote) || cfg->auth))
		return luaL_error(L, "registrar.configure: 'database' is "
				  "needed (for the bindings, or the users "
				  "when auth is on)");

	cfg->algs = opt_algs(L);
	opt_guard(L, cfg);
	cfg->nonce_ttl = opt_uint(L, "nonce_ttl", AUTH_NONCE_TTL, 10, 86400);
	cfg->rcfg.min_expires = opt_uint(L, "min_expires",
					 cfg->rcfg.min_expires, 0, 86400);
	cfg->rcfg.max_expires = opt_uint(L, "max_expires",
					 cfg->rcfg.max_expires, 1,
					 0x7fffffff);
	cfg->rcfg.default_expires = opt_uint(L, "default_expires",
					     cfg->rcfg.default_expires, 1,
					     0x7fffffff);
	if (cfg->rcfg.min_expires > cfg->rcfg.max_expires)
		return luaL_error(L, "registrar.configure: min_expires is "
				  "above max_expires");

	/* nothing raises from here: own it */
	rc = mem_zalloc(sizeof(*rc), regconf_destructor);
	if (!rc)
		return luaL_error(L, "out of memory");

	rc->cfg = *cfg;
	if (db)
		err |= str_dup(&rc->database, db);
	err |= str_dup(&rc->realm, realm ? realm : "sipstack");
	if (remote)
		err |= str_dup(&rc->remote, store);
	if (err) {
		mem_deref(rc);
		return luaL_error(L, "out of memory");
	}
	rc->cfg.database = rc->database;
	rc->cfg.realm = rc->realm;
	rc->cfg.remote = rc->remote;

	rt_script_set_slot(rt_script(L), RT_SLOT_REGISTRAR, rc);

	return 0;
}


/* ------------------------------------------------------------------ *
 * sip.registrar.save(req), sip.auth.require(req)
 * ------------------------------------------------------------------ */

static struct regsvc *need_regsvc(lua_State *L, const char *fn)
{
	struct regsvc *rs = rt_slot(rt_runtime(L), RT_SLOT_REGISTRAR);

	if (!rs)
		luaL_error(L, "%s: no registrar (call sip.registrar.configure"
			   "{...} at load time)", fn);

	return rs;
}


struct auth *api_registrar_auth(lua_State *L, const char *fn)
{
	struct auth *auth = regsvc_auth(need_regsvc(L, fn));

	if (!auth)
		luaL_error(L, "%s: auth is off in sip.registrar.configure",
			   fn);

	return auth;
}


/* sip.auth.require(req) -> user | nil, reason (the request is answered
 * with a challenge, 403 or 400 then) */
static int l_auth_require(lua_State *L)
{
	struct stack_req *req = api_request_check(L, 1);
	struct auth *auth = api_registrar_auth(L, "auth.require");
	struct auth_result ar;
	bool proxy = false;

	/* {proxy = true}: Proxy-Authorization, 407 (a proxy's callers) */
	if (!lua_isnoneornil(L, 2)) {
		luaL_checktype(L, 2, LUA_TTABLE);
		lua_getfield(L, 2, "proxy");
		proxy = lua_toboolean(L, -1);
		lua_pop(L, 1);
	}

	if (auth_require(auth, req, proxy, &ar)) {
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
	return regsvc_guard(need_regsvc(L, fn));
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


/* sip.registrar.save(req): an op whose source, the registrar's answer,
 * always calls back once (from the loop, never from inside) */
struct saved {
	int err;
	uint16_t scode;
	const struct loc_set *set;
};


/* code, bindings | nil, err */
static int push_saved(lua_State *co, void *arg)
{
	const struct saved *r = arg;

	if (!r->scode) {
		lua_pushnil(co);
		lua_pushstring(co, r->err ? rt_errstr(r->err) :
			       "not answered");
		return 2;
	}

	lua_pushinteger(co, r->scode);
	lua_pushinteger(co, r->set ? (lua_Integer)loc_set_count(r->set) : 0);

	return 2;
}


static void save_done(int err, uint16_t scode, const struct loc_set *set,
		      void *arg)
{
	struct saved r = {err, scode, set};

	rt_op_resume(arg, push_saved, &r);
}


/* sip.registrar.save(req) -> code, bindings | nil, err. With auth on,
 * the request is authenticated first (nil, "unauthorized" when it was
 * answered with a challenge or 403). */
static int l_save(lua_State *L)
{
	struct stack_req *req = api_request_check(L, 1);
	struct regsvc *rs;
	struct rt_op *op;
	int err;

	rt_need_task(L, "registrar.save");
	rs = need_regsvc(L, "registrar.save");

	if (pl_strcmp(&stack_req_msg(req)->met, "REGISTER"))
		return luaL_argerror(L, 1, "a REGISTER request expected");

	op = rt_op_start(L, "registrar.save");
	err = regsvc_save(rs, req, save_done, rt_op_arg(op));
	if (err)
		return rt_op_abort(L, op, err);

	return rt_op_yield(L, op);
}


/* The list of binding tables of set on L */
static void push_set(lua_State *L, const struct loc_set *set)
{
	uint64_t now = location_clock();
	size_t i;

	lua_newtable(L);
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
		SETS(node);
#undef SETS
		if (b->reg_id) {
			lua_pushinteger(L, b->reg_id);
			lua_setfield(L, -2, "reg_id");
		}
		lua_rawseti(L, -2, (int)i + 1);
	}
}


/* sip.location.lookup's op on a remote store: the list | nil, err */
struct looked {
	int err;
	const struct loc_set *set;
};


/* Errors of a remote store, as the strings of docs/lua-api.md */
static const char *store_errstr(int err)
{
	switch (err) {

	case ENOTCONN:   return "unavailable";   /* Redis is down       */
	case ECONNRESET: return "unavailable";   /* lost while asking   */
	default:         return rt_errstr(err);  /* "timeout", ...      */
	}
}


static int push_looked(lua_State *co, void *arg)
{
	const struct looked *r = arg;

	if (r->err) {
		lua_pushnil(co);
		lua_pushstring(co, store_errstr(r->err));
		return 2;
	}

	push_set(co, r->set);

	return 1;
}


static void lookup_done(int err, const struct loc_set *set, void *arg)
{
	struct looked r = {err, set};

	rt_op_resume(arg, push_looked, &r);
}


/* sip.location.lookup(aor) -> list of bindings | nil, err. A local
 * store answers at once from memory; a remote one (Redis) yields. */
static int l_lookup(lua_State *L)
{
	const char *aor = luaL_checkstring(L, 1);
	struct regsvc *rs = need_regsvc(L, "location.lookup");
	struct loc_set *set = NULL;
	struct rt_op *op;
	int err;

	if (regsvc_remote(rs)) {
		char *canon = NULL;
		struct uri u;
		struct pl pl;

		/* the checks of regsvc_lookup, before anything yields */
		pl_set_str(&pl, aor);
		if (uri_decode(&u, &pl) || location_aor(&canon, &u))
			return luaL_argerror(L, 1, "SIP URI expected");
		mem_deref(canon);
		rt_need_task(L, "location.lookup");

		op = rt_op_start(L, "location.lookup");
		err = regsvc_query(rs, aor, lookup_done, rt_op_arg(op));
		if (err == ENOTCONN) {
			(void)rt_op_abort(L, op, err);
			lua_pop(L, 2);
			lua_pushnil(L);
			lua_pushstring(L, store_errstr(err));
			return 2;
		}
		if (err)
			return rt_op_abort(L, op, err);

		return rt_op_yield(L, op);
	}

	err = regsvc_lookup(&set, rs, aor);
	if (err == EINVAL)
		return luaL_argerror(L, 1, "SIP URI expected");

	if (err) {
		lua_newtable(L);
		return 1;
	}

	push_set(L, set);
	mem_deref(set);

	return 1;
}


/* adds the registrar, location and auth tables to the sip table at the
 * top of the stack */
void api_registrar_inject(lua_State *L)
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
