/**
 * bindings/runtime.c  Script generations, sandbox and hook tasks
 *
 * Owns struct luart (the runtime: the current script generation) and
 * struct script / struct task (see runtime.h). Exposes luart_*() in
 * core.h to the program. Uses the stack's hooks to receive requests and
 * api_sip.c for the `sip` module the scripts see.
 *
 * Sandbox (documented in docs/lua-api.md): a script runs in its own
 * environment table holding an allow-list of the standard library. It
 * has no io, no os beyond time/clock/date/difftime, no debug, ffi or jit,
 * no load/loadstring/dofile/loadfile, no string.dump and no bytecode.
 * `require` loads only the built-in sipstack modules and .lua files next
 * to the script (text mode, same sandbox). print() writes to the log.
 * Nothing a script can call blocks the loop except its own CPU time:
 * waiting is done with sip.sleep() and the other yielding sip.* calls.
 */
#include <string.h>
#include <stdlib.h>
#include <re.h>
#include "sipstack.h"
#include "core.h"
#include "runtime.h"

#include "sipstack_headers_bc.h"
#include "sipstack_sdp_bc.h"


const char *lua_hook_names[LH_MAX] = {
	"on_incoming_call",
	"on_incoming_message",
	"on_incoming_refer",
	"on_registration_result",
	"on_dialog_event",
	"on_request",
	"on_register",
	"spawn",
};

struct luart {
	struct stack *st;
	struct regsvc *regsvc;   /* registrar, store and auth, or NULL */
	struct script *cur;
	struct list scripts;     /* every live generation */
	char *path;
	uint32_t gen;
	luart_cfg_h *cfgh;
	void *cfg_arg;
	struct list regs;        /* api_register.c's registrations */
};

static const char KEY_SCRIPT = 's';   /* registry: lightuserdata script */
static const char KEY_TASKS  = 't';   /* registry: thread -> task       */
static const char KEY_ENV    = 'e';   /* registry: sandbox environment  */
static const char KEY_LOADED = 'l';   /* registry: required modules     */
static const char KEY_SPAWNS = 'p';   /* registry: spawns made at load  */

static const struct {
	const char *name;
	const unsigned char *bc;
	size_t size;
} builtin_modules[] = {
	{"sipstack.headers", luaJIT_BC_sipstack_headers,
	 luaJIT_BC_sipstack_headers_SIZE},
	{"sipstack.sdp", luaJIT_BC_sipstack_sdp, luaJIT_BC_sipstack_sdp_SIZE},
};


static void runtime_set_hooks(struct luart *rt);


/* ------------------------------------------------------------------ *
 * Helpers
 * ------------------------------------------------------------------ */

static void regkey_get(lua_State *L, const char *key)
{
	lua_pushlightuserdata(L, (void *)key);
	lua_rawget(L, LUA_REGISTRYINDEX);
}


struct script *lua_script(lua_State *L)
{
	struct script *sc;

	regkey_get(L, &KEY_SCRIPT);
	sc = lua_touserdata(L, -1);
	lua_pop(L, 1);

	return sc;
}


struct task *lua_task(lua_State *L)
{
	struct task *t;

	regkey_get(L, &KEY_TASKS);
	if (lua_pushthread(L)) {     /* the main thread is no task */
		lua_pop(L, 2);
		return NULL;
	}
	lua_rawget(L, -2);
	t = lua_touserdata(L, -1);
	lua_pop(L, 2);

	return t;
}


/*
 * Where a script is: "file:line" of the innermost Lua function on L's
 * stack (works on a coroutine that died with an error, whose stack is
 * kept). Returns the line, 0 if there is no Lua frame.
 */
int lua_src_line(lua_State *L, char *buf, size_t sz)
{
	lua_Debug ar;
	int level;

	for (level = 0; lua_getstack(L, level, &ar); level++) {
		if (!lua_getinfo(L, "Sl", &ar))
			continue;
		if (ar.currentline > 0 && ar.source[0] == '@') {
			/* the full name, not short_src (cut to 60 chars) */
			str_ncpy(buf, ar.source + 1, sz);
			return ar.currentline;
		}
	}

	if (sz)
		buf[0] = '\0';

	return 0;
}


