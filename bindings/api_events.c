/**
 * bindings/api_events.c  Subscriptions for scripts: sip.on_subscribe,
 * sip.subscribe and the subscription object
 *
 * Owns struct lsub, the Lua side of a struct sub: the userdata
 * "sipstack.sub" holds a reference on it, and the lsub anchors the
 * userdata until the subscription ends (so a script may drop it).
 * Callbacks (sub.on_notify, on_refresh, on_end) live in the userdata's
 * environment table; each runs in a task of its own. An lsub holds its
 * script generation: a subscription made before a reload keeps running
 * in the old one, new SUBSCRIBEs go to the new one's on_subscribe.
 *
 * Packages: sip.on_subscribe(package, fn) at the script's top level;
 * when a generation becomes current the packages it handles are the
 * ones the events service listens to (the others get 489). The hook
 * runs fn(sub) in a task: it answers with sub:accept / sub:reject; if it
 * ends without either, a returned status code rejects, otherwise 603,
 * and an error 500. Uses server/events/.
 */
#include <ctype.h>
#include <string.h>
#include <re.h>
#include "sipstack.h"
#include "runtime.h"


#define SUB_MT "sipstack.sub"
#define REFOUT_MT "sipstack.refer_out"

/* registry key of a generation's table package -> function */
static const char KEY_PKGS = 0;

struct lsub {
	struct sub *sub;         /* reference                          */
	struct script *sc;       /* reference                          */
	int ref;                 /* registry ref of the userdata while
				  * the subscription lives             */
	struct rt_op *waiter;    /* sip.subscribe's wait for the answer */
	uint16_t scode;          /* its answer                         */
	char *reason;
	int err;
	/* the last NOTIFY (subscriber) */
	char *body, *ctype, *ntf_reason;
	size_t len;
};

struct ludata {
	struct lsub *ls;
};

/* The packages the current generation handles (a runtime slot) */
struct levents {
	struct list pkgs;        /* struct lpkg */
	struct stack_handler *refer;  /* out-of-dialog REFER */
};

struct lpkg {
	struct le le;
	struct evpkg *pkg;
	char *name;
	uint32_t min, max;
};


static void lsub_destructor(void *arg)
{
	struct lsub *ls = arg;

	sub_set_handler(ls->sub, NULL, NULL);
	mem_deref(ls->sub);
	mem_deref(ls->sc);
	mem_deref(ls->reason);
	mem_deref(ls->body);
	mem_deref(ls->ctype);
	mem_deref(ls->ntf_reason);
}


static void push_udata(lua_State *L, const struct lsub *ls)
{
	if (ls->ref == LUA_NOREF)
		lua_pushnil(L);
	else
		lua_rawgeti(L, LUA_REGISTRYINDEX, ls->ref);
}


/* A task with the callback named name on its stack, or NULL */
static struct task *callback_task(struct lsub *ls, const char *name)
{
	lua_State *L;
	struct task *t;

	if (!ls->sc || rt_script_closing(ls->sc) || ls->ref == LUA_NOREF)
		return NULL;
	L = rt_script_L(ls->sc);

	push_udata(L, ls);
	lua_getfenv(L, -1);
	lua_getfield(L, -1, name);
	lua_remove(L, -2);
	lua_remove(L, -2);
	if (!lua_isfunction(L, -1)) {
		lua_pop(L, 1);
		return NULL;
	}

	t = rt_task_new(ls->sc, RT_HOOK_SPAWN);
	if (!t) {
		lua_pop(L, 1);
		return NULL;
	}
	lua_xmove(L, rt_task_co(t), 1);
	rt_task_set_callid(t, sub_callid(ls->sub));

	return t;
}


/* sip.subscribe's values: sub | nil, "rejected", code, reason |
 * nil, err */
static int push_answer(lua_State *co, void *arg)
{
	struct lsub *ls = arg;

	if (!ls->err && ls->scode >= 200 && ls->scode < 300 &&
	    ls->ref != LUA_NOREF) {
		push_udata(co, ls);
		return 1;
	}

	lua_pushnil(co);
	if (ls->scode >= 300) {
		lua_pushstring(co, "rejected");
		lua_pushinteger(co, ls->scode);
		lua_pushstring(co, ls->reason ? ls->reason : "");
		return 4;
	}

	lua_pushstring(co, rt_errstr(ls->err ? ls->err : ENOTCONN));

	return 2;
}


static void wake_waiter(struct lsub *ls)
{
	struct rt_op *op = ls->waiter;

	if (!op)
		return;

	ls->waiter = NULL;
	rt_op_resume(op, push_answer, ls);
}


static int set_str(char **dst, const char *s, size_t len)
{
	char *p = NULL;

	if (s && len) {
		p = mem_alloc(len + 1, NULL);
		if (!p)
			return ENOMEM;
		memcpy(p, s, len);
		p[len] = '\0';
	}

	mem_deref(*dst);
	*dst = p;

	return 0;
}


static void event_handler(struct sub *sub, const struct sub_event *ev,
			  void *arg)
{
	struct lsub *ls = arg;
	struct task *t;
	lua_State *co;
	(void)sub;

	mem_ref(ls);

	switch (ev->type) {

	case SUB_EV_ANSWER:
		ls->err = ev->err;
		ls->scode = ev->scode;
		(void)set_str(&ls->reason, ev->reason,
			      ev->reason ? strlen(ev->reason) : 0);
		if (ev->scode >= 300 || ev->err)
			break;     /* CLOSED follows and wakes the waiter */
		wake_waiter(ls);
		break;

	case SUB_EV_NOTIFY:
		(void)set_str(&ls->body, (const char *)ev->body, ev->len);
		ls->len = ls->body ? ev->len : 0;
		(void)set_str(&ls->ctype, ev->ctype, strlen(ev->ctype));
		(void)set_str(&ls->ntf_reason, ev->reason,
			      strlen(ev->reason));
		t = callback_task(ls, "on_notify");
		if (!t)
			break;
		co = rt_task_co(t);
		lua_pushstring(co, sub_state_name(ev->state));
		lua_pushlstring(co, (const char *)ev->body, ev->len);
		if (*ev->ctype)
			lua_pushstring(co, ev->ctype);
		else
			lua_pushnil(co);
		if (*ev->reason)
			lua_pushstring(co, ev->reason);
		else
			lua_pushnil(co);
		lua_pushstring(co, ev->fork);
		rt_task_run(t, 5);
		break;

	case SUB_EV_REFRESH:
		t = callback_task(ls, "on_refresh");
		if (!t)
			break;
		lua_pushinteger(rt_task_co(t), ev->expires);
		rt_task_run(t, 1);
		break;

	case SUB_EV_CLOSED:
		wake_waiter(ls);
		t = callback_task(ls, "on_end");
		if (t) {
			lua_pushstring(rt_task_co(t), ev->reason);
			rt_task_run(t, 1);
		}
		/* no more events: the userdata may go with the script's
		 * last reference; the handler's reference goes, and so does
		 * ours on the script (an old generation may then close: it
		 * frees the userdata, which frees us) */
		rt_unref(ls->sc, ls->ref);
		ls->ref = LUA_NOREF;
		if (!rt_script_closing(ls->sc))
			ls->sc = mem_deref(ls->sc);
		mem_deref(ls);
		break;
	}

	mem_deref(ls);
}


