/**
 * server/core/ctl.c  The control socket
 *
 * Owns struct ctl (a listening Unix stream socket, the commands added
 * to it, its clients), struct ctl_conn (one client: what it sent that
 * is not a whole line yet, what we have not written yet) and struct
 * ctl_op (one request being answered). Exposes ctl_*() in sipcore.h.
 * Uses libre's fd_listen (the loop), odict and its JSON codec; knows no
 * command: the program adds them (server/ctl_cmds.c, docs/ctl.md).
 *
 * Nothing here blocks the loop: every socket is non-blocking, a read
 * takes what is there, a write what the socket accepts (the rest waits
 * for FD_WRITE). What a client can cost is bounded: CTL_LINE_MAX bytes
 * of input not yet a line (more: "line_too_long" and the client is
 * closed), CTL_OUT_MAX bytes of answers it does not read (more: closed),
 * CTL_CLIENTS_MAX clients (the next one is told "busy" and closed),
 * CTL_IDLE_MS without a request (closed). A line that is not JSON gets
 * "bad_json" and the client may go on. One request at a time per
 * client: lines that arrive while an op is pending wait in the input.
 *
 * Who may connect is the socket file's mode and owner (ctl_listen
 * chmods it): the server's user, and its group with 0660.
 */
#include <string.h>
#include <unistd.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <re.h>
#include "sipcore.h"


enum {
	CTL_OUT_MAX  = 16 * 1024 * 1024,
	CTL_CMDS_MAX = 16,
	CTL_DEPTH    = 8,          /* JSON nesting of a request          */
	CTL_BACKLOG  = 64,         /* not accepted yet (the bound on the
				    * clients is applied at accept)      */
};

struct ctl_cmd {
	const char *name;
	ctl_cmd_h *h;
	void *arg;
};

struct ctl {
	int fd;
	char *path;
	dev_t dev;                 /* the socket file we made, so that  */
	ino_t ino;                 /* we never unlink another one       */
	struct list conns;
	struct ctl_cmd cmdv[CTL_CMDS_MAX];
	size_t cmdc;
};

struct ctl_conn {
	struct le le;
	struct ctl *ctl;
	int fd;
	char in[CTL_LINE_MAX];
	size_t inlen;
	struct mbuf *out;          /* answers not written yet, or NULL  */
	struct ctl_op *op;         /* the request being answered        */
	struct tmr tmr_idle;
	bool closing;              /* close once out is written         */
	bool processing;           /* inside conn_process               */
};

struct ctl_op {
	struct ctl_conn *conn;     /* weak: NULL once the client left   */
	char *cmd;
	struct odict *id;          /* {"id": the request's id} or NULL  */
	bool answered;
};


static void conn_close(struct ctl_conn *conn);
static void conn_process(struct ctl_conn *conn);
static void idle_timeout(void *arg);
static void conn_handler(int flags, void *arg);


/* ------------------------------------------------------------------ *
 * Writing answers
 * ------------------------------------------------------------------ */

