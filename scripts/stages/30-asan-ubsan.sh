#!/usr/bin/env bash
# The suite under AddressSanitizer and UndefinedBehaviorSanitizer.
source "$(dirname "$0")/lib.bash"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
build_and_test asan -DCMAKE_CXX_COMPILER=g++ -DPHASELOOP_BUILD_BENCH=OFF -DPHASELOOP_BUILD_EXAMPLES=OFF \
  "-DCMAKE_CXX_FLAGS=-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all"
