/**
 * test/unit/test_runtime.c  The Lua runtime's one yield protocol
 *
 * A real stack on 127.0.0.1:0 and a script (written to a temporary
 * folder) whose sip.spawn tasks go through every way an op can end:
 * its own timer (sip.sleep), a start that fails (nil, "invalid uri"
 * without yielding), misuse (raises), a coroutine.yield outside a sip.*
 * call (the task fails), a yielding call inside a coroutine of the
 * script's own (raises). Then the runtime is freed while two ops wait:
 * a sleep (stopped with its task) and a send_message whose transaction
 * calls back only when the stack goes (ECANCELED), after its task is
 * gone: the late callback must find no task and touch nothing. Leaks
 * and invalid accesses: run under valgrind by meson (test
 * unit-runtime-valgrind).
 */
#include <string.h>
#include <stdlib.h>
#include <stdio.h>
#include <unistd.h>
#include <re.h>
#include "sipstack.h"
#include "luart.h"


#include "testutil.h"


static const char script_fmt[] =
	"local function say(what, t) sip.log.warn(what, t) end\n"
	"\n"
	"sip.spawn(function()\n"
	"  say('slept', { n = select('#', sip.sleep(0.01)) })\n"
	"  sip.sleep(3600)   -- waits when the runtime goes\n"
	"end)\n"
	"\n"
	"sip.spawn(function()\n"
	"  local c, e = sip.send_message('sip:', 'text/plain', 'x')\n"
	"  say('abort', { c = tostring(c), e = e })\n"
	"  c, e = sip.send_message('sip:sink@127.0.0.1:%u', 'text/plain',\n"
	"                          'x')   -- nobody answers\n"
	"  say('late', { c = tostring(c), e = e })\n"
	"end)\n"
	"\n"
	"sip.spawn(function()\n"
	"  local ok = pcall(sip.sleep, -1)\n"
	"  say('misuse', { ok = tostring(ok) })\n"
	"  coroutine.yield()\n"
	"end)\n"
	"\n"
	"sip.spawn(function()\n"
	"  local co = coroutine.create(function() return sip.sleep(0) end)\n"
	"  local ok = coroutine.resume(co)\n"
	"  say('own_coroutine', { ok = tostring(ok) })\n"
	"end)\n";


/* does the log hold a line with a and b (b may be NULL)? */
static bool logged(FILE *f, const char *a, const char *b)
{
	char line[2048];
	bool found = false;

	fflush(f);
	rewind(f);
	while (!found && fgets(line, sizeof(line), f))
		found = strstr(line, a) && (!b || strstr(line, b));
	fseek(f, 0, SEEK_END);

	return found;
}


static void test_ops(const char *dir)
{
	struct stack_config cfg;
	struct stack *st = NULL;
	struct luart *rt = NULL;
	struct udp_sock *sink = NULL;
	struct sa laddr, sinkaddr;
	char path[512];
	FILE *f, *log;
	int err;

	log = tmpfile();
	if (!log) {
		CHECK(false, "tmpfile");
		return;
	}
	log_set_sink(log);

	/* a UDP port that reads nothing: the MESSAGE stays unanswered */
	(void)sa_set_str(&laddr, "127.0.0.1", 0);
	err = udp_listen(&sink, &laddr, NULL, NULL);
	err |= udp_local_get(sink, &sinkaddr);
	CHECK(!err, "sink socket");

	(void)re_snprintf(path, sizeof(path), "%s/ops.lua", dir);
	f = fopen(path, "w");
	CHECK(f != NULL, "script written");
	if (!f)
		goto out;
	(void)fprintf(f, script_fmt, sa_port(&sinkaddr));
	(void)fclose(f);

	/* as server/main.c does: load, listen, start, run the spawns */
	stack_config_default(&cfg);
	err = stack_alloc(&st, &cfg);
	CHECK(!err, "stack");
	if (err)
		goto out;

	err = luart_alloc(&rt, st, path, NULL, NULL);
	CHECK(!err && rt, "script loaded");
	if (err)
		goto out;

	err = stack_listen(st, SIP_TRANSP_UDP, &laddr, NULL);
	err |= stack_start(st);
	CHECK(!err, "stack on 127.0.0.1:0");
	CHECK(luart_tasks(rt) == 0, "spawns wait for the start");

	luart_start(rt);
	(void)run_loop(300);

	CHECK(logged(log, "msg=slept", "n=0"),
	      "sip.sleep: resumed by its timer, with no values");
	CHECK(logged(log, "msg=abort", "e=\"invalid uri\""),
	      "a start that fails returns nil, err without yielding");
	CHECK(logged(log, "msg=misuse", "ok=false"),
	      "misuse raises");
	CHECK(logged(log, "ev=hook_error", "yielded outside a sip.* call"),
	      "coroutine.yield outside a sip.* call fails the task");
	CHECK(logged(log, "msg=own_coroutine", "ok=false"),
	      "a yielding call in a coroutine of the script's own raises");
	CHECK(luart_tasks(rt) == 2, "two tasks wait: a sleep and a "
	      "send_message");

	/* the runtime goes while both wait: the sleep's timer goes with
	 * its task; the MESSAGE's op waits for its transaction */
	rt = mem_deref(rt);
	(void)run_loop(50);

	/* the stack goes: the transaction calls back (ECANCELED) and
	 * finds no task */
	stack_stop(st);
	st = mem_deref(st);
	CHECK(!logged(log, "msg=late", NULL),
	      "the late callback resumed nothing");

 out:
	log_set_sink(NULL);
	mem_deref(rt);
	mem_deref(st);
	mem_deref(sink);
	(void)unlink(path);
	fclose(log);
}


int main(void)
{
	char dir[] = "/tmp/sipstack-rt-XXXXXX";
	int err;

	err = libre_init();
	if (err)
		return 1;

	log_set_level(LOG_INFO);

	if (!mkdtemp(dir)) {
		CHECK(false, "mkdtemp");
	}
	else {
		test_ops(dir);
		(void)rmdir(dir);
	}

	libre_close();
	printf("1..%d\n", ntest);

	return nfail ? 1 : 0;
}
