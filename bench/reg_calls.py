#!/usr/bin/env python3
"""bench/reg_calls.py: REGISTER, calls and held dialogs benchmark.

    python3 bench/reg_calls.py [--quick] [--out DIR] [--sections 1234]

Not a test: it prints figures. Sections:

  1. REGISTER/s with the durable SQLite store (bench/scripts/
     rc_registrar.lua, rc_registrar_auth.lua: REGISTER handled in C, a
     200 only after the commit), auth off (distinct users, one per
     registration) and auth on (a set of users added beforehand with
     `sipstack user add`, reused round-robin), rate ladder; the same load
     against a sipp UAS answering REGISTER (200, or 401 then 200) is the
     ceiling of the setup. After each sipstack step the bindings in the
     database are counted with the sqlite3 CLI.
  2. calls/s: sipp -sn uac (INVITE/100/180/200/ACK/BYE) against
     bench/scripts/rc_uas.lua (ringing, answer) and against sipp -sn uas.
     Full mode: one more run of >= 100,000 calls at the best clean rate.
  3. memory per held dialog: N calls held open (sipp -sn uac -d ...),
     VmRSS after all connected + 35 s (libre's transactions linger 32 s)
     minus VmRSS before, divided by N; sip.stats() via a MESSAGE "stats".
  4. callgrind: instructions per call and per REGISTER (load run minus an
     idle run of the same length).

Only 127.0.0.1 and free ports are used; a fresh server per step; every
child process is tracked and killed on exit (also on SIGINT/SIGTERM and
on the overall time limit).
"""

import argparse
import datetime
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402
# one process layer and port picker for both benchmarks: children are
# tracked in bench.CHILDREN, die with us (setpriv --pdeathsig), and are
# killed by bench.cleanup()
from bench import free_ports, spawn, reap, stop  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "bench")
SCEN = os.path.join(BENCH, "scenarios")
SCRIPTS = os.path.join(BENCH, "scripts")
HZ = os.sysconf("SC_CLK_TCK")
LINGER = 35.0           # > 32 s (64*T1): libre's transactions are gone

OPTS = None
OUT = None
LOG = None
RESULTS = {}


def say(msg=""):
    print(msg, flush=True)
    if LOG:
        LOG.write(msg + "\n")
        LOG.flush()


def note(msg):
    if LOG:
        LOG.write(msg + "\n")
        LOG.flush()


def table(headers, rows):
    cells = [[str(c) for c in r] for r in rows]
    w = [max([len(headers[i])] + [len(r[i]) for r in cells])
         for i in range(len(headers))]

    def fmt(r):
        return "| " + " | ".join(c.rjust(w[i]) for i, c in enumerate(r)) + " |"
    return [fmt(headers), "|" + "|".join("-" * (x + 1) + ":" for x in w) + "|"] \
        + [fmt(r) for r in cells]


def f0(x):
    return "-" if x is None else f"{x:,.0f}"


# ------------------------------------------------------------------ #
# processes
# ------------------------------------------------------------------ #

def on_signal(signum, frame):
    bench.cleanup()
    sys.stderr.write(f"reg_calls: {'time limit' if signum == signal.SIGALRM else 'signal ' + str(signum)}: children killed\n")
    os._exit(128 + signum)


def proc_cpu(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / HZ


def proc_status_kb(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1])
    return None


def sys_busy():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (v[0] + v[1] + v[2] + v[5] + v[6] + (v[7] if len(v) > 7 else 0)) / HZ


