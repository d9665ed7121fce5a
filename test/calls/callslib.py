"""test/calls/callslib.py  Helpers shared by t_uas.py and t_uac.py

On top of test/sipp/harness.py (imported, not modified): sipp's message
log with timestamps, the call lines of the server log (`mod=call
ev=state`, `ev=ended`), the script's own lines (`mod=script ev=log
msg=... case=...`) and checks of a call's whole state sequence.
"""
import datetime
import os
import re
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "sipp"))
import harness  # noqa: E402

# "----------------------------------------------- 2026-11-24 02:07:44.627214"
# "UDP message received [554] bytes :" / "UDP message sent (525 bytes):"
_SIPP_MSG = re.compile(
    rb"(?m)^-{10,} (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?)\n"
    rb"(\w+) message (sent|received) [(\[](\d+)(?:\] bytes :| bytes\):)\n\n")


def here(name):
    return os.path.join(HERE, name)


class Msg(harness.SipMsg):
    """A message of sipp's log: SipMsg plus direction ("sent" or
    "received", from sipp's side) and t (seconds, sipp's clock)."""

    def __init__(self, data, direction, t):
        super().__init__(data)
        self.direction = direction
        self.t = t

    @property
    def cseq(self):
        """(number, method) of CSeq."""
        v = (self.header("CSeq") or "0 ?").split()
        return int(v[0]), v[1] if len(v) > 1 else "?"

    def tag(self, name):
        """The tag parameter of From or To (None if absent)."""
        m = re.search(r";\s*tag=([^;>\s]+)", self.header(name) or "")
        return m.group(1) if m else None

    def branch(self):
        m = re.search(r";\s*branch=([^;\s]+)", self.header("Via") or "")
        return m.group(1) if m else None

    def uri(self):
        """The Request-URI of a request."""
        return self.start.split(" ")[1] if not self.is_response else None

    def __repr__(self):
        return "<%s %s %s>" % (self.direction, self.start,
                               self.header("CSeq"))


def sipp_messages(sp):
    """Every message of sipp's message log, in order, as Msg."""
    try:
        with open(sp.msg_path, "rb") as f:
            data = f.read()
    except OSError:
        return []
    out = []
    for m in _SIPP_MSG.finditer(data):
        t = datetime.datetime.strptime(m.group(1).decode(),
                                       "%Y-%m-%d %H:%M:%S.%f").timestamp()
        n = int(m.group(4))
        out.append(Msg(data[m.end():m.end() + n], m.group(3).decode(), t))
    return out


def pick(msgs, direction=None, method=None, code=None, cseq_method=None):
    """Messages of msgs matching every criterion given."""
    out = []
    for m in msgs:
        if direction and m.direction != direction:
            continue
        if method and m.method != method:
            continue
        if code is not None and m.code != code:
            continue
        if cseq_method and m.cseq[1] != cseq_method:
            continue
        out.append(m)
    return out


def flow(msgs):
    """A short text of the exchange, for diagnostics."""
    return "\n".join("%s %s (%s)" % ("->" if m.direction == "sent" else
                                     "<-", m.start, m.header("CSeq"))
                     for m in msgs)


# ---------------------------------------------------------------------
# The server log
# ---------------------------------------------------------------------

def call_lines(srv, ev, callid, fork=None):
    """The call's `mod=call ev=...` lines, parsed. The call of another
    fork of an INVITE has the same Call-ID and adds fork=<its To tag>:
    fork=None gives the original call's lines only."""
    out = []
    for line in srv.find({"mod": "call", "ev": ev, "callid": callid}):
        r = harness.parse_logfmt(line)
        if r.get("fork") == fork:
            out.append(r)
    return out


def transitions(srv, callid, fork=None):
    """[(from, to, event)] of the call's `mod=call ev=state` lines."""
    return [(r.get("from"), r.get("to"), r.get("event"))
            for r in call_lines(srv, "state", callid, fork)]


def ended(srv, callid, fork=None):
    """The reasons of the call's `ev=ended` lines."""
    return [r.get("reason") for r in call_lines(srv, "ended", callid, fork)]


