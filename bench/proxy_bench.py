#!/usr/bin/env python3
"""bench/proxy_bench.py: proxied calls, sipstack beside Kamailio (issue 11).

    python3 bench/proxy_bench.py [--quick] [--out DIR] [--only ladder,cg]
                                 [--rates 500,1000,...] [--step S]
                                 [--kam-children N] [--pin]
                                 [--cpu-quota F]

Not a test: it prints figures, and a Markdown section (OUT/summary.md).
Three proxies, measured in the same run with the same sipp scenarios
(test/proxy/uac-call.xml -> proxy -> test/proxy/uas-answer.xml: INVITE,
100, 180, 200 after 600 ms, ACK, BYE after 300 ms, 200; the proxy
record-routes, so the ACK and the BYE go through it):

  sipstack       build/sipstack, a Lua route script: every INVITE ->
                 req:proxy{targets = {UAS}, record_route = true}; the
                 ACK and the BYE forwarded by the proxy core
  kamailio       Kamailio's native configuration language: maxfwd,
                 loose_route() + t_relay() in dialog, record_route(),
                 $ru = UAS, t_relay()
  kamailio-lua   the same routing in a KEMI Lua script (app_lua,
                 cfgengine "lua")

Sections:

  1. ladder: calls/s at rising rates, a fresh proxy and a fresh sipp
     UAS per step, the three proxies in turn at each rate (the order
     rotates from rate to rate). Clean: 0 failed calls (caller and
     callee), every call successful, achieved >= 95% of the target.
     A proxy leaves the ladder at its first step that is not clean (full
     mode: after one retry when the failure was small or the machine
     busy). The figure is the highest clean rate.
     With --pin the proxy runs on CPU 0 and both sipps on CPU 1; with
     --cpu-quota F (root: a cgroup CFS quota, 10-ms periods) the
     proxy's processes, Kamailio's workers included, share F of a CPU,
     so that the proxy, not sipp, is the limit (sipp and the proxy
     otherwise share both cores and sipp decides the top rate).
  2. callgrind: each proxy under valgrind --tool=callgrind
     --trace-children=yes, twice at once: one copy gets N calls at R/s
     and, after the last call, 33.5 s (sipstack keeps completed
     transactions for Timer J, 32 s; Kamailio's wait timer is 5 s), the
     other copy stays idle for exactly the same time. Both are stopped
     together; Ir summed over every callgrind.out file (Kamailio's
     forked processes, sipstack's threads in its one file); Ir per call
     = (load - idle) / successful calls. callgrind_annotate of
     sipstack's load run: the top functions by self cost.

Kamailio (Debian's kamailio and kamailio-lua-modules, 5.6) is installed
with apt-get when missing. It runs in the foreground (-DD -E), with the
tlsf allocator (-x tlsf), -n 2 UDP workers (the box has 2 cores, shared
with both sipp processes), 4 GiB of shared memory (-m 4096: with 1 GiB its tm
ran out of shared memory at 8,000 calls/s), UDP only,
maxbuffer = net.core.rmem_max (the largest receive buffer it can get;
sipstack takes 32 MiB with SO_RCVBUFFORCE as root).
Its configuration files are written into the output directory, as is
sipstack's route script.

Only 127.0.0.1 and free ports are used; every child process is tracked
and killed on exit (also on SIGINT/SIGTERM and at the time limit).
"""

import argparse
import datetime
import glob
import json
import os
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
from bench import free_ports, spawn, reap, stop, table  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCEN = os.path.join(ROOT, "test", "proxy")
UAC_XML = os.path.join(SCEN, "uac-call.xml")
UAS_XML = os.path.join(SCEN, "uas-answer.xml")
HZ = os.sysconf("SC_CLK_TCK")
SCENARIO_PAUSES = 0.9   # uas-answer.xml: 600 ms to the 200; uac-call.xml: 300 ms to the BYE
TAIL = 33.5             # > Timer J (32 s): every transaction freed
KAM_MODULES = "/usr/lib/x86_64-linux-gnu/kamailio/modules"
KINDS = ("sipstack", "kamailio", "kamailio-lua")

OPTS = None
OUT = None
LOG = None
SUMMARY = None
RESULTS = {}


def say(msg=""):
    print(msg, flush=True)
    for f in (SUMMARY, LOG):
        if f:
            f.write(msg + "\n")
            f.flush()


def note(msg):
    if LOG:
        LOG.write(msg + "\n")
        LOG.flush()


def f0(x):
    return "-" if x is None else f"{x:,.0f}"


def on_signal(signum, frame):
    bench.cleanup()
    sys.stderr.write("proxy_bench: "
                     + ("time limit" if signum == signal.SIGALRM
                        else f"signal {signum}") + ": children killed\n")
    os._exit(128 + signum)


# ------------------------------------------------------------------ #
# Kamailio: installed here when missing
# ------------------------------------------------------------------ #

