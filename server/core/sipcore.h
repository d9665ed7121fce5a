/**
 * server/core/sipcore.h  The SIP core: its public C API
 *
 * What server/core/ gives every other folder: the generic state machine,
 * logging and flood control, the stack (transport, requests, replies,
 * outgoing requests), the per-source rate limiter, dialogs, and Digest (hashing, the header parser
 * and the client's answer). It knows no session type by name.
 *
 * One section per object, in the libre style: opaque structs, int errno
 * returns, out-pointer first, handler and arg last, handler typedefs
 * ending in _h, getters named as nouns, a %H printer per object. Include
 * <re.h> first (with HAVE_INTTYPES_H, HAVE_STDBOOL_H, HAVE_INET6 and
 * USE_OPENSSL defined, as meson.build does). Everything runs on the
 * stack's loop thread; from another thread, use stack_call().
 */
#ifndef SIPSTACK_SIPCORE_H
#define SIPSTACK_SIPCORE_H

#define SIPSTACK_VERSION "0.1.0"

/* ---- FSM BEGIN ---- (generic finite state machine, server/core/fsm.c) */

/*
 * A definition (struct fsm_def) is made once with a builder, is immutable
 * and is shared, mem-refcounted, by any number of small instances
 * (struct fsm). State and event names are interned to ids (0..n-1 in order
 * of first use); ids stay valid for the life of a def and of every
 * copy-on-write descendant of it, so callers may cache them for the
 * fast path fsm_transition_id().
 *
 * "*" as the from-state of a transition means any state; an explicit
 * (state, event) row always wins over a "*" row. Handlers live in the def
 * and get the instance's arg, so per-object behaviour goes through arg.
 *
 * On a transition: exit(old), state changes and the history entry is
 * written, transition(from, to, event), enter(new). Self-transitions run
 * exit and enter too. No enter handler runs for the initial state.
 *
 * fsm_transition() called from inside a handler of the same instance is
 * queued and runs when the current transition has finished, before the
 * outermost fsm_transition() returns (run-to-completion). It is checked at
 * once against the state the machine will be in by then, so it returns 0
 * or EPERM as an immediate call would; fsm_can() answers the same way.
 * If a handler drops the last reference to the instance, the remaining
 * handlers and queued events are skipped and it is freed afterwards.
 *
 * Returned names point into the def: they are valid while the instance
 * lives and no fsm_add_transition() replaces its def.
 */
struct fsm_builder;
struct fsm_def;
struct fsm;

typedef void (fsm_state_h)(struct fsm *f, const char *state, void *arg);
typedef void (fsm_transition_h)(struct fsm *f, const char *from,
				const char *to, const char *event, void *arg);

/* One history entry; ts_us is CLOCK_REALTIME in microseconds */
struct fsm_hist {
	const char *from;
	const char *to;
	const char *event;
	uint64_t ts_us;
};

enum {
	FSM_HISTORY_DEFAULT = 16,  /* history ring entries per instance */
};

/* Builder: collects a definition; may be built any number of times */
int  fsm_builder_alloc(struct fsm_builder **bp, const char *name);
int  fsm_builder_initial(struct fsm_builder *b, const char *state);
int  fsm_builder_transition(struct fsm_builder *b, const char *from,
			    const char *event, const char *to);
int  fsm_builder_enter(struct fsm_builder *b, const char *state,
		       fsm_state_h *h);
int  fsm_builder_exit(struct fsm_builder *b, const char *state,
		      fsm_state_h *h);
int  fsm_builder_on_transition(struct fsm_builder *b, fsm_transition_h *h);
int  fsm_builder_history(struct fsm_builder *b, uint16_t capacity);
int  fsm_build(struct fsm_def **defp, const struct fsm_builder *b);

/* Definition: immutable; lookups return -1 / NULL when not found */
const char *fsm_def_name(const struct fsm_def *d);
unsigned fsm_def_state_count(const struct fsm_def *d);
unsigned fsm_def_event_count(const struct fsm_def *d);
int  fsm_def_state(const struct fsm_def *d, const char *name);
int  fsm_def_event(const struct fsm_def *d, const char *name);
const char *fsm_def_state_name(const struct fsm_def *d, int id);
const char *fsm_def_event_name(const struct fsm_def *d, int id);
int  fsm_def_debug(struct re_printf *pf, const struct fsm_def *d);

/* Instance: takes a reference on def; arg is passed to every handler */
int  fsm_alloc(struct fsm **fp, struct fsm_def *def, void *arg);
struct fsm_def *fsm_def(const struct fsm *f);
const char *fsm_current(const struct fsm *f);
int  fsm_state_id(const struct fsm *f);
bool fsm_can(const struct fsm *f, const char *event);
bool fsm_can_id(const struct fsm *f, int event_id);
/* 0, EINVAL (NULL or unknown event), EPERM (not allowed here),
 * EOVERFLOW/ELOOP (too many queued / chained nested transitions) */
int  fsm_transition(struct fsm *f, const char *event);
int  fsm_transition_id(struct fsm *f, int event_id);
/* Adds or replaces a row for this instance only (copy-on-write of its
 * def; new names are interned after the existing ids). from may be "*". */
int  fsm_add_transition(struct fsm *f, const char *from, const char *event,
			const char *to);
uint64_t fsm_transitions(const struct fsm *f);   /* total, ever */
size_t fsm_history_count(const struct fsm *f);   /* entries kept */
/* i = 0 is the oldest entry kept; ENOENT past the last */
int  fsm_history(const struct fsm *f, size_t i, struct fsm_hist *h);
/* Message of the last failed call on f ("" if none); like errno, a later
 * success does not clear it. Thread-local buffer, valid until the next
 * fsm_error() call on the same thread. */
