#!/usr/bin/env python3
"""Lifetimes under load: 10,000 calls through sipstack, then the call
list, the dialog table and the C heap must be back where they were.

sipstack runs test/lifetime/uas.lua, which logs sip.stats() every
second (msg=stats dialogs= calls= heap_bytes= lua_bytes=); the test only
reads those lines, it sends nothing of its own that could linger.

  warm-up   sipp's built-in `uac` scenario (`sipp -sd uac`, written to
            the temp dir: INVITE/100/180/200/ACK/BYE) makes WARMUP calls
            to sip:answer@ (the hook rings and answers), alongside
            DROP_WARMUP calls each to sip:drop@ (the hook returns at
            once: no answer, no reference kept; sipp cancels after the
            100, uac-cancel-100.xml) and sip:ring-drop@ (the hook rings,
            then returns the same way; sipp cancels after the 180,
            uac-cancel-180.xml). Then the test waits until libre's
            transactions of those calls are gone (a UDP transaction
            stays 64*T1 = 32 s after its final answer) and the heap is
            steady: that is the baseline.
  batch     CALLS calls (`-r 500 -l 2000`) plus DROP calls of each drop
            case at 10/s alongside, the same way.
  after     every sipp reports all its calls successful and none failed;
            within a few seconds sip.stats() gives dialogs == 0 and
            calls == 0; once the batch's transactions have expired the
            heap is back within MARGIN bytes of the baseline (64 KiB:
            a leak of ~6 B per call would show; the server runs without
            glibc's tcache, so heap_bytes counts exactly the bytes
            allocated, and the script drives the Lua collector so that
            dropped call objects are finalized); the log
            has one ev=incoming and one ev=ended per call, with
            reason="remote hangup" for the answered calls and
            reason=cancelled for the dropped ones; no lvl=error.

About 95 s; `is_parallel : false` in meson (the rate needs the CPU).
"""
import os
import re
import sys
import time

sys.dont_write_bytecode = True   # no __pycache__ in the source tree
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "sipp"))
import harness  # noqa: E402

SCRIPT = os.path.join(HERE, "uas.lua")
CANCEL_100 = os.path.join(HERE, "uac-cancel-100.xml")
CANCEL_180 = os.path.join(HERE, "uac-cancel-180.xml")

WARMUP = 200            # answered calls of the warm-up
DROP_WARMUP = 20        # calls of each drop case in the warm-up
CALLS = 10000           # answered calls of the batch
RATE = 500              # calls per second
LIMIT = 2000            # sipp -l: simultaneous calls at most
DROP = 200              # calls of each drop case in the batch
DROP_RATE = 10          # ... per second (spread over the batch)
MARGIN = 64 * 1024      # heap after vs. baseline, bytes
LINGER = 32             # libre: UDP transactions live 64*T1 after the end
SETTLE_MAX = 45         # seconds after a batch to wait for a steady heap
DEADLINE = 170          # the whole test (meson: 300)
BUFF = "4194304"        # sipp -buff_size: 10k calls of retransmissions


def stats(srv, after=0):
    """The msg=stats lines of the script (from line index after on), as
    dicts of ints."""
    if not os.path.exists(srv.log_path):
        # seen once: something else removed /tmp/sipstack-wire-* while
        # this (long) test ran; say so instead of failing on no data
        raise harness.Abort("the server log %s is gone: the temp dir was "
                            "removed from outside the test" % srv.log_path)
    out = []
    for line in srv.find({"mod": "script", "ev": "log", "msg": "stats"},
                         after):
        r = harness.parse_logfmt(line)
        try:
            out.append({k: int(r[k]) for k in ("seq", "dialogs", "calls",
                                               "heap_bytes", "lua_bytes",
                                               "requests")})
        except (KeyError, ValueError):
            pass
    return out


def wait_stats(srv, pred, timeout, after=0):
    """The first stats reading (from line index after on) for which pred
    holds, waiting up to timeout s; else (None, last reading)."""
    end = time.monotonic() + timeout
    while True:
        got = stats(srv, after)
        for r in got:
            if pred(r):
                return r, r
        if time.monotonic() >= end or not srv.alive():
            return None, (got[-1] if got else None)
        time.sleep(0.25)


