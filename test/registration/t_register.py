#!/usr/bin/env python3
"""Client registration (sip.register, server/registrar/regclient.c) against sipp
as the registrar, script test/registration/reg.lua, one case per run:

  auth        401 offering SHA-256 then MD5 (qop=auth), then 200
              expires=60: the Authorization answers the MD5 challenge; it
              is recomputed here and sipp verifies it too (verifyauth)
  authfail    401, the answer gets 401 again: "auth failed" at once, no
              third REGISTER until the back-off (retry_min=2) is over
  423         asks 30, 423 Min-Expires: 120, asks 120 at once, 200
  403         four 403s: (false, 0, "Forbidden") each, the retries after
              1, 2, 2 s (retry_min=1 doubling, retry_max=2)
  refresh     200 with expires=4, three times: each refresh comes about
              2 s after the last 200, before the 4 s run out
  unregister  200, then sip.unregister() from the hook: REGISTER with
              expires=0, (true, 0, "unregistered"), and sip.unregister()
              afterwards returns nil, "not registered"
  reregister  sip.unregister() then sip.register() at once, from the
              hook: the unregistration ends, then a new registration
              (new Call-ID) starts and refreshes (sipp echoes expires=4)
  reload      a reload with the same sip.register() sends nothing; one
              asking for another expires updates the registration (same
              Call-ID), never a second one; one with another contact
              registers it and removes the old one in the same REGISTER
  timeout     nothing at the registrar's address: (false, 0, "timeout")
              after Timer F (32 s)
"""
import os
import signal
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import regtest  # noqa: E402
from regtest import harness  # noqa: E402

USER, PASSWORD, REALM = "alice", "s3cret", "sipstack.test"

CASES = {
    "auth": dict(scenario="uas-reg-auth.xml",
                 options=dict(user=USER, password=PASSWORD)),
    "authfail": dict(scenario="uas-reg-authfail.xml",
                     options=dict(user=USER, password="wrong",
                                  retry_min=2)),
    "423": dict(scenario="uas-reg-423.xml",
                options=dict(user=USER, expires=30)),
    "403": dict(scenario="uas-reg-403.xml",
                options=dict(user=USER, retry_min=1, retry_max=2)),
    "refresh": dict(scenario="uas-reg-refresh.xml",
                    options=dict(user=USER, expires=4)),
    "unregister": dict(scenario="uas-reg-unreg.xml",
                       options=dict(user=USER, expires=60),
                       unregister_on_success=True),
    "reregister": dict(scenario="uas-reg-echo.xml", calls=2,
                       options=dict(user=USER, expires=4),
                       reregister=True),
    "reload": dict(scenario="uas-reg-reload.xml",
                   options=dict(user=USER, password=PASSWORD, expires=60)),
    "timeout": dict(scenario=None, options=dict(user=USER)),
}


def lua_str(x):
    """x as reg.lua logs it (tostring)"""
    return ("true" if x else "false") if isinstance(x, bool) else str(x)


def args(ap):
    ap.add_argument("--case", choices=sorted(CASES), required=True)


def expect_results(h, srv, want, timeout):
    """The first len(want) results are want: (ok, expires, reason, code)
    each; returns the (record, line) list."""
    got = regtest.wait_results(srv, len(want), timeout)
    for i, w in enumerate(want):
        rec = got[i][0] if i < len(got) else {}
        have = (rec.get("ok"), rec.get("expires"), rec.get("reason"),
                rec.get("code"))
        h.ok(have == tuple(lua_str(x) for x in w),
             "on_registration_result #%d is (%s, %s, %s, code %s)" %
             ((i + 1,) + tuple(w)),
             diag="got %s" % (regtest.result_desc(rec) if rec else
                              "nothing"), server=srv)
    return got


def same_registration(h, regs):
    ids = set(m.header("Call-ID") for _, m in regs)
    cseqs = [regtest.cseq_num(m) for _, m in regs]
    h.ok(len(ids) == 1, "every REGISTER has the same Call-ID (%s)" %
         ", ".join(sorted(ids)))
    h.ok(all(b == a + 1 for a, b in zip(cseqs, cseqs[1:])),
         "CSeq goes up by one per REGISTER: %s" % cseqs)


