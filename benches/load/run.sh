#!/usr/bin/env bash
# The load benchmark of mcpauth (issue 6): the `notes` example (release build, development
# authorization server) against two reference servers in the same run, driven by `wrk` over
# loopback, one server core.
#
#   benches/load/run.sh                       # from the repository root
#   DURATION=30 CONNECTIONS=64 TOKENS=50000 benches/load/run.sh
#
# Settings (environment):
#   DURATION     seconds measured per scenario (default 10)
#   WARMUP       seconds of unmeasured load before each scenario (default 2)
#   THREADS      wrk threads (default 1)
#   CONNECTIONS  wrk connections (default 32)
#   TOKENS       distinct valid tokens for the "many distinct" rows (default 20000)
#
# Scenarios: against `notes`: metadata, one valid token repeated, many distinct valid tokens,
# a token with a bad signature (known `kid`), no token; against the references: `ceiling` (bare
# axum, no authentication) and `bare jsonwebtoken` (bare axum + `jsonwebtoken::decode`, same
# tokens). It prints one table: requests/s, p50/p99 latency, the server's peak RSS, and the
# ratios the issue's targets are stated in. A benchmark, not a test: it never fails on timings,
# only flags wrong statuses or socket errors.
set -euo pipefail

DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
THREADS=${THREADS:-1}
CONNECTIONS=${CONNECTIONS:-32}
TOKENS=${TOKENS:-20000}

for setting in DURATION WARMUP THREADS CONNECTIONS TOKENS; do
  if ! [[ ${!setting} =~ ^[0-9]+$ ]] || ((${!setting} == 0)); then
    echo "run.sh: $setting=${!setting} must be a positive whole number" >&2
    exit 2
  fi
done

# Paths relative to the repository root, wherever the script is started from.
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
# shellcheck source=benches/common.sh
source benches/common.sh
LUA_SCRIPT=benches/load/wrk.lua

WORK=$(mktemp -d)
SERVER_PIDS=()
# Stop every server this script started, whatever way it ends.
cleanup() {
  local pid
  for pid in "${SERVER_PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${SERVER_PIDS[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$WORK"
}
trap cleanup EXIT

# --- the load generator -------------------------------------------------------------------
# wrk, not oha: the "many distinct tokens" rows need a different Authorization header on each
# request, which only wrk's Lua scripting can do.
if ! command -v wrk >/dev/null; then
  echo "run.sh: installing wrk from the Debian archive" >&2
  SUDO=()
  if (($(id -u) != 0)); then SUDO=(sudo); fi
  "${SUDO[@]}" apt-get install -y wrk >&2 ||
    { "${SUDO[@]}" apt-get update >&2 && "${SUDO[@]}" apt-get install -y wrk >&2; } ||
    die "cannot install wrk (apt-get install wrk)"
fi

# --- the servers' binaries ----------------------------------------------------------------
# Cargo's JSON messages name the built executables, wherever the target directory is.
echo "run.sh: building notes and load-reference (release)" >&2
cargo build --release -p notes -p load-reference --message-format=json-render-diagnostics \
  >"$WORK/build.json"
NOTES_BIN=$(executable notes) || die "cargo did not report the notes binary"
REFERENCE_BIN=$(executable load-reference) || die "cargo did not report the load-reference binary"

