#!/usr/bin/env python3
"""test/media/t_media.py  Media for calls on the wire (suite 'media')

sipstack runs test/media/media.lua; a raw SIP UA with an RTP socket
(medialib.py) or sipp calls it. One case per run (--case):

  play           a 1 s 1000 Hz PCM16 prompt then a 0.6 s 440 Hz mu-law
                 one: 80 packets of the prompt, 20 ms apart (loose bound
                 for a loaded machine, no drift over the whole), sequence
                 and timestamp continuous over the whole stream, the
                 marker on the prompt's first packet, the audio decoded
                 is each tone (Goertzel)
  dtmf           RFC 4733 digits interrupt a prompt and are collected,
                 a repeated digit whose end packets were lost counts
                 twice, duplicate end packets once; on_dtmf hears each
  sipp           sipp plays dtmf_2833_1.pcap and dtmf_2833_pound.pcap
                 (Debian's sip-tester); the script collects "1#"
  info           INFO application/dtmf-relay and application/dtmf
  info-plain     the same for a call without media of ours (on_dtmf)
  hangup-play, hangup-collect, hangup-record
                 a BYE while the script waits: nil, "hangup" at once
  hold           re-INVITE sendonly during a prompt: sending stops;
                 sendrecv again: it resumes
  move           re-INVITE with a new RTP port: the stream follows it
  reload         SIGHUP during a prompt: the stream goes on, a new call
                 gets media from the new generation
  record         the peer sends a 2 s 800 Hz tone; the WAV written is
                 2 s (+-0.2) and its tone is 800 Hz
  record-silence record{silence = 1, beep = true}: the beep (200 ms,
                 1 kHz) first, the caller's tone, 1 s of silence ends
  send           send_dtmf("12#"): RFC 4733 events, 3 end packets each
  send-info      the same without telephone-event: three INFOs
  out            sip.call(..., {media = true}): the server's offer,
                 its prompt and digit to the callee
  bad            missing, stereo, 16 kHz, not a WAV: each error names
                 the file and the problem
  ivr            scripts/ivr.lua with the build's prompts: the menu
                 reacts to 1 (its second prompt) and 3 (a message
                 recorded, written although the caller hangs up)

Every case ends with the server stopped cleanly and no lvl=error line.
"""
import os
import signal
import statistics
import struct
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import medialib as ml  # noqa: E402
from medialib import harness  # noqa: E402

SCRIPT = os.path.join(HERE, "media.lua")


def prompts(h):
    ml.write_wav(os.path.join(h.tmp, "tone1000.wav"), ml.tone(1000, 1.0))
    ml.write_wav(os.path.join(h.tmp, "tone440.wav"), ml.tone(440, 0.6),
                 fmt="ulaw")
    ml.write_wav(os.path.join(h.tmp, "long.wav"), ml.tone(600, 4.0))
    ml.write_wav(os.path.join(h.tmp, "stereo.wav"), ml.tone(600, 0.1),
                 channels=2)
    ml.write_wav(os.path.join(h.tmp, "rate16k.wav"), ml.tone(600, 0.1),
                 rate=16000)
    with open(os.path.join(h.tmp, "text.wav"), "w") as f:
        f.write("this is not audio\n")


def script_line(srv, msg, case, timeout=10.0):
    return srv.wait_for({"mod": "script", "msg": msg, "case": case},
                        timeout)


def field(line, key):
    return harness.parse_logfmt(line).get(key) if line else None


def start(h, case, offer_pts=(0, 8, 101)):
    srv = h.server(SCRIPT)
    rtp = ml.Rtp()
    ua = ml.Ua(srv.port)
    r = ua.invite(case, ml.sdp_offer(rtp.port, offer_pts))
    if not h.ok(r is not None and r.code == 200,
                "%s: INVITE answered 200 (%s)" % (case, r and r.code)):
        raise harness.Abort("no answer")
    sm = ml.sdp_media(r.body)
    h.ok(sm and sm[1] > 0 and sm[1] % 2 == 0 and sm[0] == ml.LOCAL,
         "%s: the answer's SDP has an even RTP port on 127.0.0.1" % case,
         diag=r.body.decode("utf-8", "replace"))
    return srv, rtp, ua


def finish(h, srv, rtp, ua, must=()):
    rtp.close()
    ua.close()
    h.stop_server(srv, must=list(must))


