/**
 * server/libre_ext/fastregex.c  libre's re_regex() with patterns compiled once
 *
 * WHY THIS FILE EXISTS
 *
 *   libre 1.1.0's SIP parser finds every header value, URI part and
 *   parameter with re_regex() (src/fmt/regex.c): a small matcher that
 *   re-reads its pattern string for every start position it tries, and
 *   tries every position of the input until one matches. Under callgrind
 *   it is 45-50% of the instructions spent on an OPTIONS, and 35-44% of
 *   a REGISTER or a call (BENCHMARKS.md). The patterns are string
 *   literals, so parsing them once and keeping the result is the cure.
 *
 * HOW IT IS HOOKED IN
 *
 *   As fasttmr.c does for the timers: this file defines re_regex() with
 *   libre's prototype in the executable, which exports it (it is in
 *   overrides.list, the link's dynamic list), and libre.so calls
 *   re_regex through its PLT (check with
 *   `objdump -R libre.so | grep re_regex` -> R_X86_64_JUMP_SLOT), so the
 *   dynamic linker binds libre's own calls to this definition. Our code's
 *   calls come here too.
 *
 * SAME RESULTS, BY CONSTRUCTION AND BY TEST
 *
 *   libre's matcher interleaves reading the pattern with matching, and its
 *   quirks are part of its contract for libre's callers, so this is not a
 *   new regex engine: compile() walks the pattern with exactly the state
 *   machine of libre's loop (escape, '[', ']', '^', '~', '-', quantifier,
 *   at most 64 ranges per class) and records what it would do at each
 *   step as an op; match() then runs libre's outer loop over start
 *   positions with those ops. Kept on purpose:
 *     - the match is unanchored and tries start positions from the left;
 *       classes are greedy and never backtrack;
 *     - literals and classes compare case-insensitively (ASCII, as
 *       tolower() does in the C locale the server runs in);
 *     - a class's struct pl is written as soon as its count is met, also
 *       in an attempt that fails later (callers can observe that);
 *     - the struct pl pointers are read from the va_list only as far as
 *       the match gets, in order, as libre does;
 *     - running out of input while a literal is expected ends the whole
 *       search with ENOENT at once, without trying later positions;
 *     - a broken pattern (unterminated class, bad quantifier, more than 64
 *       ranges) gives EINVAL only if the match gets that far, else ENOENT;
 *     - '~' classes skip quoted strings and backslash escapes and strip
 *       the outer quotes from the result.
 *   test/unit/test_fastregex.c checks every result and every struct pl
 *   against libre's own re_regex (found with dlsym(RTLD_NEXT)) for the
 *   patterns libre's parser uses on the RFC 4475/5118 torture messages,
 *   for hand-written edge cases and for random patterns and inputs.
 *
 * WHAT IS FASTER
 *
 *   No pattern parsing per attempt; a class looks each byte up in a
 *   256-byte table (case folding and negation folded in) instead of
 *   walking its ranges; and when the pattern starts with a
 *   literal, or with a class that needs at least one character, start
 *   positions that cannot match are skipped without starting an attempt
 *   (such attempts have no side effects in libre either).
 *
 * CACHE
 *
 *   Compiled patterns are kept in an open-addressing table keyed by a
 *   hash of the pattern's text and checked against a copy of it (libre
 *   builds some patterns in a stack buffer, so an address does not name
 *   one pattern). Patterns in read-only memory (libre's and our string
 *   literals, found in /proc/self/maps once) are also remembered by
 *   address, so most calls skip the hashing. The table belongs to the
 *   first thread that calls re_regex (the event loop); any other thread
 *   compiles into a temporary, so there is no lock and no sharing. When
 *   the table is full (more than 511 distinct patterns, which libre and
 *   sipstack do not have) further patterns are compiled per call.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <re.h>
#include "fastregex.h"


enum {
	MAX_RANGES = 64,        /* libre's struct chr chrv[64] */
	CACHE_SIZE = 512,       /* power of two */
};

enum op_kind {
	OP_LIT,                 /* one character, case-insensitive */
	OP_CLASS,               /* [...] with a quantifier */
};

enum {
	QUICK_NONE,             /* no start position can be skipped */
	QUICK_LIT,              /* first op: literal quick_c */
	QUICK_CLASS,            /* first op: class needing >= 1 char */
};

struct op {
	uint8_t kind;
	uint8_t c;              /* OP_LIT: lowered character */
	bool qesc;
	uint32_t nmin, nmax;
	uint8_t acc[256];       /* OP_CLASS: 1 for the input bytes it accepts,
				   case folding and negation applied */
};

