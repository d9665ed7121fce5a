/**
 * server/core/metrics.c  The metrics registry and the exposition format
 *
 * Owns struct metrics (a registry: the collectors registered with it and
 * the metrics defined at run time), struct metrics_collector and struct
 * metric (a script's counter or gauge), and the writer of the Prometheus
 * text exposition format 0.0.4. Exposes metrics_*() and metric_*() in
 * sipcore.h (Metrics section), with the label names of methods,
 * transports and status classes and the fixed-bucket histogram, and the
 * process's own figures (metrics_process_collect: getrusage,
 * /proc/self). Uses libre's mbuf and lists; knows no part of the
 * program by name: each part counts its own figures and registers a
 * collector that writes them at scrape time (the stack's is
 * stack_metrics.c; the HTTP endpoint is metrics_http.c).
 *
 * Why collectors: the hot path only increments plain integers in the
 * structs of whoever counts (an array indexed by method and transport
 * in struct stack), and sizes kept anyway (dialogs, bindings, tasks) are
 * read when scraped; nothing is counted twice and nothing is formatted
 * or allocated per request.
 */
#include <string.h>
#include <stdlib.h>
#include <stdio.h>
#include <math.h>
#include <dirent.h>
#include <malloc.h>
#include <unistd.h>
#include <sys/resource.h>
#include <re.h>
#include "sipcore.h"


struct metrics {
	struct list collectors;    /* struct metrics_collector, in order */
	struct list defined;       /* struct metric, in order defined    */
	uint32_t ndefined;
};

struct metrics_collector {
	struct le le;              /* in metrics.collectors              */
	metrics_collect_h *h;
	void *arg;
};

struct metric {
	struct le le;              /* in metrics.defined, if any         */
	char *name;
	char *help;
	enum metrics_type type;
	double v;
};


/* ------------------------------------------------------------------ *
 * Label values
 * ------------------------------------------------------------------ */

static const char *method_names[METRICS_METHODS] = {
	"INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER", "MESSAGE",
	"PRACK", "UPDATE", "INFO", "REFER", "SUBSCRIBE", "NOTIFY",
	"PUBLISH", "other"
};


static bool is(const struct pl *met, enum metrics_method m)
{
	return 0 == memcmp(met->p, method_names[m], met->l);
}


/* On the receive path of every request: a switch on the length, then
 * at most three comparisons (method names are case-sensitive, RFC 3261
 * §7.1) */
enum metrics_method metrics_method(const struct pl *met)
{
	if (!met || !met->p)
		return METRICS_OTHER;

	switch (met->l) {

	case 3:
		if (is(met, METRICS_ACK))       return METRICS_ACK;
		if (is(met, METRICS_BYE))       return METRICS_BYE;
		break;
	case 4:
		if (is(met, METRICS_INFO))      return METRICS_INFO;
		break;
	case 5:
		if (is(met, METRICS_PRACK))     return METRICS_PRACK;
		if (is(met, METRICS_REFER))     return METRICS_REFER;
		break;
	case 6:
		if (is(met, METRICS_INVITE))    return METRICS_INVITE;
		if (is(met, METRICS_CANCEL))    return METRICS_CANCEL;
		if (is(met, METRICS_UPDATE))    return METRICS_UPDATE;
		if (is(met, METRICS_NOTIFY))    return METRICS_NOTIFY;
		break;
	case 7:
		if (is(met, METRICS_OPTIONS))   return METRICS_OPTIONS;
		if (is(met, METRICS_MESSAGE))   return METRICS_MESSAGE;
		if (is(met, METRICS_PUBLISH))   return METRICS_PUBLISH;
		break;
	case 8:
		if (is(met, METRICS_REGISTER))  return METRICS_REGISTER;
		break;
	case 9:
		if (is(met, METRICS_SUBSCRIBE)) return METRICS_SUBSCRIBE;
		break;
	default:
		break;
	}

	return METRICS_OTHER;
}


const char *metrics_method_name(enum metrics_method m)
{
	return (unsigned)m < METRICS_METHODS ? method_names[m] : "other";
}


