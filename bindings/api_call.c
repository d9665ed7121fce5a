/**
 * bindings/api_call.c  Calls for scripts: sip.call and on_incoming_call
 *
 * Owns struct lcall, the Lua side of a struct call: the userdata
 * "sipstack.call" holds a reference on the call, and the lcall anchors
 * the userdata (so a script may drop it) until the call ends. Callbacks
 * (call.on_answered = function ... end) live in the userdata's
 * environment table; each event runs its callback in a task of its own,
 * so callbacks may sleep too. An lcall holds its script generation: a
 * call placed or taken before a reload keeps running in the old one.
 *
 * Exposes sip.call, sip.on_incoming_call routing, and the methods of
 * the call object. Uses server/call.c.
 */
#include <string.h>
#include <re.h>
#include "sipstack.h"
#include "core.h"
#include "runtime.h"


#define CALL_MT "sipstack.call"

struct lcall {
	struct call *call;       /* reference                          */
	struct script *sc;       /* reference: the generation it runs in */
	int ref;                 /* registry ref of the userdata while
				  * the call lives, else LUA_NOREF      */
	struct task *waiter;     /* a task in call:wait_answer()       */
	struct tmr tmr_wait;
	uint16_t code;           /* final response code (outgoing)     */
	char *reason;            /* its reason phrase                  */
};

struct ludata {
	struct lcall *lc;
};


static void lcall_destructor(void *arg)
{
	struct lcall *lc = arg;

	tmr_cancel(&lc->tmr_wait);
	call_set_handler(lc->call, NULL, NULL);
	mem_deref(lc->call);
	mem_deref(lc->reason);
	mem_deref(lc->sc);
}


/* ------------------------------------------------------------------ *
 * Events to Lua
 * ------------------------------------------------------------------ */

static void push_udata(lua_State *L, struct lcall *lc)
{
	if (lc->ref == LUA_NOREF)
		lua_pushnil(L);
	else
		lua_rawgeti(L, LUA_REGISTRYINDEX, lc->ref);
}


/* Push the callback named name of the call, or return false */
static bool push_callback(lua_State *L, struct lcall *lc, const char *name)
{
	push_udata(L, lc);
	if (lua_isnil(L, -1)) {
		lua_pop(L, 1);
		return false;
	}

	lua_getfenv(L, -1);
	lua_getfield(L, -1, name);
	lua_remove(L, -2);
	lua_remove(L, -2);
	if (!lua_isfunction(L, -1)) {
		lua_pop(L, 1);
		return false;
	}

	return true;
}


/* A task with the callback named name on its stack, or NULL when the
 * call has none (or its script is closing) */
static struct task *callback_task(struct lcall *lc, const char *name)
{
	struct task *t;

	if (!lc->sc || lc->sc->closing || lc->ref == LUA_NOREF)
		return NULL;

	if (!push_callback(lc->sc->L, lc, name))
		return NULL;

	t = lua_task_new(lc->sc, LH_SPAWN, NULL);
	if (!t) {
		lua_pop(lc->sc->L, 1);
		return NULL;
	}
	lua_xmove(lc->sc->L, t->co, 1);

	return t;
}


static void run_callback(struct lcall *lc, const char *name,
			 const struct call_event *ev)
{
	struct task *t = callback_task(lc, name);
	int n = 0;

	if (!t)
		return;

	switch (ev->type) {

	case CALL_EV_STATE:
		lua_pushstring(t->co, ev->from_state);
		lua_pushstring(t->co, ev->to_state);
		n = 2;
		break;

	case CALL_EV_ANSWERED:
		lua_pushlstring(t->co, (const char *)ev->body, ev->len);
		lua_pushstring(t->co, ev->ctype ? ev->ctype : "");
		n = 2;
		break;

	case CALL_EV_REJECTED:
		lua_pushinteger(t->co, ev->code);
		lua_pushstring(t->co, ev->reason ? ev->reason : "");
		n = 2;
		break;

	case CALL_EV_TERMINATED:
		lua_pushstring(t->co, ev->reason ? ev->reason : "");
		n = 1;
		break;

	case CALL_EV_RINGING:
		lua_pushinteger(t->co, ev->code);
		n = 1;
		break;

	case CALL_EV_INFO:
		lua_push_request(t->co, ev->req);
		n = 1;
		break;

	default:
		break;
	}

	task_resume(t, n);
}


