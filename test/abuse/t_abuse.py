#!/usr/bin/env python3
"""Abuse protection (issue 13, item 5): the per-source rate limiter and
the scanners' User-Agents, against test/abuse/abuse.lua (its
sip.configure{} filled in per case). 127.0.0.1 is the attacker;
127.0.0.2 and 127.0.0.3, other loopback addresses, stand for other
hosts. One group per run (--case):

  flood    rate 200/s, burst 400, nothing trusted. flood.py (a process
           of its own) sends 50,000 datagrams/s for 5 s from 127.0.0.1,
           half garbage, half valid INVITEs (each a new call, which the
           script answers); meanwhile sipp places 20 calls at 10/s from
           127.0.0.2 (uac-answer.xml: INVITE, 200, ACK, BYE) and OPTIONS
           go from 127.0.0.2 every 20 ms. (With rate_limit = false the
           same flood takes a whole core and OPTIONS are lost or take
           hundreds of ms: this test fails.)
           Asserted: the flood ran at 10,000/s at least (the rate
           reached is printed); 0 failed calls; every OPTIONS answered,
           the 95th percentile of their times under 50 ms (median and
           max printed); at most 400 + 200/s of the flood's requests
           reached the stack, the limiter dropped the rest before libre
           (limited_dropped); one ev=rate_limit line for 127.0.0.1 and,
           after the flood, one ev=rate_limit_end with dropped=N; none
           for 127.0.0.2; a short log.
  limit    rate 50/s, burst 20, 127.0.0.3 and 10.0.0.0/8 trusted; over
           --transport udp (with or without --no-udp-batch) or tcp: 100
           OPTIONS at once from 127.0.0.1 get 20 (to 22) answers, the
           rest nothing; from 127.0.0.2 the same, in a bucket of its own;
           from the trusted 127.0.0.3 all 100; 0.5 s later 127.0.0.1 is
           answered again; the episodes logged and summarised.
  503      the same with action "503", retry_after 7: each burst of 100
           gets 20 (to 22) 200s and exactly one `503 Service Unavailable`
           with `Retry-After: 7` (one per source per second at most), the
           rest nothing; a second burst 1.1 s later, the same.
  scanner  drop_user_agents = {"friendly-scanner", "sipvicious", ...}
           (the documented one-liner): OPTIONS, REGISTER, INVITE and
           MESSAGE with User-Agent friendly-scanner (or SIPVicious/0.3,
           any case) get no answer, the same with another User-Agent
           are answered; svwar (Debian's sipvicious) by OPTIONS, REGISTER
           and INVITE finds nothing; ua_dropped counts them; ev=ua_dropped
           flood-limited.
  reload   rate_limit = false: nothing limited; the script rewritten to
           a limit, SIGHUP: limited; rewritten with rate = 0: the reload
           is refused naming the key and the line, the limit stays;
           rewritten to trust 127.0.0.1: not limited, the other values
           kept. A server whose script has a bad prefix does not start,
           saying which entry and why.
"""
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import time

sys.dont_write_bytecode = True   # no __pycache__ in the source tree
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "sipp"))
import harness  # noqa: E402

LOCAL = harness.LOCAL    # the attacker
OTHER = "127.0.0.2"      # another host
TRUSTED = "127.0.0.3"    # a trusted one (limit, 503)
CALL_XML = os.path.join(os.path.dirname(HERE), "calls", "uac-answer.xml")
SCANNERS = ('"friendly-scanner", "sipvicious", "sipcli", '
            '"VaxSIPUserAgent"')


def args(ap):
    ap.add_argument("--case", required=True, choices=[
        "flood", "limit", "503", "scanner", "reload"])
    ap.add_argument("--transport", choices=["udp", "tcp"], default="udp")
    ap.add_argument("--no-batch", action="store_true",
                    help="the server runs with --no-udp-batch")
    ap.add_argument("--svwar", default="svwar")


def write_script(h, config, name="abuse.lua"):
    with open(os.path.join(HERE, "abuse.lua"), encoding="utf-8") as f:
        text = f.read().replace("@CONFIG@", config)
    path = os.path.join(h.tmp, name)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return path


