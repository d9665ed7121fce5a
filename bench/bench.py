#!/usr/bin/env python3
"""bench/bench.py: the sipstack benchmark (called by bench/run.sh).

Not a test: it prints figures. Sections (see BENCHMARKS.md):

  1. timer micro-benchmark: build/bench/tmrbench-fasttmr vs -stock
  2. rate ladder: sipp OPTIONS and MESSAGE load at rising rates against
     sipstack and, as the ceiling of the setup, against a sipp UAS;
     requests/s, failed calls, retransmissions, CPU per request of the
     server and of sipp. A fresh server (or sipp UAS) per step.
  3. one-sipp check: can a single sipp client generate 25k/s? (full only)
  4. callgrind: instructions (Ir) per OPTIONS and per MESSAGE, and the
     functions they go to (callgrind_annotate)
  5. flatness: CPU and Ir per request with ~100-3,000 vs ~40,000-51,000
     transactions in flight (UDP server transactions linger 32 s =
     Timer J), at the same request rate
  6. summary table (stdout and OUT/summary.md, OUT/results.json)

Only 127.0.0.1 and free ports are used. Every child process is tracked
and killed on exit (normal, exception, SIGINT or SIGTERM).
"""

import argparse
import atexit
import datetime
import json
import math
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "bench")
HZ = os.sysconf("SC_CLK_TCK")
TIMER_J = 32.0          # 64 * T1, libre's SIP_T1 = 500 ms (compiled in)

OPTS = None             # argparse namespace
OUT = None              # output directory
LOG = None              # log file (everything printed, plus details)
SUMMARY = None          # what is printed, as OUT/summary.md

# ------------------------------------------------------------------ #
# output
# ------------------------------------------------------------------ #


def say(msg=""):
    print(msg, flush=True)
    if SUMMARY:
        SUMMARY.write(msg + "\n")
        SUMMARY.flush()
    if LOG:
        LOG.write(msg + "\n")
        LOG.flush()


def note(msg):
    """Detail for the log file only."""
    if LOG:
        LOG.write(msg + "\n")
        LOG.flush()


def table(headers, rows, align=None):
    """Markdown table as a list of lines."""
    cols = len(headers)
    cells = [[str(c) for c in r] for r in rows]
    width = [max([len(headers[i])] + [len(r[i]) for r in cells])
             for i in range(cols)]
    align = align or ["r"] * cols

    def fmt(r):
        out = []
        for i, c in enumerate(r):
            out.append(c.ljust(width[i]) if align[i] == "l"
                       else c.rjust(width[i]))
        return "| " + " | ".join(out) + " |"

    sep = "|" + "|".join(("-" * (width[i] + 1) + ":") if align[i] == "r"
                         else ("-" * (width[i] + 2))
                         for i in range(cols)) + "|"
    return [fmt(headers), sep] + [fmt(r) for r in cells]


def fnum(x, nd=0):
    if x is None:
        return "-"
    if isinstance(x, float) and math.isnan(x):
        return "-"
    if nd == 0:
        return f"{x:,.0f}"
    return f"{x:,.{nd}f}"


# ------------------------------------------------------------------ #
# processes: every child is tracked and cleaned up
# ------------------------------------------------------------------ #

CHILDREN = {}           # pid -> Popen


# Children get SIGKILL if this process dies without cleaning up (even by
# SIGKILL): setpriv sets the parent-death signal, then execs the command.
# (It fires when the spawning thread ends: every thread here stops its
# children before it returns.)
PDEATH = (["setpriv", "--pdeathsig", "KILL"] if shutil.which("setpriv")
          else [])


def spawn(argv, name, cwd=None, stdout=None, stderr=None, env=None):
    note(f"spawn {name}: {' '.join(argv)}"
         + (f" (env {env})" if env else ""))
    argv = PDEATH + argv
    out = open(stdout, "wb") if stdout else subprocess.DEVNULL
    err = open(stderr, "wb") if stderr else subprocess.DEVNULL
    try:
        p = subprocess.Popen(argv, cwd=cwd or OUT, stdin=subprocess.DEVNULL,
                             stdout=out, stderr=err,
                             env=dict(os.environ, **env) if env else None)
    finally:
        for f in (out, err):
            if f is not subprocess.DEVNULL:
                f.close()
    p.bench_name = name
    CHILDREN[p.pid] = p
    return p


