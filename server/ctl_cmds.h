/**
 * server/ctl_cmds.h  The control socket's commands (server/ctl_cmds.c)
 *
 * What server/main.c adds to its control socket (server/core/ctl.c):
 * stats, reload, calls, calls.hangup, location.show, location.remove,
 * log-level and drain (docs/ctl.md). What only the program knows (the
 * Lua runtime: reload, the figures, the registrar the script
 * configured; how to stop) it gives as handlers.
 */
#ifndef SIPSTACK_CTL_CMDS_H
#define SIPSTACK_CTL_CMDS_H

struct regsvc;

/* Reloads the script: 0, or why not in errbuf (file:line: message) */
typedef int (ctl_reload_h)(char *errbuf, size_t errsz, uint32_t *genp,
			   void *arg);
/* The figures of sip.stats() */
typedef int (ctl_stats_h)(struct odict **odp, void *arg);
/* The registrar service of the current script, or NULL */
typedef struct regsvc *(ctl_registrar_h)(void *arg);
/* Draining is over (no call left): the program exits 0 */
typedef void (ctl_drained_h)(void *arg);

struct ctl_cmds_handlers {
	ctl_reload_h *reloadh;
	ctl_stats_h *statsh;
	ctl_registrar_h *registrarh;
	ctl_drained_h *drainedh;
};

struct ctl_cmds;

/* Adds the commands to ctl, for the stack st (the handlers struct is
 * copied). Free it with mem_deref after ctl, which calls into it. */
int  ctl_cmds_alloc(struct ctl_cmds **ccp, struct ctl *ctl,
		    struct stack *st, const struct ctl_cmds_handlers *hs,
		    void *arg);
/* Starts draining as the drain command does (retry_after: seconds of
 * the 503s' Retry-After) */
void ctl_cmds_drain(struct ctl_cmds *cc, uint32_t retry_after);

#endif
