#!/usr/bin/env python3
"""Two sipstack nodes, one location in Redis.

One redis-server and two nodes A and B (the same script,
test/redis/reg-redis.lua, on ports of their own).

--case shared
  seen        a phone registers through A; B's lookup (MESSAGE "where"
              at B) finds its binding, and B tells (MESSAGE "node") that
              A took it (node = A's URI) and where from (received)
  reached     B sends a MESSAGE to the binding (sip.send_message after
              sip.location.lookup, MESSAGE "relay" at B): the phone gets
              it from B and answers 200
  both-ways   the phone refreshes and then unregisters through B (same
              Call-ID, CSeq + 1): A's lookup follows
  concurrent  one AOR, 2 x 60 REGISTERs sent at once through A and B,
              each a new Contact and Call-ID: every one gets 200 and the
              AOR ends with all 120 bindings, in Redis and in A's and
              B's lookups (the script is atomic: no write lost)
  order       a REGISTER through A and a replay of it (same Call-ID and
              CSeq) through B: 200, then 500 "Out of Order CSeq" (the
              CSeq rule holds across nodes)
  ctl         `sipstack ctl location show` at B lists a binding made
              through A; `location remove` at B removes it for A too
  tcp         a phone registers over TCP through A: B's lookup gives the
              binding with received ...;transport=tcp and node
              sip:A;transport=tcp, the hop a request from B must take
              (the connection is A's)

--case proxy
  call        two nodes on a copy of scripts/proxy.lua (auth off, its
              store Redis): a phone (sipp, test/proxy/uas-answer.xml)
              registered through A is called through B (sipp,
              test/proxy/uac-call.xml): B finds the binding in Redis and
              proxies the call, answered, ACKed and hung up
  tcp-phone   a phone registered over TCP through A (its connection is
              A's) is called through B: B's scripts/proxy.lua routes the
              INVITE to A (the binding's node, a Route like a Path), A's
              passes it on over the phone's connection (NODES names B);
              ACK and BYE follow the Record-Routes of both nodes

--case kill9
  load        2,400 REGISTERs of distinct AORs at 800/s through A; A is
              killed with -9 after 1.2 s
  no-loss     every AOR whose REGISTER got a 200 from A is in Redis with
              its Contact, and B's lookup finds it (all of them, asked
              in one Redis read each; B's MESSAGE lookup for a sample)
  B-works     B goes on: 300 REGISTERs through B at 300/s all get 200,
              and B's lookups of them answer
"""
import json
import os
import re
import socket
import sys
import threading
import time

sys.dont_write_bytecode = True   # no __pycache__ in the source tree
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import redislib  # noqa: E402
from redislib import harness, reglib  # noqa: E402

D = reglib.desc_resp
LOCAL = reglib.LOCAL


def args(ap):
    ap.add_argument("--case", choices=["shared", "kill9", "proxy"],
                    required=True)


def start_nodes(h, rs):
    nodes = []
    for name in ("node-a", "node-b"):
        srv = h.server(redislib.script(h, rs, name=name + ".lua"),
                       name=name, transports=("udp", "tcp"),
                       args=["--ctl", os.path.join(h.tmp, name + ".sock")])
        srv.ctl = os.path.join(h.tmp, name + ".sock")
        h.ok(srv.wait_for({"mod": "location", "ev": "redis_up"}, 5),
             "%s connected to Redis (ev=redis_up)" % name, server=srv)
        nodes.append(srv)
    return nodes


def ctl(h, srv, *cmd):
    """`sipstack ctl --socket <srv's> --json cmd...`: the answer dict"""
    rc, out, err = h.run([h.sipstack, "ctl", "--socket", srv.ctl,
                          "--json"] + list(cmd), timeout=15)
    try:
        return json.loads(out.strip().splitlines()[0])
    except (ValueError, IndexError):
        h.note("ctl %s: exit %s %s %s" % (" ".join(cmd), rc, out, err))
        return {}


def where(srv, aor, tries=3):
    """The contacts the node's `where` MESSAGE answers for aor (None:
    no answer). A MESSAGE without an answer is sent again, new, up to
    tries times: the test's UDP client has no Timer E of its own, and on
    a loaded machine one datagram or its answer may be late or lost."""
    for _ in range(tries):
        got = reglib.where(srv, aor, timeout=3.0)
        if got is not None:
            return {u for u, _, _ in got}
    return None


