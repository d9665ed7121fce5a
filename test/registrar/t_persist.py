#!/usr/bin/env python3
"""Bindings survive kill -9 (a 200 is sent only after its commit).

A copy of the bundled scripts/registrar.lua (auth on, database in the
temp dir) and the 40 users of test/registrar/users.csv (added with
`sipstack user add`). Two kill/restart cycles on the same database:

  1. sipp uac-register-inf.xml -inf users.csv registers every user (401,
     then the credentials of its injection line, then 200), 40 calls at
     100/s; the moment sipp exits (its last 200 received) the server gets
     SIGKILL.
  2. A burst, raw, to the restarted server: every user's 401 is fetched
     first, then the 40 authenticated REGISTERs of a second contact (one
     per user) are sent at once; SIGKILL the moment the 20th 200 arrives.

After each kill: the database files as the kill left them (copied, so
that the sqlite3 CLI does not recover the live ones) hold every binding
whose 200 was received; the server restarts on the same database, its
store reports at least that many bindings loaded, and the lookup
(MESSAGE `where <aor>`) of every user gives every acknowledged contact;
the killed server had logged no lvl=error line.
"""
import os
import re
import signal
import sys
import time

sys.dont_write_bytecode = True   # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reglib  # noqa: E402
from reglib import harness  # noqa: E402

D = reglib.desc_resp
LOCAL = reglib.LOCAL
KILL_AFTER = 20        # 200s of the burst received before SIGKILL


