/**
 * server/registrar/loc_redis.c  Location store "redis://...": bindings in Redis
 *
 * Owns struct redis_be: one hiredis asynchronous connection to Redis on
 * libre's loop (an adapter of hiredis's addRead/delRead/addWrite/
 * delWrite/cleanup hooks onto fd_listen/fd_close: the loop never
 * blocks), its reconnection with a back-off, the two Lua scripts loaded
 * into Redis, and the requests Redis owes an answer. Exposes
 * loc_remote_redis in regpriv.h for location_open("redis://..."). Uses
 * hiredis, libre (fd, tmr, mem) and location.c's remote hooks
 * (loc_set_from, location_batch, the counters).
 *
 * WHY REDIS DECIDES (and not this node's memory)
 *
 *   Several nodes share one Redis. A REGISTER's rules (RFC 3261 §10.3
 *   steps 6-7: Call-ID/CSeq ordering, the wildcard, per-contact expiry,
 *   URI equality of §19.1.4, RFC 5626 instance/reg-id replacement,
 *   max_bindings) are applied by one Lua script that Redis runs
 *   atomically on the AOR's key: two nodes writing one AOR at once are
 *   serialised by Redis, and each sees the other's result. The script
 *   returns the AOR's binding set after the change, which becomes the
 *   200; the done handler runs only once that reply has arrived, so a
 *   200 always means Redis has the write (with Redis's own durability:
 *   appendonly with fsync always if a Redis crash must not lose it).
 *   Nothing is cached here: a lookup asks Redis too (a read-only
 *   script), so node B sees at once what node A stored.
 *
 * KEYS AND EXPIRY
 *
 *   One hash per AOR, "sipstack:loc:{<aor>}" (the braces are a Redis
 *   Cluster hash tag: everything of an AOR is one key, on one shard),
 *   one field per binding named by its Contact URI, whose value is the
 *   binding as JSON (cjson in the script). Redis 7.0 has no TTL per
 *   hash field: each binding carries its expiry (ms, Redis's clock:
 *   TIME), the scripts ignore expired ones and the write script deletes
 *   them, and the key's own expiry (PEXPIREAT) is the latest of its
 *   bindings', so an AOR whose bindings all ran out disappears without
 *   any node's timer. Times in a reply are Redis's; they are turned into
 *   this node's clock (location_clock) by the offset between the two
 *   at the reply.
 *
 * FAILURES
 *
 *   Not connected: apply and lookup fail at once with ENOTCONN (the
 *   registrar answers 503 with Retry-After). Redis that owes answers
 *   and has sent none for REQ_TIMEOUT_MS (stuck, not merely slow: the
 *   oldest request's age alone does not count while replies flow)
 *   drops the connection: every pending request then fails with
 *   ETIMEDOUT (the registrar answers 500: the write may or may not
 *   have happened); a lost connection fails them with ECONNRESET. More
 *   than MAX_PENDING requests in flight, or MAX_UNSENT bytes not yet
 *   written to Redis: EBUSY (503, Retry-After: 1), shedding load.
 *   Reconnection starts after RETRY_MIN_MS and doubles up to
 *   RETRY_MAX_MS; one log line per change of state (redis_up,
 *   redis_down). NOSCRIPT (Redis restarted without our scripts, or a
 *   SCRIPT FLUSH) sends the request once more as EVAL.
 */
#include <string.h>
#include <stdlib.h>
#include <hiredis/hiredis.h>
#include <hiredis/async.h>
#include <re.h>
#include "registrar.h"
#include "regpriv.h"


enum {
	DEFAULT_PORT    = 6379,
	RETRY_MIN_MS    = 100,
	RETRY_MAX_MS    = 5000,
	REQ_TIMEOUT_MS  = 3000,   /* no answer: the connection is dropped */
	MAX_PENDING     = 5000,   /* requests Redis owes, at most: EBUSY  */
	MAX_UNSENT      = 262144, /* bytes hiredis has not written yet    */
	WATCH_MS        = 250,
	NFIELDS         = 12,     /* per binding in a script's reply      */
	APPLY_ARGS      = 9,      /* ARGV before the contacts             */
	CONTACT_ARGS    = 6,      /* ARGV per contact                     */
	MAX_SET         = 10000,  /* bindings in one reply, at most       */
};

#define KEY_PREFIX "sipstack:loc:{"


/* ------------------------------------------------------------------ *
 * The scripts (Lua 5.1 inside Redis; cjson is Redis's)
 * ------------------------------------------------------------------ */

/* Shared by both: Redis's clock in ms, the reply of a binding set */
#define LUA_COMMON \
	"local t = redis.call('TIME')\n" \
	"local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n" \
	"local function reply(set)\n" \
	"  local o = {0, now, #set}\n" \
	"  for _, b in ipairs(set) do\n" \
	"    o[#o+1] = b.c; o[#o+1] = b.e; o[#o+1] = b.u; o[#o+1] = b.q\n" \
	"    o[#o+1] = b.i; o[#o+1] = b.s; o[#o+1] = b.n or ''\n" \
	"    o[#o+1] = b.r or 0; o[#o+1] = b.p or ''; o[#o+1] = b.v or ''\n" \
	"    o[#o+1] = b.a or ''; o[#o+1] = b.o or ''\n" \
	"  end\n" \
	"  return o\n" \
	"end\n"

