# Shell helpers shared by benches/load/run.sh and benches/soak/run.sh (sourced, not run).

# The path of the binary `$1` in cargo's JSON build messages saved at "$WORK/build.json".
executable() {
  grep -o "\"executable\":\"[^\"]*/$1\"" "$WORK/build.json" | tail -n 1 | sed 's/.*:"//; s/"$//'
}

# The CPUs this script may use, one per line, from its own affinity list (e.g. "0-3,6"), so
# the server and the load generator can each be pinned to one.
allowed_cpus() {
  local list part
  list=$(taskset -cp $$ 2>/dev/null | sed 's/.*: *//') || return 0
  for part in ${list//,/ }; do
    if [[ $part == *-* ]]; then seq "${part%-*}" "${part#*-}"; else echo "$part"; fi
  done
}

# Sets SERVER_PIN and LOAD_PIN (taskset prefixes: the server on one CPU, the load generator on
# another) and PINNING (what was done, naming the server $1 and the load generator $2); both
# empty when there are fewer than two CPUs or no taskset.
pin_cpus() {
  SERVER_PIN=()
  LOAD_PIN=()
  PINNING="not pinned (fewer than 2 CPUs or no taskset): $1 and $2 share the CPUs"
  if command -v taskset >/dev/null; then
    local cpus
    mapfile -t cpus < <(allowed_cpus)
    if ((${#cpus[@]} >= 2)); then
      SERVER_PIN=(taskset -c "${cpus[0]}")
      LOAD_PIN=(taskset -c "${cpus[1]}")
      PINNING="$1 on CPU ${cpus[0]}, $2 on CPU ${cpus[1]}"
    fi
  fi
}

# Waits until FILE has a line matching the extended regex PATTERN, or PID dies, or SECONDS
# (default 30) pass. FILE is a process's standard output `<name>.out`, its errors `<name>.err`.
wait_for_line() {
  local file=$1 pattern=$2 pid=$3 tries=$((${4:-30} * 10))
  until grep -qE "$pattern" "$file"; do
    kill -0 "$pid" 2>/dev/null || die "$(basename "$file" .out) exited: $(cat "${file%.out}.err")"
    ((--tries > 0)) || die "timed out waiting for '$pattern' in $file"
    sleep 0.1
  done
}

# Stops the script: the run could not be made.
die() {
  echo "run.sh: $*" >&2
  exit 2
}

# The commit measured, and whether the work tree differed from it.
commit_label() {
  local commit
  commit=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
  if [[ -n $(git status --porcelain --untracked-files=no 2>/dev/null) ]]; then
    commit="$commit (with uncommitted changes)"
  fi
  echo "$commit"
}
