/**
 * server/libre_ext/fasttmr.h  Introspection of the O(log n) timer heap
 *
 * fasttmr.c replaces libre's tmr_* functions (see the comment at the
 * top of that file); the timer API itself is still <re_tmr.h>. The
 * functions below exist for tests, statistics and debugging only.
 *
 * Include <re.h> (or re_types.h + re_tmr.h) first.
 */
#ifndef FASTTMR_H
#define FASTTMR_H

/** Number of timers pending on the calling thread's libre loop */
size_t   fasttmr_count(void);

/** Number of tmr_start() calls made by the calling thread (ever) */
uint64_t fasttmr_starts(void);

/** True if tmr is pending (started, not fired/cancelled) in a fasttmr heap */
bool     fasttmr_owns(const struct tmr *tmr);

#endif
