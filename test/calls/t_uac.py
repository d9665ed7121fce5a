#!/usr/bin/env python3
"""Outgoing calls on the wire: sipstack (test/calls/caller.lua) calls
sipp running a uas-*.xml, one case per run (--case). A raw MESSAGE to
the server (X-Call-To: sipp) makes the script call sip.call() from a
sip.spawn task:

  answer    180, 200 with SDP: on_ringing(180), on_answered(body, ct)
            with sipp's SDP byte-exact, wait_answer() -> true; the ACK
            reaches sipp; call:hangup() 1 s later -> BYE, 200
  busy      486 -> on_rejected(486, "Busy Here"), wait_answer() -> nil,
            "rejected", 486; libre ACKs the 486
  redirect  302 -> on_rejected(302, "Moved Temporarily"), not followed
  decline   603 -> on_rejected(603, "Decline")
  cancel    call:cancel() from on_ringing: sipp sees the CANCEL, answers
            200 and 487, gets the ACK for the 487
  bye       sipp hangs up after the ACK: on_terminated("remote hangup")
  fork      two 200s with different To tags: the second is ACKed and
            BYEd at once, the first stays up until call:hangup()
  fork-keep the same, with call.on_fork set: the second fork is a call
            of its own (Connected), up until the script hangs it up
  fork-prack reliable 1xx from two forks: each PRACKed in its own early
            dialog (RFC 3262 4); the second fork answers, as fork-early
  fork-raise on_fork raises: the error names caller.lua and its line,
            the fork it was given is hung up at once, the call goes on
  fork-early a 180 from one fork, the 200 of another: the call goes on
            in the 200's dialog (ACK and BYE with its tag, to its Contact)
  glare-out call:hold() gets 491; sipstack owns the Call-ID, so the
            re-INVITE goes again after 2.1-4 s (RFC 3261 14.1), then 200
  early-bye the callee's BYE on the early dialog (RFC 3261 15 forbids
            it) gets 403; the call rings on until sipp's 486
  rtx       sipp sends its 200 again after the ACK: ACKed again, no
            second answer reported
  prack-183 a reliable 183 with SDP (RFC 3262): one PRACK (RAck) in the
            early dialog, also when the 183 comes again; the 200 has
            no SDP: on_answered gets the 183's; BYE 1 s later; then
            sip.stats() (MESSAGE "stats") gives dialogs=0 calls=0
"""
import os
import sys
import time

sys.dont_write_bytecode = True   # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import callslib as cl  # noqa: E402
from callslib import harness  # noqa: E402

SCRIPT = cl.here("caller.lua")

# caller.lua's OFFER, byte for byte
OFFER_SDP = (b"v=0\r\n"
             b"o=sipstack 7 7 IN IP4 127.0.0.1\r\n"
             b"s=sipstack caller \xe2\x9c\x93\r\n"
             b"c=IN IP4 127.0.0.1\r\n"
             b"t=0 0\r\n"
             b"m=audio 41000 RTP/AVP 8\r\n"
             b"a=rtpmap:8 PCMA/8000\r\n"
             b"a=sendrecv\r\n")

DIAL = ("Idle", "Calling", "Dial")
RINGING = ("Calling", "Ringing", "Ringing")
ACK = ("Connected", "Connected", "Ack")
BYE = ("Connected", "Ending", "Bye")
BYE_RESP = ("Ending", "Ended", "ByeResponse")

# case: scenario, trigger headers, how long the whole exchange may take
CASES = {
    "answer": ("uas-answer.xml", {"X-Hangup-After": "1"}),
    "busy": ("uas-busy-486.xml", {}),
    "redirect": ("uas-redirect-302.xml", {}),
    "decline": ("uas-decline-603.xml", {}),
    "cancel": ("uas-cancel.xml", {"X-Cancel-On-Ringing": "1"}),
    "bye": ("uas-bye.xml", {}),
    "fork": ("uas-fork.xml", {"X-Hangup-After": "1.5"}),
    "fork-keep": ("uas-fork-keep.xml", {"X-Hangup-After": "2",
                                        "X-Keep-Fork": "0.8"}),
    "fork-early": ("uas-fork-early.xml", {"X-Hangup-After": "1"}),
    "fork-prack": ("uas-fork-prack.xml", {"X-Hangup-After": "1"}),
    "fork-raise": ("uas-fork.xml", {"X-Hangup-After": "1.5",
                                    "X-Keep-Fork": "0.8",
                                    "X-Fork-Raise": "1"}),
    "early-bye": ("uas-early-bye-out.xml", {}),
    "glare-out": ("uas-glare-out.xml", {"X-Hold-After": "0.3",
                                        "X-Hangup-After": "0.5"}),
    "rtx": ("uas-200-rtx.xml", {"X-Hangup-After": "1.5"}),
    "prack-183": ("uas-prack-183.xml", {"X-Hangup-After": "1"}),
    "update-crossing": ("uas-update-crossing.xml", {"X-Hangup-After": "1"}),
}


