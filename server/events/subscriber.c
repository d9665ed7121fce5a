/**
 * server/events/subscriber.c  The subscriber's side of a subscription
 *
 * sub_subscribe() sends the first SUBSCRIBE in a dialog of its own
 * (RFC 6665 §4.1); its final answer reaches the owner (SUB_EV_ANSWER),
 * a 423 is retried once with the Min-Expires asked for, a 401/407 (to
 * it or to a refresh) answered with the owner's credentials, if any
 * (at most three in a row; a second without stale=true is a refusal).
 * Every NOTIFY
 * is answered and told (SUB_EV_NOTIFY): in the dialog (its usage), or,
 * matching no dialog yet, through the service: a NOTIFY before the 2xx
 * fixes the dialog's remote side, one from another notifier (a fork,
 * §4.1.2.4) makes a dialog of its own. The subscription is refreshed
 * before it runs out (half-way, or a minute before past two minutes),
 * each fork in its dialog; it ends when every fork has said terminated,
 * when a refresh fails, when no NOTIFY follows the 2xx within 64*T1,
 * or after sub_unsubscribe() (Expires: 0 to every fork). Exposes
 * sub_subscribe, sub_unsubscribe. Uses the core's dialogs and digest
 * client (auth_client_answer).
 */
#include <string.h>
#include <re.h>
#include "sipcore.h"
#include "events.h"
#include "evpriv.h"


static int send_subscribe(struct sub *sub, struct subdlg *sd,
			  uint32_t expires);


static uint64_t t64(const struct sub *sub)
{
	const struct stack *st = sub->svc ? sub->svc->st : NULL;
	const struct stack_config *cfg = st ? stack_config(st) : NULL;

	return 64ull * (cfg && cfg->t1 ? cfg->t1 : 500);
}


/* A subdlg still alive (not terminated) */
static bool any_alive(const struct sub *sub)
{
	struct le *le;

	LIST_FOREACH(&sub->dlgs, le) {
		const struct subdlg *sd = le->data;

		if (!sd->terminated)
			return true;
	}

	return false;
}


static void refresh_h(void *arg);


/* Refresh half-way, or a minute early past two minutes */
static void schedule_refresh(struct sub *sub, uint32_t granted)
{
	uint64_t ms;

	sub->expires = granted;
	sub->expires_at = tmr_jiffies() + (uint64_t)granted * 1000;
	if (sub->ending || !granted) {
		tmr_cancel(&sub->tmr);
		return;
	}

	ms = granted >= 120 ? (granted - 60) * 1000ull : granted * 500ull;
	tmr_start(&sub->tmr, ms ? ms : 1, refresh_h, sub);
}


static void fork_gone(struct sub *sub, struct subdlg *sd, const char *why)
{
	sd->terminated = true;
	mem_deref(sd);   /* unlinked: out of sub->dlgs and its usage */

	if (!any_alive(sub) && (sub->answered || sub->ending))
		sub_close(sub, sub->ending ? "unsubscribed" : why);
}


/* A 401/407 to our SUBSCRIBE (first or refresh): credentials for it in
 * sub->authhdr, for send_subscribe to add once. 0: send again; else the
 * challenge stands (no credentials, ours refused, or too many). */
static int auth_answer(struct sub *sub, struct subdlg *sd,
		       const struct sip_msg *msg)
{
	bool stale = false;
	int err;

	if (!sub->user || !sub->password)
		return EAUTH;

	sub->authhdr = mem_deref(sub->authhdr);
	err = auth_client_answer(&sub->authhdr, msg, "SUBSCRIBE",
				 dialog_remote_target(sd->dlg), sub->user,
				 sub->password, &stale);
	if (!err && sub->auth_tries++ && !stale)
		err = EAUTH;          /* our credentials were refused */
	if (!err && sub->auth_tries > 3)
		err = ELOOP;
	if (err) {
		sub->authhdr = mem_deref(sub->authhdr);
		slog(LOG_WARN, "events", "auth_failed", NULL, "callid=%H "
		     "event=%H code=%u err=%m", log_q, sub->callid, log_q,
		     sub->event, msg->scode, err);
	}

	return err;
}


