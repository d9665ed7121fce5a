/**
 * server/libre_ext/udpbatch.c  Batched UDP reads and writes under libre's loop
 *
 * WHY THIS FILE EXISTS
 *
 *   libre 1.1.0 reads one datagram per loop wakeup: for every SIP request
 *   over UDP the loop thread makes three system calls, epoll_wait(),
 *   recvfrom() (src/udp/udp.c, udp_read) and sendto() for the reply.
 *   `strace -c` on a server answering OPTIONS puts half of its CPU time in
 *   the kernel (BENCHMARKS.md). Linux reads and writes many datagrams per
 *   call with recvmmsg()/sendmmsg(); libre does not use them.
 *
 * HOW IT IS HOOKED IN
 *
 *   Symbol interposition again (see fasttmr.c): this executable defines
 *   and exports (overrides.list) fd_listen() and fd_close() (libre's,
 *   called by libre itself through its PLT) and recvfrom() and sendto()
 *   (libc's, which libre calls through its PLT). The originals are found
 *   with dlsym(RTLD_NEXT). Only the sockets registered while the stack
 *   adds its UDP listeners (udpbatch_arm(true) ... sip_transp_add ...
 *   udpbatch_arm(false)) are batched; every other descriptor goes
 *   straight to the original functions after one table look-up.
 *
 *   For a batched socket, fd_listen() registers our handler in place of
 *   libre's read handler. When the socket is readable:
 *     1. our handler calls libre's handler, which calls recvfrom();
 *     2. our recvfrom() finds its queue empty and reads up to BATCH
 *        datagrams with one recvmmsg(MSG_DONTWAIT), then returns the first
 *        one exactly as recvfrom() would have (bytes, source address,
 *        truncation to the caller's buffer);
 *     3. our handler calls libre's handler again while datagrams are
 *        queued, so each reaches libre in arrival order, one per call;
 *     4. while this runs, sendto() on the same socket copies each datagram
 *        into an output queue and reports it sent; at the end of the batch
 *        (or when the queue is full) one sendmmsg() sends them in order.
 *   One wakeup then costs one epoll_wait, one recvmmsg and one sendmmsg
 *   for up to BATCH requests instead of 3 * BATCH system calls.
 *
 *   A socket may have a filter (udpbatch_set_filter(), set by the stack
 *   before it arms us: its per-source rate limiter). recvfrom() asks it
 *   about each queued datagram's source before returning it and skips
 *   the ones it refuses: libre never allocates, decodes or looks up a
 *   transaction for them. recvfrom() still reads at most one recvmmsg()
 *   per call, so a flood of refused datagrams costs one wakeup per
 *   BATCH of them and cannot keep the loop from its other work; when
 *   the filter refused all that was queued, libre gets EAGAIN (which it
 *   ignores) and the next wakeup reads on.
 *
 *   Code that answers many requests at once outside a read (the
 *   registrar, around the done handlers of a group commit that the
 *   location store runs when it comes back from the writer thread)
 *   brackets them with udpbatch_hold() / udpbatch_release(): sends in
 *   between are queued the same way and leave in sendmmsg() calls.
 *
 * WHAT CHANGES FOR LIBRE'S CALLERS
 *
 *   Nothing is reordered or lost while the socket is open. A reply leaves
 *   at the end of its batch instead of at once (at most BATCH requests
 *   later: well under a millisecond at full load). A send error inside a
 *   batch is not returned to libre (it already got "sent"): the queue is
 *   retried datagram by datagram with sendto() and what still fails is
 *   dropped and counted, exactly the fate of a UDP datagram the network
 *   drops; SIP's retransmissions are built for it. Datagrams still queued
 *   when libre closes the socket are dropped with it.
 */
#include <dlfcn.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <re.h>
#include "udpbatch.h"


enum {
	BATCH  = 32,            /* datagrams per recvmmsg / sendmmsg */
	RXSZ   = 65536,         /* a UDP datagram's largest size */
	MAXFDS = 65536,
};

struct ubsock {
	int fd;
	fd_h *fh;               /* libre's handler and its argument */
	void *arg;
	bool in_batch;
	bool closed;            /* fd_close()d inside our handler */
	udpbatch_filter_h *filth;  /* asked about each datagram, or NULL */
	void *filt_arg;