const char *fsm_error(const struct fsm *f);
int  fsm_debug(struct re_printf *pf, const struct fsm *f);

/* ---- FSM END ---- */


/* ---------------------------------------------------------------------
 * Log (server/core/log.c): one line per event, logfmt or JSON
 * ------------------------------------------------------------------ */

enum log_level {
	LOG_DEBUG = 0,
	LOG_INFO,
	LOG_WARN,
	LOG_ERROR,
};

enum log_format {
	LOG_FMT_LOGFMT = 0,
	LOG_FMT_JSON,
};

void log_set_level(enum log_level lvl);
enum log_level log_level_get(void);
void log_set_format(enum log_format fmt);
int  log_level_parse(enum log_level *lvl, const char *s);
const char *log_level_name(enum log_level lvl);
bool log_enabled(enum log_level lvl);

/*
 * slog() writes one event. fields is a re_printf format of space-separated
 * key=value pairs; values that may hold spaces or quotes must be printed
 * with %H log_q (C string) or %H log_qpl (struct pl *), which quote and
 * escape them. callid may be NULL.
 *
 *   slog(LOG_INFO, "call", "state", &msg->callid, "from=%s to=%s", a, b);
 */
void slog(enum log_level lvl, const char *mod, const char *ev,
	  const struct pl *callid, const char *fields, ...);
void slogv(enum log_level lvl, const char *mod, const char *ev,
	   const struct pl *callid, const char *fields, va_list ap);
int  log_q(struct re_printf *pf, const char *s);
int  log_qpl(struct re_printf *pf, const struct pl *pl);
void log_set_sink(FILE *f);
void log_libre_attach(void);
/* Lines written at lvl since the start, from any thread (a metric) */
uint64_t log_count(enum log_level lvl);

/*
 * Flood control (server/core/loglimit.c). slog_src() is slog() for lines
 * about what a peer sent: per event and source IP at most 5 lines per
 * 10 s, per event at most 50 from all sources; what is held back is
 * told in one line `src=<ip> suppressed=N window=10` (or `src=*`) when
 * the window ends. loglimit_admit() is the same test for a caller that
 * prints itself. Both limit only on the thread that called
 * loglimit_attach() (the loop; they arm a timer); loglimit_flush()
 * prints what is pending (at stop).
 */
void slog_src(enum log_level lvl, const char *mod, const char *ev,
	      const struct sa *src, const struct pl *callid,
	      const char *fields, ...);
bool loglimit_admit(enum log_level lvl, const char *mod, const char *ev,
		    const struct sa *src);
void loglimit_attach(void);
void loglimit_flush(void);


/* ---------------------------------------------------------------------
 * Metrics (server/core/metrics.c, metrics_http.c): Prometheus text
 * ------------------------------------------------------------------ */

/*
 * A registry (struct metrics) writes the Prometheus text exposition
 * format 0.0.4 (# HELP, # TYPE, samples) of what is registered with
 * it. The figures themselves stay where they are counted: a part of
 * the program counts in plain uint64 fields or arrays indexed by the
 * enums below (no allocation, no formatting on the hot path) and
 * registers a collector, a function that writes its families at
 * scrape time with metrics_family() and the metrics_sample*() writers;
 * sizes that exist anyway (dialogs, bindings, tasks) are read then,
 * never counted twice. Metrics defined at run time (a script's) live
 * in the registry itself (metrics_define).
 *
 * Label values are bounded by construction: a method of the fixed
 * list below or "other", a status class 1xx..6xx, a transport
 * udp/tcp/tls/ws/wss; never a Call-ID, a user or an address. Names
 * are sipstack_* (process_* for the process's own, as the Prometheus
 * client libraries name them); counters end in _total.
 *
 * Everything runs on the loop thread; log_count() is the exception
 * (atomic: any thread logs).
 */
struct metrics;
struct metrics_collector;
struct metric;

enum metrics_type {
	METRICS_COUNTER = 0,
	METRICS_GAUGE,
	METRICS_HISTOGRAM,
};

/* The methods a label may name; any other is METRICS_OTHER */
enum metrics_method {
	METRICS_INVITE = 0, METRICS_ACK, METRICS_BYE, METRICS_CANCEL,
	METRICS_OPTIONS, METRICS_REGISTER, METRICS_MESSAGE, METRICS_PRACK,
	METRICS_UPDATE, METRICS_INFO, METRICS_REFER, METRICS_SUBSCRIBE,
	METRICS_NOTIFY, METRICS_PUBLISH, METRICS_OTHER,
	METRICS_METHODS            /* how many */
};

enum {
	METRICS_CLASSES     = 6,   /* status classes 1xx..6xx            */
	METRICS_BUCKETS_MAX = 24,  /* finite bounds of a histogram       */
	METRICS_DEFINED_MAX = 256, /* metrics_define()d, per registry     */
	METRICS_NAME_MAX    = 128, /* bytes of a defined metric's name    */
	METRICS_HELP_MAX    = 256, /* and of its help text                */
};

enum metrics_method metrics_method(const struct pl *met);
const char *metrics_method_name(enum metrics_method m);   /* "INVITE" */
/* "udp", "tcp", "tls", "ws", "wss"; "other" outside enum sip_transp */
const char *metrics_transport_name(enum sip_transp tp);
/* 0..5 for 1xx..6xx (scode 100..699) */
static inline unsigned metrics_class(uint16_t scode)
{
	return scode >= 100 && scode < 700 ? scode / 100u - 1u : 5u;
}

/* A histogram of fixed upper bounds (le, ascending, +Inf implied),
 * filled on the loop thread. bucket[i] counts the observations of
 * bucket i only; the writer makes them cumulative. */
