/**
 * server/media/stream.c  The streams, on the media thread
 *
 * Owns struct stream: one call's RTP on the media thread (its socket
 * pair, where it sends, payload types, sequence and timestamp, the
 * prompts it plays, the digits it sends, the RFC 4733 events it
 * receives, what it records). Paced by the engine's timerfd, which
 * ticks each ms: stream_tick_handler() looks at the slots of the ms
 * that passed (a stream sits in slot deadline % 20, so a thousand
 * streams need no timer each) and sends every stream whose absolute
 * deadline (start + k * 20 ms) has passed: nothing drifts; a stall of
 * more than CATCHUP_MAX periods skips (the timestamp keeps time, the
 * sequence stays continuous). Exposes stream_cmd(),
 * stream_tick_handler() and streams_close() in media_priv.h. Uses
 * libre's fd_listen, rtp_hdr_decode and telev's digit codes (not
 * telev's sender: its own clock; our pacer owns timing), the engine's
 * queues for events and recordings, and wav.c's codecs.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <netinet/in.h>
#include <re.h>
#include "media.h"
#include "media_priv.h"


enum {
	CATCHUP_MAX = 25,              /* packets sent late at once (500
					* ms: a stalled thread's packets go
					* out in a burst, the peer's jitter
					* buffer orders them); a
					* longer stall skips (time kept)  */
	DTMF_TONE = 5,                 /* packets of a digit (100 ms)     */
	DTMF_ENDS = 3,                 /* end packets (RFC 4733 §2.5.1.4) */
	DTMF_GAP = 3,                  /* packets between digits          */
	DTMF_RX_IDLE = 500,            /* ms: an event without end ends   */
	RTCP_INTERVAL = 5000,          /* ms, RFC 3550 §6.2 minimum; each
					* one drawn in [0.5, 1.5] times it */
	SILENCE_LEVEL = 400,           /* mean |sample| of a voiced frame */
};

struct stream {
	struct le le;                  /* in mt.streams                  */
	struct le le_slot;             /* in mt.slots[next % NSLOTS]     */
	struct media_engine *me;
	uint32_t sid;
	int fd[2];
	struct sa dst, dst_rtcp;
	bool latched, rtcp_latched, send, alaw;
	int pt, pt_te;
	uint32_t ssrc, ts;
	uint16_t seq;
	uint64_t next;                 /* ms: deadline of the next packet */
	uint64_t rtcp_next;            /* ms: the next sender report      */
	uint32_t npkts, noctets;       /* sent, for RTCP                  */
	struct rtcp_rx rx;             /* received, for RTCP              */
	bool marker;
	bool counted;                  /* in mt.nstreams                 */
	uint32_t stop_below;           /* commands of older seqs: stale   */

	/* play */
	struct prompt **pl;
	size_t pl_n, pl_i, pos;
	uint32_t play_seq;
	bool internal;                 /* the beep before a recording     */

	/* send_dtmf */
	char dtmf[MEDIA_DTMF_MAX + 1];
	size_t dtmf_i;
	uint32_t dtmf_seq, dtmf_ts;
	unsigned dtmf_k;
	bool dtmf_on;

	/* received telephone-events (RFC 4733) */
	bool rx_active, rx_done;
	uint32_t rx_ts, done_ts;
	uint8_t rx_ev, done_ev;
	uint16_t rx_dur;
	uint64_t rx_last;

	/* record */
	bool rec_on, rec_wait;
	uint32_t rec_seq, rec_max, rec_sil;
	char *rec_path;
	int16_t *rec;
	size_t rec_n, rec_cap;
	uint64_t rec_start, rec_voice;
};


/* ------------------------------------------------------------------ *
 * The streams
 * ------------------------------------------------------------------ */

static void stream_play_clear(struct stream *s)
{
	size_t i;

	for (i = 0; i < s->pl_n; i++)
		prompt_unref(s->pl[i]);
	free(s->pl);
	s->pl = NULL;
	s->pl_n = s->pl_i = s->pos = 0;
	s->internal = false;
}


