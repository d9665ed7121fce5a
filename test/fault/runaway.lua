-- test/fault/runaway.lua: hooks that never end, for t_runaway.py.
-- A MESSAGE's body names the misbehaviour; "ok" is answered 200 at once;
-- an INVITE to sip:spin@... runs a call hook that never ends.
-- The LINE: markers tell the test where each one is stopped.
sip.configure{ hook_budget_ms = 300, lua_memory_max = 8 * 1024 * 1024 }

local function inc(x)
  return x + 1                              -- LINE:inc
end

local runaway = {
  spin = function()                         -- the tightest loop there is
    while true do end                       -- LINE:spin
  end,
  sum = function()                          -- a numeric for, 1e12 turns
    local x = 0
    for i = 1, 1e12 do x = x + i end        -- LINE:sum
    return x
  end,
  calls = function()                        -- a loop calling a function
    local x = 0
    while true do x = inc(x) end            -- LINE:calls
  end,
  concat = function()                       -- string building
    local s = ""
    while true do
      s = s .. "x"                          -- LINE:concat
      if #s > 4096 then s = "" end
    end
  end,
  pcall = function()                        -- catching the stop
    while true do pcall(function() while true do end end) end -- LINE:pcall
  end,
  alloc = function()                        -- allocates without end
    local t = {}                            -- (4 KiB a turn: at the cap
    while true do                           -- in a few ms, even under ASan)
      t[#t + 1] = { #t, string.rep("x", 4096) .. #t } -- LINE:alloc
    end
  end,
  grow = function()                         -- doubling a string
    local s = "x"
    while true do s = s .. s end            -- LINE:grow
  end,
  sleepy = function()                       -- 4 runs of little each
    for _ = 1, 4 do sip.sleep(0.1) end
  end,
}

sip.on_incoming_message(function(msg)
  local f = runaway[msg.body]
  if f then f() end
  return 200
end)

-- an INVITE to sip:spin@... : its call hook never ends
sip.on_incoming_call(function(call)
  if (call.to or ""):match("^<?sips?:spin@") then
    while true do end                       -- LINE:callhook
  end
  call:reject(486)
end)
