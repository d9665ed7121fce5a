#!/usr/bin/env python3
"""Password guessing against the registrar, tried as an attacker would
(issue 8): Debian's sipvicious (svcrack, svwar) and hand-made REGISTERs
against a copy of scripts/registrar.lua or test/registrar/reg-guard.lua
(guard settings filled in). 127.0.0.2, another loopback address, stands
for a second host beside the attacking 127.0.0.1. One group per run
(--case):

  crack    svcrack with a 200-word dictionary holding alice's password
           near its end never finds it: after 10 failures 127.0.0.1 is
           banned (logged once, ev=ban src=127.0.0.1) and its requests
           are dropped, so svcrack gives up; at most 5 ev=auth_failed
           lines and a suppressed=N summary; alice still registers from
           127.0.0.2 meanwhile.
  svwar    svwar by REGISTER (with and without --force), INVITE and
           OPTIONS finds no user among alice, bob and four that do not
           exist; unauthenticated probes are no failures (no ban).
  oracle   a REGISTER with a made-up nonce (well-formed but not ours,
           and malformed) gets the same plain 401 (no stale) for the
           right and the wrong password, the same as with no
           credentials at all; 30 such probes ban nobody and log no
           auth_failed.
  expire   reg-guard.lua, ban after 3 failures for 2 s: the 4th request
           is dropped, sip.auth.banned() lists 127.0.0.1, the ban ends by
           itself (ev=unban) and alice gets in from the same address with
           the right password; a second ban lasts twice as long and
           sip.auth.unban() ends it at once.
  slowuser reg-guard.lua, no bans, a user slowed after 3 failures (up to
           2 s): alice's right password from 127.0.0.1 right after is
           refused unchecked with the very same 403 as a wrong one, while
           127.0.0.2 (where alice authenticated before) gets in at once;
           after the delay 127.0.0.1 gets in; bob is not slowed.
  flood    20,000 malformed REGISTERs (no Call-ID, 400) from 127.0.0.1:
           at most a few ev=bad_request lines, the rest told in
           suppressed=N summaries that add up; meanwhile OPTIONS from
           127.0.0.2 every 20 ms are all answered (median under 50 ms).
  restart  the nonce secret lives in the database: after a restart, a
           right answer to a nonce of the previous process gets 401
           stale=true (not a plain 401) and the client recovers with
           the new nonce without a prompt; a wrong one gets 403.
"""
import os
import re
import statistics
import sys
import time

sys.dont_write_bytecode = True   # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reglib  # noqa: E402
from reglib import harness  # noqa: E402

D = reglib.desc_resp
LOCAL = reglib.LOCAL
OTHER = "127.0.0.2"    # a second host on the loopback network


def args(ap):
    ap.add_argument("--case", required=True, choices=[
        "crack", "svwar", "oracle", "expire", "slowuser", "flood",
        "restart"])
    ap.add_argument("--svcrack", default="svcrack")
    ap.add_argument("--svwar", default="svwar")


def setup_bundled(h, users=(("alice", "secret"), ("bob", "hunter2"))):
    script, db = reglib.bundled_copy(h)
    if not reglib.add_users(h, db, users):
        raise harness.Abort("cannot add the users")
    return script, db


def setup_guard(h, src, ban, user, delay):
    script, db = reglib.test_script(h, "reg-guard.lua", subst={
        "SRC": src, "BAN": ban, "USER": user, "DELAY": delay})
    if not reglib.add_users(h, db, (("alice", "secret"),
                                    ("bob", "hunter2"))):
        raise harness.Abort("cannot add the users")
    return script, db


def ev_lines(srv, ev, **fields):
    want = {"ev": ev}
    want.update(fields)
    return srv.find(want)


def summaries(lines):
    """(lines without suppressed=, sum of suppressed= of the others)"""
    plain, held = [], 0
    for l in lines:
        m = re.search(r"\bsuppressed=(\d+)", l)
        if m:
            held += int(m.group(1))
        else:
            plain.append(l)
    return plain, held


