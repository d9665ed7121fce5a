-- test/registrar/reg-memory.lua: the registrar without authentication
-- and with its bindings in memory only, for the wire tests whose point
-- is RFC 3261 §10.3 rather than auth or the disk (t_semantics.py
-- --store memory). REGISTER is handled in C (no on_register hook).
-- max_expires is lowered to 7200 so that clamping shows.

sip.registrar.configure{
  store       = "memory",
  auth        = false,
  min_expires = 60,
  max_expires = 7200,
}

require("where")()
