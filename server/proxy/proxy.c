/**
 * server/proxy/proxy.c  The proxy service of a stack
 *
 * Owns struct proxy (proxy_priv.h): a stack service holding the live
 * proxy transactions (ptrans.c) and the settings, and what a proxy
 * forwards without asking its owner (a script):
 *  - in-dialog requests of dialogs that are not ours (the core's
 *    STACK_NO_DIALOG handlers) that we record-routed (a Route of ours
 *    on top, or a strict router's Request-URI naming us): after RFC
 *    3261 §16.4, they go on: a non-INVITE that came over UDP, to a
 *    numeric next hop over UDP, without state (§16.11, fwd.c: our Via,
 *    its answers come back as strays), the others in a transaction of
 *    one branch (the answer is the downstream one); an ACK (of a 2xx:
 *    libre absorbs the others) goes on without state; the rest stays
 *    481, the core's (no open relay for made-up To tags);
 *  - responses that match no client transaction (the core's stray
 *    handler): 2xx retransmissions and forked 2xx after ours ended,
 *    forwarded by their Via without state (§16.11);
 *  - a CANCEL that matches no server transaction: 481 (every request
 *    we forward has one, so there is nothing to cancel).
 * Exposes proxy_start/disable/of/count/debug (proxy.h). Uses the core's
 * handlers and services (sipcore.h), ptrans.c and fwd.c.
 */
#include <string.h>
#include <re.h>
#include "proxy_priv.h"


static const char proxy_key;   /* the stack's key for its service */


void proxy_config_default(struct proxy_config *cfg)
{
	if (!cfg)
		return;

	memset(cfg, 0, sizeof(*cfg));
	cfg->timer_c = PROXY_TIMER_C;
	cfg->record_route = true;
	cfg->max_attempts = PROXY_MAX_ATTEMPTS;
}


struct proxy *proxy_of(const struct stack *st)
{
	return st ? stack_service(st, &proxy_key) : NULL;
}


uint32_t proxy_count(const struct stack *st)
{
	const struct proxy *px = proxy_of(st);

	return px ? list_count(&px->ptl) : 0;
}


/* ------------------------------------------------------------------ *
 * What is forwarded without asking
 * ------------------------------------------------------------------ */

/* The ACK of a 2xx: on without state (an ACK of a 2xx is a transaction
 * of its own, RFC 3261 §17.1.1.3); to a numeric next hop with our Via,
 * else libre writes the Via (a fresh branch) and resolves the hop */
static void ack_relay(struct proxy *px, const struct sip_msg *msg,
		      const struct fwd_route *rt)
{
	struct sip *sip = stack_sip(px->st);
	char *ruri = NULL, *hop = NULL;
	struct mbuf *mb = NULL;
	struct uri route;
	struct pl pl;
	int err;

	if (!fwd_max_forwards(msg))
		return;

	/* to a numeric address: our own Via and send, no libre request */
	err = fwd_stateless_request(sip, msg, rt);
	if (err != ENOTSUP)
		goto out;

	err = fwd_request(&mb, &ruri, &hop, msg, rt->ruri, NULL, NULL, rt,
			  NULL, 0);
	if (err)
		goto out;

	pl_set_str(&pl, hop);
	err = uri_decode(&route, &pl);
	if (!err)
		err = sip_request(NULL, sip, false, "ACK", 3, ruri,
				  (int)strlen(ruri), &route, mb,
				  (size_t)hash_joaat_pl(&msg->callid), NULL,
				  NULL, NULL);

 out:
	if (!err)
		++px->stats.acks;
	else
		slog(LOG_INFO, "proxy", "ack_failed", &msg->callid,
		     "err=%m", err);
	mem_deref(mb);
	mem_deref(ruri);
	mem_deref(hop);
}


