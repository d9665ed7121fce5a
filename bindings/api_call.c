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
 * the call object; its waits (call:wait_answer, hold, unhold, update,
 * request) are ops of the runtime's one yield shape (runtime.h). Uses
 * server/calls/ (calls.h), and the registrar's digest verifier for
 * call:authenticate (registrar.h, through api_registrar.c).
 */
#include <string.h>
#include <re.h>
#include "sipstack.h"
#include "runtime.h"


#define CALL_MT "sipstack.call"

struct lcall {
	struct call *call;       /* reference                          */
	struct script *sc;       /* reference: the generation it runs in */
	int ref;                 /* registry ref of the userdata while
				  * the call lives, else LUA_NOREF      */
	struct rt_op *waiter;    /* a task's call:wait_answer()        */
	uint16_t code;           /* final response code (outgoing)     */
	char *reason;            /* its reason phrase                  */
	struct sub *refer;       /* a transfer call: the REFER's
				  * subscription its progress goes to  */
	struct call *referred;   /* ... and the call that was referred  */
	struct lmedia *media;    /* call:answer{media=}, digits (api_media.c) */
};

struct ludata {
	struct lcall *lc;
};


static void lcall_destructor(void *arg)
{
	struct lcall *lc = arg;

	call_set_handler(lc->call, NULL, NULL);
	api_media_end(lc->media);
	mem_deref(lc->media);
	mem_deref(lc->refer);
	mem_deref(lc->referred);
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
	lua_State *L = rt_script_L(lc->sc);
	struct task *t;

	if (rt_script_closing(lc->sc) || lc->ref == LUA_NOREF)
		return NULL;

	if (!push_callback(L, lc, name))
		return NULL;

	t = rt_task_new(lc->sc, RT_HOOK_SPAWN);
	if (!t) {
		lua_pop(L, 1);
		return NULL;
	}
	lua_xmove(L, rt_task_co(t), 1);

	return t;
}


static void run_callback(struct lcall *lc, const char *name,
			 const struct call_event *ev)
{
	struct task *t = callback_task(lc, name);
	lua_State *co;
	int n = 0;

	if (!t)
		return;

	co = rt_task_co(t);
	switch (ev->type) {

	case CALL_EV_STATE:
		lua_pushstring(co, ev->from_state);
		lua_pushstring(co, ev->to_state);
		n = 2;
		break;

	case CALL_EV_ANSWERED:
		lua_pushlstring(co, (const char *)ev->body, ev->len);
		lua_pushstring(co, ev->ctype ? ev->ctype : "");
		n = 2;
		break;

	case CALL_EV_REJECTED:
		lua_pushinteger(co, ev->code);
		lua_pushstring(co, ev->reason ? ev->reason : "");
		n = 2;
		break;

	case CALL_EV_TERMINATED:
		lua_pushstring(co, ev->reason ? ev->reason : "");
		n = 1;
		break;

	case CALL_EV_RINGING:
		lua_pushinteger(co, ev->code);
		n = 1;
		break;

	case CALL_EV_INFO:
		api_request_push(co, ev->req);
		n = 1;
		break;

	default:
		break;
	}

	rt_task_run(t, n);
}


/* call:wait_answer()'s values: true | nil, "rejected", code |
 * nil, end reason */
static int push_answer(lua_State *co, void *arg)
{
	struct lcall *lc = arg;
	const char *r;

	if (call_is_answered(lc->call) && !call_is_ended(lc->call)) {
		lua_pushboolean(co, 1);
		return 1;
	}

	lua_pushnil(co);
	if (lc->code >= 300) {
		lua_pushstring(co, "rejected");
		lua_pushinteger(co, lc->code);
	}
	else {
		r = call_end_reason(lc->call);
		lua_pushstring(co, r ? r : "ended");
		lua_pushnil(co);
	}

	return 3;
}


/* The event a call:wait_answer() waits for came */
static void wake_waiter(struct lcall *lc)
{
	struct rt_op *op = lc->waiter;

	if (!op)
		return;

	lc->waiter = NULL;
	rt_op_resume(op, push_answer, lc);
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

	if (lc->ref == LUA_NOREF)
		return;

	t = rt_task_new(lc->sc, RT_HOOK_DIALOG);   /* NULL: no such hook */
	if (!t)
		return;

	rt_task_run(t, push_dlgev(rt_task_co(t), &d));
}


