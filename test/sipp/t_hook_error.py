#!/usr/bin/env python3
"""A hook that raises, script test/scripts/hook-error.lua:

- sipp (uac-message-500-200.xml): a MESSAGE whose hook raises gets 500,
  the next MESSAGE of the same call gets 200;
- the log has `lvl=error mod=lua ev=hook_error callid=... hook=
  on_incoming_message script=PATH line=N gen=1 err=...` with N the line
  that raised (found by the LINE: markers of the script);
- the same for an index of nil, an error inside a helper function (the
  helper's line) and an error raised after sip.sleep resumed the hook
  (raw UDP), each followed by a MESSAGE and an OPTIONS answered 200.
(Scripts under long paths: t_long_path.py.)
"""
import os
import sys

sys.dont_write_bytecode = True   # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

SCRIPT = harness.script_path("hook-error.lua")


def check_hook_error(h, srv, callid, marker, err_part, script=SCRIPT):
    want_line = harness.marker_line(script, "LINE:" + marker)
    lines = srv.wait_for({"ev": "hook_error", "callid": callid}, 2.0)
    rec = harness.parse_logfmt(lines) if lines else {}
    h.ok(lines and rec.get("lvl") == "error" and rec.get("mod") == "lua" and
         rec.get("hook") == "on_incoming_message" and
         rec.get("gen") == "1" and err_part in rec.get("err", ""),
         "%s: lvl=error mod=lua ev=hook_error hook=on_incoming_message "
         "gen=1 err=~%r" % (marker, err_part), diag="line: %s" % lines)
    h.ok(rec.get("script") == script,
         "%s: script= names the script" % marker,
         diag="expected script=%s\ngot      script=%s" % (
             script, rec.get("script")))
    h.ok(rec.get("line") == str(want_line),
         "%s: line=%d (the line that raised)" % (marker, want_line),
         diag="got line=%s" % rec.get("line"))


def raw_case(h, srv, cl, marker, err_part, script=SCRIPT):
    r = cl.request("MESSAGE", ctype="text/plain", body=marker)
    h.ok(r is not None and r.code == 500,
         "%s: the request whose hook raised is answered 500" % marker,
         diag="got %r" % r)
    check_hook_error(h, srv, cl.last_call_id, marker, err_part, script)
    r = cl.request("MESSAGE", ctype="text/plain", body="fine")
    h.ok(r is not None and r.code == 200,
         "%s: the next MESSAGE is answered 200" % marker, diag="got %r" % r)
    r = cl.request("OPTIONS")
    h.ok(r is not None and r.code == 200,
         "%s: the next OPTIONS is answered 200" % marker, diag="got %r" % r)


def body(h, a):
    srv = h.server(SCRIPT)

    sp = h.sipp("uac-message-500-200.xml", srv, calls=1)
    h.sipp_ok(sp, "sipp: hook raises -> 500, next MESSAGE -> 200")
    sent = [m for m in sp.messages("sent") if m.method == "MESSAGE"]
    callid = sent[0].header("Call-ID") if sent else "?"
    check_hook_error(h, srv, callid, "boom", "boom requested by the test")
    h.ok(srv.find({"ev": "log", "msg": "fine", "callid": callid}),
         "the second MESSAGE of the call ran the hook to its end")

    cl = harness.UdpClient(srv.port)
    raw_case(h, srv, cl, "nil-index", "attempt to index")
    raw_case(h, srv, cl, "deep", "attempt to index")
    raw_case(h, srv, cl, "after-sleep", "raised after a sleep")
    cl.close()

    n = len(srv.find({"ev": "hook_error"}))
    h.ok(n == 4, "4 hook errors logged, one per raising request (%d)" % n)
    h.stop_server(srv, errors=[{"ev": "hook_error"}],
                  must_not=[r"\bev=unanswered\b", r"\bev=reply_failed\b"])


if __name__ == "__main__":
    harness.test_main(__doc__.splitlines()[0], body)
