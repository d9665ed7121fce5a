-- test/scripts/sleep.lua: a hook that waits (test/sipp/t_sleep.py).
-- A MESSAGE whose body is "slow" sleeps 1 s before its answer
-- "200 Slept"; meanwhile the loop must go on answering others.

sip.on_incoming_message(function(msg)
  if msg.body == "slow" then
    sip.log.info("sleeping", { call_id = msg.call_id })
    sip.sleep(1)
    sip.log.info("woke", { call_id = msg.call_id })
    return 200, "Slept"
  end
end)
