#!/usr/bin/env python3
"""kill -9 under REGISTER load loses no acknowledged binding (issue 13
item 8).

A copy of the bundled scripts/registrar.lua as it ships (digest auth,
users and bindings in one SQLite file in the temp dir) serves sipp
registering USERS distinct users (test/registrar/uac-register-inf.xml:
REGISTER, 401, REGISTER with credentials, 200; an injection file of
users and passwords, 300 registrations/s). The users are created with
`sipstack user add` (the first, which makes the tables) and a bulk
insert of the others (their HA1s computed here, as the CLI would). A
moment into the load (after a few hundred bindings are in the store,
with REGISTERs still arriving) the server gets SIGKILL. sipp's message
log says which REGISTERs got a 200 (matched by Call-ID to the REGISTER
sent, for its AOR and Contact). Then:

- the database files as the kill left them (copied first) hold every
  acknowledged binding (sqlite3 CLI);
- the server restarts on the same database, answers a REGISTER, and a
  lookup (MESSAGE `where <aor>`, the bundled script's) of a sample of
  the acknowledged users gives their contact;
- at least some REGISTERs were sent and not acknowledged (the kill was
  really mid-load), and the killed server logged no lvl=error line.
"""
import hashlib
import os
import signal
import sys
import time

sys.dont_write_bytecode = True   # no __pycache__ in the source tree
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "registrar"))
import reglib  # noqa: E402
from reglib import harness  # noqa: E402
import faultlib  # noqa: E402

USERS = 2000
RATE = 300
REALM = "sipstack"       # scripts/registrar.lua's
KILL_AFTER = 300         # 200s seen in the store before SIGKILL
LOCAL = harness.LOCAL


def acked(sp):
    """{aor: contact} of every REGISTER sipp got a 200 for."""
    sent = {}
    ok = set()
    for m in sp.messages():
        cid = m.header("Call-ID")
        if m.start.startswith("REGISTER "):
            sent[cid] = m
        elif m.start.startswith("SIP/2.0 200") and \
                "REGISTER" in (m.header("CSeq") or ""):
            ok.add(cid)
    out = {}
    for cid in ok:
        req = sent.get(cid)
        if req is None:
            continue
        to = req.header("To").strip().strip("<>")
        contact = req.header("Contact").strip().strip("<>")
        out[to] = contact
    return out, len(sent)


def add_users(h, db, inf):
    """USERS users: the first by the CLI (it makes the tables), the
    others in one sqlite3 transaction; the injection file for sipp."""
    users = [("fault%04d" % i, "pw-%04d-secret" % i) for i in range(USERS)]
    if not reglib.add_users(h, db, users[:1]):
        raise harness.Abort("sipstack user add failed")
    now = int(time.time())
    sql = ["BEGIN;"]
    for u, pw in users[1:]:
        md5 = hashlib.md5(("%s:%s:%s" % (u, REALM, pw)).encode()).hexdigest()
        sha = hashlib.sha256(("%s:%s:%s" % (u, REALM, pw)).encode()
                             ).hexdigest()
        sql.append("INSERT INTO users VALUES('%s','%s','%s','%s',%d);" %
                   (u, REALM, md5, sha, now))
    sql.append("COMMIT;")
    path = os.path.join(h.tmp, "users.sql")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(sql))
    rows = reglib.sql(h, db, ".read %s" % path, timeout=30)
    n = reglib.sql(h, db, "select count(*) from users")
    h.ok(rows is not None and n and int(n[0][0]) == USERS,
         "%d users in the database" % USERS, diag="got %r" % (n,))
    with open(inf, "w", encoding="utf-8") as f:
        f.write("SEQUENTIAL\n")
        for u, pw in users:
            f.write("%s;[authentication username=%s password=%s]\n" %
                    (u, u, pw))


def body(h, a):
    script, db = reglib.bundled_copy(h, auth=True)
    inf = os.path.join(h.tmp, "users.csv")
    add_users(h, db, inf)

    srv = h.server(script)
    sp = h.sipp(reglib.scenario("uac-register-inf.xml"), srv,
                calls=USERS, rate=RATE, timeout=60,
                args=["-inf", inf, "-key", "domain", LOCAL,
                      "-key", "expires", "3600",
                      # REGISTERs left unanswered by the killed server
                      # fail after 2 retransmissions, not 16 s
                      "-max_non_invite_retrans", "2"])

    # SIGKILL once the store holds KILL_AFTER bindings (sqlite3 reads
    # the live WAL database; polling it is harmless)
    end = time.monotonic() + 30
    n = 0
    while time.monotonic() < end and srv.alive():
        n = reglib.sql_count(h, db) or 0
        if n >= KILL_AFTER:
            break
        time.sleep(0.05)
    srv.proc.send_signal(signal.SIGKILL)
    srv.proc.wait(5)
    h.ok(srv.proc.returncode == -signal.SIGKILL,
         "SIGKILL of the server under load (%d bindings in the store then)"
         % n)
    # the files as the kill left them, before anything opens them
    snap = reglib.snapshot_db(h, db, "after-kill")

    # sipp: stop it (SIGUSR1: no new call; the calls in flight fail
    # after their retransmissions)
    time.sleep(1.0)
    if sp.proc.poll() is None:
        sp.proc.send_signal(signal.SIGUSR1)
    sp.wait(15)
    got, sent = acked(sp)
    h.ok(len(got) >= KILL_AFTER // 2 and sent > len(got),
         "sipp: %d REGISTERs sent, %d got a 200 (the kill was mid-load)"
         % (sent, len(got)))

    lost, nrows = faultlib.not_on_disk(h, snap, sorted(got.items()))
    h.ok(nrows and not lost,
         "every binding that got a 200 is in the database the kill left "
         "(%d acknowledged, %d rows)" % (len(got), nrows),
         diag="lost %d: %s" % (len(lost), "\n".join(
             "%s -> %s" % x for x in lost[:10])))
    h.check_log(srv)

    # restart on the same database
    srv2 = h.server(script, name="server-restarted")
    rc = reglib.RegClient(srv2, user="fault0000", password="pw-0000-secret")
    r = rc.register([rc.contact(2)], expires=3600)
    rc.close()
    h.ok(r is not None and r.code == 200,
         "the restarted server answers a REGISTER 200", diag="got %r" % r)
    sample = sorted(got.items())[::max(1, len(got) // 20)]
    missing = faultlib.not_found(srv2, sample)
    h.ok(not missing, "lookup after the restart: %d acknowledged users "
         "sampled, each has its contact" % len(sample),
         diag="\n".join(missing[:10]))
    h.stop_server(srv2)


if __name__ == "__main__":
    harness.test_main(__doc__.splitlines()[0], body, deadline=85)