static void refresh_resp_h(int err, const struct sip_msg *msg, void *arg)
{
	struct subdlg *sd = arg;
	struct sub *sub = sd->sub;

	if (!err && msg && msg->scode < 200)
		return;

	sd->req = NULL;

	if (!err && (msg->scode == 401 || msg->scode == 407) &&
	    !sub->ending && !auth_answer(sub, sd, msg) &&
	    !send_subscribe(sub, sd, sub->want_expires))
		return;

	if (err || msg->scode >= 300) {
		if (sub->ending)
			return;        /* the final NOTIFY or the timer ends it */
		slog(LOG_INFO, "events", "refresh_failed", NULL, "callid=%H "
		     "event=%H code=%u err=%m", log_q, sub->callid, log_q,
		     sub->event, msg ? msg->scode : 0, err);
		fork_gone(sub, sd, "refresh failed");
		return;
	}

	sub->auth_tries = 0;
	if (!sub->ending)
		schedule_refresh(sub, sub_msg_expires(msg, sub->expires));
}


static void refresh_h(void *arg)
{
	struct sub *sub = arg;
	struct le *le;

	le = list_head(&sub->dlgs);
	while (le) {
		struct subdlg *sd = le->data;

		le = le->next;
		if (!sd->terminated && !sd->req)
			(void)send_subscribe(sub, sd, sub->want_expires);
	}

	/* if no answer comes, the next try is at the last moment */
	tmr_start(&sub->tmr, sub->expires >= 120 ? 30000 : 1000 +
		  sub->expires * 400ull, refresh_h, sub);
}


static void notify_wait_h(void *arg)
{
	struct sub *sub = arg;

	sub_close(sub, sub->ending ? "unsubscribed" : "no notify");
}


static void answer_event(struct sub *sub, int err, const struct sip_msg *msg)
{
	struct sub_event ev;
	char reason[128] = "";

	if (msg)
		(void)pl_strcpy(&msg->reason, reason, sizeof(reason));

	memset(&ev, 0, sizeof(ev));
	ev.type = SUB_EV_ANSWER;
	ev.err = err;
	ev.scode = msg ? msg->scode : 0;
	ev.reason = reason;
	ev.state = sub->state;
	ev.expires = sub->expires;
	sub_fire(sub, &ev);
}


static void unsubscribe_all(struct sub *sub)
{
	struct le *le;

	le = list_head(&sub->dlgs);
	while (le) {
		struct subdlg *sd = le->data;

		le = le->next;
		if (sd->terminated)
			continue;
		sd->req = mem_deref(sd->req);
		(void)send_subscribe(sub, sd, 0);
	}

	tmr_start(&sub->tmr_wait, t64(sub), notify_wait_h, sub);
}


static void subscribe_resp_h(int err, const struct sip_msg *msg, void *arg)
{
	struct sub *sub = arg;
	struct subdlg *sd = list_ledata(list_head(&sub->dlgs));

	if (!err && msg && msg->scode < 200)
		return;

	sub->sreq = NULL;

	if (!err && (msg->scode == 401 || msg->scode == 407) && sd &&
	    !auth_answer(sub, sd, msg) &&
	    !send_subscribe(sub, sd, sub->want_expires))
		return;

	if (!err && msg->scode == 423 && !sub->retried && sd) {
		const struct sip_hdr *h = sip_msg_hdr(msg, SIP_HDR_MIN_EXPIRES);
		uint32_t min = h ? pl_u32(&h->val) : 0;

		if (min > sub->want_expires && min <= 86400) {
			sub->retried = true;
			sub->want_expires = min;
			if (!send_subscribe(sub, sd, min))
				return;
		}
	}

	if (err || msg->scode >= 300) {
		slog(LOG_INFO, "events", "subscribe_failed", NULL,
		     "callid=%H event=%H code=%u err=%m", log_q, sub->callid,
		     log_q, sub->event, msg ? msg->scode : 0, err);
		sub->answered = true;
		answer_event(sub, err, msg);
		sub_close(sub, err ? "no answer" : "rejected");
		return;
	}

	sub->answered = true;
	sub->auth_tries = 0;
	if (sd && !sd->terminated && !sub->refer) {
		int e = dialog_set_remote(sd->dlg, msg);

		if (e && e != EEXIST)
			slog(LOG_WARN, "events", "bad_answer", NULL,
			     "callid=%H err=%m", log_q, sub->callid, e);
	}

	/* a REFER's 2xx says nothing of the subscription's life: its
	 * NOTIFYs do */
	if (!sub->refer)
		schedule_refresh(sub, sub_msg_expires(msg, sub->want_expires));
	answer_event(sub, 0, msg);
	if (sub->closed)
		return;

	if (sub->ending) {
		unsubscribe_all(sub);
		return;
	}

	if (!any_alive(sub)) {
		sub_close(sub, "terminated");
		return;
	}

	/* §4.1.2.4: a NOTIFY must follow; none in 64*T1 ends it */
	if (!sub->got_notify)
		tmr_start(&sub->tmr_wait, t64(sub), notify_wait_h, sub);
}


