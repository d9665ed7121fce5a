#!/usr/bin/env python3
"""test/proxy/t_baresip_proxy.py  Two baresip phones call each other
through scripts/proxy.lua (issue 11, item 6; test proxy-baresip)

A copy of the bundled scripts/proxy.lua (its DATABASE in the temp dir,
users alice/secret and bob/secret2 added with `sipstack user add`) runs
on 127.0.0.1 at --log-level debug. Two baresip 1.0 (Debian package
baresip-core), headless as in test/interop/t_baresip.py (its Baresip
class: ausine 440 Hz as microphone, aubridge as speaker, a config dir
and a free port each) plus the cons module (the test types /dial,
/hangup and /quit into it over UDP) and `rtp_stats yes` (each call's
packet counts printed when it ends), with the account

  <sip:USER@127.0.0.1>;auth_pass=PASSWORD;outbound="sip:127.0.0.1:PORT";
  regint=600;answermode=auto

(the domain without a port, the proxy as outbound proxy: README "Run
it as a registrar"; answermode=auto: baresip answers by itself).

Checks:
  - both register with digest (401, then 200 "[1 binding]");
  - call 1, alice dials sip:bob@127.0.0.1: her INVITE is challenged
    (407) and sent again with Proxy-Authorization (the proxy logs
    ev=auth_ok user=alice), the proxy forks it to bob's contact with
    its Record-Route; bob answers by himself; "Call established" on
    both sides; the SDP bodies reach the other phone untouched;
  - audio end to end, both ways: each baresip reports incoming RTP
    from the OTHER baresip's SDP address and port (media goes peer to
    peer, never through the proxy) and a received bit rate above zero
    in its status line, and, at the end of the call, received packets
    in its RTP statistics;
  - alice hangs up: her BYE goes along the Route to the proxy, which
    forwards it to bob (its Via on top), 200 back; bob reports the
    call closed ("session closed: Connection reset by peer", baresip's
    words for a remote BYE) and both "Call with ... terminated";
  - call 2: the same with bob calling alice and bob hanging up;
  - afterwards: no proxy transaction left (metrics), OPTIONS -> 200;
    both baresips /quit, unregistering (the proxy then answers 404 for
    bob) and exit 0; neither printed a warning or error; the server
    stops cleanly with no lvl=error and no hook error.

Without baresip (or one of its modules) the test reports itself
skipped (TAP 1..0 # SKIP). About 7 s.
"""
import os
import re
import shutil
import subprocess
import sys
import time

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
TEST = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(TEST, "registrar"))
sys.path.insert(0, os.path.join(TEST, "sipp"))
sys.path.insert(0, HERE)
# first: test/registrar has a t_baresip.py of its own
sys.path.insert(0, os.path.join(TEST, "interop"))
import harness  # noqa: E402
import reglib  # noqa: E402
import t_baresip as tb  # noqa: E402
import t_baresip_xfer as tx  # noqa: E402
import t_proxy  # noqa: E402

LOCAL = harness.LOCAL
USERS = (("alice", "secret"), ("bob", "secret2"))
RUN_FOR = 50        # baresip -t: a bound only; the test sends /quit
WAIT = 10.0         # any one step of a phone (loaded machine: generous)
MIN_RX = 25         # packets of 20 ms each phone must have received


def args(ap):
    ap.add_argument("--baresip", default=shutil.which("baresip") or "",
                    help="path of baresip")




# ---------------------------------------------------------------------
# A phone: baresip registered to the proxy
# ---------------------------------------------------------------------

def phone(h, srv, user, password):
    acc = ('<sip:%s@%s>;auth_pass=%s;outbound="sip:%s:%d";regint=600;'
           'answermode=auto' % (user, LOCAL, password, LOCAL, srv.port))
    bs = tx.with_console(tb.Baresip(h, user, acc, RUN_FOR))
    with open(os.path.join(bs.conf, "config"), "a") as f:
        f.write("rtp_stats\t\tyes\n")
    bs.user = user
    bs.aor = "sip:%s@%s" % (user, LOCAL)
    return bs.start()