def audio_of(pkts):
    out = []
    for p in pkts:
        dec = ml.alaw_dec if p[4] == 8 else ml.ulaw_dec
        out += [dec(b) for b in p[5]]
    return out


def is_silence(p):
    return all(b in (0xff, 0x7f, 0xd5, 0x55) for b in p[5])


# ---------------------------------------------------------------------

def case_play(h):
    srv, rtp, ua = start(h, "play")
    played = script_line(srv, "played", "play", 10)
    h.ok(played and field(played, "digit") == "nil" and
         field(played, "err") == "nil", "play: call:play returned nil "
         "(the list played to its end)", diag=played)
    bye = ua.wait_bye(5)
    h.ok(bye is not None, "play: the script's hangup: BYE")
    time.sleep(0.1)
    pkts = [p for p in rtp.packets() if p[4] == 0]
    h.ok(len(pkts) >= 80, "play: at least 80 PCMU packets (%d)" % len(pkts))

    # the whole stream: seq +1, ts +160 each packet, one SSRC
    seq_ok = all((b[1] - a[1]) & 0xffff == 1 for a, b in zip(pkts, pkts[1:]))
    ts_ok = all((b[2] - a[2]) & 0xffffffff == 160
                for a, b in zip(pkts, pkts[1:]))
    h.ok(seq_ok, "play: sequence numbers continuous over the stream")
    h.ok(ts_ok, "play: timestamps +160 per packet over the stream")

    # the prompt: from its marker packet, 80 packets not silent
    starts = [i for i, p in enumerate(pkts) if p[3] and not is_silence(p)]
    if not h.ok(len(starts) == 1, "play: one talkspurt start (marker) "
                "with audio (%d)" % len(starts)):
        return finish(h, srv, rtp, ua)
    i0 = starts[0]
    prompt = pkts[i0:i0 + 80]
    after = pkts[i0 + 80:i0 + 85]
    h.ok(len(prompt) == 80 and not any(is_silence(p) for p in prompt[1:])
         and all(is_silence(p) for p in after),
         "play: the prompts are 80 packets (1.6 s), silence after")
    h.ok(not any(p[3] for p in prompt[1:]),
         "play: no marker inside the talkspurt (the second prompt "
         "follows the first)")

    # timing: 20 ms apart; no drift over the 80
    gaps = [(b[0] - a[0]) * 1000 for a, b in zip(prompt, prompt[1:])]
    span = (prompt[-1][0] - prompt[0][0]) * 1000
    mean = span / 79 if prompt else 0
    big = sorted(gaps)[-2] if len(gaps) > 2 else 0
    h.note("play: spacing mean %.2f ms, median %.2f, max %.2f, "
           "span %.1f ms (1580 expected)" % (mean, statistics.median(gaps),
                                            max(gaps), span))
    h.ok(abs(span - 1580) < 60, "play: 79 intervals span 1580 ms +- 60 "
         "(%.1f)" % span)
    h.ok(big < 80, "play: no gap over 80 ms but one (%.1f)" % big)

    # RTCP: a sender report (our SSRC, counts) with our CNAME, and a
    # BYE at the end (RFC 3550 §6)
    rt = [ml.rtcp_parts(d) for d in rtp.rtcp_packets()]
    srs = [c for c in rt if c and c[0][0] == 200]
    h.ok(srs and all(len(c) >= 2 and c[1][0] == 202 and b"@" in c[1][2]
                     for c in srs),
         "play: RTCP sender reports, each with an SDES CNAME (%d)" %
         len(srs), diag=repr(rt))
    if srs:
        ssrc, _, _, rts, npk, noct = struct.unpack("!IIIIII",
                                                    srs[0][0][2][:24])
        h.ok(0 < npk <= len(rtp.packets()) and noct == 160 * npk,
             "play: the report's counts (%d packets, %d octets)" %
             (npk, noct))
    h.ok(rt and any(p[0] == 203 for p in rt[-1]),
         "play: an RTCP BYE when the call ends", diag=repr(rt[-1:]))
    f1, share1 = ml.dominant(audio_of(prompt[:50]), [440, 1000])
    f2, share2 = ml.dominant(audio_of(prompt[50:80]), [440, 1000])
    h.ok(f1 == 1000 and share1 > 0.95, "play: first prompt is 1000 Hz "
         "(%d, %.3f)" % (f1, share1))
    h.ok(f2 == 440 and share2 > 0.95, "play: second prompt (mu-law file) "
         "is 440 Hz (%d, %.3f)" % (f2, share2))
    finish(h, srv, rtp, ua)


