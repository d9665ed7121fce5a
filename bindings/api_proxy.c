/**
 * bindings/api_proxy.c  Proxying for scripts: sip.proxy, req:proxy,
 * req:relay
 *
 * Exposes sip.proxy.configure{} (load time: the script is a proxy; the
 * proxy service then forwards in-dialog requests, ACKs of 2xx and
 * stray responses by itself), and two methods of request objects:
 * req:proxy{targets=, mode=, ...} and req:relay{...}, which forward the
 * request and yield until the attempt ends (docs/lua-api.md, Proxy).
 * Owns the generation's proxy settings (slot RT_SLOT_PROXY) and the
 * userdata "sipstack.ptrans": a reference on the request's struct
 * ptrans, found again by the request's userdata (a weak-keyed table),
 * so that a second req:proxy is a retry of the same transaction; its
 * __gc lets the transaction go (ptrans_detach). Uses server/proxy/
 * (proxy.h) and the runtime's one yield shape (runtime.h).
 */
#include <string.h>
#include <re.h>
#include "sipstack.h"
#include "runtime.h"


#define PTRANS_MT "sipstack.ptrans"

static const char KEY_PTRANS = 'p';   /* registry: req ud -> ptrans ud */
static const char KEY_RKEYS  = 'k';   /* registry: the result's keys   */

/* The field names of req:proxy's result and its branches, interned once
 * (api_proxy_inject) in a registry array: lua_setfield() hashes and
 * interns its key at every call (~300 instructions a field, 13 fields
 * a result, callgrind); lua_rawgeti + lua_rawset do not */
enum rkey { RK_CODE = 1, RK_REASON, RK_MADE_UP, RK_ANSWERED,
	    RK_CANCELLED, RK_ATTEMPT, RK_BRANCHES, RK_URI, RK_MAX };

static const char *const rkey_names[RK_MAX] = {
	[RK_CODE] = "code", [RK_REASON] = "reason",
	[RK_MADE_UP] = "made_up", [RK_ANSWERED] = "answered",
	[RK_CANCELLED] = "cancelled", [RK_ATTEMPT] = "attempt",
	[RK_BRANCHES] = "branches", [RK_URI] = "uri",
};


/* t[key] = the value on top (popped); t at absolute index ti, the
 * keys' array at ki */
static void rset(lua_State *L, int ti, int ki, enum rkey k)
{
	lua_rawgeti(L, ki, k);
	lua_insert(L, -2);
	lua_rawset(L, ti);
}


/* The generation's sip.proxy.configure{} */
struct proxyconf {
	struct proxy_config cfg;
	bool use_received;          /* bindings go where they registered
				     * from (NAT), not to their Contact */
};


/* One req:proxy that yields: the op, until it ends */
struct pwait {
	struct ptrans *pt;          /* reference */
	struct rt_op *op;           /* NULL once it ended */
	struct script *sc;          /* reference, for on_branch         */
	int on_branch;              /* registry ref, or LUA_NOREF       */
	bool resuming;
};


/* ------------------------------------------------------------------ *
 * sip.proxy.configure{record_route=, timer_c=, max_attempts=}
 * ------------------------------------------------------------------ */

static int l_configure(lua_State *L)
{
	struct script *sc = rt_script(L);
	struct proxyconf *pc;
	lua_Number n;

	rt_need_loading(L, "proxy.configure");
	if (lua_isnoneornil(L, 1))
		lua_newtable(L);
	luaL_checktype(L, 1, LUA_TTABLE);

	pc = mem_zalloc(sizeof(*pc), NULL);
	if (!pc)
		return luaL_error(L, "out of memory");
	proxy_config_default(&pc->cfg);
	rt_script_set_slot(sc, RT_SLOT_PROXY, pc);   /* the slot owns it */

	lua_pushnil(L);
	while (lua_next(L, 1)) {
		const char *k = lua_type(L, -2) == LUA_TSTRING ?
			lua_tostring(L, -2) : "?";

		if (!strcmp(k, "record_route")) {
			if (lua_type(L, -1) != LUA_TBOOLEAN)
				return luaL_error(L, "proxy.configure: "
						  "'record_route' must be a "
						  "boolean");
			pc->cfg.record_route = lua_toboolean(L, -1);
		}
		else if (!strcmp(k, "use_received")) {
			if (lua_type(L, -1) != LUA_TBOOLEAN)
				return luaL_error(L, "proxy.configure: "
						  "'use_received' must be a "
						  "boolean");
			pc->use_received = lua_toboolean(L, -1);
		}
		else if (!strcmp(k, "timer_c")) {
			n = lua_tonumber(L, -1);
			if (lua_type(L, -1) != LUA_TNUMBER || !(n >= 0.1) ||
			    n > 3600)
				return luaL_error(L, "proxy.configure: "
						  "'timer_c' must be seconds "
						  "in 0.1..3600");
			pc->cfg.timer_c = (uint32_t)(n * 1000 + 0.5);
		}
		else if (!strcmp(k, "max_attempts")) {
			n = lua_tonumber(L, -1);
			if (lua_type(L, -1) != LUA_TNUMBER || n < 1 ||
			    n > 20 || n != (lua_Number)(uint32_t)n)
				return luaL_error(L, "proxy.configure: "
						  "'max_attempts' must be an "
						  "integer in 1..20");
			pc->cfg.max_attempts = (uint32_t)n;
		}
		else {
			return luaL_error(L, "proxy.configure: unknown key "
					  "'%s'", k);
		}
		lua_pop(L, 1);
	}

	return 0;
}


