/**
 * bindings/api_media.c  Media for scripts: prompts, digits, recordings
 *
 * Owns struct lmedia, the Lua side of a call's media: its media
 * session (server/media/), the digits nobody waits for yet (type-ahead)
 * and the call's four waits (play, collect, send_dtmf, record), each an
 * op of the runtime's one yield shape (runtime.h) that the call's end
 * resumes at once with nil, "hangup". The media engine is the
 * runtime's (RT_SLOT_MEDIA), made at the first sip.media{} or media
 * answer; its threads live until the runtime goes.
 *
 * Exposes sip.media{}, call:answer{media = true} (through api_call.c),
 * call:media(), call:play(), call:collect(), call:send_dtmf(),
 * call:record() and the on_dtmf callback's digits; takes the call's
 * INFO application/dtmf-relay and application/dtmf. Uses media.h,
 * calls.h, and api_call.c for the call object.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <re.h>
#include "sipstack.h"
#include "media.h"
#include "runtime.h"


enum {
	BUF_MAX = 32,          /* digits kept for a later collect      */
	COLLECT_MAX = 64,
	PLAY_FILES_MAX = 32,
	DEFAULT_TIMEOUT_MS = 5000,
	DEFAULT_INTER_MS = 3000,
	RECORD_MAX_MS = 3600 * 1000,
};

static const char hangup_str[] = "hangup";

struct lmedia {
	struct lcall *lc;              /* NULL once the call ended       */
	struct call *call;             /* reference                      */
	struct media_session *ms;      /* NULL: no RTP (INFO digits only) */
	uint32_t seq;
	bool ended;
	char buf[BUF_MAX + 1];         /* type-ahead                     */

	struct rt_op *play;
	uint32_t play_seq;
	bool play_intr;

	struct rt_op *collect;
	bool c_on;
	char got[COLLECT_MAX + 1];
	size_t c_max;
	char c_term[17];
	uint32_t c_timeout, c_inter;
	struct tmr tmr_collect;

	struct rt_op *dtmf;
	uint32_t dtmf_seq;
	char info[MEDIA_DTMF_MAX + 1]; /* digits left to send by INFO    */

	struct rt_op *rec;
	uint32_t rec_seq;
};


static void lmedia_destructor(void *arg)
{
	struct lmedia *lm = arg;

	tmr_cancel(&lm->tmr_collect);
	mem_deref(lm->ms);
	mem_deref(lm->call);
}


/* Raises unless every key of the table at idx is one of keys (what
 * names them for the message) */
static void check_keys(lua_State *L, int idx, const char * const *keys,
		       const char *what)
{
	lua_pushnil(L);
	while (lua_next(L, idx)) {
		const char * const *k = keys;

		while (*k && (lua_type(L, -2) != LUA_TSTRING ||
			      strcmp(lua_tostring(L, -2), *k)))
			++k;
		if (!*k)
			luaL_argerror(L, idx, what);
		lua_pop(L, 1);
	}
}


/* ------------------------------------------------------------------ *
 * The engine
 * ------------------------------------------------------------------ */

static struct media_engine *engine(lua_State *L)
{
	struct luart *rt = rt_runtime(L);
	struct media_engine *me;

	if (!rt)
		return NULL;
	me = rt_slot(rt, RT_SLOT_MEDIA);
	if (me)
		return me;
	if (media_engine_alloc(&me))
		return NULL;
	rt_set_slot(rt, RT_SLOT_MEDIA, me);

	return me;
}


