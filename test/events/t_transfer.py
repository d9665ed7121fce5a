#!/usr/bin/env python3
"""Incoming REFER on the wire (RFC 3515), one case per run (--case).

sipstack runs test/events/transfer.lua. Peer A (the transferor, a raw
UDP peer) calls sipstack and, once connected, sends a REFER in the call
(or out of dialog); peer B (the transfer target) answers the new call.

  blind        REFER -> 202; NOTIFYs (Event: refer;id=<CSeq>,
               message/sipfrag) 100 Trying, 180 Ringing, then 200 OK
               with terminated;reason=noresource, as B rings and
               answers; the INVITE to B carries Referred-By; the call
               goes Connected -> Referring -> Connected; A's BYE ends it
  fail         B answers 486: the final NOTIFY is 486 Busy Here
  refuse       the hook returns 603 -> 603, no NOTIFY, no Referring
  raise        the hook raises -> 500, ev=hook_error, server alive
  manual       the script's notify_trying/ringing/success: 100, 180, 200;
               a second success is refused ("already answered")
  ood          REFER out of dialog (manual): 202 with a To tag, the
               NOTIFYs in the new dialog
  replaces     Refer-To with ?Replaces=... : the hook sees call_id,
               to_tag and from_tag unescaped, and the INVITE to B
               carries the Replaces header
  norefersub   Refer-Sub: false (RFC 4488): 202 with Refer-Sub: false,
               and no NOTIFY at all
"""
import os
import re
import sys
import time

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "sipp"))
import harness  # noqa: E402
from t_events import Peer, tag_of, uri_of, substate, body_of  # noqa: E402

SCRIPT = os.path.join(HERE, "transfer.lua")
LOCAL = harness.LOCAL

OFFER = (b"v=0\r\no=peer 1 1 IN IP4 127.0.0.1\r\ns=-\r\n"
         b"c=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40002 RTP/AVP 0\r\n"
         b"a=rtpmap:0 PCMU/8000\r\n")


class Caller:
    """Peer A: a call to sipstack, then requests in its dialog."""

    def __init__(self, peer, srv):
        self.p = peer
        self.srv = srv
        self.ruri = "sip:transferee@%s:%d" % (LOCAL, srv.port)
        self.callid = "xfer-%d@%s" % (peer.port, LOCAL)
        self.ftag = "a%d" % peer.port
        self.to = "<%s>" % self.ruri
        self.cseq = 1
        self.target = self.ruri

    def call(self):
        b = self.p.request("INVITE", self.ruri, self.ftag, self.to,
                           self.callid, self.cseq,
                           [("Content-Type", "application/sdp")], OFFER)
        r = self.p.recv_resp(b)
        if r and r.code == 200:
            self.to = r.header("To")
            self.target = uri_of(r.header("Contact")) or self.target
            self.p.request("ACK", self.target, self.ftag, self.to,
                           self.callid, self.cseq)
        self.cseq += 1
        return r

    def req(self, method, hdrs=()):
        b = self.p.request(method, self.target, self.ftag, self.to,
                           self.callid, self.cseq, list(hdrs))
        self.cseq += 1
        return self.p.recv_resp(b)


def target_peer(srv, answer=200):
    """Peer B: answers the next INVITE with 180 then answer (code)."""
    return Peer(srv.port)


def answer_invite(h, b, code=200, wait=5.0):
    inv = b.recv_req("INVITE", wait)
    h.ok(inv is not None, "the target got the new INVITE")
    if not inv:
        return None
    b.reply(inv, 180, "Ringing", to_tag="b1")
    time.sleep(0.2)
    if code == 200:
        b.reply(inv, 200, "OK", to_tag="b1",
                hdrs=[("Content-Type", "application/sdp")], body=OFFER)
        ack = b.recv_req("ACK", 3.0)
        h.ok(ack is not None, "the target got the ACK")
    else:
        b.reply(inv, code, "Busy Here", to_tag="b1")
        b.recv_req("ACK", 2.0)
    return inv


