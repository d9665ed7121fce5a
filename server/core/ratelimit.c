/**
 * server/core/ratelimit.c  A token bucket per source address
 *
 * Owns struct ratelimit: the per-source rate limiter of issue 13 (abuse
 * protection), its bounded table of buckets, its log lines. Exposes
 * ratelimit_*() in sipcore.h and, in core.h, the stack's two
 * checkpoints: stack_rl_datagram(), the filter udpbatch asks about every
 * datagram of the stack's UDP sockets before libre decodes it, and
 * stack_rl_request(), at the top of the receive path for what did not
 * pass that filter (TCP, TLS, UDP with --no-udp-batch) and for the 503
 * of a datagram the filter let through to be answered. Uses libre's
 * struct sa, one libre timer, slog_src() (flood-limited log lines).
 *
 * THE BUCKETS
 *
 *   Each source gets `rate` tokens per second up to `burst`; each
 *   datagram (or request) takes one; without a token it is over the
 *   limit. Computed as GCRA (the ATM cell rate algorithm, the same
 *   thing as a token bucket): one time per bucket, its theoretical
 *   arrival time `tat`; a datagram at `now` conforms when tat - now <=
 *   (burst - 1) * interval, and then moves tat on by one interval
 *   (1/rate s) from max(tat, now). A bucket is full when tat <= now.
 *   One 64-bit time per source, no division on the hot path.
 *
 *   The key is the address without the port (a scanner changes ports):
 *   IPv4 as the IPv4-mapped IPv6 address, IPv6 cut to its /64, since
 *   one IPv6 host usually holds a whole /64 and a per-address limit
 *   would be no limit at all. The trusted prefixes are matched on the
 *   whole address before that.
 *
 * THE TABLE
 *
 *   max_sources buckets (a power of two) in sets of WAYS, allocated
 *   once: a check hashes the key (keyed with random secrets, so that
 *   nobody can aim sources at one set) and looks at the WAYS buckets of
 *   its set: O(1), no allocation. A new source takes a free bucket of
 *   its set, else the one with the smallest tat: a full one (it holds
 *   nothing a fresh bucket would not), else the one nearest to full.
 *   So the table never grows, whatever the number of (spoofed)
 *   sources, and the heaviest senders (tat far ahead) are the last to
 *   be forgotten: to push a flooder out, an attacker would have to keep
 *   every bucket of its set emptier than the flooder's own.
 *
 * EPISODES
 *
 *   A source's first datagram over the limit starts an episode: one
 *   `ev=rate_limit` warn line. It ends when nothing from it was over
 *   the limit for QUIET_S seconds (a timer sweeps the table every second
 *   while an episode is open), when its bucket is taken by another
 *   source, or at stop: one `ev=rate_limit_end` line with what was
 *   dropped and answered. Both through slog_src(), so spoofed sources
 *   cannot make the log grow either. With action 503, a source's first
 *   datagram over the limit, and then one at least a second after the
 *   last, is let through marked (RATELIMIT_REPLY) to be answered 503
 *   with Retry-After; the others are dropped, so the limiter never
 *   sends more than one answer per source per second (it must not
 *   become an amplifier).
 *
 * WHAT COUNTS
 *
 *   Over UDP (batched, the default) every datagram from the source
 *   counts, responses and keep-alives too: before decoding nothing tells
 *   a response from garbage that looks like one. A peer that answers
 *   more than `rate` of our requests per second is one we send that
 *   much to (a trunk, an SBC): it belongs in `trusted`. Elsewhere (TCP,
 *   TLS, --no-udp-batch) the requests count: responses there go to
 *   libre's client transactions before the core sees them.
 *
 * Threads: the loop thread only.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <re.h>
#include "sipcore.h"
#include "core.h"


enum {
	WAYS     = 8,           /* buckets per set                       */
	QUIET_S  = 2,           /* an episode ends after this long calm  */
	SWEEP_MS = 1000,        /* the sweep's period while one is open  */
};

#define NS 1000000000ull

struct bucket {
	uint64_t key[2];        /* the address (see THE BUCKETS)         */
	uint64_t tat;           /* ns; 0: the bucket is free             */
	uint32_t over;          /* over the limit in this episode        */
	uint32_t replies;       /* of those, let through for a 503       */
	uint32_t since;         /* s (secs()) the episode began; 0: none */
	uint32_t last_over;     /* s of the last one over the limit      */
	uint32_t last_reply;    /* ms (msecs()) of the last one let
				 * through for a 503                     */
	uint32_t pad_;
};