def place_call(h, case):
    """sipp as UAS, the server, the trigger; waits for sipp's end.
    Returns (srv, sipp, messages, callid, target URI)."""
    scenario, hdrs = CASES[case]
    uas = h.sipp(cl.here(scenario), calls=1, timeout=15)
    if not h.ok(uas.wait_listening(), "%s: sipp UAS (%s) listens on %d" %
                (case, scenario, uas.port), sipp=uas):
        raise harness.Abort("sipp did not start")
    srv = h.server(SCRIPT)
    to = "sip:%s@127.0.0.1:%d" % (case, uas.port)
    udp = harness.UdpClient(srv.port)
    extra = [("X-Call-To", to), ("X-Case", case)] + sorted(hdrs.items())
    r = udp.request("MESSAGE", extra=extra)
    udp.close()
    h.ok(r is not None and r.code == 202, "%s: the trigger MESSAGE is "
         "answered 202" % case, diag="got %r" % r)
    h.sipp_ok(uas, "%s: sipp %s completed the call" % (case, scenario))
    msgs = cl.sipp_messages(uas)
    h.note("%s flow (-> sent by sipp):\n%s" % (case, cl.flow(msgs)))
    inv = cl.pick(msgs, "received", method="INVITE")
    callid = inv[0].header("Call-ID") if inv else None
    if not h.ok(callid, "%s: sipp received the INVITE" % case,
                diag=cl.flow(msgs)):
        raise harness.Abort("no INVITE reached sipp")
    return srv, uas, msgs, callid, to


def check_invite(h, srv, msgs, callid, to, case):
    inv = cl.pick(msgs, "received", method="INVITE")
    h.ok(len(inv) == 1, "%s: one INVITE (no retransmission, no second "
         "attempt)" % case, diag=cl.flow(msgs))
    i = inv[0]
    h.ok(i.uri() == to, "%s: the INVITE goes to %s" % (case, to),
         diag="got %s" % i.start)
    h.ok(i.body == OFFER_SDP and
         i.header("Content-Type") == "application/sdp",
         "%s: the INVITE carries the script's offer byte-exact (%d bytes, "
         "application/sdp)" % (case, len(OFFER_SDP)),
         diag="got %r (%r)" % (i.body, i.header("Content-Type")))
    h.ok(i.tag("From") and not i.tag("To") and i.header("Contact"),
         "%s: the INVITE has a From tag, no To tag, a Contact" % case,
         diag="From %r To %r Contact %r" % (i.header("From"),
                                           i.header("To"),
                                           i.header("Contact")))
    rec = cl.wait_script(srv, "placed", case, 2.0)
    h.ok(rec.get("direction") == "outgoing" and rec.get("state") ==
         "Calling" and rec.get("to_uri") == to and
         rec.get("call_id") == callid,
         "%s: sip.call() returned an outgoing call in state Calling, "
         "call.to=%s, call.id=the Call-ID" % (case, to), diag="got %r" % rec)
    out = srv.find({"mod": "call", "ev": "outgoing"})
    h.ok(len(out) == 1, "%s: one mod=call ev=outgoing line" % case,
         diag="\n".join(out))
    return i


def check_ack_2xx(h, msgs, ok, inv, case, what="the 200"):
    """An ACK for the 2xx ok: new transaction, to the Contact of ok, its
    To tag, the INVITE's CSeq number. Returns the ACKs for that tag."""
    tag = ok.tag("To")
    acks = [m for m in cl.pick(msgs, "received", method="ACK")
            if m.tag("To") == tag]
    if not h.ok(acks, "%s: sipp received an ACK for %s (To tag %s)" %
                (case, what, tag), diag=cl.flow(msgs)):
        return []
    a = acks[0]
    contact = ok.header("Contact").strip("<>")
    h.ok(a.uri() == contact and a.cseq == (inv.cseq[0], "ACK") and
         a.branch() != inv.branch() and a.header("Call-ID") ==
         inv.header("Call-ID") and a.tag("From") == inv.tag("From"),
         "%s: the ACK for %s goes to its Contact (%s), CSeq %d ACK, a new "
         "branch (RFC 3261 13.2.2.4)" % (case, what, contact, inv.cseq[0]),
         diag="%s / CSeq %s / branch %s (INVITE's %s)" % (
             a.start, a.header("CSeq"), a.branch(), inv.branch()))
    return acks


def check_answered_bye(h, srv, msgs, ok, inv, case):
    """call:wait_answer() returned true, the 2xx ok was ACKed and sipp
    got one BYE. Returns (the ACKs, the BYE or None)."""
    rec = cl.wait_script(srv, "waited", case, 2.0)
    h.ok(rec.get("ok") == "true", "%s: call:wait_answer() returned true" %
         case, diag="got %r" % rec)
    acks = check_ack_2xx(h, msgs, ok, inv, case)
    bye = cl.pick(msgs, "received", method="BYE")
    if h.ok(len(bye) == 1 and acks, "%s: sipp received one BYE" % case,
            diag=cl.flow(msgs)):
        return acks, bye[0]
    return acks, None