def body(h, a):
    c = CASES[a.case]
    uas = None
    if c["scenario"]:
        uas = h.sipp(regtest.scenario(c["scenario"]),
                     calls=c.get("calls", 1), timeout=20)
        if not h.ok(uas.wait_listening(), "sipp registrar (%s) listens on "
                    "%d" % (c["scenario"], uas.port), sipp=uas):
            raise harness.Abort("sipp did not start")
        port = uas.port
    else:
        port = harness.free_port(("udp",))   # nobody there
    registrar = "sip:%s:%d" % (harness.LOCAL, port)

    params = dict(registrar=registrar, options=c["options"],
                  unregister_on_success=c.get("unregister_on_success",
                                              False),
                  reregister=c.get("reregister", False))
    script = regtest.reg_script(h, params)
    srv = h.server(script)
    t0 = time.monotonic()

    CHECK[a.case](h, srv, uas, registrar, t0, script)

    h.stop_server(srv, must=[{"ev": "register", "registrar": registrar}],
                  must_not=[r"\bev=hook_error\b"])


def check_auth(h, srv, uas, registrar, t0, script):
    expect_results(h, srv, [(True, 60, "OK", 200)], 8)
    h.sipp_ok(uas, "sipp registrar: 401, then the credentials verified "
              "(verifyauth) and 200")
    regs = regtest.registers(uas)
    h.ok(len(regs) == 2, "sipp received 2 REGISTERs (got %d)" % len(regs))
    if len(regs) < 2:
        return
    first, second = regs[0][1], regs[1][1]
    h.ok(first.header("Authorization") is None,
         "the first REGISTER carries no credentials")
    # the 401 offers SHA-256 first, then MD5: libre can only answer MD5
    chall = [regtest.digest_params(v) for _, m in
             regtest.sipp_messages(uas, "sent") if m.code == 401
             for n, v in m.headers if n.lower() == "www-authenticate"]
    nonce = [c["nonce"] for c in chall if c.get("algorithm") == "MD5"][0]
    ok, why = regtest.digest_check(second.header("Authorization"),
                                   "REGISTER", USER, PASSWORD, REALM,
                                   nonce, "sip:127.0.0.1:%d" % uas.port)
    h.ok(ok, "the Authorization recomputed here is right (MD5, qop=auth, "
         "uri = Request-URI, the MD5 challenge's nonce): %s" % why,
         diag=second.header("Authorization"))
    h.ok(second.start == "REGISTER %s SIP/2.0" % registrar,
         "the request line targets the registrar", diag=second.start)
    h.ok(second.header("To") == "<sip:%s@127.0.0.1>" % USER and
         (second.header("From") or "").startswith(
             "<sip:%s@127.0.0.1>;tag=" % USER),
         "To and From are the default AOR sip:alice@127.0.0.1",
         diag="To: %s / From: %s" % (second.header("To"),
                                     second.header("From")))
    h.ok(regtest.contact_expires(second) == 3600 and
         (second.header("Contact") or "").startswith(
             "<sip:%s@127.0.0.1:%d>" % (USER, srv.port)),
         "the Contact is the listener's address with the user, "
         "expires=3600 (the default)", diag=second.header("Contact"))
    same_registration(h, regs)


def check_authfail(h, srv, uas, registrar, t0, script):
    got = expect_results(h, srv, [(False, 0, "auth failed", 401),
                                  (True, 60, "OK", 200)], 10)
    h.sipp_ok(uas, "sipp registrar: 401, 401, then 200 to the retry")
    regs = regtest.registers(uas)
    h.ok(len(regs) == 3, "sipp received 3 REGISTERs (got %d): one answer "
         "to the first challenge, none to the second" % len(regs))
    sent401 = [t for t, m in regtest.sipp_messages(uas, "sent")
               if m.code == 401]
    if len(regs) == 3 and len(sent401) == 2:
        gap = regs[2][0] - sent401[1]
        h.ok(1.8 <= gap <= 3.5, "the next REGISTER came after the "
             "back-off (retry_min=2): %.2f s after the second 401" % gap)
    h.check_log(srv, must=[{"ev": "auth_failed", "why": "rejected"},
                           {"ev": "failed", "code": "401",
                            "reason": "auth failed", "retry_in": "2"}])


