#!/usr/bin/env python3
"""The routing API on the wire: sipstack runs test/calls/routing.lua
against raw UDP peers of this test (one case per run, --case), which
check every message byte they care about:

  inspect       an INVITE with X-Account and a compact Subject (s:): the
                script sees call.request_uri (the peer's Request-URI),
                call.source (the peer's ip:port), call.transport (UDP),
                call:header() of both (any case, compact forms), nil for
                a missing one, and nil once the 2xx is ACKed
  redirect      180, then call:reject(302, reason, headers): the 302
                carries the script's Contact and X-Why, the To tag of
                the 180; the call ends "rejected"
  unreliable    INVITE with Supported: 100rel, ringing{reliable=false}:
                the 180 has no RSeq and no Require: 100rel (so no PRACK),
                then the 200
  required      INVITE with Require: 100rel: ringing{reliable=false}
                returns nil, "100rel required" and sends nothing; the
                200 follows
  info          call:request before the answer -> nil, "invalid state";
                with BYE it raises naming call:hangup; once answered two
                INFOs reach the peer in the dialog (Request-URI its
                Contact, tags, CSeq above the INVITE's, the body and
                X-Seq); the script gets the peer's 200 with its body and
                content type, then its 415
  options       sip.request("OPTIONS", uri, {headers}): the peer sees a
                new out-of-dialog OPTIONS (To: uri without tag, our
                From, Accept) and its 200 with a body comes back as
                code, reason, body, content_type; sip.request("INVITE")
                raises naming sip.call
  noanswer      a peer that never answers: with timeout = 1 ->
                nil, "timeout" after ~1 s; without -> nil, "timeout"
                after 64*T1 (libre's Timer F, 32 s; libre 1.1.0's T1 is
                fixed, sip.configure's t1 does not reach it)
  auth          INVITE without credentials -> 407 with one
                Proxy-Authenticate per algorithm (realm, nonce,
                qop="auth"), the call ended; the INVITE again with a
                SHA-256 Proxy-Authorization for alice (method INVITE)
                -> the hook gets "alice" and answers 200
  auth-wrong    a wrong password -> 403 and ev=auth_failed
                reason=wrong_password; the guard counts it: the second
                such failure bans the address (ev=ban failures=2) and
                its next INVITE gets no answer at all
  call-to       sip.call(contact, ..., {to = AOR, from = ...}): the
                callee sees the contact as Request-URI and To: <AOR>;
                call.to, call.request_uri, and the 2xx's header, source
                and transport seen by the script
  message-from  sip.send_message(..., headers, {from = URI}): From is
                that URI (with a tag), X-Note is there
  relay486      a B2BUA leg: A calls, the script rings A and calls B, B
                answers 486 with X-Detail: A gets 486 with the script's
                X-Relayed (B's X-Detail) and the To tag of its 180;
                out.source/request_uri seen by the script
  hangup-code   180, then call:hangup(480, "Gone Fishing"): 480 with
                that reason
"""
import os
import re
import socket
import sys
import time

sys.dont_write_bytecode = True   # no __pycache__ in the source tree
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "registrar"))
import callslib as cl  # noqa: E402
from callslib import harness  # noqa: E402
import reglib  # noqa: E402

LOCAL = harness.LOCAL
SCRIPT = cl.here("routing.lua")

PEER_SDP = (b"v=0\r\no=peer 1 1 IN IP4 127.0.0.1\r\ns=-\r\n"
            b"c=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40010 RTP/AVP 0\r\n")


def tag_of(value):
    m = re.search(r";\s*tag=([^;>\s]+)", value or "")
    return m.group(1) if m else None


def uri_of(value):
    m = re.search(r"<([^>]+)>", value or "")
    return m.group(1) if m else (value or "").split(";")[0].strip()


def headers_of(msg, name):
    return [v for n, v in msg.headers if n.lower() == name.lower()]


