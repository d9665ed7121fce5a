#!/usr/bin/env python3
"""Stopping with requests still held by sleeping hooks, script
test/scripts/hold.lua (raw UDP): a MESSAGE, an OPTIONS and an INVITE
each reach a hook that sleeps 120 s; the MESSAGE is sent twice (libre's
server transaction absorbs the copy: one hook). Then SIGTERM: the server
stops cleanly, with no lvl=error line. The requests' transactions are
freed by libre with its struct sip in stack_stop, before the scripts
release the requests; a request must not free its transaction again
then (server/core/stack.c, req_track). Under valgrind (test/valgrind) a read
or free of freed memory makes the server exit 99.
"""
import os
import sys
import time

sys.dont_write_bytecode = True   # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402


def body(h, a):
    srv = h.server("hold.lua")
    cl = harness.UdpClient(srv.port)

    data, branch = cl.build("MESSAGE", ctype="text/plain", body="hold")
    cl.sock.sendto(data, cl.dst)
    cl.send("OPTIONS")
    cl.send("INVITE", set={"Contact": "<sip:raw@%s:%d>" %
                           (harness.LOCAL, cl.port)})

    want = {"ev": "log", "msg": "holding"}
    end = time.monotonic() + 20
    while len(srv.find(want)) < 3 and time.monotonic() < end and \
            srv.alive():
        time.sleep(0.05)
    held = srv.find(want)
    h.ok(len(held) == 3, "MESSAGE, OPTIONS and INVITE held by their "
         "hooks (%d)" % len(held), diag="\n".join(held), server=srv)

    cl.sock.sendto(data, cl.dst)           # the MESSAGE's copy
    time.sleep(0.5)
    n = len(srv.find({"ev": "log", "msg": "holding", "what": "message"}))
    h.ok(n == 1, "the MESSAGE's copy absorbed while held (%d hooks)" % n)

    r = cl.recv(branch, timeout=0.2)
    h.ok(r is None, "the held MESSAGE is not answered before the stop",
         diag="got %r" % r)

    h.stop_server(srv, must_not=[r"\bev=hook_error\b"])
    cl.close()


if __name__ == "__main__":
    harness.test_main(__doc__.splitlines()[0], body)
