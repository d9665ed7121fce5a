/**
 * server/core/dialog.c  SIP dialogs (RFC 3261 §12) and the dialog table
 *
 * Owns struct dialog_table (a hash of dialogs keyed by Call-ID and local
 * tag, compared on the remote tag too, so lookup is O(1)) and struct
 * dialog: the identity (Call-ID, tags), the local and remote addresses,
 * the remote target, the route set, the CSeq counters and the dialog
 * state machine. Exposes dialog_*() in sipstack.h: creation for the UAS
 * (from the INVITE) and the UAC (before the INVITE goes out; completed
 * by the responses), target refresh, the remote CSeq rule, and
 * dialog_request(), which builds and sends an in-dialog request with
 * the route set. Uses libre's parser and sip_request; never calls Lua.
 */
#include <string.h>
#include <re.h>
#include "sipcore.h"
#include "core.h"


enum { MAX_ROUTES = 16 };

struct dialog_table {
	struct hash *ht;
	uint32_t count;
};

struct dialog {
	struct le he;                /* in dialog_table.ht            */
	struct dialog_table *table;  /* not a reference: table outlives */
	struct stack *st;            /* not a reference               */
	char *callid;
	char *ltag;
	char *rtag;                  /* "" until known (UAC)           */
	char *lhdr;                  /* local name-addr, without tag   */
	char *rhdr;                  /* remote name-addr, without tag  */
	char *luri, *ruri;           /* their URIs                     */
	char *target;                /* remote target URI              */
	char *contact;               /* our Contact URI                */
	char *routev[MAX_ROUTES];    /* route set, in the order to use  */
	size_t routec;
	uint32_t lseq;
	uint32_t rseq;
	bool rseq_set;
	bool uac;
	struct fsm *fsm;
	dialog_req_h *reqh;          /* the session usage (the call):  */
	dialog_resp_h *resph;        /* what no other usage claims     */
	void *arg;
	struct list usages;          /* struct dialog_usage            */
};

/* Another usage of the dialog (RFC 5057): a subscription, a REFER's
 * implicit one; it claims its methods, requests and responses */
struct dialog_usage {
	struct le le;
	struct dialog *dlg;          /* NULL once the dialog went      */
	char *methods;               /* " SUBSCRIBE NOTIFY "           */
	dialog_req_h *reqh;
	dialog_resp_h *resph;
	void *arg;
};


/* ------------------------------------------------------------------ *
 * Table
 * ------------------------------------------------------------------ */

static void table_destructor(void *arg)
{
	struct dialog_table *t = arg;

	/* dialogs still listed hold no reference on the table: unlink */
	hash_flush(t->ht);
	mem_deref(t->ht);
}


int dialog_table_alloc(struct dialog_table **tp, uint32_t buckets)
{
	struct dialog_table *t;
	int err;

	if (!tp || !buckets)
		return EINVAL;

	t = mem_zalloc(sizeof(*t), table_destructor);
	if (!t)
		return ENOMEM;

	err = hash_alloc(&t->ht, buckets);
	if (err)
		mem_deref(t);
	else
		*tp = t;

	return err;
}


uint32_t dialog_table_count(const struct dialog_table *t)
{
	return t ? t->count : 0;
}


/* The key hashes Call-ID and local tag only: the remote tag of an early
 * dialog is learnt later, and forks share the first two. */
static uint32_t key_hash(const struct pl *callid, const struct pl *ltag)
{
	return hash_joaat_pl(callid) ^ hash_joaat_pl(ltag);
}


struct lookup {
	const struct pl *callid, *ltag, *rtag;
};


static bool cmp_handler(struct le *le, void *arg)
{
	const struct dialog *dlg = le->data;
	const struct lookup *lk = arg;

	return !pl_strcmp(lk->callid, dlg->callid) &&
		!pl_strcmp(lk->ltag, dlg->ltag) &&
		(!lk->rtag || !pl_strcmp(lk->rtag, dlg->rtag));
}


struct dialog *dialog_table_find(const struct dialog_table *t,
				 const struct pl *callid,
				 const struct pl *ltag, const struct pl *rtag)
{
	struct lookup lk = {callid, ltag, rtag};

	/* no dialog at all (a proxy's in-dialog traffic is not ours):
	 * nothing to hash */
	if (!t || !t->count || !pl_isset(callid) || !pl_isset(ltag))
		return NULL;

	return list_ledata(hash_lookup(t->ht, key_hash(callid, ltag),
				       cmp_handler, &lk));
}