def ask(srv, what, bind=OTHER):
    """The script's answer to MESSAGE what ("stats", "config"): a dict"""
    cl = harness.UdpClient(srv.port, bind=bind)
    try:
        r = cl.request("MESSAGE", ctype="text/plain", body=what)
    finally:
        cl.close()
    if r is None or r.code != 200:
        return {}
    return dict(l.split("=", 1) for l in r.body.decode().splitlines()
                if "=" in l)


def burst_udp(port, bind, n=100, method="OPTIONS", extra=(), wait=1.0):
    """n requests at once from bind; the status codes of the answers
    (one per request at most) and the 503s' Retry-After values"""
    cl = harness.UdpClient(port, bind=bind)
    try:
        for _ in range(n):
            cl.send(method, extra=extra)
        codes, retry = [], []
        while True:
            r = cl.recv(timeout=wait)
            if r is None:
                break
            codes.append(r.code)
            if r.code == 503:
                retry.append(r.header("Retry-After"))
        return codes, retry
    finally:
        cl.close()


def burst_tcp(port, bind, n=100, wait=1.0):
    """As burst_udp, over one TCP connection"""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind((bind, 0))
        s.connect((LOCAL, port))
        lport = s.getsockname()[1]
        cl = harness.UdpClient(port, bind=bind)
        cl.close()
        cl.port = lport
        data = b""
        for i in range(n):
            req, _ = cl.build("OPTIONS")
            data += req.replace(b"SIP/2.0/UDP", b"SIP/2.0/TCP")
        s.sendall(data)
        got = b""
        s.settimeout(wait)
        while True:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            if not chunk:
                break
            got += chunk
        codes = [int(c) for c in re.findall(rb"(?m)^SIP/2\.0 (\d{3}) ",
                                            got)]
        return codes, []
    finally:
        s.close()


def cpu_s(pid):
    """utime + stime of pid so far, seconds"""
    try:
        with open("/proc/%d/stat" % pid) as f:
            st = f.read().rsplit(")", 1)[1].split()
        return (int(st[11]) + int(st[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100.0 * len(xs)))]


def episodes(srv, ev, src):
    return srv.find({"ev": ev, "src": src})


# ---------------------------------------------------------------------

