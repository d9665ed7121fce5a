"""test/media/medialib.py  Helpers of the media wire tests

A SIP user agent on a UDP socket of 127.0.0.1 (INVITE with an SDP offer,
ACK, BYE, re-INVITE, INFO, answers to the server's requests), an RTP
endpoint beside it (a thread receiving every packet with its arrival
time; RFC 4733 events and G.711 audio sent), G.711 decoding written
from the standard (not the server's code), WAV prompts made with the
wave module, and a Goertzel filter to tell a tone. Standard library
only; everything on 127.0.0.1.
"""
import math
import os
import re
import socket
import struct
import sys
import threading
import time
import wave

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "sipp"))
import harness  # noqa: E402

LOCAL = "127.0.0.1"


# ---------------------------------------------------------------------
# Audio
# ---------------------------------------------------------------------

def ulaw_dec(u):
    u = ~u & 0xff
    exp = (u >> 4) & 7
    mant = u & 0x0f
    v = (((mant << 3) + 0x84) << exp) - 0x84
    return -v if u & 0x80 else v


def alaw_dec(a):
    a ^= 0x55
    exp = (a >> 4) & 7
    mant = a & 0x0f
    v = (mant << 4) + 8 if exp == 0 else ((mant << 4) + 0x108) << (exp - 1)
    return v if a & 0x80 else -v


def ulaw_enc(x):
    """Linear 16 bits to mu-law (ITU-T G.711)."""
    sign = 0x80 if x < 0 else 0
    x = min(abs(x), 32635) + 0x84
    exp = 7
    while exp > 0 and not x & (0x4000 >> (7 - exp)):
        exp -= 1
    mant = (x >> (exp + 3)) & 0x0f
    return ~(sign | (exp << 4) | mant) & 0xff


def tone(freq, seconds, amp=8000, rate=8000):
    n = int(seconds * rate)
    return [int(amp * math.sin(2 * math.pi * freq * i / rate))
            for i in range(n)]


def write_wav(path, samples, fmt="pcm16", rate=8000, channels=1):
    """A WAV file; fmt pcm16 through the wave module, ulaw by hand (the
    wave module writes PCM only)."""
    if fmt == "pcm16":
        with wave.open(path, "wb") as w:
            w.setnchannels(channels)
            w.setsampwidth(2)
            w.setframerate(rate)
            data = b"".join(struct.pack("<h", s) for s in samples
                            for _ in range(channels))
            w.writeframes(data)
        return
    data = bytes(ulaw_enc(s) for s in samples)
    fmtc = struct.pack("<HHIIHH", 7, 1, rate, rate, 1, 8)
    riff = (b"WAVE" + b"fmt " + struct.pack("<I", len(fmtc)) + fmtc +
            b"data" + struct.pack("<I", len(data)) + data)
    with open(path, "wb") as f:
        f.write(b"RIFF" + struct.pack("<I", len(riff)) + riff)


def read_wav(path):
    with wave.open(path, "rb") as w:
        n = w.getnframes()
        data = w.readframes(n)
        return (w.getframerate(), w.getnchannels(),
                list(struct.unpack("<%dh" % n, data)))


def goertzel(samples, freq, rate=8000):
    """Relative power of freq in samples."""
    k = 2 * math.cos(2 * math.pi * freq / rate)
    s1 = s2 = 0.0
    for x in samples:
        s0 = x + k * s1 - s2
        s2, s1 = s1, s0
    return (s1 * s1 + s2 * s2 - k * s1 * s2) / max(1, len(samples))


def dominant(samples, freqs):
    """The frequency of freqs strongest in samples, and its share."""
    p = {f: goertzel(samples, f) for f in freqs}
    best = max(p, key=p.get)
    return best, p[best] / max(1e-9, sum(p.values()))


# ---------------------------------------------------------------------
# RTP
# ---------------------------------------------------------------------

