-- test/lifetime/uas.lua: the callee of test/lifetime/t_lifetime.py.
--
-- The user part of the Request-URI (sipp's -s) picks what the incoming
-- call hook does:
--
--   answer      call:ringing(), call:answer(SDP): the whole call is
--               sipp's (ACK, BYE)
--   drop        returns at once: no answer, no reference kept; the
--               caller cancels after the 100 Trying
--   ring-drop   call:ringing(), then returns the same way; the caller
--               cancels after the 180
--
-- Every second a task logs sip.stats() (msg=stats seq=N dialogs= calls=
-- heap_bytes= lua_bytes=), so that the test reads the tables and the
-- heap without sending anything itself (a request of its own would
-- leave a transaction behind for 32 s and skew the heap figures).
--
-- Before each reading the task allocates ~1 MB of short-lived tables.
-- The sandbox has no collectgarbage(), and an idle server allocates
-- next to nothing in Lua, so the incremental collector would otherwise
-- stop half-way and leave call objects the script dropped unfinalized,
-- each still holding its C call: heap_bytes would then depend on where
-- the collector happened to stop. The churn drives it through whole
-- cycles, so that heap_bytes counts only what C itself still holds
-- (a call object that can never be collected still shows up).

local SDP = table.concat({
  "v=0",
  "o=sipstack 1 1 IN IP4 127.0.0.1",
  "s=lifetime",
  "c=IN IP4 127.0.0.1",
  "t=0 0",
  "m=audio 40000 RTP/AVP 0",
  "a=rtpmap:0 PCMU/8000",
  "",
}, "\r\n")

local function user(uri)
  return (uri or ""):match("^sips?:([^@;>]+)@") or ""
end

sip.on_incoming_call(function(call)
  local case = user(call.to)
  if case == "drop" then
    return
  elseif case == "ring-drop" then
    assert(call:ringing())
    return
  end
  assert(call:ringing())
  assert(call:answer(SDP, "application/sdp"))
end)

local function churn()
  local keep = {}
  for i = 1, 16384 do
    keep[i % 64 + 1] = { i, i }     -- escapes: never optimised away
  end
  return keep[1]
end

sip.spawn(function()
  local seq = 0
  while true do
    seq = seq + 1
    churn()
    local s = sip.stats()
    sip.log.info("stats", {
      seq = seq,
      dialogs = string.format("%d", s.dialogs),
      calls = string.format("%d", s.calls),
      heap_bytes = string.format("%d", s.heap_bytes),
      lua_bytes = string.format("%d", s.lua_bytes),
      requests = string.format("%d", s.requests),
    })
    sip.sleep(1)
  end
end)
