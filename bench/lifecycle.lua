-- Session lifecycles, one step per request, each connection its own user:
-- log in, list sessions, revoke the session just opened (DELETE /auth/sessions/{id}),
-- log in again, log out. Users come from BENCH_USERS (username per line, one per thread;
-- password BENCH_PASSWORD).
local users, next_index = {}, 1

function setup(thread)
  if #users == 0 then
    for line in io.lines(os.getenv("BENCH_USERS")) do users[#users + 1] = line end
  end
  thread:set("user", users[next_index])
  next_index = next_index + 1
end

function init(args)
  step, access, session = 0, nil, nil
  password = os.getenv("BENCH_PASSWORD")
end

local function login()
  return wrk.format("POST", "/auth/login", { ["Content-Type"] = "application/x-www-form-urlencoded" },
    "username=" .. user .. "&password=" .. password)
end

function request()
  if step == 0 or step == 3 or access == nil then
    return login()
  elseif step == 1 then
    return wrk.format("GET", "/auth/sessions", { ["Authorization"] = "Bearer " .. access })
  elseif step == 2 then
    return wrk.format("DELETE", "/auth/sessions/" .. (session or "none"), { ["Authorization"] = "Bearer " .. access })
  else
    return wrk.format("POST", "/auth/logout", { ["Authorization"] = "Bearer " .. access })
  end
end

function response(status, headers, body)
  if step == 0 or step == 3 then
    access = body:match('"access_token":"([^"]+)"')
  elseif step == 1 then
    session = body:match('"id":"([^"]+)"[^}]*"current":true')
  end
  step = (step + 1) % 5
end
