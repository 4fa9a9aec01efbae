#!/usr/bin/env bash
# Prints each program's output (what the tests expect) and reports any program
# whose output varies across RUNS runs.
set -u
cd "$(dirname "$0")" || exit 2
runs=${RUNS:-10}
node --version
for js in *.js; do
  first=$(node "$js" 2>/dev/null)
  printf '== %s\n%s\n' "$js" "$first"
  for _ in $(seq 2 "$runs"); do
    [ "$(node "$js" 2>/dev/null)" == "$first" ] || { echo "unstable: $js"; break; }
  done
done
