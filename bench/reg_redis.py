#!/usr/bin/env python3
"""bench/reg_redis.py: REGISTER/s with the Redis store beside SQLite.

    python3 bench/reg_redis.py [--rates 5000,10000,15000,20000]
                               [--duration 5] [--out DIR]
    python3 bench/reg_redis.py --callgrind [--out DIR]

Not a test: it prints figures. The REGISTER section of
bench/reg_calls.py (its sipp client, server and step code, imported),
auth off, a distinct user per REGISTER (bench/scenarios/
rc_uac_register.xml), alternating in the same run, for each rate of
the ladder:

  sqlite       bench/scripts/rc_registrar.lua (a 200 after the SQLite
               commit, WAL, synchronous=FULL)
  redis-aof    the same with store = "redis://..." on a redis-server
               started here with appendonly yes, appendfsync always (a
               200 after Redis has the write in its fsynced log)
  redis        the same on a redis-server without persistence (a 200
               once Redis holds it in memory)

A step is clean when every REGISTER got its 200 with no retransmission
at >= 95% of the rate. After each step the bindings are counted (sqlite3
CLI; DBSIZE, one key per AOR): at least one per 200 (more when a
REGISTER was stored but its 200 came too late for sipp). CPU of the server
and of redis-server per REGISTER are given. 127.0.0.1 and free ports
only; every child dies with us.

--callgrind: instructions per REGISTER of the sipstack process (not of
redis-server), SQLite and Redis (in memory) stores, 1,000 REGISTERs at
100/s, as section 4 of bench/reg_calls.py measures them (a load run
minus an idle run of the same length): a figure the machine's load does
not move.
"""
import argparse
import datetime
import os
import shutil
import signal
import socket
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bench  # noqa: E402
import reg_calls as rc  # noqa: E402


def resp(port, *args):
    """One command to the Redis on port; its reply (int or bytes)."""
    s = socket.create_connection(("127.0.0.1", port), 5)
    try:
        out = b"*%d\r\n" % len(args)
        for a in args:
            a = str(a).encode()
            out += b"$%d\r\n%s\r\n" % (len(a), a)
        s.sendall(out)
        data = b""
        while not data.endswith(b"\r\n"):
            data += s.recv(4096)
        if data[:1] == b":":
            return int(data[1:-2])
        return data[1:-2]
    finally:
        s.close()


class Redis:
    def __init__(self, aof):
        self.port = bench.free_ports(1)
        self.dir = tempfile.mkdtemp(prefix="redis.", dir=rc.OUT)
        argv = ["redis-server", "--port", str(self.port), "--bind",
                "127.0.0.1", "--dir", self.dir, "--save", "",
                "--appendonly", "yes" if aof else "no",
                "--logfile", os.path.join(self.dir, "redis.log")]
        if aof:
            argv += ["--appendfsync", "always"]
        self.proc = bench.spawn(argv, f"redis:{'aof' if aof else 'mem'}")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if resp(self.port, "PING") == b"PONG":
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self):
        bench.stop(self.proc)


def script_for(redis):
    path = os.path.join(rc.OUT, f"rc_registrar_redis_{redis.port}.lua")
    with open(os.path.join(rc.SCRIPTS, "rc_registrar.lua")) as f:
        text = f.read()
    text = text.replace('database    = "rc_bench.db",',
                        f'store       = "redis://127.0.0.1:{redis.port}/0",')
    with open(path, "w") as f:
        f.write(text)
    return path