static int send_subscribe(struct sub *sub, struct subdlg *sd,
			  uint32_t expires)
{
	char *hdrs = NULL;
	int err;

	err = re_sdprintf(&hdrs, "%s%sExpires: %u\r\n", sub->hdrs,
			  sub->authhdr ? sub->authhdr : "", expires);
	sub->authhdr = mem_deref(sub->authhdr);   /* one use */
	if (err)
		return err;

	if (!sd)
		err = ENOENT;
	else if (!sub->answered && !sub->sreq && sd ==
		 list_ledata(list_head(&sub->dlgs)))
		err = dialog_request(&sub->sreq, sd->dlg, "SUBSCRIBE", 0, hdrs,
				     NULL, NULL, 0, subscribe_resp_h, sub);
	else
		err = dialog_request(&sd->req, sd->dlg, "SUBSCRIBE", 0, hdrs,
				     NULL, NULL, 0, refresh_resp_h, sd);
	mem_deref(hdrs);

	return err;
}


static struct subdlg *fork_add(struct sub *sub, struct dialog *dlg)
{
	struct subdlg *sd = subdlg_add(sub, dlg);

	if (!sd)
		return NULL;

	if (subdlg_attach(sd)) {
		mem_deref(sd);
		return NULL;
	}

	return sd;
}


int sub_subscribe(struct sub **subp, struct stack *st, const char *uri,
		  const char *event, const struct sub_opts *opts,
		  sub_event_h *h, void *arg)
{
	char callid[64], ltag[32], contact[256], local[320], remote[320];
	struct sipevent_event se;
	struct dialog *dlg = NULL;
	struct evsvc *svc;
	struct subdlg *sd;
	struct sub *sub;
	struct uri u;
	struct pl pl;
	int err;

	if (!subp || !uri || !event || !*event)
		return EINVAL;

	pl_set_str(&pl, uri);
	if (uri_decode(&u, &pl))
		return EINVAL;

	pl_set_str(&pl, event);
	if (sipevent_event_decode(&se, &pl) || !pl_isset(&se.event))
		return EINVAL;

	err = events_start(st);
	if (err)
		return err;
	svc = evsvc_of(st);

	err = stack_local_uri(st, SIP_TRANSP_NONE, contact, sizeof(contact));
	if (err)
		return err;

	sub = sub_alloc(svc, false);
	if (!sub)
		return ENOMEM;

	(void)re_snprintf(callid, sizeof(callid), "%016llx%016llx",
			  rand_u64(), rand_u64());
	(void)re_snprintf(ltag, sizeof(ltag), "%016llx", rand_u64());
	(void)re_snprintf(local, sizeof(local), "<%s>",
			  opts && opts->from ? opts->from : contact);
	(void)re_snprintf(remote, sizeof(remote), "<%s>", uri);

	sub->want_expires = opts && opts->expires ? opts->expires :
		EVENTS_EXPIRES_DEFAULT;
	sub->eh = h;
	sub->arg = arg;

	err  = pl_strdup(&sub->event, &se.event);
	err |= pl_isset(&se.id) ? pl_strdup(&sub->id, &se.id) :
		str_dup(&sub->id, "");
	err |= str_dup(&sub->callid, callid);
	err |= str_dup(&sub->from, opts && opts->from ? opts->from :
		       contact);
	err |= str_dup(&sub->to, uri);
	if (opts && opts->user && opts->password) {
		err |= str_dup(&sub->user, opts->user);
		err |= str_dup(&sub->password, opts->password);
	}
	err |= re_sdprintf(&sub->hdrs, "Event: %s\r\n%s%s%s%s",
			   event,
			   opts && opts->accept ? "Accept: " : "",
			   opts && opts->accept ? opts->accept : "",
			   opts && opts->accept ? "\r\n" : "",
			   opts && opts->hdrs ? opts->hdrs : "");
	if (!err)
		err = dialog_create_uac(&dlg, stack_dialogs(st), st, callid,
					ltag, local, remote, uri, contact);
	if (err)
		goto out;

	sd = fork_add(sub, dlg);
	mem_deref(dlg);
	if (!sd) {
		err = ENOMEM;
		goto out;
	}

	err = send_subscribe(sub, sd, sub->want_expires);
	if (err)
		goto out;

	slog(LOG_INFO, "events", "subscribing", NULL, "callid=%H event=%H "
	     "to=%H", log_q, callid, log_q, event, log_q, uri);

	*subp = mem_ref(sub);

 out:
	if (err) {
		sub->eh = NULL;
		sub_close(sub, "error");
	}

	return err;
}