int api_proxy_activate(struct luart *rt, struct script *sc)
{
	struct proxyconf *pc = rt_script_slot(sc, RT_SLOT_PROXY);
	struct stack *st = rt_runtime_stack(rt);

	if (!st)
		return 0;

	if (!pc) {
		proxy_disable(st);
		return 0;
	}

	return proxy_start(st, &pc->cfg);
}


/* ------------------------------------------------------------------ *
 * The transaction's userdata
 * ------------------------------------------------------------------ */

static int l_ptrans_gc(lua_State *L)
{
	struct ptrans **ptp = luaL_checkudata(L, 1, PTRANS_MT);

	if (*ptp) {
		ptrans_detach(*ptp);
		*ptp = mem_deref(*ptp);
	}

	return 0;
}


/* The request's transaction (the userdata at 1), made at its first
 * req:proxy */
static struct ptrans *ptrans_get(lua_State *L, struct stack_req *req,
				 int *errp)
{
	struct ptrans **ptp, *pt = NULL;
	struct proxy *px = proxy_of(rt_stack(L));
	int err;

	*errp = 0;

	lua_pushlightuserdata(L, (void *)&KEY_PTRANS);
	lua_rawget(L, LUA_REGISTRYINDEX);
	if (lua_isnil(L, -1)) {
		lua_pop(L, 1);
		lua_newtable(L);
		lua_createtable(L, 0, 1);
		lua_pushliteral(L, "k");
		lua_setfield(L, -2, "__mode");
		lua_setmetatable(L, -2);
		lua_pushlightuserdata(L, (void *)&KEY_PTRANS);
		lua_pushvalue(L, -2);
		lua_rawset(L, LUA_REGISTRYINDEX);
	}

	lua_pushvalue(L, 1);
	lua_rawget(L, -2);
	if (!lua_isnil(L, -1)) {
		ptp = luaL_checkudata(L, -1, PTRANS_MT);
		lua_pop(L, 2);
		return *ptp;
	}
	lua_pop(L, 1);

	if (!px) {
		lua_pop(L, 1);
		*errp = ESHUTDOWN;
		return NULL;
	}

	err = ptrans_alloc(&pt, px, req);
	if (err) {
		lua_pop(L, 1);
		*errp = err;
		return NULL;
	}

	lua_pushvalue(L, 1);
	ptp = lua_newuserdata(L, sizeof(*ptp));
	*ptp = pt;
	luaL_getmetatable(L, PTRANS_MT);
	lua_setmetatable(L, -2);
	lua_rawset(L, -3);
	lua_pop(L, 1);

	return pt;
}


/* ------------------------------------------------------------------ *
 * req:proxy{...}, req:relay{...}
 * ------------------------------------------------------------------ */

/* One branch's outcome: {uri=, code=, reason=, made_up=, cancelled=,
 * attempt=} */
static void push_branch(lua_State *co, const struct proxy_branch_info *bi,
			int ki)
{
	int ti;

	lua_createtable(co, 0, 6);
	ti = lua_gettop(co);
	lua_pushstring(co, bi->uri);
	rset(co, ti, ki, RK_URI);
	lua_pushinteger(co, bi->scode);
	rset(co, ti, ki, RK_CODE);
	if (bi->resp)
		lua_pushlstring(co, bi->resp->reason.p, bi->resp->reason.l);
	else
		lua_pushstring(co, bi->reason ? bi->reason : "");
	rset(co, ti, ki, RK_REASON);
	lua_pushboolean(co, bi->made_up);
	rset(co, ti, ki, RK_MADE_UP);
	lua_pushboolean(co, bi->cancelled);
	rset(co, ti, ki, RK_CANCELLED);
	lua_pushinteger(co, bi->attempt);
	rset(co, ti, ki, RK_ATTEMPT);
}


