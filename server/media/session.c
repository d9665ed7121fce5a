/**
 * server/media/session.c  A call's media session (the SIP loop's side)
 *
 * Owns struct media_session: the port pair (bound here, from the
 * engine's range, then handed to the media thread, which listens on
 * them), the SDP offer/answer of RFC 3264 through libre's sdp module
 * (PCMU, PCMA, telephone-event/8000, ptime 20; direction as offered),
 * what was negotiated (payload types, the peer's address, whether it
 * receives: hold stops our sending), and the commands of a session.
 * Exposes media_session_*() and media_play/stop/send_dtmf/record
 * (media.h). Uses the engine's queues (engine.c) and libre's sdp.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <re.h>
#include "media.h"
#include "media_priv.h"


struct media_session {
	struct le le;                  /* in the engine's sessions       */
	struct media_engine *me;       /* reference                      */
	uint32_t sid;
	struct sdp_session *sdp;
	struct sdp_media *m;
	uint16_t port;
	int fd[2];                     /* until the stream is opened     */
	bool open;                     /* the media thread has them      */
	bool offered;                  /* our offer waits for its answer */
	bool telev, sending, alaw;
	int pt, pt_te;
	struct sa raddr;
	media_event_h *eh;
	void *arg;
};


static void session_destructor(void *arg)
{
	struct media_session *ms = arg;

	if (ms->open) {
		struct cmd *c = cmd_new(CMD_CLOSE, ms->sid, 0);

		if (c)
			engine_cmd(ms->me, c);
	}
	else if (ms->fd[0] >= 0) {
		(void)close(ms->fd[0]);
		(void)close(ms->fd[1]);
	}
	if (ms->sid)
		engine_session_del(ms->me, &ms->le);
	mem_deref(ms->m);
	mem_deref(ms->sdp);
	mem_deref(ms->me);
}


uint32_t session_sid(const void *arg)
{
	const struct media_session *ms = arg;

	return ms->sid;
}


void session_event(void *arg, const struct media_event *ev)
{
	struct media_session *ms = arg;

	if (ms->eh)
		ms->eh(ms, ev, ms->arg);
}


int media_session_alloc(struct media_session **msp, struct media_engine *me,
			const struct sa *laddr, media_event_h *eh, void *arg)
{
	struct media_session *ms;
	int err;

	if (!msp || !me || !laddr)
		return EINVAL;

	ms = mem_zalloc(sizeof(*ms), session_destructor);
	if (!ms)
		return ENOMEM;
	ms->me = mem_ref(me);
	ms->fd[0] = ms->fd[1] = -1;
	ms->pt = ms->pt_te = -1;
	ms->eh = eh;
	ms->arg = arg;

	err = engine_ports(me, laddr, ms->fd, &ms->port);
	if (err)
		goto out;

	err = sdp_session_alloc(&ms->sdp, laddr);
	if (!err)
		err = sdp_media_add(&ms->m, ms->sdp, sdp_media_audio, ms->port,
				    sdp_proto_rtpavp);
	if (!err)
		err = sdp_format_add(NULL, ms->m, false, "0", "PCMU", 8000, 1,
				     NULL, NULL, NULL, false, NULL);
	if (!err)
		err = sdp_format_add(NULL, ms->m, false, "8", "PCMA", 8000, 1,
				     NULL, NULL, NULL, false, NULL);
	if (!err)
		err = sdp_format_add(NULL, ms->m, false, "101",
				     "telephone-event", 8000, 1, NULL, NULL,
				     NULL, false, "0-15");
	if (!err)
		err = sdp_media_set_lattr(ms->m, true, sdp_attr_ptime, "%u",
					  (unsigned)MEDIA_PTIME);
	if (err)
		goto out;
	sdp_media_set_ldir(ms->m, SDP_SENDRECV);

	ms->sid = engine_session_add(me, &ms->le, ms);

 out:
	if (err)
		mem_deref(ms);
	else
		*msp = ms;

	return err;
}


/* The direction of the first audio stream of sdp (its a= line, else
 * the session's, else sendrecv: RFC 3264 §5.1). libre's
 * sdp_media_rdir() keeps the first offer's direction across a session
 * update, so a hold re-INVITE would go unseen. */
