/**
 * test/unit/test_ratelimit.c  The per-source rate limiter (core/ratelimit.c)
 *
 * struct ratelimit driven directly with a simulated clock: the burst,
 * then one per interval as the bucket refills, full again after
 * burst/rate seconds; trusted prefixes (IPv4, IPv6, an IPv4-mapped IPv6
 * source) never limited; an IPv6 source counted by its /64; the 503
 * action letting through one per source per second; the prefixes'
 * parser (bits beyond the prefix refused); the episode's two log lines
 * (start, and the summary after the quiet time, through the sweep);
 * bounded memory: 300,000 spoofed sources in a table of 1024 buckets
 * leave it at 1024 with the heap flat, and a flooder among them stays
 * limited (the heaviest sender is the last one evicted); off and on
 * again. Under valgrind too (meson).
 */
#include <malloc.h>
#include <string.h>
#include <stdlib.h>
#include <stdio.h>
#include <re.h>
#include "sipstack.h"
#include "testutil.h"


#define MS 1000000ull
#define SEC 1000000000ull

static struct sa addr(const char *ip)
{
	struct sa a;

	(void)sa_set_str(&a, ip, 5060);

	return a;
}


/* how many of n checks from ip at now pass */
static unsigned passes(struct ratelimit *rl, const char *ip, unsigned n,
		       uint64_t now)
{
	struct sa a = addr(ip);
	unsigned i, ok = 0;

	for (i = 0; i < n; i++)
		ok += ratelimit_check(rl, &a, now) == RATELIMIT_PASS;

	return ok;
}


static struct ratelimit *limiter(uint32_t rate, uint32_t burst,
				 const char *const *trusted)
{
	struct stack_ratelimit cfg;
	struct ratelimit *rl = NULL;

	ratelimit_config_default(&cfg);
	cfg.rate = rate;
	cfg.burst = burst;
	cfg.ntrusted = 0;
	while (trusted && *trusted)
		(void)ratelimit_net_decode(&cfg.trusted[cfg.ntrusted++],
					   *trusted++);
	if (ratelimit_alloc(&rl, &cfg))
		return NULL;

	return rl;
}


static void test_config(void)
{
	struct stack_ratelimit cfg;
	struct ratelimit_net n;
	char buf[64];

	ratelimit_config_default(&cfg);
	CHECK(cfg.on && cfg.rate == 200 && cfg.burst == 1000 &&
	      cfg.action == RATELIMIT_DROP && cfg.ntrusted == 2 &&
	      !ratelimit_config_check(&cfg),
	      "defaults: on, 200/s, burst 1000, drop, loopback trusted");
	cfg.rate = 0;
	CHECK(ratelimit_config_check(&cfg) == EINVAL, "rate 0 refused");
	cfg.rate = 10;
	cfg.max_sources = 100;
	CHECK(ratelimit_config_check(&cfg) == EINVAL,
	      "max_sources below 1024 refused");

	CHECK(!ratelimit_net_decode(&n, "10.0.0.0/8") && n.bits == 8 &&
	      re_snprintf(buf, sizeof(buf), "%H", ratelimit_net_print, &n) &&
	      !strcmp(buf, "10.0.0.0/8"), "10.0.0.0/8 parsed and printed");
	CHECK(!ratelimit_net_decode(&n, "192.0.2.7") && n.bits == 32 &&
	      re_snprintf(buf, sizeof(buf), "%H", ratelimit_net_print, &n) &&
	      !strcmp(buf, "192.0.2.7"), "a bare IPv4 address is a /32");
	CHECK(!ratelimit_net_decode(&n, "2001:db8::/32") && n.bits == 32 &&
	      !ratelimit_net_decode(&n, "::1") && n.bits == 128,
	      "IPv6 prefixes and addresses");
	CHECK(ratelimit_net_decode(&n, "10.0.0.1/8") == EDOM,
	      "bits beyond the prefix refused (EDOM)");
	CHECK(ratelimit_net_decode(&n, "10.0.0.0/33") == EINVAL &&
	      ratelimit_net_decode(&n, "2001:db8::/129") == EINVAL &&
	      ratelimit_net_decode(&n, "10.0.0.0/") == EINVAL &&
	      ratelimit_net_decode(&n, "10.0.0.0/8x") == EINVAL &&
	      ratelimit_net_decode(&n, "example.com") == EINVAL &&
	      ratelimit_net_decode(&n, "") == EINVAL,
	      "bad prefixes refused (EINVAL)");
}


