/**
 * test/unit/test_ctl.c  The control socket (server/core/ctl.c)
 *
 * Made on a temporary path, talked to by raw clients in the same loop:
 * the file's mode, the refusals (a live server on the path, a path that
 * is not a socket, too long), a stale socket replaced, one answer per
 * line in order (an op answered later holds the lines after it), the id
 * echoed, an op freed unanswered answered "internal", a second answer
 * refused, the client gone before its answer, the file removed when
 * the ctl is freed. TAP output; leaks: run under valgrind by meson.
 */
#include <string.h>
#include <stdlib.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <re.h>
#include "sipstack.h"

#include "testutil.h"


/* ------------------------------------------------------------------ *
 * Commands of the test
 * ------------------------------------------------------------------ */

static struct tmr tmr_later;
static struct ctl_op *later_op;
static int twice_err;


static void cmd_echo(struct ctl_op *op, const struct odict *req, void *arg)
{
	struct odict *o;
	(void)arg;

	if (odict_alloc(&o, 4))
		return;
	(void)ctl_odict_str(o, "x", odict_string(req, "x"));
	(void)ctl_odict_str(o, "cmd", ctl_op_cmd(op));
	(void)ctl_op_reply(op, o);
	mem_deref(o);
}


static void later_answer(void *arg)
{
	(void)arg;

	(void)ctl_op_error(later_op, "late", "answered %d ms later", 50);
	later_op = mem_deref(later_op);
}


static void cmd_later(struct ctl_op *op, const struct odict *req, void *arg)
{
	(void)req;
	(void)arg;

	later_op = mem_ref(op);
	tmr_start(&tmr_later, 50, later_answer, NULL);
}


static void cmd_silent(struct ctl_op *op, const struct odict *req, void *arg)
{
	(void)op;
	(void)req;
	(void)arg;
}


static void cmd_twice(struct ctl_op *op, const struct odict *req, void *arg)
{
	(void)req;
	(void)arg;

	(void)ctl_op_reply(op, NULL);
	twice_err = ctl_op_reply(op, NULL);
}


/* ------------------------------------------------------------------ *
 * A raw client in the loop
 * ------------------------------------------------------------------ */

struct client {
	int fd;
	char buf[65536];
	size_t len;
	unsigned want;     /* lines to read before re_cancel */
	unsigned lines;
	bool closed;
};


static void client_handler(int flags, void *arg)
{
	struct client *c = arg;
	ssize_t n;
	(void)flags;

	n = recv(c->fd, c->buf + c->len, sizeof(c->buf) - 1 - c->len, 0);
	if (n <= 0) {
		c->closed = true;
		fd_close(c->fd);
		re_cancel();
		return;
	}
	c->len += (size_t)n;
	c->buf[c->len] = '\0';

	c->lines = 0;
	for (size_t i = 0; i < c->len; i++)
		c->lines += c->buf[i] == '\n';

	if (c->lines >= c->want)
		re_cancel();
}


static int client_open(struct client *c, const char *path)
{
	struct sockaddr_un un;

	memset(c, 0, sizeof(*c));
	memset(&un, 0, sizeof(un));
	un.sun_family = AF_UNIX;
	str_ncpy(un.sun_path, path, sizeof(un.sun_path));

	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		return errno;
	if (connect(c->fd, (struct sockaddr *)&un, sizeof(un)))
		return errno;

	return fd_listen(c->fd, FD_READ, client_handler, c);
}


static void client_close(struct client *c)
{
	if (c->fd < 0)
		return;
	fd_close(c->fd);
	(void)close(c->fd);
	c->fd = -1;
}


/* sends s, runs the loop until want lines in all came (or 3 s) */
static bool exchange(struct client *c, const char *s, unsigned want)
{
	c->want = want;
	if (send(c->fd, s, strlen(s), MSG_NOSIGNAL) != (ssize_t)strlen(s))
		return false;

	return run_loop(3000) && c->lines >= want;
}


/* ------------------------------------------------------------------ *
 * Tests
 * ------------------------------------------------------------------ */