def notifies(h, a, n, timeout=5.0):
    """The NOTIFYs to A up to the terminated one (at most n), each
    answered 200. A newer state replaces one waiting behind the NOTIFY
    in flight, so a 180 may be skipped when A answers slowly."""
    out = []
    for _ in range(n):
        m = a.recv_req("NOTIFY", timeout)
        if not m:
            break
        a.reply(m, 200, "OK")
        out.append(m)
        if substate(m).startswith("terminated"):
            break
    return out


def frag(m):
    return body_of(m).split(b"\r\n")[0].decode("ascii", "replace")


def check_progress(h, case, ns, refer_cseq, final):
    got = [frag(m) for m in ns]
    h.ok(got[:1] == ["SIP/2.0 100 Trying"] and got[-1:] == [final] and
         all(g.startswith("SIP/2.0 ") for g in got),
         "%s: NOTIFY sipfrags 100 Trying ... %s" % (case, final),
         diag=repr(got))
    h.ok(all((m.header("Event") or "").replace(" ", "") ==
             "refer;id=%d" % refer_cseq for m in ns) and ns,
         "%s: Event: refer;id=%d on every NOTIFY" % (case, refer_cseq),
         diag=repr([m.header("Event") for m in ns]))
    h.ok(all((m.header("Content-Type") or "").startswith("message/sipfrag")
             for m in ns) and ns, "%s: message/sipfrag bodies" % case)
    h.ok(ns and substate(ns[-1]) == "terminated;reason=noresource" and
         all(substate(m).startswith("active;expires=") for m in ns[:-1]),
         "%s: active until the final one, terminated;reason=noresource"
         % case, diag=repr([substate(m) for m in ns]))


def in_call_refer(h, srv, case, target, extra=()):
    a = Peer(srv.port)
    c = Caller(a, srv)
    r = c.call()
    h.ok(r and r.code == 200, "%s: A's call answered" % case,
         diag=r and r.start)
    refer_cseq = c.cseq
    r = c.req("REFER", [("Refer-To", "<%s>" % target),
                        ("Referred-By", "<sip:a@%s>" % LOCAL)] +
              list(extra))
    return a, c, r, refer_cseq


def case_blind(h, srv, code=200):
    case = "blind" if code == 200 else "fail"
    b = Peer(srv.port)
    a, c, r, cseq = in_call_refer(h, srv, case, b.uri(case))
    h.ok(r and r.code == 202, "%s: REFER -> 202" % case,
         diag=r and r.start)
    inv = answer_invite(h, b, code)
    if inv:
        h.ok("sip:a@" in (inv.header("Referred-By") or ""),
             "%s: the new INVITE carries Referred-By" % case,
             diag=inv.header("Referred-By"))
    final = "SIP/2.0 200 OK" if code == 200 else "SIP/2.0 486 Busy Here"
    ns = notifies(h, a, 3 if code == 200 else 3)
    check_progress(h, case, ns, cseq, final)
    h.ok(srv.wait_for({"ev": "state", "from": "Connected",
                       "to": "Referring"}, 3) and
         srv.wait_for({"ev": "state", "from": "Referring",
                       "to": "Connected"}, 3),
         "%s: the call went Connected -> Referring -> Connected" % case,
         server=srv)
    r = c.req("BYE")
    h.ok(r and r.code == 200, "%s: A's BYE -> 200" % case)
    srv.wait_for({"msg": "dialog_event", "call_id": c.callid,
                  "event": "Terminated"}, 3)
    names = [harness.parse_logfmt(l).get("event") for l in
             srv.find({"msg": "dialog_event", "call_id": c.callid})]
    h.ok(names == ["Answered", "Referred", "Terminated"],
         "%s: on_dialog_event: Answered, Referred, Terminated" % case,
         diag=repr(names))
    a.close()
    b.close()


