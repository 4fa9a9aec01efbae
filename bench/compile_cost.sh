#!/usr/bin/env bash
# What including phaseloop costs a translation unit, beside Boost.Asio, in one
# run: preprocessed lines and compile CPU time (user + system, the median of
# RUNS compiles at -O0, the way a debug build compiles each file) of three
# hello programs that each set one 1 ms timer and run the loop:
#   umbrella   #include <phaseloop/phaseloop.hpp>       (every module)
#   core       <phaseloop/loop.hpp> and one backend, timer store, executor
#   asio       #include <boost/asio.hpp>                 (its umbrella)
#   chrono     #include <chrono> alone: the floor under any library whose API
#              takes std::chrono durations (in C++20 libstdc++'s <chrono> also
#              brings <sstream> and the locale machinery for chrono's I/O)
#   bench/compile_cost.sh [--check] [CXX]     (default CXX: g++; RUNS=5)
# --check is a guard against regressions, not the goal: it fails when the
# core hello costs more than 2/3 of Asio's hello's CPU or 1/2 of its lines,
# or the umbrella hello more than 1.2 times Asio's CPU (room for a loaded
# machine: it measures 0.85 quiet) or 3/5 of its lines. The goal, a
# third of Asio's for the umbrella, is not met; README gives the figures.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
check=0
[ "${1:-}" = --check ] && { check=1; shift; }
cxx=${1:-g++}
runs=${RUNS:-5}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cat >"$work/umbrella.cpp" <<'CPP'
#include <phaseloop/phaseloop.hpp>
int main() {
  phaseloop::loop loop;
  loop.set_timeout([] {}, std::chrono::milliseconds(1));
  loop.run();
}
CPP
cat >"$work/core.cpp" <<'CPP'
#include <phaseloop/loop.hpp>
#include <phaseloop/backend/default.hpp>
#include <phaseloop/timers/heap.hpp>
#include <phaseloop/executor/inline.hpp>
int main() {
  phaseloop::basic_loop<phaseloop::default_backend, phaseloop::heap_timers, phaseloop::inline_executor> loop;
  loop.set_timeout([] {}, std::chrono::milliseconds(1));
  loop.run();
}
CPP
cat >"$work/chrono.cpp" <<'CPP'
#include <chrono>
int main() { return static_cast<int>(std::chrono::milliseconds(1).count()) - 1; }
CPP
cat >"$work/asio.cpp" <<'CPP'
#include <boost/asio.hpp>
int main() {
  boost::asio::io_context io;
  boost::asio::steady_timer timer(io, std::chrono::milliseconds(1));
  timer.async_wait([](const boost::system::error_code&) {});
  io.run();
}
CPP

have_asio=1
echo '#include <boost/asio/io_context.hpp>' | "$cxx" -std=c++20 -x c++ -fsyntax-only - 2>/dev/null || have_asio=0

# cpu_ms FILE: the median compile CPU time in milliseconds.
cpu_ms() {
  local f=$1 t times=()
  for _ in $(seq "$runs"); do
    # bash's time counts the compiler's children (cc1plus, as) too.
    t=$( { TIMEFORMAT='%U %S'; time "$cxx" -std=c++20 -O0 -I "$root/include" -c "$f" -o "$work/out.o" 2>"$work/err" \
      || { cat "$work/err" >&2; echo "compile_cost: $f does not compile" >&2; exit 1; }; } 2>&1 ) || exit 1
    times+=("$(awk -v u="${t% *}" -v s="${t#* }" 'BEGIN { printf "%d", (u + s) * 1000 }')")
  done
  printf '%s\n' "${times[@]}" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'
}
lines() { "$cxx" -std=c++20 -I "$root/include" -E "$1" | grep -cv '^\s*$'; }

declare -A L C
names=(umbrella core chrono)
[ $have_asio = 1 ] && names+=(asio)
# Interleaved: each round compiles every program once, so a load change on the
# machine shifts all of them alike.
for n in "${names[@]}"; do L[$n]=$(lines "$work/$n.cpp"); done
for n in "${names[@]}"; do C[$n]=""; done
for _ in $(seq "$runs"); do
  for n in "${names[@]}"; do
    t=$(RUNS=1 cpu_ms "$work/$n.cpp") || exit 1
    C[$n]+="$t "
  done
done
median() { tr ' ' '\n' <<<"$1" | grep . | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
range() { tr ' ' '\n' <<<"$1" | grep . | sort -n | awk 'NR == 1 { lo = $1 } { hi = $1 } END { printf "%.2f-%.2f", lo / 1000, hi / 1000 }'; }

echo "compile cost of a hello with one timer: $($cxx --version | head -1), -std=c++20 -O0, median of $runs interleaved runs"
printf '| %-34s | %12s | %10s | %12s |\n' "program" "lines (-E)" "CPU s" "CPU range s"
printf '| %-34s | %12s | %10s | %12s |\n' "---" "---:" "---:" "---:"
desc() { case $1 in umbrella) echo "<phaseloop/phaseloop.hpp>" ;; core) echo "phaseloop core (loop.hpp + backend)" ;; asio) echo "<boost/asio.hpp>" ;; chrono) echo "<chrono> alone (the floor)" ;; esac; }
declare -A M
for n in "${names[@]}"; do
  M[$n]=$(median "${C[$n]}")
  printf '| %-34s | %12s | %10.2f | %12s |\n' "$(desc "$n")" "${L[$n]}" "$(awk -v m="${M[$n]}" 'BEGIN { print m / 1000 }')" "$(range "${C[$n]}")"
done
if [ $have_asio = 1 ]; then
  awk -v u="${M[umbrella]}" -v c="${M[core]}" -v a="${M[asio]}" -v lu="${L[umbrella]}" -v lc="${L[core]}" -v la="${L[asio]}" \
    -v h="${M[chrono]}" -v lh="${L[chrono]}" \
    'BEGIN { printf "ratios to Asio: umbrella %.2f CPU, %.2f lines; core %.2f CPU, %.2f lines; <chrono> alone %.2f CPU, %.2f lines\n", u / a, lu / la, c / a, lc / la, h / a, lh / la }'
fi

if [ $check = 1 ]; then
  [ $have_asio = 1 ] || { echo "compile_cost: Boost.Asio is not installed; nothing to compare with" >&2; exit 1; }
  fail=0
  if [ $((M[core] * 3)) -gt $((M[asio] * 2)) ] || [ $((L[core] * 2)) -gt "${L[asio]}" ]; then
    echo "compile_cost: the core hello costs more than 2/3 of Asio's CPU, or more than 1/2 of its lines" >&2; fail=1
  fi
  if [ $((M[umbrella] * 5)) -gt $((M[asio] * 6)) ] || [ $((L[umbrella] * 5)) -gt $((L[asio] * 3)) ]; then
    echo "compile_cost: the umbrella hello costs more than 1.2 times Asio's CPU, or more than 3/5 of its lines" >&2; fail=1
  fi
  exit $fail
fi
