/**
 * bindings/api_sip.c  The `sip` module's own functions
 *
 * Exposes to Lua: hook registration (sip.on_*), sip.configure/config,
 * sip.local_uri, sip.listeners, sip.stats, sip.log.*, sip.version, sip.spawn and the
 * yielding functions of the module itself, sip.sleep, sip.send_message
 * and sip.request (the runtime's one yield shape, runtime.h). Owns
 * nothing: the hooks and the config belong to the script generation
 * (runtime.c), requests to api_request.c. Uses the stack for sending,
 * its config and counters.
 */
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <re.h>
#include "sipstack.h"
#include "runtime.h"


/* ------------------------------------------------------------------ *
 * Hook registration
 * ------------------------------------------------------------------ */

static int l_on_call(lua_State *L)
{
	return rt_set_hook(L, RT_HOOK_CALL);
}

static int l_on_message(lua_State *L)
{
	return rt_set_hook(L, RT_HOOK_MESSAGE);
}

static int l_on_refer(lua_State *L)
{
	return rt_set_hook(L, RT_HOOK_REFER);
}

static int l_on_regres(lua_State *L)
{
	return rt_set_hook(L, RT_HOOK_REGRESULT);
}

static int l_on_dlgev(lua_State *L)
{
	return rt_set_hook(L, RT_HOOK_DIALOG);
}

static int l_on_register(lua_State *L)
{
	return rt_set_hook(L, RT_HOOK_REGISTER);
}


/* sip.on_request(fn [, {"INFO", "OPTIONS", ...}]) */
static int l_on_request(lua_State *L)
{
	char *methods = NULL;
	struct mbuf *mb;
	int i, n;

	rt_set_hook(L, RT_HOOK_REQUEST);
	rt_set_request_methods(L, NULL);

	if (lua_isnoneornil(L, 2))
		return 0;

	luaL_checktype(L, 2, LUA_TTABLE);
	mb = mbuf_alloc(64);
	if (!mb)
		return luaL_error(L, "out of memory");

	(void)mbuf_write_str(mb, " ");
	n = (int)lua_objlen(L, 2);
	for (i = 1; i <= n; i++) {
		const char *m;
		size_t k;

		lua_rawgeti(L, 2, i);
		m = lua_tostring(L, -1);
		if (!m || !*m) {
			mem_deref(mb);
			return luaL_argerror(L, 2, "methods must be strings");
		}
		for (k = 0; m[k]; k++) {
			if (m[k] < 'A' || m[k] > 'Z') {
				mem_deref(mb);
				return luaL_error(L, "on_request: invalid "
						  "method '%s' (upper-case "
						  "token expected)", m);
			}
		}
		(void)mbuf_printf(mb, "%s ", m);
		lua_pop(L, 1);
	}

	mb->pos = 0;
	(void)mbuf_strdup(mb, &methods, mb->end);
	mem_deref(mb);
	rt_set_request_methods(L, methods);

	return 0;
}


/* ------------------------------------------------------------------ *
 * Config
 * ------------------------------------------------------------------ */

static uint32_t cfg_uint(lua_State *L, const char *key, uint32_t min,
			 uint32_t max)
{
	lua_Number n;

	if (lua_type(L, -1) != LUA_TNUMBER)
		luaL_error(L, "configure: '%s' must be a number", key);

	n = lua_tonumber(L, -1);
	if (n != floor(n) || n < min || n > max)
		luaL_error(L, "configure: '%s' must be an integer in "
			   "%u..%u", key, min, max);

	return (uint32_t)n;
}


static bool cfg_bool(lua_State *L, const char *key)
{
	if (lua_type(L, -1) != LUA_TBOOLEAN)
		luaL_error(L, "configure: '%s' must be a boolean", key);

	return lua_toboolean(L, -1);
}


/* bytes: 0 (no cap) or from 1 MiB (the state itself takes ~40 KiB,
 * the bundled modules some more) to 1 TiB */
