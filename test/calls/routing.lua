-- test/calls/routing.lua: the routing API on the wire (test/calls/
-- t_routing.py). @DATABASE@ is replaced by the test (the users of
-- call:authenticate; the guard bans an address after 2 failures).
--
-- Incoming calls: the user part of the Request-URI picks the case.
--
--   inspect      logs request_uri, source, transport and headers of the
--                INVITE (msg=inspect), rings, answers; once Connected
--                logs call:header again (msg=after_ack: the INVITE is
--                let go at the ACK)
--   redirect     ringing, then reject(302, ..., {Contact=, X-Why=})
--   unreliable   ringing{reliable = false}, answer
--   required     ringing{reliable = false} (refused: the INVITE
--                requires 100rel), then answer
--   info         call:request before the answer (invalid state) and
--                with BYE (raises); answer; once Connected two INFOs
--                (msg=info1, info2: the peer's answers), then hangup
--   auth         call:authenticate() (msg=auth), answer when it gave
--                a user
--   relay        a B2BUA leg: ringing, sip.call(X-Target) and, when
--                that fails, reject with its code and its X-Detail
--                header as X-Relayed
--   hangup-code  ringing, then call:hangup(480, "Gone Fishing")
--
-- MESSAGE triggers (answered 202, the work done in a sip.spawn task),
-- X-Op picks it:
--
--   call-to      sip.call(X-Contact, OFFER, ct, {to = X-Aor, from =
--                sip:bob@example.com}); logs call.to, request_uri, the
--                2xx's X-Peer, source, transport; hangup
--   message-from sip.send_message(X-Uri, ..., {X-Note}, {from =
--                sip:carol@example.com})
--   options      sip.request("OPTIONS", X-Uri, {headers}) and a refused
--                sip.request("INVITE", ...)
--   noanswer     sip.request("OPTIONS", X-Uri) twice at once, with
--                timeout = 1 and without (64*T1)
--
-- A MESSAGE with the body "stats" is answered "dialogs=N calls=N".

sip.registrar.configure {
  database = "@DATABASE@",
  store = "memory",
  guard = { source_failures = 2 },
}

local OFFER = table.concat({
  "v=0",
  "o=sipstack 9 9 IN IP4 127.0.0.1",
  "s=routing",
  "c=IN IP4 127.0.0.1",
  "t=0 0",
  "m=audio 42000 RTP/AVP 0",
  "a=rtpmap:0 PCMU/8000",
  "",
}, "\r\n")

local function user(uri)
  return (uri or ""):match("^sips?:([^@;>]+)@") or ""
end

local function log(msg, case, fields)
  fields = fields or {}
  fields.case = case
  sip.log.info(msg, fields)
end

local function s(v)
  return tostring(v)
end

local function wait_connected(call)
  for _ = 1, 100 do
    if call.state ~= "Answering" then
      return
    end
    sip.sleep(0.05)
  end
end

local incoming = {}

function incoming.inspect(call, case)
  log("inspect", case, {
    request_uri = s(call.request_uri),
    source = s(call.source),
    transport = s(call.transport),
    account = s(call:header("X-Account")),
    account_lc = s(call:header("x-account")),
    subject = s(call:header("Subject")),   -- sent in compact form, s:
    missing = s(call:header("X-Missing")),
  })
  assert(call:ringing())
  assert(call:answer(OFFER))
  wait_connected(call)
  log("after_ack", case, { state = call.state,
                           account = s(call:header("X-Account")),
                           source = s(call.source) })
end

function incoming.redirect(call, case)
  assert(call:ringing())
  local ok, err = call:reject(302, "Moved Temporarily", {
    Contact = "<sip:elsewhere@127.0.0.1:5999>",
    ["X-Why"] = "moved",
  })
  log("rejected", case, { ok = s(ok), err = s(err), state = call.state })
end

function incoming.unreliable(call, case)
  local ok, err = call:ringing { reliable = false }
  log("ringing", case, { ok = s(ok), err = s(err) })
  sip.sleep(0.3)
  assert(call:answer(OFFER))
end

function incoming.required(call, case)
  local ok, err = call:ringing(180, "Ringing", nil, nil,
                               { reliable = false })
  log("ringing", case, { ok = s(ok), err = s(err), state = call.state })
  assert(call:answer(OFFER))
end

function incoming.info(call, case)
  local c, e = call:request("INFO")
  log("early", case, { code = s(c), err = s(e) })
  local ok, msg = pcall(call.request, call, "BYE")
  log("refused", case, { ok = s(ok), err = s(msg) })
  assert(call:answer(OFFER))
  wait_connected(call)
  for i = 1, 2 do
    local code, reason, body, ct = call:request("INFO", {
      content_type = "application/dtmf-relay",
      body = "Signal=" .. i .. "\r\nDuration=160\r\n",
      headers = { ["X-Seq"] = tostring(i) },
    })
    log("info" .. i, case, { code = s(code), reason = s(reason),
                             body = s(body), ct = s(ct) })
  end
  local ok2, err2 = call:hangup()
  log("hangup", case, { ok = s(ok2), err = s(err2) })
end

function incoming.auth(call, case)
  local who, err, status = call:authenticate()
  log("auth", case, { user = s(who), err = s(err), status = s(status),
                      state = call.state })
  if who then
    assert(call:answer(OFFER))
  end
end

function incoming.relay(call, case)
  assert(call:ringing())
  local target = call:header("X-Target")
  local out = assert(sip.call(target, OFFER, "application/sdp",
                              { from = call.from }))
  local ok, err, code = out:wait_answer(10)
  log("relay", case, { ok = s(ok), err = s(err), code = s(code),
                       detail = s(out:header("X-Detail")),
                       source = s(out.source),
                       transport = s(out.transport),
                       request_uri = s(out.request_uri) })
  if not ok and code then
    local rok, rerr = call:reject(code, nil,
                                  { ["X-Relayed"] = out:header("X-Detail") })
    log("relayed", case, { ok = s(rok), err = s(rerr) })
  else
    call:hangup()
  end
end

incoming["hangup-code"] = function(call, case)
  assert(call:ringing())
  local ok, err = call:hangup(480, "Gone Fishing")
  log("hangup", case, { ok = s(ok), err = s(err), state = call.state })
end

sip.on_incoming_call(function(call)
  local case = user(call.request_uri)
  call.on_terminated = function(reason)
    log("terminated", case, { reason = reason })
  end
  local f = incoming[case]
  if not f then
    return 404
  end
  f(call, case)
end)

local ops = {}

ops["call-to"] = function(msg)
  local case = "call-to"
  local call, err = sip.call(msg.contact, OFFER, "application/sdp",
                             { to = msg.aor, from = "sip:bob@example.com" })
  if not call then
    log("placed", case, { err = s(err) })
    return
  end
  log("placed", case, { to = s(call.to), request_uri = s(call.request_uri),
                        source = s(call.source) })
  local ok, werr = call:wait_answer(10)
  log("answered", case, { ok = s(ok), err = s(werr),
                          peer = s(call:header("X-Peer")),
                          source = s(call.source),
                          transport = s(call.transport) })
  sip.sleep(0.2)
  call:hangup()
end

ops["message-from"] = function(msg)
  local code, reason = sip.send_message(msg.uri, "text/plain", "hello",
                                        { ["X-Note"] = "1" },
                                        { from = "sip:carol@example.com" })
  log("sent", "message-from", { code = s(code), reason = s(reason) })
end

ops.options = function(msg)
  local code, reason, body, ct = sip.request("OPTIONS", msg.uri, {
    headers = { Accept = "application/sdp" },
  })
  log("options", "options", { code = s(code), reason = s(reason),
                              body = s(body), ct = s(ct) })
  local ok, e = pcall(sip.request, "INVITE", msg.uri)
  log("refused", "options", { ok = s(ok), err = s(e) })
end

ops.noanswer = function(msg)
  sip.spawn(function()
    local code, err = sip.request("OPTIONS", msg.uri, { timeout = 1 })
    log("short", "noanswer", { code = s(code), err = s(err) })
  end)
  local code, err = sip.request("OPTIONS", msg.uri)
  log("long", "noanswer", { code = s(code), err = s(err) })
end

sip.on_incoming_message(function(msg)
  if msg.body == "stats" then
    local st = sip.stats()
    msg:reply(200, "OK", nil, string.format("dialogs=%d calls=%d",
                                            st.dialogs, st.calls),
              "text/plain")
    return
  end
  local op = ops[msg:header("X-Op") or ""]
  if not op then
    return 400, "Unknown X-Op"
  end
  sip.spawn(op, {
    contact = msg:header("X-Contact"),
    aor = msg:header("X-Aor"),
    uri = msg:header("X-Uri"),
  })
  return 202, "Accepted"
end)
