-- sipstack.sdp: SDP helpers for call hold and resume (RFC 3264 §8.4).
--
-- The functions that rewrite an SDP change only the lines they must
-- (direction attributes and the o= sess-version); every other byte,
-- including each line's own terminator, is copied unchanged.  Lines
-- that are added use the input's line ending (CRLF if it has any CRLF,
-- else LF if it has any LF, else CRLF).
--
-- Runs inside the script sandbox: uses only the base library, string
-- and table; no other module is required.

local M = {}

local type, tostring, tonumber, ipairs, error, pcall =
      type, tostring, tonumber, ipairs, error, pcall
local find, sub, match, gmatch, gsub, format, byte, char, rep =
      string.find, string.sub, string.match, string.gmatch, string.gsub,
      string.format, string.byte, string.char, string.rep
local concat = table.concat

-- Errors -----------------------------------------------------------------
--
-- Internal helpers raise a tagged table; the public functions catch it
-- and re-raise the message with error(msg, 2), so the position in the
-- message is the script line that called the public function.

local ERR = {}

local function fail(msg)
  error({ [ERR] = true, msg = msg }, 0)
end

local function public(impl)
  return function(...)
    local ok, res = pcall(impl, ...)
    if ok then return res end
    if type(res) == "table" and res[ERR] then
      error(res.msg, 2)
    end
    error(res, 0)   -- a bug in this module: pass it through unchanged
  end
end

local function quote(s)
  s = tostring(s)
  local long = #s > 64
  if long then s = sub(s, 1, 64) end
  s = gsub(s, '[%c"\\\128-\255]', function(c)
    if c == '"' or c == "\\" then return "\\" .. c end
    if c == "\r" then return "\\r" end
    if c == "\n" then return "\\n" end
    if c == "\t" then return "\\t" end
    return format("\\%d", byte(c))
  end)
  return '"' .. s .. (long and '..."' or '"')
end

local DIRECTIONS = {
  sendrecv = true, sendonly = true, recvonly = true, inactive = true,
}

local ANSWER = {
  sendrecv = "sendrecv", sendonly = "recvonly",
  recvonly = "sendonly", inactive = "inactive",
}

local function check_direction(dir)
  if not DIRECTIONS[dir] then
    fail("invalid direction " .. quote(dir))
  end
  return dir
end

-- Splitting ----------------------------------------------------------------

