#!/usr/bin/env python3
"""The Prometheus endpoint (`--metrics IP:PORT`) scraped during traffic:
the figures add up to what was sent. One group per run (--case):

  traffic  test/metrics/metrics.lua (a registrar with digest auth, a
           MESSAGE hook counting in a script counter and gauge) on UDP
           and TCP, `--metrics 127.0.0.1:<free port>`. Scraped before,
           several times during sipp's OPTIONS load (each scrape parses;
           the OPTIONS count never goes down) and after:
             - 30 OPTIONS over UDP (sipp), 5 over TCP (sipp), one
               without Call-ID (400), one FOO (501);
             - alice registers two contacts and refreshes one (each
               REGISTER challenged: 401 then 200), a wrong password twice
               (401 then 403);
             - 4 MESSAGEs answered 200 by the hook, one "boom" (the
               hook raises: 500).
           Then exactly: requests by method and transport (sipp's sent
           count, retransmissions included: those are answered again
           from the completed transaction and counted there), responses
           by method, class and transport, nothing else; the dropped and
           invalid requests; auth challenges and checks (ok 3, failed
           2); registrations ok 3; bindings 2 on 1 AOR; 3 location
           commits = the commit histogram's _count, its buckets
           cumulative up to +Inf = _count; hook runs and errors by hook;
           Lua tasks 0, the resume histogram's _count = tasks run;
           the script's counter and gauge; dialogs, calls, pending 0;
           one lvl=error log line (the hook's); process_* sane;
           build_info. The whole text parses (a validator of the 0.0.4
           format: HELP/TYPE once before their samples, names, labels,
           values, counters _total, histograms), every label value is
           from its bounded list (no Call-ID, user or address). GET
           /other -> 404, POST /metrics -> 405 (Allow: GET). A SIGHUP
           reload keeps the script's counter (the same metric) and the
           registrar's figures.
  badaddr  `--metrics` refused at start with a message naming it and
           what is wrong: no port, a host name, port 0 (exit 2); an
           address not ours, a port taken (exit 1). Without --metrics
           nothing is served (no mod=metrics line).
"""
import http.client
import math
import os
import re
import signal
import socket
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True   # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "sipp"))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "registrar"))
import harness  # noqa: E402
import reglib  # noqa: E402

LOCAL = harness.LOCAL

METHODS = {"INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER",
           "MESSAGE", "PRACK", "UPDATE", "INFO", "REFER", "SUBSCRIBE",
           "NOTIFY", "PUBLISH", "other"}
BOUNDED = {
    "method": METHODS,
    "transport": {"udp", "tcp", "tls", "ws", "wss"},
    "class": {"1xx", "2xx", "3xx", "4xx", "5xx", "6xx"},
    "level": {"debug", "info", "warn", "error"},
    "result": {"ok", "rejected", "failed", "stale", "replay",
               "unknown_nonce", "malformed"},
    "hook": {"on_incoming_call", "on_incoming_message",
             "on_incoming_refer", "on_registration_result",
             "on_dialog_event", "on_request", "on_register", "spawn",
             "on_subscribe"},
}


def args(ap):
    ap.add_argument("--case", choices=["traffic", "badaddr"],
                    required=True)


# ---------------------------------------------------------------------
# The exposition format 0.0.4: a validator and parser
# ---------------------------------------------------------------------

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_SAMPLE = re.compile(r"^(%s)(?:\{(.*)\})? (\S+)$" % _NAME)
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"')
_HELP = re.compile(r"^# HELP (%s) (.*)$" % _NAME)
_TYPE = re.compile(r"^# TYPE (%s) (counter|gauge|histogram|summary|"
                   r"untyped)$" % _NAME)


def parse_value(v):
    if v in ("NaN", "+Inf", "-Inf"):
        return float(v.replace("Inf", "inf").replace("NaN", "nan"))
    if not re.fullmatch(r"-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?", v):
        raise ValueError("bad value %r" % v)
    return float(v)