static struct lcall *push_call(lua_State *L, struct script *sc,
			       struct call *call);


/* on_fork raised an error: the fork it was given is hung up, so a
 * failed script leaves no call up that nobody looks after */
static void fork_end(lua_State *co, bool failed, int nres, void *ctx)
{
	(void)co;
	(void)nres;

	if (failed)
		(void)call_hangup(ctx, "script error");
}


/* Another fork answered: kept only if the call has on_fork, which gets
 * the fork as a call object of its own (Connected), its body and type */
static void fork_event(struct lcall *lc, const struct call_event *ev)
{
	struct task *t = callback_task(lc, "on_fork");
	struct lcall *flc;
	lua_State *co;

	if (!t)
		return;

	rt_task_set_end(t, fork_end, ev->fork);
	rt_task_set_callid(t, call_id(ev->fork));   /* the call outlives t */

	co = rt_task_co(t);
	flc = push_call(co, lc->sc, ev->fork);
	lua_pushlstring(co, (const char *)ev->body, ev->len);
	lua_pushstring(co, ev->ctype ? ev->ctype : "");

	/* on_dialog_event hears of the new dialog as of any answered one
	 * (its call FSM reached Connected before it had an owner) */
	dialog_hook(flc, dialog_event_name(DIALOG_EV_ANSWERED));

	rt_task_run(t, 3);
}


/* A transfer call tells the REFER's subscriber how it goes (RFC 3515
 * §2.4.5): 18x, then its final answer, which ends the subscription and
 * the referred call's Referring */
static void refer_progress(struct lcall *lc, const struct call_event *ev)
{
	uint16_t code = 0;
	const char *reason = NULL;

	switch (ev->type) {

	case CALL_EV_RINGING:
		(void)sub_refer_notify(lc->refer, ev->code ? ev->code : 180,
				       ev->reason);
		return;

	case CALL_EV_ANSWERED:
		code = 200;
		reason = "OK";
		break;

	case CALL_EV_REJECTED:
		code = ev->code;
		reason = ev->reason;
		break;

	case CALL_EV_TERMINATED:
		code = 487;      /* ended before any final answer */
		reason = "Request Terminated";
		break;

	default:
		return;
	}

	(void)sub_refer_notify(lc->refer, code, reason);
	(void)call_set_referring(lc->referred, false);
	lc->refer = mem_deref(lc->refer);
	lc->referred = mem_deref(lc->referred);
}


static void event_handler(struct call *call, const struct call_event *ev,
			  void *arg)
{
	struct lcall *lc = arg;
	(void)call;

	mem_ref(lc);

	if (lc->refer)
		refer_progress(lc, ev);

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
		/* a digit (INFO dtmf-relay/dtmf) for a call with media */
		if (!api_media_info(lc->media, ev->req))
			run_callback(lc, "on_info", ev);
		break;

	case CALL_EV_SDP:
		api_media_sdp(lc->media, ev->body, ev->len);
		break;

	case CALL_EV_DIALOG:
		dialog_hook(lc, ev->reason);
		break;

	case CALL_EV_FORK:
		fork_event(lc, ev);
		break;

	case CALL_EV_REFER:
		/* on_incoming_refer, in the call's generation */
		if (lc->ref != LUA_NOREF && !rt_script_closing(lc->sc))
			*ev->taken = api_refer_run(lc->sc, ev->req, lc->call,
						   lc->ref);
		break;

	case CALL_EV_UNHOLD:
		run_callback(lc, "on_unhold", ev);
		break;

	case CALL_EV_TERMINATED:
		api_media_end(lc->media);   /* waits return nil, "hangup" */
		run_callback(lc, "on_terminated", ev);
		wake_waiter(lc);
		/* the call is over: the script may now collect it, and
		 * an old generation of the script may close */
		if (!rt_script_closing(lc->sc)) {
			rt_unref(lc->sc, lc->ref);
			lc->ref = LUA_NOREF;
			lc->sc = mem_deref(lc->sc);
		}
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

	ud = lua_newuserdata(L, sizeof(*ud));
	ud->lc = lc;
	luaL_getmetatable(L, CALL_MT);
	lua_setmetatable(L, -2);
	lua_newtable(L);
	lua_setfenv(L, -2);

	/* anchored until the call ends; the call holds the lcall */
	lua_pushvalue(L, -1);
	lc->ref = rt_ref(L);
	call_set_handler(call, event_handler, mem_ref(lc));

	return lc;
}