static bool nodlg_handler(struct stack *st, struct stack_req *req,
			  void *arg)
{
	const struct sip_msg *msg = stack_req_msg(req);
	struct proxy *px = arg;
	struct sip *sip = stack_sip(st);
	struct fwd_route rt;
	struct ptrans *pt;
	bool done;
	int err;

	if (!px->enabled)
		return false;

	if (fwd_route_prepare(&rt, sip, msg))
		return false;

	/* Only what we record-routed: a Route of ours on top (or our
	 * Record-Route URI in the Request-URI, from a strict router).
	 * Anything else with a To tag is no dialog we know of (481, or
	 * an ACK dropped): relaying it would make us an open relay for
	 * anyone who makes up a To tag. Addressed to us with no Route
	 * left: ours, and unknown (481) too. */
	if ((!rt.ours && !rt.strict) ||
	    (!rt.routec && fwd_ruri_is_us(sip, rt.ruri))) {
		fwd_route_reset(&rt);
		return false;
	}

	if (!pl_strcmp(&msg->met, "ACK")) {
		ack_relay(px, msg, &rt);
		fwd_route_reset(&rt);
		return true;
	}

	/* a non-INVITE over UDP to a numeric next hop: without state
	 * (§16.11), its answers come back as strays; else a transaction
	 * of one branch (RFC 3263 resolving, transport errors as 503,
	 * reliable transports, re-INVITEs with their 100 and CANCEL) */
	if (pl_strcmp(&msg->met, "INVITE")) {
		err = fwd_stateless_request(sip, msg, &rt);
		if (err != ENOTSUP) {
			fwd_route_reset(&rt);
			if (err)
				slog(LOG_INFO, "proxy", "relay_failed",
				     &msg->callid, "method=%r err=%m",
				     &msg->met, err);
			else
				++px->stats.relayed;
			stack_req_forwarded(req);
			return true;
		}
	}
	fwd_route_reset(&rt);

	err = ptrans_alloc(&pt, px, req);
	if (err)
		return false;

	{
		struct proxy_opts o;

		memset(&o, 0, sizeof(o));
		o.record_route = 0;
		err = ptrans_forward(pt, NULL, 0, &o, NULL, NULL, &done);
	}
	if (err)
		slog(LOG_INFO, "proxy", "relay_failed", &msg->callid,
		     "method=%r err=%m", &msg->met, err);
	else
		++px->stats.relayed;

	ptrans_detach(pt);      /* the best response goes upstream */
	mem_deref(pt);

	return true;
}


/* A CANCEL no server transaction took (libre answers those that
 * match): every request we forward has one, so this cancels nothing
 * of ours; answered here, not by a script's on_request */
static bool cancel_handler(struct stack *st, struct stack_req *req,
			   void *arg)
{
	struct proxy *px = arg;
	(void)st;

	if (!px->enabled)
		return false;

	(void)stack_req_reply(req, 481, "Call/Transaction Does Not Exist",
			      NULL, NULL, NULL, 0);

	return true;
}


static void stray_handler(const struct sip_msg *msg, void *arg)
{
	struct proxy *px = arg;
	int err;

	err = fwd_stateless_response(stack_sip(px->st), msg);
	if (!err)
		++px->stats.strays;
	else
		slog(LOG_DEBUG, "proxy", "stray_response", &msg->callid,
		     "code=%u cseq=%r src=%J err=%m", msg->scode,
		     &msg->cseq.met, &msg->src, err);
}


/* The service's figures (docs/metrics.md, Proxy), at scrape time */
static int metrics_collect(struct mbuf *mb, void *arg)
{
	const struct proxy *px = arg;
	int err;

	err  = metrics_one(mb, "sipstack_proxy_transactions", METRICS_GAUGE,
			   "Proxy transactions alive (a branch pending or "
			   "the answer still to send)", list_count(&px->ptl));
	err |= metrics_one(mb, "sipstack_proxy_attempts_total",
			   METRICS_COUNTER, "Forwarding attempts started "
			   "(req:proxy, req:relay, in-dialog relays)",
			   px->stats.forwarded);
	err |= metrics_one(mb, "sipstack_proxy_relayed_total",
			   METRICS_COUNTER, "In-dialog requests relayed along "
			   "our Record-Route", px->stats.relayed);
	err |= metrics_one(mb, "sipstack_proxy_acks_total", METRICS_COUNTER,
			   "ACKs of 2xx relayed without state",
			   px->stats.acks);
	err |= metrics_one(mb, "sipstack_proxy_stray_responses_total",
			   METRICS_COUNTER, "Responses matching no "
			   "transaction forwarded by their Via",
			   px->stats.strays);

	return err;
}


