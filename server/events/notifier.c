/**
 * server/events/notifier.c  The notifier's side of a subscription
 *
 * What happens to a SUBSCRIBE for a package someone listens to (RFC
 * 6665 §4.2): checks (Event, Contact, Expires: 423 below the minimum),
 * the owner's answer (sub_accept, sub_reject), the dialog and its
 * usage, NOTIFY (one in flight, a newer state replacing a waiting one),
 * refreshes and un-SUBSCRIBE in the dialog, expiry with its final
 * NOTIFY, and a subscriber gone (481, 408, no answer: the subscription
 * is removed, §4.2.2). Exposes sub_accept, sub_reject, sub_notify,
 * sub_request. Uses the core's requests and dialogs.
 */
#include <string.h>
#include <re.h>
#include "sipcore.h"
#include "events.h"
#include "evpriv.h"


enum {
	FINAL_WAIT_MS = 32000,  /* a terminated NOTIFY's answer, at most */
};

static int send_notify(struct sub *sub);


static void reply_simple(struct stack_req *req, uint16_t code,
			 const char *reason, const char *hdrs)
{
	(void)stack_req_reply(req, code, reason, hdrs, NULL, NULL, 0);
}


static bool check_expires(struct stack_req *req, uint32_t expires,
			  uint32_t min)
{
	char hdr[48];

	if (!expires || expires >= min)
		return true;

	(void)re_snprintf(hdr, sizeof(hdr), "Min-Expires: %u\r\n", min);
	reply_simple(req, 423, "Interval Too Brief", hdr);

	return false;
}


bool notifier_subscribe(struct evsvc *svc, struct stack_req *req)
{
	const struct sip_msg *msg = stack_req_msg(req);
	struct pl pkgname, id;
	struct evpkg *pkg;
	struct sub *sub;
	uint32_t expires;
	int err;

	err = sub_parse_event(msg, &pkgname, &id);
	if (err) {
		reply_simple(req, 400, err == ENOENT ? "Missing Event Header" :
			     "Bad Event Header", NULL);
		return true;
	}

	pkg = evsvc_pkg(svc, &pkgname);
	if (!pkg) {
		slog_src(LOG_INFO, "events", "bad_event", &msg->src,
			 &msg->callid, "event=%H src=%J", log_qpl, &pkgname,
			 &msg->src);
		reply_simple(req, 489, "Bad Event", svc->allow_events);
		return true;
	}

	if (!sip_msg_hdr(msg, SIP_HDR_CONTACT)) {
		reply_simple(req, 400, "Missing Contact Header", NULL);
		return true;
	}

	expires = sub_msg_expires(msg, EVENTS_EXPIRES_DEFAULT);
	if (!check_expires(req, expires, pkg->min_expires))
		return true;

	sub = sub_alloc(svc, true);
	if (!sub) {
		reply_simple(req, 500, "Server Internal Error", NULL);
		return true;
	}

	err  = str_dup(&sub->event, pkg->name);
	err |= pl_strdup(&sub->id, &id);
	err |= pl_strdup(&sub->callid, &msg->callid);
	err |= pl_strdup(&sub->from, &msg->from.auri);
	err |= pl_strdup(&sub->to, &msg->to.auri);
	if (err) {
		sub_close(sub, "error");   /* answers 500 */
		return true;
	}

	sub->req = stack_req_ref(req);
	sub->req_expires = expires;
	sub->min_expires = pkg->min_expires;
	sub->max_expires = pkg->max_expires;

	slog(LOG_INFO, "events", "subscribe", &msg->callid, "event=%H "
	     "from=%H expires=%u", log_q, sub->event, log_q, sub->from,
	     expires);

	pkg->h(sub, pkg->arg);

	return true;
}


static void expire_h(void *arg)
{
	struct sub *sub = arg;

	(void)sub_notify(sub, SUB_TERMINATED, "timeout", sub->cur.ctype,
			 sub->cur.body, sub->cur.len);
}


