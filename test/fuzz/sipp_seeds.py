#!/usr/bin/env python3
"""Seeds for the fuzzer from the tests' sipp scenarios.

Usage: sipp_seeds.py REPO OUTDIR

Every <send> of every test/**/*.xml scenario, its [keyword] placeholders
filled as sipp would fill them for a peer at 192.0.2.7:5070 talking to
the server at 127.0.0.1:5060 ([len] the body's length; [authentication]
an Authorization with the harness's $NONCE marker, see fuzz_sip.c), line
ends made CRLF, one file per message in OUTDIR. Run by test/fuzz/run.sh
(make fuzz); nothing here is committed to the corpus.
"""
import os
import re
import sys

FILL = {
    'service': 'bob', 'remote_ip': '127.0.0.1', 'remote_port': '5060',
    'local_ip': '192.0.2.7', 'local_port': '5070', 'transport': 'UDP',
    'media_ip': '192.0.2.7', 'media_port': '6000', 'media_ip_type': '4',
    'call_number': '1', 'call_id': '1-sipp@192.0.2.7', 'cseq': '1',
    'pid': '42', 'branch': 'z9hG4bK-sipp-1', 'peer_tag_param': ';tag=peer1',
    'routes': 'Route: <sip:p1.example.com;lr>',
    'next_url': 'sip:bob@127.0.0.1', 'server_ip': '127.0.0.1',
    'client_ip': '192.0.2.7', 'local_ip_type': '4', 'tdmmap': '0',
    'domain': '127.0.0.1', 'expires': '3600', 'last_cseq_number': '1',
    # the scenarios' variables (assign_to of a regexp on an earlier
    # message): what the request they copy would hold
    '$via_hdr': 'SIP/2.0/UDP 192.0.2.7:5070;branch=z9hG4bK-v1;rport',
    '$to_hdr': '<sip:bob@127.0.0.1>;tag=uas-ltag',
    '$from_hdr': '<sip:alice@192.0.2.7>;tag=uas-rtag',
    '$cseq_hdr': '2 INVITE', '$curi': 'sip:alice@192.0.2.7:5070',
    '$totag': 'uas-ltag', '$rseq': '1',
    '$contact': 'sip:alice@192.0.2.7:5070', '$cexp': '3600',
}
LAST = {
    'Via': 'Via: SIP/2.0/UDP 192.0.2.7:5070;branch=z9hG4bK-last;rport',
    'From': 'From: <sip:alice@192.0.2.7>;tag=f1',
    'To': 'To: <sip:bob@127.0.0.1>',
    'Call-ID': 'Call-ID: last@192.0.2.7',
    'CSeq': 'CSeq: 1 INVITE',
    'Contact': 'Contact: <sip:alice@192.0.2.7:5070>',
    'Record-Route': 'Record-Route: <sip:p1.example.com;lr>',
}
AUTH = ('Authorization: Digest username="alice", realm="sipstack", '
        'nonce="$NONCE", uri="sip:127.0.0.1", '
        'response="00000000000000000000000000000000", algorithm=MD5, '
        'qop=auth, nc=00000001, cnonce="0a4f113b"')


def fill(m):
    key = m.group(1).strip()
    if key.startswith('last_'):
        name = key[5:].rstrip(':').split(':')[0]
        return LAST.get(name, '')
    if key.startswith('authentication'):
        return AUTH
    if key.startswith('field'):
        return 'alice'
    return FILL.get(key, 'x')


def message(text):
    lines = [ln.strip() for ln in text.strip('\r\n').splitlines()]
    while lines and not lines[0]:
        lines.pop(0)
    if not lines:
        return None
    try:
        blank = lines.index('')
    except ValueError:
        blank = len(lines)
    head = [ln for ln in lines[:blank] if ln]
    body = lines[blank + 1:]
    while body and not body[-1]:
        body.pop()
    body = ''.join(ln + '\r\n' for ln in body)
    head = '\r\n'.join(head)
    head = re.sub(r'\[([^\]\[]+)\]', fill, head)
    body = re.sub(r'\[([^\]\[]+)\]', fill, body)
    head = head.replace('[len]', str(len(body.encode())))
    head = re.sub(r'(?im)^(Content-Length|l):.*$',
                  'Content-Length: %d' % len(body.encode()), head)
    return (head + '\r\n\r\n' + body).encode()


def main():
    repo, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    n = 0
    for dp, _, fns in sorted(os.walk(os.path.join(repo, 'test'))):
        for fn in sorted(fns):
            if not fn.endswith('.xml'):
                continue
            with open(os.path.join(dp, fn), encoding='utf-8') as f:
                xml = f.read()
            sends = re.findall(r'<send[^>]*>\s*<!\[CDATA\[(.*?)\]\]>', xml,
                               re.S)
            for i, text in enumerate(sends):
                msg = message(text)
                if not msg:
                    continue
                name = '%s-%s-%d.sip' % (os.path.basename(dp),
                                         fn[:-4], i)
                with open(os.path.join(out, name), 'wb') as f:
                    f.write(msg)
                n += 1
    print('sipp_seeds: %d messages from the scenarios' % n)


main()
