/**
 * server/core/stack_metrics.c  The stack's figures as metrics
 *
 * Writes what the stack counts (struct stack_counts: requests received
 * by method and transport, responses sent by method, status class and
 * transport; struct stack_stats) and the sizes it keeps anyway
 * (dialogs, requests waiting for their answer, completed transactions
 * kept compact), as the collector stack_alloc() registers in the
 * stack's registry. Exposes stack_metrics_collect() in core.h. Uses
 * metrics.c's writers, donetrans.c and the dialog table.
 *
 * Counted where: requests in stack_request_handler (dispatch.c), every
 * request libre's transaction layer hands the stack, before admission
 * (so the dropped and the retransmissions answered from donetrans.c are
 * in); responses in stack_req_reply_mb (request.c) and core_reply's
 * fallback, i.e. every answer the stack sends, 1xx included. Not seen
 * here: what libre answers by itself (200 to a CANCEL matching a
 * transaction it holds, its retransmissions of a final answer) and the
 * 2xx our calls resend until the ACK (stack_req_resend).
 */
#include <re.h>
#include "sipcore.h"
#include "core.h"
#include "wsflow.h"


static int rx_write(struct mbuf *mb, const struct stack_counts *c)
{
	const char *name = "sipstack_sip_requests_received_total";
	char lbl[64];
	unsigned m, tp;
	int err;

	err = metrics_family(mb, name, METRICS_COUNTER, "SIP requests that "
			     "reached the stack (after libre's transaction "
			     "layer), by method and transport.");

	for (m = 0; m < METRICS_METHODS && !err; m++) {
		for (tp = 0; tp < SIP_TRANSPC && !err; tp++) {
			if (!c->rx[m][tp])
				continue;
			(void)re_snprintf(lbl, sizeof(lbl),
					  "method=\"%s\",transport=\"%s\"",
					  metrics_method_name(m),
					  metrics_transport_name(tp));
			err = metrics_sample_u64(mb, name, lbl, c->rx[m][tp]);
		}
	}

	return err;
}


static int tx_write(struct mbuf *mb, const struct stack_counts *c)
{
	const char *name = "sipstack_sip_responses_sent_total";
	char lbl[96];
	unsigned m, k, tp;
	int err;

	err = metrics_family(mb, name, METRICS_COUNTER, "SIP responses the "
			     "stack sent, by request method, status class "
			     "and transport (not libre's own answers nor "
			     "retransmissions).");

	for (m = 0; m < METRICS_METHODS && !err; m++) {
		for (k = 0; k < METRICS_CLASSES && !err; k++) {
			for (tp = 0; tp < SIP_TRANSPC && !err; tp++) {
				uint64_t v = c->tx[m][k][tp];

				if (!v)
					continue;
				(void)re_snprintf(lbl, sizeof(lbl),
						  "method=\"%s\",class="
						  "\"%uxx\",transport=\"%s\"",
						  metrics_method_name(m), k + 1,
						  metrics_transport_name(tp));
				err = metrics_sample_u64(mb, name, lbl, v);
			}
		}
	}

	return err;
}


/* SIP over WebSocket (libre_ext/wsflow.c counts, process-wide) */
static int ws_write(struct mbuf *mb)
{
	struct wsflow_stats ws;
	int err;

	wsflow_stats(&ws);

	err  = metrics_one(mb, "sipstack_websocket_connections",
			   METRICS_GAUGE, "WebSocket connections (ws:, wss:) "
			   "open.", ws.open);
	err |= metrics_one(mb, "sipstack_websocket_accepted_total",
			   METRICS_COUNTER, "WebSocket handshakes accepted.",
			   ws.accepted);
	err |= metrics_one(mb, "sipstack_websocket_refused_total",
			   METRICS_COUNTER, "WebSocket handshakes refused "
			   "(400, 405, 426).", ws.refused);
	err |= metrics_one(mb, "sipstack_websocket_oversized_total",
			   METRICS_COUNTER, "WebSocket connections closed for "
			   "a frame over 64 KiB (1009).", ws.oversized);
	err |= metrics_one(mb, "sipstack_websocket_timeouts_total",
			   METRICS_COUNTER, "WebSocket connections closed for "
			   "silence (32 s without a first frame, 900 s "
			   "idle).", ws.timeouts);
	err |= metrics_one(mb, "sipstack_websocket_unrouted_total",
			   METRICS_COUNTER, "Requests of ours to a ws/wss "
			   "destination with no connection from that peer "
			   "(refused).", ws.unrouted);

	return err;
}


int stack_metrics_collect(struct mbuf *mb, void *arg)
{
	const struct stack *st = arg;
	int err;

	err  = rx_write(mb, &st->counts);
	err |= tx_write(mb, &st->counts);

	err |= metrics_one(mb, "sipstack_sip_requests_dropped_total",
			   METRICS_COUNTER, "Requests dropped unanswered by "
			   "the admission gate (addresses banned by the auth "
			   "guard).", st->stats.dropped);
	err |= metrics_one(mb, "sipstack_sip_requests_invalid_total",
			   METRICS_COUNTER, "Requests refused by the checks "
			   "of RFC 3261 8.2 before dispatch (answered 4xx/5xx "
			   "by the core).", st->stats.bad_requests);
	err |= metrics_one(mb, "sipstack_sip_retransmissions_absorbed_total",
			   METRICS_COUNTER, "Retransmitted requests answered "
			   "again from a completed transaction kept compact.",
			   donetab_absorbed(st->done));
	err |= metrics_one(mb, "sipstack_sip_requests_pending", METRICS_GAUGE,
			   "Received requests with a server transaction, "
			   "waiting for their final answer (a hook or a call "
			   "holds them).", list_count(&st->strl));
	err |= metrics_one(mb, "sipstack_sip_transactions_completed",
			   METRICS_GAUGE, "Answered non-INVITE (and "
			   "2xx-answered INVITE) server transactions over UDP "
			   "kept to absorb retransmissions (Timer J).",
			   donetab_count(st->done));
	err |= metrics_one(mb, "sipstack_dialogs", METRICS_GAUGE, "Dialogs in "
			   "the dialog table (early and confirmed).",
			   dialog_table_count(st->dialogs));
	err |= ws_write(mb);

	return err;
}
