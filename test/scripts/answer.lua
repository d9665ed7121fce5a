-- test/scripts/answer.lua: answers every call at once (test/sipp/t_retrans.py)
local sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\n"

sip.on_incoming_call(function(call)
  sip.log.info("call")
  call:answer(sdp, "application/sdp")
end)