class Ua:
    """A SIP user agent on one UDP socket of 127.0.0.1 (or bind): sends
    requests and answers, receives both; what it is not waiting for
    now is kept for later."""

    def __init__(self, srv_port, bind=LOCAL):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((bind, 0))
        self.local = bind
        self.port = self.sock.getsockname()[1]
        self.dst = (LOCAL, srv_port)
        self.kept = []
        self.n = 0

    def close(self):
        self.sock.close()

    def uri(self, user):
        return "sip:%s@%s:%d" % (user, self.local, self.port)

    def send(self, method, ruri, hdrs, body=b"", branch=None):
        """A request with our Via (a new branch unless given) and
        Max-Forwards, then hdrs [(name, value)]; returns the branch."""
        self.n += 1
        branch = branch or "z9hG4bK-rt-%d-%d" % (self.port, self.n)
        lines = ["%s %s SIP/2.0" % (method, ruri),
                 "Via: SIP/2.0/UDP %s:%d;branch=%s;rport" %
                 (self.local, self.port, branch),
                 "Max-Forwards: 70"]
        lines += ["%s: %s" % nv for nv in hdrs]
        lines.append("Content-Length: %d" % len(body))
        self.sock.sendto(("\r\n".join(lines) + "\r\n\r\n").encode() + body,
                         self.dst)
        return branch

    def reply(self, req, code, reason, hdrs=(), body=b"", to_tag=None):
        to = req.header("To")
        if to_tag and not tag_of(to):
            to += ";tag=%s" % to_tag
        lines = ["SIP/2.0 %d %s" % (code, reason)]
        lines += ["Via: %s" % v for v in headers_of(req, "Via")]
        lines += ["From: %s" % req.header("From"), "To: %s" % to,
                  "Call-ID: %s" % req.header("Call-ID"),
                  "CSeq: %s" % req.header("CSeq")]
        lines += ["%s: %s" % nv for nv in hdrs]
        lines.append("Content-Length: %d" % len(body))
        self.sock.sendto(("\r\n".join(lines) + "\r\n\r\n").encode() + body,
                         req.src)

    def recv(self, want, timeout=5.0):
        for m in self.kept:
            if want(m):
                self.kept.remove(m)
                return m
        end = time.monotonic() + timeout
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                data, src = self.sock.recvfrom(65535)
            except socket.timeout:
                return None
            m = harness.SipMsg(data)
            m.src = src
            m.t = time.monotonic()
            if want(m):
                return m
            self.kept.append(m)

    def request(self, method, timeout=5.0):
        return self.recv(lambda m: not m.is_response and
                         m.method == method, timeout)

    def response(self, branch, timeout=5.0, final=True):
        return self.recv(lambda m: m.is_response and
                         branch in (m.header("Via") or "") and
                         (m.code >= 200 or not final), timeout)

    def responses(self, branch, timeout=5.0):
        """Every response to branch up to the final one (incl.)."""
        out = []
        while True:
            m = self.response(branch, timeout, final=False)
            if m is None:
                return out
            out.append(m)
            if m.code >= 200:
                return out


class Call:
    """An INVITE of the peer ua to sipstack and its dialog."""

    def __init__(self, ua, srv, user, extra=(), body=PEER_SDP):
        self.ua = ua
        self.ruri = "sip:%s@%s:%d" % (user, LOCAL, srv.port)
        self.callid = "rt-%s-%d@%s" % (user, ua.port, LOCAL)
        self.ftag = "f%d" % ua.port
        self.cseq = 0
        self.to = "<%s>" % self.ruri
        self.target = self.ruri
        self.extra = list(extra)
        self.body = body

    def invite(self, more=()):
        """Sends the INVITE (CSeq + 1); returns every response up to
        the final one. A 2xx is ACKed (the dialog's target and To tag
        kept), a failure is ACKed in its transaction."""
        self.cseq += 1
        hdrs = [("From", "<%s>;tag=%s" % (self.ua.uri("peer"), self.ftag)),
                ("To", "<%s>" % self.ruri), ("Call-ID", self.callid),
                ("CSeq", "%d INVITE" % self.cseq),
                ("Contact", "<%s>" % self.ua.uri("peer"))]
        hdrs += self.extra + list(more)
        if self.body:
            hdrs.append(("Content-Type", "application/sdp"))
        self.branch = self.ua.send("INVITE", self.ruri, hdrs, self.body)
        rs = self.ua.responses(self.branch)
        final = rs[-1] if rs and rs[-1].code >= 200 else None
        if final is None:
            return rs
        if final.code < 300:
            self.to = final.header("To")
            self.target = uri_of(final.header("Contact")) or self.ruri
            self.ua.send("ACK", self.target, self.dialog_hdrs("ACK",
                                                              self.cseq))
        else:
            # RFC 3261 17.1.1.3: the ACK of a failure is the INVITE
            # transaction's (same branch, To of the response)
            self.ua.send("ACK", self.ruri, [
                ("From", "<%s>;tag=%s" % (self.ua.uri("peer"), self.ftag)),
                ("To", final.header("To")), ("Call-ID", self.callid),
                ("CSeq", "%d ACK" % self.cseq)], branch=self.branch)
        return rs

    def dialog_hdrs(self, method, cseq):
        return [("From", "<%s>;tag=%s" % (self.ua.uri("peer"), self.ftag)),
                ("To", self.to), ("Call-ID", self.callid),
                ("CSeq", "%d %s" % (cseq, method))]

    def bye(self):
        self.cseq += 1
        b = self.ua.send("BYE", self.target, self.dialog_hdrs("BYE",
                                                              self.cseq))
        return self.ua.response(b)


