-- scripts/ivr.lua: a voice menu, read top to bottom (docs/lua-api.md, Media)
--
--   the caller hears the welcome prompt and presses a digit:
--     1  hears the second prompt
--     2  is transferred (REFER) to OPERATOR
--     3  leaves a message after the beep, in RECORDINGS/<caller>-<time>.wav
--     else (or nothing within 5 s) the menu again, three times at most
--   then good-bye and a clean hangup.
--
-- Run it: sipstack --listen udp:127.0.0.1:5060 scripts/ivr.lua
-- The prompts are tones the build makes (build/scripts/prompts; installed
-- in DATADIR/sipstack/prompts). Yours: any audio file through
--   sox in.mp3 -r 8000 -c 1 -b 16 -e signed-integer welcome.wav

local OPERATOR = "sip:operator@127.0.0.1:5070"
local RECORDINGS = "/tmp"

sip.media{
  prompts = "build/scripts/prompts",   -- relative names are looked up here
  recordings = RECORDINGS,
}

-- one digit: pressed during the prompt, or within 5 s after it;
-- nil, "hangup" when the caller is gone
local function ask(call, prompt)
  local digit, err = call:play(prompt, { interruptible = true })
  if digit or err then return digit, err end
  return call:collect{ max = 1, timeout = 5 }
end

local function leave_message(call)
  local caller = (call.from:match("^sips?:([^@;]+)") or "unknown")
  local file = string.format("%s-%s.wav", caller:gsub("[^%w.-]", "_"),
                             os.date("!%Y%m%dT%H%M%SZ"))
  call:play("record.wav")
  local seconds, err = call:record(file, { max = 60, silence = 3,
                                           beep = true })
  sip.log.info("message", { file = file, seconds = seconds, err = err })
end

function on_incoming_call(call)
  if not call:answer{ media = true } then return end

  for _ = 1, 3 do
    local digit, err = ask(call, "welcome.wav")
    if err == "hangup" then return end

    if digit == "1" then
      call:play("option1.wav")
    elseif digit == "2" then
      call:play("transfer.wav")
      if call:refer(OPERATOR) then
        call:wait_refer(30)
        return call:hangup()
      end
    elseif digit == "3" then
      leave_message(call)
      break
    elseif digit then
      call:play("invalid.wav")
    end
    if call:is_terminated() then return end
  end

  call:play("goodbye.wav")
  call:hangup()
end