static void set_expiry(struct sub *sub, uint32_t granted)
{
	sub->expires = granted;
	sub->expires_at = tmr_jiffies() + (uint64_t)granted * 1000;
	if (granted)
		tmr_start(&sub->tmr, (uint64_t)granted * 1000, expire_h, sub);
	else
		tmr_cancel(&sub->tmr);
}


static void first_notify_h(void *arg)
{
	struct sub *sub = arg;

	if (!sub->notified && !sub->closed)
		(void)send_notify(sub);
}


/* A SUBSCRIBE in the subscription's dialog: a refresh, or Expires: 0
 * (its Event matched: sub.c routes them) */
void notifier_dialog_req(struct sub *sub, struct subdlg *sd,
			 struct stack_req *req)
{
	const struct sip_msg *msg = stack_req_msg(req);
	struct dialog *dlg = sd->dlg;
	struct sub_event ev;
	uint32_t expires, nseq;
	char hdrs[320];

	if (sub->closed || sub->ending) {
		reply_simple(req, 481, "Subscription Does Not Exist", NULL);
		return;
	}

	expires = sub_msg_expires(msg, EVENTS_EXPIRES_DEFAULT);
	if (!check_expires(req, expires, sub->min_expires))
		return;

	(void)dialog_target_refresh(dlg, msg);
	if (expires > sub->max_expires)
		expires = sub->max_expires;

	(void)re_snprintf(hdrs, sizeof(hdrs), "Expires: %u\r\n"
			  "Contact: <%s>\r\n", expires, dialog_contact(dlg));
	reply_simple(req, 200, "OK", hdrs);

	if (!expires) {
		slog(LOG_DEBUG, "events", "unsubscribed", &msg->callid,
		     "event=%H", log_q, sub->event);
		(void)sub_notify(sub, SUB_TERMINATED, "timeout",
				 sub->cur.ctype, sub->cur.body, sub->cur.len);
		return;
	}

	set_expiry(sub, expires);
	memset(&ev, 0, sizeof(ev));
	ev.type = SUB_EV_REFRESH;
	ev.expires = expires;
	ev.state = sub->state;
	nseq = sub->nseq;
	mem_ref(sub);
	sub_fire(sub, &ev);

	/* §4.2.1.2: a NOTIFY follows every accepted SUBSCRIBE (unless the
	 * owner sent one as it heard of the refresh) */
	if (!sub->closed && !sub->ending && nseq == sub->nseq) {
		if (sub->nreq)
			sub->waiting = true;
		else
			(void)send_notify(sub);
	}
	mem_deref(sub);
}


int sub_accept(struct sub *sub, uint32_t expires)
{
	const struct sip_msg *msg;
	struct stack *st;
	char ltag[32], contact[256], hdrs[320];
	struct dialog *dlg = NULL;
	struct subdlg *sd;
	uint32_t granted;
	int err;

	if (!sub || !sub->notifier || sub->closed)
		return EINVAL;
	if (!sub->req || stack_req_answered(sub->req))
		return EALREADY;

	msg = stack_req_msg(sub->req);
	st = stack_req_stack(sub->req);

	granted = sub->req_expires;
	if (granted > sub->max_expires)
		granted = sub->max_expires;
	if (expires && granted > expires)
		granted = expires;
	if (granted && granted < sub->min_expires)
		granted = sub->min_expires;

	/* our To tag is libre's for this message, which its replies add */
	(void)re_snprintf(ltag, sizeof(ltag), "%016llx", msg->tag);
	err = stack_local_uri(st, msg->tp, contact, sizeof(contact));
	if (!err)
		err = dialog_create_uas(&dlg, stack_dialogs(st), st, msg, ltag,
					contact);
	if (err) {
		reply_simple(sub->req, err == EBADMSG ? 400 : 500,
			     err == EBADMSG ? "Bad Contact Header" :
			     "Server Internal Error", NULL);
		sub_close(sub, "error");
		return err;
	}

	sd = subdlg_add(sub, dlg);
	mem_deref(dlg);
	if (!sd || subdlg_attach(sd)) {
		reply_simple(sub->req, 500, "Server Internal Error", NULL);
		sub_close(sub, "error");
		return ENOMEM;
	}

	stack_req_set_dialog(sub->req, NULL, NULL);
	(void)re_snprintf(hdrs, sizeof(hdrs), "Expires: %u\r\n"
			  "Contact: <%s>\r\n", granted, contact);
	reply_simple(sub->req, 200, "OK", hdrs);
	sub->req = mem_deref(sub->req);

	set_expiry(sub, granted);
	sub->cur.state = SUB_ACTIVE;
	tmr_start(&sub->tmr_wait, 0, first_notify_h, sub);

	slog(LOG_DEBUG, "events", "accepted", NULL, "callid=%H event=%H "
	     "expires=%u", log_q, sub->callid, log_q, sub->event, granted);

	return 0;
}