static void conn_flush(struct ctl_conn *conn)
{
	struct mbuf *mb = conn->out;

	while (mb && mbuf_get_left(mb)) {
		ssize_t n = send(conn->fd, mbuf_buf(mb), mbuf_get_left(mb),
				 MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (n <= 0) {
			conn_close(conn);
			return;
		}
		mbuf_advance(mb, n);
	}

	if (mb && !mbuf_get_left(mb))
		conn->out = mem_deref(conn->out);

	if (!conn->out && conn->closing) {
		conn_close(conn);
		return;
	}

	/* watch for room only while something waits */
	(void)fd_listen(conn->fd, FD_READ | (conn->out ? FD_WRITE : 0),
			conn_handler, conn);
}


/* Queues one line (obj as JSON) and writes what the socket takes */
static int conn_send(struct ctl_conn *conn, const struct odict *obj)
{
	struct mbuf *mb = conn->out;
	size_t pos;
	int err;

	if (!mb) {
		mb = conn->out = mbuf_alloc(512);
		if (!mb)
			return ENOMEM;
	}

	/* append after what waits */
	pos = mb->pos;
	mb->pos = mb->end;
	err = mbuf_printf(mb, "%H\n", json_encode_odict, obj);
	mb->pos = pos;
	if (err)
		return err;

	if (mbuf_get_left(mb) > CTL_OUT_MAX) {
		slog(LOG_WARN, "ctl", "client_dropped", NULL, "why=%H",
		     log_q, "does not read its answers");
		conn_close(conn);
		return EOVERFLOW;
	}

	conn_flush(conn);

	return 0;
}


static int add_error(struct odict *o, const char *code, const char *msg)
{
	struct odict *e;
	int err;

	err = odict_alloc(&e, 4);
	if (err)
		return err;

	err  = ctl_odict_bool(o, "ok", false);
	err |= ctl_odict_str(e, "code", code);
	err |= ctl_odict_str(e, "message", msg);
	err |= odict_entry_add(o, "error", ODICT_OBJECT, e);
	mem_deref(e);

	return err;
}


/* An error that belongs to no op (bad JSON, too long, busy) */
static void conn_error(struct ctl_conn *conn, const char *code,
		       const char *msg)
{
	struct odict *o;

	if (odict_alloc(&o, 4))
		return;

	if (!add_error(o, code, msg))
		(void)conn_send(conn, o);
	mem_deref(o);
}


/* ------------------------------------------------------------------ *
 * Ops
 * ------------------------------------------------------------------ */

static int op_answer(struct ctl_op *op, const struct odict *result,
		     const char *code, const char *msg)
{
	struct ctl_conn *conn;
	struct odict *o, *empty = NULL;
	const struct odict_entry *id;
	int err;

	if (!op)
		return EINVAL;
	if (op->answered)
		return EALREADY;

	op->answered = true;
	conn = op->conn;
	if (!conn)
		return 0;          /* the client left: nothing to say */

	err = odict_alloc(&o, 8);
	if (err) {
		/* no answer possible: the client must not wait for it */
		conn->op = NULL;
		op->conn = NULL;
		conn_close(conn);
		return err;
	}

	id = op->id ? odict_lookup(op->id, "id") : NULL;
	if (id) {
		switch (id->type) {
		case ODICT_STRING:
			err = ctl_odict_str(o, "id", id->u.str);
			break;
		case ODICT_INT:
			err = ctl_odict_int(o, "id", id->u.integer);
			break;
		default:
			break;
		}
	}

	if (code) {
		err |= add_error(o, code, msg);
	}
	else {
		if (!result) {
			err |= odict_alloc(&empty, 1);
			result = empty;
		}
		err |= ctl_odict_bool(o, "ok", true);
		if (result)
			err |= odict_entry_add(o, "result", ODICT_OBJECT,
					       result);
	}

	/* the client may read on and send its next request */
	conn->op = NULL;
	op->conn = NULL;

	mem_ref(conn);   /* conn_send may close it */
	if (!err)
		err = conn_send(conn, o);
	else
		conn_error(conn, "internal", "the answer could not be "
			   "written");
	mem_deref(empty);
	mem_deref(o);

	/* answered later (not from inside line_handle, whose loop goes
	 * on by itself): the lines that waited are next */
	if (!conn->processing)
		conn_process(conn);
	mem_deref(conn);

	return err;
}


static void op_destructor(void *arg)
{
	struct ctl_op *op = arg;

	if (!op->answered)
		(void)op_answer(op, NULL, "internal", "the command did not "
				"answer");
	if (op->conn)
		op->conn->op = NULL;
	mem_deref(op->cmd);
	mem_deref(op->id);
}


int ctl_op_reply(struct ctl_op *op, const struct odict *result)
{
	return op_answer(op, result, NULL, NULL);
}


int ctl_op_error(struct ctl_op *op, const char *code, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	(void)re_vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);

	return op_answer(op, NULL, code ? code : "internal", msg);
}


const char *ctl_op_cmd(const struct ctl_op *op)
{
	return op ? op->cmd : NULL;
}


/* ------------------------------------------------------------------ *
 * Reading requests
 * ------------------------------------------------------------------ */

static const struct ctl_cmd *cmd_find(const struct ctl *ctl,
				      const char *name)
{
	size_t i;

	for (i = 0; i < ctl->cmdc; i++) {
		if (!strcmp(ctl->cmdv[i].name, name))
			return &ctl->cmdv[i];
	}

	return NULL;
}


