/**
 * bindings/runtime.h  What the Lua binding files share
 *
 * The runtime (runtime.c) runs script generations: a generation
 * (struct script) is one lua_State running one load of the script file;
 * a reload makes a new one, and the old one lives on while tasks of it
 * are still running. A task is one hook invocation (or sip.spawn, or a
 * call's callback) in a coroutine of its own. Feature files (api_*.c)
 * see both only through the functions below, never their structs.
 *
 * One shape for every yielding function (as OpenResty's): a struct
 * rt_op is one pending operation of a task.
 *
 *   start    l_fn(L): check every argument first (nothing may raise
 *            after rt_op_start), then
 *              op = rt_op_start(L, "fn");
 *              err = libre_thing(..., event_h, rt_op_arg(op));
 *              if (err) return rt_op_abort(L, op, err);
 *              return rt_op_yield(L, op);
 *   event    event_h(..., arg): rt_op_resume(arg, push_h, &results);
 *            push_h pushes the results on the task's coroutine (it is
 *            called only when the task still waits).
 *   resume   rt_op_resume() resumes the task through the runtime's one
 *            run function, which also ends it (answer, errors, free).
 *   cleanup  when the task goes first (its script closes): an op whose
 *            source holds rt_op_arg() is kept until that callback comes,
 *            which then only frees it; a source that can be stopped is
 *            given to rt_op_cleanup() instead, and stopped. Either way
 *            no callback ever runs on a freed task. rt_op_timeout()
 *            ends the op on a timer of its own (sip.sleep has nothing
 *            else).
 *
 * Misuse raises (luaL_argerror); a runtime failure returns nil and one
 * of the strings of rt_errstr(): one table for every function.
 */
#ifndef SIPSTACK_RUNTIME_H
#define SIPSTACK_RUNTIME_H

#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

struct luart;
struct script;
struct task;
struct rt_op;

enum rt_hook {
	RT_HOOK_CALL = 0,      /* on_incoming_call       */
	RT_HOOK_MESSAGE,       /* on_incoming_message    */
	RT_HOOK_REFER,         /* on_incoming_refer      */
	RT_HOOK_REGRESULT,     /* on_registration_result */
	RT_HOOK_DIALOG,        /* on_dialog_event        */
	RT_HOOK_REQUEST,       /* on_request             */
	RT_HOOK_REGISTER,      /* on_register            */
	RT_HOOK_SPAWN,         /* sip.spawn, callbacks: no hook */
	RT_HOOK_SUBSCRIBE,     /* sip.on_subscribe(package, fn): the
				* feature pushes the function         */
	RT_HOOK_MAX
};

/* What a feature keeps in the runtime (for the runtime's life) or in
 * a generation (for its life): a mem object, released by the owner */
enum rt_slot {
	RT_SLOT_REGISTRAR = 0,  /* api_registrar.c: runtime: struct regsvc,
				 * generation: its configure{}          */
	RT_SLOT_REGISTER,       /* api_register.c: runtime: the client
				 * registrations                        */
	RT_SLOT_REGISTER_ROUTE, /* api_registrar.c: runtime: the stack
				 * handler taking REGISTER              */
	RT_SLOT_EVENTS,         /* api_events.c: runtime: the packages
				 * listened to                          */
	RT_SLOT_MEDIA,          /* api_media.c: runtime: the media
				 * engine (its threads)                 */
	RT_SLOT_PROXY,          /* api_proxy.c: generation: its
				 * sip.proxy.configure{}                */
	RT_SLOT_MAX
};

/* push values on co; returns how many (or -1: nothing to run) */
typedef int  (rt_push_h)(lua_State *co, void *arg);
/* how a task ended: failed (after its hook_error was logged), else
 * with nres values on co */
typedef void (rt_end_h)(lua_State *co, bool failed, int nres, void *ctx);
/* stops the source of an op that ends without it */
typedef void (rt_cleanup_h)(struct rt_op *op, void *ctx);


/* ---- errors (runtime.c) ---- */

/* The string a script sees for err: short, lowercase, stable */
const char *rt_errstr(int err);
/* push nil, rt_errstr(err); returns 2 */
int  rt_fail(lua_State *L, int err);
/* 0: push true, returns 1; else rt_fail() */
int  rt_result(lua_State *L, int err);


/* ---- the yield protocol (runtime.c) ---- */

/* The calling task's next op; raises when L is no task (fn names the
 * function) or on no memory */
struct rt_op *rt_op_start(lua_State *L, const char *fn);
/* The arg of a source that calls back exactly once (unless its start
 * fails): the op is kept for it */
void *rt_op_arg(struct rt_op *op);
/* A source that can be stopped: h(op, ctx) runs once when the op ends,
 * whatever ended it. ctx (a mem object, or NULL) is held until then. */
void rt_op_cleanup(struct rt_op *op, rt_cleanup_h *h, void *ctx);
/* End the op after ms with push's values */
void rt_op_timeout(struct rt_op *op, uint64_t ms, rt_push_h *push,
		   void *arg);
/* return rt_op_yield(L, op): yields until the op ends (or returns its
 * values at once if it already ended) */
