/**
 * server/proxy/ptrans.c  A proxy transaction and its branches
 *
 * Owns struct ptrans (a response context, RFC 3261 §16.7) and struct
 * pbranch (one client transaction of it). The upstream side is the
 * request's struct stack_req: its server transaction answers
 * retransmissions and CANCEL (libre answers the CANCEL 200 and calls
 * us: every pending branch gets a CANCEL, §16.10, and the caller 487).
 * Each branch is a libre sip_request: libre writes the request line
 * and our Via (its own branch parameter), resolves the next hop (RFC
 * 3263) and runs the client transaction (retransmissions, Timer B/F,
 * the ACK of a non-2xx); we add Record-Route when it knows the
 * transport (its send handler), and run Timer C (§16.6 item 11: a
 * provisional restarts it; when it fires, a branch that answered is
 * cancelled, one that did not counts as 408) and the branch timeout
 * of serial forking.
 *
 * An attempt (ptrans_forward) starts its targets by groups (all at
 * once, one by one, or by q); responses: a provisional other than 100
 * goes upstream at once; a 2xx goes upstream at once (and every later
 * 2xx of any branch too, statelessly once the transaction is
 * answered), the other branches are cancelled and the attempt ends;
 * a 6xx cancels the others and ends it; otherwise the attempt ends
 * when no branch is left, its best response chosen per §16.7 item 6:
 * the lowest class, a real response before one we made up (408 for a
 * timeout, 503 for a transport error, §16.9). The owner then decides
 * (another attempt, its own answer), or when there is none or it
 * lets go, the best response goes upstream (a 503 as 500, §16.7).
 *
 * Loops (RFC 3261 §16.3 item 4): libre writes each branch's Via with a
 * random branch, so no loop hash rides in it; the upstream server
 * transaction, kept from the first attempt on, makes libre answer a
 * request coming back with the same Call-ID, From tag, CSeq and
 * Request-URI 482 (its merged-request rule, §8.2.2.2), which the
 * looping branch then returns. Spirals (another Request-URI) pass.
 *
 * Lifetime: the owner holds a reference; the proxy service holds one
 * while the transaction is live: until no branch is pending and the
 * request is answered (or nobody may still answer it). Exposes
 * ptrans_*() in proxy.h. Uses fwd.c for the messages, the stack's
 * stack_req_* for the server side.
 */
#include <string.h>
#include <stdlib.h>
#include <re.h>
#include "proxy_priv.h"


static void pt_branch_ended(struct ptrans *pt);
static void pt_complete(struct ptrans *pt);


static bool is_invite(const struct sip_msg *msg)
{
	return !pl_strcmp(&msg->met, "INVITE");
}


/* ------------------------------------------------------------------ *
 * Branches
 * ------------------------------------------------------------------ */

static enum pbranch_state pb_state(const struct pbranch *br)
{
	return (enum pbranch_state)fsm_state_id(br->fsm);
}


/* The code fires only what the table allows: a refusal is a bug */
static void pb_fire(struct pbranch *br, enum pbranch_event ev)
{
	const enum pbranch_state from = pb_state(br);

	if (fsm_transition_id(br->fsm, (int)ev))
		slog(LOG_ERROR, "proxy", "fsm_refused", &br->pt->msg->callid,
		     "uri=%H state=%s event=%s", log_q, br->uri,
		     pbfsm_state_name(from),
		     fsm_def_event_name(fsm_def(br->fsm), (int)ev));
}

static void pbranch_destructor(void *arg)
{
	struct pbranch *br = arg;

	tmr_cancel(&br->tmr_c);
	tmr_cancel(&br->tmr_b);
	list_unlink(&br->le);
	/* a pending request: libre cancels it and calls nobody */
	mem_deref(br->sreq);
	mem_deref(br->fsm);
	mem_deref((void *)br->resp);
	mem_deref(br->uri);
	mem_deref(br->path);
	mem_deref(br->received);
}


/* lower is better: the class, then real before made up */
static unsigned rank(uint16_t scode, bool made_up)
{
	return (unsigned)(scode / 100) * 2u + (made_up ? 1u : 0u);
}


