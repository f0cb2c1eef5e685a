#!/usr/bin/env bash
# The load benchmark of mcpauth: the `notes` example (release build, development authorization
# server) and reference servers built around the same handler, driven by `wrk` over loopback,
# one server core, every scenario run in turn over several rounds.
#
#   benches/load/run.sh                       # from the repository root
#   ROUNDS=7 DURATION=10 TOKENS=50000 benches/load/run.sh
#
# Settings (environment):
#   ROUNDS       rounds; each runs every scenario once, in the same order (default 5)
#   DURATION     seconds measured per scenario and round (default 5)
#   WARMUP       seconds of unmeasured load before each measured run (default 1)
#   THREADS      wrk threads (default 1)
#   CONNECTIONS  wrk connections (default 32)
#   TOKENS       distinct valid tokens for the "many distinct" rows (default 20000)
#
# Scenarios: `notes`' GET /notes handler served by `load-reference` without authentication
# (`plain`, the reference), behind mcpauth's bearer layer (`cached`), and behind it with the
# verified-token cache off (`uncached`), each sent the same request with one token; against
# `notes` itself: one valid token repeated, many distinct valid tokens, a token with a bad
# signature (known `kid`), no token, the metadata; and `bare jsonwebtoken` (the same handler
# behind a bare `jsonwebtoken::decode`) with the many distinct tokens. The broker rows: the same
# handler behind the layer trusting an mcpauth broker (keys handed over in process, tokens from
# its token endpoint) and, as their reference, behind the layer trusting an external issuer that
# signs with the same algorithm (ES256), each with one token and with many distinct tokens
# (`load-reference broker`, a third server process). Since the machine's noise
# drifts over minutes, the scenarios are interleaved (round-robin) and every figure is the median
# over the rounds; ratios and differences are taken within each round, then their median.
#
# It prints one table: requests/s, p50/p99 latency, the server's CPU time per request (user +
# system, from /proc, all its threads), its peak RSS, and the ratios to `plain` and to `bare
# jsonwebtoken`; then the CPU the bearer layer adds per request (`cached` − `plain`), and the
# broker rows against the external issuer's (requests/s ratio, CPU difference). A
# benchmark, not a test: it never fails on timings, only flags wrong statuses or socket errors.
set -euo pipefail

ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-5}
WARMUP=${WARMUP:-1}
THREADS=${THREADS:-1}
CONNECTIONS=${CONNECTIONS:-32}
TOKENS=${TOKENS:-20000}

for setting in ROUNDS DURATION WARMUP THREADS CONNECTIONS TOKENS; do
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
pin_cpus servers wrk

# --- notes, with its development authorization server --------------------------------------
# No MCP_AUTH_ISSUER: notes starts the development authorization server in-process and prints
# its issuer. PORT=0: an ephemeral port on 127.0.0.1. RUST_LOG unset: notes' own default.
env -u MCP_AUTH_ISSUER -u MCP_AUTH_ISSUER_TYPE -u MCP_RESOURCE_IDENTIFIER -u BIND -u RUST_LOG \
  PORT=0 "${SERVER_PIN[@]}" "$NOTES_BIN" >"$WORK/notes.out" 2>"$WORK/notes.err" &
NOTES_PID=$!
SERVER_PIDS+=("$NOTES_PID")
# The pasteable request is the last line notes prints before it serves (its socket is already
# bound).
wait_for_line "$WORK/notes.out" '^curl ' "$NOTES_PID"
NOTES_URL=$(sed -n 's/^notes: listening on //p' "$WORK/notes.out")
RESOURCE=$(sed -n 's/^notes: resource //p' "$WORK/notes.out")
ISSUER=$(sed -n 's/^notes: development authorization server at \(.*\) (development only)$/\1/p' \
  "$WORK/notes.out")
[[ -n $NOTES_URL && -n $RESOURCE && -n $ISSUER ]] || die "unexpected notes output: $(cat "$WORK/notes.out")"

# --- the reference servers ----------------------------------------------------------------
# mcpauth resource servers for notes' resource trusting its development server (metadata and
# keys fetched at start-up), and the jsonwebtoken reference with its RS256 key decoded once.
"${SERVER_PIN[@]}" "$REFERENCE_BIN" serve "$ISSUER" "$RESOURCE" \
  >"$WORK/reference.out" 2>"$WORK/reference.err" &
