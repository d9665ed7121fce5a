/**
 * test/fuzz/fuzz_sip.h  The harness, for libFuzzer and the replayer
 *
 * fuzz_sip.c runs one datagram through what the server runs it through
 * before a hook; libFuzzer calls it through LLVMFuzzerTestOneInput (the
 * fuzz build), replay.c through fuzz_sip_one (make test).
 */
#ifndef SIPSTACK_FUZZ_SIP_H
#define SIPSTACK_FUZZ_SIP_H

#include <stddef.h>
#include <stdint.h>

/* libre, the verifier and its nonce, the decoder check (aborts if the
 * process's sip_msg_decode is not server/libre_ext/msgdecode.c's) */
int fuzz_sip_init(void);

/* what fuzz_sip_init() set up, freed (the replayer, for valgrind) */
void fuzz_sip_close(void);

/* one datagram; always 0 (libFuzzer's convention) */
int fuzz_sip_one(const uint8_t *data, size_t size);

#ifdef FUZZ_LIBFUZZER
/* libFuzzer's entry points (fuzz build only) */
int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
#endif

#endif
