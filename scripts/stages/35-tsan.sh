#!/usr/bin/env bash
# The thread-pool executor, fs, dns and net tests and the cross-thread post tests
# under ThreadSanitizer. The fs suite forks a child that drops to uid 65534
# and starts a pool there, hence die_after_fork=0.
source "$(dirname "$0")/lib.bash"
dir="$root/build/tsan"
cmake -S "$root" -B "$dir" -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_COMPILER=${TSAN_CXX:-g++} \
  -DPHASELOOP_BUILD_BENCH=OFF -DPHASELOOP_BUILD_EXAMPLES=OFF \
  "-DCMAKE_CXX_FLAGS=-fsanitize=thread -fno-omit-frame-pointer -O1" >/dev/null
cmake --build "$dir" -j "$jobs" --target phaseloop_tests
export TSAN_OPTIONS=halt_on_error=1:die_after_fork=0:second_deadlock_stack=1
"$dir/tests/phaseloop_tests" "[executor],[fs],[dns],[threads],[net]"
