-- test/events/transfer.lua: incoming REFER (RFC 3515), for test/events/
-- t_transfer.py. Calls are answered with SDP; a REFER's Refer-To user
-- part tells what to do:
--   blind    refer:transfer(): the core calls the target, its progress
--            goes back as NOTIFYs
--   refuse   the hook returns 603
--   manual   accept, notify_trying, notify_ringing, notify_success
--   raise    the hook raises (-> 500)
-- anything else: refer:transfer() as blind (e.g. a target that answers
-- 486). Every step logs a line with case=<user>.

local SDP = table.concat({
  "v=0", "o=sipstack 1 1 IN IP4 127.0.0.1", "s=transfer",
  "c=IN IP4 127.0.0.1", "t=0 0", "m=audio 40000 RTP/AVP 0",
  "a=rtpmap:0 PCMU/8000", "" }, "\r\n")

sip.on_incoming_call(function(call)
  call.on_state_change = function(from, to)
    sip.log.info("call_state", { from = from, to = to, call_id = call.id })
  end
  call.on_terminated = function(reason)
    sip.log.info("ended", { call_id = call.id, reason = reason })
  end
  if call.replaces then
    sip.log.info("replacing", { call_id = call.id,
                                old = call.replaces.id,
                                state = call.state,
                                ringing = tostring(call:ringing()) })
  end
  call:answer(SDP, "application/sdp")
end)

sip.on_incoming_refer(function(refer)
  local case = refer.target:match("^sips?:([^@]+)@") or "?"
  local r = refer.replaces
  sip.log.info("refer", { case = case, target = refer.target,
                          from = refer.from,
                          referred_by = refer.referred_by,
                          in_call = tostring(refer.call ~= nil),
                          replaces = r and r.call_id or nil,
                          to_tag = r and r.to_tag or nil,
                          from_tag = r and r.from_tag or nil })
  if case == "refuse" then return 603 end
  if case == "raise" then error("raised in on_incoming_refer") end
  if case == "manual" then
    assert(refer:accept())
    assert(refer:notify_trying())
    sip.sleep(0.2)
    assert(refer:notify_ringing())
    sip.sleep(0.2)
    assert(refer:notify_success())
    sip.log.info("manual_done", { case = case,
                                  again = tostring(refer:notify_success()) })
    return
  end
  local call, err = refer:transfer(SDP, "application/sdp")
  sip.log.info("transferring", { case = case, ok = tostring(call ~= nil),
                                 err = err })
  if call then
    call.on_terminated = function(reason)
      sip.log.info("new_call_end", { case = case, reason = reason })
    end
  end
end)


-- Outgoing transfers, triggered by a MESSAGE (answered 202):
--   X-Case: out-blind | out-refused | out-attended
--   X-Call: URI        the transferee to call first (the test's peer A)
--   X-Call2: URI       out-attended: the transfer target to call too (C)
--   X-Refer-To: URI    the Refer-To target
local function out_transfer(case, a_uri, c_uri, target)
  local log = function(msg, f) f = f or {}; f.case = case
    sip.log.info(msg, f) end
  local a = sip.call(a_uri, SDP, "application/sdp")
  local ok, err = a:wait_answer(10)
  log("a_answered", { ok = tostring(ok), err = err })
  if not ok then return end
  a.on_refer_progress = function(code, reason)
    log("progress", { code = code, reason = reason, state = a.state })
  end
  local c
  if c_uri then
    c = sip.call(c_uri, SDP, "application/sdp")
    log("c_answered", { ok = tostring(c:wait_answer(10)) })
  end
  local r, e, code, reason
  if c then
    r, e, code, reason = a:refer_with_replaces(target, c)
  else
    r, e, code, reason = a:refer(target)
  end
  log("referred", { ok = tostring(r), err = e, code = code,
                    reason = reason, state = a.state })
  if r then
    local fc, fr = a:wait_refer(10)
    log("refer_final", { code = fc, reason = fr, state = a.state })
  end
  a:hangup()
  if c then c:hangup() end
end

sip.on_incoming_message(function(msg)
  local case = msg:header("X-Case")
  if not case then return 400 end
  sip.spawn(out_transfer, case, msg:header("X-Call"), msg:header("X-Call2"),
            msg:header("X-Refer-To"))
  return 202
end)

-- the high-level dialog events (spec's OnDialogEvent), for every call
sip.on_dialog_event(function(call, event)
  sip.log.info("dialog_event", { call_id = call.id, event = event })
end)
