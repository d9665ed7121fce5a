/**
 * test/fuzz/fuzz_sip.c  One received datagram, through what it meets
 *                        before a hook
 *
 * The libFuzzer target of `make fuzz` (built with clang, ASan and UBSan,
 * meson option fuzz) and, built with gcc as a plain program with
 * replay.c, the replayer of test/fuzz/regressions/ in `make test`.
 * LLVMFuzzerTestOneInput() takes the bytes as one UDP datagram and runs
 * them through the functions the server runs them through, in the same
 * order and with the same early exits, without a socket or a loop:
 *
 *   1. libre's transport: nothing of 4 bytes or less; a STUN message
 *      (stun_msg_decode) is not SIP; sip_msg_decode() on the mbuf,
 *      which is ours (server/libre_ext/msgdecode.c wraps libre's and
 *      repairs a bad Content-Type/CSeq in place: the bytes are copied
 *      into a writable mbuf first, as libre's receive buffer is).
 *      LLVMFuzzerInitialize() checks that the sip_msg_decode the
 *      process exports (what libre's transport binds to) is ours.
 *   2. a request, as server/core/dispatch.c stack_request_handler():
 *      an ACK only to dialog matching; stack_validate() (RFC 3261 §8.2,
 *      the core answers 4xx/5xx and stops there), stack_unsupported()
 *      (420); then with a To tag dialog_table_find() in a table of three
 *      dialogs made per input (so that no state crosses inputs), and in
 *      a matched one the remote CSeq rule and, for re-INVITE/UPDATE, the
 *      target refresh; without a To tag: REGISTER through the
 *      registrar's parser (registrar_check(): To, Expires, Contact,
 *      Path), an INVITE through the call manager's body check
 *      (sdp_problem) and UAS dialog creation (Contact, Record-Route),
 *      then found again in the table. Every request's Authorization and
 *      Proxy-Authorization go through the digest verifier (auth_check:
 *      digest_params_decode, the credentials' checks, the nonce, the
 *      URI comparison), every SDP body through sdp_problem(),
 *      sdp_direction() and sdp_set_direction().
 *   3. a response, as stack_response_handler(): dialog matching (our
 *      UAC dialog's Call-ID and From tag), then what the call does with
 *      one of its dialog: the remote tag, route set and target
 *      (dialog_set_remote), another fork's dialog (dialog_fork); a 401
 *      or 407 through the client's answer (auth_client_answer:
 *      digest_params_decode on WWW-/Proxy-Authenticate).
 *
 * Nonces: the verifier refuses a nonce that is not its own (an HMAC)
 * before it looks further, which no fuzzer can forge. So the harness
 * replaces every "$NONCE" in the input by a nonce of the process's
 * verifier (made once), before anything else: the seeds use it, and
 * the URI comparison and hashing behind the nonce are fuzzed too. A
 * replayed input gets the replaying process's nonce, so it replays the
 * same way.
 *
 * Deterministic: the dialog table is made anew for each input, the
 * verifier has no guessing limits (no bans, no state from failures)
 * and no user (nothing can verify, so the nonce-count table never
 * changes); logging is off. No network, no event loop: libre_init()
 * once, for its memory and random numbers.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <re.h>
#include "sipstack.h"
#include "core.h"
#include "libre_ext.h"
#include "fuzz_sip.h"


enum { DGRAM_MAX = 65535 };

/* the dialogs of the table each input gets */
#define UAS_CALLID "fuzz-uas@127.0.0.1"
#define UAS_LTAG   "uas-ltag"
#define UAS_RTAG   "uas-rtag"
#define UAS2_LTAG  "uas2-ltag"     /* a second dialog, same Call-ID */
#define UAC_CALLID "fuzz-uac@127.0.0.1"
#define UAC_LTAG   "uac-ltag"
#define NEW_LTAG   "new-ltag"      /* the UAS dialog an INVITE makes */

static const char nonce_marker[] = "$NONCE";

static struct auth *verifier;
static char nonce[128];
static size_t nonce_len;
static struct registrar_config regcfg;
static struct sa peer, local;
static bool trace;           /* FUZZ_SIP_TRACE set: what each step said */

#define TRACE(...) do { if (trace) (void)re_fprintf(stderr, __VA_ARGS__); \
	} while (0)


static void die(const char *what)
{
	fprintf(stderr, "fuzz_sip: %s\n", what);
	abort();
}


/* ------------------------------------------------------------------ *
 * Set-up, once
 * ------------------------------------------------------------------ */

