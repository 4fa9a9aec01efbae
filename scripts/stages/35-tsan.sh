#!/usr/bin/env bash
# The thread-pool executor, fs, dns and net tests and the cross-thread post tests
# under ThreadSanitizer. The fs suite forks a child that drops to uid 65534
# and starts a pool there, hence die_after_fork=0.
source "$(dirname "$0")/lib.bash"
dir="$root/build/tsan"
# Only the files with threads in them: the executor and thread pool, fs and
# dns on it, posts and stop() from other threads, sockets across threads,
# signals delivered to two loops on two threads, spawning with a busy pool.
# -Wno-maybe-uninitialized: at -O1 GCC 12 reports unique_function's byte copy
# of its inline buffer once inlined into a caller, where the pragma around
# copy_buffer() no longer applies (a false positive: the bytes are unsigned char).
tsan_sources="unit/executor_test.cpp;unit/fs_test.cpp;unit/dns_test.cpp;unit/net_tcp_test.cpp;unit/core_mock_test.cpp"
tsan_sources+=";unit/signal_test.cpp;unit/child_process_test.cpp;unit/loop_correctness_test.cpp;unit/use_promise_test.cpp"
cmake -S "$root" -B "$dir" -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG=-g1 -DCMAKE_CXX_COMPILER=${TSAN_CXX:-g++} \
  -DPHASELOOP_BUILD_BENCH=OFF -DPHASELOOP_BUILD_EXAMPLES=OFF \
  "-DPHASELOOP_TEST_ONLY=$tsan_sources" \
  "-DCMAKE_CXX_FLAGS=-fsanitize=thread -fno-omit-frame-pointer -O1 -Wno-maybe-uninitialized" >/dev/null
cmake --build "$dir" -j "$jobs" --target phaseloop_tests
export TSAN_OPTIONS=halt_on_error=1:die_after_fork=0:second_deadlock_stack=1
"$dir/tests/phaseloop_tests" "[executor],[fs],[dns],[threads],[net],[signal],[child],[loop-correctness],[use_promise]"
