#!/usr/bin/env python3
"""test/proxy/t_proxy.py  The stateful proxy on the wire (issue 11)

sipp as callers and as registered phones (several UAS, registered as
bindings of one AOR with hand-made REGISTERs), the proxy running
test/proxy/route.lua (or a copy of the bundled scripts/proxy.lua for
the auth case). One case per run (--case), each on free ports of
127.0.0.1, bounded:

  fork            two bindings ring; one answers, the other gets CANCEL;
                  Record-Route in the INVITE, ACK and BYE through us
  serial-503      serial: the first answers 503, the second 200
  serial-timeout  serial: the first rings past its 2 s branch timeout
                  (CANCEL), the second answers
  cancel          the caller cancels while two branches ring: 487
                  upstream, a CANCEL to each branch
  retry           the script tries again after a failed attempt (503):
                  the second attempt's 200 goes upstream; two branches
                  answering 407 give one 407 with both challenges
  timer-c         a phone rings and never answers: Timer C (3 s in
                  route.lua) cancels its branch, the caller gets 487
  tcp             the caller over TCP, the phone over UDP: two
                  Record-Route entries (RFC 5658), ACK and BYE back
                  through both
  tls             a caller over TLS, a phone over UDP: the INVITE out
                  over UDP with two Record-Route entries, the phone's
                  BYE back to the caller over its TLS connection
  stop            the server stops while a proxied call rings: the
                  caller gets 503, the phone a CANCEL, a clean exit
  raw             raw requests: unknown user 404, a loop 482,
                  Max-Forwards 0 483, Proxy-Require 420, a Lua error
                  500 (and alive);
                  req:relay to the Request-URI; a binding's Path;
                  mode q; forked 2xx;
                  in-dialog requests of dialogs not ours: 481 without
                  our Route, relayed along a loose Route and after a
                  strict router
  auth            scripts/proxy.lua: a call from our own user without
                  credentials 407, with them routed (404: not
                  registered); REGISTER with digest
  readme          the README's walk-through with scripts/proxy.lua:
                  bob registers with sipp (digest) and answers, alice
                  calls him (407, credentials, 200, ACK, BYE)
"""
import os
import re
import signal
import socket
import ssl
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
TEST = os.path.dirname(HERE)
ROOT = os.path.dirname(TEST)
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(TEST, "sipp"))
sys.path.insert(0, os.path.join(TEST, "registrar"))
import harness  # noqa: E402
import reglib   # noqa: E402

LOCAL = harness.LOCAL


def scen(name):
    return os.path.join(HERE, name)


def uas(h, scenario):
    """A sipp phone listening on a free port, ready."""
    sp = h.sipp(scen(scenario), None, calls=1, timeout=20,
                name="uas-%d-%s" % (h.next_id(), scenario[4:-4]))
    h.ok(sp.wait_listening(), "%s listens on %d" % (sp.name, sp.port),
         sipp=sp)
    return sp


def register(h, srv, user, phones, qs=None):
    """One REGISTER binding sip:<user>@127.0.0.1 to each phone (sipp)."""
    rc = reglib.RegClient(srv, user=user)
    contacts = []
    for i, sp in enumerate(phones):
        c = "<sip:%s@%s:%d>" % (user, LOCAL, sp.port)
        if qs:
            c += ";q=%s" % qs[i]
        contacts.append(c)
    r = rc.register(contacts, expires=600)
    rc.close()
    h.ok(r is not None and r.code == 200,
         "REGISTER %s with %d contacts -> 200" % (user, len(phones)),
         diag=reglib.desc_resp(r) if hasattr(reglib, "desc_resp") else
         repr(r), server=srv)


def caller(h, srv, user, scenario="uac-call.xml"):
    return h.sipp(scen(scenario), srv, calls=1, timeout=20,
                  args=["-s", user])


def proxied(srv, case, timeout=5.0):
    line = srv.wait_for({"mod": "script", "ev": "log", "msg": "proxied",
                         "case": case}, timeout)
    return harness.parse_logfmt(line) if line else {}


def received(sp, method):
    return [m for m in sp.messages("received") if m.method == method]


