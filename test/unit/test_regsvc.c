/**
 * test/unit/test_regsvc.c  The registrar service (server/registrar/regsvc.c)
 *
 * Covers: config defaults and comparison (what keeps a service over a
 * reload); a memory store without auth answering REGISTER in C and
 * looking the binding up; an SQLite store with auth challenging it
 * (401); the guard as the stack's admission gate while the service
 * lives (a banned address is dropped), and the gate gone with it. Real
 * stacks on 127.0.0.1:0 with a libre client in the same process. Leaks:
 * run under valgrind by meson (test unit-regsvc-valgrind).
 */
#include <string.h>
#include <stdlib.h>
#include <stdio.h>
#include <unistd.h>
#include <re.h>
#include "sipstack.h"
#include "regsvc.h"


#include "testutil.h"

static struct stack_handler *hd_register;   /* the test's REGISTER handler */


struct client {
	struct sip *sip;
	uint16_t scode;
	bool answered;
};


static void client_resp(int err, const struct sip_msg *msg, void *arg)
{
	struct client *c = arg;

	if (!err && msg && msg->scode < 200)
		return;

	c->answered = !err && msg;
	c->scode = c->answered ? msg->scode : 0;
	re_cancel();
}


static int client_alloc(struct client *c)
{
	struct sa laddr;
	int err;

	memset(c, 0, sizeof(*c));
	err = sip_alloc(&c->sip, NULL, 16, 16, 16, "test-client", NULL, NULL);
	if (err)
		return err;

	(void)sa_set_str(&laddr, "127.0.0.1", 0);

	return sip_transp_add(c->sip, SIP_TRANSP_UDP, &laddr);
}


static void client_free(struct client *c)
{
	if (c->sip) {
		sip_close(c->sip, true);
		c->sip = mem_deref(c->sip);
	}
}


/* met to dst; REGISTER binds alice's Contact for 60 s */
static int client_send(struct client *c, const struct sa *dst,
		       const char *met)
{
	char uri[128];

	c->scode = 0;
	c->answered = false;
	(void)re_snprintf(uri, sizeof(uri), "sip:%J", dst);

	return sip_requestf(NULL, c->sip, true, met, uri, NULL, NULL, NULL,
			    client_resp, c,
			    "To: <sip:alice@127.0.0.1>\r\n"
			    "From: <sip:alice@127.0.0.1>;tag=%x\r\n"
			    "Call-ID: %x\r\n"
			    "CSeq: 1 %s\r\n"
			    "Contact: <sip:alice@127.0.0.1:5999>\r\n"
			    "Expires: 60\r\n"
			    "Content-Length: 0\r\n\r\n",
			    rand_u32(), rand_u32(), met);
}


static bool register_hook(struct stack *st, struct stack_req *req,
			  void *arg)
{
	(void)st;

	regsvc_register(arg, req);

	return true;
}


static int stack_up(struct stack **stp, struct sa *dst)
{
	struct stack_config cfg;
	struct sa laddr;
	int err;

	stack_config_default(&cfg);
	(void)sa_set_str(&laddr, "127.0.0.1", 0);
	err = stack_alloc(stp, &cfg);
	if (!err)
		err = stack_listen(*stp, SIP_TRANSP_UDP, &laddr, NULL);
	if (!err)
		err = stack_start(*stp);
	if (!err)
		err = sip_transp_laddr(stack_sip(*stp), dst, SIP_TRANSP_UDP,
				       NULL);

	return err;
}


static void test_config(void)
{
	struct regsvc_config a, b;

	regsvc_config_default(&a);
	CHECK(a.auth && a.guard && !a.memory && !a.database &&
	      !strcmp(a.realm, "sipstack") &&
	      a.algs == (AUTH_ALG_MD5 | AUTH_ALG_SHA256) &&
	      a.nonce_ttl == AUTH_NONCE_TTL &&
	      a.gcfg.src_failures == AUTHGUARD_SRC_FAILURES,
	      "config defaults: auth and guard on, realm sipstack");

	b = a;
	CHECK(regsvc_config_equal(&a, &b), "a config equals its copy");
	b.realm = "other";
	CHECK(!regsvc_config_equal(&a, &b), "another realm differs");
	b = a;
	b.gcfg.ban_time = 60;
	CHECK(!regsvc_config_equal(&a, &b), "another guard differs");
	b = a;
	b.database = "x.db";
	CHECK(!regsvc_config_equal(&a, &b), "another database differs");
	CHECK(!regsvc_config_equal(&a, NULL), "NULL equals nothing");
}