static void test_bucket(void)
{
	struct ratelimit *rl = limiter(100, 10, NULL);
	const uint64_t t = ratelimit_now();
	struct ratelimit_stats st;

	CHECK(rl != NULL, "a limiter of 100/s, burst 10");
	if (!rl)
		return;

	CHECK(passes(rl, "192.0.2.1", 15, t) == 10,
	      "a burst of 15 at once: 10 pass");
	CHECK(passes(rl, "192.0.2.2", 10, t) == 10,
	      "another source has its own bucket");
	CHECK(passes(rl, "192.0.2.1", 5, t + 10 * MS) == 1,
	      "10 ms later (one interval): one more");
	CHECK(passes(rl, "192.0.2.1", 5, t + 25 * MS) == 1,
	      "15 ms later: one more (1.5 intervals make one token)");
	CHECK(passes(rl, "192.0.2.1", 100, t + SEC) == 10,
	      "after a quiet while the bucket is full again: 10");

	/* a steady 200/s for 2 s gets its 100/s */
	{
		struct sa a = addr("192.0.2.3");
		unsigned i, ok = 0;

		for (i = 0; i < 400; i++)
			ok += ratelimit_check(rl, &a, t + i * 5 * MS) ==
				RATELIMIT_PASS;
		CHECK(ok >= 205 && ok <= 211, "200/s for 2 s: the burst "
		      "and 100/s pass (about 210 of 400)");
		if (ok < 205 || ok > 211)
			printf("# %u passed\n", ok);
	}

	ratelimit_stats(rl, &st);
	CHECK(st.episodes == 2 && st.limited == 2 && st.sources == 3,
	      "2 sources went over (2 episodes), 3 buckets in use");
	mem_deref(rl);
}


static void test_trusted(void)
{
	static const char *const nets[] = {"10.0.0.0/8", "2001:db8::/32",
					   NULL};
	struct ratelimit *rl = limiter(100, 10, nets);
	const uint64_t t = ratelimit_now();
	struct ratelimit_stats st;

	if (!rl) {
		CHECK(false, "limiter");
		return;
	}

	CHECK(passes(rl, "10.1.2.3", 5000, t) == 5000,
	      "a trusted IPv4 source is never limited");
	CHECK(passes(rl, "2001:db8:5::1", 5000, t) == 5000,
	      "a trusted IPv6 source is never limited");
	CHECK(passes(rl, "::ffff:10.9.9.9", 5000, t) == 5000,
	      "an IPv4-mapped IPv6 source matches the IPv4 prefix");
	CHECK(passes(rl, "11.0.0.1", 50, t) == 10 &&
	      passes(rl, "2001:db9::1", 50, t) == 10,
	      "just outside the prefixes: limited");
	ratelimit_stats(rl, &st);
	CHECK(st.trusted == 15000 && st.sources == 2,
	      "trusted checks take no bucket");

	/* IPv6: the /64 is the source; IPv4 by its own address */
	CHECK(passes(rl, "2001:db9:0:1::1", 6, t) == 6 &&
	      passes(rl, "2001:db9:0:1::2", 6, t) == 4 &&
	      passes(rl, "2001:db9:0:2::1", 6, t) == 6,
	      "IPv6 sources share the bucket of their /64, not more");
	CHECK(passes(rl, "192.0.2.9", 6, t) == 6 &&
	      passes(rl, "::ffff:192.0.2.9", 6, t) == 4,
	      "an IPv4 source and its IPv4-mapped form share a bucket");
	mem_deref(rl);
}


static void test_503(void)
{
	struct stack_ratelimit cfg;
	struct ratelimit *rl = NULL;
	const uint64_t t = ratelimit_now();
	struct sa a = addr("198.51.100.1");
	unsigned i, reply = 0, over = 0, pass = 0;

	ratelimit_config_default(&cfg);
	cfg.rate = 10;
	cfg.burst = 5;
	cfg.action = RATELIMIT_503;
	if (ratelimit_alloc(&rl, &cfg)) {
		CHECK(false, "limiter");
		return;
	}

	/* 1000 over 2.5 s: per second one is let through to be answered */
	for (i = 0; i < 1000; i++) {
		enum ratelimit_verdict v = ratelimit_check(rl, &a,
			t + (uint64_t)i * 2500 * MS / 1000);

		reply += v == RATELIMIT_REPLY;
		over += v == RATELIMIT_OVER;
		pass += v == RATELIMIT_PASS;
	}
	CHECK(reply == 3, "503: the first over the limit, then one per "
	      "second (3 in 2.5 s)");
	CHECK(pass >= 29 && pass <= 31 && reply + over + pass == 1000,
	      "the burst and 10/s passed (5 + 25), the rest dropped");
	if (reply != 3 || pass < 29 || pass > 31)
		printf("# %u replies, %u over, %u passed\n", reply, over,
		       pass);
	mem_deref(rl);
}


static unsigned count(FILE *f, const char *a, const char *b)
{
	char line[512];
	unsigned n = 0;

	rewind(f);
	while (fgets(line, sizeof(line), f)) {
		if (strstr(line, a) && (!b || strstr(line, b)))
			++n;
	}

	return n;
}