def parse_labels(s):
    out, pos = {}, 0
    while pos < len(s):
        m = _LABEL.match(s, pos)
        if not m:
            raise ValueError("bad labels %r" % s)
        if m.group(1) in out:
            raise ValueError("label %s twice" % m.group(1))
        out[m.group(1)] = m.group(2)
        pos = m.end()
        if pos < len(s):
            if s[pos] != ",":
                raise ValueError("bad labels %r" % s)
            pos += 1
    return out


def parse_exposition(text):
    """(families {name: type}, samples {(name, ((k, v), ...)): value},
    errors [str]) of a scrape; errors lists every rule broken."""
    errors, families, samples = [], {}, {}
    helped, cur = set(), None
    if not text.endswith("\n"):
        errors.append("text does not end with a newline")
    for n, line in enumerate(text.split("\n")[:-1], 1):
        where = "line %d %r: " % (n, line[:100])
        if line.startswith("# HELP "):
            m = _HELP.match(line)
            if not m:
                errors.append(where + "bad HELP")
            elif m.group(1) in helped:
                errors.append(where + "HELP twice")
            else:
                helped.add(m.group(1))
            continue
        if line.startswith("# TYPE "):
            m = _TYPE.match(line)
            if not m:
                errors.append(where + "bad TYPE")
                continue
            name, typ = m.group(1), m.group(2)
            if name in families:
                errors.append(where + "family %s twice" % name)
            if name not in helped:
                errors.append(where + "TYPE without HELP before it")
            if typ == "counter" and not name.endswith("_total"):
                errors.append(where + "counter not named *_total")
            if not (name.startswith("sipstack_") or
                    name.startswith("process_")):
                errors.append(where + "not sipstack_* nor process_*")
            families[name] = typ
            cur = name
            continue
        if line.startswith("#") or not line:
            errors.append(where + "unexpected line")
            continue
        m = _SAMPLE.match(line)
        if not m:
            errors.append(where + "not a sample")
            continue
        name, lbl, val = m.group(1), m.group(2) or "", m.group(3)
        try:
            labels = parse_labels(lbl)
            value = parse_value(val)
        except ValueError as e:
            errors.append(where + str(e))
            continue
        typ = families.get(cur)
        ok_names = {cur} if typ in ("counter", "gauge") else \
            {cur + "_bucket", cur + "_sum", cur + "_count"}
        if cur is None or name not in ok_names:
            errors.append(where + "sample outside its family (%s)" % cur)
        if typ == "counter" and not value >= 0:
            errors.append(where + "counter below 0")
        if name.endswith("_bucket") and typ == "histogram" and \
                "le" not in labels:
            errors.append(where + "bucket without le")
        for k, v in labels.items():
            if k in BOUNDED and v not in BOUNDED[k]:
                errors.append(where + "label %s=%r not in its list" %
                              (k, v))
            if "@" in v or "alice" in v or "127.0.0.1" in v:
                errors.append(where + "label %s=%r names a user or an "
                              "address" % (k, v))
        key = (name, tuple(sorted(labels.items())))
        if key in samples:
            errors.append(where + "series twice")
        samples[key] = value
    errors += check_histograms(families, samples)
    return families, samples, errors


def check_histograms(families, samples):
    """Buckets ascending in le and cumulative, +Inf = _count."""
    errors = []
    for fam, typ in families.items():
        if typ != "histogram":
            continue
        groups = {}
        for (name, labels), v in samples.items():
            if name == fam + "_bucket":
                rest = tuple(kv for kv in labels if kv[0] != "le")
                le = dict(labels)["le"]
                groups.setdefault(rest, []).append((parse_value(le), v))
        if not groups:
            errors.append("%s: no buckets" % fam)
        for rest, buckets in groups.items():
            buckets.sort()
            counts = [c for _, c in buckets]
            if counts != sorted(counts):
                errors.append("%s%s: buckets not cumulative: %s" %
                              (fam, rest, counts))
            if buckets[-1][0] != math.inf:
                errors.append("%s%s: no +Inf bucket" % (fam, rest))
            count = samples.get((fam + "_count", rest))
            if count is None or buckets[-1][1] != count:
                errors.append("%s%s: +Inf bucket %s != _count %s" %
                              (fam, rest, buckets[-1][1], count))
            if (fam + "_sum", rest) not in samples:
                errors.append("%s%s: no _sum" % (fam, rest))
    return errors


