#!/usr/bin/env python3
"""bench/bad_requests.py: memory kept per request the core itself answers.

A flood of requests the core refuses (no script involved) must not cost
the server much memory: each answer's transaction state lives 64*T1
(32 s) for retransmissions. For each kind below, N requests over UDP on
127.0.0.1, in windows of 50 (each window answered before the next), then
sip.stats() (a MESSAGE "stats" to bench/scripts/rc_uas.lua) and VmRSS:

  481   MESSAGE with a To tag of no dialog (RFC 3261 12.2.2)
  400   MESSAGE with a bad Max-Forwards
  420   MESSAGE with Require: x-unknown (RFC 3261 8.2.2.3)

Prints, per binary and kind, heap_bytes and VmRSS growth per request.
Give --sipstack more than once to compare builds side by side in one run.

usage: python3 bench/bad_requests.py [--n 5000] [--sipstack PATH ...]
"""
import argparse
import os
import subprocess
import sys
import time

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "test", "sipp"))
import harness  # noqa: E402

SCRIPT = os.path.join(HERE, "scripts", "rc_uas.lua")
KINDS = {
    "481": {"set": {"To": None}, "extra": [("To", "<sip:x@127.0.0.1>;"
                                                  "tag=no-such-dialog")]},
    "400": {"set": {"Max-Forwards": "many"}},
    "420": {"extra": [("Require", "x-unknown")]},
}


def vmrss(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def stats(cl):
    r = cl.request("MESSAGE", body="stats", ctype="text/plain", timeout=3)
    if not r or r.code != 200:
        raise SystemExit("no stats answer: %r" % r)
    return dict(l.split("=", 1) for l in
                r.body.decode().splitlines() if "=" in l)


def flood(cl, kind, n, want):
    spec = KINDS[kind]
    got = 0
    for start in range(0, n, 50):
        branches = []
        for _ in range(min(50, n - start)):
            data, br = cl.build("MESSAGE", set=spec.get("set"),
                                extra=spec.get("extra", ()), body="x",
                                ctype="text/plain")
            cl.sock.sendto(data, cl.dst)
            branches.append(br)
        # the answers of the window, in any order (recv(branch) would
        # drop the others)
        left = set(branches)
        while left:
            r = cl.recv(None, timeout=2.0)
            if r is None:
                break
            br = next((b for b in left if b in (r.header("Via") or "")),
                      None)
            if br:
                left.discard(br)
                got += r.code == int(want)
    return got


def run(binary, n):
    port = harness.free_port()
    proc = subprocess.Popen([binary, "--listen", "udp:127.0.0.1:%d" % port,
                             "--log-level", "warn", SCRIPT],
                            stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    out = []
    try:
        cl = harness.UdpClient(port)
        for _ in range(50):
            if cl.request("OPTIONS", timeout=0.2):
                break
        for kind in KINDS:
            s0, r0 = stats(cl), vmrss(proc.pid)
            t0 = time.monotonic()
            got = flood(cl, kind, n, kind)
            dt = time.monotonic() - t0
            s1, r1 = stats(cl), vmrss(proc.pid)
            dh = int(s1["heap_bytes"]) - int(s0["heap_bytes"])
            out.append((kind, got, dh / n, (r1 - r0) / n, n / dt))
        cl.close()
    finally:
        proc.terminate()
        proc.wait(10)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--sipstack", action="append")
    a = ap.parse_args()
    bins = a.sipstack or [os.path.join(HERE, "..", "build", "sipstack")]
    print("| binary | answer | answered | heap bytes/request | "
          "RSS bytes/request | requests/s |")
    print("|---|---:|---:|---:|---:|---:|")
    for b in bins:
        for kind, got, dh, dr, rate in run(b, a.n):
            print("| %s | %s | %d/%d | %.0f | %.0f | %.0f |" %
                  (b, kind, got, a.n, dh, dr, rate))
            sys.stdout.flush()


if __name__ == "__main__":
    main()
