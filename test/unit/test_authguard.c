/**
 * test/unit/test_authguard.c  Limits on password guessing, and log floods
 *
 * struct authguard (server/registrar/authguard.c) driven directly: bans after
 * src_failures, the admission gate, the unban by timer on libre's loop,
 * the doubled second ban, manual unban, the bucket draining over the
 * window, a slowed user and the addresses exempt from it, failures that
 * were not checked, bounded tables (max_entries) that never evict a ban,
 * unusable addresses and names. Then server/core/loglimit.c: 5 lines per
 * event and source, 50 per event, the suppressed=N summaries adding up.
 * Leak-checked with libre's mem_get_stat (and under valgrind by meson).
 */
#include <string.h>
#include <stdlib.h>
#include <stdio.h>
#include <unistd.h>
#include <re.h>
#include "sipstack.h"


static int ntest;
static int nfail;

#define CHECK(cond, name) do {                                     \
	++ntest;                                                   \
	if (cond) printf("ok %d - %s\n", ntest, name);             \
	else { ++nfail; printf("not ok %d - %s  # %s:%d\n", ntest, \
			       name, __FILE__, __LINE__); }        \
} while (0)


static struct sa addr(const char *ip)
{
	struct sa a;

	(void)sa_set_str(&a, ip, 5060);

	return a;
}


static void fail_n(struct authguard *g, const char *ip, const char *user,
		   unsigned n, bool checked)
{
	struct sa a = addr(ip);
	struct pl u;
	unsigned i;

	pl_set_str(&u, user);
	for (i = 0; i < n; i++)
		authguard_failed(g, &a, &u, checked);
}


static bool banned(struct authguard *g, const char *ip)
{
	struct sa a = addr(ip);

	return authguard_banned(g, &a);
}


static int count_ban(const struct sa *a, uint32_t remaining,
		     uint32_t failures, uint32_t bans, void *arg)
{
	unsigned *n = arg;
	(void)a;
	(void)remaining;
	(void)failures;
	(void)bans;

	++*n;

	return 0;
}


static void stop_loop(void *arg)
{
	(void)arg;
	re_cancel();
}


static void run_loop(uint32_t ms)
{
	struct tmr t;

	tmr_init(&t);
	tmr_start(&t, ms, stop_loop, NULL);
	(void)re_main(NULL);
	tmr_cancel(&t);
}


static void test_bans(void)
{
	struct authguard_config cfg;
	struct authguard_stats st;
	struct authguard *g = NULL;
	struct sa a = addr("192.0.2.1"), a2 = addr("192.0.2.1");
	unsigned n = 0;
	int err;

	authguard_config_default(&cfg);
	CHECK(cfg.src_failures == 10 && cfg.ban_time == 900 &&
	      cfg.user_failures == 20 && cfg.user_delay_max == 60,
	      "defaults: 10 failures, 900 s, 20 per user, 60 s");

	cfg.src_failures = 3;
	cfg.ban_time = 1;
	cfg.user_failures = 0;
	err = authguard_alloc(&g, &cfg);
	CHECK(!err, "authguard_alloc");

	fail_n(g, "192.0.2.1", "alice", 2, true);
	CHECK(!banned(g, "192.0.2.1") && authguard_admit(&a, g),
	      "2 failures: not banned, admitted");
	fail_n(g, "192.0.2.1", "bob", 1, false);
	sa_set_port(&a2, 7777);
	CHECK(banned(g, "192.0.2.1") && !authguard_admit(&a2, g),
	      "3rd failure (any user, checked or not): banned, any port "
	      "dropped");
	CHECK(!banned(g, "192.0.2.2"), "another address is not");
	(void)authguard_bans(g, count_ban, &n);
	authguard_stats(g, &st);
	CHECK(n == 1 && st.banned == 1 && st.bans == 1 && st.dropped == 1,
	      "one ban listed, counted; one request dropped");

	fail_n(g, "192.0.2.1", "alice", 5, true);
	authguard_stats(g, &st);
	CHECK(st.bans == 1, "failures while banned ban no more");

	run_loop(1300);
	CHECK(!banned(g, "192.0.2.1"), "the ban ends after ban_time (timer "
	      "on the loop)");
	authguard_stats(g, &st);
	CHECK(st.unbans == 1 && st.banned == 0, "unban counted");

	fail_n(g, "192.0.2.1", "alice", 3, true);
	CHECK(banned(g, "192.0.2.1"), "banned again after 3 new failures "
	      "(the bucket was emptied)");
	run_loop(1300);
	CHECK(banned(g, "192.0.2.1"), "the second ban lasts longer (2 s)");
	CHECK(!authguard_unban(g, &a) && !banned(g, "192.0.2.1"),
	      "manual unban");
	CHECK(authguard_unban(g, &a) == ENOENT, "unban of an address not "
	      "banned: ENOENT");

	mem_deref(g);
}