/* A nonce of our verifier, out of the challenge it writes */
static void nonce_init(void)
{
	struct mbuf *mb = mbuf_alloc(512);
	struct pl n;

	if (!mb || auth_challenge_encode(mb, verifier, false, false))
		die("no challenge");

	if (re_regex((const char *)mb->buf, mb->end, "nonce=\"[^\"]+\"", &n)
	    || n.l >= sizeof(nonce))
		die("no nonce in the challenge");

	memcpy(nonce, n.p, n.l);
	nonce[n.l] = '\0';
	nonce_len = n.l;
	mem_deref(mb);
}


/* The decoder libre's transport calls is ours (msgdecode.c): the
 * process exports it, and it repairs a request libre alone drops */
static void decoder_check(void)
{
	static const char bad_ctype[] =
		"MESSAGE sip:a@127.0.0.1 SIP/2.0\r\n"
		"Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-check\r\n"
		"To: <sip:a@127.0.0.1>\r\n"
		"From: <sip:b@127.0.0.1>;tag=1\r\n"
		"Call-ID: check\r\n"
		"CSeq: 1 MESSAGE\r\n"
		"Content-Type: aaaa\r\n"
		"Content-Length: 0\r\n\r\n";
	struct sip_msg *msg = NULL;
	struct mbuf *mb = mbuf_alloc(sizeof(bad_ctype));
	const char *defect;
	void *exported;

	exported = dlsym(RTLD_DEFAULT, "sip_msg_decode");
	if (exported != (void *)sip_msg_decode)
		die("sip_msg_decode is not server/libre_ext/msgdecode.c's");

	if (!mb || mbuf_write_str(mb, bad_ctype))
		die("out of memory");
	mb->pos = 0;
	if (sip_msg_decode(&msg, mb))
		die("msgdecode.c did not repair a bad Content-Type");
	defect = libre_ext_decode_defect(msg);
	if (!defect || strcmp(defect, "Bad Content-Type"))
		die("msgdecode.c did not mark a bad Content-Type");

	mem_deref(msg);
	mem_deref(mb);
}


int fuzz_sip_init(void)
{
	struct auth_config acfg;
	int err;

	err = libre_init();
	if (err)
		return err;

	trace = getenv("FUZZ_SIP_TRACE") != NULL;
	log_set_level(LOG_ERROR);
	log_set_sink(NULL);

	auth_config_default(&acfg);
	acfg.no_guard = true;
	err = auth_alloc(&verifier, NULL, &acfg);
	if (err)
		return err;

	registrar_config_default(&regcfg);
	(void)sa_set_str(&peer, "192.0.2.7", 5070);
	(void)sa_set_str(&local, "127.0.0.1", 5060);

	nonce_init();
	decoder_check();

	return 0;
}


void fuzz_sip_close(void)
{
	verifier = mem_deref(verifier);
	libre_close();
}


/* ------------------------------------------------------------------ *
 * Per input
 * ------------------------------------------------------------------ */

/* The datagram, "$NONCE" replaced, in an mbuf of its exact size (so
 * that ASan sees any read past the end) */
static struct mbuf *datagram(const uint8_t *data, size_t size)
{
	const size_t ml = sizeof(nonce_marker) - 1;
	struct mbuf *mb;
	size_t i, n = 0, len = size;

	for (i = 0; i + ml <= size; i++) {
		if (!memcmp(data + i, nonce_marker, ml)) {
			++n;
			i += ml - 1;
		}
	}
	len += n * nonce_len - n * ml;

	mb = mbuf_alloc(len ? len : 1);
	if (!mb)
		return NULL;

	for (i = 0; i < size; ) {
		if (i + ml <= size && !memcmp(data + i, nonce_marker, ml)) {
			(void)mbuf_write_mem(mb, (const uint8_t *)nonce,
					     nonce_len);
			i += ml;
		}
		else {
			(void)mbuf_write_u8(mb, data[i++]);
		}
	}
	mb->pos = 0;

	return mb;
}


struct table {
	struct dialog_table *t;
	struct dialog *uas, *uas2, *uac;
};


static void table_free(struct table *tb)
{
	mem_deref(tb->uas);
	mem_deref(tb->uas2);
	mem_deref(tb->uac);
	mem_deref(tb->t);
}