/*
 * LuaJIT writes a chunk name longer than 60 characters as "...tail" in
 * error messages. When the tail is the end of path, push the message
 * with the full path (and return it); else return msg as it is.
 */
static const char *full_msg(lua_State *L, const char *path,
			    const char *msg)
{
	size_t plen, t;
	const char *c;

	if (!path || !msg || strncmp(msg, "...", 3))
		return msg;

	for (c = msg + 3; (c = strchr(c, ':')); c++) {
		if (c[1] >= '0' && c[1] <= '9')
			break;
	}
	if (!c)
		return msg;

	plen = strlen(path);
	t = (size_t)(c - (msg + 3));
	if (t > plen || memcmp(path + plen - t, msg + 3, t))
		return msg;

	lua_pushfstring(L, "%s%s", path, c);

	return lua_tostring(L, -1);
}


/* Split "file:line: message" (Lua's own error form) */
static bool split_pos(const char *msg, char *file, size_t fsz, int *line,
		      const char **rest)
{
	struct pl f, l, r;

	if (!msg || re_regex(msg, strlen(msg), "[^:]+:[0-9]+: [^]*",
			     &f, &l, &r))
		return false;
	if (f.p != msg)
		return false;

	(void)pl_strcpy(&f, file, fsz);
	*line = pl_u32(&l);
	*rest = r.p;

	return true;
}


/* ------------------------------------------------------------------ *
 * Sandbox
 * ------------------------------------------------------------------ */

static int l_print(lua_State *L)
{
	char src[256];
	struct mbuf *mb = mbuf_alloc(128);
	int i, n = lua_gettop(L), line;

	if (!mb)
		return luaL_error(L, "out of memory");

	for (i = 1; i <= n; i++) {
		const char *s;

		lua_getglobal(L, "tostring");
		lua_pushvalue(L, i);
		lua_call(L, 1, 1);
		s = lua_tostring(L, -1);
		(void)mbuf_printf(mb, "%s%s", i > 1 ? "\t" : "", s ? s : "");
		lua_pop(L, 1);
	}

	line = lua_src_line(L, src, sizeof(src));
	slog(LOG_INFO, "script", "print", NULL, "src=%H:%d msg=%H",
	     log_q, src, line, log_qpl,
	     &(struct pl){(const char *)mb->buf, mb->end});
	mem_deref(mb);

	return 0;
}


/* Load a chunk into the sandbox environment and run it (the module
 * value is left on the stack). */
static int run_module(lua_State *L, const char *name)
{
	regkey_get(L, &KEY_ENV);
	lua_setfenv(L, -2);
	lua_pushstring(L, name);
	lua_call(L, 1, 1);

	if (lua_isnil(L, -1)) {
		lua_pop(L, 1);
		lua_pushboolean(L, 1);
	}

	return 1;
}


