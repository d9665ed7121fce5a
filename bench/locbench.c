/**
 * bench/locbench.c  Durable location_apply() rate of the sqlite store
 *
 * Prints how many REGISTER-sized changes per second the location store
 * makes durable: N distinct AORs (one Contact each, with Call-ID, Path,
 * received and User-Agent like a real REGISTER) are applied on the loop
 * and the clock stops when the last done handler has run, i.e. when
 * everything is committed (WAL, synchronous=FULL). Two shapes:
 *
 *   window 0   (default) every change queued at once, then the loop runs
 *   window W   at most W changes in flight, a new one per completion
 *              (a server with W REGISTERs waiting for their 200)
 *
 * Usage: locbench [N] [window] [dir]   (dir: where the database goes;
 * default a mkdtemp() directory under /tmp, removed at the end)
 *
 * A benchmark, not a test: it prints figures and asserts nothing.
 */
#include <string.h>
#include <stdlib.h>
#include <stdio.h>
#include <unistd.h>
#include <time.h>
#include <re.h>
#include "sipstack.h"


struct bench {
	struct location *loc;
	unsigned n;
	unsigned window;
	unsigned sent;
	unsigned done;
	unsigned errors;
	uint64_t apply_ns;      /* time spent inside location_apply() */
};


static uint64_t now_ns(void)
{
	struct timespec ts;

	(void)clock_gettime(CLOCK_MONOTONIC, &ts);

	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}


static void done_handler(int err, const struct loc_set *set, void *arg);


static int send_one(struct bench *b)
{
	struct loc_contact c;
	struct loc_change chg;
	char aor[64], uri[64], callid[32];
	unsigned i = b->sent;
	uint64_t t0;
	int err;

	(void)re_snprintf(aor, sizeof(aor), "sip:user%u@example.com", i);
	(void)re_snprintf(uri, sizeof(uri), "sip:user%u@10.%u.%u.%u:5060",
			  i, (i >> 16) & 0xff, (i >> 8) & 0xff, i & 0xff);
	(void)re_snprintf(callid, sizeof(callid), "%08x-bench", i);

	memset(&c, 0, sizeof(c));
	pl_set_str(&c.uri, uri);
	c.expires = 3600;
	c.q = 1000;

	memset(&chg, 0, sizeof(chg));
	pl_set_str(&chg.aor, aor);
	pl_set_str(&chg.callid, callid);
	chg.cseq = 1;
	chg.contactv = &c;
	chg.contactc = 1;
	pl_set_str(&chg.path, "<sip:edge.example.net;lr>");
	pl_set_str(&chg.received, "sip:192.0.2.7:5060");
	pl_set_str(&chg.user_agent, "bench/1.0");

	t0 = now_ns();
	err = location_apply(b->loc, &chg, done_handler, b);
	b->apply_ns += now_ns() - t0;
	if (!err)
		++b->sent;

	return err;
}


static void done_handler(int err, const struct loc_set *set, void *arg)
{
	struct bench *b = arg;
	(void)set;

	if (err)
		++b->errors;

	if (++b->done == b->n) {
		re_cancel();
		return;
	}

	if (b->window && b->sent < b->n)
		(void)send_one(b);
}


int main(int argc, char *argv[])
{
	struct location_stats st;
	struct bench b;
	char dir[256], path[320], spec[340];
	bool own_dir = false;
	uint64_t t0, t1;
	double secs;
	int err;

	memset(&b, 0, sizeof(b));
	b.n = argc > 1 ? (unsigned)strtoul(argv[1], NULL, 10) : 100000;
	b.window = argc > 2 ? (unsigned)strtoul(argv[2], NULL, 10) : 0;
	if (!b.n)
		return 2;

	if (argc > 3) {
		str_ncpy(dir, argv[3], sizeof(dir));
	}
	else {
		str_ncpy(dir, "/tmp/locbench-XXXXXX", sizeof(dir));
		if (!mkdtemp(dir)) {
			perror("mkdtemp");
			return 1;
		}
		own_dir = true;
	}

	(void)re_snprintf(path, sizeof(path), "%s/locbench.db", dir);
	(void)unlink(path);
	(void)re_snprintf(spec, sizeof(spec), "sqlite:%s", path);

	err = libre_init();
	if (err)
		return 1;

	log_set_level(LOG_WARN);

	err = location_open(&b.loc, spec, NULL);
	if (err) {
		re_fprintf(stderr, "location_open %s: %m\n", spec, err);
		goto out;
	}

	t0 = now_ns();
	while (b.sent < (b.window ? min(b.window, b.n) : b.n)) {
		err = send_one(&b);
		if (err) {
			re_fprintf(stderr, "location_apply: %m\n", err);
			goto out;
		}
	}
	(void)re_main(NULL);
	t1 = now_ns();

	location_stats(b.loc, &st);
	secs = (double)(t1 - t0) / 1e9;

	/* stdio: re_printf has no float precision */
	printf("locbench: %u durable location_apply (sqlite, WAL, "
	       "synchronous=FULL), window %u%s\n", b.n, b.window,
	       b.window ? "" : " (all at once)");
	printf("  %.3f s  =>  %.0f applies/s committed\n", secs,
	       (double)b.n / secs);
	printf("  commits %llu, writes %llu, %.1f writes/commit, "
	       "errors %u\n", (unsigned long long)st.commits,
	       (unsigned long long)st.ops,
	       st.commits ? (double)st.ops / (double)st.commits : 0.0,
	       b.errors);
	printf("  loop time in location_apply: %.2f us/apply\n",
	       (double)b.apply_ns / 1e3 / b.n);

 out:
	mem_deref(b.loc);
	libre_close();

	(void)unlink(path);
	(void)re_snprintf(path, sizeof(path), "%s/locbench.db-wal", dir);
	(void)unlink(path);
	(void)re_snprintf(path, sizeof(path), "%s/locbench.db-shm", dir);
	(void)unlink(path);
	if (own_dir)
		(void)rmdir(dir);

	return err ? 1 : 0;
}
