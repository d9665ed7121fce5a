#!/usr/bin/env python3
"""test/sipp/harness.py  Wire tests of sipstack: harness library and CLI

Runs the real `sipstack` binary against sipp (and against a small raw UDP
sender for requests sipp refuses to send) and prints TAP for meson.
Standard library only.

Library (used by the t_*.py test files):

    def body(h, args):                  # h: Harness, args: argparse
        srv = h.server("wire.lua")      # free port, waits for ev=started
        sp = h.sipp("uac-options.xml", srv, calls=5)
        h.sipp_ok(sp, "5 OPTIONS answered 200")   # sipp's exit status
        cl = UdpClient(srv.port)        # raw requests, e.g. broken ones
        r = cl.request("OPTIONS", set={"Call-ID": None})
        h.ok(r and r.code == 400, "no Call-ID -> 400")
        h.stop_server(srv, must=[r"ev=loaded"],
                      must_not=[{"ev": "hook_error"}])
    test_main("description", body)      # --sipstack/--sipp; TAP; exit

  Every process started is bounded (sipp with -m and -timeout, waits with
  deadlines, the whole test with an alarm) and killed on the way out, on
  failure and on SIGTERM (meson's timeout) as well. Every check prints
  `ok N - desc` or `not ok N - desc` followed by `# ` lines: the tail of
  the server log and of sipp's error file. The plan `1..N` comes last.

  stop_server() stops the server with SIGTERM (SIGKILL after a bound),
  checks a clean exit and then the log: regexes (or dicts of logfmt
  fields) that must appear, ones that must not, and, unless the test
  expects errors, that no `lvl=error` line was written.

CLI (a whole test from the command line, used by meson for the simple
cases of one script and one sipp scenario):

    harness.py --sipstack build/sipstack --script wire.lua \\
        --scenario uac-options.xml --calls 5 [--rate 50] [--transport tcp] \\
        [--expect-log REGEX]... [--reject-log REGEX]... [--expect-errors]

  Scripts are looked up in test/scripts/, scenarios in test/sipp/.
"""
import argparse
import itertools
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPTS = os.path.join(os.path.dirname(HERE), "scripts")
LOCAL = "127.0.0.1"

START_TIMEOUT = 5.0     # ev=started must come within this
STOP_TIMEOUT = 5.0      # SIGTERM -> exit, else SIGKILL
DEADLINE = 55           # a whole test file, seconds (meson: 60)


class Deadline(Exception):
    """The test ran out of time (alarm) or was told to stop."""


class Abort(Exception):
    """A check failed that the rest of the test depends on."""


def script_path(name):
    return name if os.path.isabs(name) else os.path.join(SCRIPTS, name)


def scenario_path(name):
    return name if os.path.isabs(name) else os.path.join(HERE, name)


def marker_line(path, marker):
    """Line number (1-based) of the first code line of path containing
    marker (comment-only lines are skipped); tests use it to know where
    a script raises, instead of hardcoding numbers."""
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if marker in line and not line.lstrip().startswith("--"):
                return n
    raise ValueError("%s: no line contains %r" % (path, marker))


# ---------------------------------------------------------------------
# Free ports
# ---------------------------------------------------------------------

_given = set()


def _bindable(port, kinds):
    for kind in kinds:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM if kind == "udp"
                          else socket.SOCK_STREAM)
        try:
            if kind == "tcp":
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((LOCAL, port))
        except OSError:
            return False
        finally:
            s.close()
    return True


def free_port(kinds=("udp",), span=1):
    """A port on 127.0.0.1 free for every protocol of kinds (and, with
    span > 1, the span-1 ports above it too): bind port 0, read the port,
    close. Never hands the same port out twice in one process."""
    for _ in range(200):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM
                          if kinds[0] == "udp" else socket.SOCK_STREAM)
        s.bind((LOCAL, 0))
        port = s.getsockname()[1]
        s.close()
        ports = range(port, port + span)
        if port + span > 65535 or any(p in _given for p in ports):
            continue
        if all(_bindable(p, kinds) for p in ports):
            _given.update(ports)
            return port
    raise RuntimeError("no free port found")


