"""test/fault/faultlib.py  What the registrar fault tests share

Checks of acknowledged bindings, given as (aor, contact) pairs: in the
database (a copy of its files, read with the sqlite3 CLI) and in the
running server's lookups (the bundled registrar's MESSAGE `where`).
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "registrar"))
import reglib  # noqa: E402
from reglib import harness  # noqa: E402


def not_on_disk(h, db, pairs):
    """(pairs missing from the database files as they are now, rows)"""
    snap = reglib.snapshot_db(h, db, "snap-%d" % h.next_id())
    rows = reglib.sql(h, snap, "select aor, contact from bindings") or []
    stored = {(r[0], r[1]) for r in rows}
    return [p for p in pairs if p not in stored], len(rows)


def not_found(srv, pairs):
    """["aor: what the lookup gave"] of the pairs a lookup misses"""
    missing = []
    cl = harness.UdpClient(srv.port)
    try:
        for aor, contact in pairs:
            found = reglib.where(srv, aor, cl)
            if not found or contact not in [u for u, _, _ in found]:
                missing.append("%s: %r" % (aor, found))
    finally:
        cl.close()
    return missing
