-- test/peers/callee.lua: B side of the sipstack-to-sipstack calls
local sdp = "v=0\r\no=- 5 5 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 41000 RTP/AVP 0\r\na=sendrecv\r\n"
sip.on_incoming_call(function(call)
  call.on_hold = function() sip.log.info("B hold", { dir = call.body:match("a=(%a+only)") or call.body:match("a=(inactive)") }) end
  call.on_unhold = function() sip.log.info("B unhold") end
  call.on_terminated = function(r) sip.log.info("B ended", { reason = r }) end
  -- a reliable 183 with an offer: the 200 must wait for the PRACK
  assert(call:ringing(183, "Session Progress", sdp, "application/sdp"))
  local ok, err = call:answer(sdp)
  sip.log.info("B answer called", { ok = ok, err = err, state = call.state })
end)
