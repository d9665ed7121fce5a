-- test/events/events.lua: subscriptions both ways, for test/events/
-- t_events.py.
--
-- Notifier: sip.on_subscribe("presence"): the user part of the
-- Request-URI tells what to do:
--   reject   the hook returns 403 "Not You"
--   decline  the hook returns nothing and answers nothing (-> 603)
--   raise    the hook raises (-> 500, ev=hook_error)
--   other    accept (Expires as asked, 2..600 s) and NOTIFY active with
--            <n>1</n>; on a refresh the core NOTIFYs the same state;
--            "bump" sends <n>2</n> from on_refresh instead
-- Every step logs a line with case=<user>.
--
-- Subscriber: a MESSAGE (answered 202) with
--   X-Subscribe-To: URI      whom to subscribe to (the test's notifier)
--   X-Case: NAME             logged as case=
--   X-Expires: S             asked for (default 60)
--   X-Unsubscribe-After: S   once subscribed, sub:unsubscribe() after S
--   X-Password: P            credentials user "alice", password P
-- logs subscribe_failed / subscribed / notify / sub_end lines. A MESSAGE
-- with the body "stats" gets "subscriptions=N dialogs=N" back.

sip.on_subscribe("presence", function(sub)
  local case = sub.to:match("^sips?:([^@]+)@") or "?"
  sip.log.info("subscribe", { case = case, from = sub.from,
                              event = sub.event, id = sub.id,
                              accept = sub:header("Accept") })
  if case == "reject" then return 403, "Not You" end
  if case == "raise" then error("raised in on_subscribe") end
  if case == "decline" then return end
  sub.on_refresh = function(expires)
    sip.log.info("refresh", { case = case, expires = expires })
    if case == "bump" then
      sub:notify("active", "<n>2</n>", "application/test+xml")
    end
  end
  sub.on_end = function(reason)
    sip.log.info("sub_end", { case = case, reason = reason })
  end
  assert(sub:accept())
  assert(sub:notify("active", "<n>1</n>", "application/test+xml"))
  sip.log.info("accepted", { case = case, expires = sub.expires,
                             state = sub.state, role = sub.role })
end, { min_expires = 2, max_expires = 600 })

local function subscribe(case, to, expires, unsub_after, password)
  local sub, err, code, reason = sip.subscribe(to, "presence", {
    expires = expires,
    accept = "application/test+xml",
    user = password and "alice",
    password = password,
    on_notify = function(state, body, ct, why, fork)
      sip.log.info("notify", { case = case, state = state, body = body,
                               ct = ct, reason = why, fork = fork })
    end,
  })
  if not sub then
    sip.log.info("subscribe_failed", { case = case, err = err,
                                       code = code, reason = reason })
    return
  end
  sip.log.info("subscribed", { case = case, state = sub.state,
                               expires = sub.expires, body = sub.body,
                               role = sub.role })
  sub.on_end = function(why)
    sip.log.info("sub_end", { case = case, reason = why })
  end
  if unsub_after then
    sip.sleep(unsub_after)
    local ok, e = sub:unsubscribe()
    sip.log.info("unsubscribe", { case = case, ok = tostring(ok),
                                  err = e })
  end
end

sip.on_incoming_message(function(msg)
  if msg.body == "stats" then
    local s = sip.stats()
    msg:reply(200, "OK", nil, string.format("subscriptions=%d dialogs=%d",
                                            s.subscriptions, s.dialogs),
              "text/plain")
    return
  end
  local to = msg:header("X-Subscribe-To")
  if not to then return 400, "X-Subscribe-To Missing" end
  sip.spawn(subscribe, msg:header("X-Case") or "?", to,
            tonumber(msg:header("X-Expires") or "60"),
            tonumber(msg:header("X-Unsubscribe-After") or ""),
            msg:header("X-Password"))
  return 202, "Accepted"
end)
