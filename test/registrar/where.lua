-- test/registrar/where.lua: the lookup of the registrar's test scripts,
-- loaded with require "where" (the tests copy it beside the script).
--
-- Installs the MESSAGE hook: a body "where <aor>" is answered 200 with
-- one line per binding of the AOR, best q first, in the format of
-- scripts/registrar.lua (reglib.where() parses both):
--   <uri>;expires=<seconds left>;q=<q with 3 decimals>
-- Any other MESSAGE gets 400.

return function()
  sip.on_incoming_message(function(msg)
    local aor = msg.body:match("^where%s+(%S+)")
    if not aor then return 400, "Ask: where <aor>" end
    local out = {}
    for _, b in ipairs(sip.location.lookup(aor)) do
      out[#out + 1] = string.format("%s;expires=%d;q=%.3f", b.uri,
                                    b.expires, b.q)
    end
    msg:reply(200, "OK", nil, table.concat(out, "\n"), "text/plain")
  end)
end
