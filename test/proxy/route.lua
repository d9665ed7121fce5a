-- test/proxy/route.lua: routing for the proxy's wire tests (t_proxy.py)
--
-- A registrar in memory without auth, and a proxy whose routing the
-- Request-URI's user picks: "boom" raises, "loop" is sent back to us,
-- "relay" goes on to its Request-URI (req:relay),
-- "serial*" tries the bindings one after the other ("*timeout*" with a
-- 2 s branch timeout), "qmode*" by q (equal q at once), "retry" tries the bindings of "retryvm" when its
-- own fail, anything else rings every binding at once.
-- Each attempt's outcome is logged (msg=proxied case=<user>), and each
-- branch's as it ends (msg=branch, from on_branch).

sip.registrar.configure{
  store       = "memory",
  auth        = false,
  min_expires = 60,
  max_expires = 3600,
}

sip.proxy.configure{ record_route = true, timer_c = 3 }   -- Timer C short for proxy-timer-c

local function user_of(uri)
  return uri:match("^sips?:([^@;:]+)@")
end

local function route(req)
  local user = user_of(req.uri)
  if not user then return end

  if user == "boom" then
    error("routing failed on purpose")
  end

  if user == "relay" then
    -- we are the caller's outbound proxy: on to the Request-URI
    local res = req:relay{ headers = { ["X-Relayed"] = "yes" } }
    sip.log.info("relayed", { case = user, code = res.code })
    return
  end

  local targets
  if user == "loop" then
    targets = { req.uri }                -- back to ourselves
  else
    targets = sip.location.lookup("sip:" .. user .. "@127.0.0.1")
    if #targets == 0 then return 404 end
  end

  local res = req:proxy{
    targets = targets,
    mode = user:match("^serial") and "serial" or
           user:match("^qmode") and "q" or "parallel",
    branch_timeout = user:match("timeout") and 2 or nil,
    on_branch = function(b)
      sip.log.info("branch", { case = user, code = b.code,
                               made_up = b.made_up, attempt = b.attempt })
    end,
  }
  if user == "retry" and res.code >= 300 and not res.answered then
    -- voicemail on failure: a second attempt, the best answer of which
    -- goes upstream
    sip.log.info("retrying", { case = user, code = res.code })
    res = req:proxy{ targets = sip.location.lookup("sip:retryvm@127.0.0.1") }
  end
  local codes = {}
  for i, b in ipairs(res.branches) do
    codes[i] = b.code .. (b.made_up and "*" or "") ..
               (b.cancelled and "c" or "")
  end
  sip.log.info("proxied", { case = user, code = res.code,
                            answered = res.answered,
                            cancelled = res.cancelled,
                            branches = table.concat(codes, ",") })
end

-- every request no other part takes; MESSAGE through its own hook (whose
-- plain return must still forward the proxy's answer, not 200)
sip.on_request(route)
sip.on_incoming_message(route)
