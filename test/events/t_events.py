#!/usr/bin/env python3
"""Subscriptions on the wire (RFC 6665), one case per run (--case).

sipstack runs test/events/events.lua. Notifier cases: a peer (sipp, or a
raw UDP peer where sipp cannot do it) subscribes to sipstack:

  notify-sipp   sipp (uac-subscribe.xml): SUBSCRIBE -> 200 (Expires,
                Contact, To tag), NOTIFY active;expires with the
                script's body, refresh -> 200 + NOTIFY, Expires: 0 ->
                200 + NOTIFY terminated;reason=timeout
  bad-event     Event: foo -> 489 with Allow-Events: presence; no Event
                -> 400; OPTIONS' Allow names SUBSCRIBE and NOTIFY
  too-brief     Expires: 1 -> 423 with Min-Expires: 2 (the script's)
  reject        the hook returns 403 -> 403 "Not You"
  decline       the hook answers nothing -> 603
  raise         the hook raises -> 500, ev=hook_error naming events.lua
                and the line; the server goes on (OPTIONS -> 200)
  expire        Expires: 2 -> 200, NOTIFY active, then NOTIFY
                terminated;reason=timeout about 2 s later; on_end timeout
  gone          the subscriber answers the NOTIFY with 481 -> the
                subscription is removed (on_end gone, stats 0)
  bump          on_refresh sends its own NOTIFY: exactly one NOTIFY
                follows the refresh, with the new body

Subscriber cases: a MESSAGE makes the script subscribe to a raw UDP
notifier of the test:

  sub-basic     SUBSCRIBE (Event, Expires, Accept, Contact) -> 200, NOTIFY
                active with a body -> 200; on_notify and sub.body see it;
                unsubscribe: SUBSCRIBE Expires: 0 in the dialog -> 200,
                NOTIFY terminated -> on_end unsubscribed, stats 0
  sub-early     the NOTIFY comes before the 200 (§4.1.2.4): answered 200,
                told to on_notify, the 200 then completes the dialog
  sub-fork      two notifiers answer (NOTIFYs with two From tags): both
                answered 200 and told with their fork tag; unsubscribe
                sends Expires: 0 in both dialogs
  sub-rejected  403 -> sip.subscribe returns nil, "rejected", 403
  sub-refresh   200 grants 2 s: sipstack refreshes in the dialog (To tag,
                CSeq up) before it runs out
  sub-auth      407 to the SUBSCRIBE, a stale 401 to its refresh: both
                answered with the script's credentials (digest checked)
  sub-auth-wrong  a wrong password: the second 401 is the answer, no third
"""
import os
import re
import socket
import sys
import time

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "sipp"))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "registration"))
import harness  # noqa: E402
import regtest  # noqa: E402
from harness import SipMsg, UdpClient  # noqa: E402

SCRIPT = os.path.join(HERE, "events.lua")
LOCAL = harness.LOCAL