static struct lcall *check_call(lua_State *L, int idx)
{
	struct ludata *ud = luaL_checkudata(L, idx, CALL_MT);

	return ud->lc;
}


/* The value of a Replaces header (RFC 3891) naming the dialog of the
 * call at idx, from the peer's side (its local tag is our remote one),
 * or given as {call_id=, to_tag=, from_tag= [, early_only=]}; raises */
void api_replaces_value(lua_State *L, int idx, char *buf, size_t sz)
{
	const char *cid, *tt, *ft;
	bool early = false;

	if (lua_isuserdata(L, idx)) {
		struct call *c = check_call(L, idx)->call;
		const struct dialog *dlg = call_dialog(c);

		if (!dlg || !dialog_rtag(dlg)[0])
			luaL_argerror(L, idx, "replaces: the call has no "
				      "dialog (ended, or not answered)");
		(void)re_snprintf(buf, sz, "%s;to-tag=%s;from-tag=%s",
				  dialog_callid(dlg), dialog_rtag(dlg),
				  dialog_ltag(dlg));
		return;
	}

	luaL_checktype(L, idx, LUA_TTABLE);
	lua_getfield(L, idx, "call_id");
	lua_getfield(L, idx, "to_tag");
	lua_getfield(L, idx, "from_tag");
	lua_getfield(L, idx, "early_only");
	cid = lua_tostring(L, -4);
	tt = lua_tostring(L, -3);
	ft = lua_tostring(L, -2);
	early = lua_toboolean(L, -1);
	if (!cid || !tt || !ft || strpbrk(cid, ";\r\n <>") ||
	    strpbrk(tt, ";\r\n <>") || strpbrk(ft, ";\r\n <>"))
		luaL_argerror(L, idx, "replaces: a call, or {call_id=, "
			      "to_tag=, from_tag=}");
	(void)re_snprintf(buf, sz, "%s;to-tag=%s;from-tag=%s%s", cid, tt, ft,
			  early ? ";early-only" : "");
	lua_pop(L, 4);
}


void api_call_push(lua_State *L, struct script *sc, struct call *call)
{
	(void)push_call(L, sc, call);
}


struct call *api_call_check(lua_State *L, int idx)
{
	return check_call(L, idx)->call;
}


void api_call_follow_refer(lua_State *L, int idx, struct sub *sub,
			   struct call *referred)
{
	struct lcall *lc = check_call(L, idx);

	mem_deref(lc->refer);
	mem_deref(lc->referred);
	lc->refer = mem_ref(sub);
	lc->referred = referred ? mem_ref(referred) : NULL;
}


/* call:ringing([code [, reason [, body, content_type]]] [, {reliable=}])
 * -> true | nil, err */
