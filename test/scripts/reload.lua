-- test/scripts/reload.lua: the script of the SIGHUP tests
-- (test/sipp/t_reload.py). Answers MESSAGE "200 OK v1"; the test runs a
-- copy and rewrites VERSION to tell which generation answered. OPTIONS
-- is answered by the core.

local VERSION = "v1"

sip.on_incoming_message(function(msg)
  return 200, "OK " .. VERSION
end)

sip.log.info("loaded", { version = VERSION })