static struct lsub *push_sub(lua_State *L, struct script *sc,
			     struct sub *sub)
{
	struct ludata *ud;
	struct lsub *ls;

	ls = mem_zalloc(sizeof(*ls), lsub_destructor);
	if (!ls) {
		luaL_error(L, "out of memory");
		return NULL;
	}

	ls->sub = mem_ref(sub);
	ls->sc = mem_ref(sc);
	ls->ref = LUA_NOREF;

	ud = lua_newuserdata(L, sizeof(*ud));
	ud->ls = ls;
	luaL_getmetatable(L, SUB_MT);
	lua_setmetatable(L, -2);
	lua_newtable(L);
	lua_setfenv(L, -2);

	if (!sub_is_closed(sub)) {
		lua_pushvalue(L, -1);
		ls->ref = rt_ref(L);
		sub_set_handler(sub, event_handler, mem_ref(ls));
	}

	return ls;
}


static struct lsub *check_sub(lua_State *L, int idx)
{
	struct ludata *ud = luaL_checkudata(L, idx, SUB_MT);

	return ud->ls;
}


static int check_state(lua_State *L, int idx)
{
	static const char *const names[] = {
		"pending", "active", "terminated", NULL
	};

	return luaL_checkoption(L, idx, NULL, names);
}


/* ------------------------------------------------------------------ *
 * Methods
 * ------------------------------------------------------------------ */

/* sub:accept([expires]) -> true | nil, err */
static int l_accept(lua_State *L)
{
	struct lsub *ls = check_sub(L, 1);
	lua_Integer expires = luaL_optinteger(L, 2, 0);

	if (expires < 0 || expires > 0x7fffffff)
		return luaL_argerror(L, 2, "seconds >= 0 expected");
	if (!sub_is_notifier(ls->sub))
		return luaL_error(L, "accept: not a subscription we notify");

	return rt_result(L, sub_accept(ls->sub, (uint32_t)expires));
}


/* sub:reject(code [, reason]) -> true | nil, err */
static int l_reject(lua_State *L)
{
	struct lsub *ls = check_sub(L, 1);
	lua_Integer code = luaL_checkinteger(L, 2);
	const char *reason = luaL_optstring(L, 3, NULL);

	if (code < 300 || code > 699)
		return luaL_argerror(L, 2, "status code 300-699 expected");
	if (reason && strpbrk(reason, "\r\n"))
		return luaL_argerror(L, 3, "invalid reason");
	if (!sub_is_notifier(ls->sub))
		return luaL_error(L, "reject: not a subscription we notify");

	return rt_result(L, sub_reject(ls->sub, (uint16_t)code, reason,
				       NULL));
}


/* sub:notify(state [, body [, content_type [, reason]]]) */
static int l_notify(lua_State *L)
{
	static const char *const reasons[] = {
		"deactivated", "probation", "rejected", "timeout", "giveup",
		"noresource", "invariant", NULL
	};
	struct lsub *ls = check_sub(L, 1);
	int state = check_state(L, 2);
	size_t len = 0;
	const char *body = luaL_optlstring(L, 3, NULL, &len);
	const char *ctype = luaL_optstring(L, 4, NULL);
	const char *reason = NULL;

	if (!lua_isnoneornil(L, 5))
		reason = reasons[luaL_checkoption(L, 5, NULL, reasons)];
	if (len && !ctype)
		return luaL_argerror(L, 4, "a body needs a content type");
	if (ctype && (strpbrk(ctype, "\r\n") || !*ctype))
		return luaL_argerror(L, 4, "invalid content type");
	if (!sub_is_notifier(ls->sub))
		return luaL_error(L, "notify: not a subscription we notify");

	return rt_result(L, sub_notify(ls->sub, (enum sub_state)state,
				       reason, ctype, (const uint8_t *)body,
				       len));
}


/* sub:unsubscribe() -> true | nil, err */
static int l_unsubscribe(lua_State *L)
{
	struct lsub *ls = check_sub(L, 1);

	if (sub_is_notifier(ls->sub))
		return luaL_error(L, "unsubscribe: a subscription we notify "
				  "ends with sub:notify(\"terminated\")");

	return rt_result(L, sub_unsubscribe(ls->sub));
}


/* sub:header(name): a header of the SUBSCRIBE, while it is unanswered */
static int l_header(lua_State *L)
{
	struct lsub *ls = check_sub(L, 1);
	const char *name = luaL_checkstring(L, 2);
	const struct sip_msg *msg = sub_request(ls->sub);
	const struct sip_hdr *hdr;

	hdr = msg ? sip_msg_xhdr(msg, name) : NULL;
	if (!hdr) {
		lua_pushnil(L);
		return 1;
	}

	lua_pushlstring(L, hdr->val.p, hdr->val.l);

	return 1;
}


static int push_opt(lua_State *L, const char *s)
{
	if (s)
		lua_pushstring(L, s);
	else
		lua_pushnil(L);

	return 1;
}


static int l_index(lua_State *L)
{
	struct lsub *ls = check_sub(L, 1);
	const char *k = luaL_checkstring(L, 2);
	struct sub *sub = ls->sub;

	if (!strcmp(k, "event"))
		return push_opt(L, sub_event_package(sub));
	if (!strcmp(k, "id"))
		return push_opt(L, sub_event_id(sub));
	if (!strcmp(k, "call_id"))
		return push_opt(L, sub_callid(sub));
	if (!strcmp(k, "from"))
		return push_opt(L, sub_from(sub));
	if (!strcmp(k, "to"))
		return push_opt(L, sub_to(sub));
	if (!strcmp(k, "role"))
		return push_opt(L, sub_is_notifier(sub) ? "notifier" :
				"subscriber");
	if (!strcmp(k, "state"))
		return push_opt(L, sub_state_name(sub_state(sub)));
	if (!strcmp(k, "expires")) {
		lua_pushinteger(L, sub_expires(sub));
		return 1;
	}
	if (!strcmp(k, "body")) {
		lua_pushlstring(L, ls->body ? ls->body : "", ls->len);
		return 1;
	}
	if (!strcmp(k, "content_type"))
		return push_opt(L, ls->ctype);
	if (!strcmp(k, "reason"))
		return push_opt(L, ls->ntf_reason);

	lua_getmetatable(L, 1);
	lua_getfield(L, -1, k);
	if (!lua_isnil(L, -1))
		return 1;
	lua_pop(L, 2);
	lua_getfenv(L, 1);
	lua_getfield(L, -1, k);

	return 1;
}