def wait_port_taken(port, proc, timeout=5.0, kind="udp"):
    """Wait until someone (proc) has bound port; False if proc died or
    the time ran out."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if not _bindable(port, (kind,)):
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.02)
    return False


# ---------------------------------------------------------------------
# Logs
# ---------------------------------------------------------------------

_LOGFMT = re.compile(r'([A-Za-z0-9_.\-]+)=("(?:[^"\\]|\\.)*"|[^ ]*)')
_ESC = {"n": "\n", "r": "\r", "t": "\t", '"': '"', "\\": "\\"}


def _unquote(v):
    if not v.startswith('"'):
        return v
    v = v[1:-1]
    out, i = [], 0
    while i < len(v):
        c = v[i]
        if c == "\\" and i + 1 < len(v):
            n = v[i + 1]
            if n == "u" and i + 6 <= len(v):
                out.append(chr(int(v[i + 2:i + 6], 16)))
                i += 6
                continue
            out.append(_ESC.get(n, n))
            i += 2
            continue
        out.append(c)
        i += 1
    return "".join(out)


def parse_logfmt(line):
    """{key: value} of one logfmt line, values unquoted. Values are str
    decoded from UTF-8 with surrogateescape, so that encoding them back
    gives the bytes the server wrote."""
    return {m.group(1): _unquote(m.group(2)) for m in _LOGFMT.finditer(line)}


def _line_matches(line, rec, want):
    if isinstance(want, dict):
        for k, v in want.items():
            got = rec.get(k)
            if got is None:
                return False
            if isinstance(v, re.Pattern):
                if not v.search(got):
                    return False
            elif got != v:
                return False
        return True
    return re.search(want, line) is not None


def _describe(want):
    if isinstance(want, dict):
        return " ".join("%s=%s" % (k, v.pattern if isinstance(v, re.Pattern)
                                   else v) for k, v in want.items())
    return want


# ---------------------------------------------------------------------
# The server
# ---------------------------------------------------------------------

class Server:
    """One sipstack process; its stderr (the log) goes to a file."""

    def __init__(self, h, script, name, listen=None, args=(), cwd=None,
                 transports=("udp",)):
        self.h = h
        self.script = script_path(script)
        self.name = name
        self.port = None
        if listen is None:
            # one port number for every transport
            self.port = free_port(tuple(transports))
            listen = ["%s:%s:%d" % (t, LOCAL, self.port)
                      for t in transports]
        self.listen = listen
        self.args = list(args)
        self.cwd = cwd or h.tmp
        self.log_path = os.path.join(h.tmp, name + ".log")
        self.out_path = os.path.join(h.tmp, name + ".out")
        self.proc = None
        self.rc = None

    @property
    def cmd(self):
        cmd = [self.h.sipstack]
        for l in self.listen:
            cmd += ["--listen", l]
        return cmd + self.args + [self.script]

    def start(self, wait=True, timeout=START_TIMEOUT):
        """Start; with wait, block until ev=started (True) or the process
        exits or the time runs out (False)."""
        self.h.note("%s: %s" % (self.name, " ".join(self.cmd)))
        with open(self.log_path, "wb") as err, \
                open(self.out_path, "wb") as out:
            self.proc = self.h.spawn(self.cmd, stdout=out, stderr=err,
                                     cwd=self.cwd)
        if not wait:
            return True
        return self.wait_for(r"\bmod=main ev=started\b", timeout) is not None

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def text(self):
        """The log so far, complete lines only."""
        try:
            with open(self.log_path, "rb") as f:
                data = f.read()
        except OSError:
            return ""
        data = data[:data.rfind(b"\n") + 1]
        return data.decode("utf-8", "surrogateescape")

    def lines(self):
        return self.text().splitlines()

    def mark(self):
        """Position to search from for what happens after now."""
        return len(self.lines())

    def find(self, want, after=0):
        """Every line (from line index after on) matching want: a regex,
        or a dict of logfmt fields (values str or compiled regex)."""
        found = []
        for line in self.lines()[after:]:
            rec = parse_logfmt(line) if isinstance(want, dict) else None
            if _line_matches(line, rec, want):
                found.append(line)
        return found

    def wait_for(self, want, timeout, after=0):
        """First line matching want, waiting up to timeout s (None: not
        seen, or the server died)."""
        end = time.monotonic() + timeout
        while True:
            found = self.find(want, after)
            if found:
                return found[0]
            if not self.alive() or time.monotonic() >= end:
                found = self.find(want, after)
                return found[0] if found else None
            time.sleep(0.02)

    def signal(self, sig):
        if self.alive():
            self.proc.send_signal(sig)

    def stop(self, timeout=STOP_TIMEOUT):
        """SIGTERM, then SIGKILL after timeout. Returns the exit status
        (negative: killed by that signal)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.h.note("%s: no exit %.0f s after SIGTERM: SIGKILL" %
                            (self.name, timeout))
                self.proc.kill()
                self.proc.wait(5)
        self.rc = self.proc.returncode
        return self.rc

    def tail(self, n=25):
        return self.lines()[-n:]