struct metrics_hist {
	const double *le;
	uint32_t n;                /* finite bounds, <= METRICS_BUCKETS_MAX */
	uint64_t bucket[METRICS_BUCKETS_MAX + 1];
	uint64_t count;
	double sum;
};
void metrics_hist_init(struct metrics_hist *h, const double *le,
		       uint32_t n);
/* the bounds for durations in seconds: 10 us .. 10 s */
void metrics_hist_init_seconds(struct metrics_hist *h);
void metrics_hist_observe(struct metrics_hist *h, double v);

/* The registry. Collectors write in the order they were added, after
 * the registry's own (none: stack_alloc adds the process's and the
 * stack's), then the defined metrics in the order defined. */
typedef int (metrics_collect_h)(struct mbuf *mb, void *arg);
int  metrics_alloc(struct metrics **mp);
/* mem_deref(*cp) removes it (a collector outliving its registry only
 * frees itself) */
int  metrics_collector_add(struct metrics_collector **cp, struct metrics *m,
			   metrics_collect_h *h, void *arg);
/* The whole exposition, appended to mb */
int  metrics_write(struct mbuf *mb, const struct metrics *m);
/* The process's figures (process_cpu_seconds_total, resident and
 * virtual memory, open fds, start time), sipstack_build_info and the
 * log lines written by level: a metrics_collect_h (arg unused) */
int  metrics_process_collect(struct mbuf *mb, void *arg);

/* What collectors write with. A family's # HELP and # TYPE lines come
 * once, before its samples; labels is the inside of the braces
 * (`method="INVITE",transport="udp"`, values from bounded lists,
 * nothing to escape) or NULL. */
int  metrics_family(struct mbuf *mb, const char *name,
		    enum metrics_type type, const char *help);
int  metrics_sample_u64(struct mbuf *mb, const char *name,
			const char *labels, uint64_t v);
int  metrics_sample(struct mbuf *mb, const char *name, const char *labels,
		    double v);
/* A family of one sample without labels: metrics_family() and
 * metrics_sample_u64() */
int  metrics_one(struct mbuf *mb, const char *name, enum metrics_type type,
		 const char *help, uint64_t v);
/* name_bucket{labels,le="..."} cumulative, name_sum, name_count */
int  metrics_hist_write(struct mbuf *mb, const char *name,
			const char *labels, const struct metrics_hist *h);

/* Metrics defined at run time (the scripts'): a counter or a gauge
 * without labels, a double. name: [a-zA-Z_:][a-zA-Z0-9_:]*, at most
 * METRICS_NAME_MAX bytes, the whole exposed name (the caller prefixes
 * it); help: 1..METRICS_HELP_MAX bytes without control characters.
 * The same name again gives the metric already defined (its value
 * kept; help replaced). Errors: EINVAL (name, help or type),
 * EPROTOTYPE (the name is defined with the other type), EOVERFLOW
 * (METRICS_DEFINED_MAX defined), ENOMEM. m NULL: a metric of no
 * registry (checked the same; sipstack --check). The caller holds a
 * reference; the registry holds one for its life. */
int  metrics_define(struct metric **mp, struct metrics *m, const char *name,
		    const char *help, enum metrics_type type);
enum metrics_type metric_type(const struct metric *mt);
const char *metric_name(const struct metric *mt);
/* counter: v >= 0 and finite, else EINVAL; gauge: any finite v */
int  metric_add(struct metric *mt, double v);
/* gauge only (EINVAL for a counter or a value not finite) */
int  metric_set(struct metric *mt, double v);
double metric_value(const struct metric *mt);

/* The endpoint (server/core/metrics_http.c): libre's HTTP server on
 * the loop at laddr; GET /metrics -> 200 text/plain; version=0.0.4,
 * another method on /metrics -> 405 (Allow: GET), another path ->
 * 404. Holds a reference on m. No authentication and no TLS: bind it
 * to a loopback address (or one only the collector can reach). */
struct metrics_http;
int  metrics_http_listen(struct metrics_http **hp, struct metrics *m,
			 const struct sa *laddr);
/* the bound address (the port picked for port 0) */
int  metrics_http_laddr(const struct metrics_http *mh, struct sa *laddr);


/* ---------------------------------------------------------------------
 * Control socket (server/core/ctl.c): line-delimited JSON on a Unix
 * stream socket, served on the loop (docs/ctl.md)
 * ------------------------------------------------------------------ */

/*
 * One request per line, a JSON object {"cmd": NAME, ...}; one answer
 * per line, {"ok": true, "result": {...}} or {"ok": false, "error":
 * {"code": CODE, "message": TEXT}}, with the request's "id" echoed when
 * it had one. The core knows no command: the program adds them by name
 * (ctl_command_add) with a handler. A handler answers the op once with
 * ctl_op_reply() or ctl_op_error(), before it returns or later (it then
 * keeps a mem_ref on the op); an op freed unanswered is answered
 * "internal". A client that left before its answer costs nothing: the
 * answer is dropped. Bounded: CTL_LINE_MAX bytes a line, CTL_CLIENTS_MAX
 * clients at once (the next one is told "busy"), a client idle for
 * CTL_IDLE_MS is closed.
 */
enum {
	CTL_LINE_MAX    = 8192,
	CTL_CLIENTS_MAX = 16,
	CTL_IDLE_MS     = 60000,
};

struct ctl;
struct ctl_op;

/* req: the request object (its "cmd" and arguments); valid during the
 * call only */
typedef void (ctl_cmd_h)(struct ctl_op *op, const struct odict *req,
			 void *arg);

/* Creates the socket at path (mode applied with chmod, e.g. 0660),
 * replacing a stale one (a socket nobody answers on); EADDRINUSE when a
 * live server answers there, EEXIST when path is not a socket,
 * ENAMETOOLONG when it does not fit a sockaddr_un. The socket file is
 * removed when the ctl is freed. */