def check_423(h, srv, uas, registrar, t0, script):
    expect_results(h, srv, [(True, 120, "OK", 200)], 8)
    h.sipp_ok(uas, "sipp registrar: 423 Min-Expires: 120 to expires=30, "
              "200 to expires=120")
    regs = regtest.registers(uas)
    h.ok([regtest.contact_expires(m) for _, m in regs] == [30, 120],
         "the REGISTERs asked for 30, then 120 (got %s)" %
         [regtest.contact_expires(m) for _, m in regs])
    h.check_log(srv, must=[{"ev": "min_expires", "asked": "30",
                            "min": "120"},
                           {"ev": "registered", "expires": "120"}])


def check_403(h, srv, uas, registrar, t0, script):
    expect_results(h, srv, [(False, 0, "Forbidden", 403)] * 4, 12)
    h.sipp_ok(uas, "sipp registrar: four 403s")
    regs = regtest.registers(uas)
    h.ok(len(regs) == 4, "sipp received 4 REGISTERs (got %d)" % len(regs))
    gaps = [b[0] - a[0] for a, b in zip(regs, regs[1:])]
    want = [1, 2, 2]
    h.ok(len(gaps) == 3 and all(w - 0.2 <= g <= w + 0.6
                                for g, w in zip(gaps, want)),
         "retries after 1, 2, 2 s (doubling from retry_min=1, capped at "
         "retry_max=2): %s" % ", ".join("%.2f" % g for g in gaps))
    h.check_log(srv, must=[{"ev": "failed", "failures": str(i + 1),
                            "retry_in": str(w)}
                           for i, w in enumerate([1, 2, 2, 2])])
    same_registration(h, regs)


def check_refresh(h, srv, uas, registrar, t0, script):
    got = expect_results(h, srv, [(True, 4, "OK", 200)] * 3, 10)
    h.sipp_ok(uas, "sipp registrar: three REGISTERs answered expires=4")
    regs = regtest.registers(uas)
    h.ok(len(regs) == 3, "sipp received 3 REGISTERs (got %d)" % len(regs))
    oks = [t for t, m in regtest.sipp_messages(uas, "sent")
           if m.code == 200]
    gaps = [r[0] - o for o, r in zip(oks, regs[1:])]
    h.ok(len(gaps) == 2 and all(1.7 <= g <= 3.0 for g in gaps),
         "each refresh came about 2 s after the 200 granting 4 s, well "
         "before it ran out: %s" % ", ".join("%.2f" % g for g in gaps))
    h.check_log(srv, must=[{"ev": "registered", "expires": "4",
                            "refresh_in": "2.000"}])
    same_registration(h, regs)


def check_unregister(h, srv, uas, registrar, t0, script):
    expect_results(h, srv, [(True, 60, "OK", 200),
                            (True, 0, "unregistered", 200)], 8)
    h.sipp_ok(uas, "sipp registrar: 200, then 200 to expires=0")
    regs = regtest.registers(uas)
    h.ok([regtest.contact_expires(m) for _, m in regs] == [60, 0],
         "the REGISTERs carried expires=60, then expires=0 (got %s)" %
         [regtest.contact_expires(m) for _, m in regs])
    h.check_log(srv, must=[{"ev": "log", "msg": "unregister",
                            "first": "true", "second": "true"},
                           {"ev": "log", "msg": "unregister_again",
                            "ret": "nil", "err": "not registered"},
                           {"ev": "unregistered", "code": "200"}])
    same_registration(h, regs)


