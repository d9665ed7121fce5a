/**
 * server/proxy/pbfsm.c  The state machine of a proxy branch
 *
 * Owns the FSM definition every branch of a proxy transaction makes its
 * instance of (the generic FSM of server/core/fsm.c, as the calls'):
 * a table of rows, built once, checked against the ids of
 * proxy_priv.h's enums (a mismatch fails proxy_start). The states are
 * the proxy's view of a branch, above libre's client transaction
 * (which has its own: Calling, Proceeding, Completed...):
 *
 *   Calling     sent, nothing back yet
 *   Proceeding  a provisional came (Timer C restarts with each)
 *   Cancelling  we sent a CANCEL (libre defers it until a provisional
 *               came); its final response is still to come
 *   Done        its outcome is known: a final response, or one we made
 *               up (GiveUp: Timer C without a provisional, the branch
 *               timeout, the attempt's timeout); a late final of a
 *               branch given up on changes nothing
 *
 * ptrans.c fires the events by id and never fires one the table
 * refuses (a refusal is a bug: logged at error). docs/state-machines.md
 * has the table. Exposes pbfsm_def() in proxy_priv.h.
 */
#include <re.h>
#include "proxy_priv.h"


static const char * const state_names[PB_STATES] = {
	"Calling", "Proceeding", "Done", "Cancelling",
};

static const char * const event_names[PBEV_COUNT] = {
	"Provisional", "Final", "Cancel", "GiveUp",
};

/* (from, event, to); the order of first use gives the ids above */
static const struct {
	enum pbranch_state from;
	enum pbranch_event ev;
	enum pbranch_state to;
} rows[] = {
	{PB_CALLING,    PBEV_PROVISIONAL, PB_PROCEEDING},
	{PB_CALLING,    PBEV_FINAL,       PB_DONE},
	{PB_CALLING,    PBEV_CANCEL,      PB_CANCELLING},
	{PB_CALLING,    PBEV_GIVE_UP,     PB_DONE},
	{PB_PROCEEDING, PBEV_PROVISIONAL, PB_PROCEEDING},
	{PB_PROCEEDING, PBEV_FINAL,       PB_DONE},
	{PB_PROCEEDING, PBEV_CANCEL,      PB_CANCELLING},
	{PB_PROCEEDING, PBEV_GIVE_UP,     PB_DONE},
	{PB_CANCELLING, PBEV_PROVISIONAL, PB_CANCELLING},
	{PB_CANCELLING, PBEV_FINAL,       PB_DONE},
	{PB_CANCELLING, PBEV_GIVE_UP,     PB_DONE},
};

static struct fsm_def *cache;   /* loop thread only, as all the core */


static int build(struct fsm_def **defp)
{
	struct fsm_builder *b = NULL;
	struct fsm_def *d = NULL;
	size_t i;
	int err;

	err = fsm_builder_alloc(&b, "proxy-branch");
	if (err)
		return err;

	/* ids are interned in order of first use: the rows name the
	 * states and events in the enums' order */
	err = fsm_builder_initial(b, state_names[PB_CALLING]);
	for (i = 0; !err && i < ARRAY_SIZE(rows); i++)
		err = fsm_builder_transition(b, state_names[rows[i].from],
					     event_names[rows[i].ev],
					     state_names[rows[i].to]);
	if (!err)
		err = fsm_build(&d, b);
	mem_deref(b);
	if (err)
		return err;

	for (i = 0; i < PB_STATES; i++) {
		if (fsm_def_state(d, state_names[i]) != (int)i)
			err = EPROTO;
	}
	for (i = 0; i < PBEV_COUNT; i++) {
		if (fsm_def_event(d, event_names[i]) != (int)i)
			err = EPROTO;
	}
	if (err) {
		mem_deref(d);
		return err;
	}

	*defp = d;

	return 0;
}


int pbfsm_def(struct fsm_def **defp)
{
	int err;

	if (!defp)
		return EINVAL;

	if (!cache) {
		err = build(&cache);
		if (err)
			return err;
	}

	*defp = mem_ref(cache);

	return 0;
}


const char *pbfsm_state_name(enum pbranch_state s)
{
	return (unsigned)s < PB_STATES ? state_names[s] : "?";
}
