#!/usr/bin/env python3
"""Digest authentication of REGISTER (RFC 3261 §22, RFC 7616, RFC 8760)
against a copy of the bundled scripts/registrar.lua (database in the
temp dir, users added with `sipstack user add`). One group per run
(--case):

  flow   sipp uac-register-auth.xml (alice): REGISTER -> 401 with one
         `WWW-Authenticate: Digest realm="sipstack", nonce=...,
         qop="auth", algorithm=MD5` -> REGISTER with sipp's credentials
         -> 200 with alice's Contact, expires=600 and Date; the binding
         is in the lookup and in the database (with sipp's User-Agent).
         sipp uac-register-refresh-unregister.xml (bob): 401, 200, then
         the refresh (same Call-ID, CSeq+1, same nonce, nc=2) -> 200
         still one binding, then Expires: 0 -> 200 without it.
  fail   wrong password (sipp) -> 403, logged `lvl=warn mod=auth
         ev=auth_failed user=alice src=<sipp's address>`; unknown user
         (sipp and raw) -> the same 403, and its 401 identical to a known
         user's apart from the nonce (and the per-request fields);
         replayed nonce-count (the same Authorization sent twice, digest
         computed here) -> 200 then 401 stale=true and `ev=auth_replay`;
         a retransmission of the authenticated REGISTER is not a replay
         (the same 200 again); a digest without qop -> 400; none of the
         refused REGISTERs stored anything.
  stale  a nonce of a previous server instance (restart on the same
         database): a correct digest -> 401 stale=true with a new nonce;
         a wrong one -> 403 (not stale); the new nonce -> 200; the
         binding stored before the restart is still there.
  ttl    test/registrar/reg-auth-opts.lua (nonce_ttl = 10, the minimum,
         algorithms SHA-256 then MD5): the 401 offers SHA-256 first then
         MD5 with the same nonce; answers in SHA-256 and in MD5 -> 200;
         a nonce still works 8 s after its challenge (nc=2) and is stale
         (401 stale=true) 10.6 s after it (nc=3); ~11 s.
  authz  RFC 3261 §10.3 step 4: alice's valid credentials on a REGISTER
         for bob's AOR (To: sip:bob@...) -> 403 (sipp and raw), also for
         a removal, and bob's bindings stay as they were; alice's own AOR
         -> 200. (Fails on sipstack 0.1.0, which lets any authenticated
         user register any AOR: see the report of these tests.)
"""
import os
import re
import sys
import time

sys.dont_write_bytecode = True   # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reglib  # noqa: E402
from reglib import harness  # noqa: E402

D = reglib.desc_resp
LOCAL = reglib.LOCAL


def args(ap):
    ap.add_argument("--case", choices=["flow", "fail", "stale", "ttl",
                                       "authz"], required=True)


def all_headers(r, name):
    return [v for n, v in (r.headers if r else []) if n.lower() ==
            name.lower()]


def challenges(r):
    return [reglib.parse_challenge(v) for v in
            all_headers(r, "WWW-Authenticate")]


def is_md5_challenge(ch, stale=False):
    return (ch.get("realm") == "sipstack" and ch.get("qop") == "auth" and
            ch.get("algorithm") == "MD5" and
            re.fullmatch(r"[0-9a-fA-F]{16,}", ch.get("nonce", "")) and
            (ch.get("stale", "").lower() == "true") == stale)


def sipp_register(h, srv, scenario, user, password, expires=600,
                  domain=LOCAL, **kw):
    return h.sipp(reglib.scenario(scenario), srv,
                  args=["-s", user, "-au", user, "-ap", password,
                        "-key", "domain", domain,
                        "-key", "expires", str(expires)], **kw)


def setup(h, users=(("alice", "secret"),), script=None):
    if script is None:
        script, db = reglib.bundled_copy(h)
    else:
        script, db = reglib.test_script(h, script)
    if not reglib.add_users(h, db, users):
        raise harness.Abort("cannot add the users")
    return script, db


# ---------------------------------------------------------------------

