#!/usr/bin/env python3
"""Redis down, stuck and back: never a 200 that was not stored.

Redis runs with an append-only file fsynced on every write (appendfsync
always), so what it acknowledged survives its own kill -9, and "every
200 is in Redis" can be checked after each outage.
  down        kill -9 of Redis: one ev=redis_down line; REGISTER -> 503
              with Retry-After, a lookup (MESSAGE "where") -> the
              script's 503 "Lookup failed: unavailable"; the server
              lives on
  back        Redis restarted on its port: ev=redis_up within the
              back-off (at most 5 s); REGISTER -> 200; the bindings
              stored before the outage are still found
  load        REGISTERs of 600 AORs at 200/s while Redis is killed
              (-9) and restarted: the server never crashes, answers only
              200, 500 or 503, and every AOR that got a 200 is in Redis
  stuck       SIGSTOP of Redis: a REGISTER gets 500 once the request is
              3 s old (ev=redis_timeout), not a 200; SIGCONT: ev=redis_up
              again and REGISTER -> 200
"""
import os
import signal
import sys
import time

sys.dont_write_bytecode = True   # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import redislib  # noqa: E402
from redislib import harness, reglib  # noqa: E402

D = reglib.desc_resp


def restart(h, rs):
    up = rs.start()
    h.ok(up, "%s restarted on port %d" % (rs.name, rs.port))
    if not up:
        raise harness.Abort("redis-server did not restart")


def body(h, a):
    rs = redislib.start_redis(h, aof=True)
    srv = h.server(redislib.script(h, rs))
    h.ok(srv.wait_for({"mod": "location", "ev": "redis_up"}, 5),
         "connected (ev=redis_up)")

    # -- down ---------------------------------------------------------
    c = reglib.RegClient(srv, user="ann")
    r = c.register(["<%s>" % c.contact()], 600)
    h.ok(r is not None and r.code == 200, "REGISTER ann -> 200", diag=D(r))

    mark = srv.mark()
    rs.kill()
    h.ok(srv.wait_for({"mod": "location", "ev": "redis_down"}, 3,
                      after=mark),
         "kill -9 of Redis: ev=redis_down logged")
    b = reglib.RegClient(srv, user="ben")
    codes = []
    for _ in range(3):
        r = b.register(["<%s>" % b.contact()], 600)
        codes.append(r.code if r else None)
    h.ok(codes == [503] * 3 and r.header("Retry-After") == "5",
         "REGISTER while Redis is down -> 503 with Retry-After: 5 "
         "(three times)", diag="codes %r, last: %s" % (codes, D(r)))
    code, lines = redislib.ask(srv, "where", c.aor)
    h.ok(code == 503 and "unavailable" in " ".join(lines),
         "lookup while Redis is down: nil, \"unavailable\" (the script "
         "answers 503)", diag="%r %r" % (code, lines))
    time.sleep(0.5)
    downs = srv.find({"mod": "location", "ev": "redis_down"}, after=mark)
    h.ok(len(downs) == 1 and srv.alive(),
         "one redis_down line for the outage, whatever the retries; the "
         "server is alive", diag="\n".join(downs))

    # -- back ---------------------------------------------------------
    mark = srv.mark()
    restart(h, rs)
    h.ok(srv.wait_for({"mod": "location", "ev": "redis_up"}, 6,
                      after=mark), "ev=redis_up within the back-off")
    r = b.register(["<%s>" % b.contact()], 600)
    h.ok(r is not None and r.code == 200, "REGISTER ben -> 200 once Redis "
         "is back", diag=D(r))
    got = reglib.where(srv, c.aor)
    h.ok(got is not None and [u for u, _, _ in got] == [c.contact()],
         "ann's binding from before the outage is found (append-only "
         "file)", diag=repr(got))

    # -- load ---------------------------------------------------------
    ld = redislib.Load(srv.port, "dn", 600, 200).start()
    time.sleep(1.0)
    rs.kill()
    time.sleep(0.7)
    restart(h, rs)
    ld.wait_sent(6)
    ld.finish(linger=1.5)
    h.ok(srv.alive(), "the server lived through it (%d sent, answers %r)"
         % (ld.sent, ld.codes))
    h.ok(set(ld.codes) <= {200, 500, 503} and ld.codes.get(503, 0) > 0 and
         ld.codes.get(200, 0) > 0,
         "answers were 200, 500 or 503 only, with 503s during the outage",
         diag=repr(ld.codes))
    missing = [i for i in sorted(ld.ok)
               if rs.live(ld.aor(i)) != {ld.contact(i)}]
    h.ok(not missing, "every one of the %d AORs that got a 200 is in "
         "Redis" % len(ld.ok),
         diag="missing: %s" % ", ".join(ld.aor(i) for i in missing[:10]))

    # -- stuck --------------------------------------------------------
    if not srv.wait_for({"mod": "location", "ev": "redis_up"}, 6,
                        after=mark + 1):
        h.note("no second redis_up seen yet")
    time.sleep(0.3)
    mark = srv.mark()
    rs.proc.send_signal(signal.SIGSTOP)
    try:
        s = reglib.RegClient(srv, user="sid")
        t0 = time.monotonic()
        r = s.register(["<%s>" % s.contact()], 600, timeout=6)
        waited = time.monotonic() - t0
        h.ok(r is not None and r.code == 500 and 2.5 <= waited <= 5.5,
             "REGISTER while Redis is stopped -> 500 after %.1f s (its "
             "3 s timeout), no 200" % waited, diag=D(r))
        h.ok(srv.find({"mod": "location", "ev": "redis_timeout"},
                      after=mark), "ev=redis_timeout logged")
    finally:
        rs.proc.send_signal(signal.SIGCONT)
    h.ok(srv.wait_for({"mod": "location", "ev": "redis_up"}, 8,
                      after=mark), "SIGCONT: ev=redis_up again")
    r = s.register(["<%s>" % s.contact()], 600)
    h.ok(r is not None and r.code == 200, "REGISTER sid -> 200",
         diag=D(r))
    for cl in (b, c, s):
        cl.close()
    h.stop_server(srv, must_not=[r"\bev=hook_error\b"])


if __name__ == "__main__":
    harness.test_main("redis: Redis down, stuck and back", body)