	/* received, not yet returned by recvfrom() */
	struct mmsghdr rx[BATCH];
	struct iovec rxiov[BATCH];
	struct sockaddr_storage rxaddr[BATCH];
	uint8_t *rxbuf;         /* BATCH * RXSZ */
	unsigned rxn, rxnext;
	unsigned rxused;        /* headers the last recvmmsg() wrote to */

	/* sent by libre, not yet given to the kernel */
	struct mmsghdr tx[BATCH];
	struct iovec txiov[BATCH];
	struct sockaddr_storage txaddr[BATCH];
	uint8_t *txbuf;         /* BATCH * RXSZ */
	unsigned txn;
};

typedef int (fd_listen_fn)(int fd, int flags, fd_h *fh, void *arg);
typedef void (fd_close_fn)(int fd);
typedef ssize_t (recvfrom_fn)(int, void *, size_t, int, struct sockaddr *,
			      socklen_t *);
typedef ssize_t (sendto_fn)(int, const void *, size_t, int,
			    const struct sockaddr *, socklen_t);

static struct ubsock **socks;   /* by fd */
static struct ubsock *all[64];  /* every batched socket */
static size_t nall;
static unsigned hold_depth;     /* udpbatch_hold() nesting */
static bool armed;
static bool enabled = true;
static udpbatch_filter_h *arm_filth;  /* for sockets batched from now on */
static void *arm_filt_arg;
static struct udpbatch_stats st;
static fd_listen_fn *real_fd_listen;
static fd_close_fn *real_fd_close;
static recvfrom_fn *real_recvfrom;
static sendto_fn *real_sendto;


static void resolve(void)
{
	if (real_sendto)
		return;

	real_fd_listen = (fd_listen_fn *)dlsym(RTLD_NEXT, "fd_listen");
	real_fd_close  = (fd_close_fn *)dlsym(RTLD_NEXT, "fd_close");
	real_recvfrom  = (recvfrom_fn *)dlsym(RTLD_NEXT, "recvfrom");
	real_sendto    = (sendto_fn *)dlsym(RTLD_NEXT, "sendto");

	if (!real_fd_listen || !real_fd_close || !real_recvfrom ||
	    !real_sendto)
		abort();        /* libre or libc without these symbols */
}


static inline struct ubsock *sock_get(int fd)
{
	if (!socks || fd < 0 || fd >= MAXFDS)
		return NULL;

	return socks[fd];
}


static void sock_free(struct ubsock *ub)
{
	size_t i;

	for (i = 0; i < nall; i++) {
		if (all[i] == ub) {
			all[i] = all[--nall];
			break;
		}
	}
	if (socks && socks[ub->fd] == ub)
		socks[ub->fd] = NULL;
	free(ub->rxbuf);
	free(ub->txbuf);
	free(ub);
}


