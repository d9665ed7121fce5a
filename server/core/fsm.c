/**
 * server/core/fsm.c  Generic finite state machine
 *
 * Owns three objects. struct fsm_builder collects names, transitions and
 * handlers. struct fsm_def is what a builder makes: immutable, shared by
 * every instance through mem refcounting, holding the names interned to
 * uint16_t ids, a dense [state][event] -> state table with the "*" rows
 * already folded in, and the handlers. struct fsm is one running machine:
 * a def reference, the current state, the handler arg, the error ids and
 * a history ring in the same allocation; a few dozen bytes plus the ring,
 * as thousands of dialogs and calls each hold one.
 *
 * Exposes the FSM section of sipstack.h. Uses only libre (mem, re_printf).
 *
 * Every allocation goes through mem_zalloc() (no mem_realloc, no str_dup)
 * so that the unit test can fail any of them on purpose.
 */
#include <string.h>
#include <time.h>
#include <re.h>
#include "sipcore.h"


enum {
	ID_NONE    = 0xffff,   /* no transition / unset state           */
	ID_MAX     = 0xfffe,   /* most states or events a def can hold  */
	QUEUE_SIZE = 8,        /* nested transitions waiting at once    */
	CHAIN_MAX  = 64,       /* transitions run by one outermost call */
	ERRBUF_SIZE = 256,
};

static const char wildcard[] = "*";

enum err_kind {
	ERR_NONE = 0,
	ERR_REFUSED,       /* (state, event) has no row               */
	ERR_UNKNOWN_EVENT, /* name kept in the thread-local stash     */
	ERR_EVENT_ID,      /* event id out of range, id in err_event  */
	ERR_INVAL,
	ERR_NOMEM,
	ERR_LIMIT,         /* too many names for uint16_t ids         */
	ERR_OVERFLOW,      /* nested-transition queue full            */
	ERR_LOOP,          /* CHAIN_MAX transitions in one call       */
	ERR_DROPPED,       /* queued event refused when it came to run */
};


/* --------------------------------------------------------------------
 * Builder
 * ----------------------------------------------------------------- */

struct btrans {
	uint16_t from;   /* ID_NONE = "*" */
	uint16_t event;
	uint16_t to;
};

struct fsm_builder {
	char *name;
	char **states;            /* mem strings, id = index           */
	fsm_state_h **enterh;     /* parallel to states                */
	fsm_state_h **exith;
	size_t nstates, cstates;  /* used, capacity                    */
	char **events;
	size_t nevents, cevents;
	struct btrans *trans;     /* in order, (from, event) unique    */
	size_t ntrans, ctrans;
	fsm_transition_h *transh;
	uint16_t initial;
	uint16_t hist_cap;
};


static void builder_destructor(void *arg)
{
	struct fsm_builder *b = arg;
	size_t i;

	for (i = 0; i < b->nstates; i++)
		mem_deref(b->states[i]);
	for (i = 0; i < b->nevents; i++)
		mem_deref(b->events[i]);

	mem_deref(b->states);
	mem_deref(b->enterh);
	mem_deref(b->exith);
	mem_deref(b->events);
	mem_deref(b->trans);
	mem_deref(b->name);
}


static int name_dup(char **dstp, const char *s)
{
	size_t len = strlen(s);
	char *d = mem_zalloc(len + 1, NULL);

	if (!d)
		return ENOMEM;

	memcpy(d, s, len);
	*dstp = d;

	return 0;
}


static size_t cap_for(size_t cap, size_t need)
{
	if (!cap)
		cap = 8;

	while (cap < need)
		cap *= 2;

	return cap;
}


/* A copy of arr (n used elements of sz bytes) with room for cap; arr is
 * released on success, kept on failure. mem_zalloc + copy rather than
 * mem_realloc: see the file comment. */
static void *grown(void *arr, size_t n, size_t cap, size_t sz)
{
	void *p = mem_zalloc(cap * sz, NULL);

	if (!p)
		return NULL;

	if (n)
		memcpy(p, arr, n * sz);

	mem_deref(arr);

	return p;
}


/* Capacity for two more states, one more event and one more transition,
 * so that an operation can fail only before it changes anything. */
