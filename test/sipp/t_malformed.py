#!/usr/bin/env python3
"""Malformed requests, sent raw over UDP (sipp will not send broken
messages), script test/scripts/wire.lua; after each one the server must
still answer an OPTIONS with 200. One group per run (--case):

  core  the core's validation (RFC 3261 §8.2):
        missing Call-ID / From / To / CSeq -> 400, a duplicate Call-ID
        -> 400, CSeq method != request method -> 400, Require: foo ->
        420 with `Unsupported: foo`, a To tag matching no dialog -> 481,
        an unknown method -> 501, a tel: / unknown URI scheme -> 416,
        a known method without handler (INFO) -> 405 with Allow; a
        request without Via cannot be answered but must not hurt.
  classes  one message of each class of the PROTOS c07-sip findings
        (issue 13), script test/scripts/answer.lua (answers every call):
        a Content-Type without a subtype (full and compact name) -> 400
        "Bad Content-Type" (libre cannot decode it: msgdecode.c), a
        CSeq without a number -> 400 "Bad CSeq", a method with a
        character outside the
        token -> 400, an INVITE with a text/plain body -> 415 with
        Accept: application/sdp, with a body but no Content-Type -> 400,
        with Content-Encoding: gzip -> 415 with Accept-Encoding, with
        an SDP that is not one (no v=0, a bad m= port, a medium without
        c=) -> 488 with a Warning; none of them reaches the script (no
        call), a well-formed INVITE still does, and a request whose Via
        is broken gets no answer but hurts nothing.
  rfc   message framing over UDP (RFC 3261 §18.3) and the log format:
        Content-Length smaller than the body -> the extra bytes are
        discarded (the script sees Content-Length bytes); Content-Length
        larger than the datagram -> 400; and datagrams that are not SIP
        (or that libre cannot parse) leave only logfmt lines in the log.
"""
import os
import re
import sys
import time

sys.dont_write_bytecode = True   # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402


def still_answers(h, cl, desc):
    r = cl.request("OPTIONS")
    h.ok(r is not None and r.code == 200,
         "%s: then OPTIONS -> 200" % desc, diag="got %r" % r)


def expect(h, cl, desc, code, method="OPTIONS", check=None, **kw):
    r = cl.request(method, **kw)
    h.ok(r is not None and r.code == code,
         "%s -> %d" % (desc, code), diag="got %r" % r)
    if check and r is not None:
        check(r)
    still_answers(h, cl, desc)
    return r


def core(h, srv, cl):
    msg = dict(method="MESSAGE", ctype="text/plain", body="hi")
    for hdr in ("Call-ID", "From", "To", "CSeq"):
        expect(h, cl, "OPTIONS without %s" % hdr, 400, set={hdr: None})
    expect(h, cl, "MESSAGE with two Call-ID headers", 400,
           extra=[("Call-ID", "second@127.0.0.1")], **msg)
    expect(h, cl, "MESSAGE with CSeq method INFO", 400, cseq_method="INFO",
           **msg)

    def unsupported(r):
        h.ok(r.header("Unsupported") == "foo", "420 names Unsupported: foo",
             diag="Unsupported: %r" % r.header("Unsupported"))
    expect(h, cl, "OPTIONS with Require: foo", 420, check=unsupported,
           extra=[("Require", "foo")])
    expect(h, cl, "MESSAGE with Require: foo", 420, check=unsupported,
           extra=[("Require", "foo")], **msg)

    expect(h, cl, "MESSAGE with a To tag of no dialog", 481,
           set={"To": "<sip:sipstack@127.0.0.1>;tag=no-such-dialog"}, **msg)
    h.ok(not srv.find({"ev": "log", "msg": "message",
                       "call_id": cl.last_call_id}),
         "the 481 request never reached the script")

    expect(h, cl, "unknown method FOOBAR", 501, method="FOOBAR")
    expect(h, cl, "lower-case \"options\" (methods are case-sensitive)",
           501, method="options")

    def allow(r):
        h.ok("MESSAGE" in (r.header("Allow") or "") and
             "OPTIONS" in (r.header("Allow") or ""),
             "405 carries Allow: with OPTIONS and MESSAGE",
             diag="Allow: %r" % r.header("Allow"))
    expect(h, cl, "INFO (known, no handler)", 405, method="INFO",
           check=allow)

    expect(h, cl, "OPTIONS to a tel: URI", 416, uri="tel:+15551234567")
    expect(h, cl, "OPTIONS to an xyz: URI", 416, uri="xyz:someone")

    r = cl.request("OPTIONS", timeout=0.5, set={"Via": None})
    h.ok(r is None, "OPTIONS without Via: no answer can be routed (none "
         "came)", diag="got %r" % r)
    still_answers(h, cl, "OPTIONS without Via")



SDP_OK = ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n"
          "t=0 0\r\nm=audio 40000 RTP/AVP 0\r\n")