class Scrape:
    def __init__(self, text):
        self.text = text
        self.families, self.samples, self.errors = parse_exposition(text)

    def get(self, name, **labels):
        """The value of one series (0 when absent: zero series of the
        labelled counters are left out)."""
        return self.samples.get((name, tuple(sorted(labels.items()))), 0)

    def series(self, name):
        """{labels dict as sorted tuple: value} of every series of name"""
        return {lbl: v for (n, lbl), v in self.samples.items()
                if n == name}


def http_req(port, method="GET", path="/metrics", timeout=3.0):
    """(status, headers dict (lowercase names), body str)"""
    c = http.client.HTTPConnection(LOCAL, port, timeout=timeout)
    try:
        c.request(method, path)
        r = c.getresponse()
        body = r.read().decode("utf-8")
        return r.status, {k.lower(): v for k, v in r.getheaders()}, body
    finally:
        c.close()


def scrape(h, port, desc):
    status, hdrs, body = http_req(port)
    h.ok(status == 200 and hdrs.get("content-type") ==
         "text/plain; version=0.0.4; charset=utf-8",
         "%s: GET /metrics -> 200 text/plain; version=0.0.4" % desc,
         diag="status %s, headers %r" % (status, hdrs))
    s = Scrape(body)
    h.ok(not s.errors, "%s: the exposition parses (%d families, %d "
         "series, every label value bounded)" % (desc, len(s.families),
                                                  len(s.samples)),
         diag="\n".join(s.errors[:20]))
    return s


# ---------------------------------------------------------------------
# traffic
# ---------------------------------------------------------------------

def expect(h, s, name, want, desc=None, **labels):
    got = s.get(name, **labels)
    lbl = ",".join('%s="%s"' % kv for kv in sorted(labels.items()))
    h.ok(got == want, desc or "%s{%s} = %s" % (name, lbl, want),
         diag="got %r" % got)


def expect_series(h, s, name, want):
    """Every series of name, exactly: want {(("k", "v"), ...): value}"""
    got = s.series(name)
    h.ok(got == want, "%s: exactly %s" % (name, ", ".join(
        "{%s} %g" % (",".join('%s="%s"' % kv for kv in k), v)
        for k, v in sorted(want.items()))),
        diag="got %r" % sorted(got.items()))


def lbls(**kw):
    return tuple(sorted(kw.items()))


def setup_script(h):
    db = os.path.join(h.tmp, "metrics.db")
    with open(os.path.join(HERE, "metrics.lua"), encoding="utf-8") as f:
        text = f.read().replace("@DATABASE@", db)
    path = os.path.join(h.tmp, "metrics.lua")
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    if not reglib.add_users(h, db, [("alice", "secret")]):
        raise harness.Abort("cannot add the user")
    return path


def sipp_options_sent(sp):
    """OPTIONS sipp sent, its retransmissions included"""
    return len([m for m in sp.messages("sent") if m.method == "OPTIONS"])


