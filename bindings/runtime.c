/**
 * bindings/runtime.c  Script generations, sandbox, tasks and yielding
 *
 * Owns struct luart (the runtime: the current script generation, the
 * features' objects), struct script (a generation), struct task (a
 * coroutine of a generation) and struct rt_op (a task's pending
 * operation: the one yield protocol), and the table of error strings.
 * Exposes luart_*() (luart.h) to the program and rt_*() (runtime.h) to
 * the feature files, whose structs it never sees and which never see
 * its own. Uses the stack's hooks to receive requests, and the
 * features' inject/activate/close functions (the table `features`).
 * Counts its tasks (started and failed by hook, alive, the time of each
 * run) for the collector it adds to the stack's metrics registry.
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
#include <time.h>
#include <re.h>
#include <luajit.h>
#include "sipstack.h"
#include "luart.h"
#include "runtime.h"
#include "budget.h"

#include "sipstack_headers_bc.h"
#include "sipstack_sdp_bc.h"


static const char *hook_names[RT_HOOK_MAX] = {
	"on_incoming_call",
	"on_incoming_message",
	"on_incoming_refer",
	"on_registration_result",
	"on_dialog_event",
	"on_request",
	"on_register",
	"spawn",
	"on_subscribe",
};

/* Every Lua feature: its functions, what it does when a generation
 * becomes current (only the first with an activate may refuse it) and
 * when the runtime goes (before the tasks end) */
static const struct feature {
	const char *name;
	void (*inject)(lua_State *L);
	int  (*activate)(struct luart *rt, struct script *sc);
	void (*close)(struct luart *rt);
} features[] = {
	{"sip",       api_sip_inject,       NULL, NULL},
	{"request",   api_request_inject,   NULL, NULL},
	{"registrar", api_registrar_inject, api_registrar_activate,
	 api_registrar_close},
	{"call",      api_call_inject,      api_call_activate,
	 api_call_close},
	{"register",  api_register_inject,  NULL, api_register_close},
	{"events",    api_events_inject,    api_events_activate,
	 api_events_close},
	{"metrics",   api_metrics_inject,   NULL, NULL},
	{"media",     api_media_inject,     NULL, NULL},   /* after call */
	{"proxy",     api_proxy_inject,     api_proxy_activate, NULL},
};

struct luart {
	struct stack *st;
	struct script *cur;
	struct list scripts;     /* every live generation */
	char *path;
	uint32_t gen;
	luart_cfg_h *cfgh;
	void *cfg_arg;
	bool budget;                /* holds the watchdog (budget.c)     */
	void *slots[RT_SLOT_MAX];   /* the features' objects */
	struct stack_handler *h_message;  /* on_incoming_message      */
	struct stack_handler *h_request;  /* on_request (any method)  */
	struct {                          /* for the metrics          */
		uint64_t runs[RT_HOOK_MAX];   /* tasks started, by kind   */
		uint64_t errors[RT_HOOK_MAX]; /* tasks that failed        */
		uint64_t stops[2];            /* by a limit: time, memory */
		uint32_t tasks;               /* alive, every generation  */
		struct metrics_hist resume;   /* s, one run of a task     */
		struct metrics_collector *mc;
	} mx;
};

/* One load of the script */
struct script {
	struct le le;               /* in luart.scripts                 */
	struct luart *rt;           /* NULL for sipstack --check        */
	lua_State *L;
	char *path;
	uint32_t gen;
	int hooks[RT_HOOK_MAX];     /* registry refs, LUA_NOREF if unset */
	char *req_methods;          /* on_request filter, " A B " or NULL */
	struct list tasks;          /* live struct task                 */
	struct hash *taskht;        /* the same, by coroutine (task_of) */
	struct stack_config cfg;    /* effective config after sip.configure */
	struct rt_limits lim;       /* budget, memory cap, jit (budget.c) */
	struct budget_mem mem;      /* L's allocator, with the cap      */
	void *slots[RT_SLOT_MAX];   /* the features' objects            */
	bool loading;               /* top-level chunk running          */
	bool closing;               /* generation is being torn down    */
};

/* One coroutine of a generation */
struct task {
	struct le le;               /* in script.tasks                  */
	struct le he;               /* in script.taskht, by co          */
	struct script *sc;          /* reference                        */
	lua_State *co;              /* the coroutine (anchored)         */
	int ref;                    /* co's anchor in the registry      */
	enum rt_hook kind;
	struct stack_req *req;      /* reference, or NULL               */
	struct rt_op *op;           /* the pending operation, or NULL   */
	rt_end_h *endh;             /* told how it ended, if set        */
	void *ctx;                  /* a mem reference for endh          */
	struct pl callid;           /* for logs when there is no req    */
	bool in_resume;             /* running right now                */
};