static void rec_finish(struct stream *s)
{
	struct job *j = job_new(JOB_WRITE, s->sid, s->rec_seq);

	s->rec_on = s->rec_wait = false;
	if (j) {
		j->path = s->rec_path;
		j->samples = s->rec;
		j->ns = s->rec_n;
		s->rec_path = NULL;
		s->rec = NULL;
		engine_job(s->me, j);
	}
	s->rec_path = mem_deref(s->rec_path);
	free(s->rec);
	s->rec = NULL;
	s->rec_n = s->rec_cap = 0;
}


static void rec_start(struct stream *s, uint64_t now)
{
	s->rec_wait = false;
	s->rec_on = true;
	s->rec_start = s->rec_voice = now;
}


static void rtcp_send(struct stream *s, uint64_t now, bool bye);


static void stream_destructor(void *arg)
{
	struct stream *s = arg;

	if (s->rec_on || s->rec_wait)
		rec_finish(s);      /* a hangup keeps what was recorded */
	if (s->counted && s->npkts)
		rtcp_send(s, media_now_ms(), true);
	stream_play_clear(s);
	list_unlink(&s->le_slot);
	hash_unlink(&s->le);
	fd_close(s->fd[0]);
	fd_close(s->fd[1]);
	(void)close(s->fd[0]);
	(void)close(s->fd[1]);
	if (s->counted)
		--s->me->nstreams;
}


static void dtmf_rx_finish(struct stream *s)
{
	struct media_event ev;
	int d = telev_code2digit(s->rx_ev);

	s->rx_active = false;
	s->rx_done = true;
	s->done_ts = s->rx_ts;
	s->done_ev = s->rx_ev;
	if (d <= 0)
		return;

	memset(&ev, 0, sizeof(ev));
	ev.type = MEDIA_EV_DTMF;
	ev.digit = (char)d;
	ev.dur_ms = s->rx_dur / 8;
	engine_evt(s->me, s->sid, &ev);
}


/* RFC 4733 §2.5.1: one event is one timestamp; its end packet is sent
 * three times. Keyed on timestamp and event: a repeated digit is a new
 * event even when the previous one's end packets were all lost. */
static void dtmf_rx(struct stream *s, uint32_t ts, const uint8_t *p,
		    size_t len, uint64_t now)
{
	uint8_t ev;
	bool end;

	if (len < 4)
		return;
	ev = p[0];
	end = (p[1] & 0x80) != 0;
	if (ev > 15)
		return;

	if (s->rx_done && ts == s->done_ts && ev == s->done_ev)
		return;             /* its end again, or a late packet */
	if (s->rx_active && (ts != s->rx_ts || ev != s->rx_ev))
		dtmf_rx_finish(s);  /* the previous lost its end */
	if (!s->rx_active) {
		s->rx_active = true;
		s->rx_ts = ts;
		s->rx_ev = ev;
	}
	s->rx_dur = (uint16_t)(p[2] << 8 | p[3]);
	s->rx_last = now;
	if (end)
		dtmf_rx_finish(s);
}


static void rec_append(struct stream *s, int pt, const uint8_t *p,
		       size_t len, uint64_t now)
{
	size_t i;
	uint32_t sum = 0;

	if (pt != 0 && pt != 8)
		return;
	if (s->rec_n + len > s->rec_cap)
		len = s->rec_cap - s->rec_n;
	for (i = 0; i < len; i++) {
		int16_t x = pt == 0 ? g711_ulaw_dec(p[i]) :
			g711_alaw_dec(p[i]);

		s->rec[s->rec_n++] = x;
		sum += (uint32_t)(x < 0 ? -x : x);
	}
	if (len && sum / len >= SILENCE_LEVEL)
		s->rec_voice = now;
}


