#!/usr/bin/env python3
"""`sipstack ctl` against the real server (`--ctl <temp>/ctl.sock`,
test/ctl/ctl.lua on a free 127.0.0.1 port). One group per run (--case):

  basics    the socket's mode (0660) and owner; `stats` before and
            after raw OPTIONS and MESSAGEs: requests and replies grew by
            exactly what was sent, and sip.stats() (a MESSAGE "stats")
            names the same figures; text and --json output; `log-level`
            (query, debug: debug lines appear, a bad level: exit 1);
            garbage lines (bad_json, the client may go on, its "id"
            echoed), a line over 8192 bytes (line_too_long, closed),
            clients that connect and vanish (half a line, nothing), 16
            idle clients and the 17th told "busy", then the server still
            answers; an unknown command (exit 2 from the client,
            unknown_command from the socket); no server at the path
            (exit 3), a stale socket (exit 3; a new server replaces it),
            a second server on a live socket (refused, exit 1); the
            socket file removed at exit.
  calls     sipp calls sip:ring@ (rings) and sip:answer@ (answered):
            `calls` lists each (id = sipp's Call-ID, direction, state
            Ringing / Connected, from, to, age); `calls hangup ID` ends
            them: 603 to the ringing one, a BYE to the answered one
            (sipp answers 200; both sipp runs succeed); `calls` empty
            after, calls_total 2; an unknown ID: exit 1, not_found.
  reload    a good reload (generation 2, the new script answers), a
            syntax error and a runtime error at load (exit 1,
            reload_failed naming ctl.lua:LINE; the old script keeps
            answering).
  location  scripts/registrar.lua (SQLite, digest auth): two contacts
            of alice registered: `location show` lists them (q order,
            expires, Call-ID), stats has aors 1, bindings 2; `location
            remove` removes 2, and the database has none when it
            answers (a REGISTER query then gets no Contact); a bad AOR
            (bad_request); a script without a registrar
            (no_registrar).
  drain     a call in flight (sipp talks 8 s, then BYE); `drain
            --retry-after 7`: stats says draining, a new INVITE gets 503
            with Retry-After: 7, the call in flight completes (sipp ok),
            then the server exits 0 by itself and removes its socket.
"""
import json
import os
import re
import shutil
import signal
import socket
import stat
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True   # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "sipp"))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "registrar"))
import harness  # noqa: E402
import reglib  # noqa: E402

LOCAL = harness.LOCAL
SCRIPT = os.path.join(HERE, "ctl.lua")


def args(ap):
    ap.add_argument("--case", required=True,
                    choices=["basics", "calls", "reload", "location",
                             "drain"])


def scenario(name):
    return os.path.join(HERE, name)


def ctl(h, sock, *cmd, js=True, timeout=15):
    """`sipstack ctl --socket sock [--json] cmd...`: (exit, answer dict or
    None, stdout, stderr)"""
    # under test/valgrind the server is the wrapper; the client, short
    # and run often, is the binary itself
    argv = [os.environ.get("SIPSTACK_REAL") or h.sipstack, "ctl",
            "--socket", sock]
    if js:
        argv.append("--json")
    rc, out, err = h.run(argv + list(cmd), timeout=timeout)
    ans = None
    if js and out.strip():
        try:
            ans = json.loads(out.strip().splitlines()[0])
        except ValueError:
            ans = None
    return rc, ans, out, err


def result(ans):
    return (ans or {}).get("result") or {}


START_BOUND = 20.0   # s: more than harness.START_TIMEOUT, for valgrind


def start(h, script=SCRIPT, sock=None, name=None):
    """A started server with --ctl sock (the start bounded by
    START_BOUND: under test/valgrind on a loaded machine 5 s is short)"""
    sock = sock or os.path.join(h.tmp, "ctl.sock")
    srv = harness.Server(h, script, name or "server-%d" % h.next_id(),
                         args=["--ctl", sock])
    h.servers.append(srv)
    if not h.ok(srv.start(timeout=START_BOUND), "%s: %s started" %
                (srv.name, os.path.basename(script)), server=srv):
        raise harness.Abort("the server did not start")
    return srv, sock


