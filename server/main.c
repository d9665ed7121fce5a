/**
 * server/main.c  The sipstack program
 *
 * Parses the command line, loads the script (or only checks it with
 * --check), opens the listeners (and with --metrics the Prometheus
 * endpoint, server/core/metrics_http.c; with --ctl, or under systemd's
 * RuntimeDirectory=, the control socket, server/core/ctl.c with the
 * commands of server/ctl_cmds.c) and runs libre's loop. Signals arrive
 * through a signalfd on the loop: SIGINT/SIGTERM stop cleanly, SIGHUP
 * reloads the script (a script that fails to load leaves the old one
 * running). Configuration precedence: built-in defaults, then the
 * script's sip.configure{}, then the command line.
 *
 * The only file that knows both the core (sipstack.h) and the
 * Lua runtime (bindings/luart.h): it wires one to the other.
 */
#include <dlfcn.h>
#include <string.h>
#include <stdlib.h>
#include <stdio.h>
#include <getopt.h>
#include <signal.h>
#include <unistd.h>
#include <sys/signalfd.h>
#include <sys/resource.h>
#include <re.h>
#include "sipstack.h"
#include "udpbatch.h"
#include "libre_ext.h"
#include "luart.h"
#include "regsvc.h"
#include "ctl_cmds.h"


enum {
	MAX_FDS = 65536,
	CTL_MODE = 0660,       /* the server's user and group            */
};

/* what the command line fixed, re-applied over the script's config */
struct cli {
	struct stack_config cfg;
	bool ua, lip, mf, t1, t2, t4, dns;
	struct {
		enum sip_transp tp;
		struct sa addr;
	} lsnr[8];
	size_t lsnrc;
	struct stack_tls_files tls;
	bool check;
	const char *metrics;       /* --metrics IP:PORT as given, or NULL */
	struct sa metrics_addr;
	const char *ctl;           /* --ctl PATH, or NULL                */
	bool no_ctl;               /* --no-ctl                           */
};

static struct {
	struct stack *st;
	struct luart *rt;
	struct metrics_http *mhttp;
	struct metrics_collector *mc_sessions; /* calls, subscriptions */
	struct ctl *ctl;
	struct ctl_cmds *ctlcmds;
	int sigfd;
	bool stopping;
} app = {.sigfd = -1};


#ifndef SIPSTACK_ALLOCATOR
#define SIPSTACK_ALLOCATOR "system"
#endif

/* The file of the object whose malloc() this process calls: tells
 * whether the allocator chosen at build time (SIPSTACK_ALLOCATOR,
 * meson_options.txt) is the one in use, i.e. linked ahead of libc */
static const char *malloc_origin(void)
{
	void *(*volatile fn)(size_t) = malloc;
	const char *slash;
	Dl_info info;

	if (!dladdr((void *)fn, &info) || !info.dli_fname)
		return "(unknown)";

	slash = strrchr(info.dli_fname, '/');

	return slash ? slash + 1 : info.dli_fname;
}