/* a trusted prefix, in the keys' form */
struct tnet {
	uint64_t key[2];
	uint64_t mask[2];
};

struct ratelimit {
	struct stack_ratelimit cfg;
	struct bucket *tab;     /* size buckets, NULL while off          */
	uint32_t size;
	uint32_t setmask;       /* sets - 1                              */
	uint64_t interval;      /* ns per token                          */
	uint64_t tolerance;     /* (burst - 1) * interval                */
	uint64_t k0, k1, k2;    /* hash secrets                          */
	uint64_t t0;            /* origin of secs()                      */
	struct tnet trusted[RATELIMIT_TRUSTED_MAX];
	uint32_t ntrusted;
	struct tmr tmr;         /* the sweep                             */
	struct ratelimit_stats stats;
};


/* ------------------------------------------------------------------ *
 * Addresses and keys
 * ------------------------------------------------------------------ */

static const uint8_t v4mapped[12] = {0,0,0,0, 0,0,0,0, 0,0,0xff,0xff};


/* The 16 bytes of src (IPv4 mapped); false if it is neither */
static bool addr_bytes(uint8_t b[16], const struct sa *src)
{
	switch (sa_af(src)) {

	case AF_INET:
		memcpy(b, v4mapped, 12);
		memcpy(b + 12, &src->u.in.sin_addr, 4);
		return true;

	case AF_INET6:
		memcpy(b, &src->u.in6.sin6_addr, 16);
		return true;

	default:
		return false;
	}
}


static bool is_v4(const uint8_t b[16])
{
	return !memcmp(b, v4mapped, 12);
}


static void key_sa(struct sa *sa, const uint64_t k[2])
{
	uint8_t b[16];

	memcpy(b, k, 16);
	if (is_v4(b)) {
		uint32_t a;

		memcpy(&a, b + 12, 4);
		sa_init(sa, AF_INET);
		sa->u.in.sin_addr.s_addr = a;
	}
	else {
		sa_set_in6(sa, b, 0);
	}
}


/* "192.0.2.7", "2001:db8:1:2::/64" */
static int key_print(struct re_printf *pf, const uint64_t *k)
{
	uint8_t b[16];
	struct sa sa;

	memcpy(b, k, 16);
	key_sa(&sa, k);

	return re_hprintf(pf, is_v4(b) ? "%j" : "%j/64", &sa);
}


static inline uint64_t mum(uint64_t a, uint64_t b)
{
	const __uint128_t m = (__uint128_t)a * b;

	return (uint64_t)m ^ (uint64_t)(m >> 64);
}


/* keyed (wyhash-like); the secrets are drawn at alloc */
static inline uint32_t key_hash(const struct ratelimit *rl,
				const uint64_t k[2])
{
	const uint64_t h = mum(k[0] ^ rl->k0, k[1] ^ rl->k1);

	return (uint32_t)mum(h ^ rl->k2, 0x9e3779b97f4a7c15ull);
}


static void mask_bits(uint64_t m[2], unsigned bits)
{
	uint8_t b[16];
	unsigned i;

	for (i = 0; i < 16; i++) {
		unsigned n = bits > 8 * i ? bits - 8 * i : 0;

		b[i] = n >= 8 ? 0xff : (uint8_t)(0xff00 >> n);
	}
	memcpy(m, b, 16);
}


static bool is_trusted(const struct ratelimit *rl, const uint64_t k[2])
{
	uint32_t i;

	for (i = 0; i < rl->ntrusted; i++) {
		const struct tnet *t = &rl->trusted[i];

		if ((k[0] & t->mask[0]) == t->key[0] &&
		    (k[1] & t->mask[1]) == t->key[1])
			return true;
	}

	return false;
}


/* ------------------------------------------------------------------ *
 * Config
 * ------------------------------------------------------------------ */

int ratelimit_net_decode(struct ratelimit_net *net, const char *s)
{
	const char *slash;
	struct pl ip;
	uint32_t bits, full;
	uint64_t k[2], m[2];
	uint8_t b[16] = {0};

	if (!net || !s)
		return EINVAL;

	slash = strchr(s, '/');
	ip.p = s;
	ip.l = slash ? (size_t)(slash - s) : strlen(s);

	memset(net, 0, sizeof(*net));
	if (!ip.l || sa_set(&net->addr, &ip, 0))
		return EINVAL;

	full = sa_af(&net->addr) == AF_INET ? 32 : 128;
	bits = full;
	if (slash) {
		const char *d = slash + 1;
		size_t n = strlen(d);

		if (!n || n > 3 || strspn(d, "0123456789") != n)
			return EINVAL;
		bits = (uint32_t)atoi(d);
		if (bits > full)
			return EINVAL;
	}
	net->bits = (uint8_t)bits;

	/* bits set beyond the prefix are a typo, not a wish */
	(void)addr_bytes(b, &net->addr);
	memcpy(k, b, 16);
	mask_bits(m, full == 32 ? 96 + bits : bits);
	if ((k[0] & ~m[0]) || (k[1] & ~m[1]))
		return EDOM;

	return 0;
}