def codes(rs):
    return [r.code for r in rs]


def script(h, srv_name=None):
    """routing.lua in the temp dir with its database there."""
    db = os.path.join(h.tmp, "routing.db")
    with open(SCRIPT, encoding="utf-8") as f:
        text = f.read().replace("@DATABASE@", db)
    path = os.path.join(h.tmp, "routing.lua")
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return path, db


def start(h, users=()):
    path, db = script(h)
    if users and not reglib.add_users(h, db, users):
        raise harness.Abort("cannot add the users")
    return h.server(path)


def trigger(h, srv, op, **hdrs):
    """The MESSAGE that makes the script run op (202)."""
    udp = harness.UdpClient(srv.port)
    extra = [("X-Op", op)] + [("X-" + k.capitalize(), v)
                              for k, v in sorted(hdrs.items())]
    try:
        r = udp.request("MESSAGE", extra=extra, body="go",
                        ctype="text/plain")
    finally:
        udp.close()
    h.ok(r is not None and r.code == 202, "%s: the trigger MESSAGE is "
         "answered 202" % op, diag="got %r" % r)


def line(srv, msg, case, timeout=5.0):
    return cl.wait_script(srv, msg, case, timeout)


def finish(h, srv, case, tables=True):
    if tables:
        cl.check_tables(h, srv, case)
    h.stop_server(srv)


def hang_up(h, srv, c, case):
    """The peer's BYE ends call c (200), then the server stops."""
    b = c.bye()
    h.ok(b is not None and b.code == 200, "%s: BYE -> 200" % case)
    c.ua.close()
    finish(h, srv, case)


# ---------------------------------------------------------------------

def case_inspect(h):
    case = "inspect"
    srv = start(h)
    ua = Ua(srv.port)
    c = Call(ua, srv, case, extra=[("X-Account", "42"), ("s", "hello")])
    rs = c.invite()
    h.ok(codes(rs)[-2:] == [180, 200], "%s: 180, 200" % case,
         diag=repr(codes(rs)))
    r = line(srv, "inspect", case)
    want = {"request_uri": c.ruri, "source": "%s:%d" % (LOCAL, ua.port),
            "transport": "UDP", "account": "42", "account_lc": "42",
            "subject": "hello", "missing": "nil"}
    h.ok(all(r.get(k) == v for k, v in want.items()),
         "%s: the script saw request_uri, source, transport, "
         "header('X-Account'/'x-account'), header('Subject') of a "
         "compact s:, nil for X-Missing" % case,
         diag="want %r\ngot %r" % (want, r))
    r = line(srv, "after_ack", case)
    h.ok(r.get("state") == "Connected" and r.get("account") == "nil" and
         r.get("source") == "%s:%d" % (LOCAL, ua.port),
         "%s: once ACKed, header() is nil (the INVITE let go), "
         "source stays" % case, diag=repr(r))
    hang_up(h, srv, c, case)


