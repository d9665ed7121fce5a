-- Specs for lua/sipstack/sdp.lua.  Run with: busted --lua=luajit
-- The repository root, from this file's own path: works whatever the
-- working directory (meson runs busted from the build directory).
local src = debug.getinfo(1, "S").source
local root = src:match("^@(.*)/test/lua/[^/]+$")
  or (src:match("^@(.*)/[^/]+$") or ".") .. "/../.."
package.path = root .. "/lua/?.lua;" .. package.path

local S = require("sipstack.sdp")

-- Calls f(...) from this file and checks that it raised exactly `msg`,
-- prefixed with a position in this spec file.
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
  assert.truthy(pos:find("sdp_spec.lua", 1, true), pos)
end

-- Joins lines, each terminated by eol.
local function lines(eol, t)
  return table.concat(t, eol) .. eol
end

-- RFC 3264 §10.1-style offer: a session-level attribute, an audio
-- stream without direction, a rejected video stream and a video stream
-- with a media-level direction.
local OFFER = {
  "v=0",
  "o=alice 2890844526 2890844526 IN IP4 host.atlanta.example.com",
  "s=",
  "c=IN IP4 host.atlanta.example.com",
  "t=0 0",
  "m=audio 49170 RTP/AVP 0 8 97",
  "a=rtpmap:0 PCMU/8000",
  "a=rtpmap:8 PCMA/8000",
  "a=rtpmap:97 iLBC/8000",
  "m=video 0 RTP/AVP 31",
  "a=rtpmap:31 H261/90000",
  "m=video 51372 RTP/AVP 31 32",
  "a=recvonly",
  "a=rtpmap:31 H261/90000",
  "a=rtpmap:32 MPV/90000",
}

local function copy(t)
  local r = {}
  for i, v in ipairs(t) do r[i] = v end
  return r
end