/* ------------------------------------------------------------------ *
 * Dialog
 * ------------------------------------------------------------------ */

static void routes_clear(struct dialog *dlg)
{
	size_t i;

	for (i = 0; i < dlg->routec; i++)
		dlg->routev[i] = mem_deref(dlg->routev[i]);
	dlg->routec = 0;
}


static void dialog_destructor(void *arg)
{
	struct dialog *dlg = arg;

	if (dlg->table && dlg->he.list) {
		hash_unlink(&dlg->he);
		--dlg->table->count;
	}

	/* usages outliving the dialog forget it */
	while (dlg->usages.head) {
		struct dialog_usage *u = dlg->usages.head->data;

		list_unlink(&u->le);
		u->dlg = NULL;
	}

	routes_clear(dlg);
	mem_deref(dlg->fsm);
	mem_deref(dlg->callid);
	mem_deref(dlg->ltag);
	mem_deref(dlg->rtag);
	mem_deref(dlg->lhdr);
	mem_deref(dlg->rhdr);
	mem_deref(dlg->luri);
	mem_deref(dlg->ruri);
	mem_deref(dlg->target);
	mem_deref(dlg->contact);
}


static int dialog_new(struct dialog **dlgp, struct dialog_table *t,
		      const struct pl *callid, const struct pl *ltag,
		      const struct pl *rtag)
{
	struct dialog *dlg;
	int err;

	if (!dlgp || !t || !pl_isset(callid) || !pl_isset(ltag))
		return EINVAL;

	if (rtag && pl_isset(rtag) &&
	    dialog_table_find(t, callid, ltag, rtag))
		return EEXIST;

	dlg = mem_zalloc(sizeof(*dlg), dialog_destructor);
	if (!dlg)
		return ENOMEM;

	err  = pl_strdup(&dlg->callid, callid);
	err |= pl_strdup(&dlg->ltag, ltag);
	err |= rtag && pl_isset(rtag) ? pl_strdup(&dlg->rtag, rtag) :
		str_dup(&dlg->rtag, "");
	if (err) {
		mem_deref(dlg);
		return ENOMEM;
	}

	dlg->table = t;
	hash_append(t->ht, key_hash(callid, ltag), &dlg->he, dlg);
	++t->count;

	*dlgp = dlg;

	return 0;
}


int dialog_alloc(struct dialog **dlgp, struct dialog_table *t,
		 const struct pl *callid, const struct pl *ltag,
		 const struct pl *rtag)
{
	return dialog_new(dlgp, t, callid, ltag, rtag);
}


struct rr_ctx {
	struct dialog *dlg;
	int err;
};


/* One Record-Route header may hold several comma-separated entries */
static bool rr_handler(const struct sip_hdr *hdr, const struct sip_msg *msg,
		       void *arg)
{
	struct rr_ctx *rc = arg;
	struct pl v = hdr->val;
	(void)msg;

	while (v.l) {
		struct sip_addr addr;
		struct pl one;
		size_t i, depth = 0;
		bool quoted = false;

		for (i = 0; i < v.l; i++) {
			const char c = v.p[i];
			if (c == '"' && (i == 0 || v.p[i - 1] != '\\'))
				quoted = !quoted;
			else if (!quoted && c == '<')
				++depth;
			else if (!quoted && c == '>' && depth)
				--depth;
			else if (!quoted && !depth && c == ',')
				break;
		}
		one.p = v.p;
		one.l = i;
		v.p += i < v.l ? i + 1 : i;
		v.l -= i < v.l ? i + 1 : i;

		while (one.l && (one.p[0] == ' ' || one.p[0] == '\t')) {
			one.p++;
			one.l--;
		}
		while (one.l && (one.p[one.l - 1] == ' ' ||
				 one.p[one.l - 1] == '\t'))
			one.l--;
		if (!one.l)
			continue;

		if (sip_addr_decode(&addr, &one) ||
		    rc->dlg->routec >= MAX_ROUTES) {
			rc->err = EBADMSG;
			return true;
		}

		rc->err = pl_strdup(&rc->dlg->routev[rc->dlg->routec++],
				    &one);
		if (rc->err)
			return true;
	}

	return false;
}


