/**
 * server/events/sub.c  The subscription object, both roles
 *
 * Owns struct sub's life (alloc, close, free), its dialogs (struct
 * subdlg: one for a notifier, one per notifier for a subscriber), the
 * owner's events, and what both roles read off a message (the Event
 * package and id, Expires). Exposes the getters and sub_set_handler of
 * events.h. Uses the core's dialogs.
 */
#include <string.h>
#include <re.h>
#include "sipcore.h"
#include "events.h"
#include "evpriv.h"


/* Another live subdlg of svc on dlg (but not sd), or NULL; with_usage:
 * only the one holding the dialog's usage */
static struct subdlg *subdlg_on(const struct evsvc *svc,
				const struct dialog *dlg,
				const struct subdlg *not, bool with_usage)
{
	struct le *le, *le2;

	if (!svc)
		return NULL;

	LIST_FOREACH(&svc->subs, le) {
		const struct sub *sub = le->data;

		LIST_FOREACH(&sub->dlgs, le2) {
			struct subdlg *sd = le2->data;

			if (sd != not && sd->dlg == dlg &&
			    (!with_usage || sd->usage))
				return sd;
		}
	}

	return NULL;
}


/* The in-dialog SUBSCRIBE and NOTIFY of every subscription in the
 * dialog, routed by their Event (package and id) and our role */
static void usage_req_h(struct dialog *dlg, struct stack_req *req,
			void *arg)
{
	const struct sip_msg *msg = stack_req_msg(req);
	const bool subscribe = !pl_strcmp(&msg->met, "SUBSCRIBE");
	struct evsvc *svc = arg;
	struct le *le;

	LIST_FOREACH(&svc->subs, le) {
		struct sub *sub = le->data;
		struct subdlg *sd;

		if (sub->closed || sub->notifier != subscribe)
			continue;
		sd = subdlg_find(sub, dlg);
		if (!sd || !sub_event_matches(sub, msg))
			continue;

		if (subscribe)
			notifier_dialog_req(sub, sd, req);
		else
			subscriber_notify(sub, sd, req);
		return;
	}

	if (subscribe)
		(void)stack_req_reply(req, 489, "Bad Event",
				      svc->allow_events, NULL, NULL, 0);
	else
		(void)stack_req_reply(req, 481, "Subscription Does Not Exist",
				      NULL, NULL, NULL, 0);
}


/* One usage per dialog takes the in-dialog requests of every
 * subscription in it (several may share one: a call's REFERs) */
int subdlg_attach(struct subdlg *sd)
{
	struct evsvc *svc = sd->sub->svc;

	if (!svc)
		return ESHUTDOWN;

	if (sd->usage || subdlg_on(svc, sd->dlg, sd, true))
		return 0;

	return dialog_usage_add(&sd->usage, sd->dlg, "SUBSCRIBE NOTIFY",
				usage_req_h, NULL, svc);
}


static void subdlg_destructor(void *arg)
{
	struct subdlg *sd = arg;
	struct subdlg *next;

	list_unlink(&sd->le);
	mem_deref(sd->req);
	if (sd->usage) {
		sd->usage = mem_deref(sd->usage);
		next = subdlg_on(sd->sub->svc, sd->dlg, sd, false);
		if (next)
			(void)subdlg_attach(next);
	}
	mem_deref(sd->dlg);
}


static void substate_clear(struct substate *s)
{
	s->reason = mem_deref(s->reason);
	s->ctype = mem_deref(s->ctype);
	s->body = mem_deref(s->body);
	s->len = 0;
}


static void sub_destructor(void *arg)
{
	struct sub *sub = arg;

	tmr_cancel(&sub->tmr);
	tmr_cancel(&sub->tmr_wait);
	list_unlink(&sub->le);
	list_flush(&sub->dlgs);
	mem_deref(sub->req);
	mem_deref(sub->nreq);
	mem_deref(sub->sreq);
	substate_clear(&sub->cur);
	mem_deref(sub->hdrs);
	mem_deref(sub->user);
	mem_deref(sub->password);
	mem_deref(sub->authhdr);
	mem_deref(sub->event);
	mem_deref(sub->id);
	mem_deref(sub->callid);
	mem_deref(sub->from);
	mem_deref(sub->to);
}


/* A new subscription, listed in svc (the list's reference) */
struct sub *sub_alloc(struct evsvc *svc, bool notifier)
{
	struct sub *sub = mem_zalloc(sizeof(*sub), sub_destructor);

	if (!sub)
		return NULL;

	sub->svc = svc;
	sub->notifier = notifier;
	sub->state = SUB_PENDING;
	tmr_init(&sub->tmr);
	tmr_init(&sub->tmr_wait);
	list_append(&svc->subs, &sub->le, sub);

	return sub;
}


struct subdlg *subdlg_add(struct sub *sub, struct dialog *dlg)
{
	struct subdlg *sd = mem_zalloc(sizeof(*sd), subdlg_destructor);

	if (!sd)
		return NULL;

	sd->sub = sub;
	sd->dlg = mem_ref(dlg);
	list_append(&sub->dlgs, &sd->le, sd);

	return sd;
}


struct subdlg *subdlg_find(const struct sub *sub, const struct dialog *dlg)
{
	struct le *le;

	LIST_FOREACH(&sub->dlgs, le) {
		struct subdlg *sd = le->data;

		if (sd->dlg == dlg)
			return sd;
	}

	return NULL;
}


void sub_fire(struct sub *sub, const struct sub_event *ev)
{
	if (sub->eh)
		sub->eh(sub, ev, sub->arg);
}


