#!/usr/bin/env python3
"""REGISTER processing of RFC 3261 §10.3 on the wire, without auth.

One store per run (--store):
  memory  test/registrar/reg-memory.lua (store = "memory", auth off,
          min_expires 60, max_expires 7200)
  sqlite  a copy of scripts/registrar.lua with its database in the temp
          dir and AUTH = false (min 60, max 86400); every state the wire
          shows is also checked in the database file with the sqlite3
          CLI.

Requests are raw (reglib.RegClient) unless said: each check uses its own
AOR so that they stay independent.
  register    one Contact, Expires: 600 -> 200 with exactly that Contact,
              expires=600, and a Date header (§10.3 step 8)
  refresh     same Call-ID, CSeq+1, Expires: 900 -> 200, still one
              binding, now expires=900
  unregister  Expires: 0 -> 200 without the Contact; lookup empty
  several     two Contact headers, and two contacts in one header -> the
              200 lists every one
  expires     the contact's expires parameter wins over the Expires
              header; neither -> 3600; above max_expires -> clamped
  q           three bindings with q 0.1, 1 and 0.7 -> the lookup (the
              MESSAGE `where <aor>` of the script) gives them best q
              first, with their q
  wildcard    sipp uac-register-wildcard.xml: two Contacts -> 200 listing
              both, `Contact: *` with Expires: 600 -> 400, `*` with
              Expires: 0 -> 200 listing none; raw: `*` beside another
              Contact -> 400, `*` without Expires -> 400
  423         sipp uac-register-423.xml: Expires: 10 -> 423 with
              Min-Expires: 60, retried with 60 -> 200; raw: an expires
              parameter of 10 under `Expires: 600` -> 423 too; Expires: 0
              is never 423
  malformed   broken Contacts and Expires -> 400 whose reason names the
              field; none of them changes the bindings
  ordering    same Call-ID with a lower CSeq -> 500 "Out of Order CSeq",
              binding unchanged; a new Call-ID with a lower CSeq -> 200
"""
import email.utils
import os
import re
import sys
import time

sys.dont_write_bytecode = True   # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reglib  # noqa: E402
from reglib import harness  # noqa: E402

D = reglib.desc_resp


def args(ap):
    ap.add_argument("--store", choices=["memory", "sqlite"], required=True)


class Ctx:
    def __init__(self, h, srv, store, db, max_expires):
        self.h = h
        self.srv = srv
        self.store = store
        self.db = db
        self.max = max_expires
        self.clients = []

    def client(self, user, **kw):
        c = reglib.RegClient(self.srv, user=user, **kw)
        self.clients.append(c)
        return c

    # -- checks ---------------------------------------------------------

    def code(self, r, code, desc, reason=None):
        ok = r is not None and r.code == code and \
            (reason is None or re.search(reason, r.reason))
        self.h.ok(ok, "%s -> %d%s" % (desc, code, (" (reason matches /%s/)"
                                                   % reason) if reason
                                      else ""),
                  diag="got: %s" % D(r))
        return ok

    def listed(self, r, want, desc):
        """The 200 lists exactly `want` ({uri: expires}) as Contacts,
        each expires equal to the one asked, or up to 2 s less for the
        time spent since (a slow commit under load)."""
        got = {u: p.get("expires") for u, p in reglib.contacts_of(r)}
        ok = r is not None and r.code == 200 and set(got) == set(want)
        for u, e in want.items() if ok else ():
            v = got[u]
            ok = ok and v is not None and v.isdigit() and \
                e - 2 <= int(v) <= e
        self.h.ok(ok, "%s: the 200 lists %s" % (
            desc, ", ".join("<%s>;expires=%s" % kv for kv in
                            sorted(want.items())) or "no Contact"),
            diag="got: %s" % D(r))

    def lookup(self, aor, want, desc, exact_expires=True):
        """The script's lookup of aor is [(uri, expires, q)] == want
        (expires may be 1 s lower than asked unless exact)."""
        got = reglib.where(self.srv, aor)

        def same(g, w):
            return g[0] == w[0] and abs(g[2] - w[2]) < 1e-9 and \
                (g[1] == w[1] if exact_expires else w[1] - 2 <= g[1] <= w[1])
        # best q first; the order among equal q is not specified
        ok = got is not None and len(got) == len(want) and \
            all(got[i][2] >= got[i + 1][2] for i in range(len(got) - 1))
        left = list(want)
        for g in (got or []) if ok else []:
            m = [w for w in left if same(g, w)]
            if not m:
                ok = False
                break
            left.remove(m[0])
        self.h.ok(ok, "%s: lookup of %s gives %s, best q first" % (
            desc, aor, want or "no binding"), diag="got %r" % (got,))

    def db_rows(self, aor, want, desc):
        """sqlite only: the rows of aor in the database are the contacts
        of want (a set of URIs)."""
        if not self.db:
            return
        rows = reglib.sql(self.h, self.db,
                          "select contact from bindings where aor = '%s' "
                          "and expires_at > strftime('%%s','now')*1000"
                          % aor)
        got = None if rows is None else {r[0] for r in rows}
        self.h.ok(got == set(want), "%s: the database holds %s for %s" % (
            desc, sorted(want) or "no row", aor), diag="rows: %r" % (rows,))