# ---------------------------------------------------------------------
# sipp
# ---------------------------------------------------------------------

# "UDP message sent (348 bytes):" / "UDP message received [423] bytes :"
_SIPP_MSG = re.compile(rb"(?m)^(\w+) message (sent|received) [(\[](\d+)"
                       rb"(?:\] bytes :| bytes\):)\n\n")


class SipMsg:
    """A parsed SIP message (request or response), bytes in, str out for
    the start line and headers; body stays bytes."""

    def __init__(self, data):
        self.raw = data
        head, sep, body = data.partition(b"\r\n\r\n")
        lines = head.decode("utf-8", "surrogateescape").split("\r\n")
        self.start = lines[0]
        self.headers = []
        for l in lines[1:]:
            if l[:1] in (" ", "\t") and self.headers:
                n, v = self.headers[-1]
                self.headers[-1] = (n, v + " " + l.strip())
            elif ":" in l:
                n, v = l.split(":", 1)
                self.headers.append((n.strip(), v.strip()))
        clen = self.header("Content-Length") or self.header("l")
        self.body = body[:int(clen)] if clen and clen.isdigit() else body
        parts = self.start.split(" ", 2)
        self.is_response = parts[0].startswith("SIP/")
        self.code = int(parts[1]) if self.is_response else None
        self.reason = parts[2] if self.is_response and len(parts) > 2 \
            else ""
        self.method = None if self.is_response else parts[0]

    def header(self, name):
        for n, v in self.headers:
            if n.lower() == name.lower():
                return v
        return None

    def headers_all(self, name):
        """Every value of header name, in order."""
        return [v for n, v in self.headers if n.lower() == name.lower()]

    def __repr__(self):
        return "<%s>" % self.start