static void rtp_recv_handler(int flags, void *arg)
{
	struct stream *s = arg;
	uint8_t buf[2048];
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	struct rtp_header hdr;
	struct mbuf mb;
	struct sa src;
	ssize_t n;
	uint64_t now = media_now_ms();
	struct timespec at;
	uint64_t at_us;
	int i;
	(void)flags;

	(void)clock_gettime(CLOCK_MONOTONIC, &at);
	at_us = (uint64_t)at.tv_sec * 1000000 + (uint64_t)at.tv_nsec / 1000;

	/* a few per wakeup: level-triggered, the rest comes next round */
	for (i = 0; i < 8; i++) {
		sl = sizeof(ss);
		n = recvfrom(s->fd[0], buf, sizeof(buf), 0,
			     (struct sockaddr *)&ss, &sl);
		if (n < 0)
			return;
		if (n < 12)
			continue;

		memset(&mb, 0, sizeof(mb));
		mb.buf = buf;
		mb.size = mb.end = (size_t)n;
		if (rtp_hdr_decode(&hdr, &mb) || hdr.ver != 2)
			continue;

		/* symmetric RTP: send where the peer sends from */
		if (!s->latched && !sa_set_sa(&src, (struct sockaddr *)&ss)) {
			s->dst = src;
			s->latched = true;
		}

		rtcp_rx_rtp(&s->rx, hdr.ssrc, hdr.seq, hdr.ts, at_us);

		if (s->pt_te >= 0 && hdr.pt == s->pt_te)
			dtmf_rx(s, hdr.ts, mbuf_buf(&mb), mbuf_get_left(&mb),
				now);
		else if (s->rec_on)
			rec_append(s, hdr.pt, mbuf_buf(&mb),
				   mbuf_get_left(&mb), now);
	}
}


/* ------------------------------------------------------------------ *
 * RTCP (RFC 3550 §6): a sender report and our CNAME every 5 s or so,
 * a BYE at the end; the report carries one reception report block of
 * the peer's stream once it sent RTP (rtcprx.c).
 * ------------------------------------------------------------------ */

static void rtcp_send(struct stream *s, uint64_t now, bool bye)
{
	uint8_t pkt[160];
	struct timespec wall;
	uint32_t ts;
	size_t n = 0, sdes, clen, rb;
	char cname[32];

	if (!s->send || !sa_isset(&s->dst_rtcp, SA_ALL))
		return;

	(void)clock_gettime(CLOCK_REALTIME, &wall);
	ts = s->ts - (uint32_t)((s->next > now ? s->next - now : 0) * 8);

	/* SR: V=2, PT=200, RC=0 and length 6, or RC=1 and 12 */
	n += 4;
	n += rtcp_put32(pkt + n, s->ssrc);
	n += rtcp_put32(pkt + n, (uint32_t)wall.tv_sec + 2208988800u);
	n += rtcp_put32(pkt + n, (uint32_t)(((uint64_t)wall.tv_nsec << 32) /
					1000000000u));
	n += rtcp_put32(pkt + n, ts);
	n += rtcp_put32(pkt + n, s->npkts);
	n += rtcp_put32(pkt + n, s->noctets);
	rb = rtcp_rx_block(&s->rx, pkt + n, now);
	n += rb;
	(void)rtcp_put32(pkt, rb ? 0x81c8000c : 0x80c80006);

	/* SDES: one chunk, CNAME (RFC 7022: random, per stream) */
	clen = (size_t)re_snprintf(cname, sizeof(cname), "%08x@sipstack",
				   s->ssrc ^ s->sid);
	sdes = n;
	n += 4;
	n += rtcp_put32(pkt + n, s->ssrc);
	pkt[n++] = 1;
	pkt[n++] = (uint8_t)clen;
	memcpy(pkt + n, cname, clen);
	n += clen;
	pkt[n++] = 0;                  /* END, then padding to 32 bits */
	while (n % 4)
		pkt[n++] = 0;
	(void)rtcp_put32(pkt + sdes, 0x81ca0000 | (uint32_t)((n - sdes) / 4 - 1));

	if (bye) {
		n += rtcp_put32(pkt + n, 0x81cb0001);
		n += rtcp_put32(pkt + n, s->ssrc);
	}

	(void)sendto(s->fd[1], pkt, n, 0, &s->dst_rtcp.u.sa,
		     s->dst_rtcp.len);
	s->rtcp_next = now + RTCP_INTERVAL / 2 + rand_u32() % RTCP_INTERVAL;
}


/* The peer's RTCP: its sender report's time is kept for our reports
 * (LSR); where it comes from is where ours goes (symmetric RTCP, as
 * for RTP) */