/* KEYS[1] the AOR's hash. Read only: the live bindings. */
static const char lua_lookup[] =
	"-- sipstack: the live bindings of one AOR\n"
	LUA_COMMON
	"local set = {}\n"
	"for _, v in ipairs(redis.call('HVALS', KEYS[1])) do\n"
	"  local b = cjson.decode(v)\n"
	"  if b.e > now then set[#set+1] = b end\n"
	"end\n"
	"return reply(set)\n";

/*
 * KEYS[1] the AOR's hash. ARGV: callid, cseq, wildcard ("1"),
 * max_bindings (0: none), path, received, user_agent, node, the number
 * of contacts, then per contact: URI, match key (see ukey_print),
 * expires (s), q (thousandths), +sip.instance, reg-id. Returns {1} out
 * of order, {2} too many bindings, else the set after the change.
 * Binding fields: c contact, k match key, e expires (ms), u updated
 * (ms), q, i Call-ID, s CSeq, n instance, r reg-id, p Path, v received,
 * a User-Agent, o node.
 */
static const char lua_apply[] =
	"-- sipstack: one REGISTER on one AOR (RFC 3261 10.3 steps 6-7)\n"
	LUA_COMMON
	"local key = KEYS[1]\n"
	"local callid, cseq = ARGV[1], tonumber(ARGV[2])\n"
	"local wildcard, maxb = ARGV[3] == '1', tonumber(ARGV[4])\n"
	"local function opt(s) if s == '' then return nil end return s end\n"
	"local path, recv, ua, node = opt(ARGV[5]), opt(ARGV[6]),"
	" opt(ARGV[7]), opt(ARGV[8])\n"
	"local SIG = {user=true, ttl=true, method=true, maddr=true,"
	" transport=true}\n"
	"local UK = {}\n"
	/* a match key: "base\0name=value\0..." (see ukey_print) */
	"local function ukey(k)\n"
	"  local c = UK[k]\n"
	"  if c then return c[1], c[2] end\n"
	"  local i = string.find(k, '\\0', 1, true)\n"
	"  local base, ps = k, {}\n"
	"  if i then\n"
	"    base = string.sub(k, 1, i - 1)\n"
	"    for it in string.gmatch(string.sub(k, i + 1), '[^%z]+') do\n"
	"      local e = string.find(it, '=', 1, true)\n"
	"      if e then ps[string.sub(it, 1, e - 1)] = string.sub(it, e + 1)\n"
	"      else ps[it] = '' end\n"
	"    end\n"
	"  end\n"
	"  UK[k] = {base, ps}\n"
	"  return base, ps\n"
	"end\n"
	/* RFC 3261 §19.1.4: a parameter in one URI only matters if it is
	 * one of SIG; one in both must have the same value */
	"local function uri_eq(x, y)\n"
	"  if x == y then return true end\n"
	"  local bx, px = ukey(x)\n"
	"  local by, py = ukey(y)\n"
	"  if bx ~= by then return false end\n"
	"  for n, v in pairs(px) do\n"
	"    local w = py[n]\n"
	"    if w == nil then if SIG[n] then return false end\n"
	"    elseif w ~= v then return false end\n"
	"  end\n"
	"  for n in pairs(py) do\n"
	"    if px[n] == nil and SIG[n] then return false end\n"
	"  end\n"
	"  return true\n"
	"end\n"
	/* RFC 5626: the same instance and reg-id; else an equal URI */
	"local function match(b, c)\n"
	"  if c.n and b.n == c.n and (b.r or 0) == c.r then return true end\n"
	"  return uri_eq(b.k, c.k)\n"
	"end\n"
	"local cs = {}\n"
	"for j = 0, tonumber(ARGV[9]) - 1 do\n"
	"  local o = 10 + j * 6\n"
	"  cs[#cs+1] = {c=ARGV[o], k=ARGV[o+1], x=tonumber(ARGV[o+2]),"
	" q=tonumber(ARGV[o+3]), n=opt(ARGV[o+4]), r=tonumber(ARGV[o+5])}\n"
	"end\n"
	"local raw = redis.call('HGETALL', key)\n"
	"local live = {}\n"
	"for i = 1, #raw, 2 do\n"
	"  local b = cjson.decode(raw[i+1])\n"
	"  if b.e > now then live[#live+1] = b end\n"
	"end\n"
	/* step 7: a binding the request would change, with its Call-ID
	 * and a CSeq not lower: the whole request fails */
	"for _, b in ipairs(live) do\n"
	"  if b.i == callid and cseq <= b.s then\n"
	"    if wildcard then return {1} end\n"
	"    for _, c in ipairs(cs) do\n"
	"      if match(b, c) then return {1} end\n"
	"    end\n"
	"  end\n"
	"end\n"
	/* steps 6-7: the new set */
	"local nxt = {}\n"
	"if not wildcard then\n"
	"  for _, b in ipairs(live) do nxt[#nxt+1] = b end\n"
	"end\n"
	"for _, c in ipairs(cs) do\n"
	"  local keep = {}\n"
	"  for _, b in ipairs(nxt) do\n"
	"    if not match(b, c) then keep[#keep+1] = b end\n"
	"  end\n"
	"  nxt = keep\n"
	"  if c.x > 0 then\n"
	"    nxt[#nxt+1] = {c=c.c, k=c.k, e=now + c.x * 1000, u=now, q=c.q,"
	" i=callid, s=cseq, n=c.n, r=c.n and c.r or 0, p=path, v=recv,"
	" a=ua, o=node, new=true}\n"
	"  end\n"
	"end\n"
	"if maxb > 0 and #nxt > maxb and #nxt > #live then return {2} end\n"
	/* the writes: fields that leave (expired ones too), new bindings */
	"local inset = {}\n"
	"for _, b in ipairs(nxt) do inset[b.c] = b end\n"
	"local del = {}\n"
	"for i = 1, #raw, 2 do\n"
	"  if not inset[raw[i]] then del[#del+1] = raw[i] end\n"
	"end\n"
	"if #del > 0 then redis.call('HDEL', key, unpack(del)) end\n"
	"local hs, last = {}, 0\n"
	"for _, b in ipairs(nxt) do\n"
	"  if b.new then\n"
	"    b.new = nil\n"
	"    hs[#hs+1] = b.c\n"
	"    hs[#hs+1] = cjson.encode(b)\n"
	"  end\n"
	"  if b.e > last then last = b.e end\n"
	"end\n"
	"if #hs > 0 then redis.call('HSET', key, unpack(hs)) end\n"
	"if #nxt == 0 then redis.call('DEL', key)\n"
	"else redis.call('PEXPIREAT', key, last) end\n"
	"return reply(nxt)\n";


