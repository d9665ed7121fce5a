/**
 * server/libre_ext/wsflow.h  The WebSocket flows of libre's SIP transport
 *
 * wsflow.c makes libre 1.1.0's SIP WebSocket server (RFC 7118) usable by
 * browsers and routes our requests to a peer over the connection it
 * opened (why and how: the top of wsflow.c). The stack uses this to stop
 * and to count; the rest works by itself once the WS/WSS listeners are
 * added (sip_transp_add_websock).
 */
#ifndef SIPSTACK_WSFLOW_H
#define SIPSTACK_WSFLOW_H

#include <stdbool.h>
#include <stdint.h>

enum {
	/* a frame longer than this closes its connection (1009); libre's
	 * TCP transport caps a SIP message at 64 KiB too */
	WSFLOW_FRAME_MAX = 65536,
};

struct wsflow_stats {
	uint64_t accepted;     /* WebSocket connections accepted         */
	uint64_t closed;       /* of which ended                         */
	uint64_t open;         /* accepted - closed                      */
	uint64_t routed;       /* requests of ours sent over a flow      */
	uint64_t unrouted;     /* refused: to ws/wss, no flow to the peer */
	uint64_t oversized;    /* closed for a frame over the limit      */
	uint64_t timeouts;     /* closed for silence (accept or idle)    */
	uint64_t refused;      /* handshakes refused (400, 405, 426)      */
};

/* On around sip_transp_add_websock(): the HTTP(S) listeners opened then
 * are the SIP transport's, whose handshakes wsflow.c checks first */
void wsflow_arm(bool on);

/* Ends every flow (a close frame, then libre closes its connection)
 * and forgets the listeners; the stack calls it right before it closes
 * libre's SIP stack */
void wsflow_flush(void);

void wsflow_stats(struct wsflow_stats *st);

/* %H printer: the counts, then each flow (peer, state, time left) */
struct re_printf;
int  wsflow_debug(struct re_printf *pf, const void *unused);

#endif
