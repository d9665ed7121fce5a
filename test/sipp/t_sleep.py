#!/usr/bin/env python3
"""sip.sleep in a hook does not block the loop, script
test/scripts/sleep.lua (raw UDP, for precise timing):

- a MESSAGE "slow" is answered "200 Slept" about 1 s later (not before
  0.95 s, not after 2.5 s);
- 10 OPTIONS sent during that second, one every 80 ms, are each answered
  at once (within 0.5 s), all before the slow answer;
- two "slow" MESSAGEs sent together are both answered after about 1 s
  (the sleeps overlap: not 2 s).
"""
import os
import sys
import time

sys.dont_write_bytecode = True   # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402


def body(h, a):
    srv = h.server("sleep.lua")
    slow = harness.UdpClient(srv.port)
    fast = harness.UdpClient(srv.port)

    t0 = time.monotonic()
    branch = slow.send("MESSAGE", ctype="text/plain", body="slow")
    times = []
    for i in range(10):
        time.sleep(max(0.0, t0 + 0.05 + 0.08 * i - time.monotonic()))
        sent = time.monotonic()
        r = fast.request("OPTIONS", timeout=1.0)
        times.append((r.code if r else None, sent - t0,
                      time.monotonic() - sent))
    r = slow.recv(branch, timeout=3.0)
    took = time.monotonic() - t0

    h.ok(all(c == 200 for c, _, _ in times),
         "10 OPTIONS sent during the sleep all answered 200",
         diag="(code, sent at, took): %r" % times)
    h.ok(all(d <= 0.5 for _, _, d in times),
         "each OPTIONS answered within 0.5 s (slowest %.3f s)" %
         max(d for _, _, d in times), diag="%r" % times)
    last = max(s + d for _, s, d in times)
    h.ok(last < took, "all OPTIONS answered (by %.2f s) before the slow "
         "MESSAGE (%.2f s)" % (last, took))
    h.ok(r is not None and r.code == 200 and r.reason == "Slept",
         "the slow MESSAGE is answered \"200 Slept\"", diag="got %r" % r)
    h.ok(0.95 <= took <= 2.5, "its answer came after the 1 s sleep "
         "(%.3f s)" % took)

    # two sleeps at once overlap
    t0 = time.monotonic()
    b1 = slow.send("MESSAGE", ctype="text/plain", body="slow")
    b2 = fast.send("MESSAGE", ctype="text/plain", body="slow")
    r1 = slow.recv(b1, timeout=3.0)
    r2 = fast.recv(b2, timeout=3.0)
    took = time.monotonic() - t0
    h.ok(r1 is not None and r1.code == 200 and r2 is not None and
         r2.code == 200, "two concurrent slow MESSAGEs both answered 200",
         diag="got %r, %r" % (r1, r2))
    h.ok(0.95 <= took < 1.9, "both within one sleep, not two (%.3f s)" %
         took)

    slow.close()
    fast.close()
    n = len(srv.find({"ev": "log", "msg": "woke"}))
    h.ok(n == 3, "3 hooks slept and woke (%d)" % n)
    h.stop_server(srv, must_not=[r"\bev=hook_error\b", r"\bev=unanswered\b"])


if __name__ == "__main__":
    harness.test_main(__doc__.splitlines()[0], body)