def case_redirect(h):
    case = "redirect"
    srv = start(h)
    ua = Ua(srv.port)
    c = Call(ua, srv, case)
    rs = c.invite()
    h.ok(codes(rs)[-2:] == [180, 302], "%s: 180, then 302" % case,
         diag=repr(codes(rs)))
    if rs and rs[-1].code == 302:
        r = rs[-1]
        h.ok(r.reason == "Moved Temporarily" and
             uri_of(r.header("Contact")) == "sip:elsewhere@127.0.0.1:5999"
             and r.header("X-Why") == "moved",
             "%s: the 302 has the script's reason, Contact and X-Why" %
             case, diag=repr(r.headers))
        h.ok(tag_of(r.header("To")) and
             tag_of(r.header("To")) == tag_of(rs[-2].header("To")),
             "%s: with the To tag of the 180 (the early dialog's)" % case)
    r = line(srv, "rejected", case)
    h.ok(r.get("ok") == "true" and r.get("state") == "Ended",
         "%s: reject returned true, the call is Ended" % case, diag=repr(r))
    h.ok(cl.ended(srv, c.callid) == ["rejected"],
         "%s: ev=ended reason=rejected" % case, server=srv)
    ua.close()
    finish(h, srv, case)


def case_unreliable(h):
    case = "unreliable"
    srv = start(h)
    ua = Ua(srv.port)
    c = Call(ua, srv, case, extra=[("Supported", "100rel")])
    rs = c.invite()
    h.ok(codes(rs)[-2:] == [180, 200], "%s: 180, 200" % case,
         diag=repr(codes(rs)))
    ring = [r for r in rs if r.code == 180]
    if ring:
        h.ok(ring[0].header("RSeq") is None and
             "100rel" not in (ring[0].header("Require") or ""),
             "%s: the 180 is unreliable: no RSeq, no Require: 100rel" %
             case, diag=repr(ring[0].headers))
    r = line(srv, "ringing", case)
    h.ok(r.get("ok") == "true", "%s: ringing{reliable=false} -> true" %
         case, diag=repr(r))
    h.ok(codes(rs).count(180) == 1,
         "%s: the 180 came once (not retransmitted as a reliable one "
         "is, 0.3 s before the 200)" % case, diag=repr(codes(rs)))
    hang_up(h, srv, c, case)


def case_required(h):
    case = "required"
    srv = start(h)
    ua = Ua(srv.port)
    c = Call(ua, srv, case, extra=[("Supported", "100rel"),
                                   ("Require", "100rel")])
    rs = c.invite()
    h.ok([x for x in codes(rs) if x != 100] == [200],
         "%s: no 18x at all, then 200" % case, diag=repr(codes(rs)))
    r = line(srv, "ringing", case)
    h.ok(r.get("ok") == "nil" and r.get("err") == "100rel required",
         "%s: ringing{reliable=false} -> nil, \"100rel required\" (RFC "
         "3262 3: the caller requires it)" % case, diag=repr(r))
    hang_up(h, srv, c, case)


