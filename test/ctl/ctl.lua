-- test/ctl/ctl.lua: the script behind test/ctl/t_ctl.py (sipstack ctl).
-- A registrar with its bindings in memory and no auth (location
-- show/remove), and a callee whose behaviour the To user picks:
--   ring     180, then nothing: the call stays ringing until the peer
--            cancels or `ctl calls hangup` ends it (603)
--   answer   200 at once: the call stays up until a BYE (the peer's,
--            or ours from `ctl calls hangup`)
--   anything else: 200 at once
-- The test rewrites GEN below to check that a reload took (MESSAGE
-- "gen" is answered with it); MESSAGE "stats" is answered with
-- sip.stats() (key=value lines).
local GEN = "one"

local SDP = table.concat({
  "v=0",
  "o=sipstack 1 1 IN IP4 127.0.0.1",
  "s=ctl",
  "c=IN IP4 127.0.0.1",
  "t=0 0",
  "m=audio 6000 RTP/AVP 0",
  "a=rtpmap:0 PCMU/8000",
  "",
}, "\r\n")

sip.registrar.configure{ store = "memory", auth = false,
                         min_expires = 60, max_expires = 3600 }

sip.on_incoming_call(function(call)
  local user = call.to:match("^sips?:([^@]+)@") or ""
  if user == "ring" then
    assert(call:ringing())
    return
  end
  assert(call:answer(SDP, "application/sdp"))
end)

sip.on_incoming_message(function(msg)
  if msg.body == "gen" then
    msg:reply(200, "OK", nil, GEN, "text/plain")
    return
  end
  if msg.body == "stats" then
    -- sip.stats() as "key=value" lines, sorted: the same names as
    -- `sipstack ctl stats`
    local st, lines = sip.stats(), {}
    for k, v in pairs(st) do lines[#lines + 1] = k .. "=" .. tostring(v) end
    table.sort(lines)
    msg:reply(200, "OK", nil, table.concat(lines, "\n"), "text/plain")
    return
  end
  return 200
end)