def settle(h, srv, t_end, label):
    """The heap once the transactions of a batch that ended at t_end
    (monotonic) have expired: the first reading taken at least LINGER +
    1 s after t_end that equals the two before it (steady for 2 s), else
    the last one at t_end + SETTLE_MAX. Returns (reading, seconds after
    t_end)."""
    wake = t_end + LINGER + 1 - time.monotonic()
    if wake > 0:
        h.note("%s: waiting %.0f s for libre's transactions to expire" %
               (label, wake))
        time.sleep(wake)
    mark = srv.mark()
    end = t_end + SETTLE_MAX
    while True:
        got = stats(srv, mark)
        for i in range(2, len(got)):
            if got[i]["heap_bytes"] == got[i - 1]["heap_bytes"] == \
                    got[i - 2]["heap_bytes"]:
                return got[i], time.monotonic() - t_end
        if time.monotonic() >= end or not srv.alive():
            return (got[-1] if got else None), time.monotonic() - t_end
        time.sleep(0.25)


def sipp_calls(h, srv, scenario, service, calls, rate, timeout, extra=()):
    return h.sipp(scenario, srv, calls=calls, rate=rate, timeout=timeout,
                  args=["-s", service, "-buff_size", BUFF] + list(extra))


def check_sipp(h, sp, calls, desc):
    rc = sp.wait()
    st = sp.stats()
    h.ok(rc == 0 and st == (calls, 0),
         "%s: sipp reports %d successful calls, 0 failed (exit %s, %s)" %
         (desc, calls, rc, "%d ok / %d failed" % st if st else
          "no statistics"), sipp=sp)