def validator_selftest(h):
    """The validator refuses what it must (else its passes mean
    nothing)"""
    good = ("# HELP sipstack_x_total X.\n# TYPE sipstack_x_total counter\n"
            "sipstack_x_total{method=\"INVITE\"} 1\n"
            "# HELP sipstack_h H.\n# TYPE sipstack_h histogram\n"
            "sipstack_h_bucket{le=\"0.1\"} 1\n"
            "sipstack_h_bucket{le=\"+Inf\"} 2\n"
            "sipstack_h_sum 0.3\nsipstack_h_count 2\n")
    bad = {
        "family twice": good + "# HELP sipstack_x_total X.\n",
        "counter not _total": good.replace("sipstack_x_total",
                                           "sipstack_x"),
        "not cumulative": good.replace("} 2\nsipstack_h_sum",
                                       "} 0\nsipstack_h_sum"),
        "+Inf != _count": good.replace("_count 2", "_count 3"),
        "unbounded label": good.replace("INVITE", "alice@example.com"),
        "bad value": good.replace("_sum 0.3", "_sum zero"),
        "sample outside": good + "sipstack_y 1\n",
        "no newline": good[:-1],
        "bad label syntax": good.replace('{method="INVITE"}',
                                         "{method=INVITE}"),
    }
    missed = [k for k, t in bad.items() if not parse_exposition(t)[2]]
    errs = parse_exposition(good)[2]
    h.ok(not errs and not missed, "the format validator passes a good "
         "text and refuses %d broken ones" % len(bad),
         diag="good: %r; not refused: %r" % (errs, missed))