static int builder_reserve(struct fsm_builder *b)
{
	size_t cap;
	void *p;

	if (b->nstates + 2 > b->cstates) {
		cap = cap_for(b->cstates, b->nstates + 2);

		p = grown(b->enterh, b->nstates, cap, sizeof(*b->enterh));
		if (!p)
			return ENOMEM;
		b->enterh = p;

		p = grown(b->exith, b->nstates, cap, sizeof(*b->exith));
		if (!p)
			return ENOMEM;
		b->exith = p;

		p = grown(b->states, b->nstates, cap, sizeof(*b->states));
		if (!p)
			return ENOMEM;
		b->states = p;

		/* only now: a failure above leaves cstates true for all */
		b->cstates = cap;
	}

	if (b->nevents + 1 > b->cevents) {
		cap = cap_for(b->cevents, b->nevents + 1);

		p = grown(b->events, b->nevents, cap, sizeof(*b->events));
		if (!p)
			return ENOMEM;
		b->events = p;
		b->cevents = cap;
	}

	if (b->ntrans + 1 > b->ctrans) {
		cap = cap_for(b->ctrans, b->ntrans + 1);

		p = grown(b->trans, b->ntrans, cap, sizeof(*b->trans));
		if (!p)
			return ENOMEM;
		b->trans = p;
		b->ctrans = cap;
	}

	return 0;
}


static int find_name(char * const *names, size_t n, const char *s)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (0 == strcmp(names[i], s))
			return (int)i;
	}

	return -1;
}


static bool name_ok(const char *s)
{
	return s && *s && 0 != strcmp(s, wildcard);
}


/* Interns a name; capacity must have been reserved. */
static int intern(uint16_t *idp, char **names, size_t *np, const char *s)
{
	int i = find_name(names, *np, s);
	int err;

	if (i >= 0) {
		*idp = (uint16_t)i;
		return 0;
	}

	if (*np >= ID_MAX)
		return E2BIG;

	err = name_dup(&names[*np], s);
	if (err)
		return err;

	*idp = (uint16_t)(*np)++;

	return 0;
}


static int intern_state(struct fsm_builder *b, uint16_t *idp, const char *s)
{
	size_t n = b->nstates;
	int err = intern(idp, b->states, &b->nstates, s);

	if (!err && b->nstates > n) {
		b->enterh[n] = NULL;
		b->exith[n]  = NULL;
	}

	return err;
}


int fsm_builder_alloc(struct fsm_builder **bp, const char *name)
{
	struct fsm_builder *b;
	int err;

	if (!bp)
		return EINVAL;

	b = mem_zalloc(sizeof(*b), builder_destructor);
	if (!b)
		return ENOMEM;

	b->initial  = ID_NONE;
	b->hist_cap = FSM_HISTORY_DEFAULT;

	err = name_dup(&b->name, name ? name : "");
	if (err)
		goto out;

	err = builder_reserve(b);

 out:
	if (err)
		mem_deref(b);
	else
		*bp = b;

	return err;
}


int fsm_builder_initial(struct fsm_builder *b, const char *state)
{
	int err;

	if (!b || !name_ok(state))
		return EINVAL;

	err = builder_reserve(b);
	if (err)
		return err;

	return intern_state(b, &b->initial, state);
}


/* A copy of s if it is not in names yet, else NULL */
static int dup_new(char **dupp, char * const *names, size_t n,
		   const char *s)
{
	*dupp = NULL;

	if (find_name(names, n, s) >= 0)
		return 0;

	return name_dup(dupp, s);
}


