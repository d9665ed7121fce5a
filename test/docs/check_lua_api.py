#!/usr/bin/env python3
"""Every function the bindings export to Lua is documented.

Reads the luaL_Reg tables of bindings/*.c (the exported API is data, as
in Kamailio's KEMI) and the request fields of l_req_index, and checks
docs/lua-api.md has a `### ` heading naming each function and a table
row naming each field. Prints TAP.
"""
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))

# luaL_Reg array name -> how Lua code spells its members
PREFIX = {
    "sip_funcs": "sip.",
    "register_funcs": "sip.",
    "log_funcs": "sip.log.",
    "req_methods": "req:",
    "registrar_funcs": "sip.registrar.",
    "location_funcs": "sip.location.",
    "auth_funcs": "sip.auth.",
    "call_methods": "call:",
    "events_funcs": "sip.",
    "sub_methods": "sub:",
    "refer_methods": "refer:",
    "call_refer_methods": "call:",
    "media_methods": "call:",
    "metrics_funcs": "sip.metrics.",
    "counter_methods": "counter:",
    "gauge_methods": "gauge:",
    "proxy_funcs": "sip.proxy.",
    "req_proxy_methods": "req:",
}


def exported():
    names = []
    bdir = os.path.join(ROOT, "bindings")
    for fn in sorted(os.listdir(bdir)):
        if not fn.endswith(".c"):
            continue
        src = open(os.path.join(bdir, fn), encoding="utf-8").read()
        for m in re.finditer(r"luaL_Reg\s+(\w+)\[\]\s*=\s*\{(.*?)\};",
                             src, re.S):
            arr, body = m.group(1), m.group(2)
            prefix = PREFIX.get(arr)
            if prefix is None:
                names.append(("unknown luaL_Reg table %s in %s" %
                              (arr, fn), None))
                continue
            for e in re.finditer(r'\{\s*"(\w+)"\s*,', body):
                if not e.group(1).startswith("__"):
                    names.append((prefix + e.group(1), "func"))
        m = re.search(r"static int l_req_index\(.*?\n\}", src, re.S)
        if m:
            for f in re.findall(r'strcmp\(k, "(\w+)"\)', m.group(0)):
                names.append((f, "field"))
    return names


def main():
    doc = open(os.path.join(ROOT, "docs", "lua-api.md"),
               encoding="utf-8").read()
    headings = [l for l in doc.splitlines() if l.startswith("### ")]
    rows = [l for l in doc.splitlines() if l.startswith("|")]
    names = exported()
    print("1..%d" % len(names))
    bad = 0
    for i, (name, kind) in enumerate(names, 1):
        if kind == "func":
            pat = re.compile(re.escape(name) + r"\b")
            ok = any(pat.search(h) for h in headings)
        elif kind == "field":
            ok = any("`%s`" % name in r for r in rows)
        else:
            ok = False
        if not ok:
            bad += 1
        print("%s %d - %s %s documented in docs/lua-api.md" %
              ("ok" if ok else "not ok", i, kind or "", name))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
