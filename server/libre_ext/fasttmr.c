/**
 * server/libre_ext/fasttmr.c  O(log n) replacement for libre's timer module
 *
 * WHY THIS FILE EXISTS
 *
 *   libre 1.1.0 (src/tmr/tmr.c) keeps every timer of a loop in one sorted
 *   doubly linked list. tmr_start() finds the insert position with a linear
 *   walk from the tail, so starting a timer costs O(n) in the number of
 *   pending timers. A SIP server with tens of thousands of transactions in
 *   flight holds tens of thousands of 32 s timers (Timer F/B/H/J, 64*T1),
 *   and every short timer (Timer E/A retransmissions at 500 ms, 0 ms
 *   "async" timers, ...) then walks past all of them: tens to hundreds of
 *   microseconds per start, on the loop thread. This file provides the
 *   same API backed by a binary min-heap per loop: start/cancel are
 *   O(log n), the next expiry is O(1).
 *
 * HOW IT IS HOOKED IN (SYMBOL INTERPOSITION)
 *
 *   This file defines the nine functions of <re_tmr.h> with libre's exact
 *   prototypes: tmr_init, tmr_start, tmr_cancel, tmr_poll,
 *   tmr_next_timeout, tmr_get_expire, tmr_jiffies, tmr_status, tmr_debug.
 *
 *   Debian's libre.so is linked without -Bsymbolic, so its own calls to
 *   these functions (re_main() -> tmr_poll(&re->tmrl) and
 *   tmr_next_timeout(&re->tmrl), sip/ctrans.c -> tmr_start(), object
 *   destructors -> tmr_cancel(), ...) go through the PLT/GOT and are
 *   resolved by the dynamic linker to the FIRST definition in symbol
 *   lookup order: the executable, then the shared objects in link order.
 *   When this file is linked into the executable, the executable's
 *   definitions win for the whole process, for libre's internal calls as
 *   much as for ours, and libre's own timer list is never used again.
 *   (Check with: objdump -R libre.so | grep tmr_  -> JUMP_SLOT entries.)
 *
 *   The executable must export these symbols in its dynamic symbol table.
 *   They are listed, with every other symbol server/libre_ext/ replaces,
 *   in server/libre_ext/overrides.list, which the link passes to the
 *   linker as its dynamic list (-Wl,--dynamic-list): exactly those are
 *   exported, nothing else. `nm -D exe | grep tmr_` must list them as T;
 *   the libre_ext test suite checks the list against the binary and that
 *   libre binds to them. (With a static libre.a the same works without
 *   interposition: every symbol of the archive member tmr.o is already
 *   defined here, so the linker never pulls tmr.o in.)
 *
 *   All-or-nothing: every function that touches a timer list must be
 *   replaced together, because a timer started by one implementation
 *   cannot be cancelled or polled by the other. libre's tmr.c contains
 *   exactly the nine functions above; nothing else in libre touches
 *   struct tmr internals or the loop's timer list.
 *
 * LIBRE INTERNALS RELIED UPON (libre 1.1.0, checked against its source)
 *
 *   - `struct list *tmrl_get(void)` (src/main/main.c) is exported and
 *     returns &re->tmrl for the calling thread's loop: the thread's own
 *     struct re after re_thread_init(), else the process-wide global_re
 *     (shared by every thread that did not call re_thread_init()).
 *   - re_main() passes that same pointer to tmr_poll()/tmr_next_timeout()
 *     and does nothing else with the list, so the list stays empty and we
 *     use its ADDRESS only, as the key identifying a loop.
 *   - tmr_next_timeout() returns 0 for "no timer" (poll() waits forever)
 *     and at least 1 when a timer is already due.
 *   - libre fires timers in (expiry, start order) order: equal expiries are
 *     FIFO, and tmr_poll() samples the clock once, so a handler that starts
 *     a delay-0 timer may see it fire in the same tmr_poll() call (same
 *     millisecond) or in the next loop iteration.
 *   - Before calling a handler libre sets tmr->th = NULL and unlinks the
 *     timer, so tmr_isrunning() (inline in re_tmr.h: th != NULL) is false
 *     inside its own handler and the handler may restart or free it.
 *   - tmr_start(tmr, x, NULL, arg) stops the timer and stores arg;
 *     tmr_cancel(tmr) == tmr_start(tmr, 0, NULL, NULL).
 *
 * DATA STRUCTURE AND FIELD REUSE
 *
 *   One `struct fheap` per loop, found by the loop's tmrl address in a
 *   small registry (mutex protected, touched only on a cache miss); each
 *   thread caches its (tmrl, heap) pair in _Thread_local variables. A heap
 *   is an array of entries {jfs, seq, tmr}: keys are copied into the array
 *   so sifting never dereferences timers. Order: jfs, then seq, a per-heap
 *   counter incremented at every start (=> FIFO for equal expiries).
 *   The array grows by doubling with plain malloc/realloc (libre's mem_*
 *   would add a refcount header and destructor bookkeeping for nothing)
 *   and shrinks by half when less than a quarter full.
 *
 *   struct tmr is public and fixed; we reuse its list element, which the
 *   libre list code never sees:
 *     le.data  owner heap (struct fheap *) while pending, NULL otherwise
 *     le.next  while in the heap array: the entry index (uintptr_t cast)
 *              while in the overflow list (below): the start sequence
 *     le.prev  overflow list link (next timer), NULL when in the array
 *     le.list  always NULL, so a stray libre list_unlink() is a no-op
 *     th, arg  as in libre;  jfs  absolute expiry (tmr_jiffies() + delay)
 *
 * INVARIANTS
 *
 *   I1  tmr->th != NULL  <=>  the timer is pending in exactly one heap
 *       (array or overflow), and then tmr->le.data is that heap.
 *   I2  for a timer in an array: v[idx].tmr == tmr with idx == le.next.
 *   I3  min-heap: for every i > 0, key(v[(i-1)/2]) < key(v[i]).
 *   I4  a heap descriptor is never freed while the process runs (threads
 *       cache pointers to it); only its array is, when empty, at exit.
 *       So one small descriptor per distinct loop address ever seen is
 *       kept (threads doing re_thread_init()/close() in a churn may add a
 *       few); a new loop allocated at a dead loop's address reuses it.
 *   I5  a heap is only modified by threads running its loop (libre's rule:
 *       a loop's timers belong to its thread, or to threads holding
 *       re_thread_enter()); the registry has its own mutex.
 *
 * ALLOCATION FAILURE
 *
 *   If the array cannot grow, the timer goes to a per-heap unsorted
 *   singly linked "overflow" list threaded through the timers themselves
 *   (no allocation at all). tmr_poll()/tmr_next_timeout() consider its
 *   minimum too (O(k) scan), and tmr_poll() moves overflow timers back
 *   into the array once it can grow again. Firing order and FIFO are
 *   preserved. A failure is logged to stderr once per episode. If even a
 *   heap descriptor cannot be allocated (the first few come from a static
 *   pool), the timer is logged and left stopped (th == NULL) -- never a
 *   crash, and I1 holds.
 *
 * DIFFERENCES FROM LIBRE
 *
 *   - tmr_jiffies() uses CLOCK_MONOTONIC (libre 1.1.0: gettimeofday), so
 *     timers are immune to wall-clock steps. Jiffies are milliseconds since
 *     an arbitrary point (boot), not the Unix epoch: use time() for wall
 *     time. libre itself only uses jiffies as differences (and as a
 *     srand() seed).
 *   - tmr_status() lists timers in firing order, like libre, but no
 *     "long async blocking" warning is printed for slow handlers.
 *   - As with libre: call tmr_init() only on stopped timers, cancel
 *     timers before freeing them or calling re_thread_close().
 */