def ensure_kamailio():
    need = []
    if not shutil.which("kamailio"):
        need.append("kamailio")
    if not os.path.exists(os.path.join(KAM_MODULES, "app_lua.so")):
        need.append("kamailio-lua-modules")
    if need:
        say(f"installing {' '.join(need)} with apt-get")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        r = subprocess.run(["apt-get", "install", "-y",
                            "--no-install-recommends"] + need,
                           capture_output=True, text=True, env=env,
                           timeout=600)
        note(r.stdout + r.stderr)
        if r.returncode != 0:
            sys.exit("proxy_bench: apt-get install failed (see log.txt)")
    r = subprocess.run(["kamailio", "-v"], capture_output=True, text=True)
    ver = r.stdout.splitlines()[0] if r.stdout else "?"
    dpkg = subprocess.run(["dpkg-query", "-W", "-f",
                           "${Package} ${Version}\\n", "kamailio",
                           "kamailio-lua-modules"],
                          capture_output=True, text=True).stdout.strip()
    return ver, dpkg.replace("\n", ", ")


# ------------------------------------------------------------------ #
# the three routings (written into the output directory)
# ------------------------------------------------------------------ #

SIPSTACK_LUA = """\
-- proxy_bench: every INVITE to the one callee, record-routed; the ACK
-- and the BYE (in dialog, Route to us) are forwarded by the proxy core
sip.proxy.configure{{ record_route = true }}

local UAS = "{uas}"

sip.on_request(function(req)
  if req.method ~= "INVITE" then return end   -- OPTIONS probe: 200
  req:proxy{{ targets = {{ UAS }}, record_route = true }}
end)
"""

KAM_HEAD = """\
#!KAMAILIO
# proxy_bench: {what}
debug=0
log_stderror=yes
memdbg=5
memlog=5
children={children}
disable_tcp=yes
auto_aliases=no
dns=no
rev_dns=no
use_dns_cache=off
maxbuffer={maxbuffer}
listen=udp:127.0.0.1:{port}
mpath="{mpath}"

loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "rr.so"
loadmodule "pv.so"
loadmodule "maxfwd.so"
loadmodule "siputils.so"
loadmodule "textops.so"
"""

KAM_NATIVE = KAM_HEAD + """
request_route {{
    if (!mf_process_maxfwd_header("10")) {{
        sl_send_reply("483", "Too Many Hops");
        exit;
    }}
    if (has_totag()) {{
        if (loose_route()) {{
            t_relay();
            exit;
        }}
        if (is_method("ACK")) {{
            if (t_check_trans()) {{
                t_relay();
            }}
            exit;
        }}
        sl_send_reply("404", "Not here");
        exit;
    }}
    if (is_method("CANCEL")) {{
        if (t_check_trans()) {{
            t_relay();
        }}
        exit;
    }}
    if (is_method("OPTIONS") && $rU == $null) {{
        sl_send_reply("200", "OK");
        exit;
    }}
    if (is_method("INVITE")) {{
        record_route();
    }}
    $ru = "{uas}";
    if (!t_relay()) {{
        sl_reply_error();
    }}
    exit;
}}
"""

KAM_KEMI = KAM_HEAD + """
loadmodule "app_lua.so"
modparam("app_lua", "load", "{lua}")

cfgengine "lua"
"""

KAM_LUA = """\
-- proxy_bench: the routing of kamailio.cfg, in KEMI Lua
local UAS = "{uas}"

function ksr_request_route()
    if KSR.maxfwd.process_maxfwd(10) < 0 then
        KSR.sl.sl_send_reply(483, "Too Many Hops")
        return 1
    end
    if KSR.siputils.has_totag() > 0 then
        if KSR.rr.loose_route() > 0 then
            KSR.tm.t_relay()
            return 1
        end
        if KSR.is_ACK() then
            if KSR.tm.t_check_trans() > 0 then
                KSR.tm.t_relay()
            end
            return 1
        end
        KSR.sl.sl_send_reply(404, "Not here")
        return 1
    end
    if KSR.is_CANCEL() then
        if KSR.tm.t_check_trans() > 0 then
            KSR.tm.t_relay()
        end
        return 1
    end
    if KSR.is_OPTIONS() and KSR.pv.is_null("$rU") then
        KSR.sl.sl_send_reply(200, "OK")
        return 1
    end
    if KSR.is_INVITE() then
        KSR.rr.record_route()
    end
    KSR.pv.sets("$ru", UAS)
    if KSR.tm.t_relay() < 0 then
        KSR.sl.sl_reply_error()
    end
    return 1
end
"""


# ------------------------------------------------------------------ #
# processes
# ------------------------------------------------------------------ #