def udp_request(port, method, body="", timeout=5.0):
    """One request to 127.0.0.1:port, retried until a final response;
    (code, body) or (None, None)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    lport = s.getsockname()[1]
    s.settimeout(0.3)
    deadline = time.monotonic() + timeout
    n = 0
    try:
        while time.monotonic() < deadline:
            n += 1
            ctype = "Content-Type: text/plain\r\n" if body else ""
            req = (f"{method} sip:probe@127.0.0.1:{port} SIP/2.0\r\n"
                   f"Via: SIP/2.0/UDP 127.0.0.1:{lport};rport;"
                   f"branch=z9hG4bK-rc-{os.getpid()}-{lport}-{n}\r\n"
                   "Max-Forwards: 70\r\n"
                   f"From: <sip:probe@127.0.0.1:{lport}>;tag=p{n}\r\n"
                   f"To: <sip:probe@127.0.0.1:{port}>\r\n"
                   f"Call-ID: rc-{os.getpid()}-{lport}-{n}\r\n"
                   f"CSeq: 1 {method}\r\n"
                   f"Contact: <sip:probe@127.0.0.1:{lport}>\r\n"
                   f"{ctype}Content-Length: {len(body)}\r\n\r\n{body}")
            try:
                s.sendto(req.encode(), ("127.0.0.1", port))
                while True:
                    data = s.recv(65535)
                    m = re.match(rb"SIP/2.0 (\d+)", data)
                    if m and int(m.group(1)) >= 200:
                        return int(m.group(1)), data.split(b"\r\n\r\n", 1)[-1].decode(errors="replace")
            except (socket.timeout, ConnectionRefusedError):
                pass
            time.sleep(0.2)
        return None, None
    finally:
        s.close()


def sip_stats(port):
    code, body = udp_request(port, "MESSAGE", "stats")
    if code != 200:
        return {}
    out = {}
    for line in body.splitlines():
        if "=" in line:
            k, v = line.split("=", 1)
            try:
                out[k] = int(float(v))
            except ValueError:
                out[k] = v
    return out


# ------------------------------------------------------------------ #
# targets
# ------------------------------------------------------------------ #

class Server:
    """sipstack with `script` (cwd: a fresh temp dir, optionally seeded
    with a database file) or a sipp UAS (scenario file or built-in
    name)."""

    def __init__(self, kind, tag, script=None, scenario=None, builtin=None,
                 seed_db=None, callgrind=False):
        self.kind = kind
        self.tag = tag
        self.cg = None
        self.dumps = 0
        self.dir = tempfile.mkdtemp(prefix=f"{tag}.", dir=OUT)
        err = os.path.join(OUT, f"{tag}.stderr")
        if kind == "sipstack":
            self.port = free_ports(1)
            if seed_db:
                shutil.copy(seed_db, os.path.join(self.dir, "rc_bench.db"))
            argv = [OPTS.sipstack, "--listen", f"udp:127.0.0.1:{self.port}",
                    "--log-level", "warn", os.path.join(SCRIPTS, script)]
            if callgrind:
                self.cg = os.path.join(OUT, f"callgrind.{tag}")
                # names uncompressed: each dump must stand on its own
                argv = ["valgrind", "--tool=callgrind",
                        "--compress-strings=no", "--compress-pos=no",
                        f"--callgrind-out-file={self.cg}.%p"] + argv
        else:
            self.port = free_ports(10)
            argv = ["sipp", "-i", "127.0.0.1", "-p", str(self.port),
                    "-mp", str(self.port + 2), "-cp", str(self.port + 6),
                    "-buff_size", "4194304", "-nostdin"]
            argv += (["-sn", builtin] if builtin else
                     ["-sf", os.path.join(SCEN, scenario)])
        self.proc = spawn(argv, f"{kind}:{tag}", cwd=self.dir, stderr=err)
        self.pid = self.proc.pid
        self.stderr = err
        if kind == "sipstack":
            code, _ = udp_request(self.port, "OPTIONS",
                                  timeout=90 if callgrind else 20)
            ok = code is not None
        else:
            deadline = time.monotonic() + 10
            ok = False
            while time.monotonic() < deadline:
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                try:
                    s.bind(("127.0.0.1", self.port))
                except OSError:
                    ok = True
                finally:
                    s.close()
                if ok:
                    break
                time.sleep(0.1)
            time.sleep(0.3)
        if not ok or self.proc.poll() is not None:
            raise RuntimeError(f"{kind} {tag} did not start (see {err})")

    def db(self):
        return os.path.join(self.dir, "rc_bench.db")

    def cg_dump(self, label):
        self.dumps += 1
        r = subprocess.run(["callgrind_control", "-d", label, str(self.pid)],
                           capture_output=True, text=True, timeout=120)
        note(r.stdout + r.stderr)
        path = f"{self.cg}.{self.pid}.{self.dumps}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with open(path) as f:
                    for line in f:
                        if line.startswith(("totals:", "summary:")):
                            return int(line.split()[1]), path
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"callgrind dump {path} missing")

    def stop(self):
        stop(self.proc, grace=30 if self.cg else 10)


# ------------------------------------------------------------------ #
# sipp client
# ------------------------------------------------------------------ #

def parse_stat(path):
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
    return {"success": success, "failed": int(d["FailedCall(C)"]),
            "retrans": int(d["Retransmissions(C)"]),
            "created": int(d["TotalCallCreated"]),
            "elapsed": done - start}


class Client:
    """One sipp UAC: `calls` calls at `rate`/s."""

    def __init__(self, port, tag, rate, calls, scenario=None, builtin=None,
                 inf=None, hold_ms=None, limit=None):
        base = free_ports(10)
        self.stat = os.path.join(OUT, f"{tag}.stat.csv")
        if os.path.exists(self.stat):
            os.unlink(self.stat)
        self.timeout = calls / rate + (hold_ms or 0) / 1000 + 60
        argv = ["sipp", f"127.0.0.1:{port}", "-i", "127.0.0.1",
                "-p", str(base), "-mp", str(base + 2), "-cp", str(base + 6),
                "-r", f"{rate:g}", "-rp", "1000", "-m", str(calls),
                "-l", str(limit or max(1000, calls)),
                "-buff_size", "4194304", "-nostdin",
                "-timeout", f"{int(self.timeout - 10)}s", "-timeout_error",
                "-trace_stat", "-stf", self.stat, "-fd", "1"]
        argv += (["-sn", builtin] if builtin else
                 ["-sf", os.path.join(SCEN, scenario)])
        if inf:
            argv += ["-inf", inf]
        if hold_ms is not None:
            argv += ["-d", str(hold_ms)]
        self.proc = spawn(argv, f"sipp:{tag}",
                          stderr=os.path.join(OUT, f"{tag}.stderr"))

    def wait(self):
        cpu, rc = reap(self.proc, self.timeout + 30)
        try:
            st = parse_stat(self.stat)
        except (OSError, IndexError, KeyError, ValueError, StopIteration) as e:
            note(f"{self.stat}: {e}")
            st = {"success": 0, "failed": 0, "retrans": 0, "created": 0,
                  "elapsed": 0.0}
        st["rc"] = rc
        st["cpu"] = cpu
        st["rate"] = st["success"] / st["elapsed"] if st["elapsed"] > 0 else 0
        return st


def sql_count(db, query):
    try:
        r = subprocess.run(["sqlite3", db, query], capture_output=True,
                           text=True, timeout=60)
        return int(r.stdout.strip())
    except (OSError, ValueError, subprocess.TimeoutExpired) as e:
        note(f"sqlite3 {db}: {e}")
        return None


def step(kind, tag, rate, calls, server_kw, client_kw, count_db=False):
    """Fresh server, one sipp client, stop the server: a result dict."""
    srv = Server(kind, tag, **server_kw)
    try:
        c0 = proc_cpu(srv.pid)
        b0, w0 = sys_busy(), time.monotonic()
        res = Client(srv.port, tag, rate, calls, **client_kw).wait()
        w1, b1 = time.monotonic(), sys_busy()
        res["srv_cpu"] = proc_cpu(srv.pid) - c0
        res["others"] = max(0.0, (b1 - b0 - res["srv_cpu"] - res["cpu"])
                            / (w1 - w0))
    finally:
        srv.stop()
    if count_db:
        res["bindings"] = sql_count(srv.db(), "select count(*) from bindings")
    res.update(target=rate, calls=calls, kind=kind)
    res["clean"] = (res["failed"] == 0 and res["retrans"] == 0 and
                    res["success"] == calls and res["rate"] >= 0.95 * rate)
    res["srv_us"] = res["srv_cpu"] / max(1, res["success"]) * 1e6
    note(f"{tag}: {res}")
    if kind == "sipstack" and not OPTS.keep:
        shutil.rmtree(srv.dir, ignore_errors=True)
    return res


def ladder(name, rates, duration, make):
    """Run make(rate) for each rate; stop after the first step that is
    not clean (after one retry when the failure was small or the machine
    busy). Returns (rows, best clean rate)."""
    rows, best = [], None
    for rate in rates:
        r = make(rate, "")
        if not r["clean"] and OPTS.retry and (
                r["failed"] + r["retrans"] < 0.01 * max(1, r["calls"])
                or r["others"] > 0.2):
            r2 = make(rate, ".retry")
            r2["tries"] = 2
            r = r2 if r2["clean"] else r
        rows.append(r)
        say(f"  {name} {rate:>6}/s: achieved {r['rate']:,.0f}/s, ok "
            f"{r['success']}/{r['calls']}, failed {r['failed']}, retrans "
            f"{r['retrans']}, server CPU {r['srv_us']:.1f} µs/op"
            + (f", bindings {r['bindings']}" if "bindings" in r else "")
            + (", clean" if r["clean"] else ", NOT clean"))
        if r["clean"]:
            best = rate
        else:
            break
    return rows, best


def ladder_table(rows):
    return table(["target/s", "achieved/s", "ok", "failed", "retrans",
                  "server µs/op", "bindings", "others (cores)", "verdict"],
                 [[f0(r["target"]), f0(r["rate"]), f0(r["success"]),
                   r["failed"], r["retrans"], f"{r['srv_us']:.1f}",
                   f0(r.get("bindings")), f"{r['others']:.2f}",
                   "clean" if r["clean"] else "fail"] for r in rows])


# ------------------------------------------------------------------ #
# 1. REGISTER
# ------------------------------------------------------------------ #

def make_users_csv(path, n, auth):
    with open(path, "w") as f:
        f.write("SEQUENTIAL\n")
        for i in range(n):
            u = f"u{i:06d}"
            if auth:
                f.write(f"{u};[authentication username={u} password=p{i:06d}]\n")
            else:
                f.write(f"{u}\n")


def section_register():
    say("## 1. REGISTER/s, durable SQLite store (REGISTER handled in C)")
    dur = OPTS.reg_duration
    rates = OPTS.reg_rates
    nmax = int(max(rates) * dur)
    csv_plain = os.path.join(OUT, "users_plain.csv")
    make_users_csv(csv_plain, nmax, False)

    # users for auth: `sipstack user add` one process each (HA1 format
    # is internal), into a seed database copied for every step
    nauth = OPTS.auth_users
    seed = os.path.join(OUT, "seed_users.db")
    t0 = time.monotonic()
    for i in range(nauth):
        subprocess.run([OPTS.sipstack, "user", "add", f"u{i:06d}",
                        f"p{i:06d}", "--db", seed], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for suffix in ("-wal", "-shm"):
        if os.path.exists(seed + suffix):
            note(f"seed db has {suffix} (copied as is)")
    csv_auth = os.path.join(OUT, "users_auth.csv")
    make_users_csv(csv_auth, nauth, True)
    say(f"  {nauth} users added with `sipstack user add` in "
        f"{time.monotonic() - t0:.0f} s (auth on reuses them round-robin: "
        "each registration a new Call-ID, the binding of a user is "
        "replaced)")
    out = {}
    for auth in (False, True):
        label = "auth on" if auth else "auth off"
        for kind in ("sipstack", "sipp-uas"):
            def make(rate, sfx, auth=auth, kind=kind):
                tag = f"reg.{'auth' if auth else 'noauth'}.{kind}.{rate}{sfx}"
                if kind == "sipstack":
                    skw = {"script": "rc_registrar_auth.lua" if auth
                           else "rc_registrar.lua",
                           "seed_db": seed if auth else None}
                else:
                    skw = {"scenario": "rc_uas_register_auth.xml" if auth
                           else "rc_uas_register.xml"}
                ckw = {"scenario": "rc_uac_register_auth.xml" if auth
                       else "rc_uac_register.xml",
                       "inf": csv_auth if auth else csv_plain}
                r = step(kind, tag, rate, int(rate * dur), skw, ckw,
                         count_db=(kind == "sipstack"))
                if kind == "sipstack":
                    want = min(r["success"], nauth) if auth else r["success"]
                    r["durable"] = r.get("bindings") == want
                return r
            say(f"### {label}, {kind}")
            rows, best = ladder(f"REGISTER {label} {kind}", rates, dur, make)
            for l in ladder_table(rows):
                say(l)
            say(f"  best clean rate: {f0(best)}/s")
            say("")
            out[(auth, kind)] = {"rows": rows, "best": best}
    RESULTS["register"] = out


# ------------------------------------------------------------------ #
# 2. calls
# ------------------------------------------------------------------ #

def section_calls():
    say("## 2. Calls/s: sipp -sn uac -> rc_uas.lua (ringing, answer) vs sipp -sn uas")
    dur = OPTS.call_duration
    out = {}
    for kind in ("sipstack", "sipp-uas"):
        def make(rate, sfx, kind=kind):
            tag = f"calls.{kind}.{rate}{sfx}"
            skw = ({"script": "rc_uas.lua"} if kind == "sipstack"
                   else {"builtin": "uas"})
            return step(kind, tag, rate, int(rate * dur), skw,
                        {"builtin": "uac"})
        say(f"### {kind}")
        rows, best = ladder(f"calls {kind}", OPTS.call_rates, dur, make)
        for l in ladder_table(rows):
            say(l)
        say(f"  best clean rate: {f0(best)}/s")
        say("")
        out[kind] = {"rows": rows, "best": best}
    big = None
    if not OPTS.quick and out["sipstack"]["best"]:
        rate = out["sipstack"]["best"]
        n = max(100000, int(rate * 20))
        say(f"### {n:,} calls at {rate}/s against sipstack")
        big = step("sipstack", f"calls.big.{rate}", rate, n,
                   {"script": "rc_uas.lua"}, {"builtin": "uac"})
        say(f"  achieved {big['rate']:,.0f}/s, ok {big['success']:,}, failed "
            f"{big['failed']}, retrans {big['retrans']}, server CPU "
            f"{big['srv_us']:.1f} µs/call, "
            + ("clean" if big["clean"] else "NOT clean"))
        say("")
    out["big"] = big
    RESULTS["calls"] = out


# ------------------------------------------------------------------ #
# 3. held dialogs
# ------------------------------------------------------------------ #

def section_held():
    n = OPTS.held
    rate = OPTS.held_rate
    connect = n / rate
    hold_ms = int((connect + LINGER + 10) * 1000)
    say(f"## 3. Memory per held dialog: {n:,} calls held (sipp -sn uac "
        f"-d {hold_ms}), {rate}/s")
    srv = Server("sipstack", "held", script="rc_uas.lua")
    try:
        time.sleep(1.0)
        st0 = sip_stats(srv.port)
        rss0 = proc_status_kb(srv.pid, "VmRSS:")
        t0 = time.monotonic()
        cl = Client(srv.port, "held", rate, n, builtin="uac",
                    hold_ms=hold_ms, limit=n + 100)
        # wait until connected + 35 s
        time.sleep(max(0.0, connect + LINGER - (time.monotonic() - t0)))
        rss1 = proc_status_kb(srv.pid, "VmRSS:")
        st1 = sip_stats(srv.port)
        res = cl.wait()
        time.sleep(1.0)
        rss2 = proc_status_kb(srv.pid, "VmRSS:")
        st2 = sip_stats(srv.port)
        hwm = proc_status_kb(srv.pid, "VmHWM:")
    finally:
        srv.stop()
    held = st1.get("dialogs") or st1.get("calls") or n
    per_rss = (rss1 - rss0) * 1024 / n
    h0, h1 = st0.get("heap_bytes"), st1.get("heap_bytes")
    per_heap = (h1 - h0) / n if h0 is not None and h1 is not None else None
    l0, l1 = st0.get("lua_bytes"), st1.get("lua_bytes")
    per_lua = (l1 - l0) / n if l0 is not None and l1 is not None else None
    say(f"  sipp: ok {res['success']:,}, failed {res['failed']}, retrans "
        f"{res['retrans']}")
    say(f"  stats before: {st0}")
    say(f"  stats held:   {st1}")
    say(f"  stats after:  {st2}")
    say(f"  VmRSS before {rss0:,} KiB, held {rss1:,} KiB, after BYEs "
        f"{rss2:,} KiB, VmHWM {hwm:,} KiB")
    say(f"  (RSS_held - RSS_before) / N = {per_rss:,.0f} bytes per held dialog"
        + (f"; heap_bytes delta / N = {per_heap:,.0f}" if per_heap else "")
        + (f"; lua_bytes delta / N = {per_lua:,.0f}" if per_lua else ""))
    say("")
    RESULTS["held"] = {"n": n, "rate": rate, "rss0": rss0, "rss1": rss1,
                       "rss2": rss2, "per_rss": per_rss, "per_heap": per_heap,
                       "per_lua": per_lua, "st1": st1, "res": res,
                       "held": held}


# ------------------------------------------------------------------ #
# 4. callgrind
# ------------------------------------------------------------------ #

def annotate(path, top=15):
    r = subprocess.run(["callgrind_annotate", "--inclusive=no",
                        "--threshold=100", "--auto=no", path],
                       capture_output=True, text=True, timeout=120)
    lines = []
    started = False
    for line in r.stdout.splitlines():
        if re.match(r"^\s*Ir\s", line) or "file:function" in line:
            started = True
            continue
        if started and line.strip() and not line.startswith("-") \
                and "PROGRAM TOTALS" not in line \
                and not re.search(r"\((100\.0|99\.\d+)%\)|libc_start|"
                                  r"below main|:main \[|clone|start_thread|"
                                  r"ld-linux", line):
            lines.append(line.rstrip())
            if len(lines) >= top:
                break
    return lines


def cg_one(what, script, n, rate, client_kw, seed=None):
    tag = f"cg.{what}"
    srv = Server("sipstack", tag, script=script, callgrind=True,
                 seed_db=seed)
    try:
        time.sleep(1.0)
        srv.cg_dump("start")
        t0 = time.monotonic()
        time.sleep(OPTS.cg_idle)
        idle, _ = srv.cg_dump("idle")
        t_idle = time.monotonic() - t0
        t0 = time.monotonic()
        res = Client(srv.port, tag, rate, n, **client_kw).wait()
        load, path = srv.cg_dump("load")
        t_load = time.monotonic() - t0
    finally:
        srv.stop()
    per = (load - idle * t_load / t_idle) / max(1, res["success"])
    say(f"  {what}: {res['success']} ok ({res['failed']} failed, "
        f"{res['retrans']} retrans) at {rate}/s; Ir load {load:,} in "
        f"{t_load:.1f} s, idle {idle:,} in {t_idle:.1f} s -> "
        f"{per:,.0f} Ir per {what}")
    top = annotate(path)
    say(f"  top functions (self Ir, {os.path.basename(path)}):")
    for l in top:
        say("    " + l)
    say("")
    return {"per": per, "res": res, "top": top, "path": path}


def section_callgrind():
    say("## 4. callgrind: instructions per call and per REGISTER")
    out = {}
    n, rate = OPTS.cg_calls, OPTS.cg_rate
    out["call"] = cg_one("call", "rc_uas.lua", n, rate, {"builtin": "uac"})
    csv = os.path.join(OUT, "users_cg.csv")
    make_users_csv(csv, n, False)
    out["register"] = cg_one("register", "rc_registrar.lua", n, rate,
                             {"scenario": "rc_uac_register.xml", "inf": csv})
    RESULTS["callgrind"] = out


# ------------------------------------------------------------------ #

def summary():
    say("## Summary")
    rows = []
    reg = RESULTS.get("register")
    if reg:
        for auth in (False, True):
            s = reg[(auth, "sipstack")]
            c = reg[(auth, "sipp-uas")]
            ok = [r for r in s["rows"] if r["clean"]]
            dur = all(r.get("durable") for r in s["rows"] if r["success"])
            ratio = (f"{100 * s['best'] / c['best']:.0f}%"
                     if s["best"] and c["best"] else "-")
            rows.append([f"REGISTER/s durable, auth {'on' if auth else 'off'}",
                         f0(s["best"]), f0(c["best"]), ratio,
                         "20,000/s" if not auth else "-",
                         f"bindings == registered: {'yes' if dur else 'NO'}"
                         + (f"; {ok[-1]['srv_us']:.0f} µs CPU/reg" if ok else "")])
    calls = RESULTS.get("calls")
    if calls:
        s, c = calls["sipstack"], calls["sipp-uas"]
        ratio = (f"{100 * s['best'] / c['best']:.0f}%"
                 if s["best"] and c["best"] else "-")
        ok = [r for r in s["rows"] if r["clean"]]
        big = calls.get("big")
        extra = (f"{big['success']:,} calls at {big['target']}/s: "
                 f"{'clean' if big['clean'] else 'NOT clean'}" if big
                 else "no 100k run (quick)")
        rows.append(["calls/s (180 + 200 + ACK + BYE)", f0(s["best"]),
                     f0(c["best"]), ratio, ">= 80% of ceiling",
                     extra + (f"; {ok[-1]['srv_us']:.0f} µs CPU/call" if ok else "")])
    h = RESULTS.get("held")
    if h:
        rows.append([f"bytes per held dialog (RSS), N={h['n']:,}",
                     f0(h["per_rss"]), "-", "-", "<= 4,096",
                     f"heap {f0(h['per_heap'])} B, lua {f0(h['per_lua'])} B per dialog"])
    cg = RESULTS.get("callgrind")
    if cg:
        rows.append(["Ir per call (callgrind)", f0(cg["call"]["per"]), "-",
                     "-", "-", f"{cg['call']['res']['success']} calls"])
        rows.append(["Ir per REGISTER, auth off (callgrind)",
                     f0(cg["register"]["per"]), "-", "-", "-",
                     f"{cg['register']['res']['success']} REGISTERs"])
    for l in table(["figure", "sipstack", "sipp ceiling", "ratio", "target",
                    "notes"], rows):
        say(l)


def main():
    global OPTS, OUT, LOG
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", help="output directory (default: new /tmp dir)")
    ap.add_argument("--sections", default="1234")
    ap.add_argument("--sipstack", default=os.path.join(ROOT, "build", "sipstack"))
    ap.add_argument("--keep", action="store_true", help="keep step databases")
    ap.add_argument("--time-limit", type=int, default=None)
    ap.add_argument("--reg-rates", dest="reg_rates_arg", help="comma list, e.g. 2000,5000")
    ap.add_argument("--call-rates", dest="call_rates_arg", help="comma list, e.g. 1000,2000")
    ap.add_argument("--held", type=int, help="held dialogs N")
    OPTS = ap.parse_args()
    q = OPTS.quick
    OPTS.reg_rates = [2000, 5000, 10000, 15000, 20000, 25000]
    OPTS.reg_duration = 5.0
    OPTS.auth_users = 500 if q else 2000
    OPTS.call_rates = [1000, 2000, 3000, 4000, 5000, 6000]
    OPTS.call_duration = 5.0 if q else 10.0
    OPTS.held = OPTS.held or (20000 if q else 100000)
    if OPTS.reg_rates_arg:
        OPTS.reg_rates = [int(x) for x in OPTS.reg_rates_arg.split(",")]
    if OPTS.call_rates_arg:
        OPTS.call_rates = [int(x) for x in OPTS.call_rates_arg.split(",")]
    OPTS.held_rate = 2000
    OPTS.cg_calls, OPTS.cg_rate = (1000, 100) if q else (2000, 200)
    OPTS.cg_idle = 5.0 if q else 10.0
    OPTS.retry = not q
    limit = OPTS.time_limit or (900 if q else 2400)

    for t in ("sipp", "sqlite3", "valgrind", "callgrind_control"):
        if not shutil.which(t):
            sys.exit(f"reg_calls: {t} not found")
    if not os.access(OPTS.sipstack, os.X_OK):
        sys.exit(f"reg_calls: {OPTS.sipstack} not built (ninja -C build)")
    OUT = OPTS.out or tempfile.mkdtemp(prefix="sipstack-regcalls.")
    os.makedirs(OUT, exist_ok=True)
    LOG = open(os.path.join(OUT, "log.txt"), "a")
    bench.OUT, bench.LOG = OUT, LOG   # its spawn() logs and runs there
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGALRM):
        signal.signal(s, on_signal)
    signal.alarm(limit)
    # held dialogs: one UDP socket each side, but be safe with fds
    try:
        import resource
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError):
        pass
    say(f"# sipstack REGISTER, calls and held dialogs "
        f"({'quick' if q else 'full'}), "
        f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, "
        f"{os.cpu_count()} CPUs, output in {OUT}")
    say("")
    try:
        if "1" in OPTS.sections:
            section_register()
        if "2" in OPTS.sections:
            section_calls()
        if "3" in OPTS.sections:
            section_held()
        if "4" in OPTS.sections:
            section_callgrind()
        summary()
    finally:
        bench.cleanup()


if __name__ == "__main__":
    main()