static void wake_waiter(struct lcall *lc)
{
	struct task *t = lc->waiter;

	if (!t)
		return;

	lc->waiter = NULL;
	t->op = NULL;
	t->cleanup = NULL;
	tmr_cancel(&lc->tmr_wait);

	if (call_is_answered(lc->call) && !call_is_ended(lc->call)) {
		lua_pushboolean(t->co, 1);
		task_resume(t, 1);
		return;
	}

	lua_pushnil(t->co);
	if (lc->code >= 300) {
		lua_pushstring(t->co, "rejected");
		lua_pushinteger(t->co, lc->code);
	}
	else {
		const char *r = call_end_reason(lc->call);

		lua_pushstring(t->co, r ? r : "ended");
		lua_pushnil(t->co);
	}
	task_resume(t, 3);
}


struct dlgev {
	struct lcall *lc;
	const char *name;
};


static int push_dlgev(lua_State *co, void *arg)
{
	const struct dlgev *d = arg;

	push_udata(co, d->lc);
	lua_pushstring(co, d->name);

	return 2;
}


/* sip.on_dialog_event(fn): fn(call, "Ringing"|"Answered"|...) in the
 * generation the call belongs to */
static void dialog_hook(struct lcall *lc, const char *name)
{
	struct dlgev d = {lc, name};
	struct task *t;

	if (!lc->sc || lc->sc->closing || lc->ref == LUA_NOREF ||
	    lc->sc->hooks[LH_DIALOG] == LUA_NOREF)
		return;

	t = lua_task_new(lc->sc, LH_DIALOG, NULL);
	if (!t)
		return;

	lua_rawgeti(t->co, LUA_REGISTRYINDEX, lc->sc->hooks[LH_DIALOG]);
	task_resume(t, push_dlgev(t->co, &d));
}


static struct lcall *push_call(lua_State *L, struct script *sc,
			       struct call *call);


/* on_fork raised an error: the fork it was given is hung up, so a
 * failed script leaves no call up that nobody looks after */
static void fork_end(struct task *t, bool failed, int nres)
{
	(void)nres;

	if (failed)
		(void)call_hangup(t->ctx, "script error");
}


/* Another fork answered: kept only if the call has on_fork, which gets
 * the fork as a call object of its own (Connected), its body and type */
static void fork_event(struct lcall *lc, const struct call_event *ev)
{
	struct task *t = callback_task(lc, "on_fork");
	struct lcall *flc;

	if (!t)
		return;

	t->endh = fork_end;
	t->ctx = mem_ref(ev->fork);
	pl_set_str(&t->callid, call_id(ev->fork));   /* the call outlives t */

	flc = push_call(t->co, lc->sc, ev->fork);
	lua_pushlstring(t->co, (const char *)ev->body, ev->len);
	lua_pushstring(t->co, ev->ctype ? ev->ctype : "");

	/* on_dialog_event hears of the new dialog as of any answered one
	 * (its call FSM reached Connected before it had an owner) */
	dialog_hook(flc, dialog_event_name(DIALOG_EV_ANSWERED));

	task_resume(t, 3);
}