# ---------------------------------------------------------------------

def recv_request(sock, timeout):
    """The next request on sock within timeout: (SipMsg, source)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        sock.settimeout(max(0.01, end - time.monotonic()))
        try:
            data, src = sock.recvfrom(65535)
        except socket.timeout:
            break
        msg = harness.SipMsg(data)
        if not msg.is_response:
            return msg, src
    return None, None


def answer_to(sock, req, src, code=200, reason="OK"):
    lines = ["SIP/2.0 %d %s" % (code, reason)]
    lines += ["Via: %s" % v for v in req.headers_all("Via")]
    lines += ["%s: %s" % (n, req.header(n))
              for n in ("From", "To", "Call-ID", "CSeq")]
    lines.append("Content-Length: 0")
    sock.sendto(("\r\n".join(lines) + "\r\n\r\n").encode(), src)


def burst(port, aor_user, tag, n, out, lock):
    """n REGISTERs of one AOR from one socket, sent at once, each with a
    new Contact and Call-ID, those without an answer sent again every
    0.5 s (Timer E: on a loaded machine a burst of datagrams may
    overflow a socket buffer); out[contact] = the final code."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((LOCAL, 0))
    lport = sock.getsockname()[1]
    aor = "sip:%s@%s" % (aor_user, LOCAL)
    want, reqs = {}, {}
    for i in range(n):
        contact = "sip:%s-%s-%d@%s:%d" % (aor_user, tag, i, LOCAL, lport)
        cid = "burst-%s-%d@%s" % (tag, i, LOCAL)
        want[cid] = contact
        req = ("REGISTER sip:%s:%d SIP/2.0\r\n"
               "Via: SIP/2.0/UDP %s:%d;branch=z9hG4bK-b-%s-%d;rport\r\n"
               "Max-Forwards: 70\r\nFrom: <%s>;tag=b%s%d\r\nTo: <%s>\r\n"
               "Call-ID: %s\r\nCSeq: 1 REGISTER\r\nContact: <%s>\r\n"
               "Expires: 600\r\nContent-Length: 0\r\n\r\n" % (
                   LOCAL, port, LOCAL, lport, tag, i, aor, tag, i, aor,
                   cid, contact))
        reqs[cid] = req.encode()
        sock.sendto(reqs[cid], (LOCAL, port))
    end = time.monotonic() + 8
    resend = time.monotonic() + 0.5
    got = 0
    while got < n and time.monotonic() < end:
        if time.monotonic() >= resend:
            for cid in want:
                sock.sendto(reqs[cid], (LOCAL, port))
            resend = time.monotonic() + 0.5
        sock.settimeout(max(0.01, min(end, resend) - time.monotonic()))
        try:
            data, _ = sock.recvfrom(65535)
        except socket.timeout:
            continue
        msg = harness.SipMsg(data)
        if msg.is_response and msg.code >= 200:
            cid = msg.header("Call-ID")
            if cid in want:
                with lock:
                    out[want.pop(cid)] = msg.code
                got += 1
    with lock:
        for contact in want.values():
            out[contact] = None
    sock.close()


