-- Shared by the wrk scripts of bench/run.sh. Settings come from the environment:
--   BENCH_PATHS    request paths, space-separated; requests go to them in turn (several routes)
--   BENCH_EXPECT   the status every answer should have (default 202); others are counted
--   BENCH_RATE     optional: pace the whole run to this many requests per second (see below)
--   BENCH_THREADS  wrk's -t, needed with BENCH_RATE
--   BENCH_RUN      a label unique to this run, put into every generated id
--   BENCH_TARGETS  optional: host:port of several servers, space-separated; wrk thread n keeps
--                  its connections on server (n - 1) mod count (bench/replicas.sh: the load
--                  spread over replicas, one latency histogram for all of them)
--
-- Pacing: wrk alone sends as fast as answers come back. With BENCH_RATE each thread keeps its
-- own timetable of send slots, one every BENCH_THREADS / BENCH_RATE seconds (clock_gettime
-- through LuaJIT's FFI), and every connection that is free takes the next slot and waits for it
-- through wrk's delay(). The rate holds as long as enough connections are free; a slot that is
-- already past is sent at once, so a stall is caught up rather than skipped. Latency is measured
-- by wrk from the moment a request is written.

local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clock_id, bench_timespec *tp);
]]
local CLOCK_MONOTONIC = 1
local timespec = ffi.new("bench_timespec")

local function now_ms()
  ffi.C.clock_gettime(CLOCK_MONOTONIC, timespec)
  return tonumber(timespec.tv_sec) * 1000 + tonumber(timespec.tv_nsec) / 1e6
end

function read_file(path)
  local file = assert(io.open(path, "rb"), "cannot open " .. tostring(path))
  local text = file:read("*a")
  file:close()
  return text
end

local paths = {}
for path in string.gmatch(os.getenv("BENCH_PATHS") or "/", "%S+") do
  table.insert(paths, path)
end
local path_index = 0

-- The next path, in turn.
function next_path()
  path_index = path_index % #paths + 1
  return paths[path_index]
end

run_label = os.getenv("BENCH_RUN") or tostring(os.time())
local expect = tonumber(os.getenv("BENCH_EXPECT") or "202")

local targets = {}
for target in string.gmatch(os.getenv("BENCH_TARGETS") or "", "%S+") do
  table.insert(targets, target)
end

-- setup() runs in wrk's main thread once per thread; thread:set() gives each its id.
local threads = {}
function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
  if #targets > 0 then
    local target = targets[(#threads - 1) % #targets + 1]
    local host, port = string.match(target, "^(.+):(%d+)$")
    thread.addr = assert(wrk.lookup(host, port)[1], "cannot resolve " .. target)
  end
end

unexpected = 0
function response(status, headers, body)
  if status ~= expect then
    unexpected = unexpected + 1
    if unexpected <= 3 then
      io.stderr:write("unexpected answer " .. status .. ": " .. string.sub(body or "", 1, 300) .. "\n")
    end
  end
end

local rate = tonumber(os.getenv("BENCH_RATE") or "")
if rate and rate > 0 then
  local interval = tonumber(os.getenv("BENCH_THREADS") or "1") * 1000 / rate
  local next_slot = nil
  function delay()
    local now = now_ms()
    next_slot = (next_slot or now) + interval
    local wait = next_slot - now
    if wait < 0 then
      return 0
    end
    return wait
  end
end

function done(summary, latency, requests)
  local unexpected_total = 0
  for _, thread in ipairs(threads) do
    unexpected_total = unexpected_total + (thread:get("unexpected") or 0)
  end
  local errors = summary.errors
  io.write(string.format(
    "RESULT requests=%d duration_s=%.3f rps=%.1f p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f max_ms=%.3f unexpected=%d socket_errors=%d\n",
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    latency.max / 1000, unexpected_total,
    errors.connect + errors.read + errors.write + errors.timeout))
end
