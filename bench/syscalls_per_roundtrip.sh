#!/usr/bin/env bash
# System calls per ping-pong round trip, phaseloop beside libuv and Boost.Asio.
#
#   bench/syscalls_per_roundtrip.sh BUILD/bench/phaseloop_bench [--check]
#
# Runs each ping-pong benchmark of bench/net.cpp (net_pingpong_unix/*,
# net_pingpong_tcp/*), one implementation at a time, under `strace -f -c`, at
# two round-trip counts (PHASELOOP_BENCH_ROUNDTRIPS; --benchmark_min_time=0
# runs exactly one iteration, which the script checks), and prints each system
# call's count per round trip: (calls at N2 - calls at N1) / (N2 - N1), so
# startup and teardown cancel out. A "(failed)" row gives the calls per round
# trip that returned an error (EAGAIN from a read made too early, say).
# Google Benchmark 1.7.1 (Debian 12) has no --benchmark_min_time=<N>x, hence
# the environment variable.
#
# --check: exit 1 unless phaseloop makes at most $TARGET (6) calls per round
# trip with no epoll_ctl, and phaseloop_io_uring (the same benchmark on
# io_uring_backend) at most $URING_TARGET (3), on every transport.
#
# Environment: N1, N2 (round trips of the two runs; 2000 and 12000),
# TRANSPORTS ("unix tcp"), IMPLEMENTATIONS ("phaseloop phaseloop_io_uring libuv
# asio"), TARGET (6), URING_TARGET (3),
# KEEP=1 keeps the strace summaries (their directory is printed).
set -euo pipefail

usage() { echo "usage: $0 path/to/phaseloop_bench [--check]" >&2; exit 2; }
[[ $# -ge 1 ]] || usage
bench=$1
check=0
[[ ${2:-} == --check ]] && check=1
[[ -x $bench ]] || { echo "$0: $bench is not an executable" >&2; exit 2; }
command -v strace >/dev/null || { echo "$0: strace is not installed (apt-get install strace)" >&2; exit 2; }

n1=${N1:-2000}
n2=${N2:-12000}
target=${TARGET:-6}
uring_target=${URING_TARGET:-3}
transports=${TRANSPORTS:-unix tcp}
implementations=${IMPLEMENTATIONS:-phaseloop phaseloop_io_uring libuv asio}
(( n2 > n1 && n1 > 0 )) || { echo "$0: need 0 < N1 < N2" >&2; exit 2; }

work=$(mktemp -d)
if [[ ${KEEP:-0} == 1 ]]; then
  echo "strace summaries kept in $work"
else
  trap 'rm -rf "$work"' EXIT
fi

available=$("$bench" --benchmark_list_tests)

# One run under strace: the summary (as "syscall calls errors" lines) to $3.
trace() {  # name round_trips out
  local name=$1 n=$2 out=$3 report=$work/report.json
  env -u PHASELOOP_BENCH_SCALE PHASELOOP_BENCH_ROUNDTRIPS="$n" \
    strace -f -c -o "$out.strace" "$bench" --benchmark_min_time=0 --benchmark_filter="^${name}(/|\$)" \
    --benchmark_out="$report" --benchmark_out_format=json >/dev/null 2>"$work/stderr" ||
    { echo "$0: $name failed:" >&2; cat "$work/stderr" >&2; exit 1; }
  if ! grep -q '"iterations": 1,' "$report" || grep -q '"error_occurred": true' "$report"; then
    echo "$0: $name did not run exactly one clean iteration:" >&2
    cat "$report" >&2
    exit 1
  fi
  # strace -c: "% time  seconds  usecs/call  calls  [errors]  syscall", a dashed rule, "total".
  awk '/^-+ /{rule++; next} rule==1 && NF>=5 {print $NF, $4, (NF>=6 ? $5 : 0)}' "$out.strace" >"$out"
}

status=0
for transport in $transports; do
  workload=net_pingpong_$transport
  impls=()
  for impl in $implementations; do
    if grep -qx "$workload/$impl\(/.*\)\?" <<<"$available"; then
      impls+=("$impl")
      trace "$workload/$impl" "$n1" "$work/$transport.$impl.1"
      trace "$workload/$impl" "$n2" "$work/$transport.$impl.2"
    else
      echo "($workload/$impl is not in this binary: skipped)" >&2
    fi
  done
  [[ ${#impls[@]} -gt 0 ]] || continue

  echo
  echo "$workload: system calls per round trip ((calls at $n2 - calls at $n1) / $((n2 - n1)) round trips)"
  # Rows: every call any implementation makes at least 0.005 times per round
  # trip, most frequent first; then the total and the failed calls.
  awk -v n="$((n2 - n1))" -v impls="${impls[*]}" -v target="$target" -v uring_target="$uring_target" \
      -v report_check="$check" \
      -v dir="$work" -v transport="$transport" '
    BEGIN {
      k = split(impls, names, " ")
      for (i = 1; i <= k; i++) {
        for (run = 1; run <= 2; run++) {
          file = dir "/" transport "." names[i] "." run
          while ((getline line < file) > 0) {
            split(line, f, " ")
            calls[i, f[1], run] = f[2]
            errors[i, run] += f[3]
            seen[f[1]] = 1
          }
          close(file)
        }
        total[i] = 0
        for (s in seen) {
          d = (calls[i, s, 2] - calls[i, s, 1]) / n
          rate[i, s] = d
          if (d > 0) total[i] += d
        }
        failed[i] = (errors[i, 2] - errors[i, 1]) / n
      }
      rows = 0
      for (s in seen) {
        top = 0
        for (i = 1; i <= k; i++) if (rate[i, s] > top) top = rate[i, s]
        if (top >= 0.005) { row[++rows] = s; weight[s] = top }
      }
      for (a = 1; a <= rows; a++)  # insertion sort: most frequent first, then by name
        for (b = a; b > 1 && (weight[row[b]] > weight[row[b-1]] || \
             (weight[row[b]] == weight[row[b-1]] && row[b] < row[b-1])); b--) {
          t = row[b]; row[b] = row[b-1]; row[b-1] = t
        }
      printf "  %-16s", "syscall"
      for (i = 1; i <= k; i++) printf " %10s", names[i]
      printf "\n"
      for (a = 1; a <= rows; a++) {
        printf "  %-16s", row[a]
        for (i = 1; i <= k; i++) printf " %10.2f", rate[i, row[a]]
        printf "\n"
      }
      printf "  %-16s", "total"
      for (i = 1; i <= k; i++) printf " %10.2f", total[i]
      printf "\n  %-16s", "(failed)"
      for (i = 1; i <= k; i++) printf " %10.2f", failed[i]
      printf "\n"
      for (i = 1; i <= k; i++) {
        if (names[i] == "phaseloop_io_uring") {
          ok = total[i] <= uring_target + 0.005
          printf "  phaseloop_io_uring: %.2f calls per round trip: %s (target: at most %d)\n", \
                 total[i], ok ? "meets the target" : "MISSES the target", uring_target
          if (!ok && report_check) exit 1
          continue
        }
        if (names[i] != "phaseloop") continue
        ok = total[i] <= target + 0.005 && rate[i, "epoll_ctl"] < 0.005
        printf "  phaseloop: %.2f calls per round trip, %.2f epoll_ctl: %s (target: at most %d, no epoll_ctl)\n", \
               total[i], rate[i, "epoll_ctl"], ok ? "meets the target" : "MISSES the target", target
        if (!ok && report_check) exit 1
      }
    }' || status=1
done
exit "$status"
