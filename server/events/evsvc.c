/**
 * server/events/evsvc.c  The events service: packages and routing
 *
 * Owns struct evsvc (one per stack, a stack service) and struct evpkg
 * (a package someone listens to). Takes out-of-dialog SUBSCRIBE (to the
 * notifier side, 489 with Allow-Events when nobody listens to its
 * package) and NOTIFY matching no dialog yet (to the subscriber side:
 * a NOTIFY before its SUBSCRIBE's 2xx, or a fork's). In-dialog requests
 * reach the subscriptions through their dialog usages, not here.
 * Exposes events_start, events_listen, events_count. Uses the core's
 * dispatch (stack_handler_add) and services (stack_service_add).
 */
#include <string.h>
#include <re.h>
#include "sipcore.h"
#include "events.h"
#include "evpriv.h"


static const char service_key;   /* its address is the service's key */


struct evsvc *evsvc_of(const struct stack *st)
{
	return stack_service(st, &service_key);
}


struct evpkg *evsvc_pkg(const struct evsvc *svc, const struct pl *name)
{
	struct le *le;

	if (!svc)
		return NULL;

	LIST_FOREACH(&svc->pkgs, le) {
		struct evpkg *p = le->data;

		if (!pl_strcasecmp(name, p->name))
			return p;
	}

	return NULL;
}


static bool subscribe_handler(struct stack *st, struct stack_req *req,
			      void *arg)
{
	(void)st;

	return notifier_subscribe(arg, req);
}


static bool notify_handler(struct stack *st, struct stack_req *req,
			   void *arg)
{
	(void)st;

	return subscriber_notify_nodialog(arg, req);
}


/* Allow-Events and the SUBSCRIBE handler follow the packages */
static void pkgs_changed(struct evsvc *svc)
{
	struct mbuf *mb;
	struct le *le;

	svc->allow_events = mem_deref(svc->allow_events);

	if (list_isempty(&svc->pkgs)) {
		svc->h_sub = mem_deref(svc->h_sub);
		return;
	}

	mb = mbuf_alloc(128);
	if (mb) {
		int err = mbuf_write_str(mb, "Allow-Events: ");

		LIST_FOREACH(&svc->pkgs, le) {
			const struct evpkg *p = le->data;

			err |= mbuf_printf(mb, "%s%s", p->name,
					   le->next ? ", " : "\r\n");
		}
		mb->pos = 0;
		if (!err)
			(void)mbuf_strdup(mb, &svc->allow_events,
					  mbuf_get_left(mb));
		mem_deref(mb);
	}

	if (!svc->h_sub)
		(void)stack_handler_add(&svc->h_sub, svc->st, "SUBSCRIBE",
					"SUBSCRIBE NOTIFY",
					STACK_OUT_OF_DIALOG,
					subscribe_handler, svc);
}


static void evsvc_stop(void *obj)
{
	struct evsvc *svc = obj;
	struct le *le;

	svc->stopping = true;

	/* each goes: the notifier's get a terminated NOTIFY (best effort,
	 * the transport is still up), the subscriber's an un-SUBSCRIBE */
	while ((le = list_head(&svc->subs))) {
		struct sub *sub = le->data;

		if (sub->notifier)
			notifier_stop(sub);
		else
			subscriber_stop(sub);
		if (le == list_head(&svc->subs))
			sub_close(sub, "shutdown");
	}

	svc->h_sub = mem_deref(svc->h_sub);
	svc->h_notify = mem_deref(svc->h_notify);
}


static void evsvc_destructor(void *arg)
{
	struct evsvc *svc = arg;
	struct le *le;

	evsvc_stop(svc);

	while ((le = list_head(&svc->pkgs))) {
		struct evpkg *p = le->data;

		list_unlink(&p->le);
		p->svc = NULL;
	}

	mem_deref(svc->allow_events);
}


int events_start(struct stack *st)
{
	struct evsvc *svc;
	int err;

	if (!st)
		return EINVAL;

	if (evsvc_of(st))
		return 0;

	svc = mem_zalloc(sizeof(*svc), evsvc_destructor);
	if (!svc)
		return ENOMEM;

	svc->st = st;
	err = stack_handler_add(&svc->h_notify, st, "NOTIFY", NULL,
				STACK_NO_DIALOG, notify_handler, svc);
	if (!err)
		err = stack_service_add(st, &service_key, svc, evsvc_stop);

	mem_deref(svc);   /* the stack holds it now (or nobody) */

	return err;
}


static void evpkg_destructor(void *arg)
{
	struct evpkg *p = arg;

	if (p->svc) {
		list_unlink(&p->le);
		if (!p->svc->stopping)
			pkgs_changed(p->svc);
	}
	mem_deref(p->name);
}


int events_listen(struct evpkg **pp, struct stack *st, const char *package,
		  uint32_t min_expires, uint32_t max_expires, evpkg_h *h,
		  void *arg)
{
	struct evsvc *svc;
	struct evpkg *p;
	struct pl name;
	int err;

	if (!pp || !package || !*package || !h)
		return EINVAL;

	err = events_start(st);
	if (err)
		return err;

	svc = evsvc_of(st);
	pl_set_str(&name, package);
	if (evsvc_pkg(svc, &name))
		return EALREADY;

	p = mem_zalloc(sizeof(*p), evpkg_destructor);
	if (!p)
		return ENOMEM;

	err = str_dup(&p->name, package);
	if (err) {
		mem_deref(p);
		return err;
	}

	p->svc = svc;
	p->min_expires = min_expires ? min_expires : EVENTS_EXPIRES_MIN;
	p->max_expires = max_expires ? max_expires : EVENTS_EXPIRES_DEFAULT;
	if (p->max_expires < p->min_expires)
		p->max_expires = p->min_expires;
	p->h = h;
	p->arg = arg;
	list_append(&svc->pkgs, &p->le, p);
	pkgs_changed(svc);

	*pp = p;

	return 0;
}


uint32_t events_count(const struct stack *st)
{
	const struct evsvc *svc = evsvc_of(st);

	return svc ? list_count(&svc->subs) : 0;
}