int  rt_op_yield(lua_State *L, struct rt_op *op);
/* return rt_op_abort(L, op, err): the start failed, no callback comes;
 * returns nil, rt_errstr(err) */
int  rt_op_abort(lua_State *L, struct rt_op *op, int err);
/* The op's event: resume its task with push's values (push may be
 * NULL: none). Nothing happens but freeing when the task is gone or
 * the op ended already. */
void rt_op_resume(struct rt_op *op, rt_push_h *push, void *arg);


/* ---- tasks (runtime.c) ---- */

/* Raises unless L runs in a task (fn names the function) */
void rt_need_task(lua_State *L, const char *fn);
/* A new task of sc running hook h (its function pushed on the
 * coroutine), or for RT_HOOK_SPAWN and after nothing pushed yet. NULL when sc has
 * no such hook, is closing, or no memory. */
struct task *rt_task_new(struct script *sc, enum rt_hook h);
lua_State *rt_task_co(const struct task *t);
/* endh is told how the task ended (instead of the request answer);
 * ctx, a mem object, is held by the task until it ends */
void rt_task_set_end(struct task *t, rt_end_h *endh, void *ctx);
/* Call-ID for log lines of a task without a request (the string must
 * live as long as the task: a ctx's) */
void rt_task_set_callid(struct task *t, const char *callid);
/* Runs the task with the nargs values on top of its coroutine; t may
 * be gone when this returns. */
void rt_task_run(struct task *t, int nargs);
/* The request of the running task, or NULL */
struct stack_req *rt_task_req(lua_State *L);


/* ---- generations and the runtime (runtime.c) ---- */

struct script *rt_script(lua_State *L);
struct luart *rt_runtime(lua_State *L);     /* NULL: sipstack --check */
struct stack *rt_stack(lua_State *L);       /* NULL: no running stack */
lua_State *rt_script_L(const struct script *sc);
bool rt_script_closing(const struct script *sc);
bool rt_script_has_hook(const struct script *sc, enum rt_hook h);
void *rt_script_slot(const struct script *sc, enum rt_slot s);
void rt_script_set_slot(struct script *sc, enum rt_slot s, void *obj);
struct stack_config *rt_config(lua_State *L);   /* the generation's */
/* Limits of the generation's runs (sip.configure{hook_budget_ms=,
 * lua_memory_max=, jit=}, docs/lua-api.md "Limits"); set at load, in
 * force once the script has loaded */
struct rt_limits {
	uint32_t budget_ms;     /* per run of a task; 0: none        */
	uint64_t memory_max;    /* bytes of the generation's heap    */
	bool jit;               /* LuaJIT's compiler on              */
};
#define RT_BUDGET_MS_DEFAULT   1000
#define RT_MEMORY_MAX_DEFAULT  (256u * 1024 * 1024)
struct rt_limits *rt_limits(lua_State *L);
/* Raises unless the script is loading (its top level) */
void rt_need_loading(lua_State *L, const char *fn);
/* sip.on_*(fn): sets hook h to the function at index 1 */
int  rt_set_hook(lua_State *L, enum rt_hook h);
/* the on_request filter, " A B " (taken), or NULL: every method */
void rt_set_request_methods(lua_State *L, char *methods);
int  rt_spawn(lua_State *L);                 /* sip.spawn(fn, ...)   */
int  rt_src_line(lua_State *L, char *buf, size_t sz);
void rt_require(lua_State *L, const char *name);
/* anchor the value at the top of L (popped) in sc's registry */
int  rt_ref(lua_State *L);
/* drop an anchor, unless the generation is being torn down */
void rt_unref(struct script *sc, int ref);

struct script *rt_current(const struct luart *rt);
struct stack *rt_runtime_stack(const struct luart *rt);
void *rt_slot(const struct luart *rt, enum rt_slot s);
/* the old object is released */
void rt_set_slot(struct luart *rt, enum rt_slot s, void *obj);
/* Runs hook h of the current generation with push's arguments in a
 * task of its own; ENOENT when there is no such hook */
int  rt_fire(struct luart *rt, enum rt_hook h, rt_push_h *push,
	     void *arg);
/* Runs hook h of the current generation for req (0: taken) */
int  rt_request(struct luart *rt, enum rt_hook h, struct stack_req *req);


/* ---- features: each injects its functions into the sip table at the
 * top of L, and may act when a generation becomes current (before it
 * does; an error refuses the generation) and when the runtime goes ---- */

/* stats.c: the figures of sip.stats() and `sipstack ctl stats` */
int  stats_odict(struct odict **odp, struct luart *rt, lua_State *L);
void stats_push(lua_State *L, const struct odict *o, bool array);

void api_sip_inject(lua_State *L);
void api_request_inject(lua_State *L);
void api_call_inject(lua_State *L);
int  api_call_activate(struct luart *rt, struct script *sc);
void api_call_close(struct luart *rt);
void api_registrar_inject(lua_State *L);
int  api_registrar_activate(struct luart *rt, struct script *sc);
void api_registrar_close(struct luart *rt);
/* the registrar's verifier (call:authenticate); raises without a
 * registrar or with its auth off (fn names the function) */