/* ------------------------------------------------------------------ *
 * The service
 * ------------------------------------------------------------------ */

static void proxy_stop(void *obj)
{
	struct proxy *px = obj;
	struct le *le;

	px->enabled = false;
	px->h_nodlg = mem_deref(px->h_nodlg);
	px->h_cancel = mem_deref(px->h_cancel);
	stack_set_stray_handler(px->st, NULL, NULL);

	while ((le = list_head(&px->ptl)))
		ptrans_abandon(le->data);
}


static void proxy_destructor(void *arg)
{
	struct proxy *px = arg;

	mem_deref(px->mc);
	mem_deref(px->h_nodlg);
	mem_deref(px->h_cancel);
	list_flush(&px->ptl);
	mem_deref(px->pbdef);
}


int proxy_start(struct stack *st, const struct proxy_config *cfg)
{
	struct proxy *px;
	int err;

	if (!st)
		return EINVAL;

	px = proxy_of(st);
	if (!px) {
		px = mem_zalloc(sizeof(*px), proxy_destructor);
		if (!px)
			return ENOMEM;

		px->st = st;
		err = pbfsm_def(&px->pbdef);
		if (err) {
			mem_deref(px);
			return err;
		}
		if (stack_metrics(st)) {
			err = metrics_collector_add(&px->mc, stack_metrics(st),
						    metrics_collect, px);
			if (err) {
				mem_deref(px);
				return err;
			}
		}
		err = stack_service_add(st, &proxy_key, px, proxy_stop);
		mem_deref(px);           /* the stack holds it now */
		if (err)
			return err;
	}

	if (cfg)
		px->cfg = *cfg;
	else
		proxy_config_default(&px->cfg);
	if (!px->cfg.max_attempts)
		px->cfg.max_attempts = PROXY_MAX_ATTEMPTS;
	if (!px->cfg.timer_c)
		px->cfg.timer_c = PROXY_TIMER_C;

	if (!px->h_nodlg) {
		err = stack_handler_add(&px->h_nodlg, st, NULL, NULL,
					STACK_NO_DIALOG, nodlg_handler, px);
		if (err)
			return err;
	}

	if (!px->h_cancel) {
		err = stack_handler_add(&px->h_cancel, st, "CANCEL", NULL,
					STACK_OUT_OF_DIALOG, cancel_handler,
					px);
		if (err)
			return err;
	}

	stack_set_stray_handler(st, stray_handler, px);
	px->enabled = true;

	return 0;
}


void proxy_disable(struct stack *st)
{
	struct proxy *px = proxy_of(st);

	if (!px)
		return;

	px->enabled = false;
	px->h_nodlg = mem_deref(px->h_nodlg);
	px->h_cancel = mem_deref(px->h_cancel);
	stack_set_stray_handler(st, NULL, NULL);
}


int proxy_debug(struct re_printf *pf, const struct proxy *px)
{
	struct le *le;
	int err;

	if (!px)
		return 0;

	err = re_hprintf(pf, "proxy enabled=%d live=%u forwarded=%llu "
			 "relayed=%llu acks=%llu strays=%llu\n", px->enabled,
			 list_count(&px->ptl), px->stats.forwarded,
			 px->stats.relayed, px->stats.acks,
			 px->stats.strays);
	LIST_FOREACH(&px->ptl, le)
		err |= ptrans_debug(pf, le->data);

	return err;
}
