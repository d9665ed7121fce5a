#!/usr/bin/env python3
"""RFC 4475 / RFC 5118 torture messages against a running sipstack.

Usage: run.py PATH/TO/sipstack

Starts the server on UDP 127.0.0.1 with a script of this directory,
sends each message of the external corpus <repo>/../shared/conformance
(RFC 4475 *.dat, RFC 5118 wire/*) as one datagram, waits for the answer
and checks it against EXPECT below; after every message an OPTIONS of
ours must get a 200 (the server is still serving). Prints TAP, one line
per message. The whole run is bounded (about 30 s, never above 60 s).

The one transformation applied to the corpus bytes (in memory; the files
are never written): in a *request* whose top Via has no `rport`
parameter, `;rport` is inserted right after the top Via's sent-by. Why:
libre answers a request over UDP to the source IP but to the port of the
Via sent-by (default 5060) unless the top Via carries `rport` (RFC 3581),
and the torture messages name other hosts and ports in their Vias. With
`;rport` the answer comes back to our socket (the same would be true of a
strict RFC 3581 server). Nothing else is touched: not the sent-by, not
the other Via parameters (so `badinv01`'s `;;,;,,` and `badvers`'s
`SIP/7.0` stay), not the other Vias, not Content-Length, not the body.
Responses of the corpus are sent byte for byte. docs/conformance.md
discusses which verdicts could depend on this (none do).

Isolation: the torture messages reuse branches, sent-bys and Call-IDs
between themselves. A server would rightly take a second message with
the transaction key of an earlier one for a retransmission (RFC 3261
§17.2.3) or a merged request (§8.2.2.2), so messages sharing such a key
go to different server instances (isolation_keys; five instances in
all today, started in parallel). Answers are told apart by their
(Call-ID, CSeq); the non-2xx answers to INVITEs are ACKed so that they
are not retransmitted; an answer to nothing we sent (e.g. to the INVITE
octets trailing dblreq) fails the message.

Verdicts: EXPECT gives, per message, the outcomes accepted: status codes
and/or 'drop' (no answer within WAIT seconds). They come from the
corpus's expected.tsv and the RFC text, narrowed to what sipstack with a
hook-less script is meant to do when the RFC leaves a choice (noted).
A message marked `limit` is a known limit of libre's parser (it drops
the message before sipstack sees it): when exactly that happens the line
is `not ok ... # TODO known limit`, which TAP (and meson) count as an
expected failure; if the RFC's answer comes instead, the line is a plain
`ok` (then remove the limit here and in docs/conformance.md); anything
else outside EXPECT is a failure. Exit status: 0 unless a failure.
"""
import hashlib
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time

WAIT = 1.0          # seconds to wait for the answer to a torture message
LINGER = 0.15       # after the final answer: catch duplicates/extras
PROBE_WAIT = 2.0    # seconds to wait for the 200 to our OPTIONS
START_WAIT = 10.0   # seconds for `mod=main ev=started`
DEADLINE = 55.0     # the whole run

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
CORPUS = os.path.join(os.path.dirname(REPO), 'shared', 'conformance')

DROP = 'drop'

# name -> (corpus, verdict as in expected.tsv, accepted outcomes,
#          script, known limit or None, why)
#
# corpus: '4475' (rfc4475/<name>) or '5118' (rfc5118/wire/<name>).
# script: 'none' (no_hooks.lua) or 'message' (message_hook.lua).
# Codes of valid requests are what the core answers without a hook
# (405 for INVITE/REGISTER, 481 in-dialog without dialog, ...): the point
# is "parsed, not rejected as malformed, server still serving".
E = {}


def exp(name, corpus, verdict, accept, why, script='none', limit=None):
    E[name] = dict(corpus=corpus, verdict=verdict, accept=set(accept),
                   why=why, script=script, limit=limit)


# Known limits: libre's sip_msg_decode() fails, the datagram is dropped
# before sipstack sees it and no response is possible (docs/conformance.md)
NO_BRANCH = ('libre drops it: the top Via has no branch parameter and '
             'sip_via_decode() fails without one (ENOENT)')
