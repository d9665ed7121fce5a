/**
 * server/cli_ctl.c  `sipstack ctl`: the control client
 *
 * Owns nothing that lives: it turns its command line into one request
 * line of JSON, sends it to a running server's control socket
 * (server/core/ctl.c), waits for the answer line (bounded by
 * --timeout) and prints it, as text or (--json) as it came. Exposes
 * ctl_cli() in sipstack.h. Uses libre's odict and JSON codec only; the
 * protocol is docs/ctl.md.
 *
 * Exit codes: 0 the server did it; 1 it answered an error (printed on
 * stderr with its code); 2 usage; 3 no server answers at the socket
 * (not running, no permission, or no answer in time).
 */
#include <string.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <re.h>
#include "sipstack.h"


enum {
	ANSWER_MAX = 64 * 1024 * 1024,
	DEPTH      = 8,
	TIMEOUT_S  = 30,
};

static const char socket_default[] = "/run/sipstack/ctl";


static void usage(FILE *f)
{
	(void)fprintf(f,
	"usage: sipstack ctl [--socket PATH] [--json] [--timeout S] COMMAND\n"
	"\n"
	"Asks a running sipstack through its control socket (--ctl).\n"
	"\n"
	"  stats                       the server's figures (as sip.stats())\n"
	"  reload                      reload the script (as SIGHUP); tells\n"
	"                              the script's error, file and line\n"
	"  calls                       the calls in flight\n"
	"  calls hangup CALL-ID        end that call (BYE, CANCEL or 603)\n"
	"  location show AOR           the bindings of an address of record\n"
	"  location remove AOR         remove them all\n"
	"  log-level [LEVEL]           debug, info, warn or error (none: tell)\n"
	"  drain [--retry-after S]     new INVITEs get 503 (Retry-After: S,\n"
	"                              60); the server exits 0 once the calls\n"
	"                              in flight have ended\n"
	"\n"
	"  --socket PATH               the server's --ctl (default:\n"
	"                              $SIPSTACK_CTL, else %s)\n"
	"  --json                      print the answer's JSON line as is\n"
	"  --timeout S                 wait at most S seconds (%d)\n"
	"\n"
	"Exit status: 0 done, 1 the server answered an error, 2 usage,\n"
	"3 no server answers on the socket.\n", socket_default, TIMEOUT_S);
}


/* ------------------------------------------------------------------ *
 * The request
 * ------------------------------------------------------------------ */

/* argv (after the options) as the request object, or a usage error */
static int build_request(struct odict **reqp, int argc, char *argv[])
{
	const char *cmd = argc > 0 ? argv[0] : NULL;
	const char *name = NULL, *key = NULL, *val = NULL;
	int64_t retry = -1;
	struct odict *o;
	int err;

	if (!cmd)
		return EINVAL;

	if ((!strcmp(cmd, "stats") || !strcmp(cmd, "reload")) && argc == 1) {
		name = cmd;
	}
	else if (!strcmp(cmd, "calls") && argc == 1) {
		name = "calls";
	}
	else if (!strcmp(cmd, "calls") && argc == 3 &&
		 !strcmp(argv[1], "hangup")) {
		name = "calls.hangup";
		key = "call";
		val = argv[2];
	}
	else if (!strcmp(cmd, "location") && argc == 3 &&
		 (!strcmp(argv[1], "show") || !strcmp(argv[1], "remove"))) {
		name = argv[1][0] == 's' ? "location.show" : "location.remove";
		key = "aor";
		val = argv[2];
	}
	else if (!strcmp(cmd, "log-level") && argc <= 2) {
		name = cmd;
		key = argc == 2 ? "level" : NULL;
		val = argc == 2 ? argv[1] : NULL;
	}
	else if (!strcmp(cmd, "drain") && argc == 1) {
		name = cmd;
	}
	else if (!strcmp(cmd, "drain") && argc == 3 &&
		 !strcmp(argv[1], "--retry-after")) {
		char *end;
		long n = strtol(argv[2], &end, 10);

		if (!*argv[2] || *end || n < 0 || n > 86400)
			return EINVAL;
		name = cmd;
		retry = n;
	}
	else {
		return EINVAL;
	}

	err = odict_alloc(&o, 4);
	if (err)
		return err;

	err = odict_entry_add(o, "cmd", ODICT_STRING, name);
	if (!err && key)
		err = odict_entry_add(o, key, ODICT_STRING, val);
	if (!err && retry >= 0)
		err = odict_entry_add(o, "retry_after", ODICT_INT, retry);

	if (err)
		mem_deref(o);
	else
		*reqp = o;

	return err ? ENOMEM : 0;
}


/* ------------------------------------------------------------------ *
 * The exchange
 * ------------------------------------------------------------------ */

