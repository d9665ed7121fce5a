-- test/transport/echo.lua: answers MESSAGE 202 and logs the transport
sip.on_incoming_message(function(msg)
  sip.log.info("got", { transport = msg.transport, body = msg.body })
  return 202
end)