static void event_handler(struct call *call, const struct call_event *ev,
			  void *arg)
{
	struct lcall *lc = arg;
	(void)call;

	mem_ref(lc);

	switch (ev->type) {

	case CALL_EV_STATE:
		run_callback(lc, "on_state_change", ev);
		break;

	case CALL_EV_RINGING:
		run_callback(lc, "on_ringing", ev);
		break;

	case CALL_EV_ANSWERED:
		run_callback(lc, "on_answered", ev);
		wake_waiter(lc);
		break;

	case CALL_EV_REJECTED:
		lc->code = ev->code;
		(void)str_dup(&lc->reason, ev->reason);
		run_callback(lc, "on_rejected", ev);
		break;

	case CALL_EV_HOLD:
		run_callback(lc, "on_hold", ev);
		break;

	case CALL_EV_INFO:
		run_callback(lc, "on_info", ev);
		break;

	case CALL_EV_DIALOG:
		dialog_hook(lc, ev->reason);
		break;

	case CALL_EV_FORK:
		fork_event(lc, ev);
		break;

	case CALL_EV_UNHOLD:
		run_callback(lc, "on_unhold", ev);
		break;

	case CALL_EV_TERMINATED:
		run_callback(lc, "on_terminated", ev);
		wake_waiter(lc);
		/* the call is over: the script may now collect it, and
		 * an old generation of the script may close */
		if (lc->ref != LUA_NOREF && !lc->sc->closing) {
			luaL_unref(lc->sc->L, LUA_REGISTRYINDEX, lc->ref);
			lc->ref = LUA_NOREF;
		}
		if (!lc->sc->closing)
			lc->sc = mem_deref(lc->sc);
		mem_deref(lc);      /* the call's hold on us */
		break;

	default:
		break;
	}

	mem_deref(lc);
}


/* ------------------------------------------------------------------ *
 * The call object
 * ------------------------------------------------------------------ */

static struct lcall *push_call(lua_State *L, struct script *sc,
			       struct call *call)
{
	struct ludata *ud;
	struct lcall *lc;

	lc = mem_zalloc(sizeof(*lc), lcall_destructor);
	if (!lc) {
		luaL_error(L, "out of memory");
		return NULL;
	}

	lc->call = mem_ref(call);
	lc->sc = mem_ref(sc);
	lc->ref = LUA_NOREF;
	tmr_init(&lc->tmr_wait);

	ud = lua_newuserdata(L, sizeof(*ud));
	ud->lc = lc;
	luaL_getmetatable(L, CALL_MT);
	lua_setmetatable(L, -2);
	lua_newtable(L);
	lua_setfenv(L, -2);

	/* anchored until the call ends; the call holds the lcall */
	lua_pushvalue(L, -1);
	lc->ref = luaL_ref(L, LUA_REGISTRYINDEX);
	call_set_handler(call, event_handler, mem_ref(lc));

	return lc;
}


static struct lcall *check_call(lua_State *L, int idx)
{
	struct ludata *ud = luaL_checkudata(L, idx, CALL_MT);

	return ud->lc;
}


static int ret_err(lua_State *L, int err)
{
	if (!err) {
		lua_pushboolean(L, 1);
		return 1;
	}

	lua_pushnil(L);
	lua_pushstring(L, err == ENOTCONN ? "not possible in this state" :
		       err == EINVAL ? "invalid" : "failed");

	return 2;
}


/* call:ringing([code [, reason [, body, content_type]]]) */
static int l_ringing(lua_State *L)
{
	struct lcall *lc = check_call(L, 1);
	uint16_t code = (uint16_t)luaL_optinteger(L, 2, 180);
	const char *reason = luaL_optstring(L, 3, code == 180 ? "Ringing" :
					    "Session Progress");
	size_t len = 0;
	const char *body = luaL_optlstring(L, 4, NULL, &len);
	const char *ctype = luaL_optstring(L, 5, NULL);

	if (code < 101 || code > 199)
		return luaL_argerror(L, 2, "101..199 expected");
	if (call_is_outgoing(lc->call))
		return luaL_error(L, "ringing: not an incoming call");
	if (body && len && !ctype)
		return luaL_argerror(L, 5, "a body needs a content type");

	return ret_err(L, call_ringing(lc->call, code, reason, NULL, ctype,
				       (const uint8_t *)body, len));
}


