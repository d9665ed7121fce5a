/**
 * bindings/budget.c  Limits of a script's runs: time budget, memory cap
 *
 * Owns the watchdog (one thread for the process, started by the first
 * runtime and stopped with the last), the signal it sends, the count
 * hook that signal arms, and the capped allocator wrapper. Exposes
 * budget_*() (budget.h) to runtime.c. Uses LuaJIT's public API only.
 *
 * Why a watchdog and a signal, not a count hook. A count hook set for
 * every run costs on every Lua instruction (LuaJIT then dispatches each
 * one through its hook path) and LuaJIT never calls hooks inside
 * compiled traces anyway. So nothing is set on the normal path:
 * budget_enter() stores the run's id, start and budget (atomics; the
 * runtime reads the clock once more), and the watchdog thread, waking
 * every quarter budget, signals the loop thread when a run outlives
 * its budget. The handler arms a count hook with lua_sethook(), which
 * LuaJIT allows asynchronously, from a signal handler (its own
 * interpreter does it for Ctrl-C); the hook raises at the next Lua
 * instruction of the loop thread. It stays armed until the run ends,
 * so a pcall that catches the error only makes it raise again.
 *
 * Measured (docs/lua-api.md, "Limits"): with the JIT compiler on, a
 * loop that LuaJIT compiled and that never leaves its trace (`while
 * true do end`, `for i = 1, 1e12 do x = x + i end`, a loop calling a
 * Lua function) is never stopped; a loop that allocates leaves the
 * trace for the GC and is. Hence scripts run with the JIT compiler off
 * unless they ask for it (sip.configure{jit = true}).
 *
 * Memory: Debian's LuaJIT 2.1 (GC64) accepts lua_newstate() with our
 * allocator, but we keep LuaJIT's own (faster than malloc for its small
 * objects) and only wrap it (lua_getallocf/lua_setallocf) with a byte
 * count equal to the GC's. Only allocations inside an entered run are
 * refused: one refused outside (our C code building a request's table)
 * would raise where no pcall is, and LuaJIT would panic.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <re.h>
#include "sipstack.h"
#include "runtime.h"
#include "budget.h"


enum {
	TICK_MIN_MS = 2,     /* the watchdog's period: a quarter of the  */
	TICK_MAX_MS = 100,   /* budget of the run it last saw, in these  */
	STUCK_FACTOR = 4,    /* a run still going at 4 budgets after the
			      * signal is logged once (compiled loop) */
};

static struct {
	/* the watchdog thread */
	pthread_t thread;
	pthread_mutex_t mtx;
	pthread_cond_t cond;
	bool started;
	bool stop;
	unsigned users;
	int signo;

	/* the run, published by the loop thread to the watchdog */
	pthread_t loop;
	_Atomic uint32_t run;        /* id of the outer run, 0: none  */
	_Atomic uint64_t start_ns;
	_Atomic uint32_t ms;

	/* the loop thread's own (and its signal handler's) */
	uint32_t next_id;
	unsigned depth;
	lua_State *L;
	volatile sig_atomic_t fired;
	uint32_t fired_ms;
	struct budget_where where;   /* of the hook's first stop */
} wd = {
	.mtx = PTHREAD_MUTEX_INITIALIZER,
};


static uint64_t now_ns(void)
{
	struct timespec ts;

	(void)clock_gettime(CLOCK_MONOTONIC, &ts);

	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}


/* ------------------------------------------------------------------ *
 * The loop thread: hook and signal handler
 * ------------------------------------------------------------------ */

static void budget_hook(lua_State *L, lua_Debug *ar)
{
	char src[256];
	int line;

	(void)ar;

	if (!wd.fired) {      /* armed for a run that has ended */
		lua_sethook(L, NULL, 0, 0);
		return;
	}

	line = rt_src_line(L, src, sizeof(src));
	if (!wd.where.line && line) {
		str_ncpy(wd.where.src, src, sizeof(wd.where.src));
		wd.where.line = line;
	}
	lua_pushfstring(L, "%s:%d: hook exceeded its budget (%d ms)",
			line ? src : "?", line, (int)wd.fired_ms);
	lua_error(L);
}


static void on_signal(int sig, siginfo_t *si, void *uctx)
{
	int errsv = errno;

	(void)sig;
	(void)uctx;

	/* ours, for the run going on now (it may have ended since) */
	if (si->si_code == SI_QUEUE && si->si_pid == getpid() &&
	    wd.depth && wd.L && !wd.fired &&
	    (uint32_t)si->si_value.sival_int ==
	    atomic_load_explicit(&wd.run, memory_order_relaxed)) {
		wd.fired = 1;
		wd.fired_ms = atomic_load_explicit(&wd.ms,
						   memory_order_relaxed);
		lua_sethook(wd.L, budget_hook, LUA_MASKCOUNT, 1);
	}

	errno = errsv;
}


/* ------------------------------------------------------------------ *
 * The watchdog thread
 * ------------------------------------------------------------------ */