int sub_reject(struct sub *sub, uint16_t code, const char *reason,
	       const char *hdrs)
{
	if (!sub || !sub->notifier || code < 300 || code > 699)
		return EINVAL;
	if (sub->closed || !sub->req || stack_req_answered(sub->req))
		return EALREADY;

	(void)stack_req_reply(sub->req, code, reason && *reason ? reason :
			      stack_reason_phrase(code), hdrs, NULL, NULL, 0);
	sub_close(sub, "rejected");

	return 0;
}


const struct sip_msg *sub_request(const struct sub *sub)
{
	return sub && sub->req ? stack_req_msg(sub->req) : NULL;
}


static void notify_resp_h(int err, const struct sip_msg *msg, void *arg)
{
	struct sub *sub = arg;

	if (!err && msg && msg->scode < 200)
		return;

	sub->nreq = NULL;

	/* §4.2.2: the subscriber is gone */
	if (err || msg->scode == 481 || msg->scode == 408) {
		slog(LOG_INFO, "events", "notify_failed", NULL, "callid=%H "
		     "event=%H code=%u err=%m", log_q, sub->callid, log_q,
		     sub->event, msg ? msg->scode : 0, err);
		sub_close(sub, sub->ending && sub->cur.reason ?
			  sub->cur.reason : "gone");
		return;
	}

	if (sub->waiting) {
		(void)send_notify(sub);
		return;
	}

	if (sub->ending)
		sub_close(sub, sub->cur.reason ? sub->cur.reason :
			  "terminated");
}


static void final_wait_h(void *arg)
{
	struct sub *sub = arg;

	sub_close(sub, sub->cur.reason ? sub->cur.reason : "terminated");
}


static int send_notify(struct sub *sub)
{
	struct subdlg *sd = list_ledata(list_head(&sub->dlgs));
	const struct substate *s = &sub->cur;
	char hdrs[512];
	int err;

	if (!sd)
		return ENOTCONN;

	if (s->state == SUB_TERMINATED)
		(void)re_snprintf(hdrs, sizeof(hdrs), "Event: %s%s%s\r\n"
				  "Subscription-State: terminated%s%s\r\n",
				  sub->event, sub->id[0] ? ";id=" : "",
				  sub->id, s->reason ? ";reason=" : "",
				  s->reason ? s->reason : "");
	else
		(void)re_snprintf(hdrs, sizeof(hdrs), "Event: %s%s%s\r\n"
				  "Subscription-State: %s;expires=%u\r\n",
				  sub->event, sub->id[0] ? ";id=" : "",
				  sub->id, sub_state_name(s->state),
				  sub_expires(sub));

	sub->waiting = false;
	sub->notified = true;
	++sub->nseq;
	sub->state = s->state;
	tmr_cancel(&sub->tmr_wait);

	err = dialog_request(&sub->nreq, sd->dlg, "NOTIFY", 0, hdrs,
			     s->ctype, s->body, s->len, notify_resp_h, sub);
	if (err) {
		slog(LOG_WARN, "events", "notify_failed", NULL, "callid=%H "
		     "event=%H err=%m", log_q, sub->callid, log_q, sub->event,
		     err);
		if (sub->ending)
			sub_close(sub, "error");
		return err;
	}

	if (sub->ending)
		tmr_start(&sub->tmr_wait, FINAL_WAIT_MS, final_wait_h, sub);

	return 0;
}


