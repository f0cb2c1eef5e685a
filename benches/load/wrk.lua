-- wrk script of benches/load/run.sh.
--
-- Environment:
--   EXPECT_STATUS  the status every response must have (default 200); others are counted.
--   TOKENS_FILE    optional: one bearer token a line; each request carries the next one, so
--                  the server sees many distinct tokens (wrk alone can only repeat one header).
--
-- `done` prints one line, `WRK_RESULT key=value …`, that run.sh parses: numbers straight from
-- wrk's own counters and latency histogram, so nothing depends on wrk's human-readable output.

local expected = tonumber(os.getenv("EXPECT_STATUS") or "200")
local tokens_file = os.getenv("TOKENS_FILE")
if tokens_file == "" then
  tokens_file = nil
end

-- Runs in the main Lua state: remember every thread, to read its counters in `done`.
local threads = {}

function setup(thread)
  thread:set("thread_index", #threads)
  table.insert(threads, thread)
end

-- Runs in each thread's own Lua state.
function init(args)
  unexpected = 0 -- responses whose status was not `expected`
  unexpected_status = 0 -- the first such status, to say what went wrong
  if tokens_file then
    -- Format every request once here, so `request` only picks one: the load generator's own
    -- cost per request stays as small as with a fixed header.
    prepared = {}
    for token in io.lines(tokens_file) do
      if token ~= "" then
        prepared[#prepared + 1] = wrk.format(nil, nil, { Authorization = "Bearer " .. token })
      end
    end
    if #prepared == 0 then
      error("no tokens in " .. tokens_file)
    end
    -- Threads start far apart in the list, so they do not send the same token at the same time
    -- (which would let a single-flight cache verify once for several requests).
    next_index = (thread_index * 7919) % #prepared
  end
end

if tokens_file then
  function request()
    next_index = next_index % #prepared + 1
    return prepared[next_index]
  end
end

function response(status, headers, body)
  if status ~= expected then
    unexpected = unexpected + 1
    if unexpected_status == 0 then
      unexpected_status = status
    end
  end
end

function done(summary, latency, requests)
  local unexpected_total, example = 0, 0
  for _, thread in ipairs(threads) do
    unexpected_total = unexpected_total + thread:get("unexpected")
    local status = thread:get("unexpected_status")
    if example == 0 and status ~= 0 then
      example = status
    end
  end
  local errors = summary.errors
  io.write(string.format(
    "WRK_RESULT requests=%d duration_us=%d p50_us=%d p99_us=%d max_us=%d"
      .. " unexpected=%d unexpected_status=%d"
      .. " connect_errors=%d read_errors=%d write_errors=%d timeouts=%d\n",
    summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99), latency.max,
    unexpected_total, example,
    errors.connect, errors.read, errors.write, errors.timeout))
end