static void *watchdog(void *arg)
{
	uint32_t signalled = 0, warned = 0;

	(void)arg;

	pthread_mutex_lock(&wd.mtx);
	while (!wd.stop) {
		uint32_t ms, r, tick;
		uint64_t start, el;
		struct timespec ts;

		ms = atomic_load_explicit(&wd.ms, memory_order_relaxed);
		tick = ms ? ms / 4 : TICK_MAX_MS;
		tick = tick < TICK_MIN_MS ? TICK_MIN_MS :
			tick > TICK_MAX_MS ? TICK_MAX_MS : tick;
		(void)clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_nsec += (long)tick * 1000000L;
		ts.tv_sec  += ts.tv_nsec / 1000000000L;
		ts.tv_nsec %= 1000000000L;
		(void)pthread_cond_timedwait(&wd.cond, &wd.mtx, &ts);
		if (wd.stop)
			break;

		/* a consistent view: the same run before and after */
		r = atomic_load_explicit(&wd.run, memory_order_acquire);
		if (!r)
			continue;
		start = atomic_load_explicit(&wd.start_ns,
					     memory_order_relaxed);
		ms = atomic_load_explicit(&wd.ms, memory_order_relaxed);
		if (!ms || atomic_load_explicit(&wd.run,
					       memory_order_acquire) != r)
			continue;

		el = now_ns() - start;
		if (el < (uint64_t)ms * 1000000ull)
			continue;

		if (r != signalled) {
			union sigval v;

			signalled = r;
			memset(&v, 0, sizeof(v));   /* sival_ptr's other half */
			v.sival_int = (int)r;
			(void)pthread_sigqueue(wd.loop, wd.signo, v);
		}
		else if (r != warned &&
			 el >= (uint64_t)ms * STUCK_FACTOR * 1000000ull) {
			warned = r;
			slog(LOG_WARN, "lua", "budget_stuck", NULL,
			     "budget_ms=%u running_ms=%llu hint=%H", ms,
			     (unsigned long long)(el / 1000000ull), log_q,
			     "no Lua instruction ran since the hook was "
			     "stopped: a loop compiled by the JIT "
			     "(jit = true) or a long C function");
		}
	}
	pthread_mutex_unlock(&wd.mtx);

	return NULL;
}


/* Started by the first runtime (on the loop thread), stopped with the
 * last one */
int budget_init(void)
{
	pthread_condattr_t ca;
	struct sigaction sa;
	int err;

	if (wd.users++)
		return 0;

	wd.loop = pthread_self();
	wd.signo = SIGRTMIN + 2;
	wd.stop = false;

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_signal;
	sa.sa_flags = SA_SIGINFO | SA_RESTART;
	sigemptyset(&sa.sa_mask);
	if (sigaction(wd.signo, &sa, NULL)) {
		err = errno;
		goto out;
	}

	err = pthread_condattr_init(&ca);
	if (err)
		goto out;
	err = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	if (!err)
		err = pthread_cond_init(&wd.cond, &ca);
	(void)pthread_condattr_destroy(&ca);
	if (err)
		goto out;

	err = pthread_create(&wd.thread, NULL, watchdog, NULL);
	if (err) {
		(void)pthread_cond_destroy(&wd.cond);
		goto out;
	}
	wd.started = true;

 out:
	if (err) {
		slog(LOG_WARN, "lua", "budget_off", NULL, "err=%m", err);
		--wd.users;
	}

	return err;
}


void budget_close(void)
{
	if (!wd.users || --wd.users)
		return;

	if (wd.started) {
		pthread_mutex_lock(&wd.mtx);
		wd.stop = true;
		pthread_cond_signal(&wd.cond);
		pthread_mutex_unlock(&wd.mtx);
		(void)pthread_join(wd.thread, NULL);
		(void)pthread_cond_destroy(&wd.cond);
		wd.started = false;
	}
}


/* ------------------------------------------------------------------ *
 * Runs
 * ------------------------------------------------------------------ */

void budget_enter(lua_State *L, uint32_t ms, struct budget_mem *bm)
{
	if (bm)
		++bm->enforce;

	if (wd.depth++ || !wd.started)
		return;

	wd.L = L;
	wd.fired = 0;
	wd.where.line = 0;
	if (!++wd.next_id)
		++wd.next_id;
	atomic_store_explicit(&wd.start_ns, ms ? now_ns() : 0,
			      memory_order_relaxed);
	atomic_store_explicit(&wd.ms, ms, memory_order_relaxed);
	atomic_store_explicit(&wd.run, wd.next_id, memory_order_release);
}


bool budget_leave(lua_State *L, struct budget_mem *bm,
		  struct budget_where *where)
{
	bool fired;

	if (bm && bm->enforce)
		--bm->enforce;

	if (!wd.depth || --wd.depth || !wd.started)
		return false;

	atomic_store_explicit(&wd.run, 0, memory_order_release);
	fired = wd.fired;
	if (fired) {
		lua_sethook(L, NULL, 0, 0);
		wd.fired = 0;
		if (where)
			*where = wd.where;
	}
	wd.L = NULL;

	return fired;
}


/* ------------------------------------------------------------------ *
 * Memory
 * ------------------------------------------------------------------ */

static void *capped_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
	struct budget_mem *bm = ud;
	size_t o = ptr ? osize : 0;
	void *p;

	if (nsize > o && bm->enforce && bm->max &&
	    bm->used - o + nsize > bm->max) {
		/* where the run is (reads the frames, allocates nothing) */
		if (!bm->refused && wd.L)
			bm->where.line = rt_src_line(wd.L, bm->where.src,
						     sizeof(bm->where.src));
		bm->refused = true;
		return NULL;
	}

	p = bm->f(bm->ud, ptr, osize, nsize);
	if (p || !nsize)
		bm->used = bm->used - o + nsize;

	return p;
}


void budget_mem_attach(struct budget_mem *bm, lua_State *L)
{
	bm->f = lua_getallocf(L, &bm->ud);
	bm->used = (size_t)lua_gc(L, LUA_GCCOUNT, 0) * 1024 +
		(size_t)lua_gc(L, LUA_GCCOUNTB, 0);
	lua_setallocf(L, capped_alloc, bm);
}