static uint64_t cfg_memory(lua_State *L, const char *key)
{
	lua_Number n;

	if (lua_type(L, -1) != LUA_TNUMBER)
		luaL_error(L, "configure: '%s' must be a number", key);

	n = lua_tonumber(L, -1);
	if (n != floor(n) || (n != 0 && (n < 1048576.0 ||
					 n > 1099511627776.0)))
		luaL_error(L, "configure: '%s' must be 0 (no cap) or a number "
			   "of bytes from 1 MiB (1048576) to 1 TiB", key);

	return (uint64_t)n;
}


static void cfg_str(lua_State *L, const char *key, char *dst, size_t sz)
{
	size_t len, i;
	const char *s;

	if (lua_type(L, -1) != LUA_TSTRING)
		luaL_error(L, "configure: '%s' must be a string", key);

	s = lua_tolstring(L, -1, &len);
	if (len >= sz)
		luaL_error(L, "configure: '%s' is too long (max %d)", key,
			   (int)sz - 1);
	for (i = 0; i < len; i++) {
		if ((unsigned char)s[i] < 0x20)
			luaL_error(L, "configure: '%s' holds a control "
				   "character", key);
	}

	str_ncpy(dst, s, sz);
}


/* dns_servers = {"127.0.0.1:5353", ...} */
static void cfg_dns(lua_State *L, char *dst, size_t sz)
{
	struct stack_config tmp;
	struct sa ns[8];
	uint32_t nsn = ARRAY_SIZE(ns);
	size_t n = 0;
	int i, cnt;

	if (lua_type(L, -1) != LUA_TTABLE)
		luaL_error(L, "configure: 'dns_servers' must be a list of "
			   "\"ip[:port]\" strings");

	memset(&tmp, 0, sizeof(tmp));
	cnt = (int)lua_objlen(L, -1);
	for (i = 1; i <= cnt; i++) {
		const char *s;

		lua_rawgeti(L, -1, i);
		s = lua_tostring(L, -1);
		if (!s || n + strlen(s) + 2 > sizeof(tmp.dns_servers))
			luaL_error(L, "configure: 'dns_servers' entry %d is "
				   "not a string or too long", i);
		n += (size_t)re_snprintf(tmp.dns_servers + n,
					 sizeof(tmp.dns_servers) - n, "%s%s",
					 n ? " " : "", s);
		lua_pop(L, 1);
	}

	if (stack_dns_servers(&tmp, ns, &nsn))
		luaL_error(L, "configure: 'dns_servers' holds an invalid "
			   "address (at most 8 \"ip[:port]\")");

	str_ncpy(dst, tmp.dns_servers, sz);
}


/* rate_limit = {rate=, burst=, action=, retry_after=, trusted=,
 * max_sources=}, or true/false; keys not given keep their value */
