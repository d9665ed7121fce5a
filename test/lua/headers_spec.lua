-- Specs for lua/sipstack/headers.lua.  Run with: busted --lua=luajit
-- The repository root, from this file's own path: works whatever the
-- working directory (meson runs busted from the build directory).
local src = debug.getinfo(1, "S").source
local root = src:match("^@(.*)/test/lua/[^/]+$")
  or (src:match("^@(.*)/[^/]+$") or ".") .. "/../.."
package.path = root .. "/lua/?.lua;" .. package.path

local H = require("sipstack.headers")

-- Calls f(...) from this file and checks that it raised exactly `msg`,
-- prefixed with a position in this spec file (error level 2 names the
-- caller's line, not a line of the module).
local function raises(msg, f, ...)
  local args, n = { ... }, select("#", ...)
  local ok, err = pcall(function()
    local r = f(unpack(args, 1, n))   -- not a tail call: keep the frame
    return r
  end)
  assert.is_false(ok, "expected an error: " .. msg)
  assert.is_string(err)
  local pos, text = err:match("^(.-:%d+): (.*)$")
  assert.is_not_nil(pos, "error has no position: " .. err)
  assert.equal(msg, text)
  assert.truthy(pos:find("headers_spec.lua", 1, true), pos)
end

describe("sipstack.headers", function()

  describe("encode", function()
    it("returns an empty string for nil and empty tables", function()
      assert.equal("", H.encode(nil))
      assert.equal("", H.encode())
      assert.equal("", H.encode({}))
    end)

    it("encodes a single map entry", function()
      assert.equal("X-Foo: bar\r\n", H.encode({ ["X-Foo"] = "bar" }))
    end)

    it("emits map entries sorted by lower-case name", function()
      local h = { ["x-b"] = "2", ["X-A"] = "1", Subject = "s", ["X-c"] = "3" }
      assert.equal("Subject: s\r\nX-A: 1\r\nx-b: 2\r\nX-c: 3\r\n", H.encode(h))
    end)

    it("is deterministic for names differing only in case", function()
      local h = { ["x-a"] = "lower", ["X-A"] = "upper" }
      assert.equal("X-A: upper\r\nx-a: lower\r\n", H.encode(h))
      assert.equal(H.encode(h), H.encode({ ["X-A"] = "upper", ["x-a"] = "lower" }))
    end)

    it("keeps the name as given", function()
      assert.equal("x-my-HEADER: v\r\n", H.encode({ ["x-my-HEADER"] = "v" }))
    end)

    it("emits one line per value of an array value, in order", function()
      assert.equal("X-Multi: a\r\nX-Multi: b\r\nX-Multi: c\r\n",
        H.encode({ ["X-Multi"] = { "a", "b", "c" } }))
    end)

    it("emits nothing for an empty array value", function()
      assert.equal("", H.encode({ ["X-None"] = {} }))
    end)

    it("accepts numbers as values", function()
      assert.equal("X-N: 42\r\n", H.encode({ ["X-N"] = 42 }))
      assert.equal("X-F: 1.5\r\n", H.encode({ ["X-F"] = 1.5 }))
      assert.equal("X-L: 1\r\nX-L: two\r\n", H.encode({ ["X-L"] = { 1, "two" } }))
    end)

    it("accepts empty values and keeps values verbatim", function()
      assert.equal("Subject: \r\n", H.encode({ Subject = "" }))
      assert.equal("X-V: a\tb ;x=\"y\", z \r\n", H.encode({ ["X-V"] = "a\tb ;x=\"y\", z " }))
      assert.equal("X-U: caf\195\169\r\n", H.encode({ ["X-U"] = "caf\195\169" }))
    end)

    it("keeps the order of an array of lines", function()
      assert.equal("X-Z: 1\r\nX-A: 2\r\nX-Z: 3\r\n",
        H.encode({ "X-Z: 1", "X-A: 2", "X-Z: 3" }))
    end)

    it("normalises the colon and leading value whitespace of lines", function()
      assert.equal("X-A: b\r\n", H.encode({ "X-A:b" }))
      assert.equal("X-A: b\r\n", H.encode({ "X-A \t:  \tb" }))
      assert.equal("X-A: \r\n", H.encode({ "X-A:" }))
      assert.equal("X-A: b: c\r\n", H.encode({ "X-A: b: c" }))
    end)

    it("emits the array part first, then the sorted map part", function()
      local h = { "X-Z: first", "X-Y: second", ["X-B"] = "b", ["X-A"] = { "a1", "a2" } }
      assert.equal("X-Z: first\r\nX-Y: second\r\nX-A: a1\r\nX-A: a2\r\nX-B: b\r\n",
        H.encode(h))
    end)

    it("accepts every token character in names", function()
      local name = "aZ09-.!%*_+`'~"
      assert.equal(name .. ": v\r\n", H.encode({ [name] = "v" }))
      assert.equal(name .. ": v\r\n", H.encode({ name .. ": v" }))
    end)

    it("accepts header names that merely start like reserved ones", function()
      assert.equal("Via-X: 1\r\nX-Call-ID: 2\r\n",
        H.encode({ ["Via-X"] = "1", ["X-Call-ID"] = "2" }))
      assert.equal("Contact: <sip:a@b>\r\nRoute: <sip:p;lr>\r\n",
        H.encode({ Contact = "<sip:a@b>", Route = "<sip:p;lr>" }))
    end)

    describe("rejects", function()
      it("a non-table argument", function()
        raises("headers must be a table", H.encode, "X-A: b")
        raises("headers must be a table", H.encode, 1)
      end)

      it("names that are not tokens", function()
        raises('invalid header name "X Foo"', H.encode, { ["X Foo"] = "bar" })
        raises('invalid header name ""', H.encode, { [""] = "bar" })
        raises('invalid header name "X:Foo"', H.encode, { ["X:Foo"] = "bar" })
        raises('invalid header name "X@Foo"', H.encode, { ["X@Foo"] = "bar" })
        raises('invalid header name "X\\r\\nVia"', H.encode, { ["X\r\nVia"] = "bar" })
        raises('invalid header name "X\\0"', H.encode, { ["X\0"] = "bar" })
        raises('invalid header name "caf\\195\\169"', H.encode, { ["caf\195\169"] = "x" })
        raises('invalid header name "X Foo"', H.encode, { "X Foo: bar" })
        raises('invalid header name ""', H.encode, { ": bar" })
        raises('invalid header name " X-A"', H.encode, { " X-A: folded" })
      end)

      it("quotes and truncates long names in messages", function()
        local long = string.rep("a", 70) .. " "
        raises('invalid header name "' .. string.rep("a", 64) .. '..."', H.encode, { [long] = "x" })
        raises('invalid header name "a\\"b"', H.encode, { ['a"b'] = "x" })
      end)

      it("values containing CR or LF", function()
        raises('header "X-Foo" value contains CR or LF', H.encode, { ["X-Foo"] = "a\r\nVia: evil" })
        raises('header "X-Foo" value contains CR or LF', H.encode, { ["X-Foo"] = "a\rb" })
        raises('header "X-Foo" value contains CR or LF', H.encode, { ["X-Foo"] = "a\nb" })
        raises('header "X-Foo" value contains CR or LF', H.encode, { ["X-Foo"] = "a\n b" })
        raises('header "X-Foo" value contains CR or LF', H.encode, { ["X-Foo"] = { "ok", "b\n" } })
        raises('header "X-Foo" value contains CR or LF', H.encode, { "X-Foo: a\r\nTo: x" })
      end)

      it("values containing NUL", function()
        raises('header "X-Foo" value contains NUL', H.encode, { ["X-Foo"] = "a\0b" })
        raises('header "X-Foo" value contains NUL', H.encode, { "X-Foo: a\0" })
      end)

      it("values that are not strings or numbers", function()
        local msg = 'header "X-Foo" value must be a string or number'
        raises(msg, H.encode, { ["X-Foo"] = true })
        raises(msg, H.encode, { ["X-Foo"] = function() end })
        raises(msg, H.encode, { ["X-Foo"] = { "a", { "nested" } } })
        raises(msg, H.encode, { ["X-Foo"] = { "a", false } })
        raises(msg, H.encode, { ["X-Foo"] = { a = "b" } })
        raises(msg, H.encode, { ["X-Foo"] = { "a", x = "b" } })
      end)

      it("array entries without a colon", function()
        raises('header line "X-Foo bar" has no colon', H.encode, { "X-Foo bar" })
        raises('header line "" has no colon', H.encode, { "" })
        raises('header line "X-A\\r\\nVia" has no colon', H.encode, { "X-A\r\nVia" })
      end)

      it("array entries that are not strings", function()
        raises("header line 2 must be a string", H.encode, { "X-A: 1", 42 })
        raises("header line 1 must be a string", H.encode, { { "X-A", "1" } })
      end)

      it("keys that are neither names nor part of the array", function()
        raises('invalid header key "3"', H.encode, { "X-A: 1", [3] = "X-B: 2" })
        raises('invalid header key "true"', H.encode, { [true] = "x" })
        raises('invalid header key "1.5"', H.encode, { [1.5] = "x" })
      end)

      for _, name in ipairs({
        "Via", "via", "VIA", "v", "V",
        "Call-ID", "call-id", "CALL-ID", "i", "I",
        "CSeq", "cseq",
        "Content-Length", "content-length", "l", "L",
        "Max-Forwards", "max-forwards",
        "From", "from", "f", "F",
        "To", "to", "t", "T",
        "Content-Type", "content-type", "c", "C",
      }) do
        it("the stack-owned header " .. name, function()
          local msg = 'header "' .. name .. '" is set by the stack'
          raises(msg, H.encode, { [name] = "x" })
          raises(msg, H.encode, { name .. ": x" })
          raises(msg, H.encode, { name .. " : x" })
          raises(msg, H.encode, { [name] = { "x" } })
        end)
      end

      it("a bad entry anywhere, emitting nothing", function()
        raises('header "Via" is set by the stack', H.encode,
          { "X-A: 1", ["X-B"] = "2", ["Via"] = "SIP/2.0/UDP evil" })
      end)
    end)
  end)

  describe("canonical", function()
    it("spells well-known irregular names", function()
      assert.equal("Call-ID", H.canonical("call-id"))
      assert.equal("Call-ID", H.canonical("CALL-ID"))
      assert.equal("CSeq", H.canonical("cseq"))
      assert.equal("CSeq", H.canonical("CSEQ"))
      assert.equal("WWW-Authenticate", H.canonical("www-authenticate"))
      assert.equal("RSeq", H.canonical("rseq"))
      assert.equal("RAck", H.canonical("rack"))
      assert.equal("SIP-ETag", H.canonical("sip-etag"))
      assert.equal("SIP-If-Match", H.canonical("Sip-If-Match"))
      assert.equal("MIME-Version", H.canonical("mime-version"))
      assert.equal("Max-Forwards", H.canonical("MAX-FORWARDS"))
      assert.equal("Content-ID", H.canonical("content-id"))
      assert.equal("Min-SE", H.canonical("min-se"))
      assert.equal("Session-ID", H.canonical("session-id"))
      assert.equal("User-to-User", H.canonical("user-to-user"))
      assert.equal("P-Called-Party-ID", H.canonical("p-called-party-id"))
      assert.equal("P-DCS-Billing-Info", H.canonical("p-dcs-billing-info"))
    end)

    it("expands compact forms", function()
      local compact = {
        i = "Call-ID", m = "Contact", e = "Content-Encoding",
        l = "Content-Length", c = "Content-Type", f = "From",
        s = "Subject", k = "Supported", t = "To", v = "Via",
        o = "Event", u = "Allow-Events", r = "Refer-To", b = "Referred-By",
        x = "Session-Expires", a = "Accept-Contact", j = "Reject-Contact",
        d = "Request-Disposition", y = "Identity", n = "Identity-Info",
      }
      for short, long in pairs(compact) do
        assert.equal(long, H.canonical(short))
        assert.equal(long, H.canonical(short:upper()))
      end
    end)

    it("leaves single letters without a compact form generic", function()
      assert.equal("Q", H.canonical("q"))
      assert.equal("Z", H.canonical("Z"))
    end)

    it("capitalises every dash-separated word of other names", function()
      assert.equal("X-My-Header", H.canonical("x-my-header"))
      assert.equal("X-My-Header", H.canonical("X-MY-HEADER"))
      assert.equal("Via", H.canonical("via"))
      assert.equal("Content-Type", H.canonical("content-type"))
      assert.equal("P-Asserted-Identity", H.canonical("p-asserted-identity"))
      assert.equal("Record-Route", H.canonical("RECORD-route"))
      assert.equal("X--Y-", H.canonical("x--y-"))
      assert.equal("-X", H.canonical("-x"))
      assert.equal("X.foo_bar", H.canonical("x.FOO_BAR"))
      assert.equal("X-1abc", H.canonical("x-1ABC"))
    end)

    it("rejects names that are not tokens", function()
      raises('invalid header name "a b"', H.canonical, "a b")
      raises('invalid header name ""', H.canonical, "")
      raises('invalid header name "nil"', H.canonical, nil)
      raises('invalid header name "42"', H.canonical, 42)
      raises('invalid header name "X:"', H.canonical, "X:")
    end)
  end)

  describe("parse", function()
    it("returns an empty list for nil and empty input", function()
      assert.same({}, H.parse(nil))
      assert.same({}, H.parse(""))
      assert.same({}, H.parse("\r\n"))
    end)

    it("parses CRLF-separated fields, canonicalising names", function()
      assert.same({
        { name = "Via", value = "SIP/2.0/UDP a.example.com;branch=z9hG4bK1" },
        { name = "Call-ID", value = "abc@host" },
        { name = "CSeq", value = "1 INVITE" },
        { name = "X-My-Header", value = "v" },
      }, H.parse("via: SIP/2.0/UDP a.example.com;branch=z9hG4bK1\r\n" ..
                 "i: abc@host\r\ncseq:1 INVITE\r\nx-my-header :  v  \r\n"))
    end)

    it("accepts LF-separated fields and a missing final terminator", function()
      assert.same({
        { name = "From", value = "<sip:a@b>;tag=1" },
        { name = "To", value = "<sip:c@d>" },
      }, H.parse("f: <sip:a@b>;tag=1\nt: <sip:c@d>"))
    end)

    it("unfolds continuation lines into a single space", function()
      assert.same({
        { name = "Subject", value = "I know you're there, pull up the phone" },
        { name = "Contact", value = "<sip:a@b>, <sip:c@d>" },
      }, H.parse("Subject: I know you're there,\r\n" ..
                 "         pull up\r\n\tthe phone\r\n" ..
                 "m: <sip:a@b>,\n <sip:c@d>\n"))
    end)

    it("unfolds a value that starts on a continuation line", function()
      assert.same({ { name = "Subject", value = "hello" } },
        H.parse("Subject:\r\n   hello\r\n"))
      assert.same({ { name = "Subject", value = "" } },
        H.parse("Subject:\r\n   \r\n"))
    end)

    it("keeps repeated fields in order and empty values", function()
      assert.same({
        { name = "Route", value = "<sip:p1;lr>" },
        { name = "Subject", value = "" },
        { name = "Route", value = "<sip:p2;lr>" },
      }, H.parse("Route: <sip:p1;lr>\r\nSubject:\r\nroute: <sip:p2;lr>\r\n"))
    end)

    it("keeps colons in values", function()
      assert.same({ { name = "Contact", value = "<sip:a@b:5060>" } },
        H.parse("Contact: <sip:a@b:5060>"))
    end)

    it("skips leading blank lines and stops at the first blank line after", function()
      assert.same({ { name = "X-A", value = "1" }, { name = "X-B", value = "2" } },
        H.parse("\r\n\r\nX-A: 1\r\nX-B: 2\r\n\r\nv=0\r\no=not a header\r\n"))
      assert.same({ { name = "X-A", value = "1" } }, H.parse("X-A: 1\n\nbody"))
    end)

    it("round-trips with encode", function()
      local block = H.encode({ "X-Z: 1", ["X-A"] = { "a", "b" } })
      assert.same({
        { name = "X-Z", value = "1" },
        { name = "X-A", value = "a" },
        { name = "X-A", value = "b" },
      }, H.parse(block))
    end)

    it("rejects malformed blocks", function()
      raises("header block starts with a continuation line", H.parse, " folded: x\r\n")
      raises("header block starts with a continuation line", H.parse, "\r\n\tx\r\n")
      raises('header line "no colon here" has no colon', H.parse, "X-A: 1\r\nno colon here\r\n")
      raises('invalid header name "X A"', H.parse, "X A: 1\r\n")
      raises('invalid header name ""', H.parse, ": 1\r\n")
      raises("header block must be a string", H.parse, {})
      raises("header block must be a string", H.parse, 12)
    end)
  end)

  describe("is_token", function()
    it("accepts tokens and rejects the rest", function()
      assert.is_true(H.is_token("X-Foo"))
      assert.is_true(H.is_token("aZ09-.!%*_+`'~"))
      assert.is_false(H.is_token(""))
      assert.is_false(H.is_token("a b"))
      assert.is_false(H.is_token("a\0"))
      assert.is_false(H.is_token(nil))
      assert.is_false(H.is_token(1))
    end)
  end)

  describe("in the script sandbox", function()
    -- The server loads the module as bytecode with only these globals.
    local function sandbox()
      local env = {
        assert = assert, error = error, ipairs = ipairs, pairs = pairs,
        next = next, pcall = pcall, xpcall = xpcall, select = select,
        tonumber = tonumber, tostring = tostring, type = type,
        unpack = unpack, rawget = rawget, rawset = rawset,
        rawequal = rawequal, setmetatable = setmetatable,
        getmetatable = getmetatable, string = string, table = table,
        math = math,
        os = { time = os.time, clock = os.clock, date = os.date },
      }
      return setmetatable(env, {
        __index = function(_, k) error("global " .. tostring(k) .. " is not available", 2) end,
        __newindex = function(_, k) error("global " .. tostring(k) .. " assigned", 2) end,
      })
    end

    it("loads as stripped bytecode and works with only sandbox globals", function()
      local chunk = assert(loadfile(root .. "/lua/sipstack/headers.lua"))
      local bc = assert(loadstring(string.dump(chunk, true), "=headers"))
      setfenv(bc, sandbox())
      local M = bc("sipstack.headers")
      assert.equal("X-A: 1\r\nX-B: 2\r\n", M.encode({ "X-A: 1", ["X-B"] = 2 }))
      assert.equal("Call-ID", M.canonical("i"))
      assert.same({ { name = "CSeq", value = "1 BYE" } }, M.parse("cseq: 1\r\n BYE"))
      local ok, err = pcall(M.encode, { Via = "x" })
      assert.is_false(ok)
      assert.equal('header "Via" is set by the stack', err)
    end)
  end)
end)