def flow(h):
    script, db = setup(h, (("alice", "secret"), ("bob", "b0b-pw")))
    srv = h.server(script)

    sp = sipp_register(h, srv, "uac-register-auth.xml", "alice", "secret")
    h.sipp_ok(sp, "sipp uac-register-auth.xml: alice 401 then 200")
    got = sp.messages("received")
    me = "sip:alice@%s:%d" % (LOCAL, sp.port)
    if len(got) != 2:
        raise harness.Abort("sipp received %d answers, not 2" % len(got))
    r401, r200 = got
    chs = challenges(r401)
    h.ok(r401.code == 401 and len(chs) == 1 and is_md5_challenge(chs[0]),
         "401 with one WWW-Authenticate: Digest realm=\"sipstack\", "
         "nonce=..., qop=\"auth\", algorithm=MD5 (no stale)",
         diag=D(r401))
    cs = reglib.contacts_of(r200)
    h.ok(r200.code == 200 and len(cs) == 1 and cs[0][0] == me and
         cs[0][1].get("expires") in ("600", "599"),
         "200 with alice's Contact <%s>;expires=600" % me, diag=D(r200))
    h.ok(r200.header("Date"), "200 has a Date header", diag=D(r200))
    b = reglib.where(srv, "sip:alice@%s" % LOCAL)
    h.ok(b and len(b) == 1 and b[0][0] == me and 598 <= b[0][1] <= 600,
         "lookup (MESSAGE where) of alice gives sipp's contact",
         diag="got %r" % (b,))
    rows = reglib.sql(h, db, "select contact, user_agent, callid from "
                      "bindings where aor = 'sip:alice@%s'" % LOCAL)
    sent = sp.messages("sent")
    h.ok(rows and len(rows) == 1 and rows[0][0] == me and
         rows[0][1] == "sipp-registrar-test" and sent and
         rows[0][2] == sent[-1].header("Call-ID"),
         "the database holds alice's binding (contact, User-Agent, "
         "Call-ID)", diag="rows: %r" % (rows,))

    sp = sipp_register(h, srv, "uac-register-refresh-unregister.xml", "bob",
                       "b0b-pw")
    h.sipp_ok(sp, "sipp uac-register-refresh-unregister.xml: bob 401, "
              "200, 200, 200")
    got = sp.messages("received")
    sent = sp.messages("sent")
    me = "sip:bob@%s:%d" % (LOCAL, sp.port)
    if len(got) != 4 or len(sent) < 4:
        raise harness.Abort("sipp exchanged %d/%d messages, not 4/4" %
                            (len(sent), len(got)))
    # sipp's requests, first transmissions only
    reqs = []
    for m in sent:
        if not reqs or m.header("CSeq") != reqs[-1].header("CSeq"):
            reqs.append(m)
    h.ok(len(reqs) == 4 and
         len({m.header("Call-ID") for m in reqs}) == 1 and
         [m.header("CSeq") for m in reqs] ==
         ["%d REGISTER" % i for i in (1, 2, 3, 4)] and
         "nc=00000002" in (reqs[2].header("Authorization") or ""),
         "sipp's REGISTERs: one Call-ID, CSeq 1..4, the refresh on the "
         "same nonce with nc=2",
         diag="\n".join("%s | %s" % (m.header("CSeq"),
                                     m.header("Authorization"))
                        for m in reqs))
    for i, (desc, want) in enumerate((
            ("register", [(me, "600")]), ("refresh", [(me, "600")]),
            ("unregister (Expires: 0)", []))):
        r = got[i + 1]
        cs = [(u, p.get("expires")) for u, p in reglib.contacts_of(r)]
        h.ok(r.code == 200 and cs == want,
             "bob %s -> 200 listing %s" % (
                 desc, "one binding, <%s>;expires=600" % me if want
                 else "no Contact"), diag=D(r))
    b = reglib.where(srv, "sip:bob@%s" % LOCAL)
    h.ok(b == [], "lookup of bob after the unregister: none",
         diag="got %r" % (b,))
    h.ok(reglib.sql_count(h, db, "aor = 'sip:bob@%s'" % LOCAL) == 0 and
         reglib.sql_count(h, db, "aor = 'sip:alice@%s'" % LOCAL) == 1,
         "database: no row for bob, alice's still there")

    h.stop_server(srv, must=[{"mod": "registrar", "ev": "open",
                              "auth": "on"}],
                  must_not=[r"\bev=auth_failed\b", r"\bev=auth_replay\b"])