static void test_episode(void)
{
	struct ratelimit *rl = limiter(100, 10, NULL);
	const uint64_t t = ratelimit_now();
	struct ratelimit_stats st;
	FILE *f = tmpfile();

	if (!rl || !f) {
		CHECK(false, "limiter and tmpfile");
		mem_deref(rl);
		return;
	}

	log_set_level(LOG_INFO);
	log_set_sink(f);
	(void)passes(rl, "203.0.113.5", 1000, t);
	(void)passes(rl, "203.0.113.5", 1000, t + 500 * MS);
	ratelimit_sweep(rl, t + 1500 * MS);
	ratelimit_stats(rl, &st);
	CHECK(st.limited == 1, "1 s after the last one over: still "
	      "limited");
	ratelimit_sweep(rl, t + 2600 * MS);
	ratelimit_stats(rl, &st);
	CHECK(st.limited == 0, "2 s after: the episode ended (sweep)");
	log_set_sink(NULL);

	CHECK(count(f, "lvl=warn mod=stack ev=rate_limit src=203.0.113.5 "
		    "rate=100 burst=10 action=drop", NULL) == 1,
	      "one line when it started (ev=rate_limit)");
	CHECK(count(f, "ev=rate_limit_end src=203.0.113.5 dropped=1980 "
		    "answered=0 seconds=1", NULL) == 1,
	      "one summary when it ended: ev=rate_limit_end dropped=1980");
	CHECK(count(f, "ev=rate_limit", NULL) == 2, "and no other line");

	/* IPv6 is named by its /64 */
	log_set_sink(f);
	(void)passes(rl, "2001:db8:1:2::99", 20, t);
	ratelimit_flush(rl);
	log_set_sink(NULL);
	log_set_level(LOG_ERROR);
	CHECK(count(f, "ev=rate_limit src=2001:db8:1:2::/64", NULL) == 1 &&
	      count(f, "ev=rate_limit_end src=2001:db8:1:2::/64", NULL) == 1,
	      "an IPv6 source is logged as its /64; flush ends the episode");
	fclose(f);
	mem_deref(rl);
}


static void test_bounds(void)
{
	struct stack_ratelimit cfg;
	struct ratelimit *rl = NULL;
	struct ratelimit_stats st;
	struct mallinfo2 m0, m1;
	const uint64_t t = ratelimit_now();
	struct sa flooder = addr("192.0.2.66"), a;
	unsigned i, flood_pass = 0;

	ratelimit_config_default(&cfg);
	cfg.rate = 100;
	cfg.burst = 50;
	cfg.max_sources = 1024;
	cfg.ntrusted = 0;
	if (ratelimit_alloc(&rl, &cfg)) {
		CHECK(false, "limiter");
		return;
	}

	m0 = mallinfo2();
	sa_init(&a, AF_INET);
	for (i = 0; i < 300000; i++) {
		const uint64_t now = t + (uint64_t)i * 10000;  /* 3 s */

		/* spoofed sources, one datagram each */
		a.u.in.sin_addr.s_addr = htonl(0x0a000000 + i);
		(void)ratelimit_check(rl, &a, now);

		/* and a flooder at 1/10 of that (10,000/s) */
		if (i % 10 == 0)
			flood_pass += ratelimit_check(rl, &flooder, now) ==
				RATELIMIT_PASS;
	}
	m1 = mallinfo2();
	ratelimit_stats(rl, &st);
	printf("# 300,000 spoofed sources: %u buckets of %u, %llu evicted "
	       "before full, flooder passed %u of 30,000\n", st.sources,
	       st.size, (unsigned long long)st.evicted, flood_pass);
	CHECK(st.size == 1024 && st.sources == 1024,
	      "300,000 sources in a table of 1024: 1024 buckets, no more");
	CHECK(m1.uordblks == m0.uordblks, "the heap did not grow");
	CHECK(flood_pass >= 50 && flood_pass <= 50 + 300 + 2,
	      "the flooder among them stayed limited (burst + 100/s)");
	CHECK(st.episodes == 1, "only the flooder went over");

	/* off, then on again */
	cfg.on = false;
	CHECK(!ratelimit_set(rl, &cfg) && passes(rl, "192.0.2.66", 500,
						 t + 4 * SEC) == 500,
	      "off: nothing limited");
	ratelimit_stats(rl, &st);
	CHECK(st.size == 0 && st.limited == 0, "off: the table is freed");
	cfg.on = true;
	CHECK(!ratelimit_set(rl, &cfg) && passes(rl, "192.0.2.66", 500,
						 t + 5 * SEC) == 50,
	      "on again: limited again");
	mem_deref(rl);
}


int main(void)
{
	int err;

	printf("TAP version 13\n");
	err = libre_init();
	CHECK(!err, "libre_init");
	log_set_level(LOG_ERROR);    /* test_episode reads its lines */

	test_config();
	test_bucket();
	test_trusted();
	test_503();
	test_episode();
	test_bounds();

	libre_close();
	printf("1..%d\n", ntest);

	return nfail ? 1 : 0;
}