def shared(h, rs, a, b):
    # -- seen ---------------------------------------------------------
    ph = reglib.RegClient(a, user="phone")
    me = ph.contact()
    r = ph.register(["<%s>" % me], 600)
    h.ok(r is not None and r.code == 200, "the phone registers through "
         "A -> 200", diag=D(r))
    h.ok(where(b, ph.aor) == {me}, "B's lookup finds the binding made "
         "through A")
    code, lines = redislib.ask(b, "node", ph.aor)
    want = "%s sip:%s:%d sip:%s:%d" % (me, LOCAL, a.port, LOCAL, ph.port)
    h.ok(code == 200 and lines == [want],
         "B's lookup says A took it (node) and from where (received)",
         diag="%r %r, want %r" % (code, lines, want))

    # -- reached ------------------------------------------------------
    cl = harness.UdpClient(b.port)
    try:
        br = cl.send("MESSAGE", uri="sip:%s:%d" % (LOCAL, b.port),
                     ctype="text/plain", body="relay " + ph.aor)
        req, src = recv_request(ph.cl.sock, 5)
        h.ok(req is not None and req.method == "MESSAGE" and
             req.body == b"relayed" and src == (LOCAL, b.port),
             "the phone gets the MESSAGE that B sent to its binding",
             diag=repr(req and req.start))
        if req is not None:
            answer_to(ph.cl.sock, req, src)
        r = cl.recv(br, 5)
    finally:
        cl.close()
    h.ok(r is not None and r.code == 200 and
         r.body.decode() == "%s 200" % me,
         "B's send_message to the binding got the phone's 200",
         diag=D(r) + " body %r" % (r and r.body))

    # -- both ways ----------------------------------------------------
    pb = reglib.RegClient(b, user="phone")
    pb.callid, pb.cseq, pb.tag = ph.callid, ph.cseq, ph.tag
    r = pb.register(["<%s>" % me], 900)
    h.ok(r is not None and r.code == 200 and
         reglib.contacts_of(r) == [(me, {"expires": "900"})],
         "the phone refreshes through B (same Call-ID, CSeq %d) -> 200, "
         "one binding" % pb.cseq, diag=D(r))
    r = pb.register(["<%s>" % me], 0)
    h.ok(r is not None and r.code == 200, "unregisters through B -> 200",
         diag=D(r))
    h.ok(where(a, ph.aor) == set(), "A's lookup: no binding any more")
    pb.close()

    # -- concurrent ---------------------------------------------------
    out, lock = {}, threading.Lock()
    ts = [threading.Thread(target=burst, args=(srv.port, "crowd", tag, 60,
                                               out, lock))
          for srv, tag in ((a, "a"), (b, "b"))]
    for t in ts:
        t.start()
    for t in ts:
        t.join(12)
    codes = {}
    for c in out.values():
        codes[c] = codes.get(c, 0) + 1
    h.ok(codes == {200: 120}, "120 REGISTERs of one AOR at once through "
         "A and B: all 200", diag="codes %r" % codes)
    aor = "sip:crowd@%s" % LOCAL
    ok = {c for c, code in out.items() if code == 200}
    held = rs.live(aor)
    h.ok(held == ok and len(held) == 120, "Redis holds all %d bindings "
         "(none lost to a concurrent write)" % len(ok),
         diag="missing %r" % sorted(ok - (held or set()))[:5])
    h.ok(where(a, aor) == ok and where(b, aor) == ok,
         "A's and B's lookups give all 120")

    # -- order --------------------------------------------------------
    o = reglib.RegClient(a, user="otto")
    r = o.register(["<%s>" % o.contact()], 600, cseq=7)
    h.ok(r is not None and r.code == 200, "REGISTER otto through A, "
         "CSeq 7 -> 200", diag=D(r))
    ob = reglib.RegClient(b, user="otto")
    ob.callid, ob.tag = o.callid, o.tag
    r = ob.register(["<%s>" % o.contact()], 0, cseq=7)
    h.ok(r is not None and r.code == 500 and
         r.reason == "Out of Order CSeq",
         "the same Call-ID and CSeq through B -> 500 Out of Order CSeq",
         diag=D(r))
    h.ok(where(b, o.aor) == {o.contact()}, "otto's binding is unchanged")
    for c in (ph, o, ob):
        c.close()

    # -- ctl ----------------------------------------------------------
    cc = reglib.RegClient(a, user="cleo")
    r = cc.register(["<%s>" % cc.contact()], 600)
    h.ok(r is not None and r.code == 200, "cleo registers through A",
         diag=D(r))
    ans = ctl(h, b, "location", "show", cc.aor)
    res = ans.get("result") or {}
    h.ok(ans.get("ok") and res.get("count") == 1 and
         res["bindings"][0].get("contact") == cc.contact(),
         "`sipstack ctl location show` at B lists the binding made "
         "through A", diag=repr(ans))
    ans = ctl(h, b, "location", "remove", cc.aor)
    h.ok(ans.get("ok") and (ans.get("result") or {}).get("removed") == 1,
         "`location remove` at B removes it (removed 1)", diag=repr(ans))
    h.ok(where(a, cc.aor) == set() and rs.live(cc.aor) == set(),
         "A's lookup and Redis: nothing left")
    cc.close()

    # -- tcp ----------------------------------------------------------
    t = socket.create_connection((LOCAL, a.port), 3)
    try:
        lport = t.getsockname()[1]
        me = "sip:tina@%s:%d;transport=tcp" % (LOCAL, lport)
        req = ("REGISTER sip:%s:%d;transport=tcp SIP/2.0\r\n"
               "Via: SIP/2.0/TCP %s:%d;branch=z9hG4bK-tcp-1\r\n"
               "Max-Forwards: 70\r\nFrom: <sip:tina@%s>;tag=t1\r\n"
               "To: <sip:tina@%s>\r\nCall-ID: tcp-tina@%s\r\n"
               "CSeq: 1 REGISTER\r\nContact: <%s>\r\nExpires: 600\r\n"
               "Content-Length: 0\r\n\r\n" % (
                   LOCAL, a.port, LOCAL, lport, LOCAL, LOCAL, LOCAL, me))
        t.sendall(req.encode())
        t.settimeout(3)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = t.recv(4096)
            if not chunk:
                break
            data += chunk
        h.ok(data.startswith(b"SIP/2.0 200"), "a phone registers over "
             "TCP through A -> 200", diag=repr(data[:200]))
        code, lines = redislib.ask(b, "node", "sip:tina@%s" % LOCAL)
        want = "%s sip:%s:%d;transport=tcp sip:%s:%d;transport=tcp" % (
            me, LOCAL, a.port, LOCAL, lport)
        h.ok(code == 200 and lines == [want],
             "B's lookup: received and node say TCP through A (the hop "
             "to take)", diag="%r %r, want %r" % (code, lines, want))
    finally:
        t.close()


