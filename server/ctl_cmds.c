/**
 * server/ctl_cmds.c  The control socket's commands
 *
 * Owns struct ctl_cmds: the commands of `sipstack ctl` on the server
 * side (stats, reload, calls, calls.hangup, location.show,
 * location.remove, log-level, drain; their JSON is in docs/ctl.md) and
 * the drain's watch (a timer that tells the program when the last call
 * has ended). Exposes ctl_cmds_alloc() and ctl_cmds_drain() in
 * ctl_cmds.h. Uses the control socket (server/core/ctl.c), the call
 * manager (calls.h), the registrar service's location store (regsvc.h)
 * and the log level; what belongs to the Lua runtime (reload, the
 * figures, which registrar the script configured) comes through the
 * handlers main.c gives.
 */
#include <string.h>
#include <re.h>
#include "sipstack.h"
#include "regsvc.h"
#include "ctl_cmds.h"


enum {
	DRAIN_POLL_MS    = 200,
	RETRY_AFTER_DEF  = 60,       /* s, of the 503s while draining  */
	CALLS_LIST_MAX   = 10000,    /* calls in one answer, at most    */
};

struct ctl_cmds {
	struct stack *st;
	struct ctl_cmds_handlers hs;
	void *arg;
	struct tmr tmr_drain;
	bool draining;
	uint32_t removes;            /* location.remove: Call-ID suffix */
};


static void destructor(void *arg)
{
	struct ctl_cmds *cc = arg;

	tmr_cancel(&cc->tmr_drain);
}


/* A string argument of the request, or NULL */
static const char *arg_str(const struct odict *req, const char *key)
{
	const struct odict_entry *e = odict_get_type(req, ODICT_STRING, key);

	return e ? e->u.str : NULL;
}


/* ------------------------------------------------------------------ *
 * stats, reload, log-level
 * ------------------------------------------------------------------ */

static void cmd_stats(struct ctl_op *op, const struct odict *req, void *arg)
{
	struct ctl_cmds *cc = arg;
	struct odict *o = NULL;
	int err;
	(void)req;

	err = cc->hs.statsh(&o, cc->arg);
	if (err)
		(void)ctl_op_error(op, "internal", "the figures could not be "
				   "read: %m", err);
	else
		(void)ctl_op_reply(op, o);

	mem_deref(o);
}


static void cmd_reload(struct ctl_op *op, const struct odict *req, void *arg)
{
	struct ctl_cmds *cc = arg;
	char errbuf[1024] = "";
	struct odict *o;
	uint32_t gen = 0;
	int err;
	(void)req;

	slog(LOG_INFO, "ctl", "reload", NULL, NULL);

	err = cc->hs.reloadh(errbuf, sizeof(errbuf), &gen, cc->arg);
	if (err) {
		(void)ctl_op_error(op, "reload_failed", "%s (the previous "
				   "script keeps running)",
				   errbuf[0] ? errbuf : "the script did not "
				   "load");
		return;
	}

	if (odict_alloc(&o, 2)) {
		(void)ctl_op_reply(op, NULL);
		return;
	}
	(void)ctl_odict_int(o, "generation", gen);
	(void)ctl_op_reply(op, o);
	mem_deref(o);
}


static void cmd_log_level(struct ctl_op *op, const struct odict *req,
			  void *arg)
{
	const char *level = arg_str(req, "level");
	enum log_level prev = log_level_get(), lvl = prev;
	struct odict *o;
	(void)arg;

	if (odict_lookup(req, "level") &&
	    (!level || log_level_parse(&lvl, level))) {
		(void)ctl_op_error(op, "bad_request", "\"level\": expected "
				   "debug, info, warn or error");
		return;
	}

	/* told at info, under whichever of the two levels shows it:
	 * the new one when it is lower, else the old one (before) */
	if (lvl < prev)
		log_set_level(lvl);
	if (lvl != prev)
		slog(LOG_INFO, "ctl", "log_level", NULL, "from=%s to=%s",
		     log_level_name(prev), log_level_name(lvl));
	log_set_level(lvl);

	if (odict_alloc(&o, 2)) {
		(void)ctl_op_reply(op, NULL);
		return;
	}
	(void)ctl_odict_str(o, "level", log_level_name(lvl));
	(void)ctl_odict_str(o, "previous", log_level_name(prev));
	(void)ctl_op_reply(op, o);
	mem_deref(o);
}