def flood(h, a):
    rate, burst, seconds = 200, 400, 5.0
    script = write_script(h, "rate_limit = { rate = %d, burst = %d, "
                          "trusted = {} }" % (rate, burst))
    srv = h.server(script)

    pr = harness.OptionsProber(srv.port, bind=OTHER).start()
    lat = pr.lat
    time.sleep(0.3)
    cpu0 = cpu_s(srv.proc.pid)
    fl = h.spawn([sys.executable, os.path.join(HERE, "flood.py"),
                  "--port", str(srv.port), "--bind", LOCAL,
                  "--rate", "50000", "--seconds", str(seconds)],
                 stdout=subprocess.PIPE)
    time.sleep(0.5)
    sp = h.sipp(CALL_XML, srv, calls=20, rate=10, timeout=20, local=OTHER)
    try:
        out, _ = fl.communicate(timeout=seconds + 15)
        cpu = cpu_s(srv.proc.pid) - cpu0
    finally:
        time.sleep(0.3)
        pr.stop()
    h.sipp_ok(sp, "20 calls at 10/s from 127.0.0.2 during the flood, "
              "0 failed")

    try:
        res = json.loads(out.decode().strip().splitlines()[-1])
    except (ValueError, IndexError):
        res = {"sent": 0, "seconds": seconds, "rate": 0}
    h.note("flood from 127.0.0.1: %d datagrams in %.2f s = %d/s (asked "
           "50,000/s)" % (res["sent"], res["seconds"], res["rate"]))
    h.ok(res["rate"] >= 10000, "the flood ran at 10,000 datagrams/s at "
         "least (%d/s)" % res["rate"])
    h.note("server CPU meanwhile: %.2f s in %.2f s (%.0f%% of a core; "
           "the calls, the probes and the flood)" % (
               cpu, res["seconds"], 100 * cpu / max(res["seconds"], 0.1)))

    if lat:
        h.note("OPTIONS from 127.0.0.2: %d answered, %d not; median "
               "%.1f ms, p95 %.1f ms, max %.1f ms" % (
                   len(lat), pr.lost, 1000 * statistics.median(lat),
                   1000 * pct(lat, 95), 1000 * max(lat)))
    h.ok(lat and pr.lost == 0, "every OPTIONS from 127.0.0.2 answered "
         "during the flood (%d, %d not)" % (len(lat), pr.lost))
    h.ok(lat and pct(lat, 95) < 0.050, "OPTIONS answered within 50 ms "
         "(95th percentile) during the flood")

    st = ask(srv, "stats")
    h.note("server counters: %s" % " ".join("%s=%s" % kv
                                            for kv in sorted(st.items())))
    # what reached the stack besides sipp's 60 requests (and their
    # retransmissions), the probes and this MESSAGE
    legit = 60 + len(lat) + pr.lost + 1
    extra = int(st.get("requests", 10 ** 9)) - legit
    bound = burst + rate * (res["seconds"] + 1) + 30
    h.ok(extra <= bound, "at most burst + rate of the flood reached the "
         "stack: %d requests (bound %d)" % (extra, bound))
    dropped = int(st.get("limited_dropped", 0))
    h.note("let through: %d datagrams of the flood (burst %d + %d/s x "
           "%.1f s = %d; fewer if the kernel dropped some)" % (
               res["sent"] - dropped, burst, rate, res["seconds"],
               burst + rate * res["seconds"]))
    h.ok(dropped >= res["sent"] // 2, "the limiter dropped the flood "
         "before libre: %d of %d datagrams" % (dropped, res["sent"]))
    h.ok(st.get("limited_sources") == "1", "one source went over "
         "(limited_sources=1)")

    end = srv.wait_for({"ev": "rate_limit_end", "src": LOCAL}, 8.0)
    m = re.search(r"\bdropped=(\d+)", end or "")
    h.ok(m and int(m.group(1)) >= res["sent"] // 2, "after the flood: "
         "one ev=rate_limit_end src=127.0.0.1 with dropped=N", diag=end)
    h.stop_server(srv)
    h.ok(len(episodes(srv, "rate_limit", LOCAL)) == 1 and
         len(episodes(srv, "rate_limit_end", LOCAL)) == 1,
         "127.0.0.1: one ev=rate_limit line, one ev=rate_limit_end")
    h.ok(not srv.find({"src": OTHER}), "no line about 127.0.0.2")
    # the calls the limiter let through (burst + rate) log their own
    # lines; what it dropped logs nothing
    n = len([l for l in srv.lines() if " mod=call " not in l])
    h.ok(n < 150, "apart from the calls it let through, the log stays "
         "short (%d lines)" % n)


def limit(h, a):
    cfg = ('rate_limit = { rate = 50, burst = 20, trusted = { "%s", '
           '"10.0.0.0/8" } }' % TRUSTED)
    tcp = a.transport == "tcp"
    srv = h.server(write_script(h, cfg),
                   transports=("udp", "tcp") if tcp else ("udp",),
                   args=["--no-udp-batch"] if a.no_batch else [])
    what = "TCP" if tcp else "UDP%s" % (" without batching" if a.no_batch
                                        else "")
    burst = burst_tcp if tcp else burst_udp

    def n200(bind):
        codes, _ = burst(srv.port, bind)
        return codes.count(200), len(codes)

    ok, n = n200(LOCAL)
    h.ok(20 <= ok <= 22 and ok == n, "%s: 100 OPTIONS at once from "
         "127.0.0.1: the burst (20) answered, the rest dropped (%d "
         "answers)" % (what, n))
    ok, n = n200(OTHER)
    h.ok(20 <= ok <= 22 and ok == n, "127.0.0.2 has a bucket of its own: "
         "20 answered (%d)" % n)
    ok, n = n200(TRUSTED)
    h.ok(ok == 100, "the trusted 127.0.0.3: all 100 answered (%d)" % ok)
    ok, n = n200(TRUSTED)
    h.ok(ok == 100, "... and again: a trusted source is never limited "
         "(%d)" % ok)
    time.sleep(0.5)
    ok, n = n200(LOCAL)
    h.ok(20 <= ok <= 22, "0.5 s later 127.0.0.1 is answered again: its "
         "bucket refilled (%d)" % ok)

    st = ask(srv, "stats", bind=TRUSTED)
    dropped = int(st.get("limited_dropped", 0))
    h.ok(st.get("limited_sources") == "3" and 230 <= dropped <= 240,
         "counters: 3 episodes (127.0.0.1 twice: more than 2 s passed "
         "between its bursts), %d dropped (about 3 x 80)" % dropped,
         diag=repr(st))
    end = srv.wait_for({"ev": "rate_limit_end", "src": LOCAL}, 1.0)
    m = re.search(r"\bdropped=(\d+)", end or "")
    h.ok(m and 75 <= int(m.group(1)) <= 80, "the first episode ended "
         "2 s after its burst: ev=rate_limit_end src=127.0.0.1 "
         "dropped=~80", diag=end)
    h.ok(srv.wait_for({"ev": "rate_limit_end", "src": OTHER}, 1.0),
         "and 127.0.0.2's")
    h.stop_server(srv, must=[{"lvl": "warn", "ev": "rate_limit",
                              "src": LOCAL, "rate": "50",
                              "burst": "20", "action": "drop"},
                             {"ev": "rate_limit", "src": OTHER}],
                  must_not=[{"src": TRUSTED}])


