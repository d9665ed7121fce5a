#!/usr/bin/env python3
"""Incoming calls on the wire: sipp (uac-*.xml) calls sipstack running
test/calls/callee.lua, one case per run (--case); the user part of the
Request-URI (sipp -s) tells the script what to do:

  basic        INVITE/100/180/200/ACK/BYE; the call object (from, to,
               body byte-exact, content_type, direction, state),
               on_state_change, on_terminated and call:history()
  ring-answer  180, sip.sleep(1), 200
  answer       200 without a 180
  return486    the hook returns 486 -> 486, ACK absorbed
  reject486    call:reject(486) -> 486
  cancel       CANCEL after the 180 -> 200 + 487, ACK; answering later
               fails
  hangup       the script hangs up: sipp receives the BYE, answers 200
  noack        no ACK: the 200 is retransmitted, BYE after 64*T1 = 32 s,
               reason=Timeout
  late-ack     the ACK comes 2 s late: >= 2 copies of the 200, none
               after the ACK
  hold         re-INVITE a=sendonly -> 200 (recvonly), on_hold; re-INVITE
               a=sendrecv -> 200 (sendrecv), on_unhold
  bad-reoffer  re-INVITE and UPDATE with a malformed SDP -> 488 + Warning,
               a re-INVITE of text/plain -> 415 + Accept, the call as it
               was; then a hold -> 200
  bye481       BYE for a dialog that does not exist -> 481
  raise        the hook raises -> 500, ev=hook_error
  shutdown     SIGTERM during a call: sipstack BYEs it (sipp answers 200),
               ev=ended reason=shutdown, exit 0 (also under `make asan`)
  cancel-200   sipp's CANCEL crosses the 200: CANCEL -> 200, no 487, the
               call goes on (ACK, BYE)
  prack-require, prack-supported
               INVITE with Require / Supported: 100rel: the 180 is
               reliable (RSeq), retransmitted until the PRACK (sipp waits
               700 ms with Require), PRACK -> 200, then the 200
  update-early UPDATE with an offer in the early dialog: before the
               INVITE's offer is answered -> 500 + Retry-After; after a
               reliable 183 with our answer -> 200 with an answer; the
               200 without SDP, and a later re-INVITE is answered from
               the SDP the UPDATE left
  glare        sipp's re-INVITE crosses the script's hold: 491 both ways,
               the hold is sent again after 0-2 s and succeeds
  require-420  INVITE with Require: foo -> 420, Unsupported: foo; no call
  early-bye    BYE on the early dialog -> 200, 487 to the INVITE; the
               call ends as cancelled

From cancel-200 on, a case also checks sip.stats() at the end (MESSAGE
"stats"): dialogs=0 calls=0.
"""
import os
import sys

sys.dont_write_bytecode = True   # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import callslib as cl  # noqa: E402
from callslib import harness  # noqa: E402

SCRIPT = cl.here("callee.lua")

# callee.lua's ANSWER, byte for byte
ANSWER_SDP = (b"v=0\r\n"
              b"o=sipstack 4242 4242 IN IP4 127.0.0.1\r\n"
              b"s=sipstack callee\r\n"
              b"c=IN IP4 127.0.0.1\r\n"
              b"t=0 0\r\n"
              b"m=audio 40000 RTP/AVP 0 8\r\n"
              b"a=rtpmap:0 PCMU/8000\r\n"
              b"a=rtpmap:8 PCMA/8000\r\n"
              b"a=sendrecv\r\n")

RINGING = ("Idle", "Ringing", "Ringing")
ANSWER_FROM_RINGING = ("Ringing", "Answering", "Answer")
ANSWER_FROM_IDLE = ("Idle", "Answering", "Answer")
ACK = ("Answering", "Connected", "Ack")
REMOTE_BYE = ("Connected", "Ended", "RemoteBye")


def start_call(h, case, scenario, timeout=15):
    """The server, then sipp's call to sip:CASE@server; waits for sipp.
    Returns (srv, sipp, messages, callid)."""
    srv = h.server(SCRIPT)
    sp = h.sipp(cl.here(scenario), srv, timeout=timeout, args=["-s", case])
    h.sipp_ok(sp, "%s: sipp %s completed its call" % (case, scenario))
    msgs = cl.sipp_messages(sp)
    inv = cl.pick(msgs, "sent", method="INVITE")
    callid = inv[0].header("Call-ID") if inv else None
    if not h.ok(callid, "%s: sipp sent an INVITE" % case,
                diag=cl.flow(msgs)):
        raise harness.Abort("no INVITE in sipp's message log")
    h.note("%s flow:\n%s" % (case, cl.flow(msgs)))
    return srv, sp, msgs, callid


def check_incoming(h, srv, callid, case):
    line = srv.find({"mod": "call", "ev": "incoming", "callid": callid})
    h.ok(len(line) == 1, "%s: one mod=call ev=incoming line" % case,
         diag="\n".join(line))


def check_answer_200(h, msgs, case):
    """The 200 to the INVITE carries the script's SDP byte-exact, a
    Contact, and the To tag of any 180 before it."""
    oks = cl.pick(msgs, "received", code=200, cseq_method="INVITE")
    if not h.ok(oks, "%s: sipp received a 200 to the INVITE" % case,
                diag=cl.flow(msgs)):
        return None
    ok = oks[0]
    h.ok(ok.body == ANSWER_SDP and
         ok.header("Content-Type") == "application/sdp",
         "%s: the 200 carries the script's SDP byte-exact (%d bytes, "
         "application/sdp)" % (case, len(ANSWER_SDP)),
         diag="got %r (%r)" % (ok.body, ok.header("Content-Type")))
    h.ok(ok.tag("To") and ok.header("Contact"),
         "%s: the 200 has a To tag and a Contact" % case,
         diag="To: %r Contact: %r" % (ok.header("To"),
                                      ok.header("Contact")))
    return ok