def check_reload(h, srv, uas, registrar, t0, script):
    expect_results(h, srv, [(True, 60, "OK", 200)], 8)
    mark = srv.mark()
    srv.signal(signal.SIGHUP)
    h.ok(srv.wait_for({"ev": "reloaded", "gen": "2"}, 5, mark),
         "reload 1 (same parameters) done")
    time.sleep(1.5)
    h.ok(not regtest.results(srv, mark) and
         len(regtest.registers(uas)) == 1,
         "reload 1 sent no REGISTER and fired no result (sipp has %d)" %
         len(regtest.registers(uas)))
    h.ok(srv.find({"ev": "register", "action": "update"}, mark),
         "reload 1: sip.register updated the registration in place")

    regtest.rewrite_params(script, dict(
        registrar=registrar, options=dict(user=USER, password=PASSWORD,
                                          expires=90)))
    mark = srv.mark()
    srv.signal(signal.SIGHUP)
    h.ok(srv.wait_for({"ev": "reloaded", "gen": "3"}, 5, mark),
         "reload 2 (expires=90) done")
    expect_results_after(h, srv, mark, (True, 90, "OK", 200))
    time.sleep(0.5)
    regs = regtest.registers(uas)
    h.ok([regtest.contact_expires(m) for _, m in regs] == [60, 90],
         "exactly two REGISTERs, expires=60 and 90 (got %s)" %
         [regtest.contact_expires(m) for _, m in regs])
    same_registration(h, regs)

    # another contact: registered, and the old one removed, in one go
    old = "sip:%s@127.0.0.1:%d" % (USER, srv.port)
    new = "sip:%s-new@127.0.0.1:%d" % (USER, srv.port)
    regtest.rewrite_params(script, dict(
        registrar=registrar, options=dict(user=USER, password=PASSWORD,
                                          expires=90, contact=new)))
    mark = srv.mark()
    srv.signal(signal.SIGHUP)
    h.ok(srv.wait_for({"ev": "reloaded", "gen": "4"}, 5, mark),
         "reload 3 (contact=%s) done" % new)
    expect_results_after(h, srv, mark, (True, 90, "OK", 200))
    h.sipp_ok(uas, "sipp registrar: REGISTERs with expires=60, 90, 90")
    regs = regtest.registers(uas)
    last = regs[-1][1] if regs else None
    contacts = [v for n, v in (last.headers if last else [])
                if n.lower() in ("contact", "m")]
    h.ok(len(regs) == 3 and contacts == ["<%s>;expires=90" % new,
                                         "<%s>;expires=0" % old],
         "the third REGISTER adds the new contact and removes the old: %s"
         % contacts)
    same_registration(h, regs)
    h.ok(len(srv.find({"ev": "registered"})) == 3,
         "three registrations logged in all, one per REGISTER")


def expect_results_after(h, srv, mark, want):
    got = regtest.wait_results(srv, 1, 8, mark)
    rec = got[0][0] if got else {}
    h.ok((rec.get("ok"), rec.get("expires"), rec.get("reason"),
          rec.get("code")) == tuple(lua_str(x) for x in want),
         "then on_registration_result is (%s, %s, %s, code %s)" % want,
         diag="got %s" % regtest.result_desc(rec), server=srv)


def check_reregister(h, srv, uas, registrar, t0, script):
    expect_results(h, srv, [(True, 4, "OK", 200),
                            (True, 0, "unregistered", 200),
                            (True, 4, "OK", 200),
                            (True, 4, "OK", 200)], 10)
    h.sipp_ok(uas, "sipp registrar: two registrations of two REGISTERs "
              "each")
    regs = regtest.registers(uas)
    exp = [regtest.contact_expires(m) for _, m in regs]
    ids = [m.header("Call-ID") for _, m in regs]
    h.ok(exp == [4, 0, 4, 4], "REGISTERs asked for 4, 0, then 4, 4 "
         "(got %s)" % exp)
    h.ok(len(ids) == 4 and ids[0] == ids[1] and ids[2] == ids[3] and
         ids[1] != ids[2],
         "the new registration has a Call-ID of its own, set up only "
         "after the unregistration ended: %s" % ids)
    h.check_log(srv, must=[{"ev": "register",
                            "action": "after_unregister"},
                           {"ev": "log", "msg": "reregister",
                            "unregister": "true", "register": "true"}])


def check_timeout(h, srv, uas, registrar, t0, script):
    got = expect_results(h, srv, [(False, 0, "timeout", 0)], 40)
    took = time.monotonic() - t0
    h.ok(got and 30.0 <= took <= 36.0,
         "the timeout came after Timer F (32 s): %.1f s" % took)
    h.check_log(srv, must=[{"ev": "failed", "reason": "timeout",
                            "retry_in": "30"}])


CHECK = {
    "auth": check_auth,
    "authfail": check_authfail,
    "423": check_423,
    "403": check_403,
    "refresh": check_refresh,
    "unregister": check_unregister,
    "reregister": check_reregister,
    "reload": check_reload,
    "timeout": check_timeout,
}


if __name__ == "__main__":
    harness.test_main(__doc__.splitlines()[0], body, extra_args=args)
