#!/bin/sh
# The sipstack binary named by $SIPSTACK_REAL under valgrind memcheck, for
# the wire tests (test/valgrind/meson.build): any invalid access, use of
# uninitialised bytes (also in syscall arguments) or definite leak makes
# the server exit 99, which the test's clean-exit check reports. The
# report goes to the server's stderr, i.e. its log file.
# usage: SIPSTACK_REAL=build/sipstack sipstack-vg.sh ARGS...
exec valgrind -q --error-exitcode=99 --leak-check=full \
    --errors-for-leak-kinds=definite --show-leak-kinds=definite \
    "${SIPSTACK_REAL:?SIPSTACK_REAL: the sipstack binary}" "$@"