static bool module_name_ok(const char *n)
{
	size_t i;

	if (!n[0] || n[0] == '.')
		return false;

	for (i = 0; n[i]; i++) {
		const char c = n[i];
		if (!(c == '_' || c == '-' || (c == '.' && n[i + 1] != '.') ||
		      (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9')))
			return false;
	}

	return true;
}


static int l_require(lua_State *L)
{
	const char *name = luaL_checkstring(L, 1);
	struct script *sc = lua_script(L);
	char path[512], *slash;
	size_t i;

	regkey_get(L, &KEY_LOADED);
	lua_getfield(L, -1, name);
	if (!lua_isnil(L, -1))
		return 1;
	lua_pop(L, 1);

	for (i = 0; i < ARRAY_SIZE(builtin_modules); i++) {
		if (strcmp(name, builtin_modules[i].name))
			continue;
		if (luaL_loadbufferx(L, (const char *)builtin_modules[i].bc,
				     builtin_modules[i].size, name, "b"))
			return lua_error(L);
		goto loaded;
	}

	if (!module_name_ok(name))
		return luaL_error(L, "module '%s' not allowed", name);

	/* a .lua file next to the script, dots as directories */
	str_ncpy(path, sc->path, sizeof(path));
	slash = strrchr(path, '/');
	if (slash)
		slash[1] = '\0';
	else
		path[0] = '\0';
	i = strlen(path);
	if (re_snprintf(path + i, sizeof(path) - i, "%s.lua", name) < 0)
		return luaL_error(L, "module name too long");
	for (; path[i]; i++) {
		if (path[i] == '.' && strcmp(path + i, ".lua"))
			path[i] = '/';
	}

	if (luaL_loadfilex(L, path, "t"))
		return luaL_error(L, "module '%s' not found or not loadable:"
				  " %s", name, lua_tostring(L, -1));
 loaded:
	run_module(L, name);
	lua_pushvalue(L, -1);
	lua_setfield(L, -3, name);

	return 1;
}


/* push require(name) as the sandbox would do it */
void lua_require_module(lua_State *L, const char *name)
{
	lua_pushcfunction(L, l_require);
	lua_pushstring(L, name);
	lua_call(L, 1, 1);
}


static void copy_fields(lua_State *L, const char *lib, const char **names)
{
	/* env is at -1 */
	lua_newtable(L);
	lua_getglobal(L, lib);
	for (; *names; names++) {
		lua_getfield(L, -1, *names);
		lua_setfield(L, -3, *names);
	}
	lua_pop(L, 1);
	lua_setfield(L, -2, lib);
}


static void sandbox_build(lua_State *L)
{
	static const char *base[] = {
		"assert", "error", "ipairs", "pairs", "next", "pcall",
		"xpcall", "select", "tonumber", "tostring", "type", "unpack",
		"rawget", "rawset", "rawequal", "setmetatable",
		"getmetatable", "_VERSION", NULL
	};
	static const char *os_ok[] = {"time", "clock", "date", "difftime",
				      NULL};
	static const char *co_ok[] = {"create", "resume", "status", "wrap",
				      "yield", NULL};
	static const char *bit_ok[] = {"band", "bor", "bxor", "bnot",
				       "lshift", "rshift", "arshift", "rol",
				       "ror", "tobit", "tohex", "bswap",
				       NULL};
	const char **p;

	/* no bytecode out of the sandbox, even through ("").dump */
	lua_getglobal(L, "string");
	lua_pushnil(L);
	lua_setfield(L, -2, "dump");
	lua_pop(L, 1);

	lua_newtable(L);   /* env */
	for (p = base; *p; p++) {
		lua_getglobal(L, *p);
		lua_setfield(L, -2, *p);
	}

	lua_getglobal(L, "string");
	lua_setfield(L, -2, "string");
	lua_getglobal(L, "table");
	lua_setfield(L, -2, "table");
	lua_getglobal(L, "math");
	lua_setfield(L, -2, "math");
	copy_fields(L, "os", os_ok);
	copy_fields(L, "coroutine", co_ok);
	copy_fields(L, "bit", bit_ok);

	lua_pushcfunction(L, l_print);
	lua_setfield(L, -2, "print");
	lua_pushcfunction(L, l_require);
	lua_setfield(L, -2, "require");

	lua_pushvalue(L, -1);
	lua_setfield(L, -2, "_G");

	/* the sip module, also reachable as require "sipstack" */
	regkey_get(L, &KEY_LOADED);
	luaopen_sip(L);
	lua_pushvalue(L, -1);
	lua_setfield(L, -3, "sipstack");
	lua_pushvalue(L, -1);
	lua_setfield(L, -3, "sip");
	lua_setfield(L, -3, "sip");   /* env.sip */
	lua_pop(L, 1);

	lua_pushlightuserdata(L, (void *)&KEY_ENV);
	lua_insert(L, -2);
	lua_rawset(L, LUA_REGISTRYINDEX);
}


/* ------------------------------------------------------------------ *
 * Script generations
 * ------------------------------------------------------------------ */

static void task_free(struct task *t);


static void script_destructor(void *arg)
{
	struct script *sc = arg;
	struct le *le;

	sc->closing = true;
	list_unlink(&sc->le);

	/* only reached when no task holds the script, but be safe */
	while ((le = list_head(&sc->tasks)))
		task_free(le->data);

	if (sc->L)
		lua_close(sc->L);

	slog(LOG_DEBUG, "lua", "closed", NULL, "gen=%u", sc->gen);
	mem_deref(sc->path);
	mem_deref(sc->req_methods);
	mem_deref(sc->regconf);
}


/* message handler of the top-level pcall: add the position when the
 * error has none, and keep a traceback for the debug log */
static int load_msgh(lua_State *L)
{
	const char *msg = lua_tostring(L, 1);
	char file[256], src[256];
	const char *rest;
	int line;

	if (!msg) {
		lua_pushfstring(L, "(error object is a %s value)",
				luaL_typename(L, 1));
		msg = lua_tostring(L, -1);
	}

	if (!split_pos(msg, file, sizeof(file), &line, &rest)) {
		line = 0;
		{
			lua_Debug ar;
			int level;
			for (level = 1; lua_getstack(L, level, &ar); level++) {
				lua_getinfo(L, "Sl", &ar);
				if (ar.currentline > 0 && ar.source[0] == '@') {
					str_ncpy(src, ar.source + 1,
						 sizeof(src));
					line = ar.currentline;
					break;
				}
			}
		}
		if (line)
			lua_pushfstring(L, "%s:%d: %s", src, line, msg);
		else
			lua_pushstring(L, msg);
		return 1;
	}

	lua_pushstring(L, msg);

	return 1;
}


static int script_load(struct script **scp, struct luart *rt,
		       const char *path, const struct stack_config *base,
		       char *errbuf, size_t errsz)
{
	struct script *sc;
	lua_State *L;
	int err = 0, i;

	sc = mem_zalloc(sizeof(*sc), script_destructor);
	if (!sc)
		return ENOMEM;

	for (i = 0; i < LH_MAX; i++)
		sc->hooks[i] = LUA_NOREF;
	sc->rt = rt;
	sc->cfg = *base;
	err = str_dup(&sc->path, path);
	if (err)
		goto out;

	sc->L = L = luaL_newstate();
	if (!L) {
		err = ENOMEM;
		goto out;
	}

	luaL_openlibs(L);

	lua_pushlightuserdata(L, (void *)&KEY_SCRIPT);
	lua_pushlightuserdata(L, sc);
	lua_rawset(L, LUA_REGISTRYINDEX);

	lua_pushlightuserdata(L, (void *)&KEY_TASKS);
	lua_newtable(L);
	lua_rawset(L, LUA_REGISTRYINDEX);

	lua_pushlightuserdata(L, (void *)&KEY_LOADED);
	lua_newtable(L);
	lua_rawset(L, LUA_REGISTRYINDEX);

	sandbox_build(L);

	lua_pushcfunction(L, load_msgh);
	if (luaL_loadfilex(L, path, "t")) {
		(void)re_snprintf(errbuf, errsz, "%s",
				  full_msg(L, path, lua_tostring(L, -1)));
		err = EINVAL;
		goto out;
	}

	regkey_get(L, &KEY_ENV);
	lua_setfenv(L, -2);

	sc->loading = true;
	if (lua_pcall(L, 0, 0, -2)) {
		sc->loading = false;
		(void)re_snprintf(errbuf, errsz, "%s",
				  full_msg(L, path, lua_tostring(L, -1)));
		err = EINVAL;
		goto out;
	}
	sc->loading = false;
	lua_pop(L, 1);

	/* Hooks may also be global functions of the script */
	regkey_get(L, &KEY_ENV);
	for (i = 0; i < LH_SPAWN; i++) {
		lua_getfield(L, -1, lua_hook_names[i]);
		if (lua_isnil(L, -1)) {
			lua_pop(L, 1);
			continue;
		}
		if (!lua_isfunction(L, -1)) {
			(void)re_snprintf(errbuf, errsz, "%s: global '%s' is "
					  "a %s, not a function", path,
					  lua_hook_names[i],
					  luaL_typename(L, -1));
			err = EINVAL;
			goto out;
		}
		if (sc->hooks[i] != LUA_NOREF) {
			lua_pop(L, 1);
			continue;
		}
		sc->hooks[i] = luaL_ref(L, LUA_REGISTRYINDEX);
	}
	lua_pop(L, 1);

 out:
	if (err)
		mem_deref(sc);
	else
		*scp = sc;

	return err;
}


/* ------------------------------------------------------------------ *
 * Tasks: one coroutine per hook invocation
 * ------------------------------------------------------------------ */

static void task_free(struct task *t)
{
	struct script *sc = t->sc;
	lua_State *L = sc->L;

	list_unlink(&t->le);
	tmr_cancel(&t->tmr);
	if (t->cleanup)
		t->cleanup(t);

	/* drop the anchor; a stale thread can never find this task */
	regkey_get(L, &KEY_TASKS);
	lua_pushthread(t->co);
	lua_xmove(t->co, L, 1);
	lua_pushnil(L);
	lua_rawset(L, -3);
	lua_pop(L, 1);

	mem_deref(t->req);
	mem_deref(t->ctx);
	mem_deref(t);
	mem_deref(sc);
}


static void hook_failed(struct task *t)
{
	lua_State *co = t->co;
	const char *msg = lua_tostring(co, -1);
	const struct sip_msg *m = t->req ? stack_req_msg(t->req) : NULL;
	char file[256];
	const char *rest = NULL;
	int line;

	if (!msg)
		msg = "(error object is not a string)";
	msg = full_msg(co, t->sc->path, msg);

	if (!split_pos(msg, file, sizeof(file), &line, &rest)) {
		line = lua_src_line(co, file, sizeof(file));
		rest = msg;
	}

	slog(LOG_ERROR, "lua", "hook_error", m ? &m->callid :
	     pl_isset(&t->callid) ? &t->callid : NULL,
	     "hook=%s script=%H line=%d gen=%u err=%H",
	     lua_hook_names[t->kind], log_q, file, line, t->sc->gen,
	     log_q, rest);

	if (t->endh) {
		t->endh(t, true, 0);
		return;
	}

	if (log_enabled(LOG_DEBUG)) {
		luaL_traceback(t->sc->L, co, msg, 0);
		slog(LOG_DEBUG, "lua", "traceback", NULL, "trace=%H", log_q,
		     lua_tostring(t->sc->L, -1));
		lua_pop(t->sc->L, 1);
	}

	if (t->req) {
		stack_note_hook_error(stack_req_stack(t->req));
		if (!stack_req_answered(t->req))
			(void)stack_req_reply(t->req, 500,
					      "Server Internal Error", NULL,
					      NULL, NULL, 0);
	}
}


/* The hook returned: its values decide the answer if it gave none */
static void hook_returned(struct task *t, int nres)
{
	lua_State *co = t->co;
	struct stack_req *req = t->req;

	if (t->endh) {
		t->endh(t, false, nres);
		return;
	}

	if (!req || stack_req_answered(req))
		return;

	if (nres >= 1 && lua_type(co, 1) == LUA_TNUMBER) {
		lua_Number n = lua_tonumber(co, 1);
		const char *reason = lua_tostring(co, 2);
		uint16_t code = (uint16_t)n;

		if (n != (lua_Number)code || code < 200 || code > 699) {
			lua_pushfstring(co, "%s: invalid status code %f "
					"returned", t->sc->path, n);
			hook_failed(t);
			return;
		}

		(void)stack_req_reply(req, code, reason ? reason :
				      stack_reason_phrase(code), NULL, NULL, NULL,
				      0);
		return;
	}

	if (nres == 0 || lua_isnil(co, 1) || lua_type(co, 1) == LUA_TBOOLEAN) {
		if (t->kind == LH_MESSAGE)
			(void)stack_req_reply(req, 200, "OK", NULL, NULL,
					      NULL, 0);
		else
			(void)stack_req_default(req);
		return;
	}

	lua_pushfstring(co, "%s: hook returned a %s (expected nothing, or "
			"a status code and reason)", t->sc->path,
			luaL_typename(co, 1));
	hook_failed(t);
}


struct taskop {
	struct task *t;      /* NULL once the task died */
};


static void taskop_detach(struct task *t)
{
	struct taskop *op = t->op;

	if (op)
		op->t = NULL;
	t->op = NULL;
}


struct taskop *taskop_new(struct task *t)
{
	struct taskop *op = mem_zalloc(sizeof(*op), NULL);

	if (op)
		op->t = t;

	return op;
}


void taskop_attach(struct taskop *op)
{
	op->t->op = op;
	op->t->cleanup = taskop_detach;
}


struct task *taskop_finish(struct taskop *op)
{
	struct task *t = op->t;

	mem_deref(op);
	if (!t)
		return NULL;

	t->op = NULL;
	t->cleanup = NULL;

	return t;
}


void task_resume(struct task *t, int nargs)
{
	int status;

	t->in_resume = true;
	status = lua_resume(t->co, nargs);
	t->in_resume = false;

	if (status == LUA_YIELD) {
		if (t->op || tmr_isrunning(&t->tmr))
			return;

		lua_pushstring(t->co, "hook yielded outside a sip.* call "
			       "(coroutine.yield in a hook is not allowed)");
		hook_failed(t);
	}
	else if (status == 0) {
		hook_returned(t, lua_gettop(t->co));
	}
	else {
		hook_failed(t);
	}

	task_free(t);
}


struct task *lua_task_new(struct script *sc, enum lua_hook kind,
			  struct stack_req *req)
{
	lua_State *L = sc->L;
	struct task *t;

	t = mem_zalloc(sizeof(*t), NULL);
	if (!t)
		return NULL;

	t->sc   = mem_ref(sc);
	t->kind = kind;
	t->req  = req ? stack_req_ref(req) : NULL;
	tmr_init(&t->tmr);
	list_append(&sc->tasks, &t->le, t);

	regkey_get(L, &KEY_TASKS);
	t->co = lua_newthread(L);
	lua_pushlightuserdata(L, t);
	lua_rawset(L, -3);
	lua_pop(L, 1);

	return t;
}


/* sip.spawn(fn, ...): run fn(...) in a task of its own. At load time
 * the start waits until the script is active, so a script that fails
 * to load leaves nothing running. */
int lua_spawn(lua_State *L)
{
	struct script *sc = lua_script(L);
	int n = lua_gettop(L), i;
	struct task *t;

	luaL_checktype(L, 1, LUA_TFUNCTION);

	if (sc->loading || !sc->rt) {
		regkey_get(L, &KEY_SPAWNS);
		if (lua_isnil(L, -1)) {
			lua_pop(L, 1);
			lua_newtable(L);
			lua_pushlightuserdata(L, (void *)&KEY_SPAWNS);
			lua_pushvalue(L, -2);
			lua_rawset(L, LUA_REGISTRYINDEX);
		}
		lua_createtable(L, n, 1);
		for (i = 1; i <= n; i++) {
			lua_pushvalue(L, i);
			lua_rawseti(L, -2, i);
		}
		lua_pushinteger(L, n);
		lua_setfield(L, -2, "n");
		lua_rawseti(L, -2, (int)lua_objlen(L, -2) + 1);
		return 0;
	}

	t = lua_task_new(sc, LH_SPAWN, NULL);
	if (!t)
		return luaL_error(L, "out of memory");

	lua_xmove(L, t->co, n);   /* fn and its arguments */
	task_resume(t, n - 1);

	return 0;
}


static void run_load_spawns(struct script *sc)
{
	lua_State *L = sc->L;
	int i, k, n, count;

	regkey_get(L, &KEY_SPAWNS);
	if (lua_isnil(L, -1)) {
		lua_pop(L, 1);
		return;
	}

	lua_pushlightuserdata(L, (void *)&KEY_SPAWNS);
	lua_pushnil(L);
	lua_rawset(L, LUA_REGISTRYINDEX);

	count = (int)lua_objlen(L, -1);
	for (i = 1; i <= count; i++) {
		struct task *t = lua_task_new(sc, LH_SPAWN, NULL);

		lua_rawgeti(L, -1, i);
		lua_getfield(L, -1, "n");
		n = (int)lua_tointeger(L, -1);
		lua_pop(L, 1);
		if (!t) {
			lua_pop(L, 1);
			continue;
		}
		for (k = 1; k <= n; k++)
			lua_rawgeti(L, -k, k);
		lua_xmove(L, t->co, n);
		lua_pop(L, 1);
		task_resume(t, n - 1);
	}
	lua_pop(L, 1);
}


/* Start a hook coroutine with the hook's function and the request */
static int task_spawn(struct script *sc, enum lua_hook kind,
		      struct stack_req *req)
{
	struct task *t;

	t = lua_task_new(sc, kind, req);
	if (!t)
		return ENOMEM;

	lua_rawgeti(t->co, LUA_REGISTRYINDEX, sc->hooks[kind]);
	if (req)
		lua_push_request(t->co, req);

	task_resume(t, req ? 1 : 0);

	return 0;
}


/* Call hook h of the current script in a task of its own, with the
 * arguments push() pushes on the coroutine (it returns how many).
 * ENOENT when the script has no such hook. */
int luart_fire(struct luart *rt, enum lua_hook h, lua_push_h *push,
	       void *arg)
{
	struct script *sc = rt ? rt->cur : NULL;
	struct task *t;
	int n = 0;

	if (!sc || (unsigned)h >= LH_SPAWN || sc->hooks[h] == LUA_NOREF)
		return ENOENT;

	t = lua_task_new(sc, h, NULL);
	if (!t)
		return ENOMEM;

	lua_rawgeti(t->co, LUA_REGISTRYINDEX, sc->hooks[h]);
	if (push)
		n = push(t->co, arg);
	task_resume(t, n);

	return 0;
}


/* ------------------------------------------------------------------ *
 * Stack hooks
 * ------------------------------------------------------------------ */

static bool message_hook(struct stack *st, struct stack_req *req,
			 void *arg)
{
	struct luart *rt = arg;
	(void)st;

	if (!rt->cur || rt->cur->hooks[LH_MESSAGE] == LUA_NOREF)
		return false;

	return 0 == task_spawn(rt->cur, LH_MESSAGE, req);
}


static bool method_listed(const char *list, const struct pl *met)
{
	const char *p;

	if (!list)
		return true;

	for (p = list; (p = strchr(p, ' ')) && p[1]; p++) {
		if (!strncmp(p + 1, met->p, met->l) && p[1 + met->l] == ' ')
			return true;
	}

	return false;
}


static bool request_hook(struct stack *st, struct stack_req *req,
			 void *arg)
{
	struct luart *rt = arg;
	(void)st;

	if (!rt->cur || rt->cur->hooks[LH_REQUEST] == LUA_NOREF)
		return false;

	if (!method_listed(rt->cur->req_methods, &stack_req_msg(req)->met))
		return false;

	return 0 == task_spawn(rt->cur, LH_REQUEST, req);
}


static void runtime_set_hooks(struct luart *rt)
{
	struct script *sc = rt->cur;

	stack_set_hook(rt->st, STACK_HOOK_MESSAGE,
		       sc && sc->hooks[LH_MESSAGE] != LUA_NOREF ?
		       message_hook : NULL, rt);
	stack_set_hook(rt->st, STACK_HOOK_REQUEST,
		       sc && sc->hooks[LH_REQUEST] != LUA_NOREF ?
		       request_hook : NULL, rt);
	if (sc && rt->st)
		lua_call_activate(rt, sc);
}


/* ------------------------------------------------------------------ *
 * Runtime
 * ------------------------------------------------------------------ */

static void luart_destructor(void *arg)
{
	struct luart *rt = arg;
	struct le *le;

	lua_register_close(rt);

	/* end the tasks of every generation; each holds its script */
	while ((le = list_head(&rt->scripts))) {
		struct script *sc = mem_ref(le->data);
		struct le *tle;

		list_unlink(&sc->le);
		while ((tle = list_head(&sc->tasks)))
			task_free(tle->data);
		sc->rt = NULL;
		mem_deref(sc);
	}

	stack_set_hook(rt->st, STACK_HOOK_MESSAGE, NULL, NULL);
	stack_set_hook(rt->st, STACK_HOOK_REQUEST, NULL, NULL);
	stack_set_hook(rt->st, STACK_HOOK_REGISTER, NULL, NULL);
	callmgr_set_incoming(rt->st, NULL, NULL);
	rt->regsvc = mem_deref(rt->regsvc);
	rt->cur = mem_deref(rt->cur);
	mem_deref(rt->path);
}


static int activate(struct luart *rt, struct script *sc)
{
	struct stack_config cfg = sc->cfg;
	struct script *old = rt->cur;
	int err;

	/* what the script opens (a store) must work before it runs */
	if (rt->st) {
		err = lua_registrar_activate(rt, sc);
		if (err)
			return err;
	}

	sc->gen = ++rt->gen;
	list_append(&rt->scripts, &sc->le, sc);
	if (rt->cfgh)
		rt->cfgh(&cfg, rt->cfg_arg);
	if (rt->st)
		(void)stack_set_config(rt->st, &cfg);

	rt->cur = sc;
	runtime_set_hooks(rt);

	/* tasks of the old generation hold it until they end */
	mem_deref(old);

	if (rt->st && stack_is_running(rt->st))
		run_load_spawns(sc);

	return 0;
}


int luart_alloc(struct luart **lrp, struct stack *st, const char *path,
		luart_cfg_h *cfgh, void *arg)
{
	struct luart *rt;
	struct script *sc = NULL;
	char errbuf[1024] = "";
	int err;

	if (!lrp || !path)
		return EINVAL;

	rt = mem_zalloc(sizeof(*rt), luart_destructor);
	if (!rt)
		return ENOMEM;

	rt->st = st;
	rt->cfgh = cfgh;
	rt->cfg_arg = arg;
	err = str_dup(&rt->path, path);
	if (err)
		goto out;

	err = script_load(&sc, rt, path, stack_config(st), errbuf,
			  sizeof(errbuf));
	if (err) {
		slog(LOG_ERROR, "lua", "load_failed", NULL,
		     "script=%H err=%H", log_q, path, log_q, errbuf);
		goto out;
	}

	err = activate(rt, sc);
	if (err) {
		slog(LOG_ERROR, "lua", "load_failed", NULL,
		     "script=%H err=%H", log_q, path, log_q,
		     "what the script configured could not be opened");
		mem_deref(sc);
		goto out;
	}
	slog(LOG_INFO, "lua", "loaded", NULL, "script=%H gen=%u", log_q,
	     path, sc->gen);

 out:
	if (err)
		mem_deref(rt);
	else
		*lrp = rt;

	return err;
}


int luart_reload(struct luart *rt)
{
	struct script *sc = NULL;
	char errbuf[1024] = "";
	int err;

	if (!rt)
		return EINVAL;

	err = script_load(&sc, rt, rt->path, stack_config(rt->st), errbuf,
			  sizeof(errbuf));
	if (err) {
		slog(LOG_ERROR, "lua", "reload_failed", NULL,
		     "script=%H gen=%u err=%H keeping=old", log_q, rt->path,
		     rt->gen, log_q, errbuf);
		return err;
	}

	err = activate(rt, sc);
	if (err) {
		slog(LOG_ERROR, "lua", "reload_failed", NULL,
		     "script=%H gen=%u err=%H keeping=old", log_q, rt->path,
		     rt->gen, log_q, "what the script configured could not "
		     "be opened");
		mem_deref(sc);
		return err;
	}
	slog(LOG_INFO, "lua", "reloaded", NULL, "script=%H gen=%u", log_q,
	     rt->path, sc->gen);

	return 0;
}


int luart_check(const char *path, struct stack_config *cfg,
		char *errbuf, size_t errsz)
{
	struct script *sc = NULL;
	int err;

	if (!path || !cfg)
		return EINVAL;

	err = script_load(&sc, NULL, path, cfg, errbuf, errsz);
	if (!err)
		*cfg = sc->cfg;
	mem_deref(sc);

	return err;
}


struct script *luart_current(const struct luart *rt)
{
	return rt ? rt->cur : NULL;
}


bool luart_has_hook(const struct luart *rt, enum lua_hook h)
{
	return rt && rt->cur && (unsigned)h < LH_SPAWN &&
		rt->cur->hooks[h] != LUA_NOREF;
}


int luart_request(struct luart *rt, enum lua_hook h, struct stack_req *req)
{
	if (!luart_has_hook(rt, h))
		return ENOENT;

	return task_spawn(rt->cur, h, req);
}


struct regsvc *luart_regsvc(const struct luart *rt)
{
	return rt ? rt->regsvc : NULL;
}


void luart_set_regsvc(struct luart *rt, struct regsvc *rs)
{
	if (!rt)
		return;

	lua_registrar_free(rt->regsvc);
	rt->regsvc = rs;
}


/* The stack runs: start what the script spawned while it loaded */
void luart_start(struct luart *rt)
{
	if (rt && rt->cur)
		run_load_spawns(rt->cur);
}


const char *luart_path(const struct luart *rt)
{
	return rt ? rt->path : NULL;
}


uint32_t luart_generation(const struct luart *rt)
{
	return rt ? rt->gen : 0;
}


uint32_t luart_tasks(const struct luart *rt)
{
	return rt && rt->cur ? list_count(&rt->cur->tasks) : 0;
}


struct stack *luart_stack(const struct luart *rt)
{
	return rt ? rt->st : NULL;
}


struct list *luart_regs(struct luart *rt)
{
	return &rt->regs;
}