int  ctl_listen(struct ctl **ctlp, const char *path, unsigned mode);
/* Adds command name (at most 16 commands; EALREADY if taken) */
int  ctl_command_add(struct ctl *ctl, const char *name, ctl_cmd_h *h,
		     void *arg);
const char *ctl_path(const struct ctl *ctl);
uint32_t ctl_clients(const struct ctl *ctl);
int  ctl_debug(struct re_printf *pf, const struct ctl *ctl);
/* Answers: result NULL is an empty object. EALREADY: answered before */
int  ctl_op_reply(struct ctl_op *op, const struct odict *result);
/* code: a short lowercase stable word (bad_request, not_found...) */
int  ctl_op_error(struct ctl_op *op, const char *code, const char *fmt,
		  ...);
const char *ctl_op_cmd(const struct ctl_op *op);

/* Helpers to build answers (odict_entry_add with the right types) */
int  ctl_odict_str(struct odict *o, const char *key, const char *val);
int  ctl_odict_int(struct odict *o, const char *key, int64_t val);
int  ctl_odict_bool(struct odict *o, const char *key, bool val);

/* ---------------------------------------------------------------------
 * Config: the spec's StackConfig
 * ------------------------------------------------------------------ */

/* An address prefix: "10.0.0.0/8", "2001:db8::/32", "192.0.2.7" (/32) */
struct ratelimit_net {
	struct sa addr;           /* bits beyond the prefix are zero     */
	uint8_t bits;             /* 0..32 (IPv4), 0..128 (IPv6)         */
};

enum ratelimit_action {
	RATELIMIT_DROP = 0,       /* over the limit: dropped unanswered  */
	RATELIMIT_503,            /* 503 with Retry-After (capped)       */
};

enum {
	RATELIMIT_TRUSTED_MAX = 32,     /* trusted prefixes                */
	RATELIMIT_RATE        = 200,    /* defaults: requests/s per source */
	RATELIMIT_BURST       = 1000,   /* ... a burst above the rate      */
	RATELIMIT_RETRY_AFTER = 5,      /* ... Retry-After of a 503, s     */
	RATELIMIT_SOURCES     = 65536,  /* ... sources tracked at most     */
	STACK_UA_DROP_MAX     = 16,     /* drop_user_agents entries        */
	STACK_UA_DROP_LEN     = 64,     /* ... and their length with NUL   */
};

/* The per-source rate limiter's settings (ratelimit.c, the table of
 * docs/lua-api.md "Rate limit"); stack_config_default() sets the
 * defaults: on, 200/s, burst 1000, drop, loopback trusted */
struct stack_ratelimit {
	bool     on;
	uint32_t rate;            /* tokens per second, 1..1000000       */
	uint32_t burst;           /* bucket size, 1..10000000            */
	enum ratelimit_action action;
	uint32_t retry_after;     /* s, 1..86400                         */
	uint32_t max_sources;     /* table size, 1024..1048576 (rounded
				   * up to a power of two)               */
	uint32_t ntrusted;
	struct ratelimit_net trusted[RATELIMIT_TRUSTED_MAX];
};

struct stack_config {
	char     user_agent[128]; /* Server: / User-Agent:             */
	char     local_ip[64];    /* address for Contact; "" = listener */
	uint16_t udp_port;        /* 0 = no UDP listener               */
	uint16_t tcp_port;        /* 0 = no TCP listener               */
	uint16_t tls_port;        /* 0 = no TLS listener               */
	uint32_t max_forwards;    /* Max-Forwards of requests we make  */
	uint32_t t1;              /* ms, RFC 3261 T1 (our own timers)  */
	uint32_t t2;              /* ms, RFC 3261 T2                   */
	uint32_t t4;              /* ms, RFC 3261 T4                   */
	char     dns_servers[256];/* "ip:port ip:port"; "" = resolv.conf */
	struct stack_ratelimit rate_limit;
	/* requests whose User-Agent holds one of these (any case) are
	 * dropped unanswered (scanners: "friendly-scanner") */
	uint32_t ua_dropn;
	char     ua_drop[STACK_UA_DROP_MAX][STACK_UA_DROP_LEN];
};

void stack_config_default(struct stack_config *cfg);
int  stack_config_debug(struct re_printf *pf, const struct stack_config *cfg);


/* ---------------------------------------------------------------------
 * Stack: the UAC/UAS object (server/core/stack.c)
 * ------------------------------------------------------------------ */

struct stack;
struct dialog;

/* A request handed to a handler. The handler owns nothing: it answers
 * through stack_req_reply*() on the server transaction the stack
 * created for it. */
struct stack_req;

/* Return true when the handler took the request (it will answer it). */
typedef bool (stack_req_h)(struct stack *st, struct stack_req *req,
			   void *arg);
typedef void (stack_resp_h)(int err, const struct sip_msg *resp, void *arg);
typedef void (stack_call_h)(void *arg);

struct stack_tls_files {
	const char *cert;   /* PEM certificate chain                  */
	const char *key;    /* PEM private key (may be the cert file) */
	const char *ca;     /* PEM CA bundle for peer verification    */
};

int  stack_alloc(struct stack **stp, const struct stack_config *cfg);
/* A listener, opened by stack_start(): UDP, TCP, TLS, WS or WSS (SIP
 * over WebSocket, RFC 7118: any HTTP path, subprotocol "sip"). TLS and
 * WSS need tls->cert; WSS takes the certificate chain and the key from
 * that one file (libre's HTTPS server reads one file), so tls->key
 * must be unset or the same file (EINVAL). */
int  stack_listen(struct stack *st, enum sip_transp tp,
		  const struct sa *laddr, const struct stack_tls_files *tls);
