-- test/redis/reg-redis.lua: the registrar without authentication, its
-- bindings in Redis (@REDIS@: redis://127.0.0.1:PORT/0, filled in by
-- redislib.py), for the wire tests of test/redis/. REGISTER is handled
-- in C (no on_register hook). min 60 and max_expires 7200 as in
-- test/registrar/reg-memory.lua, so that the steps of
-- test/registrar/t_semantics.py run unchanged against it.
--
-- MESSAGE asks the location (read from Redis, so a node sees what
-- another node registered):
--   "where <aor>"  200, one line per binding, best q first, in the
--                  format of test/registrar/where.lua (reglib.where):
--                  <uri>;expires=<s left>;q=<q>
--   "node <aor>"   200, one line per binding: <uri> <node> <received>
--   "relay <aor>"  a MESSAGE "relayed" sent by this node to every
--                  binding (sip.send_message, the way a request reaches
--                  a registered user today), then 200, one line per
--                  binding: <uri> <code of its answer or the error>
-- A lookup that fails (Redis down) is answered 503 with the error as
-- the reason phrase.

sip.registrar.configure{
  store       = "@REDIS@",
  auth        = false,
  min_expires = 60,
  max_expires = 7200,
}

sip.on_incoming_message(function(msg)
  local what, aor = msg.body:match("^(%a+)%s+(%S+)")
  if what ~= "where" and what ~= "node" and what ~= "relay" then
    return 400, "Ask: where, node or relay <aor>"
  end
  local bindings, err = sip.location.lookup(aor)
  if not bindings then
    return 503, "Lookup failed: " .. err
  end
  local out = {}
  for _, b in ipairs(bindings) do
    if what == "relay" then
      local code, why = sip.send_message(b.uri, "text/plain", "relayed")
      out[#out + 1] = string.format("%s %s", b.uri, code or why)
    elseif what == "where" then
      out[#out + 1] = string.format("%s;expires=%d;q=%.3f", b.uri,
                                    b.expires, b.q)
    else
      out[#out + 1] = string.format("%s %s %s", b.uri, b.node or "-",
                                    b.received or "-")
    end
  end
  msg:reply(200, "OK", nil, table.concat(out, "\n"), "text/plain")
end)