def check_cancelled(h, srv, msgs, callid, case, what):
    """The call ended unanswered by the caller's what (CANCEL, or BYE on
    the early dialog): no 200 to the INVITE, Ringing -> Ended (Cancel),
    and the script's late call:answer() returned nil, err."""
    h.ok(not cl.pick(msgs, "received", code=200, cseq_method="INVITE"),
         "%s: no 200 to the INVITE" % case)
    cl.check_call_log(h, srv, callid, [RINGING, ("Ringing", "Ended",
                                                 "Cancel")],
                      "cancelled", case)
    rec = cl.wait_script(srv, "late_answer", case, 3.0)
    h.ok(rec.get("ok") == "nil" and rec.get("err") not in (None, "nil") and
         rec.get("state") == "Ended",
         "%s: call:answer() after the %s returns nil, err (%s)" %
         (case, what, rec.get("err")), diag="got %r" % rec)


def case_basic(h, a, case="basic"):
    srv, sp, msgs, callid = start_call(h, case, "uac-ring-answer.xml")
    inv = cl.pick(msgs, "sent", method="INVITE")[0]
    check_incoming(h, srv, callid, case)

    trying = cl.pick(msgs, "received", code=100)
    h.ok(trying and not trying[0].tag("To"),
         "%s: 100 Trying came, without a To tag" % case)
    ring = cl.pick(msgs, "received", code=180)
    ok = check_answer_200(h, msgs, case)
    if h.ok(ring and ok, "%s: sipp received 180 and 200" % case):
        h.ok(ring[0].tag("To") and ring[0].tag("To") == ok.tag("To") and
             ring[0].header("Contact"),
             "%s: the 180 has a Contact and the To tag of the 200 "
             "(early dialog, %s)" % (case, ok.tag("To")),
             diag="180 To: %r / 200 To: %r" % (ring[0].header("To"),
                                              ok.header("To")))
        n200 = len(cl.pick(msgs, "received", code=200,
                           cseq_method="INVITE"))
        h.note("%s: %d copies of the 200 (ACK sent at once)" % (case, n200))

    rec = cl.wait_script(srv, "incoming", case, 3.0)
    frm = inv.header("From")
    want_from = frm[frm.index("<") + 1:frm.index(">")]
    want_to = inv.uri()
    h.ok(rec.get("from_uri") == want_from and rec.get("to_uri") == want_to,
         "%s: call.from=%s call.to=%s" % (case, want_from, want_to),
         diag="got from=%r to=%r" % (rec.get("from_uri"),
                                     rec.get("to_uri")))
    h.ok(rec.get("direction") == "incoming" and
         rec.get("state") == "Idle" and rec.get("answered") == "false" and
         rec.get("call_id") == callid,
         "%s: call.direction=incoming, call.state=Idle, call.id=Call-ID, "
         "not is_answered() in the hook" % case, diag="got %r" % rec)
    h.ok(rec.get("ctype") == "application/sdp" and
         rec.get("bytes") == str(len(inv.body)) and
         rec.get("body_hex") == inv.body.hex(),
         "%s: call.body is the offer byte-exact (%d bytes, UTF-8 in s=), "
         "call.content_type=application/sdp" % (case, len(inv.body)),
         diag="expected %s\ngot      %s" % (inv.body.hex(),
                                           rec.get("body_hex")))
    hist = cl.check_call_log(h, srv, callid,
                             [RINGING, ANSWER_FROM_RINGING, ACK,
                              REMOTE_BYE], "remote hangup", case)
    h.stop_server(srv)
    return hist, msgs


def case_ring_answer(h, a):
    hist, msgs = case_basic(h, a, "ring-answer")
    t_ring = cl.hist_time(hist, "Ringing")
    t_ans = cl.hist_time(hist, "Answer")
    h.ok(t_ring and t_ans and 0.95 <= t_ans - t_ring <= 2.0,
         "ring-answer: the 200 came after the sip.sleep(1) (%.2f s after "
         "the 180, call:history() times)" % ((t_ans or 0) - (t_ring or 0)))
    ring = cl.pick(msgs, "received", code=180)
    ok = cl.pick(msgs, "received", code=200, cseq_method="INVITE")
    if ring and ok:
        dt = ok[0].t - ring[0].t
        h.ok(0.9 <= dt <= 2.0, "ring-answer: sipp got the 200 %.2f s after "
             "the 180" % dt)


def case_answer(h, a):
    case = "answer"
    srv, sp, msgs, callid = start_call(h, case, "uac-answer.xml")
    prov = [m for m in cl.pick(msgs, "received")
            if m.is_response and 100 < m.code < 200]
    h.ok(not prov, "%s: no 18x, only 100 Trying" % case,
         diag=cl.flow(prov))
    check_answer_200(h, msgs, case)
    cl.check_call_log(h, srv, callid, [ANSWER_FROM_IDLE, ACK, REMOTE_BYE],
                      "remote hangup", case)
    h.stop_server(srv)


def case_reject(h, a, case):
    srv, sp, msgs, callid = start_call(h, case, "uac-busy.xml")
    busy = cl.pick(msgs, "received", code=486)
    h.ok(len(busy) == 1, "%s: exactly one 486 (the ACK stopped its "
         "retransmission)" % case, diag=cl.flow(msgs))
    if busy:
        h.ok(busy[0].tag("To"), "%s: the 486 has a To tag" % case)
        h.note("%s: reason phrase %r (RFC 3261 21.4.7 suggests "
               "\"Busy Here\")" % (case, busy[0].reason))
    if case == "reject486":
        rec = cl.wait_script(srv, "rejected", case, 3.0)
        h.ok(rec.get("ok") == "true", "%s: call:reject(486) returned true"
             % case, diag="got %r" % rec)
    cl.check_call_log(h, srv, callid, [("Idle", "Ended", "Reject")],
                      "rejected", case)
    h.stop_server(srv)


