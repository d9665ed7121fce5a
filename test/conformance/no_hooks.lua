-- test/conformance/no_hooks.lua: the script of the conformance run.
--
-- No hook at all: every request the torture messages carry is answered
-- by the core alone (OPTIONS 200, known methods 405, unknown 501,
-- in-dialog without dialog 481) after server/core/validate.c has had its say.
sip.configure{ user_agent = "sipstack-conformance" }
