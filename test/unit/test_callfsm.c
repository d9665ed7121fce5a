/**
 * test/unit/test_callfsm.c  Unit test of server/calls/callfsm.c, TAP output
 *
 * The four definitions (dialog UAC and UAS, call outgoing and incoming)
 * are checked against tables written here, independently of callfsm.c:
 * every (state, event) pair of every def, allowed pairs for their target,
 * refused pairs for EPERM and the exact fsm_error() message. Each pair
 * runs on a fresh instance brought to its state along a shortest path of
 * the expected table (so the paths check the table too); a state that
 * the expected table cannot reach (Answering in an outgoing call,
 * Calling in an incoming one) is entered through a private row added
 * with fsm_add_transition(). Then: the ids against the enums, the
 * factory's sharing, the sequences the call code (server/calls/) fires by
 * id (and the refusals it takes as the peer's), realistic sequences by
 * name, the history, and an out-of-memory pass (mem_zalloc() is defined
 * here, as in test_fsm.c).
 *
 *   test_callfsm            TAP
 *   test_callfsm --tables   the four tables as markdown (fsm_def_debug),
 *                           for docs/state-machines.md
 */
#include <string.h>
#include <time.h>
#include <re.h>
#include "sipstack.h"


static unsigned tests, failures;

static void ok(bool cond, const char *fmt, ...)
{
	va_list ap;

	++tests;
	if (!cond)
		++failures;

	(void)re_printf("%sok %u - ", cond ? "" : "not ", tests);
	va_start(ap, fmt);
	(void)re_vprintf(fmt, ap);
	va_end(ap);
	(void)re_printf("\n");
}


/* ---- failing allocator --------------------------------------------- */

static long alloc_countdown = -1;   /* -1 = never fail */
static unsigned alloc_failed;

void *mem_zalloc(size_t size, mem_destroy_h *dh)
{
	void *p;

	if (alloc_countdown == 0) {
		++alloc_failed;
		return NULL;
	}
	if (alloc_countdown > 0)
		--alloc_countdown;

	p = mem_alloc(size, dh);
	if (p)
		memset(p, 0, size);

	return p;
}


/* ---- the expected tables ------------------------------------------- */

enum { MAX_ST = 16, MAX_EV = 24 };

/* One def: names in id order, then one line per state listing its
 * allowed "Event>Target" pairs; every pair not listed is refused. */
struct expect {
	const char *name;
	bool call;        /* call_fsm_def(), else dialog_fsm_def() */
	bool flag;        /* outgoing / uac */
	const char * const *states;
	unsigned nstates;
	const char * const *events;
	unsigned nevents;
	const char * const *allowed;   /* [nstates] */
	int tab[MAX_ST][MAX_EV];       /* parsed: target id or -1 */
};

static const char * const dlg_states[] = {
	"Null", "Trying", "Proceeding", "Early", "Confirmed",
	"Terminating", "Terminated",
};

static const char * const uac_events[] = {
	"SendInvite", "Receive1xx", "Receive1xxTag", "Receive2xx",
	"Receive3xx6xx", "SendAck", "SendCancel", "SendBye", "ReceiveBye",
	"ReceiveByeResponse", "Terminate", "Timeout", "TransportError",
};

static const char * const uas_events[] = {
	"ReceiveInvite", "Send100", "Send1xx", "Send2xx", "Send3xx6xx",
	"ReceiveAck", "ReceiveCancel", "SendBye", "ReceiveBye",
	"ReceiveByeResponse", "Terminate", "Timeout", "TransportError",
};

#define DLG_ENDS " Terminate>Terminated Timeout>Terminated" \
	" TransportError>Terminated"

static const char * const uac_allowed[] = {
	/* Null */
	"SendInvite>Trying" DLG_ENDS,
	/* Trying */
	"Receive1xx>Proceeding Receive1xxTag>Early Receive2xx>Confirmed"
	" Receive3xx6xx>Terminated SendCancel>Terminating" DLG_ENDS,
	/* Proceeding */
	"Receive1xx>Proceeding Receive1xxTag>Early Receive2xx>Confirmed"
	" Receive3xx6xx>Terminated SendCancel>Terminating" DLG_ENDS,
	/* Early */
	"Receive1xx>Early Receive1xxTag>Early Receive2xx>Confirmed"
	" Receive3xx6xx>Terminated SendCancel>Terminating"
	" SendBye>Terminating" DLG_ENDS,
	/* Confirmed */
	"SendAck>Confirmed SendBye>Terminating ReceiveBye>Terminated"
	" ReceiveByeResponse>Terminated" DLG_ENDS,
	/* Terminating */
	"Receive1xx>Terminating Receive1xxTag>Terminating"
	" Receive2xx>Confirmed Receive3xx6xx>Terminated"
	" ReceiveBye>Terminated ReceiveByeResponse>Terminated" DLG_ENDS,
	/* Terminated */
	"",
};

static const char * const uas_allowed[] = {
	/* Null */
	"ReceiveInvite>Trying" DLG_ENDS,
	/* Trying */
	"Send100>Proceeding Send1xx>Early Send2xx>Confirmed"
	" Send3xx6xx>Terminated ReceiveCancel>Terminated" DLG_ENDS,
	/* Proceeding */
	"Send1xx>Early Send2xx>Confirmed Send3xx6xx>Terminated"
	" ReceiveCancel>Terminated" DLG_ENDS,
	/* Early */
	"Send1xx>Early Send2xx>Confirmed Send3xx6xx>Terminated"
	" ReceiveCancel>Terminated ReceiveBye>Terminated" DLG_ENDS,
	/* Confirmed */
	"ReceiveAck>Confirmed SendBye>Terminating ReceiveBye>Terminated"
	DLG_ENDS,
	/* Terminating */
	"ReceiveAck>Terminating ReceiveBye>Terminated"
	" ReceiveByeResponse>Terminated" DLG_ENDS,
	/* Terminated */
	"",
};

