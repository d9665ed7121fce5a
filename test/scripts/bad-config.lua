-- test/scripts/bad-config.lua: a configuration refused at load time
-- (t_script_errors.py): a wildcard local_ip cannot go into Contact.
sip.configure{ local_ip = "0.0.0.0" }       -- LINE:config
