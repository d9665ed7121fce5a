-- test/scripts/wire.lua: the script of the wire tests that only need
-- answers to incoming requests (test/sipp/t_message_in.py, t_options.py,
-- t_malformed.py).
--
-- MESSAGE: logs the body byte-exact (quoted, and as hex so that the test
-- can compare every byte), then answers from what the request asks for:
--   X-Want-Code: NNN [with X-Want-Reason: text] -> that code
--   a body containing "reject"                  -> 488
--   anything else                               -> nothing returned: 200

local function hex(s)
  return (s:gsub(".", function(c) return string.format("%02x", c:byte()) end))
end

sip.on_incoming_message(function(msg)
  local body = msg.body
  sip.log.info("message", {
    call_id = msg.call_id,
    ctype = msg.content_type,
    bytes = #body,
    body = body,
    hex = hex(body),
  })

  local want = msg:header("X-Want-Code")
  if want then
    return tonumber(want), msg:header("X-Want-Reason")
  end
  if body:find("reject", 1, true) then
    return 488, "Not Acceptable Here"
  end
end)