/* sip.media{rtp_ports = {min, max}, prompts = dir, recordings = dir} */
static int l_media_config(lua_State *L)
{
	static const char * const keys[] = {"rtp_ports", "prompts",
					    "recordings", "realtime", NULL};
	lua_Integer min = MEDIA_PORT_MIN, max = MEDIA_PORT_MAX;
	struct media_engine *me;
	const char *prompts, *recs;

	luaL_checktype(L, 1, LUA_TTABLE);
	check_keys(L, 1, keys, "media: rtp_ports, prompts, recordings, "
		   "realtime");
	lua_getfield(L, 1, "prompts");
	lua_getfield(L, 1, "recordings");
	prompts = lua_tostring(L, -2);
	recs = lua_tostring(L, -1);
	if ((!lua_isnil(L, -2) && lua_type(L, -2) != LUA_TSTRING) ||
	    (!lua_isnil(L, -1) && lua_type(L, -1) != LUA_TSTRING))
		return luaL_argerror(L, 1, "prompts, recordings: directory "
				     "names expected");
	lua_getfield(L, 1, "rtp_ports");
	if (!lua_isnil(L, -1)) {
		if (!lua_istable(L, -1))
			return luaL_argerror(L, 1, "rtp_ports: {min, max}");
		lua_rawgeti(L, -1, 1);
		lua_rawgeti(L, -2, 2);
		if (!lua_isnumber(L, -2) || !lua_isnumber(L, -1))
			return luaL_argerror(L, 1, "rtp_ports: {min, max}");
		min = lua_tointeger(L, -2);
		max = lua_tointeger(L, -1);
		if (min < 1024 || max > 65535 || max < min + 1)
			return luaL_argerror(L, 1, "rtp_ports: 1024 <= min "
					     "< max <= 65535");
	}

	if (!rt_runtime(L))
		return 0;          /* sipstack --check */
	me = engine(L);
	if (!me)
		return luaL_error(L, "media: the media engine did not start");
	(void)media_engine_set_ports(me, (uint16_t)min, (uint16_t)max);
	if (media_engine_set_dirs(me, prompts, recs))
		return luaL_error(L, "media: out of memory");
	lua_getfield(L, 1, "realtime");
	if (lua_toboolean(L, -1)) {
		int err = media_engine_set_realtime(me, true);

		slog(err ? LOG_WARN : LOG_INFO, "media", "realtime", NULL,
		     "ok=%s err=%m", err ? "false" : "true", err);
	}

	return 0;
}


/* ------------------------------------------------------------------ *
 * Digits
 * ------------------------------------------------------------------ */

static int push_nothing(lua_State *co, void *arg)
{
	(void)co;
	(void)arg;
	return 0;
}


static int push_digit(lua_State *co, void *arg)
{
	const char *d = arg;

	lua_pushlstring(co, d, 1);
	return 1;
}


static int push_str(lua_State *co, void *arg)
{
	lua_pushstring(co, arg);
	return 1;
}


static int push_fail(lua_State *co, void *arg)
{
	lua_pushnil(co);
	lua_pushstring(co, arg);
	return 2;
}


static int push_true(lua_State *co, void *arg)
{
	(void)arg;
	lua_pushboolean(co, 1);
	return 1;
}


static int push_seconds(lua_State *co, void *arg)
{
	lua_pushnumber(co, (lua_Number)*(const uint32_t *)arg / 1000.0);
	return 1;
}


/* End op *opp (cleared first: the task may start another at once) */
static void finish(struct rt_op **opp, rt_push_h *push, void *arg)
{
	struct rt_op *op = *opp;

	*opp = NULL;
	if (op)
		rt_op_resume(op, push, arg);
}


/* max digits or the terminator: the digits (maybe "": only the
 * terminator) */
static void collect_done(struct lmedia *lm)
{
	lm->c_on = false;
	tmr_cancel(&lm->tmr_collect);
	finish(&lm->collect, push_str, lm->got);
}


static void collect_timeout(void *arg)
{
	struct lmedia *lm = arg;

	lm->c_on = false;
	if (lm->got[0])
		finish(&lm->collect, push_str, lm->got);
	else
		finish(&lm->collect, push_fail, (void *)rt_errstr(ETIMEDOUT));
}


/* One digit for a running collect: true when it is complete */
static bool collect_feed(struct lmedia *lm, char d)
{
	size_t n = strlen(lm->got);

	if (lm->c_term[0] && strchr(lm->c_term, d))
		return true;
	lm->got[n++] = d;
	lm->got[n] = '\0';

	return n >= lm->c_max;
}


/* A digit came (RFC 4733 or INFO): on_dtmf, then the interruptible
 * play, a record, the collect, or the type-ahead buffer, in this order */
