/**
 * server/registrar/authguard.c  Limits on password guessing
 *
 * Owns struct authguard: what the digest verifier (auth.c) has seen fail,
 * per source address and per user name, and the bans that follow.
 * Exposes authguard_*() in sipstack.h; uses libre's hash tables, lists
 * and one timer (the unbans). Knows nothing of SIP messages: the caller
 * gives it an address and a user name.
 *
 * The policy (docs/lua-api.md, "Guessing limits", says it for users):
 *
 *  - Per source address (port ignored): every failed authentication
 *    (wrong password, unknown user, malformed credentials) fills a
 *    leaky bucket that drains src_failures per window. When it holds
 *    src_failures, the address is banned for ban_time: the stack drops
 *    everything it sends (stack_set_admit) and the verifier refuses it
 *    without a check. A ban again after an unban lasts twice as long
 *    (up to 24 h): a patient guesser gets ~src_failures guesses per
 *    ban, ever fewer. Ban and unban are logged once each at warn.
 *  - Per user name (known or not: the answer never tells which): the
 *    failures from addresses that never authenticated as that user fill
 *    the user's bucket (user_failures per window). Past it, the user is
 *    slowed, not locked: one check per delay, the delay doubling with
 *    each further failure from 1 s up to user_delay_max; the attempts in
 *    between are refused like a wrong password, unchecked. Addresses
 *    that authenticated as the user before (within GOOD_TTL) are never
 *    slowed, so a distributed guess at alice's password cannot keep
 *    alice's phones out; a new phone of hers waits at most
 *    user_delay_max between tries while the guessing goes on, and not
 *    at all once the bucket drained to half (at most a window after
 *    the last failure).
 *    The trade-off: a distributed guesser gets one guess per
 *    user_delay_max per user, and the guard does not stop it.
 *  - Bounded memory: each table keeps at most max_entries (oldest
 *    update evicted first); banned addresses are never evicted (when
 *    all entries are bans, new addresses go untracked until one ends).
 */
#include <string.h>
#include <time.h>
#include <re.h>
#include "registrar.h"


enum {
	GOOD_TTL_MS   = 7 * 24 * 3600 * 1000u,  /* known-good address     */
	BAN_MAX_MS    = 24 * 3600 * 1000u,      /* longest repeated ban    */
	MILLI         = 1000,                   /* bucket unit: 1/1000     */
};

/* One source address */
struct gsrc {
	struct le he;          /* in guard.srct                           */
	struct le le;          /* in guard.srcl (LRU) or guard.bans       */
	struct sa addr;        /* port 0                                  */
	uint64_t level;        /* failures x MILLI, drained by elapsed    */
	uint64_t last;         /* ms of the last drain                    */
	uint64_t until;        /* banned until (ms); 0: not banned        */
	uint32_t failures;     /* failures since the last ban ended       */
	uint32_t bans;         /* bans so far                             */
};

/* One user name */
struct guser {
	struct le he;
	struct le le;          /* in guard.userl (LRU)                    */
	uint64_t level;
	uint64_t last;
	uint64_t next;         /* slowed: no check before this (ms)       */
	uint32_t delay;        /* slowed: current delay (ms); 0: not      */
	char name[AUTH_USER_MAX];
};

/* An address that authenticated as a user */
struct ggood {
	struct le he;
	struct le le;          /* in guard.goodl (LRU)                    */
	struct sa addr;
	uint64_t last;
	char name[AUTH_USER_MAX];
};

struct authguard {
	struct authguard_config cfg;
	struct hash *srct, *usert, *goodt;
	struct list srcl, userl, goodl;   /* oldest update first          */
	struct list bans;                 /* banned srcs, soonest end first */
	uint32_t srcn, usern, goodn;
	struct tmr tmr;                   /* next unban                   */
	struct authguard_stats stats;
};


static uint64_t now_ms(void)
{
	struct timespec ts;

	(void)clock_gettime(CLOCK_MONOTONIC, &ts);

	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}


static bool usable_addr(const struct sa *a)
{
	return a && (sa_af(a) == AF_INET || sa_af(a) == AF_INET6);
}


void authguard_config_default(struct authguard_config *cfg)
{
	if (!cfg)
		return;

	memset(cfg, 0, sizeof(*cfg));
	cfg->src_failures   = AUTHGUARD_SRC_FAILURES;
	cfg->window         = AUTHGUARD_WINDOW;
	cfg->ban_time       = AUTHGUARD_BAN_TIME;
	cfg->user_failures  = AUTHGUARD_USER_FAILURES;
	cfg->user_delay_max = AUTHGUARD_USER_DELAY_MAX;
	cfg->max_entries    = AUTHGUARD_MAX_ENTRIES;
}


