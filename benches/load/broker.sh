#!/usr/bin/env bash
# The broker under sign-ins and refreshes: the `todo-broker` example (release build, its
# development identity provider in-process) driven over loopback by `load-reference logins`,
# which registers one client, signs LOGINS users in (authorize, consent page, approval, the
# identity provider, callback, code redemption), then makes REFRESHES refresh grants over their
# grants, eight sign-ins or refreshes in flight at once. It runs once per store of STORES, one
# after the other in one run: `fjall`, the embedded store in a fresh directory; `redis`, a
# `redis-server` this script starts on a free loopback port (append-only file on, synced every
# second, as Redis recommends; pinned with the driver), when `redis-server` is installed.
#
#   benches/load/broker.sh                    # from the repository root
#   LOGINS=1000 REFRESHES=10000 STORES=fjall benches/load/broker.sh
#
# Settings (environment):
#   LOGINS      sign-ins (default 500; at least 8, one grant per worker)
#   REFRESHES   refresh grants after them (default 5000)
#   STORES      the stores measured, in order (default "fjall redis")
#
# It prints the rate of each phase, the CPU time the todo-broker process spent on it (user +
# system, all threads, from /proc) per operation (and redis-server's, for Redis), and the
# process's peak RSS (VmHWM) after start-up and after both phases. The sign-in phase's CPU
# includes the in-process identity provider's (its endpoints, an RS256 ID token signed per
# sign-in); the refresh phase involves no provider. A benchmark, not a test: it never fails on
# timings.
set -euo pipefail

LOGINS=${LOGINS:-500}
REFRESHES=${REFRESHES:-5000}
STORES=${STORES:-fjall redis}

for setting in LOGINS REFRESHES; do
  if ! [[ ${!setting} =~ ^[0-9]+$ ]] || ((${!setting} == 0)); then
    echo "broker.sh: $setting=${!setting} must be a positive whole number" >&2
    exit 2
  fi
done
((LOGINS >= 8)) || { echo "broker.sh: LOGINS must be at least 8" >&2; exit 2; }
for store in $STORES; do
  [[ $store == fjall || $store == redis ]] || { echo "broker.sh: unknown store $store in STORES" >&2; exit 2; }
done

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
# shellcheck source=benches/common.sh
source benches/common.sh

WORK=$(mktemp -d)
SERVER_PID=
REDIS_PID=
stop() {
  local pid=$1
  if [[ -n $pid ]]; then
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
}
cleanup() {
  stop "$SERVER_PID"
  stop "$REDIS_PID"
  rm -rf "$WORK"
}
trap cleanup EXIT

echo "broker.sh: building todo-broker and load-reference (release)" >&2
cargo build --release -p todo-broker -p load-reference --message-format=json-render-diagnostics \
  >"$WORK/build.json"
BROKER_BIN=$(executable todo-broker) || die "cargo did not report the todo-broker binary"
REFERENCE_BIN=$(executable load-reference) || die "cargo did not report the load-reference binary"

# The server on one CPU, the driver on another (as benches/load/run.sh does).
pin_cpus todo-broker driver