NOT_SIP20 = ('libre drops it: a start line not ending in exactly "SIP/2.0" '
             'is taken for a response whose status code is 0 (EBADMSG)')
TWO_SP = ('libre drops it: its start-line pattern wants single SPs, so '
          'no start line is found (ENODATA)')
NO_EOH = ('libre drops it: no empty line ends the header section, so '
          'sip_msg_decode() waits for more (ENODATA)')
BAD_URI = ('libre drops it: uri_decode() cannot parse From '
           '<http://www.example.com> (sip_addr_decode fails, ENOENT)')

# --- RFC 4475 §3.1.1 valid messages
exp('wsinv.dat', '4475', 'valid', [481],
    'well-formed; INVITE with To tag and no dialog -> 481')
exp('intmeth.dat', '4475', 'valid', [501, 405],
    'well-formed; unknown method -> 501 (405 allowed)')
exp('esc01.dat', '4475', 'valid', [405],
    'well-formed; INVITE without hook -> 405')
exp('escnull.dat', '4475', 'valid', [405],
    'well-formed; REGISTER without registrar -> 405')
exp('esc02.dat', '4475', 'valid', [501],
    'RE%47IST%45R is an unknown method -> 501')
exp('lwsdisp.dat', '4475', 'valid', [200], 'accept as well formed')
exp('longreq.dat', '4475', 'valid', [405],
    'well-formed; INVITE without hook -> 405', limit=(DROP, NO_BRANCH))
exp('dblreq.dat', '4475', 'valid', [405],
    'REGISTER answered (405), trailing INVITE octets ignored')
exp('semiuri.dat', '4475', 'valid', [200], 'accept as well formed')
exp('transports.dat', '4475', 'valid', [200], 'accept as well formed')
exp('mpart01.dat', '4475', 'valid', [200],
    'MESSAGE with binary multipart body reaches the hook', script='message')
exp('unreason.dat', '4475', 'valid', [DROP],
    'a response: parsed, never answered')
exp('noreason.dat', '4475', 'valid', [DROP],
    'a response: parsed, never answered')
# --- RFC 4475 §3.1.2 invalid messages
exp('badinv01.dat', '4475', 'invalid', [400], 'empty Via/Contact params',
    limit=(DROP, NO_BRANCH))
exp('clerr.dat', '4475', 'invalid', [400],
    'Content-Length beyond the datagram: UDP -> 400')
exp('ncl.dat', '4475', 'invalid', [400], 'negative Content-Length')
exp('scalar02.dat', '4475', 'invalid', [400], 'CSeq > 2^32-1')
exp('scalarlg.dat', '4475', 'invalid', [DROP], 'a response: drop')
exp('quotbal.dat', '4475', 'invalid', [400], 'unterminated quoted string')
exp('ltgtruri.dat', '4475', 'invalid', [400],
    '<> around the Request-URI (RFC also lets a liberal UAS accept)',
    limit=(DROP, NO_BRANCH))
exp('lwsruri.dat', '4475', 'invalid', [400], 'LWS in the Request-URI',
    limit=(DROP, NOT_SIP20))
exp('lwsstart.dat', '4475', 'invalid', [400],
    'several SP between Request-Line elements', limit=(DROP, TWO_SP))
exp('trws.dat', '4475', 'invalid', [400],
    'SP at the end of the Request-Line', limit=(DROP, NOT_SIP20))
exp('escruri.dat', '4475', 'invalid', [400],
    'escaped headers in the Request-URI')
exp('baddate.dat', '4475', 'invalid', [405],
    'non-GMT Date: sipstack does not use Date, so it accepts it '
    '(RFC: reject only if Date matters); INVITE without hook -> 405')
exp('regbadct.dat', '4475', 'invalid', [400],
    'Contact addr-spec with ?headers outside <> '
    '(RFC also lets a liberal element infer the brackets)')
