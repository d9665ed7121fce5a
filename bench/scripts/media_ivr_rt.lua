-- bench/scripts/media_ivr_rt.lua: bench/scripts/media_ivr.lua with the
-- media thread at a real-time priority (sip.media{realtime = true})
sip.media{ realtime = true }

function on_incoming_call(call)
  if not call:answer{ media = true } then return end
  repeat
    local _, err = call:play("long.wav")
  until err
end