static void usage(FILE *f)
{
	(void)fprintf(f,
	"usage: sipstack [options] SCRIPT.lua\n"
	"       sipstack user add USER PASSWORD|- [--realm R] [--db PATH]\n"
	"       sipstack user del USER [--db PATH]\n"
	"       sipstack user list [--db PATH]\n"
	"       sipstack ctl [--socket PATH] COMMAND (sipstack ctl --help)\n"
	"\n"
	"A Lua-scriptable SIP application server.\n"
	"\n"
	"  -l, --listen PROTO:IP:PORT  listen on udp:, tcp:, tls:, ws: or wss:\n"
	"                              (SIP over WebSocket, RFC 7118; repeatable;\n"
	"                              default udp:127.0.0.1:5060)\n"
	"      --tls-cert FILE         PEM certificate chain (for tls: and wss:;\n"
	"                              wss: wants the key in this file too)\n"
	"      --tls-key FILE          PEM private key (default: in --tls-cert)\n"
	"      --tls-ca FILE           PEM CA bundle to verify peers\n"
	"      --log-level LEVEL       debug, info, warn or error (default info)\n"
	"      --log-format FORMAT     logfmt or json (default logfmt)\n"
	"      --user-agent STRING     Server:/User-Agent: value\n"
	"      --local-ip IP           address put in From/Contact\n"
	"      --max-forwards N        Max-Forwards of requests we send (70)\n"
	"      --t1 MS, --t2 MS, --t4 MS  RFC 3261 timers (500, 4000, 5000)\n"
	"      --dns-server IP[:PORT]  DNS server for RFC 3263 (repeatable;\n"
	"                              default: /etc/resolv.conf)\n"
	"      --no-udp-batch          one system call per UDP datagram, as\n"
	"                              libre does (default: recvmmsg/sendmmsg)\n"
	"      --metrics IP:PORT       serve Prometheus metrics on\n"
	"                              http://IP:PORT/metrics (default: off;\n"
	"                              no auth: use 127.0.0.1)\n"
	"      --ctl PATH              control socket for `sipstack ctl`\n"
	"                              (default: $RUNTIME_DIRECTORY/ctl under\n"
	"                              systemd, e.g. /run/sipstack/ctl; else\n"
	"                              none)\n"
	"      --no-ctl                no control socket\n"
	"  -c, --check                 load and validate the script, then exit\n"
	"  -h, --help                  this text\n"
	"  -V, --version               print the version\n"
	"\n"
	"Signals: SIGHUP reloads the script; SIGINT/SIGTERM stop.\n");
}


static int parse_listen(struct cli *cli, const char *arg)
{
	struct pl proto, rest;
	enum sip_transp tp;

	if (cli->lsnrc >= ARRAY_SIZE(cli->lsnr))
		return EOVERFLOW;

	if (re_regex(arg, strlen(arg), "[a-z]+:[^]+", &proto, &rest))
		return EINVAL;

	if (!pl_strcasecmp(&proto, "udp"))
		tp = SIP_TRANSP_UDP;
	else if (!pl_strcasecmp(&proto, "tcp"))
		tp = SIP_TRANSP_TCP;
	else if (!pl_strcasecmp(&proto, "tls"))
		tp = SIP_TRANSP_TLS;
	else if (!pl_strcasecmp(&proto, "ws"))
		tp = SIP_TRANSP_WS;
	else if (!pl_strcasecmp(&proto, "wss"))
		tp = SIP_TRANSP_WSS;
	else
		return EPROTONOSUPPORT;

	if (sa_decode(&cli->lsnr[cli->lsnrc].addr, rest.p, rest.l))
		return EINVAL;

	/* the listener's address is what our Via, Contact and
	 * Record-Route carry (libre's msg->dst): a wildcard cannot be */
	if (sa_is_any(&cli->lsnr[cli->lsnrc].addr))
		return EADDRNOTAVAIL;

	cli->lsnr[cli->lsnrc].tp = tp;
	++cli->lsnrc;

	return 0;
}


static int parse_uint(const char *s, uint32_t min, uint32_t max,
		      uint32_t *v)
{
	char *end;
	unsigned long n = strtoul(s, &end, 10);

	if (!*s || *end || n < min || n > max)
		return EINVAL;

	*v = (uint32_t)n;

	return 0;
}