def case_fork(h, srv):
    a = uas(h, "uas-answer.xml")
    b = uas(h, "uas-ring-cancel.xml")
    register(h, srv, "bob", [a, b])
    c = caller(h, srv, "bob")
    h.sipp_ok(c, "caller: INVITE, 200, ACK and BYE through the proxy")
    h.sipp_ok(a, "the phone that answers got ACK and BYE")
    h.sipp_ok(b, "the other phone got CANCEL (200, 487, ACK)")
    inv = received(a, "INVITE")
    rr = inv[0].header("Record-Route") if inv else None
    h.ok(rr and re.search(r"<sip:127\.0\.0\.1:%d;lr>" % srv.port, rr),
         "the forwarded INVITE carries our Record-Route",
         diag="Record-Route: %r" % rr, sipp=a)
    vias = [v for n, v in inv[0].headers if n.lower() == "via"] \
        if inv else []
    h.ok(len(vias) == 2 and "received=127.0.0.1" in vias[1] and
         "branch=z9hG4bK" in vias[0],
         "two Vias: ours, then the caller's with received",
         diag="%r" % vias, sipp=a)
    mf = inv[0].header("Max-Forwards") if inv else None
    h.ok(mf == "69", "Max-Forwards 70 -> 69", diag="got %r" % mf, sipp=a)
    bye = received(a, "BYE")
    h.ok(bye and not bye[0].header("Route"),
         "the BYE reached the phone with our Route taken off",
         diag="%r" % (bye and bye[0].headers), sipp=a)
    r = proxied(srv, "bob")
    h.ok(r.get("code") == "200" and r.get("answered") == "true",
         "req:proxy returned the forwarded 200", diag="%r" % r, server=srv)

    # the proxy's metrics: one attempt, the ACK and the BYE relayed,
    # nothing left alive once the cancelled branch ended
    want = {"sipstack_proxy_acks_total": 1,
            "sipstack_proxy_relayed_total": 1,
            "sipstack_proxy_transactions": 0}
    got = {}
    end = time.monotonic() + 5
    while time.monotonic() < end:
        got = scrape(h.metrics_port)
        if all(got.get(k) == v for k, v in want.items()):
            break
        time.sleep(0.1)
    h.ok(all(got.get(k) == v for k, v in want.items()) and
         got.get("sipstack_proxy_attempts_total", 0) == 1 and
         got.get("sipstack_proxy_stray_responses_total", 0) >= 1,
         "metrics: %s, one attempt (the INVITE; the BYE went without "
         "state), its 200 a stray" % want,
         diag="%r" % {k: v for k, v in got.items()
                      if k.startswith("sipstack_proxy")}, server=srv)


def scrape(port):
    """{name: value} of the unlabelled samples at /metrics."""
    try:
        with urllib.request.urlopen("http://%s:%d/metrics" % (LOCAL, port),
                                    timeout=2) as r:
            text = r.read().decode()
    except OSError:
        return {}
    out = {}
    for line in text.splitlines():
        m = re.match(r"^([a-z_]+) ([0-9.e+-]+)$", line)
        if m:
            out[m.group(1)] = float(m.group(2))
    return out


def case_retry(h, srv):
    a = uas(h, "uas-503.xml")
    b = uas(h, "uas-answer.xml")
    register(h, srv, "retry", [a])
    register(h, srv, "retryvm", [b])
    c = caller(h, srv, "retry")
    h.sipp_ok(c, "caller: 200 from the second attempt")
    h.sipp_ok(a, "first phone: 503")
    h.sipp_ok(b, "second phone: answered, ACK, BYE")
    r = proxied(srv, "retry")
    h.ok(r.get("code") == "200" and r.get("answered") == "true",
         "the second req:proxy returned the forwarded 200",
         diag="%r" % r, server=srv)
    h.ok(srv.find({"msg": "retrying", "case": "retry", "code": "503"}),
         "the first attempt returned 503 to the script", server=srv)

    # RFC 3261 §16.7 item 7: the challenges of every 401/407 branch
    u1, u2 = RawUas(), RawUas()
    rc = reglib.RegClient(srv, user="frank")
    r = rc.register(["<%s>" % u1.uri, "<%s>" % u2.uri], expires=600)
    rc.close()
    h.ok(r and r.code == 200, "REGISTER frank with two raw phones",
         server=srv)
    cl = harness.UdpClient(srv.port)
    br = cl.send("INVITE", uri="sip:frank@%s:%d" % (LOCAL, srv.port))
    for u, realm in ((u1, "one"), (u2, "two")):
        u.answer(407, extra=[("Proxy-Authenticate",
                              'Digest realm="%s", nonce="n%s"' %
                              (realm, realm))])
    r = cl.recv(br, timeout=5)
    got = [v for n, v in (r.headers if r else [])
           if n.lower() == "proxy-authenticate"]
    h.ok(r and r.code == 407 and len(got) == 2 and
         any('realm="one"' in v for v in got) and
         any('realm="two"' in v for v in got),
         "two branches answering 407: one 407 upstream with both "
         "challenges", diag="%s %r" % (r and r.start, got), server=srv)
    cl.close()
    u1.close()
    u2.close()


