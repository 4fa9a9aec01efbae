#!/usr/bin/env bash
# single_include/phaseloop.hpp is exactly what tools/amalgamate.py makes of
# include/ now, it compiles on its own, and the module suites pass against it
# alone (PHASELOOP_TEST_SINGLE_HEADER: the tests see single_include/, not include/).
source "$(dirname "$0")/lib.bash"
b=$root/build/pkg-single-header
mkdir -p "$b"
fresh=$b/fresh/phaseloop.hpp
rm -rf "$b/fresh"

echo "--- tools/amalgamate.py on made-up include trees"
python3 "$root/tests/package/amalgamate_test.py" g++

echo "--- single_include/phaseloop.hpp is a fresh generation"
python3 "$root/tools/amalgamate.py" -o "$fresh"
if ! cmp -s "$fresh" "$root/single_include/phaseloop.hpp"; then
  echo "40-single-header: single_include/phaseloop.hpp is stale: it differs from what" >&2
  echo "tools/amalgamate.py generates from include/ now. Run \`python3 tools/amalgamate.py\`" >&2
  echo "and commit single_include/phaseloop.hpp. First differences:" >&2
  diff -u "$root/single_include/phaseloop.hpp" "$fresh" | head -30 >&2 || true
  exit 1
fi
# Deterministic and location-independent: from another directory, same bytes,
# and no absolute path of this machine in the output.
(cd "$b" && python3 "$root/tools/amalgamate.py" --include-dir "$root/include" -o "$b/fresh/again.hpp")
cmp "$fresh" "$b/fresh/again.hpp"
if grep -n -F -e "$root" "$fresh"; then
  echo "40-single-header: the single header contains an absolute path" >&2
  exit 1
fi

echo "--- the single header compiles alone, with g++ and clang, warnings as errors"
for cxx in g++ clang++; do
  echo '#include <phaseloop.hpp>
#include <phaseloop.hpp>
int main() { return phaseloop::version.major < 0; }' |
    "$cxx" -std=c++20 -Wall -Wextra -Wpedantic -Werror -I "$root/single_include" -x c++ - -pthread -o "$b/alone-$cxx"
  "$b/alone-$cxx"
done

# Every module through the single header: the conformance scenarios, the
# backend contract, and one suite per module (fs through use_promise_test);
# the rest of the suite is the same code, run by 10-gcc on include/.
echo "--- the suite's module tests against the single header alone"
single_sources="conformance/*.cpp;backend/contract_test.cpp;unit/core_mock_test.cpp;unit/any_loop_test.cpp"
single_sources+=";unit/abort_test.cpp;unit/use_promise_test.cpp;unit/signal_test.cpp;unit/child_process_test.cpp"
single_sources+=";unit/io_uring_test.cpp;unit/net_tcp_test.cpp;unit/dgram_test.cpp;unit/dns_test.cpp"
build_and_test pkg-single-header -DCMAKE_CXX_COMPILER=g++ -DPHASELOOP_TEST_SINGLE_HEADER=ON \
  -DPHASELOOP_BUILD_EXAMPLES=OFF -DPHASELOOP_BUILD_BENCH=OFF "-DPHASELOOP_TEST_ONLY=$single_sources"