def fivethree(h, a):
    cfg = ('rate_limit = { rate = 50, burst = 20, action = "503", '
           'retry_after = 7, trusted = {} }')
    srv = h.server(write_script(h, cfg))
    for i in (1, 2):
        codes, retry = burst_udp(srv.port, LOCAL)
        ok = codes.count(200)
        h.ok(20 <= ok <= 22 and codes.count(503) == 1 and
             len(codes) == ok + 1,
             "burst %d of 100: %d answered 200, exactly one 503, the "
             "rest nothing" % (i, ok), diag="codes %r" % codes)
        h.ok(retry == ["7"], "the 503 carries Retry-After: 7",
             diag=repr(retry))
        time.sleep(1.1)
    st = ask(srv, "stats")
    h.ok(st.get("limited_answered") == "2", "limited_answered=2",
         diag=repr(st))
    h.stop_server(srv, must=[{"ev": "rate_limit", "src": LOCAL,
                              "action": "503"}])


def scanner(h, a):
    t0 = time.monotonic()
    srv = h.server(write_script(h, "drop_user_agents = { %s }" %
                                SCANNERS))
    cfg = ask(srv, "config")
    h.ok(cfg.get("drop_user_agents") == SCANNERS.replace('"', '').
         replace(" ", ""), "sip.config() lists them", diag=repr(cfg))

    cl = harness.UdpClient(srv.port)
    sent = 0
    for ua in ("friendly-scanner", "SIPVicious/0.3 (svwar)",
               "FRIENDLY-SCANNER"):
        for method, kw in (("OPTIONS", {}), ("REGISTER", {}),
                           ("INVITE", {}),
                           ("MESSAGE", {"ctype": "text/plain",
                                        "body": "stats"})):
            r = cl.request(method, timeout=0.5, set={"User-Agent": ua},
                           **kw)
            sent += 1
            h.ok(r is None, "%s with User-Agent: %s -> no answer" %
                 (method, ua), diag=repr(r))
    r = cl.request("OPTIONS", set={"User-Agent": "Linphone/5.2"})
    h.ok(r is not None and r.code == 200, "OPTIONS from another "
         "User-Agent -> 200", diag=repr(r))
    r = cl.request("REGISTER", set={"User-Agent": "Linphone/5.2"})
    h.ok(r is not None and r.code == 405, "REGISTER from another "
         "User-Agent -> 405 (no registrar here)", diag=repr(r))
    cl.close()

    names = os.path.join(h.tmp, "names.txt")
    with open(names, "w") as f:
        f.write("alice\nbob\n100\n200\nadmin\n")
    for method in ("OPTIONS", "REGISTER", "INVITE"):
        rc, out, err = h.run([a.svwar, "-m", method, "-d", names,
                              "-p", str(srv.port),
                              "-P", str(harness.free_port()), "-b", LOCAL,
                              LOCAL], timeout=40, cwd=h.tmp)
        text = out + err
        rows = [l for l in text.splitlines() if l.startswith("|")]
        h.note("svwar -m %s (exit %s): %s" % (method, rc, " | ".join(
            text.strip().splitlines()[-2:])))
        low = text.lower()
        h.ok(not rows and ("found nothing" in low or
                           "not respond" in low or
                           "no server response" in low),
             "svwar -m %s finds nothing: the host looks dead" % method,
             diag=text[-2000:])

    st = ask(srv, "stats")
    h.ok(int(st.get("ua_dropped", 0)) >= sent + 3,
         "ua_dropped counts them (%s)" % st.get("ua_dropped"))
    h.stop_server(srv)
    plain = srv.find({"ev": "ua_dropped",
                      "src": re.compile(r"^127\.0\.0\.1:\d+$")})
    held = srv.find({"ev": "ua_dropped", "src": LOCAL,
                     "suppressed": re.compile(r"^\d+$")})
    windows = 1 + int((time.monotonic() - t0) / 10)
    h.ok(1 <= len(plain) <= 5 * windows and held,
         "ev=ua_dropped flood-limited: %d lines for 127.0.0.1 (5 per "
         "10 s), the rest in suppressed=N summaries" % len(plain))


