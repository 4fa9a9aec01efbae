#!/usr/bin/env bash
# The suite, examples and benchmarks built with g++ -Wall -Wextra -Wpedantic -Werror.
source "$(dirname "$0")/lib.bash"
CXX=g++ build_and_test gcc -DCMAKE_CXX_COMPILER=g++
