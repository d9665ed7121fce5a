/**
 * bench/tmrbench.c  Micro-benchmark of libre's timer API
 *
 * With N timers pending at 32 s (like Timer F of N SIP transactions),
 * measures the mean cost of tmr_start(extra, 500 ms) + tmr_cancel(extra),
 * the pattern of every retransmission timer. Uses only the <re_tmr.h>
 * API, so it is built twice: linked with server/libre_ext/fasttmr.c (binary heap,
 * interposing libre's tmr_*) and without it (stock libre, sorted list).
 *
 * Usage: tmrbench [min_seconds_per_row]   (default 0.2)
 */

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <re.h>


/* Exported by libre (not in its headers): the loop's stock timer list.
 * Only used to tell which implementation is running. */
extern struct list *tmrl_get(void);


static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}


static void dummy_h(void *arg)
{
	(void)arg;
}


static const char *implementation(void)
{
	struct tmr t;
	bool stock;

	tmr_init(&t);
	tmr_start(&t, 1000, dummy_h, NULL);
	stock = !list_isempty(tmrl_get());
	tmr_cancel(&t);

	return stock ? "stock libre (sorted list)" : "interposed (fasttmr heap)";
}


int main(int argc, char *argv[])
{
	static const size_t sizes[] = {100, 1000, 10000, 50000, 100000};
	const double min_s = argc > 1 ? atof(argv[1]) : 0.2;
	struct tmr extra;
	size_t k;
	int err;

	err = libre_init();
	if (err) {
		fprintf(stderr, "libre_init: %d\n", err);
		return 1;
	}

	printf("tmr_start(500 ms) + tmr_cancel with N pending 32 s timers\n");
	printf("implementation: %s\n\n", implementation());
	printf("%8s  %10s  %12s\n", "N", "iterations", "ns/start+cancel");

	tmr_init(&extra);

	for (k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
		const size_t n = sizes[k];
		struct tmr *pend = calloc(n, sizeof(*pend));
		unsigned long iters = 0, batch = 1, i;
		double t0, t1, tb;
		size_t j;

		if (!pend) {
			fprintf(stderr, "out of memory for %zu timers\n", n);
			break;
		}

		for (j = 0; j < n; j++)
			tmr_start(&pend[j], 32000, dummy_h, NULL);

		/* warm-up */
		for (i = 0; i < 16; i++) {
			tmr_start(&extra, 500, dummy_h, NULL);
			tmr_cancel(&extra);
		}

		/* batches double while they take < 10 ms: cheap clock reads
		 * for the fast case, bounded overshoot for the slow one */
		t0 = t1 = now_s();
		do {
			tb = t1;
			for (i = 0; i < batch; i++) {
				tmr_start(&extra, 500, dummy_h, NULL);
				tmr_cancel(&extra);
			}
			iters += batch;
			t1 = now_s();
			if (t1 - tb < 0.01)
				batch *= 2;
		} while (t1 - t0 < min_s || iters < 1000);

		printf("%8zu  %10lu  %12.1f\n", n, iters,
		       (t1 - t0) * 1e9 / (double)iters);

		for (j = 0; j < n; j++)
			tmr_cancel(&pend[j]);
		free(pend);
	}

	libre_close();

	return 0;
}