static void pt_set_best(struct ptrans *pt, const struct sip_msg *resp,
			uint16_t scode, const char *reason, bool made_up)
{
	mem_deref((void *)pt->best);
	pt->best = resp ? mem_ref((void *)resp) : NULL;
	pt->scode = scode;
	pt->reason = reason;
	pt->made_up = made_up;
}


static void branch_info(const struct pbranch *br,
			struct proxy_branch_info *bi);


/* The branch's outcome: scode (resp, or made up); ev Final or GiveUp */
static void pb_done(struct pbranch *br, const struct sip_msg *resp,
		    uint16_t scode, bool made_up, enum pbranch_event ev)
{
	struct ptrans *pt = br->pt;

	tmr_cancel(&br->tmr_c);
	tmr_cancel(&br->tmr_b);
	pb_fire(br, ev);
	br->scode = scode;
	br->made_up = made_up;
	mem_deref((void *)br->resp);
	br->resp = resp ? mem_ref((void *)resp) : NULL;

	slog(LOG_DEBUG, "proxy", "branch_done", &pt->msg->callid,
	     "uri=%H code=%u made_up=%s attempt=%u", log_q, br->uri, scode,
	     made_up ? "yes" : "no", br->attempt);

	if (!pt->running || br->attempt != pt->attempts)
		return;

	if (scode >= 300 &&
	    (!pt->scode || scode >= 600 ||
	     (pt->scode < 600 && rank(scode, made_up) <
	      rank(pt->scode, pt->made_up))))
		pt_set_best(pt, resp, scode,
			    resp ? NULL : stack_reason_phrase(scode),
			    made_up);

	/* the owner hears of it (a script's on_branch) */
	if (pt->o.branchh) {
		struct proxy_branch_info bi;

		branch_info(br, &bi);
		pt->o.branchh(pt, &bi, pt->o.branch_arg);
	}
}


/* Stop a branch that has not answered finally: CANCEL once it has
 * answered provisionally (libre defers it until then) */
static void pb_cancel(struct pbranch *br)
{
	if (!br->sreq || br->cancelled)
		return;

	br->cancelled = true;
	pb_fire(br, PBEV_CANCEL);
	if (is_invite(br->pt->msg))
		sip_request_cancel(br->sreq);
}


/* A branch given up (timeout): 408, CANCEL if it rings, else dropped
 * (libre sends the CANCEL if a provisional ever comes) */
static void pb_give_up(struct pbranch *br)
{
	if (pb_state(br) == PB_DONE)
		return;

	if (pb_state(br) == PB_PROCEEDING)
		pb_cancel(br);
	else if (pb_state(br) == PB_CALLING)
		br->sreq = mem_deref(br->sreq);

	pb_done(br, NULL, 408, true, PBEV_GIVE_UP);
}


static void timer_c_h(void *arg)
{
	struct pbranch *br = arg;
	struct ptrans *pt = mem_ref(br->pt);

	slog(LOG_INFO, "proxy", "timer_c", &pt->msg->callid, "uri=%H "
	     "proceeding=%s", log_q, br->uri,
	     pb_state(br) == PB_PROCEEDING ? "yes" : "no");

	/* RFC 3261 §16.6 item 11: CANCEL a branch that answered, or
	 * count it as 408 */
	if (pb_state(br) == PB_PROCEEDING) {
		pb_cancel(br);
	}
	else {
		pb_give_up(br);
		pt_branch_ended(pt);
	}

	mem_deref(pt);
}


static void branch_timeout_h(void *arg)
{
	struct pbranch *br = arg;
	struct ptrans *pt = mem_ref(br->pt);

	slog(LOG_INFO, "proxy", "branch_timeout", &pt->msg->callid,
	     "uri=%H", log_q, br->uri);

	pb_give_up(br);
	pt_branch_ended(pt);

	mem_deref(pt);
}


/* A 2xx of any branch, any time: upstream at once (RFC 3261 §16.7
 * item 4 and 10), statelessly once the request is answered */
static void pt_forward_2xx(struct ptrans *pt, const struct sip_msg *msg)
{
	struct mbuf *mb;
	int err;

	err = fwd_response(&mb, msg);
	if (err)
		return;

	err = stack_req_relay_reply(pt->req, msg->scode, mb);
	mem_deref(mb);
	if (err)
		slog(LOG_WARN, "proxy", "relay_failed", &msg->callid,
		     "code=%u err=%m", msg->scode, err);

	if (!pt->answered) {
		pt->answered = true;
		pt_set_best(pt, msg, msg->scode, NULL, false);
	}
}


