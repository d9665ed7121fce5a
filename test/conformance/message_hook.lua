-- test/conformance/message_hook.lua: script for the torture messages
-- that are MESSAGE requests (RFC 4475 mpart01): a hook that accepts any
-- MESSAGE, whatever its body, so that the run shows the request reached
-- the application intact (200) instead of the core's 405.
sip.configure{ user_agent = "sipstack-conformance" }

sip.on_incoming_message(function(msg)
  return 200
end)