struct prog {
	uint64_t hash;          /* of the pattern's text; 0: slot free */
	size_t len;
	char *src;              /* a copy of its text */
	struct op *ops;
	size_t nops;
	int end;                /* result when every op matched: 0/EINVAL */
	int quick;
	uint8_t quick_c;
};


/* Patterns whose text lives in read-only memory (string literals) are
 * also found by address, without hashing their text */
enum { ADDR_SLOTS = 256, MAX_RO = 128 };

struct addr_slot {
	const char *expr;
	struct prog *pg;
};

struct ro_range {
	uintptr_t lo, hi;
};

static struct addr_slot addr_cache[ADDR_SLOTS];
static struct ro_range ro[MAX_RO];
static size_t nro;
static bool ro_read;
static struct prog cache[CACHE_SIZE];
static size_t cache_used;
static pthread_t owner;
static int owner_claimed;       /* 0 free, 1 claimed (atomic) */
static uint64_t ncalls;
static fastregex_trace_h *trace_h;
static void *trace_arg;


static inline uint8_t lower(uint8_t c)
{
	return (c >= 'A' && c <= 'Z') ? (uint8_t)(c + 32) : c;
}


static inline bool accepts(const struct op *op, uint8_t c)
{
	return op->acc[c];
}


static int push_op(struct prog *pg, size_t *cap, const struct op *op)
{
	if (pg->nops == *cap) {
		const size_t ncap = *cap ? *cap * 2 : 8;
		struct op *n = realloc(pg->ops, ncap * sizeof(*n));

		if (!n)
			return ENOMEM;
		pg->ops = n;
		*cap = ncap;
	}
	pg->ops[pg->nops++] = *op;

	return 0;
}


/* Walk the pattern as libre's re_regex loop does and record the ops. */
static int compile(struct prog *pg, const char *expr)
{
	struct { uint8_t min, max; } chrv[MAX_RANGES];
	bool fm = false, ec = false, neg = false, range = false;
	bool qesc = false, eesc = false;
	uint32_t n = 0, i;
	unsigned b;
	size_t cap = 0;
	const char *ep;
	struct op op;
	int err;

	memset(pg, 0, sizeof(*pg));
	pg->end = EINVAL;

	for (ep = expr; *ep; ep++) {
		const uint8_t ch = (uint8_t)*ep;

		if (ch == '\\' && !eesc) {
			eesc = true;
			continue;
		}

		if (!fm) {
			if (ch == '[' && !eesc) {
				n = 0;
				fm = true;
				ec = neg = range = qesc = false;
				continue;
			}

			memset(&op, 0, sizeof(op));
			op.kind = OP_LIT;
			op.c = lower(ch);
			err = push_op(pg, &cap, &op);
			if (err)
				return err;
			eesc = false;
			continue;
		}

		if (ec) {
			memset(&op, 0, sizeof(op));
			if (ch == '*') {
				op.nmin = 0;
				op.nmax = UINT32_MAX;
			}
			else if (ch == '+') {
				op.nmin = 1;
				op.nmax = UINT32_MAX;
			}
			else if (ch >= '1' && ch <= '9') {
				op.nmin = op.nmax = (uint32_t)(ch - '0');
			}
			else {
				return 0;       /* libre: break with fm set */
			}

			op.kind = OP_CLASS;
			op.qesc = qesc;
			for (b = 0; b < 256; b++) {
				/* libre: expr_match(chrv, n, tolower(c), neg) */
				const uint8_t lc = lower((uint8_t)b);

				for (i = 0; i < n; i++) {
					if (lc >= chrv[i].min &&
					    lc <= chrv[i].max)
						break;
				}
				op.acc[b] = (i != n) != neg;
			}
			err = push_op(pg, &cap, &op);
			if (err)
				return err;

			fm = false;
			eesc = false;
			continue;
		}

		if (eesc) {
			eesc = false;
			goto chr;
		}

		switch (ch) {

		case ']':
			ec = true;
			continue;

		case '~':
			if (n)
				break;
			qesc = true;
			neg = true;
			continue;

		case '^':
			if (n)
				break;
			neg = true;
			continue;

		case '-':
			if (!n || range)
				break;
			range = true;
			--n;
			continue;
		}

	chr:
		if (n >= MAX_RANGES)
			return 0;               /* libre: break with fm set */

		chrv[n].max = lower(ch);
		if (range)
			range = false;
		else
			chrv[n].min = lower(ch);
		++n;
	}

	pg->end = fm ? EINVAL : 0;

	return 0;
}