/* The route set from Record-Route; the UAC reverses it (§12.1.2) */
static int routes_from(struct dialog *dlg, const struct sip_msg *msg,
		       bool reverse)
{
	struct rr_ctx rc = {dlg, 0};
	size_t i;

	routes_clear(dlg);
	(void)sip_msg_hdr_apply(msg, true, SIP_HDR_RECORD_ROUTE, rr_handler,
				&rc);
	if (rc.err) {
		routes_clear(dlg);
		return rc.err;
	}

	if (reverse) {
		for (i = 0; i < dlg->routec / 2; i++) {
			char *tmp = dlg->routev[i];
			dlg->routev[i] = dlg->routev[dlg->routec - 1 - i];
			dlg->routev[dlg->routec - 1 - i] = tmp;
		}
	}

	return 0;
}


/* Remote target: the Contact URI (§12.1.1, §12.2.1.2) */
static int target_from(struct dialog *dlg, const struct sip_msg *msg)
{
	const struct sip_hdr *hdr = sip_msg_hdr(msg, SIP_HDR_CONTACT);
	struct sip_addr addr;
	char *t;
	int err;

	if (!hdr)
		return ENOENT;

	if (sip_addr_decode(&addr, &hdr->val))
		return EBADMSG;

	err = pl_strdup(&t, &addr.auri);
	if (err)
		return err;

	mem_deref(dlg->target);
	dlg->target = t;

	return 0;
}


/* name-addr of a From/To header without its tag: display name and URI
 * (other header parameters are not part of the dialog's identity). A
 * display name holding a NUL (legal as a quoted-pair, RFC 4475
 * §3.1.1.2) is left out: the copy is a C string, which the NUL would
 * cut before the URI, and the name is only informational. */
static int hdr_without_tag(char **dst, const struct sip_taddr *ta)
{
	if (pl_isset(&ta->dname) && memchr(ta->dname.p, '\0', ta->dname.l))
		return re_sdprintf(dst, "<%r>", &ta->auri);
	if (pl_isset(&ta->dname) && ta->dname.p[0] == '"')
		return re_sdprintf(dst, "%r <%r>", &ta->dname, &ta->auri);
	if (pl_isset(&ta->dname))
		return re_sdprintf(dst, "\"%r\" <%r>", &ta->dname, &ta->auri);

	return re_sdprintf(dst, "<%r>", &ta->auri);
}


int dialog_create_uas(struct dialog **dlgp, struct dialog_table *t,
		      struct stack *st, const struct sip_msg *req,
		      const char *ltag, const char *contact)
{
	struct dialog *dlg = NULL;
	struct pl pltag;
	int err;

	if (!req || !ltag || !contact)
		return EINVAL;

	pl_set_str(&pltag, ltag);
	err = dialog_new(&dlg, t, &req->callid, &pltag, &req->from.tag);
	if (err)
		return err;

	dlg->st = st;
	dlg->uac = false;
	dlg->rseq = req->cseq.num;
	dlg->rseq_set = true;
	dlg->lseq = rand_u32() & 0x7fffffff;

	err  = hdr_without_tag(&dlg->lhdr, &req->to);
	err |= hdr_without_tag(&dlg->rhdr, &req->from);
	err |= pl_strdup(&dlg->luri, &req->to.auri);
	err |= pl_strdup(&dlg->ruri, &req->from.auri);
	err |= str_dup(&dlg->contact, contact);
	if (err)
		goto out;

	err = target_from(dlg, req);
	if (err)
		goto out;

	err = routes_from(dlg, req, false);

 out:
	if (err)
		mem_deref(dlg);
	else
		*dlgp = dlg;

	return err;
}


