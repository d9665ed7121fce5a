/**
 * test/unit/test_fastregex.c  libre_ext/fastregex.c against libre's re_regex
 *
 * The executable's re_regex (server/libre_ext/fastregex.c) must give
 * exactly what libre's own gives: the same return value and the same
 * struct pl contents, including those written by attempts that failed
 * later. libre's original is still in libre.so; dlsym(RTLD_NEXT,
 * "re_regex") finds it.
 * Every comparison calls both with 16 struct pl slots preset to a marker.
 *
 *   1. interposition: libre's SIP parser calls our re_regex;
 *   2. what libre's parsers ask: every (pattern, input) that sip_msg_decode,
 *      sip_addr_decode, uri_decode, the digest decoders and msg_param_decode
 *      pass to re_regex while decoding a set of SIP messages (built in here,
 *      plus the RFC 4475/5118 torture corpus when a directory is given);
 *   3. hand-written patterns on libre's quirks (escapes, ranges, '~'
 *      quoting, negation, bad quantifiers, unterminated classes, the
 *      64-range limit, empty inputs and patterns);
 *   4. random patterns over the pattern language against random inputs.
 */
#include <dirent.h>
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>
#include <re.h>
#include "fastregex.h"
#include "testutil.h"


typedef int (regex_fn)(const char *ptr, size_t len, const char *expr, ...);

enum { NPL = 16 };

static regex_fn *orig;
static unsigned long ncompared, nmatched;
static unsigned mismatches;


static void pl_mark(struct pl *v)
{
	int i;

	for (i = 0; i < NPL; i++) {
		v[i].p = (const char *)(uintptr_t)(0x5a5a0000u + (unsigned)i);
		v[i].l = 0xa5a5u + (size_t)i;
	}
}


#define PLARGS(v) &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7], \
	&v[8], &v[9], &v[10], &v[11], &v[12], &v[13], &v[14], &v[15]


/* Both implementations on one input; true if they agree. */
static bool compare(const char *ptr, size_t len, const char *expr)
{
	struct pl a[NPL], b[NPL];
	int ea, eb, i;
	bool same;

	pl_mark(a);
	pl_mark(b);
	ea = re_regex(ptr, len, expr, PLARGS(a));
	eb = orig(ptr, len, expr, PLARGS(b));

	same = ea == eb;
	for (i = 0; i < NPL && same; i++)
		same = a[i].p == b[i].p && a[i].l == b[i].l;

	++ncompared;
	nmatched += !eb;
	if (!same && ++mismatches <= 10) {
		printf("# mismatch: expr \"%s\" input \"%.*s\" (%zu bytes): "
		       "ours %d, libre %d\n", expr, (int)len, ptr, len, ea, eb);
		for (i = 0; i < NPL; i++) {
			if (a[i].p != b[i].p || a[i].l != b[i].l)
				printf("#   pl[%d]: ours %p+%zu libre %p+%zu\n",
				       i, (const void *)a[i].p, a[i].l,
				       (const void *)b[i].p, b[i].l);
		}
	}

	return same;
}


/* ---- 2. what libre's parsers ask --------------------------------------- */

struct call {
	char *expr;
	char *input;
	size_t len;
};

static struct call *calls;
static size_t ncalls, capcalls;

static void trace(const char *ptr, size_t len, const char *expr, void *arg)
{
	(void)arg;

	if (ncalls == capcalls) {
		size_t ncap = capcalls ? capcalls * 2 : 1024;
		struct call *n = realloc(calls, ncap * sizeof(*n));

		if (!n)
			return;
		calls = n;
		capcalls = ncap;
	}
	/* copies: some patterns live in the caller's stack buffer */
	calls[ncalls].expr = strdup(expr);
	calls[ncalls].input = malloc(len ? len : 1);
	if (!calls[ncalls].input || !calls[ncalls].expr) {
		free(calls[ncalls].input);
		free(calls[ncalls].expr);
		return;
	}
	memcpy(calls[ncalls].input, ptr, len);
	calls[ncalls].len = len;
	++ncalls;
}