static const char * const call_states[] = {
	"Idle", "Calling", "Ringing", "Answering", "Connected", "Hold",
	"Referring", "Replacing", "Ending", "Ended",
};

/* the incoming def has all but the last */
static const char * const call_events[] = {
	"Ringing", "Answer", "Ack", "Reject", "Cancel", "Hold", "Unhold",
	"Refer", "ReferDone", "ReferDoneHeld", "Replace", "Bye",
	"RemoteBye", "ByeResponse", "Timeout", "Error", "Dial",
};

#define CALL_ENDS " Timeout>Ended Error>Ended"

static const char * const out_allowed[] = {
	/* Idle */
	"Dial>Calling Replace>Replacing" CALL_ENDS,
	/* Calling */
	"Ringing>Ringing Answer>Connected Reject>Ended Cancel>Ending"
	CALL_ENDS,
	/* Ringing */
	"Ringing>Ringing Answer>Connected Reject>Ended Cancel>Ending"
	CALL_ENDS,
	/* Answering: not used by an outgoing call */
	"",
	/* Connected */
	"Ack>Connected Hold>Hold Refer>Referring Bye>Ending"
	" RemoteBye>Ended" CALL_ENDS,
	/* Hold */
	"Hold>Hold Unhold>Connected Refer>Referring Bye>Ending"
	" RemoteBye>Ended" CALL_ENDS,
	/* Referring */
	"ReferDone>Connected ReferDoneHeld>Hold Bye>Ending RemoteBye>Ended"
	CALL_ENDS,
	/* Replacing */
	"Ringing>Replacing Answer>Connected Reject>Ended Cancel>Ending"
	CALL_ENDS,
	/* Ending */
	"Ringing>Ending Answer>Ending Ack>Ending Reject>Ended Bye>Ending"
	" RemoteBye>Ended ByeResponse>Ended" CALL_ENDS,
	/* Ended */
	"",
};

static const char * const in_allowed[] = {
	/* Idle */
	"Ringing>Ringing Answer>Answering Reject>Ended Cancel>Ended"
	" Replace>Replacing" CALL_ENDS,
	/* Calling: not used by an incoming call */
	"",
	/* Ringing */
	"Ringing>Ringing Answer>Answering Reject>Ended Cancel>Ended"
	CALL_ENDS,
	/* Answering */
	"Ack>Connected Bye>Ending RemoteBye>Ended" CALL_ENDS,
	/* Connected */
	"Hold>Hold Refer>Referring Bye>Ending RemoteBye>Ended" CALL_ENDS,
	/* Hold */
	"Hold>Hold Unhold>Connected Refer>Referring Bye>Ending"
	" RemoteBye>Ended" CALL_ENDS,
	/* Referring */
	"ReferDone>Connected ReferDoneHeld>Hold Bye>Ending RemoteBye>Ended"
	CALL_ENDS,
	/* Replacing */
	"Answer>Answering Reject>Ended Cancel>Ended" CALL_ENDS,
	/* Ending */
	"RemoteBye>Ended ByeResponse>Ended" CALL_ENDS,
	/* Ended */
	"",
};

static struct expect defs[] = {
	{"dialog-uac", false, true, dlg_states, ARRAY_SIZE(dlg_states),
	 uac_events, ARRAY_SIZE(uac_events), uac_allowed, {{0}}},
	{"dialog-uas", false, false, dlg_states, ARRAY_SIZE(dlg_states),
	 uas_events, ARRAY_SIZE(uas_events), uas_allowed, {{0}}},
	{"call-outgoing", true, true, call_states, ARRAY_SIZE(call_states),
	 call_events, ARRAY_SIZE(call_events), out_allowed, {{0}}},
	{"call-incoming", true, false, call_states, ARRAY_SIZE(call_states),
	 call_events, ARRAY_SIZE(call_events) - 1, in_allowed, {{0}}},
};


static int find(const char * const *names, unsigned n, const char *s,
		size_t len)
{
	unsigned i;

	for (i = 0; i < n; i++) {
		if (strlen(names[i]) == len && !memcmp(names[i], s, len))
			return (int)i;
	}

	return -1;
}


/* "Ev>To Ev>To ..." into x->tab; false on a name that is not known */
static bool parse(struct expect *x)
{
	unsigned s, e;

	for (s = 0; s < x->nstates; s++)
		for (e = 0; e < x->nevents; e++)
			x->tab[s][e] = -1;

	for (s = 0; s < x->nstates; s++) {
		const char *p = x->allowed[s];

		while (*p) {
			const char *gt, *end;
			int ev, to;

			while (*p == ' ')
				++p;
			if (!*p)
				break;

			gt = strchr(p, '>');
			if (!gt)
				return false;
			end = gt + strcspn(gt, " ");

			ev = find(x->events, x->nevents, p, (size_t)(gt - p));
			to = find(x->states, x->nstates, gt + 1,
				  (size_t)(end - gt - 1));
			if (ev < 0 || to < 0 || x->tab[s][ev] >= 0)
				return false;

			x->tab[s][ev] = to;
			p = end;
		}
	}

	return true;
}


static int get_def(struct fsm_def **dp, const struct expect *x)
{
	return x->call ? call_fsm_def(dp, x->flag)
		       : dialog_fsm_def(dp, x->flag);
}


/* A shortest event path from the initial state to st, by BFS over the
 * expected table; its length, or -1 if st cannot be reached. */
static int path_to(const struct expect *x, int st, int path[MAX_ST])
{
	int prev_st[MAX_ST], prev_ev[MAX_ST], queue[MAX_ST];
	int head = 0, tail = 0, n = 0, s;
	unsigned i, e;

	for (i = 0; i < MAX_ST; i++)
		prev_st[i] = -2;

	prev_st[0] = -1;
	queue[tail++] = 0;

	while (head < tail) {
		s = queue[head++];

		for (e = 0; e < x->nevents; e++) {
			int t = x->tab[s][e];

			if (t < 0 || prev_st[t] != -2)
				continue;

			prev_st[t] = s;
			prev_ev[t] = (int)e;
			queue[tail++] = t;
		}
	}

	if (prev_st[st] == -2)
		return -1;

	for (s = st; prev_st[s] >= 0; s = prev_st[s])
		++n;

	i = (unsigned)n;
	for (s = st; prev_st[s] >= 0; s = prev_st[s])
		path[--i] = prev_ev[s];

	return n;
}


