-- scripts/proxy.lua: a registrar and a stateful proxy for one site
--
-- Phones register here (digest, users in SQLite); a call (or MESSAGE...)
-- to a registered user rings every phone of that user at once (forking,
-- RFC 3261 §16); the first to answer wins, the others get a CANCEL. The
-- proxy record-routes, so the BYE and re-INVITEs pass through it too
-- (forwarded by the core, no script involved), as do CANCELs, ACKs and
-- every response.
--
--   sipstack user add alice secret --db sipstack.db
--   sipstack user add bob secret --db sipstack.db
--   sipstack --listen udp:192.0.2.10:5060 scripts/proxy.lua
--
-- Switches (environment-free on purpose: edit them here):
local DATABASE = "sipstack.db"   -- bindings and users
local AUTH     = true            -- digest for REGISTER, and 407 for calls
                                 -- from our own users
local DOMAINS  = {}              -- extra domain names we serve, e.g.
                                 -- { "example.com" }; the addresses we
                                 -- listen on are always ours
local RELAY_OTHER_DOMAINS = false -- true: requests for other domains are
                                 -- relayed (our authenticated users only);
                                 -- false: 403
local RING_TIMEOUT = 60          -- seconds before an unanswered call ends
local NODES = {}                 -- several nodes sharing a Redis store:
                                 -- the other nodes' IP addresses, e.g.
                                 -- { "192.0.2.11" }; a call one of them
                                 -- routes here for a phone whose TCP/TLS
                                 -- connection this node holds is passed
                                 -- on without a second challenge (trust
                                 -- by source address: keep the nodes on
                                 -- a network of their own, as a spoofed
                                 -- UDP source could skip the 407)

sip.configure{ user_agent = "sipstack-proxy" }

sip.registrar.configure{
  database    = DATABASE,
  auth        = AUTH,
  realm       = "sipstack",
  algorithms  = { "MD5" },       -- see scripts/registrar.lua
  min_expires = 60,
  max_expires = 86400,
}

sip.proxy.configure{ record_route = true }

local served = {}
for _, d in ipairs(DOMAINS) do served[d:lower()] = true end

-- "sip:bob@host:port;params" -> "bob", "host" (user nil for "sip:host")
local function split(uri)
  local rest = uri and uri:match("^sips?:(.*)$")
  if not rest then return nil end
  rest = rest:gsub("[;?].*$", "")
  local user, hostport = rest:match("^([^@]*)@(.*)$")
  if not user then hostport = rest end
  local host = hostport:match("^%[.-%]") or hostport:match("^[^:]*")
  return user, host:lower()
end

local function ours(host)
  if served[host] then return true end
  local _, me = split(sip.local_uri() or "")
  return host == me
end

local peers = {}
for _, ip in ipairs(NODES) do peers[ip] = true end

local function from_peer(req)
  local ip = req.source:match("^%[(.-)%]") or req.source:match("^[^:]+")
  return peers[ip] == true
end

-- our listeners, named as a binding's node names the one it came in on
local mine
local function is_mine(node)
  if not mine then
    mine = {}
    for _, l in ipairs(sip.listeners()) do mine[l] = true end
  end
  return mine[node] == true
end

-- A phone registered over TCP, TLS or WebSocket is reached over the
-- connection it registered on (behind NAT its Contact leads nowhere):
-- from here if this node holds it, else through the node that does, a
-- Route to it as the first hop (like a Path, RFC 3327). Others go to
-- their Contact.
local function target(b)
  if not (b.received and b.received:find(";transport=", 1, true)) then
    return b
  end
  if not b.node or is_mine(b.node) then
    return { uri = b.uri, q = b.q, path = b.path, next_hop = b.received }
  end
  local hop = "<" .. b.node .. ";lr>"
  return { uri = b.uri, q = b.q,
           path = b.path and (hop .. "," .. b.path) or hop }
end

-- A request another node routed here (target() above, there): its
-- Request-URI is the binding's Contact; find that binding of the To's
-- AOR among those whose connection we hold
local function held_binding(req)
  local user, host = split(req.to)
  if not user or user == "" then return nil end
  local bindings = sip.location.lookup("sip:" .. user .. "@" .. host)
  for _, b in ipairs(bindings or {}) do
    if b.uri == req.uri and b.node and is_mine(b.node) then return b end
  end
end

-- Every request out of dialog that no other part takes (REGISTER goes
-- to the registrar, in-dialog requests, ACK and CANCEL to the proxy
-- core) comes here.
sip.on_request(function(req)
  local user, host = split(req.uri)
  if not user or user == "" then
    return      -- for the server itself: OPTIONS 200, others 405
  end

  local _, from_host = split(req.from)
  local from_us = from_host and ours(from_host)

  -- a call another node routed here for a phone connected to this one
  if from_peer(req) then
    local b = held_binding(req)
    if b then
      req:proxy{ targets = { target(b) }, timeout = RING_TIMEOUT }
      return
    end
  end

  if not ours(host) then
    if not RELAY_OTHER_DOMAINS then return 403, "Relaying Denied" end
    if AUTH and not sip.auth.require(req, { proxy = true }) then return end
    req:relay()
    return      -- the answer went upstream (or goes when this returns)
  end

  -- callers from our domain prove who they are (407, then again)
  if AUTH and from_us and req.method == "INVITE" then
    if not sip.auth.require(req, { proxy = true }) then return end
  end

  local bindings, err = sip.location.lookup("sip:" .. user .. "@" .. host)
  if not bindings then
    -- the store cannot answer (Redis down): say so, and when to retry
    sip.log.warn("lookup_failed", { user = user, err = err })
    req:reply(503, "Location Unavailable", { ["Retry-After"] = "5" })
    return
  end
  if #bindings == 0 then
    return 404
  end

  local targets = {}
  for i, b in ipairs(bindings) do targets[i] = target(b) end
  local res = req:proxy{ targets = targets, timeout = RING_TIMEOUT }
  if res.code >= 300 and not res.answered then
    sip.log.info("call failed", { to = req.uri, code = res.code,
                                  branches = #res.branches })
  end
  -- returning forwards the best response (a 2xx went already)
end)