static const char *const messages[] = {
	"INVITE sip:bob@biloxi.example.com;transport=udp;lr?Subject=x "
	"SIP/2.0\r\n"
	"Via: SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=z9hG4bK776a;"
	"received=192.0.2.1;rport=5062\r\n"
	"Via: SIP/2.0/TCP [2001:db8::9:1]:5061;branch=z9hG4bKabc;maddr=x\r\n"
	"Max-Forwards: 70\r\n"
	"To: \"Bob \\\"B\\\" Biloxi\" <sip:bob@biloxi.example.com>\r\n"
	"From: Alice <sips:alice@[2001:db8::10]:5061;user=phone>;tag=1928\r\n"
	"Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n"
	"CSeq: 314159 INVITE\r\n"
	"Contact: <sip:alice@pc33.atlanta.example.com;ob>;expires=60;q=0.7;"
	"+sip.instance=\"<urn:uuid:00000000-0000-1000-8000-AABBCCDDEEFF>\""
	";reg-id=1, \"Desk\" <sip:alice@192.0.2.4>;q=0.1\r\n"
	"Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>\r\n"
	"Record-Route: <sip:p3.example.com;lr;ftag=x>\r\n"
	"Require: 100rel\r\nSupported: timer, replaces\r\n"
	"Proxy-Authorization: Digest username=\"alice\", realm=\"atlanta\", "
	"nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", uri=\"sip:bob@b\", "
	"qop=auth, nc=00000001, cnonce=\"0a4f113b\", "
	"response=\"6629fae49393a05397450978507c4ef1\", algorithm=SHA-256\r\n"
	"Content-Type: application/sdp;charset=utf-8\r\n"
	"Content-Length: 4\r\n\r\nv=0\n",

	"SIP/2.0 401 Unauthorized\r\n"
	"Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-1;rport\r\n"
	"To: <sip:alice@example.com>;tag=x1\r\n"
	"From: <sip:alice@example.com>;tag=y2\r\n"
	"Call-ID: 12345\r\nCSeq: 2 REGISTER\r\n"
	"WWW-Authenticate: Digest realm=\"example.com\", qop=\"auth,auth-int\""
	", nonce=\"abc\", opaque=\"xyz\", stale=TRUE, algorithm=MD5\r\n"
	"Min-Expires: 60\r\nContent-Length: 0\r\n\r\n",

	"REGISTER sip:example.com SIP/2.0\r\n"
	"v: SIP/2.0/UDP host;branch=z9hG4bK.2\r\n"
	"t: sip:carol@example.com\r\nf: sip:carol@example.com;tag=3\r\n"
	"i: reg-3\r\nCSeq: 7 REGISTER\r\nm: *\r\nExpires: 0\r\n"
	"Path: <sip:edge.example.com;lr>\r\nl: 0\r\n\r\n",

	"OPTIONS sip:[::1]:5060 SIP/2.0\r\n"
	"Via: SIP/2.0/UDP [::1]:5070;branch=z9hG4bK-ip6\r\n"
	"To: sip:[::1]\r\nFrom: <sip:x@[::1]>;tag=a\r\nCall-ID: 6\r\n"
	"CSeq: 1 OPTIONS\r\nAccept: application/sdp, text/plain\r\n"
	"Content-Length: 0\r\n\r\n",
};


static void decode_msg(const char *buf, size_t len)
{
	struct sip_msg *msg = NULL;
	struct mbuf *mb = mbuf_alloc(len + 1);
	const struct sip_hdr *hdr;
	struct le *le;

	if (!mb)
		return;
	(void)mbuf_write_mem(mb, (const uint8_t *)buf, len);
	mb->pos = 0;

	if (sip_msg_decode(&msg, mb)) {
		mem_deref(mb);
		return;
	}

	/* the other decoders on every header value */
	for (le = msg->hdrl.head; le; le = le->next) {
		struct sip_addr addr;
		struct uri uri;
		struct httpauth_digest_chall ch;
		struct httpauth_digest_resp rsp;
		struct pl v;

		hdr = le->data;
		(void)sip_addr_decode(&addr, &hdr->val);
		(void)uri_decode(&uri, &hdr->val);
		(void)httpauth_digest_challenge_decode(&ch, &hdr->val);
		(void)httpauth_digest_response_decode(&rsp, &hdr->val);
		(void)msg_param_decode(&hdr->val, "tag", &v);
		(void)msg_param_decode(&hdr->val, "expires", &v);
	}

	mem_deref(msg);
	mem_deref(mb);
}