class Rtp:
    """An RTP socket (and its RTCP one above); a thread keeps every
    packet received as (arrival, seq, ts, marker, pt, payload, src)."""

    def __init__(self):
        for _ in range(50):
            port = harness.free_port(("udp",), span=2)
            if port % 2 == 0:
                break
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((LOCAL, port))
        self.rtcp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.rtcp.bind((LOCAL, port + 1))
        self.rtcp.setblocking(False)
        self.port = port
        self.pkts = []
        self.lock = threading.Lock()
        self.stop = False
        self.seq = 1000
        self.ts = 50000
        self.ssrc = 0x1234abcd
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        self.sock.settimeout(0.1)
        while not self.stop:
            try:
                data, src = self.sock.recvfrom(2048)
            except socket.timeout:
                continue
            except OSError:
                return
            t = time.monotonic()
            if len(data) < 12:
                continue
            b0, b1, seq, ts, _ = struct.unpack("!BBHII", data[:12])
            with self.lock:
                self.pkts.append((t, seq, ts, bool(b1 & 0x80), b1 & 0x7f,
                                  data[12:], src))

    def packets(self):
        with self.lock:
            return list(self.pkts)

    def rtcp_packets(self):
        """The RTCP datagrams received so far (compound packets)."""
        out = []
        while True:
            try:
                out.append(self.rtcp.recv(2048))
            except (BlockingIOError, OSError):
                return out

    def close(self):
        self.stop = True
        self.t.join(1)
        self.sock.close()
        self.rtcp.close()

    def send(self, dst, pt, payload, marker=False, ts=None):
        ts = self.ts if ts is None else ts
        hdr = struct.pack("!BBHII", 0x80, (0x80 if marker else 0) | pt,
                          self.seq & 0xffff, ts & 0xffffffff, self.ssrc)
        self.seq += 1
        self.sock.sendto(hdr + payload, dst)

    def send_event(self, dst, digit, pt=101, packets=5, ends=3,
                   lose_ends=False):
        """One RFC 4733 event, paced at 20 ms; lose_ends: its end packets
        are 'lost' (not sent)."""
        code = "0123456789*#ABCD".index(digit)
        ts = self.ts
        for k in range(packets):
            self.send(dst, pt, struct.pack("!BBH", code, 10, (k + 1) * 160),
                      marker=(k == 0), ts=ts)
            time.sleep(0.02)
        if not lose_ends:
            for _ in range(ends):
                self.send(dst, pt, struct.pack("!BBH", code, 0x80 | 10,
                                               packets * 160), ts=ts)
        self.ts += (packets + 2) * 160

    def send_audio(self, dst, samples, pt=0):
        """samples as mu-law packets of 20 ms, paced."""
        t0 = time.monotonic()
        for i in range(0, len(samples), 160):
            chunk = bytes(ulaw_enc(s) for s in samples[i:i + 160])
            self.send(dst, pt, chunk, marker=(i == 0))
            self.ts += 160
            delay = t0 + (i // 160 + 1) * 0.02 - time.monotonic()
            if delay > 0:
                time.sleep(delay)


def rtcp_parts(data):
    """[(packet type, count field, body)] of a compound RTCP packet."""
    out = []
    while len(data) >= 4:
        b0, pt, ln = struct.unpack("!BBH", data[:4])
        size = 4 * (ln + 1)
        out.append((pt, b0 & 0x1f, data[4:size]))
        data = data[size:]
    return out


# ---------------------------------------------------------------------
# SIP
# ---------------------------------------------------------------------

def tag_of(value):
    m = re.search(r";\s*tag=([^;>\s]+)", value or "")
    return m.group(1) if m else None


def sdp_offer(rtp_port, pts=(0, 8, 101), direction="sendrecv",
              addr=LOCAL):
    lines = ["v=0", "o=peer 1 %d IN IP4 %s" % (int(time.time()), LOCAL),
             "s=media test", "c=IN IP4 %s" % addr, "t=0 0",
             "m=audio %d RTP/AVP %s" % (rtp_port,
                                        " ".join(str(p) for p in pts))]
    names = {0: "PCMU/8000", 8: "PCMA/8000", 101: "telephone-event/8000"}
    for p in pts:
        lines.append("a=rtpmap:%d %s" % (p, names[p]))
    if 101 in pts:
        lines.append("a=fmtp:101 0-15")
    lines.append("a=ptime:20")
    lines.append("a=" + direction)
    return ("\r\n".join(lines) + "\r\n").encode()


def sdp_media(body):
    """(address, port, [payload types], direction) of an SDP body."""
    text = body.decode("utf-8", "replace")
    c = re.search(r"(?m)^c=IN IP4 (\S+)", text)
    m = re.search(r"(?m)^m=audio (\d+) RTP/AVP ([\d ]+)", text)
    d = re.search(r"(?m)^a=(sendrecv|sendonly|recvonly|inactive)", text)
    if not c or not m:
        return None
    return (c.group(1), int(m.group(1)),
            [int(p) for p in m.group(2).split()],
            d.group(1) if d else "sendrecv")


class Ua:
    """A SIP UA calling sipstack from one UDP socket."""

    def __init__(self, srv_port):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((LOCAL, 0))
        self.port = self.sock.getsockname()[1]
        self.dst = (LOCAL, srv_port)
        self.srv_port = srv_port
        self.kept = []
        self.n = 0
        self.cseq = 0
        self.callid = None
        self.ftag = "f%d" % self.port
        self.to = None
        self.answer = None

    def close(self):
        self.sock.close()

    def _send(self, data):
        self.sock.sendto(data, self.dst)

    def request(self, method, ruri, hdrs=(), body=b"", ctype=None,
                cseq=None):
        self.n += 1
        if cseq is None:
            self.cseq += 1
            cseq = self.cseq
        branch = "z9hG4bK-md-%d-%d" % (self.port, self.n)
        lines = ["%s %s SIP/2.0" % (method, ruri),
                 "Via: SIP/2.0/UDP %s:%d;branch=%s;rport" %
                 (LOCAL, self.port, branch),
                 "Max-Forwards: 70",
                 "From: <sip:peer@%s:%d>;tag=%s" % (LOCAL, self.port,
                                                    self.ftag),
                 "To: %s" % self.to,
                 "Call-ID: %s" % self.callid,
                 "CSeq: %d %s" % (cseq, "ACK" if method == "ACK"
                                  else method),
                 "Contact: <sip:peer@%s:%d>" % (LOCAL, self.port)]
        lines += ["%s: %s" % nv for nv in hdrs]
        if body:
            lines.append("Content-Type: %s" % (ctype or "application/sdp"))
        lines.append("Content-Length: %d" % len(body))
        self._send(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        return branch

    def reply(self, req, code, reason):
        lines = ["SIP/2.0 %d %s" % (code, reason)]
        lines += ["Via: %s" % v for v in req.headers_all("Via")]
        lines += ["From: %s" % req.header("From"),
                  "To: %s" % req.header("To"),
                  "Call-ID: %s" % req.header("Call-ID"),
                  "CSeq: %s" % req.header("CSeq"),
                  "Content-Length: 0"]
        self.sock.sendto(("\r\n".join(lines) + "\r\n\r\n").encode(),
                         req.src)

    def answer_invite(self, req, body):
        """200 to an INVITE of the server's, with our To tag, Contact
        and an SDP body; the dialog's target becomes its Contact."""
        to = req.header("To")
        if not tag_of(to):
            to += ";tag=t%d" % self.port
        lines = ["SIP/2.0 200 OK"]
        lines += ["Via: %s" % v for v in req.headers_all("Via")]
        lines += ["From: %s" % req.header("From"), "To: %s" % to,
                  "Call-ID: %s" % req.header("Call-ID"),
                  "CSeq: %s" % req.header("CSeq"),
                  "Contact: <sip:peer@%s:%d>" % (LOCAL, self.port),
                  "Content-Type: application/sdp",
                  "Content-Length: %d" % len(body)]
        self.sock.sendto(("\r\n".join(lines) + "\r\n\r\n").encode() + body,
                         req.src)

    def recv(self, want, timeout=5.0):
        for m in self.kept:
            if want(m):
                self.kept.remove(m)
                return m
        end = time.monotonic() + timeout
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                data, src = self.sock.recvfrom(65535)
            except socket.timeout:
                return None
            m = Msg(data)
            m.src = src
            if want(m):
                return m
            self.kept.append(m)

    def final(self, branch, timeout=5.0):
        return self.recv(lambda m: m.is_response and m.code >= 200 and
                         branch in (m.header("Via") or ""), timeout)

    def invite(self, user, body):
        """INVITE sip:user@server with body; the final response (a 2xx
        ACKed)."""
        self.ruri = "sip:%s@%s:%d" % (user, LOCAL, self.srv_port)
        self.callid = "md-%s-%d@%s" % (user, self.port, LOCAL)
        self.to = "<%s>" % self.ruri
        self.target = self.ruri
        b = self.request("INVITE", self.ruri, body=body)
        r = self.final(b, 8.0)
        if r is not None and r.code < 300:
            self.to = r.header("To")
            c = re.search(r"<([^>]+)>", r.header("Contact") or "")
            if c:
                self.target = c.group(1)
            self.answer = r.body
            self.request("ACK", self.target, cseq=self.cseq)
        elif r is not None:
            self.request("ACK", self.ruri, cseq=self.cseq)
        return r

    def reinvite(self, body):
        b = self.request("INVITE", self.target, body=body)
        r = self.final(b, 5.0)
        if r is not None:
            self.request("ACK", self.target, cseq=self.cseq)
        return r

    def bye(self):
        b = self.request("BYE", self.target)
        return self.final(b, 5.0)

    def info(self, body, ctype):
        b = self.request("INFO", self.target, body=body, ctype=ctype)
        return self.final(b, 5.0)

    def wait_bye(self, timeout=8.0):
        m = self.recv(lambda m: not m.is_response and m.method == "BYE",
                      timeout)
        if m is not None:
            self.reply(m, 200, "OK")
        return m

    def media_dst(self):
        sm = sdp_media(self.answer or b"")
        return (sm[0], sm[1]) if sm else None


class Msg(harness.SipMsg):
    def headers_all(self, name):
        out = []
        for line in self.raw.partition(b"\r\n\r\n")[0].decode(
                "utf-8", "replace").split("\r\n")[1:]:
            n, _, v = line.partition(":")
            if n.strip().lower() == name.lower():
                out.append(v.strip())
        return out