static int answer(lua_State *L, int hidx)
{
	struct lcall *lc = check_call(L, 1);
	size_t len = 0;
	const char *body = luaL_optlstring(L, 2, NULL, &len);
	const char *ctype = luaL_optstring(L, 3, len ? "application/sdp" :
					   NULL);
	char *hdrs = NULL;
	int err;

	if (call_is_outgoing(lc->call))
		return luaL_error(L, "answer: not an incoming call");
	if (ctype && strpbrk(ctype, "\r\n"))
		return luaL_argerror(L, 3, "invalid content type");

	if (hidx)
		lua_headers_encode(L, hidx, &hdrs);

	err = call_answer(lc->call, hdrs, ctype, (const uint8_t *)body, len);
	mem_deref(hdrs);

	return ret_err(L, err);
}

/* call:answer([body [, content_type]]) */
static int l_answer(lua_State *L)     { return answer(L, 0); }
/* call:answer_with_options(body, content_type, headers) */
static int l_answer_opts(lua_State *L) { return answer(L, 4); }


/* call:reject([code [, reason]]) */
static int l_reject(lua_State *L)
{
	struct lcall *lc = check_call(L, 1);
	uint16_t code = (uint16_t)luaL_optinteger(L, 2, 486);
	const char *reason = luaL_optstring(L, 3, NULL);

	if (code < 300 || code > 699)
		return luaL_argerror(L, 2, "300..699 expected");
	if (reason && strpbrk(reason, "\r\n"))
		return luaL_argerror(L, 3, "reason holds CR or LF");
	if (call_is_outgoing(lc->call))
		return luaL_error(L, "reject: not an incoming call (use "
				  "cancel or hangup)");

	return ret_err(L, call_reject(lc->call, code, reason, NULL));
}


static int l_hangup(lua_State *L)
{
	struct lcall *lc = check_call(L, 1);

	return ret_err(L, call_hangup(lc->call, "hangup"));
}


static int l_cancel(lua_State *L)
{
	struct lcall *lc = check_call(L, 1);

	if (!call_is_outgoing(lc->call))
		return luaL_error(L, "cancel: not an outgoing call");

	return ret_err(L, call_cancel(lc->call));
}


static void wait_cleanup(struct task *t)
{
	struct lcall *lc = t->ctx;

	if (lc && lc->waiter == t) {
		lc->waiter = NULL;
		tmr_cancel(&lc->tmr_wait);
	}
	t->op = NULL;
}


static void wait_timeout(void *arg)
{
	struct lcall *lc = arg;
	struct task *t = lc->waiter;

	if (!t)
		return;

	lc->waiter = NULL;
	t->op = NULL;
	t->cleanup = NULL;
	lua_pushnil(t->co);
	lua_pushstring(t->co, "timeout");
	lua_pushnil(t->co);
	task_resume(t, 3);
}


/* call:wait_answer([timeout]) -> true | nil, err, code */
static int l_wait_answer(lua_State *L)
{
	struct lcall *lc = check_call(L, 1);
	lua_Number timeout = luaL_optnumber(L, 2, 0);
	struct task *t = lua_need_task(L, "wait_answer");

	if (!call_is_outgoing(lc->call))
		return luaL_error(L, "wait_answer: not an outgoing call");
	if (lc->waiter)
		return luaL_error(L, "wait_answer: another task waits");
	if (timeout < 0)
		return luaL_argerror(L, 2, "seconds >= 0 expected");

	if (call_is_answered(lc->call) && !call_is_ended(lc->call)) {
		lua_pushboolean(L, 1);
		return 1;
	}
	if (call_is_ended(lc->call)) {
		lua_pushnil(L);
		lua_pushstring(L, lc->code >= 300 ? "rejected" :
			       call_end_reason(lc->call));
		if (lc->code >= 300)
			lua_pushinteger(L, lc->code);
		else
			lua_pushnil(L);
		return 3;
	}

	lc->waiter = t;
	t->op = lc;
	mem_deref(t->ctx);
	t->ctx = mem_ref(lc);
	t->cleanup = wait_cleanup;
	if (timeout > 0)
		tmr_start(&lc->tmr_wait, (uint64_t)(timeout * 1000),
			  wait_timeout, lc);

	return lua_yield(L, 0);
}


