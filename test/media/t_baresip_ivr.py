#!/usr/bin/env python3
"""Interop: baresip (Debian package baresip-core 1.0.0) calls
scripts/ivr.lua (suite 'media', test media-baresip-ivr).

baresip runs headless as in test/interop/t_baresip.py (its Baresip
class: ausine 440 Hz as its microphone, aubridge as its speaker) with
the cons module, so that the test can press keys. It dials
sip:ivr@sipstack: the call is answered with the server's media;
baresip reports RTP received from the server's port ("incoming rtp ...
established") and a received bit rate of 64 kbit/s (G.711: the prompts
and the silence between them); baresip hangs up (-t) while the menu
waits, and the call ends cleanly. Keys: baresip 1.0's cons module did
not turn a key sent to it into a digit in this setup (tried "3", "3"
then KEYCODE_REL, "5\n"), so the digits of the menu are tested with
sipp's pcaps and the raw UA of t_media.py instead. Without baresip (or
a module) the test reports itself skipped.
"""
import os
import re
import sys

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
INTEROP = os.path.join(os.path.dirname(HERE), "interop")
sys.path.insert(0, HERE)
sys.path.insert(0, INTEROP)
import medialib  # noqa: E402,F401  (puts test/sipp on the path)
from medialib import harness  # noqa: E402
import t_baresip as tb  # noqa: E402
import t_baresip_xfer as tx  # noqa: E402

LOCAL = harness.LOCAL
IVR = os.path.join(os.path.dirname(os.path.dirname(HERE)), "scripts",
                   "ivr.lua")


def args(ap):
    ap.add_argument("--baresip", default="", help="path of baresip")
    ap.add_argument("--prompts", required=True,
                    help="the build's prompts of scripts/ivr.lua")


def body(h, a):
    link = os.path.join(h.tmp, "build", "scripts")
    os.makedirs(link)
    os.symlink(a.prompts, os.path.join(link, "prompts"))
    srv = h.server(IVR)
    user = "bs%d" % os.getpid()
    bs = tx.with_console(tb.Baresip(
        h, "baresip-ivr", "<sip:%s@%s;transport=udp>;regint=0" %
        (user, LOCAL), 9, ["/dial sip:ivr@%s:%d" % (LOCAL, srv.port)]))
    bs.start()
    up = bs.wait_for(r"Call established: ", 6.0)
    h.ok(up, "baresip's call to ivr.lua is established", diag=bs.tail())
    rtp = bs.wait_for(r"incoming rtp for 'audio' established, "
                      r"receiving from 127\.0\.0\.1:(\d+)", 4.0)
    h.ok(rtp, "baresip receives the server's RTP", diag=bs.tail())
    rate = bs.wait_for(r"audio=\d+/(6[0-9]\d\d\d) \(bit/s\)", 5.0)
    h.ok(rate, "baresip's received bit rate is G.711's 64 kbit/s",
         diag=bs.tail())
    bs.wait()
    ended = srv.wait_for({"mod": "call", "ev": "ended"}, 5)
    h.ok(ended and "remote hangup" in ended, "baresip's hangup ended "
         "the call (the menu's waits returned)", diag=ended, server=srv)
    tr = bs.trace()
    inv = [m for d, m in tr if d == "sent" and m.method == "INVITE"]
    te = bool(inv and re.search(rb"telephone-event", inv[0].body or b""))
    h.note("baresip offered telephone-event: %s" % te)
    h.stop_server(srv)


def missing():
    """Why the test cannot run, or None."""
    import argparse
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--baresip", default="")
    known, _ = pre.parse_known_args()
    if not known.baresip or not os.access(known.baresip, os.X_OK):
        return "baresip is not installed (Debian package baresip-core)"
    d = tb.module_dir()
    lack = [m for m in tb.MODULES + ("cons.so",)
            if not d or not os.path.exists(os.path.join(d, m))]
    if lack:
        return "baresip modules missing: %s" % ", ".join(lack)
    return None


def main():
    why = missing()
    if why:
        print("1..0 # SKIP %s" % why)
        return 0
    harness.test_main("media: baresip calls scripts/ivr.lua", body,
                      extra_args=args)


if __name__ == "__main__":
    sys.exit(main())