/* ------------------------------------------------------------------ *
 * Objects
 * ------------------------------------------------------------------ */

enum conn_state {
	CONN_DOWN = 0,          /* waiting for the next attempt          */
	CONN_CONNECTING,        /* connected or not, scripts not loaded  */
	CONN_UP,
};

struct redis_be {
	struct location *loc;   /* the owner (not referenced)            */
	char host[64];
	uint16_t port;
	unsigned db;
	char *password;         /* AUTH, or NULL                         */
	char addr[80];          /* host:port/db, for the log             */

	redisAsyncContext *ac;  /* NULL when down                        */
	int fd;                 /* ac's socket in libre's loop, or -1    */
	int fdflags;            /* FD_READ | FD_WRITE wanted by hiredis  */
	enum conn_state st;
	unsigned setup;         /* setup replies still awaited           */
	bool down_logged;       /* redis_down said since the last up     */
	bool timed_out;         /* dropping the connection for a timeout */
	bool closing;
	uint32_t backoff;       /* ms before the next attempt            */
	struct tmr tmr_retry;
	struct tmr tmr_watch;
	uint64_t t_connect;     /* tmr_jiffies() of the last attempt     */
	uint64_t t_reply;       /* tmr_jiffies() of the last reply       */
	struct list reql;       /* requests Redis owes, oldest first     */
	uint32_t npending;      /* in reql                               */
	char sha_apply[48];
	char sha_lookup[48];
};

/* One script call Redis owes an answer to (hiredis holds it as its
 * callback's privdata until that callback comes, always exactly once) */
struct rreq {
	struct le le;           /* in r->reql while sent                 */
	struct redis_be *r;
	bool lookup;
	bool retried;           /* NOSCRIPT: sent again as EVAL          */
	loc_done_h *doneh;      /* NULL once called                      */
	void *arg;
	char *aor;
	uint64_t t0;            /* tmr_jiffies() when sent               */
	struct mbuf *mb;        /* the arguments' bytes                  */
	int argc;
	size_t *off;            /* where each argument starts in mb      */
	const char **argv;      /* 0, 1: the command; then into mb       */
	size_t *argvlen;
};


static void conn_start(struct redis_be *r);
static void conn_lost(struct redis_be *r, const char *why);
static void conn_drop(struct redis_be *r, const char *why);


/* ------------------------------------------------------------------ *
 * hiredis on libre's loop: the adapter
 * ------------------------------------------------------------------ */

static void fd_handler(int flags, void *arg)
{
	struct redis_be *r = arg;
	struct location *loc = r->loc;
	redisAsyncContext *ac = r->ac;

	if (!ac)
		return;

	/* a done handler may drop the last reference to the store, which
	 * frees r: not before we are out of hiredis */
	mem_ref(loc);

	if (flags & FD_READ) {
		/* the answers read in one go leave together (sendmmsg) */
		location_batch(loc, false);
		redisAsyncHandleRead(ac);
		location_batch(loc, true);
	}

	if ((flags & FD_WRITE) && r->ac == ac)
		redisAsyncHandleWrite(ac);

	mem_deref(loc);
}


/* Only on a change: hiredis asks for writing before every command, and
 * each fd_listen() is a system call (epoll_ctl) */
static void ev_update(struct redis_be *r, int flags)
{
	r->fdflags = flags;
	if (r->fd < 0)
		return;

	if (r->fdflags)
		(void)fd_listen(r->fd, r->fdflags, fd_handler, r);
	else
		fd_close(r->fd);
}


/* hiredis's four hooks: it wants (on) or no longer wants a direction */
static void ev_want(void *p, int flag, bool on)
{
	struct redis_be *r = p;

	if (!(r->fdflags & flag) == on)
		ev_update(r, on ? r->fdflags | flag : r->fdflags & ~flag);
}