def probe(port, timeout, proc=None):
    """OPTIONS sip:127.0.0.1:port (no user: for the proxy itself) until
    a final response; True when one came."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    lport = s.getsockname()[1]
    s.settimeout(0.3)
    deadline = time.monotonic() + timeout
    n = 0
    try:
        while time.monotonic() < deadline:
            if proc is not None and done(proc):
                return False
            n += 1
            req = (f"OPTIONS sip:127.0.0.1:{port} SIP/2.0\r\n"
                   f"Via: SIP/2.0/UDP 127.0.0.1:{lport};rport;"
                   f"branch=z9hG4bK-pb-{os.getpid()}-{lport}-{n}\r\n"
                   "Max-Forwards: 70\r\n"
                   f"From: <sip:probe@127.0.0.1:{lport}>;tag=p{n}\r\n"
                   f"To: <sip:127.0.0.1:{port}>\r\n"
                   f"Call-ID: pb-{os.getpid()}-{lport}-{n}\r\n"
                   "CSeq: 1 OPTIONS\r\n"
                   "Content-Length: 0\r\n\r\n")
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


def done(p):
    """True once p has exited (reaped here, and no longer tracked):
    Popen.poll() would reap it behind bench.stop()'s back."""
    if p.pid not in bench.CHILDREN:
        return True
    try:
        pid, status, _ = os.wait4(p.pid, os.WNOHANG)
    except ChildProcessError:
        pid, status = p.pid, 0
    if pid == p.pid:
        p.returncode = os.waitstatus_to_exitcode(status)
        bench.CHILDREN.pop(p.pid, None)
        return True
    return False


def descendants(pid):
    """pid and every process below it (Kamailio's forked children)."""
    kids = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        kids.setdefault(ppid, []).append(int(d))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def tree_cpu(pids):
    """CPU seconds (utime+stime) of each pid still alive: {pid: s}."""
    out = {}
    for p in pids:
        try:
            with open(f"/proc/{p}/stat") as f:
                v = f.read().rsplit(")", 1)[1].split()
            out[p] = (int(v[11]) + int(v[12])) / HZ
        except (OSError, ValueError, IndexError):
            pass
    return out


def tree_rss_mb(pids):
    tot = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        tot += int(line.split()[1])
        except OSError:
            pass
    return tot / 1024.0


def rmem_max():
    """net.core.rmem_max: the largest UDP receive buffer a process gets
    without CAP_NET_ADMIN. Kamailio probes up to its maxbuffer (256 KiB
    by default); it is given this much. (sipstack asks for 32 MiB with
    SO_RCVBUFFORCE, which root gets: see BENCHMARKS.md.)"""
    try:
        with open("/proc/sys/net/core/rmem_max") as f:
            return int(f.read())
    except (OSError, ValueError):
        return 262144


def pin_proxy():
    """--pin: the proxy (Kamailio's processes too) on CPU 0"""
    return ["taskset", "-c", "0"] if OPTS.pin else []


def pin_sipp():
    """--pin: both sipp processes on CPU 1"""
    return ["taskset", "-c", "1"] if OPTS.pin else []


QUOTA_CG = None     # --cpu-quota: the cgroup's directory


def quota_cgroup():
    """--cpu-quota F: a cgroup whose processes together get F of one CPU
    (CFS bandwidth, 10 ms periods): the proxy, not the load generator,
    is then the limit. Needs root and the cgroup v1 cpu controller at
    /sys/fs/cgroup/cpu (or cgroup v2's cpu.max at /sys/fs/cgroup)."""
    global QUOTA_CG
    if QUOTA_CG:
        return QUOTA_CG
    period = 10000
    quota = max(1000, int(OPTS.cpu_quota * period))
    for root, v2 in (("/sys/fs/cgroup/cpu", False), ("/sys/fs/cgroup", True)):
        if not os.path.isdir(root):
            continue
        d = os.path.join(root, f"sipstack-proxybench-{os.getpid()}")
        try:
            os.makedirs(d, exist_ok=True)
            if v2:
                with open(os.path.join(d, "cpu.max"), "w") as f:
                    f.write(f"{quota} {period}")
            else:
                with open(os.path.join(d, "cpu.cfs_period_us"), "w") as f:
                    f.write(str(period))
                with open(os.path.join(d, "cpu.cfs_quota_us"), "w") as f:
                    f.write(str(quota))
        except OSError as e:
            try:
                os.rmdir(d)
            except OSError:
                pass
            say(f"  --cpu-quota: {d}: {e}")
            continue
        QUOTA_CG = d
        return d
    sys.exit("proxy_bench: --cpu-quota: no writable cgroup cpu controller")


def quota_wrap(argv):
    """argv joining the quota cgroup before it execs (so that Kamailio's
    forked workers are in it too)"""
    if not OPTS.cpu_quota:
        return argv
    procs = os.path.join(quota_cgroup(), "cgroup.procs")
    return ["sh", "-c", 'echo $$ > "$0" && exec "$@"', procs] + argv


def quota_remove():
    if QUOTA_CG:
        for _ in range(50):
            try:
                os.rmdir(QUOTA_CG)
                return
            except OSError:
                time.sleep(0.1)