def norm401(r):
    """What of a 401 must not depend on the user: status, header names
    in order, the challenge without its nonce, Server."""
    chs = [re.sub(r'nonce="[^"]*"', 'nonce="..."', v)
           for v in all_headers(r, "WWW-Authenticate")]
    return (r.start, [n for n, _ in r.headers], chs, r.header("Server"))


def norm403(r):
    return (r.start, [n for n, _ in r.headers], r.header("Server"),
            r.body)


def fail(h):
    script, db = setup(h)
    srv = h.server(script)

    # wrong password, sipp
    sp = sipp_register(h, srv, "uac-register-auth-403.xml", "alice",
                       "not-the-password")
    h.sipp_ok(sp, "sipp uac-register-auth-403.xml: alice with a wrong "
              "password: 401 then 403")
    line = srv.wait_for({"lvl": "warn", "mod": "auth", "ev": "auth_failed",
                         "user": "alice",
                         "src": "%s:%d" % (LOCAL, sp.port)}, 2.0)
    h.ok(line, "logged: lvl=warn mod=auth ev=auth_failed user=alice "
         "src=%s:%d (sipp's address)" % (LOCAL, sp.port))
    # unknown user, sipp
    sp = sipp_register(h, srv, "uac-register-auth-403.xml", "nobody",
                       "whatever")
    h.sipp_ok(sp, "sipp uac-register-auth-403.xml: unknown user nobody: "
              "401 then 403")
    line = srv.wait_for({"ev": "auth_failed", "user": "nobody",
                         "src": "%s:%d" % (LOCAL, sp.port)}, 2.0)
    h.ok(line, "logged: ev=auth_failed user=nobody src=%s:%d" %
         (LOCAL, sp.port))

    # unknown user vs known user, raw: the 401s and 403s compared
    known = reglib.RegClient(srv, user="alice")
    unknown = reglib.RegClient(srv, user="nobody")
    rk = known.register(["<%s>" % known.contact()], 600)
    ru = unknown.register(["<%s>" % unknown.contact()], 600)
    h.ok(rk and ru and rk.code == ru.code == 401 and
         norm401(rk) == norm401(ru) and
         challenges(rk)[0]["nonce"] != challenges(ru)[0]["nonce"],
         "the 401 to an unknown user is the 401 to a known one apart from "
         "the nonce", diag="known:   %r\nunknown: %r" % (
             norm401(rk) if rk else None, norm401(ru) if ru else None))
    fk = known.register(["<%s>" % known.contact()], 600, auth="wrong")
    fu = unknown.register(["<%s>" % unknown.contact()], 600, auth="secret")
    h.ok(fk and fu and fk.code == fu.code == 403 and
         norm403(fk) == norm403(fu),
         "the 403 to an unknown user is the 403 to a known user with a "
         "wrong password", diag="known:   %s\nunknown: %s" % (D(fk), D(fu)))
    h.ok(srv.wait_for({"ev": "auth_failed", "user": "nobody",
                       "src": "%s:%d" % (LOCAL, unknown.port)}, 2.0),
         "logged: ev=auth_failed user=nobody src=%s:%d (raw)" %
         (LOCAL, unknown.port))

    # replay: the same Authorization (nonce, nc, cnonce) twice
    c = reglib.RegClient(srv, user="alice")
    me = c.contact()
    r = c.register(["<%s>" % me], 600)
    ch = challenges(r)[0] if r and r.code == 401 else {}
    h.ok(ch.get("nonce"), "replay: a 401 gives a nonce", diag=D(r))
    auth1 = reglib.digest_authorization("alice", "secret", ch.get("nonce"),
                                        c.ruri, nc=1)
    data, branch = c.cl.build(
        "REGISTER", uri=c.ruri,
        set={"From": "<%s>;tag=%s" % (c.aor, c.tag), "To": "<%s>" % c.aor,
             "Call-ID": c.callid, "CSeq": "%d REGISTER" % (c.cseq + 1)},
        extra=[("Contact", "<%s>" % me), ("Expires", "600"),
               ("Authorization", auth1)])
    c.cseq += 1
    c.cl.sock.sendto(data, c.cl.dst)
    r1 = c.cl.recv(branch)
    h.ok(r1 and r1.code == 200, "replay: REGISTER with nc=00000001 -> 200",
         diag=D(r1))
    mark = srv.mark()
    c.cl.sock.sendto(data, c.cl.dst)       # the very same datagram
    rr = c.cl.recv(branch)
    h.ok(rr and rr.code == 200 and rr.raw == r1.raw,
         "a retransmission of it (same branch) gets the same 200 again, "
         "not a replay verdict", diag=D(rr))
    r2 = c.register(["<%s>" % me], 600, authorization=auth1)
    chs = challenges(r2)
    h.ok(r2 and r2.code == 401 and len(chs) == 1 and
         is_md5_challenge(chs[0], stale=True) and
         chs[0]["nonce"] != ch.get("nonce"),
         "replay: the same Authorization in a new REGISTER (CSeq+1) -> 401 "
         "stale=true with a new nonce", diag=D(r2))
    line = srv.wait_for({"lvl": "warn", "mod": "auth", "ev": "auth_replay",
                         "user": "alice",
                         "src": "%s:%d" % (LOCAL, c.port)}, 2.0, after=mark)
    h.ok(line, "logged: lvl=warn mod=auth ev=auth_replay user=alice "
         "src=%s:%d" % (LOCAL, c.port))
    h.ok(len(srv.find({"ev": "auth_replay"}, after=mark)) == 1,
         "exactly one auth_replay (the retransmission was none)")
    r3 = c.register(["<%s>" % me], 600, authorization=reglib.
                    digest_authorization("alice", "secret", ch.get("nonce"),
                                         c.ruri, nc=2, cnonce="c2"))
    h.ok(r3 and r3.code == 200, "replay: the same nonce with nc=00000002 "
         "-> 200", diag=D(r3))
    r4 = c.register(["<%s>" % me], 600, authorization=reglib.
                    digest_authorization("alice", "secret", ch.get("nonce"),
                                         c.ruri, nc=1, cnonce="c3"))
    h.ok(r4 and r4.code == 401 and challenges(r4) and
         is_md5_challenge(challenges(r4)[0], stale=True),
         "replay: a lower nc (00000001 after 00000002, new cnonce) -> 401 "
         "stale=true", diag=D(r4))
    r5 = c.register(["<%s>" % me], 600, authorization=reglib.
                    digest_authorization("alice", "secret",
                                         challenges(r4)[0]["nonce"]
                                         if r4 and challenges(r4) else "",
                                         c.ruri, nc=1))
    h.ok(r5 and r5.code == 200, "the stale challenge's new nonce -> 200",
         diag=D(r5))

    # no qop (RFC 2069 style): malformed for us
    r = c.register(["<%s>" % me], 600, authorization=reglib.
                   digest_authorization("alice", "secret", ch.get("nonce"),
                                        c.ruri, qop=None))
    h.ok(r and r.code == 400, "a digest without qop -> 400", diag=D(r))

    b = reglib.where(srv, "sip:alice@%s" % LOCAL)
    h.ok(b is not None and [u for u, _, _ in b] == [me],
         "alice's only binding is the one of the accepted REGISTERs "
         "(sipp's, refused, is not there)", diag="got %r" % (b,))
    b = reglib.where(srv, "sip:nobody@%s" % LOCAL)
    h.ok(b == [], "nobody has no binding", diag="got %r" % (b,))
    for cl in (known, unknown, c):
        cl.close()
    h.stop_server(srv, must=[{"lvl": "warn", "ev": "auth_bad",
                              "user": "alice"}])