static int connect_to(const char *path)
{
	struct sockaddr_un un;
	int fd;

	memset(&un, 0, sizeof(un));
	un.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(un.sun_path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(un.sun_path, path, strlen(path));

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;

	if (connect(fd, (struct sockaddr *)&un, sizeof(un))) {
		int e = errno;

		(void)close(fd);
		errno = e;
		return -1;
	}

	return fd;
}


/* Waits up to deadline (ms of tmr_jiffies) for fd to be ready */
static int wait_fd(int fd, short events, uint64_t deadline)
{
	for (;;) {
		struct pollfd p = {.fd = fd, .events = events};
		uint64_t now = tmr_jiffies();
		int n;

		if (now >= deadline)
			return ETIMEDOUT;

		n = poll(&p, 1, (int)(deadline - now));
		if (n > 0)
			return 0;
		if (n < 0 && errno != EINTR)
			return errno;
	}
}


static int send_all(int fd, const char *buf, size_t len, uint64_t deadline)
{
	while (len) {
		ssize_t n;
		int err = wait_fd(fd, POLLOUT, deadline);

		if (err)
			return err;

		n = send(fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n < 0)
			return errno;
		buf += n;
		len -= (size_t)n;
	}

	return 0;
}


/* One line (without its newline) into mb */
static int recv_line(int fd, struct mbuf *mb, uint64_t deadline)
{
	for (;;) {
		uint8_t buf[65536];
		uint8_t *nl;
		ssize_t n;
		int err = wait_fd(fd, POLLIN, deadline);

		if (err)
			return err;

		n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n < 0)
			return errno;
		if (n == 0)
			return ECONNRESET;   /* closed before the whole line */

		nl = memchr(buf, '\n', (size_t)n);
		err = mbuf_write_mem(mb, buf, nl ? (size_t)(nl - buf) :
				     (size_t)n);
		if (err)
			return err;
		if (nl)
			return 0;
		if (mb->end > ANSWER_MAX)
			return EFBIG;
	}
}


/* ------------------------------------------------------------------ *
 * Printing an answer as text
 * ------------------------------------------------------------------ */

static void print_value(const struct odict_entry *e, bool quote)
{
	switch (e->type) {
	case ODICT_STRING:
		if (quote && (!*e->u.str || strpbrk(e->u.str, " \t\"=")))
			(void)printf("\"%s\"", e->u.str);
		else
			(void)printf("%s", e->u.str);
		break;
	case ODICT_INT:
		(void)printf("%lld", (long long)e->u.integer);
		break;
	case ODICT_DOUBLE:
		(void)printf("%g", e->u.dbl);
		break;
	case ODICT_BOOL:
		(void)printf("%s", e->u.boolean ? "true" : "false");
		break;
	case ODICT_NULL:
		(void)printf("null");
		break;
	default:
		(void)printf("...");
		break;
	}
}


/* An object's scalars as "key value" lines; an array of objects as one
 * line each, key=value (logfmt, as the server's log) */
static void print_result(const struct odict *res)
{
	struct le *le, *le2;

	LIST_FOREACH(&res->lst, le) {
		const struct odict_entry *e = le->data;

		if (e->type == ODICT_OBJECT) {
			(void)printf("%s:\n", e->key);
			print_result(e->u.odict);
			continue;
		}
		if (e->type != ODICT_ARRAY) {
			(void)printf("%-18s ", e->key);
			print_value(e, false);
			(void)printf("\n");
			continue;
		}

		LIST_FOREACH(&e->u.odict->lst, le2) {
			const struct odict_entry *el = le2->data;
			struct le *le3;
			bool first = true;

			if (el->type != ODICT_OBJECT) {
				print_value(el, true);
				(void)printf("\n");
				continue;
			}
			LIST_FOREACH(&el->u.odict->lst, le3) {
				const struct odict_entry *f = le3->data;

				(void)printf("%s%s=", first ? "" : " ",
					     f->key);
				print_value(f, true);
				first = false;
			}
			(void)printf("\n");
		}
	}
}


static const char *str(const char *s)
{
	return s ? s : "";
}


static uint64_t num(const struct odict *o, const char *key)
{
	uint64_t n = 0;

	(void)odict_get_number(o, &n, key);

	return n;
}


static void print_answer(const char *cmd, const struct odict *res)
{
	if (!strcmp(cmd, "reload")) {
		(void)printf("reloaded (script generation %llu)\n",
			     (unsigned long long)num(res, "generation"));
	}
	else if (!strcmp(cmd, "calls.hangup")) {
		(void)printf("hung up %llu call(s)\n",
			     (unsigned long long)num(res, "hungup"));
	}
	else if (!strcmp(cmd, "location.remove")) {
		(void)printf("removed %llu binding(s) of %s\n",
			     (unsigned long long)num(res, "removed"),
			     str(odict_string(res, "aor")));
	}
	else if (!strcmp(cmd, "log-level")) {
		(void)printf("log level %s (was %s)\n",
			     str(odict_string(res, "level")),
			     str(odict_string(res, "previous")));
	}
	else if (!strcmp(cmd, "drain")) {
		(void)printf("draining: %llu call(s) in flight; new INVITEs "
			     "get 503; the server exits once they have "
			     "ended\n", (unsigned long long)num(res, "calls"));
	}
	else if (!strcmp(cmd, "location.show") && !num(res, "count")) {
		(void)printf("%s: no bindings\n", str(odict_string(res, "aor")));
	}
	else {
		print_result(res);
	}
}