exp('badaspec.dat', '4475', 'invalid', [400],
    'spaces inside <> of To (RFC also lets a liberal element accept)')
exp('baddn.dat', '4475', 'invalid', [400],
    'unquoted display name with "," (and no empty line ends the header '
    'section as shipped)', limit=(DROP, NO_EOH))
exp('badvers.dat', '4475', 'invalid', [505], 'SIP/7.0 -> 505',
    limit=(DROP, NOT_SIP20))
exp('mismatch01.dat', '4475', 'invalid', [400], 'CSeq method mismatch')
exp('mismatch02.dat', '4475', 'invalid', [501],
    'unknown method with CSeq mismatch -> 501 (RFC: 400 acceptable)')
exp('bigcode.dat', '4475', 'invalid', [DROP], 'a response: drop')
# --- RFC 4475 §3.2-3.4
exp('badbranch.dat', '4475', 'valid', [200],
    'branch is only the magic cookie: accepted (RFC also allows 400)')
exp('insuf.dat', '4475', 'invalid', [400], 'no Call-ID/From/To')
exp('unkscm.dat', '4475', 'valid', [416], 'unknown R-URI scheme -> 416')
exp('novelsc.dat', '4475', 'valid', [416],
    'soap.beep: R-URI, never meaningful here -> 416')
exp('unksm2.dat', '4475', 'valid', [405],
    'unknown schemes in To/From/Contact parse; REGISTER without '
    'registrar -> 405 (a registrar answers 400)', limit=(DROP, BAD_URI))
exp('bext01.dat', '4475', 'valid', [420],
    'Require with unknown tags -> 420 with Unsupported (UAS: Require only)')
exp('invut.dat', '4475', 'valid', [405],
    'unknown Content-Type: INVITE without hook -> 405 '
    '(an endpoint taking calls answers 415)')
exp('regaut01.dat', '4475', 'valid', [405],
    'unknown auth scheme; non-registrar endpoint -> 405')
exp('multi01.dat', '4475', 'invalid', [400],
    'Call-ID/To/From/Max-Forwards/CSeq given twice')
exp('mcl01.dat', '4475', 'invalid', [400], 'two Content-Length values')
exp('bcast.dat', '4475', 'valid', [DROP], 'a response: discard')
exp('zeromf.dat', '4475', 'valid', [200],
    'Max-Forwards 0 at an endpoint: processed normally')
exp('cparam01.dat', '4475', 'valid', [405],
    'REGISTER without registrar -> 405')
exp('cparam02.dat', '4475', 'valid', [405],
    'REGISTER without registrar -> 405')
exp('regescrt.dat', '4475', 'valid', [405],
    'REGISTER without registrar -> 405')
exp('sdp01.dat', '4475', 'valid', [405],
    'INVITE without hook -> 405 (an endpoint taking calls: 406 or 400)')
exp('inv2543.dat', '4475', 'valid', [405],
    'RFC 2543 INVITE accepted; without hook -> 405', limit=(DROP, NO_BRANCH))
exp('test.dat', '4475', 'invalid', [DROP, 400],
    'not in the RFC text; no SIP-Version, no Via: nothing to answer to')
# --- RFC 5118
exp('ipv6-good', '5118', 'valid', [405], 'REGISTER without registrar')
exp('ipv6-bad', '5118', 'invalid', [400],
    'IPv6 Request-URI host without []')
exp('port-ambiguous', '5118', 'valid', [405],
    'well-formed (5070 is part of the address)')
exp('port-unambiguous', '5118', 'valid', [405], 'well-formed')
exp('via-received-param-with-delim', '5118', 'valid', [481],
    'received=[v6] parsed; BYE with To tag, no dialog -> 481')
exp('via-received-param-no-delim', '5118', 'valid', [200],
    'received=v6 parsed; OPTIONS -> 200')
exp('ipv6-in-sdp', '5118', 'valid', [405], 'INVITE without hook')
exp('mult-ip-in-header', '5118', 'valid', [481],
    'BYE with To tag, no dialog -> 481')