static void ev_add_read(void *p)   { ev_want(p, FD_READ, true); }
static void ev_del_read(void *p)   { ev_want(p, FD_READ, false); }
static void ev_add_write(void *p)  { ev_want(p, FD_WRITE, true); }
static void ev_del_write(void *p)  { ev_want(p, FD_WRITE, false); }


/* hiredis is about to close the socket: out of the loop first */
static void ev_cleanup(void *p)
{
	struct redis_be *r = p;

	if (r->fd >= 0)
		fd_close(r->fd);
	r->fd = -1;
	r->fdflags = 0;
}


/* ------------------------------------------------------------------ *
 * Requests
 * ------------------------------------------------------------------ */

/* Out of r->reql (if in it) */
static void rreq_unlink(struct rreq *q)
{
	if (!q->le.list)
		return;

	list_unlink(&q->le);
	--q->r->npending;
}


static void rreq_destructor(void *arg)
{
	struct rreq *q = arg;

	rreq_unlink(q);
	mem_deref(q->aor);
	mem_deref(q->mb);
	mem_deref(q->off);
	mem_deref(q->argv);
	mem_deref(q->argvlen);
}


/* The request's end: counted, then its done handler, then freed */
static void rreq_finish(struct rreq *q, int err, const struct loc_set *set)
{
	struct redis_be *r = q->r;
	struct location_stats *st = location_counters(r->loc);
	loc_done_h *doneh = q->doneh;

	rreq_unlink(q);
	q->doneh = NULL;

	if (!q->lookup) {
		--st->pending;
		if (err) {
			++st->failed;
		}
		else {
			++st->commits;
			++st->ops;
			metrics_hist_observe(location_hist(r->loc),
					     (double)(tmr_jiffies() - q->t0) /
					     1000.0);
		}
	}

	if (doneh)
		doneh(err, err ? NULL : set, q->arg);

	mem_deref(q);
}


static uint64_t rnum(const redisReply *e)
{
	if (e->type == REDIS_REPLY_INTEGER)
		return e->integer > 0 ? (uint64_t)e->integer : 0;

	if (e->type == REDIS_REPLY_STRING)
		return strtoull(e->str, NULL, 10);

	return 0;
}


/* A string field; "" and other types are NULL */
static const char *rstr(const redisReply *e)
{
	if (e->type != REDIS_REPLY_STRING || !e->len)
		return NULL;

	return e->str;
}


/* A script's reply {status, now, n, n * NFIELDS} into a set of aor (or
 * the status as an errno: EPROTO out of order, EOVERFLOW) */
static int reply_set(struct loc_set **setp, const char *aor,
		     const redisReply *rep)
{
	struct loc_binding *bv = NULL;
	uint64_t now, local, n, i;
	int err;

	if (rep->type != REDIS_REPLY_ARRAY || rep->elements < 1)
		return EBADMSG;

	switch (rnum(rep->element[0])) {

	case 0:  break;
	case 1:  return EPROTO;
	case 2:  return EOVERFLOW;
	default: return EBADMSG;
	}

	if (rep->elements < 3)
		return EBADMSG;

	now = rnum(rep->element[1]);
	n = rnum(rep->element[2]);
	if (n > MAX_SET || rep->elements != 3 + n * NFIELDS)
		return EBADMSG;

	if (n) {
		bv = calloc(n, sizeof(*bv));
		if (!bv)
			return ENOMEM;
	}

	local = location_clock();
	for (i = 0; i < n; i++) {
		redisReply **e = rep->element + 3 + i * NFIELDS;
		struct loc_binding *b = &bv[i];
		uint64_t exp = rnum(e[1]), upd = rnum(e[2]);

		/* Redis's times into this node's clock */
		b->contact    = rstr(e[0]);
		b->expires_at = local + (exp > now ? exp - now : 0);
		b->updated_at = local - min(local, now > upd ? now - upd : 0);
		b->q          = (uint16_t)min(rnum(e[3]), 1000);
		b->callid     = rstr(e[4]);
		b->cseq       = (uint32_t)rnum(e[5]);
		b->instance   = rstr(e[6]);
		b->reg_id     = (uint32_t)rnum(e[7]);
		b->path       = rstr(e[8]);
		b->received   = rstr(e[9]);
		b->user_agent = rstr(e[10]);
		b->node       = rstr(e[11]);

		if (!b->contact || !b->callid) {
			free(bv);
			return EBADMSG;
		}
	}

	err = loc_set_from(setp, aor, bv, (size_t)n);
	free(bv);

	return err;
}


static int rreq_send(struct rreq *q);


