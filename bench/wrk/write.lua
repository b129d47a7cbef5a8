-- POST /api/v1/posts as a random seeded user.
local tokens = {}
for line in io.lines(os.getenv("BENCH_TOKENS")) do tokens[#tokens + 1] = line end
math.randomseed(os.time())
local body = '{"title":"benchmark post","body":"Written by wrk to measure the write path."}'

request = function()
  local headers = {
    ["Authorization"] = "Bearer " .. tokens[math.random(#tokens)],
    ["Content-Type"] = "application/json",
  }
  return wrk.format("POST", "/api/v1/posts", headers, body)
end
