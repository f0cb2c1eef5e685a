-- wrk script of benches/load/run.sh.
--
-- Environment:
--   TOKENS_FILE  optional: one bearer token a line; each request carries the next one, so the
--                server sees many distinct tokens (wrk alone can only repeat one header).
--
-- No `response` callback: with one, wrk hands every response to Lua, and the fastest rows would
-- measure the load generator. Statuses are checked from wrk's own count of responses above 399
-- (run.sh checks the exact status of the refusal rows once beforehand).

local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local common = dofile(here .. "../wrk_common.lua")

local tokens_file = os.getenv("TOKENS_FILE")
if tokens_file == "" then
  tokens_file = nil
end

setup = common.setup

-- Runs in each thread's own Lua state.
function init(args)
  if tokens_file then
    prepared, next_index = common.prepare(tokens_file, thread_index)
  end
end

if tokens_file then
  function request()
    next_index = next_index % #prepared + 1
    return prepared[next_index]
  end
end

function done(summary, latency, requests)
  io.write(common.result_line(summary, latency))
end