const char *metrics_transport_name(enum sip_transp tp)
{
	static const char *names[SIP_TRANSPC] = {
		"udp", "tcp", "tls", "ws", "wss"
	};

	return (unsigned)tp < SIP_TRANSPC ? names[tp] : "other";
}


/* ------------------------------------------------------------------ *
 * Histograms
 * ------------------------------------------------------------------ */

void metrics_hist_init(struct metrics_hist *h, const double *le,
		       uint32_t n)
{
	if (!h)
		return;

	memset(h, 0, sizeof(*h));
	h->le = le;
	h->n = le ? MIN(n, (uint32_t)METRICS_BUCKETS_MAX) : 0;
}


void metrics_hist_init_seconds(struct metrics_hist *h)
{
	static const double le[] = {
		0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005,
		0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
		0.1, 0.25, 0.5, 1, 2.5, 5, 10
	};

	metrics_hist_init(h, le, ARRAY_SIZE(le));
}


void metrics_hist_observe(struct metrics_hist *h, double v)
{
	uint32_t i = 0;

	if (!h)
		return;

	while (i < h->n && !(v <= h->le[i]))
		++i;

	++h->bucket[i];
	++h->count;
	h->sum += v;
}


/* ------------------------------------------------------------------ *
 * Writers
 * ------------------------------------------------------------------ */

/* The shortest text that reads back as v (so 0.0001 is not written
 * 0.00010000000000000000479), integers without a fraction, and the
 * format's spellings of the special values */
static void fmt_double(char *buf, size_t sz, double v)
{
	int p;

	if (isnan(v)) {
		str_ncpy(buf, "NaN", sz);
		return;
	}
	if (isinf(v)) {
		str_ncpy(buf, v > 0 ? "+Inf" : "-Inf", sz);
		return;
	}
	if (v == floor(v) && fabs(v) < 1e15) {
		(void)snprintf(buf, sz, "%.0f", v == 0 ? 0.0 : v);
		return;
	}

	for (p = 1; p <= 17; p++) {
		(void)snprintf(buf, sz, "%.*g", p, v);
		if (strtod(buf, NULL) == v)
			return;
	}
}


/* HELP text: backslash and newline escaped (format 0.0.4) */
static int help_print(struct mbuf *mb, const char *help)
{
	const char *p;
	int err = 0;

	for (p = help; *p && !err; p++) {
		if (*p == '\\')
			err = mbuf_write_str(mb, "\\\\");
		else if (*p == '\n')
			err = mbuf_write_str(mb, "\\n");
		else
			err = mbuf_write_u8(mb, (uint8_t)*p);
	}

	return err;
}


int metrics_family(struct mbuf *mb, const char *name,
		   enum metrics_type type, const char *help)
{
	static const char *types[] = {"counter", "gauge", "histogram"};
	int err;

	if (!mb || !name || !help || (unsigned)type >= ARRAY_SIZE(types))
		return EINVAL;

	err  = mbuf_printf(mb, "# HELP %s ", name);
	err |= help_print(mb, help);
	err |= mbuf_printf(mb, "\n# TYPE %s %s\n", name, types[type]);

	return err;
}


static int sample_head(struct mbuf *mb, const char *name,
		       const char *labels)
{
	if (labels && *labels)
		return mbuf_printf(mb, "%s{%s} ", name, labels);

	return mbuf_printf(mb, "%s ", name);
}


int metrics_sample_u64(struct mbuf *mb, const char *name,
		       const char *labels, uint64_t v)
{
	if (!mb || !name)
		return EINVAL;

	return sample_head(mb, name, labels) |
		mbuf_printf(mb, "%llu\n", (unsigned long long)v);
}


int metrics_sample(struct mbuf *mb, const char *name, const char *labels,
		   double v)
{
	char num[40];

	if (!mb || !name)
		return EINVAL;

	fmt_double(num, sizeof(num), v);

	return sample_head(mb, name, labels) | mbuf_printf(mb, "%s\n", num);
}


int metrics_one(struct mbuf *mb, const char *name, enum metrics_type type,
		const char *help, uint64_t v)
{
	return metrics_family(mb, name, type, help) |
		metrics_sample_u64(mb, name, NULL, v);
}