/* ------------------------------------------------------------------ *
 * ctl_cli
 * ------------------------------------------------------------------ */

int ctl_cli(int argc, char *argv[])
{
	const char *path = getenv("SIPSTACK_CTL");
	struct odict *req = NULL, *ans = NULL;
	const struct odict_entry *e;
	struct mbuf *mb = NULL;
	bool json = false;
	uint32_t timeout = TIMEOUT_S;
	uint64_t deadline;
	const char *cmd;
	int i, fd = -1, rc = 3, err;

	if (!path || !*path)
		path = socket_default;

	/* options before the command (drain's --retry-after is its own) */
	for (i = 1; i < argc && argv[i][0] == '-'; i++) {
		const char *arg = argv[i];

		if (!strcmp(arg, "-h") || !strcmp(arg, "--help")) {
			usage(stdout);
			return 0;
		}
		else if (!strcmp(arg, "--json")) {
			json = true;
		}
		else if (!strcmp(arg, "--socket") || !strcmp(arg, "--timeout")) {
			if (i + 1 >= argc) {
				(void)fprintf(stderr, "sipstack ctl: %s needs "
					      "a value\n", arg);
				return 2;
			}
			if (arg[2] == 's') {
				path = argv[++i];
			}
			else {
				char *end;
				unsigned long n = strtoul(argv[++i], &end, 10);

				if (!*argv[i] || *end || !n || n > 3600) {
					(void)fprintf(stderr, "sipstack ctl: "
						      "--timeout: expected "
						      "seconds, 1..3600\n");
					return 2;
				}
				timeout = (uint32_t)n;
			}
		}
		else if (!strncmp(arg, "--socket=", 9)) {
			path = arg + 9;
		}
		else {
			(void)fprintf(stderr, "sipstack ctl: unknown option "
				      "%s\n", arg);
			usage(stderr);
			return 2;
		}
	}

	err = build_request(&req, argc - i, argv + i);
	if (err) {
		if (err == EINVAL)
			usage(stderr);
		else
			(void)fprintf(stderr, "sipstack ctl: %s\n",
				      strerror(err));
		return 2;
	}
	cmd = odict_string(req, "cmd");

	fd = connect_to(path);
	if (fd < 0) {
		int ce = errno;

		(void)fprintf(stderr, "sipstack ctl: %s: %s\n", path,
			      ce == ENOENT ? "no control socket there: is the "
			      "server running, with --ctl at this path?" :
			      ce == ECONNREFUSED ? "nothing answers there: the "
			      "server is not running (a stale socket)" :
			      ce == EACCES ? "permission denied: run as the "
			      "server's user or a member of its group" :
			      strerror(ce));
		goto out;
	}

	mb = mbuf_alloc(4096);
	if (!mb) {
		err = ENOMEM;
		goto failed;
	}

	deadline = tmr_jiffies() + (uint64_t)timeout * 1000;
	err = mbuf_printf(mb, "%H\n", json_encode_odict, req);
	if (!err)
		err = send_all(fd, (char *)mb->buf, mb->end, deadline);
	if (!err) {
		mbuf_rewind(mb);
		err = recv_line(fd, mb, deadline);
	}
	if (err)
		goto failed;

	if (json) {
		(void)fwrite(mb->buf, 1, mb->end, stdout);
		(void)fputc('\n', stdout);
		(void)fflush(stdout);
	}

	err = json_decode_odict(&ans, 32, (char *)mb->buf, mb->end, DEPTH);
	if (err || !ans) {
		(void)fprintf(stderr, "sipstack ctl: %s: the server's answer "
			      "is not JSON\n", path);
		goto out;
	}

	e = odict_get_type(ans, ODICT_BOOL, "ok");
	if (!e || !e->u.boolean) {
		const struct odict_entry *er;

		er = odict_get_type(ans, ODICT_OBJECT, "error");
		(void)fprintf(stderr, "sipstack ctl: %s: %s: %s\n", cmd,
			      er ? str(odict_string(er->u.odict, "code")) : "?",
			      er ? str(odict_string(er->u.odict, "message")) :
			      "the server said no");
		rc = 1;
		goto out;
	}

	rc = 0;
	if (!json) {
		e = odict_get_type(ans, ODICT_OBJECT, "result");
		if (e)
			print_answer(cmd, e->u.odict);
	}
	goto out;

 failed:
	(void)fprintf(stderr, "sipstack ctl: %s: %s\n", path,
		      err == ETIMEDOUT ? "no answer in time (--timeout)" :
		      err == ECONNRESET ? "the server closed the connection" :
		      strerror(err));
 out:
	if (fd >= 0)
		(void)close(fd);
	mem_deref(mb);
	mem_deref(req);
	mem_deref(ans);

	return rc;
}
