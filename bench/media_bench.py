#!/usr/bin/env python3
"""bench/media_bench.py: concurrent IVR media streams (issue 12, item 7)

    python3 bench/media_bench.py [--counts 250,500,1000] [--window 10]
                                 [--rate 200] [--realtime]
                                 [--sipstack build/sipstack]

Not a test: it prints figures. For each count N: a fresh sipstack runs
bench/scripts/media_ivr.lua (every call answered with
call:answer{media = true}, a 60 s prompt played in a loop); sipp places N
calls (rate --rate) whose SDP offers all name one RTP port of this
script, holds them, then hangs up. Once all N are up, for --window
seconds, every packet's arrival is taken from the kernel (SO_TIMESTAMPNS,
so the receiver's own scheduling does not count) and, per stream (SSRC):
lost packets (sequence gaps), packets received against those due (50
per stream-second: a sender behind time by more than 25 packets skips,
the timestamp jumps, nothing is lost but nothing came) and the
inter-arrival deviation |dt - 20 ms|;
the receiver's own socket overflows (SO_RXQ_OVFL) are counted apart.
sipstack's CPU over the window (all threads, and its media thread alone,
from /proc) gives the CPU per stream-second; VmRSS with N calls up minus
before the calls, per call, the memory of a call with its media session.

Everything on 127.0.0.1, free ports; children killed on exit.
"""
import argparse
import os
import socket
import struct
import subprocess
import sys
import tempfile
import time
import wave
import math
import signal

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SO_TIMESTAMPNS = 35
SO_RXQ_OVFL = 40
CHILDREN = []
HZ = os.sysconf("SC_CLK_TCK")


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def proc_ticks(pid, tid=None):
    path = "/proc/%d/task/%d/stat" % (pid, tid) if tid else \
        "/proc/%d/stat" % pid
    with open(path) as f:
        rest = f.read().rsplit(")", 1)[1].split()
    return int(rest[11]) + int(rest[12])     # utime + stime


def threads(pid):
    out = {}
    for tid in os.listdir("/proc/%d/task" % pid):
        with open("/proc/%d/task/%s/comm" % (pid, tid)) as f:
            out[int(tid)] = f.read().strip()
    return out


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def steal_ms():
    """Time the hypervisor ran someone else while this VM's CPUs wanted
    to run, all CPUs, since boot (/proc/stat's 8th cpu field)."""
    with open("/proc/stat") as f:
        fields = f.readline().split()
    return int(fields[8]) * 1000 / HZ


def server_stalls(path):
    """The media thread's own account at stop (engine.c: logged when it
    stalled): (longest gap between 1 ms ticks, stalls)."""
    gap, stalls = 0, 0
    with open(path, errors="replace") as f:
        for line in f:
            if "mod=media" in line and "ev=timing" in line:
                for kv in line.split():
                    if kv.startswith("tick_gap_max_ms="):
                        gap = int(kv.split("=")[1])
                    elif kv.startswith("stalls="):
                        stalls = int(kv.split("=")[1])
    return gap, stalls


def cleanup():
    for p in CHILDREN:
        if p.poll() is None:
            p.kill()