/* A fresh instance in state st: along the path, or through a private
 * jump row for a state the table cannot reach. */
static int instance_in(struct fsm **fp, struct fsm_def *d,
		       const struct expect *x, int st, bool *jumped)
{
	struct fsm *f = NULL;
	int path[MAX_ST], n, i, err;

	err = fsm_alloc(&f, d, NULL);
	if (err)
		return err;

	n = path_to(x, st, path);
	*jumped = n < 0;

	if (n < 0) {
		err = fsm_add_transition(f, x->states[0], "__jump",
					 x->states[st]);
		if (!err)
			err = fsm_transition(f, "__jump");
	}

	for (i = 0; i < n && !err; i++)
		err = fsm_transition_id(f, path[i]);

	if (!err && fsm_state_id(f) != st)
		err = EPROTO;

	if (err)
		mem_deref(f);
	else
		*fp = f;

	return err;
}


/* ---- every pair ------------------------------------------------------ */

static void test_pairs(struct expect *x)
{
	struct fsm_def *d = NULL;
	unsigned s, e;
	int err;

	ok(parse(x), "%s: expected table parses", x->name);

	err = get_def(&d, x);
	ok(err == 0 && d, "%s: def built", x->name);
	if (err)
		return;

	for (s = 0; s < x->nstates; s++) {
		for (e = 0; e < x->nevents; e++) {
			const char *sn = x->states[s], *en = x->events[e];
			int want = x->tab[s][e];
			struct fsm *f = NULL;
			bool jumped = false, can, good;
			char msg[128];
			int rc;

			err = instance_in(&f, d, x, (int)s, &jumped);
			if (err) {
				ok(false, "%s: %s + %s: cannot reach the "
				   "state (%m)", x->name, sn, en, err);
				continue;
			}

			can = fsm_can_id(f, (int)e);
			rc = fsm_transition_id(f, (int)e);

			if (want >= 0) {
				good = can && rc == 0 &&
					fsm_state_id(f) == want &&
					!strcmp(fsm_current(f),
						x->states[want]);
				ok(good, "%s: %s + %s -> %s%s", x->name, sn,
				   en, x->states[want],
				   jumped ? " (state entered by a test row)"
				   : "");
			}
			else {
				(void)re_snprintf(msg, sizeof(msg),
						  "event '%s' not allowed in "
						  "state '%s'", en, sn);
				good = !can && rc == EPERM &&
					fsm_state_id(f) == (int)s &&
					!strcmp(fsm_error(f), msg);
				ok(good, "%s: %s + %s refused%s", x->name, sn,
				   en, jumped ? " (state entered by a test "
				   "row)" : "");
			}

			if (!good)
				(void)re_printf("#   can=%d rc=%d state=%s "
						"error='%s'\n", can, rc,
						fsm_current(f), fsm_error(f));

			mem_deref(f);
		}
	}

	mem_deref(d);
}


/* ---- ids, names, sharing -------------------------------------------- */

struct id_name {
	int id;
	const char *name;
};

static void check_ids(const char *what, const struct fsm_def *d,
		      const struct id_name *v, size_t n, bool events)
{
	size_t i;
	bool good = true;

	for (i = 0; i < n; i++) {
		int got = events ? fsm_def_event(d, v[i].name)
				 : fsm_def_state(d, v[i].name);

		if (got != v[i].id) {
			good = false;
			(void)re_printf("#   %s: '%s' is %d, enum says %d\n",
					what, v[i].name, got, v[i].id);
		}
	}

	ok(good, "%s: enum values are the def's ids", what);
}