static void line_handle(struct ctl_conn *conn, const char *line, size_t len)
{
	const struct ctl_cmd *cmd;
	const struct odict_entry *e;
	struct odict *req = NULL;
	struct ctl_op *op;

	/* libre's decoder takes a bare word for an empty object: a
	 * request is an object, so it starts with '{' */
	while (len && (*line == ' ' || *line == '\t')) {
		++line;
		--len;
	}
	if (!len || *line != '{' ||
	    json_decode_odict(&req, 16, line, len, CTL_DEPTH) || !req) {
		conn_error(conn, "bad_json", "expected one JSON object per "
			   "line");
		return;
	}

	op = mem_zalloc(sizeof(*op), op_destructor);
	if (!op) {
		conn_error(conn, "internal", "out of memory");
		goto out;
	}

	op->conn = conn;
	conn->op = op;

	/* the id first, so that every answer carries it */
	e = odict_lookup(req, "id");
	if (e && (e->type == ODICT_STRING || e->type == ODICT_INT) &&
	    !odict_alloc(&op->id, 1)) {
		if (e->type == ODICT_STRING)
			(void)ctl_odict_str(op->id, "id", e->u.str);
		else
			(void)ctl_odict_int(op->id, "id", e->u.integer);
	}

	e = odict_get_type(req, ODICT_STRING, "cmd");
	if (!e) {
		(void)ctl_op_error(op, "bad_request", "no \"cmd\": expected "
				   "{\"cmd\": \"stats\"} and the like");
		goto out;
	}

	(void)str_dup(&op->cmd, e->u.str);
	cmd = cmd_find(conn->ctl, e->u.str);
	if (!cmd) {
		(void)ctl_op_error(op, "unknown_command", "no command %H",
				   log_q, e->u.str);
		goto out;
	}

	slog(LOG_DEBUG, "ctl", "request", NULL, "cmd=%s", cmd->name);
	cmd->h(op, req, cmd->arg);

 out:
	mem_deref(op);   /* the handler holds a reference if it waits */
	mem_deref(req);
}


/* Handles the whole lines in the input, one op at a time; never
 * nested (an op answered inside its handler lets the loop go on) */
static void conn_process_lines(struct ctl_conn *conn);
static void conn_process(struct ctl_conn *conn)
{
	if (conn->processing)
		return;

	conn->processing = true;
	mem_ref(conn);
	conn_process_lines(conn);
	conn->processing = false;
	mem_deref(conn);
}


static void conn_process_lines(struct ctl_conn *conn)
{
	while (!conn->op && !conn->closing && conn->fd >= 0) {
		char *nl = memchr(conn->in, '\n', conn->inlen);
		size_t len, used;

		if (!nl) {
			if (conn->inlen >= sizeof(conn->in)) {
				conn->inlen = 0;
				conn_error(conn, "line_too_long", "a request "
					   "line is at most 8192 bytes");
				if (conn->fd < 0)
					return;
				conn->closing = true;
				conn_flush(conn);
			}
			return;
		}

		used = nl - conn->in + 1;
		len = used - 1;
		if (len && conn->in[len - 1] == '\r')
			--len;

		tmr_start(&conn->tmr_idle, CTL_IDLE_MS, idle_timeout, conn);

		if (len) {
			/* keep the line: the handler may answer inside */
			char line[CTL_LINE_MAX];

			memcpy(line, conn->in, len);
			memmove(conn->in, conn->in + used,
				conn->inlen - used);
			conn->inlen -= used;

			line_handle(conn, line, len);
		}
		else {
			memmove(conn->in, conn->in + used,
				conn->inlen - used);
			conn->inlen -= used;
		}
	}
}


static void idle_timeout(void *arg)
{
	struct ctl_conn *conn = arg;

	if (conn->op) {
		/* a command still works for it: wait */
		tmr_start(&conn->tmr_idle, CTL_IDLE_MS, idle_timeout, conn);
		return;
	}

	slog(LOG_DEBUG, "ctl", "client_idle", NULL, NULL);
	conn_close(conn);
}


