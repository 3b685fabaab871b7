-- Refresh chains: one connection per thread, each thread walks its own session's
-- chain (every response's refresh_token is the next request's). Tokens come from the
-- file named by BENCH_TOKENS, one per line, one per thread.
local tokens, next_index = {}, 1

function setup(thread)
  if #tokens == 0 then
    for line in io.lines(os.getenv("BENCH_TOKENS")) do
      tokens[#tokens + 1] = line
    end
  end
  thread:set("token", tokens[next_index])
  next_index = next_index + 1
end

function request()
  return wrk.format("POST", nil, { ["Content-Type"] = "application/json" },
    '{"refresh_token":"' .. token .. '"}')
end

function response(status, headers, body)
  local t = body:match('"refresh_token":"([^"]+)"')
  if t then token = t end
end
