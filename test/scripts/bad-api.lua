-- test/scripts/bad-api.lua: calls sip.sleep at load time, which the API
-- forbids (it only yields inside hooks): loading fails, and the error
-- names the LINE:api line (test/sipp/t_script_errors.py).

sip.on_incoming_message(function(msg)
  return 200
end)

sip.sleep(0.1)  -- LINE:api