def stale(h):
    script, db = setup(h)
    srv = h.server(script)
    port = srv.port
    c = reglib.RegClient(srv, user="alice")
    me = c.contact()
    r = c.register(["<%s>" % me], 600)
    old = challenges(r)[0].get("nonce") if r and challenges(r) else None
    r = c.register(["<%s>" % me], 600, authorization=reglib.
                   digest_authorization("alice", "secret", old, c.ruri))
    h.ok(r and r.code == 200, "REGISTER alice with the first server's "
         "nonce -> 200", diag=D(r))
    h.stop_server(srv)

    srv2 = h.server(script, listen=["udp:%s:%d" % (LOCAL, port)])
    srv2.port = port
    r = c.register(["<%s>" % me], 600, authorization=reglib.
                   digest_authorization("alice", "wrong", old, c.ruri, nc=2))
    h.ok(r and r.code == 403, "after the restart, the old nonce with a "
         "wrong password -> 403 (not stale)", diag=D(r))
    r = c.register(["<%s>" % me], 600, authorization=reglib.
                   digest_authorization("alice", "secret", old, c.ruri,
                                        nc=3))
    chs = challenges(r)
    h.ok(r and r.code == 401 and len(chs) == 1 and
         is_md5_challenge(chs[0], stale=True) and chs[0]["nonce"] != old,
         "after the restart, the old nonce with the right password -> 401 "
         "stale=true and a new nonce", diag=D(r))
    b = reglib.where(srv2, c.aor)
    h.ok(b and [u for u, _, _ in b] == [me],
         "the binding of before the restart is still there",
         diag="got %r" % (b,))
    new = chs[0]["nonce"] if chs else ""
    r = c.register(["<%s>" % me], 900, authorization=reglib.
                   digest_authorization("alice", "secret", new, c.ruri))
    cs = reglib.contacts_of(r)
    h.ok(r and r.code == 200 and [(u, p.get("expires")) for u, p in cs] ==
         [(me, "900")], "the new nonce -> 200, the binding refreshed "
         "(expires=900)", diag=D(r))
    sp = sipp_register(h, srv2, "uac-register-auth.xml", "alice", "secret")
    h.sipp_ok(sp, "sipp uac-register-auth.xml after the restart: 401, 200")
    c.close()
    h.stop_server(srv2, must=[r"\bev=auth_failed\b.*\buser=alice\b"])