static int l_newindex(lua_State *L)
{
	static const char *cbs[] = {
		"on_notify", "on_refresh", "on_end", NULL
	};
	const char *k = luaL_checkstring(L, 2);
	const char **p;

	(void)check_sub(L, 1);
	for (p = cbs; *p && strcmp(*p, k); p++)
		;
	if (!*p)
		return luaL_error(L, "subscription: cannot set '%s' "
				  "(callbacks: on_notify, on_refresh, "
				  "on_end)", k);
	if (!lua_isnil(L, 3))
		luaL_checktype(L, 3, LUA_TFUNCTION);

	lua_getfenv(L, 1);
	lua_pushvalue(L, 3);
	lua_setfield(L, -2, k);

	return 0;
}


static int l_gc(lua_State *L)
{
	struct ludata *ud = luaL_checkudata(L, 1, SUB_MT);

	ud->ls = mem_deref(ud->ls);

	return 0;
}


static int l_tostring(lua_State *L)
{
	struct lsub *ls = check_sub(L, 1);

	lua_pushfstring(L, "sip subscription %s %s (%s, %s)",
			sub_event_package(ls->sub), sub_callid(ls->sub),
			sub_is_notifier(ls->sub) ? "notifier" : "subscriber",
			sub_state_name(sub_state(ls->sub)));

	return 1;
}


/* ------------------------------------------------------------------ *
 * sip.subscribe
 * ------------------------------------------------------------------ */

static void subscribe_cleanup(struct rt_op *op, void *ctx)
{
	struct lsub *ls = ctx;

	if (ls->waiter != op)
		return;

	/* the task went before the answer: nobody will use it */
	ls->waiter = NULL;
	(void)sub_unsubscribe(ls->sub);
}


/* sip.subscribe(uri, event [, {expires=, accept=, from=, headers=,
 * user=, password=, on_notify=}]) -> sub | nil, "rejected", code,
 * reason | nil, err */
static int l_subscribe(lua_State *L)
{
	struct script *sc = rt_script(L);
	struct stack *st = rt_stack(L);
	const char *uri = luaL_checkstring(L, 1);
	const char *event = luaL_checkstring(L, 2);
	struct sub_opts o;
	char *hdrs = NULL;
	struct sub *sub = NULL;
	struct lsub *ls;
	struct rt_op *op;
	int on_notify = 0;
	int err;

	memset(&o, 0, sizeof(o));
	rt_need_task(L, "subscribe");
	if (strncmp(uri, "sip:", 4) && strncmp(uri, "sips:", 5))
		return luaL_argerror(L, 1, "sip: URI expected");
	if (!*event || strpbrk(event, "\r\n ,"))
		return luaL_argerror(L, 2, "event package expected");

	if (!lua_isnoneornil(L, 3)) {
		lua_Integer e;

		luaL_checktype(L, 3, LUA_TTABLE);
		lua_getfield(L, 3, "expires");
		e = lua_isnil(L, -1) ? 0 : luaL_checkinteger(L, -1);
		if (e < 0 || e > 0x7fffffff)
			return luaL_argerror(L, 3, "expires: seconds >= 0");
		o.expires = (uint32_t)e;
		lua_getfield(L, 3, "accept");
		o.accept = lua_tostring(L, -1);
		if (o.accept && strpbrk(o.accept, "\r\n"))
			return luaL_argerror(L, 3, "invalid accept");
		lua_getfield(L, 3, "from");
		o.from = lua_tostring(L, -1);
		if (o.from && strncmp(o.from, "sip:", 4))
			return luaL_argerror(L, 3, "from: sip: URI expected");
		lua_getfield(L, 3, "user");
		o.user = lua_tostring(L, -1);
		lua_getfield(L, 3, "password");
		o.password = lua_tostring(L, -1);
		if (!o.user != !o.password)
			return luaL_argerror(L, 3, "user and password go "
					     "together");
		lua_getfield(L, 3, "on_notify");
		if (!lua_isnil(L, -1)) {
			luaL_checktype(L, -1, LUA_TFUNCTION);
			on_notify = lua_gettop(L);
		}
		lua_getfield(L, 3, "headers");
		if (!lua_isnil(L, -1))
			api_headers_encode(L, -1, &hdrs);
		lua_pop(L, 1);
		o.hdrs = hdrs;
	}

	if (!st || !stack_is_running(st)) {
		mem_deref(hdrs);
		return rt_fail(L, ENOTCONN);
	}

	err = sub_subscribe(&sub, st, uri, event, &o, NULL, NULL);
	mem_deref(hdrs);
	if (err)
		return rt_fail(L, err);

	ls = push_sub(L, sc, sub);
	mem_deref(sub);
	if (on_notify) {
		lua_getfenv(L, -1);
		lua_pushvalue(L, on_notify);
		lua_setfield(L, -2, "on_notify");
		lua_pop(L, 1);
	}
	lua_pop(L, 1);    /* anchored by ls->ref */

	op = rt_op_start(L, "subscribe");
	rt_op_cleanup(op, subscribe_cleanup, ls);
	ls->waiter = op;

	return rt_op_yield(L, op);
}



/* ------------------------------------------------------------------ *
 * REFER (RFC 3515): sip.on_incoming_refer and the refer object
 * ------------------------------------------------------------------ */

#define REFER_MT "sipstack.refer"

struct lrefer {
	struct stack_req *req;   /* the REFER, until answered           */
	struct sub *sub;         /* its subscription, once accepted     */
	struct call *call;       /* the call it came in, or NULL        */
	char *target;            /* Refer-To's URI, without ?headers    */
	char *replaces;          /* its Replaces header, unescaped      */
	char *referred_by;
	char *from;
	bool final;              /* a final NOTIFY went                 */
	bool nosub;              /* Refer-Sub: false: nothing to notify */
};

struct lrud {
	struct lrefer *lr;
};


static void lrefer_destructor(void *arg)
{
	struct lrefer *lr = arg;

	if (lr->sub)
		sub_set_handler(lr->sub, NULL, NULL);
	mem_deref(lr->req);
	mem_deref(lr->sub);
	mem_deref(lr->call);
	mem_deref(lr->target);
	mem_deref(lr->replaces);
	mem_deref(lr->referred_by);
	mem_deref(lr->from);
}


static struct lrefer *check_refer(lua_State *L, int idx)
{
	struct lrud *ud = luaL_checkudata(L, idx, REFER_MT);

	return ud->lr;
}


/* The transfer is over, whichever way: the call leaves Referring */
static void refer_done(struct lrefer *lr)
{
	lr->final = true;
	if (lr->call)
		(void)call_set_referring(lr->call, false);
}


static void refer_sub_h(struct sub *sub, const struct sub_event *ev,
			void *arg)
{
	struct lrefer *lr = arg;
	(void)sub;

	if (ev->type != SUB_EV_CLOSED)
		return;

	/* the subscription ended (expired, subscriber gone) */
	lr->sub = mem_deref(lr->sub);
	if (!lr->final)
		refer_done(lr);
}