/* hold, unhold and update yield until the re-INVITE is answered */
static void reinvite_h(int err, uint16_t scode, void *arg)
{
	struct task *t = taskop_finish(arg);

	if (!t)
		return;

	if (!err && scode >= 200 && scode < 300) {
		lua_pushboolean(t->co, 1);
		lua_pushinteger(t->co, scode);
		task_resume(t, 2);
		return;
	}
	else {
		lua_pushnil(t->co);
		lua_pushstring(t->co, err == ENOTCONN ? "ended" :
			       err ? "failed" : "rejected");
		if (scode)
			lua_pushinteger(t->co, scode);
		else
			lua_pushnil(t->co);
	}
	task_resume(t, 3);
}


static int reinvite(lua_State *L, int kind)
{
	struct lcall *lc = check_call(L, 1);
	struct task *t = lua_need_task(L, kind == CALL_REINVITE_HOLD ?
				       "hold" : kind == CALL_REINVITE_UNHOLD
				       ? "unhold" : "update");
	struct taskop *op;
	int err;

	op = taskop_new(t);
	if (!op)
		return luaL_error(L, "out of memory");

	if (kind == CALL_REINVITE_UPDATE) {
		size_t len;
		const char *body = luaL_checklstring(L, 2, &len);
		const char *ctype = luaL_optstring(L, 3, "application/sdp");

		if (strpbrk(ctype, "\r\n")) {
			mem_deref(op);
			return luaL_argerror(L, 3, "invalid content type");
		}
		err = call_reinvite(lc->call, CALL_REINVITE_UPDATE, NULL,
				    ctype, (const uint8_t *)body, len,
				    reinvite_h, op);
	}
	else {
		err = call_hold(lc->call, kind == CALL_REINVITE_HOLD,
				reinvite_h, op);
	}

	if (err) {
		mem_deref(op);
		lua_pushnil(L);
		lua_pushstring(L, err == ENOTCONN ? "not connected" :
			       err == EALREADY ? "re-INVITE pending" :
			       err == ENOENT ? "no SDP to re-offer" :
			       "failed");
		return 2;
	}

	taskop_attach(op);

	return lua_yield(L, 0);
}

/* call:hold() / call:unhold() / call:update(body [, ct]) ->
 * true, code | nil, err [, code] */
static int l_hold(lua_State *L)   { return reinvite(L, CALL_REINVITE_HOLD); }
static int l_unhold(lua_State *L) { return reinvite(L, CALL_REINVITE_UNHOLD); }
static int l_update(lua_State *L) { return reinvite(L, CALL_REINVITE_UPDATE); }


/* call:history() -> { {from=, to=, event=, ts=}, ... } */
static int l_history(lua_State *L)
{
	struct lcall *lc = check_call(L, 1);
	struct fsm *f = call_fsm(lc->call);
	size_t i, n = fsm_history_count(f);

	lua_createtable(L, (int)n, 0);
	for (i = 0; i < n; i++) {
		struct fsm_hist h;

		if (fsm_history(f, i, &h))
			break;
		lua_createtable(L, 0, 4);
		lua_pushstring(L, h.from);
		lua_setfield(L, -2, "from");
		lua_pushstring(L, h.to);
		lua_setfield(L, -2, "to");
		lua_pushstring(L, h.event);
		lua_setfield(L, -2, "event");
		lua_pushnumber(L, (lua_Number)h.ts_us / 1e6);
		lua_setfield(L, -2, "ts");
		lua_rawseti(L, -2, (int)i + 1);
	}

	return 1;
}


static int l_is_answered(lua_State *L)
{
	lua_pushboolean(L, call_is_answered(check_call(L, 1)->call));
	return 1;
}

static int l_is_terminated(lua_State *L)
{
	lua_pushboolean(L, call_is_ended(check_call(L, 1)->call));
	return 1;
}

static int l_is_on_hold(lua_State *L)
{
	struct call *call = check_call(L, 1)->call;

	lua_pushboolean(L, call_is_on_hold(call) || call_is_local_hold(call));
	return 1;
}


