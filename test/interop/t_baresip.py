#!/usr/bin/env python3
"""Interop: calls between sipstack (test/interop/peer.lua) and baresip
(Debian package baresip-core 1.0.0), in both directions, each ended once
by sipstack (BYE from us) and once by baresip (BYE from baresip).

  --case in    baresip dials sipstack: `-e "/dial sip:MODE-PORT@..."`
               (the menu module runs the command). The script rings,
               answers with a PCMU SDP whose media address is a UDP
               socket of this test (PORT), then
                 hangup: hangs up 2 s later (baresip -t 7 is still up)
                 wait:   waits; baresip quits after -t 4 s and hangs up
  --case out   baresip runs with `;answermode=auto`; a MESSAGE "call
               sip:bob@BARESIP MODE PORT" makes the script sip.call() it
               with a PCMU offer, wait for the answer and then hang up
               2 s later (hangup) or wait for baresip's BYE (wait).

baresip runs headless from a config dir in the temp dir: sip_listen and
net_interface 127.0.0.1 (so its SDP says 127.0.0.1 too), modules g711
(PCMU), ausine (a 440 Hz tone as the audio source, 48 kHz stereo,
resampled by baresip to 8 kHz mono), aubridge (the audio player and
the alert/ring player: no sound hardware), menu (runs -e commands,
answer modes), account (module_tmp, reads `accounts`: no registration,
`;regint=0`). stdin is closed; -s prints its SIP trace, which the test
reads.

Checks per call: the INVITE's SDP (either side's offer) carries PCMU
and the answer does too; baresip reports "Call established"; baresip's
RTP (payload type 0) reaches the address of our SDP; the call ends once
on each side: sipstack logs ev=ended with reason="hangup" (we hung up)
or "remote hangup" (baresip did), the script's on_terminated says the
same, baresip's trace has the BYE and its 200 OK and baresip reports
"Call with ... terminated" (a BYE it receives shows as "session closed:
Connection reset by peer", baresip's wording for a remote BYE), with no
warning or error line (yellow, red) in its output; afterwards sip.stats() (MESSAGE "stats")
gives dialogs=0 calls=0; baresip exits 0 by itself; no lvl=error.

Without baresip (or one of the modules above) the test reports itself
skipped (TAP 1..0 # SKIP, naming what is missing).
"""
import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import time

sys.dont_write_bytecode = True   # no __pycache__ in the source tree
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "sipp"))
import harness  # noqa: E402

LOCAL = harness.LOCAL
SCRIPT = os.path.join(HERE, "peer.lua")
MODULES = ("g711.so", "ausine.so", "aubridge.so", "menu.so", "account.so")
MODULE_DIRS = ("/usr/lib/baresip/modules",
               "/usr/lib/x86_64-linux-gnu/baresip/modules",
               "/usr/local/lib/baresip/modules")
HOLD = 2                  # peer.lua: seconds from the answer to our BYE
RUN_FOR = {"hangup": 7,   # baresip -t: still up when we hang up
           "wait": 4}     # baresip quits first and hangs up
MIN_RTP = 10              # packets of 20 ms that must reach us


def args(ap):
    ap.add_argument("--baresip", default=shutil.which("baresip") or "",
                    help="path of baresip")
    ap.add_argument("--case", choices=("in", "out"), required=True)


def module_dir():
    for d in MODULE_DIRS:
        if os.path.exists(os.path.join(d, "account.so")):
            return d
    return None