static enum sdp_dir text_dir(const char *sdp, size_t len)
{
	static const struct {
		const char *a;
		enum sdp_dir d;
	} dirs[] = {
		{"a=sendrecv", SDP_SENDRECV}, {"a=sendonly", SDP_SENDONLY},
		{"a=recvonly", SDP_RECVONLY}, {"a=inactive", SDP_INACTIVE},
	};
	enum sdp_dir sess = SDP_SENDRECV, media = SDP_SENDRECV;
	bool in_audio = false, seen_m = false, media_set = false;
	struct pl l, rest;
	size_t i;

	rest.p = sdp;                   /* one line at a time */
	rest.l = len;
	while (rest.l) {
		const char *nl = pl_strchr(&rest, '\n');

		l.p = rest.p;
		l.l = nl ? (size_t)(nl - rest.p) : rest.l;
		rest.p += l.l + (nl ? 1 : 0);
		rest.l -= l.l + (nl ? 1 : 0);
		if (l.l && l.p[l.l - 1] == '\r')
			--l.l;

		if (l.l >= 2 && !memcmp(l.p, "m=", 2)) {
			if (in_audio)
				break;      /* the first audio stream only */
			seen_m = true;
			in_audio = l.l >= 8 && !memcmp(l.p, "m=audio ", 8);
			continue;
		}
		for (i = 0; i < ARRAY_SIZE(dirs); i++) {
			if (l.l != strlen(dirs[i].a) ||
			    memcmp(l.p, dirs[i].a, l.l))
				continue;
			if (!seen_m)
				sess = dirs[i].d;
			else if (in_audio) {
				media = dirs[i].d;
				media_set = true;
			}
		}
	}

	return media_set ? media : sess;
}


/* What the peer's description gives: our payload types (the first
 * G.711 law it lists that we have), telephone-event, where to send,
 * and whether it receives at all (hold) */
static int negotiate(struct media_session *ms, enum sdp_dir rdir)
{
	const struct list *l = sdp_media_format_lst(ms->m, false);
	const struct sa *ra = sdp_media_raddr(ms->m);
	struct le *le;
	int pt = -1, pt_te = -1;
	bool alaw = false;

	for (le = list_head(l); le; le = le->next) {
		const struct sdp_format *f = le->data;

		if (!f->sup)
			continue;
		if (pt < 0 && (!str_casecmp(f->name, "PCMU") ||
			       !str_casecmp(f->name, "PCMA"))) {
			pt = f->pt;
			alaw = !str_casecmp(f->name, "PCMA");
		}
		else if (pt_te < 0 &&
			 !str_casecmp(f->name, "telephone-event"))
			pt_te = f->pt;
	}
	if (pt < 0)
		return EPROTO;

	ms->pt = pt;
	ms->alaw = alaw;
	ms->pt_te = pt_te;
	ms->telev = pt_te >= 0;
	ms->raddr = *ra;
	ms->sending = sa_isset(ra, SA_ALL) && !sa_is_any(ra) &&
		(rdir & SDP_RECVONLY);

	return 0;
}


static int decode(struct media_session *ms, const char *sdp, size_t len,
		  bool offer)
{
	struct mbuf *mb = mbuf_alloc(len + 1);
	int err;

	if (!mb)
		return ENOMEM;
	err = mbuf_write_mem(mb, (const uint8_t *)sdp, len);
	mb->pos = 0;
	if (!err)
		err = sdp_decode(ms->sdp, mb, offer);
	mem_deref(mb);
	if (err)
		return EPROTO;

	return negotiate(ms, text_dir(sdp, len));
}


/* The stream to the media thread, or its new remote side */
static void stream_update(struct media_session *ms)
{
	struct cmd *c = cmd_new(ms->open ? CMD_REMOTE : CMD_OPEN, ms->sid, 0);

	if (!c)
		return;
	c->dst = ms->raddr;
	sdp_media_raddr_rtcp(ms->m, &c->dst_rtcp);
	c->send = ms->sending;
	c->pt = ms->pt;
	c->alaw = ms->alaw;
	c->pt_te = ms->pt_te;
	if (!ms->open) {
		c->fd[0] = ms->fd[0];
		c->fd[1] = ms->fd[1];
		ms->fd[0] = ms->fd[1] = -1;
		ms->open = true;
	}
	engine_cmd(ms->me, c);
}


