#!/usr/bin/env python3
"""RFC 3263 against a real DNS server: dnsmasq on 127.0.0.1 serving
NAPTR, SRV and A records for sipstack.test, one case per run:

  message           sip.send_message("sip:svc@sipstack.test") reaches a
                    sipp UAS whose port only the SRV record gives
                    (NAPTR SIP+D2U -> _sip._udp SRV -> A 127.0.0.1);
                    dnsmasq runs unprivileged (nobody, when we are root)
  failover-503      SRV priority 10 -> a sipp answering 503, priority
                    20 -> a sipp answering 200: the script gets 200
  failover-timeout  SRV priority 10 -> a port where nothing listens,
                    priority 20 -> a sipp answering 200: the script gets
                    200 after Timer F (32 s) - UDP gives libre no error
                    for the silent target (no ICMP error on an
                    unconnected socket), so only the timeout moves on
  register          sip.register("sip:sipstack.test") with the DNS
                    server from sip.configure{dns_servers=...}: the
                    REGISTER reaches the sipp registrar behind SRV

The MESSAGE cases use test/scripts/sender.lua with --dns-server; the
register case test/registration/reg.lua.
"""
import os
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import regtest  # noqa: E402
from regtest import DOMAIN, harness  # noqa: E402

SRV_UDP = "_sip._udp." + DOMAIN
NAPTR = (DOMAIN, 10, 10, "S", "SIP+D2U", SRV_UDP)


def args(ap):
    ap.add_argument("--case", required=True,
                    choices=["message", "failover-503", "failover-timeout",
                             "register"])


def uas(h, scenario, timeout=45):
    sp = h.sipp(regtest.scenario(scenario), calls=1, timeout=timeout)
    if not h.ok(sp.wait_listening(), "sipp UAS (%s) listens on %d" %
                (scenario, sp.port), sipp=sp):
        raise harness.Abort("sipp did not start")
    return sp


def send_via_dns(h, dns, to, wait):
    """sender.lua sends a MESSAGE to `to`; returns (record of its
    msg=sent line, seconds it took, server)."""
    srv = h.server("sender.lua", args=["--dns-server",
                                       "127.0.0.1:%d" % dns.port])
    cl = harness.UdpClient(srv.port)
    t0 = time.monotonic()
    r = cl.request("MESSAGE", ctype="text/plain", body="via DNS",
                   extra=[("X-Send-To", to),
                          ("X-Test-Id", "dns-%d" % os.getpid())])
    cl.close()
    h.ok(r is not None and r.code == 202,
         "the trigger MESSAGE is answered 202", diag="got %r" % r)
    line = srv.wait_for({"ev": "log", "msg": "sent", "to": to}, wait)
    took = time.monotonic() - t0
    return (harness.parse_logfmt(line) if line else {}), took, srv


def check_queries(h, dns, want):
    got = dns.queries()
    h.ok(all(q in got for q in want),
         "dnsmasq was asked %s" % ", ".join("%s %s" % q for q in want),
         diag="queries: %s" % got)


def case_message(h):
    sp = uas(h, "uas-message-200.xml")
    dns = regtest.start_dnsmasq(
        h, naptr=[NAPTR], srv=[(SRV_UDP, "uas." + DOMAIN, sp.port, 10, 0)],
        hosts=[("uas." + DOMAIN, "127.0.0.1")], unprivileged=True)
    to = "sip:svc@" + DOMAIN
    rec, took, srv = send_via_dns(h, dns, to, 8)
    h.ok(rec.get("code") == "200" and rec.get("reason") == "OK",
         "send_message(%s) returned 200, OK (%.1f s)" % (to, took),
         diag="got %s" % rec)
    h.sipp_ok(sp, "the sipp UAS on the SRV port got the MESSAGE and "
              "answered 200")
    got = [m for m in sp.messages("received") if m.method == "MESSAGE"]
    h.ok(got and got[0].start == "MESSAGE %s SIP/2.0" % to,
         "the request line still names the domain: MESSAGE %s" % to,
         diag=got[0].start if got else "no MESSAGE")
    check_queries(h, dns, [("NAPTR", DOMAIN), ("SRV", SRV_UDP)])
    h.stop_server(srv, must_not=[r"\bev=hook_error\b"])