static void test_ids(void)
{
	static const struct id_name dst[] = {
		{DIALOG_ST_NULL, "Null"}, {DIALOG_ST_TRYING, "Trying"},
		{DIALOG_ST_PROCEEDING, "Proceeding"},
		{DIALOG_ST_EARLY, "Early"},
		{DIALOG_ST_CONFIRMED, "Confirmed"},
		{DIALOG_ST_TERMINATING, "Terminating"},
		{DIALOG_ST_TERMINATED, "Terminated"},
	};
	static const struct id_name uac[] = {
		{DIALOG_EV_SEND_INVITE, "SendInvite"},
		{DIALOG_EV_RECEIVE_1XX, "Receive1xx"},
		{DIALOG_EV_RECEIVE_1XX_TAG, "Receive1xxTag"},
		{DIALOG_EV_RECEIVE_2XX, "Receive2xx"},
		{DIALOG_EV_RECEIVE_3XX6XX, "Receive3xx6xx"},
		{DIALOG_EV_SEND_ACK, "SendAck"},
		{DIALOG_EV_SEND_CANCEL, "SendCancel"},
		{DIALOG_EV_SEND_BYE, "SendBye"},
		{DIALOG_EV_RECEIVE_BYE, "ReceiveBye"},
		{DIALOG_EV_RECEIVE_BYE_RESPONSE, "ReceiveByeResponse"},
		{DIALOG_EV_TERMINATE, "Terminate"},
		{DIALOG_EV_TIMEOUT, "Timeout"},
		{DIALOG_EV_TRANSPORT_ERROR, "TransportError"},
	};
	static const struct id_name uas[] = {
		{DIALOG_EV_RECEIVE_INVITE, "ReceiveInvite"},
		{DIALOG_EV_SEND_100, "Send100"},
		{DIALOG_EV_SEND_1XX, "Send1xx"},
		{DIALOG_EV_SEND_2XX, "Send2xx"},
		{DIALOG_EV_SEND_3XX6XX, "Send3xx6xx"},
		{DIALOG_EV_RECEIVE_ACK, "ReceiveAck"},
		{DIALOG_EV_RECEIVE_CANCEL, "ReceiveCancel"},
		{DIALOG_EV_SEND_BYE, "SendBye"},
		{DIALOG_EV_RECEIVE_BYE, "ReceiveBye"},
		{DIALOG_EV_RECEIVE_BYE_RESPONSE, "ReceiveByeResponse"},
		{DIALOG_EV_TERMINATE, "Terminate"},
		{DIALOG_EV_TIMEOUT, "Timeout"},
		{DIALOG_EV_TRANSPORT_ERROR, "TransportError"},
	};
	static const struct id_name cst[] = {
		{CALL_ST_IDLE, "Idle"}, {CALL_ST_CALLING, "Calling"},
		{CALL_ST_RINGING, "Ringing"},
		{CALL_ST_ANSWERING, "Answering"},
		{CALL_ST_CONNECTED, "Connected"}, {CALL_ST_HOLD, "Hold"},
		{CALL_ST_REFERRING, "Referring"},
		{CALL_ST_REPLACING, "Replacing"},
		{CALL_ST_ENDING, "Ending"}, {CALL_ST_ENDED, "Ended"},
	};
	static const struct id_name cev[] = {
		{CALL_FSM_RINGING, "Ringing"}, {CALL_FSM_ANSWER, "Answer"},
		{CALL_FSM_ACK, "Ack"}, {CALL_FSM_REJECT, "Reject"},
		{CALL_FSM_CANCEL, "Cancel"}, {CALL_FSM_HOLD, "Hold"},
		{CALL_FSM_UNHOLD, "Unhold"}, {CALL_FSM_REFER, "Refer"},
		{CALL_FSM_REFER_DONE, "ReferDone"},
		{CALL_FSM_REFER_DONE_HELD, "ReferDoneHeld"},
		{CALL_FSM_REPLACE, "Replace"}, {CALL_FSM_BYE, "Bye"},
		{CALL_FSM_REMOTE_BYE, "RemoteBye"},
		{CALL_FSM_BYE_RESPONSE, "ByeResponse"},
		{CALL_FSM_TIMEOUT, "Timeout"}, {CALL_FSM_ERROR, "Error"},
		{CALL_FSM_DIAL, "Dial"},
	};
	struct fsm_def *d[4] = {NULL, NULL, NULL, NULL};
	unsigned i, k;
	bool good;

	for (i = 0; i < 4; i++)
		(void)get_def(&d[i], &defs[i]);

	ok(d[0] && d[1] && d[2] && d[3], "all four defs built");
	if (!(d[0] && d[1] && d[2] && d[3]))
		goto out;

	check_ids("dialog-uac states", d[0], dst, ARRAY_SIZE(dst), false);
	check_ids("dialog-uas states", d[1], dst, ARRAY_SIZE(dst), false);
	check_ids("dialog-uac events", d[0], uac, ARRAY_SIZE(uac), true);
	check_ids("dialog-uas events", d[1], uas, ARRAY_SIZE(uas), true);
	check_ids("call-outgoing states", d[2], cst, ARRAY_SIZE(cst), false);
	check_ids("call-incoming states", d[3], cst, ARRAY_SIZE(cst), false);
	check_ids("call-outgoing events", d[2], cev, ARRAY_SIZE(cev), true);
	check_ids("call-incoming events", d[3], cev, ARRAY_SIZE(cev) - 1,
		  true);

	ok(fsm_def_state_count(d[0]) == DIALOG_ST_COUNT &&
	   fsm_def_event_count(d[0]) == DIALOG_EV_COUNT &&
	   fsm_def_state_count(d[1]) == DIALOG_ST_COUNT &&
	   fsm_def_event_count(d[1]) == DIALOG_EV_COUNT,
	   "dialog defs: %u states, %u events", DIALOG_ST_COUNT,
	   DIALOG_EV_COUNT);
	ok(fsm_def_state_count(d[2]) == CALL_ST_COUNT &&
	   fsm_def_event_count(d[2]) == CALL_FSM_EV_COUNT &&
	   fsm_def_state_count(d[3]) == CALL_ST_COUNT &&
	   fsm_def_event_count(d[3]) == CALL_FSM_INCOMING_COUNT,
	   "call defs: %u states, %u events out, %u in", CALL_ST_COUNT,
	   CALL_FSM_EV_COUNT, CALL_FSM_INCOMING_COUNT);
	ok(fsm_def_event(d[3], "Dial") < 0,
	   "call-incoming has no Dial event");

	/* the exported name tables */
	good = true;
	for (k = 0; k < DIALOG_ST_COUNT; k++)
		good &= !strcmp(dialog_fsm_state_names[k],
				fsm_def_state_name(d[0], (int)k));
	for (k = 0; k < DIALOG_EV_COUNT; k++) {
		good &= !strcmp(dialog_fsm_uac_event_names[k],
				fsm_def_event_name(d[0], (int)k));
		good &= !strcmp(dialog_fsm_uas_event_names[k],
				fsm_def_event_name(d[1], (int)k));
	}
	for (k = 0; k < CALL_ST_COUNT; k++)
		good &= !strcmp(call_fsm_state_names[k],
				fsm_def_state_name(d[2], (int)k));
	for (k = 0; k < CALL_FSM_EV_COUNT; k++)
		good &= !strcmp(call_fsm_event_names[k],
				fsm_def_event_name(d[2], (int)k));
	ok(good, "name tables match the defs");

	ok(!strcmp(fsm_def_name(d[0]), "dialog-uac") &&
	   !strcmp(fsm_def_name(d[1]), "dialog-uas") &&
	   !strcmp(fsm_def_name(d[2]), "call-outgoing") &&
	   !strcmp(fsm_def_name(d[3]), "call-incoming"),
	   "def names");

 out:
	for (i = 0; i < 4; i++)
		mem_deref(d[i]);
}


