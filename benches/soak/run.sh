#!/usr/bin/env bash
# The soak run of mcpauth: the `notes` example (release build, its own
# process) under steady `wrk` load for 12 phases while its authorization server rotates keys,
# goes down, answers 503, slowly, or not at all; a checker sends valid, expired, wrongly-signed,
# foreign-audience, rotated-away and missing tokens throughout. Everything on 127.0.0.1.
#
#   benches/soak/run.sh                       # from anywhere; 12 phases × 60 s (12 min)
#   PHASE_SECONDS=5 benches/soak/run.sh       # a quick trial (about 1 min)
#
# Settings (environment; see benches/soak/README.md): PHASE_SECONDS (60), HEAD_SECONDS (15),
# TOKENS_PER_PHASE (2000), HEAD_TOKENS (100), THREADS (1), CONNECTIONS (16), WRK_TIMEOUT (20),
# CHECK_INTERVAL_MS (100), SLOW_MIN_MS (2000), SLOW_MAX_MS (8000), HANG_SECONDS (15),
# JWKS_MAX_AGE (30), GRACE_MS (1000), SETTLE_MARGIN_MS (2000), SEED.
#
# Exit status: 0 passed; 1 a wrong answer, too many JWKS fetches, or memory growth beyond the
# token cache's bound; 2 the run could not be made.
set -euo pipefail

COMMAND="$0 $*"
SETTINGS=$(env | grep -E '^(PHASE_SECONDS|HEAD_SECONDS|TOKENS_PER_PHASE|HEAD_TOKENS|THREADS|CONNECTIONS|WRK_TIMEOUT|CHECK_INTERVAL_MS|SLOW_MIN_MS|SLOW_MAX_MS|HANG_SECONDS|JWKS_MAX_AGE|GRACE_MS|SETTLE_MARGIN_MS|SEED)=' | sort | tr '\n' ' ' || true)

# Paths relative to the repository root, wherever the script is started from.
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
# shellcheck source=benches/common.sh
source benches/common.sh

WORK=$(mktemp -d)
SOAK_PID=
# Stop the harness (it kills notes and wrk, its children, when it stops), whatever way this
# script ends.
cleanup() {
  if [[ -n $SOAK_PID ]] && kill -0 "$SOAK_PID" 2>/dev/null; then
    kill -TERM "$SOAK_PID" 2>/dev/null || true
    wait "$SOAK_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

command -v wrk >/dev/null || die "wrk is not installed (Debian: apt-get install wrk)"

# --- binaries -------------------------------------------------------------------------------
echo "run.sh: building notes and soak (release)" >&2
cargo build --release -p notes -p soak --message-format=json-render-diagnostics >"$WORK/build.json"
NOTES_BIN=$(executable notes) || die "cargo did not report the notes binary"
SOAK_BIN=$(executable soak) || die "cargo did not report the soak binary"

# --- pinning --------------------------------------------------------------------------------
# notes gets one CPU; wrk and the harness (authorization server, proxy, checker, token minting)
# the other, so the load never competes with the server it loads. The first two CPUs this
# script may use, from its own affinity list (e.g. "0-3,6").
HARNESS_PIN=()
PINNING="not pinned (fewer than 2 CPUs or no taskset): notes, wrk and the harness share the CPUs"
export NOTES_CPU=
if command -v taskset >/dev/null; then
  mapfile -t CPUS < <(allowed_cpus)
  if ((${#CPUS[@]} >= 2)); then
    NOTES_CPU=${CPUS[0]}
    # wrk, started by the harness, inherits its CPU.
    HARNESS_PIN=(taskset -c "${CPUS[1]}")
    PINNING="notes on CPU $NOTES_CPU; wrk and the harness on CPU ${CPUS[1]}"
  fi
fi

# --- the run --------------------------------------------------------------------------------
echo "mcpauth soak run — commit $(commit_label), $(date -u +%Y-%m-%dT%H:%MZ)"
echo "command: ${SETTINGS}${COMMAND}"
echo "machine: $(nproc) CPUs ($(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -n 1)), load average $(cut -d' ' -f1-3 /proc/loadavg); $(wrk --version 2>&1 | head -n 1 | cut -d' ' -f1-2)"
echo "pinning: $PINNING"
echo "harness: ${HARNESS_PIN[*]} $SOAK_BIN $NOTES_BIN benches/soak/wrk.lua"
echo

status=0
# The harness's scratch files go to $WORK, which the trap removes however the run ends.
TMPDIR=$WORK "${HARNESS_PIN[@]}" "$SOAK_BIN" "$NOTES_BIN" benches/soak/wrk.lua &
SOAK_PID=$!
wait "$SOAK_PID" || status=$?
SOAK_PID=
exit "$status"