static void rtcp_recv_handler(int flags, void *arg)
{
	struct stream *s = arg;
	uint8_t buf[1500];
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	struct sa src;
	(void)flags;

	ssize_t n;

	while ((n = recvfrom(s->fd[1], buf, sizeof(buf), 0,
			     (struct sockaddr *)&ss, &sl)) >= 0) {
		rtcp_rx_rtcp(&s->rx, buf, (size_t)n, media_now_ms());
		if (!s->rtcp_latched &&
		    !sa_set_sa(&src, (struct sockaddr *)&ss)) {
			s->dst_rtcp = src;
			s->rtcp_latched = true;
		}
		sl = sizeof(ss);
	}
}


static void play_end(struct stream *s, uint64_t now)
{
	struct media_event ev;
	bool internal = s->internal;
	uint32_t seq = s->play_seq;

	stream_play_clear(s);
	if (internal) {
		if (s->rec_wait)
			rec_start(s, now);
		return;
	}

	memset(&ev, 0, sizeof(ev));
	ev.type = MEDIA_EV_PLAY_END;
	ev.seq = seq;
	engine_evt(s->me, s->sid, &ev);
}


/* The next 20 ms of audio: the prompts in turn, silence after */
static void audio_frame(struct stream *s, uint8_t *out, uint64_t now)
{
	size_t k = 0;

	while (k < MEDIA_SAMPLES && s->pl_i < s->pl_n) {
		const struct prompt *p = s->pl[s->pl_i];
		size_t m = p->n - s->pos;

		if (m > MEDIA_SAMPLES - k)
			m = MEDIA_SAMPLES - k;
		memcpy(out + k, (s->alaw ? p->alaw : p->ulaw) + s->pos, m);
		k += m;
		s->pos += m;
		if (s->pos >= p->n) {
			++s->pl_i;
			s->pos = 0;
		}
	}
	if (k < MEDIA_SAMPLES)
		memset(out + k, s->alaw ? 0xd5 : 0xff, MEDIA_SAMPLES - k);

	if (s->pl_n && s->pl_i >= s->pl_n)
		play_end(s, now);
}


/* One packet period of stream s: build, send (unless held), advance */
static void stream_tick(struct stream *s, uint64_t now, bool skip)
{
	uint8_t pkt[12 + MEDIA_SAMPLES];
	uint8_t *pl = pkt + 12;
	size_t plen = MEDIA_SAMPLES;
	uint32_t ts = s->ts;
	bool marker = false;
	int pt = s->pt;

	audio_frame(s, pl, now);

	if (s->dtmf_on) {
		unsigned k = s->dtmf_k++;
		unsigned dur = k < DTMF_TONE ? (k + 1) : DTMF_TONE;

		if (k == 0)
			s->dtmf_ts = s->ts;
		if (k < DTMF_TONE + DTMF_ENDS) {
			pl[0] = (uint8_t)telev_digit2code(s->dtmf[s->dtmf_i]);
			pl[1] = (uint8_t)((k >= DTMF_TONE ? 0x80 : 0) | 10);
			pl[2] = (uint8_t)((dur * MEDIA_SAMPLES) >> 8);
			pl[3] = (uint8_t)(dur * MEDIA_SAMPLES);
			plen = 4;
			pt = s->pt_te;
			ts = s->dtmf_ts;
			marker = k == 0;
			s->marker = true;   /* audio after it: a talkspurt */
		}
		if (k + 1 == DTMF_TONE + DTMF_ENDS &&
		    !s->dtmf[s->dtmf_i + 1]) {
			struct media_event ev;

			s->dtmf_on = false;
			memset(&ev, 0, sizeof(ev));
			ev.type = MEDIA_EV_DTMF_SENT;
			ev.seq = s->dtmf_seq;
			engine_evt(s->me, s->sid, &ev);
		}
		else if (k + 1 == DTMF_TONE + DTMF_ENDS + DTMF_GAP) {
			++s->dtmf_i;
			s->dtmf_k = 0;
		}
	}

	if (plen == MEDIA_SAMPLES) {
		marker = s->marker;
		s->marker = false;
	}

	pkt[0] = 0x80;
	pkt[1] = (uint8_t)((marker ? 0x80 : 0) | (pt & 0x7f));
	pkt[2] = (uint8_t)(s->seq >> 8);
	pkt[3] = (uint8_t)s->seq;
	pkt[4] = (uint8_t)(ts >> 24);
	pkt[5] = (uint8_t)(ts >> 16);
	pkt[6] = (uint8_t)(ts >> 8);
	pkt[7] = (uint8_t)ts;
	pkt[8] = (uint8_t)(s->ssrc >> 24);
	pkt[9] = (uint8_t)(s->ssrc >> 16);
	pkt[10] = (uint8_t)(s->ssrc >> 8);
	pkt[11] = (uint8_t)s->ssrc;

	if (!skip && s->send && sa_isset(&s->dst, SA_ALL)) {
		(void)sendto(s->fd[0], pkt, 12 + plen, 0, &s->dst.u.sa,
			     s->dst.len);
		++s->seq;
		++s->npkts;
		s->noctets += (uint32_t)plen;
	}
	else if (!skip && s->send) {
		++s->seq;           /* no address yet: as if lost */
	}
	s->ts += MEDIA_SAMPLES;
	s->next += MEDIA_PTIME;

	if (now >= s->rtcp_next)
		rtcp_send(s, now, false);
	if (s->rx_active && now - s->rx_last > DTMF_RX_IDLE)
		dtmf_rx_finish(s);
	if (s->rec_on && (now - s->rec_start >= s->rec_max ||
			  (s->rec_sil && now - s->rec_voice >= s->rec_sil)))
		rec_finish(s);
}