/* Drain a bucket that fills `rate` failures per window */
static void drain(uint64_t *level, uint64_t *last, uint32_t rate,
		  uint32_t window, uint64_t now)
{
	uint64_t out;

	if (now <= *last)
		return;

	out = (now - *last) * rate * MILLI / ((uint64_t)window * 1000);
	*level = out >= *level ? 0 : *level - out;
	*last = now;
}


static void gsrc_destructor(void *arg)
{
	struct gsrc *s = arg;

	hash_unlink(&s->he);
	list_unlink(&s->le);
}


static void guser_destructor(void *arg)
{
	struct guser *u = arg;

	hash_unlink(&u->he);
	list_unlink(&u->le);
}


static void ggood_destructor(void *arg)
{
	struct ggood *g = arg;

	hash_unlink(&g->he);
	list_unlink(&g->le);
}


static void guard_destructor(void *arg)
{
	struct authguard *g = arg;

	tmr_cancel(&g->tmr);
	list_flush(&g->bans);
	list_flush(&g->srcl);
	list_flush(&g->userl);
	list_flush(&g->goodl);
	mem_deref(g->srct);
	mem_deref(g->usert);
	mem_deref(g->goodt);
}


static uint32_t table_size(uint32_t n)
{
	uint32_t sz = 16;

	while (sz < n / 4 && sz < 65536)
		sz <<= 1;

	return sz;
}


int authguard_alloc(struct authguard **gp, const struct authguard_config *cfg)
{
	struct authguard_config def;
	struct authguard *g;
	uint32_t sz;
	int err;

	if (!gp)
		return EINVAL;

	if (!cfg) {
		authguard_config_default(&def);
		cfg = &def;
	}

	if (!cfg->window || !cfg->max_entries ||
	    (cfg->src_failures && !cfg->ban_time) ||
	    (cfg->user_failures && !cfg->user_delay_max))
		return EINVAL;

	g = mem_zalloc(sizeof(*g), guard_destructor);
	if (!g)
		return ENOMEM;

	g->cfg = *cfg;
	tmr_init(&g->tmr);

	sz = table_size(cfg->max_entries);
	err  = hash_alloc(&g->srct, sz);
	err |= hash_alloc(&g->usert, sz);
	err |= hash_alloc(&g->goodt, sz);
	if (err) {
		mem_deref(g);
		return ENOMEM;
	}

	*gp = g;

	return 0;
}


/* ------------------------------------------------------------------ *
 * Source addresses and bans
 * ------------------------------------------------------------------ */

static bool src_cmp(struct le *le, void *arg)
{
	const struct gsrc *s = le->data;

	return sa_cmp(&s->addr, arg, SA_ADDR);
}


static struct gsrc *src_find(const struct authguard *g, const struct sa *a)
{
	return list_ledata(hash_lookup(g->srct, sa_hash(a, SA_ADDR),
				       src_cmp, (void *)a));
}


static void unban(struct authguard *g, struct gsrc *s, const char *why)
{
	list_unlink(&s->le);
	list_append(&g->srcl, &s->le, s);
	s->until = 0;
	s->level = 0;
	s->failures = 0;
	++g->stats.unbans;

	slog(LOG_WARN, "auth", "unban", NULL, "src=%j reason=%s bans=%u",
	     &s->addr, why, s->bans);
}


static void tmr_handler(void *arg);


static void tmr_arm(struct authguard *g)
{
	const struct gsrc *first = list_ledata(list_head(&g->bans));
	uint64_t now = now_ms();

	if (!first) {
		tmr_cancel(&g->tmr);
		return;
	}

	tmr_start(&g->tmr, first->until > now ? first->until - now : 0,
		  tmr_handler, g);
}


static void tmr_handler(void *arg)
{
	struct authguard *g = arg;
	uint64_t now = now_ms();
	struct gsrc *s;

	while ((s = list_ledata(list_head(&g->bans))) && s->until <= now)
		unban(g, s, "expired");

	tmr_arm(g);
}


/* into the ban list, soonest end first (from the tail: bans of one
 * ban_time arrive in order) */
static void bans_insert(struct authguard *g, struct gsrc *s)
{
	struct le *le = list_tail(&g->bans);

	while (le && ((struct gsrc *)le->data)->until > s->until)
		le = le->prev;

	if (le)
		list_insert_after(&g->bans, le, &s->le, s);
	else
		list_prepend(&g->bans, &s->le, s);
}


static void ban(struct authguard *g, struct gsrc *s, uint64_t now)
{
	uint64_t ms = (uint64_t)g->cfg.ban_time * 1000;
	uint32_t i;

	for (i = 0; i < s->bans && ms < BAN_MAX_MS; i++)
		ms *= 2;
	if (ms > BAN_MAX_MS && g->cfg.ban_time * 1000ull < BAN_MAX_MS)
		ms = BAN_MAX_MS;

	s->until = now + ms;
	++s->bans;
	++g->stats.bans;

	list_unlink(&s->le);
	bans_insert(g, s);
	tmr_arm(g);

	slog(LOG_WARN, "auth", "ban", NULL, "src=%j failures=%u "
	     "ban_time=%llu bans=%u", &s->addr, s->failures,
	     (unsigned long long)(ms / 1000), s->bans);
}