static void test_drain(void)
{
	struct authguard_config cfg;
	struct authguard *g = NULL;

	authguard_config_default(&cfg);
	cfg.src_failures = 4;
	cfg.window = 1;          /* drains 4 per second */
	cfg.user_failures = 0;
	(void)authguard_alloc(&g, &cfg);

	fail_n(g, "198.51.100.1", "x", 3, true);
	(void)usleep(600 * 1000);
	fail_n(g, "198.51.100.1", "x", 1, true);
	CHECK(!banned(g, "198.51.100.1"), "failures drain over the window: "
	      "3, 0.6 s, 1 more: not banned");
	fail_n(g, "198.51.100.1", "x", 3, true);
	CHECK(banned(g, "198.51.100.1"), "a burst over the rate: banned");
	mem_deref(g);

	cfg.src_failures = 0;
	(void)authguard_alloc(&g, &cfg);
	fail_n(g, "198.51.100.1", "x", 50, true);
	CHECK(!banned(g, "198.51.100.1"), "src_failures 0: never banned");
	mem_deref(g);
}


static bool allowed(struct authguard *g, const char *ip, const char *user)
{
	struct sa a = addr(ip);
	struct pl u;

	pl_set_str(&u, user);

	return authguard_user_allowed(g, &a, &u);
}


static void test_users(void)
{
	struct authguard_config cfg;
	struct authguard *g = NULL;
	struct sa good = addr("203.0.113.9");
	struct pl alice = PL("alice");

	authguard_config_default(&cfg);
	cfg.src_failures = 0;
	cfg.user_failures = 3;
	cfg.user_delay_max = 2;
	(void)authguard_alloc(&g, &cfg);

	authguard_succeeded(g, &good, &alice);
	fail_n(g, "203.0.113.9", "alice", 10, true);
	CHECK(allowed(g, "203.0.113.1", "alice"), "failures from an address "
	      "alice authenticated from do not slow her");

	fail_n(g, "203.0.113.1", "alice", 2, true);
	fail_n(g, "203.0.113.2", "alice", 5, false);
	CHECK(allowed(g, "203.0.113.3", "alice"), "2 checked failures (and "
	      "unchecked ones): not slowed");
	fail_n(g, "203.0.113.3", "alice", 1, true);
	CHECK(!allowed(g, "203.0.113.4", "alice") &&
	      !allowed(g, "203.0.113.1", "alice"), "3rd failure from "
	      "anywhere: alice slowed for every new address");
	CHECK(allowed(g, "203.0.113.9", "alice"), "not for her known "
	      "address");
	CHECK(allowed(g, "203.0.113.4", "bob"), "nor for bob");

	(void)usleep(1100 * 1000);
	CHECK(allowed(g, "203.0.113.4", "alice"), "one check after the "
	      "delay (1 s)");
	fail_n(g, "203.0.113.4", "alice", 1, true);
	(void)usleep(1100 * 1000);
	CHECK(!allowed(g, "203.0.113.4", "alice"), "a further failure "
	      "doubles the delay (2 s)");
	fail_n(g, "203.0.113.4", "alice", 3, true);
	(void)usleep(2100 * 1000);
	CHECK(allowed(g, "203.0.113.4", "alice"), "the delay is capped at "
	      "user_delay_max (2 s)");
	mem_deref(g);
}


