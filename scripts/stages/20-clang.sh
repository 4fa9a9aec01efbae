#!/usr/bin/env bash
# The same with clang++.
source "$(dirname "$0")/lib.bash"
build_and_test clang -DCMAKE_CXX_COMPILER=clang++ -DPHASELOOP_BUILD_BENCH=OFF