def message(srv, body, bind=OTHER):
    cl = harness.UdpClient(srv.port, bind=bind)
    try:
        return cl.request("MESSAGE", uri="sip:%s:%d" % (LOCAL, srv.port),
                          ctype="text/plain", body=body)
    finally:
        cl.close()


def answered(srv, bind=LOCAL, timeout=1.0):
    """Does the server answer an OPTIONS from bind?"""
    cl = harness.UdpClient(srv.port, bind=bind)
    try:
        return cl.request("OPTIONS", timeout=timeout) is not None
    finally:
        cl.close()


def wrong_then(h, rc, n, desc):
    codes = []
    for _ in range(n):
        r = rc.register([rc.contact()], auth="not-the-password")
        codes.append(r.code if r else None)
    h.ok(codes == [403] * n, "%s: %d wrong passwords -> 403 each" %
         (desc, n), diag="codes %r" % codes)


# ---------------------------------------------------------------------

def crack(h, a):
    script, _ = setup_bundled(h)
    srv = h.server(script)

    words = ["guess%03d" % i for i in range(200)]
    words[195] = "secret"
    dic = os.path.join(h.tmp, "dictionary.txt")
    with open(dic, "w") as f:
        f.write("\n".join(words) + "\n")

    t0 = time.monotonic()
    rc, out, err = h.run([a.svcrack, "-u", "alice", "-d", dic,
                          "-p", str(srv.port),
                          "-P", str(harness.free_port()), "-b", LOCAL,
                          LOCAL], timeout=50, cwd=h.tmp)
    text = out + err
    h.note("svcrack (%.1f s, exit %s): %s" % (
        time.monotonic() - t0, rc, " | ".join(text.strip().splitlines()
                                              [-3:])))
    h.ok("secret" not in text and re.search(r"found nothing", text),
         "svcrack never finds alice's password (it is word 196 of 200)",
         diag=text[-2000:])

    bans = ev_lines(srv, "ban", src=LOCAL)
    h.ok(len(bans) == 1 and "failures=10" in bans[0],
         "127.0.0.1 banned once, after 10 failures (lvl=warn ev=ban)",
         diag="\n".join(bans) or "no ev=ban line")
    h.ok(not answered(srv, LOCAL), "a banned address gets no answer "
         "(OPTIONS from 127.0.0.1 dropped)")

    rc2 = reglib.RegClient(srv, "alice", password="secret", bind=OTHER)
    r = rc2.register([rc2.contact()])
    h.ok(r is not None and r.code == 200, "alice registers from "
         "127.0.0.2 meanwhile: her account is still usable", diag=D(r))
    rc2.close()
    b = reglib.where(srv, "sip:alice@%s" % LOCAL,
                     cl=harness.UdpClient(srv.port, bind=OTHER))
    h.ok(b and len(b) == 1, "lookup from 127.0.0.2 shows her binding",
         diag="got %r" % (b,))

    h.stop_server(srv, must=[{"lvl": "warn", "mod": "auth", "ev": "ban",
                              "src": LOCAL}])
    plain, held = summaries(ev_lines(srv, "auth_failed"))
    h.ok(len(plain) <= 5 and held >= 1 and len(plain) + held <= 10,
         "the failures logged at most 5 times plus a suppressed=N "
         "summary (%d + %d)" % (len(plain), held),
         diag="\n".join(plain))