# ---------------------------------------------------------------------

def register_refresh_unregister(x):
    h = x.h
    c = x.client("alice")
    me = c.contact()
    r = c.register(["<%s>" % me], 600)
    x.code(r, 200, "REGISTER alice, one Contact, Expires: 600")
    x.listed(r, {me: 600}, "register")
    date = r.header("Date") if r else None
    try:
        dt = email.utils.parsedate_to_datetime(date)
        skew = abs(dt.timestamp() - time.time())
    except (TypeError, ValueError):
        skew = None
    h.ok(date and date.endswith(" GMT") and skew is not None and skew < 120,
         "register: the 200 has a Date header (RFC 1123, GMT, now)",
         diag="Date: %r" % date)
    x.lookup(c.aor, [(me, 600, 1.0)], "register", exact_expires=False)
    x.db_rows(c.aor, {me}, "register")

    r = c.register(["<%s>" % me], 900)
    x.code(r, 200, "refresh: same Call-ID, CSeq %d, Expires: 900" % c.cseq)
    x.listed(r, {me: 900}, "refresh (still one binding)")
    x.lookup(c.aor, [(me, 900, 1.0)], "refresh", exact_expires=False)
    if x.db:
        rows = reglib.sql(h, x.db, "select count(*), max(cseq), "
                          "max(callid) from bindings where aor = '%s'" %
                          c.aor)
        h.ok(rows == [["1", str(c.cseq), c.callid]],
             "refresh: one database row, with the refresh's CSeq %d" %
             c.cseq, diag="rows: %r" % (rows,))

    r = c.register(["<%s>" % me], 0)
    x.code(r, 200, "unregister: Expires: 0")
    x.listed(r, {}, "unregister")
    x.lookup(c.aor, [], "unregister")
    x.db_rows(c.aor, set(), "unregister")


def several(x):
    c = x.client("bob")
    a, b = c.contact(1), c.contact(2)
    r = c.register(["<%s>" % a, "<%s>" % b], 600)
    x.code(r, 200, "REGISTER bob with two Contact headers")
    x.listed(r, {a: 600, b: 600}, "two Contact headers")
    x.db_rows(c.aor, {a, b}, "two Contact headers")

    c = x.client("carol")
    a, b = c.contact(3), c.contact(4)
    r = c.register(["<%s>, <%s>;expires=300" % (a, b)], 600)
    x.code(r, 200, "REGISTER carol with two contacts in one Contact header")
    x.listed(r, {a: 600, b: 300}, "two contacts, one header")
    x.lookup(c.aor, [(a, 600, 1.0), (b, 300, 1.0)], "one header",
             exact_expires=False)