exp('mult-ip-in-sdp', '5118', 'valid', [405], 'INVITE without hook')
exp('ipv4-mapped-ipv6', '5118', 'valid', [405], 'INVITE without hook')
exp('ipv6-bug-abnf-3-colons', '5118', 'valid', [200],
    'three colons tolerated; OPTIONS -> 200')
exp('ipv6-correct-abnf-2-colons', '5118', 'valid', [200],
    'OPTIONS -> 200')


# ------------------------------------------------------------------ #
# Message helpers (bytes in, bytes out; never decoding the corpus)
# ------------------------------------------------------------------ #

LWS = (b' ', b'\t')
TOKEN = re.compile(rb"[A-Za-z0-9.!%*_+`'~-]+")
HOSTNAME = re.compile(rb'[A-Za-z0-9.-]+')


def skip_lws(b, i):
    """Index of the first octet at or after i that is not LWS."""
    while i < len(b):
        if b[i:i + 1] in LWS:
            i += 1
        elif b[i:i + 2] == b'\r\n' and b[i + 2:i + 3] in LWS:
            i += 2
        elif b[i:i + 1] == b'\n' and b[i + 1:i + 2] in LWS:
            i += 1
        else:
            break
    return i


def header_lines(data):
    """(name, value, start, end) of each header line, unfolded value."""
    out = []
    eoh = data.find(b'\r\n\r\n')
    head = data[:eoh + 2] if eoh >= 0 else data
    first = head.find(b'\n')
    if first < 0:
        return out
    pos = first + 1
    while pos < len(head):
        end = head.find(b'\n', pos)
        if end < 0:
            end = len(head)
        # folded continuation lines
        while end + 1 < len(head) and head[end + 1:end + 2] in LWS:
            nxt = head.find(b'\n', end + 1)
            end = nxt if nxt >= 0 else len(head)
        line = head[pos:end]
        c = line.find(b':')
        if c > 0:
            name = line[:c].strip().lower()
            value = re.sub(rb'\r?\n[ \t]+', b' ', line[c + 1:]).strip()
            out.append((name, value, pos, end))
        pos = end + 1
    return out


COMPACT = {b'i': b'call-id', b'v': b'via', b'f': b'from', b't': b'to',
           b'l': b'content-length', b'm': b'contact'}


def headers(data, name):
    name = name.encode().lower()
    return [v for (n, v, _, _) in header_lines(data)
            if COMPACT.get(n, n) == name]


def add_rport(data):
    """The one transformation: ';rport' after the top Via's sent-by.

    Returns (bytes, what was done)."""
    for (n, _, start, _) in header_lines(data):
        if COMPACT.get(n, n) == b'via':
            break
    else:
        return data, 'as is (no Via)'
    i = data.find(b':', start) + 1
    for k in range(3):            # protocol-name / version / transport
        i = skip_lws(data, i)
        t = TOKEN.match(data, i)
        if not t:
            return data, 'as is (Via not understood)'
        i = skip_lws(data, t.end())
        if k < 2:
            if data[i:i + 1] != b'/':
                return data, 'as is (Via not understood)'
            i += 1
    if data[i:i + 1] == b'[':
        j = data.find(b']', i)
        if j < 0:
            return data, 'as is (Via not understood)'
        i = j + 1
    else:
        t = HOSTNAME.match(data, i)
        if not t:
            return data, 'as is (Via not understood)'
        i = t.end()
    j = skip_lws(data, i)
    if data[j:j + 1] == b':':
        t = re.compile(rb'[0-9]+').match(data, skip_lws(data, j + 1))
        if t:
            i = t.end()
    # the rest of this via-parm: up to ',' or the end of the header
    end = i
    while end < len(data) and data[end:end + 1] != b',':
        if data[end:end + 1] == b'\n' and data[end + 1:end + 2] not in LWS:
            break
        end += 1
    if re.search(rb';\s*rport\b', data[i:end], re.I):
        return data, 'as is (top Via has rport)'
    return data[:i] + b';rport' + data[i:], '+;rport'


