-- test/peers/caller.lua: A side; TARGET comes from a MESSAGE "call <uri>"
local sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\n"
sip.on_incoming_message(function(msg)
  local target, user, pass = msg.body:match("^call (%S+) ?(%S*) ?(%S*)")
  if not target then return 488 end
  sip.spawn(function()
    local opts = user ~= "" and { user = user, password = pass } or nil
    local call = sip.call(target, sdp, "application/sdp", opts)
    call.on_ringing = function(code) sip.log.info("A ringing", { code = code }) end
    local ok, err, code = call:wait_answer(5)
    sip.log.info("A answer", { ok = ok, err = err, code = code })
    if not ok then return end
    if target:match("sipp") then call:hangup() return end
    local hok, herr = call:hold()
    sip.log.info("A hold", { ok = hok, err = herr, state = call.state, peer = call.body:match("a=(%a+only)") })
    local uok = call:unhold()
    sip.log.info("A unhold", { ok = uok, state = call.state })
    call:hangup()
    sip.sleep(0.3)
    local st = sip.stats()
    sip.log.info("A stats", { calls = st.calls, dialogs = st.dialogs })
  end)
end)
