/**
 * server/libre_ext/refprintf.c  libre's re_fprintf() into the structured log
 *
 * WHY THIS FILE EXISTS
 *
 *   libre 1.1.0 writes a few messages straight to stderr with
 *   re_fprintf() (e.g. "sip: msg decode err" for a datagram it cannot
 *   parse), bypassing its debug handler, which server/core/log.c routes into
 *   our log (log_libre_attach). Such a line would break the
 *   one-event-per-line log (logfmt or JSON) that tests and operators
 *   read, and a peer sending garbage could flood stderr with it.
 *
 * HOW IT IS HOOKED IN
 *
 *   As fasttmr.c does for the timers: this file defines re_fprintf() and
 *   re_vfprintf() with libre's prototypes in the executable, which
 *   exports them (overrides.list); libre.so calls both through its PLT,
 *   so its own calls come here, and so do ours.
 *
 * WHAT IT DOES
 *
 *   The text is formatted with libre's re_vhprintf() into a stack buffer
 *   (at most LINE_MAX_LEN - 2 bytes are kept, the rest is cut, as
 *   server/core/log.c does for its lines; nothing is allocated). To a stream
 *   other than stderr it is written as it is, as libre would. To stderr
 *   it goes, without its trailing line breaks, to the handler set with
 *   libre_ext_stderr_set(): server/core/log.c's, which makes it one log
 *   line `mod=libre ev=stderr msg=...` at warn level, flood-limited (one
 *   such line per undecodable datagram would be a flood). Without a
 *   handler it goes to stderr as libre would write it. This folder is
 *   below the core and knows nothing of its log. The return
 *   value is libre's: the bytes formatted (as kept), or -1 on a format
 *   error.
 */
#include <stdio.h>
#include <string.h>
#include <re.h>
#include "libre_ext.h"


enum { LINE_MAX_LEN = 4096 };    /* as server/core/log.c's lines */

struct linebuf {
	char   b[LINE_MAX_LEN];
	size_t n;
};


/* re_vhprintf sink: keeps what fits, drops the rest */
static libre_ext_stderr_h *stderr_h;


void libre_ext_stderr_set(libre_ext_stderr_h *h)
{
	stderr_h = h;
}


static int line_write(const char *p, size_t size, void *arg)
{
	struct linebuf *lb = arg;
	const size_t room = sizeof(lb->b) - 2 - lb->n;

	if (size > room)
		size = room;

	memcpy(lb->b + lb->n, p, size);
	lb->n += size;

	return 0;
}


int re_vfprintf(FILE *stream, const char *fmt, va_list ap)
{
	struct linebuf lb;
	struct pl msg;
	int err;

	lb.n = 0;
	err = re_vhprintf(fmt, ap, line_write, &lb);

	if (stream != stderr) {
		if (lb.n)
			(void)fwrite(lb.b, 1, lb.n, stream);
		return err ? -1 : (int)lb.n;
	}

	msg.p = lb.b;
	msg.l = lb.n;
	while (msg.l && (msg.p[msg.l - 1] == '\n' || msg.p[msg.l - 1] == '\r'))
		--msg.l;
	if (!msg.l)
		return err ? -1 : (int)lb.n;

	if (stderr_h)
		stderr_h(msg.p, msg.l);
	else
		(void)fwrite(lb.b, 1, lb.n, stderr);

	return err ? -1 : (int)lb.n;
}


int re_fprintf(FILE *stream, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = re_vfprintf(stream, fmt, ap);
	va_end(ap);

	return n;
}