static void digit_in(struct lmedia *lm, char d, uint32_t dur_ms)
{
	char s[2] = {d, '\0'};
	size_t n;

	if (lm->ended)
		return;
	mem_ref(lm);

	if (lm->lc)
		api_call_dtmf(lm->lc, d, dur_ms);

	if (lm->play && lm->play_intr) {
		(void)media_stop(lm->ms, lm->play_seq);
		finish(&lm->play, push_digit, s);
	}
	else if (lm->rec) {
		(void)media_stop(lm->ms, lm->rec_seq);   /* RECORD_END comes */
	}
	else if (lm->collect && lm->c_on) {
		if (collect_feed(lm, d))
			collect_done(lm);
		else
			tmr_start(&lm->tmr_collect, lm->c_inter,
				  collect_timeout, lm);
	}
	else {
		n = strlen(lm->buf);
		if (n == BUF_MAX) {
			memmove(lm->buf, lm->buf + 1, BUF_MAX - 1);
			--n;
		}
		lm->buf[n] = d;
		lm->buf[n + 1] = '\0';
	}

	mem_deref(lm);
}


/* A prompt or a recording failed: logged (warn: the script's files,
 * not our fault), and op gets nil, "FILE: problem" */
static void fail_file(struct lmedia *lm, struct rt_op **opp,
		      const char *logev, const struct media_event *ev)
{
	const char *p = ev->problem ? ev->problem : rt_errstr(ev->err);

	slog(LOG_WARN, "media", logev, NULL, "callid=%H problem=%H", log_q,
	     call_id(lm->call), log_q, p);
	finish(opp, push_fail, (void *)p);
}


static void media_event_handler(struct media_session *ms,
				const struct media_event *ev, void *arg)
{
	struct lmedia *lm = arg;
	(void)ms;

	switch (ev->type) {

	case MEDIA_EV_DTMF:
		digit_in(lm, ev->digit, ev->dur_ms);
		break;

	case MEDIA_EV_PLAY_END:
		if (!lm->play || ev->seq != lm->play_seq)
			break;
		if (ev->err)
			fail_file(lm, &lm->play, "prompt_error", ev);
		else
			finish(&lm->play, push_nothing, NULL);
		break;

	case MEDIA_EV_DTMF_SENT:
		if (lm->dtmf && ev->seq == lm->dtmf_seq)
			finish(&lm->dtmf, push_true, NULL);
		break;

	case MEDIA_EV_RECORD_END:
		if (!lm->rec || ev->seq != lm->rec_seq)
			break;
		if (ev->err) {
			fail_file(lm, &lm->rec, "record_error", ev);
		}
		else {
			uint32_t ms_ = ev->dur_ms;

			finish(&lm->rec, push_seconds, &ms_);
		}
		break;
	}
}


/* ------------------------------------------------------------------ *
 * The call's side (api_call.c calls these)
 * ------------------------------------------------------------------ */

static struct lmedia *lmedia_get(struct lcall *lc)
{
	struct lmedia **lmp = api_call_media(lc);

	if (!*lmp) {
		struct lmedia *lm = mem_zalloc(sizeof(*lm),
					       lmedia_destructor);

		if (!lm)
			return NULL;
		lm->lc = lc;
		lm->call = mem_ref(api_call_of(lc));
		tmr_init(&lm->tmr_collect);
		*lmp = lm;
	}

	return *lmp;
}


void api_media_enable(struct lcall *lc)
{
	if (!call_is_ended(api_call_of(lc)))
		(void)lmedia_get(lc);
}


void api_media_sdp(struct lmedia *lm, const uint8_t *body, size_t len)
{
	int err;

	if (!lm || !lm->ms || lm->ended)
		return;

	err = media_session_update(lm->ms, (const char *)body, len);
	slog(err ? LOG_INFO : LOG_DEBUG, "media", err ? "sdp_refused" :
	     "sdp", NULL, "callid=%H err=%d sending=%d", log_q,
	     call_id(lm->call), err, media_session_sending(lm->ms));
}


/* INFO application/dtmf-relay ("Signal=5\r\nDuration=160") or
 * application/dtmf ("5"): a digit; true when taken (answered 200) */
