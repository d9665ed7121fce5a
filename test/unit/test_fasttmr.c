/**
 * test/unit/test_fasttmr.c  Tests of server/libre_ext/fasttmr.c (TAP output)
 *
 * Linked with server/libre_ext/fasttmr.c, whose tmr_* definitions interpose
 * libre.so's (see that file). Part (a) drives the heap directly through
 * tmr_poll(); part (b) proves that libre's own SIP client transaction
 * timers (Timer E/F) are queued in, and fire from, our heap; part (c)
 * checks the clock. 127.0.0.1 only; runs in about 2 s.
 *
 * The heap invariant check relies on the documented field reuse of
 * fasttmr.c: le.data = owner heap, le.next = heap index while pending.
 */

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <re.h>

#include "fasttmr.h"


/* Exported by libre, not declared in its headers */
extern struct list *tmrl_get(void);


/* ---- TAP ---------------------------------------------------------------- */

static unsigned tap_n;
static unsigned tap_failed;


static void ok(bool cond, const char *name)
{
	++tap_n;
	if (!cond)
		++tap_failed;

	printf("%sok %u - %s\n", cond ? "" : "not ", tap_n, name);
	fflush(stdout);
}


static void diag(const char *msg, unsigned long long a, unsigned long long b)
{
	printf("# %s: %llu %llu\n", msg, a, b);
}


/* ---- helpers -------------------------------------------------------------- */

static void sleep_ms(unsigned ms)
{
	struct timespec ts;

	ts.tv_sec  = ms / 1000;
	ts.tv_nsec = (long)(ms % 1000) * 1000000L;
	while (nanosleep(&ts, &ts) != 0)
		;
}


static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}


static void poll_now(void)
{
	tmr_poll(tmrl_get());
}


/* Poll the loop's timers until *flag or timeout_ms elapsed */
static void poll_until(const bool *flag, unsigned timeout_ms)
{
	const uint64_t end = mono_ms() + timeout_ms;

	while (!*flag && mono_ms() < end) {
		poll_now();
		if (!*flag)
			sleep_ms(1);
	}
}


/* xorshift64*: deterministic pseudo random numbers */
static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint64_t rnd(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1dULL;
}


static void shuffle(size_t *a, size_t n)
{
	size_t i;

	for (i = n; i > 1; i--) {
		const size_t j = (size_t)(rnd() % i);
		const size_t t = a[i - 1];

		a[i - 1] = a[j];
		a[j] = t;
	}
}


/* Fired-order recorder shared by the handlers */
enum { REC_MAX = 100000 };
static size_t rec[REC_MAX];
static size_t nrec;

static void rec_h(void *arg)
{
	if (nrec < REC_MAX)
		rec[nrec] = (size_t)(uintptr_t)arg;
	++nrec;
}


/* ---- (c) clock ---------------------------------------------------------- */

static void test_jiffies(void)
{
	uint64_t prev = tmr_jiffies(), t0, t1, m;
	bool mono = true;
	int i;

	for (i = 0; i < 200000; i++) {
		const uint64_t j = tmr_jiffies();

		if (j < prev)
			mono = false;
		prev = j;
	}
	ok(mono, "tmr_jiffies never decreases (200k calls)");

	t0 = tmr_jiffies();
	sleep_ms(30);
	t1 = tmr_jiffies();
	ok(t1 - t0 >= 29 && t1 - t0 < 1000, "tmr_jiffies advances with time");

	/* bracketed, so a preemption between the reads cannot fail it */
	m = mono_ms();
	t0 = tmr_jiffies();
	t1 = mono_ms();
	ok(t0 + 1 >= m && t0 <= t1 + 1, "tmr_jiffies is CLOCK_MONOTONIC in ms");
}


/* ---- (a) heap semantics ------------------------------------------------- */

static void test_init_cancel_noop(void)
{
	struct tmr t;
	const size_t n0 = fasttmr_count();

	memset(&t, 0xa5, sizeof(t));
	tmr_init(&t);
	ok(!tmr_isrunning(&t) && t.le.data == NULL && t.jfs == 0,
	   "tmr_init clears the timer");

	tmr_cancel(&t);
	tmr_cancel(&t);
	tmr_cancel(NULL);
	tmr_start(NULL, 10, rec_h, NULL);
	ok(!tmr_isrunning(&t) && fasttmr_count() == n0 && !fasttmr_owns(&t)
	   && tmr_get_expire(&t) == 0 && tmr_next_timeout(tmrl_get()) == 0,
	   "tmr_cancel of a stopped timer is a no-op");
}


