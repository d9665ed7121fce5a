"""test/registrar/reglib.py  Helpers of the registrar's wire tests

Imported by the t_*.py files of this folder (not a test itself). Builds
on test/sipp/harness.py (imported from ../sipp) and adds what the
registrar tests share:

  - scripts in the test's temp dir: a copy of the bundled
    scripts/registrar.lua with its DATABASE rewritten into the temp dir
    (and AUTH switched off if asked), and the Lua test scripts of this
    folder with their @DATABASE@ placeholder filled in;
  - `sipstack user add` into that database (add_users);
  - RFC 7616 digest answers computed here (hashlib MD5, SHA-256), so a
    test can send exactly the Authorization it wants (replays included);
  - a raw REGISTER client (UdpClient from the harness) that answers the
    401 itself, and the MESSAGE `where <aor>` lookup of the scripts;
  - sqlite3 CLI queries on the database file.

Nothing here touches the repository: every file written goes to h.tmp.
"""
import hashlib
import os
import re
import shutil
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.dont_write_bytecode = True   # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "sipp"))
import harness  # noqa: E402,F401  (re-exported for the tests)

BUNDLED = os.path.join(ROOT, "scripts", "registrar.lua")
LOCAL = harness.LOCAL
REALM = "sipstack"


def scenario(name):
    """Absolute path of a sipp scenario of this folder."""
    return os.path.join(HERE, name)


# ---------------------------------------------------------------------
# Scripts and users
# ---------------------------------------------------------------------

def bundled_copy(h, name="registrar.lua", db=None, auth=True):
    """Copy scripts/registrar.lua into h.tmp with DATABASE pointing into
    h.tmp (and AUTH = false unless auth). Returns (script, db)."""
    db = db or os.path.join(h.tmp, "registrar.db")
    with open(BUNDLED, encoding="utf-8") as f:
        text = f.read()
    text, n = re.subn(r'(?m)^(local\s+DATABASE\s*=\s*)"[^"]*"',
                      lambda m: m.group(1) + '"%s"' % db, text)
    if n != 1:
        raise harness.Abort("scripts/registrar.lua: no `local DATABASE "
                            "= \"...\"` line to rewrite")
    if not auth:
        text, n = re.subn(r'(?m)^(local\s+AUTH\s*=\s*)true\b',
                          lambda m: m.group(1) + "false", text)
        if n != 1:
            raise harness.Abort("scripts/registrar.lua: no `local AUTH "
                                "= true` line to rewrite")
    path = os.path.join(h.tmp, name)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return path, db


def test_script(h, name, db=None, subst=None):
    """Copy this folder's Lua script `name` (and where.lua, which it may
    require) into h.tmp, @DATABASE@ replaced by db (default
    h.tmp/NAME.db) and any other @KEY@ of subst. Returns (script, db)."""
    db = db or os.path.join(h.tmp, os.path.splitext(name)[0] + ".db")
    with open(os.path.join(HERE, name), encoding="utf-8") as f:
        text = f.read()
    text = text.replace("@DATABASE@", db)
    for k, v in (subst or {}).items():
        text = text.replace("@%s@" % k, str(v))
    path = os.path.join(h.tmp, name)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    # the scripts' shared lookup, loaded with require "where"
    shutil.copyfile(os.path.join(HERE, "where.lua"),
                    os.path.join(h.tmp, "where.lua"))
    return path, db


def add_users(h, db, users, realm=None):
    """`sipstack user add USER PASSWORD --db db` for each (user,
    password) of users; one check for all of them."""
    bad = []
    for user, password in users:
        cmd = [h.sipstack, "user", "add", user, password, "--db", db]
        if realm:
            cmd += ["--realm", realm]
        rc, out, err = h.run(cmd, timeout=10, cwd=h.tmp)
        if rc != 0:
            bad.append("%s: exit %s %s" % (user, rc, (out + err).strip()))
    h.ok(not bad, "sipstack user add: %s" % (
        ", ".join(u for u, _ in users) if len(users) <= 3 else
        "%d users" % len(users)), diag="\n".join(bad))
    return not bad