/* The entry of address a, made if need be (NULL: table full of bans,
 * or out of memory). An entry found moves to the end of the LRU. */
static struct gsrc *src_get(struct authguard *g, const struct sa *a,
			    uint64_t now)
{
	struct gsrc *s = src_find(g, a);

	if (s) {
		if (!s->until) {
			list_unlink(&s->le);
			list_append(&g->srcl, &s->le, s);
		}
		return s;
	}

	if (g->srcn >= g->cfg.max_entries) {
		struct gsrc *old = list_ledata(list_head(&g->srcl));

		if (!old) {
			++g->stats.untracked;
			return NULL;
		}
		mem_deref(old);
		--g->srcn;
	}

	s = mem_zalloc(sizeof(*s), gsrc_destructor);
	if (!s)
		return NULL;

	sa_cpy(&s->addr, a);
	sa_set_port(&s->addr, 0);
	s->last = now;
	hash_append(g->srct, sa_hash(&s->addr, SA_ADDR), &s->he, s);
	list_append(&g->srcl, &s->le, s);
	++g->srcn;

	return s;
}


bool authguard_banned(struct authguard *g, const struct sa *src)
{
	const struct gsrc *s;

	if (!g || !g->srcn || !usable_addr(src))
		return false;

	s = src_find(g, src);

	/* the timer unbans; until it ran, the end time decides */
	return s && s->until && s->until > now_ms();
}


bool authguard_admit(const struct sa *src, void *arg)
{
	struct authguard *g = arg;

	if (!authguard_banned(g, src))
		return true;

	++g->stats.dropped;

	return false;
}


int authguard_unban(struct authguard *g, const struct sa *addr)
{
	struct gsrc *s;

	if (!g || !usable_addr(addr))
		return EINVAL;

	s = src_find(g, addr);
	if (!s || !s->until)
		return ENOENT;

	unban(g, s, "manual");
	tmr_arm(g);

	return 0;
}


int authguard_bans(const struct authguard *g, authguard_ban_h *h, void *arg)
{
	uint64_t now = now_ms();
	struct le *le;
	int err;

	if (!g || !h)
		return EINVAL;

	LIST_FOREACH(&g->bans, le) {
		const struct gsrc *s = le->data;

		if (s->until <= now)
			continue;
		err = h(&s->addr, (uint32_t)((s->until - now + 999) / 1000),
			s->failures, s->bans, arg);
		if (err)
			return err;
	}

	return 0;
}


/* ------------------------------------------------------------------ *
 * User names and the addresses they authenticated from
 * ------------------------------------------------------------------ */

struct ukey {
	const struct pl *name;
	const struct sa *addr;   /* NULL: the user table */
};


static bool user_cmp(struct le *le, void *arg)
{
	const struct guser *u = le->data;
	const struct ukey *k = arg;

	return !pl_strcmp(k->name, u->name);
}


static bool good_cmp(struct le *le, void *arg)
{
	const struct ggood *gd = le->data;
	const struct ukey *k = arg;

	return sa_cmp(&gd->addr, k->addr, SA_ADDR) &&
		!pl_strcmp(k->name, gd->name);
}


static uint32_t name_hash(const struct pl *name)
{
	return hash_joaat((const uint8_t *)name->p, name->l);
}


static struct guser *user_find(const struct authguard *g,
			       const struct pl *name)
{
	struct ukey k = {name, NULL};

	return list_ledata(hash_lookup(g->usert, name_hash(name), user_cmp,
				       &k));
}


static struct ggood *good_find(const struct authguard *g,
			       const struct pl *name, const struct sa *addr)
{
	struct ukey k = {name, addr};

	return list_ledata(hash_lookup(g->goodt, name_hash(name) ^
				       sa_hash(addr, SA_ADDR), good_cmp, &k));
}


static bool usable_name(const struct pl *name)
{
	return pl_isset(name) && name->l < AUTH_USER_MAX;
}


static bool known_good(const struct authguard *g, const struct pl *name,
		       const struct sa *addr, uint64_t now)
{
	const struct ggood *gd;

	if (!usable_addr(addr))
		return false;

	gd = good_find(g, name, addr);

	return gd && now - gd->last < GOOD_TTL_MS;
}