static void test_ordering(void)
{
	/* wide gaps: the checks must hold under valgrind on a busy machine */
	static const unsigned delays[] = {400, 100, 300, 200, 0, 250};
	const size_t n = sizeof(delays) / sizeof(delays[0]);
	static const size_t expect[] = {4, 1, 3, 5, 2, 0};
	struct tmr t[6];
	bool running = true, owned = true, order = true;
	uint64_t nt;
	size_t i;

	nrec = 0;
	for (i = 0; i < n; i++) {
		tmr_init(&t[i]);
		tmr_start(&t[i], delays[i], rec_h, (void *)(uintptr_t)i);
	}

	for (i = 0; i < n; i++) {
		running &= tmr_isrunning(&t[i]);
		owned   &= fasttmr_owns(&t[i]);
	}
	ok(running && owned && fasttmr_count() == n,
	   "started timers are running and owned by the heap");

	ok(tmr_get_expire(&t[0]) >= 300 && tmr_get_expire(&t[0]) <= 400,
	   "tmr_get_expire reports the remaining time");

	nt = tmr_next_timeout(tmrl_get());
	ok(nt == 1, "tmr_next_timeout is 1 when a timer is due");

	sleep_ms(500);
	poll_now();

	for (i = 0; i < n; i++)
		order &= (i < nrec && rec[i] == expect[i]);
	ok(nrec == n && order, "timers fire in expiry order");

	owned = false;
	for (i = 0; i < n; i++)
		owned |= fasttmr_owns(&t[i]) || tmr_isrunning(&t[i]);
	ok(!owned && fasttmr_count() == 0 &&
	   tmr_next_timeout(tmrl_get()) == 0,
	   "fired timers are stopped and gone from the heap");
}


static void test_fifo(void)
{
	enum { N = 2000 };
	static struct tmr t[N];
	bool order = true;
	size_t i, same = 0;

	nrec = 0;
	for (i = 0; i < N; i++) {
		tmr_init(&t[i]);
		/* alternate two delays: equal expiries interleave */
		tmr_start(&t[i], (i & 1) ? 5 : 3, rec_h, (void *)(uintptr_t)i);
	}

	/* pairs of neighbouring even timers that share an expiry: a tick
	 * (or a preemption) anywhere in the loop only loses one pair */
	for (i = 2; i < N; i += 2)
		same += (t[i].jfs == t[i - 2].jfs);

	sleep_ms(10);
	poll_now();

	/* expected: all even (delay 3) then all odd (delay 5), each group in
	 * start order -- unless the clock ticked during the start loop, in
	 * which case the order is by jfs, then start order */
	for (i = 1; i < nrec && i < N; i++) {
		const struct tmr *a = &t[rec[i - 1]], *b = &t[rec[i]];

		if (a->jfs > b->jfs ||
		    (a->jfs == b->jfs && rec[i - 1] > rec[i]))
			order = false;
	}
	ok(nrec == N && order && same > 0,
	   "equal expiries fire FIFO (start order)");
	if (!order || same == 0)
		diag("fifo: fired, same-jfs", nrec, same);
}


static void test_cancel(void)
{
	struct tmr t[4];
	size_t i;

	nrec = 0;
	for (i = 0; i < 4; i++) {
		tmr_init(&t[i]);
		tmr_start(&t[i], 2 + i, rec_h, (void *)(uintptr_t)i);
	}

	tmr_cancel(&t[1]);
	tmr_cancel(&t[3]);
	tmr_cancel(&t[3]);
	ok(!tmr_isrunning(&t[1]) && !fasttmr_owns(&t[1]) &&
	   t[1].arg == NULL && fasttmr_count() == 2,
	   "tmr_cancel stops a pending timer");

	sleep_ms(10);
	poll_now();
	ok(nrec == 2 && rec[0] == 0 && rec[1] == 2,
	   "cancelled timers do not fire");

	/* tmr_start with th == NULL stops too, keeping arg like libre */
	tmr_start(&t[0], 100, rec_h, NULL);
	tmr_start(&t[0], 100, NULL, &t[1]);
	ok(!tmr_isrunning(&t[0]) && t[0].arg == &t[1] &&
	   fasttmr_count() == 0, "tmr_start with no handler stops the timer");
}