def run_batch(h, srv, uac, answered, dropped, label, extra=()):
    """answered calls of sipp's uac plus dropped calls of each drop case
    at once; returns the monotonic time the last sipp ended."""
    timeout = max(30, answered // RATE * 3)
    drop_rate = DROP_RATE if dropped > DROP_WARMUP else 20
    t0 = time.monotonic()
    main = sipp_calls(h, srv, uac, "answer", answered, RATE, timeout,
                      ["-l", str(LIMIT)] + list(extra))
    d100 = sipp_calls(h, srv, CANCEL_100, "drop", dropped, drop_rate,
                      timeout)
    d180 = sipp_calls(h, srv, CANCEL_180, "ring-drop", dropped, drop_rate,
                      timeout)
    check_sipp(h, main, answered, "%s, answered calls (ring, answer; sipp "
               "ACKs and sends BYE)" % label)
    check_sipp(h, d100, dropped, "%s, dropped calls (hook returns at "
               "once; sipp cancels after the 100 -> 200, 487)" % label)
    check_sipp(h, d180, dropped, "%s, dropped calls after 180 (hook "
               "rings and returns; sipp cancels -> 200, 487)" % label)
    t_end = time.monotonic()
    h.note("%s: %d + 2 x %d calls in %.1f s" % (label, answered, dropped,
                                                 t_end - t0))
    return t_end


def check_empty(h, srv, mark, label):
    """dialogs == 0 and calls == 0 within 5 s; returns the reading."""
    r, last = wait_stats(srv, lambda r: r["dialogs"] == 0 and
                         r["calls"] == 0, 5.0, mark)
    h.ok(r, "%s: sip.stats() gives dialogs == 0 and calls == 0 within "
         "5 s" % label, diag="last reading: %r" % (last,), server=srv)
    return r


def body(h, a):
    # glibc's per-thread cache (tcache) keeps up to 7 freed chunks of
    # each small size that mallinfo2() still counts as in use, so
    # heap_bytes would wander by up to ~240 KB with what the cache
    # happens to hold. The server runs without it: heap_bytes is then
    # the bytes really allocated (sipp, started later, keeps it).
    old = os.environ.get("GLIBC_TUNABLES")
    os.environ["GLIBC_TUNABLES"] = "glibc.malloc.tcache_count=0"
    try:
        srv = h.server(SCRIPT)
    finally:
        if old is None:
            del os.environ["GLIBC_TUNABLES"]
        else:
            os.environ["GLIBC_TUNABLES"] = old
    first, _ = wait_stats(srv, lambda r: True, 3.0)
    if not h.ok(first, "the script logs sip.stats() (msg=stats)",
                server=srv):
        raise harness.Abort("no stats from the script")

    # sipp's own uac scenario, as sipp ships it (sipp -sd exits 99)
    rc, out, err = h.run([h.sipp_bin, "-sd", "uac"], timeout=10)
    uac = os.path.join(h.tmp, "uac.xml")
    with open(uac, "w") as f:
        f.write(out)
    if not h.ok("<scenario" in out and "</scenario>" in out,
                "sipp -sd uac gives its built-in uac scenario",
                diag="status %s: %s" % (rc, err[-500:])):
        raise harness.Abort("no uac scenario")

    # -- warm-up and baseline ----------------------------------------
    mark = srv.mark()
    t_end = run_batch(h, srv, uac, WARMUP, DROP_WARMUP, "warm-up")
    check_empty(h, srv, mark, "after the warm-up")
    base, secs = settle(h, srv, t_end, "warm-up")
    if not h.ok(base and base["dialogs"] == 0 and base["calls"] == 0,
                "baseline: heap steady %.0f s after the warm-up, tables "
                "empty" % secs, diag="reading %r" % (base,), server=srv):
        raise harness.Abort("no baseline")
    h.note("heap at start %d B, baseline after the warm-up %d B (lua %d B)"
           % (first["heap_bytes"], base["heap_bytes"], base["lua_bytes"]))

    # -- the batch ----------------------------------------------------
    mark = srv.mark()
    t_end = run_batch(h, srv, uac, CALLS, DROP, "batch")
    during = stats(srv, mark)
    check_empty(h, srv, mark, "after the batch")
    peak = max([r["heap_bytes"] for r in during] or [0])
    after, secs = settle(h, srv, t_end, "batch")
    h.note("heap: baseline %d B, peak during the batch %d B, after %d B "
           "(%.0f s after the last call), difference %+d B; lua_bytes "
           "%d -> %d" % (base["heap_bytes"], peak,
                         after["heap_bytes"] if after else -1, secs,
                         (after["heap_bytes"] - base["heap_bytes"])
                         if after else 0,
                         base["lua_bytes"],
                         after["lua_bytes"] if after else -1))
    # ~0.8 KB per call stays for Timer J (the BYE's Completed state in
    # server/core/donetrans.c): 10,000 calls hold ~8 MB at the peak
    # under ASan (make asan) glibc's mallinfo2 sees nothing: heap_bytes
    # reads 0 throughout, and the heap figures cannot be checked
    no_heap = peak == 0 and base["heap_bytes"] == 0
    h.ok(no_heap or peak > base["heap_bytes"] + 4 * 1024 * 1024,
         "the batch did hold memory while it ran (peak %d B, more than "
         "4 MB over the baseline): the figures measure something%s" %
         (peak, " # SKIP heap_bytes is 0 (not glibc's allocator)"
          if no_heap else ""))
    h.ok(after and after["dialogs"] == 0 and after["calls"] == 0,
         "after the transactions expired: dialogs == 0, calls == 0",
         diag="reading %r" % (after,), server=srv)
    h.ok(after and after["heap_bytes"] <= base["heap_bytes"] + MARGIN,
         "heap_bytes back within %d B of the baseline %.0f s after the "
         "last call (%d -> %d B, %+d B for %d calls)" % (
             MARGIN, secs, base["heap_bytes"],
             after["heap_bytes"] if after else -1,
             (after["heap_bytes"] - base["heap_bytes"]) if after else 0,
             CALLS + 2 * DROP),
         diag="readings after the batch: %r" % (stats(srv, mark)[-5:],),
         server=srv)

    # -- the log: one start and one end per call ----------------------
    total_answered = WARMUP + CALLS
    total_dropped = 2 * (DROP_WARMUP + DROP)
    case_of = {}
    for line in srv.find({"mod": "call", "ev": "incoming"}):
        r = harness.parse_logfmt(line)
        m = re.match(r"^sips?:([^@;>]+)@", r.get("to", ""))
        case_of[r.get("callid")] = m.group(1) if m else "?"
    reasons = {}
    n_ended = 0
    for line in srv.find({"mod": "call", "ev": "ended"}):
        r = harness.parse_logfmt(line)
        n_ended += 1
        key = (case_of.get(r.get("callid"), "?"), r.get("reason"))
        reasons[key] = reasons.get(key, 0) + 1
    h.ok(len(case_of) == total_answered + total_dropped and
         n_ended == len(case_of),
         "the log has one ev=incoming and one ev=ended for each of the %d "
         "calls" % (total_answered + total_dropped),
         diag="%d incoming call-ids, %d ev=ended lines" % (len(case_of),
                                                            n_ended))
    want = {("answer", "remote hangup"): total_answered,
            ("drop", "cancelled"): total_dropped // 2,
            ("ring-drop", "cancelled"): total_dropped // 2}
    h.ok(reasons == want,
         "ev=ended reasons: answered calls \"remote hangup\", dropped "
         "ones \"cancelled\"", diag="got %r" % (reasons,))
    h.stop_server(srv, must_not=[{"ev": "hook_error"}])


if __name__ == "__main__":
    harness.test_main("lifetimes: 10,000 calls, then empty tables and the "
                      "heap back at its baseline", body, deadline=DEADLINE)
