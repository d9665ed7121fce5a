/**
 * bindings/api_metrics.c  sip.metrics: a script's counters and gauges
 *
 * Exposes sip.metrics.counter(name, help) and sip.metrics.gauge(name,
 * help), which return a handle (a userdata holding a reference on a
 * struct metric of the stack's registry, server/core/metrics.c) with
 * :inc/:value (counter) and :set/:inc/:dec/:value (gauge). The metric
 * lives in the registry, not in the script generation: a reload that
 * defines the same name again gets the same metric with its value.
 * Uses the registry through sipcore.h (metrics_define, metric_*) and
 * the runtime only to find the stack (runtime.h); nothing yields.
 *
 * Names: the script's name must match [a-zA-Z_:][a-zA-Z0-9_:]* (at most
 * NAME_MAX bytes); it is exposed as sipstack_script_<name>, with _total
 * added to a counter's unless it ends so already. No labels: bounded by
 * construction, and at most METRICS_DEFINED_MAX metrics per process.
 */
#include <string.h>
#include <math.h>
#include <re.h>
#include "sipstack.h"
#include "runtime.h"


#define COUNTER_MT "sipstack.metrics.counter"
#define GAUGE_MT   "sipstack.metrics.gauge"

enum {
	NAME_MAX_SCRIPT = 64,      /* bytes of the script's part of a name */
};

static const char PREFIX[] = "sipstack_script_";

struct lmetric {
	struct metric *mt;         /* referenced                         */
};


static bool name_ok(const char *s, size_t n)
{
	size_t i;

	if (!n || n > NAME_MAX_SCRIPT)
		return false;

	for (i = 0; i < n; i++) {
		char c = s[i];

		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    c == '_' || c == ':' || (i && c >= '0' && c <= '9'))
			continue;
		return false;
	}

	return true;
}


/* sip.metrics.counter / gauge (name, help) */
static int define(lua_State *L, enum metrics_type type)
{
	const char *fn = type == METRICS_COUNTER ? "counter" : "gauge";
	char full[sizeof(PREFIX) + NAME_MAX_SCRIPT + 8];
	struct lmetric *lm;
	struct metric *mt;
	size_t n;
	const char *name = luaL_checklstring(L, 1, &n);
	const char *help = luaL_checkstring(L, 2);
	int err;

	if (!name_ok(name, n))
		return luaL_argerror(L, 1, "a name of 1 to 64 characters "
				     "[a-zA-Z_:][a-zA-Z0-9_:]*");

	(void)re_snprintf(full, sizeof(full), "%s%s%s", PREFIX, name,
			  type == METRICS_COUNTER && (n < 6 ||
			  strcmp(name + n - 6, "_total")) ? "_total" : "");

	/* the handle first: allocating it may raise, and nothing must be
	 * held then (its __gc lets go of what it holds) */
	lm = lua_newuserdata(L, sizeof(*lm));
	lm->mt = NULL;
	luaL_getmetatable(L, type == METRICS_COUNTER ? COUNTER_MT : GAUGE_MT);
	lua_setmetatable(L, -2);

	err = metrics_define(&mt, stack_metrics(rt_stack(L)), full, help,
			     type);
	switch (err) {

	case 0:
		break;
	case EINVAL:
		return luaL_argerror(L, 2, "a help text of 1 to 256 bytes "
				     "without control characters");
	case EPROTOTYPE:
		return luaL_error(L, "sip.metrics.%s: %s is already defined "
				  "as a %s", fn, full,
				  type == METRICS_COUNTER ? "gauge" :
				  "counter");
	case EOVERFLOW:
		return luaL_error(L, "sip.metrics.%s: %s: too many script "
				  "metrics (at most %d)", fn, full,
				  METRICS_DEFINED_MAX);
	default:
		return luaL_error(L, "sip.metrics.%s: %s", fn, rt_errstr(err));
	}

	lm->mt = mt;

	return 1;
}


static int l_counter(lua_State *L)
{
	return define(L, METRICS_COUNTER);
}


