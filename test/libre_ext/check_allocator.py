#!/usr/bin/env python3
"""test/libre_ext/check_allocator.py  The allocator the build chose is in use

usage: check_allocator.py EXE ALLOCATOR SANITIZE

TAP. meson_options.txt's `allocator` (tcmalloc or system; sanitizer and
fuzzer builds force system) links tcmalloc_minimal ahead of libc so that
its malloc() serves the whole process. A link order or an --as-needed
that dropped it would leave glibc's malloc in place without a word;
this says so. In an AddressSanitizer build (SANITIZE, meson's b_sanitize, holds
"address") ASan's runtime is the malloc expected. Checked:

  1. `EXE --version` names the allocator built in and the object its
     malloc() resolves to (dladdr), and that object is the expected one
     (libtcmalloc_minimal.so.4 or libc.so.6);
  2. with every symbol bound at start (LD_BIND_NOW, LD_DEBUG=bindings),
     libre's, SQLite's and the executable's malloc, free, calloc and
     realloc bind to that same object, none elsewhere. (LuaJIT imports
     none: its states keep LuaJIT's own allocator, bindings/budget.c.)
"""
import os
import re
import subprocess
import sys
import tempfile

from tap import Tap

T = Tap()
check = T.check

EXPECT = {"tcmalloc": "libtcmalloc_minimal.so", "system": "libc.so"}
FUNCS = ("malloc", "free", "calloc", "realloc")
USERS = ("libre.so", "libsqlite3.so", "sipstack")


def run(argv, env=None):
    return subprocess.run(argv, capture_output=True, text=True, timeout=30,
                          env=env)


def main():
    exe, allocator, sanitize = sys.argv[1], sys.argv[2], sys.argv[3]
    want = EXPECT.get(allocator)
    if want and "address" in sanitize:
        want = "libasan.so"
    check(want is not None, "allocator %r is one of %s"
          % (allocator, ", ".join(EXPECT)))
    if want is None:
        T.done()
        return 1

    # 1. what the program says
    r = run([exe, "--version"])
    m = re.search(r"allocator (\S+): malloc from (\S+)\)", r.stdout)
    check(m is not None, "--version names the allocator",
          "stdout: %r stderr: %r" % (r.stdout, r.stderr))
    if m:
        check(m.group(1) == allocator, "built with %s" % allocator,
              "--version says %s" % m.group(1))
        check(m.group(2).startswith(want),
              "malloc() comes from %s" % want,
              "--version says malloc from %s" % m.group(2))

    # 2. what the dynamic linker did
    with tempfile.TemporaryDirectory() as d:
        env = dict(os.environ, LD_DEBUG="bindings", LD_BIND_NOW="1",
                   LD_DEBUG_OUTPUT=os.path.join(d, "ld"))
        r = run([exe, "--version"], env=env)
        text = ""
        for f in os.listdir(d):
            with open(os.path.join(d, f)) as fh:
                text += fh.read()
    pat = re.compile(r"binding file (\S+) \[\d+\] to (\S+) \[\d+\]: "
                     r"normal symbol `([^']+)'")
    binds = [g for g in (m.groups() for m in pat.finditer(text))
             if g[2] in FUNCS]
    for user in USERS:
        mine = [(os.path.basename(a), os.path.basename(b), s)
                for a, b, s in binds if user in os.path.basename(a)]
        wrong = [x for x in mine if not x[1].startswith(want)]
        check(mine and not wrong,
              "%s's %s bind to %s" % (user, "/".join(FUNCS), want),
              "bindings: %r" % (wrong or mine,))

    return T.done()


if __name__ == "__main__":
    sys.exit(main())