static void test_factory(void)
{
	struct fsm_def *a = NULL, *b = NULL, *c = NULL;
	struct fsm *f = NULL;
	uint32_t n0;

	ok(dialog_fsm_def(NULL, true) == EINVAL &&
	   call_fsm_def(NULL, false) == EINVAL, "NULL defp: EINVAL");

	(void)dialog_fsm_def(&a, true);
	n0 = (uint32_t)mem_nrefs(a);
	(void)dialog_fsm_def(&b, true);
	ok(a && a == b && mem_nrefs(a) == n0 + 1,
	   "dialog_fsm_def(uac) twice: one shared def, one more ref");

	(void)dialog_fsm_def(&c, false);
	ok(c && c != a, "the UAS def is another one");
	mem_deref(c);
	c = NULL;

	(void)call_fsm_def(&c, true);
	ok(c && c != a, "the call defs are others");
	mem_deref(c);
	c = NULL;

	/* an instance keeps its def across callfsm_close() */
	(void)fsm_alloc(&f, a, NULL);
	mem_deref(a);
	mem_deref(b);
	callfsm_close();
	ok(f && fsm_transition_id(f, DIALOG_EV_SEND_INVITE) == 0 &&
	   fsm_state_id(f) == DIALOG_ST_TRYING,
	   "an instance outlives callfsm_close()");
	mem_deref(f);

	ok(dialog_fsm_def(&a, true) == 0 && a &&
	   fsm_def_state_count(a) == DIALOG_ST_COUNT,
	   "rebuilt after callfsm_close()");
	mem_deref(a);

	callfsm_close();
	callfsm_close();
	ok(true, "callfsm_close() twice is harmless");
}


/* Another role's or kind's names are not events of a def */
static void test_foreign(void)
{
	struct fsm_def *d = NULL;
	struct fsm *f = NULL;

	(void)dialog_fsm_def(&d, false);
	(void)fsm_alloc(&f, d, NULL);
	ok(fsm_transition(f, "SendInvite") == EINVAL &&
	   !strcmp(fsm_error(f), "unknown event 'SendInvite'") &&
	   fsm_state_id(f) == DIALOG_ST_NULL,
	   "dialog-uas: SendInvite is unknown (EINVAL)");
	ok(fsm_transition_id(f, DIALOG_EV_RECEIVE_INVITE) == 0 &&
	   fsm_transition_id(f, DIALOG_EV_SEND_BYE) == EPERM &&
	   !strcmp(fsm_error(f),
		   "event 'SendBye' not allowed in state 'Trying'"),
	   "dialog-uas: ids of the UAS names work, SendBye refused");
	mem_deref(f);
	mem_deref(d);
	f = NULL;
	d = NULL;

	(void)call_fsm_def(&d, false);
	(void)fsm_alloc(&f, d, NULL);
	ok(fsm_transition_id(f, CALL_FSM_DIAL) == EINVAL &&
	   !strcmp(fsm_error(f), "unknown event id 16") &&
	   fsm_transition(f, "Dial") == EINVAL &&
	   fsm_state_id(f) == CALL_ST_IDLE,
	   "call-incoming: Dial is unknown (EINVAL)");
	mem_deref(f);
	mem_deref(d);
}


/* ---- by id, as the call code (server/calls/) fires them ------------------ */

enum { REFUSED = -1 };

struct idstep {
	int ev;
	int st;     /* the state after it; REFUSED: EPERM, state kept */
};

static void idseq(const char *name, bool call, bool flag,
		  const struct idstep *v, size_t n)
{
	struct fsm_def *d = NULL;
	struct fsm *f = NULL;
	bool good;
	size_t i;
	int err;

	err = call ? call_fsm_def(&d, flag) : dialog_fsm_def(&d, flag);
	if (!err)
		err = fsm_alloc(&f, d, NULL);
	good = !err;

	for (i = 0; i < n && good; i++) {
		int before = fsm_state_id(f);
		int rc = fsm_transition_id(f, v[i].ev);

		if (v[i].st == REFUSED)
			good = rc == EPERM && fsm_state_id(f) == before;
		else
			good = rc == 0 && fsm_state_id(f) == v[i].st;

		if (!good)
			(void)re_printf("#   step %zu: event id %d: rc=%d "
					"state=%s\n", i, v[i].ev, rc,
					fsm_current(f));
	}

	ok(good, "%s by id: %s", d ? fsm_def_name(d) : "?", name);

	mem_deref(f);
	mem_deref(d);
}

#define IDSEQ(name, call, flag, ...) do { \
		static const struct idstep v_[] = {__VA_ARGS__}; \
		idseq(name, call, flag, v_, ARRAY_SIZE(v_)); \
	} while (0)

/* The sequences the call code fires with the enums, and the refusals it
 * takes as the peer's (logged at debug, not error): a late ACK, a hold
 * offer on an early dialog or across our BYE, a BYE before the dialog */