static void cfg_ratelimit(lua_State *L, struct stack_ratelimit *rl)
{
	if (lua_type(L, -1) == LUA_TBOOLEAN) {
		rl->on = lua_toboolean(L, -1);
		return;
	}

	if (lua_type(L, -1) != LUA_TTABLE)
		luaL_error(L, "configure: 'rate_limit' must be a table, or "
			   "false to turn it off");

	rl->on = true;
	lua_pushnil(L);
	while (lua_next(L, -2)) {
		const char *k = lua_type(L, -2) == LUA_TSTRING ?
			lua_tostring(L, -2) : NULL;

		if (!k)
			luaL_error(L, "configure: 'rate_limit' keys must be "
				   "strings");

		if (!strcmp(k, "rate"))
			rl->rate = cfg_uint(L, "rate_limit.rate", 1, 1000000);
		else if (!strcmp(k, "burst"))
			rl->burst = cfg_uint(L, "rate_limit.burst", 1,
					     10000000);
		else if (!strcmp(k, "retry_after"))
			rl->retry_after = cfg_uint(L, "rate_limit.retry_after",
						   1, 86400);
		else if (!strcmp(k, "max_sources"))
			rl->max_sources = cfg_uint(L, "rate_limit.max_sources",
						   1024, 1048576);
		else if (!strcmp(k, "action")) {
			const char *a = lua_type(L, -1) == LUA_TSTRING ?
				lua_tostring(L, -1) : "";

			if (!strcmp(a, "drop"))
				rl->action = RATELIMIT_DROP;
			else if (!strcmp(a, "503"))
				rl->action = RATELIMIT_503;
			else
				luaL_error(L, "configure: 'rate_limit.action' "
					   "must be \"drop\" or \"503\"");
		}
		else if (!strcmp(k, "trusted")) {
			int i, n;

			if (lua_type(L, -1) != LUA_TTABLE)
				luaL_error(L, "configure: 'rate_limit.trusted' "
					   "must be a list of \"ip\" or "
					   "\"ip/bits\" strings");
			n = (int)lua_objlen(L, -1);
			if (n > RATELIMIT_TRUSTED_MAX)
				luaL_error(L, "configure: 'rate_limit.trusted' "
					   "holds %d entries (at most %d)", n,
					   RATELIMIT_TRUSTED_MAX);
			for (i = 1; i <= n; i++) {
				const char *e;
				int err;

				lua_rawgeti(L, -1, i);
				e = lua_type(L, -1) == LUA_TSTRING ?
					lua_tostring(L, -1) : NULL;
				err = e ? ratelimit_net_decode(&rl->trusted[i - 1],
							       e) : EINVAL;
				if (err == EDOM)
					luaL_error(L, "configure: "
						   "'rate_limit.trusted' entry "
						   "%d (\"%s\") has bits set "
						   "beyond its prefix", i, e);
				if (err)
					luaL_error(L, "configure: "
						   "'rate_limit.trusted' entry "
						   "%d (%s) is not an \"ip\" or "
						   "\"ip/bits\" string", i,
						   e ? e : luaL_typename(L, -1));
				lua_pop(L, 1);
			}
			rl->ntrusted = (uint32_t)n;
		}
		else
			luaL_error(L, "configure: unknown key "
				   "'rate_limit.%s'", k);
		lua_pop(L, 1);
	}
}


/* drop_user_agents = {"friendly-scanner", ...} */
static void cfg_ua_drop(lua_State *L, struct stack_config *cfg)
{
	int i, n;

	if (lua_type(L, -1) != LUA_TTABLE)
		luaL_error(L, "configure: 'drop_user_agents' must be a list "
			   "of strings");

	n = (int)lua_objlen(L, -1);
	if (n > STACK_UA_DROP_MAX)
		luaL_error(L, "configure: 'drop_user_agents' holds %d "
			   "entries (at most %d)", n, STACK_UA_DROP_MAX);

	for (i = 1; i <= n; i++) {
		lua_rawgeti(L, -1, i);
		if (lua_type(L, -1) != LUA_TSTRING || !lua_objlen(L, -1))
			luaL_error(L, "configure: 'drop_user_agents' entry %d "
				   "must be a non-empty string", i);
		cfg_str(L, "drop_user_agents", cfg->ua_drop[i - 1],
			sizeof(cfg->ua_drop[i - 1]));
		lua_pop(L, 1);
	}
	cfg->ua_dropn = (uint32_t)n;
}


/* sip.configure{user_agent=, local_ip=, udp_port=, tcp_port=,
 * tls_port=, max_forwards=, t1=, t2=, t4=, dns_servers=, rate_limit=,
 * drop_user_agents=, hook_budget_ms=, lua_memory_max=, jit=} */