def expires(x):
    c = x.client("dave")
    a, b, d, e = c.contact(5), c.contact(6), c.contact(7), c.contact(8)
    r = c.register(["<%s>;expires=120" % a, "<%s>" % b], 300)
    x.code(r, 200, "REGISTER dave: <a>;expires=120 and <b>, Expires: 300")
    x.listed(r, {a: 120, b: 300}, "expires parameter wins over the "
             "header, the header applies to the other Contact")
    r = c.register(["<%s>" % d])
    x.code(r, 200, "REGISTER dave: <d> without any expiry")
    x.listed(r, {a: 120, b: 300, d: 3600}, "no expires at all -> 3600 "
             "(default_expires), the others kept")
    r = c.register(["<%s>;expires=100000" % e])
    x.code(r, 200, "REGISTER dave: <e>;expires=100000")
    x.listed(r, {a: 120, b: 300, d: 3600, e: x.max},
             "an expiry above max_expires is clamped to %d" % x.max)
    r = c.register(["<%s>;expires=0" % a, "<%s>" % b], 600)
    x.code(r, 200, "REGISTER dave: <a>;expires=0 and <b> under "
           "Expires: 600")
    x.listed(r, {b: 600, d: 3600, e: x.max}, "expires=0 parameter removes "
             "<a> only")
    x.db_rows(c.aor, {b, d, e}, "expires")


def qvalues(x):
    c = x.client("erin")
    lo, best, mid = c.contact(9), c.contact(10), c.contact(11)
    for uri, q in ((lo, ";q=0.1"), (best, ""), (mid, ";q=0.7")):
        r = c.register(["<%s>%s" % (uri, q)], 600)
        x.code(r, 200, "REGISTER erin <%s>%s" % (uri, q))
    qs = {u: p.get("q") for u, p in reglib.contacts_of(r)}
    x.h.ok(qs == {lo: "0.1", best: None, mid: "0.7"},
           "the 200 gives each binding its q (q=1 implied)", diag=D(r))
    x.lookup(c.aor, [(best, 600, 1.0), (mid, 600, 0.7), (lo, 600, 0.1)],
             "q-values", exact_expires=False)
    # a changed q reorders
    r = c.register(["<%s>;q=0.95" % lo], 600)
    x.code(r, 200, "REGISTER erin <lo>;q=0.95")
    x.lookup(c.aor, [(best, 600, 1.0), (lo, 600, 0.95), (mid, 600, 0.7)],
             "q changed by a refresh", exact_expires=False)


def wildcard(x):
    h = x.h
    sp = h.sipp(reglib.scenario("uac-register-wildcard.xml"), x.srv,
                args=["-s", "frank", "-key", "domain", reglib.LOCAL])
    h.sipp_ok(sp, "sipp uac-register-wildcard.xml: 200, 400, 200")
    got = sp.messages("received")
    me = "sip:frank@%s:%d" % (reglib.LOCAL, sp.port)
    me2 = "sip:frank-2@%s:%d" % (reglib.LOCAL, sp.port)
    if len(got) == 3:
        x.listed(got[0], {me: 600, me2: 600}, "wildcard: REGISTER with two "
                 "Contacts")
        h.ok(got[1].code == 400 and "Contact" in got[1].reason and
             "*" in got[1].reason,
             "wildcard: `Contact: *` with Expires: 600 -> 400 naming "
             "Contact and *", diag=D(got[1]))
        x.listed(got[2], {}, "wildcard: `Contact: *` with Expires: 0")
    else:
        h.ok(False, "sipp received the 3 answers", diag=repr(got))
    x.lookup("sip:frank@%s" % reglib.LOCAL, [], "after `Contact: *`")
    x.db_rows("sip:frank@%s" % reglib.LOCAL, set(), "after `Contact: *`")

    c = x.client("gina")
    mine = c.contact(12)
    x.code(c.register(["<%s>" % mine], 600), 200, "REGISTER gina")
    x.code(c.register(["*", "<%s>" % c.contact(13)], 0), 400,
           "`Contact: *` beside another Contact, Expires: 0",
           reason=r"Contact")
    x.code(c.register(["*"]), 400, "`Contact: *` without Expires",
           reason=r"Contact")
    x.lookup(c.aor, [(mine, 600, 1.0)], "refused wildcards changed nothing",
             exact_expires=False)


