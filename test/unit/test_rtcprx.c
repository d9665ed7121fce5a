/**
 * test/unit/test_rtcprx.c  Reception statistics for RTCP
 * (server/media/rtcprx.c, RFC 3550 appendix A)
 *
 * struct rtcp_rx fed with made-up packets and arrival times: the
 * extended highest sequence number across a wrap, cumulative and
 * interval loss (and the fraction), duplicates and late packets,
 * a large jump believed after two in a row, a new SSRC starting over,
 * the jitter of a steady stream (0) and of one with every other packet
 * 10 ms late (converging on 80 units), LSR and DLSR from a sender
 * report of our source only, and the 24 bytes of the block.
 */
#include <string.h>
#include <re.h>
#include "media.h"
#include "media_priv.h"
#include "testutil.h"


struct blk {
	uint32_t ssrc;
	uint8_t fraction;
	int32_t lost;
	uint32_t ext, jitter, lsr, dlsr;
};


static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
		(uint32_t)p[2] << 8 | p[3];
}


static struct blk block(struct rtcp_rx *rx, uint64_t now_ms, size_t *n)
{
	uint8_t p[24];
	struct blk b;
	uint32_t l;

	memset(&b, 0, sizeof(b));
	*n = rtcp_rx_block(rx, p, now_ms);
	if (*n != 24)
		return b;
	b.ssrc = be32(p);
	b.fraction = p[4];
	l = (uint32_t)p[5] << 16 | (uint32_t)p[6] << 8 | p[7];
	b.lost = (l & 0x800000) ? (int32_t)(l | 0xff000000) : (int32_t)l;
	b.ext = be32(p + 8);
	b.jitter = be32(p + 12);
	b.lsr = be32(p + 16);
	b.dlsr = be32(p + 20);

	return b;
}


int main(void)
{
	struct rtcp_rx rx;
	struct blk b;
	uint8_t sr[28];
	size_t n;
	uint32_t i, ts = 1000;
	uint64_t t = 5000000;      /* us */

	memset(&rx, 0, sizeof(rx));
	b = block(&rx, 0, &n);
	CHECK(n == 0, "no block before any packet");

	/* 100 packets, steady 20 ms, crossing the 16-bit wrap */
	for (i = 0; i < 100; i++) {
		rtcp_rx_rtp(&rx, 0xabcd, (uint16_t)(65500 + i), ts, t);
		ts += 160;
		t += 20000;
	}
	b = block(&rx, 1000, &n);
	CHECK(n == 24 && b.ssrc == 0xabcd, "a block about the source");
	CHECK(b.ext == 65536 + 63, "extended highest across the wrap");
	CHECK(b.lost == 0 && b.fraction == 0, "nothing lost");
	CHECK(b.jitter == 0, "a steady stream has no jitter");
	CHECK(b.lsr == 0 && b.dlsr == 0, "no sender report yet: LSR 0");

	/* 10 more sent, the odd ones lost: 4 lost up to the highest (the
	 * last one, lost too, is not known yet); 4 of 9 in the interval */
	for (i = 100; i < 110; i++) {
		if (i % 2 == 0)
			rtcp_rx_rtp(&rx, 0xabcd, (uint16_t)(65500 + i), ts,
				    t);
		ts += 160;
		t += 20000;
	}
	b = block(&rx, 2000, &n);
	CHECK(b.lost == 4, "cumulative lost 4");
	CHECK(b.fraction == 4 * 256 / 9, "4 of 9 lost in the interval: 113/256");
	CHECK(b.ext == 65536 + 72, "highest is the last received");

	/* a late one and a duplicate count as received: loss goes down */
	rtcp_rx_rtp(&rx, 0xabcd, (uint16_t)(65500 + 101), ts, t);
	rtcp_rx_rtp(&rx, 0xabcd, (uint16_t)(65500 + 108), ts, t);
	b = block(&rx, 3000, &n);
	CHECK(b.lost == 2 && b.ext == 65536 + 72,
	      "a late packet and a duplicate: lost 2, highest unchanged");
	CHECK(b.fraction == 0, "no loss in that interval (negative: 0)");

	/* a jump of 10,000: ignored once, believed the second time */
	rtcp_rx_rtp(&rx, 0xabcd, 20000, ts, t);
	b = block(&rx, 3100, &n);
	CHECK(b.ext == 65536 + 72, "a large jump alone is not believed");
	rtcp_rx_rtp(&rx, 0xabcd, 20001, ts, t);
	b = block(&rx, 3200, &n);
	CHECK(b.ext == 20001 && b.lost == 0,
	      "two in a row: the counts start over from there");

	/* a new source: everything over */
	rtcp_rx_rtp(&rx, 0x5555, 7, 0, t);
	b = block(&rx, 3300, &n);
	CHECK(b.ssrc == 0x5555 && b.ext == 7 && b.lost == 0,
	      "a new SSRC starts over");

	/* jitter: every other packet 10 ms late (D = 80 units each time:
	 * J converges on 80) */
	ts = 0;
	t = 9000000;
	for (i = 8; i < 400; i++) {
		uint64_t at = t + ((i % 2) ? 10000 : 0);
		rtcp_rx_rtp(&rx, 0x5555, (uint16_t)i, ts, at);
		ts += 160;
		t += 20000;
	}
	b = block(&rx, 4000, &n);
	CHECK(b.jitter >= 75 && b.jitter <= 80,
	      "jitter of arrivals 10 ms late in turn converges on 80 units");

	/* a sender report: of another source ignored, of ours taken */
	memset(sr, 0, sizeof(sr));
	sr[0] = 0x80; sr[1] = 200; sr[3] = 6;
	sr[4] = 0x11; sr[5] = 0x11; sr[6] = 0x11; sr[7] = 0x11;
	sr[8] = 0xaa; sr[9] = 0xbb; sr[10] = 0xcc; sr[11] = 0xdd;
	sr[12] = 0xee; sr[13] = 0xff; sr[14] = 0x12; sr[15] = 0x34;
	rtcp_rx_rtcp(&rx, sr, sizeof(sr), 5000);
	b = block(&rx, 5500, &n);
	CHECK(b.lsr == 0, "a sender report of another SSRC is not ours");
	sr[4] = 0; sr[5] = 0; sr[6] = 0x55; sr[7] = 0x55;
	rtcp_rx_rtcp(&rx, sr, sizeof(sr), 5000);
	b = block(&rx, 5500, &n);
	CHECK(b.lsr == 0xccddeeff, "LSR: the middle 32 bits of its NTP time");
	CHECK(b.dlsr == 32768, "DLSR: 0.5 s in 1/65536 s");
	sr[3] = 60;                    /* a length past the datagram */
	rtcp_rx_rtcp(&rx, sr, sizeof(sr), 9000);
	b = block(&rx, 9000, &n);
	CHECK(b.dlsr == 4 * 65536, "a truncated packet changes nothing");

	printf("1..%d\n", ntest);

	return nfail ? 1 : 0;
}