static void test_restart(void)
{
	struct tmr a, b;

	nrec = 0;
	tmr_init(&a);
	tmr_init(&b);
	tmr_start(&a, 1000, rec_h, (void *)1);
	tmr_start(&b, 8, rec_h, (void *)2);
	tmr_start(&a, 3, rec_h, (void *)3);
	ok(fasttmr_count() == 2 && tmr_get_expire(&a) <= 3,
	   "restarting a running timer re-queues it once");

	sleep_ms(15);
	poll_now();
	/* as a set: a preemption between the starts may order them */
	ok(nrec == 2 && rec[0] + rec[1] == 5 && (rec[0] == 3 || rec[1] == 3),
	   "restarted timer fires once, with its new handler argument");

	/* restart to a later time */
	nrec = 0;
	tmr_start(&a, 2, rec_h, (void *)1);
	tmr_start(&a, 500, rec_h, (void *)1);
	sleep_ms(10);
	poll_now();
	ok(nrec == 0 && tmr_isrunning(&a), "postponed timer does not fire early");
	tmr_cancel(&a);
}


static void test_status(void)
{
	struct tmr t[3];
	char buf[512], p0[32], p1[32], p2[32];
	const char *a, *b, *c;
	size_t i;

	for (i = 0; i < 3; i++)
		tmr_init(&t[i]);
	tmr_start(&t[0], 3000, rec_h, NULL);
	tmr_start(&t[1], 1000, rec_h, NULL);
	tmr_start(&t[2], 2000, rec_h, NULL);

	(void)re_snprintf(buf, sizeof(buf), "%H", tmr_status, NULL);
	(void)re_snprintf(p0, sizeof(p0), "%p:", &t[0]);
	(void)re_snprintf(p1, sizeof(p1), "%p:", &t[1]);
	(void)re_snprintf(p2, sizeof(p2), "%p:", &t[2]);
	a = strstr(buf, p1);
	b = strstr(buf, p2);
	c = strstr(buf, p0);
	ok(!strncmp(buf, "Timers (3):\n", 12) && a && b && c && a < b && b < c,
	   "tmr_status lists pending timers in firing order");

	for (i = 0; i < 3; i++)
		tmr_cancel(&t[i]);

	(void)re_snprintf(buf, sizeof(buf), "%H", tmr_status, NULL);
	ok(buf[0] == '\0', "tmr_status prints nothing without timers");
}


struct rearm {
	struct tmr tmr;
	unsigned fired;
	bool running_in_h;
	bool done;
};

static void rearm_h(void *arg)
{
	struct rearm *r = arg;

	r->running_in_h |= tmr_isrunning(&r->tmr) || fasttmr_owns(&r->tmr);

	if (++r->fired < 5)
		tmr_start(&r->tmr, r->fired & 1 ? 0 : 1, rearm_h, r);
	else
		r->done = true;
}


static void test_rearm(void)
{
	struct rearm r;

	memset(&r, 0, sizeof(r));
	tmr_start(&r.tmr, 1, rearm_h, &r);
	poll_until(&r.done, 500);

	ok(r.fired == 5 && !r.running_in_h && !tmr_isrunning(&r.tmr) &&
	   fasttmr_count() == 0,
	   "handler re-arming its own timer (th cleared during the call)");
}


/* A handler that mutates the heap while tmr_poll() iterates it */
static struct tmr mx[6];
static unsigned mx_fired[6];
static bool mx_done;

static void mx_h(void *arg)
{
	const size_t i = (size_t)(uintptr_t)arg;

	++mx_fired[i];
	rec_h(arg);

	switch (i) {

	case 0:
		tmr_cancel(&mx[1]);                     /* due, not yet fired */
		tmr_start(&mx[2], 5000, mx_h, (void *)2);  /* due -> later   */
		tmr_start(&mx[3], 0, mx_h, (void *)3);  /* nested, delay 0   */
		tmr_cancel(&mx[0]);                     /* self: no-op       */
		break;

	case 3:
		tmr_start(&mx[4], 0, mx_h, (void *)4);  /* nested again      */
		break;

	case 4:
		tmr_cancel(&mx[2]);
		tmr_start(&mx[5], 1, mx_h, (void *)5);
		break;

	case 5:
		mx_done = true;
		break;
	}
}