int metrics_hist_write(struct mbuf *mb, const char *name,
		       const char *labels, const struct metrics_hist *h)
{
	const char *sep = labels && *labels ? "," : "";
	uint64_t cum = 0;
	char num[40];
	uint32_t i;
	int err = 0;

	if (!mb || !name || !h)
		return EINVAL;

	if (!labels)
		labels = "";

	for (i = 0; i < h->n && !err; i++) {
		cum += h->bucket[i];
		fmt_double(num, sizeof(num), h->le[i]);
		err = mbuf_printf(mb, "%s_bucket{%s%sle=\"%s\"} %llu\n",
				  name, labels, sep, num,
				  (unsigned long long)cum);
	}
	cum += h->bucket[h->n];
	fmt_double(num, sizeof(num), h->sum);
	err |= mbuf_printf(mb, "%s_bucket{%s%sle=\"+Inf\"} %llu\n",
			   name, labels, sep, (unsigned long long)cum);
	err |= mbuf_printf(mb, "%s_sum%s%s%s %s\n", name, *labels ? "{" : "",
			   labels, *labels ? "}" : "", num);
	err |= mbuf_printf(mb, "%s_count%s%s%s %llu\n", name,
			   *labels ? "{" : "", labels, *labels ? "}" : "",
			   (unsigned long long)h->count);

	return err;
}


/* ------------------------------------------------------------------ *
 * The registry
 * ------------------------------------------------------------------ */

static void metrics_destructor(void *arg)
{
	struct metrics *m = arg;
	struct le *le;

	/* collectors belong to whoever added them: they only forget us */
	while ((le = list_head(&m->collectors)))
		list_unlink(le);

	/* ours: the reference each defined metric gave us */
	while ((le = list_head(&m->defined))) {
		list_unlink(le);
		mem_deref(le->data);
	}
}


int metrics_alloc(struct metrics **mp)
{
	struct metrics *m;

	if (!mp)
		return EINVAL;

	m = mem_zalloc(sizeof(*m), metrics_destructor);
	if (!m)
		return ENOMEM;

	*mp = m;

	return 0;
}


static void collector_destructor(void *arg)
{
	struct metrics_collector *c = arg;

	list_unlink(&c->le);
}


int metrics_collector_add(struct metrics_collector **cp, struct metrics *m,
			  metrics_collect_h *h, void *arg)
{
	struct metrics_collector *c;

	if (!cp || !m || !h)
		return EINVAL;

	c = mem_zalloc(sizeof(*c), collector_destructor);
	if (!c)
		return ENOMEM;

	c->h = h;
	c->arg = arg;
	list_append(&m->collectors, &c->le, c);

	*cp = c;

	return 0;
}


static int defined_write(struct mbuf *mb, const struct metric *mt)
{
	return metrics_family(mb, mt->name, mt->type, mt->help) |
		metrics_sample(mb, mt->name, NULL, mt->v);
}


int metrics_write(struct mbuf *mb, const struct metrics *m)
{
	struct le *le;
	int err = 0;

	if (!mb || !m)
		return EINVAL;

	for (le = list_head(&m->collectors); le && !err; le = le->next) {
		const struct metrics_collector *c = le->data;

		err = c->h(mb, c->arg);
	}

	for (le = list_head(&m->defined); le && !err; le = le->next)
		err = defined_write(mb, le->data);

	return err;
}


/* ------------------------------------------------------------------ *
 * Metrics defined at run time
 * ------------------------------------------------------------------ */

static bool name_valid(const char *s)
{
	size_t i, n = s ? strlen(s) : 0;

	if (!n || n > METRICS_NAME_MAX)
		return false;

	for (i = 0; i < n; i++) {
		char c = s[i];
		bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			c == '_' || c == ':';

		if (!alpha && (i == 0 || c < '0' || c > '9'))
			return false;
	}

	return true;
}


static bool help_valid(const char *s)
{
	size_t n = s ? strlen(s) : 0;
	size_t i;

	if (!n || n > METRICS_HELP_MAX)
		return false;

	for (i = 0; i < n; i++) {
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return false;
	}

	return true;
}


