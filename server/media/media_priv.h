/**
 * server/media/media_priv.h  What crosses files inside server/media/
 *
 * Not public API (that is media.h): the engine's struct and its three
 * queues (SIP loop -> media thread commands, any thread -> SIP loop
 * events, any thread -> file thread jobs), the prompt (decoded audio
 * shared read-only by the threads, with an atomic count since libre's
 * mem references are not), and G.711 and WAV helpers. Only
 * server/media/ includes it.
 */
#ifndef SIPSTACK_MEDIA_PRIV_H
#define SIPSTACK_MEDIA_PRIV_H

#include <pthread.h>
#include <stdatomic.h>

enum {
	MEDIA_PTIME = 20,              /* ms per packet                  */
	MEDIA_SAMPLES = 160,           /* per packet at 8 kHz            */
	PROMPT_MAX_BYTES = 64 * 1024 * 1024,
};

/* ---- prompts (wav.c) ---- */

/* A decoded prompt: its samples in both G.711 laws, so that sending is
 * a copy. Read-only once made; freed at the last prompt_unref, from
 * whichever thread. */
struct prompt {
	atomic_int refs;
	size_t n;                      /* samples                        */
	uint8_t *ulaw, *alaw;
};

struct prompt *prompt_ref(struct prompt *p);
void prompt_unref(struct prompt *p);
/* A prompt of n samples from linear ones */
struct prompt *prompt_from_linear(const int16_t *s, size_t n);
/* Read path (the file thread only): *pp, or err with what is wrong in
 * problem ("FILE: not a WAV file") */
int  prompt_load(struct prompt **pp, const char *path, char *problem,
		 size_t sz);
/* Write a PCM16 8 kHz mono WAV */
int  wav_write(const char *path, const int16_t *s, size_t n, char *problem,
	       size_t sz);

uint8_t g711_ulaw_enc(int16_t x);
uint8_t g711_alaw_enc(int16_t x);
int16_t g711_ulaw_dec(uint8_t u);
int16_t g711_alaw_dec(uint8_t a);


/* ---- the engine (engine.c; the media thread's part is stream.c's,
 * the file thread's files.c's) ---- */

struct cmd;

enum {
	NSLOTS = MEDIA_PTIME,          /* stream slots: one per ms of a
					* packet period                  */
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
	uint64_t gap_max;              /* ms, the longest between ticks  */
	uint32_t stalls;               /* ticks more than 20 ms apart    */
	uint32_t nstreams;
	struct prompt *beep;
	int mt_err;
	bool mt_ready;
	pthread_cond_t mt_cond;
};

/* CLOCK_MONOTONIC in ms (engine.c) */
uint64_t media_now_ms(void);

/* rtcprx.c: what a stream receives, counted for its RTCP reports
 * (RFC 3550 appendix A); lives in the stream, on the media thread */
struct rtcp_rx {
	bool on;                       /* a source seen                  */
	bool transit_set;
	uint32_t ssrc;                 /* the source counted             */
	uint16_t max_seq;
	uint32_t cycles, base_seq, bad_seq;
	uint32_t received, expected_prior, received_prior;
	int32_t transit;
	uint32_t jitter;               /* x16, timestamp units (A.8)     */
	uint32_t lsr;                  /* the peer's last SR, NTP middle */
	uint64_t lsr_at;               /* ms when it came, 0: none       */
};

void   rtcp_rx_rtp(struct rtcp_rx *rx, uint32_t ssrc, uint16_t seq,
		   uint32_t ts, uint64_t arrival_us);
void   rtcp_rx_rtcp(struct rtcp_rx *rx, const uint8_t *p, size_t n,
		    uint64_t now_ms);
size_t rtcp_rx_block(struct rtcp_rx *rx, uint8_t *p, uint64_t now_ms);
size_t rtcp_put32(uint8_t *p, uint32_t v);   /* network order; 4 */

/* stream.c: the media thread's streams */
void stream_cmd(struct media_engine *me, struct cmd *c);
void stream_tick_handler(int flags, void *arg);   /* the timerfd */
void streams_close(struct media_engine *me);

/* files.c: the file thread (arg: the engine) */
void *files_thread(void *arg);


/* ---- the engine's queues (engine.c) ---- */

enum cmd_type {
	CMD_OPEN = 0,      /* a stream: fds, remote, payload types      */
	CMD_REMOTE,        /* new remote address, sending or not        */
	CMD_CLOSE,
	CMD_PLAY,          /* prompts (references) to play              */
	CMD_STOP,          /* play or record seq                        */
	CMD_DTMF,
	CMD_RECORD,
	CMD_QUIT,
};

struct cmd {
	struct le le;
	enum cmd_type type;
	uint32_t sid, seq;
	int fd[2];
	struct sa dst, dst_rtcp;
	bool send, alaw;
	int pt, pt_te, pt_rx_te;       /* -1: none                      */
	struct prompt **prompts;       /* owned, n references           */
	size_t n;
	char digits[MEDIA_DTMF_MAX + 1];
	char *path;
	uint32_t max_ms, silence_ms;
	bool beep;
};

struct evt {
	struct le le;
	uint32_t sid;
	struct media_event ev;
	char problem[256];
};

enum job_type {
	JOB_LOAD = 0,      /* prompts for a play -> CMD_PLAY or an error */
	JOB_WRITE,         /* a recording -> MEDIA_EV_RECORD_END         */
};

struct job {
	struct le le;
	enum job_type type;
	uint32_t sid, seq;
	char **paths;                  /* JOB_LOAD                       */
	size_t n;
	char *path;                    /* JOB_WRITE                      */
	int16_t *samples;              /* JOB_WRITE, malloc'd            */
	size_t ns;
};

/* Queue c for the media thread (takes it) */
void engine_cmd(struct media_engine *me, struct cmd *c);
struct cmd *cmd_new(enum cmd_type type, uint32_t sid, uint32_t seq);
/* Queue an event for the SIP loop (from any thread) */
void engine_evt(struct media_engine *me, uint32_t sid,
		const struct media_event *ev);
/* Queue a job for the file thread (takes it) */
void engine_job(struct media_engine *me, struct job *j);
struct job *job_new(enum job_type type, uint32_t sid, uint32_t seq);

/* The SIP side: sessions by id, ports */
uint32_t engine_session_add(struct media_engine *me, struct le *le,
			    void *ms);
void engine_session_del(struct media_engine *me, struct le *le);
/* path joined to the prompts (or recordings) directory unless it is
 * absolute, in *outp (a mem string) */
int  engine_path(const struct media_engine *me, bool rec, const char *path,
		 char **outp);
/* An even port p and p+1 bound on laddr: fds and port */
int  engine_ports(struct media_engine *me, const struct sa *laddr,
		  int fd[2], uint16_t *portp);
/* session.c: an event for session ms (on the SIP loop) */
void session_event(void *ms, const struct media_event *ev);
uint32_t session_sid(const void *ms);

#endif
