#!/usr/bin/env python3
"""bench/soak.py: the soak run (issue 13, item 9). Not a test: it prints
figures.

    python3 bench/soak.py [--calls N] [--call-rate R] [--regs N]
                          [--reg-rate R] [--users U] [--quick]

Two phases, each against a fresh server started with --metrics on a free
port, sampled every --sample seconds (RSS and every table the server keeps:
dialogs, calls, pending and completed transactions, Lua tasks,
bindings):

  1. calls: `sipp -sn uac` (INVITE/100/180/200/ACK/BYE) against
     bench/scripts/rc_uas.lua, N calls at R/s (default 1,000,000 at
     4,800/s: 80% of the highest clean rate in BENCHMARKS.md, 6,000/s);
  2. REGISTER: bench/scenarios/rc_uac_register.xml against
     bench/scripts/rc_registrar.lua (SQLite, durable), N registrations
     at R/s (default 1,000,000 at 20,000/s: 80% of 25,000/s) cycling
     over U users (default 10,000), so the store must stay at U bindings.

After each phase the load stops and the server idles for 40 s (> 32 s,
the time libre and our donetrans keep a completed transaction), then is
sampled again: every table back to its idle size. Verdicts: 0 failed
calls/registrations, RSS growth from the end of warm-up (the first half
of the load, at least 40 s: completed transactions are kept 32 s, so
the heap grows that long at any rate, and the allocator settles after)
to the end below 5%, tables bounded by the rate (not the
count) and idle at the end, bindings = U in the database.

Only 127.0.0.1 and free ports; every child is killed on exit.
"""

import argparse
import datetime
import http.client
import os
import re
import resource
import shutil
import signal
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402
import reg_calls  # noqa: E402
from bench import free_ports, spawn, stop  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPTS = os.path.join(ROOT, "bench", "scripts")
IDLE = 40.0

# what is sampled from /metrics: name -> column
GAUGES = [
    ("sipstack_dialogs", "dialogs"),
    ("sipstack_calls", "calls"),
    ("sipstack_sip_requests_pending", "pending"),
    ("sipstack_sip_transactions_completed", "completed"),
    ("sipstack_lua_tasks", "tasks"),
    ("sipstack_registrar_bindings", "bindings"),
    ("sipstack_heap_bytes", "heap"),
]


def say(msg=""):
    print(msg, flush=True)
    if OUTF:
        OUTF.write(msg + "\n")
        OUTF.flush()


OUTF = None


def scrape(port):
    """{metric name: value} of the unlabelled samples, or {}."""
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        c.request("GET", "/metrics")
        body = c.getresponse().read().decode()
        c.close()
    except (OSError, http.client.HTTPException):
        return {}
    out = {}
    for line in body.splitlines():
        m = re.match(r"^([a-z_]+) ([-0-9.e+]+)$", line)
        if m:
            out[m.group(1)] = float(m.group(2))
    return out


def rss_kb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class Sampler(threading.Thread):
    """Samples the server every interval s until stopped."""

    def __init__(self, pid, mport, interval):
        super().__init__(daemon=True)
        self.pid, self.mport, self.interval = pid, mport, interval
        self.rows = []
        self.t0 = time.monotonic()
        self.done = threading.Event()

    def sample(self, label=""):
        m = scrape(self.mport)
        row = {"t": time.monotonic() - self.t0, "rss": rss_kb(self.pid),
               "label": label}
        for name, col in GAUGES:
            row[col] = m.get(name)
        self.rows.append(row)
        return row

    def run(self):
        while not self.done.wait(self.interval):
            self.sample()


def server(script, tag, out):
    port, mport = free_ports(1), None
    while True:
        mport = free_ports(1)
        if mport != port:
            break
    wd = tempfile.mkdtemp(prefix=f"{tag}.", dir=out)
    argv = [OPTS.sipstack, "--listen", f"udp:127.0.0.1:{port}",
            "--metrics", f"127.0.0.1:{mport}", "--log-level", OPTS.log_level,
            os.path.join(SCRIPTS, script)]
    p = spawn(argv, f"sipstack:{tag}", cwd=wd,
              stderr=os.path.join(out, f"{tag}.stderr"))
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not scrape(mport):
        if p.poll() is not None:
            raise RuntimeError(f"sipstack {tag} did not start")
        time.sleep(0.2)
    return p, port, mport, wd


def fmt(v):
    if v is None:
        return "-"
    return f"{int(v):,}"