class Uas:
    """sipp with test/proxy/uas-answer.xml on a free port."""

    def __init__(self, tag, calls):
        self.port = free_ports(10)
        self.stat = os.path.join(OUT, f"{tag}.uas.stat.csv")
        argv = pin_sipp() + [
                "sipp", "-sf", UAS_XML, "-i", "127.0.0.1",
                "-p", str(self.port), "-mp", str(self.port + 2),
                "-cp", str(self.port + 6), "-m", str(calls),
                "-buff_size", "4194304", "-nostdin",
                "-trace_stat", "-stf", self.stat, "-fd", "1"]
        self.proc = spawn(argv, f"uas:{tag}",
                          stderr=os.path.join(OUT, f"{tag}.uas.stderr"))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                s.bind(("127.0.0.1", self.port))
            except OSError:
                return
            finally:
                s.close()
            if done(self.proc):
                break
            time.sleep(0.05)
        raise RuntimeError(f"sipp UAS {tag} did not start")

    def uri(self):
        return f"sip:service@127.0.0.1:{self.port}"

    def finish(self, grace):
        """Let sipp end by itself (it has -m calls), else SIGUSR1 (ends
        when its calls end), else kill; the UAS's counters."""
        deadline = time.monotonic() + grace
        while not done(self.proc) and time.monotonic() < deadline:
            time.sleep(0.1)
        if not done(self.proc):
            try:
                os.kill(self.proc.pid, signal.SIGUSR1)
            except ProcessLookupError:
                pass
            t = time.monotonic() + 3
            while not done(self.proc) and time.monotonic() < t:
                time.sleep(0.1)
        stop(self.proc, grace=3)
        try:
            return bench.parse_stat(self.stat)
        except (OSError, IndexError, KeyError, ValueError,
                StopIteration) as e:
            note(f"{self.stat}: {e}")
            return {"success": 0, "failed": 0, "retrans": 0, "created": 0}


class Proxy:
    """One of the three proxies on a free port, routing to uas_uri;
    under callgrind (all processes) when cg_dir is given."""

    def __init__(self, kind, tag, uas_uri, cg_dir=None):
        self.kind = kind
        self.port = free_ports(1)
        self.dir = os.path.join(OUT, tag)
        os.makedirs(self.dir, exist_ok=True)
        err = os.path.join(self.dir, "stderr")
        if kind == "sipstack":
            script = os.path.join(self.dir, "route.lua")
            with open(script, "w") as f:
                f.write(SIPSTACK_LUA.format(uas=uas_uri))
            argv = [OPTS.sipstack, "--listen", f"udp:127.0.0.1:{self.port}",
                    "--log-level", "warn", script]
        else:
            cfg = os.path.join(self.dir, "kamailio.cfg")
            kw = {"port": self.port, "uas": uas_uri, "mpath": KAM_MODULES,
                  "children": OPTS.kam_children,
                  "maxbuffer": rmem_max(),
                  "what": "native routing" if kind == "kamailio"
                  else "KEMI Lua routing (route.lua)"}
            if kind == "kamailio":
                text = KAM_NATIVE.format(**kw)
            else:
                lua = os.path.join(self.dir, "route.lua")
                with open(lua, "w") as f:
                    f.write(KAM_LUA.format(uas=uas_uri))
                text = KAM_KEMI.format(lua=lua, **kw)
            with open(cfg, "w") as f:
                f.write(text)
            rundir = os.path.join(self.dir, "run")
            os.makedirs(rundir, exist_ok=True)
            argv = ["kamailio", "-f", cfg, "-DD", "-E", "-x", "tlsf",
                    "-m", str(OPTS.kam_shm), "-M", "16",
                    "-Y", rundir, "-w", self.dir]
        self.cg_dir = cg_dir
        if not cg_dir:
            argv = pin_proxy() + quota_wrap(argv)
        if cg_dir:
            os.makedirs(cg_dir, exist_ok=True)
            argv = ["valgrind", "--tool=callgrind", "--trace-children=yes",
                    "--compress-strings=no", "--compress-pos=no",
                    f"--callgrind-out-file={cg_dir}/callgrind.out.%p"] + argv
        self.argv = argv
        self.proc = spawn(argv, f"{kind}:{tag}", cwd=self.dir, stderr=err)
        self.pid = self.proc.pid
        self.stderr = err
        if not probe(self.port, 120 if cg_dir else 20, self.proc) \
                or done(self.proc):
            raise RuntimeError(f"{kind} {tag} did not answer on "
                               f"{self.port} (see {err})")

    def pids(self):
        return descendants(self.pid)

    def stop(self):
        stop(self.proc, grace=90 if self.cg_dir else 15)
        # Kamailio's children end with their main process; wait for
        # the stragglers (their callgrind files are written at exit)
        deadline = time.monotonic() + (60 if self.cg_dir else 5)
        while time.monotonic() < deadline:
            left = [p for p in descendants(self.pid) if p != self.pid]
            if not left:
                break
            time.sleep(0.2)


def start_uac(port, tag, rate, calls):
    st = os.path.join(OUT, f"{tag}.uac.stat.csv")
    base = free_ports(10)
    timeout = calls / rate + 40
    argv = pin_sipp() + ["sipp", f"127.0.0.1:{port}", "-sf", UAC_XML,
            "-i", "127.0.0.1", "-p", str(base), "-mp", str(base + 2),
            "-cp", str(base + 6), "-r", f"{rate:g}", "-rp", "1000",
            "-m", str(calls), "-l", str(max(1000, int(rate * 4))),
            "-recv_timeout", "10000",
            "-buff_size", "4194304", "-nostdin",
            "-timeout", f"{int(timeout)}s", "-timeout_error",
            "-trace_stat", "-stf", st, "-fd", "1"]
    p = spawn(argv, f"uac:{tag}",
              stderr=os.path.join(OUT, f"{tag}.uac.stderr"))
    p.stat = st
    p.timeout = timeout
    p.t0 = time.monotonic()
    return p