def wait_in(bs, off, regex, timeout=WAIT):
    """The first match of regex in bs's output after offset off, waiting
    up to timeout s (None: not seen, or baresip exited)."""
    end = time.monotonic() + timeout
    while True:
        m = re.search(regex, bs.text()[off:])
        if m or bs.proc.poll() is not None or time.monotonic() >= end:
            return m or re.search(regex, bs.text()[off:])
        time.sleep(0.05)


def of_call(bs, callid):
    """bs's trace of one call: (direction, SipMsg) with that Call-ID."""
    return [(d, m) for d, m in bs.trace() if m.header("Call-ID") == callid]


def media(msg):
    """(address, port) of the SDP's audio stream, or None."""
    body = msg.body or b""
    c = re.search(rb"(?m)^c=IN IP4 (\S+)", body)
    m = re.search(rb"(?m)^m=audio (\d+) RTP/AVP", body)
    return (c.group(1).decode(), int(m.group(1))) if c and m else None


def tail(bs):
    return "%s:\n%s" % (bs.name, bs.tail())


# ---------------------------------------------------------------------
# One call: x dials y, y answers by itself, audio both ways, x hangs up
# ---------------------------------------------------------------------

def call(h, srv, x, y):
    case = "%s calls %s" % (x.user, y.user)
    ox, oy = len(x.text()), len(y.text())
    mark = srv.mark()
    tx.command(x, "/dial %s" % y.aor)

    ex = wait_in(x, ox, r"Call established: %s\b" % re.escape(y.aor))
    ey = wait_in(y, oy, r"Call established: %s\b" % re.escape(x.aor))
    h.ok(ex and ey, "%s: \"Call established\" on both sides" % case,
         diag=tail(x) + "\n" + tail(y), server=srv)
    h.ok(re.search(r"answering call on line \d+ from %s with 200" %
                   re.escape(x.aor), y.text()[oy:]),
         "%s: %s answered by itself (answermode=auto)" % (case, y.user),
         diag=tail(y))

    # the INVITE: 407, again with credentials, through the proxy
    invs = [m for d, m in x.trace() if d == "sent" and
            m.method == "INVITE" and m.start.split(" ")[1] == y.aor]
    callid = invs[-1].header("Call-ID") if invs else None
    xt, yt = of_call(x, callid), of_call(y, callid)
    h.note("%s: SIP flow, %s's side:\n%s\n%s's side:\n%s" % (
        case, x.user, tb.flow(xt), y.user, tb.flow(yt)))
    sent_inv = [m for d, m in xt if d == "sent" and m.method == "INVITE"]
    got_407 = [m for d, m in xt if d == "received" and m.code == 407 and
               m.header("Proxy-Authenticate")]
    cred = sent_inv[-1].header("Proxy-Authorization") if sent_inv else None
    h.ok(len(sent_inv) == 2 and got_407 and cred and
         'username="%s"' % x.user in cred and
         all(m.header("Route") == "<sip:%s:%d;lr>" % (LOCAL, srv.port)
             for m in sent_inv),
         "%s: the INVITE via the outbound proxy gets 407, goes again with "
         "Proxy-Authorization" % case, diag=tb.flow(xt))
    h.ok(srv.find({"mod": "auth", "ev": "auth_ok", "callid": callid or "?",
                   "user": x.user}, mark),
         "%s: the proxy checked %s's digest (ev=auth_ok)" % (case, x.user),
         server=srv)
    branch = srv.find({"mod": "proxy", "ev": "branch",
                       "callid": callid or "?"}, mark)
    h.ok(branch and ("@%s:%d" % (LOCAL, y.port)) in branch[0],
         "%s: the proxy sent the INVITE to %s's registered contact" %
         (case, y.user), diag="%r" % branch[:1], server=srv)
    rr = "<sip:%s:%d;lr>" % (LOCAL, srv.port)
    y_inv = [m for d, m in yt if d == "received" and m.method == "INVITE"]
    h.ok(y_inv and y_inv[0].headers_all("Record-Route") == [rr],
         "%s: %s got the INVITE with our Record-Route" % (case, y.user),
         diag=y_inv and repr(y_inv[0].headers), server=srv)

    # the SDP: each side's offer/answer reaches the other untouched
    x_sdp = media(sent_inv[-1]) if sent_inv else None
    y_sdp = [media(m) for d, m in yt if d == "sent" and m.code == 200 and
             "INVITE" in (m.header("CSeq") or "")]
    y_sdp = y_sdp[0] if y_sdp else None
    x_got = [media(m) for d, m in xt if d == "received" and m.code == 200
             and "INVITE" in (m.header("CSeq") or "")]
    y_got = media(y_inv[0]) if y_inv else None
    h.ok(x_sdp and y_sdp and x_sdp != y_sdp and y_got == x_sdp and
         x_got and x_got[0] == y_sdp and
         srv.port not in (x_sdp[1], y_sdp[1]),
         "%s: the offer (%s:%s) and answer (%s:%s) pass the proxy "
         "untouched" % ((case,) + (x_sdp or ("?", "?")) +
                        (y_sdp or ("?", "?"))),
         diag="offer %r -> %r, answer %r -> %r" % (x_sdp, y_got, y_sdp,
                                                   x_got))

    # audio end to end, both ways
    for me, me_off, peer_sdp in ((x, ox, y_sdp), (y, oy, x_sdp)):
        peer = y if me is x else x
        m = wait_in(me, me_off, r"incoming rtp for 'audio' established, "
                    r"receiving from ([\d.]+):(\d+)")
        src = (m.group(1), int(m.group(2))) if m else None
        h.ok(src and src == peer_sdp,
             "%s: %s receives RTP from %s's media address %s:%s" % (
                 case, me.user, peer.user, *(peer_sdp or ("?", "?"))),
             diag="receiving from %r\n%s" % (src, tail(me)))
    for me, me_off in ((x, ox), (y, oy)):
        m = wait_in(me, me_off, r"audio=(\d+)/([1-9]\d*) \(bit/s\)",
                    WAIT + 5)
        h.ok(m, "%s: %s's received audio bit rate is above zero (status "
             "line audio=tx/rx: %s)" % (case, me.user,
                                        m and m.group(0)),
             diag=tail(me))

    # x hangs up: its BYE along the Route through the proxy
    tx.command(x, "/hangup")
    gone = r"Call with %s terminated \(duration: \d+ secs?\)"
    end_x = wait_in(x, ox, gone % re.escape(y.aor))
    end_y = wait_in(y, oy, gone % re.escape(x.aor))
    closed = re.search(r"session closed: Connection reset by peer",
                       y.text()[oy:])
    h.ok(end_x and end_y and closed,
         "%s: %s hangs up; %s sees the call closed (remote BYE), both "
         "report \"Call with ... terminated\"" % (case, x.user, y.user),
         diag=tail(x) + "\n" + tail(y))
    xt, yt = of_call(x, callid), of_call(y, callid)
    xbye = [m for d, m in xt if d == "sent" and m.method == "BYE"]
    xok = [m for d, m in xt if d == "received" and m.code == 200 and
           "BYE" in (m.header("CSeq") or "")]
    ybye = [m for d, m in yt if d == "received" and m.method == "BYE"]
    yok = [m for d, m in yt if d == "sent" and m.code == 200 and
           "BYE" in (m.header("CSeq") or "")]
    vias = ybye[0].headers_all("Via") if ybye else []
    h.ok(xbye and xbye[0].header("Route") == rr and xok and ybye and yok
         and len(vias) == 2 and
         vias[0].startswith("SIP/2.0/UDP %s:%d;" % (LOCAL, srv.port)),
         "%s: the BYE goes along our Route, through the proxy (its Via "
         "on top at %s), 200 back" % (case, y.user),
         diag="%s's side:\n%s\n%s's side:\n%s\nVias at %s: %r" % (
             x.user, tb.flow(xt), y.user, tb.flow(yt), y.user, vias))
    h.ok(not [m for d, m in yt if d == "sent" and m.method == "BYE"],
         "%s: no BYE the other way" % case, diag=tb.flow(yt))

    # rtp_stats: printed when the call's stream goes
    for me, me_off in ((x, ox), (y, oy)):
        m = wait_in(me, me_off, r"packets:\s+(\d+)\s+(\d+)", 5)
        rx = int(m.group(2)) if m else 0
        h.ok(rx >= MIN_RX, "%s: %s's RTP statistics: %s packets sent, "
             "%d received (at least %d)" % (case, me.user,
                                            m and m.group(1), rx, MIN_RX),
             diag=tail(me))