struct auth *api_registrar_auth(lua_State *L, const char *fn);
void api_register_inject(lua_State *L);
void api_register_close(struct luart *rt);
void api_events_inject(lua_State *L);
int  api_events_activate(struct luart *rt, struct script *sc);
void api_events_close(struct luart *rt);

/* api_call.c: the call object, for the others */
void api_call_push(lua_State *L, struct script *sc, struct call *call);
/* a Replaces header value (RFC 3891) for the call or the table at idx */
void api_replaces_value(lua_State *L, int idx, char *buf, size_t sz);
struct call *api_call_check(lua_State *L, int idx);   /* raises */
/* the call at idx reports its progress to sub (a REFER's), and ends
 * referred's Referring at its final answer */
void api_call_follow_refer(lua_State *L, int idx, struct sub *sub,
			   struct call *referred);
/* api_events.c: a REFER to sc's on_incoming_refer (call: the call it
 * came in, call_ref its userdata's registry ref in sc, or NULL and
 * LUA_NOREF); true when the hook took it */
bool api_refer_run(struct script *sc, struct stack_req *req,
		   struct call *call, int call_ref);
void api_metrics_inject(lua_State *L);
/* api_proxy.c: sip.proxy, req:proxy, req:relay (after request's) */
void api_proxy_inject(lua_State *L);
int  api_proxy_activate(struct luart *rt, struct script *sc);

/* api_call.c: what api_media.c uses of the call object */
struct lcall;
struct lmedia;
struct lcall *api_call_lcall(lua_State *L, int idx);    /* raises */
struct call *api_call_of(const struct lcall *lc);
struct lmedia **api_call_media(struct lcall *lc);
/* the call's on_dtmf(digit, seconds), in a task of its own */
void api_call_dtmf(struct lcall *lc, char digit, uint32_t dur_ms);
/* methods added to the call object's (the table at the top of L) */
void api_call_add_methods(lua_State *L, const luaL_Reg *methods);

/* api_media.c: media for calls (call:play, collect, send_dtmf,
 * record; sip.media) */
void api_media_inject(lua_State *L);
/* sip.call(..., {media = true}): the offer, and its lmedia to attach
 * to the call once made (the lmedia is the caller's until then) */
int  api_media_offer(lua_State *L, struct lmedia **lmp, struct mbuf **mbp);
void api_media_attach(struct lmedia *lm, struct lcall *lc);
/* the call takes INFO digits (on_dtmf, collect) even without media */
void api_media_enable(struct lcall *lc);
/* call:answer{media = true}, the options table at idx */
int  api_media_answer(lua_State *L, struct lcall *lc, int idx);
/* the peer's SDP changed; an INFO with a digit (true: taken); the
 * call ended (every wait returns nil, "hangup") */
void api_media_sdp(struct lmedia *lm, const uint8_t *body, size_t len);
bool api_media_info(struct lmedia *lm, struct stack_req *req);
void api_media_end(struct lmedia *lm);

/* api_request.c: the request object and header tables, for the others */
void api_request_push(lua_State *L, struct stack_req *req);
struct stack_req *api_request_check(lua_State *L, int idx);
/* the header named at index 2 of msg (NULL: none): its first value or
 * nil, or (all) the list of its values; returns 1 */
int  api_msg_headers(lua_State *L, const struct sip_msg *msg, bool all);
/* headers table at idx (may be nil) -> *hdrs, a mem string or NULL;
 * raises on bad headers */
void api_headers_encode(lua_State *L, int idx, char **hdrs);

/* api_request.c: requests of ours (sip.request, call:request). The
 * method at idx, an upper-case token; raises otherwise, and for the
 * methods that have a function of their own, naming it (in_call: for
 * call:request, else sip.request) */
const char *api_method_check(lua_State *L, int idx, bool in_call);
/* Field key of the table at idx: NULL when nil, else a sip: or sips:
 * URI (raises otherwise), left on L's stack */
const char *api_uri_field(lua_State *L, int idx, const char *key);
/* The options table at idx (may be nil): headers, body, content_type,
 * timeout, and with_from (out of dialog), from and next_hop; raises on
 * anything else. The strings point into values it leaves on L's stack;
 * hdrs is the caller's to mem_deref (made last: nothing raises after
 * it). */
struct api_reqopts {
	char *hdrs;
	const char *body, *ctype, *from;
	const char *next_hop;         /* out of dialog only; NULL: the URI */
	size_t len;
	uint64_t timeout_ms;          /* 0: the transaction's own end */
};
void api_reqopts_check(lua_State *L, int idx, struct api_reqopts *o,
		       bool with_from);
/* stack_resp_h for an op (arg: rt_op_arg(op)): resumes it with code,
 * reason, body, content_type | nil, err */
void api_final_h(int err, const struct sip_msg *msg, void *arg);
/* ... and its options' timeout: nil, "timeout" when it is over */
void api_final_wait(struct rt_op *op, const struct api_reqopts *o);

#endif
