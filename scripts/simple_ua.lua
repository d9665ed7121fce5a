-- scripts/simple_ua.lua: the spec's §5 example as a working script.
--
-- Answers incoming calls after ringing for two seconds, logs MESSAGEs,
-- accepts REFERs and reports their progress (100, 180, 200 sipfrag
-- NOTIFYs), and, when PEER is set below, places an outgoing call with
-- callbacks, transfers it with REFER and Replaces (RFC 3515, 3891),
-- hangs up and sends a MESSAGE to it, and registers when REGISTRAR is
-- set. As it is (PEER nil) it only answers.
--
--   build/sipstack --listen udp:127.0.0.1:5060 scripts/simple_ua.lua
--
-- No media: the SDP it offers and answers names an RTP port that
-- nothing listens on (sipstack has no media yet), so a phone that
-- calls it hears silence. test/events/t_simple_ua.py runs it on the
-- wire with PEER set.

local PEER = nil        -- e.g. "sip:user@example.com"; nil: no call out
local REFER_TO = "sip:other@example.com"   -- where the call is transferred
local REGISTRAR = nil   -- e.g. "sip:registrar.example.com" (user simple_ua)
local ANSWERED_FOR = 5  -- seconds the outgoing call lasts before REFER

sip.configure{ user_agent = "MyApp/1.0" }

local function sdp(port)
  return table.concat({
    "v=0", "o=user 123 456 IN IP4 127.0.0.1", "s=-",
    "c=IN IP4 127.0.0.1", "t=0 0",
    "m=audio " .. port .. " RTP/AVP 0", "" }, "\r\n")
end

-- Incoming calls: ring, then answer two seconds later. The hook is a
-- coroutine of its own, so it reads top to bottom.
sip.on_incoming_call(function(call)
  sip.log.info("incoming call", { from = call.from })
  call:ringing()
  sip.sleep(2)
  local ok, err = call:answer(sdp(8000), "application/sdp")
  if not ok then
    sip.log.warn("failed to answer", { err = err })
    call:reject(486, "Busy Here")
  end
end)

-- Incoming messages
sip.on_incoming_message(function(msg)
  sip.log.info("message", { from = msg.from, body = msg.body })
end)

-- Incoming REFER: accept, and report progress as the spec's example
-- does (simulated: a script that really transfers uses refer:transfer(),
-- whose NOTIFYs follow the new call)
sip.on_incoming_refer(function(refer)
  sip.log.info("refer", { from = refer.from, target = refer.target })
  if refer.replaces then
    sip.log.info("refer with replaces",
                 { call_id = refer.replaces.call_id })
  end
  refer:accept()
  refer:notify_trying()
  sip.sleep(1)
  refer:notify_ringing()
  sip.sleep(2)
  refer:notify_success()
end)

-- Outgoing call, message: once the server listens
sip.spawn(function()
  if not PEER then
    sip.log.info("no PEER set: answering only (set PEER at the top of "
                 .. "the script to place the example call and MESSAGE)")
    return
  end
  local target = PEER

  local call, err = sip.call(target, sdp(8002), "application/sdp")
  if not call then
    sip.log.error("call failed", { err = err })
    return
  end
  call.on_ringing = function() sip.log.info("ringing...") end
  call.on_answered = function(body, ct)
    sip.log.info("call answered", { content_type = ct, bytes = #body })
  end
  call.on_rejected = function(code, reason)
    sip.log.info("call rejected", { code = code, reason = reason })
  end
  call.on_state_change = function(from, to)
    sip.log.info("call state", { from = from, to = to })
  end

  call.on_refer_progress = function(code, reason)
    sip.log.info("transfer progress", { code = code, reason = reason })
  end

  if call:wait_answer(10) then
    sip.sleep(ANSWERED_FOR)
    -- REFER with Replaces, as the spec's example (the ids of a dialog
    -- the transfer target knows)
    local ok, e, code = call:refer_with_replaces(REFER_TO, "abc123",
                                                 "tag1", "tag2")
    sip.log.info("refer sent", { ok = tostring(ok), err = e, code = code })
    if ok then
      local fc, fr = call:wait_refer(10)
      sip.log.info("transfer done", { code = fc, reason = fr })
    end
    call:hangup()
  end

  local code, reason = sip.send_message(target, "text/plain", "Hello!")
  sip.log.info("message sent", { code = code, reason = reason })

  if REGISTRAR then
    sip.register(REGISTRAR, { user = "simple_ua", expires = 3600 })
  end
end)
