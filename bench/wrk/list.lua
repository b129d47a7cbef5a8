-- GET /api/v1/posts?limit=20: the newest page of 20 posts, a random seeded token.
local tokens = {}
for line in io.lines(os.getenv("BENCH_TOKENS")) do tokens[#tokens + 1] = line end
math.randomseed(os.time())

request = function()
  local headers = { ["Authorization"] = "Bearer " .. tokens[math.random(#tokens)] }
  return wrk.format("GET", "/api/v1/posts?limit=20", headers)
end