bool authguard_user_allowed(struct authguard *g, const struct sa *src,
			    const struct pl *user)
{
	struct guser *u;
	uint64_t now;

	if (!g || !g->cfg.user_failures || !usable_name(user))
		return true;

	u = user_find(g, user);
	if (!u || !u->delay)
		return true;

	now = now_ms();
	if (known_good(g, user, src, now))
		return true;

	/* slowed until the bucket is down to half the threshold: at most
	 * one window after the last failure (the level is capped at 1.5x) */
	drain(&u->level, &u->last, g->cfg.user_failures, g->cfg.window, now);
	if (2 * u->level < (uint64_t)g->cfg.user_failures * MILLI) {
		u->delay = 0;
		u->next = 0;
		slog(LOG_INFO, "auth", "user_unslowed", NULL, "user=%H",
		     log_q, u->name);
		return true;
	}

	if (now >= u->next)
		return true;

	++g->stats.slowed;

	return false;
}


static void user_failed(struct authguard *g, const struct pl *name,
			uint64_t now)
{
	uint64_t thr = (uint64_t)g->cfg.user_failures * MILLI;
	struct guser *u = user_find(g, name);

	if (u) {
		list_unlink(&u->le);
		list_append(&g->userl, &u->le, u);
	}
	else {
		if (g->usern >= g->cfg.max_entries) {
			mem_deref(list_ledata(list_head(&g->userl)));
			--g->usern;
		}
		u = mem_zalloc(sizeof(*u), guser_destructor);
		if (!u)
			return;
		(void)pl_strcpy(name, u->name, sizeof(u->name));
		u->last = now;
		hash_append(g->usert, name_hash(name), &u->he, u);
		list_append(&g->userl, &u->le, u);
		++g->usern;
	}

	drain(&u->level, &u->last, g->cfg.user_failures, g->cfg.window, now);
	u->level += MILLI;
	if (2 * u->level > 3 * thr)
		u->level = 3 * thr / 2;   /* drains to thr/2 in one window */

	if (u->level < thr)
		return;

	if (!u->delay)
		slog(LOG_WARN, "auth", "user_slowed", NULL, "user=%H "
		     "failures=%llu", log_q, u->name,
		     (unsigned long long)(u->level / MILLI));

	u->delay = u->delay ? u->delay * 2 : 1000;
	if (u->delay > g->cfg.user_delay_max * 1000)
		u->delay = g->cfg.user_delay_max * 1000;
	u->next = now + u->delay;
}


void authguard_failed(struct authguard *g, const struct sa *src,
		      const struct pl *user, bool checked)
{
	uint64_t now;
	struct gsrc *s;

	if (!g)
		return;

	now = now_ms();
	++g->stats.failures;

	if (checked && g->cfg.user_failures && usable_name(user) &&
	    !known_good(g, user, src, now))
		user_failed(g, user, now);

	if (!g->cfg.src_failures || !usable_addr(src))
		return;

	s = src_get(g, src, now);
	if (!s || s->until)
		return;

	drain(&s->level, &s->last, g->cfg.src_failures, g->cfg.window, now);
	s->level += MILLI;
	++s->failures;

	if (s->level >= (uint64_t)g->cfg.src_failures * MILLI)
		ban(g, s, now);
}


void authguard_succeeded(struct authguard *g, const struct sa *src,
			 const struct pl *user)
{
	struct ggood *gd;
	uint64_t now;

	if (!g || !usable_name(user) || !usable_addr(src))
		return;

	now = now_ms();
	gd = good_find(g, user, src);
	if (gd) {
		gd->last = now;
		list_unlink(&gd->le);
		list_append(&g->goodl, &gd->le, gd);
		return;
	}

	if (g->goodn >= g->cfg.max_entries) {
		mem_deref(list_ledata(list_head(&g->goodl)));
		--g->goodn;
	}

	gd = mem_zalloc(sizeof(*gd), ggood_destructor);
	if (!gd)
		return;

	sa_cpy(&gd->addr, src);
	sa_set_port(&gd->addr, 0);
	(void)pl_strcpy(user, gd->name, sizeof(gd->name));
	gd->last = now;
	hash_append(g->goodt, name_hash(user) ^ sa_hash(&gd->addr, SA_ADDR),
		    &gd->he, gd);
	list_append(&g->goodl, &gd->le, gd);
	++g->goodn;
}


void authguard_stats(const struct authguard *g, struct authguard_stats *st)
{
	if (!st)
		return;

	if (!g) {
		memset(st, 0, sizeof(*st));
		return;
	}

	*st = g->stats;
	st->banned = list_count(&g->bans);
}


int authguard_debug(struct re_printf *pf, const struct authguard *g)
{
	if (!g)
		return 0;

	return re_hprintf(pf, "sources=%u users=%u good=%u banned=%u "
			  "bans=%llu failures=%llu dropped=%llu",
			  g->srcn, g->usern, g->goodn, list_count(&g->bans),
			  (unsigned long long)g->stats.bans,
			  (unsigned long long)g->stats.failures,
			  (unsigned long long)g->stats.dropped);
}
