/**
 * test/unit/test_locredis.c  The remote store's seam, without a Redis
 *
 * TAP program. Covers what needs no redis-server (test/redis/ runs the
 * real one): the store URLs location_open() refuses (EINVAL: no "//",
 * a host name, a bad port or database, trailing text); a Redis store
 * on a port where nothing listens opens at once (the connection is
 * the loop's business), says it is remote, refuses changes and queries
 * with ENOTCONN while it is not connected, has no memory to look up
 * (ENOTSUP), retries in the background without a crash, and frees;
 * location_query() on a memory store answers later, never from inside,
 * with the set location_lookup() gives. Leaks: run under valgrind by
 * meson.
 */
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <re.h>
#include "sipstack.h"

#include "testutil.h"


struct waiter {
	unsigned done;
	int err;
	size_t count;
	bool inside;          /* set around the call that starts it */
	bool from_inside;     /* the handler ran while inside was set */
};


static void done_handler(int err, const struct loc_set *set, void *arg)
{
	struct waiter *w = arg;

	++w->done;
	w->err = err;
	w->count = loc_set_count(set);
	w->from_inside = w->inside;
	re_cancel();
}


/* A TCP port of 127.0.0.1 where nothing listens (bound, then closed) */
static unsigned closed_port(void)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	unsigned port = 0;
	int fd;

	fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0)
		return 0;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (!bind(fd, (struct sockaddr *)&sin, sizeof(sin)) &&
	    !getsockname(fd, (struct sockaddr *)&sin, &len))
		port = ntohs(sin.sin_port);
	close(fd);

	return port;
}


static void one_change(struct loc_change *chg, struct loc_contact *c,
		       const char *aor, const char *contact)
{
	memset(chg, 0, sizeof(*chg));
	memset(c, 0, sizeof(*c));
	pl_set_str(&c->uri, contact);
	c->expires = 600;
	c->q = 1000;
	pl_set_str(&chg->aor, aor);
	pl_set_str(&chg->callid, "unit-locredis");
	chg->cseq = 1;
	chg->contactv = c;
	chg->contactc = 1;
}


static void test_urls(void)
{
	static const char *bad[] = {
		"redis:127.0.0.1:6379",          /* no // */
		"redis://redis.example.com",     /* a name: would block */
		"redis://127.0.0.1:port",
		"redis://127.0.0.1:6379/zero",
		"redis://127.0.0.1:6379/0/x",
		"redis://127.0.0.1:0",
		"redis://user:pw@127.0.0.1",     /* no user names */
		"redis://",
	};
	struct location *loc = NULL;
	size_t i;
	unsigned refused = 0;

	for (i = 0; i < ARRAY_SIZE(bad); i++) {
		if (location_open(&loc, bad[i], NULL) == EINVAL)
			++refused;
		else
			loc = mem_deref(loc);
	}

	CHECK(refused == ARRAY_SIZE(bad), "bad Redis URLs refused (EINVAL)");
}


static void test_unreachable(void)
{
	struct location *loc = NULL;
	struct loc_change chg;
	struct loc_contact c;
	struct loc_set *set = NULL;
	struct waiter w;
	char url[64];
	unsigned port = closed_port();
	int err;

	CHECK(port != 0, "a closed port of 127.0.0.1");
	re_snprintf(url, sizeof(url), "redis://:secret@127.0.0.1:%u/3",
		    port);

	err = location_open(&loc, url, NULL);
	CHECK(!err && loc, "a Redis store opens at once, Redis unreachable");
	if (err)
		return;

	CHECK(location_remote(loc), "it is remote");

	one_change(&chg, &c, "sip:rita@example.com",
		   "sip:rita@127.0.0.1:5999");
	memset(&w, 0, sizeof(w));
	CHECK(location_apply(loc, &chg, done_handler, &w) == ENOTCONN,
	      "a change while not connected: ENOTCONN");
	CHECK(location_query(loc, "sip:rita@example.com", done_handler,
			     &w) == ENOTCONN,
	      "a query while not connected: ENOTCONN");
	CHECK(location_lookup(&set, loc, "sip:rita@example.com") == ENOTSUP,
	      "no memory to look up: ENOTSUP");

	/* connection attempts fail in the background, with a back-off */
	(void)run_loop(400);
	CHECK(w.done == 0, "no done handler was called");
	CHECK(location_apply(loc, &chg, done_handler, &w) == ENOTCONN,
	      "still ENOTCONN after the retries");

	chg.contactc = 0;
	chg.wildcard = false;
	pl_set_str(&chg.callid, "");
	CHECK(location_apply(loc, &chg, done_handler, &w) == EINVAL,
	      "a change without a Call-ID: EINVAL before the store");

	loc = mem_deref(loc);
	CHECK(w.done == 0, "freed: nothing was pending, nothing called");
}


static void test_query_local(void)
{
	struct location *loc = NULL;
	struct loc_change chg;
	struct loc_contact c;
	struct waiter w;
	int err;

	err = location_open(&loc, "memory:", NULL);
	CHECK(!err, "memory store");
	if (err)
		return;

	CHECK(!location_remote(loc), "it is local");

	one_change(&chg, &c, "sip:quin@example.com",
		   "sip:quin@127.0.0.1:5998");
	memset(&w, 0, sizeof(w));
	err = location_apply(loc, &chg, done_handler, &w);
	CHECK(!err && run_loop(5000) && w.done == 1 && !w.err,
	      "one binding stored");

	memset(&w, 0, sizeof(w));
	w.inside = true;
	err = location_query(loc, "sip:quin@example.com", done_handler, &w);
	w.inside = false;
	CHECK(!err && w.done == 0, "location_query: not answered inside");
	CHECK(run_loop(5000) && w.done == 1 && !w.err && w.count == 1 &&
	      !w.from_inside, "answered at the next turn, with the binding");

	memset(&w, 0, sizeof(w));
	err = location_query(loc, "sip:nobody@example.com", done_handler,
			     &w);
	CHECK(!err && run_loop(5000) && w.done == 1 && w.count == 0,
	      "an AOR without bindings: an empty set");

	/* the set is made when asked: it is delivered all the same */
	memset(&w, 0, sizeof(w));
	err = location_query(loc, "sip:quin@example.com", done_handler, &w);
	loc = mem_deref(loc);
	CHECK(!err && run_loop(5000) && w.done == 1 && w.count == 1,
	      "a query pending when the store is freed is answered");
}


int main(void)
{
	int err;

	err = libre_init();
	if (err)
		return 1;

	log_set_level(LOG_WARN);
	tmr_init(&watchdog);

	test_urls();
	test_unreachable();
	test_query_local();

	libre_close();

	printf("1..%d\n", ntest);

	return nfail ? 1 : 0;
}
