#!/usr/bin/env python3
"""OPTIONS and MESSAGE over TCP and TLS, against the real server.

sipp from Debian has no TLS, so this test speaks SIP itself: it makes a
throwaway self-signed certificate with the openssl CLI, starts
build/sipstack with udp:, tcp: and tls: listeners on free ports of
127.0.0.1, and sends requests over a plain TCP socket and over a TLS
socket that verifies the server's certificate. Prints TAP.

usage: tcp_tls.py SIPSTACK_BINARY
"""
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(HERE, "echo.lua")

results = []


def check(ok, name, diag=""):
    results.append(ok)
    print("%s %d - %s" % ("ok" if ok else "not ok", len(results), name))
    if not ok and diag:
        for line in diag.splitlines()[-15:]:
            print("# " + line)


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def request(method, port, transport, local, body="", ctype="text/plain"):
    cid = "%x@test" % int.from_bytes(os.urandom(8), "big")
    lines = [
        "%s sip:svc@127.0.0.1:%d;transport=%s SIP/2.0" % (method, port,
                                                           transport),
        "Via: SIP/2.0/%s %s:%d;branch=z9hG4bK%s;rport" % (
            transport.upper(), local[0], local[1], cid[:12]),
        "From: <sip:test@127.0.0.1>;tag=%s" % cid[:8],
        "To: <sip:svc@127.0.0.1>",
        "Call-ID: " + cid,
        "CSeq: 1 " + method,
        "Max-Forwards: 70",
    ]
    if body:
        lines.append("Content-Type: " + ctype)
    lines.append("Content-Length: %d" % len(body.encode()))
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()


def read_response(sock, timeout=3.0):
    sock.settimeout(timeout)
    data = b""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            break
        if not chunk:
            break
        data += chunk
        head, sep, rest = data.partition(b"\r\n\r\n")
        if sep:
            m = re.search(rb"(?im)^content-length:\s*(\d+)", head)
            if len(rest) >= (int(m.group(1)) if m else 0):
                first = head.split(b"\r\n", 1)[0]
                if b" 100 " in first:      # skip provisional
                    data = rest[int(m.group(1)) if m else 0:]
                    continue
                return head.decode(errors="replace")
    return data.decode(errors="replace")


def main():
    binary = sys.argv[1]
    tmp = tempfile.mkdtemp(prefix="sipstack-tls-")
    proc = None
    log = os.path.join(tmp, "server.log")
    try:
        cert = os.path.join(tmp, "cert.pem")
        key = os.path.join(tmp, "key.pem")
        r = subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
             "-keyout", key, "-out", cert, "-days", "2",
             "-subj", "/CN=127.0.0.1",
             "-addext", "subjectAltName=IP:127.0.0.1"],
            capture_output=True, timeout=60)
        check(r.returncode == 0, "self-signed certificate made",
              r.stderr.decode())

        udp, tcp, tls = free_port(), free_port(), free_port()
        with open(log, "w") as lf:
            proc = subprocess.Popen(
                [binary, "--listen", "udp:127.0.0.1:%d" % udp,
                 "--listen", "tcp:127.0.0.1:%d" % tcp,
                 "--listen", "tls:127.0.0.1:%d" % tls,
                 "--tls-cert", cert, "--tls-key", key, SCRIPT],
                stdout=lf, stderr=subprocess.STDOUT)
        deadline = time.time() + 5
        started = False
        while time.time() < deadline and proc.poll() is None:
            if "ev=started" in open(log).read():
                started = True
                break
            time.sleep(0.05)
        check(started, "server started with udp, tcp and tls listeners",
              open(log).read())
        if not started:
            return

        # TCP
        s = socket.create_connection(("127.0.0.1", tcp), timeout=3)
        local = s.getsockname()
        s.sendall(request("OPTIONS", tcp, "tcp", local))
        resp = read_response(s)
        check(resp.startswith("SIP/2.0 200"), "OPTIONS over TCP -> 200",
              resp)
        body = "hello over tcp \u00e9"
        s.sendall(request("MESSAGE", tcp, "tcp", local, body))
        resp = read_response(s)
        check(resp.startswith("SIP/2.0 202"), "MESSAGE over TCP -> 202 "
              "from the script", resp)
        s.close()

        # TLS, verifying the server against the certificate
        ctx = ssl.create_default_context(cafile=cert)
        raw = socket.create_connection(("127.0.0.1", tls), timeout=3)
        try:
            t = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
            check(True, "TLS handshake, server certificate verified")
        except (ssl.SSLError, OSError) as e:
            check(False, "TLS handshake, server certificate verified",
                  str(e))
            return
        local = t.getsockname()
        t.sendall(request("OPTIONS", tls, "tls", local))
        resp = read_response(t)
        check(resp.startswith("SIP/2.0 200"), "OPTIONS over TLS -> 200",
              resp)
        check(re.search(r"(?im)^allow:.*MESSAGE", resp) is not None,
              "Allow lists MESSAGE (the script has the hook)", resp)
        t.sendall(request("MESSAGE", tls, "tls", local, "secret"))
        resp = read_response(t)
        check(resp.startswith("SIP/2.0 202"), "MESSAGE over TLS -> 202",
              resp)
        t.close()

        text = open(log).read()
        check(re.search(r"ev=log .*msg=got .*transport=TLS", text)
              is not None, "script saw the TLS transport", text)
        check("lvl=error" not in text, "no error logged", text)
    finally:
        if proc and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc:
            check(proc.returncode == 0, "server stopped cleanly on SIGTERM",
                  open(log).read())
        shutil.rmtree(tmp, ignore_errors=True)
        print("1..%d" % len(results))


if __name__ == "__main__":
    main()
    sys.exit(0 if results and all(results) else 1)