def classes(h, srv, cl):
    inv = dict(method="INVITE", extra=[("Contact", "<sip:raw@127.0.0.1>")])

    def reason(want):
        def check(r):
            h.ok(r.reason == want, "reason %r" % want, diag=r.start)
        return check

    expect(h, cl, "MESSAGE with Content-Type: aaaaaaaaa", 400,
           method="MESSAGE", ctype="aaaaaaaaa", body="hi",
           check=reason("Bad Content-Type"))
    expect(h, cl, "MESSAGE with compact c: text", 400, method="MESSAGE",
           set={"c": "text"}, body="hi", check=reason("Bad Content-Type"))
    expect(h, cl, "OPTIONS with CSeq: abc OPTIONS", 400,
           set={"CSeq": "abc OPTIONS"}, check=reason("Bad CSeq"))
    expect(h, cl, "method INV@ITE", 400, method="INV@ITE")

    def accept(r):
        h.ok((r.header("Accept") or "") == "application/sdp",
             "415 names Accept: application/sdp", diag=r.header("Accept"))
    expect(h, cl, "INVITE with a text/plain body", 415, ctype="text/plain",
           body="hello", check=accept, **inv)
    expect(h, cl, "INVITE with a body but no Content-Type", 400,
           body=SDP_OK, check=reason("Missing Content-Type"), **inv)

    def acc_enc(r):
        h.ok((r.header("Accept-Encoding") or "") == "identity",
             "415 names Accept-Encoding: identity")
    i2 = dict(inv)
    i2["extra"] = inv["extra"] + [("Content-Encoding", "gzip")]
    expect(h, cl, "INVITE with Content-Encoding: gzip", 415,
           ctype="application/sdp", body=SDP_OK, check=acc_enc, **i2)

    def warning(r):
        h.ok("Malformed SDP" in (r.header("Warning") or ""),
             "488 has a Warning naming the SDP problem",
             diag=r.header("Warning"))
    for desc, sdp in (
            ("no v=0", "o=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"),
            ("m= port 99999", SDP_OK.replace("40000", "99999")),
            ("a medium without c=", SDP_OK.replace(
                "c=IN IP4 127.0.0.1\r\n", "")),
            ("not SDP at all", "garbage\r\n")):
        expect(h, cl, "INVITE with an SDP offer: %s" % desc, 488,
               ctype="application/sdp", body=sdp, check=warning, **inv)
    h.ok(not srv.find({"mod": "script", "msg": "call"}),
         "none of them reached the script", server=srv)

    r = cl.request("INVITE", ctype="application/sdp", body=SDP_OK,
                   extra=[("Contact", "<sip:raw@127.0.0.1>")])
    h.ok(r is not None and r.code == 200 and
         srv.wait_for({"mod": "script", "msg": "call"}, 3),
         "a well-formed INVITE still reaches the script (200)",
         diag="got %r" % r)

    data, _ = cl.build("OPTIONS", set={"Via": "garbage"})
    cid = cl.last_call_id
    cl.sock.sendto(data, cl.dst)
    end, got = time.monotonic() + 1.0, None
    while time.monotonic() < end and not got:
        r = cl.recv(timeout=max(0.05, end - time.monotonic()), final=False)
        if r is not None and r.header("Call-ID") == cid:
            got = r
    h.ok(got is None, "a broken Via gets no answer", diag=repr(got))
    still_answers(h, cl, "broken Via")


def rfc(h, srv, cl):
    data, branch = cl.build("MESSAGE", ctype="text/plain", body="hello")
    cl.sock.sendto(data.replace(b"Content-Length: 5\r\n",
                                b"Content-Length: 2\r\n"), cl.dst)
    r = cl.recv(branch)
    h.ok(r is not None and r.code == 200,
         "MESSAGE, Content-Length: 2, 5 body bytes -> 200", diag="got %r" % r)
    rec = srv.wait_for({"ev": "log", "msg": "message",
                        "call_id": cl.last_call_id}, 1.0)
    rec = harness.parse_logfmt(rec) if rec else {}
    h.ok(rec.get("hex") == b"he".hex(),
         "the script saw the 2 bytes of Content-Length (\"he\"), the "
         "rest of the datagram discarded (RFC 3261 18.3)",
         diag="the script saw hex=%s bytes=%s" % (rec.get("hex"),
                                                  rec.get("bytes")))
    still_answers(h, cl, "short Content-Length")

    data, branch = cl.build("MESSAGE", ctype="text/plain", body="hello")
    cl.sock.sendto(data.replace(b"Content-Length: 5\r\n",
                                b"Content-Length: 50\r\n"), cl.dst)
    r = cl.recv(branch)
    h.ok(r is not None and r.code == 400,
         "MESSAGE, Content-Length: 50, 5 body bytes -> 400 (RFC 3261 "
         "18.3: the datagram ends before the body)", diag="got %r" % r)
    still_answers(h, cl, "long Content-Length")

    mark = srv.mark()
    cl.sock.sendto(b"this is not SIP at all\r\n\r\n", cl.dst)
    cl.sock.sendto(b"\x00\x01\x02\xff binary junk", cl.dst)
    data, _ = cl.build("OPTIONS", set={"CSeq": "abc OPTIONS"})
    cl.sock.sendto(data, cl.dst)   # libre cannot parse it: dropped
    still_answers(h, cl, "garbage datagrams")
    bad = [l for l in srv.lines()[mark:]
           if not re.match(r"ts=\S+ lvl=(debug|info|warn|error) mod=\S+ "
                           r"ev=\S+", l)]
    h.ok(not bad, "after garbage datagrams every log line is still a "
         "logfmt line (ts= lvl= mod= ev=)", diag="\n".join(bad))


def args(ap):
    ap.add_argument("--case", choices=["core", "rfc", "classes"],
                    required=True)


def body(h, a):
    srv = h.server("answer.lua" if a.case == "classes" else "wire.lua")
    cl = harness.UdpClient(srv.port)
    still_answers(h, cl, "at start")
    {"core": core, "rfc": rfc, "classes": classes}[a.case](h, srv, cl)
    cl.close()
    h.stop_server(srv, must_not=[r"\bev=hook_error\b"])


if __name__ == "__main__":
    harness.test_main(__doc__.splitlines()[0], body, extra_args=args)