def check_ack_non2xx(h, msgs, inv, final, case):
    acks = cl.pick(msgs, "received", method="ACK")
    if h.ok(len(acks) == 1, "%s: sipp received one ACK for the %d" %
            (case, final.code), diag=cl.flow(msgs)):
        a = acks[0]
        h.ok(a.branch() == inv.branch() and a.uri() == inv.uri() and
             a.cseq == (inv.cseq[0], "ACK") and
             a.tag("To") == final.tag("To"),
             "%s: the ACK is the INVITE transaction's (same branch and "
             "Request-URI, To tag of the %d; RFC 3261 17.1.1.3)" %
             (case, final.code),
             diag="%s branch %s To %s" % (a.start, a.branch(),
                                          a.header("To")))


def case_answer(h, a):
    case = "answer"
    srv, uas, msgs, callid, to = place_call(h, case)
    inv = check_invite(h, srv, msgs, callid, to, case)
    ok = cl.pick(msgs, "sent", code=200, cseq_method="INVITE")[0]

    rec = cl.wait_script(srv, "ringing", case, 2.0)
    h.ok(rec.get("code") == "180" and rec.get("state") == "Ringing",
         "%s: call.on_ringing(180), state Ringing" % case,
         diag="got %r" % rec)
    rec = cl.wait_script(srv, "answered", case, 2.0)
    h.ok(rec.get("body_hex") == ok.body.hex() and
         rec.get("bytes") == str(len(ok.body)),
         "%s: call.on_answered got sipp's SDP byte-exact (%d bytes, UTF-8 "
         "in s=)" % (case, len(ok.body)),
         diag="expected %s\ngot      %s" % (ok.body.hex(),
                                           rec.get("body_hex")))
    h.ok(rec.get("ctype") == "application/sdp" and
         rec.get("state") == "Connected" and rec.get("answered") == "true",
         "%s: ... with content type application/sdp; state Connected, "
         "is_answered()" % case, diag="got %r" % rec)
    acks, b = check_answered_bye(h, srv, msgs, ok, inv, case)
    if b:
        h.ok(b.uri() == ok.header("Contact").strip("<>") and
             b.tag("To") == ok.tag("To") and b.tag("From") == inv.tag("From")
             and b.cseq[0] > inv.cseq[0],
             "%s: the BYE is in the dialog (Contact of the 200, tags, "
             "CSeq above the INVITE's)" % case,
             diag="%s To %s CSeq %s" % (b.start, b.header("To"),
                                       b.header("CSeq")))
        dt = b.t - acks[0].t
        h.ok(0.9 <= dt <= 2.5, "%s: the BYE came after the script's "
             "sip.sleep(1) (%.2f s after the ACK)" % (case, dt))
    rec = cl.wait_script(srv, "hangup", case, 2.0)
    h.ok(rec.get("ok") == "true", "%s: call:hangup() returned true" % case,
         diag="got %r" % rec)
    cl.check_call_log(h, srv, callid,
                      [DIAL, RINGING, ("Ringing", "Connected", "Answer"),
                       ACK, BYE, BYE_RESP], "hangup", case)
    h.stop_server(srv)


def case_rejected(h, a, case, code, reason):
    srv, uas, msgs, callid, to = place_call(h, case)
    inv = check_invite(h, srv, msgs, callid, to, case)
    final = cl.pick(msgs, "sent", code=code)[0]
    check_ack_non2xx(h, msgs, inv, final, case)
    rec = cl.wait_script(srv, "rejected", case, 2.0)
    h.ok(rec.get("code") == str(code) and rec.get("reason") == reason,
         "%s: call.on_rejected(%d, %r)" % (case, code, reason),
         diag="got %r" % rec)
    rec = cl.wait_script(srv, "waited", case, 2.0)
    h.ok(rec.get("ok") == "nil" and rec.get("err") == "rejected" and
         rec.get("code") == str(code),
         "%s: call:wait_answer() returned nil, \"rejected\", %d" %
         (case, code), diag="got %r" % rec)
    if code == 302:
        time.sleep(0.5)
        h.ok(len(srv.find({"mod": "call", "ev": "outgoing"})) == 1 and
             len(cl.pick(cl.sipp_messages(uas), "received",
                         method="INVITE")) == 1,
             "%s: the redirection is reported, not followed" % case)
    cl.check_call_log(h, srv, callid, [DIAL, ("Calling", "Ended", "Reject")],
                      "rejected", case)
    h.stop_server(srv)