/* Refer-To: name-addr or addr-spec; the URI's Replaces header apart */
static int refer_parse(struct lrefer *lr, const struct sip_msg *msg)
{
	const struct sip_hdr *h = sip_msg_hdr(msg, SIP_HDR_REFER_TO);
	struct sip_addr addr;
	struct uri u;
	struct pl name = PL("Replaces"), val, target;
	int err;

	if (!h || sip_addr_decode(&addr, &h->val) ||
	    uri_decode(&u, &addr.auri))
		return EBADMSG;

	target = addr.auri;
	if (pl_isset(&u.headers)) {
		const char *q = pl_strchr(&addr.auri, '?');

		if (q)
			target.l = (size_t)(q - addr.auri.p);
		if (!uri_header_get(&u.headers, &name, &val)) {
			err = re_sdprintf(&lr->replaces, "%H",
					  uri_header_unescape, &val);
			if (err)
				return err;
		}
	}

	err = pl_strdup(&lr->target, &target);
	err |= pl_strdup(&lr->from, &msg->from.auri);
	h = sip_msg_hdr(msg, SIP_HDR_REFERRED_BY);
	if (h)
		err |= pl_strdup(&lr->referred_by, &h->val);

	return err;
}


static void refer_end(lua_State *co, bool failed, int nres, void *ctx)
{
	struct lrefer *lr = ctx;

	if (!lr->req || stack_req_answered(lr->req)) {
		if (failed && lr->sub && !lr->final) {
			(void)sub_refer_notify(lr->sub, 500, NULL);
			refer_done(lr);
		}
		return;
	}

	if (failed) {
		(void)stack_req_reply(lr->req, 500, "Server Internal Error",
				      NULL, NULL, NULL, 0);
	}
	else if (nres >= 1 && lua_type(co, 1) == LUA_TNUMBER &&
		 lua_tonumber(co, 1) >= 300 && lua_tonumber(co, 1) <= 699) {
		uint16_t code = (uint16_t)lua_tonumber(co, 1);
		const char *reason = lua_tostring(co, 2);

		(void)stack_req_reply(lr->req, code, reason ? reason :
				      stack_reason_phrase(code), NULL, NULL,
				      NULL, 0);
	}
	else {
		(void)stack_req_reply(lr->req, 603, "Decline", NULL, NULL,
				      NULL, 0);
	}
	lr->req = mem_deref(lr->req);
}


bool api_refer_run(struct script *sc, struct stack_req *req,
		   struct call *call, int call_ref)
{
	lua_State *co;
	struct lrefer *lr;
	struct lrud *ud;
	struct task *t;
	int err;

	lua_State *L = rt_script_L(sc);
	bool own = false;

	if (rt_script_closing(sc))
		return false;

	/* call.on_referred, else sip.on_incoming_refer */
	if (call_ref != LUA_NOREF) {
		lua_rawgeti(L, LUA_REGISTRYINDEX, call_ref);
		lua_getfenv(L, -1);
		lua_getfield(L, -1, "on_referred");
		own = lua_isfunction(L, -1);
		lua_pop(L, 3);
	}
	if (!own && !rt_script_has_hook(sc, RT_HOOK_REFER))
		return false;

	lr = mem_zalloc(sizeof(*lr), lrefer_destructor);
	if (!lr)
		return false;

	err = refer_parse(lr, stack_req_msg(req));
	if (err) {
		mem_deref(lr);
		(void)stack_req_reply(req, 400, "Bad Refer-To Header", NULL,
				      NULL, NULL, 0);
		return true;
	}

	t = rt_task_new(sc, own ? RT_HOOK_SPAWN : RT_HOOK_REFER);
	if (!t) {
		mem_deref(lr);
		return false;
	}
	if (own) {
		lua_rawgeti(L, LUA_REGISTRYINDEX, call_ref);
		lua_getfenv(L, -1);
		lua_getfield(L, -1, "on_referred");
		lua_xmove(L, rt_task_co(t), 1);
		lua_pop(L, 2);
	}
	lr->req = stack_req_ref(req);
	lr->call = call ? mem_ref(call) : NULL;

	co = rt_task_co(t);
	ud = lua_newuserdata(co, sizeof(*ud));
	ud->lr = lr;
	luaL_getmetatable(co, REFER_MT);
	lua_setmetatable(co, -2);
	lua_newtable(co);
	if (call_ref != LUA_NOREF) {
		lua_rawgeti(co, LUA_REGISTRYINDEX, call_ref);
		lua_setfield(co, -2, "call");
	}
	lua_setfenv(co, -2);

	rt_task_set_end(t, refer_end, lr);   /* the task holds lr too */
	rt_task_run(t, 1);

	return true;
}


static bool refer_handler(struct stack *st, struct stack_req *req,
			  void *arg)
{
	(void)st;

	return api_refer_run(rt_current(arg), req, NULL, LUA_NOREF);
}


/* refer:accept() -> true | nil, err: 202, and the subscription */
static int l_refer_accept(lua_State *L)
{
	struct lrefer *lr = check_refer(L, 1);
	int err;

	if (!lr->req || stack_req_answered(lr->req))
		return rt_fail(L, EALREADY);

	err = sub_refer_accept(&lr->sub, lr->req, lr->call ?
			       call_dialog(lr->call) : NULL, refer_sub_h,
			       lr);
	lr->req = mem_deref(lr->req);
	if (err)
		return rt_fail(L, err);
	lr->nosub = !lr->sub;

	if (lr->call && call_set_referring(lr->call, true))
		slog(LOG_INFO, "events", "refer_state", NULL, "callid=%H "
		     "state=%H note=\"not Referring\"", log_q,
		     call_id(lr->call), log_q, call_state(lr->call));

	return rt_result(L, 0);
}


static int l_refer_reject(lua_State *L)
{
	struct lrefer *lr = check_refer(L, 1);
	lua_Integer code = luaL_optinteger(L, 2, 603);
	const char *reason = luaL_optstring(L, 3, NULL);
	int err;

	if (code < 300 || code > 699)
		return luaL_argerror(L, 2, "status code 300-699 expected");
	if (reason && strpbrk(reason, "\r\n"))
		return luaL_argerror(L, 3, "invalid reason");
	if (!lr->req || stack_req_answered(lr->req))
		return rt_fail(L, EALREADY);

	err = stack_req_reply(lr->req, (uint16_t)code, reason ? reason :
			      stack_reason_phrase((uint16_t)code), NULL, NULL,
			      NULL, 0);
	lr->req = mem_deref(lr->req);

	return rt_result(L, err);
}


static int refer_notify(lua_State *L, uint16_t code, const char *reason)
{
	struct lrefer *lr = check_refer(L, 1);
	int err;

	if (lr->req)
		return luaL_error(L, "refer: accept() it first");
	if (lr->final)
		return rt_fail(L, EALREADY);
	if (lr->nosub) {
		/* Refer-Sub: false (RFC 4488): the referrer wants none */
		if (code >= 200)
			refer_done(lr);
		return rt_result(L, 0);
	}
	if (!lr->sub)
		return rt_fail(L, ENOTCONN);   /* the subscription is gone */

	err = sub_refer_notify(lr->sub, code, reason);
	if (!err && code >= 200)
		refer_done(lr);

	return rt_result(L, err);
}


static int l_notify_trying(lua_State *L)
{
	return refer_notify(L, 100, "Trying");
}


static int l_notify_ringing(lua_State *L)
{
	return refer_notify(L, 180, "Ringing");
}


