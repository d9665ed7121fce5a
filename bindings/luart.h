/**
 * bindings/luart.h  The Lua runtime as the program sees it
 *
 * What server/main.c (the only file that knows both the core and the
 * Lua runtime) calls: load a script on a stack, reload it, start what
 * it spawned, check a script without a stack. The core never includes
 * this header: it raises events through handlers and never calls Lua.
 * Implemented in bindings/runtime.c.
 */
#ifndef SIPSTACK_LUART_H
#define SIPSTACK_LUART_H

struct luart;

/* Called after each (re)load with the script's config, so that the
 * program can re-apply what its command line fixed. */
typedef void (luart_cfg_h)(struct stack_config *cfg, void *arg);

int  luart_alloc(struct luart **lrp, struct stack *st, const char *path,
		 luart_cfg_h *cfgh, void *arg);
/* errbuf (may be NULL) gets why a reload failed: the script's error
 * with its file and line, or what it configured that did not open */
int  luart_reload(struct luart *lr, char *errbuf, size_t errsz);
void luart_start(struct luart *lr);
int  luart_check(const char *path, struct stack_config *cfg,
		 char *errbuf, size_t errsz);
struct stack *luart_stack(const struct luart *lr);
const char *luart_path(const struct luart *lr);
uint32_t luart_generation(const struct luart *lr);
uint32_t luart_tasks(const struct luart *lr);
/* The figures of sip.stats() as an odict (bindings/stats.c) */
struct odict;
int  luart_stats(struct odict **odp, struct luart *lr);
/* The registrar service the current script configured, or NULL */
struct regsvc *luart_registrar(const struct luart *lr);

#endif