/* ------------------------------------------------------------------ *
 * calls, calls.hangup
 * ------------------------------------------------------------------ */

struct calls_list {
	struct odict *arr;
	uint32_t n;
	int err;
};


static bool call_add(struct call *call, void *arg)
{
	struct calls_list *cl = arg;
	const struct sa *src = call_source(call, NULL);
	struct odict *c;
	char key[16], peer[64] = "";
	uint64_t age = call_age(call);
	int err;

	if (cl->n >= CALLS_LIST_MAX)
		return true;

	err = odict_alloc(&c, 16);
	if (err)
		goto out;

	if (src && sa_isset(src, SA_ALL))
		(void)re_snprintf(peer, sizeof(peer), "%J", src);

	err |= ctl_odict_str(c, "id", call_id(call));
	err |= ctl_odict_str(c, "direction", call_is_outgoing(call) ?
			     "out" : "in");
	err |= ctl_odict_str(c, "state", call_state(call));
	err |= ctl_odict_str(c, "from", call_from(call));
	err |= ctl_odict_str(c, "to", call_to(call));
	err |= ctl_odict_str(c, "peer", peer);
	err |= ctl_odict_int(c, "age", (int64_t)(age / 1000));
	err |= ctl_odict_int(c, "age_ms", (int64_t)age);

	(void)re_snprintf(key, sizeof(key), "%u", cl->n);
	if (!err)
		err = odict_entry_add(cl->arr, key, ODICT_OBJECT, c);
	mem_deref(c);

 out:
	cl->err = err;
	++cl->n;

	return err != 0;
}


static void cmd_calls(struct ctl_op *op, const struct odict *req, void *arg)
{
	struct ctl_cmds *cc = arg;
	struct calls_list cl;
	uint32_t count = callmgr_count(cc->st);
	struct odict *o = NULL;
	int err;
	(void)req;

	memset(&cl, 0, sizeof(cl));
	err = odict_alloc(&o, 4);
	if (!err)
		err = odict_alloc(&cl.arr, 64);
	if (!err) {
		(void)callmgr_apply(cc->st, call_add, &cl);
		err = cl.err;
	}
	if (!err) {
		err |= ctl_odict_int(o, "count", count);
		err |= odict_entry_add(o, "calls", ODICT_ARRAY, cl.arr);
		err |= ctl_odict_bool(o, "truncated", count > cl.n);
	}

	if (err)
		(void)ctl_op_error(op, "internal", "the calls could not be "
				   "listed: %m", err);
	else
		(void)ctl_op_reply(op, o);

	mem_deref(cl.arr);
	mem_deref(o);
}


struct hangup {
	const char *id;
	uint32_t n;
	int err;
};


static bool call_hangup_if(struct call *call, void *arg)
{
	struct hangup *hu = arg;
	int err;

	if (!call_id(call) || strcmp(call_id(call), hu->id) ||
	    call_is_ended(call))
		return false;

	/* the forks of one call share its Call-ID: all of them go */
	err = call_hangup(call, "ctl");
	if (err)
		hu->err = err;
	else
		++hu->n;

	return false;
}