def traffic(h):
    validator_selftest(h)
    script = setup_script(h)
    mport = harness.free_port(("tcp",))
    srv = h.server(script, transports=("udp", "tcp"),
                   args=["--metrics", "%s:%d" % (LOCAL, mport)])
    h.ok(srv.find({"mod": "metrics", "ev": "listen",
                   "addr": "%s:%d" % (LOCAL, mport)}),
         "log: mod=metrics ev=listen addr=127.0.0.1:%d" % mport)

    s0 = scrape(h, mport, "before traffic")
    expect(h, s0, "sipstack_sip_requests_received_total", 0,
           "before traffic: no request counted", method="OPTIONS",
           transport="udp")
    expect(h, s0, "sipstack_lua_generation", 1)

    # OPTIONS over UDP, scraped while sipp runs
    sp = h.sipp("uac-options.xml", srv, calls=30, rate=30, timeout=20)
    during, last = [], -1
    while sp.proc.poll() is None and len(during) < 8:
        st, _, body = http_req(mport)
        sc = Scrape(body)
        v = sc.get("sipstack_sip_requests_received_total",
                   method="OPTIONS", transport="udp")
        during.append((st, len(sc.errors), v))
        if v < last:
            break
        last = v
        time.sleep(0.15)
    h.sipp_ok(sp, "sipp: 30 OPTIONS over UDP answered 200")
    h.ok(len(during) >= 2 and all(st == 200 and not e for st, e, _ in
                                  during) and
         [v for _, _, v in during] == sorted(v for _, _, v in during),
         "%d scrapes during the load: 200, parse, OPTIONS count never "
         "goes down" % len(during), diag="(status, errors, count): %r" %
         during)
    udp_sent = sipp_options_sent(sp)
    h.ok(udp_sent >= 30, "sipp sent %d OPTIONS over UDP (%d "
         "retransmissions)" % (udp_sent, udp_sent - 30))

    sp = h.sipp("uac-options.xml", srv, calls=5, rate=20, timeout=20,
                transport="tcp")
    h.sipp_ok(sp, "sipp: 5 OPTIONS over TCP answered 200")

    # broken requests answered by the core
    cl = harness.UdpClient(srv.port)
    r = cl.request("OPTIONS", set={"Call-ID": None})
    h.ok(r is not None and r.code == 400, "OPTIONS without Call-ID -> 400",
         diag=repr(r))
    r = cl.request("FOO")
    h.ok(r is not None and r.code == 501, "FOO -> 501", diag=repr(r))

    # REGISTER: 3 accepted (2 contacts, 1 refresh), 2 wrong passwords
    alice = reglib.RegClient(srv, user="alice", password="secret")
    codes = []
    for n in (0, 1, 0):
        r = alice.register([alice.contact(n)], expires=600)
        codes.append([x.code if x else None for x in alice.last])
    h.ok(codes == [[401, 200]] * 3, "alice: 3 REGISTERs, each 401 then "
         "200", diag=repr(codes))
    mallory = reglib.RegClient(srv, user="alice", password="wrong",
                               tag="m1")
    codes = []
    for _ in range(2):
        r = mallory.register([mallory.contact(5)], expires=600)
        codes.append([x.code if x else None for x in mallory.last])
    h.ok(codes == [[401, 403]] * 2, "a wrong password twice: 401 then "
         "403", diag=repr(codes))

    # MESSAGE: 4 answered by the hook, one that makes it raise
    codes = []
    for body in ("one", "two", "three", "four", "boom"):
        r = cl.request("MESSAGE", uri="sip:svc@%s:%d" % (LOCAL, srv.port),
                       ctype="text/plain", body=body)
        codes.append(r.code if r else None)
    h.ok(codes == [200, 200, 200, 200, 500], "MESSAGE x4 -> 200, "
         "\"boom\" -> 500 (the hook raised)", diag=repr(codes))
    cl.close()
    alice.close()
    mallory.close()

    s = scrape(h, mport, "after traffic")

    # requests and responses, exactly
    R = "sipstack_sip_requests_received_total"
    expect_series(h, s, R, {
        lbls(method="OPTIONS", transport="udp"): udp_sent + 1,
        lbls(method="OPTIONS", transport="tcp"): 5,
        lbls(method="REGISTER", transport="udp"): 10,
        lbls(method="MESSAGE", transport="udp"): 5,
        lbls(method="other", transport="udp"): 1,
    })
    expect_series(h, s, "sipstack_sip_responses_sent_total", {
        lbls(method="OPTIONS", **{"class": "2xx"}, transport="udp"): 30,
        lbls(method="OPTIONS", **{"class": "2xx"}, transport="tcp"): 5,
        lbls(method="OPTIONS", **{"class": "4xx"}, transport="udp"): 1,
        lbls(method="REGISTER", **{"class": "4xx"}, transport="udp"): 7,
        lbls(method="REGISTER", **{"class": "2xx"}, transport="udp"): 3,
        lbls(method="MESSAGE", **{"class": "2xx"}, transport="udp"): 4,
        lbls(method="MESSAGE", **{"class": "5xx"}, transport="udp"): 1,
        lbls(method="other", **{"class": "5xx"}, transport="udp"): 1,
    })
    expect(h, s, "sipstack_sip_retransmissions_absorbed_total",
           udp_sent - 30, "retransmissions absorbed = sipp's "
           "retransmissions (%d)" % (udp_sent - 30))
    expect(h, s, "sipstack_sip_requests_invalid_total", 1,
           "invalid: 1 (no Call-ID; FOO is the core's default 501)")
    expect(h, s, "sipstack_sip_requests_dropped_total", 0)
    expect(h, s, "sipstack_sip_requests_pending", 0)
    expect(h, s, "sipstack_dialogs", 0)
    expect(h, s, "sipstack_calls", 0)

    # authentication, registrations, the location store
    expect(h, s, "sipstack_auth_challenges_total", 5,
           "auth: 5 challenges (401)")
    expect_series(h, s, "sipstack_auth_checks_total", {
        lbls(result="ok"): 3, lbls(result="failed"): 2,
        lbls(result="stale"): 0, lbls(result="replay"): 0,
        lbls(result="unknown_nonce"): 0, lbls(result="malformed"): 0,
    })
    expect_series(h, s, "sipstack_registrar_registrations_total", {
        lbls(result="ok"): 3, lbls(result="rejected"): 0,
        lbls(result="failed"): 0,
    })
    expect(h, s, "sipstack_registrar_bindings", 2,
           "bindings: 2 (alice's two contacts)")
    expect(h, s, "sipstack_registrar_aors", 1)
    expect(h, s, "sipstack_auth_guard_banned", 0)
    expect(h, s, "sipstack_location_commits_total", 3,
           "location: 3 commits (one per accepted REGISTER)")
    expect(h, s, "sipstack_location_writes_total", 3)
    expect(h, s, "sipstack_location_writes_pending", 0)
    cnt = s.get("sipstack_location_commit_seconds_count")
    h.ok(cnt == 3 and s.get("sipstack_location_commit_seconds_sum") > 0,
         "commit latency histogram: _count 3 = the commits, _sum > 0",
         diag="count %r sum %r" % (
             cnt, s.get("sipstack_location_commit_seconds_sum")))

    # Lua
    runs = {lbl: v for lbl, v in
            s.series("sipstack_lua_hook_runs_total").items() if v}
    h.ok(runs == {lbls(hook="on_incoming_message"): 5},
         "hook runs: on_incoming_message 5, no other",
         diag=repr(runs))
    errs = {lbl: v for lbl, v in
            s.series("sipstack_lua_hook_errors_total").items() if v}
    h.ok(errs == {lbls(hook="on_incoming_message"): 1},
         "hook errors: on_incoming_message 1, no other", diag=repr(errs))
    expect(h, s, "sipstack_lua_tasks", 0, "Lua tasks alive: 0")
    expect(h, s, "sipstack_lua_resume_seconds_count", 5,
           "resume histogram: _count 5 (each task ran once)")
    expect(h, s, "sipstack_script_messages_total", 5,
           "the script's counter: 5")
    h.ok(s.families.get("sipstack_script_messages_total") == "counter" and
         s.families.get("sipstack_script_last_body_bytes") == "gauge",
         "the script's metrics: a counter and a gauge")
    expect(h, s, "sipstack_script_last_body_bytes", 4,
           "the script's gauge: 4 (\"boom\")")

    # the process, the build, the log
    expect(h, s, "sipstack_log_messages_total", 1,
           "log: one lvl=error line (the hook's)", level="error")
    h.ok(s.get("process_resident_memory_bytes") > 1e6 and
         s.get("process_virtual_memory_bytes") >=
         s.get("process_resident_memory_bytes") and
         s.get("process_cpu_seconds_total") > 0 and
         s.get("process_open_fds") > 3 and
         abs(s.get("process_start_time_seconds") - time.time()) < 120,
         "process_*: memory, CPU, fds, start time sane",
         diag="\n".join(l for l in s.text.splitlines()
                        if l.startswith("process_")))
    build = s.series("sipstack_build_info")
    h.ok(len(build) == 1 and list(build.values()) == [1] and
         dict(list(build)[0]).get("version") == "0.1.0",
         "sipstack_build_info{version=\"0.1.0\",...} 1", diag=repr(build))

    # other paths and methods
    st, hdrs, _ = http_req(mport, path="/other")
    h.ok(st == 404, "GET /other -> 404", diag="status %s" % st)
    st, hdrs, _ = http_req(mport, method="POST")
    h.ok(st == 405 and hdrs.get("allow") == "GET",
         "POST /metrics -> 405 with Allow: GET",
         diag="status %s headers %r" % (st, hdrs))

    # a reload keeps the script's metric and the registrar's figures
    mark = srv.mark()
    srv.signal(signal.SIGHUP)
    h.ok(srv.wait_for({"ev": "reloaded", "gen": "2"}, 5, mark),
         "SIGHUP: script reloaded (gen 2)")
    cl = harness.UdpClient(srv.port)
    r = cl.request("MESSAGE", uri="sip:svc@%s:%d" % (LOCAL, srv.port),
                   ctype="text/plain", body="after reload")
    cl.close()
    h.ok(r is not None and r.code == 200, "MESSAGE after the reload -> "
         "200", diag=repr(r))
    s2 = scrape(h, mport, "after the reload")
    expect(h, s2, "sipstack_script_messages_total", 6,
           "the script's counter kept across the reload: 6")
    expect(h, s2, "sipstack_lua_generation", 2)
    expect(h, s2, "sipstack_registrar_bindings", 2,
           "bindings still 2 (the service kept)")
    expect(h, s2, "sipstack_location_commits_total", 3)

    # a subscription: counted while it lives, gone after Expires: 0
    # (after the exact figures above, which it would change)
    cl = harness.UdpClient(srv.port)
    cl.auto_answer = 200   # the NOTIFYs
    uri = "sip:pres@%s:%d" % (LOCAL, srv.port)
    ids = {"Call-ID": "metrics-sub-%d@%s" % (os.getpid(), LOCAL),
           "From": "<sip:raw@%s:%d>;tag=msub" % (LOCAL, cl.port),
           "Contact": "<sip:raw@%s:%d>" % (LOCAL, cl.port),
           "Event": "presence"}
    r = cl.request("SUBSCRIBE", uri=uri, set=dict(ids, Expires="600"))
    h.ok(r is not None and r.code == 200 and r.header("To") and
         ";tag=" in r.header("To"), "SUBSCRIBE presence -> 200 with a To "
         "tag", diag=repr(r))
    s3 = scrape(h, mport, "with a subscription")
    expect(h, s3, "sipstack_subscriptions", 1, "subscriptions: 1")
    expect(h, s3, "sipstack_dialogs", 1, "dialogs: 1 (the subscription's)")
    if r is not None and r.header("To"):
        r = cl.request("SUBSCRIBE", uri=uri, set=dict(
            ids, Expires="0", To=r.header("To"), CSeq="99 SUBSCRIBE"))
        h.ok(r is not None and r.code == 200, "SUBSCRIBE Expires: 0 -> "
             "200", diag=repr(r))
    left = None
    for _ in range(50):
        left = scrape(h, mport, "after the unsubscribe").get(
            "sipstack_subscriptions")
        if left == 0:
            break
        cl.pump(0.1)
    h.ok(left == 0, "subscriptions: 0 after the unsubscribe",
         diag="sipstack_subscriptions %r" % left)
    cl.close()

    checks = srv.find({"msg": "metrics_checks"})
    bad = []
    for line in checks:
        rec = harness.parse_logfmt(line)
        for k in ("bad_name", "digit_first", "long_name", "no_help",
                  "empty_help", "type_clash", "negative", "not_finite",
                  "wrong_self"):
            if rec.get(k) != "raised":
                bad.append("%s=%s" % (k, rec.get(k)))
        if rec.get("same") != "same" or \
                rec.get("name") != "sipstack_script_messages_total":
            bad.append("same=%s name=%s" % (rec.get("same"),
                                             rec.get("name")))
    h.ok(len(checks) == 2 and not bad, "at both loads: each misuse of "
         "sip.metrics raised; the same name gave the same metric",
         diag="%d lines; %s" % (len(checks), " ".join(bad)))

    h.stop_server(srv, errors=[{"ev": "hook_error"}])


