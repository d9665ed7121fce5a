/**
 * server/core/stack.c  The stack object: transport, life cycle, services
 *
 * Owns struct stack (libre's struct sip, the listeners, the DNS client,
 * the cross-thread queue, the dialog table, the metrics registry, the
 * services attached to it and the handlers registered with it; the
 * struct is shared with the other files of the core through core.h).
 * Exposes stack_*() in sipcore.h. Uses libre for transport and
 * transactions; never calls into Lua or into a session type: the parts
 * above the core register handlers (dispatch.c) and attach services
 * (the call manager).
 *
 * The rest of the stack: request.c (a received request and its
 * answers), dispatch.c (the receive path: who gets a request),
 * outreq.c (outgoing requests).
 */
#include <string.h>
#include <stdlib.h>
#include <pthread.h>
#include <sys/socket.h>
#include <openssl/ssl.h>
#include <re.h>
#include "sipcore.h"
#include "core.h"
#include "udpbatch.h"
#include "wsflow.h"


struct xcall {
	stack_call_h *h;
	void *arg;
};

/* A part of the program living as long as the stack (the calls) */
struct service {
	struct le le;
	const void *key;
	void *obj;                 /* a reference                      */
	stack_stop_h *stoph;
};


/* ------------------------------------------------------------------ *
 * Config
 * ------------------------------------------------------------------ */

void stack_config_default(struct stack_config *cfg)
{
	if (!cfg)
		return;

	memset(cfg, 0, sizeof(*cfg));
	str_ncpy(cfg->user_agent, "sipstack/" SIPSTACK_VERSION,
		 sizeof(cfg->user_agent));
	cfg->max_forwards = 70;
	cfg->t1 = SIP_T1;
	cfg->t2 = SIP_T2;
	cfg->t4 = SIP_T4;
	ratelimit_config_default(&cfg->rate_limit);
}


int stack_config_debug(struct re_printf *pf, const struct stack_config *cfg)
{
	if (!cfg)
		return 0;

	return re_hprintf(pf, "user_agent=%H local_ip=%H udp_port=%u "
			  "tcp_port=%u tls_port=%u max_forwards=%u t1=%u "
			  "t2=%u t4=%u dns_servers=%H rate_limit=%s",
			  log_q, cfg->user_agent, log_q, cfg->local_ip,
			  cfg->udp_port, cfg->tcp_port, cfg->tls_port,
			  cfg->max_forwards, cfg->t1, cfg->t2, cfg->t4,
			  log_q, cfg->dns_servers,
			  cfg->rate_limit.on ? "on" : "off");
}


/* ------------------------------------------------------------------ *
 * Cross-thread calls
 * ------------------------------------------------------------------ */

static void mqueue_handler(int id, void *data, void *arg)
{
	struct xcall *xc = data;
	(void)id;
	(void)arg;

	xc->h(xc->arg);
	free(xc);
}


int stack_call(struct stack *st, stack_call_h *h, void *arg)
{
	struct xcall *xc;
	int err;

	if (!st || !h || !st->mq)
		return EINVAL;

	/* plain malloc: libre's refcounts are not atomic */
	xc = malloc(sizeof(*xc));
	if (!xc)
		return ENOMEM;

	xc->h = h;
	xc->arg = arg;

	err = mqueue_push(st->mq, 0, xc);
	if (err)
		free(xc);

	return err;
}


/* ------------------------------------------------------------------ *
 * Lifecycle
 * ------------------------------------------------------------------ */

static void listener_reset(struct listener *l)
{
	l->cert = mem_deref(l->cert);
	l->key  = mem_deref(l->key);
	l->ca   = mem_deref(l->ca);
}


static void stack_destructor(void *arg)
{
	struct stack *st = arg;
	size_t i;

	stack_stop(st);
	for (i = 0; i < st->lsnrc; i++)
		listener_reset(&st->lsnrv[i]);
	mem_deref(st->mq);
	while (st->services.tail)            /* the last attached first */
		mem_deref(st->services.tail->data);
	stack_handlers_detach(st);
	mem_deref(st->dialogs);
	mem_deref(st->mc_stack);
	mem_deref(st->mc_process);
	mem_deref(st->metrics);
	mem_deref(st->rl);
}


