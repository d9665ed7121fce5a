-- bench/scripts/rc_registrar_auth.lua: bench copy of scripts/registrar.lua
-- for bench/reg_calls.py, auth ON (digest MD5, users added beforehand
-- with `sipstack user add` into rc_bench.db). REGISTER handled in C, a 200
-- only once the binding is committed. The database path is relative:
-- reg_calls.py starts sipstack in a fresh temp directory per step, with a
-- copy of the prepared user database.

sip.configure{ user_agent = "sipstack-bench-registrar" }

sip.registrar.configure{
  database    = "rc_bench.db",
  auth        = true,
  realm       = "sipstack",
  algorithms  = { "MD5" },
  min_expires = 60,
  max_expires = 86400,
}
