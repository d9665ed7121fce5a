/**
 * server/core/metrics_http.c  The /metrics endpoint
 *
 * Owns struct metrics_http: libre's HTTP server (a TCP listener on the
 * loop, no thread) answering GET /metrics with the exposition of one
 * registry. Exposes metrics_http_listen() and metrics_http_laddr() in
 * sipcore.h. Uses libre's http_listen/http_reply and metrics.c.
 *
 * Nothing here blocks the loop: the page is written into an mbuf from
 * figures in memory (and procfs), and libre's tcp_send queues what the
 * socket does not take at once. There is no authentication and no TLS:
 * whoever reaches the address reads the figures (no Call-ID, user or
 * address is in them, but traffic volumes are), so the program's
 * --metrics is off by default and documented as 127.0.0.1 (main.c
 * warns when the address is not a loopback one).
 */
#include <string.h>
#include <re.h>
#include "sipcore.h"


struct metrics_http {
	struct http_sock *sock;
	struct metrics *m;         /* referenced                        */
};

static const char ctype[] = "text/plain; version=0.0.4; charset=utf-8";


static void destructor(void *arg)
{
	struct metrics_http *mh = arg;

	mem_deref(mh->sock);
	mem_deref(mh->m);
}


static void text_reply(struct http_conn *conn, uint16_t scode,
		       const char *reason, const char *hdrs, const char *body)
{
	(void)http_reply(conn, scode, reason,
			 "%s"
			 "Content-Type: text/plain; charset=utf-8\r\n"
			 "Content-Length: %zu\r\n"
			 "\r\n"
			 "%s",
			 hdrs ? hdrs : "", strlen(body), body);
}


static void req_handler(struct http_conn *conn, const struct http_msg *msg,
			void *arg)
{
	struct metrics_http *mh = arg;
	struct mbuf *mb;
	int err;

	if (pl_strcmp(&msg->path, "/metrics")) {
		text_reply(conn, 404, "Not Found", NULL,
			   "not found: the metrics are at /metrics\n");
		return;
	}

	if (pl_strcmp(&msg->met, "GET")) {
		text_reply(conn, 405, "Method Not Allowed", "Allow: GET\r\n",
			   "method not allowed: GET /metrics\n");
		return;
	}

	mb = mbuf_alloc(32768);
	err = mb ? metrics_write(mb, mh->m) : ENOMEM;
	if (err) {
		slog(LOG_WARN, "metrics", "scrape_failed", NULL, "err=%m",
		     err);
		text_reply(conn, 500, "Internal Server Error", NULL,
			   "the metrics could not be written\n");
		mem_deref(mb);
		return;
	}

	err = http_reply(conn, 200, "OK",
			 "Content-Type: %s\r\n"
			 "Content-Length: %zu\r\n"
			 "\r\n"
			 "%b",
			 ctype, mb->end, mb->buf, mb->end);
	if (err)
		slog(LOG_DEBUG, "metrics", "reply_failed", NULL, "err=%m",
		     err);
	mem_deref(mb);
}


int metrics_http_listen(struct metrics_http **hp, struct metrics *m,
			const struct sa *laddr)
{
	struct metrics_http *mh;
	int err;

	if (!hp || !m || !laddr)
		return EINVAL;

	mh = mem_zalloc(sizeof(*mh), destructor);
	if (!mh)
		return ENOMEM;

	mh->m = mem_ref(m);

	err = http_listen(&mh->sock, laddr, req_handler, mh);
	if (err) {
		mem_deref(mh);
		return err;
	}

	*hp = mh;

	return 0;
}


int metrics_http_laddr(const struct metrics_http *mh, struct sa *laddr)
{
	if (!mh || !laddr)
		return EINVAL;

	return tcp_sock_local_get(http_sock_tcp(mh->sock), laddr);
}