def msg_keys(data):
    """(Call-ID, CSeq) pairs of a message, whitespace normalised; an
    answer repeats them (RFC 3261 §8.2.6.2). A missing header is b''."""
    callids = headers(data, 'call-id') or [b'']
    cseqs = [b' '.join(c.split()) for c in headers(data, 'cseq')] or [b'']
    return set((c, q) for c in callids for q in cseqs)


class Response:
    def __init__(self, data):
        self.raw = data
        line = data.split(b'\r\n', 1)[0]
        m = re.match(rb'SIP/2\.0 ([0-9]{3}) ?(.*)', line)
        self.ok = bool(m)
        self.code = int(m.group(1)) if m else 0
        self.reason = m.group(2).decode('utf-8', 'replace') if m else ''
        self.keys = msg_keys(data)
        cseq = headers(data, 'cseq')
        self.cseq = cseq[0] if cseq else b''
        self.cseq_met = self.cseq.split()[-1] if self.cseq.split() else b''

    def first(self, name):
        v = headers(self.raw, name)
        return v[0] if v else None

    def __str__(self):
        return '%d %s' % (self.code, self.reason)


# ------------------------------------------------------------------ #
# Server
# ------------------------------------------------------------------ #

class Server:
    def __init__(self, exe, script):
        self.exe = exe
        self.script = script
        self.log = []
        self.proc = None
        self.port = None
        self.ready = threading.Event()

    def _reader(self):
        for line in self.proc.stderr:
            line = line.decode('utf-8', 'replace').rstrip('\n')
            self.log.append(line)
            if 'mod=main ev=started' in line:
                self.ready.set()
        self.ready.set()

    def start(self):
        for _ in range(5):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind(('127.0.0.1', 0))
            self.port = s.getsockname()[1]
            s.close()
            self.log = []
            self.ready.clear()
            self.proc = subprocess.Popen(
                [self.exe, '--listen', 'udp:127.0.0.1:%d' % self.port,
                 self.script],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE)
            threading.Thread(target=self._reader, daemon=True).start()
            self.ready.wait(START_WAIT)
            if self.proc.poll() is None and self.ready.is_set():
                return True
            self.stop()
        return False

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        """SIGTERM, wait; returns the exit status (None: had to kill)."""
        if not self.proc:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                return None
        return self.proc.returncode

    def tail(self, n=8):
        return self.log[-n:]


# ------------------------------------------------------------------ #
# The run
# ------------------------------------------------------------------ #