int dialog_create_uac(struct dialog **dlgp, struct dialog_table *t,
		      struct stack *st, const char *callid, const char *ltag,
		      const char *local, const char *remote,
		      const char *target, const char *contact)
{
	struct dialog *dlg = NULL;
	struct pl plcid, pltag;
	struct sip_addr addr;
	struct pl pl;
	int err;

	if (!callid || !ltag || !local || !remote || !target || !contact)
		return EINVAL;

	pl_set_str(&plcid, callid);
	pl_set_str(&pltag, ltag);
	err = dialog_new(&dlg, t, &plcid, &pltag, NULL);
	if (err)
		return err;

	dlg->st = st;
	dlg->uac = true;
	dlg->lseq = 1 + (rand_u32() & 0xffff);

	err  = str_dup(&dlg->lhdr, local);
	err |= str_dup(&dlg->rhdr, remote);
	err |= str_dup(&dlg->target, target);
	err |= str_dup(&dlg->contact, contact);
	if (err)
		goto out;

	pl_set_str(&pl, local);
	err = sip_addr_decode(&addr, &pl) ? EINVAL :
		pl_strdup(&dlg->luri, &addr.auri);
	if (err)
		goto out;

	pl_set_str(&pl, remote);
	err = sip_addr_decode(&addr, &pl) ? EINVAL :
		pl_strdup(&dlg->ruri, &addr.auri);

 out:
	if (err)
		mem_deref(dlg);
	else
		*dlgp = dlg;

	return err;
}


/* UAC: a 1xx with a To tag or a 2xx fixes the remote tag, the route set
 * (reversed Record-Route) and the remote target (Contact). A request
 * does it too: a NOTIFY that comes before the 2xx of its SUBSCRIBE
 * (RFC 6665 §4.1.2.4): its From tag, its Record-Route as it is. */
int dialog_set_remote(struct dialog *dlg, const struct sip_msg *msg)
{
	const struct pl *tag;
	char *rtag;
	int err;

	if (!dlg || !msg)
		return EINVAL;

	tag = msg->req ? &msg->from.tag : &msg->to.tag;
	if (!pl_isset(tag))
		return EINVAL;

	if (dlg->rtag[0] && pl_strcmp(tag, dlg->rtag))
		return EEXIST;    /* another fork: dialog_fork() */

	if (!dlg->rtag[0]) {
		err = pl_strdup(&rtag, tag);
		if (err)
			return err;
		mem_deref(dlg->rtag);
		dlg->rtag = rtag;
	}

	err = routes_from(dlg, msg, !msg->req);
	if (err)
		return err;

	err = target_from(dlg, msg);

	return err == ENOENT && !msg->req && msg->scode < 200 ? 0 : err;
}


/* A response (or NOTIFY) from another fork of our INVITE (SUBSCRIBE):
 * a dialog of its own */
int dialog_fork(struct dialog **dlgp, const struct dialog *orig,
		const struct sip_msg *resp)
{
	struct dialog *dlg = NULL;
	int err;

	if (!dlgp || !orig || !resp || !orig->uac)
		return EINVAL;

	err = dialog_create_uac(&dlg, orig->table, orig->st, orig->callid,
				orig->ltag, orig->lhdr, orig->rhdr,
				orig->target, orig->contact);
	if (err)
		return err;

	dlg->lseq = orig->lseq;
	err = dialog_set_remote(dlg, resp);
	if (err)
		mem_deref(dlg);
	else
		*dlgp = dlg;

	return err;
}


/* A target-refresh request or its 2xx (re-INVITE, UPDATE) */
int dialog_target_refresh(struct dialog *dlg, const struct sip_msg *msg)
{
	int err;

	if (!dlg || !msg)
		return EINVAL;

	err = target_from(dlg, msg);

	return err == ENOENT ? 0 : err;
}


/* §12.2.2: a remote CSeq lower than the last one is refused (500);
 * equal is a retransmission libre's transaction layer has absorbed,
 * except for ACK and CANCEL, which carry the INVITE's number. */
int dialog_check_rseq(struct dialog *dlg, const struct sip_msg *req)
{
	const uint32_t n = req->cseq.num;

	if (!pl_strcmp(&req->met, "ACK") || !pl_strcmp(&req->met, "CANCEL"))
		return 0;

	if (dlg->rseq_set && n <= dlg->rseq)
		return EPROTO;

	dlg->rseq = n;
	dlg->rseq_set = true;

	return 0;
}


