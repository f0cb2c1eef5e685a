#!/usr/bin/env bash
# The broker under sign-ins and refreshes: the `todo-broker` example (release build, its
# embedded store in a fresh directory, its development identity provider in-process) driven over
# loopback by `load-reference logins`, which registers one client, signs LOGINS users in
# (authorize, consent page, approval, the identity provider, callback, code redemption), then
# makes REFRESHES refresh grants over their grants, eight sign-ins or refreshes in flight at once.
#
#   benches/load/broker.sh                    # from the repository root
#   LOGINS=1000 REFRESHES=10000 benches/load/broker.sh
#
# Settings (environment):
#   LOGINS      sign-ins (default 500; at least 8, one grant per worker)
#   REFRESHES   refresh grants after them (default 5000)
#
# It prints the rate of each phase, the CPU time the todo-broker process spent on it (user +
# system, all threads, from /proc) per operation, and the process's peak RSS (VmHWM) after
# start-up and after both phases. The sign-in phase's CPU includes the in-process identity
# provider's (its endpoints, an RS256 ID token signed per sign-in); the refresh phase involves
# no provider. A benchmark, not a test: it never fails on timings.
set -euo pipefail

LOGINS=${LOGINS:-500}
REFRESHES=${REFRESHES:-5000}

for setting in LOGINS REFRESHES; do
  if ! [[ ${!setting} =~ ^[0-9]+$ ]] || ((${!setting} == 0)); then
    echo "broker.sh: $setting=${!setting} must be a positive whole number" >&2
    exit 2
  fi
done
((LOGINS >= 8)) || { echo "broker.sh: LOGINS must be at least 8" >&2; exit 2; }

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
# shellcheck source=benches/common.sh
source benches/common.sh

WORK=$(mktemp -d)
SERVER_PID=
cleanup() {
  if [[ -n $SERVER_PID ]]; then
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

echo "broker.sh: building todo-broker and load-reference (release)" >&2
cargo build --release -p todo-broker -p load-reference --message-format=json-render-diagnostics \
  >"$WORK/build.json"
BROKER_BIN=$(executable todo-broker) || die "cargo did not report the todo-broker binary"
REFERENCE_BIN=$(executable load-reference) || die "cargo did not report the load-reference binary"

# The server on one CPU, the driver on another (as benches/load/run.sh does).
SERVER_PIN=()
LOAD_PIN=()
PINNING="not pinned (fewer than 2 CPUs or no taskset)"
if command -v taskset >/dev/null; then
  mapfile -t CPUS < <(allowed_cpus)
  if ((${#CPUS[@]} >= 2)); then
    SERVER_PIN=(taskset -c "${CPUS[0]}")
    LOAD_PIN=(taskset -c "${CPUS[1]}")
    PINNING="todo-broker on CPU ${CPUS[0]}, driver on CPU ${CPUS[1]}"
  fi
fi

# PORT=0: an ephemeral port; the resource (and so the issuer) follows the port bound. No
# UPSTREAM_*: the development identity provider; no BROKER_SIGNING_KEY_FILE: development keys
# kept in the store. The sign-ins come faster than the default bound on authorization requests
# (100 a second), which would answer some of them 503.
env -u MCP_RESOURCE_IDENTIFIER -u BIND -u RUST_LOG -u UPSTREAM_ISSUER -u UPSTREAM_AUTHORIZE_URL \
  -u BROKER_SIGNING_KEY_FILE PORT=0 BROKER_STORE="$WORK/broker-store" \
  BROKER_AUTHORIZATIONS_PER_SECOND=1000000 \
  "${SERVER_PIN[@]}" "$BROKER_BIN" >"$WORK/broker.out" 2>"$WORK/broker.err" &
SERVER_PID=$!
tries=300
until grep -q '^todo-broker: development identity provider' "$WORK/broker.out"; do
  kill -0 "$SERVER_PID" 2>/dev/null || die "todo-broker exited: $(cat "$WORK/broker.err")"
  ((--tries > 0)) || die "todo-broker did not start: $(cat "$WORK/broker.out")"
  sleep 0.1
done
ISSUER=$(sed -n 's/^todo-broker: authorization server //p' "$WORK/broker.out")
[[ -n $ISSUER ]] || die "unexpected todo-broker output: $(cat "$WORK/broker.out")"
STARTUP_HWM=$(awk '/^VmHWM:/ { print $2 }' "/proc/$SERVER_PID/status")

echo "broker.sh: $LOGINS sign-ins, then $REFRESHES refresh grants at $ISSUER" >&2
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
"${LOAD_PIN[@]}" "$REFERENCE_BIN" logins "$ISSUER" "$LOGINS" "$REFRESHES" "$SERVER_PID" \
  >"$WORK/driver.out"

echo
echo "mcpauth broker sign-in and refresh load — commit $(commit_label), $(date -u +%Y-%m-%dT%H:%MZ)"
echo "machine: $(nproc) CPUs ($(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -n 1)); load average $LOAD_BEFORE before, $(cut -d' ' -f1-3 /proc/loadavg) after"
echo "pinning: $PINNING"
echo "server:  $BROKER_BIN (FjallStore in a fresh directory, its journal synced before each answer; development identity provider in-process)"
echo
awk -v hz="$(getconf CLK_TCK)" -v startup="$STARTUP_HWM" '
  $1 == "logins" || $1 == "refreshes" {
    printf "%-10s %7d in %7.2f s: %8.1f /s, server CPU %8.1f µs each\n", $1, $2, $4, $2 / $4, $6 / hz * 1e6 / $2
  }
  $1 == "server" { hwm = $3 " " $4; rss = $6 " " $7 }
  END {
    printf "peak RSS (VmHWM): %.1f MiB after start-up; %s after both phases (current RSS %s)\n", startup / 1024, hwm, rss
    print "server CPU: the todo-broker process'"'"'s user + system time over the phase (all threads, clock ticks of 1/" hz " s), divided by its operations;"
    print "  the sign-ins'"'"' includes the in-process identity provider'"'"'s work and all HTTP serving."
  }' "$WORK/driver.out"