static int l_ringing(lua_State *L)
{
	struct lcall *lc = check_call(L, 1);
	enum call_rel rel = CALL_REL_AUTO;
	uint16_t code;
	const char *reason, *body, *ctype;
	size_t len = 0;
	int err;

	/* the options table, when the last argument is one */
	if (lua_gettop(L) >= 2 && lua_istable(L, lua_gettop(L))) {
		int t = lua_gettop(L);

		lua_pushnil(L);
		while (lua_next(L, t)) {
			if (lua_type(L, -2) != LUA_TSTRING ||
			    strcmp(lua_tostring(L, -2), "reliable"))
				return luaL_argerror(L, t, "options: "
						     "'reliable' only");
			lua_pop(L, 1);
		}
		lua_getfield(L, t, "reliable");
		if (lua_isboolean(L, -1))
			rel = lua_toboolean(L, -1) ? CALL_REL_YES :
				CALL_REL_NO;
		else if (!lua_isnil(L, -1))
			return luaL_argerror(L, t, "reliable: a boolean "
					     "expected");
		lua_settop(L, t - 1);
	}

	code = (uint16_t)luaL_optinteger(L, 2, 180);
	reason = luaL_optstring(L, 3, code == 180 ? "Ringing" :
				"Session Progress");
	body = luaL_optlstring(L, 4, NULL, &len);
	ctype = luaL_optstring(L, 5, NULL);

	if (code < 101 || code > 199)
		return luaL_argerror(L, 2, "101..199 expected");
	if (call_is_outgoing(lc->call))
		return luaL_error(L, "ringing: not an incoming call");
	if (body && len && !ctype)
		return luaL_argerror(L, 5, "a body needs a content type");

	err = call_progress(lc->call, code, reason, rel, NULL, ctype,
			    (const uint8_t *)body, len);

	/* RFC 3262 §3: the INVITE decides what may be sent */
	if (err == EPERM || err == ENOTSUP) {
		lua_pushnil(L);
		lua_pushstring(L, err == EPERM ? "100rel required" :
			       "100rel not supported");
		return 2;
	}

	return rt_result(L, err);
}


static int answer(lua_State *L, int hidx)
{
	struct lcall *lc = check_call(L, 1);
	size_t len = 0;
	const char *body, *ctype;
	char *hdrs = NULL;
	int err;

	/* call:answer{media = true}: the media session's SDP */
	if (!hidx && lua_istable(L, 2))
		return api_media_answer(L, lc, 2);

	body = luaL_optlstring(L, 2, NULL, &len);
	ctype = luaL_optstring(L, 3, len ? "application/sdp" : NULL);
	if (call_is_outgoing(lc->call))
		return luaL_error(L, "answer: not an incoming call");
	if (ctype && strpbrk(ctype, "\r\n"))
		return luaL_argerror(L, 3, "invalid content type");

	if (hidx)
		api_headers_encode(L, hidx, &hdrs);

	err = call_answer(lc->call, hdrs, ctype, (const uint8_t *)body, len);
	mem_deref(hdrs);

	return rt_result(L, err);
}

/* call:answer([body [, content_type]]) */
static int l_answer(lua_State *L)     { return answer(L, 0); }
/* call:answer_with_options(body, content_type, headers) */
static int l_answer_opts(lua_State *L) { return answer(L, 4); }


/* call:reject([code [, reason [, headers]]]) */
static int l_reject(lua_State *L)
{
	struct lcall *lc = check_call(L, 1);
	uint16_t code = (uint16_t)luaL_optinteger(L, 2, 486);
	const char *reason = luaL_optstring(L, 3, NULL);
	char *hdrs = NULL;
	int err;

	if (code < 300 || code > 699)
		return luaL_argerror(L, 2, "300..699 expected");
	if (reason && strpbrk(reason, "\r\n"))
		return luaL_argerror(L, 3, "reason holds CR or LF");
	if (call_is_outgoing(lc->call))
		return luaL_error(L, "reject: not an incoming call (use "
				  "cancel or hangup)");

	api_headers_encode(L, 4, &hdrs);   /* the last that may raise */
	err = call_reject(lc->call, code, reason, hdrs);
	mem_deref(hdrs);

	return rt_result(L, err);
}


/* call:hangup([code [, reason]]): code and reason are the final answer
 * of an incoming call not answered yet (default 603 Decline); a BYE or
 * CANCEL carries none, so they are not used otherwise */
static int l_hangup(lua_State *L)
{
	struct lcall *lc = check_call(L, 1);
	lua_Integer code = luaL_optinteger(L, 2, 0);
	const char *reason = luaL_optstring(L, 3, NULL);

	if (code && (code < 300 || code > 699))
		return luaL_argerror(L, 2, "300..699 expected");
	if (reason && strpbrk(reason, "\r\n"))
		return luaL_argerror(L, 3, "reason holds CR or LF");

	if (code && !call_is_outgoing(lc->call) &&
	    !call_is_answered(lc->call) && !call_is_ended(lc->call))
		return rt_result(L, call_reject(lc->call, (uint16_t)code,
						reason, NULL));

	return rt_result(L, call_hangup(lc->call, "hangup"));
}