static int table_make(struct table *tb)
{
	struct pl cid, lt, rt;
	int err;

	memset(tb, 0, sizeof(*tb));
	err = dialog_table_alloc(&tb->t, 16);
	if (err)
		return err;

	pl_set_str(&cid, UAS_CALLID);
	pl_set_str(&lt, UAS_LTAG);
	pl_set_str(&rt, UAS_RTAG);
	err = dialog_alloc(&tb->uas, tb->t, &cid, &lt, &rt);
	if (err)
		goto out;

	pl_set_str(&lt, UAS2_LTAG);
	err = dialog_alloc(&tb->uas2, tb->t, &cid, &lt, &rt);
	if (err)
		goto out;

	err = dialog_create_uac(&tb->uac, tb->t, NULL, UAC_CALLID, UAC_LTAG,
				"<sip:alice@127.0.0.1>", "<sip:bob@127.0.0.1>",
				"sip:bob@127.0.0.1", "sip:alice@127.0.0.1:5060");

 out:
	if (err)
		table_free(tb);

	return err;
}


static bool is_sdp(const struct sip_msg *msg, struct pl *body)
{
	stack_msg_body(msg, body);

	return body->l && sip_msg_hdr(msg, SIP_HDR_CONTENT_TYPE) &&
		msg_ctype_cmp(&msg->ctyp, "application", "sdp");
}


/* What reads an SDP offer: the call manager's check (uas.c), the
 * direction (reinvite.c, update.c), and the rewrite of a description
 * with a direction (a script may answer with what it was offered) */
static void sdp(const struct sip_msg *msg)
{
	struct pl body;
	char *out = NULL;
	size_t len = 0;
	const char *dir;

	if (!is_sdp(msg, &body))
		return;
	dir = sdp_problem(body.p, body.l);
	TRACE("  sdp_problem: %s\n", dir ? dir : "none");
	if (dir)
		return;

	dir = sdp_direction(body.p, body.l);
	TRACE("  sdp_direction: %s\n", dir);
	(void)sdp_set_direction(&out, &len, body.p, body.l,
				sdp_answer_dir(dir));
	mem_deref(out);
}


/* The digest verifier on the credentials (both kinds) */
static void credentials(const struct sip_msg *msg)
{
	struct auth_result res;

	if (sip_msg_hdr(msg, SIP_HDR_AUTHORIZATION) &&
	    !auth_check(verifier, msg, false, &res))
		TRACE("  auth_check: %s %s\n", auth_status_name(res.status),
		      res.reason);
	if (sip_msg_hdr(msg, SIP_HDR_PROXY_AUTHORIZATION) &&
	    !auth_check(verifier, msg, true, &res))
		TRACE("  auth_check (proxy): %s %s\n",
		      auth_status_name(res.status), res.reason);
}


static bool is_refresh(const struct pl *met)
{
	return !pl_strcmp(met, "INVITE") || !pl_strcmp(met, "UPDATE") ||
		!pl_strcmp(met, "SUBSCRIBE") || !pl_strcmp(met, "NOTIFY");
}


static void in_dialog(struct table *tb, const struct sip_msg *msg)
{
	struct dialog *dlg;

	dlg = dialog_table_find(tb->t, &msg->callid, &msg->to.tag,
				&msg->from.tag);
	TRACE("  in dialog: %s\n", dlg ? dialog_ltag(dlg) : "none");
	if (!dlg)
		return;         /* 481, or a proxy's handler */

	if (dialog_check_rseq(dlg, msg))
		return;         /* 500 Out of Order CSeq */

	if (is_refresh(&msg->met)) {
		int err = dialog_target_refresh(dlg, msg);

		TRACE("  target refresh: %m, %s\n", err,
		      dialog_remote_target(dlg));
	}
}


/* The call manager's new UAS dialog, then the dialog matching of the
 * requests that follow in it */
static void invite(struct table *tb, const struct sip_msg *msg)
{
	struct dialog *dlg = NULL;
	struct pl lt;

	if (!sip_msg_hdr(msg, SIP_HDR_CONTACT))
		return;         /* 400 Missing Contact Header */

	if (dialog_create_uas(&dlg, tb->t, NULL, msg, NEW_LTAG,
			      "sip:fuzz@127.0.0.1:5060"))
		return;
	TRACE("  new dialog: %H\n", dialog_debug, dlg);

	/* what it keeps is the whole of what it was made from, and the
	 * requests that follow in it find it */
	if (pl_strcmp(&msg->callid, dialog_callid(dlg)) ||
	    pl_strcmp(&msg->from.tag, dialog_rtag(dlg)) ||
	    pl_strcmp(&msg->from.auri, dialog_remote_uri(dlg)) ||
	    pl_strcmp(&msg->to.auri, dialog_local_uri(dlg)))
		die("a new UAS dialog keeps another identity than its INVITE's");

	pl_set_str(&lt, NEW_LTAG);
	if (dialog_table_find(tb->t, &msg->callid, &lt, &msg->from.tag) != dlg)
		die("a new UAS dialog is not found by its identity");

	mem_deref(dlg);
}