static void test_memory(void)
{
	struct regsvc_config cfg;
	struct regsvc *rs = NULL;
	struct loc_set *set = NULL;
	struct stack *st = NULL;
	struct client c;
	struct sa dst;
	int err;

	regsvc_config_default(&cfg);
	cfg.memory = true;
	cfg.auth = false;

	err = stack_up(&st, &dst);
	CHECK(!err, "stack on 127.0.0.1:0");
	err = regsvc_open(&rs, st, &cfg);
	CHECK(!err && rs, "memory store without auth");
	if (err)
		goto out;
	CHECK(!regsvc_auth(rs) && !regsvc_guard(rs), "no auth, no guard");
	CHECK(regsvc_config_equal(regsvc_config(rs), &cfg),
	      "the service keeps its config");

	(void)stack_handler_set(&hd_register, st, "REGISTER", "REGISTER", STACK_OUT_OF_DIALOG, register_hook, rs);
	err = client_alloc(&c);
	err |= client_send(&c, &dst, "REGISTER");
	CHECK(!err && run_loop(3000) && c.scode == 200,
	      "REGISTER answered 200 in C");

	CHECK(regsvc_lookup(&set, rs, "not a uri") == EINVAL,
	      "lookup of a non-URI: EINVAL");
	err = regsvc_lookup(&set, rs, "sip:alice@127.0.0.1");
	CHECK(!err && loc_set_count(set) == 1 &&
	      strstr(loc_set_binding(set, 0)->contact, ":5999"),
	      "lookup finds the binding");
	set = mem_deref(set);
	err = regsvc_lookup(&set, rs, "sip:bob@127.0.0.1");
	CHECK(!err && loc_set_count(set) == 0, "unknown AOR: empty set");
	set = mem_deref(set);

	/* a service without a guard leaves the gate alone */
	err = client_send(&c, &dst, "OPTIONS");
	CHECK(!err && run_loop(3000) && c.scode == 200, "OPTIONS admitted");

	client_free(&c);
	(void)stack_handler_set(&hd_register, st, "REGISTER", "REGISTER", STACK_OUT_OF_DIALOG, NULL, NULL);
 out:
	mem_deref(rs);
	stack_stop(st);
	mem_deref(st);
}


static void test_auth_guard(const char *dir)
{
	struct regsvc_config cfg;
	struct regsvc *rs = NULL;
	struct stack *st = NULL;
	struct stack_stats stats;
	struct client c;
	struct sa dst, src;
	char db[512];
	int err;

	(void)re_snprintf(db, sizeof(db), "%s/reg.db", dir);
	regsvc_config_default(&cfg);
	cfg.database = db;
	cfg.gcfg.src_failures = 1;

	err = stack_up(&st, &dst);
	CHECK(!err, "stack on 127.0.0.1:0");
	err = regsvc_open(&rs, st, &cfg);
	CHECK(!err && rs, "SQLite store with auth and a guard");
	if (err)
		goto out;
	CHECK(regsvc_auth(rs) && regsvc_guard(rs), "auth and guard on");

	(void)stack_handler_set(&hd_register, st, "REGISTER", "REGISTER", STACK_OUT_OF_DIALOG, register_hook, rs);
	err = client_alloc(&c);
	err |= client_send(&c, &dst, "REGISTER");
	CHECK(!err && run_loop(3000) && c.scode == 401,
	      "REGISTER without credentials: 401");

	/* one failure bans 127.0.0.1: the gate drops its requests */
	(void)sa_set_str(&src, "127.0.0.1", 0);
	authguard_failed(regsvc_guard(rs), &src, NULL, true);
	CHECK(authguard_banned(regsvc_guard(rs), &src), "127.0.0.1 banned");
	err = client_send(&c, &dst, "OPTIONS");
	CHECK(!err && !run_loop(600) && !c.answered,
	      "the service's guard is the stack's gate: dropped");
	memset(&stats, 0, sizeof(stats));
	stack_stats(st, &stats);
	CHECK(stats.dropped >= 1, "counted as dropped");

	/* the service goes, and its gate with it */
	(void)stack_handler_set(&hd_register, st, "REGISTER", "REGISTER", STACK_OUT_OF_DIALOG, NULL, NULL);
	rs = mem_deref(rs);
	client_free(&c);
	err = client_alloc(&c);
	err |= client_send(&c, &dst, "OPTIONS");
	CHECK(!err && run_loop(3000) && c.scode == 200,
	      "gate cleared with the service");
	client_free(&c);

 out:
	mem_deref(rs);
	stack_stop(st);
	mem_deref(st);
	(void)unlink(db);
	(void)re_snprintf(db, sizeof(db), "%s/reg.db-wal", dir);
	(void)unlink(db);
	(void)re_snprintf(db, sizeof(db), "%s/reg.db-shm", dir);
	(void)unlink(db);
}


int main(void)
{
	char dir[] = "/tmp/sipstack-regsvc-XXXXXX";
	int err;

	err = libre_init();
	if (err)
		return 1;

	log_set_level(LOG_ERROR);

	test_config();
	test_memory();
	if (!mkdtemp(dir)) {
		CHECK(false, "mkdtemp");
	}
	else {
		test_auth_guard(dir);
		(void)rmdir(dir);
	}

	libre_close();
	printf("1..%d\n", ntest);

	return nfail ? 1 : 0;
}
