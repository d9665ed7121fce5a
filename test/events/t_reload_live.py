#!/usr/bin/env python3
"""Hot reload with live calls and subscriptions (docs/lua-api.md: a
reload makes a new generation; what the old one took keeps running in
it).

sipstack runs a copy of test/events/reload_live.lua (VERSION = 1). A
call and a subscription are set up, the copy is rewritten with
VERSION = 2 and SIGHUP sent (ev=reloaded gen=2). Then:
  - the old call's INFO runs its on_info of version 1, its BYE its
    on_terminated of version 1;
  - the old subscription's refresh runs on_refresh of version 1 (the
    NOTIFY says <v>1</v>), its un-SUBSCRIBE on_end of version 1;
  - a new call and a new subscription are served by version 2;
and nothing failed on the way (no lvl=error, stats end at 0).
"""
import os
import signal
import sys

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "sipp"))
import harness  # noqa: E402
from t_events import Peer, Subscriber, body_of, wait_stats  # noqa: E402
from t_transfer import Caller  # noqa: E402


def script_copy(h, version):
    src = open(os.path.join(HERE, "reload_live.lua")).read()
    src = src.replace("local VERSION = 1", "local VERSION = %d" % version)
    path = os.path.join(h.tmp, "reload_live.lua")
    with open(path, "w") as f:
        f.write(src)
    return path


def body(h, args):
    path = script_copy(h, 1)
    srv = h.server(path)

    a = Peer(srv.port)
    old_call = Caller(a, srv)
    r = old_call.call()
    h.ok(r and r.code == 200, "old call answered")
    s = Peer(srv.port)
    old_sub = Subscriber(s, srv, "old")
    r = old_sub.subscribe()
    n = old_sub.notify()
    h.ok(r and r.code == 200 and n and body_of(n) == b"<v>1</v>",
         "old subscription: 200 and NOTIFY <v>1</v>")

    script_copy(h, 2)
    mark = srv.mark()
    srv.signal(signal.SIGHUP)
    h.ok(srv.wait_for(r"\bev=reloaded\b.* gen=2\b", 5, after=mark),
         "SIGHUP: ev=reloaded gen=2", server=srv)

    r = old_call.req("INFO")
    h.ok(r and r.code == 200, "old call: INFO -> 200")
    h.ok(srv.wait_for({"msg": "info", "call_id": old_call.callid,
                       "version": "1"}, 3),
         "old call's on_info ran in version 1", server=srv)
    r = old_sub.subscribe(expires=60)
    n = old_sub.notify()
    h.ok(r and r.code == 200 and n and body_of(n) == b"<v>1</v>",
         "old subscription's refresh answered by version 1 (<v>1</v>)",
         diag=n and repr(n.body))
    h.ok(srv.wait_for({"msg": "refresh", "call_id": old_sub.callid,
                       "version": "1"}, 3), "on_refresh of version 1",
         server=srv)

    b = Peer(srv.port)
    new_call = Caller(b, srv)
    new_call.callid = "new-" + new_call.callid
    r = new_call.call()
    h.ok(r and r.code == 200 and
         srv.wait_for({"msg": "answered", "call_id": new_call.callid,
                       "version": "2"}, 3),
         "a new call is answered by version 2", server=srv)
    t = Peer(srv.port)
    new_sub = Subscriber(t, srv, "new")
    r = new_sub.subscribe()
    n = new_sub.notify()
    h.ok(r and r.code == 200 and n and body_of(n) == b"<v>2</v>",
         "a new subscription is served by version 2")

    for c in (old_call, new_call):
        r = c.req("BYE")
        h.ok(r and r.code == 200, "BYE -> 200")
    for sb in (old_sub, new_sub):
        r = sb.subscribe(expires=0)
        sb.notify()
    h.ok(srv.wait_for({"msg": "call_end", "call_id": old_call.callid,
                       "version": "1"}, 3) and
         srv.wait_for({"msg": "call_end", "call_id": new_call.callid,
                       "version": "2"}, 3),
         "each call's on_terminated ran in its own version", server=srv)
    h.ok(srv.wait_for({"msg": "sub_end", "call_id": old_sub.callid,
                       "version": "1"}, 3) and
         srv.wait_for({"msg": "sub_end", "call_id": new_sub.callid,
                       "version": "2"}, 3),
         "each subscription's on_end ran in its own version", server=srv)
    got = wait_stats(h, srv, "subscriptions=0 dialogs=0")
    h.ok(got and "subscriptions=0 dialogs=0" in got,
         "no subscription or dialog left", diag=got)
    h.stop_server(srv)


if __name__ == "__main__":
    harness.test_main(__doc__.splitlines()[0], body)
