-- bench/scripts/bench.lua: the script bench/run.sh starts sipstack with.
--
-- No sip.on_request hook, so the C core answers OPTIONS by itself.
-- MESSAGE goes through the Lua hook (one coroutine per request) and is
-- answered 200 without logging, so the benchmark measures the stack and
-- the Lua dispatch, not the logger.

sip.configure{ user_agent = "sipstack-bench" }

sip.on_incoming_message(function(msg)
  return 200
end)
