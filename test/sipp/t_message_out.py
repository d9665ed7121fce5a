#!/usr/bin/env python3
"""Outgoing MESSAGE (sip.send_message) to sipp as UAS, script
test/scripts/sender.lua, one case per run (--case):

  200       sipp answers 200  -> the script logs code=200 reason=OK
  404       sipp answers 404  -> code=404 reason="Not Found"
  noanswer  sipp never answers -> code=nil reason=timeout after Timer F
            (64*T1 = 32 s), the MESSAGE having been retransmitted

A raw UDP MESSAGE triggers the script (X-Send-To: sipp's URI); the
script sends the trigger's body and content type and an X-Test-Id
header. Each case checks that sipp received that header and the body
byte-exact (JSON with quotes and UTF-8; binary with bytes >= 0x80
and CRLFCRLF).
"""
import os
import sys
import time

sys.dont_write_bytecode = True   # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

CASES = {
    "200": dict(scenario="uas-message-200.xml", code="200", reason="OK",
                ctype="application/json",
                body=('{"msg":"h\u00e9llo \\"out\\"","sym":"\u2713 '
                      '\U0001F600","n":[1,2]}').encode("utf-8"),
                wait=8, sipp_timeout=15),
    "404": dict(scenario="uas-message-404.xml", code="404",
                reason="Not Found", ctype="application/octet-stream",
                # no NUL: sipp logs messages as C strings
                body=b"\x01bin\xff\xfe\x80\r\n\r\nafter-blank-line\x7f",
                wait=8, sipp_timeout=15),
    "noanswer": dict(scenario="uas-message-noanswer.xml", code="nil",
                     reason="timeout", ctype="text/plain; charset=utf-8",
                     body="nobody answers \u00e0 this\r\n".encode("utf-8"),
                     wait=40, sipp_timeout=45),
}


def args(ap):
    ap.add_argument("--case", choices=sorted(CASES), required=True)


def body(h, a):
    c = CASES[a.case]
    test_id = "wire-%s-%d" % (a.case, os.getpid())

    uas = h.sipp(c["scenario"], calls=1, timeout=c["sipp_timeout"])
    if not h.ok(uas.wait_listening(), "sipp UAS (%s) listens on %d" %
                (c["scenario"], uas.port), sipp=uas):
        raise harness.Abort("sipp did not start")

    srv = h.server("sender.lua")
    to = "sip:sipp@127.0.0.1:%d" % uas.port

    cl = harness.UdpClient(srv.port)
    t0 = time.monotonic()
    r = cl.request("MESSAGE", ctype=c["ctype"], body=c["body"],
                   extra=[("X-Send-To", to), ("X-Test-Id", test_id)])
    h.ok(r is not None and r.code == 202,
         "the trigger MESSAGE is answered 202 at once",
         diag="got %r" % r)

    line = srv.wait_for({"ev": "log", "msg": "sent", "to": to}, c["wait"])
    took = time.monotonic() - t0
    rec = harness.parse_logfmt(line) if line else {}
    h.ok(rec.get("code") == c["code"] and rec.get("reason") == c["reason"],
         "send_message returned %s, %s (logged code=%s reason=%s, "
         "%.1f s)" % (c["code"], c["reason"], rec.get("code"),
                      rec.get("reason"), took),
         diag="log line: %s" % line)
    if a.case == "noanswer":
        # RFC 3261 Timer F = 64*T1 = 32 s with the default T1
        h.ok(line and 30.0 <= took <= 36.0,
             "the timeout came after Timer F (32 s): %.1f s" % took)

    h.sipp_ok(uas, "sipp UAS scenario %s completed" % c["scenario"])

    got = [m for m in uas.messages("received") if m.method == "MESSAGE"]
    if h.ok(got, "sipp received the MESSAGE", sipp=uas):
        m = got[0]
        h.ok(m.header("X-Test-Id") == test_id,
             "sipp received the custom header X-Test-Id: %s" % test_id,
             diag="X-Test-Id: %r" % m.header("X-Test-Id"))
        h.ok(m.header("Content-Type") == c["ctype"],
             "sipp received Content-Type: %s" % c["ctype"],
             diag="Content-Type: %r" % m.header("Content-Type"))
        h.ok(m.body == c["body"],
             "sipp received the body byte-exact (%d bytes)" % len(c["body"]),
             diag="expected %r\ngot      %r" % (c["body"], m.body))
        h.ok(m.start == "MESSAGE %s SIP/2.0" % to,
             "the request line targets %s" % to, diag=m.start)
    if a.case == "noanswer":
        h.ok(len(got) >= 5, "the unanswered MESSAGE was retransmitted "
             "(%d copies)" % len(got))
        ids = set(m.header("Call-ID") for m in got)
        h.ok(len(ids) == 1, "all copies are one transaction (Call-ID)")

    cl.close()
    h.stop_server(srv, must=[{"ev": "log", "msg": "sending", "to": to}],
                  must_not=[r"\bev=hook_error\b", r"\bev=unanswered\b"])


if __name__ == "__main__":
    harness.test_main(__doc__.splitlines()[0], body, extra_args=args)