static void reply_handler(redisAsyncContext *ac, void *reply, void *arg)
{
	struct rreq *q = arg;
	struct redis_be *r = q->r;
	const redisReply *rep = reply;
	struct loc_set *set = NULL;
	int err;
	(void)ac;

	rreq_unlink(q);
	if (rep)
		r->t_reply = tmr_jiffies();

	if (!rep) {
		rreq_finish(q, r->closing ? ESHUTDOWN :
			    r->timed_out ? ETIMEDOUT : ECONNRESET, NULL);
		return;
	}

	if (rep->type == REDIS_REPLY_ERROR) {
		if (!q->retried && !strncmp(rep->str, "NOSCRIPT", 8)) {
			q->retried = true;
			if (!rreq_send(q))
				return;
			rreq_finish(q, ECONNRESET, NULL);
			return;
		}

		slog(LOG_WARN, "location", "redis_error", NULL,
		     "addr=%s aor=%H msg=%H", r->addr, log_q, q->aor,
		     log_q, rep->str);
		rreq_finish(q, EIO, NULL);
		return;
	}

	err = reply_set(&set, q->aor, rep);
	if (err == EBADMSG)
		slog(LOG_WARN, "location", "redis_error", NULL,
		     "addr=%s aor=%H msg=%H", r->addr, log_q, q->aor, log_q,
		     "unexpected reply");

	rreq_finish(q, err, set);
	mem_deref(set);
}


/* The oldest unanswered request (or the setup of a connection) is too
 * old: Redis is stuck (or the network): drop the connection, failing
 * every request it owes, and reconnect */
static void watch_handler(void *arg)
{
	struct redis_be *r = arg;
	struct rreq *q = list_ledata(list_head(&r->reql));
	redisAsyncContext *ac = r->ac;
	uint64_t since;

	if (!ac)
		return;

	/* stuck, not slow: Redis that answers, however late (overload),
	 * is waited for; Redis that answers nothing for the timeout while
	 * it owes answers is dropped */
	if (r->st == CONN_CONNECTING)
		since = r->t_connect;
	else if (q)
		since = max(q->t0, r->t_reply);
	else
		return;

	if (tmr_jiffies() - since < REQ_TIMEOUT_MS) {
		tmr_start(&r->tmr_watch, WATCH_MS, watch_handler, r);
		return;
	}

	if (r->st == CONN_CONNECTING) {
		conn_drop(r, "no answer to the setup");
		return;
	}

	slog(LOG_WARN, "location", "redis_timeout", NULL,
	     "addr=%s pending=%u waited_ms=%llu", r->addr,
	     r->npending, tmr_jiffies() - since);

	mem_ref(r->loc);
	r->ac = NULL;
	r->timed_out = true;
	redisAsyncFree(ac);   /* every pending callback: NULL reply */
	r->timed_out = false;
	conn_lost(r, "timeout");
	mem_deref(r->loc);
}


static int rreq_send(struct rreq *q)
{
	struct redis_be *r = q->r;
	const char *script = q->lookup ? lua_lookup : lua_apply;
	const char *sha = q->lookup ? r->sha_lookup : r->sha_apply;

	if (!r->ac || r->st != CONN_UP)
		return ENOTCONN;

	/* overload: shed, rather than queue without bound. Also because
	 * hiredis moves what is left of its output buffer to the front
	 * after each write (sdsrange): a buffer of megabytes that Redis
	 * reads slowly costs a memmove of megabytes per write, and the
	 * server's CPU per REGISTER explodes (seen at 20,000/s on a
	 * loaded machine: 1 ms per REGISTER) */
	if (!q->retried && (r->npending >= MAX_PENDING ||
			    sdslen(r->ac->c.obuf) >= MAX_UNSENT))
		return EBUSY;

	if (q->retried) {
		q->argv[0] = "EVAL";
		q->argv[1] = script;
	}
	else {
		q->argv[0] = "EVALSHA";
		q->argv[1] = sha;
	}
	q->argvlen[0] = strlen(q->argv[0]);
	q->argvlen[1] = strlen(q->argv[1]);

	if (redisAsyncCommandArgv(r->ac, reply_handler, q, q->argc,
				  q->argv, q->argvlen) != REDIS_OK)
		return ENOTCONN;

	q->t0 = tmr_jiffies();
	list_append(&r->reql, &q->le, q);
	++r->npending;
	if (!tmr_isrunning(&r->tmr_watch))
		tmr_start(&r->tmr_watch, WATCH_MS, watch_handler, r);

	return 0;
}


/* Argument builder: bytes in one mbuf (which may move while it grows),
 * offsets until arg_done() makes them pointers */
struct args {
	struct mbuf *mb;
	size_t *off;
	size_t *len;
	int n, max;
};


static int arg_add(struct args *a, const char *p, size_t l)
{
	if (a->n >= a->max)
		return EOVERFLOW;

	a->off[a->n] = a->mb->pos;
	a->len[a->n] = l;
	++a->n;

	return l ? mbuf_write_mem(a->mb, (const uint8_t *)p, l) : 0;
}


static int arg_pl(struct args *a, const struct pl *pl)
{
	return arg_add(a, pl_isset(pl) ? pl->p : "", pl_isset(pl) ? pl->l : 0);
}


static int arg_u64(struct args *a, uint64_t v)
{
	char buf[24];
	int n = re_snprintf(buf, sizeof(buf), "%llu", v);

	return arg_add(a, buf, n > 0 ? (size_t)n : 0);
}


static int lower_print(struct mbuf *mb, const struct pl *pl)
{
	size_t i;
	int err = 0;

	for (i = 0; i < pl->l && !err; i++) {
		char c = pl->p[i];

		err = mbuf_write_u8(mb, (uint8_t)((c >= 'A' && c <= 'Z') ?
						   c + 32 : c));
	}

	return err;
}


