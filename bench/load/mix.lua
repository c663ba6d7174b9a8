-- wrk script for bench/load/run.sh.
-- Arguments (after --): <tokens.tsv> <logins.tsv> <mode: reads | mix | edits | logins>
--   reads:  authorized reads only (teams, members, chat interfaces of the caller's organization)
--   mix:    89 % reads, 10 % chat-interface edits (audited, sent as webhooks), 1 % logins
--   edits:  the mix without its logins (reads in their place), to tell the parts apart
--   logins: the mix without its edits
local rows, logins = {}, {}
local mode = "reads"

local function split(s, sep)
  local out = {}
  for part in string.gmatch(s, "([^" .. sep .. "]+)") do out[#out + 1] = part end
  return out
end

function init(args)
  mode = args[3] or "reads"
  for line in io.lines(args[1]) do
    local f = split(line, "\t")
    rows[#rows + 1] = { org = f[1], token = f[2], chats = split(f[3] or "", ",") }
  end
  for line in io.lines(args[2]) do
    local f = split(line, "\t")
    logins[#logins + 1] = { email = f[1], password = f[2] }
  end
  math.randomseed(os.time() + math.floor(os.clock() * 1e6))
end

local reads = { "/teams", "/members", "/chat-interfaces" }

function request()
  local r = rows[math.random(#rows)]
  local auth = { ["Authorization"] = "Bearer " .. r.token }
  local roll = math.random(100)
  local logins_on = mode == "mix" or mode == "logins"
  local edits_on = mode == "mix" or mode == "edits"
  if logins_on and roll == 1 then
    local l = logins[math.random(#logins)]
    return wrk.format("POST", "/api/v1/auth/login", { ["Content-Type"] = "application/json" },
      string.format('{"email":"%s","password":"%s"}', l.email, l.password))
  end
  if edits_on and roll > 1 and roll <= 11 and #r.chats > 0 then
    local chat = r.chats[math.random(#r.chats)]
    auth["Content-Type"] = "application/json"
    return wrk.format("PATCH", "/api/v1/orgs/" .. r.org .. "/chat-interfaces/" .. chat, auth,
      string.format('{"description":"edited %d"}', math.random(1000000)))
  end
  return wrk.format("GET", "/api/v1/orgs/" .. r.org .. reads[math.random(#reads)] .. "?limit=20", auth)
end

-- Each thread counts its answers of 400 and above by status, so a run's errors can be told apart
-- (the script keeps wrk's full output); the main thread prints the totals when the run ends.
local threads = {}

function setup(thread)
  threads[#threads + 1] = thread
end

statuses = {}

function response(status, headers, body)
  if status >= 400 then
    statuses[status] = (statuses[status] or 0) + 1
  end
end

function done(summary, latency, requests)
  local total = {}
  for _, t in ipairs(threads) do
    for status, n in pairs(t:get("statuses") or {}) do
      total[status] = (total[status] or 0) + n
    end
  end
  for status, n in pairs(total) do
    io.write(string.format("answers with status %d: %d\n", status, n))
  end
end