def scrape_until(port, want, timeout=5.0):
    got = {}
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        got = t_proxy.scrape(port)
        if all(got.get(k) == v for k, v in want.items()):
            break
        time.sleep(0.1)
    return got


def body(h, a):
    path, db = t_proxy.bundled(h)
    if not reglib.add_users(h, db, list(USERS)):
        raise harness.Abort("cannot add the users")
    mport = harness.free_port(("tcp",))
    srv = h.server(path, args=["--log-level", "debug",
                               "--metrics", "%s:%d" % (LOCAL, mport)])
    alice, bob = [phone(h, srv, u, p) for u, p in USERS]

    for bs in (alice, bob):
        m = wait_in(bs, 0, r"%s@%s: \{0/UDP/v4\} 200 OK \(sipstack-proxy\) "
                    r"\[1 binding\]" % (bs.user, re.escape(LOCAL)))
        regs = [m_ for d, m_ in bs.trace() if m_.code in (401, 200) and
                "REGISTER" in (m_.header("CSeq") or "")]
        h.ok(m and [r.code for r in regs[:2]] == [401, 200],
             "%s registers with digest through the proxy: 401, then 200 "
             "[1 binding]" % bs.user, diag=tail(bs), server=srv)
    if not h.ok(srv.find({"mod": "registrar", "ev": "registered",
                          "aor": "sip:alice@%s" % LOCAL, "code": "200"}) and
                srv.find({"mod": "registrar", "ev": "registered",
                          "aor": "sip:bob@%s" % LOCAL, "code": "200"}),
                "the registrar bound sip:alice@%s and sip:bob@%s" %
                (LOCAL, LOCAL), server=srv):
        raise harness.Abort("the phones did not register")

    call(h, srv, alice, bob)
    call(h, srv, bob, alice)

    want = {"sipstack_proxy_transactions": 0}
    got = scrape_until(mport, want)
    h.ok(got.get("sipstack_proxy_transactions") == 0,
         "metrics: no proxy transaction left", diag="%r" % {
             k: v for k, v in got.items() if k.startswith("sipstack_proxy")},
         server=srv)
    cl = harness.UdpClient(srv.port)
    r = cl.request("OPTIONS", uri="sip:%s:%d" % (LOCAL, srv.port))
    h.ok(r and r.code == 200, "the server still answers OPTIONS 200",
         diag=r and r.start, server=srv)

    # both quit, unregistering
    for bs in (alice, bob):
        tx.command(bs, "/quit")
    for bs in (alice, bob):
        try:
            rc = bs.proc.wait(WAIT)
        except subprocess.TimeoutExpired:
            bs.proc.kill()
            bs.proc.wait(5)
            rc = "killed %.0f s after /quit" % WAIT
        h.ok(rc == 0, "%s quits on /quit, status 0 (%s)" % (bs.user, rc),
             diag=tail(bs))
        bad = re.findall(r"\x1b\[3[13]m([^\x1b]*)", bs.text())
        h.ok(not bad, "%s printed no warning or error" % bs.user,
             diag="\n".join(b.strip() for b in bad[:10]))
    r = cl.request("INVITE", uri="sip:bob@%s" % LOCAL, timeout=5,
                   set={"From": "<sip:carol@example.org>;tag=c1"})
    h.ok(r and r.code == 404, "bob unregistered on the way out: a call "
         "to him -> 404", diag=r and r.start, server=srv)
    cl.close()
    h.stop_server(srv, must_not=[{"ev": "hook_error"}])


if __name__ == "__main__":
    why = tb.missing(("cons.so",))
    if why:
        print("1..0 # SKIP %s" % why)
        sys.exit(0)
    harness.test_main("proxy: two baresip phones call each other through "
                      "scripts/proxy.lua", body, extra_args=args)