static void slot_run(struct media_engine *me, unsigned slot, uint64_t now)
{
	struct le *le = me->slots[slot].head;

	while (le) {
		struct stream *s = le->data;
		unsigned n = 0;

		le = le->next;
		while (s->next <= now && n++ < CATCHUP_MAX)
			stream_tick(s, now, false);
		/* a longer stall: time goes on, the packets are lost */
		while (s->next <= now)
			stream_tick(s, now, true);
	}
}


/* The timerfd: each ms, the streams whose deadline passed */
void stream_tick_handler(int flags, void *arg)
{
	struct media_engine *me = arg;
	uint64_t exp, now = media_now_ms(), t;
	(void)flags;

	if (read(me->tfd, &exp, sizeof(exp)) < 0)
		return;

	/* the thread's own timing: ticks come each ms; a longer gap is a
	 * stall of this thread (told at the end, engine.c) */
	if (now - me->last_ms > me->gap_max)
		me->gap_max = now - me->last_ms;
	if (now - me->last_ms > MEDIA_PTIME)
		++me->stalls;

	if (now - me->last_ms >= NSLOTS) {
		for (t = 0; t < NSLOTS; t++)
			slot_run(me, (unsigned)t, now);
	}
	else {
		for (t = me->last_ms + 1; t <= now; t++)
			slot_run(me, (unsigned)(t % NSLOTS), now);
	}
	me->last_ms = now;
}


static void ticker_set(struct media_engine *me, bool on)
{
	struct itimerspec its;

	memset(&its, 0, sizeof(its));
	if (on) {
		its.it_interval.tv_nsec = 1000000;
		its.it_value.tv_nsec = 1000000;
		me->last_ms = media_now_ms();
	}
	(void)timerfd_settime(me->tfd, 0, &its, NULL);
}


static bool stream_match(struct le *le, void *arg)
{
	const struct stream *s = le->data;

	return s->sid == *(const uint32_t *)arg;
}


static struct stream *stream_find(struct media_engine *me, uint32_t sid)
{
	struct le *le = hash_lookup(me->streams, sid, stream_match, &sid);

	return le ? le->data : NULL;
}


static void stream_open(struct media_engine *me, struct cmd *c)
{
	struct stream *s = mem_zalloc(sizeof(*s), stream_destructor);
	uint64_t now = media_now_ms();

	if (!s)
		return;
	s->me = me;
	s->sid = c->sid;
	s->fd[0] = c->fd[0];
	s->fd[1] = c->fd[1];
	c->fd[0] = c->fd[1] = -1;
	s->dst = c->dst;
	s->dst_rtcp = c->dst_rtcp;
	s->send = c->send;
	s->alaw = c->alaw;
	s->pt = c->pt;
	s->pt_te = c->pt_te;
	s->ssrc = rand_u32();
	s->seq = rand_u16();
	s->ts = rand_u32();
	s->marker = true;
	s->next = now + 1;
	s->rtcp_next = now + 1000 + rand_u32() % 1000;  /* a first one soon */

	if (fd_listen(s->fd[0], FD_READ, rtp_recv_handler, s) ||
	    fd_listen(s->fd[1], FD_READ, rtcp_recv_handler, s)) {
		mem_deref(s);
		return;
	}

	s->counted = true;
	hash_append(me->streams, s->sid, &s->le, s);
	list_append(&me->slots[s->next % NSLOTS], &s->le_slot, s);
	if (!me->nstreams++)
		ticker_set(me, true);
}