int  stack_start(struct stack *st);
void stack_stop(struct stack *st);
bool stack_is_running(const struct stack *st);
struct sip *stack_sip(const struct stack *st);
const struct stack_config *stack_config(const struct stack *st);
int  stack_set_config(struct stack *st, const struct stack_config *cfg);

/* Dispatch (server/core/dispatch.c): who gets a request. A handler is
 * registered for the space-separated methods it takes (NULL: any) in
 * some scopes; allow names the methods it adds to the Allow header of
 * the core's 405/501 and OPTIONS answers (NULL: none). A request
 * without a To tag goes to the STACK_OUT_OF_DIALOG handlers of its
 * method, then to those of any method, in the order registered, until
 * one returns true (it took the request: it answers it now or later);
 * nobody: stack_req_default(). A request with a To tag goes to its
 * dialog (the dialog's usages, see the dialog section); one matching
 * no dialog of ours goes to the STACK_NO_DIALOG handlers (a proxy
 * forwards it), nobody: 481. mem_deref(*hp) unregisters. */
enum stack_scope {
	STACK_OUT_OF_DIALOG = 1u << 0,
	STACK_NO_DIALOG     = 1u << 1,
};
struct stack_handler;
int  stack_handler_add(struct stack_handler **hp, struct stack *st,
		       const char *methods, const char *allow,
		       unsigned scope, stack_req_h *h, void *arg);
/* For an owner that switches its handler on and off (a script's hooks
 * across reloads): h NULL unregisters *hp; else *hp keeps its place and
 * gets h and arg, or is registered if there is none. */
int  stack_handler_set(struct stack_handler **hp, struct stack *st,
		       const char *methods, const char *allow,
		       unsigned scope, stack_req_h *h, void *arg);
/* Option tags we implement (Supported:, and what Require: may name). */
#define STACK_SUPPORTED "100rel, replaces"

/* "Allow: ...\r\n": the methods the handlers take, for answers that
 * name them (a call's 2xx and 18x, the core's 405/501 and OPTIONS) */
const char *stack_allow_hdr(const struct stack *st);

/* Address requests from us come from (for From/Contact) */
int  stack_local_uri(const struct stack *st, enum sip_transp tp,
		     char *buf, size_t sz);

/* Listener i as "sip:IP:PORT[;transport=...]", the form of a binding's
 * node (the registrar's); ENOENT past the last */
int  stack_listener_uri(const struct stack *st, size_t i,
			char *buf, size_t sz);

/* cfg->dns_servers as addresses; in: size of ns, out: how many */
int  stack_dns_servers(const struct stack_config *cfg, struct sa *ns,
		       uint32_t *nsn);

/* Responses that matched no client transaction and no dialog of ours
 * (RFC 3261 §16.11: a proxy forwards them by their Via); one handler,
 * NULL removes it. Without one they are logged at debug and dropped. */
typedef void (stack_stray_h)(const struct sip_msg *msg, void *arg);
void stack_set_stray_handler(struct stack *st, stack_stray_h *h,
			     void *arg);

/* A handler failed (counted in stack_stats.hook_errors) */
void stack_note_hook_error(struct stack *st);

/* Services: parts of the program that live as long as the stack and
 * that the core knows only by key (the address of a static of theirs),
 * e.g. the call manager. The stack holds a reference on obj; at
 * stack_stop() it calls stoph(obj), the last attached first, while the
 * transport is still up; it lets obj go when it is freed. EALREADY if
 * key is taken. */
typedef void (stack_stop_h)(void *obj);
int   stack_service_add(struct stack *st, const void *key, void *obj,
			stack_stop_h *stoph);
void *stack_service(const struct stack *st, const void *key);
/* Admission of every request before anything else looks at it: h
 * returns false to drop it silently (no answer, no transaction),
 * counted in stack_stats.dropped. One gate; NULL removes it. */
typedef bool (stack_admit_h)(const struct sa *src, void *arg);
void stack_set_admit(struct stack *st, stack_admit_h *h, void *arg);
int  stack_debug(struct re_printf *pf, const struct stack *st);
/* The stack's metrics registry (made with it): the stack's collector
 * and the process's are in it; other parts add theirs */
struct metrics *stack_metrics(const struct stack *st);
/* The standard reason phrase of a status code (RFC 3261 §21) */
const char *stack_reason_phrase(uint16_t code);

/* Counters, for tests and the benchmark */
struct stack_stats {
	uint64_t requests;       /* requests received                 */
	uint64_t responses;      /* responses received                */
	uint64_t bad_requests;   /* answered 400 or dropped           */
	uint64_t replies;        /* responses sent                    */
	uint64_t hook_errors;    /* hooks that failed (500 sent)      */
	uint64_t dropped;        /* refused by the admission gate     */
	uint64_t limited_sources;  /* sources that went over the rate */
	uint64_t limited_dropped;  /* datagrams/requests it dropped   */
	uint64_t limited_answered; /* requests it answered 503        */
	uint64_t ua_dropped;     /* dropped for their User-Agent      */
};
void stack_stats(const struct stack *st, struct stack_stats *stats);

/* Cross-thread: run h(arg) on the loop thread. Safe from any thread.
 * Returns EAGAIN when the queue is full (the caller may retry). */
int  stack_call(struct stack *st, stack_call_h *h, void *arg);

/* A non-INVITE request out of any dialog (OPTIONS, MESSAGE, NOTIFY,
 * PUBLISH...) to the SIP URI uri (Request-URI and To), resolved per
 * RFC 3263, from from (NULL: our address), with a new Call-ID and From
 * tag. resph gets the final response once (or err != 0: ETIMEDOUT after
 * 64*T1, ECONNREFUSED..., ECANCELED when the stack stops first).
 * headers are extra header lines, each ending in CRLF, or NULL; a body
 * needs ctype. EINVAL for INVITE, ACK and CANCEL (the calls' INVITE
 * transaction), a method that is not an upper-case token, a bad URI. */