def too_brief(x):
    h = x.h
    sp = h.sipp(reglib.scenario("uac-register-423.xml"), x.srv,
                args=["-s", "hank", "-key", "domain", reglib.LOCAL])
    h.sipp_ok(sp, "sipp uac-register-423.xml: 423 (Min-Expires: 60), then "
              "200 with Expires: 60")
    got = sp.messages("received")
    if len(got) == 2:
        h.ok(got[0].code == 423 and got[0].header("Min-Expires") == "60",
             "Expires: 10 -> 423 with Min-Expires: 60", diag=D(got[0]))
        me = "sip:hank@%s:%d" % (reglib.LOCAL, sp.port)
        x.listed(got[1], {me: 60}, "retry with the Min-Expires value")
    else:
        h.ok(False, "sipp received the 2 answers", diag=repr(got))

    c = x.client("ivan")
    r = c.register(["<%s>;expires=10" % c.contact()], 600)
    x.code(r, 423, "<c>;expires=10 under Expires: 600 (the parameter "
           "wins)")
    h.ok(r is not None and r.header("Min-Expires") == "60",
         "... with Min-Expires: 60", diag=D(r))
    x.lookup(c.aor, [], "423 stored nothing")
    r = c.register(["<%s>" % c.contact()], 0)
    x.code(r, 200, "Expires: 0 (removal) is never too brief")


BAD_CONTACTS = [
    ("<sip:kim@127.0.0.1", "unclosed <"),
    ("just some words", "not an address"),
    ("<>", "empty URI"),
    ("<sip:kim@127.0.0.1>;expires=soon", "expires not a number"),
    ("<sip:kim@127.0.0.1>;expires=-5", "negative expires"),
    ("<sip:kim@127.0.0.1>;q=1.5", "q above 1"),
    ("<sip:kim@127.0.0.1>;q=abc", "q not a number"),
    ("<sip:kim@127.0.0.1>;reg-id=0;+sip.instance=\"<urn:uuid:1>\"",
     "reg-id 0"),
]


def malformed(x):
    c = x.client("kim")
    mine = c.contact()
    x.code(c.register(["<%s>" % mine], 600), 200, "REGISTER kim")
    for value, what in BAD_CONTACTS:
        x.code(c.register([value], 600), 400,
               "Contact %s (%s)" % (value, what), reason=r"Contact")
    for value in ("soon", "-1", "1.5"):
        x.code(c.register(["<%s>" % mine], value), 400,
               "Expires: %s" % value, reason=r"Expires")
    x.lookup(c.aor, [(mine, 600, 1.0)], "after the 400s, the binding is "
             "unchanged", exact_expires=False)
    x.db_rows(c.aor, {mine}, "after the 400s")


def ordering(x):
    c = x.client("leo")
    mine = c.contact()
    x.code(c.register(["<%s>" % mine], 600, cseq=10), 200,
           "REGISTER leo, CSeq 10, Expires: 600")
    x.code(c.register(["<%s>" % mine], 0, cseq=5), 500,
           "same Call-ID, CSeq 5 (lower), Expires: 0",
           reason=r"^Out of Order CSeq$")
    # same CSeq number from another From tag: not a retransmission, not
    # a merged request, and not higher than the stored CSeq either
    c.tag += "-other"
    x.code(c.register(["<%s>" % mine], 0, cseq=10), 500,
           "same Call-ID, same CSeq 10 (another From tag)",
           reason=r"^Out of Order CSeq$")
    x.lookup(c.aor, [(mine, 600, 1.0)], "out-of-order REGISTERs changed "
             "nothing", exact_expires=False)
    x.code(c.register(["<%s>" % mine], 300, cseq=1,
                      callid="another-" + c.callid), 200,
           "a new Call-ID with CSeq 1 (the UA restarted), Expires: 300")
    x.lookup(c.aor, [(mine, 300, 1.0)], "the new Call-ID's REGISTER "
             "applied", exact_expires=False)


def body(h, a):
    if a.store == "memory":
        script, db = reglib.test_script(h, "reg-memory.lua")
        db, mx = None, 7200
    else:
        script, db = reglib.bundled_copy(h, auth=False)
        mx = 86400
    srv = h.server(script)
    x = Ctx(h, srv, a.store, db, mx)
    for step in (register_refresh_unregister, several, expires, qvalues,
                 wildcard, too_brief, malformed, ordering):
        step(x)
    for c in x.clients:
        c.close()
    h.stop_server(srv, must=[{"mod": "registrar", "ev": "open"}],
                  must_not=[r"\bev=hook_error\b"])


if __name__ == "__main__":
    harness.test_main("registrar: RFC 3261 §10.3 on the wire", body,
                      extra_args=args)