static int l_configure(lua_State *L)
{
	struct stack_config cfg;
	struct rt_limits lim;

	rt_need_loading(L, "configure");
	luaL_checktype(L, 1, LUA_TTABLE);
	cfg = *rt_config(L);
	lim = *rt_limits(L);

	lua_pushnil(L);
	while (lua_next(L, 1)) {
		const char *k = lua_type(L, -2) == LUA_TSTRING ?
			lua_tostring(L, -2) : NULL;

		if (!k)
			return luaL_error(L, "configure: keys must be "
					  "strings");

		if (!strcmp(k, "user_agent"))
			cfg_str(L, k, cfg.user_agent, sizeof(cfg.user_agent));
		else if (!strcmp(k, "local_ip")) {
			struct sa sa;

			cfg_str(L, k, cfg.local_ip, sizeof(cfg.local_ip));
			/* it goes into From and Contact, and the listeners
			 * of udp_port= and the like bind it */
			if (!sa_set_str(&sa, cfg.local_ip, 0) &&
			    sa_is_any(&sa))
				return luaL_error(L, "configure: local_ip "
						  "'%s' is a wildcard: give "
						  "the address peers reach",
						  cfg.local_ip);
		}
		else if (!strcmp(k, "udp_port"))
			cfg.udp_port = (uint16_t)cfg_uint(L, k, 0, 65535);
		else if (!strcmp(k, "tcp_port"))
			cfg.tcp_port = (uint16_t)cfg_uint(L, k, 0, 65535);
		else if (!strcmp(k, "tls_port"))
			cfg.tls_port = (uint16_t)cfg_uint(L, k, 0, 65535);
		else if (!strcmp(k, "max_forwards"))
			cfg.max_forwards = cfg_uint(L, k, 1, 255);
		else if (!strcmp(k, "t1"))
			cfg.t1 = cfg_uint(L, k, 1, 60000);
		else if (!strcmp(k, "t2"))
			cfg.t2 = cfg_uint(L, k, 1, 600000);
		else if (!strcmp(k, "t4"))
			cfg.t4 = cfg_uint(L, k, 1, 600000);
		else if (!strcmp(k, "dns_servers"))
			cfg_dns(L, cfg.dns_servers, sizeof(cfg.dns_servers));
		else if (!strcmp(k, "rate_limit"))
			cfg_ratelimit(L, &cfg.rate_limit);
		else if (!strcmp(k, "drop_user_agents"))
			cfg_ua_drop(L, &cfg);
		else if (!strcmp(k, "hook_budget_ms"))
			lim.budget_ms = cfg_uint(L, k, 0, 3600000);
		else if (!strcmp(k, "lua_memory_max"))
			lim.memory_max = cfg_memory(L, k);
		else if (!strcmp(k, "jit"))
			lim.jit = cfg_bool(L, k);
		else
			return luaL_error(L, "configure: unknown key '%s'",
					  k);
		lua_pop(L, 1);
	}

	if (cfg.t2 < cfg.t1)
		return luaL_error(L, "configure: t2 (%d) must not be below "
				  "t1 (%d)", (int)cfg.t2, (int)cfg.t1);

	*rt_config(L) = cfg;
	*rt_limits(L) = lim;

	return 0;
}


/* the rate_limit table of sip.config(), or false when off */
static void push_ratelimit(lua_State *L, const struct stack_ratelimit *rl)
{
	char buf[64];
	uint32_t i;

	if (!rl->on) {
		lua_pushboolean(L, 0);
		return;
	}

	lua_createtable(L, 0, 6);
	lua_pushnumber(L, rl->rate);
	lua_setfield(L, -2, "rate");
	lua_pushnumber(L, rl->burst);
	lua_setfield(L, -2, "burst");
	lua_pushstring(L, rl->action == RATELIMIT_503 ? "503" : "drop");
	lua_setfield(L, -2, "action");
	lua_pushnumber(L, rl->retry_after);
	lua_setfield(L, -2, "retry_after");
	lua_pushnumber(L, rl->max_sources);
	lua_setfield(L, -2, "max_sources");
	lua_createtable(L, (int)rl->ntrusted, 0);
	for (i = 0; i < rl->ntrusted; i++) {
		(void)re_snprintf(buf, sizeof(buf), "%H", ratelimit_net_print,
				  &rl->trusted[i]);
		lua_pushstring(L, buf);
		lua_rawseti(L, -2, (int)i + 1);
	}
	lua_setfield(L, -2, "trusted");
}


