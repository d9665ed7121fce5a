-- bench/scripts/rc_uas.lua: the callee for bench/reg_calls.py.
-- Every incoming call: 180 Ringing, then 200 OK with an SDP answer.
-- MESSAGE with body "stats" is answered 200 with sip.stats() as
-- "key=value" lines (calls, dialogs, heap_bytes, lua_bytes, ...);
-- any other MESSAGE gets 200.

sip.configure{ user_agent = "sipstack-bench-uas" }

local SDP = table.concat({
  "v=0",
  "o=sipstack 1 1 IN IP4 127.0.0.1",
  "s=bench",
  "c=IN IP4 127.0.0.1",
  "t=0 0",
  "m=audio 40000 RTP/AVP 0",
  "a=rtpmap:0 PCMU/8000",
  "",
}, "\r\n")

sip.on_incoming_call(function(call)
  call:ringing()
  call:answer(SDP, "application/sdp")
end)

sip.on_incoming_message(function(msg)
  if msg.body ~= "stats" then return 200 end
  local lines = {}
  for k, v in pairs(sip.stats()) do
    lines[#lines + 1] = k .. "=" .. tostring(v)
  end
  table.sort(lines)
  msg:reply(200, "OK", nil, table.concat(lines, "\n"), "text/plain")
end)
