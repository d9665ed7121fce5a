/**
 * server/media/engine.c  The media engine: its threads, queues, pacing
 *
 * Owns struct media_engine and the streams. Three threads meet here:
 *
 *   SIP loop     makes sessions (session.c), sends commands, gets events
 *   media thread its own libre loop (re_thread_init/re_main): every
 *                stream's sockets and one timerfd ticking each ms; a
 *                stream sends when its absolute deadline (start + k *
 *                20 ms) has passed, so nothing drifts. Streams are kept
 *                in 20 slots by deadline modulo 20 ms: a tick looks at
 *                the slots of the ms that passed, not at every stream,
 *                and a thousand streams need no timer each.
 *   file thread  reads and checks prompts (cached by path, size and
 *                mtime) and writes recordings: no loop ever blocks on
 *                a file.
 *
 * Queues: a list under a mutex each, and for the two loops a libre
 * mqueue as the doorbell, rung when the list goes from empty to not
 * empty (so the pipe cannot fill: libre's mqueue_push fails with
 * EAGAIN on a full pipe, and reads one record per wakeup); the file
 * thread waits on a condition variable. What crosses is plain data
 * whose owner changes with the message (libre's mem references are not
 * atomic); prompts are shared with an atomic count (wav.c).
 *
 * Exposes media_engine_*() (media.h) and the queues (media_priv.h).
 * Uses libre's loop, mqueue, rtp_hdr_decode and telev's digit codes;
 * not rtp_sock (it binds a random port on the calling thread's loop,
 * where we bind our range on the SIP loop and listen on the media
 * thread) nor telev's sender (its own clock; our pacer owns timing).
 */
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <netinet/in.h>
#include <re.h>
#include "media.h"
#include "media_priv.h"


enum {
	NSLOTS = MEDIA_PTIME,          /* one per ms of a packet period   */
	CATCHUP_MAX = 5,               /* packets sent late at once; a
					* longer stall skips (time kept)  */
	DTMF_TONE = 5,                 /* packets of a digit (100 ms)     */
	DTMF_ENDS = 3,                 /* end packets (RFC 4733 §2.5.1.4) */
	DTMF_GAP = 3,                  /* packets between digits          */
	DTMF_RX_IDLE = 500,            /* ms: an event without end ends   */
	SILENCE_LEVEL = 400,           /* mean |sample| of a voiced frame */
	MAX_FDS = 65536,
};

struct stream {
	struct le le;                  /* in mt.streams                  */
	struct le le_slot;             /* in mt.slots[next % NSLOTS]     */
	struct media_engine *me;
	uint32_t sid;
	int fd[2];
	struct sa dst;
	bool latched, send, alaw;
	int pt, pt_te;
	uint32_t ssrc, ts;
	uint16_t seq;
	uint64_t next;                 /* ms: deadline of the next packet */
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

struct media_engine {
	/* the SIP loop's */
	struct hash *sessions;
	uint32_t next_sid;
	uint32_t count;
	uint16_t port_min, port_max, port_next;
	char *dir_prompts, *dir_rec;
	struct mqueue *evt_mq;

	/* queues */
	pthread_mutex_t lock;
	struct list cmds, evts, jobs;
	pthread_cond_t job_cond;
	bool io_quit;