static int l_cancel(lua_State *L)
{
	struct lcall *lc = check_call(L, 1);

	if (!call_is_outgoing(lc->call))
		return luaL_error(L, "cancel: not an outgoing call");

	return rt_result(L, call_cancel(lc->call));
}


/* The task of a wait goes, or the wait ended: the call no longer
 * wakes it */
static void wait_cleanup(struct rt_op *op, void *ctx)
{
	struct lcall *lc = ctx;

	if (lc->waiter == op)
		lc->waiter = NULL;
}


static int push_timeout(lua_State *co, void *arg)
{
	(void)arg;

	lua_pushnil(co);
	lua_pushstring(co, rt_errstr(ETIMEDOUT));
	lua_pushnil(co);

	return 3;
}


/* call:wait_answer([timeout]) -> true | nil, err, code: an op whose
 * source (the call's answer or end) can be stopped, with a timeout */
static int l_wait_answer(lua_State *L)
{
	struct lcall *lc = check_call(L, 1);
	lua_Number timeout = luaL_optnumber(L, 2, 0);
	struct rt_op *op;

	rt_need_task(L, "wait_answer");
	if (!call_is_outgoing(lc->call))
		return luaL_error(L, "wait_answer: not an outgoing call");
	if (lc->waiter)
		return luaL_error(L, "wait_answer: another task waits");
	if (timeout < 0)
		return luaL_argerror(L, 2, "seconds >= 0 expected");

	if (call_is_answered(lc->call) || call_is_ended(lc->call))
		return push_answer(L, lc);

	op = rt_op_start(L, "wait_answer");
	rt_op_cleanup(op, wait_cleanup, lc);
	if (timeout > 0)
		rt_op_timeout(op, (uint64_t)(timeout * 1000), push_timeout,
			      NULL);
	lc->waiter = op;

	return rt_op_yield(L, op);
}


/* hold, unhold and update: ops whose source, the call's re-INVITE,
 * always calls back once (with ENOTCONN if the call ends first) */
struct reinv {
	int err;
	uint16_t scode;
};


/* true, code | nil, err [, code] */
static int push_reinvite(lua_State *co, void *arg)
{
	const struct reinv *r = arg;

	if (!r->err && r->scode >= 200 && r->scode < 300) {
		lua_pushboolean(co, 1);
		lua_pushinteger(co, r->scode);
		return 2;
	}

	lua_pushnil(co);
	lua_pushstring(co, r->err ? rt_errstr(r->err) : "rejected");
	if (r->scode)
		lua_pushinteger(co, r->scode);
	else
		lua_pushnil(co);

	return 3;
}


static void reinvite_h(int err, uint16_t scode, void *arg)
{
	struct reinv r = {err, scode};

	rt_op_resume(arg, push_reinvite, &r);
}


static int reinvite(lua_State *L, int kind)
{
	struct lcall *lc = check_call(L, 1);
	const char *fn = kind == CALL_REINVITE_HOLD ? "hold" :
		kind == CALL_REINVITE_UNHOLD ? "unhold" : "update";
	const char *body = NULL, *ctype = NULL;
	struct rt_op *op;
	size_t len = 0;
	int err;

	rt_need_task(L, fn);
	if (kind == CALL_REINVITE_UPDATE) {
		body = luaL_checklstring(L, 2, &len);
		ctype = luaL_optstring(L, 3, "application/sdp");
		if (strpbrk(ctype, "\r\n"))
			return luaL_argerror(L, 3, "invalid content type");
	}

	op = rt_op_start(L, fn);
	if (kind == CALL_REINVITE_UPDATE)
		err = call_reinvite(lc->call, CALL_REINVITE_UPDATE, NULL,
				    ctype, (const uint8_t *)body, len,
				    reinvite_h, rt_op_arg(op));
	else
		err = call_hold(lc->call, kind == CALL_REINVITE_HOLD,
				reinvite_h, rt_op_arg(op));

	/* reinvite.c says EALREADY for a re-INVITE in flight: to a script
	 * that is "busy" (one at a time), not "already answered" */
	if (err == EALREADY)
		err = EBUSY;
	if (err)
		return rt_op_abort(L, op, err);

	return rt_op_yield(L, op);
}

