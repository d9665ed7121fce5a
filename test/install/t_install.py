#!/usr/bin/env python3
"""test/install/t_install.py  `meson install`, then the installed program

Installs the build into a temporary DESTDIR (`meson install --no-rebuild
--destdir`), checks what landed where (the binary, the bundled scripts,
the man page, the systemd unit and sysusers.d file), that the generated
unit names the installed paths, then runs the installed binary the way
the unit does: the installed registrar.lua, in a working directory of its
own where the script's sipstack.db must appear, on a free port of
127.0.0.1. An OPTIONS gets 200, `sipstack user add` writes that database
while the server runs, SIGTERM stops it with status 0 and no lvl=error
line. Everything is under the harness's temp dir, removed at the end
(kept on failure); the whole test is bounded by the harness's alarm.

Paths are the build's (dist/meson.build passes them): --prefix, --bindir,
--scripts, --man1, --unit, --sysusers, all absolute as configured.
"""
import filecmp
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.dont_write_bytecode = True   # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "sipp"))
import harness  # noqa: E402

SCRIPTS = ("registrar.lua", "simple_ua.lua", "default.lua", "ivr.lua",
           "proxy.lua")


def extra_args(ap):
    ap.add_argument("--meson", required=True)
    ap.add_argument("--build-root", required=True)
    for name in ("prefix", "bindir", "scripts", "man1", "unit", "sysusers"):
        ap.add_argument("--" + name, required=True)


def unit_entries(text):
    """[(key, value)] of a unit file's assignments, in order."""
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in "#;[" or "=" not in line:
            continue
        k, v = line.split("=", 1)
        out.append((k.strip(), v.strip()))
    return out


def body(h, a):
    dest = os.path.join(h.tmp, "destdir")

    def staged(path):
        """Where an installed absolute path is under DESTDIR."""
        return os.path.join(dest, path.lstrip("/"))

    # -- install ------------------------------------------------------
    rc, out, err = h.run([a.meson, "install", "-C", a.build_root,
                          "--no-rebuild", "--quiet", "--destdir", dest],
                         timeout=40)
    if not h.ok(rc == 0, "meson install --destdir into a temp dir "
                "(exit %s)" % rc, diag=(out + err)[-3000:]):
        raise harness.Abort("meson install failed")

    exe = staged(os.path.join(a.bindir, "sipstack"))
    h.ok(os.path.isfile(exe) and os.access(exe, os.X_OK),
         "binary installed, executable: %s" % exe)
    for s in SCRIPTS:
        p = staged(os.path.join(a.scripts, s))
        h.ok(os.path.isfile(p) and filecmp.cmp(
            p, os.path.join(ROOT, "scripts", s), shallow=False),
            "bundled script installed as is: %s" % p)
    man = staged(os.path.join(a.man1, "sipstack.1"))
    h.ok(os.path.isfile(man) and filecmp.cmp(
        man, os.path.join(ROOT, "docs", "sipstack.1"), shallow=False),
        "man page installed: %s" % man)
    sysusers = staged(os.path.join(a.sysusers, "sipstack.conf"))
    h.ok(os.path.isfile(sysusers) and re.search(
        r"(?m)^u\s+sipstack\s", open(sysusers, encoding="utf-8").read()),
        "sysusers.d file creating the user sipstack installed: %s" %
        sysusers)

    # -- the unit -----------------------------------------------------
    unit = staged(os.path.join(a.unit, "sipstack.service"))
    if not h.ok(os.path.isfile(unit), "systemd unit installed: %s" % unit):
        raise harness.Abort("no unit")
    text = open(unit, encoding="utf-8").read()
    left = re.findall(r"@[A-Za-z_]+@", text)
    h.ok(not left, "unit: every @variable@ substituted", diag=str(left))
    e = unit_entries(text)
    kv = {}
    for k, v in e:
        kv.setdefault(k, []).append(v)
    exec_start = (kv.get("ExecStart") or [""])[0].split()
    h.ok(exec_start[:1] == [os.path.join(a.bindir, "sipstack")],
         "unit: ExecStart runs the installed binary (%s)" %
         " ".join(exec_start))
    env = dict(v.split("=", 1) for v in kv.get("Environment", [])
               if "=" in v)
    want_script = os.path.join(a.scripts, "registrar.lua")
    h.ok(env.get("SIPSTACK_SCRIPT") == want_script and
         "${SIPSTACK_SCRIPT}" in exec_start and
         "$SIPSTACK_OPTS" in exec_start,
         "unit: runs $SIPSTACK_OPTS ${SIPSTACK_SCRIPT}, the script "
         "defaulting to the installed registrar.lua (%s)" %
         env.get("SIPSTACK_SCRIPT"))
    for k, v in (("User", "sipstack"), ("Group", "sipstack"),
                 ("EnvironmentFile", "-/etc/default/sipstack"),
                 ("ExecReload", "/bin/kill -HUP $MAINPID"),
                 ("Restart", "on-failure"),
                 ("StateDirectory", "sipstack"),
                 ("WorkingDirectory", "%S/sipstack"),
                 ("AmbientCapabilities", "CAP_NET_BIND_SERVICE"),
                 ("CapabilityBoundingSet", "CAP_NET_BIND_SERVICE"),
                 ("NoNewPrivileges", "yes"),
                 ("ProtectSystem", "strict"),
                 ("StandardError", "journal"),
                 ("WantedBy", "multi-user.target")):
        h.ok(kv.get(k) == [v], "unit: %s=%s" % (k, v),
             diag="found: %s" % kv.get(k))

    # -- the installed binary -----------------------------------------
    rc, out, err = h.run([exe, "--version"])
    h.ok(rc == 0 and re.match(r"sipstack \S+ \(libre 1\.1\.", out),
         "installed sipstack --version: %s" % out.strip(), diag=err)
    script = staged(want_script)
    rc, out, err = h.run([exe, "--check", script])
    h.ok(rc == 0 and out.strip() == "%s: ok" % script,
         "installed sipstack --check on the installed registrar.lua",
         diag=out + err)

    # as the unit runs it: the installed script, a state dir as the
    # working directory (the script's relative sipstack.db goes there)
    state = os.path.join(h.tmp, "state")
    os.mkdir(state)
    h.sipstack = exe
    srv = h.server(script, name="installed", cwd=state)
    h.ok(srv.cmd[0] == exe, "the server started is the installed binary")
    db = os.path.join(state, "sipstack.db")
    h.ok(os.path.isfile(db), "the script's database is in the working "
         "directory: %s" % db, server=srv)

    cl = harness.UdpClient(srv.port)
    r = cl.request("OPTIONS")
    h.ok(r is not None and r.code == 200, "OPTIONS -> 200 from the "
         "installed server (got %s)" % (r and r.start), server=srv)
    cl.close()

    rc, out, err = h.run([exe, "user", "add", "alice", "secret", "--db",
                          db], cwd=state)
    h.ok(rc == 0, "installed sipstack user add alice into that database "
         "while the server runs", diag=out + err)
    rc, out, err = h.run([exe, "user", "list", "--db", db], cwd=state)
    h.ok(rc == 0 and re.match(r"alice\tsipstack\t", out),
         "sipstack user list shows alice in realm sipstack",
         diag=out + err)

    h.stop_server(srv, must=[{"mod": "main", "ev": "started"}])


if __name__ == "__main__":
    harness.test_main("meson install into a temp dir, run what it "
                      "installed", body, extra_args=extra_args)