def case_info(h):
    case = "info"
    srv = start(h)
    ua = Ua(srv.port)
    c = Call(ua, srv, case)
    rs = c.invite()
    h.ok(codes(rs)[-1:] == [200], "%s: 200" % case, diag=repr(codes(rs)))
    r = line(srv, "early", case)
    h.ok(r.get("code") == "nil" and r.get("err") == "invalid state",
         "%s: call:request before the answer -> nil, \"invalid state\"" %
         case, diag=repr(r))
    r = line(srv, "refused", case)
    h.ok(r.get("ok") == "false" and "call:hangup" in r.get("err", ""),
         "%s: call:request(\"BYE\") raises, naming call:hangup" % case,
         diag=repr(r))
    answers = [(200, "OK", [("Content-Type", "text/plain")], b"got 1"),
               (415, "Unsupported Media Type", [("Accept", "text/plain")],
                b"")]
    seen = []
    for i, (code, reason, hdrs, body) in enumerate(answers, 1):
        m = ua.request("INFO")
        if not h.ok(m is not None, "%s: INFO %d reached the peer" %
                    (case, i)):
            break
        seen.append(m)
        h.ok(m.start.split(" ")[1] == ua.uri("peer") and
             m.header("Call-ID") == c.callid and
             tag_of(m.header("To")) == c.ftag and
             tag_of(m.header("From")) == tag_of(c.to) and
             m.header("X-Seq") == str(i) and
             m.header("Content-Type") == "application/dtmf-relay" and
             m.body == ("Signal=%d\r\nDuration=160\r\n" % i).encode(),
             "%s: INFO %d in the dialog (Request-URI our Contact, "
             "Call-ID, tags swapped), X-Seq, body byte-exact" % (case, i),
             diag="%s\n%r\n%r" % (m.start, m.headers, m.body))
        ua.reply(m, code, reason, hdrs, body)
    if len(seen) == 2:
        n1 = int(seen[0].header("CSeq").split()[0])
        n2 = int(seen[1].header("CSeq").split()[0])
        h.ok(seen[0].header("CSeq").endswith("INFO") and n2 == n1 + 1,
             "%s: CSeq INFO, one up each" % case,
             diag="%r %r" % (n1, n2))
    r1 = line(srv, "info1", case)
    h.ok(r1.get("code") == "200" and r1.get("reason") == "OK" and
         r1.get("body") == "got 1" and r1.get("ct") == "text/plain",
         "%s: the script got 200, \"OK\", the body and its type" % case,
         diag=repr(r1))
    r2 = line(srv, "info2", case)
    h.ok(r2.get("code") == "415" and
         r2.get("reason") == "Unsupported Media Type" and
         r2.get("body") == "" and r2.get("ct") == "nil",
         "%s: ... then 415, \"Unsupported Media Type\", \"\", nil" % case,
         diag=repr(r2))
    bye = ua.request("BYE")
    if h.ok(bye is not None, "%s: the script's BYE came" % case):
        ua.reply(bye, 200, "OK")
    h.ok(line(srv, "hangup", case).get("ok") == "true",
         "%s: hangup -> true" % case)
    ua.close()
    finish(h, srv, case)


def case_options(h):
    case = "options"
    srv = start(h)
    ua = Ua(srv.port)
    target = ua.uri("trunk")
    trigger(h, srv, case, uri=target)
    m = ua.request("OPTIONS")
    if h.ok(m is not None, "%s: the OPTIONS reached the peer" % case):
        h.ok(m.start == "OPTIONS %s SIP/2.0" % target and
             uri_of(m.header("To")) == target and not tag_of(m.header("To"))
             and uri_of(m.header("From")).startswith("sip:sipstack@") and
             tag_of(m.header("From")) and
             m.header("CSeq").endswith(" OPTIONS") and
             m.header("Accept") == "application/sdp",
             "%s: OPTIONS out of dialog: To <uri> without tag, our From "
             "with a tag, the script's Accept" % case,
             diag="%s\n%r" % (m.start, m.headers))
        ua.reply(m, 200, "OK", [("Content-Type", "text/plain")], b"caps",
                 to_tag="t1")
    r = line(srv, "options", case)
    h.ok(r.get("code") == "200" and r.get("reason") == "OK" and
         r.get("body") == "caps" and r.get("ct") == "text/plain",
         "%s: sip.request -> 200, \"OK\", \"caps\", \"text/plain\"" % case,
         diag=repr(r))
    r = line(srv, "refused", case)
    h.ok(r.get("ok") == "false" and "sip.call" in r.get("err", ""),
         "%s: sip.request(\"INVITE\") raises, naming sip.call" % case,
         diag=repr(r))
    ua.close()
    finish(h, srv, case, tables=False)


