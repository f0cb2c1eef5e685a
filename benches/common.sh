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