def case_dtmf(h):
    srv, rtp, ua = start(h, "dtmf")
    dst = ua.media_dst()
    time.sleep(0.5)
    rtp.send_event(dst, "5")                       # interrupts the prompt
    intr = script_line(srv, "interrupted", "dtmf", 5)
    h.ok(intr and field(intr, "digit") == "5", "dtmf: the prompt was "
         "interrupted by 5", diag=intr)
    time.sleep(0.1)
    n0 = len(rtp.packets())
    rtp.send_event(dst, "7", lose_ends=True)        # its end packets lost
    rtp.send_event(dst, "7")                        # the same digit again
    rtp.send_event(dst, "#")
    col = script_line(srv, "collected", "dtmf", 5)
    h.ok(col and field(col, "digits") == "77", "dtmf: collected 77 (a "
         "repeat after lost ends is a new digit; # ends)", diag=col)
    ons = srv.find({"mod": "script", "msg": "on_dtmf", "case": "dtmf"})
    h.ok([field(l, "digit") for l in ons] == ["5", "7", "7", "#"],
         "dtmf: on_dtmf heard 5 7 7 # once each",
         diag="\n".join(ons))
    h.ok(ons and abs(float(field(ons[0], "duration")) - 0.1) < 0.001,
         "dtmf: on_dtmf's duration is the event's (0.1 s)",
         diag=ons and ons[0])
    h.ok(len(rtp.packets()) > n0, "dtmf: our RTP kept flowing")
    ua.wait_bye(5)
    finish(h, srv, rtp, ua)


def case_sipp(h):
    srv = h.server(SCRIPT)
    sp = h.sipp(os.path.join(HERE, "uac-dtmf-2833.xml"), srv, timeout=20,
                args=["-s", "sipp"])
    h.sipp_ok(sp, "sipp: the call with RFC 4733 digits from sipp's "
              "pcaps went through (sipp exit 0)", timeout=25)
    col = script_line(srv, "collected", "sipp", 2)
    h.ok(col and field(col, "digits") == "1#", "sipp: collected 1# from "
         "dtmf_2833_1.pcap and dtmf_2833_pound.pcap", diag=col)
    h.stop_server(srv)


def case_info(h):
    srv, rtp, ua = start(h, "info")
    r1 = ua.info(b"Signal=4\r\nDuration=160\r\n", "application/dtmf-relay")
    r2 = ua.info(b"#", "application/dtmf")
    r3 = ua.info(b"Signal=9\r\nDuration=250\r\n", "application/dtmf-relay")
    h.ok(all(r is not None and r.code == 200 for r in (r1, r2, r3)),
         "info: three INFOs answered 200")
    col = script_line(srv, "collected", "info", 5)
    h.ok(col and field(col, "digits") == "4#9", "info: collected 4#9",
         diag=col)
    ons = srv.find({"mod": "script", "msg": "on_dtmf", "case": "info"})
    h.ok([field(l, "duration") for l in ons] == ["0.16", "0", "0.25"],
         "info: on_dtmf durations from Duration= (s)", diag="\n".join(ons))
    ua.wait_bye(5)
    finish(h, srv, rtp, ua)


def case_info_plain(h):
    """A call answered with the script's own SDP (no media of ours):
    with on_dtmf set, INFO digits still reach on_dtmf and collect."""
    srv = h.server(SCRIPT)
    rtp = ml.Rtp()
    ua = ml.Ua(srv.port)
    r = ua.invite("info-plain", ml.sdp_offer(rtp.port))
    h.ok(r is not None and r.code == 200, "info-plain: answered 200")
    time.sleep(0.2)
    r1 = ua.info(b"Signal=2\r\nDuration=100\r\n",
                 "application/dtmf-relay")
    r2 = ua.info(b"8", "application/dtmf")
    h.ok(r1 is not None and r1.code == 200 and r2 is not None and
         r2.code == 200, "info-plain: INFOs answered 200")
    col = script_line(srv, "collected", "info-plain", 5)
    h.ok(col and field(col, "digits") == "28", "info-plain: collected 28",
         diag=col)
    ons = srv.find({"mod": "script", "msg": "on_dtmf", "case": "info-plain"})
    h.ok([field(l, "digit") for l in ons] == ["2", "8"],
         "info-plain: on_dtmf heard both", diag="\n".join(ons))
    h.ok(not rtp.packets(), "info-plain: no RTP from us")
    ua.wait_bye(5)
    finish(h, srv, rtp, ua)