static void conn_handler(int flags, void *arg)
{
	struct ctl_conn *conn = arg;

	if (flags & FD_WRITE) {
		mem_ref(conn);
		conn_flush(conn);
		if (conn->fd < 0) {
			mem_deref(conn);
			return;
		}
		mem_deref(conn);
	}

	if (!(flags & (FD_READ | FD_EXCEPT)))
		return;

	for (;;) {
		ssize_t n;

		if (conn->inlen >= sizeof(conn->in)) {
			/* full: the pending op must answer first, or the
			 * line is too long (conn_process tells) */
			break;
		}

		n = recv(conn->fd, conn->in + conn->inlen,
			 sizeof(conn->in) - conn->inlen, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (n <= 0) {
			/* gone (or reset): whatever it waited for is
			 * dropped when answered */
			conn_close(conn);
			return;
		}
		conn->inlen += (size_t)n;
		if (conn->inlen >= sizeof(conn->in))
			break;
	}

	tmr_start(&conn->tmr_idle, CTL_IDLE_MS, idle_timeout, conn);

	mem_ref(conn);
	conn_process(conn);
	if (conn->fd >= 0 && conn->op && conn->inlen >= sizeof(conn->in)) {
		/* pipelining more than a line's worth behind an op */
		conn->inlen = 0;
		conn_error(conn, "line_too_long", "a request line is at most "
			   "8192 bytes");
		if (conn->fd >= 0) {
			conn->closing = true;
			conn_flush(conn);
		}
	}
	mem_deref(conn);
}


/* ------------------------------------------------------------------ *
 * Clients
 * ------------------------------------------------------------------ */

static void conn_destructor(void *arg)
{
	struct ctl_conn *conn = arg;

	tmr_cancel(&conn->tmr_idle);
	list_unlink(&conn->le);
	if (conn->op) {
		conn->op->conn = NULL;
		conn->op = NULL;
	}
	if (conn->fd >= 0) {
		fd_close(conn->fd);
		(void)close(conn->fd);
	}
	mem_deref(conn->out);
}


/* Closes the socket and frees the client (its list reference); safe
 * to call from its own handlers, which hold a reference around it */
static void conn_close(struct ctl_conn *conn)
{
	if (conn->fd < 0)
		return;

	fd_close(conn->fd);
	(void)close(conn->fd);
	conn->fd = -1;
	tmr_cancel(&conn->tmr_idle);
	if (conn->op) {
		conn->op->conn = NULL;
		conn->op = NULL;
	}
	conn->out = mem_deref(conn->out);
	list_unlink(&conn->le);
	mem_deref(conn);
}


static void accept_handler(int flags, void *arg)
{
	struct ctl *ctl = arg;
	(void)flags;

	for (;;) {
		struct ctl_conn *conn;
		int fd = accept4(ctl->fd, NULL, NULL,
				 SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				slog(LOG_WARN, "ctl", "accept_failed", NULL,
				     "err=%m", errno);
			return;
		}

		if (list_count(&ctl->conns) >= CTL_CLIENTS_MAX) {
			static const char busy[] = "{\"ok\":false,\"error\":"
				"{\"code\":\"busy\",\"message\":\"too many "
				"control clients\"}}\n";

			/* best effort: the socket is new, its buffer empty */
			(void)send(fd, busy, sizeof(busy) - 1,
				   MSG_NOSIGNAL | MSG_DONTWAIT);
			(void)close(fd);
			slog(LOG_WARN, "ctl", "busy", NULL, "clients=%u",
			     list_count(&ctl->conns));
			continue;
		}

		conn = mem_zalloc(sizeof(*conn), conn_destructor);
		if (!conn) {
			(void)close(fd);
			return;
		}

		conn->ctl = ctl;
		conn->fd = fd;
		tmr_init(&conn->tmr_idle);
		list_append(&ctl->conns, &conn->le, conn);

		if (fd_listen(fd, FD_READ, conn_handler, conn)) {
			conn_close(conn);
			continue;
		}
		tmr_start(&conn->tmr_idle, CTL_IDLE_MS, idle_timeout, conn);
	}
}


/* ------------------------------------------------------------------ *
 * The socket
 * ------------------------------------------------------------------ */

static void ctl_destructor(void *arg)
{
	struct ctl *ctl = arg;
	struct le *le;

	le = list_head(&ctl->conns);
	while (le) {
		struct ctl_conn *conn = le->data;

		le = le->next;
		conn_close(conn);
	}

	if (ctl->fd >= 0) {
		struct stat sb;

		fd_close(ctl->fd);
		(void)close(ctl->fd);

		/* only the file we made: a newer server may own the path */
		if (ctl->path && !lstat(ctl->path, &sb) &&
		    sb.st_dev == ctl->dev && sb.st_ino == ctl->ino)
			(void)unlink(ctl->path);
	}

	mem_deref(ctl->path);
}


/* A socket file at path: EADDRINUSE when a server answers there,
 * 0 after removing a stale one, EEXIST when it is not a socket */
static int stale_remove(const struct sockaddr_un *un)
{
	struct stat sb;
	int fd, err = 0;

	if (lstat(un->sun_path, &sb))
		return 0;

	if (!S_ISSOCK(sb.st_mode))
		return EEXIST;

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return errno;

	if (!connect(fd, (const struct sockaddr *)un, sizeof(*un)))
		err = EADDRINUSE;
	else if (errno == ECONNREFUSED || errno == ENOENT)
		err = unlink(un->sun_path) && errno != ENOENT ? errno : 0;
	else
		err = errno;

	(void)close(fd);

	return err;
}


int ctl_listen(struct ctl **ctlp, const char *path, unsigned mode)
{
	struct sockaddr_un un;
	struct ctl *ctl;
	struct stat sb;
	int err;

	if (!ctlp || !path || !*path)
		return EINVAL;

	memset(&un, 0, sizeof(un));
	un.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(un.sun_path))
		return ENAMETOOLONG;
	memcpy(un.sun_path, path, strlen(path));

	ctl = mem_zalloc(sizeof(*ctl), ctl_destructor);
	if (!ctl)
		return ENOMEM;

	ctl->fd = -1;
	err = str_dup(&ctl->path, path);
	if (err)
		goto out;

	err = stale_remove(&un);
	if (err)
		goto out;

	ctl->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
			 0);
	if (ctl->fd < 0) {
		err = errno;
		goto out;
	}

	if (bind(ctl->fd, (struct sockaddr *)&un, sizeof(un))) {
		err = errno;
		(void)close(ctl->fd);
		ctl->fd = -1;
		goto out;
	}

	/* ours from here: the destructor unlinks it */
	if (lstat(path, &sb)) {
		err = errno;
		goto out;
	}
	ctl->dev = sb.st_dev;
	ctl->ino = sb.st_ino;

	/* bind made it with the umask's mode, chmod sets ours; between
	 * the two nobody is listening yet, so nobody is served */
	if (chmod(path, mode & 0777) || listen(ctl->fd, CTL_BACKLOG)) {
		err = errno;
		goto out;
	}

	err = fd_listen(ctl->fd, FD_READ, accept_handler, ctl);

 out:
	if (err)
		mem_deref(ctl);
	else
		*ctlp = ctl;

	return err;
}