static int substate_set(struct substate *s, enum sub_state state,
			const char *reason, const char *ctype,
			const uint8_t *body, size_t len)
{
	char *r = NULL, *c = NULL;
	uint8_t *b = NULL;
	int err = 0;

	if (reason && *reason)
		err |= str_dup(&r, reason);
	if (ctype && *ctype && len)
		err |= str_dup(&c, ctype);
	if (len) {
		b = mem_alloc(len, NULL);
		if (b)
			memcpy(b, body, len);
		else
			err = ENOMEM;
	}
	if (err) {
		mem_deref(r);
		mem_deref(c);
		mem_deref(b);
		return err;
	}

	mem_deref(s->reason);
	mem_deref(s->ctype);
	mem_deref(s->body);
	s->state = state;
	s->reason = r;
	s->ctype = c;
	s->body = b;
	s->len = len;

	return 0;
}


int sub_notify(struct sub *sub, enum sub_state state, const char *reason,
	       const char *ctype, const uint8_t *body, size_t len)
{
	int err;

	if (!sub || !sub->notifier || (len && !body) ||
	    (unsigned)state > SUB_TERMINATED)
		return EINVAL;
	if (sub->closed || sub->ending)
		return EALREADY;
	if (list_isempty(&sub->dlgs))
		return ENOTCONN;   /* not accepted yet */

	/* a fetch (Expires: 0) or an expired one tells its state once */
	if (state != SUB_TERMINATED && !sub_expires(sub)) {
		state = SUB_TERMINATED;
		reason = "timeout";
	}

	err = substate_set(&sub->cur, state, state == SUB_TERMINATED ?
			   reason : NULL, ctype, body, len);
	if (err)
		return err;

	if (state == SUB_TERMINATED) {
		sub->ending = true;
		tmr_cancel(&sub->tmr);
	}

	if (sub->nreq) {
		sub->waiting = true;
		return 0;
	}

	return send_notify(sub);
}


/* The service stops: the subscriber hears it is over (best effort) */
void notifier_stop(struct sub *sub)
{
	if (sub->req) {
		reply_simple(sub->req, 503, "Service Unavailable", NULL);
		sub_close(sub, "shutdown");
		return;
	}

	if (!sub->ending && !list_isempty(&sub->dlgs))
		(void)sub_notify(sub, SUB_TERMINATED, "deactivated",
				 NULL, NULL, 0);
	sub_close(sub, "shutdown");
}


/* ------------------------------------------------------------------ *
 * REFER (RFC 3515): the implicit subscription, notifier side
 * ------------------------------------------------------------------ */

enum {
	REFER_EXPIRES = 180,    /* the implicit subscription, seconds  */
};

static int sipfrag_set(struct sub *sub, uint16_t code, const char *reason)
{
	char frag[128];
	int n;

	n = re_snprintf(frag, sizeof(frag), "SIP/2.0 %u %s\r\n", code,
			reason && *reason ? reason : stack_reason_phrase(code));
	if (n < 0)
		return EINVAL;

	return substate_set(&sub->cur, code < 200 ? SUB_ACTIVE :
			    SUB_TERMINATED, code < 200 ? NULL : "noresource",
			    "message/sipfrag;version=2.0",
			    (const uint8_t *)frag, (size_t)n);
}


static bool refer_sub_false(const struct sip_msg *msg)
{
	const struct sip_hdr *h = sip_msg_hdr(msg, SIP_HDR_REFER_SUB);

	return h && !pl_strcasecmp(&h->val, "false");
}


