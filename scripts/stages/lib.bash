# Shared by the stage scripts: configure, build and run the suite in one build tree.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
jobs=${PHASELOOP_JOBS:-2}

# build_and_test DIR [cmake args...]: configure DIR, build everything, run ctest.
build_and_test() {
  local dir=$1; shift
  # -g1 (line tables: enough for sanitizer stack traces) instead of -g: full
  # debug info costs GCC minutes on the largest test files.
  cmake -S "$root" -B "$root/build/$dir" -DCMAKE_BUILD_TYPE=${BUILD_TYPE:-Debug} -DCMAKE_CXX_FLAGS_DEBUG=-g1 \
    -DPHASELOOP_REQUIRE_TEST_DEPS=ON "$@" >/dev/null
  cmake --build "$root/build/$dir" -j "$jobs"
  ctest --test-dir "$root/build/$dir" --output-on-failure -j "$jobs"
}