static int ukey_param(const struct pl *name, const struct pl *val,
		      void *arg)
{
	struct mbuf *mb = arg;
	int err;

	err = mbuf_write_u8(mb, 0);
	err |= lower_print(mb, name);
	if (pl_isset(val)) {
		err |= mbuf_write_u8(mb, '=');
		err |= lower_print(mb, val);
	}

	return err;
}


/* The match key of a contact URI, for RFC 3261 §19.1.4 equality in
 * the script: "scheme\1user\1password\1host\1port\1headers" (scheme and
 * host lower case, the rest as written), then "\0name=value" per
 * parameter (both lower case: compared case-insensitively). Two URIs
 * are equal when the part before the first \0 is, and the parameters
 * agree as the script's uri_eq says. */
static int ukey_print(struct mbuf *mb, const struct pl *uri)
{
	struct uri u;
	int err;

	if (uri_decode(&u, uri))
		return EINVAL;

	err = lower_print(mb, &u.scheme);
	err |= mbuf_printf(mb, "\1%r\1%r\1", &u.user, &u.password);
	err |= lower_print(mb, &u.host);
	err |= mbuf_printf(mb, "\1%u\1%r", u.port, &u.headers);
	if (!err && pl_isset(&u.params))
		err = uri_params_apply(&u.params, ukey_param, mb);

	return err;
}


/* A request of aor with argc arguments (2 left for the command) */
static int rreq_alloc(struct rreq **qp, struct redis_be *r, bool lookup,
		      const struct pl *aor, int argc, struct args *a)
{
	struct rreq *q;
	int err;

	q = mem_zalloc(sizeof(*q), rreq_destructor);
	if (!q)
		return ENOMEM;

	q->r = r;
	q->lookup = lookup;
	q->argc = argc;
	q->mb = mbuf_alloc(256);
	q->off = mem_zalloc(argc * sizeof(*q->off), NULL);
	q->argv = mem_zalloc(argc * sizeof(*q->argv), NULL);
	q->argvlen = mem_zalloc(argc * sizeof(*q->argvlen), NULL);
	if (!q->mb || !q->off || !q->argv || !q->argvlen) {
		err = ENOMEM;
		goto out;
	}

	err = pl_strdup(&q->aor, aor);
	if (err)
		goto out;

	a->mb = q->mb;
	a->off = q->off;
	a->len = q->argvlen;
	a->n = 2;
	a->max = argc;

	/* the key: the AOR inside a Cluster hash tag */
	err = arg_add(a, "1", 1);
	if (!err) {
		a->off[a->n] = q->mb->pos;
		err = mbuf_printf(q->mb, KEY_PREFIX "%r}", aor);
		a->len[a->n] = q->mb->pos - a->off[a->n];
		++a->n;
	}

 out:
	if (err)
		mem_deref(q);
	else
		*qp = q;

	return err;
}


/* Offsets into pointers, once the buffer no longer moves */
static int arg_done(struct rreq *q, struct args *a)
{
	int i;

	if (a->n != q->argc)
		return EINVAL;

	for (i = 2; i < a->n; i++)
		q->argv[i] = (const char *)q->mb->buf + a->off[i];

	return 0;
}


static int redis_apply(void *state, const struct loc_change *chg,
		       uint32_t max_bindings, loc_done_h *doneh, void *arg)
{
	struct redis_be *r = state;
	int argc = 4 + APPLY_ARGS + CONTACT_ARGS * (int)chg->contactc;
	struct args a;
	struct rreq *q;
	size_t i;
	int err;

	if (r->st != CONN_UP)
		return ENOTCONN;

	err = rreq_alloc(&q, r, false, &chg->aor, argc, &a);
	if (err)
		return err;

	err  = arg_pl(&a, &chg->callid);
	err |= arg_u64(&a, chg->cseq);
	err |= arg_add(&a, chg->wildcard ? "1" : "0", 1);
	err |= arg_u64(&a, max_bindings);
	err |= arg_pl(&a, &chg->path);
	err |= arg_pl(&a, &chg->received);
	err |= arg_pl(&a, &chg->user_agent);
	err |= arg_pl(&a, &chg->node);
	err |= arg_u64(&a, chg->contactc);

	for (i = 0; i < chg->contactc && !err; i++) {
		const struct loc_contact *c = &chg->contactv[i];
		size_t start;

		err = arg_pl(&a, &c->uri);
		if (err)
			break;

		/* the match key, written in place */
		if (a.n >= a.max) {
			err = EOVERFLOW;
			break;
		}
		start = q->mb->pos;
		err = ukey_print(q->mb, &c->uri);
		a.off[a.n] = start;
		a.len[a.n] = q->mb->pos - start;
		++a.n;

		err |= arg_u64(&a, c->expires);
		err |= arg_u64(&a, c->q);
		err |= arg_pl(&a, &c->instance);
		err |= arg_u64(&a, pl_isset(&c->instance) ? c->reg_id : 0);
	}

	if (!err)
		err = arg_done(q, &a);
	if (!err)
		err = rreq_send(q);
	if (err) {
		mem_deref(q);
		return err == EOVERFLOW ? EINVAL : err;
	}

	q->doneh = doneh;
	q->arg = arg;
	++location_counters(r->loc)->pending;

	return 0;
}