def message(srv, body, timeout=3.0):
    """A MESSAGE with body to the script; (code, body) or (None, None)"""
    cl = harness.UdpClient(srv.port)
    try:
        r = cl.request("MESSAGE", body=body, ctype="text/plain",
                       timeout=timeout)
    finally:
        cl.close()
    if r is None:
        return None, None
    return r.code, r.body.decode("utf-8", "replace")


def wait_calls(h, sock, pred, timeout=8.0):
    """Polls `calls` until pred(list of calls) holds; the last list"""
    end = time.monotonic() + timeout
    calls = []
    while time.monotonic() < end:
        rc, ans, _, _ = ctl(h, sock, "calls")
        calls = result(ans).get("calls", []) if rc == 0 else []
        if pred(calls):
            return calls
        time.sleep(0.1)
    return calls


class Raw:
    """A raw client of the control socket: lines in, lines out"""

    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        # blocking: a full backlog (the server has not accepted the
        # previous ones yet) waits instead of failing with EAGAIN
        self.s.connect(path)
        self.s.settimeout(5)
        self.buf = b""

    def send(self, data):
        self.s.sendall(data)

    def line(self):
        """The next answer line as a dict (None: closed, timeout or not
        JSON)"""
        while b"\n" not in self.buf:
            try:
                d = self.s.recv(65536)
            except (socket.timeout, ConnectionResetError):
                return None
            if not d:
                return None
            self.buf += d
        ln, _, self.buf = self.buf.partition(b"\n")
        try:
            return json.loads(ln)
        except ValueError:
            return None

    def closed(self):
        """True once the server has closed the connection"""
        try:
            while True:
                d = self.s.recv(65536)
                if not d:
                    return True
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False

    def close(self):
        self.s.close()


def err_code(ans):
    return ((ans or {}).get("error") or {}).get("code")


# ---------------------------------------------------------------------
# basics
# ---------------------------------------------------------------------