static int l_notify_success(lua_State *L)
{
	return refer_notify(L, 200, "OK");
}


static int l_notify_failure(lua_State *L)
{
	lua_Integer code = luaL_optinteger(L, 2, 503);
	const char *reason = luaL_optstring(L, 3, NULL);

	if (code < 300 || code > 699)
		return luaL_argerror(L, 2, "status code 300-699 expected");
	if (reason && strpbrk(reason, "\r\n"))
		return luaL_argerror(L, 3, "invalid reason");

	return refer_notify(L, (uint16_t)code, reason);
}


/* refer:transfer([body [, content_type [, {from=, headers=}]]]) ->
 * call | nil, err: accepts if not yet, calls the target (with the
 * Replaces it carried), and that call's progress goes to the referrer
 * as NOTIFYs */
static int l_refer_transfer(lua_State *L)
{
	struct lrefer *lr = check_refer(L, 1);
	size_t len = 0;
	const char *body = luaL_optlstring(L, 2, NULL, &len);
	const char *ctype = luaL_optstring(L, 3, len ? "application/sdp" :
					   NULL);
	const char *from = NULL;
	char *xhdrs = NULL, *hdrs = NULL;
	struct call *call = NULL;
	struct stack *st = rt_stack(L);
	int err;

	if (ctype && strpbrk(ctype, "\r\n"))
		return luaL_argerror(L, 3, "invalid content type");
	if (!lua_isnoneornil(L, 4)) {
		luaL_checktype(L, 4, LUA_TTABLE);
		lua_getfield(L, 4, "from");
		from = lua_tostring(L, -1);
		if (from && strncmp(from, "sip:", 4))
			return luaL_argerror(L, 4, "from: sip: URI expected");
		lua_getfield(L, 4, "headers");
		if (!lua_isnil(L, -1))
			api_headers_encode(L, -1, &xhdrs);
		lua_pop(L, 1);
	}
	if (lr->final) {
		mem_deref(xhdrs);
		return rt_fail(L, EALREADY);
	}

	if (lr->req) {
		lua_pushcfunction(L, l_refer_accept);
		lua_pushvalue(L, 1);
		lua_call(L, 1, 2);
		if (lua_isnil(L, -2)) {
			mem_deref(xhdrs);
			return 2;
		}
		lua_pop(L, 2);
	}

	err = re_sdprintf(&hdrs, "%s%s%s%s%s%s", lr->replaces ?
			  "Replaces: " : "", lr->replaces ? lr->replaces : "",
			  lr->replaces ? "\r\n" : "",
			  lr->referred_by ? "Referred-By: " : "",
			  lr->referred_by ? lr->referred_by : "",
			  lr->referred_by ? "\r\n" : "");
	if (!err && xhdrs)
		err = re_sdprintf(&hdrs, "%s%s", hdrs, xhdrs);
	mem_deref(xhdrs);
	if (!err)
		err = st ? call_connect(&call, st, lr->target, from, hdrs,
					ctype, (const uint8_t *)body, len,
					NULL, NULL) : ENOTCONN;
	mem_deref(hdrs);
	if (err) {
		if (lr->sub) {
			(void)sub_refer_notify(lr->sub, 503, NULL);
			refer_done(lr);
		}
		return rt_fail(L, err);
	}

	api_call_push(L, rt_script(L), call);
	mem_deref(call);
	api_call_follow_refer(L, -1, lr->sub, lr->call);
	lr->final = true;        /* the new call sends the final NOTIFY */

	return 1;
}


static int l_refer_index(lua_State *L)
{
	struct lrefer *lr = check_refer(L, 1);
	const char *k = luaL_checkstring(L, 2);

	if (!strcmp(k, "from"))
		return push_opt(L, lr->from);
	if (!strcmp(k, "target"))
		return push_opt(L, lr->target);
	if (!strcmp(k, "referred_by"))
		return push_opt(L, lr->referred_by);
	if (!strcmp(k, "replaces")) {
		struct pl v, cid, p;

		if (!lr->replaces) {
			lua_pushnil(L);
			return 1;
		}
		pl_set_str(&v, lr->replaces);
		if (re_regex(v.p, v.l, "[^;]+", &cid)) {
			lua_pushnil(L);
			return 1;
		}
		lua_createtable(L, 0, 4);
		lua_pushlstring(L, cid.p, cid.l);
		lua_setfield(L, -2, "call_id");
		if (!re_regex(v.p, v.l, ";to-tag=[^;]+", &p))
			lua_pushlstring(L, p.p, p.l), lua_setfield(L, -2,
								   "to_tag");
		if (!re_regex(v.p, v.l, ";from-tag=[^;]+", &p))
			lua_pushlstring(L, p.p, p.l), lua_setfield(L, -2,
								   "from_tag");
		lua_pushboolean(L, strstr(lr->replaces, "early-only") != NULL);
		lua_setfield(L, -2, "early_only");
		return 1;
	}
	if (!strcmp(k, "call")) {
		lua_getfenv(L, 1);
		lua_getfield(L, -1, "call");
		return 1;
	}

	lua_getmetatable(L, 1);
	lua_getfield(L, -1, k);

	return 1;
}


static int l_refer_gc(lua_State *L)
{
	struct lrud *ud = luaL_checkudata(L, 1, REFER_MT);

	ud->lr = mem_deref(ud->lr);

	return 0;
}



/* ------------------------------------------------------------------ *
 * Outgoing REFER: call:refer, call:refer_with_replaces, call:wait_refer
 * ------------------------------------------------------------------ */

/* One transfer of a call by us: the REFER's subscription */
struct lrefout {
	struct sub *sub;
	struct call *call;        /* reference                          */
	struct script *sc;        /* reference                          */
	int call_ref;             /* registry ref of the call's userdata */
	struct rt_op *waiter;     /* call:refer's wait for the 202       */
	struct rt_op *fwaiter;    /* call:wait_refer's                   */
	int err;
	uint16_t scode;           /* the REFER's answer                  */
	uint16_t final;           /* the final sipfrag's code            */
	char *reason, *final_reason;
	bool done;                /* the subscription ended              */
};

static const char KEY_REFOUT = 0;   /* call env: lightuserdata lrefout */


static void lrefout_destructor(void *arg)
{
	struct lrefout *lo = arg;

	if (lo->sub)
		sub_set_handler(lo->sub, NULL, NULL);
	mem_deref(lo->sub);
	mem_deref(lo->call);
	rt_unref(lo->sc, lo->call_ref);
	mem_deref(lo->sc);
	mem_deref(lo->reason);
	mem_deref(lo->final_reason);
}


/* call:refer's values: true | nil, "rejected", code, reason | nil, err */
static int push_refer_answer(lua_State *co, void *arg)
{
	struct lrefout *lo = arg;

	if (!lo->err && lo->scode >= 200 && lo->scode < 300) {
		lua_pushboolean(co, 1);
		return 1;
	}

	lua_pushnil(co);
	if (lo->scode >= 300) {
		lua_pushstring(co, "rejected");
		lua_pushinteger(co, lo->scode);
		lua_pushstring(co, lo->reason ? lo->reason : "");
		return 4;
	}
	lua_pushstring(co, rt_errstr(lo->err ? lo->err : ENOTCONN));

	return 2;
}


