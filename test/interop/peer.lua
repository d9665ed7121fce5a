-- test/interop/peer.lua: sipstack's side of test/interop/t_baresip.py,
-- calls with baresip in both directions.
--
-- Incoming: baresip dials sip:MODE-PORT@<us>. The hook rings, answers
-- 200 ms later with a PCMU SDP whose media address is 127.0.0.1:PORT (a
-- socket of the test that counts baresip's RTP), and then
--   MODE = hangup   hangs up HOLD seconds after the answer (BYE from us)
--   MODE = wait     waits: baresip hangs up
--
-- Outgoing: a MESSAGE with the body "call URI MODE PORT" (from the
-- test) makes the script sip.call(URI) with the same kind of SDP offer,
-- wait for the answer (call:wait_answer) and then hang up HOLD seconds
-- later (MODE = hangup) or wait for baresip's BYE (MODE = wait). The
-- MESSAGE itself is answered 200 at once (400 when the body is not such
-- a command). A MESSAGE "stats" is answered 200 with the body
-- "dialogs=N calls=N" from sip.stats().
--
-- Logged (mod=script ev=log, case=in-MODE or out-MODE):
--   msg=incoming   offer_pcmu= (the offer lists PCMU), from_uri=
--   msg=answered   ok= err= code= answer_pcmu= (outgoing only)
--   msg=hangup     ok= err= (when we hang up)
--   msg=terminated reason= end_reason= state=  (on_terminated)

local HOLD = 2          -- seconds between the answer and our BYE

local function sdp(port)
  return table.concat({
    "v=0",
    "o=sipstack 7 7 IN IP4 127.0.0.1",
    "s=sipstack interop",
    "c=IN IP4 127.0.0.1",
    "t=0 0",
    "m=audio " .. port .. " RTP/AVP 0",
    "a=rtpmap:0 PCMU/8000",
    "a=ptime:20",
    "a=sendrecv",
    "",
  }, "\r\n")
end

-- the SDP offers or accepts PCMU (payload type 0) on its audio line
local function has_pcmu(body)
  local fmts = (body or ""):match("m=audio %d+ RTP/AVP ([%d ]+)")
  if not fmts then
    return false
  end
  for pt in fmts:gmatch("%d+") do
    if pt == "0" then
      return true
    end
  end
  return false
end

local function user(uri)
  return (uri or ""):match("^sips?:([^@;>]+)@") or ""
end

local function log(msg, case, call, fields)
  fields = fields or {}
  fields.case = case
  fields.call_id = call and call.id
  sip.log.info(msg, fields)
end

local function watch(call, case)
  call.on_terminated = function(reason)
    log("terminated", case, call, { reason = reason,
                                    end_reason = call.end_reason,
                                    state = call.state })
  end
end

local function finish(call, case, mode)
  if mode == "hangup" then
    sip.sleep(HOLD)
    local ok, err = call:hangup()
    log("hangup", case, call, { ok = tostring(ok), err = tostring(err) })
  end
end

sip.on_incoming_call(function(call)
  local mode, port = user(call.to):match("^(%a+)%-(%d+)$")
  if not mode then
    return 404
  end
  local case = "in-" .. mode
  watch(call, case)
  log("incoming", case, call, { from_uri = call.from,
                                offer_pcmu = tostring(has_pcmu(call.body)) })
  assert(call:ringing())
  sip.sleep(0.2)
  assert(call:answer(sdp(port), "application/sdp"))
  finish(call, case, mode)
end)

local function outgoing(uri, mode, port)
  local case = "out-" .. mode
  local call, err = sip.call(uri, sdp(port), "application/sdp")
  if not call then
    log("answered", case, nil, { ok = "false", err = tostring(err) })
    return
  end
  watch(call, case)
  local ok, why, code = call:wait_answer(10)
  log("answered", case, call, { ok = tostring(ok), err = tostring(why),
                                code = tostring(code),
                                answer_pcmu = tostring(has_pcmu(call.body)) })
  if ok then
    finish(call, case, mode)
  else
    call:hangup()
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
  local uri, mode, port = msg.body:match("^call (%S+) (%a+) (%d+)$")
  if not uri then
    return 400, "Bad Command"
  end
  sip.spawn(outgoing, uri, mode, port)
end)