static size_t decode_dir(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	size_t n = 0;

	if (!d)
		return 0;

	while ((de = readdir(d))) {
		char path[1024];
		char *buf;
		size_t len;
		FILE *f;

		if (!strstr(de->d_name, ".dat"))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		f = fopen(path, "rb");
		if (!f)
			continue;
		buf = malloc(65536);
		if (buf) {
			len = fread(buf, 1, 65536, f);
			decode_msg(buf, len);
			++n;
			free(buf);
		}
		fclose(f);
	}
	closedir(d);

	return n;
}


static void test_parsers(const char *corpus)
{
	uint64_t c0 = fastregex_calls();
	size_t i, nfiles = 0, same = 0;
	char name[160];

	fastregex_set_trace(trace, NULL);
	decode_msg(messages[0], strlen(messages[0]));
	CHECK(fastregex_calls() > c0 + 20,
	      "libre's sip_msg_decode calls our re_regex (interposed)");

	for (i = 1; i < ARRAY_SIZE(messages); i++)
		decode_msg(messages[i], strlen(messages[i]));

	if (corpus) {
		char dir[900];

		snprintf(dir, sizeof(dir), "%s/rfc4475", corpus);
		nfiles += decode_dir(dir);
		snprintf(dir, sizeof(dir), "%s/rfc5118", corpus);
		nfiles += decode_dir(dir);
	}
	fastregex_set_trace(NULL, NULL);
	printf("# corpus: %zu torture messages decoded\n", nfiles);

	for (i = 0; i < ncalls; i++) {
		same += compare(calls[i].input, calls[i].len, calls[i].expr);
		free(calls[i].input);
		free(calls[i].expr);
	}
	snprintf(name, sizeof(name), "the %zu re_regex calls of libre's "
		 "parsers (%zu patterns cached) give libre's results",
		 ncalls, fastregex_cached());
	CHECK(ncalls > 200 && same == ncalls, name);
	free(calls);
	calls = NULL;
	ncalls = capcalls = 0;
}


/* ---- 3. hand-written cases ------------------------------------------------ */

static void test_quirks(void)
{
	static const char *const exprs[] = {
		"", "a", "A", "ab", "\\", "a\\", "\\[", "\\[a]*", "a\\]",
		"[a]*", "[a]+", "[a]1", "[a]3", "[ab]2", "[^a]*", "[^a]+",
		"[a-c]+", "[A-C]+", "[c-a]+", "[a-]+", "[-a]+", "[a-c-e]+",
		"[\\]]+", "[\\-a]+", "[a\\-c]+", "[\\^a]+", "[a^]+", "[~]+",
		"[a~]+", "[~,]*", "[~,]+", "[~ ]+", "[^~]+", "[~^]+",
		"[", "[a", "[a]", "[a]x", "[a]0", "a[a]", "[]*", "[]+", "[^]+",
		"x[a]*y", "[0-9]+", "[0-9]+.[0-9]+", "[^:]+:[0-9]+",
		"[^ \t\r\n]+[ \t\r\n]+[^ \t\r\n]+", "^[a]+", "$", "a$",
		"[ \t]*[,]+[ \t]*", "<[^>]+>", "[~ \t\r\n<]*[ \t\r\n]*<[^>]+>",
		";[ \t]*tag[ \t]*=[ \t]*[^;]+", "[a-z]1[a-z]1[a-z]1",
		"SIP/[0-9]+.[0-9]+[ ]+[0-9]3", "[\x80-\xff]+", "\xe9[a]*",
		"[0-9]1[0-9]1[0-9]1[0-9]1[0-9]1[0-9]1[0-9]1[0-9]1[0-9]1",
		"[abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUV"
		"WXYZ.,;:]+",
		"[abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz"
		"0123456789]+",
		"[abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz"
		"012345678]+",
	};
	static const char *const inputs[] = {
		"", "a", "A", "b", "aaa", "AbCab", "x", "xy", "xay", "xaay",
		"xa", "a]", "[a", "-", "a-c", "^", "~", ",", " , ", "\"a,b\",c",
		"\"a\\\"b\", c", "\"unterminated", "\\", "\\\"", "\"\"",
		"1.2", "10.20.30", "host:5060", "a b c", "  \t a\tb  ",
		"<sip:a@b>", "Alice <sip:a@b>;tag=x", "\"Bob\" <sips:b@c>",
		";tag=abc;x", "; TAG = v", "SIP/2.0 200 OK", "SIP/2.0   404 N",
		"\xe9\xe9t\xc9", "\xe9" "aa", "abcdefghijklmnopqrstuvwxyz",
		"1234567890", "12345678", "a$", "$$", "z",
	};
	size_t i, j, same = 0, n = 0;
	char name[96];

	for (i = 0; i < ARRAY_SIZE(exprs); i++) {
		for (j = 0; j < ARRAY_SIZE(inputs); j++) {
			same += compare(inputs[j], strlen(inputs[j]),
					exprs[i]);
			++n;
		}
		/* a length shorter than the string: no read past it */
		same += compare("aaaa", 2, exprs[i]);
		++n;
	}
	snprintf(name, sizeof(name), "%zu hand-written pattern/input pairs "
		 "give libre's results", n);
	CHECK(same == n, name);

	/* one buffer, new text each time (as msg_param_decode does) */
	{
		static const char *const names[] = {"tag", "branch", "t",
						    "expires", "tag", "lr"};
		static const char in[] = "<sip:a@b;lr>;tag=1;branch=z9;"
			"expires=60;t=x";
		size_t k, hits = 0, agree = 0;

		for (k = 0; k < 3 * ARRAY_SIZE(names); k++) {
			char expr[128];
			struct pl v = PL_INIT;

			snprintf(expr, sizeof(expr), ";[ \t\r\n]*%s[ \t\r\n]"
				 "*=[ \t\r\n]*[~ \t\r\n;]+",
				 names[k % ARRAY_SIZE(names)]);
			agree += compare(in, strlen(in), expr);
			if (!re_regex(in, strlen(in), expr, NULL, NULL, NULL,
				      &v))
				++hits;
		}
		CHECK(agree == 3 * ARRAY_SIZE(names) &&
		      hits == 3 * (ARRAY_SIZE(names) - 1),
		      "a pattern buffer reused with new text is recompiled");
	}

	CHECK(re_regex(NULL, 1, "a") == EINVAL &&
	      re_regex("a", 1, NULL) == EINVAL,
	      "NULL input or pattern -> EINVAL (as libre)");
}


