/**
 * server/registrar/location.c  The location store: AOR -> bindings, durable
 *
 * Owns struct location: the authoritative working set of bindings
 * (RFC 3261 §10) in memory on the loop thread - a hash by AOR, each AOR
 * a list of bindings, and a min-heap of all bindings by expiry - and a
 * writer thread that stores every change in a backend (struct
 * loc_backend: "memory:" in loc_memory.c, "sqlite:PATH" in loc_sqlite.c,
 * or the caller's). Exposes location_*(), loc_set_*() and
 * loc_binding_*() in registrar.h. Uses libre (hash, tmr, mqueue) on
 * the loop thread, pthreads and the backend on the writer thread; knows
 * nothing of SIP messages (server/registrar/registrar.c turns a REGISTER
 * into a struct loc_change) nor of transports (the registrar batches
 * the replies of a group commit through the hook of
 * location_set_batch()).
 *
 * A remote store (struct loc_remote in regpriv.h: Redis, loc_redis.c)
 * replaces all of the above: no working set, no writer, no purge; every
 * change and lookup is handed to it, and it calls the done handlers
 * once the remote has answered (see "Remote stores" below).
 *
 * WHY MEMORY FIRST, DISK SECOND
 *
 *   The rule checks of §10.3 step 7 (Call-ID/CSeq ordering) and every
 *   lookup run against memory, so the loop never reads the disk on the
 *   hot path. A change updates memory at once and queues its writes; the
 *   caller's done handler runs only when those writes are committed, so
 *   the registrar's 200 (sent from it) is never ahead of the disk: a
 *   kill -9 after any 200 loses nothing.
 *
 * THREADS AND HAND-OFF
 *
 *   loop thread                        writer thread
 *   location_apply() -> job (malloc) --> queue (mutex + condvar)
 *                                        takes every job queued, up to
 *                                        batch_max writes: one BEGIN ...
 *                                        COMMIT (group commit)
 *   mq_handler() <- mqueue wake-up <--- batch -> done list (mutex)
 *   batchh(false), doneh(err, set, arg) per job, batchh(true)
 *
 *   libre's mem refcounts are not atomic, so nothing mem-allocated
 *   crosses threads: a job is one malloc'd block holding copies of the
 *   strings it writes, and its `cookie` (the loop's struct loc_req) is a
 *   pointer the writer carries back without touching. The mqueue only
 *   carries wake-ups (data NULL), at most one unread at a time (the
 *   `notified` flag), so its pipe cannot fill; mqueue_push() is still
 *   retried with a back-off on EAGAIN. The loop holds the mutex only to
 *   link or unlink lists, never while the disk works.
 *
 * FAILURES
 *
 *   A failed transaction fails every job of its batch (each doneh gets
 *   the error). Memory of those AORs was updated ahead of the disk, so
 *   they become `stale`: location_apply() refuses them (EBUSY) until no
 *   job of theirs is in flight and a reload job has read them back from
 *   the backend (retried at each purge tick while it fails). A job that
 *   commits for an AOR already stale still reports EIO: it was computed
 *   from a state that was never stored.
 *
 * EXPIRY
 *
 *   Every binding sits in a min-heap by expires_at. A periodic timer
 *   pops the expired ones (O(expired log n), at most PURGE_MAX a tick)
 *   and queues their deletes as one job. Lookups and rule checks ignore
 *   expired bindings that are not purged yet.
 */
#include <string.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include <pthread.h>
#include <re.h>
#include "registrar.h"
#include "regpriv.h"


enum {
	DEFAULT_BUCKETS   = 65536,
	DEFAULT_BATCH_MAX = 2048,
	DEFAULT_PURGE_MS  = 1000,
	PURGE_MAX         = 8192,   /* bindings purged per timer tick   */
	HIDX_NONE         = -1,
};


/* ------------------------------------------------------------------ *
 * Data: loop-thread objects (mem_*) and thread-crossing blocks (malloc)
 * ------------------------------------------------------------------ */

/* A binding in memory. Immutable once listed, except le/hidx/mark. */
struct binding {
	struct loc_binding b;   /* first: sets hand out &b              */
	struct le le;           /* in aor->bindl                        */
	struct uri uri;         /* b.contact decoded, for URI equality  */
	uint64_t seq;           /* order of creation, recency tie-break */
	ssize_t hidx;           /* index in loc->heap, or HIDX_NONE     */
	uint64_t mark;          /* scratch of location_apply()          */
};

struct aor {
	struct le he;           /* in loc->aors                          */
	struct le sle;          /* in loc->stalel while stale            */
	char *name;
	struct list bindl;
	uint32_t pending;       /* jobs in flight for this AOR           */
	bool stale;             /* a commit failed: reload before use    */
	bool reloading;
};

struct loc_set {
	char *aor;
	size_t n;
	struct binding *v[];
};

/* The loop's side of one location_apply(), carried by its job */
struct loc_req {
	struct aor *aor;        /* referenced                            */
	struct loc_set *set;
	loc_done_h *doneh;
	void *arg;
};

enum job_type {
	JOB_WRITE = 0,
	JOB_RELOAD,
};

/* One unit of work for the writer: malloc'd, strings inside */
struct job {
	struct job *next;
	enum job_type type;
	void *cookie;           /* struct loc_req / struct aor; opaque to
				 * the writer                            */
	int err;                /* set by the writer                     */
	size_t opc;
	struct loc_op *opv;     /* points into this block                */
	char *aor;              /* JOB_RELOAD: the AOR to read           */
	struct loc_binding **rowv;  /* JOB_RELOAD result (malloc'd each) */
	size_t rowc, rowsz;
};

/* What one writer iteration did, handed back to the loop */
struct batch {
	struct batch *next;
	struct job *jobs;
	int err;
	bool txn;               /* a transaction ran                     */
	double secs;            /* s the transaction took (apply)        */
	char errmsg[160];
};

struct location {
	const struct loc_backend *be;
	void *bstate;
	bool bopen;
	const struct loc_remote *rm;   /* a remote store, or NULL         */
	void *rstate;
	struct location_config cfg;
	struct hash *aors;
	struct list stalel;
	struct binding **heap;
	size_t heapn, heapsz;
	struct tmr tmr_purge;
	struct mqueue *mq;
	uint64_t seq;
	uint64_t markgen;
	struct location_stats stats;
	struct metrics_hist commit_hist;  /* s, each transaction         */
	loc_batch_h *batchh;    /* around a group commit's done handlers */
	void *batch_arg;

	/* shared with the writer, under mtx */
	pthread_mutex_t mtx;
	pthread_cond_t cond;
	bool sync_init;
	struct job *qhead, *qtail;      /* loop -> writer               */
	struct batch *dhead, *dtail;    /* writer -> loop               */
	bool notified;
	bool stop;
	bool closing;           /* loop side: in the destructor          */

	/* the writer's own */
	pthread_t thread;
	bool thread_running;
	struct loc_op *wopv;
	size_t wopsz;
};


/* ------------------------------------------------------------------ *
 * Small helpers
 * ------------------------------------------------------------------ */

uint64_t location_clock(void)
{
	struct timespec ts;

	(void)clock_gettime(CLOCK_REALTIME, &ts);

	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}


static size_t slen(const char *s)
{
	return s ? strlen(s) + 1 : 0;
}


/* Copies s (if any) to *pos, returns the copy and advances *pos */
static const char *scopy(char **pos, const char *s, size_t n)
{
	char *d;

	if (!s)
		return NULL;

	d = *pos;
	memcpy(d, s, n);
	d[n] = '\0';
	*pos += n + 1;

	return d;
}


