/**
 * bindings/runtime.h  What the Lua binding files share
 *
 * A script generation (struct script) is one lua_State running one load
 * of the script file. A reload makes a new generation; the old one lives
 * on while tasks (hook coroutines) of it are still running, so nothing
 * in flight breaks. A task (struct task) is one hook invocation running
 * in its own coroutine; yielding functions (sip.sleep, sip.send_message)
 * park the task on a libre timer or transaction and resume it from the
 * loop.
 */
#ifndef SIPSTACK_RUNTIME_H
#define SIPSTACK_RUNTIME_H

#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

enum lua_hook {
	LH_CALL = 0,      /* on_incoming_call      */
	LH_MESSAGE,       /* on_incoming_message   */
	LH_REFER,         /* on_incoming_refer     */
	LH_REGRESULT,     /* on_registration_result */
	LH_DIALOG,        /* on_dialog_event       */
	LH_REQUEST,       /* on_request            */
	LH_REGISTER,      /* on_register           */
	LH_SPAWN,         /* sip.spawn (no hook)   */
	LH_MAX
};

extern const char *lua_hook_names[LH_MAX];

struct luart;

struct script {
	struct le le;               /* in luart.scripts                 */
	struct luart *rt;
	lua_State *L;
	char *path;
	uint32_t gen;
	int hooks[LH_MAX];          /* registry refs, LUA_NOREF if unset */
	char *req_methods;          /* on_request filter, " A B " or NULL */
	struct list tasks;          /* live struct task                 */
	struct stack_config cfg;    /* effective config after sip.configure */
	struct regconf *regconf;    /* sip.registrar.configure{}, or NULL */
	bool loading;               /* top-level chunk running          */
	bool closing;               /* generation is being torn down    */
};

struct task;
typedef void (task_cleanup_h)(struct task *t);

struct task {
	struct le le;               /* in script.tasks                  */
	struct script *sc;          /* reference                        */
	lua_State *co;              /* the coroutine (anchored)         */
	enum lua_hook kind;
	struct stack_req *req;      /* reference, or NULL               */
	struct tmr tmr;             /* sip.sleep                        */
	void *op;                   /* pending operation, if any        */
	task_cleanup_h *cleanup;    /* cancels op if the task dies      */
	/* when set, told how the coroutine ended (instead of the request
	 * answer logic): failed after hook_error was logged, else nres
	 * values are on t->co */
	void (*endh)(struct task *t, bool failed, int nres);
	void *ctx;                  /* a mem reference for endh and ops,
				     * released when the task ends       */
	struct pl callid;           /* for logs when there is no req    */
	bool in_resume;             /* running right now                */
};

/* A yielding operation of a task: the libre callback gets the op as its
 * arg. The op outlives the task if need be: when the task dies first
 * (script closing), the late callback finds no task and does nothing.
 *   op = taskop_new(t); start(..., cb, op) or mem_deref(op);
 *   taskop_attach(op); return lua_yield(L, 0);
 *   cb: t = taskop_finish(arg); if (t) { push results; task_resume } */
struct taskop;
struct taskop *taskop_new(struct task *t);
void taskop_attach(struct taskop *op);
struct task *taskop_finish(struct taskop *op);

/* runtime.c */
struct script *lua_script(lua_State *L);
struct task *lua_task(lua_State *L);
void task_resume(struct task *t, int nargs);
struct task *lua_task_new(struct script *sc, enum lua_hook kind,
			  struct stack_req *req);
int  lua_src_line(lua_State *L, char *buf, size_t sz);
void lua_require_module(lua_State *L, const char *name);
int  lua_spawn(lua_State *L);

/* push the arguments of a hook on co; returns how many */
typedef int (lua_push_h)(lua_State *co, void *arg);
int  luart_fire(struct luart *rt, enum lua_hook h, lua_push_h *push,
		void *arg);

struct script *luart_current(const struct luart *rt);
/* the current generation has hook h */
bool luart_has_hook(const struct luart *rt, enum lua_hook h);
/* run hook h of the current generation for req (0: taken) */
int  luart_request(struct luart *rt, enum lua_hook h, struct stack_req *req);
/* the registrar service the runtime owns (api_registrar.c) */
struct regsvc *luart_regsvc(const struct luart *rt);
void luart_set_regsvc(struct luart *rt, struct regsvc *rs);

/* api_register.c */
extern int l_register(lua_State *L);
extern int l_unregister(lua_State *L);
void lua_register_close(struct luart *rt);
struct list *luart_regs(struct luart *rt);

/* api_sip.c */
int  luaopen_sip(lua_State *L);
int  lua_set_hook(lua_State *L, enum lua_hook h);
struct stack_req *lua_check_request(lua_State *L, int idx);
struct task *lua_need_task(lua_State *L, const char *fn);

/* api_call.c */
void lua_call_open(lua_State *L);
void lua_call_activate(struct luart *rt, struct script *sc);

/* api_registrar.c */
struct regconf;
struct regsvc;
void lua_registrar_open(lua_State *L);
int  lua_registrar_activate(struct luart *rt, struct script *sc);
void lua_registrar_free(void *p);
void lua_push_request(lua_State *L, struct stack_req *req);
int  lua_headers_encode(lua_State *L, int idx, char **hdrs);

#endif