/* call:hold() / call:unhold() / call:update(body [, ct]) ->
 * true, code | nil, err [, code] */
static int l_hold(lua_State *L)   { return reinvite(L, CALL_REINVITE_HOLD); }
static int l_unhold(lua_State *L) { return reinvite(L, CALL_REINVITE_UNHOLD); }
static int l_update(lua_State *L) { return reinvite(L, CALL_REINVITE_UPDATE); }


/* call:request(method [, {headers=, body=, content_type=, timeout=}])
 * -> code, reason, body, content_type | nil, err: an op whose source,
 * the request's client transaction, always calls back once */
static int l_request(lua_State *L)
{
	struct lcall *lc = check_call(L, 1);
	struct api_reqopts o;
	const char *met;
	struct rt_op *op;
	int err;

	rt_need_task(L, "request");
	met = api_method_check(L, 2, true);

	api_reqopts_check(L, 3, &o, false);   /* the last that may raise */

	op = rt_op_start(L, "request");
	err = call_request(lc->call, met, o.hdrs, o.ctype,
			   (const uint8_t *)o.body, o.len, api_final_h,
			   rt_op_arg(op));
	mem_deref(o.hdrs);
	if (err)
		return rt_op_abort(L, op, err);

	api_final_wait(op, &o);

	return rt_op_yield(L, op);
}


/* call:authenticate() -> user | nil, "challenged" | "unauthorized",
 * status: the INVITE's credentials checked by the registrar's verifier
 * (the one REGISTER uses, with its guard); without valid ones the
 * call is answered as the verifier answers a request it refuses, with
 * 407 (Proxy-Authenticate) for a challenge, and ends. */
static int l_authenticate(lua_State *L)
{
	struct lcall *lc = check_call(L, 1);
	struct auth *auth = api_registrar_auth(L, "authenticate");
	const struct sip_msg *msg;
	struct auth_result ar;
	const char *reason;
	struct mbuf *mb;
	uint16_t scode;
	int err;

	if (call_is_outgoing(lc->call))
		return luaL_error(L, "authenticate: not an incoming call");

	msg = call_invite(lc->call);
	if (!msg || call_is_answered(lc->call) || call_is_ended(lc->call))
		return rt_fail(L, ENOTCONN);

	/* 407 asks for Proxy-Authorization (RFC 3261 §22.3); credentials
	 * for our realm in Authorization are taken too */
	err = auth_check(auth, msg, true, &ar);
	if (!err && ar.status == AUTH_NO_CREDENTIALS &&
	    !strcmp(ar.reason, "no_credentials"))
		err = auth_check(auth, msg, false, &ar);
	if (err)
		return rt_fail(L, err);

	mb = mbuf_alloc(512);
	if (!mb)
		return luaL_error(L, "out of memory");

	err = auth_answer(auth, msg, true, &ar, &scode, &reason, mb);
	if (!err && scode)
		err = mbuf_write_u8(mb, 0);
	if (!err && scode)
		err = call_reject(lc->call, scode, reason, mb->end > 1 ?
				  (const char *)mb->buf : NULL);
	mem_deref(mb);
	if (err)
		return rt_fail(L, err);

	if (!scode) {
		lua_pushstring(L, ar.user);
		return 1;
	}

	lua_pushnil(L);
	lua_pushstring(L, scode == 407 ? "challenged" : "unauthorized");
	lua_pushstring(L, auth_status_name(ar.status));

	return 3;
}


/* call:header(name) -> the first value of a header of the INVITE
 * (incoming, until its 2xx is ACKed) or of the latest response to it
 * (outgoing), or nil */