def case_hangup(h, what):
    case = "hangup-" + what
    srv, rtp, ua = start(h, case)
    time.sleep(0.8)
    t0 = time.monotonic()
    r = ua.bye()
    h.ok(r is not None and r.code == 200, "%s: BYE answered 200" % case)
    msg = {"play": "play_ended", "collect": "collect_ended",
           "record": "record_ended"}[what]
    line = script_line(srv, msg, case, 3)
    dt = time.monotonic() - t0
    h.ok(line and field(line, "err") == "hangup",
         "%s: the wait returned nil, \"hangup\"" % case, diag=line)
    h.ok(dt < 1.0, "%s: at once (%.2f s)" % (case, dt))
    if what == "play":
        after = script_line(srv, "play_after", case, 2)
        h.ok(after and field(after, "err") == "hangup",
             "%s: a play after the end returns nil, \"hangup\" at once" %
             case, diag=after)
    n = len(rtp.packets())
    time.sleep(0.3)
    h.ok(len(rtp.packets()) - n <= 1, "%s: no RTP after the call ended" %
         case)
    if what == "record":
        path = os.path.join(h.tmp, "hangup-rec.wav")
        for _ in range(50):
            if os.path.exists(path):
                break
            time.sleep(0.05)
        h.ok(os.path.exists(path), "%s: the partial recording was "
             "written" % case)
    finish(h, srv, rtp, ua)


def case_rtcp(h):
    """RFC 3550 reception report: the server's sender reports carry one
    block about the stream we send (loss, highest sequence, jitter, the
    time of our sender report echoed)."""
    srv, rtp, ua = start(h, "hangup-play")
    dst = ua.media_dst()
    rtcp_dst = (dst[0], dst[1] + 1)
    first = rtp.seq
    t0 = time.monotonic()
    ntp_mid = None
    sent = 0
    for i in range(100):                  # 2 s of mu-law, paced
        if i in (40, 41, 42, 43, 44):     # five "lost" on the way
            rtp.seq += 1
        else:
            rtp.send(dst, 0, bytes([0xff]) * 160, marker=(i == 0))
            sent += 1
        rtp.ts += 160
        if i == 50:                       # our sender report
            sec, frac = 0x0000e1e2, 0x3344a5a6
            ntp_mid = ((sec & 0xffff) << 16) | (frac >> 16)
            sr = struct.pack("!BBHIIIIII", 0x80, 200, 6, rtp.ssrc, sec,
                             frac, rtp.ts, i, i * 160)
            rtp.rtcp.sendto(sr, rtcp_dst)
            t_sr = time.monotonic()
        delay = t0 + (i + 1) * 0.02 - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    last = rtp.seq - 1
    r = ua.bye()                          # the BYE's RTCP ends it
    h.ok(r is not None and r.code == 200, "rtcp: BYE answered 200")
    t_end = time.monotonic()
    time.sleep(0.3)
    blocks = []
    for c in (ml.rtcp_parts(d) for d in rtp.rtcp_packets()):
        if c and c[0][0] == 200 and c[0][1] == 1 and len(c[0][2]) >= 48:
            blocks.append(struct.unpack("!IBBHIIII", c[0][2][24:48]))
    if not h.ok(blocks, "rtcp: a sender report with one reception report "
                "block (RC=1)"):
        return finish(h, srv, rtp, ua)
    ssrc, frac, lhi, llo, ext, jit, lsr, dlsr = blocks[-1]
    lost = (lhi << 16) | llo
    h.note("rtcp: last block: fraction %d/256, lost %d, highest %d, "
           "jitter %d, lsr %08x, dlsr %d/65536 s; %d sent of %d" % (
               frac, lost, ext, jit, lsr, dlsr, sent, last - first + 1))
    h.ok(ssrc == rtp.ssrc, "rtcp: the block is about our SSRC")
    h.ok(ext & 0xffff == last & 0xffff,
         "rtcp: extended highest sequence number %d (ours %d)" %
         (ext & 0xffff, last & 0xffff))
    h.ok(lost == 5, "rtcp: cumulative lost 5 (%d)" % lost)
    h.ok(jit < 8 * 200, "rtcp: interarrival jitter below 200 ms "
         "(%d timestamp units)" % jit)
    h.ok(lsr == ntp_mid, "rtcp: LSR echoes our sender report's NTP time "
         "(%08x, ours %08x)" % (lsr, ntp_mid or 0))
    h.ok(0 < dlsr <= (t_end - t_sr + 1.0) * 65536,
         "rtcp: DLSR %.2f s, no more than since our report (%.2f s)" %
         (dlsr / 65536, t_end - t_sr))
    finish(h, srv, rtp, ua)