def case_noanswer(h):
    case = "noanswer"
    srv = start(h)
    ua = Ua(srv.port)            # never answers
    t0 = time.monotonic()
    trigger(h, srv, case, uri=ua.uri("silent"))
    r = line(srv, "short", case, 6.0)
    t1 = time.monotonic() - t0
    h.ok(r.get("code") == "nil" and r.get("err") == "timeout" and
         0.8 <= t1 <= 4.0, "%s: timeout = 1 -> nil, \"timeout\" after "
         "~1 s (%.1f s)" % (case, t1), diag=repr(r))
    r = line(srv, "long", case, 45.0)
    t2 = time.monotonic() - t0
    h.ok(r.get("code") == "nil" and r.get("err") == "timeout" and
         28.0 <= t2 <= 40.0, "%s: without -> nil, \"timeout\" at the "
         "transaction's end, 64*T1 = 32 s (%.1f s)" % (case, t2),
         diag=repr(r))
    ua.recv(lambda m: False, 0.3)      # what came meanwhile, kept
    sent = [m for m in ua.kept if not m.is_response and
            m.method == "OPTIONS"]
    h.ok(len(sent) >= 4, "%s: the OPTIONS were retransmitted meanwhile "
         "(%d copies)" % (case, len(sent)))
    ua.close()
    finish(h, srv, case, tables=False)


def challenge(r):
    return [reglib.parse_challenge(v)
            for v in headers_of(r, "Proxy-Authenticate")]


def authorization(c, ch, password, alg="SHA-256"):
    return reglib.digest_authorization("alice", password, ch["nonce"],
                                       c.ruri, method="INVITE",
                                       algorithm=alg)


def case_auth(h):
    case = "auth"
    srv = start(h, users=(("alice", "s3cret"),))
    ua = Ua(srv.port)
    c = Call(ua, srv, case)
    rs = c.invite()
    h.ok(codes(rs)[-1:] == [407], "%s: INVITE without credentials -> "
         "407" % case, diag=repr(codes(rs)))
    chs = challenge(rs[-1]) if rs else []
    h.ok([x.get("algorithm") for x in chs] == ["SHA-256", "MD5"] and
         all(x.get("realm") == "sipstack" and x.get("qop") == "auth" and
             x.get("nonce") and "stale" not in x for x in chs) and
         not headers_of(rs[-1], "WWW-Authenticate"),
         "%s: Proxy-Authenticate: Digest realm=\"sipstack\", nonce, "
         "qop=\"auth\", SHA-256 then MD5 (no WWW-Authenticate)" % case,
         diag=repr(rs[-1].headers if rs else None))
    r = line(srv, "auth", case)
    h.ok(r.get("user") == "nil" and r.get("err") == "challenged" and
         r.get("status") == "no_credentials" and r.get("state") == "Ended",
         "%s: call:authenticate() -> nil, \"challenged\", "
         "\"no_credentials\"; the call ended" % case, diag=repr(r))
    if chs:
        rs = c.invite([("Proxy-Authorization",
                        authorization(c, chs[0], "s3cret"))])
        h.ok(codes(rs)[-1:] == [200], "%s: the INVITE again with alice's "
             "SHA-256 credentials (method INVITE) -> 200" % case,
             diag=repr(codes(rs)))
        end = time.monotonic() + 3.0
        while len(cl.script_lines(srv, "auth", case)) < 2 and \
                time.monotonic() < end:
            time.sleep(0.05)
        got = cl.script_lines(srv, "auth", case)
        h.ok(len(got) == 2 and got[1].get("user") == "alice",
             "%s: the hook ran again and got \"alice\"" % case,
             diag=repr(got))
        hang_up(h, srv, c, case)
        return
    ua.close()
    finish(h, srv, case)