static int parse_args(struct cli *cli, int argc, char *argv[],
		      const char **script)
{
	enum { O_TLS_CERT = 256, O_TLS_KEY, O_TLS_CA, O_LOG_LEVEL,
	       O_LOG_FORMAT, O_UA, O_LIP, O_MF, O_T1, O_T2, O_T4, O_DNS,
	       O_NOBATCH, O_METRICS, O_CTL, O_NO_CTL };
	static const struct option opts[] = {
		{"listen",       required_argument, NULL, 'l'},
		{"tls-cert",     required_argument, NULL, O_TLS_CERT},
		{"tls-key",      required_argument, NULL, O_TLS_KEY},
		{"tls-ca",       required_argument, NULL, O_TLS_CA},
		{"log-level",    required_argument, NULL, O_LOG_LEVEL},
		{"log-format",   required_argument, NULL, O_LOG_FORMAT},
		{"user-agent",   required_argument, NULL, O_UA},
		{"local-ip",     required_argument, NULL, O_LIP},
		{"max-forwards", required_argument, NULL, O_MF},
		{"t1",           required_argument, NULL, O_T1},
		{"t2",           required_argument, NULL, O_T2},
		{"t4",           required_argument, NULL, O_T4},
		{"dns-server",   required_argument, NULL, O_DNS},
		{"no-udp-batch", no_argument,       NULL, O_NOBATCH},
		{"metrics",      required_argument, NULL, O_METRICS},
		{"ctl",          required_argument, NULL, O_CTL},
		{"no-ctl",       no_argument,       NULL, O_NO_CTL},
		{"check",        no_argument,       NULL, 'c'},
		{"help",         no_argument,       NULL, 'h'},
		{"version",      no_argument,       NULL, 'V'},
		{NULL, 0, NULL, 0}
	};
	enum log_level lvl;
	struct sa lip;
	int c, err;

	while ((c = getopt_long(argc, argv, "l:chV", opts, NULL)) != -1) {
		switch (c) {
		case 'l':
			err = parse_listen(cli, optarg);
			if (err == EADDRNOTAVAIL) {
				(void)fprintf(stderr, "sipstack: --listen %s: "
					      "a wildcard address (0.0.0.0, "
					      "::) cannot be a listener: its "
					      "address goes into Via, Contact "
					      "and Record-Route; give the "
					      "address peers reach (one "
					      "--listen per address)\n",
					      optarg);
				return 2;
			}
			else if (err) {
				(void)fprintf(stderr, "sipstack: --listen %s: "
					      "expected udp:, tcp:, tls:, "
					      "ws: or wss:IP:PORT "
					      "(at most 8)\n", optarg);
				return 2;
			}
			break;
		case O_TLS_CERT: cli->tls.cert = optarg; break;
		case O_TLS_KEY:  cli->tls.key = optarg; break;
		case O_TLS_CA:   cli->tls.ca = optarg; break;
		case O_LOG_LEVEL:
			if (log_level_parse(&lvl, optarg)) {
				(void)fprintf(stderr, "sipstack: --log-level "
					      "%s: expected debug, info, warn"
					      " or error\n", optarg);
				return 2;
			}
			log_set_level(lvl);
			break;
		case O_LOG_FORMAT:
			if (!strcmp(optarg, "json"))
				log_set_format(LOG_FMT_JSON);
			else if (!strcmp(optarg, "logfmt"))
				log_set_format(LOG_FMT_LOGFMT);
			else {
				(void)fprintf(stderr, "sipstack: --log-format"
					      " %s: expected logfmt or json\n",
					      optarg);
				return 2;
			}
			break;
		case O_UA:
			str_ncpy(cli->cfg.user_agent, optarg,
				 sizeof(cli->cfg.user_agent));
			cli->ua = true;
			break;
		case O_LIP:
			str_ncpy(cli->cfg.local_ip, optarg,
				 sizeof(cli->cfg.local_ip));
			cli->lip = true;
			if (!sa_set_str(&lip, optarg, 0) && sa_is_any(&lip)) {
				(void)fprintf(stderr, "sipstack: --local-ip "
					      "%s: a wildcard: give the "
					      "address peers reach\n",
					      optarg);
				return 2;
			}
			break;
		case O_MF:
		case O_T1:
		case O_T2:
		case O_T4: {
			uint32_t v;
			uint32_t max = c == O_MF ? 255 : 600000;

			if (parse_uint(optarg, 1, max, &v)) {
				(void)fprintf(stderr, "sipstack: %s: expected "
					      "an integer in 1..%u\n",
					      argv[optind - 1], max);
				return 2;
			}
			if (c == O_MF) {
				cli->cfg.max_forwards = v;
				cli->mf = true;
			}
			else if (c == O_T1) {
				cli->cfg.t1 = v;
				cli->t1 = true;
			}
			else if (c == O_T2) {
				cli->cfg.t2 = v;
				cli->t2 = true;
			}
			else {
				cli->cfg.t4 = v;
				cli->t4 = true;
			}
			break;
		}
		case O_NOBATCH:
			udpbatch_enable(false);
			break;

		case O_METRICS:
			if (sa_decode(&cli->metrics_addr, optarg,
				      strlen(optarg)) ||
			    !sa_port(&cli->metrics_addr)) {
				(void)fprintf(stderr, "sipstack: --metrics %s: "
					      "expected IP:PORT (e.g. "
					      "127.0.0.1:9090, [::1]:9090), "
					      "port 1-65535\n", optarg);
				return 2;
			}
			cli->metrics = optarg;
			break;

		case O_CTL:
			if (!*optarg) {
				(void)fprintf(stderr, "sipstack: --ctl: expected "
					      "the path of a socket (or "
					      "--no-ctl)\n");
				return 2;
			}
			cli->ctl = optarg;
			cli->no_ctl = false;
			break;

		case O_NO_CTL:
			cli->no_ctl = true;
			cli->ctl = NULL;
			break;

		case O_DNS: {
			struct sa sa;
			size_t n = strlen(cli->cfg.dns_servers);

			if ((sa_decode(&sa, optarg, strlen(optarg)) &&
			     sa_set_str(&sa, optarg, 53)) ||
			    n + strlen(optarg) + 2 >
			    sizeof(cli->cfg.dns_servers)) {
				(void)fprintf(stderr, "sipstack: --dns-server "
					      "%s: expected IP or IP:PORT\n",
					      optarg);
				return 2;
			}
			(void)re_snprintf(cli->cfg.dns_servers + n,
					  sizeof(cli->cfg.dns_servers) - n,
					  "%s%s", n ? " " : "", optarg);
			cli->dns = true;
			break;
		}
		case 'c':
			cli->check = true;
			break;
		case 'h':
			usage(stdout);
			return 1;
		case 'V':
			(void)printf("sipstack %s (libre %s; allocator %s: "
				     "malloc from %s)\n", SIPSTACK_VERSION,
				     sys_libre_version_get(),
				     SIPSTACK_ALLOCATOR, malloc_origin());
			return 1;
		default:
			usage(stderr);
			return 2;
		}
	}

	/* wss: is libre's HTTPS server, which reads one PEM file */
	for (c = 0; c < (int)cli->lsnrc; c++) {
		if (cli->lsnr[c].tp != SIP_TRANSP_WSS)
			continue;
		if (!cli->tls.cert ||
		    (cli->tls.key && strcmp(cli->tls.key, cli->tls.cert))) {
			(void)re_fprintf(stderr, "sipstack: --listen wss:%J: "
				      "needs --tls-cert FILE holding the "
				      "certificate chain and the key (no "
				      "separate --tls-key)\n",
				      &cli->lsnr[c].addr);
			return 2;
		}
	}

	if (optind != argc - 1) {
		(void)fprintf(stderr, "sipstack: exactly one SCRIPT.lua "
			      "expected\n");
		usage(stderr);
		return 2;
	}

	*script = argv[optind];

	return 0;
}