def sql(h, db, query, timeout=10):
    """Rows of an sqlite3 CLI query on db (list of lists of str), or None
    if sqlite3 failed."""
    exe = shutil.which("sqlite3")
    if exe is None:
        h.note("sqlite3 CLI not found (Debian package sqlite3, make deps)")
        return None
    rc, out, err = h.run([exe, "-batch", "-separator", "|", db, query],
                         timeout=timeout, cwd=h.tmp)
    if rc != 0:
        h.note("sqlite3 %s %r: exit %s %s" % (db, query, rc, err.strip()))
        return None
    return [l.split("|") for l in out.splitlines()]


def sql_count(h, db, where="1"):
    rows = sql(h, db, "select count(*) from bindings where %s" % where)
    return int(rows[0][0]) if rows else None


def snapshot_db(h, db, name):
    """Copy db and its -wal/-shm into h.tmp/name/ (to read what was on
    disk at this moment without touching the live files). Returns the
    copy's path."""
    d = os.path.join(h.tmp, name)
    os.makedirs(d, exist_ok=True)
    for ext in ("", "-wal", "-shm"):
        if os.path.exists(db + ext):
            shutil.copyfile(db + ext, os.path.join(d, os.path.basename(db)
                                                   + ext))
    return os.path.join(d, os.path.basename(db))


# ---------------------------------------------------------------------
# Digest (RFC 7616, MD5, qop=auth)
# ---------------------------------------------------------------------

def md5hex(s):
    return hashlib.md5(s.encode("utf-8")).hexdigest()


def sha256hex(s):
    return hashlib.sha256(s.encode("utf-8")).hexdigest()


def parse_challenge(value):
    """{param: value} of a `Digest k=v, k="v"` header value."""
    if not value or not value.startswith("Digest "):
        return {}
    out = {}
    for m in re.finditer(r'([A-Za-z0-9_-]+)\s*=\s*("(?:[^"\\]|\\.)*"|'
                         r'[^\s,]+)', value[7:]):
        v = m.group(2)
        out[m.group(1).lower()] = v[1:-1] if v.startswith('"') else v
    return out


def digest_authorization(user, password, nonce, uri, method="REGISTER",
                         realm=REALM, nc=1, cnonce="0a4f113b",
                         algorithm="MD5", qop="auth"):
    """The Authorization value answering a challenge (RFC 7616 §3.4.1,
    qop=auth; qop=None leaves qop, nc and cnonce out, RFC 2069 style)."""
    H = sha256hex if algorithm == "SHA-256" else md5hex
    ha1 = H("%s:%s:%s" % (user, realm, password))
    ha2 = H("%s:%s" % (method, uri))
    ncs = "%08x" % nc
    if qop is None:
        resp = H("%s:%s:%s" % (ha1, nonce, ha2))
        return ('Digest username="%s", realm="%s", nonce="%s", uri="%s", '
                'response="%s", algorithm=%s' % (user, realm, nonce, uri,
                                                  resp, algorithm))
    resp = H("%s:%s:%s:%s:%s:%s" % (ha1, nonce, ncs, cnonce, qop, ha2))
    return ('Digest username="%s", realm="%s", nonce="%s", uri="%s", '
            'response="%s", algorithm=%s, qop=%s, nc=%s, cnonce="%s"'
            % (user, realm, nonce, uri, resp, algorithm, qop, ncs,
               cnonce))


# ---------------------------------------------------------------------
# Raw REGISTER / MESSAGE client
# ---------------------------------------------------------------------

