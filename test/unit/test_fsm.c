/**
 * test/unit/test_fsm.c  Unit test of server/core/fsm.c, TAP output
 *
 * Builds a small dialog-like machine and drives it through every public
 * FSM function: wildcard precedence, refused transitions and their exact
 * messages, the history ring, copy-on-write, handler order, nested and
 * self transitions, release from a handler, and an out-of-memory pass.
 *
 * The out-of-memory pass works by defining mem_zalloc() here: the linker
 * binds fsm.c's calls to this definition before libre's, and fsm.c makes
 * every allocation through mem_zalloc(), so the n-th one can fail. Leaks
 * are left to valgrind (mem_get_stat() does nothing in a RELEASE libre).
 */
#include <string.h>
#include <re.h>
#include "sipstack.h"


static unsigned tests, failures;

static void ok(bool cond, const char *name)
{
	++tests;
	if (!cond)
		++failures;

	(void)re_printf("%sok %u - %s\n", cond ? "" : "not ", tests, name);
}

static void is_str(const char *got, const char *want, const char *name)
{
	bool eq = got && want && 0 == strcmp(got, want);

	ok(eq, name);
	if (!eq)
		(void)re_printf("#   got:  '%s'\n#   want: '%s'\n",
				got ? got : "(null)", want ? want : "(null)");
}

