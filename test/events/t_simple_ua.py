#!/usr/bin/env python3
"""scripts/simple_ua.lua (the spec's §5 example) end to end on the wire.

The script is copied with its settings at the top pointed at a raw UDP
peer of the test (PEER, REFER_TO, REGISTRAR, ANSWERED_FOR = 1); nothing
else in it changes. The peer then checks, in order:

  - the outgoing call: INVITE with SDP, our 180 then 200, the ACK;
  - the REFER with Replaces in that call (Refer-To <REFER_TO?Replaces=
    abc123;to-tag=tag1;from-tag=tag2>, Referred-By), 202, our NOTIFYs
    100 and 200: the script logs the progress and the transfer's end;
  - the BYE, then the MESSAGE "Hello!", then the REGISTER;
  - an incoming call: 180 at once, 200 about 2 s later;
  - a REFER in that call: 202, NOTIFYs 100 Trying, 180 Ringing, 200 OK
    (terminated), as the example's on_incoming_refer sends them.
"""
import os
import re
import sys
import time

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "sipp"))
import harness  # noqa: E402
from t_events import Peer, tag_of, uri_of, substate, body_of  # noqa: E402
from t_transfer import Caller, OFFER, uas_notify  # noqa: E402

LOCAL = harness.LOCAL


def script_for(h, peer):
    src = open(os.path.join(ROOT, "scripts", "simple_ua.lua")).read()
    sets = {
        "PEER": '"%s"' % peer.uri("user"),
        "REFER_TO": '"%s"' % peer.uri("other"),
        "REGISTRAR": '"sip:%s:%d"' % (LOCAL, peer.port),
        "ANSWERED_FOR": "1",
    }
    for k, v in sets.items():
        src, n = re.subn(r"(?m)^local %s = [^\n-]+" % k,
                         "local %s = %s " % (k, v), src, count=1)
        h.ok(n == 1, "the script has its setting %s at the top" % k)
    path = os.path.join(h.tmp, "simple_ua.lua")
    with open(path, "w") as f:
        f.write(src)
    return path


def body(h, args):
    p = Peer(0)
    srv = h.server(script_for(h, p))
    p.dst = ("127.0.0.1", srv.port)

    # the outgoing call of the example
    inv = p.recv_req("INVITE", 5.0)
    h.ok(inv is not None and body_of(inv).startswith(b"v=0"),
         "outgoing call: INVITE with SDP")
    if not inv:
        return
    p.reply(inv, 180, "Ringing", to_tag="u1")
    time.sleep(0.2)
    p.reply(inv, 200, "OK", to_tag="u1",
            hdrs=[("Content-Type", "application/sdp")], body=OFFER)
    h.ok(p.recv_req("ACK", 3.0) is not None, "outgoing call: ACK")
    h.ok(srv.wait_for({"msg": "ringing..."}, 3) and
         srv.wait_for({"msg": "call answered"}, 3),
         "the script's on_ringing and on_answered ran", server=srv)

    ref = p.recv_req("REFER", 5.0)
    rt = uri_of(ref.header("Refer-To")) if ref else ""
    h.ok(ref is not None and rt == p.uri("other") + "?Replaces=abc123%3B"
         "to-tag%3Dtag1%3Bfrom-tag%3Dtag2" and ref.header("Referred-By"),
         "REFER with Replaces in the call (Refer-To, Referred-By)",
         diag=rt)
    if ref:
        p.reply(ref, 202, "Accepted")
        ev = "refer;id=%s" % ref.header("CSeq").split()[0]
        uas_notify(p, inv, "u1", 1, ev, "active;expires=60",
                   "SIP/2.0 100 Trying")
        uas_notify(p, inv, "u1", 2, ev, "terminated;reason=noresource",
                   "SIP/2.0 200 OK")
        h.ok(srv.wait_for({"msg": "transfer progress", "code": "100"}, 3)
             and srv.wait_for({"msg": "transfer done", "code": "200",
                               "reason": "OK"}, 3),
             "the script heard the progress and the end", server=srv)
    bye = p.recv_req("BYE", 5.0)
    h.ok(bye is not None, "then the BYE")
    if bye:
        p.reply(bye, 200, "OK")
    msg = p.recv_req("MESSAGE", 5.0)
    h.ok(msg is not None and body_of(msg) == b"Hello!",
         "then the MESSAGE Hello!")
    if msg:
        p.reply(msg, 200, "OK")
    reg = p.recv_req("REGISTER", 5.0)
    h.ok(reg is not None and "simple_ua@" in (reg.header("To") or ""),
         "then the REGISTER", diag=reg and reg.header("To"))
    if reg:
        p.reply(reg, 200, "OK", hdrs=[("Contact", reg.header("Contact") +
                                       ";expires=3600")])

    # an incoming call: 180, then 200 two seconds later
    c = Caller(p, srv)
    t0 = time.monotonic()
    r = c.call()
    h.ok(r and r.code == 200 and time.monotonic() - t0 > 1.5,
         "incoming call answered about 2 s after ringing (%.1f s)" %
         (time.monotonic() - t0))
    # a REFER in it: the example's progress
    b = p.request("REFER", c.target, c.ftag, c.to, c.callid, c.cseq,
                  [("Refer-To", "<sip:carol@%s>" % LOCAL)])
    c.cseq += 1
    r = p.recv_resp(b)
    h.ok(r and r.code == 202, "REFER in the call -> 202")
    frags = []
    for _ in range(3):
        n = p.recv_req("NOTIFY", 5.0)
        if not n:
            break
        p.reply(n, 200, "OK")
        frags.append((body_of(n).split(b"\r\n")[0].decode(), substate(n)))
    h.ok([f for f, _ in frags] == ["SIP/2.0 100 Trying",
                                   "SIP/2.0 180 Ringing", "SIP/2.0 200 OK"]
         and frags[-1][1] == "terminated;reason=noresource",
         "NOTIFYs 100, 180, 200 (terminated)", diag=repr(frags))
    r = c.req("BYE")
    h.ok(r and r.code == 200, "BYE -> 200")
    h.stop_server(srv)


if __name__ == "__main__":
    harness.test_main(__doc__.splitlines()[0], body)