int fsm_builder_transition(struct fsm_builder *b, const char *from,
			   const char *event, const char *to)
{
	char *nfrom = NULL, *nevent = NULL, *nto = NULL;
	bool any;
	uint16_t fid = ID_NONE, eid, tid;
	size_t i;
	int err;

	if (!b || !from || !*from || !name_ok(event) || !name_ok(to))
		return EINVAL;

	any = 0 == strcmp(from, wildcard);

	err = builder_reserve(b);
	if (err)
		return err;

	/* Copy the new names first and commit after, so that a failure
	 * leaves the builder as it was. */
	if (!any)
		err = dup_new(&nfrom, b->states, b->nstates, from);
	if (!err && (any || strcmp(from, to)))
		err = dup_new(&nto, b->states, b->nstates, to);
	if (!err)
		err = dup_new(&nevent, b->events, b->nevents, event);
	if (err)
		goto out;

	if (b->nstates + !!nfrom + !!nto > ID_MAX ||
	    b->nevents + !!nevent > ID_MAX) {
		err = E2BIG;
		goto out;
	}

	if (nfrom) {
		b->enterh[b->nstates] = NULL;
		b->exith[b->nstates]  = NULL;
		b->states[b->nstates++] = nfrom;
		nfrom = NULL;
	}
	if (nto) {
		b->enterh[b->nstates] = NULL;
		b->exith[b->nstates]  = NULL;
		b->states[b->nstates++] = nto;
		nto = NULL;
	}
	if (nevent) {
		b->events[b->nevents++] = nevent;
		nevent = NULL;
	}

	if (!any)
		fid = (uint16_t)find_name(b->states, b->nstates, from);
	tid = (uint16_t)find_name(b->states, b->nstates, to);
	eid = (uint16_t)find_name(b->events, b->nevents, event);

	/* a later row for the same (from, event) replaces the earlier */
	for (i = 0; i < b->ntrans; i++) {
		if (b->trans[i].from == fid && b->trans[i].event == eid) {
			b->trans[i].to = tid;
			goto out;
		}
	}

	b->trans[b->ntrans].from  = fid;
	b->trans[b->ntrans].event = eid;
	b->trans[b->ntrans].to    = tid;
	++b->ntrans;

 out:
	mem_deref(nfrom);
	mem_deref(nto);
	mem_deref(nevent);

	return err;
}


static int builder_state_h(struct fsm_builder *b, const char *state,
			   fsm_state_h *h, bool enter)
{
	uint16_t id;
	int err;

	if (!b || !name_ok(state))
		return EINVAL;

	err = builder_reserve(b);
	if (err)
		return err;

	err = intern_state(b, &id, state);
	if (err)
		return err;

	if (enter)
		b->enterh[id] = h;
	else
		b->exith[id] = h;

	return 0;
}


int fsm_builder_enter(struct fsm_builder *b, const char *state,
		      fsm_state_h *h)
{
	return builder_state_h(b, state, h, true);
}


int fsm_builder_exit(struct fsm_builder *b, const char *state,
		     fsm_state_h *h)
{
	return builder_state_h(b, state, h, false);
}


int fsm_builder_on_transition(struct fsm_builder *b, fsm_transition_h *h)
{
	if (!b)
		return EINVAL;

	b->transh = h;

	return 0;
}


int fsm_builder_history(struct fsm_builder *b, uint16_t capacity)
{
	if (!b)
		return EINVAL;

	b->hist_cap = capacity;

	return 0;
}


/* --------------------------------------------------------------------
 * Definition
 * ----------------------------------------------------------------- */

/* One allocation: this header, then the arrays, then the name strings.
 * No destructor is needed and an instance costs one pointer to it. */
struct fsm_def {
	const char *name;
	const char **states;
	const char **events;
	fsm_state_h **enterh;
	fsm_state_h **exith;
	fsm_transition_h *transh;
	uint16_t *tab;       /* [state * nevents + event] -> state or NONE */
	uint16_t *wild;      /* [event] -> "*" row target or NONE          */
	uint8_t *expl;       /* [state * nevents + event] 1 = explicit row */
	uint16_t nstates;
	uint16_t nevents;
	uint16_t initial;
	uint16_t hist_cap;
};


static size_t align_up(size_t off, size_t a)
{
	return (off + a - 1) & ~(a - 1);
}


