-- wrk script: POST beacons to /e, as the tracker script sends them (text/plain JSON, no
-- preflight), each event with a unique id. `wrk … -s bench/beacon.lua -- N`: N events per
-- request (1: one object; more: a JSON array, the batch a page flushes at once).
local threads = 0
function setup(thread)
  thread:set("tid", threads)
  threads = threads + 1
end
local batch = 1
function init(args)
  batch = tonumber(args[1] or "1")
end
local n = 0
local function event()
  n = n + 1
  return string.format(
    '{"event":"pageview","site":"bench","id":"%d-%d","url":"https://shop.example/p?q=1","sw":1280,"lang":"en-US"}',
    tid, n)
end
function request()
  local body
  if batch == 1 then
    body = event()
  else
    local events = {}
    for i = 1, batch do events[i] = event() end
    body = "[" .. table.concat(events, ",") .. "]"
  end
  return wrk.format("POST", "/e", { ["Content-Type"] = "text/plain;charset=UTF-8" }, body)
end
function done(summary, latency, requests)
  io.write(string.format("WRK_RESULT requests=%d non2xx=%d errors=%d duration_us=%d\n",
    summary.requests, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.duration))
end