/* Copies C string s (if any) to *pos */
static const char *sdup(char **pos, const char *s)
{
	return s ? scopy(pos, s, strlen(s)) : NULL;
}


static struct pl pl_of(const char *s)
{
	struct pl pl = PL_INIT;

	if (s)
		pl_set_str(&pl, s);

	return pl;
}


/* ------------------------------------------------------------------ *
 * URI equality (RFC 3261 §19.1.4), for matching Contacts to bindings
 * ------------------------------------------------------------------ */

/* Parameters that make two URIs differ when only one of them has it */
static bool param_significant(const struct pl *name)
{
	static const char *names[] = {"user", "ttl", "method", "maddr",
				      "transport"};
	size_t i;

	for (i = 0; i < ARRAY_SIZE(names); i++)
		if (!pl_strcasecmp(name, names[i]))
			return true;

	return false;
}


/* Finds parameter name in a ";a=b;c" list; *val unset when no value */
static bool param_find(const struct pl *params, const struct pl *name,
		       struct pl *val)
{
	struct pl rest = *params, pn, eq, pv;

	while (rest.l > 0) {
		if (re_regex(rest.p, rest.l, ";[^;=]+[=]*[^;]*", &pn, &eq,
			     &pv))
			break;
		pl_advance(&rest, (pv.p + pv.l) - rest.p);

		if (!pl_casecmp(&pn, name)) {
			*val = pv;
			return true;
		}
	}

	return false;
}


struct pcmp {
	const struct pl *other;
	bool differ;
};


static int param_cmp_handler(const struct pl *name, const struct pl *val,
			     void *arg)
{
	struct pcmp *pc = arg;
	struct pl oval = PL_INIT;

	if (!param_find(pc->other, name, &oval)) {
		if (param_significant(name))
			pc->differ = true;
		return pc->differ ? EBADMSG : 0;
	}

	if (pl_casecmp(val, &oval))
		pc->differ = true;

	return pc->differ ? EBADMSG : 0;
}


static bool params_equal(const struct pl *a, const struct pl *b)
{
	struct pcmp pc;

	pc.other = b;
	pc.differ = false;
	(void)uri_params_apply(a, param_cmp_handler, &pc);
	if (pc.differ)
		return false;

	pc.other = a;
	(void)uri_params_apply(b, param_cmp_handler, &pc);

	return !pc.differ;
}


/* Scheme and host compare case-insensitively, user and password
 * case-sensitively, ports must both be absent or equal, parameters per
 * §19.1.4, headers as written. %-escapes are compared as written. */
static bool uri_equal(const struct uri *a, const struct uri *b)
{
	if (pl_casecmp(&a->scheme, &b->scheme) ||
	    pl_cmp(&a->user, &b->user) ||
	    pl_cmp(&a->password, &b->password) ||
	    pl_casecmp(&a->host, &b->host) ||
	    a->port != b->port)
		return false;

	if (pl_cmp(&a->headers, &b->headers))
		return false;

	return params_equal(&a->params, &b->params);
}


/* ------------------------------------------------------------------ *
 * AOR canonicalisation (RFC 3261 §10.3 step 5)
 * ------------------------------------------------------------------ */