int  stack_request(struct stack *st, const char *met, const char *uri,
		   const char *from, const char *headers, const char *ctype,
		   const uint8_t *body, size_t len, stack_resp_h *resph,
		   void *arg);
/* The same, sent to the SIP URI next_hop instead of where uri resolves
 * (NULL: uri), which stays the Request-URI: a registered binding's
 * `received` ("sip:IP:PORT;transport=ws"), the connection its REGISTER
 * came over; a browser's Contact (RFC 7118: "...@x.invalid") resolves
 * nowhere. */
int  stack_request_via(struct stack *st, const char *met, const char *uri,
		       const char *next_hop, const char *from,
		       const char *headers, const char *ctype,
		       const uint8_t *body, size_t len, stack_resp_h *resph,
		       void *arg);
/* Outgoing MESSAGE (RFC 3428): stack_request() with a Content-Type
 * always (ctype is required). */
int  stack_send_message(struct stack *st, const char *to, const char *from,
			const char *ctype, const uint8_t *body, size_t len,
			const char *headers, stack_resp_h *resph, void *arg);


/* ---------------------------------------------------------------------
 * Rate limiter (server/core/ratelimit.c): a token bucket per source
 * ------------------------------------------------------------------ */

/*
 * One bucket per source address (the port ignored; an IPv6 source by
 * its /64, what one host usually holds), rate tokens per second up to
 * burst; what a source sends beyond that is over the limit. The table
 * holds at most max_sources buckets (O(1), no allocation per check):
 * a new source takes a free or full bucket of its set, else the one
 * nearest to full, so spoofed sources cannot grow it and the heaviest
 * senders are the last forgotten. Trusted prefixes are never limited.
 * The stack checks every UDP datagram before libre decodes it (through
 * udpbatch's filter) and every other request when it arrives; a source
 * going over is logged once (ev=rate_limit) and summarised when it
 * calmed down (ev=rate_limit_end). Loop thread only.
 */
enum ratelimit_verdict {
	RATELIMIT_PASS = 0,       /* within its rate, or trusted         */
	RATELIMIT_OVER,           /* over: drop it                       */
	RATELIMIT_REPLY,          /* over, action 503, one is due: answer */
};

struct ratelimit;

struct ratelimit_stats {
	uint32_t sources;         /* buckets in use                      */
	uint32_t size;            /* buckets at most                     */
	uint32_t limited;         /* sources over the limit now          */
	uint64_t episodes;        /* times a source went over            */
	uint64_t over;            /* checks over the limit               */
	uint64_t replies;         /* of those, RATELIMIT_REPLY           */
	uint64_t trusted;         /* checks of trusted sources           */
	uint64_t evicted;         /* buckets taken from another source   */
};

void ratelimit_config_default(struct stack_ratelimit *cfg);
/* 0, or EINVAL (a value out of range) */
int  ratelimit_config_check(const struct stack_ratelimit *cfg);
/* "ip" or "ip/bits" into net; EINVAL if not one, EDOM if bits are set
 * beyond the prefix ("10.0.0.1/8") */
int  ratelimit_net_decode(struct ratelimit_net *net, const char *s);
int  ratelimit_net_print(struct re_printf *pf, const struct ratelimit_net *n);
int  ratelimit_alloc(struct ratelimit **rlp, const struct stack_ratelimit *cfg);
/* New settings; the buckets are kept unless max_sources changed */
int  ratelimit_set(struct ratelimit *rl, const struct stack_ratelimit *cfg);
/* One datagram or request from src at now_ns (ratelimit_now(); 0: read
 * the clock, if the source is not trusted) */
enum ratelimit_verdict ratelimit_check(struct ratelimit *rl,
				       const struct sa *src, uint64_t now_ns);
uint64_t ratelimit_now(void);            /* CLOCK_MONOTONIC, ns       */
/* Ends the episodes of sources quiet for a while (logged); a timer
 * calls it every second while a source is over */
void ratelimit_sweep(struct ratelimit *rl, uint64_t now_ns);
/* Ends every episode now (logged), at stop */
void ratelimit_flush(struct ratelimit *rl);
void ratelimit_stats(const struct ratelimit *rl, struct ratelimit_stats *st);
int  ratelimit_debug(struct re_printf *pf, const struct ratelimit *rl);


/* ---------------------------------------------------------------------
 * Request (struct stack_req): a received request with its transaction
 * ------------------------------------------------------------------ */

const struct sip_msg *stack_req_msg(const struct stack_req *req);
/* The body of a message: at most Content-Length octets (RFC 3261 §18.3) */
void stack_msg_body(const struct sip_msg *msg, struct pl *body);
struct stack *stack_req_stack(const struct stack_req *req);
bool stack_req_answered(const struct stack_req *req);
/* The request went on without state (a stateless proxy, RFC 3261
 * §16.11): its answers come from downstream, none from us */
void stack_req_forwarded(struct stack_req *req);
/* headers: extra header lines each ending in CRLF, or NULL */
int  stack_req_reply(struct stack_req *req, uint16_t scode,
		     const char *reason, const char *headers,
		     const char *ctype, const uint8_t *body, size_t len);
/* The core's default answer for this request (OPTIONS capabilities,
 * 200 for MESSAGE, 405/501 otherwise). */
int  stack_req_default(struct stack_req *req);
struct stack_req *stack_req_ref(struct stack_req *req);  /* mem_ref  */
/* As stack_req_reply; *mbp (if given) gets the response sent */
int  stack_req_reply_mb(struct stack_req *req, uint16_t scode,
			const char *reason, const char *headers,
			const char *ctype, const uint8_t *body, size_t len,
			struct mbuf **mbp);
