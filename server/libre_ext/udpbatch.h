/**
 * server/libre_ext/udpbatch.h  Batched UDP under libre's loop
 *
 * udpbatch.c interposes fd_listen/fd_close/recvfrom/sendto (see that
 * file). The stack arms it around adding its UDP listeners; the
 * registrar holds the replies of a group commit (hold/release); the
 * counters are for stats, tests and benchmarks.
 */
#ifndef SIPSTACK_UDPBATCH_H
#define SIPSTACK_UDPBATCH_H

#include <stdbool.h>
#include <stdint.h>

struct udpbatch_stats {
	uint64_t recvmmsg_calls;   /* recvmmsg() calls that returned data */
	uint64_t rx_datagrams;     /* datagrams they returned */
	uint64_t sendmmsg_calls;   /* sendmmsg() calls that sent data */
	uint64_t tx_datagrams;     /* datagrams queued and flushed */
	uint64_t tx_dropped;       /* of those, refused by the kernel */
};

/* Off: no socket is batched from now on (sipstack --no-udp-batch) */
void udpbatch_enable(bool on);

/* While on (and enabled), UDP sockets that libre registers for reading are batched */
void udpbatch_arm(bool on);

/* Between these (they nest), sends on batched sockets are queued and
 * leave together at the outermost release (sendmmsg) */
void udpbatch_hold(void);
void udpbatch_release(void);

/* True if fd is a batched socket */
bool udpbatch_active(int fd);

void udpbatch_stats(struct udpbatch_stats *out);

#endif