static void pb_resp_h(int err, const struct sip_msg *msg, void *arg)
{
	struct pbranch *br = arg;
	struct ptrans *pt = mem_ref(br->pt);
	uint16_t scode;

	if (msg && msg->scode < 200) {
		struct mbuf *mb;

		if (pb_state(br) == PB_DONE)
			goto out;

		pb_fire(br, PBEV_PROVISIONAL);
		if (tmr_isrunning(&br->tmr_c))
			tmr_start(&br->tmr_c, pt->px->cfg.timer_c, timer_c_h,
				  br);

		/* every provisional but 100 goes upstream at once */
		if (msg->scode > 100 && !stack_req_answered(pt->req) &&
		    !fwd_response(&mb, msg)) {
			(void)stack_req_relay_reply(pt->req, msg->scode, mb);
			mem_deref(mb);
		}
		goto out;
	}

	/* libre let go of the request (br->sreq is NULL now) */
	if (msg && msg->scode < 300) {
		pt_forward_2xx(pt, msg);
		if (pb_state(br) != PB_DONE)
			pb_done(br, msg, msg->scode, false, PBEV_FINAL);
		if (pt->running)
			pt_complete(pt);
		else
			pt_branch_ended(pt);
		goto out;
	}

	if (pb_state(br) == PB_DONE) {
		/* the final of a branch we gave up on */
		pt_branch_ended(pt);
		goto out;
	}

	if (msg) {
		scode = msg->scode;
	}
	else {
		scode = err == ETIMEDOUT ? 408 : 503;
		slog(LOG_INFO, "proxy", "branch_failed", &pt->msg->callid,
		     "uri=%H err=%m code=%u", log_q, br->uri, err, scode);
	}

	pb_done(br, msg, scode, msg == NULL, PBEV_FINAL);

	if (scode >= 600 && pt->running) {
		pt_complete(pt);    /* cancels the others */
		goto out;
	}

	pt_branch_ended(pt);

 out:
	mem_deref(pt);
}


/* libre knows the transport and our address now: Record-Route */
static int pb_send_h(enum sip_transp tp, const struct sa *src,
		     const struct sa *dst, struct mbuf *mb, void *arg)
{
	struct pbranch *br = arg;
	struct ptrans *pt = br->pt;
	const struct sip_msg *msg = pt->msg;
	int rr = pt->o.record_route;
	(void)dst;

	if (rr < 0)
		rr = pt->px->cfg.record_route;

	if (!rr || pl_isset(&msg->to.tag) ||
	    (pl_strcmp(&msg->met, "INVITE") &&
	     pl_strcmp(&msg->met, "SUBSCRIBE") &&
	     pl_strcmp(&msg->met, "REFER")))
		return 0;

	return fwd_record_route(mb, msg, tp, src);
}


static int pb_start(struct pbranch *br)
{
	struct ptrans *pt = br->pt;
	const struct sip_msg *msg = pt->msg;
	struct sip *sip = stack_sip(stack_req_stack(pt->req));
	char *ruri = NULL, *hop = NULL;
	struct mbuf *mb = NULL;
	struct uri route;
	struct pl pl;
	int err;

	br->started = true;

	err = fwd_request(&mb, &ruri, &hop, msg, br->uri, br->path,
			  br->received, &pt->rt, pt->hdrs, 0);
	if (err)
		goto out;

	pl_set_str(&pl, hop);
	err = uri_decode(&route, &pl);
	if (err)
		goto out;

	err = sip_request(&br->sreq, sip, true, msg->met.p, (int)msg->met.l,
			  ruri, (int)strlen(ruri), &route, mb,
			  (size_t)hash_joaat_pl(&msg->callid), pb_send_h,
			  pb_resp_h, br);
	if (err)
		goto out;

	slog(LOG_DEBUG, "proxy", "branch", &msg->callid,
	     "uri=%H next_hop=%H attempt=%u", log_q, ruri, log_q, hop,
	     br->attempt);

	if (is_invite(msg))
		tmr_start(&br->tmr_c, pt->px->cfg.timer_c, timer_c_h, br);
	if (pt->o.branch_timeout)
		tmr_start(&br->tmr_b, pt->o.branch_timeout, branch_timeout_h,
			  br);

 out:
	if (err) {
		slog(LOG_INFO, "proxy", "branch_failed", &msg->callid,
		     "uri=%H err=%m code=503", log_q, br->uri, err);
		pb_done(br, NULL, 503, true, PBEV_FINAL);
	}
	mem_deref(mb);
	mem_deref(ruri);
	mem_deref(hop);

	return err;
}