#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <re_types.h>
#include <re_list.h>
#include <re_fmt.h>
#include <re_tmr.h>

#include "fasttmr.h"


/* Exported by libre (src/main/main.c) but not declared in its headers */
extern struct list *tmrl_get(void);


enum {
	HEAP_MIN_CAP = 64,   /* first array allocation [entries]       */
	HEAP_POOL    = 8,    /* heap descriptors not needing malloc     */
};


/* One heap slot: the sort key is copied here for cache locality */
struct fh_ent {
	uint64_t jfs;        /* absolute expiry [ms]                    */
	uint64_t seq;        /* start order, FIFO among equal jfs       */
	struct tmr *tmr;
};


/* The timers of one libre loop */
struct fheap {
	const struct list *tmrl;  /* key: the loop's list (never touched) */
	struct fh_ent *v;         /* min-heap array (malloc)              */
	size_t n;                 /* entries in v                         */
	size_t cap;               /* capacity of v                        */
	uint64_t seq;             /* next start sequence number           */
	struct tmr *ovf;          /* overflow list (allocation failure)   */
	size_t novf;              /* timers in the overflow list          */
	bool warned;              /* allocation failure already logged    */
	bool pooled;              /* descriptor lives in heap_pool        */
	struct fheap *next;       /* registry chain                       */
};


