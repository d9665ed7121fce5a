-- test/registrar/reg-guard.lua: digest auth with the guessing limits of
-- t_guard.py (each @KEY@ replaced by the test), and a MESSAGE hook that
-- shows the guard to the test:
--   "banned"        -> 200, one line per ban: "<address> <remaining>
--                      <failures> <bans>" (sip.auth.banned())
--   "unban <addr>"  -> 200 if it was banned, else 404 (sip.auth.unban)

sip.registrar.configure{
  database   = "@DATABASE@",
  auth       = true,
  realm      = "sipstack",
  algorithms = { "MD5" },
  guard      = {
    source_failures = @SRC@,
    window          = 600,
    ban_time        = @BAN@,
    user_failures   = @USER@,
    user_delay_max  = @DELAY@,
  },
}

sip.on_incoming_message(function(msg)
  if msg.body == "banned" then
    local out = {}
    for _, b in ipairs(sip.auth.banned()) do
      out[#out + 1] = string.format("%s %d %d %d", b.address, b.remaining,
                                    b.failures, b.bans)
    end
    msg:reply(200, "OK", nil, table.concat(out, "\n"), "text/plain")
    return
  end
  local addr = msg.body:match("^unban%s+(%S+)$")
  if addr then
    local ok, err = sip.auth.unban(addr)
    if ok then return 200 end
    return 404, err
  end
  return 400, "Ask: banned | unban <address>"
end)
