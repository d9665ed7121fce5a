#!/usr/bin/env python3
"""Incoming MESSAGE, over the wire with sipp, script test/scripts/wire.lua:

- a text/plain MESSAGE -> 200 (the hook returns nothing), and the body the
  script saw is byte-exact the body sipp sent;
- an application/json body with quotes, a backslash and UTF-8 -> 200,
  byte-exact too;
- a binary body with NUL bytes (sent raw: sipp cannot) -> 200, byte-exact;
- a body containing "reject" -> 488 (code chosen by the script from the
  body);
- X-Want-Code: 486 / X-Want-Reason: Busy -> "486 Busy" (code and reason
  chosen by the script from headers).
"""
import os
import sys

sys.dont_write_bytecode = True   # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

# Must stay equal to the body lines of uac-message-200.xml and
# uac-message-json.xml (sipp ends the body with CRLF).
TEXT_BODY = ("Hello sipstack: plain <text> & 'quotes' = ok; tab\tend\r\n"
             ).encode("utf-8")
# Sent raw (sipp handles messages as C strings): NUL, CR LF CR LF, 0xff.
BIN_BODY = b"\x00head\x00\r\n\r\n\xff\xfe\x80 tail\x00"
JSON_BODY = ('{"text":"h\\u00e9llo \\"wire\\" \\\\ \u00e9 \u2713 '
             '\U0001F600","n":42}\r\n').encode("utf-8")


def sent_body(h, sp, desc):
    """The body of the MESSAGE sipp sent (from its message log)."""
    sent = [m for m in sp.messages("sent") if m.method == "MESSAGE"]
    h.ok(len(sent) == 1, "%s: sipp's message log holds the MESSAGE it sent"
         % desc, sipp=sp)
    return sent[0].body if sent else None


def script_saw(h, srv, sp, body, ctype, desc):
    """The script's log line for this call has the body byte-exact."""
    sent = [m for m in sp.messages("sent") if m.method == "MESSAGE"]
    callid = sent[0].header("Call-ID") if sent else "?"
    recs = [harness.parse_logfmt(l) for l in
            srv.find({"ev": "log", "msg": "message", "call_id": callid})]
    if not h.ok(len(recs) == 1, "%s: the script logged the MESSAGE once"
                % desc, diag="Call-ID %s: %d log lines" % (callid,
                                                          len(recs))):
        return
    r = recs[0]
    keys = list(r)
    fields = [k for k in keys[keys.index("msg") + 1:] if k != "callid"]
    h.ok(fields == sorted(fields) and
         set(fields) == {"body", "bytes", "call_id", "ctype", "hex"},
         "%s: sip.log prints the script's fields sorted by key" % desc,
         diag="fields in order: %s" % fields)
    h.ok(r.get("hex") == body.hex(),
         "%s: the body reached the script byte-exact (%d bytes, hex)" %
         (desc, len(body)),
         diag="expected %s\ngot      %s" % (body.hex(), r.get("hex")))
    logged = r.get("body", "").encode("utf-8", "surrogateescape")
    h.ok(logged == body, "%s: logged body (quoted) equals the sent one"
         % desc, diag="expected %r\ngot      %r" % (body, logged))
    h.ok(r.get("bytes") == str(len(body)) and r.get("ctype") == ctype,
         "%s: #body == %d and content_type == %r" % (desc, len(body),
                                                    ctype),
         diag="bytes=%s ctype=%s" % (r.get("bytes"), r.get("ctype")))


def body(h, args):
    srv = h.server("wire.lua")

    # text/plain -> 200
    sp = h.sipp("uac-message-200.xml", srv, calls=1)
    h.sipp_ok(sp, "text MESSAGE answered 200")
    b = sent_body(h, sp, "text")
    h.ok(b == TEXT_BODY, "text: sipp sent TEXT_BODY",
         diag="sipp sent %r" % b)
    script_saw(h, srv, sp, TEXT_BODY, "text/plain", "text")

    # application/json with quotes and UTF-8 -> 200
    sp = h.sipp("uac-message-json.xml", srv, calls=1)
    h.sipp_ok(sp, "JSON MESSAGE answered 200")
    b = sent_body(h, sp, "json")
    h.ok(b == JSON_BODY, "json: sipp sent JSON_BODY",
         diag="sipp sent %r" % b)
    script_saw(h, srv, sp, JSON_BODY, "application/json; charset=utf-8",
               "json")

    # code chosen from the body -> 488, several calls
    sp = h.sipp("uac-message-488.xml", srv, calls=5, rate=50)
    h.sipp_ok(sp, "5 MESSAGEs asking for rejection answered 488")

    # code and reason chosen from headers -> "486 Busy"
    sp = h.sipp("uac-message-486.xml", srv, calls=1)
    h.sipp_ok(sp, "MESSAGE with X-Want-Code: 486 answered 486")
    got = [m.start for m in sp.messages("received") if m.is_response]
    h.ok(got == ["SIP/2.0 486 Busy"], "the reason phrase is the script's "
         "(\"486 Busy\")", diag="sipp received %r" % got)

    # binary body with NUL bytes, raw UDP -> 200, hex byte-exact
    cl = harness.UdpClient(srv.port)
    r = cl.request("MESSAGE", ctype="application/octet-stream",
                   body=BIN_BODY)
    h.ok(r is not None and r.code == 200,
         "binary MESSAGE (NUL bytes) answered 200", diag="got %r" % r)
    recs = [harness.parse_logfmt(l) for l in srv.find(
        {"ev": "log", "msg": "message", "call_id": cl.last_call_id})]
    h.ok(len(recs) == 1 and recs[0].get("hex") == BIN_BODY.hex() and
         recs[0].get("bytes") == str(len(BIN_BODY)),
         "binary: the body reached the script byte-exact (%d bytes, NUL "
         "included)" % len(BIN_BODY),
         diag="expected %s\ngot      %s" % (
             BIN_BODY.hex(), recs[0].get("hex") if recs else None))
    cl.close()

    h.stop_server(srv, must=[r"\bmod=lua ev=loaded\b.* gen=1\b"],
                  must_not=[r"\bev=hook_error\b", r"\bev=unanswered\b"])


if __name__ == "__main__":
    harness.test_main(__doc__.splitlines()[0], body)