int ctl_command_add(struct ctl *ctl, const char *name, ctl_cmd_h *h,
		    void *arg)
{
	if (!ctl || !name || !h)
		return EINVAL;

	if (cmd_find(ctl, name))
		return EALREADY;

	if (ctl->cmdc >= ARRAY_SIZE(ctl->cmdv))
		return EOVERFLOW;

	ctl->cmdv[ctl->cmdc].name = name;
	ctl->cmdv[ctl->cmdc].h = h;
	ctl->cmdv[ctl->cmdc].arg = arg;
	++ctl->cmdc;

	return 0;
}


const char *ctl_path(const struct ctl *ctl)
{
	return ctl ? ctl->path : NULL;
}


uint32_t ctl_clients(const struct ctl *ctl)
{
	return ctl ? list_count(&ctl->conns) : 0;
}


int ctl_debug(struct re_printf *pf, const struct ctl *ctl)
{
	size_t i;
	int err;

	if (!ctl)
		return re_hprintf(pf, "ctl: none");

	err = re_hprintf(pf, "ctl: path=%s clients=%u commands=", ctl->path,
			 list_count(&ctl->conns));
	for (i = 0; i < ctl->cmdc; i++)
		err |= re_hprintf(pf, "%s%s", i ? "," : "",
				  ctl->cmdv[i].name);

	return err;
}


/* ------------------------------------------------------------------ *
 * odict helpers: odict_entry_add's varargs take the type's own width
 * ------------------------------------------------------------------ */

int ctl_odict_str(struct odict *o, const char *key, const char *val)
{
	return odict_entry_add(o, key, ODICT_STRING, val ? val : "");
}


int ctl_odict_int(struct odict *o, const char *key, int64_t val)
{
	return odict_entry_add(o, key, ODICT_INT, val);
}


int ctl_odict_bool(struct odict *o, const char *key, bool val)
{
	return odict_entry_add(o, key, ODICT_BOOL, (int)val);
}