# --- one server core ----------------------------------------------------------------------
# The servers get one CPU and wrk another, so the load generator never competes with the
# server it measures; a tokio runtime started on one CPU has one worker thread. The first two
# CPUs this script may use, from its own affinity list (e.g. "0-3,6").
SERVER_PIN=()
LOAD_PIN=()
PINNING="not pinned (fewer than 2 CPUs or no taskset): server and wrk share the CPUs"
if command -v taskset >/dev/null; then
  mapfile -t CPUS < <(allowed_cpus)
  if ((${#CPUS[@]} >= 2)); then
    SERVER_PIN=(taskset -c "${CPUS[0]}")
    LOAD_PIN=(taskset -c "${CPUS[1]}")
    PINNING="servers on CPU ${CPUS[0]}, wrk on CPU ${CPUS[1]}"
  fi
fi

# Waits until FILE has a line matching the extended regex PATTERN, or PID dies, or 30 s pass.
wait_for_line() {
  local file=$1 pattern=$2 pid=$3 tries=300
  until grep -qE "$pattern" "$file"; do
    kill -0 "$pid" 2>/dev/null || die "$(basename "$file" .out) exited: $(cat "${file%.out}.err")"
    ((--tries > 0)) || die "timed out waiting for '$pattern' in $file"
    sleep 0.1
  done
}

# --- notes, with its development authorization server --------------------------------------
# No MCP_AUTH_ISSUER: notes starts the development authorization server in-process and prints
# its issuer. PORT=0: an ephemeral port on 127.0.0.1. RUST_LOG unset: notes' own default.
env -u MCP_AUTH_ISSUER -u MCP_AUTH_ISSUER_TYPE -u MCP_RESOURCE_IDENTIFIER -u BIND -u RUST_LOG \
  PORT=0 "${SERVER_PIN[@]}" "$NOTES_BIN" >"$WORK/notes.out" 2>"$WORK/notes.err" &
NOTES_PID=$!
SERVER_PIDS+=("$NOTES_PID")
# The token line is the last one notes prints before it serves (its socket is already bound).
wait_for_line "$WORK/notes.out" '^notes: token ' "$NOTES_PID"
NOTES_URL=$(sed -n 's/^notes: listening on //p' "$WORK/notes.out")
RESOURCE=$(sed -n 's/^notes: resource //p' "$WORK/notes.out")
ISSUER=$(sed -n 's/^notes: development authorization server at \(.*\) (development only)$/\1/p' \
  "$WORK/notes.out")
[[ -n $NOTES_URL && -n $RESOURCE && -n $ISSUER ]] || die "unexpected notes output: $(cat "$WORK/notes.out")"

# --- the reference servers ----------------------------------------------------------------
# They decode the development server's RS256 key once, at start-up, from its JWKS.
"${SERVER_PIN[@]}" "$REFERENCE_BIN" serve "$ISSUER" "$RESOURCE" \
  >"$WORK/reference.out" 2>"$WORK/reference.err" &
REFERENCE_PID=$!
SERVER_PIDS+=("$REFERENCE_PID")
wait_for_line "$WORK/reference.out" '^jwt ' "$REFERENCE_PID"
CEILING_URL=$(sed -n 's/^ceiling //p' "$WORK/reference.out")
JWT_URL=$(sed -n 's/^jwt //p' "$WORK/reference.out")

# --- tokens -------------------------------------------------------------------------------
# Every client-credentials request to the development server returns a freshly signed RS256
# token (new `jti`, same key), audience = the notes resource, scope read:notes.
echo "run.sh: minting $TOKENS tokens at $ISSUER/token" >&2
TOKENS_FILE=$WORK/tokens.txt
"${LOAD_PIN[@]}" "$REFERENCE_BIN" tokens "$ISSUER" "$RESOURCE" "$TOKENS" >"$TOKENS_FILE"
(($(sort -u "$TOKENS_FILE" | wc -l) == TOKENS)) || die "expected $TOKENS distinct tokens"
TOKEN=$(head -n 1 "$TOKENS_FILE")
# The same token with another signature: the first base64url character of the signature
# replaced, so it still decodes and still names a known `kid`; only the signature check fails.
SIGNATURE=${TOKEN##*.}
if [[ ${SIGNATURE:0:1} == A ]]; then FLIPPED=B; else FLIPPED=A; fi
BAD_TOKEN="${TOKEN%.*}.${FLIPPED}${SIGNATURE:1}"

# The memory notes holds once started and done minting, before any load.
vm_hwm_kib() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status"; }
NOTES_STARTUP_HWM=$(vm_hwm_kib "$NOTES_PID")

# --- scenarios ----------------------------------------------------------------------------
WRK_ARGS=(-t"$THREADS" -c"$CONNECTIONS" --latency -s "$LUA_SCRIPT")
ROWS=()

# run_scenario LABEL PID EXPECTED_STATUS TOKENS_FILE URL [wrk -H options]
# A refusal row's exact status is checked once with curl (wrk counts only "above 399"). A
# warm-up run first (connections, allocator, caches; not measured), then the peak RSS is reset
# to the current RSS so that the peak read afterwards belongs to this scenario's load.
run_scenario() {
  local label=$1 pid=$2 expect=$3 tokens=$4 url=$5
  shift 5
  echo "run.sh: $label" >&2
  if ((expect != 200)); then
    local status
    status=$(curl -s -o /dev/null -w '%{http_code}' "$@" "$url") || die "curl failed for $label"
    [[ $status == "$expect" ]] || die "$label: expected $expect, got $status"
  fi
  TOKENS_FILE=$tokens "${LOAD_PIN[@]}" wrk "${WRK_ARGS[@]}" -d"${WARMUP}s" "$@" "$url" >/dev/null
  local reset=no
  if echo 5 2>/dev/null >"/proc/$pid/clear_refs"; then reset=yes; fi
  local output result
  output=$(TOKENS_FILE=$tokens "${LOAD_PIN[@]}" wrk "${WRK_ARGS[@]}" -d"${DURATION}s" "$@" "$url")
  result=$(grep '^WRK_RESULT ' <<<"$output") || die "no result from wrk for $label: $output"
  ROWS+=("label=$label expect=$expect hwm_kib=$(vm_hwm_kib "$pid") hwm_reset=$reset ${result#WRK_RESULT }")
}

METADATA_URL=$(sed -n 's/^notes: metadata: curl -s //p' "$WORK/notes.out")
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
run_scenario "notes: metadata" "$NOTES_PID" 200 "" "$METADATA_URL"
run_scenario "notes: valid, one token repeated" "$NOTES_PID" 200 "" "$NOTES_URL/notes" \
  -H "Authorization: Bearer $TOKEN"
run_scenario "notes: valid, many distinct tokens" "$NOTES_PID" 200 "$TOKENS_FILE" "$NOTES_URL/notes"
run_scenario "notes: invalid signature" "$NOTES_PID" 401 "" "$NOTES_URL/notes" \
  -H "Authorization: Bearer $BAD_TOKEN"
run_scenario "notes: missing token" "$NOTES_PID" 401 "" "$NOTES_URL/notes"
run_scenario "ceiling (bare axum, no auth)" "$REFERENCE_PID" 200 "" "$CEILING_URL/notes"
run_scenario "bare jsonwebtoken, many distinct" "$REFERENCE_PID" 200 "$TOKENS_FILE" "$JWT_URL/notes"

# What notes answers a bad signature with, to show the row measures the signature check (not,
# say, a malformed-token shortcut).
BAD_CHALLENGE=$(curl -s -o /dev/null -w '%header{www-authenticate}' \
  -H "Authorization: Bearer $BAD_TOKEN" "$NOTES_URL/notes")

# --- report -------------------------------------------------------------------------------
echo
echo "mcpauth load benchmark — commit $(commit_label), $(date -u +%Y-%m-%dT%H:%MZ)"
echo "machine: $(nproc) CPUs ($(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -n 1)); load average $LOAD_BEFORE before the scenarios, $(cut -d' ' -f1-3 /proc/loadavg) after"
echo "pinning: $PINNING"
echo "wrk:     wrk ${WRK_ARGS[*]} -d${DURATION}s [-H 'Authorization: Bearer …'] URL   (after ${WARMUP}s warm-up each; $(wrk --version 2>&1 | head -n 1 | cut -d' ' -f1-2))"
echo "tokens:  $TOKENS distinct RS256 tokens from the development server, rotated per request in the 'many distinct' rows"
echo "servers: notes = $NOTES_BIN; references = $REFERENCE_BIN (both on 127.0.0.1)"
echo "invalid-signature challenge: $BAD_CHALLENGE"
echo

# Every row as key=value pairs; awk does the arithmetic and the layout.
printf '%s\n' "${ROWS[@]}" | awk -v tokens="$TOKENS" -v startup_hwm="$NOTES_STARTUP_HWM" '
  {
    delete f
    label = ""
    for (i = 1; i <= NF; i++) {
      split($i, kv, "=")
      if (kv[1] == "label") { label = substr($0, 7, index($0, " expect=") - 7) }
      else { f[kv[1]] = kv[2] }
    }
    n++
    name[n] = label
    rps[n] = f["requests"] / (f["duration_us"] / 1e6)
    p50[n] = f["p50_us"] / 1000; p99[n] = f["p99_us"] / 1000
    hwm[n] = f["hwm_kib"] / 1024; reset[n] = f["hwm_reset"]
    reqs[n] = f["requests"]
    socket = f["connect_errors"] + f["read_errors"] + f["write_errors"] + f["timeouts"]
    check[n] = "ok"
    refused = f["status_errors"]
    if (f["expect"] < 400 && refused > 0)
      check[n] = sprintf("WRONG: %d of %d refused", refused, f["requests"])
    if (f["expect"] >= 400 && refused != f["requests"])
      check[n] = sprintf("WRONG: %d of %d not refused", f["requests"] - refused, f["requests"])
    if (socket > 0)
      check[n] = (check[n] == "ok" ? "" : check[n] "; ") sprintf("%d socket errors/timeouts", socket)
    if (label ~ /^ceiling/) ceiling = rps[n]
    if (label ~ /^bare jsonwebtoken/) bare = rps[n]
    if (label ~ /^notes/ && hwm[n] > notes_peak) notes_peak = hwm[n]
  }
  END {
    fmt = "%-36s %11s %9s %9s %10s %11s %9s  %s\n"
    printf fmt, "scenario", "requests/s", "p50 ms", "p99 ms", "peak RSS", "vs ceiling", "vs bare", "statuses"
    for (i = 1; i <= n; i++) {
      vs_bare = "";
      if (name[i] ~ /many distinct/ && bare > 0) vs_bare = sprintf("%.2f", rps[i] / bare)
      printf fmt, name[i], sprintf("%.0f", rps[i]), sprintf("%.3f", p50[i]), sprintf("%.3f", p99[i]),
        sprintf("%.1f MiB", hwm[i]), (ceiling > 0 ? sprintf("%.2f", rps[i] / ceiling) : "-"), vs_bare, check[i]
      if (name[i] ~ /many distinct/) uses = uses sprintf("%s~%.0f times (%s)", (uses == "" ? "" : ", "), reqs[i] / tokens, name[i])
      if (reset[i] != "yes") cumulative = 1
      if (check[i] != "ok") flagged++
    }
    print ""
    printf "peak RSS: the server process'"'"'s VmHWM after the scenario (notes for notes rows, load-reference for the others)%s.\n",
      (cumulative ? "; the peak could not be reset, so values are cumulative since start-up" : ", reset to the current RSS before it")
    printf "notes peak RSS: %.1f MiB after start-up and minting; %.1f MiB at most under load.\n", startup_hwm / 1024, notes_peak
    print "many distinct tokens: each of the " tokens " tokens was sent " uses ";"
    print "  they are cache misses only while a verified-token cache holds fewer than " tokens " entries (a cycle longer than an LRU misses every time)."
    if (flagged) {
      printf "\n!! %d row(s) had wrong statuses or socket errors: their numbers do not measure the scenario.\n", flagged
      exit 1
    }
  }'