bool api_media_info(struct lmedia *lm, struct stack_req *req)
{
	const struct sip_msg *msg = stack_req_msg(req);
	const struct sip_hdr *ct;
	struct pl body, sig = PL_INIT, dur = PL_INIT;
	char d = 0;

	if (!lm || lm->ended || pl_strcasecmp(&msg->met, "INFO"))
		return false;
	ct = sip_msg_hdr(msg, SIP_HDR_CONTENT_TYPE);
	if (!ct)
		return false;
	stack_msg_body(msg, &body);

	if (!pl_strcasecmp(&ct->val, "application/dtmf-relay")) {
		if (re_regex(body.p, body.l, "Signal[ \t]*=[ \t]*[^ \t\r\n]+",
			     NULL, NULL, &sig))
			sig.l = 0;
		(void)re_regex(body.p, body.l,
			       "Duration[ \t]*=[ \t]*[0-9]+", NULL, NULL, &dur);
	}
	else if (!pl_strcasecmp(&ct->val, "application/dtmf")) {
		sig = body;
		while (sig.l && (sig.p[sig.l - 1] == '\r' ||
				 sig.p[sig.l - 1] == '\n' ||
				 sig.p[sig.l - 1] == ' '))
			--sig.l;
	}
	else {
		return false;
	}

	if (sig.l == 1 && strchr("0123456789*#ABCDabcd", sig.p[0]))
		d = (char)toupper((unsigned char)sig.p[0]);
	else if (sig.l == 2 && sig.p[0] == '1' && sig.p[1] >= '0' &&
		 sig.p[1] <= '5')
		d = "*#ABCD"[sig.p[1] - '0'];   /* 10-15 (RFC 4733 codes) */

	if (!d) {
		(void)stack_req_reply(req, 400, "Bad DTMF Signal", NULL, NULL,
				      NULL, 0);
		return true;
	}

	(void)stack_req_reply(req, 200, "OK", NULL, NULL, NULL, 0);
	digit_in(lm, d, dur.l ? pl_u32(&dur) : 0);

	return true;
}


/* The call ended: every wait returns nil, "hangup" now, the stream
 * goes (a recording still writes its file) */
void api_media_end(struct lmedia *lm)
{
	if (!lm || lm->ended)
		return;

	mem_ref(lm);
	lm->ended = true;
	lm->lc = NULL;
	lm->c_on = false;
	tmr_cancel(&lm->tmr_collect);
	finish(&lm->play, push_fail, (void *)hangup_str);
	finish(&lm->collect, push_fail, (void *)hangup_str);
	finish(&lm->dtmf, push_fail, (void *)hangup_str);
	finish(&lm->rec, push_fail, (void *)hangup_str);
	lm->ms = mem_deref(lm->ms);
	mem_deref(lm);
}


/* call:answer{media = true}: our SDP answer (or offer) from the media
 * session, then the 200; 488 when no codec is in common */
int api_media_answer(lua_State *L, struct lcall *lc, int idx)
{
	struct call *call = api_call_of(lc);
	const struct sip_msg *inv;
	struct media_engine *me;
	struct lmedia *lm;
	struct mbuf *mb = NULL;
	const char *offer, *ctype = NULL;
	size_t len = 0;
	int err;

	static const char * const keys[] = {"media", NULL};

	check_keys(L, idx, keys, "answer: {media = true}");
	lua_getfield(L, idx, "media");
	if (!lua_toboolean(L, -1))
		return luaL_argerror(L, idx, "answer: {media = true}");
	lua_pop(L, 1);
	if (call_is_outgoing(call))
		return luaL_error(L, "answer: not an incoming call");

	inv = call_invite(call);
	if (!inv || call_is_ended(call) || call_is_answered(call))
		return rt_fail(L, call_is_answered(call) ? EALREADY :
			       ENOTCONN);
	me = engine(L);
	lm = lmedia_get(lc);
	if (!me || !lm)
		return luaL_error(L, "answer: the media engine did not start");
	if (lm->ms)
		return rt_fail(L, EALREADY);

	err = media_session_alloc(&lm->ms, me, &inv->dst,
				  media_event_handler, lm);
	if (err) {
		slog(LOG_WARN, "media", "no_port", NULL, "callid=%H err=%m",
		     log_q, call_id(call), err);
		lua_pushnil(L);
		lua_pushliteral(L, "no rtp port");
		return 2;
	}

	offer = call_remote_body(call, &len, &ctype);
	if (!ctype || str_casecmp(ctype, "application/sdp"))
		offer = NULL;
	err = media_session_answer(lm->ms, offer, offer ? len : 0, &mb);
	if (err == EPROTO) {
		lm->ms = mem_deref(lm->ms);
		(void)call_reject(call, 488, "Not Acceptable Here", NULL);
		lua_pushnil(L);
		lua_pushliteral(L, "not acceptable");
		return 2;
	}
	if (!err)
		err = call_answer(call, NULL, "application/sdp", mb->buf,
				  mb->end);
	mem_deref(mb);
	if (err)
		lm->ms = mem_deref(lm->ms);

	return rt_result(L, err);
}