def basics(h):
    srv, sock = start(h)

    st = os.lstat(sock)
    h.ok(stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o660
         and st.st_uid == os.getuid(),
         "the control socket exists, mode 0660, owned by the server's "
         "user", diag="mode %o uid %d" % (st.st_mode, st.st_uid))

    rc, ans, out, err = ctl(h, sock, "stats")
    s0 = result(ans)
    h.ok(rc == 0 and ans.get("ok") is True and "requests" in s0 and
         s0.get("calls") == 0 and s0.get("draining") is False and
         s0.get("generation") == 1 and s0.get("aors") == 0,
         "stats: ok, with requests, calls 0, draining false, generation "
         "1, aors 0", diag="exit %s out %r err %r" % (rc, out, err))

    # traffic: 5 OPTIONS and 3 MESSAGEs, each answered once
    cl = harness.UdpClient(srv.port)
    answered = 0
    for _ in range(5):
        r = cl.request("OPTIONS")
        answered += bool(r and r.code == 200)
    for _ in range(3):
        r = cl.request("MESSAGE", body="hello", ctype="text/plain")
        answered += bool(r and r.code == 200)
    cl.close()
    h.ok(answered == 8, "5 OPTIONS and 3 MESSAGEs answered 200")

    rc, ans, _, _ = ctl(h, sock, "stats")
    s1 = result(ans)
    h.ok(rc == 0 and s1.get("requests") == s0.get("requests", 0) + 8 and
         s1.get("replies") == s0.get("replies", 0) + 8 and
         s1.get("bad_requests") == s0.get("bad_requests"),
         "stats: requests and replies grew by 8, bad_requests did not",
         diag="before %r\nafter %r" % (s0, s1))

    # sip.stats() names the same figures
    code, body = message(srv, "stats")
    names = sorted(l.split("=", 1)[0] for l in (body or "").splitlines())
    h.ok(code == 200 and names == sorted(s1.keys()),
         "sip.stats() has the same figures as ctl stats (%d)" % len(names),
         diag="script: %r\nctl: %r" % (names, sorted(s1.keys())))
    lua = dict(l.split("=", 1) for l in (body or "").splitlines()
               if "=" in l)
    h.ok(lua.get("requests") == str(s1.get("requests", -1) + 1) and
         lua.get("draining") == "false" and lua.get("generation") == "1",
         "sip.stats(): the same values (requests counts that MESSAGE)",
         diag="%r" % lua)

    rc, _, out, _ = ctl(h, sock, "stats", js=False)
    h.ok(rc == 0 and re.search(r"(?m)^requests\s+\d+$", out) and
         re.search(r"(?m)^draining\s+false$", out),
         "stats as text: one 'name value' line each", diag=out)

    # log-level
    rc, ans, _, _ = ctl(h, sock, "log-level")
    h.ok(rc == 0 and result(ans).get("level") == "info",
         "log-level without a level tells it: info", diag="%r" % ans)
    rc, ans, _, _ = ctl(h, sock, "log-level", "debug")
    h.ok(rc == 0 and result(ans) == {"level": "debug", "previous": "info"},
         "log-level debug: level debug, previous info", diag="%r" % ans)
    mark = srv.mark()
    cl = harness.UdpClient(srv.port)
    cl.request("OPTIONS")
    cl.close()
    h.ok(srv.wait_for(r"\blvl=debug\b", 3.0, after=mark),
         "debug lines appear after log-level debug")
    h.ok(srv.find({"mod": "ctl", "ev": "log_level", "from": "info",
                   "to": "debug"}), "the change is logged (ev=log_level)")
    rc, ans, out, err = ctl(h, sock, "log-level", "loud")
    h.ok(rc == 1 and "bad_request" in err,
         "log-level loud: exit 1, bad_request", diag="%s %r %r" %
         (rc, out, err))
    rc, ans, _, _ = ctl(h, sock, "log-level", "info", js=False)
    h.ok(rc == 0, "log-level info again")
    rc, _, out, _ = ctl(h, sock, "log-level", js=False)
    h.ok(rc == 0 and "log level info" in out,
         "log-level as text", diag=out)

    # garbage, then a good request on the same connection
    r = Raw(sock)
    r.send(b"garbage\n[1,2]\n\xff\xfe\x00\n{\"cmd\": \"stats\"\n")
    got = [r.line() for _ in range(4)]
    h.ok(all(err_code(a) == "bad_json" for a in got),
         "4 lines that are not a JSON object: bad_json each",
         diag="%r" % got)
    r.send(b'{"cmd":"stats","id":5}\r\n{"cmd":"nope","id":"x"}\n'
           b'{"id":6}\n\n{"cmd":"calls.hangup","id":7}\n')
    a1, a2, a3, a4 = r.line(), r.line(), r.line(), r.line()
    h.ok(a1 and a1.get("id") == 5 and a1.get("ok") is True and
         "requests" in a1.get("result", {}),
         "then a good request on the same connection: answered, id 5",
         diag="%r" % a1)
    h.ok(a2 and a2.get("id") == "x" and err_code(a2) == "unknown_command",
         "unknown command: unknown_command, id \"x\"", diag="%r" % a2)
    h.ok(a3 and a3.get("id") == 6 and err_code(a3) == "bad_request",
         "no cmd: bad_request", diag="%r" % a3)
    h.ok(a4 and a4.get("id") == 7 and err_code(a4) == "bad_request",
         "calls.hangup without a call: bad_request", diag="%r" % a4)
    r.close()

    # a line too long
    r = Raw(sock)
    try:
        r.send(b"{" + b" " * 9000)
    except OSError:
        pass
    a = r.line()
    h.ok(err_code(a) == "line_too_long" and r.closed(),
         "9000 bytes without a newline: line_too_long, then closed",
         diag="%r" % a)
    r.close()

    # clients that vanish
    for i in range(40):
        r = Raw(sock)
        if i % 2:
            r.send(b'{"cmd": "sta')
        r.close()
    # 16 idle clients, the 17th is turned away
    # (one at a time, each answered: the server may not have seen all
    # the vanished ones go yet, and then tells one of these busy)
    idle = []
    end = time.monotonic() + 15
    while len(idle) < 16 and time.monotonic() < end:
        r = Raw(sock)
        r.send(b'{"cmd":"log-level"}\n')
        a = r.line()
        if a and a.get("ok"):
            idle.append(r)
        else:
            r.close()
            time.sleep(0.2)
    ready = len(idle) == 16
    extra = Raw(sock)
    a = extra.line()
    h.ok(ready and err_code(a) == "busy" and extra.closed(),
         "with 16 clients connected, the 17th is told busy and closed",
         diag="%r" % a)
    extra.close()
    for r in idle:
        r.close()
    time.sleep(0.3)
    rc, ans, _, _ = ctl(h, sock, "stats")
    h.ok(rc == 0 and srv.alive(),
         "after 40 vanished clients and 17 idle ones: answered")

    # the client's own errors
    rc, _, out, err = ctl(h, sock, "frobnicate")
    h.ok(rc == 2 and "usage" in err, "ctl frobnicate: usage, exit 2",
         diag="%s %r" % (rc, err))
    none = os.path.join(h.tmp, "none.sock")
    rc, _, out, err = ctl(h, none, "stats")
    h.ok(rc == 3 and "no control socket there" in err,
         "no server at the path: exit 3, says so", diag="%s %r" % (rc, err))

    stale = os.path.join(h.tmp, "stale.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(stale)
    s.close()
    rc, _, out, err = ctl(h, stale, "stats")
    h.ok(rc == 3 and "not running" in err,
         "a stale socket: exit 3, the server is not running",
         diag="%s %r" % (rc, err))

    # a second server on the live socket is refused; on the stale one
    # it starts
    rc, out, err = h.run([h.sipstack, "--listen", "udp:%s:%d" % (
        LOCAL, harness.free_port(("udp",))), "--ctl", sock, SCRIPT],
        timeout=10, cwd=h.tmp)
    h.ok(rc == 1 and "another server answers on it" in err,
         "a second server on a live socket: refused, exit 1",
         diag="%s %r" % (rc, err[-500:]))
    # (a start bound of its own: under valgrind, beside the first)
    srv2 = harness.Server(h, SCRIPT, "stale", args=["--ctl", stale])
    h.servers.append(srv2)
    h.ok(srv2.start(timeout=START_BOUND),
         "a server starts on a stale socket")
    rc, ans, _, _ = ctl(h, stale, "stats")
    h.ok(rc == 0, "a server replaces a stale socket and answers on it")
    h.stop_server(srv2)
    h.ok(not os.path.exists(stale), "its socket file is removed at exit")

    h.stop_server(srv, must=[{"mod": "ctl", "ev": "listen"},
                             {"mod": "ctl", "ev": "busy"}])
    h.ok(not os.path.exists(sock), "the socket file is removed at exit")


# ---------------------------------------------------------------------
# calls
# ---------------------------------------------------------------------

def sent_callid(sp):
    for m in sp.messages("sent"):
        if m.start.startswith("INVITE "):
            return m.header("Call-ID")
    return None


def calls(h):
    srv, sock = start(h)

    sp = h.sipp(scenario("uac-ring-603.xml"), srv, args=["-s", "ring"],
                timeout=20)
    got = wait_calls(h, sock, lambda c: c and c[0].get("state") ==
                     "Ringing")
    c = got[0] if got else {}
    h.ok(c.get("direction") == "in" and "ring@" in c.get("to", "") and
         "caller@" in c.get("from", "") and c.get("age", -1) >= 0 and
         c.get("peer", "").startswith(LOCAL + ":") and c.get("id"),
         "calls: the ringing call (in, Ringing, from, to, peer, age)",
         diag="%r" % got)
    rc, _, out, _ = ctl(h, sock, "calls", js=False)
    h.ok(rc == 0 and "state=Ringing" in out and "direction=in" in out,
         "calls as text: one key=value line per call", diag=out)
    rc, ans, out, err = ctl(h, sock, "calls", "hangup", c.get("id", "-"))
    h.ok(rc == 0 and result(ans).get("hungup") == 1,
         "calls hangup ID: 1 call", diag="%s %r %r" % (rc, out, err))
    h.sipp_ok(sp, "the ringing call got 603 (sipp completed)")
    h.ok(c.get("id") == sent_callid(sp), "the call's id is its Call-ID",
         diag="%r vs %r" % (c.get("id"), sent_callid(sp)))

    sp = h.sipp(scenario("uac-answer-bye-in.xml"), srv,
                args=["-s", "answer"], timeout=20)
    got = wait_calls(h, sock, lambda c: c and c[0].get("state") ==
                     "Connected")
    c = got[0] if got else {}
    h.ok(c.get("state") == "Connected" and "answer@" in c.get("to", ""),
         "calls: the answered call, Connected", diag="%r" % got)
    rc, ans, out, err = ctl(h, sock, "calls", "hangup", c.get("id", "-"),
                            js=False)
    h.ok(rc == 0 and "hung up 1 call" in out, "calls hangup ID (text)",
         diag="%s %r %r" % (rc, out, err))
    h.sipp_ok(sp, "the answered call: sipp got the BYE and answered 200")
    byes = [m for m in sp.messages("received") if m.start.startswith("BYE")]
    h.ok(len(byes) >= 1, "sipp received a BYE")

    left = wait_calls(h, sock, lambda c: not c)
    h.ok(not left, "calls: none left", diag="%r" % left)
    rc, ans, _, _ = ctl(h, sock, "stats")
    h.ok(result(ans).get("calls_total") == 2 and
         result(ans).get("calls") == 0,
         "stats: calls 0, calls_total 2", diag="%r" % ans)
    rc, ans, out, err = ctl(h, sock, "calls", "hangup", "no-such-call")
    h.ok(rc == 1 and "not_found" in err, "hangup of an unknown id: exit 1,"
         " not_found", diag="%s %r" % (rc, err))

    h.stop_server(srv, must=[{"mod": "ctl", "ev": "hangup"}])


# ---------------------------------------------------------------------
# reload
# ---------------------------------------------------------------------

def reload(h):
    script = os.path.join(h.tmp, "ctl.lua")
    shutil.copy(SCRIPT, script)
    with open(SCRIPT, encoding="utf-8") as f:
        text = f.read()
    srv, sock = start(h, script=script)

    h.ok(message(srv, "gen") == (200, "one"), "the script answers gen=one")

    with open(script, "w", encoding="utf-8") as f:
        f.write(text.replace('local GEN = "one"', 'local GEN = "two"'))
    rc, ans, out, err = ctl(h, sock, "reload")
    h.ok(rc == 0 and result(ans).get("generation") == 2,
         "reload: ok, generation 2", diag="%s %r %r" % (rc, out, err))
    h.ok(message(srv, "gen") == (200, "two"), "the new script answers two")

    lines = text.replace('local GEN = "one"',
                         'local GEN = "three"').splitlines()
    bad = len(lines) + 2
    with open(script, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n\nlocal x = = 1\n")
    rc, ans, out, err = ctl(h, sock, "reload", js=False)
    h.ok(rc == 1 and "reload_failed" in err and
         ("ctl.lua:%d:" % bad) in err,
         "a syntax error: exit 1, reload_failed naming ctl.lua:%d" % bad,
         diag="%s %r %r" % (rc, out, err))
    h.ok(message(srv, "gen") == (200, "two"),
         "the old script keeps answering")

    boom = len(lines) + 2
    with open(script, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n\nerror(\"boom\")\n")
    rc, ans, out, err = ctl(h, sock, "reload")
    msg = ((ans or {}).get("error") or {}).get("message", "")
    h.ok(rc == 1 and err_code(ans) == "reload_failed" and
         ("ctl.lua:%d: boom" % boom) in msg,
         "a runtime error at load: reload_failed, ctl.lua:%d: boom" % boom,
         diag="%s %r %r" % (rc, out, err))
    h.ok(message(srv, "gen") == (200, "two"),
         "the old script still answers")

    h.stop_server(srv, must=[{"mod": "lua", "ev": "reloaded"}],
                  errors=[{"mod": "lua", "ev": "reload_failed"}])


# ---------------------------------------------------------------------
# location
# ---------------------------------------------------------------------

def location(h):
    # the bundled registrar (SQLite, digest auth), its database in h.tmp
    script, db = reglib.bundled_copy(h)
    if not reglib.add_users(h, db, [("alice", "secret")]):
        raise harness.Abort("no user")
    srv, sock = start(h, script=script)
    rg = reglib.RegClient(srv, password="secret")
    c1, c2 = rg.contact(1), rg.contact(2)
    r = rg.register(["<%s>" % c1, "<%s>;q=0.5" % c2], expires=600)
    h.ok(r is not None and r.code == 200,
         "alice registers 2 contacts (digest)")
    h.ok(reglib.sql_count(h, db) == 2, "2 bindings in the database")

    rc, ans, out, err = ctl(h, sock, "location", "show", rg.aor)
    res = result(ans)
    bs = res.get("bindings", [])
    h.ok(rc == 0 and res.get("aor") == rg.aor and res.get("count") == 2 and
         sorted(b.get("contact") for b in bs) == sorted([c1, c2]) and
         all(0 < b.get("expires", 0) <= 600 for b in bs) and
         all(b.get("callid") == rg.callid for b in bs),
         "location show: the 2 bindings, contacts, expires, Call-ID",
         diag="%s %r %r" % (rc, out, err))
    h.ok([b.get("q") for b in bs] == [1, 0.5],
         "ordered by q (1, then 0.5)", diag="%r" % bs)
    rc, ans, _, _ = ctl(h, sock, "stats")
    h.ok(result(ans).get("aors") == 1 and result(ans).get("bindings") == 2,
         "stats: aors 1, bindings 2", diag="%r" % ans)
    rc, _, out, _ = ctl(h, sock, "location", "show", rg.aor, js=False)
    h.ok(rc == 0 and out.count("contact=") == 2, "location show as text",
         diag=out)

    rc, ans, out, err = ctl(h, sock, "location", "remove", rg.aor)
    h.ok(rc == 0 and result(ans).get("removed") == 2,
         "location remove: 2 removed", diag="%s %r %r" % (rc, out, err))
    h.ok(reglib.sql_count(h, db) == 0,
         "answered once committed: no binding left in the database")
    rc, ans, out, _ = ctl(h, sock, "location", "show", rg.aor, js=False)
    h.ok(rc == 0 and "no bindings" in out, "then location show: none",
         diag=out)
    r = rg.register([])
    h.ok(r is not None and r.code == 200 and not r.header("Contact"),
         "a REGISTER query gets 200 without Contact")
    rg.close()

    rc, ans, out, err = ctl(h, sock, "location", "show", "nonsense")
    h.ok(rc == 1 and "bad_request" in err, "a bad AOR: bad_request",
         diag="%s %r" % (rc, err))
    h.stop_server(srv, must=[{"mod": "ctl", "ev": "location_removed"}])

    srv, sock = start(h, script=harness.script_path("wire.lua"),
                      sock=os.path.join(h.tmp, "wire.sock"))
    rc, ans, out, err = ctl(h, sock, "location", "show", rg.aor)
    h.ok(rc == 1 and err_code(ans) == "no_registrar",
         "a script without a registrar: no_registrar",
         diag="%s %r %r" % (rc, out, err))
    h.stop_server(srv)


# ---------------------------------------------------------------------
# drain
# ---------------------------------------------------------------------

def drain(h):
    srv, sock = start(h)

    sp = h.sipp(scenario("uac-answer-pause.xml"), srv,
                args=["-s", "answer"], timeout=25)
    got = wait_calls(h, sock, lambda c: c and c[0].get("state") ==
                     "Connected")
    h.ok(len(got) == 1, "a call in flight (Connected)", diag="%r" % got)

    rc, ans, out, err = ctl(h, sock, "drain", "--retry-after", "7")
    h.ok(rc == 0 and result(ans).get("draining") is True and
         result(ans).get("calls") == 1,
         "drain: draining, 1 call left", diag="%s %r %r" % (rc, out, err))
    rc, ans, _, _ = ctl(h, sock, "stats")
    h.ok(result(ans).get("draining") is True, "stats: draining true")

    sp2 = h.sipp(scenario("uac-503.xml"), srv, args=["-s", "answer"],
                 timeout=10)
    h.sipp_ok(sp2, "a new INVITE gets 503 (with Retry-After)")
    ra = [m.header("Retry-After") for m in sp2.messages("received")
          if m.start.startswith("SIP/2.0 503")]
    h.ok(ra and ra[0].strip() == "7", "its Retry-After is 7",
         diag="%r" % ra)

    h.sipp_ok(sp, "the call in flight completed (sipp's BYE answered)")
    try:
        rc = srv.proc.wait(15)
    except Exception:
        rc = "still running"
    h.ok(rc == 0, "then the server exits 0 by itself", diag="exit %s" % rc)
    h.ok(not os.path.exists(sock), "and removes its socket")
    h.check_log(srv, must=[{"mod": "ctl", "ev": "draining"},
                           {"mod": "ctl", "ev": "drained"},
                           {"mod": "call", "ev": "refused_draining"},
                           {"mod": "main", "ev": "stopping",
                            "reason": "drained"}])


def body(h, a):
    {"basics": basics, "calls": calls, "reload": reload,
     "location": location, "drain": drain}[a.case](h)


if __name__ == "__main__":
    harness.test_main("sipstack ctl: the control socket", body,
                      extra_args=args)
