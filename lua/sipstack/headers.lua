-- sipstack.headers: validation and encoding of extra SIP header fields.
--
-- Scripts hand extra header fields to the C core, which appends them
-- verbatim to the request or response it builds.  Everything a script
-- passes therefore goes through M.encode(), the guard against header
-- injection: names must be RFC 3261 tokens, values must not contain
-- CR, LF or NUL, and the fields the core owns cannot be overridden.
--
-- Runs inside the script sandbox: uses only the base library, string,
-- table and math; no other module is required.

local M = {}

local type, tostring, pairs, ipairs, error, pcall =
      type, tostring, pairs, ipairs, error, pcall
local find, sub, lower, upper, gsub, format, byte, match =
      string.find, string.sub, string.lower, string.upper, string.gsub,
      string.format, string.byte, string.match
local concat, sort = table.concat, table.sort

-- Errors -----------------------------------------------------------------
--
-- Internal helpers raise a tagged table; the public functions catch it
-- and re-raise the message with error(msg, 2) so that the position in
-- the message is the line of the script that called the public function.

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

-- Quote a string for an error message: printable ASCII kept, '"' and '\'
-- escaped, everything else as a decimal escape, long input truncated.
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

-- Names ------------------------------------------------------------------

-- RFC 3261 token: 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+"
-- / "`" / "'" / "~").  Spelled out rather than %w, which may depend on
-- the C locale.
local TOKEN = "^[A-Za-z0-9%-%.!%%%*_%+`'~]+$"

local function is_token(s)
  return type(s) == "string" and find(s, TOKEN) ~= nil
end

-- Compact forms (RFC 3261 §7.3.3 and the IANA SIP header registry).
local COMPACT = {
  a = "Accept-Contact",
  b = "Referred-By",
  c = "Content-Type",
  d = "Request-Disposition",
  e = "Content-Encoding",
  f = "From",
  i = "Call-ID",
  j = "Reject-Contact",
  k = "Supported",
  l = "Content-Length",
  m = "Contact",
  n = "Identity-Info",
  o = "Event",
  r = "Refer-To",
  s = "Subject",
  t = "To",
  u = "Allow-Events",
  v = "Via",
  x = "Session-Expires",
  y = "Identity",
}

-- Names whose usual spelling does not follow the generic rule
-- (first letter of every dash-separated word upper case, rest lower).
-- Regular names are listed too where it documents intent.
local IRREGULAR = {}
for _, n in ipairs({
  "Call-ID", "CSeq", "WWW-Authenticate", "RSeq", "RAck",
  "SIP-ETag", "SIP-If-Match", "MIME-Version", "Max-Forwards",
  "Content-ID", "Min-SE", "Session-ID", "User-to-User",
  "P-Called-Party-ID", "P-Visited-Network-ID",
  "P-DCS-Trace-Party-ID", "P-DCS-OSPS", "P-DCS-Billing-Info",
  "P-DCS-LAES", "P-DCS-Redirect",
}) do
  IRREGULAR[lower(n)] = n
end

local function canonical(name)
  if not is_token(name) then
    fail("invalid header name " .. quote(name))
  end
  local l = lower(name)
  local c = COMPACT[l] or IRREGULAR[l]
  if c then return c end
  -- Generic rule: capitalise each dash-separated word.
  return (gsub(gsub(l, "^%l", upper), "%-%l", upper))
end

-- Fields the core builds itself; a script must not add them.
local RESERVED = {}
for _, n in ipairs({
  "via", "v", "call-id", "i", "cseq", "content-length", "l",
  "max-forwards", "from", "f", "to", "t", "content-type", "c",
}) do
  RESERVED[n] = true
end

local function check_name(name)
  if not is_token(name) then
    fail("invalid header name " .. quote(name))
  end
  if RESERVED[lower(name)] then
    fail("header " .. quote(name) .. " is set by the stack")
  end
end

-- Values -----------------------------------------------------------------

