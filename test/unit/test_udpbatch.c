/**
 * test/unit/test_udpbatch.c  libre_ext/udpbatch.c under libre's own UDP code
 *
 * A libre UDP socket (udp_listen) made while the batcher is armed gets
 * bursts of datagrams from a plain socket; its receive handler answers each
 * with udp_send. Checked: every datagram reaches libre once, in order, with
 * its bytes and source intact (also a 60,000-byte one); the replies all
 * leave, in order; a burst is read with fewer recvmmsg calls than
 * datagrams and its replies leave with fewer sendmmsg calls; a send
 * outside a batch (from a timer) leaves at once; a socket made while
 * disarmed is left alone; a socket with a filter (the stack's rate
 * limiter) hands libre only what the filter lets through, in order, and
 * asks it once per datagram; a socket closed from inside its own handler
 * is freed without touching freed memory (valgrind runs this test too).
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <poll.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <re.h>
#include "udpbatch.h"
#include "testutil.h"


enum { N = 300, BIG = 60000 };

struct rx {
	struct udp_sock *us;
	unsigned n;             /* datagrams seen */
	bool order;             /* seq numbers came in order */
	bool src_ok;
	bool big_ok;
	unsigned expect;        /* stop after this many */
	bool close_in_handler;
	struct sa peer;
	size_t last_len;
};


static void recv_h(const struct sa *src, struct mbuf *mb, void *arg)
{
	struct rx *rx = arg;
	const size_t len = mbuf_get_left(mb);
	unsigned seq = 0;

	rx->last_len = len;
	if (len == BIG) {
		size_t i;

		rx->big_ok = true;
		for (i = 0; i < len; i++)
			rx->big_ok &= mb->buf[mb->pos + i] == (uint8_t)(i * 7);
	}
	else if (len >= 4 && len < 4096) {
		memcpy(&seq, mbuf_buf(mb), 4);
		if (seq != rx->n)
			rx->order = false;
	}
	rx->src_ok &= sa_cmp(src, &rx->peer, SA_ALL);
	++rx->n;

	/* echo: the reply goes through sendto() inside the batch */
	(void)udp_send(rx->us, src, mb);

	if (rx->close_in_handler) {
		rx->us = mem_deref(rx->us);
		re_cancel();
		return;
	}

	if (rx->n == rx->expect)
		re_cancel();
}


static int client_socket(struct sa *local)
{
	struct sockaddr_in a;
	socklen_t al = sizeof(a);
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	int big = 4 << 20;

	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
	(void)bind(fd, (struct sockaddr *)&a, sizeof(a));
	(void)getsockname(fd, (struct sockaddr *)&a, &al);
	sa_set_in(local, ntohl(a.sin_addr.s_addr), ntohs(a.sin_port));

	return fd;
}


static void send_to(int fd, const struct sa *dst, const void *p, size_t l)
{
	(void)sendto(fd, p, l, 0, &dst->u.sa, dst->len);
}


/* read replies until none for 300 ms; count them and check their order */
static unsigned read_replies(int fd, bool *order, bool *big)
{
	static uint8_t buf[65536];
	unsigned n = 0, seq;
	struct pollfd p = {.fd = fd, .events = POLLIN};

	*order = true;
	while (poll(&p, 1, 300) == 1) {
		ssize_t r = recv(fd, buf, sizeof(buf), 0);

		if (r == BIG) {
			*big = true;
			continue;
		}
		if (r < 4)
			continue;
		memcpy(&seq, buf, 4);
		if (seq != n)
			*order = false;
		++n;
	}

	return n;
}


/* refuses one source address and port (the tests' "flooder") */
struct filt {
	struct sa bad;
	unsigned asked;
};

static bool filter_h(const struct sa *src, void *arg)
{
	struct filt *f = arg;

	++f->asked;

	return !sa_cmp(src, &f->bad, SA_ALL);
}


static void late_send(void *arg)
{
	struct rx *rx = arg;
	struct mbuf *mb = mbuf_alloc(8);
	unsigned seq = 0;

	(void)mbuf_write_mem(mb, (uint8_t *)&seq, 4);
	mb->pos = 0;
	(void)udp_send(rx->us, &rx->peer, mb);
	mem_deref(mb);
	re_cancel();
}