static int l_index(lua_State *L)
{
	struct lcall *lc = check_call(L, 1);
	const char *k = luaL_checkstring(L, 2);

	if (!strcmp(k, "id")) {
		lua_pushstring(L, call_id(lc->call));
		return 1;
	}
	if (!strcmp(k, "state")) {
		lua_pushstring(L, call_state(lc->call));
		return 1;
	}
	if (!strcmp(k, "direction")) {
		lua_pushstring(L, call_is_outgoing(lc->call) ? "outgoing" :
			       "incoming");
		return 1;
	}
	if (!strcmp(k, "from")) {
		lua_pushstring(L, call_from(lc->call));
		return 1;
	}
	if (!strcmp(k, "to")) {
		lua_pushstring(L, call_to(lc->call));
		return 1;
	}
	if (!strcmp(k, "body") || !strcmp(k, "content_type")) {
		size_t len = 0;
		const char *ct = NULL;
		const char *b = call_remote_body(lc->call, &len, &ct);

		if (!strcmp(k, "body"))
			lua_pushlstring(L, b ? b : "", b ? len : 0);
		else if (ct)
			lua_pushstring(L, ct);
		else
			lua_pushnil(L);
		return 1;
	}
	if (!strcmp(k, "end_reason")) {
		lua_pushstring(L, call_end_reason(lc->call));
		return 1;
	}

	/* methods, then the callbacks the script stored */
	lua_getmetatable(L, 1);
	lua_getfield(L, -1, k);
	if (!lua_isnil(L, -1))
		return 1;
	lua_pop(L, 2);
	lua_getfenv(L, 1);
	lua_getfield(L, -1, k);

	return 1;
}


/* call.on_answered = function(body, ct) ... end, and the like */
static int l_newindex(lua_State *L)
{
	static const char *cbs[] = {
		"on_ringing", "on_answered", "on_rejected", "on_terminated",
		"on_state_change", "on_hold", "on_unhold", "on_info",
		"on_fork", NULL
	};
	const char *k = luaL_checkstring(L, 2);
	const char **p;

	(void)check_call(L, 1);
	for (p = cbs; *p && strcmp(*p, k); p++)
		;
	if (!*p)
		return luaL_error(L, "call: cannot set '%s' (callbacks: "
				  "on_ringing, on_answered, on_rejected, "
				  "on_terminated, on_state_change, on_hold, "
				  "on_unhold, on_info, on_fork)", k);
	if (!lua_isnil(L, 3))
		luaL_checktype(L, 3, LUA_TFUNCTION);

	lua_getfenv(L, 1);
	lua_pushvalue(L, 3);
	lua_setfield(L, -2, k);

	return 0;
}


static int l_gc(lua_State *L)
{
	struct ludata *ud = luaL_checkudata(L, 1, CALL_MT);

	ud->lc = mem_deref(ud->lc);

	return 0;
}


static int l_tostring(lua_State *L)
{
	struct lcall *lc = check_call(L, 1);

	lua_pushfstring(L, "sip call %s (%s, %s)", call_id(lc->call),
			call_is_outgoing(lc->call) ? "outgoing" : "incoming",
			call_state(lc->call));

	return 1;
}


/* ------------------------------------------------------------------ *
 * sip.call and on_incoming_call
 * ------------------------------------------------------------------ */