static int l_config(lua_State *L)
{
	struct stack *st = rt_stack(L);
	const struct stack_config *cfg = st ? stack_config(st) :
		rt_config(L);
	const struct rt_limits *lim = rt_limits(L);
	uint32_t i;

	lua_createtable(L, 0, 14);
	lua_pushstring(L, cfg->user_agent);
	lua_setfield(L, -2, "user_agent");
	lua_pushstring(L, cfg->local_ip);
	lua_setfield(L, -2, "local_ip");
#define SETN(f) lua_pushnumber(L, cfg->f); lua_setfield(L, -2, #f)
	SETN(udp_port);
	SETN(tcp_port);
	SETN(tls_port);
	SETN(max_forwards);
	SETN(t1);
	SETN(t2);
	SETN(t4);
#undef SETN
	lua_pushstring(L, cfg->dns_servers);
	lua_setfield(L, -2, "dns_servers");
	push_ratelimit(L, &cfg->rate_limit);
	lua_setfield(L, -2, "rate_limit");

	lua_createtable(L, (int)cfg->ua_dropn, 0);
	for (i = 0; i < cfg->ua_dropn; i++) {
		lua_pushstring(L, cfg->ua_drop[i]);
		lua_rawseti(L, -2, (int)i + 1);
	}
	lua_setfield(L, -2, "drop_user_agents");

	lua_pushnumber(L, lim->budget_ms);
	lua_setfield(L, -2, "hook_budget_ms");
	lua_pushnumber(L, (lua_Number)lim->memory_max);
	lua_setfield(L, -2, "lua_memory_max");
	lua_pushboolean(L, lim->jit);
	lua_setfield(L, -2, "jit");

	return 1;
}


/* sip.listeners() -> {"sip:ip:port[;transport=tcp]", ...}: every
 * listener, in the form of a binding's node */
static int l_listeners(lua_State *L)
{
	struct stack *st = rt_stack(L);
	char buf[256];
	size_t i;

	lua_newtable(L);
	for (i = 0; st && !stack_listener_uri(st, i, buf, sizeof(buf)); i++) {
		lua_pushstring(L, buf);
		lua_rawseti(L, -2, (int)i + 1);
	}

	return 1;
}


/* sip.local_uri() -> "sip:sipstack@ip:port" of our first listener */
static int l_local_uri(lua_State *L)
{
	struct stack *st = rt_stack(L);
	char buf[256];

	if (!st || stack_local_uri(st, SIP_TRANSP_NONE, buf, sizeof(buf))) {
		lua_pushnil(L);
		return 1;
	}

	lua_pushstring(L, buf);

	return 1;
}


/* sip.stats() -> the figures of `sipstack ctl stats` (stats.c) */
static int l_stats(lua_State *L)
{
	struct odict *o = NULL;

	if (stats_odict(&o, rt_runtime(L), L))
		return luaL_error(L, "sip.stats: out of memory");

	stats_push(L, o, false);
	mem_deref(o);

	return 1;
}


/* ------------------------------------------------------------------ *
 * Logging: sip.log.info(msg [, fields])
 * ------------------------------------------------------------------ */

static bool key_ok(const char *k)
{
	if (!*k)
		return false;

	for (; *k; k++) {
		if (!((*k >= 'a' && *k <= 'z') || (*k >= 'A' && *k <= 'Z') ||
		      (*k >= '0' && *k <= '9') || *k == '_' || *k == '-' ||
		      *k == '.'))
			return false;
	}

	return true;
}


static int key_cmp(const void *a, const void *b)
{
	return strcmp(*(const char * const *)a, *(const char * const *)b);
}


/* Fields print sorted by key, so one event always reads the same way
 * (Lua's table order is not stable between runs). The key strings stay
 * anchored by the table at index 2 while we print. */