/* Hand the output queue to the kernel, in order. */
static void flush(struct ubsock *ub)
{
	unsigned done = 0;

	while (done < ub->txn) {
		int n = sendmmsg(ub->fd, ub->tx + done, ub->txn - done, 0);

		if (n > 0) {
			done += (unsigned)n;
			++st.sendmmsg_calls;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;

		/* the first datagram fails: try it alone, then move on */
		if (real_sendto(ub->fd, ub->txiov[done].iov_base,
				ub->txiov[done].iov_len, 0,
				(struct sockaddr *)&ub->txaddr[done],
				ub->tx[done].msg_hdr.msg_namelen) < 0)
			++st.tx_dropped;
		++done;
	}

	st.tx_datagrams += ub->txn;
	ub->txn = 0;
}


static void batch_handler(int flags, void *arg)
{
	struct ubsock *ub = arg;
	unsigned i;

	ub->in_batch = true;
	for (i = 0; i < BATCH; i++) {
		ub->fh(flags, ub->arg);
		if (ub->closed || ub->rxnext >= ub->rxn)
			break;
	}
	ub->in_batch = false;

	if (ub->closed) {
		sock_free(ub);
		return;
	}

	if (!hold_depth)
		flush(ub);
}


static struct ubsock *sock_new(int fd)
{
	struct ubsock *ub;
	unsigned i;

	if (fd < 0 || fd >= MAXFDS || nall == ARRAY_SIZE(all))
		return NULL;

	if (!socks) {
		socks = calloc(MAXFDS, sizeof(*socks));
		if (!socks)
			return NULL;
	}

	ub = calloc(1, sizeof(*ub));
	if (!ub)
		return NULL;
	ub->fd = fd;
	ub->rxbuf = malloc((size_t)BATCH * RXSZ);
	ub->txbuf = malloc((size_t)BATCH * RXSZ);
	if (!ub->rxbuf || !ub->txbuf) {
		free(ub->rxbuf);
		free(ub->txbuf);
		free(ub);
		return NULL;
	}

	for (i = 0; i < BATCH; i++) {
		ub->rxiov[i].iov_base = ub->rxbuf + (size_t)i * RXSZ;
		ub->rxiov[i].iov_len = RXSZ;
		ub->rx[i].msg_hdr.msg_iov = &ub->rxiov[i];
		ub->rx[i].msg_hdr.msg_iovlen = 1;
		ub->rx[i].msg_hdr.msg_name = &ub->rxaddr[i];
		ub->rx[i].msg_hdr.msg_namelen = sizeof(ub->rxaddr[i]);
		ub->txiov[i].iov_base = ub->txbuf + (size_t)i * RXSZ;
		ub->tx[i].msg_hdr.msg_iov = &ub->txiov[i];
		ub->tx[i].msg_hdr.msg_iovlen = 1;
		ub->tx[i].msg_hdr.msg_name = &ub->txaddr[i];
	}

	ub->filth = arm_filth;
	ub->filt_arg = arm_filt_arg;
	socks[fd] = ub;
	all[nall++] = ub;

	return ub;
}


static bool is_udp(int fd)
{
	int type = 0;
	socklen_t len = sizeof(type);

	return !getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) &&
		type == SOCK_DGRAM;
}


int fd_listen(int fd, int flags, fd_h *fh, void *arg)
{
	struct ubsock *ub;

	resolve();

	ub = sock_get(fd);

	if (!flags && !fh) {            /* fd_close() */
		if (ub) {
			flush(ub);
			if (ub->in_batch) {
				/* freed by batch_handler; the fd number is
				 * free for a new socket from now on */
				ub->closed = true;
				socks[fd] = NULL;
			}
			else {
				sock_free(ub);
			}
		}
		return real_fd_listen(fd, flags, fh, arg);
	}

	if (!ub && armed && (flags & FD_READ) && fh && is_udp(fd))
		ub = sock_new(fd);

	if (!ub)
		return real_fd_listen(fd, flags, fh, arg);

	ub->fh  = fh;
	ub->arg = arg;

	return real_fd_listen(fd, flags, batch_handler, ub);
}


void fd_close(int fd)
{
	(void)fd_listen(fd, 0, NULL, NULL);
}


static int fill(struct ubsock *ub)
{
	unsigned i;
	int n;

	/* the headers are set up once (sock_new); the kernel writes back
	 * only the name length and flags of those it filled */
	for (i = 0; i < ub->rxused; i++) {
		ub->rx[i].msg_hdr.msg_namelen = sizeof(ub->rxaddr[i]);
		ub->rx[i].msg_hdr.msg_flags = 0;
	}
	ub->rxused = 0;

	do {
		n = recvmmsg(ub->fd, ub->rx, BATCH, MSG_DONTWAIT, NULL);
	} while (n < 0 && errno == EINTR);

	if (n <= 0)
		return n < 0 ? -1 : 0;

	ub->rxused = (unsigned)n;
	ub->rxn = (unsigned)n;
	ub->rxnext = 0;
	++st.recvmmsg_calls;
	st.rx_datagrams += (uint64_t)n;

	return n;
}