int fsm_build(struct fsm_def **defp, const struct fsm_builder *b)
{
	size_t ns, ne, cells, off, o_states, o_events, o_enter, o_exit;
	size_t o_tab, o_wild, o_expl, o_str, strsz = 0, i;
	struct fsm_def *d;
	uint8_t *base;
	char *s;

	if (!defp || !b)
		return EINVAL;

	if (b->initial == ID_NONE)
		return EINVAL;

	ns    = b->nstates;
	ne    = b->nevents;
	cells = ns * ne;

	strsz += strlen(b->name) + 1;
	for (i = 0; i < ns; i++)
		strsz += strlen(b->states[i]) + 1;
	for (i = 0; i < ne; i++)
		strsz += strlen(b->events[i]) + 1;

	off = sizeof(*d);
	off = align_up(off, _Alignof(const char *));
	o_states = off;  off += ns * sizeof(const char *);
	o_events = off;  off += ne * sizeof(const char *);
	off = align_up(off, _Alignof(fsm_state_h *));
	o_enter = off;   off += ns * sizeof(fsm_state_h *);
	o_exit = off;    off += ns * sizeof(fsm_state_h *);
	off = align_up(off, _Alignof(uint16_t));
	o_tab = off;     off += cells * sizeof(uint16_t);
	o_wild = off;    off += ne * sizeof(uint16_t);
	o_expl = off;    off += cells;
	o_str = off;     off += strsz;

	base = mem_zalloc(off, NULL);
	if (!base)
		return ENOMEM;

	d = (struct fsm_def *)(void *)base;
	d->states = (const char **)(void *)(base + o_states);
	d->events = (const char **)(void *)(base + o_events);
	d->enterh = (fsm_state_h **)(void *)(base + o_enter);
	d->exith  = (fsm_state_h **)(void *)(base + o_exit);
	d->tab    = (uint16_t *)(void *)(base + o_tab);
	d->wild   = (uint16_t *)(void *)(base + o_wild);
	d->expl   = base + o_expl;
	d->transh = b->transh;
	d->nstates  = (uint16_t)ns;
	d->nevents  = (uint16_t)ne;
	d->initial  = b->initial;
	d->hist_cap = b->hist_cap;

	s = (char *)base + o_str;
#define PUT(dst, src) do { size_t l_ = strlen(src) + 1; \
		memcpy(s, (src), l_); (dst) = s; s += l_; } while (0)
	PUT(d->name, b->name);
	for (i = 0; i < ns; i++)
		PUT(d->states[i], b->states[i]);
	for (i = 0; i < ne; i++)
		PUT(d->events[i], b->events[i]);
#undef PUT

	for (i = 0; i < ns; i++) {
		d->enterh[i] = b->enterh[i];
		d->exith[i]  = b->exith[i];
	}

	for (i = 0; i < cells; i++)
		d->tab[i] = ID_NONE;
	for (i = 0; i < ne; i++)
		d->wild[i] = ID_NONE;

	for (i = 0; i < b->ntrans; i++) {
		const struct btrans *t = &b->trans[i];

		if (t->from == ID_NONE) {
			d->wild[t->event] = t->to;
		}
		else {
			size_t c = (size_t)t->from * ne + t->event;

			d->tab[c]  = t->to;
			d->expl[c] = 1;
		}
	}

	/* fold "*" into every state without its own row for that event */
	for (i = 0; i < cells; i++) {
		if (!d->expl[i])
			d->tab[i] = d->wild[i % ne];
	}

	*defp = d;

	return 0;
}


/* The builder a def was made from (up to row order), for copy-on-write */
static int def_builder(struct fsm_builder **bp, const struct fsm_def *d)
{
	struct fsm_builder *b = NULL;
	size_t i, j;
	int err;

	err = fsm_builder_alloc(&b, d->name);
	if (err)
		return err;

	/* states and events first, in id order, so every id is kept */
	for (i = 0; i < d->nstates; i++) {
		err = fsm_builder_enter(b, d->states[i], d->enterh[i]);
		if (err)
			goto out;
		b->exith[i] = d->exith[i];
	}

	for (i = 0; i < d->nevents; i++) {
		uint16_t id;

		err = builder_reserve(b);
		if (err)
			goto out;

		err = intern(&id, b->events, &b->nevents, d->events[i]);
		if (err)
			goto out;
	}

	for (i = 0; i < d->nstates; i++) {
		for (j = 0; j < d->nevents; j++) {
			size_t c = i * d->nevents + j;

			if (!d->expl[c])
				continue;

			err = fsm_builder_transition(b, d->states[i],
						     d->events[j],
						     d->states[d->tab[c]]);
			if (err)
				goto out;
		}
	}

	for (j = 0; j < d->nevents; j++) {
		if (d->wild[j] == ID_NONE)
			continue;

		err = fsm_builder_transition(b, wildcard, d->events[j],
					     d->states[d->wild[j]]);
		if (err)
			goto out;
	}

	b->transh   = d->transh;
	b->initial  = d->initial;
	b->hist_cap = d->hist_cap;

 out:
	if (err)
		mem_deref(b);
	else
		*bp = b;

	return err;
}