static void cmd_hangup(struct ctl_op *op, const struct odict *req, void *arg)
{
	struct ctl_cmds *cc = arg;
	struct hangup hu;
	struct odict *o;

	memset(&hu, 0, sizeof(hu));
	hu.id = arg_str(req, "call");
	if (!hu.id || !*hu.id) {
		(void)ctl_op_error(op, "bad_request", "\"call\": expected "
				   "the Call-ID of a call (see calls)");
		return;
	}

	(void)callmgr_apply(cc->st, call_hangup_if, &hu);

	if (!hu.n) {
		if (hu.err)
			(void)ctl_op_error(op, "failed", "the call could not "
					   "be hung up: %m", hu.err);
		else
			(void)ctl_op_error(op, "not_found", "no call with "
					   "Call-ID %s", hu.id);
		return;
	}

	slog(LOG_INFO, "ctl", "hangup", NULL, "callid=%H calls=%u", log_q,
	     hu.id, hu.n);

	if (odict_alloc(&o, 2)) {
		(void)ctl_op_reply(op, NULL);
		return;
	}
	(void)ctl_odict_int(o, "hungup", hu.n);
	(void)ctl_op_reply(op, o);
	mem_deref(o);
}


/* ------------------------------------------------------------------ *
 * location.show, location.remove
 * ------------------------------------------------------------------ */

/* The registrar, or the op answered with why not */
static struct regsvc *need_registrar(struct ctl_cmds *cc, struct ctl_op *op,
				     const struct odict *req,
				     const char **aorp)
{
	struct regsvc *rs = cc->hs.registrarh(cc->arg);

	if (!rs) {
		(void)ctl_op_error(op, "no_registrar", "the script configured "
				   "no location store "
				   "(sip.registrar.configure{})");
		return NULL;
	}

	*aorp = arg_str(req, "aor");
	if (!*aorp || !**aorp) {
		(void)ctl_op_error(op, "bad_request", "\"aor\": expected a SIP "
				   "URI, e.g. sip:alice@example.com");
		return NULL;
	}

	return rs;
}


static int binding_add(struct odict *arr, size_t i,
		       const struct loc_binding *b, uint64_t now)
{
	struct odict *o;
	char key[16];
	int err;

	err = odict_alloc(&o, 16);
	if (err)
		return err;

	err |= ctl_odict_str(o, "contact", b->contact);
	err |= ctl_odict_int(o, "expires", loc_binding_expires(b, now));
	err |= odict_entry_add(o, "q", ODICT_DOUBLE, b->q / 1000.0);
	err |= ctl_odict_str(o, "received", b->received);
	err |= ctl_odict_str(o, "user_agent", b->user_agent);
	err |= ctl_odict_str(o, "callid", b->callid);
	err |= ctl_odict_int(o, "cseq", b->cseq);
	err |= ctl_odict_int(o, "updated_at", (int64_t)(b->updated_at / 1000));
	if (b->instance)
		err |= ctl_odict_str(o, "instance", b->instance);
	if (b->reg_id)
		err |= ctl_odict_int(o, "reg_id", b->reg_id);
	if (b->path)
		err |= ctl_odict_str(o, "path", b->path);

	(void)re_snprintf(key, sizeof(key), "%zu", i);
	if (!err)
		err = odict_entry_add(arr, key, ODICT_OBJECT, o);
	mem_deref(o);

	return err;
}


/* What the store could not do, as the op's error */
static void loc_error(struct ctl_op *op, int err, const char *aor)
{
	switch (err) {

	case EINVAL:
		(void)ctl_op_error(op, "bad_request", "%s is not a SIP URI "
				   "with a host", aor);
		break;

	case ENOTCONN:
		(void)ctl_op_error(op, "unavailable", "the location store "
				   "(Redis) is not reachable now");
		break;

	case EBUSY:
		(void)ctl_op_error(op, "busy", "the location store is busy: "
				   "try again");
		break;

	default:
		(void)ctl_op_error(op, "internal", "lookup failed: %m", err);
		break;
	}
}


/* The bindings are read (from memory, or from Redis, which answers
 * later): now the client hears them */