/* The owner hears CLOSED once */
void sub_tell_closed(struct sub *sub, const char *reason)
{
	struct sub_event ev;
	sub_event_h *eh = sub->eh;

	if (!eh)
		return;

	sub->eh = NULL;
	memset(&ev, 0, sizeof(ev));
	ev.type = SUB_EV_CLOSED;
	ev.reason = reason ? reason : "";
	ev.state = SUB_TERMINATED;
	eh(sub, &ev, sub->arg);
}


/* Final: timers stop, the dialogs leave the table, the owner hears it,
 * the service drops its reference (the owner may hold one still) */
void sub_close(struct sub *sub, const char *reason)
{
	if (!sub || sub->closed)
		return;

	sub->closed = true;
	sub->state = SUB_TERMINATED;
	/* not listed any more: its dialogs' usage moves to another's */
	list_unlink(&sub->le);
	tmr_cancel(&sub->tmr);
	tmr_cancel(&sub->tmr_wait);
	sub->sreq = mem_deref(sub->sreq);
	sub->nreq = mem_deref(sub->nreq);
	list_flush(&sub->dlgs);

	if (sub->req) {
		if (!stack_req_answered(sub->req))
			(void)stack_req_reply(sub->req, 500, "Server Internal "
					      "Error", NULL, NULL, NULL, 0);
		sub->req = mem_deref(sub->req);
	}

	slog(LOG_DEBUG, "events", "closed", NULL, "callid=%H event=%H "
	     "role=%s reason=%H", log_q, sub->callid, log_q, sub->event,
	     sub->notifier ? "notifier" : "subscriber", log_q, reason);

	sub->svc = NULL;
	sub_tell_closed(sub, reason);
	mem_deref(sub);           /* the list's reference */
}


/* The Event header (RFC 6665 §8.2.1): package and id. ENOENT: none;
 * EBADMSG: malformed. */
int sub_parse_event(const struct sip_msg *msg, struct pl *pkg, struct pl *id)
{
	const struct sip_hdr *hdr = sip_msg_hdr(msg, SIP_HDR_EVENT);
	struct sipevent_event se;

	if (!hdr)
		return ENOENT;

	if (sipevent_event_decode(&se, &hdr->val) || !pl_isset(&se.event))
		return EBADMSG;

	*pkg = se.event;
	if (pl_isset(&se.id))
		*id = se.id;
	else
		pl_set_str(id, "");

	return 0;
}


/* §8.2.1: same package (case-insensitive token) and same id */
bool sub_event_matches(const struct sub *sub, const struct sip_msg *msg)
{
	struct pl pkg, id;

	if (sub_parse_event(msg, &pkg, &id))
		return false;

	return !pl_strcasecmp(&pkg, sub->event) && !pl_strcmp(&id, sub->id);
}


/* The Expires header's seconds, dflt if absent or unreadable */
uint32_t sub_msg_expires(const struct sip_msg *msg, uint32_t dflt)
{
	const struct sip_hdr *hdr = sip_msg_hdr(msg, SIP_HDR_EXPIRES);
	struct pl v;

	if (!hdr || re_regex(hdr->val.p, hdr->val.l, "[0-9]+", &v) ||
	    v.l > 9)
		return dflt;

	return pl_u32(&v);
}


/* ------------------------------------------------------------------ *
 * Getters
 * ------------------------------------------------------------------ */

void sub_set_handler(struct sub *sub, sub_event_h *h, void *arg)
{
	if (!sub)
		return;

	sub->eh = sub->closed ? NULL : h;
	sub->arg = arg;
}


bool sub_is_notifier(const struct sub *sub)
{
	return sub && sub->notifier;
}


bool sub_is_closed(const struct sub *sub)
{
	return !sub || sub->closed;
}


const char *sub_event_package(const struct sub *sub)
{
	return sub ? sub->event : NULL;
}


const char *sub_event_id(const struct sub *sub)
{
	return sub && sub->id ? sub->id : "";
}


const char *sub_callid(const struct sub *sub)
{
	return sub ? sub->callid : NULL;
}


const char *sub_from(const struct sub *sub)
{
	return sub ? sub->from : NULL;
}


const char *sub_to(const struct sub *sub)
{
	return sub ? sub->to : NULL;
}


enum sub_state sub_state(const struct sub *sub)
{
	return sub ? sub->state : SUB_TERMINATED;
}


uint32_t sub_expires(const struct sub *sub)
{
	uint64_t now;

	if (!sub || sub->closed || !sub->expires_at)
		return 0;

	now = tmr_jiffies();

	return sub->expires_at > now ?
		(uint32_t)((sub->expires_at - now + 999) / 1000) : 0;
}


const char *sub_state_name(enum sub_state state)
{
	switch (state) {

	case SUB_PENDING:    return "pending";
	case SUB_ACTIVE:     return "active";
	case SUB_TERMINATED: return "terminated";
	default:             return "?";
	}
}


int sub_debug(struct re_printf *pf, const struct sub *sub)
{
	if (!sub)
		return 0;

	return re_hprintf(pf, "sub %s event=%s id=%s callid=%s state=%s "
			  "expires=%u dialogs=%u%s",
			  sub->notifier ? "notifier" : "subscriber",
			  sub->event, sub->id ? sub->id : "", sub->callid,
			  sub_state_name(sub->state), sub_expires(sub),
			  list_count(&sub->dlgs),
			  sub->closed ? " closed" : "");
}