/* ------------------------------------------------------------------ *
 * The transaction
 * ------------------------------------------------------------------ */

static bool pending(const struct ptrans *pt)
{
	struct le *le;

	LIST_FOREACH(&pt->branches, le) {
		const struct pbranch *br = le->data;

		if (br->sreq)
			return true;
	}

	return false;
}


/* a branch of the running attempt still waits for its final */
static bool attempt_pending(const struct ptrans *pt)
{
	struct le *le;

	LIST_FOREACH(&pt->branches, le) {
		const struct pbranch *br = le->data;

		if (br->attempt == pt->attempts && br->started &&
		    pb_state(br) != PB_DONE)
			return true;
	}

	return false;
}


/* Done with it: nothing pending, and the request answered (or nobody
 * left to answer it) */
static void pt_check_end(struct ptrans *pt)
{
	if (!pt->live || pt->running || pending(pt))
		return;

	if (!pt->answered && !stack_req_answered(pt->req) && !pt->detached)
		return;

	pt->live = false;
	list_unlink(&pt->le);
	mem_deref(pt);            /* the service's reference */
}


static bool challenge_print(const struct sip_hdr *hdr,
			    const struct sip_msg *msg, void *arg)
{
	struct mbuf *mb = arg;
	(void)msg;

	return 0 != mbuf_printf(mb, "%r: %r\r\n", &hdr->name, &hdr->val);
}


/* RFC 3261 §16.7 item 7: a 401 or 407 going upstream carries the
 * challenges of every branch of the attempt that answered 401 or 407
 * (each realm may be another downstream element's). *extrap: a mem
 * string of the other branches' WWW-/Proxy-Authenticate lines, or
 * NULL. */
static int challenges_collect(char **extrap, const struct ptrans *pt)
{
	struct mbuf *mb;
	struct le *le;
	int err = 0;

	*extrap = NULL;
	mb = mbuf_alloc(256);
	if (!mb)
		return ENOMEM;

	LIST_FOREACH(&pt->branches, le) {
		const struct pbranch *br = le->data;

		if (br->attempt != pt->attempts || !br->resp ||
		    br->resp == pt->best ||
		    (br->scode != 401 && br->scode != 407))
			continue;

		(void)sip_msg_hdr_apply(br->resp, true,
					SIP_HDR_WWW_AUTHENTICATE,
					challenge_print, mb);
		(void)sip_msg_hdr_apply(br->resp, true,
					SIP_HDR_PROXY_AUTHENTICATE,
					challenge_print, mb);
	}

	if (mb->end) {
		mb->pos = 0;
		err = mbuf_strdup(mb, extrap, mb->end);
	}
	mem_deref(mb);

	return err;
}


/* Upstream: the best response of the last attempt (RFC 3261 §16.7
 * item 6: a 503 as 500), or 500 when there was none */
static void pt_send_best(struct ptrans *pt)
{
	struct mbuf *mb;
	char *extra = NULL;
	uint16_t scode = pt->scode;

	if (pt->answered || stack_req_answered(pt->req)) {
		pt->answered = true;
		return;
	}

	pt->answered = true;
	stack_req_set_default(pt->req, NULL, NULL);

	if (pt->best && (scode == 401 || scode == 407))
		(void)challenges_collect(&extra, pt);

	if (pt->best && scode != 503 &&
	    !fwd_response_extra(&mb, pt->best, extra)) {
		mem_deref(extra);
		(void)stack_req_relay_reply(pt->req, scode, mb);
		mem_deref(mb);
		return;
	}
	mem_deref(extra);

	/* a 503's own reason phrase does not go with the 500 */
	if (!scode || scode == 503)
		scode = 500;

	(void)stack_req_reply(pt->req, scode,
			      pt->best || !pt->reason || scode != pt->scode ?
			      stack_reason_phrase(scode) : pt->reason, NULL,
			      NULL, NULL, 0);
}