# Starts todo-broker on the store $2 (a path or a Redis URL), runs the driver (with the store's
# server pid $3, if any), prints the rows for store label $1, and stops todo-broker.
measure() {
  local label=$1 store=$2 store_pid=${3:-} issuer startup_hwm
  # PORT=0: an ephemeral port; the resource (and so the issuer) follows the port bound. No
  # UPSTREAM_*: the development identity provider; no BROKER_SIGNING_KEY_FILE: development keys
  # kept in the store. The sign-ins come faster than the default bound on authorization
  # requests (100 a second), which would answer some of them 503.
  env -u MCP_RESOURCE_IDENTIFIER -u BIND -u RUST_LOG -u UPSTREAM_ISSUER -u UPSTREAM_AUTHORIZE_URL \
    -u BROKER_SIGNING_KEY_FILE -u BROKER_REDIS_PREFIX PORT=0 BROKER_STORE="$store" \
    BROKER_AUTHORIZATIONS_PER_SECOND=1000000 \
    "${SERVER_PIN[@]}" "$BROKER_BIN" >"$WORK/broker.out" 2>"$WORK/broker.err" &
  SERVER_PID=$!
  wait_for_line "$WORK/broker.out" '^todo-broker: development identity provider' "$SERVER_PID"
  issuer=$(sed -n 's/^todo-broker: authorization server //p' "$WORK/broker.out")
  [[ -n $issuer ]] || die "unexpected todo-broker output: $(cat "$WORK/broker.out")"
  startup_hwm=$(awk '/^VmHWM:/ { print $2 }' "/proc/$SERVER_PID/status")

  echo "broker.sh: $label: $LOGINS sign-ins, then $REFRESHES refresh grants at $issuer" >&2
  "${LOAD_PIN[@]}" "$REFERENCE_BIN" logins "$issuer" "$LOGINS" "$REFRESHES" "$SERVER_PID" \
    ${store_pid:+"$store_pid"} >"$WORK/driver.out"
  stop "$SERVER_PID"
  SERVER_PID=
  awk -v hz="$(getconf CLK_TCK)" -v startup="$startup_hwm" -v label="$label" -v store="$store_pid" '
    $1 == "logins" || $1 == "refreshes" {
      printf "%-6s %-10s %7d in %7.2f s: %8.1f /s, server CPU %8.1f µs each", label, $1, $2, $4, $2 / $4, $6 / hz * 1e6 / $2
      if (store != "") printf ", redis-server CPU %7.1f µs each", $8 / hz * 1e6 / $2
      printf "\n"
    }
    $1 == "server" { hwm = $3 " " $4; rss = $6 " " $7 }
    END { printf "%-6s peak RSS (VmHWM): %.1f MiB after start-up; %s after both phases (current RSS %s)\n", label, startup / 1024, hwm, rss }
  ' "$WORK/driver.out" >>"$WORK/rows"
}

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
: >"$WORK/rows"
MEASURED=()
for store in $STORES; do
  case $store in
    fjall)
      measure fjall "$WORK/broker-store"
      MEASURED+=("fjall: FjallStore in a fresh directory, deferred durability (the default: journal synced within 100 ms, a grant's removal and a key write before their answer)")
      ;;
    redis)
      if ! command -v redis-server >/dev/null; then
        echo "broker.sh: redis-server is not installed; the Redis row is left out" >&2
        continue
      fi
      REDIS_PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
      "${LOAD_PIN[@]}" redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --dir "$WORK" \
        --appendonly yes --appendfsync everysec --save '' >"$WORK/redis.out" 2>"$WORK/redis.err" &
      REDIS_PID=$!
      wait_for_line "$WORK/redis.out" 'Ready to accept connections' "$REDIS_PID"
      measure redis "redis://127.0.0.1:$REDIS_PORT/0" "$REDIS_PID"
      stop "$REDIS_PID"
      REDIS_PID=
      MEASURED+=("redis: RedisStore on redis-server $(redis-server --version | sed -n 's/.* v=\([^ ]*\).*/\1/p') (append-only file synced every second), pinned with the driver")
      ;;
  esac
done

echo
echo "mcpauth broker sign-in and refresh load — commit $(commit_label), $(date -u +%Y-%m-%dT%H:%MZ)"
echo "machine: $(nproc) CPUs ($(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -n 1)); load average $LOAD_BEFORE before, $(cut -d' ' -f1-3 /proc/loadavg) after"
echo "pinning: $PINNING"
echo "server:  $BROKER_BIN (development identity provider in-process)"
for line in "${MEASURED[@]}"; do echo "  $line"; done
echo
cat "$WORK/rows"
echo "server CPU: the todo-broker process's user + system time over the phase (all threads, clock ticks of 1/$(getconf CLK_TCK) s), divided by its operations;"
echo "  the sign-ins' includes the in-process identity provider's work and all HTTP serving; redis-server CPU likewise, for the Redis row."
