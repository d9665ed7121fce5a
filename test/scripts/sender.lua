-- test/scripts/sender.lua: sends a MESSAGE on request (test/sipp/
-- t_message_out.py).
--
-- An incoming MESSAGE with "X-Send-To: URI" makes the script send, from a
-- task of its own (sip.spawn), a MESSAGE to URI carrying the incoming
-- body and content type byte for byte and the header X-Test-Id copied
-- from the incoming one. The trigger itself is answered 202 at once; the
-- result of sip.send_message is logged as msg=sent with code= and
-- reason= (code=nil reason=timeout when nobody answers).

sip.on_incoming_message(function(msg)
  local to = msg:header("X-Send-To")
  if not to then
    return 400, "X-Send-To Missing"
  end
  local ctype, body = msg.content_type or "text/plain", msg.body
  local headers = { ["X-Test-Id"] = msg:header("X-Test-Id") or "none" }

  sip.spawn(function()
    sip.log.info("sending", { to = to, bytes = #body })
    local code, reason = sip.send_message(to, ctype, body, headers)
    sip.log.info("sent", { to = to, code = tostring(code),
                           reason = tostring(reason) })
  end)

  return 202, "Accepted"
end)