def missing(extra_modules=()):
    """Why the test cannot run, or None: baresip named by --baresip on
    the command line (as meson passes it) and its modules, ours and
    extra_modules (e.g. "cons.so"). Shared by every baresip test."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--baresip", default=shutil.which("baresip") or "")
    known, _ = pre.parse_known_args()
    if not known.baresip or not os.access(known.baresip, os.X_OK):
        return "baresip is not installed (Debian package baresip-core)"
    d = module_dir()
    if d is None:
        return "no baresip module directory (%s)" % ", ".join(MODULE_DIRS)
    lack = [m for m in MODULES + tuple(extra_modules)
            if not os.path.exists(os.path.join(d, m))]
    if lack:
        return "baresip modules missing in %s: %s" % (d, ", ".join(lack))
    return None


# ---------------------------------------------------------------------
# baresip
# ---------------------------------------------------------------------

class Baresip:
    """One headless baresip with a config dir of its own; its microphone
    is ausine's tone of `tone` Hz."""

    def __init__(self, h, name, account, run_for, commands=(), tone=440):
        self.h = h
        self.name = name
        # sip_listen's port for UDP and TCP, and the one above it free
        # too: baresip 1.0 listens for SIP over TLS at port + 1 and
        # fails to start if that is taken ("ua: SIP/TLS transport
        # failed: Address already in use")
        self.port = harness.free_port(("udp", "tcp"), span=2)
        self.conf = os.path.join(h.tmp, name)
        os.makedirs(self.conf)
        dev = name    # aubridge device: player and alert share it
        with open(os.path.join(self.conf, "config"), "w") as f:
            f.write("# written by test/interop/t_baresip.py\n"
                    "poll_method\t\tepoll\n"
                    "sip_listen\t\t%s:%d\n"
                    "net_interface\t\t%s\n"
                    "module_path\t\t%s\n"
                    "module\t\t\tg711.so\n"
                    "module\t\t\tausine.so\n"
                    "module\t\t\taubridge.so\n"
                    "module\t\t\tmenu.so\n"
                    "module_tmp\t\taccount.so\n"
                    "audio_player\t\taubridge,%s\n"
                    "audio_alert\t\taubridge,%s\n"
                    "audio_source\t\tausine,%d\n"
                    "ausrc_srate\t\t48000\n"
                    "ausrc_channels\t\t2\n" % (
                        LOCAL, self.port, LOCAL, module_dir(), dev, dev,
                        tone))
        with open(os.path.join(self.conf, "accounts"), "w") as f:
            f.write(account + "\n")
        self.out_path = os.path.join(h.tmp, name + ".out")
        self.cmd = [h.args.baresip, "-f", self.conf, "-s", "-t",
                    str(run_for)]
        for c in commands:
            self.cmd += ["-e", c]
        self.run_for = run_for
        self.proc = None
        self.rc = None

    def start(self):
        self.h.note("%s: %s" % (self.name, " ".join(self.cmd)))
        with open(self.out_path, "wb") as out:
            self.proc = self.h.spawn(self.cmd, stdout=out,
                                     stderr=subprocess.STDOUT, cwd=self.h.tmp)
        return self

    def text(self):
        try:
            with open(self.out_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def wait_for(self, regex, timeout):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            m = re.search(regex, self.text())
            if m or self.proc.poll() is not None:
                return m or re.search(regex, self.text())
            time.sleep(0.05)
        return None

    def wait(self):
        """Exit status; killed if it outlives -t by 6 s."""
        try:
            self.rc = self.proc.wait(self.run_for + 6)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            self.rc = "killed after %d s" % (self.run_for + 6)
        return self.rc

    def trace(self):
        """The SIP messages of its -s trace, in order, as
        (direction, SipMsg): direction "sent" or "received" from
        baresip's side."""
        out = []
        ours = "%s:%d" % (LOCAL, self.port)
        for m in re.finditer(r"(?ms)^(?:UDP|TCP) (\S+) -> (\S+)\n(.*?)"
                             r"(?=\x1b\[;m|\Z)", self.text()):
            raw = m.group(3).replace("\r\n", "\n").replace("\n", "\r\n")
            msg = harness.SipMsg(raw.encode("utf-8", "replace"))
            out.append(("sent" if m.group(1) == ours else "received", msg))
        return out

    def tail(self, n=30):
        lines = [l for l in self.text().splitlines()
                 if l.strip() and "audio=" not in l]
        return "\n".join(lines[-n:])


def flow(trace):
    return "\n".join("%s %s (%s)" % ("->" if d == "sent" else "<-",
                                     m.start, m.header("CSeq"))
                     for d, m in trace) or "(no SIP trace)"


def pcmu(body):
    """The SDP's audio line lists payload type 0 (PCMU)."""
    m = re.search(rb"(?m)^m=audio \d+ RTP/AVP ([\d ]+)", body or b"")
    return bool(m) and b"0" in m.group(1).split()


# ---------------------------------------------------------------------
# RTP sink and the server's tables
# ---------------------------------------------------------------------

class RtpSink:
    """A UDP socket for the media address of our SDP."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        self.sock.bind((LOCAL, 0))
        self.port = self.sock.getsockname()[1]

    def drain(self):
        """(packets, payload types seen, sources) received so far."""
        self.sock.setblocking(False)
        n, pts, srcs = 0, set(), set()
        while True:
            try:
                data, src = self.sock.recvfrom(4096)
            except (BlockingIOError, InterruptedError):
                break
            if len(data) >= 12 and data[0] >> 6 == 2:
                n += 1
                pts.add(data[1] & 0x7f)
                srcs.add(src[0])
        self.sock.close()
        return n, pts, srcs


def tables(srv):
    """sip.stats() dialogs and calls through MESSAGE "stats"."""
    cl = harness.UdpClient(srv.port)
    try:
        r = cl.request("MESSAGE", body="stats", ctype="text/plain",
                       timeout=2.0)
    finally:
        cl.close()
    if not r or r.code != 200:
        return None
    m = re.match(rb"dialogs=(\d+) calls=(\d+)$", r.body)
    return (int(m.group(1)), int(m.group(2))) if m else None


def script_lines(srv, msg, case):
    return [harness.parse_logfmt(l) for l in
            srv.find({"mod": "script", "ev": "log", "msg": msg,
                      "case": case})]


# ---------------------------------------------------------------------
# One call
# ---------------------------------------------------------------------

def run_call(h, srv, direction, mode, n):
    case = "%s-%s" % (direction, mode)
    sink = RtpSink()
    mark = srv.mark()
    if direction == "in":
        target = "sip:%s-%d@%s:%d" % (mode, sink.port, LOCAL, srv.port)
        bs = Baresip(h, "baresip-%d-%s" % (n, case),
                     "<sip:alice@%s;transport=udp>;regint=0" % LOCAL,
                     RUN_FOR[mode], ["/dial %s" % target]).start()
    else:
        bs = Baresip(h, "baresip-%d-%s" % (n, case),
                     "<sip:bob@%s;transport=udp>;regint=0;"
                     "answermode=auto" % LOCAL, RUN_FOR[mode]).start()
        ready = bs.wait_for(r"baresip is ready", 5.0)
        if not h.ok(ready, "%s: baresip is up (\"baresip is ready.\")" %
                    case, diag=bs.tail()):
            bs.wait()
            sink.drain()
            return
        target = "sip:bob@%s:%d" % (LOCAL, bs.port)
        cl = harness.UdpClient(srv.port)
        r = cl.request("MESSAGE", body="call %s %s %d" % (
            target, mode, sink.port), ctype="text/plain")
        cl.close()
        h.ok(r and r.code == 200, "%s: the script takes the command to "
             "call %s (MESSAGE -> 200)" % (case, target),
             diag="answer: %r" % (r,))

    rc = bs.wait()
    time.sleep(0.3)     # the last log lines of the server
    text = bs.text()
    tr = bs.trace()
    h.note("%s: SIP flow, baresip's side:\n%s" % (case, flow(tr)))

    # the INVITE and its 200, both with PCMU
    inv_dir = "sent" if direction == "in" else "received"
    inv = [m for d, m in tr if d == inv_dir and m.method == "INVITE"]
    ok200 = [m for d, m in tr if d != inv_dir and m.code == 200 and
             "INVITE" in (m.header("CSeq") or "")]
    h.ok(inv and pcmu(inv[0].body) and ok200 and pcmu(ok200[0].body),
         "%s: INVITE offer and 200 answer both carry PCMU (RTP/AVP 0)" %
         case, diag=flow(tr))
    callid = inv[0].header("Call-ID") if inv else None
    h.ok(re.search(r"Call established: ", text),
         "%s: baresip reports \"Call established\"" % case,
         diag=bs.tail())

    # the script's view
    if direction == "in":
        rec = script_lines(srv, "incoming", case)
        h.ok(len(rec) == 1 and rec[0].get("offer_pcmu") == "true" and
             rec[0].get("call_id") == callid,
             "%s: the script got the call (on_incoming_call, offer with "
             "PCMU)" % case, diag="%r / Call-ID %r" % (rec, callid),
             server=srv)
    else:
        rec = script_lines(srv, "answered", case)
        h.ok(len(rec) == 1 and rec[0].get("ok") == "true" and
             rec[0].get("answer_pcmu") == "true",
             "%s: call:wait_answer() gives true, baresip's answer has "
             "PCMU" % case, diag="%r" % (rec,), server=srv)
        h.ok(re.search(r"answering call .* with 200", text),
             "%s: baresip auto-answers (\"answering call ... with 200\")" %
             case, diag=bs.tail())

    # media
    npk, pts, srcs = sink.drain()
    h.ok(npk >= MIN_RTP and pts == {0} and srcs == {LOCAL},
         "%s: baresip's RTP reaches the address of our SDP (%d packets, "
         "payload types %s)" % (case, npk, sorted(pts)))

    # the end, on both sides
    want = "hangup" if mode == "hangup" else "remote hangup"
    ends = [harness.parse_logfmt(l).get("reason") for l in
            srv.find({"mod": "call", "ev": "ended", "callid": callid or "?"},
                     mark)]
    h.ok(ends == [want], "%s: sipstack logs one ev=ended reason=%r" %
         (case, want), diag="got %r" % (ends,), server=srv)
    term = script_lines(srv, "terminated", case)
    h.ok(len(term) == 1 and term[0].get("reason") == want and
         term[0].get("state") == "Ended",
         "%s: on_terminated(%r), state Ended" % (case, want),
         diag="%r" % (term,), server=srv)
    bye_dir = "received" if mode == "hangup" else "sent"
    byes = [m for d, m in tr if d == bye_dir and m.method == "BYE" and
            m.header("Call-ID") == callid]
    bye_ok = [m for d, m in tr if d != bye_dir and m.code == 200 and
              "BYE" in (m.header("CSeq") or "") and
              m.header("Call-ID") == callid]
    h.ok(byes and bye_ok,
         "%s: BYE from %s answered 200 OK (baresip's trace)" % (
             case, "sipstack" if mode == "hangup" else "baresip"),
         diag=flow(tr))
    other = [m for d, m in tr if d != bye_dir and m.method == "BYE"]
    h.ok(not other, "%s: no BYE the other way" % case, diag=flow(tr))
    h.ok(re.search(r"Call with \S+ terminated \(duration: \d+ secs?\)",
                   text),
         "%s: baresip reports \"Call with ... terminated\"" % case,
         diag=bs.tail())
    h.ok(rc == 0, "%s: baresip -t %d exits by itself, status 0 (%s)" %
         (case, bs.run_for, rc), diag=bs.tail())
    # baresip prints warnings in yellow and errors in red
    bad = re.findall(r"\x1b\[3[13]m([^\x1b]*)", text)
    h.ok(not bad, "%s: baresip printed no warning or error" % case,
         diag="\n".join(b.strip() for b in bad[:10]))
    t = tables(srv)
    h.ok(t == (0, 0), "%s: afterwards sip.stats() gives dialogs=0 calls=0"
         % case, diag="got %r" % (t,), server=srv)


def body(h, a):
    srv = h.server(SCRIPT)
    for n, mode in enumerate(("hangup", "wait"), 1):
        run_call(h, srv, a.case, mode, n)
    h.stop_server(srv, must_not=[{"ev": "hook_error"}])


if __name__ == "__main__":
    why = missing()
    if why:
        print("1..0 # SKIP %s" % why)
        sys.exit(0)
    harness.test_main("interop: calls with baresip", body, extra_args=args)