def case_hold(h):
    srv, rtp, ua = start(h, "hold")
    time.sleep(0.6)
    r = ua.reinvite(ml.sdp_offer(rtp.port, direction="sendonly"))
    t_hold = time.monotonic()
    sm = ml.sdp_media(r.body) if r is not None else None
    h.ok(r is not None and r.code == 200 and sm and sm[3] == "recvonly",
         "hold: re-INVITE sendonly answered 200 recvonly",
         diag=r and r.body)
    time.sleep(0.8)
    r2 = ua.reinvite(ml.sdp_offer(rtp.port, direction="sendrecv"))
    t_unhold = time.monotonic()
    h.ok(r2 is not None and r2.code == 200, "hold: re-INVITE sendrecv "
         "answered 200")
    time.sleep(0.6)
    pkts = rtp.packets()
    during = [p for p in pkts if t_hold + 0.15 < p[0] < t_unhold]
    before = [p for p in pkts if p[0] < t_hold]
    after = [p for p in pkts if p[0] > t_unhold + 0.15]
    h.ok(len(before) > 20, "hold: RTP before the hold (%d)" % len(before))
    h.ok(len(during) == 0, "hold: no RTP while held (%d)" % len(during))
    h.ok(len(after) > 15, "hold: RTP again after unhold (%d)" % len(after))
    if after:
        h.ok(after[0][3] or any(p[3] for p in pkts if t_unhold < p[0]),
             "hold: marker on the first packet after the unhold")
        seqs = [p[1] for p in pkts]
        h.ok(all((b - a) & 0xffff == 1 for a, b in zip(seqs, seqs[1:])),
             "hold: sequence numbers continuous across the hold")
    ua.bye()
    finish(h, srv, rtp, ua)


def case_move(h):
    """A re-INVITE with a new RTP port: the stream goes there (and
    stops going to the old one)."""
    srv, rtp, ua = start(h, "hold")
    time.sleep(0.5)
    rtp2 = ml.Rtp()
    r = ua.reinvite(ml.sdp_offer(rtp2.port))
    t_move = time.monotonic()
    h.ok(r is not None and r.code == 200, "move: re-INVITE with a new "
         "port answered 200")
    time.sleep(0.6)
    old_after = [p for p in rtp.packets() if p[0] > t_move + 0.1]
    new = rtp2.packets()
    h.ok(len(new) > 15, "move: RTP at the new port (%d)" % len(new))
    h.ok(len(old_after) == 0, "move: none at the old port after the "
         "move (%d)" % len(old_after))
    if new:
        seqs = [p[1] for p in rtp.packets()] + [p[1] for p in new]
        h.ok(all((b - a) & 0xffff == 1 for a, b in zip(seqs, seqs[1:])),
             "move: one stream: sequence numbers go on across the move")
    ua.bye()
    rtp2.close()
    finish(h, srv, rtp, ua)


def case_reload(h):
    """SIGHUP while a call plays: its stream goes on in the old
    generation, and a new call is answered with media by the new one
    (the media engine is the runtime's, not a generation's)."""
    srv, rtp, ua = start(h, "hold")          # plays long.wav (4 s)
    time.sleep(0.5)
    srv.signal(signal.SIGHUP)
    h.ok(srv.wait_for(r"\bev=reloaded\b.*gen=2", 3), "reload: generation 2 "
         "loaded")
    n0 = len(rtp.packets())
    time.sleep(0.5)
    n1 = len(rtp.packets())
    h.ok(n1 - n0 >= 20, "reload: the first call's stream goes on (%d "
         "packets in 0.5 s)" % (n1 - n0))
    rtp2 = ml.Rtp()
    ua2 = ml.Ua(srv.port)
    r = ua2.invite("play", ml.sdp_offer(rtp2.port))
    h.ok(r is not None and r.code == 200, "reload: a new call answered")
    time.sleep(0.5)
    h.ok(len(rtp2.packets()) > 10, "reload: the new call's RTP flows")
    ua.bye()
    ua2.bye()
    rtp2.close()
    ua2.close()
    finish(h, srv, rtp, ua)