int stack_alloc(struct stack **stp, const struct stack_config *cfg)
{
	struct stack *st;
	int err;

	if (!stp)
		return EINVAL;

	st = mem_zalloc(sizeof(*st), stack_destructor);
	if (!st)
		return ENOMEM;

	if (cfg)
		st->cfg = *cfg;
	else
		stack_config_default(&st->cfg);

	stack_allow_update(st);

	err = dialog_table_alloc(&st->dialogs, 1u << 16);
	if (err)
		goto out;

	err = ratelimit_alloc(&st->rl, &st->cfg.rate_limit);
	if (err)
		goto out;

	err = mqueue_alloc(&st->mq, mqueue_handler, st);
	if (err)
		goto out;

	/* the registry: the process's figures, then the stack's */
	err = metrics_alloc(&st->metrics);
	if (!err)
		err = metrics_collector_add(&st->mc_process, st->metrics,
					    metrics_process_collect, NULL);
	if (!err)
		err = metrics_collector_add(&st->mc_stack, st->metrics,
					    stack_metrics_collect, st);

 out:
	if (err)
		mem_deref(st);
	else
		*stp = st;

	return err;
}


int stack_listen(struct stack *st, enum sip_transp tp,
		 const struct sa *laddr, const struct stack_tls_files *tls)
{
	struct listener *l;
	int err = 0;

	if (!st || !laddr)
		return EINVAL;

	if ((unsigned)tp >= SIP_TRANSPC)
		return EPROTONOSUPPORT;

	if ((tp == SIP_TRANSP_TLS || tp == SIP_TRANSP_WSS) &&
	    (!tls || !tls->cert))
		return EINVAL;

	/* libre's HTTPS server reads the chain and the key from one file */
	if (tp == SIP_TRANSP_WSS && tls->key && strcmp(tls->key, tls->cert))
		return EINVAL;

	if (st->lsnrc >= MAX_LISTENERS)
		return EOVERFLOW;

	if (st->running)
		return EBUSY;

	l = &st->lsnrv[st->lsnrc];
	memset(l, 0, sizeof(*l));
	l->tp = tp;
	l->laddr = *laddr;

	if (tls) {
		err |= str_dup(&l->cert, tls->cert);
		if (tls->key)
			err |= str_dup(&l->key, tls->key);
		if (tls->ca)
			err |= str_dup(&l->ca, tls->ca);
	}

	if (err) {
		listener_reset(l);
		return err;
	}

	++st->lsnrc;

	return 0;
}


static int tls_setup(struct stack *st, const struct listener *l)
{
	SSL_CTX *ctx;
	int err;

	if (st->tls)
		return 0;

	if (!l->key || !strcmp(l->key, l->cert))
		return tls_alloc(&st->tls, TLS_METHOD_SSLV23, l->cert, NULL);

	/* Separate key file: libre's tls_alloc wants both in one file */
	err = tls_alloc(&st->tls, TLS_METHOD_SSLV23, NULL, NULL);
	if (err)
		return err;

	ctx = tls_openssl_context(st->tls);
	if (1 != SSL_CTX_use_certificate_chain_file(ctx, l->cert) ||
	    1 != SSL_CTX_use_PrivateKey_file(ctx, l->key, SSL_FILETYPE_PEM) ||
	    1 != SSL_CTX_check_private_key(ctx)) {
		st->tls = mem_deref(st->tls);
		return EINVAL;
	}

	return 0;
}


/* Parse cfg->dns_servers ("ip[:port] ..."); *nsn = 0 when empty */
int stack_dns_servers(const struct stack_config *cfg, struct sa *ns,
		      uint32_t *nsn)
{
	struct pl v, tok;
	uint32_t n = 0;

	pl_set_str(&v, cfg->dns_servers);
	while (!re_regex(v.p, v.l, "[^ ,]+", &tok)) {
		if (n >= *nsn)
			return EOVERFLOW;
		if (sa_decode(&ns[n], tok.p, tok.l)) {
			if (sa_set(&ns[n], &tok, 53))
				return EINVAL;
		}
		++n;
		v.l -= (tok.p + tok.l) - v.p;
		v.p = tok.p + tok.l;
	}

	*nsn = n;

	return 0;
}