static int print_fields(struct re_printf *pf, lua_State *L)
{
	const char *keys[64];
	size_t n = 0, i;
	int err = 0;

	if (lua_type(L, 2) != LUA_TTABLE)
		return 0;

	lua_pushnil(L);
	while (lua_next(L, 2)) {
		const char *k = lua_type(L, -2) == LUA_TSTRING ?
			lua_tostring(L, -2) : NULL;

		if (k && key_ok(k) && n < ARRAY_SIZE(keys))
			keys[n++] = k;
		lua_pop(L, 1);
	}

	qsort(keys, n, sizeof(keys[0]), key_cmp);

	for (i = 0; i < n; i++) {
		const char *v;

		lua_getglobal(L, "tostring");
		lua_getfield(L, 2, keys[i]);
		lua_call(L, 1, 1);
		v = lua_tostring(L, -1);
		err |= re_hprintf(pf, " %s=%H", keys[i], log_q, v);
		lua_pop(L, 1);
	}

	return err;
}


static int do_log(lua_State *L, enum log_level lvl)
{
	struct stack_req *req;
	const struct sip_msg *m = NULL;
	const char *msg;
	char src[256];
	int line;

	if (!log_enabled(lvl))
		return 0;

	msg = luaL_checkstring(L, 1);
	if (!lua_isnoneornil(L, 2))
		luaL_checktype(L, 2, LUA_TTABLE);

	req = rt_task_req(L);
	if (req)
		m = stack_req_msg(req);

	line = rt_src_line(L, src, sizeof(src));
	slog(lvl, "script", "log", m ? &m->callid : NULL,
	     "src=%s:%d msg=%H%H", src, line, log_q, msg,
	     print_fields, L);

	return 0;
}

static int l_log_debug(lua_State *L) { return do_log(L, LOG_DEBUG); }
static int l_log_info(lua_State *L)  { return do_log(L, LOG_INFO); }
static int l_log_warn(lua_State *L)  { return do_log(L, LOG_WARN); }
static int l_log_error(lua_State *L) { return do_log(L, LOG_ERROR); }


/* ------------------------------------------------------------------ *
 * sip.sleep(seconds): an op whose only source is its own timer
 * ------------------------------------------------------------------ */

static int l_sleep(lua_State *L)
{
	lua_Number s;
	struct rt_op *op;

	rt_need_task(L, "sleep");
	s = luaL_checknumber(L, 1);
	if (!(s >= 0) || s > 86400)
		return luaL_argerror(L, 1, "seconds must be in 0..86400");

	op = rt_op_start(L, "sleep");
	rt_op_timeout(op, (uint64_t)(s * 1000 + 0.5), NULL, NULL);

	return rt_op_yield(L, op);
}


/* ------------------------------------------------------------------ *
 * sip.send_message(to, content_type, body [, headers]): an op whose
 * source, the stack's client transaction, always calls back once
 * ------------------------------------------------------------------ */

struct sent {
	int err;
	const struct sip_msg *msg;
};


/* code, reason | nil, err */
static int push_sent(lua_State *co, void *arg)
{
	const struct sent *r = arg;

	if (r->err || !r->msg)
		return rt_fail(co, r->err ? r->err : EPROTO);

	lua_pushinteger(co, r->msg->scode);
	lua_pushlstring(co, r->msg->reason.p, r->msg->reason.l);

	return 2;
}


static void sent_h(int err, const struct sip_msg *msg, void *arg)
{
	struct sent r = {err, msg};

	rt_op_resume(arg, push_sent, &r);
}