/* stack_req_default's stand-in: the script returned without an answer */
static int pt_default_h(struct stack_req *req, void *arg)
{
	struct ptrans *pt = mem_ref(arg);
	(void)req;

	pt_send_best(pt);
	pt_check_end(pt);
	mem_deref(pt);

	return 0;
}


static void cancel_pending(struct ptrans *pt)
{
	struct le *le;

	LIST_FOREACH(&pt->branches, le) {
		struct pbranch *br = le->data;

		if (br->started && pb_state(br) != PB_DONE)
			pb_cancel(br);
		tmr_cancel(&br->tmr_b);
	}
}


static void pt_complete(struct ptrans *pt)
{
	proxy_done_h *h;

	if (!pt->running)
		return;

	tmr_cancel(&pt->tmr);
	cancel_pending(pt);      /* their Cancel still told, then no more */
	pt->running = false;
	pt->o.branchh = NULL;

	if (stack_req_answered(pt->req))
		pt->answered = true;

	if (!pt->scode) {
		/* nothing came and nothing was made up (cannot happen
		 * with a target): an internal failure */
		pt->scode = 500;
		pt->reason = stack_reason_phrase(500);
		pt->made_up = true;
	}

	slog(LOG_INFO, "proxy", "attempt_done", &pt->msg->callid,
	     "attempt=%u code=%u made_up=%s answered=%s", pt->attempts,
	     pt->scode, pt->made_up ? "yes" : "no",
	     pt->answered ? "yes" : "no");

	if (!pt->answered) {
		if (pt->detached || !pt->doneh)
			pt_send_best(pt);
		else
			stack_req_set_default(pt->req, pt_default_h, pt);
	}

	if (pt->starting) {
		pt->sync_done = true;
		pt->doneh = NULL;
		return;
	}

	h = pt->doneh;
	pt->doneh = NULL;

	mem_ref(pt);
	if (h && !pt->detached)
		h(pt, pt->arg);
	pt_check_end(pt);
	mem_deref(pt);
}


static void pt_start_groups(struct ptrans *pt)
{
	while (pt->running && pt->group_next < pt->groups &&
	       !pt->cancelled) {
		const uint32_t g = pt->group_next++;
		bool started = false;
		struct le *le;

		LIST_FOREACH(&pt->branches, le) {
			struct pbranch *br = le->data;

			if (br->attempt != pt->attempts || br->group != g)
				continue;
			if (!pb_start(br))
				started = true;
		}

		if (started)
			return;
	}

	pt_complete(pt);
}


static void pt_branch_ended(struct ptrans *pt)
{
	if (!pt->running) {
		pt_check_end(pt);
		return;
	}

	if (attempt_pending(pt))
		return;

	pt_start_groups(pt);
}


static void pt_timeout_h(void *arg)
{
	struct ptrans *pt = mem_ref(arg);
	struct le *le;

	slog(LOG_INFO, "proxy", "timeout", &pt->msg->callid, "attempt=%u",
	     pt->attempts);

	LIST_FOREACH(&pt->branches, le) {
		struct pbranch *br = le->data;

		if (br->attempt == pt->attempts && br->started)
			pb_give_up(br);
	}

	if (!pt->scode)
		pt_set_best(pt, NULL, 408, stack_reason_phrase(408), true);

	pt_complete(pt);
	mem_deref(pt);
}


/* The caller's CANCEL (libre answered it 200): 487 upstream, CANCEL
 * to every branch that has not answered finally (RFC 3261 §16.10) */
