#!/usr/bin/env python3
"""test/libre_ext/check_exports.py  The binary's exports against overrides.list

usage: check_exports.py EXE LIST

TAP. server/libre_ext/overrides.list names every libre and libc function
the program replaces; the link passes it as the dynamic list, so those
and nothing else are exported. Checked:

  1. the executable's exported (dynamic, defined) symbols are exactly the
     list, both ways. Symbols with an R_*_COPY relocation are not ours:
     they are a library's variables (libc's stderr@GLIBC_2.2.5, optarg...;
     libasan's in a sanitizer build) that the linker placed in the
     executable's .bss; they are listed as such, not compared;
  2. the replacements take effect: the program runs (--version) under
     LD_DEBUG=bindings, and every listed name that libre.so.0 imports
     (a relocation of libre's) is bound from libre to the executable,
     none to another object. A listed name libre does not import
     (tmr_debug) is reported, not failed; so are other libraries'
     bindings of listed names (libcrypto's recvfrom binds to ours; in a
     sanitizer build libasan's lookups of the real recvfrom go to libc).
"""
import os
import re
import subprocess
import sys
import tempfile

from tap import Tap

T = Tap()
check = T.check
note = T.note


def read_list(path):
    """The names of an ld dynamic list ('#' and /* */ comments)."""
    text = open(path).read()
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    text = re.sub(r"#[^\n]*", " ", text)
    body = re.search(r"\{(.*)\}\s*;", text, flags=re.S)
    if not body:
        return None
    names = [n.strip() for n in body.group(1).split(";") if n.strip()]
    return names


def run(cmd, **kw):
    return subprocess.run(cmd, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, **kw)


def exported(exe):
    """Names (without @VERSION) of nm -D --defined-only"""
    out = run(["nm", "-D", "--defined-only", exe]).stdout
    names = set()
    for line in out.splitlines():
        f = line.split()
        if len(f) >= 3:
            names.add(f[2].split("@")[0])
    return names


def relocated(path, kinds):
    """Symbol names of path's dynamic relocations of the given kinds"""
    out = run(["readelf", "-rW", path]).stdout
    names = set()
    for line in out.splitlines():
        f = line.split()
        if len(f) >= 5 and any(f[2].endswith(k) for k in kinds):
            names.add(f[4].split("@")[0])
    return names


def bindings(exe):
    """[(from, to, symbol)] that the dynamic linker made for exe --version"""
    with tempfile.TemporaryDirectory() as d:
        env = dict(os.environ, LD_DEBUG="bindings",
                   LD_DEBUG_OUTPUT=os.path.join(d, "ld"))
        r = run([exe, "--version"], env=env)
        text = ""
        for f in os.listdir(d):
            text += open(os.path.join(d, f)).read()
    pat = re.compile(r"binding file (\S+) \[\d+\] to (\S+) \[\d+\]: "
                     r"normal symbol `([^']+)'")
    return r, [m.groups() for m in pat.finditer(text)]


def main():
    exe, lpath = sys.argv[1], sys.argv[2]

    names = read_list(lpath)
    check(names is not None and len(names) == len(set(names)),
          "overrides.list parses, no name twice", "names: %r" % (names,))
    if names is None:
        T.done()
        return 1
    listed = set(names)
    note("%d names listed: %s" % (len(names), " ".join(names)))

    # 1. exports == list
    copies = relocated(exe, ("_COPY",))
    ours = exported(exe) - copies
    note("copy relocations (a library's variables): " +
         " ".join(sorted(copies)))
    check(not (listed & copies), "no listed name is a copy relocation",
          " ".join(sorted(listed & copies)))
    missing = sorted(listed - ours)
    extra = sorted(ours - listed)
    check(not missing, "every listed name is exported by %s"
          % os.path.basename(exe), "not exported: " + " ".join(missing))
    check(not extra, "nothing but the list is exported",
          "exported, not listed: " + " ".join(extra))

    # 2. bindings
    r, binds = bindings(exe)
    check(r.returncode in (0, 1) and "libre" in r.stdout and binds,
          "the program runs under LD_DEBUG=bindings",
          "rc %d\nstdout %s\nstderr %s" % (r.returncode, r.stdout,
                                           r.stderr[-2000:]))
    exe_name = os.path.realpath(exe)

    def is_exe(path):
        return os.path.realpath(path) == exe_name

    libre_so = sorted({f for f, _, _ in binds
                       if os.path.basename(f).startswith("libre.so")})
    check(len(libre_so) == 1, "libre.so is loaded",
          "libre objects: %r" % (libre_so,))
    if len(libre_so) != 1:
        T.done()
        return 1

    libre = libre_so[0]
    elsewhere = sorted({"%s -> %s" % (s, t) for f, t, s in binds
                        if f == libre and s in listed and not is_exe(t)})
    check(not elsewhere, "libre binds no listed name to another "
          "definition than the executable's", "\n".join(elsewhere))

    imports = relocated(libre, ("_JUMP_SLOT", "_GLOB_DAT"))
    to_exe = {s for f, t, s in binds if f == libre and is_exe(t)}
    want = sorted(listed & imports)
    unbound = [s for s in want if s not in to_exe]
    check(want and not unbound, "libre binds to the executable each "
          "listed name it calls (%d)" % len(want),
          "not bound to the executable: " + " ".join(unbound))
    not_called = sorted(listed - imports)
    if not_called:
        note("listed, not imported by %s: %s" % (libre,
                                                  " ".join(not_called)))
    others = sorted({"%s: %s -> %s" % (s, os.path.basename(f),
                                       "ours" if is_exe(t)
                                       else os.path.basename(t))
                     for f, t, s in binds
                     if s in listed and f != libre and not is_exe(f)})
    if others:
        note("other libraries' bindings of listed names: " +
             ", ".join(others))

    return T.done()


if __name__ == "__main__":
    sys.exit(main())