/* sip.call(uri, nil, nil, {media = true}): our SDP offer for the INVITE
 * in *mbp, from a media session on the address we send from; *lmp is
 * its lmedia, tied to the call by api_media_attach() once it exists.
 * The stream starts with the answer (the 2xx's SDP, CALL_EV_SDP). */
int api_media_offer(lua_State *L, struct lmedia **lmp, struct mbuf **mbp)
{
	struct media_engine *me = engine(L);
	struct stack *st = rt_stack(L);
	struct lmedia *lm;
	struct uri u;
	struct pl pl;
	struct sa laddr;
	char local[256];
	int err;

	if (!me || !st)
		return ENOTCONN;
	err = stack_local_uri(st, SIP_TRANSP_NONE, local, sizeof(local));
	if (err)
		return err;
	pl_set_str(&pl, local);
	if (uri_decode(&u, &pl) || sa_set(&laddr, &u.host, 0))
		return EDESTADDRREQ;

	lm = mem_zalloc(sizeof(*lm), lmedia_destructor);
	if (!lm)
		return ENOMEM;
	tmr_init(&lm->tmr_collect);
	err = media_session_alloc(&lm->ms, me, &laddr, media_event_handler,
				  lm);
	if (!err)
		err = media_session_answer(lm->ms, NULL, 0, mbp);
	if (err) {
		mem_deref(lm);
		return err;
	}
	*lmp = lm;

	return 0;
}


void api_media_attach(struct lmedia *lm, struct lcall *lc)
{
	struct lmedia **lmp = api_call_media(lc);

	mem_deref(*lmp);
	*lmp = lm;
	lm->lc = lc;
	lm->call = mem_ref(api_call_of(lc));
}


/* ------------------------------------------------------------------ *
 * The methods
 * ------------------------------------------------------------------ */

/* The call's lmedia for method fn: NULL (and nil, "hangup" pushed)
 * once the call ended; raises without media when need_rtp */
static struct lmedia *check_media(lua_State *L, const char *fn,
				  bool need_rtp)
{
	struct lcall *lc = api_call_lcall(L, 1);
	struct call *call = api_call_of(lc);
	struct lmedia *lm;

	if (call_is_ended(call)) {
		lua_pushnil(L);
		lua_pushstring(L, hangup_str);
		return NULL;
	}
	lm = lmedia_get(lc);
	if (!lm) {
		luaL_error(L, "%s: out of memory", fn);
		return NULL;
	}
	if (need_rtp && !lm->ms)
		luaL_error(L, "%s: the call has no media (answer it with "
			   "call:answer{media = true})", fn);

	return lm;
}


static void play_cleanup(struct rt_op *op, void *ctx)
{
	struct lmedia *lm = ctx;

	if (lm->play == op) {           /* the task went first */
		lm->play = NULL;
		(void)media_stop(lm->ms, lm->play_seq);
	}
}


/* call:play(file | {files}, {interruptible = bool}) -> digit | nil
 * | nil, err */