def case_timer_c(h, srv):
    a = uas(h, "uas-ring-cancel.xml")
    register(h, srv, "erin", [a])
    mark = srv.mark()
    c = caller(h, srv, "erin", "uac-call-487.xml")
    h.sipp_ok(c, "caller: 180, then 487 once Timer C fired", timeout=25)
    h.sipp_ok(a, "the phone got a CANCEL (200, 487, ACK)")
    line = srv.find({"mod": "proxy", "ev": "timer_c"}, mark)
    h.ok(line and "proceeding=yes" in line[0],
         "Timer C fired on a branch that rang (ev=timer_c proceeding=yes)",
         diag="%r" % line, server=srv)
    r = proxied(srv, "erin")
    h.ok(r.get("code") == "487" and r.get("branches") == "487c",
         "req:proxy returned the branch's real 487 (cancelled)",
         diag="%r" % r, server=srv)


def case_tcp(h, srv):
    a = uas(h, "uas-answer.xml")
    register(h, srv, "dave", [a])
    c = h.sipp(scen("uac-call.xml"), srv, calls=1, timeout=20,
               transport="tcp", args=["-s", "dave"])
    h.sipp_ok(c, "caller over TCP: INVITE, 200, ACK and BYE")
    h.sipp_ok(a, "the phone over UDP got INVITE, ACK and BYE")
    inv = received(a, "INVITE")
    rrs = [v for n, v in inv[0].headers if n.lower() == "record-route"] \
        if inv else []
    want = ["<sip:127.0.0.1:%d;lr>" % srv.port,
            "<sip:127.0.0.1:%d;transport=tcp;lr>" % srv.port]
    h.ok(rrs == want, "two Record-Route entries: the UDP side first, "
         "then the TCP side", diag="got %r" % rrs, sipp=a)
    ok200 = [m for m in c.messages("received") if m.code == 200]
    h.ok(ok200 and ok200[0].header("Record-Route"),
         "the caller's 200 carries the Record-Route", sipp=c)


def tls_read(sock, timeout=3.0):
    """The next SIP message on a TLS (stream) socket, or None."""
    sock.settimeout(timeout)
    data = b""
    try:
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(4096)
            if not chunk:
                return None
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        m = re.search(rb"(?im)^(?:content-length|l)\s*:\s*(\d+)", head)
        n = int(m.group(1)) if m else 0
        while len(rest) < n:
            rest += sock.recv(4096)
    except (OSError, ssl.SSLError):
        return None
    return harness.SipMsg(head + b"\r\n\r\n" + rest[:n])


