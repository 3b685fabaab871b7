-- GET /me presenting a different access token on every request (from the file named by
-- BENCH_MINTED, cycled): each is a first verification, because the verified-token memo
-- (4,096 entries, emptied when full) has forgotten a token by the time it comes round.
local all = {}
for line in io.lines(os.getenv("BENCH_MINTED")) do
  all[#all + 1] = line
end
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("start", counter)
end

function init(args)
  i = start * 997
end

function request()
  i = i % #all + 1
  return wrk.format("GET", nil, { ["Authorization"] = "Bearer " .. all[i] })
end
