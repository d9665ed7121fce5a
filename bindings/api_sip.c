/**
 * bindings/api_sip.c  The `sip` module scripts see
 *
 * Exposes to Lua: hook registration (sip.on_*), sip.configure/config,
 * sip.sleep, sip.send_message, sip.log.*, sip.stats, and the request
 * object handed to hooks. Every yielding function follows one shape:
 * start the operation and park the task (task->op, task->cleanup),
 * lua_yield; the libre callback pushes the results and calls
 * task_resume(); if the task dies first, cleanup detaches the operation
 * so the late callback touches nothing. Misuse raises an error; runtime
 * failure returns nil and a short lowercase string ("timeout").
 */
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <malloc.h>
#include <re.h>
#include "sipstack.h"
#include "core.h"
#include "runtime.h"


#define REQUEST_MT "sipstack.request"

struct lreq {
	struct stack_req *req;
};


static struct stack *script_stack(lua_State *L)
{
	struct script *sc = lua_script(L);

	return sc && sc->rt ? luart_stack((struct luart *)sc->rt) : NULL;
}


struct task *lua_need_task(lua_State *L, const char *fn)
{
	struct task *t = lua_task(L);

	if (!t)
		luaL_error(L, "%s: must be called from a hook (it yields), "
			   "not at load time or inside a coroutine of the "
			   "script's own", fn);

	return t;
}


static void need_loading(lua_State *L, const char *fn)
{
	struct script *sc = lua_script(L);

	if (!sc || !sc->loading)
		luaL_error(L, "%s: only allowed while the script loads "
			   "(at its top level)", fn);
}


/* ------------------------------------------------------------------ *
 * Hook registration
 * ------------------------------------------------------------------ */

int lua_set_hook(lua_State *L, enum lua_hook h)
{
	struct script *sc = lua_script(L);

	need_loading(L, lua_hook_names[h]);
	luaL_checktype(L, 1, LUA_TFUNCTION);

	if (sc->hooks[h] != LUA_NOREF)
		luaL_unref(L, LUA_REGISTRYINDEX, sc->hooks[h]);

	lua_pushvalue(L, 1);
	sc->hooks[h] = luaL_ref(L, LUA_REGISTRYINDEX);

	return 0;
}

static int l_on_call(lua_State *L)     { return lua_set_hook(L, LH_CALL); }
static int l_on_message(lua_State *L)  { return lua_set_hook(L, LH_MESSAGE); }
static int l_on_refer(lua_State *L)    { return lua_set_hook(L, LH_REFER); }
static int l_on_regres(lua_State *L)   { return lua_set_hook(L, LH_REGRESULT); }
static int l_on_dlgev(lua_State *L)    { return lua_set_hook(L, LH_DIALOG); }
static int l_on_register(lua_State *L) { return lua_set_hook(L, LH_REGISTER); }