def case_tls(h, _srv):
    cert = os.path.join(h.tmp, "cert.pem")
    key = os.path.join(h.tmp, "key.pem")
    rc_, out, err = h.run(["openssl", "req", "-x509", "-newkey",
                           "rsa:2048", "-nodes", "-keyout", key, "-out",
                           cert, "-days", "2", "-subj", "/CN=127.0.0.1",
                           "-addext", "subjectAltName=IP:127.0.0.1"],
                          timeout=60)
    h.ok(rc_ == 0, "a self-signed certificate", diag=err)
    udp = harness.free_port(("udp",))
    tls = harness.free_port(("tcp",))
    srv = h.server(os.path.join(HERE, "route.lua"),
                   listen=["udp:%s:%d" % (LOCAL, udp),
                           "tls:%s:%d" % (LOCAL, tls)],
                   args=["--tls-cert", cert, "--tls-key", key])
    srv.port = udp
    ua = RawUas()
    register(h, srv, "tess", [ua])

    ctx = ssl.create_default_context(cafile=cert)
    t = ctx.wrap_socket(socket.create_connection((LOCAL, tls), timeout=3),
                        server_hostname=LOCAL)
    me = "%s:%d" % t.getsockname()
    contact = "sip:caller@%s;transport=tls" % me
    inv = ("INVITE sip:tess@%s:%d SIP/2.0\r\n"
           "Via: SIP/2.0/TLS %s;branch=z9hG4bK-tls-1;rport\r\n"
           "Max-Forwards: 70\r\n"
           "From: <sip:caller@%s>;tag=tls1\r\n"
           "To: <sip:tess@%s>\r\n"
           "Call-ID: tls-%s@%s\r\nCSeq: 1 INVITE\r\n"
           "Contact: <%s>\r\nContent-Length: 0\r\n\r\n" %
           (LOCAL, tls, me, LOCAL, LOCAL, me.replace(":", "-"), LOCAL,
            contact))
    t.sendall(inv.encode())

    got = ua.recv(3.0)
    rrs = [v for n, v in got.headers if n.lower() == "record-route"] \
        if got else []
    want = ["<sip:%s:%d;lr>" % (LOCAL, udp),
            "<sip:%s:%d;transport=tls;lr>" % (LOCAL, tls)]
    h.ok(got and got.method == "INVITE" and rrs == want,
         "the INVITE from TLS leaves over UDP with two Record-Route "
         "entries, the UDP side first", diag="%r" % rrs, server=srv)
    if got is None:
        return
    ua.reply(got, 200, extra=[("Contact", "<%s>" % ua.uri)] +
             [("Record-Route", v) for v in rrs])
    codes = []
    for _ in range(3):
        m = tls_read(t)
        if m is None:
            break
        codes.append(m.code)
        if m.code == 200:
            break
    h.ok(codes and codes[-1] == 200,
         "the caller gets the 200 over TLS", diag="%r" % codes, server=srv)

    # the phone hangs up: its BYE along the route set (reversed)
    bye = ("BYE %s SIP/2.0\r\n"
           "Via: SIP/2.0/UDP %s:%d;branch=z9hG4bK-bye-1;rport\r\n"
           "Max-Forwards: 70\r\n"
           "Route: %s\r\nRoute: %s\r\n"
           "From: <sip:tess@%s>;tag=uas%d\r\n"
           "To: <sip:caller@%s>;tag=tls1\r\n"
           "Call-ID: tls-%s@%s\r\nCSeq: 1 BYE\r\n"
           "Content-Length: 0\r\n\r\n" %
           (contact, LOCAL, ua.port, rrs[0] if rrs else "",
            rrs[1] if len(rrs) > 1 else "", LOCAL, ua.port, LOCAL,
            me.replace(":", "-"), LOCAL))
    ua.sock.sendto(bye.encode(), (LOCAL, udp))
    m = tls_read(t)
    h.ok(m and m.method == "BYE" and m.start.split(" ")[1] == contact and
         not m.header("Route"),
         "the phone's BYE reaches the caller over its TLS connection, "
         "both of our Routes off", diag=m and "%s %r" % (m.start,
                                                        m.headers),
         server=srv)
    if m is not None:
        vias = [v for n, v in m.headers if n.lower() == "via"]
        resp = "SIP/2.0 200 OK\r\n%s\r\n%s\r\n%s\r\n%s\r\n%s\r\n" \
               "Content-Length: 0\r\n\r\n" % (
                   "\r\n".join("Via: " + v for v in vias),
                   "From: " + m.header("From"), "To: " + m.header("To"),
                   "Call-ID: " + m.header("Call-ID"),
                   "CSeq: " + m.header("CSeq"))
        t.sendall(resp.encode())
        r = ua.recv(3.0)
        h.ok(r and r.is_response and r.code == 200,
             "the caller's 200 to the BYE reaches the phone over UDP",
             diag=r and r.start, server=srv)
    t.close()
    ua.close()
    h.stop_server(srv)


def case_stop(h, srv):
    ua = RawUas()
    register(h, srv, "stan", [ua])
    cl = harness.UdpClient(srv.port)
    b = cl.send("INVITE", uri="sip:stan@%s:%d" % (LOCAL, srv.port))
    inv = ua.recv(3.0)
    h.ok(inv and inv.method == "INVITE", "the phone rings", server=srv)
    if inv is not None:
        ua.reply(inv, 180)
    r = cl.recv(b, final=False)
    srv.signal(signal.SIGTERM)
    r = cl.recv(b, timeout=5)
    h.ok(r and r.code == 503, "the server stops: the caller gets 503",
         diag=r and r.start, server=srv)
    c = ua.recv(3.0)
    h.ok(c and c.method == "CANCEL", "the phone gets a CANCEL",
         diag=c and c.start, server=srv)
    rc = srv.stop()
    h.ok(rc == 0, "clean exit (%s)" % rc, server=srv)
    h.check_log(srv)
    cl.close()
    ua.close()


def case_serial_503(h, srv):
    a = uas(h, "uas-503.xml")
    b = uas(h, "uas-answer.xml")
    register(h, srv, "serial503", [a, b], qs=["0.9", "0.5"])
    c = caller(h, srv, "serial503")
    h.sipp_ok(c, "caller: 200 after the first branch's 503")
    h.sipp_ok(a, "first phone: INVITE, 503, ACK")
    h.sipp_ok(b, "second phone: answered, ACK, BYE")
    r = proxied(srv, "serial503")
    h.ok(r.get("code") == "200" and r.get("branches") == "503,200",
         "branches in order: 503 then 200", diag="%r" % r, server=srv)
    ob = [harness.parse_logfmt(l).get("code") for l in
          srv.find({"msg": "branch", "case": "serial503"})]
    h.ok(ob == ["503", "200"], "on_branch ran for each branch as it "
         "ended: 503, then 200", diag="%r" % ob, server=srv)
    got = [m.code for m in c.messages("received") if m.is_response and
           m.code >= 300]
    h.ok(not got, "the caller saw no 503", diag="%r" % got, sipp=c)