static void set_quick(struct prog *pg)
{
	const struct op *op = pg->nops ? &pg->ops[0] : NULL;

	pg->quick = QUICK_NONE;
	if (!op)
		return;

	if (op->kind == OP_LIT) {
		pg->quick = QUICK_LIT;
		pg->quick_c = op->c;
	}
	else if (!op->qesc && op->nmin >= 1) {
		pg->quick = QUICK_CLASS;
	}
}


static int prog_init(struct prog *pg, const char *expr)
{
	int err = compile(pg, expr);

	if (err) {
		free(pg->ops);
		return err;
	}
	set_quick(pg);

	return 0;
}


static void prog_reset(struct prog *pg)
{
	free(pg->ops);
	free(pg->src);
	memset(pg, 0, sizeof(*pg));
}


/* Could an attempt at this character get past the first op? */
static inline bool quick_ok(const struct prog *pg, uint8_t c)
{
	const struct op *op = &pg->ops[0];

	switch (pg->quick) {

	case QUICK_LIT:
		return lower(c) == pg->quick_c;

	case QUICK_CLASS:
		return accepts(op, c);

	default:
		return true;
	}
}


/* Match one class at p (l bytes left); libre's inner loop. */
static uint32_t match_class(const struct op *op, const char **pp, size_t *lp,
			    struct pl *lpl)
{
	const char *p = *pp;
	size_t l = *lp;
	bool quote = false, esc = false;
	uint32_t nm;

	lpl->p = p;
	lpl->l = 0;

	if (!op->qesc) {
		const char *const s = p;
		const char *const e = p + (l < op->nmax ? l : op->nmax);

		while (p < e && accepts(op, (uint8_t)*p))
			++p;
		nm = (uint32_t)(p - s);
		l -= nm;
		lpl->l = nm;
	}
	else {
		for (nm = 0; l && nm < op->nmax; nm++, p++, l--, lpl->l++) {

			if (esc) {
				esc = false;
				continue;
			}

			if (*p == '\\') {
				esc = true;
				continue;
			}
			if (*p == '"') {
				quote = !quote;
				continue;
			}
			if (quote)
				continue;

			if (!accepts(op, (uint8_t)*p))
				break;
		}

		if (lpl->l > 1 && lpl->p[0] == '"' &&
		    lpl->p[lpl->l - 1] == '"') {
			lpl->p += 1;
			lpl->l -= 2;
			nm -= 2;
		}
	}

	*pp = p;
	*lp = l;

	return nm;
}


static int run(const struct prog *pg, const char *expr, const char *ptr,
	       size_t len, va_list ap)
{
	struct pl *plv[MAX_RANGES * 4];
	size_t npl = 0;

	for (;;) {
		const char *p;
		size_t l, i, k = 0;

		/* the positions that cannot pass the first op are skipped */
		if (pg->quick != QUICK_NONE) {
			while (len && !quick_ok(pg, (uint8_t)*ptr)) {
				++ptr;
				--len;
			}
		}

		l = len;
		p = ptr;
		if (!l)
			return *expr ? ENOENT : 0;
		--len;
		++ptr;

		for (i = 0; i < pg->nops; i++) {
			const struct op *op = &pg->ops[i];
			struct pl lpl, *pl;
			uint32_t nm;

			if (op->kind == OP_LIT) {
				if (!l)
					return ENOENT;
				if (lower((uint8_t)*p) != op->c)
					goto again;
				++p;
				--l;
				continue;
			}

			if (k == npl) {
				if (npl == ARRAY_SIZE(plv))
					return EINVAL;
				plv[npl++] = va_arg(ap, struct pl *);
			}
			pl = plv[k++];

			nm = match_class(op, &p, &l, &lpl);
			if (nm < op->nmin || nm > op->nmax)
				goto again;

			if (pl)
				*pl = lpl;
		}

		return pg->end;

	again:
		;
	}
}


/* A hash of the text, a word at a time; never 0 (0 marks a free slot) */
static uint64_t text_hash(const char *s, size_t *lenp)
{
	const size_t len = strlen(s);
	uint64_t h = 0x9e3779b97f4a7c15ULL ^ len, w;
	size_t i;

	for (i = 0; i + 8 <= len; i += 8) {
		memcpy(&w, s + i, 8);
		h = (h ^ w) * 0xff51afd7ed558ccdULL;
		h ^= h >> 32;
	}
	if (i < len) {
		w = 0;
		memcpy(&w, s + i, len - i);
		h = (h ^ w) * 0xc4ceb9fe1a85ec53ULL;
		h ^= h >> 32;
	}
	*lenp = len;

	return h ? h : 1;
}


