"""test/registration/regtest.py  What the registration and DNS tests share

Builds on test/sipp/harness.py (imported, not changed): the Harness runs
sipstack and sipp, prints TAP and cleans up. This module adds

  reg_script(h, params)   a copy of reg.lua with its params.lua beside it
                          (rewrite_params() changes them, for reloads)
  results(srv)            the on_registration_result calls reg.lua logged
  wait_results(srv, n, t) ... waiting until there are n of them
  log_time(line)          the ts= of a log line, in seconds
  sipp_messages(sp)       sipp's message log with the time of each one
  digest_check(...)       an Authorization header recomputed (RFC 2617)
  Dnsmasq                 a dnsmasq on 127.0.0.1:<free port> serving the
                          NAPTR, SRV and A records a test gives it

Standard library only; every process goes through h.spawn(), so the
harness kills it on the way out.
"""
import calendar
import hashlib
import os
import re
import shutil
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SIPP_DIR = os.path.join(os.path.dirname(HERE), "sipp")
sys.dont_write_bytecode = True   # no __pycache__ in the source tree
sys.path.insert(0, SIPP_DIR)

import harness  # noqa: E402
from harness import LOCAL, Abort, free_port, parse_logfmt  # noqa: E402,F401

DOMAIN = "sipstack.test"
DNSMASQ = shutil.which("dnsmasq") or "/usr/sbin/dnsmasq"


def scenario(name):
    """A scenario of this directory, else of test/sipp/"""
    p = os.path.join(HERE, name)
    return p if os.path.exists(p) else os.path.join(SIPP_DIR, name)


# ---------------------------------------------------------------------
# The script and its parameters
# ---------------------------------------------------------------------

def lua_value(v):
    """A Python value as a Lua literal (str, bool, int, list, dict)."""
    if v is None:
        return "nil"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return '"%s"' % "".join(c if c.isalnum() or c in " .:@;=_-+/*<>"
                                else "\\%d" % ord(c) for c in v)
    if isinstance(v, (list, tuple)):
        return "{ %s }" % ", ".join(lua_value(x) for x in v)
    if isinstance(v, dict):
        return "{ %s }" % ", ".join("[%s] = %s" % (lua_value(k),
                                                    lua_value(x))
                                    for k, x in sorted(v.items()))
    raise TypeError("no Lua literal for %r" % (v,))


def rewrite_params(script, params):
    with open(os.path.join(os.path.dirname(script), "params.lua"), "w",
              encoding="utf-8") as f:
        f.write("-- written by the test\nreturn %s\n" % lua_value(params))


def reg_script(h, params, name="reg"):
    """A directory of the test's own with reg.lua and params.lua;
    returns the path of the script."""
    d = os.path.join(h.tmp, name)
    os.makedirs(d, exist_ok=True)
    script = os.path.join(d, "reg.lua")
    shutil.copy(os.path.join(HERE, "reg.lua"), script)
    rewrite_params(script, params)
    return script


# ---------------------------------------------------------------------
# The server's log
# ---------------------------------------------------------------------

_TS = re.compile(r"\bts=(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)\.(\d{3})Z")


def log_time(line):
    """ts= of a log line as seconds since the epoch (None: none)."""
    m = _TS.search(line or "")
    if not m:
        return None
    y, mo, d, hh, mi, s, ms = (int(x) for x in m.groups())
    return calendar.timegm((y, mo, d, hh, mi, s)) + ms / 1000.0


def results(srv, after=0):
    """[(record, line)] of the msg=regresult lines reg.lua wrote."""
    return [(parse_logfmt(l), l)
            for l in srv.find({"ev": "log", "msg": "regresult"}, after)]


def wait_results(srv, n, timeout, after=0):
    """The first n results, waiting up to timeout s for them (fewer if
    they did not come)."""
    end = time.monotonic() + timeout
    while True:
        got = results(srv, after)
        if len(got) >= n or time.monotonic() >= end or not srv.alive():
            return got[:n] if len(got) >= n else got
        time.sleep(0.05)


def result_desc(rec):
    return "(%s, %s, %s, code %s)" % (rec.get("ok"), rec.get("expires"),
                                      rec.get("reason"), rec.get("code"))


# ---------------------------------------------------------------------
# sipp's message log, with times
# ---------------------------------------------------------------------

_SIPP_STAMP = re.compile(
    rb"(?m)^-{20,} (\d{4})-(\d\d)-(\d\d) (\d\d):(\d\d):(\d\d)\.(\d{6})\n"
    rb"(\w+) message (sent|received) [(\[](\d+)(?:\] bytes :| bytes\):)\n\n")


def sipp_messages(sp, direction=None):
    """[(t, SipMsg)] from sipp's message log; t in seconds (its own
    clock; only differences between them mean something)."""
    try:
        with open(sp.msg_path, "rb") as f:
            data = f.read()
    except OSError:
        return []
    out = []
    for m in _SIPP_STAMP.finditer(data):
        if direction and m.group(9).decode() != direction:
            continue
        y, mo, d, hh, mi, s, us = (int(x) for x in m.groups()[:7])
        t = calendar.timegm((y, mo, d, hh, mi, s)) + us / 1e6
        n = int(m.group(10))
        out.append((t, harness.SipMsg(data[m.end():m.end() + n])))
    return out


def registers(sp):
    """[(t, SipMsg)] of the REGISTERs sipp received (retransmissions,
    same Via branch, counted once)."""
    seen, out = set(), []
    for t, m in sipp_messages(sp, "received"):
        if m.method != "REGISTER":
            continue
        via = m.header("Via") or ""
        if via in seen:
            continue
        seen.add(via)
        out.append((t, m))
    return out