def case_serial_timeout(h, srv):
    a = uas(h, "uas-ring-cancel.xml")
    b = uas(h, "uas-answer.xml")
    register(h, srv, "serialtimeout", [a, b], qs=["0.9", "0.5"])
    c = caller(h, srv, "serialtimeout")
    h.sipp_ok(c, "caller: 200 from the second phone")
    h.sipp_ok(a, "first phone: rang, CANCEL after the branch timeout")
    h.sipp_ok(b, "second phone: answered")
    r = proxied(srv, "serialtimeout", 10)
    h.ok(r.get("code") == "200" and r.get("branches") == "408*c,200",
         "branches: 408 (made up, cancelled), then 200", diag="%r" % r,
         server=srv)


def case_cancel(h, srv):
    a = uas(h, "uas-ring-cancel.xml")
    b = uas(h, "uas-ring-cancel.xml")
    register(h, srv, "carol", [a, b])
    c = caller(h, srv, "carol", "uac-call-cancel.xml")
    h.sipp_ok(c, "caller: CANCEL -> 200, 487, ACK")
    h.sipp_ok(a, "first phone got CANCEL")
    h.sipp_ok(b, "second phone got CANCEL")
    r = proxied(srv, "carol")
    h.ok(r.get("code") == "487" and r.get("cancelled") == "true" and
         r.get("answered") == "true",
         "req:proxy returned 487, cancelled", diag="%r" % r, server=srv)


