-- scripts/default.lua: the script `make run` starts.
--
-- Answers OPTIONS (the core does that by itself), logs every MESSAGE and
-- answers it, and shows the shape of a hook: one coroutine per request,
-- read top to bottom, with sip.sleep() where it needs to wait.

sip.configure{ user_agent = "sipstack-default" }

sip.on_incoming_message(function(msg)
  sip.log.info("message", { from = msg.from, to = msg.to,
                            content_type = msg.content_type,
                            bytes = #msg.body })
  if msg.content_type ~= nil and not msg.content_type:match("^text/") then
    return 415, "Unsupported Media Type"
  end
  return 200
end)