static void test_ctl(const char *dir)
{
	char path[256], file[256], lng[200];
	struct ctl *ctl = NULL, *ctl2 = NULL;
	struct client c;
	struct stat sb;
	char *nl;
	int err;

	(void)re_snprintf(path, sizeof(path), "%s/ctl.sock", dir);
	(void)re_snprintf(file, sizeof(file), "%s/file", dir);

	err = ctl_listen(&ctl, path, 0600);
	CHECK(!err && ctl, "ctl_listen makes the socket");
	if (err)
		return;
	CHECK(!lstat(path, &sb) && S_ISSOCK(sb.st_mode) &&
	      (sb.st_mode & 0777) == 0600, "a socket file, mode 0600");
	CHECK(!strcmp(ctl_path(ctl), path), "ctl_path");

	CHECK(!ctl_command_add(ctl, "echo", cmd_echo, NULL) &&
	      !ctl_command_add(ctl, "later", cmd_later, NULL) &&
	      !ctl_command_add(ctl, "silent", cmd_silent, NULL) &&
	      !ctl_command_add(ctl, "twice", cmd_twice, NULL),
	      "four commands added");
	CHECK(ctl_command_add(ctl, "echo", cmd_echo, NULL) == EALREADY,
	      "the same name again: EALREADY");
	{
		char dbg[256];

		(void)re_snprintf(dbg, sizeof(dbg), "%H", ctl_debug, ctl);
		CHECK(strstr(dbg, "clients=0 commands=echo,later,silent,"
			     "twice") != NULL, "ctl_debug (%H)");
	}

	/* refusals */
	CHECK(ctl_listen(&ctl2, path, 0600) == EADDRINUSE && !ctl2,
	      "a live server on the path: EADDRINUSE");
	{
		FILE *f = fopen(file, "w");

		if (f)
			(void)fclose(f);
	}
	CHECK(ctl_listen(&ctl2, file, 0600) == EEXIST && !ctl2,
	      "a path that is not a socket: EEXIST");
	memset(lng, 'a', sizeof(lng) - 1);
	lng[sizeof(lng) - 1] = '\0';
	CHECK(ctl_listen(&ctl2, lng, 0600) == ENAMETOOLONG,
	      "a path longer than sun_path: ENAMETOOLONG");

	/* in order, the id echoed, an op answered later holding the rest */
	err = client_open(&c, path);
	CHECK(!err, "a client connects");
	CHECK(exchange(&c, "{\"cmd\":\"later\",\"id\":1}\n"
		       "{\"cmd\":\"echo\",\"x\":\"a\",\"id\":\"two\"}\n", 2),
	      "two answers to two lines");
	nl = strchr(c.buf, '\n');
	CHECK(nl && !strncmp(c.buf, "{\"id\":1,\"ok\":false,\"error\":"
			     "{\"code\":\"late\"", 37) &&
	      !strcmp(nl + 1, "{\"id\":\"two\",\"ok\":true,\"result\":"
		      "{\"x\":\"a\",\"cmd\":\"echo\"}}\n"),
	      "the later answer first, then the echo (ids echoed)");

	c.len = 0;
	CHECK(exchange(&c, "{\"cmd\":\"silent\"}\n{\"cmd\":\"twice\"}\n", 2) &&
	      strstr(c.buf, "\"code\":\"internal\"") &&
	      strstr(c.buf, "{\"ok\":true,\"result\":{}}\n") &&
	      twice_err == EALREADY,
	      "an op left unanswered: internal; a second answer: EALREADY");

	c.len = 0;
	CHECK(exchange(&c, "{\"cmd\":\"nope\"}\nnot json\n\n\r\n"
		       "{\"cmd\":\"echo\"}\n", 3) &&
	      strstr(c.buf, "unknown_command") &&
	      strstr(c.buf, "bad_json") &&
	      strstr(c.buf, "\"x\":\"\""),
	      "unknown command, bad JSON, empty lines skipped, then served");
	client_close(&c);

	/* the client goes before its answer */
	err = client_open(&c, path);
	CHECK(!err && send(c.fd, "{\"cmd\":\"later\"}\n", 16, 0) == 16,
	      "a client asks for a later answer");
	c.want = 1000;
	(void)run_loop(20);     /* the server reads it */
	client_close(&c);
	CHECK(later_op != NULL && run_loop(200) == false && !later_op,
	      "it leaves; the answer comes to nobody, nothing breaks");
	CHECK(ctl_clients(ctl) == 0, "no client left");

	/* a line too long */
	err = client_open(&c, path);
	{
		char big[9000];

		memset(big, ' ', sizeof(big) - 1);
		big[0] = '{';
		big[sizeof(big) - 1] = '\0';
		CHECK(!err && exchange(&c, big, 1) &&
		      strstr(c.buf, "line_too_long"),
		      "9000 bytes without a newline: line_too_long");
	}
	c.want = 1000;
	(void)run_loop(500);
	CHECK(c.closed, "and the server closed the connection");
	client_close(&c);

	ctl = mem_deref(ctl);
	CHECK(lstat(path, &sb) && errno == ENOENT,
	      "the socket file is removed with the ctl");

	/* a stale socket file is replaced */
	{
		struct sockaddr_un un;
		int fd = socket(AF_UNIX, SOCK_STREAM, 0);

		memset(&un, 0, sizeof(un));
		un.sun_family = AF_UNIX;
		str_ncpy(un.sun_path, path, sizeof(un.sun_path));
		err = bind(fd, (struct sockaddr *)&un, sizeof(un));
		(void)close(fd);
	}
	CHECK(!err && !ctl_listen(&ctl, path, 0660) && !lstat(path, &sb) &&
	      (sb.st_mode & 0777) == 0660,
	      "a stale socket is replaced (mode 0660)");
	ctl = mem_deref(ctl);

	(void)unlink(file);
}


int main(void)
{
	char dir[] = "/tmp/sipstack-test-ctl-XXXXXX";
	int err;

	err = libre_init();
	if (err)
		return 1;

	log_set_level(LOG_WARN);
	tmr_init(&watchdog);
	tmr_init(&tmr_later);

	if (!mkdtemp(dir)) {
		printf("not ok 1 - mkdtemp\n1..1\n");
		return 1;
	}

	test_ctl(dir);

	(void)rmdir(dir);
	tmr_cancel(&tmr_later);
	libre_close();

	printf("1..%d\n", ntest);

	return nfail ? 1 : 0;
}
