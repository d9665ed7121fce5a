#!/usr/bin/env python3
"""test/websocket/t_browser.py  A real browser: JsSIP in headless Chromium

setup.sh provides Debian's chromium and JsSIP from npm (pinned by
npm/package-lock.json, kept under the build dir). JsSIP's npm package
is CommonJS only (lib/), so bundle() below wraps its modules and those
it requires into one jssip.js for a <script> tag (no bundler needed).

Then: a copy of scripts/registrar.lua (digest, SQLite) with users made
by `sipstack user add`, listening on udp:, ws: and wss:; a python
http.server on 127.0.0.1 serves page.html and jssip.js and takes the
page's result (POST /result); headless Chromium (--no-sandbox: we may be
root) loads the page, which registers alice over ws:, sends a MESSAGE to
alice (the script relays it back over the same WebSocket connection:
the page receives it and answers 200, which the script passes back as
the answer to the page's MESSAGE) and asks the script "where" alice is
(the answer lists the browser's .invalid Contact). Then the same over
wss: (a throwaway self-signed certificate, which Chromium is told to
accept). The test checks each figure of the results, the server's log
(no lvl=error) and its clean stop.

When Chromium or npm cannot be had, the TAP plan `1..0 # SKIP reason`
says why: never a silent pass.

usage: t_browser.py --sipstack BUILD/sipstack --workdir BUILD/websocket
"""
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "registrar"))
sys.path.insert(0, HERE)
import reglib  # noqa: E402
import wslib  # noqa: E402

h_ = reglib.harness
LOCAL = reglib.LOCAL
SETUP_BOUND = 75          # seconds for setup.sh (a first run installs)
PAGE_BOUND = 30           # seconds for the page's result


# ---------------------------------------------------------------------
# JsSIP's CommonJS modules as one script
# ---------------------------------------------------------------------

REQUIRE = re.compile(r"""\brequire\(\s*['"]([^'"]+)['"]\s*\)""")


def resolve(nm, frm, spec):
    if spec.startswith("."):
        base = os.path.normpath(os.path.join(os.path.dirname(frm), spec))
    else:
        pkg = os.path.join(nm, spec)
        with open(os.path.join(pkg, "package.json")) as f:
            pj = json.load(f)
        entry = pj.get("browser") if isinstance(pj.get("browser"), str) \
            else pj.get("main") or "index.js"
        base = os.path.normpath(os.path.join(pkg, entry))
    for c in (base, base + ".js", base + ".json",
              os.path.join(base, "index.js")):
        if os.path.isfile(c):
            return c
    raise FileNotFoundError("cannot resolve %r from %s" % (spec, frm))


def bundle(nm, out):
    entry = resolve(nm, os.path.join(nm, "x"), "jssip")
    ids, defs, todo = {}, [], [entry]
    ids[entry] = 0
    while todo:
        path = todo.pop()
        with open(path, encoding="utf-8") as f:
            src = f.read()
        deps = {}
        if path.endswith(".json"):
            src = "module.exports = %s;" % src
        else:
            for spec in set(REQUIRE.findall(src)):
                dep = resolve(nm, path, spec)
                if dep not in ids:
                    ids[dep] = len(ids)
                    todo.append(dep)
                deps[spec] = ids[dep]
        defs.append((ids[path], path, src, deps))
    with open(out, "w", encoding="utf-8") as f:
        f.write("(function () {\nvar process = {env: {}, browser: true};\n"
                "var global = window, defs = {}, cache = {};\n"
                "function load(id) {\n  if (cache[id]) return "
                "cache[id].exports;\n  var m = cache[id] = {exports: {}};\n"
                "  defs[id][0].call(m.exports, function (s) { return "
                "load(defs[id][1][s]); }, m, m.exports);\n"
                "  return m.exports;\n}\n")
        for i, path, src, deps in sorted(defs):
            f.write("// %s\ndefs[%d] = [function (require, module, "
                    "exports) {\n%s\n}, %s];\n" % (
                        os.path.relpath(path, nm), i, src,
                        json.dumps(deps)))
        f.write("window.JsSIP = load(0);\n})();\n")
    return len(defs)


# ---------------------------------------------------------------------
# The page's web server
# ---------------------------------------------------------------------