static int redis_lookup(void *state, const char *aor, loc_done_h *doneh,
			void *arg)
{
	struct redis_be *r = state;
	struct args a;
	struct rreq *q;
	struct pl name;
	int err;

	if (r->st != CONN_UP)
		return ENOTCONN;

	pl_set_str(&name, aor);
	err = rreq_alloc(&q, r, true, &name, 4, &a);
	if (!err)
		err = arg_done(q, &a);
	if (!err)
		err = rreq_send(q);
	if (err) {
		mem_deref(q);
		return err;
	}

	q->doneh = doneh;
	q->arg = arg;

	return 0;
}


/* ------------------------------------------------------------------ *
 * The connection: connect, load the scripts, reconnect
 * ------------------------------------------------------------------ */

static void retry_handler(void *arg)
{
	conn_start(arg);
}


/* Down (again): one log line per change of state, a retry later */
static void conn_lost(struct redis_be *r, const char *why)
{
	r->st = CONN_DOWN;
	r->setup = 0;
	tmr_cancel(&r->tmr_watch);

	if (r->closing)
		return;

	if (!r->down_logged) {
		slog(LOG_WARN, "location", "redis_down", NULL,
		     "addr=%s why=%H retry_ms=%u", r->addr, log_q,
		     why ? why : "", r->backoff);
		r->down_logged = true;
	}

	tmr_start(&r->tmr_retry, r->backoff, retry_handler, r);
	r->backoff = min(r->backoff * 2, (uint32_t)RETRY_MAX_MS);
}


/* Drops the connection we have (from outside hiredis's callbacks, or
 * from one: hiredis then frees it once the callback returns) */
static void conn_drop(struct redis_be *r, const char *why)
{
	redisAsyncContext *ac = r->ac;

	r->ac = NULL;
	if (ac)
		redisAsyncFree(ac);
	conn_lost(r, why);
}


static void on_connect(const redisAsyncContext *ac, int status)
{
	struct redis_be *r = ac->data;

	if (status == REDIS_OK || r->ac != ac)
		return;

	/* hiredis frees ac after this */
	r->ac = NULL;
	conn_lost(r, ac->errstr);
}


static void on_disconnect(const redisAsyncContext *ac, int status)
{
	struct redis_be *r = ac->data;

	if (r->ac != ac)
		return;   /* we dropped it: already handled */

	r->ac = NULL;
	conn_lost(r, status == REDIS_OK ? "closed" : ac->errstr);
}


static void setup_done(struct redis_be *r)
{
	if (--r->setup)
		return;

	r->st = CONN_UP;
	r->backoff = RETRY_MIN_MS;
	r->down_logged = false;
	slog(LOG_INFO, "location", "redis_up", NULL, "addr=%s", r->addr);
}


/* A setup reply (AUTH, SELECT, SCRIPT LOAD) that must not be an error:
 * false when it is one (the connection is dropped) or the connection
 * is no longer ours */
static bool setup_reply(struct redis_be *r, redisAsyncContext *ac,
			const redisReply *rep, const char *what)
{
	if (!rep || r->ac != ac)
		return false;

	if (rep->type == REDIS_REPLY_ERROR) {
		slog(LOG_WARN, "location", "redis_setup_failed", NULL,
		     "addr=%s cmd=%s msg=%H", r->addr, what, log_q,
		     rep->str);
		conn_drop(r, rep->str);
		return false;
	}

	return true;
}


static void setup_handler(redisAsyncContext *ac, void *reply, void *arg)
{
	struct redis_be *r = ac->data;
	(void)arg;

	if (setup_reply(r, ac, reply, "AUTH/SELECT"))
		setup_done(r);
}


static void load_handler(redisAsyncContext *ac, void *reply, void *arg)
{
	struct redis_be *r = ac->data;
	const redisReply *rep = reply;
	char *sha = arg;

	if (!setup_reply(r, ac, rep, "SCRIPT LOAD"))
		return;

	if (rep->type != REDIS_REPLY_STRING || rep->len != 40) {
		conn_drop(r, "SCRIPT LOAD: no SHA-1");
		return;
	}

	str_ncpy(sha, rep->str, 41);
	setup_done(r);
}


static void conn_start(struct redis_be *r)
{
	redisAsyncContext *ac;
	int err = 0;

	ac = redisAsyncConnect(r->host, r->port);
	if (!ac) {
		conn_lost(r, "out of memory");
		return;
	}
	if (ac->err) {
		char why[128];

		str_ncpy(why, ac->errstr, sizeof(why));
		redisAsyncFree(ac);
		conn_lost(r, why);
		return;
	}

	r->ac = ac;
	r->st = CONN_CONNECTING;
	r->t_connect = tmr_jiffies();
	tmr_start(&r->tmr_watch, WATCH_MS, watch_handler, r);
	r->fd = ac->c.fd;
	r->fdflags = 0;
	ac->data = r;
	ac->ev.data = r;
	ac->ev.addRead = ev_add_read;
	ac->ev.delRead = ev_del_read;
	ac->ev.addWrite = ev_add_write;
	ac->ev.delWrite = ev_del_write;
	ac->ev.cleanup = ev_cleanup;
	(void)redisAsyncSetConnectCallback(ac, on_connect);
	(void)redisAsyncSetDisconnectCallback(ac, on_disconnect);

	/* pipelined: the scripts are loaded before anything is sent */
	r->setup = 3;
	if (r->password) {
		++r->setup;
		err |= redisAsyncCommand(ac, setup_handler, NULL,
					 "AUTH %s", r->password);
	}
	err |= redisAsyncCommand(ac, setup_handler, NULL, "SELECT %u",
				 r->db);
	err |= redisAsyncCommand(ac, load_handler, r->sha_apply,
				 "SCRIPT LOAD %s", lua_apply);
	err |= redisAsyncCommand(ac, load_handler, r->sha_lookup,
				 "SCRIPT LOAD %s", lua_lookup);
	if (err && r->ac == ac)
		conn_drop(r, "cannot queue the setup");
}