def case_record(h):
    srv, rtp, ua = start(h, "record")
    dst = ua.media_dst()
    time.sleep(0.1)
    rtp.send_audio(dst, ml.tone(800, 2.5))
    line = script_line(srv, "recorded", "record", 5)
    dur = field(line, "duration")
    h.ok(line and dur not in (None, "nil") and abs(float(dur) - 2.0) <= 0.2,
         "record: call:record returned about 2 s (%s)" % dur, diag=line)
    path = os.path.join(h.tmp, "rec.wav")
    try:
        rate, ch, samples = ml.read_wav(path)
    except (OSError, EOFError, Exception) as e:  # noqa: B902
        h.ok(False, "record: rec.wav readable (%s)" % e)
        return finish(h, srv, rtp, ua)
    h.ok(rate == 8000 and ch == 1, "record: rec.wav is 8 kHz mono")
    h.ok(abs(len(samples) / 8000 - 2.0) <= 0.2, "record: rec.wav lasts "
         "about 2 s (%.2f)" % (len(samples) / 8000))
    f, share = ml.dominant(samples[800:-800], [440, 800, 1000])
    h.ok(f == 800 and share > 0.9, "record: its tone is 800 Hz (%d, %.3f)"
         % (f, share))
    ua.wait_bye(5)
    finish(h, srv, rtp, ua)


def case_record_silence(h):
    """record{silence = 1, beep = true}: a 200 ms 1 kHz beep first, then
    the caller's 0.6 s tone; 1 s of silence after it ends the
    recording."""
    srv, rtp, ua = start(h, "record-silence")
    dst = ua.media_dst()
    t0 = time.monotonic()
    beep = None
    while time.monotonic() < t0 + 2 and beep is None:
        pk = [p for p in rtp.packets() if p[4] == 0]
        sp = talkspurts(pk)
        beep = sp[0] if sp else None
        time.sleep(0.05)
    time.sleep(0.3)
    pk = [p for p in rtp.packets() if p[4] == 0]
    sp = talkspurts(pk)
    h.ok(sp and 9 <= len(sp[0][1]) <= 11 and
         ml.dominant(audio_of(sp[0][1]), [440, 1000])[0] == 1000,
         "record-silence: a 200 ms 1 kHz beep first (%s packets)" %
         (len(sp[0][1]) if sp else None))
    rtp.send_audio(dst, ml.tone(700, 0.6))
    t_end = time.monotonic()
    rtp.send_audio(dst, [0] * 8000 * 2)        # silence, 2 s
    line = script_line(srv, "recorded", "record-silence", 5)
    dur = field(line, "duration")
    h.ok(line and dur not in (None, "nil"),
         "record-silence: a duration (%s)" % dur, diag=line)
    try:
        took = float(dur)
    except (TypeError, ValueError):
        took = -1
    # the tone (0.6 s) plus 1 s of silence, give or take the start
    h.ok(1.4 <= took <= 2.1, "record-silence: ended by the silence "
         "(%.2f s, tone 0.6 + silence 1.0)" % took)
    h.note("recorded ended %.2f s after the tone" %
           (time.monotonic() - t_end))
    path = os.path.join(h.tmp, "rec-silence.wav")
    if h.ok(os.path.exists(path), "record-silence: the file is there"):
        rate, ch, samples = ml.read_wav(path)
        f, share = ml.dominant(samples[:int(0.7 * 8000)], [440, 700, 1000])
        h.ok(f == 700, "record-silence: it begins with the caller's "
             "700 Hz, not the beep (%d, %.2f)" % (f, share))
    ua.wait_bye(5)
    finish(h, srv, rtp, ua)