_Static_assert(offsetof(struct tmr, le) == 0,
	       "struct tmr must start with its list element");


/* Registry of all heaps, one per loop; reg_lock protects the chain. */
static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static struct fheap   *registry;
static struct fheap    heap_pool[HEAP_POOL];
static size_t          heap_pool_used;

/* Per-thread cache of the thread's loop heap, and statistics */
static _Thread_local const struct list *tls_tmrl;
static _Thread_local struct fheap      *tls_heap;
static _Thread_local uint64_t           tls_starts;


/* ---- field reuse accessors (see the header comment) ------------------ */

static inline struct fheap *owner_get(const struct tmr *tmr)
{
	return tmr->le.data;
}


static inline size_t idx_get(const struct tmr *tmr)
{
	return (size_t)(uintptr_t)tmr->le.next;
}


static inline void idx_set(struct tmr *tmr, size_t idx)
{
	tmr->le.next = (struct le *)(uintptr_t)idx;
}


static inline struct tmr *ovf_next(const struct tmr *tmr)
{
	return (struct tmr *)(void *)tmr->le.prev;   /* le is at offset 0 */
}


static inline void ovf_set_next(struct tmr *tmr, struct tmr *nxt)
{
	tmr->le.prev = nxt ? &nxt->le : NULL;
}


/* The overflow list keeps the start sequence in le.next, i.e. only its
 * low sizeof(uintptr_t) bytes; widen it back relative to the heap's
 * counter (exact unless 2^32 starts happened meanwhile on 32-bit). */
static inline uint64_t ovf_seq(const struct fheap *h, const struct tmr *tmr)
{
	const uintptr_t lag = (uintptr_t)h->seq - (uintptr_t)tmr->le.next;

	return h->seq - (uint64_t)lag;
}


static inline void detached(struct tmr *tmr)
{
	tmr->le.prev = NULL;
	tmr->le.next = NULL;
	tmr->le.list = NULL;
	tmr->le.data = NULL;
}


/* ---- registry ------------------------------------------------------- */

/* Find (or create) the heap of the loop whose timer list is tmrl. */
static struct fheap *heap_get(const struct list *tmrl)
{
	struct fheap *h;

	if (tmrl == tls_tmrl && tls_heap)
		return tls_heap;

	pthread_mutex_lock(&reg_lock);

	for (h = registry; h; h = h->next) {
		if (h->tmrl == tmrl)
			break;
	}

	if (!h) {
		if (heap_pool_used < HEAP_POOL) {
			h = &heap_pool[heap_pool_used++];
			h->pooled = true;
		}
		else {
			h = calloc(1, sizeof(*h));
		}

		if (h) {
			h->tmrl = tmrl;
			h->next = registry;
			registry = h;
		}
	}

	pthread_mutex_unlock(&reg_lock);

	if (!h) {
		fprintf(stderr, "fasttmr: out of memory for the timer heap of"
			" loop %p\n", (const void *)tmrl);
		return NULL;
	}

	tls_tmrl = tmrl;
	tls_heap = h;

	return h;
}


static bool heap_registered(const struct fheap *hp)
{
	const struct fheap *h;

	for (h = registry; h; h = h->next) {
		if (h == hp)
			return true;
	}

	return false;
}


/* Free the arrays of empty heaps when the process exits, so that leak
 * checkers see nothing of ours. Descriptors stay valid (invariant I4):
 * a late tmr_start() from another destructor just allocates again. */
__attribute__((destructor))
static void fasttmr_atexit(void)
{
	struct fheap *h;

	pthread_mutex_lock(&reg_lock);

	for (h = registry; h; h = h->next) {
		if (h->n || h->novf)
			continue;

		free(h->v);
		h->v   = NULL;
		h->cap = 0;
	}

	pthread_mutex_unlock(&reg_lock);
}


/* ---- binary heap ----------------------------------------------------- */

static inline bool ent_less(const struct fh_ent *a, const struct fh_ent *b)
{
	if (a->jfs != b->jfs)
		return a->jfs < b->jfs;

	return a->seq < b->seq;
}


