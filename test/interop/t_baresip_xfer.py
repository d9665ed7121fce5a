#!/usr/bin/env python3
"""Interop: transfer (REFER, RFC 3515) between sipstack and baresip
(Debian package baresip-core 1.0.0), both ways. sipstack runs
test/events/transfer.lua; baresip runs headless as in t_baresip.py
(its Baresip class), with the cons module so the test can type menu
commands into it over UDP.

  --case xfer-out  sipstack transfers baresip: a MESSAGE (X-Case
                   out-blind) makes the script call baresip (auto
                   answer), then call:refer(sip:answer@sipstack):
                   baresip answers 202, calls that target (sipstack
                   answers it), and NOTIFYs the outcome: the script's
                   call:wait_refer() gives 200 and on_refer_progress
                   heard it; baresip's trace has the REFER, its 202 and
                   its NOTIFYs with message/sipfrag.
  --case xfer-in   baresip transfers sipstack: baresip dials
                   sip:transferee@sipstack (answered), then the test
                   types "/transfer sip:blind@sipstack" into baresip's
                   console: sipstack gets the REFER (on_incoming_refer,
                   refer:transfer() calls the target, itself here),
                   answers 202 and NOTIFYs 100 ... 200 OK to baresip,
                   whose trace shows them; the call goes Referring.

Without baresip (or a module) the test reports itself skipped.
"""
import os
import socket
import sys
import time

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "sipp"))
import harness  # noqa: E402
import t_baresip as tb  # noqa: E402

LOCAL = harness.LOCAL
SCRIPT = os.path.join(os.path.dirname(HERE), "events", "transfer.lua")


def args(ap):
    ap.add_argument("--baresip", default="", help="path of baresip")
    ap.add_argument("--case", choices=("xfer-out", "xfer-in"),
                    required=True)




def with_console(bs):
    """Add the cons module (UDP console) to a Baresip's config."""
    bs.cons = harness.free_port(("udp", "tcp"))
    with open(os.path.join(bs.conf, "config"), "a") as f:
        f.write("module\t\t\tcons.so\ncons_listen\t\t%s:%d\n" %
                (LOCAL, bs.cons))
    return bs


def command(bs, line):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.sendto(line.encode() + b"\n", (LOCAL, bs.cons))
    s.close()


def sent(tr, pred):
    return [m for d, m in tr if d == "sent" and pred(m)]


def received(tr, pred):
    return [m for d, m in tr if d == "received" and pred(m)]


def frags(msgs):
    return [(m.body or b"").split(b"\n")[0].strip().decode("ascii", "replace")
            for m in msgs]


def xfer_out(h, srv):
    bs = tb.Baresip(h, "baresip-xfer-out",
                    "<sip:bob@%s;transport=udp>;regint=0;answermode=auto"
                    % LOCAL, 8).start()
    if not h.ok(bs.wait_for(r"baresip is ready", 5.0), "baresip is up",
                diag=bs.tail()):
        bs.wait()
        return
    cl = harness.UdpClient(srv.port)
    r = cl.request("MESSAGE", extra=[
        ("X-Case", "out-blind"),
        ("X-Call", "sip:bob@%s:%d" % (LOCAL, bs.port)),
        ("X-Refer-To", "sip:answer@%s:%d" % (LOCAL, srv.port))],
        body=b"go", ctype="text/plain")
    cl.close()
    h.ok(r and r.code == 202, "MESSAGE -> 202")
    final = srv.wait_for({"msg": "refer_final", "case": "out-blind"}, 10)
    fields = harness.parse_logfmt(final) if final else {}
    h.ok(fields.get("code") == "200",
         "call:wait_refer() -> 200 (baresip reached the target)",
         diag=final, server=srv)
    h.ok(srv.find({"msg": "referred", "case": "out-blind", "ok": "true"}),
         "call:refer() -> true (baresip's 202)", server=srv)
    h.ok(srv.find({"msg": "progress", "case": "out-blind", "code": "200"}),
         "on_refer_progress(200)", server=srv)
    bs.wait()
    tr = bs.trace()
    h.note("xfer-out: SIP flow, baresip's side:\n%s" % tb.flow(tr))
    h.ok(received(tr, lambda m: m.method == "REFER") and
         sent(tr, lambda m: m.code == 202),
         "baresip got the REFER and answered 202", diag=tb.flow(tr))
    nts = sent(tr, lambda m: m.method == "NOTIFY")
    h.ok(nts and all((m.header("Content-Type") or "").startswith(
        "message/sipfrag") for m in nts) and
         "SIP/2.0 200 OK" in frags(nts),
         "baresip's NOTIFYs carry sipfrags up to 200 OK",
         diag=repr(frags(nts)))
    h.ok(sent(tr, lambda m: m.method == "INVITE" and
              "answer@" in m.start),
         "baresip called the transfer target", diag=tb.flow(tr))


def xfer_in(h, srv):
    bs = with_console(tb.Baresip(
        h, "baresip-xfer-in", "<sip:alice@%s;transport=udp>;regint=0" %
        LOCAL, 8, ["/dial sip:transferee@%s:%d" % (LOCAL, srv.port)]))
    bs.start()
    up = bs.wait_for(r"Call established: ", 6.0)
    h.ok(up, "baresip's call to sipstack is established", diag=bs.tail())
    if up:
        time.sleep(0.5)
        command(bs, "/transfer sip:blind@%s:%d" % (LOCAL, srv.port))
    ok = srv.wait_for({"msg": "transferring", "case": "blind",
                       "ok": "true"}, 6)
    h.ok(ok, "sipstack took baresip's REFER and placed the new call",
         server=srv)
    h.ok(srv.wait_for({"ev": "state", "to": "Referring"}, 3),
         "the call went Referring", server=srv)
    bs.wait()
    tr = bs.trace()
    h.note("xfer-in: SIP flow, baresip's side:\n%s" % tb.flow(tr))
    h.ok(sent(tr, lambda m: m.method == "REFER") and
         received(tr, lambda m: m.code == 202),
         "baresip sent the REFER and got 202", diag=tb.flow(tr))
    nts = received(tr, lambda m: m.method == "NOTIFY")
    h.ok(nts and "SIP/2.0 200 OK" in frags(nts) and
         frags(nts)[0] == "SIP/2.0 100 Trying",
         "baresip got NOTIFYs 100 Trying ... 200 OK",
         diag=repr(frags(nts)))
    h.ok(all(m.code == 200 for m in sent(
        tr, lambda m: m.is_response and "NOTIFY" in
        (m.header("CSeq") or ""))),
         "baresip answered every NOTIFY 200", diag=tb.flow(tr))


def body(h, a):
    srv = h.server(SCRIPT)
    (xfer_out if a.case == "xfer-out" else xfer_in)(h, srv)
    h.stop_server(srv, must_not=[{"ev": "hook_error"}])


if __name__ == "__main__":
    why = tb.missing(("cons.so",))
    if why:
        print("1..0 # SKIP %s" % why)
        sys.exit(0)
    harness.test_main("interop: transfer with baresip", body,
                      extra_args=args)
