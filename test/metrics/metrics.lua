-- test/metrics/metrics.lua: the script of the metrics wire test
-- (test/metrics/t_metrics.py fills in @DATABASE@)
--
-- A registrar with digest auth (REGISTER in C), a MESSAGE hook that
-- counts in a script counter and a gauge and fails on the body "boom",
-- a notifier of the package "presence" that accepts every SUBSCRIBE,
-- and, at every load, the misuses of sip.metrics that must raise,
-- logged as one line `ev=log msg=metrics_checks` (each field "raised"
-- or what went wrong).

sip.registrar.configure{
  database    = "@DATABASE@",
  auth        = true,
  realm       = "sipstack",
  algorithms  = { "MD5" },
  min_expires = 60,
}

local seen = sip.metrics.counter("messages", "MESSAGE requests the script saw")
local last = sip.metrics.gauge("last_body_bytes", "Bytes of the last MESSAGE body")

local function raised(fn, ...)
  local ok, err = pcall(fn, ...)
  if ok then return "accepted" end
  -- ours: an argument error or a sip.metrics message, not any failure
  if err:match("bad argument") or err:match("sip%.metrics") then
    return "raised"
  end
  return "raised: " .. err
end

local checks = {
  bad_name    = raised(sip.metrics.counter, "bad name", "h"),
  digit_first = raised(sip.metrics.gauge, "1x", "h"),
  long_name   = raised(sip.metrics.gauge, string.rep("a", 65), "h"),
  no_help     = raised(sip.metrics.counter, "x", nil),
  empty_help  = raised(sip.metrics.counter, "x", ""),
  -- the counter "messages" is exposed as sipstack_script_messages_total
  type_clash  = raised(sip.metrics.gauge, "messages_total", "h"),
  negative    = raised(function() seen:inc(-1) end),
  not_finite  = raised(function() last:set(1/0) end),
  wrong_self  = raised(function() seen.inc(last) end),
}
-- the same name again is the same metric (values are kept)
local again = sip.metrics.counter("messages_total", "MESSAGE requests the script saw")
checks.same = again:name() == seen:name() and again:value() == seen:value()
  and "same" or "different"
checks.name = seen:name()
sip.log.info("metrics_checks", checks)

sip.on_incoming_message(function(msg)
  seen:inc()
  last:set(#msg.body)
  if msg.body == "boom" then
    error("boom on purpose")
  end
  return 200
end)

sip.on_subscribe("presence", function(sub)
  sub:accept(600)
  sub:notify("active")
end)
