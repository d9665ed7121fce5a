#!/usr/bin/env python3
"""A full disk under the location store while registering (issue 13
item 8): 500, never a 200 for an unstored binding, recovery.

The database of a copy of the bundled scripts/registrar.lua (SQLite,
AUTH = false) lives on a 2 MiB tmpfs mounted for the test in its temp
dir, which the test fills (root may mount here; file modes would not
stop root, a read-only remount is refused while the server holds the
database open for writing, and a read-only bind mount on top would not
affect the descriptors it has open). Where mounting is not permitted
(a container without CAP_SYS_ADMIN), the fault is the server's file
size limit instead: RLIMIT_FSIZE lowered to 1 byte on the running
server (prlimit), so that every write to a regular file fails (EFBIG;
the server is started with SIGXFSZ ignored and its log on a pipe, which
the limit does not concern), then raised again.

- 20 users register: 200 each.
- The tmpfs is filled (a filler file written until ENOSPC), or the
  limit lowered. 20 new
  users register: each REGISTER gets 500 (SQLITE_FULL at commit), or,
  if SQLite still found room, 200 and the binding is on disk; at least
  one 500 is seen (the fault was real); a binding answered 500 is not
  in the lookups either. Every user that ever got a 200
  is in the database (read from a copy, sqlite3 CLI), and a lookup of
  the first 20 still answers.
- The filler is removed (the limit raised): the 20 new users register
  again (a few tries
  each, no timing asserted), 200 each, and are on disk and found.
- The server stops cleanly; its only lvl=error lines are the store's
  ev=commit_failed.
"""
import errno
import os
import resource
import signal
import subprocess
import sys
import threading
import time

sys.dont_write_bytecode = True   # no __pycache__ in the source tree
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "registrar"))
import reglib  # noqa: E402
from reglib import harness  # noqa: E402
import faultlib  # noqa: E402

USERS = 20


# one client per user, open for the whole test: a new socket could get
# the port of a closed one, and with it the Via branch of its first
# request, which the server rightly takes for a retransmission of that
# request (RFC 3261 17.2.3) and answers from the transaction it keeps
CLIENTS = {}


def register(srv, user):
    rc = CLIENTS.get(user)
    if rc is None:
        rc = CLIENTS[user] = reglib.RegClient(srv, user=user)
    contact = rc.contact(1)
    r = rc.register([contact], expires=3600, timeout=5.0)
    return (r.code if r is not None else None), rc.aor, contact


def fill(path):
    """Write zeros into path until the file system is full; bytes
    written."""
    n = 0
    chunk = b"\0" * 65536
    with open(path, "wb", buffering=0) as f:
        while True:
            try:
                n += f.write(chunk)
            except OSError as e:
                if e.errno != errno.ENOSPC:
                    raise
                break
        try:                    # the last partial page too
            while f.write(b"\0" * 512):
                n += 512
        except OSError:
            pass
    return n


class FullDisk:
    """The fault: a tmpfs filled up, then emptied."""
    name = "a full tmpfs"

    def __init__(self, h, disk):
        self.h = h
        self.disk = disk
        self.filler = os.path.join(disk, "filler")

    def server(self, script):
        return self.h.server(script)

    def on(self, srv):
        self.h.note("filler: %d bytes, the tmpfs is full" %
                    fill(self.filler))

    def off(self, srv):
        os.unlink(self.filler)


def _ignore_xfsz():
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


class PipedServer(harness.Server):
    """A server whose log comes through a pipe (copied to its log file
    by a thread), SIGXFSZ ignored: RLIMIT_FSIZE must not stop it
    logging, nor kill it."""

    def start(self, wait=True, timeout=harness.START_TIMEOUT):
        self.h.note("%s: %s" % (self.name, " ".join(self.cmd)))
        self.proc = self.h.spawn(self.cmd, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.PIPE, cwd=self.cwd,
                                 preexec_fn=_ignore_xfsz)
        log = open(self.log_path, "wb")

        def pump():
            for line in self.proc.stderr:
                log.write(line)
                log.flush()
            log.close()
        threading.Thread(target=pump, daemon=True).start()
        return self.wait_for(r"\bmod=main ev=started\b", timeout) \
            is not None