/* sip.call(to [, body [, content_type [, {from=, headers=}]]]) */
static int l_call(lua_State *L)
{
	struct script *sc = lua_script(L);
	struct stack *st = sc->rt ? luart_stack(sc->rt) : NULL;
	const char *to = luaL_checkstring(L, 1);
	size_t len = 0;
	const char *body = luaL_optlstring(L, 2, NULL, &len);
	const char *ctype = luaL_optstring(L, 3, len ? "application/sdp" :
					   NULL);
	const char *from = NULL, *user = NULL, *password = NULL;
	char *hdrs = NULL;
	struct call *call = NULL;
	int err;

	if (strncmp(to, "sip:", 4))
		return luaL_argerror(L, 1, "sip: URI expected");
	if (ctype && strpbrk(ctype, "\r\n"))
		return luaL_argerror(L, 3, "invalid content type");

	if (!lua_isnoneornil(L, 4)) {
		luaL_checktype(L, 4, LUA_TTABLE);
		lua_getfield(L, 4, "from");
		from = lua_tostring(L, -1);
		if (from && strncmp(from, "sip:", 4))
			return luaL_argerror(L, 4, "from: sip: URI expected");
		lua_getfield(L, 4, "user");
		user = lua_tostring(L, -1);
		lua_getfield(L, 4, "password");
		password = lua_tostring(L, -1);
		if (!user != !password)
			return luaL_argerror(L, 4, "user and password go "
					     "together");
		lua_getfield(L, 4, "headers");
		if (!lua_isnil(L, -1))
			lua_headers_encode(L, -1, &hdrs);
		lua_pop(L, 1);
	}

	if (!st || !stack_is_running(st)) {
		mem_deref(hdrs);
		lua_pushnil(L);
		lua_pushstring(L, "not running");
		return 2;
	}

	err = call_connect(&call, st, to, from, hdrs, ctype,
			   (const uint8_t *)body, len, NULL, NULL);
	mem_deref(hdrs);
	if (!err && user)
		err = call_set_credentials(call, user, password);
	if (err) {
		lua_pushnil(L);
		lua_pushstring(L, err == EINVAL ? "invalid uri" : "failed");
		return 2;
	}

	push_call(L, sc, call);
	mem_deref(call);

	return 1;
}


static void incoming_end(struct task *t, bool failed, int nres)
{
	struct call *call = t->ctx;

	if (failed) {
		(void)call_reject(call, 500, "Server Internal Error", NULL);
	}
	else if (nres >= 1 && lua_type(t->co, 1) == LUA_TNUMBER) {
		lua_Number n = lua_tonumber(t->co, 1);
		const char *reason = lua_tostring(t->co, 2);

		if (n >= 300 && n <= 699)
			(void)call_reject(call, (uint16_t)n, reason, NULL);
	}
}


static bool incoming_handler(struct call *call, void *arg)
{
	struct luart *rt = arg;
	struct script *sc = luart_current(rt);
	struct task *t;

	if (!sc || sc->hooks[LH_CALL] == LUA_NOREF)
		return false;

	t = lua_task_new(sc, LH_CALL, NULL);
	if (!t)
		return false;

	t->endh = incoming_end;
	t->ctx = mem_ref(call);
	pl_set_str(&t->callid, call_id(call));   /* the call outlives t */
	lua_rawgeti(t->co, LUA_REGISTRYINDEX, sc->hooks[LH_CALL]);
	push_call(t->co, sc, call);
	task_resume(t, 1);

	return true;
}


void lua_call_activate(struct luart *rt, struct script *sc)
{
	callmgr_set_incoming(luart_stack(rt), sc->hooks[LH_CALL] != LUA_NOREF
			     ? incoming_handler : NULL, rt);
}


void lua_call_open(lua_State *L)
{
	static const luaL_Reg call_methods[] = {
		{"ringing",             l_ringing},
		{"answer",              l_answer},
		{"answer_with_options", l_answer_opts},
		{"reject",              l_reject},
		{"hangup",              l_hangup},
		{"cancel",              l_cancel},
		{"wait_answer",         l_wait_answer},
		{"hold",                l_hold},
		{"unhold",              l_unhold},
		{"update",              l_update},
		{"history",             l_history},
		{"is_answered",         l_is_answered},
		{"is_terminated",       l_is_terminated},
		{"is_on_hold",          l_is_on_hold},
		{"__index",             l_index},
		{"__newindex",          l_newindex},
		{"__gc",                l_gc},
		{"__tostring",          l_tostring},
		{NULL, NULL}
	};

	luaL_newmetatable(L, CALL_MT);
	luaL_setfuncs(L, call_methods, 0);
	lua_pushliteral(L, CALL_MT);
	lua_setfield(L, -2, "__metatable");
	lua_pop(L, 1);

	lua_pushcfunction(L, l_call);
	lua_setfield(L, -2, "call");
}
