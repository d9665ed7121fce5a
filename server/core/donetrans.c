/**
 * server/core/donetrans.c  Completed non-INVITE server transactions, compact
 *
 * RFC 3261 §17.2.2: after its final response over UDP, a non-INVITE
 * server transaction stays "Completed" for Timer J = 64*T1 (32 s) and
 * answers every retransmission of its request with that response. libre
 * 1.1.0 does it by keeping the whole transaction: the parsed request with
 * its header list and header hash table, the receive buffer and the
 * response, ~5 KiB per request on the heap. At 20,000 requests/s that is
 * 640,000 transactions and over 3 GB held only to absorb retransmissions,
 * and a server growing by 100 MB/s spends a third of its time in page
 * faults and malloc (perf, BENCHMARKS.md).
 *
 * What the Completed state needs is much less: the request's key (top Via
 * branch and sent-by, CSeq method), the response bytes, where they went
 * and through which socket. The stack (stack_req_reply_mb) frees libre's
 * transaction right after a final response to a non-INVITE request over
 * UDP and records it here instead (~0.6 KiB); request_handler looks every
 * incoming non-INVITE request up here first and sends the recorded
 * response again on a match, as the transaction would have.
 *
 * An INVITE answered 2xx is recorded too, without its response (our call
 * resends the 2xx until the ACK): libre would keep the transaction, with
 * the whole INVITE, 32 s in the Accepted state (RFC 6026) only to absorb
 * retransmitted INVITEs and answer a late CANCEL with 200; the record
 * does both, and the INVITE's memory is freed at once instead of 32 s
 * later, in between the dialogs of the calls that came since (held
 * calls: less heap fragmentation, less RSS per dialog).
 *
 * All entries live the same 64*T1, so they expire in the order they came:
 * a FIFO list and one timer for its head. The hash table grows as needed.
 * INVITE transactions (Timer G retransmissions, ACK absorption) and
 * requests without an RFC 3261 branch stay with libre.
 */
#include <string.h>
#include <re.h>
#include "sipcore.h"
#include "core.h"
#include "keyhash.h"


struct done {
	struct le fifo;
	struct done *next;      /* hash chain */
	uint32_t hash;
	uint64_t expire;        /* tmr_jiffies() */
	void *sock;             /* libre's socket the request came in on */
	enum sip_transp tp;
	struct sa dst;
	struct mbuf *mb;        /* the response */
	uint64_t tag;           /* libre's To tag for the request */
	uint16_t lbranch, lsentby, lmet;
	char key[];             /* branch, sent-by, method */
};

struct donetab {
	struct done **buckets;
	size_t nbuckets;        /* power of two */
	size_t count;
	struct list fifo;
	struct tmr tmr;
	uint32_t lifetime;      /* ms */
	uint64_t absorbed;
	uint64_t hkey[2];       /* key_hash()'s, random */
};


/* The key's bucket: keyed (keyhash.h), since a peer picks the branch */
static uint32_t key_hash(const struct donetab *t, const struct pl *branch,
			 const struct pl *sentby, const struct pl *met)
{
	const uint16_t lens[3] = {(uint16_t)branch->l, (uint16_t)sentby->l,
				  (uint16_t)met->l};
	struct keyhash h;

	keyhash_init(&h, t->hkey);
	keyhash_update(&h, lens, sizeof(lens));
	keyhash_update(&h, branch->p, branch->l);
	keyhash_update(&h, sentby->p, sentby->l);
	keyhash_update(&h, met->p, met->l);

	return (uint32_t)keyhash_final(&h);
}


static bool key_eq(const struct done *d, const struct pl *branch,
		   const struct pl *sentby, const struct pl *met)
{
	const char *k = d->key;

	return d->lbranch == branch->l && d->lsentby == sentby->l &&
		d->lmet == met->l &&
		!memcmp(k, branch->p, branch->l) &&
		!memcmp(k + d->lbranch, sentby->p, sentby->l) &&
		!memcmp(k + d->lbranch + d->lsentby, met->p, met->l);
}