static void test_mutating_handlers(void)
{
	size_t i;
	bool once = true;

	nrec = 0;
	mx_done = false;
	for (i = 0; i < 3; i++) {
		tmr_init(&mx[i]);
		tmr_start(&mx[i], 0, mx_h, (void *)(uintptr_t)i);
	}

	poll_until(&mx_done, 500);

	for (i = 0; i < 6; i++)
		once &= mx_fired[i] == ((i == 1 || i == 2) ? 0u : 1u);

	ok(mx_done && once && nrec == 4 && rec[0] == 0 && rec[1] == 3 &&
	   rec[2] == 4 && rec[3] == 5 && fasttmr_count() == 0,
	   "handlers may cancel/restart due timers and nest delay-0 timers");
}


/* Heap invariant through fasttmr.c's documented field reuse */
static bool heap_ok(struct tmr *t, size_t n, size_t expect_pending)
{
	const struct tmr **map;
	const void *owner = NULL;
	size_t i, pending = 0;
	bool good = true;

	map = calloc(expect_pending ? expect_pending : 1, sizeof(*map));
	if (!map)
		return false;

	for (i = 0; i < n && good; i++) {
		size_t idx;

		if (!tmr_isrunning(&t[i]))
			continue;

		++pending;
		if (!owner)
			owner = t[i].le.data;

		idx = (size_t)(uintptr_t)t[i].le.next;
		if (t[i].le.data != owner || owner == NULL ||
		    idx >= expect_pending || map[idx])
			good = false;
		else
			map[idx] = &t[i];
	}

	good = good && pending == expect_pending &&
		fasttmr_count() == expect_pending;

	for (i = 1; good && i < expect_pending; i++) {
		if (map[(i - 1) / 2]->jfs > map[i]->jfs)
			good = false;
	}

	free(map);

	return good;
}


static void test_random_100k(void)
{
	enum { N = 100000 };
	struct tmr *t = calloc(N, sizeof(*t));
	size_t *perm = calloc(N, sizeof(*perm));
	size_t *order = calloc(N, sizeof(*order));
	size_t i, pending = 0, live = 0;
	bool inv = true, fifo = true, owned = true;
	uint64_t s0;

	if (!t || !perm || !order) {
		ok(false, "100k random timers (allocation)");
		goto out;
	}

	for (i = 0; i < N; i++)
		perm[i] = i;

	/* insert in random order with random 1..60 s delays */
	shuffle(perm, N);
	s0 = fasttmr_starts();
	for (i = 0; i < N; i++) {
		const size_t k = perm[i];

		tmr_start(&t[k], 1000 + rnd() % 59000, rec_h,
			  (void *)(uintptr_t)k);
		++pending;
		if (i % 20000 == 19999)
			inv &= heap_ok(t, N, pending);
	}
	ok(fasttmr_starts() - s0 == N, "fasttmr_starts counts tmr_start calls");

	/* cancel a random 60%, restart 10% of those left, re-check */
	shuffle(perm, N);
	for (i = 0; i < N; i++) {
		const size_t k = perm[i];

		if (i < N * 6 / 10) {
			tmr_cancel(&t[k]);
			--pending;
		}
		else if (i < N * 7 / 10) {
			tmr_start(&t[k], rnd() % 60000, rec_h,
				  (void *)(uintptr_t)k);
		}
		if (i % 10000 == 9999)
			inv &= heap_ok(t, N, pending);
	}
	ok(inv, "heap invariant holds through 100k random starts/cancels");

	/* owned <=> running */
	for (i = 0; i < N; i++)
		owned &= fasttmr_owns(&t[i]) == tmr_isrunning(&t[i]);
	ok(owned, "fasttmr_owns(t) == tmr_isrunning(t) for all timers");

	/* restart the survivors (random order) to expire within 0..15 ms,
	 * then fire them all in one tmr_poll(): pop order must be sorted */
	shuffle(perm, N);
	for (i = 0; i < N; i++) {
		const size_t k = perm[i];

		if (!tmr_isrunning(&t[k]))
			continue;

		order[k] = live++;
		tmr_start(&t[k], rnd() % 16, rec_h, (void *)(uintptr_t)k);
	}
	inv = heap_ok(t, N, live);

	sleep_ms(30);
	nrec = 0;
	poll_now();

	for (i = 1; i < nrec && i < REC_MAX; i++) {
		const size_t a = rec[i - 1], b = rec[i];

		if (t[a].jfs > t[b].jfs ||
		    (t[a].jfs == t[b].jfs && order[a] > order[b]))
			fifo = false;
	}
	ok(inv && nrec == live && live == pending && fifo &&
	   fasttmr_count() == 0,
	   "100k-heap pops in (expiry, start order) order");

	/* and a fresh batch cancelled entirely in random order */
	for (i = 0; i < N; i++)
		tmr_start(&t[i], 30000 + rnd() % 1000, rec_h, NULL);
	shuffle(perm, N);
	inv = true;
	for (i = 0; i < N; i++) {
		tmr_cancel(&t[perm[i]]);
		if (i % 25000 == 0)
			inv &= heap_ok(t, N, N - i - 1);
	}
	ok(inv && fasttmr_count() == 0 && tmr_next_timeout(tmrl_get()) == 0,
	   "cancelling 100k timers in random order empties the heap");

 out:
	free(order);
	free(perm);
	free(t);
}