def svwar(h, a):
    script, _ = setup_bundled(h)
    srv = h.server(script)

    names = os.path.join(h.tmp, "names.txt")
    with open(names, "w") as f:
        f.write("alice\nbob\ncarol\n100\n200\nadmin\n")

    for method, extra in (("REGISTER", []), ("REGISTER", ["--force"]),
                          ("INVITE", []), ("OPTIONS", [])):
        rc, out, err = h.run([a.svwar, "-m", method, "-d", names,
                              "-p", str(srv.port),
                              "-P", str(harness.free_port()), "-b", LOCAL]
                             + extra + [LOCAL], timeout=40, cwd=h.tmp)
        text = out + err
        rows = [l for l in text.splitlines() if l.startswith("|")]
        desc = "svwar -m %s%s" % (method, " --force" if extra else "")
        h.note("%s (exit %s): %s" % (desc, rc, " | ".join(
            text.strip().splitlines()[-2:])))
        h.ok(rc == 0 and not rows and re.search(r"found nothing", text),
             "%s finds no user" % desc, diag=text[-2000:])

    h.stop_server(srv, must_not=[r"\bev=ban\b", r"\bev=auth_failed\b"])


def oracle(h, a):
    script, _ = setup_bundled(h)
    srv = h.server(script)
    rc = reglib.RegClient(srv, "alice")
    ruri = rc.ruri

    def norm(r):
        chs = [re.sub(r'nonce="[^"]*"', 'nonce="..."', v)
               for n, v in (r.headers if r else [])
               if n.lower() == "www-authenticate"]
        return (r.start if r else None,
                [n for n, _ in r.headers] if r else None, chs)

    base = rc.cl.recv(rc.send_register([rc.contact()]))
    h.ok(base is not None and base.code == 401 and
         "stale" not in (base.header("WWW-Authenticate") or ""),
         "REGISTER without credentials -> 401", diag=D(base))

    made_up = "%064x" % 0x5eed1234abcd5678 ** 3
    for nonce, what in ((made_up, "a well-formed made-up nonce"),
                        ("deadbeef", "a malformed nonce")):
        got = {}
        for pw in ("secret", "wrong"):
            auth = reglib.digest_authorization("alice", pw, nonce, ruri)
            got[pw] = rc.cl.recv(rc.send_register([rc.contact()],
                                                  authorization=auth))
        h.ok(got["secret"] is not None and got["secret"].code == 401 and
             norm(got["secret"]) == norm(got["wrong"]) == norm(base),
             "%s: the same plain 401 (no stale) for the right and the "
             "wrong password, as without credentials" % what,
             diag="right: %s\nwrong: %s" % (D(got["secret"]),
                                           D(got["wrong"])))

    codes = set()
    for i in range(30):
        nonce = "%064x" % (i * 7919 + 17)
        auth = reglib.digest_authorization(
            "alice", "secret" if i % 2 else "guess%d" % i, nonce, ruri)
        r = rc.cl.recv(rc.send_register([rc.contact()],
                                        authorization=auth))
        codes.add(r.code if r else None)
    h.ok(codes == {401}, "30 made-up-nonce probes: each a plain 401",
         diag="codes %r" % codes)
    h.ok(answered(srv, LOCAL), "the prober is not banned: probes that "
         "check no password are no failures")
    r = rc.register([rc.contact()], auth="secret")
    h.ok(r is not None and r.code == 200, "alice with a real challenge "
         "-> 200", diag=D(r))
    rc.close()
    h.stop_server(srv, must_not=[r"\bev=auth_failed\b", r"\bev=ban\b",
                                 r"\blvl=(info|warn)\b.*\bev=auth_stale"])


def banned_list(srv):
    r = message(srv, "banned")
    if r is None or r.code != 200:
        return None
    return [l.split() for l in r.body.decode().splitlines() if l.strip()]