class Sipp:
    """One sipp process. Every option that matters for isolation is set:
    free -p/-mp/-cp ports, -nostdin, -m, -timeout with -timeout_error,
    -trace_err and -trace_msg into the test's temp dir."""

    def __init__(self, h, scenario, remote=None, calls=1, rate=None,
                 timeout=15, args=(), port=None, name=None, transport="udp",
                 local=LOCAL):
        """local: sipp's own address (-i), e.g. 127.0.0.2 for a second
        host on the loopback network"""
        self.h = h
        self.scenario = scenario_path(scenario)
        self.name = name or "sipp-%d-%s" % (
            h.next_id(), os.path.basename(scenario)[:-4])
        # over TCP or TLS sipp binds -p for that transport: a port free
        # for UDP may be some connection's ephemeral TCP port
        self.port = port or free_port(("udp",) if transport == "udp"
                                      else ("udp", "tcp"))
        self.timeout = timeout
        self.err_path = os.path.join(h.tmp, self.name + "-errors.log")
        self.msg_path = os.path.join(h.tmp, self.name + "-messages.log")
        self.out_path = os.path.join(h.tmp, self.name + ".out")
        cmd = [h.sipp_bin]
        if remote is not None:
            cmd.append(remote)
        cmd += ["-sf", self.scenario,
                "-i", local, "-p", str(self.port),
                "-mp", str(free_port(("udp",), span=4)),
                "-cp", str(free_port(("udp",))),
                "-m", str(calls),
                "-nostdin",
                "-timeout", "%ds" % timeout, "-timeout_error",
                "-trace_err", "-error_file", self.err_path,
                "-trace_msg", "-message_file", self.msg_path]
        if transport == "tcp":
            cmd += ["-t", "t1"]
        if rate:
            cmd += ["-r", str(rate), "-rp", "1000"]
        self.cmd = cmd + list(args)
        self.proc = None
        self.rc = None

    def start(self):
        self.h.note("%s: %s" % (self.name, " ".join(self.cmd)))
        with open(self.out_path, "wb") as out:
            self.proc = self.h.spawn(self.cmd, stdout=out,
                                     stderr=subprocess.STDOUT, cwd=self.h.tmp)
        self.h.last_sipp = self
        return self

    def wait_listening(self, timeout=5.0):
        """For a UAS: wait until sipp has bound its SIP port."""
        return wait_port_taken(self.port, self.proc, timeout)

    def wait(self, timeout=None):
        """Exit status of sipp (0: every call succeeded); kills it if it
        outlives its own -timeout by more than 5 s."""
        if timeout is None:
            timeout = self.timeout + 5
        try:
            self.rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.h.note("%s: still running after %d s: killed" %
                        (self.name, timeout))
            self.proc.kill()
            self.proc.wait(5)
            self.rc = "killed"
        return self.rc

    def errors(self):
        try:
            with open(self.err_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def output(self):
        try:
            with open(self.out_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def messages(self, direction=None):
        """Every message in sipp's message log, as SipMsg, optionally
        only the "sent" or "received" ones."""
        try:
            with open(self.msg_path, "rb") as f:
                data = f.read()
        except OSError:
            return []
        out = []
        for m in _SIPP_MSG.finditer(data):
            if direction and m.group(2).decode() != direction:
                continue
            n = int(m.group(3))
            out.append(SipMsg(data[m.end():m.end() + n]))
        return out

    def stats(self):
        """(successful, failed) calls from sipp's last screen, or None."""
        txt = self.output()
        ok = re.findall(r"Successful call\s*\|\s*\d+\s*\|\s*(\d+)", txt)
        bad = re.findall(r"Failed call\s*\|\s*\d+\s*\|\s*(\d+)", txt)
        if not ok or not bad:
            return None
        return int(ok[-1]), int(bad[-1])


# ---------------------------------------------------------------------
# Raw UDP: requests sipp will not send (malformed ones) and precise
# timing checks
# ---------------------------------------------------------------------

_CLIENT_UID = itertools.count(1)


class UdpClient:
    """A UDP socket on 127.0.0.1 sending hand-made requests to a server
    and reading the answers."""

    def __init__(self, server_port, host=LOCAL, bind=LOCAL):
        """bind: the local address (another loopback address such as
        127.0.0.2 stands for a second host, e.g. beside a banned one)."""
        self.dst = (host, server_port)
        self.local = bind
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((bind, 0))
        self.port = self.sock.getsockname()[1]
        self.n = 0
        # one number per client of this process: a client bound later to
        # the same port (the OS reuses them) must not send the branches
        # of an earlier one, which the server would take for
        # retransmissions and answer from its completed transactions
        self.uid = next(_CLIENT_UID)
        self.last_call_id = None
        # a status code: every request the server sends us (a NOTIFY of
        # a subscription, a BYE) is answered with it while we read
        self.auto_answer = None

    def close(self):
        self.sock.close()

    def answer(self, req, code, reason="OK"):
        """Answer req, a request received from the server."""
        lines = ["SIP/2.0 %d %s" % (code, reason)]
        lines += ["Via: %s" % v for v in req.headers_all("Via")]
        lines += ["%s: %s" % (n, req.header(n))
                  for n in ("From", "To", "Call-ID", "CSeq")]
        lines.append("Content-Length: 0")
        self.sock.sendto(("\r\n".join(lines) + "\r\n\r\n").encode(),
                         self.dst)

    def pump(self, seconds):
        """Read for seconds, answering requests if auto_answer is set."""
        self.recv(branch="-none-", timeout=seconds)

    def build(self, method, uri=None, set=None, extra=(), body=b"",
              ctype=None, cseq_method=None):
        """A request as bytes. set: {header: value} replacing the default
        header of that name (None drops it); extra: (name, value) pairs
        appended. Returns (bytes, branch)."""
        self.n += 1
        branch = "z9hG4bK-raw-%d-%d-%d-%d" % (os.getpid(), self.port,
                                              self.n, self.uid)
        uri = uri or "sip:sipstack@%s:%d" % self.dst
        if isinstance(body, str):
            body = body.encode("utf-8")
        hdrs = [
            ("Via", "SIP/2.0/UDP %s:%d;branch=%s;rport" %
             (self.local, self.port, branch)),
            ("Max-Forwards", "70"),
            ("From", "<sip:raw@%s:%d>;tag=raw%d" % (self.local, self.port,
                                                   self.n)),
            ("To", "<%s>" % uri),
            ("Call-ID", "raw-%d-%d-%d@%s" % (os.getpid(), self.port,
                                             self.n, LOCAL)),
            ("CSeq", "%d %s" % (self.n, cseq_method or method)),
        ]
        if ctype:
            hdrs.append(("Content-Type", ctype))
        set = set or {}
        out = []
        for n, v in hdrs:
            if n in set:
                if set[n] is None:
                    continue
                v = set[n]
            out.append((n, v))
        for n, v in set.items():
            if v is not None and n not in dict(hdrs):
                out.append((n, v))
        out += list(extra)
        out.append(("Content-Length", str(len(body))))
        self.last_call_id = dict(out).get("Call-ID")
        head = "%s %s SIP/2.0\r\n" % (method, uri)
        head += "".join("%s: %s\r\n" % nv for nv in out) + "\r\n"
        return head.encode("utf-8") + body, branch

    def send(self, method, **kw):
        """Send a request; returns its Via branch (to match the answer)."""
        data, branch = self.build(method, **kw)
        self.sock.sendto(data, self.dst)
        return branch

    def recv(self, branch=None, timeout=2.0, final=True):
        """The next response (for branch, final if asked) within timeout,
        or None."""
        end = time.monotonic() + timeout
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                data, _ = self.sock.recvfrom(65535)
            except socket.timeout:
                return None
            msg = SipMsg(data)
            if not msg.is_response:
                if self.auto_answer and msg.method != "ACK":
                    self.answer(msg, self.auto_answer)
                continue
            if branch and branch not in (msg.header("Via") or ""):
                continue
            if final and msg.code < 200:
                continue
            return msg

    def request(self, method, timeout=2.0, **kw):
        """Send and wait for the final answer (None: no answer)."""
        return self.recv(self.send(method, **kw), timeout)


class OptionsProber:
    """OPTIONS to a server every interval s from bind, in a thread of its
    own while something else loads the server: lat gets the time each
    200 took (s), lost counts the others (no answer within timeout)."""

    def __init__(self, server_port, bind=LOCAL, interval=0.02, timeout=1.0):
        self.port, self.bind = server_port, bind
        self.interval, self.timeout = interval, timeout
        self.lat, self.lost = [], 0
        self._stop = threading.Event()
        self._th = threading.Thread(target=self._run)

    def _run(self):
        cl = UdpClient(self.port, bind=self.bind)
        try:
            while not self._stop.is_set():
                t = time.monotonic()
                r = cl.request("OPTIONS", timeout=self.timeout)
                if r is None or r.code != 200:
                    self.lost += 1
                else:
                    self.lat.append(time.monotonic() - t)
                time.sleep(self.interval)
        finally:
            cl.close()

    def start(self):
        self._th.start()
        return self

    def stop(self):
        self._stop.set()
        self._th.join(self.timeout + 5)


# ---------------------------------------------------------------------
# The harness: TAP, processes, cleanup
# ---------------------------------------------------------------------

class Harness:
    def __init__(self, desc, argv=None, extra_args=None):
        ap = argparse.ArgumentParser(description=desc)
        ap.add_argument("--sipstack", required=True,
                        help="path of the sipstack binary")
        ap.add_argument("--sipp", default=shutil.which("sipp") or "sipp",
                        help="path of sipp")
        ap.add_argument("--keep", action="store_true",
                        help="keep the temp dir even if all passed")
        if extra_args:
            extra_args(ap)
        self.args = ap.parse_args(argv)
        self.sipstack = os.path.abspath(self.args.sipstack)
        self.sipp_bin = self.args.sipp
        self.tmp = tempfile.mkdtemp(prefix="sipstack-wire-")
        self.procs = []
        self.servers = []
        self.last_sipp = None
        self.n = 0
        self.failed = 0
        self._id = 0
        self._dumped = None
        self._to_stderr = False
        self.t0 = time.monotonic()
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGALRM, self._on_signal)

    # -- TAP ----------------------------------------------------------

    def _print(self, s):
        sys.stdout.write(s + "\n")
        sys.stdout.flush()
        if self._to_stderr:
            # meson --print-errorlogs shows stderr, not the TAP stream
            sys.stderr.write(s + "\n")
            sys.stderr.flush()

    def note(self, text):
        for l in str(text).splitlines() or [""]:
            self._print("# " + l)

    def ok(self, cond, desc, diag=None, server=None, sipp=None):
        """One TAP check. On failure: diag, then the tail of the server's
        log (given, else the latest) and of sipp's error file."""
        self.n += 1
        cond = bool(cond)
        self._to_stderr = not cond
        try:
            self._print("%s %d - %s" % ("ok" if cond else "not ok",
                                        self.n, desc))
            if not cond:
                self.failed += 1
                if diag:
                    self.note(diag)
                self.dump(server, sipp)
        finally:
            self._to_stderr = False
        return cond

    def dump(self, server=None, sipp=None):
        server = server or (self.servers[-1] if self.servers else None)
        sipp = sipp or self.last_sipp
        if server is None and sipp is None:
            return
        # the same state twice in a row is printed once
        state = (server and server.name, server and len(server.lines()),
                 sipp and sipp.name, sipp and sipp.rc)
        if state == self._dumped:
            self.note("(logs as above)")
            return
        self._dumped = state
        if server is not None:
            self.note("--- tail of %s log (%s):" % (server.name,
                                                    server.log_path))
            self.note("\n".join(server.tail()))
        if sipp is not None:
            err = sipp.errors().strip()
            self.note("--- %s exit=%s, error file %s:" %
                      (sipp.name, sipp.rc, sipp.err_path))
            self.note(err[-3000:] if err else "(empty)")
            out = [l for l in sipp.output().splitlines()
                   if re.search(r"Successful call|Failed call|Timeout|"
                                r"Unexpected|rror", l)]
            if out:
                self.note("\n".join(out[-6:]))

    # -- processes ----------------------------------------------------

    def next_id(self):
        self._id += 1
        return self._id

    def spawn(self, cmd, **kw):
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                             start_new_session=True, **kw)
        self.procs.append(p)
        return p

    def server(self, script, start=True, name=None, **kw):
        """A started server (fails the check if ev=started never came)."""
        srv = Server(self, script, name or "server-%d" % self.next_id(),
                     **kw)
        self.servers.append(srv)
        if start:
            up = srv.start()
            self.ok(up, "%s: %s started (ev=started within %.0f s)" %
                    (srv.name, os.path.basename(srv.script),
                     START_TIMEOUT), server=srv)
            if not up:
                raise Abort("the server did not start")
        return srv

    def sipp(self, scenario, server=None, start=True, **kw):
        remote = None
        if server is not None:
            remote = "%s:%d" % (LOCAL, server.port)
        sp = Sipp(self, scenario, remote, **kw)
        return sp.start() if start else sp

    def run(self, cmd, timeout=10, **kw):
        """Run a command to its end (bounded); (status, stdout, stderr)."""
        p = self.spawn(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       **kw)
        try:
            out, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            out, err = p.communicate(timeout=5)
            return "timeout", out.decode("utf-8", "replace"), \
                err.decode("utf-8", "replace")
        return p.returncode, out.decode("utf-8", "replace"), \
            err.decode("utf-8", "replace")

    def sipp_ok(self, sp, desc, timeout=None):
        """Wait for sipp and check that every call succeeded."""
        rc = sp.wait(timeout)
        st = sp.stats()
        return self.ok(rc == 0, "%s (sipp exit %s%s)" % (
            desc, rc, ", %d ok / %d failed" % st if st else ""), sipp=sp)

    def stop_server(self, srv, must=(), must_not=(), errors=False):
        """Stop srv (SIGTERM), check the clean exit, then the log: every
        item of must appears, none of must_not does, and no lvl=error
        line unless errors (True: any allowed; a list: each error line
        must match one of these)."""
        rc = srv.stop()
        self.ok(rc == 0 and srv.find(r"\bev=stopping\b"),
                "%s: stops cleanly on SIGTERM (exit %s)" % (srv.name, rc),
                server=srv)
        self.check_log(srv, must, must_not, errors)

    def check_log(self, srv, must=(), must_not=(), errors=False):
        for want in must:
            self.ok(srv.find(want), "%s log has: %s" %
                    (srv.name, _describe(want)), server=srv)
        for want in must_not:
            found = srv.find(want)
            self.ok(not found, "%s log lacks: %s" %
                    (srv.name, _describe(want)),
                    diag="\n".join(found[:5]), server=srv)
        if errors is True:
            return
        errs = srv.find(r"\blvl=error\b")
        allowed = [] if errors is False else list(errors)
        bad = [l for l in errs
               if not any(_line_matches(l, parse_logfmt(l), w)
                          for w in allowed)]
        self.ok(not bad, "%s log has no unexpected lvl=error line" %
                srv.name, diag="\n".join(bad[:5]), server=srv)

    # -- life cycle ---------------------------------------------------

    def _on_signal(self, signum, frame):
        raise Deadline("signal %d" % signum)

    def cleanup(self):
        for p in self.procs:
            if p.poll() is None:
                try:
                    p.terminate()
                    p.wait(3)
                except subprocess.TimeoutExpired:
                    p.kill()
                    try:
                        p.wait(3)
                    except subprocess.TimeoutExpired:
                        pass
                except OSError:
                    pass

    def finish(self):
        """Clean up, print the plan; returns the exit status."""
        signal.alarm(0)
        self.cleanup()
        if self.n == 0:
            self.ok(False, "the test made no check")
        self._print("1..%d" % self.n)
        self.note("%d checks, %d failed, %.1f s" % (
            self.n, self.failed, time.monotonic() - self.t0))
        if self.failed or self.args.keep:
            self.note("files kept in %s" % self.tmp)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)
        return 1 if self.failed else 0

    def main(self, body, deadline=DEADLINE):
        """Run body(self) bounded by deadline seconds; any exception is a
        failed check. Returns the exit status (for sys.exit)."""
        signal.alarm(deadline)
        try:
            body(self)
        except Deadline as e:
            self.ok(False, "test ran to its end (stopped: %s; bound %d s)"
                    % (e, deadline))
        except Abort as e:
            self.ok(False, "test ran to its end (aborted: %s)" % e)
        except Exception:
            self.ok(False, "test raised no exception",
                    diag=traceback.format_exc())
        finally:
            signal.alarm(0)
            try:
                return self.finish()
            except Deadline:
                return 1