int media_session_answer(struct media_session *ms, const char *offer,
			 size_t len, struct mbuf **mbp)
{
	int err;

	if (!ms || !mbp)
		return EINVAL;

	if (!offer || !len) {
		ms->offered = true;
		return sdp_encode(mbp, ms->sdp, true);
	}

	err = decode(ms, offer, len, true);
	if (!err)
		err = sdp_encode(mbp, ms->sdp, false);
	if (!err)
		stream_update(ms);

	return err;
}


int media_session_update(struct media_session *ms, const char *sdp,
			 size_t len)
{
	int err;

	if (!ms || !sdp || !len)
		return EINVAL;

	err = decode(ms, sdp, len, !ms->offered);
	ms->offered = false;
	if (!err)
		stream_update(ms);

	return err;
}


bool media_session_telev(const struct media_session *ms)
{
	return ms && ms->telev;
}


bool media_session_sending(const struct media_session *ms)
{
	return ms && ms->sending;
}


uint16_t media_session_port(const struct media_session *ms)
{
	return ms ? ms->port : 0;
}


const char *media_session_codec(const struct media_session *ms)
{
	if (!ms || ms->pt < 0)
		return NULL;

	return ms->alaw ? "PCMA" : "PCMU";
}


const struct sa *media_session_remote(const struct media_session *ms)
{
	return ms ? &ms->raddr : NULL;
}


int media_play(struct media_session *ms, uint32_t seq,
	       const char * const *files, size_t n)
{
	struct job *j;
	size_t i;

	if (!ms || !files || !n)
		return EINVAL;
	if (!ms->open)
		return ENOTCONN;

	j = job_new(JOB_LOAD, ms->sid, seq);
	if (!j)
		return ENOMEM;
	j->paths = mem_zalloc(n * sizeof(*j->paths), NULL);
	if (!j->paths)
		goto nomem;
	for (i = 0; i < n; i++) {
		if (engine_path(ms->me, false, files[i], &j->paths[i]))
			goto nomem;
		j->n = i + 1;
	}
	engine_job(ms->me, j);

	return 0;

 nomem:
	mem_deref(j);
	return ENOMEM;
}


int media_stop(struct media_session *ms, uint32_t seq)
{
	struct cmd *c;

	if (!ms)
		return EINVAL;
	if (!ms->open)
		return 0;
	c = cmd_new(CMD_STOP, ms->sid, seq);
	if (!c)
		return ENOMEM;
	engine_cmd(ms->me, c);

	return 0;
}


int media_send_dtmf(struct media_session *ms, uint32_t seq,
		    const char *digits)
{
	struct cmd *c;

	if (!ms || !digits || !digits[0] ||
	    strlen(digits) > MEDIA_DTMF_MAX)
		return EINVAL;
	if (!ms->open)
		return ENOTCONN;
	if (!ms->telev)
		return EPROTO;

	c = cmd_new(CMD_DTMF, ms->sid, seq);
	if (!c)
		return ENOMEM;
	str_ncpy(c->digits, digits, sizeof(c->digits));
	engine_cmd(ms->me, c);

	return 0;
}


int media_record(struct media_session *ms, uint32_t seq, const char *path,
		 uint32_t max_ms, uint32_t silence_ms, bool beep)
{
	struct cmd *c;

	if (!ms || !path || !max_ms)
		return EINVAL;
	if (!ms->open)
		return ENOTCONN;

	c = cmd_new(CMD_RECORD, ms->sid, seq);
	if (!c)
		return ENOMEM;
	if (engine_path(ms->me, true, path, &c->path)) {
		mem_deref(c);
		return ENOMEM;
	}
	c->max_ms = max_ms;
	c->silence_ms = silence_ms;
	c->beep = beep;
	engine_cmd(ms->me, c);

	return 0;
}


int media_session_debug(struct re_printf *pf,
			const struct media_session *ms)
{
	if (!ms)
		return 0;

	return re_hprintf(pf, "media sid=%u port=%u codec=%s remote=%J "
			  "sending=%d telev=%d", ms->sid, ms->port,
			  media_session_codec(ms), &ms->raddr, ms->sending,
			  ms->telev);
}
