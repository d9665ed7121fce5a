-- test/scripts/hook-error.lua: a MESSAGE hook that raises on demand
-- (test/sipp/t_hook_error.py). The test finds the expected line numbers
-- through the LINE: markers, so keep each marker on the raising line.
--
-- body contains       raises
--   boom              error("...") in the hook
--   nil-index         indexing nil in the hook
--   deep              indexing nil in a helper the hook calls
--   after-sleep       error("...") after sip.sleep resumed the hook
-- anything else: nothing returned -> 200

local function helper(t)
  return t.missing.field  -- LINE:deep
end

sip.on_incoming_message(function(msg)
  local body = msg.body
  if body:find("boom", 1, true) then
    error("boom requested by the test")  -- LINE:boom
  end
  if body:find("nil-index", 1, true) then
    local t = nil
    return t.field  -- LINE:nil-index
  end
  if body:find("deep", 1, true) then
    return helper({})
  end
  if body:find("after-sleep", 1, true) then
    sip.sleep(0.05)
    error("raised after a sleep")  -- LINE:after-sleep
  end
  sip.log.info("fine", { body = body })
end)