int ratelimit_net_print(struct re_printf *pf, const struct ratelimit_net *n)
{
	const unsigned full = sa_af(&n->addr) == AF_INET ? 32 : 128;

	if (n->bits == full)
		return re_hprintf(pf, "%j", &n->addr);

	return re_hprintf(pf, "%j/%u", &n->addr, n->bits);
}


void ratelimit_config_default(struct stack_ratelimit *cfg)
{
	if (!cfg)
		return;

	memset(cfg, 0, sizeof(*cfg));
	cfg->on          = true;
	cfg->rate        = RATELIMIT_RATE;
	cfg->burst       = RATELIMIT_BURST;
	cfg->action      = RATELIMIT_DROP;
	cfg->retry_after = RATELIMIT_RETRY_AFTER;
	cfg->max_sources = RATELIMIT_SOURCES;

	/* the loopback cannot come from outside (the kernel drops martian
	 * sources), and a local proxy or load test is no attacker */
	(void)ratelimit_net_decode(&cfg->trusted[cfg->ntrusted++],
				   "127.0.0.0/8");
	(void)ratelimit_net_decode(&cfg->trusted[cfg->ntrusted++], "::1");
}


int ratelimit_config_check(const struct stack_ratelimit *cfg)
{
	if (!cfg)
		return EINVAL;

	if (cfg->rate < 1 || cfg->rate > 1000000 ||
	    cfg->burst < 1 || cfg->burst > 10000000 ||
	    cfg->retry_after < 1 || cfg->retry_after > 86400 ||
	    cfg->max_sources < 1024 || cfg->max_sources > 1048576 ||
	    cfg->ntrusted > RATELIMIT_TRUSTED_MAX ||
	    (cfg->action != RATELIMIT_DROP && cfg->action != RATELIMIT_503))
		return EINVAL;

	return 0;
}


/* ------------------------------------------------------------------ *
 * Episodes
 * ------------------------------------------------------------------ */

/* whole seconds since alloc, from 1 (0 means "never") */
static uint32_t secs(const struct ratelimit *rl, uint64_t now)
{
	return now > rl->t0 ? (uint32_t)((now - rl->t0) / NS) + 1 : 1;
}


/* milliseconds since alloc, modulo 2^32: compare differences only */
static uint32_t msecs(const struct ratelimit *rl, uint64_t now)
{
	return now > rl->t0 ? (uint32_t)((now - rl->t0) / 1000000) : 0;
}


static void episode_end(struct ratelimit *rl, struct bucket *b)
{
	struct sa sa;

	key_sa(&sa, b->key);
	slog_src(LOG_WARN, "stack", "rate_limit_end", &sa, NULL,
		 "src=%H dropped=%u answered=%u seconds=%u", key_print,
		 b->key, b->over - b->replies, b->replies,
		 b->last_over - b->since + 1);

	b->since = 0;
	--rl->stats.limited;
}


static void tmr_handler(void *arg)
{
	struct ratelimit *rl = arg;

	ratelimit_sweep(rl, ratelimit_now());
}


void ratelimit_sweep(struct ratelimit *rl, uint64_t now)
{
	uint32_t s, i;

	if (!rl || !rl->tab)
		return;

	s = secs(rl, now);
	for (i = 0; i < rl->size && rl->stats.limited; i++) {
		struct bucket *b = &rl->tab[i];

		if (b->since && s - b->last_over >= QUIET_S)
			episode_end(rl, b);
	}

	if (rl->stats.limited)
		tmr_start(&rl->tmr, SWEEP_MS, tmr_handler, rl);
	else
		tmr_cancel(&rl->tmr);
}


void ratelimit_flush(struct ratelimit *rl)
{
	uint32_t i;

	if (!rl || !rl->tab)
		return;

	for (i = 0; i < rl->size && rl->stats.limited; i++) {
		if (rl->tab[i].since)
			episode_end(rl, &rl->tab[i]);
	}
	tmr_cancel(&rl->tmr);
}


/* ------------------------------------------------------------------ *
 * The limiter
 * ------------------------------------------------------------------ */