/* ---- 4. random patterns ------------------------------------------------- */

static uint64_t rng = 0x243f6a8885a308d3ULL;

static uint32_t rnd(uint32_t n)
{
	return (uint32_t)(test_rnd64(&rng) >> 33) % n;
}


static void test_random(unsigned rounds)
{
	static const char pat_alpha[] = "[[[]]]^~-\\*+129aAbz:; \"<";
	static const char in_alpha[] = "aAbBz:;; \"\\<>-^]~12";
	size_t i, same = 0;
	char name[128];

	for (i = 0; i < rounds; i++) {
		char expr[24], in[24];
		size_t el = rnd(16), il = rnd(20), k, opens = 0;

		for (k = 0; k < el; k++) {
			expr[k] = pat_alpha[rnd(sizeof(pat_alpha) - 1)];
			opens += expr[k] == '[';
		}
		expr[el] = '\0';
		if (opens > NPL)
			expr[0] = '\0';
		for (k = 0; k < il; k++)
			in[k] = in_alpha[rnd(sizeof(in_alpha) - 1)];
		in[il] = '\0';

		same += compare(in, il, expr);
	}

	snprintf(name, sizeof(name), "%u random patterns on random inputs "
		 "give libre's results (%lu of %lu matched)", rounds,
		 nmatched, ncompared);
	CHECK(same == rounds, name);
}


int main(int argc, char **argv)
{
	const char *corpus = argc > 1 ? argv[1] : NULL;
	unsigned rounds = argc > 2 ? (unsigned)atoi(argv[2]) : 200000;
	int err;

	printf("TAP version 13\n");
	err = libre_init();
	orig = (regex_fn *)dlsym(RTLD_NEXT, "re_regex");
	CHECK(!err && orig && orig != re_regex,
	      "libre's own re_regex found behind ours (dlsym RTLD_NEXT)");
	if (err || !orig || orig == re_regex) {
		printf("1..%d\n", ntest);
		return 1;
	}

	test_parsers(corpus);
	test_quirks();
	test_random(rounds);

	libre_close();
	printf("1..%d\n", ntest);

	return nfail ? 1 : 0;
}
