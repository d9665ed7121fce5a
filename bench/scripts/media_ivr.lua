-- bench/scripts/media_ivr.lua: every call answered with media and a
-- long prompt played again and again until the call ends
-- (bench/media_bench.py; the prompt is in the server's directory)
function on_incoming_call(call)
  if not call:answer{ media = true } then return end
  repeat
    local _, err = call:play("long.wav")
  until err
end