static int l_header(lua_State *L)
{
	struct call *call = check_call(L, 1)->call;

	return api_msg_headers(L, call_is_outgoing(call) ?
			       call_response(call) : call_invite(call), false);
}


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
	if (!strcmp(k, "replaces")) {
		struct call *old = call_replaces(lc->call);
		call_event_h *h;
		void *arg;

		/* the replaced call's object, if a script holds it */
		if (old && call_handler(old, &h, &arg) && h == event_handler)
			push_udata(L, arg);
		else
			lua_pushnil(L);
		return 1;
	}
	if (!strcmp(k, "end_reason")) {
		lua_pushstring(L, call_end_reason(lc->call));
		return 1;
	}
	if (!strcmp(k, "request_uri")) {
		lua_pushstring(L, call_request_uri(lc->call));
		return 1;
	}
	if (!strcmp(k, "source") || !strcmp(k, "transport")) {
		enum sip_transp tp = SIP_TRANSP_NONE;
		const struct sa *src = call_source(lc->call, &tp);
		char buf[128];

		if (!src)
			lua_pushnil(L);
		else if (!strcmp(k, "transport"))
			lua_pushstring(L, sip_transp_name(tp));
		else {
			(void)re_snprintf(buf, sizeof(buf), "%J", src);
			lua_pushstring(L, buf);
		}
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
		"on_fork", "on_referred", "on_refer_progress", "on_dtmf",
		NULL
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
				  "on_unhold, on_info, on_fork, on_referred, "
				  "on_refer_progress, on_dtmf)", k);
	if (!lua_isnil(L, 3))
		luaL_checktype(L, 3, LUA_TFUNCTION);

	lua_getfenv(L, 1);
	lua_pushvalue(L, 3);
	lua_setfield(L, -2, k);

	/* digits by INFO reach on_dtmf also without media */
	if (!strcmp(k, "on_dtmf") && !lua_isnil(L, 3))
		api_media_enable(check_call(L, 1));

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

/* sip.call(uri [, body [, content_type [, {to=, from=, headers=, user=,
 * password=}]]]) */
static int l_call(lua_State *L)
{
	struct script *sc = rt_script(L);
	struct stack *st = rt_stack(L);
	const char *uri = luaL_checkstring(L, 1);
	size_t len = 0;
	const char *body = luaL_optlstring(L, 2, NULL, &len);
	const char *ctype = luaL_optstring(L, 3, len ? "application/sdp" :
					   NULL);
	const char *from = NULL, *to = NULL, *user = NULL, *password = NULL;
	char *hdrs = NULL;
	struct call *call = NULL;
	struct lmedia *lm = NULL;
	struct mbuf *offer = NULL;
	struct lcall *lc;
	bool media = false;
	int err;

	if (strncmp(uri, "sip:", 4))
		return luaL_argerror(L, 1, "sip: URI expected");
	if (ctype && strpbrk(ctype, "\r\n"))
		return luaL_argerror(L, 3, "invalid content type");

	if (!lua_isnoneornil(L, 4)) {
		luaL_checktype(L, 4, LUA_TTABLE);
		lua_getfield(L, 4, "from");
		from = lua_tostring(L, -1);
		if (from && strncmp(from, "sip:", 4))
			return luaL_argerror(L, 4, "from: sip: URI expected");
		to = api_uri_field(L, 4, "to");
		lua_getfield(L, 4, "media");
		media = lua_toboolean(L, -1);
		if (media && body)
			return luaL_argerror(L, 2, "media = true makes the "
					     "offer: no body");
		lua_getfield(L, 4, "user");
		user = lua_tostring(L, -1);
		lua_getfield(L, 4, "password");
		password = lua_tostring(L, -1);
		if (!user != !password)
			return luaL_argerror(L, 4, "user and password go "
					     "together");
		lua_getfield(L, 4, "headers");
		if (!lua_isnil(L, -1))
			api_headers_encode(L, -1, &hdrs);
		lua_pop(L, 1);
		lua_getfield(L, 4, "replaces");
		if (!lua_isnil(L, -1)) {
			char rep[512];
			char *all = NULL;

			api_replaces_value(L, lua_gettop(L), rep, sizeof(rep));
			err = re_sdprintf(&all, "Replaces: %s\r\n%s", rep,
					  hdrs ? hdrs : "");
			mem_deref(hdrs);
			hdrs = err ? NULL : all;
		}
		lua_pop(L, 1);
	}

	if (!st || !stack_is_running(st)) {
		mem_deref(hdrs);
		lua_pushnil(L);
		lua_pushstring(L, "not running");
		return 2;
	}

	/* {media = true}: the server's media, our offer */
	if (media) {
		err = api_media_offer(L, &lm, &offer);
		if (err) {
			mem_deref(hdrs);
			return rt_fail(L, err);
		}
		body = (const char *)offer->buf;
		len = offer->end;
		ctype = "application/sdp";
	}

	err = call_connect_to(&call, st, uri, to, from, hdrs, ctype,
			      (const uint8_t *)body, len, NULL, NULL);
	mem_deref(hdrs);
	mem_deref(offer);
	if (!err && user)
		err = call_set_credentials(call, user, password);
	if (err) {
		mem_deref(lm);
		return rt_fail(L, err);
	}

	lc = push_call(L, sc, call);
	if (lm)
		api_media_attach(lm, lc);
	mem_deref(call);

	return 1;
}