def report(title, s, res, warm_frac=0.5, warm_min=40.0):
    rows = s.rows
    say(f"\n### {title}\n")
    say("| t (s) | RSS (MB) | heap (MB) | dialogs | calls | pending | "
        "completed | Lua tasks | bindings | |")
    say("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    step = max(1, len(rows) // 24)
    shown = rows[::step]
    if rows and shown[-1] is not rows[-1]:
        shown.append(rows[-1])
    for r in shown:
        heap = "-" if r["heap"] is None else f"{r['heap'] / 2**20:.1f}"
        say(f"| {r['t']:.0f} | {r['rss'] / 1024:.1f} | {heap} | "
            f"{fmt(r['dialogs'])} "
            f"| {fmt(r['calls'])} | {fmt(r['pending'])} | "
            f"{fmt(r['completed'])} | {fmt(r['tasks'])} | "
            f"{fmt(r['bindings'])} | {r['label']} |")
    load = [r for r in rows if r["label"] in ("", "load")]
    if len(load) < 5:
        say("\ntoo few samples under load for a verdict on RSS")
        return None
    # warm-up: a completed transaction is kept 32 s, so the heap grows
    # for that long whatever the rate, and glibc's arenas settle some
    # 30 s more (seen: 4,800 calls/s, flat from 65 s on); the second
    # half of the load (at least past 40 s) must then stay flat
    warm = max(warm_min, load[-1]["t"] * warm_frac)
    after = [r for r in load if r["t"] >= warm]
    if len(after) < 3:
        say(f"\nthe load lasted less than the warm-up ({warm:.0f} s): "
            "no verdict on RSS")
        return None
    w = after[0]
    e = load[-1]
    growth = (e["rss"] - w["rss"]) / max(1, w["rss"]) * 100
    peak = {col: max((r[col] or 0) for r in load) for _, col in GAUGES
            if col != "heap"}
    if w["heap"] is not None and e["heap"] is not None:
        say(f"\nheap in use after warm-up {w['heap'] / 2**20:.1f} MB, at the "
            f"end of the load {e['heap'] / 2**20:.1f} MB: "
            f"{(e['heap'] - w['heap']) / max(1, w['heap']) * 100:+.1f}%")
    say(f"\nRSS after warm-up (t={w['t']:.0f} s) {w['rss'] / 1024:.1f} MB, "
        f"at the end of the load {e['rss'] / 1024:.1f} MB: "
        f"{growth:+.1f}%; peaks under load: " +
        ", ".join(f"{k} {int(v):,}" for k, v in peak.items()))
    say(f"sipp: {res['success']:,} successful, {res['failed']:,} failed, "
        f"{res['retrans']:,} retransmissions, {res['rate']:,.0f}/s achieved "
        f"over {res['elapsed']:.0f} s")
    return growth


def phase(title, tag, script, client_kw, n, rate, out, check_db=None):
    p, port, mport, wd = server(script, tag, out)
    s = Sampler(p.pid, mport, OPTS.sample)
    s.sample("start")
    s.start()
    try:
        res = reg_calls.Client(port, tag, rate, n, **client_kw).wait()
        s.done.set()
        s.join()
        s.sample("load end")
        time.sleep(IDLE)
        idle = s.sample(f"idle {IDLE:.0f} s")
    finally:
        s.done.set()
        stop(p)
    growth = report(title, s, res)
    verdict = []
    if res["failed"] or res["success"] != n:
        verdict.append(f"{n - res['success']:,} not successful")
    if growth is None or growth > 5.0:
        verdict.append("RSS grew" if growth is not None else "no RSS verdict")
    busy = {c: idle[c] for c in ("dialogs", "calls", "pending", "tasks")
            if idle[c]}
    if busy:
        verdict.append(f"tables not idle after {IDLE:.0f} s: {busy}")
    if check_db is not None:
        got = reg_calls.sql_count(os.path.join(wd, "rc_bench.db"),
                                  "select count(*) from bindings")
        say(f"bindings in the database after the run: {fmt(got)} "
            f"(users: {check_db:,})")
        if got != check_db:
            verdict.append(f"bindings {got} != users {check_db}")
    say(f"\n**{title}: {'clean' if not verdict else '; '.join(verdict)}**")
    shutil.rmtree(wd, ignore_errors=True)
    return not verdict


OPTS = None


def main():
    global OPTS, OUTF
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sipstack", default=os.path.join(ROOT, "build",
                                                       "sipstack"))
    ap.add_argument("--calls", type=int, default=1_000_000)
    ap.add_argument("--call-rate", type=float, default=4800)
    ap.add_argument("--regs", type=int, default=1_000_000)
    ap.add_argument("--reg-rate", type=float, default=20000)
    ap.add_argument("--users", type=int, default=10_000)
    ap.add_argument("--sample", type=float, default=5.0)
    ap.add_argument("--log-level", default="warn")
    ap.add_argument("--phases", default="cr", help="c: calls, r: REGISTER")
    ap.add_argument("--quick", action="store_true",
                    help="100,000 of each, samples every 2 s")
    ap.add_argument("--out", default=None)
    OPTS = ap.parse_args()
    if OPTS.quick:
        OPTS.calls = OPTS.regs = 100_000
        OPTS.sample = 2.0
    out = OPTS.out or tempfile.mkdtemp(prefix="soak.")
    os.makedirs(out, exist_ok=True)
    OUTF = open(os.path.join(out, "soak.md"), "w")
    # reg_calls' sipp client writes its files there
    reg_calls.OUT = out
    reg_calls.OPTS = OPTS
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, bench.on_signal)
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError):
        pass
    say(f"# soak {datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC, "
        f"{OPTS.sipstack}, out {out}")
    ok = True
    try:
        if "c" in OPTS.phases:
            ok &= phase(f"{OPTS.calls:,} calls at {OPTS.call_rate:,.0f}/s",
                        "soak-calls", "rc_uas.lua", {"builtin": "uac"},
                        OPTS.calls, OPTS.call_rate, out)
        if "r" in OPTS.phases:
            users = os.path.join(out, "users.csv")
            reg_calls.make_users_csv(users, OPTS.users, False)
            ok &= phase(f"{OPTS.regs:,} REGISTERs at {OPTS.reg_rate:,.0f}/s "
                        f"over {OPTS.users:,} users", "soak-reg",
                        "rc_registrar.lua",
                        {"scenario": "rc_uac_register.xml", "inf": users},
                        OPTS.regs, OPTS.reg_rate, out,
                        check_db=OPTS.users)
    finally:
        bench.cleanup()
    say(f"\nsoak: {'clean' if ok else 'NOT clean'}; figures in "
        f"{os.path.join(out, 'soak.md')}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