static void request(const struct sip_msg *msg)
{
	struct table tb;
	const char *reason = NULL;
	char unsup[256];

	if (table_make(&tb))
		return;

	if (!pl_strcmp(&msg->met, "ACK")) {
		(void)dialog_table_find(tb.t, &msg->callid, &msg->to.tag,
					&msg->from.tag);
		goto out;
	}

	TRACE("request %r\n", &msg->met);
	if (stack_validate(msg, &reason)) {
		TRACE("  stack_validate: %s\n", reason);
		goto out;
	}
	if (stack_unsupported(msg, unsup, sizeof(unsup))) {
		TRACE("  unsupported: %s\n", unsup);
		goto out;
	}

	credentials(msg);
	sdp(msg);

	if (pl_isset(&msg->to.tag)) {
		in_dialog(&tb, msg);
	}
	else if (!pl_strcmp(&msg->met, "REGISTER")) {
		TRACE("  registrar_check: %u %s\n",
		      registrar_check(&regcfg, msg, &reason), reason);
	}
	else if (!pl_strcmp(&msg->met, "INVITE")) {
		invite(&tb, msg);
	}

 out:
	table_free(&tb);
}


static void response(const struct sip_msg *msg)
{
	struct table tb;
	struct dialog *dlg, *fork = NULL;
	char *hdr = NULL;
	bool stale;

	if (table_make(&tb))
		return;

	dlg = dialog_table_find(tb.t, &msg->callid, &msg->from.tag,
				&msg->to.tag);
	if (!dlg)
		dlg = dialog_table_find(tb.t, &msg->callid, &msg->from.tag,
					NULL);

	/* ours (the UAC's): a 1xx with a To tag or a 2xx fixes the remote
	 * side; another To tag is another fork's dialog */
	TRACE("response %u: dialog %s\n", msg->scode,
	      dlg ? dialog_ltag(dlg) : "none");
	if (dlg && dialog_is_uac(dlg) && pl_isset(&msg->to.tag) &&
	    msg->scode < 300) {
		int err = dialog_set_remote(dlg, msg);

		TRACE("  set_remote: %m %H\n", err, dialog_debug, dlg);
		if (err == EEXIST && !dialog_fork(&fork, dlg, msg))
			mem_deref(fork);
	}

	if (msg->scode == 401 || msg->scode == 407) {
		int err = auth_client_answer(&hdr, msg, "INVITE",
					     "sip:bob@127.0.0.1", "alice",
					     "secret", &stale);

		TRACE("  auth_client_answer: %m %s", err, hdr ? hdr : "\n");
		mem_deref(hdr);
	}

	table_free(&tb);
}


int fuzz_sip_one(const uint8_t *data, size_t size)
{
	struct stun_unknown_attr ua;
	struct stun_msg *stun = NULL;
	struct sip_msg *msg = NULL;
	struct mbuf *mb;

	/* libre's udp_recv_handler drops these; larger is no datagram */
	if (size <= 4 || size > DGRAM_MAX)
		return 0;

	mb = datagram(data, size);
	if (!mb)
		return 0;

	if (!stun_msg_decode(&stun, mb, &ua)) {
		mem_deref(stun);   /* a STUN message: libre's, not SIP */
		goto out;
	}

	if (sip_msg_decode(&msg, mb)) {
		TRACE("sip_msg_decode failed\n");
		goto out;          /* libre drops it (docs/conformance.md) */
	}

	msg->src = peer;
	msg->dst = local;
	msg->tp  = SIP_TRANSP_UDP;

	if (msg->req)
		request(msg);
	else
		response(msg);

 out:
	mem_deref(msg);
	mem_deref(mb);

	return 0;
}


/* ------------------------------------------------------------------ *
 * libFuzzer's entry points (replay.c calls fuzz_sip_init/one itself)
 * ------------------------------------------------------------------ */

#ifdef FUZZ_LIBFUZZER
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;

	if (fuzz_sip_init())
		die("set-up failed");

	return 0;
}


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	return fuzz_sip_one(data, size);
}
#endif