static void incoming_end(lua_State *co, bool failed, int nres, void *ctx)
{
	struct call *call = ctx;

	if (failed) {
		(void)call_reject(call, 500, "Server Internal Error", NULL);
	}
	else if (nres >= 1 && lua_type(co, 1) == LUA_TNUMBER) {
		lua_Number n = lua_tonumber(co, 1);
		const char *reason = lua_tostring(co, 2);

		if (n >= 300 && n <= 699)
			(void)call_reject(call, (uint16_t)n, reason, NULL);
	}
}


static bool incoming_handler(struct call *call, void *arg)
{
	struct luart *rt = arg;
	struct script *sc = rt_current(rt);
	struct task *t;

	t = rt_task_new(sc, RT_HOOK_CALL);   /* NULL: no such hook */
	if (!t)
		return false;

	rt_task_set_end(t, incoming_end, call);
	rt_task_set_callid(t, call_id(call));   /* the call outlives t */
	push_call(rt_task_co(t), sc, call);
	rt_task_run(t, 1);

	return true;
}


int api_call_activate(struct luart *rt, struct script *sc)
{
	callmgr_set_incoming(rt_runtime_stack(rt),
			     rt_script_has_hook(sc, RT_HOOK_CALL) ?
			     incoming_handler : NULL, rt);

	return 0;
}


void api_call_close(struct luart *rt)
{
	callmgr_set_incoming(rt_runtime_stack(rt), NULL, NULL);
}


/* the call object's metatable, and sip.call in the sip table */
/* ------------------------------------------------------------------ *
 * For api_media.c
 * ------------------------------------------------------------------ */

struct lcall *api_call_lcall(lua_State *L, int idx)
{
	return check_call(L, idx);
}


struct call *api_call_of(const struct lcall *lc)
{
	return lc->call;
}


struct lmedia **api_call_media(struct lcall *lc)
{
	return &lc->media;
}


void api_call_dtmf(struct lcall *lc, char digit, uint32_t dur_ms)
{
	struct task *t = callback_task(lc, "on_dtmf");
	lua_State *co;

	if (!t)
		return;
	co = rt_task_co(t);
	lua_pushlstring(co, &digit, 1);
	lua_pushnumber(co, (lua_Number)dur_ms / 1000.0);
	rt_task_run(t, 2);
}


void api_call_add_methods(lua_State *L, const luaL_Reg *methods)
{
	luaL_getmetatable(L, CALL_MT);
	luaL_setfuncs(L, methods, 0);
	lua_pop(L, 1);
}


void api_call_inject(lua_State *L)
{
	static const luaL_Reg call_methods[] = {
		{"ringing",             l_ringing},
		{"answer",              l_answer},
		{"answer_with_options", l_answer_opts},
		{"reject",              l_reject},
		{"hangup",              l_hangup},
		{"cancel",              l_cancel},
		{"request",             l_request},
		{"authenticate",        l_authenticate},
		{"header",              l_header},
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
