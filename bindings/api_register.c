/**
 * bindings/api_register.c  sip.register() and sip.unregister()
 *
 * Owns struct lreg: one registration a script asked for, keyed by
 * registrar URI and user, and their list (struct regs). The
 * registrations belong to the runtime (its RT_SLOT_REGISTER), not to a
 * script generation: they outlive a reload, and a reload that calls
 * sip.register() again with the same key updates the registration (same
 * Call-ID; nothing is sent when nothing changed) instead of adding one.
 * Exposes sip.register and sip.unregister (neither yields: outcomes
 * come to a hook) and api_register_close() (the runtime goes). Uses
 * server/registrar/regclient.c for the SIP side; each outcome fires the current
 * script's on_registration_result hook through rt_fire().
 */
#include <string.h>
#include <math.h>
#include <re.h>
#include "sipstack.h"
#include "runtime.h"


enum {
	EXPIRES_MAX = 31536000,    /* a year                              */
	RETRY_MAX   = 86400,
	STR_MAX     = 512,
};

/* sip.register()'s arguments, owned */
struct lparams {
	char *registrar;
	char *aor;
	char *user;
	char *password;
	char *contact;
	uint32_t expires;
	uint32_t retry_min;
	uint32_t retry_max;
};

struct lreg {
	struct le le;              /* in struct regs                      */
	struct luart *rt;          /* not a reference: owns us            */
	struct regclient *rc;
	struct lparams p;          /* current; registrar and user: key    */
	struct lparams next;       /* for again                           */
	bool unregistering;        /* sip.unregister() called             */
	bool again;                /* sip.register() while unregistering:
				    * register anew once that has ended   */
};

/* The registrations of a runtime (RT_SLOT_REGISTER); each holds a
 * reference on its lreg */
struct regs {
	struct list l;
};

/* what on_registration_result gets */
struct regres {
	bool ok;
	uint32_t expires;
	uint16_t scode;
	const char *reason;
	const char *registrar;
	const char *user;
};


/* ------------------------------------------------------------------ *
 * Parameters
 * ------------------------------------------------------------------ */

static void lparams_reset(struct lparams *lp)
{
	mem_deref(lp->registrar);
	mem_deref(lp->aor);
	mem_deref(lp->user);
	mem_deref(lp->password);
	mem_deref(lp->contact);
	memset(lp, 0, sizeof(*lp));
}


static void lparams_move(struct lparams *dst, struct lparams *src)
{
	lparams_reset(dst);
	*dst = *src;
	memset(src, 0, sizeof(*src));
}


static void lparams_view(const struct lparams *lp, struct regclient_params *p)
{
	memset(p, 0, sizeof(*p));
	p->registrar = lp->registrar;
	p->aor       = lp->aor;
	p->user      = lp->user;
	p->password  = lp->password;
	p->contact   = lp->contact;
	p->expires   = lp->expires;
	p->retry_min = lp->retry_min;
	p->retry_max = lp->retry_max;
}


static int lparams_gc(lua_State *L)
{
	struct lparams *lp = lua_touserdata(L, 1);

	if (lp)
		lparams_reset(lp);

	return 0;
}


/* A string of at most STR_MAX bytes with no control character and none
 * of bad (they would break the header it goes into) */
static const char *check_str(lua_State *L, int idx, const char *what,
			     const char *bad)
{
	size_t len, i;
	const char *s = lua_tolstring(L, idx, &len);

	if (lua_type(L, idx) != LUA_TSTRING)
		luaL_error(L, "register: '%s' must be a string", what);

	if (!len || len > STR_MAX)
		luaL_error(L, "register: '%s' must be 1..%d bytes", what,
			   STR_MAX);

	for (i = 0; i < len; i++) {
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f ||
		    strchr(bad, s[i]))
			luaL_error(L, "register: '%s' holds a character it "
				   "cannot (control, or one of %s)", what,
				   bad);
	}

	return s;
}


static const char *check_uri(lua_State *L, int idx, const char *what)
{
	const char *s = check_str(L, idx, what, "<>\" ");
	struct uri uri;
	struct pl pl;

	pl_set_str(&pl, s);
	if (uri_decode(&uri, &pl) || !pl_isset(&uri.host) ||
	    (pl_strcasecmp(&uri.scheme, "sip") &&
	     pl_strcasecmp(&uri.scheme, "sips")))
		luaL_error(L, "register: '%s' is not a SIP URI: %s", what, s);

	return s;
}


static uint32_t check_uint(lua_State *L, int idx, const char *what,
			   uint32_t max)
{
	lua_Number n;

	if (lua_type(L, idx) != LUA_TNUMBER)
		luaL_error(L, "register: '%s' must be a number", what);

	n = lua_tonumber(L, idx);
	if (n != floor(n) || n < 1 || n > max)
		luaL_error(L, "register: '%s' must be an integer in 1..%u",
			   what, max);

	return (uint32_t)n;
}


static void dup_or_raise(lua_State *L, char **dst, const char *s)
{
	if (s && str_dup(dst, s))
		luaL_error(L, "out of memory");
}