def case_refuse(h, srv):
    a, c, r, _ = in_call_refer(h, srv, "refuse",
                               "sip:refuse@%s:9" % LOCAL)
    h.ok(r and r.code == 603, "refuse: REFER -> 603", diag=r and r.start)
    h.ok(a.recv_req("NOTIFY", 1.0) is None, "refuse: no NOTIFY")
    h.ok(not srv.find({"ev": "state", "to": "Referring"}),
         "refuse: the call never went Referring", server=srv)
    c.req("BYE")
    a.close()


def case_raise(h, srv):
    a, c, r, _ = in_call_refer(h, srv, "raise", "sip:raise@%s:9" % LOCAL)
    h.ok(r and r.code == 500, "raise: REFER -> 500", diag=r and r.start)
    h.ok(srv.wait_for({"ev": "hook_error", "hook": "on_incoming_refer"},
                      3) and srv.find(r"ev=hook_error .*script=\S*"
                                      r"transfer\.lua line=\d+"),
         "raise: hook_error names transfer.lua and the line", server=srv)
    r = c.req("BYE")
    h.ok(r and r.code == 200, "raise: the call goes on (BYE -> 200)")
    a.close()


def case_manual(h, srv):
    a, c, r, cseq = in_call_refer(h, srv, "manual",
                                  "sip:manual@%s:9" % LOCAL)
    h.ok(r and r.code == 202, "manual: REFER -> 202", diag=r and r.start)
    ns = notifies(h, a, 3)
    check_progress(h, "manual", ns, cseq, "SIP/2.0 200 OK")
    h.ok(srv.wait_for({"msg": "manual_done", "again": "nil"}, 3),
         "manual: a second notify_success is refused", server=srv)
    h.ok(a.recv_req("NOTIFY", 1.0) is None, "manual: no fourth NOTIFY")
    c.req("BYE")
    a.close()


def case_ood(h, srv):
    a = Peer(srv.port)
    ruri = "sip:transferee@%s:%d" % (LOCAL, srv.port)
    b = a.request("REFER", ruri, "ood1", "<%s>" % ruri,
                  "ood-%d@%s" % (a.port, LOCAL), 5,
                  [("Refer-To", "<sip:manual@%s:9>" % LOCAL)])
    r = a.recv_resp(b)
    h.ok(r and r.code == 202 and tag_of(r.header("To")),
         "ood: REFER out of dialog -> 202 with a To tag",
         diag=r and r.start)
    ns = notifies(h, a, 3)
    check_progress(h, "ood", ns, 5, "SIP/2.0 200 OK")
    if r and ns:
        h.ok(tag_of(ns[0].header("From")) == tag_of(r.header("To")) and
             tag_of(ns[0].header("To")) == "ood1",
             "ood: the NOTIFYs are in the REFER's dialog")
    h.ok(srv.find({"msg": "refer", "case": "manual", "in_call": "false"}),
         "ood: refer.call is nil", server=srv)
    a.close()


def case_replaces(h, srv):
    b = Peer(srv.port)
    target = b.uri("blind") + \
        "?Replaces=abc%40host%3Bto-tag%3Dt1%3Bfrom-tag%3Df1"
    a, c, r, _ = in_call_refer(h, srv, "replaces", target)
    h.ok(r and r.code == 202, "replaces: REFER -> 202")
    inv = answer_invite(h, b)
    h.ok(srv.find({"msg": "refer", "replaces": "abc@host", "to_tag": "t1",
                   "from_tag": "f1", "target": b.uri("blind")}),
         "replaces: the hook saw call_id, to_tag, from_tag and the "
         "target without ?headers", server=srv)
    h.ok(inv and (inv.header("Replaces") or "") ==
         "abc@host;to-tag=t1;from-tag=f1",
         "replaces: the INVITE to the target carries Replaces",
         diag=inv and inv.header("Replaces"))
    notifies(h, a, 3)
    c.req("BYE")
    a.close()
    b.close()


