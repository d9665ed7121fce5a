#!/usr/bin/env python3
"""A registrar deciding in Lua: test/registrar/reg-hook.lua has
sip.on_register(function(req) ... end) refusing every AOR outside
example.com with 403 and handing the rest to sip.registrar.save(req)
(digest auth, then the store). Both outcomes on the wire:

  - sipp uac-register-auth.xml, alice@example.com: 401 (from save) then
    200 listing sipp's contact; save() returned 200 and 1 binding (the
    script logs it), and before that nil, "unauthorized" for the 401.
  - sipp uac-register-403.xml, bob@evil.example.org: 403 "Domain Not
    Served" at once, without a challenge; the script logged the refusal.
  - raw: alice@example.com with a wrong password -> 401 then 403 (from
    save's authentication).
  - the lookup and the database hold alice's binding only.
"""
import os
import sys

sys.dont_write_bytecode = True   # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reglib  # noqa: E402
from reglib import harness  # noqa: E402

D = reglib.desc_resp
LOCAL = reglib.LOCAL


def body(h, a):
    script, db = reglib.test_script(h, "reg-hook.lua")
    if not reglib.add_users(h, db, [("alice", "secret")]):
        raise harness.Abort("cannot add the user")
    srv = h.server(script)

    sp = h.sipp(reglib.scenario("uac-register-auth.xml"), srv,
                args=["-s", "alice", "-au", "alice", "-ap", "secret",
                      "-key", "domain", "example.com",
                      "-key", "expires", "600"])
    h.sipp_ok(sp, "sipp uac-register-auth.xml: alice@example.com 401 then "
              "200")
    got = sp.messages("received")
    me = "sip:alice@%s:%d" % (LOCAL, sp.port)
    h.ok(len(got) == 2 and got[0].code == 401 and
         got[0].header("WWW-Authenticate") and got[1].code == 200 and
         [(u, p.get("expires")) for u, p in reglib.contacts_of(got[1])] ==
         [(me, "600")],
         "example.com: 401 with a challenge, then 200 listing <%s>;"
         "expires=600" % me, diag="\n".join(D(m) for m in got))
    h.ok(srv.wait_for({"ev": "log", "msg": "saved",
                       "aor": "sip:alice@example.com", "code": "200",
                       "result": "1"}, 2.0),
         "the script logged save() -> 200, 1 binding")
    h.ok(srv.find({"ev": "log", "msg": "saved",
                   "aor": "sip:alice@example.com", "code": "nil",
                   "result": "unauthorized"}),
         "... and, for the 401, save() -> nil, \"unauthorized\"")

    sp = h.sipp(reglib.scenario("uac-register-403.xml"), srv,
                args=["-s", "bob", "-key", "domain", "evil.example.org",
                      "-key", "expires", "600"])
    h.sipp_ok(sp, "sipp uac-register-403.xml: bob@evil.example.org 403")
    got = sp.messages("received")
    h.ok(len(got) == 1 and got[0].code == 403 and
         got[0].reason == "Domain Not Served" and
         not got[0].header("WWW-Authenticate"),
         "another domain: \"403 Domain Not Served\" at once, no challenge",
         diag="\n".join(D(m) for m in got))
    h.ok(srv.wait_for({"ev": "log", "msg": "refused",
                       "aor": "sip:bob@evil.example.org"}, 2.0),
         "the script logged the refusal")

    c = reglib.RegClient(srv, user="alice", domain="example.com")
    r = c.register(["<%s>" % c.contact()], 600, auth="wrong")
    h.ok(len(c.last) == 2 and c.last[0] and c.last[0].code == 401 and
         r and r.code == 403,
         "alice@example.com with a wrong password: 401, then 403 from "
         "save()", diag="\n".join(D(m) for m in c.last))
    h.ok(srv.wait_for({"ev": "auth_failed", "user": "alice",
                       "src": "%s:%d" % (LOCAL, c.port)}, 2.0),
         "logged: ev=auth_failed user=alice src=%s:%d" % (LOCAL, c.port))
    c.close()

    b = reglib.where(srv, "sip:alice@example.com")
    h.ok(b is not None and [x[0] for x in b] == [me],
         "lookup of alice@example.com: sipp's contact only",
         diag="got %r" % (b,))
    b = reglib.where(srv, "sip:bob@evil.example.org")
    h.ok(b == [], "lookup of bob@evil.example.org: none",
         diag="got %r" % (b,))
    rows = reglib.sql(h, db, "select aor, contact from bindings")
    h.ok(rows == [["sip:alice@example.com", me]],
         "the database holds alice's binding only", diag="rows %r" % rows)
    h.stop_server(srv, must_not=[r"\bev=hook_error\b"])


if __name__ == "__main__":
    harness.test_main("registrar: on_register hook with save()", body)