static void unlink_hash(struct donetab *t, struct done *d)
{
	struct done **pp = &t->buckets[d->hash & (t->nbuckets - 1)];

	while (*pp && *pp != d)
		pp = &(*pp)->next;
	if (*pp)
		*pp = d->next;
}


static void done_destructor(void *arg)
{
	struct done *d = arg;

	list_unlink(&d->fifo);
	mem_deref(d->mb);
	mem_deref(d->sock);
}


static void expire_handler(void *arg)
{
	struct donetab *t = arg;
	const uint64_t now = tmr_jiffies();
	struct le *le;

	while ((le = t->fifo.head)) {
		struct done *d = le->data;

		if (d->expire > now) {
			tmr_start(&t->tmr, d->expire - now, expire_handler, t);
			return;
		}

		unlink_hash(t, d);
		--t->count;
		mem_deref(d);
	}
}


static void tab_destructor(void *arg)
{
	struct donetab *t = arg;

	tmr_cancel(&t->tmr);
	list_flush(&t->fifo);
	mem_deref(t->buckets);
}


int donetab_alloc(struct donetab **tp, uint32_t lifetime_ms)
{
	struct donetab *t;

	if (!tp || !lifetime_ms)
		return EINVAL;

	t = mem_zalloc(sizeof(*t), tab_destructor);
	if (!t)
		return ENOMEM;

	t->nbuckets = 1u << 12;
	t->buckets = mem_zalloc(t->nbuckets * sizeof(*t->buckets), NULL);
	if (!t->buckets) {
		mem_deref(t);
		return ENOMEM;
	}
	t->lifetime = lifetime_ms;
	t->hkey[0] = rand_u64();
	t->hkey[1] = rand_u64();
	list_init(&t->fifo);
	tmr_init(&t->tmr);

	*tp = t;

	return 0;
}


/* keep chains short: double the table when it holds 2 entries a bucket */
static void grow(struct donetab *t)
{
	const size_t n = t->nbuckets * 2;
	struct done **b = mem_zalloc(n * sizeof(*b), NULL);
	size_t i;

	if (!b)
		return;         /* longer chains, still correct */

	for (i = 0; i < t->nbuckets; i++) {
		struct done *d = t->buckets[i];

		while (d) {
			struct done *next = d->next;
			struct done **slot = &b[d->hash & (n - 1)];

			d->next = *slot;
			*slot = d;
			d = next;
		}
	}

	mem_deref(t->buckets);
	t->buckets = b;
	t->nbuckets = n;
}


/* RFC 3261 §17.2.3: a transaction is found by its branch alone only
 * when the branch has the magic cookie */
static bool branch_ok(const struct sip_msg *msg)
{
	return msg && msg->tp == SIP_TRANSP_UDP &&
		msg->via.branch.l > 7 && msg->via.branch.l <= 1024 &&
		!memcmp(msg->via.branch.p, "z9hG4bK", 7) &&
		msg->via.sentby.l <= 1024;
}


/* Only what RFC 3261 §17.2.3 can match by its branch alone */
bool donetab_eligible(const struct sip_msg *msg)
{
	return branch_ok(msg) &&
		pl_strcmp(&msg->cseq.met, "INVITE") &&
		pl_strcmp(&msg->met, "ACK");
}


/* An INVITE answered 2xx: from here on its retransmissions are only to
 * be absorbed (our call resends the 2xx until the ACK; RFC 6026) */
bool donetab_eligible_invite(const struct sip_msg *msg, uint16_t scode)
{
	return branch_ok(msg) && scode >= 200 && scode < 300 &&
		!pl_strcmp(&msg->met, "INVITE");
}


