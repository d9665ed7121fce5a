#!/usr/bin/env python3
"""bench/limits.py: what the limits of a hook run cost and catch.

A benchmark, not a test: prints figures (BENCHMARKS.md, "Limits of a
hook run").

  1. loops   test/fault/runaway.lua's runaway hooks against a server
             with the JIT compiler on (jit = true) and off (the
             default): which ones the time budget stops (500 within
             3 s) and which block the server for good (it is killed and
             restarted for the next case).
  2. cg      instructions per MESSAGE (valgrind --tool=callgrind,
             callgrind_control -d around N MESSAGEs sent one after the
             other, so no retransmission is ever counted), for each
             binary given with --sipstack (e.g. a build of the commit
             before the limits, then this one) and each script:
             bench/scripts/bench.lua (a hook that only returns 200) and
             bench/scripts/hook_work.lua with the JIT off and on. The
             idle rate (a 5 s window) is subtracted.

  python3 bench/limits.py [--sipstack A [--sipstack B]] [--only loops,cg]
Free ports on 127.0.0.1 only; every process it starts is stopped.
"""
import argparse
import glob
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "test", "sipp"))
import harness  # noqa: E402

CASES = ["spin", "sum", "calls", "concat", "pcall", "alloc", "grow"]
BODY = "hello world this is a message with some words in it"


def start(cmd, log):
    return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log,
                            stderr=log, start_new_session=True)


def stop(p):
    if p.poll() is None:
        p.terminate()
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)


def wait_up(cl, limit=60, p=None):
    end = time.monotonic() + limit
    while time.monotonic() < end and (p is None or p.poll() is None):
        if cl.request("OPTIONS", timeout=1) is not None:
            return True
    return False


def loops(exe, tmp):
    src = open(os.path.join(ROOT, "test", "fault", "runaway.lua")).read()
    print("| case | jit off (default) | jit = true |")
    print("| --- | --- | --- |")
    res = {}
    for jit in (False, True):
        script = os.path.join(tmp, "runaway-%s.lua" % jit)
        with open(script, "w") as f:
            f.write(src.replace("lua_memory_max = 8 * 1024 * 1024",
                                "lua_memory_max = 8 * 1024 * 1024, "
                                "jit = %s" % str(jit).lower()))
        p = None
        for case in CASES:
            if p is None or p.poll() is not None:
                port = harness.free_port(("udp",))
                log = open(os.path.join(tmp, "loops.log"), "ab")
                p = start([exe, "-l", "udp:127.0.0.1:%d" % port, script],
                          log)
                cl = harness.UdpClient(port)
                if not wait_up(cl, 10):
                    sys.exit("server did not start")
            t0 = time.monotonic()
            r = cl.request("MESSAGE", ctype="text/plain", body=case,
                           timeout=3.0)
            dt = time.monotonic() - t0
            if r is not None and r.code == 500:
                res[(case, jit)] = "stopped, 500 after %.2f s" % dt
            else:
                res[(case, jit)] = "**not stopped** (no answer in 3 s)"
                stop(p)
                cl.close()
                p = None
        if p is not None:
            stop(p)
            cl.close()
    for case in CASES:
        print("| %s | %s | %s |" % (case, res[(case, False)],
                                    res[(case, True)]))


def cg_one(exe, script, tag, n, tmp):
    port = harness.free_port(("udp",))
    out = os.path.join(tmp, "cg.%s" % tag)
    log = open(out + ".log", "wb")
    p = start(["valgrind", "--tool=callgrind", "--callgrind-out-file=" +
               out + ".%p", exe, "-l", "udp:127.0.0.1:%d" % port, script],
              log)
    cl = harness.UdpClient(port)
    try:
        if not wait_up(cl, 90, p):
            return None

        def go(k):
            for _ in range(k):
                while cl.request("MESSAGE", ctype="text/plain", body=BODY,
                                 timeout=5) is None:
                    pass

        def dump():
            subprocess.run(["callgrind_control", "-d", str(p.pid)],
                           capture_output=True)
            time.sleep(0.5)
            f = sorted(glob.glob("%s.%d.*" % (out, p.pid)),
                       key=os.path.getmtime)[-1]
            for line in open(f, errors="replace"):
                if line.startswith(("totals:", "summary:")):
                    return int(line.split()[1])
            return 0
        go(300)                       # warm-up
        dump()
        t0 = time.monotonic()
        time.sleep(5)
        idle = dump() / (time.monotonic() - t0)
        t0 = time.monotonic()
        go(n)
        ir = dump()
        win = time.monotonic() - t0
        return (ir - idle * win) / n, idle
    finally:
        cl.close()
        stop(p)


def cg(exes, n, tmp):
    work = open(os.path.join(HERE, "scripts", "hook_work.lua")).read()
    scripts = [("return 200 (bench.lua)",
                os.path.join(HERE, "scripts", "bench.lua"))]
    for jit in ("false", "true"):
        path = os.path.join(tmp, "hook_work_%s.lua" % jit)
        with open(path, "w") as f:
            f.write(work.replace("jit = JIT", "jit = " + jit))
        scripts.append(("hook_work.lua, jit = %s" % jit, path))
    # a build before the limits knows no `jit` key: its copy without it
    old = os.path.join(tmp, "hook_work_old.lua")
    with open(old, "w") as f:
        f.write(work.replace(", jit = JIT", ""))
    print("%d MESSAGEs one after the other, Ir per MESSAGE (idle Ir/s "
          "subtracted):" % n)
    print("")
    print("| binary | script | Ir/MESSAGE | idle Ir/s |")
    print("| --- | --- | ---: | ---: |")
    for exe in exes:
        for name, path in scripts:
            r = cg_one(exe, path, "%d" % len(name), n, tmp)
            if r is None:        # an old build refuses `jit`
                if "jit = false" in name:
                    continue
                r = cg_one(exe, old, "old", n, tmp)
                name = "hook_work.lua (its default JIT)"
            print("| %s | %s | %s | %s |" % (
                exe, name, "-" if r is None else "{:,.0f}".format(r[0]),
                "-" if r is None else "{:,.0f}".format(r[1])))
            sys.stdout.flush()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sipstack", action="append")
    ap.add_argument("--only", default="loops,cg")
    ap.add_argument("--messages", type=int, default=2000)
    a = ap.parse_args()
    exes = a.sipstack or [os.path.join(ROOT, "build", "sipstack")]
    tmp = tempfile.mkdtemp(prefix="sipstack-limits-")
    try:
        if "loops" in a.only:
            print("## Runaway hooks, with the JIT compiler off and on "
                  "(%s)\n" % exes[-1])
            loops(exes[-1], tmp)
            print("")
        if "cg" in a.only:
            print("## Instructions per MESSAGE\n")
            cg(exes, a.messages, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