int sub_refer_accept(struct sub **subp, struct stack_req *req,
		     struct dialog *dlg, sub_event_h *h, void *arg)
{
	const struct sip_msg *msg = stack_req_msg(req);
	struct stack *st = stack_req_stack(req);
	struct dialog *own = NULL;
	char ltag[32], contact[256], hdrs[320], id[16];
	struct subdlg *sd;
	struct evsvc *svc;
	struct sub *sub;
	int err;

	if (!subp || !req)
		return EINVAL;

	*subp = NULL;
	if (sip_msg_hdr_count(msg, SIP_HDR_REFER_TO) != 1) {
		reply_simple(req, 400, "Bad Refer-To Header", NULL);
		return EBADMSG;
	}

	err = events_start(st);
	if (err)
		return err;
	svc = evsvc_of(st);

	err = stack_local_uri(st, msg->tp, contact, sizeof(contact));
	if (err)
		return err;

	if (refer_sub_false(msg)) {
		(void)re_snprintf(hdrs, sizeof(hdrs), "Refer-Sub: false\r\n"
				  "Contact: <%s>\r\n",
				  dlg ? dialog_contact(dlg) : contact);
		reply_simple(req, 202, "Accepted", hdrs);
		return 0;
	}

	if (!dlg) {
		(void)re_snprintf(ltag, sizeof(ltag), "%016llx", msg->tag);
		err = dialog_create_uas(&own, stack_dialogs(st), st, msg, ltag,
					contact);
		if (err) {
			reply_simple(req, err == EBADMSG ? 400 : 500,
				     err == EBADMSG ? "Bad Contact Header" :
				     "Server Internal Error", NULL);
			return err;
		}
		dlg = own;
	}

	sub = sub_alloc(svc, true);
	if (!sub) {
		mem_deref(own);
		reply_simple(req, 500, "Server Internal Error", NULL);
		return ENOMEM;
	}

	(void)re_snprintf(id, sizeof(id), "%u", msg->cseq.num);
	sub->refer = true;
	sub->eh = h;
	sub->arg = arg;
	sub->min_expires = 1;
	sub->max_expires = REFER_EXPIRES;
	err  = str_dup(&sub->event, "refer");
	err |= str_dup(&sub->id, id);
	err |= pl_strdup(&sub->callid, &msg->callid);
	err |= pl_strdup(&sub->from, &msg->from.auri);
	err |= pl_strdup(&sub->to, &msg->to.auri);
	err |= sipfrag_set(sub, 100, "Trying");
	sd = err ? NULL : subdlg_add(sub, dlg);
	mem_deref(own);
	if (!sd || subdlg_attach(sd)) {
		sub->eh = NULL;
		reply_simple(req, 500, "Server Internal Error", NULL);
		sub_close(sub, "error");
		return err ? err : ENOMEM;
	}

	if (own)
		stack_req_set_dialog(req, NULL, NULL);
	(void)re_snprintf(hdrs, sizeof(hdrs), "Contact: <%s>\r\n",
			  dialog_contact(dlg));
	reply_simple(req, 202, "Accepted", hdrs);

	set_expiry(sub, REFER_EXPIRES);
	tmr_start(&sub->tmr_wait, 0, first_notify_h, sub);

	slog(LOG_INFO, "events", "refer_accepted", &msg->callid, "id=%s "
	     "in_dialog=%s", id, own ? "no" : "yes");

	*subp = mem_ref(sub);

	return 0;
}


int sub_refer_notify(struct sub *sub, uint16_t code, const char *reason)
{
	int err;

	if (!sub || !sub->notifier || !sub->refer || code < 100 ||
	    code > 699 || (reason && strpbrk(reason, "\r\n")))
		return EINVAL;
	if (sub->closed || sub->ending)
		return EALREADY;

	err = sipfrag_set(sub, code, reason);
	if (err)
		return err;

	return sub_notify(sub, sub->cur.state, sub->cur.reason,
			  sub->cur.ctype, sub->cur.body, sub->cur.len);
}
