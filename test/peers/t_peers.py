#!/usr/bin/env python3
"""sipstack calls sipstack, and sipstack answers a digest challenge.

Two servers on free ports of 127.0.0.1: A (caller.lua) is told by a
MESSAGE whom to call. Case "prack": B (callee.lua) sends a reliable 183
with an offer, its 200 waits for A's PRACK (RFC 3262), then A holds
(re-INVITE sendonly -> B answers recvonly) and resumes, and hangs up.
Case "auth": A calls sipp (uas-auth-401.xml), which challenges with
401 (MD5, qop=auth) and checks the digest with verifyauth: the right
password is answered 200, a wrong one 403. Prints TAP.

usage: t_peers.py SIPSTACK SIPP CASE
"""
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
results = []


def check(ok, name, diag=""):
    results.append(bool(ok))
    print("%s %d - %s" % ("ok" if ok else "not ok", len(results), name))
    if not ok and diag:
        for line in diag.splitlines()[-20:]:
            print("# " + line)


def free_port():
    while True:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            t.bind(("127.0.0.1", port))
            t.close()
            return port
        except OSError:
            t.close()


def start(binary, script, port, log):
    f = open(log, "w")
    p = subprocess.Popen([binary, "--listen", "udp:127.0.0.1:%d" % port,
                          os.path.join(HERE, script)],
                         stdout=f, stderr=subprocess.STDOUT)
    deadline = time.time() + 5
    while time.time() < deadline:
        if "ev=started" in open(log).read():
            return p
        time.sleep(0.05)
    return p


def stop(p):
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def message(port, body):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(2)
    lp = s.getsockname()[1]
    cid = os.urandom(6).hex()
    m = ("MESSAGE sip:a@127.0.0.1:%d SIP/2.0\r\n"
         "Via: SIP/2.0/UDP 127.0.0.1:%d;branch=z9hG4bK%s;rport\r\n"
         "From: <sip:t@127.0.0.1>;tag=%s\r\nTo: <sip:a@127.0.0.1>\r\n"
         "Call-ID: %s\r\nCSeq: 1 MESSAGE\r\nMax-Forwards: 70\r\n"
         "Content-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s"
         % (port, lp, cid, cid, cid, len(body), body))
    s.sendto(m.encode(), ("127.0.0.1", port))
    try:
        return s.recv(4000).decode(errors="replace")
    except socket.timeout:
        return ""
    finally:
        s.close()


def wait_log(path, pattern, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        text = open(path).read()
        if re.search(pattern, text):
            return text
        time.sleep(0.1)
    return None


def case_prack(binary, tmp):
    pa, pb = free_port(), free_port()
    la, lb = os.path.join(tmp, "a.log"), os.path.join(tmp, "b.log")
    a = start(binary, "caller.lua", pa, la)
    b = start(binary, "callee.lua", pb, lb)
    try:
        r = message(pa, "call sip:b@127.0.0.1:%d" % pb)
        check(r.startswith("SIP/2.0 200"), "A takes the order", r)
        text = wait_log(la, r"msg=\"A stats\"", 10)
        check(text, "A's call ran to its end", open(la).read())
        text = text or open(la).read()
        btext = open(lb).read()
        check(re.search(r'msg="A ringing" code=183', text),
              "A got the reliable 183", text)
        check(re.search(r"method=PRACK", btext) or
              re.search(r"ev=state .*to=Answering", btext),
              "B answered (after the PRACK)", btext)
        check(re.search(r'msg="A answer" ok=true', text),
              "A's call answered", text)
        check(re.search(r'msg="A hold".*ok=true', text) and
              re.search(r'msg="A hold".*peer=recvonly', text) and
              re.search(r'msg="A hold".*state=Hold', text),
              "hold: re-INVITE sendonly answered recvonly, state Hold",
              text)
        check(re.search(r'msg="B hold" dir=sendonly', btext),
              "B saw the hold (sendonly)", btext)
        unhold = re.search(r'msg="A unhold".*', text)
        check(unhold and "ok=true" in unhold.group(0) and
              "state=Connected" in unhold.group(0) and
              re.search(r'msg="B unhold"', btext),
              "unhold both sides", text + btext)
        check(re.search(r'msg="B ended" reason="remote hangup"', btext),
              "B heard the BYE", btext)
        check(re.search(r'msg="A stats" (calls=0 dialogs=0|dialogs=0 '
                        r'calls=0)', text), "A's tables are empty", text)
        check("lvl=error" not in text + btext, "no error logged",
              text + btext)
    finally:
        stop(a)
        stop(b)


def case_auth(binary, sipp, tmp):
    for password, code in (("secret", "ok=true"),
                           ("wrong", "err=rejected code=403")):
        pa, ps = free_port(), free_port()
        la = os.path.join(tmp, "a-%s.log" % password)
        sp = subprocess.Popen(
            [sipp, "-sf", os.path.join(HERE, "uas-auth-401.xml"), "-m", "1",
             "-i", "127.0.0.1", "-p", str(ps), "-mp", str(free_port()),
             "-cp", str(free_port()), "-nostdin", "-timeout", "15",
             "-timeout_error"], stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, cwd=tmp)
        a = start(binary, "caller.lua", pa, la)
        try:
            time.sleep(0.3)
            r = message(pa, "call sip:sipp@127.0.0.1:%d alice %s" %
                        (ps, password))
            check(r.startswith("SIP/2.0 200"), "A takes the order", r)
            text = wait_log(la, r'msg="A answer"', 10) or open(la).read()
            check(re.search(r"ev=auth .*code=401 user=alice", text),
                  "A answered the 401 (%s)" % password, text)
            line = re.search(r'msg="A answer"[^\n]*', text)
            check(line and all(re.search(r"\b%s\b" % re.escape(f),
                                         line.group(0))
                               for f in code.split()),
                  "sipp checked the digest: %s -> %s" % (password, code),
                  text)
            try:
                rc = sp.wait(timeout=15)
            except subprocess.TimeoutExpired:
                sp.kill()
                rc = -1
            check(rc == 0, "sipp scenario completed (%s)" % password)
        finally:
            stop(a)
            if sp.poll() is None:
                sp.kill()


def main():
    binary, sipp, case = sys.argv[1], sys.argv[2], sys.argv[3]
    with tempfile.TemporaryDirectory(prefix="sipstack-peers-") as tmp:
        if case == "prack":
            case_prack(binary, tmp)
        else:
            case_auth(binary, sipp, tmp)
    print("1..%d" % len(results))
    return 0 if results and all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
