-- test/calls/callee.lua: sipstack as the callee (UAS) of sipp's calls
-- (test/calls/t_uas.py). The user part of the To URI (sipp's -s) picks
-- the behaviour:
--
--   basic       ringing, answer; logs the call object (msg=incoming) with
--               the offer byte-exact (hex) and, at the end, call:history()
--   ring-answer ringing, sip.sleep(1), answer
--   answer      answer at once, no ringing
--   return486   the hook returns 486
--   reject486   call:reject(486)
--   cancel      ringing, then waits; the peer cancels; answering after
--               that must fail (logged as msg=late_answer)
--   early-bye   as cancel; the peer hangs up with a BYE on the early
--               dialog instead
--   hangup      answer, sip.sleep(1), call:hangup() (BYE from us), and
--               call:hangup() again at once (one BYE only; logged as
--               again=...)
--   noack       answer (the peer never ACKs)
--   hold        answer; on_hold / on_unhold log msg=hold / msg=unhold
--   raise       the hook raises (LINE:raise) -> 500
--   cancel-200  ringing, answer at once (the peer's CANCEL crosses the
--               200 and must change nothing)
--   prack-require, prack-supported
--               ringing (reliable: the INVITE asks for 100rel), logged
--               as msg=ringing; sip.sleep(1.2) (the peer PRACKs
--               meanwhile), answer
--   update-early
--               ringing (a reliable 180 without SDP), sip.sleep(0.5),
--               ringing(183) with our SDP answer (reliable), sip.sleep(1),
--               then answer() without a body: the early UPDATEs are
--               answered by the server (RFC 3311); logs msg=answered
--               with call.body (the peer's last offer) in hex
--   glare       answer; once Connected, sip.sleep(0.2) and call:hold(),
--               logged as msg=held (ok, code, err, state, on_hold)
--   require-420 never reaches the hook (the INVITE requires an unknown
--               extension: the core answers 420)
--   anything else: answer at once
--
-- Every call logs msg=terminated case=... reason=... and one
-- msg=history line per entry of call:history(), and msg=cb_state for
-- every on_state_change.
--
-- A MESSAGE with the body "stats" is answered 200 with
-- "dialogs=N calls=N" (sip.stats()), to check that ended calls leave
-- nothing behind.

-- our answer; sipp checks it byte-exact (ANSWER_SDP in t_uas.py)
local ANSWER = table.concat({
  "v=0",
  "o=sipstack 4242 4242 IN IP4 127.0.0.1",
  "s=sipstack callee",
  "c=IN IP4 127.0.0.1",
  "t=0 0",
  "m=audio 40000 RTP/AVP 0 8",
  "a=rtpmap:0 PCMU/8000",
  "a=rtpmap:8 PCMA/8000",
  "a=sendrecv",
  "",
}, "\r\n")

local function hex(s)
  return (s:gsub(".", function(c) return string.format("%02x", c:byte()) end))
end

local function user(uri)
  return (uri or ""):match("^sips?:([^@;>]+)@") or ""
end

local function log(msg, case, call, fields)
  fields = fields or {}
  fields.case = case
  fields.call_id = call.id
  sip.log.info(msg, fields)
end

local function watch(call, case)
  call.on_state_change = function(from, to)
    log("cb_state", case, call, { old = from, new = to,
                                  state = call.state })
  end
  call.on_hold = function()
    log("hold", case, call, { on_hold = tostring(call:is_on_hold()),
                              state = call.state, body_hex = hex(call.body) })
  end
  call.on_unhold = function()
    log("unhold", case, call, { on_hold = tostring(call:is_on_hold()),
                                state = call.state, body_hex = hex(call.body) })
  end
  call.on_terminated = function(reason)
    log("terminated", case, call, { reason = reason,
                                    end_reason = call.end_reason,
                                    state = call.state,
                                    terminated = tostring(call:is_terminated()) })
    for i, e in ipairs(call:history()) do
      log("history", case, call, { i = i, old = e.from, new = e.to,
                                   event = e.event,
                                   ts = string.format("%.6f", e.ts) })
    end
  end
end

sip.on_incoming_call(function(call)
  local case = user(call.to)
  watch(call, case)
  local body = call.body
  log("incoming", case, call, {
    from_uri = call.from,
    to_uri = call.to,
    direction = call.direction,
    state = call.state,
    ctype = call.content_type,
    bytes = #body,
    body_hex = hex(body),
    answered = tostring(call:is_answered()),
  })

  if case == "basic" then
    assert(call:ringing())
    assert(call:answer(ANSWER, "application/sdp"))
  elseif case == "ring-answer" then
    assert(call:ringing())
    sip.sleep(1)
    assert(call:answer(ANSWER))
  elseif case == "answer" then
    assert(call:answer(ANSWER, "application/sdp"))
  elseif case == "return486" then
    return 486
  elseif case == "reject486" then
    local ok, err = call:reject(486)
    log("rejected", case, call, { ok = tostring(ok), err = tostring(err) })
  elseif case == "cancel" or case == "early-bye" then
    assert(call:ringing())
    sip.sleep(1)     -- the peer cancels meanwhile
    local ok, err = call:answer(ANSWER)
    log("late_answer", case, call, { ok = tostring(ok), err = tostring(err),
                                     state = call.state })
  elseif case == "hangup" then
    assert(call:answer(ANSWER))
    sip.sleep(1)
    local ok, err = call:hangup()
    local again, err2 = call:hangup()
    log("hangup", case, call, { ok = tostring(ok), err = tostring(err),
                                again = tostring(again),
                                err2 = tostring(err2) })
  elseif case == "raise" then
    error("boom: the callee hook raised on purpose") -- LINE:raise
  elseif case == "cancel-200" then
    assert(call:ringing())
    assert(call:answer(ANSWER))
  elseif case == "prack-require" or case == "prack-supported" then
    local ok, err = call:ringing()
    log("ringing", case, call, { ok = tostring(ok), err = tostring(err) })
    sip.sleep(1.2)
    assert(call:answer(ANSWER))
  elseif case == "update-early" then
    assert(call:ringing())
    sip.sleep(0.5)
    assert(call:ringing(183, "Session Progress", ANSWER, "application/sdp"))
    sip.sleep(1)
    local ok, err = call:answer()
    log("answered", case, call, { ok = tostring(ok), err = tostring(err),
                                  body_hex = hex(call.body) })
  elseif case == "glare" then
    assert(call:answer(ANSWER))
    while call.state == "Answering" do
      sip.sleep(0.05)
    end
    sip.sleep(0.2)
    -- true, code | nil, err [, code]
    local ok, a, b = call:hold()
    log("held", case, call, { ok = tostring(ok),
                              code = tostring(ok and a or b),
                              err = tostring(not ok and a or nil),
                              state = call.state,
                              on_hold = tostring(call:is_on_hold()) })
  else
    assert(call:answer(ANSWER))
  end
end)

sip.on_incoming_message(function(msg)
  if msg.body ~= "stats" then
    return 488
  end
  local s = sip.stats()
  msg:reply(200, "OK", nil, string.format("dialogs=%d calls=%d", s.dialogs,
                                          s.calls), "text/plain")
end)
