/**
 * test/unit/test_metrics.c  The metrics registry, its format and endpoint
 *
 * server/core/metrics.c: the bounded label values (methods, transports,
 * status classes), histograms (bucket edges, the cumulative writer),
 * number formatting, collectors (order, removal, outliving the
 * registry), metrics defined at run time (names, help, the same name
 * again, a type clash, the cap) and the process collector;
 * stack_metrics.c through a real stack answering OPTIONS from a libre
 * client; metrics_http.c through a raw TCP client in the same loop (200,
 * 404, 405). TAP output; leaks: run under valgrind by meson.
 */
#include <string.h>
#include <stdlib.h>
#include <math.h>
#include <re.h>
#include "sipstack.h"

#include "testutil.h"


/* the text a writer produced, NUL-terminated (a mem string) */
static char *text_of(struct mbuf *mb)
{
	char *s = NULL;

	mb->pos = 0;
	(void)mbuf_strdup(mb, &s, mb->end);

	return s;
}


static bool has(const char *text, const char *line)
{
	return text && strstr(text, line) != NULL;
}


/* ------------------------------------------------------------------ *
 * Labels
 * ------------------------------------------------------------------ */

static void test_labels(void)
{
	static const char *names[] = {
		"INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER",
		"MESSAGE", "PRACK", "UPDATE", "INFO", "REFER", "SUBSCRIBE",
		"NOTIFY", "PUBLISH"
	};
	static const char *others[] = {
		"", "FOO", "invite", "INVITEX", "INVIT", "REGISTE", "SUBSCRIBEX"
	};
	bool ok = true;
	struct pl pl;
	size_t i;

	for (i = 0; i < ARRAY_SIZE(names); i++) {
		pl_set_str(&pl, names[i]);
		ok &= metrics_method(&pl) == (enum metrics_method)i &&
			!strcmp(metrics_method_name(metrics_method(&pl)),
				names[i]);
	}
	CHECK(ok, "each method of the list maps to itself");

	ok = true;
	for (i = 0; i < ARRAY_SIZE(others); i++) {
		pl_set_str(&pl, others[i]);
		ok &= metrics_method(&pl) == METRICS_OTHER;
	}
	CHECK(ok && metrics_method(NULL) == METRICS_OTHER &&
	      !strcmp(metrics_method_name(METRICS_OTHER), "other"),
	      "other methods (and case variants) map to \"other\"");
	CHECK(!strcmp(metrics_method_name(METRICS_METHODS), "other"),
	      "an out-of-range method is \"other\"");

	CHECK(!strcmp(metrics_transport_name(SIP_TRANSP_UDP), "udp") &&
	      !strcmp(metrics_transport_name(SIP_TRANSP_TCP), "tcp") &&
	      !strcmp(metrics_transport_name(SIP_TRANSP_TLS), "tls") &&
	      !strcmp(metrics_transport_name(SIP_TRANSP_WS), "ws") &&
	      !strcmp(metrics_transport_name(SIP_TRANSP_WSS), "wss") &&
	      !strcmp(metrics_transport_name(SIP_TRANSP_NONE), "other"),
	      "transport names");

	CHECK(metrics_class(100) == 0 && metrics_class(199) == 0 &&
	      metrics_class(200) == 1 && metrics_class(487) == 3 &&
	      metrics_class(699) == 5, "status classes 1xx..6xx -> 0..5");
}


/* ------------------------------------------------------------------ *
 * Histograms and numbers
 * ------------------------------------------------------------------ */

