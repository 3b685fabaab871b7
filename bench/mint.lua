-- Mint access tokens fast: refresh chains as in refresh.lua, appending every response's
-- access token to the file named by BENCH_MINTED (one per line). Tokens to start the
-- chains come from BENCH_TOKENS, one per thread.
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

function init(args)
  out = io.open(os.getenv("BENCH_MINTED"), "a")
end

function request()
  return wrk.format("POST", nil, { ["Content-Type"] = "application/json" },
    '{"refresh_token":"' .. token .. '"}')
end

function response(status, headers, body)
  local t = body:match('"refresh_token":"([^"]+)"')
  if t then token = t end
  local a = body:match('"access_token":"([^"]+)"')
  if a then out:write(a, "\n"); out:flush() end
end
