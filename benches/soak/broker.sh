#!/usr/bin/env bash
# The soak run's broker phase: the `todo-broker` example (release build, its own process) in
# front of the development identity provider behind the fault proxy, under sign-ins, refreshes,
# revocations, code replays and /mcp calls from a few workers, while the provider is slow, down
# or answers 503, the broker is killed and restarted on its embedded store, and (with
# `redis-server` installed) one of two replicas on one Redis is killed and started again.
#
#   benches/soak/broker.sh                      # 7 phases × 60 s, then about 67 s of probes
#   PHASE_SECONDS=5 benches/soak/broker.sh      # a quick trial (under 2 min)
#
# Settings (environment; see benches/soak/README.md, "The broker phase"): PHASE_SECONDS (60),
# WORKERS (4), GRANTS_PER_WORKER (6), ACCESS_TOKEN_LIFETIME (5), SLOW_MIN_MS (1000),
# SLOW_MAX_MS (4000), SEED.
#
# Exit status: 0 passed; 1 a wrong answer, or a phase that ran no refresh (or, with the provider
# up, no sign-in); 2 the run could not be made.
set -euo pipefail

COMMAND="$0 $*"
SETTINGS=$(env | grep -E '^(PHASE_SECONDS|WORKERS|GRANTS_PER_WORKER|ACCESS_TOKEN_LIFETIME|SLOW_MIN_MS|SLOW_MAX_MS|SEED)=' | sort | tr '\n' ' ' || true)

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
# shellcheck source=benches/common.sh
source benches/common.sh

WORK=$(mktemp -d)
SOAK_PID=
# Stop the harness (it kills todo-broker and redis-server, its children), whatever way this
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

echo "broker.sh: building todo-broker and soak (release)" >&2
cargo build --release -p todo-broker -p soak --message-format=json-render-diagnostics >"$WORK/build.json" \
  || die "the build failed"
BROKER_BIN=$(executable todo-broker) || die "cargo did not report the todo-broker binary"
SOAK_BIN=$(executable soak) || die "cargo did not report the soak binary"

echo "mcpauth soak run, broker phase — commit $(commit_label), $(date -u +%Y-%m-%dT%H:%MZ)"
echo "command: ${SETTINGS}${COMMAND}"
echo "machine: $(nproc) CPUs ($(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -n 1)), load average $(cut -d' ' -f1-3 /proc/loadavg); redis-server: $(command -v redis-server >/dev/null && redis-server --version | cut -d' ' -f1-3 || echo 'not installed')"
echo "harness: $SOAK_BIN broker $BROKER_BIN (not pinned: the broker processes, redis-server and the harness share the CPUs)"
echo

status=0
TMPDIR=$WORK "$SOAK_BIN" broker "$BROKER_BIN" &
SOAK_PID=$!
wait "$SOAK_PID" || status=$?
SOAK_PID=
exit "$status"
