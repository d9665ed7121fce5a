/**
 * server/core/loglimit.c  Log lines that a flood cannot multiply
 *
 * Owns the flood-control table of slog_src(): a line about something a
 * peer sent (a bad request, a failed authentication, a decode error) is
 * keyed by its event and the sender's IP address (port ignored: a
 * scanner changes ports). Each key prints at most LIM_BURST lines per
 * window of LIM_WINDOW_MS; the rest are counted and told in one summary
 * line when the window ends:
 *
 *   lvl=warn mod=auth ev=auth_failed src=192.0.2.7 suppressed=19980 window=10
 *
 * One event also prints at most LIM_EV_BURST lines per window from all
 * sources together (a flood with spoofed UDP sources makes every key
 * new); what that cap holds back is summarised with src=*. Exposes
 * slog_src() and loglimit_flush() in sipstack.h. Uses log.c to print
 * and one libre timer for the summaries.
 *
 * Threads: slog_src() runs on the loop thread (it arms a libre timer);
 * a call from another thread prints unlimited, as slog() would.
 */
#include <string.h>
#include <pthread.h>
#include <time.h>
#include <re.h>
#include "sipcore.h"


enum {
	LIM_SLOTS     = 256,     /* keys tracked at once           */
	LIM_WAYS      = 8,       /* probes per key                 */
	LIM_BURST     = 5,       /* lines per key per window       */
	LIM_EV_BURST  = 50,      /* lines per event per window     */
	LIM_WINDOW_MS = 10000,
};

struct limslot {
	const char *mod;        /* static strings; NULL: slot free       */
	const char *ev;
	struct sa ip;           /* AF_UNSPEC: the event's all-sources cap */
	enum log_level lvl;
	uint64_t start;         /* window start, ms                      */
	uint32_t lines;         /* printed in this window                */
	uint32_t suppressed;    /* held back in this window              */
};

static struct {
	struct limslot slot[LIM_SLOTS];
	struct tmr tmr;
	pthread_t loop;
	bool loop_set;
	bool tmr_init;
} lim;


static uint64_t mono_ms(void)
{
	struct timespec ts;

	(void)clock_gettime(CLOCK_MONOTONIC, &ts);

	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}


static void summary(struct limslot *s)
{
	if (!s->suppressed)
		return;

	if (sa_af(&s->ip) == AF_UNSPEC)
		slog(s->lvl, s->mod, s->ev, NULL,
		     "src=* suppressed=%u window=%u", s->suppressed,
		     LIM_WINDOW_MS / 1000);
	else
		slog(s->lvl, s->mod, s->ev, NULL,
		     "src=%j suppressed=%u window=%u", &s->ip, s->suppressed,
		     LIM_WINDOW_MS / 1000);

	s->suppressed = 0;
}


/* Summaries of windows that ended; true if some slot still holds back */
static bool sweep(uint64_t now, bool all)
{
	bool pending = false;
	size_t i;

	for (i = 0; i < ARRAY_SIZE(lim.slot); i++) {
		struct limslot *s = &lim.slot[i];

		if (!s->ev)
			continue;

		if (all || now - s->start >= LIM_WINDOW_MS) {
			summary(s);
			s->ev = NULL;
		}
		else if (s->suppressed) {
			pending = true;
		}
	}

	return pending;
}


static void tmr_handler(void *arg)
{
	(void)arg;

	if (sweep(mono_ms(), false))
		tmr_start(&lim.tmr, LIM_WINDOW_MS / 2, tmr_handler, NULL);
}


static uint32_t key_hash(const char *ev, const struct sa *ip)
{
	uint32_t h = (uint32_t)((uintptr_t)ev >> 3) * 2654435761u;

	if (sa_af(ip) != AF_UNSPEC)
		h ^= sa_hash(ip, SA_ADDR);

	return h;
}


static bool key_equal(const struct limslot *s, const char *ev,
		      const struct sa *ip)
{
	if (s->ev != ev)
		return false;

	if (sa_af(ip) == AF_UNSPEC || sa_af(&s->ip) == AF_UNSPEC)
		return sa_af(ip) == sa_af(&s->ip);

	return sa_cmp(&s->ip, ip, SA_ADDR);
}