def expire(h, a):
    script, _ = setup_guard(h, src=3, ban=2, user=0, delay=1)
    srv = h.server(script)
    rc = reglib.RegClient(srv, "alice")

    wrong_then(h, rc, 3, "127.0.0.1")
    h.ok(not answered(srv, LOCAL), "4th request from 127.0.0.1: dropped "
         "(banned)")
    bl = banned_list(srv)
    h.ok(bl and len(bl) == 1 and bl[0][0] == LOCAL and
         1 <= int(bl[0][1]) <= 2 and bl[0][2:] == ["3", "1"],
         "sip.auth.banned() lists 127.0.0.1 (remaining 1..2 s, 3 "
         "failures, 1st ban)", diag="got %r" % (bl,))

    line = srv.wait_for({"ev": "unban", "src": LOCAL}, 6.0)
    h.ok(line and "reason=expired" in line, "the ban ends by itself "
         "(lvl=warn ev=unban reason=expired)", diag=line)
    r = rc.register([rc.contact()], auth="secret")
    h.ok(r is not None and r.code == 200, "then alice gets in from "
         "127.0.0.1 with the right password", diag=D(r))
    h.ok(banned_list(srv) == [], "sip.auth.banned() is empty")

    wrong_then(h, rc, 3, "127.0.0.1 again")
    bl = banned_list(srv)
    h.ok(bl and len(bl) == 1 and int(bl[0][1]) >= 3 and bl[0][3] == "2",
         "a second ban lasts twice as long (4 s)", diag="got %r" % (bl,))
    r = message(srv, "unban %s" % LOCAL)
    h.ok(r is not None and r.code == 200 and answered(srv, LOCAL),
         "sip.auth.unban('127.0.0.1') lifts it at once", diag=D(r))
    r = message(srv, "unban %s" % LOCAL)
    h.ok(r is not None and r.code == 404, "unban of an address not "
         "banned -> nil, 'not banned'", diag=D(r))
    rc.close()

    h.stop_server(srv)
    h.ok(len(ev_lines(srv, "ban", src=LOCAL)) == 2 and
         len(ev_lines(srv, "unban", src=LOCAL)) == 2,
         "two bans and two unbans logged, one line each")


def slowuser(h, a):
    script, _ = setup_guard(h, src=0, ban=1, user=3, delay=2)
    srv = h.server(script)

    good = reglib.RegClient(srv, "alice", password="secret", bind=OTHER)
    r = good.register([good.contact()])
    h.ok(r is not None and r.code == 200, "alice registers from "
         "127.0.0.2 (her phone)", diag=D(r))

    rc = reglib.RegClient(srv, "alice")
    wrong_then(h, rc, 3, "alice from 127.0.0.1")
    wrong = rc.last[-1]
    h.ok(srv.wait_for({"lvl": "warn", "ev": "user_slowed",
                       "user": "alice"}, 2.0),
         "logged once: lvl=warn ev=user_slowed user=alice")

    r = rc.register([rc.contact()], auth="secret")

    def norm403(x):
        return (x.start, [n for n, _ in x.headers], x.body) if x else None
    h.ok(r is not None and r.code == 403 and norm403(r) == norm403(wrong),
         "right password from 127.0.0.1 while slowed: the same 403 as a "
         "wrong one (not checked)", diag="%s\n%s" % (D(r), D(wrong)))

    r = good.register([good.contact()])
    h.ok(r is not None and r.code == 200, "127.0.0.2, where alice "
         "authenticated before, gets in at once", diag=D(r))
    good.close()

    bob = reglib.RegClient(srv, "bob", password="hunter2")
    r = bob.register([bob.contact()])
    h.ok(r is not None and r.code == 200, "bob from 127.0.0.1 is not "
         "slowed", diag=D(r))
    bob.close()

    deadline = time.monotonic() + 5
    r = None
    while time.monotonic() < deadline:
        time.sleep(0.5)
        r = rc.register([rc.contact()], auth="secret")
        if r is not None and r.code == 200:
            break
    h.ok(r is not None and r.code == 200, "after the delay (1 s) alice "
         "gets in from 127.0.0.1 too", diag=D(r))
    rc.close()
    h.stop_server(srv, must_not=[r"\bev=ban\b"])
    h.ok(len(ev_lines(srv, "user_slowed")) == 1, "one ev=user_slowed "
         "line")


