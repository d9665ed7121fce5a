-- test/registrar/reg-auth-opts.lua: digest auth with the shortest nonce
-- lifetime allowed (nonce_ttl = 10 s) and both algorithms offered,
-- SHA-256 first (RFC 8760), for t_auth.py --case ttl. @DATABASE@ is
-- replaced by a file in the test's temp dir.

sip.registrar.configure{
  database   = "@DATABASE@",
  auth       = true,
  realm      = "sipstack",
  algorithms = { "SHA-256", "MD5" },
  nonce_ttl  = 10,
}

require("where")()