def ttl(h):
    script, db = setup(h, script="reg-auth-opts.lua")
    srv = h.server(script)
    c = reglib.RegClient(srv, user="alice")
    me = c.contact()

    # the nonce is made between t_send and t_recv: its age is checked
    # at t_send + 8 (surely < 10 s) and t_recv + 10.6 (surely > 10 s)
    t_send = time.monotonic()
    r = c.register(["<%s>" % me], 600)
    t_recv = time.monotonic()
    chs = challenges(r)
    h.ok(r and r.code == 401 and [x.get("algorithm") for x in chs] ==
         ["SHA-256", "MD5"] and len({x.get("nonce") for x in chs}) == 1 and
         all(x.get("qop") == "auth" and x.get("realm") == "sipstack"
             for x in chs),
         "algorithms {SHA-256, MD5}: the 401 offers SHA-256 first, then "
         "MD5, one nonce", diag=D(r))
    nonce = chs[0].get("nonce") if chs else ""
    r = c.register(["<%s>" % me], 600, authorization=reglib.
                   digest_authorization("alice", "secret", nonce, c.ruri,
                                        algorithm="SHA-256"))
    h.ok(r and r.code == 200, "a SHA-256 digest (nc=1) -> 200", diag=D(r))
    m = reglib.RegClient(srv, user="alice")
    r = m.register(["<%s>" % m.contact()], 600, auth="secret")   # MD5
    h.ok(r and r.code == 200 and len(m.last) == 2,
         "an MD5 digest on a fresh nonce -> 200", diag=D(r))
    r = m.register(["<%s>" % m.contact()], 600, authorization=reglib.
                   digest_authorization("alice", "wrong", nonce, m.ruri,
                                        algorithm="SHA-256", nc=5))
    h.ok(r and r.code == 403, "a SHA-256 digest with a wrong password -> "
         "403", diag=D(r))
    m.close()

    time.sleep(max(0.0, t_send + 8.0 - time.monotonic()))
    r = c.register(["<%s>" % me], 600, authorization=reglib.
                   digest_authorization("alice", "secret", nonce, c.ruri,
                                        algorithm="SHA-256", nc=2))
    h.ok(r and r.code == 200, "8 s after its challenge the nonce still "
         "works (nc=2) -> 200", diag=D(r))
    time.sleep(max(0.0, t_recv + 10.6 - time.monotonic()))
    r = c.register(["<%s>" % me], 600, authorization=reglib.
                   digest_authorization("alice", "secret", nonce, c.ruri,
                                        algorithm="SHA-256", nc=3))
    chs = challenges(r)
    h.ok(r and r.code == 401 and len(chs) == 2 and
         all(x.get("stale", "").lower() == "true" and
             x.get("nonce") != nonce for x in chs),
         "10.6 s after its challenge (nonce_ttl = 10) -> 401 stale=true "
         "with a new nonce", diag=D(r))
    new = chs[0].get("nonce") if chs else ""
    r = c.register(["<%s>" % me], 600, authorization=reglib.
                   digest_authorization("alice", "secret", new, c.ruri,
                                        algorithm="SHA-256"))
    h.ok(r and r.code == 200, "the new nonce -> 200", diag=D(r))
    c.close()
    h.stop_server(srv, must=[{"ev": "auth_failed", "user": "alice"}])


