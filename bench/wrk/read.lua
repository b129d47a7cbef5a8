-- GET /api/v1/posts/{id}: a random seeded post, a random seeded token.
local ids, tokens = {}, {}
for line in io.lines(os.getenv("BENCH_POSTS")) do ids[#ids + 1] = line end
for line in io.lines(os.getenv("BENCH_TOKENS")) do tokens[#tokens + 1] = line end
math.randomseed(os.time())

request = function()
  local headers = { ["Authorization"] = "Bearer " .. tokens[math.random(#tokens)] }
  return wrk.format("GET", "/api/v1/posts/" .. ids[math.random(#ids)], headers)
end