	/* the media thread's */
	pthread_t mthread, iothread;
	bool mstarted, iostarted;
	struct mqueue *cmd_mq;
	int tfd;
	struct hash *streams;
	struct list slots[NSLOTS];
	uint64_t last_ms;
	uint32_t nstreams;
	struct prompt *beep;
	int mt_err;
	bool mt_ready;
	pthread_cond_t mt_cond;
};


static uint64_t mono_ms(void)
{
	struct timespec t;

	(void)clock_gettime(CLOCK_MONOTONIC, &t);

	return (uint64_t)t.tv_sec * 1000 + (uint64_t)t.tv_nsec / 1000000;
}


/* ------------------------------------------------------------------ *
 * Queues
 * ------------------------------------------------------------------ */

static void cmd_destructor(void *arg)
{
	struct cmd *c = arg;
	size_t i;

	for (i = 0; i < c->n; i++)
		prompt_unref(c->prompts[i]);
	mem_deref(c->prompts);
	mem_deref(c->path);
	if (c->type == CMD_OPEN && c->fd[0] >= 0) {
		(void)close(c->fd[0]);
		(void)close(c->fd[1]);
	}
}


struct cmd *cmd_new(enum cmd_type type, uint32_t sid, uint32_t seq)
{
	struct cmd *c = mem_zalloc(sizeof(*c), cmd_destructor);

	if (!c)
		return NULL;
	c->type = type;
	c->sid = sid;
	c->seq = seq;
	c->fd[0] = c->fd[1] = -1;
	c->pt = c->pt_te = c->pt_rx_te = -1;

	return c;
}


void engine_cmd(struct media_engine *me, struct cmd *c)
{
	bool ring;

	pthread_mutex_lock(&me->lock);
	ring = list_isempty(&me->cmds);
	list_append(&me->cmds, &c->le, c);
	pthread_mutex_unlock(&me->lock);

	if (ring)
		(void)mqueue_push(me->cmd_mq, 0, NULL);
}


void engine_evt(struct media_engine *me, uint32_t sid,
		const struct media_event *ev)
{
	struct evt *e = mem_zalloc(sizeof(*e), NULL);
	bool ring;

	if (!e)
		return;
	e->sid = sid;
	e->ev = *ev;
	if (ev->problem)
		str_ncpy(e->problem, ev->problem, sizeof(e->problem));
	e->ev.problem = NULL;

	pthread_mutex_lock(&me->lock);
	ring = list_isempty(&me->evts);
	list_append(&me->evts, &e->le, e);
	pthread_mutex_unlock(&me->lock);

	if (ring)
		(void)mqueue_push(me->evt_mq, 0, NULL);
}


static void job_destructor(void *arg)
{
	struct job *j = arg;
	size_t i;

	for (i = 0; i < j->n; i++)
		mem_deref(j->paths[i]);
	mem_deref(j->paths);
	mem_deref(j->path);
	free(j->samples);
}


struct job *job_new(enum job_type type, uint32_t sid, uint32_t seq)
{
	struct job *j = mem_zalloc(sizeof(*j), job_destructor);

	if (!j)
		return NULL;
	j->type = type;
	j->sid = sid;
	j->seq = seq;

	return j;
}


void engine_job(struct media_engine *me, struct job *j)
{
	pthread_mutex_lock(&me->lock);
	list_append(&me->jobs, &j->le, j);
	pthread_cond_signal(&me->job_cond);
	pthread_mutex_unlock(&me->lock);
}


/* Take every queued element of l (under the lock) into out */
static void take_all(struct media_engine *me, struct list *l,
		     struct list *out)
{
	struct le *le;

	pthread_mutex_lock(&me->lock);
	*out = *l;
	list_init(l);
	pthread_mutex_unlock(&me->lock);

	/* each element names its list: now out */
	for (le = out->head; le; le = le->next)
		le->list = out;
}


static bool session_match(struct le *le, void *arg)
{
	return session_sid(le->data) == *(const uint32_t *)arg;
}


/* The SIP loop: events to their sessions (gone: dropped) */
static void evt_handler(int id, void *data, void *arg)
{
	struct media_engine *me = arg;
	struct list l;
	(void)id;
	(void)data;

	take_all(me, &me->evts, &l);
	while (!list_isempty(&l)) {
		struct evt *e = list_ledata(list_head(&l));
		struct le *le;

		list_unlink(&e->le);
		le = hash_lookup(me->sessions, e->sid, session_match, &e->sid);
		if (e->problem[0])
			e->ev.problem = e->problem;
		if (le)
			session_event(le->data, &e->ev);
		mem_deref(e);
	}
}


/* ------------------------------------------------------------------ *
 * The media thread: streams
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


static void stream_destructor(void *arg)
{
	struct stream *s = arg;

	if (s->rec_on || s->rec_wait)
		rec_finish(s);      /* a hangup keeps what was recorded */
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
	uint64_t now = mono_ms();
	int i;
	(void)flags;

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