def case_cancel(h, a):
    case = "cancel"
    srv, uas, msgs, callid, to = place_call(h, case)
    inv = check_invite(h, srv, msgs, callid, to, case)
    cancel = cl.pick(msgs, "received", method="CANCEL")
    if h.ok(len(cancel) == 1, "%s: sipp received one CANCEL" % case,
            diag=cl.flow(msgs)):
        c = cancel[0]
        ring = cl.pick(msgs, "sent", code=180)[0]
        h.ok(c.branch() == inv.branch() and c.uri() == inv.uri() and
             c.cseq == (inv.cseq[0], "CANCEL") and not c.tag("To") and
             c.tag("From") == inv.tag("From") and
             c.header("Call-ID") == callid,
             "%s: the CANCEL matches the INVITE (branch, Request-URI, "
             "CSeq number, From, Call-ID; no To tag; RFC 3261 9.1)" % case,
             diag="%s branch %s CSeq %s To %s" % (
                 c.start, c.branch(), c.header("CSeq"), c.header("To")))
        h.ok(c.t >= ring.t, "%s: the CANCEL came after the 180" % case)
    r487 = cl.pick(msgs, "sent", code=487)
    if r487:
        check_ack_non2xx(h, msgs, inv, r487[0], case)
    rec = cl.wait_script(srv, "cancel", case, 2.0)
    h.ok(rec.get("ok") == "true", "%s: call:cancel() in on_ringing "
         "returned true" % case, diag="got %r" % rec)
    rec = cl.wait_script(srv, "waited", case, 2.0)
    h.ok(rec.get("ok") == "nil" and (
        (rec.get("err") == "rejected" and rec.get("code") == "487") or
        rec.get("err") == "cancelled"),
        "%s: call:wait_answer() returned nil (err=%s code=%s)" %
        (case, rec.get("err"), rec.get("code")), diag="got %r" % rec)
    cl.check_call_log(h, srv, callid,
                      [DIAL, RINGING, ("Ringing", "Ending", "Cancel"),
                       ("Ending", "Ended", "Reject")], "cancelled", case)
    h.stop_server(srv)


def case_bye(h, a):
    case = "bye"
    srv, uas, msgs, callid, to = place_call(h, case)
    inv = check_invite(h, srv, msgs, callid, to, case)
    ok = cl.pick(msgs, "sent", code=200, cseq_method="INVITE")[0]
    check_ack_2xx(h, msgs, ok, inv, case)
    res = cl.pick(msgs, "received", code=200, cseq_method="BYE")
    h.ok(len(res) == 1, "%s: sipstack answered sipp's BYE 200" % case,
         diag=cl.flow(msgs))
    rec = cl.wait_script(srv, "terminated", case, 2.0)
    h.ok(rec.get("reason") == "remote hangup",
         "%s: call.on_terminated(\"remote hangup\")" % case,
         diag="got %r" % rec)
    cl.check_call_log(h, srv, callid,
                      [DIAL, ("Calling", "Connected", "Answer"), ACK,
                       ("Connected", "Ended", "RemoteBye")],
                      "remote hangup", case)
    h.stop_server(srv)


FORK_UP = [DIAL, ("Calling", "Connected", "Answer"), ACK]