static int lookup(char const * const *names, uint16_t n, const char *s)
{
	uint16_t i;

	if (!s)
		return -1;

	for (i = 0; i < n; i++) {
		if (0 == strcmp(names[i], s))
			return i;
	}

	return -1;
}


static uint16_t next_state(const struct fsm_def *d, uint16_t st, uint16_t ev)
{
	return d->tab[(size_t)st * d->nevents + ev];
}


const char *fsm_def_name(const struct fsm_def *d)
{
	return d ? d->name : NULL;
}


unsigned fsm_def_state_count(const struct fsm_def *d)
{
	return d ? d->nstates : 0;
}


unsigned fsm_def_event_count(const struct fsm_def *d)
{
	return d ? d->nevents : 0;
}


int fsm_def_state(const struct fsm_def *d, const char *name)
{
	return d ? lookup(d->states, d->nstates, name) : -1;
}


int fsm_def_event(const struct fsm_def *d, const char *name)
{
	return d ? lookup(d->events, d->nevents, name) : -1;
}


const char *fsm_def_state_name(const struct fsm_def *d, int id)
{
	if (!d || id < 0 || id >= d->nstates)
		return NULL;

	return d->states[id];
}


const char *fsm_def_event_name(const struct fsm_def *d, int id)
{
	if (!d || id < 0 || id >= d->nevents)
		return NULL;

	return d->events[id];
}


/* Markdown, for docs: a row per state with the resolved target of each
 * event (targets that come from a "*" row in italics), then the "*" row
 * itself if there is one. */
int fsm_def_debug(struct re_printf *pf, const struct fsm_def *d)
{
	bool haswild = false;
	uint16_t i, j;
	int err;

	if (!d)
		return 0;

	err = re_hprintf(pf, "**%s** (initial state `%s`)\n\n| state |",
			 *d->name ? d->name : "fsm", d->states[d->initial]);
	for (j = 0; j < d->nevents; j++) {
		err |= re_hprintf(pf, " %s |", d->events[j]);
		haswild |= d->wild[j] != ID_NONE;
	}

	err |= re_hprintf(pf, "\n|---|");
	for (j = 0; j < d->nevents; j++)
		err |= re_hprintf(pf, "---|");
	err |= re_hprintf(pf, "\n");

	for (i = 0; i < d->nstates; i++) {
		err |= re_hprintf(pf, "| %s |", d->states[i]);

		for (j = 0; j < d->nevents; j++) {
			size_t c = (size_t)i * d->nevents + j;

			if (d->tab[c] == ID_NONE)
				err |= re_hprintf(pf, " |");
			else if (d->expl[c])
				err |= re_hprintf(pf, " %s |",
						  d->states[d->tab[c]]);
			else
				err |= re_hprintf(pf, " _%s_ |",
						  d->states[d->tab[c]]);
		}

		err |= re_hprintf(pf, "\n");
	}

	if (haswild) {
		err |= re_hprintf(pf, "| * |");

		for (j = 0; j < d->nevents; j++) {
			if (d->wild[j] == ID_NONE)
				err |= re_hprintf(pf, " |");
			else
				err |= re_hprintf(pf, " %s |",
						  d->states[d->wild[j]]);
		}

		err |= re_hprintf(pf, "\n");
	}

	return err;
}


/* --------------------------------------------------------------------
 * Instance
 * ----------------------------------------------------------------- */

struct hent {
	uint64_t ts_us;
	uint16_t from;
	uint16_t to;
	uint16_t event;
};

/* Lives on the stack of the outermost fsm_transition() while handlers
 * run; the instance only points at it, so idle instances pay 8 bytes. */
struct dispatch {
	uint16_t q[QUEUE_SIZE];
	unsigned head;
	unsigned len;
	unsigned steps;
	uint16_t pending;   /* state once the queue has run */
	bool released;      /* a handler dropped the last outside ref */
};