/* mb: the response to send again, or NULL for an INVITE's 2xx */
int donetab_add(struct donetab *t, const struct sip_msg *msg,
		struct mbuf *mb, const struct sa *dst)
{
	const struct pl *b = &msg->via.branch, *s = &msg->via.sentby;
	const struct pl *m = &msg->cseq.met;
	struct done *d;

	if (!t || !dst || m->l > 64)
		return EINVAL;
	if (mb && !donetab_eligible(msg))
		return EINVAL;
	if (!mb && !donetab_eligible_invite(msg, 200))
		return EINVAL;

	d = mem_zalloc(sizeof(*d) + b->l + s->l + m->l, done_destructor);
	if (!d)
		return ENOMEM;

	/* a field may be absent (a request without CSeq answered 400):
	 * p NULL, l 0, and memcpy from NULL is undefined even for 0 */
	if (b->l)
		memcpy(d->key, b->p, b->l);
	if (s->l)
		memcpy(d->key + b->l, s->p, s->l);
	if (m->l)
		memcpy(d->key + b->l + s->l, m->p, m->l);
	d->lbranch = (uint16_t)b->l;
	d->lsentby = (uint16_t)s->l;
	d->lmet = (uint16_t)m->l;
	d->hash = key_hash(t, b, s, m);
	d->expire = tmr_jiffies() + t->lifetime;
	d->sock = mem_ref(msg->sock);
	d->tp = msg->tp;
	d->dst = *dst;
	d->mb = mem_ref(mb);
	d->tag = msg->tag;

	if (t->count >= 2 * t->nbuckets)
		grow(t);

	d->next = t->buckets[d->hash & (t->nbuckets - 1)];
	t->buckets[d->hash & (t->nbuckets - 1)] = d;
	list_append(&t->fifo, &d->fifo, d);
	++t->count;

	if (!tmr_isrunning(&t->tmr))
		tmr_start(&t->tmr, t->lifetime, expire_handler, t);

	return 0;
}


static struct done *find(struct donetab *t, const struct pl *b,
			 const struct pl *s, const struct pl *m)
{
	const uint32_t h = key_hash(t, b, s, m);
	struct done *d;

	for (d = t->buckets[h & (t->nbuckets - 1)]; d; d = d->next) {
		if (d->hash == h && key_eq(d, b, s, m))
			return d;
	}

	return NULL;
}


/* A retransmission of a request we answered: send the answer again. An
 * INVITE we answered 2xx (the Accepted state of RFC 6026 §7.1) is
 * absorbed silently, and a CANCEL for it gets 200 (RFC 3261 §9.2: the
 * transaction exists, the CANCEL has no effect on it). */
bool donetab_absorb(struct donetab *t, struct sip *sip,
		    const struct sip_msg *msg)
{
	static const struct pl invite = PL("INVITE");
	struct done *d;

	if (!t || !t->count || !branch_ok(msg))
		return false;

	if (!pl_strcmp(&msg->met, "INVITE") ||
	    !pl_strcmp(&msg->met, "CANCEL")) {
		d = find(t, &msg->via.branch, &msg->via.sentby, &invite);
		if (!d)
			return false;
		if (!pl_strcmp(&msg->met, "CANCEL")) {
			/* §9.2: with the To tag of the INVITE's responses,
			 * which libre makes from the request's tag */
			struct sip_msg cm = *msg;

			cm.tag = d->tag;
			(void)sip_reply(sip, &cm, 200, "OK");
		}
		++t->absorbed;
		return true;
	}

	if (!donetab_eligible(msg))
		return false;

	d = find(t, &msg->via.branch, &msg->via.sentby, &msg->cseq.met);
	if (!d)
		return false;

	d->mb->pos = 0;
	(void)sip_send(sip, d->sock, d->tp, &d->dst, d->mb);
	++t->absorbed;

	return true;
}


size_t donetab_count(const struct donetab *t)
{
	return t ? t->count : 0;
}


uint64_t donetab_absorbed(const struct donetab *t)
{
	return t ? t->absorbed : 0;
}
