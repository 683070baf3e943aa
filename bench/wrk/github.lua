-- GitHub's push delivery, signed (X-Hub-Signature-256 over the unchanged body, computed once by
-- payloads.py and verified by the bridge on every request), with a unique X-GitHub-Delivery per
-- request so each is queued, not answered as a duplicate.
dofile(os.getenv("BENCH_WRK_DIR") .. "/common.lua")

local body = read_file(os.getenv("BENCH_BODY"))
local headers = {
  ["User-Agent"] = "GitHub-Hookshot/bench",
  ["Content-Type"] = "application/json",
  ["X-GitHub-Event"] = "push",
  ["X-GitHub-Hook-ID"] = "292430182",
  ["X-Hub-Signature-256"] = read_file(os.getenv("BENCH_SIGNATURE")),
}
local counter = 0

function request()
  counter = counter + 1
  headers["X-GitHub-Delivery"] = run_label .. "-" .. tid .. "-" .. counter
  return wrk.format("POST", next_path(), headers, body)
end