/*
 * sip.register(registrar_uri, {user=, password=, expires=, contact=,
 * aor=, retry_min=, retry_max=}) into *lp; raises on misuse (lp is a
 * userdata whose __gc frees what was read so far).
 */
static void params_read(lua_State *L, struct lparams *lp)
{
	const char *registrar = check_uri(L, 1, "registrar_uri");

	if (strncmp(registrar, "sip:", 4))
		luaL_argerror(L, 1, "sip: URI expected (libre 1.1.0 does not "
			      "route sips:)");

	dup_or_raise(L, &lp->registrar, registrar);

	if (lua_isnoneornil(L, 2))
		luaL_argerror(L, 2, "table expected with user= or aor=");
	luaL_checktype(L, 2, LUA_TTABLE);

	lua_pushnil(L);
	while (lua_next(L, 2)) {
		const char *k = lua_type(L, -2) == LUA_TSTRING ?
			lua_tostring(L, -2) : NULL;

		if (!k)
			luaL_error(L, "register: option keys must be strings");

		if (!strcmp(k, "user"))
			dup_or_raise(L, &lp->user,
				     check_str(L, -1, k, "\"\\<>@: "));
		else if (!strcmp(k, "password"))
			dup_or_raise(L, &lp->password,
				     check_str(L, -1, k, "\"\\"));
		else if (!strcmp(k, "aor"))
			dup_or_raise(L, &lp->aor, check_uri(L, -1, k));
		else if (!strcmp(k, "contact"))
			dup_or_raise(L, &lp->contact, check_uri(L, -1, k));
		else if (!strcmp(k, "expires"))
			lp->expires = check_uint(L, -1, k, EXPIRES_MAX);
		else if (!strcmp(k, "retry_min"))
			lp->retry_min = check_uint(L, -1, k, RETRY_MAX);
		else if (!strcmp(k, "retry_max"))
			lp->retry_max = check_uint(L, -1, k, RETRY_MAX);
		else
			luaL_error(L, "register: unknown option '%s'", k);

		lua_pop(L, 1);
	}

	if (!lp->user && !lp->aor)
		luaL_argerror(L, 2, "user= or aor= is required");

	if (lp->retry_min && lp->retry_max && lp->retry_max < lp->retry_min)
		luaL_error(L, "register: retry_max (%u) is below retry_min "
			   "(%u)", lp->retry_max, lp->retry_min);
}


/* ------------------------------------------------------------------ *
 * Registrations
 * ------------------------------------------------------------------ */

static void lreg_destructor(void *arg)
{
	struct lreg *r = arg;

	list_unlink(&r->le);
	mem_deref(r->rc);     /* sends nothing: see regclient_unregister */
	lparams_reset(&r->p);
	lparams_reset(&r->next);
}


static const char *key_user(const char *user)
{
	return user ? user : "";
}


static void regs_destructor(void *arg)
{
	struct regs *regs = arg;
	struct le *le;

	/* nothing is sent: the bindings expire at their registrars */
	while ((le = list_head(&regs->l)))
		mem_deref(le->data);
}


/* The runtime's list, made on first use when create is set */
static struct list *regs_list(struct luart *rt, bool create)
{
	struct regs *regs = rt_slot(rt, RT_SLOT_REGISTER);

	if (!regs && create && rt) {
		regs = mem_zalloc(sizeof(*regs), regs_destructor);
		if (!regs)
			return NULL;
		rt_set_slot(rt, RT_SLOT_REGISTER, regs);
	}

	return regs ? &regs->l : NULL;
}


static struct lreg *lreg_find(struct luart *rt, const char *registrar,
			      const char *user)
{
	struct le *le;

	for (le = list_head(regs_list(rt, false)); le; le = le->next) {
		struct lreg *r = le->data;

		if (!strcmp(r->p.registrar, registrar) &&
		    !strcmp(key_user(r->p.user), key_user(user)))
			return r;
	}

	return NULL;
}


static int push_result(lua_State *co, void *arg)
{
	const struct regres *res = arg;

	lua_pushboolean(co, res->ok);
	lua_pushnumber(co, res->expires);
	lua_pushstring(co, res->reason ? res->reason : "");
	lua_pushstring(co, res->registrar);
	if (res->user)
		lua_pushstring(co, res->user);
	else
		lua_pushnil(co);
	lua_pushinteger(co, res->scode);

	return 6;
}


static void result_handler(bool ok, uint32_t expires, uint16_t scode,
			   const char *reason, void *arg);


/* Starts a regclient for r->p (replacing r->rc) */
static int lreg_start(struct lreg *r)
{
	struct regclient_params p;
	struct regclient *rc = NULL;
	int err;

	lparams_view(&r->p, &p);
	err = regclient_register(&rc, rt_runtime_stack(r->rt), &p, result_handler,
				 r);
	if (err)
		return err;

	mem_deref(r->rc);
	r->rc = rc;

	return 0;
}