def script_lines(srv, msg, case, **more):
    """The script's `msg=... case=...` lines, parsed."""
    want = {"mod": "script", "ev": "log", "msg": msg, "case": case}
    want.update(more)
    return [harness.parse_logfmt(l) for l in srv.find(want)]


def wait_script(srv, msg, case, timeout):
    """Wait up to timeout for a `msg=... case=...` line; parsed or {}."""
    line = srv.wait_for({"mod": "script", "ev": "log", "msg": msg,
                         "case": case}, timeout)
    return harness.parse_logfmt(line) if line else {}


def fmt_tr(tr):
    return " ; ".join("%s->%s (%s)" % t for t in tr) or "(none)"


def check_call_log(h, srv, callid, want_tr, want_reason, case):
    """The call went through exactly want_tr (ev=state lines), ended once
    with want_reason, and the script saw the same: on_state_change
    (msg=cb_state) for each transition, on_terminated(reason), and
    call:history() equal to the transitions with increasing times."""
    # the callbacks run right after the C events: give them a moment
    # (on_terminated logs the history after its own line; a server under
    # valgrind or a loaded machine may take a while for all of them)
    wait_script(srv, "terminated", case, 3.0)
    end = time.monotonic() + 5.0
    while len(script_lines(srv, "history", case)) < len(want_tr) and \
            time.monotonic() < end:
        time.sleep(0.05)
    tr = transitions(srv, callid)
    h.ok(tr == want_tr, "%s: state transitions %s" % (case, fmt_tr(want_tr)),
         diag="got: %s" % fmt_tr(tr), server=srv)
    reasons = ended(srv, callid)
    h.ok(reasons == [want_reason], "%s: one ev=ended reason=%r" %
         (case, want_reason), diag="got reasons %r" % reasons, server=srv)

    # on_state_change hears of moves, not of self-loops (an outgoing
    # call's Ack); Dial happens inside sip.call(), before the script can
    # set the callback
    cbs = [(r.get("old"), r.get("new"))
           for r in script_lines(srv, "cb_state", case)]
    want_cbs = [(a, b) for a, b, e in want_tr if a != b and e != "Dial"]
    h.ok(cbs == want_cbs,
         "%s: call.on_state_change ran for every move of the state (%d)" %
         (case, len(want_cbs)), diag="got: %r" % cbs, server=srv)

    term = script_lines(srv, "terminated", case)
    h.ok(len(term) == 1 and term[0].get("reason") == want_reason and
         term[0].get("end_reason") == want_reason and
         term[0].get("state") == "Ended" and
         term[0].get("terminated") == "true",
         "%s: call.on_terminated(%r) once; call.end_reason=%r, "
         "state Ended, is_terminated()" % (case, want_reason, want_reason),
         diag="got: %r" % term, server=srv)

    hist = script_lines(srv, "history", case)
    got = [(r.get("old"), r.get("new"), r.get("event")) for r in hist]
    ts = [float(r.get("ts", "0")) for r in hist]
    h.ok(got == want_tr and ts == sorted(ts) and ts and
         ts[0] > 1e9, "%s: call:history() lists the %d transitions "
         "with increasing times" % (case, len(want_tr)),
         diag="got: %s\nts: %r" % (fmt_tr(got), ts), server=srv)
    return hist


def hist_time(hist, event):
    """ts of the first history entry with event, or None."""
    for r in hist:
        if r.get("event") == event:
            return float(r["ts"])
    return None


def check_tables(h, srv, case):
    """sip.stats() through a MESSAGE "stats" (callee.lua and caller.lua
    answer it "dialogs=N calls=N"): after the call, the dialog table and
    the call list are empty again."""
    udp = harness.UdpClient(srv.port)
    try:
        r = udp.request("MESSAGE", body="stats", ctype="text/plain",
                        timeout=2.0)
    finally:
        udp.close()
    h.ok(r is not None and r.code == 200 and r.body == b"dialogs=0 calls=0",
         "%s: afterwards sip.stats() gives dialogs=0 calls=0" % case,
         diag="got %r %r" % (r, r.body if r is not None else None),
         server=srv)