local function check_value(name, v)
  local t = type(v)
  if t == "number" then
    v = tostring(v)
  elseif t ~= "string" then
    fail("header " .. quote(name) .. " value must be a string or number")
  end
  if find(v, "[\r\n]") then
    fail("header " .. quote(name) .. " value contains CR or LF")
  end
  if find(v, "%z") then
    fail("header " .. quote(name) .. " value contains NUL")
  end
  return v
end

-- encode -----------------------------------------------------------------

local function emit(out, name, value)
  out[#out + 1] = name .. ": " .. value .. "\r\n"
end

local function encode_line(out, line, i)
  if type(line) ~= "string" then
    fail("header line " .. i .. " must be a string")
  end
  local colon = find(line, ":", 1, true)
  if not colon then
    fail("header line " .. quote(line) .. " has no colon")
  end
  -- HCOLON = *( SP / HTAB ) ":" SWS
  local name = match(sub(line, 1, colon - 1), "^(.-)[ \t]*$")
  local value = match(sub(line, colon + 1), "^[ \t]*(.*)$")
  check_name(name)
  emit(out, name, check_value(name, value))
end

local function encode_field(out, name, v)
  check_name(name)
  if type(v) == "table" then
    local n = 0
    for _ in pairs(v) do n = n + 1 end
    local values = {}
    for i, x in ipairs(v) do values[i] = check_value(name, x) end
    if #values ~= n then
      fail("header " .. quote(name) .. " value must be a string or number")
    end
    for _, x in ipairs(values) do emit(out, name, x) end
  else
    emit(out, name, check_value(name, v))
  end
end

local function encode(h)
  if h == nil then return "" end
  if type(h) ~= "table" then
    fail("headers must be a table")
  end
  local out = {}
  local n = 0
  for i, line in ipairs(h) do
    n = i
    encode_line(out, line, i)
  end
  local names = {}
  for k in pairs(h) do
    if type(k) == "string" then
      names[#names + 1] = k
    elseif not (type(k) == "number" and k >= 1 and k <= n and k % 1 == 0) then
      fail("invalid header key " .. quote(k))
    end
  end
  sort(names, function(a, b)
    local la, lb = lower(a), lower(b)
    if la ~= lb then return la < lb end
    return a < b
  end)
  for _, name in ipairs(names) do
    encode_field(out, name, h[name])
  end
  return concat(out)
end

-- parse ------------------------------------------------------------------

local function trim(s)
  return match(s, "^[ \t]*(.-)[ \t]*$")
end

local function parse(block)
  if block == nil then return {} end
  if type(block) ~= "string" then
    fail("header block must be a string")
  end
  local fields = {}
  local cur
  local pos, len = 1, #block
  while pos <= len do
    local nl = find(block, "\n", pos, true)
    local line
    if nl then
      line = sub(block, pos, nl - 1)
      pos = nl + 1
    else
      line = sub(block, pos)
      pos = len + 1
    end
    if byte(line, -1) == 13 then line = sub(line, 1, -2) end
    if line == "" then
      -- Blank line: skipped before the first field, ends the block after.
      if cur then break end
    elseif find(line, "^[ \t]") then
      -- RFC 3261 §7.3.1: folded LWS is equivalent to a single SP.
      if not cur then
        fail("header block starts with a continuation line")
      end
      local more = trim(line)
      if more ~= "" then
        cur.value = (cur.value == "") and more or (cur.value .. " " .. more)
      end
    else
      local colon = find(line, ":", 1, true)
      if not colon then
        fail("header line " .. quote(line) .. " has no colon")
      end
      local name = match(sub(line, 1, colon - 1), "^(.-)[ \t]*$")
      cur = { name = canonical(name), value = trim(sub(line, colon + 1)) }
      fields[#fields + 1] = cur
    end
  end
  return fields
end

-- Public API ---------------------------------------------------------------

-- M.encode(h) -> "Name: value\r\n..." ("" for nil or an empty table).
M.encode = public(encode)

-- M.canonical(name) -> canonical spelling, compact forms expanded.
M.canonical = public(canonical)

-- M.parse(block) -> { {name=, value=}, ... } with folding undone.
M.parse = public(parse)

-- M.is_token(s) -> true if s is a valid RFC 3261 token.
M.is_token = is_token

return M