/* A second thread with its own libre loop gets its own heap */
struct thr {
	bool own_loop;     /* tmrl_get() differs from the main thread's */
	bool isolated;     /* counts/starts are per loop/thread         */
	bool fired;
	const struct list *main_tmrl;
};

static void thr_fire_h(void *arg)
{
	*(bool *)arg = true;
}

static void *thr_main(void *arg)
{
	struct thr *x = arg;
	struct tmr t[3];
	size_t i;

	if (re_thread_init())
		return NULL;

	x->own_loop = tmrl_get() != x->main_tmrl;

	for (i = 0; i < 3; i++)
		tmr_init(&t[i]);
	tmr_start(&t[0], 1, thr_fire_h, &x->fired);
	tmr_start(&t[1], 60000, thr_fire_h, NULL);
	tmr_start(&t[2], 60000, thr_fire_h, NULL);
	x->isolated = fasttmr_count() == 3 && fasttmr_starts() == 3;

	poll_until(&x->fired, 500);
	x->isolated &= fasttmr_count() == 2;

	tmr_cancel(&t[1]);
	tmr_cancel(&t[2]);
	re_thread_close();

	return NULL;
}

static void test_thread_loop(void)
{
	struct thr x;
	struct tmr t;
	pthread_t tid;
	bool ran;

	memset(&x, 0, sizeof(x));
	x.main_tmrl = tmrl_get();

	tmr_init(&t);
	tmr_start(&t, 60000, rec_h, NULL);

	ran = pthread_create(&tid, NULL, thr_main, &x) == 0 &&
		pthread_join(tid, NULL) == 0;

	ok(ran && x.own_loop && x.isolated && x.fired &&
	   fasttmr_count() == 1 && fasttmr_owns(&t),
	   "a re_thread_init() thread has its own timer heap");

	tmr_cancel(&t);
}


/* ---- (b) libre's SIP transactions run on our heap ----------------------- */

struct sipprobe {
	unsigned datagrams;
	uint64_t rx[8];         /* arrival times [ms]   */
	bool resp_called;
	int resp_err;
};

static void silent_recv(const struct sa *src, struct mbuf *mb, void *arg)
{
	struct sipprobe *p = arg;
	(void)src;

	if (mbuf_get_left(mb) >= 7 &&
	    !memcmp(mbuf_buf(mb), "OPTIONS", 7)) {
		if (p->datagrams < 8)
			p->rx[p->datagrams] = tmr_jiffies();
		++p->datagrams;
	}
}


static void resp_h(int err, const struct sip_msg *msg, void *arg)
{
	struct sipprobe *p = arg;
	(void)msg;

	p->resp_called = true;
	p->resp_err = err;
}


static void stop_h(void *arg)
{
	(void)arg;
	re_cancel();
}


