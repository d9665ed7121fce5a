#!/usr/bin/env python3
"""test/websocket/t_wire.py  SIP over WebSocket (RFC 7118) on the wire

The real server with a copy of scripts/registrar.lua (digest, SQLite)
listening on udp:, ws: and wss: (a throwaway self-signed certificate made
with the openssl CLI), against wslib.py's WebSocket client (no browser):

  - the handshake: 101 with Sec-WebSocket-Protocol: sip and the right
    Sec-WebSocket-Accept;
  - REGISTER over ws: 401, then 200 with the digest computed here;
  - a MESSAGE sent over UDP to that user is relayed by the script to the
    browser-like client over its WebSocket connection (its Contact is an
    unresolvable .invalid host, as a browser's), the client's 200 goes
    back to the UDP sender; the same over wss: with the certificate
    verified;
  - refused handshakes (RFC 6455 §4.2: 400 without the sip
    subprotocol or a key, 426 with Sec-WebSocket-Version: 13 for no
    upgrade or another version, 405 for POST; garbage: no 101) and
    broken frames (longer than 64 KiB, a 64-bit
    length near 2^64, unmasked) get their refusal and the server keeps
    serving;
  - a client that vanishes (RST, no close frame): a MESSAGE to it fails
    (480) and the server keeps serving;
  - the metrics count requests with transport="ws";
  - the log has no lvl=error line.

--case idle (35 s): libre 1.1.0 would cut every WebSocket connection 32 s
after its accept; a registered client that stays quiet for 34 s still
gets a MESSAGE relayed, and one that opened the connection but never
sent a frame is closed (1001) by then.

usage: t_wire.py --sipstack BUILD/sipstack [--case main|idle]
"""
import os
import struct
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "registrar"))
sys.path.insert(0, HERE)
import reglib  # noqa: E402
import wslib  # noqa: E402

h_ = reglib.harness
LOCAL = reglib.LOCAL
H = "df7jal23ls0d.invalid"     # the made-up host of a browser (RFC 7118)


class Browser:
    """A user agent over one WebSocket connection"""

    def __init__(self, h, port, user, password, tls_ca=None):
        self.h = h
        self.user = user
        self.password = password
        self.transport = "WSS" if tls_ca else "WS"
        self.ws = wslib.WsClient(port, tls_ca=tls_ca)
        self.aor = "sip:%s@%s" % (user, LOCAL)
        self.contact = "<sip:%s@%s;transport=%s>" % (
            user, H, self.transport.lower())
        self.callid = "%s-%s" % (os.urandom(6).hex(), user)
        self.cseq = 0

    def request(self, method, ruri, to=None, **kw):
        self.cseq += 1
        return wslib.sip_request(method, ruri, self.aor, to or self.aor, H,
                                 self.callid, self.cseq,
                                 transport=self.transport, **kw)

    def final(self, timeout=5.0):
        while True:
            m = self.ws.recv_sip(timeout)
            if m is None:
                return None
            r = h_.SipMsg(m)
            if r.code is None or r.code >= 200:
                return r

    def register(self, expires=600):
        ruri = "sip:%s" % LOCAL
        ex = ["Expires: %d" % expires]
        self.ws.send_frame(self.request("REGISTER", ruri,
                                        contact=self.contact, extra=ex))
        r = self.final()
        first = r
        if r is not None and r.code == 401:
            ch = reglib.parse_challenge(r.header("WWW-Authenticate"))
            a = reglib.digest_authorization(self.user, self.password,
                                            ch.get("nonce"), ruri)
            self.ws.send_frame(self.request(
                "REGISTER", ruri, contact=self.contact,
                extra=ex + ["Authorization: " + a]))
            r = self.final()
        return first, r


def relay_check(h, b, srv, label):
    """A MESSAGE from UDP to b's AOR arrives over b's connection; b's
    answer goes back to the UDP sender."""
    cl = h_.UdpClient(srv.port)
    body = "hello %s over %s" % (b.user, label)
    try:
        br = cl.send("MESSAGE", uri=b.aor, set={"To": "<%s>" % b.aor},
                     ctype="text/plain", body=body)
        got = b.ws.recv_sip(5.0)
        m = h_.SipMsg(got) if got else None
        h.ok(m is not None and m.method == "MESSAGE" and
             m.body.decode() == body,
             "%s: the MESSAGE to %s came over its connection" % (label,
                                                                 b.aor),
             diag=repr(got))
        if m is not None:
            h.ok(m.start.startswith("MESSAGE sip:%s@%s" % (b.user, H)) and
                 ("SIP/2.0/%s " % b.transport) in (m.header("Via") or ""),
                 "%s: Request-URI is the Contact, Via is %s" % (
                     label, b.transport), diag=m.start + " | " +
                 str(m.header("Via")))
            b.ws.send_frame(wslib.sip_response_to(got, 200, "OK"))
        r = cl.recv(br, 5.0)
        h.ok(r is not None and r.code == 200,
             "%s: the sender got the browser's 200" % label,
             diag=r and r.start)
    finally:
        cl.close()