static int l_gauge(lua_State *L)
{
	return define(L, METRICS_GAUGE);
}


static struct metric *check_counter(lua_State *L)
{
	return ((struct lmetric *)luaL_checkudata(L, 1, COUNTER_MT))->mt;
}


static struct metric *check_gauge(lua_State *L)
{
	return ((struct lmetric *)luaL_checkudata(L, 1, GAUGE_MT))->mt;
}


/* the optional amount at index 2: a finite number, 1 if absent */
static lua_Number amount(lua_State *L)
{
	lua_Number v = luaL_optnumber(L, 2, 1);

	if (!isfinite(v))
		luaL_argerror(L, 2, "a finite number");

	return v;
}


/* counter:inc([n]): n >= 0 */
static int l_counter_inc(lua_State *L)
{
	struct metric *mt = check_counter(L);
	lua_Number v = amount(L);

	if (v < 0)
		return luaL_argerror(L, 2, "a counter only goes up "
				     "(n >= 0; use a gauge)");

	(void)metric_add(mt, v);

	return 0;
}


static int l_gauge_inc(lua_State *L)
{
	struct metric *mt = check_gauge(L);

	(void)metric_add(mt, amount(L));

	return 0;
}


static int l_gauge_dec(lua_State *L)
{
	struct metric *mt = check_gauge(L);

	(void)metric_add(mt, -amount(L));

	return 0;
}


static int l_gauge_set(lua_State *L)
{
	struct metric *mt = check_gauge(L);
	lua_Number v = luaL_checknumber(L, 2);

	if (!isfinite(v))
		return luaL_argerror(L, 2, "a finite number");

	(void)metric_set(mt, v);

	return 0;
}


static int push_value(lua_State *L, const struct metric *mt)
{
	lua_pushnumber(L, metric_value(mt));
	return 1;
}


static int l_counter_value(lua_State *L)
{
	return push_value(L, check_counter(L));
}


static int l_gauge_value(lua_State *L)
{
	return push_value(L, check_gauge(L));
}


static int l_counter_name(lua_State *L)
{
	lua_pushstring(L, metric_name(check_counter(L)));
	return 1;
}


static int l_gauge_name(lua_State *L)
{
	lua_pushstring(L, metric_name(check_gauge(L)));
	return 1;
}


static int l_gc(lua_State *L)
{
	struct lmetric *lm = lua_touserdata(L, 1);

	if (lm)
		lm->mt = mem_deref(lm->mt);

	return 0;
}


static void metatable(lua_State *L, const char *name, const luaL_Reg *fns)
{
	luaL_newmetatable(L, name);
	lua_newtable(L);
	luaL_setfuncs(L, fns, 0);
	lua_setfield(L, -2, "__index");
	lua_pushcfunction(L, l_gc);
	lua_setfield(L, -2, "__gc");
	lua_pushliteral(L, "sipstack.metrics");
	lua_setfield(L, -2, "__metatable");
	lua_pop(L, 1);
}


/* sip.metrics and the handles' metatables, in the sip table at the
 * top of L */
void api_metrics_inject(lua_State *L)
{
	static const luaL_Reg metrics_funcs[] = {
		{"counter", l_counter},
		{"gauge",   l_gauge},
		{NULL, NULL}
	};
	static const luaL_Reg counter_methods[] = {
		{"inc",   l_counter_inc},
		{"value", l_counter_value},
		{"name",  l_counter_name},
		{NULL, NULL}
	};
	static const luaL_Reg gauge_methods[] = {
		{"set",   l_gauge_set},
		{"inc",   l_gauge_inc},
		{"dec",   l_gauge_dec},
		{"value", l_gauge_value},
		{"name",  l_gauge_name},
		{NULL, NULL}
	};

	metatable(L, COUNTER_MT, counter_methods);
	metatable(L, GAUGE_MT, gauge_methods);

	luaL_newlib(L, metrics_funcs);
	lua_setfield(L, -2, "metrics");
}