REFERENCE_PID=$!
SERVER_PIDS+=("$REFERENCE_PID")
wait_for_line "$WORK/reference.out" '^jwt ' "$REFERENCE_PID"
reference_url() { sed -n "s/^$1 //p" "$WORK/reference.out"; }
PLAIN_URL=$(reference_url plain)
CACHED_URL=$(reference_url cached)
UNCACHED_URL=$(reference_url uncached)
JWT_URL=$(reference_url jwt)

# --- the broker rows' server --------------------------------------------------------------
# The notes handler behind the layer trusting a broker (in-memory store; its identity provider a
# development server in upstream mode) and behind the layer trusting an external ES256 issuer,
# in one process. It writes TOKENS tokens of each before printing its addresses: the broker's
# through its token endpoint over HTTP (a few sign-ins, then chains of refresh grants).
echo "run.sh: starting the broker rows' server; minting $TOKENS broker tokens at its token endpoint" >&2
"${SERVER_PIN[@]}" "$REFERENCE_BIN" broker "$TOKENS" "$WORK" \
  >"$WORK/broker.out" 2>"$WORK/broker.err" &
BROKER_PID=$!
SERVER_PIDS+=("$BROKER_PID")
wait_for_line "$WORK/broker.out" '^broker ' "$BROKER_PID" 600
broker_url() { sed -n "s/^$1 //p" "$WORK/broker.out"; }
ES256_URL=$(broker_url es256)
BROKER_URL=$(broker_url broker)
ES256_TOKENS=$WORK/es256-tokens.txt
BROKER_TOKENS=$WORK/broker-tokens.txt
for file in "$ES256_TOKENS" "$BROKER_TOKENS"; do
  (($(sort -u "$file" | wc -l) == TOKENS)) || die "expected $TOKENS distinct tokens in $file"
done

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
# A process's CPU time so far (user + system, all threads), in clock ticks.
cpu_ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"; }
CLOCK_TICKS=$(getconf CLK_TCK)

# --- scenarios ----------------------------------------------------------------------------
WRK_ARGS=(-t"$THREADS" -c"$CONNECTIONS" --latency -s "$LUA_SCRIPT")
METADATA_URL=$(sed -n 's/^notes: metadata: curl -s //p' "$WORK/notes.out")
AUTH=(-H "Authorization: Bearer $TOKEN")
BAD_AUTH=(-H "Authorization: Bearer $BAD_TOKEN")
ES256_AUTH=(-H "Authorization: Bearer $(head -n 1 "$ES256_TOKENS")")
BROKER_AUTH=(-H "Authorization: Bearer $(head -n 1 "$BROKER_TOKENS")")

# One scenario a line: label|server (notes, reference or broker)|expected status|tokens file|URL|
# header set (AUTH, BAD_AUTH, ES256_AUTH, BROKER_AUTH or none). The reference trio first: they
# are what the added cost is read from, and the round-robin keeps them close in time; each
# broker row right after its external-issuer reference.
SCENARIOS=(
  "plain: notes handler, no auth|reference|200||$PLAIN_URL/notes|AUTH"
  "cached: + bearer layer, one token|reference|200||$CACHED_URL/notes|AUTH"
  "uncached: + layer, cache off|reference|200||$UNCACHED_URL/notes|AUTH"
  "notes: valid, one token repeated|notes|200||$NOTES_URL/notes|AUTH"
  "notes: valid, many distinct tokens|notes|200|$TOKENS_FILE|$NOTES_URL/notes|none"
  "bare jsonwebtoken, many distinct|reference|200|$TOKENS_FILE|$JWT_URL/notes|none"
  "external ES256: layer, one token|broker|200||$ES256_URL/notes|ES256_AUTH"
  "broker: layer, one token|broker|200||$BROKER_URL/notes|BROKER_AUTH"
  "external ES256: layer, many distinct|broker|200|$ES256_TOKENS|$ES256_URL/notes|none"
  "broker: layer, many distinct|broker|200|$BROKER_TOKENS|$BROKER_URL/notes|none"
  "notes: invalid signature|notes|401||$NOTES_URL/notes|BAD_AUTH"
  "notes: missing token|notes|401||$NOTES_URL/notes|none"
  "notes: metadata|notes|200||$METADATA_URL|none"
)

# The header options of a header set's name, in HEADER.
header_set() {
  case $1 in
    AUTH) HEADER=("${AUTH[@]}") ;;
    BAD_AUTH) HEADER=("${BAD_AUTH[@]}") ;;
    ES256_AUTH) HEADER=("${ES256_AUTH[@]}") ;;
    BROKER_AUTH) HEADER=("${BROKER_AUTH[@]}") ;;
    *) HEADER=() ;;
  esac
}

