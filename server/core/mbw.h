/**
 * server/core/mbw.h  Writing SIP text into an mbuf without a format
 *
 * A forwarded message or a reply is a dozen header lines copied and a
 * few numbers and addresses printed. Through libre's mbuf_printf each
 * piece costs ~700 instructions (re_vhprintf parses the format at every
 * call) and each mbuf_write_mem ~60 (callgrind, bench/proxy_bench.py),
 * several times the copying itself. These measure what goes in, make
 * room once (mbuf_resize, as mbuf_write_mem would) and copy.
 * Header-only: each is a few lines, inlined where it is used.
 */
#ifndef SIPSTACK_MBW_H
#define SIPSTACK_MBW_H

#include <string.h>

/* Room for n more bytes at mb->pos */
static inline int mbw_room(struct mbuf *mb, size_t n)
{
	if (mb->pos + n <= mb->size)
		return 0;

	return mbuf_resize(mb, 2 * (mb->pos + n));
}


/* Copy n bytes to mb->pos (room made before) */
static inline void mbw_put(struct mbuf *mb, const void *p, size_t n)
{
	memcpy(mb->buf + mb->pos, p, n);
	mb->pos += n;
	if (mb->pos > mb->end)
		mb->end = mb->pos;
}


#define MBW_PUT_LIT(mb, lit) mbw_put((mb), (lit), sizeof(lit) - 1)


/* v in decimal into p (at least 10 bytes): the length */
static inline size_t mbw_u32_fmt(char *p, uint32_t v)
{
	char tmp[10];
	size_t n = 0, i;

	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);

	for (i = 0; i < n; i++)
		p[i] = tmp[n - 1 - i];

	return n;
}


/* v as 16 lower-case hex digits into p (as %016llx): 16 */
static inline size_t mbw_x64_fmt(char *p, uint64_t v)
{
	static const char hex[] = "0123456789abcdef";
	int i;

	for (i = 0; i < 16; i++)
		p[i] = hex[(v >> (60 - 4 * i)) & 0xf];

	return 16;
}


static inline int mbw_mem(struct mbuf *mb, const void *p, size_t n)
{
	int err = mbw_room(mb, n);

	if (!err && n)
		mbw_put(mb, p, n);

	return err;
}


/* a string literal, room made */
#define MBW_LIT(mb, lit) mbw_mem((mb), (lit), sizeof(lit) - 1)


static inline int mbw_pl(struct mbuf *mb, const struct pl *pl)
{
	return mbw_mem(mb, pl->p, pl->l);
}


static inline int mbw_str(struct mbuf *mb, const char *s)
{
	return mbw_mem(mb, s, strlen(s));
}


/* a, b and c one after the other, room made once */
static inline int mbw_mem3(struct mbuf *mb, const void *a, size_t al,
			   const void *b, size_t bl, const void *c, size_t cl)
{
	int err = mbw_room(mb, al + bl + cl);

	if (err)
		return err;
	mbw_put(mb, a, al);
	mbw_put(mb, b, bl);
	mbw_put(mb, c, cl);

	return 0;
}


/* pre v post, v in decimal */
static inline int mbw_num(struct mbuf *mb, const char *pre, size_t pl,
			  uint32_t v, const char *post, size_t sl)
{
	char num[10];
	size_t n = mbw_u32_fmt(num, v);

	return mbw_mem3(mb, pre, pl, num, n, post, sl);
}


/* "Name: value\r\n" */
static inline int mbw_hdr(struct mbuf *mb, const struct pl *name,
			  const struct pl *val)
{
	int err = mbw_room(mb, name->l + val->l + 4);

	if (err)
		return err;
	mbw_put(mb, name->p, name->l);
	MBW_PUT_LIT(mb, ": ");
	mbw_put(mb, val->p, val->l);
	MBW_PUT_LIT(mb, "\r\n");

	return 0;
}


/* sa's address as %j prints it (no brackets); bracketed: as %J does
 * for IPv6 */
static inline int mbw_addr(struct mbuf *mb, const struct sa *sa,
			   bool bracketed)
{
	char buf[64];
	bool v6 = bracketed && sa_af(sa) == AF_INET6;
	size_t n;
	int err;

	if (sa_ntop(sa, buf, sizeof(buf)))
		return EINVAL;
	n = strlen(buf);

	err = mbw_room(mb, n + 2);
	if (err)
		return err;
	if (v6)
		MBW_PUT_LIT(mb, "[");
	mbw_put(mb, buf, n);
	if (v6)
		MBW_PUT_LIT(mb, "]");

	return 0;
}

#endif