class Peer:
    """A raw SIP peer on a UDP socket of 127.0.0.1: sends requests and
    answers, receives both."""

    def __init__(self, server_port):
        self.dst = (LOCAL, server_port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((LOCAL, 0))
        self.port = self.sock.getsockname()[1]
        self.n = 0
        self.queue = []

    def close(self):
        self.sock.close()

    def uri(self, user="peer"):
        return "sip:%s@%s:%d" % (user, LOCAL, self.port)

    def send_raw(self, data, dst=None):
        self.sock.sendto(data, dst or self.dst)

    def request(self, method, uri, from_tag, to_hdr, callid, cseq,
                hdrs=(), body=b"", dst=None):
        self.n += 1
        branch = "z9hG4bK-ev-%d-%d" % (self.port, self.n)
        lines = ["%s %s SIP/2.0" % (method, uri),
                 "Via: SIP/2.0/UDP %s:%d;branch=%s;rport" %
                 (LOCAL, self.port, branch),
                 "Max-Forwards: 70",
                 "From: <%s>;tag=%s" % (self.uri(), from_tag),
                 "To: %s" % to_hdr,
                 "Call-ID: %s" % callid,
                 "CSeq: %d %s" % (cseq, method),
                 "Contact: <%s>" % self.uri()]
        lines += ["%s: %s" % nv for nv in hdrs]
        lines.append("Content-Length: %d" % len(body))
        self.send_raw(("\r\n".join(lines) + "\r\n\r\n").encode() + body,
                      dst)
        return branch

    def reply(self, req, code, reason, to_tag=None, hdrs=(), body=b""):
        """Answer req (a SipMsg received); to_tag added to To if given."""
        to = req.header("To")
        if to_tag and ";tag=" not in to:
            to += ";tag=%s" % to_tag
        lines = ["SIP/2.0 %d %s" % (code, reason)]
        for v in req.headers_all("Via"):
            lines.append("Via: %s" % v)
        lines += ["From: %s" % req.header("From"), "To: %s" % to,
                  "Call-ID: %s" % req.header("Call-ID"),
                  "CSeq: %s" % req.header("CSeq")]
        if 200 <= code < 300:
            lines.append("Contact: <%s>" % self.uri())
        lines += ["%s: %s" % nv for nv in hdrs]
        lines.append("Content-Length: %d" % len(body))
        self.send_raw(("\r\n".join(lines) + "\r\n\r\n").encode() + body,
                      req.src)

    def recv(self, want, timeout=5.0):
        """The next message for which want(msg) is true (others are kept
        for later calls), or None."""
        for m in self.queue:
            if want(m):
                self.queue.remove(m)
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
            m = SipMsg(data)
            m.src = src
            m.t = time.monotonic()
            if want(m):
                return m
            self.queue.append(m)

    def recv_req(self, method, timeout=5.0, cond=None):
        return self.recv(lambda m: not m.is_response and
                         m.start.startswith(method + " ") and
                         (cond is None or cond(m)), timeout)

    def recv_resp(self, branch, timeout=5.0):
        return self.recv(lambda m: m.is_response and m.code >= 200 and
                         branch in (m.header("Via") or ""), timeout)


def tag_of(hdr):
    m = re.search(r";\s*tag=([^;>\s]+)", hdr or "")
    return m.group(1) if m else None


def uri_of(hdr):
    m = re.search(r"<([^>]+)>", hdr or "")
    return m.group(1) if m else (hdr or "").split(";")[0].strip()


def substate(m):
    return (m.header("Subscription-State") or "").replace(" ", "")


def body_of(m):
    return m.body if isinstance(m.body, bytes) else \
        (m.body or "").encode()


def stats(h, srv):
    cl = UdpClient(srv.port)
    try:
        r = cl.request("MESSAGE", body=b"stats", ctype="text/plain")
    finally:
        cl.close()
    return r.body.decode() if r and r.code == 200 and \
        isinstance(r.body, bytes) else (r.body if r else None)


def wait_stats(h, srv, want, timeout=5.0):
    end = time.monotonic() + timeout
    got = None
    while time.monotonic() < end:
        got = stats(h, srv)
        if got and want in got:
            return got
        time.sleep(0.2)
    return got


# ---------------------------------------------------------------------
# Notifier cases: the test subscribes to sipstack
# ---------------------------------------------------------------------

class Subscriber:
    """The test's side of a subscription to sipstack."""

    def __init__(self, peer, srv, user, expires=60):
        self.p = peer
        self.srv = srv
        self.ruri = "sip:%s@%s:%d" % (user, LOCAL, srv.port)
        self.callid = "ev-%d-%s@%s" % (peer.port, user, LOCAL)
        self.ftag = "sub%d" % peer.port
        self.to = "<%s>" % self.ruri
        self.cseq = 1
        self.expires = expires
        self.target = self.ruri

    def subscribe(self, expires=None, event="presence", extra=()):
        hdrs = []
        if event:
            hdrs.append(("Event", event))
        hdrs.append(("Expires", str(self.expires if expires is None
                                    else expires)))
        hdrs.append(("Accept", "application/test+xml"))
        hdrs += list(extra)
        b = self.p.request("SUBSCRIBE", self.target, self.ftag, self.to,
                           self.callid, self.cseq, hdrs)
        self.cseq += 1
        r = self.p.recv_resp(b)
        if r and r.code == 200 and ";tag=" not in self.to:
            self.to = r.header("To")
            self.target = uri_of(r.header("Contact")) or self.target
        return r

    def notify(self, timeout=5.0, code=200):
        n = self.p.recv_req("NOTIFY", timeout,
                            lambda m: m.header("Call-ID") == self.callid)
        if n:
            self.p.reply(n, code, "OK" if code == 200 else "Gone")
        return n


def case_bad_event(h, srv):
    p = Peer(srv.port)
    s = Subscriber(p, srv, "plain")
    r = s.subscribe(event="foo")
    h.ok(r and r.code == 489, "Event: foo -> 489", diag=repr(r))
    h.ok(r and "presence" in (r.header("Allow-Events") or ""),
         "489 has Allow-Events: presence",
         diag=r and r.header("Allow-Events"))
    s2 = Subscriber(p, srv, "plain2")
    r = s2.subscribe(event=None)
    h.ok(r and r.code == 400, "no Event header -> 400", diag=repr(r))
    cl = UdpClient(srv.port)
    r = cl.request("OPTIONS")
    cl.close()
    allow = (r.header("Allow") or "") if r else ""
    h.ok("SUBSCRIBE" in allow and "NOTIFY" in allow,
         "OPTIONS' Allow names SUBSCRIBE and NOTIFY", diag=allow)
    p.close()


def case_too_brief(h, srv):
    p = Peer(srv.port)
    s = Subscriber(p, srv, "brief")
    r = s.subscribe(expires=1)
    h.ok(r and r.code == 423 and (r.header("Min-Expires") or "").strip()
         == "2", "Expires: 1 -> 423 with Min-Expires: 2", diag=repr(r))
    p.close()


def case_answer(h, srv, user, code, reason=None):
    p = Peer(srv.port)
    s = Subscriber(p, srv, user)
    r = s.subscribe()
    h.ok(r and r.code == code and (reason is None or
                                   r.reason == reason),
         "%s: SUBSCRIBE -> %d%s" % (user, code,
                                    " " + reason if reason else ""),
         diag=r and r.start)
    h.ok(p.recv_req("NOTIFY", 1.0) is None, "%s: no NOTIFY" % user)
    p.close()


def case_raise(h, srv):
    case_answer(h, srv, "raise", 500)
    h.ok(srv.wait_for({"ev": "hook_error", "hook": "on_subscribe"}, 3),
         "hook_error names on_subscribe", server=srv)
    h.ok(srv.find(r"ev=hook_error .*script=\S*events\.lua line=\d+"),
         "hook_error names events.lua and the line", server=srv)
    cl = UdpClient(srv.port)
    r = cl.request("OPTIONS")
    cl.close()
    h.ok(r and r.code == 200, "the server goes on: OPTIONS -> 200")


def first_notify_checks(h, s, n, what):
    h.ok(n is not None, "%s: NOTIFY after the 200" % what)
    if not n:
        return
    h.ok(n.start.startswith("NOTIFY sip:peer@") or
         n.start.split()[1] == s.p.uri(),
         "%s: NOTIFY to the subscriber's Contact" % what, diag=n.start)
    h.ok(tag_of(n.header("To")) == s.ftag and
         tag_of(n.header("From")) == tag_of(s.to),
         "%s: NOTIFY in the dialog (tags)" % what,
         diag="%s / %s" % (n.header("From"), n.header("To")))
    h.ok((n.header("Event") or "").strip() == "presence",
         "%s: Event: presence" % what)
    h.ok(re.match(r"active;expires=\d+$", substate(n)) is not None,
         "%s: Subscription-State active;expires=N" % what,
         diag=substate(n))
    h.ok(body_of(n) == b"<n>1</n>" and
         n.header("Content-Type") == "application/test+xml",
         "%s: the script's body and type" % what, diag=repr(n.body))


def case_expire(h, srv):
    p = Peer(srv.port)
    s = Subscriber(p, srv, "expire", expires=2)
    r = s.subscribe()
    h.ok(r and r.code == 200 and (r.header("Expires") or "").strip() == "2",
         "Expires: 2 -> 200 Expires: 2", diag=r and r.start)
    n = s.notify()
    first_notify_checks(h, s, n, "expire")
    t = s.notify(6.0)
    h.ok(t and substate(t) == "terminated;reason=timeout",
         "NOTIFY terminated;reason=timeout when it runs out",
         diag=t and substate(t))
    if n and t:
        h.ok(1.0 < t.t - n.t < 4.5, "about 2 s after the first (%.2f s)"
             % (t.t - n.t))
    h.ok(srv.wait_for({"msg": "sub_end", "case": "expire",
                       "reason": "timeout"}, 3),
         "on_end(timeout)", server=srv)
    h.ok("subscriptions=0" in (wait_stats(h, srv, "subscriptions=0") or
                               ""), "no subscription left")
    p.close()


def case_gone(h, srv):
    p = Peer(srv.port)
    s = Subscriber(p, srv, "gone")
    r = s.subscribe()
    h.ok(r and r.code == 200, "SUBSCRIBE -> 200")
    n = s.notify(code=481)
    h.ok(n is not None, "NOTIFY came (answered 481)")
    h.ok(srv.wait_for({"msg": "sub_end", "case": "gone",
                       "reason": "gone"}, 3), "on_end(gone)", server=srv)
    h.ok("subscriptions=0" in (wait_stats(h, srv, "subscriptions=0") or
                               ""), "no subscription left")
    r = s.subscribe()
    h.ok(r and r.code == 481, "a refresh now -> 481", diag=r and r.start)
    p.close()


def case_bump(h, srv):
    p = Peer(srv.port)
    s = Subscriber(p, srv, "bump")
    r = s.subscribe()
    h.ok(r and r.code == 200, "SUBSCRIBE -> 200")
    n = s.notify()
    first_notify_checks(h, s, n, "bump")
    r = s.subscribe(expires=120)
    h.ok(r and r.code == 200 and (r.header("Expires") or "").strip() ==
         "120", "refresh -> 200 Expires: 120", diag=r and r.start)
    n2 = s.notify()
    h.ok(n2 and body_of(n2) == b"<n>2</n>",
         "the NOTIFY after the refresh is the one on_refresh sent",
         diag=n2 and repr(n2.body))
    h.ok(s.notify(1.0) is None, "and only that one")
    h.ok(srv.find({"msg": "refresh", "case": "bump", "expires": "120"}),
         "on_refresh(120)", server=srv)
    p.close()


def case_notify_sipp(h, srv):
    sp = h.sipp(os.path.join(HERE, "uac-subscribe.xml"), srv,
                args=["-s", "sippsub"], timeout=20)
    h.sipp_ok(sp, "sipp: SUBSCRIBE, NOTIFY, refresh, NOTIFY, "
              "unsubscribe, NOTIFY terminated")
    h.ok(srv.wait_for({"msg": "sub_end", "case": "sippsub"}, 3),
         "on_end after the unsubscribe", server=srv)
    h.ok(srv.find({"msg": "refresh", "case": "sippsub"}),
         "on_refresh heard the refresh", server=srv)
    h.ok("subscriptions=0" in (wait_stats(h, srv, "subscriptions=0") or
                               ""), "no subscription left")


# ---------------------------------------------------------------------
# Subscriber cases: sipstack subscribes to the test
# ---------------------------------------------------------------------

def trigger(h, srv, case, notifier, expires=60, unsub_after=None,
            password=None):
    cl = UdpClient(srv.port)
    extra = [("X-Subscribe-To", notifier.uri("pres")), ("X-Case", case),
             ("X-Expires", str(expires))]
    if unsub_after is not None:
        extra.append(("X-Unsubscribe-After", str(unsub_after)))
    if password is not None:
        extra.append(("X-Password", password))
    r = cl.request("MESSAGE", extra=extra, body=b"go", ctype="text/plain")
    cl.close()
    h.ok(r and r.code == 202, "%s: MESSAGE -> 202" % case,
         diag=r and r.start)


def send_notify(p, sub, from_tag, state, body=b"", cseq=1):
    """NOTIFY in the dialog of sub (the SUBSCRIBE received), from the
    notifier whose tag is from_tag; returns the answer."""
    hdrs = [("Event", "presence"), ("Subscription-State", state)]
    if body:
        hdrs.append(("Content-Type", "application/test+xml"))
    b = p.request("NOTIFY", uri_of(sub.header("Contact")), from_tag,
                  sub.header("From"), sub.header("Call-ID"), cseq, hdrs,
                  body, dst=sub.src)
    # our From is the notifier: request() writes From with our URI
    return p.recv_resp(b)


def case_sub_basic(h, srv, early=False):
    case = "sub-early" if early else "sub-basic"
    p = Peer(srv.port)
    trigger(h, srv, case, p, expires=300, unsub_after=0.5)
    s = p.recv_req("SUBSCRIBE")
    h.ok(s is not None, "%s: SUBSCRIBE came" % case)
    if not s:
        return
    h.ok((s.header("Event") or "") == "presence" and
         (s.header("Expires") or "") == "300" and
         (s.header("Accept") or "") == "application/test+xml" and
         s.header("Contact"),
         "%s: Event, Expires, Accept, Contact" % case,
         diag=s.raw[:400] if hasattr(s, "raw") else None)
    h.ok(tag_of(s.header("From")) and not tag_of(s.header("To")),
         "%s: out of dialog (From tag, no To tag)" % case)
    if early:
        r = send_notify(p, s, "n1", "active;expires=300", b"<n>e</n>")
        h.ok(r and r.code == 200, "%s: NOTIFY before the 200 -> 200" %
             case, diag=r and r.start)
        p.reply(s, 200, "OK", to_tag="n1", hdrs=[("Expires", "300")])
    else:
        p.reply(s, 200, "OK", to_tag="n1", hdrs=[("Expires", "300")])
        r = send_notify(p, s, "n1", "active;expires=300", b"<n>e</n>")
        h.ok(r and r.code == 200, "%s: NOTIFY -> 200" % case,
             diag=r and r.start)
    h.ok(srv.wait_for({"msg": "notify", "case": case, "state": "active",
                       "body": "<n>e</n>", "fork": "n1",
                       "ct": "application/test+xml"}, 3),
         "%s: on_notify(active, body, type, fork)" % case, server=srv)
    h.ok(srv.wait_for({"msg": "subscribed", "case": case}, 3),
         "%s: sip.subscribe returned the subscription" % case,
         server=srv)
    if early:
        h.ok(srv.find({"msg": "subscribed", "case": case,
                       "body": "<n>e</n>", "state": "active"}),
             "%s: sub.body and sub.state had the early NOTIFY's" % case,
             server=srv)
    u = p.recv_req("SUBSCRIBE", 5.0)
    h.ok(u and (u.header("Expires") or "") == "0" and
         tag_of(u.header("To")) == "n1" and
         u.header("Call-ID") == s.header("Call-ID"),
         "%s: unsubscribe: SUBSCRIBE Expires: 0 in the dialog" % case,
         diag=u and "%s %s" % (u.header("To"), u.header("Expires")))
    if u:
        h.ok(u.start.split()[1] == p.uri(),
             "%s: sent to the notifier's Contact" % case, diag=u.start)
        p.reply(u, 200, "OK", hdrs=[("Expires", "0")])
        r = send_notify(p, s, "n1", "terminated;reason=timeout", cseq=2)
        h.ok(r and r.code == 200, "%s: final NOTIFY -> 200" % case)
    h.ok(srv.wait_for({"msg": "sub_end", "case": case,
                       "reason": "unsubscribed"}, 3),
         "%s: on_end(unsubscribed)" % case, server=srv)
    h.ok("subscriptions=0" in (wait_stats(h, srv, "subscriptions=0") or
                               ""), "%s: no subscription left" % case)
    p.close()


def case_sub_fork(h, srv):
    case = "sub-fork"
    p = Peer(srv.port)
    trigger(h, srv, case, p, expires=300, unsub_after=1)
    s = p.recv_req("SUBSCRIBE")
    h.ok(s is not None, "SUBSCRIBE came")
    if not s:
        return
    p.reply(s, 200, "OK", to_tag="fa", hdrs=[("Expires", "300")])
    ra = send_notify(p, s, "fa", "active;expires=300", b"<n>a</n>")
    rb = send_notify(p, s, "fb", "active;expires=300", b"<n>b</n>")
    h.ok(ra and ra.code == 200 and rb and rb.code == 200,
         "NOTIFYs of two notifiers -> 200 both",
         diag="%r %r" % (ra and ra.start, rb and rb.start))
    h.ok(srv.wait_for({"msg": "notify", "case": case, "fork": "fa",
                       "body": "<n>a</n>"}, 3) and
         srv.wait_for({"msg": "notify", "case": case, "fork": "fb",
                       "body": "<n>b</n>"}, 3),
         "on_notify told each with its fork tag", server=srv)
    got = {}
    for _ in range(2):
        u = p.recv_req("SUBSCRIBE", 5.0)
        if u:
            got[tag_of(u.header("To"))] = u
            p.reply(u, 200, "OK", hdrs=[("Expires", "0")])
    h.ok(set(got) == {"fa", "fb"} and
         all((u.header("Expires") or "") == "0" for u in got.values()),
         "unsubscribe: Expires: 0 in both dialogs", diag=repr(list(got)))
    send_notify(p, s, "fa", "terminated;reason=timeout", cseq=2)
    send_notify(p, s, "fb", "terminated;reason=timeout", cseq=2)
    h.ok(srv.wait_for({"msg": "sub_end", "case": case,
                       "reason": "unsubscribed"}, 3),
         "on_end(unsubscribed) once both ended", server=srv)
    h.ok("subscriptions=0" in (wait_stats(h, srv, "subscriptions=0") or
                               ""), "no subscription left")
    p.close()


def case_sub_rejected(h, srv):
    case = "sub-rejected"
    p = Peer(srv.port)
    trigger(h, srv, case, p)
    s = p.recv_req("SUBSCRIBE")
    h.ok(s is not None, "SUBSCRIBE came")
    if s:
        p.reply(s, 403, "Forbidden")
    h.ok(srv.wait_for({"msg": "subscribe_failed", "case": case,
                       "err": "rejected", "code": "403",
                       "reason": "Forbidden"}, 3),
         "sip.subscribe -> nil, rejected, 403, Forbidden", server=srv)
    h.ok("subscriptions=0" in (wait_stats(h, srv, "subscriptions=0") or
                               ""), "no subscription left")
    p.close()


def case_sub_refresh(h, srv):
    case = "sub-refresh"
    p = Peer(srv.port)
    trigger(h, srv, case, p, expires=60)
    s = p.recv_req("SUBSCRIBE")
    h.ok(s is not None, "SUBSCRIBE came")
    if not s:
        return
    p.reply(s, 200, "OK", to_tag="rf", hdrs=[("Expires", "2")])
    send_notify(p, s, "rf", "active;expires=2", b"<n>r</n>")
    r = p.recv_req("SUBSCRIBE", 4.0)
    h.ok(r is not None and tag_of(r.header("To")) == "rf" and
         (r.header("Expires") or "") == "60",
         "refreshed in the dialog before 2 s ran out, asking 60 again",
         diag=r and "%s %s" % (r.header("To"), r.header("Expires")))
    if r:
        h.ok(int(r.header("CSeq").split()[0]) >
             int(s.header("CSeq").split()[0]), "CSeq went up")
        h.ok(r.t - s.t < 2.0, "before expiry (%.2f s)" % (r.t - s.t))
        p.reply(r, 200, "OK", hdrs=[("Expires", "60")])
    h.ok(p.recv_req("SUBSCRIBE", 2.5) is None,
         "no further refresh while 60 s are left")
    p.close()


def challenge(p, req, code, nonce, stale=False):
    """Answer req with a digest challenge (401 or 407, MD5, qop=auth)"""
    name = "WWW-Authenticate" if code == 401 else "Proxy-Authenticate"
    p.reply(req, code, "Unauthorized" if code == 401 else
            "Proxy Authentication Required",
            to_tag=None, hdrs=[(name, 'Digest realm="events-test", '
                                'nonce="%s", qop="auth", algorithm=MD5%s'
                                % (nonce, ", stale=true" if stale
                                   else ""))])


def check_credentials(h, case, req, code, nonce, what):
    name = "Authorization" if code == 401 else "Proxy-Authorization"
    authz = req.header(name) if req else None
    ok, why = (False, "no %s" % name) if not authz else \
        regtest.digest_check(authz, "SUBSCRIBE", "alice", "secret",
                             "events-test", nonce, req.start.split()[1])
    h.ok(ok, "%s: %s carries %s with the right digest" % (case, what,
                                                          name), diag=why)


def case_sub_auth(h, srv):
    """the notifier challenges the SUBSCRIBE (407) and its refresh (401,
    stale): both answered with the script's credentials"""
    case = "sub-auth"
    p = Peer(srv.port)
    trigger(h, srv, case, p, expires=4, unsub_after=3.5, password="secret")
    s = p.recv_req("SUBSCRIBE")
    h.ok(s is not None and not s.header("Proxy-Authorization"),
         "%s: SUBSCRIBE came, without credentials" % case)
    if not s:
        return
    challenge(p, s, 407, "nonce-one")
    s2 = p.recv_req("SUBSCRIBE")
    check_credentials(h, case, s2, 407, "nonce-one", "the second SUBSCRIBE")
    h.ok(s2 is not None and s2.header("Call-ID") == s.header("Call-ID") and
         tag_of(s2.header("From")) == tag_of(s.header("From")) and
         int(s2.header("CSeq").split()[0]) ==
         int(s.header("CSeq").split()[0]) + 1,
         "%s: same Call-ID and From tag, CSeq + 1" % case)
    if not s2:
        return
    p.reply(s2, 200, "OK", to_tag="n1", hdrs=[("Expires", "4")])
    r = send_notify(p, s2, "n1", "active;expires=4", b"<n>a</n>")
    h.ok(r and r.code == 200, "%s: NOTIFY -> 200" % case)
    h.ok(srv.wait_for({"msg": "subscribed", "case": case}, 3),
         "%s: sip.subscribe returned the subscription" % case, server=srv)
    # the refresh, challenged again (a new nonce, stale=true)
    f = p.recv_req("SUBSCRIBE", 5.0)
    h.ok(f is not None and tag_of(f.header("To")) == "n1" and
         f.header("Expires") == "4", "%s: refresh in the dialog" % case)
    if not f:
        return
    challenge(p, f, 401, "nonce-two", stale=True)
    f2 = p.recv_req("SUBSCRIBE", 5.0)
    check_credentials(h, case, f2, 401, "nonce-two", "the refresh again")
    if f2:
        p.reply(f2, 200, "OK", hdrs=[("Expires", "4")])
    u = p.recv_req("SUBSCRIBE", 5.0)
    h.ok(u is not None and u.header("Expires") == "0",
         "%s: unsubscribe" % case)
    if u:
        p.reply(u, 200, "OK", hdrs=[("Expires", "0")])
        send_notify(p, s2, "n1", "terminated;reason=timeout", cseq=2)
    h.ok(srv.wait_for({"msg": "sub_end", "case": case,
                       "reason": "unsubscribed"}, 3),
         "%s: on_end(unsubscribed): the refresh had kept it" % case,
         server=srv)
    h.ok(not srv.find({"ev": "auth_failed"}), "%s: no auth_failed" % case)
    p.close()


def case_sub_auth_wrong(h, srv):
    """a wrong password: the second challenge (not stale) is the
    answer; no third SUBSCRIBE"""
    case = "sub-auth-wrong"
    p = Peer(srv.port)
    trigger(h, srv, case, p, expires=60, password="wrong")
    s = p.recv_req("SUBSCRIBE")
    if not h.ok(s is not None, "%s: SUBSCRIBE came" % case):
        return
    challenge(p, s, 401, "nonce-w1")
    s2 = p.recv_req("SUBSCRIBE")
    h.ok(s2 is not None and s2.header("Authorization"),
         "%s: SUBSCRIBE again with credentials" % case)
    if not s2:
        return
    challenge(p, s2, 401, "nonce-w2")
    h.ok(srv.wait_for({"msg": "subscribe_failed", "case": case,
                       "err": "rejected", "code": "401"}, 3),
         "%s: sip.subscribe -> nil, rejected, 401" % case, server=srv)
    h.ok(p.recv_req("SUBSCRIBE", 1.5) is None,
         "%s: no third SUBSCRIBE" % case)
    h.ok(srv.find({"ev": "auth_failed", "code": "401"}),
         "%s: the log says auth_failed" % case)
    p.close()


CASES = {
    "notify-sipp": case_notify_sipp,
    "bad-event": case_bad_event,
    "too-brief": case_too_brief,
    "reject": lambda h, s: case_answer(h, s, "reject", 403, "Not You"),
    "decline": lambda h, s: case_answer(h, s, "decline", 603),
    "raise": case_raise,
    "expire": case_expire,
    "gone": case_gone,
    "bump": case_bump,
    "sub-basic": case_sub_basic,
    "sub-early": lambda h, s: case_sub_basic(h, s, early=True),
    "sub-fork": case_sub_fork,
    "sub-rejected": case_sub_rejected,
    "sub-refresh": case_sub_refresh,
    "sub-auth": case_sub_auth,
    "sub-auth-wrong": case_sub_auth_wrong,
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