/* call:wait_refer's values: code, reason | nil, err */
static int push_refer_final(lua_State *co, void *arg)
{
	struct lrefout *lo = arg;

	if (lo->final) {
		lua_pushinteger(co, lo->final);
		lua_pushstring(co, lo->final_reason ? lo->final_reason : "");
		return 2;
	}

	lua_pushnil(co);
	lua_pushstring(co, lo->done ? "ended" : rt_errstr(ETIMEDOUT));

	return 2;
}


static void refout_wake(struct rt_op **opp, rt_push_h *push, void *arg)
{
	struct rt_op *op = *opp;

	if (!op)
		return;

	*opp = NULL;
	rt_op_resume(op, push, arg);
}


/* call.on_refer_progress(code, reason) in a task of its own */
static void refout_progress(struct lrefout *lo, uint16_t code,
			    const char *reason)
{
	lua_State *L;
	struct task *t;

	if (!lo->sc || rt_script_closing(lo->sc) ||
	    lo->call_ref == LUA_NOREF)
		return;
	L = rt_script_L(lo->sc);

	lua_rawgeti(L, LUA_REGISTRYINDEX, lo->call_ref);
	lua_getfenv(L, -1);
	lua_getfield(L, -1, "on_refer_progress");
	lua_remove(L, -2);
	lua_remove(L, -2);
	if (!lua_isfunction(L, -1)) {
		lua_pop(L, 1);
		return;
	}

	t = rt_task_new(lo->sc, RT_HOOK_SPAWN);
	if (!t) {
		lua_pop(L, 1);
		return;
	}
	lua_xmove(L, rt_task_co(t), 1);
	rt_task_set_callid(t, sub_callid(lo->sub));
	lua_pushinteger(rt_task_co(t), code);
	lua_pushstring(rt_task_co(t), reason ? reason : "");
	rt_task_run(t, 2);
}


static void refout_h(struct sub *sub, const struct sub_event *ev,
		     void *arg)
{
	struct lrefout *lo = arg;

	mem_ref(lo);

	switch (ev->type) {

	case SUB_EV_ANSWER:
		lo->err = ev->err;
		lo->scode = ev->scode;
		(void)str_dup(&lo->reason, ev->reason ? ev->reason : "");
		if (!ev->err && ev->scode < 300)
			(void)call_set_referring(lo->call, true);
		refout_wake(&lo->waiter, push_refer_answer, lo);
		break;

	case SUB_EV_NOTIFY:
		if (!ev->frag_code || lo->final)
			break;
		if (ev->frag_code >= 200) {
			lo->final = ev->frag_code;
			(void)str_dup(&lo->final_reason, ev->frag_reason);
			/* the outcome is known: the subscription is done
			 * with (RFC 3515 §2.4.5) */
			if (ev->state != SUB_TERMINATED)
				(void)sub_unsubscribe(sub);
			(void)call_set_referring(lo->call, false);
		}
		refout_progress(lo, ev->frag_code, ev->frag_reason);
		if (lo->final)
			refout_wake(&lo->fwaiter, push_refer_final, lo);
		break;

	case SUB_EV_CLOSED:
		lo->done = true;
		refout_wake(&lo->waiter, push_refer_answer, lo);
		(void)call_set_referring(lo->call, false);
		refout_wake(&lo->fwaiter, push_refer_final, lo);
		/* no more callbacks: the call object may go, and the
		 * script (it frees the userdata that holds us) */
		rt_unref(lo->sc, lo->call_ref);
		lo->call_ref = LUA_NOREF;
		if (!rt_script_closing(lo->sc))
			lo->sc = mem_deref(lo->sc);
		mem_deref(lo);     /* the handler's reference */
		break;

	default:
		break;
	}

	mem_deref(lo);
}


static void refout_cleanup(struct rt_op *op, void *ctx)
{
	struct lrefout *lo = ctx;

	if (lo->waiter == op)
		lo->waiter = NULL;
	if (lo->fwaiter == op)
		lo->fwaiter = NULL;
}


/* The call's current transfer (env[KEY_REFOUT]), or NULL */
static struct lrefout *refout_of(lua_State *L, int idx)
{
	struct lrefout *lo;

	lua_getfenv(L, idx);
	lua_pushlightuserdata(L, (void *)&KEY_REFOUT);
	lua_rawget(L, -2);
	lo = lua_touserdata(L, -1);
	lua_pop(L, 2);

	return lo;
}


static int call_refer(lua_State *L, const char *target, int opts,
		      const char *replaces)
{
	struct call *call = api_call_check(L, 1);
	struct stack *st = rt_stack(L);
	struct dialog *dlg = call_dialog(call);
	char *hdrs = NULL, *xhdrs = NULL, *uri = NULL;
	struct lrefout *lo, *prev;
	struct rt_op *op;
	int err;

	rt_need_task(L, "refer");
	if (strncmp(target, "sip:", 4) && strncmp(target, "sips:", 5))
		return luaL_argerror(L, 2, "sip: URI expected");
	if (strpbrk(target, "<>\r\n ?"))
		return luaL_argerror(L, 2, "a URI without headers expected");
	if (opts && !lua_isnoneornil(L, opts)) {
		luaL_checktype(L, opts, LUA_TTABLE);
		lua_getfield(L, opts, "headers");
		if (!lua_isnil(L, -1))
			api_headers_encode(L, -1, &xhdrs);
		lua_pop(L, 1);
	}

	prev = refout_of(L, 1);
	if (prev && !prev->done) {
		mem_deref(xhdrs);
		return rt_fail(L, EBUSY);
	}
	if (!st || !dlg || !call_is_answered(call) || call_is_ended(call)) {
		mem_deref(xhdrs);
		return rt_fail(L, ENOTCONN);
	}

	err  = re_sdprintf(&hdrs, "Referred-By: <%s>\r\n%s",
			   dialog_local_uri(dlg), xhdrs ? xhdrs : "");
	if (replaces) {
		struct pl r;

		pl_set_str(&r, replaces);
		err |= re_sdprintf(&uri, "%s?Replaces=%H", target,
				   uri_header_escape, &r);
	}
	else {
		err |= str_dup(&uri, target);
	}
	mem_deref(xhdrs);
	if (err) {
		mem_deref(hdrs);
		mem_deref(uri);
		return rt_fail(L, err);
	}

	lo = mem_zalloc(sizeof(*lo), lrefout_destructor);
	if (!lo) {
		mem_deref(hdrs);
		mem_deref(uri);
		return rt_fail(L, ENOMEM);
	}
	lo->call = mem_ref(call);
	lo->sc = mem_ref(rt_script(L));
	lua_pushvalue(L, 1);
	lo->call_ref = rt_ref(L);

	err = sub_refer(&lo->sub, st, dlg, uri, hdrs, refout_h, lo);
	mem_deref(hdrs);
	mem_deref(uri);
	if (err) {
		mem_deref(lo);
		return rt_fail(L, err);
	}
	mem_ref(lo);      /* the subscription handler's, until CLOSED */

	/* the call's env holds the transfer (its lrefout by the userdata
	 * below, which frees it with the call object) */
	lua_getfenv(L, 1);
	lua_pushlightuserdata(L, (void *)&KEY_REFOUT);
	lua_pushlightuserdata(L, lo);
	lua_rawset(L, -3);
	lua_pushliteral(L, "__refer_obj");
	*(struct lrefout **)lua_newuserdata(L, sizeof(lo)) = lo;
	luaL_getmetatable(L, REFOUT_MT);
	lua_setmetatable(L, -2);
	lua_rawset(L, -3);
	lua_pop(L, 1);

	op = rt_op_start(L, "refer");
	rt_op_cleanup(op, refout_cleanup, lo);
	lo->waiter = op;

	return rt_op_yield(L, op);
}