static void pt_cancel_h(void *arg)
{
	struct ptrans *pt = mem_ref(arg);

	slog(LOG_INFO, "proxy", "cancelled", &pt->msg->callid,
	     "attempt=%u", pt->attempts);

	pt->cancelled = true;
	if (!pt->answered && !stack_req_answered(pt->req)) {
		(void)stack_req_reply(pt->req, 487, "Request Terminated",
				      NULL, NULL, NULL, 0);
		stack_req_set_default(pt->req, NULL, NULL);
	}
	pt->answered = true;
	pt_set_best(pt, NULL, 487, "Request Terminated", true);

	cancel_pending(pt);
	if (pt->running)
		pt_complete(pt);
	else
		pt_check_end(pt);

	mem_deref(pt);
}


static void ptrans_destructor(void *arg)
{
	struct ptrans *pt = arg;

	tmr_cancel(&pt->tmr);
	list_flush(&pt->branches);
	stack_req_set_cancel(pt->req, NULL, NULL);
	stack_req_set_default(pt->req, NULL, NULL);
	mem_deref(pt->req);
	mem_deref((void *)pt->best);
	mem_deref(pt->hdrs);
	fwd_route_reset(&pt->rt);
}


int ptrans_alloc(struct ptrans **ptp, struct proxy *px,
		 struct stack_req *req)
{
	struct ptrans *pt;
	int err;

	if (!ptp || !px || !req)
		return EINVAL;

	pt = mem_zalloc(sizeof(*pt), ptrans_destructor);
	if (!pt)
		return ENOMEM;

	tmr_init(&pt->tmr);
	pt->px = px;
	pt->req = stack_req_ref(req);
	pt->msg = stack_req_msg(req);

	err = fwd_route_prepare(&pt->rt, stack_sip(px->st), pt->msg);
	if (err) {
		mem_deref(pt);
		return err;
	}

	list_append(&px->ptl, &pt->le, mem_ref(pt));
	pt->live = true;

	*ptp = pt;

	return 0;
}


static bool unsup_print(const struct sip_hdr *hdr, const struct sip_msg *msg,
			void *arg)
{
	struct mbuf *mb = arg;
	(void)msg;

	return 0 != mbuf_printf(mb, "%s%r", mb->end > 13 ? ", " : "",
				&hdr->val);
}


/* "Unsupported: <every Proxy-Require tag>\r\n" (a mem string) */
static int proxy_require_unsupported(char **hdrp, const struct sip_msg *msg)
{
	struct mbuf *mb = mbuf_alloc(128);
	int err;

	if (!mb)
		return ENOMEM;

	err = mbuf_write_str(mb, "Unsupported: ");
	(void)sip_msg_hdr_apply(msg, true, SIP_HDR_PROXY_REQUIRE,
				unsup_print, mb);
	err |= mbuf_write_str(mb, "\r\n");
	if (!err) {
		mb->pos = 0;
		err = mbuf_strdup(mb, hdrp, mb->end);
	}
	mem_deref(mb);

	return err;
}


static int target_check(const struct proxy_target *t)
{
	struct uri u;
	struct pl pl;

	if (!t->uri)
		return EINVAL;

	pl_set_str(&pl, t->uri);
	if (uri_decode(&u, &pl) || (pl_strcasecmp(&u.scheme, "sip") &&
				    pl_strcasecmp(&u.scheme, "sips")))
		return EINVAL;

	if (t->received && *t->received) {
		pl_set_str(&pl, t->received);
		if (uri_decode(&u, &pl))
			return EINVAL;
	}

	return 0;
}


static int q_desc(const void *a, const void *b)
{
	const struct proxy_target *x = *(const struct proxy_target * const *)a;
	const struct proxy_target *y = *(const struct proxy_target * const *)b;

	return x->q < y->q ? 1 : x->q > y->q ? -1 : 0;
}


static int branch_add(struct ptrans *pt, const struct proxy_target *t,
		      const char *uri, uint32_t group)
{
	struct pbranch *br;
	int err;

	br = mem_zalloc(sizeof(*br), pbranch_destructor);
	if (!br)
		return ENOMEM;

	tmr_init(&br->tmr_c);
	tmr_init(&br->tmr_b);
	br->pt = pt;
	br->attempt = pt->attempts;
	br->group = group;
	err = fsm_alloc(&br->fsm, pt->px->pbdef, br);
	if (!err)
		err = str_dup(&br->uri, uri);
	if (!err && t && t->path && *t->path)
		err = str_dup(&br->path, t->path);
	if (!err && t && t->received && *t->received)
		err = str_dup(&br->received, t->received);
	if (err) {
		mem_deref(br);
		return err;
	}

	list_append(&pt->branches, &br->le, br);

	return 0;
}