static inline void ent_put(struct fheap *h, size_t i, struct fh_ent e)
{
	h->v[i] = e;
	idx_set(e.tmr, i);
}


static void sift_up(struct fheap *h, size_t i)
{
	const struct fh_ent e = h->v[i];

	while (i > 0) {
		const size_t p = (i - 1) / 2;

		if (!ent_less(&e, &h->v[p]))
			break;

		ent_put(h, i, h->v[p]);
		i = p;
	}

	ent_put(h, i, e);
}


static void sift_down(struct fheap *h, size_t i)
{
	const struct fh_ent e = h->v[i];
	const size_t n = h->n;

	for (;;) {
		size_t c = 2 * i + 1;

		if (c >= n)
			break;

		if (c + 1 < n && ent_less(&h->v[c + 1], &h->v[c]))
			++c;

		if (!ent_less(&h->v[c], &e))
			break;

		ent_put(h, i, h->v[c]);
		i = c;
	}

	ent_put(h, i, e);
}


/* Make room for one more entry; false if memory is exhausted. */
static bool heap_reserve(struct fheap *h)
{
	struct fh_ent *v;
	size_t cap;

	if (h->n < h->cap)
		return true;

	cap = h->cap ? h->cap * 2 : HEAP_MIN_CAP;
	if (cap < h->cap || cap > SIZE_MAX / sizeof(*v))
		goto fail;

	v = realloc(h->v, cap * sizeof(*v));
	if (!v)
		goto fail;

	h->v   = v;
	h->cap = cap;
	h->warned = false;

	return true;

 fail:
	if (!h->warned) {
		fprintf(stderr, "fasttmr: cannot grow timer heap beyond %zu"
			" entries (%s); using the slow overflow list\n",
			h->cap, strerror(ENOMEM));
		h->warned = true;
	}

	return false;
}


/* Give memory back after a burst; failure to shrink is harmless. */
static void heap_maybe_shrink(struct fheap *h)
{
	struct fh_ent *v;
	size_t cap;

	if (h->cap <= 4 * HEAP_MIN_CAP || h->n >= h->cap / 4)
		return;

	cap = h->cap / 2;
	v = realloc(h->v, cap * sizeof(*v));
	if (!v)
		return;

	h->v   = v;
	h->cap = cap;
}


static void heap_remove_at(struct fheap *h, size_t i)
{
	const size_t last = --h->n;

	if (i != last) {
		const struct fh_ent moved = h->v[last];
		const bool up = ent_less(&moved, &h->v[i]);

		ent_put(h, i, moved);

		if (up)
			sift_up(h, i);
		else
			sift_down(h, i);
	}

	heap_maybe_shrink(h);
}


/* Queue a timer whose jfs is set; its th is already non-NULL. */
static void heap_push(struct fheap *h, struct tmr *tmr, uint64_t seq)
{
	tmr->le.data = h;
	tmr->le.list = NULL;

	if (heap_reserve(h)) {
		const size_t i = h->n++;

		tmr->le.prev = NULL;
		h->v[i].jfs = tmr->jfs;
		h->v[i].seq = seq;
		h->v[i].tmr = tmr;
		sift_up(h, i);
		return;
	}

	/* Out of memory: thread onto the overflow list instead */
	tmr->le.next = (struct le *)(uintptr_t)seq;  /* see ovf_seq() */
	ovf_set_next(tmr, h->ovf);
	h->ovf = tmr;
	++h->novf;
}


/* Overflow timer with the smallest (jfs, seq), or NULL. O(novf). */
static struct tmr *ovf_min(const struct fheap *h)
{
	struct tmr *best = NULL, *t;

	for (t = h->ovf; t; t = ovf_next(t)) {
		if (!best || t->jfs < best->jfs ||
		    (t->jfs == best->jfs &&
		     ovf_seq(h, t) < ovf_seq(h, best)))
			best = t;
	}

	return best;
}


static bool ovf_unlink(struct fheap *h, struct tmr *tmr)
{
	struct tmr *prev = NULL, *t;

	for (t = h->ovf; t; prev = t, t = ovf_next(t)) {
		if (t != tmr)
			continue;

		if (prev)
			ovf_set_next(prev, ovf_next(t));
		else
			h->ovf = ovf_next(t);

		--h->novf;
		return true;
	}

	return false;
}