/* Send a response again (2xx to INVITE until the ACK) */
int  stack_req_resend(struct stack_req *req, struct mbuf *mb);
/* The request forms a dialog: replies copy Record-Route, and a CANCEL
 * calls cancelh (which must answer the request, e.g. 487) */
void stack_req_set_dialog(struct stack_req *req, sip_cancel_h *cancelh,
			  void *arg);
/* Create the server transaction now (the answer comes later) */
int  stack_req_keep(struct stack_req *req);
/* A CANCEL of the request calls cancelh (which must answer the
 * request, e.g. 487) instead of the core's 487; unlike
 * stack_req_set_dialog, replies do not copy Record-Route (a proxy) */
void stack_req_set_cancel(struct stack_req *req, sip_cancel_h *cancelh,
			  void *arg);
/* A response built elsewhere (a proxy relays a downstream one: status
 * line, headers, body), sent through the request's server transaction
 * (made if need be); a final one answers the request. A 2xx to an
 * answered INVITE is sent again statelessly to where the answers go
 * (a proxy forwards every forked 2xx, RFC 3261 §16.7). EALREADY for
 * another answer to an answered request. */
int  stack_req_relay_reply(struct stack_req *req, uint16_t scode,
			   struct mbuf *mb);
/* Who gives stack_req_default()'s answer instead of the core (a proxy
 * forwards its best response when the script returned without one);
 * h NULL: the core again. h must answer req. */
typedef int (stack_req_default_h)(struct stack_req *req, void *arg);
void stack_req_set_default(struct stack_req *req, stack_req_default_h *h,
			   void *arg);
bool stack_req_has_default(const struct stack_req *req);


/* ---------------------------------------------------------------------
 * Dialog table (server/core/dialog.c): O(1) lookup by Call-ID + tags
 * ------------------------------------------------------------------ */

struct dialog_table;

int  dialog_table_alloc(struct dialog_table **tp, uint32_t buckets);
uint32_t dialog_table_count(const struct dialog_table *t);
struct dialog *dialog_table_find(const struct dialog_table *t,
				 const struct pl *callid,
				 const struct pl *ltag, const struct pl *rtag);
struct dialog_table *stack_dialogs(const struct stack *st);

/* A dialog is listed in its table from its creation until its last
 * reference goes. dialog_alloc() lists a bare identity (rtag may be
 * NULL: not yet known); EEXIST if listed. */
int  dialog_alloc(struct dialog **dlgp, struct dialog_table *t,
		  const struct pl *callid, const struct pl *ltag,
		  const struct pl *rtag);

/* UAS (RFC 3261 §12.1.1): from the INVITE; ltag is the To tag of our
 * responses, contact our Contact URI. Remote target from its Contact,
 * route set from its Record-Route. EBADMSG without a usable Contact. */
int  dialog_create_uas(struct dialog **dlgp, struct dialog_table *t,
		       struct stack *st, const struct sip_msg *req,
		       const char *ltag, const char *contact);

/* UAC (§12.1.2), before the INVITE goes out: local/remote are the From
 * and To name-addrs (without tags), target the Request-URI. The remote
 * tag, route set and target come with dialog_set_remote(). */
int  dialog_create_uac(struct dialog **dlgp, struct dialog_table *t,
		       struct stack *st, const char *callid, const char *ltag,
		       const char *local, const char *remote,
		       const char *target, const char *contact);
/* A 1xx with To tag or a 2xx: remote tag, reversed Record-Route,
 * Contact. A request (a NOTIFY before its SUBSCRIBE's 2xx, RFC 6665
 * §4.1.2.4): its From tag, its Record-Route in order, Contact. EEXIST
 * when the tag is another fork's (see dialog_fork). */
int  dialog_set_remote(struct dialog *dlg, const struct sip_msg *msg);
/* A new dialog for a response (or NOTIFY) of another fork of orig's
 * INVITE (or SUBSCRIBE) */
int  dialog_fork(struct dialog **dlgp, const struct dialog *orig,
		 const struct sip_msg *resp);
/* A target refresh (re-INVITE, UPDATE or their 2xx): new remote target */
int  dialog_target_refresh(struct dialog *dlg, const struct sip_msg *msg);
/* §12.2.2: EPROTO when the request's CSeq is not above the last one
 * (answer 500); ACK and CANCEL are exempt */
int  dialog_check_rseq(struct dialog *dlg, const struct sip_msg *req);
/* Build and send an in-dialog request (§12.2.1.1): Request-URI the
 * remote target, Route from the route set (loose or strict), CSeq
 * cseq or the next local one (0), Contact for target-refresh methods.
 * ACK is sent statelessly (no response). */
int  dialog_request(struct sip_request **reqp, struct dialog *dlg,
		    const char *met, uint32_t cseq, const char *hdrs,
		    const char *ctype, const uint8_t *body, size_t len,
		    sip_resp_h *resph, void *arg);