static int lower_pl(struct re_printf *pf, const struct pl *pl)
{
	char buf[64];
	size_t i, n;
	int err = 0;

	for (i = 0; i < pl->l && !err; i += n) {
		size_t j;

		n = min(pl->l - i, sizeof(buf));
		for (j = 0; j < n; j++) {
			char c = pl->p[i + j];
			buf[j] = (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
		}
		err = pf->vph(buf, n, pf->arg);
	}

	return err;
}


int location_aor(char **aorp, const struct uri *uri)
{
	bool v6;

	if (!aorp || !uri)
		return EINVAL;

	if (pl_strcasecmp(&uri->scheme, "sip") &&
	    pl_strcasecmp(&uri->scheme, "sips"))
		return ENOTSUP;

	if (!pl_isset(&uri->host))
		return EINVAL;

	v6 = uri->af == AF_INET6;

	if (uri->port)
		return re_sdprintf(aorp, "%H:%r%s%s%H%s:%u",
				   lower_pl, &uri->scheme, &uri->user,
				   pl_isset(&uri->user) ? "@" : "",
				   v6 ? "[" : "", lower_pl, &uri->host,
				   v6 ? "]" : "", uri->port);

	return re_sdprintf(aorp, "%H:%r%s%s%H%s",
			   lower_pl, &uri->scheme, &uri->user,
			   pl_isset(&uri->user) ? "@" : "",
			   v6 ? "[" : "", lower_pl, &uri->host,
			   v6 ? "]" : "");
}


/* ------------------------------------------------------------------ *
 * Bindings
 * ------------------------------------------------------------------ */

static void binding_destructor(void *arg)
{
	struct binding *bd = arg;

	list_unlink(&bd->le);
}


/* The strings of a binding, as pointer-length (unset = NULL) */
struct bstrs {
	struct pl aor, contact, callid, instance, path, received, ua, node;
};


static void bstrs_of(struct bstrs *s, const struct loc_binding *b)
{
	s->aor      = pl_of(b->aor);
	s->contact  = pl_of(b->contact);
	s->callid   = pl_of(b->callid);
	s->instance = pl_of(b->instance);
	s->path     = pl_of(b->path);
	s->received = pl_of(b->received);
	s->ua       = pl_of(b->user_agent);
	s->node     = pl_of(b->node);
}


/* pl->p NULL: no string; "" (p set, l 0) is kept as "" */
static size_t plsz(const struct pl *pl)
{
	return pl->p ? pl->l + 1 : 0;
}


static const char *plcopy(char **pos, const struct pl *pl)
{
	return pl->p ? scopy(pos, pl->p, pl->l) : NULL;
}


/* One allocation holds the binding and its strings. nums gives the
 * numeric fields; its strings are ignored (s has them). */
static int binding_alloc(struct binding **bdp, const struct bstrs *s,
			 const struct loc_binding *nums)
{
	struct binding *bd;
	struct pl cpl;
	size_t sz;
	char *pos;

	if (!pl_isset(&s->aor) || !pl_isset(&s->contact) || !s->callid.p)
		return EINVAL;

	sz = plsz(&s->aor) + plsz(&s->contact) + plsz(&s->callid) +
		plsz(&s->instance) + plsz(&s->path) + plsz(&s->received) +
		plsz(&s->ua) + plsz(&s->node);

	bd = mem_zalloc(sizeof(*bd) + sz, binding_destructor);
	if (!bd)
		return ENOMEM;

	bd->b = *nums;
	pos = (char *)(bd + 1);
	bd->b.aor        = plcopy(&pos, &s->aor);
	bd->b.contact    = plcopy(&pos, &s->contact);
	bd->b.callid     = plcopy(&pos, &s->callid);
	bd->b.instance   = plcopy(&pos, &s->instance);
	bd->b.path       = plcopy(&pos, &s->path);
	bd->b.received   = plcopy(&pos, &s->received);
	bd->b.user_agent = plcopy(&pos, &s->ua);
	bd->b.node       = plcopy(&pos, &s->node);
	bd->hidx = HIDX_NONE;

	pl_set_str(&cpl, bd->b.contact);
	if (uri_decode(&bd->uri, &cpl)) {
		mem_deref(bd);
		return EINVAL;
	}

	*bdp = bd;

	return 0;
}


uint32_t loc_binding_expires(const struct loc_binding *b, uint64_t now)
{
	uint64_t left;

	if (!b || b->expires_at <= now)
		return 0;

	left = (b->expires_at - now + 999) / 1000;

	return left > UINT32_MAX ? UINT32_MAX : (uint32_t)left;
}


int loc_binding_debug(struct re_printf *pf, const struct loc_binding *b)
{
	if (!b)
		return 0;

	return re_hprintf(pf, "aor=%H contact=%H expires=%u q=%u.%03u "
			  "callid=%H cseq=%u instance=%H reg_id=%u path=%H "
			  "received=%H user_agent=%H",
			  log_q, b->aor, log_q, b->contact,
			  loc_binding_expires(b, location_clock()),
			  b->q / 1000, b->q % 1000, log_q, b->callid,
			  b->cseq, log_q, b->instance ? b->instance : "",
			  b->reg_id, log_q, b->path ? b->path : "",
			  log_q, b->received ? b->received : "",
			  log_q, b->user_agent ? b->user_agent : "");
}


/* ------------------------------------------------------------------ *
 * Expiry heap: min-heap of bindings by expires_at
 * ------------------------------------------------------------------ */

static bool heap_less(const struct binding *a, const struct binding *b)
{
	return a->b.expires_at < b->b.expires_at;
}


static void heap_set(struct location *loc, size_t i, struct binding *bd)
{
	loc->heap[i] = bd;
	bd->hidx = (ssize_t)i;
}


static void heap_up(struct location *loc, size_t i)
{
	struct binding *bd = loc->heap[i];

	while (i > 0) {
		size_t parent = (i - 1) / 2;

		if (!heap_less(bd, loc->heap[parent]))
			break;
		heap_set(loc, i, loc->heap[parent]);
		i = parent;
	}
	heap_set(loc, i, bd);
}


static void heap_down(struct location *loc, size_t i)
{
	struct binding *bd = loc->heap[i];

	for (;;) {
		size_t c = 2 * i + 1;

		if (c >= loc->heapn)
			break;
		if (c + 1 < loc->heapn &&
		    heap_less(loc->heap[c + 1], loc->heap[c]))
			++c;
		if (!heap_less(loc->heap[c], bd))
			break;
		heap_set(loc, i, loc->heap[c]);
		i = c;
	}
	heap_set(loc, i, bd);
}


/* Reserves room for n more entries, so that heap_insert cannot fail */
static int heap_reserve(struct location *loc, size_t n)
{
	struct binding **h;
	size_t sz;

	if (loc->heapn + n <= loc->heapsz)
		return 0;

	sz = loc->heapsz ? loc->heapsz : 1024;
	while (sz < loc->heapn + n)
		sz *= 2;

	h = realloc(loc->heap, sz * sizeof(*h));
	if (!h)
		return ENOMEM;

	loc->heap = h;
	loc->heapsz = sz;

	return 0;
}


static void heap_insert(struct location *loc, struct binding *bd)
{
	loc->heap[loc->heapn++] = bd;
	heap_up(loc, loc->heapn - 1);
}


static void heap_remove(struct location *loc, struct binding *bd)
{
	struct binding *moved;
	size_t i;

	if (bd->hidx == HIDX_NONE)
		return;

	i = (size_t)bd->hidx;
	bd->hidx = HIDX_NONE;

	if (i == --loc->heapn)
		return;

	moved = loc->heap[loc->heapn];
	heap_set(loc, i, moved);
	heap_down(loc, i);
	heap_up(loc, (size_t)moved->hidx);
}


/* ------------------------------------------------------------------ *
 * AORs
 * ------------------------------------------------------------------ */

static void aor_destructor(void *arg)
{
	struct aor *a = arg;

	list_flush(&a->bindl);
	list_unlink(&a->sle);
	hash_unlink(&a->he);
	mem_deref(a->name);
}


static bool aor_cmp_handler(struct le *le, void *arg)
{
	const struct aor *a = le->data;
	const struct pl *name = arg;

	return 0 == pl_strcmp(name, a->name);
}


static struct aor *aor_find(const struct location *loc,
			    const struct pl *name)
{
	struct le *le;

	le = hash_lookup(loc->aors, hash_joaat_pl(name), aor_cmp_handler,
			 (void *)name);

	return le ? le->data : NULL;
}


static int aor_get(struct aor **ap, struct location *loc,
		   const struct pl *name)
{
	struct aor *a;
	int err;

	a = aor_find(loc, name);
	if (a) {
		*ap = a;
		return 0;
	}

	a = mem_zalloc(sizeof(*a), aor_destructor);
	if (!a)
		return ENOMEM;

	err = pl_strdup(&a->name, name);
	if (err) {
		mem_deref(a);
		return err;
	}

	hash_append(loc->aors, hash_joaat_pl(name), &a->he, a);
	++loc->stats.aors;
	*ap = a;

	return 0;
}


/* Takes bd (a new reference) into a's list and the heap */
static void aor_add(struct location *loc, struct aor *a, struct binding *bd)
{
	list_append(&a->bindl, &bd->le, bd);
	heap_insert(loc, bd);
	++loc->stats.bindings;
}


/* Drops bd from memory (its list, the heap, the list's reference) */
static void aor_drop(struct location *loc, struct binding *bd)
{
	heap_remove(loc, bd);
	list_unlink(&bd->le);
	--loc->stats.bindings;
	mem_deref(bd);
}


/* An AOR with no binding and nothing in flight leaves memory */
static void aor_gc(struct location *loc, struct aor *a)
{
	if (!a || a->bindl.head || a->pending || a->stale)
		return;

	if (!a->he.list)
		return;

	hash_unlink(&a->he);
	--loc->stats.aors;
	mem_deref(a);
}


/* ------------------------------------------------------------------ *
 * Sets
 * ------------------------------------------------------------------ */

static void set_destructor(void *arg)
{
	struct loc_set *set = arg;
	size_t i;

	for (i = 0; i < set->n; i++)
		mem_deref(set->v[i]);
	mem_deref(set->aor);
}


/* q descending, then most recent first */
static int set_order(const void *pa, const void *pb)
{
	const struct binding *a = *(struct binding * const *)pa;
	const struct binding *b = *(struct binding * const *)pb;

	if (a->b.q != b->b.q)
		return a->b.q > b->b.q ? -1 : 1;
	if (a->b.updated_at != b->b.updated_at)
		return a->b.updated_at > b->b.updated_at ? -1 : 1;
	if (a->seq != b->seq)
		return a->seq > b->seq ? -1 : 1;

	return 0;
}


/* A set of the bindings of bv that are live at now, sorted */
static int set_alloc(struct loc_set **setp, const struct pl *aor,
		     struct binding * const *bv, size_t bn, uint64_t now)
{
	struct loc_set *set;
	size_t i;
	int err;

	set = mem_zalloc(sizeof(*set) + bn * sizeof(set->v[0]),
			 set_destructor);
	if (!set)
		return ENOMEM;

	err = pl_strdup(&set->aor, aor);
	if (err) {
		mem_deref(set);
		return err;
	}

	for (i = 0; i < bn; i++) {
		if (bv[i]->b.expires_at <= now)
			continue;
		set->v[set->n++] = mem_ref(bv[i]);
	}

	qsort(set->v, set->n, sizeof(set->v[0]), set_order);
	*setp = set;

	return 0;
}


const char *loc_set_aor(const struct loc_set *set)
{
	return set ? set->aor : NULL;
}


size_t loc_set_count(const struct loc_set *set)
{
	return set ? set->n : 0;
}


const struct loc_binding *loc_set_binding(const struct loc_set *set,
					  size_t i)
{
	if (!set || i >= set->n)
		return NULL;

	return &set->v[i]->b;
}


int loc_set_debug(struct re_printf *pf, const struct loc_set *set)
{
	size_t i;
	int err;

	if (!set)
		return 0;

	err = re_hprintf(pf, "aor=%H bindings=%zu\n", log_q, set->aor,
			 set->n);
	for (i = 0; i < set->n; i++)
		err |= re_hprintf(pf, "  %H\n", loc_binding_debug,
				  &set->v[i]->b);

	return err;
}


/* ------------------------------------------------------------------ *
 * Jobs (malloc'd: they cross to the writer thread)
 * ------------------------------------------------------------------ */

static size_t row_strsz(const struct loc_binding *b)
{
	return slen(b->aor) + slen(b->contact) + slen(b->callid) +
		slen(b->instance) + slen(b->path) + slen(b->received) +
		slen(b->user_agent) + slen(b->node);
}


/* Deep copy of b's strings to *pos (room reserved by row_strsz) */
static void row_copy(struct loc_binding *d, const struct loc_binding *b,
		     char **pos)
{
	*d = *b;
	d->aor        = sdup(pos, b->aor);
	d->contact    = sdup(pos, b->contact);
	d->callid     = sdup(pos, b->callid);
	d->instance   = sdup(pos, b->instance);
	d->path       = sdup(pos, b->path);
	d->received   = sdup(pos, b->received);
	d->user_agent = sdup(pos, b->user_agent);
	d->node       = sdup(pos, b->node);
}


/* A write job: deletes of delv (aor and contact only), then upserts
 * of upv, all copied into one block. */
static struct job *job_write(void *cookie, struct binding * const *delv,
			     size_t deln, struct binding * const *upv,
			     size_t upn)
{
	struct job *job;
	size_t sz = 0, i, k = 0;
	char *pos;

	for (i = 0; i < deln; i++)
		sz += slen(delv[i]->b.aor) + slen(delv[i]->b.contact);
	for (i = 0; i < upn; i++)
		sz += row_strsz(&upv[i]->b);

	job = malloc(sizeof(*job) + (deln + upn) * sizeof(struct loc_op) +
		     sz);
	if (!job)
		return NULL;

	memset(job, 0, sizeof(*job));
	job->type = JOB_WRITE;
	job->cookie = cookie;
	job->opc = deln + upn;
	job->opv = (struct loc_op *)(job + 1);
	pos = (char *)(job->opv + job->opc);

	for (i = 0; i < deln; i++, k++) {
		const struct loc_binding *b = &delv[i]->b;
		struct loc_op *op = &job->opv[k];

		memset(op, 0, sizeof(*op));
		op->type = LOC_OP_DELETE;
		op->b.aor = sdup(&pos, b->aor);
		op->b.contact = sdup(&pos, b->contact);
	}

	for (i = 0; i < upn; i++, k++) {
		struct loc_op *op = &job->opv[k];

		op->type = LOC_OP_UPSERT;
		row_copy(&op->b, &upv[i]->b, &pos);
	}

	return job;
}


static struct job *job_reload(struct aor *a)
{
	size_t n = strlen(a->name);
	struct job *job;

	job = malloc(sizeof(*job) + n + 1);
	if (!job)
		return NULL;

	memset(job, 0, sizeof(*job));
	job->type = JOB_RELOAD;
	job->cookie = a;
	job->aor = (char *)(job + 1);
	memcpy(job->aor, a->name, n + 1);

	return job;
}


static void job_free(struct job *job)
{
	size_t i;

	for (i = 0; i < job->rowc; i++)
		free(job->rowv[i]);
	free(job->rowv);
	free(job);
}


/* Hands job to the writer; cannot fail */
static void job_submit(struct location *loc, struct job *job)
{
	loc->stats.pending += job->opc;

	pthread_mutex_lock(&loc->mtx);
	job->next = NULL;
	if (loc->qtail)
		loc->qtail->next = job;
	else
		loc->qhead = job;
	loc->qtail = job;
	pthread_cond_signal(&loc->cond);
	pthread_mutex_unlock(&loc->mtx);
}


/* ------------------------------------------------------------------ *
 * Writer thread
 * ------------------------------------------------------------------ */

/* Takes the next batch: a reload job alone, or every write job queued
 * up to batch_max writes (at least one job). NULL: stop. */
static struct batch *batch_take(struct location *loc)
{
	struct batch *bt;
	struct job *last;
	size_t ops;

	bt = calloc(1, sizeof(*bt));
	if (!bt)
		return NULL;

	pthread_mutex_lock(&loc->mtx);

	while (!loc->qhead && !loc->stop)
		pthread_cond_wait(&loc->cond, &loc->mtx);

	if (!loc->qhead) {
		pthread_mutex_unlock(&loc->mtx);
		free(bt);
		return NULL;
	}

	bt->jobs = last = loc->qhead;
	ops = last->opc;

	if (last->type == JOB_WRITE) {
		while (last->next && last->next->type == JOB_WRITE &&
		       ops + last->next->opc <= loc->cfg.batch_max) {
			last = last->next;
			ops += last->opc;
		}
	}

	loc->qhead = last->next;
	if (!loc->qhead)
		loc->qtail = NULL;
	last->next = NULL;

	pthread_mutex_unlock(&loc->mtx);

	return bt;
}


static int reload_row_handler(const struct loc_binding *b, void *arg)
{
	struct job *job = arg;
	struct loc_binding *row;
	char *pos;

	if (job->rowc == job->rowsz) {
		size_t sz = job->rowsz ? job->rowsz * 2 : 8;
		struct loc_binding **v = realloc(job->rowv,
						 sz * sizeof(*v));
		if (!v)
			return ENOMEM;
		job->rowv = v;
		job->rowsz = sz;
	}

	row = malloc(sizeof(*row) + row_strsz(b));
	if (!row)
		return ENOMEM;

	pos = (char *)(row + 1);
	row_copy(row, b, &pos);
	job->rowv[job->rowc++] = row;

	return 0;
}


static void batch_run(struct location *loc, struct batch *bt)
{
	const struct loc_backend *be = loc->be;
	struct job *job;
	size_t n = 0;
	int err = 0;

	if (bt->jobs->type == JOB_RELOAD) {
		job = bt->jobs;
		err = be->load(loc->bstate, job->aor, reload_row_handler,
			       job);
		goto out;
	}

	for (job = bt->jobs; job; job = job->next)
		n += job->opc;

	if (!n)
		goto out;

	if (n > loc->wopsz) {
		struct loc_op *v = realloc(loc->wopv, n * sizeof(*v));
		if (!v) {
			err = ENOMEM;
			goto out;
		}
		loc->wopv = v;
		loc->wopsz = n;
	}

	n = 0;
	for (job = bt->jobs; job; job = job->next) {
		memcpy(loc->wopv + n, job->opv, job->opc * sizeof(*job->opv));
		n += job->opc;
	}

	bt->txn = true;
	{
		struct timespec t0, t1;

		(void)clock_gettime(CLOCK_MONOTONIC, &t0);
		err = be->apply(loc->bstate, loc->wopv, n);
		(void)clock_gettime(CLOCK_MONOTONIC, &t1);
		bt->secs = (double)(t1.tv_sec - t0.tv_sec) +
			(double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	}

 out:
	bt->err = err;
	for (job = bt->jobs; job; job = job->next)
		job->err = err;

	if (err && be->errmsg) {
		const char *m = be->errmsg(loc->bstate);
		str_ncpy(bt->errmsg, m ? m : "", sizeof(bt->errmsg));
	}
}


/* Wakes the loop, once per drain of the done list */
static void writer_notify(struct location *loc)
{
	unsigned delay_us = 100;
	int err;

	while ((err = mqueue_push(loc->mq, 0, NULL)) != 0) {
		if (err != EAGAIN && err != EINTR)
			break;   /* the loop is gone: nothing to wake */
		usleep(delay_us);
		if (delay_us < 100000)
			delay_us *= 2;
	}
}


static void *writer_main(void *arg)
{
	struct location *loc = arg;
	struct batch *bt;

	while ((bt = batch_take(loc)) != NULL) {
		bool wake;

		batch_run(loc, bt);

		pthread_mutex_lock(&loc->mtx);
		if (loc->dtail)
			loc->dtail->next = bt;
		else
			loc->dhead = bt;
		loc->dtail = bt;
		wake = !loc->notified;
		loc->notified = true;
		pthread_mutex_unlock(&loc->mtx);

		if (wake)
			writer_notify(loc);
	}

	return NULL;
}


/* ------------------------------------------------------------------ *
 * Completions, on the loop thread
 * ------------------------------------------------------------------ */

static void reload_submit(struct location *loc, struct aor *a)
{
	struct job *job;

	if (!a->stale || a->pending || a->reloading || loc->closing)
		return;

	job = job_reload(a);
	if (!job)
		return;  /* retried at the next purge tick */

	a->reloading = true;
	++a->pending;
	job_submit(loc, job);
}


static void aor_mark_stale(struct location *loc, struct aor *a)
{
	if (a->stale)
		return;

	a->stale = true;
	list_append(&loc->stalel, &a->sle, a);
	++loc->stats.stale;
}


/* Memory of a takes the backend's rows (an AOR reloaded) */
static void reload_done(struct location *loc, struct job *job)
{
	struct aor *a = job->cookie;
	struct le *le;
	size_t i;

	a->reloading = false;
	--a->pending;

	if (job->err) {
		slog(LOG_WARN, "location", "reload_failed", NULL,
		     "aor=%H err=%m", log_q, a->name, job->err);
		return;
	}

	if (heap_reserve(loc, job->rowc))
		return;

	while ((le = list_head(&a->bindl)) != NULL)
		aor_drop(loc, le->data);

	for (i = 0; i < job->rowc; i++) {
		struct binding *bd;
		struct bstrs s;

		bstrs_of(&s, job->rowv[i]);
		if (binding_alloc(&bd, &s, job->rowv[i]))
			continue;
		bd->seq = ++loc->seq;
		aor_add(loc, a, bd);
	}

	a->stale = false;
	list_unlink(&a->sle);
	--loc->stats.stale;

	slog(LOG_INFO, "location", "reloaded", NULL, "aor=%H bindings=%zu",
	     log_q, a->name, job->rowc);

	aor_gc(loc, a);
}


static void write_done(struct location *loc, struct job *job)
{
	struct loc_req *req = job->cookie;
	struct aor *a;
	int err = job->err;

	if (!req)
		return;  /* expiry purge: nothing waits for it */

	a = req->aor;
	--a->pending;

	if (err)
		aor_mark_stale(loc, a);
	else if (a->stale)
		err = EIO;

	if (req->doneh)
		req->doneh(err, err ? NULL : req->set, req->arg);

	reload_submit(loc, a);
	mem_deref(req);  /* after doneh: req holds a */
	aor_gc(loc, a);
}


static void batch_done(struct location *loc, struct batch *bt)
{
	struct job *job;
	size_t ops = 0;

	for (job = bt->jobs; job; job = job->next)
		ops += job->opc;

	loc->stats.pending -= ops;
	/* measured by the writer, counted here: the histogram is the
	 * loop's */
	if (bt->txn)
		metrics_hist_observe(&loc->commit_hist, bt->secs);
	if (bt->err) {
		loc->stats.failed += ops;
		slog(LOG_ERROR, "location", "commit_failed", NULL,
		     "backend=%s ops=%zu err=%m msg=%H", loc->be->name, ops,
		     bt->err, log_q, bt->errmsg);
	}
	else {
		loc->stats.ops += ops;
		if (bt->txn)
			++loc->stats.commits;
	}

	/* the user's hook around the done handlers of a whole group
	 * commit (the registrar's replies leave together: sendmmsg) */
	if (loc->batchh)
		loc->batchh(false, loc->batch_arg);
	while ((job = bt->jobs) != NULL) {
		bt->jobs = job->next;

		if (job->type == JOB_RELOAD)
			reload_done(loc, job);
		else
			write_done(loc, job);

		job_free(job);
	}
	if (loc->batchh)
		loc->batchh(true, loc->batch_arg);

	free(bt);
}


static struct batch *done_take(struct location *loc)
{
	struct batch *list;

	pthread_mutex_lock(&loc->mtx);
	list = loc->dhead;
	loc->dhead = loc->dtail = NULL;
	loc->notified = false;
	pthread_mutex_unlock(&loc->mtx);

	return list;
}


static void mq_handler(int id, void *data, void *arg)
{
	struct location *loc = arg;
	struct batch *bt;
	(void)id;
	(void)data;

	/* a done handler may drop the last reference to loc */
	mem_ref(loc);

	bt = done_take(loc);
	while (bt) {
		struct batch *next = bt->next;

		batch_done(loc, bt);
		bt = next;
	}

	mem_deref(loc);
}


/* ------------------------------------------------------------------ *
 * Expiry purge
 * ------------------------------------------------------------------ */

static void purge_handler(void *arg)
{
	struct location *loc = arg;
	struct binding **v = NULL;
	uint64_t now = location_clock();
	size_t n = 0, i;
	struct le *le;

	while (loc->heapn && loc->heap[0]->b.expires_at <= now &&
	       n < PURGE_MAX) {
		struct binding *bd = loc->heap[0];

		if (!v) {
			v = malloc(PURGE_MAX * sizeof(*v));
			if (!v)
				break;
		}

		heap_remove(loc, bd);
		v[n++] = bd;  /* keeps the list's reference for now */
	}

	if (n) {
		/* if this fails, the rows stay on disk, expired, and
		 * are purged again after the next load */
		struct job *job = job_write(NULL, v, n, NULL, 0);

		for (i = 0; i < n; i++) {
			struct pl name = pl_of(v[i]->b.aor);
			struct aor *a = aor_find(loc, &name);

			list_unlink(&v[i]->le);
			--loc->stats.bindings;
			mem_deref(v[i]);
			aor_gc(loc, a);
		}

		loc->stats.expired += n;
		if (job)
			job_submit(loc, job);
	}

	free(v);

	/* stale AORs whose reload failed or could not start */
	for (le = list_head(&loc->stalel); le; ) {
		struct aor *a = le->data;

		le = le->next;
		reload_submit(loc, a);
	}

	tmr_start(&loc->tmr_purge,
		  loc->heapn && loc->heap[0]->b.expires_at <= now ?
		  0 : loc->cfg.purge_ms, purge_handler, loc);
}


/* ------------------------------------------------------------------ *
 * Changes (RFC 3261 §10.3 steps 6-7)
 * ------------------------------------------------------------------ */

/* A growable array of bindings (not holding references) */
struct bvec {
	struct binding **v;
	size_t n, sz;
};


static int bvec_push(struct bvec *bv, struct binding *bd)
{
	if (bv->n == bv->sz) {
		size_t sz = bv->sz ? bv->sz * 2 : 8;
		struct binding **v = realloc(bv->v, sz * sizeof(*v));

		if (!v)
			return ENOMEM;
		bv->v = v;
		bv->sz = sz;
	}

	bv->v[bv->n++] = bd;

	return 0;
}


/* Does binding bd stand for contact c (decoded URI cu)? RFC 5626: the
 * same +sip.instance and reg-id; RFC 3261 §10.3: an equal URI. */
static bool binding_match(const struct binding *bd,
			  const struct loc_contact *c, const struct uri *cu)
{
	if (pl_isset(&c->instance) && bd->b.instance &&
	    0 == pl_strcmp(&c->instance, bd->b.instance) &&
	    bd->b.reg_id == c->reg_id)
		return true;

	return uri_equal(&bd->uri, cu);
}


/* §10.3 step 7: an existing binding with the request's Call-ID may
 * only be changed by a higher CSeq. */
static bool out_of_order(const struct binding *bd,
			 const struct loc_change *chg)
{
	return 0 == pl_strcmp(&chg->callid, bd->b.callid) &&
		chg->cseq <= bd->b.cseq;
}


static int change_check(const struct loc_change *chg)
{
	size_t i;

	if (!pl_isset(&chg->aor) || !pl_isset(&chg->callid))
		return EINVAL;

	if (chg->contactc && !chg->contactv)
		return EINVAL;

	if (chg->wildcard && chg->contactc)
		return EINVAL;

	for (i = 0; i < chg->contactc; i++) {
		if (!pl_isset(&chg->contactv[i].uri) ||
		    chg->contactv[i].q > 1000)
			return EINVAL;
	}

	return 0;
}


static void req_destructor(void *arg)
{
	struct loc_req *req = arg;

	mem_deref(req->set);
	mem_deref(req->aor);
}


/* What location_apply() works on, from one step to the next. The
 * vectors hold no references, except added (new bindings, not yet in
 * memory). */
struct apply {
	struct location *loc;
	const struct loc_change *chg;
	struct aor *a;
	uint64_t now;
	uint64_t gen;           /* marks the bindings of the new set     */
	struct uri *curiv;      /* chg's contact URIs, decoded           */
	struct bvec live;       /* the AOR's bindings not expired        */
	struct bvec next;       /* the AOR's bindings after the change   */
	struct bvec added;      /* new bindings, referenced               */
	struct bvec dropped;    /* bindings whose rows are deleted       */
};


static void apply_reset(struct apply *ap)
{
	size_t i;

	for (i = 0; i < ap->added.n; i++)
		mem_deref(ap->added.v[i]);
	free(ap->live.v);
	free(ap->next.v);
	free(ap->added.v);
	free(ap->dropped.v);
	free(ap->curiv);
}


/* The contacts' URIs, decoded once for matching them to bindings */
static int apply_decode(struct apply *ap)
{
	const struct loc_change *chg = ap->chg;
	size_t i;

	if (!chg->contactc)
		return 0;

	ap->curiv = calloc(chg->contactc, sizeof(*ap->curiv));
	if (!ap->curiv)
		return ENOMEM;

	for (i = 0; i < chg->contactc; i++) {
		if (uri_decode(&ap->curiv[i], &chg->contactv[i].uri))
			return EINVAL;
	}

	return 0;
}


/* The AOR's live bindings: expired ones go whatever the request says */
static int apply_live(struct apply *ap)
{
	struct le *le;
	int err;

	LIST_FOREACH(&ap->a->bindl, le) {
		struct binding *bd = le->data;

		if (bd->b.expires_at <= ap->now)
			continue;

		err = bvec_push(&ap->live, bd);
		if (err)
			return err;
	}

	return 0;
}


/* §10.3 step 7's ordering rule, against the state before the request:
 * EPROTO when a binding the request would change (any, for a wildcard,
 * step 6) carries its Call-ID and a CSeq not lower. The whole request
 * fails then; nothing has changed. */
static int apply_check_order(const struct apply *ap)
{
	const struct loc_change *chg = ap->chg;
	size_t i, j;

	for (i = 0; i < ap->live.n; i++) {
		const struct binding *bd = ap->live.v[i];

		if (chg->wildcard && out_of_order(bd, chg))
			return EPROTO;

		for (j = 0; j < chg->contactc; j++) {
			if (binding_match(bd, &chg->contactv[j],
					  &ap->curiv[j]) &&
			    out_of_order(bd, chg))
				return EPROTO;
		}
	}

	return 0;
}


/* §10.3 step 7, "the registrar adds a binding": the binding of contact
 * c, new, not in memory yet */
static int binding_of_contact(struct binding **bdp, struct location *loc,
			      const struct loc_change *chg,
			      const struct loc_contact *c, uint64_t now)
{
	struct loc_binding nums;
	struct binding *bd;
	struct bstrs s;
	int err;

	memset(&nums, 0, sizeof(nums));
	nums.expires_at = now + (uint64_t)c->expires * 1000;
	nums.updated_at = now;
	nums.q = c->q;
	nums.cseq = chg->cseq;
	nums.reg_id = pl_isset(&c->instance) ? c->reg_id : 0;

	s.aor = chg->aor;
	s.contact = c->uri;
	s.callid = chg->callid;
	s.instance = c->instance;
	s.path = chg->path;
	s.received = chg->received;
	s.ua = chg->user_agent;
	s.node = (struct pl)PL_INIT;  /* one node: nothing to tell */
	if (!pl_isset(&s.instance))
		s.instance = (struct pl)PL_INIT;
	if (!pl_isset(&s.path))
		s.path = (struct pl)PL_INIT;
	if (!pl_isset(&s.received))
		s.received = (struct pl)PL_INIT;
	if (!pl_isset(&s.ua))
		s.ua = (struct pl)PL_INIT;

	err = binding_alloc(&bd, &s, &nums);
	if (err)
		return err;

	bd->seq = ++loc->seq;
	*bdp = bd;

	return 0;
}


/* §10.3 step 7 for the j-th contact: it replaces the bindings of the
 * new set that it matches (bindings of this request included), or
 * removes them when its expiry is 0 */
static int apply_contact(struct apply *ap, size_t j)
{
	const struct loc_contact *c = &ap->chg->contactv[j];
	struct binding *bd;
	size_t i, k = 0;
	int err;

	for (i = 0; i < ap->next.n; i++) {
		if (!binding_match(ap->next.v[i], c, &ap->curiv[j]))
			ap->next.v[k++] = ap->next.v[i];
	}
	ap->next.n = k;

	if (!c->expires)
		return 0;

	err = binding_of_contact(&bd, ap->loc, ap->chg, c, ap->now);
	if (err)
		return err;

	err = bvec_push(&ap->added, bd);
	if (err) {
		mem_deref(bd);
		return err;
	}

	/* on failure, bd goes with the rest of added (apply_reset) */
	return bvec_push(&ap->next, bd);
}


/* §10.3 steps 6-7: the new binding set, marked with ap->gen. A wildcard
 * (step 6) starts from nothing, anything else from the live bindings;
 * then each contact in order. EOVERFLOW: more than max_bindings, unless
 * the change does not add to the count. */
static int apply_next_set(struct apply *ap)
{
	const struct location_config *cfg = &ap->loc->cfg;
	size_t i;
	int err;

	if (!ap->chg->wildcard) {
		for (i = 0; i < ap->live.n; i++) {
			err = bvec_push(&ap->next, ap->live.v[i]);
			if (err)
				return err;
		}
	}

	for (i = 0; i < ap->chg->contactc; i++) {
		err = apply_contact(ap, i);
		if (err)
			return err;
	}

	for (i = 0; i < ap->next.n; i++)
		ap->next.v[i]->mark = ap->gen;

	if (cfg->max_bindings && ap->next.n > cfg->max_bindings &&
	    ap->next.n > ap->live.n)
		return EOVERFLOW;

	return 0;
}


/* The writes for the backend: deletes of the bindings that leave the
 * AOR (expired ones included; not when an upsert of the same contact
 * string replaces the row anyway), upserts of the added bindings still
 * in the set, in order (added keeps only those; a new binding that a
 * later contact of the request replaced or removed is freed). */
static int apply_writes(struct apply *ap)
{
	struct le *le;
	size_t i, j;
	int err;

	LIST_FOREACH(&ap->a->bindl, le) {
		struct binding *bd = le->data;
		bool same = false;

		if (bd->mark == ap->gen)
			continue;

		for (i = 0; i < ap->added.n && !same; i++)
			same = ap->added.v[i]->mark == ap->gen &&
				!strcmp(ap->added.v[i]->b.contact,
					bd->b.contact);
		if (same)
			continue;

		err = bvec_push(&ap->dropped, bd);
		if (err)
			return err;
	}

	for (i = 0, j = 0; i < ap->added.n; i++) {
		if (ap->added.v[i]->mark == ap->gen)
			ap->added.v[j++] = ap->added.v[i];
		else
			mem_deref(ap->added.v[i]);
	}
	ap->added.n = j;

	return 0;
}


/* Memory takes the change: the bindings not in the new set go, the
 * added ones come (their references pass to the AOR). Cannot fail: the
 * heap has room (heap_reserve). */
static void apply_memory(struct apply *ap)
{
	struct le *le;
	size_t i;

	for (le = list_head(&ap->a->bindl); le; ) {
		struct binding *bd = le->data;

		le = le->next;
		if (bd->mark != ap->gen)
			aor_drop(ap->loc, bd);
	}

	for (i = 0; i < ap->added.n; i++)
		aor_add(ap->loc, ap->a, ap->added.v[i]);
	ap->added.n = 0;
}


/* The steps: check the change, compute the new set and the writes
 * without touching memory (so that any failure leaves the AOR as it
 * was), allocate what waits for the commit (the loop's request with
 * the set to report, the writer's job), then change memory and hand
 * the job to the writer. */
int location_apply(struct location *loc, const struct loc_change *chg,
		   loc_done_h *doneh, void *arg)
{
	struct apply ap;
	struct loc_req *req = NULL;
	struct job *job = NULL;
	struct aor *a = NULL;
	int err;

	if (!loc || !chg)
		return EINVAL;

	if (loc->closing)
		return ESHUTDOWN;

	err = change_check(chg);
	if (err)
		return err;

	if (loc->rm)
		return loc->rm->apply(loc->rstate, chg, loc->cfg.max_bindings,
				      doneh, arg);

	a = aor_find(loc, &chg->aor);
	if (a && a->stale)
		return EBUSY;

	err = aor_get(&a, loc, &chg->aor);
	if (err)
		return err;

	memset(&ap, 0, sizeof(ap));
	ap.loc = loc;
	ap.chg = chg;
	ap.a   = a;
	ap.now = location_clock();
	ap.gen = ++loc->markgen;

	err = apply_decode(&ap);
	if (!err)
		err = apply_live(&ap);
	if (!err)
		err = apply_check_order(&ap);
	if (!err)
		err = apply_next_set(&ap);
	if (!err)
		err = apply_writes(&ap);
	if (!err)
		err = heap_reserve(loc, ap.added.n);
	if (err)
		goto out;

	req = mem_zalloc(sizeof(*req), req_destructor);
	if (!req) {
		err = ENOMEM;
		goto out;
	}

	err = set_alloc(&req->set, &chg->aor, ap.next.v, ap.next.n, ap.now);
	if (err)
		goto out;

	job = job_write(req, ap.dropped.v, ap.dropped.n, ap.added.v,
			ap.added.n);
	if (!job) {
		err = ENOMEM;
		goto out;
	}

	/* nothing can fail from here */
	apply_memory(&ap);

	req->aor = mem_ref(a);
	req->doneh = doneh;
	req->arg = arg;
	++a->pending;

	job_submit(loc, job);
	job = NULL;
	req = NULL;

 out:
	apply_reset(&ap);
	free(job);
	mem_deref(req);
	if (err)
		aor_gc(loc, a);

	return err;
}


int location_lookup(struct loc_set **setp, struct location *loc,
		    const char *aor)
{
	struct bvec bv = {0};
	struct pl name;
	struct aor *a;
	struct le *le;
	int err = 0;

	if (!setp || !loc || !aor)
		return EINVAL;

	if (loc->rm)
		return ENOTSUP;

	pl_set_str(&name, aor);
	a = aor_find(loc, &name);
	if (a) {
		LIST_FOREACH(&a->bindl, le) {
			err = bvec_push(&bv, le->data);
			if (err)
				goto out;
		}
	}

	err = set_alloc(setp, &name, bv.v, bv.n, location_clock());

 out:
	free(bv.v);

	return err;
}


/* ------------------------------------------------------------------ *
 * Remote stores, and the asynchronous lookup every store answers
 *
 * A remote store (Redis) is the authority: two nodes apply REGISTERs
 * of one AOR there, each in one atomic script, so nothing of it can be
 * kept here without going stale. location.c only checks a change's
 * shape and hands it over; the remote builds the sets it reports with
 * loc_set_from() and runs the done handlers inside location_batch().
 * ------------------------------------------------------------------ */

/* A local store's answer to location_query(), at the next turn */
struct query {
	struct tmr tmr;
	struct loc_set *set;
	loc_done_h *doneh;
	void *arg;
};


static void query_destructor(void *arg)
{
	struct query *q = arg;

	tmr_cancel(&q->tmr);
	mem_deref(q->set);
}


static void query_handler(void *arg)
{
	struct query *q = arg;

	q->doneh(0, q->set, q->arg);
	mem_deref(q);
}


int location_query(struct location *loc, const char *aor,
		   loc_done_h *doneh, void *arg)
{
	struct query *q;
	int err;

	if (!loc || !aor || !doneh)
		return EINVAL;

	if (loc->closing)
		return ESHUTDOWN;

	if (loc->rm)
		return loc->rm->lookup(loc->rstate, aor, doneh, arg);

	q = mem_zalloc(sizeof(*q), query_destructor);
	if (!q)
		return ENOMEM;

	err = location_lookup(&q->set, loc, aor);
	if (err) {
		mem_deref(q);
		return err;
	}

	q->doneh = doneh;
	q->arg = arg;
	tmr_start(&q->tmr, 0, query_handler, q);

	return 0;
}


bool location_remote(const struct location *loc)
{
	return loc && loc->rm;
}


int loc_set_from(struct loc_set **setp, const char *aor,
		 const struct loc_binding *bv, size_t n)
{
	struct loc_set *set;
	struct pl name;
	size_t i;
	int err;

	if (!setp || !aor || (n && !bv))
		return EINVAL;

	pl_set_str(&name, aor);

	set = mem_zalloc(sizeof(*set) + n * sizeof(set->v[0]),
			 set_destructor);
	if (!set)
		return ENOMEM;

	err = pl_strdup(&set->aor, &name);
	if (err)
		goto out;

	for (i = 0; i < n; i++) {
		struct binding *bd;
		struct bstrs s;

		bstrs_of(&s, &bv[i]);
		s.aor = name;
		err = binding_alloc(&bd, &s, &bv[i]);
		if (err)
			goto out;

		bd->seq = i + 1;
		set->v[set->n++] = bd;
	}

	qsort(set->v, set->n, sizeof(set->v[0]), set_order);

 out:
	if (err)
		mem_deref(set);
	else
		*setp = set;

	return err;
}


void location_batch(struct location *loc, bool end)
{
	if (loc && loc->batchh)
		loc->batchh(end, loc->batch_arg);
}


struct location_stats *location_counters(struct location *loc)
{
	return loc ? &loc->stats : NULL;
}


struct metrics_hist *location_hist(struct location *loc)
{
	return loc ? &loc->commit_hist : NULL;
}


/* ------------------------------------------------------------------ *
 * The store
 * ------------------------------------------------------------------ */

void location_config_default(struct location_config *cfg)
{
	if (!cfg)
		return;

	memset(cfg, 0, sizeof(*cfg));
	cfg->buckets   = DEFAULT_BUCKETS;
	cfg->batch_max = DEFAULT_BATCH_MAX;
	cfg->purge_ms  = DEFAULT_PURGE_MS;
}


static void config_set(struct location *loc,
		       const struct location_config *cfg)
{
	if (cfg)
		loc->cfg = *cfg;
	else
		location_config_default(&loc->cfg);
	if (!loc->cfg.buckets)
		loc->cfg.buckets = DEFAULT_BUCKETS;
	if (!loc->cfg.batch_max)
		loc->cfg.batch_max = DEFAULT_BATCH_MAX;
	if (!loc->cfg.purge_ms)
		loc->cfg.purge_ms = DEFAULT_PURGE_MS;
}


static void writer_stop(struct location *loc)
{
	if (!loc->thread_running)
		return;

	pthread_mutex_lock(&loc->mtx);
	loc->stop = true;
	pthread_cond_signal(&loc->cond);
	pthread_mutex_unlock(&loc->mtx);

	/* the writer commits everything queued before it returns */
	pthread_join(loc->thread, NULL);
	loc->thread_running = false;
}


static void location_destructor(void *arg)
{
	struct location *loc = arg;
	struct batch *bt;

	tmr_cancel(&loc->tmr_purge);
	writer_stop(loc);

	/* a remote store answers what waits on it (ESHUTDOWN) */
	loc->closing = true;
	if (loc->rm)
		loc->rm->close(loc->rstate);

	/* every pending change is committed (or failed) by now: tell
	 * whoever waits, exactly once, as promised. The handlers must not
	 * use loc any more (location_apply() refuses: ESHUTDOWN). */
	loc->closing = true;
	if (loc->sync_init) {
		bt = done_take(loc);
		while (bt) {
			struct batch *next = bt->next;

			batch_done(loc, bt);
			bt = next;
		}
	}

	loc->mq = mem_deref(loc->mq);

	if (loc->be && loc->bopen)
		loc->be->close(loc->bstate);

	hash_flush(loc->aors);
	loc->aors = mem_deref(loc->aors);
	list_clear(&loc->stalel);
	free(loc->heap);
	free(loc->wopv);

	if (loc->sync_init) {
		pthread_mutex_destroy(&loc->mtx);
		pthread_cond_destroy(&loc->cond);
	}
}


static int load_row_handler(const struct loc_binding *b, void *arg)
{
	struct location *loc = arg;
	struct binding *bd;
	struct bstrs s;
	struct aor *a;
	int err;

	if (b->q > 1000)
		return 0;

	bstrs_of(&s, b);
	err = binding_alloc(&bd, &s, b);
	if (err == EINVAL) {
		slog(LOG_WARN, "location", "bad_row", NULL,
		     "aor=%H contact=%H", log_q, b->aor, log_q, b->contact);
		return 0;
	}
	if (err)
		return err;

	err = heap_reserve(loc, 1);
	if (!err)
		err = aor_get(&a, loc, &s.aor);
	if (err) {
		mem_deref(bd);
		return err;
	}

	bd->seq = ++loc->seq;
	aor_add(loc, a, bd);

	return 0;
}


int location_open_backend(struct location **locp,
			  const struct loc_backend *be, const char *arg,
			  const struct location_config *cfg)
{
	struct location *loc;
	int err;

	if (!locp || !be || !be->open || !be->load || !be->apply ||
	    !be->close)
		return EINVAL;

	loc = mem_zalloc(sizeof(*loc), location_destructor);
	if (!loc)
		return ENOMEM;

	loc->be = be;
	config_set(loc, cfg);

	tmr_init(&loc->tmr_purge);
	metrics_hist_init_seconds(&loc->commit_hist);

	err = pthread_mutex_init(&loc->mtx, NULL);
	if (err)
		goto out;
	err = pthread_cond_init(&loc->cond, NULL);
	if (err) {
		pthread_mutex_destroy(&loc->mtx);
		goto out;
	}
	loc->sync_init = true;

	err = hash_alloc(&loc->aors, loc->cfg.buckets);
	if (err)
		goto out;

	err = be->open(&loc->bstate, arg);
	if (err)
		goto out;
	loc->bopen = true;

	/* the working set: everything stored, expired rows included (the
	 * first purge deletes them) */
	err = be->load(loc->bstate, NULL, load_row_handler, loc);
	if (err)
		goto out;

	err = mqueue_alloc(&loc->mq, mq_handler, loc);
	if (err)
		goto out;

	err = pthread_create(&loc->thread, NULL, writer_main, loc);
	if (err)
		goto out;
	loc->thread_running = true;

	tmr_start(&loc->tmr_purge, 0, purge_handler, loc);

	slog(LOG_INFO, "location", "open", NULL, "backend=%s aors=%llu "
	     "bindings=%llu", be->name, loc->stats.aors,
	     loc->stats.bindings);

 out:
	if (err)
		mem_deref(loc);
	else
		*locp = loc;

	return err;
}


/* A remote store: its state only (no hash, no writer, no purge) */
static int location_open_remote(struct location **locp,
				const struct loc_remote *rm, const char *arg,
				const struct location_config *cfg)
{
	struct location *loc;
	int err;

	loc = mem_zalloc(sizeof(*loc), location_destructor);
	if (!loc)
		return ENOMEM;

	config_set(loc, cfg);
	tmr_init(&loc->tmr_purge);
	metrics_hist_init_seconds(&loc->commit_hist);

	err = rm->open(&loc->rstate, arg, loc);
	if (err)
		goto out;
	loc->rm = rm;

	slog(LOG_INFO, "location", "open", NULL, "backend=%s", rm->name);

 out:
	if (err)
		mem_deref(loc);
	else
		*locp = loc;

	return err;
}


int location_open(struct location **locp, const char *spec,
		  const struct location_config *cfg)
{
	static const struct loc_backend *backends[] = {
		&loc_backend_memory, &loc_backend_sqlite,
	};
	const char *colon;
	size_t i, n;

	if (!locp || !spec)
		return EINVAL;

	colon = strchr(spec, ':');
	n = colon ? (size_t)(colon - spec) : strlen(spec);

	if (colon && n == strlen(loc_remote_redis.name) &&
	    !strncmp(spec, loc_remote_redis.name, n))
		return location_open_remote(locp, &loc_remote_redis,
					    colon + 1, cfg);

	for (i = 0; i < ARRAY_SIZE(backends); i++) {
		const struct loc_backend *be = backends[i];

		if (strlen(be->name) == n && !strncmp(spec, be->name, n))
			return location_open_backend(locp, be,
						     colon ? colon + 1 : "",
						     cfg);
	}

	return ENOTSUP;
}


void location_set_batch(struct location *loc, loc_batch_h *bh, void *arg)
{
	if (!loc)
		return;

	loc->batchh    = bh;
	loc->batch_arg = bh ? arg : NULL;
}


void location_stats(const struct location *loc, struct location_stats *st)
{
	if (!loc || !st)
		return;

	*st = loc->stats;
}


const struct metrics_hist *location_commit_hist(const struct location *loc)
{
	return loc ? &loc->commit_hist : NULL;
}


int location_debug(struct re_printf *pf, const struct location *loc)
{
	const struct location_stats *s;

	if (!loc)
		return 0;

	s = &loc->stats;

	return re_hprintf(pf, "location backend=%s aors=%llu bindings=%llu "
			  "pending=%llu commits=%llu ops=%llu failed=%llu "
			  "expired=%llu stale=%llu\n",
			  loc->rm ? loc->rm->name : loc->be->name,
			  s->aors, s->bindings, s->pending,
			  s->commits, s->ops, s->failed, s->expired,
			  s->stale);
}
