-- wrk script: pixel hits that the analytics count: a visitor id, a source, an A/B
-- variant, and every 10th hit a signup.
local threads = 0
function setup(thread)
  thread:set("tid", threads)
  threads = threads + 1
end
local n = 0
local sources = { "google", "news%20letter", "direct" }
function request()
  n = n + 1
  local q = "uid=" .. tid .. "-" .. (n % 5000) .. "&utm_source=" .. sources[n % 3 + 1]
    .. "&variant=" .. (n % 2 == 0 and "A" or "B")
  if n % 10 == 0 then q = q .. "&event=signup" end
  return wrk.format("GET", "/pixel.gif?" .. q)
end