static void apply_cli(struct stack_config *cfg, void *arg)
{
	const struct cli *cli = arg;

	if (cli->ua)
		str_ncpy(cfg->user_agent, cli->cfg.user_agent,
			 sizeof(cfg->user_agent));
	if (cli->lip)
		str_ncpy(cfg->local_ip, cli->cfg.local_ip,
			 sizeof(cfg->local_ip));
	if (cli->mf)
		cfg->max_forwards = cli->cfg.max_forwards;
	if (cli->t1)
		cfg->t1 = cli->cfg.t1;
	if (cli->t2)
		cfg->t2 = cli->cfg.t2;
	if (cli->t4)
		cfg->t4 = cli->cfg.t4;
	if (cli->dns)
		str_ncpy(cfg->dns_servers, cli->cfg.dns_servers,
			 sizeof(cfg->dns_servers));
	if (cfg->t2 < cfg->t1)
		cfg->t2 = cfg->t1;
}


static void signal_handler(int flags, void *arg)
{
	struct signalfd_siginfo si;
	(void)flags;
	(void)arg;

	while (read(app.sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		switch (si.ssi_signo) {
		case SIGHUP:
			slog(LOG_INFO, "main", "sighup", NULL, NULL);
			(void)luart_reload(app.rt, NULL, 0);
			break;
		case SIGINT:
		case SIGTERM:
			if (app.stopping)
				break;
			app.stopping = true;
			slog(LOG_INFO, "main", "stopping", NULL, "signal=%s",
			     si.ssi_signo == SIGINT ? "INT" : "TERM");
			re_cancel();
			break;
		default:
			break;
		}
	}
}


static int signals_setup(void)
{
	sigset_t set;

	(void)signal(SIGPIPE, SIG_IGN);

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	if (sigprocmask(SIG_BLOCK, &set, NULL))
		return errno;

	app.sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (app.sigfd < 0)
		return errno;

	return fd_listen(app.sigfd, FD_READ, signal_handler, NULL);
}


static int listeners_setup(struct stack *st, const struct cli *cli)
{
	const struct stack_config *cfg = stack_config(st);
	const char *ip = cfg->local_ip[0] ? cfg->local_ip : "127.0.0.1";
	struct sa addr;
	size_t i;
	int err = 0;

	for (i = 0; i < cli->lsnrc && !err; i++)
		err = stack_listen(st, cli->lsnr[i].tp, &cli->lsnr[i].addr,
				   cli->lsnr[i].tp == SIP_TRANSP_TLS ||
				   cli->lsnr[i].tp == SIP_TRANSP_WSS ?
				   &cli->tls : NULL);
	if (cli->lsnrc)
		return err;

	/* from the script's config, else the default */
	if (cfg->udp_port) {
		err |= sa_set_str(&addr, ip, cfg->udp_port);
		err |= stack_listen(st, SIP_TRANSP_UDP, &addr, NULL);
	}
	if (cfg->tcp_port) {
		err |= sa_set_str(&addr, ip, cfg->tcp_port);
		err |= stack_listen(st, SIP_TRANSP_TCP, &addr, NULL);
	}
	if (cfg->tls_port) {
		err |= sa_set_str(&addr, ip, cfg->tls_port);
		err |= stack_listen(st, SIP_TRANSP_TLS, &addr, &cli->tls);
	}
	if (!cfg->udp_port && !cfg->tcp_port && !cfg->tls_port) {
		err |= sa_set_str(&addr, "127.0.0.1", 5060);
		err |= stack_listen(st, SIP_TRANSP_UDP, &addr, NULL);
	}

	return err;
}


/* The calls and subscriptions in flight: the call manager (calls/) and
 * the events service (events/) are above the core, so their figures are
 * wired in here */
static int sessions_collect(struct mbuf *mb, void *arg)
{
	const struct stack *st = arg;
	int err;

	err = metrics_one(mb, "sipstack_calls", METRICS_GAUGE,
			  "Calls (INVITE sessions) of the call manager "
			  "alive: setting up, established or ending.",
			  callmgr_count(st));
	err |= metrics_one(mb, "sipstack_subscriptions", METRICS_GAUGE,
			   "Subscriptions (RFC 6665, REFER's implicit ones "
			   "included) alive, both roles.",
			   events_count(st));
	return err;
}


/* --metrics: the endpoint on the loop, refused at start when it cannot
 * listen (what and where on stderr, exit 1) */
static int metrics_setup(const struct cli *cli)
{
	struct sa laddr;
	int err;

	err = metrics_collector_add(&app.mc_sessions, stack_metrics(app.st),
				    sessions_collect, app.st);
	if (err || !cli->metrics)
		return err;

	err = metrics_http_listen(&app.mhttp, stack_metrics(app.st),
				  &cli->metrics_addr);
	if (err) {
		(void)fprintf(stderr, "sipstack: --metrics %s: cannot listen "
			      "there: %s\n", cli->metrics, strerror(err));
		return err;
	}

	if (metrics_http_laddr(app.mhttp, &laddr))
		laddr = cli->metrics_addr;
	slog(LOG_INFO, "metrics", "listen", NULL, "addr=%J url=http://%J/"
	     "metrics", &laddr, &laddr);
	if (!sa_is_loopback(&laddr))
		slog(LOG_WARN, "metrics", "not_loopback", NULL, "addr=%J "
		     "why=%H", &laddr, log_q, "no authentication: whoever "
		     "reaches this address reads the metrics");

	return 0;
}


/* ------------------------------------------------------------------ *
 * The control socket: what only the program knows, for ctl_cmds.c
 * ------------------------------------------------------------------ */

static int ctl_reload(char *errbuf, size_t errsz, uint32_t *genp, void *arg)
{
	int err;
	(void)arg;

	err = luart_reload(app.rt, errbuf, errsz);
	*genp = luart_generation(app.rt);

	return err;
}


static int ctl_stats(struct odict **odp, void *arg)
{
	(void)arg;

	return luart_stats(odp, app.rt);
}


static struct regsvc *ctl_registrar(void *arg)
{
	(void)arg;

	return luart_registrar(app.rt);
}


/* drain: the last call ended; exit 0 as after SIGTERM */
static void ctl_drained(void *arg)
{
	(void)arg;

	if (app.stopping)
		return;

	app.stopping = true;
	slog(LOG_INFO, "main", "stopping", NULL, "reason=drained");
	re_cancel();
}


/* Where the socket goes: --ctl, else systemd's RuntimeDirectory= (the
 * first of its list), else nowhere (a server started by hand has none
 * unless asked: two of them would fight over one default path) */
static int ctl_setup(const struct cli *cli, char *path, size_t sz)
{
	static const struct ctl_cmds_handlers hs = {
		.reloadh = ctl_reload,
		.statsh = ctl_stats,
		.registrarh = ctl_registrar,
		.drainedh = ctl_drained,
	};
	const char *rd = getenv("RUNTIME_DIRECTORY");
	int err;

	if (cli->no_ctl)
		return 0;

	if (cli->ctl)
		str_ncpy(path, cli->ctl, sz);
	else if (rd && *rd)
		(void)re_snprintf(path, sz, "%b/ctl", rd, strcspn(rd, ":"));
	else
		return 0;

	err = ctl_listen(&app.ctl, path, CTL_MODE);
	if (err) {
		(void)fprintf(stderr, "sipstack: --ctl %s: cannot make the "
			      "control socket there: %s\n", path,
			      err == EADDRINUSE ? "another server answers "
			      "on it" : err == EEXIST ? "the file exists and "
			      "is not a socket" : strerror(err));
		return err;
	}

	err = ctl_cmds_alloc(&app.ctlcmds, app.ctl, app.st, &hs, NULL);
	if (err)
		return err;

	slog(LOG_INFO, "ctl", "listen", NULL, "path=%H mode=0%u%u%u", log_q,
	     path, (CTL_MODE >> 6) & 7, (CTL_MODE >> 3) & 7, CTL_MODE & 7);

	return 0;
}


static int check_script(const char *path, struct cli *cli)
{
	struct stack_config cfg;
	char errbuf[1024] = "";
	int err;

	stack_config_default(&cfg);
	err = luart_check(path, &cfg, errbuf, sizeof(errbuf));
	if (err) {
		(void)fprintf(stderr, "%s\n", errbuf);
		return 1;
	}

	apply_cli(&cfg, cli);
	(void)printf("%s: ok\n", path);

	return 0;
}


int main(int argc, char *argv[])
{
	struct cli cli;
	struct stack_config cfg;
	const char *script = NULL;
	struct rlimit rl;
	char ctlpath[256];
	int err, ret = 1;

	/* server/libre_ext/ replaces libre 1.1 functions: refuse another */
	if (libre_ext_version_require())
		return 1;

	/* `sipstack user ...`: the users table, no server */
	if (argc >= 2 && !strcmp(argv[1], "user"))
		return auth_user_cli(argc - 1, argv + 1);

	/* `sipstack ctl ...`: a request to a running server */
	if (argc >= 2 && !strcmp(argv[1], "ctl"))
		return ctl_cli(argc - 1, argv + 1);

	memset(&cli, 0, sizeof(cli));
	err = parse_args(&cli, argc, argv, &script);
	if (err)
		return err == 1 ? 0 : 2;

	/* many TCP/TLS peers: raise the fd limit before libre sizes its
	 * fd table (fd_setsize must precede the first fd_listen) */
	if (!getrlimit(RLIMIT_NOFILE, &rl) && rl.rlim_cur < MAX_FDS) {
		rl.rlim_cur = rl.rlim_max < MAX_FDS ? rl.rlim_max : MAX_FDS;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}

	err = libre_init();
	if (err) {
		(void)fprintf(stderr, "sipstack: libre_init: %s\n",
			      strerror(err));
		return 1;
	}
	(void)fd_setsize(MAX_FDS);
	log_libre_attach();

	if (cli.check) {
		ret = check_script(script, &cli);
		goto out;
	}
	libre_ext_rand_warm();

	err = signals_setup();
	if (err) {
		slog(LOG_ERROR, "main", "signals_failed", NULL, "err=%m", err);
		goto out;
	}

	stack_config_default(&cfg);
	apply_cli(&cfg, &cli);
	err = stack_alloc(&app.st, &cfg);
	if (err) {
		slog(LOG_ERROR, "main", "stack_failed", NULL, "err=%m", err);
		goto out;
	}

	/* the call manager, a service of the stack; EPROTO: a call or
	 * dialog FSM table does not match its enums (calls/callfsm.c) */
	err = callmgr_start(app.st);
	if (err) {
		slog(LOG_ERROR, "main", "stack_failed", NULL, "err=%m", err);
		goto out;
	}

	err = metrics_setup(&cli);
	if (err)
		goto out;

	err = luart_alloc(&app.rt, app.st, script, apply_cli, &cli);
	if (err) {
		(void)fprintf(stderr, "sipstack: %s: the script did not load "
			      "(see the error above)\n", script);
		goto out;
	}

	err = listeners_setup(app.st, &cli);
	if (err) {
		slog(LOG_ERROR, "main", "bad_listener", NULL, "err=%m", err);
		goto out;
	}

	err = stack_start(app.st);
	if (err) {
		slog(LOG_ERROR, "main", "start_failed", NULL, "err=%m", err);
		goto out;
	}

	err = ctl_setup(&cli, ctlpath, sizeof(ctlpath));
	if (err)
		goto out;

	luart_start(app.rt);

	slog(LOG_INFO, "main", "started", NULL, "version=%s script=%H "
	     "pid=%d malloc=%s", SIPSTACK_VERSION, log_q, script,
	     (int)getpid(), malloc_origin());

	err = re_main(NULL);
	ret = err ? 1 : 0;

	slog(LOG_INFO, "main", "stopped", NULL, NULL);

 out:
	/* calls end first (BYE/CANCEL), while the scripts can still hear
	 * of it; then the scripts; then the stack */
	app.ctl = mem_deref(app.ctl);
	app.ctlcmds = mem_deref(app.ctlcmds);
	stack_stop(app.st);
	app.mhttp = mem_deref(app.mhttp);
	app.mc_sessions = mem_deref(app.mc_sessions);
	app.rt = mem_deref(app.rt);
	app.st = mem_deref(app.st);
	callfsm_close();
	if (app.sigfd >= 0) {
		fd_close(app.sigfd);
		(void)close(app.sigfd);
	}
	libre_close();
	tmr_debug();
	mem_debug();

	return ret;
}
