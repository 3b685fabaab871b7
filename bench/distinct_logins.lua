-- Failed logins, each with a username and an X-Forwarded-For address never used
-- before (the proxy in front is trusted): what the limiters remember per key.
-- BENCH_COUNT requests per thread, then the thread stops.
local threads = 0

function setup(thread)
  threads = threads + 1
  thread:set("id", threads)
end

function init(args)
  n = 0
  limit = tonumber(os.getenv("BENCH_COUNT") or "10000")
  round = os.getenv("BENCH_ROUND") or "0"
end

function request()
  n = n + 1
  local k = id * 1000000 + n
  local ip = string.format("10.%d.%d.%d", math.floor(k / 65536) % 256, math.floor(k / 256) % 256, k % 256)
  return wrk.format("POST", "/auth/login", {
    ["Content-Type"] = "application/x-www-form-urlencoded",
    ["X-Forwarded-For"] = ip,
  }, "username=r" .. round .. "u" .. k .. "&password=not-the-password")
end

function response(status, headers, body)
  if n >= limit then wrk.thread:stop() end
end
