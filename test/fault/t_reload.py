#!/usr/bin/env python3
"""SIGHUP every second during a call load: 0 failed calls (issue 13
item 8).

test/fault/reload-uas.lua answers sipp's built-in `uac` scenario (sipp
-sd uac: INVITE, 180, 200, ACK, held 1 s, BYE, 200) at 20 calls/s for
20 s (400 calls); each hook rings, sleeps 0.3 s and answers, so at every
reload calls are in each state: ringing in a hook of the old generation,
answered and held, hanging up. Meanwhile the test sends the server
SIGHUP every second. Then:

- sipp reports every call successful, none failed;
- the server logged a successful reload (ev=reloaded) for (nearly) every
  SIGHUP, none failed, and no lvl=error line;
- it stops cleanly.
"""
import os
import signal
import sys
import time

sys.dont_write_bytecode = True   # no __pycache__ in the source tree
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "sipp"))
import harness  # noqa: E402

CALLS = 400
RATE = 20


def body(h, a):
    # sipp's own uac scenario, as sipp ships it
    rc, out, err = h.run([h.sipp_bin, "-sd", "uac"], timeout=10)
    uac = os.path.join(h.tmp, "uac.xml")
    with open(uac, "w", encoding="utf-8") as f:
        f.write(out)
    h.ok("<scenario" in out, "sipp -sd uac: the built-in scenario",
         diag=err)

    srv = h.server(os.path.join(HERE, "reload-uas.lua"))
    mark = srv.mark()
    sp = h.sipp(uac, srv, calls=CALLS, rate=RATE, timeout=60,
                args=["-d", "1000", "-s", "fault"])
    hups = 0
    while sp.proc.poll() is None and hups < 60:
        time.sleep(1.0)
        srv.signal(signal.SIGHUP)
        hups += 1
    h.sipp_ok(sp, "sipp: %d calls at %d/s through %d reloads, all "
              "successful" % (CALLS, RATE, hups), timeout=30)
    st = sp.stats()
    h.ok(st is not None and st[0] == CALLS and st[1] == 0,
         "sipp: %d successful calls, 0 failed" % CALLS, diag="got %r" % (st,))

    # the last SIGHUP may still be on its way
    time.sleep(0.5)
    done = len(srv.find({"ev": "reloaded"}, after=mark))
    failed = srv.find({"ev": "reload_failed"}, after=mark)
    h.ok(hups >= 15 and done >= hups - 1 and not failed,
         "%d SIGHUPs, %d reloads logged, none failed" % (hups, done),
         diag="\n".join(failed[:3]))
    h.stop_server(srv)


if __name__ == "__main__":
    harness.test_main(__doc__.splitlines()[0], body, deadline=85)
