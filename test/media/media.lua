-- test/media/media.lua: sipstack as an IVR for the media wire tests
-- (test/media/t_media.py). The user part of the Request-URI picks the
-- case; the prompts are WAVs the test wrote into the server's working
-- directory (tone1000.wav, tone440.wav, long.wav, stereo.wav,
-- rate16k.wav, text.wav). Every result is logged as
-- mod=script msg=<what> case=<case> and key=value fields.

local function s(v) return v == nil and "nil" or tostring(v) end

local function log(msg, case, f)
  f = f or {}
  f.case = case
  sip.log.info(msg, f)
end

local cases = {}

-- a prompt of 1000 Hz then one of 440 Hz, then hang up
function cases.play(call, case)
  local d, err = call:play({ "tone1000.wav", "tone440.wav" })
  log("played", case, { digit = s(d), err = s(err) })
  sip.sleep(0.3)
  call:hangup()
end

-- an interruptible prompt, then three digits ended by #
function cases.dtmf(call, case)
  local d, err = call:play("long.wav", { interruptible = true })
  log("interrupted", case, { digit = s(d), err = s(err) })
  local digits, e2 = call:collect{ max = 4, timeout = 8, inter_digit = 4,
                                   terminator = "#" }
  log("collected", case, { digits = s(digits), err = s(e2) })
  call:hangup()
end

-- sipp plays RFC 4733 events (its dtmf_2833_*.pcap)
function cases.sipp(call, case)
  local digits, err = call:collect{ max = 2, timeout = 10, inter_digit = 5 }
  log("collected", case, { digits = s(digits), err = s(err) })
  call:hangup()
end

-- INFO digits: dtmf-relay and dtmf
function cases.info(call, case)
  local digits, err = call:collect{ max = 3, timeout = 8 }
  log("collected", case, { digits = s(digits), err = s(err) })
  call:hangup()
end

-- the peer hangs up while we play / collect / record
cases["hangup-play"] = function(call, case)
  local d, err = call:play("long.wav")
  log("play_ended", case, { digit = s(d), err = s(err) })
  local d2, err2 = call:play("long.wav")
  log("play_after", case, { digit = s(d2), err = s(err2) })
end

cases["hangup-collect"] = function(call, case)
  local d, err = call:collect{ max = 5, timeout = 30 }
  log("collect_ended", case, { digits = s(d), err = s(err) })
end

cases["hangup-record"] = function(call, case)
  local d, err = call:record("hangup-rec.wav", { max = 30 })
  log("record_ended", case, { duration = s(d), err = s(err) })
end

-- the peer holds and resumes us while we play
function cases.hold(call, case)
  local d, err = call:play("long.wav")
  log("played", case, { digit = s(d), err = s(err) })
  call:hangup()
end

-- record what the peer sends (2 s at most)
function cases.record(call, case)
  local d, err = call:record("rec.wav", { max = 2, beep = false })
  log("recorded", case, { duration = s(d), err = s(err) })
  call:hangup()
end

-- after a beep; ended by 1 s of silence (5 s at most)
cases["record-silence"] = function(call, case)
  local d, err = call:record("rec-silence.wav", { max = 5, silence = 1,
                                                  beep = true })
  log("recorded", case, { duration = s(d), err = s(err) })
  call:hangup()
end

-- send digits (RFC 4733, or INFO when no telephone-event)
function cases.send(call, case)
  sip.sleep(0.2)
  local ok, err = call:send_dtmf("12#")
  log("sent", case, { ok = s(ok), err = s(err) })
  sip.sleep(0.3)
  call:hangup()
end

-- prompts that are not: the errors name the file
function cases.bad(call, case)
  for _, f in ipairs({ "missing.wav", "stereo.wav", "rate16k.wav",
                       "text.wav" }) do
    local d, err = call:play(f)
    log("bad_prompt", case, { file = f, digit = s(d), err = s(err) })
  end
  call:hangup()
end

function on_incoming_call(call)
  local case = call.request_uri:match("^sips?:([^@;]+)@") or "?"
  call.on_dtmf = function(digit, duration)
    log("on_dtmf", case, { digit = digit, duration = s(duration) })
  end
  if case == "info-plain" then
    -- no media: INFO digits reach on_dtmf and collect all the same
    assert(call:answer(table.concat({ "v=0", "o=- 1 1 IN IP4 127.0.0.1",
      "s=-", "c=IN IP4 127.0.0.1", "t=0 0", "m=audio 9 RTP/AVP 0",
      "a=inactive", "" }, "\r\n")))
    local digits, err = call:collect{ max = 2, timeout = 8 }
    log("collected", case, { digits = s(digits), err = s(err) })
    call:hangup()
    return
  end
  local ok, err = call:answer{ media = true }
  local m = call:media()
  log("answered", case, { ok = s(ok), err = s(err),
                          port = m and m.port, codec = m and m.codec,
                          te = m and s(m.telephone_event) })
  if not ok then return end
  local f = cases[case]
  if f then f(call, case) end
end

-- an outgoing call with the server's media: a MESSAGE whose body is a
-- URI makes the script call it with {media = true}, play a prompt,
-- send digits, hang up
sip.on_incoming_message(function(req)
  local uri = req.body
  req:reply(200)
  local call, err = sip.call(uri, nil, nil, { media = true })
  if not call then log("out_failed", "out", { err = s(err) }) return end
  local ok, e = call:wait_answer(5)
  local m = call:media()
  log("out_answered", "out", { ok = s(ok), err = s(e),
                               codec = m and m.codec,
                               te = m and s(m.telephone_event) })
  if not ok then return end
  local d, perr = call:play("tone440.wav")
  log("out_played", "out", { digit = s(d), err = s(perr) })
  local sent, serr = call:send_dtmf("9")
  log("out_sent", "out", { ok = s(sent), err = s(serr) })
  call:hangup()
end)
