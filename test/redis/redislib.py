"""test/redis/redislib.py  Helpers of the Redis location store's wire tests

Imported by the t_*.py files of this folder (not a test itself). Builds
on test/registrar/reglib.py (and through it test/sipp/harness.py) and
adds what the Redis tests share:

  - RedisServer: a redis-server of the test's own, on a free port of
    127.0.0.1, its files in the test's temp dir (no RDB snapshots;
    append-only file with fsync always when asked, for the tests that
    kill it and want what it acknowledged back), stopped by the
    harness's cleanup like every process it spawned;
  - Resp: a minimal RESP client (the standard library only) to look
    into Redis: the bindings of an AOR as the store wrote them;
  - script(): test/redis/reg-redis.lua in the temp dir with the
    store's URL and the expiry bounds filled in;
  - Load: REGISTERs of many AORs from one UDP socket, paced, whose 200s
    are recorded (the kill -9 test compares them with Redis).

Nothing here touches the repository: every file written goes to h.tmp.
"""
import json
import os
import shutil
import socket
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True   # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "registrar"))
import reglib  # noqa: E402,F401  (re-exported for the tests)
from reglib import harness  # noqa: E402

LOCAL = harness.LOCAL
KEY = "sipstack:loc:{%s}"


# ---------------------------------------------------------------------
# redis-server and a RESP client
# ---------------------------------------------------------------------

class RespError(Exception):
    pass