struct fsm {
	struct fsm_def *def;
	void *arg;
	struct dispatch *disp;
	uint64_t ntrans;
	uint16_t cur;
	uint16_t hist_cap;
	uint16_t err_state;
	uint16_t err_event;
	uint8_t err_kind;
	struct hent hist[];
};


/* The name of an unknown event cannot be kept as an id, and keeping a
 * copy in every instance would cost memory: the latest one is stashed
 * per thread with its owner, which is what fsm_error() reads right after
 * the failed call. */
static _Thread_local struct {
	const struct fsm *owner;
	char name[64];
} unknown_stash;

static _Thread_local char errbuf[ERRBUF_SIZE];


static void fsm_destructor(void *arg)
{
	struct fsm *f = arg;

	mem_deref(f->def);
}


static void set_err(struct fsm *f, enum err_kind kind, uint16_t st,
		    uint16_t ev)
{
	f->err_kind  = (uint8_t)kind;
	f->err_state = st;
	f->err_event = ev;
}


static uint64_t now_us(void)
{
	struct timespec ts;

	(void)clock_gettime(CLOCK_REALTIME, &ts);

	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}


int fsm_alloc(struct fsm **fp, struct fsm_def *def, void *arg)
{
	struct fsm *f;

	if (!fp || !def)
		return EINVAL;

	f = mem_zalloc(sizeof(*f) + (size_t)def->hist_cap * sizeof(f->hist[0]),
		       fsm_destructor);
	if (!f)
		return ENOMEM;

	f->def      = mem_ref(def);
	f->arg      = arg;
	f->cur      = def->initial;
	f->hist_cap = def->hist_cap;

	*fp = f;

	return 0;
}


struct fsm_def *fsm_def(const struct fsm *f)
{
	return f ? f->def : NULL;
}


const char *fsm_current(const struct fsm *f)
{
	return f ? f->def->states[f->cur] : NULL;
}


int fsm_state_id(const struct fsm *f)
{
	return f ? f->cur : -1;
}


/* The state a new event is checked against: during a dispatch, the one
 * the machine will be in when that event gets its turn. */
static uint16_t check_state(const struct fsm *f)
{
	return f->disp ? f->disp->pending : f->cur;
}


bool fsm_can_id(const struct fsm *f, int event_id)
{
	if (!f || event_id < 0 || event_id >= f->def->nevents)
		return false;

	return next_state(f->def, check_state(f), (uint16_t)event_id)
		!= ID_NONE;
}


bool fsm_can(const struct fsm *f, const char *event)
{
	return f && fsm_can_id(f, fsm_def_event(f->def, event));
}


/* Handlers may drop the last reference to f: stop calling them then.
 * Only the outermost call holds the extra reference that makes that
 * visible as nrefs == 1. */
static bool gone(struct fsm *f, struct dispatch *dp)
{
	if (!dp->released && mem_nrefs(f) == 1)
		dp->released = true;

	return dp->released;
}


/* One transition with its handlers. The def is held for the duration, as
 * a handler may replace f->def (fsm_add_transition) while the names
 * handed to the handlers still point into this one. */
static void step(struct fsm *f, struct dispatch *dp, uint16_t ev,
		 uint16_t to)
{
	struct fsm_def *d = mem_ref(f->def);
	uint16_t from = f->cur;
	const char *sfrom = d->states[from], *sto = d->states[to];

	if (d->exith[from]) {
		d->exith[from](f, sfrom, f->arg);
		if (gone(f, dp))
			goto out;
	}

	f->cur = to;

	if (f->hist_cap) {
		struct hent *h = &f->hist[f->ntrans % f->hist_cap];

		h->from  = from;
		h->to    = to;
		h->event = ev;
		h->ts_us = now_us();
	}

	++f->ntrans;

	if (d->transh) {
		d->transh(f, sfrom, sto, d->events[ev], f->arg);
		if (gone(f, dp))
			goto out;
	}

	if (d->enterh[to]) {
		d->enterh[to](f, sto, f->arg);
		(void)gone(f, dp);
	}

 out:
	mem_deref(d);
}


