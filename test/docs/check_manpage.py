#!/usr/bin/env python3
"""test/docs/check_manpage.py  docs/sipstack.1 against the program

The man page is written by hand; this keeps it from drifting:

  - every long option of main.c's getopt table (struct option opts[])
    and every short option of its optstring is named in the man page;
  - every option of `sipstack user` (cli_user.c's strcmp(arg, "--...")
    and its subcommands add/del/list) is named too;
  - every option of `sipstack ctl` (cli_ctl.c's "--..." literals) is
    named, and the SYNOPSIS has `sipstack ctl`;
  - every option the man page documents (the tag line of a .TP in
    OPTIONS, USERS and CONTROL) is one the program accepts;
  - the page renders without a warning (groff -man -ww), when groff is
    installed (else that check is skipped).

Usage: check_manpage.py [SOURCE_ROOT]. Prints TAP.
"""
import os
import re
import shutil
import subprocess
import sys

ROOT = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MAN = os.path.join(ROOT, "docs", "sipstack.1")


def read(rel):
    with open(os.path.join(ROOT, rel), encoding="utf-8") as f:
        return f.read()


def program_options():
    """(long options, short options) of the server, (long options,
    subcommands) of `sipstack user`."""
    main = read("server/main.c")
    m = re.search(r"struct option \w+\[\]\s*=\s*\{(.*?)\};", main, re.S)
    longs = re.findall(r'\{\s*"([a-z0-9-]+)"\s*,', m.group(1)) if m else []
    m = re.search(r'getopt_long\([^,]+,[^,]+,\s*"([^"]*)"', main)
    shorts = re.findall(r"[A-Za-z0-9]", m.group(1)) if m else []
    cli = read("server/cli_user.c")
    ulongs = sorted(set(re.findall(r'"--([a-z0-9-]+)=?"', cli)))
    subs = re.findall(r'strcmp\(cmd, "(\w+)"\)', cli)
    subs = sorted(set(subs))
    ctl = read("server/cli_ctl.c")
    clongs = sorted(set(re.findall(r'"--([a-z0-9-]+)=?"', ctl)) - {"help"})
    return longs, shorts, ulongs, subs, clongs


def plain(roff):
    """The page's text with roff's escapes for '-' and fonts undone."""
    t = roff.replace("\\-", "-")
    t = re.sub(r"\\f[BIRP]|\\f\(\w\w|\\&|\\~|\\e", " ", t)
    return t


def section(roff, name):
    m = re.search(r"^\.SH %s\n(.*?)(?=^\.SH |\Z)" % re.escape(name), roff,
                  re.S | re.M)
    return m.group(1) if m else ""


def tp_tags(text):
    """The tag lines of the .TP paragraphs of text."""
    lines = text.splitlines()
    return [lines[i + 1] for i, l in enumerate(lines[:-1])
            if l.startswith(".TP")]


def main():
    roff = open(MAN, encoding="utf-8").read()
    text = plain(roff)
    longs, shorts, ulongs, subs, clongs = program_options()
    checks = []

    checks.append((len(longs) >= 10 and shorts and ulongs and subs,
                   "main.c's option table and cli_user.c's options found "
                   "(%d long, %d short; user: %d options, %d commands)"
                   % (len(longs), len(shorts), len(ulongs), len(subs)),
                   None))
    for o in longs:
        checks.append((re.search(r"(?<![\w-])--%s(?![\w-])" % re.escape(o),
                                 text),
                       "sipstack.1 names --%s" % o, None))
    for o in shorts:
        checks.append((re.search(r"(?<![\w-])-%s(?![\w-])" % re.escape(o),
                                 text),
                       "sipstack.1 names -%s" % o, None))
    for o in ulongs:
        checks.append((re.search(r"(?<![\w-])--%s(?![\w-])" % re.escape(o),
                                 text),
                       "sipstack.1 names sipstack user --%s" % o, None))
    checks.append((len(clongs) >= 3, "cli_ctl.c's options found (%d)" %
                   len(clongs), None))
    for o in clongs:
        checks.append((re.search(r"(?<![\w-])--%s(?![\w-])" % re.escape(o),
                                 plain(section(roff, "CONTROL"))),
                       "sipstack.1's CONTROL names sipstack ctl --%s" % o,
                       None))
    synopsis = plain(section(roff, "SYNOPSIS"))
    checks.append((re.search(r"sipstack ctl\b", synopsis),
                   "sipstack.1's SYNOPSIS has sipstack ctl", None))
    for s in subs:
        checks.append((re.search(r"sipstack user %s\b" % s, synopsis),
                       "sipstack.1's SYNOPSIS has sipstack user %s" % s,
                       None))

    # the other way: what the page documents exists
    known = set(longs) | set(ulongs) | set(clongs) | {"help"}
    for sec in ("OPTIONS", "USERS", "CONTROL"):
        for tag in tp_tags(section(roff, sec)):
            t = plain(tag)
            for o in re.findall(r"(?<![\w-])--([a-z0-9-]+)", t):
                checks.append((o in known, "documented --%s (%s) is "
                               "accepted by the program" % (o, sec), None))
            for o in re.findall(r"(?<![\w-])-([A-Za-z0-9])(?![\w-])", t):
                checks.append((o in shorts, "documented -%s (%s) is "
                               "accepted by the program" % (o, sec), None))

    groff = shutil.which("groff")
    if groff:
        p = subprocess.run([groff, "-man", "-ww", "-z", "-Tutf8", MAN],
                           capture_output=True, text=True, timeout=30)
        checks.append((p.returncode == 0 and not p.stderr.strip(),
                       "groff -man -ww renders sipstack.1 without a "
                       "warning", p.stderr.strip()))
    else:
        checks.append((True, "# SKIP groff is not installed", None))

    print("1..%d" % len(checks))
    failed = 0
    for n, (ok, desc, diag) in enumerate(checks, 1):
        if desc.startswith("#"):
            print("ok %d %s" % (n, desc))
            continue
        print("%s %d - %s" % ("ok" if ok else "not ok", n, desc))
        if not ok:
            failed += 1
            for l in (diag or "").splitlines():
                print("# " + l)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
