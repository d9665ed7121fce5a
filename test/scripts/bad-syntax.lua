-- test/scripts/bad-syntax.lua: does not compile (test/sipp/
-- t_script_errors.py expects the error on the LINE:syntax line).

sip.on_incoming_message(function(msg)
  return 200
end)

local broken = = 1  -- LINE:syntax