class Client:
    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(('127.0.0.1', 0))
        self.port = self.sock.getsockname()[1]
        self.done = set()    # (Call-ID, CSeq) answered: now stale
        self.nprobe = 0
        self.tag = '%08x' % random.getrandbits(32)

    def recv(self, timeout):
        self.sock.settimeout(max(timeout, 0.001))
        try:
            data, _ = self.sock.recvfrom(65535)
        except socket.timeout:
            return None
        r = Response(data)
        # Stop the retransmissions of non-2xx answers to INVITE (RFC 3261
        # §17.1.1.3); the ACK is matched by the Via branch and sent-by.
        if r.ok and r.code >= 300 and r.cseq_met == b'INVITE':
            self.ack(r)
        return r

    def ack(self, r, ruri=b'sip:conformance@127.0.0.1'):
        lines = [b'ACK ' + ruri + b' SIP/2.0']
        via = r.first('via')
        if via is not None:
            lines.append(b'Via: ' + via)
        for h in ('from', 'to', 'call-id'):
            v = r.first(h)
            if v is not None:
                lines.append(h.title().encode() + b': ' + v)
        num = r.cseq.split()[0] if r.cseq.split() else b'1'
        lines += [b'CSeq: ' + num + b' ACK', b'Max-Forwards: 70',
                  b'Content-Length: 0', b'', b'']
        self.sock.sendto(b'\r\n'.join(lines), self.server)

    def exchange(self, data, keys, want_final, deadline):
        """Send data; collect the answers to it until deadline.

        Returns (answers, strays): answers carry one of keys (Call-ID,
        CSeq) pairs (see msg_keys); strays are answers to nothing we
        sent (e.g. to dblreq's trailing INVITE)."""
        self.sock.sendto(data, self.server)
        answers, strays = [], []
        end = time.monotonic() + deadline
        while True:
            left = end - time.monotonic()
            if left <= 0:
                break
            r = self.recv(left)
            if r is None:
                break
            if r.keys & self.done:
                continue                    # retransmission of the past
            if r.keys & keys:
                answers.append(r)
                if want_final and r.code >= 200:
                    end = min(end, time.monotonic() + LINGER)
            else:
                strays.append(r)
        return answers, strays

    def probe(self):
        """OPTIONS of ours; returns the final Response or None."""
        self.nprobe += 1
        callid = ('probe-%d-%s@127.0.0.1' % (self.nprobe, self.tag)).encode()
        msg = (b'OPTIONS sip:probe@127.0.0.1:%d SIP/2.0\r\n'
               b'Via: SIP/2.0/UDP 127.0.0.1:%d;branch=z9hG4bK-%s;rport\r\n'
               b'Max-Forwards: 70\r\n'
               b'From: <sip:conformance@127.0.0.1>;tag=%s\r\n'
               b'To: <sip:probe@127.0.0.1>\r\n'
               b'Call-ID: %s\r\n'
               b'CSeq: 1 OPTIONS\r\n'
               b'Content-Length: 0\r\n\r\n') % (
                   self.server[1], self.port, callid.split(b'@')[0],
                   self.tag.encode(), callid)
        keys = msg_keys(msg)
        answers, _ = self.exchange(msg, keys, True, PROBE_WAIT)
        self.done |= keys
        finals = [a for a in answers if a.code >= 200]
        return finals[0] if finals else None


def check_sums(folder):
    """Names in folder/SHA256SUMS whose file does not match."""
    bad = []
    with open(os.path.join(folder, 'SHA256SUMS'), encoding='utf-8') as f:
        for line in f:
            parts = line.split()
            if len(parts) != 2:
                continue
            digest, name = parts[0], parts[1].lstrip('*')
            try:
                with open(os.path.join(folder, name), 'rb') as g:
                    ok = hashlib.sha256(g.read()).hexdigest() == digest
            except OSError:
                ok = False
            if not ok:
                bad.append(name)
    return bad


def load_tsv(path):
    rows = {}
    with open(path, encoding='utf-8') as f:
        next(f)
        for line in f:
            parts = line.rstrip('\n').split('\t')
            if len(parts) >= 3:
                rows[parts[0]] = parts
    return rows


VIA_KEY = re.compile(rb'^[^/]*/[^/]*/\s*[^\s]+\s+([^;,\s]+)')
BRANCH = re.compile(rb';\s*branch\s*=\s*([^;,\s]*)', re.I)
TAG = re.compile(rb';\s*tag\s*=\s*([^;,\s]*)', re.I)


def isolation_keys(data):
    """What makes two requests one transaction or a merge to a server.

    The torture messages reuse branches, sent-bys and Call-IDs (unkscm
    and novelsc share branch, sent-by and method; most RFC 5118 messages
    share one branch, sent-by and Call-ID), as independent test messages
    may. Sent to one server, the second would be absorbed as a
    retransmission (RFC 3261 §17.2.3: branch, sent-by, method) or
    answered 482 as a merged request (§8.2.2.2: From tag, Call-ID,
    CSeq). So messages sharing such a key go to different instances."""
    if data.startswith(b'SIP/'):
        return set()
    keys = set()
    # the method of the request line and, as libre compares, of CSeq
    methods = set([data.split(b' ', 1)[0]])
    methods |= set(c.split()[-1] for c in headers(data, 'cseq')
                   if c.split())
    via = headers(data, 'via')
    if via:
        m = VIA_KEY.match(via[0])
        b = BRANCH.search(via[0])
        for method in methods:
            keys.add(('txn', m.group(1).lower() if m else via[0],
                      b.group(1) if b else b'', method))
    frm = headers(data, 'from')
    t = TAG.search(frm[0]) if frm else None
    for callid in headers(data, 'call-id'):
        for cseq in headers(data, 'cseq'):
            keys.add(('merge', callid, t.group(1) if t else b'',
                      b' '.join(cseq.split())))
    return keys