def authz(h):
    script, db = setup(h, (("alice", "secret"), ("bob", "b0b-pw")))
    srv = h.server(script)
    sp = sipp_register(h, srv, "uac-register-auth.xml", "bob", "b0b-pw")
    h.sipp_ok(sp, "sipp: bob registers sip:bob@%s with bob's credentials "
              "-> 200" % LOCAL)
    bob = [u for u, _, _ in reglib.where(srv, "sip:bob@%s" % LOCAL) or []]

    # alice's own, correct credentials used for bob's AOR
    sp = h.sipp(reglib.scenario("uac-register-auth-403.xml"), srv,
                args=["-s", "bob", "-au", "alice", "-ap", "secret",
                      "-key", "domain", LOCAL, "-key", "expires", "600"])
    h.sipp_ok(sp, "sipp: REGISTER To sip:bob@%s answered with alice's "
              "(valid) credentials -> 403 (RFC 3261 10.3 step 4: the "
              "authenticated user may not modify bob's bindings)" % LOCAL)
    got = sp.messages("received")
    h.note("answers: %s" % "; ".join(D(m) for m in got))
    c = reglib.RegClient(srv, user="bob")
    r = c.register(["<%s>" % c.contact()], 600)
    nonce = challenges(r)[0].get("nonce") if r and challenges(r) else ""
    r = c.register(["<%s>" % c.contact()], 600, authorization=reglib.
                   digest_authorization("alice", "secret", nonce, c.ruri))
    h.ok(r and r.code == 403, "raw: the same, To bob, Authorization "
         "username=\"alice\" with alice's valid digest -> 403", diag=D(r))
    after = [u for u, _, _ in reglib.where(srv, "sip:bob@%s" % LOCAL) or
             []]
    h.ok(after == bob, "bob's bindings are unchanged (only bob's own "
         "registration)", diag="before %r, after %r" % (bob, after))
    r = c.register(["<%s>" % c.contact()], 0, authorization=reglib.
                   digest_authorization("alice", "secret", nonce, c.ruri,
                                        nc=2))
    h.ok(r and r.code == 403, "alice's credentials cannot remove a "
         "binding of bob either (Expires: 0) -> 403", diag=D(r))
    c.close()
    a = reglib.RegClient(srv, user="alice", password="secret")
    r = a.register(["<%s>" % a.contact()], 600)
    h.ok(r and r.code == 200, "control: alice registers her own AOR -> 200",
         diag=D(r))
    a.close()
    h.stop_server(srv)


def body(h, a):
    {"flow": flow, "fail": fail, "stale": stale, "ttl": ttl,
     "authz": authz}[a.case](h)


if __name__ == "__main__":
    harness.test_main("registrar: digest authentication of REGISTER", body,
                      extra_args=args)
