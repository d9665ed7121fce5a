#!/usr/bin/env python3
"""Interop: baresip (Debian package baresip-core 1.0.0) calls
scripts/ivr.lua and goes through its menu with RFC 4733 digits (suite
'media', test media-baresip-ivr).

baresip runs headless as in test/interop/t_baresip.py (its Baresip
class: aubridge as its speaker) with ausine at 600 Hz as its microphone
(a tone none of the prompts has), the cons module (a UDP console: the
test types menu commands into it) and the sndfile module, which writes
what baresip decodes from the server into dump-<time>-dec.wav. It
dials sip:ivr@sipstack; the call is answered with the server's media.

Digits: baresip 1.0 sends a digit as an RFC 4733 telephone-event only
(no INFO; nothing without telephone-event in the answer), from its
menu module. A key typed into cons ("3") is a key press without a
release: libre's telev then updates the held event for as long as the
key is down and sipstack, which takes a digit when its event ends
(docs/lua-api.md), sees none; the menu command "/sndcode <digits>"
presses and releases (as would "3" then KEYCODE_REL, 0x04), and that is
what the test types: "/sndcode 1" during the welcome prompt, "/sndcode
3" about a second later.

Checks: the call is established and baresip receives the server's RTP
(from its port, 64 kbit/s); baresip's offer has telephone-event and our
answer has it with the same payload type; baresip sent both digits
(press and end); what baresip heard, in order: the welcome prompt (523
Hz), cut short by 1, option 1's 440 Hz, then, 3 having been pressed,
the record prompt and the 1 kHz beep of call:record, and never the
"invalid" prompt's 330 Hz; baresip hangs up (-t) while the message is
recorded: the call ends ("remote hangup"), the script logs
msg=message err=hangup with the file's name, and the file appears in
scripts/ivr.lua's recordings directory (/tmp): 8 kHz mono, at least 1 s
and no longer than the call, and mostly baresip's 600 Hz. baresip exits
0 with no warning or error line; the server no lvl=error line. About
10 s. Without baresip (or a module) the test reports itself skipped.
"""
import glob
import os
import re
import sys
import time

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
INTEROP = os.path.join(os.path.dirname(HERE), "interop")
sys.path.insert(0, HERE)
sys.path.insert(0, INTEROP)
import medialib as ml  # noqa: E402  (puts test/sipp on the path)
from medialib import harness  # noqa: E402
import t_baresip as tb  # noqa: E402
import t_baresip_xfer as tx  # noqa: E402

LOCAL = harness.LOCAL
IVR = os.path.join(os.path.dirname(os.path.dirname(HERE)), "scripts",
                   "ivr.lua")
RECORDINGS = "/tmp"       # scripts/ivr.lua's RECORDINGS
RUN_FOR = 9               # baresip -t: hangs up while the message records
TONE = 600                # baresip's microphone: in no prompt
# what baresip may hear (scripts/prompts/make_prompts.py, the beep)
WELCOME, OPTION1, BEEP, INVALID = 523, 440, 1000, 330
HEARD = (523, 659, 784, 880, 440, 1000, 330, 294, TONE)
WINDOW = 400              # samples: 50 ms


def args(ap):
    ap.add_argument("--baresip", default="", help="path of baresip")
    ap.add_argument("--prompts", required=True,
                    help="the build's prompts of scripts/ivr.lua")


def with_dump(bs, path):
    """Add the sndfile module: baresip writes what it sends and what it
    decodes into path (dump-<time>-enc.wav, dump-<time>-dec.wav)."""
    os.makedirs(path)
    with open(os.path.join(bs.conf, "config"), "a") as f:
        f.write("module\t\t\tsndfile.so\nsnd_path\t\t%s\n" % path)
    return bs


def tones(samples):
    """The tunes in samples: [(frequency or 0 for silence, windows)],
    one item per run of 50 ms windows with the same dominant tone."""
    runs = []
    for i in range(0, len(samples) - WINDOW + 1, WINDOW):
        w = samples[i:i + WINDOW]
        f = 0 if max(abs(x) for x in w) < 1000 else ml.dominant(w, HEARD)[0]
        if runs and runs[-1][0] == f:
            runs[-1][1] += 1
        else:
            runs.append([f, 1])
    return runs


def first(runs, freq, after=0):
    """Index of the first run of freq at or after index after, or -1."""
    for i in range(after, len(runs)):
        if runs[i][0] == freq:
            return i
    return -1


def telephone_event(body):
    """The payload type of telephone-event/8000 in an SDP, or None."""
    m = re.search(rb"(?m)^a=rtpmap:(\d+) telephone-event/8000",
                  body or b"")
    return int(m.group(1)) if m else None