int fsm_transition_id(struct fsm *f, int event_id)
{
	struct dispatch disp;
	uint16_t ev, to;

	if (!f)
		return EINVAL;

	if (event_id < 0 || event_id >= f->def->nevents) {
		set_err(f, ERR_EVENT_ID, f->cur,
			(uint16_t)(event_id < 0 ? ID_NONE : event_id));
		return EINVAL;
	}

	ev = (uint16_t)event_id;
	to = next_state(f->def, check_state(f), ev);
	if (to == ID_NONE) {
		set_err(f, ERR_REFUSED, check_state(f), ev);
		return EPERM;
	}

	/* From a handler: queue it, the outermost call runs it */
	if (f->disp) {
		struct dispatch *dp = f->disp;

		/* the running step, the queue and this one */
		if (dp->steps + 1 + dp->len + 1 > CHAIN_MAX) {
			set_err(f, ERR_LOOP, dp->pending, ev);
			return ELOOP;
		}
		if (dp->len >= QUEUE_SIZE) {
			set_err(f, ERR_OVERFLOW, dp->pending, ev);
			return EOVERFLOW;
		}

		dp->q[(dp->head + dp->len++) % QUEUE_SIZE] = ev;
		dp->pending = to;

		return 0;
	}

	memset(&disp, 0, sizeof(disp));
	disp.pending = to;
	f->disp = &disp;
	mem_ref(f);

	step(f, &disp, ev, to);
	++disp.steps;

	while (disp.len && !disp.released) {

		ev = disp.q[disp.head];
		disp.head = (disp.head + 1) % QUEUE_SIZE;
		--disp.len;

		/* checked when queued, but a handler may have changed the
		 * table since (fsm_add_transition): then the prediction of
		 * the later ones is void as well */
		to = next_state(f->def, f->cur, ev);
		if (to == ID_NONE) {
			set_err(f, ERR_DROPPED, f->cur, ev);
			break;
		}

		step(f, &disp, ev, to);
		++disp.steps;
	}

	f->disp = NULL;
	mem_deref(f);

	return 0;
}


int fsm_transition(struct fsm *f, const char *event)
{
	int id;

	if (!f)
		return EINVAL;

	if (!event) {
		set_err(f, ERR_INVAL, f->cur, ID_NONE);
		return EINVAL;
	}

	id = fsm_def_event(f->def, event);
	if (id < 0) {
		set_err(f, ERR_UNKNOWN_EVENT, f->cur, ID_NONE);
		unknown_stash.owner = f;
		str_ncpy(unknown_stash.name, event,
			 sizeof(unknown_stash.name));
		return EINVAL;
	}

	return fsm_transition_id(f, id);
}


/* Is (from, event) -> to already in the def, so no copy is needed? */
static bool has_row(const struct fsm_def *d, const char *from,
		    const char *event, const char *to)
{
	int e = fsm_def_event(d, event), t = fsm_def_state(d, to), s;

	if (e < 0 || t < 0)
		return false;

	if (0 == strcmp(from, wildcard))
		return d->wild[e] == t;

	s = fsm_def_state(d, from);
	if (s < 0)
		return false;

	return d->expl[(size_t)s * d->nevents + e] &&
		next_state(d, (uint16_t)s, (uint16_t)e) == t;
}


int fsm_add_transition(struct fsm *f, const char *from, const char *event,
		       const char *to)
{
	struct fsm_builder *b = NULL;
	struct fsm_def *d = NULL;
	int err;

	if (!f)
		return EINVAL;

	if (!from || !*from || !name_ok(event) || !name_ok(to)) {
		set_err(f, ERR_INVAL, f->cur, ID_NONE);
		return EINVAL;
	}

	if (has_row(f->def, from, event, to))
		return 0;

	/* Copy-on-write: siblings keep the shared def. Rebuilding from
	 * the def keeps every existing id, so the history and the ids
	 * callers cached stay valid. */
	err = def_builder(&b, f->def);
	if (err)
		goto out;

	err = fsm_builder_transition(b, from, event, to);
	if (err)
		goto out;

	err = fsm_build(&d, b);
	if (err)
		goto out;

	mem_deref(f->def);
	f->def = d;

 out:
	mem_deref(b);

	if (err)
		set_err(f, err == E2BIG ? ERR_LIMIT : ERR_NOMEM, f->cur,
			ID_NONE);

	return err;
}