static void test_hist(void)
{
	static const double le[] = {0.1, 1, 10};
	struct metrics_hist h;
	struct mbuf *mb = mbuf_alloc(512);
	char *s;

	metrics_hist_init(&h, le, ARRAY_SIZE(le));
	metrics_hist_observe(&h, 0.05);
	metrics_hist_observe(&h, 0.1);     /* on the edge: le is <= */
	metrics_hist_observe(&h, 0.5);
	metrics_hist_observe(&h, 10);
	metrics_hist_observe(&h, 11);
	CHECK(h.bucket[0] == 2 && h.bucket[1] == 1 && h.bucket[2] == 1 &&
	      h.bucket[3] == 1 && h.count == 5,
	      "observations land in their bucket (edges included)");

	(void)metrics_hist_write(mb, "t_seconds", NULL, &h);
	s = text_of(mb);
	CHECK(s && !strcmp(s,
	      "t_seconds_bucket{le=\"0.1\"} 2\n"
	      "t_seconds_bucket{le=\"1\"} 3\n"
	      "t_seconds_bucket{le=\"10\"} 4\n"
	      "t_seconds_bucket{le=\"+Inf\"} 5\n"
	      "t_seconds_sum 21.65\n"
	      "t_seconds_count 5\n"), "histogram written cumulative, "
	      "+Inf = count, sum");
	mem_deref(s);

	mbuf_reset(mb);
	(void)metrics_hist_write(mb, "t_seconds", "kind=\"a\"", &h);
	s = text_of(mb);
	CHECK(has(s, "t_seconds_bucket{kind=\"a\",le=\"0.1\"} 2\n") &&
	      has(s, "t_seconds_sum{kind=\"a\"} 21.65\n") &&
	      has(s, "t_seconds_count{kind=\"a\"} 5\n"),
	      "histogram with labels: le appended");
	mem_deref(s);

	metrics_hist_init_seconds(&h);
	CHECK(h.n == 19 && h.le[0] == 0.00001 && h.le[18] == 10,
	      "the seconds bounds: 10 us .. 10 s");
	mbuf_reset(mb);
	(void)metrics_hist_write(mb, "s", NULL, &h);
	s = text_of(mb);
	CHECK(has(s, "s_bucket{le=\"1e-05\"} 0\n") &&
	      has(s, "s_bucket{le=\"0.00025\"} 0\n") &&
	      has(s, "s_bucket{le=\"2.5\"} 0\n"),
	      "bounds written in their shortest form");
	mem_deref(s);

	mbuf_reset(mb);
	(void)metrics_sample(mb, "a", NULL, 3);
	(void)metrics_sample(mb, "b", NULL, 0.0001);
	(void)metrics_sample(mb, "c", "x=\"y\"", NAN);
	(void)metrics_sample(mb, "d", NULL, INFINITY);
	(void)metrics_sample(mb, "e", NULL, -INFINITY);
	(void)metrics_sample(mb, "f", NULL, -2.5);
	(void)metrics_sample_u64(mb, "g", NULL, 18446744073709551615ULL);
	s = text_of(mb);
	CHECK(s && !strcmp(s, "a 3\nb 0.0001\nc{x=\"y\"} NaN\nd +Inf\n"
			   "e -Inf\nf -2.5\ng 18446744073709551615\n"),
	      "numbers: integers, shortest decimals, NaN, +Inf, -Inf, u64");
	mem_deref(s);

	mbuf_reset(mb);
	(void)metrics_family(mb, "h_total", METRICS_COUNTER, "a \\ b");
	s = text_of(mb);
	CHECK(s && !strcmp(s, "# HELP h_total a \\\\ b\n"
			   "# TYPE h_total counter\n"),
	      "# HELP escapes a backslash, # TYPE follows");
	mem_deref(s);
	CHECK(metrics_family(mb, "x", (enum metrics_type)7, "h") == EINVAL,
	      "unknown type refused");

	mem_deref(mb);
}


/* ------------------------------------------------------------------ *
 * The registry
 * ------------------------------------------------------------------ */

static int collect_a(struct mbuf *mb, void *arg)
{
	const uint64_t *v = arg;

	return metrics_family(mb, "a_total", METRICS_COUNTER, "A.") |
		metrics_sample_u64(mb, "a_total", NULL, *v);
}


static int collect_b(struct mbuf *mb, void *arg)
{
	(void)arg;

	return metrics_family(mb, "b", METRICS_GAUGE, "B.") |
		metrics_sample_u64(mb, "b", NULL, 7);
}


static int collect_fail(struct mbuf *mb, void *arg)
{
	(void)mb;
	(void)arg;

	return ENOMEM;
}


