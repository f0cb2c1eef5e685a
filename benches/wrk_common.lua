-- Shared by the wrk scripts of benches/load and benches/soak, each of which loads it with
-- `dofile` (in every Lua state wrk makes: the main one and one per thread).

local common = {}

-- Runs in the main Lua state: remember every thread, to read its counters in `done`.
common.threads = {}
function common.setup(thread)
  thread:set("thread_index", #common.threads)
  table.insert(common.threads, thread)
end

-- Every request of `file` (one bearer token a line) formatted once, so that `request` only picks
-- one: the load generator's own cost per request stays as small as with a fixed header. Also the
-- index to start at: threads start far apart in the list, so they do not send the same token at
-- the same time (which would let a single-flight cache verify once for several requests).
function common.prepare(file, thread_index)
  local prepared = {}
  for token in io.lines(file) do
    if token ~= "" then
      prepared[#prepared + 1] = wrk.format(nil, nil, { Authorization = "Bearer " .. token })
    end
  end
  if #prepared == 0 then
    error("no tokens in " .. tostring(file))
  end
  return prepared, (thread_index * 7919) % #prepared
end

-- The line `WRK_RESULT key=value …` the harnesses parse: wrk's own counters and latency
-- histogram, so nothing depends on wrk's human-readable output. `status_errors` counts the
-- responses with a status above 399.
function common.result_line(summary, latency)
  local errors = summary.errors
  return string.format(
    "WRK_RESULT requests=%d duration_us=%d p50_us=%d p99_us=%d max_us=%d"
      .. " status_errors=%d connect_errors=%d read_errors=%d write_errors=%d timeouts=%d\n",
    summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99), latency.max,
    errors.status, errors.connect, errors.read, errors.write, errors.timeout)
end

return common