class FileSizeLimit:
    """The fault: the running server's RLIMIT_FSIZE at 1 byte."""
    name = "RLIMIT_FSIZE at 1 byte"

    def __init__(self, h):
        self.h = h

    def server(self, script):
        srv = PipedServer(self.h, script, "server-%d" % self.h.next_id())
        self.h.servers.append(srv)
        up = srv.start()
        self.h.ok(up, "%s: started, its log on a pipe" % srv.name,
                  server=srv)
        if not up:
            raise harness.Abort("the server did not start")
        return srv

    def on(self, srv):
        resource.prlimit(srv.proc.pid, resource.RLIMIT_FSIZE,
                         (1, resource.RLIM_INFINITY))

    def off(self, srv):
        resource.prlimit(srv.proc.pid, resource.RLIMIT_FSIZE,
                         (resource.RLIM_INFINITY, resource.RLIM_INFINITY))


def body(h, a):
    disk = os.path.join(h.tmp, "disk")
    os.makedirs(disk)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m,mode=0755",
                        "tmpfs", disk], capture_output=True, text=True)
    mounted = r.returncode == 0
    if mounted:
        fault = FullDisk(h, disk)
    else:
        h.note("cannot mount a tmpfs here (%s): the fault is the file "
               "size limit" % (r.stderr.strip() or r.returncode))
        fault = FileSizeLimit(h)
    try:
        run(h, fault, disk)
    finally:
        for rc in CLIENTS.values():
            rc.close()
        for srv in h.servers:
            srv.stop()
        if mounted:
            subprocess.run(["umount", "-l", disk], capture_output=True)


def run(h, fault, disk):
    script, db = reglib.bundled_copy(h, db=os.path.join(disk, "reg.db"),
                                     auth=False)
    srv = fault.server(script)
    acked = []          # (aor, contact) that got a 200

    bad = []
    for i in range(USERS):
        code, aor, contact = register(srv, "before%02d" % i)
        if code == 200:
            acked.append((aor, contact))
        else:
            bad.append("%s: %s" % (aor, code))
    h.ok(not bad, "%d users register before the fault: 200 each" % USERS,
         diag="\n".join(bad))

    fault.on(srv)

    codes = {}
    during = []
    for i in range(USERS):
        code, aor, contact = register(srv, "during%02d" % i)
        codes[code] = codes.get(code, 0) + 1
        during.append((aor, contact))
        if code == 200:
            acked.append((aor, contact))
    h.ok(codes.get(500, 0) >= 1 and
         set(codes) <= {200, 500},
         "%s: REGISTERs answered 500 (or 200 when SQLite still had "
         "room): %r" % (fault.name, codes))
    h.ok(srv.find({"ev": "commit_failed"}),
         "the store logged ev=commit_failed")
    lost, nrows = faultlib.not_on_disk(h, db, acked)
    h.ok(not lost, "every binding that got a 200 is on disk (%d acked, "
         "%d rows)" % (len(acked), nrows), diag="\n".join(
             "%s -> %s" % x for x in lost[:10]))
    refused = [x for x in during if x not in acked]
    if refused:
        found = reglib.where(srv, refused[0][0], timeout=5.0)
        h.ok(found is not None and refused[0][1] not in
             [u for u, _, _ in found],
             "a binding answered 500 is not in the store's lookups "
             "either", diag="got %r" % found)
    found = reglib.where(srv, acked[0][0], timeout=5.0) if acked else None
    h.ok(found and acked[0][1] in [u for u, _, _ in found],
         "a lookup during the fault still answers", diag="got %r" % found)

    fault.off(srv)
    bad = []
    for aor, contact in during:
        user = aor.split(":", 1)[1].split("@", 1)[0]
        for _ in range(10):
            code, _, _ = register(srv, user)
            if code == 200:
                break
            time.sleep(0.3)
        if code == 200:
            acked.append((aor, contact))
        else:
            bad.append("%s: %s" % (aor, code))
    h.ok(not bad, "fault gone: the %d users of the fault register, 200 "
         "each" % USERS, diag="\n".join(bad))
    lost, nrows = faultlib.not_on_disk(h, db, acked)
    h.ok(not lost, "every binding that got a 200 is on disk (%d rows)"
         % nrows, diag="\n".join("%s -> %s" % x for x in lost[:10]))
    missing = faultlib.not_found(srv, during)
    h.ok(not missing, "lookup after the recovery finds them",
         diag="\n".join(missing[:5]))
    h.stop_server(srv, errors=[{"ev": "commit_failed"}])


if __name__ == "__main__":
    harness.test_main(__doc__.splitlines()[0], body, deadline=85)