/* Does the filter let the next queued datagram through? */
static bool filter_pass(struct ubsock *ub)
{
	const struct mmsghdr *m = &ub->rx[ub->rxnext];
	struct sa src;

	if (m->msg_hdr.msg_namelen > sizeof(src.u) ||
	    sa_set_sa(&src, (const struct sockaddr *)&ub->rxaddr[ub->rxnext]))
		return true;     /* not an address it can judge */

	return ub->filth(&src, ub->filt_arg);
}


/* glibc declares the address argument as a transparent union under
 * _GNU_SOURCE; these take the pointer out of either form */
#define SA_PTR(a)  ((a).__sockaddr__)
#define CSA_PTR(a) ((a).__sockaddr__)

ssize_t recvfrom(int fd, void *__restrict buf, size_t len, int flags,
		 __SOCKADDR_ARG srcarg, socklen_t *__restrict srclen)
{
	struct sockaddr *src = SA_PTR(srcarg);
	struct ubsock *ub;
	const struct mmsghdr *m;
	size_t n;

	resolve();

	ub = sock_get(fd);
	if (!ub || flags)
		return real_recvfrom(fd, buf, len, flags, src, srclen);

	if (ub->rxnext >= ub->rxn) {
		const int r = fill(ub);

		if (r < 0)
			return -1;
		if (r == 0) {
			errno = EAGAIN;
			return -1;
		}
	}

	/* what the filter refuses is skipped; no new read for it (above) */
	while (ub->filth && !filter_pass(ub)) {
		++ub->rxnext;
		++st.rx_filtered;
		if (ub->rxnext >= ub->rxn) {
			errno = EAGAIN;
			return -1;
		}
	}

	m = &ub->rx[ub->rxnext];
	n = m->msg_len < len ? m->msg_len : len;
	memcpy(buf, ub->rxiov[ub->rxnext].iov_base, n);
	if (src && srclen) {
		socklen_t al = m->msg_hdr.msg_namelen;

		memcpy(src, &ub->rxaddr[ub->rxnext],
		       al < *srclen ? al : *srclen);
		*srclen = al;
	}
	++ub->rxnext;

	return (ssize_t)n;
}


ssize_t sendto(int fd, const void *buf, size_t len, int flags,
	       __CONST_SOCKADDR_ARG dstarg, socklen_t dstlen)
{
	const struct sockaddr *dst = CSA_PTR(dstarg);
	struct ubsock *ub;
	unsigned i;

	resolve();

	ub = sock_get(fd);
	if (!ub || !(ub->in_batch || hold_depth) || flags || !dst ||
	    len > RXSZ ||
	    dstlen > sizeof(struct sockaddr_storage))
		return real_sendto(fd, buf, len, flags, dst, dstlen);

	if (ub->txn == BATCH)
		flush(ub);

	i = ub->txn++;
	memcpy(ub->txiov[i].iov_base, buf, len);
	ub->txiov[i].iov_len = len;
	memcpy(&ub->txaddr[i], dst, dstlen);
	ub->tx[i].msg_hdr.msg_namelen = dstlen;

	/* libre leaves sin_zero unset; sendto ignores it, but sendmmsg
	 * hands the kernel (and valgrind) all dstlen bytes */
	if (dst->sa_family == AF_INET && dstlen >= sizeof(struct sockaddr_in))
		memset(((struct sockaddr_in *)&ub->txaddr[i])->sin_zero, 0,
		       sizeof(((struct sockaddr_in *)0)->sin_zero));

	return (ssize_t)len;
}


void udpbatch_enable(bool on)
{
	enabled = on;
}


void udpbatch_arm(bool on)
{
	armed = on && enabled;
}


void udpbatch_set_filter(udpbatch_filter_h *h, void *arg)
{
	arm_filth = h;
	arm_filt_arg = h ? arg : NULL;
}


void udpbatch_hold(void)
{
	++hold_depth;
}


void udpbatch_release(void)
{
	size_t i;

	if (!hold_depth || --hold_depth)
		return;

	for (i = 0; i < nall; i++) {
		if (all[i]->txn && !all[i]->in_batch)
			flush(all[i]);
	}
}


bool udpbatch_active(int fd)
{
	return sock_get(fd) != NULL;
}


void udpbatch_stats(struct udpbatch_stats *out)
{
	*out = st;
}