def case_norefersub(h, srv):
    a, c, r, _ = in_call_refer(h, srv, "manual", "sip:manual@%s:9" % LOCAL,
                               extra=[("Refer-Sub", "false")])
    h.ok(r and r.code == 202 and
         (r.header("Refer-Sub") or "").lower() == "false",
         "norefersub: 202 with Refer-Sub: false", diag=r and r.start)
    h.ok(a.recv_req("NOTIFY", 1.5) is None, "norefersub: no NOTIFY")
    c.req("BYE")
    a.close()



# ---------------------------------------------------------------------
# Outgoing REFER (sipstack transfers) and Replaces
# ---------------------------------------------------------------------

def trigger(h, srv, case, **hdrs):
    from harness import UdpClient
    cl = UdpClient(srv.port)
    extra = [("X-Case", case)] + [("X-" + k.replace("_", "-"), v)
                                  for k, v in sorted(hdrs.items())]
    r = cl.request("MESSAGE", extra=extra, body=b"go", ctype="text/plain")
    cl.close()
    h.ok(r and r.code == 202, "%s: MESSAGE -> 202" % case,
         diag=r and r.start)


def uas_answer(h, p, tag, what):
    """Peer p answers the next INVITE 200 (To tag) and takes the ACK."""
    inv = p.recv_req("INVITE", 5.0)
    h.ok(inv is not None, "%s: got sipstack's INVITE" % what)
    if not inv:
        return None
    p.reply(inv, 200, "OK", to_tag=tag,
            hdrs=[("Content-Type", "application/sdp")], body=OFFER)
    h.ok(p.recv_req("ACK", 3.0) is not None, "%s: got the ACK" % what)
    return inv


def uas_notify(p, inv, tag, cseq, event, state, frag):
    """A NOTIFY from the UAS side of inv's dialog (peer p, tag)."""
    b = p.request("NOTIFY", uri_of(inv.header("Contact")), tag,
                  inv.header("From"), inv.header("Call-ID"), cseq,
                  [("Event", event), ("Subscription-State", state),
                   ("Content-Type", "message/sipfrag;version=2.0")],
                  frag.encode() + b"\r\n", dst=inv.src)
    return p.recv_resp(b)


def case_out(h, srv, case):
    a = Peer(srv.port)
    c = Peer(srv.port) if case == "out-attended" else None
    target = "sip:target@%s:9" % LOCAL
    kw = {"call": a.uri("a"), "refer_to": target}
    if c:
        kw["call2"] = c.uri("c")
    trigger(h, srv, case, **kw)
    inv = uas_answer(h, a, "a1", "%s A" % case)
    cinv = uas_answer(h, c, "c1", "%s C" % case) if c else None
    if not inv:
        return
    ref = a.recv_req("REFER", 5.0)
    h.ok(ref is not None and tag_of(ref.header("To")) == "a1" and
         ref.header("Call-ID") == inv.header("Call-ID"),
         "%s: REFER in A's call" % case)
    if not ref:
        return
    rt = uri_of(ref.header("Refer-To"))
    h.ok("sip:a@" not in rt and ref.header("Referred-By"),
         "%s: Referred-By present" % case, diag=ref.header("Referred-By"))
    if cinv:
        import urllib.parse
        base, _, q = rt.partition("?")
        rep = urllib.parse.unquote(q.partition("Replaces=")[2])
        want = "%s;to-tag=c1;from-tag=%s" % (cinv.header("Call-ID"),
                                             tag_of(cinv.header("From")))
        h.ok(base == target and rep == want,
             "%s: Refer-To <target?Replaces=C's dialog> (to-tag C's, "
             "from-tag ours)" % case, diag="%r vs %r" % (rt, want))
    else:
        h.ok(rt == target, "%s: Refer-To <%s>" % (case, target), diag=rt)
    if case == "out-refused":
        a.reply(ref, 603, "Decline")
        h.ok(srv.wait_for({"msg": "referred", "case": case, "ok": "nil",
                           "err": "rejected", "code": "603"}, 3),
             "%s: call:refer -> nil, rejected, 603" % case, server=srv)
    else:
        a.reply(ref, 202, "Accepted")
        ev = "refer;id=%s" % ref.header("CSeq").split()[0]
        r1 = uas_notify(a, inv, "a1", 1, ev, "active;expires=60",
                        "SIP/2.0 100 Trying")
        h.ok(srv.wait_for({"msg": "referred", "case": case, "ok": "true",
                           "state": "Referring"}, 3),
             "%s: call:refer -> true once 202; the call is Referring"
             % case, server=srv)
        r2 = uas_notify(a, inv, "a1", 2, ev,
                        "terminated;reason=noresource", "SIP/2.0 200 OK")
        h.ok(r1 and r1.code == 200 and r2 and r2.code == 200,
             "%s: both NOTIFYs -> 200" % case)
        h.ok(srv.wait_for({"msg": "progress", "case": case,
                           "code": "100"}, 3) and
             srv.wait_for({"msg": "progress", "case": case,
                           "code": "200", "reason": "OK"}, 3),
             "%s: on_refer_progress(100), then (200, OK)" % case,
             server=srv)
        h.ok(srv.wait_for({"msg": "refer_final", "case": case,
                           "code": "200", "reason": "OK",
                           "state": "Connected"}, 3),
             "%s: wait_refer -> 200, OK; back to Connected" % case,
             server=srv)
    bye = a.recv_req("BYE", 5.0)
    h.ok(bye is not None, "%s: the script hangs up A" % case)
    if bye:
        a.reply(bye, 200, "OK")
    if c:
        cb = c.recv_req("BYE", 5.0)
        if cb:
            c.reply(cb, 200, "OK")
        c.close()
    a.close()