class Resp:
    """One connection to Redis; cmd() sends a command, returns its reply
    (bytes, int, list, None; an error reply raises RespError)."""

    def __init__(self, port, timeout=3.0):
        self.sock = socket.create_connection((LOCAL, port), timeout)
        self.f = self.sock.makefile("rb")

    def close(self):
        try:
            self.f.close()
            self.sock.close()
        except OSError:
            pass

    def cmd(self, *args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        self.sock.sendall(b"".join(out))
        return self._read()

    def _read(self):
        line = self.f.readline()
        if not line:
            raise OSError("connection closed")
        t, rest = line[:1], line[1:-2]
        if t == b"+":
            return rest
        if t == b"-":
            raise RespError(rest.decode())
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            if n < 0:
                return None
            data = self.f.read(n + 2)
            return data[:-2]
        if t == b"*":
            n = int(rest)
            return None if n < 0 else [self._read() for _ in range(n)]
        raise OSError("bad reply %r" % line)


class RedisServer:
    """A redis-server of the test's own. aof: append-only file with
    appendfsync always (what it acknowledged survives kill -9)."""

    def __init__(self, h, aof=False, name=None):
        self.h = h
        self.name = name or "redis-%d" % h.next_id()
        self.port = harness.free_port(("tcp",))
        self.dir = os.path.join(h.tmp, self.name)
        os.makedirs(self.dir, exist_ok=True)
        self.aof = aof
        self.log = os.path.join(self.dir, "redis.log")
        self.proc = None
        self.exe = shutil.which("redis-server") or "redis-server"

    @property
    def url(self):
        return "redis://%s:%d/0" % (LOCAL, self.port)

    def start(self, timeout=5.0):
        cmd = [self.exe, "--port", str(self.port), "--bind", LOCAL,
               "--dir", self.dir, "--save", "", "--logfile", self.log,
               "--daemonize", "no", "--protected-mode", "yes",
               "--appendonly", "yes" if self.aof else "no"]
        if self.aof:
            cmd += ["--appendfsync", "always"]
        self.h.note("%s: %s" % (self.name, " ".join(cmd)))
        with open(os.devnull, "wb") as null:
            self.proc = self.h.spawn(cmd, stdout=null, stderr=null)
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                break
            try:
                r = Resp(self.port, timeout=1.0)
                try:
                    if r.cmd("PING") == b"PONG":
                        return True
                finally:
                    r.close()
            except (OSError, RespError):
                pass
            time.sleep(0.05)
        return False

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill(self):
        """kill -9, and wait for it."""
        if self.alive():
            self.proc.kill()
            self.proc.wait(5)

    def stop(self):
        if self.alive():
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except Exception:  # noqa: BLE001 (TimeoutExpired)
                self.kill()

    def client(self):
        return Resp(self.port)

    def bindings(self, aor):
        """{contact: binding dict} of aor's hash as stored (expired
        ones included), or None when Redis cannot be asked."""
        try:
            r = self.client()
            try:
                raw = r.cmd("HGETALL", KEY % aor)
            finally:
                r.close()
        except (OSError, RespError) as e:
            self.h.note("%s: HGETALL %s: %s" % (self.name, aor, e))
            return None
        out = {}
        for i in range(0, len(raw), 2):
            out[raw[i].decode()] = json.loads(raw[i + 1])
        return out

    def live(self, aor):
        """The contacts of aor's bindings not expired (Redis's clock)."""
        b = self.bindings(aor)
        if b is None:
            return None
        r = self.client()
        try:
            sec, usec = r.cmd("TIME")
        finally:
            r.close()
        now = int(sec) * 1000 + int(usec) // 1000
        return {c for c, v in b.items() if v["e"] > now}


def start_redis(h, aof=False):
    """A started RedisServer (Abort if it does not answer PING)."""
    rs = RedisServer(h, aof=aof)
    up = rs.start()
    h.ok(up, "%s started on 127.0.0.1:%d (PING answered)" % (rs.name,
                                                             rs.port))
    if not up:
        raise harness.Abort("redis-server did not start (make deps: "
                            "redis-server)")
    return rs


def script(h, redis, name="reg-redis.lua", min_expires=60):
    """test/redis/reg-redis.lua in h.tmp with the store's URL and
    min_expires filled in; returns its path."""
    with open(os.path.join(HERE, "reg-redis.lua"), encoding="utf-8") as f:
        text = f.read()
    text = text.replace("@REDIS@", redis.url)
    text = text.replace("min_expires = 60", "min_expires = %d" %
                        min_expires)
    path = os.path.join(h.tmp, name)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return path


def ask(srv, what, aor, timeout=3.0):
    """MESSAGE `what aor` to srv: (code, lines of the body)."""
    cl = harness.UdpClient(srv.port)
    try:
        r = cl.request("MESSAGE", uri="sip:%s:%d" % (LOCAL, srv.port),
                       ctype="text/plain", body="%s %s" % (what, aor),
                       timeout=timeout)
    finally:
        cl.close()
    if r is None:
        return None, []
    return r.code, r.body.decode("utf-8", "replace").splitlines() \
        if r.code == 200 else [r.reason]


# ---------------------------------------------------------------------
# A stream of REGISTERs
# ---------------------------------------------------------------------

class Load:
    """REGISTERs of AORs user-<tag>-<i> from one socket to port, each
    with its own Call-ID and the socket's address as Contact, paced at
    rate per second, in a thread; ok holds the i whose REGISTER got a
    200, codes counts the first final answer of each. Nothing is
    retransmitted unless retransmit() is called (a datagram lost on a
    loaded machine then simply gets no answer)."""

    def __init__(self, port, tag, count, rate, expires=600):
        self.port = port
        self.tag = tag
        self.count = count
        self.rate = rate
        self.expires = expires
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((LOCAL, 0))
        self.sock.settimeout(0.2)
        self.lport = self.sock.getsockname()[1]
        self.sent = 0
        self.ok = set()
        self.answered = set()
        self.codes = {}
        self.stop = False           # the receiver's
        self.halt = False           # the sender's
        self.lock = threading.Lock()
        self.tx = threading.Thread(target=self._send, daemon=True)
        self.rx = threading.Thread(target=self._recv, daemon=True)

    def aor(self, i):
        return "sip:user-%s-%d@%s" % (self.tag, i, LOCAL)

    def contact(self, i):
        return "sip:user-%s-%d@%s:%d" % (self.tag, i, LOCAL, self.lport)

    def _request(self, i):
        aor = self.aor(i)
        return ("REGISTER sip:%s:%d SIP/2.0\r\n"
                "Via: SIP/2.0/UDP %s:%d;branch=z9hG4bK-ld-%s-%d;rport\r\n"
                "Max-Forwards: 70\r\n"
                "From: <%s>;tag=ld%d\r\n"
                "To: <%s>\r\n"
                "Call-ID: ld-%s-%d@%s\r\n"
                "CSeq: 1 REGISTER\r\n"
                "Contact: <%s>\r\n"
                "Expires: %d\r\n"
                "Content-Length: 0\r\n\r\n" % (
                    LOCAL, self.port, LOCAL, self.lport, self.tag, i, aor,
                    i, aor, self.tag, i, LOCAL, self.contact(i),
                    self.expires)).encode()

    def _send(self):
        t0 = time.monotonic()
        for i in range(self.count):
            if self.halt:
                break
            due = t0 + i / float(self.rate)
            d = due - time.monotonic()
            if d > 0:
                time.sleep(d)
            try:
                self.sock.sendto(self._request(i), (LOCAL, self.port))
            except OSError:
                pass
            self.sent = i + 1

    def _recv(self):
        while not self.stop:
            try:
                data, _ = self.sock.recvfrom(65535)
            except socket.timeout:
                continue
            except OSError:
                break
            head = data.split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace")
            lines = head.split("\r\n")
            if not lines[0].startswith("SIP/2.0 "):
                continue
            code = int(lines[0].split()[1])
            cid = None
            for l in lines[1:]:
                n, _, v = l.partition(":")
                if n.strip().lower() in ("call-id", "i"):
                    cid = v.strip()
            if not cid or not cid.startswith("ld-%s-" % self.tag):
                continue
            i = int(cid[len("ld-%s-" % self.tag):].split("@")[0])
            if code < 200:
                continue
            with self.lock:
                if i in self.answered:
                    continue   # an answer to a retransmission
                self.answered.add(i)
                self.codes[code] = self.codes.get(code, 0) + 1
                if code == 200:
                    self.ok.add(i)

    def start(self):
        self.tx.start()
        self.rx.start()
        return self

    def wait_sent(self, timeout):
        self.tx.join(timeout)

    def retransmit(self, rounds=6, wait=0.5):
        """Send again (same branch, as a UA's Timer E would) what has
        no answer yet, up to rounds times, wait s apart; the server
        answers a retransmission from its transaction."""
        for _ in range(rounds):
            with self.lock:
                left = [i for i in range(self.sent)
                        if i not in self.answered]
            if not left:
                return
            for i in left:
                try:
                    self.sock.sendto(self._request(i), (LOCAL, self.port))
                except OSError:
                    pass
            time.sleep(wait)

    def finish(self, linger=1.0):
        """Stop sending, read answers for linger s more, close."""
        self.halt = True
        self.tx.join(2)
        time.sleep(linger)
        self.stop = True
        self.rx.join(2)
        self.sock.close()