def read_users():
    """[(user, password)] of users.csv."""
    out = []
    with open(reglib.scenario("users.csv"), encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line or line in ("SEQUENTIAL", "RANDOM", "USER"):
                continue
            user, auth = line.split(";", 1)
            pw = auth.split("password=", 1)[1].rstrip("]").strip()
            out.append((user, pw))
    return out


def aor_of(u):
    return "sip:%s@%s" % (u, LOCAL)


def kill9(h, srv, what):
    srv.proc.send_signal(signal.SIGKILL)
    srv.proc.wait(5)
    h.ok(srv.proc.returncode == -signal.SIGKILL,
         "%s: the server died of SIGKILL (status %s)" %
         (what, srv.proc.returncode))
    h.check_log(srv)    # nothing went wrong before the kill


def verify(h, script, db, port, acked, what):
    """acked: {(aor, contact)} answered 200 before the kill. Checks the
    files, restarts, checks the lookup; returns the new server."""
    snap = reglib.snapshot_db(h, db, "at-kill-%d" % h.next_id())
    rows = reglib.sql(h, snap, "select aor, contact from bindings")
    have = {(r[0], r[1]) for r in rows or []}
    missing = sorted(acked - have)
    h.ok(rows is not None and not missing,
         "%s: on disk at the kill, every binding acknowledged by a 200 "
         "(%d)" % (what, len(acked)), diag="missing: %r" % missing[:5])
    h.note("%s: %d bindings on disk, %d acknowledged" %
           (what, len(have), len(acked)))

    srv = h.server(script, listen=["udp:%s:%d" % (LOCAL, port)])
    srv.port = port
    line = srv.find({"mod": "location", "ev": "open"})
    rec = harness.parse_logfmt(line[0]) if line else {}
    h.ok(rec.get("backend") == "sqlite" and
         int(rec.get("bindings", "0")) >= len(acked),
         "%s: restarted, the store loads >= %d bindings" %
         (what, len(acked)), diag="line: %s" % (line[:1],))
    want = {}
    for aor, contact in acked:
        want.setdefault(aor, set()).add(contact)
    bad = []
    qc = harness.UdpClient(port)
    for aor, contacts in sorted(want.items()):
        b = reglib.where(srv, aor, cl=qc)
        uris = {x[0] for x in b or []}
        if b is None or not contacts <= uris:
            bad.append((aor, sorted(contacts - uris)))
    qc.close()
    h.ok(not bad, "%s: after the restart the lookup of each of the %d "
         "AORs gives every acknowledged contact" % (what, len(want)),
         diag="missing: %r" % bad[:5])
    return srv


def body(h, a):
    users = read_users()
    n = len(users)
    script, db = reglib.bundled_copy(h)
    if not reglib.add_users(h, db, users):
        raise harness.Abort("cannot add the users")
    srv = h.server(script)
    port = srv.port

    # 1. sipp, one call per user; SIGKILL as soon as sipp is done
    sp = h.sipp(reglib.scenario("uac-register-inf.xml"), srv, calls=n,
                rate=100, timeout=20,
                args=["-inf", reglib.scenario("users.csv"),
                      "-key", "domain", LOCAL, "-key", "expires", "3600"])
    end = time.monotonic() + 25
    while sp.proc.poll() is None and time.monotonic() < end:
        time.sleep(0.002)
    kill9(h, srv, "sipp")
    h.sipp_ok(sp, "sipp uac-register-inf.xml: %d users registered (401, "
              "200 each), SIGKILL when sipp exited" % n)
    oks = [m for m in sp.messages("received") if m.code == 200]
    acked = set()
    for m in oks:
        for uri, _ in reglib.contacts_of(m):
            u = uri.split(":", 1)[1].split("@", 1)[0]
            if uri == "sip:%s@%s:%d" % (u, LOCAL, sp.port):
                acked.add((aor_of(u), uri))
    h.ok(len(oks) == n and len(acked) == n,
         "sipp got %d 200s, each listing its user's contact" % n,
         diag="200s: %d, contacts: %d" % (len(oks), len(acked)))
    srv = verify(h, script, db, port, acked, "sipp")

    # 2. the burst: challenges first, then every answer at once
    cl = harness.UdpClient(port)
    ruri = "sip:%s:%d" % (LOCAL, port)
    burst = {}
    for i, (u, p) in enumerate(users):
        hdrs = {"From": "<%s>;tag=b%d" % (aor_of(u), i),
                "To": "<%s>" % aor_of(u),
                "Call-ID": "burst-%s-%d@%s" % (u, cl.port, LOCAL),
                "CSeq": "1 REGISTER"}
        contact = "sip:%s@%s:%d" % (u, LOCAL, 30000 + i)
        r = cl.request("REGISTER", uri=ruri, set=hdrs,
                       extra=[("Contact", "<%s>" % contact),
                              ("Expires", "3600")])
        ch = reglib.parse_challenge(r.header("WWW-Authenticate")
                                    if r else None)
        if not ch.get("nonce"):
            raise harness.Abort("no 401 for %s: %s" % (u, D(r)))
        hdrs["CSeq"] = "2 REGISTER"
        data, branch = cl.build(
            "REGISTER", uri=ruri, set=hdrs,
            extra=[("Contact", "<%s>" % contact), ("Expires", "3600"),
                   ("Authorization", reglib.digest_authorization(
                       u, p, ch["nonce"], ruri))])
        burst[branch] = (aor_of(u), contact, data)
    for branch, (_, _, data) in burst.items():
        cl.sock.sendto(data, cl.dst)
    got, other = [], []
    end = time.monotonic() + 10
    while len(got) < KILL_AFTER and time.monotonic() < end:
        r = cl.recv(timeout=max(0.01, end - time.monotonic()))
        if r is None:
            break
        m = re.search(r"branch=([^;,\s]+)", r.header("Via") or "")
        br = m.group(1) if m and m.group(1) in burst else None
        if br and r.code == 200 and br not in got:
            got.append(br)
        else:
            other.append(r)
    kill9(h, srv, "burst")
    cl.close()
    h.ok(len(got) == KILL_AFTER and not other,
         "burst: %d authenticated REGISTERs sent at once, SIGKILL right "
         "after the %dth 200" % (n, KILL_AFTER),
         diag="200s: %d, other answers: %s" % (
             len(got), "; ".join(D(r) for r in other[:3])))
    acked |= {burst[b][:2] for b in got}
    srv = verify(h, script, db, port, acked, "burst")

    h.stop_server(srv, must=[{"mod": "registrar", "ev": "open",
                              "auth": "on"}])


if __name__ == "__main__":
    harness.test_main("registrar: bindings survive kill -9", body)