def options_alive(h, srv, desc):
    cl = h_.UdpClient(srv.port)
    try:
        r = cl.request("OPTIONS", uri="sip:%s:%d" % (LOCAL, srv.port))
    finally:
        cl.close()
    h.ok(r is not None and r.code == 200 and srv.alive(), desc,
         diag=r and r.start)


def body_idle(h):
    script, db = reglib.bundled_copy(h)
    reglib.add_users(h, db, [("alice", "wonder")])
    srv, ws, _ = wslib.start_server(h, h_, script)

    a = Browser(h, ws, "alice", "wonder")
    a.ws.handshake()
    _, r = a.register()
    h.ok(r is not None and r.code == 200, "alice registered over ws",
         diag=r and r.start)
    mute = wslib.WsClient(ws)
    st = mute.handshake()
    h.ok(st == 101, "a second client opened a connection (%s)" % st)

    # quiet for longer than libre's 32 s accept timer; the server's
    # pings (every 15 s) are answered, as a browser does
    end = time.monotonic() + 34
    quiet = True
    while quiet and time.monotonic() < end:
        m = a.ws.recv_sip(max(0.1, end - time.monotonic()))
        quiet = m is None and a.ws.close_code is None and not a.ws.eof
    h.ok(quiet, "alice's connection stayed open and quiet for 34 s",
         diag="close code %s" % a.ws.close_code)
    relay_check(h, a, srv, "ws after 34 s of silence")
    code = mute.wait_close(3.0)
    h.ok(code == 1001, "the connection that never sent a frame was "
         "closed after 32 s (%s)" % code)
    mute.close()
    a.ws.close()
    h.stop_server(srv)