def reap(p, timeout):
    """Wait for p to exit (kill it after timeout); return its rusage
    CPU seconds (user+sys) and exit status."""
    deadline = time.monotonic() + timeout
    while True:
        pid, status, ru = os.wait4(p.pid, os.WNOHANG)
        if pid == p.pid:
            p.returncode = os.waitstatus_to_exitcode(status)
            CHILDREN.pop(p.pid, None)
            return ru.ru_utime + ru.ru_stime, p.returncode
        if time.monotonic() > deadline:
            note(f"{p.bench_name} (pid {p.pid}) overran {timeout:.0f}s: "
                 "killing it")
            try:
                os.kill(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            deadline = time.monotonic() + 10
        time.sleep(0.05)


def stop(p, grace=10.0):
    """SIGTERM, then SIGKILL after grace seconds."""
    if p.pid not in CHILDREN:
        return
    try:
        os.kill(p.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        pid, status, _ = os.wait4(p.pid, os.WNOHANG)
        if pid == p.pid:
            CHILDREN.pop(p.pid, None)
            return
        time.sleep(0.05)
    note(f"{p.bench_name} (pid {p.pid}) ignored SIGTERM: SIGKILL")
    try:
        os.kill(p.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    try:
        os.waitpid(p.pid, 0)
    except ChildProcessError:
        pass
    CHILDREN.pop(p.pid, None)


def cleanup():
    for pid, p in list(CHILDREN.items()):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass
        CHILDREN.pop(pid, None)


def on_signal(signum, frame):
    cleanup()
    why = ("over the time limit" if signum == signal.SIGALRM
           else f"interrupted by signal {signum}")
    sys.stderr.write(f"bench: {why}, children killed\n")
    os._exit(128 + signum)


# ------------------------------------------------------------------ #
# ports, /proc
# ------------------------------------------------------------------ #

USED_PORTS = set()


def port_free(port):
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        s = socket.socket(socket.AF_INET, kind)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        finally:
            s.close()
    return True


def free_ports(n):
    """Base of n consecutive free ports (UDP and TCP) on 127.0.0.1."""
    for _ in range(1000):
        base = random.randrange(20000, 60000 - n)
        rng = range(base, base + n)
        if any(p in USED_PORTS for p in rng):
            continue
        if all(port_free(p) for p in rng):
            USED_PORTS.update(rng)
            return base
    raise RuntimeError("no free ports")


def proc_minflt(pid):
    """Minor page faults of a live process (/proc/PID/stat)."""
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[7])


def proc_cpu(pid):
    """(utime+stime seconds from /proc/PID/stat, on-CPU seconds from
    /proc/PID/schedstat) of a live process."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])    # utime, stime
    try:
        with open(f"/proc/{pid}/schedstat") as f:
            ns = int(f.read().split()[0])
    except (OSError, ValueError):
        ns = None
    return ticks / HZ, (ns / 1e9 if ns is not None else None)


def proc_hwm_mb(pid, key="VmHWM:"):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def proc_rss_mb(pid):
    return proc_hwm_mb(pid, "VmRSS:")


def sys_busy():
    """Busy CPU seconds of the whole machine (all cores), and the time."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal
    busy = v[0] + v[1] + v[2] + v[5] + v[6] + (v[7] if len(v) > 7 else 0)
    return busy / HZ, time.monotonic()


def wait_quiet(max_wait, limit=0.3):
    """Wait (at most max_wait s) until other processes use < limit of a
    core over 0.5 s; return the last measured load (cores)."""
    deadline = time.monotonic() + max_wait
    load = None
    while True:
        b0, t0 = sys_busy()
        time.sleep(0.5)
        b1, t1 = sys_busy()
        load = (b1 - b0) / (t1 - t0)
        if load < limit or time.monotonic() > deadline:
            return load


# ------------------------------------------------------------------ #
# SIP probe (readiness)
# ------------------------------------------------------------------ #

def probe(port, method, timeout):
    """Send `method` to 127.0.0.1:port until a final response comes
    back; True when it did."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    lport = s.getsockname()[1]
    s.settimeout(0.3)
    deadline = time.monotonic() + timeout
    n = 0
    try:
        while time.monotonic() < deadline:
            n += 1
            body = "probe" if method == "MESSAGE" else ""
            ctype = ("Content-Type: text/plain\r\n"
                     if method == "MESSAGE" else "")
            req = (f"{method} sip:probe@127.0.0.1:{port} SIP/2.0\r\n"
                   f"Via: SIP/2.0/UDP 127.0.0.1:{lport};"
                   f"branch=z9hG4bK-probe-{os.getpid()}-{lport}-{n}\r\n"
                   "Max-Forwards: 70\r\n"
                   f"From: <sip:probe@127.0.0.1:{lport}>;tag=p{n}\r\n"
                   f"To: <sip:probe@127.0.0.1:{port}>\r\n"
                   f"Call-ID: probe-{os.getpid()}-{lport}-{n}\r\n"
                   f"CSeq: 1 {method}\r\n"
                   f"Contact: <sip:probe@127.0.0.1:{lport}>\r\n"
                   f"{ctype}Content-Length: {len(body)}\r\n\r\n{body}")
            try:
                s.sendto(req.encode(), ("127.0.0.1", port))
                while True:
                    data = s.recv(65535)
                    m = re.match(rb"SIP/2.0 (\d+)", data)
                    if m and int(m.group(1)) >= 200:
                        return True
            except (socket.timeout, ConnectionRefusedError):
                pass
            time.sleep(0.2)
        return False
    finally:
        s.close()


# ------------------------------------------------------------------ #
# targets: sipstack, sipstack under callgrind, sipp UAS
# ------------------------------------------------------------------ #

class Target:
    def __init__(self, kind, method, tag, callgrind=False, instr=True,
                 env=None):
        self.kind = kind            # "sipstack" or "sipp-uas"
        self.method = method
        self.port = free_ports(10) if kind == "sipp-uas" else free_ports(1)
        self.cg_prefix = None
        err = os.path.join(OUT, f"{tag}.stderr")
        if kind == "sipstack":
            argv = ([OPTS.sipstack, "--listen",
                     f"udp:127.0.0.1:{self.port}", "--log-level", "warn"] +
                    OPTS.server_arg + [OPTS.script])
            if callgrind:
                self.cg_prefix = os.path.join(OUT, f"callgrind.{tag}")
                # names uncompressed: each dump must stand on its own
                argv = ["valgrind", "--tool=callgrind",
                        "--compress-strings=no", "--compress-pos=no",
                        f"--instr-atstart={'yes' if instr else 'no'}",
                        f"--callgrind-out-file={self.cg_prefix}.%p"] + argv
        else:
            scen = os.path.join(BENCH, "scenarios",
                                f"uas_{method.lower()}.xml")
            argv = ["sipp", "-sf", scen, "-i", "127.0.0.1",
                    "-p", str(self.port), "-mp", str(self.port + 2),
                    "-cp", str(self.port + 6),
                    "-buff_size", "4194304", "-nostdin"]
        self.proc = spawn(argv, f"{kind}:{tag}", stderr=err, env=env)
        self.stderr = err
        ok = probe(self.port, method, 90 if callgrind else 20)
        if not ok or self.proc.poll() is not None:
            raise RuntimeError(f"{kind} did not answer on port {self.port}"
                               f" (see {err})")
        self.pid = self.proc.pid
        self.dumps = 0

    def cpu(self):
        return proc_cpu(self.pid)

    def hwm_mb(self):
        return proc_hwm_mb(self.pid)

    def dump(self, label):
        """callgrind: dump the counters (and zero them); return Ir since
        the previous dump."""
        self.dumps += 1
        r = subprocess.run(["callgrind_control", "-d", label,
                            str(self.pid)], capture_output=True,
                           text=True, timeout=60)
        note(r.stdout + r.stderr)
        path = f"{self.cg_prefix}.{self.pid}.{self.dumps}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            ir = callgrind_total(path)
            if ir is not None:
                return ir, path
            time.sleep(0.2)
        raise RuntimeError(f"callgrind dump {path} missing")

    def control(self, *args):
        r = subprocess.run(["callgrind_control", *args, str(self.pid)],
                           capture_output=True, text=True, timeout=60)
        note(r.stdout + r.stderr)

    def stop(self):
        stop(self.proc, grace=20 if self.cg_prefix else 10)


def callgrind_total(path):
    try:
        with open(path) as f:
            for line in f:
                if line.startswith("totals:") or line.startswith("summary:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


# ------------------------------------------------------------------ #
# sipp clients
# ------------------------------------------------------------------ #

def parse_stat(path):
    """Totals of a sipp -trace_stat file (last row). 'elapsed' runs from
    sipp's start to the first row where the successful count reached its
    final value: calls that fail later (after sipp's retransmission
    timeout, up to ~32 s) do not stretch the rate of those that worked."""
    with open(path) as f:
        lines = [l.rstrip("\n") for l in f if l.strip()]
    head = lines[0].split(";")
    rows = [dict(zip(head, l.split(";"))) for l in lines[1:]]
    d = rows[-1]

    def epoch(v):
        return float(v.split("\t")[-1])

    start = epoch(d["StartTime"])
    success = int(d["SuccessfulCall(C)"])
    done = next(epoch(r["CurrentTime"]) for r in rows
                if int(r["SuccessfulCall(C)"]) == success)
    return {
        "success": success,
        "failed": int(d["FailedCall(C)"]),
        "retrans": int(d["Retransmissions(C)"]),
        "created": int(d["TotalCallCreated"]),
        "elapsed": done - start,
        "elapsed_all": epoch(d["CurrentTime"]) - start,
    }


class Clients:
    """n sipp UAC processes sending `method` to port, rate/n each, for
    `duration` seconds (-m rate/n*duration)."""

    def __init__(self, port, method, rate, duration, n, tag, nr=False,
                 calls=None):
        self.n = n
        self.tag = tag
        self.procs = []
        self.duration = duration
        scen = os.path.join(BENCH, "scenarios", f"uac_{method.lower()}.xml")
        per = rate / n
        for i in range(n):
            base = free_ports(10)
            calls_i = (max(1, int(round(per * duration))) if calls is None
                       else calls // n + (1 if i < calls % n else 0))
            stat = os.path.join(OUT, f"{tag}.c{i}.stat.csv")
            if os.path.exists(stat):
                os.unlink(stat)
            # -r R -rp 1000 is R calls/s; for rates below 1/s use -rp
            r, rp = (per, 1000) if per >= 1 else (1, int(1000 / per))
            argv = ["sipp", f"127.0.0.1:{port}", "-sf", scen,
                    "-i", "127.0.0.1", "-p", str(base),
                    "-mp", str(base + 2), "-cp", str(base + 6),
                    "-r", f"{r:g}", "-rp", str(rp),
                    "-m", str(calls_i), "-l", str(max(1000, calls_i)),
                    "-buff_size", "4194304", "-nostdin",
                    "-timeout", f"{int(duration + 40)}s", "-timeout_error",
                    "-trace_stat", "-stf", stat, "-fd", "1"]
            if nr:
                argv.append("-nr")
            p = spawn(argv, f"sipp:{tag}.c{i}",
                      stderr=os.path.join(OUT, f"{tag}.c{i}.stderr"))
            p.stat = stat
            self.procs.append(p)

    def wait(self):
        res = {"success": 0, "failed": 0, "retrans": 0, "created": 0,
               "elapsed": 0.0, "cpu": 0.0, "per_client": []}
        for p in self.procs:
            cpu, rc = reap(p, self.duration + 60)
            try:
                st = parse_stat(p.stat)
            except (OSError, IndexError, KeyError, ValueError) as e:
                note(f"{p.bench_name}: no stat ({e}), rc={rc}")
                st = {"success": 0, "failed": 0, "retrans": 0,
                      "created": 0, "elapsed": 0.0}
            st["cpu"] = cpu
            st["rc"] = rc
            res["per_client"].append(st)
            for k in ("success", "failed", "retrans", "created"):
                res[k] += st[k]
            res["elapsed"] = max(res["elapsed"], st["elapsed"])
            res["cpu"] += cpu
        res["rate"] = (res["success"] / res["elapsed"]
                       if res["elapsed"] > 0 else 0.0)
        return res


# ------------------------------------------------------------------ #
# 1. timer micro-benchmark
# ------------------------------------------------------------------ #

def section_tmrbench():
    say("## 1. Timer micro-benchmark (bench/tmrbench.c, built by meson)")
    say("")
    out = {}
    for name in ("tmrbench-fasttmr", "tmrbench-stock"):
        path = os.path.join(OPTS.build, "bench", name)
        if not os.access(path, os.X_OK):
            say(f"{path}: not built (ninja -C {OPTS.build})")
            continue
        r = subprocess.run([path, "0.2"], capture_output=True, text=True,
                           timeout=120)
        out[name] = r.stdout
        say(f"$ {os.path.relpath(path, ROOT)}")
        for line in r.stdout.rstrip().splitlines():
            say("    " + line)
        say("")
    return out


# ------------------------------------------------------------------ #
# 2. rate ladder
# ------------------------------------------------------------------ #

def nclients_for(rate):
    return 1 if rate < OPTS.two_clients_from else 2


def run_step(kind, method, rate, duration, n, tag):
    """Fresh target, one load step, stop the target. Returns a dict."""
    others_before = wait_quiet(OPTS.quiet_wait)
    tgt = Target(kind, method, tag)
    try:
        time.sleep(0.3)
        c0, s0 = tgt.cpu()
        f0 = proc_minflt(tgt.pid)
        b0, w0 = sys_busy()
        cl = Clients(tgt.port, method, rate, duration, n, tag)
        res = cl.wait()
        b1, w1 = sys_busy()
        c1, s1 = tgt.cpu()
        res["minflt"] = proc_minflt(tgt.pid) - f0
        res["hwm_mb"] = tgt.hwm_mb()
    finally:
        tgt.stop()
    wall = w1 - w0
    res.update({
        "kind": kind, "method": method, "target": rate, "clients": n,
        "srv_cpu": c1 - c0,
        "srv_sched": (s1 - s0) if s0 is not None else None,
        "wall": wall,
        "others": max(0.0, ((b1 - b0) - (c1 - c0) - res["cpu"]) / wall),
        "others_before": others_before,
    })
    req = max(1, res["success"])
    res["srv_us"] = res["srv_cpu"] / req * 1e6
    res["srv_core"] = res["srv_cpu"] / wall
    res["sipp_us"] = res["cpu"] / req * 1e6
    res["clean"] = (res["failed"] == 0 and res["retrans"] == 0 and
                    res["success"] == res["created"] and
                    res["success"] >= int(rate * duration) - n)
    res["short"] = res["rate"] < 0.95 * rate
    return res


def run_step_retry(kind, method, rate, duration, n, tag):
    """run_step, and once more when it was not clean (the machine is
    shared: a burst of foreign load can fail a step). The better attempt
    is kept; 'tries' tells how many were made."""
    r = run_step(kind, method, rate, duration, n, tag)
    r["tries"] = 1
    # retry when foreign load was high or the failure small; a massive
    # failure on a quiet machine is the limit, not noise
    small = (r["retrans"] + r["failed"]) < 0.01 * max(1, r["created"])
    if not r["clean"] and OPTS.retry and (small or r["others"] > 0.2 or
                                          r["others_before"] > 0.3):
        r2 = run_step(kind, method, rate, duration, n, tag + ".retry")
        note(f"{tag}: first attempt failed ({r['failed']} failed, "
             f"{r['retrans']} retrans, others {r['others']:.2f}); retry: "
             f"{r2['failed']} failed, {r2['retrans']} retrans")
        better = r2 if (r2["clean"], -r2["retrans"] - r2["failed"]) > \
            (r["clean"], -r["retrans"] - r["failed"]) else r
        better["tries"] = 2
        better["other_try"] = {k: (r2 if better is r else r)[k]
                               for k in ("rate", "failed", "retrans",
                                         "others", "clean")}
        r = better
    return r


LADDER_HEAD = ["target/s", "sipp", "tries", "achieved/s", "ok", "failed", "retrans",
               "server CPU", "server µs/req", "sipp µs/req", "faults/req",
               "maxRSS MB", "others", "verdict"]


def ladder_row(r):
    verdict = ("clean" if r["clean"] and not r["short"] else
               "clean, short of target" if r["clean"] else "FAIL")
    return [fnum(r["target"]), r["clients"], r.get("tries", 1),
            fnum(r["rate"]),
            fnum(r["success"]), fnum(r["failed"]), fnum(r["retrans"]),
            f"{r['srv_core'] * 100:.0f}%", fnum(r["srv_us"], 1),
            fnum(r["sipp_us"], 1),
            fnum(r["minflt"] / max(1, r["success"]), 2),
            fnum(r["hwm_mb"]) if r["hwm_mb"] else "-",
            f"{r['others'] * 100:.0f}%", verdict]


def section_ladder(kind, method):
    label = "sipstack" if kind == "sipstack" else "sipp UAS (ceiling)"
    say(f"### {method} → {label}")
    say("")
    rows = []
    bad = 0
    for rate in OPTS.rates:
        n = nclients_for(rate)
        tag = f"ladder.{kind}.{method.lower()}.{rate}"
        r = run_step_retry(kind, method, rate, OPTS.duration, n, tag)
        rows.append(r)
        say("  " + " | ".join(str(c) for c in ladder_row(r)))
        bad = 0 if r["clean"] else bad + 1
        if bad >= 2:
            say("  (two failed steps in a row: stop)")
            break
    say("")
    for line in table(LADDER_HEAD, [ladder_row(r) for r in rows]):
        say(line)
    say("")
    clean = [r for r in rows if r["clean"]]
    best = max(clean, key=lambda r: r["rate"]) if clean else None
    return {"kind": kind, "method": method, "rows": rows,
            "best": best}


def section_single_sipp():
    """Can one sipp client generate the high rates on its own? Against
    the sipp UAS, one client vs two clients at the same total rate."""
    say("## 3. One sipp client or two?")
    say("")
    rows = []
    for rate in OPTS.single_check:
        for n in (1, 2):
            tag = f"single.{rate}.{n}"
            r = run_step_retry("sipp-uas", "OPTIONS", rate, OPTS.duration,
                               n, tag)
            rows.append(r)
    head = ["target/s", "sipp clients", "tries", "achieved/s", "failed",
            "retrans",
            "sipp CPU (sum)", "sipp µs/req", "verdict"]
    out = []
    for r in rows:
        out.append([fnum(r["target"]), r["clients"], r["tries"],
                    fnum(r["rate"]),
                    fnum(r["failed"]), fnum(r["retrans"]),
                    f"{r['cpu'] / r['wall'] * 100:.0f}%",
                    fnum(r["sipp_us"], 1),
                    "clean" if r["clean"] and not r["short"] else
                    "short of target" if r["clean"] else "FAIL"])
    for line in table(head, out):
        say(line)
    say("")
    return rows


# ------------------------------------------------------------------ #
# 4. callgrind Ir per request
# ------------------------------------------------------------------ #

def annotate_lines(text):
    """(Ir, function) rows of a callgrind_annotate listing."""
    funcs = []
    total = None
    for line in text.splitlines():
        m = re.match(r"^\s*([\d,]+)\s+(\(\s*[\d.]+%\)\s+)?(\S.*)$", line)
        if not m:
            continue
        ir = int(m.group(1).replace(",", ""))
        what = m.group(3).strip()
        if "PROGRAM TOTALS" in what:
            total = ir
            continue
        if total is None or ":" not in what or what.startswith(("=>", "<")):
            continue
        # "file:function [/path/lib.so]" -> "function (lib.so)"
        fm = re.match(r"^(.*?):(\S+)(?:\s+\[(.*)\])?$", what)
        if fm:
            lib = os.path.basename(fm.group(3) or "")
            lib = re.sub(r"\.so[.\d]*$", ".so", lib)
            what = fm.group(2) + (f" ({lib})" if lib else "")
        funcs.append((ir, what))
    return total, funcs


def annotate(path, top_self=15, top_incl=24):
    """Top functions of a callgrind dump by self and by inclusive cost.

    A dump taken while the program runs carries "calls=0" records for the
    frames still on the stack (main, re_main, ...) with the whole window
    as their cost; callgrind_annotate 3.19 counts those as self cost of
    __libc_start_main. They are dropped for the self listing (inclusive
    listing: from the file as is)."""
    clean = path + ".self"
    with open(path) as f, open(clean, "w") as g:
        skip = False
        for line in f:
            if skip:
                skip = False
                continue
            if line.startswith("calls=0 "):
                skip = True
                continue
            g.write(line)
    out = {}
    for kind, src, extra in (("self", clean, []),
                             ("inclusive", path, ["--inclusive=yes"])):
        try:
            r = subprocess.run(["callgrind_annotate", "--threshold=100"] +
                               extra + [src], capture_output=True,
                               text=True, timeout=300)
        except (OSError, subprocess.TimeoutExpired):
            out[kind] = []
            continue
        with open(f"{path}.{kind}.txt", "w") as f:
            f.write(r.stdout)
        total, funcs = annotate_lines(r.stdout)
        funcs.sort(key=lambda x: -x[0])
        seen = set()
        keep = []
        for ir, fn in funcs:
            # the frames below re_main hold the whole window: skip them;
            # and a function listed twice (with and without its file)
            key = re.sub(r" \(.*\)$", "", fn).split(":")[-1]
            if (total and ir >= 0.995 * total) or key in seen:
                continue
            seen.add(key)
            keep.append((ir, fn))
        funcs = keep
        top = top_self if kind == "self" else top_incl
        out[kind] = [(ir, ir / total * 100 if total else 0, fn)
                     for ir, fn in funcs[:top]]
    os.unlink(clean)
    return out


def cg_measure(method, requests, rate, tag):
    """sipstack under callgrind: dump after startup, dump after an idle
    window, run `requests` at `rate`, wait Timer J (32 s) so that the
    expiry and freeing of the transactions is counted too, dump."""
    tgt = Target("sipstack", method, tag, callgrind=True)
    try:
        time.sleep(1.0)
        tgt.dump("startup")
        t0 = time.monotonic()
        time.sleep(OPTS.cg_idle)
        idle_ir, _ = tgt.dump("idle")
        idle_rate = idle_ir / (time.monotonic() - t0)
        t0 = time.monotonic()
        cl = Clients(tgt.port, method, rate, requests / rate, 1, tag)
        res = cl.wait()
        time.sleep(TIMER_J + 1.5)
        load_ir, path = tgt.dump("load")
        window = time.monotonic() - t0
    finally:
        tgt.stop()
    req = max(1, res["success"])
    res.update({
        "method": method, "load_ir": load_ir, "idle_ir_s": idle_rate,
        "window": window,
        "ir_req": (load_ir - idle_rate * window) / req,
        "dump": path,
    })
    res["top"] = annotate(path)
    return res


def section_callgrind():
    n, rate = OPTS.cg_requests, OPTS.cg_rate
    say("## 4. Instructions per request (valgrind --tool=callgrind)")
    say("")
    say(f"{fnum(n)} requests at {rate}/s per method, each method on its own"
        " sipstack under callgrind (one after the other; --quick: side by"
        " side). Counters are dumped"
        " with callgrind_control after startup, after an idle window and"
        f" {TIMER_J + 1.5:.1f} s after the last response (so Timer J expiry"
        " and freeing are included); Ir/request = (load window Ir - idle"
        " Ir/s x window) / requests.")
    say("")
    # one valgrind at a time (quick: side by side); a run with
    # retransmissions (the machine is shared) counts their handling too,
    # so it is repeated once in the full run
    import threading
    results = {}
    errors = []

    def work(m):
        try:
            for attempt in (1, 2):
                r = cg_measure(m, n, rate, f"cg.{m.lower()}.{attempt}")
                r["tries"] = attempt
                results[m] = r
                if (r["retrans"] == 0 and r["failed"] == 0) or \
                        OPTS.quick:
                    break
                note(f"callgrind {m}: {r['retrans']} retransmissions, "
                     "once more")
        except Exception as e:          # reported below
            errors.append(f"{m}: {e}")

    th = [threading.Thread(target=work, args=(m,))
          for m in ("OPTIONS", "MESSAGE")]
    for t in th:
        t.start()
        if not OPTS.quick:
            t.join()
        time.sleep(0.5)
    for t in th:
        t.join()
    for e in errors:
        say(f"callgrind failed: {e}")
    rows = []
    for m in ("OPTIONS", "MESSAGE"):
        r = results.get(m)
        if not r:
            continue
        rows.append([m, r["tries"], fnum(r["success"]), fnum(r["failed"]),
                     fnum(r["retrans"]), fnum(r["load_ir"]),
                     fnum(r["idle_ir_s"]), fnum(r["ir_req"])])
    for line in table(["method", "tries", "requests", "failed", "retrans",
                       "Ir in window", "idle Ir/s", "Ir/request"], rows):
        say(line)
    say("")
    for m in ("OPTIONS", "MESSAGE"):
        r = results.get(m)
        if not r or not r["top"].get("self"):
            continue
        req = max(1, r["success"])
        say(f"Where the instructions go, {m} window "
            f"({os.path.basename(r['dump'])}; full listings in "
            f"{os.path.basename(r['dump'])}.self.txt / .inclusive.txt):")
        say("")
        rows = []
        for i in range(max(len(r["top"]["self"]),
                           len(r["top"].get("inclusive", [])))):
            row = []
            for kind in ("self", "inclusive"):
                lst = r["top"].get(kind, [])
                if i < len(lst):
                    ir, pct, fn = lst[i]
                    row += [fn, f"{pct:.1f}%", fnum(ir / req)]
                else:
                    row += ["", "", ""]
            rows.append(row)
        for line in table(["function (self)", "share", "Ir/req",
                           "function (inclusive)", "share", "Ir/req"],
                          rows, ["l", "r", "r", "l", "r", "r"]):
            say(line)
        say("")
    return results


# ------------------------------------------------------------------ #
# 5. flatness over transactions in flight
# ------------------------------------------------------------------ #

class Phases:
    """Consecutive sipp runs against one target, to follow the number of
    transactions in flight (requests of the last 32 s)."""

    def __init__(self, tgt, method, tag):
        self.tgt, self.method, self.tag = tgt, method, tag
        self.done = []              # (t_start, t_end, requests)
        self.n = 0

    def inflight(self, t):
        total = 0.0
        for t0, t1, k in self.done:
            lo, hi = max(t0, t - TIMER_J), min(t1, t)
            if hi > lo and t1 > t0:
                total += k * (hi - lo) / (t1 - t0)
        return total

    def idle(self, seconds):
        """No load: the server only expires transactions (Timer J).
        CPU per expired transaction."""
        tgt = self.tgt
        c0, s0 = tgt.cpu()
        f0 = proc_minflt(tgt.pid)
        t0 = time.monotonic()
        time.sleep(seconds)
        t1 = time.monotonic()
        c1, s1 = tgt.cpu()
        f1 = proc_minflt(tgt.pid)
        # expired = in flight at t0 that left by t1 (no new requests)
        k = max(1.0, self.inflight(t0) - self.inflight(t1))
        return {"rate": 0, "calls": 0, "t": t0 - self.start,
                "inflight0": self.inflight(t0),
                "inflight1": self.inflight(t1), "success": k,
                "failed": 0, "retrans": 0,
                "stat_us": (c1 - c0) / k * 1e6,
                "sched_us": (s1 - s0) / k * 1e6 if s0 is not None else None,
                "minflt": (f1 - f0) / k, "rss_mb": proc_rss_mb(tgt.pid),
                "ir_req": None}

    def run(self, rate, calls, measure=None):
        """measure: None, "cpu" or "ir" (callgrind window)."""
        self.n += 1
        tgt = self.tgt
        if measure == "ir":
            tgt.control("-i", "on")
            tgt.control("-z")
        c0, s0 = tgt.cpu()
        f0 = proc_minflt(tgt.pid)
        t0 = time.monotonic()
        cl = Clients(tgt.port, self.method, rate, calls / rate, 1,
                     f"{self.tag}.p{self.n}", calls=calls)
        res = cl.wait()
        t1 = time.monotonic()
        c1, s1 = tgt.cpu()
        f1 = proc_minflt(tgt.pid)
        res["rss_mb"] = proc_rss_mb(tgt.pid)
        if measure == "ir":
            res["ir"] = tgt.dump(f"window{self.n}")[0]
            tgt.control("-i", "off")
        k = max(1, res["success"])
        res.update({
            "rate": rate, "calls": calls, "t": t0 - self.start,
            "inflight0": self.inflight(t0),
            "stat_us": (c1 - c0) / k * 1e6,
            "sched_us": (s1 - s0) / k * 1e6 if s0 is not None else None,
            "minflt": (f1 - f0) / k,
        })
        self.done.append((t0, t1, res["success"]))
        res["inflight1"] = self.inflight(t1)
        res["ir_req"] = res["ir"] / k if "ir" in res else None
        return res


def flat_series(method, tag, callgrind):
    """One fresh sipstack; see section_flat for the phases."""
    # native: glibc must not give the heap back when it empties (after
    # the drain below), else windows A and B page-fault it in again
    env = ({"MALLOC_TRIM_THRESHOLD_": str(1 << 40)}
           if not callgrind and OPTS.flat_recycle else None)
    tgt = Target("sipstack", method, tag, callgrind=callgrind,
                 instr=not callgrind, env=env)
    out = {"method": method, "callgrind": callgrind, "windows": [],
           "failed": 0, "retrans": 0}
    try:
        ph = Phases(tgt, method, tag)
        ph.start = time.monotonic()
        hi = OPTS.flat_rate
        meas = "ir" if callgrind else "cpu"
        wr = OPTS.cg_window_rate if callgrind else hi
        plan = []
        if not callgrind and OPTS.flat_recycle:
            # grow the heap to its steady-state size once and let it
            # drain: the windows then reuse freed memory (no page faults)
            # like a server that has been running for a while
            plan += [("heap fill", hi, int(hi * 33), None),
                     ("drain", 0, TIMER_J + 2, None)]
        plan += [("pre-warm", wr, 100, None),
                ("A", wr, OPTS.flat_a[callgrind], meas),
                ("fill", hi, int(hi * (OPTS.flat_fill_cg if callgrind
                                       else OPTS.flat_fill)), None),
                ("B", wr, OPTS.flat_b[callgrind], meas)]
        if not callgrind:
            plan += [("settle", hi, int(hi * 6), None),
                     ("C", hi, OPTS.flat_c, meas),
                     ("D", -1, OPTS.flat_d, meas)]
        for name, rate, calls, m in plan:
            if rate == 0:
                note(f"{tag} {name}: sleep {calls:g}s")
                time.sleep(calls)
                continue
            if rate < 0:
                time.sleep(1.0)
                r = ph.idle(calls)
            else:
                r = ph.run(rate, calls, m)
            out.setdefault("phases", []).append(
                (name, r["success"], r["failed"], r["retrans"]))
            out["failed"] += r["failed"]
            out["retrans"] += r["retrans"]
            note(f"{tag} {name}: t={r['t']:.1f}s rate={rate} "
                 f"calls={r['success']} inflight {r['inflight0']:.0f}->"
                 f"{r['inflight1']:.0f} stat_us={r['stat_us']:.1f} "
                 f"minflt/req={r['minflt']:.2f} rss={r['rss_mb']:.0f}MB "
                 f"sched_us={r['sched_us']} ir_req={r['ir_req']}")
            if m:
                r["window"] = name
                out["windows"].append(r)
        out["hwm_mb"] = tgt.hwm_mb()
    finally:
        tgt.stop()
    return out


def run_parallel(jobs):
    import threading
    results = {}
    errors = []

    def work(key, args):
        try:
            results[key] = flat_series(*args)
        except Exception as e:
            errors.append(f"{key}: {e}")

    th = []
    for key, args in jobs:
        t = threading.Thread(target=work, args=(key, args))
        t.start()
        th.append(t)
        time.sleep(0.3)
    for t in th:
        t.join()
    for e in errors:
        say(f"flatness series failed: {e}")
    return results


def section_flat():
    hi = OPTS.flat_rate
    say("## 5. Cost per request vs transactions in flight")
    say("")
    say("UDP server transactions linger 32 s (Timer J) after the 200, so"
        " the number in flight is the number of requests of the last 32 s."
        " One fresh sipstack per series and consecutive sipp runs:"
        f" pre-warm with exactly 100 requests, window A (few in flight),"
        f" fill at {fnum(hi)}/s for {OPTS.flat_fill:g} s, window B (same"
        " rate as A, ~40,000+ in flight, still before the first Timer J"
        " expiry), then, natively, 6 s more and window C: steady state at"
        f" ≈ 32 × {fnum(hi)} = {fnum(32 * hi)} in flight, where each new"
        " request is matched by one expiring transaction, and window D: no"
        " load, the server only expires the transactions of window C (CPU"
        " per expired transaction; 'requests' = transactions expired). A"
        " and B differ only in the number in flight (same rate, same"
        " phase: no expiries yet). CPU: utime+stime from /proc/PID/stat (10 ms ticks) and"
        " /proc/PID/schedstat (ns). Under callgrind the fill runs with"
        " instrumentation off (callgrind_control -i off) and the windows"
        f" at {OPTS.cg_window_rate}/s with it on, counters zeroed before"
        " and dumped after each window.")
    say("")
    if OPTS.flat_recycle:
        say("Heap: each native series first grows the heap to its steady-"
            f"state size ({fnum(hi)}/s for 33 s) and lets every transaction"
            " expire (34 s), so that windows A and B reuse freed memory like"
            " a server that has run for a while, instead of page-faulting"
            " fresh heap (which the ladder's fresh servers do pay); the"
            " server runs with MALLOC_TRIM_THRESHOLD_=2^40 so that glibc"
            " keeps the emptied heap.")
    else:
        say("Heap (quick mode): no heap pre-fill, so windows A and B also pay"
            " the page faults of a growing heap, and window C does not;"
            " all four series run side by side.")
    say("")
    njobs = [(m, (m, f"flat.{m.lower()}", False))
             for m in ("OPTIONS", "MESSAGE")]
    cjobs = [(("cg", m), (m, f"flatcg.{m.lower()}", True))
             for m in ("OPTIONS", "MESSAGE")]
    if OPTS.quick:
        # quick: all four series side by side (noisier)
        both = run_parallel(njobs + cjobs)
    else:
        both = run_parallel(njobs)
        for job in cjobs:       # one valgrind at a time
            both.update(run_parallel([job]))
    native = {k: v for k, v in both.items() if not isinstance(k, tuple)}
    cg = {k[1]: v for k, v in both.items() if isinstance(k, tuple)}

    rows = []
    for m in ("OPTIONS", "MESSAGE"):
        s = native.get(m)
        if not s:
            continue
        base = s["windows"][0]
        for w in s["windows"]:
            ratio = (w["sched_us"] / base["sched_us"]
                     if w["sched_us"] and base["sched_us"] and
                     w["rate"] else None)
            rows.append([m, w["window"], f"{w['t']:.0f}",
                         fnum(w["rate"]) if w["rate"] else "0 (expiries)",
                         f"{fnum(w['inflight0'])} → {fnum(w['inflight1'])}",
                         fnum(w["success"]), fnum(w["failed"]),
                         fnum(w["retrans"]), fnum(w["stat_us"], 1),
                         fnum(w["sched_us"], 1),
                         f"{ratio:.2f}" if ratio else "-",
                         fnum(w["minflt"], 2), fnum(w["rss_mb"])])
    say(f"Native CPU per request at {fnum(hi)}/s (ratio: schedstat µs/req"
        " relative to window A):")
    say("")
    for line in table(["method", "window", "at s", "rate/s", "in flight",
                       "requests", "failed", "retrans", "µs/req (stat)",
                       "µs/req (schedstat)", "ratio", "page faults/req",
                       "RSS MB after"], rows):
        say(line)
    say("")
    for m in ("OPTIONS", "MESSAGE"):
        s = native.get(m)
        if s:
            say(f"{m}: all phases: {s['failed']} failed, {s['retrans']} "
                f"retransmissions; maxRSS {fnum(s['hwm_mb'])} MB")
    say("")
    rows = []
    for m in ("OPTIONS", "MESSAGE"):
        s = cg.get(m)
        if not s:
            continue
        base = s["windows"][0]
        for w in s["windows"]:
            ratio = (w["ir_req"] / base["ir_req"]
                     if w["ir_req"] and base["ir_req"] else None)
            rows.append([m, w["window"], f"{w['t']:.0f}", fnum(w["rate"]),
                         f"{fnum(w['inflight0'])} → {fnum(w['inflight1'])}",
                         fnum(w["success"]), fnum(w["failed"]),
                         fnum(w["retrans"]), fnum(w["ir_req"]),
                         f"{ratio:.2f}" if ratio else "-"])
    if rows:
        say("Instructions per request under callgrind (ratio: relative to"
            " window A):")
        say("")
        for line in table(["method", "window", "at s", "rate/s",
                           "in flight", "requests", "failed", "retrans",
                           "Ir/request", "ratio"], rows):
            say(line)
        say("")
        for m in ("OPTIONS", "MESSAGE"):
            s = cg.get(m)
            if s:
                say(f"{m} (callgrind): all phases: {s['failed']} failed, "
                    f"{s['retrans']} retransmissions (per phase: " +
                    ", ".join(f"{n} {fnum(k)} req/{f}/{rt}"
                              for n, k, f, rt in s.get("phases", [])) +
                    "; req/failed/retrans)")
        say("")
    return native, cg


def jsonable(o):
    if isinstance(o, dict):
        return {str(k): jsonable(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [jsonable(v) for v in o]
    if isinstance(o, float) and math.isnan(o):
        return None
    return o


def main():
    global OPTS, OUT, LOG, SUMMARY
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="short variant (< 5 min)")
    ap.add_argument("--out", help="output directory (default: a new "
                    "/tmp/sipstack-bench.*)")
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--only", default=None,
                    help="comma list of sections: tmr,ladder,single,cg,flat"
                    " (default: all; --quick: all but single)")
    ap.add_argument("--rates", help="ladder rates, comma separated")
    ap.add_argument("--duration", type=float, help="seconds per step")
    ap.add_argument("--time-limit", type=float,
                    help="hard limit in seconds for the whole run (default"
                    " 1500, 295 with --quick); then everything is killed")
    ap.add_argument("--no-ceiling", action="store_true",
                    help="skip the sipp UAS ladders")
    ap.add_argument("--script", help="the script sipstack runs (default"
                    " bench/scripts/bench.lua), e.g. one with another"
                    " sip.configure{} to compare")
    ap.add_argument("--server-arg", action="append", default=[],
                    help="extra sipstack option (repeatable), e.g. "
                    "--server-arg=--no-udp-batch")
    OPTS = ap.parse_args()
    q = OPTS.quick
    OPTS.sipstack = os.path.join(OPTS.build, "sipstack")
    OPTS.script = os.path.abspath(OPTS.script) if OPTS.script else \
        os.path.join(BENCH, "scripts", "bench.lua")
    OPTS.rates = ([int(x) for x in OPTS.rates.split(",")] if OPTS.rates
                  else [5000, 15000, 25000] if q else
                  [5000, 10000, 15000, 20000, 25000, 30000, 35000, 40000])
    OPTS.duration = OPTS.duration or (4.0 if q else 10.0)
    OPTS.two_clients_from = 20000
    OPTS.single_check = [25000] if q else [25000, 35000]
    OPTS.quiet_wait = 1.0 if q else 8.0
    OPTS.retry = not q
    OPTS.cg_requests = 2000 if q else 10000
    OPTS.cg_rate = 400
    OPTS.cg_idle = 3.0
    OPTS.flat_rate = 1600           # 32 s x 1600/s = 51,200 in flight
    OPTS.flat_fill = 25.0           # s: window B ends before 32 s
    OPTS.flat_fill_cg = 24.0        # under valgrind the runs take longer
    OPTS.cg_window_rate = 500       # callgrind keeps up at this rate
    OPTS.flat_a = {False: 3200, True: 200}      # requests, native / cg
    OPTS.flat_b = {False: 3200, True: 1000}
    OPTS.flat_c = 8000 if q else 16000
    OPTS.flat_recycle = not q
    OPTS.flat_d = 5.0 if q else 20.0           # s of expiries only
    # quick: the one-sipp check is left out (the ladder's 25k step runs
    # two sipp clients anyway)
    sections = set((OPTS.only or ("tmr,ladder,cg,flat" if q else
                                  "tmr,ladder,single,cg,flat")).split(","))

    for tool in ("sipp", "valgrind", "callgrind_control"):
        if not shutil.which(tool):
            sys.exit(f"bench: {tool} not found (make deps)")
    if not os.access(OPTS.sipstack, os.X_OK):
        sys.exit(f"bench: {OPTS.sipstack} not built (ninja -C build)")

    OUT = OPTS.out or __import__("tempfile").mkdtemp(prefix="sipstack-bench.")
    os.makedirs(OUT, exist_ok=True)
    # one binary for the whole run, even if build/ is rebuilt meanwhile
    import hashlib
    built = OPTS.sipstack
    OPTS.sipstack = os.path.join(OUT, "sipstack")
    shutil.copy2(built, OPTS.sipstack)
    with open(OPTS.sipstack, "rb") as f:
        bin_sha = hashlib.sha256(f.read()).hexdigest()[:16]
    bin_time = datetime.datetime.fromtimestamp(
        os.stat(built).st_mtime).astimezone()
    LOG = open(os.path.join(OUT, "bench.log"), "w")
    SUMMARY = open(os.path.join(OUT, "summary.md"), "w")
    atexit.register(cleanup)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    signal.signal(signal.SIGALRM, on_signal)
    signal.alarm(int(OPTS.time_limit or (295 if q else 1500)))

    # sipp warns when -l + sockets exceed the fd limit: raise the soft one
    try:
        import resource
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError):
        pass

    t_start = time.monotonic()
    started = datetime.datetime.now().astimezone()
    sipp_ver = subprocess.run(["sipp", "-v"], capture_output=True,
                              text=True).stdout.strip().splitlines()
    sipp_ver = next((l.strip() for l in sipp_ver if "SIPp" in l), "?")
    with open("/proc/loadavg") as f:
        loadavg = f.read().split()[:3]
    say(f"# sipstack benchmark ({'quick' if q else 'full'})")
    say("")
    say(f"date: {started:%Y-%m-%d %H:%M %Z}; host: {os.uname().nodename},"
        f" {os.cpu_count()} CPUs, kernel {os.uname().release};"
        f" {sipp_ver}; load average at start {' '.join(loadavg)}")
    say(f"output: {OUT}")
    say(f"server: copy of {os.path.relpath(built, ROOT)} (built "
        f"{bin_time:%Y-%m-%d %H:%M:%S %Z}, sha256 {bin_sha}...)")
    say(f"ladder: rates {OPTS.rates}, {OPTS.duration:g} s per step, "
        f"-m rate×{OPTS.duration:g}, {2} sipp clients (half the rate each) "
        f"from {OPTS.two_clients_from}/s; a fresh server or UAS per step")
    say("")

    results = {"date": started.isoformat(), "quick": q, "out": OUT}
    if "tmr" in sections:
        results["tmrbench"] = section_tmrbench()

    ladders = []
    if "ladder" in sections:
        say("## 2. Rate ladder (0 failed calls and 0 retransmissions = clean)")
        say("")
        say("Each step starts a fresh target (sipstack, or the sipp UAS for"
            " the ceiling) on free ports, waits until it answers, runs the"
            " load and stops it. Restarting instead of waiting 32 s between"
            " steps for Timer J to drain keeps every step independent (no"
            " backlog or retransmission state from an overloaded step) and"
            " saves ~35 s per step. A step therefore ends with rate × "
            f"{OPTS.duration:g} s transactions in flight and a heap that grew"
            " for the whole step (faults/req: page faults per request);"
            " section 5 shows the steady state. CPU: utime+stime from"
            " /proc/PID/stat of the target around the load; sipp: rusage of"
            " the sipp clients. 'others': CPU used meanwhile by processes"
            " outside this benchmark (1 core = 100%).")
        say("")
        say("    sipstack: build/sipstack --listen udp:127.0.0.1:PORT "
            "--log-level warn " + os.path.relpath(OPTS.script, ROOT))
        say("    UAS:      sipp -sf bench/scenarios/uas_{options,message}.xml"
            " -i 127.0.0.1 -p PORT -mp P2 -cp P3 -buff_size 4194304"
            " -nostdin")
        say("    client:   sipp 127.0.0.1:PORT -sf bench/scenarios/"
            "uac_{options,message}.xml -i 127.0.0.1 -p P -mp P2 -cp P3"
            " -r RATE/N -rp 1000 -m RATE/N×DURATION -l max(1000, -m)"
            " -buff_size 4194304 -nostdin -timeout (DURATION+40)s"
            " -timeout_error -trace_stat -stf STAT.csv -fd 1")
        say("")
        for m in ("OPTIONS", "MESSAGE"):
            ladders.append(section_ladder("sipstack", m))
            if not OPTS.no_ceiling:
                ladders.append(section_ladder("sipp-uas", m))
        results["ladders"] = ladders

    single = []
    if "single" in sections:
        single = section_single_sipp()
        results["single"] = single

    cg = {}
    if "cg" in sections:
        cg = section_callgrind()
        results["callgrind"] = {m: {k: v for k, v in r.items()
                                    if k != "per_client"}
                                for m, r in cg.items()}

    flat_native, flat_cg = {}, {}
    if "flat" in sections:
        flat_native, flat_cg = section_flat()
        results["flat_native"] = flat_native
        results["flat_callgrind"] = flat_cg

    # -------------------------------------------------------------- #
    say("## 6. Summary")
    say("")

    def win(series, name, key):
        for w in (series or {}).get("windows", []):
            if w["window"] == name:
                return w.get(key)
        return None

    def flat_cell(series, key, a, b, nd):
        x, y = win(series, a, key), win(series, b, key)
        if not x or not y:
            return "-"
        return f"{fnum(x, nd)} → {fnum(y, nd)} (×{y / x:.2f})"

    rows = []
    for m in ("OPTIONS", "MESSAGE"):
        srv = next((l for l in ladders if l["kind"] == "sipstack" and
                    l["method"] == m), None)
        ceil = next((l for l in ladders if l["kind"] == "sipp-uas" and
                     l["method"] == m), None)
        b = srv["best"] if srv else None
        c = ceil["best"] if ceil else None
        ir = cg.get(m)
        nat = flat_native.get(m)
        rows.append([
            m,
            f"{fnum(b['rate'])} (step {fnum(b['target'])})" if b else "-",
            fnum(b["srv_us"], 1) if b else "-",
            fnum(b["sipp_us"], 1) if b else "-",
            f"{fnum(c['rate'])} (step {fnum(c['target'])})" if c else "-",
            fnum(ir["ir_req"]) if ir else "-",
            flat_cell(nat, "sched_us", "A", "B", 1),
            fnum(win(nat, "C", "sched_us"), 1) + " + " +
            fnum(win(nat, "D", "sched_us"), 1) if nat else "-",
            flat_cell(flat_cg.get(m), "ir_req", "A", "B", 0),
        ])
    for line in table(["method", "max clean req/s (sipstack)",
                       "server µs/req", "sipp µs/req",
                       "max clean req/s (sipp UAS ceiling)",
                       "Ir/request (callgrind)",
                       "µs/req at 1,600/s, A (~1k) → B (~43k in flight)",
                       "µs/req steady ~51k (C) + µs/expiry (D)",
                       "Ir/req, A (~200) → B (~41k in flight)"],
                      rows, ["l"] + ["r"] * 8):
        say(line)
    say("")
    b = next((l["best"] for l in ladders if l["kind"] == "sipstack" and
              l["method"] == "OPTIONS"), None)
    if b:
        # met: a clean step of >= 25,000/s that sipp delivered (>= 95%)
        met = b["target"] >= 25000 and not b["short"]
        say(f"target ≥ 25,000 OPTIONS/s with 0 failures: "
            f"{'MET' if met else 'NOT MET'} (best clean step: "
            f"{fnum(b['target'])}/s, achieved {fnum(b['rate'])}/s)")
    say(f"total time: {time.monotonic() - t_start:.0f} s; details in {OUT}")

    with open(os.path.join(OUT, "results.json"), "w") as f:
        json.dump(jsonable(results), f, indent=1, default=str)


if __name__ == "__main__":
    main()