def case_fork(h, a, keep, raise_=False):
    """RFC 3261 13.2.2.4: two 200s with different To tags. The first
    answers the call; the second is a call of its own, ACKed, and BYEd
    at once (keep False) or, with call.on_fork set (keep True), up
    until the script hangs it up after 0.8 s. raise_: on_fork raises,
    the fork is hung up at once (reason "script error")."""
    case = "fork-raise" if raise_ else "fork-keep" if keep else "fork"
    srv, uas, msgs, callid, to = place_call(h, case)
    inv = check_invite(h, srv, msgs, callid, to, case)
    oks = cl.pick(msgs, "sent", code=200, cseq_method="INVITE")
    if not h.ok(len(oks) == 2 and oks[0].tag("To") != oks[1].tag("To"),
                "%s: sipp answered twice, two To tags" % case):
        raise harness.Abort("the scenario did not run")
    first, second = oks
    tag2 = second.tag("To")
    a1 = check_ack_2xx(h, msgs, first, inv, case, "the first 200")
    a2 = check_ack_2xx(h, msgs, second, inv, case, "the second fork's 200")
    byes = cl.pick(msgs, "received", method="BYE")
    b1 = [b for b in byes if b.tag("To") == first.tag("To")]
    b2 = [b for b in byes if b.tag("To") == tag2]
    # (lo, hi): seconds from the ACK to the BYE, of the fork and the call
    fork_up, call_up = ((0.6, 2.0), (1.8, 3.5)) if keep and not raise_ \
        else ((0.0, 0.5), (1.3, 3.0))
    if h.ok(len(b2) == 1 and a2, "%s: the second fork got one BYE" % case,
            diag=cl.flow(msgs)):
        dt = b2[0].t - a2[0].t
        h.ok(b2[0].uri() == second.header("Contact").strip("<>") and
             fork_up[0] <= dt <= fork_up[1] and b2[0].cseq[0] > inv.cseq[0],
             "%s: ... to its Contact, %.2f s after its ACK (%s), CSeq above "
             "the INVITE's" % (case, dt, "up until the script's "
                               "fork:hangup() after 0.8 s"
                               if keep and not raise_ else "at once"),
             diag=b2[0].start)
    if h.ok(len(b1) == 1 and a1 and b2, "%s: the first call got one BYE, "
            "after the fork's" % case, diag=cl.flow(msgs)):
        dt = b1[0].t - a1[0].t
        h.ok(b1[0].uri() == first.header("Contact").strip("<>") and
             call_up[0] <= dt <= call_up[1] and b1[0].t > b2[0].t,
             "%s: ... to its Contact, %.2f s after its ACK (up until "
             "call:hangup())" % (case, dt), diag=b1[0].start)
    drop = srv.find({"mod": "call", "ev": "fork_dropped", "callid": callid})
    if keep:
        h.ok(not drop, "%s: no fork was dropped" % case)
        fk = cl.wait_script(srv, "fork", case, 2.0)
        h.ok(fk.get("body_hex") == second.body.hex() and
             fk.get("ctype") == "application/sdp" and
             fk.get("state") == "Connected" and
             fk.get("direction") == "outgoing" and
             fk.get("answered") == "true" and fk.get("same") == "false" and
             fk.get("call_id") == callid,
             "%s: call.on_fork got a new call object (same Call-ID, "
             "outgoing, Connected, answered) with the second fork's SDP" %
             case, diag="got %r" % fk)
        reason = "script error" if raise_ else "hangup"
        rec = cl.wait_script(srv, "fork_terminated", case, 3.0)
        h.ok(rec.get("reason") == reason and rec.get("state") == "Ended",
             "%s: the fork's on_terminated(%r)" % (case, reason),
             diag="got %r" % rec)
    else:
        h.ok(len(drop) == 1 and
             harness.parse_logfmt(drop[0]).get("to_tag") == tag2,
             "%s: mod=call ev=fork_dropped to_tag=%s" % (case, tag2),
             diag="\n".join(drop))
    if raise_:
        line = srv.wait_for({"ev": "hook_error"}, 2.0)
        rec = harness.parse_logfmt(line) if line else {}
        want = harness.marker_line(SCRIPT, "LINE:fork-raise")
        h.ok(rec.get("lvl") == "error" and rec.get("script") == SCRIPT and
             rec.get("line") == str(want) and rec.get("callid") == callid
             and "boom: on_fork raised" in rec.get("err", ""),
             "%s: lvl=error ev=hook_error names caller.lua line %d and the "
             "call" % (case, want), diag="line: %s" % line)
        h.ok(not cl.script_lines(srv, "fork_hangup", case),
             "%s: the script never reached its fork:hangup()" % case)
    reason = "script error" if raise_ else "hangup" if keep else \
        "fork dropped"
    h.ok(cl.transitions(srv, callid, fork=tag2) ==
         FORK_UP + [BYE, BYE_RESP] and
         cl.ended(srv, callid, fork=tag2) == [reason],
         "%s: the fork's call: %s; ended once, %r (log lines fork=%s)" %
         (case, cl.fmt_tr(FORK_UP + [BYE, BYE_RESP]), reason, tag2),
         diag=cl.fmt_tr(cl.transitions(srv, callid, fork=tag2)))
    ans = cl.script_lines(srv, "answered", case)
    h.ok(len(ans) == 1 and ans[0].get("body_hex") == first.body.hex(),
         "%s: call.on_answered ran once, with the first fork's SDP" % case,
         diag="got %r" % ans)
    cl.check_call_log(h, srv, callid,
                      [DIAL, ("Calling", "Connected", "Answer"), ACK, BYE,
                       BYE_RESP], "hangup", case)
    cl.check_tables(h, srv, case)
    h.stop_server(srv, errors=[{"ev": "hook_error"}] if raise_ else [])