def case_auth_wrong(h):
    case = "auth-wrong"
    srv = start(h, users=(("alice", "s3cret"),))
    ua = Ua(srv.port)
    for i in (1, 2):
        c = Call(ua, srv, "auth")
        c.callid += "-%d" % i
        rs = c.invite()
        chs = challenge(rs[-1]) if rs and rs[-1].code == 407 else []
        if not h.ok(chs, "%s %d: 407 first" % (case, i),
                    diag=repr(codes(rs))):
            break
        rs = c.invite([("Proxy-Authorization",
                        authorization(c, chs[0], "wrong", alg="MD5"))])
        h.ok(codes(rs)[-1:] == [403], "%s %d: a wrong password -> 403 "
             "(as for REGISTER: not challenged again)" % (case, i),
             diag=repr(codes(rs)))
    got = cl.script_lines(srv, "auth", "auth")
    h.ok([(x.get("err"), x.get("status")) for x in got[1::2]] ==
         [("unauthorized", "failed")] * 2,
         "%s: call:authenticate() -> nil, \"unauthorized\", \"failed\"" %
         case, diag=repr(got))
    h.ok(len(srv.find({"ev": "auth_failed", "user": "alice",
                       "reason": "wrong_password"})) == 2,
         "%s: ev=auth_failed user=alice reason=wrong_password, twice" %
         case, server=srv)
    h.ok(srv.find({"ev": "ban", "src": LOCAL, "failures": "2"}),
         "%s: the guard counted both: ev=ban src=%s failures=2" %
         (case, LOCAL), server=srv)
    c = Call(ua, srv, "auth")
    c.callid += "-3"
    rs = c.invite()
    h.ok(rs == [], "%s: the banned address's next INVITE gets no answer" %
         case, diag=repr(codes(rs)))
    ua.close()
    finish(h, srv, case, tables=False)


def case_call_to(h):
    case = "call-to"
    srv = start(h)
    ua = Ua(srv.port)
    contact = ua.uri("alice-phone")
    aor = "sip:alice@example.com"
    trigger(h, srv, case, contact=contact, aor=aor)
    inv = ua.request("INVITE")
    if not h.ok(inv is not None, "%s: the INVITE reached the phone" % case):
        raise harness.Abort("no INVITE")
    h.ok(inv.start == "INVITE %s SIP/2.0" % contact and
         uri_of(inv.header("To")) == aor and not tag_of(inv.header("To"))
         and uri_of(inv.header("From")) == "sip:bob@example.com" and
         tag_of(inv.header("From")),
         "%s: Request-URI the contact, To: <%s>, From the script's" %
         (case, aor), diag="%s\n%r" % (inv.start, inv.headers))
    ua.reply(inv, 180, "Ringing", to_tag="p1")
    ua.reply(inv, 200, "OK", [("Contact", "<%s>" % contact),
                              ("X-Peer", "b2"),
                              ("Content-Type", "application/sdp")],
             PEER_SDP, to_tag="p1")
    ack = ua.request("ACK")
    h.ok(ack is not None, "%s: ACK" % case)
    r = line(srv, "placed", case)
    h.ok(r.get("to") == aor and r.get("request_uri") == contact and
         r.get("source") == "nil",
         "%s: call.to is the AOR, call.request_uri the contact, "
         "call.source nil before any response" % case, diag=repr(r))
    r = line(srv, "answered", case)
    h.ok(r.get("ok") == "true" and r.get("peer") == "b2" and
         r.get("source") == "%s:%d" % (LOCAL, ua.port) and
         r.get("transport") == "UDP",
         "%s: the 2xx's X-Peer, source and transport" % case, diag=repr(r))
    bye = ua.request("BYE")
    if h.ok(bye is not None, "%s: the script's BYE" % case):
        h.ok(bye.start == "BYE %s SIP/2.0" % contact and
             uri_of(bye.header("To")) == aor,
             "%s: BYE to the contact, To the AOR" % case, diag=bye.start)
        ua.reply(bye, 200, "OK")
    ua.close()
    finish(h, srv, case)


def case_message_from(h):
    case = "message-from"
    srv = start(h)
    ua = Ua(srv.port)
    trigger(h, srv, case, uri=ua.uri("dave"))
    m = ua.request("MESSAGE")
    if h.ok(m is not None, "%s: the MESSAGE reached the peer" % case):
        h.ok(uri_of(m.header("From")) == "sip:carol@example.com" and
             tag_of(m.header("From")) and m.header("X-Note") == "1" and
             m.body == b"hello",
             "%s: From <sip:carol@example.com> with a tag, X-Note, body" %
             case, diag=repr(m.headers))
        ua.reply(m, 202, "Accepted", to_tag="d1")
    r = line(srv, "sent", case)
    h.ok(r.get("code") == "202" and r.get("reason") == "Accepted",
         "%s: send_message -> 202, \"Accepted\"" % case, diag=repr(r))
    ua.close()
    finish(h, srv, case, tables=False)


