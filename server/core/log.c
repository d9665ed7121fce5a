/**
 * server/core/log.c  Structured logging
 *
 * Owns the process-wide log sink: one line per event, either logfmt
 * (`ts=... lvl=info mod=stack ev=start k=v`) or JSON. Exposes slog(),
 * the lines written per level (log_count, a metric),
 * the value quoters log_q/log_qpl and log_libre_attach(), which routes
 * libre's own debug output into the same sink (what libre prints to
 * stderr itself comes through server/libre_ext/refprintf.c, which
 * replaces its re_fprintf). Uses only libre's
 * re_printf family; it never allocates on the hot path (a line is
 * composed in a stack buffer).
 *
 * Callers write the fields as a logfmt fragment. The JSON format is made
 * by re-reading that fragment, so there is one way to write a log line
 * in C and both formats stay in step.
 */
#include <string.h>
#include <stdio.h>
#include <time.h>
#include <sys/time.h>
#include <pthread.h>
#include <re.h>
#define DEBUG_MODULE "log"
#define DEBUG_LEVEL 5
#include <re_dbg.h>
#include "sipcore.h"
#include "libre_ext.h"


enum { LINE_MAX_LEN = 4096 };

static struct {
	enum log_level  level;
	enum log_format format;
	FILE           *sink;
	pthread_mutex_t mtx;
} lg = {
	.level  = LOG_INFO,
	.format = LOG_FMT_LOGFMT,
	.sink   = NULL,
	.mtx    = PTHREAD_MUTEX_INITIALIZER,
};

static const char *level_names[] = {"debug", "info", "warn", "error"};

/* lines written per level (a metric); any thread logs: atomic */
static uint64_t line_counts[4];


void log_set_level(enum log_level lvl)
{
	lg.level = lvl;
}


enum log_level log_level_get(void)
{
	return lg.level;
}


void log_set_format(enum log_format fmt)
{
	lg.format = fmt;
}


void log_set_sink(FILE *f)
{
	lg.sink = f;
}


uint64_t log_count(enum log_level lvl)
{
	if ((unsigned)lvl >= ARRAY_SIZE(line_counts))
		return 0;

	return __atomic_load_n(&line_counts[lvl], __ATOMIC_RELAXED);
}


bool log_enabled(enum log_level lvl)
{
	return lvl >= lg.level;
}


const char *log_level_name(enum log_level lvl)
{
	return (unsigned)lvl < ARRAY_SIZE(level_names) ?
		level_names[lvl] : "?";
}


int log_level_parse(enum log_level *lvl, const char *s)
{
	size_t i;

	if (!lvl || !s)
		return EINVAL;

	for (i = 0; i < ARRAY_SIZE(level_names); i++) {
		if (0 == str_casecmp(s, level_names[i])) {
			*lvl = (enum log_level)i;
			return 0;
		}
	}

	if (0 == str_casecmp(s, "warning")) {
		*lvl = LOG_WARN;
		return 0;
	}

	return EINVAL;
}


static bool needs_quote(const char *p, size_t n)
{
	size_t i;

	if (n == 0)
		return true;

	for (i = 0; i < n; i++) {
		const unsigned char c = p[i];
		if (c <= ' ' || c == '"' || c == '=' || c == '\\' || c >= 0x7f)
			return true;
	}

	return false;
}


static int quote(struct re_printf *pf, const char *p, size_t n)
{
	size_t i, run = 0;
	int err = 0;

	if (!needs_quote(p, n))
		return pf->vph(p, n, pf->arg);

	err |= pf->vph("\"", 1, pf->arg);
	for (i = 0; i < n; i++) {
		const unsigned char c = p[i];
		char esc[8];
		const char *e = NULL;

		switch (c) {
		case '"':  e = "\\\""; break;
		case '\\': e = "\\\\"; break;
		case '\n': e = "\\n";  break;
		case '\r': e = "\\r";  break;
		case '\t': e = "\\t";  break;
		default:
			if (c < 0x20 || c == 0x7f) {
				(void)re_snprintf(esc, sizeof(esc), "\\u%04x",
						  c);
				e = esc;
			}
			break;
		}

		if (!e) {
			run++;
			continue;
		}

		if (run)
			err |= pf->vph(p + i - run, run, pf->arg);
		run = 0;
		err |= pf->vph(e, strlen(e), pf->arg);
	}
	if (run)
		err |= pf->vph(p + n - run, run, pf->arg);
	err |= pf->vph("\"", 1, pf->arg);

	return err;
}