static void test_registry(void)
{
	struct metrics *m = NULL;
	struct metrics_collector *ca = NULL, *cb = NULL, *cf = NULL;
	struct metric *c1 = NULL, *c2 = NULL, *g = NULL, *x = NULL;
	struct mbuf *mb = mbuf_alloc(1024);
	char name[METRICS_NAME_MAX + 2];
	uint64_t a = 5;
	char *s;
	int i, err;

	CHECK(!metrics_alloc(&m) && m, "metrics_alloc");
	CHECK(!metrics_write(mb, m) && mb->end == 0,
	      "an empty registry writes nothing");

	err  = metrics_collector_add(&ca, m, collect_a, &a);
	err |= metrics_collector_add(&cb, m, collect_b, NULL);
	CHECK(!err, "two collectors added");
	a = 6;
	(void)metrics_write(mb, m);
	s = text_of(mb);
	CHECK(s && !strcmp(s, "# HELP a_total A.\n# TYPE a_total counter\n"
			   "a_total 6\n# HELP b B.\n# TYPE b gauge\nb 7\n"),
	      "collectors write in order, read at scrape time");
	mem_deref(s);

	ca = mem_deref(ca);
	mbuf_reset(mb);
	(void)metrics_write(mb, m);
	s = text_of(mb);
	CHECK(s && !has(s, "a_total") && has(s, "b 7\n"),
	      "a removed collector writes no more");
	mem_deref(s);

	CHECK(!metrics_collector_add(&cf, m, collect_fail, NULL) &&
	      metrics_write(mb, m) == ENOMEM, "a collector's error stops "
	      "the scrape");
	cf = mem_deref(cf);

	/* metrics defined at run time */
	CHECK(!metrics_define(&c1, m, "sipstack_script_n_total", "N.",
			      METRICS_COUNTER), "counter defined");
	CHECK(!metrics_define(&g, m, "sipstack_script_g", "G.",
			      METRICS_GAUGE), "gauge defined");
	CHECK(!metric_add(c1, 2) && !metric_add(c1, 0.5) &&
	      metric_value(c1) == 2.5, "counter adds");
	CHECK(metric_add(c1, -1) == EINVAL && metric_add(c1, NAN) == EINVAL
	      && metric_add(c1, INFINITY) == EINVAL && metric_value(c1) == 2.5,
	      "counter refuses a negative or non-finite step");
	CHECK(metric_set(c1, 1) == EINVAL, "a counter cannot be set");
	CHECK(!metric_set(g, 4) && !metric_add(g, -6) &&
	      metric_value(g) == -2 && metric_set(g, NAN) == EINVAL,
	      "gauge sets, goes up and down, refuses NaN");

	CHECK(!metrics_define(&c2, m, "sipstack_script_n_total",
			      "N again.", METRICS_COUNTER) && c2 == c1 &&
	      metric_value(c2) == 2.5,
	      "the same name again: the same metric, value kept");
	CHECK(metrics_define(&x, m, "sipstack_script_n_total", "x",
			     METRICS_GAUGE) == EPROTOTYPE && !x,
	      "the same name with the other type: EPROTOTYPE");
	CHECK(!strcmp(metric_name(c1), "sipstack_script_n_total") &&
	      metric_type(c1) == METRICS_COUNTER &&
	      metric_type(g) == METRICS_GAUGE, "name and type");

	mbuf_reset(mb);
	(void)metrics_write(mb, m);
	s = text_of(mb);
	CHECK(s && has(s, "b 7\n# HELP sipstack_script_n_total N again.\n"
		       "# TYPE sipstack_script_n_total counter\n"
		       "sipstack_script_n_total 2.5\n"
		       "# HELP sipstack_script_g G.\n"
		       "# TYPE sipstack_script_g gauge\n"
		       "sipstack_script_g -2\n"),
	      "defined metrics after the collectors, help replaced");
	mem_deref(s);

	CHECK(metrics_define(&x, m, "", "h", METRICS_GAUGE) == EINVAL &&
	      metrics_define(&x, m, "1a", "h", METRICS_GAUGE) == EINVAL &&
	      metrics_define(&x, m, "a-b", "h", METRICS_GAUGE) == EINVAL &&
	      metrics_define(&x, m, "a b", "h", METRICS_GAUGE) == EINVAL &&
	      metrics_define(&x, m, "a\"", "h", METRICS_GAUGE) == EINVAL &&
	      metrics_define(&x, m, NULL, "h", METRICS_GAUGE) == EINVAL,
	      "bad names refused");
	memset(name, 'a', sizeof(name));
	name[METRICS_NAME_MAX + 1] = '\0';
	CHECK(metrics_define(&x, m, name, "h", METRICS_GAUGE) == EINVAL,
	      "a name too long refused");
	name[METRICS_NAME_MAX] = '\0';
	CHECK(!metrics_define(&x, m, name, "h", METRICS_GAUGE),
	      "the longest name accepted");
	x = mem_deref(x);
	CHECK(!metrics_define(&x, m, "a:b_9", "h", METRICS_GAUGE),
	      "colons, underscores and digits accepted");
	x = mem_deref(x);
	CHECK(metrics_define(&x, m, "ok", "", METRICS_GAUGE) == EINVAL &&
	      metrics_define(&x, m, "ok", NULL, METRICS_GAUGE) == EINVAL &&
	      metrics_define(&x, m, "ok", "a\nb", METRICS_GAUGE) == EINVAL &&
	      metrics_define(&x, m, "ok", "h", METRICS_HISTOGRAM) == EINVAL,
	      "empty or control-character help, histogram type refused");

	/* 4 defined so far: fill up to the cap */
	err = 0;
	for (i = 4; i < METRICS_DEFINED_MAX && !err; i++) {
		(void)re_snprintf(name, sizeof(name), "m%d", i);
		err = metrics_define(&x, m, name, "h", METRICS_GAUGE);
		x = mem_deref(x);
	}
	CHECK(!err, "METRICS_DEFINED_MAX metrics defined");
	CHECK(metrics_define(&x, m, "one_more", "h", METRICS_GAUGE) ==
	      EOVERFLOW, "one more: EOVERFLOW");
	CHECK(!metrics_define(&x, m, "sipstack_script_g", "G.",
			      METRICS_GAUGE) && x == g,
	      "a name already defined still comes back at the cap");
	x = mem_deref(x);

	/* the registry goes first: what others hold stays usable */
	m = mem_deref(m);
	CHECK(!metric_add(c1, 1) && metric_value(c2) == 3.5,
	      "a metric outlives its registry");
	cb = mem_deref(cb);
	c1 = mem_deref(c1);
	c2 = mem_deref(c2);
	g = mem_deref(g);

	CHECK(!metrics_define(&x, NULL, "n_total", "N.", METRICS_COUNTER) &&
	      !metric_add(x, 1) && metric_value(x) == 1,
	      "a metric of no registry (sipstack --check)");
	CHECK(metrics_define(&c1, NULL, "bad name", "N.", METRICS_COUNTER)
	      == EINVAL, "checked the same without a registry");
	x = mem_deref(x);

	mem_deref(mb);
}