def main():
    if len(sys.argv) != 2:
        print('usage: run.py PATH/TO/sipstack', file=sys.stderr)
        return 2
    exe = os.path.abspath(sys.argv[1])
    t0 = time.monotonic()

    if not os.path.isdir(CORPUS):
        print('1..0 # SKIP conformance corpus not found at %s '
              '(expected <repo>/../shared/conformance)' % CORPUS)
        return 0
    if not os.access(exe, os.X_OK):
        print('Bail out! %s is not an executable' % exe)
        return 1

    # The list of messages: every row of both expected.tsv files, in
    # their order; a corpus file without a row, or a row without an
    # entry in EXPECT, is a failure of its own.
    plan = []
    problems = []
    for corpus, sub, ddir in (('4475', 'rfc4475', 'rfc4475'),
                              ('5118', 'rfc5118', 'rfc5118/wire')):
        rows = load_tsv(os.path.join(CORPUS, sub, 'expected.tsv'))
        for name, row in rows.items():
            plan.append(dict(name=name, row=row,
                             path=os.path.join(CORPUS, ddir, name)))
        files = os.listdir(os.path.join(CORPUS, ddir))
        for f in sorted(files):
            if corpus == '4475' and not f.endswith('.dat'):
                continue
            if f not in rows:
                problems.append('%s/%s has no row in expected.tsv'
                                % (ddir, f))

    # Bytes to send, and the server instance of each message: per
    # script, the first instance none of whose messages shares a key.
    pools = []          # [script, keys, Server, Client]
    for m in plan:
        e = E.get(m['name'])
        m['e'] = e
        if e is None or not os.path.exists(m['path']):
            continue
        with open(m['path'], 'rb') as f:
            data = f.read()
        m['data'] = data
        if data.startswith(b'SIP/'):
            m['wire'], m['how'] = data, 'as is (response)'
        else:
            m['wire'], m['how'] = add_rport(data)
        keys = isolation_keys(data)
        for pool in pools:
            if pool[0] == e['script'] and not (pool[1] & keys):
                break
        else:
            script = {'none': 'no_hooks.lua',
                      'message': 'message_hook.lua'}[e['script']]
            pool = [e['script'], set(),
                    Server(exe, os.path.join(HERE, script)), Client()]
            pools.append(pool)
        pool[1] |= keys
        m['pool'] = pool

    sums = [sub for sub in ('rfc4475', 'rfc5118')
            if os.path.exists(os.path.join(CORPUS, sub, 'SHA256SUMS'))]
    print('1..%d' % (len(sums) + len(plan) + len(problems) + len(pools)))
    n = 0
    failed = 0
    # The bytes are the test (CRLF, NULs): a checkout that converted
    # line ends would change verdicts silently.
    for sub in sums:
        n += 1
        bad = check_sums(os.path.join(CORPUS, sub))
        if bad:
            failed += 1
            print('not ok %d - corpus %s/SHA256SUMS: %s differ'
                  % (n, sub, ', '.join(bad)))
        else:
            print('ok %d - corpus %s/SHA256SUMS' % (n, sub))
    for p in problems:
        n += 1
        failed += 1
        print('not ok %d - corpus: %s' % (n, p))

    starters = [threading.Thread(target=p[2].start) for p in pools]
    for t in starters:
        t.start()
    for t in starters:
        t.join()
    for i, pool in enumerate(pools):
        srv, cli = pool[2], pool[3]
        if not srv.alive() or not srv.ready.is_set():
            print('Bail out! sipstack did not start with %s: %s'
                  % (srv.script, ' | '.join(srv.tail())))
            for p in pools:
                p[2].stop()
            return 1
        cli.server = ('127.0.0.1', srv.port)
        # no '#' in a TAP description: it starts a directive
        srv.label = '%d (%s)' % (i + 1, os.path.basename(srv.script))

    for m in plan:
        n += 1
        name, row, e = m['name'], m['row'], m['e']
        verdict, section = row[1], row[2]
        label = '%s (%s, %s)' % (name, verdict, section)
        if e is None:
            print('not ok %d - %s: no entry in EXPECT' % (n, label))
            failed += 1
            continue
        if e['verdict'] != verdict:
            print('not ok %d - %s: EXPECT says %s' % (n, label,
                                                     e['verdict']))
            failed += 1
            continue
        if 'data' not in m:
            print('not ok %d - %s: %s missing' % (n, label, m['path']))
            failed += 1
            continue
        if time.monotonic() - t0 > DEADLINE:
            print('not ok %d - %s # SKIP run deadline reached' % (n, label))
            continue
        srv, cli = m['pool'][2], m['pool'][3]
        if not srv.alive():
            print('not ok %d - %s: server %s is not running'
                  % (n, label, srv.label))
            failed += 1
            continue

        data, wire, how = m['data'], m['wire'], m['how']
        keys = msg_keys(data)
        logmark = len(srv.log)
        answers, strays = cli.exchange(wire, keys, DROP not in e['accept'],
                                       WAIT)
        cli.done |= keys
        finals = [a for a in answers if a.code >= 200]

        issues = []
        if not finals:
            outcome = DROP
            got = 'no answer'
        else:
            outcome = finals[0].code
            got = str(finals[0])
            if len(set(a.code for a in finals)) > 1:
                issues.append('several final answers: %s'
                              % ', '.join(str(a) for a in finals))
        if strays:
            issues.append('answers to something we did not send: %s'
                          % ', '.join(str(a) for a in strays))
        if name == 'bext01.dat' and finals:
            uns = (finals[0].first('unsupported') or b'').decode('latin1')
            tags = [t.strip() for t in uns.split(',')]
            if sorted(tags) != ['nothingSupportsThis',
                                'nothingSupportsThisEither']:
                issues.append('Unsupported: %r, want the two Require '
                              'tags' % uns)

        probe = cli.probe() if srv.alive() else None
        if not srv.alive():
            issues.append('server died: ' + ' | '.join(srv.tail()))
        elif probe is None or probe.code != 200:
            issues.append('OPTIONS afterwards got %s'
                          % (probe or 'no answer'))

        desc = '%s: %s [%s; server %s]' % (label, got, how, srv.label)
        desc = desc.replace('#', '')
        want = '/'.join(str(a) for a in sorted(e['accept'], key=str))
        if outcome in e['accept'] and not issues:
            print('ok %d - %s' % (n, desc))
        elif e['limit'] and outcome == e['limit'][0] and not issues:
            print('not ok %d - %s, RFC wants %s # TODO known limit: %s'
                  % (n, desc, want, e['limit'][1]))
        else:
            failed += 1
            print('not ok %d - %s, want %s (%s)' % (n, desc, want, e['why']))
            for p in issues:
                print('# ' + p)
            for line in srv.log[logmark:logmark + 10]:
                print('# server: ' + line)

    for pool in pools:
        srv = pool[2]
        n += 1
        alive = srv.alive()
        rc = srv.stop()
        if alive and rc == 0:
            print('ok %d - sipstack server %s stopped cleanly on SIGTERM'
                  % (n, srv.label))
        else:
            failed += 1
            print('not ok %d - sipstack server %s: %s, exit status %s'
                  % (n, srv.label, 'running' if alive else 'had died', rc))
            for line in srv.tail():
                print('# ' + line)

    print('# %.1f s' % (time.monotonic() - t0))
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