/* Move overflow timers back into the array while it can grow. */
static void ovf_drain(struct fheap *h)
{
	while (h->ovf && heap_reserve(h)) {
		struct tmr *t = h->ovf;
		const uint64_t seq = ovf_seq(h, t);
		size_t i;

		h->ovf = ovf_next(t);
		--h->novf;

		i = h->n++;
		t->le.prev = NULL;
		h->v[i].jfs = t->jfs;
		h->v[i].seq = seq;
		h->v[i].tmr = t;
		sift_up(h, i);
	}
}


/* The next timer to fire (array top or overflow minimum), or NULL. */
static struct tmr *heap_peek(const struct fheap *h)
{
	struct tmr *top = h->n ? h->v[0].tmr : NULL;
	struct tmr *o;

	if (!h->novf)
		return top;

	o = ovf_min(h);
	if (!top)
		return o;

	if (o->jfs < top->jfs ||
	    (o->jfs == top->jfs && ovf_seq(h, o) < h->v[0].seq))
		return o;

	return top;
}


/* Remove a pending timer from its heap; the caller updates th/arg. */
static void tmr_detach(struct tmr *tmr)
{
	struct fheap *h = owner_get(tmr);
	size_t i;

	if (!h)
		return;

	i = idx_get(tmr);
	if (i < h->n && h->v[i].tmr == tmr)
		heap_remove_at(h, i);
	else
		(void)ovf_unlink(h, tmr);  /* not found: stale copy, ignore */

	detached(tmr);
}


/* Is tmr queued in h (array or overflow)? */
static bool heap_holds(const struct fheap *h, const struct tmr *tmr)
{
	const struct tmr *t;
	const size_t i = idx_get(tmr);

	if (i < h->n && h->v[i].tmr == tmr)
		return true;

	for (t = h->ovf; t; t = ovf_next(t)) {
		if (t == tmr)
			return true;
	}

	return false;
}


/* ---- the libre API ---------------------------------------------------- */

/**
 * Get the timer jiffies in milliseconds (CLOCK_MONOTONIC)
 *
 * @return Jiffies in [ms]
 */
uint64_t tmr_jiffies(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) {
		fprintf(stderr, "fasttmr: clock_gettime: %s\n",
			strerror(errno));
		return 0;
	}

	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}


/**
 * Initialise a timer object (must not be pending)
 *
 * @param tmr Timer to initialise
 */
void tmr_init(struct tmr *tmr)
{
	if (!tmr)
		return;

	memset(tmr, 0, sizeof(*tmr));
}


/**
 * Start a timer on the calling thread's loop, or stop it (th == NULL)
 *
 * @param tmr   Timer to start
 * @param delay Timer delay in [ms]
 * @param th    Timeout handler
 * @param arg   Handler argument
 */
void tmr_start(struct tmr *tmr, uint64_t delay, tmr_h *th, void *arg)
{
	struct fheap *h;
	uint64_t now;

	++tls_starts;

	if (!tmr)
		return;

	if (tmr->th)
		tmr_detach(tmr);

	tmr->th  = th;
	tmr->arg = arg;

	if (!th)
		return;

	h = heap_get(tmrl_get());
	if (!h) {
		tmr->th = NULL;   /* keep I1: not queued => not running */
		return;
	}

	now = tmr_jiffies();
	tmr->jfs = (delay > UINT64_MAX - now) ? UINT64_MAX : now + delay;

	heap_push(h, tmr, h->seq++);
}


/**
 * Cancel an active timer; no-op on a stopped timer (th/arg set to NULL,
 * as libre does)
 *
 * @param tmr Timer to cancel
 */
void tmr_cancel(struct tmr *tmr)
{
	if (!tmr)
		return;

	if (tmr->th)
		tmr_detach(tmr);

	tmr->th  = NULL;
	tmr->arg = NULL;
}


/**
 * Get the time left until timer expires
 *
 * @param tmr Timer object
 *
 * @return Time in [ms] until expiration, 0 if not running
 */
uint64_t tmr_get_expire(const struct tmr *tmr)
{
	uint64_t jfs;

	if (!tmr || !tmr->th)
		return 0;

	jfs = tmr_jiffies();

	return (tmr->jfs > jfs) ? (tmr->jfs - jfs) : 0;
}