def case_failover_503(h):
    busy = uas(h, "uas-message-503.xml")
    good = uas(h, "uas-message-200.xml")
    dns = regtest.start_dnsmasq(
        h, naptr=[NAPTR],
        srv=[(SRV_UDP, "busy." + DOMAIN, busy.port, 10, 0),
             (SRV_UDP, "good." + DOMAIN, good.port, 20, 0)],
        hosts=[("busy." + DOMAIN, "127.0.0.1"),
               ("good." + DOMAIN, "127.0.0.1")])
    to = "sip:svc@" + DOMAIN
    rec, took, srv = send_via_dns(h, dns, to, 8)
    h.ok(rec.get("code") == "200",
         "send_message returned 200 from the second target (%.1f s)" %
         took, diag="got %s" % rec)
    h.sipp_ok(busy, "the priority-10 target got the MESSAGE first and "
              "answered 503")
    h.sipp_ok(good, "the priority-20 target got it next and answered 200")
    check_queries(h, dns, [("NAPTR", DOMAIN), ("SRV", SRV_UDP)])
    h.stop_server(srv, must_not=[r"\bev=hook_error\b"])


def case_failover_timeout(h):
    silent = harness.free_port(("udp",))      # nothing listens there
    good = uas(h, "uas-message-200.xml")
    dns = regtest.start_dnsmasq(
        h, naptr=[NAPTR],
        srv=[(SRV_UDP, "silent." + DOMAIN, silent, 10, 0),
             (SRV_UDP, "good." + DOMAIN, good.port, 20, 0)],
        hosts=[("silent." + DOMAIN, "127.0.0.1"),
               ("good." + DOMAIN, "127.0.0.1")])
    to = "sip:svc@" + DOMAIN
    rec, took, srv = send_via_dns(h, dns, to, 40)
    h.ok(rec.get("code") == "200",
         "send_message returned 200 from the second target",
         diag="got %s" % rec)
    h.ok(rec and 30.0 <= took <= 36.0,
         "the failover came after Timer F of the silent target (32 s): "
         "%.1f s" % took)
    h.sipp_ok(good, "the priority-20 target got the MESSAGE and answered "
              "200")
    h.stop_server(srv, must_not=[r"\bev=hook_error\b"])


def case_register(h):
    sp = uas(h, "uas-reg-ok.xml", timeout=20)
    dns = regtest.start_dnsmasq(
        h, naptr=[NAPTR],
        srv=[(SRV_UDP, "registrar." + DOMAIN, sp.port, 10, 0)],
        hosts=[("registrar." + DOMAIN, "127.0.0.1")])
    registrar = "sip:" + DOMAIN
    script = regtest.reg_script(h, dict(
        registrar=registrar, options=dict(user="bob", expires=300),
        dns_servers=["127.0.0.1:%d" % dns.port]))
    srv = h.server(script)
    got = regtest.wait_results(srv, 1, 8)
    rec = got[0][0] if got else {}
    h.ok((rec.get("ok"), rec.get("expires"), rec.get("reason"),
          rec.get("registrar")) == ("true", "60", "OK", registrar),
         "on_registration_result(true, 60, \"OK\", %s)" % registrar,
         diag="got %s" % regtest.result_desc(rec))
    h.sipp_ok(sp, "the sipp registrar behind SRV answered 200")
    regs = regtest.registers(sp)
    m = regs[0][1] if regs else None
    h.ok(m is not None and m.start == "REGISTER %s SIP/2.0" % registrar and
         m.header("To") == "<sip:bob@%s>" % DOMAIN,
         "REGISTER %s with To: <sip:bob@%s>" % (registrar, DOMAIN),
         diag="%s / To: %s" % (m.start, m.header("To")) if m else "none")
    check_queries(h, dns, [("NAPTR", DOMAIN), ("SRV", SRV_UDP)])
    h.stop_server(srv, must=[{"ev": "registered", "registrar": registrar}],
                  must_not=[r"\bev=hook_error\b"])


CASES = {
    "message": case_message,
    "failover-503": case_failover_503,
    "failover-timeout": case_failover_timeout,
    "register": case_register,
}


if __name__ == "__main__":
    harness.test_main(__doc__.splitlines()[0],
                      lambda h, a: CASES[a.case](h), extra_args=args)
