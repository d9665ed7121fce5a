"""test/websocket/wslib.py  A minimal RFC 6455 client for SIP over WebSocket

Imported by t_wire.py (not a test itself). Standard library only:

  - WsClient: a TCP (or TLS) connection, the opening handshake
    (Sec-WebSocket-Key, the Accept check, Sec-WebSocket-Protocol: sip by
    default), masked frames out, frames in (pings answered), and raw
    bytes for the broken cases;
  - sip_request(): a SIP request as a browser sends it over WebSocket
    (RFC 7118: Via SIP/2.0/WS with a made-up .invalid host, a Contact
    of that host with ;transport=ws);
  - start_server(): the tests' server, on udp: and ws: (and wss:) ports
    of its own; make_cert(): a throwaway self-signed certificate for
    127.0.0.1 (openssl CLI).
"""
import base64
import hashlib
import os
import shutil
import socket
import ssl
import struct
import time

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class Closed(Exception):
    pass


class WsClient:
    def __init__(self, port, host="127.0.0.1", tls_ca=None, timeout=5.0):
        self.host = host
        self.port = port
        raw = socket.create_connection((host, port), timeout=timeout)
        if tls_ca:
            ctx = ssl.create_default_context(cafile=tls_ca)
            self.sock = ctx.wrap_socket(raw, server_hostname=host)
        else:
            self.sock = raw
        self.buf = b""
        self.status = None
        self.headers = {}
        self.close_code = None

    # -- the opening handshake ----------------------------------------

    def handshake(self, protocol="sip", path="/", extra=(), raw=None,
                  timeout=5.0):
        """Send the upgrade request (or raw bytes); return the status
        code of the answer (None: closed without one). self.headers:
        the answer's headers, lower-case names."""
        self.key = base64.b64encode(os.urandom(16)).decode()
        if raw is None:
            lines = ["GET %s HTTP/1.1" % path,
                     "Host: %s:%d" % (self.host, self.port),
                     "Upgrade: websocket",
                     "Connection: Upgrade",
                     "Sec-WebSocket-Key: " + self.key,
                     "Sec-WebSocket-Version: 13"]
            if protocol:
                lines.append("Sec-WebSocket-Protocol: " + protocol)
            lines += list(extra)
            raw = ("\r\n".join(lines) + "\r\n\r\n").encode()
        self.sock.sendall(raw)
        end = time.monotonic() + timeout
        while b"\r\n\r\n" not in self.buf:
            if not self._fill(end):
                return None
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        self.status = int(parts[1]) if len(parts) > 1 and \
            parts[1].isdigit() else None
        self.headers = {}
        for l in lines[1:]:
            n, _, v = l.partition(":")
            self.headers[n.strip().lower()] = v.strip()
        # an error answer may carry a body: drop what Content-Length says
        n = int(self.headers.get("content-length", "0") or 0)
        if self.status != 101 and n:
            while len(self.buf) < n and self._fill(end):
                pass
            self.buf = self.buf[n:]
        return self.status

    def accept_ok(self):
        want = base64.b64encode(hashlib.sha1(
            (self.key + GUID).encode()).digest()).decode()
        return self.headers.get("sec-websocket-accept") == want

    # -- frames -------------------------------------------------------

    def _fill(self, end):
        left = end - time.monotonic()
        if left <= 0:
            return False
        self.sock.settimeout(left)
        try:
            data = self.sock.recv(65536)
        except (socket.timeout, ssl.SSLError, OSError):
            return False
        if not data:
            return False
        self.buf += data
        return True

    def send_frame(self, payload, opcode=0x1, mask=True, fin=True):
        if isinstance(payload, str):
            payload = payload.encode()
        n = len(payload)
        head = bytes([(0x80 if fin else 0) | opcode])
        mbit = 0x80 if mask else 0
        if n < 126:
            head += bytes([mbit | n])
        elif n < 65536:
            head += bytes([mbit | 126]) + struct.pack(">H", n)
        else:
            head += bytes([mbit | 127]) + struct.pack(">Q", n)
        if mask:
            key = os.urandom(4)
            payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
            head += key
        self.sock.sendall(head + payload)

    def send_raw(self, data):
        self.sock.sendall(data)

    def recv_frame(self, timeout=5.0):
        """(opcode, payload) of the next frame, or None (time out, or the
        connection closed: then self.eof)."""
        end = time.monotonic() + timeout
        self.eof = False
        while True:
            f = self._parse()
            if f is not None:
                return f
            if not self._fill(end):
                self.eof = time.monotonic() < end
                return None

    def _parse(self):
        b = self.buf
        if len(b) < 2:
            return None
        op, n, pos = b[0] & 0x0f, b[1] & 0x7f, 2
        if n == 126:
            if len(b) < 4:
                return None
            n, pos = struct.unpack(">H", b[2:4])[0], 4
        elif n == 127:
            if len(b) < 10:
                return None
            n, pos = struct.unpack(">Q", b[2:10])[0], 10
        if b[1] & 0x80:             # a server must not mask: keep it
            pos += 4
        if len(b) < pos + n:
            return None
        self.buf = b[pos + n:]
        return op, b[pos:pos + n]

    def recv_sip(self, timeout=5.0):
        """The next SIP message (bytes) of a data frame; pings answered,
        None on time out or close (self.close_code set by a close
        frame)."""
        end = time.monotonic() + timeout
        while True:
            f = self.recv_frame(max(0.0, end - time.monotonic()))
            if f is None:
                return None
            op, data = f
            if op in (0x1, 0x2):
                return data
            if op == 0x9:
                self.send_frame(data, opcode=0xA)
            elif op == 0x8:
                self.close_code = struct.unpack(">H", data[:2])[0] \
                    if len(data) >= 2 else 1005
                return None

    def wait_close(self, timeout=5.0):
        """The close code the server sent (1005: a close frame without
        one; None: no close frame), waiting for the connection's end."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            f = self.recv_frame(max(0.0, end - time.monotonic()))
            if f is None:
                return self.close_code
            if f[0] == 0x8:
                self.close_code = struct.unpack(">H", f[1][:2])[0] \
                    if len(f[1]) >= 2 else 1005
        return self.close_code

    def close(self, abort=False):
        try:
            if abort:   # RST, no close frame: a client that vanishes
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                     struct.pack("ii", 1, 0))
            self.sock.close()
        except OSError:
            pass


def sip_request(method, ruri, from_uri, to_uri, host, callid, cseq,
                transport="WS", contact=None, body="", ctype="text/plain",
                extra=()):
    """A SIP request as a browser writes it (RFC 7118 §5)."""
    branch = "z9hG4bK" + os.urandom(6).hex()
    lines = ["%s %s SIP/2.0" % (method, ruri),
             "Via: SIP/2.0/%s %s;branch=%s" % (transport, host, branch),
             "Max-Forwards: 70",
             "From: <%s>;tag=%s" % (from_uri, callid[:8]),
             "To: <%s>" % to_uri,
             "Call-ID: " + callid,
             "CSeq: %d %s" % (cseq, method)]
    if contact:
        lines.append("Contact: " + contact)
    lines += list(extra)
    if body:
        lines.append("Content-Type: " + ctype)
    lines.append("Content-Length: %d" % len(body.encode()))
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()


def sip_response_to(req, code, reason):
    """A response to the SIP request req (bytes): Via, From, To (with a
    tag), Call-ID and CSeq copied."""
    head = req.split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace")
    keep = []
    for l in head.split("\r\n")[1:]:
        n = l.split(":", 1)[0].strip().lower()
        if n in ("via", "v", "from", "f", "call-id", "i", "cseq"):
            keep.append(l)
        elif n in ("to", "t"):
            keep.append(l if ";tag=" in l else l + ";tag=ws" +
                        os.urandom(3).hex())
    return ("SIP/2.0 %d %s\r\n%s\r\nContent-Length: 0\r\n\r\n" % (
        code, reason, "\r\n".join(keep))).encode()


def start_server(h, harness, script, wss=False, args=()):
    """A started server listening on udp:, ws: (and wss: with wss) on
    free ports of 127.0.0.1: (srv, ws port, wss port or None); srv.port
    is the UDP one. Fails the check and aborts if it did not start."""
    local = harness.LOCAL
    udp = harness.free_port(("udp",))
    ws = harness.free_port(("tcp",))
    listen = ["udp:%s:%d" % (local, udp), "ws:%s:%d" % (local, ws)]
    tls = harness.free_port(("tcp",)) if wss else None
    if wss:
        listen.append("wss:%s:%d" % (local, tls))
    srv = harness.Server(h, script, "server", listen=listen, args=args)
    srv.port = udp
    h.servers.append(srv)
    up = srv.start(timeout=30)   # slow under valgrind, on a loaded machine
    h.ok(up, "server on %s started" % ", ".join(
        l.split(":", 1)[0] + ":" for l in listen), server=srv)
    if not up:
        raise harness.Abort("the server did not start")
    return srv, ws, tls


def make_cert(h, harness):
    """A self-signed certificate for 127.0.0.1 in h.tmp: (cert.pem, the
    file with the certificate and its key, as wss: wants it)."""
    openssl = shutil.which("openssl")
    if not openssl:
        raise harness.Abort("openssl CLI not found (Debian package openssl)")
    key = os.path.join(h.tmp, "key.pem")
    cert = os.path.join(h.tmp, "cert.pem")
    rc, out, err = h.run([openssl, "req", "-x509", "-newkey", "rsa:2048",
                          "-nodes", "-keyout", key, "-out", cert, "-days",
                          "2", "-subj", "/CN=127.0.0.1", "-addext",
                          "subjectAltName=IP:127.0.0.1"], timeout=30)
    if rc != 0:
        raise harness.Abort("openssl req failed: %s" % err)
    both = os.path.join(h.tmp, "both.pem")
    with open(both, "w") as f:
        f.write(open(cert).read() + open(key).read())
    return cert, both
