/**
 * server/core/core.h  What crosses files inside sipstack (not public API)
 *
 * The files of server/ and the Lua bindings (bindings/) meet the stack
 * here. Nothing in this header is stable for outside users. The Lua
 * runtime's own API is in bindings/luart.h, for server/main.c only.
 */
#ifndef SIPSTACK_CORE_H
#define SIPSTACK_CORE_H

/* Option tags we implement (Supported:, and what Require: may name). */
#define STACK_SUPPORTED "100rel"

/* Methods the core knows; Allow: lists the ones with a handler. */
#define STACK_KNOWN_METHODS \
	"INVITE ACK BYE CANCEL OPTIONS MESSAGE REFER REGISTER " \
	"PRACK SUBSCRIBE NOTIFY UPDATE INFO PUBLISH"

/* Allow: header value for the current hooks, written into buf */
int  stack_allow(const struct stack *st, char *buf, size_t sz);

/* Address requests from us come from (for From/Contact) */
int  stack_local_uri(const struct stack *st, enum sip_transp tp,
		     char *buf, size_t sz);

/* cfg->dns_servers as addresses; in: size of ns, out: how many */
int  stack_dns_servers(const struct stack_config *cfg, struct sa *ns,
		       uint32_t *nsn);

/* Validate a request against RFC 3261 §8.2 before any handler sees it.
 * Returns 0 if fine, else the status code to answer and *reason. */
uint16_t stack_validate(const struct sip_msg *msg, const char **reason);

/* Option tags of Require: we do not support, comma-separated in buf;
 * returns the length written (0: all supported). */
size_t stack_unsupported(const struct sip_msg *msg, char *buf, size_t sz);

/* A hook failed (counted in stack_stats.hook_errors) */
void stack_note_hook_error(struct stack *st);

/* Completed non-INVITE server transactions over UDP, compact
 * (server/core/donetrans.c) */
struct donetab;
int    donetab_alloc(struct donetab **tp, uint32_t lifetime_ms);
bool   donetab_eligible(const struct sip_msg *msg);
bool   donetab_eligible_invite(const struct sip_msg *msg, uint16_t scode);
int    donetab_add(struct donetab *t, const struct sip_msg *msg,
		   struct mbuf *mb, const struct sa *dst);
bool   donetab_absorb(struct donetab *t, struct sip *sip,
		      const struct sip_msg *msg);
size_t donetab_count(const struct donetab *t);
uint64_t donetab_absorbed(const struct donetab *t);

#endif
