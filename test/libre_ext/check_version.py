#!/usr/bin/env python3
"""test/libre_ext/check_version.py  The program refuses another libre

usage: check_version.py EXE FAKE_SO SCRIPT MAJOR MINOR

TAP. FAKE_SO (fake_version.c) is preloaded so that libre's
sys_libre_version_get() reports $FAKE_LIBRE_VERSION. Checked: with a
version of another series (next minor, next major) the program stops
before doing anything (--version, --check SCRIPT, the user subcommand),
exit status 1, stdout empty, and stderr is one line naming the version
found and the series required; with a later patch of the required
series it runs (--version names that libre).
"""
import os
import subprocess
import sys

from tap import Tap

T = Tap()
check = T.check


def run(exe, fake_so, version, args):
    env = dict(os.environ, LD_PRELOAD=fake_so, FAKE_LIBRE_VERSION=version)
    # an AddressSanitizer build wants its runtime first in the list
    env["ASAN_OPTIONS"] = ":".join(
        filter(None, [os.environ.get("ASAN_OPTIONS"),
                      "verify_asan_link_order=0"]))
    return subprocess.run([exe] + args, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, env=env,
                          timeout=30)


def main():
    exe, fake_so, script = sys.argv[1], sys.argv[2], sys.argv[3]
    major, minor = int(sys.argv[4]), int(sys.argv[5])
    series = "%d.%d.x" % (major, minor)

    for bad in ("%d.%d.0" % (major, minor + 1), "%d.%d.0" % (major + 1,
                                                              minor)):
        want = ("sipstack: libre %s found, %s required (server/libre_ext/ "
                "replaces functions of that series and relies on its "
                "internals)\n" % (bad, series))
        for args in (["--version"], ["--check", script],
                     ["user", "list", "--db", "/nonexistent/x.db"]):
            r = run(exe, fake_so, bad, args)
            check(r.returncode == 1 and r.stdout == "" and r.stderr == want,
                  "libre %s: `sipstack %s` refused" % (bad, " ".join(args)),
                  "rc %d\nstdout %r\nstderr %r\nwanted %r"
                  % (r.returncode, r.stdout, r.stderr, want))

    ok = "%d.%d.9" % (major, minor)
    r = run(exe, fake_so, ok, ["--version"])
    check(r.returncode == 0 and ("(libre %s;" % ok) in r.stdout
          and r.stderr == "",
          "libre %s (a later patch of the series) accepted" % ok,
          "rc %d\nstdout %r\nstderr %r" % (r.returncode, r.stdout,
                                           r.stderr))
    r = run(exe, fake_so, ok, ["--check", script])
    check(r.returncode == 0 and r.stdout.strip().endswith(": ok"),
          "libre %s: --check runs" % ok,
          "rc %d\nstdout %r\nstderr %r" % (r.returncode, r.stdout,
                                           r.stderr[-2000:]))

    return T.done()


if __name__ == "__main__":
    sys.exit(main())