/* The keys' array on top of co's stack: its absolute index */
static int rkeys_push(lua_State *co)
{
	lua_pushlightuserdata(co, (void *)&KEY_RKEYS);
	lua_rawget(co, LUA_REGISTRYINDEX);

	return lua_gettop(co);
}


/* The result table of an attempt */
static int push_result(lua_State *co, void *arg)
{
	const struct ptrans *pt = arg;
	const uint32_t attempt = ptrans_attempts(pt);
	size_t i, n = ptrans_branch_count(pt);
	int k = 0, ki, ti, bt;

	ki = rkeys_push(co);
	lua_createtable(co, 0, 8);
	ti = lua_gettop(co);
	lua_pushinteger(co, ptrans_scode(pt));
	rset(co, ti, ki, RK_CODE);
	if (ptrans_response(pt)) {
		const struct sip_msg *m = ptrans_response(pt);

		lua_pushlstring(co, m->reason.p, m->reason.l);
	}
	else {
		lua_pushstring(co, ptrans_reason(pt));
	}
	rset(co, ti, ki, RK_REASON);
	lua_pushboolean(co, ptrans_made_up(pt));
	rset(co, ti, ki, RK_MADE_UP);
	lua_pushboolean(co, ptrans_answered(pt));
	rset(co, ti, ki, RK_ANSWERED);
	lua_pushboolean(co, ptrans_cancelled(pt));
	rset(co, ti, ki, RK_CANCELLED);
	lua_pushinteger(co, attempt);
	rset(co, ti, ki, RK_ATTEMPT);

	lua_createtable(co, (int)n, 0);
	bt = lua_gettop(co);
	for (i = 0; i < n; i++) {
		struct proxy_branch_info bi;

		if (ptrans_branch(pt, i, &bi) || bi.attempt != attempt)
			continue;

		push_branch(co, &bi, ki);
		lua_rawseti(co, bt, ++k);
	}
	rset(co, ti, ki, RK_BRANCHES);

	lua_remove(co, ki);              /* the result alone is returned */

	return 1;
}


static void pwait_destructor(void *arg)
{
	struct pwait *pw = arg;

	rt_unref(pw->sc, pw->on_branch);
	mem_deref(pw->sc);
	mem_deref(pw->pt);
}


/* on_branch(branch): in a task of its own (it may yield), as sip.spawn
 * runs a function; its errors are logged as such a task's */
static void branch_h(struct ptrans *pt, const struct proxy_branch_info *bi,
		     void *arg)
{
	struct pwait *pw = arg;
	struct task *t;
	lua_State *co;
	(void)pt;

	if (pw->on_branch == LUA_NOREF)
		return;

	t = rt_task_new(pw->sc, RT_HOOK_SPAWN);
	if (!t)
		return;

	co = rt_task_co(t);
	lua_rawgeti(co, LUA_REGISTRYINDEX, pw->on_branch);
	push_branch(co, bi, rkeys_push(co));
	lua_remove(co, -2);              /* the keys */

	rt_task_run(t, 1);
}


static void done_h(struct ptrans *pt, void *arg)
{
	struct pwait *pw = arg;
	struct rt_op *op = pw->op;

	if (!op)
		return;

	pw->op = NULL;
	pw->resuming = true;
	rt_op_resume(op, push_result, pt);
}


/* The op ended: by done_h, or its task went first (then nobody waits:
 * the transaction sends its best response itself) */
static void cleanup_h(struct rt_op *op, void *ctx)
{
	struct pwait *pw = ctx;
	(void)op;

	if (pw->resuming)
		return;

	pw->op = NULL;
	ptrans_detach(pw->pt);
}


static uint32_t opt_ms(lua_State *L, int idx, const char *key)
{
	lua_Number n;

	lua_getfield(L, idx, key);
	if (lua_isnil(L, -1)) {
		lua_pop(L, 1);
		return 0;
	}

	n = lua_tonumber(L, -1);
	if (lua_type(L, -1) != LUA_TNUMBER || !(n > 0) || n > 86400)
		luaL_argerror(L, idx, lua_pushfstring(L, "%s: seconds in "
			      "0..86400 expected", key));
	lua_pop(L, 1);

	return (uint32_t)(n * 1000 + 0.5);
}