/* Patterns are found by their text, not their address: libre builds some
 * in a stack buffer (msg_param_decode, uri_param_get, ...), where the same
 * address holds a different pattern from one call to the next. */
static struct prog *lookup(const char *expr)
{
	size_t len, i, j;
	const uint64_t h = text_hash(expr, &len);

	for (j = 0; j < CACHE_SIZE; j++) {
		struct prog *pg;

		i = (size_t)(h + j) & (CACHE_SIZE - 1);
		pg = &cache[i];

		if (!pg->hash) {
			/* keep one slot free so that every probe ends */
			if (cache_used + 1 >= CACHE_SIZE)
				return NULL;
			if (prog_init(pg, expr))
				return NULL;
			pg->src = malloc(len + 1);
			if (!pg->src) {
				prog_reset(pg);
				return NULL;
			}
			memcpy(pg->src, expr, len + 1);
			pg->len = len;
			pg->hash = h;
			++cache_used;
			return pg;
		}

		if (pg->hash == h && pg->len == len &&
		    !memcmp(pg->src, expr, len))
			return pg;
	}

	return NULL;
}


/* The process's mappings without write permission, read once: text there
 * cannot change, so its address names one pattern for good. */
static void read_ro_ranges(void)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[512];

	ro_read = true;
	if (!f)
		return;

	while (nro < MAX_RO && fgets(line, sizeof(line), f)) {
		unsigned long lo, hi;
		char perms[8];

		if (sscanf(line, "%lx-%lx %7s", &lo, &hi, perms) != 3)
			continue;
		if (perms[0] != 'r' || perms[1] != '-')
			continue;
		ro[nro].lo = lo;
		ro[nro].hi = hi;
		++nro;
	}
	fclose(f);
}


static bool is_readonly(const char *expr, size_t len)
{
	const uintptr_t a = (uintptr_t)expr;
	size_t i;

	if (!ro_read)
		read_ro_ranges();

	for (i = 0; i < nro; i++) {
		if (a >= ro[i].lo && a + len < ro[i].hi)
			return true;
	}

	return false;
}


static struct prog *lookup_fast(const char *expr)
{
	const size_t i = (((uintptr_t)expr * 0x9e3779b97f4a7c15ULL) >> 40) &
		(ADDR_SLOTS - 1);
	struct addr_slot *as = &addr_cache[i];
	struct prog *pg;

	if (as->expr == expr) {
		/* NULL: a writable buffer, its text may have changed */
		return as->pg ? as->pg : lookup(expr);
	}

	pg = lookup(expr);
	if (pg) {
		as->expr = expr;
		as->pg = is_readonly(expr, pg->len) ? pg : NULL;
	}

	return pg;
}


static bool is_owner(void)
{
	int expected = 0;

	if (__atomic_load_n(&owner_claimed, __ATOMIC_ACQUIRE) == 1)
		return pthread_equal(owner, pthread_self());

	if (__atomic_compare_exchange_n(&owner_claimed, &expected, 2, false,
					__ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
		owner = pthread_self();
		__atomic_store_n(&owner_claimed, 1, __ATOMIC_RELEASE);
		return true;
	}

	return false;   /* another thread owns it or is claiming it */
}


int re_regex(const char *ptr, size_t len, const char *expr, ...)
{
	struct prog tmp, *pg = NULL;
	va_list ap;
	int err;

	if (!ptr || !expr)
		return EINVAL;

	if (is_owner()) {
		++ncalls;
		if (trace_h)
			trace_h(ptr, len, expr, trace_arg);
		pg = lookup_fast(expr);
	}

	if (!pg) {
		err = prog_init(&tmp, expr);
		if (err)
			return err;
		pg = &tmp;
	}

	va_start(ap, expr);
	err = run(pg, expr, ptr, len, ap);
	va_end(ap);

	if (pg == &tmp)
		free(tmp.ops);

	return err;
}


uint64_t fastregex_calls(void)
{
	return ncalls;
}


size_t fastregex_cached(void)
{
	return cache_used;
}


void fastregex_set_trace(fastregex_trace_h *h, void *arg)
{
	trace_h = h;
	trace_arg = arg;
}


/* Leave nothing for valgrind to report at exit. */
__attribute__((destructor))
static void fastregex_cleanup(void)
{
	size_t i;

	for (i = 0; i < CACHE_SIZE; i++) {
		if (cache[i].hash)
			prog_reset(&cache[i]);
	}
	cache_used = 0;
	memset(addr_cache, 0, sizeof(addr_cache));
}