# Each scenario's status is checked once with curl first (wrk counts only "above 399").
for scenario in "${SCENARIOS[@]}"; do
  IFS='|' read -r label _ expect tokens url headers <<<"$scenario"
  header_set "$headers"
  if [[ -n $tokens ]]; then HEADER=(-H "Authorization: Bearer $(head -n 1 "$tokens")"); fi
  status=$(curl -s -o /dev/null -w '%{http_code}' "${HEADER[@]}" "$url") || die "curl failed for $label"
  [[ $status == "$expect" ]] || die "$label: expected $expect, got $status"
done

ROWS=()
# run_scenario ROUND LABEL PID EXPECTED_STATUS TOKENS_FILE URL [wrk -H options]
# A warm-up run first (connections, allocator, caches; not measured), then the peak RSS is reset
# to the current RSS so that the peak read afterwards belongs to this run's load, and the
# server's CPU time is read before and after the measured run.
run_scenario() {
  local round=$1 label=$2 pid=$3 expect=$4 tokens=$5 url=$6
  shift 6
  TOKENS_FILE=$tokens "${LOAD_PIN[@]}" wrk "${WRK_ARGS[@]}" -d"${WARMUP}s" "$@" "$url" >/dev/null
  local reset=no
  if echo 5 2>/dev/null >"/proc/$pid/clear_refs"; then reset=yes; fi
  local output result before after
  before=$(cpu_ticks "$pid")
  output=$(TOKENS_FILE=$tokens "${LOAD_PIN[@]}" wrk "${WRK_ARGS[@]}" -d"${DURATION}s" "$@" "$url")
  after=$(cpu_ticks "$pid")
  result=$(grep '^WRK_RESULT ' <<<"$output") || die "no result from wrk for $label: $output"
  ROWS+=("round=$round cpu_ticks=$((after - before)) expect=$expect hwm_kib=$(vm_hwm_kib "$pid") hwm_reset=$reset ${result#WRK_RESULT } label=$label")
}

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
for ((round = 1; round <= ROUNDS; round++)); do
  for scenario in "${SCENARIOS[@]}"; do
    IFS='|' read -r label server expect tokens url headers <<<"$scenario"
    echo "run.sh: round $round/$ROUNDS: $label" >&2
    case $server in
      notes) pid=$NOTES_PID ;;
      broker) pid=$BROKER_PID ;;
      *) pid=$REFERENCE_PID ;;
    esac
    header_set "$headers"
    run_scenario "$round" "$label" "$pid" "$expect" "$tokens" "$url" "${HEADER[@]}"
  done
done

# What notes answers a bad signature with, to show the row measures the signature check (not,
# say, a malformed-token shortcut).
BAD_CHALLENGE=$(curl -s -o /dev/null -w '%header{www-authenticate}' "${BAD_AUTH[@]}" "$NOTES_URL/notes")

# --- report -------------------------------------------------------------------------------
echo
echo "mcpauth load benchmark — commit $(commit_label), $(date -u +%Y-%m-%dT%H:%MZ)"
echo "machine: $(nproc) CPUs ($(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -n 1)); load average $LOAD_BEFORE before the scenarios, $(cut -d' ' -f1-3 /proc/loadavg) after"
echo "pinning: $PINNING"
echo "wrk:     wrk ${WRK_ARGS[*]} -d${DURATION}s [-H 'Authorization: Bearer …'] URL   (after ${WARMUP}s warm-up each; $(wrk --version 2>&1 | head -n 1 | cut -d' ' -f1-2))"
echo "rounds:  $ROUNDS, each running every scenario once in the order below; figures are medians over the rounds"
echo "tokens:  $TOKENS distinct RS256 tokens from the development server, rotated per request in the 'many distinct' rows; one of them in the one-token rows"
echo "         broker rows: $TOKENS distinct ES256 tokens from the broker's token endpoint, and $TOKENS from the external ES256 issuer with the same claims"
echo "servers: notes = $NOTES_BIN; plain, cached, uncached, bare jsonwebtoken = $REFERENCE_BIN serve; external ES256, broker = $REFERENCE_BIN broker (all on 127.0.0.1)"
echo "invalid-signature challenge: $BAD_CHALLENGE"
echo