def case_cancel(h, a):
    case = "cancel"
    srv, sp, msgs, callid = start_call(h, case, "uac-cancel.xml")
    c200 = cl.pick(msgs, "received", code=200, cseq_method="CANCEL")
    c487 = cl.pick(msgs, "received", code=487, cseq_method="INVITE")
    h.ok(len(c200) == 1 and len(c487) == 1,
         "%s: CANCEL -> 200, INVITE -> 487" % case, diag=cl.flow(msgs))
    ring = cl.pick(msgs, "received", code=180)
    if ring and c487:
        h.ok(c487[0].tag("To") == ring[0].tag("To"),
             "%s: the 487 has the To tag of the 180" % case)
    check_cancelled(h, srv, msgs, callid, case, "CANCEL")
    h.ok(not srv.find({"ev": "state", "callid": callid, "event": "Answer"}),
         "%s: the call was never answered" % case)
    h.stop_server(srv)


def case_hangup(h, a):
    case = "hangup"
    srv, sp, msgs, callid = start_call(h, case, "uac-recv-bye.xml")
    ok = check_answer_200(h, msgs, case)
    inv = cl.pick(msgs, "sent", method="INVITE")[0]
    bye = cl.pick(msgs, "received", method="BYE")
    ack = cl.pick(msgs, "sent", method="ACK")
    if h.ok(len(bye) == 1 and ok and ack, "%s: sipp received one BYE" %
            case, diag=cl.flow(msgs)):
        b = bye[0]
        contact = inv.header("Contact").strip("<>")
        h.ok(b.uri() == contact, "%s: the BYE goes to sipp's Contact %s" %
             (case, contact), diag="got %s" % b.uri())
        h.ok(b.tag("From") == ok.tag("To") and
             b.tag("To") == inv.tag("From") and
             b.header("Call-ID") == callid and b.cseq[1] == "BYE",
             "%s: the BYE is in the dialog (tags swapped, Call-ID, CSeq "
             "BYE)" % case, diag="From: %r To: %r CSeq: %r" % (
                 b.header("From"), b.header("To"), b.header("CSeq")))
        dt = b.t - ack[0].t
        h.ok(0.9 <= dt <= 2.5, "%s: the BYE came after the script's "
             "sip.sleep(1) (%.2f s after the ACK)" % (case, dt))
    rec = cl.wait_script(srv, "hangup", case, 3.0)
    h.ok(rec.get("ok") == "true", "%s: call:hangup() returned true" % case,
         diag="got %r" % rec)
    h.ok(rec.get("again") == "true", "%s: call:hangup() again while the "
         "BYE is in flight: true, and no second BYE" % case,
         diag="got %r" % rec)
    cl.check_call_log(h, srv, callid,
                      [ANSWER_FROM_IDLE, ACK, ("Connected", "Ending", "Bye"),
                       ("Ending", "Ended", "ByeResponse")], "hangup", case)
    h.stop_server(srv)


def case_noack(h, a):
    case = "noack"
    srv, sp, msgs, callid = start_call(h, case, "uac-noack.xml",
                                       timeout=45)
    oks = cl.pick(msgs, "received", code=200, cseq_method="INVITE")
    bye = cl.pick(msgs, "received", method="BYE")
    h.ok(len(oks) >= 8, "%s: the 200 was retransmitted until the end "
         "(%d copies; T1 doubling to T2 over 32 s gives 11)" %
         (case, len(oks)))
    h.ok(len(set(m.raw for m in oks)) == 1,
         "%s: every copy of the 200 is the same message" % case)
    if len(oks) >= 3:
        gaps = [round(b.t - a_.t, 2) for a_, b in zip(oks, oks[1:])]
        h.ok(0.35 <= gaps[0] <= 0.8 and 0.8 <= gaps[1] <= 1.4 and
             max(gaps) <= 4.6,
             "%s: retransmission intervals T1, 2*T1, ... capped at T2 "
             "(%s s)" % (case, gaps))
    if h.ok(len(bye) == 1 and oks, "%s: sipp received a BYE" % case,
            diag=cl.flow(msgs)):
        dt = bye[0].t - oks[0].t
        h.ok(31.0 <= dt <= 35.0, "%s: the BYE came 64*T1 after the 200 "
             "(%.1f s)" % (case, dt))
        after = [m for m in oks if m.t > bye[0].t]
        h.ok(not after, "%s: no copy of the 200 after the BYE" % case)
    h.ok(srv.find({"mod": "call", "ev": "no_ack", "callid": callid}),
         "%s: the log has mod=call ev=no_ack" % case)
    cl.check_call_log(h, srv, callid,
                      [ANSWER_FROM_IDLE, ("Answering", "Ending", "Bye"),
                       ("Ending", "Ended", "ByeResponse")], "Timeout", case)
    h.stop_server(srv)


def case_late_ack(h, a):
    case = "late-ack"
    srv, sp, msgs, callid = start_call(h, case, "uac-late-ack.xml")
    ack = cl.pick(msgs, "sent", method="ACK")
    oks = cl.pick(msgs, "received", code=200, cseq_method="INVITE")
    if h.ok(ack and oks, "%s: 200 and ACK exchanged" % case,
            diag=cl.flow(msgs)):
        before = [m for m in oks if m.t <= ack[0].t]
        after = [m for m in oks if m.t > ack[0].t]
        h.ok(len(before) >= 2, "%s: the 200 was retransmitted while no "
             "ACK came (%d copies in %.1f s)" %
             (case, len(before), ack[0].t - oks[0].t))
        h.ok(len(set(m.raw for m in oks)) == 1,
             "%s: every copy of the 200 is the same message" % case)
        if len(before) >= 2:
            gap = before[1].t - before[0].t
            h.ok(0.35 <= gap <= 0.8, "%s: the first retransmission after "
                 "T1 (%.2f s)" % (case, gap))
        h.ok(not after, "%s: no copy of the 200 after the ACK (%d)" %
             (case, len(after)), diag=cl.flow(after))
    hist = cl.check_call_log(h, srv, callid,
                             [ANSWER_FROM_IDLE, ACK, REMOTE_BYE],
                             "remote hangup", case)
    t_ans = cl.hist_time(hist, "Answer")
    t_ack = cl.hist_time(hist, "Ack")
    h.ok(t_ans and t_ack and 1.8 <= t_ack - t_ans <= 3.0,
         "%s: Answering lasted until the late ACK (%.2f s)" %
         (case, (t_ack or 0) - (t_ans or 0)))
    h.stop_server(srv)