def case_fork_early(h, a, prack=False):
    """A 180 from one fork (an early dialog), then the 200 of another:
    the call is answered in the 200's dialog (RFC 3261 13.2.2.4).
    prack: both forks send reliable 1xx (183 RSeq 1, then 180 RSeq 7 from
    the one that answers): each is PRACKed in its own dialog (RFC 3262
    4)."""
    case = "fork-prack" if prack else "fork-early"
    srv, uas, msgs, callid, to = place_call(h, case)
    inv = check_invite(h, srv, msgs, callid, to, case)
    ring = [m for m in cl.pick(msgs, "sent") if m.code in (180, 183)]
    oks = cl.pick(msgs, "sent", code=200, cseq_method="INVITE")
    if not h.ok(len(oks) == 1 and len(ring) == (2 if prack else 1) and
                ring[0].tag("To") != oks[0].tag("To"),
                "%s: sipp sent %s and a 200 with another To tag" %
                (case, "a 183, a 180" if prack else "a 180")):
        raise harness.Abort("the scenario did not run")
    ok = oks[0]
    if prack:
        pr = cl.pick(msgs, "received", method="PRACK")
        if h.ok(len(pr) == 2, "%s: two PRACKs, one per fork" % case,
                diag=cl.flow(msgs)):
            for p, r, rseq in zip(pr, ring, (1, 7)):
                contact = r.header("Contact").strip("<>")
                h.ok(p.tag("To") == r.tag("To") and p.uri() == contact and
                     p.header("RAck") == "%d %d INVITE" % (rseq,
                                                           inv.cseq[0]) and
                     p.tag("From") == inv.tag("From") and
                     p.cseq[0] > inv.cseq[0],
                     "%s: the %d's PRACK is in its fork's early dialog "
                     "(To tag %s, to %s, RAck: %d %d INVITE)" %
                     (case, r.code, r.tag("To"), contact, rseq,
                      inv.cseq[0]),
                     diag="%s To %s RAck %s" % (p.start, p.header("To"),
                                                p.header("RAck")))
    acks = check_ack_2xx(h, msgs, ok, inv, case, "the 200 of fork 2")
    h.ok(all(m.tag("To") == ok.tag("To") for m in
             cl.pick(msgs, "received", method="ACK")),
         "%s: no ACK for the ringing fork's tag" % case, diag=cl.flow(msgs))
    bye = cl.pick(msgs, "received", method="BYE")
    if h.ok(len(bye) == 1 and acks, "%s: sipp received one BYE" % case,
            diag=cl.flow(msgs)):
        b = bye[0]
        h.ok(b.uri() == ok.header("Contact").strip("<>") and
             b.tag("To") == ok.tag("To"),
             "%s: the BYE is in the answering fork's dialog (its tag, to "
             "its Contact %s)" % (case, ok.header("Contact").strip("<>")),
             diag="%s To %s" % (b.start, b.header("To")))
    rec = cl.wait_script(srv, "answered", case, 2.0)
    h.ok(rec.get("body_hex") == ok.body.hex() and
         rec.get("state") == "Connected",
         "%s: call.on_answered got the answering fork's SDP" % case,
         diag="got %r" % rec)
    ad = srv.find({"mod": "call", "ev": "fork_adopted", "callid": callid})
    h.ok(len(ad) == 1 and harness.parse_logfmt(ad[0]).get("to_tag") ==
         ok.tag("To") and harness.parse_logfmt(ad[0]).get("early_tag") ==
         ring[0].tag("To"), "%s: mod=call ev=fork_adopted early_tag=%s "
         "to_tag=%s" % (case, ring[0].tag("To"), ok.tag("To")),
         diag="\n".join(ad))
    # the second fork's 180 is a self-loop of Ringing
    cl.check_call_log(h, srv, callid,
                      [DIAL, RINGING] +
                      [("Ringing", "Ringing", "Ringing")] * prack +
                      [("Ringing", "Connected", "Answer"), ACK, BYE,
                       BYE_RESP], "hangup", case)
    cl.check_tables(h, srv, case)
    h.stop_server(srv)


def case_early_bye(h, a):
    """RFC 3261 15: the callee MUST NOT send a BYE on an early dialog.
    The caller refuses it (403) and the dialog stays early: the INVITE's
    final response (486) still ends the call as a rejection."""
    case = "early-bye"
    srv, uas, msgs, callid, to = place_call(h, case)
    inv = check_invite(h, srv, msgs, callid, to, case)
    r403 = cl.pick(msgs, "received", code=403, cseq_method="BYE")
    h.ok(len(r403) >= 1 and
         not cl.pick(msgs, "received", code=200, cseq_method="BYE"),
         "%s: the early BYE was answered 403, never 200" % case,
         diag=cl.flow(msgs))
    final = cl.pick(msgs, "sent", code=486)[0]
    check_ack_non2xx(h, msgs, inv, final, case)
    h.ok(not cl.pick(msgs, "received", method="CANCEL") and
         not cl.pick(msgs, "received", method="BYE"),
         "%s: sipstack sent no CANCEL and no BYE" % case, diag=cl.flow(msgs))
    rec = cl.wait_script(srv, "rejected", case, 2.0)
    h.ok(rec.get("code") == "486", "%s: call.on_rejected(486) after the "
         "refused BYE" % case, diag="got %r" % rec)
    h.ok(len(srv.find({"mod": "call", "ev": "early_bye_refused",
                       "callid": callid})) >= 1,
         "%s: mod=call ev=early_bye_refused logged" % case)
    cl.check_call_log(h, srv, callid,
                      [DIAL, RINGING, ("Ringing", "Ended", "Reject")],
                      "rejected", case)
    cl.check_tables(h, srv, case)
    h.stop_server(srv)


def sdp_dir(body):
    for d in (b"sendrecv", b"sendonly", b"recvonly", b"inactive"):
        if b"a=" + d in body:
            return d.decode()
    return None


