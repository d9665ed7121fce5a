-- test/scripts/bad-runtime.lua: compiles, then fails while it loads
-- (test/sipp/t_script_errors.py expects the error on the LINE:runtime
-- line).

sip.on_incoming_message(function(msg)
  return 200
end)

local settings = nil
sip.configure{ user_agent = settings.user_agent }  -- LINE:runtime
