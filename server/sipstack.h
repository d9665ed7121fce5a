/**
 * server/sipstack.h  The whole public C API of sipstack
 *
 * For users of every part (the Lua bindings, the program, outside C
 * users): the core (core/sipcore.h), INVITE sessions (calls/calls.h) and
 * registration (registrar/registrar.h). Code inside a folder includes
 * only the headers its layer may use (docs/architecture.md).
 */
#ifndef SIPSTACK_H
#define SIPSTACK_H

#include "sipcore.h"
#include "calls.h"
#include "registrar.h"

#endif