def sdp_lines(body):
    return body.decode("utf-8", "replace").split("\r\n")


def sdp_dir(body):
    dirs = [l[2:] for l in sdp_lines(body)
            if l in ("a=sendrecv", "a=sendonly", "a=recvonly", "a=inactive")]
    return dirs[-1] if dirs else "sendrecv"


def sdp_version(body):
    for l in sdp_lines(body):
        if l.startswith("o="):
            return int(l.split()[2])
    return None


def case_bad_reoffer(h, a):
    """offers refused before anyone takes them leave the call as it was:
    a malformed SDP in a re-INVITE and in an UPDATE (488 + Warning), a
    re-INVITE that is not SDP (415 + Accept); a good hold after them"""
    case = "bad-reoffer"
    srv, sp, msgs, callid = start_call(h, case, "uac-bad-reoffer.xml")
    first = check_answer_200(h, msgs, case)
    got = {(m.cseq[0], m.cseq[1]): m.code for m in
           cl.pick(msgs, "received") if m.code and m.code >= 200}
    h.ok(got == {(1, "INVITE"): 200, (2, "INVITE"): 488,
                 (3, "UPDATE"): 488, (4, "INVITE"): 415,
                 (5, "INVITE"): 200, (6, "BYE"): 200},
         "%s: 488, 488, 415 to the broken offers; 200 to the hold and the "
         "BYE" % case, diag=repr(got))
    hold = [m for m in cl.pick(msgs, "received", code=200,
                               cseq_method="INVITE") if m.cseq[0] == 5]
    h.ok(hold and first and sdp_dir(hold[0].body) in ("recvonly",
                                                      "inactive") and
         sdp_version(hold[0].body) == sdp_version(first.body) + 1,
         "%s: the hold after them is answered from the first answer (o= "
         "version + 1: the refused offers changed nothing)" % case,
         diag=hold and hold[0].body.decode("utf-8", "replace"))
    rh = cl.wait_script(srv, "hold", case, 3.0)
    h.ok(rh.get("on_hold") == "true", "%s: on_hold ran for the good "
         "re-INVITE only" % case, diag="got %r" % rh)
    h.ok(len(srv.find({"mod": "call", "ev": "bad_offer",
                       "callid": callid})) == 3,
         "%s: three mod=call ev=bad_offer lines" % case)
    h.stop_server(srv)


def case_hold(h, a):
    case = "hold"
    srv, sp, msgs, callid = start_call(h, case, "uac-hold.xml")
    first = check_answer_200(h, msgs, case)
    invs = cl.pick(msgs, "sent", method="INVITE")
    oks = {m.cseq[0]: m for m in cl.pick(msgs, "received", code=200,
                                         cseq_method="INVITE")}
    if h.ok(len(invs) == 3 and set(oks) == {1, 2, 3} and first,
            "%s: three INVITEs (CSeq 1, 2, 3) each answered 200" % case,
            diag=cl.flow(msgs)):
        hold, unhold = oks[2], oks[3]
        for m, offered, want in ((hold, "sendonly", ("recvonly",
                                                     "inactive")),
                                 (unhold, "sendrecv", ("sendrecv",))):
            got = sdp_dir(m.body)
            h.ok(m.header("Content-Type") == "application/sdp" and
                 got in want,
                 "%s: the 200 to the re-INVITE offering %s answers %s "
                 "(RFC 3264 6.1, 8.4)" % (case, offered, " or ".join(want)),
                 diag="got a=%s in\n%s" % (got, m.body.decode("utf-8",
                                                              "replace")))
            h.ok(m.tag("To") == first.tag("To") and
                 m.header("Contact"),
                 "%s: the 200 to CSeq %d is in the dialog (To tag, "
                 "Contact)" % (case, m.cseq[0]))
        v0, v1, v2 = (sdp_version(first.body), sdp_version(hold.body),
                      sdp_version(unhold.body))
        h.ok(v0 is not None and v1 is not None and v2 is not None and
             v0 < v1 < v2,
             "%s: o= version raised with each changed answer (%s, %s, %s; "
             "RFC 3264 8)" % (case, v0, v1, v2))
        keep = [l for l in sdp_lines(ANSWER_SDP)
                if l[:2] in ("m=", "c=") or l.startswith("a=rtpmap")]
        h.ok(all(l in sdp_lines(hold.body) for l in keep),
             "%s: the hold answer keeps the streams of the first answer" %
             case, diag=hold.body.decode("utf-8", "replace"))

    rh = cl.wait_script(srv, "hold", case, 3.0)
    ru = cl.wait_script(srv, "unhold", case, 3.0)
    sendonly = invs[1].body if len(invs) > 1 else b""
    h.ok(rh.get("on_hold") == "true" and rh.get("state") == "Hold",
         "%s: call.on_hold ran; call:is_on_hold() true, state Hold" % case,
         diag="got %r" % rh)
    h.ok(rh.get("body_hex") == sendonly.hex(),
         "%s: call.body in on_hold is the sendonly offer byte-exact" % case,
         diag="got %r" % rh.get("body_hex"))
    h.ok(ru.get("on_hold") == "false" and ru.get("state") == "Connected",
         "%s: call.on_unhold ran; call:is_on_hold() false, state "
         "Connected" % case, diag="got %r" % ru)
    h.ok(len(cl.script_lines(srv, "hold", case)) == 1 and
         len(cl.script_lines(srv, "unhold", case)) == 1,
         "%s: on_hold and on_unhold ran once each" % case)
    cl.check_call_log(h, srv, callid,
                      [ANSWER_FROM_IDLE, ACK, ("Connected", "Hold", "Hold"),
                       ("Hold", "Connected", "Unhold"), REMOTE_BYE],
                      "remote hangup", case)
    h.stop_server(srv)


