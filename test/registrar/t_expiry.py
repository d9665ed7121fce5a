#!/usr/bin/env python3
"""Bindings expire (RFC 3261 §10.3: a binding lives for its expiry), from
memory and from the disk. Script test/registrar/reg-expiry.lua (SQLite
store in the temp dir, no auth, min_expires = 0):

  - AOR tina: <a>;expires=2 and <b> under `Expires: 600` -> 200 listing
    a with expires=2 and b with 600; AOR uma: <c> with `Expires: 2`.
    The lookup and the database show the 3 bindings.
  - 3.5 s after the REGISTERs: a and c are gone from the lookup; b is
    still there with ~596 s left; uma has no binding at all. Their rows
    are gone from the database too (purged each second: polled up to 5
    s after the REGISTERs).
  - A new REGISTER of uma after the expiry is an ordinary 200.
"""
import os
import sys
import time

sys.dont_write_bytecode = True   # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reglib  # noqa: E402
from reglib import harness  # noqa: E402

D = reglib.desc_resp


def body(h, a):
    script, db = reglib.test_script(h, "reg-expiry.lua")
    srv = h.server(script)
    tina = reglib.RegClient(srv, user="tina")
    uma = reglib.RegClient(srv, user="uma")
    ca, cb, cc = tina.contact(1), tina.contact(2), uma.contact(3)

    t0 = time.monotonic()
    r = tina.register(["<%s>;expires=2" % ca, "<%s>" % cb], 600)
    exp = {u: p.get("expires") for u, p in reglib.contacts_of(r)}
    h.ok(r and r.code == 200 and exp.get(ca) == "2" and
         exp.get(cb) in ("600", "599") and len(exp) == 2,
         "tina: <a>;expires=2 and <b> under Expires: 600 -> 200 listing "
         "a expires=2, b expires=600", diag=D(r))
    r = uma.register(["<%s>" % cc], 2)
    exp = {u: p.get("expires") for u, p in reglib.contacts_of(r)}
    h.ok(r and r.code == 200 and exp == {cc: "2"},
         "uma: <c> with Expires: 2 -> 200 listing c expires=2 "
         "(min_expires = 0)", diag=D(r))
    bt = reglib.where(srv, tina.aor) or []
    bu = reglib.where(srv, uma.aor) or []
    h.ok({x[0] for x in bt} == {ca, cb} and [x[0] for x in bu] == [cc] and
         all(1 <= x[1] <= 2 for x in bt + bu if x[0] != cb),
         "at once: the lookup gives tina a and b, uma c (1-2 s left)",
         diag="tina %r, uma %r" % (bt, bu))
    n = reglib.sql_count(h, db)
    h.ok(n == 3, "the database holds the 3 bindings", diag="count %r" % n)

    time.sleep(max(0.0, t0 + 3.5 - time.monotonic()))
    bt = reglib.where(srv, tina.aor)
    bu = reglib.where(srv, uma.aor)
    h.ok(bt is not None and [x[0] for x in bt] == [cb] and
         590 <= bt[0][1] <= 597,
         "3.5 s later: tina's lookup gives b only (~596 s left)",
         diag="got %r" % (bt,))
    h.ok(bu == [], "3.5 s later: uma's lookup gives no binding",
         diag="got %r" % (bu,))
    # the purge runs each second and its delete is one more commit: wait
    # for it up to 5 s after the REGISTERs
    while True:
        rows = reglib.sql(h, db, "select aor, contact from bindings")
        if rows == [[tina.aor, cb]] or time.monotonic() > t0 + 5.0:
            break
        time.sleep(0.1)
    h.ok(rows == [[tina.aor, cb]],
         "the database holds tina's b only (a and c purged, %.1f s after "
         "the REGISTERs)" % (time.monotonic() - t0),
         diag="rows %r" % (rows,))

    r = uma.register(["<%s>" % cc], 600)
    h.ok(r and r.code == 200 and [u for u, _ in reglib.contacts_of(r)] ==
         [cc], "uma registers again after the expiry -> 200", diag=D(r))
    tina.close()
    uma.close()
    h.stop_server(srv, must=[{"mod": "location", "ev": "open",
                              "backend": "sqlite"}])


if __name__ == "__main__":
    harness.test_main("registrar: bindings expire", body)