static const char *target_str(lua_State *L, int idx, const char *key,
			      bool uri)
{
	const char *s;

	lua_getfield(L, idx, key);
	if (lua_isnil(L, -1))
		return NULL;   /* left on the stack, as the strings are */

	s = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
	if (!s || strpbrk(s, "\r\n") ||
	    (uri && strncmp(s, "sip:", 4) && strncmp(s, "sips:", 5)))
		luaL_error(L, "proxy: target %s: a SIP URI expected", key);

	return s;
}


/* targets = {"sip:..." | {uri=, path=, received=, next_hop=, q=}, ...}:
 * the strings stay anchored on L's stack */
static size_t targets_check(lua_State *L, int idx,
			    struct proxy_target *tv, bool use_received)
{
	size_t n = lua_objlen(L, idx), i;

	if (n > PROXY_MAX_TARGETS)
		luaL_error(L, "proxy: at most %d targets",
			   PROXY_MAX_TARGETS);

	for (i = 0; i < n; i++) {
		struct proxy_target *t = &tv[i];

		memset(t, 0, sizeof(*t));
		t->q = 1000;
		/* each target leaves up to 6 values (its strings stay
		 * anchored): room beyond LUA_MINSTACK */
		luaL_checkstack(L, 7, "proxy: targets");
		lua_rawgeti(L, idx, (int)i + 1);

		if (lua_type(L, -1) == LUA_TSTRING) {
			t->uri = lua_tostring(L, -1);
			if (strpbrk(t->uri, "\r\n<> ") ||
			    (strncmp(t->uri, "sip:", 4) &&
			     strncmp(t->uri, "sips:", 5)))
				luaL_error(L, "proxy: target %d: a SIP URI "
					   "expected", (int)i + 1);
			continue;
		}

		if (lua_type(L, -1) != LUA_TTABLE)
			luaL_error(L, "proxy: target %d: a SIP URI or a "
				   "binding table expected", (int)i + 1);

		{
			const int ti = lua_gettop(L);
			lua_Number q;

			t->uri = target_str(L, ti, "uri", true);
			if (!t->uri)
				luaL_error(L, "proxy: target %d has no uri",
					   (int)i + 1);
			t->path = target_str(L, ti, "path", false);
			/* the script's next hop, else where it registered
			 * from when so configured */
			t->received = target_str(L, ti, "next_hop", true);
			if (!t->received && use_received)
				t->received = target_str(L, ti, "received",
							 true);
			lua_getfield(L, ti, "q");
			q = lua_tonumber(L, -1);
			if (lua_type(L, -1) == LUA_TNUMBER && q >= 0 &&
			    q <= 1)
				t->q = (uint32_t)(q * 1000 + 0.5);
		}
	}

	return n;
}