/* The key's slot, a new one, or (all ways taken) the one whose window
 * started first, summarised and reused; never `keep` (the other slot
 * the caller holds) */
static struct limslot *slot_get(enum log_level lvl, const char *mod,
				const char *ev, const struct sa *ip,
				uint64_t now, const struct limslot *keep)
{
	uint32_t h = key_hash(ev, ip);
	struct limslot *victim = NULL;
	unsigned w;

	for (w = 0; w < LIM_WAYS; w++) {
		struct limslot *s = &lim.slot[(h + w) % LIM_SLOTS];

		if (s == keep)
			continue;

		if (s->ev && key_equal(s, ev, ip)) {
			if (now - s->start >= LIM_WINDOW_MS) {
				summary(s);
				s->start = now;
				s->lines = 0;
			}
			return s;
		}

		if (!s->ev || now - s->start >= LIM_WINDOW_MS) {
			victim = s;
			break;
		}

		if (!victim || s->start < victim->start)
			victim = s;
	}

	if (!victim)                  /* only `keep` in reach: share it */
		return (struct limslot *)keep;

	if (victim->ev)
		summary(victim);

	memset(victim, 0, sizeof(*victim));
	victim->mod   = mod;
	victim->ev    = ev;
	victim->lvl   = lvl;
	victim->start = now;
	if (ip && sa_af(ip) != AF_UNSPEC) {
		sa_cpy(&victim->ip, ip);
		sa_set_port(&victim->ip, 0);
	}
	else {
		sa_init(&victim->ip, AF_UNSPEC);
	}

	return victim;
}


static bool on_loop(void)
{
	return lim.loop_set && pthread_equal(lim.loop, pthread_self());
}


void loglimit_attach(void)
{
	lim.loop = pthread_self();
	lim.loop_set = true;
	if (!lim.tmr_init) {
		tmr_init(&lim.tmr);
		lim.tmr_init = true;
	}
}


/* true: print the line; false: counted, told in the window's summary */
static bool admit(enum log_level lvl, const char *mod, const char *ev,
		  const struct sa *src)
{
	struct limslot *key, *all;
	struct sa any;
	uint64_t now;
	bool ok;

	if (!on_loop())
		return true;

	now = mono_ms();
	sa_init(&any, AF_UNSPEC);

	all = slot_get(lvl, mod, ev, &any, now, NULL);
	key = src && sa_af(src) != AF_UNSPEC ?
		slot_get(lvl, mod, ev, src, now, all) : NULL;
	if (key == all)
		key = NULL;

	/* a line counts against its source first: a source over its
	 * burst does not use up the event's budget for the others */
	if (key && key->lines >= LIM_BURST) {
		++key->suppressed;
		ok = false;
	}
	else if (all->lines >= LIM_EV_BURST) {
		++all->suppressed;
		ok = false;
	}
	else {
		++all->lines;
		if (key)
			++key->lines;
		ok = true;
	}

	if (!ok && !tmr_isrunning(&lim.tmr))
		tmr_start(&lim.tmr, LIM_WINDOW_MS / 2, tmr_handler, NULL);

	return ok;
}


void slog_src(enum log_level lvl, const char *mod, const char *ev,
	      const struct sa *src, const struct pl *callid,
	      const char *fields, ...)
{
	va_list ap;

	if (!log_enabled(lvl) || !admit(lvl, mod, ev, src))
		return;

	va_start(ap, fields);
	slogv(lvl, mod, ev, callid, fields, ap);
	va_end(ap);
}


bool loglimit_admit(enum log_level lvl, const char *mod, const char *ev,
		    const struct sa *src)
{
	return log_enabled(lvl) && admit(lvl, mod, ev, src);
}


void loglimit_flush(void)
{
	if (lim.tmr_init)
		tmr_cancel(&lim.tmr);

	(void)sweep(mono_ms(), true);
}