int stack_start(struct stack *st)
{
	struct sa ns[4];
	uint32_t nsn = ARRAY_SIZE(ns);
	size_t i;
	int err;

	if (!st)
		return EINVAL;

	if (st->running)
		return EALREADY;

	if (!st->lsnrc)
		return EDESTADDRREQ;

	/* RFC 3263 needs a resolver; without nameservers we still run,
	 * and only requests to hostnames fail. */
	err = stack_dns_servers(&st->cfg, ns, &nsn);
	if (err) {
		slog(LOG_ERROR, "stack", "bad_dns_servers", NULL,
		     "dns_servers=%H", log_q, st->cfg.dns_servers);
		goto out;
	}
	if (nsn)
		err = dnsc_alloc(&st->dnsc, NULL, ns, nsn);
	else if ((nsn = ARRAY_SIZE(ns)) &&
		 !dns_srv_get(NULL, 0, ns, &nsn) && nsn)
		err = dnsc_alloc(&st->dnsc, NULL, ns, nsn);
	else
		err = dnsc_alloc(&st->dnsc, NULL, NULL, 0);
	if (err)
		goto out;

	err = sip_alloc(&st->sip, st->dnsc, HASH_CTRANS, HASH_STRANS,
			HASH_TCPCONN, st->cfg.user_agent, NULL, NULL);
	if (err)
		goto out;

	/* Timer J = 64*T1 (RFC 3261 §17.2.2) */
	err = donetab_alloc(&st->done, 64 * st->cfg.t1);
	if (err)
		goto out;

	for (i = 0; i < st->lsnrc; i++) {
		struct listener *l = &st->lsnrv[i];

		if (l->tp == SIP_TRANSP_TLS) {
			err = tls_setup(st, l);
			if (err) {
				slog(LOG_ERROR, "stack", "tls_failed", NULL,
				     "cert=%H key=%H err=%m", log_q, l->cert,
				     log_q, l->key, err);
				goto out;
			}
			if (l->ca)
				err = tls_add_ca(st->tls, l->ca);
			if (!err)
				err = sip_transp_add(st->sip, l->tp,
						     &l->laddr, st->tls);
		}
		else if (l->tp == SIP_TRANSP_WS || l->tp == SIP_TRANSP_WSS) {
			/* libre's HTTP(S) listener; wsflow.c fixes what
			 * libre 1.1.0 gets wrong in it */
			wsflow_arm(true);
			err = sip_transp_add_websock(st->sip, l->tp,
						     &l->laddr, true,
						     l->cert);
			wsflow_arm(false);
		}
		else {
			/* the limiter sees each datagram before libre */
			udpbatch_set_filter(stack_rl_datagram, st);
			udpbatch_arm(l->tp == SIP_TRANSP_UDP);
			err = sip_transp_add(st->sip, l->tp, &l->laddr);
			udpbatch_arm(false);
			udpbatch_set_filter(NULL, NULL);
		}

		if (err) {
			slog(LOG_ERROR, "stack", "listen_failed", NULL,
			     "transport=%s addr=%J err=%m",
			     sip_transp_name(l->tp), &l->laddr, err);
			goto out;
		}

		/* learn the port picked for port 0 */
		if (!sa_port(&l->laddr))
			(void)sip_transp_laddr(st->sip, &l->laddr, l->tp,
					       &l->laddr);

		slog(LOG_INFO, "stack", "listen", NULL, "transport=%s addr=%J",
		     sip_transp_name(l->tp), &l->laddr);
	}

	err  = sip_listen(&st->lsnr_req, st->sip, true,
			  stack_request_handler, st);
	err |= sip_listen(&st->lsnr_resp, st->sip, false,
			  stack_response_handler, st);
	if (err)
		goto out;

	loglimit_attach();         /* flood control runs on this thread */
	st->running = true;

 out:
	if (err)
		stack_stop(st);

	return err;
}