def body(h, args):
    if args.case == "idle":
        return body_idle(h)
    cert, both = wslib.make_cert(h, h_)
    for extra, name in (([], "without --tls-cert"),
                        (["--tls-cert", cert, "--tls-key",
                          os.path.join(h.tmp, "key.pem")],
                         "with a separate --tls-key")):
        rc, out, err = h.run([h.sipstack, "--listen", "wss:127.0.0.1:1"] +
                             extra + ["x.lua"], timeout=10)
        h.ok(rc == 2 and "needs --tls-cert FILE" in err,
             "wss: %s refused at start (exit 2, the reason said)" % name,
             diag="exit %s: %s" % (rc, err))
    script, db = reglib.bundled_copy(h)
    reglib.add_users(h, db, [("alice", "wonder"), ("bob", "builder"),
                             ("carol", "singer")])

    mport = h_.free_port(("tcp",))
    srv, ws, wss = wslib.start_server(
        h, h_, script, wss=True,
        args=["--tls-cert", both, "--metrics", "%s:%d" % (LOCAL, mport)])
    h.ok(srv.find(r"ev=listen transport=WS addr=127\.0\.0\.1:%d" % ws) and
         srv.find(r"ev=listen transport=WSS addr=127\.0\.0\.1:%d" % wss),
         "ws: and wss: listeners logged")

    # -- ws: handshake, REGISTER, a MESSAGE relayed ---------------------
    a = Browser(h, ws, "alice", "wonder")
    st = a.ws.handshake()
    h.ok(st == 101 and a.ws.accept_ok() and
         a.ws.headers.get("sec-websocket-protocol") == "sip",
         "ws: 101 with Sec-WebSocket-Protocol: sip and the right Accept",
         diag="%s %r" % (st, a.ws.headers))
    first, r = a.register()
    h.ok(first is not None and first.code == 401,
         "ws: REGISTER without credentials: 401",
         diag=first and first.start)
    h.ok(r is not None and r.code == 200 and
         ("@%s" % H) in (r.header("Contact") or ""),
         "ws: REGISTER with digest: 200 listing the .invalid Contact",
         diag=r and reglib.desc_resp(r))
    bs = reglib.where(srv, a.aor)
    h.ok(bs and bs[0][0].startswith("sip:alice@%s" % H),
         "the binding is stored (MESSAGE where)", diag=repr(bs))
    relay_check(h, a, srv, "ws")

    # OPTIONS over the WebSocket, answered by the core
    a.ws.send_frame(a.request("OPTIONS", "sip:%s" % LOCAL))
    r = a.final()
    h.ok(r is not None and r.code == 200, "ws: OPTIONS answered 200",
         diag=r and r.start)

    # -- wss: the certificate verified, the same -------------------------
    try:
        c = Browser(h, wss, "carol", "singer", tls_ca=cert)
        st = c.ws.handshake()
    except (OSError, ValueError) as e:
        c, st = None, "%s" % e
    h.ok(st == 101 and c.ws.headers.get("sec-websocket-protocol") == "sip",
         "wss: TLS (certificate verified) and 101 with the subprotocol",
         diag=repr(st))
    if c is not None and st == 101:
        first, r = c.register()
        h.ok(r is not None and r.code == 200, "wss: REGISTER: 200",
             diag=r and r.start)
        relay_check(h, c, srv, "wss")

    # -- refused handshakes ----------------------------------------------
    def raw_get(lines, method="GET"):
        return ("%s / HTTP/1.1\r\nHost: 127.0.0.1\r\n%s\r\n\r\n" % (
            method, "\r\n".join(lines))).encode()
    full = ["Upgrade: websocket", "Connection: Upgrade",
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
            "Sec-WebSocket-Version: 13", "Sec-WebSocket-Protocol: sip"]
    cases = [
        ("no subprotocol", dict(protocol=None), 400, None),
        ("subprotocol xmpp", dict(protocol="xmpp"), 400, None),
        ("no Upgrade header", dict(raw=raw_get(full[1:])), 426,
         "sec-websocket-version"),
        ("version 8", dict(raw=raw_get(full[:3] + [
            "Sec-WebSocket-Version: 8", full[4]])), 426,
         "sec-websocket-version"),
        ("no Sec-WebSocket-Key", dict(raw=raw_get(full[:2] + full[3:])),
         400, None),
        ("POST", dict(raw=raw_get(full, "POST")), 405, "allow"),
        ("a plain GET (a web browser at the URL)",
         dict(raw=raw_get(["Accept: text/html"])), 426, "upgrade"),
    ]
    for name, kw, want, hdr in cases:
        w = wslib.WsClient(ws)
        st = w.handshake(**kw)
        w.close()
        h.ok(st == want and (hdr is None or hdr in w.headers),
             "handshake with %s: refused %d%s (%s)" % (
                 name, want, " with " + hdr if hdr else "", st),
             diag=repr(w.headers))
    w = wslib.WsClient(ws)
    st = w.handshake(raw=b"\x16\x03\x01garbage\x00\xff\r\n\r\n" * 20)
    w.close()
    h.ok(st != 101, "garbage instead of a handshake: no 101 (%s)" % st)
    options_alive(h, srv, "the server answers after the refused "
                  "handshakes")

    # -- broken frames -----------------------------------------------------
    def framed(name, data, want):
        w = wslib.WsClient(ws)
        st = w.handshake()
        if st != 101:
            h.ok(False, "%s: handshake (%s)" % (name, st))
            return
        w.send_raw(data)
        code = w.wait_close(5.0)
        w.close()
        h.ok(code == want, "%s: closed with %s (%s)" % (name, want, code))

    big = b"x" * 70000
    key = os.urandom(4)
    framed("a 70000-byte frame (over 64 KiB)",
           bytes([0x81, 0x80 | 127]) + struct.pack(">Q", len(big)) + key +
           big, 1009)
    framed("a masked frame of length 2^64-2",
           bytes([0x81, 0x80 | 127]) + struct.pack(">Q", 2**64 - 2) + key +
           b"REGISTER", 1009)
    framed("an unmasked frame", bytes([0x81, 5]) + b"hello", 1002)
    options_alive(h, srv, "the server answers after the broken frames")

    # -- a client that vanishes ------------------------------------------
    b = Browser(h, ws, "bob", "builder")
    b.ws.handshake()
    _, r = b.register()
    h.ok(r is not None and r.code == 200, "bob registered over ws",
         diag=r and r.start)
    b.ws.close(abort=True)
    time.sleep(0.3)
    cl = h_.UdpClient(srv.port)
    t0 = time.monotonic()
    try:
        r = cl.request("MESSAGE", uri=b.aor, set={"To": "<%s>" % b.aor},
                       ctype="text/plain", body="anybody?", timeout=15)
    finally:
        cl.close()
    dt = time.monotonic() - t0
    h.ok(r is not None and r.code == 480,
         "MESSAGE to the vanished client: 480 (%.1f s)" % dt,
         diag=r and r.start)
    options_alive(h, srv, "the server answers after the vanished client")
    # alice is still there
    relay_check(h, a, srv, "ws, again")

    # -- metrics -------------------------------------------------------------
    try:
        text = urllib.request.urlopen("http://%s:%d/metrics" % (LOCAL, mport),
                                      timeout=5).read().decode()
    except OSError as e:
        text = str(e)
    h.ok('method="REGISTER",transport="ws"' in text and
         'method="REGISTER",transport="wss"' in text,
         "metrics: REGISTERs counted with transport ws and wss",
         diag="\n".join(l for l in text.splitlines()
                        if "requests_received" in l))
    fig = dict(l.split(" ", 1) for l in text.splitlines()
               if l.startswith("sipstack_websocket_"))
    want = {"sipstack_websocket_connections": "2",       # alice, carol
            # alice, carol, the 3 broken frames, bob
            "sipstack_websocket_accepted_total": "6",
            "sipstack_websocket_refused_total": "7",
            "sipstack_websocket_oversized_total": "2",
            "sipstack_websocket_unrouted_total": "1"}
    h.ok(all(fig.get(k) == v for k, v in want.items()),
         "metrics: the WebSocket figures add up", diag=repr(fig))

    a.ws.close()
    if c is not None:
        c.ws.close()
    h.stop_server(srv, must=[r"ev=listen transport=WS "])


def extra(ap):
    ap.add_argument("--case", default="main", choices=("main", "idle"))


if __name__ == "__main__":
    h_.test_main("SIP over WebSocket on the wire", body, deadline=80,
                 extra_args=extra)