int dialog_request(struct sip_request **reqp, struct dialog *dlg,
		   const char *met, uint32_t cseq, const char *hdrs,
		   const char *ctype, const uint8_t *body, size_t len,
		   sip_resp_h *resph, void *arg)
{
	const struct stack_config *cfg;
	struct mbuf *mb = NULL;
	struct uri route;
	struct pl pl;
	const char *ruri, *routeuri;
	bool strict, refresh, stateful;
	size_t i;
	int err;

	if (!dlg || !met || !dlg->st || !stack_sip(dlg->st))
		return EINVAL;

	cfg = stack_config(dlg->st);
	stateful = strcmp(met, "ACK") != 0;
	refresh = !strcmp(met, "INVITE") || !strcmp(met, "UPDATE") ||
		!strcmp(met, "SUBSCRIBE") || !strcmp(met, "NOTIFY") ||
		!strcmp(met, "REFER");

	if (!cseq)
		cseq = ++dlg->lseq;

	/* loose routing (;lr) keeps the target as Request-URI; a strict
	 * router gets it and the target goes last (§12.2.1.1) */
	strict = dlg->routec && !strstr(dlg->routev[0], ";lr");
	ruri = dlg->target;
	routeuri = dlg->target;
	if (dlg->routec) {
		struct sip_addr addr;

		pl_set_str(&pl, dlg->routev[0]);
		if (sip_addr_decode(&addr, &pl))
			return EINVAL;
		routeuri = NULL;
		err = uri_decode(&route, &addr.auri);
		if (err)
			return err;
	}
	else {
		pl_set_str(&pl, ruri);
		err = uri_decode(&route, &pl);
		if (err)
			return err;
	}
	(void)routeuri;

	mb = mbuf_alloc(512 + len);
	if (!mb)
		return ENOMEM;

	err = mbuf_printf(mb, "To: %s%s%s\r\n"
			  "From: %s;tag=%s\r\n"
			  "Call-ID: %s\r\n"
			  "CSeq: %u %s\r\n"
			  "Max-Forwards: %u\r\n",
			  dlg->rhdr, dlg->rtag[0] ? ";tag=" : "", dlg->rtag,
			  dlg->lhdr, dlg->ltag, dlg->callid, cseq,
			  strcmp(met, "ACK") ? met : "ACK",
			  cfg->max_forwards);

	for (i = strict ? 1 : 0; i < dlg->routec; i++)
		err |= mbuf_printf(mb, "Route: %s\r\n", dlg->routev[i]);
	if (strict)
		err |= mbuf_printf(mb, "Route: <%s>\r\n", dlg->target);

	if (refresh)
		err |= mbuf_printf(mb, "Contact: <%s>\r\n", dlg->contact);
	err |= mbuf_printf(mb, "User-Agent: %s\r\n", cfg->user_agent);
	if (hdrs)
		err |= mbuf_write_str(mb, hdrs);
	if (ctype && len)
		err |= mbuf_printf(mb, "Content-Type: %s\r\n", ctype);
	err |= mbuf_printf(mb, "Content-Length: %zu\r\n\r\n", len);
	if (len)
		err |= mbuf_write_mem(mb, body, len);
	if (err)
		goto out;

	mb->pos = 0;

	if (strict) {
		struct sip_addr addr;

		pl_set_str(&pl, dlg->routev[0]);
		(void)sip_addr_decode(&addr, &pl);
		err = sip_request(reqp, stack_sip(dlg->st), stateful, met,
				  (int)strlen(met), addr.auri.p,
				  (int)addr.auri.l, &route, mb,
				  (size_t)rand_u32(), NULL, resph, arg);
	}
	else {
		err = sip_request(reqp, stack_sip(dlg->st), stateful, met,
				  (int)strlen(met), ruri, (int)strlen(ruri),
				  &route, mb, (size_t)rand_u32(), NULL, resph,
				  arg);
	}

 out:
	mem_deref(mb);

	return err;
}


/* ------------------------------------------------------------------ *
 * Getters
 * ------------------------------------------------------------------ */

const char *dialog_callid(const struct dialog *dlg)
{
	return dlg ? dlg->callid : NULL;
}

const char *dialog_ltag(const struct dialog *dlg)
{
	return dlg ? dlg->ltag : NULL;
}

const char *dialog_rtag(const struct dialog *dlg)
{
	return dlg ? dlg->rtag : NULL;
}

const char *dialog_local_uri(const struct dialog *dlg)
{
	return dlg ? dlg->luri : NULL;
}

const char *dialog_remote_uri(const struct dialog *dlg)
{
	return dlg ? dlg->ruri : NULL;
}

const char *dialog_contact(const struct dialog *dlg)
{
	return dlg ? dlg->contact : NULL;
}

const char *dialog_remote_target(const struct dialog *dlg)
{
	return dlg ? dlg->target : NULL;
}

uint32_t dialog_lseq(const struct dialog *dlg)
{
	return dlg ? dlg->lseq : 0;
}

