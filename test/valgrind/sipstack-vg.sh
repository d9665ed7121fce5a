#!/bin/sh
# The sipstack binary named by $SIPSTACK_REAL under valgrind memcheck, for
# the wire tests (test/valgrind/meson.build): any invalid access, use of
# uninitialised bytes (also in syscall arguments) or definite leak makes
# the server exit 99, which the test's clean-exit check reports. The
# report goes to the server's stderr, i.e. its log file.
# --fair-sched: valgrind runs one thread at a time, and its default lock
# lets a thread that spins (a runaway Lua hook in t_runaway.py) take it
# back again and again, starving the watchdog thread that would stop it:
# on CI's shared cores a 300 ms budget became 20-40 s. The ticket lock
# hands it round in turn ("try": the default lock where it is missing).
# --soname-synonyms: the default build's malloc is tcmalloc's (meson.build,
# `allocator`); memcheck replaces the functions of the library it names,
# as it does glibc's, else it would see none of the heap's blocks;
# tcmalloc.supp: the one block tcmalloc's own start-up keeps.
# usage: SIPSTACK_REAL=build/sipstack sipstack-vg.sh ARGS...
exec valgrind -q --fair-sched=try --error-exitcode=99 --leak-check=full \
    --soname-synonyms=somalloc=*tcmalloc* \
    --suppressions="$(dirname "$0")/tcmalloc.supp" \
    --errors-for-leak-kinds=definite --show-leak-kinds=definite \
    "${SIPSTACK_REAL:?SIPSTACK_REAL: the sipstack binary}" "$@"
