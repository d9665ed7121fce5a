-- test/registration/reg.lua: the script of the registration tests.
-- The test writes params.lua beside its copy of this file:
--   return { registrar = "sip:...", options = { user = ..., ... },
--            dns_servers = {...} or nil,
--            unregister_on_success = bool, reregister = bool }
-- Every on_registration_result is logged as msg=regresult with its
-- arguments, which the tests read.

local P = require "params"

if P.dns_servers then
  sip.configure { dns_servers = P.dns_servers }
end

sip.register(P.registrar, P.options)

local reregistered = false

function on_registration_result(ok, expires, reason, registrar, user, code)
  sip.log.info("regresult", { ok = ok, expires = expires, reason = reason,
                              registrar = registrar, user = user,
                              code = code })
  if P.unregister_on_success and ok and expires > 0 then
    -- the second call finds it being unregistered: true as well
    local r1 = sip.unregister(registrar)
    local r2 = sip.unregister(registrar)
    sip.log.info("unregister", { first = r1, second = r2 })
  elseif P.unregister_on_success and reason == "unregistered" then
    local r, err = sip.unregister(registrar)
    sip.log.info("unregister_again", { ret = tostring(r), err = err })
  elseif P.reregister and ok and expires > 0 and not reregistered then
    -- register again while the unregistration is under way: it starts
    -- once that has ended
    reregistered = true
    local r1 = sip.unregister(registrar)
    local r2 = sip.register(registrar, P.options)
    sip.log.info("reregister", { unregister = r1, register = r2 })
  end
end