# Every run as key=value pairs (the label last, it has spaces); awk does the arithmetic, the
# medians and the layout.
printf '%s\n' "${ROWS[@]}" | awk -v tokens="$TOKENS" -v rounds="$ROUNDS" -v hz="$CLOCK_TICKS" \
  -v startup_hwm="$NOTES_STARTUP_HWM" '
  function median(list,    n, v, i, j, t) {
    n = split(list, v, " ")
    for (i = 2; i <= n; i++)
      for (j = i; j > 1 && v[j - 1] + 0 > v[j] + 0; j--) { t = v[j]; v[j] = v[j - 1]; v[j - 1] = t }
    if (n == 0) return ""
    return (n % 2) ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
  }
  function range(list,    n, v, i, lo, hi) {
    n = split(list, v, " ")
    lo = v[1]; hi = v[1]
    for (i = 2; i <= n; i++) { if (v[i] + 0 < lo + 0) lo = v[i]; if (v[i] + 0 > hi + 0) hi = v[i] }
    return sprintf(fmt_range, lo, hi)
  }
  function add(array, key, value) { array[key] = (key in array ? array[key] " " : "") value }
  {
    delete f
    label = substr($0, index($0, " label=") + 7)
    for (i = 1; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
    if (!(label in seen)) { seen[label] = 1; order[++labels] = label }
    r = f["round"]
    rps = f["requests"] / (f["duration_us"] / 1e6)
    cpu = f["cpu_ticks"] / hz * 1e6 / f["requests"]
    add(rps_of, label, rps); add(p50_of, label, f["p50_us"] / 1000); add(p99_of, label, f["p99_us"] / 1000)
    add(cpu_of, label, cpu)
    round_rps[label, r] = rps; round_cpu[label, r] = cpu
    hwm = f["hwm_kib"] / 1024
    if (hwm > peak[label]) peak[label] = hwm
    if (f["hwm_reset"] != "yes") cumulative = 1
    if (label ~ /^notes/ && hwm > notes_peak) notes_peak = hwm
    socket = f["connect_errors"] + f["read_errors"] + f["write_errors"] + f["timeouts"]
    refused = f["status_errors"]
    problem = ""
    if (f["expect"] < 400 && refused > 0) problem = sprintf("%d of %d refused", refused, f["requests"])
    if (f["expect"] >= 400 && refused != f["requests"]) problem = sprintf("%d of %d not refused", f["requests"] - refused, f["requests"])
    if (socket > 0) problem = (problem == "" ? "" : problem "; ") sprintf("%d socket errors/timeouts", socket)
    if (problem != "") { check[label] = (label in check ? check[label] "; " : "WRONG: ") "round " r ": " problem; flagged++ }
    if (label ~ /many distinct/) requests_of[label] += f["requests"]
  }
  END {
    for (i = 1; i <= labels; i++) {
      if (order[i] ~ /^plain/) plain = order[i]
      if (order[i] ~ /^cached/) cached = order[i]
      if (order[i] ~ /^uncached/) uncached = order[i]
      if (order[i] ~ /^bare jsonwebtoken/) bare = order[i]
      if (order[i] ~ /^notes: valid, many distinct/) notes_many = order[i]
      if (order[i] ~ /^external ES256: .*one token/) ext_one = order[i]
      if (order[i] ~ /^external ES256: .*many distinct/) ext_many = order[i]
      if (order[i] ~ /^broker: .*one token/) broker_one = order[i]
      if (order[i] ~ /^broker: .*many distinct/) broker_many = order[i]
    }
    # Per-round ratios to plain (requests/s) and to bare jsonwebtoken (many distinct rows).
    for (i = 1; i <= labels; i++)
      for (r = 1; r <= rounds; r++) {
        add(vs_plain, order[i], round_rps[order[i], r] / round_rps[plain, r])
        if (order[i] ~ /many distinct/ && order[i] !~ /^(broker|external ES256):/)
          add(vs_bare, order[i], round_rps[order[i], r] / round_rps[bare, r])
      }
    fmt = "%-36s %10s %7s %7s %9s %9s %8s %8s  %s\n"
    printf fmt, "scenario", "requests/s", "p50 ms", "p99 ms", "CPU µs/req", "peak RSS", "vs plain", "vs bare", "statuses"
    for (i = 1; i <= labels; i++) {
      l = order[i]
      printf fmt, l, sprintf("%.0f", median(rps_of[l])), sprintf("%.3f", median(p50_of[l])),
        sprintf("%.3f", median(p99_of[l])), sprintf("%.2f", median(cpu_of[l])), sprintf("%.1f MiB", peak[l]),
        sprintf("%.2f", median(vs_plain[l])), (l in vs_bare ? sprintf("%.2f", median(vs_bare[l])) : ""),
        (l in check ? check[l] : "ok")
    }
    print ""
    # What the bearer layer adds to the same handler: CPU per request, paired within each round.
    for (r = 1; r <= rounds; r++) {
      add(added_hit, "x", sprintf("%.3f", round_cpu[cached, r] - round_cpu[plain, r]))
      add(added_miss, "x", sprintf("%.3f", round_cpu[uncached, r] - round_cpu[plain, r]))
    }
    fmt_range = "%.2f to %.2f"
    printf "added by the bearer layer, CPU per request (median of the %d per-round differences, and their range):\n", rounds
    printf "  cache hit  (cached - plain):   %.2f µs  (%s)\n", median(added_hit["x"]), range(added_hit["x"])
    printf "  cache off  (uncached - plain): %.2f µs  (%s)\n", median(added_miss["x"]), range(added_miss["x"])
    fmt_range = "%.2f to %.2f"
    printf "requests/s vs plain, per round: cached %s; uncached %s\n", range(vs_plain[cached]), range(vs_plain[uncached])
    # The broker rows against their external-issuer references, paired within each round.
    for (r = 1; r <= rounds; r++) {
      add(b_one, "x", round_rps[broker_one, r] / round_rps[ext_one, r])
      add(b_many, "x", round_rps[broker_many, r] / round_rps[ext_many, r])
      add(b_one_rs, "x", round_rps[broker_one, r] / round_rps[cached, r])
      add(b_many_rs, "x", round_rps[broker_many, r] / round_rps[notes_many, r])
      add(b_one_cpu, "x", sprintf("%.3f", round_cpu[broker_one, r] - round_cpu[ext_one, r]))
      add(b_many_cpu, "x", sprintf("%.3f", round_cpu[broker_many, r] - round_cpu[ext_many, r]))
    }
    printf "broker vs external issuer, requests/s (median of the %d per-round ratios, and their range):\n", rounds
    printf "  one token,     broker / external ES256:  %.3f  (%s)\n", median(b_one["x"]), range(b_one["x"])
    printf "  many distinct, broker / external ES256:  %.3f  (%s)\n", median(b_many["x"]), range(b_many["x"])
    printf "  one token,     broker / cached (RS256, other process):       %.3f  (%s)\n", median(b_one_rs["x"]), range(b_one_rs["x"])
    printf "  many distinct, broker / notes many distinct (RS256, other process): %.3f  (%s)\n", median(b_many_rs["x"]), range(b_many_rs["x"])
    printf "broker - external ES256, CPU per request (median of the per-round differences, and their range):\n"
    printf "  one token:     %.2f µs  (%s)\n", median(b_one_cpu["x"]), range(b_one_cpu["x"])
    printf "  many distinct: %.2f µs  (%s)\n", median(b_many_cpu["x"]), range(b_many_cpu["x"])
    printf "CPU µs/req: the server process'"'"'s user + system CPU time (all threads, clock ticks of 1/%d s) over the measured run, divided by its requests.\n", hz
    printf "peak RSS: the server process'"'"'s VmHWM after the run, the largest over the rounds (notes for notes rows, load-reference broker for the broker and external ES256 rows, load-reference serve for the others)%s.\n",
      (cumulative ? "; the peak could not be reset, so values are cumulative since start-up" : ", reset to the current RSS before each run")
    printf "notes peak RSS: %.1f MiB after start-up and minting; %.1f MiB at most under load.\n", startup_hwm / 1024, notes_peak
    for (i = 1; i <= labels; i++)
      if (order[i] ~ /many distinct/) uses = uses sprintf("%s~%.0f times (%s)", (uses == "" ? "" : ", "), requests_of[order[i]] / tokens, order[i])
    print "many distinct tokens: each of the " tokens " tokens was sent " uses " over all rounds;"
    print "  they are cache misses only while a verified-token cache holds fewer than " tokens " entries (a cycle longer than an LRU misses every time)."
    if (flagged) {
      printf "\n!! %d run(s) had wrong statuses or socket errors: their numbers do not measure the scenario.\n", flagged
      exit 1
    }
  }'