int sub_unsubscribe(struct sub *sub)
{
	if (!sub || sub->notifier || sub->closed)
		return EINVAL;
	if (sub->ending)
		return EALREADY;

	sub->ending = true;
	tmr_cancel(&sub->tmr);

	/* the 2xx to the first SUBSCRIBE sends it (there may be no dialog
	 * to send it in before) */
	if (!sub->answered)
		return 0;

	unsubscribe_all(sub);

	return 0;
}


static void reply(struct stack_req *req, uint16_t code, const char *reason,
		  const char *hdrs)
{
	(void)stack_req_reply(req, code, reason, hdrs, NULL, NULL, 0);
}


/* A NOTIFY of the subscription (its Event matched) */
void subscriber_notify(struct sub *sub, struct subdlg *sd,
		       struct stack_req *req)
{
	const struct sip_msg *msg = stack_req_msg(req);
	const struct sip_hdr *hdr;
	struct sipevent_substate ss;
	struct sub_event ev;
	const struct sip_hdr *ct;
	char ctype[128] = "";
	char fork[64] = "";
	char frag_reason[128] = "";
	struct pl body;
	const char *why;

	if (sub->closed) {
		reply(req, 481, "Subscription Does Not Exist", NULL);
		return;
	}

	if (!sub_event_matches(sub, msg)) {
		reply(req, 489, "Bad Event", NULL);
		return;
	}

	hdr = sip_msg_hdr(msg, SIP_HDR_SUBSCRIPTION_STATE);
	if (!hdr || sipevent_substate_decode(&ss, &hdr->val)) {
		reply(req, 400, hdr ? "Bad Subscription-State Header" :
		      "Missing Subscription-State Header", NULL);
		return;
	}

	(void)dialog_target_refresh(sd->dlg, msg);
	reply(req, 200, "OK", NULL);

	sub->got_notify = true;
	if (!sub->ending)
		tmr_cancel(&sub->tmr_wait);

	ct = sip_msg_hdr(msg, SIP_HDR_CONTENT_TYPE);
	if (ct)
		(void)pl_strcpy(&ct->val, ctype, sizeof(ctype));
	(void)str_ncpy(fork, dialog_rtag(sd->dlg), sizeof(fork));
	stack_msg_body(msg, &body);

	memset(&ev, 0, sizeof(ev));
	ev.type = SUB_EV_NOTIFY;
	ev.ctype = ctype;
	ev.body = (const uint8_t *)body.p;
	ev.len = body.l;
	ev.fork = fork;
	ev.reason = "";

	switch (ss.state) {

	case SIPEVENT_ACTIVE:
	case SIPEVENT_PENDING:
		ev.state = ss.state == SIPEVENT_ACTIVE ? SUB_ACTIVE :
			SUB_PENDING;
		sub->state = ev.state;
		if (pl_isset(&ss.expires) && !sub->ending) {
			uint32_t left = pl_u32(&ss.expires);

			/* the notifier may shorten it (§4.1.2.2) */
			if (!sub->expires_at || tmr_jiffies() +
			    left * 1000ull < sub->expires_at)
				schedule_refresh(sub, left);
		}
		ev.expires = sub_expires(sub);
		break;

	default:
		ev.state = SUB_TERMINATED;
		ev.reason = sipevent_reason_name(ss.reason);
		break;
	}

	slog(LOG_DEBUG, "events", "notify", &msg->callid, "event=%H "
	     "state=%s fork=%H", log_q, sub->event, sub_state_name(ev.state),
	     log_q, fork);

	/* a REFER's progress: "SIP/2.0 180 Ringing" (RFC 3515 §2.4.5) */
	if (sub->refer && body.l > 12 && !strncmp(body.p, "SIP/2.0 ", 8)) {
		struct pl code, phrase;

		if (!re_regex(body.p, body.l, "SIP/2.0 [0-9]+ [^\r\n]*",
			      &code, &phrase) && code.l == 3) {
			ev.frag_code = (uint16_t)pl_u32(&code);
			(void)pl_strcpy(&phrase, frag_reason,
					sizeof(frag_reason));
		}
	}
	ev.frag_reason = frag_reason;

	why = ev.reason && *ev.reason ? ev.reason : "terminated";
	sub_fire(sub, &ev);
	if (sub->closed || ev.state != SUB_TERMINATED)
		return;

	if (!sub->ending && list_count(&sub->dlgs) > 1)
		sub->state = SUB_ACTIVE;   /* another notifier goes on */
	fork_gone(sub, sd, why);
}


/* A NOTIFY whose dialog we do not have yet: before the 2xx of our
 * SUBSCRIBE, or from another notifier (a fork) */
