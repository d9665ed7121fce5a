-- bench/scripts/rc_registrar.lua: bench copy of scripts/registrar.lua
-- for bench/reg_calls.py, auth OFF. REGISTER is handled in C (no
-- on_register hook) and a 200 goes out only once the binding is committed
-- to SQLite (WAL, synchronous=FULL). The database path is relative:
-- reg_calls.py starts sipstack in a fresh temp directory per step.

sip.configure{ user_agent = "sipstack-bench-registrar" }

sip.registrar.configure{
  database    = "rc_bench.db",
  auth        = false,
  realm       = "sipstack",
  algorithms  = { "MD5" },
  min_expires = 60,
  max_expires = 86400,
}
