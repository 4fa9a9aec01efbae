#!/usr/bin/env bash
# The suite built with clang++ (-Wall -Wextra -Wpedantic -Werror) under
# AddressSanitizer and UndefinedBehaviorSanitizer: 10-gcc runs the suite
# unsanitized and 30-asan-ubsan sanitized with g++, so each compiler's
# sanitizers see the code.
source "$(dirname "$0")/lib.bash"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
build_and_test clang -DCMAKE_CXX_COMPILER=clang++ -DPHASELOOP_BUILD_BENCH=OFF \
  "-DCMAKE_CXX_FLAGS=-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all"
