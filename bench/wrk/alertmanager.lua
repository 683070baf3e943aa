-- An Alertmanager group of 5 alerts with bearer authentication, as Alertmanager 0.25 sends it.
-- Each request gets its own groupKey (the body's @ID@), so each is a new group state and is
-- queued, not answered as a duplicate. BENCH_TOKEN is the route's TOKEN.
dofile(os.getenv("BENCH_WRK_DIR") .. "/common.lua")

local body = read_file(os.getenv("BENCH_BODY"))
local at = assert(string.find(body, "@ID@", 1, true), "the body has no @ID@")
local prefix, suffix = string.sub(body, 1, at - 1), string.sub(body, at + 4)
local headers = {
  ["User-Agent"] = "Alertmanager/0.25.0",
  ["Authorization"] = "Bearer " .. os.getenv("BENCH_TOKEN"),
  ["Content-Type"] = "application/json",
}
local counter = 0

function request()
  counter = counter + 1
  local id = run_label .. "-" .. tid .. "-" .. counter
  return wrk.format("POST", next_path(), headers, prefix .. id .. suffix)
end