describe("sipstack.sdp", function()

  describe("parse", function()
    local p = S.parse(lines("\r\n", OFFER))

    it("splits session and media sections", function()
      assert.same({ "v=0", OFFER[2], "s=", OFFER[4], "t=0 0" }, p.session)
      assert.equal(3, #p.media)
      assert.same({ OFFER[6], OFFER[7], OFFER[8], OFFER[9] }, p.media[1].lines)
      assert.same({ OFFER[10], OFFER[11] }, p.media[2].lines)
      assert.same({ OFFER[12], OFFER[13], OFFER[14], OFFER[15] }, p.media[3].lines)
    end)

    it("parses m= lines", function()
      local m = p.media[1]
      assert.equal("audio", m.type)
      assert.equal(49170, m.port)
      assert.is_nil(m.port_count)
      assert.equal("RTP/AVP", m.proto)
      assert.same({ "0", "8", "97" }, m.fmts)
      assert.equal("video", p.media[2].type)
      assert.equal(0, p.media[2].port)
      assert.same({ "31" }, p.media[2].fmts)
      assert.same({ "31", "32" }, p.media[3].fmts)
    end)

    it("parses a port count and odd but valid m= lines", function()
      local q = S.parse("v=0\nm=video 49170/2 RTP/AVP 31\nm=application 9 TCP/BFCP *\n" ..
                        "m=audio  5004   RTP/SAVP 0 \n")
      assert.equal(49170, q.media[1].port)
      assert.equal(2, q.media[1].port_count)
      assert.equal("application", q.media[2].type)
      assert.same({ "*" }, q.media[2].fmts)
      assert.equal(5004, q.media[3].port)
      assert.equal("RTP/SAVP", q.media[3].proto)
      assert.same({ "0" }, q.media[3].fmts)
    end)

    it("gives effective and attribute directions per stream", function()
      assert.equal("sendrecv", p.media[1].direction)
      assert.is_nil(p.media[1].direction_attr)
      assert.equal("inactive", p.media[2].direction)
      assert.equal("recvonly", p.media[3].direction)
      assert.equal("recvonly", p.media[3].direction_attr)
      assert.is_nil(p.direction)
    end)

    it("parses the session-level direction", function()
      local t = copy(OFFER)
      table.insert(t, 5, "a=sendonly")
      local q = S.parse(lines("\n", t))
      assert.equal("sendonly", q.direction)
      assert.equal("sendonly", q.media[1].direction)
      assert.equal("recvonly", q.media[3].direction)
    end)

    it("parses o= and c=", function()
      assert.same({
        username = "alice", sess_id = "2890844526", sess_version = "2890844526",
        nettype = "IN", addrtype = "IP4", address = "host.atlanta.example.com",
      }, p.origin)
      assert.equal("host.atlanta.example.com", p.connection.addr)
      assert.equal("IN", p.connection.nettype)
      assert.equal("IP4", p.connection.addrtype)
      assert.is_nil(p.media[1].connection)
    end)

    it("parses media-level c= and strips TTL and count from the address", function()
      local q = S.parse("v=0\r\nc=IN IP4 224.2.1.1/127/3\r\nm=audio 1 RTP/AVP 0\r\n" ..
                        "c=IN IP6 ff15::101\r\n")
      assert.equal("224.2.1.1", q.connection.addr)
      assert.equal("224.2.1.1/127/3", q.connection.address)
      assert.equal("ff15::101", q.media[1].connection.addr)
      assert.equal("IP6", q.media[1].connection.addrtype)
    end)

    it("parses CRLF and LF input alike", function()
      assert.same(p, S.parse(lines("\n", OFFER)))
      assert.same(p, S.parse(table.concat(OFFER, "\r\n")))
    end)

    it("accepts a minimal SDP", function()
      local q = S.parse("v=0")
      assert.same({ "v=0" }, q.session)
      assert.same({}, q.media)
      assert.is_nil(q.origin)
      assert.is_nil(q.connection)
      assert.is_nil(q.direction)
    end)

    it("keeps blank lines and ignores unknown lines", function()
      local q = S.parse("v=0\n\nx=whatever\nm=audio 1 RTP/AVP 0\n\n")
      assert.same({ "v=0", "", "x=whatever" }, q.session)
      assert.same({ "m=audio 1 RTP/AVP 0", "" }, q.media[1].lines)
    end)

    it("rejects an SDP without v=", function()
      raises("sdp does not start with a v= line", S.parse, "")
      raises("sdp does not start with a v= line", S.parse, "\r\n")
      raises("sdp does not start with a v= line", S.parse, "o=a 1 1 IN IP4 x\r\nv=0\r\n")
      raises("sdp does not start with a v= line", S.parse, "hello")
      raises("sdp does not start with a v= line", S.parse, " v=0\r\n")
    end)

    it("rejects non-strings", function()
      raises("sdp must be a string", S.parse, nil)
      raises("sdp must be a string", S.parse, 42)
      raises("sdp must be a string", S.parse, {})
    end)

    it("rejects malformed m= lines", function()
      for _, m in ipairs({
        "m=audio", "m=audio 49170", "m=audio 49170 RTP/AVP",
        "m=audio x RTP/AVP 0", "m=audio -1 RTP/AVP 0", "m=audio 65536 RTP/AVP 0",
        "m=audio 049170 RTP/AVP 0", "m=audio 49170/ RTP/AVP 0",
        "m=audio 49170/x RTP/AVP 0", "m=au dio", "m=", "m=a(b) 1 RTP/AVP 0",
      }) do
        raises('malformed m= line "' .. m .. '"', S.parse, "v=0\r\n" .. m .. "\r\n")
      end
      raises('malformed m= line "m=audio 1\\r"', S.parse, "v=0\nm=audio 1\r\r\n")
    end)

    it("rejects malformed o= and c= lines", function()
      raises('malformed o= line "o=alice 1 x IN IP4 h"', S.parse, "v=0\r\no=alice 1 x IN IP4 h\r\n")
      raises('malformed o= line "o=alice 1 1"', S.parse, "v=0\r\no=alice 1 1\r\n")
      raises('malformed c= line "c=IN IP4"', S.parse, "v=0\r\nc=IN IP4\r\n")
      raises('malformed c= line "c="', S.parse, "v=0\r\nm=audio 1 RTP/AVP 0\r\nc=\r\n")
    end)
  end)

  describe("direction", function()
    local sdp = lines("\r\n", OFFER)

    it("defaults to sendrecv and to the first stream", function()
      assert.equal("sendrecv", S.direction(sdp, 1))
      assert.equal("sendrecv", S.direction(sdp))
    end)

    it("reports port-0 streams as inactive", function()
      assert.equal("inactive", S.direction(sdp, 2))
      assert.equal("inactive", S.direction("v=0\nm=audio 0 RTP/AVP 0\na=sendrecv\n", 1))
    end)

    it("uses the media attribute over the session attribute", function()
      assert.equal("recvonly", S.direction(sdp, 3))
      local t = copy(OFFER)
      table.insert(t, 3, "a=inactive")
      local s2 = lines("\n", t)
      assert.equal("inactive", S.direction(s2, 1))
      assert.equal("inactive", S.direction(s2, 2))
      assert.equal("recvonly", S.direction(s2, 3))
    end)

    it("uses the first of several direction attributes", function()
      assert.equal("sendonly",
        S.direction("v=0\nm=audio 1 RTP/AVP 0\na=sendonly\na=inactive\n"))
    end)

    it("ignores attributes that only resemble directions", function()
      assert.equal("sendrecv",
        S.direction("v=0\nm=audio 1 RTP/AVP 0\na=sendonlyx\na=x:sendonly\na=SENDONLY\n"))
      assert.equal("sendonly", S.direction("v=0\nm=audio 1 RTP/AVP 0\na=sendonly \n"))
    end)

    it("accepts a parsed table", function()
      local p = S.parse(sdp)
      assert.equal("sendrecv", S.direction(p, 1))
      assert.equal("recvonly", S.direction(p, 3))
    end)

    it("rejects a missing stream and bad SDP", function()
      raises("no media stream 4", S.direction, sdp, 4)
      raises("no media stream 0", S.direction, sdp, 0)
      raises("no media stream 1", S.direction, "v=0\r\n")
      raises('no media stream "x"', S.direction, sdp, "x")
      raises("sdp does not start with a v= line", S.direction, "", 1)
      raises("sdp must be a string", S.direction, nil, 1)
    end)
  end)

  describe("set_direction", function()
    it("appends the attribute to streams without one and bumps the version", function()
      for _, eol in ipairs({ "\r\n", "\n" }) do
        local want = copy(OFFER)
        want[2] = "o=alice 2890844526 2890844527 IN IP4 host.atlanta.example.com"
        table.insert(want, 10, "a=sendonly")      -- end of the audio section
        want[14] = "a=sendonly"                     -- replaced in place
        assert.equal(lines(eol, want), S.set_direction(lines(eol, OFFER), "sendonly"))
      end
    end)

    it("leaves port-0 streams alone", function()
      local out = S.set_direction(lines("\r\n", OFFER), "inactive")
      local p = S.parse(out)
      assert.same({ OFFER[10], OFFER[11] }, p.media[2].lines)
      assert.equal("inactive", p.media[1].direction_attr)
      assert.equal("inactive", p.media[3].direction_attr)
    end)

    it("replaces an existing attribute in place and removes duplicates", function()
      local input = lines("\n", {
        "v=0", "o=- 1 1 IN IP4 h", "s=-", "t=0 0",
        "m=audio 1 RTP/AVP 0", "a=inactive", "a=rtpmap:0 PCMU/8000", "a=sendonly", "a=ptime:20",
      })
      assert.equal(lines("\n", {
        "v=0", "o=- 1 2 IN IP4 h", "s=-", "t=0 0",
        "m=audio 1 RTP/AVP 0", "a=recvonly", "a=rtpmap:0 PCMU/8000", "a=ptime:20",
      }), S.set_direction(input, "recvonly"))
    end)

    it("removes the session-level attribute", function()
      local input = lines("\r\n", {
        "v=0", "o=- 7 7 IN IP4 h", "s=-", "a=sendonly", "t=0 0", "a=recvonly",
        "m=audio 1 RTP/AVP 0", "m=video 2 RTP/AVP 31", "a=inactive",
      })
      local out = S.set_direction(input, "sendrecv")
      assert.equal(lines("\r\n", {
        "v=0", "o=- 7 8 IN IP4 h", "s=-", "t=0 0",
        "m=audio 1 RTP/AVP 0", "a=sendrecv", "m=video 2 RTP/AVP 31", "a=sendrecv",
      }), out)
      assert.is_nil(S.parse(out).direction)
    end)

    it("removes the session-level attribute without active streams", function()
      assert.equal("v=0\no=- 1 2 IN IP4 h\nm=audio 0 RTP/AVP 0\n",
        S.set_direction("v=0\no=- 1 1 IN IP4 h\na=sendonly\nm=audio 0 RTP/AVP 0\n", "sendrecv"))
      assert.equal("v=0\no=- 1 2 IN IP4 h\n",
        S.set_direction("v=0\no=- 1 1 IN IP4 h\na=sendonly\n", "inactive"))
    end)

    it("changes only the intended bytes", function()
      -- Odd spacing, trailing blanks, unknown lines and an unrelated
      -- attribute that looks like a direction must survive.
      local input = "v=0\r\no=bob  0042   0099 IN  IP4 10.0.0.1\r\ns= a session \r\n" ..
                    "t=0 0\r\nx=unknown\r\nm=audio 5004 RTP/AVP 0\r\na=x-sendonly\r\n" ..
                    "a=rtpmap:0 PCMU/8000 \r\n\r\n"
      local want = "v=0\r\no=bob  0042   0100 IN  IP4 10.0.0.1\r\ns= a session \r\n" ..
                   "t=0 0\r\nx=unknown\r\nm=audio 5004 RTP/AVP 0\r\na=x-sendonly\r\n" ..
                   "a=rtpmap:0 PCMU/8000 \r\na=inactive\r\n\r\n"
      assert.equal(want, S.set_direction(input, "inactive"))
    end)

    it("keeps each line's own terminator in mixed input", function()
      local input = "v=0\r\no=- 1 1 IN IP4 h\nm=audio 1 RTP/AVP 0\r\na=sendrecv\na=ptime:20\r\n"
      assert.equal("v=0\r\no=- 1 2 IN IP4 h\nm=audio 1 RTP/AVP 0\r\na=sendonly\na=ptime:20\r\n",
        S.set_direction(input, "sendonly"))
      -- Added lines use CRLF when the input has any CRLF.
      assert.equal("v=0\no=- 1 2 IN IP4 h\r\nm=audio 1 RTP/AVP 0\na=inactive\r\n",
        S.set_direction("v=0\no=- 1 1 IN IP4 h\r\nm=audio 1 RTP/AVP 0\n", "inactive"))
    end)

    it("keeps a missing final line terminator", function()
      assert.equal("v=0\r\no=- 1 2 IN IP4 h\r\nm=audio 1 RTP/AVP 0\r\na=sendonly",
        S.set_direction("v=0\r\no=- 1 1 IN IP4 h\r\nm=audio 1 RTP/AVP 0", "sendonly"))
      assert.equal("v=0\no=- 1 2 IN IP4 h\nm=audio 1 RTP/AVP 0\na=sendonly",
        S.set_direction("v=0\no=- 1 1 IN IP4 h\nm=audio 1 RTP/AVP 0", "sendonly"))
      assert.equal("v=0\no=- 1 2 IN IP4 h\nm=audio 1 RTP/AVP 0\na=recvonly",
        S.set_direction("v=0\no=- 1 1 IN IP4 h\nm=audio 1 RTP/AVP 0\na=recvonly\na=sendonly",
          "recvonly"))
      assert.equal("v=0\no=- 1 2 IN IP4 h\nm=audio 1 RTP/AVP 0\na=inactive",
        S.set_direction("v=0\no=- 1 1 IN IP4 h\nm=audio 1 RTP/AVP 0\na=sendonly", "inactive"))
    end)

    it("increments the version as a decimal string of any size", function()
      local function ver(v)
        local out = S.set_direction("v=0\no=- 1 " .. v .. " IN IP4 h\n", "sendrecv")
        return S.parse(out).origin.sess_version
      end
      assert.equal("1", ver("0"))
      assert.equal("10", ver("9"))
      assert.equal("100", ver("99"))
      assert.equal("0100", ver("0099"))
      assert.equal("2890844527", ver("2890844526"))
      assert.equal("18446744073709551616", ver("18446744073709551615"))
      assert.equal("100000000000000000000000", ver("99999999999999999999999"))
    end)

    it("increments on every call", function()
      local s = lines("\r\n", OFFER)
      for i = 1, 3 do s = S.set_direction(s, "sendrecv") end
      assert.equal("2890844529", S.parse(s).origin.sess_version)
      assert.equal(lines("\r\n", OFFER):gsub("a=recvonly", "a=sendrecv")
                     :gsub("2890844526 IN", "2890844529 IN"):gsub("(iLBC/8000\r\n)", "%1a=sendrecv\r\n"),
                   s)
    end)

    it("rejects bad directions, SDP without o= and bad SDP", function()
      local sdp = lines("\r\n", OFFER)
      raises('invalid direction "hold"', S.set_direction, sdp, "hold")
      raises('invalid direction "SENDONLY"', S.set_direction, sdp, "SENDONLY")
      raises('invalid direction "nil"', S.set_direction, sdp, nil)
      raises("sdp has no o= line", S.set_direction, "v=0\r\nm=audio 1 RTP/AVP 0\r\n", "sendonly")
      raises("sdp does not start with a v= line", S.set_direction, "", "sendonly")
      raises("sdp must be a string", S.set_direction, S.parse(sdp), "sendonly")
      raises('malformed m= line "m=audio"', S.set_direction, "v=0\no=- 1 1 IN IP4 h\nm=audio\n", "sendonly")
    end)
  end)

  describe("hold", function()
    local function with_dirs(eol, a, b)
      local t = {
        "v=0", "o=- 100 5 IN IP4 192.0.2.1", "s=-", "c=IN IP4 192.0.2.1", "t=0 0",
        "m=audio 4000 RTP/AVP 0",
      }
      if a then t[#t + 1] = "a=" .. a end
      t[#t + 1] = "m=video 4002 RTP/AVP 96"
      if b then t[#t + 1] = "a=" .. b end
      t[#t + 1] = "a=rtpmap:96 H264/90000"
      return lines(eol, t)
    end

    it("marks sendrecv streams sendonly (RFC 3264 §8.4)", function()
      for _, eol in ipairs({ "\r\n", "\n" }) do
        local want = with_dirs(eol, "sendonly", "sendonly"):gsub(" 5 IN", " 6 IN")
        assert.equal(want, S.hold(with_dirs(eol, nil, "sendrecv")))
        assert.equal(want, S.hold(with_dirs(eol, "sendonly", "sendrecv")))
      end
    end)

    it("marks recvonly and inactive streams inactive", function()
      local want = with_dirs("\r\n", "inactive", "inactive"):gsub(" 5 IN", " 6 IN")
      assert.equal(want, S.hold(with_dirs("\r\n", "recvonly", "inactive")))
    end)

    it("decides per stream", function()
      local want = with_dirs("\n", "sendonly", "inactive"):gsub(" 5 IN", " 6 IN")
      assert.equal(want, S.hold(with_dirs("\n", "sendrecv", "recvonly")))
    end)

    it("takes the session-level direction into account", function()
      local input = "v=0\no=- 1 1 IN IP4 h\na=recvonly\nm=audio 1 RTP/AVP 0\nm=audio 2 RTP/AVP 0\na=sendrecv\n"
      assert.equal("v=0\no=- 1 2 IN IP4 h\nm=audio 1 RTP/AVP 0\na=inactive\nm=audio 2 RTP/AVP 0\na=sendonly\n",
        S.hold(input))
    end)

    it("leaves port-0 streams alone and holds the RFC 3264 example", function()
      local out = S.hold(lines("\r\n", OFFER))
      local want = copy(OFFER)
      want[2] = "o=alice 2890844526 2890844527 IN IP4 host.atlanta.example.com"
      table.insert(want, 10, "a=sendonly")
      want[14] = "a=inactive"
      assert.equal(lines("\r\n", want), out)
      assert.is_true(S.is_hold(out))
    end)

    it("is idempotent apart from the version", function()
      local once = S.hold(lines("\n", OFFER))
      local twice = S.hold(once)
      assert.equal(once:gsub("2890844527 IN", "2890844528 IN"), twice)
    end)

    it("rejects bad SDP", function()
      raises("sdp does not start with a v= line", S.hold, "")
      raises("sdp has no o= line", S.hold, "v=0\n")
      raises("sdp must be a string", S.hold, nil)
    end)
  end)

  describe("unhold", function()
    it("marks every active stream sendrecv", function()
      local held = S.hold(lines("\r\n", OFFER))
      local out = S.unhold(held)
      local want = copy(OFFER)
      want[2] = "o=alice 2890844526 2890844528 IN IP4 host.atlanta.example.com"
      table.insert(want, 10, "a=sendrecv")
      want[14] = "a=sendrecv"
      assert.equal(lines("\r\n", want), out)
      assert.is_false(S.is_hold(out))
      assert.equal("sendrecv", S.direction(out, 1))
      assert.equal("inactive", S.direction(out, 2))
      assert.equal("sendrecv", S.direction(out, 3))
    end)

    it("replaces a session-level hold with media-level sendrecv", function()
      assert.equal("v=0\no=- 1 2 IN IP4 h\nm=audio 1 RTP/AVP 0\na=sendrecv\n",
        S.unhold("v=0\no=- 1 1 IN IP4 h\na=inactive\nm=audio 1 RTP/AVP 0\n"))
    end)

    it("rejects bad SDP", function()
      raises("sdp does not start with a v= line", S.unhold, "x")
      raises("sdp has no o= line", S.unhold, "v=0\n")
    end)
  end)

  describe("is_hold", function()
    local function sdp(session_c, media)
      local t = { "v=0", "o=- 1 1 IN IP4 h", "s=-" }
      if session_c then t[#t + 1] = "c=IN IP4 " .. session_c end
      t[#t + 1] = "t=0 0"
      for _, m in ipairs(media) do
        t[#t + 1] = "m=audio " .. m.port .. " RTP/AVP 0"
        if m.c then t[#t + 1] = "c=IN IP4 " .. m.c end
        if m.dir then t[#t + 1] = "a=" .. m.dir end
      end
      return lines("\r\n", t)
    end

    it("is true when every active stream is sendonly or inactive", function()
      assert.is_true(S.is_hold(sdp("192.0.2.1", { { port = 1, dir = "sendonly" } })))
      assert.is_true(S.is_hold(sdp("192.0.2.1", { { port = 1, dir = "inactive" } })))
      assert.is_true(S.is_hold(sdp("192.0.2.1", {
        { port = 1, dir = "sendonly" }, { port = 2, dir = "inactive" }, { port = 0 },
      })))
    end)

    it("is false when any active stream can still receive", function()
      assert.is_false(S.is_hold(sdp("192.0.2.1", { { port = 1 } })))
      assert.is_false(S.is_hold(sdp("192.0.2.1", { { port = 1, dir = "sendrecv" } })))
      assert.is_false(S.is_hold(sdp("192.0.2.1", { { port = 1, dir = "recvonly" } })))
      assert.is_false(S.is_hold(sdp("192.0.2.1", {
        { port = 1, dir = "sendonly" }, { port = 2, dir = "sendrecv" },
      })))
    end)

    it("uses the session-level direction", function()
      assert.is_true(S.is_hold("v=0\na=sendonly\nm=audio 1 RTP/AVP 0\n"))
      assert.is_false(S.is_hold("v=0\na=sendonly\nm=audio 1 RTP/AVP 0\na=sendrecv\n"))
    end)

    it("recognises the legacy c= 0.0.0.0 hold", function()
      assert.is_true(S.is_hold(sdp("0.0.0.0", { { port = 1 } })))
      assert.is_true(S.is_hold(sdp("0.0.0.0", { { port = 1, dir = "sendrecv" }, { port = 2 } })))
      assert.is_true(S.is_hold(sdp("192.0.2.1", { { port = 1, c = "0.0.0.0" } })))
      assert.is_true(S.is_hold(sdp(nil, { { port = 1, c = "0.0.0.0" } })))
      assert.is_true(S.is_hold(sdp("0.0.0.0", {})))
      assert.is_true(S.is_hold(sdp("0.0.0.0", { { port = 0 } })))
      -- A media-level c= overrides the session-level one.
      assert.is_false(S.is_hold(sdp("0.0.0.0", { { port = 1, c = "192.0.2.1" } })))
      assert.is_false(S.is_hold(sdp("192.0.2.1", {
        { port = 1, c = "0.0.0.0" }, { port = 2 },
      })))
      assert.is_false(S.is_hold(sdp("0.0.0.1", { { port = 1 } })))
    end)

    it("is false without active streams", function()
      assert.is_false(S.is_hold(sdp("192.0.2.1", {})))
      assert.is_false(S.is_hold(sdp("192.0.2.1", { { port = 0, dir = "sendonly" } })))
      assert.is_false(S.is_hold("v=0"))
    end)

    it("accepts a parsed table", function()
      assert.is_true(S.is_hold(S.parse(sdp("192.0.2.1", { { port = 1, dir = "inactive" } }))))
      assert.is_false(S.is_hold(S.parse(lines("\n", OFFER))))
    end)

    it("rejects bad SDP", function()
      raises("sdp does not start with a v= line", S.is_hold, "")
      raises("sdp must be a string", S.is_hold, nil)
      raises('malformed m= line "m=audio x"', S.is_hold, "v=0\nm=audio x\n")
    end)
  end)

  describe("answer_direction", function()
    it("mirrors the offer (RFC 3264 §6.1)", function()
      assert.equal("recvonly", S.answer_direction("sendonly"))
      assert.equal("sendonly", S.answer_direction("recvonly"))
      assert.equal("inactive", S.answer_direction("inactive"))
      assert.equal("sendrecv", S.answer_direction("sendrecv"))
    end)

    it("rejects anything else", function()
      raises('invalid direction "hold"', S.answer_direction, "hold")
      raises('invalid direction "nil"', S.answer_direction, nil)
      raises('invalid direction "a=sendonly"', S.answer_direction, "a=sendonly")
    end)
  end)

  describe("in the script sandbox", function()
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
      local chunk = assert(loadfile(root .. "/lua/sipstack/sdp.lua"))
      local bc = assert(loadstring(string.dump(chunk, true), "=sdp"))
      setfenv(bc, sandbox())
      local M = bc("sipstack.sdp")
      local sdp = lines("\r\n", OFFER)
      local held = M.hold(sdp)
      assert.is_true(M.is_hold(held))
      assert.is_false(M.is_hold(M.unhold(held)))
      assert.equal("sendonly", M.direction(held, 1))
      assert.equal("recvonly", M.answer_direction("sendonly"))
      assert.equal(3, #M.parse(M.set_direction(sdp, "inactive")).media)
      local ok, err = pcall(M.set_direction, sdp, "x")
      assert.is_false(ok)
      assert.equal('invalid direction "x"', err)
    end)
  end)
end)