int main(void)
{
	struct udpbatch_stats s0, s1;
	struct rx rx;
	struct sa laddr, srv, cl;
	struct tmr t;
	int err, fd;
	unsigned i, got;
	size_t cut_len = 0;
	bool order, big = false;
	uint8_t *bigbuf;

	printf("TAP version 13\n");
	err = libre_init();
	CHECK(!err, "libre_init");

	memset(&rx, 0, sizeof(rx));
	rx.order = rx.src_ok = true;
	fd = client_socket(&cl);
	rx.peer = cl;

	(void)sa_set_str(&laddr, "127.0.0.1", 0);
	udpbatch_arm(true);
	err = udp_listen(&rx.us, &laddr, recv_h, &rx);
	udpbatch_arm(false);
	(void)udp_local_get(rx.us, &srv);
	(void)udp_sockbuf_set(rx.us, 4 << 20);
	CHECK(!err && udpbatch_active(udp_sock_fd(rx.us, AF_INET)),
	      "a UDP socket made while armed is batched");

	/* a burst, queued before the loop runs */
	for (i = 0; i < N; i++)
		send_to(fd, &srv, &i, 4);
	bigbuf = malloc(BIG);
	for (i = 0; i < BIG; i++)
		bigbuf[i] = (uint8_t)(i * 7);

	udpbatch_stats(&s0);
	rx.expect = N;
	CHECK(run_loop(5000), "the loop saw the whole burst");
	udpbatch_stats(&s1);

	CHECK(rx.n == N && rx.order && rx.src_ok,
	      "every datagram reached libre once, in order, with its source");
	printf("# %llu datagrams in %llu recvmmsg calls, %llu replies in "
	       "%llu sendmmsg calls\n",
	       (unsigned long long)(s1.rx_datagrams - s0.rx_datagrams),
	       (unsigned long long)(s1.recvmmsg_calls - s0.recvmmsg_calls),
	       (unsigned long long)(s1.tx_datagrams - s0.tx_datagrams),
	       (unsigned long long)(s1.sendmmsg_calls - s0.sendmmsg_calls));
	CHECK(s1.rx_datagrams - s0.rx_datagrams == N &&
	      s1.recvmmsg_calls - s0.recvmmsg_calls < N / 4,
	      "the burst was read in batches (recvmmsg)");
	CHECK(s1.tx_datagrams - s0.tx_datagrams == N &&
	      s1.sendmmsg_calls - s0.sendmmsg_calls < N / 4 &&
	      s1.tx_dropped == s0.tx_dropped,
	      "the replies left in batches (sendmmsg), none dropped");

	got = read_replies(fd, &order, &big);
	CHECK(got == N && order, "every reply arrived, in order");

	/* bigger than libre's receive buffer (8 KiB by default): cut to it,
	 * as recvfrom() cuts it without the batcher */
	send_to(fd, &srv, bigbuf, BIG);
	rx.expect = rx.n + 1;
	rx.big_ok = false;
	CHECK(run_loop(5000) && rx.n == N + 1 && rx.last_len == 8192,
	      "a datagram over libre's 8 KiB buffer is cut to it");
	cut_len = rx.last_len;
	(void)read_replies(fd, &order, &big);

	/* a datagram near the UDP maximum, bytes intact both ways */
	udp_rxsz_set(rx.us, 65536);
	big = false;
	send_to(fd, &srv, bigbuf, BIG);
	rx.expect = rx.n + 1;
	CHECK(run_loop(5000) && rx.big_ok,
	      "a 60,000-byte datagram reaches libre intact");
	got = read_replies(fd, &order, &big);
	CHECK(big, "and its 60,000-byte reply leaves intact");

	/* outside a batch (a timer), sendto goes straight out */
	udpbatch_stats(&s0);
	tmr_init(&t);
	tmr_start(&t, 1, late_send, &rx);
	(void)run_loop(2000);
	udpbatch_stats(&s1);
	got = read_replies(fd, &order, &big);
	CHECK(got == 1 && s1.tx_datagrams == s0.tx_datagrams,
	      "a send from a timer leaves at once, not queued");

	/* a socket made while disarmed is not batched */
	{
		struct udp_sock *plain = NULL;

		struct udp_sock *batched = rx.us;
		struct sa pa;

		err = udp_listen(&plain, &laddr, recv_h, &rx);
		CHECK(!err && !udpbatch_active(udp_sock_fd(plain, AF_INET)),
		      "a UDP socket made while disarmed is left alone");

		/* libre's own recvfrom path cuts the same way */
		(void)udp_local_get(plain, &pa);
		rx.us = plain;
		rx.expect = rx.n + 1;
		send_to(fd, &pa, bigbuf, BIG);
		CHECK(run_loop(5000) && rx.last_len == cut_len,
		      "... exactly where recvfrom() cuts it without batching");
		(void)read_replies(fd, &order, &big);
		rx.us = batched;
		mem_deref(plain);
	}

	/* a filter: what it refuses never reaches libre, 4 of every 5 */
	{
		struct rx fx;
		struct filt f;
		struct sa bad, fsrv;
		int bfd;
		unsigned j;

		memset(&fx, 0, sizeof(fx));
		memset(&f, 0, sizeof(f));
		fx.order = fx.src_ok = true;
		fx.peer = cl;
		bfd = client_socket(&bad);
		f.bad = bad;

		udpbatch_set_filter(filter_h, &f);
		udpbatch_arm(true);
		err = udp_listen(&fx.us, &laddr, recv_h, &fx);
		udpbatch_arm(false);
		udpbatch_set_filter(NULL, NULL);
		(void)udp_local_get(fx.us, &fsrv);
		(void)udp_sockbuf_set(fx.us, 4 << 20);
		CHECK(!err && udpbatch_active(udp_sock_fd(fx.us, AF_INET)),
		      "a socket made while armed with a filter is batched");

		for (i = 0; i < N; i++) {
			for (j = 0; j < 4; j++)
				send_to(bfd, &fsrv, &i, 4);
			send_to(fd, &fsrv, &i, 4);
		}
		udpbatch_stats(&s0);
		fx.expect = N;
		CHECK(run_loop(5000) && fx.n == N && fx.order && fx.src_ok,
		      "the filter's refused datagrams never reach libre; the "
		      "others all do, once, in order");
		udpbatch_stats(&s1);
		CHECK(s1.rx_filtered - s0.rx_filtered == 4 * N &&
		      f.asked == 5 * N,
		      "the filter was asked once per datagram; its refusals "
		      "counted (rx_filtered)");
		got = read_replies(fd, &order, &big);
		CHECK(got == N && order, "the replies to the others all left");
		got = read_replies(bfd, &order, &big);
		CHECK(got == 0, "the refused source got nothing");

		mem_deref(fx.us);
		close(bfd);
	}

	/* closed from inside its own handler, with datagrams still queued */
	for (i = 0; i < 10; i++)
		send_to(fd, &srv, &i, 4);
	rx.close_in_handler = true;
	rx.n = 0;
	CHECK(run_loop(5000) && rx.us == NULL && rx.n == 1,
	      "a socket closed in its handler stops at once (no more calls)");

	free(bigbuf);
	close(fd);
	libre_close();
	printf("1..%d\n", ntest);

	return nfail ? 1 : 0;
}
