-- test/registrar/reg-hook.lua: a registrar deciding in Lua
-- (sip.on_register, t_hook.py): only AORs of example.com may register,
-- anything else is refused with 403 before any challenge; the rest goes
-- to sip.registrar.save(), which authenticates (digest, MD5 for sipp)
-- and stores. Every outcome is logged for the test. @DATABASE@ is
-- replaced by a file in the test's temp dir.

sip.registrar.configure{
  database   = "@DATABASE@",
  auth       = true,
  algorithms = { "MD5" },
}

sip.on_register(function(req)
  local host = req.to:match("^sips?:[^@]*@([^;:>]+)")
  if not host or host:lower() ~= "example.com" then
    sip.log.info("refused", { aor = req.to })
    return 403, "Domain Not Served"
  end
  local code, res = sip.registrar.save(req)
  sip.log.info("saved", { aor = req.to, code = tostring(code),
                          result = tostring(res) })
end)

require("where")()
