#!/usr/bin/env python3
"""Scripts under a long path (over LuaJIT's 60-character chunk names):
the errors must still name the script's whole path, as they do for
short paths (`file:line: message`, `script=PATH`):

- `--check` on a copy of bad-syntax.lua: stderr starts `PATH:LINE: `;
- starting with that copy: load_failed err="PATH:LINE: ...";
- a hook raising in a copy of hook-error.lua: ev=hook_error script=PATH
  line=LINE.
"""
import os
import shutil
import sys

sys.dont_write_bytecode = True   # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402


def body(h, a):
    deep = os.path.join(h.tmp, "a-directory-name-long-enough-to-exceed-"
                        "luajit-chunk-name-limits", "scripts")
    os.makedirs(deep)
    bad = os.path.join(deep, "bad-syntax.lua")
    good = os.path.join(deep, "hook-error.lua")
    shutil.copy(harness.script_path("bad-syntax.lua"), bad)
    shutil.copy(harness.script_path("hook-error.lua"), good)
    h.note("scripts in %s (%d characters)" % (deep, len(deep)))

    line = harness.marker_line(bad, "LINE:syntax")
    rc, out, err = h.run([h.sipstack, "--check", bad], timeout=5)
    h.ok(rc == 1 and err.startswith("%s:%d: " % (bad, line)),
         "--check: exit 1, stderr starts with the whole PATH:%d:" % line,
         diag="exit %s\nstderr %r" % (rc, err))

    port = harness.free_port()
    rc, out, err = h.run([h.sipstack, "--listen", "udp:127.0.0.1:%d" % port,
                          bad], timeout=5)
    recs = [harness.parse_logfmt(l) for l in err.splitlines()
            if "ev=load_failed" in l]
    e = recs[0].get("err", "") if recs else ""
    h.ok(rc not in (0, "timeout") and e.startswith("%s:%d: " % (bad, line)),
         "start: load_failed err= starts with the whole PATH:%d:" % line,
         diag="exit %s\nerr=%r" % (rc, e))

    srv = h.server(good)
    cl = harness.UdpClient(srv.port)
    r = cl.request("MESSAGE", ctype="text/plain", body="boom")
    h.ok(r is not None and r.code == 500, "a raising hook -> 500",
         diag="got %r" % r)
    got = srv.wait_for({"ev": "hook_error"}, 2.0)
    rec = harness.parse_logfmt(got) if got else {}
    want = harness.marker_line(good, "LINE:boom")
    h.ok(rec.get("script") == good, "hook_error script= is the whole path",
         diag="expected script=%s\ngot      script=%s" % (
             good, rec.get("script")))
    h.ok(rec.get("line") == str(want), "hook_error line=%d" % want,
         diag="got line=%s" % rec.get("line"))
    cl.close()
    h.stop_server(srv, errors=[{"ev": "hook_error"}])


if __name__ == "__main__":
    harness.test_main(__doc__.splitlines()[0], body)