static int do_proxy(lua_State *L, bool relay)
{
	struct proxy_target tv[PROXY_MAX_TARGETS];
	struct stack_req *req = api_request_check(L, 1);
	struct proxy_opts o;
	struct ptrans *pt;
	struct pwait *pw;
	struct proxyconf *pc;
	struct rt_op *op;
	char *hdrs = NULL;
	int on_branch = 0;
	size_t n = 0;
	bool done;
	int err;

	rt_need_task(L, relay ? "relay" : "proxy");
	pc = rt_script_slot(rt_script(L), RT_SLOT_PROXY);
	if (!pc)
		return luaL_error(L, "%s: call sip.proxy.configure{} at the "
				  "top level first", relay ? "relay" : "proxy");

	memset(&o, 0, sizeof(o));
	o.record_route = -1;

	if (!lua_isnoneornil(L, 2)) {
		luaL_checktype(L, 2, LUA_TTABLE);

		lua_pushnil(L);
		while (lua_next(L, 2)) {
			const char *k = lua_type(L, -2) == LUA_TSTRING ?
				lua_tostring(L, -2) : "?";

			if (strcmp(k, "mode") && strcmp(k, "branch_timeout") &&
			    strcmp(k, "timeout") && strcmp(k, "record_route") &&
			    strcmp(k, "headers") && strcmp(k, "on_branch") &&
			    (relay || strcmp(k, "targets")))
				return luaL_argerror(L, 2, lua_pushfstring(L,
						     "unknown option '%s'", k));
			lua_pop(L, 1);
		}

		if (!relay) {
			lua_getfield(L, 2, "targets");
			if (!lua_isnil(L, -1)) {
				luaL_checktype(L, -1, LUA_TTABLE);
				n = targets_check(L, lua_gettop(L), tv,
						  pc->use_received);
				if (!n)
					return rt_fail(L, ENOENT);
			}
		}

		lua_getfield(L, 2, "mode");
		if (!lua_isnil(L, -1)) {
			const char *m = lua_tostring(L, -1);

			if (m && !strcmp(m, "parallel"))
				o.mode = PROXY_PARALLEL;
			else if (m && !strcmp(m, "serial"))
				o.mode = PROXY_SERIAL;
			else if (m && !strcmp(m, "q"))
				o.mode = PROXY_Q;
			else
				return luaL_argerror(L, 2, "mode: \"parallel\","
						     " \"serial\" or \"q\" "
						     "expected");
		}

		o.branch_timeout = opt_ms(L, 2, "branch_timeout");
		o.timeout = opt_ms(L, 2, "timeout");

		lua_getfield(L, 2, "on_branch");
		if (!lua_isnil(L, -1) && !lua_isfunction(L, -1))
			return luaL_argerror(L, 2, "on_branch: a function "
					     "expected");
		on_branch = lua_gettop(L);

		lua_getfield(L, 2, "record_route");
		if (!lua_isnil(L, -1)) {
			if (lua_type(L, -1) != LUA_TBOOLEAN)
				return luaL_argerror(L, 2, "record_route: a "
						     "boolean expected");
			o.record_route = lua_toboolean(L, -1);
		}

		/* last: it allocates */
		lua_getfield(L, 2, "headers");
		api_headers_encode(L, -1, &hdrs);
		o.headers = hdrs;
	}

	pt = ptrans_get(L, req, &err);
	if (!pt) {
		mem_deref(hdrs);
		return rt_fail(L, err);
	}

	pw = mem_zalloc(sizeof(*pw), pwait_destructor);
	if (!pw) {
		mem_deref(hdrs);
		return luaL_error(L, "out of memory");
	}
	pw->pt = mem_ref(pt);
	pw->on_branch = LUA_NOREF;
	if (on_branch && lua_isfunction(L, on_branch)) {
		pw->sc = mem_ref(rt_script(L));
		lua_pushvalue(L, on_branch);
		pw->on_branch = rt_ref(L);
		o.branchh = branch_h;
		o.branch_arg = pw;
	}

	err = ptrans_forward(pt, n ? tv : NULL, n, &o, done_h, pw, &done);
	mem_deref(hdrs);
	if (err) {
		mem_deref(pw);
		return rt_fail(L, err);
	}

	if (done) {
		mem_deref(pw);
		return push_result(L, pt);
	}

	/* ptrans_forward calls back later, never from inside */
	op = rt_op_start(L, relay ? "relay" : "proxy");
	pw->op = op;
	rt_op_cleanup(op, cleanup_h, pw);
	mem_deref(pw);            /* the op's ctx holds it */

	return rt_op_yield(L, op);
}


static int l_req_proxy(lua_State *L)
{
	return do_proxy(L, false);
}


static int l_req_relay(lua_State *L)
{
	return do_proxy(L, true);
}


/* ------------------------------------------------------------------ *
 * Injection
 * ------------------------------------------------------------------ */

/* sip.proxy, and the methods proxy and relay of request objects (whose
 * metatable api_request_inject made) */
void api_proxy_inject(lua_State *L)
{
	int i;
	static const luaL_Reg proxy_funcs[] = {
		{"configure", l_configure},
		{NULL, NULL}
	};
	static const luaL_Reg req_proxy_methods[] = {
		{"proxy", l_req_proxy},
		{"relay", l_req_relay},
		{NULL, NULL}
	};

	luaL_newlib(L, proxy_funcs);
	lua_setfield(L, -2, "proxy");

	lua_pushlightuserdata(L, (void *)&KEY_RKEYS);
	lua_createtable(L, RK_MAX - 1, 0);
	for (i = 1; i < RK_MAX; i++) {
		lua_pushstring(L, rkey_names[i]);
		lua_rawseti(L, -2, i);
	}
	lua_rawset(L, LUA_REGISTRYINDEX);

	luaL_newmetatable(L, PTRANS_MT);
	lua_pushcfunction(L, l_ptrans_gc);
	lua_setfield(L, -2, "__gc");
	lua_pop(L, 1);

	luaL_getmetatable(L, "sipstack.request");
	luaL_setfuncs(L, req_proxy_methods, 0);
	lua_pop(L, 1);
}