static void test_process(void)
{
	struct mbuf *mb = mbuf_alloc(2048);
	char *s;

	slog(LOG_ERROR, "test", "counted", NULL, NULL);
	CHECK(log_count(LOG_ERROR) >= 1 && log_count((enum log_level)9) == 0,
	      "log_count counts the lines written");

	CHECK(!metrics_process_collect(mb, NULL), "process collector");
	s = text_of(mb);
	CHECK(has(s, "# TYPE process_cpu_seconds_total counter\n"
		  "process_cpu_seconds_total ") &&
	      has(s, "\nprocess_resident_memory_bytes ") &&
	      has(s, "\nprocess_virtual_memory_bytes ") &&
	      has(s, "\nprocess_open_fds ") &&
	      has(s, "\nprocess_max_fds ") &&
	      has(s, "\nprocess_start_time_seconds ") &&
	      has(s, "\nsipstack_build_info{version=\"" SIPSTACK_VERSION
		  "\",libre=\"") &&
	      has(s, "\nsipstack_log_messages_total{level=\"error\"} "),
	      "process_* figures, build info, log lines by level");
	mem_deref(s);
	mem_deref(mb);
}


/* ------------------------------------------------------------------ *
 * The stack's collector: one OPTIONS over UDP from a libre client
 * ------------------------------------------------------------------ */

