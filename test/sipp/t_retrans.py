#!/usr/bin/env python3
"""Retransmitted non-INVITE requests over UDP (RFC 3261 §17.2.2), script
test/scripts/sleep.lua, server started with --t1 50 so that Timer J
(64*T1) is 3.2 s (raw UDP: the same bytes, the same branch):

- a MESSAGE answered at once, sent again: the same response comes back,
  byte for byte, and the hook ran once (server/core/donetrans.c keeps the
  Completed state after libre's transaction is freed);
- an OPTIONS (answered by the core) sent again: the same response;
- requests the core refuses (481 no dialog, 400 bad Max-Forwards) sent
  again: the same answer, byte for byte, from the compact Completed state
  (not libre's transaction, which kept the whole request 32 s): after
  Timer J the 400's request is refused anew (a second ev=bad_request);
- the same Call-ID and CSeq with a new branch is a new transaction: the
  hook runs again;
- a MESSAGE whose hook sleeps 1 s, sent again while it sleeps: no second
  hook (libre's transaction absorbs it) and one answer "200 Slept"; sent
  again after the answer: the same "200 Slept", no new hook;
- after Timer J the transaction is gone: the same bytes start a new one;
- (script answer.lua) an INVITE answered 200 and sent again before and
  after its ACK makes one call; a CANCEL after the 200 gets 200 with the
  To tag of the INVITE's 200.
"""
import os
import sys
import time

sys.dont_write_bytecode = True   # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402


def send_raw(cl, data):
    cl.sock.sendto(data, cl.dst)


def body(h, a):
    srv = h.server("sleep.lua", args=["--t1", "50"])
    cl = harness.UdpClient(srv.port)

    # 1. answered at once, then retransmitted
    data, br = cl.build("MESSAGE", ctype="text/plain", body="hello")
    callid = cl.last_call_id
    send_raw(cl, data)
    r1 = cl.recv(br)
    send_raw(cl, data)
    r2 = cl.recv(br)
    h.ok(r1 is not None and r1.code == 200,
         "MESSAGE answered 200", diag="got %r" % r1)
    h.ok(r2 is not None and r1 is not None and r2.raw == r1.raw,
         "its retransmission gets the same response, byte for byte",
         diag="first %r\nagain %r" % (r1 and r1.raw, r2 and r2.raw))

    # 2. OPTIONS, answered by the core
    odata, obr = cl.build("OPTIONS")
    send_raw(cl, odata)
    o1 = cl.recv(obr)
    send_raw(cl, odata)
    o2 = cl.recv(obr)
    h.ok(o1 is not None and o2 is not None and o1.code == 200 and
         o1.raw == o2.raw, "an OPTIONS retransmission gets the same 200",
         diag="got %r, %r" % (o1, o2))

    # 2b. refused by the core: 481 (no such dialog), 400
    refused = {}
    for code, kw in (("481", {"set": {"To": "<sip:x@127.0.0.1>;"
                                             "tag=no-such-dialog"}}),
                     ("400", {"set": {"Max-Forwards": "many"}})):
        rdata, rbr = cl.build("MESSAGE", ctype="text/plain", body="x", **kw)
        refused[code] = (rdata, rbr, cl.last_call_id)
        send_raw(cl, rdata)
        x1 = cl.recv(rbr)
        send_raw(cl, rdata)
        x2 = cl.recv(rbr)
        h.ok(x1 is not None and x1.code == int(code) and x2 is not None and
             x2.raw == x1.raw,
             "refused %s by the core; its retransmission gets the same %s, "
             "byte for byte" % (code, code), diag="got %r, %r" % (x1, x2))
    bad_cid = refused["400"][2]
    n = len(srv.find({"ev": "bad_request", "callid": bad_cid}))
    h.ok(n == 1, "the 400's retransmission was absorbed (one "
         "ev=bad_request: %d)" % n)

    # 3. a new branch is a new transaction, even with the same CSeq
    new = data.replace(br.encode(), (br + "-new").encode())
    send_raw(cl, new)
    r3 = cl.recv(br + "-new")
    h.ok(r3 is not None and r3.code == 200 and r1 is not None and
         r3.header("To") != r1.header("To"),
         "a new branch is a new transaction (answered anew, new To tag)",
         diag="got %r" % r3)

    # 4. a hook that sleeps: retransmitted while pending and after
    sdata, sbr = cl.build("MESSAGE", ctype="text/plain", body="slow")
    scallid = cl.last_call_id
    t0 = time.monotonic()
    send_raw(cl, sdata)
    time.sleep(0.3)
    send_raw(cl, sdata)            # while the hook sleeps
    s1 = cl.recv(sbr, timeout=3.0)
    took = time.monotonic() - t0
    h.ok(s1 is not None and s1.code == 200 and s1.reason == "Slept" and
         took >= 0.95, "the sleeping hook answers once, '200 Slept' "
         "(%.2f s)" % took, diag="got %r" % s1)
    extra = cl.recv(sbr, timeout=0.3)
    h.ok(extra is None, "no second answer for the retransmission sent "
         "while it slept", diag="got %r" % extra)
    send_raw(cl, sdata)
    s2 = cl.recv(sbr)
    h.ok(s2 is not None and s1 is not None and s2.raw == s1.raw,
         "sent again after the answer: the same '200 Slept'",
         diag="got %r" % s2)
    n = len(srv.find({"ev": "log", "msg": "sleeping", "call_id": scallid}))
    h.ok(n == 1, "the sleeping hook ran once for 3 copies (%d)" % n)

    # 5. after Timer J (64 * 50 ms = 3.2 s) the same bytes are new
    time.sleep(3.6)
    send_raw(cl, sdata)
    s3 = cl.recv(sbr, timeout=3.0)
    n = len(srv.find({"ev": "log", "msg": "sleeping", "call_id": scallid}))
    h.ok(s3 is not None and s3.code == 200 and n == 2,
         "after Timer J the same request is a new transaction (hook runs: "
         "%d)" % n, diag="got %r" % s3)
    rdata, rbr, _ = refused["400"]
    send_raw(cl, rdata)
    x3 = cl.recv(rbr)
    n = len(srv.find({"ev": "bad_request", "callid": bad_cid}))
    h.ok(x3 is not None and x3.code == 400 and n == 2,
         "after Timer J (64*T1 = 3.2 s, not libre's 32 s) the 400's "
         "request is refused anew (ev=bad_request: %d)" % n,
         diag="got %r" % x3)

    cl.close()
    h.note("Call-ID of the first MESSAGE: %s" % callid)
    invite_case(h)


