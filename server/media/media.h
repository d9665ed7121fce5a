/**
 * server/media/media.h  Media for calls: RTP sessions, prompts, DTMF
 *
 * What server/media/ gives the bindings: the media engine (one media
 * thread with its own libre loop that paces every stream, one file
 * thread that reads prompts and writes recordings) and the media
 * session of a call (an RTP/RTCP port pair from the engine's range, the
 * SDP offer/answer of RFC 3264 with PCMU, PCMA and telephone-event,
 * and the commands play, stop, send DTMF, record).
 *
 * Everything here is called on the SIP loop's thread, and every event
 * comes back on it (media_event_h); the threads are the engine's own
 * business. The engine knows no call: the bindings tie a session to
 * one. Include <re.h> first.
 */
#ifndef SIPSTACK_MEDIA_H
#define SIPSTACK_MEDIA_H

struct media_engine;
struct media_session;

/* ---------------------------------------------------------------------
 * Engine (server/media/engine.c)
 * ------------------------------------------------------------------ */

enum {
	MEDIA_PORT_MIN = 20000,        /* default RTP port range          */
	MEDIA_PORT_MAX = 39999,
	MEDIA_DTMF_MAX = 32,           /* digits of one send_dtmf         */
};

/* Starts the media and file threads; the SIP loop is the calling
 * thread's (events come back to it). Freeing stops and joins them. */
int  media_engine_alloc(struct media_engine **mep);
/* RTP ports [min, max] (an even RTP port, RTCP on the next): EINVAL
 * unless 1024 <= min < max and there is room for one pair */
int  media_engine_set_ports(struct media_engine *me, uint16_t min,
			    uint16_t max);
/* Where relative prompt names and recording paths are (NULL or "":
 * the working directory) */
int  media_engine_set_dirs(struct media_engine *me, const char *prompts,
			   const char *recordings);
/* The media thread at a real-time priority (SCHED_FIFO 10) or back to
 * normal: EPERM without the privilege (CAP_SYS_NICE) */
int  media_engine_set_realtime(struct media_engine *me, bool rt);
uint32_t media_engine_count(const struct media_engine *me);
int  media_engine_debug(struct re_printf *pf, const struct media_engine *me);


/* ---------------------------------------------------------------------
 * Session: one call's audio stream (server/media/session.c)
 * ------------------------------------------------------------------ */

enum media_ev_type {
	MEDIA_EV_DTMF = 0,     /* a digit came (RFC 4733): digit, dur_ms  */
	MEDIA_EV_PLAY_END,     /* play seq ended: err, problem (a prompt) */
	MEDIA_EV_DTMF_SENT,    /* send_dtmf seq done                      */
	MEDIA_EV_RECORD_END,   /* record seq written: err, problem, dur_ms */
};

struct media_event {
	enum media_ev_type type;
	uint32_t seq;          /* the command's number                   */
	int err;
	const char *problem;   /* a prompt or recording: "FILE: what"    */
	char digit;            /* 0-9 * # A-D                            */
	uint32_t dur_ms;       /* a digit's, a recording's duration      */
};

typedef void (media_event_h)(struct media_session *ms,
			     const struct media_event *ev, void *arg);

/* A session on laddr (the address the peer sent its INVITE to): a port
 * pair bound now (EADDRINUSE: the range is full) */
int  media_session_alloc(struct media_session **msp, struct media_engine *me,
			 const struct sa *laddr, media_event_h *eh, void *arg);
/* Our answer to offer (NULL/0: no offer, *mbp is then our offer and
 * the answer comes through media_session_update). EPROTO: no codec in
 * common (a 488). The stream starts sending. */
int  media_session_answer(struct media_session *ms, const char *offer,
			  size_t len, struct mbuf **mbp);
/* The peer's new session description (re-INVITE, UPDATE, the ACK's
 * answer): a new address, hold (it does not receive: we stop
 * sending), unhold */
int  media_session_update(struct media_session *ms, const char *sdp,
			  size_t len);
bool media_session_telev(const struct media_session *ms);
bool media_session_sending(const struct media_session *ms);
uint16_t media_session_port(const struct media_session *ms);
const char *media_session_codec(const struct media_session *ms);
const struct sa *media_session_remote(const struct media_session *ms);

/* Play the WAV files (8 kHz mono: PCM16, mu-law, A-law) one after the
 * other; a play replaces the one playing. MEDIA_EV_PLAY_END when done,
 * with err EINVAL and problem when a file is not a usable prompt
 * (read and checked on the file thread). */
int  media_play(struct media_session *ms, uint32_t seq,
		const char * const *files, size_t n);
/* Stop play or record seq (a record still writes its file) */
int  media_stop(struct media_session *ms, uint32_t seq);
/* RFC 4733 events for digits ("0-9*#A-D"); EPROTO without
 * telephone-event */
int  media_send_dtmf(struct media_session *ms, uint32_t seq,
		     const char *digits);
/* Record what the peer sends into a WAV (PCM16, 8 kHz) at path for at
 * most max_ms, ended after silence_ms of silence (0: never), after a
 * beep if asked. MEDIA_EV_RECORD_END once the file is written. */
int  media_record(struct media_session *ms, uint32_t seq, const char *path,
		  uint32_t max_ms, uint32_t silence_ms, bool beep);
int  media_session_debug(struct re_printf *pf,
			 const struct media_session *ms);

#endif