def flood(h, a):
    script, _ = setup_bundled(h)
    srv = h.server(script)
    n = 20000

    pr = harness.OptionsProber(srv.port, bind=OTHER).start()
    lat = pr.lat
    time.sleep(0.2)
    cl = harness.UdpClient(srv.port)
    t0 = time.monotonic()
    try:
        for i in range(n):
            data, _ = cl.build("REGISTER", set={"Call-ID": None})
            cl.sock.sendto(data, cl.dst)
            if i % 500 == 499:
                time.sleep(0.01)     # the loopback queue, not the server
    finally:
        sent_s = time.monotonic() - t0
        time.sleep(0.5)
        pr.stop()
        cl.close()

    h.note("sent %d bad REGISTERs in %.2f s; %d OPTIONS probes, median "
           "%.1f ms, max %.1f ms, %d unanswered" % (
               n, sent_s, len(lat), 1000 * statistics.median(lat)
               if lat else -1, 1000 * max(lat) if lat else -1, pr.lost))
    h.ok(lat and pr.lost == 0, "every OPTIONS from 127.0.0.2 answered "
         "during the flood (%d)" % len(lat))
    h.ok(lat and statistics.median(lat) < 0.050, "OPTIONS answered "
         "within 50 ms (median) during the flood")

    h.stop_server(srv)
    plain, held = summaries(ev_lines(srv, "bad_request"))
    h.ok(len(plain) <= 5 * (2 + int(sent_s / 10)),
         "ev=bad_request logged %d times for %d requests (5 per 10 s)" %
         (len(plain), n), diag="\n".join(plain[:10]))
    h.ok(0.99 * n <= len(plain) + held <= n,
         "the suppressed=N summaries add up: %d + %d of %d" %
         (len(plain), held, n))
    h.ok(len(srv.lines()) < 100, "the whole log stays short (%d lines)" %
         len(srv.lines()))


def restart(h, a):
    script, db = setup_bundled(h, (("alice", "secret"),))
    srv = h.server(script)
    rc = reglib.RegClient(srv, "alice", password="secret")
    r = rc.register([rc.contact()])
    h.ok(r is not None and r.code == 200, "alice registers", diag=D(r))
    nonce = reglib.parse_challenge(
        rc.last[0].header("WWW-Authenticate")).get("nonce")
    h.stop_server(srv)

    port = srv.port
    srv = h.server(script, listen=["udp:%s:%d" % (LOCAL, port)])
    srv.port = port
    for pw, code, stale, desc in (
            ("wrong", 403, False, "a wrong answer -> 403 (not stale)"),
            ("secret", 401, True, "a right answer -> 401 stale=true")):
        auth = reglib.digest_authorization("alice", pw, nonce, rc.ruri,
                                           nc=2)
        r = rc.cl.recv(rc.send_register([rc.contact()],
                                        authorization=auth))
        ch = reglib.parse_challenge(r.header("WWW-Authenticate")
                                    if r else None)
        h.ok(r is not None and r.code == code and
             (ch.get("stale", "").lower() == "true") == stale,
             "nonce of the previous process, %s" % desc, diag=D(r))
    auth = reglib.digest_authorization("alice", "secret", ch.get("nonce"),
                                       rc.ruri)
    r = rc.cl.recv(rc.send_register([rc.contact()], authorization=auth))
    h.ok(r is not None and r.code == 200, "the client answers the new "
         "nonce without a prompt -> 200", diag=D(r))
    rc.close()
    rows = reglib.sql(h, db, "select count(*) from secrets")
    h.ok(rows == [["1"]], "one secret in the database's secrets table",
         diag="rows %r" % (rows,))
    h.stop_server(srv)


def body(h, a):
    {"crack": crack, "svwar": svwar, "oracle": oracle, "expire": expire,
     "slowuser": slowuser, "flood": flood, "restart": restart}[a.case](h, a)


if __name__ == "__main__":
    harness.test_main("password guessing against the registrar", body,
                      extra_args=args)