def case_in_replaces(h, srv, variant):
    case = "in-replaces" + ("" if variant == "ok" else "-" + variant)
    a = Peer(srv.port)
    ca = Caller(a, srv)
    r = ca.call()
    h.ok(r and r.code == 200, "%s: A's call answered" % case)
    if not r:
        return
    ours = tag_of(r.header("To"))
    b = Peer(srv.port)
    cid = ca.callid if variant != "481" else "nosuch@x"
    rep = "%s;to-tag=%s;from-tag=%s" % (cid, ours, ca.ftag)
    if variant == "486":
        rep += ";early-only"
    ruri = "sip:transferee@%s:%d" % (LOCAL, srv.port)
    br = b.request("INVITE", ruri, "b1", "<%s>" % ruri,
                   "rep-%d@%s" % (b.port, LOCAL), 1,
                   [("Replaces", rep), ("Require", "replaces"),
                    ("Content-Type", "application/sdp")], OFFER)
    resp = b.recv_resp(br)
    want = {"ok": 200, "481": 481, "486": 486}[variant]
    h.ok(resp and resp.code == want,
         "%s: INVITE with Replaces (Require: replaces) -> %d" %
         (case, want), diag=resp and resp.start)
    if variant == "ok" and resp:
        h.ok("replaces" in (resp.header("Supported") or ""),
             "%s: the 200 says Supported: replaces" % case,
             diag=resp.header("Supported"))
        allow = resp.header("Allow") or ""
        h.ok(all(m in allow for m in ("INVITE", "BYE", "PRACK", "UPDATE")),
             "%s: the 200's Allow names the in-dialog methods" % case,
             diag=allow)
        b.request("ACK", uri_of(resp.header("Contact")), "b1",
                  resp.header("To"), "rep-%d@%s" % (b.port, LOCAL), 1)
        bye = a.recv_req("BYE", 5.0)
        h.ok(bye is not None, "%s: the replaced call gets a BYE" % case)
        if bye:
            a.reply(bye, 200, "OK")
        h.ok(srv.wait_for({"msg": "replacing", "old": ca.callid,
                           "state": "Replacing", "ringing": "nil"}, 3),
             "%s: the hook saw call.replaces (Replacing; ringing "
             "refused)" % case, server=srv)
        h.ok(srv.wait_for({"msg": "ended", "call_id": ca.callid,
                           "reason": "replaced"}, 3),
             "%s: the old call ended as replaced" % case, server=srv)
    else:
        b.request("ACK", ruri, "b1", resp.header("To") if resp else "",
                  "rep-%d@%s" % (b.port, LOCAL), 1)
        ca.req("BYE")
    a.close()
    b.close()


