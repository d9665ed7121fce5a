-- test/abuse/abuse.lua: the server of test/abuse/t_abuse.py. The test
-- copies it into its temp dir with @CONFIG@ replaced by the fields of
-- a sip.configure{} (rate_limit, drop_user_agents).
sip.configure{ @CONFIG@ }

local sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\n" ..
  "c=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\n"

-- every call answered at once (sipp's and the flooder's INVITEs alike)
sip.on_incoming_call(function(call)
  call:answer(sdp, "application/sdp")
end)

-- MESSAGE "stats": the counters; "config": the rate limit in force;
-- one "key=value" per line
local COUNTERS = { "requests", "limited_sources", "limited_dropped",
                   "limited_answered", "ua_dropped", "calls" }

sip.on_incoming_message(function(msg)
  local out = {}
  if msg.body == "stats" then
    local s = sip.stats()
    for _, k in ipairs(COUNTERS) do
      out[#out + 1] = k .. "=" .. tostring(s[k])
    end
  elseif msg.body == "config" then
    local rl = sip.config().rate_limit
    if not rl then
      out[1] = "rate_limit=false"
    else
      for _, k in ipairs{ "rate", "burst", "action", "retry_after",
                          "max_sources" } do
        out[#out + 1] = k .. "=" .. tostring(rl[k])
      end
      out[#out + 1] = "trusted=" .. table.concat(rl.trusted, ",")
    end
    out[#out + 1] = "drop_user_agents=" ..
      table.concat(sip.config().drop_user_agents, ",")
  else
    return 400
  end
  msg:reply(200, "OK", nil, table.concat(out, "\n"), "text/plain")
end)