uint64_t fsm_transitions(const struct fsm *f)
{
	return f ? f->ntrans : 0;
}


size_t fsm_history_count(const struct fsm *f)
{
	if (!f)
		return 0;

	return f->ntrans < f->hist_cap ? (size_t)f->ntrans : f->hist_cap;
}


int fsm_history(const struct fsm *f, size_t i, struct fsm_hist *h)
{
	const struct hent *e;
	size_t n;

	if (!f || !h)
		return EINVAL;

	n = fsm_history_count(f);
	if (i >= n)
		return ENOENT;

	e = &f->hist[(f->ntrans - n + i) % f->hist_cap];

	h->from  = f->def->states[e->from];
	h->to    = f->def->states[e->to];
	h->event = f->def->events[e->event];
	h->ts_us = e->ts_us;

	return 0;
}


const char *fsm_error(const struct fsm *f)
{
	const struct fsm_def *d;
	const char *st = "", *ev = "";

	if (!f)
		return "invalid argument";

	d = f->def;
	if (f->err_state < d->nstates)
		st = d->states[f->err_state];
	if (f->err_event < d->nevents)
		ev = d->events[f->err_event];

	switch ((enum err_kind)f->err_kind) {

	case ERR_NONE:
		return "";

	case ERR_REFUSED:
		(void)re_snprintf(errbuf, sizeof(errbuf),
				  "event '%s' not allowed in state '%s'",
				  ev, st);
		break;

	case ERR_UNKNOWN_EVENT:
		if (unknown_stash.owner == f)
			(void)re_snprintf(errbuf, sizeof(errbuf),
					  "unknown event '%s'",
					  unknown_stash.name);
		else
			str_ncpy(errbuf, "unknown event", sizeof(errbuf));
		break;

	case ERR_EVENT_ID:
		if (f->err_event == ID_NONE)
			str_ncpy(errbuf, "unknown event id", sizeof(errbuf));
		else
			(void)re_snprintf(errbuf, sizeof(errbuf),
					  "unknown event id %u",
					  (unsigned)f->err_event);
		break;

	case ERR_INVAL:
		return "invalid argument";

	case ERR_NOMEM:
		return "out of memory";

	case ERR_LIMIT:
		return "too many states or events";

	case ERR_OVERFLOW:
		(void)re_snprintf(errbuf, sizeof(errbuf),
				  "event '%s' in state '%s': too many queued"
				  " transitions", ev, st);
		break;

	case ERR_LOOP:
		(void)re_snprintf(errbuf, sizeof(errbuf),
				  "event '%s' in state '%s': more than %d"
				  " transitions in one call", ev, st,
				  CHAIN_MAX);
		break;

	case ERR_DROPPED:
		(void)re_snprintf(errbuf, sizeof(errbuf),
				  "queued event '%s' not allowed in state"
				  " '%s' (dropped)", ev, st);
		break;

	default:
		return "unknown error";
	}

	return errbuf;
}


int fsm_debug(struct re_printf *pf, const struct fsm *f)
{
	size_t i, n;
	int err;

	if (!f)
		return 0;

	n = fsm_history_count(f);

	err = re_hprintf(pf, "fsm %s: state=%s transitions=%llu"
			 " history=%zu/%u def=%s\n",
			 *f->def->name ? f->def->name : "-",
			 fsm_current(f), (unsigned long long)f->ntrans,
			 n, (unsigned)f->hist_cap,
			 mem_nrefs(f->def) > 1 ? "shared" : "own");

	if (f->err_kind != ERR_NONE)
		err |= re_hprintf(pf, "  last error: %s\n", fsm_error(f));

	for (i = 0; i < n; i++) {
		struct fsm_hist h;

		if (fsm_history(f, i, &h))
			break;

		err |= re_hprintf(pf, "  %llu.%06llu %s --%s--> %s\n",
				  (unsigned long long)(h.ts_us / 1000000u),
				  (unsigned long long)(h.ts_us % 1000000u),
				  h.from, h.event, h.to);
	}

	return err;
}