def wait_uac(p):
    cpu, rc = reap(p, p.timeout + 20)
    wall = time.monotonic() - p.t0
    try:
        st = bench.parse_stat(p.stat)
    except (OSError, IndexError, KeyError, ValueError, StopIteration) as e:
        note(f"{p.stat}: {e}")
        st = {"success": 0, "failed": 0, "retrans": 0, "created": 0,
              "elapsed": 0.0}
    st["rc"] = rc
    st["cpu"] = cpu
    st["wall"] = wall
    # sipp ends when its last call does: the calls were made over the
    # run less one call's length (the scenarios' pauses, 0.9 s)
    span = wall - SCENARIO_PAUSES
    st["rate"] = st["success"] / span if span > 0 else 0.0
    return st


# ------------------------------------------------------------------ #
# 1. ladder
# ------------------------------------------------------------------ #

def step(kind, rate, sfx=""):
    tag = f"ladder.{kind}.{rate}{sfx}"
    calls = int(rate * OPTS.step)
    uas = Uas(tag, calls)
    prx = None
    try:
        prx = Proxy(kind, tag, uas.uri())
        others0 = bench.wait_quiet(3.0, 0.3)
        pids = prx.pids()
        c0 = tree_cpu(pids)
        u0 = tree_cpu([uas.proc.pid])
        b0, w0 = bench.sys_busy()
        uac = start_uac(prx.port, tag, rate, calls)
        res = wait_uac(uac)
        b1, w1 = bench.sys_busy()
        c1 = tree_cpu(pids)
        u1 = tree_cpu([uas.proc.pid])
        rss = tree_rss_mb(pids)
        u = uas.finish(grace=3)
    finally:
        if prx:
            prx.stop()
        stop(uas.proc, grace=2)
    cpu = sum(c1.get(p, c0[p]) - c0[p] for p in c0)
    res.update(kind=kind, target=rate, calls=calls, prx_cpu=cpu,
               prx_us=cpu / max(1, res["success"]) * 1e6,
               prx_rss=rss, uas_failed=u["failed"],
               uas_success=u["success"], nproc=len(pids),
               others_before=others0)
    uas_cpu = sum(u1.get(p, u0[p]) - u0[p] for p in u0)
    res["uas_cpu"] = uas_cpu
    # the machine's busy time less ours (proxy, sipp uac, sipp uas)
    res["others"] = max(0.0, (b1 - b0 - cpu - res["cpu"] - uas_cpu)
                        / (w1 - w0)) if w1 > w0 else 0.0
    res["clean"] = (res["failed"] == 0 and res["uas_failed"] == 0 and
                    res["success"] == calls and res["rc"] == 0 and
                    res["rate"] >= 0.95 * rate)
    note(f"{tag}: {res}")
    return res


def section_ladder():
    say(f"## 1. Proxied calls/s: sipp uac -> proxy -> sipp uas, "
        f"{OPTS.step:g} s per step, rates {OPTS.rates}")
    say("")
    alive = list(OPTS.kinds)
    rows = {k: [] for k in OPTS.kinds}
    best = {k: None for k in OPTS.kinds}
    for i, rate in enumerate(OPTS.rates):
        if not alive:
            break
        order = alive[i % len(alive):] + alive[:i % len(alive)]
        for kind in order:
            r = step(kind, rate)
            if not r["clean"] and OPTS.retry and (
                    r["failed"] + r["uas_failed"] <
                    0.01 * max(1, r["calls"]) or r["others"] > 0.3):
                r2 = step(kind, rate, ".retry")
                r2["tries"] = 2
                r = r2 if r2["clean"] else r
            rows[kind].append(r)
            say(f"  {kind:>12} {rate:>5}/s: achieved {r['rate']:,.0f}/s, "
                f"ok {r['success']}/{r['calls']}, failed {r['failed']}"
                f"+{r['uas_failed']} (uac+uas), retrans {r['retrans']}, "
                f"proxy CPU {r['prx_us']:.0f} µs/call, others "
                f"{r['others']:.2f}" + (", clean" if r["clean"]
                                         else ", NOT clean"))
            if r["clean"]:
                best[kind] = rate
            else:
                alive.remove(kind)
    say("")
    hdr = ["proxy", "target/s", "tries", "achieved/s", "ok", "failed (uac+uas)",
           "retrans", "proxy CPU", "proxy µs/call", "proxy RSS MB",
           "others (cores)", "verdict"]
    tab = []
    for i, rate in enumerate(OPTS.rates):
        for kind in OPTS.kinds:
            r = next((x for x in rows[kind] if x["target"] == rate), None)
            if not r:
                continue
            tab.append([kind, f0(rate), r.get("tries", 1), f0(r["rate"]),
                        f0(r["success"]),
                        f"{r['failed']}+{r['uas_failed']}",
                        r["retrans"],
                        f"{100 * r['prx_cpu'] / max(0.001, r['wall']):.0f}%",
                        f"{r['prx_us']:.0f}", f"{r['prx_rss']:.0f}",
                        f"{r['others']:.2f}",
                        "clean" if r["clean"] else "fail"])
    for l in table(hdr, tab):
        say(l)
    say("")
    for kind in OPTS.kinds:
        say(f"  highest clean rate, {kind}: {f0(best[kind])}/s"
            + (" (the top of the ladder)" if best[kind] == OPTS.rates[-1]
               else ""))
    say("")
    RESULTS["ladder"] = {"rows": rows, "best": best}


