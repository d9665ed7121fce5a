/**
 * bindings/budget.h  Limits of a script's runs: time budget, memory cap
 *
 * What runtime.c uses to stop a hook that loops or allocates without
 * end (docs/lua-api.md, "Limits"). Private to bindings/; implemented in
 * bindings/budget.c.
 *
 *   time    budget_enter() before a run of Lua on the loop thread (a
 *           task's start or resume, a script's load), budget_leave()
 *           after it. A watchdog thread sees a run that outlives its
 *           budget and signals the loop thread, whose handler arms a
 *           count hook; the hook raises "hook exceeded its budget" at
 *           the next Lua instruction (and again after any pcall that
 *           caught it) until the run ends. Nothing is armed on the
 *           normal path: a run costs two clock reads and a few stores.
 *   memory  budget_mem_attach() wraps the state's own allocator with a
 *           counter; while a run is entered, an allocation that would
 *           take the state above its cap is refused, which LuaJIT
 *           raises as a memory error in that run.
 */
#ifndef SIPSTACK_BUDGET_H
#define SIPSTACK_BUDGET_H

#include <lua.h>

/* Where a run was when a limit stopped it */
struct budget_where {
	char src[256];      /* the script file, "" if unknown   */
	int line;
};

/* A state's allocator with a cap (one per lua_State, inside the owner) */
struct budget_mem {
	lua_Alloc f;        /* the state's own allocator        */
	void *ud;
	size_t used;        /* bytes, as LuaJIT's GC counts them */
	size_t max;         /* cap, 0: none                     */
	unsigned enforce;   /* runs of the state entered        */
	bool refused;       /* an allocation was refused        */
	struct budget_where where;   /* of the first refusal    */
};

int  budget_init(void);
void budget_close(void);

void budget_mem_attach(struct budget_mem *bm, lua_State *L);

/* A run of Lua code on L (a coroutine or the main thread) on this
 * thread; ms 0: no time budget. Runs may nest (the outer one's budget
 * holds). */
void budget_enter(lua_State *L, uint32_t ms, struct budget_mem *bm);
/* Ends the run; true if its time budget stopped it (and where, if
 * where is set) */
bool budget_leave(lua_State *L, struct budget_mem *bm,
		  struct budget_where *where);

#endif