/* call:refer(target [, {headers=}]): blind transfer */
static int l_call_refer(lua_State *L)
{
	const char *target = luaL_checkstring(L, 2);

	return call_refer(L, target, 3, NULL);
}


/* call:refer_with_replaces(target, other_call | {call_id=, to_tag=,
 * from_tag=} [, {headers=}]): attended transfer (RFC 3891 in the
 * Refer-To) */
static int l_call_refer_replaces(lua_State *L)
{
	const char *target = luaL_checkstring(L, 2);
	char rep[512];

	if (lua_isnoneornil(L, 3))
		return luaL_argerror(L, 3, "the call to replace expected");

	/* the spec's form: (target, call_id, to_tag, from_tag) */
	if (lua_type(L, 3) == LUA_TSTRING) {
		lua_createtable(L, 0, 3);
		lua_pushvalue(L, 3);
		lua_setfield(L, -2, "call_id");
		lua_pushstring(L, luaL_checkstring(L, 4));
		lua_setfield(L, -2, "to_tag");
		lua_pushstring(L, luaL_checkstring(L, 5));
		lua_setfield(L, -2, "from_tag");
		api_replaces_value(L, lua_gettop(L), rep, sizeof(rep));
		lua_pop(L, 1);
		return call_refer(L, target, 6, rep);
	}

	api_replaces_value(L, 3, rep, sizeof(rep));

	return call_refer(L, target, 4, rep);
}


/* call:wait_refer([timeout]) -> code, reason | nil, err: the final
 * sipfrag of the call's transfer */
static int l_call_wait_refer(lua_State *L)
{
	lua_Number timeout = luaL_optnumber(L, 2, 0);
	struct lrefout *lo;
	struct rt_op *op;

	(void)api_call_check(L, 1);
	rt_need_task(L, "wait_refer");
	if (timeout < 0)
		return luaL_argerror(L, 2, "seconds >= 0 expected");

	lo = refout_of(L, 1);
	if (!lo)
		return luaL_error(L, "wait_refer: no transfer (call:refer "
				  "first)");
	if (lo->final || lo->done)
		return push_refer_final(L, lo);
	if (lo->fwaiter)
		return luaL_error(L, "wait_refer: another task waits");

	op = rt_op_start(L, "wait_refer");
	rt_op_cleanup(op, refout_cleanup, lo);
	if (timeout > 0)
		rt_op_timeout(op, (uint64_t)(timeout * 1000),
			      push_refer_final, lo);
	lo->fwaiter = op;

	return rt_op_yield(L, op);
}


static int l_refout_gc(lua_State *L)
{
	struct lrefout **p = lua_touserdata(L, 1);

	*p = mem_deref(*p);

	return 0;
}


/* ------------------------------------------------------------------ *
 * sip.on_subscribe and the packages
 * ------------------------------------------------------------------ */

static lua_Integer opt_seconds(lua_State *L, int idx, const char *k)
{
	lua_Integer v = 0;

	lua_getfield(L, idx, k);
	if (!lua_isnil(L, -1)) {
		if (!lua_isnumber(L, -1))
			return luaL_argerror(L, idx, k);
		v = lua_tointeger(L, -1);
		if (v < 1 || v > 0x7fffffff)
			return luaL_argerror(L, idx, k);
	}
	lua_pop(L, 1);

	return v;
}


/* sip.on_subscribe(package, fn [, {min_expires=, max_expires=}]) at
 * the top level of the script */
static int l_on_subscribe(lua_State *L)
{
	const char *pkg = luaL_checkstring(L, 1);
	lua_Integer min = 0, max = 0;
	const char *p;

	rt_need_loading(L, "on_subscribe");
	luaL_checktype(L, 2, LUA_TFUNCTION);
	if (!lua_isnoneornil(L, 3)) {
		luaL_checktype(L, 3, LUA_TTABLE);
		min = opt_seconds(L, 3, "min_expires");
		max = opt_seconds(L, 3, "max_expires");
		if (min && max && max < min)
			return luaL_argerror(L, 3, "max_expires < "
					     "min_expires");
	}
	for (p = pkg; *p; p++) {
		if (!(isalnum((unsigned char)*p) || strchr("-.!%*_+`'~", *p)))
			return luaL_argerror(L, 1, "event package token "
					     "expected");
	}
	if (!*pkg || p - pkg > 64)
		return luaL_argerror(L, 1, "event package token expected");

	lua_pushlightuserdata(L, (void *)&KEY_PKGS);
	lua_rawget(L, LUA_REGISTRYINDEX);
	if (lua_isnil(L, -1)) {
		lua_pop(L, 1);
		lua_newtable(L);
		lua_pushlightuserdata(L, (void *)&KEY_PKGS);
		lua_pushvalue(L, -2);
		lua_rawset(L, LUA_REGISTRYINDEX);
	}
	lua_pushstring(L, pkg);
	lua_createtable(L, 0, 3);
	lua_pushvalue(L, 2);
	lua_setfield(L, -2, "fn");
	lua_pushinteger(L, min);
	lua_setfield(L, -2, "min");
	lua_pushinteger(L, max);
	lua_setfield(L, -2, "max");
	lua_rawset(L, -3);
	lua_pop(L, 1);

	return 0;
}


static void hook_end(lua_State *co, bool failed, int nres, void *ctx)
{
	struct lsub *ls = ctx;
	struct sub *sub = ls->sub;

	if (!sub_request(sub))
		return;           /* answered */

	if (failed) {
		(void)sub_reject(sub, 500, "Server Internal Error", NULL);
		return;
	}

	if (nres >= 1 && lua_type(co, 1) == LUA_TNUMBER) {
		lua_Number n = lua_tonumber(co, 1);

		if (n >= 300 && n <= 699) {
			(void)sub_reject(sub, (uint16_t)n, lua_tostring(co, 2),
					 NULL);
			return;
		}
	}

	(void)sub_reject(sub, 603, "Decline", NULL);
}