int log_q(struct re_printf *pf, const char *s)
{
	return quote(pf, s ? s : "", s ? strlen(s) : 0);
}


int log_qpl(struct re_printf *pf, const struct pl *pl)
{
	if (!pl || !pl->p)
		return quote(pf, "", 0);

	return quote(pf, pl->p, pl->l);
}


/* ISO 8601 UTC with milliseconds */
static int print_ts(struct re_printf *pf, void *unused)
{
	struct timespec ts;
	struct tm tm;
	char buf[32];
	size_t n;
	(void)unused;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);

	return re_hprintf(pf, "%b.%03ldZ", buf, n, ts.tv_nsec / 1000000);
}


struct linebuf {
	char   b[LINE_MAX_LEN];
	size_t n;
	bool   trunc;
};


static int line_write(const char *p, size_t size, void *arg)
{
	struct linebuf *lb = arg;
	size_t room = sizeof(lb->b) - 2 - lb->n; /* keep space for "\n" */

	if (size > room) {
		size = room;
		lb->trunc = true;
	}

	memcpy(lb->b + lb->n, p, size);
	lb->n += size;

	return 0;
}


/* JSON string body of a logfmt value (quoted or bare) */
static int json_str(struct re_printf *pf, const char *p, size_t n)
{
	size_t i;
	int err = 0;

	for (i = 0; i < n; i++) {
		const unsigned char c = p[i];

		if (c == '"' || c == '\\')
			err |= re_hprintf(pf, "\\%c", c);
		else if (c < 0x20)
			err |= re_hprintf(pf, "\\u%04x", c);
		else
			err |= pf->vph((const char *)&p[i], 1, pf->arg);
	}

	return err;
}


/*
 * Re-read a logfmt fragment (what log_q produced) as JSON members.
 * A quoted logfmt value keeps its escapes, which are valid JSON escapes
 * too (\" \\ \n \r \t \uXXXX), so it is copied as it is.
 */
static int logfmt_to_json(struct re_printf *pf, const char *p, size_t n)
{
	size_t i = 0;
	int err = 0;

	while (i < n) {
		size_t ks, kl, vs, vl;
		bool quoted = false;

		while (i < n && p[i] == ' ')
			i++;
		if (i >= n)
			break;

		ks = i;
		while (i < n && p[i] != '=' && p[i] != ' ')
			i++;
		kl = i - ks;

		if (i < n && p[i] == '=') {
			i++;
			if (i < n && p[i] == '"') {
				quoted = true;
				vs = ++i;
				while (i < n && p[i] != '"') {
					if (p[i] == '\\' && i + 1 < n)
						i++;
					i++;
				}
				vl = i - vs;
				if (i < n)
					i++;
			}
			else {
				vs = i;
				while (i < n && p[i] != ' ')
					i++;
				vl = i - vs;
			}
		}
		else {
			vs = i;
			vl = 0;
		}

		err |= re_hprintf(pf, ",\"");
		err |= json_str(pf, p + ks, kl);
		err |= re_hprintf(pf, "\":\"");
		if (quoted)
			err |= pf->vph(p + vs, vl, pf->arg);
		else
			err |= json_str(pf, p + vs, vl);
		err |= re_hprintf(pf, "\"");
	}

	return err;
}


