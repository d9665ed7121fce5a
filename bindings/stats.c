/**
 * bindings/stats.c  The server's figures, one list for scripts and ctl
 *
 * Builds the figures of sip.stats() and of `sipstack ctl stats` as one
 * odict, so that the two can never disagree: api_sip.c pushes it to Lua
 * as a table (stats_push), the program sends it as JSON (luart_stats in
 * luart.h, for server/ctl_cmds.c). The names are listed in
 * docs/lua-api.md (sip.stats) and docs/ctl.md (stats). Uses the core's
 * counters (stack_stats), the call manager, the subscriptions, the
 * registrar service the script configured (its location store) and the
 * runtime's generation.
 */
#include <malloc.h>
#include <string.h>
#include <re.h>
#include "sipstack.h"
#include "regsvc.h"
#include "runtime.h"
#include "luart.h"


static int add_num(struct odict *o, const char *key, uint64_t v)
{
	return odict_entry_add(o, key, ODICT_INT, (int64_t)v);
}


/* rt NULL (sipstack --check): zeros; L: the state whose memory is told
 * as lua_bytes (NULL: 0) */
int stats_odict(struct odict **odp, struct luart *rt, lua_State *L)
{
	struct stack *st = rt ? luart_stack(rt) : NULL;
	struct regsvc *rs = rt ? rt_slot(rt, RT_SLOT_REGISTRAR) : NULL;
	struct stack_stats s;
	struct mallinfo2 mi;
	struct odict *o;
	int err;

	err = odict_alloc(&o, 32);
	if (err)
		return err;

	memset(&s, 0, sizeof(s));
	if (st)
		stack_stats(st, &s);

	err |= add_num(o, "requests", s.requests);
	err |= add_num(o, "responses", s.responses);
	err |= add_num(o, "bad_requests", s.bad_requests);
	err |= add_num(o, "replies", s.replies);
	err |= add_num(o, "hook_errors", s.hook_errors);
	err |= add_num(o, "dropped", s.dropped);
	err |= add_num(o, "limited_sources", s.limited_sources);
	err |= add_num(o, "limited_dropped", s.limited_dropped);
	err |= add_num(o, "limited_answered", s.limited_answered);
	err |= add_num(o, "ua_dropped", s.ua_dropped);
	err |= add_num(o, "dialogs",
		       st ? dialog_table_count(stack_dialogs(st)) : 0);
	err |= add_num(o, "calls", st ? callmgr_count(st) : 0);
	err |= add_num(o, "calls_total", st ? callmgr_total(st) : 0);
	err |= odict_entry_add(o, "draining", ODICT_BOOL,
			       (int)(st && callmgr_draining(st)));
	err |= add_num(o, "subscriptions", st ? events_count(st) : 0);

	/* the location store, when the script configured a registrar */
	if (rs && regsvc_location(rs)) {
		struct location_stats ls;

		location_stats(regsvc_location(rs), &ls);
		err |= add_num(o, "aors", ls.aors);
		err |= add_num(o, "bindings", ls.bindings);
	}

	/* heap in use (glibc): returns to its baseline when every call is
	 * freed, unlike RSS */
	mi = mallinfo2();
	err |= add_num(o, "heap_bytes", mi.uordblks);
	err |= add_num(o, "lua_bytes", L ? (uint64_t)lua_gc(L, LUA_GCCOUNT, 0)
		       * 1024 + (uint64_t)lua_gc(L, LUA_GCCOUNTB, 0) : 0);
	err |= add_num(o, "tasks", rt ? luart_tasks(rt) : 0);
	err |= add_num(o, "generation", rt ? luart_generation(rt) : 0);
	err |= odict_entry_add(o, "log_level", ODICT_STRING,
			       log_level_name(log_level_get()));

	if (err) {
		mem_deref(o);
		return ENOMEM;
	}

	*odp = o;

	return 0;
}


/* An odict as a Lua table: objects keyed by name, arrays 1..n */
void stats_push(lua_State *L, const struct odict *o, bool array)
{
	struct le *le;
	int i = 1;

	lua_createtable(L, array ? (int)list_count(&o->lst) : 0,
			array ? 0 : (int)list_count(&o->lst));

	LIST_FOREACH(&o->lst, le) {
		const struct odict_entry *e = le->data;

		switch (e->type) {
		case ODICT_OBJECT:
		case ODICT_ARRAY:
			stats_push(L, e->u.odict, e->type == ODICT_ARRAY);
			break;
		case ODICT_STRING:
			lua_pushstring(L, e->u.str);
			break;
		case ODICT_INT:
			lua_pushnumber(L, (lua_Number)e->u.integer);
			break;
		case ODICT_DOUBLE:
			lua_pushnumber(L, e->u.dbl);
			break;
		case ODICT_BOOL:
			lua_pushboolean(L, e->u.boolean);
			break;
		default:
			continue;   /* null: absent */
		}

		if (array)
			lua_rawseti(L, -2, i++);
		else
			lua_setfield(L, -2, e->key);
	}
}


int luart_stats(struct odict **odp, struct luart *lr)
{
	struct script *sc;

	if (!odp || !lr)
		return EINVAL;

	sc = rt_current(lr);

	return stats_odict(odp, lr, sc ? rt_script_L(sc) : NULL);
}
