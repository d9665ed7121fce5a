/**
 * server/media/wav.c  Prompts and recordings: WAV files and G.711
 *
 * Owns struct prompt (decoded audio in both G.711 laws, shared
 * read-only between the file thread that makes it and the media thread
 * that sends it, counted atomically), the WAV reader (8 kHz mono:
 * PCM16, mu-law, A-law; every refusal names the file and what is
 * wrong) and the WAV writer of recordings, and the G.711 codecs
 * (ITU-T G.711, computed, not tabled from elsewhere). Exposes them in
 * media_priv.h. Called on the file thread only (except the codecs and
 * prompt_unref): file reads and writes never run on a loop.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <re.h>
#include "media.h"
#include "media_priv.h"


/* ------------------------------------------------------------------ *
 * G.711
 * ------------------------------------------------------------------ */

uint8_t g711_ulaw_enc(int16_t x)
{
	int v = x, sign = 0, exp, mant;

	if (v < 0) {
		v = -v;
		sign = 0x80;
	}
	v += 0x84;                     /* bias */
	if (v > 0x7fff)
		v = 0x7fff;
	for (exp = 7; exp > 0 && !(v & (0x4000 >> (7 - exp))); exp--)
		;
	mant = (v >> (exp + 3)) & 0x0f;

	return (uint8_t)~(sign | (exp << 4) | mant);
}


int16_t g711_ulaw_dec(uint8_t u)
{
	int exp, mant, v;

	u = (uint8_t)~u;
	exp = (u >> 4) & 0x07;
	mant = u & 0x0f;
	v = (((mant << 3) + 0x84) << exp) - 0x84;

	return (int16_t)((u & 0x80) ? -v : v);
}


uint8_t g711_alaw_enc(int16_t x)
{
	int v = x >> 3, sign = 0x80, exp, mant;   /* 13 bits */

	if (v < 0) {
		v = -v - 1;
		sign = 0;
	}
	if (v > 0xfff)
		v = 0xfff;
	if (v < 32) {
		exp = 0;
		mant = v >> 1;
	}
	else {
		for (exp = 7; !(v & (0x800 >> (7 - exp))); exp--)
			;
		mant = (v >> exp) & 0x0f;
	}

	return (uint8_t)((sign | (exp << 4) | mant) ^ 0x55);
}


int16_t g711_alaw_dec(uint8_t a)
{
	int exp, mant, v;

	a ^= 0x55;
	exp = (a >> 4) & 0x07;
	mant = a & 0x0f;
	if (exp)
		v = ((mant << 4) + 0x108) << (exp - 1);
	else
		v = (mant << 4) + 8;

	return (int16_t)((a & 0x80) ? v : -v);
}


/* ------------------------------------------------------------------ *
 * Prompts
 * ------------------------------------------------------------------ */

struct prompt *prompt_ref(struct prompt *p)
{
	if (p)
		atomic_fetch_add(&p->refs, 1);

	return p;
}


void prompt_unref(struct prompt *p)
{
	if (!p || atomic_fetch_sub(&p->refs, 1) != 1)
		return;

	free(p->ulaw);
	free(p->alaw);
	free(p);
}


static struct prompt *prompt_new(size_t n)
{
	struct prompt *p = calloc(1, sizeof(*p));

	if (!p)
		return NULL;
	atomic_init(&p->refs, 1);
	p->n = n;
	p->ulaw = malloc(n ? n : 1);
	p->alaw = malloc(n ? n : 1);
	if (!p->ulaw || !p->alaw) {
		prompt_unref(p);
		return NULL;
	}

	return p;
}


struct prompt *prompt_from_linear(const int16_t *s, size_t n)
{
	struct prompt *p = prompt_new(n);
	size_t i;

	if (!p)
		return NULL;
	for (i = 0; i < n; i++) {
		p->ulaw[i] = g711_ulaw_enc(s[i]);
		p->alaw[i] = g711_alaw_enc(s[i]);
	}

	return p;
}


static uint16_t le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}


static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
		(uint32_t)p[3] << 24;
}


/* The data chunk of a whole WAV file in buf: format, its samples */
static int wav_parse(const uint8_t *buf, size_t len, const char *path,
		     struct prompt **pp, char *problem, size_t sz)
{
	const uint8_t *data = NULL;
	uint16_t fmt = 0, ch = 0, bits = 0;
	uint32_t rate = 0, dlen = 0;
	bool have_fmt = false;
	struct prompt *p;
	size_t pos = 12, i, n;

	if (len < 12 || memcmp(buf, "RIFF", 4) || memcmp(buf + 8, "WAVE", 4))
		goto notwav;

	while (pos + 8 <= len) {
		uint32_t clen = le32(buf + pos + 4);
		const uint8_t *c = buf + pos + 8;

		if (clen > len - pos - 8)
			clen = (uint32_t)(len - pos - 8);  /* truncated */
		if (!memcmp(buf + pos, "fmt ", 4) && clen >= 16) {
			fmt = le16(c);
			ch = le16(c + 2);
			rate = le32(c + 4);
			bits = le16(c + 14);
			if (fmt == 0xfffe && clen >= 26)   /* extensible */
				fmt = le16(c + 24);
			have_fmt = true;
		}
		else if (!memcmp(buf + pos, "data", 4)) {
			data = c;
			dlen = clen;
			break;
		}
		pos += 8 + clen + (clen & 1);
	}

