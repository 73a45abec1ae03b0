-- wrk script: every request gets a unique id (thread number and a per-thread counter), so
-- the records in Redis can be checked for loss and duplicates.
local threads = 0
function setup(thread)
  thread:set("tid", threads)
  threads = threads + 1
end
local n = 0
function request()
  n = n + 1
  return wrk.format("GET", "/pixel.gif?id=" .. tid .. "-" .. n .. "&utm_source=bench")
end
function done(summary, latency, requests)
  io.write(string.format("WRK_RESULT requests=%d non2xx=%d errors=%d duration_us=%d\n",
    summary.requests, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.duration))
end