def case_glare_out(h, a):
    """RFC 3261 14.1 on a call we placed: our re-INVITE gets 491; we own
    the Call-ID, so it goes again as a new request after 2.1-4 s."""
    case = "glare-out"
    srv, uas, msgs, callid, to = place_call(h, case)
    # the re-INVITEs (in the dialog: To tag) are checked below
    inv = check_invite(h, srv, [m for m in msgs if m.method != "INVITE" or
                                not m.tag("To")], callid, to, case)
    invs = cl.pick(msgs, "received", method="INVITE")
    s491 = cl.pick(msgs, "sent", code=491)
    if not h.ok(len(invs) == 3 and len(s491) == 1,
                "%s: the INVITE and two re-INVITEs reached sipp, one 491" %
                case, diag=cl.flow(msgs)):
        raise harness.Abort("the scenario did not run")
    r1, r2 = invs[1:]
    h.ok(sdp_dir(r1.body) == "sendonly" and r1.tag("To") and
         r1.cseq[0] > inv.cseq[0],
         "%s: the first re-INVITE is the script's hold (a=sendonly, in "
         "the dialog)" % case, diag=r1.body.decode("utf-8", "replace"))
    ack = [m for m in cl.pick(msgs, "received", method="ACK")
           if m.cseq == (r1.cseq[0], "ACK")]
    h.ok(len(ack) == 1 and ack[0].branch() == r1.branch(),
         "%s: the 491 was ACKed in the re-INVITE's transaction" % case,
         diag=cl.flow(msgs))
    h.ok(r2.cseq[0] > r1.cseq[0] and r2.branch() != r1.branch() and
         r2.body == r1.body and r2.tag("To") == r1.tag("To"),
         "%s: the re-INVITE again as a new request (CSeq %d > %d, new "
         "branch), the same offer" % (case, r2.cseq[0], r1.cseq[0]),
         diag="R1 %s / R2 %s" % (r1.header("CSeq"), r2.header("CSeq")))
    dt = r2.t - s491[0].t
    h.ok(2.05 <= dt <= 4.3, "%s: ... %.2f s after the 491: 2.1-4 s, "
         "sipstack owns the Call-ID (RFC 3261 14.1)" % (case, dt))
    line = srv.find({"mod": "call", "ev": "glare", "callid": callid})
    ms = harness.parse_logfmt(line[0]).get("retry_ms", "") if line else ""
    h.ok(len(line) == 1 and ms.isdigit() and 2100 <= int(ms) <= 4000 and
         int(ms) % 10 == 0 and abs(dt - int(ms) / 1000.0) < 0.15,
         "%s: one mod=call ev=glare retry_ms=%s (2100-4000, in units of "
         "10 ms, the delay measured)" % (case, ms), diag="\n".join(line))
    rec = cl.wait_script(srv, "hold", case, 3.0)
    h.ok(rec.get("ok") == "true" and rec.get("code") == "200" and
         rec.get("state") == "Hold",
         "%s: call:hold() returned true, 200 after the retry; state Hold" %
         case, diag="got %r" % rec)
    h.ok(len(cl.pick(msgs, "received", method="BYE")) == 1,
         "%s: then one BYE" % case, diag=cl.flow(msgs))
    cl.check_call_log(h, srv, callid,
                      [DIAL, ("Calling", "Connected", "Answer"), ACK,
                       ("Connected", "Hold", "Hold"), ("Hold", "Ending", "Bye"),
                       BYE_RESP], "hangup", case)
    cl.check_tables(h, srv, case)
    h.stop_server(srv)


def case_rtx(h, a):
    case = "rtx"
    srv, uas, msgs, callid, to = place_call(h, case)
    inv = check_invite(h, srv, msgs, callid, to, case)
    oks = cl.pick(msgs, "sent", code=200, cseq_method="INVITE")
    h.ok(len(oks) == 2 and oks[0].raw == oks[1].raw,
         "%s: sipp sent the same 200 twice" % case, diag=cl.flow(msgs))
    acks = check_ack_2xx(h, msgs, oks[0], inv, case)
    if h.ok(len(acks) == 2, "%s: sipstack ACKed each copy of the 200 "
            "(%d ACKs; RFC 3261 13.2.2.4)" % (case, len(acks)),
            diag=cl.flow(msgs)):
        h.ok(acks[1].t >= oks[1].t and acks[1].uri() == acks[0].uri() and
             acks[1].cseq == acks[0].cseq,
             "%s: the second ACK answers the second 200, same target and "
             "CSeq" % case)
    h.ok(len(cl.script_lines(srv, "answered", case)) == 1,
         "%s: call.on_answered ran once" % case)
    cl.check_call_log(h, srv, callid,
                      [DIAL, ("Calling", "Connected", "Answer"), ACK, BYE,
                       BYE_RESP], "hangup", case)
    h.stop_server(srv)