def kill9(h, rs, a, b):
    ld = redislib.Load(a.port, "k9", 2400, 800).start()
    time.sleep(1.2)
    a.proc.kill()
    a.proc.wait(5)
    h.ok(True, "node A killed with -9 after 1.2 s of load (%d sent, "
         "%d answered 200 so far)" % (ld.sent, len(ld.ok)))
    ld.finish(linger=0.5)
    h.ok(len(ld.ok) >= 200, "A answered %d REGISTERs 200 before it died "
         "(codes %r)" % (len(ld.ok), ld.codes), diag="too few to judge")
    missing = [i for i in sorted(ld.ok)
               if rs.live(ld.aor(i)) != {ld.contact(i)}]
    h.ok(not missing, "every one of the %d AORs A answered 200 is in "
         "Redis with its Contact" % len(ld.ok),
         diag="missing: %s" % ", ".join(ld.aor(i) for i in missing[:10]))
    sample = sorted(ld.ok)[::max(1, len(ld.ok) // 25)]
    got = {i: where(b, ld.aor(i)) for i in sample}
    bad = [i for i in sample if got[i] != {ld.contact(i)}]
    h.ok(not bad, "B's lookup finds them (a sample of %d)" % len(sample),
         diag="not found: %s" % ", ".join(
             "%s (B answered %s, Redis holds %s)" % (
                 ld.aor(i), "nothing" if got[i] is None else sorted(got[i]),
                 rs.live(ld.aor(i))) for i in bad[:10]))

    lb = redislib.Load(b.port, "kb", 300, 300).start()
    lb.wait_sent(5)
    lb.retransmit()
    lb.finish(linger=0.5)
    h.ok(len(lb.ok) == 300 and b.alive(),
         "B goes on: 300 REGISTERs through B, all 200", diag=repr(lb.codes))
    bad = [i for i in (0, 150, 299) if where(b, lb.aor(i)) !=
           {lb.contact(i)}]
    h.ok(not bad, "B's lookups of them answer")


def proxy_script(h, rs):
    """scripts/proxy.lua with auth off and its store in Redis"""
    root = os.path.dirname(os.path.dirname(HERE))
    with open(os.path.join(root, "scripts", "proxy.lua"),
              encoding="utf-8") as f:
        text = f.read()
    subs = [(r'(?m)^(local\s+AUTH\s*=\s*)true\b', r'\1false'),
            (r'(?m)^(local\s+NODES\s*=\s*)\{\}', r'\1{ "%s" }' % LOCAL),
            (r'(?m)^(\s*)database(\s*)=\s*DATABASE,',
             r'\1store\2= "%s",' % rs.url)]
    for pat, rp in subs:
        text, n = re.subn(pat, rp, text)
        if n != 1:
            raise harness.Abort("scripts/proxy.lua: no line for %r" % pat)
    path = os.path.join(h.tmp, "proxy-redis.lua")
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return path


class TcpPhone:
    """A phone on one TCP connection to a node: registers over it and
    answers what comes back over it (INVITE 200, BYE 200, ACK noted)."""

    def __init__(self, srv, user):
        self.sock = socket.create_connection((LOCAL, srv.port), 3)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.user = user
        self.contact = "sip:%s@%s:%d;transport=tcp" % (user, LOCAL,
                                                       self.port)
        self.buf = b""
        self.seen = []          # methods received, in order
        self.stop = False
        self.th = None

    def read(self, timeout):
        end = time.time() + timeout
        while time.time() < end:
            head, sep, rest = self.buf.partition(b"\r\n\r\n")
            if sep:
                m = re.search(rb"(?im)^(?:content-length|l)\s*:\s*(\d+)",
                              head)
                n = int(m.group(1)) if m else 0
                if len(rest) >= n:
                    self.buf = rest[n:]
                    return harness.SipMsg(head + sep + rest[:n])
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                continue
            if not chunk:
                return None
            self.buf += chunk
        return None

    def register(self, srv):
        req = ("REGISTER sip:%s:%d;transport=tcp SIP/2.0\r\n"
               "Via: SIP/2.0/TCP %s:%d;branch=z9hG4bK-%s-r1\r\n"
               "Max-Forwards: 70\r\nFrom: <sip:%s@%s>;tag=r1\r\n"
               "To: <sip:%s@%s>\r\nCall-ID: reg-%s@%s\r\n"
               "CSeq: 1 REGISTER\r\nContact: <%s>\r\nExpires: 600\r\n"
               "Content-Length: 0\r\n\r\n" % (
                   LOCAL, srv.port, LOCAL, self.port, self.user,
                   self.user, LOCAL, self.user, LOCAL, self.user, LOCAL,
                   self.contact))
        self.sock.sendall(req.encode())
        return self.read(5)

    def reply(self, m, code, reason, tag="ph1"):
        hdrs = ["SIP/2.0 %d %s" % (code, reason)]
        hdrs += ["Via: %s" % v for v in m.headers_all("Via")]
        hdrs += ["Record-Route: %s" % v for v in
                 m.headers_all("Record-Route")]
        to = m.header("To")
        if m.method == "INVITE" and ";tag=" not in to:
            to += ";tag=" + tag
        hdrs += ["From: %s" % m.header("From"), "To: %s" % to,
                 "Call-ID: %s" % m.header("Call-ID"),
                 "CSeq: %s" % m.header("CSeq"),
                 "Contact: <%s>" % self.contact, "Content-Length: 0"]
        self.sock.sendall(("\r\n".join(hdrs) + "\r\n\r\n").encode())

    def answer(self):
        def run():
            while not self.stop:
                m = self.read(0.5)
                if m is None or m.is_response:
                    continue
                self.seen.append(m.method)
                if m.method == "INVITE":
                    self.invite = m
                    self.reply(m, 200, "OK")
                elif m.method != "ACK":
                    self.reply(m, 200, "OK")
        self.th = threading.Thread(target=run, daemon=True)
        self.th.start()

    def close(self):
        self.stop = True
        if self.th:
            self.th.join(3)
        self.sock.close()


def proxy_tcp_phone(h, a, b):
    """A phone connected to A over TCP, called through B: B routes the
    INVITE to A (its node), A over the phone's connection."""
    ph = TcpPhone(a, "tina")
    try:
        r = ph.register(a)
        h.ok(r is not None and r.code == 200, "tina's phone registers "
             "over TCP through A -> 200", diag=D(r), server=a)
        ph.answer()
        scen = os.path.join(os.path.dirname(HERE), "proxy")
        alice = h.sipp(os.path.join(scen, "uac-call.xml"), b, calls=1,
                       timeout=20, args=["-s", "tina"])
        h.sipp_ok(alice, "a call to tina arrives at B and is answered "
                  "over the TCP connection A holds (INVITE, 200, ACK, "
                  "BYE)")
        deadline = time.time() + 5
        while time.time() < deadline and "BYE" not in ph.seen:
            time.sleep(0.1)
        h.ok(ph.seen[:3] == ["INVITE", "ACK", "BYE"],
             "the phone got INVITE, ACK and BYE over its connection to A",
             diag="seen %r" % ph.seen)
        inv = getattr(ph, "invite", None)
        vias = inv.headers_all("Via") if inv else []
        h.ok(len(vias) == 3 and "SIP/2.0/TCP" in vias[0] and
             "SIP/2.0/TCP" in vias[1],
             "the INVITE came through B then A (three Vias, B to A and A "
             "to the phone over TCP)", diag="Via %r" % vias)
        rr = ",".join(inv.headers_all("Record-Route")) if inv else ""
        h.ok(("%d;transport=tcp;lr" % a.port) in rr and
             ("%d;lr" % b.port) in rr,
             "both nodes record-routed (A over TCP, B)", diag=rr)
    finally:
        ph.close()


def proxy_call(h, rs):
    script = proxy_script(h, rs)
    nodes = []
    for name in ("proxy-a", "proxy-b"):
        srv = h.server(script, name=name, transports=("udp", "tcp"))
        h.ok(srv.wait_for({"mod": "location", "ev": "redis_up"}, 5),
             "%s (scripts/proxy.lua, store in Redis) connected" % name,
             server=srv)
        nodes.append(srv)
    a, b = nodes
    scen = os.path.join(os.path.dirname(HERE), "proxy")
    bob = h.sipp(os.path.join(scen, "uas-answer.xml"), None, calls=1,
                 timeout=20, name="uas-bob")
    h.ok(bob.wait_listening(), "bob's phone (sipp) listens on %d" %
         bob.port, sipp=bob)
    rc = reglib.RegClient(a, user="bob")
    r = rc.register(["<sip:bob@%s:%d>" % (LOCAL, bob.port)], 600)
    rc.close()
    h.ok(r is not None and r.code == 200, "bob's phone registers through "
         "A -> 200", diag=D(r), server=a)
    alice = h.sipp(os.path.join(scen, "uac-call.xml"), b, calls=1,
                   timeout=20, args=["-s", "bob"])
    h.sipp_ok(alice, "a call to bob arrives at B: B proxies it to the "
              "binding A stored (INVITE, 200, ACK, BYE)")
    h.sipp_ok(bob, "bob's phone answered the call that came through B")
    proxy_tcp_phone(h, a, b)
    # Redis gone: the script's lookup fails, and the caller hears 503
    # with Retry-After (not a 500 from a hook error, not a 404)
    rs.kill()
    h.ok(b.wait_for({"mod": "location", "ev": "redis_down"}, 5),
         "B: ev=redis_down once Redis is killed", server=b)
    cl = harness.UdpClient(b.port)
    r = cl.request("INVITE", uri="sip:bob@%s:%d" % (LOCAL, b.port),
                   timeout=8)
    cl.close()
    h.ok(r is not None and r.code == 503 and
         r.header("Retry-After") == "5",
         "Redis down: an INVITE to bob at B -> 503 with Retry-After: 5",
         diag=D(r), server=b)
    for srv in nodes:
        h.stop_server(srv, must_not=[r"\bev=hook_error\b"])


def body(h, a):
    rs = redislib.start_redis(h)
    if a.case == "proxy":
        proxy_call(h, rs)
        return
    na, nb = start_nodes(h, rs)
    if a.case == "shared":
        shared(h, rs, na, nb)
        h.stop_server(na, must_not=[r"\bev=redis_down\b",
                                    r"\bev=hook_error\b"])
    else:
        kill9(h, rs, na, nb)
    h.stop_server(nb, must_not=[r"\bev=redis_down\b", r"\bev=hook_error\b"])


if __name__ == "__main__":
    harness.test_main("redis: two nodes, one location", body,
                      extra_args=args)