def test_main(desc, body, deadline=DEADLINE, extra_args=None):
    """Entry point of a t_*.py file."""
    h = Harness(desc, extra_args=extra_args)
    sys.exit(h.main(lambda hh: body(hh, hh.args), deadline))


# ---------------------------------------------------------------------
# CLI: one script, one sipp scenario, log assertions
# ---------------------------------------------------------------------

def _cli_args(ap):
    ap.add_argument("--script", required=True)
    ap.add_argument("--scenario", required=True)
    ap.add_argument("--calls", type=int, default=1)
    ap.add_argument("--rate", type=int)
    ap.add_argument("--timeout", type=int, default=15,
                    help="sipp's -timeout, seconds")
    ap.add_argument("--expect-log", action="append", default=[],
                    metavar="REGEX")
    ap.add_argument("--reject-log", action="append", default=[],
                    metavar="REGEX")
    ap.add_argument("--expect-errors", action="store_true",
                    help="lvl=error lines are expected")
    ap.add_argument("--server-arg", action="append", default=[])
    ap.add_argument("--transport", choices=["udp", "tcp"], default="udp",
                    help="sipp's transport (the server listens on both)")


def _cli_body(h, a):
    srv = h.server(a.script, args=a.server_arg,
                   transports=("udp", "tcp") if a.transport == "tcp"
                   else ("udp",))
    sp = h.sipp(a.scenario, srv, calls=a.calls, rate=a.rate,
                timeout=a.timeout, transport=a.transport)
    h.sipp_ok(sp, "sipp %s over %s: %d call(s) succeeded" %
              (os.path.basename(a.scenario), a.transport.upper(), a.calls))
    h.stop_server(srv, must=a.expect_log, must_not=a.reject_log,
                  errors=a.expect_errors)


if __name__ == "__main__":
    test_main("run one sipp scenario against sipstack", _cli_body,
              extra_args=_cli_args)