static int l_play(lua_State *L)
{
	const char *files[PLAY_FILES_MAX];
	struct lmedia *lm;
	struct rt_op *op;
	bool intr = false;
	size_t n = 0, i;
	char d[2] = {0, 0};
	int err;

	if (lua_istable(L, 2)) {
		n = lua_objlen(L, 2);
		if (!n || n > PLAY_FILES_MAX)
			return luaL_argerror(L, 2, "1 to 32 files expected");
		for (i = 0; i < n; i++) {
			lua_rawgeti(L, 2, (int)i + 1);
			files[i] = lua_tostring(L, -1);
			if (!files[i] || lua_type(L, -1) != LUA_TSTRING)
				return luaL_argerror(L, 2, "file names "
						     "expected");
			lua_pop(L, 1);   /* the table keeps it */
		}
	}
	else {
		files[0] = luaL_checkstring(L, 2);
		n = 1;
	}
	if (!lua_isnoneornil(L, 3)) {
		static const char * const keys[] = {"interruptible",
						    NULL};

		luaL_checktype(L, 3, LUA_TTABLE);
		check_keys(L, 3, keys, "options: 'interruptible' only");
		lua_getfield(L, 3, "interruptible");
		intr = lua_toboolean(L, -1);
		lua_pop(L, 1);
	}
	rt_need_task(L, "play");

	lm = check_media(L, "play", true);
	if (!lm)
		return 2;
	if (lm->play)
		return rt_fail(L, EBUSY);

	/* type-ahead: a digit pressed already skips the prompt */
	if (intr && lm->buf[0]) {
		d[0] = lm->buf[0];
		memmove(lm->buf, lm->buf + 1, strlen(lm->buf));
		lua_pushstring(L, d);
		return 1;
	}

	op = rt_op_start(L, "play");
	lm->play_seq = ++lm->seq;
	err = media_play(lm->ms, lm->play_seq, files, n);
	if (err)
		return rt_op_abort(L, op, err);
	lm->play = op;
	lm->play_intr = intr;
	rt_op_cleanup(op, play_cleanup, lm);

	return rt_op_yield(L, op);
}


static void collect_cleanup(struct rt_op *op, void *ctx)
{
	struct lmedia *lm = ctx;

	if (lm->collect == op) {
		lm->collect = NULL;
		lm->c_on = false;
		tmr_cancel(&lm->tmr_collect);
	}
}


static uint32_t opt_ms(lua_State *L, int t, const char *key, uint32_t def)
{
	lua_Number v = 0;

	lua_getfield(L, t, key);
	if (lua_isnil(L, -1)) {
		lua_pop(L, 1);
		return def;
	}
	if (!lua_isnumber(L, -1) || (v = lua_tonumber(L, -1)) < 0 ||
	    v > 86400)
		luaL_argerror(L, t, lua_pushfstring(L, "%s: seconds "
						    "expected", key));
	lua_pop(L, 1);

	return (uint32_t)(v * 1000);
}


/* call:collect{max =, timeout =, inter_digit =, terminator =} ->
 * digits | nil, "timeout" | nil, "hangup" */
static int l_collect(lua_State *L)
{
	static const char * const keys[] = {"max", "timeout",
					    "inter_digit", "terminator",
					    NULL};
	struct lmedia *lm;
	struct rt_op *op;
	lua_Integer max = 1;
	const char *term = "";
	uint32_t timeout, inter;

	if (!lua_isnoneornil(L, 2)) {
		luaL_checktype(L, 2, LUA_TTABLE);
		check_keys(L, 2, keys, "options: max, timeout, "
			   "inter_digit, terminator");
	}
	else {
		lua_newtable(L);
		lua_replace(L, 2);
	}
	lua_getfield(L, 2, "max");
	if (!lua_isnil(L, -1)) {
		max = lua_tointeger(L, -1);
		if (!lua_isnumber(L, -1) || max < 1 || max > COLLECT_MAX)
			return luaL_argerror(L, 2, "max: 1 to 64");
	}
	lua_pop(L, 1);
	lua_getfield(L, 2, "terminator");
	if (!lua_isnil(L, -1)) {
		term = lua_tostring(L, -1);
		if (!term || lua_type(L, -1) != LUA_TSTRING ||
		    strlen(term) > 16 ||
		    strspn(term, "0123456789*#ABCD") != strlen(term))
			return luaL_argerror(L, 2, "terminator: digits "
					     "expected");
	}
	timeout = opt_ms(L, 2, "timeout", DEFAULT_TIMEOUT_MS);
	inter = opt_ms(L, 2, "inter_digit", DEFAULT_INTER_MS);
	rt_need_task(L, "collect");

	lm = check_media(L, "collect", false);
	if (!lm)
		return 2;
	if (lm->collect)
		return rt_fail(L, EBUSY);

	lm->got[0] = '\0';
	lm->c_max = (size_t)max;
	str_ncpy(lm->c_term, term, sizeof(lm->c_term));
	lm->c_timeout = timeout;
	lm->c_inter = inter;

	/* the type-ahead first */
	while (lm->buf[0]) {
		char d = lm->buf[0];

		memmove(lm->buf, lm->buf + 1, strlen(lm->buf));
		if (collect_feed(lm, d)) {
			lua_pushstring(L, lm->got);
			return 1;
		}
	}

	op = rt_op_start(L, "collect");
	lm->collect = op;
	lm->c_on = true;
	rt_op_cleanup(op, collect_cleanup, lm);
	tmr_start(&lm->tmr_collect, lm->got[0] ? inter : timeout,
		  collect_timeout, lm);

	return rt_op_yield(L, op);
}


