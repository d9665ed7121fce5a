/**
 * server/sipstack.h  The whole public C API of sipstack
 *
 * For users of every part (the Lua bindings, the program, outside C
 * users): the core (core/sipcore.h), INVITE sessions (calls/calls.h),
 * subscriptions (events/events.h) and registration (registrar/registrar.h), and the program's subcommands
 * (server/cli_user.c, server/cli_ctl.c). Code inside a folder includes only the headers
 * its layer may use (docs/architecture.md).
 */
#ifndef SIPSTACK_H
#define SIPSTACK_H

#include "sipcore.h"
#include "calls.h"
#include "events.h"
#include "registrar.h"
#include "proxy.h"

/* ---------------------------------------------------------------------
 * The program's subcommands (beside server/main.c)
 * ------------------------------------------------------------------ */

/* `sipstack user add USER PASSWORD [--realm R] [--db PATH]`,
 * `... del USER [--db PATH]`, `... list [--db PATH]`; argv[0] is "user".
 * PASSWORD "-" reads it from stdin. Needs no libre_init(). Returns the
 * exit code: 0 ok, 1 error, 2 usage. (server/cli_user.c) */
int  auth_user_cli(int argc, char *argv[]);

/* `sipstack ctl [--socket PATH] [--json] [--timeout S] COMMAND...`;
 * argv[0] is "ctl". One request to a running server's control socket
 * (docs/ctl.md). Needs no libre_init(). Returns the exit code: 0 done,
 * 1 the server answered an error, 2 usage, 3 no server answers.
 * (server/cli_ctl.c) */
int  ctl_cli(int argc, char *argv[]);

#endif
