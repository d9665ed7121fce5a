-- bench/scripts/hook_work.lua: a MESSAGE hook that does some work in
-- Lua (patterns, a table, a concat, a short loop), for bench/limits.py:
-- what the JIT compiler being off costs a hook that is not all C calls.
-- JIT=true is replaced by the benchmark for its "jit on" run.
sip.configure{ user_agent = "sipstack-bench", jit = JIT }

sip.on_incoming_message(function(msg)
  local user = msg.from:match("^<?sips?:([^@]+)@") or "?"
  local words = {}
  for w in (msg.body or ""):gmatch("%S+") do words[#words + 1] = w:upper() end
  local s = table.concat(words, ",") .. user
  local n = 0
  for i = 1, 200 do n = n + (i % 7) end
  if #s > 1e6 or n < 0 then return 486 end
  return 200
end)
