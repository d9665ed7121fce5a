/**
 * server/calls/callmgr.c  The call manager: the calls of a stack
 *
 * Owns struct callmgr (call_priv.h), a stack service: the list of live
 * calls (one reference on each), the four FSM defs every call and
 * dialog makes its machine from (built at start: a table that does not
 * match its enums stops the server), the handler of incoming calls
 * with the INVITE hook it registers, and the handler of every call's
 * high-level dialog events. Exposes callmgr_*() in calls.h. Uses the
 * core's services and request handlers (sipcore.h), callfsm.c's defs,
 * uas_invite_hook() (uas.c), and call_hangup() and call_end() (call.c)
 * to end the calls when the stack stops.
 */
#include <re.h>
#include "calls.h"
#include "call_priv.h"


static void callmgr_destructor(void *arg)
{
	struct callmgr *cm = arg;
	unsigned i;

	callmgr_shutdown(cm);
	mem_deref(cm->invite);

	for (i = 0; i < 2; i++) {
		mem_deref(cm->call_def[i]);
		mem_deref(cm->dlg_def[i]);
	}
}


/* The stack's key for its call manager (stack_service) */
static const char callmgr_key;


struct callmgr *callmgr_of(const struct stack *st)
{
	return stack_service(st, &callmgr_key);
}


static void callmgr_stop(void *obj)
{
	callmgr_shutdown(obj);
}


/* The four FSM defs are built (or taken from callfsm.c's cache) here,
 * not at the first call: a table that does not match its enums
 * (EPROTO) then fails callmgr_start(), and the server does not start. */
int callmgr_start(struct stack *st)
{
	struct callmgr *cm;
	int err;

	if (!st)
		return EINVAL;

	if (callmgr_of(st))
		return 0;

	cm = mem_zalloc(sizeof(*cm), callmgr_destructor);
	if (!cm)
		return ENOMEM;

	cm->st = st;

	err = call_fsm_def(&cm->call_def[false], false);
	if (!err)
		err = call_fsm_def(&cm->call_def[true], true);
	if (!err)
		err = dialog_fsm_def(&cm->dlg_def[false], false);
	if (!err)
		err = dialog_fsm_def(&cm->dlg_def[true], true);
	if (!err)
		err = stack_service_add(st, &callmgr_key, cm, callmgr_stop);

	mem_deref(cm);            /* the stack holds it now */

	return err;
}


void callmgr_set_incoming(struct stack *st, call_incoming_h *h, void *arg)
{
	struct callmgr *cm;

	if (callmgr_start(st))
		return;

	cm = callmgr_of(st);

	cm->incomingh = h;
	cm->arg = arg;
	(void)stack_handler_set(&cm->invite, st, "INVITE",
				"INVITE ACK BYE CANCEL", STACK_OUT_OF_DIALOG,
				h ? uas_invite_hook : NULL, cm);
}


void callmgr_set_dialog_handler(struct stack *st, dialog_event_h *h,
				void *arg)
{
	struct callmgr *cm = callmgr_of(st);

	if (!cm)
		return;

	cm->dlgh = h;
	cm->dlg_arg = arg;
}


uint32_t callmgr_count(const struct stack *st)
{
	const struct callmgr *cm = callmgr_of(st);

	return cm ? list_count(&cm->calls) : 0;
}


uint64_t callmgr_total(const struct stack *st)
{
	const struct callmgr *cm = callmgr_of(st);

	return cm ? cm->total : 0;
}


struct call *callmgr_apply(const struct stack *st, call_apply_h *h,
			   void *arg)
{
	const struct callmgr *cm = callmgr_of(st);
	struct le *le;

	if (!cm || !h)
		return NULL;

	/* the next one is taken first: h may end the call (a call that
	 * ends leaves the list later, from its own events, but a reject
	 * of an unanswered one may be synchronous) */
	le = list_head(&cm->calls);
	while (le) {
		struct call *call = le->data;

		le = le->next;
		if (h(call, arg))
			return call;
	}

	return NULL;
}


void callmgr_set_draining(struct stack *st, bool drain, uint32_t retry_after)
{
	struct callmgr *cm = callmgr_of(st);

	if (!cm)
		return;

	cm->draining = drain;
	cm->retry_after = retry_after;
}


bool callmgr_draining(const struct stack *st)
{
	const struct callmgr *cm = callmgr_of(st);

	return cm && cm->draining;
}


/* Stopping: BYE what is confirmed, CANCEL what we placed, reject what
 * rings here; then forget them all (the stack is going away). */
void callmgr_shutdown(struct callmgr *cm)
{
	struct le *le;

	if (!cm)
		return;

	le = list_head(&cm->calls);
	while (le) {
		struct call *call = le->data;

		le = le->next;
		mem_ref(call);
		(void)call_hangup(call, "shutdown");
		call_end(call, "shutdown");   /* owners hear it: Terminated */
		mem_deref(call);
	}
}
