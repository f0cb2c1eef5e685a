-- wrk script of the soak run (benches/soak): the steady load on `GET /notes`.
--
-- Environment:
--   TOKENS_FILE  one bearer token a line; each request carries the next one (tokens of the
--                authorization server's current keys, minted by the harness for this segment).
--
-- Every response is counted: `200`, or a refusal by status, the `reason` of mcpauth's JSON error
-- body and the second of the wall clock it arrived in (`401:unknown_key@1795700000`), so the
-- harness can tell a refusal it allows (notes could not have the key yet, that second) from a
-- wrong one. `done` prints two lines the harness parses: `WRK_RESULT key=value …` and
-- `WRK_OUTCOMES outcome=count …`.

local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local common = dofile(here .. "../wrk_common.lua")

local tokens_file = os.getenv("TOKENS_FILE")

setup = common.setup

-- Runs in each thread's own Lua state.
function init(args)
  outcomes = {} -- "200" or "status:reason@second" → count
  prepared, next_index = common.prepare(tokens_file, thread_index)
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
    key = status .. ":" .. reason .. "@" .. os.time()
  end
  outcomes[key] = (outcomes[key] or 0) + 1
end

function done(summary, latency, requests)
  local totals = {}
  for _, thread in ipairs(common.threads) do
    local counts = thread:get("outcomes")
    for key, count in pairs(counts) do
      totals[key] = (totals[key] or 0) + count
    end
  end
  io.write(common.result_line(summary, latency))
  local line = "WRK_OUTCOMES"
  for key, count in pairs(totals) do
    line = line .. " " .. key .. "=" .. count
  end
  io.write(line .. "\n")
end