static void test_by_id(void)
{
	IDSEQ("ring, answer, ACK, the peer's BYE", true, false,
	      {CALL_FSM_RINGING, CALL_ST_RINGING},
	      {CALL_FSM_ANSWER, CALL_ST_ANSWERING},
	      {CALL_FSM_ACK, CALL_ST_CONNECTED},
	      {CALL_FSM_REMOTE_BYE, CALL_ST_ENDED},
	      {CALL_FSM_TIMEOUT, REFUSED});
	IDSEQ("the same dialog; Terminate after its end is refused", false, false,
	      {DIALOG_EV_RECEIVE_INVITE, DIALOG_ST_TRYING},
	      {DIALOG_EV_SEND_100, DIALOG_ST_PROCEEDING},
	      {DIALOG_EV_SEND_1XX, DIALOG_ST_EARLY},
	      {DIALOG_EV_SEND_2XX, DIALOG_ST_CONFIRMED},
	      {DIALOG_EV_RECEIVE_ACK, DIALOG_ST_CONFIRMED},
	      {DIALOG_EV_RECEIVE_BYE, DIALOG_ST_TERMINATED},
	      {DIALOG_EV_TERMINATE, REFUSED});
	IDSEQ("dial, ring, answer, hold, unhold, our BYE", true, true,
	      {CALL_FSM_DIAL, CALL_ST_CALLING},
	      {CALL_FSM_RINGING, CALL_ST_RINGING},
	      {CALL_FSM_ANSWER, CALL_ST_CONNECTED},
	      {CALL_FSM_ACK, CALL_ST_CONNECTED},
	      {CALL_FSM_HOLD, CALL_ST_HOLD},
	      {CALL_FSM_UNHOLD, CALL_ST_CONNECTED},
	      {CALL_FSM_BYE, CALL_ST_ENDING},
	      {CALL_FSM_BYE_RESPONSE, CALL_ST_ENDED});
	IDSEQ("CANCEL crossed by the 2xx: ACK and BYE", true, true,
	      {CALL_FSM_DIAL, CALL_ST_CALLING},
	      {CALL_FSM_CANCEL, CALL_ST_ENDING},
	      {CALL_FSM_ANSWER, CALL_ST_ENDING},
	      {CALL_FSM_ACK, CALL_ST_ENDING},
	      {CALL_FSM_BYE, CALL_ST_ENDING},
	      {CALL_FSM_BYE_RESPONSE, CALL_ST_ENDED});
	IDSEQ("the same dialog", false, true,
	      {DIALOG_EV_SEND_INVITE, DIALOG_ST_TRYING},
	      {DIALOG_EV_RECEIVE_1XX_TAG, DIALOG_ST_EARLY},
	      {DIALOG_EV_SEND_CANCEL, DIALOG_ST_TERMINATING},
	      {DIALOG_EV_RECEIVE_2XX, DIALOG_ST_CONFIRMED},
	      {DIALOG_EV_SEND_ACK, DIALOG_ST_CONFIRMED},
	      {DIALOG_EV_SEND_BYE, DIALOG_ST_TERMINATING},
	      {DIALOG_EV_RECEIVE_BYE_RESPONSE, DIALOG_ST_TERMINATED});

	/* the peer's */
	IDSEQ("an ACK after our BYE is refused", true, false,
	      {CALL_FSM_ANSWER, CALL_ST_ANSWERING},
	      {CALL_FSM_BYE, CALL_ST_ENDING},
	      {CALL_FSM_ACK, REFUSED},
	      {CALL_FSM_BYE_RESPONSE, CALL_ST_ENDED});
	IDSEQ("a hold offer on an early dialog is refused", true, true,
	      {CALL_FSM_DIAL, CALL_ST_CALLING},
	      {CALL_FSM_RINGING, CALL_ST_RINGING},
	      {CALL_FSM_HOLD, REFUSED},
	      {CALL_FSM_ANSWER, CALL_ST_CONNECTED});
	IDSEQ("a hold offer across our BYE is refused", true, false,
	      {CALL_FSM_ANSWER, CALL_ST_ANSWERING},
	      {CALL_FSM_ACK, CALL_ST_CONNECTED},
	      {CALL_FSM_BYE, CALL_ST_ENDING},
	      {CALL_FSM_HOLD, REFUSED},
	      {CALL_FSM_UNHOLD, REFUSED});
	IDSEQ("a BYE before any tagged 1xx is refused", false, false,
	      {DIALOG_EV_RECEIVE_INVITE, DIALOG_ST_TRYING},
	      {DIALOG_EV_SEND_100, DIALOG_ST_PROCEEDING},
	      {DIALOG_EV_RECEIVE_BYE, REFUSED},
	      {DIALOG_EV_TERMINATE, DIALOG_ST_TERMINATED});
}


/* ---- realistic sequences --------------------------------------------- */

/* steps: "Event>State" must go to State; "!Event" must be refused */
static void seq(const char *name, const struct expect *x,
		const char *steps)
{
	struct fsm_def *d = NULL;
	struct fsm *f = NULL;
	const char *p = steps;
	bool good = true;
	char ev[64], st[64];

	if (get_def(&d, x) || fsm_alloc(&f, d, NULL)) {
		ok(false, "%s: %s", x->name, name);
		goto out;
	}

	while (*p && good) {
		size_t n;
		bool refuse;
		const char *before;
		int rc;

		while (*p == ' ')
			++p;
		if (!*p)
			break;

		n = strcspn(p, " ");
		refuse = *p == '!';
		st[0] = '\0';

		if (refuse) {
			(void)re_snprintf(ev, sizeof(ev), "%b", p + 1, n - 1);
		}
		else {
			size_t g = strcspn(p, ">");

			(void)re_snprintf(ev, sizeof(ev), "%b", p, g);
			(void)re_snprintf(st, sizeof(st), "%b", p + g + 1,
					  n - g - 1);
		}
		p += n;

		before = fsm_current(f);
		rc = fsm_transition(f, ev);

		if (refuse)
			good = rc == EPERM && !strcmp(fsm_current(f), before);
		else
			good = rc == 0 && !strcmp(fsm_current(f), st);

		if (!good)
			(void)re_printf("#   step %s%s: rc=%d state=%s\n",
					refuse ? "!" : "", ev, rc,
					fsm_current(f));
	}

	ok(good, "%s: %s", x->name, name);

 out:
	mem_deref(f);
	mem_deref(d);
}

