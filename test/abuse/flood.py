#!/usr/bin/env python3
"""test/abuse/flood.py  A UDP flood of garbage and valid INVITEs

    flood.py --port P [--bind 127.0.0.1] [--rate 50000] [--seconds 4]

Sends to 127.0.0.1:P from --bind, at --rate datagrams per second for
--seconds, then prints one JSON line: {"sent": N, "seconds": S, "rate":
R}. Half of the datagrams are valid INVITEs, each a new call (its own
Call-ID, tag and branch: a number written into the datagram before it
leaves), with an SDP body; the other half garbage of several kinds
(random bytes, a bare start line, a request missing its headers, a
response to nothing, a CRLF keep-alive). All are built before the clock
starts; the loop then only numbers the INVITEs, calls sendto() and,
every CHUNK datagrams, sleeps if it is ahead of the rate. Python has no
sendmmsg(); this loop reaches about 100,000/s on loopback, so the rate
asked for is what limits it unless the machine is busy (the JSON line
says what it got). A separate process, so that the flood does not share
the test's GIL.
"""
import argparse
import json
import os
import random
import socket
import time

CHUNK = 250
NUM = b"@@@@@@@@@@"         # where each INVITE gets its number


def invite(i, local, lport, dst):
    body = ("v=0\r\no=flood %d 1 IN IP4 %s\r\ns=-\r\nc=IN IP4 %s\r\n"
            "t=0 0\r\nm=audio %d RTP/AVP 0\r\n" %
            (i, local, local, 20000 + 2 * (i % 10000)))
    return ("INVITE sip:victim@%s:%d SIP/2.0\r\n"
            "Via: SIP/2.0/UDP %s:%d;branch=z9hG4bK-fl-%d-@@@@@@@@@@\r\n"
            "Max-Forwards: 70\r\n"
            "From: <sip:flood@%s>;tag=fl%d\r\n"
            "To: <sip:victim@%s:%d>\r\n"
            "Call-ID: flood-%d-@@@@@@@@@@@%s\r\n"
            "CSeq: 1 INVITE\r\n"
            "Contact: <sip:flood@%s:%d>\r\n"
            "User-Agent: flood\r\n"
            "Content-Type: application/sdp\r\n"
            "Content-Length: %d\r\n\r\n%s" %
            (dst[0], dst[1], local, lport, os.getpid(), local, i,
             dst[0], dst[1], os.getpid(), local, local, lport,
             len(body), body)).encode()


def garbage(i, rnd, dst):
    kind = i % 5
    if kind == 0:
        return bytes(rnd.getrandbits(8) for _ in range(rnd.randint(1, 600)))
    if kind == 1:
        return b"INVITE sip:victim@%s SIP/2.0\r\n\r\n" % dst[0].encode()
    if kind == 2:
        return (b"OPTIONS sip:x SIP/2.0\r\nVia: SIP/2.0/UDP 1.2.3.4\r\n"
                b"Call-ID: %d\r\n\r\n" % i)
    if kind == 3:
        return (b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP %s;branch=z9hG4bK%d"
                b"\r\nCall-ID: g%d\r\nCSeq: 1 INVITE\r\nFrom: <sip:a@b>;"
                b"tag=1\r\nTo: <sip:c@d>;tag=2\r\nContent-Length: 0\r\n"
                b"\r\n" % (dst[0].encode(), i, i))
    return b"\r\n\r\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--bind", default="127.0.0.1")
    ap.add_argument("--rate", type=float, default=50000)
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--count", type=int, default=20000,
                    help="distinct datagrams built (then cycled)")
    a = ap.parse_args()

    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    s.bind((a.bind, 0))
    lport = s.getsockname()[1]
    dst = (a.host, a.port)
    rnd = random.Random(13)
    data = []
    for i in range(a.count):
        if i % 2:
            d = bytearray(invite(i, a.bind, lport, dst))
            offs = []
            at = d.find(NUM)
            while at >= 0:
                offs.append(at)
                at = d.find(NUM, at + len(NUM))
            data.append((d, offs))
        else:
            data.append((garbage(i, rnd, dst), None))
    # shuffled: a limiter letting one datagram through every 1/rate s
    # must not see only one kind (50,000/s over 200/s is even)
    rnd.shuffle(data)
    chunks = [data[i:i + CHUNK] for i in range(0, len(data), CHUNK)]

    sendto = s.sendto
    sent = num = 0
    t0 = time.monotonic()
    end = t0 + a.seconds
    k = 0
    while True:
        for d, offs in chunks[k]:
            if offs:
                num += 1
                b = b"%010d" % num
                for o in offs:
                    d[o:o + 10] = b
            try:
                sendto(d, dst)
            except OSError:          # ENOBUFS: the kernel's, not ours
                continue
        sent += len(chunks[k])
        k = (k + 1) % len(chunks)
        now = time.monotonic()
        if now >= end:
            break
        ahead = t0 + sent / a.rate - now
        if ahead > 0:
            time.sleep(min(ahead, end - now))
    took = time.monotonic() - t0
    print(json.dumps({"sent": sent, "seconds": round(took, 3),
                      "rate": round(sent / took)}), flush=True)


if __name__ == "__main__":
    main()
