-- scripts/registrar.lua: a ready SIP registrar (RFC 3261 §10)
--
-- Bindings are kept in an SQLite database (WAL, a 200 is sent only once
-- its binding is committed), users authenticate with digest (RFC 7616).
-- Add users with:   sipstack user add alice secret --db sipstack.db
--
-- Switches (environment-free on purpose: edit them here):
local DATABASE = "sipstack.db"   -- bindings and users
local AUTH     = true            -- false: anybody may register any AOR

sip.configure{ user_agent = "sipstack-registrar" }

sip.registrar.configure{
  database    = DATABASE,
  auth        = AUTH,
  realm       = "sipstack",
  -- libre/baresip 1.x clients (and sipp) only do MD5 and give up on a
  -- challenge list that starts with SHA-256; offer SHA-256 too with
  --   algorithms = { "SHA-256", "MD5" }
  -- when every phone you serve supports RFC 8760.
  algorithms  = { "MD5" },
  min_expires = 60,
  max_expires = 86400,
}

-- No on_register hook: REGISTER is handled in C (auth, then the store),
-- the fastest path. To decide in Lua instead, e.g. to restrict domains:
--
-- sip.on_register(function(req)
--   if not req.to:match("@example%.com$") then return 403 end
--   local code, err = sip.registrar.save(req)
-- end)

-- MESSAGE (RFC 3428) to a registered user: relayed to its phones, best q
-- first, until one answers 2xx; that answer (or the last failure, 480 when
-- none is reachable) goes back to the sender. A browser registered over
-- WebSocket (RFC 7118) is reached over the connection it registered from,
-- its binding's `received`: its Contact (`...@xxx.invalid`) resolves nowhere.
local function relay(msg, bindings)
  local code, reason = 480, "Temporarily Unavailable"
  for _, b in ipairs(bindings) do
    -- (a Contact that is the Request-URI itself would come back here)
    if b.uri ~= msg.uri then
      local ws = b.received and b.received:match(";transport=wss?$")
      local c, r = sip.request("MESSAGE", b.uri, {
        body = msg.body, content_type = msg.content_type or "text/plain",
        from = msg.from, next_hop = ws and b.received or nil, timeout = 10 })
      if c and c >= 200 and c < 300 then return c, r end
      if c then code, reason = c, r end
    end
  end
  return code, reason
end

-- Any other MESSAGE: logged and answered 200. Ask where a user is
-- registered with body "where sip:alice@example.com" -> answered with the
-- contacts
sip.on_incoming_message(function(msg)
  local aor = msg.body:match("^where%s+(%S+)")
  if not aor then
    local bindings = sip.location.lookup(msg.uri)
    if #bindings == 0 then bindings = sip.location.lookup(msg.to) end
    if #bindings > 0 then
      local code, reason = relay(msg, bindings)
      sip.log.info("message relayed", { to = msg.to, code = code })
      msg:reply(code, reason)
      return
    end
    sip.log.info("message", { from = msg.from, to = msg.to, bytes = #msg.body })
    return 200
  end
  local lines = {}
  for _, b in ipairs(sip.location.lookup(aor)) do
    lines[#lines + 1] = string.format("%s;expires=%d;q=%.3f", b.uri, b.expires, b.q)
  end
  msg:reply(200, "OK", nil, table.concat(lines, "\n"), "text/plain")
end)