static void metric_destructor(void *arg)
{
	struct metric *mt = arg;

	list_unlink(&mt->le);
	mem_deref(mt->name);
	mem_deref(mt->help);
}


static struct metric *defined_find(const struct metrics *m,
				   const char *name)
{
	struct le *le;

	LIST_FOREACH(&m->defined, le) {
		struct metric *mt = le->data;

		if (!strcmp(mt->name, name))
			return mt;
	}

	return NULL;
}


int metrics_define(struct metric **mp, struct metrics *m, const char *name,
		   const char *help, enum metrics_type type)
{
	struct metric *mt;
	char *h;
	int err;

	if (!mp || !name_valid(name) || !help_valid(help) ||
	    (type != METRICS_COUNTER && type != METRICS_GAUGE))
		return EINVAL;

	mt = m ? defined_find(m, name) : NULL;
	if (mt) {
		if (mt->type != type)
			return EPROTOTYPE;
		if (strcmp(mt->help, help)) {
			err = str_dup(&h, help);
			if (err)
				return err;
			mem_deref(mt->help);
			mt->help = h;
		}
		*mp = mem_ref(mt);
		return 0;
	}

	if (m && m->ndefined >= METRICS_DEFINED_MAX)
		return EOVERFLOW;

	mt = mem_zalloc(sizeof(*mt), metric_destructor);
	if (!mt)
		return ENOMEM;

	mt->type = type;
	err  = str_dup(&mt->name, name);
	err |= str_dup(&mt->help, help);
	if (err) {
		mem_deref(mt);
		return ENOMEM;
	}

	if (m) {
		list_append(&m->defined, &mt->le, mem_ref(mt));
		++m->ndefined;
	}

	*mp = mt;

	return 0;
}


enum metrics_type metric_type(const struct metric *mt)
{
	return mt ? mt->type : METRICS_GAUGE;
}


const char *metric_name(const struct metric *mt)
{
	return mt ? mt->name : NULL;
}


int metric_add(struct metric *mt, double v)
{
	if (!mt || !isfinite(v) || (mt->type == METRICS_COUNTER && v < 0))
		return EINVAL;

	mt->v += v;

	return 0;
}


int metric_set(struct metric *mt, double v)
{
	if (!mt || mt->type != METRICS_GAUGE || !isfinite(v))
		return EINVAL;

	mt->v = v;

	return 0;
}


double metric_value(const struct metric *mt)
{
	return mt ? mt->v : 0;
}


/* ------------------------------------------------------------------ *
 * The process (procfs: memory reads, never the disk)
 * ------------------------------------------------------------------ */

/* /proc/self/statm: size and resident, in pages */
static int proc_statm(uint64_t *vsz, uint64_t *rss)
{
	unsigned long long size, res;
	FILE *f = fopen("/proc/self/statm", "re");
	int n;

	if (!f)
		return errno;

	n = fscanf(f, "%llu %llu", &size, &res);
	(void)fclose(f);
	if (n != 2)
		return EBADMSG;

	*vsz = size * (uint64_t)sysconf(_SC_PAGESIZE);
	*rss = res * (uint64_t)sysconf(_SC_PAGESIZE);

	return 0;
}


/* Unix time the process started: its start in clock ticks after boot
 * (/proc/self/stat, field 22) plus the boot time (/proc/stat btime) */
static int proc_start_time(double *t)
{
	char buf[1024], *p;
	unsigned long long start = 0, btime = 0;
	size_t n;
	FILE *f;
	int i;

	f = fopen("/proc/self/stat", "re");
	if (!f)
		return errno;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	(void)fclose(f);
	buf[n] = '\0';

	/* the command name (field 2) may hold spaces: after its ')',
	 * each space starts the next field; the 20th is field 22 */
	p = strrchr(buf, ')');
	if (!p)
		return EBADMSG;
	for (i = 2; i < 22 && p; i++)
		p = strchr(p + 1, ' ');
	if (!p || sscanf(p + 1, "%llu", &start) != 1)
		return EBADMSG;

	f = fopen("/proc/stat", "re");
	if (!f)
		return errno;
	while (fgets(buf, sizeof(buf), f)) {
		if (sscanf(buf, "btime %llu", &btime) == 1)
			break;
	}
	(void)fclose(f);
	if (!btime)
		return EBADMSG;

	*t = (double)btime + (double)start / (double)sysconf(_SC_CLK_TCK);

	return 0;
}