static void test_libre_sip(void)
{
	struct sipprobe probe;
	struct udp_sock *us = NULL;
	struct sip *sip = NULL;
	struct sip_request *req = NULL;
	struct sa laddr, silent, sipaddr;
	struct tmr stop;
	uint64_t starts0, t0;
	size_t count0;
	char uri[64];
	int err;

	memset(&probe, 0, sizeof(probe));
	tmr_init(&stop);

	err  = sa_set_str(&laddr, "127.0.0.1", 0);
	err |= udp_listen(&us, &laddr, silent_recv, &probe);
	err |= udp_local_get(us, &silent);
	ok(!err && sa_port(&silent) != 0, "silent UDP socket on 127.0.0.1");
	if (err)
		goto out;

	err  = sip_alloc(&sip, NULL, 16, 16, 16, "fasttmr-test", NULL, NULL);
	if (!err)
		err = sip_transp_add(sip, SIP_TRANSP_UDP, &laddr);
	if (!err)
		err = sip_transp_laddr(sip, &sipaddr, SIP_TRANSP_UDP, &silent);
	ok(!err && sa_port(&sipaddr) != 0, "libre SIP stack on 127.0.0.1 UDP");
	if (err)
		goto out;

	(void)re_snprintf(uri, sizeof(uri), "sip:probe@127.0.0.1:%u",
			  sa_port(&silent));

	starts0 = fasttmr_starts();
	count0  = fasttmr_count();
	t0      = tmr_jiffies();

	err = sip_requestf(&req, sip, true, "OPTIONS", uri, NULL, NULL,
			   NULL, resp_h, &probe,
			   "To: <%s>\r\n"
			   "From: <sip:fasttmr@127.0.0.1>;tag=f457"
			   "\r\n"
			   "Call-ID: fasttmr-%llu\r\n"
			   "CSeq: 1 OPTIONS\r\n"
			   "Max-Forwards: 70\r\n"
			   "Content-Length: 0\r\n"
			   "\r\n",
			   uri, (unsigned long long)t0);
	ok(!err && req != NULL, "sip_requestf sends a stateful OPTIONS");
	if (err)
		goto out;

	/* ctrans_request() started Timer F (32 s) and Timer E (500 ms) */
	ok(fasttmr_starts() >= starts0 + 2 && fasttmr_count() >= count0 + 2,
	   "libre's client transaction started its timers via fasttmr");
	diag("tmr_start calls, pending timers added",
	     fasttmr_starts() - starts0, fasttmr_count() - count0);

	ok(list_isempty(tmrl_get()) && tmr_next_timeout(tmrl_get()) >= 400,
	   "libre's own timer list stays empty; next timeout is Timer E");

	/* Timer E: retransmissions at +500 ms and +1500 ms (RFC 3261) */
	tmr_start(&stop, 3000, stop_h, NULL);
	err = re_main(NULL);
	ok(!err, "re_main ran until the stop timer");

	ok(probe.datagrams >= 3,
	   "libre retransmitted the request at least twice (Timer E fired)");
	diag("datagrams received", probe.datagrams, 3);
	if (probe.datagrams >= 3) {
		/* measured from the send (t0), not from the first arrival:
		 * on a loaded machine our own receive handler runs late,
		 * which shortens rx[1] - rx[0]. A timer never fires early,
		 * so the lower bounds are exact; the upper one counts from
		 * the first arrival (valgrind translating libre's send path
		 * on a busy machine can delay the send itself), and
		 * the gap between the two retransmissions tells 2*T1 from
		 * T1 or 4*T1. */
		const uint64_t d1 = probe.rx[1] - t0;
		const uint64_t d2 = probe.rx[2] - t0;

		ok(d1 >= 500 && probe.rx[1] - probe.rx[0] <= 1500 &&
		   d2 >= 1500 &&
		   d2 - d1 >= 700 && d2 - d1 <= 1400,
		   "retransmissions at T1 and T1 + 2*T1 after the send");
		diag("retransmissions after the send [ms]", d1, d2);
	}
	else {
		ok(false, "retransmissions at T1 and T1 + 2*T1 after the send");
	}

	ok(!probe.resp_called && req != NULL && fasttmr_count() >= count0 + 2,
	   "transaction still pending (Timer F is 32 s)");

 out:
	tmr_cancel(&stop);
	sip_close(sip, true);          /* aborts req: resp_h(ECONNABORTED) */
	sip = mem_deref(sip);
	us = mem_deref(us);
	ok(probe.resp_called && req == NULL && fasttmr_count() == 0,
	   "closing the SIP stack cancels libre's timers in our heap");
}


int main(void)
{
	int err;

	err = libre_init();
	if (err) {
		printf("1..1\nnot ok 1 - libre_init: %d\n", err);
		return 1;
	}

	test_jiffies();
	test_init_cancel_noop();
	test_ordering();
	test_fifo();
	test_cancel();
	test_restart();
	test_status();
	test_rearm();
	test_mutating_handlers();
	test_random_100k();
	test_thread_loop();
	test_libre_sip();

	libre_close();

	printf("1..%u\n", tap_n);

	return tap_failed ? 1 : 0;
}