static void test_bounds(void)
{
	struct authguard_config cfg;
	struct authguard_stats st;
	struct authguard *g = NULL;
	char ip[32];
	int i;

	authguard_config_default(&cfg);
	cfg.src_failures = 2;
	cfg.max_entries = 16;
	(void)authguard_alloc(&g, &cfg);

	for (i = 0; i < 16; i++) {
		(void)re_snprintf(ip, sizeof(ip), "10.0.0.%d", i);
		fail_n(g, ip, "u", 2, true);
	}
	authguard_stats(g, &st);
	CHECK(st.banned == 16, "16 addresses banned: the table is full");
	fail_n(g, "10.0.1.1", "u", 2, true);
	authguard_stats(g, &st);
	CHECK(st.banned == 16 && st.untracked >= 1 &&
	      banned(g, "10.0.0.0"), "a 17th address goes untracked; no "
	      "ban is evicted");
	mem_deref(g);

	(void)authguard_alloc(&g, &cfg);
	for (i = 0; i < 100; i++) {
		(void)re_snprintf(ip, sizeof(ip), "10.0.2.%d", i);
		fail_n(g, ip, "u", 1, true);
	}
	fail_n(g, "10.0.2.99", "u", 1, true);
	CHECK(banned(g, "10.0.2.99"), "100 addresses in a table of 16: the "
	      "newest kept (2nd failure bans)");
	fail_n(g, "10.0.2.0", "u", 1, true);
	CHECK(!banned(g, "10.0.2.0"), "the oldest forgotten");
	mem_deref(g);

	(void)authguard_alloc(&g, NULL);
	{
		struct sa none;
		struct pl empty = PL(""), huge;
		char big[300];

		memset(big, 'a', sizeof(big));
		huge.p = big;
		huge.l = sizeof(big);
		sa_init(&none, AF_UNSPEC);
		authguard_failed(g, &none, &empty, true);
		authguard_failed(g, NULL, &huge, true);
		authguard_succeeded(g, &none, &huge);
		CHECK(!authguard_banned(g, &none) &&
		      authguard_user_allowed(g, NULL, &huge) &&
		      authguard_unban(g, &none) == EINVAL,
		      "no address, empty and over-long names: ignored");
	}
	mem_deref(g);

	CHECK(authguard_alloc(&g, &(struct authguard_config){
		.src_failures = 1, .window = 0, .ban_time = 1,
		.max_entries = 1}) == EINVAL, "window 0 refused");
}


/* ------------------------------------------------------------------ *
 * server/core/loglimit.c
 * ------------------------------------------------------------------ */

static unsigned count_lines(FILE *f, const char *a, const char *b,
			    unsigned long *suppressed)
{
	char line[1024];
	unsigned n = 0;

	*suppressed = 0;
	rewind(f);
	while (fgets(line, sizeof(line), f)) {
		const char *s = strstr(line, "suppressed=");

		if (!strstr(line, a) || (b && !strstr(line, b)))
			continue;
		if (s)
			*suppressed += strtoul(s + 11, NULL, 10);
		else
			++n;
	}

	return n;
}


static void test_loglimit(void)
{
	static const char *ev = "flood";
	struct sa a = addr("192.0.2.50"), b;
	unsigned long held;
	unsigned n, i;
	char ip[32];
	FILE *f = tmpfile();

	if (!f) {
		CHECK(false, "tmpfile");
		return;
	}

	log_set_sink(f);
	loglimit_attach();

	for (i = 0; i < 1000; i++)
		slog_src(LOG_WARN, "test", ev, &a, NULL, "src=%j i=%u", &a,
			 i);
	for (i = 0; i < 200; i++) {
		(void)re_snprintf(ip, sizeof(ip), "198.18.%u.%u", i / 200,
				  i % 200);
		b = addr(ip);
		slog_src(LOG_WARN, "test", ev, &b, NULL, "i=%u", i);
	}
	loglimit_flush();
	log_set_sink(NULL);

	n = count_lines(f, "ev=flood", "192.0.2.50", &held);
	CHECK(n == 5 && held == 995, "one source: 5 lines, then one "
	      "summary suppressed=995");
	n = count_lines(f, "ev=flood", NULL, &held);
	CHECK(n == 50 && held == 1150, "200 more sources: 50 lines per "
	      "event in all, the rest summarised (src=*), adding up to "
	      "1200");
	fclose(f);
}


int main(void)
{
	struct memstat before, after;
	int merr;
	int err;

	err = libre_init();
	if (err)
		return 1;

	log_set_level(LOG_WARN);
	merr = mem_get_stat(&before);

	test_bans();
	test_drain();
	test_users();
	test_bounds();
	test_loglimit();

	/* Debian's libre keeps no statistics (ENOSYS): valgrind checks */
	if (!merr && !mem_get_stat(&after))
		CHECK(after.blocks_cur == before.blocks_cur, "no libre memory "
		      "left allocated");
	else
		printf("# mem_get_stat: no statistics in this libre build; "
		       "the valgrind run checks leaks\n");

	libre_close();
	printf("1..%d\n", ntest);

	return nfail ? 1 : 0;
}