def run(args, n, tmp):
    port = free_port()
    sip_port = free_port()
    srv = subprocess.Popen(
        [args.sipstack, "--listen", "udp:127.0.0.1:%d" % sip_port,
         os.path.join(ROOT, "bench", "scripts", "media_ivr_rt.lua"
                      if args.realtime else "media_ivr.lua")],
        cwd=tmp, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=open(os.path.join(tmp, "server-%d.log" % n), "wb"))
    CHILDREN.append(srv)
    time.sleep(1.0)
    rss0 = rss_kb(srv.pid)
    ramp = n / args.rate
    warm = ramp + 2.0
    hold_ms = int((warm + args.window + 3) * 1000)
    rcv = subprocess.Popen([args.rtprecv, str(port), str(warm),
                            str(args.window)], stdout=subprocess.PIPE,
                           stdin=subprocess.DEVNULL, text=True)
    CHILDREN.append(rcv)
    sp = subprocess.Popen(
        ["sipp", "127.0.0.1:%d" % sip_port, "-sf",
         os.path.join(ROOT, "bench", "scenarios", "uac_media.xml"),
         "-i", "127.0.0.1", "-p", str(free_port()), "-mp",
         str(free_port()), "-cp", str(free_port()),
         "-set", "rport", str(port), "-d", str(hold_ms),
         "-r", str(args.rate), "-l", str(n), "-m", str(n), "-nostdin",
         "-timeout", "%ds" % int(hold_ms / 1000 + 30),
         "-timeout_error", "-buff_size", "4194304",
         "-trace_err", "-error_file", os.path.join(tmp, "sipp-%d.err" % n)],
        cwd=tmp, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)
    CHILDREN.append(sp)

    # the window of the receiver: CPU and memory over the same seconds
    time.sleep(warm)
    load0 = os.getloadavg()[0]
    rss1 = rss_kb(srv.pid)
    ths = threads(srv.pid)
    c0 = proc_ticks(srv.pid)
    t0 = {t: proc_ticks(srv.pid, t) for t in ths}
    st0 = steal_ms()
    time.sleep(args.window)
    st1 = steal_ms()
    c1 = proc_ticks(srv.pid)
    t1 = {t: proc_ticks(srv.pid, t) for t in ths}
    out = rcv.communicate(timeout=30)[0]
    sp.wait(hold_ms / 1000 + 30)
    srv.send_signal(signal.SIGTERM)
    srv.wait(10)

    r = dict(kv.split("=") for kv in out.split())
    r = {k: float(v) for k, v in r.items()}
    cpu = (c1 - c0) / HZ
    per_thread = {ths[t]: (t1[t] - t0[t]) / HZ for t in ths}
    r.update({"n": n, "cpu": cpu / args.window,
              "media_cpu": per_thread.get("sipstack-media", 0) /
              args.window,
              "us_per_stream_s": cpu / (n * args.window) * 1e6,
              "rss_per_call_kb": (rss1 - rss0) / n, "load": load0,
              "sipp_rc": sp.returncode, "threads": per_thread,
              "steal_ms": st1 - st0,
              "stalls": server_stalls(os.path.join(tmp,
                                                   "server-%d.log" % n))})
    return r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--counts", default="250,500,1000")
    ap.add_argument("--window", type=float, default=10)
    ap.add_argument("--rate", type=int, default=200)
    ap.add_argument("--sipstack", default=os.path.join(ROOT, "build",
                                                       "sipstack"))
    ap.add_argument("--realtime", action="store_true",
                    help="media thread at SCHED_FIFO (media_ivr_rt.lua)")
    ap.add_argument("--rtprecv", default=os.path.join(ROOT, "build",
                                                      "bench", "rtprecv"))
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="media-bench-")
    rate = 8000
    samples = [int(8000 * math.sin(2 * math.pi * 1000 * i / rate))
               for i in range(60 * rate)]
    with wave.open(os.path.join(tmp, "long.wav"), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(struct.pack("<%dh" % len(samples), *samples))
    print("# files in", tmp)
    print("| streams | seen | received/due | lost/expected | receiver "
          "overflows | "
          "dev p50 | p99 | p99.9 | max (ms) | sipstack CPU | media thread "
          "| us CPU per stream-s | RSS per call (KB) | load avg | sipp |")
    print("|" + "---:|" * 15)
    try:
        for n in [int(x) for x in args.counts.split(",")]:
            r = run(args, n, tmp)
            print("| %d | %d | %d/%d | %d/%d | %d | %.2f | %.2f | %.2f | "
                  "%.1f | %.0f%% | %.0f%% | %.1f | %.1f | %.1f | %s |" % (
                      n, r["streams"], r["packets"],
                      n * args.window * 50, r["lost"], r["expected"],
                      r["ovfl"],
                      r["p50"], r["p99"], r["p999"], r["max"],
                      100 * r["cpu"], 100 * r["media_cpu"],
                      r["us_per_stream_s"], r["rss_per_call_kb"],
                      r["load"], r["sipp_rc"]))
            print("#   threads (CPU s over the window):", r["threads"])
            print("#   hypervisor steal over the window: %.0f ms (all "
                  "CPUs); media thread at stop: longest tick gap %d ms, "
                  "%d stalls" % ((r["steal_ms"],) + r["stalls"]))
            sys.stdout.flush()
    finally:
        cleanup()


if __name__ == "__main__":
    main()