def case_relay486(h):
    case = "relay486"
    srv = start(h)
    a = Ua(srv.port)
    b = Ua(srv.port)
    c = Call(a, srv, "relay")
    # A's INVITE by hand: wait for the 180 only, B answers meanwhile
    hdrs = [("From", "<%s>;tag=%s" % (a.uri("peer"), c.ftag)),
            ("To", "<%s>" % c.ruri), ("Call-ID", c.callid),
            ("CSeq", "1 INVITE"), ("Contact", "<%s>" % a.uri("peer")),
            ("X-Target", b.uri("bob")), ("Content-Type", "application/sdp")]
    br = a.send("INVITE", c.ruri, hdrs, PEER_SDP)
    ring = a.response(br, 5.0, final=False)
    while ring is not None and ring.code == 100:
        ring = a.response(br, 5.0, final=False)
    h.ok(ring is not None and ring.code == 180, "%s: A got 180" % case)
    inv = b.request("INVITE")
    if not h.ok(inv is not None, "%s: the script's INVITE reached B" %
                case):
        raise harness.Abort("no INVITE at B")
    b.reply(inv, 486, "Busy Here", [("X-Detail", "on the phone")],
            to_tag="b1")
    h.ok(b.request("ACK", 3.0) is not None, "%s: B's 486 is ACKed" % case)
    fin = a.response(br, 5.0)
    if h.ok(fin is not None and fin.code == 486 and
            fin.reason == "Busy Here", "%s: A got 486 Busy Here" % case,
            diag=fin and fin.start):
        h.ok(fin.header("X-Relayed") == "on the phone" and
             tag_of(fin.header("To")) == tag_of(ring.header("To")),
             "%s: with X-Relayed: B's X-Detail, and the To tag of A's "
             "180" % case, diag=repr(fin.headers))
        a.send("ACK", c.ruri, [
            ("From", "<%s>;tag=%s" % (a.uri("peer"), c.ftag)),
            ("To", fin.header("To")), ("Call-ID", c.callid),
            ("CSeq", "1 ACK")], branch=br)
    r = line(srv, "relay", "relay")
    h.ok(r.get("ok") == "nil" and r.get("err") == "rejected" and
         r.get("code") == "486" and r.get("detail") == "on the phone" and
         r.get("source") == "%s:%d" % (LOCAL, b.port) and
         r.get("request_uri") == b.uri("bob"),
         "%s: wait_answer -> nil, \"rejected\", 486; out:header, "
         "out.source, out.request_uri after the call ended" % case,
         diag=repr(r))
    h.ok(line(srv, "relayed", "relay").get("ok") == "true",
         "%s: call:reject(486, ...) -> true" % case)
    a.close()
    b.close()
    finish(h, srv, case)


def case_hangup_code(h):
    case = "hangup-code"
    srv = start(h)
    ua = Ua(srv.port)
    c = Call(ua, srv, case)
    rs = c.invite()
    h.ok(codes(rs)[-2:] == [180, 480] and
         rs[-1].reason == "Gone Fishing",
         "%s: 180, then 480 Gone Fishing (not 603)" % case,
         diag=repr([(r.code, r.reason) for r in rs]))
    r = line(srv, "hangup", case)
    h.ok(r.get("ok") == "true" and r.get("state") == "Ended",
         "%s: hangup(480, ...) -> true, Ended" % case, diag=repr(r))
    ua.close()
    finish(h, srv, case)


CASES = {
    "inspect": case_inspect,
    "redirect": case_redirect,
    "unreliable": case_unreliable,
    "required": case_required,
    "info": case_info,
    "options": case_options,
    "noanswer": case_noanswer,
    "auth": case_auth,
    "auth-wrong": case_auth_wrong,
    "call-to": case_call_to,
    "message-from": case_message_from,
    "relay486": case_relay486,
    "hangup-code": case_hangup_code,
}


def args(ap):
    ap.add_argument("--case", choices=sorted(CASES), required=True)


def body(h, a):
    CASES[a.case](h)


if __name__ == "__main__":
    harness.test_main(__doc__.splitlines()[0], body, extra_args=args)