def case_bye481(h, a):
    case = "bye481"
    srv, sp, msgs, callid = start_call(h, case, "uac-bye-481.xml")
    byes = cl.pick(msgs, "sent", method="BYE")
    res = {m.cseq[0]: m for m in cl.pick(msgs, "received",
                                         cseq_method="BYE")}
    if h.ok(len(byes) == 3 and set(res) == {1, 3, 4},
            "%s: three BYEs answered" % case, diag=cl.flow(msgs)):
        h.ok(res[1].code == 481 and res[1].tag("To") == "made-up-1",
             "%s: a BYE before any call (To tag made-up-1) gets 481" % case,
             diag="got %s, To: %s" % (res[1].start, res[1].header("To")))
        h.ok(res[3].code == 481 and res[3].tag("To") == "made-up-2",
             "%s: a BYE with the call's Call-ID and From tag but a made-up "
             "To tag gets 481" % case,
             diag="got %s, To: %s" % (res[3].start, res[3].header("To")))
        h.ok(res[4].code == 200, "%s: the call survived: its real BYE "
             "gets 200" % case, diag="got %s" % res[4].start)
    check_incoming(h, srv, callid, case)
    cl.check_call_log(h, srv, callid, [ANSWER_FROM_IDLE, ACK, REMOTE_BYE],
                      "remote hangup", case)
    h.stop_server(srv)


def case_raise(h, a):
    case = "raise"
    srv, sp, msgs, callid = start_call(h, case, "uac-error-500.xml")
    err = cl.pick(msgs, "received", code=500)
    h.ok(len(err) == 1 and err[0].cseq[1] == "INVITE",
         "%s: the INVITE got 500 (once: the ACK was absorbed)" % case,
         diag=cl.flow(msgs))
    line = srv.wait_for({"ev": "hook_error"}, 2.0)
    rec = harness.parse_logfmt(line) if line else {}
    want_line = harness.marker_line(SCRIPT, "LINE:raise")
    h.ok(rec.get("lvl") == "error" and rec.get("mod") == "lua" and
         rec.get("hook") == "on_incoming_call" and
         "boom: the callee hook raised" in rec.get("err", ""),
         "%s: lvl=error mod=lua ev=hook_error hook=on_incoming_call "
         "err=~boom" % case, diag="line: %s" % line)
    h.ok(rec.get("script") == SCRIPT and rec.get("line") == str(want_line),
         "%s: the hook error names the script and line %d" %
         (case, want_line), diag="line: %s" % line)
    h.ok(rec.get("callid") == callid,
         "%s: the hook error names the call (callid=%s, as docs/lua-api.md "
         "shows for every hook error)" % (case, callid),
         diag="line: %s" % line)
    cl.check_call_log(h, srv, callid, [("Idle", "Ended", "Reject")],
                      "rejected", case)
    h.stop_server(srv, errors=[{"ev": "hook_error"}])


def case_shutdown(h, a):
    case = "shutdown"
    srv = h.server(SCRIPT)
    sp = h.sipp(cl.here("uac-recv-bye.xml"), srv, args=["-s", case])
    line = srv.wait_for({"mod": "call", "ev": "state", "event": "Ack"}, 5.0)
    h.ok(line, "%s: the call is up (Answering -> Connected)" % case)
    callid = harness.parse_logfmt(line or "").get("callid")
    h.stop_server(srv, must=[{"mod": "call", "ev": "ended",
                              "reason": "shutdown"}])
    h.sipp_ok(sp, "%s: sipp received the BYE of the stopping server and "
              "answered 200" % case)
    msgs = cl.sipp_messages(sp)
    h.note("%s flow:\n%s" % (case, cl.flow(msgs)))
    bye = cl.pick(msgs, "received", method="BYE")
    ok = cl.pick(msgs, "received", code=200, cseq_method="INVITE")
    h.ok(len(bye) == 1 and ok and bye[0].tag("From") == ok[0].tag("To") and
         bye[0].header("Call-ID") == callid,
         "%s: one BYE, in the call's dialog" % case, diag=cl.flow(msgs))
    tr = cl.transitions(srv, callid)
    want = [ANSWER_FROM_IDLE, ACK, ("Connected", "Ending", "Bye")]
    h.ok(tr[:3] == want, "%s: state transitions start %s" %
         (case, cl.fmt_tr(want)), diag="got: %s" % cl.fmt_tr(tr))
    h.ok(cl.ended(srv, callid) == ["shutdown"],
         "%s: one ev=ended reason=shutdown" % case)


def tokens(value):
    """The comma-separated tokens of a header value (Require, ...)."""
    return [t.strip() for t in (value or "").split(",") if t.strip()]