int ptrans_forward(struct ptrans *pt, const struct proxy_target *targets,
		   size_t n, const struct proxy_opts *opts,
		   proxy_done_h *doneh, void *arg, bool *donep)
{
	const struct proxy_target *sorted[PROXY_MAX_TARGETS];
	struct stack_req *req;
	bool first;
	size_t i;
	int err;

	if (!pt || !donep || (n && !targets))
		return EINVAL;

	*donep = false;
	req = pt->req;

	if (pt->running)
		return EBUSY;
	if (pt->answered || stack_req_answered(req))
		return EALREADY;
	if (pt->attempts >= pt->px->cfg.max_attempts)
		return ELOOP;
	if (n > PROXY_MAX_TARGETS)
		return E2BIG;
	for (i = 0; i < n; i++) {
		if (target_check(&targets[i]))
			return EINVAL;
	}

	first = pt->attempts == 0;

	/* RFC 3261 §16.3 item 3 */
	if (!fwd_max_forwards(pt->msg)) {
		slog(LOG_INFO, "proxy", "too_many_hops", &pt->msg->callid,
		     "src=%J", &pt->msg->src);
		(void)stack_req_reply(req, 483, "Too Many Hops", NULL, NULL,
				      NULL, 0);
		pt->answered = true;
		pt_set_best(pt, NULL, 483, "Too Many Hops", true);
		*donep = true;
		pt_check_end(pt);
		return 0;
	}

	/* RFC 3261 §16.3 item 5: we implement no proxy extension, so
	 * every Proxy-Require tag is one we do not support */
	if (sip_msg_hdr(pt->msg, SIP_HDR_PROXY_REQUIRE)) {
		char *unsup = NULL;

		(void)proxy_require_unsupported(&unsup, pt->msg);
		slog(LOG_INFO, "proxy", "bad_extension", &pt->msg->callid,
		     "src=%J unsupported=%H", &pt->msg->src, log_q,
		     unsup ? unsup : "");
		(void)stack_req_reply(req, 420, "Bad Extension", unsup, NULL,
				      NULL, 0);
		mem_deref(unsup);
		pt->answered = true;
		pt_set_best(pt, NULL, 420, "Bad Extension", true);
		*donep = true;
		pt_check_end(pt);
		return 0;
	}

	if (first) {
		stack_req_set_cancel(req, pt_cancel_h, pt);
		err = stack_req_keep(req);
		if (err)
			return err;
		/* RFC 3261 §16.2: 100 at once, the branches may take long */
		if (is_invite(pt->msg))
			(void)stack_req_reply(req, 100, "Trying", NULL, NULL,
					      NULL, 0);
	}

	stack_req_set_default(req, NULL, NULL);

	if (opts) {
		pt->o = *opts;
	}
	else {
		memset(&pt->o, 0, sizeof(pt->o));
		pt->o.record_route = -1;
	}
	pt->hdrs = mem_deref(pt->hdrs);
	if (pt->o.headers) {
		err = str_dup(&pt->hdrs, pt->o.headers);
		if (err)
			return err;
	}
	pt->o.headers = NULL;

	++pt->attempts;
	++pt->px->stats.forwarded;
	pt_set_best(pt, NULL, 0, NULL, false);
	pt->doneh = doneh;
	pt->arg = arg;
	pt->group_next = 0;

	/* the branches, by group */
	if (!n) {
		pt->groups = 1;
		err = branch_add(pt, NULL, pt->rt.ruri, 0);
	}
	else {
		uint32_t g = 0;

		for (i = 0; i < n; i++)
			sorted[i] = &targets[i];
		if (pt->o.mode == PROXY_Q)
			qsort(sorted, n, sizeof(sorted[0]), q_desc);

		err = 0;
		for (i = 0; i < n && !err; i++) {
			if (i && (pt->o.mode == PROXY_SERIAL ||
				  (pt->o.mode == PROXY_Q &&
				   sorted[i]->q != sorted[i - 1]->q)))
				++g;
			err = branch_add(pt, sorted[i], sorted[i]->uri, g);
		}
		pt->groups = g + 1;
	}
	if (err)
		return err;

	pt->running = true;
	if (pt->o.timeout)
		tmr_start(&pt->tmr, pt->o.timeout, pt_timeout_h, pt);

	mem_ref(pt);
	pt->starting = true;
	pt->sync_done = false;
	pt_start_groups(pt);
	pt->starting = false;
	if (pt->sync_done) {
		*donep = true;
		pt_check_end(pt);
	}
	mem_deref(pt);

	return 0;
}


