-- test/scripts/hold.lua: hooks that hold their request and sleep far
-- longer than the test lasts (test/sipp/t_stop_held.py), so that the
-- server is stopped with requests still unanswered: a MESSAGE, an
-- OPTIONS (on_request) and an INVITE (an incoming call).

local function hold(what, id)
  sip.log.info("holding", { what = what, call_id = id })
  sip.sleep(120)
end

sip.on_incoming_message(function(msg) hold("message", msg.call_id) end)

sip.on_request(function(req) hold("options", req.call_id) end,
               { "OPTIONS" })

sip.on_incoming_call(function(call) hold("call", call.id) end)