def case_cancel_200(h, a):
    case = "cancel-200"
    srv, sp, msgs, callid = start_call(h, case, "uac-cancel-200.xml")
    ok = check_answer_200(h, msgs, case)
    cancel = cl.pick(msgs, "sent", method="CANCEL")
    c200 = cl.pick(msgs, "received", code=200, cseq_method="CANCEL")
    ack = cl.pick(msgs, "sent", method="ACK")
    if h.ok(ok and len(cancel) == 1 and len(c200) == 1 and ack,
            "%s: sipp sent its CANCEL when the 200 came, got 200 to it, "
            "then ACKed" % case, diag=cl.flow(msgs)):
        h.ok(c200[0].tag("To") == ok.tag("To"),
             "%s: the 200 to the CANCEL has the To tag of the INVITE's 200 "
             "(RFC 3261 9.2)" % case,
             diag="CANCEL 200 To: %r / INVITE 200 To: %r" % (
                 c200[0].header("To"), ok.header("To")))
        h.ok(cancel[0].t >= ok.t and c200[0].t <= ack[0].t,
             "%s: the CANCEL crossed the 200: sent after it, answered "
             "before the ACK left (the call was Answering)" % case)
    fails = [m for m in cl.pick(msgs, "received", cseq_method="INVITE")
             if m.is_response and m.code >= 300]
    h.ok(not fails, "%s: no 487 (nor any other failure) to the INVITE: "
         "a CANCEL has no effect on a request already answered" % case,
         diag=cl.flow(fails))
    h.ok(not srv.find({"ev": "cancelled"}) and
         not srv.find({"ev": "state", "callid": callid, "event": "Cancel"}),
         "%s: the server saw no cancellation of the call" % case)
    cl.check_call_log(h, srv, callid,
                      [RINGING, ANSWER_FROM_RINGING, ACK, REMOTE_BYE],
                      "remote hangup", case)
    cl.check_tables(h, srv, case)
    h.stop_server(srv)


def case_prack(h, a, case, scenario, delayed):
    srv, sp, msgs, callid = start_call(h, case, scenario)
    inv = cl.pick(msgs, "sent", method="INVITE")[0]
    rings = cl.pick(msgs, "received", code=180)
    prack = cl.pick(msgs, "sent", method="PRACK")
    p200 = cl.pick(msgs, "received", code=200, cseq_method="PRACK")
    ok = check_answer_200(h, msgs, case)
    h.note("%s: the INVITE has Require: %r, Supported: %r" %
           (case, inv.header("Require"), inv.header("Supported")))
    if h.ok(rings and len(prack) == 1 and len(p200) == 1 and ok,
            "%s: 180, PRACK, 200 to the PRACK, 200 to the INVITE" % case,
            diag=cl.flow(msgs)):
        r = rings[0]
        rseq = r.header("RSeq") or ""
        h.ok("100rel" in tokens(r.header("Require")) and rseq.isdigit() and
             1 <= int(rseq) < 2 ** 31 and r.tag("To") and
             r.header("Contact"),
             "%s: the 180 is reliable: Require: 100rel, RSeq %s, To tag, "
             "Contact (RFC 3262 3)" % (case, rseq),
             diag="Require: %r RSeq: %r To: %r" % (
                 r.header("Require"), r.header("RSeq"), r.header("To")))
        h.ok(len(set(m.raw for m in rings)) == 1,
             "%s: every copy of the 180 is the same message (%d)" %
             (case, len(rings)))
        before = [m for m in rings if m.t <= prack[0].t]
        after = [m for m in rings if m.t > prack[0].t]
        if delayed:
            h.ok(len(before) >= 2, "%s: the 180 was retransmitted while "
                 "no PRACK came (%d copies in %.2f s)" %
                 (case, len(before), prack[0].t - rings[0].t),
                 diag=cl.flow(msgs))
            if len(before) >= 2:
                gap = before[1].t - before[0].t
                h.ok(0.35 <= gap <= 0.8, "%s: its first retransmission "
                     "after T1 (%.2f s)" % (case, gap))
        else:
            h.ok(len(rings) == 1, "%s: one 180: its PRACK came before T1" %
                 case, diag=cl.flow(msgs))
        h.ok(not after, "%s: no copy of the 180 after the PRACK" % case,
             diag=cl.flow(after))
        h.ok(p200[0].tag("To") == r.tag("To") and
             p200[0].cseq == prack[0].cseq,
             "%s: the PRACK (RAck %s) got 200 in the early dialog" %
             (case, prack[0].header("RAck")),
             diag="got %s To %s CSeq %s" % (p200[0].start,
                                           p200[0].header("To"),
                                           p200[0].header("CSeq")))
        h.ok(ok.t >= p200[0].t and ok.tag("To") == r.tag("To") and
             not ok.header("RSeq"),
             "%s: then the 200 to the INVITE, with the 180's To tag and no "
             "RSeq" % case,
             diag="200 To %r RSeq %r" % (ok.header("To"), ok.header("RSeq")))
    rec = cl.wait_script(srv, "ringing", case, 3.0)
    h.ok(rec.get("ok") == "true", "%s: call:ringing() returned true" % case,
         diag="got %r" % rec)
    cl.check_call_log(h, srv, callid,
                      [RINGING, ANSWER_FROM_RINGING, ACK, REMOTE_BYE],
                      "remote hangup", case)
    h.ok(not srv.find({"ev": "no_prack"}), "%s: no ev=no_prack" % case)
    cl.check_tables(h, srv, case)
    h.stop_server(srv)


def sdp_streams(body):
    """The m=, c= and rtpmap lines: what an answer must keep."""
    return [l for l in sdp_lines(body)
            if l[:2] in ("m=", "c=") or l.startswith("a=rtpmap")]