static void is_int(long got, long want, const char *name)
{
	ok(got == want, name);
	if (got != want)
		(void)re_printf("#   got: %ld  want: %ld\n", got, want);
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


/* ---- handlers: each appends to the log of its instance arg --------- */

enum mode {
	M_NONE = 0,
	M_NESTED,        /* enter(Confirmed) queues Bye, then a bad one   */
	M_NESTED_EXIT,   /* exit(Early) queues Bye before Confirmed       */
	M_LOOP,          /* enter(Early) re-enters Early forever          */
	M_FLOOD,         /* enter(Confirmed) queues 9 Error at once       */
	M_FREE_ENTER,    /* enter(Terminated) drops the last reference    */
	M_FREE_EXIT,     /* exit(Confirmed) drops the last reference      */
	M_COW,           /* transition handler adds a row to its instance */
	M_DROP,          /* queue two, then make the second one invalid   */
};

struct ctx {
	char log[2048];
	enum mode mode;
	int rc[10];
	int nrc;
	bool can_in_exit;
	char nested_err[128];
};

static void logf_(struct ctx *c, const char *fmt, ...)
{
	size_t n = strlen(c->log);
	va_list ap;

	va_start(ap, fmt);
	(void)re_vsnprintf(c->log + n, sizeof(c->log) - n, fmt, ap);
	va_end(ap);
}

static void on_exit_h(struct fsm *f, const char *state, void *arg)
{
	struct ctx *c = arg;

	logf_(c, "x(%s@%s) ", state, fsm_current(f));

	if (c->mode == M_NESTED_EXIT && 0 == strcmp(state, "Early")) {
		/* checked against Confirmed, where the machine will be */
		c->can_in_exit = fsm_can(f, "Bye");
		c->rc[c->nrc++] = fsm_transition(f, "Bye");
	}
	else if (c->mode == M_FREE_EXIT && 0 == strcmp(state, "Confirmed")) {
		c->mode = M_NONE;
		mem_deref(f);
	}
}

static void on_enter_h(struct fsm *f, const char *state, void *arg)
{
	struct ctx *c = arg;
	int i;

	logf_(c, "e(%s@%s) ", state, fsm_current(f));

	switch (c->mode) {

	case M_NESTED:
		if (strcmp(state, "Confirmed"))
			break;
		c->mode = M_NONE;
		c->rc[c->nrc++] = fsm_transition(f, "Bye");
		/* after Bye is queued the machine is bound for Terminated */
		c->rc[c->nrc++] = fsm_transition(f, "Receive2xx");
		str_ncpy(c->nested_err, fsm_error(f), sizeof(c->nested_err));
		logf_(c, "q ");
		break;

	case M_LOOP:
		if (0 == strcmp(state, "Early"))
			c->rc[0] = fsm_transition(f, "Receive1xx");
		break;

	case M_FLOOD:
		if (strcmp(state, "Confirmed"))
			break;
		c->mode = M_NONE;
		for (i = 0; i < 9; i++)
			c->rc[c->nrc++] = fsm_transition(f, "Error");
		break;

	case M_FREE_ENTER:
		if (strcmp(state, "Terminated"))
			break;
		c->mode = M_NONE;
		mem_deref(f);
		break;

	case M_DROP:
		if (strcmp(state, "Confirmed"))
			break;
		c->mode = M_NONE;
		c->rc[c->nrc++] = fsm_transition(f, "Reset");
		c->rc[c->nrc++] = fsm_transition(f, "Receive2xx");
		/* Reset now leads to Terminated, where Receive2xx is not
		 * allowed: the second queued event must be dropped */
		c->rc[c->nrc++] = fsm_add_transition(f, "Confirmed", "Reset",
						     "Terminated");
		break;

	default:
		break;
	}
}

static void on_trans_h(struct fsm *f, const char *from, const char *to,
		       const char *event, void *arg)
{
	struct ctx *c = arg;

	logf_(c, "t(%s>%s/%s@%s) ", from, to, event, fsm_current(f));

	if (c->mode == M_COW) {
		c->mode = M_NONE;
		/* replaces f's def while from/to/event point into the old */
		c->rc[c->nrc++] = fsm_add_transition(f, "Zombie", "Revive",
						     "Init");
		logf_(c, "cow(%s>%s/%s) ", from, to, event);
	}
}

static void reset(struct ctx *c, enum mode m)
{
	memset(c, 0, sizeof(*c));
	c->mode = m;
}


/* ---- the machine under test ---------------------------------------- */

static int make_builder(struct fsm_builder **bp, uint16_t hist)
{
	struct fsm_builder *b = NULL;
	int err;

	err = fsm_builder_alloc(&b, "dialog");
	if (err)
		return err;

	err  = fsm_builder_initial(b, "Init");
	err |= fsm_builder_transition(b, "Init", "Receive1xx", "Early");
	err |= fsm_builder_transition(b, "Early", "Receive1xx", "Early");
	err |= fsm_builder_transition(b, "Init", "Receive2xx", "Confirmed");
	err |= fsm_builder_transition(b, "Early", "Receive2xx", "Confirmed");
	err |= fsm_builder_transition(b, "Confirmed", "Bye", "Terminated");
	err |= fsm_builder_transition(b, "*", "Error", "Terminated");
	err |= fsm_builder_transition(b, "*", "Reset", "Init");
	/* explicit row wins over the "*" one; added after it on purpose */
	err |= fsm_builder_transition(b, "Terminated", "Reset", "Terminated");
	err |= fsm_builder_enter(b, "Init", on_enter_h);
	err |= fsm_builder_enter(b, "Early", on_enter_h);
	err |= fsm_builder_enter(b, "Confirmed", on_enter_h);
	err |= fsm_builder_enter(b, "Terminated", on_enter_h);
	err |= fsm_builder_exit(b, "Init", on_exit_h);
	err |= fsm_builder_exit(b, "Early", on_exit_h);
	err |= fsm_builder_exit(b, "Confirmed", on_exit_h);
	err |= fsm_builder_exit(b, "Terminated", on_exit_h);
	err |= fsm_builder_on_transition(b, on_trans_h);
	err |= fsm_builder_history(b, hist);

	if (err)
		mem_deref(b);
	else
		*bp = b;

	return err ? ENOMEM : 0;
}

static int make_def(struct fsm_def **dp, uint16_t hist)
{
	struct fsm_builder *b = NULL;
	int err;

	err = make_builder(&b, hist);
	if (err)
		return err;

	err = fsm_build(dp, b);
	mem_deref(b);

	return err;
}


/* ---- tests --------------------------------------------------------- */

static void test_builder(void)
{
	struct fsm_builder *b = NULL;
	struct fsm_def *d = NULL;

	is_int(fsm_builder_alloc(NULL, "x"), EINVAL, "builder_alloc NULL");
	is_int(fsm_builder_alloc(&b, NULL), 0, "builder_alloc no name");

	is_int(fsm_build(&d, b), EINVAL, "build without initial state");
	ok(d == NULL, "build failure leaves *defp");

	is_int(fsm_builder_initial(NULL, "A"), EINVAL, "initial NULL b");
	is_int(fsm_builder_initial(b, "*"), EINVAL, "initial '*'");
	is_int(fsm_builder_initial(b, ""), EINVAL, "initial empty");
	is_int(fsm_builder_transition(b, "A", "*", "B"), EINVAL,
	       "transition event '*'");
	is_int(fsm_builder_transition(b, "A", "e", "*"), EINVAL,
	       "transition to '*'");
	is_int(fsm_builder_transition(b, NULL, "e", "B"), EINVAL,
	       "transition from NULL");
	is_int(fsm_builder_transition(NULL, "A", "e", "B"), EINVAL,
	       "transition NULL b");
	is_int(fsm_builder_enter(b, "*", on_enter_h), EINVAL, "enter '*'");
	is_int(fsm_builder_exit(NULL, "A", on_exit_h), EINVAL,
	       "exit NULL b");
	is_int(fsm_builder_on_transition(NULL, on_trans_h), EINVAL,
	       "on_transition NULL b");
	is_int(fsm_builder_history(NULL, 4), EINVAL, "history NULL b");
	is_int(fsm_build(NULL, b), EINVAL, "build NULL defp");

	/* a later row for the same (from, event) replaces the earlier */
	is_int(fsm_builder_initial(b, "A"), 0, "initial A");
	is_int(fsm_builder_transition(b, "A", "go", "B"), 0, "A go B");
	is_int(fsm_builder_transition(b, "A", "go", "A"), 0, "A go A");
	is_int(fsm_build(&d, b), 0, "build minimal");
	is_str(fsm_def_name(d), "", "NULL name is empty");
	is_str(fsm_def_state_name(d, fsm_def_state(d, "A")), "A",
	       "state A interned");
	is_int(fsm_def_state_count(d), 2, "two states (B still interned)");

	{
		struct fsm *f = NULL;

		is_int(fsm_alloc(&f, d, NULL), 0, "alloc minimal");
		is_int(fsm_transition(f, "go"), 0, "go");
		is_str(fsm_current(f), "A", "replaced row: A go A");
		mem_deref(f);
	}

	mem_deref(d);
	mem_deref(b);
}


static void test_def(void)
{
	struct fsm_def *d = NULL;
	char buf[2048];

	is_int(make_def(&d, FSM_HISTORY_DEFAULT), 0, "build dialog def");

	is_str(fsm_def_name(d), "dialog", "def_name");
	is_int(fsm_def_state_count(d), 4, "def_state_count");
	is_int(fsm_def_event_count(d), 5, "def_event_count");
	is_int(fsm_def_state(d, "Init"), 0, "initial state interned first");
	is_int(fsm_def_state(d, "Terminated"), 3, "def_state Terminated");
	is_int(fsm_def_state(d, "Nope"), -1, "def_state unknown");
	is_int(fsm_def_state(d, NULL), -1, "def_state NULL");
	is_int(fsm_def_event(d, "Receive1xx"), 0, "def_event Receive1xx");
	is_int(fsm_def_event(d, "Reset"), 4, "def_event Reset");
	is_int(fsm_def_event(d, "*"), -1, "def_event '*' is not an event");
	is_str(fsm_def_state_name(d, 2), "Confirmed", "def_state_name");
	ok(fsm_def_state_name(d, 4) == NULL, "def_state_name out of range");
	ok(fsm_def_state_name(d, -1) == NULL, "def_state_name -1");
	is_str(fsm_def_event_name(d, 2), "Bye", "def_event_name");
	ok(fsm_def_event_name(d, 9) == NULL, "def_event_name out of range");
	ok(fsm_def_name(NULL) == NULL && fsm_def_state_count(NULL) == 0 &&
	   fsm_def_event_count(NULL) == 0 && fsm_def_event(NULL, "x") == -1,
	   "def getters accept NULL");

	(void)re_snprintf(buf, sizeof(buf), "%H", fsm_def_debug, d);
	ok(NULL != strstr(buf, "**dialog** (initial state `Init`)\n\n"
			  "| state | Receive1xx | Receive2xx | Bye | Error |"
			  " Reset |\n|---|---|---|---|---|---|\n"),
	   "def_debug header");
	ok(NULL != strstr(buf, "| Init | Early | Confirmed | | _Terminated_ |"
			  " _Init_ |\n"), "def_debug Init row, '*' italic");
	ok(NULL != strstr(buf, "| Terminated | | | | _Terminated_ |"
			  " Terminated |\n"), "def_debug explicit row wins");
	ok(NULL != strstr(buf, "| * | | | | Terminated | Init |\n"),
	   "def_debug '*' row");
	{
		/* the table, as TAP comments, for whoever reads the log */
		char *line = buf, *nl;

		while ((nl = strchr(line, '\n'))) {
			*nl = '\0';
			(void)re_printf("# %s\n", line);
			line = nl + 1;
		}
	}

	mem_deref(d);
}


static void test_basic(void)
{
	struct fsm_def *d = NULL;
	struct fsm *f = NULL;
	struct ctx c;
	int bye;

	reset(&c, M_NONE);
	(void)make_def(&d, FSM_HISTORY_DEFAULT);

	is_int(fsm_alloc(NULL, d, &c), EINVAL, "alloc NULL fp");
	is_int(fsm_alloc(&f, NULL, &c), EINVAL, "alloc NULL def");
	is_int(fsm_alloc(&f, d, &c), 0, "alloc");
	ok(fsm_def(f) == d, "fsm_def is the shared def");
	is_str(fsm_current(f), "Init", "current is initial");
	is_int(fsm_state_id(f), 0, "state_id");
	is_str(c.log, "", "no enter handler for the initial state");
	is_str(fsm_error(f), "", "no error yet");
	is_int(fsm_history_count(f), 0, "no history yet");

	ok(fsm_can(f, "Receive1xx"), "can Receive1xx in Init");
	ok(!fsm_can(f, "Bye"), "cannot Bye in Init");
	ok(!fsm_can(f, "Foo"), "cannot unknown event");
	ok(!fsm_can(f, NULL) && !fsm_can(NULL, "Bye"), "can NULL");
	bye = fsm_def_event(d, "Bye");
	ok(!fsm_can_id(f, bye), "can_id Bye");
	ok(fsm_can_id(f, fsm_def_event(d, "Error")), "can_id '*' Error");
	ok(!fsm_can_id(f, 99) && !fsm_can_id(f, -1), "can_id out of range");

	/* refused */
	is_int(fsm_transition(f, "Bye"), EPERM, "Bye refused in Init");
	is_str(fsm_error(f), "event 'Bye' not allowed in state 'Init'",
	       "refused message");
	is_str(fsm_current(f), "Init", "refused leaves the state");
	is_int(fsm_transitions(f), 0, "refused is not counted");

	is_int(fsm_transition(f, "Foo"), EINVAL, "unknown event");
	is_str(fsm_error(f), "unknown event 'Foo'", "unknown event message");
	is_int(fsm_transition(f, NULL), EINVAL, "NULL event");
	is_str(fsm_error(f), "invalid argument", "NULL event message");
	is_int(fsm_transition(NULL, "Bye"), EINVAL, "NULL fsm");
	is_int(fsm_transition_id(f, 99), EINVAL, "event id out of range");
	is_str(fsm_error(f), "unknown event id 99", "event id message");
	is_int(fsm_transition_id(f, -1), EINVAL, "event id -1");
	is_int(fsm_transition_id(NULL, 0), EINVAL, "transition_id NULL");

	/* handler order: exit(old), state changes, transition, enter(new) */
	reset(&c, M_NONE);
	is_int(fsm_transition(f, "Receive1xx"), 0, "Init -> Early");
	is_str(c.log, "x(Init@Init) t(Init>Early/Receive1xx@Early) "
	       "e(Early@Early) ", "handler order");
	is_str(fsm_error(f), "unknown event id", "success keeps the error");

	/* self-transition runs exit and enter */
	reset(&c, M_NONE);
	is_int(fsm_transition(f, "Receive1xx"), 0, "Early -> Early");
	is_str(c.log, "x(Early@Early) t(Early>Early/Receive1xx@Early) "
	       "e(Early@Early) ", "self-transition handlers");
	is_str(fsm_current(f), "Early", "still Early");

	/* fast path */
	is_int(fsm_transition_id(f, fsm_def_event(d, "Receive2xx")), 0,
	       "transition_id Receive2xx");
	is_str(fsm_current(f), "Confirmed", "Confirmed");
	is_int(fsm_state_id(f), 2, "state_id Confirmed");

	/* wildcard and its precedence */
	is_int(fsm_transition(f, "Reset"), 0, "'*' Reset from Confirmed");
	is_str(fsm_current(f), "Init", "'*' row led to Init");
	is_int(fsm_transition(f, "Error"), 0, "'*' Error from Init");
	is_str(fsm_current(f), "Terminated", "Terminated");
	reset(&c, M_NONE);
	is_int(fsm_transition(f, "Reset"), 0, "Reset in Terminated");
	is_str(fsm_current(f), "Terminated", "explicit row beat '*' row");
	is_str(c.log, "x(Terminated@Terminated) t(Terminated>Terminated/"
	       "Reset@Terminated) e(Terminated@Terminated) ",
	       "explicit self row handlers");

	is_int(fsm_transition(f, "Receive2xx"), EPERM, "Receive2xx refused");
	is_str(fsm_error(f),
	       "event 'Receive2xx' not allowed in state 'Terminated'",
	       "refused message in Terminated");
	is_int(fsm_transitions(f), 6, "transitions counted");

	mem_deref(f);
	mem_deref(d);
}


static void test_history(void)
{
	static const char *cycle[] = {"Receive1xx", "Receive1xx",
				      "Receive2xx", "Reset"};
	struct fsm_def *d = NULL, *d3 = NULL, *d0 = NULL;
	struct fsm *f = NULL, *f3 = NULL, *f0 = NULL;
	struct fsm_hist h, prev;
	struct ctx c;
	bool chain = true, mono = true;
	size_t i;
	char buf[4096];

	reset(&c, M_NONE);
	(void)make_def(&d, FSM_HISTORY_DEFAULT);
	(void)fsm_alloc(&f, d, &c);

	/* 4 transitions a cycle: 23 in all wraps the 16-entry ring */
	for (i = 0; i < 23; i++) {
		if (fsm_transition(f, cycle[i % 4]))
			break;
	}
	is_int((long)i, 23, "23 transitions");
	is_int((long)fsm_transitions(f), 23, "transitions total");
	is_int((long)fsm_history_count(f), 16, "ring holds 16");

	memset(&prev, 0, sizeof(prev));
	for (i = 0; i < 16; i++) {
		if (fsm_history(f, i, &h)) {
			chain = false;
			break;
		}
		/* entry i is transition 7 + i, event cycle[(7 + i) % 4] */
		if (strcmp(h.event, cycle[(7 + i) % 4]))
			chain = false;
		if (i && strcmp(prev.to, h.from))
			chain = false;
		if (h.ts_us < prev.ts_us || h.ts_us < 1500000000000000ull)
			mono = false;
		prev = h;
	}
	ok(chain, "ring oldest..newest after wrap-around");
	ok(mono, "timestamps realtime and non-decreasing");
	is_str(prev.to, fsm_current(f), "newest entry ends in current");
	(void)fsm_history(f, 0, &h);
	is_str(h.from, "Confirmed", "oldest kept is the 8th transition");
	is_str(h.event, "Reset", "oldest kept event");
	is_int(fsm_history(f, 16, &h), ENOENT, "history past the end");
	is_int(fsm_history(f, 0, NULL), EINVAL, "history NULL h");
	is_int(fsm_history(NULL, 0, &h), EINVAL, "history NULL f");
	is_int((long)fsm_history_count(NULL), 0, "history_count NULL");

	(void)re_snprintf(buf, sizeof(buf), "%H", fsm_debug, f);
	{
		static const char head[] = "fsm dialog: state=Confirmed "
			"transitions=23 history=16/16 def=shared\n";

		ok(0 == strncmp(buf, head, sizeof(head) - 1),
		   "fsm_debug head");
	}
	ok(NULL != strstr(buf, " Confirmed --Reset--> Init\n"),
	   "fsm_debug lists history");
	ok(NULL == strstr(buf, "last error"), "fsm_debug: no error line");

	/* small ring and no ring */
	(void)make_def(&d3, 3);
	(void)fsm_alloc(&f3, d3, &c);
	for (i = 0; i < 5; i++)
		(void)fsm_transition(f3, cycle[i % 4]);
	is_int((long)fsm_history_count(f3), 3, "capacity 3 keeps 3");
	(void)fsm_history(f3, 0, &h);
	is_str(h.event, "Receive2xx", "capacity 3 oldest is the third");
	(void)fsm_history(f3, 2, &h);
	is_str(h.event, "Receive1xx", "capacity 3 newest is the fifth");

	(void)make_def(&d0, 0);
	(void)fsm_alloc(&f0, d0, &c);
	(void)fsm_transition(f0, "Error");
	is_int((long)fsm_history_count(f0), 0, "capacity 0 keeps none");
	is_int(fsm_history(f0, 0, &h), ENOENT, "capacity 0 history");
	is_int((long)fsm_transitions(f0), 1, "capacity 0 still counts");

	mem_deref(f0);
	mem_deref(d0);
	mem_deref(f3);
	mem_deref(d3);
	mem_deref(f);
	mem_deref(d);
}


static void test_cow(void)
{
	struct fsm_def *d = NULL, *d1;
	struct fsm *f1 = NULL, *f2 = NULL;
	struct ctx c1, c2;
	struct fsm_hist h;
	char buf[1024];

	reset(&c1, M_NONE);
	reset(&c2, M_NONE);
	(void)make_def(&d, FSM_HISTORY_DEFAULT);
	(void)fsm_alloc(&f1, d, &c1);
	(void)fsm_alloc(&f2, d, &c2);
	(void)fsm_transition(f1, "Receive1xx");

	is_int(fsm_add_transition(f1, "Init", "Receive1xx", "Early"), 0,
	       "add existing row");
	ok(fsm_def(f1) == d, "existing row: no copy");

	is_int(fsm_add_transition(f1, "Early", "Revive", "Zombie"), 0,
	       "add row with new names");
	d1 = fsm_def(f1);
	ok(d1 != d && fsm_def(f2) == d, "copy for f1 only");
	is_int(fsm_def_event(d1, "Bye"), fsm_def_event(d, "Bye"),
	       "copy keeps event ids");
	is_int(fsm_def_state(d1, "Terminated"), fsm_def_state(d, "Terminated"),
	       "copy keeps state ids");
	is_int(fsm_def_state(d1, "Zombie"), 4, "new state interned after");
	is_int(fsm_def_event(d1, "Revive"), 5, "new event interned after");
	is_str(fsm_def_name(d1), "dialog", "copy keeps the name");
	ok(fsm_can(f1, "Revive"), "f1 can Revive");
	is_int(fsm_transition(f2, "Revive"), EINVAL, "f2 does not know it");
	is_str(fsm_error(f2), "unknown event 'Revive'", "f2 message");
	is_str(fsm_error(f1), "", "f1 has no error");

	reset(&c1, M_NONE);
	is_int(fsm_transition(f1, "Revive"), 0, "f1 Revive");
	is_str(c1.log, "x(Early@Early) t(Early>Zombie/Revive@Zombie) ",
	       "copy keeps the handlers");
	(void)fsm_history(f1, 0, &h);
	is_str(h.to, "Early", "history survives the copy");

	/* a "*" row on an instance: new states get it, explicit rows win */
	is_int(fsm_add_transition(f1, "*", "Receive2xx", "Terminated"), 0,
	       "add '*' row");
	ok(fsm_def(f1) != d1, "a second copy replaces the first");
	is_int(fsm_transition(f1, "Receive2xx"), 0, "Zombie Receive2xx");
	is_str(fsm_current(f1), "Terminated", "'*' row applies to Zombie");
	(void)fsm_transition(f1, "Reset");
	is_int(fsm_transition(f1, "Reset"), 0, "Terminated Reset");
	(void)fsm_transition(f1, "Error");
	(void)fsm_transition(f1, "Reset");  /* Terminated stays */
	is_str(fsm_current(f1), "Terminated", "explicit Reset row kept");
	is_int(fsm_add_transition(f1, "Terminated", "Reset", "Init"), 0,
	       "replace a row");
	(void)fsm_transition(f1, "Reset");
	is_str(fsm_current(f1), "Init", "replaced row used");
	is_int(fsm_transition(f1, "Receive2xx"), 0, "Init Receive2xx");
	is_str(fsm_current(f1), "Confirmed", "explicit beats new '*' row");

	is_int(fsm_transition(f2, "Receive2xx"), 0, "f2 Receive2xx");
	is_int(fsm_transition(f2, "Receive2xx"), EPERM,
	       "f2 unaffected by f1's '*' row");

	is_int(fsm_add_transition(f1, "A", "e", "*"), EINVAL, "add to '*'");
	is_str(fsm_error(f1), "invalid argument", "add EINVAL message");
	is_int(fsm_add_transition(f1, "A", "*", "B"), EINVAL, "add event '*'");
	is_int(fsm_add_transition(NULL, "A", "e", "B"), EINVAL, "add NULL");

	(void)re_snprintf(buf, sizeof(buf), "%H", fsm_debug, f1);
	ok(NULL != strstr(buf, "def=own"), "fsm_debug: own def");
	ok(NULL != strstr(buf, "last error: invalid argument"),
	   "fsm_debug: last error");

	mem_deref(f1);
	mem_deref(f2);
	mem_deref(d);
}


static void test_nested(void)
{
	struct fsm_def *d = NULL;
	struct fsm *f = NULL;
	struct ctx c;
	uint64_t n;
	int i;
	bool all;

	(void)make_def(&d, FSM_HISTORY_DEFAULT);

	/* from enter(): queued, runs after the current one has finished */
	reset(&c, M_NESTED);
	(void)fsm_alloc(&f, d, &c);
	is_int(fsm_transition(f, "Receive2xx"), 0, "outer Receive2xx");
	is_int(c.rc[0], 0, "nested Bye accepted (queued)");
	is_int(c.rc[1], EPERM, "nested Receive2xx checked after Bye");
	is_str(c.nested_err,
	       "event 'Receive2xx' not allowed in state 'Terminated'",
	       "nested refusal names the state it would run in");
	is_str(c.log, "x(Init@Init) t(Init>Confirmed/Receive2xx@Confirmed) "
	       "e(Confirmed@Confirmed) q x(Confirmed@Confirmed) "
	       "t(Confirmed>Terminated/Bye@Terminated) "
	       "e(Terminated@Terminated) ",
	       "nested transition runs after enter() returns");
	is_str(fsm_current(f), "Terminated", "both done on return");
	is_int((long)fsm_transitions(f), 2, "two transitions");
	mem_deref(f);

	/* from exit(): checked against the state being entered */
	reset(&c, M_NESTED_EXIT);
	(void)fsm_alloc(&f, d, &c);
	(void)fsm_transition(f, "Receive1xx");
	memset(c.log, 0, sizeof(c.log));
	is_int(fsm_transition(f, "Receive2xx"), 0, "Early Receive2xx");
	ok(c.can_in_exit, "fsm_can in exit() sees the coming state");
	is_int(c.rc[0], 0, "Bye from exit() accepted");
	is_str(c.log, "x(Early@Early) t(Early>Confirmed/Receive2xx@Confirmed) "
	       "e(Confirmed@Confirmed) x(Confirmed@Confirmed) "
	       "t(Confirmed>Terminated/Bye@Terminated) "
	       "e(Terminated@Terminated) ", "queued from exit()");
	mem_deref(f);

	/* a handler that keeps re-entering is cut off */
	reset(&c, M_LOOP);
	(void)fsm_alloc(&f, d, &c);
	is_int(fsm_transition(f, "Receive1xx"), 0, "loop: outer");
	is_int(c.rc[0], ELOOP, "loop: cut off with ELOOP");
	is_int((long)fsm_transitions(f), 64, "loop: 64 transitions ran");
	is_str(fsm_error(f), "event 'Receive1xx' in state 'Early': more "
	       "than 64 transitions in one call", "loop message");
	c.mode = M_NONE;
	n = fsm_transitions(f);
	is_int(fsm_transition(f, "Receive1xx"), 0, "usable after a loop");
	is_int((long)(fsm_transitions(f) - n), 1, "and not dispatching");
	mem_deref(f);

	/* queue overflow */
	reset(&c, M_FLOOD);
	(void)fsm_alloc(&f, d, &c);
	(void)fsm_transition(f, "Receive2xx");
	all = true;
	for (i = 0; i < 8; i++)
		all &= c.rc[i] == 0;
	ok(all, "8 queued");
	is_int(c.rc[8], EOVERFLOW, "9th refused with EOVERFLOW");
	is_int((long)fsm_transitions(f), 9, "1 + 8 ran");
	mem_deref(f);

	/* the def replaced from a handler while its names are in use */
	reset(&c, M_COW);
	(void)fsm_alloc(&f, d, &c);
	is_int(fsm_transition(f, "Receive1xx"), 0, "copy from a handler");
	is_int(c.rc[0], 0, "add_transition in handler");
	is_str(c.log, "x(Init@Init) t(Init>Early/Receive1xx@Early) "
	       "cow(Init>Early/Receive1xx) e(Early@Early) ",
	       "names stay valid across the copy");
	ok(fsm_def(f) != d, "instance has its own def");
	mem_deref(f);

	/* a queued event that the table no longer allows is dropped */
	reset(&c, M_DROP);
	(void)fsm_alloc(&f, d, &c);
	is_int(fsm_transition(f, "Receive2xx"), 0, "drop: outer");
	ok(c.rc[0] == 0 && c.rc[1] == 0 && c.rc[2] == 0, "drop: queued both");
	is_str(fsm_current(f), "Terminated", "drop: Reset went to Terminated");
	is_str(fsm_error(f), "queued event 'Receive2xx' not allowed in "
	       "state 'Terminated' (dropped)", "drop message");
	mem_deref(f);

	mem_deref(d);
}


static void test_release(void)
{
	struct fsm_def *d = NULL;
	struct fsm *f = NULL;
	struct ctx c;

	(void)make_def(&d, FSM_HISTORY_DEFAULT);

	/* enter() drops the only reference: freed when the call is done */
	reset(&c, M_FREE_ENTER);
	(void)fsm_alloc(&f, d, &c);
	is_int(fsm_transition(f, "Error"), 0, "released in enter()");
	is_int(mem_nrefs(d), 1, "instance and its def ref are gone");

	/* exit() drops it: transition and enter handlers are skipped */
	reset(&c, M_NONE);
	f = NULL;
	(void)fsm_alloc(&f, d, &c);
	(void)fsm_transition(f, "Receive2xx");
	reset(&c, M_FREE_EXIT);
	is_int(fsm_transition(f, "Bye"), 0, "released in exit()");
	is_str(c.log, "x(Confirmed@Confirmed) ", "later handlers skipped");
	is_int(mem_nrefs(d), 1, "freed after exit()");

	/* with another reference held, nothing is skipped */
	reset(&c, M_NONE);
	f = NULL;
	(void)fsm_alloc(&f, d, &c);
	(void)fsm_transition(f, "Receive2xx");
	mem_ref(f);
	reset(&c, M_FREE_EXIT);
	(void)fsm_transition(f, "Bye");
	is_str(c.log, "x(Confirmed@Confirmed) t(Confirmed>Terminated/Bye@"
	       "Terminated) e(Terminated@Terminated) ",
	       "a dropped non-last ref skips nothing");
	is_int(mem_nrefs(f), 1, "one ref left");
	mem_deref(f);

	mem_deref(d);
}


/* One full use of the module; returns the first error */
static int scenario(void)
{
	struct fsm_def *d = NULL;
	struct fsm *f = NULL, *g = NULL;
	struct ctx c;
	int err;

	reset(&c, M_NONE);

	err = make_def(&d, 4);
	if (err)
		goto out;

	err = fsm_alloc(&f, d, &c);
	if (err)
		goto out;

	err = fsm_alloc(&g, d, &c);
	if (err)
		goto out;

	err = fsm_transition(f, "Receive1xx");
	if (err)
		goto out;

	err = fsm_add_transition(f, "Early", "Revive", "Zombie");
	if (err) {
		/* a failed copy leaves the instance as it was */
		if (fsm_def(f) != d || strcmp(fsm_error(f), "out of memory") ||
		    fsm_transition(f, "Receive2xx"))
			err = EBADMSG;
		goto out;
	}

	err = fsm_transition(f, "Revive");

 out:
	mem_deref(g);
	mem_deref(f);
	mem_deref(d);

	return err;
}


static void test_oom(void)
{
	unsigned fails = 0, bad = 0, runs = 0;
	struct fsm_builder *b = NULL;
	long n;
	int err;

	alloc_countdown = 0;
	alloc_failed = 0;
	err = fsm_builder_alloc(&b, "x");
	alloc_countdown = -1;
	ok(err == ENOMEM && alloc_failed == 1 && b == NULL,
	   "allocator interposed: first allocation fails");

	/* a failed builder call changes nothing */
	err = fsm_builder_alloc(&b, "x");
	err |= fsm_builder_initial(b, "A");
	ok(err == 0, "builder for the atomicity check");
	/* three names to copy: the 1st, 2nd or 3rd allocation may fail */
	for (n = 0; n < 100; n++) {
		struct fsm_def *d = NULL;

		alloc_countdown = n;
		alloc_failed = 0;
		err = fsm_builder_transition(b, "B", "go", "C");
		alloc_countdown = -1;
		if (!alloc_failed)
			break;
		if (err != ENOMEM)
			++bad;
		(void)fsm_build(&d, b);
		if (fsm_def_state_count(d) != 1 ||
		    fsm_def_event_count(d) != 0)
			++bad;
		mem_deref(d);
	}
	ok(n == 3 && err == 0 && bad == 0,
	   "failed transition leaves the builder as it was");
	b = mem_deref(b);

	for (n = 0; n < 10000; n++) {
		alloc_countdown = n;
		alloc_failed = 0;
		err = scenario();
		alloc_countdown = -1;
		++runs;

		if (!alloc_failed) {
			if (err)
				++bad;
			break;
		}
		++fails;
		if (err != ENOMEM)
			++bad;
	}

	ok(fails > 10 && bad == 0, "every failed allocation gives ENOMEM");
	(void)re_printf("# %u runs, %u with a failed allocation\n",
			runs, fails);
}


int main(void)
{
	test_builder();
	test_def();
	test_basic();
	test_history();
	test_cow();
	test_nested();
	test_release();
	test_oom();

	(void)re_printf("1..%u\n", tests);

	return failures ? 1 : 0;
}
