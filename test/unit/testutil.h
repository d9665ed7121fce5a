/**
 * test/unit/testutil.h  What the C tests share
 *
 * TAP output (CHECK prints "ok N - name" or "not ok N - name  # file:line"
 * and counts failures in nfail), test_rnd64() (repeatable pseudo-random
 * numbers) and run_loop(), which runs libre's loop until re_cancel() or
 * a watchdog. Include once per test program, after
 * <re.h>.
 */
#ifndef SIPSTACK_TESTUTIL_H
#define SIPSTACK_TESTUTIL_H

#include <stdint.h>
#include <stdio.h>

static int ntest;
static int nfail;

#define CHECK(cond, name) do {                                     \
	++ntest;                                                   \
	if (cond) printf("ok %d - %s\n", ntest, name);             \
	else { ++nfail; printf("not ok %d - %s  # %s:%d\n", ntest, \
			       name, __FILE__, __LINE__); }        \
} while (0)


/* xorshift64*: the next of a repeatable sequence of pseudo-random
 * numbers (each test its own state and seed) */
static inline uint64_t test_rnd64(uint64_t *state)
{
	*state ^= *state >> 12;
	*state ^= *state << 25;
	*state ^= *state >> 27;

	return *state * 0x2545f4914f6cdd1dULL;
}


static struct tmr watchdog;

static void watchdog_handler(void *arg)
{
	bool *fired = arg;

	*fired = true;
	re_cancel();
}


/* run the loop until re_cancel() or ms elapse; true if not timed out */
static inline bool run_loop(uint32_t ms)
{
	bool fired = false;

	tmr_start(&watchdog, ms, watchdog_handler, &fired);
	(void)re_main(NULL);
	tmr_cancel(&watchdog);

	return !fired;
}

#endif