# ------------------------------------------------------------------ #
# 2. callgrind
# ------------------------------------------------------------------ #

def cg_total(path):
    """Ir of one callgrind.out file (all its threads)."""
    tot = None
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(("totals:", "summary:")):
                    tot = int(line.split()[1])
    except OSError:
        return None
    return tot


def cg_sum(d):
    files = sorted(glob.glob(os.path.join(d, "callgrind.out.*")))
    per = {}
    for p in files:
        per[os.path.basename(p)] = cg_total(p)
    return sum(v for v in per.values() if v), per


def annotate_funcs(path, inclusive):
    """{function: Ir} of a callgrind file (callgrind_annotate, self or
    inclusive cost); the listing is kept beside the file."""
    r = subprocess.run(["callgrind_annotate", "--threshold=100",
                        f"--inclusive={'yes' if inclusive else 'no'}",
                        path], capture_output=True, text=True, timeout=300)
    with open(f"{path}.{'inclusive' if inclusive else 'self'}.txt",
              "w") as f:
        f.write(r.stdout)
    _, funcs = bench.annotate_lines(r.stdout)
    out = {}
    for ir, fn in funcs:
        if inclusive:
            out[fn] = max(out.get(fn, 0), ir)   # recursion: outermost
        else:
            out[fn] = out.get(fn, 0) + ir
    return out


def per_call_funcs(load, idle, inclusive, calls):
    """Ir per call of each function: the load run's minus the idle
    run's (startup, shutdown and the idle loop cancel out)."""
    a = annotate_funcs(load, inclusive)
    b = annotate_funcs(idle, inclusive)
    return {k: (a.get(k, 0) - b.get(k, 0)) / calls for k in set(a) | set(b)}


# what the inclusive table shows of sipstack: (label, function)
SIPSTACK_PARTS = [
    ("every datagram received (UDP batch, parse, dispatch)",
     "batch_handler (sipstack)"),
    ("the parser: sip_msg_decode (msgdecode.c, msgparse.c), 6 messages",
     "sip_msg_decode (sipstack)"),
    ("of which header decoders (fastparse.c: URI, name-addr, Via)",
     "hdr_add (sipstack)"),
    ("pattern matching left (re_regex, fastregex.c; all callers)",
     "re_regex (sipstack)"),
    ("requests after parsing (stack_request_handler)",
     "stack_request_handler (sipstack)"),
    ("the INVITE's Lua hook (task, coroutine, req:proxy)",
     "request_hook (sipstack)"),
    ("of which req:proxy (do_proxy: branch, INVITE sent)",
     "do_proxy (sipstack)"),
    ("ACK and BYE forwarded by the proxy core (nodlg_handler)",
     "nodlg_handler (sipstack)"),
    ("responses through the proxy transaction (pb_resp_h)",
     "pb_resp_h (sipstack)"),
    ("forwarded requests printed (fwd_request)", "fwd_request (sipstack)"),
    ("forwarded responses printed (fwd_response_extra)",
     "fwd_response_extra (sipstack)"),
    ("Route processing (fwd_route_prepare)",
     "fwd_route_prepare (sipstack)"),
    ("libre's sip_request (client transactions, Via, send)",
     "sip_request (libre.so)"),
    ("format printing (re_vhprintf, all callers)",
     "re_vhprintf (libre.so)"),
    ("timers (tmr_poll: retransmission and expiry timers)",
     "tmr_poll (sipstack)"),
    ("Lua: lua_resume (the hook's coroutine)",
     "lua_resume (libluajit-5.1.so)"),
]