static void ratelimit_destructor(void *arg)
{
	struct ratelimit *rl = arg;

	tmr_cancel(&rl->tmr);
	mem_deref(rl->tab);
}


uint64_t ratelimit_now(void)
{
	struct timespec ts;

	(void)clock_gettime(CLOCK_MONOTONIC, &ts);

	return (uint64_t)ts.tv_sec * NS + (uint64_t)ts.tv_nsec;
}


int ratelimit_alloc(struct ratelimit **rlp, const struct stack_ratelimit *cfg)
{
	struct ratelimit *rl;
	int err;

	if (!rlp || !cfg)
		return EINVAL;

	rl = mem_zalloc(sizeof(*rl), ratelimit_destructor);
	if (!rl)
		return ENOMEM;

	tmr_init(&rl->tmr);
	rl->k0 = rand_u64() | 1;
	rl->k1 = rand_u64();
	rl->k2 = rand_u64();
	rl->t0 = ratelimit_now();

	err = ratelimit_set(rl, cfg);
	if (err)
		mem_deref(rl);
	else
		*rlp = rl;

	return err;
}


static uint32_t table_size(uint32_t n)
{
	uint32_t size = WAYS;

	while (size < n)
		size <<= 1;

	return size;
}


int ratelimit_set(struct ratelimit *rl, const struct stack_ratelimit *cfg)
{
	uint32_t size, i;
	int err;

	if (!rl)
		return EINVAL;

	err = ratelimit_config_check(cfg);
	if (err)
		return err;

	size = cfg->on ? table_size(cfg->max_sources) : 0;
	if (size != rl->size) {
		struct bucket *tab = NULL;

		if (size) {
			tab = mem_zalloc((size_t)size * sizeof(*tab), NULL);
			if (!tab)
				return ENOMEM;
		}

		ratelimit_flush(rl);
		mem_deref(rl->tab);
		rl->tab = tab;
		rl->size = size;
		rl->setmask = size ? size / WAYS - 1 : 0;
		rl->stats.sources = 0;
	}

	rl->cfg = *cfg;
	rl->interval = NS / cfg->rate;
	rl->tolerance = (uint64_t)(cfg->burst - 1) * rl->interval;

	rl->ntrusted = cfg->ntrusted;
	for (i = 0; i < cfg->ntrusted; i++) {
		const struct ratelimit_net *n = &cfg->trusted[i];
		uint8_t b[16] = {0};

		(void)addr_bytes(b, &n->addr);
		memcpy(rl->trusted[i].key, b, 16);
		mask_bits(rl->trusted[i].mask, sa_af(&n->addr) == AF_INET ?
			  96 + n->bits : n->bits);
		rl->trusted[i].key[0] &= rl->trusted[i].mask[0];
		rl->trusted[i].key[1] &= rl->trusted[i].mask[1];
	}

	return 0;
}


/* The source's bucket, or a new one in its set (see THE TABLE) */
static struct bucket *bucket_get(struct ratelimit *rl, const uint64_t k[2],
				 uint64_t now)
{
	struct bucket *set, *victim = NULL;
	unsigned i;

	set = &rl->tab[(size_t)(key_hash(rl, k) & rl->setmask) * WAYS];
	for (i = 0; i < WAYS; i++) {
		struct bucket *b = &set[i];

		if (b->tat && b->key[0] == k[0] && b->key[1] == k[1])
			return b;

		if (victim && !victim->tat)
			continue;            /* a free one is found: keep it */
		if (!victim || b->tat < victim->tat)
			victim = b;
	}

	if (!victim->tat) {
		++rl->stats.sources;
	}
	else {
		if (victim->tat > now)
			++rl->stats.evicted;   /* a bucket not full: lost */
		if (victim->since)
			episode_end(rl, victim);
	}

	memset(victim, 0, sizeof(*victim));
	victim->key[0] = k[0];
	victim->key[1] = k[1];
	victim->tat = now;

	return victim;
}


