/**
 * server/libre_ext/udpbatch.h  Batched UDP under libre's loop
 *
 * udpbatch.c interposes fd_listen/fd_close/recvfrom/sendto (see that
 * file). The stack arms it around adding its UDP listeners, with the
 * filter those sockets' datagrams pass before libre sees them (its rate
 * limiter); the registrar holds the replies of a group commit
 * (hold/release); the counters are for stats, tests and benchmarks.
 */
#ifndef SIPSTACK_UDPBATCH_H
#define SIPSTACK_UDPBATCH_H

#include <stdbool.h>
#include <stdint.h>

struct udpbatch_stats {
	uint64_t recvmmsg_calls;   /* recvmmsg() calls that returned data */
	uint64_t rx_datagrams;     /* datagrams they returned */
	uint64_t rx_filtered;      /* of those, refused by a filter */
	uint64_t sendmmsg_calls;   /* sendmmsg() calls that sent data */
	uint64_t tx_datagrams;     /* datagrams queued and flushed */
	uint64_t tx_dropped;       /* of those, refused by the kernel */
};

/* Off: no socket is batched from now on (sipstack --no-udp-batch) */
void udpbatch_enable(bool on);

/* While on (and enabled), UDP sockets that libre registers for reading are batched */
void udpbatch_arm(bool on);

/* Called with the source of every datagram a batched socket receives,
 * before recvfrom() hands it to libre: false drops it (libre never sees
 * it; counted in rx_filtered). src is libre's struct sa. */
struct sa;
typedef bool (udpbatch_filter_h)(const struct sa *src, void *arg);

/* The filter of the sockets batched from now on (those registered while
 * armed keep the one set then); NULL: none */
void udpbatch_set_filter(udpbatch_filter_h *h, void *arg);

/* Between these (they nest), sends on batched sockets are queued and
 * leave together at the outermost release (sendmmsg) */
void udpbatch_hold(void);
void udpbatch_release(void);

/* True if fd is a batched socket */
bool udpbatch_active(int fd);

void udpbatch_stats(struct udpbatch_stats *out);

#endif
