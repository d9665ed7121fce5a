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
