/**
 * server/libre_ext/fastregex.h  libre's re_regex() with compiled patterns
 *
 * fastregex.c defines re_regex() itself (interposed over libre's, see
 * that file); these are its counters and a trace hook for the tests.
 */
#ifndef SIPSTACK_FASTREGEX_H
#define SIPSTACK_FASTREGEX_H

#include <stddef.h>
#include <stdint.h>

/* Calls of re_regex on the thread that owns the pattern cache */
uint64_t fastregex_calls(void);

/* Patterns compiled and kept */
size_t fastregex_cached(void);

/* Called with the arguments of every re_regex call on the owner thread
 * (NULL to stop). For tests: records what libre's parser asks. */
typedef void (fastregex_trace_h)(const char *ptr, size_t len,
				 const char *expr, void *arg);
void fastregex_set_trace(fastregex_trace_h *h, void *arg);

#endif