static void test_sequences(void)
{
	const struct expect *uac = &defs[0], *uas = &defs[1];
	const struct expect *out = &defs[2], *in = &defs[3];

	seq("100, 180 with tag, 200, ACK, BYE, 200 for the BYE", uac,
	    "SendInvite>Trying Receive1xx>Proceeding"
	    " Receive1xxTag>Early Receive2xx>Confirmed SendAck>Confirmed"
	    " SendBye>Terminating ReceiveByeResponse>Terminated"
	    " !Receive2xx !Timeout");
	seq("same, the BYE times out", uac,
	    "SendInvite>Trying Receive1xx>Proceeding"
	    " Receive1xxTag>Early Receive2xx>Confirmed SendAck>Confirmed"
	    " SendBye>Terminating Timeout>Terminated");
	seq("2xx with no 1xx before it", uac,
	    "SendInvite>Trying Receive2xx>Confirmed SendAck>Confirmed");
	seq("CANCEL, then 487", uac,
	    "SendInvite>Trying Receive1xx>Proceeding"
	    " SendCancel>Terminating Receive1xxTag>Terminating"
	    " Receive3xx6xx>Terminated");
	seq("CANCEL crossed by 200: ACK and BYE", uac,
	    "SendInvite>Trying Receive1xxTag>Early SendCancel>Terminating"
	    " Receive2xx>Confirmed SendAck>Confirmed SendBye>Terminating"
	    " ReceiveByeResponse>Terminated");
	seq("CANCEL before any 1xx (sent when one comes)", uac,
	    "SendInvite>Trying SendCancel>Terminating"
	    " Receive1xx>Terminating Receive3xx6xx>Terminated");
	seq("caller BYEs its early dialog, late 487 refused", uac,
	    "SendInvite>Trying Receive1xxTag>Early SendBye>Terminating"
	    " ReceiveByeResponse>Terminated !Receive3xx6xx");
	seq("early BYE crossed by 200, then the BYE's answer", uac,
	    "SendInvite>Trying Receive1xxTag>Early SendBye>Terminating"
	    " Receive2xx>Confirmed SendAck>Confirmed"
	    " ReceiveByeResponse>Terminated");
	seq("rejected with 486 from Early; no CANCEL after a final", uac,
	    "SendInvite>Trying Receive1xxTag>Early"
	    " Receive3xx6xx>Terminated !SendCancel");
	seq("callee's BYE in the early dialog refused", uac,
	    "SendInvite>Trying Receive1xxTag>Early !ReceiveBye"
	    " Receive2xx>Confirmed !Receive2xx ReceiveBye>Terminated");
	seq("BYEs crossing", uac,
	    "SendInvite>Trying Receive2xx>Confirmed SendAck>Confirmed"
	    " SendBye>Terminating ReceiveBye>Terminated"
	    " !ReceiveByeResponse");

	seq("answer without ringing, ACK, BYE received", uas,
	    "ReceiveInvite>Trying Send2xx>Confirmed ReceiveAck>Confirmed"
	    " ReceiveAck>Confirmed ReceiveBye>Terminated");
	seq("100, 180, 200, ACK, our BYE, its 200", uas,
	    "ReceiveInvite>Trying Send100>Proceeding Send1xx>Early"
	    " Send1xx>Early Send2xx>Confirmed ReceiveAck>Confirmed"
	    " SendBye>Terminating ReceiveAck>Terminating"
	    " ReceiveByeResponse>Terminated");
	seq("caller BYEs the early dialog; callee may not", uas,
	    "ReceiveInvite>Trying Send1xx>Early !SendBye"
	    " ReceiveBye>Terminated");
	seq("CANCEL received while ringing", uas,
	    "ReceiveInvite>Trying Send100>Proceeding Send1xx>Early"
	    " ReceiveCancel>Terminated !Send2xx");
	seq("CANCEL after the 2xx has no effect", uas,
	    "ReceiveInvite>Trying Send2xx>Confirmed !ReceiveCancel"
	    " ReceiveAck>Confirmed");
	seq("rejected at once; one 100 only", uas,
	    "ReceiveInvite>Trying Send100>Proceeding !Send100"
	    " Send3xx6xx>Terminated");
	seq("no ACK: BYE (RFC 3261 13.3.1.4)", uas,
	    "ReceiveInvite>Trying Send2xx>Confirmed SendBye>Terminating"
	    " ReceiveByeResponse>Terminated");

	seq("dial, ring, answer, ACK, hold, unhold, hang up", out,
	    "Dial>Calling Ringing>Ringing Ringing>Ringing Answer>Connected"
	    " Ack>Connected Hold>Hold Unhold>Connected Bye>Ending"
	    " ByeResponse>Ended !Bye");
	seq("answered without ringing", out,
	    "Dial>Calling Answer>Connected Ack>Connected"
	    " RemoteBye>Ended");
	seq("cancelled, 487", out,
	    "Dial>Calling Ringing>Ringing Cancel>Ending Reject>Ended");
	seq("cancel crossed by 200: ACK and BYE, still Ending", out,
	    "Dial>Calling Ringing>Ringing Cancel>Ending Answer>Ending"
	    " Ack>Ending Bye>Ending ByeResponse>Ended");
	seq("transfer from hold fails, back on hold", out,
	    "Dial>Calling Answer>Connected Hold>Hold Refer>Referring"
	    " !Refer ReferDoneHeld>Hold Unhold>Connected");
	seq("transfer succeeds, we hang up", out,
	    "Dial>Calling Answer>Connected Refer>Referring Bye>Ending"
	    " ByeResponse>Ended");
	seq("INVITE with Replaces", out,
	    "Replace>Replacing Ringing>Replacing Answer>Connected");
	seq("no answer: timeout", out,
	    "Dial>Calling Ringing>Ringing !Bye Timeout>Ended !Timeout");

	seq("ring, answer, ACK", in,
	    "Ringing>Ringing Answer>Answering !Hold Ack>Connected !Ack"
	    " Hold>Hold Hold>Hold Unhold>Connected RemoteBye>Ended");
	seq("answered without ringing, BYE before the ACK", in,
	    "Answer>Answering RemoteBye>Ended !Ack");
	seq("no ACK: we BYE", in,
	    "Answer>Answering Bye>Ending ByeResponse>Ended");
	seq("CANCEL while ringing", in,
	    "Ringing>Ringing Cancel>Ended");
	seq("CANCEL after the answer refused", in,
	    "Answer>Answering !Cancel Ack>Connected");
	seq("rejected", in, "Ringing>Ringing Reject>Ended !Answer");
	seq("INVITE with Replaces: no ringing", in,
	    "Replace>Replacing !Ringing Answer>Answering Ack>Connected"
	    " Refer>Referring ReferDone>Connected Bye>Ending"
	    " RemoteBye>Ended");
}