def case_out(h):
    """sip.call(uri, nil, nil, {media = true}): the server offers
    (PCMU, PCMA, telephone-event, ptime 20), the stream starts with the
    answer: the prompt comes, a digit goes as RFC 4733, then a BYE."""
    srv = h.server(SCRIPT)
    rtp = ml.Rtp()
    ua = ml.Ua(srv.port)
    ua.callid = "md-out-%d@%s" % (ua.port, ml.LOCAL)
    ua.to = "<sip:sipstack@%s:%d>" % (ml.LOCAL, srv.port)
    b = ua.request("MESSAGE", "sip:ivr@%s:%d" % (ml.LOCAL, srv.port),
                   body=("sip:peer@%s:%d" % (ml.LOCAL, ua.port)).encode(),
                   ctype="text/plain")
    r = ua.final(b, 5)
    h.ok(r is not None and r.code == 200, "out: MESSAGE answered 200")
    inv = ua.recv(lambda m: not m.is_response and m.method == "INVITE", 5)
    if not h.ok(inv is not None, "out: the server's INVITE came"):
        return finish(h, srv, rtp, ua)
    sm = ml.sdp_media(inv.body)
    body = inv.body.decode("utf-8", "replace")
    h.ok(sm and sm[2][:2] == [0, 8] and 101 in sm[2] and
         "telephone-event/8000" in body and "a=ptime:20" in body and
         sm[1] % 2 == 0, "out: the offer: PCMU, PCMA, telephone-event, "
         "ptime 20, an even port", diag=body)
    ua.answer_invite(inv, ml.sdp_offer(rtp.port, (0, 101)))
    ua.recv(lambda m: not m.is_response and m.method == "ACK", 3)
    played = script_line(srv, "out_played", "out", 5)
    h.ok(played and field(played, "err") == "nil", "out: the prompt "
         "played", diag=played)
    sent = script_line(srv, "out_sent", "out", 5)
    h.ok(sent and field(sent, "ok") == "true", "out: send_dtmf true",
         diag=sent)
    bye = ua.wait_bye(5)
    h.ok(bye is not None, "out: the script's BYE")
    pk = rtp.packets()
    au = [p for p in pk if p[4] == 0]
    ev = [p for p in pk if p[4] == 101]
    sp = talkspurts(au)
    h.ok(sp and ml.dominant(audio_of(sp[0][1]), [440, 1000])[0] == 440,
         "out: the 440 Hz prompt came as PCMU (%d packets)" % len(au))
    h.ok(ev and ev[0][5][0] == 9, "out: digit 9 as RFC 4733 events")
    finish(h, srv, rtp, ua)


def case_send(h, info=False):
    case = "send-info" if info else "send"
    srv, rtp, ua = start(h, "send", offer_pts=(0,) if info else
                         (0, 8, 101))
    if info:
        got = []
        for _ in range(3):
            m = ua.recv(lambda m: not m.is_response and m.method == "INFO",
                        5)
            if m is None:
                break
            got.append((m.header("Content-Type"), m.body))
            ua.reply(m, 200, "OK")
        h.ok([g[1].split(b"\r\n")[0] for g in got] ==
             [b"Signal=1", b"Signal=2", b"Signal=#"] and
             all(g[0] == "application/dtmf-relay" for g in got),
             "%s: three INFO dtmf-relay: 1 2 #" % case, diag=repr(got))
    sent = script_line(srv, "sent", "send", 6)
    h.ok(sent and field(sent, "ok") == "true", "%s: send_dtmf returned "
         "true" % case, diag=sent)
    ua.wait_bye(5)
    if not info:
        ev = [p for p in rtp.packets() if p[4] == 101]
        by_ts = {}
        for p in ev:
            by_ts.setdefault(p[2], []).append(p)
        digits = ["0123456789*#"[by_ts[t][0][5][0]] for t in
                  sorted(by_ts, key=lambda t: by_ts[t][0][0])]
        h.ok(digits == ["1", "2", "#"], "send: three events 1 2 # "
             "(one timestamp each)", diag=repr(digits))
        h.ok(all(sum(1 for p in v if p[5][1] & 0x80) == 3
                 for v in by_ts.values()),
             "send: each event ends with 3 end packets")
        h.ok(all(v[0][3] and not any(p[3] for p in v[1:])
                 for v in by_ts.values()),
             "send: marker on each event's first packet only")
    finish(h, srv, rtp, ua)


def case_bad(h):
    srv, rtp, ua = start(h, "bad")
    ua.wait_bye(8)
    lines = srv.find({"mod": "script", "msg": "bad_prompt"})
    errs = {field(l, "file"): field(l, "err") or "" for l in lines}
    h.ok(errs.get("missing.wav", "").endswith("missing.wav: missing"),
         "bad: missing file named", diag=repr(errs))
    h.ok("stereo.wav: 2 channels" in errs.get("stereo.wav", ""),
         "bad: stereo refused, named", diag=repr(errs))
    h.ok("rate16k.wav: sample rate 16000 Hz" in errs.get("rate16k.wav", ""),
         "bad: 16 kHz refused, named", diag=repr(errs))
    h.ok("text.wav: not a WAV file" in errs.get("text.wav", ""),
         "bad: not a WAV, named", diag=repr(errs))
    finish(h, srv, rtp, ua)