		if (s->pt_te >= 0 && hdr.pt == s->pt_te)
			dtmf_rx(s, hdr.ts, mbuf_buf(&mb), mbuf_get_left(&mb),
				now);
		else if (s->rec_on)
			rec_append(s, hdr.pt, mbuf_buf(&mb),
				   mbuf_get_left(&mb), now);
	}
}


static void rtcp_recv_handler(int flags, void *arg)
{
	struct stream *s = arg;
	uint8_t buf[1500];
	(void)flags;

	while (recv(s->fd[1], buf, sizeof(buf), 0) >= 0)
		;
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
	}
	else if (!skip && s->send) {
		++s->seq;           /* no address yet: as if lost */
	}
	s->ts += MEDIA_SAMPLES;
	s->next += MEDIA_PTIME;

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


static void tick_handler(int flags, void *arg)
{
	struct media_engine *me = arg;
	uint64_t exp, now = mono_ms(), t;
	(void)flags;

	if (read(me->tfd, &exp, sizeof(exp)) < 0)
		return;

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
		me->last_ms = mono_ms();
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
	uint64_t now = mono_ms();

	if (!s)
		return;
	s->me = me;
	s->sid = c->sid;
	s->fd[0] = c->fd[0];
	s->fd[1] = c->fd[1];
	c->fd[0] = c->fd[1] = -1;
	s->dst = c->dst;
	s->send = c->send;
	s->alaw = c->alaw;
	s->pt = c->pt;
	s->pt_te = c->pt_te;
	s->ssrc = rand_u32();
	s->seq = rand_u16();
	s->ts = rand_u32();
	s->marker = true;
	s->next = now + 1;

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


static void cmd_run(struct media_engine *me, struct cmd *c)
{
	struct stream *s;
	uint64_t now = mono_ms();

	if (c->type == CMD_QUIT) {
		re_cancel();
		return;
	}
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
			s->latched = false;
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


static void cmd_handler(int id, void *data, void *arg)
{
	struct media_engine *me = arg;
	struct list l;
	(void)id;
	(void)data;

	take_all(me, &me->cmds, &l);
	while (!list_isempty(&l)) {
		struct cmd *c = list_ledata(list_head(&l));

		list_unlink(&c->le);
		cmd_run(me, c);
		mem_deref(c);
	}
}


static bool stream_free_apply(struct le *le, void *arg)
{
	(void)arg;
	mem_deref(le->data);
	return false;
}


static void *media_thread(void *arg)
{
	struct media_engine *me = arg;
	int16_t beep[1600];
	size_t i;
	int err;

	err = re_thread_init();
	if (!err) {
		(void)fd_setsize(MAX_FDS);
		err = mqueue_alloc(&me->cmd_mq, cmd_handler, me);
	}
	if (!err)
		err = hash_alloc(&me->streams, 1024);
	if (!err) {
		me->tfd = timerfd_create(CLOCK_MONOTONIC,
					 TFD_NONBLOCK | TFD_CLOEXEC);
		if (me->tfd < 0)
			err = errno;
	}
	if (!err)
		err = fd_listen(me->tfd, FD_READ, tick_handler, me);

	/* the beep before a recording: 200 ms of 1 kHz */
	for (i = 0; i < ARRAY_SIZE(beep); i++) {
		static const int16_t sine8[8] = {0, 5657, 8000, 5657, 0,
						 -5657, -8000, -5657};
		beep[i] = sine8[i % 8];
	}
	me->beep = prompt_from_linear(beep, ARRAY_SIZE(beep));

	pthread_mutex_lock(&me->lock);
	me->mt_err = err;
	me->mt_ready = true;
	pthread_cond_broadcast(&me->mt_cond);
	pthread_mutex_unlock(&me->lock);

	if (!err)
		(void)re_main(NULL);

	/* the commands left (the last is QUIT) */
	cmd_handler(0, NULL, me);
	if (me->streams)
		(void)hash_apply(me->streams, stream_free_apply, NULL);
	me->streams = mem_deref(me->streams);
	if (me->tfd >= 0) {
		fd_close(me->tfd);
		(void)close(me->tfd);
	}
	me->cmd_mq = mem_deref(me->cmd_mq);
	prompt_unref(me->beep);
	me->beep = NULL;
	re_thread_close();

	return NULL;
}


/* ------------------------------------------------------------------ *
 * The file thread
 * ------------------------------------------------------------------ */

enum { CACHE_SIZE = 64 };

struct cached {
	char *path;
	struct stat st;
	struct prompt *p;
	uint64_t used;
};

static struct prompt *cache_get(struct cached *cache, const char *path,
				char *problem, size_t sz, int *errp,
				uint64_t *clock)
{
	struct stat st;
	struct cached *c, *victim = &cache[0];
	struct prompt *p = NULL;
	size_t i;
	int err;

	if (!stat(path, &st)) {
		for (i = 0; i < CACHE_SIZE; i++) {
			c = &cache[i];
			if (c->path && !strcmp(c->path, path) &&
			    c->st.st_mtim.tv_sec == st.st_mtim.tv_sec &&
			    c->st.st_mtim.tv_nsec == st.st_mtim.tv_nsec &&
			    c->st.st_size == st.st_size &&
			    c->st.st_ino == st.st_ino) {
				c->used = ++*clock;
				return prompt_ref(c->p);
			}
		}
	}

	err = prompt_load(&p, path, problem, sz);
	if (err) {
		*errp = err;
		return NULL;
	}

	for (i = 0; i < CACHE_SIZE; i++) {
		if (!cache[i].path || cache[i].used < victim->used)
			victim = &cache[i];
		if (!cache[i].path)
			break;
	}
	victim->path = mem_deref(victim->path);
	prompt_unref(victim->p);
	victim->p = NULL;
	if (!str_dup(&victim->path, path)) {
		victim->st = st;
		victim->p = prompt_ref(p);
		victim->used = ++*clock;
	}

	return p;
}


static void job_run(struct media_engine *me, struct job *j,
		    struct cached *cache, uint64_t *clock)
{
	struct media_event ev;
	char problem[256] = "";
	struct cmd *c;
	size_t i;
	int err = 0;

	memset(&ev, 0, sizeof(ev));

	if (j->type == JOB_WRITE) {
		err = wav_write(j->path, j->samples, j->ns, problem,
				sizeof(problem));
		ev.type = MEDIA_EV_RECORD_END;
		ev.seq = j->seq;
		ev.err = err;
		ev.problem = problem;
		ev.dur_ms = (uint32_t)(j->ns / 8);
		engine_evt(me, j->sid, &ev);
		return;
	}

	c = cmd_new(CMD_PLAY, j->sid, j->seq);
	if (c)
		c->prompts = mem_zalloc(j->n * sizeof(*c->prompts), NULL);
	if (!c || !c->prompts) {
		err = ENOMEM;
		goto fail;
	}

	for (i = 0; i < j->n; i++) {
		c->prompts[i] = cache_get(cache, j->paths[i], problem,
					  sizeof(problem), &err, clock);
		if (!c->prompts[i])
			goto fail;
		c->n = i + 1;
	}

	engine_cmd(me, c);
	return;

 fail:
	mem_deref(c);
	ev.type = MEDIA_EV_PLAY_END;
	ev.seq = j->seq;
	ev.err = err ? err : ENOMEM;
	ev.problem = problem;
	engine_evt(me, j->sid, &ev);
}


static void *io_thread(void *arg)
{
	struct media_engine *me = arg;
	struct cached *cache = calloc(CACHE_SIZE, sizeof(*cache));
	uint64_t clock = 0;
	size_t i;

	for (;;) {
		struct job *j;

		pthread_mutex_lock(&me->lock);
		while (list_isempty(&me->jobs) && !me->io_quit)
			pthread_cond_wait(&me->job_cond, &me->lock);
		if (list_isempty(&me->jobs)) {
			pthread_mutex_unlock(&me->lock);
			break;
		}
		j = list_ledata(list_head(&me->jobs));
		list_unlink(&j->le);
		pthread_mutex_unlock(&me->lock);

		if (cache)
			job_run(me, j, cache, &clock);
		mem_deref(j);
	}

	for (i = 0; cache && i < CACHE_SIZE; i++) {
		mem_deref(cache[i].path);
		prompt_unref(cache[i].p);
	}
	free(cache);

	return NULL;
}


/* ------------------------------------------------------------------ *
 * The engine (the SIP loop's side)
 * ------------------------------------------------------------------ */

static void flush_list(struct list *l)
{
	while (!list_isempty(l)) {
		void *d = list_ledata(list_head(l));

		list_unlink(list_head(l));
		mem_deref(d);
	}
}


static void engine_destructor(void *arg)
{
	struct media_engine *me = arg;

	if (me->mstarted) {
		struct cmd *c = cmd_new(CMD_QUIT, 0, 0);

		if (c)
			engine_cmd(me, c);
		else
			(void)mqueue_push(me->cmd_mq, 0, NULL);
		(void)pthread_join(me->mthread, NULL);
	}
	if (me->iostarted) {
		pthread_mutex_lock(&me->lock);
		me->io_quit = true;
		pthread_cond_signal(&me->job_cond);
		pthread_mutex_unlock(&me->lock);
		(void)pthread_join(me->iothread, NULL);
	}

	flush_list(&me->cmds);
	flush_list(&me->jobs);
	flush_list(&me->evts);
	me->evt_mq = mem_deref(me->evt_mq);
	me->sessions = mem_deref(me->sessions);
	mem_deref(me->dir_prompts);
	mem_deref(me->dir_rec);
	pthread_cond_destroy(&me->job_cond);
	pthread_cond_destroy(&me->mt_cond);
	pthread_mutex_destroy(&me->lock);
}


int media_engine_alloc(struct media_engine **mep)
{
	struct media_engine *me;
	int err;

	if (!mep)
		return EINVAL;

	me = mem_zalloc(sizeof(*me), engine_destructor);
	if (!me)
		return ENOMEM;
	pthread_mutex_init(&me->lock, NULL);
	pthread_cond_init(&me->job_cond, NULL);
	pthread_cond_init(&me->mt_cond, NULL);
	me->tfd = -1;
	me->port_min = me->port_next = MEDIA_PORT_MIN;
	me->port_max = MEDIA_PORT_MAX;

	err = hash_alloc(&me->sessions, 256);
	if (!err)
		err = mqueue_alloc(&me->evt_mq, evt_handler, me);
	if (err)
		goto out;

	err = pthread_create(&me->mthread, NULL, media_thread, me);
	if (err)
		goto out;
	me->mstarted = true;
	(void)pthread_setname_np(me->mthread, "sipstack-media");

	pthread_mutex_lock(&me->lock);
	while (!me->mt_ready)
		pthread_cond_wait(&me->mt_cond, &me->lock);
	err = me->mt_err;
	pthread_mutex_unlock(&me->lock);
	if (err)
		goto out;

	err = pthread_create(&me->iothread, NULL, io_thread, me);
	if (err)
		goto out;
	me->iostarted = true;
	(void)pthread_setname_np(me->iothread, "sipstack-files");

 out:
	if (err)
		mem_deref(me);
	else
		*mep = me;

	return err;
}


int media_engine_set_ports(struct media_engine *me, uint16_t min,
			   uint16_t max)
{
	if (!me || min < 1024 || max <= min)
		return EINVAL;
	if (min & 1)
		++min;
	if (max - min < 1)
		return EINVAL;

	me->port_min = me->port_next = min;
	me->port_max = max;

	return 0;
}


int media_engine_set_dirs(struct media_engine *me, const char *prompts,
			  const char *recordings)
{
	char *p = NULL, *r = NULL;

	if (!me)
		return EINVAL;
	if ((prompts && *prompts && str_dup(&p, prompts)) ||
	    (recordings && *recordings && str_dup(&r, recordings))) {
		mem_deref(p);
		return ENOMEM;
	}
	mem_deref(me->dir_prompts);
	mem_deref(me->dir_rec);
	me->dir_prompts = p;
	me->dir_rec = r;

	return 0;
}


int engine_path(const struct media_engine *me, bool rec, const char *path,
		char **outp)
{
	const char *dir = rec ? me->dir_rec : me->dir_prompts;

	if (path[0] == '/' || !dir)
		return str_dup(outp, path);

	return re_sdprintf(outp, "%s/%s", dir, path);
}


int media_engine_set_realtime(struct media_engine *me, bool rt)
{
	struct sched_param sp;

	if (!me || !me->mstarted)
		return EINVAL;
	memset(&sp, 0, sizeof(sp));
	sp.sched_priority = rt ? 10 : 0;

	return pthread_setschedparam(me->mthread, rt ? SCHED_FIFO :
				     SCHED_OTHER, &sp);
}


uint32_t media_engine_count(const struct media_engine *me)
{
	return me ? me->count : 0;
}


int media_engine_debug(struct re_printf *pf, const struct media_engine *me)
{
	if (!me)
		return 0;

	return re_hprintf(pf, "media: sessions=%u ports=%u-%u", me->count,
			  me->port_min, me->port_max);
}


uint32_t engine_session_add(struct media_engine *me, struct le *le,
			    void *ms)
{
	uint32_t sid = ++me->next_sid;

	if (!sid)
		sid = ++me->next_sid;
	hash_append(me->sessions, sid, le, ms);
	++me->count;

	return sid;
}


void engine_session_del(struct media_engine *me, struct le *le)
{
	hash_unlink(le);
	--me->count;
}


static int bind_port(const struct sa *laddr, uint16_t port)
{
	struct sa a = *laddr;
	int fd = socket(sa_af(laddr), SOCK_DGRAM | SOCK_NONBLOCK |
			SOCK_CLOEXEC, IPPROTO_UDP);

	if (fd < 0)
		return -1;
	sa_set_port(&a, port);
	if (bind(fd, &a.u.sa, a.len)) {
		(void)close(fd);
		return -1;
	}

	return fd;
}


int engine_ports(struct media_engine *me, const struct sa *laddr, int fd[2],
		 uint16_t *portp)
{
	uint32_t pairs = (uint32_t)(me->port_max - me->port_min + 1) / 2;
	uint32_t i;

	for (i = 0; i < pairs; i++) {
		uint16_t p = me->port_next;

		me->port_next = (uint16_t)(p + 2);
		if (me->port_next + 1 > me->port_max || me->port_next < p)
			me->port_next = me->port_min;

		fd[0] = bind_port(laddr, p);
		if (fd[0] < 0)
			continue;
		fd[1] = bind_port(laddr, (uint16_t)(p + 1));
		if (fd[1] < 0) {
			(void)close(fd[0]);
			continue;
		}
		*portp = p;
		return 0;
	}

	return EADDRINUSE;
}