enum op_state {
	OP_STARTING = 0,            /* its start function runs          */
	OP_WAITING,                 /* the task yielded on it           */
	OP_DONE,                    /* ended; waits for a late callback */
};

/* A pending operation of a task (see runtime.h). References: the
 * task's while it is t->op, and the source's while owed. */
struct rt_op {
	struct task *t;             /* NULL once the task let go        */
	enum op_state state;
	bool owed;                  /* a source holds it (rt_op_arg)    */
	rt_cleanup_h *cleanuph;
	void *ctx;                  /* reference, for cleanuph          */
	struct tmr tmr;             /* rt_op_timeout                    */
	rt_push_h *tmo_push;
	void *tmo_arg;
	int nres;                   /* values of an op that ended before
				     * it yielded                       */
};

static const char KEY_SCRIPT = 's';   /* registry: lightuserdata script */
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
static void task_free(struct task *t);


/* ------------------------------------------------------------------ *
 * Helpers
 * ------------------------------------------------------------------ */

static void regkey_get(lua_State *L, const char *key)
{
	lua_pushlightuserdata(L, (void *)key);
	lua_rawget(L, LUA_REGISTRYINDEX);
}


struct script *rt_script(lua_State *L)
{
	struct script *sc;

	regkey_get(L, &KEY_SCRIPT);
	sc = lua_touserdata(L, -1);
	lua_pop(L, 1);

	return sc;
}


static uint32_t co_hash(const lua_State *co)
{
	return (uint32_t)((uintptr_t)co >> 4);
}


static bool task_cmp(struct le *le, void *arg)
{
	const struct task *t = le->data;

	return t->co == arg;
}


/* The task L runs in, or NULL (load time, a coroutine of the
 * script's own). A C table by coroutine, not a Lua one: inserting a
 * new thread key into a table whose keys come and go rehashed it every
 * so often (~1,300 instructions a task, callgrind); the coroutine is
 * anchored by a registry reference (luaL_ref: a free list) instead. */
static struct task *task_of(lua_State *L)
{
	struct script *sc = rt_script(L);

	if (!sc || !sc->taskht)
		return NULL;

	return list_ledata(hash_lookup(sc->taskht, co_hash(L), task_cmp, L));
}


/*
 * Where a script is: "file:line" of the innermost Lua function on L's
 * stack (works on a coroutine that died with an error, whose stack is
 * kept). Returns the line, 0 if there is no Lua frame.
 */
int rt_src_line(lua_State *L, char *buf, size_t sz)
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

	line = rt_src_line(L, src, sizeof(src));
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
	struct script *sc = rt_script(L);
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
void rt_require(lua_State *L, const char *name)
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
	size_t i;

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

	/* the sip module, also reachable as require "sipstack": each
	 * feature adds its functions */
	regkey_get(L, &KEY_LOADED);
	lua_newtable(L);
	for (i = 0; i < ARRAY_SIZE(features); i++)
		features[i].inject(L);
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