def body(h, a):
    link = os.path.join(h.tmp, "build", "scripts")
    os.makedirs(link)
    os.symlink(a.prompts, os.path.join(link, "prompts"))
    srv = h.server(IVR)
    user = "bs%d" % os.getpid()
    dump = os.path.join(h.tmp, "heard")
    bs = with_dump(tx.with_console(tb.Baresip(
        h, "baresip-ivr", "<sip:%s@%s;transport=udp>;regint=0" %
        (user, LOCAL), RUN_FOR, ["/dial sip:ivr@%s:%d" % (LOCAL, srv.port)],
        tone=TONE)), dump)
    bs.start()
    up = bs.wait_for(r"Call established: ", 6.0)
    h.ok(up, "baresip's call to ivr.lua is established", diag=bs.tail())
    if up:
        # digits pressed early wait for the menu (type-ahead), so the
        # pauses only place them in the prompts; none is a deadline
        time.sleep(0.8)
        tx.command(bs, "/sndcode 1")
        time.sleep(1.2)
        tx.command(bs, "/sndcode 3")
    rtp = bs.wait_for(r"incoming rtp for 'audio' established, "
                      r"receiving from 127\.0\.0\.1:(\d+)", 4.0)
    h.ok(rtp, "baresip receives the server's RTP", diag=bs.tail())
    rate = bs.wait_for(r"audio=\d+/(6[0-9]\d\d\d) \(bit/s\)", 5.0)
    h.ok(rate, "baresip's received bit rate is G.711's 64 kbit/s",
         diag=bs.tail())
    rc = bs.wait()
    text = bs.text()

    # the SDP: telephone-event offered and answered, same payload type
    tr = bs.trace()
    inv = [m for d, m in tr if d == "sent" and m.method == "INVITE"]
    ans = [m for d, m in tr if d == "received" and m.code == 200 and
           "INVITE" in (m.header("CSeq") or "")]
    pt_offer = telephone_event(inv[0].body) if inv else None
    pt_answer = telephone_event(ans[0].body) if ans else None
    h.ok(pt_offer is not None and pt_answer == pt_offer,
         "baresip offers telephone-event/8000 (%s), our answer has it "
         "with that payload type (%s)" % (pt_offer, pt_answer),
         diag=tb.flow(tr))
    for d in "13":
        h.ok(re.search(r"audio: send DTMF digit: '%s'" % d, text) and
             re.search(r"audio: send DTMF digit end: '%s'" % d, text),
             "baresip sent %s (press and end, RFC 4733)" % d,
             diag=bs.tail())

    # the call's end, the script's message
    ended = srv.wait_for({"mod": "call", "ev": "ended"}, 5)
    h.ok(ended and "remote hangup" in ended, "baresip's hangup ended "
         "the call during the recording", diag=ended, server=srv)
    line = srv.wait_for({"mod": "script", "msg": "message"}, 3)
    msg = harness.parse_logfmt(line) if line else {}
    name = msg.get("file")
    h.ok(msg.get("err") == "hangup" and name and
         name.startswith(user + "-"),
         "3: the menu recorded a message, ended by the hangup (msg=message "
         "err=hangup file=%s-...)" % user, diag=line, server=srv)

    # what baresip heard: welcome, 1 -> option 1, 3 -> record, beep
    decs = glob.glob(os.path.join(dump, "dump-*-dec.wav"))
    runs = []
    if h.ok(len(decs) == 1, "baresip's sndfile wrote what it heard",
            diag="%r" % (decs,)):
        rate_hz, ch, samples = ml.read_wav(decs[0])
        runs = tones(samples) if (rate_hz, ch) == (8000, 1) else []
    h.note("heard (Hz x 50 ms): %s" % " ".join(
        "%dx%d" % (f, n) for f, n in runs))
    w = first(runs, WELCOME)
    o = first(runs, OPTION1, w + 1) if w >= 0 else -1
    b = first(runs, BEEP, o + 1) if o >= 0 else -1
    h.ok(w >= 0 and o > w,
         "1: baresip heard the welcome prompt, then option 1's 440 Hz",
         diag="runs %r" % runs)
    h.ok(b > o >= 0,
         "3: then the record prompt's beep (1 kHz)", diag="runs %r" % runs)
    h.ok(runs and first(runs, INVALID) < 0,
         "the menu never played \"invalid\" (330 Hz)", diag="runs %r" % runs)

    # the recording, in scripts/ivr.lua's directory
    path = os.path.join(RECORDINGS, name or "none")
    for _ in range(60):
        if os.path.exists(path):
            break
        time.sleep(0.05)
    if h.ok(name and os.path.exists(path),
            "the message was written (%s)" % path):
        rate_hz, ch, samples = ml.read_wav(path)
        secs = len(samples) / float(rate_hz or 1)
        h.ok((rate_hz, ch) == (8000, 1) and 1.0 <= secs <= RUN_FOR,
             "the message is 8 kHz mono, %.2f s (1 to %d s)" % (
                 secs, RUN_FOR), diag="%d Hz, %d channel(s)" % (rate_hz, ch))
        fq, share = ml.dominant(samples, HEARD) if samples else (0, 0)
        h.ok(fq == TONE and share > 0.8, "the message holds baresip's "
             "%d Hz (%d Hz, share %.2f)" % (TONE, fq, share))
        os.unlink(path)

    h.ok(rc == 0, "baresip -t %d exits by itself, status 0 (%s)" %
         (RUN_FOR, rc), diag=bs.tail())
    bad = re.findall(r"\x1b\[3[13]m([^\x1b]*)", text)
    h.ok(not bad, "baresip printed no warning or error",
         diag="\n".join(x.strip() for x in bad[:10]))
    h.stop_server(srv, must_not=[{"ev": "hook_error"}])




def main():
    why = tb.missing(("cons.so",))
    if why:
        print("1..0 # SKIP %s" % why)
        return 0
    harness.test_main("media: baresip calls scripts/ivr.lua", body,
                      extra_args=args)


if __name__ == "__main__":
    sys.exit(main())