static uint64_t proc_open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	uint64_t n = 0;

	if (!d)
		return 0;

	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	(void)closedir(d);

	return n ? n - 1 : 0;   /* not the directory's own fd */
}


static uint64_t tv_usecs(const struct timeval *tv)
{
	return (uint64_t)tv->tv_sec * 1000000u + (uint64_t)tv->tv_usec;
}


int metrics_process_collect(struct mbuf *mb, void *arg)
{
	static const enum log_level lvls[] = {
		LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR
	};
	struct rusage ru;
	struct rlimit rl;
	uint64_t vsz = 0, rss = 0;
	double start = 0;
	char lbl[96];
	size_t i;
	int err = 0;
	(void)arg;

	if (!getrusage(RUSAGE_SELF, &ru)) {
		err |= metrics_family(mb, "process_cpu_seconds_total",
				      METRICS_COUNTER, "User and system CPU "
				      "time spent in seconds.");
		/* summed in microseconds: 0.048342, not 0.04834199... */
		err |= metrics_sample(mb, "process_cpu_seconds_total", NULL,
				      (double)(tv_usecs(&ru.ru_utime) +
					       tv_usecs(&ru.ru_stime)) / 1e6);
	}
	if (!proc_statm(&vsz, &rss)) {
		err |= metrics_one(mb, "process_resident_memory_bytes",
				   METRICS_GAUGE,
				   "Resident memory size in bytes.", rss);
		err |= metrics_one(mb, "process_virtual_memory_bytes",
				   METRICS_GAUGE,
				   "Virtual memory size in bytes.", vsz);
	}
	err |= metrics_one(mb, "process_open_fds", METRICS_GAUGE,
			   "Number of open file descriptors.",
			   proc_open_fds());
	/* unlike RSS, back to its baseline when what was allocated is
	 * freed: tells a leak from the allocator keeping freed pages */
	err |= metrics_one(mb, "sipstack_heap_bytes", METRICS_GAUGE,
			   "C heap in use (glibc mallinfo2, all arenas; "
			   "chunks in the per-thread caches count as used).",
			   mallinfo2().uordblks);
	if (!getrlimit(RLIMIT_NOFILE, &rl))
		err |= metrics_one(mb, "process_max_fds", METRICS_GAUGE,
				   "Maximum number of open file descriptors.",
				   rl.rlim_cur);
	if (!proc_start_time(&start)) {
		err |= metrics_family(mb, "process_start_time_seconds",
				      METRICS_GAUGE, "Start time of the "
				      "process since unix epoch in seconds.");
		err |= metrics_sample(mb, "process_start_time_seconds", NULL,
				      start);
	}

	/* versions come from us and libre: no quote to escape in them */
	(void)re_snprintf(lbl, sizeof(lbl), "version=\"%s\",libre=\"%s\"",
			  SIPSTACK_VERSION, sys_libre_version_get());
	err |= metrics_family(mb, "sipstack_build_info", METRICS_GAUGE,
			      "sipstack's version and libre's, as labels; "
			      "always 1.");
	err |= metrics_sample_u64(mb, "sipstack_build_info", lbl, 1);

	err |= metrics_family(mb, "sipstack_log_messages_total",
			      METRICS_COUNTER, "Log lines written, by level "
			      "(lines held back by flood control are not "
			      "written).");
	for (i = 0; i < ARRAY_SIZE(lvls); i++) {
		(void)re_snprintf(lbl, sizeof(lbl), "level=\"%s\"",
				  log_level_name(lvls[i]));
		err |= metrics_sample_u64(mb, "sipstack_log_messages_total",
					  lbl, log_count(lvls[i]));
	}

	return err;
}