const char *dialog_callid(const struct dialog *dlg);
const char *dialog_ltag(const struct dialog *dlg);
const char *dialog_rtag(const struct dialog *dlg);
const char *dialog_local_uri(const struct dialog *dlg);
const char *dialog_remote_uri(const struct dialog *dlg);
const char *dialog_remote_target(const struct dialog *dlg);
const char *dialog_contact(const struct dialog *dlg);
uint32_t dialog_lseq(const struct dialog *dlg);
uint32_t dialog_rseq(const struct dialog *dlg);
bool dialog_is_uac(const struct dialog *dlg);
size_t dialog_route_count(const struct dialog *dlg);
const char *dialog_route(const struct dialog *dlg, size_t i);
/* Usages (RFC 5057): the sessions that share a dialog. Each gets the
 * in-dialog requests of the methods it claims (it answers them; an ACK
 * comes already "answered") and the responses no transaction took
 * (2xx retransmissions, other forks' answers to our INVITE), by their
 * CSeq method.
 *  - The session usage (the INVITE session, set with
 *    dialog_set_handlers; NULL handlers clear it) claims whatever no
 *    other usage does.
 *  - dialog_usage_add() adds one for the space-separated methods it
 *    claims (e.g. a subscription's "SUBSCRIBE NOTIFY"), first added
 *    first asked; mem_deref(*up) removes it (a usage outliving its
 *    dialog only frees itself).
 * dialog_dispatch_*() return false when no usage took it (the core
 * answers 481). The dialog's life stays its owner's: the last usage
 * going does not free it. */
typedef void (dialog_req_h)(struct dialog *dlg, struct stack_req *req,
			    void *arg);
typedef void (dialog_resp_h)(struct dialog *dlg, const struct sip_msg *msg,
			     void *arg);
struct dialog_usage;
void dialog_set_handlers(struct dialog *dlg, dialog_req_h *reqh,
			 dialog_resp_h *resph, void *arg);
int  dialog_usage_add(struct dialog_usage **up, struct dialog *dlg,
		      const char *methods, dialog_req_h *reqh,
		      dialog_resp_h *resph, void *arg);
uint32_t dialog_usage_count(const struct dialog *dlg);
bool dialog_dispatch_request(struct dialog *dlg, struct stack_req *req);
bool dialog_dispatch_response(struct dialog *dlg, const struct sip_msg *msg);
/* The dialog state machine (owned by the dialog once set) */
struct fsm *dialog_fsm(const struct dialog *dlg);
void dialog_set_fsm(struct dialog *dlg, struct fsm *fsm);
int  dialog_debug(struct re_printf *pf, const struct dialog *dlg);



/* ---------------------------------------------------------------------
 * Digest (server/core/digest.c): RFC 7616, RFC 8760, both sides' parts
 * ------------------------------------------------------------------ */

/*
 * What both sides of Digest authentication need (RFC 7616, RFC 8760 for
 * SHA-256 in SIP, RFC 3261 §22): the algorithms, hashing into lowercase
 * hex, the parser of one Digest header value, and the client's answer to
 * a challenge. The server side (nonces, the verifier, the users table)
 * is the registrar's (server/registrar/registrar.h, AUTH sections).
 */
enum auth_alg {
	AUTH_ALG_MD5    = 1u << 0,
	AUTH_ALG_SHA256 = 1u << 1,
};

enum {
	DIGEST_MD5_HEX    = 32,        /* hex digits of an MD5 digest      */
	DIGEST_SHA256_HEX = 64,        /* and of a SHA-256 one             */
	DIGEST_HEX_MAX    = DIGEST_SHA256_HEX + 1,  /* any, with its NUL   */
	DIGEST_USER_MAX   = 128,       /* user names: at most this many
					* bytes (the server: one fewer)    */
	DIGEST_SCRATCH    = 4096,      /* unescaped parameters of a header */
};

const char *auth_alg_name(enum auth_alg alg);        /* "SHA-256"     */
/* Hex digits of alg's digest: DIGEST_MD5_HEX or DIGEST_SHA256_HEX */
size_t digest_hexlen(enum auth_alg alg);
/* hex = H(pv[0] ":" pv[1] ":" ... pv[n-1]) in lowercase, NUL-terminated;
 * hex holds DIGEST_HEX_MAX bytes. */
int  digest_hash(char *hex, enum auth_alg alg, const struct pl *pv,
		 size_t n);
/* n bytes of p as 2n lowercase hex digits and a NUL */
void digest_hex_encode(char *hex, const uint8_t *p, size_t n);
/* 2n hex digits (either case) into n bytes; EINVAL if one is not hex */
int  digest_hex_decode(uint8_t *p, size_t n, const char *hex);
bool digest_is_hex(const char *p, size_t n);
/* s fits a quoted-string and a log line as it is: 1..max bytes, no
 * control character, no '"' or '\' */
bool digest_name_valid(const char *s, size_t max);

/* The parameters of one Digest header value, credentials (RFC 7616
 * §3.4) or challenge (§3.3): each points into buf, quoted-strings
 * unescaped; p NULL when absent. Unknown parameters are ignored. */
struct digest_params {
	struct pl username, realm, nonce, uri, response, algorithm;
	struct pl cnonce, nc, qop, userhash, username_ext;
	struct pl opaque, stale;            /* challenges (client side) */
	char buf[DIGEST_SCRATCH];
	size_t used;
};

/* Parses val into dp (values copied into dp->buf). ENOENT: not the
 * Digest scheme; EBADMSG: malformed (syntax, a parameter given twice,
 * longer than DIGEST_SCRATCH in all). */
int  digest_params_decode(struct digest_params *dp, const struct pl *val);
/* The algorithm parameter: absent means MD5 (RFC 7616 §3.3); 0 if
 * unknown (the -sess variants included, which we never offer) */
enum auth_alg digest_params_alg(const struct digest_params *dp);

/* Client side: the Authorization (or, for a 407, Proxy-Authorization)
 * header line answering the first challenge of resp we support (SHA-256
 * or MD5, in the server's order; qop=auth or none), for method and
 * Request-URI uri. *hdrp is a mem string ending in CRLF. *stale (may be
 * NULL) tells whether the challenge said stale=true. EPROTONOSUPPORT
 * when no challenge can be answered. */
int  auth_client_answer(char **hdrp, const struct sip_msg *resp,
			const char *met, const char *uri, const char *user,
			const char *password, bool *stale);

#endif
