-- test/calls/caller.lua: sipstack places calls to sipp (test/calls/
-- t_uac.py). A MESSAGE triggers each call (answered 202 at once):
--
--   X-Call-To: URI        whom to call (sipp, running a uas-*.xml)
--   X-Case: NAME          a label, logged as case= on every line
--   X-Hangup-After: S     once answered, hang up after S seconds
--                         (absent: wait for the peer to end the call)
--   X-Cancel-On-Ringing: 1  call:cancel() from on_ringing
--   X-Hold-After: S       once answered, call:hold() after S seconds
--                         (logged msg=hold), before X-Hangup-After
--   X-Keep-Fork: S        set call.on_fork: keep another fork's 2xx as
--                         a call of its own (logged msg=fork, and its
--                         callbacks as fork_*), hang it up after S s
--   X-Fork-Raise: 1       ... but on_fork raises an error instead
--
-- The call is placed from a task of its own (sip.spawn) with an SDP
-- offer (OFFER below, checked byte-exact by t_uac.py); every callback
-- logs a line (msg=ringing, answered with the body in hex, rejected,
-- terminated, cb_state), wait_answer's result is logged as msg=waited,
-- and call:history() at the end as msg=history lines.
--
-- A MESSAGE with the body "stats" is answered 200 with
-- "dialogs=N calls=N" (sip.stats()) instead.

local OFFER = table.concat({
  "v=0",
  "o=sipstack 7 7 IN IP4 127.0.0.1",
  "s=sipstack caller \226\156\147",     -- U+2713, UTF-8
  "c=IN IP4 127.0.0.1",
  "t=0 0",
  "m=audio 41000 RTP/AVP 8",
  "a=rtpmap:8 PCMA/8000",
  "a=sendrecv",
  "",
}, "\r\n")

local function hex(s)
  return (s:gsub(".", function(c) return string.format("%02x", c:byte()) end))
end

-- log(msg, fields): a script line with case= and call_id= added
local function logger(case, call)
  return function(msg, fields)
    fields = fields or {}
    fields.case = case
    fields.call_id = call.id
    sip.log.info(msg, fields)
  end
end

local function keep_fork(case, call, after, raise)
  call.on_fork = function(fork, body, ct)
    local log = logger(case, fork)
    log("fork", { ctype = ct, body_hex = hex(body), state = fork.state,
                  direction = fork.direction,
                  answered = tostring(fork:is_answered()),
                  same = tostring(fork == call) })
    fork.on_terminated = function(reason)
      log("fork_terminated", { reason = reason, state = fork.state })
    end
    if raise then
      error("boom: on_fork raised") -- LINE:fork-raise
    end
    sip.sleep(after)
    local ok, e = fork:hangup()
    log("fork_hangup", { ok = tostring(ok), err = tostring(e) })
  end
end

local function place(case, to, hangup_after, cancel_on_ringing, fork_after,
                     hold_after, fork_raise)
  local call, err = sip.call(to, OFFER, "application/sdp")
  if not call then
    sip.log.warn("call_failed", { case = case, err = err })
    return
  end

  local log = logger(case, call)

  log("placed", { direction = call.direction, state = call.state,
                  from_uri = call.from, to_uri = call.to })
  if fork_after then
    keep_fork(case, call, fork_after, fork_raise)
  end

  call.on_state_change = function(from, to_)
    log("cb_state", { old = from, new = to_ })
  end
  call.on_ringing = function(code)
    log("ringing", { code = code, state = call.state })
    if cancel_on_ringing then
      local ok, e = call:cancel()
      log("cancel", { ok = tostring(ok), err = tostring(e) })
    end
  end
  call.on_answered = function(body, ct)
    log("answered", { ctype = ct, bytes = #body, body_hex = hex(body),
                      state = call.state,
                      answered = tostring(call:is_answered()) })
  end
  call.on_rejected = function(code, reason)
    log("rejected", { code = code, reason = reason, state = call.state })
  end
  call.on_terminated = function(reason)
    log("terminated", { reason = reason, end_reason = call.end_reason,
                        state = call.state,
                        terminated = tostring(call:is_terminated()) })
    for i, e in ipairs(call:history()) do
      log("history", { i = i, old = e.from, new = e.to, event = e.event,
                       ts = string.format("%.6f", e.ts) })
    end
  end

  local ok, werr, code = call:wait_answer(20)
  log("waited", { ok = tostring(ok), err = tostring(werr),
                  code = tostring(code), state = call.state })

  if ok and hold_after then
    sip.sleep(hold_after)
    -- true, code  or  nil, err [, code]
    local hok, a, b = call:hold()
    local herr, hcode = nil, a
    if not hok then herr, hcode = a, b end
    log("hold", { ok = tostring(hok), err = tostring(herr),
                  code = tostring(hcode), state = call.state,
                  local_hold = tostring(call:is_on_hold()) })
  end

  if ok and hangup_after then
    sip.sleep(hangup_after)
    local hok, herr = call:hangup()
    log("hangup", { ok = tostring(hok), err = tostring(herr),
                    state = call.state })
  end
end

sip.on_incoming_message(function(msg)
  if msg.body == "stats" then
    local s = sip.stats()
    msg:reply(200, "OK", nil, string.format("dialogs=%d calls=%d",
                                            s.dialogs, s.calls),
              "text/plain")
    return
  end
  local to = msg:header("X-Call-To")
  if not to then
    return 400, "X-Call-To Missing"
  end
  local case = msg:header("X-Case") or "?"
  local hangup_after = tonumber(msg:header("X-Hangup-After") or "")
  local cancel = msg:header("X-Cancel-On-Ringing") == "1"
  local fork_after = tonumber(msg:header("X-Keep-Fork") or "")
  local hold_after = tonumber(msg:header("X-Hold-After") or "")
  local fork_raise = msg:header("X-Fork-Raise") == "1"
  sip.spawn(place, case, to, hangup_after, cancel, fork_after, hold_after,
            fork_raise)
  return 202, "Accepted"
end)
