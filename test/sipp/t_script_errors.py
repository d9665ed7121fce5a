#!/usr/bin/env python3
"""Broken scripts at start and `--check`, scripts in test/scripts/:

- starting with a script that does not compile (bad-syntax.lua), that
  fails while loading (bad-runtime.lua) or that misuses the API at load
  time (bad-api.lua: sip.sleep outside a hook; bad-config.lua: a
  wildcard local_ip): exit status != 0 within
  5 s, no ev=started, stderr has `lvl=error mod=lua ev=load_failed
  script=PATH err="PATH:LINE: ..."` with the line that failed;
- `--check` on every good test script: exit 0 and `PATH: ok` on stdout;
- `--check` on the bad ones: exit 1 and `PATH:LINE: message` on
  stderr;
- a wildcard listener (`--listen udp:0.0.0.0:P`, `tcp:[::]:P`) or
  `--local-ip 0.0.0.0`: exit 2 at once with a line saying why.
"""
import os
import re
import sys

sys.dont_write_bytecode = True   # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

GOOD = ["wire.lua", "sender.lua", "hook-error.lua", "reload.lua",
        "sleep.lua"]
BAD = [("bad-syntax.lua", "LINE:syntax", "unexpected symbol near '='"),
       ("bad-runtime.lua", "LINE:runtime", "attempt to index"),
       ("bad-api.lua", "LINE:api", "sleep"),
       ("bad-config.lua", "LINE:config", "local_ip '0.0.0.0' is a "
        "wildcard")]
# wildcard listeners refused before anything starts (exit 2)
WILDCARDS = [["--listen", "udp:0.0.0.0:%d"], ["--listen", "tcp:[::]:%d"],
             ["--local-ip", "0.0.0.0", "--listen", "udp:127.0.0.1:%d"]]


def body(h, a):
    for name, marker, err_part in BAD:
        path = harness.script_path(name)
        line = harness.marker_line(path, marker)
        pos = "%s:%d: " % (path, line)
        port = harness.free_port()
        rc, out, err = h.run([h.sipstack, "--listen", "udp:127.0.0.1:%d" %
                              port, path], timeout=5)
        h.ok(rc not in (0, "timeout"),
             "start with %s: exits with status != 0 (%s)" % (name, rc),
             diag=err)
        h.ok("ev=started" not in err, "start with %s: never started" % name)
        recs = [harness.parse_logfmt(l) for l in err.splitlines()
                if re.search(r"\bev=load_failed\b", l)]
        r = recs[0] if recs else {}
        h.ok(r.get("lvl") == "error" and r.get("mod") == "lua" and
             r.get("script") == path,
             "start with %s: lvl=error mod=lua ev=load_failed script=PATH"
             % name, diag=err)
        h.ok(r.get("err", "").startswith(pos) and err_part in r["err"],
             "start with %s: err=\"%s:%d: ...%s...\"" % (name, name, line,
                                                       err_part),
             diag="err=%r" % r.get("err"))
        h.ok(pos in err, "start with %s: stderr names %s:%d:" %
             (name, name, line), diag=err)

    for name in GOOD:
        path = harness.script_path(name)
        rc, out, err = h.run([h.sipstack, "--check", path], timeout=5)
        h.ok(rc == 0 and out == "%s: ok\n" % path,
             "--check %s: exit 0, prints \"PATH: ok\"" % name,
             diag="exit %s\nstdout %r\nstderr %r" % (rc, out, err))

    for name, marker, err_part in BAD:
        path = harness.script_path(name)
        line = harness.marker_line(path, marker)
        rc, out, err = h.run([h.sipstack, "--check", path], timeout=5)
        first = err.splitlines()[0] if err else ""
        h.ok(rc == 1, "--check %s: exit 1 (%s)" % (name, rc), diag=err)
        h.ok(first.startswith("%s:%d: " % (path, line)) and
             err_part in first,
             "--check %s: stderr is \"%s:%d: ...%s...\"" % (
                 name, name, line, err_part), diag="stderr %r" % err)
        h.ok(": ok" not in out, "--check %s: does not print ok" % name,
             diag=out)

    for args in WILDCARDS:
        port = harness.free_port()
        argv = [x % port if "%d" in x else x for x in args]
        rc, out, err = h.run([h.sipstack] + argv +
                             [harness.script_path("wire.lua")], timeout=5)
        h.ok(rc == 2 and "wildcard" in err and "ev=started" not in err,
             "%s: refused at start (exit 2, 'wildcard')" % " ".join(argv),
             diag="exit %s\nstderr %r" % (rc, err))


if __name__ == "__main__":
    harness.test_main(__doc__.splitlines()[0], body)