/* ------------------------------------------------------------------ *
 * Open, close
 * ------------------------------------------------------------------ */

static void redis_close(void *state)
{
	struct redis_be *r = state;

	if (!r)
		return;

	r->closing = true;
	tmr_cancel(&r->tmr_retry);
	tmr_cancel(&r->tmr_watch);
	if (r->ac) {
		redisAsyncContext *ac = r->ac;

		r->ac = NULL;
		redisAsyncFree(ac);   /* pending: ESHUTDOWN */
	}

	mem_deref(r->password);
	mem_deref(r);
}


/* The digits at the start of pl, skipped; how many */
static size_t digits(struct pl *pl)
{
	size_t n = 0;

	while (n < pl->l && n < 9 && pl->p[n] >= '0' && pl->p[n] <= '9')
		++n;
	pl_advance(pl, (ssize_t)n);

	return n;
}


/* "//[:PASSWORD@]IP[:PORT][/DB]" (the part after "redis:") */
static int parse_url(struct redis_be *r, const char *arg)
{
	struct pl pw = PL_INIT, host, port = PL_INIT, db = PL_INIT, rest;
	struct sa sa;
	const char *at;
	int err;

	if (!arg || strncmp(arg, "//", 2))
		return EINVAL;
	pl_set_str(&rest, arg + 2);

	at = pl_strchr(&rest, '@');
	if (at) {
		if (rest.p[0] != ':')
			return EINVAL;   /* user names: not in Redis 7's AUTH
					  * of one password */
		pw.p = rest.p + 1;
		pw.l = (size_t)(at - pw.p);
		pl_advance(&rest, at + 1 - rest.p);
	}

	/* HOST[:PORT][/DB], nothing else */
	host.p = rest.p;
	host.l = 0;
	while (host.l < rest.l && host.p[host.l] != ':' &&
	       host.p[host.l] != '/')
		++host.l;
	pl_advance(&rest, (ssize_t)host.l);
	if (rest.l && rest.p[0] == ':') {
		pl_advance(&rest, 1);
		port.p = rest.p;
		port.l = digits(&rest);
	}
	if (rest.l && rest.p[0] == '/') {
		pl_advance(&rest, 1);
		db.p = rest.p;
		db.l = digits(&rest);
	}
	if (!host.l || rest.l || (port.p && !port.l) || (db.p && !db.l))
		return EINVAL;

	if (!pl_strcasecmp(&host, "localhost"))
		pl_set_str(&host, "127.0.0.1");

	/* an address: a name would need a blocking resolution */
	err = sa_set(&sa, &host, 0);
	if (err || host.l >= sizeof(r->host))
		return EINVAL;

	pl_strcpy(&host, r->host, sizeof(r->host));
	r->port = pl_isset(&port) ? (uint16_t)pl_u32(&port) : DEFAULT_PORT;
	r->db = pl_isset(&db) ? pl_u32(&db) : 0;
	if (!r->port)
		return EINVAL;

	if (pl_isset(&pw)) {
		err = pl_strdup(&r->password, &pw);
		if (err)
			return err;
	}

	re_snprintf(r->addr, sizeof(r->addr), "%s:%u/%u", r->host, r->port,
		    r->db);

	return 0;
}


static int redis_open(void **statep, const char *arg, struct location *loc)
{
	struct redis_be *r;
	int err;

	r = mem_zalloc(sizeof(*r), NULL);
	if (!r)
		return ENOMEM;

	r->loc = loc;
	r->fd = -1;
	r->backoff = RETRY_MIN_MS;
	tmr_init(&r->tmr_retry);
	tmr_init(&r->tmr_watch);
	list_init(&r->reql);

	err = parse_url(r, arg);
	if (err) {
		const char *at = arg ? strrchr(arg, '@') : NULL;

		/* never the password in the log */
		slog(LOG_ERROR, "location", "open_failed", NULL,
		     "backend=redis url=%H why=%H", log_q,
		     at ? at + 1 : arg ? arg : "", log_q,
		     "expected redis://[:PASSWORD@]IP[:PORT][/DB]");
		redis_close(r);
		return err;
	}

	/* the first connection starts now, from the loop: until it is up
	 * (redis_up), REGISTER gets 503 */
	tmr_start(&r->tmr_retry, 0, retry_handler, r);
	*statep = r;

	return 0;
}


const struct loc_remote loc_remote_redis = {
	.name   = "redis",
	.open   = redis_open,
	.apply  = redis_apply,
	.lookup = redis_lookup,
	.close  = redis_close,
};