def invite_case(h):
    """An INVITE answered 2xx, sent again before and after the ACK: no
    second call (RFC 6026 Accepted state); a CANCEL for it gets 200 with
    the To tag of the INVITE's 200 (RFC 3261 §9.2)."""
    srv = h.server("answer.lua", args=["--t1", "50"])
    cl = harness.UdpClient(srv.port)
    sdp = ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 "
           "127.0.0.1\r\nt=0 0\r\nm=audio 40002 RTP/AVP 0\r\n")
    contact = "<sip:raw@127.0.0.1:%d>" % cl.port
    data, br = cl.build("INVITE", ctype="application/sdp", body=sdp,
                        extra=[("Contact", contact)])
    inv = harness.SipMsg(data)
    callid = cl.last_call_id
    send_raw(cl, data)
    r1 = cl.recv(br)
    send_raw(cl, data)             # retransmitted before our ACK
    time.sleep(0.3)
    cancel = data.replace(b"INVITE sip:", b"CANCEL sip:", 1)
    cancel = cancel.replace(b" INVITE\r\n", b" CANCEL\r\n", 1)
    head, _, _ = cancel.partition(b"\r\n\r\n")
    head = b"\r\n".join(l for l in head.split(b"\r\n")
                         if not l.lower().startswith((b"content-",
                                                       b"contact")))
    cancel = head + b"\r\nContent-Length: 0\r\n\r\n"
    cl.sock.sendto(cancel, cl.dst)
    c200 = None
    end = time.monotonic() + 2.0
    while time.monotonic() < end and c200 is None:
        m = cl.recv(br, timeout=0.5)
        if m is not None and "CANCEL" in (m.header("CSeq") or ""):
            c200 = m
    h.ok(r1 is not None and r1.code == 200, "INVITE answered 200",
         diag="got %r" % r1)
    h.ok(c200 is not None and c200.code == 200 and r1 is not None and
         c200.header("To") == r1.header("To"),
         "a CANCEL after the 200 gets 200 with the INVITE's To tag",
         diag="got %r / %r" % (c200 and c200.header("To"),
                               r1 and r1.header("To")))
    if r1 is not None:
        cseq = inv.header("CSeq").split()[0]
        ack, _ = cl.build("ACK", set={
            "Call-ID": callid, "From": inv.header("From"),
            "To": r1.header("To"), "CSeq": "%s ACK" % cseq})
        cl.sock.sendto(ack, cl.dst)
        time.sleep(0.2)
        send_raw(cl, data)         # and after the ACK
        time.sleep(0.3)
    n = len(srv.find({"ev": "incoming", "callid": callid}))
    h.ok(n == 1, "the INVITE sent 3 times made one call (%d)" % n)
    if r1 is not None:
        cseq = int(inv.header("CSeq").split()[0]) + 1
        bye, bbr = cl.build("BYE", set={
            "Call-ID": callid, "From": inv.header("From"),
            "To": r1.header("To"), "CSeq": "%d BYE" % cseq})
        cl.sock.sendto(bye, cl.dst)
        b = cl.recv(bbr)
        h.ok(b is not None and b.code == 200, "BYE answered 200",
             diag="got %r" % b)
    cl.close()
    h.stop_server(srv, must_not=[r"\bev=hook_error\b", r"\bev=unanswered\b",
                                 r"\blvl=error\b"])


if __name__ == "__main__":
    harness.test_main(__doc__.splitlines()[0], body)