/* A command of the SIP loop for one stream (not CMD_QUIT) */
void stream_cmd(struct media_engine *me, struct cmd *c)
{
	struct stream *s;
	uint64_t now = media_now_ms();

	if (c->type == CMD_OPEN) {
		stream_open(me, c);
		return;
	}

	s = stream_find(me, c->sid);
	if (!s)
		return;

	switch (c->type) {

	case CMD_REMOTE:
		if (sa_isset(&c->dst, SA_ALL) &&
		    !sa_cmp(&c->dst, &s->dst, SA_ALL)) {
			s->dst = c->dst;
			s->dst_rtcp = c->dst_rtcp;
			s->latched = s->rtcp_latched = false;
		}
		if (c->send && !s->send)
			s->marker = true;
		s->send = c->send;
		if (c->pt >= 0) {
			s->pt = c->pt;
			s->alaw = c->alaw;
		}
		s->pt_te = c->pt_te;
		break;

	case CMD_CLOSE:
		mem_deref(s);       /* its destructor counts it out */
		if (!me->nstreams)
			ticker_set(me, false);
		break;

	case CMD_PLAY:
		if (c->seq < s->stop_below)
			break;
		stream_play_clear(s);
		s->pl = calloc(c->n, sizeof(*s->pl));
		if (!s->pl)
			break;
		memcpy(s->pl, c->prompts, c->n * sizeof(*s->pl));
		s->pl_n = c->n;
		c->n = 0;           /* the references are the stream's */
		s->play_seq = c->seq;
		s->marker = true;
		break;

	case CMD_STOP:
		if (c->seq + 1 > s->stop_below)
			s->stop_below = c->seq + 1;
		if (s->pl_n && !s->internal && s->play_seq == c->seq)
			stream_play_clear(s);
		if ((s->rec_on || s->rec_wait) && s->rec_seq == c->seq) {
			if (s->internal)
				stream_play_clear(s);
			rec_finish(s);
		}
		break;

	case CMD_DTMF:
		str_ncpy(s->dtmf, c->digits, sizeof(s->dtmf));
		s->dtmf_i = 0;
		s->dtmf_k = 0;
		s->dtmf_seq = c->seq;
		s->dtmf_on = s->dtmf[0] != '\0' && s->pt_te >= 0;
		break;

	case CMD_RECORD:
		if (c->seq < s->stop_below)
			break;
		if (s->rec_on || s->rec_wait)
			rec_finish(s);
		s->rec_cap = (size_t)c->max_ms * 8 + MEDIA_SAMPLES;
		s->rec = malloc(s->rec_cap * sizeof(*s->rec));
		if (!s->rec) {
			s->rec_cap = 0;
			break;
		}
		s->rec_n = 0;
		s->rec_path = c->path;
		c->path = NULL;
		s->rec_seq = c->seq;
		s->rec_max = c->max_ms;
		s->rec_sil = c->silence_ms;
		if (c->beep && me->beep) {
			stream_play_clear(s);
			s->pl = calloc(1, sizeof(*s->pl));
			if (s->pl) {
				s->pl[0] = prompt_ref(me->beep);
				s->pl_n = 1;
				s->internal = true;
				s->marker = true;
				s->rec_wait = true;
				break;
			}
		}
		rec_start(s, now);
		break;

	default:
		break;
	}
}


static bool stream_free_apply(struct le *le, void *arg)
{
	(void)arg;
	mem_deref(le->data);
	return false;
}


/* The media thread ends: every stream goes (a recording is written) */
void streams_close(struct media_engine *me)
{
	if (me->streams)
		(void)hash_apply(me->streams, stream_free_apply, NULL);
}