def reload(h, a):
    path = write_script(h, "rate_limit = false")
    srv = h.server(path)

    def rewrite(config):
        write_script(h, config)

    def hup(desc, fail=None):
        mark = srv.mark()
        srv.signal(signal.SIGHUP)
        line = srv.wait_for(r"\bev=(reloaded|reload_failed)\b", 3.0,
                            after=mark)
        if fail:
            h.ok(line and "reload_failed" in line and fail in line,
                 desc, diag=line)
        else:
            h.ok(line and "ev=reloaded" in line, desc, diag=line)

    def answered():
        codes, _ = burst_udp(srv.port, LOCAL, wait=0.5)
        return codes.count(200)

    n = answered()
    h.ok(n == 100, "rate_limit = false: 100 OPTIONS at once all answered "
         "(%d)" % n)
    h.ok(ask(srv, "config").get("rate_limit") == "false",
         "sip.config().rate_limit is false")

    rewrite('rate_limit = { rate = 50, burst = 20, trusted = {} }')
    hup("rewritten with a limit, SIGHUP: reloaded")
    n = answered()
    h.ok(20 <= n <= 22, "now limited: %d of 100 answered" % n)
    cfg = ask(srv, "config")
    h.ok(cfg.get("rate") == "50" and cfg.get("burst") == "20" and
         cfg.get("trusted") == "", "sip.config() shows it",
         diag=repr(cfg))

    rewrite('rate_limit = { rate = 0 }')
    line = harness.marker_line(os.path.join(h.tmp, "abuse.lua"),
                               "sip.configure{")
    hup("rate = 0: the reload is refused, naming the key and line",
        fail="abuse.lua:%d: configure: 'rate_limit.rate' must be an "
        "integer in 1..1000000" % line)
    h.ok(ask(srv, "config").get("rate") == "50", "the limit in force "
         "stays")

    time.sleep(0.5)
    rewrite('rate_limit = { trusted = { "127.0.0.1" } }')
    hup("trusting 127.0.0.1, SIGHUP: reloaded")
    n = answered()
    cfg = ask(srv, "config")
    h.ok(n == 100 and cfg.get("rate") == "50" and
         cfg.get("trusted") == LOCAL, "127.0.0.1 trusted: all answered; "
         "the keys not given kept their values", diag=repr(cfg))
    h.stop_server(srv, errors=[{"ev": "reload_failed"}])

    bad = write_script(h, 'rate_limit = { trusted = { "10.0.0.1/8" } }',
                       name="bad.lua")
    rc, out, err = h.run([h.sipstack, "--listen", "udp:%s:%d" % (
        LOCAL, harness.free_port()), bad], timeout=10)
    why = [harness.parse_logfmt(l).get("err", "") for l in
           err.splitlines() if "ev=load_failed" in l]
    h.ok(rc == 1 and why and why[0].endswith(
        "bad.lua:4: configure: 'rate_limit.trusted' entry 1 "
        "(\"10.0.0.1/8\") has bits set beyond its prefix"),
         "a bad prefix: the server does not start (exit 1) and says "
         "which entry, why and where", diag=err[-1500:])


def body(h, a):
    {"flood": flood, "limit": limit, "503": fivethree, "scanner": scanner,
     "reload": reload}[a.case](h, a)


if __name__ == "__main__":
    harness.test_main("abuse protection: rate limit and scanners", body,
                      extra_args=args)
