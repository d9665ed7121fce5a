/**
 * bindings/api_request.c  The request object and header tables
 *
 * Owns the userdata "sipstack.request": a reference on a struct
 * stack_req, handed to hooks (and to call.on_info), with its fields
 * (req.method, req.body, ...) and methods (req:reply, req:header,
 * req:headers). Exposes api_request_push/check, api_msg_headers (a
 * message's headers by name, compact forms too) and api_headers_encode
 * (the header tables every sending function takes, checked by the
 * sipstack.headers module) to the other feature files. Uses the stack's
 * stack_req_*(); never yields.
 */
#include <string.h>
#include <re.h>
#include "sipstack.h"
#include "runtime.h"


#define REQUEST_MT "sipstack.request"

struct lreq {
	struct stack_req *req;
};


/* ------------------------------------------------------------------ *
 * Header tables
 * ------------------------------------------------------------------ */

/* A header table (map or list of lines, docs/lua-api.md) at idx into
 * *hdrs: a mem string of CRLF-ended lines, or NULL when empty or nil */
void api_headers_encode(lua_State *L, int idx, char **hdrs)
{
	const char *s;
	size_t len;

	*hdrs = NULL;
	if (lua_isnoneornil(L, idx))
		return;

	if (idx < 0)
		idx = lua_gettop(L) + idx + 1;

	luaL_checktype(L, idx, LUA_TTABLE);

	rt_require(L, "sipstack.headers");
	lua_getfield(L, -1, "encode");
	lua_pushvalue(L, idx);
	lua_call(L, 1, 1);   /* raises on bad headers */

	s = lua_tolstring(L, -1, &len);
	if (s && len) {
		char *p = mem_alloc(len + 1, NULL);
		if (!p) {
			luaL_error(L, "out of memory");
			return;
		}
		memcpy(p, s, len + 1);
		*hdrs = p;
	}
	lua_pop(L, 2);
}



/* ------------------------------------------------------------------ *
 * The request object
 * ------------------------------------------------------------------ */

struct stack_req *api_request_check(lua_State *L, int idx)
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


/* The first value (nil) or the list of values (all) of the header
 * named at index 2, in msg (NULL: none) */