static void script_destructor(void *arg)
{
	struct script *sc = arg;
	struct le *le;
	int i;

	sc->closing = true;
	list_unlink(&sc->le);

	/* only reached when no task holds the script, but be safe */
	while ((le = list_head(&sc->tasks)))
		task_free(le->data);

	if (sc->L)
		lua_close(sc->L);

	slog(LOG_DEBUG, "lua", "closed", NULL, "gen=%u", sc->gen);
	mem_deref(sc->taskht);
	mem_deref(sc->path);
	mem_deref(sc->req_methods);
	for (i = RT_SLOT_MAX - 1; i >= 0; i--)
		mem_deref(sc->slots[i]);
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
	int err = 0, i, status;
	bool fired;

	sc = mem_zalloc(sizeof(*sc), script_destructor);
	if (!sc)
		return ENOMEM;

	for (i = 0; i < RT_HOOK_MAX; i++)
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

	/* the limits (budget.c): the defaults (or the generation before)
	 * while the script loads, its sip.configure{} once it has; the JIT
	 * compiler off unless asked for, since LuaJIT never stops a
	 * compiled loop for a hook */
	if (rt && rt->cur) {      /* a reload keeps what it does not set */
		sc->lim = rt->cur->lim;
	}
	else {
		sc->lim.budget_ms = RT_BUDGET_MS_DEFAULT;
		sc->lim.memory_max = RT_MEMORY_MAX_DEFAULT;
	}
	budget_mem_attach(&sc->mem, L);
	sc->mem.max = (size_t)sc->lim.memory_max;

	luaL_openlibs(L);   /* turns the JIT on (luaopen_jit): after it */
	(void)luaJIT_setmode(L, 0, LUAJIT_MODE_ENGINE | LUAJIT_MODE_OFF);

	lua_pushlightuserdata(L, (void *)&KEY_SCRIPT);
	lua_pushlightuserdata(L, sc);
	lua_rawset(L, LUA_REGISTRYINDEX);

	/* a task lives while its request waits (a proxied INVITE until
	 * its final answer, an IVR call's hook for the call): thousands at
	 * a time under load, and libre's table does not grow */
	err = hash_alloc(&sc->taskht, 4096);
	if (err) {
		(void)re_snprintf(errbuf, errsz, "%s: out of memory", path);
		goto out;
	}

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
	budget_enter(L, sc->lim.budget_ms, &sc->mem);
	status = lua_pcall(L, 0, 0, -2);
	fired = budget_leave(L, &sc->mem, NULL);
	sc->loading = false;
	if (status) {
		if (sc->mem.refused)
			(void)re_snprintf(errbuf, errsz, "%s: the script "
					  "exceeded its memory cap while it "
					  "loaded (%llu bytes)", path,
					  (unsigned long long)sc->mem.max);
		else
			(void)re_snprintf(errbuf, errsz, "%s%s",
					  full_msg(L, path,
						   lua_tostring(L, -1)),
					  fired ? " while the script loaded" :
					  "");
		err = EINVAL;
		goto out;
	}
	lua_pop(L, 1);

	sc->mem.max = (size_t)sc->lim.memory_max;
	if (sc->lim.jit)
		(void)luaJIT_setmode(L, 0, LUAJIT_MODE_ENGINE |
				     LUAJIT_MODE_ON);

	/* Hooks may also be global functions of the script */
	regkey_get(L, &KEY_ENV);
	for (i = 0; i < RT_HOOK_SPAWN; i++) {
		lua_getfield(L, -1, hook_names[i]);
		if (lua_isnil(L, -1)) {
			lua_pop(L, 1);
			continue;
		}
		if (!lua_isfunction(L, -1)) {
			(void)re_snprintf(errbuf, errsz, "%s: global '%s' is "
					  "a %s, not a function", path,
					  hook_names[i],
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
 * Errors: the one table of the strings scripts see
 * ------------------------------------------------------------------ */

/* Short, lowercase and stable: scripts compare them. One errno, one
 * string, whichever function returns it (docs/lua-api.md, "Errors"). */
static const struct {
	int err;
	const char *str;
} errstrs[] = {
	{ETIMEDOUT,       "timeout"},
	{ECONNREFUSED,    "refused"},
	{ECANCELED,       "cancelled"},
	{ESHUTDOWN,       "shutdown"},
	{EPROTONOSUPPORT, "transport not supported"},
	{EDESTADDRREQ,    "no address"},
	{ENOENT,          "not found"},
	{EINVAL,          "invalid uri"},      /* the only EINVAL a checked
						* argument can still get */
	{EALREADY,        "already answered"},
	{ENOTCONN,        "invalid state"},    /* of a call: ended, or not
						* (yet) in a state for it */
	{EBUSY,           "busy"},             /* one at a time: retry  */
	{EAUTH,           "unauthorized"},
	{ELOOP,           "too many attempts"},  /* req:proxy retries */
};


const char *rt_errstr(int err)
{
	size_t i;

	for (i = 0; i < ARRAY_SIZE(errstrs); i++) {
		if (errstrs[i].err == err)
			return errstrs[i].str;
	}

	return "failed";
}


int rt_fail(lua_State *L, int err)
{
	lua_pushnil(L);
	lua_pushstring(L, rt_errstr(err));

	return 2;
}


int rt_result(lua_State *L, int err)
{
	if (err)
		return rt_fail(L, err);

	lua_pushboolean(L, 1);

	return 1;
}


/* ------------------------------------------------------------------ *
 * Tasks: one coroutine per hook invocation
 * ------------------------------------------------------------------ */

static void op_let_go(struct task *t);


static void task_free(struct task *t)
{
	struct script *sc = t->sc;
	lua_State *L = sc->L;

	list_unlink(&t->le);
	op_let_go(t);   /* its op is stopped, or waits for its source */
	if (sc->rt)
		--sc->rt->mx.tasks;

	/* drop the anchor; a stale thread can never find this task */
	hash_unlink(&t->he);
	luaL_unref(L, LUA_REGISTRYINDEX, t->ref);

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
		line = rt_src_line(co, file, sizeof(file));
		rest = msg;
	}

	if (t->sc->rt)
		++t->sc->rt->mx.errors[t->kind];

	slog(LOG_ERROR, "lua", "hook_error", m ? &m->callid :
	     pl_isset(&t->callid) ? &t->callid : NULL,
	     "hook=%s script=%H line=%d gen=%u err=%H",
	     hook_names[t->kind], log_q, file, line, t->sc->gen,
	     log_q, rest);

	if (t->endh) {
		t->endh(co, true, 0, t->ctx);
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
		t->endh(co, false, nres, t->ctx);
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
		/* a MESSAGE's hook answers 200 by default, unless the
		 * request has an answer waiting (a proxy's best one) */
		if (t->kind == RT_HOOK_MESSAGE &&
		    !stack_req_has_default(req))
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


/* The run was stopped by its time budget (fired) or the memory cap:
 * replace whatever error it ended with (a pcall may have caught the
 * first one; an xpcall handler may have failed) by what happened */
static void limit_message(struct task *t, struct budget_where *w,
			  bool fired)
{
	const char *src = w->src;
	int line = w->line;

	if (!line) {       /* the innermost frame the coroutine kept */
		line = rt_src_line(t->co, w->src, sizeof(w->src));
		if (!line)
			src = t->sc->path;
	}

	lua_settop(t->co, 0);
	if (fired)
		lua_pushfstring(t->co, "%s:%d: hook exceeded its budget "
				"(%d ms)", src, line,
				(int)t->sc->lim.budget_ms);
	else
		lua_pushfstring(t->co, "%s:%d: hook exceeded its memory cap "
				"(lua_memory_max = %f bytes)", src, line,
				(lua_Number)t->sc->mem.max);

	if (t->sc->rt)
		++t->sc->rt->mx.stops[fired ? 0 : 1];
}


/*
 * The one place a task runs (its start and every resume): it runs
 * until it yields on an op, returns or fails; then it ends (the answer
 * or endh) and is freed. nargs values are on top of its coroutine.
 */
static void task_resume(struct task *t, int nargs)
{
	struct script *sc = t->sc;
	struct luart *rt = t->sc->rt;
	struct timespec t0, t1;
	struct budget_where where;
	bool fired, refused;
	int status;

	if (rt)
		(void)clock_gettime(CLOCK_MONOTONIC, &t0);

	t->in_resume = true;
	budget_enter(t->co, sc->lim.budget_ms, &sc->mem);
	status = lua_resume(t->co, nargs);
	fired = budget_leave(t->co, &sc->mem, &where);
	t->in_resume = false;

	/* stopped by a limit: say which, where it was */
	if (status != 0 && status != LUA_YIELD &&
	    (fired || sc->mem.refused))
		limit_message(t, fired ? &where : &sc->mem.where, fired);

	/* how long the loop was the script's, this run */
	if (rt) {
		(void)clock_gettime(CLOCK_MONOTONIC, &t1);
		metrics_hist_observe(&rt->mx.resume,
				     (double)(t1.tv_sec - t0.tv_sec) +
				     (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
	}

	if (status == LUA_YIELD) {
		if (t->op && t->op->state == OP_WAITING)
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

	refused = sc->mem.refused;
	mem_ref(sc);
	task_free(t);

	/* what the stopped run held is garbage now: give it back before
	 * the next run meets the cap */
	if (refused) {
		sc->mem.refused = false;
		sc->mem.where.line = 0;
		(void)lua_gc(sc->L, LUA_GCCOLLECT, 0);
	}
	mem_deref(sc);
}


struct task *rt_task_new(struct script *sc, enum rt_hook h)
{
	struct task *t;
	lua_State *L;

	if (!sc || sc->closing || (unsigned)h >= RT_HOOK_MAX ||
	    (h < RT_HOOK_SPAWN && sc->hooks[h] == LUA_NOREF))
		return NULL;

	t = mem_zalloc(sizeof(*t), NULL);
	if (!t)
		return NULL;

	L = sc->L;
	t->sc   = mem_ref(sc);
	t->kind = h;
	list_append(&sc->tasks, &t->le, t);
	if (sc->rt) {
		++sc->rt->mx.runs[h];
		++sc->rt->mx.tasks;
	}

	t->co = lua_newthread(L);
	t->ref = luaL_ref(L, LUA_REGISTRYINDEX);
	hash_append(sc->taskht, co_hash(t->co), &t->he, t);

	if (h < RT_HOOK_SPAWN)
		lua_rawgeti(t->co, LUA_REGISTRYINDEX, sc->hooks[h]);

	return t;
}


lua_State *rt_task_co(const struct task *t)
{
	return t ? t->co : NULL;
}


void rt_task_set_end(struct task *t, rt_end_h *endh, void *ctx)
{
	if (!t)
		return;

	t->endh = endh;
	mem_deref(t->ctx);
	t->ctx = mem_ref(ctx);
}


void rt_task_set_callid(struct task *t, const char *callid)
{
	if (t && callid)
		pl_set_str(&t->callid, callid);
}


void rt_task_run(struct task *t, int nargs)
{
	if (t)
		task_resume(t, nargs);
}


void rt_need_task(lua_State *L, const char *fn)
{
	if (!task_of(L))
		luaL_error(L, "%s: must be called from a hook (it yields), "
			   "not at load time or inside a coroutine of the "
			   "script's own", fn);
}


struct stack_req *rt_task_req(lua_State *L)
{
	struct task *t = task_of(L);

	return t ? t->req : NULL;
}


/* ------------------------------------------------------------------ *
 * The yield protocol: start, event, resume, cleanup (runtime.h)
 * ------------------------------------------------------------------ */

static void op_destructor(void *arg)
{
	struct rt_op *op = arg;

	tmr_cancel(&op->tmr);
	mem_deref(op->ctx);
}


/*
 * The op ends (once): its timer and cleanup stop whatever else could
 * end it. While its task waits, push's values resume the task; when
 * the op ended before its start function yielded, they stay on the
 * coroutine for rt_op_yield() to return. The caller holds a reference
 * on op.
 */
static void op_end(struct rt_op *op, rt_push_h *push, void *arg)
{
	const enum op_state was = op->state;
	struct task *t = op->t;
	rt_cleanup_h *cleanuph = op->cleanuph;
	int n = 0;

	if (was == OP_DONE)
		return;

	op->state = OP_DONE;
	tmr_cancel(&op->tmr);
	op->cleanuph = NULL;
	if (cleanuph)
		cleanuph(op, op->ctx);
	op->ctx = mem_deref(op->ctx);

	if (!t)
		return;

	if (push)
		n = push(t->co, arg);

	if (was == OP_STARTING) {
		op->nres = n;
		return;
	}

	t->op = NULL;
	op->t = NULL;
	mem_deref(op);           /* the task's reference */
	task_resume(t, n);
}


/* The task goes (or starts another op): the op lets go of it, stopped
 * if it can be; a source that holds it still calls back, finds no
 * task, and frees it */
static void op_let_go(struct task *t)
{
	struct rt_op *op = t->op;

	if (!op)
		return;

	t->op = NULL;
	op->t = NULL;
	op_end(op, NULL, NULL);
	mem_deref(op);           /* the task's reference */
}


struct rt_op *rt_op_start(lua_State *L, const char *fn)
{
	struct task *t = task_of(L);
	struct rt_op *op;

	rt_need_task(L, fn);

	/* a start of this task that raised an error before it yielded
	 * (and the script caught) left its op */
	op_let_go(t);

	op = mem_zalloc(sizeof(*op), op_destructor);
	if (!op) {
		luaL_error(L, "out of memory");
		return NULL;
	}

	tmr_init(&op->tmr);
	op->t = t;
	op->state = OP_STARTING;
	t->op = op;

	return op;
}


void *rt_op_arg(struct rt_op *op)
{
	if (!op || op->owed)
		return op;

	op->owed = true;

	return mem_ref(op);      /* the source's reference */
}


void rt_op_cleanup(struct rt_op *op, rt_cleanup_h *h, void *ctx)
{
	if (!op)
		return;

	op->cleanuph = h;
	mem_deref(op->ctx);
	op->ctx = mem_ref(ctx);
}


static void op_timeout(void *arg)
{
	struct rt_op *op = mem_ref(arg);

	op_end(op, op->tmo_push, op->tmo_arg);
	mem_deref(op);
}


void rt_op_timeout(struct rt_op *op, uint64_t ms, rt_push_h *push,
		   void *arg)
{
	if (!op || op->state == OP_DONE)
		return;

	op->tmo_push = push;
	op->tmo_arg = arg;
	tmr_start(&op->tmr, ms, op_timeout, op);
}


int rt_op_yield(lua_State *L, struct rt_op *op)
{
	struct task *t = op->t;
	int n;

	if (op->state != OP_DONE) {
		op->state = OP_WAITING;
		return lua_yield(L, 0);
	}

	/* it ended already: its values are on top of L */
	if (!t || t->op != op)
		return 0;

	n = op->nres;
	t->op = NULL;
	op->t = NULL;
	mem_deref(op);   /* the task's reference */

	return n;
}


int rt_op_abort(lua_State *L, struct rt_op *op, int err)
{
	struct task *t = op->t;

	/* the source did not start: it holds nothing */
	if (op->owed) {
		op->owed = false;
		mem_deref(op);
	}

	if (t && t->op == op)
		op_let_go(t);

	return rt_fail(L, err);
}


void rt_op_resume(struct rt_op *op, rt_push_h *push, void *arg)
{
	if (!op)
		return;

	mem_ref(op);
	op_end(op, push, arg);

	if (op->owed) {
		op->owed = false;
		mem_deref(op);   /* the source's reference */
	}
	mem_deref(op);
}


/* ------------------------------------------------------------------ *
 * Spawns and hooks
 * ------------------------------------------------------------------ */

/* sip.spawn(fn, ...): run fn(...) in a task of its own. At load time
 * the start waits until the script is active, so a script that fails
 * to load leaves nothing running. */
int rt_spawn(lua_State *L)
{
	struct script *sc = rt_script(L);
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

	t = rt_task_new(sc, RT_HOOK_SPAWN);
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
		struct task *t = rt_task_new(sc, RT_HOOK_SPAWN);

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
static int task_spawn(struct script *sc, enum rt_hook kind,
		      struct stack_req *req)
{
	struct task *t;

	t = rt_task_new(sc, kind);
	if (!t)
		return ENOMEM;

	t->req = req ? stack_req_ref(req) : NULL;
	if (req)
		api_request_push(t->co, req);

	task_resume(t, req ? 1 : 0);

	return 0;
}


/* Call hook h of the current script in a task of its own, with the
 * arguments push() pushes on the coroutine (it returns how many).
 * ENOENT when the script has no such hook. */
int rt_fire(struct luart *rt, enum rt_hook h, rt_push_h *push, void *arg)
{
	struct script *sc = rt ? rt->cur : NULL;
	struct task *t;
	int n = 0;

	if (!sc || (unsigned)h >= RT_HOOK_SPAWN || sc->hooks[h] == LUA_NOREF)
		return ENOENT;

	t = rt_task_new(sc, h);
	if (!t)
		return ENOMEM;

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

	if (!rt->cur || rt->cur->hooks[RT_HOOK_MESSAGE] == LUA_NOREF)
		return false;

	return 0 == task_spawn(rt->cur, RT_HOOK_MESSAGE, req);
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

	if (!rt->cur || rt->cur->hooks[RT_HOOK_REQUEST] == LUA_NOREF)
		return false;

	if (!method_listed(rt->cur->req_methods, &stack_req_msg(req)->met))
		return false;

	return 0 == task_spawn(rt->cur, RT_HOOK_REQUEST, req);
}


static void runtime_set_hooks(struct luart *rt)
{
	struct script *sc = rt->cur;

	(void)stack_handler_set(&rt->h_message, rt->st, "MESSAGE", "MESSAGE",
				STACK_OUT_OF_DIALOG,
				sc && sc->hooks[RT_HOOK_MESSAGE] != LUA_NOREF ?
				message_hook : NULL, rt);
	/* any method; it has always advertised MESSAGE and REGISTER */
	(void)stack_handler_set(&rt->h_request, rt->st, NULL,
				"MESSAGE REGISTER", STACK_OUT_OF_DIALOG,
				sc && sc->hooks[RT_HOOK_REQUEST] != LUA_NOREF ?
				request_hook : NULL, rt);
}


/* ------------------------------------------------------------------ *
 * Runtime
 * ------------------------------------------------------------------ */

static void luart_destructor(void *arg)
{
	struct luart *rt = arg;
	struct le *le;
	size_t i;
	int s;

	rt->mx.mc = mem_deref(rt->mx.mc);

	for (i = 0; i < ARRAY_SIZE(features); i++) {
		if (features[i].close)
			features[i].close(rt);
	}

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

	rt->h_message = mem_deref(rt->h_message);
	rt->h_request = mem_deref(rt->h_request);

	/* what the features opened (a store commits what is pending: its
	 * callbacks find no task) */
	for (s = RT_SLOT_MAX - 1; s >= 0; s--)
		rt->slots[s] = mem_deref(rt->slots[s]);

	rt->cur = mem_deref(rt->cur);
	mem_deref(rt->path);
	if (rt->budget)
		budget_close();
}


static int activate(struct luart *rt, struct script *sc)
{
	struct stack_config cfg = sc->cfg;
	struct script *old = rt->cur;
	size_t i;
	int err;


	/* what the script opens (a store) must work before it runs */
	for (i = 0; rt->st && i < ARRAY_SIZE(features); i++) {
		if (!features[i].activate)
			continue;
		err = features[i].activate(rt, sc);
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


/* ------------------------------------------------------------------ *
 * Metrics: the runtime's collector in the stack's registry
 * ------------------------------------------------------------------ */

/* a counter family with one series per hook */
static int by_hook(struct mbuf *mb, const char *name, const char *help,
		   const uint64_t *v)
{
	char lbl[48];
	int h, err;

	err = metrics_family(mb, name, METRICS_COUNTER, help);
	for (h = 0; h < RT_HOOK_MAX; h++) {
		(void)re_snprintf(lbl, sizeof(lbl), "hook=\"%s\"",
				  hook_names[h]);
		err |= metrics_sample_u64(mb, name, lbl, v[h]);
	}

	return err;
}


static int metrics_collect(struct mbuf *mb, void *arg)
{
	const struct luart *rt = arg;
	double bytes = 0;
	struct le *le;
	int err;

	err  = by_hook(mb, "sipstack_lua_hook_runs_total", "Lua tasks "
		       "started (coroutines), by hook; \"spawn\": sip.spawn "
		       "and callbacks.", rt->mx.runs);
	err |= by_hook(mb, "sipstack_lua_hook_errors_total", "Lua tasks "
		       "that failed (a Lua error, a bad return value), by "
		       "hook.", rt->mx.errors);
	err |= metrics_family(mb, "sipstack_lua_limit_stops_total",
			      METRICS_COUNTER, "Lua task runs stopped by a "
			      "limit: its time budget (hook_budget_ms) or the "
			      "memory cap (lua_memory_max).");
	err |= metrics_sample_u64(mb, "sipstack_lua_limit_stops_total",
				  "limit=\"time\"", rt->mx.stops[0]);
	err |= metrics_sample_u64(mb, "sipstack_lua_limit_stops_total",
				  "limit=\"memory\"", rt->mx.stops[1]);
	err |= metrics_one(mb, "sipstack_lua_tasks", METRICS_GAUGE, "Lua "
			   "tasks (coroutines) alive, of every script "
			   "generation: running or waiting in a sip.* call.",
			   rt->mx.tasks);

	err |= metrics_family(mb, "sipstack_lua_resume_seconds",
			      METRICS_HISTOGRAM, "Time the loop spent in one "
			      "run of a Lua task: from its start or resume "
			      "until it yields, returns or fails.");
	err |= metrics_hist_write(mb, "sipstack_lua_resume_seconds", NULL,
				  &rt->mx.resume);

	LIST_FOREACH(&rt->scripts, le) {
		const struct script *sc = le->data;

		bytes += (double)lua_gc(sc->L, LUA_GCCOUNT, 0) * 1024 +
			lua_gc(sc->L, LUA_GCCOUNTB, 0);
	}
	err |= metrics_family(mb, "sipstack_lua_memory_bytes", METRICS_GAUGE,
			      "Lua heap of the live script generations.");
	err |= metrics_sample(mb, "sipstack_lua_memory_bytes", NULL, bytes);
	err |= metrics_one(mb, "sipstack_lua_generation", METRICS_GAUGE,
			   "Generation of the current script (1 at start, "
			   "one more per successful reload).",
			   rt->cur ? rt->cur->gen : 0);

	return err;
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
	rt->budget = !budget_init();   /* else no time budget (logged) */
	metrics_hist_init_seconds(&rt->mx.resume);
	err = str_dup(&rt->path, path);
	if (err)
		goto out;

	if (stack_metrics(st)) {
		err = metrics_collector_add(&rt->mx.mc, stack_metrics(st),
					    metrics_collect, rt);
		if (err)
			goto out;
	}

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


int luart_reload(struct luart *rt, char *errout, size_t errsz)
{
	struct script *sc = NULL;
	char errbuf[1024] = "";
	int err;

	if (!rt)
		return EINVAL;

	if (errout && errsz)
		*errout = '\0';

	err = script_load(&sc, rt, rt->path, stack_config(rt->st), errbuf,
			  sizeof(errbuf));
	if (err) {
		slog(LOG_ERROR, "lua", "reload_failed", NULL,
		     "script=%H gen=%u err=%H keeping=old", log_q, rt->path,
		     rt->gen, log_q, errbuf);
		if (errout && errsz)
			str_ncpy(errout, errbuf, errsz);
		return err;
	}

	err = activate(rt, sc);
	if (err) {
		slog(LOG_ERROR, "lua", "reload_failed", NULL,
		     "script=%H gen=%u err=%H keeping=old", log_q, rt->path,
		     rt->gen, log_q, "what the script configured could not "
		     "be opened");
		if (errout && errsz)
			(void)re_snprintf(errout, errsz, "%s: what the script "
					  "configured could not be opened: "
					  "%m", rt->path, err);
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
	bool budget;
	int err;

	if (!path || !cfg)
		return EINVAL;

	budget = !budget_init();
	err = script_load(&sc, NULL, path, cfg, errbuf, errsz);
	if (!err)
		*cfg = sc->cfg;
	mem_deref(sc);
	if (budget)
		budget_close();

	return err;
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


struct regsvc *luart_registrar(const struct luart *rt)
{
	return rt ? rt_slot(rt, RT_SLOT_REGISTRAR) : NULL;
}


struct stack *luart_stack(const struct luart *rt)
{
	return rt ? rt->st : NULL;
}


/* ------------------------------------------------------------------ *
 * What the feature files see (runtime.h)
 * ------------------------------------------------------------------ */

struct luart *rt_runtime(lua_State *L)
{
	struct script *sc = rt_script(L);

	return sc ? sc->rt : NULL;
}


struct stack *rt_stack(lua_State *L)
{
	return luart_stack(rt_runtime(L));
}


lua_State *rt_script_L(const struct script *sc)
{
	return sc ? sc->L : NULL;
}


bool rt_script_closing(const struct script *sc)
{
	return !sc || sc->closing;
}


bool rt_script_has_hook(const struct script *sc, enum rt_hook h)
{
	return sc && (unsigned)h < RT_HOOK_SPAWN &&
		sc->hooks[h] != LUA_NOREF;
}


void *rt_script_slot(const struct script *sc, enum rt_slot s)
{
	return sc && (unsigned)s < RT_SLOT_MAX ? sc->slots[s] : NULL;
}


void rt_script_set_slot(struct script *sc, enum rt_slot s, void *obj)
{
	void *old;

	if (!sc || (unsigned)s >= RT_SLOT_MAX) {
		mem_deref(obj);
		return;
	}

	/* set first: the old one's destructor may look */
	old = sc->slots[s];
	sc->slots[s] = obj;
	mem_deref(old);
}


struct stack_config *rt_config(lua_State *L)
{
	struct script *sc = rt_script(L);

	return sc ? &sc->cfg : NULL;
}


struct rt_limits *rt_limits(lua_State *L)
{
	struct script *sc = rt_script(L);

	return sc ? &sc->lim : NULL;
}


void rt_need_loading(lua_State *L, const char *fn)
{
	struct script *sc = rt_script(L);

	if (!sc || !sc->loading)
		luaL_error(L, "%s: only allowed while the script loads "
			   "(at its top level)", fn);
}


int rt_set_hook(lua_State *L, enum rt_hook h)
{
	struct script *sc = rt_script(L);

	rt_need_loading(L, hook_names[h]);
	luaL_checktype(L, 1, LUA_TFUNCTION);

	if (sc->hooks[h] != LUA_NOREF)
		luaL_unref(L, LUA_REGISTRYINDEX, sc->hooks[h]);

	lua_pushvalue(L, 1);
	sc->hooks[h] = luaL_ref(L, LUA_REGISTRYINDEX);

	return 0;
}


void rt_set_request_methods(lua_State *L, char *methods)
{
	struct script *sc = rt_script(L);

	mem_deref(sc->req_methods);
	sc->req_methods = methods;
}


int rt_ref(lua_State *L)
{
	return luaL_ref(L, LUA_REGISTRYINDEX);
}


void rt_unref(struct script *sc, int ref)
{
	/* a generation being torn down is closing its lua_State */
	if (!sc || sc->closing || ref == LUA_NOREF || ref == LUA_REFNIL)
		return;

	luaL_unref(sc->L, LUA_REGISTRYINDEX, ref);
}


struct script *rt_current(const struct luart *rt)
{
	return rt ? rt->cur : NULL;
}


struct stack *rt_runtime_stack(const struct luart *rt)
{
	return luart_stack(rt);
}


void *rt_slot(const struct luart *rt, enum rt_slot s)
{
	return rt && (unsigned)s < RT_SLOT_MAX ? rt->slots[s] : NULL;
}


void rt_set_slot(struct luart *rt, enum rt_slot s, void *obj)
{
	void *old;

	if (!rt || (unsigned)s >= RT_SLOT_MAX) {
		mem_deref(obj);
		return;
	}

	/* set first: the old one's destructor may look */
	old = rt->slots[s];
	rt->slots[s] = obj;
	mem_deref(old);
}


int rt_request(struct luart *rt, enum rt_hook h, struct stack_req *req)
{
	if (!rt || !rt_script_has_hook(rt->cur, h))
		return ENOENT;

	return task_spawn(rt->cur, h, req);
}