/* ---- history ----------------------------------------------------------- */

static uint64_t now_us(void)
{
	struct timespec ts;

	(void)clock_gettime(CLOCK_REALTIME, &ts);

	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void test_history(void)
{
	static const int evs[] = {
		DIALOG_EV_SEND_INVITE, DIALOG_EV_RECEIVE_1XX,
		DIALOG_EV_RECEIVE_1XX_TAG, DIALOG_EV_RECEIVE_2XX,
		DIALOG_EV_SEND_ACK, DIALOG_EV_SEND_BYE,
		DIALOG_EV_RECEIVE_BYE_RESPONSE,
	};
	static const char * const want[][3] = {
		{"Null", "Trying", "SendInvite"},
		{"Trying", "Proceeding", "Receive1xx"},
		{"Proceeding", "Early", "Receive1xxTag"},
		{"Early", "Confirmed", "Receive2xx"},
		{"Confirmed", "Confirmed", "SendAck"},
		{"Confirmed", "Terminating", "SendBye"},
		{"Terminating", "Terminated", "ReceiveByeResponse"},
	};
	struct fsm_def *d = NULL;
	struct fsm *f = NULL;
	struct fsm_hist h;
	uint64_t t0, t1, last = 0;
	bool good = true;
	size_t i;

	if (dialog_fsm_def(&d, true) || fsm_alloc(&f, d, NULL)) {
		ok(false, "history: instance");
		goto out;
	}

	t0 = now_us();
	for (i = 0; i < ARRAY_SIZE(evs); i++)
		good &= fsm_transition_id(f, evs[i]) == 0;
	t1 = now_us();

	ok(good && fsm_history_count(f) == ARRAY_SIZE(evs) &&
	   fsm_transitions(f) == ARRAY_SIZE(evs),
	   "history: %zu entries", ARRAY_SIZE(evs));

	good = true;
	for (i = 0; i < ARRAY_SIZE(evs); i++) {
		if (fsm_history(f, i, &h)) {
			good = false;
			break;
		}
		good &= !strcmp(h.from, want[i][0]) &&
			!strcmp(h.to, want[i][1]) &&
			!strcmp(h.event, want[i][2]);
		good &= h.ts_us >= t0 && h.ts_us <= t1 && h.ts_us >= last;
		last = h.ts_us;
	}
	ok(good, "history: from, to, event and a timestamp in order");
	ok(fsm_history(f, ARRAY_SIZE(evs), &h) == ENOENT,
	   "history: ENOENT past the last");
	mem_deref(f);
	f = NULL;
	mem_deref(d);
	d = NULL;

	/* a long confirmed UAS dialog: the ring keeps the last 16 */
	if (dialog_fsm_def(&d, false) || fsm_alloc(&f, d, NULL)) {
		ok(false, "history ring: instance");
		goto out;
	}
	good = fsm_transition_id(f, DIALOG_EV_RECEIVE_INVITE) == 0 &&
		fsm_transition_id(f, DIALOG_EV_SEND_2XX) == 0;
	for (i = 0; i < 20; i++)
		good &= fsm_transition_id(f, DIALOG_EV_RECEIVE_ACK) == 0;
	good &= fsm_transition_id(f, DIALOG_EV_RECEIVE_BYE) == 0;

	ok(good && fsm_transitions(f) == 23 && fsm_history_count(f) == 16,
	   "history ring: 23 transitions, 16 kept");
	ok(!fsm_history(f, 0, &h) && !strcmp(h.event, "ReceiveAck") &&
	   !fsm_history(f, 15, &h) && !strcmp(h.event, "ReceiveBye") &&
	   !strcmp(h.to, "Terminated"),
	   "history ring: oldest and newest entries");

 out:
	mem_deref(f);
	mem_deref(d);
}


/* ---- out of memory ----------------------------------------------------- */

static void test_oom(void)
{
	unsigned i;

	for (i = 0; i < 4; i++) {
		struct fsm_def *d = NULL;
		unsigned fails = 0;
		long n;
		int err = ENOMEM;

		callfsm_close();

		for (n = 0; n < 10000 && err == ENOMEM; n++) {
			alloc_failed = 0;
			alloc_countdown = n;
			err = get_def(&d, &defs[i]);
			alloc_countdown = -1;

			if (err == ENOMEM && alloc_failed)
				++fails;
			else if (err)
				break;
		}

		ok(err == 0 && d && fails > 0 && fails == (unsigned)n - 1 &&
		   fsm_def_event_count(d) == defs[i].nevents,
		   "oom: %s: ENOMEM at each of %u allocations, then built",
		   defs[i].name, fails);
		mem_deref(d);
	}

	callfsm_close();
}


/* ---- --tables ------------------------------------------------------------ */

static int print_tables(void)
{
	unsigned i;
	int err = 0;

	for (i = 0; i < ARRAY_SIZE(defs) && !err; i++) {
		struct fsm_def *d = NULL;

		err = get_def(&d, &defs[i]);
		/* re_printf() returns a count, negative on failure */
		if (!err && re_printf("%s%H", i ? "\n" : "",
				      fsm_def_debug, d) < 0)
			err = EIO;
		mem_deref(d);
	}

	callfsm_close();

	return err ? 1 : 0;
}


int main(int argc, char *argv[])
{
	unsigned i;

	if (argc > 1 && !strcmp(argv[1], "--tables"))
		return print_tables();

	test_ids();
	test_factory();
	test_foreign();
	test_by_id();

	for (i = 0; i < ARRAY_SIZE(defs); i++)
		test_pairs(&defs[i]);

	test_sequences();
	test_history();
	test_oom();

	callfsm_close();

	(void)re_printf("1..%u\n", tests);

	return failures ? 1 : 0;
}