def case_attended(h, srv):
    """Attended transfer end to end, three parties: A (the test) has a
    call with B and one with C, both sipstack (users transferee and
    target); A sends B a REFER whose Refer-To names C with Replaces of
    the A-C dialog; B's refer:transfer() calls C with Replaces; C
    matches the A-C call, answers the new one and BYEs A-C; A hears 200
    OK in the NOTIFYs and hangs up A-B."""
    case = "attended"
    a = Peer(srv.port)
    ab = Caller(a, srv)
    ab.callid = "ab-" + ab.callid
    ac = Caller(a, srv)
    ac.ruri = ac.target = "sip:target@%s:%d" % (LOCAL, srv.port)
    ac.to = "<%s>" % ac.ruri
    ac.callid = "ac-" + ac.callid
    ac.ftag = "ac%d" % a.port
    r1 = ab.call()
    r2 = ac.call()
    h.ok(r1 and r1.code == 200 and r2 and r2.code == 200,
         "attended: A's calls to B and to C answered")
    if not (r1 and r2):
        return
    import urllib.parse
    rep = "%s;to-tag=%s;from-tag=%s" % (ac.callid, tag_of(ac.to), ac.ftag)
    target = "sip:target@%s:%d?Replaces=%s" % (
        LOCAL, srv.port, urllib.parse.quote(rep, safe=""))
    cseq = ab.cseq
    r = ab.req("REFER", [("Refer-To", "<%s>" % target)])
    h.ok(r and r.code == 202, "attended: REFER with Replaces -> 202",
         diag=r and r.start)
    bye = a.recv_req("BYE", 5.0,
                     lambda m: m.header("Call-ID") == ac.callid)
    h.ok(bye is not None, "attended: C hangs up A-C once replaced")
    if bye:
        a.reply(bye, 200, "OK")
    ns = notifies(h, a, 3)
    check_progress(h, case, ns, cseq, "SIP/2.0 200 OK")
    h.ok(srv.wait_for({"msg": "replacing", "old": ac.callid,
                       "state": "Replacing"}, 3),
         "attended: C's new call replaces A-C (call.replaces)",
         server=srv)
    h.ok(srv.wait_for({"msg": "ended", "call_id": ac.callid,
                       "reason": "replaced"}, 3),
         "attended: A-C ended as replaced", server=srv)
    r = ab.req("BYE")
    h.ok(r and r.code == 200, "attended: A hangs up A-B")
    a.close()

CASES = {
    "blind": case_blind,
    "fail": lambda h, s: case_blind(h, s, 486),
    "refuse": case_refuse,
    "raise": case_raise,
    "manual": case_manual,
    "ood": case_ood,
    "replaces": case_replaces,
    "norefersub": case_norefersub,
    "out-blind": lambda h, s: case_out(h, s, "out-blind"),
    "out-refused": lambda h, s: case_out(h, s, "out-refused"),
    "out-attended": lambda h, s: case_out(h, s, "out-attended"),
    "in-replaces": lambda h, s: case_in_replaces(h, s, "ok"),
    "in-replaces-481": lambda h, s: case_in_replaces(h, s, "481"),
    "in-replaces-486": lambda h, s: case_in_replaces(h, s, "486"),
    "attended": case_attended,
}


def body(h, args):
    srv = h.server(SCRIPT)
    CASES[args.case](h, srv)
    h.ok(srv.alive(), "server alive after the case")
    h.stop_server(srv, errors=[{"ev": "hook_error"}]
                  if args.case == "raise" else False)


def extra(ap):
    ap.add_argument("--case", required=True, choices=sorted(CASES))


if __name__ == "__main__":
    harness.test_main(__doc__.splitlines()[0], body, extra_args=extra)