static enum ratelimit_verdict over(struct ratelimit *rl, struct bucket *b,
				   const struct sa *src, uint64_t now)
{
	const uint32_t s = secs(rl, now), ms = msecs(rl, now);

	++rl->stats.over;

	/* calm for long enough, though the sweep has not seen it yet */
	if (b->since && s - b->last_over >= QUIET_S)
		episode_end(rl, b);

	if (!b->since) {
		b->since = s;
		b->over = 0;
		b->replies = 0;
		b->last_reply = ms - 1000;    /* one is due at once */
		++rl->stats.episodes;
		++rl->stats.limited;
		slog_src(LOG_WARN, "stack", "rate_limit", src, NULL,
			 "src=%H rate=%u burst=%u action=%s", key_print,
			 b->key, rl->cfg.rate, rl->cfg.burst,
			 rl->cfg.action == RATELIMIT_503 ? "503" : "drop");
		if (!tmr_isrunning(&rl->tmr))
			tmr_start(&rl->tmr, SWEEP_MS, tmr_handler, rl);
	}

	++b->over;
	b->last_over = s;

	if (rl->cfg.action == RATELIMIT_503 && ms - b->last_reply >= 1000) {
		b->last_reply = ms;
		++b->replies;
		++rl->stats.replies;
		return RATELIMIT_REPLY;
	}

	return RATELIMIT_OVER;
}


enum ratelimit_verdict ratelimit_check(struct ratelimit *rl,
				       const struct sa *src, uint64_t now)
{
	struct bucket *b;
	uint64_t k[2];
	uint8_t a[16];

	if (!rl || !rl->tab || !addr_bytes(a, src))
		return RATELIMIT_PASS;

	memcpy(k, a, 16);
	if (rl->ntrusted && is_trusted(rl, k)) {
		++rl->stats.trusted;
		return RATELIMIT_PASS;
	}
	if (!is_v4(a))
		k[1] = 0;                     /* an IPv6 source: its /64 */

	if (!now)
		now = ratelimit_now();        /* not for a trusted source */

	b = bucket_get(rl, k, now);
	if (b->tat < now)
		b->tat = now;
	if (b->tat - now > rl->tolerance)
		return over(rl, b, src, now);

	b->tat += rl->interval;

	return RATELIMIT_PASS;
}


void ratelimit_stats(const struct ratelimit *rl, struct ratelimit_stats *st)
{
	if (!st)
		return;

	if (!rl) {
		memset(st, 0, sizeof(*st));
		return;
	}

	*st = rl->stats;
	st->size = rl->size;
}


int ratelimit_debug(struct re_printf *pf, const struct ratelimit *rl)
{
	if (!rl)
		return 0;

	return re_hprintf(pf, "ratelimit on=%d rate=%u burst=%u action=%s "
			  "sources=%u/%u limited=%u episodes=%llu over=%llu",
			  rl->tab != NULL, rl->cfg.rate, rl->cfg.burst,
			  rl->cfg.action == RATELIMIT_503 ? "503" : "drop",
			  rl->stats.sources, rl->size, rl->stats.limited,
			  (unsigned long long)rl->stats.episodes,
			  (unsigned long long)rl->stats.over);
}


/* ------------------------------------------------------------------ *
 * The stack's checkpoints
 * ------------------------------------------------------------------ */

/* udpbatch's filter on the stack's UDP sockets: every datagram, before
 * libre decodes it. The verdict of one it lets through is kept for
 * stack_rl_request(), which libre's decode of that very datagram
 * reaches next (synchronously, if it is a request). */
bool stack_rl_datagram(const struct sa *src, void *arg)
{
	struct stack *st = arg;
	enum ratelimit_verdict v;

	if (!st->rl->tab)
		return true;                    /* off */

	v = ratelimit_check(st->rl, src, 0);
	if (v == RATELIMIT_OVER) {
		++st->stats.limited_dropped;
		return false;
	}

	st->rlpre.src = *src;
	st->rlpre.v = v;
	st->rlpre.set = true;

	return true;
}


bool stack_rl_request(struct stack *st, const struct sip_msg *msg)
{
	enum ratelimit_verdict v;

	if (!st->rl->tab)
		return false;

	if (st->rlpre.set && msg->tp == SIP_TRANSP_UDP &&
	    sa_cmp(&st->rlpre.src, &msg->src, SA_ALL)) {
		v = st->rlpre.v;                /* the filter's, above */
		st->rlpre.set = false;
	}
	else {
		v = ratelimit_check(st->rl, &msg->src, 0);
	}

	if (v == RATELIMIT_PASS)
		return false;

	/* stateless: no transaction (nor its retransmissions) for an
	 * over-limit source, and never an answer to an ACK */
	if (v == RATELIMIT_REPLY && pl_strcmp(&msg->met, "ACK") &&
	    !sip_treplyf(NULL, NULL, st->sip, msg, false, 503,
			 "Service Unavailable", "Retry-After: %u\r\n"
			 "Content-Length: 0\r\n\r\n",
			 st->rl->cfg.retry_after)) {
		++st->stats.replies;
		++st->stats.limited_answered;
		return true;
	}

	++st->stats.limited_dropped;

	return true;
}