static void result_handler(bool ok, uint32_t expires, uint16_t scode,
			   const char *reason, void *arg)
{
	struct lreg *r = arg;
	struct luart *rt = r->rt;
	struct regres res;

	res.ok        = ok;
	res.expires   = expires;
	res.scode     = scode;
	res.reason    = reason;
	res.registrar = r->p.registrar;
	res.user      = r->p.user;

	/* the hook may call sip.register/unregister: r must stay valid
	 * until it returns, and be in the list only if it lives on */
	mem_ref(r);

	if (r->unregistering) {
		if (ok)
			res.reason = "unregistered";

		r->unregistering = false;
		if (r->again) {
			r->again = false;
			lparams_move(&r->p, &r->next);
			res.registrar = r->p.registrar;
			res.user = r->p.user;
			/* the old regclient (the one calling us) goes */
			if (lreg_start(r)) {
				slog(LOG_ERROR, "lua", "register_failed", NULL,
				     "registrar=%H", log_q, r->p.registrar);
				list_unlink(&r->le);
				mem_deref(r);   /* the list's reference */
			}
		}
		else {
			list_unlink(&r->le);
			mem_deref(r);           /* the list's reference */
		}
	}

	(void)rt_fire(rt, RT_HOOK_REGRESULT, push_result, &res);

	mem_deref(r);
}


/* sip.register(registrar_uri, options) -> true */
static int l_register(lua_State *L)
{
	struct luart *rt = rt_runtime(L);
	struct list *regs;
	struct lparams *lp;
	struct regclient_params p;
	struct lreg *r;
	const char *action;
	int err;

	/* the parameters live in a userdata until they are owned, so that
	 * an error raised while reading them frees them (__gc) */
	lua_settop(L, 2);
	lp = lua_newuserdata(L, sizeof(*lp));
	memset(lp, 0, sizeof(*lp));
	lua_newtable(L);
	lua_pushcfunction(L, lparams_gc);
	lua_setfield(L, -2, "__gc");
	lua_setmetatable(L, -2);

	params_read(L, lp);

	/* sipstack --check: no runtime, nothing to register */
	if (!rt) {
		lua_pushboolean(L, 1);
		return 1;
	}

	r = lreg_find(rt, lp->registrar, lp->user);
	if (r && r->unregistering) {
		lparams_move(&r->next, lp);
		r->again = true;
		action = "after_unregister";
		goto out;
	}

	if (r) {
		lparams_view(lp, &p);
		err = regclient_update(r->rc, &p);
		if (!err) {
			lparams_move(&r->p, lp);
			action = "update";
			goto out;
		}
		if (err != EINVAL)
			return luaL_error(L, "register: %s", strerror(err));

		/* another AOR: another registration, under the same key */
		lparams_move(&r->p, lp);
		err = lreg_start(r);
		if (err)
			return luaL_error(L, "register: %s", strerror(err));
		action = "replace";
		goto out;
	}

	regs = regs_list(rt, true);
	r = regs ? mem_zalloc(sizeof(*r), lreg_destructor) : NULL;
	if (!r)
		return luaL_error(L, "out of memory");

	r->rt = rt;
	lparams_move(&r->p, lp);
	err = lreg_start(r);
	if (err) {
		mem_deref(r);
		return luaL_error(L, "register: %s", err == EINVAL ?
				  "invalid registrar, aor or contact" :
				  strerror(err));
	}
	list_append(regs, &r->le, r);
	action = "new";

 out:
	slog(LOG_INFO, "lua", "register", NULL, "registrar=%H user=%H "
	     "action=%s", log_q, r->p.registrar, log_q,
	     r->again ? r->next.user : r->p.user, action);

	lua_pushboolean(L, 1);

	return 1;
}


/* sip.unregister(registrar_uri [, user]) -> true | nil, "not registered" */
static int l_unregister(lua_State *L)
{
	struct luart *rt = rt_runtime(L);
	const char *registrar = luaL_checkstring(L, 1);
	const char *user = luaL_optstring(L, 2, NULL);
	struct le *le;
	int found = 0;

	if (rt) {
		for (le = list_head(regs_list(rt, false)); le; le = le->next) {
			struct lreg *r = le->data;

			if (strcmp(r->p.registrar, registrar) ||
			    (user && strcmp(key_user(r->p.user), user)))
				continue;

			++found;
			if (r->again) {
				r->again = false;
				lparams_reset(&r->next);
			}
			if (!r->unregistering) {
				r->unregistering = true;
				(void)regclient_unregister(r->rc);
			}
		}
	}

	if (!found) {
		lua_pushnil(L);
		lua_pushstring(L, "not registered");
		return 2;
	}

	slog(LOG_INFO, "lua", "unregister", NULL, "registrar=%H user=%H "
	     "count=%d", log_q, registrar, log_q, user, found);

	lua_pushboolean(L, 1);

	return 1;
}


/* The runtime goes: drop every registration (nothing is sent; the
 * bindings expire at their registrars) */
void api_register_close(struct luart *rt)
{
	rt_set_slot(rt, RT_SLOT_REGISTER, NULL);
}


/* sip.register and sip.unregister in the sip table at the top of L */
void api_register_inject(lua_State *L)
{
	static const luaL_Reg register_funcs[] = {
		{"register",   l_register},
		{"unregister", l_unregister},
		{NULL, NULL}
	};

	luaL_setfuncs(L, register_funcs, 0);
}