def talkspurts(pkts):
    """[(start index, packets)] of the non-silent runs of pkts, each
    begun by a marker packet."""
    out = []
    cur = None
    for i, p in enumerate(pkts):
        if p[3] and not is_silence(p):
            cur = [i, []]
            out.append(cur)
        if cur is not None:
            if is_silence(p) and len(cur[1]) and is_silence(pkts[i - 1]):
                cur = None
                continue
            cur[1].append(p)
    return out


def case_ivr(h):
    """scripts/ivr.lua with the build's prompts: the menu plays, 1 plays
    the second prompt (a 440 Hz tune), 3 records a message (written
    even though the caller hangs up during it)."""
    link = os.path.join(h.tmp, "build", "scripts")
    os.makedirs(link)
    os.symlink(h.args.prompts, os.path.join(link, "prompts"))
    ivr = os.path.join(os.path.dirname(os.path.dirname(HERE)), "scripts",
                       "ivr.lua")
    srv = h.server(ivr)
    rtp = ml.Rtp()
    ua = ml.Ua(srv.port)
    r = ua.invite("ivr", ml.sdp_offer(rtp.port))
    if not h.ok(r is not None and r.code == 200, "ivr: answered"):
        return finish(h, srv, rtp, ua)
    dst = ua.media_dst()
    time.sleep(1.0)
    rtp.send_event(dst, "1")
    time.sleep(1.2)
    pk = [p for p in rtp.packets() if p[4] == 0]
    spurts = talkspurts(pk)
    h.ok(len(spurts) >= 2, "ivr: the welcome prompt, then another (%d)" %
         len(spurts))
    if len(spurts) >= 2:
        f0, _ = ml.dominant(audio_of(spurts[0][1][:10]), [523, 440, 784])
        f1, _ = ml.dominant(audio_of(spurts[1][1][:10]), [523, 440, 784])
        h.ok(f0 == 523 and f1 == 440, "ivr: welcome begins at 523 Hz, "
             "option 1 is 440 Hz (%d, %d)" % (f0, f1))
    time.sleep(0.3)
    rtp.send_event(dst, "3")
    time.sleep(1.6)                       # record.wav, then the beep
    rtp.send_audio(dst, ml.tone(1000, 0.6))
    ua.bye()
    line = srv.wait_for({"mod": "script", "msg": "message"}, 3)
    f = field(line, "file")
    h.ok(line and field(line, "err") == "hangup" and f,
         "ivr: record ended by the hangup, logged", diag=line)
    path = os.path.join("/tmp", f or "none")
    for _ in range(40):
        if os.path.exists(path):
            break
        time.sleep(0.05)
    if h.ok(os.path.exists(path), "ivr: the message was written (%s)" %
            path):
        rate, ch, samples = ml.read_wav(path)
        fq, share = ml.dominant(samples, [440, 1000, 523])
        h.ok(fq == 1000 and share > 0.8, "ivr: the message holds the "
             "caller's 1000 Hz (%d, %.2f)" % (fq, share))
        os.unlink(path)
    finish(h, srv, rtp, ua)


CASES = {
    "ivr": case_ivr,
    "play": case_play,
    "dtmf": case_dtmf,
    "sipp": case_sipp,
    "info": case_info,
    "info-plain": case_info_plain,
    "hangup-play": lambda h: case_hangup(h, "play"),
    "hangup-collect": lambda h: case_hangup(h, "collect"),
    "hangup-record": lambda h: case_hangup(h, "record"),
    "hold": case_hold,
    "rtcp": case_rtcp,
    "move": case_move,
    "reload": case_reload,
    "record": case_record,
    "record-silence": case_record_silence,
    "send": case_send,
    "out": case_out,
    "send-info": lambda h: case_send(h, info=True),
    "bad": case_bad,
}


def main():
    def extra(ap):
        ap.add_argument("--case", required=True, choices=sorted(CASES))
        ap.add_argument("--prompts", help="the build's prompts of "
                        "scripts/ivr.lua (scripts/prompts)")

    def body(h, args):
        prompts(h)
        CASES[args.case](h)

    harness.test_main("media on the wire", body, extra_args=extra)


if __name__ == "__main__":
    main()