/* sip.on_request(fn [, {"INFO", "OPTIONS", ...}]) */
static int l_on_request(lua_State *L)
{
	struct script *sc = lua_script(L);
	struct mbuf *mb;
	int i, n;

	lua_set_hook(L, LH_REQUEST);
	sc->req_methods = mem_deref(sc->req_methods);

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
	(void)mbuf_strdup(mb, &sc->req_methods, mb->end);
	mem_deref(mb);

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


/* sip.configure{user_agent=, local_ip=, udp_port=, tcp_port=,
 * tls_port=, max_forwards=, t1=, t2=, t4=} */
static int l_configure(lua_State *L)
{
	struct script *sc = lua_script(L);
	struct stack_config cfg;

	need_loading(L, "configure");
	luaL_checktype(L, 1, LUA_TTABLE);
	cfg = sc->cfg;

	lua_pushnil(L);
	while (lua_next(L, 1)) {
		const char *k = lua_type(L, -2) == LUA_TSTRING ?
			lua_tostring(L, -2) : NULL;

		if (!k)
			return luaL_error(L, "configure: keys must be "
					  "strings");

		if (!strcmp(k, "user_agent"))
			cfg_str(L, k, cfg.user_agent, sizeof(cfg.user_agent));
		else if (!strcmp(k, "local_ip"))
			cfg_str(L, k, cfg.local_ip, sizeof(cfg.local_ip));
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
		else
			return luaL_error(L, "configure: unknown key '%s'",
					  k);
		lua_pop(L, 1);
	}

	if (cfg.t2 < cfg.t1)
		return luaL_error(L, "configure: t2 (%d) must not be below "
				  "t1 (%d)", (int)cfg.t2, (int)cfg.t1);

	sc->cfg = cfg;

	return 0;
}


static int l_config(lua_State *L)
{
	struct stack *st = script_stack(L);
	const struct stack_config *cfg = st ? stack_config(st) :
		&lua_script(L)->cfg;

	lua_createtable(L, 0, 9);
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

	return 1;
}


/* sip.local_uri() -> "sip:sipstack@ip:port" of our first listener */
static int l_local_uri(lua_State *L)
{
	struct stack *st = script_stack(L);
	char buf[256];

	if (!st || stack_local_uri(st, SIP_TRANSP_NONE, buf, sizeof(buf))) {
		lua_pushnil(L);
		return 1;
	}

	lua_pushstring(L, buf);

	return 1;
}


static int l_stats(lua_State *L)
{
	struct stack *st = script_stack(L);
	struct stack_stats s;

	memset(&s, 0, sizeof(s));
	stack_stats(st, &s);

	lua_createtable(L, 0, 6);
#define SETN(f) lua_pushnumber(L, (lua_Number)s.f); lua_setfield(L, -2, #f)
	SETN(requests);
	SETN(responses);
	SETN(bad_requests);
	SETN(replies);
	SETN(hook_errors);
#undef SETN
	lua_pushnumber(L, st ? dialog_table_count(stack_dialogs(st)) : 0);
	lua_setfield(L, -2, "dialogs");
	lua_pushnumber(L, st ? callmgr_count(st) : 0);
	lua_setfield(L, -2, "calls");
	{
		/* heap in use (glibc): returns to its baseline when every
		 * call is freed, unlike RSS */
		struct mallinfo2 mi = mallinfo2();

		lua_pushnumber(L, (lua_Number)mi.uordblks);
		lua_setfield(L, -2, "heap_bytes");
	}
	lua_pushnumber(L, (lua_Number)lua_gc(L, LUA_GCCOUNT, 0) * 1024 +
		       lua_gc(L, LUA_GCCOUNTB, 0));
	lua_setfield(L, -2, "lua_bytes");

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
	struct task *t;
	const struct sip_msg *m = NULL;
	const char *msg;
	char src[256];
	int line;

	if (!log_enabled(lvl))
		return 0;

	msg = luaL_checkstring(L, 1);
	if (!lua_isnoneornil(L, 2))
		luaL_checktype(L, 2, LUA_TTABLE);

	t = lua_task(L);
	if (t && t->req)
		m = stack_req_msg(t->req);

	line = lua_src_line(L, src, sizeof(src));
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
 * sip.sleep(seconds)
 * ------------------------------------------------------------------ */

static void sleep_done(void *arg)
{
	struct task *t = arg;

	task_resume(t, 0);
}


static int l_sleep(lua_State *L)
{
	struct task *t = lua_need_task(L, "sleep");
	lua_Number s = luaL_checknumber(L, 1);

	if (!(s >= 0) || s > 86400)
		return luaL_argerror(L, 1, "seconds must be in 0..86400");

	tmr_start(&t->tmr, (uint64_t)(s * 1000 + 0.5), sleep_done, t);

	return lua_yield(L, 0);
}


/* ------------------------------------------------------------------ *
 * sip.send_message(to, content_type, body [, headers])
 * ------------------------------------------------------------------ */

static const char *err_string(int err)
{
	switch (err) {
	case ETIMEDOUT:      return "timeout";
	case ECONNREFUSED:   return "refused";
	case ECANCELED:      return "cancelled";
	case ESHUTDOWN:      return "shutdown";
	case EPROTONOSUPPORT: return "transport not supported";
	case EDESTADDRREQ:   return "no address";
	case ENOENT:         return "not found";
	default:             return "failed";
	}
}


static void msg_resp_handler(int err, const struct sip_msg *msg, void *arg)
{
	struct task *t = taskop_finish(arg);

	if (!t)
		return;

	if (err || !msg) {
		lua_pushnil(t->co);
		lua_pushstring(t->co, err_string(err ? err : EPROTO));
	}
	else {
		lua_pushinteger(t->co, msg->scode);
		lua_pushlstring(t->co, msg->reason.p, msg->reason.l);
	}

	task_resume(t, 2);
}


int lua_headers_encode(lua_State *L, int idx, char **hdrs)
{
	const char *s;
	size_t len;

	*hdrs = NULL;
	if (lua_isnoneornil(L, idx))
		return 0;

	if (idx < 0)
		idx = lua_gettop(L) + idx + 1;

	luaL_checktype(L, idx, LUA_TTABLE);

	lua_require_module(L, "sipstack.headers");
	lua_getfield(L, -1, "encode");
	lua_pushvalue(L, idx);
	lua_call(L, 1, 1);   /* raises on bad headers */

	s = lua_tolstring(L, -1, &len);
	if (s && len) {
		char *p = mem_alloc(len + 1, NULL);
		if (!p)
			return luaL_error(L, "out of memory");
		memcpy(p, s, len + 1);
		*hdrs = p;
	}
	lua_pop(L, 2);

	return 0;
}


static int l_send_message(lua_State *L)
{
	struct task *t = lua_need_task(L, "send_message");
	struct stack *st = script_stack(L);
	const char *to = luaL_checkstring(L, 1);
	const char *ctype = luaL_checkstring(L, 2);
	size_t len;
	const char *body = luaL_checklstring(L, 3, &len);
	char *hdrs = NULL;
	struct taskop *op;
	int err;

	if (strncmp(to, "sip:", 4) && strncmp(to, "sips:", 5))
		return luaL_argerror(L, 1, "SIP URI expected");
	if (strpbrk(to, "\r\n") || strpbrk(ctype, "\r\n") || !*ctype)
		return luaL_argerror(L, 2, "invalid content type");

	lua_headers_encode(L, 4, &hdrs);

	if (!st) {
		mem_deref(hdrs);
		lua_pushnil(L);
		lua_pushstring(L, "shutdown");
		return 2;
	}

	op = taskop_new(t);
	if (!op) {
		mem_deref(hdrs);
		return luaL_error(L, "out of memory");
	}

	err = stack_send_message(st, to, NULL, ctype, (const uint8_t *)body,
				 len, hdrs, msg_resp_handler, op);
	mem_deref(hdrs);
	if (err) {
		mem_deref(op);
		lua_pushnil(L);
		lua_pushstring(L, err == EINVAL ? "invalid uri" :
			       err_string(err));
		return 2;
	}

	taskop_attach(op);

	return lua_yield(L, 0);
}


/* ------------------------------------------------------------------ *
 * The request object
 * ------------------------------------------------------------------ */

struct stack_req *lua_check_request(lua_State *L, int idx)
{
	struct lreq *lr = luaL_checkudata(L, idx, REQUEST_MT);

	return lr->req;
}


static const char *compact_full(const struct pl *name)
{
	static const char *map[26] = {
		['a' - 'a'] = "accept-contact", ['b' - 'a'] = "referred-by",
		['c' - 'a'] = "content-type", ['d' - 'a'] =
		"request-disposition", ['e' - 'a'] = "content-encoding",
		['f' - 'a'] = "from", ['i' - 'a'] = "call-id",
		['j' - 'a'] = "reject-contact", ['k' - 'a'] = "supported",
		['l' - 'a'] = "content-length", ['m' - 'a'] = "contact",
		['o' - 'a'] = "event", ['r' - 'a'] = "refer-to",
		['s' - 'a'] = "subject", ['t' - 'a'] = "to",
		['u' - 'a'] = "allow-events", ['v' - 'a'] = "via",
		['x' - 'a'] = "session-expires", ['y' - 'a'] = "identity",
	};
	char c;

	if (name->l != 1)
		return NULL;

	c = (char)(name->p[0] | 0x20);
	if (c < 'a' || c > 'z')
		return NULL;

	return map[c - 'a'];
}


static bool hdr_name_eq(const struct pl *a, const struct pl *b)
{
	const char *fa = compact_full(a), *fb = compact_full(b);
	struct pl pa = *a, pb = *b;

	if (fa)
		pl_set_str(&pa, fa);
	if (fb)
		pl_set_str(&pb, fb);

	return 0 == pl_casecmp(&pa, &pb);
}


/* req:header(name) -> first value or nil; req:headers(name) -> list */
static int header_values(lua_State *L, bool all)
{
	const struct sip_msg *msg = stack_req_msg(lua_check_request(L, 1));
	struct pl name;
	struct le *le;
	int n = 0;

	pl_set_str(&name, luaL_checkstring(L, 2));
	if (all)
		lua_newtable(L);

	for (le = msg->hdrl.head; le; le = le->next) {
		const struct sip_hdr *hdr = le->data;

		if (!hdr_name_eq(&hdr->name, &name))
			continue;

		lua_pushlstring(L, hdr->val.p, hdr->val.l);
		if (!all)
			return 1;
		lua_rawseti(L, -2, ++n);
	}

	if (!all)
		lua_pushnil(L);

	return 1;
}

static int l_req_header(lua_State *L)  { return header_values(L, false); }
static int l_req_headers(lua_State *L) { return header_values(L, true); }


/* req:reply(code [, reason [, headers [, body [, content_type]]]]) */
static int l_req_reply(lua_State *L)
{
	struct stack_req *req = lua_check_request(L, 1);
	lua_Number n = luaL_checknumber(L, 2);
	const char *reason = luaL_optstring(L, 3, NULL);
	size_t len = 0;
	const char *body = luaL_optlstring(L, 5, NULL, &len);
	const char *ctype = luaL_optstring(L, 6, NULL);
	char *hdrs = NULL;
	uint16_t code = (uint16_t)n;
	int err;

	if (n != (lua_Number)code || code < 100 || code > 699)
		return luaL_argerror(L, 2, "status code 100..699 expected");
	if (reason && strpbrk(reason, "\r\n"))
		return luaL_argerror(L, 3, "reason holds CR or LF");
	if (body && len && !ctype)
		return luaL_argerror(L, 6, "a body needs a content type");
	if (ctype && strpbrk(ctype, "\r\n"))
		return luaL_argerror(L, 6, "invalid content type");

	lua_headers_encode(L, 4, &hdrs);

	err = stack_req_reply(req, code, reason ? reason : "OK", hdrs, ctype,
			      (const uint8_t *)body, len);
	mem_deref(hdrs);

	if (err) {
		lua_pushnil(L);
		lua_pushstring(L, err == EALREADY ? "already answered" :
			       err_string(err));
		return 2;
	}

	lua_pushboolean(L, 1);

	return 1;
}


static int push_pl(lua_State *L, const struct pl *pl)
{
	if (pl_isset(pl))
		lua_pushlstring(L, pl->p, pl->l);
	else
		lua_pushnil(L);

	return 1;
}


static int l_req_index(lua_State *L)
{
	const struct sip_msg *msg = stack_req_msg(lua_check_request(L, 1));
	const char *k = luaL_checkstring(L, 2);
	char buf[128];

	if (!strcmp(k, "method"))       return push_pl(L, &msg->met);
	if (!strcmp(k, "uri"))          return push_pl(L, &msg->ruri);
	if (!strcmp(k, "from"))         return push_pl(L, &msg->from.auri);
	if (!strcmp(k, "to"))           return push_pl(L, &msg->to.auri);
	if (!strcmp(k, "from_tag"))     return push_pl(L, &msg->from.tag);
	if (!strcmp(k, "to_tag"))       return push_pl(L, &msg->to.tag);
	if (!strcmp(k, "from_name"))    return push_pl(L, &msg->from.dname);
	if (!strcmp(k, "call_id"))      return push_pl(L, &msg->callid);
	if (!strcmp(k, "content_type")) {
		if (!pl_isset(&msg->ctyp.type))
			return push_pl(L, NULL);
		{
			const struct sip_hdr *h =
				sip_msg_hdr(msg, SIP_HDR_CONTENT_TYPE);
			return push_pl(L, h ? &h->val : NULL);
		}
	}
	if (!strcmp(k, "body")) {
		struct pl body;

		stack_msg_body(msg, &body);
		lua_pushlstring(L, body.p, body.l);
		return 1;
	}
	if (!strcmp(k, "cseq")) {
		lua_pushnumber(L, msg->cseq.num);
		return 1;
	}
	if (!strcmp(k, "source")) {
		(void)re_snprintf(buf, sizeof(buf), "%J", &msg->src);
		lua_pushstring(L, buf);
		return 1;
	}
	if (!strcmp(k, "transport")) {
		lua_pushstring(L, sip_transp_name(msg->tp));
		return 1;
	}

	/* methods */
	lua_getmetatable(L, 1);
	lua_getfield(L, -1, k);

	return 1;
}


static int l_req_gc(lua_State *L)
{
	struct lreq *lr = luaL_checkudata(L, 1, REQUEST_MT);

	lr->req = mem_deref(lr->req);

	return 0;
}


static int l_req_tostring(lua_State *L)
{
	const struct sip_msg *msg = stack_req_msg(lua_check_request(L, 1));

	lua_pushfstring(L, "sip request %s (%s)",
			msg ? "" : "?", msg ? "" : "?");
	if (msg) {
		lua_pop(L, 1);
		lua_pushlstring(L, msg->met.p, msg->met.l);
		lua_pushstring(L, " ");
		lua_pushlstring(L, msg->ruri.p, msg->ruri.l);
		lua_concat(L, 3);
	}

	return 1;
}


void lua_push_request(lua_State *L, struct stack_req *req)
{
	struct lreq *lr = lua_newuserdata(L, sizeof(*lr));

	lr->req = stack_req_ref(req);
	luaL_getmetatable(L, REQUEST_MT);
	lua_setmetatable(L, -2);
}


/* ------------------------------------------------------------------ *
 * Module
 * ------------------------------------------------------------------ */

int luaopen_sip(lua_State *L)
{
	static const luaL_Reg req_methods[] = {
		{"reply",   l_req_reply},
		{"header",  l_req_header},
		{"headers", l_req_headers},
		{"__index", l_req_index},
		{"__gc",    l_req_gc},
		{"__tostring", l_req_tostring},
		{NULL, NULL}
	};
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
		{"sleep",                  l_sleep},
		{"send_message",           l_send_message},
		{"spawn",                  lua_spawn},
		{"register",               l_register},
		{"unregister",             l_unregister},
		{NULL, NULL}
	};
	static const luaL_Reg log_funcs[] = {
		{"debug", l_log_debug},
		{"info",  l_log_info},
		{"warn",  l_log_warn},
		{"error", l_log_error},
		{NULL, NULL}
	};

	luaL_newmetatable(L, REQUEST_MT);
	luaL_setfuncs(L, req_methods, 0);
	lua_pushliteral(L, "sipstack.request");
	lua_setfield(L, -2, "__metatable");
	lua_pop(L, 1);

	luaL_newlib(L, sip_funcs);
	luaL_newlib(L, log_funcs);
	lua_setfield(L, -2, "log");
	lua_pushliteral(L, SIPSTACK_VERSION);
	lua_setfield(L, -2, "version");
	lua_registrar_open(L);
	lua_call_open(L);

	return 1;
}