bool subscriber_notify_nodialog(struct evsvc *svc, struct stack_req *req)
{
	const struct sip_msg *msg = stack_req_msg(req);
	struct subdlg *first, *sd;
	struct dialog *dlg, *fdlg = NULL;
	struct sub *sub = NULL;
	struct le *le;
	int err;

	dlg = dialog_table_find(stack_dialogs(svc->st), &msg->callid,
				&msg->to.tag, NULL);
	if (!dlg)
		return false;

	LIST_FOREACH(&svc->subs, le) {
		struct sub *s = le->data;

		if (!s->notifier && subdlg_find(s, dlg)) {
			sub = s;
			break;
		}
	}
	if (!sub)
		return false;

	if (sub->closed || sub->ending) {
		reply(req, 481, "Subscription Does Not Exist", NULL);
		return true;
	}

	if (!sub_event_matches(sub, msg)) {
		reply(req, 489, "Bad Event", NULL);
		return true;
	}

	first = list_ledata(list_head(&sub->dlgs));
	if (first && !dialog_rtag(first->dlg)[0]) {
		err = dialog_set_remote(first->dlg, msg);
		sd = first;
	}
	else {
		err = first ? dialog_fork(&fdlg, first->dlg, msg) : ENOENT;
		sd = err ? NULL : fork_add(sub, fdlg);
		mem_deref(fdlg);
		if (!err && !sd)
			err = ENOMEM;
		if (!err)
			slog(LOG_INFO, "events", "fork", &msg->callid,
			     "event=%H fork=%r", log_q, sub->event,
			     &msg->from.tag);
	}
	if (err) {
		reply(req, err == EBADMSG || err == ENOENT ? 400 : 500,
		      err == EBADMSG || err == ENOENT ? "Bad Contact Header" :
		      "Server Internal Error", NULL);
		return true;
	}

	(void)dialog_check_rseq(sd->dlg, msg);
	subscriber_notify(sub, sd, req);

	return true;
}


/* The service stops: un-SUBSCRIBE (best effort), then it is over */
void subscriber_stop(struct sub *sub)
{
	if (!sub->ending && sub->answered)
		(void)sub_unsubscribe(sub);
	sub_close(sub, "shutdown");
}


/* ------------------------------------------------------------------ *
 * REFER (RFC 3515): the implicit subscription, subscriber side
 * ------------------------------------------------------------------ */

int sub_refer(struct sub **subp, struct stack *st, struct dialog *dlg,
	      const char *refer_to, const char *hdrs, sub_event_h *h,
	      void *arg)
{
	char *rhdrs = NULL;
	struct subdlg *sd;
	struct evsvc *svc;
	struct sub *sub;
	int err;

	if (!subp || !dlg || !refer_to || !*refer_to ||
	    strpbrk(refer_to, "<>\r\n"))
		return EINVAL;

	err = events_start(st);
	if (err)
		return err;
	svc = evsvc_of(st);

	sub = sub_alloc(svc, false);
	if (!sub)
		return ENOMEM;

	sub->refer = true;
	sub->want_expires = 180;
	err  = str_dup(&sub->event, "refer");
	err |= str_dup(&sub->callid, dialog_callid(dlg));
	err |= str_dup(&sub->from, dialog_local_uri(dlg));
	err |= str_dup(&sub->to, dialog_remote_uri(dlg));
	err |= re_sdprintf(&rhdrs, "Refer-To: <%s>\r\n%s", refer_to,
			   hdrs ? hdrs : "");
	sd = err ? NULL : subdlg_add(sub, dlg);
	if (!sd || subdlg_attach(sd)) {
		err = err ? err : ENOMEM;
		goto out;
	}

	err = dialog_request(&sub->sreq, dlg, "REFER", 0, rhdrs, NULL, NULL,
			     0, subscribe_resp_h, sub);
	if (err)
		goto out;

	/* its NOTIFYs say refer;id=<the REFER's CSeq> (§2.4.6) */
	err  = re_sdprintf(&sub->id, "%u", dialog_lseq(dlg));
	err |= re_sdprintf(&sub->hdrs, "Event: refer;id=%u\r\n",
			   dialog_lseq(dlg));
	if (err)
		goto out;

	sub->eh = h;
	sub->arg = arg;
	slog(LOG_INFO, "events", "refer_sent", NULL, "callid=%H id=%s "
	     "refer_to=%H", log_q, sub->callid, sub->id, log_q, refer_to);

	*subp = mem_ref(sub);

 out:
	mem_deref(rhdrs);
	if (err)
		sub_close(sub, "error");

	return err;
}