static void dtmf_cleanup(struct rt_op *op, void *ctx)
{
	struct lmedia *lm = ctx;

	if (lm->dtmf == op) {
		lm->dtmf = NULL;
		lm->info[0] = '\0';
	}
}


static int info_next(struct lmedia *lm);

/* One INFO digit in flight: the send_dtmf it belongs to */
struct info_req {
	struct lmedia *lm;            /* reference */
	uint32_t seq;
};


static void info_req_destructor(void *arg)
{
	struct info_req *ir = arg;

	mem_deref(ir->lm);
}


/* The answer to one INFO digit: the next, or the end; nothing when its
 * send_dtmf is over (the task went, the call ended) */
static void info_resp(int err, const struct sip_msg *msg, void *arg)
{
	struct info_req *ir = arg;
	struct lmedia *lm = ir->lm;

	if (lm->dtmf && !lm->ended && lm->dtmf_seq == ir->seq) {
		if (err)
			finish(&lm->dtmf, push_fail, (void *)rt_errstr(err));
		else if (msg && msg->scode >= 300)
			finish(&lm->dtmf, push_fail, (void *)"rejected");
		else if (!lm->info[0])
			finish(&lm->dtmf, push_true, NULL);
		else if ((err = info_next(lm)) != 0)
			finish(&lm->dtmf, push_fail, (void *)rt_errstr(err));
	}

	mem_deref(ir);
}


static int info_next(struct lmedia *lm)
{
	struct info_req *ir;
	char body[64];
	int n, err;

	ir = mem_zalloc(sizeof(*ir), info_req_destructor);
	if (!ir)
		return ENOMEM;
	ir->lm = mem_ref(lm);
	ir->seq = lm->dtmf_seq;

	n = re_snprintf(body, sizeof(body), "Signal=%c\r\nDuration=100\r\n",
			lm->info[0]);
	memmove(lm->info, lm->info + 1, strlen(lm->info));
	err = call_request(lm->call, "INFO", NULL, "application/dtmf-relay",
			   (const uint8_t *)body, (size_t)n, info_resp, ir);
	if (err)
		mem_deref(ir);

	return err;
}


/* call:send_dtmf("123#") -> true | nil, err: RFC 4733 events when the
 * peer negotiated telephone-event, else one INFO per digit */