class Web:
    def __init__(self, root):
        self.result = None
        self.got = threading.Event()
        web = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *a, **kw):
                super().__init__(*a, directory=root, **kw)

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                data = self.rfile.read(n)
                try:
                    web.result = json.loads(data)
                except ValueError:
                    web.result = {"unparsable": data.decode("latin-1")}
                self.send_response(204)
                self.end_headers()
                web.got.set()

            def log_message(self, *a):
                pass

        self.httpd = http.server.ThreadingHTTPServer((LOCAL, 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever,
                                       daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def setup(h, workdir):
    t0 = time.monotonic()
    try:
        p = subprocess.run(["sh", os.path.join(HERE, "setup.sh"), workdir],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=SETUP_BOUND, text=True)
    except subprocess.TimeoutExpired:
        return None, "setup.sh took over %d s" % SETUP_BOUND
    dt = time.monotonic() - t0
    for l in p.stderr.splitlines():
        h.note(l.lstrip("# "))
    h.note("setup.sh: %.1f s" % dt)
    if p.returncode != 0:
        return None, "setup.sh failed (exit %d): %s" % (
            p.returncode, p.stdout + p.stderr)
    got = dict(l.split(" ", 1) for l in p.stdout.splitlines() if " " in l)
    if "skip" in got:
        return None, got["skip"]
    return got, None


def body(h, args):
    got, skip = setup(h, os.path.abspath(args.workdir))
    if skip:
        # TAP: the whole file skipped, with the reason
        print("1..0 # SKIP %s" % skip.replace("\n", " "))
        sys.stdout.flush()
        shutil.rmtree(h.tmp, ignore_errors=True)
        os._exit(0)

    site = os.path.join(h.tmp, "site")
    os.makedirs(site)
    shutil.copyfile(os.path.join(HERE, "page.html"),
                    os.path.join(site, "index.html"))
    n = bundle(got["node_modules"], os.path.join(site, "jssip.js"))
    h.ok(n > 10, "jssip.js bundled from npm (%d CommonJS modules)" % n)

    script, db = reglib.bundled_copy(h)
    reglib.add_users(h, db, [("alice", "in-chromium"), ("bob", "on-tls")])
    cert, both = wslib.make_cert(h, h_)
    srv, ws, wss = wslib.start_server(h, h_, script, wss=True,
                                      args=["--tls-cert", both])
    web = Web(site)
    try:
        # wss: the throwaway certificate is not one Chromium trusts
        page(h, got, web, srv, "ws", "ws://%s:%d" % (LOCAL, ws), "alice",
             "in-chromium")
        page(h, got, web, srv, "wss", "wss://%s:%d" % (LOCAL, wss), "bob",
             "on-tls", ["--ignore-certificate-errors"])
    finally:
        web.close()
    h.ok(len(srv.find(r"message relayed")) == 2,
         "the script logged both relays")
    h.stop_server(srv)


def page(h, got, web, srv, label, ws_url, user, password, flags=()):
    """One load of the page in a fresh headless Chromium: its result
    checked"""
    aor = "sip:%s@%s" % (user, LOCAL)
    url = "http://%s:%d/index.html?ws=%s&uri=%s&password=%s" % (
        LOCAL, web.port, ws_url, aor, password)
    profile = os.path.join(h.tmp, "chromium-" + label)
    cmd = [got["chromium"], "--headless", "--no-sandbox", "--disable-gpu",
           "--disable-dev-shm-usage", "--no-first-run",
           "--user-data-dir=" + profile] + list(flags) + [url]
    h.note("chromium: %s" % " ".join(cmd))
    web.result = None
    web.got.clear()
    logf = os.path.join(h.tmp, "chromium-%s.log" % label)
    t0 = time.monotonic()
    with open(logf, "wb") as log:
        br = h.spawn(cmd, stdout=log, stderr=log)
    try:
        h.ok(web.got.wait(PAGE_BOUND),
             "%s: the page posted its result (%.1f s)" % (
                 label, time.monotonic() - t0),
             diag=open(logf, errors="replace").read()[-2000:])
    finally:
        br.kill()
        br.wait(5)

    r = web.result or {}
    h.note("result: %s" % json.dumps(r))
    h.ok(r.get("registered") == 200,
         "%s: JsSIP registered (digest): 200" % label,
         diag=r.get("registration_failed"))
    h.ok(r.get("received") == "ping from the browser" and
         ".invalid" in (r.get("received_ruri") or ""),
         "%s: the script relayed the page's MESSAGE back over the "
         "WebSocket (to its .invalid Contact)" % label)
    h.ok(r.get("relay") == 200,
         "%s: the page's MESSAGE got the 200 its own answer gave" % label,
         diag=r.get("relay_failed"))
    # (JsSIP writes transport=ws in its Contact over wss: too)
    h.ok(re.search(r"\.invalid;transport=ws;expires=\d+",
                   r.get("where") or ""),
         "%s: the script answered \"where\": the browser's binding" % label,
         diag=r.get("where_failed"))


def extra(ap):
    ap.add_argument("--workdir", required=True,
                    help="where setup.sh keeps JsSIP (under the build dir)")


if __name__ == "__main__":
    h_.test_main("JsSIP in headless Chromium over ws: and wss:", body,
                 deadline=115,
                 extra_args=extra)
