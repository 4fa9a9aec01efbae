#!/usr/bin/env bash
# Re-record every scenario's expected trace with the node on PATH.
# A scenario whose output differs across RUNS runs is reported and not written.
set -u
cd "$(dirname "$0")" || exit 2
runs=${RUNS:-20}
node --version
for js in *.js; do
  base=${js%.js}
  first=$(node "$js" 2>&1)
  stable=1
  for _ in $(seq 2 "$runs"); do
    [ "$(node "$js" 2>&1)" == "$first" ] || { stable=0; break; }
  done
  if [ $stable = 1 ]; then printf '%s\n' "$first" > "../expected/$base.expected"; else echo "unstable: $js"; fi
done