def callgrind():
    csv = os.path.join(rc.OUT, "users_cg.csv")
    rc.make_users_csv(csv, 1000, False)
    ckw = {"scenario": "rc_uac_register.xml", "inf": csv}
    rd = Redis(False)
    try:
        out = {"sqlite": rc.cg_one("register-sqlite", "rc_registrar.lua",
                                   1000, 100, ckw),
               "redis": rc.cg_one("register-redis", script_for(rd), 1000,
                                  100, ckw)}
    finally:
        rd.stop()
        bench.cleanup()
    for k, v in out.items():
        rc.say(f"  {k}: {v['per']:,.0f} instructions per REGISTER "
               f"(sipstack process)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rates", default="5000,10000,15000,20000")
    ap.add_argument("--duration", type=float, default=5.0)
    ap.add_argument("--out")
    ap.add_argument("--sipstack", default=os.path.join(rc.ROOT, "build",
                                                       "sipstack"))
    ap.add_argument("--time-limit", type=int, default=600)
    ap.add_argument("--callgrind", action="store_true")
    opts = ap.parse_args()
    opts.keep = False
    opts.retry = False
    opts.cg_idle = 5.0
    rates = [int(x) for x in opts.rates.split(",")]
    for t in ("sipp", "sqlite3", "redis-server"):
        if not shutil.which(t):
            sys.exit(f"reg_redis: {t} not found (make deps)")
    rc.OPTS = opts
    rc.OUT = opts.out or tempfile.mkdtemp(prefix="sipstack-regredis.")
    os.makedirs(rc.OUT, exist_ok=True)
    rc.LOG = open(os.path.join(rc.OUT, "log.txt"), "a")
    bench.OUT, bench.LOG = rc.OUT, rc.LOG
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGALRM):
        signal.signal(s, rc.on_signal)
    signal.alarm(opts.time_limit)
    rc.say(f"# REGISTER/s, SQLite and Redis stores, "
           f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M}"
           f" UTC, {os.cpu_count()} CPUs, load average "
           f"{os.getloadavg()[0]:.1f}, output in {rc.OUT}")
    if opts.callgrind:
        callgrind()
        return
    csv = os.path.join(rc.OUT, "users_plain.csv")
    rc.make_users_csv(csv, int(max(rates) * opts.duration), False)
    stores = {"redis-aof": Redis(True), "redis": Redis(False)}
    scripts = {k: script_for(r) for k, r in stores.items()}
    rows = []
    try:
        for rate in rates:
            for kind in ("sqlite", "redis-aof", "redis"):
                tag = f"regredis.{kind}.{rate}"
                skw = {"script": "rc_registrar.lua" if kind == "sqlite"
                       else scripts[kind]}
                ckw = {"scenario": "rc_uac_register.xml", "inf": csv}
                rd = stores.get(kind)
                if rd:
                    resp(rd.port, "FLUSHDB")
                    r0 = rc.proc_cpu(rd.proc.pid)
                r = rc.step("sipstack", tag, rate, int(rate * opts.duration),
                            skw, ckw, count_db=(kind == "sqlite"))
                if rd:
                    r["redis_us"] = (rc.proc_cpu(rd.proc.pid) - r0) / \
                        max(1, r["success"]) * 1e6
                    r["bindings"] = resp(rd.port, "DBSIZE")
                r["store"] = kind
                # every 200 stored; more is possible (stored, but the 200
                # came too late for sipp or not at all)
                r["durable"] = (r.get("bindings") or 0) >= r["success"]
                rows.append(r)
                rc.say(f"  {kind:9} {rate:>6}/s: achieved {r['rate']:,.0f}/s,"
                       f" ok {r['success']}/{r['calls']}, failed "
                       f"{r['failed']}, retrans {r['retrans']}, server "
                       f"{r['srv_us']:.1f} µs/REGISTER"
                       + (f", redis {r['redis_us']:.1f} µs" if rd else "")
                       + f", bindings {r.get('bindings')}, others "
                       f"{r['others']:.2f} cores"
                       + (", clean" if r["clean"] else ", NOT clean"))
    finally:
        for rd in stores.values():
            rd.stop()
        bench.cleanup()
    rc.say("")
    for l in rc.table(["store", "target/s", "achieved/s", "ok", "failed",
                       "retrans", "server µs", "redis µs", "bindings",
                       "every 200 stored",
                       "others (cores)", "verdict"],
                      [[r["store"], rc.f0(r["target"]), rc.f0(r["rate"]),
                        rc.f0(r["success"]), r["failed"], r["retrans"],
                        f"{r['srv_us']:.1f}",
                        f"{r['redis_us']:.1f}" if "redis_us" in r else "-",
                        rc.f0(r.get("bindings")),
                        "yes" if r["durable"] else "NO",
                        f"{r['others']:.2f}",
                        "clean" if r["clean"] else "fail"] for r in rows]):
        rc.say(l)
    for kind in ("sqlite", "redis-aof", "redis"):
        best = max([r["target"] for r in rows if r["store"] == kind and
                    r["clean"]] or [0])
        rc.say(f"  best clean rate, {kind}: {rc.f0(best)}/s")


if __name__ == "__main__":
    main()
