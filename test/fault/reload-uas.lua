-- test/fault/reload-uas.lua: the callee of t_reload.py, reloaded every
-- second while it answers. Each call is held across a reload: the hook
-- rings, sleeps 0.3 s (a generation may be replaced meanwhile), then
-- answers; sipp holds the answered call 1 s and hangs up (BYE).
local SDP = table.concat({
  "v=0",
  "o=sipstack 1 1 IN IP4 127.0.0.1",
  "s=fault",
  "c=IN IP4 127.0.0.1",
  "t=0 0",
  "m=audio 40000 RTP/AVP 0",
  "a=rtpmap:0 PCMU/8000",
  "",
}, "\r\n")

sip.on_incoming_call(function(call)
  assert(call:ringing())
  sip.sleep(0.3)
  assert(call:answer(SDP, "application/sdp"))
end)