def case_prack_183(h, a):
    case = "prack-183"
    srv, uas, msgs, callid, to = place_call(h, case)
    inv = check_invite(h, srv, msgs, callid, to, case)
    h.ok("100rel" in [t.strip() for t in
                      (inv.header("Supported") or "").split(",")],
         "%s: the INVITE has Supported: 100rel" % case,
         diag="Supported: %r" % inv.header("Supported"))
    r183 = cl.pick(msgs, "sent", code=183)
    prack = cl.pick(msgs, "received", method="PRACK")
    ok = cl.pick(msgs, "sent", code=200, cseq_method="INVITE")
    if not h.ok(len(r183) == 2 and len(ok) == 1,
                "%s: sipp sent its 183 twice, then the 200" % case,
                diag=cl.flow(msgs)):
        raise harness.Abort("the scenario did not run")
    first, ok = r183[0], ok[0]
    if h.ok(len(prack) == 1, "%s: sipstack sent one PRACK (the second "
            "copy of the 183 is not PRACKed again; RFC 3262 4)" % case,
            diag=cl.flow(msgs)):
        p = prack[0]
        contact = first.header("Contact").strip("<>")
        h.ok(p.header("RAck") == "1 %d INVITE" % inv.cseq[0],
             "%s: RAck: 1 %d INVITE (the RSeq, the INVITE's CSeq; RFC 3262 "
             "7.2)" % (case, inv.cseq[0]), diag="RAck: %r" % p.header("RAck"))
        h.ok(p.uri() == contact and p.tag("To") == first.tag("To") and
             p.tag("From") == inv.tag("From") and
             p.header("Call-ID") == callid and p.cseq[1] == "PRACK" and
             p.cseq[0] > inv.cseq[0] and p.branch() != inv.branch(),
             "%s: the PRACK is in the early dialog: to the 183's Contact, "
             "its To tag, CSeq above the INVITE's, a new branch" % case,
             diag="%s To %s CSeq %s" % (p.start, p.header("To"),
                                       p.header("CSeq")))
        h.ok(first.t <= p.t <= r183[1].t,
             "%s: the PRACK answered the first copy at once" % case)
    h.ok(not srv.find({"ev": "prack_failed"}),
         "%s: no ev=prack_failed (sipp answered it 200)" % case)

    rec = cl.wait_script(srv, "ringing", case, 2.0)
    h.ok(rec.get("code") == "183" and rec.get("state") == "Ringing",
         "%s: call.on_ringing(183), state Ringing" % case,
         diag="got %r" % rec)
    h.ok(len(cl.script_lines(srv, "ringing", case)) == 1,
         "%s: on_ringing ran once (not for the second copy)" % case)
    rec = cl.wait_script(srv, "answered", case, 2.0)
    h.ok(rec.get("body_hex") == first.body.hex() and
         rec.get("ctype") == "application/sdp" and
         rec.get("state") == "Connected",
         "%s: call.on_answered got the SDP of the reliable 183 byte-exact "
         "(the 200 had none), application/sdp" % case,
         diag="expected %s\ngot      %r" % (first.body.hex(), rec))
    acks, b = check_answered_bye(h, srv, msgs, ok, inv, case)
    if b:
        h.ok(b.uri() == ok.header("Contact").strip("<>") and
             b.tag("To") == ok.tag("To") and prack and
             b.cseq[0] > prack[0].cseq[0],
             "%s: the BYE is in the dialog, CSeq above the PRACK's" % case,
             diag="%s To %s CSeq %s" % (b.start, b.header("To"),
                                       b.header("CSeq")))
    cl.check_call_log(h, srv, callid,
                      [DIAL, RINGING, ("Ringing", "Connected", "Answer"),
                       ACK, BYE, BYE_RESP], "hangup", case)
    cl.check_tables(h, srv, case)
    h.stop_server(srv)


def case_update_crossing(h, a):
    """RFC 3311 5.2: the callee's UPDATE offer in the early dialog while
    our INVITE's offer is unanswered gets 491; the call goes on."""
    case = "update-crossing"
    srv, uas, msgs, callid, to = place_call(h, case)
    check_invite(h, srv, msgs, callid, to, case)
    upd = cl.pick(msgs, "sent", method="UPDATE")
    r491 = cl.pick(msgs, "received", code=491, cseq_method="UPDATE")
    h.ok(len(upd) >= 1 and len(r491) >= 1 and
         not cl.pick(msgs, "received", code=200, cseq_method="UPDATE"),
         "%s: sipstack answered the crossing UPDATE offer 491, not 200" %
         case, diag=cl.flow(msgs))
    rec = cl.wait_script(srv, "answered", case, 3.0)
    h.ok(rec.get("state") == "Connected",
         "%s: the call was answered after the 491" % case,
         diag="got %r" % rec)
    h.ok(len(cl.pick(msgs, "received", method="BYE")) == 1,
         "%s: sipstack hung up with one BYE" % case, diag=cl.flow(msgs))
    h.ok(not srv.find({"ev": "hold"}) and not srv.find({"ev": "unhold"}),
         "%s: the refused offer (sendonly) did not put the call on hold" %
         case)
    cl.check_tables(h, srv, case)
    h.stop_server(srv)


RUN = {
    "answer": case_answer,
    "busy": lambda h, a: case_rejected(h, a, "busy", 486, "Busy Here"),
    "redirect": lambda h, a: case_rejected(h, a, "redirect", 302,
                                           "Moved Temporarily"),
    "decline": lambda h, a: case_rejected(h, a, "decline", 603, "Decline"),
    "cancel": case_cancel,
    "bye": case_bye,
    "fork": lambda h, a: case_fork(h, a, False),
    "fork-keep": lambda h, a: case_fork(h, a, True),
    "fork-raise": lambda h, a: case_fork(h, a, True, True),
    "fork-early": case_fork_early,
    "fork-prack": lambda h, a: case_fork_early(h, a, True),
    "early-bye": case_early_bye,
    "glare-out": case_glare_out,
    "rtx": case_rtx,
    "prack-183": case_prack_183,
    "update-crossing": case_update_crossing,
}


def args(ap):
    ap.add_argument("--case", choices=sorted(RUN), required=True)


if __name__ == "__main__":
    harness.test_main(__doc__.splitlines()[0],
                      lambda h, a: RUN[a.case](h, a), extra_args=args)
