-- wrk script of the soak run (benches/soak): the steady load on `GET /notes`.
--
-- Environment:
--   TOKENS_FILE  one bearer token a line; each request carries the next one (tokens of the
--                authorization server's current keys, minted by the harness for this segment).
--
-- Every response is counted by status, and refusals also by the `reason` of mcpauth's JSON error
-- body (`401:unknown_key`, `503:keys_unavailable`, …), so the harness can tell a refusal it
-- allows (keys not yet known to notes) from a wrong one. `done` prints two lines the harness
-- parses: `WRK_RESULT key=value …` (wrk's own counters and latency histogram) and
-- `WRK_OUTCOMES outcome=count …`.

local tokens_file = os.getenv("TOKENS_FILE")

-- Runs in the main Lua state: remember every thread, to read its counters in `done`.
local threads = {}

function setup(thread)
  thread:set("thread_index", #threads)
  table.insert(threads, thread)
end

-- Runs in each thread's own Lua state.
function init(args)
  outcomes = {} -- "200" or "401:reason" → count
  prepared = {}
  for token in io.lines(tokens_file) do
    if token ~= "" then
      prepared[#prepared + 1] = wrk.format(nil, nil, { Authorization = "Bearer " .. token })
    end
  end
  if #prepared == 0 then
    error("no tokens in " .. tostring(tokens_file))
  end
  -- Threads start far apart in the list, so they do not send the same token at the same time.
  next_index = (thread_index * 7919) % #prepared
end

function request()
  next_index = next_index % #prepared + 1
  return prepared[next_index]
end

function response(status, headers, body)
  local key
  if status == 200 then
    key = "200"
  else
    local reason = body and string.match(body, '"reason":"([%w_]+)"') or "none"
    key = status .. ":" .. reason
  end
  outcomes[key] = (outcomes[key] or 0) + 1
end

function done(summary, latency, requests)
  local totals = {}
  for _, thread in ipairs(threads) do
    local counts = thread:get("outcomes")
    for key, count in pairs(counts) do
      totals[key] = (totals[key] or 0) + count
    end
  end
  local errors = summary.errors
  io.write(string.format(
    "WRK_RESULT requests=%d duration_us=%d p50_us=%d p99_us=%d max_us=%d"
      .. " connect_errors=%d read_errors=%d write_errors=%d timeouts=%d\n",
    summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99), latency.max,
    errors.connect, errors.read, errors.write, errors.timeout))
  local line = "WRK_OUTCOMES"
  for key, count in pairs(totals) do
    line = line .. " " .. key .. "=" .. count
  end
  io.write(line .. "\n")
end