	if (!have_fmt || !data)
		goto notwav;
	if (ch != 1) {
		(void)re_snprintf(problem, sz, "%s: %u channels, mono "
				  "expected (sox FILE -r 8000 -c 1 -e "
				  "signed-integer -b 16 OUT.wav)", path, ch);
		return EINVAL;
	}
	if (rate != 8000) {
		(void)re_snprintf(problem, sz, "%s: sample rate %u Hz, 8000 "
				  "expected (sox FILE -r 8000 -c 1 OUT.wav)",
				  path, rate);
		return EINVAL;
	}
	if (!((fmt == 1 && bits == 16) || (fmt == 6 && bits == 8) ||
	      (fmt == 7 && bits == 8))) {
		(void)re_snprintf(problem, sz, "%s: encoding %u with %u bits, "
				  "PCM16, mu-law or A-law expected", path,
				  fmt, bits);
		return EINVAL;
	}

	n = fmt == 1 ? dlen / 2 : dlen;
	if (!n) {
		(void)re_snprintf(problem, sz, "%s: no audio", path);
		return EINVAL;
	}

	p = prompt_new(n);
	if (!p)
		return ENOMEM;
	for (i = 0; i < n; i++) {
		int16_t s;

		if (fmt == 1)
			s = (int16_t)le16(data + 2 * i);
		else if (fmt == 7)
			s = g711_ulaw_dec(data[i]);
		else
			s = g711_alaw_dec(data[i]);
		p->ulaw[i] = fmt == 7 ? data[i] : g711_ulaw_enc(s);
		p->alaw[i] = fmt == 6 ? data[i] : g711_alaw_enc(s);
	}
	*pp = p;

	return 0;

 notwav:
	(void)re_snprintf(problem, sz, "%s: not a WAV file", path);
	return EINVAL;
}


int prompt_load(struct prompt **pp, const char *path, char *problem,
		size_t sz)
{
	uint8_t *buf = NULL;
	FILE *f;
	long len;
	int err;

	f = fopen(path, "rb");
	if (!f) {
		err = errno;
		(void)re_snprintf(problem, sz, "%s: %s", path,
				  err == ENOENT ? "missing" : strerror(err));
		return err;
	}

	if (fseek(f, 0, SEEK_END) || (len = ftell(f)) < 0 ||
	    fseek(f, 0, SEEK_SET)) {
		err = errno ? errno : EIO;
		(void)re_snprintf(problem, sz, "%s: %s", path, strerror(err));
		goto out;
	}
	if (len > PROMPT_MAX_BYTES) {
		err = EFBIG;
		(void)re_snprintf(problem, sz, "%s: larger than %u bytes",
				  path, (unsigned)PROMPT_MAX_BYTES);
		goto out;
	}

	buf = malloc((size_t)len + 1);
	if (!buf) {
		err = ENOMEM;
		goto out;
	}
	if (fread(buf, 1, (size_t)len, f) != (size_t)len) {
		err = EIO;
		(void)re_snprintf(problem, sz, "%s: read error", path);
		goto out;
	}

	err = wav_parse(buf, (size_t)len, path, pp, problem, sz);

 out:
	free(buf);
	(void)fclose(f);
	return err;
}


static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}


static void put32(uint8_t *p, uint32_t v)
{
	put16(p, (uint16_t)v);
	put16(p + 2, (uint16_t)(v >> 16));
}


/* Written under a temporary name and renamed once complete, so that
 * whoever watches the directory never reads half a recording */
int wav_write(const char *path, const int16_t *s, size_t n, char *problem,
	      size_t sz)
{
	uint8_t h[44];
	uint8_t *d;
	char *tmp = NULL;
	FILE *f = NULL;
	size_t i;
	int err = 0;

	memcpy(h, "RIFF", 4);
	put32(h + 4, (uint32_t)(36 + 2 * n));
	memcpy(h + 8, "WAVEfmt ", 8);
	put32(h + 16, 16);
	put16(h + 20, 1);              /* PCM        */
	put16(h + 22, 1);              /* mono       */
	put32(h + 24, 8000);
	put32(h + 28, 16000);          /* bytes/s    */
	put16(h + 32, 2);
	put16(h + 34, 16);
	memcpy(h + 36, "data", 4);
	put32(h + 40, (uint32_t)(2 * n));

	d = malloc(2 * n + 1);
	if (!d || re_sdprintf(&tmp, "%s.part", path)) {
		free(d);
		return ENOMEM;
	}
	for (i = 0; i < n; i++)
		put16(d + 2 * i, (uint16_t)s[i]);

	f = fopen(tmp, "wb");
	if (!f) {
		err = errno;
		(void)re_snprintf(problem, sz, "%s: %s", path, strerror(err));
		goto out;
	}
	if (fwrite(h, 1, sizeof(h), f) != sizeof(h) ||
	    fwrite(d, 1, 2 * n, f) != 2 * n)
		err = EIO;
	if (fclose(f) && !err)
		err = errno;
	if (!err && rename(tmp, path))
		err = errno;
	if (err) {
		(void)re_snprintf(problem, sz, "%s: %s", path, strerror(err));
		(void)remove(tmp);
	}

 out:
	mem_deref(tmp);
	free(d);
	return err;
}