static uint16_t got_scode;

static void options_resp(int err, const struct sip_msg *msg, void *arg)
{
	(void)arg;

	if (!err && msg && msg->scode < 200)
		return;
	got_scode = err ? 0 : msg->scode;
	re_cancel();
}


static void test_stack(void)
{
	struct stack *st = NULL;
	struct sip *cl = NULL;
	struct sa laddr, dst;
	struct mbuf *mb = mbuf_alloc(4096);
	char uri[96];
	char *s;
	int err;

	err = stack_alloc(&st, NULL);
	CHECK(!err && stack_metrics(st), "a stack has a registry");
	(void)sa_set_str(&laddr, "127.0.0.1", 0);
	err |= stack_listen(st, SIP_TRANSP_UDP, &laddr, NULL);
	err |= stack_start(st);
	err |= sip_transp_laddr(stack_sip(st), &dst, SIP_TRANSP_UDP, NULL);
	err |= sip_alloc(&cl, NULL, 16, 16, 16, "test", NULL, NULL);
	err |= sip_transp_add(cl, SIP_TRANSP_UDP, &laddr);
	CHECK(!err, "stack and client up");

	(void)re_snprintf(uri, sizeof(uri), "sip:stack@%J", &dst);
	err = sip_requestf(NULL, cl, true, "OPTIONS", uri, NULL, NULL, NULL,
			   options_resp, NULL,
			   "To: <%s>\r\n"
			   "From: <sip:t@127.0.0.1>;tag=%x\r\n"
			   "Call-ID: %x\r\n"
			   "CSeq: 1 OPTIONS\r\n"
			   "Content-Length: 0\r\n\r\n",
			   uri, rand_u32(), rand_u32());
	CHECK(!err && run_loop(3000) && got_scode == 200, "OPTIONS -> 200");

	(void)metrics_write(mb, stack_metrics(st));
	s = text_of(mb);
	CHECK(has(s, "\nsipstack_sip_requests_received_total{method="
		  "\"OPTIONS\",transport=\"udp\"} 1\n"),
	      "counted: one OPTIONS received over UDP");
	CHECK(has(s, "\nsipstack_sip_responses_sent_total{method="
		  "\"OPTIONS\",class=\"2xx\",transport=\"udp\"} 1\n"),
	      "counted: one 2xx to OPTIONS sent over UDP");
	CHECK(has(s, "\nsipstack_sip_transactions_completed 1\n") &&
	      has(s, "\nsipstack_sip_requests_pending 0\n") &&
	      has(s, "\nsipstack_dialogs 0\n"),
	      "sizes read at scrape time");
	CHECK(!has(s, "method=\"INVITE\""), "zero series are left out");
	CHECK(has(s, "# TYPE process_cpu_seconds_total counter"),
	      "the process's figures are in the stack's registry");
	mem_deref(s);

	sip_close(cl, true);
	mem_deref(cl);
	mem_deref(st);
	mem_deref(mb);
}


/* ------------------------------------------------------------------ *
 * The endpoint, with a raw TCP client in the same loop
 * ------------------------------------------------------------------ */

struct hget {
	struct tcp_conn *tc;
	const char *req;
	struct mbuf *resp;
	bool done;
};


static void hget_estab(void *arg)
{
	struct hget *g = arg;
	struct mbuf *mb = mbuf_alloc(256);

	(void)mbuf_write_str(mb, g->req);
	mb->pos = 0;
	(void)tcp_send(g->tc, mb);
	mem_deref(mb);
}