static void emit(enum log_level lvl, const char *mod, const char *ev,
		 const struct pl *callid, const char *fields, va_list ap)
{
	struct linebuf lb;
	struct re_printf pf = {line_write, &lb};
	FILE *f = lg.sink ? lg.sink : stderr;

	if ((unsigned)lvl < ARRAY_SIZE(line_counts))
		(void)__atomic_fetch_add(&line_counts[lvl], 1,
					 __ATOMIC_RELAXED);

	lb.n = 0;
	lb.trunc = false;

	if (lg.format == LOG_FMT_JSON) {
		struct linebuf fb;
		struct re_printf fpf = {line_write, &fb};

		fb.n = 0;
		fb.trunc = false;
		if (fields && *fields)
			(void)re_vhprintf(fields, ap, fpf.vph, fpf.arg);

		(void)re_hprintf(&pf, "{\"ts\":\"%H\",\"lvl\":\"%s\","
				 "\"mod\":\"%s\",\"ev\":\"%s\"",
				 print_ts, NULL, log_level_name(lvl),
				 mod, ev);
		if (pl_isset(callid)) {
			(void)re_hprintf(&pf, ",\"callid\":\"");
			(void)json_str(&pf, callid->p, callid->l);
			(void)re_hprintf(&pf, "\"");
		}
		(void)logfmt_to_json(&pf, fb.b, fb.n);
		if (fb.trunc)
			(void)re_hprintf(&pf, ",\"truncated\":\"true\"");
		(void)re_hprintf(&pf, "}");
	}
	else {
		(void)re_hprintf(&pf, "ts=%H lvl=%s mod=%s ev=%s",
				 print_ts, NULL, log_level_name(lvl), mod, ev);
		if (pl_isset(callid))
			(void)re_hprintf(&pf, " callid=%H", log_qpl, callid);
		if (fields && *fields) {
			(void)re_hprintf(&pf, " ");
			(void)re_vhprintf(fields, ap, pf.vph, pf.arg);
		}
		if (lb.trunc)
			(void)re_hprintf(&pf, " truncated=true");
	}

	lb.b[lb.n++] = '\n';

	pthread_mutex_lock(&lg.mtx);
	(void)fwrite(lb.b, 1, lb.n, f);
	(void)fflush(f);
	pthread_mutex_unlock(&lg.mtx);
}


void slog(enum log_level lvl, const char *mod, const char *ev,
	  const struct pl *callid, const char *fields, ...)
{
	va_list ap;

	if (!log_enabled(lvl))
		return;

	va_start(ap, fields);
	emit(lvl, mod, ev, callid, fields, ap);
	va_end(ap);
}


void slogv(enum log_level lvl, const char *mod, const char *ev,
	   const struct pl *callid, const char *fields, va_list ap)
{
	if (log_enabled(lvl))
		emit(lvl, mod, ev, callid, fields, ap);
}


/* libre's DEBUG_* output: "module: text\n" */
static void libre_dbg_handler(int level, const char *p, size_t len,
			      void *arg)
{
	enum log_level lvl;
	struct pl msg, mod = PL("libre");
	const char *colon;
	(void)arg;

	if (level <= DBG_ERR)
		lvl = LOG_ERROR;
	else if (level == DBG_WARNING)
		lvl = LOG_WARN;
	else if (level <= DBG_INFO)
		lvl = LOG_INFO;
	else
		lvl = LOG_DEBUG;

	/* libre's lines name no sender: flood control per event only */
	if (!log_enabled(lvl) ||
	    (lvl >= LOG_INFO && !loglimit_admit(lvl, "libre", "debug", NULL)))
		return;

	while (len && (p[len - 1] == '\n' || p[len - 1] == '\r'))
		--len;

	msg.p = p;
	msg.l = len;
	colon = memchr(p, ':', len);
	if (colon && colon - p < 24) {
		mod.p = p;
		mod.l = colon - p;
		msg.p = colon + 1;
		msg.l = len - (colon + 1 - p);
		while (msg.l && msg.p[0] == ' ') {
			msg.p++;
			msg.l--;
		}
	}

	slog(lvl, "libre", "debug", NULL, "src=%H msg=%H",
	     log_qpl, &mod, log_qpl, &msg);
}


/* libre's re_fprintf(stderr, ...) lines (server/libre_ext/refprintf.c),
 * e.g. one "msg decode err" per undecodable datagram: flood-limited */
static void libre_stderr_handler(const char *p, size_t len)
{
	struct pl msg;

	msg.p = p;
	msg.l = len;
	if (loglimit_admit(LOG_WARN, "libre", "stderr", NULL))
		slog(LOG_WARN, "libre", "stderr", NULL, "msg=%H", log_qpl,
		     &msg);
}


void log_libre_attach(void)
{
	libre_ext_stderr_set(libre_stderr_handler);
	dbg_init(DBG_INFO, DBG_NONE);
	dbg_handler_set(libre_dbg_handler, NULL);
}