/* sip.send_message(to, content_type, body [, headers [, {from=}]]) */
static int l_send_message(lua_State *L)
{
	struct stack *st = rt_stack(L);
	const char *to, *ctype, *body, *from = NULL;
	char *hdrs = NULL;
	struct rt_op *op;
	size_t len;
	int err;

	rt_need_task(L, "send_message");
	to = luaL_checkstring(L, 1);
	ctype = luaL_checkstring(L, 2);
	body = luaL_checklstring(L, 3, &len);

	if (strncmp(to, "sip:", 4) && strncmp(to, "sips:", 5))
		return luaL_argerror(L, 1, "SIP URI expected");
	if (strpbrk(to, "\r\n") || strpbrk(ctype, "\r\n") || !*ctype)
		return luaL_argerror(L, 2, "invalid content type");

	if (!lua_isnoneornil(L, 5)) {
		luaL_checktype(L, 5, LUA_TTABLE);
		lua_pushnil(L);
		while (lua_next(L, 5)) {
			if (lua_type(L, -2) != LUA_TSTRING ||
			    strcmp(lua_tostring(L, -2), "from"))
				return luaL_argerror(L, 5, "options: 'from' "
						     "only");
			lua_pop(L, 1);
		}
		from = api_uri_field(L, 5, "from");
	}

	api_headers_encode(L, 4, &hdrs);   /* the last that may raise */

	if (!st) {
		mem_deref(hdrs);
		return rt_fail(L, ESHUTDOWN);
	}

	op = rt_op_start(L, "send_message");
	err = stack_send_message(st, to, from, ctype, (const uint8_t *)body,
				 len, hdrs, sent_h, rt_op_arg(op));
	mem_deref(hdrs);
	if (err)
		return rt_op_abort(L, op, err);

	return rt_op_yield(L, op);
}


/* ------------------------------------------------------------------ *
 * sip.request(method, uri [, options]): any other non-INVITE request
 * out of dialog, an op like send_message's (with an optional timeout
 * of its own)
 * ------------------------------------------------------------------ */

/* sip.request(method, uri [, {headers=, body=, content_type=, from=,
 * next_hop=, timeout=}]) -> code, reason, body, content_type | nil, err */
static int l_request(lua_State *L)
{
	struct stack *st = rt_stack(L);
	struct api_reqopts o;
	const char *met, *uri;
	struct rt_op *op;
	int err;

	rt_need_task(L, "request");
	met = api_method_check(L, 1, false);
	uri = luaL_checkstring(L, 2);
	if ((strncmp(uri, "sip:", 4) && strncmp(uri, "sips:", 5)) ||
	    strpbrk(uri, "\r\n<> "))
		return luaL_argerror(L, 2, "SIP URI expected");

	api_reqopts_check(L, 3, &o, true);   /* the last that may raise */

	if (!st) {
		mem_deref(o.hdrs);
		return rt_fail(L, ESHUTDOWN);
	}

	op = rt_op_start(L, "request");
	err = stack_request_via(st, met, uri, o.next_hop, o.from, o.hdrs,
				o.ctype, (const uint8_t *)o.body, o.len,
				api_final_h, rt_op_arg(op));
	mem_deref(o.hdrs);
	if (err)
		return rt_op_abort(L, op, err);

	api_final_wait(op, &o);

	return rt_op_yield(L, op);
}


/* ------------------------------------------------------------------ *
 * Injection
 * ------------------------------------------------------------------ */

/* fills the sip table at the top of L with the module's own functions */
void api_sip_inject(lua_State *L)
{
	static const luaL_Reg sip_funcs[] = {
		{"on_incoming_call",       l_on_call},
		{"on_incoming_message",    l_on_message},
		{"on_incoming_refer",      l_on_refer},
		{"on_registration_result", l_on_regres},
		{"on_dialog_event",        l_on_dlgev},
		{"on_request",             l_on_request},
		{"on_register",            l_on_register},
		{"configure",              l_configure},
		{"config",                 l_config},
		{"stats",                  l_stats},
		{"local_uri",              l_local_uri},
		{"listeners",              l_listeners},
		{"sleep",                  l_sleep},
		{"send_message",           l_send_message},
		{"request",                l_request},
		{"spawn",                  rt_spawn},
		{NULL, NULL}
	};
	static const luaL_Reg log_funcs[] = {
		{"debug", l_log_debug},
		{"info",  l_log_info},
		{"warn",  l_log_warn},
		{"error", l_log_error},
		{NULL, NULL}
	};

	luaL_setfuncs(L, sip_funcs, 0);
	luaL_newlib(L, log_funcs);
	lua_setfield(L, -2, "log");
	lua_pushliteral(L, SIPSTACK_VERSION);
	lua_setfield(L, -2, "version");
}