uint32_t dialog_rseq(const struct dialog *dlg)
{
	return dlg ? dlg->rseq : 0;
}

bool dialog_is_uac(const struct dialog *dlg)
{
	return dlg ? dlg->uac : false;
}

size_t dialog_route_count(const struct dialog *dlg)
{
	return dlg ? dlg->routec : 0;
}

const char *dialog_route(const struct dialog *dlg, size_t i)
{
	return dlg && i < dlg->routec ? dlg->routev[i] : NULL;
}

struct fsm *dialog_fsm(const struct dialog *dlg)
{
	return dlg ? dlg->fsm : NULL;
}

void dialog_set_fsm(struct dialog *dlg, struct fsm *fsm)
{
	if (!dlg)
		return;

	mem_deref(dlg->fsm);
	dlg->fsm = fsm;
}


void dialog_set_handlers(struct dialog *dlg, dialog_req_h *reqh,
			 dialog_resp_h *resph, void *arg)
{
	if (!dlg)
		return;

	dlg->reqh = reqh;
	dlg->resph = resph;
	dlg->arg = arg;
}


static void usage_destructor(void *arg)
{
	struct dialog_usage *u = arg;

	list_unlink(&u->le);
	mem_deref(u->methods);
}


int dialog_usage_add(struct dialog_usage **up, struct dialog *dlg,
		     const char *methods, dialog_req_h *reqh,
		     dialog_resp_h *resph, void *arg)
{
	struct dialog_usage *u;
	int err;

	if (!up || !dlg || !methods || !*methods)
		return EINVAL;

	u = mem_zalloc(sizeof(*u), usage_destructor);
	if (!u)
		return ENOMEM;

	err = stack_methods_make(&u->methods, methods);
	if (err) {
		mem_deref(u);
		return err;
	}

	u->dlg = dlg;
	u->reqh = reqh;
	u->resph = resph;
	u->arg = arg;
	list_append(&dlg->usages, &u->le, u);

	*up = u;

	return 0;
}


uint32_t dialog_usage_count(const struct dialog *dlg)
{
	if (!dlg)
		return 0;

	return list_count(&dlg->usages) + (dlg->reqh || dlg->resph ? 1 : 0);
}


/* the usage claiming met, or NULL (the session usage's then) */
static const struct dialog_usage *usage_for(const struct dialog *dlg,
					    const struct pl *met)
{
	struct le *le;

	LIST_FOREACH(&dlg->usages, le) {
		const struct dialog_usage *u = le->data;

		if (stack_methods_has(u->methods, met))
			return u;
	}

	return NULL;
}


bool dialog_dispatch_request(struct dialog *dlg, struct stack_req *req)
{
	const struct dialog_usage *u;

	if (!dlg)
		return false;

	u = usage_for(dlg, &stack_req_msg(req)->met);
	if (u && u->reqh) {
		u->reqh(dlg, req, u->arg);
		return true;
	}

	if (u || !dlg->reqh)
		return false;

	dlg->reqh(dlg, req, dlg->arg);

	return true;
}


bool dialog_dispatch_response(struct dialog *dlg, const struct sip_msg *msg)
{
	const struct dialog_usage *u;

	if (!dlg)
		return false;

	u = usage_for(dlg, &msg->cseq.met);
	if (u && u->resph) {
		u->resph(dlg, msg, u->arg);
		return true;
	}

	if (u || !dlg->resph)
		return false;

	dlg->resph(dlg, msg, dlg->arg);

	return true;
}


int dialog_debug(struct re_printf *pf, const struct dialog *dlg)
{
	size_t i;
	int err;

	if (!dlg)
		return 0;

	err = re_hprintf(pf, "dialog %s callid=%s ltag=%s rtag=%s "
			 "local=%s remote=%s "
			 "target=%s lseq=%u rseq=%u state=%s routes=%zu",
			 dlg->uac ? "uac" : "uas", dlg->callid, dlg->ltag,
			 dlg->rtag, dlg->lhdr, dlg->rhdr,
			 dlg->target, dlg->lseq, dlg->rseq,
			 dlg->fsm ? fsm_current(dlg->fsm) : "-",
			 dlg->routec);
	for (i = 0; i < dlg->routec; i++)
		err |= re_hprintf(pf, " route=%s", dlg->routev[i]);

	return err;
}