-- Split into records { text = line without terminator, eol = "\r\n" |
-- "\n" | "" }.  Concatenating text .. eol over all records gives back
-- the input exactly.
local function split(sdp)
  local recs = {}
  local pos, len = 1, #sdp
  while pos <= len do
    local nl = find(sdp, "\n", pos, true)
    if not nl then
      recs[#recs + 1] = { text = sub(sdp, pos), eol = "" }
      break
    end
    if nl > pos and byte(sdp, nl - 1) == 13 then
      recs[#recs + 1] = { text = sub(sdp, pos, nl - 2), eol = "\r\n" }
    else
      recs[#recs + 1] = { text = sub(sdp, pos, nl - 1), eol = "\n" }
    end
    pos = nl + 1
  end
  return recs
end

local function detect_eol(sdp)
  if find(sdp, "\r\n", 1, true) then return "\r\n" end
  if find(sdp, "\n", 1, true) then return "\n" end
  return "\r\n"
end

local function join(recs)
  local out = {}
  for i, r in ipairs(recs) do out[i] = r.text .. r.eol end
  return concat(out)
end

-- Line parsers --------------------------------------------------------------

-- Direction attribute on a line, or nil.
local function line_direction(text)
  local a = match(text, "^a=(%a+)[ \t]*$")
  if a and DIRECTIONS[a] then return a end
  return nil
end

local function words(s)
  local t = {}
  for w in gmatch(s, "%S+") do t[#t + 1] = w end
  return t
end

-- m=<media> <port>[/<number of ports>] <proto> <fmt> ...
local function parse_m(text)
  local w = words(sub(text, 3))
  local port, count = match(w[2] or "", "^(%d+)$"), nil
  if not port then
    port, count = match(w[2] or "", "^(%d+)/(%d+)$")
  end
  if #w < 4 or not port or #port > 5 or tonumber(port) > 65535
     or not find(w[1], "^[%w%-%.!%%%*_%+`'~]+$") then
    fail("malformed m= line " .. quote(text))
  end
  local fmts = {}
  for i = 4, #w do fmts[#fmts + 1] = w[i] end
  return {
    type = w[1],
    port = tonumber(port),
    port_count = count and tonumber(count) or nil,
    proto = w[3],
    fmts = fmts,
  }
end

-- o=<username> <sess-id> <sess-version> <nettype> <addrtype> <address>
local function parse_o(text)
  local w = words(sub(text, 3))
  if #w ~= 6 or not find(w[3], "^%d+$") then
    fail("malformed o= line " .. quote(text))
  end
  return {
    username = w[1], sess_id = w[2], sess_version = w[3],
    nettype = w[4], addrtype = w[5], address = w[6],
  }
end

-- c=<nettype> <addrtype> <connection-address>[/<ttl>][/<number>]
local function parse_c(text)
  local w = words(sub(text, 3))
  if #w ~= 3 then
    fail("malformed c= line " .. quote(text))
  end
  return {
    nettype = w[1], addrtype = w[2],
    addr = match(w[3], "^[^/]*"), address = w[3],
  }
end

-- Structure -----------------------------------------------------------------
--
-- analyse() returns the parsed description plus, for internal use, the
-- record indices of every section: sess_first..sess_last and, for media
-- i, m[i].first..m[i].last.

local function analyse(recs)
  local first = recs[1] and recs[1].text
  if not first or sub(first, 1, 2) ~= "v=" then
    fail("sdp does not start with a v= line")
  end
  local d = {
    session = {}, media = {}, direction = nil,
    origin = nil, connection = nil,
  }
  local idx = { sess_first = 1, sess_last = #recs, o = nil, m = {} }
  local cur, curidx
  for i, r in ipairs(recs) do
    local text = r.text
    local kind = sub(text, 1, 2)
    if kind == "m=" then
      cur = parse_m(text)
      cur.lines = {}
      cur.direction_attr = nil
      cur.connection = nil
      d.media[#d.media + 1] = cur
      curidx = { first = i, last = i }
      idx.m[#idx.m + 1] = curidx
      if #idx.m == 1 then idx.sess_last = i - 1 end
    end
    if cur then
      cur.lines[#cur.lines + 1] = text
      curidx.last = i
      local dir = line_direction(text)
      if dir and not cur.direction_attr then cur.direction_attr = dir end
      if kind == "c=" and not cur.connection then
        cur.connection = parse_c(text)
      end
    else
      d.session[#d.session + 1] = text
      local dir = line_direction(text)
      if dir and not d.direction then d.direction = dir end
      if kind == "o=" and not d.origin then
        d.origin = parse_o(text)
        idx.o = i
      elseif kind == "c=" and not d.connection then
        d.connection = parse_c(text)
      end
    end
  end
  -- Effective direction of every stream.
  for _, m in ipairs(d.media) do
    if m.port == 0 then
      m.direction = "inactive"
    else
      m.direction = m.direction_attr or d.direction or "sendrecv"
    end
  end
  return d, idx
end

local function parse_string(sdp)
  if type(sdp) ~= "string" then
    fail("sdp must be a string")
  end
  local recs = split(sdp)
  local d, idx = analyse(recs)
  return d, idx, recs
end

local function parse(sdp)
  return (parse_string(sdp))
end

local function parsed_arg(x)
  if type(x) == "table" and x.media and x.session then return x end
  return (parse_string(x))
end

-- Queries -------------------------------------------------------------------

local function direction(x, i)
  local d = parsed_arg(x)
  if i == nil then i = 1 end
  local m = d.media[i]
  if not m then
    fail("no media stream " .. (type(i) == "number" and tostring(i)
                                  or quote(i)))
  end
  return m.direction
end

-- A stream with a non-zero port is held when its effective direction is
-- sendonly or inactive, or its effective c= address (media-level c= wins
-- over session-level) is the legacy RFC 2543 hold address 0.0.0.0.  The
-- SDP is on hold when it has active streams and all of them are held;
-- without active streams, when the session-level c= is 0.0.0.0.
local function is_hold(x)
  local d = parsed_arg(x)
  local active = 0
  for _, m in ipairs(d.media) do
    if m.port ~= 0 then
      active = active + 1
      local c = m.connection or d.connection
      local zero = c ~= nil and c.addr == "0.0.0.0"
      if not zero and m.direction ~= "sendonly"
         and m.direction ~= "inactive" then
        return false
      end
    end
  end
  if active > 0 then return true end
  return d.connection ~= nil and d.connection.addr == "0.0.0.0"
end

local function answer_direction(dir)
  return ANSWER[check_direction(dir)]
end

-- Rewriting -----------------------------------------------------------------

-- Add one to a decimal string of any length ("0099" -> "0100").
local function incr(digits)
  local i = #digits
  while i >= 1 and byte(digits, i) == 57 do i = i - 1 end   -- '9'
  local tail = rep("0", #digits - i)
  if i == 0 then return "1" .. tail end
  return sub(digits, 1, i - 1) .. char(byte(digits, i) + 1) .. tail
end

-- Rewrite the direction of every stream with a non-zero port to
-- choose(effective current direction), remove session-level direction
-- attributes and bump the o= sess-version.
local function rewrite(sdp, choose)
  local d, idx, recs = parse_string(sdp)
  if not idx.o then
    fail("sdp has no o= line")
  end
  local eol = detect_eol(sdp)
  local drop, after = {}, {}

  -- o= line: replace the third field only, keeping all spacing.
  local o = recs[idx.o]
  local head, ver, rest = match(o.text, "^(o=%s*%S+%s+%S+%s+)(%d+)(.*)$")
  o.text = head .. incr(ver) .. rest

  for i = idx.sess_first, idx.sess_last do
    if line_direction(recs[i].text) then drop[i] = true end
  end

  for k, m in ipairs(d.media) do
    if m.port ~= 0 then
      local dir = check_direction(choose(m.direction))
      local r = idx.m[k]
      local done = false
      local last = r.first
      for i = r.first, r.last do
        local text = recs[i].text
        if line_direction(text) then
          if done then
            drop[i] = true
          else
            recs[i].text = "a=" .. dir
            done = true
          end
        end
        if text ~= "" then last = i end
      end
      if not done then after[last] = "a=" .. dir end
    end
  end

  local out = {}
  for i, r in ipairs(recs) do
    if not drop[i] then
      out[#out + 1] = r
      if after[i] then
        local new = { text = after[i], eol = r.eol }
        if r.eol == "" then
          -- Added after an unterminated last line: terminate that line
          -- and leave the new (now last) line unterminated as well.
          out[#out] = { text = r.text, eol = eol }
        else
          new.eol = eol
        end
        out[#out + 1] = new
      end
    end
  end
  -- A dropped unterminated last line: keep the output unterminated too.
  if recs[#recs].eol == "" and drop[#recs] and #out > 0 then
    local l = out[#out]
    out[#out] = { text = l.text, eol = "" }
  end
  return join(out)
end

local function set_direction(sdp, dir)
  check_direction(dir)
  return rewrite(sdp, function() return dir end)
end

-- RFC 3264 §8.4: a sendrecv stream is held by marking it sendonly, a
-- recvonly one by marking it inactive.
local HOLD = {
  sendrecv = "sendonly", sendonly = "sendonly",
  recvonly = "inactive", inactive = "inactive",
}

local function hold(sdp)
  return rewrite(sdp, function(cur) return HOLD[cur] end)
end

local function unhold(sdp)
  return rewrite(sdp, function() return "sendrecv" end)
end

-- Public API ------------------------------------------------------------------

-- M.parse(sdp) -> {
--   session    = { lines from v= up to the first m=, without terminators },
--   media      = { { type, port, port_count (nil unless "port/n"), proto,
--                    fmts = {strings}, lines = {the m= line and the lines
--                    after it}, direction = effective direction (as
--                    M.direction), direction_attr = media-level attribute
--                    or nil, connection = media-level c= or nil }, ... },
--   direction  = session-level direction attribute or nil,
--   origin     = { username, sess_id, sess_version, nettype, addrtype,
--                  address } (strings) or nil,
--   connection = { nettype, addrtype, addr (without /ttl), address } or nil }
M.parse = public(parse)

-- M.direction(sdp_or_parsed[, media_index = 1]) -> effective direction.
M.direction = public(direction)

-- M.set_direction(sdp, dir) -> new sdp string.
M.set_direction = public(set_direction)

-- M.hold(sdp) / M.unhold(sdp) -> new sdp string.
M.hold = public(hold)
M.unhold = public(unhold)

-- M.is_hold(sdp_or_parsed) -> boolean.
M.is_hold = public(is_hold)

-- M.answer_direction(offer_dir) -> answerer's direction.
M.answer_direction = public(answer_direction)

return M