def case_raw(h, srv):
    cl = harness.UdpClient(srv.port)
    to = "sip:%%s@%s:%d" % (LOCAL, srv.port)

    r = cl.request("INVITE", uri=to % "nobody")
    h.ok(r and r.code == 404, "unknown user -> 404",
         diag=r and r.start, server=srv)

    r = cl.request("INVITE", uri=to % "loop", timeout=5)
    h.ok(r and r.code == 482, "a request looping back to us -> 482",
         diag=r and r.start, server=srv)

    r = cl.request("INVITE", uri=to % "loop", set={"Max-Forwards": "0"})
    h.ok(r and r.code == 483, "Max-Forwards 0 -> 483",
         diag=r and r.start, server=srv)

    r = cl.request("INVITE", uri=to % "loop",
                   set={"Proxy-Require": "foo, bar"})
    h.ok(r and r.code == 420 and r.header("Unsupported") == "foo, bar",
         "Proxy-Require of an extension we lack -> 420 with Unsupported",
         diag=r and "%s %r" % (r.start, r.headers), server=srv)

    r = cl.request("INVITE", uri=to % "boom")
    h.ok(r and r.code == 500, "a Lua error in routing -> 500",
         diag=r and r.start, server=srv)
    h.ok(srv.find({"ev": "hook_error"}), "the error is logged (hook_error)",
         server=srv)

    r = cl.request("OPTIONS", uri="sip:%s:%d" % (LOCAL, srv.port))
    h.ok(r and r.code == 200, "the server is alive: OPTIONS -> 200",
         diag=r and r.start, server=srv)

    # req:relay: on to the Request-URI (we are an outbound proxy)
    ua = RawUas()
    ruri = "sip:relay@%s:%d" % (LOCAL, ua.port)
    b = cl.send("MESSAGE", uri=ruri, body="hi", ctype="text/plain")
    got = ua.answer(486)
    r = cl.recv(b)
    h.ok(got and got.start == "MESSAGE %s SIP/2.0" % ruri and
         got.header("X-Relayed") == "yes" and got.body == b"hi",
         "req:relay sends the request on to its Request-URI, with the "
         "script's headers and the body", diag=got and repr(got.headers),
         server=srv)
    h.ok(r and r.code == 486, "... and the answer (486) comes back",
         diag=r and r.start, server=srv)
    ua.close()

    # mode "q": the two q=0.9 phones at once, then the q=0.5 one
    hi1, hi2, lo = RawUas(), RawUas(), RawUas()
    rc = reglib.RegClient(srv, user="qmode")
    r = rc.register(["<%s>;q=0.5" % lo.uri, "<%s>;q=0.9" % hi1.uri,
                     "<%s>;q=0.9" % hi2.uri], expires=600)
    rc.close()
    b = cl.send("MESSAGE", uri="sip:qmode@%s:%d" % (LOCAL, srv.port),
                body="q", ctype="text/plain")
    g1 = hi1.recv(2.0)
    g2 = hi2.recv(2.0)
    early = lo.recv(0.3)
    for u, g in ((hi1, g1), (hi2, g2)):
        if g is not None:
            u.reply(g, 480)
    g3 = lo.answer(200)
    r = cl.recv(b)
    h.ok(g1 and g2 and early is None and g3 and r and r.code == 200,
         "mode q: both q=0.9 phones at once, the q=0.5 one only after "
         "their 480s; its 200 upstream", diag="%r %r %r %r %r" % (
             g1, g2, early, g3, r and r.start), server=srv)
    for u in (hi1, hi2, lo):
        u.close()

    # two phones answer at once: both 2xx go upstream (RFC 3261 §16.7:
    # every 2xx, the second one without state)
    p1, p2 = RawUas(), RawUas()
    rc = reglib.RegClient(srv, user="twins")
    rc.register(["<%s>" % p1.uri, "<%s>" % p2.uri], expires=600)
    rc.close()
    b = cl.send("INVITE", uri="sip:twins@%s:%d" % (LOCAL, srv.port))
    i1, i2 = p1.recv(3.0), p2.recv(3.0)
    for u, m in ((p1, i1), (p2, i2)):
        if m is not None:
            u.reply(m, 200, extra=[("Contact", "<%s>" % u.uri)])
    oks = []
    while True:
        r = cl.recv(b, timeout=2.0)
        if r is None:
            break
        oks.append(re.search(r"tag=([^;>\s]+)", r.header("To") or "")
                   .group(1) if r.code == 200 else r.code)
    h.ok(len(oks) == 2 and set(oks) == {"uas%d" % p1.port,
                                         "uas%d" % p2.port},
         "two phones answer: both 200s reach the caller (forked 2xx)",
         diag="%r" % oks, server=srv)
    p1.close()
    p2.close()

    # a binding registered through an edge proxy (Path, RFC 3327): the
    # request goes to the edge, with the Path as Route
    edge = RawUas()
    rc = reglib.RegClient(srv, user="gina")
    contact = "sip:gina@%s:%d" % (LOCAL, 20999)
    r = rc.register(["<%s>" % contact], expires=600,
                    extra=[("Path", "<sip:%s:%d;lr>" % (LOCAL, edge.port)),
                           ("Supported", "path")])
    rc.close()
    h.ok(r and r.code == 200 and r.header("Path"),
         "REGISTER gina through an edge proxy (Path) -> 200 with Path",
         diag=r and r.start, server=srv)
    b = cl.send("MESSAGE", uri="sip:gina@%s:%d" % (LOCAL, srv.port),
                body="hi", ctype="text/plain")
    got = edge.answer(200)
    r = cl.recv(b)
    h.ok(got and got.start == "MESSAGE %s SIP/2.0" % contact and
         got.header("Route") == "<sip:%s:%d;lr>" % (LOCAL, edge.port),
         "a request to gina goes to the edge, her Path as Route, her "
         "Contact as Request-URI", diag=got and "%s %r" % (got.start,
                                                            got.headers),
         server=srv)
    h.ok(r and r.code == 200, "... and the edge's 200 comes back",
         diag=r and r.start, server=srv)
    edge.close()

    # in-dialog requests of dialogs not ours: relayed only along our
    # Record-Route (a loose Route to us, or a strict router's R-URI)
    ua = RawUas()
    tag = {"To": "<sip:x@%s>;tag=made-up" % LOCAL}
    r = cl.request("BYE", uri=ua.uri, set=tag)
    h.ok(r and r.code == 481 and ua.recv(0.3) is None,
         "a BYE with a To tag and no Route to us -> 481, not relayed",
         diag=r and r.start, server=srv)

    us = "sip:%s:%d" % (LOCAL, srv.port)
    b = cl.send("BYE", uri=ua.uri, set=tag,
                extra=[("Route", "<%s;lr>" % us)])
    got = ua.answer(200)
    r = cl.recv(b)
    h.ok(got and got.start == "BYE %s SIP/2.0" % ua.uri and
         not got.header("Route") and got.header("Max-Forwards") == "69",
         "a BYE along our Route (loose) reaches the next hop, our "
         "Route off, Max-Forwards 69", diag=got and repr(got.headers),
         server=srv)
    h.ok(r and r.code == 200, "... and its 200 comes back",
         diag=r and r.start, server=srv)

    # without state (RFC 3261 §16.11): our Via on top, its branch the
    # same for a retransmission (the next hop's transaction absorbs it),
    # another for another request; the 200s come back as strays
    data, b = cl.build("BYE", uri=ua.uri, set=tag,
                       extra=[("Route", "<%s;lr>" % us)])
    cl.sock.sendto(data, cl.dst)
    first = ua.answer(200)
    r1 = cl.recv(b)
    cl.sock.sendto(data, cl.dst)
    again = ua.answer(200)
    r2 = cl.recv(b)
    other = cl.send("BYE", uri=ua.uri, set=tag,
                    extra=[("Route", "<%s;lr>" % us)])
    third = ua.answer(200)
    r3 = cl.recv(other)

    def top_via(m):
        return m.headers_all("Via")[0] if m else ""
    # (ours: "z9hG4bKs" and a hash; libre's branches are hex digits)
    ours = "SIP/2.0/UDP %s:%d;branch=z9hG4bKs" % (LOCAL, srv.port)
    h.ok(first and top_via(first).startswith(ours) and
         len(first.headers_all("Via")) == 2 and
         top_via(again) == top_via(first) and
         third and top_via(third) != top_via(first),
         "a BYE relayed without state: our Via on top, the same branch "
         "for its retransmission, another for the next BYE",
         diag="%r / %r / %r" % (top_via(first), top_via(again),
                                top_via(third)), server=srv)
    h.ok(r1 and r1.code == 200 and r2 and r2.code == 200 and
         r3 and r3.code == 200 and len(r1.headers_all("Via")) == 1,
         "... and each 200 comes back with our Via taken off",
         diag="%r %r %r" % (r1 and r1.headers, r2 and r2.start,
                            r3 and r3.start), server=srv)

    # a Request-URI too long for the room left before the headers
    long_uri = "sip:%s@%s:%d" % ("u" * 400, LOCAL, ua.port)
    b = cl.send("BYE", uri=long_uri, set=tag,
                extra=[("Route", "<%s;lr>" % us)])
    got = ua.answer(200)
    r = cl.recv(b)
    h.ok(got and got.start == "BYE %s SIP/2.0" % long_uri and
         top_via(got).startswith(ours) and r and r.code == 200,
         "a BYE with a 430-character Request-URI is relayed whole and "
         "its 200 comes back", diag="%r %r" % (got and got.start[:60],
                                              r and r.start), server=srv)

    # a next hop over TCP is for the stateful path (no DNS here: the
    # tests run without one): a refused connection is a 503 of ours,
    # sent upstream as 500 (RFC 3261 §16.7 item 6) with the 500's
    # reason phrase
    closed = harness.free_port(("tcp",))
    r = cl.request("BYE", uri="sip:uas@%s:%d;transport=tcp" % (LOCAL,
                                                               closed),
                   set=tag, extra=[("Route", "<%s;lr>" % us)], timeout=40)
    h.ok(r and r.code == 500 and r.start.endswith("Server Internal Error"),
         "a BYE to a TCP next hop that refuses the connection -> 500",
         diag=r and r.start, server=srv)

    b = cl.send("BYE", uri=us, set=tag,
                extra=[("Route", "<%s>" % ua.uri)])
    got = ua.answer(200)
    r = cl.recv(b)
    h.ok(got and got.start == "BYE %s SIP/2.0" % ua.uri and
         not got.header("Route"),
         "a strict router's BYE (our URI as Request-URI, the target "
         "last in Route) goes to the target (RFC 3261 §16.4)",
         diag=got and "%s %r" % (got.start, got.headers), server=srv)
    h.ok(r and r.code == 200, "... and its 200 comes back",
         diag=r and r.start, server=srv)
    ua.close()
    cl.close()