/* done once the headers and Content-Length bytes of body are in */
static void hget_recv(struct mbuf *mb, void *arg)
{
	struct hget *g = arg;
	const char *p, *e, *cl;
	size_t clen;

	g->resp->pos = g->resp->end;
	(void)mbuf_write_mem(g->resp, mbuf_buf(mb), mbuf_get_left(mb));
	(void)mbuf_write_u8(g->resp, 0);
	--g->resp->end;

	p = (const char *)g->resp->buf;
	e = strstr(p, "\r\n\r\n");
	cl = strstr(p, "Content-Length: ");
	if (!e || !cl)
		return;
	clen = strtoul(cl + 16, NULL, 10);
	if ((size_t)(p + g->resp->end - (e + 4)) >= clen) {
		g->done = true;
		re_cancel();
	}
}


static void hget_close(int err, void *arg)
{
	(void)err;
	(void)arg;

	re_cancel();
}


/* the response to req (a whole request) as a mem string, or NULL */
static char *http_get(const struct sa *dst, const char *req)
{
	struct hget g;
	char *s = NULL;

	memset(&g, 0, sizeof(g));
	g.req = req;
	g.resp = mbuf_alloc(8192);
	if (!g.resp || tcp_connect(&g.tc, dst, hget_estab, hget_recv,
				   hget_close, &g))
		goto out;

	if (run_loop(3000) && g.done)
		s = text_of(g.resp);

 out:
	mem_deref(g.tc);
	mem_deref(g.resp);

	return s;
}


static void test_http(void)
{
	struct metrics *m = NULL;
	struct metrics_collector *c = NULL;
	struct metrics_http *mh = NULL, *mh2 = NULL;
	struct sa laddr, bound;
	uint64_t a = 42;
	char *s;
	int err;

	err  = metrics_alloc(&m);
	err |= metrics_collector_add(&c, m, collect_a, &a);
	(void)sa_set_str(&laddr, "127.0.0.1", 0);
	err |= metrics_http_listen(&mh, m, &laddr);
	err |= metrics_http_laddr(mh, &bound);
	CHECK(!err && sa_port(&bound), "endpoint listening on a port");

	s = http_get(&bound, "GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n");
	CHECK(has(s, "HTTP/1.1 200 OK\r\n") &&
	      has(s, "Content-Type: text/plain; version=0.0.4; "
		  "charset=utf-8\r\n") &&
	      has(s, "\r\n\r\n# HELP a_total A.\n# TYPE a_total counter\n"
		  "a_total 42\n"), "GET /metrics: 200, version=0.0.4, the "
	      "exposition");
	mem_deref(s);

	s = http_get(&bound, "GET /metrics?x=1 HTTP/1.1\r\nHost: t\r\n\r\n");
	CHECK(has(s, "HTTP/1.1 200 OK\r\n"), "a query string is ignored");
	mem_deref(s);

	s = http_get(&bound, "GET /other HTTP/1.1\r\nHost: t\r\n\r\n");
	CHECK(has(s, "HTTP/1.1 404 Not Found\r\n") && !has(s, "a_total"),
	      "another path: 404");
	mem_deref(s);

	s = http_get(&bound, "POST /metrics HTTP/1.1\r\nHost: t\r\n"
		     "Content-Length: 0\r\n\r\n");
	CHECK(has(s, "HTTP/1.1 405 Method Not Allowed\r\n") &&
	      has(s, "Allow: GET\r\n"), "another method: 405, Allow: GET");
	mem_deref(s);

	err = metrics_http_listen(&mh2, m, &bound);
	CHECK(err == EADDRINUSE && !mh2,
	      "a taken address is refused (EADDRINUSE)");

	mem_deref(mh2);
	mem_deref(mh);
	mem_deref(c);
	mem_deref(m);
}


int main(void)
{
	int err;

	err = libre_init();
	if (err)
		return 1;

	log_set_level(LOG_WARN);
	tmr_init(&watchdog);

	test_labels();
	test_hist();
	test_registry();
	test_process();
	test_stack();
	test_http();

	libre_close();

	printf("1..%d\n", ntest);

	return nfail ? 1 : 0;
}
