#!/usr/bin/env bash
# Users' strict warning flags: every public header on its own, the umbrella
# header twice, a fresh amalgamation and single_include/phaseloop.hpp (each as
# `#include <phaseloop.hpp>` through -I), and scripts/stages/strict_warnings_use.cpp
# (templates only warn when instantiated: it instantiates the loop types with
# both timer stores and the mock, default and poll(2) backends, timers, ticks,
# promises, a coroutine, fs, dns, queue_work, net servers and sockets, a poll
# handle; with and without -DNDEBUG) compile warning-free with
#   g++     -Wall -Wextra -Wpedantic -Wconversion -Wsign-conversion -Wshadow
#           -Wold-style-cast -Wuseless-cast -Werror
#   clang++ -Weverything minus the groups below -Werror
# Only -fsyntax-only compiles, run in parallel (PHASELOOP_JOBS).
source "$(dirname "$0")/lib.bash"
b=$root/build/strict
rm -rf "$b"
mkdir -p "$b/tu" "$b/log" "$b/fresh"
start=$(date +%s)

gcc_flags=(-Wall -Wextra -Wpedantic -Wconversion -Wsign-conversion -Wshadow -Wold-style-cast -Wuseless-cast -Werror)
clang_flags=(-Weverything -Werror -ferror-limit=0
  # Compatibility with C++98 (phaseloop is C++20): not a problem in C++20 code.
  -Wno-c++98-compat -Wno-c++98-compat-pedantic
  # Padding added for alignment: a report about layout, not a defect, and
  # unavoidable in any struct mixing member sizes.
  -Wno-padded
  # Nothing else is turned off: -Wc++20-compat and the other pre-C++20 groups
  # do not fire in -std=c++20. -ferror-limit=0: every warning in the log.
)

# A fresh amalgamation of include/ as it is now (single_include/ is regenerated
# by hand; 40-single-header checks that it is not stale).
python3 "$root/tools/amalgamate.py" -o "$b/fresh/phaseloop.hpp"

# The jobs, four fields each: compiler, source, include directory, extra flag
# ("-" for none). The instantiation TUs are the slowest: they go first.
use=$root/scripts/stages/strict_warnings_use.cpp
jobs_list=()
add() { jobs_list+=("$@"); }
for cxx in g++ clang++; do
  add "$cxx" "$use" "$root/include" -
  add "$cxx" "$use" "$root/include" -DNDEBUG  # release builds: PHASELOOP_ASSERT compiled out
  add "$cxx" "$use" "$b/fresh" -DPHASELOOP_STRICT_SINGLE_HEADER
done
printf '#include <phaseloop/phaseloop.hpp>\n#include <phaseloop/phaseloop.hpp>\n' >"$b/tu/umbrella-twice.cpp"
printf '#include <phaseloop.hpp>\n#include <phaseloop.hpp>\n' >"$b/tu/single-header-twice.cpp"
headers=0
while read -r h; do
  tu=$b/tu/${h//\//--}.cpp
  printf '#include <phaseloop/%s>\n' "$h" >"$tu"
  for cxx in g++ clang++; do add "$cxx" "$tu" "$root/include" -; done
  headers=$((headers + 1))
done < <(cd "$root/include/phaseloop" && find . -name '*.hpp' | sed 's|^\./||' | LC_ALL=C sort)
for cxx in g++ clang++; do
  add "$cxx" "$b/tu/umbrella-twice.cpp" "$root/include" -
  add "$cxx" "$b/tu/single-header-twice.cpp" "$b/fresh" -
  add "$cxx" "$b/tu/single-header-twice.cpp" "$root/single_include" -
done

# compile_one CXX SRC INCDIR EXTRA: -fsyntax-only; the diagnostics go to a log.
compile_one() {
  local cxx=$1 src=$2 inc=$3 extra=$4 flags log
  if [ "$cxx" = g++ ]; then flags=$gcc_flags_s; else flags=$clang_flags_s; fi
  log=$b/log/$(basename "$src" .cpp).$(basename "$inc").$cxx${extra#-}.txt
  [ "$extra" = - ] && extra=
  # shellcheck disable=SC2086 # the flag lists are plain words
  if "$cxx" -std=c++20 -fsyntax-only $flags $extra -I "$inc" "$src" >"$log" 2>&1; then
    rm -f "$log"
  else
    echo "FAILED: $cxx${extra:+ $extra} -I ${inc#"$root/"} ${src#"$root/"}"
    return 1
  fi
}
export -f compile_one
export b root gcc_flags_s="${gcc_flags[*]}" clang_flags_s="${clang_flags[*]}"

status=0
printf '%s\0' "${jobs_list[@]}" | xargs -0 -n 4 -P "$jobs" bash -c 'compile_one "$@"' _ || status=$?
compiles=$((${#jobs_list[@]} / 4))
if [ "$status" -ne 0 ]; then
  logs=("$b"/log/*.txt)
  for log in "${logs[@]}"; do
    echo "--- ${log#"$b/"}"
    head -40 "$log"
  done
  echo "15-strict-warnings: ${#logs[@]} of $compiles compiles failed; the distinct warnings:" >&2
  cat "$b"/log/*.txt | grep -E 'warning:|error:' | sed 's|^[^ ]*/include/||' | LC_ALL=C sort -u | head -60 >&2 || true
  exit 1
fi
echo "15-strict-warnings: $headers headers alone, the umbrella twice, the fresh amalgamation and single_include twice, the instantiation TU on include/ (with and without NDEBUG) and on the amalgamation: $compiles compiles with g++ and clang++, warning-free, in $(( $(date +%s) - start )) s"
