-- test/registrar/reg-expiry.lua: SQLite store, no auth, and no lower
-- bound on expiries (min_expires = 0), so that a binding registered
-- for 2 s shows its expiry from memory and from the disk within a test
-- (t_expiry.py). @DATABASE@ is replaced by a file in the test's temp
-- dir.

sip.registrar.configure{
  database    = "@DATABASE@",
  auth        = false,
  min_expires = 0,
}

require("where")()