# ---------------------------------------------------------------------
# badaddr
# ---------------------------------------------------------------------

def refused(h, script, port, value, want_rc, want_text):
    rc, out, err = h.run([h.sipstack, "--listen", "udp:%s:%d" % (LOCAL,
                                                                 port),
                          "--metrics", value, script], timeout=10,
                         cwd=h.tmp)
    h.ok(rc == want_rc and "--metrics %s" % value in err and
         want_text in err,
         "--metrics %s: refused, exit %d, stderr names it: %s" %
         (value, want_rc, want_text), diag="exit %s, stderr %r" %
         (rc, err[-600:]))


def badaddr(h):
    script = harness.script_path("wire.lua")
    port = harness.free_port(("udp",))
    refused(h, script, port, "127.0.0.1", 2, "expected IP:PORT")
    refused(h, script, port, "localhost:9100", 2, "expected IP:PORT")
    refused(h, script, port, "127.0.0.1:0", 2, "port 1-65535")
    refused(h, script, port, "192.0.2.1:%d" % harness.free_port(("tcp",)),
            1, "cannot listen there")

    taken = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        taken.bind((LOCAL, 0))
        taken.listen(1)
        tport = taken.getsockname()[1]
        refused(h, script, port, "%s:%d" % (LOCAL, tport), 1,
                "cannot listen there: Address already in use")
    finally:
        taken.close()

    srv = h.server("wire.lua")
    h.stop_server(srv, must_not=[{"mod": "metrics"}])


def body(h, a):
    {"traffic": traffic, "badaddr": badaddr}[a.case](h)


if __name__ == "__main__":
    harness.test_main("sipstack --metrics: the Prometheus endpoint", body,
                      extra_args=args)