def case_update_early(h, a):
    case = "update-early"
    srv, sp, msgs, callid = start_call(h, case, "uac-update-early.xml")
    sent_upd = {m.cseq[0]: m for m in cl.pick(msgs, "sent",
                                              method="UPDATE")}
    upd = {m.cseq[0]: m for m in cl.pick(msgs, "received",
                                         cseq_method="UPDATE")}
    r180 = cl.pick(msgs, "received", code=180)
    r183 = cl.pick(msgs, "received", code=183)
    oks = {m.cseq[0]: m for m in cl.pick(msgs, "received", code=200,
                                         cseq_method="INVITE")}
    if not h.ok(set(upd) == {3, 5} and set(sent_upd) == {3, 5} and r180
                and r183 and set(oks) == {1, 6},
                "%s: 180, 183, both UPDATEs and both INVITEs answered" % case,
                diag=cl.flow(msgs)):
        raise harness.Abort("the scenario did not run")
    tag = r180[0].tag("To")
    u1, u2 = upd[3], upd[5]
    retry = u1.header("Retry-After") or ""
    h.ok(u1.code == 500 and retry.isdigit() and int(retry) <= 10 and
         not u1.body,
         "%s: an UPDATE offer while the INVITE's offer is unanswered (the "
         "reliable 180 had no SDP) -> 500 with Retry-After %s (0-10, RFC "
         "3311 5.2)" % (case, retry),
         diag="got %s, Retry-After %r, body %r" % (u1.start, retry, u1.body))
    s183 = r183[0]
    h.ok(s183.body == ANSWER_SDP and "100rel" in tokens(s183.header(
         "Require")) and (s183.header("RSeq") or "").isdigit() and
         (r180[0].header("RSeq") or "").isdigit() and
         int(s183.header("RSeq")) == int(r180[0].header("RSeq")) + 1 and
         s183.tag("To") == tag,
         "%s: the 183 is reliable (RSeq one above the 180's, RFC 3262 3), "
         "carries the script's SDP byte-exact, same To tag" % case,
         diag="RSeq %r / %r, body %r" % (s183.header("RSeq"),
                                         r180[0].header("RSeq"), s183.body))
    h.ok(u2.code == 200 and u2.header("Content-Type") == "application/sdp"
         and u2.tag("To") == tag and u2.header("Contact"),
         "%s: the UPDATE with an offer after the 183 -> 200 with SDP, in "
         "the early dialog, with a Contact (RFC 3311 5.2)" % case,
         diag="got %s Content-Type %r To %r" % (
             u2.start, u2.header("Content-Type"), u2.header("To")))
    v183, vu2 = sdp_version(ANSWER_SDP), sdp_version(u2.body)
    h.ok(vu2 == v183 + 1 and sdp_dir(u2.body) == "sendrecv" and
         sdp_streams(u2.body) == sdp_streams(ANSWER_SDP),
         "%s: the UPDATE's answer: our streams, a=sendrecv for sendrecv, "
         "o= version %s -> %s (RFC 3264 8)" % (case, v183, vu2),
         diag=u2.body.decode("utf-8", "replace"))
    o1, o6 = oks[1], oks[6]
    h.ok(not o1.body and not o1.header("Content-Type") and
         o1.tag("To") == tag and o1.t >= u2.t,
         "%s: the 200 to the INVITE (call:answer() without a body) "
         "carries no SDP: the offer/answer was done early" % case,
         diag="body %r" % o1.body)
    h.ok(o6.header("Content-Type") == "application/sdp" and
         sdp_version(o6.body) == vu2 + 1 and sdp_dir(o6.body) ==
         "sendrecv" and sdp_streams(o6.body) == sdp_streams(ANSWER_SDP),
         "%s: a re-INVITE after the answer gets our SDP as the UPDATE left "
         "it, o= version %s (answer() without a body kept it)" %
         (case, (vu2 or 0) + 1),
         diag="got %s\n%s" % (o6.start, o6.body.decode("utf-8", "replace")))
    rec = cl.wait_script(srv, "answered", case, 4.0)
    h.ok(rec.get("ok") == "true" and
         rec.get("body_hex") == sent_upd[5].body.hex(),
         "%s: call:answer() returned true; call.body is the UPDATE's offer "
         "byte-exact" % case, diag="got %r" % rec)
    cl.check_call_log(h, srv, callid,
                      [RINGING, ("Ringing", "Ringing", "Ringing"),
                       ANSWER_FROM_RINGING, ACK, REMOTE_BYE],
                      "remote hangup", case)
    cl.check_tables(h, srv, case)
    h.stop_server(srv)