def cseq_num(m):
    v = (m.header("CSeq") or "0").split()
    return int(v[0]) if v and v[0].isdigit() else 0


def contact_expires(m):
    c = m.header("Contact") or ""
    mm = re.search(r";\s*expires=(\d+)", c)
    return int(mm.group(1)) if mm else None


# ---------------------------------------------------------------------
# Digest (RFC 2617 / RFC 3261 §22.4), MD5 and qop=auth
# ---------------------------------------------------------------------

def digest_params(value):
    """{name: value} of a 'Digest a="b", c=d' header value."""
    value = re.sub(r"^\s*Digest\s+", "", value or "")
    return {m.group(1).lower(): m.group(2) if m.group(2) is not None
            else m.group(3)
            for m in re.finditer(r'(\w+)\s*=\s*(?:"([^"]*)"|([^\s,]+))',
                                 value)}


def digest_check(authz, method, user, password, realm, nonce, ruri):
    """(ok, why) for an Authorization header value: every field as
    expected and the response recomputed here."""
    p = digest_params(authz)

    def md5(s):
        return hashlib.md5(s.encode("utf-8")).hexdigest()

    for k, want in (("username", user), ("realm", realm),
                    ("nonce", nonce), ("uri", ruri), ("qop", "auth")):
        if p.get(k) != want:
            return False, "%s=%r, expected %r" % (k, p.get(k), want)
    if not re.fullmatch(r"[0-9a-f]{8}", p.get("nc", "")):
        return False, "nc=%r" % p.get("nc")
    if not p.get("cnonce"):
        return False, "no cnonce"
    if p.get("algorithm", "MD5").upper() != "MD5":
        return False, "algorithm=%r" % p.get("algorithm")
    ha1 = md5("%s:%s:%s" % (user, realm, password))
    ha2 = md5("%s:%s" % (method, p["uri"]))
    want = md5("%s:%s:%s:%s:auth:%s" % (ha1, p["nonce"], p["nc"],
                                          p["cnonce"], ha2))
    if p.get("response") != want:
        return False, "response=%r, expected %r" % (p.get("response"),
                                                    want)
    return True, "nc=%s cnonce=%s" % (p["nc"], p["cnonce"])


# ---------------------------------------------------------------------
# dnsmasq
# ---------------------------------------------------------------------

class Dnsmasq:
    """dnsmasq in the foreground on 127.0.0.1:<free port>, answering
    for DOMAIN only from the records given (no upstream, no hosts file,
    no config file; --local makes it answer NODATA/NXDOMAIN itself for
    anything else in DOMAIN). Records:

      naptr: (name, order, pref, flags, service, replacement)
      srv:   (name, target, port, priority, weight)
      hosts: (name, address)

    unprivileged=True, when run as root, drops to nobody with setpriv
    first (dnsmasq needs no privilege for a port above 1023); as
    another user it runs as that user either way."""

    def __init__(self, h, naptr=(), srv=(), hosts=(), unprivileged=False):
        self.h = h
        self.port = free_port(("udp", "tcp"))
        self.log_path = os.path.join(h.tmp, "dnsmasq-%d.log" % self.port)
        cmd = [DNSMASQ, "--no-daemon", "--port=%d" % self.port,
               "--listen-address=" + LOCAL, "--bind-interfaces",
               "--no-resolv", "--no-hosts", "--conf-file=/dev/null",
               "--pid-file=", "--log-queries", "--log-facility=-",
               "--local=/%s/" % DOMAIN]
        for n in naptr:
            cmd.append("--naptr-record=%s,%d,%d,%s,%s,,%s" % tuple(n))
        for s in srv:
            cmd.append("--srv-host=%s,%s,%d,%d,%d" % tuple(s))
        for name, addr in hosts:
            cmd.append("--host-record=%s,%s" % (name, addr))
        self.as_user = "root" if os.geteuid() == 0 else \
            "the current user, uid %d" % os.geteuid()
        if unprivileged and os.geteuid() == 0 and shutil.which("setpriv"):
            cmd = ["setpriv", "--reuid=65534", "--regid=65534",
                   "--clear-groups"] + cmd
            self.as_user = "nobody (uid 65534, through setpriv)"
        self.cmd = cmd
        self.proc = None

    def start(self, timeout=5.0):
        """Start and wait until it answers on its port; False if not."""
        self.h.note("dnsmasq: " + " ".join(self.cmd))
        with open(self.log_path, "wb") as log:
            self.proc = self.h.spawn(self.cmd, stdout=log,
                                     stderr=log)
        if not harness.wait_port_taken(self.port, self.proc, timeout):
            return False
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if re.search(r"dnsmasq(\[\d+\])?: started", self.log()):
                return True
            if self.proc.poll() is not None:
                return False
            time.sleep(0.02)
        return False

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def queries(self):
        """[(qtype, name)] in the order dnsmasq logged them."""
        return re.findall(r"query\[(\w+)\] (\S+) from", self.log())

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(3)
            except Exception:   # noqa: BLE001 - killed below
                self.proc.kill()
                self.proc.wait(3)


def start_dnsmasq(h, **kw):
    """A started Dnsmasq (the test aborts when it does not start)."""
    dns = Dnsmasq(h, **kw)
    up = dns.start()
    h.ok(up, "dnsmasq serves %s on 127.0.0.1:%d (as %s)" %
         (DOMAIN, dns.port, dns.as_user),
         diag=dns.log()[-2000:])
    if not up:
        raise Abort("dnsmasq did not start")
    return dns