void stack_stop(struct stack *st)
{
	if (!st)
		return;

	/* services first (the calls: their BYE/CANCEL need the transport),
	 * the last attached first */
	{
		struct le *le;

		for (le = st->services.tail; le; le = le->prev) {
			struct service *svc = le->data;

			if (svc->stoph)
				svc->stoph(svc->obj);
		}
	}
	list_flush(&st->outl);
	wsflow_flush();            /* close frames while libre's is up */
	st->lsnr_req  = mem_deref(st->lsnr_req);
	st->lsnr_resp = mem_deref(st->lsnr_resp);
	st->done = mem_deref(st->done);

	/* the struct sip frees the transactions of requests still held
	 * (a script sleeping in a hook): theirs no more (see the rule at
	 * req_track); unanswered, as before */
	while (st->strl.head) {
		struct stack_req *req = st->strl.head->data;

		req->strans = NULL;
		list_unlink(&req->le);
	}

	if (st->sip) {
		sip_close(st->sip, true);
		st->sip = mem_deref(st->sip);
	}

	st->dnsc = mem_deref(st->dnsc);
	st->tls  = mem_deref(st->tls);
	memset(st->udp_socks, 0, sizeof(st->udp_socks));

	st->rlpre.set = false;

	if (st->running) {
		ratelimit_flush(st->rl);
		loglimit_flush();
		slog(LOG_INFO, "stack", "stopped", NULL, NULL);
	}

	st->running = false;
}


bool stack_is_running(const struct stack *st)
{
	return st ? st->running : false;
}


struct sip *stack_sip(const struct stack *st)
{
	return st ? st->sip : NULL;
}


const struct stack_config *stack_config(const struct stack *st)
{
	return st ? &st->cfg : NULL;
}


int stack_set_config(struct stack *st, const struct stack_config *cfg)
{
	int err;

	if (!st || !cfg)
		return EINVAL;

	if (!cfg->t1 || cfg->t2 < cfg->t1 || !cfg->t4 ||
	    !cfg->max_forwards || cfg->max_forwards > 255 ||
	    cfg->ua_dropn > STACK_UA_DROP_MAX)
		return EINVAL;

	/* the limiter first: its settings are checked there */
	err = ratelimit_set(st->rl, &cfg->rate_limit);
	if (err)
		return err;

	st->cfg = *cfg;

	return 0;
}


void stack_stats(const struct stack *st, struct stack_stats *stats)
{
	struct ratelimit_stats rs;

	if (!st || !stats)
		return;

	*stats = st->stats;
	ratelimit_stats(st->rl, &rs);
	stats->limited_sources = rs.episodes;
}


void stack_note_hook_error(struct stack *st)
{
	if (st)
		++st->stats.hook_errors;
}


static void service_destructor(void *arg)
{
	struct service *svc = arg;

	list_unlink(&svc->le);
	mem_deref(svc->obj);
}


int stack_service_add(struct stack *st, const void *key, void *obj,
		      stack_stop_h *stoph)
{
	struct service *svc;

	if (!st || !key || !obj)
		return EINVAL;

	if (stack_service(st, key))
		return EALREADY;

	svc = mem_zalloc(sizeof(*svc), service_destructor);
	if (!svc)
		return ENOMEM;

	svc->key = key;
	svc->obj = mem_ref(obj);
	svc->stoph = stoph;
	list_append(&st->services, &svc->le, svc);

	return 0;
}


void *stack_service(const struct stack *st, const void *key)
{
	struct le *le;

	if (!st)
		return NULL;

	LIST_FOREACH(&st->services, le) {
		const struct service *svc = le->data;

		if (svc->key == key)
			return svc->obj;
	}

	return NULL;
}


struct metrics *stack_metrics(const struct stack *st)
{
	return st ? st->metrics : NULL;
}


struct dialog_table *stack_dialogs(const struct stack *st)
{
	return st ? st->dialogs : NULL;
}


int stack_debug(struct re_printf *pf, const struct stack *st)
{
	size_t i;
	int err;

	if (!st)
		return 0;

	err = re_hprintf(pf, "stack running=%d %H\n", st->running,
			 stack_config_debug, &st->cfg);
	for (i = 0; i < st->lsnrc; i++)
		err |= re_hprintf(pf, "  listen %s %J\n",
				  sip_transp_name(st->lsnrv[i].tp),
				  &st->lsnrv[i].laddr);
	err |= re_hprintf(pf, "  requests=%llu replies=%llu bad=%llu "
			  "dialogs=%u\n",
			  st->stats.requests, st->stats.replies,
			  st->stats.bad_requests,
			  dialog_table_count(st->dialogs));
	err |= re_hprintf(pf, "  %H\n", ratelimit_debug, st->rl);
	err |= re_hprintf(pf, "  %H\n", wsflow_debug, NULL);

	return err;
}
