#!/usr/bin/env python3
"""SIGHUP reload, script test/scripts/reload.lua, one case per run:

  traffic  OPTIONS and MESSAGE from two sipp at 100/s each for 3 s, HUP
           sent twice while they run: no call fails, `ev=reloaded gen=2`
           and `gen=3` are logged.
  broken   the server runs a copy of the script; the copy is overwritten
           with a syntax error, HUP -> `lvl=error ev=reload_failed` naming
           file:line, keeping=old, and requests are still answered by the
           old script ("200 OK v1", sipp traffic included); the same with
           an error raised while loading; then the copy is fixed ("v2"),
           HUP -> `ev=reloaded` and the answers come from v2.
"""
import os
import shutil
import signal
import sys
import time

sys.dont_write_bytecode = True   # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

SCRIPT = harness.script_path("reload.lua")


def args(ap):
    ap.add_argument("--case", choices=["traffic", "broken"], required=True)


def traffic(h):
    srv = h.server(SCRIPT)
    opt = h.sipp("uac-options.xml", srv, calls=300, rate=100, timeout=20)
    msg = h.sipp("uac-message-200.xml", srv, calls=300, rate=100,
                 timeout=20)
    t0 = time.monotonic()
    for n, at in ((2, 1.0), (3, 2.0)):
        time.sleep(max(0.0, t0 + at - time.monotonic()))
        running = opt.proc.poll() is None and msg.proc.poll() is None
        mark = srv.mark()
        srv.signal(signal.SIGHUP)
        h.ok(running, "HUP #%d sent at %.1f s while both sipp run" %
             (n - 1, time.monotonic() - t0))
        line = srv.wait_for(r"\bmod=lua ev=reloaded\b.* gen=%d\b" % n, 2.0,
                            after=mark)
        h.ok(line, "ev=reloaded gen=%d logged" % n)
    h.sipp_ok(opt, "sipp: 300 OPTIONS at 100/s across 2 reloads, none "
              "failed")
    h.sipp_ok(msg, "sipp: 300 MESSAGE at 100/s across 2 reloads, none "
              "failed")
    n = len(srv.find(r"\bev=reloaded\b"))
    h.ok(n == 2, "exactly 2 reloads logged (%d)" % n)
    h.stop_server(srv, must=[r"\bmod=main ev=sighup\b",
                             r"\bev=reloaded\b.* gen=2\b",
                             r"\bev=reloaded\b.* gen=3\b"],
                  must_not=[r"\bev=reload_failed\b", r"\bev=unanswered\b"])


def answered_by(h, cl, version, desc):
    r = cl.request("MESSAGE", ctype="text/plain", body="which version?")
    h.ok(r is not None and r.code == 200 and r.reason == "OK " + version,
         "%s: MESSAGE answered \"200 OK %s\" (the %s script)" %
         (desc, version, version), diag="got %r" % r)
    r = cl.request("OPTIONS")
    h.ok(r is not None and r.code == 200, "%s: OPTIONS answered 200" % desc,
         diag="got %r" % r)


def failed_reload(h, srv, cl, path, text, marker, err_part, desc):
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    want = harness.marker_line(path, marker)
    mark = srv.mark()
    srv.signal(signal.SIGHUP)
    line = srv.wait_for(r"\bev=reload_failed\b", 3.0, after=mark)
    rec = harness.parse_logfmt(line) if line else {}
    h.ok(line and rec.get("lvl") == "error" and rec.get("mod") == "lua" and
         rec.get("keeping") == "old",
         "%s: lvl=error mod=lua ev=reload_failed ... keeping=old" % desc,
         diag="line: %s" % line)
    h.ok(rec.get("err", "").startswith("%s:%d: " % (path, want)) and
         err_part in rec.get("err", ""),
         "%s: err=\"%s:%d: ...%s...\"" % (desc, os.path.basename(path), want,
                                         err_part),
         diag="err=%r" % rec.get("err"))
    h.ok(not srv.find(r"\bev=reloaded\b", after=mark),
         "%s: no ev=reloaded" % desc)
    answered_by(h, cl, "v1", desc)


def broken(h):
    d = os.path.join(h.tmp, "scripts")
    os.makedirs(d)
    path = os.path.join(d, "reload.lua")
    shutil.copy(SCRIPT, path)
    with open(SCRIPT, encoding="utf-8") as f:
        good = f.read()
    if not h.ok('local VERSION = "v1"' in good,
                "reload.lua holds the VERSION line the test rewrites"):
        raise harness.Abort("reload.lua changed")

    srv = h.server(path)
    cl = harness.UdpClient(srv.port)
    answered_by(h, cl, "v1", "before any reload")

    failed_reload(h, srv, cl, path,
                  "-- broken on purpose\nlocal x = 1\n"
                  "local y = = 2  -- LINE:syntax\n",
                  "LINE:syntax", "unexpected symbol", "syntax error")

    # traffic goes on, answered by the old script
    sp = h.sipp("uac-message-200.xml", srv, calls=40, rate=40)
    mark = srv.mark()
    srv.signal(signal.SIGHUP)   # still the broken file
    h.ok(srv.wait_for(r"\bev=reload_failed\b", 3.0, after=mark),
         "a second HUP with the broken file fails again")
    h.sipp_ok(sp, "sipp: 40 MESSAGEs around a failed reload, none failed")
    got = set(m.start for m in sp.messages("received") if m.is_response)
    h.ok(got == {"SIP/2.0 200 OK v1"}, "every answer came from v1",
         diag="answers: %r" % got)

    failed_reload(h, srv, cl, path,
                  good.replace('local VERSION = "v1"',
                               'local VERSION = "v2"') +
                  'error("refusing to load")  -- LINE:runtime\n',
                  "LINE:runtime", "refusing to load",
                  "error while loading")

    # fixed: the new version takes over
    with open(path, "w", encoding="utf-8") as f:
        f.write(good.replace('local VERSION = "v1"', 'local VERSION = "v2"'))
    mark = srv.mark()
    srv.signal(signal.SIGHUP)
    line = srv.wait_for(r"\bmod=lua ev=reloaded\b", 3.0, after=mark)
    rec = harness.parse_logfmt(line) if line else {}
    h.ok(line and rec.get("lvl") == "info" and
         int(rec.get("gen", "0")) >= 2 and rec.get("script") == path,
         "fixed file: ev=reloaded script=PATH gen>=2", diag="line: %s" % line)
    h.ok(srv.find({"ev": "log", "msg": "loaded", "version": "v2"},
                  after=mark), "the fixed script's top level ran (v2)")
    answered_by(h, cl, "v2", "after the fix")
    cl.close()

    h.stop_server(srv, errors=[{"ev": "reload_failed"}],
                  must_not=[r"\bev=unanswered\b"])


def body(h, a):
    traffic(h) if a.case == "traffic" else broken(h)


if __name__ == "__main__":
    harness.test_main(__doc__.splitlines()[0], body, extra_args=args)