/**
 * Fire all due timers of a loop. Handlers may start, cancel or free any
 * timer, including the one that fired: the heap is consistent at every
 * handler call and the next timer is re-read from it afterwards.
 *
 * @param tmrl Timer list of the loop (re_main passes &re->tmrl)
 */
void tmr_poll(struct list *tmrl)
{
	struct fheap *h;
	uint64_t jfs;

	if (!tmrl)
		return;

	h = heap_get(tmrl);
	if (!h)
		return;

	if (h->novf)
		ovf_drain(h);

	jfs = tmr_jiffies();   /* sampled once, as libre does */

	for (;;) {
		struct tmr *tmr = heap_peek(h);
		tmr_h *th;
		void *th_arg;

		if (!tmr || tmr->jfs > jfs)
			break;

		th     = tmr->th;
		th_arg = tmr->arg;

		tmr_detach(tmr);
		tmr->th = NULL;

		if (!th)
			continue;

		th(th_arg);
	}
}


/**
 * Get number of milliseconds until the next timer expires
 *
 * @param tmrl Timer list of the loop
 *
 * @return Number of [ms], 1 if a timer is due, or 0 if no active timers
 */
uint64_t tmr_next_timeout(struct list *tmrl)
{
	const struct fheap *h;
	const struct tmr *tmr;
	uint64_t jif;

	if (!tmrl)
		return 0;

	h = heap_get(tmrl);
	if (!h)
		return 0;

	tmr = heap_peek(h);
	if (!tmr)
		return 0;

	jif = tmr_jiffies();

	return (tmr->jfs <= jif) ? 1 : tmr->jfs - jif;
}


static int ent_cmp(const void *a, const void *b)
{
	const struct fh_ent *x = a, *y = b;

	if (ent_less(x, y))
		return -1;

	return ent_less(y, x) ? 1 : 0;
}


/**
 * Print the pending timers of the calling thread's loop, in firing order
 *
 * @param pf     Print handler
 * @param unused Unused
 *
 * @return 0 if success, otherwise errorcode
 */
int tmr_status(struct re_printf *pf, void *unused)
{
	struct fheap *h = heap_get(tmrl_get());
	struct fh_ent *sorted;
	const struct fh_ent *list;
	const struct tmr *t;
	size_t n, i;
	int err;

	(void)unused;

	if (!h)
		return 0;

	n = h->n + h->novf;
	if (!n)
		return 0;

	err = re_hprintf(pf, "Timers (%zu):\n", n);

	/* Sort a snapshot of the array; unsorted if memory is short */
	sorted = h->n ? malloc(h->n * sizeof(*sorted)) : NULL;
	if (sorted) {
		memcpy(sorted, h->v, h->n * sizeof(*sorted));
		qsort(sorted, h->n, sizeof(*sorted), ent_cmp);
	}
	list = sorted ? sorted : h->v;

	for (i = 0; i < h->n; i++) {
		t = list[i].tmr;
		err |= re_hprintf(pf, "  %p: th=%p expire=%llums\n",
				  (const void *)t, (void *)(uintptr_t)t->th,
				  (unsigned long long)tmr_get_expire(t));
	}

	free(sorted);

	for (t = h->ovf; t; t = ovf_next(t)) {
		err |= re_hprintf(pf, "  %p: th=%p expire=%llums (overflow)\n",
				  (const void *)t, (void *)(uintptr_t)t->th,
				  (unsigned long long)tmr_get_expire(t));
	}

	if (n > 100)
		err |= re_hprintf(pf, "    (Dumped Timers: %zu)\n", n);

	return err;
}


/**
 * Print timer debug info to stderr
 */
void tmr_debug(void)
{
	if (fasttmr_count())
		(void)re_fprintf(stderr, "%H", tmr_status, NULL);
}


/* ---- introspection (fasttmr.h) ---------------------------------------- */

size_t fasttmr_count(void)
{
	const struct fheap *h = heap_get(tmrl_get());

	return h ? h->n + h->novf : 0;
}


uint64_t fasttmr_starts(void)
{
	return tls_starts;
}


bool fasttmr_owns(const struct tmr *tmr)
{
	const struct fheap *h;
	bool owned;

	if (!tmr || !tmr->th)
		return false;

	h = owner_get(tmr);
	if (!h)
		return false;

	pthread_mutex_lock(&reg_lock);
	owned = heap_registered(h) && heap_holds(h, tmr);
	pthread_mutex_unlock(&reg_lock);

	return owned;
}