static int l_send_dtmf(lua_State *L)
{
	size_t len;
	const char *digits = luaL_checklstring(L, 2, &len);
	struct lmedia *lm;
	struct rt_op *op;
	char up[MEDIA_DTMF_MAX + 1];
	size_t i;
	int err;

	if (!len || len > MEDIA_DTMF_MAX)
		return luaL_argerror(L, 2, "1 to 32 digits expected");
	for (i = 0; i < len; i++) {
		up[i] = (char)toupper((unsigned char)digits[i]);
		if (!strchr("0123456789*#ABCD", up[i]))
			return luaL_argerror(L, 2, "digits 0-9 * # A-D "
					     "expected");
	}
	up[len] = '\0';
	rt_need_task(L, "send_dtmf");

	lm = check_media(L, "send_dtmf", false);
	if (!lm)
		return 2;
	if (lm->dtmf)
		return rt_fail(L, EBUSY);
	if (!call_is_answered(lm->call))
		return rt_fail(L, ENOTCONN);

	op = rt_op_start(L, "send_dtmf");
	lm->dtmf_seq = ++lm->seq;
	if (lm->ms && media_session_telev(lm->ms)) {
		err = media_send_dtmf(lm->ms, lm->dtmf_seq, up);
	}
	else {
		str_ncpy(lm->info, up, sizeof(lm->info));
		err = info_next(lm);
	}
	if (err)
		return rt_op_abort(L, op, err);
	lm->dtmf = op;
	rt_op_cleanup(op, dtmf_cleanup, lm);

	return rt_op_yield(L, op);
}


static void rec_cleanup(struct rt_op *op, void *ctx)
{
	struct lmedia *lm = ctx;

	if (lm->rec == op) {
		lm->rec = NULL;
		(void)media_stop(lm->ms, lm->rec_seq);
	}
}


/* call:record(path, {max =, silence =, beep =}) -> seconds | nil, err */
static int l_record(lua_State *L)
{
	const char *path = luaL_checkstring(L, 2);
	static const char * const keys[] = {"max", "silence", "beep",
					    NULL};
	uint32_t max = 60000, silence = 0;
	bool beep = false;
	struct lmedia *lm;
	struct rt_op *op;
	int err;

	if (!path[0])
		return luaL_argerror(L, 2, "a file name expected");
	if (!lua_isnoneornil(L, 3)) {
		luaL_checktype(L, 3, LUA_TTABLE);
		check_keys(L, 3, keys, "options: max, silence, beep");
		max = opt_ms(L, 3, "max", max);
		silence = opt_ms(L, 3, "silence", 0);
		lua_getfield(L, 3, "beep");
		beep = lua_toboolean(L, -1);
		lua_pop(L, 1);
		if (!max || max > RECORD_MAX_MS)
			return luaL_argerror(L, 3, "max: 0 < seconds <= 3600");
	}
	rt_need_task(L, "record");

	lm = check_media(L, "record", true);
	if (!lm)
		return 2;
	if (lm->rec)
		return rt_fail(L, EBUSY);

	op = rt_op_start(L, "record");
	lm->rec_seq = ++lm->seq;
	err = media_record(lm->ms, lm->rec_seq, path, max, silence, beep);
	if (err)
		return rt_op_abort(L, op, err);
	lm->rec = op;
	rt_op_cleanup(op, rec_cleanup, lm);

	return rt_op_yield(L, op);
}


/* call:media() -> {port =, codec =, remote =, telephone_event =,
 * sending =} | nil */
static int l_media(lua_State *L)
{
	struct lcall *lc = api_call_lcall(L, 1);
	struct lmedia *lm = *api_call_media(lc);
	char buf[64];

	if (!lm || !lm->ms) {
		lua_pushnil(L);
		return 1;
	}
	lua_createtable(L, 0, 5);
	lua_pushinteger(L, media_session_port(lm->ms));
	lua_setfield(L, -2, "port");
	if (media_session_codec(lm->ms)) {
		lua_pushstring(L, media_session_codec(lm->ms));
		lua_setfield(L, -2, "codec");
	}
	(void)re_snprintf(buf, sizeof(buf), "%J",
			  media_session_remote(lm->ms));
	lua_pushstring(L, buf);
	lua_setfield(L, -2, "remote");
	lua_pushboolean(L, media_session_telev(lm->ms));
	lua_setfield(L, -2, "telephone_event");
	lua_pushboolean(L, media_session_sending(lm->ms));
	lua_setfield(L, -2, "sending");

	return 1;
}


void api_media_inject(lua_State *L)
{
	static const luaL_Reg media_methods[] = {
		{"media",     l_media},
		{"play",      l_play},
		{"collect",   l_collect},
		{"send_dtmf", l_send_dtmf},
		{"record",    l_record},
		{NULL, NULL}
	};

	api_call_add_methods(L, media_methods);

	lua_pushcfunction(L, l_media_config);
	lua_setfield(L, -2, "media");
}