static void loc_shown(int err, const struct loc_set *set, void *arg)
{
	struct ctl_op *op = arg;
	struct odict *o = NULL, *arr = NULL;
	uint64_t now = location_clock();
	size_t i;

	if (err) {
		loc_error(op, err, "");
		goto out;
	}

	err = odict_alloc(&o, 4);
	if (!err)
		err = odict_alloc(&arr, 8);
	for (i = 0; !err && i < loc_set_count(set); i++)
		err = binding_add(arr, i, loc_set_binding(set, i), now);
	if (!err) {
		err |= ctl_odict_str(o, "aor", loc_set_aor(set));
		err |= ctl_odict_int(o, "count", (int64_t)loc_set_count(set));
		err |= odict_entry_add(o, "bindings", ODICT_ARRAY, arr);
	}

	if (err)
		(void)ctl_op_error(op, "internal", "lookup failed: %m", err);
	else
		(void)ctl_op_reply(op, o);

 out:
	mem_deref(arr);
	mem_deref(o);
	mem_deref(op);
}


static void cmd_loc_show(struct ctl_op *op, const struct odict *req,
			 void *arg)
{
	struct ctl_cmds *cc = arg;
	const char *aor = NULL;
	struct regsvc *rs;
	int err;

	rs = need_registrar(cc, op, req, &aor);
	if (!rs)
		return;

	/* any store: a local one answers at the next turn of the loop */
	err = regsvc_query(rs, aor, loc_shown, mem_ref(op));
	if (err) {
		loc_error(op, err, aor);
		mem_deref(op);
	}
}


struct loc_remove {
	struct ctl_op *op;           /* referenced                      */
	struct regsvc *rs;           /* referenced                      */
	char *aor;
	char callid[64];
	size_t count;                /* bindings before                 */
};


static void loc_remove_destructor(void *arg)
{
	struct loc_remove *lr = arg;

	mem_deref(lr->op);
	mem_deref(lr->rs);
	mem_deref(lr->aor);
}


/* The removal is committed (or failed): now the client hears it */
static void loc_removed(int err, const struct loc_set *set, void *arg)
{
	struct loc_remove *lr = arg;
	struct odict *o;
	(void)set;

	if (err) {
		slog(LOG_WARN, "ctl", "location_remove_failed", NULL,
		     "aor=%H err=%m", log_q, lr->aor, err);
		(void)ctl_op_error(lr->op, "store_failed", "the store did not "
				   "commit the removal: %m", err);
		goto out;
	}

	slog(LOG_INFO, "ctl", "location_removed", NULL, "aor=%H bindings=%zu",
	     log_q, lr->aor, lr->count);

	if (odict_alloc(&o, 2)) {
		(void)ctl_op_reply(lr->op, NULL);
		goto out;
	}
	(void)ctl_odict_str(o, "aor", lr->aor);
	(void)ctl_odict_int(o, "removed", (int64_t)lr->count);
	(void)ctl_op_reply(lr->op, o);
	mem_deref(o);

 out:
	mem_deref(lr);
}


/* The bindings before (their count is the answer), then the removal */
static void loc_counted(int err, const struct loc_set *set, void *arg)
{
	struct loc_remove *lr = arg;

	if (!err)
		err = str_dup(&lr->aor, loc_set_aor(set));
	if (err) {
		loc_error(lr->op, err, "");
		mem_deref(lr);
		return;
	}

	lr->count = loc_set_count(set);
	err = regsvc_remove(lr->rs, lr->aor, lr->callid, loc_removed, lr);
	if (err) {
		(void)ctl_op_error(lr->op, err == EBUSY ? "busy" : "failed",
				   "the bindings could not be removed: %m",
				   err);
		mem_deref(lr);
	}
	/* else loc_removed has it */
}


static void cmd_loc_remove(struct ctl_op *op, const struct odict *req,
			   void *arg)
{
	struct ctl_cmds *cc = arg;
	struct loc_remove *lr;
	const char *aor = NULL;
	struct regsvc *rs;
	int err;

	rs = need_registrar(cc, op, req, &aor);
	if (!rs)
		return;

	lr = mem_zalloc(sizeof(*lr), loc_remove_destructor);
	if (!lr) {
		(void)ctl_op_error(op, "internal", "out of memory");
		return;
	}
	lr->op = mem_ref(op);
	lr->rs = mem_ref(rs);

	/* a Call-ID of ours per removal, so the CSeq rule never refuses */
	(void)re_snprintf(lr->callid, sizeof(lr->callid), "ctl-%x-%u",
			  rand_u32(), ++cc->removes);

	err = regsvc_query(rs, aor, loc_counted, lr);
	if (err) {
		loc_error(op, err, aor);
		mem_deref(lr);
	}
	/* else loc_counted has it */
}


