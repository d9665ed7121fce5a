#!/usr/bin/env python3
"""Expiry of bindings in the Redis store: Redis's, not a node's.

test/redis/reg-redis.lua with min_expires 1.
  short       <a>;expires=2 and <b>;expires=600 -> the lookup gives both;
              2.5 s later only <b> (the scripts ignore a binding whose
              expiry, by Redis's clock, has passed); the field of <a> is
              still in the hash until the next write of the AOR, which
              deletes it (no node timer touches Redis)
  key         an AOR whose only binding has expires=2: Redis's own key
              expiry (PEXPIREAT) removes the whole key within 3 s, with
              the node stopped (nothing of the node is involved)
  refresh     a refresh moves the key's expiry forward
"""
import os
import sys
import time

sys.dont_write_bytecode = True   # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import redislib  # noqa: E402
from redislib import harness, reglib  # noqa: E402

D = reglib.desc_resp


def where(srv, aor):
    got = reglib.where(srv, aor)
    return None if got is None else {u for u, _, _ in got}


def body(h, a):
    rs = redislib.start_redis(h)
    srv = h.server(redislib.script(h, rs, min_expires=1))
    h.ok(srv.wait_for({"mod": "location", "ev": "redis_up"}, 5),
         "connected to Redis (ev=redis_up)")

    c = reglib.RegClient(srv, user="eve")
    a, b = c.contact(1), c.contact(2)
    r = c.register(["<%s>;expires=2" % a, "<%s>;expires=600" % b])
    h.ok(r is not None and r.code == 200, "REGISTER eve: <a> 2 s, <b> "
         "600 s -> 200", diag=D(r))
    h.ok(where(srv, c.aor) == {a, b}, "lookup: both")

    d = reglib.RegClient(srv, user="dan")
    r = d.register(["<%s>;expires=2" % d.contact(3)])
    h.ok(r is not None and r.code == 200, "REGISTER dan: one binding, "
         "2 s -> 200", diag=D(r))
    f = reglib.RegClient(srv, user="fay")
    r = f.register(["<%s>;expires=2" % f.contact(4)])
    r2 = f.register(["<%s>;expires=30" % f.contact(4)])
    cl = rs.client()
    try:
        pttl = cl.cmd("PTTL", redislib.KEY % f.aor)
    finally:
        cl.close()
    h.ok(r2 is not None and r2.code == 200 and 25000 <= pttl <= 30000,
         "refresh to 30 s moves the key's expiry (PTTL %s)" % pttl,
         diag=D(r2))

    # the node goes: what happens now is Redis's doing alone
    h.stop_server(srv, must_not=[r"\bev=redis_down\b"])
    time.sleep(2.6)
    held = rs.bindings(c.aor)
    h.ok(held is not None and set(held) == {a, b} and
         rs.live(c.aor) == {b},
         "2.6 s later, no node running: <a> is expired by Redis's clock, "
         "its field still in the hash", diag="hash %r" % (held,))
    cl = rs.client()
    gone = False
    try:
        end = time.monotonic() + 3
        while time.monotonic() < end and not gone:
            gone = cl.cmd("EXISTS", redislib.KEY % d.aor) == 0
            if not gone:
                time.sleep(0.1)
        fay = cl.cmd("EXISTS", redislib.KEY % f.aor)
    finally:
        cl.close()
    h.ok(gone, "dan's key is gone: Redis expired it by itself "
         "(PEXPIREAT of the latest binding)")
    h.ok(fay == 1, "fay's refreshed key is still there")

    srv = h.server(redislib.script(h, rs, min_expires=1))
    h.ok(srv.wait_for({"mod": "location", "ev": "redis_up"}, 5),
         "a new node connects")
    h.ok(where(srv, c.aor) == {b}, "its lookup of eve: <b> only")
    h.ok(where(srv, d.aor) == set(), "its lookup of dan: nothing")
    c.cl.sock.close()
    c = reglib.RegClient(srv, user="eve")
    r = c.register([])
    h.ok(r is not None and r.code == 200 and
         {u for u, _ in reglib.contacts_of(r)} == {b},
         "a query REGISTER of eve -> 200 listing <b>", diag=D(r))
    held = rs.bindings(c.aor)
    h.ok(held is not None and set(held) == {b},
         "the write deleted <a>'s expired field", diag=repr(held))
    for cl in (c, d, f):
        cl.close()
    h.stop_server(srv, must_not=[r"\bev=redis_down\b"])


if __name__ == "__main__":
    harness.test_main("redis: bindings expire in Redis", body)