void ptrans_detach(struct ptrans *pt)
{
	if (!pt || pt->detached)
		return;

	pt->detached = true;
	pt->doneh = NULL;
	pt->o.branchh = NULL;

	mem_ref(pt);
	if (!pt->running)
		pt_send_best(pt);
	pt_check_end(pt);
	mem_deref(pt);
}


/* The stack stops: every branch dropped, the caller answered 503 */
void ptrans_abandon(struct ptrans *pt)
{
	mem_ref(pt);

	pt->running = false;
	pt->doneh = NULL;
	pt->o.branchh = NULL;
	tmr_cancel(&pt->tmr);
	list_flush(&pt->branches);
	if (!pt->answered && !stack_req_answered(pt->req))
		(void)stack_req_reply(pt->req, 503, "Service Unavailable",
				      NULL, NULL, NULL, 0);
	pt->answered = true;
	pt->detached = true;
	pt_check_end(pt);

	mem_deref(pt);
}


uint16_t ptrans_scode(const struct ptrans *pt)
{
	return pt ? pt->scode : 0;
}


const char *ptrans_reason(const struct ptrans *pt)
{
	if (!pt)
		return "";
	if (pt->reason)
		return pt->reason;

	return pt->scode ? stack_reason_phrase(pt->scode) : "";
}


bool ptrans_made_up(const struct ptrans *pt)
{
	return pt ? pt->made_up : false;
}


bool ptrans_answered(const struct ptrans *pt)
{
	return pt ? pt->answered || stack_req_answered(pt->req) : true;
}


bool ptrans_cancelled(const struct ptrans *pt)
{
	return pt ? pt->cancelled : false;
}


uint32_t ptrans_attempts(const struct ptrans *pt)
{
	return pt ? pt->attempts : 0;
}


const struct sip_msg *ptrans_response(const struct ptrans *pt)
{
	return pt ? pt->best : NULL;
}


size_t ptrans_branch_count(const struct ptrans *pt)
{
	return pt ? list_count(&pt->branches) : 0;
}


int ptrans_branch(const struct ptrans *pt, size_t i,
		  struct proxy_branch_info *bi)
{
	struct le *le;

	if (!pt || !bi)
		return EINVAL;

	for (le = pt->branches.head; le && i; le = le->next)
		--i;
	if (!le)
		return ENOENT;

	branch_info(le->data, bi);

	return 0;
}


static void branch_info(const struct pbranch *br,
			struct proxy_branch_info *bi)
{
	bi->uri = br->uri;
	bi->attempt = br->attempt;
	bi->scode = pb_state(br) == PB_DONE ? br->scode : 0;
	bi->reason = "";
	if (br->resp)
		bi->reason = NULL;
	else if (bi->scode)
		bi->reason = stack_reason_phrase(bi->scode);
	bi->made_up = br->made_up;
	bi->cancelled = br->cancelled;
	bi->resp = br->resp;
}


int ptrans_debug(struct re_printf *pf, const struct ptrans *pt)
{
	struct le *le;
	int err;

	if (!pt)
		return 0;

	err = re_hprintf(pf, "ptrans %r %r attempts=%u running=%d "
			 "answered=%d code=%u\n", &pt->msg->met,
			 &pt->msg->callid, pt->attempts, pt->running,
			 pt->answered, pt->scode);
	LIST_FOREACH(&pt->branches, le) {
		const struct pbranch *br = le->data;

		err |= re_hprintf(pf, "  branch %s attempt=%u state=%s "
				  "code=%u%s\n", br->uri, br->attempt,
				  pbfsm_state_name(pb_state(br)), br->scode,
				  br->sreq ? " pending" : "");
	}

	return err;
}