def case_glare(h, a):
    case = "glare"
    srv, sp, msgs, callid = start_call(h, case, "uac-glare.xml")
    check_answer_200(h, msgs, case)
    ours = cl.pick(msgs, "received", method="INVITE")
    theirs = [m for m in cl.pick(msgs, "sent", method="INVITE")
              if m.cseq[0] == 2]
    r491 = cl.pick(msgs, "received", code=491)
    s491 = cl.pick(msgs, "sent", code=491)
    if not h.ok(len(ours) == 2 and len(theirs) == 1 and len(r491) == 1 and
                len(s491) == 1,
                "%s: two re-INVITEs from sipstack, one from sipp, one 491 "
                "each way" % case, diag=cl.flow(msgs)):
        raise harness.Abort("the scenario did not run")
    r1, r2 = ours
    s2 = theirs[0]
    h.ok(sdp_dir(r1.body) == "sendonly" and r1.tag("To") and
         r1.cseq[0] > 0,
         "%s: sipstack's first re-INVITE is the script's hold "
         "(a=sendonly)" % case, diag=r1.body.decode("utf-8", "replace"))
    h.ok(r491[0].cseq == (2, "INVITE") and r1.t <= s2.t <= r491[0].t <=
         s491[0].t,
         "%s: sipstack answered sipp's re-INVITE 491 while its own (CSeq "
         "%d) was pending (RFC 3261 14.2)" % (case, r1.cseq[0]),
         diag=cl.flow(msgs))
    ack = [m for m in cl.pick(msgs, "received", method="ACK")
           if m.cseq == (r1.cseq[0], "ACK")]
    h.ok(len(ack) == 1 and ack[0].branch() == r1.branch() and
         ack[0].t >= s491[0].t,
         "%s: sipstack ACKed the 491 in its re-INVITE's transaction (same "
         "branch; RFC 3261 17.1.1.3)" % case, diag=cl.flow(msgs))
    h.ok(r2.cseq[0] > r1.cseq[0] and r2.branch() != r1.branch() and
         r2.body == r1.body and r2.tag("To") == r1.tag("To"),
         "%s: then its re-INVITE again as a new request (CSeq %d > %d, new "
         "branch), the same offer" % (case, r2.cseq[0], r1.cseq[0]),
         diag="R1 %s branch %s / R2 %s branch %s" % (
             r1.header("CSeq"), r1.branch(), r2.header("CSeq"),
             r2.branch()))
    dt = r2.t - s491[0].t
    h.ok(0.0 <= dt <= 2.15, "%s: ... %.2f s after the 491: 0-2 s, sipstack "
         "does not own the Call-ID (RFC 3261 14.1)" % (case, dt))
    line = srv.find({"mod": "call", "ev": "glare", "callid": callid})
    ms = harness.parse_logfmt(line[0]).get("retry_ms", "") if line else ""
    h.ok(len(line) == 1 and ms.isdigit() and int(ms) <= 2000 and
         int(ms) % 10 == 0 and abs(dt - int(ms) / 1000.0) < 0.15,
         "%s: one mod=call ev=glare retry_ms=%s (0-2000, in units of 10 "
         "ms, the delay measured)" % (case, ms), diag="\n".join(line))
    ack2 = [m for m in cl.pick(msgs, "received", method="ACK")
            if m.cseq == (r2.cseq[0], "ACK")]
    h.ok(len(ack2) == 1 and ack2[0].branch() != r2.branch(),
         "%s: sipp's 200 to it was ACKed (a new transaction)" % case,
         diag=cl.flow(msgs))
    rec = cl.wait_script(srv, "held", case, 3.0)
    h.ok(rec.get("ok") == "true" and rec.get("code") == "200" and
         rec.get("state") == "Hold" and rec.get("on_hold") == "true",
         "%s: call:hold() returned true, 200 after the retry; state Hold, "
         "is_on_hold()" % case, diag="got %r" % rec)
    cl.check_call_log(h, srv, callid,
                      [ANSWER_FROM_IDLE, ACK, ("Connected", "Hold", "Hold"),
                       ("Hold", "Ended", "RemoteBye")], "remote hangup", case)
    cl.check_tables(h, srv, case)
    h.stop_server(srv)


def case_require_420(h, a):
    case = "require-420"
    srv, sp, msgs, callid = start_call(h, case, "uac-require-420.xml")
    resp = [m for m in cl.pick(msgs, "received") if m.is_response]
    h.ok([m.code for m in resp] == [420],
         "%s: the INVITE with Require: foo got one 420 and nothing else (no "
         "100, no retransmission after the ACK)" % case, diag=cl.flow(msgs))
    if resp:
        r = resp[0]
        h.ok(r.header("Unsupported") == "foo" and r.tag("To") and
             r.cseq == (1, "INVITE") and r.reason == "Bad Extension",
             "%s: 420 Bad Extension, Unsupported: foo, a To tag (RFC 3261 "
             "8.2.2.3)" % case,
             diag="%s Unsupported: %r To: %r" % (r.start,
                                                 r.header("Unsupported"),
                                                 r.header("To")))
    line = srv.find({"mod": "stack", "ev": "bad_extension",
                     "callid": callid})
    rec = harness.parse_logfmt(line[0]) if line else {}
    h.ok(len(line) == 1 and rec.get("method") == "INVITE" and
         rec.get("unsupported") == "foo",
         "%s: one mod=stack ev=bad_extension method=INVITE unsupported=foo"
         % case, diag="\n".join(line))
    h.ok(not srv.find({"mod": "call"}) and
         not cl.script_lines(srv, "incoming", case),
         "%s: no call was made: no mod=call line, the hook never ran" % case)
    cl.check_tables(h, srv, case)
    h.stop_server(srv)


def case_early_bye(h, a):
    case = "early-bye"
    srv, sp, msgs, callid = start_call(h, case, "uac-early-bye.xml")
    ring = cl.pick(msgs, "received", code=180)
    b200 = cl.pick(msgs, "received", code=200, cseq_method="BYE")
    c487 = cl.pick(msgs, "received", code=487, cseq_method="INVITE")
    if h.ok(ring and len(b200) == 1 and len(c487) == 1,
            "%s: BYE on the early dialog -> 200, and the INVITE -> 487 "
            "(once: the ACK stopped it; RFC 3261 15.1.2)" % case,
            diag=cl.flow(msgs)):
        h.ok(c487[0].tag("To") == ring[0].tag("To") and
             b200[0].tag("To") == ring[0].tag("To"),
             "%s: both have the To tag of the 180" % case)
    check_cancelled(h, srv, msgs, callid, case, "BYE")
    cl.check_tables(h, srv, case)
    h.stop_server(srv)


CASES = {
    "basic": case_basic,
    "ring-answer": case_ring_answer,
    "answer": case_answer,
    "return486": lambda h, a: case_reject(h, a, "return486"),
    "reject486": lambda h, a: case_reject(h, a, "reject486"),
    "cancel": case_cancel,
    "hangup": case_hangup,
    "noack": case_noack,
    "late-ack": case_late_ack,
    "hold": case_hold,
    "bad-reoffer": case_bad_reoffer,
    "bye481": case_bye481,
    "raise": case_raise,
    "shutdown": case_shutdown,
    "cancel-200": case_cancel_200,
    "prack-require": lambda h, a: case_prack(h, a, "prack-require",
                                             "uac-prack-require.xml", True),
    "prack-supported": lambda h, a: case_prack(h, a, "prack-supported",
                                               "uac-prack-supported.xml",
                                               False),
    "update-early": case_update_early,
    "glare": case_glare,
    "require-420": case_require_420,
    "early-bye": case_early_bye,
}


def args(ap):
    ap.add_argument("--case", choices=sorted(CASES), required=True)


def body(h, a):
    CASES[a.case](h, a)


if __name__ == "__main__":
    harness.test_main(__doc__.splitlines()[0], body, extra_args=args)