/* ------------------------------------------------------------------ *
 * drain
 * ------------------------------------------------------------------ */

static void drain_poll(void *arg)
{
	struct ctl_cmds *cc = arg;

	if (callmgr_count(cc->st)) {
		tmr_start(&cc->tmr_drain, DRAIN_POLL_MS, drain_poll, cc);
		return;
	}

	slog(LOG_INFO, "ctl", "drained", NULL, "calls=0");
	cc->hs.drainedh(cc->arg);
}


void ctl_cmds_drain(struct ctl_cmds *cc, uint32_t retry_after)
{
	if (!cc)
		return;

	callmgr_set_draining(cc->st, true, retry_after);
	if (!cc->draining)
		slog(LOG_INFO, "ctl", "draining", NULL, "calls=%u "
		     "retry_after=%u", callmgr_count(cc->st), retry_after);
	cc->draining = true;

	/* the first check after a poll period: the answer goes out first */
	if (!tmr_isrunning(&cc->tmr_drain))
		tmr_start(&cc->tmr_drain, DRAIN_POLL_MS, drain_poll, cc);
}


static void cmd_drain(struct ctl_op *op, const struct odict *req, void *arg)
{
	struct ctl_cmds *cc = arg;
	const struct odict_entry *e = odict_lookup(req, "retry_after");
	uint32_t retry_after = RETRY_AFTER_DEF;
	struct odict *o;

	if (e) {
		if (e->type != ODICT_INT || e->u.integer < 0 ||
		    e->u.integer > 86400) {
			(void)ctl_op_error(op, "bad_request", "\"retry_after\""
					   ": expected seconds, 0..86400");
			return;
		}
		retry_after = (uint32_t)e->u.integer;
	}

	ctl_cmds_drain(cc, retry_after);

	if (odict_alloc(&o, 4)) {
		(void)ctl_op_reply(op, NULL);
		return;
	}
	(void)ctl_odict_bool(o, "draining", true);
	(void)ctl_odict_int(o, "calls", callmgr_count(cc->st));
	(void)ctl_odict_int(o, "retry_after", retry_after);
	(void)ctl_op_reply(op, o);
	mem_deref(o);
}


/* ------------------------------------------------------------------ *
 * The table
 * ------------------------------------------------------------------ */

static const struct {
	const char *name;
	ctl_cmd_h *h;
} cmds[] = {
	{"stats",           cmd_stats},
	{"reload",          cmd_reload},
	{"calls",           cmd_calls},
	{"calls.hangup",    cmd_hangup},
	{"location.show",   cmd_loc_show},
	{"location.remove", cmd_loc_remove},
	{"log-level",       cmd_log_level},
	{"drain",           cmd_drain},
};


int ctl_cmds_alloc(struct ctl_cmds **ccp, struct ctl *ctl, struct stack *st,
		   const struct ctl_cmds_handlers *hs, void *arg)
{
	struct ctl_cmds *cc;
	size_t i;
	int err = 0;

	if (!ccp || !ctl || !st || !hs || !hs->reloadh || !hs->statsh ||
	    !hs->registrarh || !hs->drainedh)
		return EINVAL;

	cc = mem_zalloc(sizeof(*cc), destructor);
	if (!cc)
		return ENOMEM;

	cc->st = st;
	cc->hs = *hs;
	cc->arg = arg;
	tmr_init(&cc->tmr_drain);

	for (i = 0; i < ARRAY_SIZE(cmds) && !err; i++)
		err = ctl_command_add(ctl, cmds[i].name, cmds[i].h, cc);

	if (err)
		mem_deref(cc);
	else
		*ccp = cc;

	return err;
}
