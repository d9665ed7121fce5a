/**
 * server/libre_ext/libre_ext.h  The libre this folder is written for
 *
 * Every file of server/libre_ext/ replaces libre (or libc) functions in
 * the executable (the list, with the reason for each: overrides.list)
 * and relies on internals of libre 1.1: how re_main() hands its timer
 * list to tmr_poll() (fasttmr.c), re_regex()'s quirks (fastregex.c),
 * the head of its private struct sip_conn and the order of the calls
 * of its WebSocket accept (wsflow.c), which functions libre calls
 * through its PLT. meson.build builds only
 * against libre 1.1.x and defines LIBRE_EXT_MAJOR and LIBRE_EXT_MINOR
 * (1 and 1); the program checks at start that the libre.so it runs on
 * is of that series too (another release can be installed under the
 * same soname, libre.so.0).
 */
#ifndef SIPSTACK_LIBRE_EXT_H
#define SIPSTACK_LIBRE_EXT_H

#include <stddef.h>

/* 0 if version (as sys_libre_version_get() says it: "1.1.0") is of the
 * series LIBRE_EXT_MAJOR.LIBRE_EXT_MINOR; else ENOTSUP and, in msg, a
 * line naming the version found and the one required. version NULL:
 * unknown, refused. */
int libre_ext_version_check(const char *version, char *msg, size_t sz);

/* The check on the libre loaded now; on a mismatch prints the message
 * to stderr and returns ENOTSUP: the program must not go on. */
int libre_ext_version_require(void);

/* Where libre's re_fprintf(stderr, ...) lines go (refprintf.c): h gets
 * each one without its line breaks; NULL: to stderr, as libre would. */
typedef void (libre_ext_stderr_h)(const char *p, size_t len);
void libre_ext_stderr_set(libre_ext_stderr_h *h);

/* msgdecode.c: why the request msg had to be repaired to be decoded
 * ("Bad Content-Type", "Bad CSeq": answer it 400 with
 * that reason), or NULL. Valid for the message just decoded, on the
 * thread that decoded it (the loop). */
struct sip_msg;
const char *libre_ext_decode_defect(const struct sip_msg *msg);

/* rand.c: set up OpenSSL's generator and fill this thread's pool now
 * (main calls it at start, on the loop thread) */
void libre_ext_rand_warm(void);

/* msgparse.c: libre 1.1.0's sip_msg_decode(), same results, faster
 * (msgdecode.c's sip_msg_decode() calls it) */
struct mbuf;
int libre_ext_msg_decode(struct sip_msg **msgp, struct mbuf *mb);

/* fastparse.c: is pl an IPv4 address as glibc's inet_pton(AF_INET)
 * reads it (the first 63 bytes, up to a NUL)? 1 and *a (network
 * order); 0 not one; -1 a byte other than a digit or a dot (then only
 * inet_pton can tell, e.g. for IPv6) */
int libre_ext_ip4(const struct pl *pl, uint32_t *a);

#endif
