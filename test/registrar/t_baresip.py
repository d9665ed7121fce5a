#!/usr/bin/env python3
"""Interop: baresip (Debian package baresip-core) registers with a
password to a copy of the bundled scripts/registrar.lua (auth on, MD5).

baresip runs headless from a config dir in the temp dir: `config` with
sip_listen 127.0.0.1:<free port>, module_path and one module only,
account.so (module_tmp: it reads `accounts` and is unloaded; no UI,
audio or video module), and `accounts` with
`<sip:alice@127.0.0.1:<registrar port>;transport=udp>;auth_pass=secret;
regint=600`. It is started with stdin closed, `-s` (SIP trace on
stdout) and `-t 4` (quit after 4 s, unregistering on the way out), and
killed if it outlives that.

Checks: while baresip runs, the registrar's lookup (MESSAGE `where`)
of alice gives baresip's contact (127.0.0.1 and its sip_listen port)
and the database row carries baresip's User-Agent; baresip exits 0 and
its output reports the registration ("200 OK ... [1 binding]") and its
trace shows the binding is exactly the Contact it sent; after
its exit the binding is gone (baresip unregistered); the registrar
logged no auth failure and no lvl=error.

Without baresip installed the test reports itself skipped (TAP 1..0).
"""
import os
import re
import shutil
import subprocess
import sys
import time

sys.dont_write_bytecode = True   # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reglib  # noqa: E402
from reglib import harness  # noqa: E402

LOCAL = reglib.LOCAL
RUN_FOR = 4          # baresip -t: seconds before it quits by itself


def args(ap):
    ap.add_argument("--baresip", default=shutil.which("baresip") or "",
                    help="path of baresip")


def body(h, a):
    script, db = reglib.bundled_copy(h)
    if not reglib.add_users(h, db, [("alice", "secret")]):
        raise harness.Abort("cannot add the user")
    srv = h.server(script)

    conf = os.path.join(h.tmp, "baresip")
    os.makedirs(conf)
    bport = harness.free_port(("udp", "tcp"))
    modpath = "/usr/lib/baresip/modules"
    for cand in ("/usr/lib/baresip/modules",
                 "/usr/lib/x86_64-linux-gnu/baresip/modules",
                 "/usr/local/lib/baresip/modules"):
        if os.path.exists(os.path.join(cand, "account.so")):
            modpath = cand
            break
    with open(os.path.join(conf, "config"), "w") as f:
        f.write("# written by test/registrar/t_baresip.py\n"
                "poll_method\t\tepoll\n"
                "sip_listen\t\t%s:%d\n"
                "module_path\t\t%s\n"
                "module_tmp\t\taccount.so\n" % (LOCAL, bport, modpath))
    aor = "sip:alice@%s:%d" % (LOCAL, srv.port)
    with open(os.path.join(conf, "accounts"), "w") as f:
        f.write("<%s;transport=udp>;auth_pass=secret;regint=600\n" % aor)

    out_path = os.path.join(h.tmp, "baresip.out")
    cmd = [a.baresip, "-f", conf, "-s", "-t", str(RUN_FOR)]
    h.note("baresip: %s" % " ".join(cmd))
    t0 = time.monotonic()
    with open(out_path, "wb") as out:
        proc = h.spawn(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=h.tmp)

    # the binding shows up while baresip runs
    seen = None
    qc = harness.UdpClient(srv.port)
    while time.monotonic() < t0 + RUN_FOR - 0.5 and proc.poll() is None:
        b = reglib.where(srv, aor, cl=qc)
        if b:
            seen = b
            break
        time.sleep(0.1)
    # libre makes the contact user unique: alice-0x55d0c0ffee00
    uri_ok = bool(seen) and len(seen) == 1 and re.match(
        r"^sip:alice(-[^@]*)?@%s:%d(;.*)?$" % (re.escape(LOCAL), bport),
        seen[0][0])
    h.ok(uri_ok and 590 <= seen[0][1] <= 600,
         "while baresip runs, the lookup of %s gives baresip's contact "
         "(sip:alice...@%s:%d, expires ~600)" % (aor, LOCAL, bport),
         diag="got %r after %.1f s" % (seen, time.monotonic() - t0))
    rows = reglib.sql(h, db, "select contact, user_agent from bindings "
                      "where aor = '%s'" % aor)
    h.ok(rows and len(rows) == 1 and "baresip" in rows[0][1].lower(),
         "the database row carries baresip's User-Agent",
         diag="rows %r" % (rows,))

    try:
        rc = proc.wait(RUN_FOR + 6)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)
        rc = "killed after %d s" % (RUN_FOR + 6)
    with open(out_path, "rb") as f:
        out = f.read().decode("utf-8", "replace")
    h.ok(rc == 0, "baresip -t %d exits by itself, status 0 (%s)" %
         (RUN_FOR, rc), diag=out[-2000:])
    m = re.search(r"(?m)^REGISTER sip:.*\n(?:.+\n)*?Contact: <([^>]+)>",
                  out)
    h.ok(m and seen and seen[0][0] == m.group(1),
         "the binding is exactly the Contact of baresip's REGISTER (from "
         "its SIP trace, -s)", diag="trace: %r, binding: %r" % (
             m.group(1) if m else None, seen))
    h.ok(re.search(r"alice@%s.*\b200 OK\b.*\[1 binding\]" %
                   re.escape(LOCAL), out),
         "baresip reports the registration: \"alice@...: ... 200 OK "
         "(sipstack-registrar) [1 binding]\"", diag=out[-2000:])

    gone = None
    end = time.monotonic() + 2.0
    while time.monotonic() < end:
        gone = reglib.where(srv, aor, cl=qc)
        if gone == []:
            break
        time.sleep(0.1)
    qc.close()
    h.ok(gone == [], "after baresip quit, its binding is gone (it "
         "unregistered)", diag="got %r" % (gone,))
    h.stop_server(srv, must_not=[r"\bev=auth_failed\b",
                                 r"\bev=auth_replay\b"])


if __name__ == "__main__":
    pre = harness.argparse.ArgumentParser(add_help=False)
    args(pre)
    known, _ = pre.parse_known_args()
    if not known.baresip or not os.access(known.baresip, os.X_OK):
        print("1..0 # SKIP baresip is not installed (Debian package "
              "baresip-core, see make deps)")
        sys.exit(0)
    harness.test_main("registrar: interop with baresip", body,
                      extra_args=args)