class RawUas:
    """A UDP socket standing for a phone: takes one request, answers."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((LOCAL, 0))
        self.port = self.sock.getsockname()[1]
        self.uri = "sip:uas@%s:%d" % (LOCAL, self.port)

    def recv(self, timeout=2.0):
        self.sock.settimeout(timeout)
        try:
            data, self.peer = self.sock.recvfrom(65535)
        except socket.timeout:
            return None
        return harness.SipMsg(data)

    def answer(self, code, timeout=2.0, extra=()):
        """The next request, answered code (its Vias copied; a To tag
        added when it has none), with extra (name, value) headers."""
        m = self.recv(timeout)
        if m is None or m.is_response:
            return None
        return self.reply(m, code, extra)

    def reply(self, m, code, extra=()):
        """Answer request m (received last) with code."""
        hdrs = []
        for n, v in m.headers:
            if n.lower() == "to" and "tag=" not in v:
                v += ";tag=uas%d" % self.port
            if n.lower() in ("via", "from", "to", "call-id", "cseq"):
                hdrs.append("%s: %s" % (n, v))
        hdrs += ["%s: %s" % nv for nv in extra]
        out = "SIP/2.0 %d OK\r\n%s\r\nContent-Length: 0\r\n\r\n" % (
            code, "\r\n".join(hdrs))
        self.sock.sendto(out.encode(), self.peer)
        return m

    def close(self):
        self.sock.close()


def bundled(h):
    db = os.path.join(h.tmp, "proxy.db")
    with open(os.path.join(ROOT, "scripts", "proxy.lua"),
              encoding="utf-8") as f:
        text = f.read()
    text, n = re.subn(r'(?m)^(local\s+DATABASE\s*=\s*)"[^"]*"',
                      lambda m: m.group(1) + '"%s"' % db, text)
    if n != 1:
        raise harness.Abort("scripts/proxy.lua: no DATABASE line")
    path = os.path.join(h.tmp, "proxy.lua")
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return path, db


def case_auth(h, _srv):
    path, db = bundled(h)
    reglib.add_users(h, db, [("alice", "secret"), ("bob", "secret2")])
    srv = h.server(path)
    cl = harness.UdpClient(srv.port)
    ruri = "sip:bob@%s" % LOCAL
    frm = "<sip:alice@%s>;tag=a1" % LOCAL

    r = cl.request("INVITE", uri=ruri, set={"From": frm})
    ch = r and r.header("Proxy-Authenticate")
    h.ok(r and r.code == 407 and ch, "a call from our user without "
         "credentials -> 407 with Proxy-Authenticate",
         diag=r and r.start, server=srv)

    if ch:
        c = reglib.parse_challenge(ch)
        a = reglib.digest_authorization("alice", "secret", c.get("nonce"),
                                        ruri, method="INVITE")
        r = cl.request("INVITE", uri=ruri, set={"From": frm},
                       extra=[("Proxy-Authorization", a)])
        h.ok(r and r.code == 404, "with credentials it is routed: bob "
             "is not registered -> 404", diag=r and r.start, server=srv)

    r = cl.request("INVITE", uri="sip:bob@example.net",
                   set={"From": frm})
    h.ok(r and r.code == 403, "another domain, relaying off -> 403",
         diag=r and r.start, server=srv)

    rc = reglib.RegClient(srv, user="bob", password="secret2")
    r = rc.register(["<sip:bob@%s:%d>" % (LOCAL, rc.port)], expires=600)
    rc.close()
    h.ok(r and r.code == 200, "REGISTER with digest -> 200",
         diag=r and r.start, server=srv)
    cl.close()
    h.stop_server(srv)


def case_readme(h, _srv):
    path, db = bundled(h)
    reglib.add_users(h, db, [("alice", "secret"), ("bob", "secret2")])
    srv = h.server(path)
    port = harness.free_port(("udp",))
    reg = h.sipp(scen("uac-register.xml"), srv, calls=1, timeout=10,
                 port=port, args=["-s", "bob", "-au", "bob",
                                  "-ap", "secret2"])
    h.sipp_ok(reg, "bob registers with sipp (401, digest, 200)")
    bob = h.sipp(scen("uas-answer.xml"), None, calls=1, timeout=20,
                 port=port, name="uas-bob")
    h.ok(bob.wait_listening(), "bob's phone listens on %d" % port,
         sipp=bob)
    alice = h.sipp(scen("uac-call-auth.xml"), srv, calls=1, timeout=20,
                   args=["-s", "bob", "-au", "alice", "-ap", "secret",
                         # the digest's uri: the Request-URI (sipp's
                         # default is the proxy's address)
                         "-auth_uri", "bob@%s" % LOCAL])
    h.sipp_ok(alice, "alice calls bob: 407, INVITE with credentials, "
              "200, ACK, BYE")
    h.sipp_ok(bob, "bob's phone answered, got ACK and BYE")
    h.stop_server(srv)


CASES = {
    "stop": case_stop,
    "tls": case_tls,
    "retry": case_retry,
    "timer-c": case_timer_c,
    "tcp": case_tcp,
    "readme": case_readme,
    "fork": case_fork,
    "serial-503": case_serial_503,
    "serial-timeout": case_serial_timeout,
    "cancel": case_cancel,
    "raw": case_raw,
    "auth": case_auth,
}


def body(h, args):
    fn = CASES[args.case]
    if args.case in ("auth", "readme", "tls"):
        fn(h, None)
        return
    extra = []
    if args.case == "fork":
        h.metrics_port = harness.free_port(("tcp",))
        extra = ["--metrics", "%s:%d" % (LOCAL, h.metrics_port)]
    srv = h.server(os.path.join(HERE, "route.lua"), args=extra,
                   transports=("udp", "tcp") if args.case == "tcp"
                   else ("udp",))
    fn(h, srv)
    if args.case == "stop":
        return          # it stopped the server itself
    h.stop_server(srv, errors=[{"ev": "hook_error"}]
                  if args.case == "raw" else False)


if __name__ == "__main__":
    harness.test_main("the stateful proxy on the wire", body,
                      extra_args=lambda ap: ap.add_argument(
                          "--case", required=True, choices=sorted(CASES)))
