-- test/events/reload_live.lua: which generation serves what across a
-- SIGHUP (test/events/t_reload_live.py). The test rewrites VERSION
-- below and reloads; every line the script logs carries version=.
local VERSION = 1

local SDP = table.concat({
  "v=0", "o=reload 1 1 IN IP4 127.0.0.1", "s=-", "c=IN IP4 127.0.0.1",
  "t=0 0", "m=audio 40000 RTP/AVP 0", "" }, "\r\n")

local function log(msg, f)
  f = f or {}
  f.version = VERSION
  sip.log.info(msg, f)
end

sip.on_incoming_call(function(call)
  call.on_info = function(req)
    log("info", { call_id = call.id })
  end
  call.on_terminated = function(reason)
    log("call_end", { call_id = call.id, reason = reason })
  end
  call:answer(SDP, "application/sdp")
  log("answered", { call_id = call.id })
end)

sip.on_subscribe("presence", function(sub)
  sub.on_refresh = function(expires)
    log("refresh", { call_id = sub.call_id })
    sub:notify("active", "<v>" .. VERSION .. "</v>", "application/test+xml")
  end
  sub.on_end = function(reason)
    log("sub_end", { call_id = sub.call_id, reason = reason })
  end
  sub:accept()
  sub:notify("active", "<v>" .. VERSION .. "</v>", "application/test+xml")
  log("subscribed", { call_id = sub.call_id })
end, { min_expires = 2 })

sip.on_incoming_message(function(msg)
  local s = sip.stats()
  msg:reply(200, "OK", nil, string.format("subscriptions=%d dialogs=%d",
                                          s.subscriptions, s.dialogs),
            "text/plain")
end)