def cg_one(kind):
    n, rate = OPTS.cg_calls, OPTS.cg_rate
    tag = f"cg.{kind}"
    uas = Uas(tag, n)
    load = idle = None
    t_load = None
    try:
        load = Proxy(kind, f"{tag}.load", uas.uri(),
                     cg_dir=os.path.join(OUT, f"{tag}.load", "cg"))
        idle = Proxy(kind, f"{tag}.idle", uas.uri(),
                     cg_dir=os.path.join(OUT, f"{tag}.idle", "cg"))
        time.sleep(1.0)
        t0 = time.monotonic()
        uac = start_uac(load.port, tag, rate, n)
        res = wait_uac(uac)
        t_load = time.monotonic() - t0
        time.sleep(TAIL)
        u = uas.finish(grace=1)
        nproc = (len(load.pids()), len(idle.pids()))
    finally:
        # both stopped together: the same length of run
        for p in (load, idle):
            if p:
                try:
                    os.kill(p.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for p in (load, idle):
            if p:
                p.stop()
        stop(uas.proc, grace=2)
    lsum, lper = cg_sum(load.cg_dir)
    isum, iper = cg_sum(idle.cg_dir)
    ok = max(1, res["success"])
    per = (lsum - isum) / ok
    say(f"  {kind}: {res['success']}/{n} calls ok ({res['failed']}+"
        f"{u['failed']} failed, {res['retrans']} retrans) at {rate}/s, "
        f"{t_load:.1f} s + {TAIL} s; {nproc[0]} processes, "
        f"{len(lper)} callgrind files; Ir load {lsum:,}, idle {isum:,} "
        f"-> {per:,.0f} Ir per call")
    note(f"  {kind} load files: {lper}")
    note(f"  {kind} idle files: {iper}")
    out = {"per": per, "load": lsum, "idle": isum, "res": res,
           "uas_failed": u["failed"], "files_load": lper,
           "files_idle": iper, "nproc": nproc[0]}
    if kind == "sipstack":
        lpath = os.path.join(load.cg_dir, max(lper, key=lambda k: lper[k] or 0))
        ipath = os.path.join(idle.cg_dir, max(iper, key=lambda k: iper[k] or 0))
        out["file"] = lpath
        selfc = per_call_funcs(lpath, ipath, False, ok)
        out["top"] = sorted(selfc.items(), key=lambda x: -x[1])[:OPTS.top]
        incl = per_call_funcs(lpath, ipath, True, ok)
        out["parts"] = [(label, incl.get(fn)) for label, fn in SIPSTACK_PARTS]
    else:
        # Kamailio: where the instructions go by process (the load
        # run's files minus the idle run's, largest first)
        lv = sorted((v or 0 for v in lper.values()), reverse=True)
        iv = sorted((v or 0 for v in iper.values()), reverse=True)
        out["by_proc"] = [(a - (iv[i] if i < len(iv) else 0))
                          for i, a in enumerate(lv)]
    return out


def section_callgrind():
    say(f"## 2. Instructions per proxied call (callgrind, all processes): "
        f"{OPTS.cg_calls:,} calls at {OPTS.cg_rate}/s, then {TAIL} s; "
        f"minus an idle copy run alongside for the same time")
    say("")
    out = {}
    for kind in OPTS.kinds:
        out[kind] = cg_one(kind)
    say("")
    s = out.get("sipstack")
    if s:
        say(f"### sipstack: where the instructions of a proxied call go "
            f"(load run minus idle run, per successful call)")
        say("")
        say("Top functions by self cost:")
        say("")
        rows = [[fn, f"{100 * v / s['per']:.1f}%", f0(v)]
                for fn, v in s["top"]]
        for l in table(["function (self)", "share", "Ir/call"], rows):
            say(l)
        say("")
        say("Inclusive cost of the parts:")
        say("")
        rows = [[label, fn.split(" ")[0], "-" if v is None else
                 f"{100 * v / s['per']:.1f}%", f0(v)]
                for (label, v), (_, fn) in zip(s["parts"], SIPSTACK_PARTS)]
        for l in table(["part", "function (inclusive)", "share", "Ir/call"],
                       rows):
            say(l)
        say("")
    RESULTS["callgrind"] = out


# ------------------------------------------------------------------ #

def summary(versions):
    say("## Summary")
    say("")
    lad = RESULTS.get("ladder")
    cg = RESULTS.get("callgrind")
    rows = []
    for kind in OPTS.kinds:
        best = lad["best"][kind] if lad else None
        okrow = None
        if lad:
            okrow = next((r for r in lad["rows"][kind]
                          if r["target"] == best), None)
        rows.append([kind, f0(best),
                     f0(okrow["rate"]) if okrow else "-",
                     f"{okrow['prx_us']:.0f}" if okrow else "-",
                     f0(cg[kind]["per"]) if cg and kind in cg else "-"])
    for l in table(["proxy", "highest clean calls/s", "achieved/s",
                    "proxy µs CPU/call there", "Ir per proxied call"],
                   rows):
        say(l)
    say("")
    if lad and "sipstack" in lad["best"]:
        s = lad["best"]["sipstack"]
        for k in [k for k in OPTS.kinds if k != "sipstack"]:
            b = lad["best"][k]
            if s and b:
                say(f"  clean rate sipstack / {k}: {s / b:.2f}x "
                    f"(target >= 1.2x: {'met' if s >= 1.2 * b else 'NOT met'})")
            else:
                say(f"  clean rate sipstack / {k}: -")
    if cg and "sipstack" in cg:
        p = cg["sipstack"]["per"]
        say(f"  Ir per proxied call, sipstack with Lua routing: {p:,.0f} "
            f"(target <= 150,000: "
            + ("met" if p <= 150000 else
               f"NOT met, {p - 150000:,.0f} over ({p / 150000:.2f}x)") + ")")
        for k in [k for k in OPTS.kinds if k != "sipstack"]:
            say(f"  Ir per proxied call, {k}: {cg[k]['per']:,.0f} "
                f"(sipstack / {k}: {p / cg[k]['per']:.2f})")
    say("")
    say(f"  {versions[0]}; {versions[1]}; flags -DD -E -x tlsf -n/children "
        f"{OPTS.kam_children} -m {OPTS.kam_shm} -M 16, UDP only")


def jsonable(o):
    if isinstance(o, dict):
        return {str(k): jsonable(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [jsonable(v) for v in o]
    if isinstance(o, (int, float, str, bool)) or o is None:
        return o
    return str(o)


def main():
    global OPTS, OUT, LOG, SUMMARY
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="3-s steps, fewer rates, 500 calls under callgrind")
    ap.add_argument("--out", help="output directory (default: new /tmp dir)")
    ap.add_argument("--only", default="ladder,cg")
    ap.add_argument("--sipstack",
                    default=os.path.join(ROOT, "build", "sipstack"))
    ap.add_argument("--rates", help="comma list of calls/s")
    ap.add_argument("--step", type=float, help="seconds per ladder step")
    ap.add_argument("--cg-calls", type=int)
    ap.add_argument("--cg-rate", type=int, default=100)
    ap.add_argument("--kam-children", type=int, default=2,
                    help="Kamailio UDP worker processes (-n, children=)")
    ap.add_argument("--kam-shm", type=int, default=4096,
                    help="Kamailio shared memory, MiB (-m)")
    ap.add_argument("--top", type=int, default=20)
    ap.add_argument("--kinds", default=",".join(KINDS),
                    help="proxies to measure (default: all three)")
    ap.add_argument("--time-limit", type=int)
    ap.add_argument("--cpu-quota", type=float, default=0.0,
                    help="ladder: the proxy's processes together get this "
                    "fraction of one CPU (cgroup CFS quota), e.g. 0.5")
    ap.add_argument("--pin", action="store_true",
                    help="ladder: the proxy on CPU 0, both sipps on CPU 1 "
                    "(one core each, instead of all sharing both)")
    OPTS = ap.parse_args()
    q = OPTS.quick
    OPTS.rates = ([int(x) for x in OPTS.rates.split(",")] if OPTS.rates
                  else [2000, 4000, 6000, 8000] if q
                  else [1000, 2000, 3000, 4000, 5000, 6000, 7000, 8000,
                        9000, 10000, 12000])
    OPTS.step = OPTS.step or (3.0 if q else 5.0)
    OPTS.cg_calls = OPTS.cg_calls or (500 if q else 1000)
    OPTS.retry = not q
    limit = OPTS.time_limit or (300 if q else 1080)
    only = OPTS.only.split(",")
    OPTS.kinds = [k for k in OPTS.kinds.split(",") if k]
    if any(k not in KINDS for k in OPTS.kinds):
        sys.exit(f"proxy_bench: --kinds: one of {', '.join(KINDS)}")

    for t in ("sipp", "valgrind", "callgrind_annotate"):
        if not shutil.which(t):
            sys.exit(f"proxy_bench: {t} not found")
    if not os.access(OPTS.sipstack, os.X_OK):
        sys.exit(f"proxy_bench: {OPTS.sipstack} not built (ninja -C build)")
    OUT = OPTS.out or tempfile.mkdtemp(prefix="sipstack-proxybench.")
    os.makedirs(OUT, exist_ok=True)
    LOG = open(os.path.join(OUT, "log.txt"), "a")
    bench.OUT, bench.LOG = OUT, LOG
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGALRM):
        signal.signal(s, on_signal)
    signal.alarm(limit)
    t_start = time.monotonic()
    versions = (ensure_kamailio()
                if any(k.startswith("kamailio") for k in OPTS.kinds)
                else ("kamailio not used", "-"))
    # one binary for the whole run, whatever happens to build/ meanwhile
    copy = os.path.join(OUT, "sipstack")
    shutil.copy2(OPTS.sipstack, copy)
    OPTS.sipstack = copy
    SUMMARY = open(os.path.join(OUT, "summary.md"), "w")
    with open("/proc/loadavg") as f:
        la = f.read().split()[:3]
    say(f"# Proxied calls: sipstack beside Kamailio "
        f"({'quick' if q else 'full'}), "
        f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, "
        f"{os.cpu_count()} CPUs, load average {' '.join(la)}"
        + (", ladder pinned: proxy on CPU 0, sipp UAC and UAS on CPU 1"
           if OPTS.pin else "")
        + (f", proxy limited to {OPTS.cpu_quota:g} of a CPU (cgroup quota)"
           if OPTS.cpu_quota else ""))
    say(f"  {versions[0]} ({versions[1]}); sipp "
        + subprocess.run(["sipp", "-v"], capture_output=True,
                         text=True).stdout.strip().splitlines()[0]
        .strip().split(" ")[1] + f"; output in {OUT}")
    say("")
    try:
        if "ladder" in only:
            section_ladder()
        if "cg" in only:
            section_callgrind()
        summary(versions)
    finally:
        bench.cleanup()
        quota_remove()
        with open(os.path.join(OUT, "results.json"), "w") as f:
            json.dump(jsonable(RESULTS), f, indent=1)
    say(f"\n(total {time.monotonic() - t_start:.0f} s)")


if __name__ == "__main__":
    main()
