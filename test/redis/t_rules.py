#!/usr/bin/env python3
"""REGISTER processing of RFC 3261 §10.3 against the Redis store.

The same steps as test/registrar/t_semantics.py (imported from there and
run unchanged: register, refresh, unregister, several contacts, expires
parameter and header, q-values, wildcard, 423, malformed, Call-ID/CSeq
ordering) against test/redis/reg-redis.lua: store = redis://..., auth
off, min 60, max_expires 7200. Where the SQLite run reads the database
file, this one reads the AOR's hash in Redis (what the store wrote, its
key named with a Cluster hash tag, live contacts by Redis's clock).

Then what only this store does:
  keys        one hash per AOR, "sipstack:loc:{<aor>}", a field per
              binding named by its Contact, the key's expiry the latest
              binding's (PEXPIREAT: Redis drops the AOR by itself)
  outbound    RFC 5626: a REGISTER with the same +sip.instance and
              reg-id and another Contact replaces the binding; another
              reg-id adds one
  uri-equal   RFC 3261 §19.1.4 in the script: a Contact differing only
              in letter case of the host and an unknown parameter is the
              same binding; one with transport=tcp is another
  scripts     SCRIPT FLUSH in Redis: the next REGISTER still gets 200
              (NOSCRIPT -> EVAL)
"""
import os
import sys

sys.dont_write_bytecode = True   # no __pycache__ in the source tree
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import redislib  # noqa: E402
from redislib import harness, reglib  # noqa: E402
import t_semantics as sem  # noqa: E402  (test/registrar/t_semantics.py)

D = reglib.desc_resp


class RedisCtx(sem.Ctx):
    """t_semantics's checks, the database ones asked of Redis."""

    def __init__(self, h, srv, redis):
        super().__init__(h, srv, "redis", None, 7200)
        self.redis = redis

    def db_rows(self, aor, want, desc):
        got = self.redis.live(aor)
        self.h.ok(got == set(want), "%s: Redis holds %s for %s" % (
            desc, sorted(want) or "no binding", aor),
            diag="live contacts in Redis: %r" % (got,))


def keys(x):
    h, rs = x.h, x.redis
    c = x.client("kelly")
    a, b = c.contact(30), c.contact(31)
    r = c.register(["<%s>;expires=120" % a, "<%s>;expires=900" % b])
    x.code(r, 200, "REGISTER kelly: two contacts, 120 s and 900 s")
    got = rs.bindings(c.aor)
    h.ok(got is not None and set(got) == {a, b},
         "one hash sipstack:loc:{%s}, one field per Contact" % c.aor,
         diag="hash: %r" % (got,))
    cl = rs.client()
    try:
        pttl = cl.cmd("PTTL", redislib.KEY % c.aor)
        kind = cl.cmd("TYPE", redislib.KEY % c.aor)
    finally:
        cl.close()
    h.ok(kind == b"hash" and 895000 <= pttl <= 900000,
         "the key is a hash expiring with its latest binding (PTTL "
         "~900 s)", diag="TYPE %r PTTL %r" % (kind, pttl))
    bd = (got or {}).get(b, {})
    h.ok(bd.get("i") == c.callid and bd.get("s") == c.cseq and
         bd.get("q") == 1000 and bd.get("o") == "sip:%s:%d" % (
             reglib.LOCAL, x.srv.port) and
         bd.get("v") == "sip:%s:%d" % (reglib.LOCAL, c.port),
         "the binding holds Call-ID, CSeq, q, received and this node's "
         "URI (node)", diag=repr(bd))


def outbound(x):
    h = x.h
    c = x.client("olga")
    inst = '+sip.instance="<urn:uuid:00000000-0000-1000-8000-000A95A0E128>"'
    a, b, d = c.contact(40), c.contact(41), c.contact(42)
    r = c.register(["<%s>;%s;reg-id=1" % (a, inst)], 600)
    x.code(r, 200, "REGISTER olga <a> instance I reg-id 1")
    r = c.register(["<%s>;%s;reg-id=1" % (b, inst)], 600)
    x.code(r, 200, "REGISTER olga <b> same instance and reg-id")
    x.listed(r, {b: 600}, "RFC 5626: the flow's new Contact replaces <a>")
    r = c.register(["<%s>;%s;reg-id=2" % (d, inst)], 600)
    x.listed(r, {b: 600, d: 600}, "RFC 5626: reg-id 2 is another flow")
    cs = {u: p for u, p in reglib.contacts_of(r)}
    h.ok(cs.get(d, {}).get("reg-id") == "2" and
         "urn:uuid" in cs.get(d, {}).get("+sip.instance", ""),
         "the 200 gives +sip.instance and reg-id back", diag=D(r))
    x.db_rows(c.aor, {b, d}, "outbound")


def uri_equal(x):
    c = x.client("uma")
    a = "sip:uma@%s:20050" % reglib.LOCAL
    a2 = "sip:uma@%s:20050;foo=bar" % reglib.LOCAL.upper()
    a3 = "sip:uma@%s:20050;transport=tcp" % reglib.LOCAL
    r = c.register(["<%s>" % a], 600)
    x.code(r, 200, "REGISTER uma <%s>" % a)
    r = c.register(["<%s>" % a2], 300)
    x.listed(r, {a2: 300}, "<%s> is the same URI (§19.1.4: an unknown "
             "parameter in one only): replaced" % a2)
    r = c.register(["<%s>" % a3], 300)
    x.listed(r, {a2: 300, a3: 300}, "<%s> is another URI (transport "
             "in one only)" % a3)


def scripts(x):
    rs = x.redis
    cl = rs.client()
    try:
        ok = cl.cmd("SCRIPT", "FLUSH") == b"OK"
    finally:
        cl.close()
    x.h.ok(ok, "SCRIPT FLUSH in Redis")
    c = x.client("sam")
    r = c.register(["<%s>" % c.contact()], 600)
    x.code(r, 200, "REGISTER after SCRIPT FLUSH (NOSCRIPT: sent again as "
           "EVAL)")
    x.lookup(c.aor, [(c.contact(), 600, 1.0)], "lookup after SCRIPT "
             "FLUSH", exact_expires=False)


def body(h, a):
    rs = redislib.start_redis(h)
    srv = h.server(redislib.script(h, rs))
    up = srv.wait_for({"mod": "location", "ev": "redis_up"}, 5)
    h.ok(up, "ev=redis_up logged once connected", server=srv)
    x = RedisCtx(h, srv, rs)
    for step in (sem.register_refresh_unregister, sem.several, sem.expires,
                 sem.qvalues, sem.wildcard, sem.too_brief, sem.malformed,
                 sem.ordering, keys, outbound, uri_equal, scripts):
        step(x)
    for c in x.clients:
        c.close()
    h.stop_server(srv, must=[{"mod": "registrar", "ev": "open",
                              "store": rs.url}],
                  must_not=[r"\bev=hook_error\b", r"\bev=redis_down\b",
                            r"\bev=redis_error\b"])


if __name__ == "__main__":
    harness.test_main("redis: RFC 3261 §10.3 on the wire, bindings in "
                      "Redis", body)
