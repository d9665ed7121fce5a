/**
 * server/media/rtcprx.c  Reception statistics of a stream, for RTCP
 *
 * Owns nothing that lives apart: struct rtcp_rx sits in a stream (on
 * the media thread). What the peer sends is counted as RFC 3550
 * appendix A asks: the extended highest sequence number (A.1, with its
 * resynchronisation after a large jump), packets expected and received
 * for the cumulative and the interval loss (A.3), the interarrival
 * jitter (A.8) in timestamp units, and the middle 32 bits of the NTP
 * time of the peer's last sender report with when it came (LSR, DLSR).
 * rtcp_rx_block() writes the report block (§6.4.1) that stream.c puts
 * in its sender report. Exposes rtcp_rx_*() and rtcp_put32() (a 32-bit
 * word in network order, for stream.c's reports too) in media_priv.h.
 */
#include <string.h>
#include <re.h>
#include "media.h"
#include "media_priv.h"


enum {
	MAX_DROPOUT  = 3000,           /* RFC 3550 A.1                   */
	MAX_MISORDER = 100,
	SEQ_MOD      = 1 << 16,
	RTP_CLOCK    = 8000,           /* Hz: G.711 and telephone-event  */
};


size_t rtcp_put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;

	return 4;
}


static uint32_t get32be(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
		(uint32_t)p[2] << 8 | p[3];
}


static void seq_init(struct rtcp_rx *rx, uint16_t seq)
{
	rx->base_seq = seq;
	rx->max_seq = seq;
	rx->bad_seq = SEQ_MOD + 1;     /* so seq == bad_seq is false     */
	rx->cycles = 0;
	rx->received = 0;
	rx->expected_prior = 0;
	rx->received_prior = 0;
}


void rtcp_rx_rtp(struct rtcp_rx *rx, uint32_t ssrc, uint16_t seq,
		 uint32_t ts, uint64_t arrival_us)
{
	uint16_t udelta;
	uint32_t arrival;
	int32_t transit, d;

	if (!rx)
		return;

	/* a new source (the peer changed, e.g. after a re-INVITE):
	 * its statistics start over */
	if (!rx->on || ssrc != rx->ssrc) {
		memset(rx, 0, sizeof(*rx));
		rx->on = true;
		rx->ssrc = ssrc;
		seq_init(rx, seq);
		udelta = 0;
	}
	else {
		udelta = (uint16_t)(seq - rx->max_seq);
	}

	if (udelta == 0) {
		/* the first, or a duplicate of the highest */
	}
	else if (udelta < MAX_DROPOUT) {
		if (seq < rx->max_seq)
			rx->cycles += SEQ_MOD;       /* wrapped */
		rx->max_seq = seq;
	}
	else if (udelta <= SEQ_MOD - MAX_MISORDER) {
		/* a large jump: believe it after two in a row */
		if (seq == rx->bad_seq) {
			seq_init(rx, seq);
		}
		else {
			rx->bad_seq = (uint32_t)(seq + 1) & (SEQ_MOD - 1);
			return;
		}
	}
	/* else a duplicate or a late one: counted, the maximum stays */

	++rx->received;

	/* interarrival jitter (A.8), in timestamp units */
	arrival = (uint32_t)(arrival_us * RTP_CLOCK / 1000000);
	transit = (int32_t)(arrival - ts);
	if (rx->transit_set) {
		d = transit - rx->transit;
		if (d < 0)
			d = -d;
		rx->jitter += (uint32_t)d - ((rx->jitter + 8) >> 4);
	}
	rx->transit = transit;
	rx->transit_set = true;
}


void rtcp_rx_rtcp(struct rtcp_rx *rx, const uint8_t *p, size_t n,
		  uint64_t now_ms)
{
	if (!rx || !p)
		return;

	/* a compound packet: find the sender report of our source */
	while (n >= 4) {
		size_t len = 4 * ((size_t)(p[2] << 8 | p[3]) + 1);

		if ((p[0] >> 6) != 2 || len > n)
			return;

		if (p[1] == 200 && len >= 28 && rx->on &&
		    get32be(p + 4) == rx->ssrc) {
			/* NTP seconds' low half, fraction's high half */
			rx->lsr = get32be(p + 8) << 16 | get32be(p + 12) >> 16;
			rx->lsr_at = now_ms;
		}

		p += len;
		n -= len;
	}
}


size_t rtcp_rx_block(struct rtcp_rx *rx, uint8_t *p, uint64_t now_ms)
{
	uint32_t ext_max, expected, exp_int, rcv_int, dlsr = 0;
	int64_t lost, lost_int;
	uint8_t fraction = 0;

	if (!rx || !rx->on || !p)
		return 0;

	ext_max = rx->cycles + rx->max_seq;
	expected = ext_max - rx->base_seq + 1;
	lost = (int64_t)expected - rx->received;
	if (lost > 0x7fffff)
		lost = 0x7fffff;
	else if (lost < -0x800000)
		lost = -0x800000;

	exp_int = expected - rx->expected_prior;
	rcv_int = rx->received - rx->received_prior;
	rx->expected_prior = expected;
	rx->received_prior = rx->received;
	lost_int = (int64_t)exp_int - rcv_int;
	if (exp_int && lost_int > 0)
		fraction = (uint8_t)((lost_int << 8) / exp_int);

	if (rx->lsr_at)
		dlsr = (uint32_t)((now_ms - rx->lsr_at) * 65536 / 1000);

	(void)rtcp_put32(p, rx->ssrc);
	(void)rtcp_put32(p + 4, (uint32_t)fraction << 24 |
			 ((uint32_t)lost & 0xffffff));
	(void)rtcp_put32(p + 8, ext_max);
	(void)rtcp_put32(p + 12, rx->jitter >> 4);
	(void)rtcp_put32(p + 16, rx->lsr);
	(void)rtcp_put32(p + 20, dlsr);

	return 24;
}