/* A SUBSCRIBE for a package: the current generation's function */
static void pkg_handler(struct sub *sub, void *arg)
{
	struct luart *rt = arg;
	struct script *sc = rt_current(rt);
	lua_State *L = rt_script_L(sc);
	struct lsub *ls;
	struct task *t;

	if (!L) {
		(void)sub_reject(sub, 503, "Service Unavailable", NULL);
		return;
	}

	lua_pushlightuserdata(L, (void *)&KEY_PKGS);
	lua_rawget(L, LUA_REGISTRYINDEX);
	if (lua_istable(L, -1))
		lua_getfield(L, -1, sub_event_package(sub));
	else
		lua_pushnil(L);
	lua_remove(L, -2);
	if (lua_istable(L, -1)) {
		lua_getfield(L, -1, "fn");
		lua_remove(L, -2);
	}
	if (!lua_isfunction(L, -1)) {
		lua_pop(L, 1);
		(void)sub_reject(sub, 489, "Bad Event", NULL);
		return;
	}

	t = rt_task_new(sc, RT_HOOK_SUBSCRIBE);
	if (!t) {
		lua_pop(L, 1);
		(void)sub_reject(sub, 500, "Server Internal Error", NULL);
		return;
	}

	lua_xmove(L, rt_task_co(t), 1);
	ls = push_sub(rt_task_co(t), sc, sub);
	rt_task_set_end(t, hook_end, ls);   /* the task holds ls */
	rt_task_set_callid(t, sub_callid(sub));
	rt_task_run(t, 1);
}


static void levents_destructor(void *arg)
{
	struct levents *le = arg;

	list_flush(&le->pkgs);
	mem_deref(le->refer);
}


static void lpkg_destructor(void *arg)
{
	struct lpkg *p = arg;

	list_unlink(&p->le);
	mem_deref(p->pkg);
	mem_deref(p->name);
}


/* events_listen, after dropping the old generation's registration of
 * the same package (its limits changed) */
static int events_listen_replace(struct evpkg **pp, struct stack *st,
				 const char *name, uint32_t min, uint32_t max,
				 evpkg_h *h, void *arg, struct list *old)
{
	struct le *le;

	LIST_FOREACH(old, le) {
		struct lpkg *q = le->data;

		if (!strcmp(q->name, name)) {
			q->pkg = mem_deref(q->pkg);
			break;
		}
	}

	return events_listen(pp, st, name, min, max, h, arg);
}


/* The packages of sc become the ones listened to */
int api_events_activate(struct luart *rt, struct script *sc)
{
	struct levents *old = rt_slot(rt, RT_SLOT_EVENTS);
	struct stack *st = rt_runtime_stack(rt);
	lua_State *L = rt_script_L(sc);
	struct levents *ne;
	int err = 0;

	ne = mem_zalloc(sizeof(*ne), levents_destructor);
	if (!ne)
		return ENOMEM;

	lua_pushlightuserdata(L, (void *)&KEY_PKGS);
	lua_rawget(L, LUA_REGISTRYINDEX);
	if (lua_istable(L, -1)) {
		lua_pushnil(L);
		while (!err && lua_next(L, -2)) {
			const char *name = lua_tostring(L, -2);
			struct lpkg *p = NULL;
			uint32_t min, max;
			struct le *le;

			LIST_FOREACH(old ? &old->pkgs : NULL, le) {
				struct lpkg *q = le->data;

				if (!strcmp(q->name, name)) {
					p = q;
					break;
				}
			}
			lua_getfield(L, -1, "min");
			lua_getfield(L, -2, "max");
			min = (uint32_t)lua_tointeger(L, -2);
			max = (uint32_t)lua_tointeger(L, -1);
			lua_pop(L, 2);

			/* a package listened to already stays, unless its
			 * limits changed */
			if (p && (p->min != min || p->max != max))
				p = NULL;
			if (p) {
				list_unlink(&p->le);
				list_append(&ne->pkgs, &p->le, p);
			}
			else if (st) {
				p = mem_zalloc(sizeof(*p), lpkg_destructor);
				err = p ? str_dup(&p->name, name) : ENOMEM;
				if (p) {
					p->min = min;
					p->max = max;
				}
				if (!err)
					err = events_listen_replace(&p->pkg,
						    st, name, min, max,
						    pkg_handler, rt,
						    old ? &old->pkgs : NULL);
				if (p)
					list_append(&ne->pkgs, &p->le, p);
			}
			lua_pop(L, 1);
		}
		if (err)
			lua_pop(L, 1);
	}
	lua_pop(L, 1);

	if (err) {
		mem_deref(ne);
		return err;
	}

	if (st && rt_script_has_hook(sc, RT_HOOK_REFER))
		err = stack_handler_add(&ne->refer, st, "REFER", "REFER",
					STACK_OUT_OF_DIALOG, refer_handler,
					rt);
	if (err) {
		mem_deref(ne);
		return err;
	}

	rt_set_slot(rt, RT_SLOT_EVENTS, ne);   /* the old ones go */

	return 0;
}


void api_events_close(struct luart *rt)
{
	rt_set_slot(rt, RT_SLOT_EVENTS, NULL);
}


void api_events_inject(lua_State *L)
{
	static const luaL_Reg sub_methods[] = {
		{"accept",      l_accept},
		{"reject",      l_reject},
		{"notify",      l_notify},
		{"unsubscribe", l_unsubscribe},
		{"header",      l_header},
		{"__index",     l_index},
		{"__newindex",  l_newindex},
		{"__gc",        l_gc},
		{"__tostring",  l_tostring},
		{NULL, NULL}
	};

	static const luaL_Reg refer_methods[] = {
		{"accept",         l_refer_accept},
		{"reject",         l_refer_reject},
		{"notify_trying",  l_notify_trying},
		{"notify_ringing", l_notify_ringing},
		{"notify_success", l_notify_success},
		{"notify_failure", l_notify_failure},
		{"transfer",       l_refer_transfer},
		{"__index",        l_refer_index},
		{"__gc",           l_refer_gc},
		{NULL, NULL}
	};
	static const luaL_Reg call_refer_methods[] = {
		{"refer",               l_call_refer},
		{"refer_with_replaces", l_call_refer_replaces},
		{"wait_refer",          l_call_wait_refer},
		{NULL, NULL}
	};
	static const luaL_Reg events_funcs[] = {
		{"subscribe",    l_subscribe},
		{"on_subscribe", l_on_subscribe},
		{NULL, NULL}
	};

	luaL_newmetatable(L, SUB_MT);
	luaL_setfuncs(L, sub_methods, 0);
	lua_pushliteral(L, SUB_MT);
	lua_setfield(L, -2, "__metatable");
	lua_pop(L, 1);

	luaL_newmetatable(L, REFER_MT);
	luaL_setfuncs(L, refer_methods, 0);
	lua_pushliteral(L, REFER_MT);
	lua_setfield(L, -2, "__metatable");
	lua_pop(L, 1);

	luaL_newmetatable(L, REFOUT_MT);
	lua_pushcfunction(L, l_refout_gc);
	lua_setfield(L, -2, "__gc");
	lua_pop(L, 1);

	/* the call object's transfer methods (api_call.c made its
	 * metatable) */
	luaL_getmetatable(L, "sipstack.call");
	luaL_setfuncs(L, call_refer_methods, 0);
	lua_pop(L, 1);

	luaL_setfuncs(L, events_funcs, 0);
}