class RegClient:
    """REGISTERs for one AOR from one UDP socket, Call-ID and CSeq kept
    like a UA does (each request CSeq+1 on the same Call-ID unless
    told otherwise)."""

    def __init__(self, srv, user="alice", domain=LOCAL, password=None,
                 tag=None, bind=LOCAL):
        self.cl = harness.UdpClient(srv.port, bind=bind)
        self.srv = srv
        self.user = user
        self.password = password
        self.aor = "sip:%s@%s" % (user, domain)
        self.ruri = "sip:%s:%d" % (LOCAL, srv.port)
        self.port = self.cl.port
        self.tag = tag or "t%d" % self.cl.port
        self.callid = "reg-%s-%d@%s" % (user, self.cl.port, LOCAL)
        self.cseq = 0
        self.last = []        # every response of the last register()

    def contact(self, n=0, user=None):
        """A contact URI: this client's own address, or (n > 0) a made-up
        one on port 20000 + n (nothing listens there: the registrar
        never contacts a binding)."""
        port = self.port if n == 0 else 20000 + n
        return "sip:%s@%s:%d" % (user or self.user, self.cl.local, port)

    def close(self):
        self.cl.close()

    def send_register(self, contacts=(), expires=None, callid=None,
                      cseq=None, authorization=None, extra=(),
                      raw_contacts=None):
        """Send one REGISTER, returns its branch. contacts: values of
        Contact headers, each as written (e.g. "<sip:a@b>;q=0.5")."""
        if cseq is None:
            self.cseq += 1
            cseq = self.cseq
        else:
            self.cseq = max(self.cseq, cseq)
        hdrs = {"From": "<%s>;tag=%s" % (self.aor, self.tag),
                "To": "<%s>" % self.aor,
                "Call-ID": callid or self.callid,
                "CSeq": "%d REGISTER" % cseq}
        ex = []
        for c in (raw_contacts if raw_contacts is not None else contacts):
            ex.append(("Contact", c))
        if expires is not None:
            ex.append(("Expires", str(expires)))
        if authorization:
            ex.append(("Authorization", authorization))
        ex += list(extra)
        return self.cl.send("REGISTER", uri=self.ruri, set=hdrs, extra=ex)

    def register(self, contacts=(), expires=None, auth=None, timeout=2.0,
                 **kw):
        """REGISTER; with a password (auth, else self.password) answer a
        401 once with a fresh digest (CSeq+1). Returns the final
        response (None: no answer); self.last holds every one."""
        password = auth if auth is not None else self.password
        self.last = []
        r = self.cl.recv(self.send_register(contacts, expires, **kw),
                         timeout)
        self.last.append(r)
        if r is not None and r.code == 401 and password:
            ch = parse_challenge(r.header("WWW-Authenticate"))
            kw.pop("cseq", None)
            kw.pop("authorization", None)
            a = digest_authorization(self.user, password, ch.get("nonce"),
                                     self.ruri)
            r = self.cl.recv(self.send_register(contacts, expires,
                                                authorization=a, **kw),
                             timeout)
            self.last.append(r)
        return r


def contacts_of(r):
    """[(uri, {param: value})] of every Contact of a response."""
    out = []
    if r is None:
        return out
    for n, v in r.headers:
        if n.lower() not in ("contact", "m"):
            continue
        # one header may carry several comma-separated values
        for part in re.findall(r'<[^>]*>[^,]*|[^,]+', v):
            part = part.strip()
            m = re.match(r'<([^>]*)>(.*)$', part)
            if not m:
                continue
            params = {}
            for p in m.group(2).split(";"):
                p = p.strip()
                if p:
                    k, _, val = p.partition("=")
                    params[k.lower()] = val
            out.append((m.group(1), params))
    return out


def where(srv, aor, cl=None, timeout=2.0):
    """The bindings of aor as the script's MESSAGE `where <aor>` tells
    them: [(uri, expires, q)], or None without an answer."""
    own = cl is None
    cl = cl or harness.UdpClient(srv.port)
    try:
        r = cl.request("MESSAGE", uri="sip:%s:%d" % (LOCAL, srv.port),
                       ctype="text/plain", body="where " + aor,
                       timeout=timeout)
    finally:
        if own:
            cl.close()
    if r is None or r.code != 200:
        return None
    out = []
    for line in r.body.decode("utf-8", "replace").splitlines():
        m = re.match(r'^(.*);expires=(\d+);q=([0-9.]+)$', line.strip())
        if m:
            out.append((m.group(1), int(m.group(2)), float(m.group(3))))
    return out


def desc_resp(r):
    if r is None:
        return "no answer"
    return "%s | %s" % (r.start, " | ".join(
        "%s: %s" % nv for nv in r.headers
        if nv[0].lower() in ("contact", "expires", "min-expires",
                             "www-authenticate", "date")))