int api_msg_headers(lua_State *L, const struct sip_msg *msg, bool all)
{
	struct pl name;
	struct le *le;
	int n = 0;

	pl_set_str(&name, luaL_checkstring(L, 2));
	if (all)
		lua_newtable(L);

	for (le = msg ? msg->hdrl.head : NULL; le; le = le->next) {
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

/* req:header(name) -> first value or nil; req:headers(name) -> list */
static int l_req_header(lua_State *L)
{
	return api_msg_headers(L, stack_req_msg(api_request_check(L, 1)),
			       false);
}

static int l_req_headers(lua_State *L)
{
	return api_msg_headers(L, stack_req_msg(api_request_check(L, 1)),
			       true);
}


/* req:reply(code [, reason [, headers [, body [, content_type]]]]) */
static int l_req_reply(lua_State *L)
{
	struct stack_req *req = api_request_check(L, 1);
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

	api_headers_encode(L, 4, &hdrs);

	err = stack_req_reply(req, code, reason ? reason : "OK", hdrs, ctype,
			      (const uint8_t *)body, len);
	mem_deref(hdrs);

	return rt_result(L, err);
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
	const struct sip_msg *msg = stack_req_msg(api_request_check(L, 1));
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
	const struct sip_msg *msg = stack_req_msg(api_request_check(L, 1));

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


void api_request_push(lua_State *L, struct stack_req *req)
{
	struct lreq *lr = lua_newuserdata(L, sizeof(*lr));

	lr->req = stack_req_ref(req);
	luaL_getmetatable(L, REQUEST_MT);
	lua_setmetatable(L, -2);
}


/* ------------------------------------------------------------------ *
 * Requests of ours (sip.request, call:request): their options and
 * their final response
 * ------------------------------------------------------------------ */

const char *api_uri_field(lua_State *L, int idx, const char *key)
{
	const char *s;

	lua_getfield(L, idx, key);
	if (lua_isnil(L, -1))
		return NULL;

	s = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
	if (!s || (strncmp(s, "sip:", 4) && strncmp(s, "sips:", 5)) ||
	    strpbrk(s, "\r\n<> "))
		luaL_argerror(L, idx, lua_pushfstring(L, "%s: a SIP URI "
			      "expected", key));

	return s;
}


/* The methods sip.request and call:request refuse, and what to use
 * instead, out of dialog and in a call */
static const struct {
	const char *met, *ood, *in_call;
} refused[] = {
	{"INVITE",    "use sip.call", "use call:update, call:hold or "
				      "call:unhold"},
	{"ACK",       "sent by the stack itself", NULL},
	{"PRACK",     "in a call: sent by the stack itself",
		      "sent by the stack itself"},
	{"BYE",       "in a call: use call:hangup", "use call:hangup"},
	{"CANCEL",    "use call:cancel or call:hangup", NULL},
	{"UPDATE",    "in a call only (RFC 3311): use call:update",
		      "the stack answers UPDATE offers; for a new offer use "
		      "call:update"},
	{"SUBSCRIBE", "use sip.subscribe", NULL},
	{"REFER",     "use call:refer", NULL},
	{"REGISTER",  "use sip.register", NULL},
};


const char *api_method_check(lua_State *L, int idx, bool in_call)
{
	const char *m = luaL_checkstring(L, idx);
	size_t i;

	for (i = 0; m[i]; i++) {
		if (!((m[i] >= 'A' && m[i] <= 'Z') ||
		      (m[i] >= '0' && m[i] <= '9') || m[i] == '-' ||
		      m[i] == '_' || m[i] == '.'))
			break;
	}

	if (!i || m[i] || i > 32)
		luaL_argerror(L, idx, "method: an upper-case token expected");

	for (i = 0; i < ARRAY_SIZE(refused); i++) {
		if (strcmp(m, refused[i].met))
			continue;
		luaL_error(L, "request: %s is not for %s (%s)", m,
			   in_call ? "call:request" : "sip.request",
			   in_call && refused[i].in_call ? refused[i].in_call
			   : refused[i].ood);
	}

	return m;
}


void api_reqopts_check(lua_State *L, int idx, struct api_reqopts *o,
		       bool with_from)
{
	lua_Number t;

	memset(o, 0, sizeof(*o));
	if (lua_isnoneornil(L, idx))
		return;

	luaL_checktype(L, idx, LUA_TTABLE);

	lua_pushnil(L);
	while (lua_next(L, idx)) {
		const char *k = lua_type(L, -2) == LUA_TSTRING ?
			lua_tostring(L, -2) : "?";

		if (strcmp(k, "headers") && strcmp(k, "body") &&
		    strcmp(k, "content_type") && strcmp(k, "timeout") &&
		    (!with_from || (strcmp(k, "from") &&
				    strcmp(k, "next_hop"))))
			luaL_argerror(L, idx, lua_pushfstring(L, "unknown "
				      "option '%s'", k));
		lua_pop(L, 1);
	}

	/* the values stay on L's stack, so the strings stay anchored */
	lua_getfield(L, idx, "body");
	if (!lua_isnil(L, -1)) {
		if (lua_type(L, -1) != LUA_TSTRING)
			luaL_argerror(L, idx, "body: a string expected");
		o->body = lua_tolstring(L, -1, &o->len);
	}

	lua_getfield(L, idx, "content_type");
	if (!lua_isnil(L, -1)) {
		if (lua_type(L, -1) != LUA_TSTRING)
			luaL_argerror(L, idx, "content_type: a string "
				      "expected");
		o->ctype = lua_tostring(L, -1);
		if (!*o->ctype || strpbrk(o->ctype, "\r\n"))
			luaL_argerror(L, idx, "invalid content_type");
	}
	if (o->len && !o->ctype)
		luaL_argerror(L, idx, "a body needs a content_type");

	if (with_from) {
		o->from = api_uri_field(L, idx, "from");
		o->next_hop = api_uri_field(L, idx, "next_hop");
	}

	lua_getfield(L, idx, "timeout");
	if (!lua_isnil(L, -1)) {
		t = lua_tonumber(L, -1);
		if (lua_type(L, -1) != LUA_TNUMBER || !(t > 0) || t > 3600)
			luaL_argerror(L, idx, "timeout: seconds in 0..3600 "
				      "expected");
		o->timeout_ms = (uint64_t)(t * 1000 + 0.5);
	}

	/* last: it allocates (and raises on a bad header) */
	lua_getfield(L, idx, "headers");
	api_headers_encode(L, -1, &o->hdrs);
}


struct final {
	int err;
	const struct sip_msg *msg;
};


/* code, reason, body, content_type | nil, err */
static int push_final(lua_State *co, void *arg)
{
	const struct final *r = arg;
	const struct sip_hdr *ct;
	struct pl body;

	if (r->err || !r->msg)
		return rt_fail(co, r->err ? r->err : EPROTO);

	lua_pushinteger(co, r->msg->scode);
	lua_pushlstring(co, r->msg->reason.p, r->msg->reason.l);
	stack_msg_body(r->msg, &body);
	lua_pushlstring(co, body.p, body.l);
	ct = sip_msg_hdr(r->msg, SIP_HDR_CONTENT_TYPE);
	if (ct && body.l)
		lua_pushlstring(co, ct->val.p, ct->val.l);
	else
		lua_pushnil(co);

	return 4;
}


void api_final_h(int err, const struct sip_msg *msg, void *arg)
{
	struct final r = {err, msg};

	rt_op_resume(arg, push_final, &r);
}


static int push_final_timeout(lua_State *co, void *arg)
{
	(void)arg;

	return rt_fail(co, ETIMEDOUT);
}


void api_final_wait(struct rt_op *op, const struct api_reqopts *o)
{
	if (o->timeout_ms)
		rt_op_timeout(op, o->timeout_ms, push_final_timeout, NULL);
}


/* ------------------------------------------------------------------ *
 * Injection
 * ------------------------------------------------------------------ */

/* the metatable of requests (nothing in the sip table) */
void api_request_inject(lua_State *L)
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

	luaL_newmetatable(L, REQUEST_MT);
	luaL_setfuncs(L, req_methods, 0);
	lua_pushliteral(L, "sipstack.request");
	lua_setfield(L, -2, "__metatable");
	lua_pop(L, 1);
}
